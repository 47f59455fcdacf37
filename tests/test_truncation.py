"""Tests of bptt_lib.truncation: TBPTT(k1, k2) over the cell interface (chapter 11)."""

import numpy as np
import pytest

from bptt_lib import long_term, models, rnn, tasks, timing, truncation
from bptt_lib import path_sum as ps
from bptt_lib.derive import truncation as dtr
from bptt_lib.exercises import verdict
from bptt_lib.gradcheck import compare


def problem(seed, T, B=2, D=3, H=5, K=4, scale=None):
    """Random parameters (nonzero biases), inputs, targets and a nonzero initial state."""
    rng = np.random.default_rng(seed)
    params = rnn.init_params(D, H, K, rng=rng, scale=scale)
    params["b"] = 0.1 * rng.standard_normal(H)
    params["c"] = 0.1 * rng.standard_normal(K)
    x = rng.standard_normal((T, B, D))
    y = rng.integers(0, K, size=(T, B))
    h0 = 0.5 * rng.standard_normal((B, H))
    return params, x, y, h0


def worst(a, b):
    return max(compare(a, b).values())


# --- an independent reference: plain NumPy, no bptt_lib backward pass ----------------------


def _window_grads(p, x, y, h_in, first):
    """Full BPTT, written out in NumPy, over a short sequence from the constant state ``h_in``.

    Only the losses of steps ``first, first + 1, ...`` (1-based within the window) count.
    Returns (loss, grads) with the loss averaged over the batch.
    """
    n, B, _ = x.shape
    hs = [h_in]
    for t in range(n):                                  # re-run the forward pass from the stored state
        hs.append(np.tanh(x[t] @ p["U"].T + hs[-1] @ p["W"].T + p["b"]))
    grads = {key: np.zeros_like(value) for key, value in p.items()}
    loss, dh_next = 0.0, np.zeros_like(h_in)
    for t in range(n, 0, -1):
        dh = dh_next.copy()
        if t >= first:
            o = hs[t] @ p["V"].T + p["c"]
            o = o - o.max(axis=1, keepdims=True)
            logp = o - np.log(np.exp(o).sum(axis=1, keepdims=True))
            loss -= logp[np.arange(B), y[t - 1]].sum() / B
            go = np.exp(logp)
            go[np.arange(B), y[t - 1]] -= 1.0
            go /= B
            grads["V"] += go.T @ hs[t]
            grads["c"] += go.sum(axis=0)
            dh += go @ p["V"]
        da = dh * (1.0 - hs[t] ** 2)
        grads["W"] += da.T @ hs[t - 1]
        grads["U"] += da.T @ x[t - 1]
        grads["b"] += da.sum(axis=0)
        dh_next = da @ p["W"]
    return loss, grads


def reference_tbptt(p, x, y, k1, k2, h0):
    """TBPTT by the definition: per block, the window re-run from its stored entering state (a constant)."""
    T = len(x)
    hs = [h0]
    for t in range(T):
        hs.append(np.tanh(x[t] @ p["U"].T + hs[-1] @ p["W"].T + p["b"]))
    total = {key: np.zeros_like(value) for key, value in p.items()}
    loss, previous = 0.0, 0
    ends = list(range(k1, T + 1, k1))
    if not ends or ends[-1] != T:
        ends.append(T)
    for end in ends:
        start = max(1, end - k2 + 1)
        block_loss, g = _window_grads(p, x[start - 1:end], y[start - 1:end], hs[start - 1], previous + 1 - start + 1)
        loss += block_loss
        for key in total:
            total[key] += g[key]
        previous = end
    return loss, total


def test_reference_itself_is_full_bptt_for_one_block():
    params, x, y, h0 = problem(0, T=7)
    loss, grads = rnn.loss_and_grads(params, x, y, h0)
    ref_loss, ref = reference_tbptt(params, x, y, 7, 7, h0)
    assert abs(ref_loss - loss) < 1e-12 * abs(loss)
    assert worst(grads, ref) < 1e-12


@pytest.mark.parametrize("T, k1, k2", [(12, 3, 3), (12, 1, 4), (11, 3, 5), (10, 4, 7), (9, 2, 2), (13, 5, 6),
                                       (7, 7, 7), (8, 3, 20), (5, 1, 1), (6, 4, 4)])
def test_matches_the_definition(T, k1, k2):
    """Several (k1, k2, T), T a multiple of k1 or not, k2 beyond T."""
    params, x, y, h0 = problem(T * 100 + k1 * 10 + k2, T=T, B=3)
    loss, grads = truncation.tbptt_grads(params, x, y, k1, k2, state0=h0)
    ref_loss, ref = reference_tbptt(params, x, y, k1, k2, h0)
    assert abs(loss - ref_loss) < 1e-12 * abs(ref_loss)
    assert worst(grads, ref) < 1e-11
    full_loss, _ = rnn.loss_and_grads(params, x, y, h0)
    assert abs(loss - full_loss) < 1e-12 * abs(full_loss)       # the loss is the full loss


@pytest.mark.parametrize("k1, k2", [(3, 3), (1, 4), (2, 5)])
def test_window_one_step_off_is_caught(k1, k2):
    """The reference with a window one step longer or shorter differs far beyond round-off; TBPTT does not."""
    params, x, y, h0 = problem(5, T=11, B=3, scale=1.0)
    _, grads = truncation.tbptt_grads(params, x, y, k1, k2, state0=h0)
    _, ref = reference_tbptt(params, x, y, k1, k2, h0)
    assert worst(grads, ref) < 1e-11
    _, longer = reference_tbptt(params, x, y, k1, k2 + 1, h0)
    assert worst(grads, longer) > 1e-3
    if k2 > k1:
        _, shorter = reference_tbptt(params, x, y, k1, k2 - 1, h0)
        assert worst(grads, shorter) > 1e-3


@pytest.mark.parametrize("T", [1, 2, 6, 17])
def test_full_length_is_full_bptt(T):
    params, x, y, h0 = problem(T, T=T)
    loss, grads = rnn.loss_and_grads(params, x, y, h0)
    for k1, k2 in [(T, T), (T, T + 3), (T + 2, T + 2)]:
        t_loss, t_grads = truncation.tbptt_grads(params, x, y, k1, k2, state0=h0)
        assert abs(t_loss - loss) <= 1e-12 * abs(loss)
        assert worst(grads, t_grads) < 1e-12
    _, full = models.full_grads(params, x, y, state0=h0)
    assert worst(full, truncation.tbptt_grads(params, x, y, T, T, state0=h0)[1]) < 1e-12


@pytest.mark.parametrize("T, k", [(9, 1), (9, 3), (10, 4), (6, 6), (5, 8)])
def test_k1_equal_one_is_chapter_7s_band(T, k):
    params, x, y, h0 = problem(20 + k, T=T, B=2)
    _, band = ps.loss_and_grads_path_sum(params, x, y, h0, truncate=k)
    _, grads = truncation.tbptt_grads(params, x, y, 1, k, state0=h0)
    assert worst(band, grads) < 1e-11


def test_kept_paths_are_the_terms_of_the_gradient():
    """The sum of the single-path terms (chapter 7) over kept_paths is the TBPTT gradient of W, U, b."""
    T = 7
    params, x, y, h0 = problem(31, T=T, B=2)
    for k1, k2 in [(2, 3), (3, 3), (1, 2), (4, 6)]:
        total = {key: np.zeros_like(params[key]) for key in ("W", "U", "b")}
        for t, s in truncation.kept_paths(T, k1, k2):
            term = ps.path_contribution(params, x, y, t, s, h0)
            for key in total:
                total[key] += term[key]
        _, grads = truncation.tbptt_grads(params, x, y, k1, k2, state0=h0)
        assert worst(total, {key: grads[key] for key in total}) < 1e-11


def test_kept_paths_counts():
    assert truncation.count_kept(6, 6, 6) == 21
    assert truncation.count_kept(12, 3, 3) == 4 * 6                # T (k + 1) / 2 for T a multiple of k
    for T in range(1, 12):
        for k in range(1, T + 1):
            assert truncation.count_kept(T, 1, k) == k * T - k * (k - 1) // 2   # chapter 7's band
            assert truncation.count_kept(T, k, k) == len(truncation.kept_paths(T, k, k))
    assert truncation.windows(7, 2, 3) == [(1, 1, 2), (2, 3, 4), (4, 5, 6), (5, 7, 7)]


def test_state0_is_honoured():
    params, x, y, h0 = problem(41, T=9)
    with_h0 = truncation.tbptt_grads(params, x, y, 3, 4, state0=h0)
    zeros = truncation.tbptt_grads(params, x, y, 3, 4)
    assert worst(with_h0[1], zeros[1]) > 1e-3
    assert worst(zeros[1], reference_tbptt(params, x, y, 3, 4, np.zeros_like(h0))[1]) < 1e-11
    assert worst(with_h0[1], reference_tbptt(params, x, y, 3, 4, h0)[1]) < 1e-11


@pytest.mark.parametrize("k1, k2", [(0, 3), (4, 3), (-1, 2), (1, 0), (2.0, 3), (1, 3.5), (True, 2), (None, 2)])
def test_bad_k_raise(k1, k2):
    params, x, y, _ = problem(1, T=5)
    with pytest.raises(ValueError, match="k1|k2"):
        truncation.tbptt_grads(params, x, y, k1, k2)


def test_error_names_the_values():
    params, x, y, _ = problem(1, T=5)
    with pytest.raises(ValueError, match="k1=4, k2=3"):
        truncation.tbptt_grads(params, x, y, 4, 3)


def test_bad_inputs_and_models():
    params, x, y, _ = problem(1, T=5)
    with pytest.raises(ValueError, match="model"):
        truncation.tbptt_grads(params, x, y, 1, 2, model="transformer")
    with pytest.raises(ValueError, match="y must hold"):
        truncation.tbptt_grads(params, x, np.full_like(y, 7), 1, 2)
    with pytest.raises(ValueError, match="y must hold"):
        truncation.tbptt_grads(params, x, np.full_like(y, tasks.IGNORE), 1, 2)   # IGNORE only in the masked variant
    with pytest.raises(ValueError, match="h0"):
        truncation.tbptt_grads(params, x, y, 1, 2, state0=np.zeros((3, 3)))


def test_non_finite_result_raises():
    params, x, y, _ = problem(1, T=5)
    params["V"] = params["V"] * 1e308
    with pytest.raises(FloatingPointError, match="tbptt_grads"):
        truncation.tbptt_grads(params, x, y, 2, 3)


def test_inputs_not_modified_and_float_types():
    params, x, y, h0 = problem(2, T=6)
    copies = {key: value.copy() for key, value in params.items()}
    loss, grads = truncation.tbptt_grads(params, x, y, np.int64(2), np.int32(3), state0=h0)
    assert isinstance(loss, float)
    assert set(grads) == set(params)
    assert all(np.array_equal(params[key], copies[key]) for key in params)
    assert all(grads[key].shape == params[key].shape for key in params)


def test_masked_variant_is_tasks_masked_loss_when_untruncated():
    rng = np.random.default_rng(3)
    params = rnn.init_params(4, 6, 4, rng=rng)
    x, y = tasks.delayed_recall(4, 3, 10, 5, rng)
    loss, grads = tasks.masked_loss_and_grads(params, x, y)
    m_loss, m_grads = truncation.masked_tbptt_grads(params, x, y, 10, 10)
    assert abs(loss - m_loss) < 1e-12 * abs(loss)
    assert worst(grads, m_grads) < 1e-12
    # truncated and masked: the definition with the IGNORE steps' losses removed
    y_full = np.where(y == tasks.IGNORE, 0, y)
    _, t_grads = truncation.masked_tbptt_grads(params, x, y, 3, 4)
    _, u_grads = truncation.tbptt_grads(params, x, y_full, 3, 4)
    assert worst(t_grads, u_grads) > 1e-3                           # the ignored steps did count there
    with pytest.raises(ValueError, match="no step with a target"):
        truncation.masked_tbptt_grads(params, x, np.full_like(y, tasks.IGNORE), 2, 2)
    with pytest.raises(ValueError, match="y must hold"):
        truncation.masked_tbptt_grads(params, x, np.full_like(y, -2), 2, 2)


def test_masked_variant_matches_masked_reference():
    """Masked TBPTT equals the sum over blocks of masked full BPTT on each window (IGNORE also before the block)."""
    rng = np.random.default_rng(4)
    params = rnn.init_params(4, 6, 4, rng=rng)
    x, y = tasks.delayed_recall(4, 2, 9, 3, rng)
    T, k1, k2 = 9, 2, 3
    _, grads = truncation.masked_tbptt_grads(params, x, y, k1, k2)
    h = rnn.forward(params, x).h
    total = {key: np.zeros_like(value) for key, value in params.items()}
    for start, first, end in truncation.windows(T, k1, k2):
        yw = y[start - 1:end].copy()
        yw[:first - start] = tasks.IGNORE
        if np.all(yw == tasks.IGNORE):
            continue
        # a window from its stored state: shift the inputs so that h0 is that state, via a bias-free first step
        trace_h0 = h[start - 1]
        loss, g, _ = _masked_window(params, x[start - 1:end], yw, trace_h0)
        for key in total:
            total[key] += g[key]
    assert worst(grads, total) < 1e-11


def _masked_window(params, x, y, h_in):
    """Masked full BPTT on a window from state ``h_in``, by the plain NumPy reference (IGNORE steps skipped)."""
    n, B, _ = x.shape
    p = params
    hs = [h_in]
    for t in range(n):
        hs.append(np.tanh(x[t] @ p["U"].T + hs[-1] @ p["W"].T + p["b"]))
    grads = {key: np.zeros_like(value) for key, value in p.items()}
    loss, dh_next = 0.0, np.zeros_like(h_in)
    for t in range(n, 0, -1):
        o = hs[t] @ p["V"].T + p["c"]
        o = o - o.max(axis=1, keepdims=True)
        logp = o - np.log(np.exp(o).sum(axis=1, keepdims=True))
        keep = y[t - 1] != tasks.IGNORE
        yt = np.where(keep, y[t - 1], 0)
        loss -= (logp[np.arange(B), yt] * keep).sum() / B
        go = np.exp(logp)
        go[np.arange(B), yt] -= 1.0
        go *= keep[:, None] / B
        grads["V"] += go.T @ hs[t]
        grads["c"] += go.sum(axis=0)
        da = (dh_next + go @ p["V"]) * (1.0 - hs[t] ** 2)
        grads["W"] += da.T @ hs[t - 1]
        grads["U"] += da.T @ x[t - 1]
        grads["b"] += da.sum(axis=0)
        dh_next = da @ p["W"]
    return loss, grads, dh_next


def test_memory_is_bounded_by_the_window():
    """The online implementation keeps k2 + 1 states: peak memory at T = 2000 is far below full BPTT's."""
    rng = np.random.default_rng(5)
    params = rnn.init_params(8, 64, 8, rng=rng)
    x = rng.standard_normal((2000, 16, 8))
    y = rng.integers(0, 8, size=(2000, 16))
    full, _ = timing.peak_memory(models.full_grads, params, x, y)
    short, _ = timing.peak_memory(truncation.tbptt_grads, params, x, y, 10, 10)
    states = 2001 * 16 * 64 * 8
    assert full > states                           # full BPTT stores every state
    assert short < full / 4


def test_gradient_bias_and_position_error():
    params, x, y, h0 = problem(7, T=12, B=4)
    rel, cos = truncation.gradient_bias(params, x, y, 12, 12, state0=h0)
    assert rel < 1e-12 and abs(cos - 1) < 1e-12
    rel, cos = truncation.gradient_bias(params, x, y, 2, 2, state0=h0)
    _, full = rnn.loss_and_grads(params, x, y, h0)
    _, trunc = truncation.tbptt_grads(params, x, y, 2, 2, state0=h0)
    g, gt = truncation.flat_cell_grads(full), truncation.flat_cell_grads(trunc)
    assert g.size == 5 * 3 + 5 * 5 + 5                # U, W, b; not V, c
    assert abs(rel - np.linalg.norm(gt - g) / np.linalg.norm(g)) < 1e-12
    assert 0 < rel and cos < 1
    errors = truncation.position_error(params, x, y, 4, state0=h0)
    assert errors.shape == (4,)
    # the first loss of a block keeps only its immediate term (TBPTT(1, 1) of that loss alone)
    firsts = [_first_error(params, x, y, h0, t) for t in (1, 5, 9)]
    assert firsts[0] < 1e-12                           # step 1: no earlier step, nothing dropped
    assert abs(errors[0] - np.median(firsts)) < 1e-12
    assert errors[-1] < errors[0]                      # the last loss of a block keeps more of its paths


def _first_error(params, x, y, h0, t):
    only = np.full_like(y, tasks.IGNORE)
    only[t - 1] = y[t - 1]
    g_full = truncation.flat_cell_grads(truncation.masked_tbptt_grads(params, x, only, 12, 12, state0=h0)[1])
    g_kept = truncation.flat_cell_grads(truncation.masked_tbptt_grads(params, x, only, 1, 1, state0=h0)[1])
    return np.linalg.norm(g_kept - g_full) / np.linalg.norm(g_full)


def test_stacked_training_with_full_windows_is_chapter_10s():
    """train_recall_tbptt with k1 = k2 = T trains exactly as long_term.train_recall_many (full BPTT)."""
    gap, extra = 3, 4
    seeds = [0, 1, 2]
    initials = [long_term.initial_params("Gaussian", s, n_symbols=4, n_hidden=8) for s in seeds]
    settings = dict(n_symbols=4, extra=extra, batch=6, steps=4, lr=0.5, max_norm=1.0, eval_batch=16)
    full = long_term.train_recall_many(gap, initials, seeds, **settings)
    ours = truncation.train_recall_tbptt(gap, initials, seeds, gap + extra, gap + extra, **settings)
    for a, b in zip(full.params, ours.params):
        assert worst(a, b) < 1e-10
    assert np.allclose(full.loss, ours.loss, rtol=1e-12)


def test_stacked_training_step_is_the_one_network_tbptt():
    """One stacked step with truncation: each network's update is its own masked_tbptt_grads, clipped."""
    gap, extra, k1, k2 = 3, 5, 2, 3
    seeds = [4, 5]
    initials = [long_term.initial_params("Gaussian", s, n_symbols=4, n_hidden=8) for s in seeds]
    runs = truncation.train_recall_tbptt(gap, initials, seeds, k1, k2, n_symbols=4, extra=extra, batch=6, steps=1,
                                         lr=0.5, max_norm=1.0, eval_batch=16)
    for r, s in enumerate(seeds):
        x, y = tasks.recall_batches(4, gap, gap + extra, 6, s)(0)
        loss, grads = truncation.masked_tbptt_grads(initials[r], x, y, k1, k2)
        norm = np.sqrt(sum(np.sum(g ** 2) for g in grads.values()))
        factor = min(1.0, 1.0 / norm)
        expected = {key: initials[r][key] - 0.5 * factor * grads[key] for key in grads}
        assert abs(runs.loss[0, r] - loss) < 1e-12 * loss
        assert worst(runs.params[r], expected) < 1e-11


def test_sympy_derivation_of_the_kept_terms():
    for T, k1, k2 in [(3, 1, 2), (4, 2, 2), (4, 2, 3), (3, 3, 3)]:
        assert dtr.check_kept_terms(T, k1, k2)


def test_exercise_reference_passes():
    from bptt_lib.exercises import truncation as ex

    assert verdict("truncation_tbptt", ex.reference_tbptt_W)


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_any_model_unchanged(name):
    """Written once over the cell interface: for every model, TBPTT(T, T) and TBPTT(k1, k2 >= T) are full BPTT
    (each loss counted once, in its own block), and a short window differs from it."""
    try:
        module = __import__(models.MODEL_MODULES[name], fromlist=["init_params"])
        models.get_model(name)
    except (ImportError, ValueError):
        pytest.skip(f"model {name!r} is not available yet")
    rng = np.random.default_rng(8)
    params = module.init_params(3, 5, 4, rng=rng)
    x = rng.standard_normal((9, 2, 3))
    y = rng.integers(0, 4, size=(9, 2))
    loss, full = models.full_grads(params, x, y, model=name)
    for k1, k2 in [(9, 9), (1, 9), (2, 12), (4, 9)]:
        t_loss, grads = truncation.tbptt_grads(params, x, y, k1, k2, model=name)
        assert abs(t_loss - loss) < 1e-12 * abs(loss)
        assert set(grads) == set(params)
        assert worst(grads, full) < 1e-11
    assert worst(truncation.tbptt_grads(params, x, y, 2, 3, model=name)[1], full) > 1e-3
