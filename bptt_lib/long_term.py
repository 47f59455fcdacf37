r"""Chapter 10, long-term dependencies: the gap sweep and how far gradients reach.

- :func:`train_recall` trains the vanilla RNN on the delayed-recall task of
  :mod:`bptt_lib.tasks` with full BPTT and clipping, through the shared loop
  :func:`bptt_lib.training.train`, and scores it on a fresh evaluation batch;
  :func:`gap_sweep` does this for a list of gaps.
- :func:`train_recall_many` trains many such networks side by side, each with
  its own data, clipping and SGD step, as one stacked computation
  (:func:`bptt_lib.stacked.loss_and_grads`); :func:`seed_sweep` uses it to train one
  network per gap, initialisation (:data:`INITS`) and seed, and
  :func:`plot_sweep`, :func:`plot_reach` draw the chapter's two figures.
- :func:`backward_norms` measures how much of the gradient of one step's loss
  :math:`L^{(t)}` reaches each earlier hidden state,

  .. math::

      n_j &= \Big\lVert \frac{\partial L^{(t)}}{\partial h^{(t-j)}} \Big\rVert \\
          &= \Big\lVert \Big(\prod_{i=t}^{t-j+1} \operatorname{diag}\big(1 - (h^{(i)})^2\big) W\Big)^{\!\top}
            V^\top \nabla_{o^{(t)}} L^{(t)} \Big\rVert,

      j = 0, 1, \dots, t - 1,

  and :func:`gradient_ratio` is :math:`n_k / n_0`: the fraction of the error
  signal that survives the trip back over the gap :math:`k`.
- :func:`shift_register_params` builds, by hand, a vanilla RNN that solves the
  task for a given gap with :math:`H \ge m(k + 1)` units: proof that the failure
  to learn those gaps is a failure of learning, not of the architecture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import rnn, stacked, tasks
from .tasks import IGNORE
from .training import History, train
from .validation import as_array, positive_int, positive_number

__all__ = [
    "RecallRun", "train_recall", "gap_sweep", "backward_norms", "gradient_ratio",
    "decay_rate", "shift_register_params", "evaluation_batch",
    "BatchRuns", "train_recall_many", "INITS", "Sweep", "initial_params", "seed_sweep",
    "plot_sweep", "plot_reach",
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


# --- many networks at once ------------------------------------------------------------


@dataclass
class BatchRuns:
    """What :func:`train_recall_many` returns: ``R`` runs trained side by side.

    Attributes
    ----------
    gap : int
    params, initial : list of dict
        Trained and initial parameters, one dict per network.
    loss, grad_norm : ndarray, (steps, R)
        Loss and global gradient norm (before clipping) per step and network.
    accuracy : ndarray, (R,)
        Accuracy of each network on its evaluation batch (:func:`evaluation_batch`
        with the network's seed).
    """

    gap: int
    params: list
    initial: list
    loss: np.ndarray
    grad_norm: np.ndarray
    accuracy: np.ndarray


def train_recall_many(gap: int, initials: list, seeds, *, n_symbols: int = 4, extra: int = 5,
                      batch: int = 32, steps: int = 300, lr: float = 0.5, max_norm: float = 1.0,
                      eval_batch: int = 256) -> BatchRuns:
    """Train ``R = len(initials)`` networks on delayed recall at once, each as :func:`train_recall` would.

    Network ``r`` starts from ``initials[r]`` and trains on the batches of
    :func:`bptt_lib.tasks.recall_batches` with seed ``seeds[r]`` (networks with
    the same seed see the same data), by full BPTT with its own gradient clipped
    to global norm ``max_norm`` and plain SGD: :func:`bptt_lib.training.train`,
    run for all networks in one stacked computation: :func:`bptt_lib.stacked.loss_and_grads`,
    with ``x`` (T, R, B, D) and ``y`` (T, R, B) holding each network's own batch.
    """
    gap, extra = positive_int("gap", gap), positive_int("extra", extra)
    steps, max_norm = positive_int("steps", steps), positive_number("max_norm", max_norm)
    lr = positive_number("lr", lr)
    seeds = [positive_int("seeds[r]", s, low=0) for s in seeds]
    if not initials or len(initials) != len(seeds):
        raise ValueError("initials and seeds must be non-empty and of equal length; "
                         f"got {len(initials)} and {len(seeds)}")
    P = stacked.stack_params(initials)
    unique = sorted(set(seeds))
    column = [unique.index(s) for s in seeds]
    data = [tasks.recall_batches(n_symbols, gap, gap + extra, batch, s) for s in unique]
    losses, norms = [], []
    for step in range(steps):
        drawn = [d(step) for d in data]
        x = np.stack([drawn[c][0] for c in column], axis=1)
        y = np.stack([drawn[c][1] for c in column], axis=1)
        loss, grads, _ = stacked.loss_and_grads(P, x, y)
        norm = np.sqrt(sum(np.sum(g.reshape(len(seeds), -1) ** 2, axis=1) for g in grads.values()))
        factor = np.where(norm > max_norm, max_norm / norm, 1.0)
        for key in stacked.STACK_KEYS:
            P[key] = P[key] - lr * (grads[key] * factor.reshape((-1,) + (1,) * (P[key].ndim - 1)))
        losses.append(loss)
        norms.append(norm)
    params = stacked.unstack_params(P)
    accuracy = np.array([
        tasks.accuracy(p, *evaluation_batch(gap, n_symbols=n_symbols, extra=extra, batch=eval_batch, seed=s))
        for p, s in zip(params, seeds)])
    return BatchRuns(gap, params, [dict(i) for i in initials], np.array(losses), np.array(norms), accuracy)


# --- the seed sweep -------------------------------------------------------------------


INITS = {
    "Gaussian": ("gaussian", 1.0),
    "orthogonal": ("orthogonal", 1.0),
    "Gaussian x 1.5": ("gaussian", 1.5),
}
"""Initialisations of :func:`seed_sweep`: name -> (``recurrent``, ``gain``) of
:func:`bptt_lib.remedies.init_params` (``U`` and ``V`` are the same for every
initialisation of a seed; only ``W`` differs)."""


@dataclass
class Sweep:
    """What :func:`seed_sweep` returns; arrays are indexed ``[gap, init, seed]``.

    Attributes
    ----------
    gaps, inits, seeds : list
    accuracy : ndarray
        Accuracy on the evaluation batch after training.
    initial_ratio : ndarray
        :math:`n_k / n_0` of the initial network (:func:`gradient_ratio`).
    trained_radius : ndarray
        Spectral radius of the trained :math:`W`.
    clipped : ndarray
        Fraction of the training steps at which the gradient was clipped.
    loss : ndarray, (gaps, inits, seeds, steps)
        Training loss per step.
    initial : list
        ``initial[i][s]``: the initial parameters of init ``i`` and seed ``s``
        (the same for every gap).
    extra : int
        Steps with a target per sequence.
    """

    gaps: list
    inits: list
    seeds: list
    accuracy: np.ndarray
    initial_ratio: np.ndarray
    trained_radius: np.ndarray
    clipped: np.ndarray
    loss: np.ndarray
    initial: list
    extra: int

    def learned(self, threshold: float) -> np.ndarray:
        """Boolean ``[gap, init, seed]``: the accuracy reached ``threshold``."""
        return self.accuracy >= threshold


def initial_params(init: str, seed: int, *, n_symbols: int = 4, n_hidden: int = 32) -> dict:
    """The initial network of :func:`seed_sweep` for initialisation ``init`` (a key of :data:`INITS`) and ``seed``."""
    from .remedies import init_params

    if init not in INITS:
        raise ValueError(f"init must be one of {list(INITS)}; got {init!r}")
    recurrent, gain = INITS[init]
    return init_params(n_symbols, n_hidden, n_symbols, rng=np.random.default_rng(seed), recurrent=recurrent, gain=gain)


def seed_sweep(gaps, inits, seeds, *, n_symbols: int = 4, n_hidden: int = 32, extra: int = 5, batch: int = 32,
               steps: int = 100, lr: float = 0.5, max_norm: float = 1.0) -> Sweep:
    """Train one network per gap, initialisation and seed (:func:`train_recall_many`, all of a gap at once).

    The network of init ``i`` and seed ``s`` starts from :func:`initial_params` and
    trains on the batches of seed ``s``; it is scored on the evaluation batch of seed ``s``.
    """
    gaps = [positive_int("gaps[i]", g) for g in gaps]
    inits, seeds = list(inits), [positive_int("seeds[i]", s, low=0) for s in seeds]
    if not gaps or not inits or not seeds:
        raise ValueError("gaps, inits and seeds must be non-empty")
    initial = [[initial_params(i, s, n_symbols=n_symbols, n_hidden=n_hidden) for s in seeds] for i in inits]
    flat = [p for row in initial for p in row]
    shape = (len(gaps), len(inits), len(seeds))
    accuracy, ratio, radius, clipped = (np.empty(shape) for _ in range(4))
    loss = np.empty(shape + (steps,))
    for g, gap in enumerate(gaps):
        runs = train_recall_many(gap, flat, seeds * len(inits), n_symbols=n_symbols, extra=extra, batch=batch,
                                 steps=steps, lr=lr, max_norm=max_norm)
        accuracy[g] = runs.accuracy.reshape(shape[1:])
        ratio[g] = np.reshape([gradient_ratio(p, gap, extra=extra) for p in flat], shape[1:])
        radius[g] = np.reshape([np.abs(np.linalg.eigvals(p["W"])).max() for p in runs.params], shape[1:])
        clipped[g] = np.mean(runs.grad_norm > max_norm, axis=0).reshape(shape[1:])
        loss[g] = runs.loss.T.reshape(shape[1:] + (steps,))
    return Sweep(gaps, inits, seeds, accuracy, ratio, radius, clipped, loss, initial, extra)


# --- figures --------------------------------------------------------------------------


def _per_seed(ax, xs, values, color, marker, offset, label):
    """Every seed's value as a marker (shifted by ``offset`` so that inits do not overlap), the median as a line."""
    xs = np.asarray(xs, dtype=float)
    for s in range(values.shape[1]):
        ax.plot(xs + offset, values[:, s], marker, color=color, ms=4, alpha=0.7, ls="none",
                label=label if s == 0 else None)
    ax.plot(xs + offset, np.median(values, axis=1), "-", color=color, lw=1, alpha=0.8)


def plot_sweep(sweep: Sweep, *, threshold: float, chance: float, window: int = 10):
    """Left: accuracy against gap, one marker per seed and init, median lines, threshold and chance.
    Right: the training loss per target step of the first init, mean over seeds, per gap."""
    import matplotlib.pyplot as plt

    from .plotting import COLORS

    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(10, 3.8))
    markers = ["o", "s", "^", "D"]
    n = len(sweep.inits)
    for i, init in enumerate(sweep.inits):
        _per_seed(ax_acc, sweep.gaps, sweep.accuracy[:, i], COLORS[i], markers[i % 4], 0.25 * (i - (n - 1) / 2), init)
    ax_acc.axhline(threshold, color="black", ls=":", lw=1)
    edge = ax_acc.get_yaxis_transform()                      # x in axes fractions, y in data
    ax_acc.text(0.99, threshold + 0.01, f"learned: >= {threshold}", transform=edge, ha="right", va="bottom", fontsize=8)
    ax_acc.axhline(chance, color="gray", ls="--", lw=1)
    ax_acc.text(0.99, chance + 0.01, f"chance 1/D = {chance:.2f}", transform=edge, ha="right", va="bottom",
                fontsize=8, color="gray")
    ax_acc.set(xlabel="gap $k$ (steps)", ylabel="accuracy at steps $t > k$", ylim=(0, 1.05),
               title=f"after {sweep.loss.shape[-1]} training steps, {len(sweep.seeds)} seeds each")
    ax_acc.set_xticks(sweep.gaps)
    ax_acc.legend(loc="lower left", fontsize=8)
    window = min(window, sweep.loss.shape[-1])
    for g, gap in enumerate(sweep.gaps):
        per_target = sweep.loss[g, 0].mean(axis=0) / sweep.extra
        smooth = np.convolve(per_target, np.ones(window) / window, mode="valid")
        ax_loss.plot(np.arange(window, per_target.size + 1), smooth, color=COLORS[g % len(COLORS)], label=f"k = {gap}")
    ax_loss.axhline(np.log(1 / chance), color="gray", ls="--", lw=1)
    ax_loss.text(0.55, np.log(1 / chance) + 0.03, "log D (uniform guess)", transform=ax_loss.get_yaxis_transform(),
                 ha="center", va="bottom", color="gray", fontsize=8)
    ax_loss.set(xlabel="training step", ylabel="loss per target step (nats)", ylim=(0, 1.95),
                title=f"{sweep.inits[0]} start, mean of {len(sweep.seeds)} seeds, {window}-step average")
    ax_loss.legend(ncol=3, fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def plot_reach(sweep: Sweep, norms: dict, *, threshold: float, chance: float):
    """Left: :math:`n_j / n_0` of every initial network (``norms[init]``: (seeds, J)).
    Right: accuracy after training against :math:`n_k / n_0` at the start, every run."""
    import matplotlib.pyplot as plt

    from .plotting import COLORS

    fig, (ax_n, ax_r) = plt.subplots(1, 2, figsize=(10, 3.8))
    markers = ["o", "s", "^", "D"]
    for i, init in enumerate(sweep.inits):
        curves = np.asarray(norms[init])
        j = np.arange(curves.shape[1])
        for s, curve in enumerate(curves):
            ax_n.semilogy(j, curve / curve[0], color=COLORS[i], lw=1, alpha=0.7, label=init if s == 0 else None)
        ax_r.semilogx(sweep.initial_ratio[:, i].ravel(), sweep.accuracy[:, i].ravel(), markers[i % 4],
                      color=COLORS[i], ms=4, alpha=0.7, label=init)
    ax_n.set(xlabel="steps back $j$", ylabel=r"$n_j / n_0$ (log scale)",
             title="gradient reaching back, initial networks")
    ax_n.legend(fontsize=8)
    ax_r.axhline(threshold, color="black", ls=":", lw=1)
    ax_r.axhline(chance, color="gray", ls="--", lw=1)
    left = ax_r.get_xlim()[0]
    ax_r.text(left, threshold + 0.01, f" learned: >= {threshold}", va="bottom", fontsize=8)
    ax_r.text(left, chance + 0.01, " chance", va="bottom", fontsize=8, color="gray")
    ax_r.set(xlabel="$n_k / n_0$ at the start (log scale)", ylabel="accuracy after training", ylim=(0, 1.05),
             title="every run of the sweep: signal at the start vs. outcome")
    ax_r.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig
