"""How fast is ``bptt_lib.rnn.loss_and_grads``? Against the FLOP floor, PyTorch and JAX.

A benchmark, not a test (pytest does not collect it). For each size (T, B, D, H, K) it prints
the CPU time of one ``loss_and_grads`` call (loss and every parameter gradient by full BPTT,
float64), the FLOP floor measured in the same run (the same matrix products, same shapes, timed
alone: :func:`bptt_lib.timing.floor_call`), their ratio, and, when they are installed, the time of
PyTorch's CPU autograd (``nn.RNN(tanh)`` + ``nn.Linear`` + cross-entropy) and of JAX's
``jit(value_and_grad)`` over ``lax.scan``, all computing the same loss (summed over time, averaged
over the batch) from the same parameters. Before timing, it checks once per size that all of them
give the same loss and gradients (relative difference below 1e-9, float64 everywhere).

Fair conditions: one BLAS/OpenMP/XLA thread for every library (environment variables set before
any of them is imported, then threadpoolctl and ``torch.set_num_threads(1)``); CPU time
(``time.process_time``); interleaved rounds (every implementation once per round, order rotating);
warm-up (JIT compilation) not timed; median and range over the rounds. Finally the peak memory of
one call at T=1000, B=32, D=64, H=256, K=64 (tracemalloc, which sees NumPy's allocations) against
the bytes of the stored hidden states, (T + 1) B H * 8.

Usage (PyTorch and JAX are optional: ``pip install -e .[bench]``)::

    python benchmarks/bptt_speed.py                     # every size, 7 rounds
    python benchmarks/bptt_speed.py --sizes canonical small --repeats 11 --json out.json
    PYTHONPATH=/path/to/other/clone python benchmarks/bptt_speed.py   # another bptt_lib
    python benchmarks/bptt_speed.py --baseline /path/to/older/clone   # both, interleaved in one process

``--baseline DIR`` loads ``DIR/bptt_lib`` a second time, under another name, and times its
``loss_and_grads`` in the same rounds: on a shared machine, two versions are compared fairly only
in one process, interleaved.

The JAX version projects the inputs of all steps in one product before the scan and computes the
output layer after it, as a careful JAX user would (PyTorch's nn.RNN does the same internally).

The gated cells of Part V (``--gated``, all of :data:`GATED_CELLS` by default) are timed at the
canonical size only, each against PyTorch's own cell with a Linear output and cross-entropy, in
interleaved rounds, after the same agreement check (for the LSTM: ``nn.LSTM``, whose gate order
(i, f, g, o) is mapped to the book's keys, and its second bias set to zero).
For the GRU: ``nn.GRU`` applies the reset gate after the product, so it is checked against
``bptt_lib.gru`` with ``reset="after"`` (its blocks (r, z, n) mapped to the book's keys, its
second bias zero); the time compared is that of the book's GRU (reset before the product,
the same number of multiply-adds), and the reset-after variant is timed in the same rounds.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# One thread for every library: must be set before NumPy, PyTorch or JAX is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_ENABLE_X64", "1")

import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402

if "PYTHONPATH" not in os.environ:  # this clone's bptt_lib, unless PYTHONPATH names another
    sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bptt_lib import rnn, timing  # noqa: E402

try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:  # the environment variables above already ask for one thread
    threadpool_info = threadpool_limits = None

SIZES = {  # name: (T, B, D, H, K)
    "canonical": (100, 32, 64, 128, 64),
    "small": (20, 1, 8, 16, 8),
    "long": (1000, 8, 32, 64, 32),
    "wide": (50, 64, 256, 512, 256),
    "tiny-batch-long": (500, 1, 16, 32, 16),
}
MEMORY_SIZE = (1000, 32, 64, 256, 64)
PARAMS = ("U", "W", "V", "b", "c")
CHECK_RTOL = 1e-9


def problem(T, B, D, H, K, seed=0):
    """Parameters (small random biases, so that their gradients are checked too), inputs, targets."""
    rng = np.random.default_rng(seed)
    params = rnn.init_params(D, H, K, rng=rng)
    params["b"] = 0.1 * rng.standard_normal(H)
    params["c"] = 0.1 * rng.standard_normal(K)
    x = rng.standard_normal((T, B, D))
    y = rng.integers(0, K, size=(T, B))
    return params, x, y


def version_of(name: str):
    """The installed version of the optional library ``name``, or None when it is not installed."""
    try:
        module = importlib.import_module(name)
    except ImportError:
        return None
    return module.__version__


# ---------------------------------------------------------------- PyTorch


def torch_call(params, x, y):
    """A function returning (loss, grads) by PyTorch's autograd, and the function to time."""
    import torch

    T, B, D = x.shape
    H, K = params["W"].shape[0], params["V"].shape[0]
    cell = torch.nn.RNN(D, H, nonlinearity="tanh", dtype=torch.float64)
    out = torch.nn.Linear(H, K, dtype=torch.float64)
    with torch.no_grad():
        cell.weight_ih_l0.copy_(torch.from_numpy(params["U"]))
        cell.weight_hh_l0.copy_(torch.from_numpy(params["W"]))
        cell.bias_ih_l0.copy_(torch.from_numpy(params["b"]))
        cell.bias_hh_l0.zero_()  # nn.RNN has two biases; their sum is the book's b
        out.weight.copy_(torch.from_numpy(params["V"]))
        out.bias.copy_(torch.from_numpy(params["c"]))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).reshape(-1)
    weights = [cell.weight_ih_l0, cell.weight_hh_l0, out.weight, cell.bias_ih_l0, out.bias]

    def run():
        h, _ = cell(xt)  # (T, B, H); h0 = 0
        o = out(h).reshape(T * B, K)
        value = torch.nn.functional.cross_entropy(o, yt, reduction="sum") / B
        return value, torch.autograd.grad(value, weights)

    def result():
        value, grads = run()
        return float(value.detach()), {k: g.numpy() for k, g in zip(PARAMS, grads)}

    return result, run


# ---------------------------------------------------------------- JAX


def jax_call(params, x, y):
    """A function returning (loss, grads) by ``jit(value_and_grad)`` over ``lax.scan``, and the function to time."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    T, B, D = x.shape
    H = params["W"].shape[0]

    def loss(p, x, y):
        xproj = x @ p["U"].T + p["b"]  # all steps in one product

        def step(h, xp):
            h = jnp.tanh(xp + h @ p["W"].T)
            return h, h

        _, hs = jax.lax.scan(step, jnp.zeros((B, H)), xproj)
        logp = jax.nn.log_softmax(hs @ p["V"].T + p["c"], axis=-1)
        return -jnp.take_along_axis(logp, y[..., None], axis=-1).sum() / B

    value_and_grad = jax.jit(jax.value_and_grad(loss))
    pj = {k: jnp.asarray(v) for k, v in params.items()}
    xj, yj = jnp.asarray(x), jnp.asarray(y)

    def run():
        return jax.block_until_ready(value_and_grad(pj, xj, yj))

    def result():
        value, grads = run()
        return float(value), {k: np.asarray(grads[k]) for k in PARAMS}

    return result, run


# ---------------------------------------------------------------- another bptt_lib

def load_baseline(directory):
    """``bptt_lib.rnn`` of another checkout, imported as the package ``bptt_lib_baseline``."""
    import importlib
    import importlib.util

    package = os.path.join(os.path.abspath(directory), "bptt_lib")
    spec = importlib.util.spec_from_file_location("bptt_lib_baseline", os.path.join(package, "__init__.py"),
                                                  submodule_search_locations=[package])
    module = importlib.util.module_from_spec(spec)
    sys.modules["bptt_lib_baseline"] = module
    spec.loader.exec_module(module)
    return importlib.import_module("bptt_lib_baseline.rnn")


def baseline_call(baseline_rnn):
    def make(params, x, y):
        def run():
            return baseline_rnn.loss_and_grads(params, x, y)
        return run, run
    return make


# ---------------------------------------------------------------- gated cells (Part V): LSTM

GATED_CELLS = globals().get("GATED_CELLS", {})
"""Gated cells timed at the canonical size against PyTorch: name -> ``bench(repeats, use_torch) -> dict``."""

LSTM_GATES_TORCH = ("i", "f", "g", "q")
"""PyTorch stacks the LSTM's gates as (input, forget, cell, output); bptt_lib.lstm as (f, i, g, q)."""


def lstm_problem(T, B, D, H, K, seed=0):
    """LSTM parameters (forget bias 1, small random biases so that their gradients are checked), inputs, targets."""
    from bptt_lib import lstm

    rng = np.random.default_rng(seed)
    params = lstm.init_params(D, H, K, rng=rng)
    for key in params:
        if key.startswith("b_") or key == "c":
            params[key] = params[key] + 0.1 * rng.standard_normal(params[key].shape)
    return params, rng.standard_normal((T, B, D)), rng.integers(0, K, size=(T, B))


def lstm_torch_call(params, x, y):
    """PyTorch's ``nn.LSTM`` + ``nn.Linear`` + cross-entropy (sum over time / B): (result, run), as torch_call."""
    import torch

    T, B, D = x.shape
    H, K = params["W_f"].shape[0], params["V"].shape[0]
    cell = torch.nn.LSTM(D, H, dtype=torch.float64)
    out = torch.nn.Linear(H, K, dtype=torch.float64)
    with torch.no_grad():
        cell.weight_ih_l0.copy_(torch.from_numpy(np.concatenate([params[f"U_{g}"] for g in LSTM_GATES_TORCH])))
        cell.weight_hh_l0.copy_(torch.from_numpy(np.concatenate([params[f"W_{g}"] for g in LSTM_GATES_TORCH])))
        cell.bias_ih_l0.copy_(torch.from_numpy(np.concatenate([params[f"b_{g}"] for g in LSTM_GATES_TORCH])))
        cell.bias_hh_l0.zero_()  # two biases; their sum is the book's b_*
        out.weight.copy_(torch.from_numpy(params["V"]))
        out.bias.copy_(torch.from_numpy(params["c"]))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).reshape(-1)
    weights = [cell.weight_ih_l0, cell.weight_hh_l0, cell.bias_ih_l0, out.weight, out.bias]

    def run():
        h, _ = cell(xt)  # (T, B, H); zero initial state
        o = out(h).reshape(T * B, K)
        value = torch.nn.functional.cross_entropy(o, yt, reduction="sum") / B
        return value, torch.autograd.grad(value, weights)

    def result():
        value, (dU, dW, db, dV, dc) = run()
        grads = {"V": dV.numpy(), "c": dc.numpy()}
        for j, g in enumerate(LSTM_GATES_TORCH):
            rows = slice(j * H, (j + 1) * H)
            grads[f"U_{g}"], grads[f"W_{g}"], grads[f"b_{g}"] = dU[rows].numpy(), dW[rows].numpy(), db[rows].numpy()
        return float(value.detach()), grads

    return result, run


def bench_lstm(repeats, use_torch=True, dims=None):
    """``bptt_lib.lstm.loss_and_grads`` at the canonical size, against PyTorch when installed (checked to agree)."""
    from bptt_lib import lstm

    dims = SIZES["canonical"] if dims is None else dims
    params, x, y = lstm_problem(*dims)
    value, grads = lstm.loss_and_grads(params, x, y)
    functions = {"bptt_lib": lambda: lstm.loss_and_grads(params, x, y)}
    agreement = {}
    if use_torch and version_of("torch"):
        result, run = lstm_torch_call(params, x, y)
        t_value, t_grads = result()
        worst = abs(t_value - value) / abs(value)
        for key in grads:
            worst = max(worst, relative_difference(np.asarray(t_grads[key], dtype=float), grads[key]))
        if not worst < CHECK_RTOL:
            raise AssertionError(f"torch LSTM differs from bptt_lib.lstm by {worst:.2e} relative (> {CHECK_RTOL:g})")
        agreement["torch"] = worst
        functions["torch"] = run
    times = timing.measure(functions, repeats=repeats, min_time=0.1)
    return {"name": "lstm", "dims": dict(zip("TBDHK", dims)), "max_relative_difference": agreement,
            "times": {k: v.tolist() for k, v in times.items()},
            "median": {k: float(np.median(v)) for k, v in times.items()}}


GATED_CELLS["lstm"] = bench_lstm


# ---------------------------------------------------------------- gated cells (Part V): GRU

GRU_GATES_TORCH = ("r", "z", "h")
"""PyTorch stacks the GRU's blocks as (reset, update, new); bptt_lib.gru's keys are W_z, W_r, W_h, ..."""


def gru_problem(T, B, D, H, K, seed=0):
    """GRU parameters (small random biases, so that their gradients are checked), inputs, targets."""
    from bptt_lib import gru

    rng = np.random.default_rng(seed)
    params = gru.init_params(D, H, K, rng=rng)
    for key in params:
        if key.startswith("b_") or key == "c":
            params[key] = params[key] + 0.1 * rng.standard_normal(params[key].shape)
    return params, rng.standard_normal((T, B, D)), rng.integers(0, K, size=(T, B))


def gru_torch_call(params, x, y):
    """PyTorch's ``nn.GRU`` + ``nn.Linear`` + cross-entropy (sum over time / B): (result, run) as :func:`torch_call`.

    ``nn.GRU`` applies the reset gate after the product, r * (W_hn h + b_hn): that is
    ``bptt_lib.gru`` with ``reset="after"`` and the optional key ``b_hn`` (zero if absent),
    against which it is checked.
    """
    import torch

    T, B, D = x.shape
    H, K = params["W_z"].shape[0], params["V"].shape[0]
    cell = torch.nn.GRU(D, H, dtype=torch.float64)
    out = torch.nn.Linear(H, K, dtype=torch.float64)
    with torch.no_grad():
        cell.weight_ih_l0.copy_(torch.from_numpy(np.concatenate([params[f"U_{g}"] for g in GRU_GATES_TORCH])))
        cell.weight_hh_l0.copy_(torch.from_numpy(np.concatenate([params[f"W_{g}"] for g in GRU_GATES_TORCH])))
        cell.bias_ih_l0.copy_(torch.from_numpy(np.concatenate([params[f"b_{g}"] for g in GRU_GATES_TORCH])))
        cell.bias_hh_l0.zero_()  # b_hr, b_hz would only add to b_r, b_z; b_hn sits inside r * (...)
        if "b_hn" in params:
            cell.bias_hh_l0[2 * H:].copy_(torch.from_numpy(params["b_hn"]))
        out.weight.copy_(torch.from_numpy(params["V"]))
        out.bias.copy_(torch.from_numpy(params["c"]))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).reshape(-1)
    weights = [cell.weight_ih_l0, cell.weight_hh_l0, cell.bias_ih_l0, out.weight, out.bias, cell.bias_hh_l0]

    def run():
        h, _ = cell(xt)  # (T, B, H); zero initial state
        o = out(h).reshape(T * B, K)
        value = torch.nn.functional.cross_entropy(o, yt, reduction="sum") / B
        return value, torch.autograd.grad(value, weights)

    def result():
        value, (dU, dW, db, dV, dc, db_hh) = run()
        grads = {"V": dV.numpy(), "c": dc.numpy(), "b_hn": db_hh[2 * H:].numpy()}
        for j, g in enumerate(GRU_GATES_TORCH):
            rows = slice(j * H, (j + 1) * H)
            grads[f"U_{g}"], grads[f"W_{g}"], grads[f"b_{g}"] = dU[rows].numpy(), dW[rows].numpy(), db[rows].numpy()
        return float(value.detach()), grads

    return result, run


def bench_gru(repeats, use_torch=True, dims=None):
    """``bptt_lib.gru.loss_and_grads`` (the book's GRU, reset before the product) at the canonical size.

    Timed in the same interleaved rounds: PyTorch's ``nn.GRU`` when installed, after checking
    that it agrees with ``bptt_lib.gru`` in PyTorch's convention (``reset="after"``, with a
    random ``b_hn``), and that convention of ``bptt_lib.gru`` too (``"reset_after"`` in the
    result; printed to stderr).
    """
    from bptt_lib import gru

    dims = SIZES["canonical"] if dims is None else dims
    params, x, y = gru_problem(*dims)
    after = dict(params, b_hn=0.1 * np.random.default_rng(1).standard_normal(params["b_h"].shape))
    functions = {"bptt_lib": lambda: gru.loss_and_grads(params, x, y),
                 "reset_after": lambda: gru.loss_and_grads(after, x, y, reset="after")}
    agreement = {}
    if use_torch and version_of("torch"):
        value, grads = gru.loss_and_grads(after, x, y, reset="after")
        result, run = gru_torch_call(after, x, y)
        t_value, t_grads = result()
        worst = abs(t_value - value) / abs(value)
        for key in grads:
            worst = max(worst, relative_difference(np.asarray(t_grads[key], dtype=float), grads[key]))
        if not worst < CHECK_RTOL:
            raise AssertionError(f"torch GRU differs from bptt_lib.gru(reset='after') by {worst:.2e} relative "
                                 f"(> {CHECK_RTOL:g})")
        agreement["torch"] = worst
        functions["torch"] = run
    times = timing.measure(functions, repeats=repeats, min_time=0.1)
    median = {k: float(np.median(v)) for k, v in times.items()}
    print(f"  gru: bptt_lib reset='before' {ms(median['bptt_lib'])} ms, reset='after' {ms(median['reset_after'])} ms"
          + (f", torch nn.GRU {ms(median['torch'])} ms (checked against reset='after')" if "torch" in median else ""),
          file=sys.stderr, flush=True)
    return {"name": "gru", "dims": dict(zip("TBDHK", dims)), "max_relative_difference": agreement,
            "times": {k: v.tolist() for k, v in times.items()}, "median": median}


GATED_CELLS["gru"] = bench_gru


def print_gated(results):
    """One line per gated cell: bptt_lib's time, PyTorch's, their ratio (> 1: bptt_lib is faster)."""
    for r in results:
        med, t = r["median"], r["times"]
        dims = ",".join(str(v) for v in r["dims"].values())
        line = (f"{r['name']:<6} at T,B,D,H,K = {dims}: bptt_lib {ms(med['bptt_lib'])} ms "
                f"[{ms(min(t['bptt_lib']))}-{ms(max(t['bptt_lib']))}]")
        if "torch" in med:
            line += (f", torch {ms(med['torch'])} ms [{ms(min(t['torch']))}-{ms(max(t['torch']))}], "
                     f"torch/bptt_lib {med['torch'] / med['bptt_lib']:.2f}; same loss and gradients "
                     f"(largest relative difference {r['max_relative_difference']['torch']:.1e} < {CHECK_RTOL:g})")
        print(line)


# ---------------------------------------------------------------- the benchmark

def relative_difference(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def check_same(name, result, reference):
    """Largest relative difference of loss and gradients from ``reference``; raises above CHECK_RTOL."""
    value, grads = result
    ref_value, ref_grads = reference
    worst = abs(value - ref_value) / abs(ref_value)
    for key in PARAMS:
        worst = max(worst, relative_difference(np.asarray(grads[key], dtype=float), ref_grads[key]))
    if not worst < CHECK_RTOL:
        raise AssertionError(f"{name} differs from bptt_lib by {worst:.2e} relative (> {CHECK_RTOL:g})")
    return worst


def bench_size(name, dims, repeats, libraries):
    T, B, D, H, K = dims
    params, x, y = problem(*dims)
    reference = rnn.loss_and_grads(params, x, y)
    functions = {"bptt_lib": lambda: rnn.loss_and_grads(params, x, y),
                 "floor": timing.floor_call(T, B, D, H, K, rng=np.random.default_rng(1))}
    agreement = {}
    for lib, make in libraries.items():
        result, run = make(params, x, y)
        agreement[lib] = check_same(lib, result(), reference)
        functions[lib] = run
    times = timing.measure(functions, repeats=repeats, min_time=0.1)
    flops = timing.flop_counts(*dims)["total"]
    return {"name": name, "dims": dict(zip("TBDHK", dims)), "flops": flops,
            "max_relative_difference": agreement,
            "times": {k: v.tolist() for k, v in times.items()},
            "median": {k: float(np.median(v)) for k, v in times.items()}}


def peak_memory(dims, module=rnn):
    T, B, D, H, K = dims
    params, x, y = problem(*dims)
    module.loss_and_grads(params, x, y)  # warm-up: caches, generated kernels
    # The core keeps its work arrays between calls (bptt_lib.bptt.workspace): free them, so that
    # the peak counts what one call needs, workspaces included, not what an earlier call left.
    clear = getattr(sys.modules.get(module.__name__.rpartition(".")[0] + ".bptt"), "clear_workspace", None)
    if clear is not None:
        clear()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    module.loss_and_grads(params, x, y)
    peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    states = (T + 1) * B * H * 8
    return {"dims": dict(zip("TBDHK", dims)), "peak_bytes": peak, "stored_states_bytes": states,
            "ratio": peak / states}


def environment():
    info = {"python": platform.python_version(), "numpy": np.__version__, "machine": platform.machine(),
            "cpu": _cpu_name(), "cpus": os.cpu_count(), "bptt_lib": rnn.__file__,
            "torch": version_of("torch"), "jax": version_of("jax")}
    if threadpool_info is not None:
        info["blas"] = [{k: d.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
                        for d in threadpool_info()]
    if hasattr(os, "getloadavg"):
        info["load_average_1min"] = os.getloadavg()[0]
    return info


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def ms(seconds):
    return f"{seconds * 1e3:.3g}"


def print_table(results, memory, env, baseline_memory=None):
    print(f"bptt_lib from {env['bptt_lib']}; NumPy {env['numpy']}; PyTorch {env['torch'] or 'not installed'}; "
          f"JAX {env['jax'] or 'not installed'}")
    print(f"CPU: {env['cpu']} ({env['cpus']} logical); one thread per library; CPU time per call; "
          f"median of the rounds [min-max]; load average {env.get('load_average_1min', float('nan')):.2f}")
    head = (f"{'size':<16}{'T,B,D,H,K':<20}{'MFLOP':>8}  {'bptt_lib ms':<21}{'floor ms':<10}{'/floor':>7}  "
            f"{'torch ms':<10}{'torch/bptt':>10}  {'jax ms':<10}{'jax/bptt':>9}"
            + (f"  {'base ms':<10}{'base/bptt':>9}" if env.get("baseline") else ""))
    if env.get("baseline"):
        print(f"baseline: the bptt_lib of {env['baseline']}, timed in the same rounds")
    print(head)
    print("-" * len(head))
    for r in results:
        med, t = r["median"], r["times"]
        dims = ",".join(str(v) for v in r["dims"].values())
        row = (f"{r['name']:<16}{dims:<20}{r['flops'] / 1e6:>8.1f}  "
               f"{ms(med['bptt_lib']) + ' [' + ms(min(t['bptt_lib'])) + '-' + ms(max(t['bptt_lib'])) + ']':<21}"
               f"{ms(med['floor']):<10}{med['bptt_lib'] / med['floor']:>7.2f}  ")
        for lib in ("torch", "jax", "baseline"):
            if lib in med:
                row += f"{ms(med[lib]):<10}{med[lib] / med['bptt_lib']:>{10 if lib == 'torch' else 9}.2f}  "
            elif lib != "baseline":
                row += f"{'-':<10}{'-':>{10 if lib == 'torch' else 9}}  "
        print(row.rstrip())
    print("(x/bptt > 1: bptt_lib is faster; /floor: bptt_lib's time over the matrix products alone)")
    for r in results:
        if r["max_relative_difference"]:
            agree = ", ".join(f"{k} {v:.1e}" for k, v in r["max_relative_difference"].items())
            print(f"same loss and gradients at {r['name']}: largest relative difference {agree} (< {CHECK_RTOL:g})")
    if memory:
        d = memory["dims"]
        print(f"peak memory of one call at T={d['T']}, B={d['B']}, D={d['D']}, H={d['H']}, K={d['K']}: "
              f"{memory['peak_bytes'] / 2**20:.1f} MiB = {memory['ratio']:.2f} x the stored hidden states "
              f"({memory['stored_states_bytes'] / 2**20:.1f} MiB)")
    if baseline_memory:
        print(f"  baseline: {baseline_memory['peak_bytes'] / 2**20:.1f} MiB = {baseline_memory['ratio']:.2f} x")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--json", metavar="PATH", help="also write the numbers to PATH")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--no-jax", action="store_true")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--baseline", metavar="DIR", help="also time DIR/bptt_lib (another checkout), interleaved")
    parser.add_argument("--gated", nargs="*", choices=sorted(GATED_CELLS), default=sorted(GATED_CELLS),
                        help="gated cells to time at the canonical size against PyTorch (default: all; none: --gated)")
    args = parser.parse_args(argv)

    libraries = {}
    if not args.no_torch and version_of("torch"):
        import torch
        torch.set_num_threads(1)
        torch.set_num_interop_threads(1)
        libraries["torch"] = torch_call
    if not args.no_jax and version_of("jax"):
        libraries["jax"] = jax_call
    baseline_rnn = None
    if args.baseline:
        baseline_rnn = load_baseline(args.baseline)
        libraries["baseline"] = baseline_call(baseline_rnn)
    env = environment()
    env["baseline"] = baseline_rnn.__file__ if baseline_rnn else None
    limits = threadpool_limits(1) if threadpool_limits is not None else None
    try:
        results = []
        for name in args.sizes:
            start = time.perf_counter()
            results.append(bench_size(name, SIZES[name], args.repeats, libraries))
            print(f"  {name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        memory = None if args.no_memory else peak_memory(MEMORY_SIZE)
        baseline_memory = None if args.no_memory or not baseline_rnn else peak_memory(MEMORY_SIZE, baseline_rnn)
        gated = [GATED_CELLS[name](args.repeats, "torch" in libraries) for name in args.gated]
    finally:
        if limits is not None:
            limits.restore_original_limits()
    print_table(results, memory, env, baseline_memory)
    print_gated(gated)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "sizes": results, "memory": memory, "baseline_memory": baseline_memory,
                       "gated": gated}, f, indent=1)
    return results, memory


if __name__ == "__main__":
    main()
