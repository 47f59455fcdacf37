r"""The path-sum view of backpropagation through time: the same gradient, one path at a time.

The loss :math:`L = \sum_t L^{(t)}` depends on the recurrent weights through every
pair of steps :math:`k \le t`: the weights act at step :math:`k`, the change is
carried forward through the states :math:`h^{(k)}, \dots, h^{(t)}`, and
:math:`L^{(t)}` reads :math:`h^{(t)}`. Summing one term per pair gives

.. math::

    \nabla_W L = \sum_{t=1}^{T} \sum_{k=1}^{t} \delta^{(t,k)}\, h^{(k-1)\top},

    \delta^{(t,k)} = \nabla_{a^{(k)}} L^{(t)}
      = D_k W^\top D_{k+1} W^\top \cdots W^\top D_t\, \nabla_{h^{(t)}} L^{(t)},

with :math:`D_j = \operatorname{diag}\big(1 - (h^{(j)})^2\big)`, and likewise
:math:`\nabla_U L = \sum_{t, k} \delta^{(t,k)} x^{(k)\top}` and
:math:`\nabla_b L = \sum_{t, k} \delta^{(t,k)}`. The output parameters
:math:`V, c` act on :math:`L^{(t)}` only at step :math:`t` (the term
:math:`k = t`).

:func:`loss_and_grads_path_sum` computes this double sum literally: for every
loss term :math:`t` it walks back from :math:`t` to :math:`1`, applying one
Jacobian (as two vector-Jacobian products) per step and adding the immediate
contribution of every step on the way. It calls exactly the generated kernels
that :func:`bptt_lib.rnn.backward` calls, in a different order and
:math:`T(T+1)/2` times instead of :math:`T`; it returns the same gradient to
round-off. It exists to be compared with the recursion, not to train networks.

- :func:`pullback`: :math:`\delta^{(t,k)}` for a batch, from
  :math:`\nabla_{h^{(t)}} L^{(t)}`.
- :func:`path_term`: the contribution of the single path :math:`(t, k)` to
  :math:`\nabla_W L`, :math:`\nabla_U L` and :math:`\nabla_b L`.
- :func:`path_contribution`: the same, starting from parameters and data.
- :func:`backward_path_sum`, :func:`loss_and_grads_path_sum`: the whole gradient,
  optionally keeping only paths of at most ``truncate`` steps.
- :func:`counting_kernel_calls`: count calls of the generated kernels.
- :func:`time_per_call`, :func:`time_interleaved`, :func:`timing_study`, :func:`loglog_slope`,
  :func:`plot_scaling`, :func:`plot_timing_study`: the timing study;
  :func:`plot_paths`: the triangle of paths.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

from .kernels import rnn_kernels
from .plotting import COLORS
from .rnn import (
    Trace,
    check_backward_inputs,
    check_inputs,
    check_targets,
    forward_unchecked,
    loss_and_grads,
    output_grads,
)
from .rnn import backward as _backward
from .rnn import forward as _forward
from .rnn import init_params as _init_params
from .validation import as_array, check_finite_result, require_finite

__all__ = [
    "pullback", "path_term", "path_contribution",
    "backward_path_sum", "loss_and_grads_path_sum",
    "BACKWARD_KERNELS", "counting_kernel_calls",
    "time_per_call", "time_interleaved", "loglog_slope", "plot_scaling", "plot_paths",
    "TIMED", "timing_study", "plot_timing_study",
]

BACKWARD_KERNELS = ("tanh_vjp", "hidden_vjp_h_prev", "hidden_vjp_params", "output_vjp", "softmax_nll_grad")
"""The generated kernels that both backward passes call."""


def _step_index(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise ValueError(f"{name} must be an int from {low} to {high}; got {value!r}")
    return int(value)


def _check_path(t, k, T: int) -> tuple[int, int]:
    t = _step_index("t", t, 1, T)
    k = _step_index("k", k, 1, t)
    return t, k


def _pullback(g: np.ndarray, h: np.ndarray, W: np.ndarray, t: int, k: int) -> np.ndarray:
    kern = rnn_kernels()
    G_a = kern.tanh_vjp(g, h[t])                      # D_t g
    for j in range(t, k, -1):                         # j = t, t-1, ..., k+1
        G_a = kern.tanh_vjp(kern.hidden_vjp_h_prev(G_a, W), h[j - 1])   # D_{j-1} W^T (...)
    return G_a


def pullback(g, h, W, t: int, k: int) -> np.ndarray:
    r"""Carry the gradient of one loss term from :math:`h^{(t)}` back to :math:`a^{(k)}`.

    .. math::

        \delta^{(t,k)} = \nabla_{a^{(k)}} L^{(t)}
          = D_k W^\top D_{k+1} W^\top \cdots W^\top D_t\, g,

        D_j = \operatorname{diag}\big(1 - (h^{(j)})^2\big),

    applied as ``t - k + 1`` calls of the generated ``tanh_vjp`` and ``t - k``
    calls of ``hidden_vjp_h_prev``; no diagonal matrix is formed.

    Parameters
    ----------
    g : array_like, (B, H)
        Rows are :math:`\nabla_{h^{(t)}} L^{(t)}`, the gradient of the loss term
        :math:`L^{(t)}` with respect to :math:`h^{(t)}` for each example.
    h : array_like, (T + 1, B, H)
        Hidden states, ``h[j]`` is :math:`h^{(j)}` (as in :class:`bptt_lib.rnn.Trace`).
    W : array_like, (H, H)
    t, k : int
        The loss term and the step where the path ends, :math:`1 \le k \le t \le T`.

    Returns
    -------
    ndarray, (B, H)
        Rows are :math:`\delta^{(t,k)}`.
    """
    sizes: dict = {}
    h = as_array("h", h, ("T+1", "B", "H"), sizes)
    g = as_array("g", g, ("B", "H"), sizes)
    W = as_array("W", W, ("H", "H"), sizes)
    for name, arr in (("g", g), ("h", h), ("W", W)):
        require_finite(name, arr)
    t, k = _check_path(t, k, sizes["T+1"] - 1)
    return _pullback(g, h, W, t, k)


def path_term(g, h, x, W, t: int, k: int) -> dict:
    r"""The contribution of the single path :math:`(t, k)` to the hidden-layer gradients.

    .. math::

        \Delta_W = \delta^{(t,k)} h^{(k-1)\top}, \qquad
        \Delta_U = \delta^{(t,k)} x^{(k)\top}, \qquad
        \Delta_b = \delta^{(t,k)},

    summed over the examples of the batch, with :math:`\delta^{(t,k)}` from
    :func:`pullback` and the immediate part from the generated ``hidden_vjp_params``.

    Parameters
    ----------
    g : array_like, (B, H)
        Rows are :math:`\nabla_{h^{(t)}} L^{(t)}`.
    h : array_like, (T + 1, B, H)
    x : array_like, (T, B, D)
    W : array_like, (H, H)
    t, k : int
        :math:`1 \le k \le t \le T`.

    Returns
    -------
    dict
        ``"W"`` (H, H), ``"U"`` (H, D), ``"b"`` (H,).
    """
    sizes: dict = {}
    h = as_array("h", h, ("T+1", "B", "H"), sizes)
    x = as_array("x", x, ("T", "B", "D"), sizes)
    if sizes["T"] != sizes["T+1"] - 1:
        raise ValueError(f"h must have one more step than x: h has {sizes['T+1']}, x has {sizes['T']}")
    G_a = pullback(g, h, W, t, k)
    dW, dU, db = rnn_kernels().hidden_vjp_params(G_a, h[k - 1], x[k - 1], np.ones((G_a.shape[0], 1)))
    return {"W": dW, "U": dU, "b": db.reshape(-1)}


def path_contribution(params: dict, x, y, t: int, k: int, h0=None) -> dict:
    r"""The contribution of the path :math:`(t, k)` to :math:`\nabla_W L`, :math:`\nabla_U L`, :math:`\nabla_b L`.

    Runs the forward pass, forms :math:`\nabla_{h^{(t)}} L^{(t)}` with the
    generated output kernels, and applies :func:`path_term`. Summed over all
    :math:`1 \le k \le t \le T` these contributions are the gradients of
    :func:`bptt_lib.rnn.loss_and_grads` for ``"W"``, ``"U"`` and ``"b"``.
    (:math:`V` and :math:`c` reach :math:`L^{(t)}` without passing through a
    hidden state, so they have no paths of this kind.)

    Parameters
    ----------
    params : dict
        ``"U"`` (H, D), ``"W"`` (H, H), ``"V"`` (K, H), ``"b"`` (H,), ``"c"`` (K,).
    x : array_like, (T, B, D)
    y : array_like of int, (T, B)
    t, k : int
        :math:`1 \le k \le t \le T`, the book's time indices.
    h0 : array_like, (B, H), optional

    Returns
    -------
    dict
        ``"W"`` (H, H), ``"U"`` (H, D), ``"b"`` (H,).
    """
    p, x, h0, sizes = check_inputs(params, x, h0, kind="float")
    y = check_targets(y, sizes)
    t, k = _check_path(t, k, sizes["T"])
    trace = forward_unchecked(p, x, h0)
    _, _, g = output_grads(p, trace, y)
    return path_term(g[t - 1], trace.h, trace.x, p["W"], t, k)


def backward_path_sum(params: dict, trace: Trace, y, *, truncate: int | None = None) -> dict:
    r"""The gradient as the double sum over paths, from a stored forward pass.

    For each loss term :math:`t = 1, \dots, T`, start from
    :math:`\nabla_{h^{(t)}} L^{(t)}` and walk back through
    :math:`k = t, t-1, \dots`: one ``tanh_vjp`` gives :math:`\delta^{(t,k)}`,
    one ``hidden_vjp_params`` adds its immediate contribution, one
    ``hidden_vjp_h_prev`` moves to step :math:`k - 1`. Each loss term is
    handled on its own, so nothing computed for :math:`t` is reused for
    :math:`t + 1`: that is the difference from the recursion of
    :func:`bptt_lib.rnn.backward`.

    Parameters
    ----------
    params : dict
        As in :func:`bptt_lib.rnn.backward`, float64.
    trace : Trace
        From :func:`bptt_lib.rnn.forward`.
    y : array_like of int, (T, B)
    truncate : int, optional
        Keep only the paths with :math:`t - k < \text{truncate}`, i.e. carry
        each loss term back at most ``truncate`` steps. ``None`` (default)
        keeps every path and gives the exact gradient; ``truncate = 1`` keeps
        only the immediate terms :math:`k = t`.

    Returns
    -------
    dict
        Same keys and shapes as ``params``.

    Notes
    -----
    Kernel calls without truncation: ``tanh_vjp`` and ``hidden_vjp_params``
    :math:`T(T+1)/2` times (once per path), ``hidden_vjp_h_prev``
    :math:`T(T-1)/2` times, ``output_vjp`` and ``softmax_nll_grad`` once.
    """
    p, y, sizes = check_backward_inputs(params, trace, y)
    T, B, D = trace.x.shape
    if truncate is not None and (isinstance(truncate, bool) or not isinstance(truncate, (int, np.integer))
                                 or truncate < 1):
        raise ValueError(f"truncate must be an int of at least 1 (or None); got {truncate!r}")
    depth = T if truncate is None else truncate
    kern = rnn_kernels()
    h, x, W = trace.h, trace.x, p["W"]
    ones = np.ones((B, 1))

    dV, dc, g = output_grads(p, trace, y)
    dW = np.zeros_like(W)
    dU = np.zeros_like(p["U"])
    db = np.zeros((1, W.shape[0]))
    for t in range(1, T + 1):                     # one loss term (row) at a time
        G_a = kern.tanh_vjp(g[t - 1], h[t])       # delta^(t,t)
        for k in range(t, max(t - depth, 0), -1):  # k = t, t-1, ..., 1
            if k < t:                             # delta^(t,k) from delta^(t,k+1)
                G_a = kern.tanh_vjp(kern.hidden_vjp_h_prev(G_a, W), h[k])
            gW, gU, gb = kern.hidden_vjp_params(G_a, h[k - 1], x[k - 1], ones)
            dW += gW
            dU += gU
            db += gb
    grads = {"U": dU, "W": dW, "V": dV, "b": db.reshape(-1), "c": dc}
    check_finite_result("loss_and_grads_path_sum", grads)
    return grads


def loss_and_grads_path_sum(params: dict, x, y, h0=None, *, truncate: int | None = None) -> tuple[float, dict]:
    r"""The loss and its gradient, summed path by path (same interface as :func:`bptt_lib.rnn.loss_and_grads`).

    .. math::

        \nabla_W L = \sum_{t=1}^{T} \sum_{k=1}^{t}
          \Big(D_k W^\top D_{k+1} W^\top \cdots W^\top D_t\, \nabla_{h^{(t)}} L^{(t)}\Big)\, h^{(k-1)\top}

    and likewise for :math:`U` and :math:`b`; :math:`V` and :math:`c` have
    only the terms :math:`k = t`. Costs :math:`O(T^2)` Jacobian applications
    where the recursion needs :math:`O(T)`.

    Parameters
    ----------
    params : dict
        ``"U"`` (H, D), ``"W"`` (H, H), ``"V"`` (K, H), ``"b"`` (H,), ``"c"`` (K,), float64.
    x : array_like, (T, B, D)
    y : array_like of int, (T, B)
    h0 : array_like, (B, H), optional
    truncate : int, optional
        See :func:`backward_path_sum`; ``None`` gives the exact gradient.

    Returns
    -------
    loss : float
    grads : dict
        Same keys and shapes as ``params``.

    Raises
    ------
    KeyError, TypeError, ValueError
        For bad input, exactly as :func:`bptt_lib.rnn.loss_and_grads`.
    FloatingPointError
        If the loss or a gradient is not finite.
    """
    return loss_and_grads(params, x, y, h0,
                          backward_rule=lambda p, trace, y: backward_path_sum(p, trace, y, truncate=truncate))


@contextlib.contextmanager
def counting_kernel_calls(names: Sequence[str] = BACKWARD_KERNELS) -> Iterator[dict]:
    """Count the calls of generated kernels inside a ``with`` block.

    Each named kernel of :func:`bptt_lib.kernels.rnn_kernels` is replaced by a
    wrapper that counts and then calls the original; the originals are put
    back on leaving the block, also after an exception.

    Yields
    ------
    dict
        ``{name: number of calls}``, updated while the block runs.

    Examples
    --------
    >>> with counting_kernel_calls() as calls:          # doctest: +SKIP
    ...     rnn.loss_and_grads(params, x, y)
    >>> calls["tanh_vjp"]                               # doctest: +SKIP
    """
    kern = rnn_kernels()
    names = tuple(names)
    unknown = [n for n in names if not hasattr(kern, n)]
    if unknown:
        raise ValueError(f"names must be generated kernels of rnn_kernels(); unknown: {unknown}")
    originals = {n: getattr(kern, n) for n in names}
    calls = dict.fromkeys(names, 0)

    def counted(name: str, fn: Callable) -> Callable:
        def wrapper(*args, **kwargs):   # kwargs: the out= of the kernels that write in place
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    try:
        for n, fn in originals.items():
            setattr(kern, n, counted(n, fn))
        yield calls
    finally:
        for n, fn in originals.items():
            setattr(kern, n, fn)


# --- the timing study -----------------------------------------------------------------


def _time_round(fn: Callable[[], object], number: int) -> float:
    """Seconds per call of ``number`` calls of ``fn()``, garbage collection off (as :mod:`timeit` does)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        return (time.perf_counter() - start) / number
    finally:
        if was_enabled:
            gc.enable()


def time_per_call(fn: Callable[[], object], repeats: int = 5, number: int = 1) -> float:
    """Seconds per call of ``fn()``: the best of ``repeats`` rounds of ``number`` calls each.

    The minimum over rounds, rather than the mean or median, is the estimate
    least disturbed by other programs running on the machine (the advice of
    the :mod:`timeit` docs): interference, like a cold first call, only ever
    adds time. Garbage collection is off during each round, as in :mod:`timeit`.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable; got {type(fn).__name__}")
    repeats = _step_index("repeats", repeats, 1, 1000)
    number = _step_index("number", number, 1, 10**6)
    return float(min(_time_round(fn, number) for _ in range(repeats)))


def time_interleaved(calls: dict, rounds: int = 5, number: dict | None = None) -> dict:
    r"""Time several methods on several problems, interleaved, and keep the best round of each.

    One round times every method on every problem once, problem by problem
    (for each problem: method 1, method 2, ...), so that a slow spell of the
    machine hits all methods alike rather than one of them; the estimate for
    each (method, problem) is the minimum over ``rounds`` rounds, with garbage
    collection off while timing. Ratios of the results, such as
    :math:`t_{\text{path sum}}(T) / t_{\text{recursion}}(T)`, cancel any slowdown
    that affects both methods alike.

    Parameters
    ----------
    calls : dict
        Method name to a list of zero-argument callables, one per problem; every
        list has the same length ``n``.
    rounds : int
        Rounds (at least 1).
    number : dict, optional
        Method name to the number of calls per timed round (default 1 for each),
        for methods whose single call is too short to time.

    Returns
    -------
    dict
        Method name to an array ``(n,)`` of seconds per call.
    """
    if not isinstance(calls, dict) or not calls:
        raise TypeError("calls must be a non-empty dict from method names to lists of callables")
    lengths = {len(fns) for fns in calls.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError("every list in calls must have the same, non-zero length")
    for name, fns in calls.items():
        if not all(callable(fn) for fn in fns):
            raise TypeError(f"calls[{name!r}] must hold only callables")
    rounds = _step_index("rounds", rounds, 1, 1000)
    number = {name: _step_index(f"number[{name!r}]", (number or {}).get(name, 1), 1, 10**6) for name in calls}
    n = lengths.pop()
    best = {name: np.full(n, np.inf) for name in calls}
    for _ in range(rounds):
        for i in range(n):
            for name, fns in calls.items():
                best[name][i] = min(best[name][i], _time_round(fns[i], number[name]))
    return best


def loglog_slope(n, seconds, n_min=None) -> float:
    r"""The slope of a least-squares line through :math:`(\log n, \log \text{seconds})`.

    A cost proportional to :math:`n^p` has slope :math:`p`. Fixed overheads
    flatten the curve at small :math:`n`, so only the points with
    ``n >= n_min`` enter the fit (all points by default; at least two).
    """
    n = np.asarray(n, dtype=float)
    seconds = np.asarray(seconds, dtype=float)
    if n.ndim != 1 or n.shape != seconds.shape:
        raise ValueError(f"n and seconds must be 1-D of the same length; got shapes {n.shape} and {seconds.shape}")
    if np.any(n <= 0) or np.any(seconds <= 0):
        raise ValueError("n and seconds must be positive for a log-log fit")
    keep = n >= (n.min() if n_min is None else n_min)
    if keep.sum() < 2:
        raise ValueError(f"need at least two points with n >= n_min={n_min}; got {int(keep.sum())}")
    slope, _ = np.polyfit(np.log(n[keep]), np.log(seconds[keep]), 1)
    return float(slope)


def _draw_scaling(ax, T_values, times: dict, n_min=None) -> None:
    T_values = np.asarray(T_values, dtype=float)
    if not isinstance(times, dict) or not times:
        raise TypeError("times must be a non-empty dict from labels to arrays of seconds")
    markers = iter("os^v")
    for label, sec in times.items():
        sec = np.asarray(sec, dtype=float)
        if sec.shape != T_values.shape:
            raise ValueError(f"times[{label!r}] must have shape {T_values.shape}; got {sec.shape}")
        ax.loglog(T_values, sec, next(markers, "o") + "-", ms=4, label=label)
    # Guides through the last point of the fastest (slope 1) and of the slowest (slope 2) curve.
    last = sorted(float(np.asarray(s, dtype=float)[-1]) for s in times.values())
    for power, anchor, style, label in ((1, last[0], "--", r"$\propto T$"), (2, last[-1], ":", r"$\propto T^2$")):
        ax.loglog(T_values, anchor * (T_values / T_values[-1]) ** power, style, color="gray", lw=1, label=label)
    if n_min is not None:
        ax.axvline(n_min, color="black", lw=0.6, ls=":")
        ax.annotate(rf"slopes fitted for $T \geq {n_min:g}$ $\rightarrow$", (n_min, 0.02),
                    xycoords=("data", "axes fraction"), xytext=(-4, 0), textcoords="offset points",
                    ha="right", fontsize=8)
    _T_axis(ax, T_values)
    ax.set_ylabel("time of one call (s)")
    ax.legend(fontsize=8)


def _T_axis(ax, T_values) -> None:
    ax.set_xticks(T_values)
    ax.set_xticklabels([f"{v:g}" for v in T_values])
    ax.xaxis.set_minor_locator(mpl.ticker.NullLocator())
    ax.set_xlabel("sequence length $T$ (steps)")


def plot_scaling(T_values, times: dict, n_min=None):
    """Log-log plot of backward-pass times against ``T``, with reference lines of slope 1 and 2.

    Parameters
    ----------
    T_values : array_like, (n,)
    times : dict
        Label to an array of ``n`` times in seconds.
    n_min : int, optional
        Where the fitted range starts (drawn as a dotted vertical line).

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = plt.subplots()
    _draw_scaling(ax, T_values, times, n_min)
    fig.tight_layout()
    return fig


TIMED = ("forward pass", "recursion", "path sum", "recursion, backward only", "path sum, backward only")
"""The five quantities :func:`timing_study` times, in this order."""


_ONE_THREAD = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                     "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")}


def timing_study(T_values=(4, 8, 16, 32, 64, 128, 256), *, n_hidden: int = 16, batch: int = 8,
                 rounds: int = 3, seed: int = 9, single_thread: bool = True) -> dict:
    r"""Time the two gradients, their backward passes alone, and the forward pass, for each ``T``.

    One seeded random problem per ``T`` (``D = 4``, ``K = 5``, ``H = n_hidden``,
    ``B = batch``); every quantity of :data:`TIMED` is timed by
    :func:`time_interleaved` (best of ``rounds``; the short calls repeated 20 times
    per round). "Backward only" runs :func:`bptt_lib.rnn.backward` or
    :func:`backward_path_sum` on a stored forward pass.

    With ``single_thread`` (the default) the measurement runs in a fresh Python
    process whose BLAS is limited to one thread (``OPENBLAS_NUM_THREADS=1`` and the
    like): on a busy machine a multithreaded BLAS can slow the recursion's few large
    matrix products by orders of magnitude, which would measure thread scheduling
    rather than the work.

    Returns
    -------
    dict
        Name (from :data:`TIMED`) to an array of seconds per call, one per ``T``.
        The values depend on the machine and its load; only ratios and slopes mean
        anything, and even they vary from run to run.
    """
    T_values = [_step_index("T", T, 1, 4096) for T in T_values]
    for name, value in (("n_hidden", n_hidden), ("batch", batch), ("seed", seed)):
        _step_index(name, value, 0 if name == "seed" else 1, 2**31)
    rounds = _step_index("rounds", rounds, 1, 1000)
    if not single_thread:
        return _timing_study_here(T_values, n_hidden, batch, rounds, seed)
    code = ("import json, sys; from bptt_lib.path_sum import _timing_study_here as f; "
            "r = f(*json.loads(sys.argv[1])); print(json.dumps({k: v.tolist() for k, v in r.items()}))")
    env = {**os.environ, **_ONE_THREAD}
    done = subprocess.run([sys.executable, "-c", code, json.dumps([T_values, n_hidden, batch, rounds, seed])],
                          env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the timing process failed:\n{done.stderr}")
    return {name: np.asarray(values) for name, values in json.loads(done.stdout).items()}


def _timing_study_here(T_values, n_hidden: int, batch: int, rounds: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    calls = {name: [] for name in TIMED}
    for T in T_values:
        params = _init_params(4, n_hidden, 5, rng=rng)
        x = rng.standard_normal((T, batch, 4))
        y = rng.integers(0, 5, size=(T, batch))
        trace = _forward(params, x)
        calls["forward pass"].append(lambda p=params, x=x: _forward(p, x))
        calls["recursion"].append(lambda p=params, x=x, y=y: loss_and_grads(p, x, y))
        calls["path sum"].append(lambda p=params, x=x, y=y: loss_and_grads_path_sum(p, x, y))
        calls["recursion, backward only"].append(lambda p=params, tr=trace, y=y: _backward(p, tr, y))
        calls["path sum, backward only"].append(lambda p=params, tr=trace, y=y: backward_path_sum(p, tr, y))
    short = {name: 20 for name in ("forward pass", "recursion", "recursion, backward only")}
    return time_interleaved(calls, rounds=rounds, number=short)


def plot_timing_study(T_values, times: dict, n_min=None):
    r"""Two panels: the times of :func:`timing_study` (log-log), and the ratios path sum / recursion.

    The right panel shows the measured ratio of the whole gradients and of the
    backward passes alone next to the count ratio :math:`(T+1)/2` of Jacobian
    applications (:math:`T(T+1)/2` against :math:`T`).

    Parameters
    ----------
    T_values : array_like, (n,)
    times : dict
        From :func:`timing_study`: every name of :data:`TIMED` to ``n`` times in seconds.
    n_min : int, optional
        Drawn as a dotted vertical line in the left panel, as in :func:`plot_scaling`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(times, dict):
        raise TypeError(f"times must be the dict returned by timing_study; got {type(times).__name__}")
    missing = [name for name in TIMED if name not in times]
    if missing:
        raise ValueError(f"times must hold every quantity of TIMED; missing {missing}")
    T_values = np.asarray(T_values, dtype=float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    _draw_scaling(left, T_values, {name: times[name] for name in ("recursion", "path sum", "forward pass")}, n_min)
    full = np.asarray(times["path sum"]) / np.asarray(times["recursion"])
    backward = np.asarray(times["path sum, backward only"]) / np.asarray(times["recursion, backward only"])
    right.loglog(T_values, backward, "^-", ms=4, color=COLORS[2], label="backward passes only (measured)")
    right.loglog(T_values, (T_values + 1) / 2, "k--", lw=1, label=r"count ratio $(T+1)/2$")
    right.loglog(T_values, full, "o-", ms=4, color=COLORS[0], label="whole gradients (measured)")
    _T_axis(right, T_values)
    right.set_ylabel("time ratio, path sum / recursion")
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_paths(T: int = 6):
    r"""Draw the paths :math:`(t, k)`, :math:`1 \le k \le t \le T`, as a triangle of dots.

    Each dot is one term of the double sum; its colour is the number
    :math:`t - k` of Jacobian factors on the path. The path sum visits the
    dots row by row (one loss term :math:`t` at a time); the recursion adds up
    each column :math:`k` at once, into :math:`\delta^{(k)}`. Returns the figure.
    """
    T = _step_index("T", T, 1, 40)
    t_grid, k_grid = np.meshgrid(np.arange(1, T + 1), np.arange(1, T + 1), indexing="ij")
    keep = k_grid <= t_grid
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    points = ax.scatter(k_grid[keep], t_grid[keep], c=(t_grid - k_grid)[keep], cmap="viridis",
                        s=260, edgecolors="black", linewidths=0.5, zorder=3)
    for t, k in zip(t_grid[keep], k_grid[keep]):
        ax.annotate(f"{t - k}", (k, t), ha="center", va="center", fontsize=8,
                    color="white" if t - k < 0.6 * (T - 1) else "black", zorder=4)
    col = min(2, T)
    ax.add_patch(plt.Rectangle((0.55, T - 0.42), T - 0.1, 0.84, color=COLORS[1], alpha=0.15, lw=0))
    ax.add_patch(plt.Rectangle((col - 0.42, col - 0.55), 0.84, T - col + 1.1, color=COLORS[0], alpha=0.15, lw=0))
    ax.annotate("path sum: one row\nper loss term $t$", xy=(T + 0.45, T), xytext=(T + 0.9, T - 1.2),
                ha="left", va="center", fontsize=9, arrowprops={"arrowstyle": "->", "lw": 0.8})
    ax.annotate("recursion: one column\n" r"per step $k$, into $\delta^{(k)}$", xy=(col, col - 0.6),
                xytext=(col + 0.6, -0.5), ha="left", va="center", fontsize=9,
                arrowprops={"arrowstyle": "->", "lw": 0.8})
    ax.set_xlim(0.3, T + 3.8)
    ax.set_ylim(-1.2, T + 0.7)
    ax.set_xticks(range(1, T + 1))
    ax.set_yticks(range(1, T + 1))
    ax.set_xlabel("step $k$ where the weights act")
    ax.set_ylabel("loss term $t$")
    ax.grid(False)
    fig.colorbar(points, ax=ax, label="Jacobian factors on the path, $t - k$", shrink=0.8)
    fig.tight_layout()
    return fig
