r"""A character-level language model trained end to end (chapter 17).

In the spirit of min-char-rnn: a small text, one-hot characters in, a softmax over
the next character out, a tanh RNN or an LSTM trained with TBPTT(:math:`k, k`).

- The text: :func:`load_text` (the first 42,537 characters of the Tiny Shakespeare
  file of char-rnn, from *Coriolanus*; see ``bptt_lib/data/README.md``),
  :class:`Vocabulary` (characters <-> integers), :func:`split` (train / held-out),
  :func:`streams` (``B`` contiguous streams, as a (n, B) array of integers).
- The loss in **bits per character**: :func:`bits_per_char` of a model on a text
  from a carried state, :func:`unigram_bits` for the baseline that ignores the context.
- Training: :func:`chunk_grads` is one chunk of TBPTT(:math:`k, k`) through the
  recurrent core (:func:`bptt_lib.bptt.forward` and :func:`bptt_lib.bptt.bptt` over
  the model's cell), returning the state to carry into the next chunk;
  :func:`train` loops over chunks with gradient clipping
  (:func:`bptt_lib.clip.clip_by_global_norm`) and Adam (:class:`bptt_lib.optim.Adam`).
- Sampling: :func:`temperature_probs` (softmax of the logits divided by the
  temperature) and :func:`sample`, which also returns how far each uniform draw
  was from a boundary of the cumulative distribution (a margin that says whether
  round-off could have changed the sample).
- Plots: :func:`plot_training`, :func:`plot_heldout`, :func:`plot_samples`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import bptt, clip, lstm, models, optim, rnn
from .validation import positive_int, positive_number

__all__ = [
    "DATA_FILE", "one_thread", "load_text", "Vocabulary", "split", "streams", "one_hot", "init_params", "carried_state",
    "chunk_grads", "log_probs", "bits_per_char", "unigram_bits", "TrainResult", "train",
    "temperature_probs", "sample", "plot_training", "plot_heldout", "plot_samples", "main",
]

DATA_FILE = Path(__file__).resolve().parent / "data" / "tinyshakespeare_head.txt"
"""The shipped text (ASCII, 42,537 characters), ``bptt_lib/data/tinyshakespeare_head.txt``.

:meta hide-value:
"""

LN2 = float(np.log(2.0))


def one_thread(fn):
    """Run ``fn`` with BLAS on one thread (:func:`bptt_lib.bptt.single_blas_thread`).

    The matrices here are small (H = 64): on two busy cores, BLAS threads spinning for
    such products made a training run several times slower than on one thread.
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with bptt.single_blas_thread():
            return fn(*args, **kwargs)
    return wrapper


def load_text() -> str:
    """The shipped text as a string (see ``bptt_lib/data/README.md`` for its source and licence)."""
    return DATA_FILE.read_text(encoding="ascii")


@dataclass(frozen=True)
class Vocabulary:
    """The characters of a text, sorted; character ``chars[j]`` is class ``j``."""

    chars: str

    @classmethod
    def of(cls, text: str) -> Vocabulary:
        return cls("".join(sorted(set(text))))

    @property
    def size(self) -> int:
        """``K``, the number of classes (and of one-hot inputs, ``D = K``)."""
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """The classes of the characters of ``text`` (int64); ``KeyError`` for a character not in the vocabulary."""
        index = {c: j for j, c in enumerate(self.chars)}
        return np.array([index[c] for c in text], dtype=np.int64)

    def decode(self, ids) -> str:
        return "".join(self.chars[int(j)] for j in np.ravel(ids))


def split(ids: np.ndarray, held_out: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The first ``1 - held_out`` of the text for training, the rest held out (no shuffling: text is a sequence)."""
    n_train = int(round(len(ids) * (1.0 - held_out)))
    return ids[:n_train], ids[n_train:]


def streams(ids: np.ndarray, B: int) -> np.ndarray:
    """Cut ``ids`` into ``B`` contiguous streams of equal length: (n, B), column ``b`` is the ``b``-th piece.

    The last ``len(ids) % B`` characters are dropped. Chunk ``j`` of the training loop is
    rows ``j k .. (j + 1) k`` of this array, so each stream continues where its previous
    chunk stopped and its state can be carried across.
    """
    B = positive_int("B", B)
    n = len(ids) // B
    if n < 2:
        raise ValueError(f"a text of {len(ids)} characters is too short for {B} streams")
    return np.ascontiguousarray(np.asarray(ids[:n * B]).reshape(B, n).T)


def one_hot(ids: np.ndarray, K: int) -> np.ndarray:
    """One-hot float64 vectors (..., K) of the integer array ``ids``."""
    out = np.zeros((*np.shape(ids), K))
    np.put_along_axis(out, np.asarray(ids)[..., None], 1.0, axis=-1)
    return out


def init_params(model: str, K: int, H: int, *, rng: np.random.Generator) -> dict:
    """Random parameters of ``model`` (``"rnn"`` or ``"lstm"``) with ``D = K`` one-hot inputs and ``K`` classes.

    The RNN's :func:`bptt_lib.rnn.init_params` and the LSTM's :func:`bptt_lib.lstm.init_params`
    (forget-gate bias 1), unchanged.
    """
    if model == "rnn":
        return rnn.init_params(K, H, K, rng=rng)
    if model == "lstm":
        return lstm.init_params(K, H, K, rng=rng)
    raise ValueError(f'model must be "rnn" or "lstm"; got {model!r}')


def carried_state(model: str, record: np.ndarray):
    """The state to carry into the next chunk, from the last state record of a chunk (copies).

    For the RNN its hidden state (B, H); for the LSTM the pair ``(h, s)``
    (:func:`bptt_lib.lstm.state_of`): exactly what ``state0`` of the next call takes.
    """
    if model == "lstm":
        return lstm.state_of(record)
    return np.array(record, copy=True)


def chunk_grads(model: str, params: dict, x, y, state=None) -> tuple[float, dict, object]:
    r"""One chunk of TBPTT(:math:`k, k`): its loss, its gradient by BPTT within the chunk, the state to carry.

    ``x`` (k, B, D), ``y`` (k, B); ``state`` is where the previous chunk stopped (zeros
    if None). The forward pass and the backward pass are :func:`bptt_lib.bptt.forward`
    and :func:`bptt_lib.bptt.bptt` over the model's cell (:mod:`bptt_lib.models`), with
    no gradient arriving from after the chunk: over a sequence with fixed parameters,
    the gradients of consecutive chunks add up to
    :func:`bptt_lib.truncation.tbptt_grads` with ``k1 = k2 = k`` (tested).

    Returns
    -------
    loss : float
        Summed over the chunk's steps, averaged over the batch (nats).
    grads : dict
        The keys of ``params``.
    state
        The state after the chunk's last step (:func:`carried_state`).
    """
    m = models.get_model(model)
    p, x, y, h0 = m.prepare(params, x, y, state)
    grads = {key: np.zeros_like(value) for key, value in p.items()}
    with np.errstate(over="ignore", invalid="ignore"):
        h = bptt.forward(m.cell, p, x, h0)
        loss, grads, _ = bptt.bptt(m.cell, p, x, y, h=h, grads=grads)
    return float(loss), m.unpack(grads), carried_state(model, h[-1])


def log_probs(model: str, params: dict, x, state=None) -> tuple[np.ndarray, object]:
    """Natural log-probabilities (T, B, K) of the next character after each input, and the final state.

    A forward pass through :func:`bptt_lib.bptt.forward` over the model's cell, then the
    output layer :math:`o = c + V h` and a stable log-softmax.
    """
    m = models.get_model(model)
    x = np.asarray(x, dtype=np.float64)
    dummy = np.zeros(x.shape[:2], dtype=np.int64)
    p, x, _, h0 = m.prepare(params, x, dummy, state)
    with np.errstate(over="ignore", invalid="ignore"):
        records = bptt.forward(m.cell, p, x, h0)
    h = m.cell.hidden(records[1:])
    o = h @ p["V"].T + p["c"]
    o = o - o.max(axis=-1, keepdims=True)
    return o - np.log(np.exp(o).sum(axis=-1, keepdims=True)), carried_state(model, records[-1])


@one_thread
def bits_per_char(model: str, params: dict, ids: np.ndarray, K: int, *, B: int = 1, reset_every=None) -> float:
    r"""Mean :math:`-\log_2 \hat y^{(t)}_{y^{(t)}}` over a text, predicting each character from the ones before it.

    The text is cut into ``B`` streams (:func:`streams`), each read from a zero state with the
    state carried to the end; with ``reset_every = r`` the state is instead set back to zero
    every ``r`` characters (the control: what the carried state is worth). The first
    character of each stream is an input only.
    """
    data = streams(ids, B)
    x, y = one_hot(data[:-1], K), data[1:]
    if reset_every is None:
        lp, _ = log_probs(model, params, x)
    else:
        r = positive_int("reset_every", reset_every)
        lp = np.concatenate([log_probs(model, params, x[t:t + r])[0] for t in range(0, len(x), r)])
    picked = np.take_along_axis(lp, y[..., None], axis=-1)
    return float(-picked.mean() / LN2)


def unigram_bits(train_ids: np.ndarray, test_ids: np.ndarray, K: int, *, smoothing: float = 1.0) -> float:
    r"""Bits per character of the unigram model: every character predicted with its frequency in ``train_ids``.

    Counts get ``smoothing`` added (Laplace) so that a character absent from the training
    text has a finite cost. Evaluated on ``test_ids``: :math:`-\frac1n \sum_t \log_2 p(y^{(t)})`.
    """
    counts = np.bincount(np.asarray(train_ids), minlength=K).astype(float) + smoothing
    p = counts / counts.sum()
    return float(-np.log2(p[np.asarray(test_ids)]).mean())


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    params : dict
        The trained parameters.
    bits : ndarray, (steps,)
        Training loss of each chunk, in bits per character (measured before that chunk's update).
    norms : ndarray, (steps,)
        Global gradient norm of each chunk, before clipping.
    clipped : int
        How many updates were clipped.
    state
        The carried state after the last chunk.
    """

    params: dict
    bits: np.ndarray
    norms: np.ndarray
    clipped: int
    state: object = field(default=None, repr=False)


@one_thread
def train(model: str, train_ids: np.ndarray, K: int, *, H: int, k: int, B: int, steps: int, seed: int,
          lr: float = 1e-2, max_norm: float = 5.0, params: dict | None = None) -> TrainResult:
    r"""Train a character model with TBPTT(:math:`k, k`), the state carried across chunks.

    The training text is cut into ``B`` streams (:func:`streams`); update ``j`` uses
    the chunk of ``k`` steps that follows chunk ``j - 1`` in every stream, starting
    from the state where that chunk stopped (:func:`chunk_grads`). At the end of the
    streams the reading starts again at the beginning, from a zero state. Each
    gradient is divided by ``k`` (the loss per character), clipped to global norm
    ``max_norm`` (:func:`bptt_lib.clip.clip_by_global_norm`) and applied with
    :class:`~bptt_lib.optim.Adam` at learning rate ``lr``. ``params`` (optional) are the starting
    parameters; by default :func:`init_params` with ``np.random.default_rng(seed)``.
    """
    H, k, B, steps = (positive_int(name, v) for name, v in (("H", H), ("k", k), ("B", B), ("steps", steps)))
    if params is None:
        params = init_params(model, K, H, rng=np.random.default_rng(seed))
    data = streams(train_ids, B)
    n_chunks = (len(data) - 1) // k
    if n_chunks < 1:
        raise ValueError(f"streams of {len(data)} characters are shorter than one chunk of k + 1 = {k + 1}")
    opt = optim.Adam(lr)
    bits, norms, clipped, state = np.empty(steps), np.empty(steps), 0, None
    for step in range(steps):
        j = step % n_chunks
        if j == 0:
            state = None                                    # back at the start of the streams
        rows = data[j * k:(j + 1) * k + 1]
        loss, grads, state = chunk_grads(model, params, one_hot(rows[:-1], K), rows[1:], state)
        grads = {key: g / k for key, g in grads.items()}    # the gradient of the loss per character
        grads, norms[step] = clip.clip_by_global_norm(grads, max_norm)
        clipped += int(norms[step] > max_norm)
        bits[step] = loss / (k * LN2)
        params = opt.step(params, grads)
    return TrainResult(params=params, bits=bits, norms=norms, clipped=clipped, state=state)


def temperature_probs(o, temperature: float) -> np.ndarray:
    r"""Sampling probabilities at temperature :math:`\tau`: :math:`\operatorname{softmax}(o / \tau)` over the last axis.

    :math:`\tau = 1` is the model's own distribution; :math:`\tau \to 0` puts all mass on
    the most likely class, :math:`\tau \to \infty` spreads it evenly. Stable for large logits
    (the maximum is subtracted before the exponential).
    """
    temperature = positive_number("temperature", temperature)
    z = np.asarray(o, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@one_thread
def sample(model: str, params: dict, vocab: Vocabulary, n: int, *, temperature: float = 1.0,
           rng: np.random.Generator, prime: str = "\n") -> tuple[str, float]:
    r"""Generate ``n`` characters after the text ``prime``, one at a time, each fed back as the next input.

    Each character is drawn by inverting the cumulative distribution of
    :func:`temperature_probs` at a uniform number :math:`u` from ``rng``. Returns the text
    and the **margin**: the smallest distance, over the ``n`` draws, between :math:`u` and
    a boundary of the cumulative distribution. A perturbation of the probabilities smaller
    than the margin (round-off, another CPU) cannot change any character drawn.
    """
    n = positive_int("n", n)
    K = vocab.size
    ids = vocab.encode(prime)
    lp, state = log_probs(model, params, one_hot(ids[:, None], K))
    o = lp[-1, 0]
    out, margin = [], np.inf
    for _ in range(n):
        cdf = np.cumsum(temperature_probs(o, temperature))
        u = rng.random() * cdf[-1]
        j = int(np.searchsorted(cdf, u, side="right"))
        j = min(j, K - 1)
        margin = min(margin, float(np.min(np.abs(cdf[:-1] - u))) if K > 1 else np.inf)
        out.append(j)
        lp, state = log_probs(model, params, one_hot(np.array([[j]]), K), state)
        o = lp[-1, 0]
    return vocab.decode(out), margin


# ---------------------------------------------------------------- plots

def plot_training(results: dict, baseline: float, *, window: int = 10):
    """Training loss (bits per character, running mean over ``window`` chunks) against updates.

    ``results`` maps a model name to a list of :class:`TrainResult` (one per seed); one
    thin line per seed, the unigram baseline dashed.
    """
    import matplotlib.pyplot as plt

    from .plotting import COLORS

    fig, ax = plt.subplots(figsize=(7, 3.8))
    for i, (name, runs) in enumerate(results.items()):
        for r, run in enumerate(runs):
            smooth = np.convolve(run.bits, np.ones(window) / window, mode="valid")
            ax.plot(np.arange(window, len(run.bits) + 1), smooth, color=COLORS[i], lw=1, alpha=0.8,
                    label=name if r == 0 else None)
    ax.axhline(baseline, color="black", ls="--", lw=1, label="unigram (train)")
    ax.set(xlabel="update (chunk of k characters in each stream)", ylabel="bits per character",
           title=f"training loss, running mean of {window} chunks")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_heldout(table: dict, baseline: float):
    """Held-out bits per character per seed (dots) for each model, the unigram baseline dashed."""
    import matplotlib.pyplot as plt

    from .plotting import COLORS

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, values in enumerate(table.values()):
        values = np.asarray(values, dtype=float)
        ax.plot(np.full(len(values), i) + np.linspace(-0.12, 0.12, len(values)), values, "o",
                color=COLORS[i], ms=6)
    ax.axhline(baseline, color="black", ls="--", lw=1, label="unigram")
    ax.set_xticks(range(len(table)), list(table))
    ax.set(ylabel="held-out bits per character", title="one dot per seed")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_samples(samples: dict, *, width: int = 70):
    """Samples as text in a figure: ``samples`` maps a title to a string (line breaks kept, long lines wrapped)."""
    import textwrap

    import matplotlib.pyplot as plt

    blocks = []
    for title, text in samples.items():
        lines = []
        for line in text.split("\n"):
            lines.extend(textwrap.wrap(line, width) or [""])
        blocks.append((title, lines))
    n_lines = sum(len(lines) + 2 for _, lines in blocks)
    fig, ax = plt.subplots(figsize=(8, 0.17 * n_lines + 0.4))
    ax.axis("off")
    y = 1.0
    step = 1.0 / n_lines
    for title, lines in blocks:
        ax.text(0, y, title, fontsize=9, fontweight="bold", va="top", transform=ax.transAxes)
        y -= step
        ax.text(0, y, "\n".join(lines), fontsize=8, family="monospace", va="top", transform=ax.transAxes,
                linespacing=1.25)
        y -= step * (len(lines) + 1)
    return fig


# ---------------------------------------------------------------- longer runs (not stored in the book)

def main(argv=None) -> None:
    """``python -m bptt_lib.char_lm --steps 2000 --seeds 5``: the chapter's experiment with a larger budget.

    Prints, per model and seed, the held-out bits per character (carried state and reset
    every ``k``), the training bits of the last 50 chunks and the number of clipped updates.
    """
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--models", nargs="+", default=["rnn", "lstm"])
    parser.add_argument("--H", type=int, default=64)
    parser.add_argument("--k", type=int, default=25)
    parser.add_argument("--B", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--max-norm", type=float, default=1.0)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    text = load_text()
    vocab = Vocabulary.of(text)
    K = vocab.size
    train_ids, held_ids = split(vocab.encode(text))
    print(f"unigram: train {unigram_bits(train_ids, train_ids, K):.3f}, "
          f"held-out {unigram_bits(train_ids, held_ids, K):.3f}")
    for model in args.models:
        for seed in range(args.seeds):
            r = train(model, train_ids, K, H=args.H, k=args.k, B=args.B, steps=args.steps, seed=seed,
                      lr=args.lr, max_norm=args.max_norm)
            held = bits_per_char(model, r.params, held_ids, K, B=4)
            reset = bits_per_char(model, r.params, held_ids, K, B=4, reset_every=args.k)
            print(f"{model} H={args.H} steps={args.steps} seed={seed}: held-out {held:.3f} "
                  f"(reset every k: {reset:.3f}), "
                  f"train last 50 chunks {r.bits[-50:].mean():.3f}, clipped {r.clipped}/{args.steps}", flush=True)
            if seed == 0:
                text_out, _ = sample(model, r.params, vocab, 300, temperature=0.7, rng=np.random.default_rng(0))
                print(text_out, flush=True)


if __name__ == "__main__":
    main()
