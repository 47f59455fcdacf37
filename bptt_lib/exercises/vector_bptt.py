"""Exercise checkers of the chapter *BPTT in vector form*.

- ``vector_bptt_grad_h(yhat, y, h, W, V)``: the backward recursion for
  :math:`\\nabla_{h^{(t)}} L` of the batch-mean loss, shape ``(T, B, H)``, from the
  trace's probabilities ``yhat`` (T, B, K) and states ``h`` (T + 1, B, H).
- ``vector_bptt_output_grads(yhat, y, h)``: :math:`\\nabla_V L` and
  :math:`\\nabla_c L` from the same trace, as a dict with keys ``"V"`` and ``"c"``.

Both references call :func:`bptt_lib.rnn.backward` itself. Neither answer
depends on ``x``, ``U`` or ``b`` (nor :math:`\\nabla_V L` on ``W`` and ``V``), so
the reference hands ``backward`` a trace and parameters in which those are
zeros; the inputs the answer does depend on are passed unchanged.
"""

from __future__ import annotations

import numpy as np

from .. import rnn
from . import TimeAxis, register

__all__ = ["reference_grad_h", "reference_output_grads"]


def _backward(yhat, y, h, W, V):
    T, B, K = yhat.shape
    H = h.shape[-1]
    params = {"U": np.zeros((H, 1)), "W": W, "V": V, "b": np.zeros(H), "c": np.zeros(K)}
    log_yhat = np.log(yhat)
    trace = rnn.Trace(x=np.zeros((T, B, 1)), h=h, o=log_yhat, yhat=yhat, log_yhat=log_yhat)
    return rnn.backward(params, trace, y)


def reference_grad_h(yhat, y, h, W, V):
    """``grad_h`` (T, B, H), the second return value of ``rnn.backward``."""
    return _backward(yhat, y, h, W, V)[1]


def reference_output_grads(yhat, y, h):
    """``{"V": dV, "c": dc}`` from ``rnn.backward``."""
    K, H = yhat.shape[-1], h.shape[-1]
    grads, _ = _backward(yhat, y, h, np.zeros((H, H)), np.zeros((K, H)))
    return {"V": grads["V"], "c": grads["c"]}


def _traces(rng, with_weights: bool):
    cases = []
    for T, B, D, H, K in [(1, 1, 2, 3, 2), (4, 3, 2, 3, 4), (6, 2, 1, 5, 3)]:
        params = rnn.init_params(D, H, K, rng=rng, scale=0.8)
        params["b"] = 0.3 * rng.standard_normal(H)
        params["c"] = 0.3 * rng.standard_normal(K)
        trace = rnn.forward(params, rng.standard_normal((T, B, D)), 0.5 * rng.standard_normal((B, H)))
        case = {"yhat": trace.yhat, "y": rng.integers(0, K, size=(T, B)), "h": trace.h}
        if with_weights:
            case.update(W=params["W"], V=params["V"])
        cases.append(case)
    return cases


def _grad_o(yhat, y, *, mean=True, onehot=True):
    T, B, K = yhat.shape
    G_o = yhat - (np.eye(K)[y] if onehot else 0.0)
    return G_o / B if mean else G_o


def _grad_h_variant(yhat, y, h, W, V, *, mean=True, order="diag_first", W_T=True, h_shift=0, output_term=True):
    """The recursion for grad_h (rows hold the batch) with one ingredient changed (for the mistakes).

    Correct, for columns: grad_h(t) = V^T grad_o(t) + W^T diag(1 - h(t+1)^2) grad_h(t+1);
    for rows that is ``grad_o[t] @ V + (grad_h[t + 1] * (1 - h[t + 2]**2)) @ W``.
    """
    T = yhat.shape[0]
    A = W if W_T else W.T
    from_o = _grad_o(yhat, y, mean=mean) @ V
    grad_h = np.empty((T, yhat.shape[1], W.shape[0]))
    grad_h[T - 1] = from_o[T - 1]
    for t in reversed(range(T - 1)):
        factor = 1 - h[t + 2 - h_shift] ** 2
        if order == "diag_first":
            back = (grad_h[t + 1] * factor) @ A
        else:
            back = (grad_h[t + 1] @ A) * factor
        grad_h[t] = back + (from_o[t] if output_term else 0.0)
    return grad_h


GRAD_H_MISTAKES = {
    "the 1/B of the batch mean was forgotten: ∇o L = (ŷ − onehot(y))/B":
        lambda **kw: _grad_h_variant(**kw, mean=False),
    "diag(1 − h²) was applied after Wᵀ (Wᵀ g, then the diagonal); the order is Wᵀ diag(1 − (h⁽ᵗ⁺¹⁾)²) ∇h⁽ᵗ⁺¹⁾ L":
        lambda **kw: _grad_h_variant(**kw, order="W_first"),
    "W was used where Wᵀ belongs (for rows, Wᵀ g is g @ W)":
        lambda **kw: _grad_h_variant(**kw, W_T=False),
    "h is off by one step: the factor for ∇h⁽ᵗ⁾ L is 1 − (h⁽ᵗ⁺¹⁾)², i.e. h[t + 1] for grad_h[t - 1], not h⁽ᵗ⁾":
        lambda **kw: _grad_h_variant(**kw, h_shift=1),
    "the output term Vᵀ ∇o⁽ᵗ⁾ L was dropped before the last step: every h⁽ᵗ⁾ feeds its own output too":
        lambda **kw: _grad_h_variant(**kw, output_term=False),
}


def _output_grads_variant(yhat, y, h, *, mean=True, onehot=True, h_shift=0, transpose=False):
    G_o = _grad_o(yhat, y, mean=mean, onehot=onehot)
    states = h[1:] if h_shift == 0 else h[:-1]
    dV = np.einsum("tbk,tbh->kh", G_o, states)
    return {"V": dV.T if transpose else dV, "c": G_o.sum(axis=(0, 1))}


OUTPUT_MISTAKES = {
    "the 1/B of the batch mean was forgotten: ∇o L = (ŷ − onehot(y))/B":
        lambda **kw: _output_grads_variant(**kw, mean=False),
    "the one-hot target was not subtracted: ∇o L is (ŷ − onehot(y))/B, not ŷ/B":
        lambda **kw: _output_grads_variant(**kw, onehot=False),
    "h is off by one step: o⁽ᵗ⁾ = c + V h⁽ᵗ⁾ uses h[t], so the states are h[1:], not h[:-1]":
        lambda **kw: _output_grads_variant(**kw, h_shift=1),
    "∇V L is transposed: it has the shape of V, (K, H)":
        lambda **kw: _output_grads_variant(**kw, transpose=True),
}

register("vector_bptt_grad_h", reference=reference_grad_h, cases=lambda rng: _traces(rng, True),
         mistakes=GRAD_H_MISTAKES, time=TimeAxis("t", offset=1, backward=True))
register("vector_bptt_output_grads", reference=reference_output_grads, cases=lambda rng: _traces(rng, False),
         mistakes=OUTPUT_MISTAKES)
