"""The path-sum view of BPTT (bptt_lib.path_sum): same gradient as the recursion, T(T+1)/2 kernel calls.

Tolerances:
- path sum versus recursion: 1e-10 relative (largest entry). Both add the same
  float64 terms in a different order; the difference is round-off, about 1e-15
  relative for these sizes (T <= 8 terms per entry of moderate size), so 1e-10
  has a wide margin, while any wrong or missing path is an error of order one.
- complex step (eps = 1e-30): exact to round-off, so 1e-9 relative, as in test_rnn.
- SymPy versus NumPy for the scalar network: 1e-12 relative (a handful of float64
  operations on numbers of order one).
"""

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from problems import SHAPES, rnn_problem

from bptt_lib import gradcheck, path_sum, rnn
from bptt_lib.codegen import generate
from bptt_lib.derive import chain_rule as dcr
from bptt_lib.derive import softmax_nll
from bptt_lib.exercises import get, verdict
from bptt_lib.kernels import rnn_kernels

REL_TOL = 1e-10
CS_RTOL = 1e-9


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SHAPES, st.sampled_from([None, 0.5, 1.5]))
def test_path_sum_equals_the_recursion(case, scale):
    seed, T, B, D, H, K = case
    params, x, y, h0 = rnn_problem(seed, T, B, D, H, K, scale=scale)
    loss_rec, grads_rec = rnn.loss_and_grads(params, x, y, h0)
    loss_ps, grads_ps = path_sum.loss_and_grads_path_sum(params, x, y, h0)
    assert loss_ps == loss_rec
    assert set(grads_ps) == set(grads_rec)
    for key in grads_rec:
        assert grads_ps[key].shape == grads_rec[key].shape
    errors = gradcheck.compare(grads_rec, grads_ps)
    assert max(errors.values()) < REL_TOL, errors


@pytest.mark.parametrize("T,B", [(1, 1), (1, 3), (4, 1), (7, 2)])
def test_path_sum_equals_the_recursion_edge_shapes(T, B):
    params, x, y, _ = rnn_problem(10 + T + B, T, B, D=2, H=3, K=4)
    _, grads_rec = rnn.loss_and_grads(params, x, y)
    _, grads_ps = path_sum.loss_and_grads_path_sum(params, x, y)
    assert max(gradcheck.compare(grads_rec, grads_ps).values()) < REL_TOL


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SHAPES)
def test_path_sum_matches_complex_step(case):
    seed, T, B, D, H, K = case
    params, x, y, h0 = rnn_problem(seed, T, B, D, H, K)
    _, grads = path_sum.loss_and_grads_path_sum(params, x, y, h0)
    numeric = gradcheck.complex_step(lambda p: rnn.loss(p, x, y, h0), params)
    errors = gradcheck.compare(grads, numeric)
    assert max(errors.values()) < CS_RTOL, errors


def test_single_paths_add_up_to_the_gradient():
    params, x, y, h0 = rnn_problem(1, T=5, B=3, D=2, H=4, K=3)
    _, grads = rnn.loss_and_grads(params, x, y, h0)
    total = {key: np.zeros_like(grads[key]) for key in ("W", "U", "b")}
    for t in range(1, 6):
        for k in range(1, t + 1):
            term = path_sum.path_contribution(params, x, y, t, k, h0)
            assert set(term) == {"W", "U", "b"}
            for key in total:
                total[key] += term[key]
    assert max(gradcheck.compare(total, {key: grads[key] for key in total}).values()) < REL_TOL


def test_one_path_equals_the_product_of_explicit_jacobians():
    """delta^(t,k) = D_k W^T D_{k+1} ... W^T D_t g, here with the diagonal matrices formed."""
    rng = np.random.default_rng(2)
    T, H, t, k = 5, 4, 5, 2
    h = np.tanh(rng.standard_normal((T + 1, 1, H)))
    W = rng.standard_normal((H, H))
    g = rng.standard_normal((1, H))
    D = [np.diag(1 - h[j, 0] ** 2) for j in range(T + 1)]
    delta = D[t] @ g[0]
    for j in range(t, k, -1):
        delta = D[j - 1] @ W.T @ delta
    np.testing.assert_allclose(path_sum.pullback(g, h, W, t, k)[0], delta, rtol=1e-12)
    x = rng.standard_normal((T, 1, 3))
    term = path_sum.path_term(g, h, x, W, t, k)
    np.testing.assert_allclose(term["W"], np.outer(delta, h[k - 1, 0]), rtol=1e-12)
    np.testing.assert_allclose(term["U"], np.outer(delta, x[k - 1, 0]), rtol=1e-12)
    np.testing.assert_allclose(term["b"], delta, rtol=1e-12)


# --- the spine: generated kernels, counted --------------------------------------------


@pytest.mark.parametrize("T", [1, 2, 5, 12])
def test_kernel_calls_are_counted_per_path(T):
    params, x, y, h0 = rnn_problem(3, T, B=2, D=2, H=3, K=3)
    with path_sum.counting_kernel_calls() as ps_calls:
        path_sum.loss_and_grads_path_sum(params, x, y, h0)
    with path_sum.counting_kernel_calls() as rec_calls:
        rnn.loss_and_grads(params, x, y, h0)
    n_paths = T * (T + 1) // 2
    assert ps_calls == {"tanh_vjp": n_paths, "hidden_vjp_h_prev": n_paths - T, "hidden_vjp_params": n_paths,
                        "output_vjp": 1, "softmax_nll_grad": 1}
    assert rec_calls == {"tanh_vjp": T, "hidden_vjp_h_prev": T, "hidden_vjp_params": 1,
                         "output_vjp": 1, "softmax_nll_grad": 1}


def test_counting_restores_the_kernels_even_after_an_error():
    k = rnn_kernels()
    originals = {name: getattr(k, name) for name in path_sum.BACKWARD_KERNELS}
    with pytest.raises(RuntimeError):
        with path_sum.counting_kernel_calls():
            raise RuntimeError("boom")
    assert {name: getattr(k, name) for name in path_sum.BACKWARD_KERNELS} == originals
    with pytest.raises(ValueError, match="unknown"):
        with path_sum.counting_kernel_calls(["no_such_kernel"]):
            pass


def test_path_sum_calls_the_generated_kernels(monkeypatch):
    params, x, y, h0 = rnn_problem(4, T=4, B=2, D=2, H=3, K=3)
    _, reference = path_sum.loss_and_grads_path_sum(params, x, y, h0)
    monkeypatch.setattr(rnn_kernels(), "tanh_vjp", lambda g, h: g * (1 - h))
    _, corrupted = path_sum.loss_and_grads_path_sum(params, x, y, h0)
    assert not np.allclose(corrupted["W"], reference["W"])
    np.testing.assert_array_equal(corrupted["V"], reference["V"])  # V has no path through tanh


# --- truncation: dropping long paths ----------------------------------------------------


def test_truncation_keeps_the_short_paths():
    T = 6
    params, x, y, h0 = rnn_problem(5, T, B=2, D=2, H=3, K=3)
    _, full = path_sum.loss_and_grads_path_sum(params, x, y, h0)
    for tau in (T, T + 3):
        _, same = path_sum.loss_and_grads_path_sum(params, x, y, h0, truncate=tau)
        assert max(gradcheck.compare(full, same).values()) < REL_TOL
    tau = 2
    _, short = path_sum.loss_and_grads_path_sum(params, x, y, h0, truncate=tau)
    kept = {key: np.zeros_like(full[key]) for key in ("W", "U", "b")}
    for t in range(1, T + 1):
        for k in range(max(1, t - tau + 1), t + 1):
            for key, value in path_sum.path_contribution(params, x, y, t, k, h0).items():
                kept[key] += value
    assert max(gradcheck.compare(kept, {key: short[key] for key in kept}).values()) < REL_TOL
    for key in ("V", "c"):
        np.testing.assert_array_equal(short[key], full[key])
    assert not np.allclose(short["W"], full["W"])
    with path_sum.counting_kernel_calls() as calls:
        path_sum.loss_and_grads_path_sum(params, x, y, h0, truncate=tau)
    assert calls["tanh_vjp"] == tau * T - tau * (tau - 1) // 2


@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_truncate_must_be_a_positive_int(bad):
    params, x, y, _ = rnn_problem(6, T=3, B=2, D=2, H=3, K=3)
    with pytest.raises(ValueError, match="truncate must be an int of at least 1"):
        path_sum.loss_and_grads_path_sum(params, x, y, truncate=bad)


# --- SymPy: the scalar network of chapter 2 with a softmax output ------------------------


def test_path_sum_of_the_unrolled_loss_matches_sympy_and_numpy():
    T, targets = 3, (0, 1, 1)
    srnn = dcr.scalar_rnn(T)
    s = sp.Symbol("s", real=True)
    v1, v2, c1, c2 = sp.symbols("v_1 v_2 c_1 c_2", real=True)

    def loss_term(t, h):
        return softmax_nll.nll(sp.Matrix([c1 + v1 * h, c2 + v2 * h]), targets[t - 1])

    unrolled = sp.Add(*[loss_term(t, srnn.h[t]) for t in range(1, T + 1)])
    terms = {}
    for t in range(1, T + 1):
        g_t = sp.diff(loss_term(t, s), s).subs(s, srnn.h[t])
        for k, term in enumerate(dcr.sum_over_paths(srnn, t), start=1):
            terms[t, k] = g_t * term
    assert sp.expand(sp.diff(unrolled, dcr.w) - sp.Add(*terms.values())) == 0

    args = [srnn.w, srnn.u, srnn.h0, *srnn.x, v1, v2, c1, c2]
    kernel = generate("paths", args, tuple(terms.values()))
    w, u, h0, xs, V, c = 0.9, -0.7, 0.3, [0.5, -1.2, 0.8], [1.1, -0.6], [0.2, -0.1]
    values = kernel(w, u, h0, *xs, *V, *c)
    params = {"W": np.array([[w]]), "U": np.array([[u]]), "b": np.zeros(1),
              "V": np.array(V)[:, None], "c": np.array(c)}
    x = np.array(xs)[:, None, None]
    y = np.array(targets)[:, None]
    for (t, k), value in zip(terms, values):
        numpy_value = path_sum.path_contribution(params, x, y, t, k, h0=[[h0]])["W"][0, 0]
        assert abs(numpy_value - value) < 1e-12 * max(1.0, abs(value))


# --- bad input: the same errors as rnn.loss_and_grads ------------------------------------


def _bad_inputs():
    params, x, y, h0 = rnn_problem(7, T=3, B=2, D=2, H=3, K=4)
    no_w = dict(params)
    del no_w["W"]
    wrong_b = dict(params, b=np.zeros(2))
    complex_w = dict(params, W=params["W"].astype(complex))
    nan_x = x.copy()
    nan_x[0, 0, 0] = np.nan
    y_out = y.copy()
    y_out[0, 0] = 4
    return {
        "missing key": (no_w, x, y, h0),
        "not a dict": ([1, 2], x, y, h0),
        "wrong b": (wrong_b, x, y, h0),
        "complex W": (complex_w, x, y, h0),
        "x rank": (params, x[:, :, 0], y, h0),
        "nan x": (params, nan_x, y, h0),
        "y shape": (params, x, y[:2], h0),
        "y range": (params, x, y_out, h0),
        "y float": (params, x, y.astype(float), h0),
        "h0 shape": (params, x, y, np.zeros((2, 4))),
    }


@pytest.mark.parametrize("name", list(_bad_inputs()))
def test_bad_input_raises_like_the_recursion(name):
    args = _bad_inputs()[name]
    with pytest.raises(Exception) as expected:
        rnn.loss_and_grads(*args)
    with pytest.raises(expected.type) as got:
        path_sum.loss_and_grads_path_sum(*args)
    assert str(got.value) == str(expected.value)


@pytest.mark.parametrize("t,k,match", [(0, 1, "t must be an int from 1 to 3"), (4, 1, "t must be an int from 1 to 3"),
                                       (2, 3, "k must be an int from 1 to 2"), (2, 0, "k must be an int from 1 to 2"),
                                       (2.0, 1, "t must be an int")])
def test_path_indices_are_checked(t, k, match):
    params, x, y, h0 = rnn_problem(8, T=3, B=2, D=2, H=3, K=4)
    with pytest.raises(ValueError, match=match):
        path_sum.path_contribution(params, x, y, t, k, h0)


def test_pullback_and_path_term_check_shapes():
    rng = np.random.default_rng(9)
    h = np.tanh(rng.standard_normal((4, 2, 3)))
    W = rng.standard_normal((3, 3))
    with pytest.raises(ValueError, match=r"g must have shape \(B=2, H=3\); got shape \(2, 4\)"):
        path_sum.pullback(np.zeros((2, 4)), h, W, 2, 1)
    with pytest.raises(ValueError, match=r"W must have shape \(H=3, H=3\)"):
        path_sum.pullback(np.zeros((2, 3)), h, np.zeros((3, 2)), 2, 1)
    with pytest.raises(ValueError, match="h holds a non-finite value"):
        path_sum.pullback(np.zeros((2, 3)), h * np.nan, W, 2, 1)
    with pytest.raises(ValueError, match="h must have one more step than x"):
        path_sum.path_term(np.zeros((2, 3)), h, np.zeros((4, 2, 1)), W, 2, 1)
    with pytest.raises(TypeError, match="trace must be the Trace"):
        path_sum.backward_path_sum(rnn_problem(8, 3, 2, 2, 3, 4)[0], {"h": h}, np.zeros((3, 2), dtype=int))


# --- the timing helpers ------------------------------------------------------------------


def test_loglog_slope_recovers_a_power_law():
    n = np.array([4, 8, 16, 32, 64])
    assert loglog_close(path_sum.loglog_slope(n, 3e-6 * n**2.0), 2.0)
    assert loglog_close(path_sum.loglog_slope(n, 1e-3 + 0 * n, n_min=16), 0.0)
    # A fixed overhead flattens the small sizes; fitting the large ones only recovers the power.
    with_overhead = 1e-3 + 1e-6 * n**2.0
    assert path_sum.loglog_slope(n, with_overhead) < path_sum.loglog_slope(n, with_overhead, n_min=32)
    with pytest.raises(ValueError, match="at least two points"):
        path_sum.loglog_slope(n, n * 1.0, n_min=64)
    with pytest.raises(ValueError, match="positive"):
        path_sum.loglog_slope(n, -1.0 * n)


def loglog_close(a, b):
    return abs(a - b) < 1e-9


def test_time_per_call_validates():
    assert path_sum.time_per_call(lambda: None, repeats=2, number=3) >= 0.0
    with pytest.raises(TypeError, match="fn must be callable"):
        path_sum.time_per_call(3)
    with pytest.raises(ValueError, match="repeats must be an int"):
        path_sum.time_per_call(lambda: None, repeats=0)


def test_time_interleaved_runs_every_call_every_round_and_validates():
    counts = {"a": [0, 0], "b": [0, 0]}

    def counter(name, i):
        def fn():
            counts[name][i] += 1
        return fn

    calls = {name: [counter(name, i) for i in range(2)] for name in counts}
    best = path_sum.time_interleaved(calls, rounds=3, number={"b": 4})
    assert counts == {"a": [3, 3], "b": [12, 12]}
    assert set(best) == {"a", "b"} and all(v.shape == (2,) and np.all(v >= 0) for v in best.values())
    with pytest.raises(ValueError, match="same"):
        path_sum.time_interleaved({"a": [lambda: None], "b": []})
    with pytest.raises(TypeError, match="callables"):
        path_sum.time_interleaved({"a": [3]})
    with pytest.raises(ValueError, match="rounds must be an int"):
        path_sum.time_interleaved({"a": [lambda: None]}, rounds=0)


@pytest.mark.parametrize("single_thread", [False, True])
def test_timing_study_times_every_quantity_for_every_T(single_thread):
    times = path_sum.timing_study((2, 3), n_hidden=3, batch=2, rounds=1, single_thread=single_thread)
    assert list(times) == list(path_sum.TIMED)
    assert all(v.shape == (2,) and np.all(v > 0) and np.all(np.isfinite(v)) for v in times.values())


def test_timing_study_validates():
    with pytest.raises(ValueError, match="T must be an int"):
        path_sum.timing_study((0, 4), single_thread=False)
    with pytest.raises(ValueError, match="rounds must be an int"):
        path_sum.timing_study((2,), rounds=0, single_thread=False)
    with pytest.raises(ValueError, match="n_hidden must be an int"):
        path_sum.timing_study((2,), n_hidden=0, single_thread=False)


def test_plot_timing_study_draws_both_panels_and_validates():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    T_values = np.array([4, 8, 16])
    times = {name: 1e-3 * T_values * (i + 1) for i, name in enumerate(path_sum.TIMED)}
    fig = path_sum.plot_timing_study(T_values, times)
    left, right = fig.axes
    # The right panel draws the two measured ratios and the count ratio (T+1)/2.
    ratios = {line.get_label(): line.get_ydata() for line in right.get_lines()}
    assert np.allclose(ratios["count ratio $(T+1)/2$"], (T_values + 1) / 2)
    assert np.allclose(ratios["whole gradients (measured)"], times["path sum"] / times["recursion"])
    assert np.allclose(ratios["backward passes only (measured)"],
                       times["path sum, backward only"] / times["recursion, backward only"])
    plt.close(fig)
    with pytest.raises(ValueError, match="missing"):
        path_sum.plot_timing_study(T_values, {"recursion": times["recursion"]})
    with pytest.raises(TypeError, match="dict returned by timing_study"):
        path_sum.plot_timing_study(T_values, list(times.values()))
    with pytest.raises(ValueError, match="must have shape"):
        path_sum.plot_timing_study(T_values, {**times, "forward pass": times["forward pass"][:2]})


# --- the exercise checker ------------------------------------------------------------------


def test_checker_accepts_the_reference_and_a_plain_numpy_solution():
    assert verdict("two_views_path_term_W", get("two_views_path_term_W").reference)

    def plain(g, h, W, t, k):
        G = g * (1 - h[t] ** 2)
        for j in range(t, k, -1):
            G = (G @ W) * (1 - h[j - 1] ** 2)
        return G.T @ h[k - 1]

    assert verdict("two_views_path_term_W", plain)


def _wrong_answers():
    def no_last_tanh(g, h, W, t, k):          # forgets D_k, the immediate tanh factor at step k
        G = g * (1 - h[t] ** 2)
        for j in range(t, k, -1):
            G = G @ W if j - 1 == k else (G @ W) * (1 - h[j - 1] ** 2)
        return G.T @ h[k - 1]

    def state_off_by_one(g, h, W, t, k):      # h^(k) instead of h^(k-1)
        G = g * (1 - h[t] ** 2)
        for j in range(t, k, -1):
            G = (G @ W) * (1 - h[j - 1] ** 2)
        return G.T @ h[k]

    def transposed(g, h, W, t, k):            # W instead of W^T in the column form
        G = g * (1 - h[t] ** 2)
        for j in range(t, k, -1):
            G = (G @ W.T) * (1 - h[j - 1] ** 2)
        return G.T @ h[k - 1]

    def one_jacobian_too_many(g, h, W, t, k):
        G = g * (1 - h[t] ** 2)
        for j in range(t, k - 1, -1):
            G = (G @ W) * (1 - h[max(j - 1, 0)] ** 2)
        return G.T @ h[k - 1]

    def result_transposed(g, h, W, t, k):
        G = g * (1 - h[t] ** 2)
        for j in range(t, k, -1):
            G = (G @ W) * (1 - h[j - 1] ** 2)
        return h[k - 1].T @ G

    return [no_last_tanh, state_off_by_one, transposed, one_jacobian_too_many, result_transposed]


@pytest.mark.parametrize("wrong", _wrong_answers(), ids=lambda f: f.__name__)
def test_checker_rejects_wrong_answers(wrong):
    result = verdict("two_views_path_term_W", wrong)
    assert not result, wrong.__name__
