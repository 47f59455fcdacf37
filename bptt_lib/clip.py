r"""Gradient clipping, by global norm and by value.

By global norm (Pascanu, Mikolov & Bengio, 2013, algorithm 1): with
:math:`g` all gradients stacked into one vector,

.. math::

    \text{if } \lVert g \rVert > \theta: \quad g \leftarrow \theta \, \frac{g}{\lVert g \rVert}.

The direction is kept and the length is capped at :math:`\theta`.

By value (as in min-char-rnn): every entry is clipped to :math:`[-\lambda, \lambda]`.
This bounds each entry but, once any entry is clipped, changes the direction.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .validation import check_finite_result, positive_number

__all__ = ["global_norm", "clip_by_global_norm", "clip_by_value"]


def _check_grads(grads) -> dict:
    if not isinstance(grads, Mapping) or not grads:
        raise TypeError(f"grads must be a non-empty dict of arrays; got {type(grads).__name__}")
    arrays = {}
    for key, value in grads.items():
        arr = np.asarray(value)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f'grads["{key}"] must be a real numeric array; got dtype {arr.dtype}')
        arrays[key] = arr
    check_finite_result("clip", arrays)
    return arrays


def global_norm(grads: Mapping) -> float:
    """The Euclidean norm of all arrays in ``grads`` taken together.

    Computed as ``s * sqrt(sum((g / s)**2))`` with ``s`` the largest magnitude,
    so that a huge but finite gradient (entries near 1e200, the exploding case
    clipping exists for) does not overflow to an infinite norm.
    """
    arrays = _check_grads(grads)
    scale = max(float(np.max(np.abs(a))) if a.size else 0.0 for a in arrays.values())
    if scale == 0.0:
        return 0.0
    return scale * float(np.sqrt(sum(np.sum(np.square(a / scale, dtype=np.float64)) for a in arrays.values())))


def clip_by_global_norm(grads: Mapping, max_norm: float) -> tuple[dict, float]:
    """Rescale all gradients together so that their global norm is at most ``max_norm``.

    Parameters
    ----------
    grads : dict of ndarray
    max_norm : float
        The threshold :math:`\\theta > 0`.

    Returns
    -------
    clipped : dict of ndarray
        New arrays (the input is not modified), same keys and shapes.
    total_norm : float
        The global norm *before* clipping.
    """
    max_norm = positive_number("max_norm", max_norm)
    total = global_norm(grads)
    factor = max_norm / total if total > max_norm else 1.0
    return {k: np.asarray(v, dtype=np.float64) * factor for k, v in grads.items()}, total


def clip_by_value(grads: Mapping, limit: float) -> tuple[dict, float]:
    """Clip every entry of every gradient to ``[-limit, limit]``.

    Returns
    -------
    clipped : dict of ndarray
        New arrays (the input is not modified).
    total_norm : float
        The global norm *before* clipping, as for :func:`clip_by_global_norm`.
    """
    limit = positive_number("limit", limit)
    total = global_norm(grads)
    return {k: np.clip(np.asarray(v, dtype=np.float64), -limit, limit) for k, v in grads.items()}, total
