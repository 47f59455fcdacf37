"""Exercise checkers of the chapter *BPTT in vector form*.

- ``vector_bptt_grad_h(yhat, y, h, W, V)``: the backward recursion for
  :math:`\\nabla_{h^{(t)}} L` of the batch-mean loss, shape ``(T, B, H)``, from the
  trace's probabilities ``yhat`` (T, B, K) and states ``h`` (T + 1, B, H).
- ``vector_bptt_output_grads(yhat, y, h)``: :math:`\\nabla_V L` and
  :math:`\\nabla_c L` from the same trace, as a dict with keys ``"V"`` and ``"c"``.

Both references call :func:`bptt_lib.rnn.backward` itself. Neither answer
depends on ``x``, ``U`` or ``b`` (nor :math:`\\nabla_V L` on ``W`` and ``V``), so
the reference hands ``backward`` a trace and parameters in which those are
zeros; the inputs the answer does depend on are passed unchanged.
"""

from __future__ import annotations

import numpy as np

from .. import rnn
from . import register

__all__ = ["reference_grad_h", "reference_output_grads"]


def _backward(yhat, y, h, W, V):
    T, B, K = yhat.shape
    H = h.shape[-1]
    params = {"U": np.zeros((H, 1)), "W": W, "V": V, "b": np.zeros(H), "c": np.zeros(K)}
    log_yhat = np.log(yhat)
    trace = rnn.Trace(x=np.zeros((T, B, 1)), h=h, o=log_yhat, yhat=yhat, log_yhat=log_yhat)
    return rnn.backward(params, trace, y)


def reference_grad_h(yhat, y, h, W, V):
    """``grad_h`` (T, B, H), the second return value of ``rnn.backward``."""
    return _backward(yhat, y, h, W, V)[1]


def reference_output_grads(yhat, y, h):
    """``{"V": dV, "c": dc}`` from ``rnn.backward``."""
    K, H = yhat.shape[-1], h.shape[-1]
    grads, _ = _backward(yhat, y, h, np.zeros((H, H)), np.zeros((K, H)))
    return {"V": grads["V"], "c": grads["c"]}


def _traces(rng, with_weights: bool):
    cases = []
    for T, B, D, H, K in [(1, 1, 2, 3, 2), (4, 3, 2, 3, 4), (6, 2, 1, 5, 3)]:
        params = rnn.init_params(D, H, K, rng=rng, scale=0.8)
        params["b"] = 0.3 * rng.standard_normal(H)
        params["c"] = 0.3 * rng.standard_normal(K)
        trace = rnn.forward(params, rng.standard_normal((T, B, D)), 0.5 * rng.standard_normal((B, H)))
        case = {"yhat": trace.yhat, "y": rng.integers(0, K, size=(T, B)), "h": trace.h}
        if with_weights:
            case.update(W=params["W"], V=params["V"])
        cases.append(case)
    return cases


register("vector_bptt_grad_h", reference=reference_grad_h, cases=lambda rng: _traces(rng, True))
register("vector_bptt_output_grads", reference=reference_output_grads, cases=lambda rng: _traces(rng, False))
