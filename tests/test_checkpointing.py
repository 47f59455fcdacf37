"""Checkpointed BPTT (chapter 13): the same gradient as full BPTT, its forward steps counted, its memory."""

import dataclasses

import numpy as np
import pytest

from bptt_lib import bptt, models, rnn, timing
from bptt_lib import checkpointing as ck


def problem(T=10, B=3, D=2, H=5, K=4, seed=0):
    rng = np.random.default_rng(seed)
    params = rnn.init_params(D, H, K, rng=rng)
    params["W"] *= 1.5                    # gradients that reach far back, so a lost segment shows
    params["b"] = 0.1 * rng.standard_normal(H)
    return params, rng.standard_normal((T, B, D)), rng.integers(0, K, size=(T, B))


def rel(a, b):
    return np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b)


@pytest.mark.parametrize("T", [7, 10])
def test_equals_full_bptt_for_every_every(T):
    params, x, y = problem(T=T)
    loss, full = models.full_grads(params, x, y)
    for every in range(1, T + 2):          # T not a multiple of most of them; every > T is one segment
        value, grads = ck.checkpointed_grads(params, x, y, every)
        assert abs(value - loss) <= 1e-12 * abs(loss)
        assert set(grads) == set(params)
        for key in params:
            assert grads[key].shape == params[key].shape
            assert rel(grads[key], full[key]) < 1e-12, (every, key)


def test_initial_state_and_batch_of_one():
    params, x, y = problem(T=9, B=1)
    h0 = np.random.default_rng(5).standard_normal((1, 5))
    loss, full = models.full_grads(params, x, y, state0=h0)
    value, grads = ck.checkpointed_grads(params, x, y, 4, state0=h0)
    assert abs(value - loss) <= 1e-12 * abs(loss)
    assert max(rel(grads[k], full[k]) for k in params) < 1e-12
    _, zero_start = ck.checkpointed_grads(params, x, y, 4)
    assert rel(zero_start["W"], grads["W"]) > 1e-6           # the initial state is used


class CountingCell:
    """The tanh cell, counting its forward steps."""

    def __init__(self, cell):
        self._cell = cell
        self.steps = 0

    def __getattr__(self, name):
        return getattr(self._cell, name)

    def step(self, *args, **kwargs):
        self.steps += 1
        return self._cell.step(*args, **kwargs)


@pytest.mark.parametrize("T, every", [(10, 1), (10, 3), (10, 4), (10, 5), (10, 10), (10, 11), (1000, 32)])
def test_forward_steps_counted(T, every):
    params, x, y = problem(T=T, B=2, H=4)
    cell = CountingCell(rnn.MODEL.cell)
    model = dataclasses.replace(rnn.MODEL, cell=cell)
    stats = {}
    ck.checkpointed_grads(params, x, y, every, model=model, stats=stats)
    last = T - every * ((T - 1) // every)
    assert cell.steps == stats["forward_steps"] == ck.forward_steps(T, every) == 2 * T - last
    assert stats["checkpoints"] == -(-T // every)
    assert stats["segment_states"] == min(every, T)


def test_sqrt_optimum_and_dynamic_programme():
    assert ck.best_every(1000) in range(28, 33)
    assert ck.stored_states(1000, ck.best_every(1000)) == 63
    assert ck.stored_states(1000, 1000) == 1000 and ck.stored_states(1000, 1) == 1000
    for T in (1, 2, 7, 12):
        assert ck.hsm_forward_steps(T, 1) == T * (T + 1) // 2
        assert ck.hsm_forward_steps(T, T) == T
        costs = [ck.hsm_forward_steps(T, m) for m in range(1, T + 1)]
        assert all(a >= b for a, b in zip(costs, costs[1:]))          # more memory never costs more
        for every in range(1, T + 1):   # uniform checkpointing is one of the policies the programme weighs
            assert ck.hsm_forward_steps(T, ck.stored_states(T, every)) <= ck.forward_steps(T, every)
    # two slots for three steps: run 1 step, store it, the right 2 steps with one slot (2 + 1), the left (1): 5
    assert ck.hsm_forward_steps(3, 2) == 5
    assert ck.hsm_forward_steps(3, 2) == min(y + ck.hsm_forward_steps(3 - y, 1) + ck.hsm_forward_steps(y, 2)
                                             for y in (1, 2))


def test_peak_memory_falls_with_checkpointing():
    params, x, y = problem(T=400, B=8, H=32, D=4, K=4)
    ck.checkpointed_grads(params, x[:3], y[:3], 2)          # kernels generated outside the measurements
    full, _ = timing.peak_memory(models.full_grads, params, x, y)
    every, _ = timing.peak_memory(ck.checkpointed_grads, params, x, y, 20)
    state_bytes = 8 * 32 * 8
    assert full > 400 * state_bytes                 # every state is stored
    assert every < full / 4                         # 20 + 20 of them instead of 400


def test_workspace_left_clean_and_reused_safely():
    params, x, y = problem(T=12)
    _, a = ck.checkpointed_grads(params, x, y, 5)
    bptt.forward(rnn.MODEL.cell, params, np.zeros((30, 3, 2)), np.zeros((3, 5)), keep=False)   # scribble
    _, b = ck.checkpointed_grads(params, x, y, 5)
    assert all(np.array_equal(a[k], b[k]) for k in params)


def test_bad_inputs():
    params, x, y = problem(T=5)
    with pytest.raises(ValueError, match="every"):
        ck.checkpointed_grads(params, x, y, 0)
    with pytest.raises(TypeError, match="every"):
        ck.checkpointed_grads(params, x, y, 2.5)
    with pytest.raises(ValueError, match="model"):
        ck.checkpointed_grads(params, x, y, 2, model="transformer")
    with pytest.raises(ValueError, match="x must have shape"):
        ck.checkpointed_grads(params, x[:, :, :1], y, 2)
    with pytest.raises(ValueError, match="y must hold class indices"):
        ck.checkpointed_grads(params, x, y + 10, 2)
    with pytest.raises(KeyError, match="W"):
        ck.checkpointed_grads({k: v for k, v in params.items() if k != "W"}, x, y, 2)


def test_non_finite_result_raises(monkeypatch):
    params, x, y = problem(T=5)
    k = rnn.rnn_kernels()
    monkeypatch.setattr(k, "tanh_vjp", lambda g, h: g * np.inf)
    with pytest.raises(FloatingPointError, match="not finite"):
        ck.checkpointed_grads(params, x, y, 2)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_gated_models_unchanged(name):
    """Part V's models go through the same code: the cell interface is all it uses."""
    module = pytest.importorskip(f"bptt_lib.{name}")
    rng = np.random.default_rng(4)
    params = module.init_params(2, 4, 3, rng=rng)
    x, y = rng.standard_normal((11, 2, 2)), rng.integers(0, 3, size=(11, 2))
    loss, full = models.full_grads(params, x, y, model=name)
    for every in (1, 3, 4, 11, 12):
        value, grads = ck.checkpointed_grads(params, x, y, every, model=name)
        assert abs(value - loss) <= 1e-12 * abs(loss)
        assert set(grads) == set(full)
        for key in full:
            assert np.linalg.norm(grads[key] - full[key]) <= 1e-12 * max(np.linalg.norm(full[key]), 1e-300), key
