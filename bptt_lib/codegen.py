"""Turn derived SymPy expressions into NumPy functions.

The book's spine is *derive -> generate -> check*: every kernel that the training
code calls is produced here from an expression in :mod:`bptt_lib.derive`, never
typed in by hand. :func:`generate` wraps :func:`sympy.lambdify` with a printer
that keeps the generated code readable and keeps the derived expression and the
generated source on the function, so a reader can always see both.

:func:`generate_into` prints the same kind of expression for the time loops of
:mod:`bptt_lib.bptt`: the result is written into a given array (``out=``), and a
bias copied to every row by a column of ones is printed as NumPy broadcasting.
"""

from __future__ import annotations

import inspect
import linecache
from collections.abc import Callable, Sequence

import sympy as sp
from sympy.printing.numpy import NumPyPrinter

__all__ = ["KernelPrinter", "BroadcastPrinter", "generate", "generate_into", "source_of"]


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


class BroadcastPrinter(KernelPrinter):
    """:class:`KernelPrinter` that prints a column of ones times a row as the row itself.

    In the derivations a bias reaches every example of a batch as the product
    ``1_B b^T`` of a column of ones and a row. Inside a sum, NumPy's broadcasting
    adds the row ``b`` to every row exactly as that product does (each entry is
    ``1 * b_j = b_j``), without forming the product. ``ones`` holds the symbols
    that stand for columns of ones; a product with one on the left prints as the
    other factor.
    """

    def __init__(self, settings=None, ones=()):
        super().__init__(settings)
        self._ones = set(ones)

    def _print_MatMul(self, expr):
        if len(expr.args) == 2 and expr.args[0] in self._ones:
            return self._print(expr.args[1])
        return super()._print_MatMul(expr)


def generate_into(name: str, args: Sequence[sp.Basic], expr, doc: str = "", *, ones=()) -> Callable:
    """Generate ``name(*args, out=None)``: ``expr`` written into ``out`` (allocated if None).

    ``expr`` is a sum whose first term is a product of two matrices, ``A B + C + ...``;
    the generated code is ``out = numpy.matmul(A, B, out=out)`` followed by
    ``out += C`` for every other term, so that a time loop can write each step's
    result into its slot of a preallocated array with no temporary. ``ones`` are
    symbols for columns of ones, printed by :class:`BroadcastPrinter` (they are
    not arguments of the generated function).

    Returns
    -------
    callable
        As :func:`generate`: ``fn.expr``, ``fn.args`` and ``source_of(fn)``.
    """
    terms = list(expr.args) if isinstance(expr, sp.MatAdd) else [expr]
    products = [t for t in terms if isinstance(t, sp.MatMul) and len(t.args) == 2 and t.args[0] not in ones]
    if not products:
        raise ValueError(f"{name}: expected a sum with a product of two matrices; got {expr}")
    first = products[0]
    printer = BroadcastPrinter({"fully_qualified_modules": True}, ones=ones)
    names = [printer._print(a) for a in args]
    lines = [f"def {name}({', '.join(names)}, out=None):",
             f"    out = numpy.matmul({printer._print(first.args[0])}, {printer._print(first.args[1])}, out=out)"]
    lines += [f"    out += {printer._print(t)}" for t in terms if t is not first]
    lines.append("    return out")
    source = "\n".join(lines) + "\n"
    filename = f"<generated {name}>"
    namespace = {"numpy": __import__("numpy")}
    exec(compile(source, filename, "exec"), namespace)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    fn = namespace[name]
    fn.__doc__ = doc
    fn.expr = expr
    fn.args = tuple(args)
    return fn
