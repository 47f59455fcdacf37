"""Tests of chapter 4, three paths back in time: every view of dE_N/dw agrees.

The views: SymPy's derivative of the fully unrolled loss; the sum of SymPy path terms; the
general formula (a SymPy Sum of a Product, evaluated for explicit N); NumPy kernels generated
from each; the backward loop over the generated local kernels; central differences; and the
complex step.

Tolerances: central differences with eps = 1e-6 have truncation error ~ eps^2 |f'''| and
round-off ~ 1e-16 |f| / eps, about 1e-10 for these order-one functions, so 1e-6 relative
leaves a wide margin; the complex step and the generated kernels agree to round-off, so 1e-9
relative.
"""

import inspect
from types import SimpleNamespace

import numpy as np
import pytest
import sympy as sp

from bptt_lib import gradcheck
from bptt_lib import scalar_rnn as sr
from bptt_lib.codegen import source_of
from bptt_lib.derive import chain_rule as dcr
from bptt_lib.derive import scalar_rnn as dsr
from bptt_lib.exercises import get, verdict

CENTRAL_EPS, CENTRAL_TOL, COMPLEX_TOL, KERNEL_TOL = 1e-6, 1e-6, 1e-9, 1e-9
phi, psi = sp.Function("phi"), sp.Function("psi")


def problem(n, seed=0, w_scale=1.0):
    rng = np.random.default_rng(seed)
    params = {"w": float(w_scale * rng.standard_normal()), "u": float(rng.standard_normal()),
              "v": float(rng.standard_normal())}
    return params, float(rng.uniform(-1, 1)), rng.standard_normal(n), float(rng.standard_normal())


# --- SymPy: unrolled derivative = path sum = general formula -----------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("activation,output", [("tanh", "identity"), ("tanh", "sigmoid"), (phi, psi),
                                               (phi, "identity")])
def test_path_sum_and_general_formula_proven(n, activation, output):
    for wrt in (dsr.w, dsr.u):
        assert dsr.prove_path_sum(n, activation, output, wrt)
        assert dsr.prove_general_formula(n, activation, output, wrt)
    assert dsr.prove_path_sum(n, activation, output, dsr.v)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_sigmoid_hidden_proven(n):
    for wrt in (dsr.w, dsr.u):
        assert dsr.prove_general_formula(n, "sigmoid", "identity", wrt)
        assert dsr.prove_path_sum(n, "sigmoid", "tanh", wrt)


def test_three_step_structure():
    net = dsr.scalar_rnn_loss(3)
    assert len(dsr.path_terms(net, dsr.v)) == 1
    assert len(dsr.path_terms(net, dsr.w)) == 3 and len(dsr.path_terms(net, dsr.u)) == 3
    # path k has 2 output factors, 3 - k one-step factors and one immediate partial
    for k in (1, 2, 3):
        assert len(dsr.path_factors(net, k, dsr.w)) == 2 + (3 - k) + 1
    h0, (h1, h2, h3) = net.h0, net.states
    y, d3, w, v = net.yhat_sym, net.d, dsr.w, dsr.v
    expected = [-2 * (d3 - y) * v * (1 - h3**2) * w * (1 - h2**2) * w * (1 - h1**2) * h0,
                -2 * (d3 - y) * v * (1 - h3**2) * w * (1 - h2**2) * h1,
                -2 * (d3 - y) * v * (1 - h3**2) * h2]
    for got, want in zip(dsr.path_terms(net, dsr.w, in_states=True), expected):
        assert sp.expand(got - want) == 0
    # the path terms extend chapter 2's sum over paths by the output factors
    de_dy, dy_dh = dsr.output_factors(net)
    for got, inner in zip(dsr.path_terms(net, dsr.w), dcr.sum_over_paths(net.rnn, 3, dsr.w)):
        assert sp.expand(got - de_dy * dy_dh * inner) == 0


def test_dropping_paths_is_wrong():
    net = dsr.scalar_rnn_loss(3)
    total = dsr.total_gradient(net, dsr.w)
    terms = dsr.path_terms(net, dsr.w)
    assert abs(dsr.value_at_random_point(total - terms[-1], seed=3)) > 1e-3
    assert abs(dsr.value_at_random_point(total - terms[-1] - terms[-2], seed=3)) > 1e-6


def test_general_formula_indices():
    formula = dsr.general_formula(dsr.w)
    text = dsr.formula_latex(formula)
    assert r"\prod_{j=N}^{k + 1}" in text and r"\partial h^{(j - 1)}" in text   # latest step on the left
    assert r"\frac{\partial \hat{y}^{(N)}}{\partial h^{(N)}}" in text
    expanded = sp.expand(formula.subs(dsr.N, 3).doit())
    assert len(expanded.args) == 3
    assert expanded.has(dsr.dh_dh(2)) and expanded.has(dsr.dh_dh(3)) and not expanded.has(dsr.dh_dh(1))


@pytest.mark.parametrize("n", [3, 4])
def test_source_formula_readings(n):
    net = dsr.scalar_rnn_loss(n)
    for wrt in (dsr.w, dsr.u):
        lhs_weight, source = dsr.source_formula(wrt)
        assert lhs_weight == dsr.w          # the source's left-hand side, also for W_x
        total = dsr.total_gradient(net, wrt)
        for reading in ("partial", "total"):
            value = dsr.value_at_random_point(total - dsr.evaluate_source_formula(source, net, reading), seed=1)
            assert abs(value) > 1e-4, reading
        mixed = dsr.evaluate_source_formula(source, net, "mixed")
        assert sp.expand(total - mixed) == 0
    # the partial reading is exactly the last path
    _, source_w = dsr.source_formula(dsr.w)
    partial = dsr.evaluate_source_formula(source_w, net, "partial")
    assert sp.expand(partial - dsr.path_terms(net, dsr.w)[-1]) == 0
    # the printed left-hand side dE/dw is not the u-gradient the right-hand side computes
    assert abs(dsr.value_at_random_point(
        dsr.total_gradient(net, dsr.w) - dsr.total_gradient(net, dsr.u), seed=1)) > 1e-4


def test_source_symbol_names():
    net = dsr.scalar_rnn_loss(3)
    text = sp.latex(dsr.to_display(net, dsr.total_gradient(net, dsr.w)), symbol_names=dsr.source_symbol_names(net))
    for name in ("W_s", "W_y", "S_{3}", "S_{0}", "Y_{3}"):
        assert name in text
    assert "h^{(" not in text
    loss_text = sp.latex(net.loss, symbol_names=dsr.source_symbol_names(net))
    assert "x_{1}" in loss_text and "d_{3}" in loss_text and "^{(" not in loss_text


def test_derive_validation():
    with pytest.raises(ValueError):
        dsr.scalar_rnn_loss(5)
    with pytest.raises(ValueError):
        dsr.scalar_rnn_loss(2, "tanh", "relu")
    with pytest.raises(TypeError):
        dsr.scalar_rnn_loss(2, "tanh", np.tanh)
    net = dsr.scalar_rnn_loss(2)
    with pytest.raises(ValueError):
        dsr.total_gradient(net, sp.Symbol("z"))
    with pytest.raises(ValueError):
        dsr.path_factors(net, 3, dsr.w)
    with pytest.raises(ValueError):
        dsr.path_factors(net, 1, dsr.v)
    with pytest.raises(TypeError):
        dsr.path_terms(dcr.scalar_rnn(2), dsr.w)
    with pytest.raises(ValueError):
        dsr.general_formula(dsr.v)
    with pytest.raises(ValueError):
        dsr.evaluate_source_formula(dsr.source_formula()[1], net, "literal")
    with pytest.raises(ValueError):
        dsr.value_at_random_point(phi(dsr.w))
    with pytest.raises(TypeError):
        dsr.value_at_random_point(1.0)


# --- NumPy: generated kernels, loop, numerical derivatives ----------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("activation,output", [("tanh", "identity"), ("tanh", "sigmoid"), ("sigmoid", "tanh")])
def test_every_view_agrees(n, activation, output):
    for seed in range(3):
        params, h0, x, d = problem(n, seed=10 * n + seed)
        analytic = sr.gradient(params, h0, x, d, activation, output)
        unrolled = sr.unrolled_gradient(params, h0, x, d, activation, output)

        def f(p, h0=h0, x=x, d=d):
            return sr.loss(p, h0, x, d, activation, output)

        central = gradcheck.central_difference(f, params, eps=CENTRAL_EPS)
        complex_ = gradcheck.complex_step(f, params)
        for name in sr.PARAM_NAMES:
            assert gradcheck.relative_error(analytic[name], unrolled[name]) < KERNEL_TOL
            assert gradcheck.relative_error(analytic[name], central[name]) < CENTRAL_TOL
            assert gradcheck.relative_error(analytic[name], complex_[name]) < COMPLEX_TOL
        for wrt in ("w", "u"):
            loop = sr.path_contributions(params, h0, x, d, wrt, activation, output)
            sympy_terms = np.array(sr.path_terms_kernel(n, wrt, activation, output)(*params.values(), h0, *x, d))
            assert loop.shape == (n,)
            assert gradcheck.relative_error(loop, sympy_terms) < KERNEL_TOL


@pytest.mark.parametrize("n", [8, 25])
def test_long_sequences_against_complex_step(n):
    params, h0, x, d = problem(n, seed=n, w_scale=1.2)
    analytic = sr.gradient(params, h0, x, d)
    complex_ = gradcheck.complex_step(lambda p: sr.loss(p, h0, x, d), params)
    assert max(gradcheck.compare(analytic, complex_).values()) < COMPLEX_TOL


def test_gains_and_bound():
    params, h0, x, d = problem(30, seed=7)
    gains = sr.path_gains(params, h0, x)
    assert gains.shape == (30,) and gains[-1] == 1.0
    for w in (0.5, 1.1, 2.0):
        for r in sr.contributions_by_lag([w], u=1.0, v=1.0, h0=0.5, x=x, d=0.5, wrt="u") \
                + sr.contributions_by_lag([w], u=1e-3, v=1.0, h0=5e-4, x=x, d=0.5, wrt="w"):
            assert np.all(np.abs(r["contribution"]) <= r["bound"] * (1 + 1e-12))
            assert np.all(np.abs(r["gain"]) <= r["gain_bound"] * (1 + 1e-12))
            assert r["gain"][0] == 1.0 and r["lag"][0] == 0


def test_small_states_with_w_above_one_grow():
    x = np.random.default_rng(5).standard_normal(30)
    (r,) = sr.contributions_by_lag([1.1], u=1e-3, v=1.0, h0=5e-4, x=x, d=0.5, wrt="u")
    slope = np.polyfit(r["lag"], np.log(np.abs(r["contribution"])), 1)[0]
    assert np.exp(slope) > 1.05


def test_numpy_code_is_generated():
    net = dsr.scalar_rnn_loss(3)
    kernel = sr.unrolled_gradient_kernel(3)
    assert kernel.expr == tuple(dsr.total_gradient(net, p) for p in (dsr.w, dsr.u, dsr.v))
    assert sr.path_terms_kernel(3, "w").expr == dsr.path_terms(net, dsr.w)
    assert "tanh" in source_of(sr.step_kernels("tanh").step_jacobian)
    loop = inspect.getsource(sr.path_contributions)
    assert "step_jacobian(" in loop and "output_factor(" in loop and "np.tanh" not in loop


def test_loop_calls_the_generated_kernels(monkeypatch):
    params, h0, x, d = problem(4)
    before = sr.path_contributions(params, h0, x, d)
    real = sr.step_kernels("tanh")
    doubled = SimpleNamespace(**vars(real))
    doubled.step_jacobian = lambda *args: 2 * real.step_jacobian(*args)
    monkeypatch.setattr(sr, "step_kernels", lambda activation="tanh": doubled)
    after = sr.path_contributions(params, h0, x, d)
    # the path of lag l picks up 2**l
    assert np.allclose(after, before * 2.0 ** np.arange(3, -1, -1), rtol=1e-12, atol=0)


def test_numpy_validation():
    params, h0, x, d = problem(3)
    with pytest.raises(KeyError, match="params is missing"):
        sr.loss({"w": 1.0, "u": 1.0}, h0, x, d)
    with pytest.raises(TypeError, match="params must be a dict"):
        sr.loss([1.0, 1.0, 1.0], h0, x, d)
    with pytest.raises(ValueError, match=r"x must have shape \(N\)"):
        sr.gradient(params, h0, x.reshape(3, 1), d)
    with pytest.raises(ValueError, match=r'params\["w"\] must have shape \(\)'):
        sr.gradient({**params, "w": np.ones(2)}, h0, x, d)
    with pytest.raises(TypeError, match="real floating point"):
        sr.gradient({**params, "w": 1.0 + 1e-30j}, h0, x, d)
    with pytest.raises(ValueError, match="non-finite"):
        sr.gradient(params, h0, np.array([1.0, np.nan, 0.0]), d)
    with pytest.raises(ValueError, match="activation must be one of"):
        sr.gradient(params, h0, x, d, activation="relu")
    with pytest.raises(ValueError, match="wrt must be one of"):
        sr.path_contributions(params, h0, x, d, wrt="v")
    with pytest.raises(ValueError, match="N from 1 to 4"):
        sr.unrolled_gradient(params, h0, np.zeros(5), d)
    with pytest.raises(ValueError, match="w_values"):
        sr.contributions_by_lag([], 1.0, 1.0, 0.0, x, 0.0)
    with pytest.raises(TypeError):
        sr.plot_contributions_by_lag({})


def test_complex_loss():
    params, h0, x, d = problem(3)
    value = sr.loss({**params, "w": params["w"] + 1e-30j}, h0, x, d)
    assert np.iscomplexobj(value)
    assert np.isclose(value.real, sr.loss(params, h0, x, d), rtol=1e-15)


# --- exercises -------------------------------------------------------------------------------


def _contributions_by_hand(w, u, v, h0, x, d, immediate_is_total=False, skip_output=False):
    n = len(x)
    h = np.empty(n + 1)
    h[0] = h0
    for t in range(1, n + 1):
        h[t] = np.tanh(w * h[t - 1] + u * x[t - 1])
    c = np.empty(n)
    g = 1.0 if skip_output else -2 * (d - v * h[n]) * v
    for k in range(n, 0, -1):
        c[k - 1] = g * (1 - h[k] ** 2) * h[k - 1]
        g = g * w * (1 - h[k] ** 2)
    return np.cumsum(c) if immediate_is_total else c


def test_contributions_checker():
    assert verdict("three_paths_contributions", get("three_paths_contributions").reference)
    assert verdict("three_paths_contributions", _contributions_by_hand)
    # a student who only keeps the last path
    assert not verdict("three_paths_contributions",
                       lambda **kw: np.where(np.arange(len(kw["x"])) == len(kw["x"]) - 1,
                                             _contributions_by_hand(**kw), 0.0))
    # forgets the output factors
    assert not verdict("three_paths_contributions", lambda **kw: _contributions_by_hand(**kw, skip_output=True))
    # returns the paths in lag order instead of step order
    assert not verdict("three_paths_contributions", lambda **kw: _contributions_by_hand(**kw)[::-1])
    # double counting: running sums instead of single paths
    assert not verdict("three_paths_contributions", lambda **kw: _contributions_by_hand(**kw, immediate_is_total=True))


def test_gains_checker():
    assert verdict("three_paths_gains", get("three_paths_gains").reference)

    def by_step(w, u, h0, x):
        return get("three_paths_gains").reference(w=w, u=u, h0=h0, x=x)[::-1]

    def bound_only(w, u, h0, x):
        return np.abs(w) ** np.arange(len(x))

    assert not verdict("three_paths_gains", by_step)
    assert not verdict("three_paths_gains", bound_only)


def test_forward_needs_only_the_weights_it_uses():
    # The states do not depend on v, so forward (and chapter 2's scalar_rnn_states) do not ask for it.
    h = sr.forward({"w": 0.7, "u": 0.3}, 0.1, [1.0, -2.0])
    assert np.array_equal(h, sr.forward({"w": 0.7, "u": 0.3, "v": 5.0}, 0.1, [1.0, -2.0]))
    with pytest.raises(KeyError, match="u"):
        sr.forward({"w": 0.7}, 0.1, [1.0])
    with pytest.raises(KeyError, match="v"):
        sr.loss({"w": 0.7, "u": 0.3}, 0.1, [1.0], 0.5)


@pytest.mark.parametrize("n_steps", [3, 4])
@pytest.mark.parametrize("wrt", [dsr.w, dsr.u])
def test_reading_multiplicities(n_steps, wrt):
    """partial keeps the last path, total counts the path entering at step k N - k + 1 times, mixed once."""
    expected = {"partial": [0] * (n_steps - 1) + [1],
                "total": list(range(n_steps, 0, -1)),
                "mixed": [1] * n_steps}
    for reading, counts in expected.items():
        m, residual = dsr.reading_multiplicities(n_steps, reading, wrt)
        assert residual < 1e-9
        np.testing.assert_allclose(m, counts, atol=1e-9)


def test_reading_multiplicities_detects_a_non_combination():
    """A quantity that is not a combination of the paths leaves a large residual (the fit can fail)."""
    net = dsr.scalar_rnn_loss(3)
    paths = [term.doit() for term in dsr.path_terms(net, dsr.w)]
    leaves = sorted(set().union(*(c.free_symbols for c in paths)), key=lambda s: s.name)
    f = sp.lambdify(leaves, [paths[0] ** 2, *paths], modules="numpy")
    rng = np.random.default_rng(0)
    rows = np.array([f(*rng.uniform(-1, 1, len(leaves))) for _ in range(6)])
    m, *_ = np.linalg.lstsq(rows[:, 1:], rows[:, 0], rcond=None)
    assert np.linalg.norm(rows[:, 1:] @ m - rows[:, 0]) / np.linalg.norm(rows[:, 0]) > 1e-3
