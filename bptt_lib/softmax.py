r"""The softmax and the one-hot encoding, numerically.

The softmax is not differentiated here (its gradient, combined with the
negative log-likelihood, is the generated kernel ``softmax_nll_grad``); this
module only evaluates it stably:

.. math::

    \hat y_k = \frac{e^{o_k - m}}{\sum_j e^{o_j - m}},

    \log \hat y_k = (o_k - m) - \log \sum_j e^{o_j - m}, \qquad m = \max_j \operatorname{Re} o_j .

Subtracting :math:`m` changes nothing mathematically and keeps ``exp`` from
overflowing. Using the real part keeps the function complex-analytic in the
parameters, so that the complex-step derivative works through it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["softmax_and_log", "onehot"]


def softmax_and_log(o: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and log-probabilities over the last axis of the logits ``o`` (..., K)."""
    shifted = o - o.real.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=-1, keepdims=True)
    return exp / total, shifted - np.log(total)


def onehot(y: np.ndarray, n_classes: int) -> np.ndarray:
    """One-hot float64 rows for integer labels ``y`` (...,): shape (..., K)."""
    return np.eye(n_classes)[y]
