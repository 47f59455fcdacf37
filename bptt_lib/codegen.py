"""Turn derived SymPy expressions into NumPy functions.

The book's spine is *derive -> generate -> check*: every kernel that the training
code calls is produced here from an expression in :mod:`bptt_lib.derive`, never
typed in by hand. :func:`generate` wraps :func:`sympy.lambdify` with a printer
that keeps the generated code readable and keeps the derived expression and the
generated source on the function, so a reader can always see both.
"""

from __future__ import annotations

import inspect
from typing import Callable, Sequence

import sympy as sp
from sympy.printing.numpy import NumPyPrinter

__all__ = ["KernelPrinter", "generate", "source_of"]


class KernelPrinter(NumPyPrinter):
    """NumPy printer that writes ``scalar * (matrix product)``.

    SymPy 1.14's NumPy printer prints a scalar factor of a matrix product as
    ``.dot(-1)`` or ``.dot(B**(-1.0))``: correct, but unreadable in a book and
    an extra call in the hot path. Here scalar factors are split off and printed
    as an ordinary product.
    """

    def _print_MatMul(self, expr):
        scalars = [arg for arg in expr.args if not getattr(arg, "is_Matrix", False)]
        matrices = [arg for arg in expr.args if getattr(arg, "is_Matrix", False)]
        if not scalars:
            return super()._print_MatMul(expr)
        coeff = sp.Mul(*scalars)
        if len(matrices) == 1:
            body = self._print(matrices[0])
        else:
            body = super()._print_MatMul(sp.MatMul(*matrices))
        if coeff == -1:
            return f"-({body})"
        if coeff.is_Pow and coeff.exp == -1:
            return f"({body})/{self._print(coeff.base)}"
        return f"({self._print(coeff)})*({body})"


def generate(name: str, args: Sequence[sp.Basic], expr, doc: str = "") -> Callable:
    """Generate a NumPy function ``name(*args)`` that evaluates ``expr``.

    Parameters
    ----------
    name : str
        Name of the generated function (shown in tracebacks and in the book).
    args : sequence of sympy symbols or matrix symbols
        The function's parameters, in order.
    expr : sympy expression, or a tuple of them
        What the function returns; a tuple gives a tuple of arrays.
    doc : str
        A sentence saying what the kernel computes in the book's math.

    Returns
    -------
    callable
        The generated function. ``fn.expr`` is the SymPy expression it came from
        and ``source_of(fn)`` the Python source that SymPy printed.
    """
    if isinstance(expr, (list, tuple)):
        expr = tuple(expr)
    fn = sp.lambdify(list(args), expr, modules="numpy", printer=KernelPrinter, docstring_limit=0)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    fn.expr = expr
    fn.args = tuple(args)
    return fn


def source_of(fn: Callable) -> str:
    """The Python source of a generated kernel, with its book name."""
    src = inspect.getsource(fn)
    return src.replace("def _lambdifygenerated(", f"def {fn.__name__}(", 1)
