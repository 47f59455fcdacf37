r"""One step of the LSTM, derived: its forward map, every gate's backward rule, its Jacobian.

The book's notation (Goodfellow, Bengio & Courville, ch. 10; ``q`` is the output
gate because ``o`` is the logits). For one example, with
:math:`a_\ast = b_\ast + W_\ast h^{(t-1)} + U_\ast x^{(t)}`:

.. math::

    f = \sigma(a_f), \quad i = \sigma(a_i), \quad
    g = \tanh(a_g), \quad q = \sigma(a_q),

    s^{(t)} = f \odot s^{(t-1)} + i \odot g,

    h^{(t)} = q \odot \tanh(s^{(t)}).

The step splits into two maps, and each is derived in the form that holds for
every size:

*The gates' affine map, by matrix calculus with symbolic sizes*
(:func:`batch_symbols`, :func:`gate_preactivation`, :func:`prove_packed_gates`,
:func:`bptt_lib.derive.rnn_step.affine_vjps`). The four gates' matrices are stacked,
:math:`W = [W_f; W_i; W_g; W_q]` of shape (4H, H), and likewise ``U`` (4H, D) and
``b`` (4H,), so that one product :math:`Z = H_{prev} W^\top + X U^\top + 1_B b^\top`
serves all four gates (rows are examples, as in :mod:`bptt_lib.derive.rnn_step`).
SymPy's block algebra proves, for symbolic ``B, D, H``, that the column blocks
of ``Z`` are the four gates' pre-activations and that the stacked gradients
``G^T H_prev``, ``G^T X`` and ``G W`` are the four gates' gradients stacked
(or summed, for ``G W``).

*The elementwise part, unit by unit* (:func:`unit_step`, :func:`unit_vjp`,
:func:`prove_unit_vjp`). Unit ``j`` of :math:`s^{(t)}` and :math:`h^{(t)}`
depends on unit ``j`` of the four pre-activations and of :math:`s^{(t-1)}` only,
so the Jacobian of this part is made of diagonal blocks and its vector-Jacobian
product is one scalar rule applied to every unit. SymPy derives that rule by the
chain rule through the intermediate quantities (the derivative of each
activation written in terms of its output, :mod:`bptt_lib.derive.activations`),
and proves it equal to the direct derivative of the unit's first-order loss
:math:`\ell = \bar h\, h + \bar s\, s` with respect to the pre-activations and
:math:`s^{(t-1)}`. Since the rule is a scalar identity, it holds for every ``H``.

Together: the backward step used by :mod:`bptt_lib.lstm` is proven for all sizes.

*The Jacobian of the step* (:func:`explicit_symbols`, :func:`state_jacobian`,
:func:`prove_state_jacobian`, :func:`cell_state_path`, :func:`prove_cell_state_path`
at explicit sizes; :func:`state_jacobian_entries`, :func:`cell_state_path_entry`,
:func:`prove_jacobian_entries` for every size). SymPy differentiates each
component of :math:`(h^{(t)}, s^{(t)})` with respect to each component of
:math:`(h^{(t-1)}, s^{(t-1)})`, and the result is proven equal to the compact
form, :math:`\partial s^{(t)}/\partial s^{(t-1)} = \operatorname{diag}(f^{(t)})` and

.. math::

    \frac{\partial s^{(t)}}{\partial h^{(t-1)}}
      = \operatorname{diag}(s^{(t-1)} \odot \sigma'_f)\, W_f

    \qquad + \operatorname{diag}(g \odot \sigma'_i)\, W_i

    \qquad + \operatorname{diag}(i \odot (1 - g^2))\, W_g,

with :math:`\sigma'_f = f \odot (1 - f)`. Along the cell state over one step,
where :math:`h^{(t-1)} = q^{(t-1)} \odot \tanh(s^{(t-1)})` also depends on
:math:`s^{(t-1)}`, the total derivative is :math:`\operatorname{diag}(f^{(t)})`
plus the terms through :math:`h^{(t-1)}` (:func:`cell_state_path`). Two proofs:
at explicit sizes (every entry a named symbol, ``D`` = 2, ``H`` = 3 by default),
the whole matrices; for every ``H``, entry :math:`(j, k)` in index notation
(``sympy.IndexedBase``, sums up to a symbolic ``H``), as
:func:`bptt_lib.derive.rnn_step.bptt_step_entry` does for the RNN. In both the
gates are the SymPy function :class:`Sigmoid`, whose derivative
:math:`\sigma(1 - \sigma)` :mod:`bptt_lib.derive.activations` proves from the
definition, so that each difference is a polynomial that expands to zero. The
code never forms these Jacobians: it uses the vector-Jacobian products above.

The sigmoid is evaluated through tanh, :math:`\sigma(a) = (1 + \tanh(a/2))/2`
(:func:`prove_sigmoid_via_tanh`), which never overflows and runs in place.
"""

from __future__ import annotations

from types import SimpleNamespace

import sympy as sp

from . import activations
from .rnn_step import B, D, H, affine_vjps

__all__ = [
    "GATES", "Sigmoid", "prove_sigmoid_function", "sigmoid_via_tanh", "prove_sigmoid_via_tanh",
    "unit_symbols", "unit_step", "unit_vjp", "unit_vjp_direct", "prove_unit_vjp",
    "cell_state", "hidden_state",
    "batch_symbols", "input_projection", "gate_preactivation", "h_prev_vjp", "params_vjp",
    "params_vjp_transposed",
    "prove_split_preactivation", "prove_packed_gates", "prove_affine_vjps",
    "explicit_symbols", "explicit_step", "state_jacobian", "prove_state_jacobian",
    "cell_state_path", "prove_cell_state_path",
    "state_jacobian_entries", "cell_state_path_entry", "prove_jacobian_entries",
]

GATES = ("f", "i", "g", "q")
"""The gates in the order they are stacked: forget, input, candidate, output."""


# --- the sigmoid: a SymPy function with its proven derivative, and its form through tanh ----------

class Sigmoid(sp.Function):
    r"""The logistic sigmoid as a SymPy function whose derivative is stated in its output.

    ``Sigmoid(a).diff(a)`` is :math:`\sigma(a)(1 - \sigma(a))`, the rule that
    :func:`bptt_lib.derive.activations.prove_derivative_in_output` proves from the
    definition :math:`1/(1 + e^{-a})` (:func:`prove_sigmoid_function` checks both
    agree). With it, the componentwise Jacobians of :func:`state_jacobian` are
    polynomials in the gates and expand to zero in a fraction of a second, where
    the same check on exponentials takes many seconds.
    """

    @classmethod
    def eval(cls, arg):
        if arg == 0:
            return sp.Rational(1, 2)
        return None

    def fdiff(self, argindex=1):
        rule = activations.derivative_in_output("sigmoid")
        return rule.subs(activations.ACTIVATIONS["sigmoid"].output, self)

    def _eval_rewrite_as_exp(self, arg, **kwargs):
        return activations.sigmoid(arg)


def prove_sigmoid_function() -> bool:
    """True when :class:`Sigmoid` is the sigmoid of :mod:`bptt_lib.derive.activations` and its derivative
    is the derivative of the definition (both simplified to zero difference)."""
    a = activations.a
    same = sp.simplify(Sigmoid(a).rewrite(sp.exp) - activations.sigmoid(a)) == 0
    derivative = sp.simplify(sp.diff(Sigmoid(a), a).rewrite(sp.exp) - activations.derivative("sigmoid")) == 0
    return bool(same and derivative and activations.prove_derivative_in_output("sigmoid"))


def sigmoid_via_tanh(z):
    r""":math:`(1 + \tanh(z/2))/2`, the form in which the code evaluates the sigmoid."""
    return (1 + sp.tanh(z / 2)) / 2


def prove_sigmoid_via_tanh() -> bool:
    r"""True when SymPy proves :math:`1/(1 + e^{-a}) = (1 + \tanh(a/2))/2` for every real ``a``."""
    a = activations.a
    difference = activations.sigmoid(a) - sigmoid_via_tanh(a)
    return sp.simplify(difference.rewrite(sp.exp)) == 0


# --- the elementwise part, one unit ---------------------------------------------------------

def unit_symbols() -> SimpleNamespace:
    r"""Real scalar symbols for one unit of one example.

    Pre-activations ``a_f, a_i, a_g, a_q``; the previous cell state ``s_prev``;
    stored results ``f, i, g, q`` (the gates), ``s`` (:math:`s^{(t)}`) and
    ``c`` (:math:`\tanh s^{(t)}`); upstream gradients ``g_h``, named ``dh``
    (:math:`\bar h`, the total gradient reaching :math:`h^{(t)}`), and ``g_s``, named
    ``ds`` (:math:`\bar s`, the gradient reaching :math:`s^{(t)}` from step
    :math:`t + 1`); ``delta_s`` (:math:`\delta_s`, the total gradient of :math:`s^{(t)}`).
    The names are those of the generated kernels' arguments.
    """
    R = lambda name: sp.Symbol(name, real=True)  # noqa: E731
    return SimpleNamespace(
        a_f=R("a_f"), a_i=R("a_i"), a_g=R("a_g"), a_q=R("a_q"), s_prev=R("s_prev"),
        f=R("f"), i=R("i"), g=R("g"), q=R("q"), s=R("s"), c=R("c"),
        g_h=R("dh"), g_s=R("ds"), delta_s=R("delta_s"),
    )


def cell_state(u: SimpleNamespace) -> sp.Expr:
    """:math:`s = f s_{prev} + i g` in the stored gates (a kernel of the forward step)."""
    return u.f * u.s_prev + u.i * u.g


def hidden_state(u: SimpleNamespace) -> sp.Expr:
    r""":math:`h = q \tanh(s)` (a kernel of the forward step)."""
    return u.q * sp.tanh(u.s)


def unit_step(u: SimpleNamespace) -> SimpleNamespace:
    """The forward map of one unit as functions of the pre-activations and ``s_prev``."""
    sig = activations.sigmoid
    f, i, g, q = sig(u.a_f), sig(u.a_i), sp.tanh(u.a_g), sig(u.a_q)
    s = f * u.s_prev + i * g
    return SimpleNamespace(f=f, i=i, g=g, q=q, s=s, h=q * sp.tanh(s))


def unit_vjp(u: SimpleNamespace | None = None) -> dict:
    r"""The backward rule of one unit, derived by the chain rule in the stored quantities.

    The unit's outputs reach the loss through :math:`\ell = \bar h\, h + \bar s\, s`
    (first order). SymPy differentiates :math:`\ell` with :math:`h = q \tanh s` and
    :math:`s = f s_{prev} + i g`, the gates and :math:`s` being symbols:

    - :math:`\delta_s = \partial \ell / \partial s = \bar s + \bar h\, q (1 - c^2)`, with :math:`c = \tanh s`;
    - :math:`\partial \ell / \partial q = \bar h\, c`;
    - :math:`\partial \ell / \partial f = \delta_s s_{prev}`, :math:`\partial \ell / \partial i = \delta_s g`,
      :math:`\partial \ell / \partial g = \delta_s i`, :math:`\partial \ell / \partial s_{prev} = \delta_s f`;

    then each gate's activation derivative, written in its output
    (:func:`bptt_lib.derive.activations.derivative_in_output`), turns a gradient of a
    gate into a gradient of its pre-activation.

    Returns
    -------
    dict
        ``"delta_s"``: :math:`\delta_s` in ``g_s, g_h, q, c``; ``"a_f"``, ``"a_i"``,
        ``"a_g"``, ``"a_q"``, ``"s_prev"``: the gradients, in ``delta_s`` and the stored
        quantities (``g_h, c, s_prev, f, i, g, q``).
    """
    u = unit_symbols() if u is None else u
    c = sp.tanh(u.s)
    ell_h = u.g_h * u.q * c                                       # the part through h = q tanh(s)
    delta_s = (sp.diff(ell_h, u.s) + u.g_s).subs(sp.tanh(u.s), u.c)
    d_q = sp.diff(ell_h, u.q).subs(sp.tanh(u.s), u.c)
    s_of_gates = cell_state(u)
    d_gate = {name: u.delta_s * sp.diff(s_of_gates, getattr(u, name)) for name in ("f", "i", "g")}
    sig = activations.derivative_in_output("sigmoid")
    tanh = activations.derivative_in_output("tanh")
    s_out, h_out = activations.ACTIVATIONS["sigmoid"].output, activations.ACTIVATIONS["tanh"].output
    return {
        "delta_s": delta_s,
        "a_f": d_gate["f"] * sig.subs(s_out, u.f),
        "a_i": d_gate["i"] * sig.subs(s_out, u.i),
        "a_g": d_gate["g"] * tanh.subs(h_out, u.g),
        "a_q": d_q * sig.subs(s_out, u.q),
        "s_prev": u.delta_s * sp.diff(s_of_gates, u.s_prev),
    }


def unit_vjp_direct(u: SimpleNamespace | None = None) -> dict:
    r"""The same gradients by direct differentiation of :math:`\ell(a_f, a_i, a_g, a_q, s_{prev})`.

    No chain rule supplied: the unit's forward map is written out in the
    pre-activations (:func:`unit_step`) and SymPy differentiates it.
    """
    u = unit_symbols() if u is None else u
    out = unit_step(u)
    ell = u.g_h * out.h + u.g_s * out.s
    return {name: sp.diff(ell, getattr(u, name)) for name in ("a_f", "a_i", "a_g", "a_q", "s_prev")}


def prove_unit_vjp() -> dict:
    """Prove :func:`unit_vjp` equal to :func:`unit_vjp_direct`, for every value of every symbol.

    The stored quantities are substituted back as functions of the
    pre-activations (``f = sigma(a_f)``, ..., ``c = tanh(s)``, ``delta_s`` by its
    expression), and each difference simplifies to zero. Returns a dict of bools
    by gradient name.
    """
    u = unit_symbols()
    chain, direct = unit_vjp(u), unit_vjp_direct(u)
    out = unit_step(u)
    back = {u.f: out.f, u.i: out.i, u.g: out.g, u.q: out.q}
    delta_s = chain["delta_s"].subs(u.c, sp.tanh(out.s)).subs(back)
    result = {}
    for name, expr in direct.items():
        stated = chain[name].subs(u.delta_s, delta_s).subs(u.c, sp.tanh(out.s)).subs(back)
        difference = (stated - expr).rewrite(sp.exp)
        result[name] = bool(sp.simplify(difference) == 0)
    return result


# --- the gates' affine map, symbolic sizes -----------------------------------------------------

def batch_symbols() -> SimpleNamespace:
    r"""Matrix symbols of symbolic size for one step of a batch, the four gates stacked.

    Rows are examples: ``H_prev`` (B, H), ``X`` (B, D), ``Xp`` (B, 4H) the projected
    input; the stacked parameters ``W`` (4H, H), ``U`` (4H, D), ``b`` (1, 4H) (the row
    :math:`b^\top`); ``G_z`` (B, 4H) the gradient of the stacked pre-activations
    :math:`Z`; ``one_B`` (B, 1) a column of ones. Per gate: ``W_gates``, ``U_gates``,
    ``b_gates``, ``G_gates`` (lists in the order of :data:`GATES`).
    """
    M = sp.MatrixSymbol
    return SimpleNamespace(
        H_prev=M("H_prev", B, H), X=M("X", B, D), Xp=M("X_p", B, 4 * H),
        W=M("W", 4 * H, H), U=M("U", 4 * H, D), b=M("b", 1, 4 * H),
        G_z=M("G_z", B, 4 * H), one_B=M("one_B", B, 1),
        W_gates=[M(f"W_{n}", H, H) for n in GATES], U_gates=[M(f"U_{n}", H, D) for n in GATES],
        b_gates=[M(f"b_{n}", 1, H) for n in GATES], G_gates=[M(f"G_{n}", B, H) for n in GATES],
        sizes=SimpleNamespace(B=B, D=D, H=H),
    )


def input_projection(sym: SimpleNamespace) -> sp.MatrixExpr:
    """``X_p = X U^T + 1_B b^T`` (B, 4H): every gate's input part, for a block of steps in one product."""
    return sym.X * sym.U.T + sym.one_B * sym.b


def gate_preactivation(sym: SimpleNamespace) -> sp.MatrixExpr:
    """``Z = H_prev W^T + X_p`` (B, 4H): the four gates' pre-activations of one step."""
    return sym.H_prev * sym.W.T + sym.Xp


def _whole_preactivation(sym: SimpleNamespace) -> sp.MatrixExpr:
    return sym.H_prev * sym.W.T + sym.X * sym.U.T + sym.one_B * sym.b


def h_prev_vjp(sym: SimpleNamespace) -> sp.MatrixExpr:
    r""":math:`\partial \operatorname{tr}(G_z^\top Z) / \partial H_{prev} = G_z W` (B, H), by matrix calculus."""
    return affine_vjps(_whole_preactivation(sym), sym.G_z, [sym.H_prev])[sym.H_prev]


def params_vjp(sym: SimpleNamespace) -> tuple:
    r"""``(dW, dU, db)`` of the stacked affine map:
    :math:`G_z^\top H_{prev}`, :math:`G_z^\top X`, :math:`1_B^\top G_z`."""
    vjps = affine_vjps(_whole_preactivation(sym), sym.G_z, [sym.W, sym.U, sym.b])
    return vjps[sym.W], vjps[sym.U], vjps[sym.b]


def params_vjp_transposed(sym: SimpleNamespace) -> tuple:
    r"""``(dW^T, dU^T, db)``, (H, 4H), (D, 4H), (1, 4H): the gradients with respect to
    :math:`W^\top`, :math:`U^\top` and ``b``.

    The same affine map written in the transposed matrices, :math:`Z = H_{prev} W^\top
    + X U^\top + 1_B b^\top` with :math:`P = W^\top` and :math:`Q = U^\top` as matrix
    symbols of their own, differentiated by matrix calculus: :math:`H_{prev}^\top G_z`,
    :math:`X^\top G_z`, :math:`1_B^\top G_z`. The transposes of the first two are
    :func:`params_vjp`'s (:func:`prove_affine_vjps`). The kernel computes this form:
    a product with the long dimension (every row of a block of steps) inside and the
    small ``H`` or ``D`` outside runs faster in BLAS (measured 1.3 to 1.6 times at the
    canonical size).
    """
    P, Q = sp.MatrixSymbol("W^T", H, 4 * H), sp.MatrixSymbol("U^T", D, 4 * H)
    Z = sym.H_prev * P + sym.X * Q + sym.one_B * sym.b
    vjps = affine_vjps(Z, sym.G_z, [P, Q, sym.b])
    return vjps[P], vjps[Q], vjps[sym.b]


def prove_split_preactivation() -> bool:
    """True when :func:`gate_preactivation` with ``X_p`` = :func:`input_projection` is the whole affine map."""
    sym = batch_symbols()
    split = gate_preactivation(sym).subs(sym.Xp, input_projection(sym))
    return sp.simplify(split - _whole_preactivation(sym)) == sp.ZeroMatrix(B, 4 * H)


def prove_packed_gates() -> dict:
    r"""Prove, for symbolic ``B, D, H``, that stacking the gates changes nothing.

    With :math:`W = [W_f; W_i; W_g; W_q]` (and ``U``, ``b`` likewise) as SymPy block
    matrices, ``block_collapse`` gives:

    - ``"forward"``: the column blocks of :math:`Z` are
      :math:`H_{prev} W_\ast^\top + X U_\ast^\top + 1_B b_\ast^\top`, one per gate;
    - ``"params"``: with :math:`G_z = [G_f, G_i, G_g, G_q]`, the stacked
      :math:`G_z^\top H_{prev}`, :math:`G_z^\top X`, :math:`G_z^\top 1_B` are the gates'
      own gradients stacked;
    - ``"h_prev"``: :math:`G_z W = \sum_\ast G_\ast W_\ast`, every gate's path to :math:`h^{(t-1)}` summed.
    """
    sym = batch_symbols()
    W = sp.BlockMatrix([[w] for w in sym.W_gates])
    U = sp.BlockMatrix([[u] for u in sym.U_gates])
    b = sp.BlockMatrix([sym.b_gates])
    G = sp.BlockMatrix([sym.G_gates])
    Z = sp.block_collapse(sym.H_prev * W.T + sym.X * U.T + sym.one_B * b)
    per_gate = [sym.H_prev * w.T + sym.X * u.T + sym.one_B * bb
                for w, u, bb in zip(sym.W_gates, sym.U_gates, sym.b_gates)]
    forward = all(sp.simplify(Z.blocks[0, k] - per_gate[k]) == sp.ZeroMatrix(B, H) for k in range(4))
    params = True
    for operand, width in ((sym.H_prev, H), (sym.X, D), (sym.one_B, 1)):
        stacked = sp.block_collapse(G.T * operand)
        params &= all(sp.simplify(stacked.blocks[k, 0] - g.T * operand) == sp.ZeroMatrix(H, width)
                      for k, g in enumerate(sym.G_gates))
    through_h = sp.block_collapse(G * W)
    h_prev = sp.simplify(through_h - sp.MatAdd(*[g * w for g, w in zip(sym.G_gates, sym.W_gates)])) \
        == sp.ZeroMatrix(B, H)
    return {"forward": bool(forward), "params": bool(params), "h_prev": bool(h_prev)}


def prove_affine_vjps() -> bool:
    r"""True when the matrix-calculus VJPs are :math:`G_z W`, :math:`G_z^\top H_{prev}`, :math:`G_z^\top X` and
    :math:`1_B^\top G_z` (the bias gradient as a row, (1, 4H)), and those with respect to the
    transposed matrices (:func:`params_vjp_transposed`) are their transposes."""
    sym = batch_symbols()
    dW, dU, db = params_vjp(sym)
    dWt, dUt, db_t = params_vjp_transposed(sym)
    checks = [(h_prev_vjp(sym), sym.G_z * sym.W), (dW, sym.G_z.T * sym.H_prev),
              (dU, sym.G_z.T * sym.X), (db, sym.one_B.T * sym.G_z),
              (dWt.T, dW), (dUt.T, dU), (db_t, db)]
    return all(sp.simplify(got - want) == sp.ZeroMatrix(*want.shape) for got, want in checks)


# --- explicit sizes: the Jacobian of one step ---------------------------------------------------

def _matrix(name: str, rows: int, cols: int) -> sp.Matrix:
    if cols == 1:
        return sp.Matrix(rows, 1, lambda r, _: sp.Symbol(f"{name}_{r + 1}", real=True))
    return sp.Matrix(rows, cols, lambda r, c: sp.Symbol(f"{name}_{r + 1}{c + 1}", real=True))


def explicit_symbols(n_in: int = 2, n_hidden: int = 2) -> SimpleNamespace:
    """Named real symbols for one example: ``W_f ... W_q`` (H, H), ``U_*`` (H, D), ``b_*`` (H, 1),
    ``h_prev``, ``s_prev`` (H, 1), ``x`` (D, 1), and ``q_prev`` (H, 1), the output gate of step t - 1."""
    for name, value in (("n_in", n_in), ("n_hidden", n_hidden)):
        if not isinstance(value, int) or not 1 <= value <= 3:
            raise ValueError(f"{name} must be an int from 1 to 3 (explicit symbolic sizes stay small); got {value!r}")
    Hn, Dn = n_hidden, n_in
    ns = SimpleNamespace(h_prev=_matrix("h", Hn, 1), s_prev=_matrix("s", Hn, 1), x=_matrix("x", Dn, 1),
                         q_prev=_matrix("qprev", Hn, 1))
    for n in GATES:
        setattr(ns, f"W_{n}", _matrix(f"W{n}", Hn, Hn))
        setattr(ns, f"U_{n}", _matrix(f"U{n}", Hn, Dn))
        setattr(ns, f"b_{n}", _matrix(f"b{n}", Hn, 1))
    return ns


def explicit_step(sym: SimpleNamespace, h_prev=None, s_prev=None) -> SimpleNamespace:
    """The forward step, component by component: gates, ``s`` and ``h`` as column matrices of expressions."""
    h_prev = sym.h_prev if h_prev is None else h_prev
    s_prev = sym.s_prev if s_prev is None else s_prev

    def pre(n):
        return getattr(sym, f"b_{n}") + getattr(sym, f"W_{n}") * h_prev + getattr(sym, f"U_{n}") * sym.x

    f, i, q = (pre(n).applyfunc(Sigmoid) for n in ("f", "i", "q"))
    g = pre("g").applyfunc(sp.tanh)
    s = f.multiply_elementwise(s_prev) + i.multiply_elementwise(g)
    h = q.multiply_elementwise(s.applyfunc(sp.tanh))
    return SimpleNamespace(f=f, i=i, g=g, q=q, s=s, h=h)


def _diag(column) -> sp.Matrix:
    return sp.diag(*list(column))


def state_jacobian(n_in: int = 2, n_hidden: int = 2) -> tuple[sp.Matrix, sp.Matrix]:
    r"""The Jacobian of :math:`(h^{(t)}, s^{(t)})` with respect to :math:`(h^{(t-1)}, s^{(t-1)})`, two ways.

    Returns ``(componentwise, compact)``, both (2H, 2H) in the block order
    ``[[dh/dh_prev, dh/ds_prev], [ds/dh_prev, ds/ds_prev]]``: SymPy's entry-by-entry
    derivative of the step, and the compact form

    .. math::

        J_{sh} = \operatorname{diag}(s^{(t-1)} \odot f(1 - f)) W_f

        \qquad + \operatorname{diag}(g \odot i (1 - i)) W_i

        \qquad + \operatorname{diag}(i \odot (1 - g^2)) W_g,

        J_{ss} = \operatorname{diag}(f),

        J_{hh} = \operatorname{diag}(c \odot q (1 - q)) W_q

        \qquad + \operatorname{diag}(q \odot (1 - c^2)) J_{sh},

        J_{hs} = \operatorname{diag}(q \odot (1 - c^2)) J_{ss},

    with :math:`c = \tanh s^{(t)}`, written in the same expressions of the step.
    """
    sym = explicit_symbols(n_in, n_hidden)
    st = explicit_step(sym)
    prev = sym.h_prev.col_join(sym.s_prev)
    componentwise = st.h.col_join(st.s).jacobian(prev)
    one = sp.ones(n_hidden, 1)
    c = st.s.applyfunc(sp.tanh)
    dsig = lambda v: v.multiply_elementwise(one - v)  # noqa: E731
    J_sh = (_diag(sym.s_prev.multiply_elementwise(dsig(st.f))) * sym.W_f
            + _diag(st.g.multiply_elementwise(dsig(st.i))) * sym.W_i
            + _diag(st.i.multiply_elementwise(one - st.g.applyfunc(lambda v: v ** 2))) * sym.W_g)
    J_ss = _diag(st.f)
    through_c = _diag(st.q.multiply_elementwise(one - c.applyfunc(lambda v: v ** 2)))
    J_hh = _diag(c.multiply_elementwise(dsig(st.q))) * sym.W_q + through_c * J_sh
    J_hs = through_c * J_ss
    compact = sp.Matrix(sp.BlockMatrix([[J_hh, J_hs], [J_sh, J_ss]]))
    return componentwise, compact


def _is_zero_matrix(difference: sp.Matrix) -> bool:
    """Every entry expands to zero: both sides are polynomials in the same gates, tanh terms and symbols."""
    return all(sp.expand(entry) == 0 for entry in difference)


def prove_state_jacobian(n_in: int = 2, n_hidden: int = 3) -> bool:
    """True when every entry of ``componentwise - compact`` of :func:`state_jacobian` simplifies to zero."""
    componentwise, compact = state_jacobian(n_in, n_hidden)
    return _is_zero_matrix(componentwise - compact)


def cell_state_path(n_in: int = 2, n_hidden: int = 2) -> tuple[sp.Matrix, sp.Matrix]:
    r"""The total derivative :math:`ds^{(t)}/ds^{(t-1)}` when :math:`h^{(t-1)} = q^{(t-1)} \odot \tanh s^{(t-1)}`.

    Along the cell state, :math:`s^{(t-1)}` reaches :math:`s^{(t)}` directly (through
    :math:`f \odot s^{(t-1)}`) and through :math:`h^{(t-1)}`, which feeds every gate of
    step ``t``. Returns ``(componentwise, compact)``: SymPy's derivative with
    ``h_prev`` replaced by that expression (``q_prev`` held fixed: it does not
    depend on :math:`s^{(t-1)}`), and

    .. math::

        \frac{d s^{(t)}}{d s^{(t-1)}} = \operatorname{diag}(f^{(t)})

        \qquad + J_{sh} \operatorname{diag}\big(q^{(t-1)} \odot (1 - \tanh^2 s^{(t-1)})\big),

    with :math:`J_{sh}` of :func:`state_jacobian`. The first term alone is the
    constant error carousel of Hochreiter and Schmidhuber when :math:`f = 1`.
    """
    sym = explicit_symbols(n_in, n_hidden)
    h_prev = sym.q_prev.multiply_elementwise(sym.s_prev.applyfunc(sp.tanh))
    st = explicit_step(sym, h_prev=h_prev)
    componentwise = st.s.jacobian(sym.s_prev)
    one = sp.ones(n_hidden, 1)
    dsig = lambda v: v.multiply_elementwise(one - v)  # noqa: E731
    J_sh = (_diag(sym.s_prev.multiply_elementwise(dsig(st.f))) * sym.W_f
            + _diag(st.g.multiply_elementwise(dsig(st.i))) * sym.W_i
            + _diag(st.i.multiply_elementwise(one - st.g.applyfunc(lambda v: v ** 2))) * sym.W_g)
    dh_ds = _diag(sym.q_prev.multiply_elementwise(one - sym.s_prev.applyfunc(lambda v: sp.tanh(v) ** 2)))
    compact = _diag(st.f) + J_sh * dh_ds
    return componentwise, compact


def prove_cell_state_path(n_in: int = 2, n_hidden: int = 3) -> bool:
    """True when every entry of ``componentwise - compact`` of :func:`cell_state_path` simplifies to zero."""
    componentwise, compact = cell_state_path(n_in, n_hidden)
    return _is_zero_matrix(componentwise - compact)


# --- every size: the Jacobian entries in index notation --------------------------------------------

def _is_zero_indexed(difference: sp.Expr) -> bool:
    """True when an index-notation difference (sums, ``Piecewise`` over the index range) is zero:
    ``piecewise_fold`` moves everything into the branches, and every branch expands to zero."""
    folded = sp.piecewise_fold(difference)
    branches = [value for value, _ in folded.args] if isinstance(folded, sp.Piecewise) else [folded]
    return all(sp.expand(value) == 0 for value in branches)


def _indexed_step(h_prev_of):
    r"""Unit ``j`` of one step in index notation, with :math:`h^{(t-1)}_m` = ``h_prev_of(m)``.

    :math:`a_{\ast, j} = \beta_{\ast, j} + \sum_{m=1}^{H} (W_\ast)_{jm} h^{(t-1)}_m` for symbolic
    ``H``, where :math:`\beta_\ast = b_\ast + U_\ast x^{(t)}`.
    """
    j, k, m = sp.symbols("j k m", integer=True)
    s_prev = sp.IndexedBase("s")
    W = {n: sp.IndexedBase(f"W_{n}") for n in GATES}
    beta = {n: sp.IndexedBase(rf"\beta_{n}") for n in GATES}
    a = {n: beta[n][j] + sp.Sum(W[n][j, m] * h_prev_of(m), (m, 1, H)) for n in GATES}
    f, i, q = Sigmoid(a["f"]), Sigmoid(a["i"]), Sigmoid(a["q"])
    g = sp.tanh(a["g"])
    s = f * s_prev[j] + i * g
    J_sh = (s_prev[j] * f * (1 - f) * W["f"][j, k] + g * i * (1 - i) * W["i"][j, k]
            + i * (1 - g ** 2) * W["g"][j, k])
    return SimpleNamespace(j=j, k=k, s_prev=s_prev, W=W, f=f, i=i, g=g, q=q, s=s, h=q * sp.tanh(s), J_sh=J_sh,
                           in_range=(k >= 1) & (k <= H))


def state_jacobian_entries() -> dict:
    r"""Entry :math:`(j, k)` of each block of :func:`state_jacobian`, for symbolic ``H``.

    In index notation (``sympy.IndexedBase``), SymPy differentiates unit ``j`` of
    :math:`s^{(t)}` and :math:`h^{(t)}` with respect to :math:`h^{(t-1)}_k` and
    :math:`s^{(t-1)}_k`. Returns a dict ``{("s", "h"): (derived, compact), ...}`` for the
    blocks ``("s", "h")``, ``("s", "s")``, ``("h", "h")``, ``("h", "s")``; the compact
    entries are those of :func:`state_jacobian` (``KroneckerDelta(j, k)`` for a diagonal
    matrix, zero for ``k`` outside ``1..H``).
    """
    hp = sp.IndexedBase("h")
    u = _indexed_step(lambda m: hp[m])
    c, delta = sp.tanh(u.s), sp.KroneckerDelta(u.j, u.k)
    compact = {
        ("s", "h"): sp.Piecewise((u.J_sh, u.in_range), (0, True)),
        ("s", "s"): delta * u.f,
        ("h", "h"): sp.Piecewise((c * u.q * (1 - u.q) * u.W["q"][u.j, u.k] + u.q * (1 - c ** 2) * u.J_sh,
                                  u.in_range), (0, True)),
        ("h", "s"): u.q * (1 - c ** 2) * delta * u.f,
    }
    wrt = {"h": hp[u.k], "s": u.s_prev[u.k]}
    of = {"h": u.h, "s": u.s}
    return {key: (sp.diff(of[key[0]], wrt[key[1]]).doit(), value) for key, value in compact.items()}


def cell_state_path_entry() -> tuple[sp.Expr, sp.Expr]:
    r"""Entry :math:`(j, k)` of :func:`cell_state_path`, for symbolic ``H``.

    With :math:`h^{(t-1)}_m = q^{(t-1)}_m \tanh s^{(t-1)}_m`, SymPy differentiates
    :math:`s^{(t)}_j` with respect to :math:`s^{(t-1)}_k`. Returns ``(derived, compact)``,
    the compact entry :math:`\delta_{jk} f_j + (J_{sh})_{jk}\, q^{(t-1)}_k (1 - \tanh^2 s^{(t-1)}_k)`
    (the second term zero for ``k`` outside ``1..H``).
    """
    q_prev, s_prev = sp.IndexedBase(r"q^{(t-1)}"), sp.IndexedBase("s")
    u = _indexed_step(lambda m: q_prev[m] * sp.tanh(s_prev[m]))
    through_h = u.J_sh * q_prev[u.k] * (1 - sp.tanh(s_prev[u.k]) ** 2)
    compact = sp.KroneckerDelta(u.j, u.k) * u.f + sp.Piecewise((through_h, u.in_range), (0, True))
    return sp.diff(u.s, s_prev[u.k]).doit(), compact


def prove_jacobian_entries() -> dict:
    """Prove :func:`state_jacobian_entries` and :func:`cell_state_path_entry` for every ``H``.

    Returns a dict of bools: ``"s_h"``, ``"s_s"``, ``"h_h"``, ``"h_s"`` (the blocks of the
    step's Jacobian) and ``"cell_state_path"``.
    """
    result = {f"{a}_{b}": _is_zero_indexed(derived - compact)
              for (a, b), (derived, compact) in state_jacobian_entries().items()}
    derived, compact = cell_state_path_entry()
    result["cell_state_path"] = _is_zero_indexed(derived - compact)
    return result
