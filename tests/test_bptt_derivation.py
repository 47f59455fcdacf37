"""Tests of the chapter *BPTT in vector form*: the componentwise derivation, the compact forms,
the order of the factors, and the numbers of ``rnn.backward``.

Tolerances:
- ``rnn.backward`` against the lambdified derivation: both evaluate the same sums in a different
  order in float64, so they agree to round-off; 1e-12 relative leaves a margin of ~1e3 over the
  observed ~1e-16 and is still far below any wrong formula (errors of order 1e-2 and more).
- complex step (eps = 1e-30): exact to round-off, 1e-9 relative.
- central differences (eps = 1e-6): truncation ~1e-12 plus round-off ~1e-10, so 1e-6 relative.
"""

import numpy as np
import pytest
import sympy as sp
from problems import rnn_problem
from sympy.matrices.expressions.diagonal import DiagMatrix

from bptt_lib import gradcheck, rnn
from bptt_lib import vector_bptt as vb
from bptt_lib.derive import bptt as dbptt
from bptt_lib.derive import rnn_step
from bptt_lib.exercises import verdict
from bptt_lib.exercises.vector_bptt import reference_grad_h, reference_output_grads

ALL = {name: True for name in ("o", "h", "c", "b", "V", "W", "U")}
THROUGH_RECURSION = {"o": True, "h": False, "c": True, "b": False, "V": True, "W": False, "U": False}


# --- the softmax Jacobian and the output gradient ------------------------------------------


@pytest.mark.parametrize("K", [2, 3, 4])
def test_softmax_jacobian(K):
    assert dbptt.prove_softmax_jacobian(K)


def test_nll_gradient_through_the_jacobian():
    assert dbptt.prove_nll_chain(3)
    grad_yhat, grad_o = dbptt.nll_gradient_by_jacobian(3, 1)
    p = sp.Matrix(grad_o) + sp.Matrix([0, 1, 0])
    assert grad_yhat[1] == -1 / p[1] and grad_yhat[0] == 0 == grad_yhat[2]


def test_onehot_form_of_the_loss():
    assert dbptt.prove_onehot_nll(2)
    assert dbptt.prove_onehot_nll(4)


def test_softmax_jacobian_columns_sum_to_zero():
    _, J = dbptt.softmax_jacobian(3)
    assert sp.simplify(sp.ones(1, 3) * J) == sp.zeros(1, 3)


# --- componentwise = compact ----------------------------------------------------------------


@pytest.mark.parametrize("size", [(1, 1, 2, 2), (2, 1, 2, 2), (3, 1, 2, 2), (2, 2, 2, 3), (2, 1, 3, 2)])
def test_componentwise_equals_compact(size):
    assert dbptt.prove(*size) == ALL


@pytest.mark.parametrize("size", [(2, 1, 2, 2), (3, 1, 2, 2), (2, 2, 2, 3)])
def test_diagonal_after_w_transpose_is_wrong(size):
    assert dbptt.prove(*size, order="diag_after") == THROUGH_RECURSION


def test_order_does_not_matter_for_one_hidden_unit():
    # With H = 1 the diagonal is a scalar, so both orders coincide: the error only shows for H > 1.
    assert dbptt.prove(2, 1, 1, 2, order="diag_after") == ALL
    assert dbptt.written_order(1).shape == (1, 1)


def test_written_order_is_undefined_for_more_than_one_hidden_unit():
    for H in (2, 3):
        with pytest.raises(sp.ShapeError):
            dbptt.written_order(H)
    W, g, h = np.ones((2, 2)), np.ones((2, 1)), np.ones(2)
    with pytest.raises(ValueError):
        W.T @ g @ np.diag(1 - h**2)


def test_repairs_of_the_written_order_agree_and_are_wrong():
    repairs = dbptt.written_order_repairs(3)
    assert sp.expand(repairs["transpose the column"] - repairs["move the diagonal left"]) == sp.zeros(3, 1)
    assert sp.expand(repairs["move the diagonal left"] - repairs["correct"]) != sp.zeros(3, 1)


def test_readable_form_shows_the_recursion():
    net, derived = dbptt.derivation(2, 1, 2, 2)
    V, W = net.V, net.W

    def eps(t):
        return sp.Matrix(2, 1, lambda k, _: sp.Symbol(rf"\varepsilon^{{({t})}}_{{{k + 1}}}", real=True))

    g1, g2 = eps(1), eps(2)
    d2 = sp.Matrix(2, 1, lambda i, _: sp.Symbol(rf"\Delta^{{(2)}}_{{{i + 1}}}", real=True))
    expected = V.T * g1 + W.T * sp.diag(*d2) * V.T * g2
    for i in range(2):
        assert sp.expand(dbptt.readable(net, derived["h"][0][i]) - expected[i]) == 0


def test_derivation_validation():
    with pytest.raises(ValueError, match="T must be an int from 1 to 3"):
        dbptt.unrolled_rnn(T=4)
    with pytest.raises(ValueError, match="n_out"):
        dbptt.unrolled_rnn(2, 1, 2, 1)
    with pytest.raises(ValueError, match="order must be one of"):
        dbptt.compact_gradients(dbptt.unrolled_rnn(), order="sideways")
    with pytest.raises(TypeError, match="unrolled_rnn"):
        dbptt.compact_gradients({"W": 1})
    with pytest.raises(ValueError, match="target"):
        dbptt.nll_gradient_by_jacobian(3, 3)


# --- the inductive step of the theorem, for symbolic sizes ---------------------------------


def test_inductive_step_is_proven_for_symbolic_sizes():
    assert rnn_step.prove_bptt_inductive_step() == {"tanh": True, "affine": True, "step": True, "entry": True}


def test_symbolic_inductive_step_equals_the_compact_form_and_not_the_wrong_order():
    step = rnn_step.bptt_inductive_step()
    s = step["symbols"]
    H = s.sizes.H
    assert sp.simplify(step["derived"] - step["compact"]) == sp.ZeroMatrix(H, 1)
    wrong = DiagMatrix(s.d) * s.W.T * s.g + s.V.T * s.eps
    assert sp.simplify(step["derived"] - wrong) != sp.ZeroMatrix(H, 1)
    dropped_output = s.W.T * DiagMatrix(s.d) * s.g
    assert sp.simplify(step["derived"] - dropped_output) != sp.ZeroMatrix(H, 1)


def test_entry_of_the_step_rejects_the_wrong_order():
    derived, compact = rnn_step.bptt_step_entry()
    assert rnn_step._is_zero_indexed(derived - compact)
    # The same entry with the diagonal applied after W^T: the factor 1 - h_i^2 of the row i.
    (entry, cond), _ = compact.args
    i, j = sp.symbols("i j", integer=True)
    squared = [f for f in sp.preorder_traversal(entry) if isinstance(f, sp.Pow) and f.base.func == sp.tanh]
    assert squared, "the compact entry holds 1 - tanh(...)**2"
    wrong = entry.xreplace({squared[0]: squared[0].xreplace({j: i})})
    assert not rnn_step._is_zero_indexed(derived - sp.Piecewise((wrong, cond), (0, True)))


@pytest.mark.parametrize(("H", "D", "K"), [(1, 1, 2), (2, 1, 2), (3, 2, 2)])
def test_symbolic_step_agrees_with_the_explicit_derivative(H, D, K):
    # At explicit sizes, differentiate eps^T (c + V h) + g^T tanh(b + W h + U x) entry by entry
    # (the chain rule's linearisation of L_t) and compare with the symbolic-size step.
    step = rnn_step.bptt_inductive_step()
    s = step["symbols"]
    sizes = {s.sizes.H: H, s.sizes.D: D, s.sizes.K: K}
    names = ("h", "W", "U", "x", "b", "V", "c", "g", "eps", "d")
    M = {name: getattr(s, name).subs(sizes).as_explicit() for name in names}
    a = M["b"] + M["W"] * M["h"] + M["U"] * M["x"]
    scalar = (M["eps"].T * (M["c"] + M["V"] * M["h"]))[0, 0] + (M["g"].T * a.applyfunc(sp.tanh))[0, 0]
    explicit = M["h"].applyfunc(lambda entry: sp.diff(scalar, entry))
    from_symbolic = step["derived"].subs(sizes).as_explicit()
    from_symbolic = from_symbolic.xreplace({M["d"][r, 0]: 1 - sp.tanh(a[r, 0]) ** 2 for r in range(H)})
    assert sp.simplify(explicit - from_symbolic) == sp.zeros(H, 1)


def test_tanh_vjp_entry_is_diag_times_g():
    derived, expected = rnn_step.tanh_vjp_entry()
    assert rnn_step._is_zero_indexed(derived - expected)
    assert not rnn_step._is_zero_indexed(derived - 2 * expected)


# --- numbers: rnn.backward against the lambdified derivation ----------------------------------


def make_problem(seed, T, B, D, H, K, scale=1.0):
    return rnn_problem(seed, T, B, D, H, K, scale=scale, bias_scale=0.3)


@pytest.mark.parametrize(("form", "size"), [
    ("componentwise", (2, 3, 1, 2, 2)),
    ("componentwise", (2, 2, 2, 2, 3)),
    ("correct", (2, 3, 1, 2, 2)),
    ("correct", (3, 2, 2, 2, 3)),  # the compact kernel stays small at T = 3; the leaves form would not
])
def test_backward_equals_the_lambdifiedderivation(form, size):
    params, x, y, h0 = make_problem(5, *size)
    grads, grad_h = rnn.backward(params, rnn.forward(params, x, h0), y)
    derived, derived_grad_h, derived_grad_o = vb.derivation_gradients(params, x, y, h0, form=form)
    errors = gradcheck.compare(grads, derived)
    assert max(errors.values()) < 1e-12, errors
    assert gradcheck.relative_error(grad_h, derived_grad_h) < 1e-12
    trace = rnn.forward(params, x, h0)
    T, B, K = trace.yhat.shape
    assert gradcheck.relative_error(derived_grad_o, (trace.yhat - np.eye(K)[y]) / B) < 1e-12


def test_wrong_order_fails_the_gradient_check():
    params, x, y, h0 = make_problem(6, 2, 3, 1, 2, 2, scale=1.2)
    numeric = gradcheck.complex_step(lambda p: rnn.loss(p, x, y, h0), params)
    wrong, _, _ = vb.derivation_gradients(params, x, y, h0, form="diag_after")
    errors = gradcheck.compare(wrong, numeric)
    for key in ("W", "U", "b"):
        assert errors[key] > 1e-3, errors
    right, _, _ = vb.derivation_gradients(params, x, y, h0, form="correct")
    assert max(gradcheck.compare(right, numeric).values()) < 1e-9


def test_loss_and_grads_against_numerical_derivatives():
    params, x, y, h0 = make_problem(7, 6, 4, 3, 5, 4)
    _, grads = rnn.loss_and_grads(params, x, y, h0)
    central = gradcheck.central_difference(lambda p: rnn.loss(p, x, y, h0), params, eps=1e-6)
    complex_ = gradcheck.complex_step(lambda p: rnn.loss(p, x, y, h0), params)
    assert max(gradcheck.compare(grads, central).values()) < 1e-6
    assert max(gradcheck.compare(grads, complex_).values()) < 1e-9


def test_derivation_gradients_validation():
    params, x, y, h0 = make_problem(1, 2, 2, 1, 2, 2)
    with pytest.raises(ValueError, match="form must be one of"):
        vb.derivation_gradients(params, x, y, h0, form="nope")
    big = make_problem(1, 4, 1, 1, 2, 2)
    with pytest.raises(ValueError, match="T = 4 is too large"):
        vb.derivation_gradients(*big)
    with pytest.raises(ValueError, match=r"y must hold class indices in \[0, K=2\)"):
        vb.derivation_gradients(params, x, y + 2, h0)
    with pytest.raises(ValueError, match="x must have shape"):
        vb.derivation_gradients(params, x[0], y, h0)


# --- the numerical helpers -------------------------------------------------------------------


def test_weight_grad_contributions_sum_to_the_gradient():
    params, x, y, h0 = make_problem(3, 5, 4, 2, 3, 3)
    trace = rnn.forward(params, x, h0)
    grads, grad_h = rnn.backward(params, trace, y)
    C = vb.weight_grad_contributions(trace, grad_h)
    assert C.shape == (5, 3, 3)
    np.testing.assert_allclose(C.sum(axis=0), grads["W"], rtol=1e-12, atol=1e-15)
    # The first term ends in h(0)^T: zero when h(0) = 0.
    trace0 = rnn.forward(params, x)
    C0 = vb.weight_grad_contributions(trace0, rnn.backward(params, trace0, y)[1])
    assert np.all(C0[0] == 0)


def test_grad_h_from_later_steps_is_the_recursion_term():
    params, x, y, h0 = make_problem(4, 4, 3, 2, 3, 3)
    trace = rnn.forward(params, x, h0)
    _, grad_h = rnn.backward(params, trace, y)
    later = vb.grad_h_from_later_steps(params, trace, grad_h)
    assert np.all(later[-1] == 0)
    local = grad_h - later
    T, B, K = trace.yhat.shape
    expected_local = (trace.yhat - np.eye(K)[y]) / B @ params["V"]
    np.testing.assert_allclose(local, expected_local, rtol=1e-10, atol=1e-14)


def test_grad_h_norms_undo_the_batch_mean():
    grad_h = np.zeros((2, 4, 3))
    grad_h[0, :, 0] = 0.25  # each example's own gradient is 1 in the first unit
    np.testing.assert_allclose(vb.grad_h_norms(grad_h), [1.0, 0.0])
    with pytest.raises(ValueError, match="grad_h must have shape"):
        vb.grad_h_norms(np.zeros((2, 3)))


def test_helpers_validation():
    params, x, y, h0 = make_problem(1, 2, 2, 1, 2, 2)
    trace = rnn.forward(params, x, h0)
    with pytest.raises(TypeError, match="trace must be the Trace"):
        vb.weight_grad_contributions({"h": 1}, np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="grad_h must have shape"):
        vb.weight_grad_contributions(trace, np.zeros((3, 2, 2)))
    with pytest.raises(TypeError, match="trace must be the Trace"):
        vb.grad_h_from_later_steps(params, None, np.zeros((2, 2, 2)))


# --- exercises ------------------------------------------------------------------------------


def test_exercise_references_match_backward():
    params, x, y, h0 = make_problem(8, 4, 3, 2, 3, 3)
    trace = rnn.forward(params, x, h0)
    grads, grad_h = rnn.backward(params, trace, y)
    np.testing.assert_allclose(reference_grad_h(trace.yhat, y, trace.h, params["W"], params["V"]), grad_h,
                               rtol=1e-12, atol=1e-15)
    out = reference_output_grads(trace.yhat, y, trace.h)
    np.testing.assert_allclose(out["V"], grads["V"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(out["c"], grads["c"], rtol=1e-12, atol=1e-15)


def _grad_h_loop(yhat, y, h, W, V, *, order="correct", h_index=2):
    T, B, K = yhat.shape
    grad_o = (yhat - np.eye(K)[y]) / B
    grad_h = np.empty((T, B, W.shape[0]))
    grad_h[T - 1] = grad_o[T - 1] @ V
    for t in reversed(range(T - 1)):
        d = 1 - h[t + h_index] ** 2
        through = (grad_h[t + 1] * d) @ W if order == "correct" else (grad_h[t + 1] @ W) * d
        grad_h[t] = through + grad_o[t] @ V
    return grad_h


def test_grad_h_checker_accepts_correct_and_rejects_wrong_answers():
    assert verdict("vector_bptt_grad_h", _grad_h_loop)
    assert not verdict("vector_bptt_grad_h", lambda **kw: _grad_h_loop(**kw, order="diag_after"))
    assert not verdict("vector_bptt_grad_h", lambda **kw: _grad_h_loop(**kw, h_index=1))  # off by one step
    assert not verdict("vector_bptt_grad_h", lambda yhat, y, h, W, V: _grad_h_loop(yhat, y, h, W.T, V))
    no_mean = verdict("vector_bptt_grad_h", lambda yhat, y, h, W, V: yhat.shape[1] * _grad_h_loop(yhat, y, h, W, V))
    assert not no_mean and "differs" in no_mean.message


def test_output_grads_checker_accepts_correct_and_rejects_wrong_answers():
    def right(yhat, y, h):
        T, B, K = yhat.shape
        g = (yhat - np.eye(K)[y]) / B
        return {"V": np.einsum("tbk,tbh->kh", g, h[1:]), "c": g.sum(axis=(0, 1))}

    def uses_h_prev(yhat, y, h):
        out = right(yhat, y, h)
        T, B, K = yhat.shape
        out["V"] = np.einsum("tbk,tbh->kh", (yhat - np.eye(K)[y]) / B, h[:-1])
        return out

    assert verdict("vector_bptt_output_grads", right)
    assert not verdict("vector_bptt_output_grads", uses_h_prev)
    assert not verdict("vector_bptt_output_grads", lambda yhat, y, h: (right(yhat, y, h)["V"], right(yhat, y, h)["c"]))
