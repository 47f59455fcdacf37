r"""Products of one-step Jacobians: how a change in :math:`h^{(k)}` reaches :math:`h^{(t)}`.

For the recurrence :math:`h^{(j)} = \phi(a^{(j)})`,
:math:`a^{(j)} = W h^{(j-1)} + v^{(j)}`, where :math:`v^{(j)} = b + U x^{(j)}` is the
part of the pre-activation that does not depend on earlier states (the *input
drive*), the chain rule through the intermediate states gives

.. math::

    \frac{\partial h^{(t)}}{\partial h^{(k)}}
    &= \prod_{j=t}^{k+1} \operatorname{diag}\!\big(\phi'(a^{(j)})\big)\, W \\
    &= \operatorname{diag}\!\big(\phi'(a^{(t)})\big) W \cdots
      \operatorname{diag}\!\big(\phi'(a^{(k+1)})\big) W ,

with the factor of the latest step on the left; for tanh,
:math:`\phi'(a^{(j)}) = 1 - (h^{(j)})^2`.

Everything here is at explicit sizes (``n_hidden`` 1 to 3, ``lag = t - k`` 1
to 3): every entry is a named symbol. :func:`chain_symbols` builds the steps
twice, once with each earlier state held as its own symbol (so that one step
can be differentiated alone) and once written out in :math:`h^{(k)}` (so that
SymPy can differentiate the whole composition). :func:`prove_chain_rule_product`
and :func:`prove_step_jacobians` prove the two halves of the formula above;
:func:`prove_jacobian_product` runs both.
"""

from __future__ import annotations

from types import SimpleNamespace

import sympy as sp

from .activations import ACTIVATIONS, prove_derivative_in_output, sigmoid

__all__ = [
    "chain_symbols", "total_jacobian", "step_jacobian", "compact_step_jacobian",
    "jacobian_product", "to_leaves",
    "prove_chain_rule_product", "prove_step_jacobians", "prove_jacobian_product",
]

_PHI = {"tanh": sp.tanh, "sigmoid": sigmoid}


def _check_int(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(
            f"{name} must be an int from {low} to {high} (explicit symbolic sizes stay small); got {value!r}"
        )
    return value


def _time_label(j: int) -> str:
    return "k" if j == 0 else f"k+{j}"


def _column(name: str, j: int, n: int) -> sp.Matrix:
    return sp.Matrix(n, 1, lambda i, _: sp.Symbol(f"{name}^{{({_time_label(j)})}}_{{{i + 1}}}", real=True))


def chain_symbols(n_hidden: int = 2, lag: int = 2, activation="tanh") -> SimpleNamespace:
    r"""The steps from :math:`h^{(k)}` to :math:`h^{(k + \text{lag})}` at an explicit size.

    Parameters
    ----------
    n_hidden : int
        ``H``, from 1 to 3.
    lag : int
        ``t - k``, the number of steps, from 1 to 3.
    activation : {"tanh", "sigmoid"} or an undefined SymPy function
        :math:`\phi`. ``sympy.Function("phi")`` keeps it abstract, so that a
        proof holds for every differentiable activation.

    Returns
    -------
    SimpleNamespace
        ``W`` (H, H) and ``v`` (a list of ``lag`` columns (H, 1), ``v[j - 1]``
        is the drive of step ``k + j``): the parameters.
        ``states``: columns (H, 1) of symbols, ``states[0]`` is :math:`h^{(k)}`
        and ``states[j]`` stands for :math:`h^{(k+j)}`.
        ``a``: ``a[j]`` is :math:`a^{(k+j)} = W h^{(k+j-1)} + v^{(k+j)}` with the
        previous state as its symbol (``a[0]`` is ``None``); ``step[j]`` is
        :math:`\phi` of it, entry by entry.
        ``leaves``: ``leaves[j]`` is :math:`h^{(k+j)}` written out in
        :math:`h^{(k)}`, ``W`` and the drives (``leaves[0]`` is ``states[0]``).
        ``phi``, ``activation``, ``H``, ``lag``.
    """
    _check_int("n_hidden", n_hidden, 1, 3)
    _check_int("lag", lag, 1, 3)
    if isinstance(activation, str):
        if activation not in _PHI:
            raise ValueError(
                f"activation must be one of {sorted(_PHI)} or an undefined sympy Function; got {activation!r}"
            )
        phi = _PHI[activation]
    elif isinstance(activation, sp.core.function.UndefinedFunction):
        phi = activation
    else:
        raise TypeError(
            "activation must be a name or an undefined sympy Function such as "
            f"sympy.Function('phi'); got {activation!r}"
        )
    H = n_hidden
    W = sp.Matrix(H, H, lambda i, j: sp.Symbol(f"W_{{{i + 1}{j + 1}}}", real=True))
    states = [_column("h", j, H) for j in range(lag + 1)]
    v = [_column("v", j, H) for j in range(1, lag + 1)]
    a = [None] + [W * states[j - 1] + v[j - 1] for j in range(1, lag + 1)]
    step = [None] + [a[j].applyfunc(phi) for j in range(1, lag + 1)]
    leaves = [states[0]]
    for j in range(1, lag + 1):
        held = dict(zip(states[j - 1], leaves[j - 1]))
        leaves.append(step[j].subs(held, simultaneous=True))
    return SimpleNamespace(W=W, v=v, states=states, a=a, step=step, leaves=leaves,
                           phi=phi, activation=activation, H=H, lag=lag)


def _check_chain(chain) -> None:
    if not isinstance(chain, SimpleNamespace) or not hasattr(chain, "leaves"):
        raise TypeError("chain must be the namespace returned by chain_symbols()")


def _check_step(chain, j: int) -> None:
    _check_chain(chain)
    _check_int("j", j, 1, chain.lag)


def total_jacobian(chain: SimpleNamespace) -> sp.Matrix:
    r""":math:`\partial h^{(t)} / \partial h^{(k)}`: SymPy differentiates the whole composition, entry by entry."""
    _check_chain(chain)
    return chain.leaves[chain.lag].jacobian(chain.states[0])


def step_jacobian(chain: SimpleNamespace, j: int) -> sp.Matrix:
    r"""The componentwise Jacobian of one step, :math:`\partial h^{(k+j)} / \partial h^{(k+j-1)}`.

    SymPy differentiates ``step[j]`` with respect to the *symbol* of the
    previous state, entry by entry; the result is written in the state symbols
    and the drive.
    """
    _check_step(chain, j)
    return chain.step[j].jacobian(chain.states[j - 1])


def compact_step_jacobian(chain: SimpleNamespace, j: int) -> sp.Matrix:
    r"""The compact form :math:`\operatorname{diag}\big(\phi'(a^{(k+j)})\big)\, W` of one step's Jacobian.

    For tanh and the sigmoid the derivative is written in the step's output,
    :math:`1 - (h^{(k+j)})^2` or :math:`s^{(k+j)} (1 - s^{(k+j)})`, with the output
    as its state symbol; for an undefined :math:`\phi` it is :math:`\phi'(a^{(k+j)})`.
    """
    _check_step(chain, j)
    if isinstance(chain.activation, str):
        act = ACTIVATIONS[chain.activation]
        slopes = [act.in_output.subs(act.output, hi) for hi in chain.states[j]]
    else:
        z = sp.Dummy("z", real=True)
        slopes = [sp.diff(chain.phi(z), z).subs(z, ai) for ai in chain.a[j]]
    return sp.diag(*slopes) * chain.W


def to_leaves(chain: SimpleNamespace, expr):
    r"""Write every state symbol :math:`h^{(k+j)}`, ``j >= 1``, in ``expr`` as its expression in :math:`h^{(k)}`."""
    _check_chain(chain)
    subs = {}
    for j in range(1, chain.lag + 1):
        subs.update(zip(chain.states[j], chain.leaves[j]))
    return expr.subs(subs, simultaneous=True)


def jacobian_product(chain: SimpleNamespace, *, compact: bool = True) -> sp.Matrix:
    r"""The product :math:`J^{(t)} J^{(t-1)} \cdots J^{(k+1)}`, latest step on the left.

    With ``compact=True`` each factor is :func:`compact_step_jacobian`
    (:math:`\operatorname{diag}(1 - h^2) W` for tanh), in the state symbols;
    otherwise it is SymPy's componentwise :func:`step_jacobian`.
    """
    _check_chain(chain)
    factor = compact_step_jacobian if compact else step_jacobian
    product = sp.eye(chain.H)
    for j in range(chain.lag, 0, -1):
        product = product * factor(chain, j)
    return product


def prove_chain_rule_product(chain: SimpleNamespace) -> bool:
    r"""Prove :math:`\partial h^{(t)}/\partial h^{(k)} = J^{(t)} \cdots J^{(k+1)}` (componentwise factors, latest left).

    Both sides are written in :math:`h^{(k)}` and expanded; they must agree
    term by term. This is the chain rule through the intermediate states.
    """
    difference = total_jacobian(chain) - to_leaves(chain, jacobian_product(chain, compact=False))
    return difference.applyfunc(sp.expand) == sp.zeros(chain.H, chain.H)


def prove_step_jacobians(chain: SimpleNamespace) -> bool:
    r"""Prove that every componentwise step Jacobian equals its compact form :func:`compact_step_jacobian`.

    Two facts, each proven by SymPy: entry :math:`(i, l)` of SymPy's Jacobian is
    :math:`\phi'(a_i)\, W_{il}` (so the Jacobian is :math:`\operatorname{diag}(\phi'(a)) W`), and
    :math:`\phi'(a)` equals the derivative written in the output
    (:func:`bptt_lib.derive.activations.prove_derivative_in_output`).
    """
    _check_chain(chain)
    if isinstance(chain.activation, str) and not prove_derivative_in_output(chain.activation):
        return False
    z = sp.Dummy("z", real=True)
    slope = sp.diff(chain.phi(z), z)
    for j in range(1, chain.lag + 1):
        diag_form = sp.diag(*[slope.subs(z, ai) for ai in chain.a[j]]) * chain.W
        if (step_jacobian(chain, j) - diag_form).applyfunc(sp.expand) != sp.zeros(chain.H, chain.H):
            return False
    return True


def prove_jacobian_product(n_hidden: int = 2, lag: int = 2, activation="tanh") -> bool:
    r"""Prove :math:`\partial h^{(t)}/\partial h^{(k)} = \prod_{j=t}^{k+1} \operatorname{diag}(\phi'(a^{(j)})) W`,
    latest left.

    Runs :func:`prove_chain_rule_product` and :func:`prove_step_jacobians` on
    :func:`chain_symbols` ``(n_hidden, lag, activation)``.
    """
    chain = chain_symbols(n_hidden, lag, activation)
    return prove_chain_rule_product(chain) and prove_step_jacobians(chain)
