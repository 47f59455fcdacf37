"""Input checks shared by the public functions of :mod:`bptt_lib`.

Every message names the argument, the expected shape (with its symbolic
dimensions, as the docstrings write them) and the shape that arrived.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "as_array", "require_keys", "require_finite", "check_finite_result",
    "positive_int", "positive_number",
]


def _describe(dims: Sequence[str], sizes: Mapping[str, int]) -> str:
    parts = [f"{d}={sizes[d]}" if d in sizes else d for d in dims]
    return "(" + ", ".join(parts) + ")"


def as_array(name: str, value, dims: Sequence[str], sizes: dict, *, kind: str = "float") -> np.ndarray:
    """Convert ``value`` to an array of the given rank and record or check its sizes.

    Parameters
    ----------
    name : str
        The argument's name, used in error messages.
    value : array_like
    dims : sequence of str
        Symbolic dimension names such as ``("T", "B", "D")``.
    sizes : dict
        Sizes already fixed by earlier arguments; new dimensions are added to it.
    kind : {"float", "int", "number"}
        ``"float"``: real floating point, returned as float64; ``"number"``: real
        or complex floating point (complex is allowed for the complex-step
        derivative); ``"int"``: integers.

    Raises
    ------
    TypeError
        For the wrong kind of number.
    ValueError
        For the wrong rank or a size that disagrees with ``sizes``.
    """
    arr = np.asarray(value)
    if kind == "int":
        if arr.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integers; got dtype {arr.dtype}")
    elif arr.dtype.kind == "c":
        if kind != "number":
            raise TypeError(f"{name} must be real floating point; got dtype {arr.dtype}")
        arr = arr.astype(np.complex128, copy=False)
    elif arr.dtype.kind in "fiub":
        arr = arr.astype(np.float64, copy=False)
    else:
        raise TypeError(f"{name} must be a numeric array; got dtype {arr.dtype}")
    if arr.ndim != len(dims):
        raise ValueError(
            f"{name} must have shape {_describe(dims, sizes)} ({len(dims)} dimensions); "
            f"got shape {arr.shape}"
        )
    for axis, (dim, n) in enumerate(zip(dims, arr.shape)):
        if dim in sizes and sizes[dim] != n:
            raise ValueError(
                f"{name} must have shape {_describe(dims, sizes)}; got shape {arr.shape} "
                f"(axis {axis}, {dim}, is {n}, expected {sizes[dim]})"
            )
        sizes.setdefault(dim, n)
        if n == 0:
            raise ValueError(f"{name} has an empty axis {dim}: shape {arr.shape}")
    return arr


def require_keys(name: str, mapping, keys: Sequence[str]) -> None:
    """Raise ``TypeError`` if ``mapping`` is not a mapping, ``KeyError`` naming any missing key."""
    if not isinstance(mapping, Mapping):
        raise TypeError(f"{name} must be a dict with keys {list(keys)}; got {type(mapping).__name__}")
    missing = [k for k in keys if k not in mapping]
    if missing:
        raise KeyError(f"{name} is missing key(s) {missing}; expected keys {list(keys)}")


def require_finite(name: str, arr: np.ndarray) -> None:
    """Raise ``ValueError`` if ``arr`` holds NaN or infinity."""
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name} holds a non-finite value ({arr[tuple(bad)]}) at index {tuple(int(i) for i in bad)}")


def check_finite_result(what: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Raise ``FloatingPointError`` if a computed result is non-finite, naming which."""
    for key, arr in arrays.items():
        if not np.isfinite(arr).all():
            raise FloatingPointError(
                f"{what}: {key} is not finite (overflow or invalid operation); "
                "check the parameter scale or clip the gradients"
            )


def positive_int(name: str, value, *, low: int = 1, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]``; Python and NumPy integers are accepted, bools are not."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int; got {type(value).__name__} {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be an int {bounds}; got {value}")
    return int(value)


def positive_number(name: str, value, *, allow_zero: bool = False) -> float:
    """``value`` as a finite float that is positive (or zero, if allowed)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__} {value!r}")
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be a {kind} finite number; got {value!r}")
    return float(value)
