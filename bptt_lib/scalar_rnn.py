r"""Chapter 4, three paths back in time: the scalar RNN with a squared error, in NumPy.

The network (derived in :mod:`bptt_lib.derive.scalar_rnn`) is

.. math::

    h_t = \phi(w\, h_{t-1} + u\, x_t), \quad t = 1, \dots, N,

    \hat y_N = \psi(v\, h_N), \qquad E_N = (d_N - \hat y_N)^2 .

Every formula below is a kernel generated from that module by
:func:`bptt_lib.codegen.generate`:

- :func:`step_kernels` and :func:`output_kernels`: one step and its local
  derivatives; the output, the loss and theirs. :func:`forward`, :func:`loss`,
  :func:`path_contributions`, :func:`path_gains` and :func:`gradient` put them
  together for any :math:`N`; :func:`loss` also accepts complex weights, for the
  complex-step derivative.
- :func:`unrolled_gradient_kernel`: the derivative of the *fully unrolled* loss
  for a fixed small :math:`N`, one closed-form expression per weight; a
  reference for the path sums that shares none of their code.
  :func:`path_terms_kernel`: the SymPy path terms, one expression per path.
- :func:`contributions_by_lag` and :func:`plot_contributions_by_lag`: the size
  of each path's contribution against its lag :math:`N - k`, with the bound on
  :math:`|c_k|`, whose lag dependence is :math:`(|w| \max|\phi'|)^{N-k}`.

Parameters travel as a dict ``params = {"w": w, "u": u, "v": v}`` of scalars.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np

from .codegen import generate
from .derive import activations
from .derive import scalar_rnn as dsr
from .validation import as_array, check_finite_result, require_finite, require_keys

__all__ = [
    "PARAM_NAMES", "HIDDEN_ACTIVATIONS", "OUTPUT_ACTIVATIONS",
    "step_kernels", "output_kernels", "unrolled_gradient_kernel", "path_terms_kernel",
    "forward", "loss", "path_contributions", "path_gains", "gradient", "unrolled_gradient",
    "contributions_by_lag", "plot_contributions_by_lag",
]

PARAM_NAMES = ("w", "u", "v")
"""The weights: recurrent :math:`w` (source :math:`W_s`), input :math:`u` (:math:`W_x`), output :math:`v`
(:math:`W_y`)."""
HIDDEN_ACTIVATIONS = ("tanh", "sigmoid")
"""Names accepted for the hidden activation :math:`\\phi`."""
OUTPUT_ACTIVATIONS = ("identity", "tanh", "sigmoid")
"""Names accepted for the output activation :math:`\\psi`."""


# --- generated kernels -----------------------------------------------------------------


def _check_name(name: str, value, allowed) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}; got {value!r}")


@functools.cache
def step_kernels(activation: str = "tanh") -> SimpleNamespace:
    r"""Generated kernels of one step, each a function of ``(w, u, h_prev, x)`` that broadcasts.

    ``step``: :math:`\phi(w h_{prev} + u x)`; ``step_jacobian``: :math:`\partial h/\partial h_{prev}`;
    ``immediate_w``: :math:`\partial^+ h/\partial w`; ``immediate_u``: :math:`\partial^+ h/\partial u`.
    """
    _check_name("activation", activation, HIDDEN_ACTIVATIONS)
    sym = dsr.one_step(activation)
    return SimpleNamespace(
        step=generate("step", sym.args, sym.step, f"One step h = {activation}(w h_prev + u x)."),
        step_jacobian=generate("step_jacobian", sym.args, sym.step_jacobian,
                               "The one-step derivative d h / d h_prev."),
        immediate_w=generate("immediate_w", sym.args, sym.immediate_w,
                             "The immediate partial of h with respect to w, h_prev held fixed."),
        immediate_u=generate("immediate_u", sym.args, sym.immediate_u,
                             "The immediate partial of h with respect to u, h_prev held fixed."),
    )


@functools.cache
def output_kernels(output: str = "identity") -> SimpleNamespace:
    r"""Generated kernels of the output and the loss, each a function of ``(v, h, d)``.

    ``prediction``: :math:`\psi(v h)`; ``loss``: :math:`(d - \psi(v h))^2`;
    ``output_factor``: :math:`\partial E/\partial \hat y \cdot \partial \hat y/\partial h`;
    ``grad_v``: :math:`\partial E/\partial \hat y \cdot \partial^+ \hat y/\partial v`.
    """
    _check_name("output", output, OUTPUT_ACTIVATIONS)
    sym = dsr.output_step(output)
    return SimpleNamespace(
        prediction=generate("prediction", sym.args, sym.prediction, "The prediction yhat = psi(v h)."),
        loss=generate("loss", sym.args, sym.loss, "The squared error (d - yhat)^2."),
        output_factor=generate("output_factor", sym.args, sym.output_factor,
                               "dE/dyhat * dyhat/dh: where every path into h_N starts."),
        grad_v=generate("grad_v", sym.args, sym.grad_v, "dE/dv, the single path to the output weight."),
    )


@functools.cache
def unrolled_gradient_kernel(n_steps: int, activation: str = "tanh", output: str = "identity"):
    r"""A kernel for :math:`(dE_N/dw, dE_N/du, dE_N/dv)` from SymPy's derivative of the fully unrolled loss.

    Arguments ``(w, u, v, h_0, x_1, ..., x_N, d_N)``. ``n_steps`` is 1 to 4: the
    expression nests :math:`N` activations deep, and it is used as an independent
    reference, not for speed.
    """
    _check_name("activation", activation, HIDDEN_ACTIVATIONS)
    _check_name("output", output, OUTPUT_ACTIVATIONS)
    net = dsr.scalar_rnn_loss(n_steps, activation, output)
    args = [net.w, net.u, net.v, net.h0, *net.x, net.d]
    grads = tuple(dsr.total_gradient(net, p) for p in (net.w, net.u, net.v))
    return generate(f"unrolled_gradient_{n_steps}", args, grads,
                    f"(dE/dw, dE/du, dE/dv) of the {n_steps}-step scalar RNN, differentiated unrolled.")


@functools.cache
def path_terms_kernel(n_steps: int, wrt: str = "w", activation: str = "tanh", output: str = "identity"):
    r"""A kernel for the :math:`N` path terms of :math:`dE_N/dw` (or :math:`du`), each written out in the leaves.

    Generated from :func:`bptt_lib.derive.scalar_rnn.path_terms`; arguments as in
    :func:`unrolled_gradient_kernel`, result a tuple ``(c_1, ..., c_N)``. ``n_steps`` is 1 to 4.
    """
    _check_name("wrt", wrt, ("w", "u"))
    _check_name("activation", activation, HIDDEN_ACTIVATIONS)
    _check_name("output", output, OUTPUT_ACTIVATIONS)
    net = dsr.scalar_rnn_loss(n_steps, activation, output)
    args = [net.w, net.u, net.v, net.h0, *net.x, net.d]
    terms = dsr.path_terms(net, net.w if wrt == "w" else net.u)
    return generate(f"path_terms_{n_steps}_{wrt}", args, terms,
                    f"The {n_steps} path terms of dE/d{wrt}, one per step where {wrt} enters.")


# --- inputs ----------------------------------------------------------------------------


def _inputs(params, h0, x, d=None, *, allow_complex: bool = False, keys=PARAM_NAMES):
    """Validate and unpack ``params``, ``h0``, ``x`` (N,) and ``d``.

    Only the weights named in ``keys`` are required (the forward pass does not
    use :math:`v`); a weight not in ``keys`` is returned as ``None``.
    """
    require_keys("params", params, keys)
    kind = "number" if allow_complex else "float"
    sizes: dict = {}
    weights = []
    for name in PARAM_NAMES:
        if name not in keys:
            weights.append(None)
            continue
        value = as_array(f'params["{name}"]', params[name], (), sizes, kind=kind)
        require_finite(f'params["{name}"]', value)
        weights.append(value[()])
    h0 = as_array("h0", h0, (), sizes)[()]
    x = as_array("x", x, ("N",), sizes)
    if x.size == 0:
        raise ValueError(f"x must have shape (N,) with N >= 1; got shape {x.shape}")
    require_finite("h0", np.asarray(h0))
    require_finite("x", x)
    if d is not None:
        d = as_array("d", d, (), sizes)[()]
        require_finite("d", np.asarray(d))
    return (*weights, h0, x, d)


# --- forward, loss, paths, gradient --------------------------------------------------------


def forward(params, h0, x, activation: str = "tanh") -> np.ndarray:
    r"""The states :math:`h_0, h_1, \dots, h_N`.

    Parameters
    ----------
    params : dict
        ``{"w": float, "u": float}`` (complex values allowed, for the complex step); a key
        ``"v"`` may be present and is ignored, since the states do not depend on the output weight.
    h0 : float
        The initial state :math:`h_0`.
    x : array_like, (N,)
        The inputs :math:`x_1, \dots, x_N`.
    activation : {"tanh", "sigmoid"}
        :math:`\phi`.

    Returns
    -------
    ndarray, (N + 1,)
        ``h[t]`` is :math:`h_t`; complex if a weight is.
    """
    w, u, _, h0, x, _ = _inputs(params, h0, x, allow_complex=True, keys=("w", "u"))
    step = step_kernels(activation).step
    h = np.empty(x.size + 1, dtype=np.result_type(w, u, float))
    h[0] = h0
    for t in range(1, x.size + 1):
        h[t] = step(w, u, h[t - 1], x[t - 1])
    return h


def loss(params, h0, x, d, activation: str = "tanh", output: str = "identity"):
    r""":math:`E_N = (d_N - \psi(v h_N))^2`, real or complex (complex weights give a complex loss).

    Parameters as in :func:`forward`; ``d`` is the target :math:`d_N` (float).
    """
    _, _, v, _, _, d = _inputs(params, h0, x, d, allow_complex=True)
    h = forward(params, h0, x, activation)
    return output_kernels(output).loss(v, h[-1], d)


def path_contributions(params, h0, x, d, wrt: str = "w", activation: str = "tanh",
                       output: str = "identity") -> np.ndarray:
    r"""The contribution of each path to :math:`dE_N/dw` (or :math:`dE_N/du`).

    .. math::

        c_k = \frac{\partial E_N}{\partial \hat y_N} \frac{\partial \hat y_N}{\partial h_N}
              \Bigg(\prod_{j=N}^{k+1} \frac{\partial h_j}{\partial h_{j-1}}\Bigg)
              \frac{\partial^+ h_k}{\partial w}, \qquad k = 1, \dots, N .

    Parameters
    ----------
    params, h0, x, d, activation, output
        As in :func:`loss` (real values only).
    wrt : {"w", "u"}
        The weight.

    Returns
    -------
    ndarray, (N,)
        ``c[k - 1]`` is :math:`c_k`, the path on which the weight enters at step :math:`k`
        (lag :math:`N - k`). Their sum is the gradient.
    """
    _check_name("wrt", wrt, ("w", "u"))
    w, u, v, h0, x, d = _inputs(params, h0, x, d)
    ks = step_kernels(activation)
    immediate = ks.immediate_w if wrt == "w" else ks.immediate_u
    h = forward(params, h0, x, activation)
    n = x.size
    c = np.empty(n)
    carry = output_kernels(output).output_factor(v, h[n], d)   # dE/dh_N
    for k in range(n, 0, -1):                                  # backward in time
        c[k - 1] = carry * immediate(w, u, h[k - 1], x[k - 1])
        carry = carry * ks.step_jacobian(w, u, h[k - 1], x[k - 1])   # now dE/dh_{k-1}
    check_finite_result("path_contributions", {"c": c})
    return c


def path_gains(params, h0, x, activation: str = "tanh") -> np.ndarray:
    r"""The product of one-step derivatives along each path, :math:`\prod_{j=N}^{k+1} \partial h_j/\partial h_{j-1}`.

    Returns
    -------
    ndarray, (N,)
        ``gains[k - 1]`` for :math:`k = 1, \dots, N`; ``gains[N - 1] = 1`` (the empty product).
    """
    w, u, _, h0, x, _ = _inputs(params, h0, x, keys=("w", "u"))
    jac = step_kernels(activation).step_jacobian
    h = forward(params, h0, x, activation)
    n = x.size
    gains = np.empty(n)
    carry = 1.0
    for k in range(n, 0, -1):
        gains[k - 1] = carry
        carry = carry * jac(w, u, h[k - 1], x[k - 1])
    return gains


def gradient(params, h0, x, d, activation: str = "tanh", output: str = "identity") -> dict:
    r"""``{"w": dE_N/dw, "u": dE_N/du, "v": dE_N/dv}``: each path sum of :func:`path_contributions`, and the
    single path to :math:`v`.
    """
    _, _, v, _, _, d_value = _inputs(params, h0, x, d)
    h = forward(params, h0, x, activation)
    return {
        "w": float(np.sum(path_contributions(params, h0, x, d, "w", activation, output))),
        "u": float(np.sum(path_contributions(params, h0, x, d, "u", activation, output))),
        "v": float(output_kernels(output).grad_v(v, h[-1], d_value)),
    }


def unrolled_gradient(params, h0, x, d, activation: str = "tanh", output: str = "identity") -> dict:
    """The same dict as :func:`gradient`, from :func:`unrolled_gradient_kernel` (``N = len(x)`` from 1 to 4)."""
    w, u, v, h0, x, d = _inputs(params, h0, x, d)
    if not 1 <= x.size <= 4:
        raise ValueError(f"x must have shape (N,) with N from 1 to 4 for the unrolled kernel; got shape {x.shape}")
    values = unrolled_gradient_kernel(x.size, activation, output)(w, u, v, h0, *x, d)
    return {name: float(value) for name, value in zip(PARAM_NAMES, values)}


# --- how the contributions depend on the lag -----------------------------------------------


@functools.cache
def _max_activation_slope(activation: str) -> float:
    """max |phi'| over the real line, exact from SymPy (1 for tanh, 1/4 for the sigmoid)."""
    return float(activations.derivative_peak(activation)[1])


def contributions_by_lag(w_values, u: float, v: float, h0: float, x, d: float, wrt: str = "w",
                         activation: str = "tanh", output: str = "identity") -> list[dict]:
    r"""For each recurrent weight :math:`w`: the path contributions to :math:`dE_N/d\theta` by lag, and a bound.

    :math:`\theta` is ``wrt``, the recurrent weight ``"w"`` or the input weight ``"u"``.
    The bound on :math:`|c_k|` is

    .. math::

        |c_k| \le \Big|\frac{\partial E_N}{\partial h_N}\Big| \,
        \max_m \Big|\frac{\partial^+ h_m}{\partial \theta}\Big| \,
        \big(|w| \max_a |\phi'(a)|\big)^{N-k},

    because each one-step derivative is :math:`\phi'(a_j)\, w`. The maximum of
    :math:`|\phi'|` is exact, from :func:`bptt_lib.derive.activations.derivative_peak`.

    Returns
    -------
    list of dict, one per ``w``
        ``"w"``; ``"lag"``, ``"contribution"``, ``"gain"`` and ``"bound"``, arrays (N,)
        ordered by lag :math:`0, 1, \dots, N - 1`; ``"gain"`` is :func:`path_gains`, and
        ``"gain_bound"`` is :math:`(|w| \max|\phi'|)^{\text{lag}}`.
    """
    w_values = np.asarray(w_values, dtype=float)
    if w_values.ndim != 1 or w_values.size == 0:
        raise ValueError(f"w_values must have shape (n,) with n >= 1; got shape {w_values.shape}")
    _check_name("activation", activation, HIDDEN_ACTIVATIONS)
    _check_name("wrt", wrt, ("w", "u"))
    peak = _max_activation_slope(activation)
    results = []
    for w in w_values:
        params = {"w": float(w), "u": u, "v": v}
        _, _, v_, h0_, x_, d_ = _inputs(params, h0, x, d)
        c = path_contributions(params, h0, x, d, wrt, activation, output)[::-1]
        gains = path_gains(params, h0, x, activation)[::-1]
        h = forward(params, h0, x, activation)
        ks = step_kernels(activation)
        immediate = (ks.immediate_w if wrt == "w" else ks.immediate_u)(float(w), u, h[:-1], x_)
        start = abs(output_kernels(output).output_factor(v_, h[-1], d_))
        lag = np.arange(x_.size)
        gain_bound = (abs(w) * peak) ** lag
        results.append({"w": float(w), "wrt": wrt, "lag": lag, "contribution": c, "gain": gains,
                        "gain_bound": gain_bound, "bound": start * np.max(np.abs(immediate)) * gain_bound})
    return results


def plot_contributions_by_lag(results: list[dict], title: str = "", floor: float = 1e-30):
    r"""One panel per :math:`w`: :math:`|c_k|` against the lag :math:`N - k` (log scale), with the bound.

    ``results`` comes from :func:`contributions_by_lag`; ``title`` goes above the
    panels. Values below ``floor`` are drawn at ``floor``. Returns the figure.
    """
    if not isinstance(results, list) or not results or not all(isinstance(r, dict) for r in results):
        raise TypeError("results must be the non-empty list returned by contributions_by_lag")
    for r in results:
        require_keys("each result", r, ["w", "lag", "contribution", "bound"])
    n = len(results)
    cols = 2 if n > 1 else 1
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.0 * rows), sharex=True, squeeze=False)
    for ax, r in zip(axes.flat, results):
        ax.semilogy(r["lag"], np.maximum(np.abs(r["contribution"]), floor), "o", ms=3.5,
                    label=r"$|c_k|$, path entering at step $k$")
        ax.semilogy(r["lag"], np.maximum(r["bound"], floor), "--", color="black", lw=1,
                    label=r"bound on $|c_k|$, all factors")
        ax.set_title(f"$w = {r['w']:g}$")
        ax.set_xlabel("lag $N - k$ (steps back in time)")
        ax.set_ylabel(rf"$|c_k|$ in $dE^{{(N)}}/d{r.get('wrt', 'w')}$")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    axes.flat[0].legend(loc="lower left", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
