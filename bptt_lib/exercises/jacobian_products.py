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


register("jacobian_product", reference=reference_jacobian_product, cases=_cases)
