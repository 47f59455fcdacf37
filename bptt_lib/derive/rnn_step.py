r"""One step of the vanilla RNN, derived.

The book's notation (Goodfellow, Bengio & Courville, ch. 10), for one example:

.. math::

    a^{(t)} = b + W h^{(t-1)} + U x^{(t)}, \quad
    h^{(t)} = \tanh a^{(t)}, \quad
    o^{(t)} = c + V h^{(t)}, \quad
    \hat y^{(t)} = \operatorname{softmax}(o^{(t)}).

Two kinds of derivation live here.

*Explicit sizes, component by component* (:func:`step`, :func:`jacobian_h_prev`,
:func:`prove_jacobian`, :func:`prove_affine_vjps`): every entry is a named
symbol, SymPy differentiates each output component with respect to each input
component, and the result is proven equal to the compact matrix form.

*Symbolic sizes, matrix calculus* (:func:`batch_symbols`, :func:`affine_vjps`):
a batch of ``B`` examples is stacked as the rows of a matrix (row ``i`` is the
transpose of example ``i``'s column vector), so the affine map reads
``A = H_prev W^T + X U^T + 1_B b^T``; in code the row ``b^T`` is the
matrix symbol ``b`` of shape (1, H). Its vector-Jacobian products come
from differentiating the scalar ``trace(G^T A)`` with respect to each operand,
and these are the expressions :mod:`bptt_lib.kernels` generates code from.
"""

from __future__ import annotations

from types import SimpleNamespace

import sympy as sp

__all__ = [
    "explicit_symbols", "step", "jacobian_h_prev", "prove_jacobian",
    "batch_symbols", "hidden_preactivation", "output_affine",
    "affine_vjps", "prove_affine_vjps",
]


def _matrix(name: str, rows: int, cols: int) -> sp.Matrix:
    if cols == 1:
        return sp.Matrix(rows, 1, lambda i, _: sp.Symbol(f"{name}_{i + 1}", real=True))
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{name}_{i + 1}{j + 1}", real=True))


def _check_size(name: str, value: int, low: int = 1, high: int = 4) -> None:
    if not isinstance(value, int) or not (low <= value <= high):
        raise ValueError(
            f"{name} must be an int from {low} to {high} (explicit symbolic sizes stay small); got {value!r}"
        )


def explicit_symbols(n_in: int = 2, n_hidden: int = 2, n_out: int = 2) -> SimpleNamespace:
    """Matrices of named real symbols for one example of explicit size.

    Returns a namespace with ``W`` (H, H), ``U`` (H, D), ``b`` (H, 1),
    ``V`` (K, H), ``c`` (K, 1), ``h_prev`` (H, 1) and ``x`` (D, 1).
    """
    for name, value in (("n_in", n_in), ("n_hidden", n_hidden), ("n_out", n_out)):
        _check_size(name, value)
    H, D, K = n_hidden, n_in, n_out
    return SimpleNamespace(
        W=_matrix("W", H, H), U=_matrix("U", H, D), b=_matrix("b", H, 1),
        V=_matrix("V", K, H), c=_matrix("c", K, 1),
        h_prev=_matrix("h", H, 1), x=_matrix("x", D, 1),
    )


def step(sym: SimpleNamespace) -> SimpleNamespace:
    """The forward step for explicit symbols: ``a``, ``h = tanh(a)`` and ``o`` as column matrices."""
    a = sym.b + sym.W * sym.h_prev + sym.U * sym.x
    h = a.applyfunc(sp.tanh)
    o = sym.c + sym.V * h
    return SimpleNamespace(a=a, h=h, o=o)


def jacobian_h_prev(n_in: int = 2, n_hidden: int = 2) -> tuple[sp.Matrix, sp.Matrix]:
    r"""The Jacobian :math:`\partial h^{(t)} / \partial h^{(t-1)}`, two ways.

    Returns ``(componentwise, compact)``: the first is SymPy's entry-by-entry
    derivative of ``tanh(b + W h_prev + U x)``; the second is
    ``diag(1 - h**2) * W`` with ``h`` the same tanh expression.
    """
    sym = explicit_symbols(n_in, n_hidden)
    h = step(sym).h
    componentwise = h.jacobian(sym.h_prev)
    compact = sp.diag(*[1 - hi**2 for hi in h]) * sym.W
    return componentwise, compact


def prove_jacobian(n_in: int = 2, n_hidden: int = 3) -> bool:
    """True when SymPy simplifies ``componentwise - diag(1 - h^2) W`` to the zero matrix."""
    componentwise, compact = jacobian_h_prev(n_in, n_hidden)
    return sp.simplify(componentwise - compact) == sp.zeros(*compact.shape)


# --- symbolic sizes: a batch of examples stacked as rows -------------------------

T, B, D, H, K = sp.symbols("T B D H K", integer=True, positive=True)


def batch_symbols() -> SimpleNamespace:
    """Matrix symbols of symbolic size for one time step of a batch.

    Rows are examples: ``H_prev`` (B, H), ``X`` (B, D), ``Hid`` (B, H) for
    ``h^{(t)}``; parameters ``W`` (H, H), ``U`` (H, D), ``V`` (K, H), and the
    biases as rows, ``b`` (1, H) for :math:`b^\top` and ``c`` (1, K) for :math:`c^\top`; ``one_B`` (B, 1) is a column of ones that
    copies a bias to every row; ``G_a`` (B, H) and ``G_o`` (B, K) are upstream
    gradients.
    """
    M = sp.MatrixSymbol
    return SimpleNamespace(
        H_prev=M("H_prev", B, H), X=M("X", B, D), Hid=M("H", B, H),
        W=M("W", H, H), U=M("U", H, D), b=M("b", 1, H),
        V=M("V", K, H), c=M("c", 1, K),
        one_B=M("one_B", B, 1), G_a=M("G_a", B, H), G_o=M("G_o", B, K),
        sizes=SimpleNamespace(T=T, B=B, D=D, H=H, K=K),
    )


def hidden_preactivation(sym: SimpleNamespace) -> sp.MatrixExpr:
    """``A = H_prev W^T + X U^T + 1_B b^T``: row ``i`` is ``a^T`` for example ``i``."""
    return sym.H_prev * sym.W.T + sym.X * sym.U.T + sym.one_B * sym.b


def output_affine(sym: SimpleNamespace) -> sp.MatrixExpr:
    """``O = H V^T + 1_B c^T`` (``H`` here is the (B, H) batch of hidden states): row ``i`` is ``o^T`` for example ``i``."""
    return sym.Hid * sym.V.T + sym.one_B * sym.c


def affine_vjps(affine: sp.MatrixExpr, upstream: sp.MatrixSymbol, wrt) -> dict:
    r"""Vector-Jacobian products of an affine map, by matrix calculus.

    For a loss whose gradient with respect to ``affine`` is ``upstream``, the
    first-order change is :math:`\operatorname{tr}(G^\top \, dA)`, so the gradient
    with respect to an operand ``P`` is :math:`\partial \operatorname{tr}(G^\top A) / \partial P`.

    Returns a dict from each symbol in ``wrt`` to its gradient expression.
    """
    scalar = sp.Trace(upstream.T * affine)
    return {p: scalar.diff(p) for p in wrt}


def prove_affine_vjps(n_batch: int = 2, n_in: int = 2, n_hidden: int = 2) -> bool:
    """Prove the matrix-calculus VJPs of both affine maps entry by entry.

    At explicit sizes every matrix symbol becomes a grid of scalar entries
    (``W[0, 1]`` and so on). For ``L = sum_ij G_ij A_ij`` SymPy differentiates
    ``L`` with respect to every entry of every operand, and each grid of
    derivatives is checked against the compact expression from
    :func:`affine_vjps` expanded at the same size. The column ``one_B`` is
    left symbolic, so the proof holds for any bias-copying vector.
    """
    for name, value in (("n_batch", n_batch), ("n_in", n_in), ("n_hidden", n_hidden)):
        _check_size(name, value)
    sym = batch_symbols()
    sizes = {B: n_batch, D: n_in, H: n_hidden, K: n_in}
    cases = (
        (hidden_preactivation(sym), sym.G_a, [sym.W, sym.U, sym.b, sym.H_prev]),
        (output_affine(sym), sym.G_o, [sym.V, sym.c, sym.Hid]),
    )
    for affine, upstream, wrt in cases:
        A = affine.subs(sizes).as_explicit()
        G = upstream.subs(sizes).as_explicit()
        L = sum(G[i, j] * A[i, j] for i in range(A.rows) for j in range(A.cols))
        for p, compact in affine_vjps(affine, upstream, wrt).items():
            P = p.subs(sizes).as_explicit()
            componentwise = P.applyfunc(lambda entry: sp.diff(L, entry))
            if sp.simplify(componentwise - compact.subs(sizes).as_explicit()) != sp.zeros(*P.shape):
                return False
    return True
