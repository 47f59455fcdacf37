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


def _path_term_variant(g, h, W, t, k, *, W_T=True, order="W_first", start_tanh=True, state_shift=0,
                       transpose=False):
    """The path term with one ingredient changed (for the mistakes).

    Correct, for rows: ``G = g * (1 - h[t]**2)``, then for j = t, ..., k + 1:
    ``G = (G @ W) * (1 - h[j - 1]**2)``; the result is ``G.T @ h[k - 1]``.
    """
    A = W if W_T else W.T
    G = g * (1 - h[t] ** 2) if start_tanh else g
    for j in range(t, k, -1):
        G = (G @ A) * (1 - h[j - 1] ** 2) if order == "W_first" else (G * (1 - h[j - 1] ** 2)) @ A
    state = h[k - 1 + state_shift]
    return state.T @ G if transpose else G.T @ state


PATH_TERM_MISTAKES = {
    "W was used where Wᵀ belongs (for rows, Wᵀ δ is δ @ W)":
        lambda **kw: _path_term_variant(**kw, W_T=False),
    "diag(1 − (h⁽ʲ⁻¹⁾)²) was applied before Wᵀ; stepping from j to j − 1 is diag(1 − (h⁽ʲ⁻¹⁾)²) Wᵀ δ":
        lambda **kw: _path_term_variant(**kw, order="diag_first"),
    "the tanh factor of step t was left out: δ⁽ᵗ,ᵗ⁾ = diag(1 − (h⁽ᵗ⁾)²) g":
        lambda **kw: _path_term_variant(**kw, start_tanh=False),
    "h⁽ᵏ⁾ was used where h⁽ᵏ⁻¹⁾ belongs: W meets the state that entered step k, h[k - 1]":
        lambda **kw: _path_term_variant(**kw, state_shift=1),
    "the outer product is transposed: the term is δ⁽ᵗ,ᵏ⁾ h⁽ᵏ⁻¹⁾ᵀ (rows of W ↔ units of δ)":
        lambda **kw: _path_term_variant(**kw, transpose=True),
}

register("two_views_path_term_W", reference=reference_path_term_W, cases=_path_term_cases,
         mistakes=PATH_TERM_MISTAKES)
