"""Exercise checkers of chapter 10, *Long-term dependencies*.

- ``long_term_recall_targets(x, gap)``: the targets of the delayed-recall task for
  given one-hot inputs (reference: :func:`bptt_lib.tasks.recall_targets`, the
  function that the task generator itself uses).
"""

from __future__ import annotations

from ..softmax import onehot
from ..tasks import recall_targets
from . import register

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


register("long_term_recall_targets", reference=reference_recall_targets, cases=_cases, integer_result=True)
