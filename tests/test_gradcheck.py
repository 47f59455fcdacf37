import numpy as np
import pytest

from bptt_lib import gradcheck


def f(p):
    return np.sum(np.sin(p["a"]) * p["b"] ** 2)


def exact(p):
    return {"a": np.cos(p["a"]) * p["b"] ** 2, "b": 2 * np.sin(p["a"]) * p["b"]}


def test_both_methods_recover_a_known_gradient(rng):
    p = {"a": rng.standard_normal((2, 3)), "b": rng.standard_normal((2, 3))}
    cs = gradcheck.compare(exact(p), gradcheck.complex_step(f, p))
    fd = gradcheck.compare(exact(p), gradcheck.central_difference(f, p))
    assert max(cs.values()) < 1e-13  # exact to round-off
    assert max(fd.values()) < 1e-8   # eps = 1e-6: truncation ~1e-12, round-off ~1e-10


def test_relative_error_detects_a_wrong_gradient(rng):
    p = {"a": rng.standard_normal(4), "b": rng.standard_normal(4)}
    wrong = exact(p)
    wrong["b"] = wrong["b"] * 1.01
    assert gradcheck.compare(wrong, gradcheck.complex_step(f, p))["b"] > 1e-3


def test_inputs_are_not_modified(rng):
    p = {"a": rng.standard_normal(3), "b": rng.standard_normal(3)}
    before = {k: v.copy() for k, v in p.items()}
    gradcheck.central_difference(f, p)
    gradcheck.complex_step(f, p)
    for k in p:
        np.testing.assert_array_equal(p[k], before[k])


def test_errors_are_clear():
    with pytest.raises(TypeError, match="params must be a non-empty dict"):
        gradcheck.central_difference(f, [1.0])
    with pytest.raises(ValueError, match="eps must be positive"):
        gradcheck.complex_step(f, {"a": np.ones(1), "b": np.ones(1)}, eps=0.0)
    with pytest.raises(ValueError, match="f must return a scalar"):
        gradcheck.central_difference(lambda p: p["a"], {"a": np.ones(2)})
    with pytest.raises(ValueError, match="shapes differ"):
        gradcheck.relative_error(np.ones(2), np.ones(3))
    with pytest.raises(KeyError, match="numeric is missing key"):
        gradcheck.compare({"a": np.ones(1)}, {"b": np.ones(1)})
