r"""Which terms of the full gradient truncated BPTT keeps, derived with SymPy (chapter 11).

Take the scalar recurrence :math:`h^{(t)} = \phi(w h^{(t-1)} + u x^{(t)})` with an
*undefined* activation :math:`\phi` and undefined loss terms
:math:`L^{(t)} = \ell_t(h^{(t)})`, so that what is shown holds for every
differentiable activation and loss. The gradient of :math:`L = \sum_t L^{(t)}` is the
sum over the paths :math:`(t, s)`, :math:`1 \le s \le t \le T` (chapter 7):

.. math::

    \frac{dL}{dw} = \sum_{t=1}^{T} \sum_{s=1}^{t} \ell_t'(h^{(t)})
        \Big(\prod_{j=t}^{s+1} \frac{\partial h^{(j)}}{\partial h^{(j-1)}}\Big)
        \frac{\partial^+ h^{(s)}}{\partial w}.

TBPTT(:math:`k_1, k_2`) is *defined* by stopping the gradient: for each block
(losses of steps ``first .. end``) the window ``start .. end`` is unrolled again from
a new symbol :math:`c` standing for the entering state, the block's losses are
differentiated with :math:`c` held constant, and :math:`c` is then set to the true
:math:`h^{(start-1)}`. :func:`truncated_derivative` does exactly this, and
:func:`check_kept_terms` verifies that the result is the sum of the path terms
over :func:`bptt_lib.truncation.kept_paths` and nothing else, by expanding the
difference to zero.
"""

from __future__ import annotations

import sympy as sp

from ..validation import positive_int

__all__ = ["ScalarProblem", "scalar_problem", "full_derivative", "truncated_derivative", "path_term",
           "sum_of_paths", "check_kept_terms"]

w, u = sp.symbols("w u", real=True)
_z = sp.Dummy("z")


class ScalarProblem:
    """The scalar recurrence of length ``T`` with undefined :math:`\\phi` and :math:`\\ell_t` (see the module)."""

    def __init__(self, T: int):
        self.T = positive_int("T", T, high=6)
        self.phi = sp.Function("phi")
        self.ell = [None] + [sp.Function(f"ell_{t}") for t in range(1, self.T + 1)]
        self.h0 = sp.Symbol("h_0", real=True)
        self.x = [None] + [sp.Symbol(f"x_{t}", real=True) for t in range(1, self.T + 1)]
        self.h = [self.h0]
        for t in range(1, self.T + 1):
            self.h.append(self.step(self.h[-1], t))

    def step(self, h_prev, t: int):
        """:math:`\\phi(w h^{(t-1)} + u x^{(t)})` from the given previous state."""
        return self.phi(w * h_prev + u * self.x[t])

    def dphi(self, t: int):
        """:math:`\\phi'(a^{(t)})` at the true pre-activation."""
        return sp.Derivative(self.phi(_z), _z).subs(_z, w * self.h[t - 1] + u * self.x[t])

    def dell(self, t: int):
        """:math:`\\ell_t'(h^{(t)})` at the true state."""
        return sp.Derivative(self.ell[t](_z), _z).subs(_z, self.h[t])


def scalar_problem(T: int) -> ScalarProblem:
    """The scalar recurrence of length ``T`` (1 to 6) with undefined activation and losses."""
    return ScalarProblem(T)


def full_derivative(problem: ScalarProblem):
    """:math:`dL/dw` of the unrolled loss, by SymPy."""
    loss = sp.Add(*[problem.ell[t](problem.h[t]) for t in range(1, problem.T + 1)])
    return sp.diff(loss, w)


def truncated_derivative(problem: ScalarProblem, k1: int, k2: int):
    """TBPTT(``k1``, ``k2``) by its definition: each block's window unrolled from a constant, differentiated."""
    from ..truncation import windows

    total = sp.Integer(0)
    c = sp.Symbol("c", real=True)
    for start, first, end in windows(problem.T, k1, k2):
        states = {start - 1: c}
        for s in range(start, end + 1):
            states[s] = problem.step(states[s - 1], s)
        block_loss = sp.Add(*[problem.ell[t](states[t]) for t in range(first, end + 1)])
        total += sp.diff(block_loss, w).subs(c, problem.h[start - 1])
    return total


def path_term(problem: ScalarProblem, t: int, s: int):
    r"""The path :math:`(t, s)`.

    :math:`\ell_t'(h^{(t)}) \prod_{j=t}^{s+1} \phi'(a^{(j)})\, w \cdot \phi'(a^{(s)})\, h^{(s-1)}`.
    """
    factor = sp.Mul(*[problem.dphi(j) * w for j in range(t, s, -1)])
    return problem.dell(t) * factor * problem.dphi(s) * problem.h[s - 1]


def sum_of_paths(problem: ScalarProblem, pairs) -> sp.Expr:
    """The sum of :func:`path_term` over ``pairs`` ``(t, s)``."""
    return sp.Add(*[path_term(problem, t, s) for t, s in pairs])


def _zero(expr) -> bool:
    return sp.expand(sp.expand(expr).doit()) == 0


def check_kept_terms(T: int, k1: int, k2: int) -> bool:
    """True if, for the scalar recurrence of length ``T``, the TBPTT(``k1``, ``k2``) derivative equals the sum of
    the path terms over :func:`bptt_lib.truncation.kept_paths` (and the full derivative the sum over all paths)."""
    from ..truncation import kept_paths

    problem = scalar_problem(T)
    all_pairs = [(t, s) for t in range(1, T + 1) for s in range(1, t + 1)]
    full_ok = _zero(full_derivative(problem) - sum_of_paths(problem, all_pairs))
    kept_ok = _zero(truncated_derivative(problem, k1, k2) - sum_of_paths(problem, sorted(kept_paths(T, k1, k2))))
    return bool(full_ok and kept_ok)
