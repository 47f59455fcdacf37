"""The NumPy kernels of the vanilla RNN, generated from the derivations.

Nothing in this module is written by hand: each kernel is
:func:`bptt_lib.codegen.generate` applied to an expression from
:mod:`bptt_lib.derive`. Generation runs once per process (about a tenth of a
second) and is cached; :func:`rnn_kernels` returns the same namespace every time.

Arrays follow the batch-as-rows convention of
:func:`bptt_lib.derive.rnn_step.batch_symbols`: a hidden state for a batch is
``(B, H)``, a bias is ``(1, H)`` and ``one_B`` is a ``(B, 1)`` column of ones.
Elementwise backward rules (``tanh_vjp``, ``sigmoid_vjp``) broadcast over any shape.

Three kernels serve the time loops of :mod:`bptt_lib.bptt`, generated with
:func:`bptt_lib.codegen.generate_into`: they write into a given array (``out=``)
and add biases by broadcasting, with no column of ones (``input_projection``,
``recurrent_preactivation``, ``output_logits``).
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

from .codegen import generate, generate_into
from .derive import activations, rnn_step, softmax_nll

__all__ = ["rnn_kernels", "KERNEL_NAMES"]

#: The names of the generated kernels that :func:`rnn_kernels` returns.
KERNEL_NAMES = (
    "hidden_preactivation", "output_affine",
    "tanh_vjp", "sigmoid_vjp",
    "hidden_vjp_h_prev", "hidden_vjp_params", "output_vjp",
    "softmax_nll_grad",
    "input_projection", "recurrent_preactivation", "output_logits",
)


@functools.cache
def rnn_kernels() -> SimpleNamespace:
    """Generate (once) and return the kernels, by name (see :data:`KERNEL_NAMES`)."""
    sym = rnn_step.batch_symbols()
    A = rnn_step.hidden_preactivation(sym)
    logits = rnn_step.output_affine(sym)
    hidden = rnn_step.affine_vjps(A, sym.G_a, [sym.W, sym.U, sym.b, sym.H_prev])
    output = rnn_step.affine_vjps(logits, sym.G_o, [sym.V, sym.c, sym.Hid])
    nll_grad, nll_sym = softmax_nll.compact_gradient()
    g, h, s = activations.g, activations.h, activations.s

    k = SimpleNamespace()
    k.hidden_preactivation = generate(
        "hidden_preactivation", [sym.H_prev, sym.X, sym.W, sym.U, sym.b, sym.one_B], A,
        "a = b + W h_prev + U x for a batch: (B, H).")
    k.output_affine = generate(
        "output_affine", [sym.Hid, sym.V, sym.c, sym.one_B], logits,
        "o = c + V h for a batch: (B, K).")
    k.tanh_vjp = generate(
        "tanh_vjp", [g, h], activations.vjp("tanh"),
        "Gradient with respect to a, given the gradient g with respect to h = tanh(a).")
    k.sigmoid_vjp = generate(
        "sigmoid_vjp", [g, s], activations.vjp("sigmoid"),
        "Gradient with respect to a, given the gradient g with respect to s = sigmoid(a).")
    k.hidden_vjp_h_prev = generate(
        "hidden_vjp_h_prev", [sym.G_a, sym.W], hidden[sym.H_prev],
        "Gradient with respect to h_prev, given G_a with respect to a: (B, H).")
    k.hidden_vjp_params = generate(
        "hidden_vjp_params", [sym.G_a, sym.H_prev, sym.X, sym.one_B],
        (hidden[sym.W], hidden[sym.U], hidden[sym.b]),
        "Gradients (dW, dU, db) of the hidden affine map, summed over the batch rows.")
    k.output_vjp = generate(
        "output_vjp", [sym.G_o, sym.Hid, sym.V, sym.one_B],
        (output[sym.V], output[sym.c], output[sym.Hid]),
        "Gradients (dV, dc, dh) of the output affine map, given G_o with respect to o.")
    k.softmax_nll_grad = generate(
        "softmax_nll_grad", [nll_sym.Yhat, nll_sym.Y, nll_sym.B], nll_grad,
        "Gradient of the batch-mean NLL with respect to the logits: (Yhat - Y) / B.")
    k.input_projection = generate_into(
        "input_projection", [sym.X, sym.U, sym.b], rnn_step.input_projection(sym),
        "x_p = b + U x for every row (every example of every step at once): (rows, H).", ones=[sym.one_B])
    k.recurrent_preactivation = generate_into(
        "recurrent_preactivation", [sym.H_prev, sym.W, sym.Xp], rnn_step.recurrent_preactivation(sym),
        "a = W h_prev + x_p for a batch, written into out: (B, H).")
    k.output_logits = generate_into(
        "output_logits", [sym.Hid, sym.V, sym.c], logits,
        "o = c + V h for every row, written into out: (rows, K).", ones=[sym.one_B])
    return k
