"""Clipping, the SGD step and the shared training loop."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bptt_lib import rnn
from bptt_lib.clip import clip_by_global_norm, clip_by_value, global_norm
from bptt_lib.optim import sgd_step
from bptt_lib.training import train

finite = st.floats(-1e3, 1e3, allow_nan=False)
grad_dicts = st.fixed_dictionaries({
    "W": arrays(np.float64, (3, 3), elements=finite),
    "b": arrays(np.float64, (3,), elements=finite),
})
thresholds = st.floats(1e-3, 1e3)


@settings(max_examples=200, deadline=None)
@given(grad_dicts, thresholds)
def test_global_norm_clipping_keeps_direction_and_bounds_norm(grads, max_norm):
    before = {k: v.copy() for k, v in grads.items()}
    clipped, total = clip_by_global_norm(grads, max_norm)
    for k in grads:
        np.testing.assert_array_equal(grads[k], before[k])  # input not modified
    assert total == pytest.approx(np.sqrt(sum(np.sum(v**2) for v in before.values())), rel=1e-12)
    new_norm = global_norm(clipped)
    assert new_norm <= max_norm * (1 + 1e-12) or new_norm == pytest.approx(total, rel=1e-12)
    if total > max_norm:
        assert new_norm == pytest.approx(max_norm, rel=1e-12)
        scale = max_norm / total
        for k in grads:  # same direction: a positive multiple of the original
            np.testing.assert_allclose(clipped[k], scale * before[k], rtol=1e-12, atol=1e-300)
    else:
        for k in grads:
            np.testing.assert_array_equal(clipped[k], before[k])


@settings(max_examples=200, deadline=None)
@given(grad_dicts, thresholds)
def test_value_clipping_bounds_every_entry(grads, limit):
    clipped, total = clip_by_value(grads, limit)
    assert total == pytest.approx(global_norm(grads), rel=1e-12)
    for k in grads:
        assert np.all(np.abs(clipped[k]) <= limit)
        inside = np.abs(grads[k]) <= limit
        np.testing.assert_array_equal(clipped[k][inside], grads[k][inside])


def test_value_clipping_can_change_direction_norm_clipping_cannot():
    g = {"W": np.array([10.0, 2.0])}
    by_value, _ = clip_by_value(g, 1.0)
    by_norm, _ = clip_by_global_norm(g, 1.0)
    cos = lambda a, b: a @ b / np.linalg.norm(a) / np.linalg.norm(b)  # noqa: E731
    assert cos(by_value["W"], g["W"]) < 0.9
    assert cos(by_norm["W"], g["W"]) == pytest.approx(1.0, rel=1e-15)


@pytest.mark.parametrize("bad", [0.0, -1.0, np.inf, np.nan])
def test_bad_thresholds(bad):
    with pytest.raises(ValueError, match="max_norm must be a positive finite number"):
        clip_by_global_norm({"W": np.ones(2)}, bad)
    with pytest.raises(ValueError, match="limit must be a positive finite number"):
        clip_by_value({"W": np.ones(2)}, bad)


def test_huge_finite_gradients_are_clipped_not_zeroed():
    g = {"W": np.array([3e200, 4e200]), "b": np.array([0.0])}
    clipped, total = clip_by_global_norm(g, 1.0)
    assert total == pytest.approx(5e200, rel=1e-12)
    np.testing.assert_allclose(clipped["W"], [0.6, 0.8], rtol=1e-12)
    assert global_norm({"W": np.zeros(3)}) == 0.0


def test_bad_gradients():
    with pytest.raises(TypeError, match="grads must be a non-empty dict"):
        clip_by_global_norm([np.ones(2)], 1.0)
    with pytest.raises(FloatingPointError, match="W is not finite"):
        clip_by_global_norm({"W": np.array([np.inf])}, 1.0)


def test_clipping_importable_from_the_package():
    import bptt_lib

    assert bptt_lib.clip_by_global_norm is clip_by_global_norm
    assert bptt_lib.clip_by_value is clip_by_value


def test_sgd_step():
    params = {"W": np.ones((2, 2)), "b": np.zeros(2)}
    new = sgd_step(params, {"W": np.full((2, 2), 2.0), "b": np.ones(2)}, lr=0.5)
    np.testing.assert_array_equal(new["W"], np.zeros((2, 2)))
    np.testing.assert_array_equal(new["b"], -0.5 * np.ones(2))
    np.testing.assert_array_equal(params["W"], np.ones((2, 2)))
    with pytest.raises(KeyError, match="grads is missing key"):
        sgd_step(params, {"W": np.ones((2, 2))}, lr=0.1)
    with pytest.raises(ValueError, match=r'grads\["b"\] must have the shape of params\["b"\], \(2,\); got \(3,\)'):
        sgd_step(params, {"W": np.ones((2, 2)), "b": np.ones(3)}, lr=0.1)
    with pytest.raises(ValueError, match="lr must be a positive finite number"):
        sgd_step(params, params, lr=0.0)


@pytest.mark.parametrize("not_a_dict", [[np.ones(2)], (np.ones(2),), np.ones(2), None])
def test_sgd_step_parameters_must_be_a_dict(not_a_dict):
    """Today's behaviour was NumPy's "unhashable type" or a KeyError about keys that make no sense."""
    expected = rf"params must be a dict of arrays \(name -> array\); got {type(not_a_dict).__name__}"
    with pytest.raises(TypeError, match=expected):
        sgd_step(not_a_dict, {"W": np.ones(2)}, lr=0.1)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_sgd_step_refuses_a_non_finite_gradient(bad):
    """A NaN or infinite gradient would silently turn the parameters into NaN."""
    params = {"W": np.ones((2, 2)), "b": np.zeros(2)}
    grads = {"W": np.ones((2, 2)), "b": np.array([0.5, bad])}
    with pytest.raises(ValueError, match=r'grads\["b"\] holds a non-finite value \(-?(nan|inf)\) at index \(1,\): '
                                         r'a step would make params\["b"\] NaN or infinite'):
        sgd_step(params, grads, lr=0.1)
    np.testing.assert_array_equal(params["b"], np.zeros(2))  # untouched


def _copy_task(seed=0, T=6, B=16, K=3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, size=(T, B))
    x = np.eye(K)[y]  # predict the current input: learnable in a few dozen steps
    return x, y


def test_training_reduces_the_loss_and_is_deterministic():
    x, y = _copy_task()
    p0 = rnn.init_params(3, 8, 3, rng=np.random.default_rng(1))
    p1, h1 = train(p0, (x, y), steps=60, lr=0.5)
    p2, h2 = train(p0, (x, y), steps=60, lr=0.5)
    assert h1.loss.shape == (60,) and h1.grad_norm.shape == (60,) and h1.diverged_at is None
    assert h1.loss[-1] < 0.5 * h1.loss[0]
    np.testing.assert_array_equal(h1.loss, h2.loss)
    np.testing.assert_array_equal(p1["W"], p2["W"])


def test_training_with_clipping_records_the_unclipped_norm():
    x, y = _copy_task()
    p0 = rnn.init_params(3, 8, 3, rng=np.random.default_rng(1))
    _, h = train(p0, (x, y), steps=5, lr=0.1, max_norm=1e-3)
    _, g = rnn.loss_and_grads(p0, x, y)
    assert h.grad_norm[0] == pytest.approx(global_norm(g), rel=1e-12)
    assert h.grad_norm[0] > 1e-3
    _, hv = train(p0, (x, y), steps=5, lr=0.1, clip_value=1e-3)
    assert np.all(np.isfinite(hv.loss))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_training_stops_and_reports_divergence():
    x, y = _copy_task()
    p0 = rnn.init_params(3, 8, 3, rng=np.random.default_rng(1))
    # An update so large that the parameters overflow to infinity.
    _, h = train(p0, (x, y), steps=50, lr=1e308)
    assert h.diverged_at == 1 and len(h.loss) == 1

    # A gradient routine that reports a non-finite gradient at step 3.
    calls = []

    def failing(params, x, y):
        calls.append(1)
        if len(calls) == 4:
            raise FloatingPointError("loss_and_grads: W is not finite")
        return rnn.loss_and_grads(params, x, y)

    _, h = train(p0, (x, y), steps=10, lr=0.1, loss_and_grads=failing)
    assert h.diverged_at == 3 and len(h.loss) == 3


def test_training_argument_errors():
    x, y = _copy_task()
    p0 = rnn.init_params(3, 8, 3, rng=np.random.default_rng(1))
    with pytest.raises(ValueError, match="at most one of max_norm and clip_value"):
        train(p0, (x, y), steps=1, lr=0.1, max_norm=1.0, clip_value=1.0)
    with pytest.raises(TypeError, match="data must be a tuple"):
        train(p0, [x, y], steps=1, lr=0.1)
    with pytest.raises(ValueError, match="steps must be an int at least 0"):
        train(p0, (x, y), steps=-1, lr=0.1)
    with pytest.raises(ValueError, match="lr must be a positive finite number"):
        train(p0, (x, y), steps=0, lr=-1.0)
    with pytest.raises(ValueError, match="max_norm must be a positive finite number"):
        train(p0, (x, y), steps=0, lr=0.1, max_norm=0.0)
