r"""The chain rule for many variables, derived with SymPy.

Two ideas of chapter 2 live here.

*The multivariable chain rule* (:func:`chain_rule`, :func:`prove_chain_rule`):
if :math:`z` depends on :math:`t` through several intermediate variables
:math:`v_1, \dots, v_n`, then

.. math::

    \frac{dz}{dt} = \sum_{i=1}^{n} \frac{\partial z}{\partial v_i} \frac{d v_i}{dt}.

*Total versus immediate derivatives in a recurrence* (:func:`scalar_rnn` and
the functions after it). For the scalar RNN
:math:`h_t = \phi(w\, h_{t-1} + u\, x_t)` the weight :math:`w` reaches
:math:`h_t` directly *and* through every earlier state. The **immediate
partial** :math:`\partial^+ h_t / \partial w` differentiates one step with its
input :math:`h_{t-1}` held fixed; the **total derivative** :math:`d h_t / dw`
follows every path. They are related by the sum over paths

.. math::

    \frac{d h_t}{d w} = \sum_{k=1}^{t}
        \Big(\prod_{j=t}^{k+1} \frac{\partial h_j}{\partial h_{j-1}}\Big)
        \frac{\partial^+ h_k}{\partial w},

with the book's product convention, latest step on the left:
:math:`\prod_{j=t}^{k+1} A_j = A_t A_{t-1} \cdots A_{k+1}` (empty, so 1, for ``k = t``).
It holds for every ``t`` by induction on the one-step recursion
:math:`d h_t / dw = \partial^+ h_t / \partial w + (\partial h_t / \partial h_{t-1})\, d h_{t-1} / dw`;
:func:`prove_sum_over_paths` checks it for explicit small ``t``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace

import sympy as sp

from ..validation import positive_int
from .activations import ACTIVATIONS, a

__all__ = [
    "t", "w", "u",
    "chain_rule", "prove_chain_rule",
    "scalar_rnn", "to_leaves", "to_states", "immediate_partial", "step_jacobian", "total_derivative",
    "implicit_part", "sum_over_paths", "prove_sum_over_paths",
    "elementwise_jacobian", "TimeIndexed",
]

t = sp.Symbol("t", real=True)
"""The variable that everything depends on in :func:`chain_rule` examples."""
w = sp.Symbol("w", real=True)
"""The recurrent weight of the scalar RNN (the scalar :math:`W`)."""
u = sp.Symbol("u", real=True)
"""The input weight of the scalar RNN (the scalar :math:`U`)."""


def _activation_function(name: str):
    """``phi`` as a function of one SymPy argument, from :data:`bptt_lib.derive.activations.ACTIVATIONS`."""
    act = ACTIVATIONS[name]
    return lambda z: act.of_a.subs(a, z)


class TimeIndexed(sp.Symbol):
    r"""A real symbol named ``h_k`` or ``x_k`` that LaTeX prints with a time superscript, :math:`h^{(k)}`.

    The *name* stays a Python identifier (``h_1``), so that kernels generated
    from expressions in these symbols take arguments ``h_0, x_1, ...``; only
    the typeset form follows the book's convention that time indices are
    superscripts in parentheses. A ``symbol_names`` setting of the LaTeX
    printer still takes precedence (a chapter may rename the states).
    """

    def _latex(self, printer):
        names = printer._settings.get("symbol_names") or {}
        if self in names:
            return names[self]
        base, _, index = self.name.partition("_")
        return f"{base}^{{({index})}}"


def _time_symbol(base: str, k: int) -> TimeIndexed:
    return TimeIndexed(f"{base}_{k}", real=True)


# --- the multivariable chain rule ---------------------------------------------------


def chain_rule(z: sp.Expr, inner: Mapping[sp.Symbol, sp.Expr], var: sp.Symbol = t) -> tuple[sp.Expr, sp.Expr]:
    r"""Differentiate a composition two ways: directly, and by the chain rule.

    Parameters
    ----------
    z : sympy expression
        The outer function, written in the intermediate symbols (the keys of ``inner``).
    inner : dict
        Maps each intermediate symbol :math:`v_i` to its expression in ``var``.
    var : sympy symbol
        The variable to differentiate with respect to (default :data:`t`).

    Returns
    -------
    (direct, by_rule) : tuple of sympy expressions
        ``direct`` is :math:`d z(v(t)) / dt` from SymPy after substituting;
        ``by_rule`` is :math:`\sum_i (\partial z / \partial v_i)(v(t)) \, d v_i / dt`.

    Examples
    --------
    >>> x, y = sp.symbols("x y", real=True)
    >>> direct, by_rule = chain_rule(x * y, {x: sp.cos(t), y: sp.exp(t)})
    >>> sp.simplify(direct - by_rule)
    0
    """
    if not isinstance(z, sp.Basic):
        raise TypeError(f"z must be a SymPy expression; got {type(z).__name__}")
    if not isinstance(inner, Mapping) or not inner:
        raise TypeError("inner must be a non-empty dict from intermediate symbols to expressions")
    if not isinstance(var, sp.Symbol):
        raise TypeError(f"var must be a SymPy Symbol; got {type(var).__name__}")
    for v in inner:
        if not isinstance(v, sp.Symbol):
            raise TypeError(f"the keys of inner must be SymPy Symbols; got {v!r}")
        if v == var:
            raise ValueError(f"the intermediate symbol {v} cannot be the variable {var} itself")
    subs = dict(inner)
    direct = sp.diff(z.subs(subs, simultaneous=True), var)
    by_rule = sum(
        (sp.diff(z, v).subs(subs, simultaneous=True) * sp.diff(v_of_t, var) for v, v_of_t in inner.items()),
        sp.Integer(0),
    )
    return direct, by_rule


def prove_chain_rule(z: sp.Expr, inner: Mapping[sp.Symbol, sp.Expr], var: sp.Symbol = t) -> bool:
    """True when SymPy simplifies ``direct - by_rule`` of :func:`chain_rule` to zero."""
    direct, by_rule = chain_rule(z, inner, var)
    return sp.simplify((direct - by_rule).doit()) == 0


# --- total versus immediate derivatives in a scalar recurrence ----------------------


def scalar_rnn(n_steps: int = 2, activation="tanh") -> SimpleNamespace:
    r"""The scalar RNN :math:`h^{(t)} = \phi(w h^{(t-1)} + u x^{(t)})` unrolled for ``n_steps`` steps.

    Parameters
    ----------
    n_steps : int
        Number of steps ``T``, from 1 to 4 (the expressions nest ``T`` deep).
    activation : {"tanh", "sigmoid"} or an undefined SymPy function
        :math:`\phi`. Passing ``sympy.Function("phi")`` keeps :math:`\phi`
        abstract, so a proof holds for every differentiable activation.

    Returns
    -------
    SimpleNamespace
        ``w``, ``u``, ``h0`` and ``x`` (tuple ``x_1 .. x_T``): the leaves.
        ``states``: symbols ``h_1 .. h_T`` that *stand for* the states, so that
        one step can be differentiated with its input held fixed. The state and
        input symbols are :class:`TimeIndexed`: named ``h_k``, ``x_k`` (valid
        Python identifiers for generated code), typeset :math:`h^{(k)}`, :math:`x^{(k)}`.
        ``step``: ``step[k]`` is :math:`\phi(w\,h_{k-1} + u\,x_k)` with
        :math:`h_{k-1}` the *symbol* (``step[0]`` is ``None``).
        ``h``: ``h[k]`` is :math:`h_k` written out in the leaves (``h[0]`` is ``h0``).
        ``phi``: the activation, ``T``: the number of steps.
    """
    n_steps = positive_int("n_steps", n_steps, low=1, high=4)
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(ACTIVATIONS)} or an undefined sympy Function; got {activation!r}"
            )
        phi = _activation_function(activation)
    elif isinstance(activation, sp.core.function.UndefinedFunction):
        phi = activation
    else:
        raise TypeError(
            "activation must be a name or an undefined sympy Function such as "
            f"sympy.Function('phi'); got {activation!r}"
        )
    h0 = _time_symbol("h", 0)
    x = tuple(_time_symbol("x", k) for k in range(1, n_steps + 1))
    states = tuple(_time_symbol("h", k) for k in range(1, n_steps + 1))
    held = (h0,) + states
    step = (None,) + tuple(phi(w * held[k - 1] + u * x[k - 1]) for k in range(1, n_steps + 1))
    h = [h0]
    for k in range(1, n_steps + 1):
        h.append(step[k].subs(held[k - 1], h[k - 1]))
    return SimpleNamespace(w=w, u=u, h0=h0, x=x, states=states, step=step, h=tuple(h), phi=phi, T=n_steps)


def _check_step(rnn: SimpleNamespace, k: int, low: int = 1) -> None:
    if not isinstance(rnn, SimpleNamespace) or not hasattr(rnn, "step"):
        raise TypeError("rnn must be the namespace returned by scalar_rnn()")
    positive_int("step", k, low=low, high=rnn.T)


def _check_wrt(rnn: SimpleNamespace, wrt: sp.Symbol) -> None:
    if wrt not in (rnn.w, rnn.u):
        raise ValueError(f"wrt must be the weight w or u; got {wrt!r}")


def to_leaves(rnn: SimpleNamespace, expr: sp.Expr) -> sp.Expr:
    """Replace each state symbol ``h_k`` (k >= 1) in ``expr`` by its expression in the leaves."""
    if not isinstance(rnn, SimpleNamespace) or not hasattr(rnn, "states"):
        raise TypeError("rnn must be the namespace returned by scalar_rnn()")
    return expr.subs({s: rnn.h[k] for k, s in enumerate(rnn.states, start=1)}, simultaneous=True)


def _in_states(rnn: SimpleNamespace, expr: sp.Expr, k: int) -> sp.Expr:
    """Write ``phi(a_k)`` as the state symbol ``h_k`` where it appears."""
    return expr.subs(rnn.step[k], rnn.states[k - 1])


def to_states(rnn: SimpleNamespace, expr: sp.Expr) -> sp.Expr:
    """Write each state ``h_k`` spelled out in the leaves as its symbol (latest first), for display."""
    if not isinstance(rnn, SimpleNamespace) or not hasattr(rnn, "states"):
        raise TypeError("rnn must be the namespace returned by scalar_rnn()")
    for k in range(rnn.T, 0, -1):
        expr = expr.subs(rnn.h[k], rnn.states[k - 1])
    return expr


def immediate_partial(rnn: SimpleNamespace, k: int, wrt: sp.Symbol = w, *, in_states: bool = False) -> sp.Expr:
    r"""The immediate partial :math:`\partial^+ h_k / \partial w`: one step, its input held fixed.

    Parameters
    ----------
    rnn : SimpleNamespace
        From :func:`scalar_rnn`.
    k : int
        The step, from 1 to ``rnn.T``.
    wrt : sympy symbol
        :data:`w` (default) or :data:`u`.
    in_states : bool
        If True, the result is written with the state symbols (for tanh,
        :math:`(1 - h_k^2)\, h_{k-1}`); otherwise in the leaves, ready to be
        compared with :func:`total_derivative`.
    """
    _check_step(rnn, k)
    _check_wrt(rnn, wrt)
    d = sp.diff(rnn.step[k], wrt)
    return _in_states(rnn, d, k) if in_states else to_leaves(rnn, d)


def step_jacobian(rnn: SimpleNamespace, k: int, *, in_states: bool = False) -> sp.Expr:
    r"""The one-step derivative :math:`\partial h_k / \partial h_{k-1}` (for tanh, :math:`(1 - h_k^2)\, w`)."""
    _check_step(rnn, k, low=2)
    d = sp.diff(rnn.step[k], rnn.states[k - 2])
    return _in_states(rnn, d, k) if in_states else to_leaves(rnn, d)


def total_derivative(rnn: SimpleNamespace, k: int, wrt: sp.Symbol = w, *, in_states: bool = False) -> sp.Expr:
    r"""The total derivative :math:`d h_k / d w`: SymPy differentiates :math:`h_k` written out in the leaves.

    With ``in_states=True`` every state that appears spelled out is written as
    its symbol afterwards, for display (the differentiation itself always
    sees the whole expression).
    """
    _check_step(rnn, k)
    _check_wrt(rnn, wrt)
    d = sp.diff(rnn.h[k], wrt)
    return to_states(rnn, d) if in_states else d


def implicit_part(rnn: SimpleNamespace, k: int, wrt: sp.Symbol = w, *, in_states: bool = False) -> sp.Expr:
    r"""What the immediate partial misses: :math:`d h_k / dw - \partial^+ h_k / \partial w`, factored."""
    d = sp.factor(total_derivative(rnn, k, wrt) - immediate_partial(rnn, k, wrt))
    return to_states(rnn, d) if in_states else d


def sum_over_paths(rnn: SimpleNamespace, k: int, wrt: sp.Symbol = w, *, in_states: bool = False) -> tuple[sp.Expr, ...]:
    r"""The terms of the sum over paths, one per step where ``wrt`` enters.

    Term ``j`` (``j = 1 .. k``) is
    :math:`\big(\prod_{i=k}^{j+1} \partial h_i / \partial h_{i-1}\big)\, \partial^+ h_j / \partial w`
    (latest step on the left),
    written in the leaves (or with the state symbols if ``in_states``). Their
    sum is the total derivative (:func:`prove_sum_over_paths`).
    """
    _check_step(rnn, k)
    _check_wrt(rnn, wrt)
    terms = []
    for j in range(1, k + 1):
        factor = sp.Mul(*[step_jacobian(rnn, i) for i in range(k, j, -1)])  # latest step first
        terms.append(factor * immediate_partial(rnn, j, wrt))
    return tuple(to_states(rnn, term) for term in terms) if in_states else tuple(terms)


def prove_sum_over_paths(n_steps: int = 2, activation="tanh", wrt: sp.Symbol = w) -> bool:
    r"""Prove :math:`d h_T / dw = \sum_k (\prod \partial h_j / \partial h_{j-1})\, \partial^+ h_k / \partial w`.

    For ``n_steps = 2`` this is
    :math:`d h_2 / dw = \partial^+ h_2 / \partial w + (\partial h_2 / \partial h_1)(d h_1 / dw)`.
    """
    rnn = scalar_rnn(n_steps, activation)
    difference = total_derivative(rnn, n_steps, wrt) - sp.Add(*sum_over_paths(rnn, n_steps, wrt))
    difference = sp.expand(difference.doit())
    return difference == 0 or sp.simplify(difference) == 0


# --- the Jacobian of an elementwise activation --------------------------------------


def elementwise_jacobian(name: str = "tanh", size: int = 3) -> tuple[sp.Matrix, sp.Matrix]:
    r"""The Jacobian of :math:`h = \phi(a)` applied entry by entry, two ways.

    Returns ``(componentwise, compact)``: SymPy's Jacobian of the vector
    :math:`(\phi(a_1), \dots, \phi(a_n))` with respect to :math:`(a_1, \dots, a_n)`,
    and :math:`\operatorname{diag}(\phi'(a_i))` with the derivative written in the
    output (``1 - h_i**2`` for tanh, ``s_i*(1 - s_i)`` for the sigmoid, with
    :math:`h_i` replaced by :math:`\phi(a_i)` so the two can be compared).
    """
    if name not in ACTIVATIONS:
        raise ValueError(f"name must be one of {sorted(ACTIVATIONS)}; got {name!r}")
    size = positive_int("size", size, low=1, high=4)
    act = ACTIVATIONS[name]
    a_vec = sp.Matrix(size, 1, lambda i, _: sp.Symbol(f"a_{i + 1}", real=True))
    out = a_vec.applyfunc(_activation_function(name))
    componentwise = out.jacobian(a_vec)
    compact = sp.diag(*[act.in_output.subs(act.output, out[i]) for i in range(size)])
    return componentwise, compact
