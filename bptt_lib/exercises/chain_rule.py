"""Exercise checkers of chapter 2, *The chain rule for many variables*.

- ``sigmoid_vjp(g, s)``: the backward rule of the elementwise sigmoid, given the
  upstream gradient ``g`` and the sigmoid's output ``s`` (any shape).
- ``step_vjp_h_prev(g, h, W)``: the gradient with respect to ``h_prev`` of one
  step ``h = tanh(h_prev W^T + x U^T + b)`` for a batch stored as rows, given the
  upstream gradient ``g`` with respect to ``h``.

Both references are generated kernels (:func:`bptt_lib.kernels.rnn_kernels`),
never a formula typed by hand.
"""

from __future__ import annotations

import numpy as np

from ..kernels import rnn_kernels
from . import register

__all__ = ["reference_sigmoid_vjp", "reference_step_vjp_h_prev"]


def reference_sigmoid_vjp(g, s):
    """``g * s * (1 - s)``, the generated kernel ``sigmoid_vjp``."""
    return rnn_kernels().sigmoid_vjp(g, s)


def reference_step_vjp_h_prev(g, h, W):
    """``(g * (1 - h**2)) @ W``: the generated ``tanh_vjp`` followed by ``hidden_vjp_h_prev``."""
    k = rnn_kernels()
    return k.hidden_vjp_h_prev(k.tanh_vjp(g, h), W)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _sigmoid_cases(rng):
    cases = []
    for shape in [(), (5,), (3, 4), (2, 3, 4)]:
        g = rng.standard_normal(shape)
        s = _sigmoid(2.0 * rng.standard_normal(shape))
        cases.append({"g": g if shape else float(g), "s": s if shape else float(s)})
    return cases


def _step_cases(rng):
    cases = []
    for n_batch, n_hidden in [(1, 3), (4, 3), (2, 5)]:
        cases.append({
            "g": rng.standard_normal((n_batch, n_hidden)),
            "h": np.tanh(1.5 * rng.standard_normal((n_batch, n_hidden))),
            "W": rng.standard_normal((n_hidden, n_hidden)),
        })
    return cases


SIGMOID_MISTAKES = {
    "the upstream gradient g was not multiplied in (only the local derivative s(1 − s) was returned)":
        lambda g, s: s * (1 - s),
    "the sigmoid was applied to s again: s is already σ(a), so σ′(a) = s(1 − s)":
        lambda g, s: g * _sigmoid(s) * (1 - _sigmoid(s)),
    "the tanh rule 1 − s² was used instead of the sigmoid's s(1 − s)":
        lambda g, s: g * (1 - s**2),
    "the sign is wrong: s(s − 1) instead of s(1 − s)":
        lambda g, s: g * s * (s - 1),
}

STEP_MISTAKES = {
    "Wᵀ was used where W belongs (for rows, Wᵀ g is g @ W)":
        lambda g, h, W: (g * (1 - h**2)) @ W.T,
    "diag(1 − h²) was applied after W instead of before it (the factor belongs to h, the output of the step)":
        lambda g, h, W: (g @ W) * (1 - h**2),
    "the tanh factor 1 − h² was left out":
        lambda g, h, W: g @ W,
    "the tanh derivative was written 1 − h instead of 1 − h²":
        lambda g, h, W: (g * (1 - h)) @ W,
}

register("sigmoid_vjp", reference=reference_sigmoid_vjp, cases=_sigmoid_cases, mistakes=SIGMOID_MISTAKES)
register("step_vjp_h_prev", reference=reference_step_vjp_h_prev, cases=_step_cases, mistakes=STEP_MISTAKES)
