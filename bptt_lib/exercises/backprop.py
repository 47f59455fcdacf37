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


register("tiny_backward", reference=reference_tiny_backward, cases=_tiny_backward_cases)
