"""Initialisers, the ReLU RNN, Jacobian products and the exercises of the remedies chapter.

Tolerances:
- orthogonality: Householder QR in float64 gives ``Q^T Q = I`` to a few ulps times ``n``
  (about 1e-15 for n <= 40), so 1e-12 absolute is a wide margin.
- complex step (eps = 1e-30) through the ReLU: the forward pass takes the mask on the
  real part, so each unit computes either ``a`` or ``0`` -- both complex-analytic -- and a
  perturbation of 1e-30 cannot move the real point across the kink. The derivative is
  then exact to round-off, and the analytic gradient must match to 1e-9 relative.
- central differences (eps = 1e-6): the loss is piecewise smooth; away from the kinks it is
  smooth, so the error is truncation ~eps^2 plus round-off ~1e-16 / eps ~ 1e-10. A step of
  1e-6 in one parameter moves every pre-activation by at most ~1e-6 times the sizes of the
  inputs and states (of order 1 to 10 here), so requiring every |a| > 1e-3 keeps both probe
  points on the same linear piece of every unit; 1e-6 relative is then a wide margin.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bptt_lib import gradcheck, remedies, rnn, stacked, tasks
from bptt_lib import jacobian_products as jp
from bptt_lib.clip import global_norm
from bptt_lib.derive import relu as derive_relu
from bptt_lib.exercises import verdict
from bptt_lib.kernels import rnn_kernels
from bptt_lib.training import train

CS_RTOL = 1e-9
FD_EPS = 1e-6
FD_RTOL = 1e-6
KINK_MARGIN = 1e-3


def make_problem(seed, T, B, D, H, K, recurrent="orthogonal"):
    rng = np.random.default_rng(seed)
    params = remedies.init_params(D, H, K, rng=rng, recurrent=recurrent)
    params["b"] = 0.3 * rng.standard_normal(H)
    params["c"] = 0.1 * rng.standard_normal(K)
    x = rng.standard_normal((T, B, D))
    y = rng.integers(0, K, size=(T, B))
    h0 = np.abs(0.5 * rng.standard_normal((B, H)))
    return params, x, y, h0


def preactivations(params, x, h0):
    """All a^(t) of the ReLU RNN, recomputed from the stored states."""
    h = remedies.relu_forward(params, x, h0).h
    return np.stack([params["b"] + h[t] @ params["W"].T + x[t] @ params["U"].T for t in range(len(x))])


shapes = st.tuples(
    st.integers(0, 2**32 - 1),
    st.integers(1, 7), st.integers(1, 3), st.integers(1, 4), st.integers(1, 5), st.integers(2, 4),
    st.sampled_from(["gaussian", "orthogonal", "identity"]),
)


# --- initialisers --------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 5, 16, 40])
@pytest.mark.parametrize("gain", [1.0, 0.5, 2.0])
def test_orthogonal_init_is_orthogonal_to_1e_12(n, gain):
    W = remedies.init_orthogonal(n, rng=np.random.default_rng(n), gain=gain)
    np.testing.assert_allclose(W.T @ W, gain**2 * np.eye(n), rtol=0, atol=1e-12 * gain**2)
    np.testing.assert_allclose(W @ W.T, gain**2 * np.eye(n), rtol=0, atol=1e-12 * gain**2)
    np.testing.assert_allclose(np.linalg.svd(W, compute_uv=False), gain, rtol=1e-12)


def test_orthogonalise_is_the_sign_fixed_qr_factor():
    A = np.random.default_rng(0).standard_normal((6, 6))
    Q = remedies.orthogonalise(A)
    R = Q.T @ A
    np.testing.assert_allclose(np.tril(R, -1), 0, atol=1e-12)   # Q^T A is upper triangular
    assert np.all(np.diag(R) > 0)                                 # with a positive diagonal: unique
    np.testing.assert_allclose(Q @ R, A, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(remedies.orthogonalise(A), Q)   # deterministic
    np.testing.assert_array_equal(remedies.orthogonalise([[-3.0]]), [[-1.0]])


def test_identity_init_and_irnn_params():
    np.testing.assert_array_equal(remedies.init_identity(4), np.eye(4))
    np.testing.assert_array_equal(remedies.init_identity(3, gain=1.1), 1.1 * np.eye(3))
    params = remedies.init_params(2, 4, 3, rng=np.random.default_rng(0), recurrent="identity")
    np.testing.assert_array_equal(params["W"], np.eye(4))
    np.testing.assert_array_equal(params["b"], np.zeros(4))
    assert {k: v.shape for k, v in params.items()} == {"U": (4, 2), "W": (4, 4), "V": (3, 4), "b": (4,), "c": (3,)}


def test_gaussian_init_has_the_stated_scale():
    # 400 x 400 entries: the sample standard deviation is within ~0.2% of the truth; 2% is safe.
    W = remedies.init_gaussian(400, rng=np.random.default_rng(1), gain=1.5)
    assert W.std() == pytest.approx(1.5 / np.sqrt(400), rel=0.02)
    assert abs(W.mean()) < 5 * (1.5 / np.sqrt(400)) / 400     # five standard errors of the mean


def test_initialisers_are_reproducible():
    for kind in remedies.INITIALISERS:
        a = remedies.init_params(3, 5, 2, rng=np.random.default_rng(7), recurrent=kind)
        b = remedies.init_params(3, 5, 2, rng=np.random.default_rng(7), recurrent=kind)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


# --- the ReLU derivative -----------------------------------------------------------


def test_relu_derivative_is_derived_and_generated():
    assert derive_relu.prove_derivative()
    assert derive_relu.prove_derivative_in_output()
    relu_vjp = jp.relu_kernels().relu_vjp
    assert relu_vjp.expr == derive_relu.vjp()
    g = np.array([[2.0, -3.0, 5.0, 7.0]])
    h = np.array([[0.5, 0.0, 3.0, 0.0]])
    np.testing.assert_array_equal(relu_vjp(g, h), [[2.0, 0.0, 5.0, 0.0]])


# --- the ReLU RNN ------------------------------------------------------------------


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shapes)
def test_relu_gradients_match_complex_step(case):
    seed, T, B, D, H, K, recurrent = case
    params, x, y, h0 = make_problem(seed, T, B, D, H, K, recurrent)
    _, grads = remedies.relu_loss_and_grads(params, x, y, h0)
    numeric = gradcheck.complex_step(lambda p: remedies.relu_loss(p, x, y, h0), params)
    errors = gradcheck.compare(grads, numeric)
    assert max(errors.values()) < CS_RTOL, errors


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(shapes)
def test_relu_gradients_match_central_differences_away_from_kinks(case):
    seed, T, B, D, H, K, recurrent = case
    params, x, y, h0 = make_problem(seed, T, B, D, H, K, recurrent)
    assume(np.min(np.abs(preactivations(params, x, h0))) > KINK_MARGIN)
    _, grads = remedies.relu_loss_and_grads(params, x, y, h0)
    numeric = gradcheck.central_difference(lambda p: remedies.relu_loss(p, x, y, h0), params, eps=FD_EPS)
    errors = gradcheck.compare(grads, numeric)
    assert max(errors.values()) < FD_RTOL, errors


def test_relu_central_differences_on_a_fixed_problem():
    """One problem checked without hypothesis, so the kink margin is visibly met."""
    params, x, y, h0 = make_problem(11, T=6, B=3, D=3, H=5, K=4)
    assert np.min(np.abs(preactivations(params, x, h0))) > KINK_MARGIN
    assert np.mean(preactivations(params, x, h0) < 0) > 0.2      # both sides of the kink occur
    _, grads = remedies.relu_loss_and_grads(params, x, y, h0)
    numeric = gradcheck.central_difference(lambda p: remedies.relu_loss(p, x, y, h0), params, eps=FD_EPS)
    assert max(gradcheck.compare(grads, numeric).values()) < FD_RTOL


def test_relu_forward_follows_the_equations():
    params, x, _, h0 = make_problem(2, T=4, B=2, D=2, H=3, K=2)
    trace = remedies.relu_forward(params, x, h0)
    h = h0
    for t in range(4):
        h = np.maximum(0.0, params["b"] + h @ params["W"].T + x[t] @ params["U"].T)
        np.testing.assert_allclose(trace.h[t + 1], h, rtol=1e-13)
        np.testing.assert_allclose(trace.o[t], params["c"] + h @ params["V"].T, rtol=1e-13)
    assert np.all(trace.h >= 0)


def test_relu_backward_calls_the_generated_kernels(monkeypatch):
    params, x, y, h0 = make_problem(4, T=5, B=2, D=3, H=4, K=3)
    _, reference = remedies.relu_loss_and_grads(params, x, y, h0)
    spaces = {"relu_vjp": jp.relu_kernels()}
    k = rnn_kernels()
    # The forward loop's step kernel is recurrent_preactivation (the input projection is hoisted out of the loop).
    for name in ("hidden_vjp_h_prev", "hidden_vjp_params", "output_vjp", "softmax_nll_grad", "recurrent_preactivation"):
        spaces[name] = k
    calls = {}
    for name, space in spaces.items():
        original = getattr(space, name)

        def spy(*args, _original=original, _name=name, **kwargs):
            calls[_name] = calls.get(_name, 0) + 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(space, name, spy)
    _, grads = remedies.relu_loss_and_grads(params, x, y, h0)
    assert calls == {"relu_vjp": 5, "hidden_vjp_h_prev": 5, "hidden_vjp_params": 1, "output_vjp": 1,
                     "softmax_nll_grad": 1, "recurrent_preactivation": 5}
    for key in grads:
        np.testing.assert_array_equal(grads[key], reference[key])
    # Corrupting the generated ReLU rule (letting gradient through inactive units) changes the result.
    monkeypatch.setattr(spaces["relu_vjp"], "relu_vjp", lambda g, h: g)
    _, corrupted = remedies.relu_loss_and_grads(params, x, y, h0)
    assert not np.allclose(corrupted["W"], reference["W"])


def test_a_dead_unit_gets_no_gradient():
    params, x, y, h0 = make_problem(5, T=6, B=3, D=2, H=4, K=3)
    params["b"][0] = -50.0                     # unit 0 is negative at every step and example
    _, grads = remedies.relu_loss_and_grads(params, x, y, np.zeros((3, 4)))
    assert np.all(grads["W"][0] == 0) and np.all(grads["U"][0] == 0) and grads["b"][0] == 0
    # Its output is 0, so the weights leaving it get no gradient either; the live units do.
    assert np.all(grads["W"][:, 0] == 0) and np.all(grads["V"][:, 0] == 0)
    assert np.any(grads["W"][1:, 1:] != 0) and np.all(grads["V"][:, 1:] != 0)


def test_relu_rnn_trains_with_the_shared_loop():
    x, y = tasks.delayed_recall(3, 1, 8, 8, np.random.default_rng(0), blank=True)
    params = remedies.init_params(3, 8, 4, rng=np.random.default_rng(1), recurrent="identity")
    _, history = train(params, (x, y), steps=60, lr=0.05, max_norm=5.0, loss_and_grads=remedies.relu_loss_and_grads)
    assert history.diverged_at is None and history.loss[-1] < 0.7 * history.loss[0]


def test_relu_bad_input():
    params, x, y, h0 = make_problem(6, T=3, B=2, D=2, H=3, K=2)
    with pytest.raises(ValueError, match=r'params\["W"\] must have shape'):
        remedies.relu_loss_and_grads(dict(params, W=np.zeros((3, 2))), x, y)
    with pytest.raises(KeyError, match="missing key"):
        remedies.relu_loss_and_grads({k: v for k, v in params.items() if k != "V"}, x, y)
    with pytest.raises(TypeError, match="real floating point"):
        remedies.relu_loss_and_grads(dict(params, W=params["W"] + 0j), x, y)
    with pytest.raises(ValueError, match=r"x must have shape \(T=3, B=2, D=2\); got shape \(3, 2, 1\)"):
        remedies.relu_forward(params, x[:, :, :1])
    with pytest.raises(ValueError, match="class indices"):
        remedies.relu_loss_and_grads(params, x, y + 5)
    with pytest.raises(TypeError, match="Trace"):
        remedies.relu_backward(params, "trace", y)
    big = dict(params, W=1e200 * np.eye(3), b=np.ones(3))
    with pytest.raises(FloatingPointError, match="not finite"):
        remedies.relu_loss_and_grads(big, 1e200 * np.abs(x), y)


def test_initialiser_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="n must be an int at least 1"):
        remedies.init_orthogonal(0, rng=rng)
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        remedies.init_gaussian(3, rng=0)
    with pytest.raises(ValueError, match="gain must be a positive finite number"):
        remedies.init_identity(3, gain=-1.0)
    with pytest.raises(TypeError, match="gain must be a real number"):
        remedies.init_identity(3, gain="1")
    with pytest.raises(ValueError, match="recurrent must be one of"):
        remedies.init_params(2, 3, 2, rng=rng, recurrent="xavier")
    with pytest.raises(ValueError, match=r"A must have shape \(n=3, n=3\); got shape \(3, 2\)"):
        remedies.orthogonalise(np.ones((3, 2)))
    with pytest.raises(ValueError, match="full rank"):
        remedies.orthogonalise(np.ones((3, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        remedies.orthogonalise(np.array([[np.nan]]))


# --- Jacobian products ---------------------------------------------------------------


def relu_or_tanh_states(params, x, h0, activation):
    return (rnn.forward if activation == "tanh" else remedies.relu_forward)(params, x, h0).h


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_batched_lag_norms_equal_one_sequence_at_a_time(activation):
    """Chapter 8's ``lag_norms`` on a batch of states equals it on each sequence alone (same operations)."""
    params, x, _, h0 = make_problem(10, T=12, B=3, D=2, H=5, K=2, recurrent="gaussian")
    h = relu_or_tanh_states(params, x, h0, activation)
    norms = jp.lag_norms(params["W"], h, activation)
    assert norms.shape == (13, 3)
    for b in range(3):
        np.testing.assert_allclose(norms[:, b], jp.lag_norms(params["W"], h[:, b], activation), rtol=1e-12)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_lag_norms_match_explicit_products(activation):
    params, x, _, h0 = make_problem(8, T=7, B=2, D=2, H=4, K=2, recurrent="gaussian")
    h = relu_or_tanh_states(params, x, h0, activation)
    norms = jp.lag_norms(params["W"], h, activation)
    assert norms.shape == (8, 2)
    for b in range(2):
        M = np.eye(4)
        for lag in range(1, 8):
            t = 7 - lag + 1
            d = 1 - h[t, b] ** 2 if activation == "tanh" else (h[t, b] > 0).astype(float)
            M = M @ np.diag(d) @ params["W"]          # d h^(T) / d h^(t-1), one step further back
            # Seven factors, rescaled after each: round-off well below 1e-10 relative.
            assert norms[lag, b] == pytest.approx(np.linalg.norm(M, 2), rel=1e-10)


def test_irnn_jacobian_is_a_product_of_masks():
    """With W = I and ReLU, dh^(T)/dh^(T-l) is diagonal with 0/1 entries: its norm is 1 or 0."""
    x, _ = tasks.delayed_recall(4, 2, 30, 4, np.random.default_rng(0), blank=True)
    params = remedies.init_params(4, 8, 5, rng=np.random.default_rng(1), recurrent="identity")
    norms = jp.lag_norms(params["W"], remedies.relu_forward(params, x).h, "relu")
    assert set(np.unique(norms)) <= {0.0, 1.0}
    assert np.all(np.diff(norms, axis=0) <= 0)       # once every path is cut, it stays cut


def test_lag_norms_bad_activation():
    params, x, _, h0 = make_problem(9, T=3, B=1, D=2, H=3, K=2)
    with pytest.raises(ValueError, match="activation must be one of"):
        jp.lag_norms(params["W"], remedies.relu_forward(params, x, h0).h, "softplus")


# --- figures --------------------------------------------------------


def test_figures_build_and_reject_bad_input():
    import matplotlib.pyplot as plt

    fig = remedies.plot_clipping_geometry([[2.0, 0.5], [0.3, -1.5]], 1.0)
    assert len(fig.axes) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match=r"vectors must have shape \(n, 2\)"):
        remedies.plot_clipping_geometry(np.ones((2, 3)), 1.0)
    with pytest.raises(TypeError, match="histories"):
        remedies.plot_histories({})


# --- exercises -----------------------------------------------------------------------


def test_clip_checker_accepts_the_reference_and_rejects_wrong_answers():
    ref = verdict("remedies_clip_by_global_norm", lambda grads, max_norm:
                  {k: v * min(1.0, max_norm / global_norm(grads)) for k, v in grads.items()})
    assert ref, ref.message

    def per_array(grads, max_norm):          # clips each array on its own: a common mistake
        return {k: v * min(1.0, max_norm / np.linalg.norm(v)) for k, v in grads.items()}

    def always_rescale(grads, max_norm):     # normalises to length max_norm even when shorter
        return {k: v * max_norm / global_norm(grads) for k, v in grads.items()}

    def by_value(grads, max_norm):
        return {k: np.clip(v, -max_norm, max_norm) for k, v in grads.items()}

    for wrong in (per_array, always_rescale, by_value):
        result = verdict("remedies_clip_by_global_norm", wrong)
        assert not result and "differs from the expected value" in result.message, wrong.__name__

    def in_place(grads, max_norm):            # right values, but the caller's arrays are changed
        factor = min(1.0, max_norm / global_norm(grads))
        for v in grads.values():
            v *= factor
        return grads

    def replaces_entries(grads, max_norm):    # right values, but the caller's dict is changed
        factor = min(1.0, max_norm / global_norm(grads))
        for key in list(grads):
            grads[key] = grads[key] * factor
        return dict(grads)

    for wrong in (in_place, replaces_entries):
        result = verdict("remedies_clip_by_global_norm", wrong)
        assert not result and "changed its input 'grads' in place" in result.message, wrong.__name__


def test_orthogonalise_checker_accepts_the_reference_and_rejects_wrong_answers():
    def sign_fixed(A):
        Q, R = np.linalg.qr(A)
        return Q * np.sign(np.diag(R))

    assert verdict("remedies_orthogonalise", sign_fixed)
    for wrong in (lambda A: np.linalg.qr(A)[0],                       # no sign fix
                  lambda A: np.linalg.svd(A)[0] @ np.linalg.svd(A)[2]):  # orthogonal, but another one
        result = verdict("remedies_orthogonalise", wrong)
        assert not result and "differs from the expected value" in result.message


# --- many networks at once ---------------------------------------------------------------
# The stacked pass and its training loop are tested in tests/test_stacked.py.


def test_the_stacked_functions_have_one_home():
    # bptt_lib.stacked is the one implementation; remedies keeps no second name for it
    for name in ("stacked_loss_and_grads", "train_stacked", "stack_params", "unstack_params"):
        assert not hasattr(remedies, name) and name not in remedies.__all__


def test_classify_runs_applies_the_stated_thresholds():
    nan = np.nan
    history = stacked.StackedHistory(
        loss=np.array([[10.0, 0.4], [10.0, 0.6], [10.0, 11.0], [10.0, 5.0], [nan, nan]]),
        grad_norm=np.ones((5, 2)), diverged_at=np.array([-1, -1, -1, -1, 0]))
    outcome = remedies.classify_runs(history, chance_loss=10.0)
    assert outcome.tolist() == ["converged", "slow", "diverged", "slow", "diverged"]
    assert remedies.classify_runs(history, 10.0, converged_below=0.7).tolist()[:2] == ["converged", "converged"]
    with pytest.raises(ValueError, match="chance_loss"):
        remedies.classify_runs(history, chance_loss=0.0)


def test_new_figures_build():
    import matplotlib.pyplot as plt

    norms = np.abs(np.random.default_rng(0).standard_normal((2, 3, 4))) + 0.1
    fig = remedies.plot_gradient_growth([5, 10, 20, 40], {"a": norms, "b": 2 * norms}, gains=(0.5, 2.0))
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2
    np.testing.assert_allclose(fig.axes[1].lines[1].get_ydata(), np.median(2 * norms[1], axis=0))
    plt.close(fig)
    history = stacked.StackedHistory(loss=np.ones((4, 3)), grad_norm=np.ones((4, 3)), diverged_at=-np.ones(4, int))
    fig = remedies.plot_run_grid({"x": history, "y": history}, gains=(0.5, 2.0), n_seeds=2, chance_loss=2.0)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 4 + 2   # four runs, two threshold lines
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), 0.5)
    plt.close(fig)


def test_init_lag_norm_figure_builds():
    import matplotlib.pyplot as plt

    curves = {"tanh, Gaussian": np.linspace(1, 0.1, 5), "ReLU, Gaussian": np.linspace(1, 0.01, 5),
              "ReLU, identity (IRNN)": np.ones(5)}
    fig = remedies.plot_init_lag_norms(curves, curves)
    ax_w, ax_j = fig.axes
    assert len(ax_j.lines) == 3 and len(ax_w.lines) == 2           # "ReLU, Gaussian" skipped on the left
    assert [line.get_label() for line in ax_w.lines] == ["Gaussian", "identity (IRNN)"]
    assert ax_w.lines[1].get_linestyle() == "--"
    plt.close(fig)
