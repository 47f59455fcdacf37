"""Checkers for the book's code exercises.

Usage in a notebook::

    from bptt_lib.exercises import check
    check("tanh_derivative", tanh_derivative)

:func:`check` runs the reference solution and the student's function on the
same seeded inputs and prints a verdict: all cases passed; or which case failed
and how (expected versus got, a shape mismatch, an exception, "not implemented
yet"). It returns nothing, so a notebook cell shows the printed verdict only;
:func:`verdict` returns the :class:`Verdict` instead, for tests and scripts.

Each chapter registers its exercises in a module named after the chapter
(``bptt_lib.exercises.<chapter>``) with :func:`register`.
"""

from __future__ import annotations

import copy
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

__all__ = ["Exercise", "Verdict", "register", "exercise_names", "get", "check", "verdict"]


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
    """

    name: str
    reference: Callable
    cases: Callable[[np.random.Generator], list]
    rtol: float = 1e-9
    atol: float = 1e-12
    integer_result: bool = False
    seed: int = 2024


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
             integer_result: bool = False) -> Exercise:
    """Add an exercise to the registry (chapter modules call this at import)."""
    if name in _REGISTRY and _REGISTRY[name].reference is not reference:
        raise ValueError(f"an exercise named {name!r} is already registered")
    ex = Exercise(name, reference, cases, rtol, atol, integer_result)
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


def _fmt(value: Any) -> str:
    if isinstance(value, np.ndarray) or np.isscalar(value):
        return np.array2string(np.asarray(value), precision=6, suppress_small=True, threshold=20, edgeitems=3)
    return repr(value)


def _describe_inputs(case: dict) -> str:
    lines = []
    for key, value in case.items():
        if isinstance(value, np.ndarray) and value.size > 6:
            lines.append(f"    {key}: array of shape {value.shape}")
        else:
            lines.append(f"    {key} = {_fmt(value)}")
    return "\n".join(lines)


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
    if ex.integer_result and np.asarray(got).dtype.kind not in "iu":
        return f"{where} should hold integers; got dtype {np.asarray(got).dtype}"
    try:
        got_arr = np.asarray(got, dtype=float)
    except (TypeError, ValueError):
        return f"{where} should be a number or an array of numbers; got {type(got).__name__}"
    exp_arr = np.asarray(expected, dtype=float)
    if got_arr.shape != exp_arr.shape:
        return f"{where} has shape {got_arr.shape}; expected shape {exp_arr.shape}"
    if not np.all(np.isfinite(got_arr)):
        return f"{where} contains NaN or infinity:\n    got      {_fmt(got_arr)}"
    if not np.allclose(got_arr, exp_arr, rtol=ex.rtol, atol=ex.atol):
        diff = np.abs(got_arr - exp_arr)
        worst = np.unravel_index(np.argmax(diff), diff.shape) if diff.ndim else ()
        return (
            f"{where} differs from the expected value"
            + (f" (largest difference at index {tuple(int(i) for i in worst)})" if worst else "")
            + f":\n    expected {_fmt(exp_arr)}\n    got      {_fmt(got_arr)}"
        )
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


def verdict(name: str, student_function: Callable) -> Verdict:
    """Run the checks of exercise ``name`` on ``student_function`` and return the :class:`Verdict`.

    Nothing is printed; ``bool(result)`` says whether every case passed and
    ``result.message`` says why not.
    """
    ex = get(name)
    if not callable(student_function):
        return Verdict(name, False, f"✗ {name}: expected a function, got {type(student_function).__name__}.")
    cases = ex.cases(np.random.default_rng(ex.seed))
    for i, case in enumerate(cases, start=1):
        expected = ex.reference(**_copy_case(case))
        given = _copy_case(case)
        header = f"✗ {name}: case {i} of {len(cases)} failed.\n  inputs:\n{_describe_inputs(case)}\n  "
        try:
            got = student_function(**given)
        except NotImplementedError:
            return Verdict(name, False, f"… {name}: not implemented yet (the function raises NotImplementedError).")
        except Exception as err:  # the student's bug, reported rather than raised
            return Verdict(name, False, header + f"your function raised {type(err).__name__}: {err}")
        for key, value in case.items():
            if not _same(value, given[key]):
                return Verdict(name, False, header + f"your function changed its input {key!r} in place.")
        problem = _compare(expected, got, ex)
        if problem:
            return Verdict(name, False, header + problem)
    return Verdict(name, True, f"✓ {name}: all {len(cases)} cases passed.")


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
