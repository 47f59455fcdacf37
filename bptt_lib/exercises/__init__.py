"""Checkers for the book's code exercises.

Usage in a notebook::

    from bptt_lib.exercises import check
    check("tanh_derivative", tanh_derivative)

:func:`check` runs the reference solution and the student's function on the
same seeded inputs and prints a verdict: all cases passed; or which case failed
and how. It returns nothing, so a notebook cell shows the printed verdict only;
:func:`verdict` returns the :class:`Verdict` instead, for tests and scripts.

A checker teaches rather than dumps tensors:

- each exercise registers the **common mistakes** of its task, as functions that
  make them. A wrong answer that equals one of them on every case is named in
  one sentence ("It looks like W was used where Wᵀ belongs.");
- any other wrong answer is located: the first entry that differs (in the
  order a recursion computes them, for results indexed by time), its expected
  and computed values, and the size of the error relative to the answer;
- a wrong kind of result is named (a float where the exercise asks for a whole
  number, ``None``, a wrong shape, NaN);
- an exception raised by the student's function, even ``SystemExit`` from
  ``sys.exit``, is reported, never raised into the notebook (only
  ``KeyboardInterrupt`` passes through, so a student can stop a slow cell).

Each chapter registers its exercises in a module named after the chapter
(``bptt_lib.exercises.<chapter>``) with :func:`register`.
"""

from __future__ import annotations

import copy
import importlib
import linecache
import pkgutil
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Exercise", "Mistake", "TimeAxis", "Verdict", "register", "exercise_names", "get", "check", "verdict"]


@dataclass(frozen=True)
class Mistake:
    """A common wrong answer to an exercise.

    Attributes
    ----------
    description : str
        What went wrong, worded to follow "It looks like" (no final period):
        ``"W was used where Wᵀ belongs"``.
    function : callable
        Takes the exercise's arguments and returns the wrong answer.
    """

    description: str
    function: Callable


@dataclass(frozen=True)
class TimeAxis:
    """How the first axis of a result is indexed by time (for locating the first wrong entry).

    Attributes
    ----------
    symbol : str
        The index's name in the prose, e.g. ``"t"``, ``"k"`` or ``"lag"``.
    offset : int
        Entry ``i`` of the first axis is ``symbol = i + offset``.
    backward : bool
        The recursion computes the last entry first (backpropagation through
        time), so the first wrong entry is searched from the end.
    """

    symbol: str = "t"
    offset: int = 0
    backward: bool = False


@dataclass(frozen=True)
class Exercise:
    """A code exercise: a reference function and seeded test cases.

    Attributes
    ----------
    name : str
        The name used in ``check(name, fn)``.
    reference : callable
        The correct function.
    cases : callable
        ``cases(rng)`` returns a list of keyword-argument dicts, one per test case.
    rtol, atol : float
        Tolerances for ``numpy.allclose``; the defaults suit float64 results of
        analytic formulas.
    integer_result : bool
        The result must hold integers (class labels, counts), not floats.
    mistakes : tuple of Mistake
        The common wrong answers the verdict names.
    time : TimeAxis, optional
        The first axis of the result is a time index.
    """

    name: str
    reference: Callable
    cases: Callable[[np.random.Generator], list]
    rtol: float = 1e-9
    atol: float = 1e-12
    integer_result: bool = False
    seed: int = 2024
    mistakes: tuple = ()
    time: TimeAxis | None = None


@dataclass(frozen=True)
class Verdict:
    """The result of :func:`check`: ``bool(verdict)`` is whether every case passed."""

    name: str
    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return f"Verdict({self.name!r}, passed={self.passed})"


_REGISTRY: dict[str, Exercise] = {}
_LOADED = False


def register(name: str, *, reference: Callable, cases: Callable, rtol: float = 1e-9, atol: float = 1e-12,
             integer_result: bool = False, mistakes: Mapping[str, Callable] | None = None,
             time: TimeAxis | None = None) -> Exercise:
    """Add an exercise to the registry (chapter modules call this at import).

    Parameters
    ----------
    name : str
    reference : callable
    cases : callable
        ``cases(rng)`` -> list of keyword-argument dicts.
    rtol, atol : float
    integer_result : bool
    mistakes : dict, optional
        ``{description: function}``: each common mistake, worded to follow
        "It looks like", and a function that makes it (same arguments as the
        reference). The tests check that each one differs from the reference on
        the cases and that the checker names it.
    time : TimeAxis, optional
        How the first axis of an array result is indexed by time.
    """
    if name in _REGISTRY and _REGISTRY[name].reference is not reference:
        raise ValueError(f"an exercise named {name!r} is already registered")
    listed = []
    for description, function in (mistakes or {}).items():
        if not isinstance(description, str) or not description or description.endswith("."):
            raise ValueError(f"a mistake's description must be a clause without a final period; got {description!r}")
        if not callable(function):
            raise TypeError(f"mistake {description!r} must be a function; got {type(function).__name__}")
        listed.append(Mistake(description, function))
    ex = Exercise(name, reference, cases, rtol, atol, integer_result, mistakes=tuple(listed), time=time)
    _REGISTRY[name] = ex
    return ex


def _load_all() -> None:
    global _LOADED
    if not _LOADED:
        for info in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{info.name}")
        _LOADED = True


def exercise_names() -> list[str]:
    """The names of all registered exercises, sorted."""
    _load_all()
    return sorted(_REGISTRY)


def get(name: str) -> Exercise:
    """The registered exercise called ``name``."""
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"no exercise named {name!r}; known exercises: {', '.join(sorted(_REGISTRY))}") from None


# --- formatting ------------------------------------------------------------------------


def _num(value) -> str:
    """A number in at most 6 significant digits."""
    value = np.asarray(value).item()
    if isinstance(value, (int, np.integer)):
        return str(value)
    return f"{value:.6g}"


def _fmt(value: Any) -> str:
    """A short one-line rendering of a small value."""
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if v != 0 and np.isfinite(v) and not 1e-4 <= abs(v) < 1e6:
            return np.format_float_scientific(v, precision=6, trim="0")
        return np.format_float_positional(v, precision=6, trim="0")
    if isinstance(value, np.ndarray) or np.isscalar(value):
        text = np.array2string(np.asarray(value), precision=6, suppress_small=True, threshold=20, edgeitems=3,
                               max_line_width=10**6)
        return " ".join(text.split())
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _describe_inputs(case: dict) -> str:
    lines = []
    for key, value in case.items():
        if isinstance(value, np.ndarray) and value.size > 6:
            lines.append(f"    {key}: array of shape {value.shape}")
        elif isinstance(value, dict):
            parts = [f"{k}: shape {np.shape(v)}" for k, v in value.items()]
            lines.append(f"    {key}: dict with " + ", ".join(parts))
        else:
            lines.append(f"    {key} = {_fmt(value)}")
    return "\n".join(lines)


def _index_text(index: tuple) -> str:
    return "[" + ", ".join(str(int(i)) for i in index) + "]"


def _first_difference(bad: np.ndarray, time: TimeAxis | None) -> tuple:
    """The index of the first wrong entry, in the order the computation produces them."""
    wrong = np.argwhere(bad)
    if time is None or bad.ndim == 0:
        return tuple(wrong[0])
    steps = wrong[:, 0]
    first_step = steps.max() if time.backward else steps.min()
    return tuple(wrong[steps == first_step][0])


def _where_in_time(index: tuple, shape: tuple, time: TimeAxis | None) -> str:
    """Where the first wrong entry lies in time, e.g. `` at t=3 (t=4..6 agree; ...)``, or ``""``."""
    if time is None or not index:
        return ""
    step = int(index[0]) + time.offset
    first, last = time.offset, shape[0] - 1 + time.offset
    s = time.symbol
    text = f" at {s}={step}"
    if time.backward:
        if step == last:
            return text + ", where the recursion starts"
        agree = f"{s}={last} agrees" if step + 1 == last else f"{s}={step + 1}..{last} agree"
        return text + f" ({agree}; the recursion runs backwards from {s}={last})"
    if step > first:
        agree = f"{s}={first} agrees" if step - 1 == first else f"{s}={first}..{step - 1} agree"
        return text + f" ({agree})"
    return text


def _value_difference(where: str, expected: np.ndarray, got: np.ndarray, ex: Exercise) -> str:
    """Where and by how much ``got`` differs from ``expected`` (same shape), in two lines at most."""
    bad = ~np.isclose(got, expected, rtol=ex.rtol, atol=ex.atol)
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    error = float(np.max(np.abs(got - expected)))
    if expected.size == 1:
        relative = f"{error / scale:.0%} of the expected value" if scale > 0 else "the expected value is 0"
        index = _index_text(np.unravel_index(0, expected.shape)) if expected.ndim else ""
        return (f"{where}{index} differs from the expected value: expected {_num(expected)}, got {_num(got)} "
                f"(error {_num(error)}, {relative}).")
    relative = f"{error / scale:.0%} of the largest expected entry" if scale > 0 else "the expected values are 0"
    index = _first_difference(bad, ex.time if where == "result" else None)
    time_text = _where_in_time(index, expected.shape, ex.time if where == "result" else None)
    return (
        f"{where} differs from the expected value in {int(bad.sum())} of {bad.size} entries; "
        f"largest error {_num(error)} ({relative}).\n"
        f"    first wrong entry{time_text}: {where}{_index_text(index)}, "
        f"expected {_num(expected[index])}, got {_num(got[index])}"
    )


def _integer_problem(where: str, got: Any) -> str | None:
    arr = np.asarray(got)
    if arr.dtype.kind in "iu":
        return None
    if arr.dtype.kind == "b":
        what = "booleans"
    elif arr.ndim == 0:
        what = f"a {type(got).__name__} ({arr.item()!r})"
    else:
        what = f"an array of dtype {arr.dtype}"
    return (f"{where} should hold integers (this exercise asks for whole numbers); got {what}: "
            "compute with integers (// instead of /, int(...)) or convert with .astype(int).")


def _compare(expected: Any, got: Any, ex: Exercise, where: str = "result") -> str | None:
    """None if ``got`` matches ``expected``, else a sentence saying how it differs."""
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"{where} should be a dict with keys {sorted(expected)}; got {type(got).__name__}"
        if set(got) != set(expected):
            return f"{where} should have keys {sorted(expected)}; got keys {sorted(got)}"
        for key in expected:
            problem = _compare(expected[key], got[key], ex, f"{where}[{key!r}]")
            if problem:
                return problem
        return None
    if isinstance(expected, tuple):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            return f"{where} should be a tuple of {len(expected)} items; got {_fmt(got)}"
        for i, (e, g) in enumerate(zip(expected, got)):
            problem = _compare(e, g, ex, f"{where}[{i}]")
            if problem:
                return problem
        return None
    if got is None:
        return f"{where} is None: did the function forget to return its result?"
    if ex.integer_result:
        problem = _integer_problem(where, got)
        if problem:
            return problem
    if np.iscomplexobj(got):
        return f"{where} is complex; expected real numbers"
    try:
        got_arr = np.asarray(got, dtype=float)
    except (TypeError, ValueError):
        return f"{where} should be a number or an array of numbers; got {type(got).__name__}"
    exp_arr = np.asarray(expected, dtype=float)
    if got_arr.shape != exp_arr.shape:
        return f"{where} has shape {got_arr.shape}; expected shape {exp_arr.shape}"
    if not np.all(np.isfinite(got_arr)):
        index = tuple(np.argwhere(~np.isfinite(got_arr))[0])
        at = f" (first at index {_index_text(index)})" if index else ""
        return f"{where} contains NaN or infinity{at}"
    if not np.allclose(got_arr, exp_arr, rtol=ex.rtol, atol=ex.atol):
        return _value_difference(where, exp_arr, got_arr, ex)
    return None


def _copy_case(case: dict) -> dict:
    return copy.deepcopy(case)


def _same(a: Any, b: Any) -> bool:
    """Exact equality of arguments, looking inside dicts, lists and tuples of arrays."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
    return True


# --- running the student's function -----------------------------------------------------


class _NotImplemented(Exception):
    pass


def _describe_exception(err: BaseException, fn: Callable) -> str:
    """One or two lines: what was raised and, if known, the line of the student's code."""
    text = " ".join(str(err).split())
    if len(text) > 160:
        text = text[:157] + "..."
    if isinstance(err, SystemExit):
        head = (f"your function called sys.exit() (SystemExit{': ' + text if text else ''}); "
                "a function should return its result, not stop the program")
    else:
        head = f"your function raised {type(err).__name__}" + (f": {text}" if text else "")
    filename = getattr(getattr(fn, "__code__", None), "co_filename", None)
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == filename]
    if frames:
        frame = frames[-1]
        line = linecache.getline(frame.filename, frame.lineno).strip() or frame.line
        if line:
            head += f"\n    in {frame.name}: {line}"
    return head


def _run(fn: Callable, case: dict) -> tuple[Any, str | None]:
    """``(result, None)``, or ``(None, problem)`` if ``fn`` raised or changed an input in place.

    Raises ``_NotImplemented`` for a stub. Every other exception, ``SystemExit``
    included, becomes a problem; only ``KeyboardInterrupt`` passes through.
    """
    given = _copy_case(case)
    try:
        got = fn(**given)
    except NotImplementedError:
        raise _NotImplemented from None
    except KeyboardInterrupt:
        raise
    except BaseException as err:  # the student's bug (even sys.exit), reported rather than raised
        return None, _describe_exception(err, fn)
    for key, value in case.items():
        if not _same(value, given[key]):
            return None, f"your function changed its input {key!r} in place."
    try:
        got = copy.deepcopy(got)  # a function that reuses one output buffer must not change earlier answers
    except Exception:
        pass
    return got, None


def _matching_mistake(ex: Exercise, cases: list, answers: list) -> Mistake | None:
    """The first registered mistake whose answers equal ``answers`` on every case."""
    for mistake in ex.mistakes:
        for case, got in zip(cases, answers):
            try:
                differs = _compare(mistake.function(**_copy_case(case)), got, ex) is not None
            except Exception:  # a mistake that cannot run on this case is not the one made
                break
            if differs:
                break
        else:
            return mistake
    return None


def verdict(name: str, student_function: Callable) -> Verdict:
    """Run the checks of exercise ``name`` on ``student_function`` and return the :class:`Verdict`.

    Nothing is printed; ``bool(result)`` says whether every case passed and
    ``result.message`` says why not (under about 15 lines).
    """
    ex = get(name)
    if not callable(student_function):
        return Verdict(name, False, f"✗ {name}: expected a function, got {type(student_function).__name__}.")
    cases = ex.cases(np.random.default_rng(ex.seed))
    n = len(cases)
    answers = []
    try:
        for i, case in enumerate(cases, start=1):
            header = f"✗ {name}: case {i} of {n} failed.\n  inputs:\n{_describe_inputs(case)}\n  "
            got, raised = _run(student_function, case)
            if raised:
                return Verdict(name, False, header + raised)
            answers.append(got)
            try:
                problem = _compare(ex.reference(**_copy_case(case)), got, ex)
            except Exception as err:  # a result NumPy cannot even read as numbers
                problem = f"result could not be read as numbers ({type(err).__name__}: {err})"
            if problem:
                break
        else:
            return Verdict(name, True, f"✓ {name}: all {n} cases passed.")
    except _NotImplemented:
        return Verdict(name, False, f"… {name}: not implemented yet (the function raises NotImplementedError).")
    # A wrong answer: does it match a common mistake on every case? Run the remaining cases.
    complete = True
    for case in cases[i:]:
        try:
            got, raised = _run(student_function, case)
        except _NotImplemented:
            raised = "not implemented"
        if raised:
            complete = False
            break
        answers.append(got)
    mistake = _matching_mistake(ex, cases, answers) if complete else None
    if mistake:
        return Verdict(name, False, f"✗ {name}: case {i} of {n} failed. It looks like {mistake.description}.\n"
                                    f"  Your function agrees with that mistake on all {n} cases. "
                                    f"Where case {i} first goes wrong:\n  " + problem)
    return Verdict(name, False, header + problem)


def check(name: str, student_function: Callable) -> None:
    """Check ``student_function`` against the reference for exercise ``name`` and print the verdict.

    Parameters
    ----------
    name : str
        The exercise's name, as given in the book.
    student_function : callable
        Your function. It is called with keyword arguments, one call per case.
    """
    print(verdict(name, student_function).message)
