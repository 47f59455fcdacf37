r"""One step of the gated recurrent unit (GRU), derived, in the conventions that differ between sources.

The book's GRU (Cho et al. 2014), for one example, in the notation of Goodfellow et al.:

.. math::

    z = \sigma(b_z + W_z h^{(t-1)} + U_z x^{(t)}),

    r = \sigma(b_r + W_r h^{(t-1)} + U_r x^{(t)}),

    \tilde h = \tanh\big(b_h + W_h (r \odot h^{(t-1)}) + U_h x^{(t)}\big),

    h^{(t)} = z \odot h^{(t-1)} + (1 - z) \odot \tilde h.

Two conventions differ between papers and libraries, and each changes the function:

- ``reset``: ``"before"`` the product, :math:`W_h (r \odot h^{(t-1)})` (Cho et al. 2014, the
  book), or ``"after"`` it, :math:`r \odot (W_h h^{(t-1)})` (PyTorch's ``nn.GRU``, cuDNN,
  Keras with ``reset_after=True``);
- ``update``: which of the two the update gate weights, ``"previous"``:
  :math:`h^{(t)} = z \odot h^{(t-1)} + (1 - z) \odot \tilde h` (Cho et al., PyTorch, Keras), or
  ``"candidate"``: :math:`h^{(t)} = (1 - z) \odot h^{(t-1)} + z \odot \tilde h`.

The step splits into parts of two kinds, and so does its backward pass.

*Elementwise rules, one unit at a time* (:func:`update_rules`, :func:`reset_rules`,
:func:`forward_rules`). Each is a scalar function of scalars; SymPy differentiates it, with
the gates written through :class:`sigma`, whose derivative is the rule
:math:`\sigma' = \sigma(1 - \sigma)` proven in :mod:`bptt_lib.derive.activations`, and tanh,
whose derivative SymPy writes as :math:`1 - \tanh^2`: the rules come out in terms of the gate
values the forward pass stores. :func:`prove_rules` checks each against SymPy's derivative of
the logistic function written out.

*Linear maps, for symbolic sizes* (:func:`batch_symbols`, :func:`linear_maps`,
:func:`linear_vjps`): the products with :math:`W_z`, :math:`W_r`, :math:`W_h` and with the
stacked :math:`U = [U_z; U_r; U_h]`, for a batch stacked as rows; their vector-Jacobian
products come from matrix calculus (:func:`bptt_lib.derive.rnn_step.affine_vjps`).

What is proven for every size, and what is checked at explicit sizes:

- *every size*: each elementwise rule (a scalar identity applied to each unit; the Jacobian
  of an elementwise map is diagonal, so the rule is the same for any ``H`` and ``B``); each
  VJP of a linear map (matrix calculus with ``B``, ``D``, ``H`` symbols); and the state
  Jacobian :math:`\partial h^{(t)} / \partial h^{(t-1)}`, entry :math:`(i, k)` derived in
  index notation for a symbolic ``H`` (:func:`state_jacobian`,
  :func:`prove_state_jacobian_entry`), for all four conventions;
- *explicit sizes*: the linear VJPs once more, entry by entry (:func:`prove_linear_vjps`),
  and the whole backward step as the library assembles it, against SymPy's derivative of
  the whole step written out entry by entry, with respect to every parameter entry and every
  entry of :math:`h^{(t-1)}` (:func:`step_explicit`, :func:`backward_explicit`,
  :func:`prove_step`; ``D = 1`` or 2, ``H = 2`` or 3), for all four conventions.

That the composition of the parts is the gradient of the whole step is the chain rule; the
explicit-size proof checks the assembly (which rule feeds which product), and the library's
gradients are further checked numerically against an independent implementation in
``tests/test_gru.py``.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import sympy as sp

from . import activations
from .rnn_step import B, D, H, affine_vjps

__all__ = [
    "RESETS", "UPDATES", "check_convention", "sigma",
    "z", "r", "h_tilde", "h_prev", "g", "v", "a_z", "a_r", "a_h", "x_h",
    "interpolation", "forward_rules", "update_rules", "reset_rules", "prove_rules",
    "batch_symbols", "linear_maps", "linear_vjps", "prove_linear_vjps",
    "explicit_symbols", "step_explicit", "backward_explicit", "prove_step",
    "state_jacobian", "prove_state_jacobian_entry", "indexed_difference_is_zero",
]

RESETS = ("before", "after")
"""Where the reset gate acts: on the state before the product with W_h, or on the product."""
UPDATES = ("previous", "candidate")
"""Which of h^(t-1) and the candidate the update gate z weights."""


def check_convention(reset: str, update: str) -> None:
    """Raise ``ValueError`` naming the argument if ``reset`` or ``update`` is not a known convention."""
    if reset not in RESETS:
        raise ValueError(f"reset must be one of {RESETS}; got {reset!r}")
    if update not in UPDATES:
        raise ValueError(f"update must be one of {UPDATES}; got {update!r}")


# --- one unit: scalar symbols ------------------------------------------------------------

class sigma(sp.Function):  # noqa: N801 - printed as the book writes it
    r"""The logistic function :math:`\sigma`, declared by its derivative :math:`\sigma' = \sigma (1 - \sigma)`.

    SymPy then writes every derivative of a gate in terms of the gate's output, as the
    backward pass stores it. The rule is proven for :math:`\sigma(a) = 1 / (1 + e^{-a})` by
    :func:`bptt_lib.derive.activations.prove_derivative_in_output`, and :func:`prove_rules`
    checks every rule derived with it against the logistic function written out.
    """

    def fdiff(self, argindex=1):
        return activations.derivative_in_output("sigmoid").subs(activations.s, self)


a_z, a_r, a_h = sp.symbols("a_z a_r a_h", real=True)
"""Pre-activations of the update gate, the reset gate and the candidate (one unit)."""
z, r = sp.symbols("z r", real=True)
"""The gates' outputs, ``z = sigma(a_z)``, ``r = sigma(a_r)``."""
h_tilde = sp.Symbol("htilde", real=True)
r"""The candidate, ``tanh(a_h)`` (printed :math:`\tilde h`; its name is a Python identifier for the kernels)."""
h_prev = sp.Symbol("h_prev", real=True)
"""The unit's previous state."""
g = sp.Symbol("g", real=True)
"""An upstream gradient (of the loss with respect to the output of the rule)."""
v = sp.Symbol("v", real=True)
"""What the reset gate multiplies: ``h_prev`` (reset before) or ``m = (W_h h_prev)_i`` (after)."""
x_h = sp.Symbol("x_h", real=True)
"""The candidate's projected input, ``(b_h + U_h x)_i``."""


def interpolation(update: str, gate, previous, candidate):
    r"""The new state of one unit: :math:`z h^{(t-1)} + (1 - z) \tilde h` or :math:`(1 - z) h^{(t-1)} + z \tilde h`."""
    check_convention(RESETS[0], update)      # only ``update`` matters here
    if update == "previous":
        return gate * previous + (1 - gate) * candidate
    return (1 - gate) * previous + gate * candidate


def _in_outputs(expr: sp.Expr) -> sp.Expr:
    r"""Name the outputs in a derivative.

    :math:`\sigma(a_z) \to z`, :math:`\sigma(a_r) \to r`, :math:`\tanh a_h \to \tilde h`.

    The derivatives are already in terms of the outputs: :class:`sigma`'s by its
    declaration, tanh's because SymPy writes :math:`\tanh' = 1 - \tanh^2`.
    """
    return sp.factor_terms(expr.subs({sigma(a_z): z, sigma(a_r): r, sp.tanh(a_h): h_tilde}))


@functools.cache
def forward_rules(update: str = "previous") -> dict:
    r"""The elementwise parts of the forward step, for one unit.

    ``"state"``: the new state from ``z``, ``h_prev``, :math:`\tilde h`
    (:func:`interpolation`); ``"candidate_after"``: the candidate's pre-activation
    ``x_h + r v`` when the reset acts after the product (``v = (W_h h_prev)_i``).
    """
    return {"state": interpolation(update, z, h_prev, h_tilde), "candidate_after": x_h + r * v}


@functools.cache
def update_rules(update: str = "previous") -> dict:
    r"""Backward through the interpolation and the two activations it reads, for one unit.

    With :math:`g = \partial L / \partial h^{(t)}_i` and the state written as a function of
    the pre-activations, :math:`h = z h^{(t-1)} + (1 - z) \tanh a_h` with
    :math:`z = \sigma(a_z)` (or the other ``update`` convention), SymPy differentiates
    :math:`g\,h` with respect to :math:`a_z`, :math:`a_h` and :math:`h^{(t-1)}`, this last
    one only where :math:`h^{(t-1)}` enters the interpolation directly (its paths through the
    pre-activations go through the linear maps, and the backward pass adds them).

    Returns
    -------
    dict
        ``"a_z"``, ``"a_h"``, ``"h_prev"``: the three derivatives in terms of
        ``g``, ``z``, ``h_prev`` and :math:`\tilde h`; for ``"previous"`` they are
        :math:`g z (1 - z)(h^{(t-1)} - \tilde h)`, :math:`g (1 - z)(1 - \tilde h^2)` and :math:`g z`.
    """
    state = interpolation(update, sigma(a_z), h_prev, sp.tanh(a_h))
    return {name: _in_outputs(sp.diff(g * state, wrt))
            for name, wrt in (("a_z", a_z), ("a_h", a_h), ("h_prev", h_prev))}


@functools.cache
def reset_rules() -> dict:
    r"""Backward through the reset gate's product :math:`r \odot v`, for one unit.

    ``v`` is :math:`h^{(t-1)}_i` when the reset acts before the product (then ``g`` is
    :math:`\partial L / \partial (r \odot h^{(t-1)})_i = (W_h^\top \nabla_{a_h} L)_i`) and
    :math:`m_i = (W_h h^{(t-1)})_i` when it acts after (then ``g`` is
    :math:`\partial L / \partial a_{h,i}`). SymPy differentiates :math:`g\,\sigma(a_r) v`.

    Returns
    -------
    dict
        ``"a_r"``: :math:`g v r (1 - r)`; ``"v"``: :math:`g r`.
    """
    product = g * sigma(a_r) * v
    return {"a_r": _in_outputs(sp.diff(product, a_r)), "v": _in_outputs(sp.diff(product, v))}


def prove_rules() -> dict:
    """Check every elementwise rule against SymPy's derivative of the definitions themselves.

    The logistic function :func:`bptt_lib.derive.activations.sigmoid` and ``tanh`` are put
    in place of the outputs and of ``sigma``; the difference must simplify to zero.

    Returns
    -------
    dict of bool
        ``"update/previous"``, ``"update/candidate"``, ``"reset"``.
    """
    def actual(expr):
        return expr.subs({z: activations.sigmoid(a_z), r: activations.sigmoid(a_r), h_tilde: sp.tanh(a_h)})

    result = {}
    for update in UPDATES:
        state = interpolation(update, activations.sigmoid(a_z), h_prev, sp.tanh(a_h))
        rules = update_rules(update)
        result[f"update/{update}"] = all(
            sp.simplify(sp.diff(g * state, wrt) - actual(rules[name])) == 0
            for name, wrt in (("a_z", a_z), ("a_h", a_h), ("h_prev", h_prev)))
    product = g * activations.sigmoid(a_r) * v
    rules = reset_rules()
    result["reset"] = all(sp.simplify(sp.diff(product, wrt) - actual(rules[name])) == 0
                          for name, wrt in (("a_r", a_r), ("v", v)))
    return result


# --- the linear maps, for a batch stacked as rows, symbolic sizes -------------------------


def batch_symbols() -> SimpleNamespace:
    r"""Matrix symbols of symbolic size for the linear maps of one GRU step (rows are examples).

    ``H_prev`` (B, H), ``X`` (B, D); ``Q`` (B, H) is :math:`R \odot H_{prev}`, what
    :math:`W_h` multiplies when the reset acts before the product. Parameters: ``W_g`` (H, H)
    stands for either gate's matrix (:math:`W_z` or :math:`W_r`), ``W_z``, ``W_r``, ``W_h``
    (H, H); ``W_zr`` (2H, H) the rows of :math:`W_z` then :math:`W_r`; ``U`` (3H, D),
    :math:`[U_z; U_r; U_h]`; ``b`` (1, 3H). ``X_g``, ``X_h`` (B, H) are parts of the projected
    input :math:`X U^\top + 1_B b`, ``X_zr`` (B, 2H) its first two; ``one_B`` (B, 1) a column
    of ones; ``b_n`` (1, H) PyTorch's second candidate bias :math:`b_{hn}`, inside the reset
    gate's product when it acts after. Upstream gradients: ``G_g``, ``G_z``, ``G_r``, ``G_h``, ``G_m`` (B, H), ``G_zr``
    (B, 2H), ``G_a`` (B, 3H); ``D_1`` (B, H) a gradient of :math:`H_{prev}` from the elementwise paths.
    """
    M = sp.MatrixSymbol
    return SimpleNamespace(
        H_prev=M("H_prev", B, H), X=M("X", B, D), Q=M("Q", B, H),
        W_g=M("W_g", H, H), W_z=M("W_z", H, H), W_r=M("W_r", H, H), W_h=M("W_h", H, H),
        W_zr=M("W_zr", 2 * H, H), U=M("U", 3 * H, D), b=M("b", 1, 3 * H),
        X_g=M("X_g", B, H), X_h=M("X_h", B, H), X_zr=M("X_zr", B, 2 * H), one_B=M("one_B", B, 1),
        G_g=M("G_g", B, H), G_z=M("G_z", B, H), G_r=M("G_r", B, H), G_h=M("G_h", B, H), G_m=M("G_m", B, H),
        G_zr=M("G_zr", B, 2 * H), G_a=M("G_a", B, 3 * H), D_1=M("D_1", B, H),
        b_n=M("b_n", 1, H),
    )


def linear_maps(s: SimpleNamespace) -> dict:
    r"""The linear maps of the step, batch rows, symbolic sizes.

    ``"input_projection"``: :math:`X U^\top + 1_B b` (B, 3H), every gate's
    :math:`b_* + U_* x` at once, for many steps in one product;
    ``"gate"``: :math:`H_{prev} W_g^\top + X_g`, the pre-activation of ``z`` (with
    :math:`W_z`) or ``r`` (with :math:`W_r`); ``"gates"``: both side by side,
    :math:`H_{prev} W_{zr}^\top + X_{zr}` (B, 2H);
    ``"candidate"``: :math:`Q W_h^\top + X_h`, the candidate's pre-activation when the reset
    acts before the product (:math:`Q = R \odot H_{prev}`);
    ``"reset_after_product"``: :math:`H_{prev} W_h^\top`, what the reset multiplies when it acts
    after; ``"reset_after_affine"``: :math:`H_{prev} W_h^\top + 1_B b_n`, the same with PyTorch's
    bias :math:`b_{hn}` (``nn.GRU`` computes :math:`r \odot (W_{hn} h + b_{hn})`).
    """
    return {
        "input_projection": s.X * s.U.T + s.one_B * s.b,
        "gate": s.H_prev * s.W_g.T + s.X_g,
        "gates": s.H_prev * s.W_zr.T + s.X_zr,
        "candidate": s.Q * s.W_h.T + s.X_h,
        "reset_after_product": s.H_prev * s.W_h.T,
        "reset_after_affine": s.H_prev * s.W_h.T + s.one_B * s.b_n,
    }


UPSTREAM = {"input_projection": "G_a", "gate": "G_g", "gates": "G_zr", "candidate": "G_h",
            "reset_after_product": "G_h", "reset_after_affine": "G_m"}
"""The upstream gradient symbol of each linear map."""
OPERANDS = {"input_projection": ("U", "b"), "gate": ("W_g", "H_prev"), "gates": ("W_zr", "H_prev"),
            "candidate": ("W_h", "Q"), "reset_after_product": ("W_h", "H_prev"),
            "reset_after_affine": ("W_h", "b_n", "H_prev")}
"""The operands each map is differentiated with respect to."""


def linear_vjps(s: SimpleNamespace) -> dict:
    r"""The vector-Jacobian products of :func:`linear_maps`, by matrix calculus (every size).

    Keys ``(map, operand)``; e.g. ``("gate", W_g)`` is :math:`G_g^\top H_{prev}` and
    ``("candidate", Q)`` is :math:`G_h W_h`. Also the whole gradient of :math:`H_{prev}`
    through the step's linear maps plus its elementwise part ``D_1``, a sum of those VJPs:
    ``"state_before"``: :math:`G_z W_z + G_r W_r + D_1` (the two gates; the path through the
    candidate reaches :math:`H_{prev}` through ``Q``, elementwise, inside ``D_1``);
    ``"state_after"``: :math:`G_z W_z + G_r W_r + G_m W_h + D_1` (:math:`G_m` the gradient of
    :math:`M = H_{prev} W_h^\top`).
    """
    maps = linear_maps(s)
    out = {}
    for name, upstream in UPSTREAM.items():
        wrt = [getattr(s, op) for op in OPERANDS[name]]
        for p, expr in affine_vjps(maps[name], getattr(s, upstream), wrt).items():
            out[(name, p)] = expr
    via_gate = out[("gate", s.H_prev)]
    gates = via_gate.subs({s.G_g: s.G_z, s.W_g: s.W_z}) + via_gate.subs({s.G_g: s.G_r, s.W_g: s.W_r})
    out["state_before"] = gates + s.D_1
    out["state_after"] = gates + out[("reset_after_product", s.H_prev)].subs(s.G_h, s.G_m) + s.D_1
    return out


def prove_linear_vjps(n_batch: int = 2, n_in: int = 2, n_hidden: int = 2) -> bool:
    """Check every ``(map, operand)`` VJP of :func:`linear_vjps` entry by entry at explicit sizes.

    For ``L = sum_ij G_ij A_ij``, SymPy differentiates with respect to every entry of the
    operand; each grid of derivatives must equal the compact expression expanded at the
    same size. (The compact expressions themselves hold for every size: matrix calculus.)
    """
    s = batch_symbols()
    sizes = {B: n_batch, D: n_in, H: n_hidden}
    maps = linear_maps(s)
    for key, compact in linear_vjps(s).items():
        if not isinstance(key, tuple):
            continue
        name, p = key
        A = maps[name].subs(sizes).as_explicit()
        G = getattr(s, UPSTREAM[name]).subs(sizes).as_explicit()
        L = sum(G[i, j] * A[i, j] for i in range(A.rows) for j in range(A.cols))
        P = p.subs(sizes).as_explicit()
        componentwise = P.applyfunc(lambda e, L=L: sp.diff(L, e))
        if sp.simplify(componentwise - compact.subs(sizes).as_explicit()) != sp.zeros(*P.shape):
            return False
    return True


# --- the whole step at explicit sizes --------------------------------------------------


def _matrix(name: str, rows: int, cols: int) -> sp.Matrix:
    if cols == 1:
        return sp.Matrix(rows, 1, lambda i, _: sp.Symbol(f"{name}_{i + 1}", real=True))
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{name}_{i + 1}{j + 1}", real=True))


def explicit_symbols(n_in: int = 2, n_hidden: int = 2) -> SimpleNamespace:
    """Matrices of named real symbols for one example: ``W_*`` (H, H), ``U_*`` (H, D),
    ``b_*`` (H, 1) for ``* = z, r, h``; ``b_hn`` (H, 1) (PyTorch's bias, reset after);
    ``h_prev`` (H, 1), ``x`` (D, 1), ``g`` (H, 1) an upstream gradient."""
    for name, value in (("n_in", n_in), ("n_hidden", n_hidden)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 3:
            raise ValueError(f"{name} must be an int from 1 to 3 (explicit symbolic sizes stay small); got {value!r}")
    Hn, Dn = n_hidden, n_in
    out = SimpleNamespace(h_prev=_matrix("hp", Hn, 1), x=_matrix("x", Dn, 1), g=_matrix("g", Hn, 1),
                          b_hn=_matrix("bhn", Hn, 1))
    for gate in "zrh":
        setattr(out, f"W_{gate}", _matrix(f"W{gate}", Hn, Hn))
        setattr(out, f"U_{gate}", _matrix(f"U{gate}", Hn, Dn))
        setattr(out, f"b_{gate}", _matrix(f"b{gate}", Hn, 1))
    return out


def step_explicit(sym: SimpleNamespace, reset: str = "before", update: str = "previous") -> SimpleNamespace:
    """The forward step from the definitions, entry by entry (gates through :class:`sigma`, candidate through tanh).

    Returns ``z``, ``r``, ``h_tilde``, ``h`` (column matrices) and ``m``
    (:math:`W_h h^{(t-1)} + b_{hn}`, what the reset gate multiplies when it acts after).
    """
    check_convention(reset, update)
    zz = (sym.b_z + sym.W_z * sym.h_prev + sym.U_z * sym.x).applyfunc(sigma)
    rr = (sym.b_r + sym.W_r * sym.h_prev + sym.U_r * sym.x).applyfunc(sigma)
    m = sym.W_h * sym.h_prev + sym.b_hn
    if reset == "before":
        a = sym.b_h + sym.W_h * rr.multiply_elementwise(sym.h_prev) + sym.U_h * sym.x
    else:
        a = sym.b_h + rr.multiply_elementwise(m) + sym.U_h * sym.x
    ht = a.applyfunc(sp.tanh)
    h = sp.Matrix([interpolation(update, zz[i], sym.h_prev[i], ht[i]) for i in range(len(ht))])
    return SimpleNamespace(z=zz, r=rr, h_tilde=ht, h=h, m=m)


def _apply(rule: sp.Expr, **columns) -> sp.Matrix:
    """A scalar rule applied entry by entry to columns of the same length."""
    names = {"g": g, "z": z, "r": r, "h_tilde": h_tilde, "h_prev": h_prev, "v": v}
    n = len(next(iter(columns.values())))
    return sp.Matrix([rule.subs({names[k]: col[i] for k, col in columns.items()}, simultaneous=True)
                      for i in range(n)])


def backward_explicit(sym: SimpleNamespace, reset: str = "before", update: str = "previous") -> dict:
    r"""The backward pass of one step assembled from the rules, for an upstream gradient ``g``.

    The order the library runs: :func:`update_rules` gives :math:`\nabla_{a_z}`,
    :math:`\nabla_{a_h}` and the direct part of :math:`\nabla_{h^{(t-1)}}`; then the
    candidate's linear map, :func:`reset_rules` and the gates' linear maps
    (:func:`linear_vjps`, written for one example as a column).

    Returns
    -------
    dict
        The gradients of :math:`g^\top h^{(t)}` with respect to ``h_prev`` and to every
        ``W_*``, ``U_*``, ``b_*``, as matrices of the parameters' shapes.
    """
    fwd = step_explicit(sym, reset, update)
    hp = sym.h_prev
    up = update_rules(update)
    cols = dict(g=sym.g, z=fwd.z, h_tilde=fwd.h_tilde, h_prev=hp)
    da_z, da_h, direct = _apply(up["a_z"], **cols), _apply(up["a_h"], **cols), _apply(up["h_prev"], **cols)
    rs = reset_rules()
    if reset == "before":
        g_q = sym.W_h.T * da_h                                 # through Q W_h^T: G_h W_h, as a column
        da_r = _apply(rs["a_r"], g=g_q, v=hp, r=fwd.r)
        dW_h = da_h * fwd.r.multiply_elementwise(hp).T
        dh_prev = direct + _apply(rs["v"], g=g_q, r=fwd.r) + sym.W_z.T * da_z + sym.W_r.T * da_r
    else:
        da_r = _apply(rs["a_r"], g=da_h, v=fwd.m, r=fwd.r)
        g_m = _apply(rs["v"], g=da_h, r=fwd.r)
        dW_h = g_m * hp.T
        dh_prev = direct + sym.W_z.T * da_z + sym.W_r.T * da_r + sym.W_h.T * g_m
    grads = {"h_prev": dh_prev,
             "W_z": da_z * hp.T, "W_r": da_r * hp.T, "W_h": dW_h,
             "U_z": da_z * sym.x.T, "U_r": da_r * sym.x.T, "U_h": da_h * sym.x.T,
             "b_z": da_z, "b_r": da_r, "b_h": da_h}
    if reset == "after":
        grads["b_hn"] = g_m
    return grads


def prove_step(reset: str = "before", update: str = "previous", n_in: int = 1, n_hidden: int = 2) -> dict:
    r"""Prove the assembled backward pass against SymPy's derivative of the whole step, entry by entry.

    SymPy differentiates the scalar :math:`g^\top h^{(t)}` (the step written out entry by
    entry, :func:`step_explicit`) with respect to every entry of ``h_prev`` and of every
    parameter; :func:`backward_explicit` must agree exactly. With the value of every gate
    and candidate entry named by a symbol, the difference is a polynomial that must expand
    to zero. At explicit sizes ``n_in``, ``n_hidden`` (two hidden units already mix units
    through every matrix).

    Returns
    -------
    dict of bool
        One entry per gradient (``"h_prev"``, ``"W_z"``, ...).
    """
    sym = explicit_symbols(n_in, n_hidden)
    fwd = step_explicit(sym, reset, update)
    scalar = (sym.g.T * fwd.h)[0, 0]
    assembled = backward_explicit(sym, reset, update)
    # name every gate and candidate value: what is left is a polynomial identity
    values = {}
    for name, col in (("z", fwd.z), ("r", fwd.r), ("t", fwd.h_tilde)):
        values.update({e: sp.Symbol(f"{name}_{i + 1}") for i, e in enumerate(col)})
    result = {}
    for name, compact in assembled.items():
        wrt = getattr(sym, name)
        componentwise = wrt.applyfunc(lambda e: sp.diff(scalar, e))
        diff = (componentwise - compact).applyfunc(lambda e: sp.expand(e.subs(values)))
        result[name] = diff == sp.zeros(*wrt.shape)
    return result


# --- the state Jacobian, for a symbolic number of units ------------------------------------


def state_jacobian(reset: str = "before", update: str = "previous") -> tuple[sp.Expr, sp.Expr]:
    r"""Entry :math:`(i, k)` of :math:`\partial h^{(t)} / \partial h^{(t-1)}` for a symbolic ``H``, two ways.

    In index notation (``IndexedBase``; ``H`` a symbol), with the gates and the candidate
    written out as functions of :math:`h^{(t-1)}` (through :class:`sigma`, whose derivative is
    the proven :math:`\sigma(1 - \sigma)`), SymPy differentiates :math:`h^{(t)}_i` with
    respect to :math:`h^{(t-1)}_k`. For ``reset="before"``, ``update="previous"`` the compact
    form is

    .. math::

        \frac{\partial h^{(t)}_i}{\partial h^{(t-1)}_k}
        = z_i \delta_{ik} + (h^{(t-1)}_i - \tilde h_i)\, z_i (1 - z_i)\, W_{z,ik}

        \quad + (1 - z_i)(1 - \tilde h_i^2) \sum_j W_{h,ij}\, \rho_{jk},

        \rho_{jk} = r_j \delta_{jk} + h^{(t-1)}_j r_j (1 - r_j)\, W_{r,jk}.

    Returns
    -------
    (derived, compact)
        SymPy's derivative, in terms of the gate values ``z_i``, ``r_j``, :math:`\tilde h_i`,
        ``m_i`` (indexed), and the compact form.
    """
    check_convention(reset, update)
    i, j, k, n = sp.symbols("i j k n", integer=True)
    Wz, Wr, Wh = sp.IndexedBase("W_z"), sp.IndexedBase("W_r"), sp.IndexedBase("W_h")
    hp, bz, br, bh = sp.IndexedBase("h_prev"), sp.IndexedBase(r"\beta_z"), sp.IndexedBase(r"\beta_r"), \
        sp.IndexedBase(r"\beta_h")
    zI, rI, htI, mI = sp.IndexedBase("z"), sp.IndexedBase("r"), sp.IndexedBase(r"\tilde{h}"), sp.IndexedBase("m")

    def pre(W, beta, row):
        return beta[row] + sp.Sum(W[row, n] * hp[n], (n, 1, H))

    z_i = sigma(pre(Wz, bz, i))
    r_j = sigma(pre(Wr, br, j))
    if reset == "before":
        a_hi = bh[i] + sp.Sum(Wh[i, j] * r_j * hp[j], (j, 1, H))
    else:
        a_hi = bh[i] + sigma(pre(Wr, br, i)) * sp.Sum(Wh[i, j] * hp[j], (j, 1, H))
    h_i = interpolation(update, z_i, hp[i], sp.tanh(a_hi))
    derived = sp.diff(h_i, hp[k]).xreplace({sp.tanh(a_hi): htI[i]})
    if reset == "after":
        derived = derived.xreplace({sp.Sum(Wh[i, j] * hp[j], (j, 1, H)): mI[i]})

    def gate_value(e):
        """``sigma(beta_z[q] + ...)`` -> ``z[q]``, ``sigma(beta_r[q] + ...)`` -> ``r[q]``."""
        for term in sp.Add.make_args(e.args[0]):
            if isinstance(term, sp.Indexed) and term.base in (bz, br):
                return (zI if term.base == bz else rI)[term.indices[0]]
        raise ValueError(f"not a gate: {e}")

    derived = derived.replace(lambda e: isinstance(e, sigma), gate_value)
    delta = sp.KroneckerDelta
    dz = zI[i] * (1 - zI[i])
    if update == "previous":
        direct, via_z, keep = zI[i] * delta(i, k), (hp[i] - htI[i]) * dz * Wz[i, k], (1 - zI[i])
    else:
        direct, via_z, keep = (1 - zI[i]) * delta(i, k), (htI[i] - hp[i]) * dz * Wz[i, k], zI[i]
    if reset == "before":
        inner = sp.Sum(Wh[i, j] * (rI[j] * delta(j, k) + hp[j] * rI[j] * (1 - rI[j]) * Wr[j, k]), (j, 1, H))
    else:
        inner = rI[i] * Wh[i, k] + mI[i] * rI[i] * (1 - rI[i]) * Wr[i, k]
    compact = direct + via_z + keep * (1 - htI[i] ** 2) * inner
    return derived, compact


def prove_state_jacobian_entry(reset: str = "before", update: str = "previous") -> bool:
    """True when :func:`state_jacobian`'s derived and compact entries agree for a symbolic ``H``.

    SymPy evaluates the sums over Kronecker deltas (a ``Piecewise`` on whether ``k`` is
    in ``1..H``); in the branch where it is, the difference must expand to zero.
    """
    derived, compact = state_jacobian(reset, update)
    return indexed_difference_is_zero(derived - compact)


def indexed_difference_is_zero(difference: sp.Expr) -> bool:
    """True when an entry difference of :func:`state_jacobian` vanishes for every unit index ``k`` in ``1..H``."""
    k = sp.Symbol("k", integer=True)    # the same symbol as state_jacobian's k
    folded = sp.piecewise_fold(difference.doit())
    if isinstance(folded, sp.Piecewise):    # keep the branch for 1 <= k <= H: k indexes a unit
        branches = [value for value, cond in folded.args
                    if cond != sp.true and cond.subs({k: 1, H: 1}) == sp.true and cond.subs(k, 0) == sp.false]
        if len(branches) != 1:
            raise ArithmeticError(f"expected one branch for 1 <= k <= H; got {folded.args}")
        folded = branches[0]
    return sp.expand(folded.doit()) == 0
