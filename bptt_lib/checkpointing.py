r"""Checkpointed BPTT: keep every ``every``-th state, recompute the others on the way back.

Full BPTT stores all :math:`T + 1` states of a sequence for its backward pass.
Checkpointing (Chen et al., 2016) keeps only the states
:math:`h^{(0)}, h^{(k)}, h^{(2k)}, \dots` (the *checkpoints*, ``k = every``) during the
forward pass. The backward pass then takes the segments last to first: it reruns
the forward pass over a segment from its checkpoint (:func:`bptt_lib.bptt.forward`)
and backpropagates through the segment (:func:`bptt_lib.bptt.bptt` with ``h=`` the
segment's states and ``dh_next=`` the gradient that arrived from the segment after
it). Every step runs the same arithmetic on the same numbers as in full BPTT, so the
gradient is the same up to the order in which the parameter gradients are summed.

Cost. The states of the last segment are kept from the forward pass, so the forward
steps are :math:`T + (T - \ell)` with :math:`\ell` the length of the last segment
(:func:`forward_steps`), and besides :math:`h^{(0)}` at most :math:`\lceil T/k \rceil - 1 + k`
states are held at once (:func:`stored_states`), least near :math:`k = \sqrt{T}`. The dynamic programme
of Gruslys et al. (2016) (:func:`hsm_forward_steps`) places the stored states
optimally for a given number of slots.

Written once over the cell interface (:mod:`bptt_lib.cell`, :mod:`bptt_lib.models`):
``model="rnn"`` now, ``"lstm"`` and ``"gru"`` with Part V.
"""

from __future__ import annotations

import numpy as np

from . import bptt, models
from .validation import check_finite_result, positive_int

__all__ = ["segments", "checkpointed_grads", "forward_steps", "stored_states", "best_every",
           "hsm_forward_steps", "hsm_table"]


def segments(T: int, every: int) -> list[tuple[int, int]]:
    """The segments ``[(s0, s1), ...]`` between checkpoints: ``s0`` in 0, every, 2 every, ...; ``s1 <= T``."""
    T = positive_int("T", T)
    every = positive_int("every", every)
    return [(s0, min(s0 + every, T)) for s0 in range(0, T, every)]


def checkpointed_grads(params: dict, x, y, every: int, *, model="rnn", state0=None,
                       stats: dict | None = None) -> tuple[float, dict]:
    r"""The loss and its full-BPTT gradient, holding only every ``every``-th state in the forward pass.

    Parameters
    ----------
    params : dict
        The model's parameters (for the RNN ``U``, ``W``, ``V``, ``b``, ``c``).
    x : array_like, (T, B, D)
    y : array_like of int, (T, B)
    every : int
        The distance ``k`` between checkpoints, at least 1; ``every >= T`` is full BPTT
        (one segment).
    model : str or bptt_lib.models.Model
        ``"rnn"``, ``"lstm"`` or ``"gru"``.
    state0 : array_like, optional
        The initial state (zeros by default).
    stats : dict, optional
        If given, receives ``"forward_steps"`` (cell steps run, recomputation included),
        ``"checkpoints"`` (states kept by the forward pass) and ``"segment_states"``
        (the states one segment computes, at most ``every``).

    Returns
    -------
    loss : float
        Summed over time, averaged over the batch, as :func:`bptt_lib.rnn.loss_and_grads`.
    grads : dict
        Equal to :func:`bptt_lib.models.full_grads` up to round-off (the order of the sums).
    """
    every = positive_int("every", every)
    m = models.get_model(model)
    p, x, y, h0 = m.prepare(params, x, y, state0)
    cell = m.cell
    T = len(x)
    parts = segments(T, every)
    grads = {key: np.zeros_like(value) for key, value in p.items()}
    steps = 0
    with np.errstate(over="ignore", invalid="ignore"):
        # forward: run each segment from its checkpoint, keep only its last state
        checkpoints = [np.array(h0, copy=True)]
        for s0, s1 in parts[:-1]:
            h = bptt.forward(cell, p, x[s0:s1], checkpoints[-1], keep=False)
            steps += s1 - s0
            checkpoints.append(np.array(h[-1], copy=True))
        # backward: the last segment's states come straight from the forward pass; every
        # earlier segment is recomputed from its checkpoint (forward overwrites the workspace,
        # so each segment's states are used before the next forward call)
        loss = 0.0
        dh_next = None
        for index in reversed(range(len(parts))):
            s0, s1 = parts[index]
            h = bptt.forward(cell, p, x[s0:s1], checkpoints[index], keep=False)
            steps += s1 - s0
            seg_loss, grads, dh_next = bptt.bptt(cell, p, x[s0:s1], y[s0:s1], h=h, dh_next=dh_next, grads=grads)
            dh_next = np.array(dh_next, copy=True)
            loss += seg_loss
    grads = m.unpack(grads)
    check_finite_result("checkpointed_grads", {"loss": np.asarray(loss), **grads})
    if stats is not None:
        stats.update(forward_steps=steps, checkpoints=len(checkpoints),
                     segment_states=max(s1 - s0 for s0, s1 in parts))
    return loss, grads


def forward_steps(T: int, every: int) -> int:
    r"""Cell steps run by :func:`checkpointed_grads`: :math:`T + (T - \ell)`, :math:`\ell` the last segment's length."""
    last = segments(T, every)[-1]
    return T + (T - (last[1] - last[0]))


def stored_states(T: int, every: int) -> int:
    """States held at the peak besides :math:`h^{(0)}`: the later checkpoints plus the computed states of one segment.

    ``ceil(T / every) - 1 + min(every, T)``; the slots of :func:`hsm_forward_steps` count the same way.
    """
    parts = segments(T, every)
    return len(parts) - 1 + max(s1 - s0 for s0, s1 in parts)


def best_every(T: int) -> int:
    r"""The ``every`` with the fewest :func:`stored_states` (the smallest such), near :math:`\sqrt{T}`."""
    T = positive_int("T", T)
    return min(range(1, T + 1), key=lambda k: (stored_states(T, k), k))


def hsm_forward_steps(T: int, slots: int) -> int:
    r"""Fewest forward steps to backpropagate ``T`` steps with ``slots`` stored states (dynamic programming).

    The recursion of Gruslys et al. (2016) (their BPTT-HSM, hidden states only):
    with the state entering a stretch of ``t`` steps stored and ``m`` free slots,

    .. math::

        F(t, m) = \min_{1 \le y < t} \big( y + F(t - y, m - 1) + F(y, m) \big),

        F(t, 1) = \tfrac{t (t + 1)}{2}, \quad F(1, m) = 1, \quad F(t, m) = t \ (m \ge t):

    run ``y`` steps, store that state in a slot, do the right part with one slot fewer,
    then the left part with all ``m``. Uniform checkpointing is one such policy, so its
    :func:`forward_steps` is never fewer for the same peak memory.
    """
    return int(hsm_table(T, slots)[-1])


def hsm_table(T: int, max_slots: int) -> np.ndarray:
    """:func:`hsm_forward_steps` of ``T`` steps for every number of slots from 1 to ``max_slots``, in one pass."""
    T = positive_int("T", T)
    max_slots = positive_int("max_slots", max_slots)
    t = np.arange(T + 1)
    F = t * (t + 1) / 2.0                     # one slot: recompute from the stored start every time
    costs = [F[T]]
    for m in range(2, max_slots + 1):
        if m > T:
            costs.append(float(T))
            continue
        G = np.empty(T + 1)
        G[0] = 0.0
        G[1] = 1.0
        for n in range(2, T + 1):
            if m >= n:
                G[n] = n
                continue
            y = np.arange(1, n)
            G[n] = np.min(y + F[n - y] + G[y])
        F = G
        costs.append(F[T])
    return np.array(costs, dtype=np.int64)
