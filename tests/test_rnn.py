"""Full BPTT in bptt_lib.rnn: checked against two numerical derivatives, fed bad input.

Tolerances:
- complex step (eps = 1e-30): no subtractive cancellation, so the numerical
  derivative is exact to round-off; the analytic gradient must agree to 1e-9
  relative (float64 round-off accumulated over at most 8 steps is ~1e-14).
- central differences (eps = 1e-6): truncation error ~eps^2 |f'''| ~ 1e-12 plus
  round-off, which is absolute: the loss is computed with a relative error of at most ~100
  machine epsilons (a sum of T B logs of softmaxes), so a difference quotient is off by up to
  ~100 * 2.2e-16 * |L| / eps = 2.2e-8 |L|. The bound is 1e-6 relative to the gradient plus that
  round-off term: for a small gradient (H = 1, |dL/dW| ~ 1e-3 with a loss of 9) round-off alone
  exceeds 1e-6 relative, while a gradient wrong by 1 % (1e-5 absolute there) still fails.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from problems import SHAPES, rnn_problem

from bptt_lib import gradcheck, rnn
from bptt_lib.kernels import rnn_kernels

CS_RTOL = 1e-9
FD_EPS = 1e-6
FD_RTOL = 1e-6
FD_ROUNDOFF = 100 * np.finfo(float).eps / FD_EPS   # times |L|: a difference quotient's round-off


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SHAPES)
def test_gradients_match_complex_step(case):
    seed, T, B, D, H, K = case
    params, x, y, h0 = rnn_problem(seed, T, B, D, H, K)
    _, grads = rnn.loss_and_grads(params, x, y, h0)
    numeric = gradcheck.complex_step(lambda p: rnn.loss(p, x, y, h0), params)
    errors = gradcheck.compare(grads, numeric)
    assert max(errors.values()) < CS_RTOL, errors


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SHAPES)
def test_gradients_match_central_differences(case):
    seed, T, B, D, H, K = case
    params, x, y, h0 = rnn_problem(seed, T, B, D, H, K)
    loss, grads = rnn.loss_and_grads(params, x, y, h0)
    numeric = gradcheck.central_difference(lambda p: rnn.loss(p, x, y, h0), params, eps=FD_EPS)
    for name in grads:
        error = np.max(np.abs(grads[name] - numeric[name]))
        bound = FD_RTOL * np.max(np.abs(grads[name])) + FD_ROUNDOFF * abs(loss)
        assert error <= bound, (name, error, bound)


def test_loss_is_the_batch_mean_of_summed_negative_log_likelihoods():
    params, x, y, h0 = rnn_problem(1, T=4, B=3, D=2, H=3, K=4)
    trace = rnn.forward(params, x, h0)
    per_example = [-sum(np.log(trace.yhat[t, b, y[t, b]]) for t in range(4)) for b in range(3)]
    value, _ = rnn.loss_and_grads(params, x, y, h0)
    assert value == pytest.approx(np.mean(per_example), rel=1e-12)


def test_forward_follows_the_book_equations():
    params, x, _, h0 = rnn_problem(2, T=3, B=2, D=2, H=3, K=2)
    trace = rnn.forward(params, x, h0)
    h = h0
    for t in range(3):
        h = np.tanh(params["b"] + h @ params["W"].T + x[t] @ params["U"].T)
        o = params["c"] + h @ params["V"].T
        np.testing.assert_allclose(trace.h[t + 1], h, rtol=1e-13)
        np.testing.assert_allclose(trace.o[t], o, rtol=1e-13)
        np.testing.assert_allclose(trace.yhat[t], np.exp(o) / np.exp(o).sum(-1, keepdims=True), rtol=1e-13)
    assert trace.h.shape == (4, 2, 3) and trace.o.shape == (3, 2, 2)
    np.testing.assert_array_equal(rnn.forward(params, x).h[0], np.zeros((2, 3)))


def test_softmax_is_stable_for_huge_logits():
    params, x, y, h0 = rnn_problem(3, T=2, B=2, D=2, H=2, K=3)
    params["c"] = np.array([800.0, 0.0, -800.0])
    value, grads = rnn.loss_and_grads(params, x, y, h0)
    assert np.isfinite(value) and all(np.all(np.isfinite(g)) for g in grads.values())


def test_backward_loop_calls_the_generated_kernels(monkeypatch):
    """The spine: BPTT's numbers come from the generated kernels, not from hand-typed formulas."""
    params, x, y, h0 = rnn_problem(4, T=5, B=2, D=3, H=4, K=3)
    _, reference = rnn.loss_and_grads(params, x, y, h0)
    k = rnn_kernels()
    calls = {}
    for name in ("tanh_vjp", "hidden_vjp_h_prev", "hidden_vjp_params", "output_vjp", "softmax_nll_grad"):
        original = getattr(k, name)

        def spy(*args, _original=original, _name=name):
            calls[_name] = calls.get(_name, 0) + 1
            return _original(*args)

        monkeypatch.setattr(k, name, spy)
    _, grads = rnn.loss_and_grads(params, x, y, h0)
    assert calls == {"tanh_vjp": 5, "hidden_vjp_h_prev": 5, "hidden_vjp_params": 1, "output_vjp": 1,
                     "softmax_nll_grad": 1}
    for key in grads:
        np.testing.assert_array_equal(grads[key], reference[key])

    # Corrupting one generated kernel (the tanh rule without the square) changes the gradient.
    monkeypatch.setattr(k, "tanh_vjp", lambda g, h: g * (1 - h))
    _, corrupted = rnn.loss_and_grads(params, x, y, h0)
    assert not np.allclose(corrupted["W"], reference["W"])


def test_backward_returns_the_hidden_state_gradients():
    params, x, y, h0 = rnn_problem(5, T=4, B=2, D=2, H=3, K=2)
    trace = rnn.forward(params, x, h0)
    grads, grad_h = rnn.backward(params, trace, y)
    assert grad_h.shape == (4, 2, 3)
    # The last step receives gradient only through its own output: V^T (yhat - onehot) / B.
    onehot = np.eye(2)[y[-1]]
    np.testing.assert_allclose(grad_h[-1], (trace.yhat[-1] - onehot) @ params["V"] / 2, rtol=1e-12)


# --- bad input -------------------------------------------------------------------------


@pytest.fixture
def problem():
    return rnn_problem(6, T=3, B=2, D=2, H=3, K=4)


def test_missing_parameter_key(problem):
    params, x, y, _ = problem
    del params["W"]
    with pytest.raises(KeyError, match=r"params is missing key\(s\) \['W'\]"):
        rnn.loss_and_grads(params, x, y)


def test_params_must_be_a_dict(problem):
    _, x, y, _ = problem
    with pytest.raises(TypeError, match="params must be a dict"):
        rnn.forward([1, 2], x)


@pytest.mark.parametrize("key,shape", [("W", (3, 2)), ("U", (2, 2)), ("V", (4, 2)), ("b", (2,)), ("c", (3, 1))])
def test_wrong_parameter_shape_names_the_parameter(problem, key, shape):
    params, x, y, _ = problem
    params[key] = np.zeros(shape)
    with pytest.raises(ValueError, match=rf'params\["{key}"\] must have shape .*got shape \({shape[0]},'):
        rnn.loss_and_grads(params, x, y)


def test_x_of_wrong_rank(problem):
    params, x, y, _ = problem
    with pytest.raises(ValueError, match=r"x must have shape \(T, B, D=2\) \(3 dimensions\); got shape \(3, 2\)"):
        rnn.forward(params, x[:, :, 0])


def test_x_with_wrong_feature_size(problem):
    params, x, y, _ = problem
    with pytest.raises(ValueError, match=r"x must have shape .*D=2.*got shape \(3, 2, 5\)"):
        rnn.forward(params, np.zeros((3, 2, 5)))


@pytest.mark.parametrize("y_shape,axis", [((4, 2), "T"), ((3, 1), "B")])
def test_mismatched_T_or_B_between_x_and_y(problem, y_shape, axis):
    params, x, _, _ = problem
    pattern = rf"y must have shape \(T=3, B=2\); got shape \({y_shape[0]}, {y_shape[1]}\) \(axis \d, {axis}"
    with pytest.raises(ValueError, match=pattern):
        rnn.loss_and_grads(params, x, np.zeros(y_shape, dtype=int))


@pytest.mark.parametrize("bad", [-1, 4])
def test_targets_out_of_range(problem, bad):
    params, x, y, _ = problem
    y = y.copy()
    y[1, 0] = bad
    with pytest.raises(ValueError, match=r"y must hold class indices in \[0, K=4\)"):
        rnn.loss_and_grads(params, x, y)


def test_float_targets_are_a_type_error(problem):
    params, x, y, _ = problem
    with pytest.raises(TypeError, match="y must hold integers; got dtype float64"):
        rnn.loss_and_grads(params, x, y.astype(float))


def test_complex_parameters_rejected_by_loss_and_grads(problem):
    params, x, y, _ = problem
    params["W"] = params["W"].astype(complex)
    with pytest.raises(TypeError, match=r'params\["W"\] must be real floating point'):
        rnn.loss_and_grads(params, x, y)


@pytest.mark.parametrize("where", ["x", "h0", "W"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_inputs(problem, where, value):
    params, x, y, h0 = problem
    if where == "x":
        x = x.copy()
        x[0, 1, 1] = value
        name = "x"
    elif where == "h0":
        h0 = h0.copy()
        h0[1, 2] = value
        name = "h0"
    else:
        params["W"] = params["W"].copy()
        params["W"][0, 0] = value
        name = r'params\["W"\]'
    with pytest.raises(ValueError, match=rf"{name} holds a non-finite value"):
        rnn.loss_and_grads(params, x, y, h0)


def test_h0_of_wrong_shape(problem):
    params, x, y, _ = problem
    with pytest.raises(ValueError, match=r"h0 must have shape \(B=2, H=3\); got shape \(2, 4\)"):
        rnn.forward(params, x, np.zeros((2, 4)))


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_non_finite_gradient_is_detected_not_returned(problem, monkeypatch):
    params, x, y, h0 = problem
    k = rnn_kernels()
    monkeypatch.setattr(k, "tanh_vjp", lambda g, h: g * np.inf)
    with pytest.raises(FloatingPointError, match="not finite"):
        rnn.loss_and_grads(params, x, y, h0)


def test_init_params_validates_and_is_reproducible():
    a = rnn.init_params(2, 3, 4, rng=np.random.default_rng(0))
    b = rnn.init_params(2, 3, 4, rng=np.random.default_rng(0))
    assert {k: v.shape for k, v in a.items()} == {"U": (3, 2), "W": (3, 3), "V": (4, 3), "b": (3,), "c": (4,)}
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        rnn.init_params(2, 3, 4, rng=0)
    with pytest.raises(ValueError, match="n_hidden must be an int at least 1"):
        rnn.init_params(2, 0, 4, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="scale must be a positive finite number"):
        rnn.init_params(2, 3, 4, rng=np.random.default_rng(0), scale=-1.0)


# --- a trace of another network ----------------------------------------------------------

OTHER_NETWORKS = [
    # (field named in the error, sizes of the network that made the trace)
    ("trace.h", dict(D=2, H=5, K=4)),
    ("trace.o", dict(D=2, H=3, K=6)),
    ("trace.x", dict(D=5, H=3, K=4)),
]


@pytest.mark.parametrize("backward", ["rnn.backward", "path_sum.backward_path_sum"])
@pytest.mark.parametrize("field, sizes", OTHER_NETWORKS, ids=[f for f, _ in OTHER_NETWORKS])
def test_backward_given_a_trace_of_another_network(problem, backward, field, sizes):
    """Today's behaviour was NumPy's "cannot reshape": the error names the field, expected and actual shape."""
    from bptt_lib import path_sum

    fn = {"rnn.backward": rnn.backward, "path_sum.backward_path_sum": path_sum.backward_path_sum}[backward]
    params, _, y, _ = problem   # T=3, B=2, D=2, H=3, K=4
    other, x_other, _, _ = rnn_problem(7, T=3, B=2, **sizes)
    trace = rnn.forward(other, x_other)
    dim = {"trace.h": "H", "trace.o": "K", "trace.x": "D"}[field]
    got = {"H": sizes["H"], "K": sizes["K"], "D": sizes["D"]}[dim]
    expected = {"H": 3, "K": 4, "D": 2}[dim]
    with pytest.raises(ValueError, match=rf"{field} must have shape .*; got shape .*\(axis 2, {dim}, is {got}, "
                                         rf"expected {expected}\): the trace does not match params"):
        fn(params, trace, y)


def test_backward_given_a_trace_with_other_steps_or_fields(problem):
    params, x, y, h0 = problem
    trace = rnn.forward(params, x, h0)
    short = rnn.Trace(x=trace.x, h=trace.h[:-1], o=trace.o, yhat=trace.yhat, log_yhat=trace.log_yhat)
    with pytest.raises(ValueError, match=r"trace.h must have shape \(T\+1=4, B=2, H=3\); got shape \(3, 2, 3\)"):
        rnn.backward(params, short, y)
    with pytest.raises(ValueError, match=r"y must have shape \(T=2, B=2\); got shape \(3, 2\)"):
        rnn.backward(params, rnn.forward(params, x[:2], h0), y)
    flat = rnn.Trace(x=trace.x, h=trace.h, o=trace.o, yhat=trace.yhat[0], log_yhat=trace.log_yhat)
    with pytest.raises(ValueError, match=r"trace.yhat must have shape \(T=3, B=2, K=4\) \(3 dimensions\)"):
        rnn.backward(params, flat, y)
    # The checks leave the right trace alone: the same gradients as before.
    grads, _ = rnn.backward(params, trace, y)
    _, reference = rnn.loss_and_grads(params, x, y, h0)
    for key in grads:
        np.testing.assert_array_equal(grads[key], reference[key])
