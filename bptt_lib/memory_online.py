r"""Measurements and figures of chapter 13, *Memory, and learning online without going back*.

- :func:`problem`: the seeded network and sequence every measurement uses.
- :func:`checkpoint_sweep`, :func:`plot_checkpoint_sweep`: forward steps and peak
  memory of :func:`bptt_lib.checkpointing.checkpointed_grads` against the distance
  between checkpoints, and the dynamic programme of :func:`bptt_lib.checkpointing.hsm_table`.
- :func:`online_cost`, :func:`fitted_exponent`, :func:`plot_online_cost`: time per step
  and peak memory of RTRL and UORO against ``H`` (log-log).
- :func:`uoro_spread`, :func:`plot_uoro_spread`: UORO's error against ``H``, over seeds and draws.
- :func:`comparison`, :func:`comparison_table`, :func:`plot_comparison_times`: the measured
  version of OpenGenus's comparison table, for full BPTT, TBPTT, ARTBP, checkpointed BPTT,
  RTRL and UORO.

Memory is measured with ``tracemalloc`` (:func:`bptt_lib.timing.peak_memory`),
which sees every NumPy array; timings are wall-clock and go into figures only.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np

from . import bptt, models, online, path_sum, rnn, timing
from . import checkpointing as ck

__all__ = ["problem", "relative_error", "cell_vector", "CheckpointSweep", "checkpoint_sweep",
           "plot_checkpoint_sweep", "online_cost", "fitted_exponent", "plot_online_cost",
           "uoro_spread", "plot_uoro_spread", "METHODS", "comparison", "comparison_table",
           "plot_comparison_times", "MIB"]

MIB = 2 ** 20
"""Bytes in a mebibyte."""


def _warm() -> None:
    """Generate every kernel the measurements call, so that SymPy's work is not measured as the method's memory."""
    from .implicit_recursion import recursion_kernels
    from .kernels import rnn_kernels

    rnn_kernels()
    recursion_kernels()
    online.online_kernels()


def problem(T: int, *, B: int = 4, D: int = 4, H: int = 16, K: int = 4, seed: int = 0):
    """A seeded tanh RNN (``init_params``, biases small and random) and a random sequence ``(params, x, y)``."""
    rng = np.random.default_rng(seed)
    params = rnn.init_params(D, H, K, rng=rng)
    params["b"] = 0.1 * rng.standard_normal(H)
    return params, rng.standard_normal((T, B, D)), rng.integers(0, K, size=(T, B))


def cell_vector(grads: dict) -> np.ndarray:
    """The gradients of ``W``, ``U``, ``b`` stacked (the part RTRL and UORO estimate; ``V``, ``c`` are exact)."""
    return online.pack(grads)


def relative_error(estimate: dict, reference: dict) -> float:
    """:math:`\\lVert g - g_{\\text{full}}\\rVert / \\lVert g_{\\text{full}}\\rVert` over ``W``, ``U``, ``b``."""
    g = cell_vector(reference)
    return float(np.linalg.norm(cell_vector(estimate) - g) / np.linalg.norm(g))


# --- checkpointing ---------------------------------------------------------------------------


@dataclass
class CheckpointSweep:
    """Checkpointed BPTT at one ``T`` for several distances ``every`` between checkpoints.

    ``steps`` (counted forward steps), ``peak`` (bytes), ``worst_error`` (the largest relative
    error of any parameter's gradient against full BPTT over the sweep), ``full_peak``,
    ``state_bytes`` (one state of the batch), ``T``.
    """

    T: int
    every: np.ndarray
    steps: np.ndarray
    peak: np.ndarray
    full_peak: int
    worst_error: float
    state_bytes: int


def checkpoint_sweep(T: int = 1000, every=None, *, B: int = 4, D: int = 4, H: int = 16, K: int = 4,
                     seed: int = 0) -> CheckpointSweep:
    """Run :func:`bptt_lib.checkpointing.checkpointed_grads` for each ``every``; count, measure, compare."""
    every = np.array(every if every is not None else [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000])
    _warm()
    params, x, y = problem(T, B=B, D=D, H=H, K=K, seed=seed)
    full_peak, (loss, full) = timing.peak_memory(models.full_grads, params, x, y)
    steps, peaks, worst = [], [], 0.0
    for k in every:
        stats = {}
        peak, (value, grads) = timing.peak_memory(ck.checkpointed_grads, params, x, y, int(k), stats=stats)
        steps.append(stats["forward_steps"])
        peaks.append(peak)
        worst = max([worst, abs(value - loss) / abs(loss)]
                    + [float(np.linalg.norm(grads[n] - full[n]) / np.linalg.norm(full[n])) for n in full])
    return CheckpointSweep(T=T, every=every, steps=np.array(steps), peak=np.array(peaks), full_peak=full_peak,
                           worst_error=worst, state_bytes=8 * B * H)


def plot_checkpoint_sweep(sweep: CheckpointSweep, table=None, hsm_slots: int = 64):
    """Three panels: forward steps and peak memory against ``every``; forward steps against states held.

    ``table``: :func:`bptt_lib.checkpointing.hsm_table` of ``sweep.T`` (computed for ``hsm_slots`` if not given).
    """
    T = sweep.T
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    ax = axes[0]
    ax.plot(sweep.every, sweep.steps / T, "o-", label="checkpointed, counted")
    ax.axhline(1, color="k", ls="--", lw=1, label="full BPTT")
    ax.set_xscale("log")
    ax.set_xlabel("distance between checkpoints $k$")
    ax.set_ylabel("forward steps / $T$")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(sweep.every, sweep.peak / MIB, "o-", label="checkpointed, measured")
    model = np.array([ck.stored_states(T, int(k)) for k in sweep.every]) * sweep.state_bytes
    ax.plot(sweep.every, model / MIB, ":", color="k", lw=1, label=r"states held $\times$ state size")
    ax.axhline(sweep.full_peak / MIB, color="k", ls="--", lw=1, label="full BPTT, measured")
    ax.axvline(np.sqrt(T), color="0.5", lw=1)
    ax.text(np.sqrt(T) * 1.1, model.min() / MIB * 0.7, r"$\sqrt{T}$", color="0.4")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(model.min() / MIB * 0.4, sweep.full_peak / MIB * 12)
    ax.set_xlabel("distance between checkpoints $k$")
    ax.set_ylabel("peak memory (MiB)")
    ax.legend(fontsize=7, loc="upper center")
    ax = axes[2]
    table = ck.hsm_table(T, hsm_slots) if table is None else np.asarray(table)
    slots = np.arange(1, len(table) + 1)
    ax.plot(slots, table / T, "-", label=f"dynamic programme (Gruslys et al.), up to {len(table)}")
    held = np.array([ck.stored_states(T, int(k)) for k in sweep.every])
    ax.plot(held, sweep.steps / T, "o", label="uniform checkpoints (the sweep)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("states held besides $h^{(0)}$")
    ax.set_ylabel("forward steps / $T$")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return axes


# --- RTRL and UORO: cost against H ------------------------------------------------------------


def online_cost(H_values, *, T: int = 10, B: int = 1, D: int = 4, K: int = 4, seed: int = 0, repeat: int = 3) -> dict:
    """Time per step (s) and peak memory (bytes) of RTRL, UORO and full BPTT for each ``H``.

    Returns ``{"H": array, "rtrl_time", "uoro_time", "bptt_time", "rtrl_peak", "uoro_peak", "bptt_peak"}``.
    """
    _warm()
    out = {key: [] for key in ("rtrl_time", "uoro_time", "bptt_time", "rtrl_peak", "uoro_peak", "bptt_peak")}
    rng = np.random.default_rng(seed + 1)
    for H in H_values:
        params, x, y = problem(T, B=B, D=D, H=int(H), K=K, seed=seed)
        runs = {"rtrl": lambda p=params, x=x, y=y: online.rtrl_grads(p, x, y),
                "uoro": lambda p=params, x=x, y=y: online.uoro_grads(p, x, y, rng=rng),
                "bptt": lambda p=params, x=x, y=y: models.full_grads(p, x, y)}
        for name, fn in runs.items():
            with bptt.single_blas_thread():  # timing curves that do not depend on what else runs
                out[f"{name}_time"].append(path_sum.time_per_call(fn, repeats=repeat) / T)
            out[f"{name}_peak"].append(timing.peak_memory(fn)[0])
    return {"H": np.asarray(H_values), **{key: np.array(value) for key, value in out.items()}}


def fitted_exponent(x, y, last: int = 3) -> float:
    """The slope of :math:`\\log y` against :math:`\\log x` over the ``last`` points (least squares)."""
    x, y = np.asarray(x, float)[-last:], np.asarray(y, float)[-last:]
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def plot_online_cost(cost: dict):
    """Log-log: time per step and peak memory against ``H`` for RTRL, UORO, BPTT, with guides."""
    H = cost["H"]
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6))
    for ax, what, guide, unit in ((axes[0], "time", 4, "time per step (s)"), (axes[1], "peak", 3, "peak memory (MiB)")):
        scale = 1.0 if what == "time" else 1.0 / MIB
        for name, label in (("rtrl", "RTRL"), ("uoro", "UORO"), ("bptt", "full BPTT")):
            ax.plot(H, cost[f"{name}_{what}"] * scale, "o-", label=label)
        top = cost[f"rtrl_{what}"][-1] * scale
        ax.plot(H, top * (H / H[-1]) ** guide, "k:", lw=1, label=f"$\\propto H^{guide}$")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("hidden units $H$")
        ax.set_ylabel(unit)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return axes


# --- UORO's error -------------------------------------------------------------------------------


def uoro_spread(H_values, seeds=range(5), draws: int = 20, *, T: int = 20, B: int = 1, D: int = 4,
                K: int = 4) -> dict:
    r"""UORO's relative error against full BPTT for each ``H`` and seed, over ``draws`` draws.

    Seed ``s`` fixes the network and sequence (:func:`problem`) and the signs
    (``default_rng(1000 + s)``). Returns ``{"H", "seeds", "draw_error"}`` with ``draw_error``
    (len(H), len(seeds), draws): :math:`\lVert g_n - g\rVert/\lVert g\rVert` of each draw, and
    ``"mean_error"`` (len(H), len(seeds)): the relative error of the mean of the draws.
    """
    seeds = list(seeds)
    draw_error = np.zeros((len(H_values), len(seeds), draws))
    mean_error = np.zeros((len(H_values), len(seeds)))
    for i, H in enumerate(H_values):
        for j, seed in enumerate(seeds):
            params, x, y = problem(T, B=B, D=D, H=int(H), K=K, seed=seed)
            _, full = models.full_grads(params, x, y)
            g = cell_vector(full)
            rng = np.random.default_rng(1000 + seed)
            estimates = np.array([cell_vector(online.uoro_grads(params, x, y, rng=rng)[1]) for _ in range(draws)])
            draw_error[i, j] = np.linalg.norm(estimates - g, axis=1) / np.linalg.norm(g)
            mean_error[i, j] = np.linalg.norm(estimates.mean(axis=0) - g) / np.linalg.norm(g)
    return {"H": np.asarray(H_values), "seeds": seeds, "draw_error": draw_error, "mean_error": mean_error}


def plot_uoro_spread(spread: dict, ax=None):
    """Against ``H``: the root-mean-square relative error of one draw and that of the mean of the draws, per seed."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.6))
    H = spread["H"]
    rms = np.sqrt((spread["draw_error"] ** 2).mean(axis=2))        # (H, seeds)
    draws = spread["draw_error"].shape[2]
    for j in range(rms.shape[1]):
        ax.plot(H * (1 + 0.03 * (j - 2)), rms[:, j], "o", color="C0", alpha=0.7,
                label="one draw (RMS over draws), per seed" if j == 0 else None)
        ax.plot(H * (1 + 0.03 * (j - 2)), spread["mean_error"][:, j], "s", color="C1", alpha=0.7,
                label=f"mean of {draws} draws, per seed" if j == 0 else None)
    ax.plot(H, np.median(rms, axis=1) / np.sqrt(draws), "k:", lw=1, label=r"median one-draw error / $\sqrt{N}$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(H)
    ax.set_xticklabels([str(int(v)) for v in H])
    ax.minorticks_off()
    ax.set_xlabel("hidden units $H$")
    ax.set_ylabel("relative error to full BPTT")
    ax.legend(fontsize=8)
    return ax


# --- the comparison table -----------------------------------------------------------------------


def _methods(T: int, k: int, c: float, every: int) -> dict:
    from . import artbp, truncation

    return {
        "full BPTT": (False, lambda p, x, y, rng: models.full_grads(p, x, y)),
        f"TBPTT({k}, {k})": (False, lambda p, x, y, rng: truncation.tbptt_grads(p, x, y, k, k)),
        f"ARTBP (c = {c})": (True, lambda p, x, y, rng: artbp.artbp_grads(p, x, y, c, rng=rng)),
        f"checkpointed (k = {every})": (False, lambda p, x, y, rng: ck.checkpointed_grads(p, x, y, every)),
        "RTRL": (False, lambda p, x, y, rng: online.rtrl_grads(p, x, y)),
        "UORO": (True, lambda p, x, y, rng: online.uoro_grads(p, x, y, rng=rng)),
    }


METHODS = ("full BPTT", "TBPTT", "ARTBP", "checkpointed", "RTRL", "UORO")
"""The rows of the comparison, in order."""


def comparison(T: int = 1000, *, B: int = 4, D: int = 4, H: int = 16, K: int = 4, k: int = 32, c: float = 0.1,
               every: int = 32, seeds=range(5), draws: int = 8, seed: int = 0, repeat: int = 2) -> dict:
    r"""Measure every method on one network and sequence (:func:`problem` with ``seed``).

    For each method: ``peak`` (bytes, one call), ``seconds`` (per step, best of ``repeat``
    calls; for figures), ``bias`` and ``variance``. A deterministic method's bias is the
    relative error of its gradient to full BPTT's, its variance 0. A random method is drawn
    ``draws`` times with each of the generators ``default_rng(s)``, ``s`` in ``seeds``: its
    bias is the relative error of the mean of all draws, its variance the mean of
    :math:`\lVert g_n - \bar g\rVert^2 / \lVert g\rVert^2` over the draws (``W``, ``U``, ``b``),
    and ``noise_floor`` :math:`\sqrt{\text{variance}/N}` the error the mean of ``N`` draws of an
    unbiased method would show from the variance alone.
    """
    _warm()
    params, x, y = problem(T, B=B, D=D, H=H, K=K, seed=seed)
    _, full = models.full_grads(params, x, y)
    g = cell_vector(full)
    rows = {}
    for name, (random, fn) in _methods(T, k, c, every).items():
        fn(params, x[:3], y[:3], np.random.default_rng(0))          # any first-call work outside the measurement
        with bptt.single_blas_thread():  # timing curves that do not depend on what else runs
            seconds = path_sum.time_per_call(lambda f=fn: f(params, x, y, np.random.default_rng(0)), repeats=repeat) / T
        row = {"peak": timing.peak_memory(fn, params, x, y, np.random.default_rng(0))[0], "seconds": seconds}
        if random:
            est = np.array([cell_vector(fn(params, x, y, gen)[1])
                            for s in seeds for gen in [np.random.default_rng(s)] for _ in range(draws)])
            mean = est.mean(axis=0)
            row["bias"] = float(np.linalg.norm(mean - g) / np.linalg.norm(g))
            row["variance"] = float(np.mean(np.sum((est - mean) ** 2, axis=1)) / (g @ g))
            row["noise_floor"] = float(np.sqrt(row["variance"] / len(est)))
            row["draws"] = len(est)
        else:
            row["bias"] = relative_error(fn(params, x, y, None)[1], full)
            row["variance"] = 0.0
            row["noise_floor"] = 0.0
            row["draws"] = 1
        rows[name] = row
    return {"rows": rows, "setup": dict(T=T, B=B, D=D, H=H, K=K, k=k, c=c, every=every, seeds=list(seeds),
                                        draws=draws, seed=seed)}


def _fmt(value: float, exact_below: float = 1e-9) -> str:
    if value < exact_below:
        return "< 1e-9"
    return f"{value:.2g}"


def comparison_table(result: dict) -> str:
    """The portable columns of :func:`comparison` as text: memory (MiB, 2 decimals), bias, variance."""
    lines = [f"{'method':<22} {'peak memory (MiB)':>17} {'bias':>8} {'variance':>9} {'noise floor':>12}"]
    for name, row in result["rows"].items():
        floor = "-" if row["draws"] == 1 else _fmt(row["noise_floor"])
        variance = "0" if row["draws"] == 1 else _fmt(row["variance"])
        lines.append(f"{name:<22} {row['peak'] / MIB:>17.2f} {_fmt(row['bias']):>8} {variance:>9} {floor:>12}")
    return "\n".join(lines)


def plot_comparison_times(result: dict, ax=None):
    """Bar chart of the time per step of each method (log scale)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 3.2))
    names = list(result["rows"])
    seconds = [result["rows"][n]["seconds"] * 1e6 for n in names]
    ax.barh(names, seconds, color=[f"C{i}" for i in range(len(names))])
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel(r"time per step ($\mu$s), this machine")
    return ax
