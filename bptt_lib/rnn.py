r"""The vanilla RNN of the book, batched, with full backpropagation through time.

Notation (Goodfellow, Bengio & Courville, ch. 10), for example ``b`` of a batch:

.. math::

    a^{(t)} = b + W h^{(t-1)} + U x^{(t)}, \quad h^{(t)} = \tanh a^{(t)},

    o^{(t)} = c + V h^{(t)}, \quad \hat y^{(t)} = \operatorname{softmax}(o^{(t)}),

    L = \frac{1}{B} \sum_{b=1}^{B} \sum_{t=1}^{T} -\log \hat y^{(t)}_{b,\, y^{(t)}_b}.

Shapes: inputs ``x`` are ``(T, B, D)``, targets ``y`` are ``(T, B)`` integers
in ``[0, K)``, hidden states ``h`` are ``(T + 1, B, H)`` with ``h[0] = h0``.
Every linear map and every backward rule is a kernel generated from
:mod:`bptt_lib.derive` (see :mod:`bptt_lib.kernels`). This module validates the
inputs once per public call and keeps the book's names; the loops over time are
:mod:`bptt_lib.bptt`'s, run over the RNN cell of :mod:`bptt_lib.cell`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import bptt, models
from .cell import rnn_cell
from .kernels import rnn_kernels
from .softmax import softmax_and_log
from .validation import as_array, check_finite_result, positive_int, positive_number, require_finite, require_keys

__all__ = [
    "PARAM_SHAPES", "Trace", "init_params", "forward", "loss", "backward", "loss_and_grads",
    "check_params", "check_inputs", "check_targets", "forward_unchecked", "nll", "output_grads",
    "normal_weights", "check_backward_inputs", "MODEL",
]

PARAM_SHAPES = {"U": ("H", "D"), "W": ("H", "H"), "V": ("K", "H"), "b": ("H",), "c": ("K",)}
"""Each parameter's shape in the book's dimension names."""


@dataclass
class Trace:
    """What the forward pass stores for the backward pass.

    Attributes
    ----------
    x : ndarray, (T, B, D)
    h : ndarray, (T + 1, B, H)
        Hidden states; ``h[0]`` is the initial state, ``h[t]`` is :math:`h^{(t)}`.
    o : ndarray, (T, B, K)
        Logits; ``o[t - 1]`` is :math:`o^{(t)}`.
    yhat : ndarray, (T, B, K)
        Softmax probabilities.
    log_yhat : ndarray, (T, B, K)
        Log-probabilities, computed stably from ``o``.
    """

    x: np.ndarray
    h: np.ndarray
    o: np.ndarray
    yhat: np.ndarray
    log_yhat: np.ndarray


def init_params(n_in: int, n_hidden: int, n_out: int, *, rng: np.random.Generator, scale=None) -> dict:
    """Random parameters for an RNN with ``D = n_in``, ``H = n_hidden``, ``K = n_out``.

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
        ``"U"`` (H, D), ``"W"`` (H, H), ``"V"`` (K, H) drawn from a normal
        distribution; ``"b"`` (H,) and ``"c"`` (K,) zero.
    """
    n_in, n_hidden, n_out = (positive_int(name, value) for name, value in
                             (("n_in", n_in), ("n_hidden", n_hidden), ("n_out", n_out)))
    weights = normal_weights({"U": (n_hidden, n_in), "W": (n_hidden, n_hidden), "V": (n_out, n_hidden)},
                             rng=rng, scale=scale)
    return {**weights, "b": np.zeros(n_hidden), "c": np.zeros(n_out)}


def normal_weights(shapes: dict, *, rng: np.random.Generator, scale=None) -> dict:
    """Normal weight matrices, drawn in the order of ``shapes`` (a dict name -> (rows, cols)).

    The standard deviation is ``scale``, or ``1 / sqrt(cols)`` (the fan-in) by
    default. Shared by every network of the book that starts from Gaussian weights.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)); got {type(rng).__name__}")
    if scale is not None:
        scale = positive_number("scale", scale)
    weights = {}
    for name, (rows, cols) in shapes.items():
        std = scale if scale is not None else 1.0 / np.sqrt(cols)
        weights[name] = std * rng.standard_normal((rows, cols))
    return weights


def check_params(params, sizes: dict, kind: str) -> dict:
    """Validate the parameter dict; record ``H``, ``K``, ``D`` in ``sizes``; return float/complex arrays.

    ``kind`` is ``"float"`` (real only) or ``"number"`` (complex allowed, for the complex step).
    Other modules that run a variant of this RNN call it so that their errors read the same.
    """
    require_keys("params", params, list(PARAM_SHAPES))
    checked = {}
    # W and V fix H and K before the others are compared with them.
    for key in ("W", "V", "U", "b", "c"):
        arr = as_array(f'params["{key}"]', params[key], PARAM_SHAPES[key], sizes, kind=kind)
        require_finite(f'params["{key}"]', arr)
        checked[key] = arr
    return checked


def check_inputs(params, x, h0, kind: str):
    """Validate ``params``, ``x`` (T, B, D) and ``h0`` (B, H; zeros if None).

    Returns ``(params, x, h0, sizes)`` with arrays converted and ``sizes`` the
    dict of ``T, B, D, H, K``.
    """
    sizes: dict = {}
    p = check_params(params, sizes, kind)
    x = as_array("x", x, ("T", "B", "D"), sizes)
    require_finite("x", x)
    if h0 is None:
        h0 = np.zeros((sizes["B"], sizes["H"]))
    h0 = as_array("h0", h0, ("B", "H"), sizes, kind=kind)
    require_finite("h0", h0)
    return p, x, h0, sizes


def check_targets(y, sizes: dict) -> np.ndarray:
    """Validate integer targets ``y`` (T, B) in ``[0, K)`` against ``sizes``."""
    y = as_array("y", y, ("T", "B"), sizes, kind="int")
    if y.min() < 0 or y.max() >= sizes["K"]:
        raise ValueError(f"y must hold class indices in [0, K={sizes['K']}); got values from {y.min()} to {y.max()}")
    return y


def forward_unchecked(p: dict, x: np.ndarray, h0: np.ndarray, activation=np.tanh) -> Trace:
    """:func:`forward` on inputs already validated by :func:`check_inputs` (no checks repeated).

    ``activation`` replaces tanh for variants of the network (the ReLU RNN of
    chapter 9); it is applied elementwise to the pre-activation. The states come
    from :func:`bptt_lib.bptt.forward` with :func:`bptt_lib.cell.rnn_cell`.
    """
    T, B, _ = x.shape
    H, K = p["W"].shape[0], p["V"].shape[0]
    h = bptt.forward(rnn_cell(activation), p, x, h0)
    # The output layer has no recurrence: all T steps in one product.
    o = rnn_kernels().output_logits(h[1:].reshape(T * B, H), p["V"], p["c"]).reshape(T, B, K)
    yhat, log_yhat = softmax_and_log(o)
    return Trace(x=x, h=h, o=o, yhat=yhat, log_yhat=log_yhat)


def forward(params: dict, x, h0=None) -> Trace:
    """Run the RNN over a batch of sequences.

    Parameters
    ----------
    params : dict
        ``"U"`` (H, D), ``"W"`` (H, H), ``"V"`` (K, H), ``"b"`` (H,), ``"c"`` (K,).
        Complex entries are accepted, for the complex-step derivative.
    x : array_like, (T, B, D)
    h0 : array_like, (B, H), optional
        Initial hidden state; zeros by default.

    Returns
    -------
    Trace
        With ``h`` (T + 1, B, H), ``o`` and ``yhat`` (T, B, K).
    """
    p, x, h0, _ = check_inputs(params, x, h0, kind="number")
    return forward_unchecked(p, x, h0)


def nll(trace: Trace, y: np.ndarray) -> np.ndarray:
    """The loss of a stored forward pass: summed over time, averaged over the batch."""
    T, B = y.shape
    picked = np.take_along_axis(trace.log_yhat, y[..., None], axis=-1)
    return -picked.sum() / B


def loss(params: dict, x, y, h0=None, *, activation=np.tanh):
    """The loss ``L`` alone: summed over time, averaged over the batch.

    Accepts complex parameters, so that :func:`bptt_lib.gradcheck.complex_step`
    can differentiate it. ``activation`` is as in :func:`forward_unchecked`.
    """
    p, x, h0, sizes = check_inputs(params, x, h0, kind="number")
    y = check_targets(y, sizes)
    return nll(forward_unchecked(p, x, h0, activation=activation), y)


def check_backward_inputs(params, trace, y) -> tuple[dict, np.ndarray, dict]:
    """Validate the arguments of a backward pass: ``(params, y, sizes)``, checked against ``trace``.

    The trace must come from a forward pass of a network with the shapes of
    ``params``: ``x`` (T, B, D), ``h`` (T + 1, B, H), ``o``, ``yhat`` and
    ``log_yhat`` (T, B, K), with ``D``, ``H`` and ``K`` those of ``params``.
    A trace of another network is a ``ValueError`` that names the field, the
    expected shape and the shape found.
    """
    sizes: dict = {}
    p = check_params(params, sizes, kind="float")
    if not isinstance(trace, Trace):
        raise TypeError(f"trace must be the Trace returned by forward; got {type(trace).__name__}")

    def check_field(field: str, dims: tuple) -> None:
        try:
            as_array(f"trace.{field}", getattr(trace, field), dims, sizes)
        except ValueError as err:
            raise ValueError(f"{err}: the trace does not match params (is it the forward pass of another network?)") \
                from None

    check_field("x", ("T", "B", "D"))
    sizes["T+1"] = sizes["T"] + 1
    check_field("h", ("T+1", "B", "H"))
    del sizes["T+1"]
    for field in ("o", "yhat", "log_yhat"):
        check_field(field, ("T", "B", "K"))
    return p, check_targets(y, sizes), sizes


def output_grads(p: dict, trace: Trace, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The output layer's part of the backward pass, for all steps at once.

    With :math:`\nabla_{o^{(t)}} L = (\hat y^{(t)} - \mathrm{onehot}(y^{(t)}))/B`
    (kernel ``softmax_nll_grad``) and the output VJP (kernel ``output_vjp``):

    Returns
    -------
    dV : ndarray, (K, H)
        :math:`\sum_t \nabla_{o^{(t)}} L \, h^{(t)\top}`.
    dc : ndarray, (K,)
        :math:`\sum_t \nabla_{o^{(t)}} L`.
    grad_h_from_o : ndarray, (T, B, H)
        ``[t - 1]`` is :math:`V^\top \nabla_{o^{(t)}} L`, the gradient reaching
        :math:`h^{(t)}` through its own output only.

    ``p`` and ``y`` must already be validated (:func:`check_params`, :func:`check_targets`).
    The rule is :func:`bptt_lib.bptt.output_layer`'s, on all steps as one block.
    """
    grads = {"V": np.zeros_like(p["V"]), "c": np.zeros_like(p["c"])}
    _, grad_h_from_o = bptt.output_layer(p, trace.h[1:], y, grads, trace.yhat)
    return grads["V"], grads["c"], grad_h_from_o


def backward(params: dict, trace: Trace, y, *, activation_vjp=None) -> tuple[dict, np.ndarray]:
    r"""Full backpropagation through time from a stored forward pass.

    Runs the recursion

    .. math::

        \nabla_{h^{(t)}} L = V^\top \nabla_{o^{(t)}} L
            + W^\top \operatorname{diag}\!\big(1 - (h^{(t+1)})^2\big)\, \nabla_{h^{(t+1)}} L

    backwards from ``t = T``, with :math:`\nabla_{o^{(t)}} L = (\hat y^{(t)} - \mathrm{onehot}(y^{(t)}))/B`,
    on the trace's states and probabilities (:func:`bptt_lib.bptt.bptt`).

    ``activation_vjp(g, h)``, if given, replaces the generated ``tanh_vjp`` (the
    diagonal factor) for a network with another activation, such as the ReLU
    RNN of chapter 9; everything else is unchanged.

    Returns
    -------
    grads : dict
        Same keys and shapes as ``params``.
    grad_h : ndarray, (T, B, H)
        ``grad_h[t - 1]`` is the total gradient :math:`\nabla_{h^{(t)}} L`.

    Raises
    ------
    FloatingPointError
        If a gradient is not finite.
    """
    p, y, sizes = check_backward_inputs(params, trace, y)
    act_vjp = "tanh_vjp" if activation_vjp is None else activation_vjp
    grad_h = np.empty((sizes["T"], sizes["B"], sizes["H"]))
    grads = {key: np.zeros_like(p[key]) for key in PARAM_SHAPES}
    bptt.bptt(rnn_cell(activation_vjp=act_vjp), p, trace.x, y, h=trace.h, yhat=trace.yhat,
              grads=grads, grad_h=grad_h)
    check_finite_result("loss_and_grads", grads)
    return grads, grad_h


def loss_and_grads(params: dict, x, y, h0=None, *, activation=np.tanh, activation_vjp=None,
                   backward_rule=None) -> tuple[float, dict]:
    """The loss and its gradient with respect to every parameter, by full BPTT.

    The inputs are validated once; then :func:`bptt_lib.bptt.bptt` runs the
    forward and the backward pass over the cell :func:`bptt_lib.cell.rnn_cell`.
    The keyword hooks serve the book's variants, so that validation, the
    forward pass and the finite-loss check are written once: ``activation``
    replaces tanh in the forward pass and ``activation_vjp(g, h)`` the generated
    ``tanh_vjp`` in the backward pass (the ReLU RNN of chapter 9);
    ``backward_rule(params, trace, y) -> grads`` replaces the backward pass
    altogether, given the :class:`Trace` of :func:`forward_unchecked` (the path
    sum of chapter 7).

    Parameters
    ----------
    params : dict
        ``"U"`` (H, D), ``"W"`` (H, H), ``"V"`` (K, H), ``"b"`` (H,), ``"c"`` (K,), float64.
    x : array_like, (T, B, D)
    y : array_like of int, (T, B)
        Target classes in ``[0, K)``.
    h0 : array_like, (B, H), optional

    Returns
    -------
    loss : float
        ``(1/B) * sum over b and t of -log yhat[t, b, y[t, b]]``.
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
    p, x, h0, sizes = check_inputs(params, x, h0, kind="float")
    y = check_targets(y, sizes)
    # Overflow is detected explicitly just below, so NumPy's warning would only repeat it.
    with np.errstate(over="ignore", invalid="ignore"):
        if backward_rule is None:
            grads = {key: np.zeros_like(p[key]) for key in PARAM_SHAPES}   # the book's order: U, W, V, b, c
            value, _, _ = bptt.bptt(rnn_cell(activation, activation_vjp), p, x, y, h0, grads=grads)
        else:
            trace = forward_unchecked(p, x, h0, activation=activation)
            value = float(nll(trace, y))
    check_finite_result("loss_and_grads", {"loss": np.asarray(value)})
    if backward_rule is None:
        check_finite_result("loss_and_grads", grads)
    else:
        grads = backward_rule(p, trace, y)
    return value, grads


def _prepare(params, x, y, state0):
    """Validate for the sequence algorithms of :mod:`bptt_lib.models`: ``(params, x, y, h0)``."""
    p, x, h0, sizes = check_inputs(params, x, state0, kind="float")
    return p, x, check_targets(y, sizes), h0


MODEL = models.Model(name="rnn", cell=rnn_cell(), prepare=_prepare)
"""The tanh RNN as ``model="rnn"`` of truncated BPTT, ARTBP and checkpointing (:mod:`bptt_lib.models`)."""
