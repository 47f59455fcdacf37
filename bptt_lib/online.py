r"""Learning online without going back: real-time recurrent learning (RTRL) and UORO for the tanh RNN.

Both run forward only, alongside the states, and never store the past:

- :func:`rtrl_grads`: RTRL (Williams and Zipser, 1989) carries the whole sensitivity
  :math:`S^{(t)} = d h^{(t)}/d\theta` of the hidden layer's parameters
  :math:`\theta = (\operatorname{vec} W, \operatorname{vec} U, b)`, ``P = H^2 + HD + H``
  numbers per hidden unit and example, and adds
  :math:`(\partial L^{(t)}/\partial h^{(t)})^\top S^{(t)}` to the gradient at every
  step. Exact: equal to full BPTT up to round-off. Cost per step :math:`O(B H^2 P)`,
  about :math:`B H^4`; memory :math:`O(B H P)`, about :math:`B H^3`, whatever ``T``.
- :func:`uoro_grads`: UORO (Tallec and Ollivier, 2018) carries a rank-one
  estimate :math:`\tilde s \tilde\theta` of :math:`S^{(t)}` (``H + P`` numbers per
  example) built with random signs; one draw is a random gradient whose
  expectation over the signs is the full gradient (:mod:`bptt_lib.derive.online`
  derives why); :func:`uoro_grads_with_signs` takes the signs as an argument, so
  that the expectation can be computed exactly by enumerating them.

Both run the cell and the output layer one step at a time and keep nothing of the past
but the current state and what they carry. The output layer's :math:`V`, :math:`c` need
no recursion: their gradients are the exact per-step terms of
:func:`bptt_lib.bptt.output_layer` in both. Parameters are held fixed
along the sequence, so both estimate the gradient that full BPTT computes; an online
learner updates them at every step instead (:mod:`bptt_lib.influence_balancing` does so on
a small linear system).

The per-step updates are kernels generated from :mod:`bptt_lib.derive.online`
(:func:`online_kernels`) together with the RNN's own (``tanh_vjp``) and chapter 5's
``implicit_tangent``.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np

from . import bptt, rnn
from .cell import TANH_RNN
from .codegen import generate
from .derive import online as donline
from .implicit_recursion import recursion_kernels
from .kernels import rnn_kernels
from .validation import check_finite_result

__all__ = ["online_kernels", "HIDDEN_PARAMS", "n_hidden_params", "pack", "unpack", "explicit_rows",
           "rtrl_grads", "uoro_grads", "uoro_grads_with_signs", "random_signs", "UORO_EPS"]

HIDDEN_PARAMS = ("W", "U", "b")
"""The hidden layer's parameters, in the order they are stacked into :math:`\\theta`."""

UORO_EPS = 1e-7
"""Added to the norms in UORO's :math:`\\rho_0`, :math:`\\rho_1` so that zero norms (the first step) are harmless."""


@functools.cache
def online_kernels() -> SimpleNamespace:
    r"""Generate (once) the kernels of chapter 13 from :mod:`bptt_lib.derive.online`.

    - ``rtrl_update(S_prev, W, E, D)``: :math:`(E + S^{(t-1)\top} W^\top) \odot D`, the
      sensitivity with one row per parameter direction (and example);
    - ``uoro_state(Js, nu, rho0, rho1)``: :math:`\rho_0 J\tilde s + \rho_1 \nu`;
    - ``uoro_params(theta, nuM, rho0, rho1)``: :math:`\tilde\theta/\rho_0 + \nu^\top M/\rho_1`.
    """
    s = donline.rtrl_symbols()
    u = donline.uoro_symbols()
    state, params = donline.uoro_update(u)
    k = SimpleNamespace()
    k.rtrl_update = generate(
        "rtrl_update", [s.S_prev, s.W, s.E, s.D], donline.rtrl_update(s),
        "RTRL step, one row per parameter direction: (E + S_prev W^T) * D, (rows, H).")
    k.uoro_state = generate(
        "uoro_state", [u.Js, u.nu, u.rho0, u.rho1], state,
        "UORO's new s~: rho0 J s~ + rho1 nu, one row per example.")
    k.uoro_params = generate(
        "uoro_params", [u.theta, u.nuM, u.rho0, u.rho1], params,
        "UORO's new theta~: theta~ / rho0 + nu^T M / rho1, one row per example.")
    return k


def n_hidden_params(H: int, D: int) -> int:
    """``P = H^2 + HD + H``, the length of :math:`\\theta = (\\operatorname{vec} W, \\operatorname{vec} U, b)`."""
    return H * H + H * D + H


def pack(params: dict) -> np.ndarray:
    """:math:`\\theta = (\\operatorname{vec} W, \\operatorname{vec} U, b)`, rows flattened as ``reshape(-1)``."""
    return np.concatenate([np.asarray(params[key], dtype=float).reshape(-1) for key in HIDDEN_PARAMS])


def unpack(theta: np.ndarray, H: int, D: int) -> dict:
    """The inverse of :func:`pack`: ``{"W": (H, H), "U": (H, D), "b": (H,)}``."""
    theta = np.asarray(theta)
    return {"W": theta[:H * H].reshape(H, H), "U": theta[H * H:H * H + H * D].reshape(H, D),
            "b": theta[H * H + H * D:].reshape(H)}


def explicit_rows(h_prev: np.ndarray, x_t: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    r"""The explicit part :math:`E^{(t)\top}` for every example, (B, P, H).

    Row ``p`` is :math:`\partial^+ a^{(t)}/\partial\theta_p`.

    The blocks derived in :func:`bptt_lib.derive.online.packed_explicit_sensitivity`:
    row :math:`(j, k)` of the ``W`` block is :math:`h^{(t-1)}_k e_j^\top`, of the ``U`` block
    :math:`x^{(t)}_k e_j^\top`, and row ``j`` of the ``b`` block is :math:`e_j^\top`. With ``out``
    (as returned by an earlier call with the same sizes) only the entries that change are written.
    """
    B, H = h_prev.shape
    D = x_t.shape[1]
    P = n_hidden_params(H, D)
    j = np.arange(H)
    if out is None:
        out = np.zeros((B, P, H))
        out[:, H * H + H * D:, :] = np.eye(H)
    blocks = ((0, h_prev, H), (H * H, x_t, D))
    for start, values, width in blocks:
        view = out[:, start:start + H * width, :].reshape(B, H, width, H)   # (b, j, k, i)
        view[:, j, :, j] = values[None, :, :]
    return out


class _Online:
    r"""The states and the output layer one step at a time: nothing of the past is kept.

    ``step(t)`` runs the cell (:func:`bptt_lib.cell.Cell.step`) from the previous state and
    the output layer of that step (:func:`bptt_lib.bptt.output_layer`, which adds the exact
    ``V``, ``c`` gradients to ``out``); it returns ``(h_prev, h, g)`` with ``g`` the direct
    gradient :math:`\partial L^{(t)}/\partial h^{(t)}` (B, H).
    """

    def __init__(self, p, x, y, h0):
        self.p, self.x, self.y = p, x, y
        self.h = np.array(h0, copy=True)
        self.loss = 0.0
        self.out = {"V": np.zeros_like(p["V"]), "c": np.zeros_like(p["c"])}

    def step(self, t):
        h_prev = self.h
        xp = TANH_RNN.project(self.p, self.x[t:t + 1])[0]
        self.h = TANH_RNN.step(self.p, h_prev, xp, out=np.empty_like(h_prev))
        loss, g = bptt.output_layer(self.p, self.h[None], self.y[t:t + 1], self.out)
        self.loss += loss
        return h_prev, self.h, np.array(g[0], copy=True)


def _check(params, x, y, state0):
    p, x, h0, sizes = rnn.check_inputs(params, x, state0, kind="float")
    y = rnn.check_targets(y, sizes)
    return p, x, y, h0


def _finish(name: str, loss: float, theta_grad: np.ndarray, out: dict, H: int, D: int) -> tuple[float, dict]:
    grads = {**unpack(theta_grad, H, D), **out}
    grads = {key: grads[key] for key in rnn.PARAM_SHAPES}
    check_finite_result(name, {"loss": np.asarray(loss), **grads})
    return loss, grads


def rtrl_grads(params: dict, x, y, *, state0=None) -> tuple[float, dict]:
    r"""The loss and its gradient by real-time recurrent learning: forward only, exact.

    At each step ``t``, with :math:`S^{(t-1)\top}` (B, P, H) from the step before,

    .. math::

        S^{(t)\top} = \big(E^{(t)\top} + S^{(t-1)\top} W^\top\big) \odot (1 - h^{(t)} \odot h^{(t)}),

        \nabla_\theta L \mathrel{+}= \sum_b S^{(t)}_b{}^{\!\top} \frac{\partial L^{(t)}}{\partial h^{(t)}_b},

    (kernel ``rtrl_update``; :math:`E^{(t)}` from :func:`explicit_rows`). Parameters as
    :func:`bptt_lib.rnn.loss_and_grads`; ``state0`` (B, H) the initial state, zeros by
    default, held fixed. Returns ``(loss, grads)`` with the keys of ``params``.
    """
    p, x, y, h0 = _check(params, x, y, state0)
    T, B, D = x.shape
    H = p["W"].shape[0]
    P = n_hidden_params(H, D)
    k, tanh_vjp = online_kernels(), rnn_kernels().tanh_vjp
    with np.errstate(over="ignore", invalid="ignore"):
        run = _Online(p, x, y, h0)
        S = np.zeros((B * P, H))
        E = None
        theta_grad = np.zeros(P)
        for t in range(T):
            h_prev, h, g = run.step(t)
            E = explicit_rows(h_prev, x[t], out=E)
            factor = np.repeat(tanh_vjp(np.ones((B, H)), h), P, axis=0)   # 1 - h^2 on every row
            S = k.rtrl_update(S, p["W"], E.reshape(B * P, H), factor)
            theta_grad += np.einsum("bh,bph->p", g, S.reshape(B, P, H))
        loss, out = run.loss, run.out
    return _finish("rtrl_grads", loss, theta_grad, out, H, D)


def random_signs(shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """Independent signs :math:`\\pm 1` with probability 1/2 each, as floats."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)); got {type(rng).__name__}")
    return 2.0 * rng.integers(0, 2, size=shape) - 1.0


def uoro_grads(params: dict, x, y, *, rng: np.random.Generator, state0=None) -> tuple[float, dict]:
    r"""One UORO draw of the gradient: unbiased (its expectation over the signs is the full gradient).

    The signs :math:`\nu` (B, H) of each step are drawn from ``rng`` at that step, in
    order (the same as :func:`uoro_grads_with_signs` given ``random_signs((T, B, H), rng)``).
    Parameters as :func:`bptt_lib.rnn.loss_and_grads`.
    """
    p, x, y, h0 = _check(params, x, y, state0)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)); got {type(rng).__name__}")
    shape = (x.shape[1], p["W"].shape[0])
    return _uoro(p, x, y, h0, lambda t: random_signs(shape, rng))     # drawn step by step: nothing of size T


def uoro_grads_with_signs(params: dict, x, y, signs, *, state0=None) -> tuple[float, dict]:
    r"""The UORO gradient for given signs ``signs`` (T, B, H) of :math:`\pm 1`.

    Per example, with :math:`\tilde s = 0`, :math:`\tilde\theta = 0` at the start and at each step

    .. math::

        J\tilde s = (1 - h^{(t)} \odot h^{(t)}) \odot W\tilde s, \qquad
        \nu^\top M = \big((1 - h^{(t)} \odot h^{(t)}) \odot \nu\big)^\top E^{(t)},

        \rho_0 = \sqrt{\frac{\lVert\tilde\theta\rVert + \epsilon}{\lVert J\tilde s\rVert + \epsilon}}, \quad
        \rho_1 = \sqrt{\frac{\lVert\nu^\top M\rVert + \epsilon}{\lVert\nu\rVert + \epsilon}},

        \tilde s \leftarrow \rho_0 J\tilde s + \rho_1\nu, \quad
        \tilde\theta \leftarrow \tilde\theta/\rho_0 + \nu^\top M/\rho_1, \quad
        \nabla_\theta L \mathrel{+}= \Big(\frac{\partial L^{(t)}}{\partial h^{(t)}} \cdot \tilde s\Big)\, \tilde\theta,

    (:data:`UORO_EPS` is :math:`\epsilon`). :math:`\rho_0` does not depend on this step's
    signs and :math:`\rho_1` is even in them, which is what unbiasedness needs; these
    choices make the two factors' norms equal, which keeps the variance down.
    """
    p, x, y, h0 = _check(params, x, y, state0)
    T, B, D = x.shape
    H = p["W"].shape[0]
    signs = np.asarray(signs, dtype=float)
    if signs.shape != (T, B, H):
        raise ValueError(f"signs must have shape (T, B, H) = {(T, B, H)}; got shape {signs.shape}")
    if not np.all(np.abs(signs) == 1.0):
        raise ValueError("signs must hold only +1 and -1")
    return _uoro(p, x, y, h0, lambda t: signs[t])


def _uoro(p, x, y, h0, signs_at):
    T, B, D = x.shape
    H = p["W"].shape[0]
    P = n_hidden_params(H, D)
    k, tanh_vjp = online_kernels(), rnn_kernels().tanh_vjp
    implicit_tangent = recursion_kernels().implicit_tangent
    with np.errstate(over="ignore", invalid="ignore"):
        run = _Online(p, x, y, h0)
        s_tilde = np.zeros((B, H))
        theta_tilde = np.zeros((B, P))
        theta_grad = np.zeros(P)
        for t in range(T):
            h_prev, h, g = run.step(t)
            nu = signs_at(t)
            Js = tanh_vjp(implicit_tangent(s_tilde, p["W"]), h)                # J s~, (B, H)
            da = tanh_vjp(nu, h)                                          # nu^T M = da^T E, per example
            nuM = np.concatenate([(da[:, :, None] * h_prev[:, None, :]).reshape(B, H * H),
                                  (da[:, :, None] * x[t][:, None, :]).reshape(B, H * D), da], axis=1)
            rho0 = np.sqrt((np.linalg.norm(theta_tilde, axis=1, keepdims=True) + UORO_EPS)
                           / (np.linalg.norm(Js, axis=1, keepdims=True) + UORO_EPS))
            rho1 = np.sqrt((np.linalg.norm(nuM, axis=1, keepdims=True) + UORO_EPS)
                           / (np.linalg.norm(nu, axis=1, keepdims=True) + UORO_EPS))
            s_tilde = k.uoro_state(Js, nu, rho0, rho1)
            theta_tilde = k.uoro_params(theta_tilde, nuM, rho0, rho1)
            theta_grad += np.einsum("b,bp->p", np.einsum("bh,bh->b", g, s_tilde), theta_tilde)
        loss, out = run.loss, run.out
    return _finish("uoro_grads", loss, theta_grad, out, H, D)
