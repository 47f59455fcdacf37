"""The recurrent core (bptt_lib.cell, bptt_lib.bptt): same results as before, windows, memory, kernels.

Tolerances:
- the core against the frozen code of commit 9253693 (tests/frozen_rnn.py): both
  evaluate the same formulas with the same generated kernels, only the order of
  additions differs (the input projection is added before the recurrent product,
  blocks of steps are summed separately), so they agree to a few ulps per
  operation: 1e-12 relative (norm of the difference over the norm of the reference)
  on sequences of at most 12 steps leaves a margin of about 1e3 over float64
  round-off, while any wrong term changes a gradient by order one.
- complex step (eps = 1e-30) for the gradient with respect to h0: exact to
  round-off, so 1e-9 relative as in tests/test_rnn.py.
"""

import tracemalloc

import frozen_rnn
import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from problems import rnn_problem

from bptt_lib import bptt, gradcheck, remedies, rnn
from bptt_lib.cell import TANH_RNN, rnn_cell
from bptt_lib.codegen import generate_into, source_of
from bptt_lib.derive import rnn_step
from bptt_lib.jacobian_products import relu_kernels
from bptt_lib.kernels import rnn_kernels

RTOL = 1e-12
CS_RTOL = 1e-9

CASES = st.tuples(
    st.integers(0, 2**32 - 1), st.integers(1, 12), st.integers(1, 4),
    st.integers(1, 6), st.integers(1, 6), st.integers(1, 6), st.sampled_from(["tanh", "relu"]),
)
"""(seed, T, B, D, H, K, activation)."""


def rel(a, b):
    """Relative error ``|a - b| / |b|`` (Frobenius norms); 0 when both are exactly zero (K = 1: no gradient)."""
    diff, ref = np.linalg.norm(np.asarray(a) - np.asarray(b)), np.linalg.norm(np.asarray(b))
    return 0.0 if diff == 0 else diff / ref


def frozen(params, x, y, h0, activation):
    if activation == "tanh":
        return frozen_rnn.loss_and_grads(params, x, y, h0)
    return frozen_rnn.loss_and_grads(params, x, y, h0, activation=remedies._relu,
                                     activation_vjp=relu_kernels().relu_vjp)


def core_cell(activation):
    return TANH_RNN if activation == "tanh" else rnn_cell(remedies._relu, relu_kernels().relu_vjp)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CASES)
def test_core_equals_the_frozen_code(case):
    seed, T, B, D, H, K, activation = case
    params, x, y, h0 = rnn_problem(seed, T, B, D, H, K, scale=1.0)
    ref_loss, ref_grads, ref_grad_h, ref_dh0 = frozen(params, x, y, h0, activation)
    public = rnn.loss_and_grads if activation == "tanh" else remedies.relu_loss_and_grads
    loss, grads = public(params, x, y, h0)
    assert abs(loss - ref_loss) <= RTOL * abs(ref_loss)
    for key in ref_grads:
        assert rel(grads[key], ref_grads[key]) < RTOL, key
    # The core's own return values: the same loss and gradients, and the gradient with respect to h0.
    loss_core, grads_core, dh0 = bptt.bptt(core_cell(activation), params, x, y, h0)
    assert abs(loss_core - ref_loss) <= RTOL * abs(ref_loss)
    assert all(rel(grads_core[key], ref_grads[key]) < RTOL for key in ref_grads)
    if np.any(ref_dh0):
        assert rel(dh0, ref_dh0) < RTOL
    # rnn.backward from a stored trace: the same gradients and the same total state gradients.
    trace = rnn.forward(params, x, h0) if activation == "tanh" else remedies.relu_forward(params, x, h0)
    backward = rnn.backward if activation == "tanh" else remedies.relu_backward
    grads_b, grad_h = backward(params, trace, y)
    assert all(rel(grads_b[key], ref_grads[key]) < RTOL for key in ref_grads)
    assert rel(grad_h, ref_grad_h) < RTOL


def test_gradient_with_respect_to_the_initial_state_matches_complex_step():
    params, x, y, h0 = rnn_problem(11, T=7, B=3, D=2, H=4, K=3)
    _, _, dh0 = bptt.bptt(TANH_RNN, params, x, y, h0)
    numeric = gradcheck.complex_step(lambda q: rnn.loss(params, x, y, q["h0"]), {"h0": h0})["h0"]
    assert rel(dh0, numeric) < CS_RTOL


@pytest.mark.parametrize("rows", [1, 3, 7, 1000])
def test_blocks_of_any_length_give_the_same_gradients(rows, monkeypatch):
    params, x, y, h0 = rnn_problem(12, T=9, B=2, D=3, H=4, K=3)
    ref_loss, ref_grads, _, ref_dh0 = frozen_rnn.loss_and_grads(params, x, y, h0)
    monkeypatch.setattr(bptt, "BLOCK_ROWS", rows)
    assert bptt.blocks(9, 2) == [(t0, min(t0 + max(1, rows // 2), 9)) for t0 in range(0, 9, max(1, rows // 2))]
    loss, grads, dh0 = bptt.bptt(TANH_RNN, params, x, y, h0)
    assert abs(loss - ref_loss) <= RTOL * abs(ref_loss)
    assert all(rel(grads[key], ref_grads[key]) < RTOL for key in ref_grads)
    assert rel(dh0, ref_dh0) < RTOL


def test_backpropagation_over_windows_equals_full_bptt():
    """Stored states, windows [t0, t1) from the last, each given the gradient from the window after it."""
    params, x, y, h0 = rnn_problem(13, T=10, B=3, D=2, H=5, K=4)
    ref_loss, ref_grads, _ = bptt.bptt(TANH_RNN, params, x, y, h0)
    h = bptt.forward(TANH_RNN, params, x, h0)
    for recompute in (False, True):       # states stored, or recomputed from the window's first state
        grads = {key: np.zeros_like(value) for key, value in params.items()}
        dh, loss = None, 0.0
        for t0, t1 in [(7, 10), (3, 7), (0, 3)]:
            stored = {"h0": h[t0]} if recompute else {"h": h[t0:t1 + 1]}
            part, grads, dh = bptt.bptt(TANH_RNN, params, x[t0:t1], y[t0:t1], dh_next=dh, grads=grads, **stored)
            loss += part
        assert abs(loss - ref_loss) <= RTOL * abs(ref_loss)
        assert all(rel(grads[key], ref_grads[key]) < RTOL for key in ref_grads)
    # A window alone, with no gradient from after it, is the truncated gradient: different.
    _, window_grads, _ = bptt.bptt(TANH_RNN, params, x[3:7], y[3:7], h0=h[3])
    assert rel(window_grads["W"], ref_grads["W"]) > 1e-3


def test_forward_from_a_given_state_continues_the_sequence():
    params, x, _, h0 = rnn_problem(14, T=8, B=2, D=3, H=4, K=2)
    h = bptt.forward(TANH_RNN, params, x, h0)
    second = bptt.forward(TANH_RNN, params, x[5:], h[5])
    np.testing.assert_array_equal(second, h[5:])
    np.testing.assert_allclose(rnn.forward(params, x, h0).h, h, rtol=1e-15, atol=0)


def test_inputs_are_validated_once_per_call(monkeypatch):
    params, x, y, h0 = rnn_problem(15, T=4, B=2, D=2, H=3, K=2)
    seen = []
    original = rnn.as_array

    def counting(name, *args, **kwargs):
        seen.append(name)
        return original(name, *args, **kwargs)

    monkeypatch.setattr(rnn, "as_array", counting)
    rnn.loss_and_grads(params, x, y, h0)
    assert sorted(seen) == sorted(['params["W"]', 'params["V"]', 'params["U"]', 'params["b"]', 'params["c"]',
                                   "x", "h0", "y"])


def test_time_loops_call_the_generated_step_kernels(monkeypatch):
    params, x, y, h0 = rnn_problem(16, T=6, B=2, D=3, H=4, K=3)
    _, reference = rnn.loss_and_grads(params, x, y, h0)
    k = rnn_kernels()
    calls = {}

    def counting(name, original):
        def spy(*args, **kwargs):
            calls[name] = calls.get(name, 0) + 1
            return original(*args, **kwargs)
        return spy

    for name in ("input_projection", "recurrent_preactivation", "output_logits"):
        monkeypatch.setattr(k, name, counting(name, getattr(k, name)))
    _, grads = rnn.loss_and_grads(params, x, y, h0)
    assert calls == {"input_projection": 1, "recurrent_preactivation": 6, "output_logits": 1}
    for key in grads:
        np.testing.assert_array_equal(grads[key], reference[key])
    monkeypatch.setattr(k, "recurrent_preactivation", lambda H_prev, W, X_p, out=None: np.add(X_p, 0, out=out))
    _, corrupted = rnn.loss_and_grads(params, x, y, h0)
    assert not np.allclose(corrupted["W"], reference["W"])


def test_peak_memory_at_most_two_and_a_half_times_the_stored_states():
    """The issue's size: T = 1000, B = 32, D = 64, H = 256, K = 64 (stored states 65.6 MB)."""
    T, B, D, H, K = 1000, 32, 64, 256, 64
    params, x, y, h0 = rnn_problem(17, T, B, D, H, K)
    states = (T + 1) * B * H * 8
    bptt.clear_workspace()              # a first call: the workspaces kept for later calls are counted
    tracemalloc.start()
    try:
        rnn.loss_and_grads(params, x, y, h0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= 2.5 * states, peak / states


def test_reused_workspaces_do_not_change_results():
    """Calls of other sizes in between (longer, shorter, other widths) leave the results bit for bit the same."""
    bptt.clear_workspace()
    problems = [rnn_problem(18, T, B, 3, H, 4) for T, B, H in [(9, 2, 5), (4, 2, 5), (12, 2, 5), (9, 3, 5), (9, 2, 6)]]
    first = [rnn.loss_and_grads(*problem) for problem in problems]
    for problem, (loss, grads) in zip(reversed(problems), reversed(first)):
        again_loss, again = rnn.loss_and_grads(*problem)
        assert again_loss == loss
        for key in grads:
            np.testing.assert_array_equal(again[key], grads[key])
    small = bptt.workspace("test", (3, 4))
    assert bptt.workspace("test", (2, 4)).base is small.base and bptt.workspace("test", (5, 4)).shape == (5, 4)


def test_split_preactivation_is_proven_and_its_kernels_agree(rng):
    assert rnn_step.prove_split_preactivation()
    k = rnn_kernels()
    B, D, H, K = 3, 2, 4, 5
    h_prev, x, W, U, b = (rng.standard_normal(s) for s in [(B, H), (B, D), (H, H), (H, D), (H,)])
    V, c = rng.standard_normal((K, H)), rng.standard_normal(K)
    whole = k.hidden_preactivation(h_prev, x, W, U, b[None, :], np.ones((B, 1)))
    out = np.empty((B, H))
    split = k.recurrent_preactivation(h_prev, W, k.input_projection(x, U, b), out=out)
    assert split is out
    np.testing.assert_allclose(split, whole, rtol=RTOL, atol=1e-15)
    np.testing.assert_allclose(k.output_logits(h_prev, V, c), k.output_affine(h_prev, V, c[None, :], np.ones((B, 1))),
                               rtol=RTOL, atol=1e-15)


def test_generate_into_prints_broadcast_biases_and_out():
    sym = rnn_step.batch_symbols()
    src = source_of(rnn_kernels().input_projection)
    assert src == ("def input_projection(X, U, b, out=None):\n    out = numpy.matmul(X, U.T, out=out)\n"
                   "    out += b\n    return out\n")
    assert "one_B" not in source_of(rnn_kernels().output_logits)
    with pytest.raises(ValueError, match="expected a sum with a product"):
        generate_into("bad", [sym.b], sym.one_B * sym.b, ones=[sym.one_B])
    assert isinstance(rnn_kernels().recurrent_preactivation.expr, sp.MatrixExpr)


def test_one_blas_thread_inside_the_loops(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    def blas_threads():
        return [d["num_threads"] for d in threadpoolctl.threadpool_info() if d["user_api"] == "blas"]

    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        with bptt.one_blas_thread(32 * 128 * 128):          # the canonical size's step product
            inside = blas_threads()
        with bptt.one_blas_thread(1 * 32 * 32):             # tiny products: left alone
            assert blas_threads() == before
        with bptt.one_blas_thread(64 * 512 * 512):          # the wide size's: worth two threads
            assert blas_threads() == before
        monkeypatch.setattr(bptt, "ONE_THREAD_LOOPS", False)
        with bptt.one_blas_thread(32 * 128 * 128):
            assert blas_threads() == before
    assert inside and all(n == 1 for n in inside)
