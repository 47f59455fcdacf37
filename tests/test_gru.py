"""The GRU (bptt_lib.gru, bptt_lib.derive.gru): derivation, generated kernels, gradients, API.

Tolerances:
- complex step (eps = 1e-30) through an independent per-example loop written in this file from
  the equations: exact to round-off, so 1e-9 relative (largest entry error over the largest
  entry, bptt_lib.gradcheck.relative_error) leaves a margin of about 1e5 over float64 round-off,
  while any wrong term changes a gradient by order one;
- central differences with step 1e-6 on the library's own loss: truncation error about
  eps^2 |L'''| and round-off about 1e-16 |L| / eps, so each entry is within 1e-7 |L| (in units
  of the loss) of the analytic gradient, with a margin of about 100;
- the generated kernels against their SymPy expressions evaluated entry by entry: the same
  formula evaluated twice in float64, rtol 1e-12;
- the same algorithm over other block lengths or through another entry point: 1e-12 relative.
"""

import warnings

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bptt_lib import bptt, gradcheck, gru, models
from bptt_lib.codegen import source_of
from bptt_lib.derive import gru as derive
from bptt_lib.derive.rnn_step import B as B_sym
from bptt_lib.derive.rnn_step import D as D_sym
from bptt_lib.derive.rnn_step import H as H_sym

CONVENTIONS = [(r, u) for r in derive.RESETS for u in derive.UPDATES]
CS_RTOL = 1e-9
FD_EPS = 1e-6
FD_BOUND = 1e-7          # per entry, in units of |L|
RTOL = 1e-12


def problem(seed=0, T=5, B=3, D=2, H=4, K=3, state=True):
    """GRU parameters with nonzero biases, inputs, targets and an initial state."""
    rng = np.random.default_rng(seed)
    params = gru.init_params(D, H, K, rng=rng)
    for key in params:
        if key.startswith("b_") or key == "c":
            params[key] = 0.3 * rng.standard_normal(params[key].shape)
    x = rng.standard_normal((T, B, D))
    y = rng.integers(0, K, size=(T, B))
    state0 = 0.5 * rng.standard_normal((B, H)) if state else None
    return params, x, y, state0


def rel(a, b):
    diff, ref = np.linalg.norm(np.asarray(a) - np.asarray(b)), np.linalg.norm(np.asarray(b))
    return 0.0 if diff == 0 else diff / ref


# --- an independent implementation: one example at a time, column vectors, from the equations ----

def loop_loss(p, x, y, state0, reset="before", update="previous"):
    """The loss, written from the GRU's equations one example and one step at a time (complex-safe)."""
    T, B, _ = x.shape
    H = p["W_z"].shape[0]
    total = 0.0
    for b in range(B):
        h = np.zeros(H, dtype=complex) if state0 is None else np.asarray(state0[b], dtype=complex)
        for t in range(T):
            xt = x[t, b]
            z = 1 / (1 + np.exp(-(p["b_z"] + p["W_z"] @ h + p["U_z"] @ xt)))
            r = 1 / (1 + np.exp(-(p["b_r"] + p["W_r"] @ h + p["U_r"] @ xt)))
            if reset == "before":
                cand = np.tanh(p["b_h"] + p["W_h"] @ (r * h) + p["U_h"] @ xt)
            else:
                cand = np.tanh(p["b_h"] + r * (p["W_h"] @ h + p.get("b_hn", 0)) + p["U_h"] @ xt)
            h = z * h + (1 - z) * cand if update == "previous" else (1 - z) * h + z * cand
            o = p["c"] + p["V"] @ h
            shift = o - o[np.argmax(o.real)]
            total = total - (shift[y[t, b]] - np.log(np.exp(shift).sum()))
    return total / B


@pytest.mark.parametrize("reset,update", CONVENTIONS)
def test_gradients_equal_complex_step_of_an_independent_loop(reset, update):
    params, x, y, state0 = problem(seed=1)
    value, grads = gru.loss_and_grads(params, x, y, state0, reset=reset, update=update)
    assert value == pytest.approx(loop_loss(params, x, y, state0, reset, update).real, rel=1e-12)
    numeric = gradcheck.complex_step(lambda p: loop_loss(p, x, y, state0, reset, update), params)
    errors = gradcheck.compare(grads, numeric)
    assert max(errors.values()) < CS_RTOL, errors


def test_gradients_equal_central_differences():
    params, x, y, state0 = problem(seed=2, T=4, B=2, D=2, H=3, K=3)
    value, grads = gru.loss_and_grads(params, x, y, state0)
    numeric = gradcheck.central_difference(lambda p: gru.loss(p, x, y, state0).real, params, eps=FD_EPS)
    for key in grads:
        assert np.max(np.abs(grads[key] - numeric[key])) < FD_BOUND * abs(value), key


@pytest.mark.parametrize("reset,update", CONVENTIONS)
def test_loss_and_forward_agree_with_the_loop(reset, update):
    params, x, y, state0 = problem(seed=3)
    trace = gru.forward(params, x, state0, reset=reset, update=update)
    T, B, H = trace.z.shape
    assert trace.h.shape == (T + 1, B, H) and trace.yhat.shape == (T, B, 3) and trace.states.shape == (T + 1, B, 5 * H)
    np.testing.assert_array_equal(trace.h[0], state0)
    np.testing.assert_allclose(trace.yhat.sum(axis=-1), 1.0, rtol=1e-12)
    # the state is the interpolation of the stored gate and candidate
    expected = (trace.z * trace.h[:-1] + (1 - trace.z) * trace.h_tilde if update == "previous"
                else (1 - trace.z) * trace.h[:-1] + trace.z * trace.h_tilde)
    np.testing.assert_allclose(trace.h[1:], expected, rtol=1e-12, atol=1e-15)
    value = gru.loss(params, x, y, state0, reset=reset, update=update)
    assert value == pytest.approx(loop_loss(params, x, y, state0, reset, update).real, rel=1e-12)


def test_the_conventions_give_different_gradients():
    params, x, y, state0 = problem(seed=4)
    results = {c: gru.loss_and_grads(params, x, y, state0, reset=c[0], update=c[1])[1] for c in CONVENTIONS}
    for i, a in enumerate(CONVENTIONS):
        for b in CONVENTIONS[i + 1:]:
            worst = max(rel(results[a][k], results[b][k]) for k in ("W_z", "W_r", "W_h", "U_h"))
            assert worst > 1e-2, (a, b, worst)


# --- state0, defaults, init -----------------------------------------------------------------------

def test_state0_is_honoured_and_zero_by_default():
    params, x, y, state0 = problem(seed=5)
    with_state = gru.loss_and_grads(params, x, y, state0)
    default = gru.loss_and_grads(params, x, y)
    zeros = gru.loss_and_grads(params, x, y, np.zeros_like(state0))
    assert default[0] == zeros[0]
    for key in default[1]:
        np.testing.assert_array_equal(default[1][key], zeros[1][key])
    assert abs(with_state[0] - default[0]) > 1e-3
    assert with_state[0] == pytest.approx(loop_loss(params, x, y, state0).real, rel=1e-12)
    assert default[0] == pytest.approx(loop_loss(params, x, y, None).real, rel=1e-12)


def test_init_params_keys_shapes_and_scale():
    params = gru.init_params(400, 300, 7, rng=np.random.default_rng(0))
    assert list(params) == list(gru.PARAM_SHAPES) == ["W_z", "U_z", "b_z", "W_r", "U_r", "b_r",
                                                      "W_h", "U_h", "b_h", "V", "c"]
    sizes = {"D": 400, "H": 300, "K": 7}
    for key, dims in gru.PARAM_SHAPES.items():
        assert params[key].shape == tuple(sizes[d] for d in dims), key
        assert params[key].dtype == np.float64
        if len(dims) == 1:
            assert not params[key].any(), key            # biases start at zero
        else:                                            # weights: std 1/sqrt(fan_in), within 3 %
            assert params[key].std() == pytest.approx(1 / np.sqrt(sizes[dims[1]]), rel=0.03), key
    again = gru.init_params(400, 300, 7, rng=np.random.default_rng(0))
    assert all(np.array_equal(params[k], again[k]) for k in params)
    with pytest.raises(TypeError, match="rng"):
        gru.init_params(2, 3, 4, rng=0)
    with pytest.raises(ValueError, match="n_hidden"):
        gru.init_params(2, 0, 4, rng=np.random.default_rng(0))


# --- bad inputs --------------------------------------------------------------------------------

def test_bad_inputs_raise_naming_the_argument():
    params, x, y, state0 = problem(seed=6)
    missing = {k: v for k, v in params.items() if k != "W_r"}
    with pytest.raises(KeyError, match="W_r"):
        gru.loss_and_grads(missing, x, y)
    wrong = dict(params, U_h=params["U_h"][:, :1])
    with pytest.raises(ValueError, match=r'params\["U_h"\]'):
        gru.loss_and_grads(wrong, x, y)
    with pytest.raises(TypeError, match=r'params\["W_z"\]'):
        gru.loss_and_grads(dict(params, W_z=params["W_z"] + 0j), x, y)
    with pytest.raises(ValueError, match="x"):
        gru.loss_and_grads(params, x[0], y)
    with pytest.raises(ValueError, match="y"):
        gru.loss_and_grads(params, x, y + 10)
    with pytest.raises(ValueError, match="y"):
        gru.loss_and_grads(params, x, y[:-1])
    with pytest.raises(ValueError, match="state0"):
        gru.loss_and_grads(params, x, y, state0[:, :-1])
    with pytest.raises(ValueError, match="state0"):
        gru.loss_and_grads(params, x, y, np.full_like(state0, np.nan))
    bad_x = x.copy()
    bad_x[1, 0, 0] = np.inf
    with pytest.raises(ValueError, match="x"):
        gru.loss_and_grads(params, bad_x, y)
    with pytest.raises(ValueError, match="reset"):
        gru.loss_and_grads(params, x, y, reset="middle")
    with pytest.raises(ValueError, match="update"):
        gru.loss_and_grads(params, x, y, update="z")


def test_non_finite_results_raise_floating_point_error():
    params, x, y, _ = problem(seed=7)
    with pytest.raises(FloatingPointError, match="loss_and_grads"):
        gru.loss_and_grads(dict(params, V=params["V"] * 1e308), x, y)


# --- the derivation ----------------------------------------------------------------------------

def test_elementwise_rules_are_proven_against_the_definitions():
    assert derive.prove_rules() == {"update/previous": True, "update/candidate": True, "reset": True}
    rules = derive.update_rules("previous")
    g, z, hp, ht = derive.g, derive.z, derive.h_prev, derive.h_tilde
    assert sp.expand(rules["a_z"] - g * z * (1 - z) * (hp - ht)) == 0
    assert sp.expand(rules["a_h"] - g * (1 - z) * (1 - ht**2)) == 0
    assert sp.expand(rules["h_prev"] - g * z) == 0


def test_linear_vjps_are_proven_entry_by_entry():
    assert derive.prove_linear_vjps(2, 2, 2)


@pytest.mark.parametrize("reset,update", CONVENTIONS)
def test_the_assembled_backward_step_equals_sympys_derivative(reset, update):
    result = derive.prove_step(reset, update, n_in=1, n_hidden=2)
    assert all(result.values()), result


def test_a_wrong_rule_fails_the_step_proof(monkeypatch):
    wrong = dict(derive.reset_rules())
    wrong["v"] = derive.g                                 # forgets the factor r
    monkeypatch.setattr(derive, "reset_rules", lambda: wrong)
    result = derive.prove_step("before", "previous", n_in=1, n_hidden=2)
    assert not result["h_prev"] and result["W_z"]


@pytest.mark.parametrize("reset,update", CONVENTIONS)
def test_state_jacobian_entry_is_proven_for_symbolic_size(reset, update):
    assert derive.prove_state_jacobian_entry(reset, update)
    derived, compact = derive.state_jacobian(reset, update)
    assert not derive.indexed_difference_is_zero(derived - compact * sp.Rational(1, 2))


# --- the generated kernels ---------------------------------------------------------------------

SIZES = {B_sym: 3, D_sym: 2, H_sym: 2}


def _values(expr, rng):
    """Random values for every matrix symbol of ``expr`` at :data:`SIZES` (ones for ``one_B``)."""
    values = {}
    for m in expr.atoms(sp.MatrixSymbol):
        shape = tuple(int(n) for n in m.subs(SIZES).shape)
        values[m.name] = np.ones(shape) if m.name == "one_B" else rng.standard_normal(shape)
    return values


def _evaluate(expr, values):
    """``expr`` at :data:`SIZES`, entry by entry, from SymPy (no NumPy printing involved)."""
    explicit = expr.subs(SIZES).as_explicit()
    subs = {}
    for e in explicit.atoms(sp.matrices.expressions.matexpr.MatrixElement):
        parent, i, j = e.args
        subs[e] = values[parent.name][int(i), int(j)]
    return np.array(explicit.subs(subs).evalf(), dtype=float)


def test_every_kernel_is_generated_from_an_expression():
    k = gru.gru_kernels()
    assert k is gru.gru_kernels()
    for name in gru.KERNEL_NAMES:
        fn = getattr(k, name)
        assert isinstance(fn.expr, (sp.Basic, tuple)), name
        assert source_of(fn).startswith(f"def {name}("), name
        assert "einsum" not in source_of(fn) and "diag" not in source_of(fn), name


def test_matrix_kernels_equal_their_expressions_at_explicit_sizes(rng):
    k = gru.gru_kernels()
    for name in gru.KERNEL_NAMES:
        fn = getattr(k, name)
        exprs = fn.expr if isinstance(fn.expr, tuple) else (fn.expr,)
        if not isinstance(exprs[0], sp.MatrixExpr):
            continue
        values = {}
        for e in exprs:
            values.update(_values(e, rng))
        args = [values[a.name] for a in fn.args]
        got = fn(*args)
        got = got if isinstance(got, tuple) else (got,)
        for g_, e in zip(got, exprs):
            np.testing.assert_allclose(g_, _evaluate(e, values), rtol=RTOL, atol=1e-14, err_msg=name)


def test_elementwise_kernels_equal_their_expressions(rng):
    k = gru.gru_kernels()
    for name in gru.KERNEL_NAMES:
        fn = getattr(k, name)
        if isinstance(fn.expr, (tuple, sp.MatrixExpr)):
            continue
        args = [rng.standard_normal((4, 5)) for _ in fn.args]
        reference = sp.lambdify(list(fn.args), fn.expr, "numpy")(*args)
        out = np.empty((4, 5))
        tmp = [np.empty((4, 5)) for _ in range(fn.n_tmp)]
        fn(*args, out=out, tmp=tmp)
        np.testing.assert_allclose(out, reference, rtol=RTOL, atol=1e-15, err_msg=name)


def test_elementwise_rules_equal_the_derivatives_of_the_definitions(rng):
    """The kernels of the backward step against derivatives taken numerically from sigma and tanh."""
    k = gru.gru_kernels()
    a_z, a_h, hp, g = (rng.standard_normal((3, 4)) for _ in range(4))
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    z, ht = sig(a_z), np.tanh(a_h)
    out = np.empty((3, 4))
    tmp = [np.empty((3, 4))]
    k.update_vjp_previous_a_z(g, z, hp, ht, out=out, tmp=tmp)
    eps = 1e-30
    numeric = g * np.imag(sig(a_z + 1j * eps) * hp + (1 - sig(a_z + 1j * eps)) * ht) / eps
    np.testing.assert_allclose(out, numeric, rtol=1e-12)
    k.update_vjp_previous_a_h(g, z, hp, ht, out=out, tmp=tmp)
    numeric = g * np.imag((1 - z) * np.tanh(a_h + 1j * eps)) / eps
    np.testing.assert_allclose(out, numeric, rtol=1e-12)


def test_the_time_loops_call_the_generated_kernels(monkeypatch):
    params, x, y, state0 = problem(seed=8, T=6, B=2, D=3, H=4, K=3)
    _, reference = gru.loss_and_grads(params, x, y, state0)
    k = gru.gru_kernels()
    calls = {}

    def counting(name, original):
        def spy(*args, **kwargs):
            calls[name] = calls.get(name, 0) + 1
            return original(*args, **kwargs)
        spy.n_tmp = getattr(original, "n_tmp", 0)
        return spy

    for name in gru.KERNEL_NAMES:
        monkeypatch.setattr(k, name, counting(name, getattr(k, name)))
    _, grads = gru.loss_and_grads(params, x, y, state0)
    T = 6
    assert calls == {"input_projection": 1, "gate_preactivation": 2 * T, "candidate_preactivation": T,
                     "interpolate_previous": T, "update_vjp_previous_a_z": T, "update_vjp_previous_a_h": T,
                     "update_vjp_previous_h_prev": T, "candidate_vjp_input": T, "reset_vjp_gate": T,
                     "reset_vjp_input": T, "state_vjp_before": T, "gates_vjp_weights": 1,
                     "candidate_vjp_weights": 1, "input_vjp_params": 1}
    for key in grads:
        np.testing.assert_array_equal(grads[key], reference[key])
    calls.clear()
    gru.loss_and_grads(params, x, y, state0, reset="after", update="candidate")
    assert calls["reset_after_product"] == T and calls["candidate_after"] == T and calls["state_vjp_after"] == T
    assert calls["update_vjp_candidate_a_z"] == T and "candidate_preactivation" not in calls
    # a corrupted kernel changes the gradients: the numbers come from these kernels
    original = k.candidate_vjp_input
    monkeypatch.setattr(k, "candidate_vjp_input", lambda G_h, W_h, out=None: 0 * original(G_h, W_h, out=out))
    _, corrupted = gru.loss_and_grads(params, x, y, state0)
    assert rel(corrupted["W_r"], reference["W_r"]) > 1e-3


# --- the recurrent core and the sequence algorithms ---------------------------------------------

def test_full_grads_equals_loss_and_grads():
    params, x, y, state0 = problem(seed=9)
    for reset, update in CONVENTIONS:
        value, grads = gru.loss_and_grads(params, x, y, state0, reset=reset, update=update)
        m = "gru" if (reset, update) == ("before", "previous") else gru.model(reset, update)
        full_value, full = models.full_grads(params, x, y, model=m, state0=state0)
        assert full_value == value
        assert list(full) == list(gru.PARAM_SHAPES)
        for key in grads:
            np.testing.assert_array_equal(full[key], grads[key])
    assert models.get_model("gru") is gru.MODEL


@pytest.mark.parametrize("rows", [1, 2, 5, 7])
def test_blocks_of_any_length_give_the_same_gradients(rows, monkeypatch):
    params, x, y, state0 = problem(seed=10, T=7, B=1)
    value, reference = gru.loss_and_grads(params, x, y, state0)
    monkeypatch.setattr(bptt, "BLOCK_ROWS", rows)
    other_value, grads = gru.loss_and_grads(params, x, y, state0, reset="before")
    assert other_value == pytest.approx(value, rel=RTOL)
    for key in grads:
        assert rel(grads[key], reference[key]) < RTOL, key


def test_backpropagation_over_windows_equals_full_bptt():
    """Two windows joined by dh_next (what checkpointing does) give the full gradient."""
    params, x, y, state0 = problem(seed=11, T=8)
    value, reference = gru.loss_and_grads(params, x, y, state0)
    p, xx, yy, h0 = gru.MODEL.prepare(params, x, y, state0)
    cell = gru.MODEL.cell
    h = bptt.forward(cell, p, xx, h0)
    grads = {key: np.zeros_like(v) for key, v in p.items()}
    late, grads, dh = bptt.bptt(cell, p, xx[4:], yy[4:], h=h[4:], grads=grads)
    early, grads, _ = bptt.bptt(cell, p, xx[:4], yy[:4], h=h[:5], grads=grads, dh_next=np.array(dh))
    assert late + early == pytest.approx(value, rel=RTOL)
    grads = gru.unpack(grads)
    for key in grads:
        assert rel(grads[key], reference[key]) < RTOL, key


def _part_iv(module):
    try:
        return __import__(f"bptt_lib.{module}", fromlist=[module])
    except ModuleNotFoundError:
        pytest.skip(f"bptt_lib.{module} (Part IV) is not in this checkout yet")


def test_tbptt_with_k_equal_T_is_full_bptt_and_shorter_k_differs():
    truncation = _part_iv("truncation")
    params, x, y, state0 = problem(seed=12, T=9)
    value, full = gru.loss_and_grads(params, x, y, state0)
    t_value, tbptt = truncation.tbptt_grads(params, x, y, 9, 9, model="gru", state0=state0)
    assert t_value == pytest.approx(value, rel=RTOL)
    for key in full:
        assert rel(tbptt[key], full[key]) < RTOL, key
    _, short = truncation.tbptt_grads(params, x, y, 3, 3, model="gru", state0=state0)
    assert max(rel(short[k], full[k]) for k in ("W_z", "W_r", "W_h")) > 1e-3


def test_checkpointed_grads_equal_full_bptt():
    checkpointing = _part_iv("checkpointing")
    params, x, y, state0 = problem(seed=13, T=10)
    value, full = gru.loss_and_grads(params, x, y, state0)
    for every in (1, 3, 4, 10):
        c_value, grads = checkpointing.checkpointed_grads(params, x, y, every, model="gru", state0=state0)
        assert c_value == pytest.approx(value, rel=RTOL)
        for key in full:
            assert rel(grads[key], full[key]) < RTOL, (every, key)


def test_artbp_without_cuts_is_full_bptt():
    artbp = _part_iv("artbp")
    params, x, y, state0 = problem(seed=14, T=6)
    value, full = gru.loss_and_grads(params, x, y, state0)
    a_value, grads = artbp.artbp_grads(params, x, y, 0.0, rng=np.random.default_rng(0), model="gru", state0=state0)
    assert a_value == pytest.approx(value, rel=RTOL)
    for key in full:
        assert rel(grads[key], full[key]) < RTOL, key


def test_generate_in_place_prints_any_sum_of_products(rng):
    a, b, c = sp.symbols("a b c", real=True)
    for expr in (2 * a - b * c + 3, -(a * b), a**2 - 1, 1 - a * (b - c) ** 2, a - b - c, -a - 1, a * b * c * (1 - c)):
        fn = gru.generate_in_place("k", [a, b, c], expr)
        args = [rng.standard_normal((3, 4)) for _ in range(3)]
        out = np.full((3, 4), np.nan)
        fn(*args, out=out, tmp=[np.full((3, 4), np.nan) for _ in range(fn.n_tmp)])
        np.testing.assert_allclose(out, sp.lambdify([a, b, c], expr, "numpy")(*args), rtol=RTOL, err_msg=str(expr))
        assert "out=out" in source_of(fn) or "out[...]" in source_of(fn) or "copyto(out" in source_of(fn)


def test_records_are_read_part_by_part():
    params, x, y, state0 = problem(seed=15)
    trace = gru.forward(params, x, state0)
    cell = gru.MODEL.cell
    np.testing.assert_array_equal(cell.hidden(trace.states), trace.h)
    np.testing.assert_array_equal(gru.slots(trace.states[3])[1], trace.z[2])
    record = gru.initial_record(state0)
    np.testing.assert_array_equal(cell.hidden(record), state0)
    assert not gru.slots(record)[1:].any()
    full = cell.state_gradient(trace.h[1:])
    np.testing.assert_array_equal(cell.hidden(full), trace.h[1:])
    assert full.shape == trace.states[1:].shape and np.count_nonzero(full) == np.count_nonzero(trace.h[1:])
    with pytest.raises(ValueError):
        gru.slots(np.asfortranarray(np.zeros((4, 5 * 3))), view=True)   # no view of the parts to write through


def test_the_step_proof_at_larger_explicit_sizes():
    result = derive.prove_step("before", "previous", n_in=2, n_hidden=3)
    assert all(result.values()), result


def test_trace_by_name_and_saturated_gates_without_warnings():
    params, x, y, state0 = problem(seed=16)
    trace = gru.forward(params, x, state0)
    assert trace["yhat"] is trace.yhat and trace["h"] is trace.h
    with pytest.raises(KeyError, match="s"):
        trace["s"]
    big = dict(params, b_z=np.full_like(params["b_z"], -800.0), b_r=np.full_like(params["b_r"], 800.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        saturated = gru.forward(big, x, state0)
        value, grads = gru.loss_and_grads(big, x, y, state0)
    assert not saturated.z.any() and (saturated.r == 1).all()
    assert np.isfinite(value) and all(np.isfinite(g).all() for g in grads.values())
    assert not grads["b_z"].any()          # sigma'(-800) = 0: no gradient reaches the saturated gate


def test_the_gradient_of_the_initial_state_is_a_record_read_by_hidden():
    """bptt's gradient of the initial record, through hidden(), against complex step of the loop in state0."""
    params, x, y, state0 = problem(seed=17)
    p, xx, yy, h0 = gru.MODEL.prepare(params, x, y, state0)
    cell = gru.MODEL.cell
    grad_h = np.zeros((len(x), *h0.shape))
    _, _, dh0 = bptt.bptt(cell, p, xx, yy, h0, grad_h=grad_h)
    assert dh0.shape == h0.shape and np.count_nonzero(dh0) == np.count_nonzero(cell.hidden(dh0))
    numeric = gradcheck.complex_step(lambda s: loop_loss(params, x, y, s["state0"]), {"state0": state0})
    assert gradcheck.relative_error(cell.hidden(dh0), numeric["state0"]) < CS_RTOL
    # grad_h[t - 1] is the total gradient of h^(t): the last one is V^T dL/do^(T) alone
    trace = gru.forward(params, x, state0)
    onehot = np.eye(3)[y[-1]]
    expected_last = (trace.yhat[-1] - onehot) @ params["V"] / x.shape[1]
    np.testing.assert_allclose(cell.hidden(grad_h)[-1], expected_last, rtol=1e-12, atol=1e-15)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.tuples(st.integers(0, 2**32 - 1), st.integers(1, 5), st.integers(1, 3), st.integers(1, 3),
                 st.integers(1, 4), st.integers(1, 4), st.sampled_from(CONVENTIONS)))
def test_any_small_shape_matches_the_loop(case):
    """Every size from 1 up (K = 1 included: no gradient at all), every convention."""
    seed, T, B, D, H, K, (reset, update) = case
    params, x, y, state0 = problem(seed, T, B, D, H, K)
    value, grads = gru.loss_and_grads(params, x, y, state0, reset=reset, update=update)
    assert value == pytest.approx(loop_loss(params, x, y, state0, reset, update).real, rel=1e-12, abs=1e-12)
    numeric = gradcheck.complex_step(lambda p: loop_loss(p, x, y, state0, reset, update), params)
    assert max(gradcheck.compare(grads, numeric).values()) < CS_RTOL


@pytest.mark.parametrize("update", derive.UPDATES)
def test_pytorchs_bias_inside_the_reset_product(update):
    """reset="after" with b_hn: r * (W_h h + b_hn), as nn.GRU; its gradient comes back under "b_hn"."""
    params, x, y, state0 = problem(seed=18)
    params["b_hn"] = 0.4 * np.random.default_rng(18).standard_normal(params["b_h"].shape)
    value, grads = gru.loss_and_grads(params, x, y, state0, reset="after", update=update)
    assert list(grads) == [*gru.PARAM_SHAPES, "b_hn"]
    assert value == pytest.approx(loop_loss(params, x, y, state0, "after", update).real, rel=1e-12)
    numeric = gradcheck.complex_step(lambda p: loop_loss(p, x, y, state0, "after", update), params)
    errors = gradcheck.compare(grads, numeric)
    assert max(errors.values()) < CS_RTOL, errors
    assert np.abs(grads["b_hn"]).max() > 1e-3
    full_value, full = models.full_grads(params, x, y, model=gru.model("after", update), state0=state0)
    assert full_value == value and all(np.array_equal(full[k], grads[k]) for k in grads)
    with pytest.raises(ValueError, match="b_hn"):
        gru.loss_and_grads(params, x, y, state0, reset="before", update=update)
    with pytest.raises(ValueError, match=r'params\["b_hn"\]'):
        gru.loss_and_grads(dict(params, b_hn=params["b_hn"][:-1]), x, y, reset="after")


# --- chapter 15's helpers: the step as a function, its Jacobian and Hessian, the reparametrisation ----

def _records(params, x, h0, reset, update):
    """The cell, packed parameters and the records before and after the first step."""
    trace = gru.forward(params, x, h0, reset=reset, update=update)
    return gru.gru_cell(reset, update), gru.pack(params), trace.states[0], trace.states[1]


@pytest.mark.parametrize("reset,update", CONVENTIONS)
def test_step_jacobian_transposed_equals_the_generated_backward_step(reset, update):
    """g^T dh/dh_prev from the complex step equals the library's step_vjp (generated kernels)."""
    params, x, _, h0 = problem(seed=30, T=1, B=3, D=2, H=4)
    h1 = gru.step(params, h0, x[0], reset=reset, update=update)
    np.testing.assert_array_equal(h1, gru.forward(params, x, h0, reset=reset, update=update).h[1])
    jac = gru.step_jacobian(params, h0, x[0], reset=reset, update=update)
    g = np.random.default_rng(31).standard_normal(h0.shape)
    cell, packed, before, after = _records(params, x, h0, reset, update)
    _, dh_prev = cell.step_vjp(packed, before, after, cell.state_gradient(g))
    np.testing.assert_allclose(np.einsum("bi,bik->bk", g, jac), cell.hidden(dh_prev), rtol=1e-12, atol=1e-14)
    # and against central differences of the step (step 1e-6: error about 1e-10 here)
    for k in range(4):
        e = np.zeros_like(h0)
        e[:, k] = 1e-6
        column = (gru.step(params, h0 + e, x[0], reset=reset, update=update)
                  - gru.step(params, h0 - e, x[0], reset=reset, update=update)) / 2e-6
        np.testing.assert_allclose(jac[:, :, k], column, atol=1e-8)


@pytest.mark.parametrize("update", derive.UPDATES)
def test_without_recurrent_weights_the_jacobian_is_the_additive_part(update):
    params, x, _, h0 = problem(seed=32, T=1, H=5)
    params.update({key: np.zeros_like(params[key]) for key in ("W_z", "W_r", "W_h")})
    z = gru.forward(params, x, h0, update=update).z[0]
    keep = z if update == "previous" else 1 - z
    jac = gru.step_jacobian(params, h0, x[0], update=update)
    np.testing.assert_allclose(jac, keep[:, :, None] * np.eye(5), rtol=1e-12, atol=1e-15)
    params["W_h"] = np.eye(5)                        # a weight brings in the other terms
    assert np.abs(gru.step_jacobian(params, h0, x[0], update=update) - keep[:, :, None] * np.eye(5)).max() > 1e-2


@pytest.mark.parametrize("reset", derive.RESETS)
def test_negating_the_update_gate_swaps_the_update_conventions(reset):
    params, x, y, state0 = problem(seed=33)
    swapped = gru.negate_update_gate(params)
    assert set(swapped) == set(params)
    for key in params:
        expected = -params[key] if key in ("W_z", "U_z", "b_z") else params[key]
        np.testing.assert_array_equal(swapped[key], expected)
    value, grads = gru.loss_and_grads(params, x, y, state0, reset=reset, update="previous")
    value_s, grads_s = gru.loss_and_grads(swapped, x, y, state0, reset=reset, update="candidate")
    assert value_s == pytest.approx(value, rel=1e-13)
    np.testing.assert_allclose(gru.forward(swapped, x, state0, reset=reset, update="candidate").h,
                               gru.forward(params, x, state0, reset=reset, update="previous").h, rtol=0, atol=1e-13)
    for key in grads:
        sign = -1 if key in gru.GATE_KEYS["z"] else 1
        assert gradcheck.relative_error(sign * grads_s[key], grads[key]) < 1e-12, key
    # without the negation the other convention is another function
    assert abs(gru.loss(params, x, y, state0, reset=reset, update="candidate") - value) > 1e-3


def test_gradient_difference_is_the_relative_norm_over_the_chosen_keys():
    ref = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    other = {"a": np.array([3.0, 1.0]), "b": np.array([[4.0]])}
    assert gru.gradient_difference(other, ref) == pytest.approx(1 / 5, rel=1e-15)
    assert gru.gradient_difference(other, ref, ["b"]) == 0.0
    zero = {"a": np.zeros(2), "b": np.zeros((1, 1))}
    assert gru.gradient_difference(other, zero) == pytest.approx(np.sqrt(26))   # |other|, 9 + 1 + 16


def test_step_hessian_of_the_counterexample_and_the_rank_bound_of_reset_after():
    """The chapter's counterexample: Hessian I/4 at 0 (rank 5); a reset-after unit has rank <= 4."""
    H = 5
    shapes = gru.init_params(1, H, 2, rng=np.random.default_rng(0))
    example = {key: np.zeros_like(value) for key, value in shapes.items()}
    example["W_r"], example["W_h"] = np.eye(H), np.ones((H, H))
    hess = gru.step_hessian(example, np.zeros((1, H)), np.zeros((1, 1)), 0)
    np.testing.assert_allclose(hess[0], np.eye(H) / 4, atol=1e-7)
    # against SymPy at a nonzero state, for the first unit written out
    hs = sp.symbols(f"h1:{H + 1}", real=True)
    F1 = sp.Rational(1, 2) * hs[0] + sp.Rational(1, 2) * sp.tanh(sum(h / (1 + sp.exp(-h)) for h in hs))
    point = np.random.default_rng(1).uniform(-0.8, 0.8, size=H)
    exact = np.array(sp.hessian(F1, hs).subs(dict(zip(hs, point))).evalf(), dtype=float)
    np.testing.assert_allclose(gru.step_hessian(example, point[None], np.zeros((1, 1)), 0)[0], exact, atol=1e-7)
    rng = np.random.default_rng(2)
    params = gru.init_params(2, H, 2, rng=rng)
    params.update({key: 0.5 * rng.standard_normal(H) for key in ("b_z", "b_r", "b_h", "b_hn")})
    states, inputs = 0.5 * rng.standard_normal((2, H)), rng.standard_normal((2, 2))
    for unit in range(H):
        after = np.linalg.svd(gru.step_hessian(params, states, inputs, unit, reset="after"), compute_uv=False)
        assert after[:, -1].max() < 1e-8 and after[:, -2].min() > 1e-6, (unit, after)
    before = {key: value for key, value in params.items() if key != "b_hn"}
    full_rank = [np.linalg.svd(gru.step_hessian(before, states, inputs, unit), compute_uv=False)[:, -1].min()
                 for unit in range(H)]
    assert min(full_rank) > 1e-6, full_rank


def test_plot_gradient_pairs_draws_one_panel_per_comparison():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params, x, y, _ = problem(seed=34)
    _, book = gru.loss_and_grads(params, x, y)
    _, other = gru.loss_and_grads(params, x, y, update="candidate")
    fig = gru.plot_gradient_pairs(book, [("same", book, "itself"), ("other", other, "other GRU")])
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert len(ax.lines) == 4                      # three parts of the cell and the diagonal
        assert ax.get_ylabel().startswith("gradient entry")
    xs, ys = fig.axes[0].lines[0].get_data()
    np.testing.assert_array_equal(xs, ys)              # a gradient against itself: on the diagonal
    plt.close(fig)


def test_the_exercise_reference_equals_the_generated_backward_step():
    from bptt_lib.exercises import gru as exercise

    params, x, _, h0 = problem(seed=35, T=1, B=3, D=2, H=4)
    g = np.random.default_rng(36).standard_normal(h0.shape)
    result = exercise.reference_backward_step(g, h0, x[0], params)
    cell, packed, before, after = _records(params, x, h0, "before", "previous")
    da, dh_prev = cell.step_vjp(packed, before, after, cell.state_gradient(g))
    np.testing.assert_allclose(result["h_prev"], cell.hidden(dh_prev), rtol=1e-12, atol=1e-14)
    blocks = np.reshape(da, (3, 3, 4))                   # the three (B, H) blocks, one after the other in memory
    for i, key in enumerate(("a_z", "a_r", "a_h")):
        np.testing.assert_allclose(result[key], blocks[i], rtol=1e-12, atol=1e-14)
