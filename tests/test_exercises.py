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
    assert "first wrong entry: result[0], expected" in out


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
        message = verdict("_test_labels", lambda y: (y + 1.0)).message
        assert "should hold integers (this exercise asks for whole numbers); got an array of dtype float64" in message
    finally:
        exercises._REGISTRY.pop("_test_labels")


# --- checkers that teach: registered mistakes ------------------------------------------

MISTAKES = [(name, m.description) for name in NAMES for m in get(name).mistakes]


def _mistake(name, description):
    (mistake,) = [m for m in get(name).mistakes if m.description == description]
    return mistake


def _cases(name):
    ex = get(name)
    return ex.cases(np.random.default_rng(ex.seed))


@pytest.mark.parametrize("name", NAMES)
def test_every_exercise_registers_common_mistakes(name):
    assert 2 <= len(get(name).mistakes) <= 5


@pytest.mark.parametrize("name, description", MISTAKES)
def test_each_mistake_differs_from_the_reference_on_the_cases(name, description):
    """Otherwise the checker could not see it: the cases must expose every registered mistake."""
    ex, mistake = get(name), _mistake(name, description)
    differ = [exercises._compare(ex.reference(**exercises._copy_case(c)), mistake.function(**exercises._copy_case(c)),
                                 ex) is not None for c in _cases(name)]
    assert any(differ)


@pytest.mark.parametrize("name, description", MISTAKES)
def test_each_mistake_is_rejected_and_named(name, description):
    result = verdict(name, _mistake(name, description).function)
    assert not result
    assert f"It looks like {description}." in result.message
    # The first registered mistake that matches is named; the test shows it is this one.
    others = [m.description for m in get(name).mistakes if m.description != description]
    assert not any(f"It looks like {d}." in result.message for d in others)
    assert len(result.message.splitlines()) <= 15, result.message


@pytest.mark.parametrize("name", NAMES)
def test_verdicts_of_unnamed_wrong_answers_are_short(name):
    reference, integer = get(name).reference, get(name).integer_result

    def off(**kwargs):
        out = reference(**kwargs)
        if isinstance(out, dict):
            return {k: np.asarray(v) * 1.5 for k, v in out.items()}
        return np.asarray(out) + 1 if integer else np.asarray(out) * 1.5 + 0.25

    result = verdict(name, off)
    assert not result and "It looks like" not in result.message
    assert len(result.message.splitlines()) <= 15, result.message

    def crashes(**kwargs):
        raise ValueError("operands could not be broadcast together " * 20)

    result = verdict(name, crashes)
    assert not result and "raised ValueError" in result.message and "..." in result.message
    assert len(result.message.splitlines()) <= 15, result.message


def _grad_h(yhat, y, h, W, V, *, bug=None):
    """The book's solution of vector_bptt_grad_h, with an optional planted bug."""
    T, B, K = yhat.shape
    grad_o = (yhat - np.eye(K)[y]) / (1 if bug == "mean" else B)
    grad_h = np.empty((T, B, W.shape[0]))
    grad_h[T - 1] = grad_o[T - 1] @ V
    for t in reversed(range(T - 1)):
        A = W.T if bug in ("W", "mean") else W
        grad_h[t] = (grad_h[t + 1] * (1 - h[t + 2] ** 2)) @ A + grad_o[t] @ V
        if bug == "entry" and t == 1:
            grad_h[t, 0, 2] += 1e-3
    return grad_h


def test_named_mistake_of_the_recursion():
    result = verdict("vector_bptt_grad_h", lambda **kw: _grad_h(**kw, bug="W"))
    assert "It looks like W was used where Wᵀ belongs" in result.message
    assert "agrees with that mistake on all 3 cases" in result.message


def test_two_mistakes_at_once_are_located_not_named():
    message = verdict("vector_bptt_grad_h", lambda **kw: _grad_h(**kw, bug="mean")).message
    assert "It looks like" not in message
    # Case 1 has B = 1 and T = 1, where both mistakes vanish; case 2 has T = 4, B = 3. The 1/B error
    # shows at the last step already, where the backward recursion starts.
    assert "case 2 of 3 failed" in message
    assert "first wrong entry at t=4, where the recursion starts: result[3, 0, 0]" in message


def test_a_wrong_entry_is_located_in_time_and_index():
    message = verdict("vector_bptt_grad_h", lambda **kw: _grad_h(**kw, bug="entry")).message
    # Case 2 (T = 4): grad_h[1] (t = 2) is wrong at [0, 2]; the recursion carries the error to t = 1.
    assert "case 2 of 3 failed" in message
    assert "first wrong entry at t=2 (t=3..4 agree; the recursion runs backwards from t=4): result[1, 0, 2]" in message
    assert "in 4 of 36 entries" in message  # grad_h[1, 0, 2] and the three units of grad_h[0, 0]
    assert "[[" not in message.split("inputs:")[1].split("\n  result")[1]  # no tensor printed


def test_forward_time_axis_reports_the_agreeing_steps():
    def dh_dw(w, u, h0, x):
        out = get("total_loss_dh_dw").reference(w, u, h0, x)
        out[2:] *= 1.01   # wrong from t = 2 on
        return out

    message = verdict("total_loss_dh_dw", dh_dw).message
    assert "case 2 of 4 failed" in message and "first wrong entry at t=2 (t=0..1 agree): result[2]" in message


def test_a_count_given_as_a_float_is_rejected_with_a_sentence():
    def as_float(D, H, K, T):
        return T * (H * D + H * H + K * H + H + K) / 1

    message = verdict("n_parameters_untied", as_float).message
    assert "should hold integers (this exercise asks for whole numbers); got a float (5.0)" in message
    assert "// instead of /" in message
    assert verdict("n_parameters_untied", lambda D, H, K, T: T * (H * D + H * H + K * H + H + K))
    assert verdict("n_parameters_untied", lambda D, H, K, T: np.int64(T * (H * D + H * H + K * H + H + K)))
    assert "got booleans" in verdict("n_parameters_untied", lambda D, H, K, T: True).message
    targets = get("long_term_recall_targets").reference
    message = verdict("long_term_recall_targets", lambda x, gap: targets(x, gap).astype(float)).message
    assert "should hold integers" in message and "dtype float64" in message


# --- a student's function that raises anything -------------------------------------------------


def test_sys_exit_is_reported_not_raised():
    import sys

    def quits(x):
        sys.exit(3)

    register("_test_exit", reference=lambda x: x, cases=lambda rng: [{"x": np.ones(2)}])
    try:
        message = verdict("_test_exit", quits).message
        assert "called sys.exit() (SystemExit: 3)" in message and "not stop the program" in message
        assert "in quits: sys.exit(3)" in message   # the line of the student's code
    finally:
        exercises._REGISTRY.pop("_test_exit")


class _Custom(BaseException):
    pass


@pytest.mark.parametrize("error", [SystemExit(0), SystemExit("bye"), GeneratorExit(), _Custom("odd"),
                                   RecursionError("deep"), MemoryError()])
def test_any_base_exception_is_reported(double, error):
    def raises(x):
        raise error

    result = verdict("_test_double", raises)
    assert not result and "case 1 of 1 failed" in result.message
    assert type(error).__name__ in result.message


def test_keyboard_interrupt_still_stops_the_check(double):
    def interrupted(x):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        verdict("_test_double", interrupted)


def test_an_exception_in_a_later_case_while_matching_mistakes_is_safe():
    ex = get("vector_bptt_grad_h")
    calls = []

    def wrong_then_raises(**kw):
        calls.append(1)
        if len(calls) == 3:
            raise SystemExit(1)
        return _grad_h(**kw, bug="W")

    message = verdict("vector_bptt_grad_h", wrong_then_raises).message
    assert "It looks like" not in message and "case 2 of 3 failed" in message and len(ex.mistakes) == 5


def test_not_implemented_message_is_exact(double):
    def stub(x):
        raise NotImplementedError("Write f")

    assert verdict("_test_double", stub).message == \
        "… _test_double: not implemented yet (the function raises NotImplementedError)."


def test_a_result_that_is_not_numbers_is_reported(double):
    assert "should be a number or an array of numbers" in verdict("_test_double", lambda x: "2x").message
    assert "is complex" in verdict("_test_double", lambda x: 2 * x + 0j).message


# --- the book's own solutions ------------------------------------------------------------


def _book_solutions():
    """(notebook, exercise name, function source) for every check cell of the book."""
    import ast
    import re
    from pathlib import Path

    import nbformat

    found = []
    for path in sorted((Path(__file__).resolve().parents[1] / "book").glob("*.ipynb")):
        cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        defs = {}
        for cell in cells:
            if "solution" in cell.metadata.get("tags", []):
                tree = ast.parse(cell.source)
                for node in tree.body:
                    if isinstance(node, ast.FunctionDef):
                        defs[node.name] = ast.get_source_segment(cell.source, node)
        for cell in cells:
            for name, fn in re.findall(r'^check\("(\w+)",\s*(\w+)\)', cell.source, re.M):
                found.append(pytest.param(name, defs[fn], id=f"{path.stem}-{name}"))
    return found


@pytest.mark.parametrize("name, source", _book_solutions())
def test_the_books_solutions_pass(name, source):
    namespace = {"np": np}
    exec(source, namespace)
    (fn,) = [v for k, v in namespace.items() if callable(v) and k != "np"]
    result = verdict(name, fn)
    assert result, result.message


def test_every_exercise_has_a_solution_in_the_book():
    assert {p.values[0] for p in _book_solutions()} == set(NAMES)


def test_a_later_stub_while_matching_mistakes_keeps_the_failure(double):
    calls = []

    def wrong_then_stub(x):
        calls.append(1)
        if len(calls) > 1:
            raise NotImplementedError
        return 3 * x

    register("_test_two_cases", reference=lambda x: 2 * x,
             cases=lambda rng: [{"x": rng.standard_normal(3)}, {"x": rng.standard_normal(3)}],
             mistakes={"x was tripled": lambda x: 3 * x})
    try:
        message = verdict("_test_two_cases", wrong_then_stub).message
        assert "case 1 of 2 failed" in message and "It looks like" not in message
        assert verdict("_test_two_cases", lambda x: 3 * x).message.startswith(
            "✗ _test_two_cases: case 1 of 2 failed. It looks like x was tripled.")
    finally:
        exercises._REGISTRY.pop("_test_two_cases")


def test_mistake_descriptions_are_clauses():
    with pytest.raises(ValueError, match="a clause without a final period"):
        register("_test_bad", reference=abs, cases=lambda rng: [], mistakes={"x was negated.": lambda x: -x})
    with pytest.raises(TypeError, match="must be a function"):
        register("_test_bad", reference=abs, cases=lambda rng: [], mistakes={"x was negated": 3})
    assert "_test_bad" not in exercises._REGISTRY
