r"""Chapter 16, what gates change, measured: four cells, many seeds, one computation per cell.

The chapter compares the tanh RNN, the IRNN (the ReLU RNN of chapter 9 with
:math:`W = I` at the start), the LSTM (:mod:`bptt_lib.lstm`) and the GRU
(:mod:`bptt_lib.gru`) on the same measurements. Everything here is written once,
over the cell interface of :mod:`bptt_lib.cell` and the models of
:mod:`bptt_lib.models`, for all four.

- :class:`Bank`: ``N`` independent networks of one cell as **one** network of
  ``N H`` hidden units whose weight matrices are block diagonal (network ``n``
  owns the units ``n H .. (n + 1) H - 1`` of every gate, its own rows of ``U``
  and its own ``K`` outputs). All networks read the same input batch; each has
  its own targets. Because no weight couples two blocks, the state of network
  ``n`` depends on its own parameters only, and the gradient of the summed loss
  with respect to its blocks is the gradient of its own loss; the entries off
  the blocks get gradients (they would couple networks) and are masked to zero
  (:meth:`Bank.owner`). Every step of every network is then one call of
  :func:`bptt_lib.bptt.bptt` on the bank, the same code that trains one network.
- Heads for :func:`bptt_lib.bptt.bptt` (``head=``): :class:`SoftmaxHead`, a
  softmax over each network's ``K`` outputs with :data:`bptt_lib.tasks.IGNORE`
  targets, and :class:`SquaredErrorHead`, a squared error on one output per
  network at the steps that have a target (the adding problem is a regression).
- :func:`reach`: :math:`\lVert \partial L^{(T)} / \partial h^{(T-j)} \rVert \,/\,
  \lVert \partial L^{(T)} / \partial h^{(T)} \rVert` for every network of a bank,
  from the loss of the last step alone.
- :func:`train_bank`: Adam with each network's gradient clipped to its own
  global norm, on any task given as a function of the step.
- :func:`recall_sweep`, :func:`adding_runs`: the chapter's two training experiments.
- Figures: :func:`plot_reach`, :func:`plot_sweep`, :func:`plot_growth`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import bptt, models, optim, tasks
from .cell import Cell
from .jacobian_products import relu_kernels
from .tasks import IGNORE
from .validation import positive_int, positive_number

__all__ = ["CELLS", "relu_cell", "init_network", "Bank", "SoftmaxHead", "SquaredErrorHead", "reach",
           "TrainResult", "train_bank", "recall_accuracy", "adding_mse", "recall_sweep", "adding_runs",
           "gradient_growth", "plot_reach", "plot_sweep", "plot_growth"]

CELLS = ("tanh RNN", "IRNN", "LSTM", "GRU")
"""The four cells of the chapter, in the order of its tables."""


def _relu(a: np.ndarray) -> np.ndarray:
    return relu_kernels().relu(a)


def relu_cell() -> Cell:
    """The ReLU RNN cell of chapter 9 over the cell interface: generated ``relu`` and ``relu_vjp``."""
    return Cell(name="relu", activation=_relu, activation_vjp=lambda g, h: relu_kernels().relu_vjp(g, h))


def _model(cell: str) -> models.Model:
    if cell == "tanh RNN":
        return models.get_model("rnn")
    if cell == "IRNN":
        m = models.get_model("rnn")
        return models.Model(name="irnn", cell=relu_cell(), prepare=m.prepare, unpack=m.unpack)
    if cell == "LSTM":
        return models.get_model("lstm")
    if cell == "GRU":
        return models.get_model("gru")
    raise ValueError(f"cell must be one of {CELLS}; got {cell!r}")


def init_network(cell: str, n_in: int, n_hidden: int, n_out: int, seed: int, *, gain: float = 1.0) -> dict:
    """One network's initial parameters, from the library's initialiser of that cell.

    tanh RNN: :func:`bptt_lib.rnn.init_params`; IRNN: :func:`bptt_lib.remedies.init_params`
    with ``recurrent="identity"``; LSTM: :func:`bptt_lib.lstm.init_params` (forget-gate bias 1);
    GRU: :func:`bptt_lib.gru.init_params`. ``gain`` multiplies every recurrent matrix ``W``, ``W_*``.
    """
    rng = np.random.default_rng(seed)
    if cell == "tanh RNN":
        from .rnn import init_params
        p = init_params(n_in, n_hidden, n_out, rng=rng)
    elif cell == "IRNN":
        from .remedies import init_params
        p = init_params(n_in, n_hidden, n_out, rng=rng, recurrent="identity")
    elif cell == "LSTM":
        from .lstm import init_params
        p = init_params(n_in, n_hidden, n_out, rng=rng)
    elif cell == "GRU":
        from .gru import init_params
        p = init_params(n_in, n_hidden, n_out, rng=rng)
    else:
        raise ValueError(f"cell must be one of {CELLS}; got {cell!r}")
    return {key: gain * value if key.startswith("W") else value for key, value in p.items()}


def _block_diag(mats) -> np.ndarray:
    rows, cols = sum(m.shape[0] for m in mats), sum(m.shape[1] for m in mats)
    out = np.zeros((rows, cols))
    r = c = 0
    for m in mats:
        out[r:r + m.shape[0], c:c + m.shape[1]] = m
        r, c = r + m.shape[0], c + m.shape[1]
    return out


class Bank:
    """``N`` networks of one cell as one block-diagonal network (see the module's docstring).

    Parameters
    ----------
    cell : str
        One of :data:`CELLS`.
    networks : list of dict
        The networks' parameters, all of equal sizes (e.g. from :func:`init_network`).
    """

    def __init__(self, cell: str, networks: list):
        if not networks:
            raise ValueError("networks must hold at least one parameter dict")
        self.cell_name = cell
        self.model = _model(cell)
        self.N = len(networks)
        self.H = np.shape(networks[0]["V"])[1]
        self.D = np.shape(next(v for k, v in networks[0].items() if k.startswith("U")))[1]
        self.K = networks[0]["V"].shape[0]
        self.params = {}
        for key in networks[0]:
            parts = [np.asarray(p[key], dtype=np.float64) for p in networks]
            if key.startswith("W") or key == "V":
                self.params[key] = _block_diag(parts)
            else:
                self.params[key] = np.concatenate(parts)
        self._owner = {key: self._owner_of(key, value.shape) for key, value in self.params.items()}

    def _owner_of(self, key: str, shape: tuple) -> np.ndarray:
        rows = np.arange(shape[0]) // (self.K if key in ("V", "c") else self.H)
        if len(shape) == 1 or not (key.startswith("W") or key == "V"):
            return np.broadcast_to(rows.reshape((-1,) + (1,) * (len(shape) - 1)), shape)
        cols = np.arange(shape[1]) // self.H
        return np.where(rows[:, None] == cols[None, :], rows[:, None], -1)

    def owner(self, key: str) -> np.ndarray:
        """Which network each entry of ``params[key]`` belongs to; ``-1`` off the blocks (always zero)."""
        return self._owner[key]

    def network(self, n: int) -> dict:
        """Network ``n``'s own parameters, as a dict of the cell's module (copies)."""
        out = {}
        for key, value in self.params.items():
            own = self._owner[key] == n
            if value.ndim == 2:
                rows, cols = np.flatnonzero(own.any(axis=1)), np.flatnonzero(own.any(axis=0))
                out[key] = value[np.ix_(rows, cols)].copy()
            else:
                out[key] = value[own].copy()
        return out

    def grads(self, x, targets, head, *, grad_h=None):
        """The summed loss of all networks and its gradient (off-block entries zero).

        ``targets`` are passed to ``head`` block by block (first axis time). With
        ``grad_h`` (T, B, N H) the total gradients of the hidden states are stored there.
        """
        T, B = x.shape[:2]
        dummy = np.zeros((T, B), dtype=np.int64)
        p, x, _, h0 = self.model.prepare(self.params, x, dummy, None)
        grads = {key: np.zeros_like(value) for key, value in p.items()}
        full = None if grad_h is None else np.zeros((T, *h0.shape))
        with np.errstate(over="ignore", invalid="ignore"):
            loss, grads, _ = bptt.bptt(self.model.cell, p, x, targets, h0, grads=grads, head=head, grad_h=full)
        if grad_h is not None:
            grad_h[...] = self.model.cell.hidden(full)
        grads = self.model.unpack(grads)
        for key in grads:
            grads[key] = np.where(self._owner[key] >= 0, grads[key], 0.0)
        return loss, grads

    def norms(self, grads: dict) -> np.ndarray:
        """Each network's global gradient norm, (N,)."""
        sq = np.zeros(self.N)
        for key, g in grads.items():
            own = self._owner[key]
            keep = own >= 0
            sq += np.bincount(own[keep], weights=g[keep] ** 2, minlength=self.N)
        return np.sqrt(sq)

    def hidden_states(self, x) -> np.ndarray:
        """The hidden states ``h`` (T + 1, B, N H) of all networks on the input batch ``x``."""
        T, B = x.shape[:2]
        p, x, _, h0 = self.model.prepare(self.params, x, np.zeros((T, B), dtype=np.int64), None)
        with np.errstate(over="ignore", invalid="ignore"):
            return self.model.cell.hidden(bptt.forward(self.model.cell, p, x, h0))

    def outputs(self, x) -> np.ndarray:
        """The logits ``o`` (T, B, N, K) of every network."""
        h = self.hidden_states(x)[1:]
        o = h @ self.params["V"].T + self.params["c"]
        return o.reshape(*o.shape[:2], self.N, self.K)


class SoftmaxHead:
    """Softmax output layer of ``N`` networks with ``K`` classes each, targets ``(T, B, N)`` with IGNORE.

    The loss of each network is the masked NLL of :mod:`bptt_lib.tasks`, summed over
    time and averaged over the batch; the head returns their sum and keeps each
    network's part in ``per_network`` (added block by block).
    """

    def __init__(self, N: int, K: int):
        self.N, self.K = N, K
        self.per_network = np.zeros(N)

    def __call__(self, params, h, y, grads, yhat=None):
        n, B, NH = h.shape
        o = (h @ params["V"].T + params["c"]).reshape(n, B, self.N, self.K)
        o = o - o.max(axis=-1, keepdims=True)
        log_p = o - np.log(np.exp(o).sum(axis=-1, keepdims=True))
        keep = y != IGNORE
        picked = np.take_along_axis(log_p, np.where(keep, y, 0)[..., None], axis=-1)[..., 0]
        losses = -(picked * keep).sum(axis=(0, 1)) / B
        self.per_network += losses
        d_o = np.exp(log_p)
        np.put_along_axis(d_o, np.where(keep, y, 0)[..., None],
                          np.take_along_axis(d_o, np.where(keep, y, 0)[..., None], axis=-1) - 1.0, axis=-1)
        d_o = (d_o * keep[..., None] / B).reshape(n * B, self.N * self.K)
        rows = h.reshape(n * B, NH)
        grads["V"] += d_o.T @ rows
        grads["c"] += d_o.sum(axis=0)
        return float(losses.sum()), (d_o @ params["V"]).reshape(n, B, NH)


class SquaredErrorHead:
    r"""One linear output per network, :math:`o = c + V h`, and the squared error at the steps with a target.

    Targets ``(T, B, N)``, ``NaN`` where a step has none. Each network's loss is
    :math:`\frac1B \sum_b \sum_t (o^{(t)}_b - y^{(t)}_b)^2` (with one target per sequence:
    the batch's mean squared error); the head returns their sum.
    """

    def __init__(self, N: int):
        self.N = N
        self.per_network = np.zeros(N)

    def __call__(self, params, h, y, grads, yhat=None):
        n, B, NH = h.shape
        o = h @ params["V"].T + params["c"]                   # (n, B, N)
        keep = ~np.isnan(y)
        err = np.where(keep, o - np.where(keep, y, 0.0), 0.0)
        losses = (err ** 2).sum(axis=(0, 1)) / B
        self.per_network += losses
        d_o = (2.0 * err / B).reshape(n * B, self.N)
        grads["V"] += d_o.T @ h.reshape(n * B, NH)
        grads["c"] += d_o.sum(axis=0)
        return float(losses.sum()), (d_o @ params["V"]).reshape(n, B, NH)


def reach(bank: Bank, x, *, rng: np.random.Generator) -> np.ndarray:
    r"""How much of the last step's gradient reaches each earlier hidden state, for every network.

    The loss is that of the last step alone, :math:`L^{(T)}`, with a random target class
    per sequence (a softmax head; for ``K = 1`` a squared error against a standard normal
    target). Returns ``ratio`` (N, T): ``ratio[n, j]`` is
    :math:`\lVert \partial L^{(T)}/\partial h^{(T-j)} \rVert_F \,/\, \lVert \partial L^{(T)}/\partial h^{(T)} \rVert_F`
    of network ``n``, norms over the batch and the units (``ratio[:, 0] = 1``). For the
    LSTM the gradient of :math:`h` is taken with the cell state held fixed (the state
    record's ``h`` part).
    """
    T, B = x.shape[:2]
    if bank.K == 1:
        y = np.full((T, B, bank.N), np.nan)
        y[-1] = rng.standard_normal((B, bank.N))
        head = SquaredErrorHead(bank.N)
    else:
        y = np.full((T, B, bank.N), IGNORE)
        y[-1] = rng.integers(0, bank.K, size=(B, bank.N))
        head = SoftmaxHead(bank.N, bank.K)
    grad_h = np.zeros((T, B, bank.N * bank.H))
    with bptt.single_blas_thread():
        bank.grads(x, y, head, grad_h=grad_h)
    per = grad_h.reshape(T, B, bank.N, bank.H)
    norms = np.sqrt((per ** 2).sum(axis=(1, 3)))             # (T, N); row t - 1 is h^(t)
    return (norms[::-1] / norms[-1]).T.copy()


# --- training --------------------------------------------------------------------------------


@dataclass
class TrainResult:
    """What :func:`train_bank` returns.

    Attributes
    ----------
    bank : Bank
        The trained networks.
    loss : ndarray, (steps, N)
        Each network's training loss per step.
    grad_norm : ndarray, (steps, N)
        Each network's global gradient norm per step, before clipping.
    """

    bank: Bank
    loss: np.ndarray
    grad_norm: np.ndarray


def train_bank(bank: Bank, data, head_factory, *, steps: int, lr: float = 0.01, max_norm: float | None = 1.0,
               betas=(0.9, 0.999), eps: float = 1e-8) -> TrainResult:
    """Train every network of ``bank`` with Adam, each network's gradient clipped to its own global norm.

    ``data(step) -> (x, targets)`` gives the batch of a step (targets ``(T, B, N)``);
    ``head_factory()`` a fresh head (:class:`SoftmaxHead` or :class:`SquaredErrorHead`).
    ``max_norm=None`` trains without clipping. Adam's update is elementwise, so the
    networks stay independent; off-block entries have zero gradient and stay zero.
    A network whose loss or gradient stops being finite is frozen (its loss recorded as NaN).
    """
    steps = positive_int("steps", steps)
    lr = positive_number("lr", lr)
    adam = optim.Adam(lr, *betas, eps)
    alive = np.ones(bank.N, dtype=bool)
    losses, norms = np.zeros((steps, bank.N)), np.zeros((steps, bank.N))
    for step in range(steps):
        x, y = data(step)
        head = head_factory()
        with bptt.single_blas_thread():
            _, grads = bank.grads(x, y, head)
        norm = bank.norms(grads)
        finite = np.isfinite(head.per_network) & np.isfinite(norm)
        alive &= finite
        losses[step] = np.where(alive, head.per_network, np.nan)
        norms[step] = np.where(alive, norm, np.nan)
        factor = np.ones(bank.N) if max_norm is None else np.minimum(1.0, max_norm / np.maximum(norm, 1e-300))
        factor = np.where(alive, factor, 0.0)
        scaled, moving = {}, {}
        for key, g in grads.items():
            own = bank.owner(key)
            scale = np.where(own >= 0, factor[np.maximum(own, 0)], 0.0)
            scaled[key] = np.nan_to_num(g * scale)
            moving[key] = scale > 0               # off-block entries and frozen networks stay put
        bank.params.update(adam.step(bank.params, scaled, keep=moving))
    return TrainResult(bank, losses, norms)


def recall_accuracy(bank: Bank, x, y) -> np.ndarray:
    """Each network's accuracy at the steps with a target, (N,); ``y`` (T, B) shared by all networks."""
    with np.errstate(over="ignore", invalid="ignore"):
        guess = bank.outputs(x).argmax(axis=-1)                    # (T, B, N)
    keep = y != IGNORE
    return (guess[keep] == y[keep][:, None]).mean(axis=0)


def adding_mse(bank: Bank, x, y) -> np.ndarray:
    """Each network's mean squared error on an adding-problem batch (``y`` (B,)), (N,)."""
    with np.errstate(over="ignore", invalid="ignore"):
        o = bank.outputs(x)[-1, :, :, 0]                           # (B, N)
    return np.mean((o - y[:, None]) ** 2, axis=0)


EVAL_SEED = 20_000
"""Seed of the evaluation batches: never equal to a training batch's seed."""


def recall_sweep(cells, gaps, seeds, *, n_symbols: int = 4, n_hidden: int = 16, extra: int = 5,
                 batch: int = 32, steps: int = 200, lr: float = 0.01, max_norm: float = 1.0,
                 eval_batch: int = 256) -> dict:
    """Delayed recall (:func:`bptt_lib.tasks.delayed_recall`) for every cell, gap and seed.

    The networks of one cell and gap (one per seed, initial weights from
    :func:`init_network` with that seed) are trained as one :class:`Bank` on the same
    batches (sequence length ``gap + extra``, a fresh batch per step), then scored on one
    evaluation batch. Returns ``{"accuracy": (cells, gaps, seeds), "banks": {(cell, gap): Bank},
    "initial": {cell: Bank}}``.
    """
    seeds = list(seeds)
    acc = np.zeros((len(cells), len(gaps), len(seeds)))
    banks, initial = {}, {}
    for c, cell in enumerate(cells):
        nets = [init_network(cell, n_symbols, n_hidden, n_symbols, s) for s in seeds]
        initial[cell] = Bank(cell, nets)
        for g, gap in enumerate(gaps):
            T = gap + extra
            bank = Bank(cell, nets)

            def data(step, gap=gap, T=T):
                x, y = tasks.delayed_recall(n_symbols, gap, T, batch, np.random.default_rng([gap, step]))
                return x, np.repeat(y[..., None], len(seeds), axis=-1)

            train_bank(bank, data, lambda: SoftmaxHead(len(seeds), n_symbols), steps=steps, lr=lr,
                       max_norm=max_norm)
            x, y = tasks.delayed_recall(n_symbols, gap, T, eval_batch, np.random.default_rng([EVAL_SEED, gap]))
            acc[c, g] = recall_accuracy(bank, x, y)
            banks[cell, gap] = bank
    return {"accuracy": acc, "banks": banks, "initial": initial}


def adding_runs(cells, seeds, *, T: int = 20, n_hidden: int = 16, batch: int = 32, steps: int = 300,
                lr: float = 0.01, max_norm: float | None = 1.0, eval_batch: int = 512) -> dict:
    """The adding problem (:func:`bptt_lib.tasks.adding_problem`) for every cell and seed.

    One output per network, :class:`SquaredErrorHead` at the last step. Returns
    ``{"mse": (cells, seeds), "loss": {cell: (steps, N)}, "grad_norm": {cell: (steps, N)},
    "banks": {cell: Bank}}``; ``mse`` on one evaluation batch.
    """
    seeds = list(seeds)
    N = len(seeds)

    def data(step):
        x, s = tasks.adding_problem(T, batch, np.random.default_rng([T, step]))
        y = np.full((T, batch, N), np.nan)
        y[-1] = s[:, None]
        return x, y

    x_eval, y_eval = tasks.adding_problem(T, eval_batch, np.random.default_rng([EVAL_SEED, T]))
    out = {"mse": np.zeros((len(cells), N)), "loss": {}, "grad_norm": {}, "banks": {}}
    for c, cell in enumerate(cells):
        bank = Bank(cell, [init_network(cell, 2, n_hidden, 1, s) for s in seeds])
        run = train_bank(bank, data, lambda: SquaredErrorHead(N), steps=steps, lr=lr, max_norm=max_norm)
        out["mse"][c] = adding_mse(bank, x_eval, y_eval)
        out["loss"][cell], out["grad_norm"][cell], out["banks"][cell] = run.loss, run.grad_norm, bank
    return out


def gradient_growth(cell: str, gains, lengths, seeds, *, n_in: int = 4, n_hidden: int = 16, batch: int = 32,
                    seed: int = 0) -> np.ndarray:
    r"""The parameter-gradient norm of the last step's loss against the sequence length, at initialisation.

    For each gain (multiplying every recurrent matrix, :func:`init_network`), a bank of
    one network per seed; for each length ``T``, the global norm of
    :math:`\nabla_\theta L^{(T)}` (random one-hot inputs, random target class, ``K = n_in``).
    Returns (gains, lengths, seeds).
    """
    out = np.zeros((len(gains), len(lengths), len(seeds)))
    for a, gain in enumerate(gains):
        bank = Bank(cell, [init_network(cell, n_in, n_hidden, n_in, s, gain=gain) for s in seeds])
        for b, T in enumerate(lengths):
            rng = np.random.default_rng([seed, T])
            x = np.eye(n_in)[rng.integers(0, n_in, size=(T, batch))]
            y = np.full((T, batch, len(seeds)), IGNORE)
            y[-1] = rng.integers(0, n_in, size=(batch, len(seeds)))
            with bptt.single_blas_thread():
                _, grads = bank.grads(x, y, SoftmaxHead(len(seeds), n_in))
            out[a, b] = bank.norms(grads)
    return out


# --- figures ---------------------------------------------------------------------------------


def plot_reach(curves: dict, *, title: str = ""):
    """``curves[cell]`` (N, J): :math:`n_j / n_0` per network; one panel, log scale, median line per cell."""
    import matplotlib.pyplot as plt

    from .plotting import COLORS

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for i, (cell, c) in enumerate(curves.items()):
        c = np.asarray(c)
        j = np.arange(c.shape[1])
        for row in c:
            ax.semilogy(j, row, color=COLORS[i], lw=0.8, alpha=0.45)
        ax.semilogy(j, np.median(c, axis=0), color=COLORS[i], lw=2, label=cell)
    ax.set(xlabel="steps back $j$", ylabel=r"$n_j / n_0$ (log scale)", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_sweep(accuracy: np.ndarray, cells, gaps, *, threshold: float, chance: float):
    """Accuracy against gap, one marker per seed (shifted per cell), median lines, threshold and chance."""
    import matplotlib.pyplot as plt

    from .plotting import COLORS

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    markers = ["o", "s", "^", "D"]
    gaps = np.asarray(gaps, dtype=float)
    for c, cell in enumerate(cells):
        off = 0.25 * (c - (len(cells) - 1) / 2)
        for s in range(accuracy.shape[2]):
            ax.plot(gaps + off, accuracy[c, :, s], markers[c % 4], color=COLORS[c], ms=4, alpha=0.7, ls="none",
                    label=cell if s == 0 else None)
        ax.plot(gaps + off, np.median(accuracy[c], axis=1), "-", color=COLORS[c], lw=1)
    ax.axhline(threshold, color="black", ls=":", lw=1)
    ax.axhline(chance, color="gray", ls="--", lw=1)
    ax.set(xlabel="gap $k$ (steps)", ylabel="accuracy at steps $t > k$", ylim=(0, 1.05))
    ax.set_xticks(gaps)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def plot_growth(growth: dict, gains, lengths):
    """One panel per cell: median gradient norm against ``T`` (log scale) for each gain, seeds as markers."""
    import matplotlib.pyplot as plt

    from .plotting import COLORS

    fig, axes = plt.subplots(1, len(growth), figsize=(11, 3.2), sharey=True)
    for ax, (cell, g) in zip(np.atleast_1d(axes), growth.items()):
        for a, gain in enumerate(gains):
            for s in range(g.shape[2]):
                ax.semilogy(lengths, g[a, :, s], ".", color=COLORS[a], ms=3, alpha=0.6)
            ax.semilogy(lengths, np.median(g[a], axis=1), "-", color=COLORS[a], label=f"gain {gain:g}")
        ax.set(title=cell, xlabel="sequence length $T$")
    np.atleast_1d(axes)[0].set_ylabel(r"$|\nabla_\theta L^{(T)}|$ (log scale)")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.tight_layout()
    return fig
