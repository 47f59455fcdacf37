r"""Numerical derivatives of a scalar function of a dict of arrays.

Two independent checks of an analytic gradient:

- **central differences**, :math:`(f(\theta + \epsilon e_i) - f(\theta - \epsilon e_i)) / 2\epsilon`:
  truncation error :math:`O(\epsilon^2)`, round-off error about
  :math:`\varepsilon_{\text{mach}} |f| / \epsilon`; the default
  :math:`\epsilon = 10^{-6}` balances the two near a relative error of
  :math:`10^{-9}` to :math:`10^{-10}` for smooth functions of order one.
- **the complex step**, :math:`\operatorname{Im} f(\theta + i\epsilon e_i) / \epsilon`:
  no subtraction, hence no cancellation, so with :math:`\epsilon = 10^{-30}`
  it is exact to round-off (relative error near :math:`10^{-15}`). It needs
  ``f`` to be complex-analytic in the parameters and to use no ``abs`` or
  comparisons on them: ``bptt_lib.rnn.loss`` is written that way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from .validation import require_keys

__all__ = ["central_difference", "complex_step", "relative_error", "compare"]


def _copy(params: Mapping, dtype) -> dict:
    if not isinstance(params, Mapping) or not params:
        raise TypeError(f"params must be a non-empty dict of arrays; got {type(params).__name__}")
    return {k: np.array(v, dtype=dtype) for k, v in params.items()}


def _scalar(value, name: str) -> complex:
    arr = np.asarray(value)
    if arr.shape != ():
        raise ValueError(f"{name} must return a scalar; got an array of shape {arr.shape}")
    return arr.item()


def _check_step(theta: dict, eps: float) -> None:
    """Raise ``ValueError`` if ``x + eps`` or ``x - eps`` rounds back to ``x`` for some entry.

    The difference quotient would then be computed from a step that is not
    ``eps`` (or is zero), and the derivative would be silently wrong.
    """
    for key, arr in theta.items():
        lost = ((arr + eps == arr) | (arr - eps == arr)) & np.isfinite(arr)
        if np.any(lost):
            index = tuple(int(i) for i in np.argwhere(lost)[0])
            value = float(arr[index])
            sign = "+" if value + eps == value else "-"
            raise ValueError(
                f"eps={float(eps)!r} is too small for params[{key!r}]{list(index) if index else ''} = {value!r}: "
                f"x {sign} eps == x in float64 (the step is lost to rounding); eps must be well above the "
                f"float64 spacing {float(np.spacing(abs(value))):.3g} there"
            )


def central_difference(f: Callable[[dict], float], params: Mapping, eps: float = 1e-6, *,
                       allow_lost_step: bool = False) -> dict:
    """Gradient of ``f`` at ``params`` by central differences with step ``eps``.

    Costs two evaluations of ``f`` per parameter entry.

    Raises
    ------
    ValueError
        If ``eps`` is not positive, or so small that ``x + eps == x`` (or
        ``x - eps == x``) in float64 for some entry ``x``: the quotient would be
        silently wrong there (zero if both steps are lost). Pass
        ``allow_lost_step=True`` to compute it anyway, e.g. to show round-off.
    """
    if not eps > 0:
        raise ValueError(f"eps must be positive; got {eps!r}")
    theta = _copy(params, np.float64)
    if not allow_lost_step:
        _check_step(theta, eps)
    grads = {}
    for key, arr in theta.items():
        grad = np.empty_like(arr)
        for i in np.ndindex(arr.shape):
            saved = arr[i]
            arr[i] = saved + eps
            up = _scalar(f(theta), "f")
            arr[i] = saved - eps
            down = _scalar(f(theta), "f")
            arr[i] = saved
            grad[i] = (up - down) / (2 * eps)
        grads[key] = grad
    return grads


def complex_step(f: Callable[[dict], complex], params: Mapping, eps: float = 1e-30) -> dict:
    """Gradient of ``f`` at ``params`` by the complex-step derivative.

    Costs one complex evaluation of ``f`` per parameter entry.
    """
    if not eps > 0:
        raise ValueError(f"eps must be positive; got {eps!r}")
    theta = _copy(params, np.complex128)
    grads = {}
    for key, arr in theta.items():
        grad = np.empty(arr.shape)
        for i in np.ndindex(arr.shape):
            saved = arr[i]
            arr[i] = saved + 1j * eps
            grad[i] = np.imag(_scalar(f(theta), "f")) / eps
            arr[i] = saved
        grads[key] = grad
    return grads


def relative_error(analytic: np.ndarray, numeric: np.ndarray, floor: float = 1e-12) -> float:
    r"""``max |a - n| / max(max |a|, max |n|, floor)`` over all entries of one array.

    The error is measured against the array's largest entry rather than entry by
    entry: an entry that is tiny because of cancellation would otherwise report
    a large relative error that says nothing about the gradient. The floor
    keeps an all-zero gradient from dividing by zero.
    """
    analytic, numeric = np.asarray(analytic), np.asarray(numeric)
    if analytic.shape != numeric.shape:
        raise ValueError(f"shapes differ: analytic {analytic.shape}, numeric {numeric.shape}")
    if analytic.size == 0:
        raise ValueError(f"analytic and numeric must have at least one entry to compare; got shape {analytic.shape}")
    scale = max(float(np.max(np.abs(analytic))), float(np.max(np.abs(numeric))), floor)
    return float(np.max(np.abs(analytic - numeric)) / scale)


def compare(analytic: Mapping, numeric: Mapping) -> dict:
    """Relative error per key; both dicts must have the same keys and shapes."""
    require_keys("numeric", numeric, list(analytic))
    return {k: relative_error(analytic[k], numeric[k]) for k in analytic}
