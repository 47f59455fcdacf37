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
from . import TimeAxis, register

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


def _dh_dw_variant(w, u, h0, x, *, implicit=True, explicit_state="prev", tanh_on_implicit=True, with_t0=True):
    """``dh_t/dw`` with one ingredient changed (for the mistakes)."""
    x = np.asarray(x, dtype=float)
    out = np.zeros(x.size + 1)
    h_prev = h0
    for t, x_t in enumerate(x, start=1):
        h = np.tanh(w * h_prev + u * x_t)
        explicit = h_prev if explicit_state == "prev" else h
        carried = w * out[t - 1] if implicit else 0.0
        out[t] = (1 - h**2) * (explicit + carried) if tanh_on_implicit else (1 - h**2) * explicit + carried
        h_prev = h
    return out if with_t0 else out[1:]


DH_DW_MISTAKES = {
    "the implicit part w · dh_(t−1)/dw was dropped: only the explicit partial (1 − h_t²) h_(t−1) remains":
        lambda **kw: _dh_dw_variant(**kw, implicit=False),
    "h_t was used where h_(t−1) belongs in the explicit partial (1 − h_t²) h_(t−1)":
        lambda **kw: _dh_dw_variant(**kw, explicit_state="current"),
    "the tanh factor 1 − h_t² multiplies only the explicit part; it multiplies the implicit part too":
        lambda **kw: _dh_dw_variant(**kw, tanh_on_implicit=False),
    "the entry for t = 0 is missing: the result holds dh_t/dw for t = 0..T, starting with dh_0/dw = 0":
        lambda **kw: _dh_dw_variant(**kw, with_t0=False),
}


def _linear_variant(W, U, x, h0, *, transpose=False, power_shift=0, with_h0=True, reverse=False):
    """``h^(T)`` of the linear RNN with one ingredient changed (for the mistakes)."""
    A = W.T if transpose else W
    T = x.shape[0]
    h_T = np.linalg.matrix_power(A, T) @ h0 if with_h0 else np.zeros(W.shape[0])
    for k in range(1, T + 1):
        power = (k - 1) if reverse else (T - k + power_shift)
        h_T = h_T + np.linalg.matrix_power(A, power) @ (U @ x[k - 1])
    return h_T


LINEAR_MISTAKES = {
    "Wᵀ was used where W belongs":
        lambda **kw: _linear_variant(**kw, transpose=True),
    "the powers are off by one: the input of step k is multiplied by W to the power T − k, not T − k + 1":
        lambda **kw: _linear_variant(**kw, power_shift=1),
    "the initial state's term, W to the power T times h⁽⁰⁾, was left out":
        lambda **kw: _linear_variant(**kw, with_h0=False),
    "the inputs met the powers in reverse order: x_k is multiplied by W to the power T − k (the latest input by I)":
        lambda **kw: _linear_variant(**kw, reverse=True),
}

register("total_loss_dh_dw", reference=reference_dh_dw, cases=_dh_dw_cases, mistakes=DH_DW_MISTAKES,
         time=TimeAxis("t", offset=0))
register("total_loss_linear_final_state", reference=reference_linear_final_state, cases=_linear_cases,
         mistakes=LINEAR_MISTAKES)
