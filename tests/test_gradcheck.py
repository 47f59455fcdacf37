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


@pytest.mark.parametrize("shape", [(0,), (0, 3), (2, 0)])
def test_relative_error_of_empty_arrays_is_a_named_error(shape):
    """Today's behaviour was NumPy's "zero-size array to reduction operation maximum"."""
    with pytest.raises(ValueError, match=rf"analytic and numeric must have at least one entry to compare; "
                                         rf"got shape \({shape[0]},"):
        gradcheck.relative_error(np.ones(shape), np.ones(shape))
    with pytest.raises(ValueError, match="at least one entry"):
        gradcheck.compare({"a": np.ones(shape)}, {"a": np.ones(shape)})


def test_central_difference_refuses_a_step_lost_to_rounding():
    """x + eps == x would give a silently zero derivative; the error names the entry and the spacing."""
    quadratic = lambda p: np.sum(p["a"] ** 2)  # noqa: E731
    with pytest.raises(ValueError, match=r"eps=1e-17 is too small for params\['a'\]\[1\] = 1.0: x \+ eps == x in "
                                         r"float64 \(the step is lost to rounding\).*spacing 2.22e-16"):
        gradcheck.central_difference(quadratic, {"a": np.array([0.0, 1.0])}, eps=1e-17)
    # A large entry loses a step that is fine for small ones (spacing near 1e12 is about 1.2e-4).
    with pytest.raises(ValueError, match=r"params\['a'\]\[0, 1\] = 1000000000000.0"):
        gradcheck.central_difference(quadratic, {"a": np.array([[1.0, 1e12]])}, eps=1e-5)
    # Only x - eps rounding back to x is caught too: below -1 floats are twice as far apart as above it.
    x, eps = -1.0, 0.8e-16
    assert x + eps != x and x - eps == x
    with pytest.raises(ValueError, match=r"params\['a'\]\[0\] = -1.0: x - eps == x in float64"):
        gradcheck.central_difference(quadratic, {"a": np.array([x])}, eps=eps)
    # Where the step is representable the derivative is computed as before (2a), and the
    # demonstration of round-off can still ask for the lost step explicitly.
    np.testing.assert_allclose(gradcheck.central_difference(quadratic, {"a": np.array([0.0, 1.0])})["a"], [0.0, 2.0],
                               atol=1e-9)
    lost = gradcheck.central_difference(quadratic, {"a": np.array([1.0])}, eps=1e-17, allow_lost_step=True)
    assert lost["a"][0] == 0.0
