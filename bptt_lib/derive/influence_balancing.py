r"""The influence-balancing system of Tallec & Ollivier, derived with SymPy (chapter 12).

A linear system of :math:`n` units driven by one scalar parameter :math:`\theta`,

.. math::

    s^{(t)} = A\, s^{(t-1)} + \theta\, v, \qquad
    A = \tfrac12 (I + N), \qquad
    \ell^{(t)} = \tfrac12 \big(s^{(t)}_1 - 1\big)^2,

with :math:`N` the shift matrix (ones on the superdiagonal), so that unit
:math:`i` averages itself and unit :math:`i + 1`, and :math:`v` holding
``n_pos`` entries :math:`+1` followed by :math:`n - n_{pos}` entries
:math:`-1` (the book's case: :math:`n = 23`, :math:`n_{pos} = 10`).

Everything here is exact (rationals):

- :func:`system`: ``A`` and ``v``;
- :func:`fixed_point_first_unit`: :math:`s^*_1 = e_1^\top (I - A)^{-1} \theta v
  = 2 \theta \sum_i v_i` (``-6 theta`` in the book's case);
- :func:`optimum`: the :math:`\theta^*` with :math:`s^*_1 = 1` (``-1/6``);
- :func:`true_sensitivity`: :math:`d s^*_1 / d\theta = \sum_{j \ge 0} (A^j v)_1 = -6`;
- :func:`power_term` and :func:`power_term_binomial`: :math:`(A^j v)_1`, once as a
  matrix power and once as :math:`2^{-j} \sum_m \binom{j}{m} v_{1+m}`
  (binomial theorem: :math:`I` and :math:`N` commute and :math:`N^m v` shifts
  :math:`v` up by :math:`m`), so every term with :math:`j < n_{pos}` equals 1;
- :func:`truncated_sensitivity`: :math:`\sum_{j<k} (A^j v)_1`, what truncated
  BPTT with a window of :math:`k` steps sees at the fixed point;
- :func:`block_sensitivity`: :math:`\sum_{i=1}^{k} \sum_{j<i} (A^j v)_1`, what one block of
  TBPTT(k, k) sees in total (step :math:`i` of a block is backpropagated :math:`i` steps).
"""

from __future__ import annotations

import sympy as sp

__all__ = ["N_UNITS", "N_POSITIVE", "THETA0", "system", "fixed_point_first_unit", "optimum",
           "true_sensitivity", "power_term", "power_term_binomial", "truncated_sensitivity",
           "first_negative_window", "block_sensitivity", "first_negative_block", "neumann_inverse_identity"]

N_UNITS = 23
"""The number of units :math:`n`."""

N_POSITIVE = 10
"""How many entries of :math:`v` are :math:`+1` (the first ones); the rest are :math:`-1`."""

THETA0 = sp.Rational(1, 2)
"""The starting value of :math:`\\theta`."""


def system(n: int = N_UNITS, n_pos: int = N_POSITIVE) -> tuple[sp.Matrix, sp.Matrix]:
    """``(A, v)``: :math:`A = (I + N)/2` (n, n) and :math:`v` (n, 1), exact rationals."""
    if not 0 <= n_pos <= n:
        raise ValueError(f"n_pos must be between 0 and n = {n}; got {n_pos}")
    shift = sp.Matrix(n, n, lambda i, j: 1 if j == i + 1 else 0)
    A = (sp.eye(n) + shift) / 2
    v = sp.Matrix([1] * n_pos + [-1] * (n - n_pos))
    return A, v


def fixed_point_first_unit(theta=None, n: int = N_UNITS, n_pos: int = N_POSITIVE):
    r""":math:`s^*_1` of the fixed point :math:`s^* = A s^* + \theta v`, solved exactly (a SymPy expression in
    ``theta``)."""
    theta = sp.Symbol("theta") if theta is None else theta
    A, v = system(n, n_pos)
    s_star = (sp.eye(n) - A).LUsolve(theta * v)
    return sp.simplify(s_star[0])


def optimum(n: int = N_UNITS, n_pos: int = N_POSITIVE):
    r""":math:`\theta^*`, the unique solution of :math:`s^*_1(\theta) = 1` (the loss is zero there)."""
    theta = sp.Symbol("theta")
    (sol,) = sp.solve(sp.Eq(fixed_point_first_unit(theta, n, n_pos), 1), theta)
    return sol


def true_sensitivity(n: int = N_UNITS, n_pos: int = N_POSITIVE):
    r""":math:`d s^*_1/d\theta = e_1^\top (I - A)^{-1} v`, exact."""
    theta = sp.Symbol("theta")
    return sp.diff(fixed_point_first_unit(theta, n, n_pos), theta)


def neumann_inverse_identity(n: int = N_UNITS) -> bool:
    r"""Whether :math:`(I - A)^{-1} = 2 \sum_{m=0}^{n-1} N^m` holds exactly (so :math:`s^*_1 = 2\theta \sum_i v_i`)."""
    A, _ = system(n, 0)
    shift = 2 * A - sp.eye(n)
    series = 2 * sum((shift ** m for m in range(n)), sp.zeros(n, n))
    return (sp.eye(n) - A).inv() == series


def power_term(j: int, n: int = N_UNITS, n_pos: int = N_POSITIVE):
    r""":math:`(A^j v)_1` by the matrix power, exact."""
    A, v = system(n, n_pos)
    return (A ** j * v)[0]


def power_term_binomial(j, n: int = N_UNITS, n_pos: int = N_POSITIVE):
    r""":math:`2^{-j} \sum_{m=0}^{\min(j, n-1)} \binom{j}{m} v_{1+m}`: the same term by the binomial theorem."""
    _, v = system(n, n_pos)
    return sum((sp.binomial(j, m) * v[m] for m in range(min(j, n - 1) + 1)), sp.Integer(0)) / 2 ** j


def truncated_sensitivity(k: int, n: int = N_UNITS, n_pos: int = N_POSITIVE):
    r""":math:`\sum_{j=0}^{k-1} (A^j v)_1`: the sensitivity of :math:`s_1` to :math:`\theta` over the last ``k``
    steps only."""
    A, v = system(n, n_pos)
    total, w = sp.Integer(0), v
    for _ in range(k):
        total += w[0]
        w = A * w
    return total


def first_negative_window(n: int = N_UNITS, n_pos: int = N_POSITIVE, kmax: int = 400) -> int | None:
    """The smallest window ``k`` whose truncated sensitivity is negative (``None`` if none up to ``kmax``)."""
    A, v = system(n, n_pos)
    total, w = sp.Integer(0), v
    for k in range(1, kmax + 1):
        total += w[0]
        w = A * w
        if total < 0:
            return k
    return None


def block_sensitivity(k: int, n: int = N_UNITS, n_pos: int = N_POSITIVE):
    r""":math:`\sum_{i=1}^{k} \sum_{j<i} (A^j v)_1`: the summed truncated sensitivities of the ``k`` steps of a
    TBPTT(k, k) block."""
    A, v = system(n, n_pos)
    total, window, w = sp.Integer(0), sp.Integer(0), v
    for _ in range(k):
        window += w[0]
        total += window
        w = A * w
    return total


def first_negative_block(n: int = N_UNITS, n_pos: int = N_POSITIVE, kmax: int = 400) -> int | None:
    """The smallest block length ``k`` whose :func:`block_sensitivity` is negative (``None`` if none up to ``kmax``)."""
    A, v = system(n, n_pos)
    total, window, w = sp.Integer(0), sp.Integer(0), v
    for k in range(1, kmax + 1):
        window += w[0]
        total += window
        w = A * w
        if total < 0:
            return k
    return None
