"""Checkers for chapter 3, "Backpropagation, recalled".

- ``tiny_backward(x, h, yhat, y, V)``: the gradients of the tiny network's mean
  loss from its stored forward pass, a dict with ``"U"``, ``"b"``, ``"V"``, ``"c"``.
"""

from __future__ import annotations

import numpy as np

from .. import feedforward
from . import register

__all__ = ["reference_tiny_backward"]


def reference_tiny_backward(x, h, yhat, y, V):
    """The gradients of the tiny network from its stored forward pass, by the library.

    Parameters
    ----------
    x : ndarray, (B, D)
    h : ndarray, (B, H)
    yhat : ndarray, (B, K)
    y : ndarray of int, (B,)
    V : ndarray, (K, H)

    Returns
    -------
    dict
        ``"U"`` (H, D), ``"b"`` (H,), ``"V"`` (K, H), ``"c"`` (K,).
    """
    return feedforward._backward_from(np.asarray(x, float), np.asarray(h, float), np.asarray(yhat, float),
                                      np.asarray(y), np.asarray(V, float))


def _tiny_backward_cases(rng):
    cases = []
    # (B, D, H, K): D == H makes a transposed dU the right shape; B = 1 and K = 2 are edge cases.
    for B, D, H, K in [(5, 2, 4, 3), (4, 3, 3, 3), (1, 2, 3, 2), (7, 4, 5, 6)]:
        params = feedforward.init_params(D, H, K, rng=rng)
        params["b"] = 0.5 * rng.standard_normal(H)
        params["c"] = 0.5 * rng.standard_normal(K)
        x = rng.standard_normal((B, D))
        trace = feedforward.forward(params, x)
        y = rng.integers(0, K, size=B)
        cases.append({"x": x, "h": trace.h, "yhat": trace.yhat, "y": y, "V": params["V"]})
    return cases


def _tiny_backward_variant(x, h, yhat, y, V, *, mean=True, onehot=True, tanh=True, transpose_dU=False):
    """The backward pass of the tiny network with one of its steps done wrong (for the mistakes)."""
    B = len(y)
    G_o = np.array(yhat, dtype=float)
    if onehot:
        G_o[np.arange(B), y] -= 1.0
    if mean:
        G_o = G_o / B
    G_a = G_o @ V
    if tanh:
        G_a = G_a * (1.0 - h**2)
    dU = x.T @ G_a if transpose_dU else G_a.T @ x
    return {"U": dU, "b": G_a.sum(axis=0), "V": G_o.T @ h, "c": G_o.sum(axis=0)}


TINY_BACKWARD_MISTAKES = {
    "the 1/B of the batch mean was forgotten":
        lambda **kw: _tiny_backward_variant(**kw, mean=False),
    "the one-hot target was not subtracted: the gradient at the logits is (ŷ − onehot(y))/B, not ŷ/B":
        lambda **kw: _tiny_backward_variant(**kw, onehot=False),
    "the tanh factor 1 − h² was left out on the way from V to the hidden layer":
        lambda **kw: _tiny_backward_variant(**kw, tanh=False),
    "∇U L is transposed: it has the shape of U, (H, D), so it is G_aᵀ x, not xᵀ G_a":
        lambda **kw: _tiny_backward_variant(**kw, transpose_dU=True),
}

register("tiny_backward", reference=reference_tiny_backward, cases=_tiny_backward_cases,
         mistakes=TINY_BACKWARD_MISTAKES)
