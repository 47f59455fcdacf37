r"""One step of the vanilla RNN, derived.

The book's notation (Goodfellow, Bengio & Courville, ch. 10), for one example:

.. math::

    a^{(t)} = b + W h^{(t-1)} + U x^{(t)}, \quad
    h^{(t)} = \tanh a^{(t)},

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

*The inductive step of BPTT, for every size* (:func:`tanh_vjp_entry`,
:func:`bptt_inductive_step`, :func:`bptt_step_entry`, :func:`prove_bptt_inductive_step`):
one step of the backward recursion, :math:`\nabla_{h^{(t)}} L = W^\top \Delta^{(t+1)}
\nabla_{h^{(t+1)}} L + V^\top \nabla_{o^{(t)}} L`, derived with matrix symbols and
indexed symbols whose sizes are symbols; the book's chapter on vector BPTT turns it
into a proof by induction for every ``T``, ``D``, ``H``, ``K``.
"""

from __future__ import annotations

from types import SimpleNamespace

import sympy as sp
from sympy.matrices.expressions.diagonal import DiagMatrix

__all__ = [
    "explicit_symbols", "step", "jacobian_h_prev", "prove_jacobian",
    "batch_symbols", "hidden_preactivation", "output_affine",
    "input_projection", "recurrent_preactivation", "prove_split_preactivation",
    "affine_vjps", "prove_affine_vjps",
    "inductive_step_symbols", "tanh_vjp_entry", "bptt_inductive_step", "bptt_step_entry",
    "prove_bptt_inductive_step",
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
    r"""Matrix symbols of symbolic size for one time step of a batch.

    Rows are examples: ``H_prev`` (B, H), ``X`` (B, D), ``Hid`` (B, H) for
    ``h^{(t)}``; parameters ``W`` (H, H), ``U`` (H, D), ``V`` (K, H), and the
    biases as rows, ``b`` (1, H) for :math:`b^\top` and ``c`` (1, K) for
    :math:`c^\top`; ``one_B`` (B, 1) is a column of ones that
    copies a bias to every row; ``G_a`` (B, H) and ``G_o`` (B, K) are upstream
    gradients; ``Xp`` (B, H) is the projected input ``X U^T + 1_B b^T`` of one step
    (see :func:`recurrent_preactivation`).
    """
    M = sp.MatrixSymbol
    return SimpleNamespace(
        H_prev=M("H_prev", B, H), X=M("X", B, D), Hid=M("H", B, H), Xp=M("X_p", B, H),
        W=M("W", H, H), U=M("U", H, D), b=M("b", 1, H),
        V=M("V", K, H), c=M("c", 1, K),
        one_B=M("one_B", B, 1), G_a=M("G_a", B, H), G_o=M("G_o", B, K),
        sizes=SimpleNamespace(T=T, B=B, D=D, H=H, K=K),
    )


def hidden_preactivation(sym: SimpleNamespace) -> sp.MatrixExpr:
    """``A = H_prev W^T + X U^T + 1_B b^T``: row ``i`` is ``a^T`` for example ``i``."""
    return sym.H_prev * sym.W.T + sym.X * sym.U.T + sym.one_B * sym.b


def output_affine(sym: SimpleNamespace) -> sp.MatrixExpr:
    """``O = H V^T + 1_B c^T`` (``H`` here is the (B, H) batch of hidden states): row ``i`` is
    ``o^T`` for example ``i``."""
    return sym.Hid * sym.V.T + sym.one_B * sym.c


def input_projection(sym: SimpleNamespace) -> sp.MatrixExpr:
    """``X_p = X U^T + 1_B b^T``: the part of the pre-activation that does not depend on the past.

    It needs no earlier state, so the time loop of :mod:`bptt_lib.bptt` computes it
    for many steps in one product (the rows of ``X`` are then every example of every step).
    """
    return sym.X * sym.U.T + sym.one_B * sym.b


def recurrent_preactivation(sym: SimpleNamespace) -> sp.MatrixExpr:
    """``A = H_prev W^T + X_p``: the pre-activation from the previous state and the projected input."""
    return sym.H_prev * sym.W.T + sym.Xp


def prove_split_preactivation() -> bool:
    """True when :func:`recurrent_preactivation` with ``X_p`` = :func:`input_projection`
    equals :func:`hidden_preactivation`, for symbolic sizes."""
    sym = batch_symbols()
    split = recurrent_preactivation(sym).subs(sym.Xp, input_projection(sym))
    return sp.simplify(split - hidden_preactivation(sym)) == sp.ZeroMatrix(B, H)


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
            componentwise = P.applyfunc(lambda entry, L=L: sp.diff(L, entry))
            if sp.simplify(componentwise - compact.subs(sizes).as_explicit()) != sp.zeros(*P.shape):
                return False
    return True


# --- the inductive step of the BPTT recursion, for every size ----------------------------


def inductive_step_symbols() -> SimpleNamespace:
    r"""Matrix symbols of symbolic size for one step of the backward recursion (one example, columns).

    ``h`` (H, 1) is :math:`h^{(t)}`, ``W`` (H, H), ``U`` (H, D), ``x`` (D, 1) is
    :math:`x^{(t+1)}`, ``b`` (H, 1), ``V`` (K, H), ``c`` (K, 1); ``g`` (H, 1) is the
    upstream gradient :math:`\nabla_{h^{(t+1)}} L`, ``eps`` (K, 1) is
    :math:`\nabla_{o^{(t)}} L`, ``G_a`` (H, 1) a gradient with respect to the
    pre-activation :math:`a^{(t+1)}`, and ``d`` (H, 1) the column
    :math:`1 - (h^{(t+1)})^2`, so that ``DiagMatrix(d)`` is :math:`\Delta^{(t+1)}`.
    The sizes ``H``, ``D``, ``K`` are symbols, not numbers.
    """
    M = sp.MatrixSymbol
    return SimpleNamespace(
        h=M("h^{(t)}", H, 1), W=M("W", H, H), U=M("U", H, D), x=M("x^{(t+1)}", D, 1),
        b=M("b", H, 1), V=M("V", K, H), c=M("c", K, 1),
        g=M(r"\nabla_{h^{(t+1)}} L", H, 1), eps=M(r"\nabla_{o^{(t)}} L", K, 1),
        G_a=M(r"\nabla_{a^{(t+1)}} L", H, 1), d=M("d^{(t+1)}", H, 1),
        Delta=M(r"\Delta^{(t+1)}", H, H),
        sizes=SimpleNamespace(H=H, D=D, K=K),
    )


def tanh_vjp_entry() -> tuple[sp.Expr, sp.Expr]:
    r"""The vector-Jacobian product of the elementwise tanh, entry :math:`i` of any size :math:`H`.

    With an indexed upstream gradient :math:`g` and pre-activation :math:`a`
    (``sympy.IndexedBase``), SymPy differentiates
    :math:`\sum_{j=1}^{H} g_j \tanh(a_j)` with respect to :math:`a_i` for a
    symbolic index :math:`i` and a symbolic size :math:`H`.

    Returns
    -------
    (derived, expected) : tuple of sympy expressions
        SymPy's derivative (after ``doit``) and
        :math:`g_i (1 - \tanh^2 a_i)` for :math:`1 \le i \le H` (zero outside),
        i.e. entry :math:`i` of :math:`\operatorname{diag}(1 - h^2)\, g` with :math:`h = \tanh a`.
    """
    i, j = sp.symbols("i j", integer=True)
    a, g = sp.IndexedBase("a"), sp.IndexedBase("g")
    derived = sp.Sum(g[j] * sp.tanh(a[j]), (j, 1, H)).diff(a[i]).doit()
    expected = sp.Piecewise((g[i] * (1 - sp.tanh(a[i]) ** 2), (i >= 1) & (i <= H)), (0, True))
    return derived, expected


def bptt_inductive_step() -> dict:
    r"""One step of the backward recursion, derived with matrix symbols of symbolic size.

    The part of the loss that depends on :math:`h^{(t)}` is
    :math:`\mathcal L_t(h^{(t)}) = L^{(t)}(c + V h^{(t)}) + \mathcal L_{t+1}(\tanh(b + W h^{(t)} + U x^{(t+1)}))`.
    Its first-order change is the trace
    :math:`\operatorname{tr}\big((\nabla_{a^{(t+1)}} L)^\top da^{(t+1)}\big)
    + \operatorname{tr}\big((\nabla_{o^{(t)}} L)^\top do^{(t)}\big)`,
    so SymPy differentiates each trace with respect to the matrix symbol ``h``
    (two separate derivatives: SymPy 1.14 returns zero for the derivative of a
    *sum* of two such traces). Then the tanh step's product
    :math:`\nabla_{a^{(t+1)}} L = \Delta^{(t+1)} \nabla_{h^{(t+1)}} L` (:func:`tanh_vjp_entry`)
    is substituted.

    Returns
    -------
    dict
        ``"through_a"``: :math:`W^\top \nabla_{a^{(t+1)}} L`; ``"through_o"``:
        :math:`V^\top \nabla_{o^{(t)}} L` (both as derived); ``"derived"``: their sum
        with ``DiagMatrix(d) * g`` substituted for ``G_a``; ``"compact"``: the
        recursion's right-hand side :math:`W^\top \Delta^{(t+1)} \nabla_{h^{(t+1)}} L + V^\top \nabla_{o^{(t)}} L`
        written directly; ``"symbols"``: :func:`inductive_step_symbols`.
    """
    s = inductive_step_symbols()
    a = s.b + s.W * s.h + s.U * s.x
    o = s.c + s.V * s.h
    through_a = sp.Trace(s.G_a.T * a).diff(s.h)
    through_o = sp.Trace(s.eps.T * o).diff(s.h)
    derived = (through_a + through_o).subs(s.G_a, DiagMatrix(s.d) * s.g)
    compact = s.W.T * DiagMatrix(s.d) * s.g + s.V.T * s.eps
    return {"through_a": through_a, "through_o": through_o, "derived": derived, "compact": compact,
            "symbols": s}


def bptt_step_entry() -> tuple[sp.Expr, sp.Expr]:
    r"""Entry :math:`i` of the inductive step for symbolic sizes, differentiated as one scalar.

    In index notation (``sympy.IndexedBase``, sizes :math:`H` and :math:`K` symbols),
    the first-order part of :math:`\mathcal L_t` that depends on :math:`h = h^{(t)}` is
    :math:`\sum_{j=1}^{H} g_j \tanh\big(\beta_j + \sum_{k=1}^{H} W_{jk} h_k\big)
    + \sum_{m=1}^{K} \varepsilon_m \sum_{k=1}^{H} V_{mk} h_k`,
    with :math:`\beta = b + U x^{(t+1)}`, :math:`g = \nabla_{h^{(t+1)}} L`,
    :math:`\varepsilon = \nabla_{o^{(t)}} L`. SymPy differentiates it with respect to
    :math:`h_i`, with no matrix rules supplied.

    Returns
    -------
    (derived, compact) : tuple of sympy expressions
        SymPy's derivative, and entry :math:`i` of
        :math:`W^\top \operatorname{diag}(1 - (h^{(t+1)})^2)\, g + V^\top \varepsilon`,
        :math:`\sum_j W_{ji} (1 - (h^{(t+1)}_j)^2) g_j + \sum_m V_{mi} \varepsilon_m`, for :math:`1 \le i \le H`
        (zero outside).
    """
    i, j, k, m = sp.symbols("i j k m", integer=True)
    W, h, g = sp.IndexedBase("W"), sp.IndexedBase("h"), sp.IndexedBase("g")
    V, eps, beta = sp.IndexedBase("V"), sp.IndexedBase(r"\varepsilon"), sp.IndexedBase(r"\beta")

    def h_next(row):
        return sp.tanh(beta[row] + sp.Sum(W[row, k] * h[k], (k, 1, H)))

    scalar = sp.Sum(g[j] * h_next(j), (j, 1, H)) + sp.Sum(eps[m] * sp.Sum(V[m, k] * h[k], (k, 1, H)), (m, 1, K))
    derived = scalar.diff(h[i]).doit()
    entry = sp.Sum(W[j, i] * (1 - h_next(j) ** 2) * g[j], (j, 1, H)) + sp.Sum(V[m, i] * eps[m], (m, 1, K))
    compact = sp.Piecewise((entry, (i >= 1) & (i <= H)), (0, True))
    return derived, compact


def _is_zero_indexed(difference: sp.Expr) -> bool:
    """True when an index-notation difference (sums, Piecewise over the index range) is zero.

    ``piecewise_fold`` moves the sums inside the branches, where like terms
    cancel; every branch must then expand to zero.
    """
    folded = sp.piecewise_fold(difference).doit()
    branches = [value for value, _ in folded.args] if isinstance(folded, sp.Piecewise) else [folded]
    return all(sp.expand(value) == 0 for value in branches)


def prove_bptt_inductive_step() -> dict:
    r"""Prove the inductive step of the BPTT recursion for symbolic sizes.

    Returns
    -------
    dict of bool
        ``"tanh"``: :func:`tanh_vjp_entry` gives :math:`\operatorname{diag}(1 - h^2)\, g`
        entry by entry; ``"affine"``: the trace derivatives are :math:`W^\top G_a` and
        :math:`V^\top \nabla_{o^{(t)}} L`; ``"step"``: after substituting the tanh
        product, the derived step equals the compact right-hand side;
        ``"entry"``: :func:`bptt_step_entry` agrees entry by entry.
    """
    derived, expected = tanh_vjp_entry()
    tanh_ok = _is_zero_indexed(derived - expected)
    step = bptt_inductive_step()
    s = step["symbols"]
    affine_ok = (sp.simplify(step["through_a"] - s.W.T * s.G_a) == sp.ZeroMatrix(H, 1)
                 and sp.simplify(step["through_o"] - s.V.T * s.eps) == sp.ZeroMatrix(H, 1))
    step_ok = sp.simplify(step["derived"] - step["compact"]) == sp.ZeroMatrix(H, 1)
    entry_derived, entry_compact = bptt_step_entry()
    entry_ok = _is_zero_indexed(entry_derived - entry_compact)
    return {"tanh": bool(tanh_ok), "affine": bool(affine_ok), "step": bool(step_ok), "entry": bool(entry_ok)}
