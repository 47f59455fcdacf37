r"""Exercise checkers of chapter 15, *The GRU*.

- ``gru_backward_step``: ``gru_backward_step(g, h_prev, x, p)``, backward through one step of the
  book's GRU (reset gate before the product, update gate weighting :math:`h^{(t-1)}`) for a batch
  stored as rows: ``g`` (B, H) is :math:`\nabla_{h^{(t)}} L`, ``h_prev`` (B, H), ``x`` (B, D), ``p``
  the parameters (keys of :data:`bptt_lib.gru.PARAM_SHAPES`). The result is a dict: ``"a_z"``,
  ``"a_r"``, ``"a_h"`` (B, H), the gradients of the three pre-activations, and ``"h_prev"`` (B, H),
  :math:`\nabla_{h^{(t-1)}} L` through this step.

The reference is written from the equations in NumPy; ``tests/test_gru.py`` checks it against the
library's generated backward step and against the complex-step Jacobian of the step.
"""

from __future__ import annotations

import numpy as np

from . import register

__all__ = ["reference_backward_step", "backward_step_variant"]


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


def backward_step_variant(g, h_prev, x, p, *, update="previous", reset="before", sigmoid_slope="right",
                          direct=True, through_q=True):
    """Backward through one GRU step for rows, with one ingredient changeable (for the mistakes).

    Correct: ``update="previous"``, ``reset="before"``, the sigmoid's slope ``z (1 - z)``, the direct
    path of ``h_prev`` into the interpolation and the path through ``q = r * h_prev`` both kept.
    """
    z = _sigmoid(h_prev @ p["W_z"].T + x @ p["U_z"].T + p["b_z"])
    r = _sigmoid(h_prev @ p["W_r"].T + x @ p["U_r"].T + p["b_r"])
    m = h_prev @ p["W_h"].T
    if reset == "before":
        q = r * h_prev
        ht = np.tanh(q @ p["W_h"].T + x @ p["U_h"].T + p["b_h"])
    else:
        ht = np.tanh(r * m + x @ p["U_h"].T + p["b_h"])

    def slope(s):
        return s * (1 - s) if sigmoid_slope == "right" else 1 - s ** 2

    if update == "previous":                     # h = z h_prev + (1 - z) ht
        da_z = g * (h_prev - ht) * slope(z)
        da_h = g * (1 - z) * (1 - ht ** 2)
        dh = g * z if direct else np.zeros_like(g)
    else:                                        # h = (1 - z) h_prev + z ht
        da_z = g * (ht - h_prev) * slope(z)
        da_h = g * z * (1 - ht ** 2)
        dh = g * (1 - z) if direct else np.zeros_like(g)
    if reset == "before":
        g_q = da_h @ p["W_h"]
        da_r = g_q * h_prev * slope(r)
        if through_q:
            dh = dh + g_q * r
    else:
        da_r = da_h * m * slope(r)
        dh = dh + (da_h * r) @ p["W_h"]
    dh = dh + da_z @ p["W_z"] + da_r @ p["W_r"]
    return {"a_z": da_z, "a_r": da_r, "a_h": da_h, "h_prev": dh}


def reference_backward_step(g, h_prev, x, p):
    """The gradients of the pre-activations and of ``h_prev`` through one step of the book's GRU."""
    return backward_step_variant(g, h_prev, x, p)


def _cases(rng):
    cases = []
    for B, D, H in [(1, 1, 1), (2, 3, 4), (3, 2, 3), (4, 2, 5)]:
        p = {}
        for gate in "zrh":
            p[f"W_{gate}"] = rng.standard_normal((H, H)) / np.sqrt(H)
            p[f"U_{gate}"] = rng.standard_normal((H, D)) / np.sqrt(D)
            p[f"b_{gate}"] = 0.5 * rng.standard_normal(H)
        p["V"], p["c"] = rng.standard_normal((2, H)), np.zeros(2)
        cases.append({"g": rng.standard_normal((B, H)), "h_prev": 0.8 * np.tanh(rng.standard_normal((B, H))),
                      "x": rng.standard_normal((B, D)), "p": p})
    return cases


BACKWARD_STEP_MISTAKES = {
    "z and 1 − z were swapped: this is the backward pass of h = (1 − z) ⊙ h^(t−1) + z ⊙ h̃, the other "
    "convention, while the book's update gate weights h^(t−1)":
        lambda **kw: backward_step_variant(**kw, update="candidate"),
    "the reset gate was applied after the product, r ⊙ (W_h h^(t−1)) as in PyTorch's nn.GRU; the book "
    "applies it before, W_h (r ⊙ h^(t−1))":
        lambda **kw: backward_step_variant(**kw, reset="after"),
    "the sigmoid's derivative was taken as 1 − σ², tanh's; for a gate it is σ(1 − σ), z(1 − z) and r(1 − r)":
        lambda **kw: backward_step_variant(**kw, sigmoid_slope="tanh"),
    "the direct path was missed: h^(t−1) enters h^(t) = z ⊙ h^(t−1) + (1 − z) ⊙ h̃ itself, which adds "
    "z ⊙ g to the gradient of h^(t−1)":
        lambda **kw: backward_step_variant(**kw, direct=False),
    "the path through the candidate's product was missed: q = r ⊙ h^(t−1) adds r ⊙ (∇_(a_h) L W_h) "
    "to the gradient of h^(t−1)":
        lambda **kw: backward_step_variant(**kw, through_q=False),
}

register("gru_backward_step", reference=reference_backward_step, cases=_cases, mistakes=BACKWARD_STEP_MISTAKES)
