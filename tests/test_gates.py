"""Tests of chapter 16 (bptt_lib.gates): the bank of networks, the heads, reach, training."""

import numpy as np
import pytest

from bptt_lib import gates, gru, lstm, remedies, rnn, tasks
from bptt_lib import long_term as lt
from bptt_lib.exercises import verdict
from bptt_lib.exercises.gates import reference_adding_targets, reference_reach_ratio
from bptt_lib.tasks import IGNORE

OWN = {"tanh RNN": rnn.loss_and_grads, "IRNN": remedies.relu_loss_and_grads,
       "LSTM": lstm.loss_and_grads, "GRU": gru.loss_and_grads}


def _problem(T=7, B=4, D=3, K=3, seed=0):
    rng = np.random.default_rng(seed)
    return np.eye(D)[rng.integers(0, D, size=(T, B))], rng.integers(0, K, size=(T, B))


@pytest.mark.parametrize("cell", gates.CELLS)
def test_bank_equals_each_network_alone(cell):
    x, y = _problem()
    nets = [gates.init_network(cell, 3, 5, 3, seed) for seed in range(3)]
    bank = gates.Bank(cell, nets)
    head = gates.SoftmaxHead(3, 3)
    loss, grads = bank.grads(x, np.repeat(y[..., None], 3, axis=-1), head)
    as_bank = gates.Bank(cell, nets)
    as_bank.params = grads
    total = 0.0
    for n, net in enumerate(nets):
        own_loss, own = OWN[cell](net, x, y)
        total += own_loss
        assert abs(head.per_network[n] - own_loss) <= 1e-12 * own_loss
        mine = as_bank.network(n)
        assert set(mine) == set(own)
        for key in own:
            np.testing.assert_allclose(mine[key], own[key], rtol=1e-9, atol=1e-13)
    assert abs(loss - total) <= 1e-12 * total
    for key, g in grads.items():     # off-block entries carry no gradient
        assert np.all(g[bank.owner(key) < 0] == 0)


@pytest.mark.parametrize("cell", gates.CELLS)
def test_network_round_trip(cell):
    nets = [gates.init_network(cell, 2, 4, 1, seed) for seed in range(3)]
    bank = gates.Bank(cell, nets)
    for n, net in enumerate(nets):
        back = bank.network(n)
        assert all(np.array_equal(back[k], net[k]) for k in net)


def test_masked_targets_match_masked_loss_of_tasks():
    x, y = tasks.delayed_recall(3, 2, 7, 4, np.random.default_rng(1))
    net = gates.init_network("tanh RNN", 3, 5, 3, 0)
    head = gates.SoftmaxHead(1, 3)
    loss, grads = gates.Bank("tanh RNN", [net]).grads(x, y[..., None], head)
    ref_loss, ref = tasks.masked_loss_and_grads(net, x, y)
    assert abs(loss - ref_loss) <= 1e-12 * ref_loss
    for key in ref:
        np.testing.assert_allclose(grads[key], ref[key], rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("cell", ["tanh RNN", "LSTM", "GRU"])
def test_squared_error_head_gradient_by_central_differences(cell):
    rng = np.random.default_rng(4)
    x, s = tasks.adding_problem(6, 3, rng)
    nets = [gates.init_network(cell, 2, 3, 1, seed) for seed in range(2)]
    y = np.full((6, 3, 2), np.nan)
    y[-1] = s[:, None]
    bank = gates.Bank(cell, nets)
    _, grads = bank.grads(x, y, gates.SquaredErrorHead(2))
    step = 1e-6                                   # central differences: error O(step^2) ~ 1e-12
    for key in ("V", "c", next(k for k in bank.params if k.startswith("W"))):
        idx = tuple(np.argwhere(bank.owner(key) >= 0)[1])
        values = []
        for sign in (1, -1):
            b = gates.Bank(cell, nets)
            b.params[key] = b.params[key].copy()
            b.params[key][idx] += sign * step
            values.append(b.grads(x, y, gates.SquaredErrorHead(2))[0])
        numeric = (values[0] - values[1]) / (2 * step)
        assert abs(numeric - grads[key][idx]) <= 1e-6 * max(1.0, abs(numeric))


def test_squared_error_loss_is_mse_of_the_last_step():
    x, s = tasks.adding_problem(5, 8, np.random.default_rng(2))
    net = gates.init_network("GRU", 2, 4, 1, 3)
    bank = gates.Bank("GRU", [net])
    y = np.full((5, 8, 1), np.nan)
    y[-1, :, 0] = s
    head = gates.SquaredErrorHead(1)
    loss, _ = bank.grads(x, y, head)
    out = gru.forward(net, x).h[-1] @ net["V"].T + net["c"]
    assert abs(loss - np.mean((out[:, 0] - s) ** 2)) <= 1e-12 * loss
    np.testing.assert_allclose(gates.adding_mse(bank, x, s), [loss], rtol=1e-12)


def test_reach_matches_chapter_10_for_the_tanh_rnn():
    x, y = lt.evaluation_batch(6, batch=16)
    nets = [gates.init_network("tanh RNN", 4, 8, 4, seed) for seed in range(2)]
    rng = np.random.default_rng(5)
    ratios = gates.reach(gates.Bank("tanh RNN", nets), x, rng=np.random.default_rng(5))
    targets = np.random.default_rng(5).integers(0, 4, size=(16, 2))     # what reach draws
    assert rng is not None
    for n, net in enumerate(nets):
        last = np.full_like(y, IGNORE)
        last[-1] = targets[:, n]
        norms = lt.backward_norms(net, x, last)
        np.testing.assert_allclose(ratios[n], norms / norms[0], rtol=1e-9)
        assert ratios[n, 0] == 1.0


def test_reach_ratio_reference_is_what_reach_measures():
    x, _ = tasks.delayed_recall(3, 1, 8, 5, np.random.default_rng(0))
    bank = gates.Bank("LSTM", [gates.init_network("LSTM", 3, 4, 3, 0)])
    y = np.full((8, 5, 1), IGNORE)
    y[-1, :, 0] = np.random.default_rng(9).integers(0, 3, size=5)
    grad_h = np.zeros((8, 5, 4))
    bank.grads(x, y, gates.SoftmaxHead(1, 3), grad_h=grad_h)
    np.testing.assert_allclose(gates.reach(bank, x, rng=np.random.default_rng(9))[0],
                               reference_reach_ratio(grad_h), rtol=1e-12)


def test_training_a_bank_equals_training_each_network_alone():
    nets = [gates.init_network("LSTM", 2, 3, 1, seed) for seed in range(2)]

    def data(step, N):
        x, s = tasks.adding_problem(6, 4, np.random.default_rng(step))
        y = np.full((6, 4, N), np.nan)
        y[-1] = s[:, None]
        return x, y

    # a small max_norm, so that the networks are clipped by different factors
    both = gates.train_bank(gates.Bank("LSTM", nets), lambda s: data(s, 2), lambda: gates.SquaredErrorHead(2),
                            steps=5, lr=0.05, max_norm=0.05)
    for n, net in enumerate(nets):
        alone = gates.train_bank(gates.Bank("LSTM", [net]), lambda s: data(s, 1), lambda: gates.SquaredErrorHead(1),
                                 steps=5, lr=0.05, max_norm=0.05)
        np.testing.assert_allclose(both.loss[:, n], alone.loss[:, 0], rtol=1e-9)
        trained, ref = both.bank.network(n), alone.bank.network(0)
        for key in ref:
            np.testing.assert_allclose(trained[key], ref[key], rtol=1e-9, atol=1e-12)
    for key, value in both.bank.params.items():
        assert np.all(value[both.bank.owner(key) < 0] == 0)
    assert np.any(both.grad_norm > 0.05)


def test_gradient_growth_shape_and_gain():
    g = gates.gradient_growth("tanh RNN", (1.0, 3.0), [3, 12], range(2), n_hidden=6, batch=4)
    assert g.shape == (2, 2, 2) and np.all(g > 0)


def test_init_network_gain_scales_only_recurrent_matrices():
    a, b = gates.init_network("GRU", 2, 3, 1, 0), gates.init_network("GRU", 2, 3, 1, 0, gain=2.0)
    for key in a:
        np.testing.assert_array_equal(b[key], 2 * a[key] if key.startswith("W") else a[key])
    irnn = gates.init_network("IRNN", 2, 3, 1, 0)
    np.testing.assert_array_equal(irnn["W"], np.eye(3))
    with pytest.raises(ValueError, match="cell must be one of"):
        gates.init_network("vanilla", 2, 3, 1, 0)


def test_exercise_references_and_checkers():
    x, s = tasks.adding_problem(9, 5, np.random.default_rng(3))
    np.testing.assert_allclose(reference_adding_targets(x), s, rtol=1e-15)
    assert verdict("gates_adding_targets", reference_adding_targets)
    assert verdict("gates_reach_ratio", reference_reach_ratio)
    assert not verdict("gates_adding_targets", lambda x: np.sum(x[..., 0], axis=0))
