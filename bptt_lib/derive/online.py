r"""Learning online without going back: RTRL's whole-sensitivity update and UORO's rank-one estimate, derived.

Chapter 13 of the book (:mod:`bptt_lib.online` generates its kernels from here).

*RTRL, all parameters at once* (:func:`rtrl_symbols`, :func:`rtrl_update`,
:func:`prove_rtrl_update`). Chapter 5 derived the sensitivity recursion
:math:`S^{(t)} = \operatorname{diag}(1 - (h^{(t)})^2)\,(E^{(t)} + W S^{(t-1)})` one
parameter at a time, with the explicit part :math:`E^{(t)} = \partial^+ a^{(t)}/\partial\theta`.
Stacking the hidden layer's parameters into one vector
:math:`\theta = (\operatorname{vec} W, \operatorname{vec} U, b)` of length
:math:`P = H^2 + HD + H` and storing the sensitivity transposed, one row per
parameter direction (the rows-as-directions layout of chapter 5's tangent kernels),

.. math::

    S^{(t)\top} = \big(E^{(t)\top} + S^{(t-1)\top} W^\top\big) \odot \big(1_P\, (1 - h^{(t)} \odot h^{(t)})^\top\big),

with :math:`S^{(t-1)\top} W^\top` the implicit part of chapter 5's
``implicit_tangent``. :func:`prove_rtrl_update` checks it against SymPy's Jacobian of
the unrolled states at explicit sizes.

*UORO* (:func:`uoro_symbols`, :func:`uoro_update`, :func:`prove_uoro_step_unbiased`).
UORO (Tallec and Ollivier, 2018) carries a column :math:`\tilde s` and a row
:math:`\tilde\theta` whose product :math:`\tilde s \tilde\theta` estimates
:math:`S^{(t)}`. With :math:`J = \partial h^{(t)}/\partial h^{(t-1)}`,
:math:`M = \partial^+ h^{(t)}/\partial\theta` (the explicit part, tanh factor included)
and a column :math:`\nu` of independent random signs,

.. math::

    \tilde s \leftarrow \rho_0\, J \tilde s + \rho_1\, \nu, \qquad
    \tilde\theta \leftarrow \tilde\theta / \rho_0 + \nu^\top M / \rho_1,

for any positive :math:`\rho_0` that does not depend on :math:`\nu` and any positive
:math:`\rho_1` that is even in :math:`\nu` (:math:`\rho_1(-\nu) = \rho_1(\nu)`). Then the
expectation over :math:`\nu` of the new product is

.. math::

    \mathbb{E}_\nu\big[\tilde s_{\text{new}} \tilde\theta_{\text{new}}\big]
      = J \tilde s \tilde\theta + M,

the RTRL update of :math:`\tilde s \tilde\theta`: the cross terms are odd in :math:`\nu`
and :math:`\mathbb{E}[\nu \nu^\top] = I`. :func:`prove_uoro_step_unbiased` checks this
by averaging over every sign pattern at explicit sizes, with :math:`\rho_1` a free symbol
per pair :math:`\pm\nu`. By induction over :math:`t` (the signs of each step independent
of the past, :math:`\tilde s = 0`, :math:`\tilde\theta = 0` at the start) the expectation
of :math:`\tilde s \tilde\theta` is :math:`S^{(t)}` at every step.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import sympy as sp

from ..validation import positive_int
from . import implicit_recursion as dimr
from .rnn_step import H

__all__ = ["P", "rtrl_symbols", "rtrl_update", "packed_explicit_sensitivity", "prove_rtrl_update",
           "uoro_symbols", "uoro_update", "uoro_step_expectation", "prove_uoro_step_unbiased"]

P = sp.Symbol("P", integer=True, positive=True)
"""The number of the hidden layer's parameters, :math:`H^2 + HD + H`."""


# --- RTRL: the whole sensitivity, one row per parameter direction --------------------------------


def rtrl_symbols() -> SimpleNamespace:
    """Matrix symbols of one RTRL step: ``S_prev``, ``E``, ``D`` (P, H) and ``W`` (H, H).

    ``S_prev`` is :math:`S^{(t-1)\\top}`, ``E`` the explicit part :math:`E^{(t)\\top}`, and
    ``D`` the tanh factor :math:`1 - (h^{(t)})^2` copied to every row.
    """
    M = sp.MatrixSymbol
    return SimpleNamespace(S_prev=M("S_prev", P, H), W=M("W", H, H), E=M("E", P, H), D=M("D", P, H))


def rtrl_update(sym: SimpleNamespace | None = None) -> sp.MatrixExpr:
    r""":math:`S^{(t)\top} = (E + S^{(t-1)\top} W^\top) \odot D`.

    The implicit part is chapter 5's (:func:`bptt_lib.derive.implicit_recursion.tangent_preactivation`),
    with the tangent of the previous state replaced by the rows of :math:`S^{(t-1)\top}`;
    tanh's Jacobian is diagonal, so its factor is an elementwise product.
    """
    s = rtrl_symbols() if sym is None else sym
    tangent = dimr.tangent_symbols()
    _, implicit = dimr.tangent_preactivation(tangent)
    implicit = implicit.subs({tangent.H_dot_prev: s.S_prev, tangent.W: s.W})
    return sp.HadamardProduct(s.E + implicit, s.D)


def packed_explicit_sensitivity(rnn: SimpleNamespace, t: int) -> sp.Matrix:
    r""":math:`E^{(t)} = \partial^+ a^{(t)}/\partial\theta`, (H, P), for
    :math:`\theta = (\operatorname{vec} W, \operatorname{vec} U, b)`: the blocks
    :math:`I_H \otimes h^{(t-1)\top}`, :math:`I_H \otimes x^{(t)\top}`, :math:`I_H` side by side.
    """
    return sp.Matrix.hstack(*[dimr.explicit_sensitivity(rnn, t, key) for key in ("W", "U", "b")])


def prove_rtrl_update(n_steps: int = 2, n_hidden: int = 2, n_in: int = 1) -> bool:
    """True when :func:`rtrl_update`, run from :math:`S^{(0)} = 0`, gives SymPy's Jacobian of every unrolled state.

    At explicit sizes (``n_steps``, ``n_hidden``, ``n_in`` up to 3): the Jacobian of
    :math:`h^{(t)}` with respect to :math:`(\\operatorname{vec} W, \\operatorname{vec} U, b)`,
    transposed, against the update with its matrix symbols replaced by explicit matrices.
    """
    rnn = dimr.vector_rnn(n_steps, n_hidden, n_in)
    theta = sp.Matrix([*rnn.W, *rnn.U, *rnn.b])
    n_params = len(theta)
    sym = SimpleNamespace(S_prev=sp.MatrixSymbol("S_prev", n_params, n_hidden),
                          W=sp.MatrixSymbol("W", n_hidden, n_hidden),
                          E=sp.MatrixSymbol("E", n_params, n_hidden), D=sp.MatrixSymbol("D", n_params, n_hidden))
    update = rtrl_update(SimpleNamespace(**vars(sym)))
    S = sp.zeros(n_params, n_hidden)
    for t in range(1, n_steps + 1):
        factor = sp.ones(n_params, 1) * sp.Matrix([[1 - hi**2 for hi in rnn.h[t]]])
        values = {sym.S_prev: S, sym.W: rnn.W, sym.E: packed_explicit_sensitivity(rnn, t).T, sym.D: factor}
        S = sp.Matrix(update.xreplace(values).doit())
        direct = rnn.h[t].jacobian(theta).T
        if sp.expand(S - direct) != sp.zeros(n_params, n_hidden):
            return False
    return True


# --- UORO: a rank-one estimate of the sensitivity ------------------------------------------------


def uoro_symbols() -> SimpleNamespace:
    r"""Symbols of one UORO step for a batch, one row per example.

    ``Js`` (B, H): :math:`(J \tilde s)^\top`; ``nu`` (B, H): the signs; ``theta`` (B, P):
    :math:`\tilde\theta`; ``nuM`` (B, P): :math:`\nu^\top M`; ``rho0``, ``rho1``: the scalars
    (per example, a column in the generated code).
    """
    from .rnn_step import B
    M = sp.MatrixSymbol
    return SimpleNamespace(Js=M("Js", B, H), nu=M("nu", B, H), theta=M("theta", B, P), nuM=M("nuM", B, P),
                           rho0=sp.Symbol("rho0", positive=True), rho1=sp.Symbol("rho1", positive=True))


def uoro_update(sym: SimpleNamespace | None = None) -> tuple[sp.MatrixExpr, sp.MatrixExpr]:
    r"""The new :math:`(\tilde s, \tilde\theta)`.

    :math:`\rho_0 J\tilde s + \rho_1 \nu` and :math:`\tilde\theta/\rho_0 + \nu^\top M/\rho_1`.
    """
    s = uoro_symbols() if sym is None else sym
    return s.rho0 * s.Js + s.rho1 * s.nu, s.theta / s.rho0 + s.nuM / s.rho1


def uoro_step_expectation(n_state: int = 2, n_param: int = 2, *, rho1_even: bool = True) -> tuple[sp.Matrix, sp.Matrix]:
    r"""The mean of :math:`\tilde s_{\text{new}} \tilde\theta_{\text{new}}` over all :math:`2^n` sign patterns,
    and :math:`J\tilde s\,\tilde\theta + M`.

    Explicit sizes: :math:`J\tilde s` a column of symbols ``a``, :math:`\tilde\theta` a row
    ``q``, :math:`M` a grid ``m``, :math:`\rho_0` one positive symbol and :math:`\rho_1` one
    positive symbol ``r_k`` for each pair of patterns :math:`\pm\nu` (any even function of
    :math:`\nu`). The update is :func:`uoro_update` with its symbols replaced. With
    ``rho1_even=False`` every pattern gets its own :math:`\rho_1`, and the mean is not the
    RTRL update: the condition is needed.
    """
    n_state = positive_int("n_state", n_state, high=4)
    n_param = positive_int("n_param", n_param, high=4)
    a = sp.Matrix(n_state, 1, lambda i, _: sp.Symbol(f"a_{i + 1}", real=True))
    q = sp.Matrix(1, n_param, lambda _, j: sp.Symbol(f"q_{j + 1}", real=True))
    m = sp.Matrix(n_state, n_param, lambda i, j: sp.Symbol(f"m_{i + 1}{j + 1}", real=True))
    rho0 = sp.Symbol("rho0", positive=True)
    s_new, theta_new = uoro_update(SimpleNamespace(
        Js=sp.MatrixSymbol("Js", n_state, 1), nu=sp.MatrixSymbol("nu", n_state, 1),
        theta=sp.MatrixSymbol("theta", 1, n_param), nuM=sp.MatrixSymbol("nuM", 1, n_param),
        rho0=sp.Symbol("rho0", positive=True), rho1=sp.Symbol("rho1", positive=True)))
    total = sp.zeros(n_state, n_param)
    patterns = list(itertools.product((1, -1), repeat=n_state))
    rho1_of = {}
    for pattern in patterns:
        key = pattern if pattern[0] == 1 or not rho1_even else tuple(-v for v in pattern)   # rho1(nu) = rho1(-nu)
        rho1_of.setdefault(key, sp.Symbol(f"r_{len(rho1_of) + 1}", positive=True))
    for pattern in patterns:
        nu = sp.Matrix(n_state, 1, list(pattern))
        key = pattern if pattern[0] == 1 or not rho1_even else tuple(-v for v in pattern)
        values = {sp.MatrixSymbol("Js", n_state, 1): a, sp.MatrixSymbol("nu", n_state, 1): nu,
                  sp.MatrixSymbol("theta", 1, n_param): q, sp.MatrixSymbol("nuM", 1, n_param): nu.T * m,
                  sp.Symbol("rho0", positive=True): rho0, sp.Symbol("rho1", positive=True): rho1_of[key]}
        s_val = sp.Matrix(s_new.xreplace(values).doit())
        t_val = sp.Matrix(theta_new.xreplace(values).doit())
        total += s_val * t_val
    return sp.expand(total / len(patterns)), a * q + m


def prove_uoro_step_unbiased(n_state: int = 2, n_param: int = 2, *, rho1_even: bool = True) -> bool:
    """True when :func:`uoro_step_expectation`'s two matrices are identical after expansion."""
    mean, rtrl = uoro_step_expectation(n_state, n_param, rho1_even=rho1_even)
    return sp.expand(mean - rtrl) == sp.zeros(n_state, n_param)
