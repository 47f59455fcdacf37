r"""The tiny feed-forward network of chapter 3, derived.

The network is one step of the book's RNN without the recurrent term: for one
example :math:`x \in \mathbb{R}^D` with target class :math:`y`,

.. math::

    a = b + U x, \quad h = \tanh a, \quad o = c + V h,

    \hat y = \operatorname{softmax}(o), \quad L = -\log \hat y_y.

Two derivations live here.

*The whole network, component by component* (:func:`componentwise_gradients`,
:func:`compact_gradients`, :func:`prove_gradients`): SymPy differentiates the
scalar ``L``, written out in named scalar symbols, with respect to every entry
of ``U``, ``b``, ``V`` and ``c``, and the result is proven equal to the compact
backward pass

.. math::

    g_o = \hat y - e_y, \quad \nabla_V L = g_o h^\top, \quad \nabla_c L = g_o,

    g_a = (1 - h \odot h) \odot V^\top g_o, \quad \nabla_U L = g_a x^\top, \quad \nabla_b L = g_a.

*Kernel reuse, in matrix symbols* (:func:`hidden_affine`, :func:`prove_kernel_reuse`):
a batch stacks examples as rows, so the biases enter as the rows
:math:`b^\top` (1, H) and :math:`c^\top` (1, K) (the matrix symbols ``b`` and ``c``
of :func:`bptt_lib.derive.rnn_step.batch_symbols` have these shapes). The hidden
layer of a batch, :math:`A = X U^\top + 1_B b^\top`, is the RNN's output affine
map :math:`O = \mathsf{H} V^\top + 1_B c^\top` with its symbols renamed, and so are its
vector-Jacobian products; here :math:`\mathsf{H}` (``Hid`` in code, printed ``H``)
is the (B, H) batch of hidden states, not the size H. The generated kernels ``output_affine`` and
``output_vjp`` therefore serve both layers unchanged.
"""

from __future__ import annotations

from types import SimpleNamespace

import sympy as sp

from . import activations, rnn_step, softmax_nll

__all__ = [
    "explicit_symbols", "forward", "loss",
    "componentwise_gradients", "compact_gradients", "output_symbols", "algebraic", "prove_gradients",
    "hidden_affine", "renaming", "prove_kernel_reuse",
]

PARAMS = ("U", "b", "V", "c")
"""The parameters of the network, in the order the book lists them."""


def explicit_symbols(n_in: int = 2, n_hidden: int = 2, n_out: int = 3) -> SimpleNamespace:
    """Matrices of named real symbols for one example of explicit size.

    Returns a namespace with ``U`` (H, D), ``b`` (H, 1), ``V`` (K, H),
    ``c`` (K, 1) and ``x`` (D, 1): the symbols of
    :func:`bptt_lib.derive.rnn_step.explicit_symbols` without the recurrent
    ``W`` and ``h_prev``.
    """
    rnn = rnn_step.explicit_symbols(n_in, n_hidden, n_out)
    return SimpleNamespace(U=rnn.U, b=rnn.b, V=rnn.V, c=rnn.c, x=rnn.x)


def forward(sym: SimpleNamespace) -> SimpleNamespace:
    """``a``, ``h = tanh(a)``, ``o`` and ``yhat = softmax(o)`` as column matrices."""
    a = sym.b + sym.U * sym.x
    h = a.applyfunc(sp.tanh)
    o = sym.c + sym.V * h
    return SimpleNamespace(a=a, h=h, o=o, yhat=softmax_nll.softmax(o))


def _check_target(sym: SimpleNamespace, target: int) -> None:
    K = sym.c.rows
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < K:
        raise ValueError(f"target must be an int in [0, K={K}); got {target!r}")


def loss(sym: SimpleNamespace, target: int) -> sp.Expr:
    """The scalar loss ``L = -log yhat[target]`` as one expression in the symbols."""
    _check_target(sym, target)
    return softmax_nll.nll(forward(sym).o, target)


def componentwise_gradients(sym: SimpleNamespace, target: int) -> dict:
    """SymPy's derivative of :func:`loss` with respect to every entry of every parameter.

    Returns a dict from ``"U"``, ``"b"``, ``"V"``, ``"c"`` to matrices of the
    parameter's shape: entry ``(i, j)`` of ``grads["U"]`` is ``dL / dU_ij``.
    """
    L = loss(sym, target)
    return {name: getattr(sym, name).applyfunc(lambda entry: sp.diff(L, entry)) for name in PARAMS}


def compact_gradients(sym: SimpleNamespace, target: int) -> dict:
    """The backward pass in matrix form, one rule per layer, from the top down.

    The tanh rule is :func:`bptt_lib.derive.activations.vjp` applied entry by
    entry; the softmax rule is the result proven in
    :mod:`bptt_lib.derive.softmax_nll`.
    """
    _check_target(sym, target)
    fwd = forward(sym)
    onehot = sp.Matrix([int(k == target) for k in range(sym.c.rows)])
    g_o = fwd.yhat - onehot
    g_h = sym.V.T * g_o
    tanh_rule = activations.vjp("tanh")
    g_a = sp.Matrix([
        tanh_rule.xreplace({activations.g: g_h[i], activations.h: fwd.h[i]}) for i in range(sym.b.rows)
    ])
    return {"U": g_a * sym.x.T, "b": g_a, "V": g_o * fwd.h.T, "c": g_o}


def output_symbols(sym: SimpleNamespace) -> SimpleNamespace:
    """Symbols for the layer outputs: ``h_i`` stands for ``tanh(a_i)``, ``E_k`` for ``exp(o_k)``.

    The namespace holds them as ``h`` (and, under its older name, ``t``) and ``E``.
    """
    H, K = sym.b.rows, sym.c.rows
    hidden = sp.symbols(f"h_1:{H + 1}", real=True)
    return SimpleNamespace(h=hidden, t=hidden, E=sp.symbols(f"E_1:{K + 1}", positive=True))


def algebraic(expr: sp.Expr, sym: SimpleNamespace) -> sp.Expr:
    """Rewrite ``expr`` with ``tanh(a_i) -> h_i`` and ``exp(m o_k) -> E_k**m`` (see :func:`output_symbols`).

    A derivative of the loss is a rational function of these quantities, and
    ``sympy.cancel`` decides exactly whether a rational function is zero. The
    renaming is also what makes a derivative readable.
    """
    out = output_symbols(sym)
    h = forward(sym).h
    expr = expr.xreplace({h[i]: out.t[i] for i in range(len(out.t))})
    o_in_t = sym.c + sym.V * sp.Matrix(out.t)

    def power_of_E(arg):
        arg = sp.expand(arg)
        for k in range(len(out.E)):
            m = arg.coeff(sym.c[k])
            if m != 0 and sp.expand(arg - m * o_in_t[k]) == 0:
                return out.E[k] ** m
        return sp.exp(arg)

    return expr.replace(sp.exp, power_of_E)


def prove_gradients(n_in: int = 2, n_hidden: int = 2, n_out: int = 3) -> bool:
    """Prove :func:`componentwise_gradients` equals :func:`compact_gradients` for every target.

    The difference of the two is a function of ``tanh(a_i)`` and ``exp(o_k)``
    only. Writing ``h_i = tanh(a_i)`` and ``E_k = exp(o_k)`` makes it a rational
    function of the symbols, which :func:`sympy.cancel` reduces to zero exactly
    when it is zero. A difference that still holds ``tanh`` or ``exp`` after the
    renaming counts as not proven.
    """
    sym = explicit_symbols(n_in, n_hidden, n_out)
    for target in range(n_out):
        componentwise = componentwise_gradients(sym, target)
        compact = compact_gradients(sym, target)
        for name in PARAMS:
            difference = (componentwise[name] - compact[name]).applyfunc(
                lambda entry: algebraic(entry, sym))
            if difference.has(sp.tanh) or difference.has(sp.exp):
                return False
            if difference.applyfunc(sp.cancel) != sp.zeros(*difference.shape):
                return False
    return True


# --- a batch, in matrix symbols: the hidden layer is the output map renamed ----------

def hidden_affine(sym: SimpleNamespace) -> sp.MatrixExpr:
    r"""``A = X U^T + 1_B b^T`` for the symbols of :func:`bptt_lib.derive.rnn_step.batch_symbols`.

    The symbol ``b`` there is the (1, H) row :math:`b^\top`, so the code reads ``one_B * b``.
    """
    return sym.X * sym.U.T + sym.one_B * sym.b


def renaming(sym: SimpleNamespace) -> dict:
    """The renaming that turns the RNN's output layer into the feed-forward hidden layer.

    ``Hid -> X`` (the layer's input; ``Hid`` is the (B, H) batch of hidden states),
    ``V -> U`` (its weight), ``c -> b`` (its bias) and ``G_o -> G_a`` (the upstream gradient).
    """
    return {sym.Hid: sym.X, sym.V: sym.U, sym.c: sym.b, sym.G_o: sym.G_a}


def prove_kernel_reuse() -> bool:
    """True when the hidden layer and its VJPs are the output layer's, renamed.

    The hidden layer's VJPs are derived afresh with
    :func:`bptt_lib.derive.rnn_step.affine_vjps`; the output layer's are the
    expressions that the kernel ``output_vjp`` is generated from. Equality is
    structural (SymPy's ``==``), so it holds for every size.
    """
    sym = rnn_step.batch_symbols()
    rename = renaming(sym)
    output = rnn_step.output_affine(sym)
    hidden = hidden_affine(sym)
    if output.xreplace(rename) != hidden:
        return False
    output_vjps = rnn_step.affine_vjps(output, sym.G_o, [sym.V, sym.c, sym.Hid])
    hidden_vjps = rnn_step.affine_vjps(hidden, sym.G_a, [sym.U, sym.b, sym.X])
    return all(output_vjps[p].xreplace(rename) == hidden_vjps[rename[p]] for p in output_vjps)
