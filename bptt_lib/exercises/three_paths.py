"""Exercise checkers of chapter 4, *Three paths back in time*.

- ``three_paths_contributions(w, u, v, h0, x, d)``: the contribution of each path
  to :math:`dE_N/dw` for the scalar tanh RNN with an identity output,
  ``c[k - 1]`` for the path on which :math:`w` enters at step :math:`k`.
- ``three_paths_gains(w, u, h0, x)``: the products of one-step derivatives
  :math:`\\prod_{j=N-\\ell+1}^{N} \\partial h_j / \\partial h_{j-1}`, indexed by the
  lag :math:`\\ell = 0, \\dots, N - 1`.

The references call the generated kernels through :mod:`bptt_lib.scalar_rnn`.
"""

from __future__ import annotations

from .. import scalar_rnn as sr
from . import register

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


register("three_paths_contributions", reference=reference_contributions, cases=lambda rng: _cases(rng, True))
register("three_paths_gains", reference=reference_gains, cases=lambda rng: _cases(rng, False))
