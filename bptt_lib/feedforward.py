r"""The tiny feed-forward network of chapter 3: forward, backward, train.

For example ``i`` of a batch (the RNN's step without the recurrent term):

.. math::

    a = b + U x, \quad h = \tanh a, \quad o = c + V h, \quad
    \hat y = \operatorname{softmax}(o),

    L = \frac{1}{B} \sum_{i=1}^{B} -\log \hat y_{i,\, y_i}.

Shapes: inputs ``x`` are ``(B, D)``, targets ``y`` are ``(B,)`` integers in
``[0, K)``; parameters ``U`` (H, D), ``b`` (H,), ``V`` (K, H), ``c`` (K,).

Every linear map and every backward rule is a kernel generated from
:mod:`bptt_lib.derive` (see :mod:`bptt_lib.kernels`). Both layers are affine
maps of the same form, so both use the kernels ``output_affine`` and
``output_vjp`` (named after their first use, the RNN's output layer);
:func:`bptt_lib.derive.feedforward.prove_kernel_reuse` proves that this is
exact. This module only orders the calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import training
from .kernels import rnn_kernels
from .rnn import normal_weights
from .softmax import onehot, softmax_and_log
from .validation import (
    as_array,
    check_finite_result,
    positive_int,
    positive_number,
    require_finite,
    require_keys,
)

__all__ = [
    "PARAM_SHAPES", "Trace", "init_params", "forward", "loss", "backward",
    "loss_and_grads", "predict", "train", "spirals", "plot_loss_curves", "plot_regions",
]

PARAM_SHAPES = {"U": ("H", "D"), "b": ("H",), "V": ("K", "H"), "c": ("K",)}
"""Each parameter's shape in the book's dimension names."""


@dataclass
class Trace:
    """What the forward pass stores for the backward pass.

    Attributes
    ----------
    x : ndarray, (B, D)
        The inputs.
    h : ndarray, (B, H)
        Hidden activations ``tanh(a)``; the backward pass needs ``h``, not ``a``.
    o : ndarray, (B, K)
        Logits.
    yhat : ndarray, (B, K)
        Softmax probabilities.
    log_yhat : ndarray, (B, K)
        Log-probabilities, computed stably from ``o``.
    """

    x: np.ndarray
    h: np.ndarray
    o: np.ndarray
    yhat: np.ndarray
    log_yhat: np.ndarray


def init_params(n_in: int, n_hidden: int, n_out: int, *, rng: np.random.Generator, scale=None) -> dict:
    """Random parameters for a network with ``D = n_in``, ``H = n_hidden``, ``K = n_out``.

    Parameters
    ----------
    n_in, n_hidden, n_out : int
        Positive sizes.
    rng : numpy.random.Generator
        The only source of randomness, so that runs are reproducible.
    scale : float, optional
        Standard deviation of every weight entry. By default each weight matrix
        uses ``1 / sqrt(fan_in)``, which keeps pre-activations of order one.

    Returns
    -------
    dict
        ``"U"`` (H, D) and ``"V"`` (K, H) drawn from a normal distribution;
        ``"b"`` (H,) and ``"c"`` (K,) zero.
    """
    n_in, n_hidden, n_out = (positive_int(name, value) for name, value in
                             (("n_in", n_in), ("n_hidden", n_hidden), ("n_out", n_out)))
    weights = normal_weights({"U": (n_hidden, n_in), "V": (n_out, n_hidden)}, rng=rng, scale=scale)
    return {"U": weights["U"], "b": np.zeros(n_hidden), "V": weights["V"], "c": np.zeros(n_out)}


# --- validation -------------------------------------------------------------------

def _check_params(params, sizes: dict, kind: str) -> dict:
    require_keys("params", params, list(PARAM_SHAPES))
    checked = {}
    for key in ("U", "V", "b", "c"):  # U and V fix H, D and K first
        arr = as_array(f'params["{key}"]', params[key], PARAM_SHAPES[key], sizes, kind=kind)
        require_finite(f'params["{key}"]', arr)
        checked[key] = arr
    return checked


def _check_x(x, sizes: dict) -> np.ndarray:
    x = as_array("x", x, ("B", "D"), sizes)
    require_finite("x", x)
    return x


def _check_targets(y, sizes: dict) -> np.ndarray:
    y = as_array("y", y, ("B",), sizes, kind="int")
    if y.min() < 0 or y.max() >= sizes["K"]:
        raise ValueError(f"y must hold class indices in [0, K={sizes['K']}); got values from {y.min()} to {y.max()}")
    return y


def _check_inputs(params, x, y, kind: str):
    sizes: dict = {}
    p = _check_params(params, sizes, kind)
    x = _check_x(x, sizes)
    y = None if y is None else _check_targets(y, sizes)
    return p, x, y


# --- the network --------------------------------------------------------------------

def _forward(p: dict, x: np.ndarray) -> Trace:
    k = rnn_kernels()
    ones = np.ones((x.shape[0], 1))
    h = np.tanh(k.output_affine(x, p["U"], p["b"][None, :], ones))   # a = b + U x
    o = k.output_affine(h, p["V"], p["c"][None, :], ones)             # o = c + V h
    yhat, log_yhat = softmax_and_log(o)
    return Trace(x=x, h=h, o=o, yhat=yhat, log_yhat=log_yhat)


def _nll(trace: Trace, y: np.ndarray):
    picked = np.take_along_axis(trace.log_yhat, y[:, None], axis=-1)
    return -picked.sum() / y.shape[0]


def _backward(p: dict, trace: Trace, y: np.ndarray) -> dict:
    return _backward_from(trace.x, trace.h, trace.yhat, y, p["V"], p["U"])


def _backward_from(x, h, yhat, y, V, U=None) -> dict:
    """The backward pass from the stored ``x``, ``h``, ``yhat``; it reads only ``V`` among the parameters.

    ``U`` only enters the unused gradient with respect to ``x``; without it a
    zero array of the right shape stands in.
    """
    k = rnn_kernels()
    B, K = yhat.shape
    ones = np.ones((B, 1))
    Y = onehot(y, K)
    U = np.zeros((h.shape[1], x.shape[1])) if U is None else U

    G_o = k.softmax_nll_grad(yhat, Y, B)                             # dL/do   (B, K)
    dV, dc, G_h = k.output_vjp(G_o, h, V, ones)                      # dL/dh   (B, H)
    G_a = k.tanh_vjp(G_h, h)                                         # dL/da   (B, H)
    dU, db, _ = k.output_vjp(G_a, x, U, ones)                         # dL/dx is not needed
    grads = {"U": dU, "b": db.reshape(-1), "V": dV, "c": dc.reshape(-1)}
    check_finite_result("backward", grads)
    return grads


def forward(params: dict, x) -> Trace:
    """Run the network on a batch.

    Parameters
    ----------
    params : dict
        ``"U"`` (H, D), ``"b"`` (H,), ``"V"`` (K, H), ``"c"`` (K,).
        Complex entries are accepted, for the complex-step derivative.
    x : array_like, (B, D)

    Returns
    -------
    Trace
        With ``h`` (B, H), ``o``, ``yhat`` and ``log_yhat`` (B, K).
    """
    p, x, _ = _check_inputs(params, x, None, kind="number")
    return _forward(p, x)


def loss(params: dict, x, y):
    """The loss ``L`` alone: the mean over the batch of ``-log yhat[i, y[i]]``.

    Accepts complex parameters, so that :func:`bptt_lib.gradcheck.complex_step`
    can differentiate it: nothing in the forward pass takes an ``abs`` of, or
    compares, a complex number (the softmax shift uses the real part only).
    """
    p, x, y = _check_inputs(params, x, y, kind="number")
    return _nll(_forward(p, x), y)


def backward(params: dict, trace: Trace, y) -> dict:
    r"""The backward pass from a stored forward pass, layer by layer from the top.

    .. math::

        G_o = (\hat Y - Y)/B,

        (\nabla_V L, \nabla_c L, G_h) = (G_o^\top H,\; 1^\top G_o,\; G_o V),

        G_a = G_h \odot (1 - H \odot H),

        (\nabla_U L, \nabla_b L) = (G_a^\top X,\; 1^\top G_a).

    Each step is one generated kernel: ``softmax_nll_grad``, ``output_vjp``,
    ``tanh_vjp``, ``output_vjp``.

    Parameters
    ----------
    params : dict
        The float64 parameters the trace was computed with.
    trace : Trace
        From :func:`forward`.
    y : array_like of int, (B,)

    Returns
    -------
    dict
        Gradients with the same keys and shapes as ``params``.

    Raises
    ------
    FloatingPointError
        If a gradient is not finite.
    """
    sizes: dict = {}
    p = _check_params(params, sizes, kind="float")
    if not isinstance(trace, Trace):
        raise TypeError(f"trace must be the Trace returned by forward; got {type(trace).__name__}")
    as_array("trace.x", trace.x, ("B", "D"), sizes)
    as_array("trace.h", trace.h, ("B", "H"), sizes)
    as_array("trace.yhat", trace.yhat, ("B", "K"), sizes)
    y = _check_targets(y, sizes)
    return _backward(p, trace, y)


def loss_and_grads(params: dict, x, y) -> tuple[float, dict]:
    """The loss and its gradient with respect to every parameter.

    Parameters
    ----------
    params : dict
        ``"U"`` (H, D), ``"b"`` (H,), ``"V"`` (K, H), ``"c"`` (K,), real.
    x : array_like, (B, D)
    y : array_like of int, (B,)
        Target classes in ``[0, K)``.

    Returns
    -------
    loss : float
        The mean over the batch of ``-log yhat[i, y[i]]``.
    grads : dict
        Same keys and shapes as ``params``.

    Raises
    ------
    KeyError, TypeError, ValueError
        For missing keys, wrong dtypes, wrong shapes, targets out of range or
        non-finite inputs.
    FloatingPointError
        If the loss or a gradient is not finite.
    """
    p, x, y = _check_inputs(params, x, y, kind="float")
    return _loss_and_grads(p, x, y)


def _loss_and_grads(p: dict, x: np.ndarray, y: np.ndarray) -> tuple[float, dict]:
    trace = _forward(p, x)
    value = float(_nll(trace, y))
    check_finite_result("loss_and_grads", {"loss": np.asarray(value)})
    return value, _backward(p, trace, y)


def predict(params: dict, x) -> np.ndarray:
    """The most probable class for each row of ``x``: integers, shape (B,)."""
    p, x, _ = _check_inputs(params, x, None, kind="float")
    return _forward(p, x).o.argmax(axis=-1)


def train(params: dict, x, y, *, lr: float, steps: int) -> tuple[dict, np.ndarray]:
    r"""Full-batch gradient descent, :math:`\theta \leftarrow \theta - \eta \nabla_\theta L`.

    A thin wrapper around the book's shared loop, :func:`bptt_lib.training.train`,
    with this network's :func:`loss_and_grads` and the same batch at every step.

    Parameters
    ----------
    params : dict
        Starting parameters; not modified.
    x : array_like, (B, D)
    y : array_like of int, (B,)
    lr : float
        The learning rate :math:`\eta > 0`.
    steps : int
        Number of updates.

    Returns
    -------
    params : dict
        The parameters after ``steps`` updates (new arrays).
    history : ndarray, (steps + 1,)
        ``history[s]`` is the loss after ``s`` updates.

    Raises
    ------
    FloatingPointError
        If the loss or a gradient stops being finite (a learning rate far too large).
    """
    p, x, y = _check_inputs(params, x, y, kind="float")
    lr = positive_number("lr", lr)
    steps = positive_int("steps", steps)
    # Inputs are validated once, here; every step then calls the unchecked core.
    trained, record = training.train(p, (x, y), steps=steps, lr=lr, loss_and_grads=_loss_and_grads)
    if record.diverged_at is not None:
        raise FloatingPointError(
            f"train: the loss or a gradient stopped being finite at step {record.diverged_at}; lower lr")
    final = float(_nll(_forward(trained, x), y))
    check_finite_result("train", {"final loss": np.asarray(final)})
    return trained, np.append(record.loss, final)


def spirals(n_per_class: int, n_classes: int = 3, *, rng: np.random.Generator, noise: float = 0.2):
    """Interleaved spiral arms in the plane: a small classification problem no line can solve.

    Arm ``k`` holds the points ``r (cos t, sin t)`` with radius ``r`` evenly
    spaced in ``[0.05, 1]`` and angle ``t = 2 pi k / K + 4 r`` plus Gaussian
    noise of standard deviation ``noise`` (radians).

    Returns
    -------
    x : ndarray, (n_per_class * n_classes, 2)
    y : ndarray of int, (n_per_class * n_classes,)
    """
    n_per_class = positive_int("n_per_class", n_per_class)
    n_classes = positive_int("n_classes", n_classes)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)); got {type(rng).__name__}")
    noise = positive_number("noise", noise, allow_zero=True)
    r = np.tile(np.linspace(0.05, 1.0, n_per_class), n_classes)
    y = np.repeat(np.arange(n_classes), n_per_class)
    t = 2 * np.pi * y / n_classes + 4 * r + noise * rng.standard_normal(r.shape)
    return np.column_stack([r * np.cos(t), r * np.sin(t)]), y


# --- figures ------------------------------------------------------------------------


def plot_loss_curves(curves: dict, *, title: str | None = None):
    """Loss against gradient-descent step on a log axis, one colour per key of ``curves``.

    ``curves`` maps a label (shown in the legend) to one loss history or to a
    list of histories (e.g. one per seed, drawn as thin lines of one colour).
    Returns the figure.
    """
    import matplotlib.pyplot as plt

    from .plotting import COLORS

    if not isinstance(curves, dict) or not curves:
        raise TypeError("curves must be a non-empty dict mapping a label to a loss history or a list of them")
    fig, ax = plt.subplots()
    for (label, value), color in zip(curves.items(), COLORS):
        runs = [np.asarray(value, dtype=float)] if np.ndim(value[0]) == 0 else [np.asarray(v, float) for v in value]
        for i, run in enumerate(runs):
            ax.semilogy(run, color=color, lw=1.4 if len(runs) == 1 else 0.9, alpha=1 if len(runs) == 1 else 0.75,
                        label=label if i == 0 else None)
    ax.set_xlabel("gradient-descent step")
    ax.set_ylabel(r"training loss $L$ (mean NLL, nats)")
    if title:
        ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_regions(params: dict, x, y, *, extent: float = 1.2, n_grid: int = 241):
    """Predicted class regions of the network on a grid, with the points ``x`` coloured by ``y``.

    Returns the figure.
    """
    import matplotlib.pyplot as plt

    from .plotting import COLORS

    x = np.asarray(x, dtype=float)
    y = np.asarray(y)
    grid = np.linspace(-extent, extent, n_grid)
    gx, gy = np.meshgrid(grid, grid)
    regions = predict(params, np.column_stack([gx.ravel(), gy.ravel()])).reshape(gx.shape)
    n_classes = params["V"].shape[0]
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    ax.contourf(gx, gy, regions, levels=np.arange(n_classes + 1) - 0.5, colors=COLORS[:n_classes], alpha=0.25)
    ax.contour(gx, gy, regions, levels=np.arange(n_classes - 1) + 0.5, colors="0.3", linewidths=0.8)
    for cls in range(n_classes):
        pts = x[y == cls]
        ax.scatter(pts[:, 0], pts[:, 1], s=12, color=COLORS[cls], edgecolor="white", linewidth=0.4,
                   label=f"class {cls}")
    ax.set_xlabel(r"$x_1$")
    ax.set_ylabel(r"$x_2$")
    ax.set_aspect("equal")
    ax.grid(False)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("Predicted class regions after training")
    fig.tight_layout()
    return fig
