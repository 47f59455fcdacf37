"""ARTBP (chapter 12): its expectation is the full BPTT gradient, exactly; draws average to it; bad input is named."""

import numpy as np
import pytest

from bptt_lib import artbp, bptt, models, rnn
from bptt_lib.exercises import verdict


def _problem(T=6, B=2, D=3, H=4, K=3, seed=0):
    rng = np.random.default_rng(seed)
    params = rnn.init_params(D, H, K, rng=rng)
    params["W"] *= 2.0          # gradients that travel back far, so that the cuts matter
    x = rng.standard_normal((T, B, D))
    y = rng.integers(0, K, size=(T, B))
    return params, x, y


def _rel(a, b):
    return artbp.relative_error(a, b)


@pytest.mark.parametrize("T", [1, 2, 5, 7])
@pytest.mark.parametrize("c", [0.3, "array"])
def test_expectation_over_every_pattern_is_full_bptt(T, c):
    params, x, y = _problem(T=T)
    if c == "array":
        c = np.linspace(0.05, 0.9, T)
    _, full = models.full_grads(params, x, y)
    total = {key: np.zeros_like(value) for key, value in full.items()}
    probability = 0.0
    for cuts in artbp.enumerate_patterns(T):
        p = artbp.pattern_probability(c, cuts)
        probability += p
        _, g = artbp.artbp_grads_for_cuts(params, x, y, c, cuts)
        for key in total:
            total[key] += p * g[key]
    assert probability == pytest.approx(1.0, abs=1e-14)
    assert _rel(total, full) < 1e-12
    assert _rel(artbp.expected_grads(params, x, y, c), full) < 1e-12


def test_the_patterns_differ_so_the_expectation_test_can_fail():
    params, x, y = _problem(T=5)
    _, full = models.full_grads(params, x, y)
    errors = [_rel(artbp.artbp_grads_for_cuts(params, x, y, 0.3, cuts)[1], full)
              for cuts in artbp.enumerate_patterns(5)]
    assert min(errors) > 1e-3   # no single pattern is the full gradient (not even "no cut": it is compensated)
    # without the compensation the weighted sum is biased
    uncompensated = {key: np.zeros_like(v) for key, v in full.items()}
    for cuts in artbp.enumerate_patterns(5):
        _, g = artbp.artbp_grads_for_cuts(params, x, y, 1e-300, cuts)   # factors 1
        for key in g:
            uncompensated[key] += artbp.pattern_probability(0.3, cuts) * g[key]
    assert _rel(uncompensated, full) > 1e-3


def test_no_cut_pattern_with_c_carries_the_product_of_factors():
    # with no cut and c > 0, every kept boundary multiplies by 1/(1 - c): T = 2 has one boundary
    params, x, y = _problem(T=2)
    _, g_c = artbp.artbp_grads_for_cuts(params, x, y, 0.5, np.array([False, False]))
    # the same thing by hand: the loss of step 2 contributes twice its gradient through step 1
    _, full = models.full_grads(params, x, y)
    _, only1 = models.full_grads(params, x[:1], y[:1])
    grads2 = {key: full[key] - only1[key] for key in full}       # everything of the step-2 loss
    cut = artbp.artbp_grads_for_cuts(params, x, y, 0.5, np.array([True, False]))[1]
    crossing = {key: full[key] - cut[key] for key in full}        # the step-2 loss's part through step 1
    expected = {key: full[key] + crossing[key] for key in full}   # factor 2 on the crossing part
    assert _rel(g_c, expected) < 1e-12
    assert _rel(grads2, crossing) > 1e-6


@pytest.mark.parametrize("c", [0.0, "zeros"])
def test_c_zero_is_full_bptt_exactly(c):
    params, x, y = _problem(T=9)
    if c == "zeros":
        c = np.zeros(9)
    loss, full = models.full_grads(params, x, y)
    loss_a, grads = artbp.artbp_grads(params, x, y, c, rng=np.random.default_rng(1))
    assert loss_a == loss
    for key in full:
        assert np.array_equal(grads[key], full[key]), key


def test_loss_is_the_full_loss_whatever_the_cuts():
    params, x, y = _problem(T=8)
    loss, _ = models.full_grads(params, x, y)
    rng = np.random.default_rng(3)
    for _ in range(5):
        loss_a, _ = artbp.artbp_grads(params, x, y, 0.5, rng=rng)
        assert loss_a == pytest.approx(loss, rel=1e-12)


def test_all_cut_is_one_step_windows_and_matches_tbptt_1_1():
    truncation = pytest.importorskip("bptt_lib.truncation")
    params, x, y = _problem(T=7)
    _, g = artbp.artbp_grads_for_cuts(params, x, y, 0.5, np.ones(7, bool))
    _, ref = truncation.tbptt_grads(params, x, y, 1, 1)
    assert _rel(g, ref) < 1e-12


def test_cuts_every_k_steps_are_separate_windows():
    # an independent construction: each window's full BPTT from the state the previous one ended in
    params, x, y = _problem(T=7)
    cuts = np.array([False, True, False, False, True, False, False])
    _, g = artbp.artbp_grads_for_cuts(params, x, y, 1e-300, cuts)
    cell = rnn.MODEL.cell
    h = bptt.forward(cell, params, x, np.zeros((2, 4)))
    total = {key: np.zeros_like(v) for key, v in params.items()}
    for a, b in [(0, 2), (2, 5), (5, 7)]:
        _, part = models.full_grads(params, x[a:b], y[a:b], state0=h[a])
        for key in total:
            total[key] += part[key]
    assert _rel(g, total) < 1e-12


def test_mean_of_draws_approaches_full_gradient():
    # E||mean_n - g||^2 = V / n exactly (V: the exact variance by enumeration). Markov's inequality:
    # P(||mean_n - g||^2 > 25 V / n) <= 1/25; the seed is fixed, so this is a deterministic check
    # with a generous margin, and it fails for a biased estimator (bias^2 >> 25 V / n at n = 2000).
    params, x, y = _problem(T=6)
    c = 0.4
    _, full = models.full_grads(params, x, y)
    _, V = artbp.exact_moments(params, x, y, c)
    n = 2000
    rng = np.random.default_rng(12)
    total = np.zeros_like(artbp.flatten(full))
    for _ in range(n):
        total += artbp.flatten(artbp.artbp_grads(params, x, y, c, rng=rng)[1])
    err2 = float(np.sum((total / n - artbp.flatten(full)) ** 2))
    assert err2 <= 25 * V / n
    # the uncompensated estimator's bias is far outside that bound
    biased = np.zeros_like(total)
    rng = np.random.default_rng(12)
    for _ in range(200):
        cuts = artbp.draw_cuts(c, 6, rng)
        biased += artbp.flatten(artbp.artbp_grads_for_cuts(params, x, y, 1e-300, cuts)[1])
    assert float(np.sum((biased / 200 - artbp.flatten(full)) ** 2)) > 25 * V / n


def test_variance_grows_with_c_and_vanishes_at_zero():
    params, x, y = _problem(T=6)
    variances = [artbp.exact_moments(params, x, y, c)[1] for c in (0.0, 0.2, 0.5, 0.8)]
    assert variances[0] < 1e-20
    assert all(a < b for a, b in zip(variances, variances[1:]))


def test_draws_are_reproducible_and_use_T_uniforms():
    params, x, y = _problem(T=6)
    g1 = artbp.artbp_grads(params, x, y, 0.5, rng=np.random.default_rng(4))[1]
    rng = np.random.default_rng(4)
    cuts = rng.random(6) < 0.5
    g2 = artbp.artbp_grads_for_cuts(params, x, y, 0.5, cuts)[1]
    assert all(np.array_equal(g1[k], g2[k]) for k in g1)


def test_windows_and_probability():
    cuts = np.array([False, True, True, False, True])
    assert artbp.windows(cuts) == [(0, 2), (2, 3), (3, 5)]
    assert artbp.pattern_probability(0.25, cuts) == pytest.approx(0.75 * 0.25 * 0.25 * 0.75, rel=1e-15)
    assert len(list(artbp.enumerate_patterns(5))) == 16


@pytest.mark.parametrize("c, error, match", [
    (1.0, ValueError, r"c must be a probability in \[0, 1\).*got 1\.0"),
    (-0.1, ValueError, r"c must be a probability in \[0, 1\).*got -0\.1"),
    (float("nan"), ValueError, r"c must be a probability in \[0, 1\).*nan"),
    (np.full(5, 0.2), ValueError, r"c must be a probability or an array of shape \(6,\).*got shape \(5,\)"),
    (np.array([0.1, 0.2, 1.5, 0.1, 0.1, 0.1]), ValueError, r"got 1\.5 \(entry 2\)"),
    (True, TypeError, r"c must be a probability"),
    ("0.3", TypeError, r"c must be a probability"),
])
def test_bad_c_is_named(c, error, match):
    params, x, y = _problem(T=6)
    with pytest.raises(error, match=match):
        artbp.artbp_grads(params, x, y, c, rng=np.random.default_rng(0))


def test_rng_must_be_a_generator_and_model_known():
    params, x, y = _problem(T=4)
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        artbp.artbp_grads(params, x, y, 0.3, rng=0)
    with pytest.raises(ValueError, match="model must be one of"):
        artbp.artbp_grads(params, x, y, 0.3, rng=np.random.default_rng(0), model="transformer")


def test_bad_x_is_named_by_the_model():
    params, x, y = _problem(T=4)
    with pytest.raises((ValueError, TypeError), match="x"):
        artbp.artbp_grads(params, x[0], y, 0.3, rng=np.random.default_rng(0))


def test_compensated_cell_counts_its_steps():
    cell = artbp.CompensatedCell(rnn.MODEL.cell, [0.0, 2.0])
    params, x, y = _problem(T=2)
    h = bptt.forward(rnn.MODEL.cell, params, x, np.zeros((2, 4)))
    bptt.bptt(cell, params, x, y, h=h)
    assert cell.done()
    with pytest.raises(RuntimeError, match="more often"):
        cell.step_vjp(params, h[0], h[1], np.ones((2, 4)))


def test_exercise_reference_is_the_library_recursion():
    # the exercise's recursion, fed the RNN's own Jacobians, gives the library's state gradients:
    # compare the W gradient built from them with artbp_grads_for_cuts
    from bptt_lib.exercises import artbp as ex

    params, x, y = _problem(T=5, B=1)
    c = np.array([0.2, 0.5, 0.3, 0.6, 0.4])
    cuts = np.array([False, True, False, False, False])
    h = bptt.forward(rnn.MODEL.cell, params, x, np.zeros((1, 4)))[:, 0]
    yhat = np.exp(h[1:] @ params["V"].T + params["c"])
    yhat /= yhat.sum(-1, keepdims=True)
    local = (yhat - np.eye(3)[y[:, 0]]) @ params["V"]
    jac = np.array([np.diag(1 - h[t] ** 2) @ params["W"] for t in range(1, 6)])  # d h(t) / d h(t-1)
    g = ex.reference_artbp_state_grads(local, jac, cuts, c)
    da = g * (1 - h[1:] ** 2)
    dW = da.T @ h[:-1]
    _, grads = artbp.artbp_grads_for_cuts(params, x, y, c, cuts)
    assert np.allclose(dW, grads["W"], rtol=1e-10, atol=1e-13)
    assert verdict("artbp_state_grads", ex.reference_artbp_state_grads)
