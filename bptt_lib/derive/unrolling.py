r"""The unrolled recurrent network as one nested expression.

The recurrence :math:`h^{(t)} = \tanh(b + W h^{(t-1)} + U x^{(t)})` applied
``T`` times is a single composite function of the initial state, the inputs
and the shared parameters. :func:`unroll` builds it by substitution, so that

.. math::

    h^{(3)} = \tanh\!\Big(b + W \tanh\!\big(b + W \tanh(b + W h^{(0)} + U x^{(1)}) \\
              + U x^{(2)}\big) + U x^{(3)}\Big).

With ``n_in = n_hidden = 1`` every quantity is a scalar symbol and the nesting
is easy to read; with explicit sizes of 2 or 3 every entry is a named symbol.

One step is not written here: :func:`unroll` calls
:func:`bptt_lib.derive.rnn_step.step`, the book's canonical symbolic step, and
the parameter entries carry that module's names (``W_12``, ``U_11``, ``b_1``).
What this module adds is the bookkeeping over time: inputs and the initial
state carry time superscripts (:math:`x^{(2)}_{1}`, :math:`h^{(0)}`), which
:func:`bptt_lib.derive.rnn_step.explicit_symbols` (one step, no time index)
does not provide, and at size one the symbols are plain scalars (``W``, not
``W_11``) so that the nesting reads like the equation.
:func:`misprinted_h3` returns the version of :math:`h^{(3)}` printed in a
source article, in which the input term of step 2 carries a hidden state
instead of :math:`x^{(2)}`, so that the book can show what is wrong with it.
"""

from __future__ import annotations

from types import SimpleNamespace

import sympy as sp

from ..validation import positive_int
from . import rnn_step

__all__ = ["unrolled_symbols", "unroll", "misprinted_h3", "parameter_symbols_per_step"]


def _vector(name: str, n: int, time: int | None = None) -> sp.Matrix:
    """A column of real symbols; scalar-looking names when ``n == 1``."""
    sup = "" if time is None else f"^{{({time})}}"
    if n == 1:
        return sp.Matrix([[sp.Symbol(f"{name}{sup}", real=True)]])
    return sp.Matrix(n, 1, lambda i, _: sp.Symbol(f"{name}{sup}_{{{i + 1}}}", real=True))


def _matrix(name: str, rows: int, cols: int) -> sp.Matrix:
    """A parameter matrix: one scalar symbol at size 1x1, else the entries of :mod:`rnn_step` (``W_12``)."""
    if rows == cols == 1:
        return sp.Matrix([[sp.Symbol(name, real=True)]])
    return rnn_step._matrix(name, rows, cols)


def unrolled_symbols(T: int = 3, n_in: int = 1, n_hidden: int = 1) -> SimpleNamespace:
    """Named real symbols for an RNN unrolled over ``T`` steps, for one example.

    Parameters
    ----------
    T : int
        Number of time steps, 1 to 5.
    n_in, n_hidden : int
        Explicit sizes ``D`` and ``H``, 1 to 3. With both equal to 1 the
        symbols are scalars named ``W``, ``U``, ``b``, ``x^{(t)}``, ``h^{(0)}``.

    Returns
    -------
    SimpleNamespace
        ``W`` (H, H), ``U`` (H, D), ``b`` (H, 1), ``h0`` (H, 1) and ``x``, a
        list of ``T`` columns (D, 1) with ``x[t - 1]`` standing for
        :math:`x^{(t)}`; all are ``sympy.Matrix``. Also ``T``, ``D``, ``H``.
    """
    T = positive_int("T", T, low=1, high=5)
    n_in = positive_int("n_in", n_in, low=1, high=3)
    n_hidden = positive_int("n_hidden", n_hidden, low=1, high=3)
    return SimpleNamespace(
        W=_matrix("W", n_hidden, n_hidden),
        U=_matrix("U", n_hidden, n_in),
        b=_matrix("b", n_hidden, 1),
        h0=_vector("h", n_hidden, 0),
        x=[_vector("x", n_in, t) for t in range(1, T + 1)],
        T=T, D=n_in, H=n_hidden,
    )


def unroll(sym: SimpleNamespace) -> list[sp.Matrix]:
    r"""The hidden states :math:`h^{(0)}, \dots, h^{(T)}` as nested expressions.

    Each state is the previous *expression* substituted into one step
    :math:`\tanh(b + W h + U x^{(t)})` (:func:`bptt_lib.derive.rnn_step.step`),
    so ``unroll(sym)[T]`` depends only on ``h0``, the inputs ``x`` and the
    shared ``W``, ``U``, ``b``.

    Returns
    -------
    list of sympy.Matrix
        ``T + 1`` columns of shape (H, 1); element ``t`` is :math:`h^{(t)}`.
    """
    if not isinstance(sym, SimpleNamespace) or not all(hasattr(sym, k) for k in ("W", "U", "b", "h0", "x")):
        raise TypeError(f"sym must be the namespace returned by unrolled_symbols; got {type(sym).__name__}")
    states = [sym.h0]
    # rnn_step.step also computes the output o = c + V h; a zero V and c make that a no-op here.
    no_output = {"V": sp.zeros(1, sym.W.rows), "c": sp.zeros(1, 1)}
    for x_t in sym.x:
        one_step = SimpleNamespace(W=sym.W, U=sym.U, b=sym.b, h_prev=states[-1], x=x_t, **no_output)
        states.append(rnn_step.step(one_step).h)
    return states


def misprinted_h3() -> tuple[sp.Expr, sp.Symbol]:
    r"""The scalar :math:`h^{(3)}` as printed in a source article, biases dropped.

    The article's third unrolled line reads, in the book's letters,
    :math:`\tanh\big(W \tanh(W \tanh(W h^{(0)} + U x^{(1)}) + U h^{(2)}) + U x^{(3)}\big)`:
    the input term of the middle step is :math:`U h^{(2)}` where it should be
    :math:`U x^{(2)}`.

    Returns
    -------
    expr : sympy.Expr
        The misprinted expression (scalar, no biases).
    h2 : sympy.Symbol
        The stray symbol :math:`h^{(2)}` that appears in it.
    """
    sym = unrolled_symbols(3, 1, 1)
    W, U = sym.W[0], sym.U[0]
    h0 = sym.h0[0]
    x1, _, x3 = (x[0] for x in sym.x)
    h2 = sp.Symbol("h^{(2)}", real=True)
    return sp.tanh(W * sp.tanh(W * sp.tanh(W * h0 + U * x1) + U * h2) + U * x3), h2


def parameter_symbols_per_step(sym: SimpleNamespace) -> list[set]:
    r"""For each step ``t``, the parameter symbols that :math:`h^{(t)}` depends on.

    Weight sharing in one line: every :math:`h^{(t)}` with ``t >= 1`` uses the
    same set of parameter symbols, whatever ``t`` is.
    """
    params = set().union(*(M.free_symbols for M in (sym.W, sym.U, sym.b)))
    return [set(h.free_symbols) & params for h in unroll(sym)[1:]]
