r"""Activation functions and their derivatives, derived with SymPy.

Backpropagation stores the *output* of an activation, not its input, so each
derivative is rewritten in terms of the output:

.. math::

    \frac{d}{da}\tanh a = 1 - \tanh^2 a = 1 - h^2,

    \frac{d}{da}\sigma(a) = \sigma(a)\,(1 - \sigma(a)) = s\,(1 - s).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import sympy as sp

__all__ = [
    "a", "h", "s", "g",
    "sigmoid", "ACTIVATIONS",
    "derivative", "derivative_in_output", "prove_derivative_in_output",
    "derivative_peak", "vjp",
]

a = sp.Symbol("a", real=True)
"""The pre-activation, a real scalar."""
h = sp.Symbol("h", real=True)
"""The output of tanh, ``h = tanh(a)``."""
s = sp.Symbol("s", real=True)
"""The output of the logistic sigmoid, ``s = sigma(a)``."""
g = sp.Symbol("g", real=True)
"""An upstream gradient, the derivative of the loss with respect to the output."""


def sigmoid(z):
    """The logistic sigmoid ``1 / (1 + exp(-z))`` as a SymPy expression."""
    return 1 / (1 + sp.exp(-z))


@dataclass(frozen=True)
class _Activation:
    name: str
    of_a: sp.Expr          # the function, as an expression in a
    output: sp.Symbol      # the symbol that stands for its output
    in_output: sp.Expr     # the derivative, stated in terms of the output


ACTIVATIONS = {
    "tanh": _Activation("tanh", sp.tanh(a), h, 1 - h**2),
    "sigmoid": _Activation("sigmoid", sigmoid(a), s, s * (1 - s)),
}
"""The activations the book uses, by name."""


def _get(name: str) -> _Activation:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {name!r}") from None


def derivative(name: str) -> sp.Expr:
    """``d phi / da`` as SymPy computes it from the definition, in terms of ``a``."""
    act = _get(name)
    return sp.diff(act.of_a, a)


def derivative_in_output(name: str) -> sp.Expr:
    """The derivative written in terms of the activation's output (``1 - h**2``, ``s*(1 - s)``)."""
    return _get(name).in_output


def prove_derivative_in_output(name: str) -> bool:
    """Prove that :func:`derivative_in_output`, with the output substituted back, equals :func:`derivative`."""
    act = _get(name)
    difference = derivative(name) - act.in_output.subs(act.output, act.of_a)
    return sp.simplify(difference) == 0


@functools.cache
def derivative_peak(name: str) -> tuple[sp.Expr, sp.Expr]:
    """Where the derivative is largest over the real line, and its value there.

    Returns ``(argmax, maximum)``, both exact: ``(0, 1)`` for tanh, ``(0, 1/4)``
    for the sigmoid. SymPy finds the maximum over all reals; the argmax is the
    real root of the second derivative. Cached: ``sympy.maximum`` takes most of a second.
    """
    d = derivative(name)
    maximum = sp.maximum(d, a, sp.Reals)
    roots = sp.solveset(sp.diff(d, a), a, sp.Reals)
    argmax = [r for r in roots if sp.simplify(d.subs(a, r) - maximum) == 0]
    if len(argmax) != 1:
        raise ArithmeticError(f"expected one maximiser of {name}'; found {argmax}")
    return argmax[0], maximum


def vjp(name: str) -> sp.Expr:
    """The backward rule of an elementwise activation: ``g * phi'(a)`` in terms of the output.

    Applied to arrays, this is an elementwise product: the Jacobian of an
    elementwise map is diagonal, and a diagonal matrix times a vector is the
    elementwise product of its diagonal with the vector.
    """
    return g * derivative_in_output(name)
