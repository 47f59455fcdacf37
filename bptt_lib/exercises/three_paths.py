"""Exercise checkers of chapter 4, *Three paths back in time*.

- ``three_paths_contributions(w, u, v, h0, x, d)``: the contribution of each path
  to :math:`dE_N/dw` for the scalar tanh RNN with an identity output,
  ``c[k - 1]`` for the path on which :math:`w` enters at step :math:`k`.
- ``three_paths_gains(w, u, h0, x)``: the products of one-step derivatives
  :math:`\\prod_{j=N}^{N-\\ell+1} \\partial h_j / \\partial h_{j-1}`, indexed by the
  lag :math:`\\ell = 0, \\dots, N - 1`.

The references call the generated kernels through :mod:`bptt_lib.scalar_rnn`.
"""

from __future__ import annotations

import numpy as np

from .. import scalar_rnn as sr
from . import TimeAxis, register

__all__ = ["reference_contributions", "reference_gains"]


def reference_contributions(w, u, v, h0, x, d):
    """:func:`bptt_lib.scalar_rnn.path_contributions` for tanh, identity output, with respect to w."""
    return sr.path_contributions({"w": w, "u": u, "v": v}, h0, x, d, "w", "tanh", "identity")


def reference_gains(w, u, h0, x):
    """:func:`bptt_lib.scalar_rnn.path_gains` for tanh, reordered by lag (lag 0 first)."""
    return sr.path_gains({"w": w, "u": u, "v": 1.0}, h0, x, "tanh")[::-1].copy()


def _cases(rng, with_output: bool):
    cases = []
    for n, w_scale in [(1, 1.0), (3, 1.0), (6, 1.5), (10, 0.9)]:
        case = {
            "w": float(w_scale * rng.standard_normal()),
            "u": float(rng.standard_normal()),
            "h0": float(rng.uniform(0.2, 0.8)),
            "x": rng.standard_normal(n),
        }
        if with_output:
            case["v"] = float(rng.standard_normal())
            case["d"] = float(rng.standard_normal())
        cases.append(case)
    return cases


def _states(w, u, h0, x):
    h = np.empty(len(x) + 1)
    h[0] = h0
    for t in range(1, len(x) + 1):
        h[t] = np.tanh(w * h[t - 1] + u * x[t - 1])
    return h


def _contributions_variant(w, u, v, h0, x, d, *, dE=lambda v, h_n, d: -2 * (d - v * h_n) * v,
                           state_shift=1, tanh_back=True, reverse=False):
    """Path contributions with one ingredient changed (for the mistakes)."""
    h = _states(w, u, h0, x)
    n = len(x)
    c = np.empty(n)
    g = dE(v, h[n], d)                                       # dE_N / dh_N
    for k in range(n, 0, -1):
        c[k - 1] = g * (1 - h[k] ** 2) * h[k - state_shift]  # immediate partial of h_k w.r.t. w
        g = g * w * ((1 - h[k] ** 2) if tanh_back else 1.0)  # dE_N / dh_{k-1}
    return c[::-1].copy() if reverse else c


CONTRIBUTION_MISTAKES = {
    "the sign of dE_N/dh_N is flipped: E_N = (d − v h_N)², so dE_N/dh_N = −2 (d − v h_N) v":
        lambda **kw: _contributions_variant(**kw, dE=lambda v, h_n, d: 2 * (d - v * h_n) * v),
    "the factor 2 from differentiating the square was forgotten":
        lambda **kw: _contributions_variant(**kw, dE=lambda v, h_n, d: -(d - v * h_n) * v),
    "h_k was used where h_(k−1) belongs: the immediate partial of h_k with respect to w is (1 − h_k²) h_(k−1)":
        lambda **kw: _contributions_variant(**kw, state_shift=0),
    "the tanh factor was left out when stepping back: dE/dh_(k−1) = dE/dh_k · w (1 − h_k²)":
        lambda **kw: _contributions_variant(**kw, tanh_back=False),
    "the contributions are in reverse order: c[k − 1] belongs to the path on which w enters at step k":
        lambda **kw: _contributions_variant(**kw, reverse=True),
}


def _gains_variant(w, u, h0, x, *, state_shift=0, lag_shift=0, with_tanh=True, with_w=True, reverse=False):
    """Products of one-step derivatives by lag, with one ingredient changed (for the mistakes)."""
    h = _states(w, u, h0, x)
    n = len(x)
    gains = np.empty(n)
    for lag in range(n):
        steps = range(n - lag - lag_shift + 1, n + 1)      # j = N - lag + 1 .. N
        factors = [(w if with_w else 1.0) * ((1 - h[j - state_shift] ** 2) if with_tanh else 1.0) for j in steps]
        gains[lag] = np.prod(factors)
    return gains[::-1].copy() if reverse else gains


GAIN_MISTAKES = {
    "the states are off by one step: the factor for crossing step j is w (1 − h_j²), not w (1 − h_(j−1)²)":
        lambda **kw: _gains_variant(**kw, state_shift=1),
    "the lag is off by one: lag 0 is the empty product, 1, and lag ℓ has ℓ factors":
        lambda **kw: _gains_variant(**kw, lag_shift=1),
    "the tanh factors 1 − h_j² were left out (w to the power ℓ)":
        lambda **kw: _gains_variant(**kw, with_tanh=False),
    "w was left out of each factor w (1 − h_j²)":
        lambda **kw: _gains_variant(**kw, with_w=False),
    "the gains are in reverse order: entry ℓ belongs to lag ℓ, lag 0 first":
        lambda **kw: _gains_variant(**kw, reverse=True),
}

register("three_paths_contributions", reference=reference_contributions, cases=lambda rng: _cases(rng, True),
         mistakes=CONTRIBUTION_MISTAKES, time=TimeAxis("k", offset=1, backward=True))
register("three_paths_gains", reference=reference_gains, cases=lambda rng: _cases(rng, False),
         mistakes=GAIN_MISTAKES, time=TimeAxis("lag", offset=0))
