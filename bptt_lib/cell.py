r"""The recurrent cell: what BPTT needs to know about one step of a network.

BPTT is one algorithm over any recurrent cell. The sequence code of
:mod:`bptt_lib.bptt` runs a cell over time and backpropagates through it, and it
asks the cell for exactly four things:

=====================================================  ===============================================
``cell.project(params, x)``                            the part of every step that needs no earlier
                                                       state, for a block of steps in one product:
                                                       :math:`x_p^{(t)} = b + U x^{(t)}`, (n, B, H)
``cell.step(params, h_prev, xp, out)``                 one step forward,
                                                       :math:`h^{(t)} = \phi(x_p^{(t)} + W h^{(t-1)})`,
                                                       written into ``out`` (B, H)
``cell.step_vjp(params, h_prev, h, dh)``               that step's vector-Jacobian product: from
                                                       :math:`\nabla_{h^{(t)}} L` to
                                                       :math:`\nabla_{a^{(t)}} L` (``da``) and
                                                       :math:`W^\top \nabla_{a^{(t)}} L` (``dh_prev``)
``cell.param_vjp(params, da, h, x, grads)``            the parameter gradients of a block of steps,
                                                       added into ``grads`` (``dW``, ``dU``, ``db``)
=====================================================  ===============================================

and declares ``param_shapes`` (its parameters in the book's dimension names) and
``state`` (the names of the parts of its state; the tanh and ReLU RNNs carry one
array ``h``). Every formula is a kernel generated from :mod:`bptt_lib.derive`
(:mod:`bptt_lib.kernels`): ``input_projection``, ``recurrent_preactivation``,
the activation's backward rule (``tanh_vjp``, or ``relu_vjp`` for the ReLU RNN
of chapter 9), ``hidden_vjp_h_prev`` and ``hidden_vjp_params``. The kernels are
looked up by name at each call, so a test can watch them.

States of a sequence are stored as one array ``(T + 1, B, width)`` whose step
``t`` is the state :math:`h^{(t)}`. A cell whose state has several parts lays them
side by side on the last axis: :meth:`Cell.hidden` returns the part the output
layer reads and :meth:`Cell.state_gradient` turns the output layer's gradient
into a gradient of the whole state; :meth:`Cell.projection_width` is the width
of ``x_p``. The same record may also hold what the cell's backward step needs,
so that the sequence code stays one loop over one array per step. An LSTM fits
as ``(h, s, f, i, g, q)`` side by side (width ``6H``, of which ``(h, s)`` is
carried; ``x_p`` has width ``4H``, one block for each gate's ``b + U x``), and
``step_vjp`` reads the gates of step ``t`` and :math:`s^{(t-1)}` from the two
records it is given; a GRU as ``(h, z, r, h~, q)`` (width ``5H``; see :mod:`bptt_lib.lstm`
and :mod:`bptt_lib.gru`). A cell may also give ``step_work(params, h0)``, the size of its step's
product, when its record is wider than what that product reads. Truncated BPTT, its anticipated
reweighting and checkpointing use :func:`bptt_lib.bptt.bptt` over windows with an
incoming state gradient; real-time recurrent learning, which runs forward
(:mod:`bptt_lib.online`), is written over the tanh RNN's generated kernels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from .kernels import rnn_kernels

__all__ = ["Cell", "RNN_PARAM_SHAPES", "rnn_cell", "TANH_RNN"]

RNN_PARAM_SHAPES = {"U": ("H", "D"), "W": ("H", "H"), "b": ("H",)}
"""The parameters of the vanilla RNN cell, in the book's dimension names."""


@dataclass(frozen=True)
class Cell:
    """A recurrent cell of the vanilla kind, :math:`h^{(t)} = \\phi(b + W h^{(t-1)} + U x^{(t)})`.

    Attributes
    ----------
    name : str
        For messages: ``"tanh"``, ``"relu"``, ...
    activation : callable
        :math:`\\phi`, elementwise. A NumPy ufunc (``np.tanh``) writes its result
        straight into the state array; any other function ``phi(a) -> array`` is
        copied there.
    activation_vjp : str or callable
        The activation's backward rule ``(g, h) -> g * phi'(a)``, written in terms of
        the output ``h``: the name of a generated kernel of
        :func:`bptt_lib.kernels.rnn_kernels` (looked up at every call), or a function.
    param_shapes : dict
        Parameter name -> dimension names (the output layer's ``V``, ``c`` are not the cell's).
    state : tuple of str
        The parts of the state, side by side on the last axis of a state array.
    """

    name: str
    activation: Callable
    activation_vjp: str | Callable
    param_shapes: Mapping = field(default_factory=lambda: dict(RNN_PARAM_SHAPES))
    state: tuple = ("h",)

    def width(self, params: dict) -> int:
        """The length of one example's state (``H`` for the vanilla RNN)."""
        return params["W"].shape[0]

    def projection_width(self, params: dict) -> int:
        """The length of one example's projected input ``x_p`` (``H``: the rows of ``U``)."""
        return params["U"].shape[-2]

    def hidden(self, states: np.ndarray) -> np.ndarray:
        """The part of the states (..., width) that the output layer reads: all of it here."""
        return states

    def project(self, params: dict, x: np.ndarray, out=None) -> np.ndarray:
        """``x_p = b + U x`` for a block of steps ``x`` (n, B, D): (n, B, H), one product for all rows."""
        n, B, D = x.shape
        rows = None if out is None else out.reshape(n * B, -1)
        xp = rnn_kernels().input_projection(x.reshape(n * B, D), params["U"], params["b"], out=rows)
        return xp.reshape(n, B, -1)

    def step(self, params: dict, h_prev: np.ndarray, xp: np.ndarray, out: np.ndarray) -> np.ndarray:
        """One step forward into ``out`` (B, H): ``out = phi(xp + W h_prev)``; returns ``out``."""
        a = rnn_kernels().recurrent_preactivation(h_prev, params["W"], xp, out=out)
        if isinstance(self.activation, np.ufunc):
            return self.activation(a, out=out)
        out[...] = self.activation(a)
        return out

    def state_gradient(self, dh: np.ndarray) -> np.ndarray:
        """A gradient with respect to :meth:`hidden` as a gradient with respect to the whole state.

        The vanilla RNN's state is its hidden state, so ``dh`` itself; a cell with more
        parts puts ``dh`` in its hidden part and zeros elsewhere.
        """
        return dh

    def step_vjp(self, params: dict, h_prev: np.ndarray, h: np.ndarray,
                 dh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r"""Backward through one step: ``(da, dh_prev)``, both (B, H).

        ``h_prev`` and ``h`` are the step's input and output states :math:`h^{(t-1)}`,
        :math:`h^{(t)}` (tanh's rule needs only its output), and ``dh`` the total
        gradient :math:`\nabla_{h^{(t)}} L`; ``da`` is :math:`\nabla_{a^{(t)}} L` and
        ``dh_prev`` the part of :math:`\nabla_{h^{(t-1)}} L` that flows through this step.
        """
        k = rnn_kernels()
        rule = getattr(k, self.activation_vjp) if isinstance(self.activation_vjp, str) else self.activation_vjp
        da = rule(dh, h)
        return da, k.hidden_vjp_h_prev(da, params["W"])

    def param_vjp(self, params: dict, da: np.ndarray, h: np.ndarray, x: np.ndarray, grads: dict) -> None:
        """Add the gradients of a block of ``n`` steps into ``grads["W"]``, ``["U"]``, ``["b"]``.

        ``da`` (n, B, H) are the steps' :math:`\\nabla_{a^{(t)}} L`, ``h`` (n + 1, B, H) the
        states from before the first step to after the last, and ``x`` (n, B, D) the
        inputs: one product over all ``n B`` rows for each parameter.
        """
        n, B, D = x.shape
        H = da.shape[-1]
        dW, dU, db = rnn_kernels().hidden_vjp_params(
            da.reshape(n * B, H), h[:-1].reshape(n * B, H), x.reshape(n * B, D), np.ones((n * B, 1)))
        grads["W"] += dW
        grads["U"] += dU
        grads["b"] += db.reshape(H)


def rnn_cell(activation=np.tanh, activation_vjp=None) -> Cell:
    """The vanilla RNN cell with ``activation`` (tanh by default) and its backward rule.

    ``activation_vjp`` defaults to the generated ``tanh_vjp``; chapter 9's ReLU RNN
    passes ``max(0, a)`` and the generated ``relu_vjp``.
    """
    if activation is np.tanh and activation_vjp is None:
        return TANH_RNN
    if activation_vjp is None:
        activation_vjp = "tanh_vjp"
    name = getattr(activation, "__name__", "custom")
    return Cell(name=name, activation=activation, activation_vjp=activation_vjp)


TANH_RNN = Cell(name="tanh", activation=np.tanh, activation_vjp="tanh_vjp")
"""The book's RNN cell, :math:`h^{(t)} = \\tanh(b + W h^{(t-1)} + U x^{(t)})`."""
