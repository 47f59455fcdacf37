r"""Exercise checkers of chapter 14, *The LSTM*.

- ``lstm_cell_backward``: ``cell_backward(dh, delta_s_next, f_next, f, i, g, q, s, s_prev)``,
  one unit-wise backward step of the LSTM for a batch (every argument (B, H)): ``dh`` is the
  total gradient :math:`\partial L/\partial h^{(t)}`, ``delta_s_next`` the total gradient
  :math:`\delta_s^{(t+1)}` of :math:`s^{(t+1)}`, ``f_next`` the forget gate :math:`f^{(t+1)}`,
  ``f, i, g, q`` the gates of step :math:`t`, ``s`` and ``s_prev`` the cell states
  :math:`s^{(t)}` and :math:`s^{(t-1)}`. It returns the tuple
  ``(delta_s, da_f, da_i, da_g, da_q)``: the total gradient of :math:`s^{(t)}` and those of
  the four pre-activations of step :math:`t`.

The reference calls the generated kernels of :func:`bptt_lib.lstm.lstm_kernels`
(``cell_state_vjp`` and ``gate_vjp``), derived and proven in :mod:`bptt_lib.derive.lstm`.
"""

from __future__ import annotations

import numpy as np

from ..lstm import lstm_kernels
from . import register

__all__ = ["reference_cell_backward", "cell_backward_variant"]


def reference_cell_backward(dh, delta_s_next, f_next, f, i, g, q, s, s_prev):
    """``(delta_s, da_f, da_i, da_g, da_q)`` of one step, from the generated kernels."""
    k = lstm_kernels()
    c = np.tanh(s)
    delta_s = k.cell_state_vjp(dh, delta_s_next * f_next, q, c)
    return (np.asarray(delta_s, dtype=float),) + tuple(np.asarray(v, dtype=float)
                                                       for v in k.gate_vjp(delta_s, dh, c, s_prev, f, i, g, q))


def cell_backward_variant(dh, delta_s_next, f_next, f, i, g, q, s, s_prev, *, through_h=True, carry_gate=None,
                          dsigmoid=lambda v: v * (1 - v), dtanh_g=lambda v: 1 - v ** 2, q_reads=None):
    """The backward step written out, with one ingredient changeable (for the mistakes)."""
    c = np.tanh(s)
    carry = f_next if carry_gate is None else carry_gate
    delta_s = delta_s_next * carry + (dh * q * (1 - c ** 2) if through_h else 0.0)
    read = c if q_reads is None else q_reads
    return (delta_s, delta_s * s_prev * dsigmoid(f), delta_s * g * dsigmoid(i), delta_s * i * dtanh_g(g),
            dh * read * dsigmoid(q))


def _cases(rng):
    cases = []
    for B, H in [(2, 3), (1, 4), (3, 2)]:
        gate = lambda shape=(B, H): rng.uniform(0.05, 0.95, shape)  # noqa: E731
        cases.append({"dh": rng.standard_normal((B, H)), "delta_s_next": rng.standard_normal((B, H)),
                      "f_next": gate(), "f": gate(), "i": gate(), "g": rng.uniform(-0.95, 0.95, (B, H)),
                      "q": gate(), "s": rng.standard_normal((B, H)), "s_prev": rng.standard_normal((B, H))})
    return cases


CELL_MISTAKES = {
    "the path from s^(t) through tanh into h^(t) = q ⊙ tanh(s^(t)) was left out of δ_s: "
    "δ_s = δ_s^(t+1) ⊙ f^(t+1) + ∂L/∂h^(t) ⊙ q ⊙ (1 − tanh² s^(t))":
        lambda **kw: cell_backward_variant(**kw, through_h=False),
    "the gradient from step t + 1 was multiplied by f^(t) instead of f^(t+1): "
    "s^(t+1) = f^(t+1) ⊙ s^(t) + ..., so its own forget gate carries it back":
        lambda **kw: cell_backward_variant(**kw, carry_gate=kw["f"]),
    "the sigmoid's derivative was written σ(1 + σ) instead of σ(1 − σ)":
        lambda **kw: cell_backward_variant(**kw, dsigmoid=lambda v: v * (1 + v)),
    "the candidate's derivative was taken as a sigmoid's, g(1 − g), instead of tanh's 1 − g²":
        lambda **kw: cell_backward_variant(**kw, dtanh_g=lambda v: v * (1 - v)),
    "the output gate's gradient read s^(t) where tanh s^(t) belongs (h = q ⊙ tanh s)":
        lambda **kw: cell_backward_variant(**kw, q_reads=kw["s"]),
}

register("lstm_cell_backward", reference=reference_cell_backward, cases=_cases, mistakes=CELL_MISTAKES)
