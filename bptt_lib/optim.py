r"""Optimiser steps. Parameters and gradients are dicts with the same keys.

Plain gradient descent: :math:`\theta \leftarrow \theta - \eta \, \nabla_\theta L`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .validation import positive_number, require_finite, require_keys

__all__ = ["sgd_step"]


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
