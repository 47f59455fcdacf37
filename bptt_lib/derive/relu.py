r"""The rectified linear unit and its derivative, derived with SymPy.

.. math::

    \operatorname{relu}(a) = \max(0, a), \qquad
    \frac{d}{da}\operatorname{relu}(a) = H(a) =
    \begin{cases} 1 & a > 0 \\ 0 & a < 0 \end{cases}

SymPy differentiates ``Max(0, a)`` to the Heaviside step :math:`H(a)`, whose
value at the kink :math:`a = 0` is a convention (SymPy's default is
:math:`1/2`). The book takes :math:`H(0) = 0`, the choice of every deep-learning
library: the kink is a single point, and with it the derivative can be written
in terms of the *output* :math:`h = \operatorname{relu}(a)`, like the tanh and
sigmoid rules of :mod:`bptt_lib.derive.activations`:

.. math::

    \operatorname{relu}'(a) = [h > 0] = H(h), \qquad H(0) = 0.

So the backward pass needs only the stored hidden state, never the
pre-activation: :func:`vjp` is ``g * H(h)``.
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.latex import LatexPrinter

from .activations import a, g

__all__ = [
    "a", "h", "g", "relu", "derivative", "derivative_convention", "derivative_in_output",
    "prove_derivative", "prove_derivative_in_output", "vjp", "latex",
]

h = sp.Symbol("h", real=True)
"""The output of the ReLU, ``h = max(0, a)``."""

_p = sp.Symbol("p", positive=True)   # a stands for p (active side) or -p (inactive side)


def relu(z):
    """``max(0, z)`` as a SymPy expression."""
    return sp.Max(0, z)


def derivative() -> sp.Expr:
    """``d relu / da`` as SymPy computes it from the definition: ``Heaviside(a)``."""
    return sp.diff(relu(a), a)


def derivative_convention() -> sp.Expr:
    """The derivative with the book's value at the kink: ``Heaviside(a, 0)``, zero at ``a = 0``."""
    return sp.Heaviside(a, 0)


def derivative_in_output() -> sp.Expr:
    """The derivative written in terms of the output ``h = relu(a)``: ``Heaviside(h, 0)``, i.e. ``[h > 0]``."""
    return sp.Heaviside(h, 0)


def prove_derivative() -> bool:
    """SymPy's derivative equals :func:`derivative_convention` at every ``a != 0``.

    Checked on both sides of the kink with a symbol ``p > 0``: at ``a = p``
    both are 1, at ``a = -p`` both are 0. At ``a = 0`` they differ by the
    convention only (SymPy: 1/2, the book: 0), which is returned by neither check.
    """
    d, conv = derivative(), derivative_convention()
    return all(sp.simplify((d - conv).subs(a, side)) == 0 for side in (_p, -_p))


def prove_derivative_in_output() -> bool:
    """``[relu(a) > 0]`` equals :func:`derivative_convention` for every real ``a``, the kink included.

    Three cases cover the real line: ``a = p > 0``, ``a = -p < 0`` and ``a = 0``.
    """
    in_output = derivative_in_output().subs(h, relu(a))
    conv = derivative_convention()
    return all(sp.simplify((in_output - conv).subs(a, side)) == 0 for side in (_p, -_p, sp.Integer(0)))


def vjp() -> sp.Expr:
    """The backward rule of the elementwise ReLU, ``g * [h > 0]``, in terms of the output."""
    return g * derivative_in_output()


class _Printer(LatexPrinter):
    """SymPy's LaTeX printer with the Heaviside step spelled out (SymPy writes it as theta)."""

    def _print_Heaviside(self, expr, exp=None):
        arg = self._print(expr.args[0])
        if len(expr.args) == 2 and expr.args[1] == 0:
            text = rf"[{arg} > 0]"                                   # the book's convention, H(0) = 0
        else:
            text = rf"\operatorname{{Heaviside}}\left({arg}\right)"   # SymPy's, H(0) = 1/2
        return text if exp is None else rf"{text}^{{{exp}}}"


def latex(expr: sp.Expr) -> str:
    r"""LaTeX for ``expr`` with ``Heaviside(x, 0)`` as :math:`[x > 0]` and ``Heaviside(x)`` spelled out.

    SymPy's own printer writes the step as :math:`\theta(x)`, which the book
    uses for the clipping threshold.
    """
    return _Printer().doprint(expr)
