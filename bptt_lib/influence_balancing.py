r"""The influence-balancing task and four online learners for it (chapters 12 and 13).

The system (derived in :mod:`bptt_lib.derive.influence_balancing`): :math:`n = 23`
units, :math:`s^{(t)} = A s^{(t-1)} + \theta v` with :math:`A = (I + N)/2`,
:math:`v` ten entries :math:`+1` then thirteen :math:`-1`, :math:`s^{(0)}` all
ones, :math:`\theta^{(0)} = 1/2`, and the loss
:math:`\ell^{(t)} = (s^{(t)}_1 - 1)^2/2` at every step. The optimum is
:math:`\theta^* = -1/6`. A learner sees one step at a time and changes
:math:`\theta` by plain SGD, :math:`\theta \leftarrow \theta - \eta\, g`, where
:math:`g` is its estimate of the gradient:

- :func:`rtrl`: exact forward sensitivity :math:`J^{(t)} = A J^{(t-1)} + v`,
  :math:`g = (s_1 - 1) J_1`, an update every step;
- :func:`tbptt`: truncated BPTT with window ``k``: every ``k`` steps the block's
  losses are backpropagated through the block only, then one update;
- :func:`artbp`: random truncation with probability ``c`` after every step and the
  compensation :math:`1/(1-c)` on every boundary the gradient crosses; an
  update at every truncation;
- :func:`uoro`: the rank-one unbiased estimate :math:`\tilde s\, \tilde\theta` of
  :math:`J` (Tallec & Ollivier 2018) with the variance-reducing scalars
  :math:`\rho_0, \rho_1`, an update every step.

Every learner has the signature ``learner(lr, steps, seeds=(0,), *, ...) -> Run``
and runs all seeds at once (a batch axis of independent runs; a seed's run does
not depend on which other seeds are in the batch). Runs whose :math:`|\theta|`
exceeds :data:`DIVERGED` are frozen there and counted as diverged.

Truncated BPTT and ARTBP are computed in forward mode inside each window (a
sensitivity restarted at every truncation, multiplied by the compensation factor
on every boundary it crosses): on this linear system that is exactly the sum
the backward pass over the window computes (:func:`window_gradient_backward`
does it the backward way; a test compares the two).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .derive import influence_balancing as derive
from .validation import positive_int, positive_number

__all__ = ["A", "V", "N_UNITS", "THETA0", "THETA_STAR", "DIVERGED", "TOLERANCE", "Run",
           "rtrl", "tbptt", "artbp", "uoro", "uoro_step", "states", "forward_sensitivity",
           "window_gradient_backward", "window_gradient_forward",
           "outcome", "clear_margins", "outcome_table", "plot_runs", "plot_sensitivities"]

_A_SYM, _V_SYM = derive.system()
A = np.array(_A_SYM.tolist(), dtype=float)
"""The matrix :math:`A = (I + N)/2` (23, 23), from the derivation.

:meta hide-value:
"""
V = np.array(_V_SYM.tolist(), dtype=float)[:, 0]
"""The vector :math:`v` (23,): ten ones, then thirteen minus ones.

:meta hide-value:
"""
N_UNITS = A.shape[0]
THETA0 = float(derive.THETA0)
THETA_STAR = float(derive.optimum())
"""The optimum :math:`\\theta^* = -1/6`, derived."""
DIVERGED = 10.0
"""A run whose :math:`|\\theta|` exceeds this is stopped and counted as diverged (:math:`|\\theta^*| < 0.17`)."""
TOLERANCE = 0.05
"""A run is within reach of :math:`\\theta^*` when :math:`|\\theta - \\theta^*| \\le` this."""


@dataclass
class Run:
    """The record of one learner over a batch of seeds.

    Attributes
    ----------
    method : str
    lr : float
    steps : int
    seeds : tuple of int
    t : ndarray (R,)
        The steps at which :math:`\\theta` was recorded (0 is the start).
    theta : ndarray (R, S)
        :math:`\\theta` after step ``t[r]`` for each seed (frozen after divergence).
    diverged_at : ndarray (S,) of int
        The step at which :math:`|\\theta|` first exceeded :data:`DIVERGED`, or -1.
    first_within : ndarray (S,) of int
        The first step with :math:`|\\theta - \\theta^*| \\le` :data:`TOLERANCE`, or -1.
    final_worst : ndarray (S,)
        The largest :math:`|\\theta - \\theta^*|` over the last ``final_fraction`` of the steps (every step).
    final_fraction : float
    closest : ndarray (S,)
        The smallest :math:`|\\theta - \\theta^*|` over all steps.
    peak : ndarray (S,)
        The largest :math:`|\\theta|` over all steps (the first value beyond :data:`DIVERGED` for a diverged run).
    loss : ndarray (R, S)
        The mean loss :math:`\\ell` over the steps since the previous record.
    options : dict
        The method's own settings (``k``, ``c``, ...).
    """

    method: str
    lr: float
    steps: int
    seeds: tuple
    t: np.ndarray
    theta: np.ndarray
    diverged_at: np.ndarray
    first_within: np.ndarray
    final_worst: np.ndarray
    final_fraction: float
    closest: np.ndarray
    peak: np.ndarray
    loss: np.ndarray
    options: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        extra = ", ".join(f"{key} = {value:g}" for key, value in self.options.items())
        return f"{self.method}" + (f" ({extra})" if extra else "") + f", lr = {self.lr:g}"


class _Recorder:
    """Tracks θ, divergence, the first approach to θ* and the worst distance at the end, for S runs.

    Each step only stores θ and the error and updates the mask of runs still active; the rest
    is computed in bulk over chunks of steps (the same numbers, fewer NumPy calls per step).
    """

    def __init__(self, method, lr, steps, seeds, record_every, final_fraction, options, chunk=2048):
        self.method, self.lr, self.steps, self.seeds, self.options = method, lr, steps, tuple(seeds), options
        self.record_every, self.final_fraction = record_every, final_fraction
        S = len(self.seeds)
        self.final_start = steps - int(round(final_fraction * steps))
        self.t, self.theta, self.loss = [0], [np.full(S, THETA0)], [np.full(S, np.nan)]
        self.loss_total, self.loss_at_record = np.zeros(S), np.zeros(S)
        self.diverged_at = np.full(S, -1)
        self.first_within = np.full(S, -1)
        self.final_worst = np.zeros(S)
        self.closest = np.full(S, abs(THETA0 - THETA_STAR))
        self.peak = np.full(S, abs(THETA0))
        self.active = np.ones(S, bool)
        self.buf_theta, self.buf_err = np.empty((chunk, S)), np.empty((chunk, S))
        self.n = 0

    def after_step(self, step, theta, err):
        """Bookkeeping after ``step`` (1-based); returns the mask of runs still active."""
        self.buf_theta[self.n] = theta
        self.buf_err[self.n] = err
        self.n += 1
        self.active &= np.abs(theta) <= DIVERGED
        if self.n == len(self.buf_theta) or step == self.steps:
            self._flush(step)
        return self.active

    def _first(self, mask, steps):
        """Per run, the first of ``steps`` where ``mask`` (n, S) holds, or -1."""
        return np.where(mask.any(axis=0), steps[mask.argmax(axis=0)], -1)

    def _flush(self, last):
        n, self.n = self.n, 0
        theta, err = self.buf_theta[:n], self.buf_err[:n]
        steps = np.arange(last - n + 1, last + 1)
        over = self._first(~(np.abs(theta) <= DIVERGED), steps)
        new = (self.diverged_at < 0) & (over >= 0)
        self.diverged_at[new] = over[new]
        distance = np.abs(theta - THETA_STAR)
        self.closest = np.minimum(self.closest, distance.min(axis=0))
        self.peak = np.maximum(self.peak, np.abs(theta).max(axis=0))
        near = self._first(distance <= TOLERANCE, steps)
        new = (self.first_within < 0) & (near >= 0)
        self.first_within[new] = near[new]
        final = steps > self.final_start
        if final.any():
            self.final_worst = np.maximum(self.final_worst, distance[final].max(axis=0))
        cumulative = self.loss_total + np.cumsum(0.5 * err ** 2, axis=0)
        for i in np.flatnonzero((steps % self.record_every == 0) | (steps == self.steps)):
            self.loss.append((cumulative[i] - self.loss_at_record) / (steps[i] - self.t[-1]))
            self.loss_at_record = cumulative[i]
            self.t.append(int(steps[i]))
            self.theta.append(theta[i].copy())
        self.loss_total = cumulative[-1]

    def result(self) -> Run:
        self.final_worst[self.diverged_at >= 0] = np.inf
        return Run(self.method, self.lr, self.steps, self.seeds, np.array(self.t), np.array(self.theta),
                   self.diverged_at, self.first_within, self.final_worst, self.final_fraction,
                   self.closest, self.peak, np.array(self.loss), dict(self.options))


class _Uniforms:
    """Uniform numbers for each seed from its own generator, drawn in chunks (so runs do not depend on the batch)."""

    def __init__(self, seeds, shape=(), chunk=4096):
        self.rngs = [np.random.default_rng(s) for s in seeds]
        self.shape, self.chunk, self.pos = tuple(shape), chunk, chunk
        self.buffer = None

    def next(self) -> np.ndarray:
        if self.pos == self.chunk:
            self.buffer = np.stack([r.random((self.chunk, *self.shape)) for r in self.rngs], axis=1)
            self.pos = 0
        self.pos += 1
        return self.buffer[self.pos - 1]


def _check(lr, steps, seeds, record_every, final_fraction):
    lr = positive_number("lr", lr)
    steps = positive_int("steps", steps)
    seeds = tuple(positive_int("seed", int(s) if isinstance(s, np.integer) else s, low=0)
                  for s in np.atleast_1d(seeds).tolist())
    if not seeds:
        raise ValueError("seeds must hold at least one seed; got none")
    record_every = positive_int("record_every", record_every)
    if not 0 < final_fraction <= 1:
        raise ValueError(f"final_fraction must be in (0, 1]; got {final_fraction!r}")
    return lr, steps, seeds, record_every, float(final_fraction)


def _times_A(x: np.ndarray) -> np.ndarray:
    """``x @ A.T`` for rows ``x`` (S, n), using the structure of :math:`A = (I + N)/2`: unit ``i`` averages
    ``i`` and ``i + 1``.

    The same numbers as the matrix product (the other terms are exact zeros), without BLAS.
    """
    out = 0.5 * x
    out[:, :-1] += out[:, 1:]
    return out


def _start(S):
    return np.ones((S, N_UNITS)), np.full(S, THETA0)


def rtrl(lr, steps, seeds=(0,), *, record_every=100, final_fraction=0.2) -> Run:
    r"""Online learning with the exact forward sensitivity (real-time recurrent learning).

    :math:`J^{(t)} = A J^{(t-1)} + v` (:math:`J^{(0)} = 0`), :math:`g = (s^{(t)}_1 - 1) J^{(t)}_1`,
    :math:`\theta \leftarrow \theta - \eta g` after every step. Deterministic: every seed gives the same run.
    """
    lr, steps, seeds, record_every, final_fraction = _check(lr, steps, seeds, record_every, final_fraction)
    rec = _Recorder("RTRL", lr, steps, seeds, record_every, final_fraction, {})
    s, theta = _start(len(seeds))
    J = np.zeros_like(s)
    active = rec.active
    for step in range(1, steps + 1):
        s = _times_A(s)
        s += theta[:, None] * V
        J = _times_A(J)
        J += V
        err = s[:, 0] - 1.0
        theta = theta - lr * err * J[:, 0] * active
        active = rec.after_step(step, theta, err)
    return rec.result()


def _windowed(method, lr, steps, seeds, cut, factor, record_every, final_fraction, options):
    """Truncated learners: the sensitivity restarts after every cut and is multiplied by ``factor`` on every
    kept boundary.

    ``cut(step) -> (S,) bool`` says whether the boundary after ``step`` is cut; the
    gradient of the window's losses is accumulated and applied at the cut.
    """
    rec = _Recorder(method, lr, steps, seeds, record_every, final_fraction, options)
    s, theta = _start(len(seeds))
    J = np.zeros_like(s)          # sensitivity of s to theta within the current window
    G = np.zeros(len(seeds))      # the window's gradient so far
    active = rec.active
    for step in range(1, steps + 1):
        s = _times_A(s)
        s += theta[:, None] * V
        J = _times_A(J)
        J += V
        err = s[:, 0] - 1.0
        G += err * J[:, 0]
        cuts = cut(step)
        theta = theta - lr * G * (cuts & active)
        G = np.where(cuts, 0.0, G)
        J = np.where(cuts[:, None], 0.0, J * factor)
        active = rec.after_step(step, theta, err)
    return rec.result()


def tbptt(lr, steps, k, seeds=(0,), *, record_every=100, final_fraction=0.2) -> Run:
    r"""Truncated BPTT with window ``k``: every ``k`` steps, the block's losses backpropagated through the
    block, one update.

    The state entering the block is a constant; :math:`\theta` is fixed within a block. Deterministic.
    """
    lr, steps, seeds, record_every, final_fraction = _check(lr, steps, seeds, record_every, final_fraction)
    k = positive_int("k", k)
    S = len(seeds)
    return _windowed("TBPTT", lr, steps, seeds, lambda step: np.full(S, step % k == 0), 1.0,
                     record_every, final_fraction, {"k": k})


def artbp(lr, steps, c, seeds=(0,), *, record_every=100, final_fraction=0.2) -> Run:
    r"""ARTBP online: after every step the boundary is cut with probability ``c``; kept boundaries carry
    :math:`1/(1-c)`.

    At every cut the window's losses, backpropagated to the window's start with the
    compensation factors, give one update. Seed ``s`` draws its cuts from
    ``np.random.default_rng(s)``.
    """
    lr, steps, seeds, record_every, final_fraction = _check(lr, steps, seeds, record_every, final_fraction)
    c = _probability(c)
    if c == 0:
        raise ValueError("c must be in (0, 1) for online ARTBP (c = 0 never truncates: no update); got 0")
    draws = _Uniforms(seeds)
    return _windowed("ARTBP", lr, steps, seeds, lambda step: draws.next() < c, 1.0 / (1.0 - c),
                     record_every, final_fraction, {"c": c})


def uoro(lr, steps, seeds=(0,), *, record_every=100, final_fraction=0.2, eps=1e-7) -> Run:
    r"""UORO (Tallec & Ollivier 2018): an unbiased rank-one estimate :math:`\tilde s \tilde\theta` of
    :math:`J = ds/d\theta`.

    At each step, with :math:`\nu` a vector of independent random signs (seed ``s``
    draws them from ``np.random.default_rng(s)``),

    .. math::

        \tilde s \leftarrow \rho_0 A \tilde s + \rho_1 \nu, \qquad
        \tilde\theta \leftarrow \tilde\theta / \rho_0 + (\nu^\top v) / \rho_1,

    with :math:`\rho_0 = \sqrt{|\tilde\theta| / (\lVert A\tilde s\rVert + \epsilon)} + \epsilon` and
    :math:`\rho_1 = \sqrt{|\nu^\top v| / (\lVert \nu\rVert + \epsilon)} + \epsilon`
    (they balance the norms of the two factors, which minimises the variance the
    cross terms add); then :math:`g = (s_1 - 1)\, \tilde s_1 \tilde\theta` and
    :math:`\theta \leftarrow \theta - \eta g`. :math:`\tilde s, \tilde\theta` start at 0.
    """
    lr, steps, seeds, record_every, final_fraction = _check(lr, steps, seeds, record_every, final_fraction)
    eps = positive_number("eps", eps)
    rec = _Recorder("UORO", lr, steps, seeds, record_every, final_fraction, {})
    s, theta = _start(len(seeds))
    s_tilde = np.zeros_like(s)
    theta_tilde = np.zeros(len(seeds))
    signs = _Uniforms(seeds, (N_UNITS,))
    active = rec.active
    for step in range(1, steps + 1):
        s = _times_A(s)
        s += theta[:, None] * V
        nu = np.where(signs.next() < 0.5, -1.0, 1.0)
        s_tilde, theta_tilde = uoro_step(s_tilde, theta_tilde, nu, eps=eps)
        err = s[:, 0] - 1.0
        theta = theta - lr * err * s_tilde[:, 0] * theta_tilde * active
        active = rec.after_step(step, theta, err)
    return rec.result()


def uoro_step(s_tilde, theta_tilde, nu, *, A=A, v=V, eps=1e-7):
    r"""One UORO update of :math:`(\tilde s, \tilde\theta)` for :math:`s \leftarrow A s + \theta v`, rows are runs.

    ``s_tilde`` (S, n), ``theta_tilde`` (S,), ``nu`` (S, n) random signs; returns the new pair.
    Given the old pair, the expectation over :math:`\nu` of :math:`\tilde s \tilde\theta`
    is :math:`A \tilde s \tilde\theta + v`: the RTRL recursion, unbiased.
    """
    forward = s_tilde @ A.T
    through_theta = nu @ v
    rho0 = np.sqrt(np.abs(theta_tilde) / (np.linalg.norm(forward, axis=1) + eps)) + eps
    rho1 = np.sqrt(np.abs(through_theta) / (np.linalg.norm(nu, axis=1) + eps)) + eps
    return rho0[:, None] * forward + rho1[:, None] * nu, theta_tilde / rho0 + through_theta / rho1


def states(theta: float, steps: int, s0=None) -> np.ndarray:
    r"""The states :math:`s^{(0)}, \dots, s^{(steps)}` (steps + 1, n) for a fixed :math:`\theta` (for tests and
    checks)."""
    s = np.ones(N_UNITS) if s0 is None else np.asarray(s0, float)
    out = [s]
    for _ in range(steps):
        s = A @ s + theta * V
        out.append(s)
    return np.array(out)


def forward_sensitivity(steps: int) -> np.ndarray:
    r""":math:`J^{(t)} = ds^{(t)}/d\theta` for :math:`t = 0, \dots, steps` (steps + 1, n), the recursion RTRL runs."""
    J = np.zeros(N_UNITS)
    out = [J]
    for _ in range(steps):
        J = A @ J + V
        out.append(J)
    return np.array(out)


def _probability(c) -> float:
    if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, float, np.integer, np.floating)):
        raise TypeError(f"c must be a probability in [0, 1); got {type(c).__name__} {c!r}")
    if not 0 <= c < 1:
        raise ValueError(f"c must be a probability in [0, 1); got {c!r}")
    return float(c)


def window_gradient_backward(theta: float, s_start, length: int, factors=None) -> float:
    r"""The gradient of one window's losses by an explicit backward pass (for tests and exercises).

    The window runs ``length`` steps from the constant state ``s_start`` with a fixed
    :math:`\theta`; ``factors[i]`` (default 1) multiplies the gradient crossing the
    boundary after window step ``i + 1`` back into step ``i + 1``:
    :math:`\delta^{(i)} = (s^{(i)}_1 - 1) e_1 + f_i A^\top \delta^{(i+1)}`,
    gradient :math:`\sum_i v^\top \delta^{(i)}`.
    """
    factors = np.ones(length) if factors is None else np.asarray(factors, float)
    s, errs = np.asarray(s_start, float), []
    for _ in range(length):
        s = A @ s + theta * V
        errs.append(s[0] - 1.0)
    delta, total = np.zeros(N_UNITS), 0.0
    for i in reversed(range(length)):
        delta = (factors[i] * A.T @ delta) if i < length - 1 else delta
        delta = delta.copy()
        delta[0] += errs[i]
        total += V @ delta
    return float(total)


def window_gradient_forward(theta: float, s_start, length: int, factors=None) -> float:
    """The same gradient as :func:`window_gradient_backward`, in forward mode (what :func:`tbptt` and
    :func:`artbp` do)."""
    factors = np.ones(length) if factors is None else np.asarray(factors, float)
    s, J, total = np.asarray(s_start, float), np.zeros(N_UNITS), 0.0
    for i in range(length):
        s = A @ s + theta * V
        J = A @ J + V
        total += (s[0] - 1.0) * J[0]
        J = J * factors[i]
    return float(total)


def outcome(run: Run) -> list[str]:
    """Each seed's verdict: ``"diverged"``, ``"converged"``, ``"approached, then thrown off"``
    or ``"never approached"``.

    Converged: :math:`|\\theta - \\theta^*| \\le` :data:`TOLERANCE` at every one of the last
    ``final_fraction`` of the steps. Thrown off: within the tolerance at some step, not converged
    (including runs that diverged after approaching).
    """
    verdicts = []
    for i in range(len(run.seeds)):
        if run.final_worst[i] <= TOLERANCE:
            verdicts.append("converged")
        elif run.first_within[i] >= 0:
            verdicts.append("approached, then thrown off" + (" (diverged)" if run.diverged_at[i] >= 0 else ""))
        elif run.diverged_at[i] >= 0:
            verdicts.append("diverged")
        else:
            verdicts.append("never approached")
    return verdicts


def clear_margins(run: Run) -> np.ndarray:
    """Per seed, whether its verdict holds with a margin: every distance it rests on is at least a factor 2 from
    the threshold.

    Converged: the worst final distance is below ``TOLERANCE / 2``; not converged and not diverged: it is
    above ``2 TOLERANCE``; approached: the closest distance is below ``TOLERANCE / 2``; never approached:
    above ``2 TOLERANCE``; not diverged: the peak :math:`|\\theta|` is below ``DIVERGED / 2``. (A diverged run
    crossed ``DIVERGED`` while growing geometrically; its crossing is not a near thing.)
    """
    ok = np.ones(len(run.seeds), bool)
    half, double = TOLERANCE / 2, 2 * TOLERANCE
    diverged = run.diverged_at >= 0
    converged = run.final_worst <= TOLERANCE
    ok &= np.where(converged, run.final_worst <= half, diverged | (run.final_worst >= double))
    approached = run.first_within >= 0
    ok &= np.where(approached, run.closest <= half, run.closest >= double)
    ok &= diverged | (run.peak <= DIVERGED / 2)
    return ok


def outcome_table(runs) -> str:
    """A text table: one row per run and seed, with the verdict and the steps at which it was decided."""
    lines = []
    for run in runs:
        verdicts = outcome(run)
        counts = {v: verdicts.count(v) for v in dict.fromkeys(verdicts)}
        summary = ", ".join(f"{v}: {n} of {len(verdicts)}" for v, n in counts.items())
        margins = int(clear_margins(run).sum())
        lines.append(f"{run.label}  [{summary}; clear margins: {margins} of {len(verdicts)}]")
        short = {"converged": "C", "diverged": "D", "never approached": "N",
                 "approached, then thrown off": "T", "approached, then thrown off (diverged)": "TD"}
        lines.append("    per seed: " + "  ".join(f"{seed}:{short[v]}" for seed, v in zip(run.seeds, verdicts)))
    return "\n".join(lines)


def _thousands(value, _position=None) -> str:
    """Tick labels for step axes: 20000 as "20k"."""
    return f"{value / 1000:g}k" if value else "0"


def plot_runs(runs, *, axes=None, ylim=(-1.0, 1.5)):
    """θ against steps, one panel per run, every seed a line; θ* and θ0 dotted."""
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, len(runs), figsize=(3.2 * len(runs), 3.2), sharey=True, squeeze=False)
        axes = axes[0]
    for ax, run in zip(axes, runs):
        for i in range(len(run.seeds)):
            theta = run.theta[:, i].copy()
            if run.diverged_at[i] >= 0:
                theta[run.t > run.diverged_at[i]] = np.nan
            ax.plot(run.t, theta, lw=1, alpha=0.8)
        ax.axhline(THETA_STAR, color="k", ls=":", lw=1)
        ax.axhspan(THETA_STAR - TOLERANCE, THETA_STAR + TOLERANCE, color="k", alpha=0.08, lw=0)
        ax.set_ylim(*ylim)
        ax.set_xlabel("step $t$")
        ax.xaxis.set_major_formatter(_thousands)
        ax.set_title(run.label, fontsize=9)
    axes[0].set_ylabel(r"$\theta$")
    return axes


def plot_sensitivities(kmax: int = 80, *, axes=None):
    """Left: the terms :math:`(A^j v)_1`; right: the truncated sensitivity :math:`\\sum_{j<k}(A^j v)_1` against
    ``k``, with −6."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(7.6, 3.0))
    terms = np.array([float(derive.power_term_binomial(j)) for j in range(kmax)])
    axes[0].bar(np.arange(kmax), terms, width=0.8, color=np.where(terms > 0, "C0", "C1"))
    axes[0].set_xlabel("lag $j$")
    axes[0].set_ylabel(r"$(A^j v)_1$")
    ks = np.arange(1, kmax + 1)
    axes[1].plot(ks, np.cumsum(terms), "-", label=r"truncated, $\sum_{j<k} (A^j v)_1$")
    axes[1].axhline(float(derive.true_sensitivity()), color="k", ls=":", lw=1, label="full: $-6$")
    axes[1].axhline(0, color="0.5", lw=0.8)
    axes[1].set_xlabel("window $k$")
    axes[1].set_ylabel(r"sensitivity of $s_1$ to $\theta$")
    axes[1].legend(fontsize=8)
    return axes
