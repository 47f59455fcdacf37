r"""Optimiser steps. Parameters and gradients are dicts with the same keys.

Plain gradient descent: :math:`\theta \leftarrow \theta - \eta \, \nabla_\theta L`.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .validation import positive_number, require_keys

__all__ = ["sgd_step"]


def sgd_step(params: Mapping, grads: Mapping, lr: float) -> dict:
    """One step of gradient descent; returns new arrays, the inputs are not modified.

    Raises
    ------
    KeyError
        If ``grads`` lacks a key of ``params``.
    ValueError
        If a gradient's shape differs from its parameter's, or ``lr`` is not positive and finite.
    """
    lr = positive_number("lr", lr)
    require_keys("grads", grads, list(params))
    new = {}
    for key, value in params.items():
        g = np.asarray(grads[key])
        if g.shape != np.shape(value):
            raise ValueError(f'grads["{key}"] must have the shape of params["{key}"], {np.shape(value)}; got {g.shape}')
        new[key] = value - lr * g
    return new
