r"""Numerical companions of the chapter *Remedies: clipping, initialisation, ReLU*.

- Initialisers for the recurrent matrix :math:`W`: scaled Gaussian, orthogonal,
  identity (:func:`init_gaussian`, :func:`init_orthogonal`, :func:`init_identity`),
  and :func:`init_params`, which puts one of them into a full parameter dict.
- A vanilla RNN with ReLU hidden units (:func:`relu_forward`, :func:`relu_loss`,
  :func:`relu_loss_and_grads`): the book's RNN with :math:`h^{(t)} = \max(0, a^{(t)})`,
  the same cell of :mod:`bptt_lib.cell` with another activation.
  Only the recursion over time is written here; the input checks, the output
  layer and its gradients, and the loss are :mod:`bptt_lib.rnn`'s own, and the
  ReLU rule ``relu_vjp`` is generated from :mod:`bptt_lib.derive.relu`
  (:func:`bptt_lib.jacobian_products.relu_kernels`).
- Many networks trained at once on the same batch, for experiments over seeds and
  settings: :func:`classify_runs` sorts the runs by outcome. The stacked pass and its
  training loop are :mod:`bptt_lib.stacked`'s (:func:`bptt_lib.stacked.stack_params`,
  :func:`bptt_lib.stacked.loss_and_grads`, :func:`bptt_lib.stacked.train`); the chapter calls
  them there.
- Figures: :func:`plot_clipping_geometry`, :func:`plot_histories`,
  :func:`plot_gradient_growth`, :func:`plot_run_grid`, :func:`plot_init_lag_norms`.

Clipping itself lives in :mod:`bptt_lib.clip`, the training loop in
:mod:`bptt_lib.training`, and the norms :math:`\lVert \partial h^{(T)} / \partial h^{(T - \ell)} \rVert_2`
over the lag (tanh or ReLU) in :func:`bptt_lib.jacobian_products.lag_norms`;
this module does not repeat them.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np

from . import rnn
from .clip import clip_by_global_norm, clip_by_value
from .jacobian_products import check_rng, orthogonalise, relu_kernels
from .plotting import COLORS
from .stacked import StackedHistory
from .validation import as_array, positive_int, positive_number, require_finite

__all__ = [
    "orthogonalise", "init_gaussian", "init_orthogonal", "init_identity", "init_params",
    "relu_forward", "relu_loss", "relu_backward", "relu_loss_and_grads",
    "plot_clipping_geometry", "plot_histories",
    "OUTCOMES", "classify_runs", "plot_gradient_growth", "plot_run_grid", "plot_init_lag_norms",
]

INITIALISERS = ("gaussian", "orthogonal", "identity")


# --- initialisers -------------------------------------------------------------------


def init_gaussian(n: int, *, rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
    r"""A scaled Gaussian recurrent matrix, entries :math:`\mathcal N(0, \text{gain}^2 / n)`.

    With ``gain = 1``, :math:`\mathbb E \lVert W v \rVert^2 = \lVert v \rVert^2` for every
    vector :math:`v`, and the spectral radius is close to 1 for large ``n``; the
    singular values, however, spread from near 0 to near 2. Unlike the
    ``"gaussian"`` kind of :func:`bptt_lib.jacobian_products.recurrent_weight`,
    the matrix is not rescaled to an exact spectral radius.

    Returns
    -------
    ndarray, (n, n)
    """
    n, gain = positive_int("n", n), positive_number("gain", gain)
    check_rng(rng)
    return gain / np.sqrt(n) * rng.standard_normal((n, n))


def init_orthogonal(n: int, *, rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
    r"""``gain`` times a random orthogonal matrix: every singular value equals ``gain``.

    .. math::

        W = \text{gain}\cdot Q, \quad Q^\top Q = I, \quad Q = \text{orthogonalise}(Z), \ Z_{ij} \sim \mathcal N(0, 1).

    Returns
    -------
    ndarray, (n, n)
    """
    n, gain = positive_int("n", n), positive_number("gain", gain)
    check_rng(rng)
    return gain * orthogonalise(rng.standard_normal((n, n)))


def init_identity(n: int, *, gain: float = 1.0) -> np.ndarray:
    """``gain`` times the identity: the recurrent matrix of the IRNN (Le, Jaitly & Hinton, 2015).

    Returns
    -------
    ndarray, (n, n)
    """
    return positive_number("gain", gain) * np.eye(positive_int("n", n))


def init_params(n_in: int, n_hidden: int, n_out: int, *, rng: np.random.Generator,
                recurrent: str = "gaussian", gain: float = 1.0) -> dict:
    """RNN parameters with the recurrent matrix ``W`` from the chosen initialiser.

    ``U``, ``V``, ``b`` and ``c`` come from :func:`bptt_lib.rnn.init_params`
    (Gaussian with standard deviation ``1/sqrt(fan_in)``, zero biases); then
    ``W`` is replaced.

    Parameters
    ----------
    n_in, n_hidden, n_out : int
        ``D``, ``H``, ``K``.
    rng : numpy.random.Generator
    recurrent : {"gaussian", "orthogonal", "identity"}
        :func:`init_gaussian`, :func:`init_orthogonal` or :func:`init_identity`.
    gain : float
        Passed to the initialiser.

    Returns
    -------
    dict
        ``"U"`` (H, D), ``"W"`` (H, H), ``"V"`` (K, H), ``"b"`` (H,), ``"c"`` (K,).
    """
    if recurrent not in INITIALISERS:
        raise ValueError(f"recurrent must be one of {INITIALISERS}; got {recurrent!r}")
    params = rnn.init_params(n_in, n_hidden, n_out, rng=rng)
    if recurrent == "gaussian":
        params["W"] = init_gaussian(n_hidden, rng=rng, gain=gain)
    elif recurrent == "orthogonal":
        params["W"] = init_orthogonal(n_hidden, rng=rng, gain=gain)
    else:
        params["W"] = init_identity(n_hidden, gain=gain)
    return params


# --- the ReLU RNN -------------------------------------------------------------------


def _relu(a: np.ndarray) -> np.ndarray:
    # The mask is taken on the real part, so a complex-step perturbation i*eps rides
    # along on whichever linear piece (a or 0) the real point lies on.
    return np.where(a.real > 0, a, 0)


def _relu_forward(p: dict, x: np.ndarray, h0: np.ndarray) -> rnn.Trace:
    """:func:`bptt_lib.rnn.forward_unchecked` with ``max(0, a)`` in place of ``tanh a``."""
    return rnn.forward_unchecked(p, x, h0, activation=_relu)


def relu_forward(params: dict, x, h0=None) -> rnn.Trace:
    r"""Run the ReLU RNN :math:`h^{(t)} = \max(0,\, b + W h^{(t-1)} + U x^{(t)})` over a batch.

    Parameters
    ----------
    params : dict
        ``"U"`` (H, D), ``"W"`` (H, H), ``"V"`` (K, H), ``"b"`` (H,), ``"c"`` (K,);
        complex entries are allowed (complex step).
    x : array_like, (T, B, D)
    h0 : array_like, (B, H), optional
        Zeros by default.

    Returns
    -------
    bptt_lib.rnn.Trace
        ``h`` (T + 1, B, H), ``o``, ``yhat``, ``log_yhat`` (T, B, K).
    """
    p, x, h0, _ = rnn.check_inputs(params, x, h0, kind="number")
    return _relu_forward(p, x, h0)


def relu_loss(params: dict, x, y, h0=None):
    """The loss of the ReLU RNN, as in :func:`bptt_lib.rnn.loss`; accepts complex parameters."""
    return rnn.loss(params, x, y, h0, activation=_relu)


def relu_backward(params: dict, trace: rnn.Trace, y) -> tuple[dict, np.ndarray]:
    r"""Full BPTT through the ReLU RNN from a stored forward pass.

    The recursion of :func:`bptt_lib.rnn.backward` with the tanh rule replaced by the ReLU rule:

    .. math::

        \nabla_{h^{(t)}} L = V^\top \nabla_{o^{(t)}} L
            + W^\top \operatorname{diag}\!\big([h^{(t+1)} > 0]\big)\, \nabla_{h^{(t+1)}} L .

    Returns
    -------
    grads : dict
        Same keys and shapes as ``params``.
    grad_h : ndarray, (T, B, H)
        ``grad_h[t - 1]`` is :math:`\nabla_{h^{(t)}} L`.
    """
    return rnn.backward(params, trace, y, activation_vjp=relu_kernels().relu_vjp)


def relu_loss_and_grads(params: dict, x, y, h0=None) -> tuple[float, dict]:
    """Loss and gradients of the ReLU RNN by full BPTT; the drop-in ``loss_and_grads`` for
    :func:`bptt_lib.training.train`.

    Parameters
    ----------
    params : dict
        ``"U"`` (H, D), ``"W"`` (H, H), ``"V"`` (K, H), ``"b"`` (H,), ``"c"`` (K,), float64.
    x : array_like, (T, B, D)
    y : array_like of int, (T, B)
    h0 : array_like, (B, H), optional

    Returns
    -------
    loss : float
    grads : dict
        Same keys and shapes as ``params``.

    Raises
    ------
    KeyError, TypeError, ValueError
        For bad input, as :func:`bptt_lib.rnn.loss_and_grads`.
    FloatingPointError
        If the loss or a gradient is not finite (ReLU activations are unbounded).
    """
    return rnn.loss_and_grads(params, x, y, h0, activation=_relu, activation_vjp=relu_kernels().relu_vjp)


# --- figures ------------------------------------------------------------------------


def plot_clipping_geometry(vectors, threshold: float):
    r"""Two panels: 2-D gradients clipped by value (box) and by norm (circle).

    Each vector is drawn in a light colour, its clipped version in a strong one.
    Clipping is done by :func:`bptt_lib.clip.clip_by_value` and
    :func:`bptt_lib.clip.clip_by_global_norm` with ``limit = max_norm = threshold``.

    Parameters
    ----------
    vectors : array_like, (n, 2)
    threshold : float

    Returns
    -------
    matplotlib.figure.Figure
    """
    vectors = as_array("vectors", vectors, ("n", "2"), {})
    if vectors.shape[1] != 2:
        raise ValueError(f"vectors must have shape (n, 2); got shape {vectors.shape}")
    require_finite("vectors", vectors)
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 4.2))
    span = 1.15 * max(np.max(np.abs(vectors)), threshold)
    box = plt.Rectangle((-threshold, -threshold), 2 * threshold, 2 * threshold, fill=False, ls="--", color="0.4")
    circle = plt.Circle((0, 0), threshold, fill=False, ls="--", color="0.4")
    for ax, shape, clip, title in (
        (axes[0], box, lambda g: clip_by_value({"g": g}, threshold)[0]["g"], "by value: each entry into [-λ, λ]"),
        (axes[1], circle, lambda g: clip_by_global_norm({"g": g}, threshold)[0]["g"], "by norm: length at most θ"),
    ):
        ax.add_patch(shape)
        for v, color in zip(vectors, COLORS):
            c = clip(v)
            ax.plot([0, v[0] * 1.6 * span], [0, v[1] * 1.6 * span], color=color, lw=0.6, ls=":")
            ax.annotate("", xy=v, xytext=(0, 0), arrowprops=dict(arrowstyle="->", color=color, alpha=0.35, lw=1.5))
            ax.annotate("", xy=c, xytext=(0, 0), arrowprops=dict(arrowstyle="->", color=color, lw=2.2))
        ax.set_xlim(-span, span)
        ax.set_ylim(-span, span)
        ax.set_aspect("equal")
        ax.axhline(0, color="0.7", lw=0.5)
        ax.axvline(0, color="0.7", lw=0.5)
        ax.set_xlabel(r"$g_1$")
        ax.set_ylabel(r"$g_2$")
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_histories(histories: Mapping, *, title: str = "", log_loss: bool = False):
    """Loss and gradient-norm curves of several :class:`bptt_lib.training.History` side by side.

    Parameters
    ----------
    histories : dict
        Label -> History.
    title : str
    log_loss : bool
        Log scale for the loss axis as well (the gradient-norm axis is always logarithmic).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(histories, Mapping) or not histories:
        raise TypeError(f"histories must be a non-empty dict label -> History; got {type(histories).__name__}")
    fig, (ax_loss, ax_norm) = plt.subplots(1, 2, figsize=(10, 3.8))
    for (label, hist), color in zip(histories.items(), COLORS):
        ax_loss.plot(hist.loss, color=color, lw=1.2, label=label)
        ax_norm.plot(hist.grad_norm, color=color, lw=1.0, label=label)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel(r"loss $L$ (nats, summed over $t$)")
    ax_norm.set_xlabel("step")
    ax_norm.set_ylabel(r"$\Vert \nabla L \Vert$ before clipping")
    ax_norm.set_yscale("log")
    if log_loss:
        ax_loss.set_yscale("log")
    ax_loss.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# --- many networks at once -----------------------------------------------------------
# The stacked pass and its training loop live in bptt_lib.stacked; here only the verdicts.


OUTCOMES = ("converged", "slow", "diverged")


def classify_runs(history: StackedHistory, chance_loss: float, *, converged_below: float = 0.05) -> np.ndarray:
    """Each run's outcome from thresholds fixed in advance.

    ``"diverged"``: the loss, gradient or parameters stopped being finite, or the
    final loss is above ``chance_loss``; ``"converged"``: the final loss is below
    ``converged_below * chance_loss``; ``"slow"``: neither.

    Returns
    -------
    ndarray of str, (N,)
    """
    chance_loss = positive_number("chance_loss", chance_loss)
    converged_below = positive_number("converged_below", converged_below)
    final = history.loss[:, -1]
    with np.errstate(invalid="ignore"):
        diverged = (history.diverged_at >= 0) | ~(final <= chance_loss)
        converged = ~diverged & (final < converged_below * chance_loss)
    return np.where(diverged, "diverged", np.where(converged, "converged", "slow"))


def plot_gradient_growth(lengths, panels: Mapping, gains):
    """Gradient norms at initialisation against the sequence length, one curve per gain.

    Parameters
    ----------
    lengths : array_like, (L,)
    panels : dict
        ``{y-axis label: norms}`` with ``norms`` of shape (G, S, L): gain, seed, length.
        Each gain is drawn as its median over the seeds with a band from the smallest
        to the largest seed.
    gains : sequence of float, (G,)

    Returns
    -------
    matplotlib.figure.Figure
    """
    lengths = np.asarray(lengths)
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8))
    axes = np.atleast_1d(axes)
    for ax, (ylabel, norms) in zip(axes, panels.items()):
        norms = np.asarray(norms, dtype=float)
        for gain, values, color in zip(gains, norms, COLORS):
            ax.loglog(lengths, np.median(values, axis=0), "o-", color=color, ms=3, label=f"gain {gain}")
            ax.fill_between(lengths, values.min(axis=0), values.max(axis=0), color=color, alpha=0.2, lw=0)
        ax.set_xlabel("sequence length $T$")
        ax.set_ylabel(ylabel)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_run_grid(histories: Mapping, gains, n_seeds: int, chance_loss: float):
    """Loss curves of many runs, one panel per training condition, coloured by gain.

    Parameters
    ----------
    histories : dict
        ``{panel title: StackedHistory}``; network ``i`` has gain ``gains[i // n_seeds]``.
    gains : sequence of float
    n_seeds : int
    chance_loss : float
        The loss is drawn divided by it; dashed lines mark the thresholds of
        :func:`classify_runs` (1 and 0.05).

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, axes = plt.subplots(1, len(histories), figsize=(4.2 * len(histories), 3.8), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, (title, hist) in zip(axes, histories.items()):
        for i, curve in enumerate(hist.loss):
            gain = gains[i // n_seeds]
            ax.semilogy(curve / chance_loss, color=COLORS[i // n_seeds], lw=0.9, alpha=0.8,
                        label=f"gain {gain}" if i % n_seeds == 0 else None)
        for level in (1.0, 0.05):
            ax.axhline(level, color="0.4", lw=0.8, ls="--")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
    axes[0].set_ylabel(r"loss / $T \ln K$")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_init_lag_norms(w_curves: Mapping, lag_curves: Mapping, *, skip_w=("ReLU, Gaussian",), ylim=(1e-12, 1e3)):
    r"""Two panels: :math:`\lVert W^\ell \rVert_2` per initialisation (left) and the Jacobian product's norm (right).

    Parameters
    ----------
    w_curves, lag_curves : dict
        ``{label: norms over the lag}``, same labels in the same order (colours match).
        Labels of the form ``"<activation>, <initialisation>"``; the left panel is
        labelled by the initialisation only.
    skip_w : sequence of str
        Labels left out of the left panel (a matrix already drawn under another label).
        Curves whose label contains ``"IRNN"`` are drawn dashed and wider on the left,
        where they coincide with the orthogonal one.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, (ax_w, ax_j) = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for (label, curve), color in zip(lag_curves.items(), COLORS):
        ax_j.semilogy(curve, color=color, label=label)
        if label not in skip_w:
            dashed = "IRNN" in label
            ax_w.semilogy(w_curves[label], color=color, label=label.split(", ")[-1],
                          ls="--" if dashed else "-", lw=2.5 if dashed else 1.5)
    ax_w.set(xlabel=r"lag $\ell$", ylabel=r"$\Vert W^\ell \Vert_2$", title=r"$W$ alone")
    ax_j.set(xlabel=r"lag $\ell$", title="the Jacobian product (geometric mean)",
             ylabel=r"$\Vert \partial h^{(T)} / \partial h^{(T-\ell)} \Vert_2$")
    ax_w.legend()
    ax_j.legend(fontsize=8)
    ax_j.set_ylim(*ylim)
    fig.tight_layout()
    return fig
