"""Exercise checkers of chapter 10, *Long-term dependencies*.

- ``long_term_recall_targets(x, gap)``: the targets of the delayed-recall task for
  given one-hot inputs (reference: :func:`bptt_lib.tasks.recall_targets`, the
  function that the task generator itself uses).
"""

from __future__ import annotations

import numpy as np

from ..softmax import onehot
from ..tasks import recall_targets
from . import TimeAxis, register

__all__ = ["reference_recall_targets"]


def reference_recall_targets(x, gap):
    """``y[t - 1] = argmax x[t - 1 - gap]`` for ``t > gap``, ``IGNORE = -1`` before."""
    return recall_targets(x, gap)


def _cases(rng):
    cases = []
    # (T, B, D, gap): a gap of 1, gaps in the middle, the largest gap with a target, and T <= gap.
    for T, B, D, gap in [(4, 1, 3, 1), (6, 3, 4, 2), (8, 2, 5, 5), (5, 4, 2, 4), (3, 2, 3, 3), (3, 2, 3, 5)]:
        x = onehot(rng.integers(0, D, size=(T, B)), D)
        cases.append({"x": x, "gap": gap})
    return cases


def _targets_variant(x, gap, *, lag=None, fill=-1):
    """Targets ``y[t] = symbol[t - lag]`` (``lag`` defaults to ``gap``; negative looks ahead), ``fill`` elsewhere."""
    symbols = np.asarray(x).argmax(axis=-1)
    lag = gap if lag is None else lag
    T = symbols.shape[0]
    y = np.full(symbols.shape, fill)
    if lag >= 0:
        if lag < T:
            y[lag:] = symbols[:T - lag]
    elif -lag < T:
        y[:T + lag] = symbols[-lag:]
    return y


RECALL_MISTAKES = {
    "the gap is off by one: the target at step t is the symbol seen gap steps earlier, not gap − 1":
        lambda x, gap: _targets_variant(x, gap, lag=gap - 1),
    "the gap is off by one: the target at step t is the symbol seen gap steps earlier, not gap + 1":
        lambda x, gap: _targets_variant(x, gap, lag=gap + 1),
    "the steps without a target hold 0; they must hold IGNORE = −1 (0 is a symbol)":
        lambda x, gap: _targets_variant(x, gap, fill=0),
    "the targets look ahead: the symbol gap steps later was used, not gap steps earlier":
        lambda x, gap: _targets_variant(x, gap, lag=-gap),
}

register("long_term_recall_targets", reference=reference_recall_targets, cases=_cases, integer_result=True,
         mistakes=RECALL_MISTAKES, time=TimeAxis("t", offset=1))
