r"""Chapter 10, long-term dependencies: the gap sweep and how far gradients reach.

- :func:`train_recall` trains the vanilla RNN on the delayed-recall task of
  :mod:`bptt_lib.tasks` with full BPTT and clipping, through the shared loop
  :func:`bptt_lib.training.train`, and scores it on a fresh evaluation batch;
  :func:`gap_sweep` does this for a list of gaps.
- :func:`backward_norms` measures how much of the gradient of one step's loss
  :math:`L^{(t)}` reaches each earlier hidden state,

  .. math::

      n_j = \Big\lVert \frac{\partial L^{(t)}}{\partial h^{(t-j)}} \Big\rVert
          = \Big\lVert \Big(\prod_{i=0}^{j-1} \operatorname{diag}\big(1 - (h^{(t-i)})^2\big) W\Big)^{\!\top}
            V^\top \nabla_{o^{(t)}} L^{(t)} \Big\rVert, \qquad j = 0, 1, \dots, t - 1,

  and :func:`gradient_ratio` is :math:`n_k / n_0`: the fraction of the error
  signal that survives the trip back over the gap :math:`k`.
- :func:`shift_register_params` builds, by hand, a vanilla RNN that solves the
  task for a given gap: proof that the failure to learn long gaps is a failure
  of learning, not of the architecture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import rnn, tasks
from .tasks import IGNORE
from .training import History, train
from .validation import as_array, positive_int, positive_number

__all__ = [
    "RecallRun", "train_recall", "gap_sweep", "backward_norms", "gradient_ratio",
    "decay_rate", "shift_register_params", "evaluation_batch",
]

EVAL_SEED = 10_000
"""Seed offset of the evaluation batches: never equal to a training batch's seed."""


@dataclass
class RecallRun:
    """One training run of :func:`train_recall`.

    Attributes
    ----------
    gap : int
    params : dict
        Trained parameters.
    initial : dict
        The parameters before training.
    history : History
        Loss and gradient norm per step.
    accuracy : float
        Accuracy on a fresh evaluation batch, at the steps :math:`t > k` (the
        steps whose target lies ``gap`` steps back).
    """

    gap: int
    params: dict
    initial: dict
    history: History
    accuracy: float


def evaluation_batch(gap: int, *, n_symbols: int = 4, extra: int = 5, batch: int = 256, seed: int = 0):
    """The fixed evaluation batch of :func:`train_recall`: ``T = gap + extra``."""
    T = positive_int("gap", gap) + positive_int("extra", extra)
    return tasks.delayed_recall(n_symbols, gap, T, batch, np.random.default_rng([EVAL_SEED, seed]))


def train_recall(gap: int, *, n_symbols: int = 4, n_hidden: int = 32, extra: int = 5, batch: int = 32,
                 steps: int = 300, lr: float = 0.5, max_norm: float = 1.0, seed: int = 0,
                 eval_batch: int = 256, w_gain: float = 1.0) -> RecallRun:
    r"""Train a vanilla RNN on delayed recall with gap ``gap`` and score it.

    Sequences have ``T = gap + extra`` steps, so ``extra`` steps per sequence
    carry a target. Every step draws a fresh batch (:func:`bptt_lib.tasks.recall_batches`);
    the loss is :func:`bptt_lib.tasks.masked_loss_and_grads`, full BPTT, with the
    gradient clipped to global norm ``max_norm``.

    Parameters
    ----------
    gap : int
        The lag :math:`k`.
    n_symbols : int
        Symbols :math:`D = K`; chance accuracy is ``1 / n_symbols``.
    n_hidden : int
        Hidden units :math:`H`.
    extra : int
        Steps with a target per sequence.
    batch, steps, lr, max_norm :
        Batch size, number of SGD steps, learning rate, clipping threshold.
    seed : int
        Seeds the initial parameters, the training batches and the evaluation batch.
    eval_batch : int
        Size of the evaluation batch.
    w_gain : float
        Multiplies the initial recurrent matrix :math:`W` of
        :func:`bptt_lib.rnn.init_params` (entries of standard deviation
        :math:`1/\sqrt{H}`), to start nearer to or further from vanishing gradients.

    Returns
    -------
    RecallRun
    """
    gap, extra = positive_int("gap", gap), positive_int("extra", extra)
    w_gain = positive_number("w_gain", w_gain)
    initial = rnn.init_params(n_symbols, n_hidden, n_symbols, rng=np.random.default_rng(seed))
    initial["W"] = w_gain * initial["W"]
    data = tasks.recall_batches(n_symbols, gap, gap + extra, batch, seed)
    params, history = train(initial, data, steps=steps, lr=lr, max_norm=max_norm,
                            loss_and_grads=tasks.masked_loss_and_grads)
    x, y = evaluation_batch(gap, n_symbols=n_symbols, extra=extra, batch=eval_batch, seed=seed)
    return RecallRun(gap, params, initial, history, tasks.accuracy(params, x, y))


def gap_sweep(gaps, **kwargs) -> list[RecallRun]:
    """:func:`train_recall` for each gap in ``gaps``, with the same settings (``kwargs``)."""
    gaps = [positive_int("gaps[i]", g) for g in gaps]
    if not gaps:
        raise ValueError("gaps must be a non-empty sequence of positive ints")
    return [train_recall(g, **kwargs) for g in gaps]


def backward_norms(params: dict, x, y, t: int | None = None) -> np.ndarray:
    r"""Norms of :math:`\partial L^{(t)} / \partial h^{(t-j)}` for :math:`j = 0, \dots, t-1`.

    Only the loss of step ``t`` is kept; :func:`bptt_lib.rnn.backward` then
    returns, as its total hidden-state gradients, exactly
    :math:`\partial L^{(t)}/\partial h^{(s)}` for every :math:`s \le t`.

    Parameters
    ----------
    params : dict
    x : array_like, (T, B, D)
    y : array_like of int, (T, B)
        Targets; ``y[t - 1]`` must be a class at every example.
    t : int, optional
        The step whose loss is followed back; the last step ``T`` by default.

    Returns
    -------
    ndarray, (t,)
        Entry ``j`` is the root-mean-square over the batch of
        :math:`\lVert \partial L^{(t)}_b / \partial h^{(t-j)}_b \rVert`, with
        :math:`L^{(t)}_b` example ``b``'s loss at step ``t``.
    """
    sizes: dict = {}
    x = as_array("x", x, ("T", "B", "D"), sizes)
    y = as_array("y", y, ("T", "B"), sizes, kind="int")
    T, B = y.shape
    t = T if t is None else t
    t = positive_int("t", t, high=T)
    if np.any(y[t - 1] == IGNORE):
        raise ValueError(f"y[t - 1] (step t={t}) must have a target for every example; it holds IGNORE")
    only_t = np.full_like(y, IGNORE)
    only_t[t - 1] = y[t - 1]
    _, _, grad_h = tasks.masked_backward(params, x, only_t)
    # backward averages over the batch; times B gives each example's own gradient.
    per_example = np.linalg.norm(B * grad_h[:t], axis=-1)          # (t, B); row s - 1 is h^(s)
    rms = np.sqrt(np.mean(per_example**2, axis=1))
    return rms[::-1].copy()                                          # entry j is h^(t - j)


def gradient_ratio(params: dict, gap: int, *, n_symbols: int | None = None, extra: int = 5,
                   batch: int = 256, seed: int = 0) -> float:
    r"""The fraction :math:`n_k / n_0` of the last step's gradient that reaches ``gap`` steps back.

    Measured on the evaluation batch of :func:`train_recall` (``T = gap + extra``),
    from the loss of the last step.
    """
    gap = positive_int("gap", gap)
    n_symbols = np.shape(params["U"])[1] if n_symbols is None else n_symbols
    x, y = evaluation_batch(gap, n_symbols=n_symbols, extra=extra, batch=batch, seed=seed)
    norms = backward_norms(params, x, y)
    return float(norms[gap] / norms[0])


def decay_rate(norms) -> float:
    r"""Least-squares slope of :math:`\log_{10} n_j` against :math:`j`: decades lost per step back."""
    norms = np.asarray(norms, dtype=float)
    if norms.ndim != 1 or norms.size < 2 or np.any(norms <= 0):
        raise ValueError(f"norms must be a 1-d array of at least 2 positive numbers; got shape {norms.shape}")
    return float(np.polyfit(np.arange(norms.size), np.log10(norms), 1)[0])


def shift_register_params(n_symbols: int, gap: int, *, n_hidden: int | None = None, gain: float = 6.0) -> dict:
    r"""A hand-built vanilla RNN that solves delayed recall with gap ``gap``.

    The hidden state is a shift register of :math:`k + 1` slots, each holding
    one symbol as :math:`m = \lceil \log_2 D \rceil` signs :math:`\pm 1`: slot 1
    is written from the input, slot :math:`j + 1` copies slot :math:`j`, so at
    step :math:`t` slot :math:`j` holds :math:`s^{(t-j+1)}` and the output reads
    slot :math:`k + 1`. With a large ``gain`` every tanh is saturated and each
    copy is almost exact (:math:`\tanh(g \tanh g) \approx \tanh g`).

    Parameters
    ----------
    n_symbols : int
        :math:`D = K \ge 2`.
    gap : int
        :math:`k \ge 1`.
    n_hidden : int, optional
        :math:`H \ge m (k + 1)`; unused units get zero weights. Default :math:`m(k + 1)`.
    gain : float
        Weight scale :math:`g > 0`.

    Returns
    -------
    dict
        ``U`` (H, D), ``W`` (H, H), ``V`` (D, H), ``b`` (H,), ``c`` (D,).
    """
    n_symbols = positive_int("n_symbols", n_symbols, low=2)
    gap = positive_int("gap", gap)
    m = int(np.ceil(np.log2(n_symbols)))
    needed = m * (gap + 1)
    H = needed if n_hidden is None else positive_int("n_hidden", n_hidden, low=needed)
    gain = positive_number("gain", gain)
    # Symbol d as m signs: the binary digits of d, 0 -> -1 and 1 -> +1.
    code = np.array([[1.0 if (d >> i) & 1 else -1.0 for i in range(m)] for d in range(n_symbols)])  # (D, m)
    U, W, V = np.zeros((H, n_symbols)), np.zeros((H, H)), np.zeros((n_symbols, H))
    U[:m] = gain * code.T
    for j in range(gap):
        W[(j + 1) * m:(j + 2) * m, j * m:(j + 1) * m] = gain * np.eye(m)
    V[:, gap * m:(gap + 1) * m] = code
    return {"U": U, "W": W, "V": V, "b": np.zeros(H), "c": np.zeros(n_symbols)}
