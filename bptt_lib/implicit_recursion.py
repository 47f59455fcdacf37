r"""Numerical companions of chapter 5, *The total loss and the implicit part of the derivative*.

The derivations live in :mod:`bptt_lib.derive.implicit_recursion` (SymPy); every
formula below is a kernel generated from them (:func:`recursion_kernels`) or one
of the RNN's own kernels (:func:`bptt_lib.kernels.rnn_kernels`).

- :func:`per_step_losses`, :func:`output_weight_terms`: the total loss and
  :math:`\nabla_V L` as sums of per-step terms.
- :func:`direct_grad_h`: :math:`\partial L^{(t)} / \partial h^{(t)}`, the part of the
  gradient that reaches :math:`h^{(t)}` through :math:`o^{(t)}` alone.
- :func:`jvp`, :func:`sensitivities`, :func:`forward_mode_grads`: the explicit plus
  implicit recursion run forward in time (forward mode), and the loss gradient it gives.
- :func:`linear_states`, :func:`linear_closed_form`, :func:`power_norms`,
  :func:`plot_power_norms`: the linear RNN, its closed form in powers of :math:`W`,
  and how :math:`\lVert W^n \rVert` grows or decays; :func:`power_norm_summary`: the gap
  :math:`\lVert W^n\rVert_2 / \rho^n` and the departure from normality.
- :func:`identity_bptt_grads`, :func:`identity_closed_form_grads`: the identity-activation
  RNN's gradients by BPTT (the activation hooks of :func:`bptt_lib.rnn.loss_and_grads`)
  and from their closed form in powers of :math:`W^\top`.
- :func:`lag_gradients`, :func:`fit_multiplicities`: the gradient split by the lag of
  its paths, and how often a quantity counts each part.

Arrays follow :mod:`bptt_lib.rnn`: ``x`` (T, B, D), hidden states ``h`` (T + 1, B, H)
with ``h[0] = h0``.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np

from . import rnn
from .codegen import generate
from .derive import implicit_recursion as dimr
from .jacobian_products import recurrent_weight
from .kernels import rnn_kernels
from .path_sum import path_term
from .softmax import onehot
from .validation import as_array, check_finite_result, require_finite, require_keys

__all__ = [
    "recursion_kernels", "per_step_losses", "output_weight_terms", "direct_grad_h",
    "jvp", "sensitivities", "forward_mode_grads",
    "linear_states", "linear_closed_form", "power_norms",
    "plot_power_norms", "power_norm_summary",
    "identity_bptt_grads", "identity_closed_form_grads",
    "lag_gradients", "fit_multiplicities",
]

_HIDDEN_PARAMS = ("W", "U", "b")


@functools.cache
def recursion_kernels() -> SimpleNamespace:
    r"""Generate (once) the kernels of this chapter from :mod:`bptt_lib.derive.implicit_recursion`.

    - ``explicit_tangent(H_prev, X, W_dot, U_dot, b_dot, one_B)``:
      :math:`H_{\text{prev}} \dot W^\top + X \dot U^\top + 1_B \dot b`, (B, H);
    - ``implicit_tangent(H_dot_prev, W)``: :math:`\dot H_{\text{prev}} W^\top`, (B, H);
    - ``linear_start(H0, W, n)``: :math:`H^{(0)} (W^\top)^n`, the initial state carried ``n`` steps;
    - ``linear_input(X, U, W, n)``: :math:`X U^\top (W^\top)^n`, an input carried ``n`` steps;
    - ``identity_grad_W(G, V, W, n, H_prev)``, ``identity_grad_U(G, V, W, n, X)``,
      ``identity_grad_V(G, H_t)``: the terms of the identity RNN's closed-form gradients
      (examples as columns; see :func:`identity_closed_form_grads`);
    - ``matrix_power(W, n)``: :math:`W^n`, the linear RNN's Jacobian :math:`\partial h^{(t)}/\partial h^{(t-n)}`.
    """
    s = dimr.tangent_symbols()
    explicit, implicit = dimr.tangent_preactivation(s)
    lin = dimr.linear_symbols(1)
    start, carried = dimr.linear_terms(lin)
    k = SimpleNamespace()
    k.explicit_tangent = generate(
        "explicit_tangent", [s.H_prev, s.X, s.W_dot, s.U_dot, s.b_dot, s.one_B], explicit,
        "Explicit part of the tangent of a: H_prev W_dot^T + X U_dot^T + 1_B b_dot, (B, H).")
    k.implicit_tangent = generate(
        "implicit_tangent", [s.H_dot_prev, s.W], implicit,
        "Implicit part of the tangent of a: H_dot_prev W^T, (B, H).")
    k.linear_start = generate(
        "linear_start", [lin.H0, lin.W, lin.n], start,
        "The initial state carried n steps by the linear RNN: H0 (W^T)^n, (B, H).")
    k.linear_input = generate(
        "linear_input", [lin.X[0], lin.U, lin.W, lin.n], carried,
        "An input carried n steps by the linear RNN: X U^T (W^T)^n, (B, H).")
    g = dimr.identity_gradient_terms()
    carried_args = [g.G, g.sym.V, g.sym.W, g.sym.n]
    k.identity_grad_W = generate(
        "identity_grad_W", [*carried_args, g.H_prev], g.W,
        "A term of dL/dW of the identity RNN: (W^T)^n V^T G H_prev^T, examples as columns.")
    k.identity_grad_U = generate(
        "identity_grad_U", [*carried_args, g.X], g.U,
        "A term of dL/dU of the identity RNN: (W^T)^n V^T G X^T, examples as columns.")
    k.identity_grad_V = generate(
        "identity_grad_V", [g.G, g.Ht], g.V,
        "A term of dL/dV of the identity RNN: G H_t^T, examples as columns.")
    k.matrix_power = generate(
        "matrix_power", [lin.W, lin.n], dimr.linear_power(lin),
        "W^n, the Jacobian of h^(t) with respect to h^(t-n) in the linear RNN.")
    return k


# --- the total loss and the output weights ------------------------------------------------------


def per_step_losses(params: dict, x, y, h0=None) -> np.ndarray:
    r"""The per-step losses :math:`L^{(t)}`, each averaged over the batch.

    Parameters
    ----------
    params : dict
        ``"U"`` (H, D), ``"W"`` (H, H), ``"V"`` (K, H), ``"b"`` (H,), ``"c"`` (K,).
    x : array_like, (T, B, D)
    y : array_like of int, (T, B)
    h0 : array_like, (B, H), optional

    Returns
    -------
    ndarray, (T,)
        ``losses[t - 1]`` is :math:`\frac1B \sum_b -\log \hat y^{(t)}_{b, y^{(t)}_b}`;
        their sum is :func:`bptt_lib.rnn.loss`.
    """
    p, x, h0, sizes = rnn.check_inputs(params, x, h0, kind="float")
    y = rnn.check_targets(y, sizes)
    trace = rnn.forward_unchecked(p, x, h0)
    picked = np.take_along_axis(trace.log_yhat, y[..., None], axis=-1)[..., 0]
    return -picked.mean(axis=1)


def _output_gradients(p: dict, trace: rnn.Trace, y: np.ndarray):
    """Per step: the generated ``softmax_nll_grad`` and ``output_vjp`` kernels, (dV_t, dc_t, dh_t)."""
    k = rnn_kernels()
    T, B, _ = trace.x.shape
    K = p["V"].shape[0]
    ones = np.ones((B, 1))
    out = []
    for t in range(T):
        G_o = k.softmax_nll_grad(trace.yhat[t], onehot(y[t], K), B)
        out.append(k.output_vjp(G_o, trace.h[t + 1], p["V"], ones))
    return out


def output_weight_terms(params: dict, x, y, h0=None) -> np.ndarray:
    r"""The terms of :math:`\nabla_V L = \sum_t (\hat y^{(t)} - e_{y^{(t)}})\, h^{(t)\top}`, one per step.

    Term ``t`` uses only step ``t``'s probabilities and hidden state (the
    generated ``output_vjp`` kernel applied to that step alone), averaged over
    the batch.

    Returns
    -------
    ndarray, (T, K, H)
        Their sum over the first axis is ``grads["V"]`` of :func:`bptt_lib.rnn.loss_and_grads`.
    """
    p, x, h0, sizes = rnn.check_inputs(params, x, h0, kind="float")
    y = rnn.check_targets(y, sizes)
    trace = rnn.forward_unchecked(p, x, h0)
    return np.stack([dV for dV, _, _ in _output_gradients(p, trace, y)])


def direct_grad_h(params: dict, x, y, h0=None) -> np.ndarray:
    r""":math:`\partial L^{(t)} / \partial h^{(t)} = V^\top (\hat y^{(t)} - e_{y^{(t)}}) / B` for every step.

    This is the gradient that reaches :math:`h^{(t)}` through :math:`o^{(t)}` only,
    not the total gradient :math:`\nabla_{h^{(t)}} L` of backpropagation (which also
    collects the later losses through :math:`h^{(t+1)}, h^{(t+2)}, \dots`).

    Returns
    -------
    ndarray, (T, B, H)
    """
    p, x, h0, sizes = rnn.check_inputs(params, x, h0, kind="float")
    y = rnn.check_targets(y, sizes)
    trace = rnn.forward_unchecked(p, x, h0)
    return rnn.output_grads(p, trace, y)[2]


# --- forward mode: the explicit plus implicit recursion ------------------------------------------


def _check_hidden(params, x, h0):
    require_keys("params", params, list(_HIDDEN_PARAMS))
    sizes: dict = {}
    p = {}
    for key in ("W", "U", "b"):
        p[key] = as_array(f'params["{key}"]', params[key], rnn.PARAM_SHAPES[key], sizes)
        require_finite(f'params["{key}"]', p[key])
    x = as_array("x", x, ("T", "B", "D"), sizes)
    require_finite("x", x)
    h0 = np.zeros((sizes["B"], sizes["H"])) if h0 is None else h0
    h0 = as_array("h0", h0, ("B", "H"), sizes)
    require_finite("h0", h0)
    return p, x, h0, sizes


def _check_tangent(tangent, sizes: dict) -> dict:
    if not isinstance(tangent, dict):
        raise TypeError(f"tangent must be a dict with some of the keys {list(_HIDDEN_PARAMS)}; "
                        f"got {type(tangent).__name__}")
    unknown = sorted(set(tangent) - set(_HIDDEN_PARAMS))
    if unknown:
        raise KeyError(f"tangent has unknown key(s) {unknown}; allowed keys {list(_HIDDEN_PARAMS)}")
    out = {}
    for key in _HIDDEN_PARAMS:
        shape = tuple(sizes[d] for d in rnn.PARAM_SHAPES[key])
        if key in tangent:
            out[key] = as_array(f'tangent["{key}"]', tangent[key], rnn.PARAM_SHAPES[key], dict(sizes))
            require_finite(f'tangent["{key}"]', out[key])
        else:
            out[key] = np.zeros(shape)
    return out


def _jvp(p: dict, x: np.ndarray, h0: np.ndarray, tangent: dict):
    k = recursion_kernels()
    T, B, _ = x.shape
    H = p["W"].shape[0]
    # The states come from the RNN's own forward pass; the output layer plays no part in the
    # tangents, so a one-class placeholder stands in for V and c.
    placeholder = {"V": np.zeros((1, H)), "c": np.zeros(1)}
    h = rnn.forward_unchecked({**p, **placeholder}, x, h0).h
    one_B = np.ones((B, 1))
    h_dot = np.zeros_like(h)                   # h0 does not depend on the parameters
    tanh_vjp = rnn_kernels().tanh_vjp
    for t in range(T):
        explicit = k.explicit_tangent(h[t], x[t], tangent["W"], tangent["U"], tangent["b"][None, :], one_B)
        implicit = k.implicit_tangent(h_dot[t], p["W"])
        # tanh's Jacobian is diagonal, hence symmetric: its JVP is the same elementwise product as its VJP.
        h_dot[t + 1] = tanh_vjp(explicit + implicit, h[t + 1])
    return h, h_dot


def jvp(params: dict, x, tangent: dict, h0=None) -> tuple[np.ndarray, np.ndarray]:
    r"""Hidden states and their derivative along one direction in parameter space (forward mode).

    Runs, alongside the forward pass,

    .. math::

        \dot h^{(t)} = \big(1 - (h^{(t)})^2\big) \odot
            \Big(\underbrace{\dot W h^{(t-1)} + \dot U x^{(t)} + \dot b}_{\text{explicit}}
            + \underbrace{W \dot h^{(t-1)}}_{\text{implicit}}\Big),

        \dot h^{(0)} = 0,

    where :math:`\dot h^{(t)} = \frac{d}{d\epsilon} h^{(t)}(\theta + \epsilon \dot\theta)` at :math:`\epsilon = 0`.

    Parameters
    ----------
    params : dict
        At least ``"W"`` (H, H), ``"U"`` (H, D), ``"b"`` (H,); other keys are ignored.
    x : array_like, (T, B, D)
    tangent : dict
        The direction: some of the keys ``"W"``, ``"U"``, ``"b"`` with the
        parameters' shapes; a missing key is a zero direction.
    h0 : array_like, (B, H), optional
        Initial state (zeros by default); it is held fixed.

    Returns
    -------
    h, h_dot : ndarray, (T + 1, B, H)
        The states and their tangents; ``h_dot[0]`` is zero.
    """
    p, x, h0, sizes = _check_hidden(params, x, h0)
    tangent = _check_tangent(tangent, sizes)
    return _jvp(p, x, h0, tangent)


def sensitivities(params: dict, x, wrt: str = "W", h0=None) -> np.ndarray:
    r"""The full sensitivity :math:`d h^{(t)}_i / d\theta_{jk}` for every step, example and entry.

    One :func:`jvp` per entry of the parameter ``wrt`` (the direction is that
    entry's unit matrix): forward mode pays one pass per parameter entry.

    Parameters
    ----------
    params : dict
        ``"W"``, ``"U"``, ``"b"`` as in :func:`jvp`.
    x : array_like, (T, B, D)
    wrt : {"W", "U", "b"}
    h0 : array_like, (B, H), optional

    Returns
    -------
    ndarray, (T + 1, B, H) + shape of ``params[wrt]``
        ``S[t, b, i, j, k]`` is :math:`\partial h^{(t)}_i / \partial W_{jk}` for example ``b``
        (for ``"b"`` the last axes are ``(H,)``). ``S[0]`` is zero.
    """
    if wrt not in _HIDDEN_PARAMS:
        raise ValueError(f"wrt must be one of {list(_HIDDEN_PARAMS)}; got {wrt!r}")
    p, x, h0, sizes = _check_hidden(params, x, h0)
    shape = p[wrt].shape
    S = np.zeros((x.shape[0] + 1,) + h0.shape + shape)
    zero = {key: np.zeros_like(p[key]) for key in _HIDDEN_PARAMS}
    for index in np.ndindex(shape):
        direction = dict(zero)
        direction[wrt] = np.zeros(shape)
        direction[wrt][index] = 1.0
        _, h_dot = _jvp(p, x, h0, direction)
        S[(slice(None), slice(None), slice(None)) + index] = h_dot
    return S


def forward_mode_grads(params: dict, x, y, h0=None) -> tuple[float, dict]:
    r"""The loss and its gradient, with :math:`W, U, b` done in forward mode.

    .. math::

        \frac{dL}{d\theta} = \sum_{t=1}^{T} \Big(\frac{\partial L^{(t)}}{\partial h^{(t)}}\Big)^{\!\top}
            \frac{d h^{(t)}}{d\theta},

    with :math:`\partial L^{(t)}/\partial h^{(t)}` from :func:`direct_grad_h` and
    :math:`d h^{(t)}/d\theta` from :func:`sensitivities`. :math:`V` and :math:`c` need
    no recursion: their gradients are sums of per-step terms
    (:func:`output_weight_terms`).

    Returns
    -------
    loss : float
    grads : dict
        ``"U"``, ``"W"``, ``"V"``, ``"b"``, ``"c"`` with the parameters' shapes; equal to
        :func:`bptt_lib.rnn.loss_and_grads` up to round-off.
    """
    p, x, h0, sizes = rnn.check_inputs(params, x, h0, kind="float")
    y = rnn.check_targets(y, sizes)
    trace = rnn.forward_unchecked(p, x, h0)
    per_step = _output_gradients(p, trace, y)
    g_h = np.stack([dh for _, _, dh in per_step])                           # (T, B, H)
    grads = {"V": sum(dV for dV, _, _ in per_step), "c": sum(dc for _, dc, _ in per_step).reshape(-1)}
    for key in _HIDDEN_PARAMS:
        S = sensitivities(p, x, key, h0)[1:]                                 # (T, B, H, ...)
        grads[key] = np.tensordot(g_h, S, axes=([0, 1, 2], [0, 1, 2]))
    value = float(rnn.nll(trace, y))
    check_finite_result("forward_mode_grads", grads)
    return value, {key: grads[key] for key in rnn.PARAM_SHAPES}


# --- the linear RNN -----------------------------------------------------------------------------


def _check_linear(W, U, x, h0):
    sizes: dict = {}
    W = as_array("W", W, ("H", "H"), sizes)
    U = as_array("U", U, ("H", "D"), sizes)
    x = as_array("x", x, ("T", "B", "D"), sizes)
    h0 = np.zeros((sizes["B"], sizes["H"])) if h0 is None else h0
    h0 = as_array("h0", h0, ("B", "H"), sizes)
    for name, arr in (("W", W), ("U", U), ("x", x), ("h0", h0)):
        require_finite(name, arr)
    return W, U, x, h0


def linear_states(W, U, x, h0=None) -> np.ndarray:
    r"""Run the linear RNN :math:`h^{(t)} = W h^{(t-1)} + U x^{(t)}` step by step.

    Uses the RNN's own ``hidden_preactivation`` kernel with :math:`b = 0` and the
    identity as activation.

    Parameters
    ----------
    W : array_like, (H, H)
    U : array_like, (H, D)
    x : array_like, (T, B, D)
    h0 : array_like, (B, H), optional

    Returns
    -------
    ndarray, (T + 1, B, H)
    """
    W, U, x, h0 = _check_linear(W, U, x, h0)
    k = rnn_kernels()
    T, B, _ = x.shape
    h = np.empty((T + 1,) + h0.shape)
    h[0] = h0
    zero_b, one_B = np.zeros((1, W.shape[0])), np.ones((B, 1))
    for t in range(T):
        h[t + 1] = k.hidden_preactivation(h[t], x[t], W, U, zero_b, one_B)
    return h


def linear_closed_form(W, U, x, h0=None) -> np.ndarray:
    r"""The linear RNN's states from the closed form :math:`h^{(t)} = W^t h^{(0)} + \sum_{k=1}^{t} W^{t-k} U x^{(k)}`.

    No state is computed from the previous one: each :math:`h^{(t)}` is a sum of
    generated terms (``linear_start``, ``linear_input`` of :func:`recursion_kernels`).
    Arguments and result as in :func:`linear_states`.
    """
    W, U, x, h0 = _check_linear(W, U, x, h0)
    k = recursion_kernels()
    T = x.shape[0]
    h = np.empty((T + 1,) + h0.shape)
    for t in range(T + 1):
        h[t] = k.linear_start(h0, W, t)
        for j in range(1, t + 1):
            h[t] += k.linear_input(x[j - 1], U, W, t - j)
    return h


def power_norms(W, n_max: int) -> np.ndarray:
    r"""Spectral norms :math:`\lVert W^n \rVert_2` for ``n = 0 .. n_max``, from the generated ``matrix_power`` kernel.

    Returns
    -------
    ndarray, (n_max + 1,)
    """
    W = as_array("W", W, ("H", "H"), {})
    require_finite("W", W)
    if isinstance(n_max, bool) or not isinstance(n_max, (int, np.integer)) or n_max < 0:
        raise ValueError(f"n_max must be a non-negative int; got {n_max!r}")
    k = recursion_kernels()
    return np.array([np.linalg.norm(k.matrix_power(W, n), 2) for n in range(n_max + 1)])


def plot_power_norms(radii=(0.8, 1.0, 1.2), n_hidden: int = 16, n_max: int = 50, *, seed: int = 0):
    r"""Plot :math:`\lVert W^n \rVert_2` against ``n`` for random ``W`` of several spectral radii.

    Each solid line is one matrix (:func:`bptt_lib.jacobian_products.recurrent_weight`
    with ``kind="gaussian"``, the same underlying draw rescaled); the dashed line of the same colour is
    :math:`\rho^n`, which :math:`\lVert W^n \rVert^{1/n}` approaches (Gelfand's
    formula). Returns the figure.
    """
    radii = np.atleast_1d(np.asarray(radii, dtype=float))
    if radii.ndim != 1 or not np.all(radii > 0):
        raise ValueError("radii must be a 1-D sequence of positive numbers")
    n = np.arange(n_max + 1)
    fig, ax = plt.subplots()
    for rho in radii:
        W = recurrent_weight(n_hidden, rho, kind="gaussian", rng=np.random.default_rng(seed))
        line, = ax.semilogy(n, power_norms(W, n_max), lw=2, label=rf"$\rho(W) = {rho:g}$")
        ax.semilogy(n, rho**n, "--", color=line.get_color(), lw=1)
    ax.set_xlabel(r"power $n$ (steps between $h^{(k)}$ and $h^{(k+n)}$)")
    ax.set_ylabel(r"$\|W^n\|_2 = \|\partial h^{(k+n)} / \partial h^{(k)}\|_2$")
    ax.legend(title=rf"$H = {n_hidden}$; dashed: $\rho^n$")
    fig.tight_layout()
    return fig


def power_norm_summary(radii=(0.8, 1.0, 1.2), n_hidden: int = 16, n_max: int = 60, *, kind: str = "gaussian",
                       seed: int = 0) -> list[dict]:
    r"""For each spectral radius: how far :math:`\lVert W^n\rVert_2` sits above :math:`\rho^n`, and how
    non-normal :math:`W` is.

    ``W`` is :func:`bptt_lib.jacobian_products.recurrent_weight` (``kind`` "gaussian",
    the draws of :func:`plot_power_norms`, or "orthogonal", a normal matrix).
    Each row has ``rho``, ``norm`` (:math:`\lVert W\rVert_2`), ``min_ratio`` and
    ``max_ratio`` (of :math:`\lVert W^n\rVert_2 / \rho^n` over :math:`1 \le n \le n_{max}`),
    ``root`` (:math:`\lVert W^{n_{max}}\rVert_2^{1/n_{max}}`) and ``non_normality``,
    :math:`\lVert W W^\top - W^\top W\rVert_F / \lVert W\rVert_F^2` (zero exactly for a normal matrix).
    """
    rows = []
    for rho in np.atleast_1d(np.asarray(radii, dtype=float)):
        W = recurrent_weight(n_hidden, rho, kind=kind, rng=np.random.default_rng(seed))
        n = np.arange(1, n_max + 1)
        ratios = power_norms(W, n_max)[1:] / rho**n
        rows.append({
            "rho": float(rho), "norm": float(np.linalg.norm(W, 2)),
            "min_ratio": float(ratios.min()), "max_ratio": float(ratios.max()),
            "root": float((ratios[-1] * rho**n_max) ** (1 / n_max)),
            "non_normality": float(np.linalg.norm(W @ W.T - W.T @ W) / np.linalg.norm(W) ** 2),
        })
    return rows


# --- the identity-activation RNN of the OpenGenus article -----------------------------------------


def _identity(a):
    return a


def _identity_vjp(g, h):
    return g


def _check_identity_params(params):
    p = rnn.check_params(params, {}, kind="float")
    if np.any(p["b"] != 0) or np.any(p["c"] != 0):
        raise ValueError("the identity RNN of the closed form has no biases: params['b'] and params['c'] must be zero")
    return p


def identity_bptt_grads(params: dict, x, y, h0=None) -> tuple[float, dict]:
    r"""Loss and gradients of the RNN with the identity as activation, by the library's BPTT.

    :func:`bptt_lib.rnn.loss_and_grads` with its activation hooks: the forward
    pass applies the identity, and the backward pass's diagonal factor is the
    identity (``activation_vjp`` passes the gradient through). ``b`` and ``c``
    must be zero (the setting of the closed form).
    """
    _check_identity_params(params)
    return rnn.loss_and_grads(params, x, y, h0, activation=_identity, activation_vjp=_identity_vjp)


def identity_closed_form_grads(params: dict, x, y, h0=None) -> dict:
    r"""The identity RNN's gradients from their closed form in powers of :math:`W^\top`.

    .. math::

        \nabla_W L = \sum_{t=1}^{T}\sum_{k=1}^{t} (W^\top)^{t-k} V^\top g^{(t)} h^{(k-1)\top},

        \nabla_U L = \sum_{t=1}^{T}\sum_{k=1}^{t} (W^\top)^{t-k} V^\top g^{(t)} x^{(k)\top},

        \nabla_V L = \sum_{t=1}^{T} g^{(t)} h^{(t)\top},

    with :math:`g^{(t)} = \partial L/\partial o^{(t)} = (\hat y^{(t)} - e_{y^{(t)}})/B` (generated
    ``softmax_nll_grad``), the states from the closed form :func:`linear_closed_form`,
    and every term from a generated kernel (``identity_grad_W``, ``identity_grad_U``,
    ``identity_grad_V``). No recursion backwards in time is run.

    Returns
    -------
    dict
        ``"W"`` (H, H), ``"U"`` (H, D), ``"V"`` (K, H).
    """
    p = _check_identity_params(params)
    p, x, h0, sizes = rnn.check_inputs(p, x, h0, kind="float")
    y = rnn.check_targets(y, sizes)
    h = linear_closed_form(p["W"], p["U"], x, h0)                       # (T + 1, B, H)
    T, B, _ = x.shape
    K = p["V"].shape[0]
    kr, k = rnn_kernels(), recursion_kernels()
    o = h[1:] @ p["V"].T                                                   # c = 0
    yhat = np.exp(o - o.max(axis=-1, keepdims=True))
    yhat /= yhat.sum(axis=-1, keepdims=True)
    grads = {"W": np.zeros_like(p["W"]), "U": np.zeros_like(p["U"]), "V": np.zeros_like(p["V"])}
    for t in range(1, T + 1):
        G = kr.softmax_nll_grad(yhat[t - 1], onehot(y[t - 1], K), B).T     # (K, B): columns are examples
        grads["V"] += k.identity_grad_V(G, h[t].T)
        for j in range(1, t + 1):
            grads["W"] += k.identity_grad_W(G, p["V"], p["W"], t - j, h[j - 1].T)
            grads["U"] += k.identity_grad_U(G, p["V"], p["W"], t - j, x[j - 1].T)
    check_finite_result("identity_closed_form_grads", grads)
    return grads


# --- counting paths: the gradient split by lag ---------------------------------------------------


def lag_gradients(params: dict, x, y, h0=None, wrt: str = "W") -> np.ndarray:
    r"""The part of :math:`\nabla_{\theta} L` carried by paths of each lag :math:`\ell = t - k`.

    ``out[l]`` is :math:`\sum_{t - k = \ell}` of the path contributions of
    :func:`bptt_lib.path_sum.path_term` (the weights act at step :math:`k`, the loss
    is read at step :math:`t`). Their sum over ``l`` is the BPTT gradient.

    Returns
    -------
    ndarray, (T,) + shape of ``params[wrt]``
    """
    if wrt not in _HIDDEN_PARAMS:
        raise ValueError(f"wrt must be one of {list(_HIDDEN_PARAMS)}; got {wrt!r}")
    p, x, h0, sizes = rnn.check_inputs(params, x, h0, kind="float")
    y = rnn.check_targets(y, sizes)
    trace = rnn.forward_unchecked(p, x, h0)
    _, _, g = rnn.output_grads(p, trace, y)
    T = x.shape[0]
    out = np.zeros((T,) + p[wrt].shape)
    for t in range(1, T + 1):
        for k in range(1, t + 1):
            out[t - k] += path_term(g[t - 1], trace.h, trace.x, p["W"], t, k)[wrt]
    return out


def fit_multiplicities(target, parts) -> tuple[np.ndarray, float]:
    r"""Least-squares multiplicities :math:`m` with ``target`` :math:`\approx \sum_\ell m_\ell` ``parts[l]``.

    Returns ``(m, residual)``, the residual relative to the size of ``target``
    (round-off level when ``target`` is exactly such a combination).
    """
    target = np.asarray(target, dtype=float).reshape(-1)
    parts = np.asarray(parts, dtype=float)
    A = parts.reshape(parts.shape[0], -1).T
    if A.shape[0] < A.shape[1]:
        raise ValueError(f"need at least as many entries ({A.shape[0]}) as parts ({A.shape[1]})")
    m, *_ = np.linalg.lstsq(A, target, rcond=None)
    residual = float(np.linalg.norm(A @ m - target) / np.linalg.norm(target))
    return m, residual
