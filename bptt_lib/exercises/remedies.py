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


def _norm(grads, squared=False):
    total = sum(np.sum(np.asarray(v) ** 2) for v in grads.values())
    return total if squared else np.sqrt(total)


def _scaled(grads, factor):
    return {k: np.asarray(v) * factor for k, v in grads.items()}


CLIP_MISTAKES = {
    "each array was clipped by its own norm; the global norm of all arrays together decides":
        lambda grads, max_norm: {k: v * min(1.0, max_norm / np.linalg.norm(v)) for k, v in grads.items()},
    "the gradients were rescaled also when their norm was already below max_norm (clip only above it)":
        lambda grads, max_norm: _scaled(grads, max_norm / _norm(grads)),
    "the squared norm was used where the norm belongs (take the square root of the sum of squares)":
        lambda grads, max_norm: _scaled(grads, min(1.0, max_norm / _norm(grads, squared=True))),
    "the scale factor is upside down: it is max_norm / norm, not norm / max_norm":
        lambda grads, max_norm: _scaled(grads, max(1.0, _norm(grads) / max_norm)),
}


def _qr(A):
    return np.linalg.qr(A)


ORTHOGONALISE_MISTAKES = {
    "the sign fix was left out: Q of np.linalg.qr has diag(R) of either sign; multiply column i by sign(R_ii)":
        lambda A: _qr(A)[0],
    "the signs were applied to the rows of Q; they belong to its columns (Q * sign(diag(R)))":
        lambda A: np.sign(np.diag(_qr(A)[1]))[:, None] * _qr(A)[0],
    "Qᵀ was returned instead of Q":
        lambda A: (_qr(A)[0] * np.sign(np.diag(_qr(A)[1]))).T,
}

register("remedies_clip_by_global_norm", reference=reference_clip_by_global_norm, cases=_clip_cases,
         mistakes=CLIP_MISTAKES)
register("remedies_orthogonalise", reference=reference_orthogonalise, cases=_orthogonalise_cases,
         mistakes=ORTHOGONALISE_MISTAKES)
