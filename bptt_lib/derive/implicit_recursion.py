r"""The total loss, and the explicit and implicit parts of a derivative, derived with SymPy.

Chapter 5 of the book. Six derivations live here.

*The output weights need no recursion* (:func:`output_weight_gradient`,
:func:`prove_output_weight_gradient`). :math:`L = \sum_t L^{(t)}` and
:math:`L^{(t)}` depends on :math:`V` only through :math:`o^{(t)} = c + V h^{(t)}`,
while no hidden state depends on :math:`V`. Hence

.. math::

    \nabla_V L = \sum_{t=1}^{T} \big(\hat y^{(t)} - e_{y^{(t)}}\big)\, h^{(t)\top} :

a sum over all steps, each term built from its own step alone.

*The explicit plus implicit recursion* (:func:`scalar_recursion`,
:func:`prove_scalar_recursion`, :func:`vector_rnn`, :func:`prove_vector_recursion`):

.. math::

    \frac{d h^{(t)}}{d\theta} = \frac{\partial^+ h^{(t)}}{\partial \theta}
        + \frac{\partial h^{(t)}}{\partial h^{(t-1)}}\, \frac{d h^{(t-1)}}{d\theta},

for a scalar weight and, at explicit sizes, for the matrix :math:`W` with the
sensitivity :math:`S^{(t)} = d h^{(t)} / d \operatorname{vec}(W)` (``vec`` flattens
row by row, as NumPy's ``reshape(-1)`` does):

.. math::

    S^{(t)} = \operatorname{diag}\big(1 - (h^{(t)})^2\big)
        \Big(I_H \otimes h^{(t-1)\top} + W S^{(t-1)}\Big).

*The same recursion along one direction* (:func:`tangent_symbols`,
:func:`tangent_preactivation`, :func:`prove_tangent_preactivation`): moving the
parameters along :math:`(\dot W, \dot U, \dot b)` moves the pre-activation of a batch
(stored as rows) by

.. math::

    \dot A = \underbrace{H_{\text{prev}} \dot W^\top + X \dot U^\top + 1_B \dot b}_{\text{explicit}}
        + \underbrace{\dot H_{\text{prev}} W^\top}_{\text{implicit}},

the expressions that :mod:`bptt_lib.implicit_recursion` generates its
forward-mode kernels from.

*The linear RNN in closed form* (:func:`linear_closed_form`,
:func:`prove_linear_closed_form`, :func:`prove_linear_state_jacobian`): with the
identity activation and no bias, :math:`h^{(t)} = W h^{(t-1)} + U x^{(t)}` gives

.. math::

    h^{(t)} = W^t h^{(0)} + \sum_{k=1}^{t} W^{t-k} U x^{(k)}, \qquad
    \frac{\partial h^{(t)}}{\partial h^{(k)}} = W^{t-k}.

*The identity-activation RNN's gradients in closed form* (:func:`identity_rnn_symbols`,
:func:`identity_closed_form_gradients`, :func:`identity_unrolled_gradients`,
:func:`prove_identity_rnn_gradients`): with :math:`o^{(t)} = V h^{(t)}` and
:math:`g^{(t)} = \partial L / \partial o^{(t)}`,

.. math::

    \nabla_W L = \sum_{t}\sum_{k \le t} (W^\top)^{t-k} V^\top g^{(t)} h^{(k-1)\top},

    \nabla_U L = \sum_{t}\sum_{k \le t} (W^\top)^{t-k} V^\top g^{(t)} x^{(k)\top},

    \nabla_V L = \sum_t g^{(t)} h^{(t)\top},

proven by SymPy's matrix calculus for symbolic sizes at each explicit number of steps.

*How often a contraction counts each path* (:func:`contraction_multiplicities`): the
total gradient :math:`\nabla_{h^{(t)}} L` contracted with the total sensitivity counts
the path of lag :math:`\ell` exactly :math:`\ell + 1` times; the direct gradient once.
"""

from __future__ import annotations

from types import SimpleNamespace

import sympy as sp

from ..validation import positive_int
from . import chain_rule as dcr
from . import softmax_nll
from .rnn_step import B, D, H, K

__all__ = [
    "output_weight_gradient", "prove_output_weight_gradient",
    "scalar_recursion", "prove_scalar_recursion",
    "vector_rnn", "explicit_sensitivity", "sensitivity_direct", "sensitivity_recursion",
    "prove_vector_recursion",
    "tangent_symbols", "tangent_preactivation", "prove_tangent_preactivation",
    "linear_symbols", "linear_terms", "linear_closed_form", "linear_power", "prove_linear_closed_form",
    "prove_linear_state_jacobian",
    "identity_rnn_symbols", "identity_rnn_states", "identity_rnn_linearised_loss", "identity_gradient_terms",
    "identity_closed_form_gradients", "identity_unrolled_gradients", "prove_identity_rnn_gradients",
    "contraction_multiplicities",
]


def _check_size(name: str, value, low: int = 1, high: int = 4) -> None:
    """Explicit symbolic sizes stay small: ``value`` must be an int from ``low`` to ``high``."""
    positive_int(name, value, low=low, high=high)


def _check_steps(n_steps, high: int = 4) -> None:
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or not 1 <= n_steps <= high:
        raise ValueError(
            f"n_steps must be an int from 1 to {high} (explicit symbolic sizes stay small); got {n_steps!r}"
        )


def _column(name: str, rows: int) -> sp.Matrix:
    return sp.Matrix(rows, 1, lambda i, _: sp.Symbol(f"{name}_{i + 1}", real=True))


def _grid(name: str, rows: int, cols: int) -> sp.Matrix:
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{name}_{i + 1}{j + 1}", real=True))


# --- the output weights: one term per step ------------------------------------------------


def output_weight_gradient(n_steps: int = 2, n_hidden: int = 2, n_out: int = 2,
                           targets=None) -> SimpleNamespace:
    r"""The gradient of :math:`L = \sum_t -\log \hat y^{(t)}_{y^{(t)}}` with respect to :math:`V`, two ways.

    The hidden states are independent symbols ``h^{(t)}_i``: no hidden state
    depends on :math:`V` (see :func:`prove_output_weight_gradient`, which checks
    this on the unrolled network), so holding them fixed loses nothing.

    Parameters
    ----------
    n_steps : int
        Number of steps ``T`` (1 to 3).
    n_hidden, n_out : int
        ``H`` (1 to 3) and ``K`` (2 to 4).
    targets : sequence of int, optional
        The target class at each step (from 0); by default ``t mod K``.

    Returns
    -------
    SimpleNamespace
        ``V`` (K, H) symbols, ``c`` (K, 1), ``h`` (list of T columns), ``loss``
        (the scalar :math:`L`), ``terms`` (list of T scalars :math:`L^{(t)}`),
        ``componentwise`` (K, H): SymPy's :math:`\partial L / \partial V_{kj}`;
        ``compact`` (K, H): :math:`\sum_t (\hat y^{(t)} - e_{y^{(t)}})\, h^{(t)\top}`;
        ``per_step`` (list of T (K, H) matrices): the terms of that sum;
        ``yhat`` (list of T columns (K, 1)): the softmax probabilities;
        ``targets``: the target classes.
    """
    _check_steps(n_steps, high=3)
    _check_size("n_hidden", n_hidden, high=3)
    _check_size("n_out", n_out, low=2)
    if targets is None:
        targets = [t % n_out for t in range(n_steps)]
    targets = list(targets)
    if len(targets) != n_steps or any(isinstance(y, bool) or not isinstance(y, int) or not 0 <= y < n_out
                                      for y in targets):
        raise ValueError(f"targets must be {n_steps} ints in [0, {n_out}); got {targets!r}")
    V, c = _grid("V", n_out, n_hidden), _column("c", n_out)
    h = [sp.Matrix(n_hidden, 1, lambda i, _, t=t: sp.Symbol(f"h^{{({t})}}_{i + 1}", real=True))
         for t in range(1, n_steps + 1)]
    terms, per_step, yhat = [], [], []
    for h_t, y_t in zip(h, targets):
        o_t = c + V * h_t
        terms.append(softmax_nll.nll(o_t, y_t))
        onehot = sp.Matrix([int(k == y_t) for k in range(n_out)])
        yhat.append(softmax_nll.softmax(o_t))
        per_step.append((yhat[-1] - onehot) * h_t.T)
    loss = sp.Add(*terms)
    componentwise = V.applyfunc(lambda v: sp.diff(loss, v))
    compact = sp.zeros(n_out, n_hidden)
    for term in per_step:
        compact += term
    return SimpleNamespace(V=V, c=c, h=h, yhat=yhat, loss=loss, terms=terms, componentwise=componentwise,
                           compact=compact, per_step=per_step, targets=targets)


def prove_output_weight_gradient(n_steps: int = 2, n_hidden: int = 2, n_out: int = 2) -> bool:
    r"""Prove :math:`\nabla_V L = \sum_t (\hat y^{(t)} - e_{y^{(t)}})\, h^{(t)\top}`.

    Two facts are checked. (1) In the unrolled tanh RNN, written out in its
    leaves for ``n_steps`` steps, no hidden state contains an entry of :math:`V`,
    so :math:`\partial h^{(t)} / \partial V = 0`. (2) With the hidden states as
    independent symbols, SymPy's entrywise derivative of the total loss equals
    the compact sum (:func:`output_weight_gradient`).
    """
    out = output_weight_gradient(n_steps, n_hidden, n_out)
    states = vector_rnn(n_steps, n_hidden, n_in=1).h
    v_entries = set(out.V)
    if any(v_entries & state.free_symbols for state in states):
        return False
    return sp.simplify(out.componentwise - out.compact) == sp.zeros(n_out, n_hidden)


# --- the scalar recursion: explicit plus implicit --------------------------------------------


def scalar_recursion(rnn: SimpleNamespace, k: int, wrt: sp.Symbol = dcr.w,
                     *, in_states: bool = False) -> tuple[sp.Expr, sp.Expr]:
    r"""The two parts of :math:`d h_k / dw` in the recursion, for the scalar RNN of
    :func:`~bptt_lib.derive.chain_rule.scalar_rnn`.

    Returns ``(explicit, implicit)``: the immediate partial
    :math:`\partial^+ h_k / \partial w` and
    :math:`(\partial h_k / \partial h_{k-1})\,(d h_{k-1} / dw)`, which is zero for
    ``k = 1`` because :math:`h_0` does not depend on the weights. Their sum is the
    total derivative (:func:`prove_scalar_recursion`).
    """
    explicit = dcr.immediate_partial(rnn, k, wrt)
    if k == 1:
        implicit = sp.Integer(0)
    else:
        implicit = dcr.step_jacobian(rnn, k) * dcr.total_derivative(rnn, k - 1, wrt)
    if in_states:
        return dcr.to_states(rnn, explicit), dcr.to_states(rnn, implicit)
    return explicit, implicit


def prove_scalar_recursion(n_steps: int = 3, activation="tanh", wrt: sp.Symbol = dcr.w) -> bool:
    r"""Prove :math:`d h_k/dw = \partial^+ h_k/\partial w + (\partial h_k/\partial h_{k-1})\, d h_{k-1}/dw`
    for every ``k <= n_steps``.

    ``activation`` may be ``"tanh"``, ``"sigmoid"`` or an undefined SymPy
    function (then the proof holds for every differentiable activation).
    """
    rnn = dcr.scalar_rnn(n_steps, activation)
    for k in range(1, n_steps + 1):
        explicit, implicit = scalar_recursion(rnn, k, wrt)
        difference = sp.expand((dcr.total_derivative(rnn, k, wrt) - explicit - implicit).doit())
        if difference != 0 and sp.simplify(difference) != 0:
            return False
    return True


# --- the vector recursion at explicit sizes -------------------------------------------------


def vector_rnn(n_steps: int = 2, n_hidden: int = 2, n_in: int = 1) -> SimpleNamespace:
    r"""The tanh RNN :math:`h^{(t)} = \tanh(b + W h^{(t-1)} + U x^{(t)})` unrolled at explicit sizes.

    Returns
    -------
    SimpleNamespace
        Leaves ``W`` (H, H), ``U`` (H, D), ``b`` (H, 1), ``h0`` (H, 1) and ``x``
        (list of T columns (D, 1)); ``h``: list of T + 1 columns, ``h[t]`` written
        out in the leaves (``h[0] = h0``); ``params``: ``{"W": W, "U": U, "b": b}``;
        ``T``, ``H``, ``D``.
    """
    _check_steps(n_steps, high=3)
    _check_size("n_hidden", n_hidden, high=3)
    _check_size("n_in", n_in, high=3)
    W, U, b = _grid("W", n_hidden, n_hidden), _grid("U", n_hidden, n_in), _column("b", n_hidden)
    h0 = sp.Matrix(n_hidden, 1, lambda i, _: sp.Symbol(f"h^{{(0)}}_{i + 1}", real=True))
    x = [sp.Matrix(n_in, 1, lambda i, _, t=t: sp.Symbol(f"x^{{({t})}}_{i + 1}", real=True))
         for t in range(1, n_steps + 1)]
    h = [h0]
    for x_t in x:
        h.append((b + W * h[-1] + U * x_t).applyfunc(sp.tanh))
    return SimpleNamespace(W=W, U=U, b=b, h0=h0, x=x, h=h, params={"W": W, "U": U, "b": b},
                           T=n_steps, H=n_hidden, D=n_in)


def _vec(M: sp.Matrix) -> sp.Matrix:
    """Flatten row by row into a column (NumPy's ``reshape(-1)``)."""
    return sp.Matrix(list(M))


def _check_rnn_t(rnn, t: int, wrt: str) -> None:
    if not isinstance(rnn, SimpleNamespace) or not hasattr(rnn, "params"):
        raise TypeError("rnn must be the namespace returned by vector_rnn()")
    if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= rnn.T:
        raise ValueError(f"t must be an int from 0 to {rnn.T}; got {t!r}")
    if wrt not in rnn.params:
        raise ValueError(f"wrt must be one of {sorted(rnn.params)}; got {wrt!r}")


def explicit_sensitivity(rnn: SimpleNamespace, t: int, wrt: str = "W") -> sp.Matrix:
    r"""The explicit part :math:`\partial^+ a^{(t)} / \partial \operatorname{vec}\theta`, an ``(H, size of theta)``
    matrix.

    For ``"W"`` it is :math:`I_H \otimes h^{(t-1)\top}` (entry :math:`(i, (j, k))` is
    :math:`\delta_{ij} h^{(t-1)}_k`), for ``"U"`` :math:`I_H \otimes x^{(t)\top}`,
    for ``"b"`` the identity.
    """
    _check_rnn_t(rnn, t, wrt)
    if t == 0:
        raise ValueError("t must be at least 1: step 0 has no pre-activation")
    eye = sp.eye(rnn.H)
    if wrt == "W":
        return sp.kronecker_product(eye, rnn.h[t - 1].T)
    if wrt == "U":
        return sp.kronecker_product(eye, rnn.x[t - 1].T)
    return eye


def sensitivity_direct(rnn: SimpleNamespace, t: int, wrt: str = "W") -> sp.Matrix:
    r""":math:`d h^{(t)} / d \operatorname{vec}\theta` by SymPy's Jacobian of the unrolled :math:`h^{(t)}`."""
    _check_rnn_t(rnn, t, wrt)
    return rnn.h[t].jacobian(_vec(rnn.params[wrt]))


def sensitivity_recursion(rnn: SimpleNamespace, t: int, wrt: str = "W") -> sp.Matrix:
    r""":math:`S^{(t)}` by the recursion
    :math:`S^{(t)} = \operatorname{diag}(1 - (h^{(t)})^2)\,(\partial^+ a^{(t)}/\partial\theta + W S^{(t-1)})`,
    :math:`S^{(0)} = 0`.
    """
    _check_rnn_t(rnn, t, wrt)
    S = sp.zeros(rnn.H, len(rnn.params[wrt]))
    for k in range(1, t + 1):
        tanh_prime = sp.diag(*[1 - hi**2 for hi in rnn.h[k]])
        S = tanh_prime * (explicit_sensitivity(rnn, k, wrt) + rnn.W * S)
    return S


def prove_vector_recursion(n_steps: int = 2, n_hidden: int = 2, n_in: int = 1, wrt: str = "W") -> bool:
    """True when the recursion of :func:`sensitivity_recursion` equals SymPy's Jacobian at every step."""
    rnn = vector_rnn(n_steps, n_hidden, n_in)
    for t in range(1, n_steps + 1):
        difference = sp.expand(sensitivity_direct(rnn, t, wrt) - sensitivity_recursion(rnn, t, wrt))
        if difference != sp.zeros(*difference.shape):
            return False
    return True


# --- the recursion along one direction, in matrix symbols -------------------------------------


def tangent_symbols() -> SimpleNamespace:
    """Matrix symbols for one step of a batch (rows are examples) and a direction in parameter space.

    ``H_prev`` (B, H), ``X`` (B, D), ``W`` (H, H), ``U`` (H, D), ``b`` (1, H),
    ``one_B`` (B, 1); the direction ``W_dot``, ``U_dot``, ``b_dot`` (same shapes
    as the parameters) and the tangent of the previous state ``H_dot_prev`` (B, H).
    """
    M = sp.MatrixSymbol
    return SimpleNamespace(
        H_prev=M("H_prev", B, H), X=M("X", B, D), W=M("W", H, H), U=M("U", H, D), b=M("b", 1, H),
        one_B=M("one_B", B, 1),
        W_dot=M("W_dot", H, H), U_dot=M("U_dot", H, D), b_dot=M("b_dot", 1, H),
        H_dot_prev=M("H_dot_prev", B, H),
    )


def tangent_preactivation(sym: SimpleNamespace | None = None) -> tuple[sp.MatrixExpr, sp.MatrixExpr]:
    r"""Differentiate :math:`A = H_{\text{prev}} W^\top + X U^\top + 1_B b` along a direction.

    Every operand that depends on the parameters moves: :math:`W \to W + \epsilon \dot W`
    (likewise :math:`U`, :math:`b`) and :math:`H_{\text{prev}} \to H_{\text{prev}} + \epsilon \dot H_{\text{prev}}`.
    SymPy differentiates with respect to :math:`\epsilon` at :math:`\epsilon = 0`.

    Returns
    -------
    (explicit, implicit) : tuple of sympy matrix expressions
        ``explicit`` collects the terms with a parameter direction,
        :math:`H_{\text{prev}} \dot W^\top + X \dot U^\top + 1_B \dot b`;
        ``implicit`` the term with :math:`\dot H_{\text{prev}}`, :math:`\dot H_{\text{prev}} W^\top`.
    """
    s = tangent_symbols() if sym is None else sym
    eps = sp.Symbol("epsilon", real=True)
    moved = ((s.H_prev + eps * s.H_dot_prev) * (s.W + eps * s.W_dot).T
             + s.X * (s.U + eps * s.U_dot).T + s.one_B * (s.b + eps * s.b_dot))
    tangent = sp.expand(sp.diff(moved, eps).subs(eps, 0)).doit()
    terms = sp.Add.make_args(tangent) if not isinstance(tangent, sp.MatAdd) else tangent.args
    terms = [term for term in terms if not (term.is_zero or (term.is_MatMul and term.args[0] == 0))]
    implicit = [term for term in terms if s.H_dot_prev in term.free_symbols]
    explicit = [term for term in terms if s.H_dot_prev not in term.free_symbols]
    add = lambda parts: parts[0] if len(parts) == 1 else sp.MatAdd(*parts)  # noqa: E731
    return add(explicit), add(implicit)


def prove_tangent_preactivation(n_batch: int = 2, n_in: int = 2, n_hidden: int = 2) -> bool:
    r"""Prove ``explicit + implicit`` of :func:`tangent_preactivation` equals Jacobian times direction.

    At explicit sizes :math:`\operatorname{vec} A` is a function of the entries of
    :math:`H_{\text{prev}}, W, U, b`; SymPy's Jacobian of it, times the stacked
    direction :math:`(\dot H_{\text{prev}}, \dot W, \dot U, \dot b)`, must equal the
    compact tangent expanded at the same size.
    """
    for name, value in (("n_batch", n_batch), ("n_in", n_in), ("n_hidden", n_hidden)):
        _check_size(name, value)
    s = tangent_symbols()
    sizes = {B: n_batch, D: n_in, H: n_hidden}
    ex = lambda m: m.subs(sizes).as_explicit()  # noqa: E731
    A = ex(s.H_prev * s.W.T + s.X * s.U.T + s.one_B * s.b)
    inputs = [s.H_prev, s.W, s.U, s.b]
    directions = [s.H_dot_prev, s.W_dot, s.U_dot, s.b_dot]
    leaves = sp.Matrix.vstack(*[_vec(ex(m)) for m in inputs])
    direction = sp.Matrix.vstack(*[_vec(ex(m)) for m in directions])
    jvp = _vec(A).jacobian(leaves) * direction
    explicit, implicit = tangent_preactivation(s)
    compact = _vec(ex(explicit) + ex(implicit))
    return sp.expand(jvp - compact) == sp.zeros(*compact.shape)


# --- the linear RNN: closed form in powers of W ---------------------------------------------


def linear_symbols(n_steps: int) -> SimpleNamespace:
    """Matrix symbols of symbolic size for the linear RNN over ``n_steps`` steps, batch as rows.

    ``H0`` (B, H), ``X`` (tuple of T matrices (B, D)), ``W`` (H, H), ``U`` (H, D),
    ``n`` a non-negative integer symbol (a power).
    """
    _check_steps(n_steps, high=8)
    M = sp.MatrixSymbol
    return SimpleNamespace(
        H0=M("H0", B, H), X=tuple(M(f"X{k}", B, D) for k in range(1, n_steps + 1)),
        W=M("W", H, H), U=M("U", H, D), n=sp.Symbol("n", integer=True, nonnegative=True), T=n_steps,
    )


def linear_terms(sym: SimpleNamespace | None = None) -> tuple[sp.MatrixExpr, sp.MatrixExpr]:
    r"""The two kinds of term of the closed form, for a batch stored as rows, with a symbolic power ``n``.

    Returns ``(start, input)``: :math:`H^{(0)} (W^\top)^n`, the initial state carried
    ``n`` steps, and :math:`X U^\top (W^\top)^n`, an input carried ``n`` steps (``X``
    is the first input symbol of ``sym``). In column form these are
    :math:`W^n h^{(0)}` and :math:`W^n U x`.
    """
    s = linear_symbols(1) if sym is None else sym
    return s.H0 * sp.MatPow(s.W.T, s.n), s.X[0] * s.U.T * sp.MatPow(s.W.T, s.n)


def linear_closed_form(sym: SimpleNamespace) -> sp.MatrixExpr:
    r"""The state :math:`h^{(T)}` of the linear RNN for a batch stored as rows.

    Column form :math:`h^{(T)} = W^T h^{(0)} + \sum_{k=1}^{T} W^{T-k} U x^{(k)}`; with
    examples as rows every product is transposed:
    :math:`H^{(T)} = H^{(0)} (W^\top)^T + \sum_k X^{(k)} U^\top (W^\top)^{T-k}`.
    Built from the two terms of :func:`linear_terms`.
    """
    start, carried = linear_terms(sym)
    T = sym.T
    terms = [start.xreplace({sym.n: sp.Integer(T)})]
    for k in range(1, T + 1):
        terms.append(carried.xreplace({sym.X[0]: sym.X[k - 1], sym.n: sp.Integer(T - k)}))
    return sp.MatAdd(*terms).doit()


def linear_power(sym: SimpleNamespace | None = None) -> sp.MatrixExpr:
    r""":math:`W^n` with a symbolic exponent: the Jacobian :math:`\partial h^{(t)} / \partial h^{(t-n)}` of the
    linear RNN.
    """
    s = linear_symbols(1) if sym is None else sym
    return sp.MatPow(s.W, s.n)


def _explicit_linear(n_steps: int, n_hidden: int, n_in: int, start: int = 0):
    W, U = _grid("W", n_hidden, n_hidden), _grid("U", n_hidden, n_in)
    h_start = sp.Matrix(n_hidden, 1, lambda i, _: sp.Symbol(f"h^{{({start})}}_{i + 1}", real=True))
    x = [sp.Matrix(n_in, 1, lambda i, _, t=t: sp.Symbol(f"x^{{({t})}}_{i + 1}", real=True))
         for t in range(start + 1, n_steps + 1)]
    h = [h_start]
    for x_t in x:
        h.append(W * h[-1] + U * x_t)
    return W, U, h_start, x, h


def prove_linear_closed_form(n_steps: int = 3, n_hidden: int = 2, n_in: int = 1) -> bool:
    r"""Prove :math:`h^{(t)} = W^t h^{(0)} + \sum_k W^{t-k} U x^{(k)}` entry by entry for ``t <= n_steps``.

    The left side runs the recursion :math:`h^{(t)} = W h^{(t-1)} + U x^{(t)}` on
    explicit symbols; the right side is :func:`linear_closed_form` (transposed back
    to a column, batch of one) with the same symbols substituted.
    """
    _check_size("n_hidden", n_hidden, high=3)
    _check_size("n_in", n_in, high=3)
    W, U, h0, x, h = _explicit_linear(n_steps, n_hidden, n_in)
    for t in range(1, n_steps + 1):
        sym = linear_symbols(t)
        sizes = {B: 1, H: n_hidden, D: n_in}
        closed = linear_closed_form(sym).subs(sizes)
        subs = {sym.W.subs(sizes): W, sym.U.subs(sizes): U, sym.H0.subs(sizes): h0.T}
        subs.update({X.subs(sizes): x_k.T for X, x_k in zip(sym.X, x)})
        closed = closed.subs(subs).doit().as_explicit().T
        if sp.expand(closed - h[t]) != sp.zeros(n_hidden, 1):
            return False
    return True


def prove_linear_state_jacobian(n_steps: int = 3, n_hidden: int = 2, n_in: int = 1) -> bool:
    r"""Prove :math:`\partial h^{(t)} / \partial h^{(k)} = W^{t-k}` for the linear RNN, for all
    ``0 <= k <= t <= n_steps``.

    The state :math:`h^{(k)}` is made a free symbol and the recursion is run
    from it; SymPy's Jacobian of :math:`h^{(t)}` with respect to it must be the
    matrix power.
    """
    _check_steps(n_steps, high=4)
    _check_size("n_hidden", n_hidden, high=3)
    _check_size("n_in", n_in, high=3)
    for k in range(0, n_steps + 1):
        W, _, h_k, _, h = _explicit_linear(n_steps, n_hidden, n_in, start=k)
        for t in range(k, n_steps + 1):
            if sp.expand(h[t - k].jacobian(h_k) - W ** (t - k)) != sp.zeros(n_hidden, n_hidden):
                return False
    return True


# --- the identity-activation RNN: gradients in closed form ---------------------------------


def identity_rnn_symbols(n_steps: int) -> SimpleNamespace:
    r"""Matrix symbols of symbolic size for the identity-activation RNN without biases, examples as columns.

    ``W`` (H, H), ``U`` (H, D), ``V`` (K, H); ``H0`` (H, B), the inputs ``X``
    (tuple of T matrices (D, B)), and ``G`` (tuple of T matrices (K, B)): the
    gradient :math:`\partial L / \partial o^{(t)}` of the loss with respect to the
    outputs of step :math:`t`, one column per example. ``n`` is a non-negative
    integer symbol (a power of :math:`W^\top`).
    """
    _check_steps(n_steps, high=6)
    M = sp.MatrixSymbol
    return SimpleNamespace(
        W=M("W", H, H), U=M("U", H, D), V=M("V", K, H), H0=M("H0", H, B),
        X=tuple(M(f"X{t}", D, B) for t in range(1, n_steps + 1)),
        G=tuple(M(f"G{t}", K, B) for t in range(1, n_steps + 1)),
        n=sp.Symbol("n", integer=True, nonnegative=True), T=n_steps,
    )


def identity_rnn_states(sym: SimpleNamespace) -> list:
    r"""The states :math:`h^{(t)} = W h^{(t-1)} + U x^{(t)}`, ``t = 0 .. T``, by the recursion (columns)."""
    h = [sym.H0]
    for X_t in sym.X:
        h.append(sym.W * h[-1] + sym.U * X_t)
    return h


def identity_rnn_linearised_loss(sym: SimpleNamespace) -> sp.Expr:
    r""":math:`\sum_t \operatorname{tr}\big(G^{(t)\top} o^{(t)}\big)` with :math:`o^{(t)} = V h^{(t)}` and
    :math:`G^{(t)}` held fixed.

    For any loss :math:`L(o^{(1)}, \dots, o^{(T)})` the chain rule gives
    :math:`\partial L/\partial\theta = \sum_t \sum_{i,b} G^{(t)}_{ib}\, \partial o^{(t)}_{ib}/\partial\theta`
    with :math:`G^{(t)} = \partial L/\partial o^{(t)}`: the gradient of this
    expression with :math:`G^{(t)}` held fixed. So its gradient with respect to
    :math:`W, U, V` *is* the loss gradient, whatever the loss of the outputs is.
    """
    h = identity_rnn_states(sym)
    return sp.Trace(sp.MatAdd(*[G_t.T * sym.V * h[t] for t, G_t in enumerate(sym.G, start=1)]))


def identity_gradient_terms(sym: SimpleNamespace | None = None) -> SimpleNamespace:
    r"""The three kinds of term of the closed-form gradients, with a symbolic power ``n``.

    ``W``: :math:`(W^\top)^n V^\top G\, H_{\text{prev}}^\top`, ``U``:
    :math:`(W^\top)^n V^\top G\, X^\top`, ``V``: :math:`G\, H^\top`, with ``G`` (K, B)
    the output gradient of step :math:`t`, ``H_prev`` (H, B) the state
    :math:`h^{(k-1)}`, ``X`` (D, B) the input :math:`x^{(k)}` and :math:`n = t - k`.
    Also returns the symbols used: ``G``, ``H_prev``, ``X``, ``Ht`` (the state of step t).
    """
    s = identity_rnn_symbols(1) if sym is None else sym
    G, X = s.G[0], s.X[0]
    H_prev, Ht = sp.MatrixSymbol("H_prev", H, B), sp.MatrixSymbol("H_t", H, B)
    carried = sp.MatPow(s.W.T, s.n) * s.V.T * G
    return SimpleNamespace(W=carried * H_prev.T, U=carried * X.T, V=G * Ht.T,
                           G=G, X=X, H_prev=H_prev, Ht=Ht, sym=s)


def identity_closed_form_gradients(sym: SimpleNamespace) -> dict:
    r"""The closed-form gradients of the identity-activation RNN (columns), for ``sym.T`` steps.

    .. math::

        \nabla_W L = \sum_{t=1}^{T}\sum_{k=1}^{t} (W^\top)^{t-k} V^\top G^{(t)} h^{(k-1)\top},

        \nabla_U L = \sum_{t=1}^{T}\sum_{k=1}^{t} (W^\top)^{t-k} V^\top G^{(t)} x^{(k)\top},

        \nabla_V L = \sum_{t=1}^{T} G^{(t)} h^{(t)\top},

    built from the terms of :func:`identity_gradient_terms` (the states written
    out by :func:`identity_rnn_states`).
    """
    terms = identity_gradient_terms(sym)
    h = identity_rnn_states(sym)
    out = {"W": [], "U": [], "V": []}
    for t in range(1, sym.T + 1):
        G_t = sym.G[t - 1]
        out["V"].append(terms.V.xreplace({terms.G: G_t, terms.Ht: h[t]}))
        for k in range(1, t + 1):
            power = {sym.n: sp.Integer(t - k), terms.G: G_t}
            out["W"].append(terms.W.xreplace({**power, terms.H_prev: h[k - 1]}))
            out["U"].append(terms.U.xreplace({**power, terms.X: sym.X[k - 1]}))
    return {key: sp.MatAdd(*parts).doit() for key, parts in out.items()}


def identity_unrolled_gradients(sym: SimpleNamespace) -> dict:
    r"""SymPy's matrix derivative of :func:`identity_rnn_linearised_loss` with respect to ``W``, ``U``, ``V``."""
    loss = identity_rnn_linearised_loss(sym)
    return {key: sp.diff(loss, getattr(sym, key)) for key in ("W", "U", "V")}


def prove_identity_rnn_gradients(n_steps: int = 3) -> bool:
    r"""Prove the closed-form gradients for ``n_steps`` steps and **every** size :math:`H, D, K, B`.

    The sizes stay symbolic (matrix symbols), so SymPy's matrix calculus proves
    the identity for all sizes at once; the number of steps is explicit.
    """
    sym = identity_rnn_symbols(n_steps)
    unrolled = identity_unrolled_gradients(sym)
    closed = identity_closed_form_gradients(sym)
    for key in ("W", "U", "V"):
        difference = sp.expand((unrolled[key] - closed[key]).doit())
        if not (difference == 0 or difference.is_ZeroMatrix):
            return False
    return True


# --- how often a path is counted: total gradient against total sensitivity -----------------


def contraction_multiplicities(n_steps: int = 4, gradient: str = "total") -> dict:
    r"""How often :math:`\sum_t g^{(t)}\, s^{(t)}` counts each path, for a scalar RNN with distinguishable factors.

    Every step gets its own symbols: :math:`J_j` for the one-step derivative
    :math:`\partial h^{(j)}/\partial h^{(j-1)}`, :math:`p_k` for the immediate
    partial :math:`\partial^+ h^{(k)}/\partial w`, :math:`e_t` for the direct
    gradient :math:`\partial L^{(t)}/\partial h^{(t)}`. The total sensitivity
    comes from the forward recursion :math:`s^{(t)} = p_t + J_t s^{(t-1)}`,
    :math:`s^{(0)} = 0`; with ``gradient="total"`` the gradient is backprop's
    :math:`\nabla_{h^{(t)}} L` from :math:`g^{(t)} = e_t + J_{t+1} g^{(t+1)}`, with
    ``"direct"`` it is :math:`e_t`. The path from step :math:`k` to the loss at
    step :math:`t` is the monomial :math:`e_t J_t \cdots J_{k+1} p_k`, so every
    monomial of the expanded sum names one path.

    Returns
    -------
    dict
        ``{(k, t): coefficient}`` for every path :math:`1 \le k \le t \le T`.

    Raises
    ------
    ValueError
        If the expansion contains a monomial that is not a path.
    """
    _check_steps(n_steps, high=8)
    if gradient not in ("total", "direct"):
        raise ValueError(f"gradient must be 'total' or 'direct'; got {gradient!r}")
    T = n_steps
    J = {j: sp.Symbol(f"J_{j}") for j in range(1, T + 2)}
    p = {k: sp.Symbol(f"p_{k}") for k in range(1, T + 1)}
    e = {t: sp.Symbol(f"e_{t}") for t in range(1, T + 1)}
    s, previous = {}, sp.Integer(0)
    for t in range(1, T + 1):
        s[t] = previous = p[t] + J[t] * previous
    g, later = {}, sp.Integer(0)
    for t in range(T, 0, -1):
        g[t] = e[t] + (J[t + 1] * later if gradient == "total" else 0)
        later = g[t]
    contraction = sp.expand(sum(g[t] * s[t] for t in range(1, T + 1)))
    counts = {}
    for term in sp.Add.make_args(contraction):
        coefficient, monomial = term.as_coeff_Mul()
        ks = [k for k in p if monomial.has(p[k])]
        ts = [t for t in e if monomial.has(e[t])]
        if len(ks) != 1 or len(ts) != 1:
            raise ValueError(f"{term} is not a path")
        k, t = ks[0], ts[0]
        path = e[t] * p[k] * sp.Mul(*[J[j] for j in range(k + 1, t + 1)])
        if monomial != path:
            raise ValueError(f"{term} is not a path")
        counts[(k, t)] = int(coefficient)
    return counts
