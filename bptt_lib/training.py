"""A small training loop shared by the chapters: gradient, optional clipping, SGD step.

The loop records the loss and the gradient's global norm (before clipping) at
every step, so that chapters can plot both without repeating the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from . import rnn
from .clip import clip_by_global_norm, clip_by_value, global_norm
from .optim import sgd_step
from .validation import positive_int, positive_number

__all__ = ["History", "train"]


@dataclass
class History:
    """What :func:`train` records.

    Attributes
    ----------
    loss : ndarray, (steps_run,)
        Loss at each step, before that step's update.
    grad_norm : ndarray, (steps_run,)
        Global norm of the gradient at each step, before clipping.
    diverged_at : int or None
        The step at which the loss or a gradient stopped being finite; training stopped there.
    """

    loss: np.ndarray = field(default_factory=lambda: np.empty(0))
    grad_norm: np.ndarray = field(default_factory=lambda: np.empty(0))
    diverged_at: int | None = None


def check_schedule(steps, lr, max_norm=None, clip_value=None):
    """Validate the training schedule shared by :func:`train` and :func:`bptt_lib.stacked.train`.

    Returns ``(steps, lr, max_norm, clip_value)`` as an int and floats (or None);
    raises ValueError naming the argument otherwise, or when both clippings are given.
    """
    steps = positive_int("steps", steps, low=0)
    lr = positive_number("lr", lr)
    if max_norm is not None and clip_value is not None:
        raise ValueError("give at most one of max_norm and clip_value")
    if max_norm is not None:
        max_norm = positive_number("max_norm", max_norm)
    if clip_value is not None:
        clip_value = positive_number("clip_value", clip_value)
    return steps, lr, max_norm, clip_value


def train(
    params: Mapping,
    data,
    *,
    steps: int,
    lr: float,
    max_norm: float | None = None,
    clip_value: float | None = None,
    loss_and_grads: Callable = rnn.loss_and_grads,
) -> tuple[dict, History]:
    """Train with gradient descent for ``steps`` steps.

    Parameters
    ----------
    params : dict
        Initial parameters (not modified).
    data : tuple ``(x, y)`` or callable
        The same batch at every step, or ``data(step) -> (x, y)`` for a new
        batch each step (seed its generator for reproducible runs).
    steps : int
        Number of updates.
    lr : float
        Learning rate.
    max_norm : float, optional
        Clip the gradient by global norm to this threshold.
    clip_value : float, optional
        Clip every gradient entry to ``[-clip_value, clip_value]``; exclusive with ``max_norm``.
    loss_and_grads : callable
        ``loss_and_grads(params, x, y) -> (loss, grads)``; the vanilla RNN's by default.

    Returns
    -------
    params : dict
        The trained parameters.
    history : History
        Losses and gradient norms; ``history.diverged_at`` is set if training
        stopped because a loss or gradient was no longer finite.
    """
    steps, lr, max_norm, clip_value = check_schedule(steps, lr, max_norm, clip_value)
    if not callable(data):
        if not (isinstance(data, tuple) and len(data) == 2):
            raise TypeError("data must be a tuple (x, y) or a callable step -> (x, y)")
        batch = data
        data = lambda step: batch  # noqa: E731
    losses, norms = [], []
    history = History()
    params = dict(params)
    for step in range(steps):
        x, y = data(step)
        try:
            loss, grads = loss_and_grads(params, x, y)
            norm = global_norm(grads)
        except FloatingPointError:
            history.diverged_at = step
            break
        if max_norm is not None:
            grads, _ = clip_by_global_norm(grads, max_norm)
        elif clip_value is not None:
            grads, _ = clip_by_value(grads, clip_value)
        losses.append(loss)
        norms.append(norm)
        params = sgd_step(params, grads, lr)
        if not all(np.all(np.isfinite(p)) for p in params.values()):
            history.diverged_at = step + 1
            break
    history.loss = np.array(losses)
    history.grad_norm = np.array(norms)
    return params, history
