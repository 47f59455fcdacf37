"""Exercise checkers of chapter 13, *Memory, and learning online without going back*.

- ``memory_online_rtrl_step(S, W, h_prev, h)``: one step of real-time recurrent learning
  for the recurrent weights of one example. ``S`` (H, H, H) holds
  ``S[i, j, k] = dh_i^(t-1)/dW_jk``; return the same array for step ``t``,
  ``diag(1 - h^2) (E + W S)`` with the immediate part ``E[i, j, k] = delta_ij h_prev_k``.

The reference runs the generated kernel ``rtrl_update`` of :mod:`bptt_lib.online` (rows
are parameter directions there, hence the transposes).
"""

from __future__ import annotations

import numpy as np

from .. import online
from . import register

__all__ = ["reference_rtrl_step"]


def reference_rtrl_step(S, W, h_prev, h):
    """``diag(1 - h^2) (E + W S)`` through :func:`bptt_lib.online.online_kernels`' ``rtrl_update``."""
    S, W = np.asarray(S, dtype=float), np.asarray(W, dtype=float)
    h_prev, h = np.asarray(h_prev, dtype=float), np.asarray(h, dtype=float)
    H = W.shape[0]
    rows = S.transpose(1, 2, 0).reshape(H * H, H)                       # row (j, k), column i
    E = online.explicit_rows(h_prev[None, :], np.zeros((1, 1)))[0, :H * H, :]
    factor = np.repeat((1 - h**2)[None, :], H * H, axis=0)
    new = online.online_kernels().rtrl_update(rows, W, E, factor)
    return new.reshape(H, H, H).transpose(2, 0, 1)


def _immediate(h_prev, H):
    E = np.zeros((H, H, H))
    for j in range(H):
        E[j, j, :] = h_prev
    return E


def _variant(S, W, h_prev, h, *, factor=True, carry=True, immediate=True, state="prev", factor_on_carry=True):
    H = W.shape[0]
    E = _immediate(h_prev if state == "prev" else h, H) if immediate else np.zeros((H, H, H))
    carried = np.einsum("il,ljk->ijk", W, S) if carry else S
    d = (1 - h**2)[:, None, None] if factor else 1.0
    if factor_on_carry:
        return d * (E + carried)
    return d * E + carried


def _cases(rng: np.random.Generator) -> list:
    cases = []
    for H in (2, 3, 4, 3):
        cases.append({
            "S": rng.standard_normal((H, H, H)),
            "W": rng.standard_normal((H, H)),                  # not symmetric: W and W^T differ
            "h_prev": np.tanh(rng.standard_normal(H)),
            "h": np.tanh(rng.standard_normal(H)),
        })
    return cases


MISTAKES = {
    "the factor diag(1 − h²) is missing: tanh's derivative multiplies the whole bracket":
        lambda **kw: _variant(**kw, factor=False),
    "W was not applied to the previous sensitivity: the implicit part is W S, not S":
        lambda **kw: _variant(**kw, carry=False),
    "the immediate term was forgotten: W_jk reaches h_j directly, through h_prev_k, at every step":
        lambda **kw: _variant(**kw, immediate=False),
    "h was used where h_prev belongs in the immediate term: dh_j/dW_jk starts from the previous state":
        lambda **kw: _variant(**kw, state="current"),
    "the factor diag(1 − h²) multiplies only the immediate term; the carried part W S passes through tanh too":
        lambda **kw: _variant(**kw, factor_on_carry=False),
}

register("memory_online_rtrl_step", reference=reference_rtrl_step, cases=_cases, mistakes=MISTAKES)
