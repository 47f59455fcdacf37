r"""Backpropagation through time in vector form, derived component by component.

The network is the book's RNN (Goodfellow, Bengio & Courville, ch. 10) for one
example, unrolled over ``T`` steps:

.. math::

    a^{(t)} = b + W h^{(t-1)} + U x^{(t)}, \quad h^{(t)} = \tanh a^{(t)},

    o^{(t)} = c + V h^{(t)}, \quad \hat y^{(t)} = \operatorname{softmax}(o^{(t)}),

    L = \sum_{t=1}^{T} -\log \hat y^{(t)}_{y^{(t)}}.

Three derivations live here.

*The softmax Jacobian* (:func:`softmax_jacobian`, :func:`nll_gradient_by_jacobian`):
:math:`\partial \hat y / \partial o = \operatorname{diag}(\hat y) - \hat y \hat y^\top`,
and the chain rule through it turns :math:`\nabla_{\hat y} L = -e_y / \hat y_y`
into :math:`\nabla_o L = \hat y - e_y`.

*BPTT, component by component* (:func:`unrolled_rnn`,
:func:`componentwise_gradients`, :func:`compact_gradients`, :func:`prove`):
SymPy differentiates the fully unrolled scalar loss with respect to every entry
of every parameter and of every hidden state; the results are proven equal to
the compact vector forms

.. math::

    \nabla_{h^{(T)}} L = V^\top \nabla_{o^{(T)}} L,

    \nabla_{h^{(t)}} L = W^\top \operatorname{diag}\big(1 - (h^{(t+1)})^2\big) \nabla_{h^{(t+1)}} L
        + V^\top \nabla_{o^{(t)}} L,

    \nabla_c L = \sum_t \nabla_{o^{(t)}} L, \quad
    \nabla_V L = \sum_t \nabla_{o^{(t)}} L\, h^{(t)\top},

    \nabla_b L = \sum_t \operatorname{diag}\big(1 - (h^{(t)})^2\big) \nabla_{h^{(t)}} L,

    \nabla_W L = \sum_t \operatorname{diag}\big(1 - (h^{(t)})^2\big) \nabla_{h^{(t)}} L\, h^{(t-1)\top},

    \nabla_U L = \sum_t \operatorname{diag}\big(1 - (h^{(t)})^2\big) \nabla_{h^{(t)}} L\, x^{(t)\top}.

*The order of the factors* (:func:`written_order`, :data:`ORDERS`): a lecture
source writes the recursion as :math:`W^\top (\nabla_{h^{(t+1)}} L)\,
\operatorname{diag}(1 - (h^{(t+1)})^2)`, which is undefined for ``H > 1``; the
repairs that keep the diagonal to the left of :math:`W^\top` give a different,
wrong vector, and :func:`prove` with ``order="diag_after"`` says so.

The symbols reuse :func:`bptt_lib.derive.unrolling.unrolled_symbols`. Each
hidden state :math:`h^{(t)}` also has a *state symbol*, so that expressions can
be written, and compared, in terms of the states the forward pass stores.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import sympy as sp

from . import softmax_nll
from .unrolling import unroll, unrolled_symbols

__all__ = [
    "softmax_jacobian", "prove_softmax_jacobian", "nll_gradient_by_jacobian", "prove_nll_chain",
    "onehot_nll", "prove_onehot_nll",
    "unrolled_rnn", "in_states", "in_probabilities", "readable", "to_leaves",
    "componentwise_gradients", "compact_gradients", "ORDERS", "derivation", "prove",
    "written_order", "written_order_repairs",
]

GRADIENTS = ("o", "h", "c", "b", "V", "W", "U")
"""The gradients derived here: the logits and hidden states at every step, then the parameters."""

ORDERS = {
    "correct": r"W^\top \operatorname{diag}(1 - (h^{(t+1)})^2)\, \nabla_{h^{(t+1)}} L",
    "diag_after": r"\operatorname{diag}(1 - (h^{(t+1)})^2)\, W^\top \nabla_{h^{(t+1)}} L",
}
"""The recursion's first term in the two orders :func:`compact_gradients` can build."""


def _check_int(name: str, value, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(
            f"{name} must be an int from {low} to {high} (explicit symbolic sizes stay small); got {value!r}"
        )


def _column(name: str, n: int, time: int | None = None, **assumptions) -> sp.Matrix:
    sup = "" if time is None else f"^{{({time})}}"
    return sp.Matrix(n, 1, lambda i, _: sp.Symbol(f"{name}{sup}_{{{i + 1}}}", **assumptions))


def _diag(column: sp.Matrix) -> sp.Matrix:
    return sp.diag(*list(column))


def _tanh_jacobian(state: sp.Matrix) -> sp.Matrix:
    r""":math:`\operatorname{diag}(1 - h^2)` for a column of state symbols."""
    return _diag(state.applyfunc(lambda h: 1 - h**2))


# --- the softmax Jacobian -------------------------------------------------------------


def softmax_jacobian(n_classes: int = 3) -> tuple[sp.Matrix, sp.Matrix]:
    r"""The Jacobian :math:`\partial \hat y / \partial o` of the softmax, two ways.

    Returns
    -------
    (componentwise, compact) : tuple of sympy.Matrix, (K, K)
        SymPy's entry-by-entry derivative of
        :func:`bptt_lib.derive.softmax_nll.softmax`, and
        :math:`\operatorname{diag}(\hat y) - \hat y \hat y^\top` with :math:`\hat y`
        the same softmax expression.
    """
    o = softmax_nll.logits(n_classes)
    yhat = softmax_nll.softmax(o)
    return yhat.jacobian(o), _diag(yhat) - yhat * yhat.T


def prove_softmax_jacobian(n_classes: int = 3) -> bool:
    r"""True when SymPy simplifies the difference of the two forms of :func:`softmax_jacobian` to zero."""
    componentwise, compact = softmax_jacobian(n_classes)
    return sp.simplify(componentwise - compact) == sp.zeros(n_classes, n_classes)


def nll_gradient_by_jacobian(n_classes: int, target: int) -> tuple[sp.Matrix, sp.Matrix]:
    r"""The gradient of :math:`L = -\log \hat y_y` with respect to the logits, by the chain rule.

    Returns
    -------
    grad_yhat : sympy.Matrix, (K, 1)
        :math:`\nabla_{\hat y} L = -e_y / \hat y_y`, in terms of :math:`\hat y` symbols.
    grad_o : sympy.Matrix, (K, 1)
        :math:`J^\top \nabla_{\hat y} L` with :math:`J = \operatorname{diag}(\hat y) - \hat y \hat y^\top`,
        simplified: :math:`\hat y - e_y` (uses only :math:`\hat y_y \neq 0`, never that
        the entries sum to one).
    """
    _check_int("n_classes", n_classes, 2, 5)
    _check_int("target", target, 0, n_classes - 1)
    p = _column(r"\hat{y}", n_classes, positive=True)
    grad_yhat = sp.Matrix([-1 / p[k] if k == target else 0 for k in range(n_classes)])
    J = _diag(p) - p * p.T
    return grad_yhat, (J.T * grad_yhat).applyfunc(sp.cancel)


def prove_nll_chain(n_classes: int = 3) -> bool:
    r"""Prove, for every target, that :math:`J^\top \nabla_{\hat y} L` is :math:`\hat y - e_y`.

    The symbolic :math:`\hat y` of :func:`nll_gradient_by_jacobian` is replaced
    by the softmax of the logits, and the result is compared with SymPy's
    direct derivative :func:`bptt_lib.derive.softmax_nll.gradient_componentwise`.
    """
    _check_int("n_classes", n_classes, 2, 5)
    o = softmax_nll.logits(n_classes)
    yhat = softmax_nll.softmax(o)
    p = _column(r"\hat{y}", n_classes, positive=True)
    for target in range(n_classes):
        _, grad_o = nll_gradient_by_jacobian(n_classes, target)
        onehot = sp.Matrix([int(k == target) for k in range(n_classes)])
        if grad_o != p - onehot:
            return False
        by_chain = grad_o.xreplace(dict(zip(p, yhat)))
        if sp.simplify(by_chain - softmax_nll.gradient_componentwise(o, target)) != sp.zeros(n_classes, 1):
            return False
    return True


# --- the unrolled network ----------------------------------------------------------------


def unrolled_rnn(T: int = 2, n_in: int = 1, n_hidden: int = 2, n_out: int = 2) -> SimpleNamespace:
    r"""The RNN for one example unrolled over ``T`` steps, with explicit sizes.

    Parameters
    ----------
    T : int
        Number of steps, 1 to 3.
    n_in, n_hidden, n_out : int
        ``D`` (1 to 2), ``H`` (1 to 3) and ``K`` (2 to 3).

    Returns
    -------
    SimpleNamespace
        Leaves ``W`` (H, H), ``U`` (H, D), ``b`` (H, 1), ``V`` (K, H), ``c`` (K, 1),
        ``h0`` (H, 1), ``x`` (list of T columns (D, 1)); ``e`` (list of T
        columns (K, 1)): ``e[t - 1]`` stands for the one-hot target
        :math:`e_{y^{(t)}}`, so one derivation covers every target sequence.
        ``states``: ``states[t]`` is a column of symbols that *stands for*
        :math:`h^{(t)}` (``states[0]`` is ``h0``). ``yhat``: ``yhat[t - 1]`` is a
        column of symbols for :math:`\hat y^{(t)}`, ``E[t - 1]`` one for
        :math:`e^{o^{(t)}}` (positive). ``step[t]``: :math:`\tanh(b + W h^{(t-1)} + U x^{(t)})`
        with :math:`h^{(t-1)}` the state symbols (``step[0]`` is ``None``).
        ``h``: the states written out in the leaves (:func:`bptt_lib.derive.unrolling.unroll`).
        ``loss``: the scalar :math:`L = \sum_t \big(-e^{(t)\top} o^{(t)} + \log \sum_k e^{o^{(t)}_k}\big)`
        in the leaves (see :func:`onehot_nll`).
    """
    _check_int("T", T, 1, 3)
    _check_int("n_in", n_in, 1, 2)
    _check_int("n_hidden", n_hidden, 1, 3)
    _check_int("n_out", n_out, 2, 3)
    sym = unrolled_symbols(T, n_in, n_hidden)
    H, K = n_hidden, n_out
    V = sp.Matrix(K, H, lambda i, j: sp.Symbol(f"V_{{{i + 1}{j + 1}}}", real=True))
    c = _column("c", K, real=True)
    states = [sym.h0] + [_column("h", H, t, real=True) for t in range(1, T + 1)]
    step = [None] + [
        (sym.b + sym.W * states[t - 1] + sym.U * sym.x[t - 1]).applyfunc(sp.tanh) for t in range(1, T + 1)
    ]
    h = unroll(sym)
    e = [_column("e", K, t, real=True) for t in range(1, T + 1)]
    loss = sum((onehot_nll(c + V * h[t], e[t - 1]) for t in range(1, T + 1)), sp.Integer(0))
    return SimpleNamespace(
        W=sym.W, U=sym.U, b=sym.b, V=V, c=c, h0=sym.h0, x=sym.x, e=e,
        states=states, step=step, h=h, loss=loss,
        yhat=[_column(r"\hat{y}", K, t, positive=True) for t in range(1, T + 1)],
        E=[_column("E", K, t, positive=True) for t in range(1, T + 1)],
        T=T, D=n_in, H=H, K=K,
    )


def onehot_nll(o: sp.Matrix, e: sp.Matrix) -> sp.Expr:
    r"""The loss :math:`-e^\top o + \log \sum_k e^{o_k}` for logits ``o`` and a one-hot column ``e``.

    For :math:`e = e_y` this is :func:`bptt_lib.derive.softmax_nll.nll`, since
    :math:`-\log(e^{o_y} / S) = -o_y + \log S` for real logits
    (:func:`prove_onehot_nll`). Keeping ``e`` symbolic lets one derivation cover
    every target, and the form has no :math:`1 / \hat y_y` to cancel.
    """
    return -(e.T * o)[0, 0] + sp.log(sum(sp.exp(ok) for ok in o))


def prove_onehot_nll(n_classes: int = 3) -> bool:
    """True when :func:`onehot_nll` with ``e = onehot(y)`` equals ``softmax_nll.nll`` for every ``y``."""
    _check_int("n_classes", n_classes, 2, 5)
    o = softmax_nll.logits(n_classes)
    for target in range(n_classes):
        e = sp.Matrix([int(k == target) for k in range(n_classes)])
        if sp.simplify(sp.expand_log(softmax_nll.nll(o, target) - onehot_nll(o, e), force=True)) != 0:
            return False
    return True


def _check_rnn(rnn) -> None:
    if not isinstance(rnn, SimpleNamespace) or not hasattr(rnn, "step") or not hasattr(rnn, "loss"):
        raise TypeError(f"rnn must be the namespace returned by unrolled_rnn(); got {type(rnn).__name__}")


def _logits_in_states(rnn: SimpleNamespace, t: int) -> sp.Matrix:
    return rnn.c + rnn.V * rnn.states[t]


def in_states(rnn: SimpleNamespace, expr):
    r"""Rewrite an expression in the leaves in terms of the state symbols and :math:`E = e^{o}`.

    Every :math:`\tanh(a^{(t)}_i)` becomes the state symbol :math:`h^{(t)}_i`
    (earliest step first, so that nested states are found), and every
    :math:`e^{m\, o^{(t)}_k}` becomes :math:`(E^{(t)}_k)^m`. A derivative of the
    loss is then a rational function of the symbols, which :func:`sympy.cancel`
    reduces to zero exactly when it is zero.
    """
    _check_rnn(rnn)
    for t in range(1, rnn.T + 1):
        expr = expr.xreplace(dict(zip(rnn.step[t], rnn.states[t])))
    logits = [(_logits_in_states(rnn, t), rnn.E[t - 1]) for t in range(1, rnn.T + 1)]

    def power_of_E(arg):
        arg = sp.expand(arg)
        for o, E in logits:
            for k in range(rnn.K):
                m = arg.coeff(rnn.c[k])
                if m != 0 and sp.expand(arg - m * o[k]) == 0:
                    return E[k] ** m
        return sp.exp(arg)

    return expr.replace(sp.exp, power_of_E)


def to_leaves(rnn: SimpleNamespace, expr):
    """Replace every state symbol :math:`h^{(t)}_i` (``t >= 1``) by its expression in the leaves."""
    _check_rnn(rnn)
    return expr.xreplace({s: h for t in range(1, rnn.T + 1) for s, h in zip(rnn.states[t], rnn.h[t])})


def _loss_from(rnn: SimpleNamespace, t: int) -> sp.Expr:
    r"""The part of :math:`L` that depends on :math:`h^{(t)}`, with :math:`h^{(t)}` the state symbols."""
    total, h = sp.Integer(0), rnn.states[t]
    for tau in range(t, rnn.T + 1):
        if tau > t:
            h = rnn.step[tau].xreplace(dict(zip(rnn.states[tau - 1], h)))
        total += onehot_nll(rnn.c + rnn.V * h, rnn.e[tau - 1])
    return total


def componentwise_gradients(rnn: SimpleNamespace) -> dict:
    r"""SymPy's derivatives of the unrolled loss, entry by entry, with no chain rule supplied.

    Returns
    -------
    dict
        ``"c"``, ``"b"``, ``"V"``, ``"W"``, ``"U"``: matrices of each
        parameter's shape; entry ``(i, j)`` of ``grads["W"]`` is
        :math:`\partial L / \partial W_{ij}` of :func:`bptt_lib.rnn.loss`, in the leaves.
        ``"h"``: list over ``t = 1..T`` of :math:`\partial L / \partial h^{(t)}_i`,
        where :math:`h^{(t)}` is held as its state symbol and the later states
        are written out in it. ``"o"``: likewise for the logits (only
        :math:`L^{(t)}` depends on :math:`o^{(t)}`).
    """
    _check_rnn(rnn)
    L = rnn.loss
    grads = {
        name: getattr(rnn, name).applyfunc(lambda entry: sp.diff(L, entry)) for name in ("c", "b", "V", "W", "U")
    }
    grads["h"] = []
    grads["o"] = []
    for t in range(1, rnn.T + 1):
        L_t = _loss_from(rnn, t)
        grads["h"].append(rnn.states[t].applyfunc(lambda s, L_t=L_t: sp.diff(L_t, s)))
        o = _logits_in_states(rnn, t)
        o_sym = _column("o", rnn.K, t, real=True)
        L_o = onehot_nll(o_sym, rnn.e[t - 1])
        d = o_sym.applyfunc(lambda entry, L_o=L_o: sp.diff(L_o, entry))
        grads["o"].append(d.xreplace(dict(zip(o_sym, o))))
    return grads


def compact_gradients(rnn: SimpleNamespace, order: str = "correct") -> dict:
    r"""The compact vector forms of BPTT, in the state symbols and the :math:`\hat y` symbols.

    Parameters
    ----------
    rnn : SimpleNamespace
        From :func:`unrolled_rnn`.
    order : {"correct", "diag_after"}
        The order of the recursion's first term (see :data:`ORDERS`):
        :math:`W^\top \operatorname{diag}(1 - h^2)\, g` or the wrong
        :math:`\operatorname{diag}(1 - h^2)\, W^\top g`.

    Returns
    -------
    dict
        Same keys and shapes as :func:`componentwise_gradients`. These are the
        formulas the generated kernels compute; every ``h`` here is a state
        symbol and every :math:`\hat y^{(t)}` a symbol, the quantities the forward
        pass stores.
    """
    _check_rnn(rnn)
    if order not in ORDERS:
        raise ValueError(f"order must be one of {sorted(ORDERS)}; got {order!r}")
    T, W, V = rnn.T, rnn.W, rnn.V
    grad_o = [rnn.yhat[t - 1] - rnn.e[t - 1] for t in range(1, T + 1)]
    grad_h = [None] * (T + 1)
    grad_h[T] = V.T * grad_o[T - 1]
    for t in range(T - 1, 0, -1):
        D_next = _tanh_jacobian(rnn.states[t + 1])
        through_next = W.T * D_next * grad_h[t + 1] if order == "correct" else D_next * W.T * grad_h[t + 1]
        grad_h[t] = through_next + V.T * grad_o[t - 1]
    grad_a = [None] + [_tanh_jacobian(rnn.states[t]) * grad_h[t] for t in range(1, T + 1)]
    steps = range(1, T + 1)
    return {
        "o": grad_o,
        "h": grad_h[1:],
        "c": sum((grad_o[t - 1] for t in steps), sp.zeros(rnn.K, 1)),
        "b": sum((grad_a[t] for t in steps), sp.zeros(rnn.H, 1)),
        "V": sum((grad_o[t - 1] * rnn.states[t].T for t in steps), sp.zeros(rnn.K, rnn.H)),
        "W": sum((grad_a[t] * rnn.states[t - 1].T for t in steps), sp.zeros(rnn.H, rnn.H)),
        "U": sum((grad_a[t] * rnn.x[t - 1].T for t in steps), sp.zeros(rnn.H, rnn.D)),
    }


def in_probabilities(rnn: SimpleNamespace, expr):
    r"""Write ``expr`` in :math:`Z_t = \sum_k E^{(t)}_k` and :math:`\hat y^{(t)}_k = E^{(t)}_k / Z_t`.

    Every sum :math:`\sum_k E^{(t)}_k` becomes :math:`Z_t`, then every
    :math:`E^{(t)}_k` becomes :math:`Z_t \hat y^{(t)}_k`. On the set where the
    :math:`\hat y^{(t)}` sum to one this is the bijective change of variables
    :math:`E \mapsto (Z, \hat y)`, so an identity between the results for
    free :math:`\hat y` and :math:`Z` implies the identity in :math:`E`. The
    softmax denominators become :math:`Z_t`, which cancels.
    """
    for t, (p, E) in enumerate(zip(rnn.yhat, rnn.E), start=1):
        Z = sp.Symbol(f"Z_{t}", positive=True)
        expr = expr.xreplace({sum(E): Z}).xreplace({E[k]: Z * p[k] for k in range(rnn.K)})
    return expr


@functools.lru_cache(maxsize=8)
def derivation(T: int, n_in: int, n_hidden: int, n_out: int):
    """``(rnn, componentwise_gradients(rnn))`` for :func:`unrolled_rnn` of this size, cached.

    Differentiating the unrolled loss is the slow step (about a second for
    ``T = 2``), so the proofs, the readable forms and the generated evaluators
    of :mod:`bptt_lib.vector_bptt` share one derivation per size.
    """
    rnn = unrolled_rnn(T, n_in, n_hidden, n_out)
    return rnn, componentwise_gradients(rnn)


def readable(rnn: SimpleNamespace, expr):
    r"""Write a derivative of the loss in the states and the output gradients, grouped by the latter.

    After :func:`in_states` and :func:`in_probabilities`, every
    :math:`\hat y^{(t)}_k` is replaced by :math:`\varepsilon^{(t)}_k + e^{(t)}_k`, where
    :math:`\varepsilon^{(t)} = \nabla_{o^{(t)}} L = \hat y^{(t)} - e^{(t)}`; the result is
    collected by the :math:`\varepsilon^{(t)}_k`, and every :math:`(h^{(t)}_i)^2` is
    written as :math:`1 - \Delta^{(t)}_i`, where :math:`\Delta^{(t)}_i = 1 - (h^{(t)}_i)^2` is
    entry :math:`i` of the diagonal of the tanh Jacobian :math:`\Delta^{(t)}`. Every term is then a
    product along one path from a loss term :math:`L^{(t)}` to the entry.
    """
    _check_rnn(rnn)
    g = [_column(r"\varepsilon", rnn.K, t, real=True) for t in range(1, rnn.T + 1)]
    d = [_column(r"\Delta", rnn.H, t, real=True) for t in range(1, rnn.T + 1)]
    expr = sp.expand(in_probabilities(rnn, in_states(rnn, expr)))
    expr = expr.xreplace({p[k]: gt[k] + e[k] for p, gt, e in zip(rnn.yhat, g, rnn.e) for k in range(rnn.K)})
    squares = {h**2: 1 - dt[i] for h_t, dt in zip(rnn.states[1:], d) for i, h in enumerate(h_t)}
    expr = sp.expand(sp.expand(expr).subs(squares))
    symbols = [gk for gt in g for gk in gt]
    return sp.collect(expr, symbols, func=sp.factor)


def prove(T: int = 2, n_in: int = 1, n_hidden: int = 2, n_out: int = 2, order: str = "correct") -> dict:
    r"""Prove, gradient by gradient, that the componentwise derivatives equal the compact forms.

    The componentwise side is rewritten by :func:`in_states` in the state
    symbols and :math:`E^{(t)}_k = e^{o^{(t)}_k}`, then in
    :math:`\hat y^{(t)}_k = E^{(t)}_k / \sum_j E^{(t)}_j` (:func:`in_probabilities`),
    the variables of the compact side. Every entry of the difference is then a
    polynomial, and :func:`sympy.expand` decides exactly whether it is zero.
    An entry that still holds ``tanh`` or ``exp`` counts as not proven.

    Parameters
    ----------
    T, n_in, n_hidden, n_out : int
        The explicit sizes of :func:`unrolled_rnn`.
    order : {"correct", "diag_after"}
        Passed to :func:`compact_gradients`.

    Returns
    -------
    dict
        From each name in ``("o", "h", "c", "b", "V", "W", "U")`` to True if
        every entry (at every step, for ``"o"`` and ``"h"``) agrees. The
        componentwise derivatives are cached per size (:func:`derivation`), so a
        second call with another ``order`` only builds and compares the compact side.
    """
    rnn, componentwise = derivation(T, n_in, n_hidden, n_out)
    compact = compact_gradients(rnn, order)

    def equal(lhs: sp.Matrix, rhs: sp.Matrix) -> bool:
        difference = in_probabilities(rnn, in_states(rnn, lhs)) - rhs
        if difference.has(sp.tanh) or difference.has(sp.exp):
            return False
        return difference.applyfunc(sp.expand) == sp.zeros(*difference.shape)

    verdicts = {}
    for name in GRADIENTS:
        if name in ("o", "h"):
            verdicts[name] = all(equal(left, right) for left, right in zip(componentwise[name], compact[name]))
        else:
            verdicts[name] = equal(componentwise[name], compact[name])
    return verdicts


# --- the order written in the lecture source ---------------------------------------------


def _order_symbols(n_hidden: int) -> SimpleNamespace:
    _check_int("n_hidden", n_hidden, 1, 4)
    W = sp.Matrix(n_hidden, n_hidden, lambda i, j: sp.Symbol(f"W_{{{i + 1}{j + 1}}}", real=True))
    g = _column(r"g", n_hidden, real=True)
    h = _column(r"h", n_hidden, real=True)
    return SimpleNamespace(W=W, g=g, D=_tanh_jacobian(h))


def written_order(n_hidden: int = 2) -> sp.Matrix:
    r""":math:`W^\top g \operatorname{diag}(1 - h^2)` as written, :math:`g = \nabla_{h^{(t+1)}} L` a column.

    Raises
    ------
    sympy.ShapeError
        For ``n_hidden > 1``: the product of an ``(H, 1)`` column and an
        ``(H, H)`` matrix is undefined. For ``n_hidden == 1`` everything is a
        scalar and the product exists (and is right).
    """
    s = _order_symbols(n_hidden)
    return s.W.T * s.g * s.D


def written_order_repairs(n_hidden: int = 2) -> dict:
    r"""The ways to make :func:`written_order` defined, next to the correct vector.

    Returns
    -------
    dict
        ``"transpose the column"``: :math:`\big((W^\top g)^\top \operatorname{diag}(1 - h^2)\big)^\top`;
        ``"move the diagonal left"``: :math:`\operatorname{diag}(1 - h^2)\, W^\top g`;
        ``"correct"``: :math:`W^\top \operatorname{diag}(1 - h^2)\, g`. All (H, 1).
    """
    s = _order_symbols(n_hidden)
    return {
        "transpose the column": ((s.W.T * s.g).T * s.D).T,
        "move the diagonal left": s.D * s.W.T * s.g,
        "correct": s.W.T * s.D * s.g,
    }
