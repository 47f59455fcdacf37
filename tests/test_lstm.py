"""The LSTM of Part V (bptt_lib.lstm, bptt_lib.derive.lstm).

Gradients are checked two independent ways: against the complex-step derivative of a
plain per-example loop written here from the issue's equations (float64, exact to
round-off, compared to 1e-9 relative), and against central finite differences of the
library's own loss (step 1e-6; the error bound is stated in units of the loss below).
"""

import numpy as np
import pytest
import sympy as sp

from bptt_lib import bptt, gradcheck, lstm, models
from bptt_lib.derive import activations
from bptt_lib.derive import lstm as derive

RTOL = 1e-9          # analytic against analytic (float64)
FD_STEP = 1e-6       # central differences
FD_BOUND = 1e-6      # |FD - analytic| <= FD_BOUND * max(1, |L|), in units of the loss; the
#                      truncation error ~ step^2 |L'''| ~ 1e-12, round-off ~ 1e-16 |L| / step ~ 1e-10 |L|


def problem(seed, T=5, B=2, D=3, H=4, K=3, state=True):
    """Parameters with random biases (so that their gradients are checked), inputs, targets, a state pair."""
    rng = np.random.default_rng(seed)
    params = lstm.init_params(D, H, K, rng=rng)
    for key in params:
        if key.startswith("b_") or key == "c":
            params[key] = params[key] + 0.3 * rng.standard_normal(params[key].shape)
    x = rng.standard_normal((T, B, D))
    y = rng.integers(0, K, (T, B))
    state0 = (0.5 * rng.standard_normal((B, H)), 0.5 * rng.standard_normal((B, H))) if state else None
    return params, x, y, state0


def loop_loss(params, x, y, h0=None, s0=None):
    """The loss by a plain loop over examples and steps, from the equations of the issue (complex-safe)."""
    T, B, _ = x.shape
    H = params["W_f"].shape[0]

    def sigma(a):
        return 1 / (1 + np.exp(-a))

    total = 0
    for b in range(B):
        h = np.zeros(H, complex) if h0 is None else np.asarray(h0[b], complex)
        s = np.zeros(H, complex) if s0 is None else np.asarray(s0[b], complex)
        for t in range(T):
            a = {n: params[f"b_{n}"] + params[f"W_{n}"] @ h + params[f"U_{n}"] @ x[t, b] for n in "figq"}
            f, i, g, q = sigma(a["f"]), sigma(a["i"]), np.tanh(a["g"]), sigma(a["q"])
            s = f * s + i * g
            h = q * np.tanh(s)
            o = params["c"] + params["V"] @ h
            o = o - o.real.max()
            total = total - (o[y[t, b]] - np.log(np.exp(o).sum()))
    return total / B


def complex_step_grads(params, x, y, h0=None, s0=None, eps=1e-30):
    grads = {}
    for key, value in params.items():
        g = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            shifted = {k: v.astype(complex) for k, v in params.items()}
            shifted[key][idx] += 1j * eps
            g[idx] = loop_loss(shifted, x, y, h0, s0).imag / eps
        grads[key] = g
    return grads


def assert_grads_close(got, want, rtol=RTOL):
    assert list(got) == list(want)
    for key in want:
        scale = max(np.abs(want[key]).max(), 1e-300)
        assert np.abs(got[key] - want[key]).max() <= rtol * scale, key


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("with_state", [False, True])
def test_gradients_equal_complex_step_of_a_plain_loop(with_state):
    params, x, y, state0 = problem(1, state=with_state)
    h0, s0 = state0 if with_state else (None, None)
    value, grads = lstm.loss_and_grads(params, x, y, state0)
    assert value == pytest.approx(float(loop_loss(params, x, y, h0, s0).real), rel=1e-12)
    assert_grads_close(grads, complex_step_grads(params, x, y, h0, s0))


def test_gradients_equal_central_differences():
    params, x, y, state0 = problem(2, T=4, H=3)
    value, grads = lstm.loss_and_grads(params, x, y, state0)
    bound = FD_BOUND * max(1.0, abs(value))
    worst = 0.0
    for key, arr in params.items():
        for idx in np.ndindex(arr.shape):
            plus = {k: v.copy() for k, v in params.items()}
            minus = {k: v.copy() for k, v in params.items()}
            plus[key][idx] += FD_STEP
            minus[key][idx] -= FD_STEP
            fd = (lstm.loss(plus, x, y, state0) - lstm.loss(minus, x, y, state0)) / (2 * FD_STEP)
            worst = max(worst, abs(fd - grads[key][idx]))
    assert worst <= bound, worst
    assert min(np.abs(g).max() for g in grads.values()) > 100 * bound   # so the bound is far below every gradient


def test_gradient_with_respect_to_the_initial_state():
    """The dh0 of the core (what checkpointing passes on) holds dL/dh0 and dL/ds0, zeros for the gates."""
    params, x, y, (h0, s0) = problem(3)
    packed, xv, yv, record0 = lstm.MODEL.prepare(params, x, y, (h0, s0))
    _, _, dh0 = bptt.bptt(lstm.LSTM_CELL, packed, xv, yv, record0)
    H = h0.shape[1]
    for part, (name, base) in enumerate((("h0", h0), ("s0", s0))):
        expected = np.zeros_like(base)
        for idx in np.ndindex(base.shape):
            shifted = base.astype(complex)
            shifted[idx] += 1e-30j
            args = (shifted, s0) if name == "h0" else (h0, shifted)
            expected[idx] = loop_loss(params, x, y, *args).imag / 1e-30
        np.testing.assert_allclose(dh0[:, part * H:(part + 1) * H], expected, rtol=RTOL, atol=1e-15)
    assert not dh0[:, 2 * H:].any()


def test_full_grads_equals_loss_and_grads():
    params, x, y, state0 = problem(4)
    value, grads = lstm.loss_and_grads(params, x, y, state0)
    full_value, full = models.full_grads(params, x, y, model="lstm", state0=state0)
    assert full_value == pytest.approx(value, rel=1e-12)
    assert_grads_close(full, grads, rtol=1e-12)


def test_loss_and_forward_agree():
    params, x, y, state0 = problem(5)
    value, _ = lstm.loss_and_grads(params, x, y, state0)
    assert lstm.loss(params, x, y, state0) == pytest.approx(value, rel=1e-12)
    trace = lstm.forward(params, x, state0)
    picked = np.take_along_axis(trace.log_yhat, y[..., None], axis=-1)
    assert -picked.sum() / x.shape[1] == pytest.approx(value, rel=1e-12)


# ---------------------------------------------------------------- forward, init, state


def test_forward_returns_states_gates_and_probabilities():
    T, B, D, H, K = 6, 3, 2, 4, 5
    params, x, _, (h0, s0) = problem(6, T, B, D, H, K)
    tr = lstm.forward(params, x, (h0, s0))
    assert tr.h.shape == tr.s.shape == (T + 1, B, H)
    for gate in ("f", "i", "g", "q"):
        assert tr[gate].shape == (T, B, H)
    assert tr.o.shape == tr.yhat.shape == tr.log_yhat.shape == (T, B, K)
    np.testing.assert_array_equal(tr.h[0], h0)
    np.testing.assert_array_equal(tr.s[0], s0)
    np.testing.assert_allclose(tr.s[1:], tr.f * tr.s[:-1] + tr.i * tr.g, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(tr.h[1:], tr.q * np.tanh(tr.s[1:]), rtol=1e-13, atol=1e-15)
    a_f = params["b_f"] + tr.h[:-1] @ params["W_f"].T + x @ params["U_f"].T
    np.testing.assert_allclose(tr.f, 1 / (1 + np.exp(-a_f)), rtol=1e-13)
    np.testing.assert_allclose(tr.yhat.sum(-1), 1.0, rtol=1e-13)
    assert tr["yhat"] is tr.yhat and "s" in tr.keys()


def test_init_params_keys_shapes_and_forget_bias():
    D, H, K = 300, 200, 7
    p = lstm.init_params(D, H, K, rng=np.random.default_rng(0))
    assert list(p) == list(lstm.PARAM_SHAPES) == [
        "W_f", "U_f", "b_f", "W_i", "U_i", "b_i", "W_g", "U_g", "b_g", "W_q", "U_q", "b_q", "V", "c"]
    sizes = {"D": D, "H": H, "K": K}
    for key, dims in lstm.PARAM_SHAPES.items():
        assert p[key].shape == tuple(sizes[d] for d in dims) and p[key].dtype == np.float64
    np.testing.assert_array_equal(p["b_f"], 1.0)
    for key in ("b_i", "b_g", "b_q", "c"):
        np.testing.assert_array_equal(p[key], 0.0)
    for key in ("W_f", "U_q", "V"):      # 1/sqrt(fan_in); 40 000+ entries: the sample sd is within 2 %
        assert p[key].std() == pytest.approx(1 / np.sqrt(p[key].shape[1]), rel=0.02)
    again = lstm.init_params(D, H, K, rng=np.random.default_rng(0))
    assert all(np.array_equal(p[k], again[k]) for k in p)
    np.testing.assert_array_equal(lstm.init_params(2, 3, 2, rng=np.random.default_rng(0), forget_bias=0.0)["b_f"], 0.0)
    np.testing.assert_array_equal(lstm.init_params(2, 3, 2, rng=np.random.default_rng(0), forget_bias=2.5)["b_f"], 2.5)
    with pytest.raises(ValueError, match="forget_bias"):
        lstm.init_params(2, 3, 2, rng=np.random.default_rng(0), forget_bias=float("nan"))
    with pytest.raises(TypeError, match="rng"):
        lstm.init_params(2, 3, 2, rng=0)
    with pytest.raises(ValueError, match="n_hidden"):
        lstm.init_params(2, 0, 2, rng=np.random.default_rng(0))


def test_state0_is_honoured():
    params, x, y, (h0, s0) = problem(7)
    zero, _ = lstm.loss_and_grads(params, x, y)
    assert lstm.loss_and_grads(params, x, y, None)[0] == zero
    assert lstm.loss_and_grads(params, x, y, (np.zeros_like(h0), np.zeros_like(s0)))[0] == zero
    with_h = lstm.loss_and_grads(params, x, y, (h0, None))[0]
    with_s = lstm.loss_and_grads(params, x, y, (None, s0))[0]
    both = lstm.loss_and_grads(params, x, y, (h0, s0))[0]
    assert len({zero, with_h, with_s, both}) == 4
    assert both == pytest.approx(float(loop_loss(params, x, y, h0, s0).real), rel=1e-12)
    assert with_s == pytest.approx(float(loop_loss(params, x, y, None, s0).real), rel=1e-12)


def test_state_carried_across_chunks_continues_the_sequence():
    params, x, _, state0 = problem(8, T=7)
    whole = lstm.forward(params, x, state0)
    first = lstm.forward(params, x[:3], state0)
    second = lstm.forward(params, x[3:], (first.h[-1], first.s[-1]))
    np.testing.assert_allclose(second.h, whole.h[3:], rtol=1e-14, atol=1e-15)
    packed, xv, _, record0 = lstm.MODEL.prepare(params, x[:3], np.zeros((3, 2), int), state0)
    records = bptt.forward(lstm.LSTM_CELL, packed, xv, record0)
    h, s = lstm.state_of(records[-1])
    np.testing.assert_allclose(h, whole.h[3], rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(s, whole.s[3], rtol=1e-14, atol=1e-15)


def test_pack_and_unpack_are_inverse():
    params, *_ = problem(9)
    packed = lstm.pack(params)
    H = params["W_f"].shape[0]
    assert packed["W"].shape == (4 * H, H) and packed["b"].shape == (4 * H,)
    np.testing.assert_array_equal(packed["W"][2 * H:3 * H], params["W_g"])
    back = lstm.unpack(packed)
    assert list(back) == list(lstm.PARAM_SHAPES)
    assert all(np.array_equal(back[k], params[k]) for k in params)


# ---------------------------------------------------------------- bad inputs


def test_bad_inputs_raise_naming_the_argument():
    params, x, y, (h0, s0) = problem(10)
    missing = {k: v for k, v in params.items() if k != "W_g"}
    with pytest.raises(KeyError, match="W_g"):
        lstm.loss_and_grads(missing, x, y)
    wrong = dict(params, U_i=np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r'params\["U_i"\]'):
        lstm.loss_and_grads(wrong, x, y)
    with pytest.raises(TypeError, match=r'params\["V"\]'):
        lstm.loss_and_grads(dict(params, V=params["V"].astype(complex)), x, y)
    with pytest.raises(ValueError, match=r'params\["b_q"\]'):
        lstm.loss_and_grads(dict(params, b_q=np.full(4, np.nan)), x, y)
    with pytest.raises(ValueError, match="x must have shape"):
        lstm.loss_and_grads(params, x[..., :2], y)
    with pytest.raises(ValueError, match="x holds a non-finite"):
        lstm.loss_and_grads(params, np.where(x > 1, np.inf, x), y)
    with pytest.raises(ValueError, match="y must hold class indices"):
        lstm.loss_and_grads(params, x, y + 10)
    with pytest.raises(TypeError, match="y must hold integers"):
        lstm.loss_and_grads(params, x, y.astype(float))
    with pytest.raises(TypeError, match="state0 must be None or a pair"):
        lstm.loss_and_grads(params, x, y, h0)
    with pytest.raises(TypeError, match="state0 must be None or a pair"):
        lstm.loss_and_grads(params, x, y, (h0, s0, s0))
    assert lstm.loss(params, x, y, np.stack([h0, s0])) == lstm.loss(params, x, y, (h0, s0))
    with pytest.raises(ValueError, match="state0 s0"):
        lstm.loss_and_grads(params, x, y, (h0, s0[:, :2]))
    with pytest.raises(ValueError, match="state0 h0"):
        lstm.forward(params, x, (np.full_like(h0, np.nan), s0))
    with pytest.raises(ValueError, match="state0 h0"):
        models.full_grads(params, x, y, model="lstm", state0=(h0[:1], s0))


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_non_finite_results_raise_floating_point_error(monkeypatch):
    params, x, y, _ = problem(11)
    k = lstm.lstm_kernels()
    monkeypatch.setattr(k, "cell_state_vjp", lambda dh, ds, q, c: dh * np.inf)
    with pytest.raises(FloatingPointError, match="not finite"):
        lstm.loss_and_grads(params, x, y)
    with pytest.raises(FloatingPointError, match="not finite"):
        models.full_grads(params, x, y, model="lstm")


# ---------------------------------------------------------------- derivations and kernels


def test_derivations_are_proven():
    assert derive.prove_sigmoid_via_tanh()
    assert derive.prove_sigmoid_function()
    assert all(derive.prove_unit_vjp().values())
    assert derive.prove_split_preactivation()
    assert all(derive.prove_packed_gates().values())
    assert derive.prove_affine_vjps()
    assert derive.prove_state_jacobian(2, 3)
    assert derive.prove_cell_state_path(2, 3)
    assert all(derive.prove_jacobian_entries().values())


def test_a_wrong_rule_is_not_proven():
    """The proofs can fail: the notes' h = q * sigmoid(s) is not the derivative of the issue's step."""
    u = derive.unit_symbols()
    stated = derive.unit_vjp(u)
    out = derive.unit_step(u)
    wrong = u.g_h * u.q * (1 - u.c) * u.c + u.g_s           # a sigmoid's rule put where tanh's belongs
    difference = (wrong - stated["delta_s"]).subs(u.c, sp.tanh(out.s))
    assert sp.simplify(difference.subs({u.q: sp.Rational(1, 2), u.g_h: 1, u.g_s: 0})) != 0


def test_the_cell_state_path_is_not_diag_f_alone():
    """Dropping the terms through h(t-1) (the constant error carousel read as the whole Jacobian) is refuted."""
    derived, compact = derive.cell_state_path_entry()
    assert derive._is_zero_indexed(derived - compact)
    carousel_only = sp.Add(*[term for term in compact.args if not isinstance(term, sp.Piecewise)])   # delta_jk f_j
    assert carousel_only.has(sp.KroneckerDelta) and carousel_only != compact
    assert not derive._is_zero_indexed(derived - carousel_only)
    explicit, _ = derive.cell_state_path(1, 2)
    assert sp.expand(explicit[0, 1]) != 0       # an off-diagonal entry: s_2(t-1) reaches s_1(t) through h(t-1)


def _sample(rng, shape=(3, 4)):
    return rng.standard_normal(shape)


def test_elementwise_kernels_equal_the_direct_derivative(rng):
    """Kernels in the stored quantities against SymPy's derivative in the pre-activations, at random points."""
    k = lstm.lstm_kernels()
    u = derive.unit_symbols()
    direct = derive.unit_vjp_direct(u)
    args = [u.a_f, u.a_i, u.a_g, u.a_q, u.s_prev, u.g_h, u.g_s]
    values = [2 * _sample(rng) for _ in range(5)] + [_sample(rng), _sample(rng)]
    a_f, a_i, a_g, a_q, s_prev, dh, ds = values
    sig = sp.lambdify(activations.a, activations.sigmoid(activations.a), "numpy")
    f, i, g, q = sig(a_f), sig(a_i), np.tanh(a_g), sig(a_q)
    s = k.cell_state(f, s_prev, i, g)
    np.testing.assert_allclose(s, f * s_prev + i * g, rtol=1e-14)
    np.testing.assert_allclose(k.hidden_state(q, s), q * np.tanh(s), rtol=1e-14)
    c = np.tanh(s)
    delta_s = k.cell_state_vjp(dh, ds, q, c)
    got = dict(zip(("a_f", "a_i", "a_g", "a_q"), k.gate_vjp(delta_s, dh, c, s_prev, f, i, g, q)))
    got["s_prev"] = k.s_prev_vjp(delta_s, f)
    for name, expr in direct.items():
        want = sp.lambdify(args, expr, "numpy")(*values)
        np.testing.assert_allclose(got[name], want, rtol=1e-12, atol=1e-15, err_msg=name)


def _explicit(expr, sizes):
    return expr.subs(sizes).as_explicit()


def _evaluate(matrix, values):
    subs = {}
    for s in matrix.atoms(sp.matrices.expressions.matexpr.MatrixElement):
        parent, i, j = s.args
        subs[s] = values[str(parent.name)][int(i), int(j)]
    return np.array(matrix.subs(subs).evalf(), dtype=float)


def test_linear_kernels_equal_componentwise_derivatives(rng):
    """At B = 2, D = 2, H = 2 (4H = 8): every entry of each linear kernel against SymPy, entry by entry."""
    k = lstm.lstm_kernels()
    sym = derive.batch_symbols()
    Bn, Dn, Hn = 2, 2, 2
    sizes = {derive.B: Bn, derive.D: Dn, derive.H: Hn}
    values = {"H_prev": _sample(rng, (Bn, Hn)), "X": _sample(rng, (Bn, Dn)), "W": _sample(rng, (4 * Hn, Hn)),
              "U": _sample(rng, (4 * Hn, Dn)), "b": _sample(rng, (1, 4 * Hn)), "one_B": np.ones((Bn, 1)),
              "G_z": _sample(rng, (Bn, 4 * Hn)), "X_p": _sample(rng, (Bn, 4 * Hn))}
    Z = _explicit(sym.H_prev * sym.W.T + sym.X * sym.U.T + sym.one_B * sym.b, sizes)
    G = _explicit(sym.G_z, sizes)
    L = sum(G[r, c] * Z[r, c] for r in range(Z.rows) for c in range(Z.cols))
    grads = {p: _explicit(p, sizes).applyfunc(lambda e: sp.diff(L, e)) for p in (sym.W, sym.U, sym.b, sym.H_prev)}
    dWt, dUt, db = k.params_vjp(values["G_z"], values["H_prev"], values["X"], values["one_B"])   # W^T's, U^T's
    np.testing.assert_allclose(dWt.T, _evaluate(grads[sym.W], values), rtol=1e-12)
    np.testing.assert_allclose(dUt.T, _evaluate(grads[sym.U], values), rtol=1e-12)
    np.testing.assert_allclose(db, _evaluate(grads[sym.b], values), rtol=1e-12)
    np.testing.assert_allclose(k.h_prev_vjp(values["G_z"], values["W"]), _evaluate(grads[sym.H_prev], values),
                               rtol=1e-12)
    xp = k.input_projection(values["X"], values["U"], values["b"][0])
    np.testing.assert_allclose(xp, _evaluate(_explicit(sym.X * sym.U.T + sym.one_B * sym.b, sizes), values),
                               rtol=1e-12)
    z = k.gate_preactivation(values["H_prev"], values["W"], xp)
    np.testing.assert_allclose(z, _evaluate(Z, values), rtol=1e-12)


def test_forward_step_equals_the_explicit_derivation(rng):
    """One step of the cell (in place, sigmoid through tanh) against derive.explicit_step evaluated at D = 2, H = 3."""
    Dn, Hn = 2, 3
    sym = derive.explicit_symbols(Dn, Hn)
    st = derive.explicit_step(sym)
    names = {}
    values = {}
    for n in derive.GATES:
        for kind, shape in (("W", (Hn, Hn)), ("U", (Hn, Dn)), ("b", (Hn, 1))):
            values[f"{kind}_{n}"] = _sample(rng, shape)
            names[f"{kind}_{n}"] = getattr(sym, f"{kind}_{n}")
    for key, shape in (("h_prev", (Hn, 1)), ("s_prev", (Hn, 1)), ("x", (Dn, 1))):
        values[key] = _sample(rng, shape)
        names[key] = getattr(sym, key)
    subs = {names[key][r, c]: values[key][r, c] for key in names for r in range(names[key].rows)
            for c in range(names[key].cols)}
    want = {part: _number(getattr(st, part), subs)[:, 0] for part in ("f", "i", "g", "q", "s", "h")}
    params = {key: (values[key][:, 0] if key.startswith("b_") else values[key])
              for key in values if key[:2] in ("W_", "U_", "b_")}
    packed = lstm.pack({**params, "V": np.zeros((1, Hn)), "c": np.zeros(1)})
    prev = lstm.initial_record(values["h_prev"].T, values["s_prev"].T)
    xp = lstm.LSTM_CELL.project(packed, values["x"].T[None])[0]
    out = np.empty_like(prev)
    lstm.LSTM_CELL.step(packed, prev, xp, out)
    for j, part in enumerate(("h", "s", "f", "i", "g", "q")):
        np.testing.assert_allclose(out[0, j * Hn:(j + 1) * Hn], want[part], rtol=1e-12, err_msg=part)


def test_gate_activations_equal_the_definitions(rng):
    H = 5
    z = 4 * rng.standard_normal((3, 4 * H))
    got = lstm.gate_activations_in_place(z.copy())
    sig = sp.lambdify(activations.a, activations.sigmoid(activations.a), "numpy")
    want = np.concatenate([sig(z[:, :2 * H]), np.tanh(z[:, 2 * H:3 * H]), sig(z[:, 3 * H:])], axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-16)
    big = lstm.gate_activations_in_place(np.array([[-800.0, 800.0, -800.0, 800.0]]))
    np.testing.assert_array_equal(big, [[0.0, 1.0, -1.0, 1.0]])   # no overflow, exact limits


def _number(matrix, subs):
    """An explicit SymPy matrix (gates as :class:`derive.Sigmoid`) evaluated at the numbers ``subs``."""
    return np.array(matrix.subs(subs).applyfunc(lambda e: e.rewrite(sp.exp)).evalf(), dtype=float)


def _numeric_jacobian(fn, z, step=1e-6):
    cols = []
    for j in range(len(z)):
        e = np.zeros_like(z)
        e[j] = step
        cols.append((fn(z + e) - fn(z - e)) / (2 * step))
    return np.stack(cols, axis=1)


def _explicit_numbers(rng, Dn, Hn):
    sym = derive.explicit_symbols(Dn, Hn)
    values, subs = {}, {}
    for n in derive.GATES:
        for kind, shape in (("W", (Hn, Hn)), ("U", (Hn, Dn)), ("b", (Hn, 1))):
            values[f"{kind}_{n}"] = _sample(rng, shape)
    for key, shape in (("h_prev", (Hn, 1)), ("s_prev", (Hn, 1)), ("x", (Dn, 1)), ("q_prev", (Hn, 1))):
        values[key] = _sample(rng, shape)
    values["q_prev"] = 1 / (1 + np.exp(-values["q_prev"]))
    for key, arr in values.items():
        M = getattr(sym, key)
        subs.update({M[r, c]: arr[r, c] for r in range(M.rows) for c in range(M.cols)})
    params = {key: (values[key][:, 0] if key.startswith("b_") else values[key])
              for key in values if key[:2] in ("W_", "U_", "b_")}
    packed = lstm.pack({**params, "V": np.zeros((1, Hn)), "c": np.zeros(1)})
    xp = lstm.LSTM_CELL.project(packed, values["x"].T[None])[0]
    return values, subs, packed, xp


def _step(packed, xp, h_prev, s_prev):
    out = np.empty((1, 6 * len(h_prev)))
    lstm.LSTM_CELL.step(packed, lstm.initial_record(h_prev[None], s_prev[None]), xp, out)
    H = len(h_prev)
    return out[0, :H], out[0, H:2 * H]


def test_state_jacobian_matches_the_numeric_jacobian_of_the_step(rng):
    """derive.state_jacobian's compact form, evaluated, against central differences (step 1e-6) of the cell's step."""
    Dn, Hn = 2, 3
    values, subs, packed, xp = _explicit_numbers(rng, Dn, Hn)
    _, compact = derive.state_jacobian(Dn, Hn)
    J = _number(compact, subs)
    z0 = np.concatenate([values["h_prev"][:, 0], values["s_prev"][:, 0]])
    numeric = _numeric_jacobian(lambda z: np.concatenate(_step(packed, xp, z[:Hn], z[Hn:])), z0)
    np.testing.assert_allclose(numeric, J, atol=1e-8)
    f = _number(derive.explicit_step(derive.explicit_symbols(Dn, Hn)).f, subs)[:, 0]
    np.testing.assert_allclose(J[Hn:, Hn:], np.diag(f), rtol=1e-12)     # ds(t)/ds(t-1) = diag(f(t))


def test_cell_state_path_matches_the_numeric_jacobian(rng):
    """ds(t)/ds(t-1) with h(t-1) = q(t-1) tanh(s(t-1)): diag(f) plus the terms through h(t-1), against differences."""
    Dn, Hn = 2, 3
    values, subs, packed, xp = _explicit_numbers(rng, Dn, Hn)
    _, compact = derive.cell_state_path(Dn, Hn)
    J = _number(compact, subs)
    q_prev = values["q_prev"][:, 0]
    numeric = _numeric_jacobian(lambda s: _step(packed, xp, q_prev * np.tanh(s), s)[1], values["s_prev"][:, 0])
    np.testing.assert_allclose(numeric, J, atol=1e-8)
    assert np.abs(J - np.diag(np.diag(J))).max() > 1e-3     # the terms through h(t-1) are not negligible here


def test_kernels_are_generated_from_expressions():
    from bptt_lib.codegen import source_of
    k = lstm.lstm_kernels()
    assert lstm.lstm_kernels() is k
    for name in lstm.KERNEL_NAMES:
        fn = getattr(k, name)
        assert fn.__name__ == f"lstm_{name}"
        assert isinstance(fn.expr, (sp.Basic, tuple))
        src = source_of(fn)
        assert src.startswith(f"def lstm_{name}(") and "diag" not in src and "einsum" not in src
    assert "delta_s*f*s_prev*(1 - f)" in source_of(k.gate_vjp)    # the sigmoid's rule, in its output f


def test_training_code_calls_the_generated_kernels(monkeypatch):
    params, x, y, state0 = problem(12, T=6)
    _, reference = lstm.loss_and_grads(params, x, y, state0)
    k = lstm.lstm_kernels()
    calls = {}

    def counting(name, original):
        def spy(*args, **kwargs):
            calls[name] = calls.get(name, 0) + 1
            return original(*args, **kwargs)
        return spy

    watched = ("input_projection", "gate_preactivation", "cell_state_vjp", "gate_vjp", "s_prev_vjp",
               "h_prev_vjp", "params_vjp")
    for name in watched:
        monkeypatch.setattr(k, name, counting(name, getattr(k, name)))
    _, grads = lstm.loss_and_grads(params, x, y, state0)
    assert calls == {"input_projection": 1, "gate_preactivation": 6, "cell_state_vjp": 6, "gate_vjp": 6,
                     "s_prev_vjp": 6, "h_prev_vjp": 6, "params_vjp": 1}
    for key in grads:
        np.testing.assert_array_equal(grads[key], reference[key])
    original = k.gate_vjp
    monkeypatch.setattr(k, "gate_vjp", lambda *a: (0 * original(*a)[0],) + tuple(original(*a)[1:]))
    _, corrupted = lstm.loss_and_grads(params, x, y, state0)
    assert reference["W_f"].any() and not corrupted["W_f"].any()    # da_f zeroed: no gradient reaches W_f


@pytest.mark.parametrize("rows", [1, 4, 6, 1000])
def test_blocks_of_any_length_give_the_same_gradients(rows, monkeypatch):
    """The core splits long sequences into blocks of about BLOCK_ROWS rows; the LSTM's workspaces follow."""
    params, x, y, state0 = problem(18, T=7, B=2)
    value, reference = lstm.loss_and_grads(params, x, y, state0)
    monkeypatch.setattr(bptt, "BLOCK_ROWS", rows)
    again_value, grads = lstm.loss_and_grads(params, x, y, state0)
    assert again_value == pytest.approx(value, rel=1e-12)
    assert_grads_close(grads, reference, rtol=1e-12)


def test_sizes_of_one():
    params, x, y, state0 = problem(19, T=1, B=1, D=1, H=1, K=2)
    value, grads = lstm.loss_and_grads(params, x, y, state0)
    assert value == pytest.approx(float(loop_loss(params, x, y, *state0).real), rel=1e-12)
    assert_grads_close(grads, complex_step_grads(params, x, y, *state0))


def test_reused_workspaces_do_not_change_results():
    problems = [problem(13, T, B, 3, H, 4) for T, B, H in [(9, 2, 5), (4, 2, 5), (12, 2, 5), (9, 3, 5), (9, 2, 6)]]
    first = [lstm.loss_and_grads(*p) for p in problems]
    for p, (value, grads) in zip(reversed(problems), reversed(first)):
        again_value, again = lstm.loss_and_grads(*p)
        assert again_value == value
        for key in grads:
            np.testing.assert_array_equal(again[key], grads[key])


def test_grad_h_of_the_gates_is_zero():
    """The gates are not carried: their part of the record gradient is zero, even after a call whose
    incoming dh_next had gate parts (the reused workspace must not keep them)."""
    params, x, y, state0 = problem(14)
    packed, xv, yv, record0 = lstm.MODEL.prepare(params, x, y, state0)
    T, B, _ = xv.shape
    H = params["W_f"].shape[0]
    _, reference, dh0 = bptt.bptt(lstm.LSTM_CELL, packed, xv, yv, record0)
    polluted = np.ones((B, 6 * H))
    polluted[:, :2 * H] = 0.0
    _, grads, dh0_again = bptt.bptt(lstm.LSTM_CELL, packed, xv, yv, record0, dh_next=polluted)
    np.testing.assert_array_equal(dh0_again, dh0)          # gate parts of dh_next reach nothing
    for key in grads:
        np.testing.assert_array_equal(grads[key], reference[key])
    grad_h = np.full((T, B, 6 * H), np.nan)
    bptt.bptt(lstm.LSTM_CELL, packed, xv, yv, record0, grad_h=grad_h)
    assert np.isfinite(grad_h).all() and not grad_h[..., 2 * H:].any() and grad_h[..., :2 * H].any()


# ---------------------------------------------------------------- Part IV's algorithms with model="lstm"


def _module(name):
    import importlib
    try:
        return importlib.import_module(f"bptt_lib.{name}")
    except ModuleNotFoundError:
        pytest.skip(f"bptt_lib.{name} (Part IV) is not in this checkout yet")


def test_tbptt_with_k_equal_T_is_full_bptt_and_shorter_k_differs():
    truncation = _module("truncation")
    params, x, y, state0 = problem(15, T=8)
    value, full = lstm.loss_and_grads(params, x, y, state0)
    t_value, t_grads = truncation.tbptt_grads(params, x, y, 8, 8, model="lstm", state0=state0)
    assert t_value == pytest.approx(value, rel=1e-12)
    assert_grads_close(t_grads, full, rtol=1e-10)
    k_value, k_grads = truncation.tbptt_grads(params, x, y, 3, 3, model="lstm", state0=state0)
    assert k_value == pytest.approx(value, rel=1e-12)            # the loss is the full loss
    for key in ("V", "c"):                                       # the output layer is exact under truncation
        np.testing.assert_allclose(k_grads[key], full[key], rtol=1e-10, atol=1e-14)
    for key in ("W_f", "W_i", "W_g", "W_q"):                      # the recurrent gradients are not
        rel = np.linalg.norm(k_grads[key] - full[key]) / np.linalg.norm(full[key])
        assert rel > 1e-3, key


def test_checkpointed_grads_equal_full_bptt():
    checkpointing = _module("checkpointing")
    params, x, y, state0 = problem(16, T=10)
    value, full = lstm.loss_and_grads(params, x, y, state0)
    for every in (1, 3, 4, 10, 20):
        c_value, c_grads = checkpointing.checkpointed_grads(params, x, y, every, model="lstm", state0=state0)
        assert c_value == pytest.approx(value, rel=1e-12)
        assert_grads_close(c_grads, full, rtol=1e-10)


def test_artbp_without_cuts_is_full_bptt():
    artbp = _module("artbp")
    params, x, y, state0 = problem(17, T=6)
    value, full = lstm.loss_and_grads(params, x, y, state0)
    a_value, a_grads = artbp.artbp_grads(params, x, y, 0.0, rng=np.random.default_rng(0), model="lstm",
                                         state0=state0)
    assert a_value == pytest.approx(value, rel=1e-12)
    assert_grads_close(a_grads, full, rtol=1e-10)


# ---------------------------------------------------------------- chapter 14: reference loss, gradient reach


def test_reference_loss_equals_loss_and_its_complex_step_equals_the_gradients():
    params, x, y, state0 = problem(40, T=4, B=2, D=2, H=3, K=3)
    value, grads = lstm.loss_and_grads(params, x, y, state0)
    assert abs(lstm.reference_loss(params, x, y, state0) - value) <= 1e-12 * value
    by_complex = gradcheck.complex_step(lambda p: lstm.reference_loss(p, x, y, state0), params)
    assert_grads_close(grads, by_complex)
    wrong = dict(params, b_g=params["b_g"] + 0.1)     # the reference is not blind to a parameter
    assert abs(lstm.reference_loss(wrong, x, y, state0) - value) > 1e-6


def _last_loss(params, x, y_last, h0, s0):
    """L^(T) alone: the loss of T steps minus that of the first T - 1 (same prefix, same targets)."""
    T, B = x.shape[:2]
    y = np.zeros((T, B), dtype=int)
    y[-1] = y_last
    return lstm.reference_loss(params, x, y, (h0, s0)) - lstm.reference_loss(params, x[:-1], y[:-1], (h0, s0))


def test_gradient_reach_equals_central_differences():
    rng = np.random.default_rng(41)
    T, B, D, H, K = 5, 3, 2, 3, 4
    params = lstm.init_params(D, H, K, rng=rng, forget_bias=0.5)
    x = rng.standard_normal((T, B, D))
    y_last = rng.integers(0, K, B)
    h0, s0 = np.zeros((B, H)), np.zeros((B, H))
    reach_h, reach_s = lstm.gradient_reach(params, x, y_last)
    eps = 1e-6

    def grad(fn, z):
        out = np.zeros_like(z)
        for idx in np.ndindex(z.shape):
            e = np.zeros_like(z)
            e[idx] = eps
            out[idx] = (fn(z + e) - fn(z - e)) / (2 * eps)
        return out

    d_h0 = grad(lambda z: _last_loss(params, x, y_last, z, s0), h0)
    d_s0 = grad(lambda z: _last_loss(params, x, y_last, h0, z), s0)
    trace = lstm.forward(params, x)
    q_T, s_T = trace.q[-1], trace.s[-1]

    def loss_of_state(h_T):
        o = params["c"] + h_T @ params["V"].T
        o = o - o.max(axis=1, keepdims=True)
        return -(o[np.arange(B), y_last] - np.log(np.exp(o).sum(axis=1))).sum() / B

    d_hT = grad(loss_of_state, trace.h[-1])
    d_sT = grad(lambda z: loss_of_state(q_T * np.tanh(z)), s_T)
    assert abs(reach_h[0] - np.linalg.norm(d_h0) / np.linalg.norm(d_hT)) <= 1e-6 * reach_h[0]
    assert abs(reach_s[0] - np.linalg.norm(d_s0) / np.linalg.norm(d_sT)) <= 1e-6 * reach_s[0]
    assert reach_h[-1] == reach_s[-1] == 1.0


def test_cell_path_only_is_the_product_of_the_forget_gates():
    rng = np.random.default_rng(42)
    T, B, D, H, K = 6, 2, 3, 4, 3
    params = lstm.init_params(D, H, K, rng=rng)
    x = rng.standard_normal((T, B, D))
    y_last = rng.integers(0, K, B)
    _, only = lstm.gradient_reach(params, x, y_last, cell_path_only=True)
    _, full = lstm.gradient_reach(params, x, y_last)
    trace = lstm.forward(params, x)
    o = params["c"] + trace.h[-1] @ params["V"].T
    p = np.exp(o - o.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(B), y_last] -= 1
    delta = (p @ params["V"] / B) * trace.q[-1] * (1 - np.tanh(trace.s[-1]) ** 2)
    for t in range(1, T + 1):
        carried = delta * np.prod(trace.f[t:], axis=0)          # f^(t+1) ... f^(T)
        assert abs(only[t] - np.linalg.norm(carried) / np.linalg.norm(delta)) <= 1e-12 * only[t]
    assert np.max(np.abs(full[1:T] - only[1:T]) / only[1:T]) > 1e-3     # the path through h matters


def test_reach_by_forget_bias_changes_only_the_bias():
    out = lstm.reach_by_forget_bias([0.0, 2.0], [3], T=6, B=2, D=2, H=3, K=2)
    assert out["h"].shape == out["s"].shape == (2, 1, 7)
    rng = np.random.default_rng([14, 3])
    params = lstm.init_params(2, 3, 2, rng=rng, forget_bias=2.0)
    x = rng.standard_normal((6, 2, 2))
    y_last = rng.integers(0, 2, 2)
    h, s = lstm.gradient_reach(params, x, y_last)
    np.testing.assert_array_equal(out["h"][1, 0], h)
    np.testing.assert_array_equal(out["s"][1, 0], s)
    assert not np.allclose(out["s"][0, 0, :6], out["s"][1, 0, :6])


def test_plot_reach_draws_two_panels():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = lstm.reach_by_forget_bias([0.0, 1.0], [0, 1], T=5, B=2, D=2, H=3, K=2)
    fig = lstm.plot_reach([0.0, 1.0], out, out)
    assert len(fig.axes) == 2 and len(fig.axes[1].lines) == 2 * (2 + 1 + 1)
    plt.close(fig)
