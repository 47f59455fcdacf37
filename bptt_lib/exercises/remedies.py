"""Checkers for the chapter "Remedies: clipping, initialisation, ReLU"."""

from __future__ import annotations

import numpy as np

from .. import remedies
from ..clip import clip_by_global_norm
from . import register


def reference_clip_by_global_norm(grads, max_norm):
    """The clipped gradients of :func:`bptt_lib.clip.clip_by_global_norm` (the dict only).

    Parameters
    ----------
    grads : dict of ndarray
    max_norm : float

    Returns
    -------
    dict of ndarray
        Same keys and shapes; rescaled together when their global norm exceeds ``max_norm``.
    """
    clipped, _ = clip_by_global_norm(grads, max_norm)
    return clipped


def _clip_cases(rng):
    def grads(scale):
        return {"W": scale * rng.standard_normal((3, 3)), "b": scale * rng.standard_normal(3),
                "V": scale * rng.standard_normal((2, 3))}

    # Far above the threshold, just above, below (no change), and one array alone:
    # a per-array clip passes the last case but fails the first ones.
    return [
        {"grads": grads(10.0), "max_norm": 1.0},
        {"grads": grads(1.0), "max_norm": 3.5},
        {"grads": grads(0.1), "max_norm": 5.0},
        {"grads": {"W": np.array([[30.0, -40.0]])}, "max_norm": 5.0},
        {"grads": grads(3.0), "max_norm": 0.25},
    ]


def reference_orthogonalise(A):
    """The Q of A = QR with diag(R) > 0, from :func:`bptt_lib.remedies.orthogonalise`."""
    return remedies.orthogonalise(A)


def _orthogonalise_cases(rng):
    # Gaussian matrices of several sizes; a 1 x 1 case (Q = sign(A)); a matrix whose
    # plain QR has negative diagonal entries in R, so a missing sign fix is caught.
    return [
        {"A": rng.standard_normal((4, 4))},
        {"A": rng.standard_normal((7, 7))},
        {"A": np.array([[-2.0]])},
        {"A": -np.eye(3) + 0.3 * rng.standard_normal((3, 3))},
        {"A": rng.standard_normal((2, 2))},
    ]


register("remedies_clip_by_global_norm", reference=reference_clip_by_global_norm, cases=_clip_cases)
register("remedies_orthogonalise", reference=reference_orthogonalise, cases=_orthogonalise_cases)
