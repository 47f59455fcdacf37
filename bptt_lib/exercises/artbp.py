"""Exercise checkers of chapter 12, *Unbiased truncation: ARTBP*.

- ``artbp_state_grads(local, jac, cuts, c)``: the compensated backward recursion of
  ARTBP for the state gradients, given each step's own gradient
  ``local[t - 1]`` :math:`= \\nabla_{h^{(t)}} L^{(t)}` (T, H), the step Jacobians
  ``jac[t - 1]`` :math:`= \\partial h^{(t)} / \\partial h^{(t-1)}` (T, H, H), the cut
  indicators ``cuts[t - 1]`` (the boundary after step ``t``) and the probabilities
  ``c`` (a float or an array of length T). Returns ``g`` (T, H) with
  ``g[t - 1]`` :math:`= \\hat g^{(t)} = \\nabla_{h^{(t)}} L^{(t)} + \\frac{1 - \\varepsilon_t}{1 - c_t}
  (\\partial h^{(t+1)} / \\partial h^{(t)})^\\top \\hat g^{(t+1)}`.
"""

from __future__ import annotations

import numpy as np

from . import TimeAxis, register

__all__ = ["reference_artbp_state_grads"]


def _recursion(local, jac, factor, *, on_total=False):
    """``g[t] = local[t] + factor[t] * jac[t + 1]^T g[t + 1]`` (0-based), last step first.

    With ``on_total`` the factor multiplies the whole ``g[t]`` (a mistake).
    """
    local, jac = np.asarray(local, float), np.asarray(jac, float)
    T = len(local)
    g = np.zeros_like(local)
    g[T - 1] = local[T - 1]
    for t in range(T - 2, -1, -1):
        if on_total:
            g[t] = factor[t] * (local[t] + jac[t + 1].T @ g[t + 1])
        else:
            g[t] = local[t] + factor[t] * (jac[t + 1].T @ g[t + 1])
    return g


def _c_array(c, T):
    return np.full(T, float(c)) if np.ndim(c) == 0 else np.asarray(c, float)


def reference_artbp_state_grads(local, jac, cuts, c):
    """The compensated state gradients: factor ``(1 - cut_t) / (1 - c_t)`` on the boundary after step ``t``."""
    cuts = np.asarray(cuts, bool)
    c = _c_array(c, len(cuts))
    return _recursion(local, jac, np.where(cuts, 0.0, 1.0 / (1.0 - c)))


def _cases(rng):
    cases = []
    for T, H, c_kind in [(5, 3, "float"), (7, 2, "array"), (6, 4, "array"), (8, 3, "float")]:
        local = rng.standard_normal((T, H))
        jac = rng.standard_normal((T, H, H)) / np.sqrt(H)
        cuts = np.zeros(T, bool)
        cuts[rng.choice(T - 1, size=max(1, (T - 1) // 3), replace=False)] = True   # some cut, most kept
        c = float(rng.uniform(0.2, 0.6)) if c_kind == "float" else rng.uniform(0.1, 0.7, size=T)
        cases.append({"local": local, "jac": jac, "cuts": cuts, "c": c})
    return cases


def _mistake(kind):
    def wrong(local, jac, cuts, c):
        cuts = np.asarray(cuts, bool)
        c = _c_array(c, len(cuts))
        if kind == "one_over_c":
            return _recursion(local, jac, np.where(cuts, 0.0, 1.0 / c))
        if kind == "none":
            return _recursion(local, jac, np.where(cuts, 0.0, 1.0))
        if kind == "inverted":
            return _recursion(local, jac, np.where(cuts, 1.0 / (1.0 - c), 0.0))
        if kind == "on_total":
            return _recursion(local, jac, np.where(cuts, 0.0, 1.0 / (1.0 - c)), on_total=True)
        if kind == "off_by_one":
            shifted = np.concatenate([cuts[1:], [False]]), np.concatenate([c[1:], [c[-1]]])
            return _recursion(local, jac, np.where(shifted[0], 0.0, 1.0 / (1.0 - shifted[1])))
        raise AssertionError(kind)
    return wrong


ARTBP_MISTAKES = {
    "the compensation is 1/c; a kept boundary is kept with probability 1 − c, so it must carry 1/(1 − c)":
        _mistake("one_over_c"),
    "the kept boundaries carry no compensation (factor 1): plain random truncation, biased towards short paths":
        _mistake("none"),
    "the cut indicator is inverted: the gradient crosses the boundaries that were cut and stops at the kept ones":
        _mistake("inverted"),
    "the factor multiplies the whole gradient of h(t), its own loss's part included; only the part crossing "
    "the boundary from step t + 1 is compensated":
        _mistake("on_total"),
    "the cut and the probability of the boundary after step t + 1 were used for the one after step t (off by one)":
        _mistake("off_by_one"),
}

register("artbp_state_grads", reference=reference_artbp_state_grads, cases=_cases,
         mistakes=ARTBP_MISTAKES, time=TimeAxis("t", offset=1, backward=True))
