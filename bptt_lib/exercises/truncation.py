r"""Exercise checkers of chapter 11, *Truncated BPTT*.

- ``truncation_tbptt``: ``tbptt_W(g, h, W, k1, k2)``, the TBPTT(:math:`k_1, k_2`)
  gradient of the recurrent weights for a batch stored as rows: ``g`` (T, B, H)
  holds :math:`\nabla_{h^{(t)}} L^{(t)}` through each step's own output (``g[t - 1]``),
  ``h`` (T + 1, B, H) the states (``h[t]`` :math:`= h^{(t)}`), ``W`` (H, H); the result
  is :math:`\sum` over the kept paths of :math:`\delta^{(t,s)} h^{(s-1)\top}`, shape (H, H).

The reference adds chapter 7's single-path terms (:func:`bptt_lib.path_sum.path_term`)
over :func:`bptt_lib.truncation.kept_paths`: the definition, not a recursion.
"""

from __future__ import annotations

import numpy as np

from .. import path_sum, truncation
from . import register

__all__ = ["reference_tbptt_W", "tbptt_W_variant"]


def reference_tbptt_W(g, h, W, k1, k2):
    """The TBPTT(k1, k2) gradient of ``W``: the path terms ``(t, s)`` of :func:`bptt_lib.truncation.kept_paths`."""
    T, B = g.shape[:2]
    no_inputs = np.zeros((T, B, 1))            # x enters only the U term, which is not asked for
    total = np.zeros_like(W)
    for t, s in sorted(truncation.kept_paths(T, k1, k2)):
        total += path_sum.path_term(g[t - 1], h, no_inputs, W, t, s)["W"]
    return total


def tbptt_W_variant(g, h, W, k1, k2, *, depth=None, extra=0, mask_earlier=True, cut=True, last_block=True):
    """The block recursion with one ingredient changed (for the mistakes).

    Correct: for each block end ``tau`` (every ``k1`` steps, and ``T``), start with
    ``dh_next = 0`` at ``tau``, walk back to ``max(1, tau - k2 + 1)``, adding ``g[t - 1]``
    only for the steps of this block.
    """
    T = g.shape[0]
    depth = k2 if depth is None else depth
    ends = list(range(k1, T + 1, k1))
    if last_block and (not ends or ends[-1] != T):
        ends.append(T)
    dW = np.zeros_like(W)
    dh_next = np.zeros_like(g[0])
    previous = 0
    for end in ends:
        start = 1 if not cut else max(1, end - depth + 1 - extra)
        if cut:
            dh_next = np.zeros_like(g[0])
        for t in range(end, start - 1, -1):
            own = g[t - 1] if (t > previous or not mask_earlier) else 0.0
            da = (dh_next + own) * (1 - h[t] ** 2)
            dW += da.T @ h[t - 1]
            dh_next = da @ W
        previous = end
    return dW


def _full_bptt_W(g, h, W, k1, k2):
    """Not truncated at all: full BPTT's gradient of ``W``."""
    return tbptt_W_variant(g, h, W, len(g), len(g))


def _cases(rng):
    cases = []
    # (T, B, H, k1, k2): overlapping windows with T not a multiple of k1, chunks, the band, a short tail, k2 = T
    for T, B, H, k1, k2 in [(11, 2, 3, 3, 5), (9, 3, 3, 3, 3), (8, 2, 4, 1, 3), (10, 2, 3, 4, 6), (7, 1, 2, 2, 7)]:
        cases.append({
            "g": rng.standard_normal((T, B, H)),
            "h": np.tanh(1.5 * rng.standard_normal((T + 1, B, H))),
            "W": rng.standard_normal((H, H)),
            "k1": k1,
            "k2": k2,
        })
    return cases


TBPTT_MISTAKES = {
    "the window is one step too long: the losses of the block ending at τ go back to step τ − k2 + 1, "
    "not τ − k2":
        lambda **kw: tbptt_W_variant(**kw, extra=1),
    "the losses of a block were backpropagated through k1 steps instead of k2":
        lambda **kw: tbptt_W_variant(**kw, depth=kw["k1"]),
    "the losses of earlier blocks were backpropagated again in every window that contains them; "
    "each window carries only its own block's losses":
        lambda **kw: tbptt_W_variant(**kw, mask_earlier=False),
    "the gradient was not cut: dh_next carried across block boundaries gives full BPTT":
        _full_bptt_W,
    "the last, shorter block was dropped: when T is not a multiple of k1, τ = T is a block end too":
        lambda **kw: tbptt_W_variant(**kw, last_block=False),
}

register("truncation_tbptt", reference=reference_tbptt_W, cases=_cases, mistakes=TBPTT_MISTAKES)
