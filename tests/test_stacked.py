"""BPTT for N networks at once (bptt_lib.stacked) against the one-network functions.

Tolerances: the stacked pass does the arithmetic of rnn.loss_and_grads (and of
tasks.masked_loss_and_grads) in the same order, grouped differently only where np.matmul batches
it over the networks, so per network it agrees to round-off: 1e-12 relative (plus 1e-14 of the
largest entry, for entries that are nearly zero) is a wide margin for sums of a few hundred
float64 products. Training runs compared step by step stay within 1e-10 relative over the first
20 steps at these sizes (they are not chaotic there).
"""

import numpy as np
import pytest

from bptt_lib import remedies, rnn, stacked, tasks
from bptt_lib.jacobian_products import relu_kernels
from bptt_lib.kernels import rnn_kernels
from bptt_lib.tasks import IGNORE
from bptt_lib.training import train

RTOL = 1e-12


def _networks(activation="tanh", n_seeds=3, gains=(0.5, 2.0), H=6, D=3, K=4):
    recurrent = "gaussian" if activation == "tanh" else "identity"
    return [remedies.init_params(D, H, K, rng=np.random.default_rng(seed), recurrent=recurrent, gain=g)
            for g in gains for seed in range(n_seeds)]


def _assert_grads_close(grads, n, reference):
    for key in reference:
        np.testing.assert_allclose(grads[key][n], reference[key], rtol=RTOL,
                                   atol=1e-14 * np.abs(reference[key]).max())


def _per_network_batches(n_nets, n_symbols, gap, T, B, *, blank=False, seed=10):
    """Each network its own delayed-recall batch: (list of (x, y)), x (T, N, B, D), y (T, N, B)."""
    batches = [tasks.delayed_recall(n_symbols, gap, T, B, np.random.default_rng(seed + n), blank=blank)
               for n in range(n_nets)]
    return batches, np.stack([b[0] for b in batches], axis=1), np.stack([b[1] for b in batches], axis=1)


# --- equal to one network at a time ------------------------------------------------------


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_shared_batch_equals_one_network_at_a_time(activation):
    x, y = tasks.delayed_recall(3, 2, 9, 5, np.random.default_rng(0), blank=True)
    nets = _networks(activation)
    single = rnn.loss_and_grads if activation == "tanh" else remedies.relu_loss_and_grads
    backward = rnn.backward if activation == "tanh" else remedies.relu_backward
    forward = rnn.forward if activation == "tanh" else remedies.relu_forward
    loss, grads, grad_h = stacked.loss_and_grads(stacked.stack_params(nets), x, y, activation=activation)
    assert loss.shape == (len(nets),) and grad_h.shape == (len(nets), 9, 5, 6)
    for n, p in enumerate(nets):
        ref_loss, ref_grads = single(p, x, y)
        np.testing.assert_allclose(loss[n], ref_loss, rtol=RTOL)
        _assert_grads_close(grads, n, ref_grads)
        _, ref_grad_h = backward(p, forward(p, x), y)
        np.testing.assert_allclose(grad_h[n], ref_grad_h, rtol=RTOL, atol=1e-15)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_per_network_batches_equal_one_network_at_a_time(activation):
    nets = _networks(activation)
    batches, x, y = _per_network_batches(len(nets), 3, 2, 8, 4, blank=True)
    single = rnn.loss_and_grads if activation == "tanh" else remedies.relu_loss_and_grads
    loss, grads, _ = stacked.loss_and_grads(stacked.stack_params(nets), x, y, activation=activation)
    for n, p in enumerate(nets):
        ref_loss, ref_grads = single(p, *batches[n])
        np.testing.assert_allclose(loss[n], ref_loss, rtol=RTOL)
        _assert_grads_close(grads, n, ref_grads)


def test_per_network_masked_batches_equal_the_masked_loss_of_each_network():
    nets = [rnn.init_params(4, 6, 4, rng=np.random.default_rng(seed)) for seed in range(3)]
    batches, x, y = _per_network_batches(3, 4, 3, 7, 5)        # gap 3: the first 3 steps are IGNORE
    assert np.all(y[:3] == IGNORE) and np.all(y[3:] != IGNORE)
    loss, grads, grad_h = stacked.loss_and_grads(stacked.stack_params(nets), x, y)
    assert loss.shape == (3,) and grads["W"].shape == (3, 6, 6) and grad_h.shape == (3, 7, 5, 6)
    for n, net in enumerate(nets):
        ref_loss, ref_grads, ref_grad_h = tasks.masked_backward(net, *batches[n])
        np.testing.assert_allclose(loss[n], ref_loss, rtol=RTOL)
        _assert_grads_close(grads, n, ref_grads)
        np.testing.assert_allclose(grad_h[n], ref_grad_h, rtol=RTOL, atol=1e-15)


def test_shared_masked_batch_equals_the_masked_loss_and_drops_the_ignored_steps():
    nets = [rnn.init_params(4, 5, 4, rng=np.random.default_rng(seed)) for seed in range(2)]
    x, y = tasks.delayed_recall(4, 2, 6, 3, np.random.default_rng(1))
    y = y.copy()
    y[4, 1] = IGNORE                                           # a hole after the first targets, too
    loss, grads, _ = stacked.loss_and_grads(stacked.stack_params(nets), x, y)
    for n, net in enumerate(nets):
        ref_loss, ref_grads = tasks.masked_loss_and_grads(net, x, y)
        np.testing.assert_allclose(loss[n], ref_loss, rtol=RTOL)
        _assert_grads_close(grads, n, ref_grads)
        # the loss of the kept steps only, divided by the whole batch size B = 3
        log_yhat = rnn.forward(net, x).log_yhat
        kept = [-log_yhat[t, b, y[t, b]] for t in range(6) for b in range(3) if y[t, b] != IGNORE]
        np.testing.assert_allclose(loss[n], sum(kept) / 3, rtol=RTOL)
    # the loss is a sum over steps: the full loss (class 0 at the ignored steps) is the masked
    # loss plus the loss of the ignored steps alone, and so are the gradients
    y_full = np.where(y == IGNORE, 0, y)
    y_rest = np.where(y == IGNORE, 0, IGNORE)
    params = stacked.stack_params(nets)
    loss_full, grads_full, _ = stacked.loss_and_grads(params, x, y_full)
    loss_rest, grads_rest, _ = stacked.loss_and_grads(params, x, y_rest)
    assert np.all(loss_rest > 0)
    np.testing.assert_allclose(loss + loss_rest, loss_full, rtol=RTOL)
    for key in grads:
        np.testing.assert_allclose(grads[key] + grads_rest[key], grads_full[key], rtol=1e-10,
                                   atol=1e-13 * np.abs(grads_full[key]).max())


def test_a_shared_batch_equals_the_same_batch_given_to_every_network():
    nets = _networks()
    x, y = tasks.delayed_recall(3, 2, 6, 4, np.random.default_rng(0))
    shared = stacked.loss_and_grads(stacked.stack_params(nets), x, y)
    xx = np.stack([x] * len(nets), axis=1)
    yy = np.stack([y] * len(nets), axis=1)
    for x_given, y_given in ((xx, yy), (xx, y), (x, yy)):
        loss, grads, grad_h = stacked.loss_and_grads(stacked.stack_params(nets), x_given, y_given)
        np.testing.assert_allclose(loss, shared[0], rtol=RTOL)
        np.testing.assert_allclose(grad_h, shared[2], rtol=RTOL, atol=1e-15)
        for key in grads:
            np.testing.assert_allclose(grads[key], shared[1][key], rtol=RTOL, atol=1e-14 * np.abs(grads[key]).max())


# --- the generated kernels do the work ------------------------------------------------------


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("per_network", [False, True])
def test_the_stacked_pass_calls_the_generated_kernels(monkeypatch, activation, per_network):
    nets = _networks(activation)
    if per_network:
        _, x, y = _per_network_batches(len(nets), 3, 2, 4, 2)
    else:
        x, y = tasks.delayed_recall(3, 2, 4, 2, np.random.default_rng(0))
    params = stacked.stack_params(nets)
    _, reference, _ = stacked.loss_and_grads(params, x, y, activation=activation)
    k, r = rnn_kernels(), relu_kernels()
    act_kernels = (("tanh_vjp", k),) if activation == "tanh" else (("relu", r), ("relu_vjp", r))
    calls = {}
    for name, space in (("input_projection", k), ("recurrent_preactivation", k), ("output_logits", k),
                        ("softmax_nll_grad", k), ("output_vjp", k), ("hidden_vjp_h_prev", k),
                        ("hidden_vjp_params", k)) + act_kernels:
        original = getattr(space, name)

        def spy(*args, _original=original, _name=name, **kwargs):
            calls[_name] = calls.get(_name, 0) + 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(space, name, spy)
    _, grads, _ = stacked.loss_and_grads(params, x, y, activation=activation)
    # The stacked pass is bptt_lib.bptt.bptt: the input projection is hoisted out of the time loop.
    expected = {"input_projection": 1, "recurrent_preactivation": 4, "output_logits": 1, "softmax_nll_grad": 1,
                "output_vjp": 1, "hidden_vjp_h_prev": 4, "hidden_vjp_params": 1}
    expected.update({"tanh_vjp": 4} if activation == "tanh" else {"relu": 4, "relu_vjp": 4})
    assert calls == expected
    for key in grads:
        np.testing.assert_array_equal(grads[key], reference[key])
    vjp, space = ("tanh_vjp", k) if activation == "tanh" else ("relu_vjp", r)
    monkeypatch.setattr(space, vjp, lambda g, h: g)            # a wrong rule must change the result
    _, corrupted, _ = stacked.loss_and_grads(params, x, y, activation=activation)
    assert not np.allclose(corrupted["W"], reference["W"])
    monkeypatch.setattr(k, "softmax_nll_grad", lambda yhat, y, B: (yhat - y) / (2 * B))
    _, halved, _ = stacked.loss_and_grads(params, x, y, activation=activation)
    assert not np.allclose(halved["V"], reference["V"])


# --- networks stay independent ---------------------------------------------------------------


@pytest.mark.parametrize("per_network", [False, True])
def test_a_non_finite_network_does_not_touch_the_others(per_network):
    nets = _networks()
    if per_network:
        _, x, y = _per_network_batches(len(nets), 3, 2, 6, 4)
    else:
        x, y = tasks.delayed_recall(3, 2, 6, 4, np.random.default_rng(0), blank=True)
    params = stacked.stack_params(nets)
    ref_loss, reference, _ = stacked.loss_and_grads(params, x, y)
    params["V"][1] = np.inf                                    # network 1 produces inf and nan
    loss, grads, _ = stacked.loss_and_grads(params, x, y)
    assert not np.isfinite(loss[1]) and not np.all(np.isfinite(grads["V"][1]))
    for n in (0, 2, 3, 4, 5):
        assert loss[n] == ref_loss[n]
        for key in grads:
            np.testing.assert_array_equal(grads[key][n], reference[key][n])


def test_the_gradient_of_one_network_ignores_the_others():
    nets = _networks(n_seeds=1)
    x, y = tasks.delayed_recall(3, 2, 6, 3, np.random.default_rng(1))
    _, before, _ = stacked.loss_and_grads(stacked.stack_params(nets), x, y)
    changed = [nets[0], dict(nets[1], W=3.0 * nets[1]["W"])]
    _, after, _ = stacked.loss_and_grads(stacked.stack_params(changed), x, y)
    for key in before:
        np.testing.assert_array_equal(after[key][0], before[key][0])
        assert not np.allclose(after[key][1], before[key][1])


# --- bad input -----------------------------------------------------------------------------


def test_stack_and_unstack_round_trip_and_reject_mismatched_sizes():
    nets = _networks()
    params = stacked.stack_params(nets)
    assert params["W"].shape == (6, 6, 6) and params["b"].shape == (6, 6)
    back = stacked.unstack_params(params)
    assert len(back) == len(nets)
    for p, q in zip(nets, back):
        for key in stacked.STACK_KEYS:
            np.testing.assert_array_equal(p[key], q[key])
    back[0]["W"][0, 0] += 1.0                                  # copies, not views
    assert params["W"][0, 0, 0] == nets[0]["W"][0, 0]
    other = remedies.init_params(3, 5, 4, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r'params_list\[1\]\["U"\] must have shape'):
        stacked.stack_params([nets[0], other])
    with pytest.raises(ValueError, match="at least one"):
        stacked.stack_params([])


def test_loss_and_grads_bad_input_named():
    params = stacked.stack_params(_networks())                 # N = 6, H = 6, D = 3, K = 4
    x, y = tasks.delayed_recall(3, 2, 5, 2, np.random.default_rng(0), blank=True)
    with pytest.raises(KeyError, match="c"):
        stacked.loss_and_grads({k: v for k, v in params.items() if k != "c"}, x, y)
    with pytest.raises(ValueError, match=r'stacked\["U"\] must have shape.*axis 1, H, is 5, expected 6'):
        stacked.loss_and_grads(dict(params, U=params["U"][:, :5]), x, y)
    with pytest.raises(ValueError, match=r'stacked\["b"\] must have shape'):
        stacked.loss_and_grads(dict(params, b=params["b"][:5]), x, y)
    with pytest.raises(TypeError, match=r'stacked\["W"\] must be real'):
        stacked.loss_and_grads(dict(params, W=params["W"] + 0j), x, y)
    with pytest.raises(ValueError, match=r"x must have shape \(T, B, D\).*or \(T, N, B, D\)"):
        stacked.loss_and_grads(params, x[0], y)
    with pytest.raises(ValueError, match=r"x must have shape.*axis 1, N, is 2, expected 6"):
        stacked.loss_and_grads(params, np.stack([x, x], axis=1), y)
    with pytest.raises(ValueError, match=r"x must have shape.*axis 2, D"):
        stacked.loss_and_grads(params, x[:, :, :2], y)
    with pytest.raises(ValueError, match="x holds a non-finite value"):
        stacked.loss_and_grads(params, np.where(x == 1, np.nan, x), y)
    with pytest.raises(ValueError, match=r"y must have shape \(T, B\).*or \(T, N, B\)"):
        stacked.loss_and_grads(params, x, y[0])
    with pytest.raises(ValueError, match=r"y must have shape.*axis 0, T"):
        stacked.loss_and_grads(params, x, y[:3])
    with pytest.raises(TypeError, match="y must hold integers"):
        stacked.loss_and_grads(params, x, y.astype(float))
    with pytest.raises(ValueError, match=r"class indices in \[0, K=4\) or IGNORE=-1; got 4"):
        stacked.loss_and_grads(params, x, np.where(y == 0, 4, y))
    with pytest.raises(ValueError, match="class indices"):
        stacked.loss_and_grads(params, x, np.where(y == 0, -2, y))
    with pytest.raises(ValueError, match="no step with a target"):
        stacked.loss_and_grads(params, x, np.full_like(y, IGNORE))
    per_net = np.stack([y] * 6, axis=1)
    per_net[:, 4] = IGNORE
    with pytest.raises(ValueError, match="no step with a target for network 4"):
        stacked.loss_and_grads(params, x, per_net)
    with pytest.raises(ValueError, match="activation"):
        stacked.loss_and_grads(params, x, y, activation="sigmoid")


# --- training ---------------------------------------------------------------------------------


@pytest.mark.parametrize("clip", [{}, {"max_norm": 0.5}, {"clip_value": 0.05}])
def test_train_equals_train_one_network_at_a_time(clip):
    x, y = tasks.delayed_recall(3, 2, 8, 6, np.random.default_rng(0), blank=True)
    nets = _networks()
    params, history = stacked.train(stacked.stack_params(nets), (x, y), steps=20, lr=0.05, **clip)
    assert np.all(history.diverged_at == -1)
    for n, p in enumerate(nets):
        ref_params, ref = train(p, (x, y), steps=20, lr=0.05, **clip)
        np.testing.assert_allclose(history.loss[n], ref.loss, rtol=1e-10)
        np.testing.assert_allclose(history.grad_norm[n], ref.grad_norm, rtol=1e-10)
        for key in ref_params:
            np.testing.assert_allclose(params[key][n], ref_params[key], rtol=1e-10, atol=1e-12)
        run = history.run(n)
        np.testing.assert_array_equal(run.loss, history.loss[n])
        assert run.diverged_at is None


def test_train_with_per_network_masked_batches_equals_train_with_the_masked_loss():
    nets = [rnn.init_params(4, 6, 4, rng=np.random.default_rng(seed)) for seed in range(3)]
    batches, x, y = _per_network_batches(3, 4, 2, 6, 5)
    params, history = stacked.train(stacked.stack_params(nets), (x, y), steps=10, lr=0.3, max_norm=1.0)
    for n, p in enumerate(nets):
        ref_params, ref = train(p, batches[n], steps=10, lr=0.3, max_norm=1.0,
                                loss_and_grads=tasks.masked_loss_and_grads)
        np.testing.assert_allclose(history.loss[n], ref.loss, rtol=1e-10)
        for key in ref_params:
            np.testing.assert_allclose(params[key][n], ref_params[key], rtol=1e-10, atol=1e-12)


def test_train_freezes_a_diverging_network_and_goes_on_with_the_others():
    x, y = tasks.delayed_recall(3, 2, 8, 6, np.random.default_rng(0), blank=True)
    nets = _networks()
    bad = dict(nets[2], V=1.7e308 * np.sign(nets[2]["V"]))     # the logits overflow
    params, history = stacked.train(stacked.stack_params(nets[:2] + [bad] + nets[3:]), (x, y), steps=5, lr=0.05)
    assert history.diverged_at.tolist() == [-1, -1, 0, -1, -1, -1]
    assert np.all(np.isnan(history.loss[2])) and history.run(2).diverged_at == 0 and history.run(2).loss.size == 0
    np.testing.assert_array_equal(params["V"][2], bad["V"])       # frozen where it stopped
    for n in (0, 1, 3):
        _, ref = train(nets[n], (x, y), steps=5, lr=0.05)
        np.testing.assert_allclose(history.loss[n], ref.loss, rtol=1e-10)


def test_train_bad_input():
    x, y = tasks.delayed_recall(3, 2, 4, 2, np.random.default_rng(0), blank=True)
    params = stacked.stack_params(_networks())
    with pytest.raises(ValueError, match="at most one"):
        stacked.train(params, (x, y), steps=2, lr=0.1, max_norm=1.0, clip_value=1.0)
    with pytest.raises(TypeError, match="data"):
        stacked.train(params, [x, y], steps=2, lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        stacked.train(params, (x, y), steps=2, lr=-0.1)
