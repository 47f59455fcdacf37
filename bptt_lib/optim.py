r"""Optimiser steps. Parameters and gradients are dicts with the same keys.

Plain gradient descent, :math:`\theta \leftarrow \theta - \eta \, \nabla_\theta L`
(:func:`sgd_step`), and Adam (:class:`Adam`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .validation import positive_number, require_finite, require_keys

__all__ = ["sgd_step", "Adam"]


def sgd_step(params: Mapping, grads: Mapping, lr: float) -> dict:
    """One step of gradient descent; returns new arrays, the inputs are not modified.

    Raises
    ------
    TypeError
        If ``params`` is not a dict (name -> array).
    KeyError
        If ``grads`` lacks a key of ``params``.
    ValueError
        If a gradient's shape differs from its parameter's, a gradient holds
        NaN or infinity (the step would make the parameters NaN), or ``lr`` is
        not positive and finite.
    """
    lr = positive_number("lr", lr)
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict of arrays (name -> array); got {type(params).__name__}")
    require_keys("grads", grads, list(params))
    new = {}
    for key, value in params.items():
        g = np.asarray(grads[key])
        if g.shape != np.shape(value):
            raise ValueError(f'grads["{key}"] must have the shape of params["{key}"], {np.shape(value)}; got {g.shape}')
        try:
            require_finite(f'grads["{key}"]', g)
        except ValueError as err:
            raise ValueError(f'{err}: a step would make params["{key}"] NaN or infinite') from None
        new[key] = value - lr * g
    return new


class Adam:
    r"""Adam (Kingma and Ba): per-parameter steps from running means of the gradient and its square.

    :math:`m \leftarrow \beta_1 m + (1 - \beta_1) g`, :math:`v \leftarrow \beta_2 v + (1 - \beta_2) g^2`,
    :math:`\theta \leftarrow \theta - \eta \, \hat m / (\sqrt{\hat v} + \epsilon)` with the bias
    corrections :math:`\hat m = m / (1 - \beta_1^n)`, :math:`\hat v = v / (1 - \beta_2^n)` at step :math:`n`.
    :meth:`step` returns new arrays; the parameters passed in are not modified. Chapter 16
    trains a bank of networks as one and chapter 17 a language model with it.
    """

    def __init__(self, lr: float = 1e-2, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.lr = positive_number("lr", lr)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.m: dict = {}
        self.v: dict = {}
        self.n = 0

    def step(self, params: dict, grads: dict, keep: dict | None = None) -> dict:
        """One step; ``keep[key]`` (optional, boolean, broadcast to the parameter) says which
        entries move: the others keep their values (a frozen network of a bank)."""
        self.n += 1
        new = {}
        for key, value in params.items():
            g = np.asarray(grads[key], dtype=np.float64)
            m = self.m[key] = self.beta1 * self.m.get(key, 0.0) + (1 - self.beta1) * g
            v = self.v[key] = self.beta2 * self.v.get(key, 0.0) + (1 - self.beta2) * g * g
            m_hat = m / (1 - self.beta1 ** self.n)
            v_hat = v / (1 - self.beta2 ** self.n)
            update = self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
            new[key] = value - (update if keep is None else np.where(keep[key], update, 0.0))
        return new
