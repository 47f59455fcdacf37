"""The checker framework: every registered exercise accepts its reference and rejects wrong answers."""

import numpy as np
import pytest

from bptt_lib import exercises
from bptt_lib.exercises import check, exercise_names, get, register, verdict

NAMES = exercise_names()


def test_every_chapter_registers_exercises():
    assert len(NAMES) >= 3


@pytest.mark.parametrize("name", NAMES)
def test_reference_passes(name):
    result = verdict(name, get(name).reference)
    assert result, result.message
    assert result.message.startswith(f"✓ {name}: all ")


@pytest.mark.parametrize("name", NAMES)
def test_perturbed_answer_fails(name):
    reference = get(name).reference

    integer = get(name).integer_result

    def off_by_a_little(**kwargs):
        out = reference(**kwargs)
        if integer:
            return np.asarray(out) + 1
        if isinstance(out, dict):
            return {k: np.asarray(v) * 1.001 + 1e-3 for k, v in out.items()}
        if isinstance(out, tuple):
            return tuple(np.asarray(v) * 1.001 + 1e-3 for v in out)
        return np.asarray(out) * 1.001 + 1e-3

    result = verdict(name, off_by_a_little)
    assert not result and "differs from the expected value" in result.message


@pytest.mark.parametrize("name", NAMES)
def test_stub_is_reported_as_not_implemented(name):
    def stub(**kwargs):
        raise NotImplementedError

    result = verdict(name, stub)
    assert not result and "not implemented yet" in result.message


@pytest.fixture
def double():
    ex = register("_test_double", reference=lambda x: 2 * x, cases=lambda rng: [{"x": rng.standard_normal(3)}])
    yield ex
    exercises._REGISTRY.pop("_test_double")


def test_verdict_messages(double, capsys):
    assert verdict("_test_double", lambda x: 2 * x)
    assert "has shape (1,); expected shape (3,)" in verdict("_test_double", lambda x: x[:1]).message
    assert "forget to return" in verdict("_test_double", lambda x: None).message
    assert "raised ZeroDivisionError" in verdict("_test_double", lambda x: 1 / 0).message
    assert "NaN or infinity" in verdict("_test_double", lambda x: x * np.nan).message
    assert "expected a function" in verdict("_test_double", 3).message

    def in_place(x):
        x *= 2
        return x

    assert "changed its input 'x' in place" in verdict("_test_double", in_place).message
    assert check("_test_double", lambda x: 3 * x) is None
    out = capsys.readouterr().out
    assert "case 1 of 1 failed" in out and "expected" in out and "got" in out


def test_unknown_exercise_lists_the_known_ones():
    with pytest.raises(ValueError, match="no exercise named 'nope'; known exercises: "):
        verdict("nope", print)


def test_in_place_changes_inside_a_dict_argument_are_caught():
    ex = register("_test_scale_dict", reference=lambda grads: {k: 2 * v for k, v in grads.items()},
                  cases=lambda rng: [{"grads": {"W": rng.standard_normal((2, 2))}}])
    try:
        def in_place(grads):
            for v in grads.values():
                v *= 2
            return grads

        assert "changed its input 'grads' in place" in verdict("_test_scale_dict", in_place).message
        assert verdict("_test_scale_dict", ex.reference)
    finally:
        exercises._REGISTRY.pop("_test_scale_dict")


def test_integer_results_can_be_required():
    register("_test_labels", reference=lambda y: y + 1, cases=lambda rng: [{"y": rng.integers(0, 3, 4)}],
             integer_result=True)
    try:
        assert verdict("_test_labels", lambda y: y + 1)
        assert "should hold integers; got dtype float64" in verdict("_test_labels", lambda y: (y + 1.0)).message
    finally:
        exercises._REGISTRY.pop("_test_labels")
