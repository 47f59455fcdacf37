"""Tests of chapter 5: the total loss, the explicit plus implicit recursion, forward mode, the linear RNN.

Tolerances: forward mode and BPTT sum the same products in a different order, so they agree to
round-off (1e-12 relative to the largest entry); the complex step is exact to round-off as well,
but is compared at 1e-9 as the book does everywhere; central differences (eps = 1e-6) at 1e-6.
"""

import numpy as np
import pytest
import sympy as sp
from problems import rnn_problem

from bptt_lib import gradcheck, rnn
from bptt_lib import implicit_recursion as tir
from bptt_lib.codegen import source_of
from bptt_lib.derive import chain_rule as dcr
from bptt_lib.derive import implicit_recursion as dimr
from bptt_lib.exercises import get, verdict
from bptt_lib.jacobian_products import recurrent_weight
from bptt_lib.kernels import rnn_kernels


def _problem(seed, T=4, B=3, D=2, H=3, K=3):
    return rnn_problem(seed, T, B, D, H, K, bias_scale=0.3)


SHAPES = [dict(T=1, B=1, D=1, H=1, K=2), dict(T=4, B=3, D=2, H=3, K=3), dict(T=7, B=2, D=3, H=5, K=4)]


# --- SymPy proofs -------------------------------------------------------------------------


def test_output_weight_gradient_proof():
    assert dimr.prove_output_weight_gradient(2, 2, 2)
    assert dimr.prove_output_weight_gradient(3, 2, 3)


def test_output_weight_gradient_is_a_sum_over_all_steps():
    out = dimr.output_weight_gradient(3, 2, 2)
    # No single step's term is the gradient: every step contributes. Evaluated at a point.
    point = {s: sp.Rational(k % 7 + 1, 5) * (-1) ** k for k, s in enumerate(sorted(out.loss.free_symbols, key=str))}
    full = out.componentwise.subs(point).evalf()
    for term in out.per_step:
        assert (full - term.subs(point).evalf()).norm() > 1e-3


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", sp.Function("phi")])
@pytest.mark.parametrize("wrt", [dcr.w, dcr.u])
def test_scalar_recursion_proof(activation, wrt):
    assert dimr.prove_scalar_recursion(3, activation, wrt)


def test_scalar_recursion_parts():
    rnn3 = dcr.scalar_rnn(3)
    explicit1, implicit1 = dimr.scalar_recursion(rnn3, 1)
    assert implicit1 == 0
    # The implicit part of step 3 is the sum of the paths entering at steps 1 and 2.
    paths = dcr.sum_over_paths(rnn3, 3)
    explicit, implicit = dimr.scalar_recursion(rnn3, 3)
    assert sp.expand(implicit - paths[0] - paths[1]) == 0
    assert sp.expand(explicit - paths[2]) == 0
    # Dropping the implicit part is wrong.
    assert sp.expand(dcr.total_derivative(rnn3, 3) - explicit) != 0


@pytest.mark.parametrize("wrt", ["W", "U", "b"])
def test_vector_recursion_proof(wrt):
    assert dimr.prove_vector_recursion(3, 2, 1, wrt)
    assert dimr.prove_vector_recursion(2, 2, 2, wrt)


def test_explicit_sensitivity_is_kronecker():
    r = dimr.vector_rnn(1, 2, 1)
    (h1, h2) = r.h0
    assert dimr.explicit_sensitivity(r, 1, "W") == sp.Matrix([[h1, h2, 0, 0], [0, 0, h1, h2]])


def test_tangent_preactivation():
    assert dimr.prove_tangent_preactivation(2, 2, 2)
    assert dimr.prove_tangent_preactivation(1, 3, 2)
    s = dimr.tangent_symbols()
    explicit, implicit = dimr.tangent_preactivation(s)
    assert implicit == s.H_dot_prev * s.W.T
    assert s.H_dot_prev not in explicit.free_symbols


def test_linear_closed_form_and_jacobian_proofs():
    assert dimr.prove_linear_closed_form(4, 2, 1)
    assert dimr.prove_linear_closed_form(3, 3, 2)
    assert dimr.prove_linear_state_jacobian(3, 2, 1)


# --- generated kernels ----------------------------------------------------------------------


def test_kernels_are_generated_and_called(monkeypatch):
    k = tir.recursion_kernels()
    assert "W_dot.T" in source_of(k.explicit_tangent)
    assert "matrix_power" in source_of(k.linear_input)
    calls = []
    original = k.implicit_tangent
    monkeypatch.setattr(k, "implicit_tangent", lambda *a: calls.append(1) or original(*a))
    params, x, _, h0 = _problem(0)
    tir.jvp(params, x, {"W": np.ones((3, 3))}, h0)
    assert len(calls) == x.shape[0]


# --- numerics: total loss and V ---------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_total_loss_is_sum_of_per_step_losses(shape):
    params, x, y, h0 = _problem(1, **shape)
    per_step = tir.per_step_losses(params, x, y, h0)
    assert per_step.shape == (shape["T"],)
    assert np.all(per_step > 0)
    assert abs(per_step.sum() - rnn.loss(params, x, y, h0)) < 1e-12 * max(1.0, per_step.sum())


def test_loss_missing_a_term_differs():
    params, x, y, h0 = _problem(2, T=5)
    per_step = tir.per_step_losses(params, x, y, h0)
    wrong = per_step[[0, 1, 2, 4]].sum()        # E0 + E1 + E2 + E4
    assert rnn.loss(params, x, y, h0) - wrong == pytest.approx(per_step[3], rel=1e-12)
    assert per_step[3] > 0.1


@pytest.mark.parametrize("shape", SHAPES)
def test_output_weight_terms_sum_to_bptt(shape):
    params, x, y, h0 = _problem(3, **shape)
    _, grads = rnn.loss_and_grads(params, x, y, h0)
    terms = tir.output_weight_terms(params, x, y, h0)
    assert terms.shape == (shape["T"], shape["K"], shape["H"])
    assert gradcheck.relative_error(terms.sum(axis=0), grads["V"]) < 1e-12


def test_output_weight_term_uses_only_its_step():
    # Changing the target at step 3 changes term 3 only.
    params, x, y, h0 = _problem(4, T=4)
    before = tir.output_weight_terms(params, x, y, h0)
    y2 = y.copy()
    y2[2] = (y2[2] + 1) % 3
    after = tir.output_weight_terms(params, x, y2, h0)
    assert np.array_equal(before[[0, 1, 3]], after[[0, 1, 3]])
    assert not np.allclose(before[2], after[2])


def test_direct_grad_h_is_not_the_total():
    params, x, y, h0 = _problem(5)
    direct = tir.direct_grad_h(params, x, y, h0)
    _, grad_h = rnn.backward(params, rnn.forward(params, x, h0), y)
    # Equal at the last step, where nothing comes from later; different before.
    assert np.allclose(direct[-1], grad_h[-1], rtol=1e-12, atol=1e-14)
    assert not np.allclose(direct[0], grad_h[0])


# --- numerics: forward mode --------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_mode_equals_bptt_and_complex_step(seed, shape):
    params, x, y, h0 = _problem(seed, **shape)
    loss, grads = rnn.loss_and_grads(params, x, y, h0)
    loss_f, grads_f = tir.forward_mode_grads(params, x, y, h0)
    assert loss_f == pytest.approx(loss, rel=1e-14)
    cs = gradcheck.complex_step(lambda p: rnn.loss(p, x, y, h0), params)
    for key in rnn.PARAM_SHAPES:
        assert grads_f[key].shape == params[key].shape
        assert gradcheck.relative_error(grads_f[key], grads[key]) < 1e-12, key
        assert gradcheck.relative_error(grads_f[key], cs[key]) < 1e-9, key


def test_jvp_matches_complex_step_and_central_difference():
    params, x, _, h0 = _problem(6, T=6, H=4)
    rng = np.random.default_rng(0)
    direction = {key: rng.standard_normal(params[key].shape) for key in ("W", "U", "b")}
    r = rng.standard_normal(h0.shape)
    _, h_dot = tir.jvp(params, x, direction, h0)

    def f(p):
        moved = {key: params[key] + p["e"] * direction.get(key, 0) for key in params}
        return np.sum(r * rnn.forward(moved, x, h0).h[-1])

    analytic = np.sum(r * h_dot[-1])
    assert gradcheck.relative_error(analytic, gradcheck.complex_step(f, {"e": 0.0})["e"]) < 1e-9
    assert gradcheck.relative_error(analytic, gradcheck.central_difference(f, {"e": 0.0})["e"]) < 1e-6


def test_sensitivities_match_jacobian_by_complex_step():
    params, x, _, h0 = _problem(7, T=3, B=2, H=3)
    S = tir.sensitivities(params, x, "U", h0)
    assert S.shape == (4, 2, 3, 3, 2)
    assert np.all(S[0] == 0)
    for b in range(2):
        for i in range(3):
            cs = gradcheck.complex_step(
                lambda p, b=b, i=i: rnn.forward({**params, "U": p["U"]}, x, h0).h[-1, b, i], {"U": params["U"]})["U"]
            assert gradcheck.relative_error(S[-1, b, i], cs) < 1e-9


def test_dropping_the_implicit_part_is_wrong(monkeypatch):
    params, x, y, h0 = _problem(8, T=5)
    _, grads = rnn.loss_and_grads(params, x, y, h0)
    k = tir.recursion_kernels()
    monkeypatch.setattr(k, "implicit_tangent", lambda H_dot_prev, W: np.zeros_like(H_dot_prev))
    _, wrong = tir.forward_mode_grads(params, x, y, h0)
    assert gradcheck.relative_error(wrong["W"], grads["W"]) > 1e-3


def test_tanh_kernel_serves_as_jvp():
    # diag(1 - h^2) is symmetric, so the VJP kernel computes the JVP too.
    rng = np.random.default_rng(0)
    h, g = np.tanh(rng.standard_normal(5)), rng.standard_normal(5)
    assert np.allclose(rnn_kernels().tanh_vjp(g, h), np.diag(1 - h**2) @ g, rtol=0, atol=1e-14)


# --- numerics: the linear RNN ------------------------------------------------------------------


@pytest.mark.parametrize("T,B,D,H", [(1, 1, 1, 1), (5, 2, 3, 4), (25, 3, 2, 5)])
def test_linear_closed_form_equals_recursion(T, B, D, H):
    rng = np.random.default_rng(T)
    W = recurrent_weight(H, 0.95, kind="gaussian", rng=rng)
    U = rng.standard_normal((H, D))
    x = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((B, H))
    loop = tir.linear_states(W, U, x, h0)
    closed = tir.linear_closed_form(W, U, x, h0)
    assert closed.shape == (T + 1, B, H)
    assert gradcheck.relative_error(closed, loop) < 1e-12
    # The loop is literally h_t = W h_{t-1} + U x_t.
    assert np.allclose(loop[1], h0 @ W.T + x[0] @ U.T, rtol=1e-13, atol=1e-13)


def test_linear_state_jacobian_is_power_numerically():
    rng = np.random.default_rng(9)
    W = recurrent_weight(3, 1.1, kind="gaussian", rng=rng)
    U = rng.standard_normal((3, 2))
    x = rng.standard_normal((6, 1, 2))
    h0 = rng.standard_normal((1, 3))
    for i in range(3):
        cs = gradcheck.complex_step(lambda p, i=i: _linear_last(W, U, x, p["h0"])[i], {"h0": h0})["h0"]
        assert gradcheck.relative_error(cs[0], np.linalg.matrix_power(W, 6)[i]) < 1e-9


def _linear_last(W, U, x, h0):
    h = h0[0]
    for x_t in x[:, 0]:
        h = W @ h + U @ x_t
    return h


def test_spectral_radius_and_power_norms():
    W = recurrent_weight(8, 0.7, kind="gaussian", rng=np.random.default_rng(0))
    assert np.max(np.abs(np.linalg.eigvals(W))) == pytest.approx(0.7, rel=1e-12)
    norms = tir.power_norms(W, 200)
    assert norms[0] == pytest.approx(1.0)
    assert norms[200] ** (1 / 200) == pytest.approx(0.7, abs=0.02)
    assert tir.power_norms(np.full((16, 16), 0.1), 20)[-1] == pytest.approx(1.6**20, rel=1e-9)


def test_plot_power_norms_returns_figure():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = tir.plot_power_norms((0.9, 1.1), n_hidden=4, n_max=10)
    assert len(fig.axes[0].lines) == 4
    plt.close(fig)


# --- bad input ---------------------------------------------------------------------------------


def test_bad_input():
    params, x, y, h0 = _problem(0)
    with pytest.raises(ValueError, match=r"W"):
        tir.jvp({**params, "W": np.ones((3, 2))}, x, {}, h0)
    with pytest.raises(KeyError, match="V"):
        tir.jvp(params, x, {"V": np.ones((3, 3))}, h0)
    with pytest.raises(ValueError, match=r'tangent\["W"\]'):
        tir.jvp(params, x, {"W": np.ones((2, 2))}, h0)
    with pytest.raises(TypeError):
        tir.jvp(params, x, [np.ones((3, 3))], h0)
    with pytest.raises(ValueError, match="wrt"):
        tir.sensitivities(params, x, "V", h0)
    with pytest.raises(ValueError, match="x"):
        tir.forward_mode_grads(params, x[0], y, h0)
    with pytest.raises(ValueError, match="y"):
        tir.per_step_losses(params, x, y + 10, h0)
    with pytest.raises(ValueError, match="h0"):
        tir.output_weight_terms(params, x, y, h0[:, :2])
    with pytest.raises(ValueError, match="non-finite"):
        tir.jvp({**params, "W": np.full((3, 3), np.nan)}, x, {}, h0)
    with pytest.raises(ValueError, match="U"):
        tir.linear_states(np.eye(3), np.ones((2, 2)), x, h0)
    with pytest.raises(TypeError, match="W"):
        tir.linear_closed_form(np.eye(3) + 0j, np.ones((3, 2)), x, h0)
    with pytest.raises(ValueError, match="n_max"):
        tir.power_norms(np.eye(2), -1)
    with pytest.raises(ValueError, match="n_steps"):
        dimr.vector_rnn(5)
    with pytest.raises(ValueError, match="targets"):
        dimr.output_weight_gradient(2, 2, 2, targets=[0, 2])
    with pytest.raises(ValueError, match="wrt"):
        dimr.sensitivity_direct(dimr.vector_rnn(1), 1, "V")
    with pytest.raises(TypeError, match="vector_rnn"):
        dimr.sensitivity_recursion(dcr.scalar_rnn(1), 1)


# --- exercises ---------------------------------------------------------------------------------


def test_dh_dw_checker():
    assert verdict("total_loss_dh_dw", get("total_loss_dh_dw").reference)

    def explicit_only(w, u, h0, x):
        out, h_prev = [0.0], h0
        for x_t in x:
            h = np.tanh(w * h_prev + u * x_t)
            out.append((1 - h**2) * h_prev)
            h_prev = h
        return np.array(out)

    def correct(w, u, h0, x):
        out, h_prev = [0.0], h0
        for x_t in x:
            h = np.tanh(w * h_prev + u * x_t)
            out.append((1 - h**2) * (h_prev + w * out[-1]))
            h_prev = h
        return np.array(out)

    assert verdict("total_loss_dh_dw", correct)
    result = verdict("total_loss_dh_dw", explicit_only)
    assert not result and "differs" in result.message
    assert not verdict("total_loss_dh_dw", lambda w, u, h0, x: correct(w, u, h0, x)[1:])


def test_dh_dw_reference_matches_chapter_two_kernel():
    from bptt_lib import chain_rule as cr

    ref = get("total_loss_dh_dw").reference
    w, u, h0, x1, x2 = 0.9, 0.8, 0.5, 1.0, -0.5
    assert ref(w, u, h0, np.array([x1, x2]))[2] == pytest.approx(cr.two_step_kernels().total_dw(w, u, h0, x1, x2),
                                                                 rel=1e-12)


def test_linear_final_state_checker():
    assert verdict("total_loss_linear_final_state", get("total_loss_linear_final_state").reference)

    def correct(W, U, x, h0):
        h = h0
        for x_t in x:
            h = W @ h + U @ x_t
        return h

    def transposed(W, U, x, h0):
        return correct(W.T, U, x, h0)

    def forgot_h0(W, U, x, h0):
        return correct(W, U, x, np.zeros_like(h0))

    def off_by_one_power(W, U, x, h0):
        T = x.shape[0]
        return np.linalg.matrix_power(W, T) @ h0 + sum(
            np.linalg.matrix_power(W, T - k + 1) @ U @ x[k - 1] for k in range(1, T + 1))

    assert verdict("total_loss_linear_final_state", correct)
    for wrong in (transposed, forgot_h0, off_by_one_power):
        assert not verdict("total_loss_linear_final_state", wrong), wrong.__name__


def test_jvp_states_come_from_the_rnn_forward_pass(monkeypatch):
    rng = np.random.default_rng(21)
    params = rnn.init_params(2, 3, 2, rng=rng)
    x = rng.standard_normal((4, 2, 2))
    h0 = rng.standard_normal((2, 3))
    calls = []
    original = rnn.forward_unchecked
    monkeypatch.setattr(rnn, "forward_unchecked", lambda *a: calls.append(1) or original(*a))
    h, _ = tir.jvp(params, x, {"W": np.ones((3, 3))}, h0)
    assert calls == [1]
    assert np.array_equal(h, rnn.forward(params, x, h0).h)


# --- the identity-activation RNN: closed-form gradients ---------------------------------------


@pytest.mark.parametrize("n_steps", [1, 2, 3, 4])
def test_identity_gradients_proven_for_symbolic_sizes(n_steps):
    assert dimr.prove_identity_rnn_gradients(n_steps)


def test_identity_gradients_proof_rejects_wrong_formulas():
    """W where W^T belongs, or the power off by one, must not pass the proof."""
    sym = dimr.identity_rnn_symbols(3)
    unrolled = dimr.identity_unrolled_gradients(sym)
    h = dimr.identity_rnn_states(sym)
    wrong_W = sp.MatAdd(*[sp.MatPow(sym.W, t - k) * sym.V.T * sym.G[t - 1] * h[k - 1].T
                          for t in range(1, 4) for k in range(1, t + 1)]).doit()
    off_by_one = sp.MatAdd(*[sp.MatPow(sym.W.T, t - k + 1) * sym.V.T * sym.G[t - 1] * h[k - 1].T
                             for t in range(1, 4) for k in range(1, t + 1)]).doit()
    for wrong in (wrong_W, off_by_one):
        difference = sp.expand((unrolled["W"] - wrong).doit())
        assert not (difference == 0 or difference.is_ZeroMatrix)


def _identity_problem(seed, **shape):
    params, x, y, h0 = _problem(seed, **shape)
    H, K = params["W"].shape[0], params["V"].shape[0]
    return {**params, "b": np.zeros(H), "c": np.zeros(K)}, x, y, h0


@pytest.mark.parametrize("shape", SHAPES + [dict(T=30, B=2, D=2, H=4, K=3)])
def test_identity_closed_form_equals_bptt(shape):
    params, x, y, h0 = _identity_problem(21, **shape)
    _, by_bptt = tir.identity_bptt_grads(params, x, y, h0)
    closed = tir.identity_closed_form_grads(params, x, y, h0)
    for key in ("W", "U", "V"):
        assert gradcheck.relative_error(closed[key], by_bptt[key]) < 1e-9


def test_identity_bptt_equals_complex_step():
    """The hooks really give the identity network's gradient (independent check)."""
    params, x, y, h0 = _identity_problem(22)
    _, by_bptt = tir.identity_bptt_grads(params, x, y, h0)

    def loss(p):
        return rnn.loss(p, x, y, h0, activation=lambda a: a)

    by_cs = gradcheck.complex_step(loss, {k: params[k] for k in params})
    for key in ("W", "U", "V"):
        assert gradcheck.relative_error(by_bptt[key], by_cs[key]) < 1e-9


def test_identity_closed_form_uses_generated_kernels():
    k = tir.recursion_kernels()
    for name in ("identity_grad_W", "identity_grad_U", "identity_grad_V"):
        assert hasattr(getattr(k, name), "expr")
    assert "matrix_power" in source_of(k.identity_grad_W)


def test_identity_closed_form_rejects_biases():
    params, x, y, h0 = _problem(23)
    with pytest.raises(ValueError, match="no biases"):
        tir.identity_closed_form_grads(params, x, y, h0)
    with pytest.raises(ValueError, match="no biases"):
        tir.identity_bptt_grads(params, x, y, h0)


# --- how often the total-with-total contraction counts a path -----------------------------------


@pytest.mark.parametrize("n_steps", [1, 3, 5])
def test_contraction_multiplicities_symbolic(n_steps):
    total = dimr.contraction_multiplicities(n_steps, "total")
    direct = dimr.contraction_multiplicities(n_steps, "direct")
    paths = {(k, t) for t in range(1, n_steps + 1) for k in range(1, t + 1)}
    assert set(total) == paths and set(direct) == paths
    assert all(count == t - k + 1 for (k, t), count in total.items())
    assert all(count == 1 for count in direct.values())


@pytest.mark.parametrize("seed", [5, 6])
def test_contraction_multiplicities_numeric(seed):
    params, x, y, h0 = _problem(seed, T=5, B=3, D=2, H=4, K=3)
    _, grads = rnn.loss_and_grads(params, x, y, h0)
    by_lag = tir.lag_gradients(params, x, y, h0, "W")
    assert gradcheck.relative_error(by_lag.sum(axis=0), grads["W"]) < 1e-9
    S_W = tir.sensitivities(params, x, "W", h0)[1:]
    _, grad_h = rnn.backward(params, rnn.forward(params, x, h0), y)
    contraction = np.tensordot(grad_h, S_W, axes=([0, 1, 2], [0, 1, 2]))
    m, residual = tir.fit_multiplicities(contraction, by_lag)
    assert residual < 1e-9
    np.testing.assert_allclose(m, np.arange(1, 6), atol=1e-6)
    m_direct, residual_direct = tir.fit_multiplicities(grads["W"], by_lag)
    assert residual_direct < 1e-9
    np.testing.assert_allclose(m_direct, np.ones(5), atol=1e-6)


def test_fit_multiplicities_reports_a_large_residual():
    rng = np.random.default_rng(0)
    parts = rng.standard_normal((3, 4, 4))
    m, residual = tir.fit_multiplicities(rng.standard_normal((4, 4)), parts)
    assert residual > 1e-2
    with pytest.raises(ValueError):
        tir.fit_multiplicities(rng.standard_normal(2), rng.standard_normal((3, 2)))


# --- power norms: the gap above rho^n ----------------------------------------------------------


def test_power_norm_summary_normal_control():
    for row in tir.power_norm_summary(kind="orthogonal", n_max=40):
        assert abs(row["min_ratio"] - 1) < 1e-9 and abs(row["max_ratio"] - 1) < 1e-9
        assert row["non_normality"] < 1e-12
    for row in tir.power_norm_summary(kind="gaussian", n_max=40):
        assert row["min_ratio"] >= 1 - 1e-12          # ||W^n|| >= rho^n for every matrix
        assert row["max_ratio"] > 1.1 and row["non_normality"] > 0.1
