"""RTRL and UORO (chapter 13): RTRL equals BPTT, UORO is unbiased over its random signs."""

import itertools

import numpy as np
import pytest

from bptt_lib import models, online, rnn
from bptt_lib.derive import online as donline
from bptt_lib.implicit_recursion import recursion_kernels


def problem(T=6, B=2, D=3, H=4, K=5, seed=0, gain=1.3):
    rng = np.random.default_rng(seed)
    params = rnn.init_params(D, H, K, rng=rng)
    params["W"] *= gain
    params["b"] = 0.2 * rng.standard_normal(H)
    params["c"] = 0.2 * rng.standard_normal(K)
    return params, rng.standard_normal((T, B, D)), rng.integers(0, K, size=(T, B))


def rel(a, b):
    return np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b)


# --- the derivations --------------------------------------------------------------------------


def test_rtrl_update_derived():
    assert donline.prove_rtrl_update(2, 2, 1)
    assert donline.prove_rtrl_update(3, 2, 2)


def test_uoro_step_unbiased_derived_and_needs_even_rho1():
    assert donline.prove_uoro_step_unbiased(2, 2)
    assert donline.prove_uoro_step_unbiased(3, 1)
    assert not donline.prove_uoro_step_unbiased(2, 2, rho1_even=False)


def test_explicit_rows_are_the_explicit_tangents_of_unit_directions():
    rng = np.random.default_rng(1)
    B, H, D = 3, 4, 2
    h_prev, x_t = rng.standard_normal((B, H)), rng.standard_normal((B, D))
    E = online.explicit_rows(h_prev, x_t)
    E_again = online.explicit_rows(h_prev, x_t, out=online.explicit_rows(rng.standard_normal((B, H)), x_t))
    assert np.array_equal(E, E_again)
    P = online.n_hidden_params(H, D)
    k = recursion_kernels()
    for p in range(P):
        unit = np.zeros(P)
        unit[p] = 1.0
        d = online.unpack(unit, H, D)
        expected = k.explicit_tangent(h_prev, x_t, d["W"], d["U"], d["b"][None, :], np.ones((B, 1)))
        assert np.array_equal(E[:, p, :], expected)


def test_pack_unpack_roundtrip():
    params, _, _ = problem()
    back = online.unpack(online.pack(params), 4, 3)
    assert all(np.array_equal(back[k], params[k]) for k in ("W", "U", "b"))


# --- RTRL -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [dict(T=2, B=1, D=1, H=1, K=2), dict(T=6, B=2, D=3, H=4, K=5),
                                   dict(T=15, B=3, D=2, H=6, K=3)])
def test_rtrl_equals_bptt(sizes):
    params, x, y = problem(**sizes)
    loss, full = models.full_grads(params, x, y)
    value, grads = online.rtrl_grads(params, x, y)
    assert abs(value - loss) <= 1e-12 * abs(loss)
    assert list(grads) == list(rnn.PARAM_SHAPES)
    for key in params:
        assert rel(grads[key], full[key]) < 1e-10, key


def test_rtrl_with_initial_state():
    params, x, y = problem()
    h0 = np.random.default_rng(3).standard_normal((2, 4))
    _, full = models.full_grads(params, x, y, state0=h0)
    _, grads = online.rtrl_grads(params, x, y, state0=h0)
    assert max(rel(grads[k], full[k]) for k in params) < 1e-10


def test_rtrl_calls_the_generated_kernel(monkeypatch):
    params, x, y = problem(T=7)
    k = online.online_kernels()
    calls = []
    original = k.rtrl_update
    monkeypatch.setattr(k, "rtrl_update", lambda *a: calls.append(1) or original(*a))
    online.rtrl_grads(params, x, y)
    assert len(calls) == 7
    assert original.expr == donline.rtrl_update()


def test_rtrl_detects_a_wrong_recursion(monkeypatch):
    params, x, y = problem()
    _, full = models.full_grads(params, x, y)
    k = online.online_kernels()
    original = k.rtrl_update
    monkeypatch.setattr(k, "rtrl_update", lambda S, W, E, D: original(S, W.T, E, D))   # W where W^T belongs
    _, grads = online.rtrl_grads(params, x, y)
    assert rel(grads["W"], full["W"]) > 1e-3


# --- UORO -----------------------------------------------------------------------------------


def all_sign_patterns(T, B, H):
    for pattern in itertools.product((1.0, -1.0), repeat=T * B * H):
        yield np.array(pattern).reshape(T, B, H)


@pytest.mark.parametrize("sizes", [dict(T=3, B=1, D=2, H=2, K=3), dict(T=2, B=2, D=1, H=2, K=2),
                                   dict(T=4, B=1, D=1, H=2, K=2), dict(T=2, B=1, D=2, H=3, K=3)])
def test_uoro_expectation_is_the_full_gradient_exactly(sizes):
    """The mean over every sign pattern (2^(T B H) of them, equally likely) is full BPTT's gradient."""
    params, x, y = problem(**sizes)
    _, full = models.full_grads(params, x, y)
    total = {k: np.zeros_like(v) for k, v in params.items()}
    n = 0
    single = []
    for signs in all_sign_patterns(sizes["T"], sizes["B"], sizes["H"]):
        _, grads = online.uoro_grads_with_signs(params, x, y, signs)
        for k in total:
            total[k] += grads[k]
        single.append(rel(grads["W"], full["W"]))
        n += 1
    for k in params:
        assert rel(total[k] / n, full[k]) < 1e-10, k
    assert max(single) > 1e-2            # a single draw is not the gradient: the mean is what is exact


def test_uoro_mean_of_draws_statistically():
    """At a size too large to enumerate: |mean of N draws - g| below 5 times its measured standard error.

    For the mean of N independent draws, E|mean - g|^2 = tr(Cov)/N; by Markov's inequality the
    bound fails with probability at most 1/25 for an unbiased estimator. The generator is seeded.
    """
    params, x, y = problem(T=12, B=2, D=3, H=6, K=4, gain=1.0)
    _, full = models.full_grads(params, x, y)
    rng = np.random.default_rng(11)
    N = 2000
    draws = np.array([online.pack(online.uoro_grads(params, x, y, rng=rng)[1]) for _ in range(N)])
    g = online.pack(full)
    spread = draws.var(axis=0, ddof=1).sum()
    assert np.linalg.norm(draws.mean(axis=0) - g) ** 2 < 25 * spread / N
    assert spread > 1e-3 * (g @ g)                   # and the draws do vary


def test_uoro_output_layer_exact_and_draws_vary():
    params, x, y = problem()
    loss, full = models.full_grads(params, x, y)
    value, a = online.uoro_grads(params, x, y, rng=np.random.default_rng(0))
    _, b = online.uoro_grads(params, x, y, rng=np.random.default_rng(1))
    assert abs(value - loss) <= 1e-12 * abs(loss)
    for key in ("V", "c"):
        assert rel(a[key], full[key]) < 1e-12
    assert rel(a["W"], b["W"]) > 1e-3
    _, again = online.uoro_grads(params, x, y, rng=np.random.default_rng(0))
    assert all(np.array_equal(a[k], again[k]) for k in a)


def test_bad_inputs():
    params, x, y = problem()
    for fn in (online.rtrl_grads, lambda *a: online.uoro_grads(*a, rng=np.random.default_rng(0))):
        with pytest.raises(ValueError, match="x must have shape"):
            fn(params, x[:, :, :2], y)
        with pytest.raises(ValueError, match="y must hold class indices"):
            fn(params, x, y + 10)
        with pytest.raises(KeyError, match="b"):
            fn({k: v for k, v in params.items() if k != "b"}, x, y)
        with pytest.raises(ValueError, match="non-finite"):
            fn(params, np.full_like(x, np.nan), y)
        with pytest.raises(TypeError, match="integers"):
            fn(params, x, y.astype(float))
    with pytest.raises(TypeError, match="rng"):
        online.uoro_grads(params, x, y, rng=0)
    with pytest.raises(ValueError, match="signs must have shape"):
        online.uoro_grads_with_signs(params, x, y, np.ones((2, 2, 4)))
    with pytest.raises(ValueError, match=r"\+1 and -1"):
        online.uoro_grads_with_signs(params, x, y, np.full((6, 2, 4), 0.5))


@pytest.mark.parametrize("which", ["rtrl", "uoro"])
def test_non_finite_result_raises(monkeypatch, which):
    params, x, y = problem()
    k = rnn.rnn_kernels()
    monkeypatch.setattr(k, "tanh_vjp", lambda g, h: g * np.inf)
    fn = online.rtrl_grads if which == "rtrl" else (lambda *a: online.uoro_grads(*a, rng=np.random.default_rng(0)))
    with pytest.raises(FloatingPointError, match="not finite"):
        fn(params, x, y)


def test_uoro_draws_signs_step_by_step_as_documented():
    params, x, y = problem(T=9, B=3)
    _, a = online.uoro_grads(params, x, y, rng=np.random.default_rng(5))
    _, b = online.uoro_grads_with_signs(params, x, y, online.random_signs((9, 3, 4), np.random.default_rng(5)))
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_online_memory_does_not_grow_with_T():
    from bptt_lib.timing import peak_memory
    params, x, y = problem(T=400, B=2, H=4)
    for fn in (online.rtrl_grads, lambda *a: online.uoro_grads(*a, rng=np.random.default_rng(0))):
        fn(params, x[:5], y[:5])                                  # kernels generated outside the measurement
        short, _ = peak_memory(fn, params, x[:50], y[:50])
        long, _ = peak_memory(fn, params, x, y)
        assert long < short + 8 * 400                             # less than one number per extra step


def test_uoro_calls_the_generated_kernels(monkeypatch):
    params, x, y = problem(T=5)
    k = online.online_kernels()
    state, theta = donline.uoro_update()
    assert k.uoro_state.expr == state and k.uoro_params.expr == theta
    calls = {"uoro_state": 0, "uoro_params": 0}
    for name in calls:
        original = getattr(k, name)

        def counted(*args, _name=name, _original=original):
            calls[_name] += 1
            return _original(*args)

        monkeypatch.setattr(k, name, counted)
    online.uoro_grads(params, x, y, rng=np.random.default_rng(0))
    assert calls == {"uoro_state": 5, "uoro_params": 5}


# --- the chapter's measurements (bptt_lib.memory_online) -----------------------------------------


def test_comparison_separates_exact_biased_and_unbiased_methods():
    from bptt_lib import memory_online as mo

    result = mo.comparison(T=40, B=2, D=3, H=4, K=3, k=4, c=0.3, every=4, seeds=range(5), draws=20, repeat=1)
    rows = result["rows"]
    assert len(rows) == len(mo.METHODS) and all(name.startswith(m) for name, m in zip(rows, mo.METHODS))
    for name in ("full BPTT", "checkpointed (k = 4)", "RTRL"):
        assert rows[name]["bias"] < 1e-9 and rows[name]["variance"] == 0 and rows[name]["draws"] == 1
    assert rows["TBPTT(4, 4)"]["bias"] > 1e-3                        # truncation drops paths: biased
    for name in ("ARTBP (c = 0.3)", "UORO"):
        row = rows[name]
        assert row["draws"] == 100 and row["variance"] > 1e-6
        assert row["noise_floor"] == pytest.approx(np.sqrt(row["variance"] / 100), rel=1e-12)
        assert row["bias"] < 3 * row["noise_floor"]                  # unbiased: the mean's error is noise
    table = mo.comparison_table(result).splitlines()
    assert len(table) == 7 and table[1].split()[-4:] == ["<", "1e-9", "0", "-"]     # full BPTT: exact


def test_checkpoint_sweep_counts_and_exactness():
    from bptt_lib import checkpointing as ck
    from bptt_lib import memory_online as mo

    sweep = mo.checkpoint_sweep(T=30, every=[1, 4, 7, 30], B=2, D=2, H=3, K=2)
    assert sweep.worst_error < 1e-12
    assert list(sweep.steps) == [ck.forward_steps(30, k) for k in (1, 4, 7, 30)]
    assert sweep.peak[1] < sweep.full_peak                            # checkpoints every 4 steps hold less


def test_uoro_spread_mean_error_shrinks_like_an_unbiased_mean():
    from bptt_lib import memory_online as mo

    spread = mo.uoro_spread([3], seeds=range(3), draws=40, T=6)
    rms = np.sqrt((spread["draw_error"] ** 2).mean(axis=2))
    assert spread["draw_error"].shape == (1, 3, 40)
    assert np.all(spread["mean_error"] < 2 * rms / np.sqrt(40))
    assert mo.fitted_exponent([2, 4, 8, 16], [3, 12, 48, 192]) == pytest.approx(2.0, rel=1e-12)
