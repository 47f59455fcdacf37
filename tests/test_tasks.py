"""Tests of chapter 10: the delayed-recall task, the masked loss, the gap sweep helpers."""

import numpy as np
import pytest

from bptt_lib import gradcheck, rnn, tasks
from bptt_lib import long_term as lt
from bptt_lib.exercises import verdict
from bptt_lib.exercises.long_term import reference_recall_targets
from bptt_lib.training import train

# --- the task -------------------------------------------------------------------------------


@pytest.mark.parametrize("n_symbols, gap, T, batch", [(2, 1, 2, 1), (4, 3, 10, 7), (5, 8, 9, 3), (3, 20, 25, 4)])
def test_shapes_and_targets_equal_input_k_steps_earlier(n_symbols, gap, T, batch):
    x, y = tasks.delayed_recall(n_symbols, gap, T, batch, np.random.default_rng(0))
    assert x.shape == (T, batch, n_symbols) and x.dtype == np.float64
    assert y.shape == (T, batch) and y.dtype.kind == "i"
    assert np.all(x.sum(-1) == 1) and set(np.unique(x)) <= {0.0, 1.0}   # one-hot
    s = x.argmax(-1)
    for t in range(1, T + 1):                                            # book's 1-based steps
        if t <= gap:
            assert np.all(y[t - 1] == tasks.IGNORE)
        else:
            np.testing.assert_array_equal(y[t - 1], s[t - 1 - gap])


def test_deterministic_per_seed_and_seeds_differ():
    a = tasks.delayed_recall(4, 3, 12, 16, np.random.default_rng(5))
    b = tasks.delayed_recall(4, 3, 12, 16, np.random.default_rng(5))
    c = tasks.delayed_recall(4, 3, 12, 16, np.random.default_rng(6))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    data = tasks.recall_batches(4, 3, 12, 16, seed=1)
    np.testing.assert_array_equal(data(7)[0], data(7)[0])               # any order, same batch
    assert not np.array_equal(data(7)[0], data(8)[0])


def test_blank_gives_the_extra_class_and_the_same_inputs():
    x, y = tasks.delayed_recall(3, 2, 6, 5, np.random.default_rng(0))
    x_b, y_b = tasks.delayed_recall(3, 2, 6, 5, np.random.default_rng(0), blank=True)
    np.testing.assert_array_equal(x_b, x)
    assert np.all(y_b[:2] == 3)                                        # the extra class D
    np.testing.assert_array_equal(y_b[2:], y[2:])
    params = rnn.init_params(3, 4, 4, rng=np.random.default_rng(1))   # K = D + 1
    loss, _ = rnn.loss_and_grads(params, x_b, y_b)                     # every step has a target
    assert np.isfinite(loss)
    data = tasks.recall_batches(3, 2, 6, 5, seed=2, blank=True)
    assert np.all(data(4)[1][:2] == 3)
    with pytest.raises(TypeError, match="blank must be a bool"):
        tasks.delayed_recall(3, 2, 6, 5, np.random.default_rng(0), blank=1)


def test_symbols_are_uniform():
    x, _ = tasks.delayed_recall(4, 1, 50, 2000, np.random.default_rng(0))
    freq = np.bincount(x.argmax(-1).ravel(), minlength=4) / (50 * 2000)
    # 100 000 draws: standard error sqrt(p(1-p)/n) = 0.0014; 0.01 is seven of them.
    assert np.all(np.abs(freq - 0.25) < 0.01)


def test_recall_targets_when_gap_is_not_shorter_than_T():
    x = np.eye(3)[np.array([[0], [2], [1]])]
    np.testing.assert_array_equal(tasks.recall_targets(x, 3), np.full((3, 1), tasks.IGNORE))
    np.testing.assert_array_equal(tasks.recall_targets(x, 1)[:, 0], [-1, 0, 2])


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(n_symbols=1), ValueError, "n_symbols must be an int at least 2"),
    (dict(gap=0), ValueError, "gap must be an int at least 1"),
    (dict(gap=2.0), TypeError, "gap must be an int"),
    (dict(T=3, gap=3), ValueError, "T must exceed gap"),
    (dict(batch=0), ValueError, "batch must be an int at least 1"),
    (dict(rng=0), TypeError, "rng must be a numpy.random.Generator"),
])
def test_bad_generator_inputs(kwargs, error, match):
    args = dict(n_symbols=4, gap=2, T=6, batch=3, rng=np.random.default_rng(0))
    args.update(kwargs)
    with pytest.raises(error, match=match):
        tasks.delayed_recall(**args)


def test_bad_target_inputs():
    with pytest.raises(ValueError, match=r"x must have shape \(T, B, D\)"):
        tasks.recall_targets(np.eye(3), 1)
    with pytest.raises(ValueError, match="one-hot"):
        tasks.recall_targets(np.full((4, 2, 3), 0.5), 1)


# --- the masked loss ------------------------------------------------------------------------


def _small_problem(seed=3):
    rng = np.random.default_rng(seed)
    params = rnn.init_params(3, 4, 3, rng=rng)
    x, y = tasks.delayed_recall(3, 2, 6, 3, rng)
    return params, x, y


def test_masked_gradient_matches_complex_step():
    params, x, y = _small_problem()
    loss, grads = tasks.masked_loss_and_grads(params, x, y)
    assert loss == pytest.approx(float(tasks.masked_loss(params, x, y)), rel=1e-12)
    numeric = gradcheck.complex_step(lambda p: tasks.masked_loss(p, x, y), params)
    # The complex step is exact to round-off: 1e-9 relative leaves six orders of margin.
    assert max(gradcheck.compare(grads, numeric).values()) < 1e-9


def test_masked_loss_equals_rnn_loss_without_ignored_steps():
    params, x, _ = _small_problem()
    y = np.random.default_rng(0).integers(0, 3, size=(6, 3))
    loss, grads = tasks.masked_loss_and_grads(params, x, y)
    ref_loss, ref_grads = rnn.loss_and_grads(params, x, y)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for key in grads:
        np.testing.assert_allclose(grads[key], ref_grads[key], rtol=1e-12, atol=1e-15)


def test_ignored_steps_do_not_matter():
    params, x, y = _small_problem()
    loss, _ = tasks.masked_loss_and_grads(params, x, y)
    y_short = y.copy()
    y_short[:2] = tasks.IGNORE  # already ignored: nothing changes
    assert tasks.masked_loss_and_grads(params, x, y_short)[0] == loss


def test_masked_loss_validation():
    params, x, y = _small_problem()
    with pytest.raises(ValueError, match="every entry is IGNORE"):
        tasks.masked_loss_and_grads(params, x, np.full_like(y, tasks.IGNORE))
    with pytest.raises(ValueError, match=r"class indices in \[0, K=3\)"):
        tasks.masked_loss_and_grads(params, x, np.full_like(y, 3))
    with pytest.raises(ValueError, match=r"y must have shape"):
        tasks.masked_loss_and_grads(params, x, y[:, :2])


def test_accuracy_counts_only_target_steps():
    net = lt.shift_register_params(4, 3)
    x, y = tasks.delayed_recall(4, 3, 10, 50, np.random.default_rng(0))
    assert tasks.accuracy(net, x, y) == 1.0
    wrong = np.where(y == tasks.IGNORE, y, (y + 1) % 4)
    assert tasks.accuracy(net, x, wrong) == 0.0


# --- training and the gradient's reach ------------------------------------------------------


def test_short_run_learns_gap_one():
    # No wall-clock assertion: CI machines are shared and a timing bound would be flaky.
    run = lt.train_recall(1, n_symbols=4, n_hidden=16, extra=5, batch=32, steps=150, lr=0.5, seed=0)
    assert run.history.diverged_at is None
    assert run.accuracy > 0.9


def test_train_recall_uses_the_shared_loop_deterministically():
    a = lt.train_recall(2, n_hidden=8, steps=20, seed=4)
    b = lt.train_recall(2, n_hidden=8, steps=20, seed=4)
    np.testing.assert_array_equal(a.history.loss, b.history.loss)
    data = tasks.recall_batches(4, 2, 7, 32, 4)
    params, history = train(a.initial, data, steps=20, lr=0.5, max_norm=1.0,
                            loss_and_grads=tasks.masked_loss_and_grads)
    np.testing.assert_array_equal(history.loss, a.history.loss)
    np.testing.assert_array_equal(params["W"], a.params["W"])


def test_backward_norms_equal_the_product_of_step_jacobians():
    rng = np.random.default_rng(2)
    params = rnn.init_params(3, 5, 3, rng=rng)
    x, y = tasks.delayed_recall(3, 1, 6, 4, rng)
    norms = lt.backward_norms(params, x, y)
    # Explicit Jacobians, example by example: dL/dh(T-j) = (J_T ... J_{T-j+1})^T V^T (yhat - onehot).
    trace = rnn.forward(params, x)
    T, B = y.shape
    per_example = np.zeros((T, B))
    for b in range(B):
        g = params["V"].T @ (trace.yhat[-1, b] - np.eye(3)[y[-1, b]])
        for j in range(T):
            per_example[j, b] = np.linalg.norm(g)
            h = trace.h[T - j, b]
            g = (np.diag(1 - h**2) @ params["W"]).T @ g
    np.testing.assert_allclose(norms, np.sqrt(np.mean(per_example**2, axis=1)), rtol=1e-12)


def test_shift_register_solves_every_gap_and_its_gradient_ratio_is_exact():
    # Every gap that fits in the H = 32 units of chapter 10's sweep (m = 2 units per slot, k + 1 slots).
    for gap in range(1, 16):
        net = lt.shift_register_params(4, gap, n_hidden=32)
        x, y = lt.evaluation_batch(gap)
        assert tasks.accuracy(net, x, y) == 1.0
    with pytest.raises(ValueError, match="n_hidden must be an int at least 34"):
        lt.shift_register_params(4, 16, n_hidden=32)
    g, gap = 1.2, 6
    hs = [np.tanh(g)]
    for _ in range(gap):
        hs.append(np.tanh(g * hs[-1]))
    predicted = np.prod([g * (1 - h**2) for h in hs[1:]])
    ratio = lt.gradient_ratio(lt.shift_register_params(4, gap, gain=g), gap)
    assert ratio == pytest.approx(predicted, rel=1e-9)


def test_helper_validation():
    with pytest.raises(ValueError, match="n_hidden must be an int at least 26"):
        lt.shift_register_params(4, 12, n_hidden=20)
    with pytest.raises(TypeError, match="gain must be a real number"):
        lt.shift_register_params(4, 12, gain="x")
    with pytest.raises(ValueError, match="gain must be a positive finite number"):
        lt.shift_register_params(4, 12, gain=np.inf)
    with pytest.raises(ValueError, match="gaps must be a non-empty"):
        lt.gap_sweep([])
    with pytest.raises(ValueError, match="w_gain must be a positive"):
        lt.train_recall(1, w_gain=0.0)
    with pytest.raises(TypeError, match="w_gain must be a real number"):
        lt.train_recall(1, w_gain="1.5")
    params, x, y = _small_problem()
    with pytest.raises(TypeError, match="t must be an int"):
        lt.backward_norms(params, x, y, t=2.0)
    with pytest.raises(ValueError, match="t must be an int from 1 to"):
        lt.backward_norms(params, x, y, t=0)
    with pytest.raises(ValueError, match="must have a target for every example"):
        lt.backward_norms(params, x, y, t=1)
    with pytest.raises(ValueError, match="norms must be a 1-d array"):
        lt.decay_rate([1.0])


# --- the exercise ---------------------------------------------------------------------------


def test_checker_accepts_reference_and_rejects_wrong_answers():
    assert verdict("long_term_recall_targets", reference_recall_targets)
    assert verdict("long_term_recall_targets", tasks.recall_targets)

    def off_by_one(x, gap):
        return tasks.recall_targets(x, gap + 1)

    def zero_instead_of_ignore(x, gap):
        y = tasks.recall_targets(x, gap)
        return np.where(y == tasks.IGNORE, 0, y)

    def wrong_direction(x, gap):
        s = np.asarray(x).argmax(-1)
        y = np.full(s.shape, -1)
        y[:-gap] = s[gap:]
        return y

    for wrong in (off_by_one, zero_instead_of_ignore, wrong_direction):
        assert not verdict("long_term_recall_targets", wrong)


# --- the adding problem (chapter 16) ------------------------------------------------------


@pytest.mark.parametrize("T, batch", [(2, 1), (7, 5), (20, 64)])
def test_adding_problem_markers_values_and_targets(T, batch):
    x, y = tasks.adding_problem(T, batch, np.random.default_rng(0))
    assert x.shape == (T, batch, 2) and y.shape == (batch,)
    values, markers = x[..., 0], x[..., 1]
    assert np.all((values >= 0) & (values < 1))
    assert set(np.unique(markers)) <= {0.0, 1.0}
    half = T // 2
    np.testing.assert_array_equal(markers[:half].sum(0), 1)      # one marker in the first half
    np.testing.assert_array_equal(markers[half:].sum(0), 1)      # and one in the second
    for b in range(batch):
        assert y[b] == values[markers[:, b] == 1, b].sum()


def test_adding_problem_seeded_and_baseline():
    a = tasks.adding_problem(10, 4, np.random.default_rng(1))
    b = tasks.adding_problem(10, 4, np.random.default_rng(1))
    c = tasks.adding_problem(10, 4, np.random.default_rng(2))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and not np.array_equal(a[0], c[0])
    _, y = tasks.adding_problem(30, 400_000, np.random.default_rng(3))
    # the MSE of predicting 1 estimates 1/6; its standard error here is about 2e-4
    assert abs(np.mean((y - 1) ** 2) - tasks.ADDING_BASELINE_MSE) < 2e-3
    assert abs(np.mean(y) - 1) < 3e-3


def test_adding_problem_rejects_bad_arguments():
    with pytest.raises(ValueError):
        tasks.adding_problem(1, 4, np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng must be"):
        tasks.adding_problem(5, 4, 0)
