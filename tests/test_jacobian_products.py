"""Tests of the chapter *Products of Jacobians*: the product formula, its bound, the horizon."""

import numpy as np
import pytest
import sympy as sp

from bptt_lib import gradcheck, rnn
from bptt_lib import jacobian_products as jp
from bptt_lib.derive import jacobian_products as djp
from bptt_lib.exercises import verdict
from bptt_lib.kernels import rnn_kernels

ACTS = ["tanh", "sigmoid"]


def _problem(rng, activation, n_hidden=3, n_in=2, n_steps=8, radius=1.2, kind="gaussian"):
    params = {
        "W": jp.recurrent_weight(n_hidden, radius, kind=kind, rng=rng),
        "U": rng.standard_normal((n_hidden, n_in)),
        "b": 0.1 * rng.standard_normal(n_hidden),
    }
    x = rng.standard_normal((n_steps, n_in))
    h0 = 0.3 * rng.standard_normal(n_hidden)
    return params, x, h0, jp.hidden_states(params, x, h0, activation=activation)


# --- the derivation ----------------------------------------------------------------------


@pytest.mark.parametrize("n_hidden, lag", [(1, 3), (2, 2), (2, 3), (3, 2)])
@pytest.mark.parametrize("activation", ["tanh", sp.Function("phi")])
def test_product_formula_is_proven(n_hidden, lag, activation):
    assert djp.prove_jacobian_product(n_hidden, lag, activation)


def test_product_formula_is_proven_for_the_sigmoid():
    assert djp.prove_jacobian_product(2, 2, "sigmoid")


def test_wrong_orders_are_not_proven():
    chain = djp.chain_symbols(2, 2, "tanh")
    total = djp.total_jacobian(chain)
    J1, J2 = (djp.compact_step_jacobian(chain, j) for j in (1, 2))
    D1, D2 = (J * chain.W.inv() for J in (J1, J2))  # the diagonal factors
    # A point where they differ shows that the identity fails (no simplification needed).
    leaves = list(chain.W) + list(chain.states[0]) + [s for v in chain.v for s in v]
    point = dict(zip(leaves, [0.9, -0.4, 0.3, 1.1, 0.2, -0.5, 0.1, 0.3, -0.2, 0.4]))
    assert abs(float(sp.Matrix(total - djp.to_leaves(chain, J2 * J1)).subs(point).norm())) < 1e-12
    for wrong in (J1 * J2, chain.W * D2 * chain.W * D1):  # earliest on the left; W diag(...) instead of diag(...) W
        assert float(sp.Matrix(total - djp.to_leaves(chain, wrong)).subs(point).norm()) > 1e-3


def test_compact_step_jacobian_is_diag_times_W():
    chain = djp.chain_symbols(2, 1, "tanh")
    h = chain.states[1]
    assert djp.compact_step_jacobian(chain, 1) == sp.diag(1 - h[0] ** 2, 1 - h[1] ** 2) * chain.W


def test_derive_validation():
    with pytest.raises(ValueError):
        djp.chain_symbols(4, 2)
    with pytest.raises(ValueError):
        djp.chain_symbols(2, 0)
    with pytest.raises(ValueError):
        djp.chain_symbols(2, 2, "relu")
    with pytest.raises(TypeError):
        djp.chain_symbols(2, 2, sp.tanh)
    with pytest.raises(TypeError):
        djp.total_jacobian("chain")
    with pytest.raises(ValueError):
        djp.step_jacobian(djp.chain_symbols(2, 2), 3)


# --- the numeric product -----------------------------------------------------------------


def test_tanh_states_are_those_of_rnn_forward(rng):
    params, x, h0, h = _problem(rng, "tanh")
    full = {**params, "V": np.zeros((1, 3)), "c": np.zeros(1)}
    trace = rnn.forward(full, x[:, None, :], h0[None, :])
    assert np.allclose(trace.h[:, 0, :], h, rtol=0, atol=1e-14)


@pytest.mark.parametrize("activation", ACTS)
def test_product_agrees_with_explicit_jacobians(rng, activation):
    # Same arithmetic in a different order: agreement to a few units of round-off.
    for _ in range(5):
        params, x, h0, h = _problem(rng, activation)
        for k, t in [(0, 8), (2, 5), (4, 5), (3, 3)]:
            P = jp.jacobian_product(params["W"], h, k, t, activation)
            E = jp.explicit_jacobian_product(params["W"], h, k, t, activation)
            assert gradcheck.relative_error(P, E) < 1e-12


def test_product_agrees_with_numpy_diag_products(rng):
    params, x, h0, h = _problem(rng, "tanh", n_hidden=6)
    W = params["W"]
    P = np.eye(6)
    for j in range(7, 2, -1):
        P = P @ np.diag(1 - h[j] ** 2) @ W
    assert gradcheck.relative_error(jp.jacobian_product(W, h, 2, 7), P) < 1e-12


@pytest.mark.parametrize("activation, radius, k, t", [("tanh", 1.2, 1, 6), ("tanh", 1.5, 3, 6), ("sigmoid", 3.0, 2, 5)])
def test_product_agrees_with_central_differences(rng, activation, radius, k, t):
    # eps = 1e-6: truncation error ~ eps^2, round-off ~ 1e-16 / eps = 1e-10 relative to |h| <= 1;
    # the lags keep |P| above 1e-3, so 1e-6 relative is a safe margin.
    for _ in range(3):
        params, x, h0, h = _problem(rng, activation, radius=radius)
        P = jp.jacobian_product(params["W"], h, k, t, activation)
        assert np.abs(P).max() > 1e-3
        F = jp.finite_difference_jacobian(params, x, h0, k=k, t=t, activation=activation, eps=1e-6)
        assert gradcheck.relative_error(P, F) < 1e-6


def test_batched_product_matches_one_sequence_at_a_time(rng):
    params, x, h0, _ = _problem(rng, "tanh")
    xb = rng.standard_normal((8, 4, 2))
    hb = jp.hidden_states(params, xb, activation="tanh")
    Pb = jp.jacobian_product(params["W"], hb, 1, 7)
    assert Pb.shape == (4, 3, 3)
    for i in range(4):
        h_i = jp.hidden_states(params, xb[:, i, :], activation="tanh")
        assert np.allclose(Pb[i], jp.jacobian_product(params["W"], h_i, 1, 7), rtol=0, atol=1e-14)


@pytest.mark.parametrize("activation", ACTS)
def test_product_calls_the_generated_kernels(rng, monkeypatch, activation):
    k = rnn_kernels()
    calls = []
    vjp_name = f"{activation}_vjp"
    for name in (vjp_name, "hidden_vjp_h_prev"):
        original = getattr(k, name)
        monkeypatch.setattr(k, name, lambda *a, _f=original, _n=name: calls.append(_n) or _f(*a))
    params, x, h0, h = _problem(rng, activation)
    jp.jacobian_product(params["W"], h, 2, 6, activation)
    assert calls == [vjp_name, "hidden_vjp_h_prev"] * 4


def test_identity_at_zero_lag(rng):
    params, x, h0, h = _problem(rng, "tanh")
    assert np.array_equal(jp.jacobian_product(params["W"], h, 4, 4), np.eye(3))


# --- the bound, vanishing, the horizon -----------------------------------------------------


def test_slope_bounds():
    assert jp.slope_bound("tanh") == 1.0
    assert jp.slope_bound("sigmoid") == 0.25


@pytest.mark.parametrize("activation", ACTS)
def test_norm_bound_holds_on_random_cases(rng, activation):
    for _ in range(20):
        radius = rng.uniform(0.3, 5.0)
        kind = ["orthogonal", "gaussian"][rng.integers(2)]
        params, x, h0, h = _problem(rng, activation, n_hidden=5, n_steps=15, radius=radius, kind=kind)
        params_h = h
        for lag in range(0, 16):
            P = jp.jacobian_product(params["W"], params_h, 15 - lag, 15, activation)
            # Products of 15 factors, each norm bound exact: allow round-off of 1e-12 relative.
            assert np.linalg.norm(P, 2) <= jp.norm_bound(params["W"], lag, activation) * (1 + 1e-12)


def test_lag_norms_match_the_products(rng):
    params, x, h0, h = _problem(rng, "tanh", n_hidden=4, n_steps=12)
    norms = jp.lag_norms(params["W"], h, "tanh")
    assert norms.shape == (13,) and norms[0] == 1.0
    for n in range(13):
        P = jp.jacobian_product(params["W"], h, 12 - n, 12)
        assert abs(norms[n] - np.linalg.norm(P, 2)) <= 1e-12 * np.linalg.norm(P, 2)


@pytest.mark.parametrize("activation, radius", [("tanh", 0.9), ("sigmoid", 3.6), ("tanh", 0.5)])
def test_vanishing_when_eta_below_one(rng, activation, radius):
    # eta = sigma_max * gamma < 1: the norm at lag 400 is below eta^400, under 1e-18 here.
    params, x, h0, h = _problem(rng, activation, n_hidden=8, n_steps=400, radius=radius, kind="orthogonal")
    eta = np.linalg.norm(params["W"], 2) * jp.slope_bound(activation)
    assert eta < 1
    norms = jp.lag_norms(params["W"], h, activation)
    assert norms[400] <= eta**400 * (1 + 1e-9) and norms[400] < 1e-18


def test_explosion_needs_eta_above_one_but_is_not_implied():
    # A nilpotent W: sigma_max(W) = 5 > 1, yet every product over two or more steps is exactly zero.
    W = np.array([[0.0, 5.0], [0.0, 0.0]])
    h = np.tanh(np.array([[0.1, 0.2], [0.3, -0.1], [0.5, 0.4], [0.2, 0.1]]))
    assert np.linalg.norm(W, 2) == 5.0
    assert np.all(jp.jacobian_product(W, h, 0, 3) == 0)
    norms = jp.lag_norms(W, h, "tanh")
    assert norms[1] > 1 and np.all(norms[2:] == 0)


def test_horizon_and_its_bound():
    eta = 0.5
    norms = eta ** np.arange(80.0)
    n = jp.horizon(norms)
    assert norms[n] / norms[1] < jp.MACHINE_EPSILON <= norms[n - 1] / norms[1]
    assert n == jp.horizon_bound(eta) == 54
    assert jp.horizon(np.ones(10)) is None
    assert jp.horizon_bound(1.0) == np.inf


def test_measured_horizon_is_within_the_bound(rng):
    for radius in (0.3, 0.6, 0.9):
        params, x, h0, h = _problem(rng, "tanh", n_hidden=8, n_steps=500, radius=radius, kind="orthogonal")
        n = jp.horizon(jp.lag_norms(params["W"], h, "tanh"))
        assert n is not None and n <= jp.horizon_bound(radius)


def test_recurrent_weight_has_the_radius(rng):
    for kind in ("orthogonal", "gaussian"):
        W = jp.recurrent_weight(10, 1.7, kind=kind, rng=rng)
        assert abs(np.max(np.abs(np.linalg.eigvals(W))) - 1.7) < 1e-12
    Q = jp.recurrent_weight(10, 1.0, rng=np.random.default_rng(0))
    assert np.allclose(Q @ Q.T, np.eye(10), atol=1e-13)
    assert np.array_equal(Q, jp.recurrent_weight(10, 1.0, rng=np.random.default_rng(0)))


# --- bad input ---------------------------------------------------------------------------------


def test_bad_input(rng):
    params, x, h0, h = _problem(rng, "tanh")
    W = params["W"]
    with pytest.raises(ValueError, match=r"W must have shape \(H=3, H=3\)"):
        jp.jacobian_product(np.ones((3, 2)), h, 0, 2)
    with pytest.raises(ValueError, match=r"h must have shape"):
        jp.jacobian_product(W, np.ones((5, 4)), 0, 2)
    with pytest.raises(ValueError, match="k must be at most t"):
        jp.jacobian_product(W, h, 3, 2)
    with pytest.raises(ValueError, match="t must be an int from 0 to 8"):
        jp.jacobian_product(W, h, 0, 9)
    with pytest.raises(TypeError, match="k must be an int"):
        jp.jacobian_product(W, h, 1.0, 2)
    with pytest.raises(ValueError, match="activation"):
        jp.jacobian_product(W, h, 0, 2, "softplus")
    with pytest.raises(ValueError, match="activation"):
        jp.hidden_states(params, x, activation="softplus")
    with pytest.raises(ValueError, match="non-finite"):
        jp.jacobian_product(W * np.nan, h, 0, 2)
    with pytest.raises(TypeError, match="rng"):
        jp.recurrent_weight(3, 1.0, rng=0)
    with pytest.raises(ValueError, match="radius"):
        jp.recurrent_weight(3, -1.0, rng=rng)
    with pytest.raises(ValueError, match="kind"):
        jp.recurrent_weight(3, 1.0, kind="uniform", rng=rng)
    with pytest.raises(KeyError):
        jp.hidden_states({"W": W}, x)
    with pytest.raises(ValueError, match="x must have shape"):
        jp.hidden_states(params, np.ones((4, 5)))
    with pytest.raises(ValueError, match="at most 3 x 3"):
        jp.explicit_jacobian_product(np.eye(4), np.zeros((3, 4)), 0, 2)
    with pytest.raises(ValueError, match="lag"):
        jp.norm_bound(W, -1)
    with pytest.raises(ValueError, match="eps"):
        jp.finite_difference_jacobian(params, x, h0, k=0, t=2, eps=0.0)


# --- the exercise checker ------------------------------------------------------------------------


def test_checker_accepts_the_reference_and_a_loop_over_diag_products():
    def by_hand(W, h, k, t):
        P = np.eye(len(W))
        for j in range(t, k, -1):
            P = P @ (np.diag(1 - h[j] ** 2) @ W)
        return P

    assert verdict("jacobian_product", by_hand)


@pytest.mark.parametrize("mistake", ["W diag", "earliest left", "transposed", "no square", "one step short"])
def test_checker_rejects_wrong_answers(mistake):
    def wrong(W, h, k, t):
        P = np.eye(len(W))
        steps = range(t, k, -1) if mistake != "earliest left" else range(k + 1, t + 1)
        if mistake == "one step short":
            steps = range(t, k + 1, -1)
        for j in steps:
            slope = (1 - h[j]) if mistake == "no square" else (1 - h[j] ** 2)
            factor = W @ np.diag(slope) if mistake == "W diag" else np.diag(slope) @ W
            P = P @ factor
        return P.T if mistake == "transposed" else P

    assert not verdict("jacobian_product", wrong)

# --- ReLU units (used by the claims appendix and chapter 9) -----------------------------------
# relu lag norms versus central differences (eps = 1e-6) of h^(T) as a function of h^(T-n):
# the map is piecewise linear and at a generic point no unit is within eps of its kink, so the
# differences are exact up to round-off ~1e-16 / 1e-6 = 1e-10 relative; 1e-6 leaves a wide margin.


def relu_problem(seed=0, H=5, D=3, T=8):
    rng = np.random.default_rng(seed)
    params = {"W": rng.standard_normal((H, H)) / np.sqrt(H), "U": rng.standard_normal((H, D)),
              "b": 0.1 * rng.standard_normal(H)}
    return params, rng.standard_normal((T, D))


def test_relu_states_match_numpy():
    params, x = relu_problem()
    h = jp.hidden_states(params, x, activation="relu")
    expected = [np.zeros(5)]
    for x_t in x:
        expected.append(np.maximum(0.0, params["b"] + params["W"] @ expected[-1] + params["U"] @ x_t))
    np.testing.assert_allclose(h, np.array(expected), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_relu_lag_norms_match_finite_differences(seed):
    params, x = relu_problem(seed)
    h = jp.hidden_states(params, x, activation="relu")
    norms = jp.lag_norms(params["W"], h, "relu")
    T, H, eps = x.shape[0], h.shape[1], 1e-6
    assert norms[0] == 1.0
    for n in (1, 3, T - 1):
        k = T - n
        J = np.empty((H, H))
        for j in range(H):
            e = np.zeros(H)
            e[j] = eps
            up = jp.hidden_states(params, x[k:], h0=h[k] + e, activation="relu")[-1]
            down = jp.hidden_states(params, x[k:], h0=h[k] - e, activation="relu")[-1]
            J[:, j] = (up - down) / (2 * eps)
        fd = np.linalg.norm(J, 2)
        assert abs(norms[n] - fd) <= 1e-6 * max(fd, 1e-12)


def test_identity_weight_with_active_units_keeps_norm_one():
    H = 4
    params = {"W": np.eye(H), "U": np.ones((H, 2)), "b": np.zeros(H)}
    h = jp.hidden_states(params, np.ones((6, 2)), activation="relu")
    np.testing.assert_allclose(jp.lag_norms(params["W"], h, "relu"), 1.0, rtol=1e-12)


def test_dead_units_block_the_gradient():
    H = 3
    params = {"W": np.eye(H), "U": -np.ones((H, 1)), "b": np.zeros(H)}
    h = jp.hidden_states(params, np.ones((4, 1)), activation="relu")
    assert np.all(jp.lag_norms(params["W"], h, "relu")[1:] == 0.0)


def test_relu_bad_input():
    params, x = relu_problem()
    with pytest.raises(ValueError, match="x"):
        jp.hidden_states(params, x[:, :2], activation="relu")
    with pytest.raises(KeyError):
        jp.hidden_states({"W": params["W"]}, x, activation="relu")
    with pytest.raises(ValueError, match="h"):
        jp.lag_norms(params["W"], np.zeros((4, 3)), "relu")


# --- figures -----------------------------------------------------------------------------


def test_horizon_figure_draws_the_formula_and_its_staircase_distinctly():
    import matplotlib.pyplot as plt

    gains = np.linspace(0.05, 0.95, 50)
    ax = jp.plot_horizons(gains, {"measured": (gains[:3], [10, None, 20])})
    formula, staircase = ax.lines[0], ax.lines[1]
    np.testing.assert_allclose(formula.get_ydata(), 1 + np.log(jp.MACHINE_EPSILON) / np.log(gains), rtol=1e-12)
    np.testing.assert_array_equal(staircase.get_ydata(), [jp.horizon_bound(g) for g in gains])
    assert formula.get_linestyle() != staircase.get_linestyle()
    assert "lfloor" in staircase.get_label() and "lfloor" not in formula.get_label()
    # the staircase is the formula's floor plus one: above it, by at most one step
    assert np.all(staircase.get_ydata() > formula.get_ydata())
    assert np.all(staircase.get_ydata() - formula.get_ydata() <= 1 + 1e-9)
    assert len(ax.lines[2].get_xdata()) == 2                 # the None horizon is not drawn
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="between 0 and 1"):
        jp.plot_horizons([0.5, 1.0], {})


def test_panel_figures_build():
    import matplotlib.pyplot as plt

    def experiment(radius, activation):
        rng = np.random.default_rng(0)
        p = {"W": jp.recurrent_weight(4, radius, rng=rng), "U": rng.standard_normal((4, 2)), "b": np.zeros(4)}
        return p["W"], jp.hidden_states(p, rng.standard_normal((12, 2)), activation=activation)

    fig = jp.plot_lag_norm_panels(experiment, [0.5, 2.0], 12)
    assert len(fig.axes) == 2 and fig.axes[1].get_title().startswith("sigmoid")
    W, h = experiment(0.5, "tanh")
    np.testing.assert_array_equal(fig.axes[0].lines[0].get_ydata(), jp.lag_norms(W, h, "tanh"))
    plt.close(fig)
    fig = jp.plot_spectra((0.7, 1.3), n_hidden=8, seed=1)
    assert len(fig.axes) == 2 and len(fig.axes[0].collections) == 2
    plt.close(fig)


def test_horizon_staircase_is_drawn_as_steps():
    import matplotlib.pyplot as plt

    ax = jp.plot_horizons(np.linspace(0.05, 0.95, 20), {})
    assert ax.lines[1].get_drawstyle() == "steps-post" and ax.lines[0].get_drawstyle() == "default"
    plt.close(ax.figure)
