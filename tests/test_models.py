"""The model registry of the sequence algorithms (bptt_lib.models)."""

import numpy as np
import pytest

from bptt_lib import models, rnn


def test_rnn_full_grads_are_rnn_loss_and_grads():
    rng = np.random.default_rng(3)
    params = rnn.init_params(3, 5, 4, rng=rng)
    x, y = rng.standard_normal((7, 2, 3)), rng.integers(0, 4, (7, 2))
    h0 = 0.3 * rng.standard_normal((2, 5))
    loss, grads = models.full_grads(params, x, y, state0=h0)
    ref_loss, ref = rnn.loss_and_grads(params, x, y, h0)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    assert grads.keys() == params.keys()
    for key in params:
        np.testing.assert_allclose(grads[key], ref[key], rtol=1e-12, atol=1e-14)


def test_unknown_model_is_named():
    with pytest.raises(ValueError, match="model must be one of .*got 'elman'"):
        models.get_model("elman")


def test_bad_state0_names_the_argument():
    rng = np.random.default_rng(0)
    params = rnn.init_params(3, 5, 4, rng=rng)
    with pytest.raises(ValueError, match="h0"):
        models.full_grads(params, np.zeros((4, 2, 3)), np.zeros((4, 2), int), state0=np.zeros((2, 6)))
