r"""Where the time of one BPTT call goes: the FLOP floor, a stage breakdown, a fair timer.

Used by the appendix "Where the time goes" and by ``benchmarks/bptt_speed.py``.

**The FLOP floor.** One call of :func:`bptt_lib.rnn.loss_and_grads` must at least
compute these matrix products (shapes for ``T`` steps, batch ``B``, sizes ``D, H, K``):

==========================  ===========================================  ==================
product                     shapes                                       multiply-adds
==========================  ===========================================  ==================
input projection            ``X (TB, D) @ U^T``                          ``T B D H``
recurrence, forward         ``T`` times ``h (B, H) @ W^T``               ``T B H^2``
output layer                ``h (TB, H) @ V^T``                          ``T B H K``
output layer, backward      ``G_o (TB, K) @ V``                          ``T B K H``
recurrence, backward        ``T`` times ``G_a (B, H) @ W``               ``T B H^2``
gradient outer products     ``G_a^T h``, ``G_a^T X``, ``G_o^T h``        ``T B (H^2 + H D + K H)``
==========================  ===========================================  ==================

Each multiply-add is two floating-point operations (:func:`flop_counts`).
:func:`floor_call` returns a function that runs exactly these products with
preallocated outputs, nothing else: its time is what the matrix products alone
cost on this machine, the floor the whole call is compared with.

**Timing.** :func:`measure` runs several functions in interleaved rounds and
reports CPU time (``time.process_time``) per call, so that a load that comes and
goes on a shared machine affects every function alike. Measure with one BLAS
thread (``threadpoolctl.threadpool_limits(1)`` or ``OPENBLAS_NUM_THREADS=1`` set
before NumPy is imported); CPU time of several threads adds up.
"""

from __future__ import annotations

import contextlib
import time
import tracemalloc

import numpy as np

from . import bptt, rnn

__all__ = ["flop_counts", "floor_call", "measure", "breakdown", "scaling", "one_blas_thread", "peak_memory", "STAGES",
           "plot_breakdown", "plot_scaling"]

STAGES = ("validation", "forward recurrence", "output layer + softmax", "backward recurrence",
          "gradient accumulation")
"""The parts of one ``loss_and_grads`` call reported by :func:`breakdown`, in call order."""


def flop_counts(T: int, B: int, D: int, H: int, K: int) -> dict:
    """Exact floating-point operation counts (2 per multiply-add) of the products of one call.

    Returns a dict: product name -> int; the key ``"total"`` is their sum.
    """
    T, B, D, H, K = (int(n) for n in (T, B, D, H, K))
    n = T * B
    counts = {
        "input projection": 2 * n * D * H,
        "recurrence, forward": 2 * n * H * H,
        "output layer": 2 * n * H * K,
        "output layer, backward": 2 * n * K * H,
        "recurrence, backward": 2 * n * H * H,
        "gradient outer products": 2 * n * (H * H + H * D + K * H),
    }
    counts["total"] = sum(counts.values())
    return counts


def floor_call(T: int, B: int, D: int, H: int, K: int, *, rng: np.random.Generator):
    """A function that runs only the matrix products of :func:`flop_counts`, into preallocated arrays.

    The operands are random float64 arrays of the right shapes (their values do
    not change the time of a product).
    """
    n = T * B
    X, h, G_a, G_o = (rng.standard_normal(s) for s in ((n, D), (n, H), (n, H), (n, K)))
    U, W, V = rng.standard_normal((H, D)), rng.standard_normal((H, H)), rng.standard_normal((K, H))
    xproj, o, dh_o = np.empty((n, H)), np.empty((n, K)), np.empty((n, H))
    step = np.empty((B, H))
    dW, dU, dV = np.empty((H, H)), np.empty((H, D)), np.empty((K, H))
    h_t, g_t = h.reshape(T, B, H), G_a.reshape(T, B, H)
    WT = W.T

    def run() -> None:
        np.matmul(X, U.T, out=xproj)
        for t in range(T):
            np.matmul(h_t[t], WT, out=step)
        np.matmul(h, V.T, out=o)
        np.matmul(G_o, V, out=dh_o)
        for t in range(T):
            np.matmul(g_t[t], W, out=step)
        np.matmul(G_a.T, h, out=dW)
        np.matmul(G_a.T, X, out=dU)
        np.matmul(G_o.T, h, out=dV)

    return run


@contextlib.contextmanager
def one_blas_thread():
    """Limit BLAS (and OpenMP) to one thread inside the block, with threadpoolctl if it is installed.

    Without threadpoolctl nothing is limited, and CPU times add up over BLAS's threads.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(1):
        yield


def peak_memory(fn, *args, **kwargs) -> tuple[int, object]:
    """Peak bytes allocated while ``fn(*args, **kwargs)`` runs (tracemalloc, which NumPy reports to), and its result.

    ``fn`` is called once before the measurement, so that one-time work (generating
    kernels, the BLAS thread controller) is not counted; then the scratch arrays of
    :func:`bptt_lib.bptt.workspace` are freed, so that those the measured call needs are
    allocated, and counted, inside it (otherwise an earlier, longer call's would be reused).
    Chapters 11 and 13 measure memory with it.
    """
    fn(*args, **kwargs)
    bptt.clear_workspace()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = fn(*args, **kwargs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        bptt.clear_workspace()
    return peak, result


def measure(functions: dict, *, repeats: int = 5, min_time: float = 0.05) -> dict:
    """CPU time per call of each function, in ``repeats`` interleaved rounds.

    Each function is called once first (warm-up, not timed: caches, JIT
    compilation), then called ``n`` times per round with ``n`` chosen so that one
    round takes about ``min_time`` seconds of CPU time. The order of the functions
    rotates from round to round.

    Returns
    -------
    dict
        name -> ndarray of ``repeats`` per-call times in seconds (take the median).
    """
    names = list(functions)
    calls = {}
    for name in names:
        start = time.process_time()
        functions[name]()
        once = max(time.process_time() - start, 1e-6)
        calls[name] = max(1, int(np.ceil(min_time / once)))
    times = {name: np.empty(repeats) for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn, n = functions[name], calls[name]
            start = time.process_time()
            for _ in range(n):
                fn()
            times[name][r] = (time.process_time() - start) / n
    return times


def breakdown(params: dict, x: np.ndarray, y: np.ndarray, *, repeats: int = 5, min_time: float = 0.05) -> dict:
    """Median CPU time of one :func:`bptt_lib.rnn.loss_and_grads` call and of its parts (:data:`STAGES`).

    Each part is the library's own code for that stage, run alone on the same
    inputs, in interleaved rounds with the whole call and with the FLOP floor
    (:func:`floor_call`). With the recurrent core of :mod:`bptt_lib.bptt`:

    - *validation*: :func:`~bptt_lib.rnn.check_inputs` and :func:`~bptt_lib.rnn.check_targets`;
    - *forward recurrence*: :func:`bptt_lib.bptt.forward` (input projection and the loop over time);
    - *output layer + softmax*: :func:`bptt_lib.bptt.output_layer` on every block of steps
      (logits, softmax, loss, their backward pass and ``dV``, ``dc``);
    - *backward recurrence*: the loop of ``cell.step_vjp`` over every block, as :func:`bptt_lib.bptt.bptt` runs it;
    - *gradient accumulation*: ``cell.param_vjp`` on every block (``dW``, ``dU``, ``db``).

    The parts are timed independently of the whole call: their sum equals the
    whole only if the call is these stages and nothing else
    (``tests/test_timing.py`` checks it within a stated tolerance).

    Returns
    -------
    dict
        ``"whole"``: the call's median time (s); ``"parts"``: stage -> median time (s);
        ``"floor"``: the median time of :func:`floor_call` at the same size (s);
        ``"measured"``: name -> all ``repeats`` times of each timed function.
    """
    p, x, h0, sizes = rnn.check_inputs(params, x, None, kind="float")
    y = rnn.check_targets(y, sizes)
    T, B, D = x.shape
    H, K = p["W"].shape[0], p["V"].shape[0]

    def validation():
        _, _, _, s = rnn.check_inputs(params, x, None, kind="float")
        rnn.check_targets(y, s)

    stages = _stages_of_the_core(p, x, y, h0)
    functions = {"whole": lambda: rnn.loss_and_grads(params, x, y), "validation": validation,
                 **stages["functions"], "floor": floor_call(T, B, D, H, K, rng=np.random.default_rng(0))}
    measured = measure(functions, repeats=repeats, min_time=min_time)
    m = {name: float(np.median(values)) for name, values in measured.items()}
    parts = {"validation": m["validation"], **stages["parts"](m)}
    return {"whole": m["whole"], "parts": {stage: parts[stage] for stage in STAGES}, "floor": m["floor"],
            "measured": measured}


def _stages_of_the_core(p, x, y, h0) -> dict:
    """The stages of :func:`bptt_lib.bptt.bptt`, each a function that runs it alone."""
    from . import bptt
    from .cell import rnn_cell

    cell = rnn_cell()
    T, B, _ = x.shape
    blocks = bptt.blocks(T, B)
    h = bptt.forward(cell, p, x, h0)
    grads = {key: np.zeros_like(value) for key, value in p.items()}
    dh = {block: bptt.output_layer(p, h[block[0] + 1:block[1] + 1], y[block[0]:block[1]], grads)[1]
          for block in blocks}
    work = {block: np.empty_like(value) for block, value in dh.items()}

    def output_layer():
        for t0, t1 in blocks:
            bptt.output_layer(p, h[t0 + 1:t1 + 1], y[t0:t1], grads)

    def backward_recurrence():
        dh_next = np.zeros_like(h0)
        for t0, t1 in reversed(blocks):
            g = work[(t0, t1)]
            np.copyto(g, dh[(t0, t1)])       # the output layer's gradients, as the call receives them
            with bptt.one_blas_thread(dh_next.size * h.shape[-1]):   # as bptt.bptt decides
                for t in reversed(range(t1 - t0)):
                    g[t] += dh_next
                    g[t], dh_next = cell.step_vjp(p, h[t0 + t], h[t0 + t + 1], g[t])

    backward_recurrence()  # leaves the steps' gradients da in `work`

    def gradient_accumulation():
        for t0, t1 in blocks:
            cell.param_vjp(p, work[(t0, t1)], h[t0:t1 + 1], x[t0:t1], grads)

    functions = {"forward": lambda: bptt.forward(cell, p, x, h0), "output layer": output_layer,
                 "backward recurrence": backward_recurrence, "gradient accumulation": gradient_accumulation}
    return {"functions": functions, "parts": lambda m: {
        "forward recurrence": m["forward"], "output layer + softmax": m["output layer"],
        "backward recurrence": m["backward recurrence"], "gradient accumulation": m["gradient accumulation"]}}


def scaling(sizes, *, repeats: int = 3, min_time: float = 0.02, seed: int = 0) -> dict:
    """Median CPU time of ``loss_and_grads`` and of the FLOP floor at each size (T, B, D, H, K).

    Returns
    -------
    dict
        ``"bptt"`` and ``"floor"``: lists of median times (s), one per size, in the order given.
    """
    out = {"bptt": [], "floor": []}
    for T, B, D, H, K in sizes:
        rng = np.random.default_rng(seed)
        params = rnn.init_params(D, H, K, rng=rng)
        x, y = rng.standard_normal((T, B, D)), rng.integers(0, K, size=(T, B))
        times = measure({"bptt": lambda params=params, x=x, y=y: rnn.loss_and_grads(params, x, y),
                         "floor": floor_call(T, B, D, H, K, rng=rng)}, repeats=repeats, min_time=min_time)
        for name in out:
            out[name].append(float(np.median(times[name])))
    return out


def plot_breakdown(results: dict, ax=None):
    """Horizontal stacked bars: each size's call split into :data:`STAGES`, as fractions of the whole.

    ``results`` maps a label (e.g. ``"canonical"``) to a :func:`breakdown` result. A part
    that came out negative (a difference smaller than the noise) is drawn as zero. A black
    diamond marks the FLOP floor's share of the whole call.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 1.6 + 0.5 * len(results)))
    labels = list(results)
    for row, label in enumerate(labels):
        whole, left = results[label]["whole"], 0.0
        for i, stage in enumerate(STAGES):
            share = max(results[label]["parts"][stage], 0.0) / whole
            ax.barh(row, share, left=left, height=0.6, color=f"C{i}", label=stage if row == 0 else None)
            left += share
        ax.plot(results[label]["floor"] / whole, row - 0.42, "kD", ms=5,
                label="FLOP floor (matrix products alone)" if row == 0 else None)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("share of one loss_and_grads call (CPU time)")
    ax.axvline(1.0, color="0.3", lw=0.8, ls=":")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=8)
    return ax


def plot_scaling(x, result: dict, *, xlabel: str, ax=None):
    """Log-log plot of ``loss_and_grads`` time and the FLOP floor (ms) against one size ``x``."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    ax.loglog(x, 1e3 * np.asarray(result["bptt"]), "o-", label="bptt_lib.rnn.loss_and_grads")
    ax.loglog(x, 1e3 * np.asarray(result["floor"]), "s--", label="FLOP floor (the matrix products alone)")
    ax.set_xticks(x, [str(v) for v in x])
    ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("CPU time per call (ms)")
    ax.legend(fontsize=8)
    return ax
