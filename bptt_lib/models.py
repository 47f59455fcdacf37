r"""The recurrent models that the sequence algorithms of Parts IV and V accept by name.

Truncated BPTT (:mod:`bptt_lib.truncation`), its anticipated reweighting
(:mod:`bptt_lib.artbp`) and checkpointing (:mod:`bptt_lib.checkpointing`) are
written once, over the cell interface of :mod:`bptt_lib.cell`, and take
``model="rnn"`` (and, from Part V, ``"lstm"`` and ``"gru"``). A :class:`Model`
is what they need beyond the cell: how to validate the parameters, inputs,
targets and initial state of that model, and how to lay the initial state out
as the cell's state record. Each model's module defines its ``MODEL``;
:func:`get_model` imports it on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import bptt
from .validation import check_finite_result

__all__ = ["Model", "MODEL_MODULES", "get_model", "full_grads"]

MODEL_MODULES = {"rnn": "bptt_lib.rnn", "lstm": "bptt_lib.lstm", "gru": "bptt_lib.gru"}
"""Model name -> the module that defines its :class:`Model` as ``MODEL``."""


@dataclass(frozen=True)
class Model:
    """A recurrent model as the sequence algorithms see it.

    Attributes
    ----------
    name : str
        ``"rnn"``, ``"lstm"``, ``"gru"``.
    cell : bptt_lib.cell.Cell
        Its cell (any object with the interface of :class:`bptt_lib.cell.Cell`).
    prepare : callable
        ``prepare(params, x, y, state0) -> (params, x, y, h0)``: validates every
        argument (errors name the argument, the expected and the actual value) and
        returns float64 arrays, ``x`` (T, B, D), ``y`` (T, B) and ``h0`` (B, width),
        the initial state record of the cell (``state0``, zeros by default, laid out
        as the cell stores its states). The returned ``params`` are what the cell
        computes with: the parameters themselves, or a packed form of them (a gated
        cell stacks its gates' matrices so that one product serves all gates).
    unpack : callable
        ``unpack(grads) -> dict``: gradients of the returned ``params`` as gradients with
        the keys and shapes of the parameters the caller passed (the identity for the RNN).
    """

    name: str
    cell: object
    prepare: Callable
    # a factory, not a default value: a class attribute would be documented twice
    unpack: Callable = field(default_factory=lambda: _same)


def _same(grads: dict) -> dict:
    """The gradients unchanged: the model computes with its parameters as given."""
    return grads


def get_model(model) -> Model:
    """The :class:`Model` called ``model`` (a name of :data:`MODEL_MODULES`, or a :class:`Model`)."""
    if isinstance(model, Model):
        return model
    if model not in MODEL_MODULES:
        raise ValueError(f"model must be one of {sorted(MODEL_MODULES)}; got {model!r}")
    try:
        module = importlib.import_module(MODEL_MODULES[model])
    except ModuleNotFoundError as err:   # a model of a later part, not written yet
        raise ValueError(f"model {model!r} is not available yet ({err})") from None
    return module.MODEL


def full_grads(params: dict, x, y, *, model="rnn", state0=None) -> tuple[float, dict]:
    """The loss and its full-BPTT gradient for any model: the reference every approximation is measured against.

    Same loss as :func:`bptt_lib.rnn.loss_and_grads` (summed over time, averaged over
    the batch); ``grads`` has the keys of ``params``.
    """
    m = get_model(model)
    p, x, y, h0 = m.prepare(params, x, y, state0)
    grads = {key: np.zeros_like(value) for key, value in p.items()}
    with np.errstate(over="ignore", invalid="ignore"):
        loss, grads, _ = bptt.bptt(m.cell, p, x, y, h0, grads=grads)
    grads = m.unpack(grads)
    check_finite_result("full_grads", {"loss": np.asarray(loss), **grads})
    return loss, grads
