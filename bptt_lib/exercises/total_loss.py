"""Exercise checkers of chapter 5, *The total loss and the implicit part of the derivative*.

- ``total_loss_dh_dw(w, u, h0, x)``: for the scalar RNN
  ``h_t = tanh(w h_{t-1} + u x_t)``, the total derivatives ``dh_t/dw`` for
  ``t = 0 .. T`` by the explicit plus implicit recursion, an array of shape (T + 1,).
- ``total_loss_linear_final_state(W, U, x, h0)``: the last state of the linear RNN
  ``h_t = W h_{t-1} + U x_t`` for one example, ``W`` (H, H), ``U`` (H, D),
  ``x`` (T, D), ``h0`` (H,) -> (H,).

Both references call :mod:`bptt_lib.implicit_recursion`, whose kernels are
generated from the chapter's derivations.
"""

from __future__ import annotations

import numpy as np

from .. import implicit_recursion as ir
from ..jacobian_products import recurrent_weight
from . import register

__all__ = ["reference_dh_dw", "reference_linear_final_state"]


def reference_dh_dw(w, u, h0, x):
    """``dh_t/dw`` for ``t = 0 .. T``: forward mode (:func:`bptt_lib.implicit_recursion.jvp`) with 1 by 1 matrices."""
    x = np.asarray(x, dtype=float)
    params = {"W": [[w]], "U": [[u]], "b": [0.0]}
    _, h_dot = ir.jvp(params, x.reshape(-1, 1, 1), {"W": [[1.0]]}, h0=[[h0]])
    return h_dot[:, 0, 0]


def reference_linear_final_state(W, U, x, h0):
    """``W^T h0 + sum_k W^(T-k) U x_k``: the last row of :func:`bptt_lib.implicit_recursion.linear_closed_form`."""
    x = np.asarray(x, dtype=float)
    return ir.linear_closed_form(W, U, x[:, None, :], np.asarray(h0, dtype=float)[None, :])[-1, 0]


def _dh_dw_cases(rng: np.random.Generator) -> list:
    cases = []
    # T = 1 has no implicit part; larger |w| makes the implicit part large, so dropping it fails.
    for n_steps, w_scale in [(1, 1.0), (2, 1.0), (5, 1.5), (8, 0.7)]:
        cases.append({
            "w": float(w_scale * rng.standard_normal()),
            "u": float(rng.standard_normal()),
            "h0": float(0.5 * rng.standard_normal()),
            "x": rng.standard_normal(n_steps),
        })
    return cases


def _linear_cases(rng: np.random.Generator) -> list:
    cases = []
    # W is not symmetric and H differs from D, so W.T or a swapped product shows; h0 is nonzero.
    for n_steps, n_hidden, n_in in [(1, 2, 1), (3, 2, 3), (6, 4, 2), (10, 3, 3)]:
        cases.append({
            "W": recurrent_weight(n_hidden, 0.9, kind="gaussian", rng=rng),
            "U": rng.standard_normal((n_hidden, n_in)),
            "x": rng.standard_normal((n_steps, n_in)),
            "h0": rng.standard_normal(n_hidden),
        })
    return cases


register("total_loss_dh_dw", reference=reference_dh_dw, cases=_dh_dw_cases)
register("total_loss_linear_final_state", reference=reference_linear_final_state, cases=_linear_cases)
