r"""Softmax followed by the negative log-likelihood, derived.

For logits :math:`o \in \mathbb{R}^K` and a target class :math:`y`,

.. math::

    \hat y_k = \frac{e^{o_k}}{\sum_j e^{o_j}}, \qquad L = -\log \hat y_y, \qquad
    \frac{\partial L}{\partial o_k} = \hat y_k - [k = y].

For a batch of ``B`` examples whose losses are averaged, the gradient with
respect to the logit matrix ``O`` (B, K) is ``(Yhat - Y) / B`` with ``Y`` the
one-hot targets: that compact form is the expression the kernel is generated
from, and :func:`prove_gradient` proves it entry by entry.
"""

from __future__ import annotations

from types import SimpleNamespace

import sympy as sp

from .rnn_step import B, K

__all__ = ["logits", "softmax", "nll", "gradient_componentwise", "compact_gradient", "prove_gradient"]


def logits(n_classes: int = 3) -> sp.Matrix:
    """A column of ``n_classes`` real logit symbols ``o_1 .. o_K``."""
    if not isinstance(n_classes, int) or not 2 <= n_classes <= 5:
        raise ValueError(f"n_classes must be an int from 2 to 5; got {n_classes!r}")
    return sp.Matrix(n_classes, 1, lambda k, _: sp.Symbol(f"o_{k + 1}", real=True))


def softmax(o: sp.Matrix) -> sp.Matrix:
    """``exp(o_k) / sum_j exp(o_j)``, entry by entry."""
    denominator = sum(sp.exp(ok) for ok in o)
    return o.applyfunc(lambda ok: sp.exp(ok) / denominator)


def nll(o: sp.Matrix, target: int) -> sp.Expr:
    """``-log softmax(o)[target]`` (``target`` counts from 0, as in NumPy)."""
    return -sp.log(softmax(o)[target])


def gradient_componentwise(o: sp.Matrix, target: int) -> sp.Matrix:
    """SymPy's derivative of :func:`nll` with respect to each logit."""
    loss = nll(o, target)
    return o.applyfunc(lambda ok: sp.diff(loss, ok))


def compact_gradient() -> tuple[sp.MatrixExpr, SimpleNamespace]:
    """``(Yhat - Y) / B`` in matrix symbols, and the symbols: ``Yhat``, ``Y`` (B, K), ``B``."""
    sym = SimpleNamespace(Yhat=sp.MatrixSymbol("Yhat", B, K), Y=sp.MatrixSymbol("Y", B, K), B=B)
    return (sym.Yhat - sym.Y) / B, sym


def prove_gradient(n_classes: int = 3) -> bool:
    """Prove ``d(-log yhat_y)/d o = yhat - onehot(y)`` for every target class.

    The batch form follows because the batch loss is the mean of independent
    per-example losses: row ``i`` of the gradient is ``(yhat_i - onehot(y_i)) / B``.
    """
    o = logits(n_classes)
    yhat = softmax(o)
    for target in range(n_classes):
        onehot = sp.Matrix([int(k == target) for k in range(n_classes)])
        if sp.simplify(gradient_componentwise(o, target) - (yhat - onehot)) != sp.zeros(n_classes, 1):
            return False
    return True
