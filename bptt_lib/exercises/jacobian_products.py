"""Exercise checkers of the chapter *Products of Jacobians*.

- ``jacobian_product(W, h, k, t)``: the Jacobian :math:`\\partial h^{(t)} / \\partial h^{(k)}`
  of a tanh RNN, shape (H, H), from the stored states ``h`` (T + 1, H) and ``W`` (H, H).

The reference is :func:`bptt_lib.jacobian_products.jacobian_product`, built from the
generated backward kernels. The cases use non-symmetric ``W`` and states that differ from
step to step, so a transposed factor (``W diag(...)`` instead of ``diag(...) W``) or the
factors multiplied in the wrong order fail.
"""

from __future__ import annotations

import numpy as np

from .. import jacobian_products as jp
from . import register

__all__ = ["reference_jacobian_product"]


def reference_jacobian_product(W, h, k, t):
    """``diag(1 - h[t]**2) W ... diag(1 - h[k+1]**2) W``, latest step on the left."""
    return jp.jacobian_product(W, h, k, t, activation="tanh")


def _cases(rng):
    cases = []
    for n_hidden, n_steps, k, t in [(2, 3, 1, 2), (3, 5, 0, 5), (4, 6, 2, 5), (5, 8, 1, 7), (3, 4, 2, 2)]:
        W = 1.3 * rng.standard_normal((n_hidden, n_hidden)) / np.sqrt(n_hidden)
        h = np.tanh(1.2 * rng.standard_normal((n_steps + 1, n_hidden)))
        cases.append({"W": W, "h": h, "k": k, "t": t})
    return cases


def _product_variant(W, h, k, t, *, A=lambda W: W, side="left", latest_left=True, state_shift=0):
    """The product of one-step Jacobians with one ingredient changed (for the mistakes)."""
    P = np.eye(W.shape[0])
    for j in range(t, k, -1):
        d = 1 - h[j - state_shift] ** 2
        factor = d[:, None] * A(W) if side == "left" else A(W) * d[None, :]
        P = P @ factor if latest_left else factor @ P
    return P


JACOBIAN_MISTAKES = {
    "Wᵀ was used where W belongs: ∂h⁽ʲ⁾/∂h⁽ʲ⁻¹⁾ = diag(1 − (h⁽ʲ⁾)²) W":
        lambda **kw: _product_variant(**kw, A=lambda W: W.T),
    "the diagonal factor is on the wrong side: W diag(1 − h²) instead of diag(1 − h²) W":
        lambda **kw: _product_variant(**kw, side="right"),
    "the factors were multiplied in the wrong order: the latest step, j = t, goes on the left":
        lambda **kw: _product_variant(**kw, latest_left=False),
    "h is off by one step: the factor of step j uses h⁽ʲ⁾, not h⁽ʲ⁻¹⁾":
        lambda **kw: _product_variant(**kw, state_shift=1),
}

register("jacobian_product", reference=reference_jacobian_product, cases=_cases, mistakes=JACOBIAN_MISTAKES)
