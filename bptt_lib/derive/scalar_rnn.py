r"""The scalar RNN with an output and a squared error, derived with SymPy (chapter 4).

The network is the scalar recurrence of :mod:`bptt_lib.derive.chain_rule`,
with an output unit and a squared error at the last step :math:`N`:

.. math::

    h_t = \phi(w\, h_{t-1} + u\, x_t), \qquad
    \hat y_N = \psi(v\, h_N), \qquad
    E_N = (d_N - \hat y_N)^2 .

A popular source (GeeksforGeeks, "Back Propagation through time - RNN")
writes the same network as :math:`S_t = g_1(W_x x_t + W_s S_{t-1})`,
:math:`Y_t = g_2(W_y S_t)`, :math:`E_t = (d_t - Y_t)^2`; the dictionary is
:func:`source_symbol_names` (:math:`W_x \sim u`, :math:`W_s \sim w`,
:math:`W_y \sim v`, :math:`S \sim h`).

The recurrence itself, its immediate partials and its one-step derivatives are
reused from :mod:`bptt_lib.derive.chain_rule`; this module adds the output,
the loss, and the gradient of the loss as a **sum over paths**

.. math::

    \frac{d E_N}{d w} = \sum_{k=1}^{N}
        \frac{\partial E_N}{\partial \hat y_N}\,
        \frac{\partial \hat y_N}{\partial h_N}
        \Bigg(\prod_{j=N}^{k+1} \frac{\partial h_j}{\partial h_{j-1}}\Bigg)
        \frac{\partial^+ h_k}{\partial w},

(the same with :math:`u` for :math:`w`), written once as a SymPy ``Sum`` of a
``Product`` (:func:`general_formula`) that is evaluated for explicit :math:`N`
and compared with SymPy's derivative of the fully unrolled loss. The source's
own general formula is kept as well (:func:`source_formula`), so that its
readings can be tested against the truth.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE

from ..validation import positive_int
from . import chain_rule as dcr
from .activations import sigmoid

__all__ = [
    "w", "u", "v", "k", "j", "N",
    "OUTPUTS", "source_symbol_names", "to_display",
    "scalar_rnn_loss", "total_gradient", "output_factors", "path_factors", "path_terms",
    "prove_path_sum",
    "dE_dyhat", "dyhat_dh", "dh_dh", "dplus_h", "dyhat_dh_source", "dh_dw_source",
    "formula_latex", "general_formula", "evaluate_formula", "source_formula", "evaluate_source_formula",
    "prove_general_formula", "value_at_random_point", "reading_multiplicities",
    "one_step", "output_step",
]

w, u = dcr.w, dcr.u
"""The recurrent weight :math:`w` (source: :math:`W_s`) and the input weight :math:`u` (source: :math:`W_x`)."""
v = sp.Symbol("v", real=True)
"""The output weight (the scalar :math:`V`; source: :math:`W_y`)."""

k, j = sp.symbols("k j", integer=True, positive=True)
"""Summation and product indices of the general formula."""
N = sp.Symbol("N", integer=True, positive=True)
"""The number of steps in the general formula."""



def _identity(z):
    return z


OUTPUTS = {"identity": _identity, "tanh": sp.tanh, "sigmoid": sigmoid}
"""Output activations :math:`\\psi` by name."""


# --- the network -------------------------------------------------------------------


class _Prediction(dcr.TimeIndexed):
    r"""The symbol ``yhat_N``, typeset :math:`\hat y^{(N)}` (``symbol_names`` still wins)."""

    def _latex(self, printer):
        names = printer._settings.get("symbol_names") or {}
        if self in names:
            return names[self]
        return rf"\hat{{y}}^{{({self.name.partition('_')[2]})}}"


def _output_function(output):
    if isinstance(output, str):
        try:
            return OUTPUTS[output]
        except KeyError:
            raise ValueError(
                f"output must be one of {sorted(OUTPUTS)} or an undefined sympy Function; got {output!r}"
            ) from None
    if isinstance(output, sp.core.function.UndefinedFunction):
        return output
    raise TypeError(
        f"output must be a name or an undefined sympy Function such as sympy.Function('psi'); got {output!r}"
    )


def scalar_rnn_loss(n_steps: int = 3, activation="tanh", output="identity") -> SimpleNamespace:
    r"""The scalar RNN of :func:`bptt_lib.derive.chain_rule.scalar_rnn` with an output and a squared error.

    Parameters
    ----------
    n_steps : int
        :math:`N`, from 1 to 4.
    activation : {"tanh", "sigmoid"} or an undefined SymPy function
        The hidden activation :math:`\phi` (source: :math:`g_1`).
    output : {"identity", "tanh", "sigmoid"} or an undefined SymPy function
        The output activation :math:`\psi` (source: :math:`g_2`).

    Returns
    -------
    SimpleNamespace
        Everything :func:`~bptt_lib.derive.chain_rule.scalar_rnn` returns (``w``, ``u``,
        ``h0``, ``x``, ``states``, ``step``, ``h``, ``phi``, ``T``), and ``rnn``, that
        namespace itself, plus ``v``, ``psi``, ``d`` (the target symbol :math:`d_N`) and
        ``yhat_sym`` (a symbol that stands for :math:`\hat y_N`, to hold it fixed and for display);
        ``yhat_held``: :math:`\psi(v h_N)` with :math:`h_N` the state *symbol*;
        ``loss_held``: :math:`(d_N - \hat y_N)^2` in the symbol ``yhat_sym``;
        ``yhat`` and ``loss``: the prediction and the loss written out in the leaves.
    """
    rnn = dcr.scalar_rnn(n_steps, activation)
    psi = _output_function(output)
    net = SimpleNamespace(**vars(rnn))
    net.rnn = rnn
    net.v, net.psi = v, psi
    net.d = dcr.TimeIndexed(f"d_{n_steps}", real=True)
    net.yhat_sym = _Prediction(f"yhat_{n_steps}", real=True)
    net.yhat_held = psi(v * rnn.states[-1])
    net.loss_held = (net.d - net.yhat_sym) ** 2
    net.yhat = dcr.to_leaves(rnn, net.yhat_held)
    net.loss = net.loss_held.subs(net.yhat_sym, net.yhat)
    return net


def source_symbol_names(net: SimpleNamespace) -> dict:
    r"""LaTeX names of the source article for the symbols of ``net``, for ``sympy.latex(expr, symbol_names=...)``.

    The dictionary: :math:`w \to W_s`, :math:`u \to W_x`, :math:`v \to W_y`,
    :math:`h_t \to S_t`, :math:`\hat y_N \to Y_N`; inputs and the target keep their names.
    """
    _check_net(net)
    names = {net.w: "W_s", net.u: "W_x", net.v: "W_y", net.h0: "S_{0}",
             net.yhat_sym: f"Y_{{{net.T}}}", net.d: f"d_{{{net.T}}}"}
    names.update({s: f"S_{{{t}}}" for t, s in enumerate(net.states, start=1)})
    names.update({s: f"x_{{{t}}}" for t, s in enumerate(net.x, start=1)})
    return names


def _check_net(net) -> None:
    if not isinstance(net, SimpleNamespace) or not hasattr(net, "loss_held"):
        raise TypeError("net must be the namespace returned by scalar_rnn_loss()")


def _check_wrt(wrt, allowed=(w, u, v)) -> None:
    if wrt not in allowed:
        raise ValueError(f"wrt must be one of {list(allowed)}; got {wrt!r}")


def _to_leaves(net, expr: sp.Expr) -> sp.Expr:
    """Replace the symbol ``net.yhat_sym`` and the state symbols by their expressions in the leaves."""
    return dcr.to_leaves(net.rnn, expr.subs(net.yhat_sym, net.yhat_held))


def to_display(net: SimpleNamespace, expr: sp.Expr) -> sp.Expr:
    """Write states and the prediction, where they appear spelled out, as their symbols."""
    _check_net(net)
    expr = expr.subs(net.yhat, net.yhat_sym)
    expr = dcr.to_states(net.rnn, expr)
    return expr.subs(net.yhat_held, net.yhat_sym)


def total_gradient(net: SimpleNamespace, wrt: sp.Symbol = w) -> sp.Expr:
    r""":math:`d E_N / d\,\text{wrt}`: SymPy differentiates the fully unrolled loss ``net.loss``."""
    _check_net(net)
    _check_wrt(wrt)
    return sp.diff(net.loss, wrt)


def output_factors(net: SimpleNamespace, *, in_states: bool = False) -> tuple[sp.Expr, sp.Expr]:
    r"""The two factors every path starts with: :math:`\partial E_N/\partial \hat y_N` and
    :math:`\partial \hat y_N/\partial h_N`.

    For an identity output they are :math:`-2(d_N - \hat y_N)` and :math:`v`.
    """
    _check_net(net)
    de_dy = sp.diff(net.loss_held, net.yhat_sym)
    dy_dh = sp.diff(net.yhat_held, net.states[-1])
    if in_states:
        return de_dy, dy_dh.subs(net.yhat_held, net.yhat_sym)
    return _to_leaves(net, de_dy), _to_leaves(net, dy_dh)


def path_factors(net: SimpleNamespace, k: int, wrt: sp.Symbol = w, *, in_states: bool = False) -> tuple[sp.Expr, ...]:
    r"""The factors of the path along which ``wrt`` enters at step ``k``, in chain order.

    For ``wrt`` :math:`w` or :math:`u`:
    :math:`\big(\partial E_N/\partial \hat y_N,\ \partial \hat y_N/\partial h_N,\
    \partial h_N/\partial h_{N-1}, \dots, \partial h_{k+1}/\partial h_k,\ \partial^+ h_k/\partial w\big)`.
    For :math:`v` there is one path (``k`` must be ``N``):
    :math:`\big(\partial E_N/\partial \hat y_N,\ \partial^+ \hat y_N/\partial v\big)`.
    """
    _check_net(net)
    _check_wrt(wrt)
    n = net.T
    low = n if wrt == v else 1
    k = positive_int("k", k, low=low, high=n)
    de_dy, dy_dh = output_factors(net, in_states=in_states)
    if wrt == v:
        dy_dv = sp.diff(net.yhat_held, v)
        dy_dv = dy_dv.subs(net.yhat_held, net.yhat_sym) if in_states else _to_leaves(net, dy_dv)
        return (de_dy, dy_dv)
    jacobians = [dcr.step_jacobian(net.rnn, i, in_states=in_states) for i in range(n, k, -1)]
    return (de_dy, dy_dh, *jacobians, dcr.immediate_partial(net.rnn, k, wrt, in_states=in_states))


def path_terms(net: SimpleNamespace, wrt: sp.Symbol = w, *, in_states: bool = False) -> tuple[sp.Expr, ...]:
    r"""One product per path: ``terms[k - 1]`` is the path entering at step ``k`` (one term for :math:`v`).

    The last factors are :func:`bptt_lib.derive.chain_rule.sum_over_paths` of the
    recurrence, so the terms here are that chapter's paths multiplied by the two output factors.
    """
    _check_net(net)
    _check_wrt(wrt)
    if wrt == v:
        return (sp.Mul(*path_factors(net, net.T, v, in_states=in_states)),)
    de_dy, dy_dh = output_factors(net, in_states=in_states)
    return tuple(de_dy * dy_dh * term for term in dcr.sum_over_paths(net.rnn, net.T, wrt, in_states=in_states))


def _is_zero(expr: sp.Expr) -> bool:
    expr = sp.expand(expr.doit())
    return expr == 0 or sp.simplify(expr) == 0


def prove_path_sum(n_steps: int = 3, activation="tanh", output="identity", wrt: sp.Symbol = w) -> bool:
    r"""Prove :math:`d E_N/d\,\text{wrt} = \sum_k` (path terms) for explicit ``n_steps``."""
    net = scalar_rnn_loss(n_steps, activation, output)
    return _is_zero(total_gradient(net, wrt) - sp.Add(*path_terms(net, wrt)))


# --- the general formula, as one SymPy expression ----------------------------------


class _Factor(sp.Function):
    """A named factor of the general formula: it prints as a fraction and is replaced before use."""

    is_commutative = True


def _p(printer, expr) -> str:
    return printer._print(expr)


class dE_dyhat(_Factor):
    r""":math:`\partial E_n / \partial \hat y_n` (one argument, :math:`n`)."""

    nargs = 1

    def _latex(self, printer):
        n = _p(printer, self.args[0])
        return rf"\frac{{\partial E^{{({n})}}}}{{\partial \hat{{y}}^{{({n})}}}}"


class dyhat_dh(_Factor):
    r""":math:`\partial \hat y_n / \partial h_n` (one argument, :math:`n`)."""

    nargs = 1

    def _latex(self, printer):
        n = _p(printer, self.args[0])
        return rf"\frac{{\partial \hat{{y}}^{{({n})}}}}{{\partial h^{{({n})}}}}"


class dh_dh(_Factor):
    r""":math:`\partial h_j / \partial h_{j-1}`, the one-step derivative (one argument, :math:`j`)."""

    nargs = 1

    def _latex(self, printer):
        j_, before = _p(printer, self.args[0]), _p(printer, self.args[0] - 1)
        return rf"\frac{{\partial h^{{({j_})}}}}{{\partial h^{{({before})}}}}"


class dplus_h(_Factor):
    r""":math:`\partial^+ h_k / \partial w`, the immediate partial (arguments :math:`k` and the weight)."""

    nargs = 2

    def _latex(self, printer):
        return rf"\frac{{\partial^+ h^{{({_p(printer, self.args[0])})}}}}{{\partial {_p(printer, self.args[1])}}}"


class dyhat_dh_source(_Factor):
    r"""The source's factor :math:`\partial \hat y_n / \partial h_i` (arguments :math:`n`, :math:`i`)."""

    nargs = 2

    def _latex(self, printer):
        n, i = (_p(printer, a) for a in self.args)
        return rf"\frac{{\partial \hat{{y}}^{{({n})}}}}{{\partial h^{{({i})}}}}"


class dh_dw_source(_Factor):
    r"""The source's factor :math:`\partial h_i / \partial w` (arguments :math:`i` and the weight)."""

    nargs = 2

    def _latex(self, printer):
        return rf"\frac{{\partial h^{{({_p(printer, self.args[0])})}}}}{{\partial {_p(printer, self.args[1])}}}"


_CHAIN_RANK = {dE_dyhat: 0, dyhat_dh: 1, dyhat_dh_source: 1, dh_dh: 2, dplus_h: 3, dh_dw_source: 3}


class _ChainPrinter(LatexPrinter):
    """LaTeX printer that writes the factors of a path in chain order (loss first, weight last)."""

    def _print_Mul(self, expr):
        if not any(isinstance(a, _Factor) for a in expr.args):
            return super()._print_Mul(expr)

        def key(arg):
            if isinstance(arg, _Factor):
                rank = _CHAIN_RANK[type(arg)]
                later_first = -arg.args[0] if rank == 2 and arg.args[0].is_number else 0
                return (rank, later_first)
            return (2, 0) if isinstance(arg, sp.Product) else (-1, 0)

        factors = sorted(expr.args, key=key)
        sign = ""
        if factors[0] == -1:
            sign, factors = "-", factors[1:]
        return sign + r" \, ".join(self.parenthesize(a, PRECEDENCE["Mul"]) for a in factors)

    def _print_Product(self, expr):
        """The book's convention: the latest step on the left, so the upper limit is written below."""
        if len(expr.limits) != 1:
            return super()._print_Product(expr)
        index, low, high = expr.limits[0]
        return (rf"\prod_{{{self._print(index)}={self._print(high)}}}^{{{self._print(low)}}} "
                + self.parenthesize(expr.function, PRECEDENCE["Mul"]))

    def _print_Add(self, expr, order=None):
        if not expr.has(_Factor):
            return super()._print_Add(expr, order)
        # paths by lag: the term with the fewest one-step factors first
        terms = sorted(expr.args, key=lambda term: (len(term.atoms(dh_dh)), str(term)))
        out = self._print(terms[0])
        for term in terms[1:]:
            printed = self._print(term)
            out += " - " + printed[1:] if printed.startswith("-") else " + " + printed
        return out


def formula_latex(expr: sp.Expr, **settings) -> str:
    """LaTeX of a formula built from the placeholder factors, each product in chain order.

    ``settings`` go to SymPy's LaTeX printer (for example ``symbol_names``).
    """
    if not isinstance(expr, sp.Basic):
        raise TypeError(f"expr must be a SymPy expression; got {type(expr).__name__}")
    return _ChainPrinter(settings).doprint(expr)


def general_formula(wrt: sp.Symbol = w) -> sp.Expr:
    r"""The right-hand side of the general formula for :math:`d E_N / d\,\text{wrt}`, with symbolic :math:`N`.

    .. math::

        \sum_{k=1}^{N} \frac{\partial E_N}{\partial \hat y_N}\,
        \frac{\partial \hat y_N}{\partial h_N}
        \prod_{j=N}^{k+1} \frac{\partial h_j}{\partial h_{j-1}}\;
        \frac{\partial^+ h_k}{\partial w}

    for :math:`w` or :math:`u`. The factors are placeholders (:class:`dh_dh` and so
    on) that print as fractions; :func:`evaluate_formula` fixes :math:`N` and puts
    the real derivatives in.
    """
    _check_wrt(wrt, (w, u))
    term = sp.Mul(dE_dyhat(N), dyhat_dh(N), sp.Product(dh_dh(j), (j, k + 1, N)), dplus_h(k, wrt), evaluate=False)
    return sp.Sum(term, (k, 1, N))


def source_formula(wrt: sp.Symbol = w) -> tuple[sp.Symbol, sp.Expr]:
    r"""The source's general formula, literally: ``(lhs_weight, rhs)``.

    The source writes, in the book's letters,
    :math:`\partial E_N/\partial w = \sum_{i=1}^{N} \frac{\partial E_N}{\partial \hat y_N}
    \frac{\partial \hat y_N}{\partial h_i} \frac{\partial h_i}{\partial w}` for :math:`w`, and the same
    right-hand side with :math:`u` for :math:`u`, but **with** :math:`\partial E_N/\partial w` **on the
    left** in that case too. So ``lhs_weight`` is :data:`w` for both.
    """
    _check_wrt(wrt, (w, u))
    i = sp.Symbol("i", integer=True, positive=True)
    term = sp.Mul(dE_dyhat(N), dyhat_dh_source(N, i), dh_dw_source(i, wrt), evaluate=False)
    return w, sp.Sum(term, (i, 1, N))


def _state_as_function_of(net, i: int, expr: sp.Expr) -> sp.Expr:
    """Write the states after step ``i`` in ``expr`` in terms of the state *symbol* ``h_i`` and later inputs."""
    for m in range(net.T, i, -1):
        expr = expr.subs(net.states[m - 1], net.step[m])
    return expr


def _common_replacements(net, expr: sp.Expr) -> sp.Expr:
    de_dy, dy_dh = output_factors(net)
    expr = expr.replace(dE_dyhat, lambda n: de_dy)
    return expr.replace(dyhat_dh, lambda n: dy_dh)


def evaluate_formula(formula: sp.Expr, net: SimpleNamespace) -> sp.Expr:
    """Put :math:`N` = ``net.T`` into ``formula`` (from :func:`general_formula`), expand the sum and
    product, and replace every placeholder by its derivative, in the leaves."""
    _check_net(net)
    expr = formula.subs(N, net.T).doit()
    expr = _common_replacements(net, expr)
    expr = expr.replace(dh_dh, lambda jj: dcr.step_jacobian(net.rnn, int(jj)))
    return expr.replace(dplus_h, lambda kk, ww: dcr.immediate_partial(net.rnn, int(kk), ww))


def evaluate_source_formula(formula: sp.Expr, net: SimpleNamespace, reading: str = "partial") -> sp.Expr:
    r"""Evaluate the source's formula (from :func:`source_formula`) under one reading of its factors.

    reading : {"partial", "total", "mixed"}
        ``"partial"``: every :math:`\partial` is a partial derivative of the formula as
        written, so :math:`\partial \hat y_N/\partial h_i` of :math:`\psi(v h_N)` is zero for
        :math:`i < N` and :math:`\partial h_i/\partial w` is the immediate partial.
        ``"total"``: both factors are total derivatives, :math:`d \hat y_N/d h_i` and
        :math:`d h_i / dw`.
        ``"mixed"``: :math:`d \hat y_N/d h_i` total, :math:`\partial^+ h_i/\partial w` immediate.
    """
    _check_net(net)
    if reading not in ("partial", "total", "mixed"):
        raise ValueError(f"reading must be 'partial', 'total' or 'mixed'; got {reading!r}")
    expr = formula.subs(N, net.T).doit()
    expr = expr.replace(dE_dyhat, lambda n: output_factors(net)[0])

    def dy_dh_i(n, i):
        i = int(i)
        if reading == "partial":
            return _to_leaves(net, sp.diff(net.yhat_held, net.states[i - 1]))
        through = _state_as_function_of(net, i, net.yhat_held)   # yhat_N with h_i held as a symbol
        return _to_leaves(net, sp.diff(through, net.states[i - 1]))

    def dh_i_dw(i, ww):
        if reading == "total":
            return dcr.total_derivative(net.rnn, int(i), ww)
        return dcr.immediate_partial(net.rnn, int(i), ww)

    expr = expr.replace(dyhat_dh_source, dy_dh_i)
    return expr.replace(dh_dw_source, dh_i_dw)


def prove_general_formula(n_steps: int = 3, activation="tanh", output="identity", wrt: sp.Symbol = w) -> bool:
    """Prove that :func:`general_formula`, evaluated for ``n_steps``, equals SymPy's derivative of the unrolled loss."""
    net = scalar_rnn_loss(n_steps, activation, output)
    return _is_zero(total_gradient(net, wrt) - evaluate_formula(general_formula(wrt), net))


def value_at_random_point(expr: sp.Expr, seed: int = 0) -> float:
    """Evaluate ``expr`` with every free symbol set to a seeded uniform value in [-1, 1] (sorted by name).

    Used to show that a difference is *not* zero: a nonzero value at one point settles it.
    """
    if not isinstance(expr, sp.Basic):
        raise TypeError(f"expr must be a SymPy expression; got {type(expr).__name__}")
    symbols = sorted(expr.free_symbols, key=lambda s: s.name)
    rng = np.random.default_rng(seed)
    values = {s: sp.Float(rng.uniform(-1.0, 1.0)) for s in symbols}
    result = sp.N(expr.doit().subs(values))
    if not result.is_number:
        raise ValueError(f"expr still has undefined functions after substitution: {result}")
    return float(result)


def reading_multiplicities(n_steps: int = 3, reading: str = "total", wrt: sp.Symbol = w,
                           activation="tanh", output="identity", seed: int = 0) -> tuple[np.ndarray, float]:
    r"""How many times a reading of the source's formula counts each path, measured at random points.

    The reading (:func:`evaluate_source_formula`) and the :math:`N` path terms
    (:func:`path_terms`) are evaluated at :math:`N + 3` seeded random points
    (every leaf uniform in :math:`[-1, 1]`); least squares gives the numbers
    :math:`m_k` with reading :math:`= \sum_k m_k c_k`.

    Returns
    -------
    m : ndarray, (N,)
        ``m[k - 1]`` is how often the path entering at step :math:`k` is counted.
    residual : float
        Size of reading :math:`- \sum_k m_k c_k` relative to the reading; round-off
        level when the reading is exactly such a combination.
    """
    net = scalar_rnn_loss(n_steps, activation, output)
    _, formula = source_formula(wrt)
    value = evaluate_source_formula(formula, net, reading).doit()
    paths = [term.doit() for term in path_terms(net, wrt)]
    leaves = sorted(set().union(value.free_symbols, *(c.free_symbols for c in paths)), key=lambda x: x.name)
    f = sp.lambdify(leaves, [value, *paths], modules="numpy")
    rng = np.random.default_rng(seed)
    rows = np.array([f(*rng.uniform(-1.0, 1.0, len(leaves))) for _ in range(n_steps + 3)], dtype=float)
    target, A = rows[:, 0], rows[:, 1:]
    m, *_ = np.linalg.lstsq(A, target, rcond=None)
    residual = float(np.linalg.norm(A @ m - target) / np.linalg.norm(target))
    return m, residual


# --- one step and the output, in plain symbols, for code generation -------------------


def one_step(activation="tanh") -> SimpleNamespace:
    r"""One step :math:`h = \phi(w h_{prev} + u x)` and its local derivatives, in symbols ``w, u, h_prev, x``.

    Returns ``args`` (the symbols, in order) and the expressions ``step``,
    ``step_jacobian`` (:math:`\partial h/\partial h_{prev}`), ``immediate_w``
    (:math:`\partial^+ h/\partial w`) and ``immediate_u`` (:math:`\partial^+ h/\partial u`).
    They are the one-step recurrence of :func:`bptt_lib.derive.chain_rule.scalar_rnn`
    with :math:`h_0, x_1` renamed.
    """
    rnn = dcr.scalar_rnn(1, activation)
    h_prev, x = sp.symbols("h_prev x", real=True)
    rename = {rnn.h0: h_prev, rnn.x[0]: x}
    step = rnn.step[1]
    return SimpleNamespace(
        args=(w, u, h_prev, x),
        step=step.subs(rename),
        step_jacobian=sp.diff(step, rnn.h0).subs(rename),
        immediate_w=dcr.immediate_partial(rnn, 1, w).subs(rename),
        immediate_u=dcr.immediate_partial(rnn, 1, u).subs(rename),
    )


def output_step(output="identity") -> SimpleNamespace:
    r"""The output :math:`\hat y = \psi(v h)`, the loss :math:`(d - \hat y)^2` and their derivatives, in ``v, h, d``.

    Returns ``args`` and ``prediction``, ``loss``, ``output_factor``
    (:math:`\partial E/\partial \hat y \cdot \partial \hat y/\partial h`) and ``grad_v``
    (:math:`\partial E/\partial \hat y \cdot \partial^+ \hat y/\partial v`).
    """
    net = scalar_rnn_loss(1, "tanh", output)
    h = sp.Symbol("h", real=True)
    rename = {net.states[-1]: h, net.d: sp.Symbol("d", real=True)}
    loss_of_h = net.loss_held.subs(net.yhat_sym, net.yhat_held)
    return SimpleNamespace(
        args=(v, h, rename[net.d]),
        prediction=net.yhat_held.subs(rename),
        loss=loss_of_h.subs(rename),
        output_factor=sp.diff(loss_of_h, net.states[-1]).subs(rename),
        grad_v=sp.diff(loss_of_h, v).subs(rename),
    )
