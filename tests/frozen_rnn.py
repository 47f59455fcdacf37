"""The BPTT of ``bptt_lib.rnn`` as it was before the recurrent core (commit 9253693), frozen.

A reference for ``tests/test_bptt_core.py``: the forward loop computed the whole
pre-activation (with the input projection and a column of ones for the bias) at
every step, and the backward loop stored every gradient. It calls the same
generated kernels as it did then (``hidden_preactivation``, ``output_affine``,
``softmax_nll_grad``, ``output_vjp``, ``hidden_vjp_h_prev``, ``hidden_vjp_params``);
only the order of the calls differs from the new core, so the two agree to round-off.
"""

import numpy as np

from bptt_lib.kernels import rnn_kernels
from bptt_lib.softmax import onehot, softmax_and_log


def loss_and_grads(p, x, y, h0, activation=np.tanh, activation_vjp=None):
    """Loss, gradients and the total state gradients ``grad_h`` (T, B, H), as at commit 9253693."""
    k = rnn_kernels()
    T, B, D = x.shape
    H, K = p["W"].shape[0], p["V"].shape[0]
    one_B = np.ones((B, 1))
    h = np.empty((T + 1, B, H))
    h[0] = h0
    for t in range(T):
        h[t + 1] = activation(k.hidden_preactivation(h[t], x[t], p["W"], p["U"], p["b"][None, :], one_B))
    o = k.output_affine(h[1:].reshape(T * B, H), p["V"], p["c"][None, :], np.ones((T * B, 1))).reshape(T, B, K)
    yhat, log_yhat = softmax_and_log(o)
    loss = -np.take_along_axis(log_yhat, y[..., None], axis=-1).sum() / B

    ones = np.ones((T * B, 1))
    act_vjp = k.tanh_vjp if activation_vjp is None else activation_vjp
    G_o = k.softmax_nll_grad(yhat.reshape(T * B, K), onehot(y.reshape(-1), K), B)
    dV, dc, grad_h_from_o = k.output_vjp(G_o, h[1:].reshape(T * B, H), p["V"], ones)
    grad_h_from_o = grad_h_from_o.reshape(T, B, H)
    grad_h = np.empty((T, B, H))
    G_a = np.empty((T, B, H))
    dh_next = np.zeros((B, H))
    for t in reversed(range(T)):
        grad_h[t] = grad_h_from_o[t] + dh_next
        G_a[t] = act_vjp(grad_h[t], h[t + 1])
        dh_next = k.hidden_vjp_h_prev(G_a[t], p["W"])
    dW, dU, db = k.hidden_vjp_params(G_a.reshape(T * B, H), h[:-1].reshape(T * B, H), x.reshape(T * B, D), ones)
    grads = {"U": dU, "W": dW, "V": dV, "b": db.reshape(H), "c": dc.reshape(K)}
    return loss, grads, grad_h, dh_next
