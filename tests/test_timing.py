"""bptt_lib.timing: exact FLOP counts, the floor runs exactly those products, the breakdown adds up."""

import contextlib
import ctypes

import numpy as np
import pytest

from bptt_lib import rnn, timing

RANDOM_SIZES = [tuple(int(n) for n in np.random.default_rng(seed).integers(1, 13, size=5)) for seed in range(6)]


def test_flop_counts_by_hand_at_the_canonical_size():
    # 2 T B (D H + H^2 + H K + K H + H^2 + H^2 + H D + K H) = 2 * 3200 * (2*8192 + 3*16384 + 3*8192)
    counts = timing.flop_counts(100, 32, 64, 128, 64)
    assert counts["total"] == 2 * 3200 * (2 * 8192 + 3 * 16384 + 3 * 8192) == 576_716_800
    assert counts["recurrence, forward"] == counts["recurrence, backward"] == 2 * 3200 * 128 * 128
    assert sum(v for k, v in counts.items() if k != "total") == counts["total"]
    assert all(isinstance(v, int) for v in counts.values())


class _MatmulSpy:
    """Stands in for numpy inside bptt_lib.timing: counts 2 m k n for every matmul (m, k) @ (k, n)."""

    def __init__(self):
        self.flops = 0
        self.calls = 0

    def __getattr__(self, name):
        return getattr(np, name)

    def matmul(self, a, b, out=None):
        (m, k), (k2, n) = a.shape, b.shape
        assert k == k2
        self.flops += 2 * m * k * n
        self.calls += 1
        return np.matmul(a, b, out=out)


@pytest.mark.parametrize("sizes", RANDOM_SIZES + [(3, 2, 5, 7, 4)], ids=str)
def test_the_floor_runs_exactly_the_counted_products(monkeypatch, sizes):
    T, B, D, H, K = sizes
    run = timing.floor_call(T, B, D, H, K, rng=np.random.default_rng(0))
    spy = _MatmulSpy()
    monkeypatch.setattr(timing, "np", spy)
    run()
    assert spy.flops == timing.flop_counts(T, B, D, H, K)["total"]
    assert spy.calls == 2 * T + 6  # T forward and T backward recurrent products, six all-steps products


@pytest.mark.parametrize("sizes", RANDOM_SIZES, ids=str)
def test_the_counted_products_are_the_gradient_products(sizes):
    """Each product of the count, written out, gives the gradients of loss_and_grads (float64, 1e-9)."""
    T, B, D, H, K = sizes
    rng = np.random.default_rng(1)
    p = rnn.init_params(D, H, K, rng=rng)
    x, y = rng.standard_normal((T, B, D)), rng.integers(0, K, size=(T, B))
    _, grads = rnn.loss_and_grads(p, x, y)
    flops = 0

    def mm(a, b):
        nonlocal flops
        flops += 2 * a.shape[0] * a.shape[1] * b.shape[1]
        return a @ b

    xproj = mm(x.reshape(T * B, D), p["U"].T).reshape(T, B, H) + p["b"]
    h = np.zeros((T + 1, B, H))
    for t in range(T):
        h[t + 1] = np.tanh(xproj[t] + mm(h[t], p["W"].T))
    o = mm(h[1:].reshape(T * B, H), p["V"].T) + p["c"]
    yhat = np.exp(o - o.max(axis=1, keepdims=True))
    yhat /= yhat.sum(axis=1, keepdims=True)
    G_o = (yhat - np.eye(K)[y.reshape(-1)]) / B
    from_o = mm(G_o, p["V"]).reshape(T, B, H)
    G_a, dh_next = np.empty((T, B, H)), np.zeros((B, H))
    for t in reversed(range(T)):
        G_a[t] = (from_o[t] + dh_next) * (1 - h[t + 1] ** 2)
        dh_next = mm(G_a[t], p["W"])
    G = G_a.reshape(T * B, H)
    mine = {"W": mm(G.T, h[:-1].reshape(T * B, H)), "U": mm(G.T, x.reshape(T * B, D)),
            "V": mm(G_o.T, h[1:].reshape(T * B, H))}
    for key, value in mine.items():
        assert np.linalg.norm(value - grads[key]) <= 1e-9 * np.linalg.norm(grads[key])
    assert flops == timing.flop_counts(T, B, D, H, K)["total"]


def test_measure_calls_each_function_once_to_warm_up_then_n_times_per_round():
    calls = {"a": 0, "b": 0}

    def make(name):
        def f():
            calls[name] += 1
        return f

    times = timing.measure({"a": make("a"), "b": make("b")}, repeats=4, min_time=0.001)
    for name in calls:
        assert times[name].shape == (4,) and np.all(times[name] >= 0)
        assert (calls[name] - 1) % 4 == 0 and calls[name] > 4


@contextlib.contextmanager
def _freed_memory_kept():
    """Inside the block, glibc's malloc keeps freed memory (no mmap per array, no trimming).

    Otherwise whether an array's fresh pages fault in depends on what the process allocated and
    freed before, which differs between a stage run alone and the same stage inside the whole
    call. Yields False where there is no glibc (nothing changed).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        yield False
        return
    trim, mmap = -1, -3  # M_TRIM_THRESHOLD, M_MMAP_THRESHOLD
    try:
        yield bool(libc.mallopt(mmap, 32 * 2**20)) and bool(libc.mallopt(trim, 2**30))
    finally:  # glibc's initial values
        libc.mallopt(mmap, 128 * 2**10)
        libc.mallopt(trim, 128 * 2**10)


# Stated tolerance: the five parts, each timed on its own, add up to the whole call, timed on its
# own, within 30 % (medians of 7 interleaved rounds, on a machine that may be shared; the earlier
# core's parts include differences of two medians). A missing or double-counted stage is off by
# far more at this size.
SUM_TOLERANCE = 0.30


def test_the_parts_of_the_breakdown_add_up_to_the_whole_call():
    T, B, D, H, K = 60, 16, 32, 64, 32
    rng = np.random.default_rng(0)
    p = rnn.init_params(D, H, K, rng=rng)
    x, y = rng.standard_normal((T, B, D)), rng.integers(0, K, size=(T, B))
    with _freed_memory_kept() as kept, timing.one_blas_thread():
        if not kept:
            pytest.skip("needs glibc's mallopt, so that page faults are the same in the parts and in the whole")
        result = timing.breakdown(p, x, y, repeats=7, min_time=0.03)
    assert list(result["parts"]) == list(timing.STAGES)
    total = sum(result["parts"].values())
    assert abs(total - result["whole"]) <= SUM_TOLERANCE * result["whole"], (total, result["whole"], result["parts"])
    # Every part is a real share of the call: none comes out negative beyond the noise.
    assert all(v > -0.05 * result["whole"] for v in result["parts"].values()), result["parts"]
