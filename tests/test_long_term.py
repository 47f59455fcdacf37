"""Tests of chapter 10's stacked training (many networks at once) and the seed sweep.

The stacked pass itself (bptt_lib.stacked) is tested in tests/test_stacked.py.
"""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from bptt_lib import long_term as lt  # noqa: E402
from bptt_lib import remedies, rnn, tasks  # noqa: E402
from bptt_lib.training import train  # noqa: E402


def _nets(n, H=6, D=4, seed=0):
    rng = np.random.default_rng(seed)
    return [rnn.init_params(D, H, D, rng=rng) for _ in range(n)]


@pytest.mark.parametrize("max_norm", [0.3, 1e6])   # clipped at (almost) every step / never
def test_train_recall_many_is_the_shared_loop_run_side_by_side(max_norm):
    initials = _nets(2, H=8)
    seeds = [4, 7]
    runs = lt.train_recall_many(2, initials, seeds, steps=15, max_norm=max_norm)
    assert runs.loss.shape == (15, 2) and runs.grad_norm.shape == (15, 2)
    for r, (init, seed) in enumerate(zip(initials, seeds)):
        data = tasks.recall_batches(4, 2, 7, 32, seed)
        params, history = train(init, data, steps=15, lr=0.5, max_norm=max_norm,
                                loss_and_grads=tasks.masked_loss_and_grads)
        np.testing.assert_allclose(runs.loss[:, r], history.loss, rtol=1e-10)
        np.testing.assert_allclose(runs.grad_norm[:, r], history.grad_norm, rtol=1e-10)
        for key in params:
            np.testing.assert_allclose(runs.params[r][key], params[key], rtol=1e-9, atol=1e-12)
        x, y = lt.evaluation_batch(2, seed=seed)
        assert runs.accuracy[r] == tasks.accuracy(params, x, y)
    clipped = np.mean(runs.grad_norm > max_norm)
    assert clipped > 0.9 if max_norm < 1 else clipped == 0.0


def test_train_recall_many_validation():
    nets = _nets(2)
    with pytest.raises(ValueError, match="equal length"):
        lt.train_recall_many(2, nets, [0], steps=1)
    with pytest.raises(ValueError, match="equal length"):
        lt.train_recall_many(2, [], [], steps=1)
    with pytest.raises(ValueError, match="seeds\\[r\\] must be an int at least 0"):
        lt.train_recall_many(2, nets, [0, -1], steps=1)
    with pytest.raises(ValueError, match="init must be one of"):
        lt.initial_params("uniform", 0)


def test_initialisations_share_U_and_V_and_differ_in_W_only():
    gauss, orth, big = (lt.initial_params(name, 3) for name in ("Gaussian", "orthogonal", "Gaussian x 1.5"))
    for key in ("U", "V", "b", "c"):
        np.testing.assert_array_equal(orth[key], gauss[key])
        np.testing.assert_array_equal(big[key], gauss[key])
    np.testing.assert_allclose(big["W"], 1.5 * gauss["W"], rtol=1e-15)
    np.testing.assert_allclose(orth["W"].T @ orth["W"], np.eye(32), atol=1e-12)
    direct = remedies.init_params(4, 32, 4, rng=np.random.default_rng(3), recurrent="orthogonal")
    np.testing.assert_array_equal(orth["W"], direct["W"])


def test_seed_sweep_fills_every_cell_with_its_own_run():
    sweep = lt.seed_sweep([1, 3], ["Gaussian", "orthogonal"], [0, 2], n_hidden=8, steps=10)
    assert sweep.accuracy.shape == sweep.initial_ratio.shape == (2, 2, 2)
    assert sweep.loss.shape == (2, 2, 2, 10)
    # cell [gap 3, orthogonal, seed 2] is the run of train_recall_many for that network alone
    alone = lt.train_recall_many(3, [lt.initial_params("orthogonal", 2, n_hidden=8)], [2], steps=10)
    np.testing.assert_allclose(sweep.loss[1, 1, 1], alone.loss[:, 0], rtol=1e-12)
    assert sweep.accuracy[1, 1, 1] == alone.accuracy[0]
    assert sweep.initial_ratio[1, 1, 1] == lt.gradient_ratio(alone.initial[0], 3)
    radius = np.abs(np.linalg.eigvals(alone.params[0]["W"])).max()
    assert sweep.trained_radius[1, 1, 1] == pytest.approx(radius, rel=1e-12)
    assert sweep.clipped[1, 1, 1] == np.mean(alone.grad_norm > 1.0)
    np.testing.assert_array_equal(sweep.learned(0.9), sweep.accuracy >= 0.9)


def test_the_figures_draw_one_quantity_per_axis():
    sweep = lt.seed_sweep([1, 2], list(lt.INITS), [0], n_hidden=8, steps=5)
    fig = lt.plot_sweep(sweep, threshold=0.9, chance=0.25)
    ax_acc = fig.axes[0]
    assert len(fig.axes) == 2                                  # no twin axes
    levels = {line.get_ydata()[0] for line in ax_acc.get_lines() if len(set(line.get_ydata())) == 1}
    assert {0.9, 0.25} <= levels
    x, y = lt.evaluation_batch(5, n_symbols=4)
    norms = {init: np.array([lt.backward_norms(p, x, y) for p in sweep.initial[i]])
             for i, init in enumerate(sweep.inits)}
    fig = lt.plot_reach(sweep, norms, threshold=0.9, chance=0.25)
    assert len(fig.axes) == 2
    matplotlib.pyplot.close("all")
