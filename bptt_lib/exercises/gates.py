r"""Exercise checkers of chapter 16, *What gates change, measured*.

- ``gates_adding_targets``: ``adding_targets(x)``, the targets of the adding problem for
  given inputs ``x`` (T, B, 2) (values, markers): the sum of the two marked values of each
  sequence, shape (B,). Reference: the generator's own rule, :func:`bptt_lib.tasks.adding_problem`.
- ``gates_reach_ratio``: ``reach_ratio(grad_h)``, from the hidden-state gradients
  ``grad_h`` (T, B, H) of the last step's loss (``grad_h[t - 1]`` is
  :math:`\partial L^{(T)}/\partial h^{(t)}`), the ratios
  :math:`\lVert \partial L^{(T)}/\partial h^{(T-j)} \rVert_F / \lVert \partial L^{(T)}/\partial h^{(T)} \rVert_F`
  for ``j = 0, ..., T - 1``, shape (T,) (the measurement of :func:`bptt_lib.gates.reach`).
"""

from __future__ import annotations

import numpy as np

from .. import tasks
from . import TimeAxis, register

__all__ = ["reference_adding_targets", "reference_reach_ratio"]


def reference_adding_targets(x):
    """``sum_t m^(t) v^(t)`` per sequence: the values ``x[..., 0]`` where the marker ``x[..., 1]`` is 1."""
    x = np.asarray(x, dtype=float)
    return np.sum(x[..., 0] * x[..., 1], axis=0)


def _adding_cases(rng):
    cases = []
    for T, B in [(2, 1), (5, 3), (10, 4), (31, 2)]:
        x, _ = tasks.adding_problem(T, B, rng)
        cases.append({"x": x})
    return cases


ADDING_MISTAKES = {
    "every value was summed, not only the two marked ones":
        lambda x: np.sum(np.asarray(x)[..., 0], axis=0),
    "the two marked values were averaged, not summed":
        lambda x: reference_adding_targets(x) / 2,
    "the markers were summed (always 2), not the values they mark":
        lambda x: np.sum(np.asarray(x)[..., 1], axis=0),
    "only the first marked value was kept":
        lambda x: np.asarray(x)[np.asarray(x)[..., 1].argmax(axis=0), np.arange(np.shape(x)[1]), 0],
}

register("gates_adding_targets", reference=reference_adding_targets, cases=_adding_cases,
         mistakes=ADDING_MISTAKES)


def reference_reach_ratio(grad_h):
    """``norm(grad_h[T - 1 - j]) / norm(grad_h[T - 1])``, Frobenius norms over batch and units."""
    norms = np.sqrt(np.sum(np.asarray(grad_h, dtype=float) ** 2, axis=(1, 2)))
    return norms[::-1] / norms[-1]


def _reach_cases(rng):
    cases = []
    for T, B, H in [(3, 1, 2), (6, 4, 3), (9, 2, 5)]:
        decay = 0.6 ** np.arange(T)[::-1]                     # gradients shrinking backwards in time
        cases.append({"grad_h": rng.standard_normal((T, B, H)) * decay[:, None, None]})
    return cases


def _per_example_mean(grad_h):
    n = np.sqrt(np.sum(np.asarray(grad_h) ** 2, axis=2))     # (T, B)
    return np.mean(n[::-1] / n[-1], axis=1)


REACH_MISTAKES = {
    "j counts forward from the first step: the ratios are in reverse order":
        lambda grad_h: reference_reach_ratio(grad_h)[::-1],
    "the squared norms were divided, not the norms":
        lambda grad_h: reference_reach_ratio(grad_h) ** 2,
    "each example's ratio was averaged over the batch, instead of one ratio of batch norms":
        _per_example_mean,
    "the ratio is to the first step's gradient, not the last step's":
        lambda grad_h: reference_reach_ratio(grad_h) / reference_reach_ratio(grad_h)[-1],
}

register("gates_reach_ratio", reference=reference_reach_ratio, cases=_reach_cases, mistakes=REACH_MISTAKES,
         time=TimeAxis("j", offset=0))
