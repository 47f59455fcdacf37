r"""BPTT for ``N`` independent networks at once.

Experiments over seeds and settings train many small RNNs of equal sizes. Run
one after the other, each is a loop of tiny matrix products; stacked on a
leading axis, the same products for all networks are one ``np.matmul`` each.
This module is the one implementation of that stacked pass, used by chapter 9
(:mod:`bptt_lib.remedies`: many networks on one shared batch) and chapter 10
(:mod:`bptt_lib.long_term`: each network on its own batch, with targets
:data:`bptt_lib.tasks.IGNORE` masked out).

- :class:`Stack`: an array of matrices, shape ``(N, rows, cols)``, whose ``.dot``
  and ``.T`` act on each matrix, so that the generated kernels of
  :func:`bptt_lib.kernels.rnn_kernels`, written with ``A.dot(B)`` and ``A.T``,
  compute for every network the formulas they compute for one.
- :func:`stack_params`, :func:`unstack_params`: between a list of parameter
  dicts and one dict of stacked arrays.
- :func:`loss_and_grads`: the loss and the full-BPTT gradient of every network
  (tanh or ReLU): :func:`bptt_lib.bptt.bptt` itself, run over :class:`StackedCell`
  (the RNN cell of :mod:`bptt_lib.cell` whose parameters carry a leading axis
  ``N``) with a masked output layer, its generated kernels applied to stacks.
- :func:`train` and :class:`StackedHistory`: :func:`bptt_lib.training.train`
  for ``N`` networks, each with its own clipping and SGD step; a network whose
  values stop being finite is frozen and the others go on.

No arithmetic is shared between networks; the tests check every network
against the one-network functions (:func:`bptt_lib.rnn.loss_and_grads`,
:func:`bptt_lib.remedies.relu_loss_and_grads`,
:func:`bptt_lib.tasks.masked_loss_and_grads`, :func:`bptt_lib.training.train`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import bptt, rnn
from .cell import Cell
from .clip import clip_by_global_norm, clip_by_value, global_norm
from .jacobian_products import relu_kernels
from .kernels import rnn_kernels
from .optim import sgd_step
from .softmax import onehot, softmax_and_log
from .tasks import IGNORE
from .training import History, check_schedule
from .validation import as_array, require_finite, require_keys

__all__ = ["Stack", "StackedCell", "STACK_KEYS", "stack_params", "unstack_params", "loss_and_grads",
           "StackedHistory", "train"]

STACK_KEYS = ("U", "W", "V", "b", "c")
ACTIVATIONS = ("tanh", "relu")


class Stack(np.ndarray):
    """A stack of matrices, shape ``(N, rows, cols)``, whose ``.dot`` and ``.T`` act on each matrix.

    The generated kernels of :func:`bptt_lib.kernels.rnn_kernels` are written with
    ``A.dot(B)`` and ``A.T``. Given :class:`Stack` arrays they compute the same
    formulas for ``N`` networks at once (``np.matmul`` over the last two axes;
    a stack of one matrix is broadcast to all ``N``), with no arithmetic shared
    between networks.
    """

    @property
    def T(self):  # noqa: N802 (NumPy's name)
        """Each matrix of the stack transposed (the last two axes swapped)."""
        return np.swapaxes(self, -1, -2)

    def dot(self, other):
        return np.matmul(self, other)


def _stack(a) -> Stack:
    return np.asarray(a, dtype=np.float64).view(Stack)


def stack_params(params_list) -> dict:
    """Stack the parameter dicts of ``N`` networks of equal sizes: each array gets a leading axis ``N``."""
    if not params_list:
        raise ValueError("params_list must hold at least one parameter dict")
    checked = [rnn.check_params(p, {}, kind="float") for p in params_list]
    shapes = {key: checked[0][key].shape for key in STACK_KEYS}
    for i, p in enumerate(checked):
        for key in STACK_KEYS:
            if p[key].shape != shapes[key]:
                raise ValueError(f'params_list[{i}]["{key}"] must have shape {shapes[key]}; got {p[key].shape}')
    return {key: np.stack([p[key] for p in checked]) for key in STACK_KEYS}


def unstack_params(stacked: dict) -> list:
    """The inverse of :func:`stack_params`: a list of ``N`` parameter dicts (copies)."""
    n = np.shape(stacked["W"])[0]
    return [{key: np.array(stacked[key][i], dtype=np.float64) for key in STACK_KEYS} for i in range(n)]


def _check_stacked(stacked, sizes: dict) -> dict:
    """Validate stacked parameters (float, consistent ``N, H, D, K``); values may be non-finite."""
    require_keys("stacked", stacked, list(STACK_KEYS))
    dims = {"W": ("N", "H", "H"), "V": ("N", "K", "H"), "U": ("N", "H", "D"), "b": ("N", "H"), "c": ("N", "K")}
    return {key: as_array(f'stacked["{key}"]', stacked[key], dims[key], sizes) for key in ("W", "V", "U", "b", "c")}


def _check_batch(x, y, sizes: dict) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` time first, a network axis second: ``(T, 1 or N, B, D)`` and ``(T, 1 or N, B)``;
    targets checked."""
    rank = np.ndim(x)
    if rank not in (3, 4):
        raise ValueError("x must have shape (T, B, D) (one batch for every network) or (T, N, B, D) "
                         f"(a batch per network), with N={sizes['N']}; got shape {np.shape(x)}")
    x = as_array("x", x, ("T", "B", "D") if rank == 3 else ("T", "N", "B", "D"), sizes)
    require_finite("x", x)
    if np.ndim(y) not in (2, 3):
        raise ValueError("y must have shape (T, B) (the same targets for every network) or (T, N, B) "
                         f"(targets per network); got shape {np.shape(y)}")
    y = as_array("y", y, ("T", "B") if np.ndim(y) == 2 else ("T", "N", "B"), sizes, kind="int")
    bad = (y != IGNORE) & ((y < 0) | (y >= sizes["K"]))
    if np.any(bad):
        raise ValueError(f"y must hold class indices in [0, K={sizes['K']}) or IGNORE={IGNORE}; "
                         f"got {y[bad][0]} at index {tuple(int(i) for i in np.argwhere(bad)[0])}")
    x_time = x[:, None] if rank == 3 else x       # time first: (T, 1 or N, B, D)
    y_time = y[:, None] if y.ndim == 2 else y
    empty = np.nonzero(~np.any(y_time != IGNORE, axis=(0, 2)))[0]
    if empty.size:
        where = "" if y.ndim == 2 else f" for network {empty[0]}"
        raise ValueError(f"y has no step with a target{where} (every entry is IGNORE)")
    return x_time, y_time


def loss_and_grads(stacked: dict, x, y, *, activation: str = "tanh") -> tuple[np.ndarray, dict, np.ndarray]:
    r"""Loss and full-BPTT gradients of ``N`` RNNs (tanh or ReLU) in one pass.

    :func:`bptt_lib.bptt.bptt` over :class:`StackedCell`, with the same generated kernels
    (``input_projection``, ``recurrent_preactivation``, ``output_logits``, ``softmax_nll_grad``,
    ``output_vjp``, ``tanh_vjp`` or ``relu_vjp``, ``hidden_vjp_h_prev``, ``hidden_vjp_params``;
    for ReLU also the generated forward ``relu``) applied to :class:`Stack` arrays, so
    that network ``n`` gets the formulas of :func:`bptt_lib.rnn.loss_and_grads` or
    :func:`bptt_lib.remedies.relu_loss_and_grads`, and with masked targets those of
    :func:`bptt_lib.tasks.masked_loss_and_grads` (equal to round-off; see the tests).

    Steps whose target is :data:`bptt_lib.tasks.IGNORE` carry no loss and no
    gradient, exactly as in :func:`bptt_lib.tasks.masked_backward`: their
    :math:`\hat y^{(t)}` is replaced by the one-hot placeholder target, so that
    :math:`\nabla_{o^{(t)}} L = 0` there; the loss still divides by the batch size ``B``.

    A network whose values stop being finite gets non-finite results and does not
    affect the others (no warning is raised; check the results).

    Parameters
    ----------
    stacked : dict
        From :func:`stack_params`: ``"U"`` (N, H, D), ``"W"`` (N, H, H), ``"V"`` (N, K, H),
        ``"b"`` (N, H), ``"c"`` (N, K).
    x : array_like, (T, B, D) or (T, N, B, D)
        One batch for every network, or ``x[:, n]`` the batch of network ``n``.
    y : array_like of int, (T, B) or (T, N, B)
        Classes in ``[0, K)`` or :data:`bptt_lib.tasks.IGNORE`, for every network or
        per network; every network needs at least one target.
    activation : {"tanh", "relu"}

    Returns
    -------
    loss : ndarray, (N,)
        Each network's loss, summed over time and averaged over the batch.
    grads : dict
        Same keys and shapes as ``stacked``.
    grad_h : ndarray, (N, T, B, H)
        ``grad_h[n, t - 1]`` is :math:`\nabla_{h^{(t)}} L` of network ``n``.

    Raises
    ------
    KeyError, TypeError, ValueError
        For missing keys, wrong dtypes or shapes, targets out of range, a network
        without any target, non-finite inputs ``x`` or an unknown activation.
    """
    sizes: dict = {}
    p = _check_stacked(stacked, sizes)
    x_time, y_time = _check_batch(x, y, sizes)
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}; got {activation!r}")
    cell = StackedCell("tanh", np.tanh, "tanh_vjp") if activation == "tanh" else \
        StackedCell("relu", relu_kernels().relu, relu_kernels().relu_vjp)
    N, T, B, H = sizes["N"], sizes["T"], sizes["B"], sizes["H"]
    params = {"U": _stack(p["U"]), "W": _stack(p["W"]), "V": _stack(p["V"]),
              "b": _stack(p["b"][:, None, :]), "c": _stack(p["c"][:, None, :])}
    grad_h = np.empty((T, N, B, H))
    with np.errstate(all="ignore"):     # a diverging network is reported by its non-finite values
        loss, grads, _ = bptt.bptt(cell, params, x_time, y_time, np.zeros((N, B, H)), grad_h=grad_h,
                                   head=_masked_output_layer)
    grads = {key: np.asarray(value).reshape(p[key].shape) for key, value in grads.items()}
    return np.asarray(loss), grads, np.swapaxes(grad_h, 0, 1)


def _network_rows(a: np.ndarray) -> Stack:
    """``(n, N, B, ...)`` time first -> ``(N, n B, ...)``: each network's rows together, as a :class:`Stack`."""
    n, N, B = a.shape[:3]
    return _stack(np.swapaxes(a, 0, 1).reshape(N, n * B, *a.shape[3:]))


class StackedCell(Cell):
    """The RNN cell of :mod:`bptt_lib.cell` for ``N`` networks: parameters with a leading axis ``N``.

    States are ``(N, B, H)`` per step and inputs ``(1 or N, B, D)``; ``U``, ``W``
    are :class:`Stack` arrays and ``b`` is ``(N, 1, H)``, so that the generated
    kernels compute every network's formulas at once. Only the parameter
    gradients and the output layer need the rows of each network side by side.
    """

    def project(self, params, x, out=None):
        """``b + U x`` for a block ``x`` (n, 1 or N, B, D): (n, N, B, H)."""
        return rnn_kernels().input_projection(x, params["U"], params["b"], out=out)

    def step_vjp(self, params, h_prev, h, dh):
        k = rnn_kernels()
        rule = getattr(k, self.activation_vjp) if isinstance(self.activation_vjp, str) else self.activation_vjp
        da = rule(dh, h)
        return da, np.asarray(k.hidden_vjp_h_prev(_stack(da), params["W"]))

    def param_vjp(self, params, da, h, x, grads):
        n, _, B, _ = x.shape
        dW, dU, db = rnn_kernels().hidden_vjp_params(_network_rows(da), _network_rows(h[:-1]), _network_rows(x),
                                                     _stack(np.ones((1, n * B, 1))))
        grads["W"] += dW
        grads["U"] += dU
        grads["b"] += db


def _masked_output_layer(params, h, y, grads, yhat=None):
    r"""The output layer of a block of steps for ``N`` networks, with ignored targets.

    ``h`` (n, N, B, H), ``y`` (n, 1 or N, B). Returns each network's loss (N,) and
    ``dh`` (n, N, B, H), :math:`V^\top \nabla_{o^{(t)}} L`; adds ``dV`` and ``dc`` into ``grads``.
    Steps whose target is :data:`bptt_lib.tasks.IGNORE` get the one-hot placeholder as
    their :math:`\hat y^{(t)}`, so that :math:`\nabla_{o^{(t)}} L = 0` there.
    """
    k = rnn_kernels()
    n, N, B, H = h.shape
    K = params["V"].shape[-2]
    rows = _network_rows(h)                                             # (N, n B, H)
    y_rows = np.swapaxes(y, 0, 1).reshape(y.shape[1], n * B)           # (1 or N, n B)
    keep = y_rows != IGNORE
    y_filled = np.where(keep, y_rows, 0)
    target = onehot(y_filled, K)                                        # (1 or N, n B, K)
    one = _stack(np.ones((1, n * B, 1)))
    yhat, log_yhat = softmax_and_log(np.asarray(k.output_logits(rows, params["V"], params["c"])))
    picked = np.take_along_axis(log_yhat, np.broadcast_to(y_filled[..., None], (N, n * B, 1)), axis=-1)[..., 0]
    loss = -np.sum(picked * keep, axis=1) / B
    yhat = np.where(keep[..., None], yhat, target)                      # masked steps: yhat - target = 0
    dV, dc, dh = k.output_vjp(_stack(k.softmax_nll_grad(yhat, target, B)), rows, params["V"], one)
    grads["V"] += dV
    grads["c"] += dc
    return loss, np.ascontiguousarray(np.swapaxes(np.asarray(dh).reshape(N, n, B, H), 0, 1))


@dataclass
class StackedHistory:
    """What :func:`train` records for each of its ``N`` networks.

    Attributes
    ----------
    loss : ndarray, (N, steps)
        Loss at each step, before that step's update; ``nan`` after a network diverged.
    grad_norm : ndarray, (N, steps)
        Global norm of each network's gradient before clipping; ``nan`` after divergence.
    diverged_at : ndarray of int, (N,)
        The step at which a network's loss, gradient or parameters stopped being
        finite (that network is frozen from then on), or ``-1``.
    """

    loss: np.ndarray
    grad_norm: np.ndarray
    diverged_at: np.ndarray

    def run(self, n: int):
        """Network ``n``'s record as a :class:`bptt_lib.training.History` (steps up to divergence)."""
        stop = self.loss.shape[1] if self.diverged_at[n] < 0 else int(self.diverged_at[n])
        return History(loss=self.loss[n, :stop].copy(), grad_norm=self.grad_norm[n, :stop].copy(),
                       diverged_at=None if self.diverged_at[n] < 0 else int(self.diverged_at[n]))


def train(stacked: dict, data, *, steps: int, lr: float, max_norm: float | None = None,
          clip_value: float | None = None, activation: str = "tanh") -> tuple[dict, StackedHistory]:
    """:func:`bptt_lib.training.train` for ``N`` RNNs at once, on a fixed batch.

    Each network is trained exactly as :func:`bptt_lib.training.train` would train it
    alone: loss and gradient by :func:`loss_and_grads`, then its own clipping
    (:func:`bptt_lib.clip.clip_by_global_norm` on its own gradient, or
    :func:`bptt_lib.clip.clip_by_value`), then :func:`bptt_lib.optim.sgd_step`. A
    network whose loss, gradient or parameters stop being finite is frozen and
    recorded in ``diverged_at``; the others go on.

    Parameters
    ----------
    stacked : dict
        From :func:`stack_params` (not modified).
    data : tuple ``(x, y)``
        The same batch at every step, shared or per network as in :func:`loss_and_grads`.
    steps : int
    lr : float
    max_norm, clip_value : float, optional
        At most one: clipping by global norm or by value, per network.
    activation : {"tanh", "relu"}
        As in :func:`loss_and_grads`.

    Returns
    -------
    params : dict
        The trained stacked parameters.
    history : StackedHistory
    """
    steps, lr, max_norm, clip_value = check_schedule(steps, lr, max_norm, clip_value)
    if not (isinstance(data, tuple) and len(data) == 2):
        raise TypeError("data must be a tuple (x, y)")
    x, y = data
    params = {key: np.array(stacked[key], dtype=np.float64) for key in STACK_KEYS}
    n_nets = params["W"].shape[0]
    losses = np.full((n_nets, steps), np.nan)
    norms = np.full((n_nets, steps), np.nan)
    diverged_at = np.full(n_nets, -1)
    for step in range(steps):
        loss, grads, _ = loss_and_grads(params, x, y, activation=activation)
        update = {key: np.zeros_like(value) for key, value in params.items()}
        for n in np.nonzero(diverged_at < 0)[0]:
            g = {key: grads[key][n] for key in STACK_KEYS}
            if not (np.isfinite(loss[n]) and all(np.all(np.isfinite(v)) for v in g.values())):
                diverged_at[n] = step
                continue
            losses[n, step] = loss[n]
            if max_norm is not None:
                g, norms[n, step] = clip_by_global_norm(g, max_norm)
            elif clip_value is not None:
                g, norms[n, step] = clip_by_value(g, clip_value)
            else:
                norms[n, step] = global_norm(g)
            for key in STACK_KEYS:
                update[key][n] = g[key]
        with np.errstate(over="ignore", invalid="ignore"):
            new = sgd_step(params, update, lr)
        for n in np.nonzero(diverged_at < 0)[0]:
            if all(np.all(np.isfinite(new[key][n])) for key in STACK_KEYS):
                for key in STACK_KEYS:
                    params[key][n] = new[key][n]
            else:
                diverged_at[n] = step + 1
    return params, StackedHistory(loss=losses, grad_norm=norms, diverged_at=diverged_at)
