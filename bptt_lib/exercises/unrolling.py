"""Exercises of chapter 1, *Unrolling a recurrent network*.

- ``rnn_step(h_prev, x, U, W, b)``: one step of the recurrence for a batch,
  ``h_prev`` (B, H), ``x`` (B, D) -> (B, H).
- ``n_parameters_untied(D, H, K, T)``: the number of scalar parameters a network
  would need if each of the ``T`` steps had its own ``U, W, V, b, c``, an int.
"""

from __future__ import annotations

import numpy as np

from .. import unrolling
from . import register

__all__ = ["reference_rnn_step", "reference_n_parameters_untied"]


def reference_rnn_step(h_prev, x, U, W, b):
    """``tanh(b + W h_prev + U x)`` for each row of ``h_prev`` (B, H) and ``x`` (B, D)."""
    return unrolling.rnn_step(h_prev, x, U, W, b)


def reference_n_parameters_untied(D, H, K, T):
    """``T * (H*D + H*H + K*H + H + K)``: one full parameter set per step."""
    return T * unrolling.count_parameters(D, H, K)["total"]


def _step_cases(rng: np.random.Generator) -> list:
    cases = []
    # H differs from D and W is not symmetric, so a transposed matrix gives a shape error
    # or a wrong value; b is nonzero, so a forgotten bias shows; B = 1 catches squeezing.
    for B, D, H in [(1, 2, 3), (4, 3, 2), (5, 1, 4), (2, 3, 3)]:
        cases.append({
            "h_prev": np.tanh(rng.standard_normal((B, H))),
            "x": rng.standard_normal((B, D)),
            "U": rng.standard_normal((H, D)) / np.sqrt(D),
            "W": rng.standard_normal((H, H)) / np.sqrt(H),
            "b": 0.5 * rng.standard_normal(H),
        })
    return cases


def _count_cases(rng: np.random.Generator) -> list:
    # T = 1 is the tied count itself; sizes that differ catch a swapped D and K.
    fixed = [(1, 1, 1, 1), (3, 4, 5, 1), (3, 4, 5, 7), (10, 100, 10, 25)]
    drawn = [tuple(int(v) for v in rng.integers(1, 60, size=4)) for _ in range(5)]
    return [{"D": D, "H": H, "K": K, "T": T} for D, H, K, T in fixed + drawn]


# Common mistakes, written for rows: each row of h_prev and x is one example.
STEP_MISTAKES = {
    "W was used where Wᵀ belongs (for rows, W h is h_prev @ W.T)":
        lambda h_prev, x, U, W, b: np.tanh(h_prev @ W + x @ U.T + b),
    "the bias b was left out":
        lambda h_prev, x, U, W, b: np.tanh(h_prev @ W.T + x @ U.T),
    "the recurrent term W h⁽ᵗ⁻¹⁾ was left out":
        lambda h_prev, x, U, W, b: np.tanh(x @ U.T + b),
    "tanh was not applied: the pre-activation a was returned instead of the state h":
        lambda h_prev, x, U, W, b: h_prev @ W.T + x @ U.T + b,
}


def _per_step(D, H, K):
    return H * D + H * H + K * H + H + K


COUNT_MISTAKES = {
    "the shared count was not multiplied by T (untied means one parameter set per step)":
        lambda D, H, K, T: _per_step(D, H, K),
    "the biases b and c were not counted":
        lambda D, H, K, T: T * (H * D + H * H + K * H),
    "there are T + 1 parameter sets instead of T (one per step t = 1..T; h⁽⁰⁾ has none)":
        lambda D, H, K, T: (T + 1) * _per_step(D, H, K),
}

register("rnn_step", reference=reference_rnn_step, cases=_step_cases, mistakes=STEP_MISTAKES)
register("n_parameters_untied", reference=reference_n_parameters_untied, cases=_count_cases, rtol=0, atol=0,
         integer_result=True, mistakes=COUNT_MISTAKES)
