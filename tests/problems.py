"""Seeded random RNN problems shared by the test modules (one definition, many tests)."""

import numpy as np
from hypothesis import strategies as st

from bptt_lib import rnn

SHAPES = st.tuples(
    st.integers(0, 2**32 - 1),
    st.integers(1, 8), st.integers(1, 3), st.integers(1, 5), st.integers(1, 5), st.integers(1, 5),
)
"""(seed, T, B, D, H, K) with T 1..8, B 1..3 and D, H, K 1..5."""


def rnn_problem(seed, T, B, D, H, K, *, scale=None, bias_scale=0.1):
    """Parameters with nonzero biases, inputs ``x`` (T, B, D), targets ``y`` (T, B) and ``h0`` (B, H)."""
    rng = np.random.default_rng(seed)
    params = rnn.init_params(D, H, K, rng=rng, scale=scale)
    params["b"] = bias_scale * rng.standard_normal(H)
    params["c"] = bias_scale * rng.standard_normal(K)
    x = rng.standard_normal((T, B, D))
    y = rng.integers(0, K, size=(T, B))
    h0 = 0.5 * rng.standard_normal((B, H))
    return params, x, y, h0
