r"""Backpropagation through time, written once over the cell interface of :mod:`bptt_lib.cell`.

- :func:`forward`: run a cell over a sequence from a given state; every state is
  kept, ``h`` (T + 1, B, width) with ``h[0]`` the initial state.
- :func:`bptt`: the loss, the gradient of every parameter and the gradient with
  respect to the initial state, by full BPTT. Given stored states ``h`` it only
  runs the backward pass, and given ``dh_next`` (the gradient arriving from after
  the last step) it backpropagates over a window of a longer sequence: what
  truncated BPTT and checkpointing are made of.
- :func:`output_layer`: the softmax output layer and its gradients for a block of steps.

The output layer is :math:`o^{(t)} = c + V h^{(t)}`, :math:`\hat y^{(t)} =
\operatorname{softmax}(o^{(t)})`, and the loss is summed over time and averaged
over the batch, as in :mod:`bptt_lib.rnn`, whose public functions call these.

Where the time goes. Only the recursion over time is a Python loop; everything
without a recurrence is done for a block of steps at once (the input projection
:math:`b + U x^{(t)}`, the output layer and softmax, the parameter gradients),
so each block costs a few large matrix products. Blocks hold about
:data:`BLOCK_ROWS` rows (steps times batch), so that the memory of the backward
pass beyond the stored states stays a few blocks, whatever ``T``; the states and
the block buffers are reused from call to call (:func:`workspace`). The loops run
with one BLAS thread where their products are too small to share (:func:`one_blas_thread`). Inputs are not checked here:
:mod:`bptt_lib.rnn` validates them once per public call.
"""

from __future__ import annotations

import contextlib
import inspect
import re
import threading

import numpy as np

from .kernels import rnn_kernels
from .softmax import onehot

try:
    from threadpoolctl import ThreadpoolController
except ImportError:  # pragma: no cover - threadpoolctl is in requirements.txt
    ThreadpoolController = None

__all__ = ["BLOCK_ROWS", "ONE_THREAD_LOOPS", "SMALL_PRODUCT", "LARGE_PRODUCT", "one_blas_thread",
           "single_blas_thread", "workspace", "clear_workspace", "blocks", "step_work",
           "forward", "output_layer", "bptt", "loop_source"]

BLOCK_ROWS = 4096
"""About how many rows (steps times batch) a block of steps holds."""


ONE_THREAD_LOOPS = True
"""Run the loops over time with one BLAS thread where that is faster (see :func:`one_blas_thread`)."""

_controller = None


SMALL_PRODUCT = 4 * 65536
"""Below this many multiply-adds (m n k) OpenBLAS runs a matrix product on one thread by itself."""

LARGE_PRODUCT = 2 ** 21
"""From this many multiply-adds on, a second thread pays for itself when a core is free (measured)."""


def one_blas_thread(work: int):
    """A context in which BLAS uses one thread (threadpoolctl), for step products of ``work`` multiply-adds.

    Handing a small product to a pool of threads costs more than it saves. Measured on
    this project's two-core machine, a step product (B, H) by (H, H) took 1.1 to 1.2
    times as long on two threads as on one for ``B H H`` from 2^17 to 2^20 (the
    canonical size, 32 by 128 by 128, is 2^19), 0.87 times at 2^21 and 0.69 times at
    2^24, with one core busy elsewhere; with both cores busy, two threads were slower
    at every size. So the loops over time run on one thread from
    :data:`SMALL_PRODUCT` (below it OpenBLAS uses one thread anyway, and switching
    costs some microseconds) up to :data:`LARGE_PRODUCT`, and keep the caller's
    setting otherwise; the products over whole blocks outside the loops always keep
    it. A no-op without threadpoolctl or when :data:`ONE_THREAD_LOOPS` is false.
    """
    if not ONE_THREAD_LOOPS or not SMALL_PRODUCT <= work < LARGE_PRODUCT:
        return contextlib.nullcontext()
    return single_blas_thread()


def single_blas_thread():
    """A context in which BLAS uses one thread whatever the size of the products (threadpoolctl).

    For loops of many small products outside :func:`forward` and :func:`bptt`: the banks of
    networks of chapter 16, the language model of chapter 17, the timing curves of chapter
    13. On two busy cores, handing such products to a pool of threads made training tens of
    times slower (measured). A no-op without threadpoolctl.
    """
    global _controller
    if ThreadpoolController is None:
        return contextlib.nullcontext()
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")


def step_work(cell, params: dict, h0: np.ndarray) -> int:
    """Multiply-adds of the largest matrix product of one step of ``cell``, for :func:`one_blas_thread`.

    A cell may say (``cell.step_work(params, h0)``; the gated cells do, since their
    records hold more than the state the product reads); otherwise it is ``B`` times
    the state width times the projection width, ``B H H`` for the vanilla RNN.
    """
    own = getattr(cell, "step_work", None)
    if own is not None:
        return own(params, h0)
    return h0.size * cell.projection_width(params)


_scratch = threading.local()


def workspace(name: str, shape: tuple, dtype=np.float64) -> np.ndarray:
    """A scratch array kept from one call to the next (per thread), so that its memory is already mapped.

    A freshly allocated large array costs a page fault per 4 KiB page the first time
    it is written, on every call; measured at the canonical and long sizes, taking
    the stored states from here instead of allocating them made :func:`bptt` 10 to
    20 % faster. An array with the same name, dtype and trailing dimensions and at
    least as many rows is reused (its first ``shape[0]`` rows); otherwise it is
    replaced. The arrays stay allocated between calls: :func:`clear_workspace` frees them.
    """
    arrays = _scratch.__dict__.setdefault("arrays", {})
    arr = arrays.get(name)
    if arr is None or arr.dtype != dtype or arr.shape[1:] != tuple(shape[1:]) or arr.shape[0] < shape[0]:
        arrays.pop(name, None)
        arr = arrays[name] = np.empty(shape, dtype)
    return arr[:shape[0]]


def clear_workspace() -> None:
    """Free the scratch arrays of :func:`workspace` (of this thread)."""
    _scratch.__dict__.pop("arrays", None)


def blocks(T: int, B: int, rows: int | None = None) -> list[tuple[int, int]]:
    """The blocks of steps ``[(t0, t1), ...]`` that cover ``range(T)`` in order, each ``rows // B`` steps or fewer.

    ``rows`` defaults to :data:`BLOCK_ROWS`.
    """
    steps = max(1, (BLOCK_ROWS if rows is None else rows) // B)
    return [(t0, min(t0 + steps, T)) for t0 in range(0, T, steps)]


def forward(cell, params: dict, x: np.ndarray, h0: np.ndarray, *,
            keep: bool = True) -> np.ndarray:
    """Run ``cell`` over the inputs ``x`` (T, B, D) from the state ``h0`` (B, width).

    Returns
    -------
    h : ndarray, (T + 1, B, width)
        ``h[0] = h0`` and ``h[t]`` the state after step ``t``. With ``keep=False`` it
        lives in a :func:`workspace` that the next call overwrites (for :func:`bptt`,
        which needs the states only until it returns).
    """
    shape = (len(x) + 1, *h0.shape)
    dtype = np.result_type(*params.values(), x, h0)
    h = np.empty(shape, dtype) if keep else workspace("h", shape, dtype)
    h[0] = h0
    steps = blocks(len(x), h0.size // h0.shape[-1])
    width = cell.projection_width(params)
    xp = workspace("xp", (steps[0][1], *h0.shape[:-1], width), dtype)
    for t0, t1 in steps:
        # b + U x for a block of steps: one matrix product, outside the recursion
        cell.project(params, x[t0:t1], out=xp[:t1 - t0])
        with one_blas_thread(step_work(cell, params, h0)):
            for t in range(t0, t1):
                cell.step(params, h[t], xp[t - t0], out=h[t + 1])
    return h


def _softmax_nll_in_place(o: np.ndarray, labels: np.ndarray) -> float:
    """Turn the logits ``o`` (rows, K) into probabilities in place; return the summed NLL of ``labels``."""
    o -= o.max(axis=-1, keepdims=True)
    picked = o[np.arange(len(o)), labels]
    np.exp(o, out=o)
    total = o.sum(axis=-1, keepdims=True)
    o /= total
    return float(-(picked - np.log(total[:, 0])).sum())   # the terms of bptt_lib.rnn.nll, in its order


def output_layer(params: dict, h: np.ndarray, y: np.ndarray, grads: dict, yhat=None) -> tuple[float, np.ndarray]:
    r"""The output layer of a block of ``n`` steps: its loss, and its backward pass.

    Parameters
    ----------
    params : dict
        With ``"V"`` (K, H) and ``"c"`` (K,).
    h : ndarray, (n, B, H)
        The states :math:`h^{(t)}` the outputs read.
    y : ndarray of int, (n, B)
    grads : dict
        ``grads["V"]`` and ``grads["c"]`` get this block's :math:`\nabla_V L`, :math:`\nabla_c L` added.
    yhat : ndarray, (n, B, K), optional
        Stored probabilities; by default they are computed from ``h`` (generated
        kernel ``output_logits``, then a stable softmax).

    Returns
    -------
    loss : float
        The block's part of the loss (``nan`` when ``yhat`` is given).
    dh : ndarray, (n, B, H)
        :math:`V^\top \nabla_{o^{(t)}} L`, the gradient reaching each :math:`h^{(t)}` through its own output.
    """
    k = rnn_kernels()
    n, B, H = h.shape
    K = params["V"].shape[0]
    rows, labels = h.reshape(n * B, H), y.reshape(n * B)
    if yhat is None:
        yhat = k.output_logits(rows, params["V"], params["c"],     # logits, turned into probabilities in place
                               out=workspace("logits", (n * B, K), np.result_type(rows, params["V"])))
        loss = _softmax_nll_in_place(yhat, labels) / B
    else:
        yhat, loss = yhat.reshape(n * B, K), float("nan")
    G_o = k.softmax_nll_grad(yhat, onehot(labels, K), B)
    dV, dc, dh = k.output_vjp(G_o, rows, params["V"], np.ones((n * B, 1)))
    grads["V"] += dV
    grads["c"] += dc.reshape(K)
    return loss, dh.reshape(n, B, H)


def bptt(cell, params, x, y, h0=None, *, h=None, yhat=None, dh_next=None,
         grads=None, grad_h=None, head=output_layer):
    r"""Backpropagation through time: loss, parameter gradients and :math:`\nabla_{h^{(0)}} L`.

    Parameters
    ----------
    cell : bptt_lib.cell.Cell
    params : dict
        The cell's parameters and the output layer's ``"V"`` (K, H), ``"c"`` (K,).
    x : ndarray, (T, B, D)
    y : ndarray of int, (T, B)
    h0 : ndarray, (B, width)
        The initial state (not needed when ``h`` is given).
    h : ndarray, (T + 1, B, width), optional
        States of a forward pass already run (:func:`forward`); then only the backward pass runs.
    yhat : ndarray, (T, B, K), optional
        Stored probabilities for :func:`output_layer`.
    dh_next : ndarray, (B, width), optional
        The gradient reaching the last state from after the window (zero by default).
    grads : dict, optional
        Gradients are added into it (zeros by default).
    grad_h : ndarray, (T, B, width), optional
        If given, ``grad_h[t - 1]`` receives the total gradient :math:`\nabla_{h^{(t)}} L`.
    head : callable
        The output layer and loss, ``head(params, h, y, grads, yhat) -> (loss, dh)`` for a
        block of steps; :func:`output_layer` by default (:mod:`bptt_lib.stacked` passes a
        masked one for ``N`` networks).

    Returns
    -------
    loss : float
    grads : dict
        Same keys and shapes as ``params``.
    dh0 : ndarray, (B, width)
        :math:`\nabla_{h^{(0)}} L`, the gradient with respect to the initial state.
    """
    if h is None:                    # forward: every state, kept for the way back
        h = forward(cell, params, x, h0, keep=False)
    if grads is None:
        grads = {key: np.zeros_like(value) for key, value in params.items()}
    if dh_next is None:              # no gradient arrives from after the last step
        dh_next = np.zeros_like(h[0])
    loss = 0.0
    steps = blocks(len(x), h[0].size // h.shape[-1])
    width = cell.projection_width(params)
    da = workspace("da", (steps[0][1], *h.shape[1:-1], width), h.dtype)
    for t0, t1 in reversed(steps):   # backward, the last block of steps first
        # the block's outputs: their loss, dV and dc added, and V^T dL/do for each step
        block_yhat = None if yhat is None else yhat[t0:t1]
        out_h = cell.hidden(h[t0 + 1:t1 + 1])
        block_loss, dh = head(params, out_h, y[t0:t1], grads, block_yhat)
        loss += block_loss
        dh = cell.state_gradient(dh)     # as a gradient of the whole state
        with one_blas_thread(step_work(cell, params, h[0])):
            for t in reversed(range(t1 - t0)):   # the recursion, one step at a time
                dh[t] += dh_next         # via its own output, and via step t + 1
                if grad_h is not None:
                    grad_h[t0 + t] = dh[t]
                da[t], dh_next = cell.step_vjp(params, h[t0 + t], h[t0 + t + 1], dh[t])
        # dW, dU, db of the block: one matrix product each, outside the recursion
        cell.param_vjp(params, da[:t1 - t0], h[t0:t1 + 1], x[t0:t1], grads)
    return loss, grads, dh_next


def loop_source() -> str:
    """The source of :func:`forward` and :func:`bptt` without their docstrings: the loop the book shows.

    Taken from the functions themselves, so the code a reader studies is the code that runs.
    """
    docstring = re.compile(r'\n    r?""".*?"""\n', re.DOTALL)
    return "\n\n".join(docstring.sub("\n", inspect.getsource(fn), count=1) for fn in (forward, bptt))
