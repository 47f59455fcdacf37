"""Exercises of chapter 1, *Unrolling a recurrent network*.

- ``rnn_step(h_prev, x, U, W, b)``: one step of the recurrence for a batch,
  ``h_prev`` (B, H), ``x`` (B, D) -> (B, H).
- ``count_parameters(D, H, K)``: the total number of scalar parameters, an int.
"""

from __future__ import annotations

import numpy as np

from . import register
from .. import unrolling

__all__ = ["reference_rnn_step", "reference_count_parameters"]


def reference_rnn_step(h_prev, x, U, W, b):
    """``tanh(b + W h_prev + U x)`` for each row of ``h_prev`` (B, H) and ``x`` (B, D)."""
    return unrolling.rnn_step(h_prev, x, U, W, b)


def reference_count_parameters(D, H, K):
    """``H*D + H*H + K*H + H + K``: the same for every sequence length."""
    return unrolling.count_parameters(D, H, K)["total"]


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
    fixed = [(1, 1, 1), (3, 4, 5), (10, 100, 10)]
    drawn = [tuple(int(v) for v in rng.integers(1, 60, size=3)) for _ in range(5)]
    return [{"D": D, "H": H, "K": K} for D, H, K in fixed + drawn]


register("rnn_step", reference=reference_rnn_step, cases=_step_cases)
register("count_parameters", reference=reference_count_parameters, cases=_count_cases, rtol=0, atol=0)
