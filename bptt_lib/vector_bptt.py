r"""Numerical companions of the chapter *BPTT in vector form*.

The derivations live in :mod:`bptt_lib.derive.bptt` (SymPy); the backward pass
itself is :func:`bptt_lib.rnn.backward`. This module only adds what the chapter
needs to look at that backward pass:

- :func:`derivation_gradients`: the SymPy derivation, generated into NumPy with
  :func:`bptt_lib.codegen.generate`, evaluated example by example, so that
  ``rnn.backward`` can be compared with it on the same network;
- :func:`grad_h_norms`: the per-example norm :math:`\|\nabla_{h^{(t)}} L\|` over time;
- :func:`weight_grad_contributions`: the term of :math:`\nabla_W L` that each step adds.

The chapter's training example uses the delayed-recall task of
:func:`bptt_lib.tasks.delayed_recall`.
"""

from __future__ import annotations

import functools

import numpy as np
import sympy as sp

from . import rnn
from .codegen import generate
from .derive import bptt as dbptt
from .kernels import rnn_kernels
from .softmax import onehot
from .validation import as_array

__all__ = [
    "FORMS", "derivation_gradients", "grad_h_norms", "grad_h_from_later_steps",
    "weight_grad_contributions",
]

FORMS = ("componentwise", "correct", "diag_after")
"""What :func:`derivation_gradients` can evaluate: SymPy's entry-by-entry derivatives of the
unrolled loss, or the compact forms in the correct or the wrong (``diag_after``) order."""

_LIMITS = {"T": 3, "D": 2, "H": 3, "K": 3}


def _leaf_args(sym) -> list:
    columns = [sym.W, sym.U, sym.b, sym.V, sym.c, sym.h0, *sym.x, *sym.e]
    return [entry for M in columns for entry in M]


@functools.lru_cache(maxsize=16)
def _kernel(form: str, T: int, D: int, H: int, K: int):
    sym, componentwise = dbptt.derivation(T, D, H, K)
    names = ("o", "h", "c", "b", "V", "W", "U")
    if form == "componentwise":
        args = _leaf_args(sym)
        exprs = [*componentwise["o"], *componentwise["h"], *(componentwise[n] for n in names[2:])]
        exprs = [dbptt.to_leaves(sym, e) for e in exprs]
        doc = "SymPy's derivatives of the unrolled loss, entry by entry, in the leaves."
    else:
        compact = dbptt.compact_gradients(sym, order=form)
        stored = [s for col in sym.states[1:] for s in col] + [p for col in sym.yhat for p in col]
        args = _leaf_args(sym) + stored
        exprs = [*compact["o"], *compact["h"], *(compact[n] for n in names[2:])]
        doc = f"The compact BPTT formulas ({form} order), in the stored states and probabilities."
    # Plain identifiers: lambdify would otherwise swap the LaTeX-named symbols
    # for dummies with the slow ``subs``; ``xreplace`` does the same renaming fast.
    plain = [sp.Symbol(f"arg{i}", real=True) for i in range(len(args))]
    rename = dict(zip(args, plain))
    exprs = tuple(e.xreplace(rename) for e in exprs)
    return generate(f"bptt_{form}_T{T}_D{D}_H{H}_K{K}", plain, exprs, doc)


def derivation_gradients(params: dict, x, y, h0=None, *, form: str = "componentwise"):
    r"""Gradients of the batch-mean loss from the SymPy derivation, for explicit small sizes.

    Each example of the batch is evaluated on its own with a kernel generated
    from :mod:`bptt_lib.derive.bptt`, and the results are averaged over the
    batch, as :func:`bptt_lib.rnn.loss` averages the losses. The outputs
    therefore have the meaning and shapes of :func:`bptt_lib.rnn.backward`'s.

    Parameters
    ----------
    params : dict
        ``"U"`` (H, D), ``"W"`` (H, H), ``"V"`` (K, H), ``"b"`` (H,), ``"c"`` (K,).
    x : array_like, (T, B, D)
    y : array_like of int, (T, B)
    h0 : array_like, (B, H), optional
    form : {"componentwise", "correct", "diag_after"}
        ``"componentwise"``: SymPy's derivatives of the unrolled loss, evaluated
        from the leaves (parameters, inputs, targets) alone. ``"correct"`` and
        ``"diag_after"``: the compact formulas, evaluated from the stored
        states :math:`h^{(t)}` and probabilities :math:`\hat y^{(t)}` of
        :func:`bptt_lib.rnn.forward`.

    Returns
    -------
    grads : dict
        Same keys and shapes as ``params``.
    grad_h : ndarray, (T, B, H)
        :math:`\nabla_{h^{(t)}} L` of the batch-mean loss.
    grad_o : ndarray, (T, B, K)
        :math:`\nabla_{o^{(t)}} L` of the batch-mean loss.

    Raises
    ------
    ValueError
        For an unknown ``form`` or sizes beyond ``T <= 3``, ``D <= 2``, ``H <= 3``,
        ``2 <= K <= 3`` (the derivation is symbolic).
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}; got {form!r}")
    p, x, h0, sizes = rnn.check_inputs(params, x, h0, kind="float")
    y = rnn.check_targets(y, sizes)
    trace = rnn.forward_unchecked(p, x, h0)
    for dim, high in _LIMITS.items():
        if sizes[dim] > high:
            raise ValueError(
                f"{dim} = {sizes[dim]} is too large for the symbolic derivation (at most {high})"
            )
    if sizes["K"] < 2:
        raise ValueError(f"K = {sizes['K']}: the derivation needs at least two classes")
    T, B, D, H, K = (sizes[d] for d in "TBDHK")
    kernel = _kernel(form, T, D, H, K)
    targets = onehot(y, K)
    grads = {key: np.zeros_like(value) for key, value in p.items()}
    grad_h, grad_o = np.empty((T, B, H)), np.empty((T, B, K))
    for i in range(B):
        leaves = [p["W"], p["U"], p["b"], p["V"], p["c"], trace.h[0, i], x[:, i], targets[:, i]]
        values = [v for arr in leaves for v in np.ravel(arr)]
        if form != "componentwise":
            values += list(trace.h[1:, i].ravel()) + list(trace.yhat[:, i].ravel())
        out = [np.asarray(M, dtype=float) for M in kernel(*values)]
        grad_o[:, i] = np.stack([M.ravel() for M in out[:T]]) / B
        grad_h[:, i] = np.stack([M.ravel() for M in out[T:2 * T]]) / B
        for key, M in zip(("c", "b", "V", "W", "U"), out[2 * T:]):
            grads[key] += M.reshape(grads[key].shape) / B
    return grads, grad_h, grad_o


def grad_h_norms(grad_h) -> np.ndarray:
    r"""The per-example size of :math:`\nabla_{h^{(t)}} L` at every step, averaged over the batch.

    ``rnn.backward`` returns the gradient of the batch *mean*, in which each
    example's row is :math:`1/B` times the gradient of that example's own loss.
    This function undoes the :math:`1/B` and averages the Euclidean norms:

    .. math::

        n_t = \frac{1}{B} \sum_{i=1}^{B} \big\| B\, \texttt{grad\_h}[t-1, i, :] \big\|_2 .

    Parameters
    ----------
    grad_h : array_like, (T, B, H)
        The second return value of :func:`bptt_lib.rnn.backward`.

    Returns
    -------
    ndarray, (T,)
    """
    grad_h = as_array("grad_h", grad_h, ("T", "B", "H"), {})
    B = grad_h.shape[1]
    return np.linalg.norm(B * grad_h, axis=-1).mean(axis=1)


def grad_h_from_later_steps(params: dict, trace: rnn.Trace, grad_h) -> np.ndarray:
    r"""The part of :math:`\nabla_{h^{(t)}} L` that arrives through :math:`h^{(t+1)}`.

    .. math::

        W^\top \operatorname{diag}\big(1 - (h^{(t+1)})^2\big)\, \nabla_{h^{(t+1)}} L
        \quad (t < T), \qquad 0 \quad (t = T),

    computed with the generated kernels ``tanh_vjp`` and ``hidden_vjp_h_prev``.
    The rest of ``grad_h[t - 1]`` is the local term :math:`V^\top \nabla_{o^{(t)}} L`.

    Parameters
    ----------
    params : dict
        The parameters the trace was computed with (only ``"W"`` is used).
    trace : Trace
    grad_h : array_like, (T, B, H)
        From :func:`bptt_lib.rnn.backward`.

    Returns
    -------
    ndarray, (T, B, H)
    """
    if not isinstance(trace, rnn.Trace):
        raise TypeError(f"trace must be the Trace returned by rnn.forward; got {type(trace).__name__}")
    sizes: dict = {}
    W = as_array('params["W"]', params["W"], ("H", "H"), sizes)
    grad_h = as_array("grad_h", grad_h, ("T", "B", "H"), sizes)
    as_array("trace.h", trace.h[1:], ("T", "B", "H"), sizes)
    k = rnn_kernels()
    out = np.zeros_like(grad_h)
    for t in range(sizes["T"] - 1):
        out[t] = k.hidden_vjp_h_prev(k.tanh_vjp(grad_h[t + 1], trace.h[t + 2]), W)
    return out


def weight_grad_contributions(trace: rnn.Trace, grad_h) -> np.ndarray:
    r"""The term that each step adds to :math:`\nabla_W L`.

    .. math::

        C^{(t)} = \operatorname{diag}\big(1 - (h^{(t)})^2\big)\, \nabla_{h^{(t)}} L \; h^{(t-1)\top},
        \qquad \nabla_W L = \sum_{t=1}^{T} C^{(t)},

    summed over the batch, computed with the generated kernels ``tanh_vjp``
    and ``hidden_vjp_params`` one step at a time.

    Parameters
    ----------
    trace : Trace
        From :func:`bptt_lib.rnn.forward`.
    grad_h : array_like, (T, B, H)
        From :func:`bptt_lib.rnn.backward` on the same trace.

    Returns
    -------
    ndarray, (T, H, H)
        ``out[t - 1]`` is :math:`C^{(t)}`.
    """
    if not isinstance(trace, rnn.Trace):
        raise TypeError(f"trace must be the Trace returned by rnn.forward; got {type(trace).__name__}")
    sizes: dict = {}
    as_array("trace.h", trace.h, ("T+1", "B", "H"), sizes)
    as_array("trace.x", trace.x, ("T", "B", "D"), sizes)
    grad_h = as_array("grad_h", grad_h, ("T", "B", "H"), sizes)
    if sizes["T+1"] != sizes["T"] + 1:
        raise ValueError(f"trace.h must have T + 1 = {sizes['T'] + 1} steps; got {sizes['T+1']}")
    k = rnn_kernels()
    ones = np.ones((sizes["B"], 1))
    out = np.empty((sizes["T"], sizes["H"], sizes["H"]))
    for t in range(sizes["T"]):
        G_a = k.tanh_vjp(grad_h[t], trace.h[t + 1])
        out[t] = k.hidden_vjp_params(G_a, trace.h[t], trace.x[t], ones)[0]
    return out

