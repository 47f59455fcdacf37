r"""Truncated backpropagation through time, TBPTT(k1, k2), written once over the cell interface (chapter 11).

Williams and Peng's TBPTT(:math:`k_1, k_2`): run the network forward over the
sequence, carrying the state; every :math:`k_1` steps, at a *block end*
:math:`\tau = k_1, 2k_1, \dots` (and at :math:`\tau = T` when :math:`T` is not a
multiple of :math:`k_1`), backpropagate the losses of the steps since the
previous block end through the last :math:`k_2` steps only,
:math:`\max(1, \tau - k_2 + 1), \dots, \tau`, the state entering the first of them
held constant. The parameters stay fixed along the sequence and the gradients of
the blocks are added. TBPTT(:math:`k, k`) is the chunked "carry the state, cut
the gradient every :math:`k` steps"; TBPTT(:math:`1, k`) is chapter 7's band
(every loss carried back :math:`k` steps); TBPTT(:math:`T, T`) is full BPTT.

- :func:`tbptt_grads`: the loss and the truncated gradient for any model of
  :mod:`bptt_lib.models` (the public API); :func:`masked_tbptt_grads`: the same
  with targets :data:`bptt_lib.tasks.IGNORE` allowed (delayed recall).
- :func:`truncated_bptt`: the algorithm itself on validated inputs, for any cell
  and any output layer that gives a target :data:`~bptt_lib.tasks.IGNORE` no loss
  and no gradient (:func:`masked_output_layer`). It runs online: it keeps only
  the last :math:`k_2 + 1` states, so its memory does not grow with :math:`T`.
- :func:`block_ends`, :func:`windows`, :func:`kept_paths`: which terms
  :math:`(t, s)` of the full gradient (loss step :math:`t`, step :math:`s` where the
  weights act) it keeps; :func:`plot_kept_paths` draws them on chapter 7's triangle.
- :func:`gradient_bias`, :func:`position_error`: the bias measured against full
  BPTT (memory and time are measured with :func:`bptt_lib.timing.peak_memory`
  and :func:`bptt_lib.path_sum.time_per_call`);
  :func:`train_recall_tbptt`: delayed recall trained with TBPTT, many networks at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import bptt, long_term, models, stacked, tasks
from .tasks import IGNORE
from .validation import check_finite_result, positive_int, positive_number

__all__ = [
    "check_truncation", "block_ends", "windows", "kept_paths", "count_kept",
    "masked_output_layer", "truncated_bptt", "tbptt_grads", "masked_tbptt_grads",
    "OUTPUT_KEYS", "flat_cell_grads", "gradient_bias", "position_error",
    "RecallTBPTT", "train_recall_tbptt",
    "plot_kept_paths", "plot_bias", "plot_position", "plot_cost",
]

OUTPUT_KEYS = ("V", "c")
"""The output layer's parameters: exact under any truncation (they act at one step only)."""


def check_truncation(k1, k2) -> tuple[int, int]:
    """``(k1, k2)`` as ints, or ``ValueError`` unless both are integers with ``1 <= k1 <= k2``."""
    for name, value in (("k1", k1), ("k2", k2)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be an int with 1 <= k1 <= k2; got {name}={value!r}")
    if not 1 <= k1 <= k2:
        raise ValueError(f"TBPTT(k1, k2) needs integers with 1 <= k1 <= k2; got k1={k1}, k2={k2}")
    return int(k1), int(k2)


def block_ends(T: int, k1: int) -> list[int]:
    """The block ends :math:`\\tau = k_1, 2k_1, \\dots` up to ``T``, and ``T`` itself if it is not among them."""
    ends = list(range(k1, T + 1, k1))
    if not ends or ends[-1] != T:
        ends.append(T)
    return ends


def windows(T: int, k1: int, k2: int) -> list[tuple[int, int, int]]:
    """One ``(start, first, end)`` per block, in the book's 1-based steps.

    The losses of steps ``first .. end`` are backpropagated through steps
    ``start .. end``, with ``start = max(1, end - k2 + 1)``.
    """
    T = positive_int("T", T)
    k1, k2 = check_truncation(k1, k2)
    out, previous = [], 0
    for end in block_ends(T, k1):
        out.append((max(1, end - k2 + 1), previous + 1, end))
        previous = end
    return out


def kept_paths(T: int, k1: int, k2: int) -> frozenset:
    r"""The pairs :math:`(t, s)`, loss step :math:`t` and step :math:`s \le t` where the weights act, that TBPTT keeps.

    :math:`(t, s)` is kept if and only if :math:`t` lies in the block ending at
    :math:`\tau` and :math:`\max(1, \tau - k_2 + 1) \le s \le t`.
    """
    return frozenset((t, s) for start, first, end in windows(T, k1, k2)
                     for t in range(first, end + 1) for s in range(start, t + 1))


def count_kept(T: int, k1: int, k2: int) -> int:
    """How many of the :math:`T(T+1)/2` paths TBPTT(``k1``, ``k2``) keeps."""
    return sum((t - start + 1) for start, first, end in windows(T, k1, k2) for t in range(first, end + 1))


# --- the algorithm ----------------------------------------------------------------------


def masked_output_layer(params: dict, h: np.ndarray, y: np.ndarray, grads: dict, yhat=None):
    """:func:`bptt_lib.bptt.output_layer` for a block of steps in which targets ``IGNORE`` carry no loss.

    Steps (and examples) with target ``IGNORE`` get no loss, add nothing to ``dV``,
    ``dc`` and get a zero gradient ``dh``; the others are exactly
    :func:`~bptt_lib.bptt.output_layer`'s (the loss still averaged over the whole batch ``B``).
    """
    keep = y != IGNORE
    if keep.all():
        return bptt.output_layer(params, h, y, grads, yhat)
    dh = np.zeros(h.shape, dtype=np.result_type(h, params["V"]))
    if not keep.any():
        return 0.0, dh
    B = h.shape[1]
    part = {key: np.zeros_like(grads[key]) for key in OUTPUT_KEYS}
    rows = h[keep][:, None, :]                    # the kept (step, example) rows as a "batch" of one
    loss, dh_rows = bptt.output_layer(params, rows, y[keep][:, None], part,
                                      None if yhat is None else yhat[keep][:, None, :])
    for key in OUTPUT_KEYS:
        grads[key] += part[key] / B
    dh[keep] = dh_rows[:, 0, :] / B
    return loss / B, dh


def truncated_bptt(cell, params: dict, x: np.ndarray, y: np.ndarray, h0: np.ndarray, k1: int, k2: int, *,
                   head=masked_output_layer, grads: dict | None = None):
    """TBPTT(``k1``, ``k2``) on validated inputs: ``(loss, grads)``, for any cell of :mod:`bptt_lib.cell`.

    Runs forward block by block from ``h0``, keeping the last ``k2 + 1`` states
    only; at each block end :math:`\\tau` it calls :func:`bptt_lib.bptt.bptt` on the
    window ``max(1, tau - k2 + 1) .. tau`` with the stored states (``h=``), no
    gradient from after :math:`\\tau` (``dh_next`` zero) and the window's targets
    before the block replaced by :data:`~bptt_lib.tasks.IGNORE`, so that ``head`` (which must give
    such targets no loss and no gradient) counts each loss in its own block only.
    ``x`` (T, ..., D) and ``y`` (T, ...) are time first; ``y`` may hold ``IGNORE``.
    """
    T = len(x)
    if grads is None:
        grads = {key: np.zeros_like(value) for key, value in params.items()}
    dtype = np.result_type(*params.values(), x, h0)
    states = np.empty((k2 + 1, *h0.shape), dtype)     # states[-n:] are h^(tau - n + 1) .. h^(tau)
    states[-1] = h0
    n_valid, loss, done = 1, 0.0, 0
    for end in block_ends(T, k1):
        m = end - done                                # steps of this block
        kept = min(n_valid, k2 + 1 - m)               # earlier states still inside the next window
        states[k2 + 1 - m - kept:k2 + 1 - m] = states[k2 + 1 - kept:].copy()
        h_block = bptt.forward(cell, params, x[done:end], states[k2 - m])
        states[k2 + 1 - m:] = h_block[1:]
        n_valid = kept + m
        start = max(1, end - k2 + 1)
        y_window = np.array(y[start - 1:end])
        y_window[:done + 1 - start] = IGNORE          # losses of earlier blocks: not this block's
        block_loss, grads, _ = bptt.bptt(cell, params, x[start - 1:end], y_window,
                                         h=states[k2 + 1 - (end - start + 2):], grads=grads, head=head)
        loss = loss + block_loss
        done = end
    return loss, grads


def tbptt_grads(params: dict, x, y, k1, k2, *, model="rnn", state0=None) -> tuple[float, dict]:
    r"""The loss and the TBPTT(``k1``, ``k2``) gradient of ``model`` (``"rnn"``, and from Part V ``"lstm"``, ``"gru"``).

    For each block end :math:`\tau` in :math:`k_1, 2k_1, \dots` and, when :math:`T` is
    not a multiple of :math:`k_1`, :math:`\tau = T`: the losses of the steps after the
    previous block end up to :math:`\tau` are backpropagated through steps
    :math:`\max(1, \tau - k_2 + 1), \dots, \tau` only, the state entering the first
    of them held constant. The parameters are fixed along the sequence.

    Parameters
    ----------
    params : dict
        The model's parameters (for the RNN ``U, W, V, b, c``, as :func:`bptt_lib.rnn.init_params`).
    x : array_like, (T, B, D)
    y : array_like of int, (T, B)
    k1, k2 : int
        ``1 <= k1 <= k2``; ``k1 = k2 = T`` is full BPTT.
    model : str
        A name of :data:`bptt_lib.models.MODEL_MODULES`.
    state0 : optional
        The initial state (zeros by default): (B, H) for the RNN and the GRU, a pair for the LSTM.

    Returns
    -------
    loss : float
        The full loss, summed over time and averaged over the batch (as
        :func:`bptt_lib.rnn.loss_and_grads`).
    grads : dict
        The sum over blocks; the keys and shapes of ``params``.

    Raises
    ------
    ValueError
        If ``k1``, ``k2`` are not integers with ``1 <= k1 <= k2``, and for bad inputs
        (as the model's validation).
    FloatingPointError
        If the loss or a gradient is not finite.
    """
    return _tbptt("tbptt_grads", params, x, y, k1, k2, model=model, state0=state0, masked=False)


def masked_tbptt_grads(params: dict, x, y, k1, k2, *, model="rnn", state0=None) -> tuple[float, dict]:
    """:func:`tbptt_grads` with targets :data:`bptt_lib.tasks.IGNORE` allowed: they carry no loss.

    With ``k1 = k2 = T`` and the RNN it equals :func:`bptt_lib.tasks.masked_loss_and_grads`.
    """
    return _tbptt("masked_tbptt_grads", params, x, y, k1, k2, model=model, state0=state0, masked=True)


def _prepare(m, params, x, y, state0, masked: bool):
    """``m.prepare``, with targets ``IGNORE`` let through if ``masked`` (at least one target is required)."""
    y_raw = np.asarray(y)
    ignored = None
    if masked and y_raw.dtype.kind in "iu":
        ignored = y_raw == IGNORE
        y = np.where(ignored, 0, y_raw)               # validated as classes; the IGNOREs are put back below
    p, x, y, h0 = m.prepare(params, x, y, state0)
    if ignored is not None:
        if ignored.all():
            raise ValueError("y has no step with a target (every entry is IGNORE)")
        y = np.where(ignored, IGNORE, y)
    return p, x, y, h0


def _tbptt(what, params, x, y, k1, k2, *, model, state0, masked):
    k1, k2 = check_truncation(k1, k2)
    m = models.get_model(model)
    p, x, y, h0 = _prepare(m, params, x, y, state0, masked)
    with np.errstate(over="ignore", invalid="ignore"):
        loss, grads = truncated_bptt(m.cell, p, x, y, h0, k1, k2)
    grads = m.unpack(grads)
    check_finite_result(what, {"loss": np.asarray(loss), **grads})
    return float(loss), grads


# --- the bias -----------------------------------------------------------------------------


def flat_cell_grads(grads: dict) -> np.ndarray:
    """The gradients of the cell's parameters (every key but the output layer's ``V``, ``c``) as one vector."""
    return np.concatenate([np.ravel(grads[key]) for key in sorted(grads) if key not in OUTPUT_KEYS])


def gradient_bias(params: dict, x, y, k1, k2, *, model="rnn", state0=None, full: dict | None = None
                  ) -> tuple[float, float]:
    r"""Relative error and cosine of the TBPTT gradient against full BPTT, over the cell's parameters.

    With :math:`g` the full gradient and :math:`\tilde g` the truncated one (of every
    parameter but ``V``, ``c``, which truncation leaves exact), returns
    :math:`\lVert \tilde g - g \rVert / \lVert g \rVert` and
    :math:`\tilde g \cdot g / (\lVert \tilde g \rVert \lVert g \rVert)`. Targets
    :data:`~bptt_lib.tasks.IGNORE` are allowed; the full gradient is TBPTT(:math:`T, T`) (full BPTT, tested),
    or ``full`` if given (the gradients of that same full computation, to save repeating it).
    """
    if full is None:
        T = np.shape(x)[0]
        _, full = masked_tbptt_grads(params, x, y, T, T, model=model, state0=state0)
    _, trunc = masked_tbptt_grads(params, x, y, k1, k2, model=model, state0=state0)
    g, gt = flat_cell_grads(full), flat_cell_grads(trunc)
    return float(np.linalg.norm(gt - g) / np.linalg.norm(g)), float(gt @ g / (np.linalg.norm(gt) * np.linalg.norm(g)))


def position_error(params: dict, x, y, k: int, *, model="rnn", state0=None) -> np.ndarray:
    r"""For TBPTT(:math:`k, k`): how much of each loss term's gradient is dropped, by its position in its block.

    For each loss step :math:`t` the full gradient :math:`g_t` of :math:`L^{(t)}` alone
    (cell parameters) is compared with the part TBPTT(:math:`k, k`) keeps,
    :math:`\tilde g_t` (the same loss backpropagated to the start of its block only).
    Returns an array (k,): entry ``j - 1`` is the median, over the steps :math:`t` at
    position ``j`` of a complete block that have a target, of
    :math:`\lVert \tilde g_t - g_t \rVert / \lVert g_t \rVert`. Targets :data:`~bptt_lib.tasks.IGNORE` are allowed.
    """
    k, _ = check_truncation(k, k)
    m = models.get_model(model)
    p, x, y, h0 = _prepare(m, params, x, y, state0, masked=True)
    T = len(x)
    errors = [[] for _ in range(k)]
    with np.errstate(over="ignore", invalid="ignore"):
        h = bptt.forward(m.cell, p, x, h0)
        for t in range(1, (T // k) * k + 1):
            if np.all(y[t - 1] == IGNORE):
                continue
            only_t = np.full_like(y[:t], IGNORE)
            only_t[t - 1] = y[t - 1]
            start = (t - 1) // k * k + 1
            full = {key: np.zeros_like(v) for key, v in p.items()}
            part = {key: np.zeros_like(v) for key, v in p.items()}
            bptt.bptt(m.cell, p, x[:t], only_t, h=h[:t + 1], grads=full, head=masked_output_layer)
            bptt.bptt(m.cell, p, x[start - 1:t], only_t[start - 1:], h=h[start - 1:t + 1], grads=part,
                      head=masked_output_layer)
            g, gt = flat_cell_grads(m.unpack(full)), flat_cell_grads(m.unpack(part))
            errors[(t - 1) % k].append(np.linalg.norm(gt - g) / np.linalg.norm(g))
    return np.array([np.median(e) if e else np.nan for e in errors])


# --- cost ---------------------------------------------------------------------------------


# --- training on delayed recall -----------------------------------------------------------


@dataclass
class RecallTBPTT:
    """What :func:`train_recall_tbptt` returns for ``R`` networks.

    Attributes
    ----------
    gap, k1, k2 : int
    params : list of dict
        Trained parameters.
    loss, grad_norm : ndarray, (steps, R)
        Loss and global norm of the truncated gradient (before clipping).
    accuracy : ndarray, (R,)
        Accuracy on the network's evaluation batch (:func:`bptt_lib.long_term.evaluation_batch`).
    """

    gap: int
    k1: int
    k2: int
    params: list
    loss: np.ndarray
    grad_norm: np.ndarray
    accuracy: np.ndarray


def train_recall_tbptt(gap: int, initials: list, seeds, k1: int, k2: int, *, n_symbols: int = 4, extra: int = 5,
                       batch: int = 32, steps: int = 100, lr: float = 0.5, max_norm: float = 1.0,
                       eval_batch: int = 256) -> RecallTBPTT:
    """:func:`bptt_lib.long_term.train_recall_many` with the TBPTT(``k1``, ``k2``) gradient in place of full BPTT.

    Network ``r`` starts from ``initials[r]``, trains on the batches of
    :func:`bptt_lib.tasks.recall_batches` with seed ``seeds[r]`` (sequences of
    ``gap + extra`` steps), its own gradient clipped to global norm ``max_norm``,
    plain SGD; all networks at once, by :func:`truncated_bptt` over
    :class:`bptt_lib.stacked.StackedCell` with the stacked masked output layer.
    """
    gap, extra = positive_int("gap", gap), positive_int("extra", extra)
    k1, k2 = check_truncation(k1, k2)
    steps, lr, max_norm = positive_int("steps", steps), positive_number("lr", lr), positive_number("max_norm", max_norm)
    seeds = [positive_int("seeds[r]", s, low=0) for s in seeds]
    if not initials or len(initials) != len(seeds):
        raise ValueError("initials and seeds must be non-empty and of equal length; "
                         f"got {len(initials)} and {len(seeds)}")
    P = stacked.stack_params(initials)
    N = len(seeds)
    cell = stacked.StackedCell("tanh", np.tanh, "tanh_vjp")
    data = [tasks.recall_batches(n_symbols, gap, gap + extra, batch, s) for s in seeds]
    losses, norms = [], []
    for step in range(steps):
        drawn = [d(step) for d in data]
        x = np.stack([d[0] for d in drawn], axis=1)                     # (T, N, B, D)
        y = np.stack([d[1] for d in drawn], axis=1)                     # (T, N, B)
        params = {"U": stacked._stack(P["U"]), "W": stacked._stack(P["W"]), "V": stacked._stack(P["V"]),
                  "b": stacked._stack(P["b"][:, None, :]), "c": stacked._stack(P["c"][:, None, :])}
        with np.errstate(all="ignore"):
            loss, grads = truncated_bptt(cell, params, x, y, np.zeros((N, batch, P["W"].shape[1])), k1, k2,
                                         head=stacked._masked_output_layer)
        grads = {key: np.asarray(value).reshape(P[key].shape) for key, value in grads.items()}
        norm = np.sqrt(sum(np.sum(g.reshape(N, -1) ** 2, axis=1) for g in grads.values()))
        factor = np.where(norm > max_norm, max_norm / norm, 1.0)
        for key in stacked.STACK_KEYS:
            P[key] = P[key] - lr * (grads[key] * factor.reshape((-1,) + (1,) * (P[key].ndim - 1)))
        losses.append(np.asarray(loss))
        norms.append(norm)
    trained = stacked.unstack_params(P)
    accuracy = np.array([
        tasks.accuracy(p, *long_term.evaluation_batch(gap, n_symbols=n_symbols, extra=extra, batch=eval_batch,
                                                      seed=s))
        for p, s in zip(trained, seeds)])
    return RecallTBPTT(gap, k1, k2, trained, np.array(losses), np.array(norms), accuracy)


# --- figures ------------------------------------------------------------------------------


def plot_kept_paths(T: int, settings):
    """Chapter 7's triangle of paths, one panel per ``(k1, k2)`` in ``settings``: kept paths filled, dropped open."""
    import matplotlib.pyplot as plt

    from .plotting import COLORS

    fig, axes = plt.subplots(1, len(settings), figsize=(3.6 * len(settings), 3.6), squeeze=False)
    for ax, (k1, k2) in zip(axes[0], settings):
        kept = kept_paths(T, k1, k2)
        for t in range(1, T + 1):
            for s in range(1, t + 1):
                on = (t, s) in kept
                ax.plot(s, t, "o", ms=9, color=COLORS[0] if on else "white", mec=COLORS[0] if on else "gray",
                        mew=0.8)
        for _start, first, end in windows(T, k1, k2):
            if k1 > 1:
                ax.axhspan(first - 0.5, end + 0.5, color=COLORS[1], alpha=0.07 if (end // k1) % 2 else 0.0, lw=0)
        ax.set(xlim=(0.3, T + 0.7), ylim=(T + 0.7, 0.3), xlabel="step $s$ where the weights act",
               title=f"TBPTT({k1}, {k2}): {len(kept)} of {T * (T + 1) // 2} paths")
        ax.set_xticks(range(1, T + 1))
        ax.set_yticks(range(1, T + 1))
        ax.grid(False)
    axes[0, 0].set_ylabel("loss term $t$")
    fig.tight_layout()
    return fig


def _spread(ax, xs, values, color, label, marker="o"):
    """Each seed's value as a small marker, the median as a line (``values`` (len(xs), seeds))."""
    values = np.asarray(values)
    for s in range(values.shape[1]):
        ax.plot(xs, values[:, s], marker, color=color, ms=3, alpha=0.5, ls="none")
    ax.plot(xs, np.median(values, axis=1), "-", marker=marker, ms=4, color=color, label=label)


def plot_bias(k2_values, rel: dict, cos: dict):
    """Relative error (log scale) and cosine against ``k2``; ``rel[name]``, ``cos[name]``: (len(k2_values), seeds)."""
    import matplotlib.pyplot as plt

    from .plotting import COLORS

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, name in enumerate(rel):
        _spread(left, k2_values, rel[name], COLORS[i], name, "os^D"[i % 4])
        _spread(right, k2_values, cos[name], COLORS[i], name, "os^D"[i % 4])
    left.set_yscale("log")
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(k2_values), [str(k) for k in k2_values])
        ax.minorticks_off()
    left.set(xlabel="window length $k = k_2$", ylabel=r"$\|\tilde g - g\| / \|g\|$ (log scale)",
             title="relative error of the truncated gradient")
    right.set(xlabel="window length $k = k_2$", ylabel=r"cosine of $\tilde g$ and $g$",
              title="direction of the truncated gradient")
    right.axhline(1.0, color="gray", lw=0.8, ls="--")
    left.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_position(k: int, errors: dict):
    """Median relative error of each loss term's kept gradient against its position in the block, per network."""
    import matplotlib.pyplot as plt

    from .plotting import COLORS

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    positions = np.arange(1, k + 1)
    for i, name in enumerate(errors):
        _spread(ax, positions, np.asarray(errors[name]).T, COLORS[i], name, "os^D"[i % 4])
    ax.set(xlabel=f"position $j$ of the loss step in its block of $k = {k}$",
           ylabel=r"$\|\tilde g_t - g_t\| / \|g_t\|$", ylim=(0, None),
           title="share of each loss term's gradient that TBPTT(k, k) drops")
    ax.set_xticks(positions)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_cost(k_values, memory: dict, seconds: dict, T: int):
    """Peak memory (left) and time per gradient (right) against ``k``; one line per method, full BPTT as a level."""
    import matplotlib.pyplot as plt

    from .plotting import COLORS

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, name in enumerate(memory):
        values = np.asarray(memory[name], dtype=float)
        if values.ndim == 0:
            left.axhline(values / 2**20, color="black", ls="--", lw=1, label=name)
        else:
            left.loglog(k_values, values / 2**20, "o-", color=COLORS[i], ms=4, label=name)
    for i, name in enumerate(seconds):
        values = np.asarray(seconds[name], dtype=float)
        if values.ndim == 0:
            right.axhline(1e3 * values, color="black", ls="--", lw=1, label=name)
        else:
            right.loglog(k_values, 1e3 * values, "o-", color=COLORS[i], ms=4, label=name)
    left.set(xlabel="$k$", ylabel="peak memory (MiB)", title=f"memory of one gradient, T = {T}")
    right.set(xlabel="$k$", ylabel="time (ms)", title=f"time of one gradient, T = {T}")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig
