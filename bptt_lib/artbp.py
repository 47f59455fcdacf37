r"""Anticipated Reweighted Truncated Backpropagation (ARTBP, Tallec & Ollivier 2017), chapter 12.

Truncated BPTT cuts the backward pass at fixed places and is biased. ARTBP cuts it
at random places and makes up for the cuts: after step :math:`t` the boundary
between :math:`h^{(t)}` and step :math:`t + 1` is cut with probability
:math:`c_t`, independently of the other boundaries, and a gradient that crosses a
boundary that was *not* cut is multiplied by :math:`1/(1 - c_t)`. In the
backward recursion, with :math:`\varepsilon_t \in \{0, 1\}` the cut indicators,

.. math::

    \hat g^{(t)} = \nabla_{h^{(t)}} L^{(t)}
        + \frac{1 - \varepsilon_t}{1 - c_t}\, J^{(t+1)\top} \hat g^{(t+1)},

and since :math:`\varepsilon_t` is independent of :math:`\hat g^{(t+1)}` and
:math:`\mathbb E[(1 - \varepsilon_t)/(1 - c_t)] = 1`, the expectation of
:math:`\hat g^{(t)}`, and of every parameter gradient built linearly from the
:math:`\hat g^{(t)}`, is the full BPTT gradient.

Indexing: ``c`` is a float (the same probability after every step) or an array of
length ``T`` whose entry ``c[t - 1]`` is :math:`c_t`, the probability of a cut after
step ``t``. The entry for the last step never matters within one sequence (nothing
comes after it).

The implementation is written once over the cell interface
(:mod:`bptt_lib.models`): the sequence is split into windows at the cuts; each
window runs :func:`bptt_lib.bptt.forward` from the state the previous window
ended in, then :func:`bptt_lib.bptt.bptt` over its stored states with no
gradient arriving from after it. The compensation factors inside a window are
applied by :class:`CompensatedCell`, a thin wrapper whose ``step_vjp`` scales
the ``dh_prev`` it returns; nothing in the core changes.
"""

from __future__ import annotations

import itertools

import numpy as np

from . import bptt
from .models import full_grads, get_model
from .validation import check_finite_result, positive_int

__all__ = ["CompensatedCell", "check_c", "draw_cuts", "compensation_factors", "windows", "pattern_probability",
           "artbp_grads", "artbp_grads_for_cuts", "enumerate_patterns", "expected_grads", "exact_moments",
           "flatten", "relative_error", "mean_error_curve", "plot_mean_error", "plot_variance"]


class CompensatedCell:
    """A cell whose backward step multiplies the gradient it sends to the previous state by a factor.

    ``factors[j]`` scales the ``dh_prev`` of step ``j`` of the window (0-based), that is
    the gradient crossing back from step ``j`` into the state before it. Everything else is
    the wrapped cell's. :func:`bptt_lib.bptt.bptt` calls ``step_vjp`` once per step, last step
    first; the wrapper counts the calls (:meth:`done` says whether every step was visited).
    """

    def __init__(self, cell, factors):
        self._cell = cell
        self._factors = np.asarray(factors, dtype=float)
        self._next = len(self._factors)

    def __getattr__(self, name):
        return getattr(self._cell, name)

    def step_vjp(self, params, h_prev, h, dh):
        """The wrapped cell's ``(da, dh_prev)`` with ``dh_prev`` multiplied by this step's factor."""
        if self._next == 0:
            raise RuntimeError("CompensatedCell.step_vjp called more often than the window has steps")
        self._next -= 1
        da, dh_prev = self._cell.step_vjp(params, h_prev, h, dh)
        return da, dh_prev * self._factors[self._next]

    def done(self) -> bool:
        """Whether ``step_vjp`` was called exactly once for every step."""
        return self._next == 0


def check_c(c, T: int) -> np.ndarray:
    """``c`` as an array of ``T`` probabilities in [0, 1); errors name ``c``, what is expected and what was given."""
    if isinstance(c, (bool, np.bool_, str, bytes)):
        raise TypeError(f"c must be a probability in [0, 1) or an array of T = {T} of them; "
                        f"got {type(c).__name__} {c!r}")
    if isinstance(c, (int, float, np.integer, np.floating)):
        arr = np.full(T, float(c))
    else:
        try:
            arr = np.asarray(c, dtype=float)
        except (TypeError, ValueError):
            raise TypeError(f"c must be a probability in [0, 1) or an array of T = {T} of them; "
                            f"got {type(c).__name__}") from None
        if arr.shape != (T,):
            raise ValueError(f"c must be a probability or an array of shape ({T},), one per step (T = {T}); "
                             f"got shape {arr.shape}")
    bad = ~((arr >= 0) & (arr < 1))
    if bad.any():
        i = int(np.argmax(bad))
        where = "" if np.ndim(c) == 0 else f" (entry {i})"
        raise ValueError(f"c must be a probability in [0, 1): 1 would cut every boundary and leave "
                         f"1/(1 - c) undefined; got {float(arr[i])!r}{where}")
    return arr


def draw_cuts(c, T: int, rng: np.random.Generator) -> np.ndarray:
    """One draw of the cut indicators, bool (T,): ``cuts[t - 1]`` is whether the boundary after step ``t`` is cut.

    ``T`` uniform numbers from ``rng``, one per step, whatever ``c`` is.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)); "
                        f"got {type(rng).__name__}")
    return rng.random(T) < check_c(c, T)


def compensation_factors(c, cuts) -> np.ndarray:
    """``(1 - cut_t) / (1 - c_t)`` for each boundary: 0 where cut, the compensation where kept."""
    cuts = np.asarray(cuts, dtype=bool)
    c = check_c(c, len(cuts))
    return np.where(cuts, 0.0, 1.0 / (1.0 - c))


def windows(cuts) -> list[tuple[int, int]]:
    """The windows ``[(a, b), ...]`` (0-based steps ``a`` to ``b - 1``) between the cuts, in order.

    A cut after the last step ends nothing new; every step belongs to exactly one window.
    """
    cuts = np.asarray(cuts, dtype=bool)
    T = len(cuts)
    ends = [int(t) + 1 for t in np.flatnonzero(cuts[:-1])] + [T]
    starts = [0] + ends[:-1]
    return list(zip(starts, ends))


def pattern_probability(c, cuts) -> float:
    """The probability of the cut pattern ``cuts[:T - 1]`` (the last entry does not matter): a product over
    boundaries."""
    cuts = np.asarray(cuts, dtype=bool)
    c = check_c(c, len(cuts))[:-1]
    return float(np.prod(np.where(cuts[:-1], c, 1.0 - c)))


def artbp_grads_for_cuts(params: dict, x, y, c, cuts, *, model="rnn", state0=None) -> tuple[float, dict]:
    """ARTBP's loss and gradient for a given cut pattern ``cuts`` (bool, length T): no randomness.

    :func:`artbp_grads` draws ``cuts`` and computes the same. Each window between cuts
    is run forward from the state the previous window ended in and backpropagated with
    no gradient from after it; the gradient crossing the kept boundary after step ``t``
    is multiplied by :math:`1/(1 - c_t)`.
    """
    m = get_model(model)
    p, x, y, h0 = m.prepare(params, x, y, state0)
    T = x.shape[0]
    cuts = np.asarray(cuts)
    if cuts.shape != (T,) or cuts.dtype != bool:
        raise ValueError(f"cuts must be a bool array of shape ({T},); got {cuts.dtype} of shape {cuts.shape}")
    return _artbp(m, p, x, y, h0, compensation_factors(c, cuts), cuts)


def _artbp(m, p, x, y, h0, factors, cuts):
    """The windows of one cut pattern, forward then backward each, with the compensation factors."""
    grads = {key: np.zeros_like(value) for key, value in p.items()}
    loss, start = 0.0, h0
    with np.errstate(over="ignore", invalid="ignore"):
        for a, b in windows(cuts):
            h = bptt.forward(m.cell, p, x[a:b], start)
            # window step j (0-based) sends its dh_prev across the boundary after global step a + j;
            # the first one crosses the cut (or reaches h0) and is dropped
            cell = CompensatedCell(m.cell, np.concatenate([[0.0], factors[a:b - 1]]))
            part, grads, _ = bptt.bptt(cell, p, x[a:b], y[a:b], h=h, grads=grads)
            if not cell.done():
                raise RuntimeError("bptt did not visit every step of the window once")
            loss += part
            start = h[-1]
    grads = m.unpack(grads)
    check_finite_result("artbp_grads", {"loss": np.asarray(loss), **grads})
    return loss, grads


def artbp_grads(params: dict, x, y, c, *, rng, model="rnn", state0=None) -> tuple[float, dict]:
    """One ARTBP draw: the full loss and a random gradient whose expectation is the full BPTT gradient.

    Parameters
    ----------
    params : dict
        The model's parameters (for the RNN ``U``, ``W``, ``V``, ``b``, ``c``).
    x : array_like, (T, B, D)
    y : array_like of int, (T, B)
    c : float or array_like (T,)
        The probability of a cut after each step, in [0, 1) (``c[t - 1]`` after step ``t``).
        ``c = 0`` never cuts: full BPTT.
    rng : numpy.random.Generator
        Draws the cuts (``T`` uniform numbers per call).
    model : str
        ``"rnn"``, ``"lstm"`` or ``"gru"``.
    state0 : optional
        The initial state (zeros by default).

    Returns
    -------
    loss : float
        The full loss (summed over time, averaged over the batch), whatever the cuts.
    grads : dict
        Same keys and shapes as ``params``.
    """
    m = get_model(model)
    p, x, y, h0 = m.prepare(params, x, y, state0)
    cuts = draw_cuts(c, x.shape[0], rng)
    return _artbp(m, p, x, y, h0, compensation_factors(c, cuts), cuts)


def enumerate_patterns(T: int):
    """Every cut pattern of a sequence of ``T`` steps: the ``2^(T-1)`` choices for the boundaries after steps 1
    to T - 1.

    Yields bool arrays of length ``T`` (the last entry, after the last step, is always False).
    """
    T = positive_int("T", T, high=16)
    for bits in itertools.product((False, True), repeat=T - 1):
        yield np.array(bits + (False,))


def expected_grads(params: dict, x, y, c, *, model="rnn", state0=None) -> dict:
    """The exact expectation of :func:`artbp_grads`: every cut pattern's gradient weighted by its probability."""
    return exact_moments(params, x, y, c, model=model, state0=state0)[0]


def exact_moments(params: dict, x, y, c, *, model="rnn", state0=None) -> tuple[dict, float]:
    """The exact mean gradient and the exact total variance
    :math:`\\mathbb E \\lVert \\hat g - \\mathbb E \\hat g \\rVert^2` by enumeration.

    For short sequences only (``2^(T-1)`` patterns, ``T <= 16``).
    """
    T = np.shape(x)[0]
    probs, grads = [], []
    for cuts in enumerate_patterns(T):
        probs.append(pattern_probability(c, cuts))
        grads.append(artbp_grads_for_cuts(params, x, y, c, cuts, model=model, state0=state0)[1])
    mean = {key: sum(p * g[key] for p, g in zip(probs, grads)) for key in grads[0]}
    flat_mean = flatten(mean)
    variance = float(sum(p * np.sum((flatten(g) - flat_mean) ** 2) for p, g in zip(probs, grads)))
    return mean, variance


def flatten(grads: dict) -> np.ndarray:
    """All gradients as one vector (in the dict's key order)."""
    return np.concatenate([np.ravel(value) for value in grads.values()])


def relative_error(grads: dict, reference: dict) -> float:
    """:math:`\\lVert g - g_{ref} \\rVert / \\lVert g_{ref} \\rVert` over all parameters together."""
    ref = flatten(reference)
    return float(np.linalg.norm(flatten({key: grads[key] for key in reference}) - ref) / np.linalg.norm(ref))


def mean_error_curve(params: dict, x, y, c, sizes, *, repeats: int, seed: int, model="rnn"):
    """Relative error of the mean of ``N`` ARTBP draws against full BPTT, for each ``N`` in ``sizes``.

    ``repeats`` independent sequences of ``max(sizes)`` draws (sequence ``r`` from
    ``np.random.default_rng([seed, r])``); the running mean of each is compared after
    ``N`` draws. Returns an array (len(sizes), repeats).
    """
    sizes = [positive_int("N", int(n)) for n in sizes]
    repeats = positive_int("repeats", repeats)
    _, full = full_grads(params, x, y, model=model)
    ref = flatten(full)
    errors = np.empty((len(sizes), repeats))
    for r in range(repeats):
        rng = np.random.default_rng([seed, r])
        total = np.zeros_like(ref)
        for n in range(1, max(sizes) + 1):
            total += flatten(artbp_grads(params, x, y, c, rng=rng, model=model)[1])
            if n in sizes:
                errors[sizes.index(n), r] = np.linalg.norm(total / n - ref) / np.linalg.norm(ref)
    return errors


def plot_mean_error(sizes, errors, predicted=None, *, ax=None):
    """Log-log plot of the error of the mean of N draws (each repeat a dot, their root mean square a line) with
    a slope −1/2 guide."""
    import matplotlib.pyplot as plt

    ax = plt.gca() if ax is None else ax
    sizes = np.asarray(sizes, float)
    for r in range(errors.shape[1]):
        ax.loglog(sizes, errors[:, r], ".", color="0.6", ms=3, label="one sequence of draws" if r == 0 else None)
    rms = np.sqrt(np.mean(errors ** 2, axis=1))
    ax.loglog(sizes, rms, "o-", label="root mean square over the repeats")
    if predicted is not None:
        ax.loglog(sizes, predicted, "k--", lw=1, label=r"$\sqrt{V/N}\,/\,\|g\|$ (exact $V$): slope $-1/2$")
    ax.set_xlabel("number of draws $N$")
    ax.set_ylabel("relative error of the mean")
    ax.legend(fontsize=8)
    return ax


def plot_variance(cs, variances, norm2, *, ax=None):
    """The exact total variance of one draw, relative to :math:`\\lVert g \\rVert^2`, against the cut
    probability ``c``."""
    import matplotlib.pyplot as plt

    ax = plt.gca() if ax is None else ax
    ax.semilogy(cs, np.asarray(variances) / norm2, "o-")
    ax.set_xlabel("cut probability $c$ (the same after every step)")
    ax.set_ylabel(r"$\mathbb{E}\,\|\hat g - g\|^2 \,/\, \|g\|^2$")
    return ax
