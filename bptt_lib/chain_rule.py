r"""Numerical companions of chapter 2, *The chain rule for many variables*.

The derivations live in :mod:`bptt_lib.derive.chain_rule` (SymPy); this module
turns them into NumPy functions with :func:`bptt_lib.codegen.generate` and
draws the chapter's figures.

- :func:`scalar_rnn_states`: the forward pass of the scalar RNN
  :math:`h^{(t)} = \tanh(w h^{(t-1)} + u x^{(t)})`, real or complex (for the
  complex step); a thin wrapper over :func:`bptt_lib.scalar_rnn.forward`.
- :func:`two_step_kernels`: generated kernels for :math:`d h_2 / dw`, the
  immediate partial :math:`\partial^+ h_2 / \partial w` and the implicit part.
- :func:`finite_difference_errors`: errors of central differences and of the
  complex step over a range of step sizes, measured with
  :func:`bptt_lib.gradcheck.relative_error`.
- :func:`plot_activation_derivatives`, :func:`plot_total_vs_immediate`,
  :func:`plot_step_size_errors`: the figures.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np

from . import gradcheck, scalar_rnn
from .codegen import generate
from .derive import activations
from .derive import chain_rule as derive_cr

__all__ = [
    "scalar_step_kernel", "scalar_rnn_states", "two_step_kernels", "activation_kernels",
    "finite_difference_errors",
    "plot_activation_derivatives", "plot_total_vs_immediate", "plot_step_size_errors",
]


def _real_scalar(name: str, value, *, allow_complex: bool = False):
    arr = np.asarray(value)
    if arr.shape != ():
        raise ValueError(f"{name} must be a scalar; got an array of shape {arr.shape}")
    kinds = "fiuc" if allow_complex else "fiu"
    if arr.dtype.kind not in kinds or isinstance(value, bool):
        what = "a real or complex number" if allow_complex else "a real number"
        raise TypeError(f"{name} must be {what}; got {value!r}")
    if not np.isfinite(arr):
        raise ValueError(f"{name} must be finite; got {value!r}")
    return arr.item()


def scalar_step_kernel():
    r"""One step of the scalar tanh RNN, generated: ``step(w, u, h_prev, x)`` is :math:`\tanh(w h_{prev} + u x)`.

    The same kernel as ``bptt_lib.scalar_rnn.step_kernels("tanh").step`` (one
    generated kernel serves chapters 2 and 4); it broadcasts and accepts complex
    arguments.
    """
    return scalar_rnn.step_kernels("tanh").step


def scalar_rnn_states(w, u, h0, x) -> np.ndarray:
    r"""States :math:`h^{(0)}, \dots, h^{(T)}` of the scalar RNN :math:`h^{(t)} = \tanh(w h^{(t-1)} + u x^{(t)})`.

    A thin wrapper over :func:`bptt_lib.scalar_rnn.forward` (same loop, same
    generated kernel, same input checks).

    Parameters
    ----------
    w, u : float or complex
        Recurrent and input weights (complex values are allowed so that the
        complex-step derivative can perturb them).
    h0 : float
        Initial state.
    x : array_like, (T,)
        Inputs :math:`x^{(1)}, \dots, x^{(T)}`, ``T >= 1``.

    Returns
    -------
    ndarray, (T + 1,)
        ``states[t]`` is :math:`h^{(t)}`; ``states[0]`` is ``h0``. Complex if ``w`` or ``u`` is.
    """
    return scalar_rnn.forward({"w": w, "u": u}, h0, x, "tanh")


@functools.cache
def two_step_kernels() -> SimpleNamespace:
    r"""NumPy kernels generated from the two-step scalar RNN of :mod:`bptt_lib.derive.chain_rule`.

    Each kernel takes ``(w, u, h_0, x_1, x_2)`` and broadcasts over arrays:

    - ``total_dw``: :math:`d h_2 / dw`, SymPy's derivative of the composed expression;
    - ``immediate_dw``: :math:`\partial^+ h_2 / \partial w = (1 - h_2^2)\, h_1`;
    - ``implicit_dw``: :math:`(\partial h_2 / \partial h_1)(d h_1 / dw)`, the difference.
    """
    rnn = derive_cr.scalar_rnn(2, "tanh")
    args = [rnn.w, rnn.u, rnn.h0, *rnn.x]
    return SimpleNamespace(
        total_dw=generate("total_dw", args, derive_cr.total_derivative(rnn, 2),
                          "Total derivative d h_2 / dw of the two-step scalar tanh RNN."),
        immediate_dw=generate("immediate_dw", args, derive_cr.immediate_partial(rnn, 2),
                              "Immediate partial of h_2 with respect to w, h_1 held fixed."),
        implicit_dw=generate("implicit_dw", args, derive_cr.implicit_part(rnn, 2),
                             "The implicit part (d h_2 / d h_1)(d h_1 / dw)."),
    )


@functools.cache
def activation_kernels() -> SimpleNamespace:
    """Generated NumPy functions of ``a`` for each activation and its derivative.

    ``activation_kernels().tanh`` and ``.tanh_prime``, ``.sigmoid`` and ``.sigmoid_prime``.
    """
    ns = SimpleNamespace()
    for name, act in activations.ACTIVATIONS.items():
        setattr(ns, name, generate(name, [activations.a], act.of_a, f"{name}(a)."))
        setattr(ns, f"{name}_prime", generate(f"{name}_prime", [activations.a], activations.derivative(name),
                                              f"The derivative of {name} with respect to a."))
    return ns


def finite_difference_errors(f: Callable, df: float, x0: float, steps) -> dict:
    r"""Relative errors of central differences and of the complex step at ``x0``.

    Parameters
    ----------
    f : callable
        A scalar function of one scalar; it must accept complex input for the
        complex step.
    df : float
        The exact derivative :math:`f'(x_0)` (from SymPy).
    x0 : float
        Where to differentiate.
    steps : array_like, (n,)
        Positive step sizes :math:`\epsilon`.

    Returns
    -------
    dict
        ``"steps"``, ``"central"`` and ``"complex"``: arrays of shape ``(n,)``,
        the relative errors :func:`bptt_lib.gradcheck.relative_error` of each
        estimate :math:`\tilde f'` against :math:`f'` (for scalars,
        :math:`|\tilde f' - f'| / \max(|f'|, |\tilde f'|)`); a zero error is
        reported as machine epsilon, so that it can be drawn on a log scale.
    """
    if not callable(f):
        raise TypeError(f"f must be callable; got {type(f).__name__}")
    df = _real_scalar("df", df)
    x0 = _real_scalar("x0", x0)
    steps = np.asarray(steps, dtype=float)
    if steps.ndim != 1 or steps.size == 0 or not np.all(steps > 0):
        raise ValueError("steps must be a non-empty 1-D array of positive step sizes")
    if df == 0:
        raise ValueError("df is zero: a relative error is undefined there; pick another x0")

    def g(p):
        return f(p["x"])

    central, complex_ = [], []
    for eps in steps:
        # Steps below the float64 spacing at x0 are swept on purpose, to show round-off.
        central.append(gradcheck.central_difference(g, {"x": x0}, eps=eps, allow_lost_step=True)["x"])
        complex_.append(gradcheck.complex_step(g, {"x": x0}, eps=eps)["x"])
    tiny = np.finfo(float).eps

    def err(estimates):
        return np.array([max(gradcheck.relative_error(df, e), tiny) for e in estimates])

    return {"steps": steps, "central": err(central), "complex": err(complex_)}


# --- figures ------------------------------------------------------------------------


def plot_activation_derivatives(a_max: float = 6.0):
    """Two panels: tanh and the sigmoid with their derivatives, each derivative's peak marked.

    The peaks come from :func:`bptt_lib.derive.activations.derivative_peak`
    (exact, from SymPy). Returns the figure.
    """
    a_max = _real_scalar("a_max", a_max)
    if a_max <= 0:
        raise ValueError(f"a_max must be positive; got {a_max!r}")
    k = activation_kernels()
    grid = np.linspace(-a_max, a_max, 401)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharex=True)
    labels = {"tanh": (r"$\tanh a$", r"$\tanh' a = 1 - \tanh^2 a$"),
              "sigmoid": (r"$\sigma(a)$", r"$\sigma'(a) = \sigma(a)\,(1 - \sigma(a))$")}
    for ax, name in zip(axes, ("tanh", "sigmoid")):
        where, peak = activations.derivative_peak(name)
        ax.plot(grid, getattr(k, name)(grid), label=labels[name][0])
        ax.plot(grid, getattr(k, f"{name}_prime")(grid), label=labels[name][1])
        ax.plot([float(where)], [float(peak)], "o", color="black", zorder=3)
        ax.annotate(f"peak {peak} at $a = {where}$", (float(where), float(peak)),
                    textcoords="offset points", xytext=(8, 6))
        ax.set_xlabel("pre-activation $a$")
        ax.set_ylabel(f"{name} and its derivative")
        ax.set_title(name)
        ax.legend(loc="lower right" if name == "tanh" else "upper left")
    axes[0].set_ylim(-1.15, 1.3)
    axes[1].set_ylim(-0.05, 1.15)
    fig.tight_layout()
    return fig


def plot_total_vs_immediate(w_grid, u: float, h0: float, x1: float, x2: float):
    r"""The total derivative :math:`d h_2/dw`, the immediate partial and the implicit part over ``w``.

    Values come from :func:`two_step_kernels`. Returns the figure.
    """
    w_grid = np.asarray(w_grid, dtype=float)
    if w_grid.ndim != 1 or w_grid.size < 2:
        raise ValueError("w_grid must be a 1-D array of at least two values")
    u, h0, x1, x2 = (_real_scalar(n, v) for n, v in (("u", u), ("h0", h0), ("x1", x1), ("x2", x2)))
    k = two_step_kernels()
    fig, ax = plt.subplots()
    ax.plot(w_grid, k.total_dw(w_grid, u, h0, x1, x2), lw=2.5, label=r"total $dh^{(2)}/dw$")
    ax.plot(w_grid, k.immediate_dw(w_grid, u, h0, x1, x2), "--",
            label=r"immediate $\partial^+ h^{(2)}/\partial w$")
    ax.plot(w_grid, k.implicit_dw(w_grid, u, h0, x1, x2), ":", lw=2,
            label=r"implicit $(\partial h^{(2)}/\partial h^{(1)})\,(dh^{(1)}/dw)$")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlabel("recurrent weight $w$")
    ax.set_ylabel("derivative of $h^{(2)}$ with respect to $w$")
    ax.legend(loc="best", fontsize=9)
    fig.tight_layout()
    return fig


def plot_step_size_errors(errors: dict):
    """Log-log plot of the errors returned by :func:`finite_difference_errors`. Returns the figure."""
    for key in ("steps", "central", "complex"):
        if key not in errors:
            raise KeyError(f"errors is missing key {key!r}; pass the dict from finite_difference_errors")
    fig, ax = plt.subplots()
    ax.loglog(errors["steps"], errors["central"], "o-", ms=3, label="central difference")
    ax.loglog(errors["steps"], errors["complex"], "s-", ms=3, label="complex step")
    ax.set_xlabel(r"step size $\epsilon$")
    ax.set_ylabel("relative error of the derivative")
    ax.legend()
    fig.tight_layout()
    return fig
