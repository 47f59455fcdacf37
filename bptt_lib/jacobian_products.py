r"""Numerical companions of the chapter *Products of Jacobians*.

The derivation (:mod:`bptt_lib.derive.jacobian_products`) gives, for
:math:`h^{(j)} = \phi(b + W h^{(j-1)} + U x^{(j)})`,

.. math::

    \frac{\partial h^{(t)}}{\partial h^{(k)}}
    = \prod_{j=t}^{k+1} \operatorname{diag}\!\big(\phi'(a^{(j)})\big)\, W
    \quad\text{(latest step on the left)},

    \Big\lVert \frac{\partial h^{(t)}}{\partial h^{(k)}} \Big\rVert_2
    \le \big(\sigma_{\max}(W)\, \gamma\big)^{t-k},

with :math:`\gamma = \max_a \phi'(a)` (1 for tanh, 1/4 for the sigmoid).

The Jacobian products and their norms (:func:`jacobian_product`,
:func:`lag_norms`) also accept the ReLU of the chapter on remedies, whose
backward rule ``relu_vjp`` is generated here (:func:`relu_kernels`).

- :func:`hidden_states`: the forward pass with a tanh or a sigmoid hidden layer.
- :func:`jacobian_product`: :math:`\partial h^{(t)} / \partial h^{(k)}` as a matrix,
  by applying the generated backward kernels to the rows of the identity.
- :func:`explicit_jacobian_product`: the same product of explicit one-step
  Jacobians, each from a kernel generated from SymPy's entry-by-entry Jacobian
  (small ``H`` only; for checking).
- :func:`finite_difference_jacobian`: central differences of :math:`h^{(k)} \mapsto h^{(t)}`.
- :func:`slope_bound`, :func:`norm_bound`, :func:`lag_norms`, :func:`horizon`,
  :func:`horizon_bound`: the bound and what it says about how far back a
  gradient reaches.
- :func:`recurrent_weight`: a seeded random :math:`W` with a given spectral radius
  (orthogonal via :func:`orthogonalise`, or a rescaled Gaussian).
- :func:`plot_lag_norms`, :func:`plot_spectrum`, :func:`plot_horizons`,
  :func:`plot_lag_norm_panels`, :func:`plot_spectra`: the figures.
- :func:`relu_kernels`: the generated ReLU backward rule.
"""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import sympy as sp

from . import gradcheck
from .chain_rule import activation_kernels
from .codegen import generate
from .derive import activations
from .derive import jacobian_products as djp
from .derive import relu as derive_relu
from .kernels import rnn_kernels
from .plotting import COLORS
from .validation import as_array, positive_int, positive_number, require_finite, require_keys

__all__ = [
    "ACTIVATION_NAMES", "VJP_ACTIVATIONS", "MACHINE_EPSILON", "relu_kernels",
    "slope_bound", "orthogonalise", "check_rng", "recurrent_weight", "hidden_states",
    "jacobian_product", "step_jacobian_kernel", "explicit_jacobian_product",
    "finite_difference_jacobian",
    "norm_bound", "lag_norms", "horizon", "horizon_bound",
    "plot_lag_norms", "plot_spectrum", "plot_horizons", "plot_lag_norm_panels", "plot_spectra",
]

ACTIVATION_NAMES = ("tanh", "sigmoid")
"""The hidden-unit activations this chapter supports."""

VJP_ACTIVATIONS = ACTIVATION_NAMES + ("relu",)
"""The activations :func:`jacobian_product` and :func:`lag_norms` can backpropagate through."""

MACHINE_EPSILON = float(np.finfo(np.float64).eps)
r"""Double precision's unit round-off, :math:`2^{-52} \approx 2.2 \times 10^{-16}`."""


# --- input checks ----------------------------------------------------------------------


def _check_activation(activation, allowed=ACTIVATION_NAMES) -> str:
    if activation not in allowed:
        raise ValueError(f"activation must be one of {list(allowed)}; got {activation!r}")
    return activation


def _weight(W) -> np.ndarray:
    sizes: dict = {}
    W = as_array("W", W, ("H", "H"), sizes)
    if W.shape[0] != W.shape[1]:
        raise ValueError(f"W must be square, shape (H, H); got shape {W.shape}")
    require_finite("W", W)
    return W


def _states(h, n_hidden: int) -> np.ndarray:
    """States ``(T + 1, H)`` or ``(T + 1, B, H)`` with ``H`` fixed by ``W``."""
    arr = np.asarray(h)
    dims = ("T+1", "H") if arr.ndim == 2 else ("T+1", "B", "H")
    h = as_array("h", h, dims, {"H": n_hidden})
    require_finite("h", h)
    return h


def _span(k, t, n_states: int) -> tuple[int, int]:
    k = positive_int("k", k, low=0)
    t = positive_int("t", t, low=0, high=n_states - 1)
    if k > t:
        raise ValueError(
            f"k must be at most t (the Jacobian of a later state with respect to an earlier one); got k={k}, t={t}"
        )
    return k, t


# --- the pieces: gamma, W, the forward pass ---------------------------------------------


@functools.cache
def slope_bound(activation: str = "tanh") -> float:
    r""":math:`\gamma = \max_a \phi'(a)`, found exactly by SymPy: 1 for tanh, 1/4 for the sigmoid."""
    _check_activation(activation)
    _, peak = activations.derivative_peak(activation)
    return float(peak)


def orthogonalise(A) -> np.ndarray:
    r"""The orthogonal factor :math:`Q` of :math:`A = QR`, with the signs fixed so that
    :math:`\operatorname{diag} R > 0`.

    With that sign convention the factorisation of a full-rank square matrix is
    unique, so the result is a deterministic function of ``A``. Applied to a
    matrix of independent standard normal entries it gives a matrix distributed
    uniformly (Haar) over the orthogonal group. Used by :func:`~bptt_lib.jacobian_products.recurrent_weight`
    and by :func:`bptt_lib.remedies.init_orthogonal` (which re-exports it).

    Parameters
    ----------
    A : array_like, (n, n)
        A real, finite, full-rank square matrix.

    Returns
    -------
    ndarray, (n, n)
        :math:`Q` with :math:`Q^\top Q = I`.
    """
    sizes: dict = {}
    A = as_array("A", A, ("n", "n"), sizes)
    require_finite("A", A)
    Q, R = np.linalg.qr(A)
    d = np.diag(R)
    if np.min(np.abs(d)) <= 1e-12 * max(np.max(np.abs(d)), 1.0):
        raise ValueError("A must have full rank; its QR factor R has a zero on the diagonal")
    return Q * np.sign(d)[None, :]


def check_rng(rng) -> np.random.Generator:
    """Raise ``TypeError`` unless ``rng`` is a :class:`numpy.random.Generator`; return it."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)); got {type(rng).__name__}")
    return rng


def recurrent_weight(n_hidden: int, radius: float, *, kind: str = "orthogonal", rng: np.random.Generator) -> np.ndarray:
    r"""A random recurrent matrix :math:`W` (H, H) with spectral radius exactly ``radius``.

    Parameters
    ----------
    n_hidden : int
        ``H``.
    radius : float
        The spectral radius :math:`\rho(W) = \max_i |\lambda_i(W)|`, positive.
    kind : {"orthogonal", "gaussian"}
        ``"orthogonal"``: :math:`\rho\, Q` with :math:`Q` = :func:`orthogonalise`
        of a standard Gaussian matrix; every eigenvalue has modulus
        :math:`\rho` and every singular value equals :math:`\rho`.
        ``"gaussian"``: a standard Gaussian matrix rescaled so that its
        largest eigenvalue modulus is exactly :math:`\rho`; its largest singular
        value is then larger than :math:`\rho`, by a factor approaching 2 as
        ``H`` grows. (This differs from :func:`bptt_lib.remedies.init_gaussian`,
        whose entries are :math:`\mathcal N(0, g^2/H)` with no rescaling, so that
        its spectral radius is only close to :math:`g`.)
    rng : numpy.random.Generator
        The only source of randomness.
    """
    n_hidden = positive_int("n_hidden", n_hidden)
    radius = positive_number("radius", radius)
    if kind not in ("orthogonal", "gaussian"):
        raise ValueError(f"kind must be 'orthogonal' or 'gaussian'; got {kind!r}")
    A = check_rng(rng).standard_normal((n_hidden, n_hidden))
    if kind == "orthogonal":
        return radius * orthogonalise(A)
    return radius * A / np.max(np.abs(np.linalg.eigvals(A)))


def hidden_states(params: dict, x, h0=None, *, activation: str = "tanh") -> np.ndarray:
    r"""Hidden states of the RNN :math:`h^{(t)} = \phi(b + W h^{(t-1)} + U x^{(t)})`.

    The pre-activation is the generated kernel ``hidden_preactivation``; the
    activation is the generated ``tanh`` or ``sigmoid`` of
    :func:`bptt_lib.chain_rule.activation_kernels`, or the generated ``relu`` of
    :func:`relu_kernels`. For tanh the states are those of :func:`bptt_lib.rnn.forward`.

    Parameters
    ----------
    params : dict
        ``"W"`` (H, H), ``"U"`` (H, D), ``"b"`` (H,); other keys are ignored.
    x : array_like, (T, D) or (T, B, D)
        Inputs :math:`x^{(1)}, \dots, x^{(T)}`, one sequence or a batch.
    h0 : array_like, (H,) or (B, H), optional
        Initial state; zeros by default.
    activation : {"tanh", "sigmoid", "relu"}

    Returns
    -------
    ndarray, (T + 1, H) or (T + 1, B, H)
        ``h[0] = h0`` and ``h[t]`` is :math:`h^{(t)}`.
    """
    _check_activation(activation, ACTIVATION_NAMES + ("relu",))
    require_keys("params", params, ["W", "U", "b"])
    sizes: dict = {}
    W = as_array('params["W"]', params["W"], ("H", "H"), sizes)
    U = as_array('params["U"]', params["U"], ("H", "D"), sizes)
    b = as_array('params["b"]', params["b"], ("H",), sizes)
    single = np.ndim(x) == 2
    x = as_array("x", x, ("T", "D") if single else ("T", "B", "D"), sizes)
    if single:
        x = x[:, None, :]
        sizes["B"] = 1
    if h0 is None:
        h0 = np.zeros((sizes["B"], sizes["H"]))
    elif single:
        h0 = as_array("h0", h0, ("H",), sizes)[None, :]
    h0 = as_array("h0", h0, ("B", "H"), sizes)
    for name, arr in (("W", W), ("U", U), ("b", b), ("x", x), ("h0", h0)):
        require_finite(name, arr)
    k = rnn_kernels()
    phi = relu_kernels().relu if activation == "relu" else getattr(activation_kernels(), activation)
    one_B = np.ones((sizes["B"], 1))
    h = np.empty((x.shape[0] + 1,) + h0.shape)
    h[0] = h0
    for t in range(x.shape[0]):
        h[t + 1] = phi(k.hidden_preactivation(h[t], x[t], W, U, b[None, :], one_B))
    return h[:, 0, :] if single else h


# --- the Jacobian product ----------------------------------------------------------------


@functools.cache
@functools.cache
def relu_kernels() -> SimpleNamespace:
    """Generated ReLU kernels (see :mod:`bptt_lib.derive.relu`), once per process.

    ``relu(a) = a [a > 0]`` (the convention H(0) = 0 of the derivative, so the
    function and its derivative agree at the kink) and ``relu_vjp(g, h) = g [h > 0]``.
    """
    return SimpleNamespace(
        relu=generate("relu", [derive_relu.a], derive_relu.a * derive_relu.derivative_convention(),
                      "max(0, a), elementwise."),
        relu_vjp=generate("relu_vjp", [derive_relu.g, derive_relu.h], derive_relu.vjp(),
                          "Gradient with respect to a, given the gradient g with respect to h = max(0, a)."))


def _backward_through_step(G: np.ndarray, W: np.ndarray, h_j: np.ndarray, activation: str) -> np.ndarray:
    """Rows of ``G`` times the step Jacobian ``diag(phi') W``: the generated VJP kernels."""
    k = rnn_kernels()
    vjp = {"tanh": k.tanh_vjp, "sigmoid": k.sigmoid_vjp}.get(activation) or relu_kernels().relu_vjp
    return k.hidden_vjp_h_prev(vjp(G, h_j), W)


def jacobian_product(W, h, k: int, t: int, activation: str = "tanh") -> np.ndarray:
    r"""The Jacobian :math:`\partial h^{(t)} / \partial h^{(k)}` from stored states.

    .. math::

        \frac{\partial h^{(t)}}{\partial h^{(k)}}
        = \operatorname{diag}\!\big(\phi'^{(t)}\big) W \,
          \operatorname{diag}\!\big(\phi'^{(t-1)}\big) W \cdots
          \operatorname{diag}\!\big(\phi'^{(k+1)}\big) W,

    with :math:`\phi'^{(j)} = 1 - (h^{(j)})^2` for tanh,
    :math:`h^{(j)} (1 - h^{(j)})` for the sigmoid and :math:`[h^{(j)} > 0]` for
    the ReLU. Row :math:`i` of the product is
    the gradient of :math:`h^{(t)}_i` with respect to :math:`h^{(k)}`, so the
    product is backpropagation applied to the rows of the identity: starting
    from :math:`G = I`, each step from :math:`j = t` down to :math:`k + 1` applies
    the generated kernels ``tanh_vjp`` (or ``sigmoid_vjp``, ``relu_vjp``) and
    ``hidden_vjp_h_prev``. No diagonal matrix is formed.

    Parameters
    ----------
    W : array_like, (H, H)
    h : array_like, (T + 1, H) or (T + 1, B, H)
        Stored states, ``h[j]`` is :math:`h^{(j)}` (as from :func:`hidden_states`).
    k, t : int
        ``0 <= k <= t <= T``. For ``k == t`` the result is the identity.
    activation : {"tanh", "sigmoid", "relu"}
        The activation that produced ``h``.

    Returns
    -------
    ndarray, (H, H) or (B, H, H)
        Entry ``[i, l]`` is :math:`\partial h^{(t)}_i / \partial h^{(k)}_l`.
    """
    _check_activation(activation, VJP_ACTIVATIONS)
    W = _weight(W)
    h = _states(h, W.shape[0])
    k, t = _span(k, t, h.shape[0])
    G = np.broadcast_to(np.eye(W.shape[0]), h.shape[1:-1] + W.shape).copy()
    for j in range(t, k, -1):
        # h[j] enters as a row, (B, 1, H): it scales the columns of each G[b].
        G = _backward_through_step(G, W, h[j][..., None, :], activation)
    return G


@functools.cache
def step_jacobian_kernel(n_hidden: int = 2, activation: str = "tanh"):
    r"""A kernel generated from SymPy's explicit one-step Jacobian, for ``H`` up to 3.

    The kernel is ``step_jacobian(W_11, W_12, ..., h_1, h_2, ...)``: the ``H * H``
    entries of :math:`W` row by row, then the ``H`` entries of the step's
    output :math:`h^{(j)}`; it returns the (H, H) matrix
    :math:`\operatorname{diag}(\phi'^{(j)}) W` written out entry by entry (the
    expression of :func:`bptt_lib.derive.jacobian_products.compact_step_jacobian`,
    which SymPy proved equal to the componentwise Jacobian).
    """
    positive_int("n_hidden", n_hidden, high=3)
    _check_activation(activation)
    chain = djp.chain_symbols(n_hidden, 1, activation)
    # Plain argument names for readable generated code: W_11, ..., h_1, ...
    W = [sp.Symbol(f"W_{i + 1}{j + 1}", real=True) for i in range(n_hidden) for j in range(n_hidden)]
    h_j = [sp.Symbol(f"h_{i + 1}", real=True) for i in range(n_hidden)]
    rename = dict(zip(list(chain.W) + list(chain.states[1]), W + h_j))
    expr = djp.compact_step_jacobian(chain, 1).subs(rename, simultaneous=True)
    return generate(
        f"step_jacobian_{activation}_H{n_hidden}", W + h_j, expr,
        f"The one-step Jacobian diag(phi') W of a {activation} RNN with H = {n_hidden}, entry by entry.")


def explicit_jacobian_product(W, h, k: int, t: int, activation: str = "tanh") -> np.ndarray:
    r""":math:`\partial h^{(t)} / \partial h^{(k)}` as an explicit product of one-step Jacobian matrices.

    Each factor comes from :func:`step_jacobian_kernel` (SymPy's explicit
    Jacobian, so ``H <= 3``); the factors are multiplied with the latest step
    on the left. An independent check of :func:`jacobian_product`.

    Parameters
    ----------
    W : array_like, (H, H) with ``H <= 3``
    h : array_like, (T + 1, H)
    k, t : int
    activation : {"tanh", "sigmoid"}

    Returns
    -------
    ndarray, (H, H)
    """
    _check_activation(activation)
    W = _weight(W)
    if W.shape[0] > 3:
        raise ValueError(f"W must be at most 3 x 3 here (explicit SymPy kernels); got shape {W.shape}")
    h = as_array("h", h, ("T+1", "H"), {"H": W.shape[0]})
    k, t = _span(k, t, h.shape[0])
    step_jacobian = step_jacobian_kernel(W.shape[0], activation)
    product = np.eye(W.shape[0])
    for j in range(k + 1, t + 1):
        product = np.asarray(step_jacobian(*W.ravel(), *h[j]), dtype=float) @ product
    return product


def finite_difference_jacobian(params: dict, x, h0=None, *, k: int, t: int, activation: str = "tanh",
                               eps: float = 1e-6) -> np.ndarray:
    r""":math:`\partial h^{(t)} / \partial h^{(k)}` of one sequence by central differences.

    The map :math:`h^{(k)} \mapsto h^{(t)}` runs :func:`hidden_states` over the
    inputs :math:`x^{(k+1)}, \dots, x^{(t)}` starting from :math:`h^{(k)}`; column
    :math:`l` of the result is
    :math:`\big(h^{(t)}(h^{(k)} + \epsilon e_l) - h^{(t)}(h^{(k)} - \epsilon e_l)\big) / 2\epsilon`,
    computed with :func:`bptt_lib.gradcheck.central_difference`.

    Parameters
    ----------
    params : dict
        ``"W"``, ``"U"``, ``"b"`` as for :func:`hidden_states`.
    x : array_like, (T, D)
        One sequence.
    h0 : array_like, (H,), optional
    k, t : int
        ``0 <= k <= t <= T``.
    activation : {"tanh", "sigmoid"}
    eps : float
        The step, ``1e-6`` by default.

    Returns
    -------
    ndarray, (H, H)
    """
    eps = positive_number("eps", eps)
    if np.ndim(x) != 2:
        raise ValueError(f"x must be one sequence, shape (T, D); got shape {np.shape(x)}")
    h = hidden_states(params, x, h0, activation=activation)
    k, t = _span(k, t, h.shape[0])
    x = np.asarray(x, dtype=float)

    def h_t_of(h_k: np.ndarray) -> np.ndarray:
        return hidden_states(params, x[k:t], h_k, activation=activation)[-1] if t > k else h_k

    n_hidden = h.shape[1]
    rows = [gradcheck.central_difference(lambda p, i=i: h_t_of(p["h_k"])[i], {"h_k": h[k]}, eps=eps)["h_k"]
            for i in range(n_hidden)]
    return np.array(rows)


# --- bounds, norms against the lag, and the horizon -----------------------------------------


def norm_bound(W, lag, activation: str = "tanh"):
    r"""The bound :math:`\big(\sigma_{\max}(W)\,\gamma\big)^{\text{lag}}` on
    :math:`\lVert \partial h^{(t)} / \partial h^{(t-\text{lag})} \rVert_2`.

    Parameters
    ----------
    W : array_like, (H, H)
    lag : int or array_like of int
        ``t - k >= 0``.
    activation : {"tanh", "sigmoid"}
        Fixes :math:`\gamma` (:func:`slope_bound`).

    Returns
    -------
    float or ndarray, the shape of ``lag``
    """
    W = _weight(W)
    lag_arr = np.asarray(lag)
    if lag_arr.dtype.kind not in "iu" or np.any(lag_arr < 0):
        raise ValueError(f"lag must hold non-negative integers; got {lag!r}")
    eta = np.linalg.norm(W, 2) * slope_bound(activation)
    return eta ** lag_arr if lag_arr.ndim else float(eta ** int(lag_arr))


def lag_norms(W, h, activation: str = "tanh") -> np.ndarray:
    r"""Spectral norms :math:`\lVert \partial h^{(T)} / \partial h^{(T-n)} \rVert_2` for every lag ``n = 0 .. T``.

    One backward sweep from :math:`G = I` at :math:`t = T`, as in
    :func:`jacobian_product`, records the norm after each step. The product is
    rescaled to norm one after every step and the scale is kept as a
    logarithm, so neither overflow nor underflow can stop the sweep; norms
    smaller than about :math:`10^{-308}` are returned as 0. A batch of
    sequences is swept at once, each with its own scale.

    Parameters
    ----------
    W : array_like, (H, H)
    h : array_like, (T + 1, H) or (T + 1, B, H)
        The stored states of one sequence, or of a batch.
    activation : {"tanh", "sigmoid", "relu"}
        The activation that produced ``h``.

    Returns
    -------
    ndarray, (T + 1,) or (T + 1, B)
        ``norms[0] = 1`` (the identity) and ``norms[n]`` for lag ``n`` (per sequence).
    """
    _check_activation(activation, VJP_ACTIVATIONS)
    W = _weight(W)
    h = _states(h, W.shape[0])
    single = h.ndim == 2
    if single:
        h = h[:, None, :]
    n_steps, batch = h.shape[0] - 1, h.shape[1]
    log_norms = np.zeros((n_steps + 1, batch))
    G = np.broadcast_to(np.eye(W.shape[0]), (batch,) + W.shape).copy()
    for n in range(1, n_steps + 1):
        # h enters as a row, (B, 1, H): it scales the columns of each G[b].
        G = _backward_through_step(G, W, h[n_steps - n + 1][:, None, :], activation)
        size = np.linalg.norm(G, 2, axis=(1, 2))
        # An exactly singular product (e.g. a nilpotent W) stays zero: its log-norm stays -inf.
        with np.errstate(divide="ignore"):
            log_norms[n] = log_norms[n - 1] + np.log(size)
        G = G / np.where(size > 0, size, 1.0)[:, None, None]
    norms = np.exp(log_norms)
    return norms[:, 0] if single else norms


def horizon(norms, tol: float = MACHINE_EPSILON):
    r"""The first lag ``n >= 1`` with :math:`\lVert J_n \rVert / \lVert J_1 \rVert <` ``tol``.

    :math:`J_n = \partial h^{(T)} / \partial h^{(T-n)}`; with the default
    ``tol`` of machine epsilon, a contribution from lag ``n`` or more cannot
    change a sum that also holds the lag-1 contribution, at double precision.

    Parameters
    ----------
    norms : array_like, (T + 1,)
        From :func:`lag_norms`.
    tol : float

    Returns
    -------
    int or None
        ``None`` if the ratio never falls below ``tol`` within the lags given.
    """
    tol = positive_number("tol", tol)
    norms = as_array("norms", norms, ("T+1",), {})
    if norms.size < 2 or not norms[1] > 0:
        raise ValueError("norms must hold at least lags 0 and 1, with a positive lag-1 norm")
    below = np.nonzero(norms[1:] / norms[1] < tol)[0]
    return int(below[0]) + 1 if below.size else None


def horizon_bound(eta: float, tol: float = MACHINE_EPSILON) -> float:
    r"""The lag by which the bound guarantees :math:`\lVert J_n \rVert / \lVert J_1 \rVert <` ``tol``.

    Since :math:`J_n = J_1\, \partial h^{(T-1)} / \partial h^{(T-n)}`, the ratio is at
    most :math:`\eta^{\,n-1}` with :math:`\eta = \sigma_{\max}(W)\,\gamma`. For
    :math:`\eta < 1` it is below ``tol`` as soon as
    :math:`n > 1 + \ln(\text{tol}) / \ln \eta`; the function returns the smallest
    such integer, and ``inf`` for :math:`\eta \ge 1` (no guarantee).
    """
    eta = positive_number("eta", eta)
    tol = positive_number("tol", tol)
    if eta >= 1.0:
        return math.inf
    return float(math.floor(1.0 + math.log(tol) / math.log(eta)) + 1)


# --- figures -------------------------------------------------------------------------------


def plot_lag_norms(curves: dict, *, bounds: dict | None = None, ax=None, title: str = ""):
    r"""Plot :math:`\lVert \partial h^{(T)}/\partial h^{(T-n)} \rVert_2` against the lag ``n`` on a log scale.

    Parameters
    ----------
    curves : dict
        ``{label: norms}`` with ``norms`` from :func:`lag_norms`; zeros are not drawn.
    bounds : dict, optional
        ``{label: bound}``, same labels, drawn dashed in the curve's colour
        (e.g. :func:`norm_bound` over the lags).
    ax : matplotlib Axes, optional
    title : str
    """
    if ax is None:
        _, ax = plt.subplots()
    for color, (label, norms) in zip(COLORS * 2, curves.items()):
        norms = np.asarray(norms, dtype=float)
        lags = np.arange(norms.size)
        keep = norms > 0
        ax.semilogy(lags[keep], norms[keep], color=color, label=label)
        if bounds is not None and label in bounds:
            bound = np.asarray(bounds[label], dtype=float)
            ax.semilogy(np.arange(bound.size), bound, color=color, ls="--", lw=0.9)
    ax.axhline(MACHINE_EPSILON, color="0.4", lw=0.8, ls=":")
    ax.set_xlabel("lag $T - k$ (steps)")
    ax.set_ylabel(r"$\|\partial h^{(T)} / \partial h^{(k)}\|_2$")
    if title:
        ax.set_title(title)
    return ax


def plot_spectrum(matrices: dict, *, ax=None, title: str = ""):
    """Scatter the eigenvalues of each matrix in the complex plane, with the unit circle.

    Parameters
    ----------
    matrices : dict
        ``{label: W}`` with square arrays.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 4.2))
    angle = np.linspace(0, 2 * np.pi, 400)
    ax.plot(np.cos(angle), np.sin(angle), color="0.3", lw=1.0, label="unit circle")
    for color, (label, W) in zip(COLORS, matrices.items()):
        lam = np.linalg.eigvals(_weight(W))
        ax.scatter(lam.real, lam.imag, s=12, color=color, label=label, zorder=3)
    ax.set_aspect("equal")
    ax.set_xlabel(r"$\mathrm{Re}\,\lambda$")
    ax.set_ylabel(r"$\mathrm{Im}\,\lambda$")
    if title:
        ax.set_title(title)
    return ax


def plot_horizons(gains, measured: dict, *, tol: float = MACHINE_EPSILON, ax=None):
    r"""Plot measured horizons against :math:`\rho(W)\,\gamma`, with the formula and its staircase.

    Two curves: the formula :math:`1 + \ln(\text{tol}) / \ln(\rho\gamma)` (dashed), and
    :func:`horizon_bound`, its floor plus one (solid staircase). For an orthogonal
    :math:`W` (all singular values equal :math:`\rho`) the staircase is a
    guaranteed upper bound on the horizon; for other matrices neither curve bounds anything.

    Parameters
    ----------
    gains : array_like
        Values of :math:`\rho\gamma` in (0, 1) for the curves.
    measured : dict
        ``{label: (gain_values, horizons)}``; a horizon of ``None`` is not drawn.
    """
    if ax is None:
        _, ax = plt.subplots()
    gains = np.asarray(gains, dtype=float)
    if np.any(gains <= 0) or np.any(gains >= 1):
        raise ValueError("gains must lie strictly between 0 and 1")
    ax.semilogy(gains, 1 + np.log(tol) / np.log(gains), color="0.3", lw=1.0, ls="--",
                label=r"$1 + \ln\varepsilon/\ln(\rho\gamma)$")
    ax.semilogy(gains, [horizon_bound(g, tol) for g in gains], color="0.3", lw=1.2, drawstyle="steps-post",
                label=r"$\lfloor 1 + \ln\varepsilon/\ln(\rho\gamma) \rfloor + 1$")
    markers = "os^D"
    for i, (label, (etas, values)) in enumerate(measured.items()):
        pts = [(e, v) for e, v in zip(etas, values) if v is not None]
        ax.semilogy([p[0] for p in pts], [p[1] for p in pts], markers[i % 4], color=COLORS[i], label=label, ms=5)
    ax.axhspan(8, 10, color=COLORS[3], alpha=0.3, lw=0, label="'8 or 10 steps'")
    ax.set_xlabel(r"spectral radius times slope bound, $\rho(W)\,\gamma$")
    ax.set_ylabel("horizon (steps)")
    return ax


def plot_lag_norm_panels(experiment, radii, n_steps: int, *, activations=("tanh", "sigmoid"), ylim=(1e-40, 1e15)):
    r"""One panel per activation: :func:`lag_norms` for each spectral radius, with the bound dashed.

    Parameters
    ----------
    experiment : callable
        ``experiment(radius, activation) -> (W, h)``: the recurrent matrix and the stored states.
    radii : sequence of float
    n_steps : int
        ``T``; the bound is drawn for lags ``0 .. T``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, axes = plt.subplots(1, len(activations), figsize=(5 * len(activations), 4), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, act in zip(axes, activations):
        curves, bounds = {}, {}
        for radius in radii:
            W, h = experiment(radius, act)
            curves[rf"$\rho = {radius}$"] = lag_norms(W, h, act)
            bounds[rf"$\rho = {radius}$"] = norm_bound(W, np.arange(n_steps + 1), act)
        gamma = slope_bound(act)
        gamma_text = "1" if gamma == 1 else f"1/{round(1 / gamma)}"
        plot_lag_norms(curves, bounds=bounds, ax=ax, title=rf"{act}, $\gamma = {gamma_text}$")
        ax.set_ylim(*ylim)
    for ax in axes[1:]:
        ax.set_ylabel("")
    axes[0].legend(ncol=2, fontsize=8)
    fig.tight_layout()
    return fig


def plot_spectra(radii, *, n_hidden: int = 64, seed: int = 5, kinds=("orthogonal", "gaussian"), lim: float = 1.6):
    """One panel per kind of :func:`recurrent_weight`: eigenvalues for each spectral radius, with the unit circle.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.5 * len(kinds), 4.4))
    axes = np.atleast_1d(axes)
    for ax, kind in zip(axes, kinds):
        matrices = {rf"$\rho = {r}$": recurrent_weight(n_hidden, r, kind=kind, rng=np.random.default_rng(seed))
                    for r in radii}
        plot_spectrum(matrices, ax=ax, title=f"{kind.capitalize()} W, H = {n_hidden}")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    axes[0].legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig
