r"""Numerical companions of the chapter *Remedies: clipping, initialisation, ReLU*.

- Initialisers for the recurrent matrix :math:`W`: scaled Gaussian, orthogonal,
  identity (:func:`init_gaussian`, :func:`init_orthogonal`, :func:`init_identity`),
  and :func:`init_params`, which puts one of them into a full parameter dict.
- A vanilla RNN with ReLU hidden units (:func:`relu_forward`, :func:`relu_loss`,
  :func:`relu_loss_and_grads`): the book's RNN with :math:`h^{(t)} = \max(0, a^{(t)})`.
  Only the recursion over time is written here; the input checks, the output
  layer and its gradients, and the loss are :mod:`bptt_lib.rnn`'s own, and the
  ReLU rule ``relu_vjp`` is generated from :mod:`bptt_lib.derive.relu`
  (:func:`bptt_lib.jacobian_products.relu_kernels`).
- Figures: :func:`plot_clipping_geometry`, :func:`plot_histories`.

Clipping itself lives in :mod:`bptt_lib.clip`, the training loop in
:mod:`bptt_lib.training`, and the norms :math:`\lVert \partial h^{(T)} / \partial h^{(T - \ell)} \rVert_2`
over the lag (tanh or ReLU) in :func:`bptt_lib.jacobian_products.lag_norms`;
this module does not repeat them.
"""

from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np

from . import rnn
from .clip import clip_by_global_norm, clip_by_value
from .jacobian_products import check_rng, orthogonalise, relu_kernels
from .plotting import COLORS
from .validation import as_array, positive_int, positive_number, require_finite

__all__ = [
    "orthogonalise", "init_gaussian", "init_orthogonal", "init_identity", "init_params",
    "relu_forward", "relu_loss", "relu_backward", "relu_loss_and_grads",
    "plot_clipping_geometry", "plot_histories",
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
    """Loss and gradients of the ReLU RNN by full BPTT; the drop-in ``loss_and_grads`` for :func:`bptt_lib.training.train`.

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
    return rnn.loss_and_grads(params, x, y, h0, activation=_relu,
                              backward_rule=lambda p, trace, y: relu_backward(p, trace, y)[0])


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
