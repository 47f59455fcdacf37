r"""Exercise checkers of the chapter *Two views, one gradient*.

- ``two_views_path_term_W``: ``path_term_W(g, h, W, t, k)``, the contribution of
  the single path :math:`(t, k)` to :math:`\nabla_W L` for a batch stored as rows:
  ``g`` (B, H) holds :math:`\nabla_{h^{(t)}} L^{(t)}`, ``h`` (T + 1, B, H) the
  hidden states with ``h[j]`` :math:`= h^{(j)}`, ``W`` (H, H); the result is
  :math:`\sum_{\text{batch}} \delta^{(t,k)} h^{(k-1)\top}`, shape (H, H).

The reference is :func:`bptt_lib.path_sum.path_term`, built on the generated kernels.
"""

from __future__ import annotations

import numpy as np

from .. import path_sum
from . import register

__all__ = ["reference_path_term_W"]


def reference_path_term_W(g, h, W, t, k):
    """The contribution of path ``(t, k)`` to the gradient with respect to ``W``, shape (H, H)."""
    T, B = h.shape[0] - 1, h.shape[1]
    no_inputs = np.zeros((T, B, 1))  # x only enters the U term, which is not asked for
    return path_sum.path_term(g, h, no_inputs, W, t, k)["W"]


def _path_term_cases(rng):
    cases = []
    # (T, B, H, t, k): the longest path, the immediate term, a middle path, T = 1, B = 1.
    for T, B, H, t, k in [(4, 2, 3, 4, 1), (4, 3, 3, 3, 3), (6, 2, 4, 5, 2), (1, 2, 3, 1, 1), (5, 1, 2, 4, 2)]:
        cases.append({
            "g": rng.standard_normal((B, H)),
            "h": np.tanh(1.5 * rng.standard_normal((T + 1, B, H))),
            "W": rng.standard_normal((H, H)),   # not symmetric, so a missing transpose shows
            "t": t,
            "k": k,
        })
    return cases


register("two_views_path_term_W", reference=reference_path_term_W, cases=_path_term_cases)
