r"""Exercise checkers of chapter 17, *A character-level language model*.

- ``char_lm_temperature``: ``temperature_probs(o, temperature)``, the sampling
  distribution :math:`\operatorname{softmax}(o / \tau)` over the last axis of logits
  ``o`` (B, K), stable for large logits. Reference: :func:`bptt_lib.char_lm.temperature_probs`.
"""

from __future__ import annotations

import numpy as np

from .. import char_lm
from . import register

__all__ = ["reference_temperature_probs"]


def reference_temperature_probs(o, temperature):
    """:func:`bptt_lib.char_lm.temperature_probs`."""
    return char_lm.temperature_probs(o, temperature)


def _softmax(z, axis=-1):
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def _cases(rng):
    cases = []
    for B, K, scale, temperature in [(3, 5, 2.0, 0.5), (2, 7, 1.0, 2.0), (4, 3, 3.0, 0.8), (2, 6, 1.5, 1.7)]:
        cases.append({"o": scale * rng.standard_normal((B, K)), "temperature": temperature})
    # large logits: each exp(o / tau) of the first row is finite, but their sum overflows unless shifted
    cases.append({"o": np.array([[709.5, 709.0, 709.0], [-5.0, 2.0, 1.0]]), "temperature": 1.0})
    return cases


def _no_shift(o, temperature):
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(np.asarray(o) / temperature)
        return e / e.sum(axis=-1, keepdims=True)


TEMPERATURE_MISTAKES = {
    "the probabilities were divided by the temperature instead of the logits; softmax(o) / τ is not "
    "even a distribution":
        lambda o, temperature: _softmax(np.asarray(o)) / temperature,
    "the logits were multiplied by the temperature instead of divided by it, so a temperature below 1 "
    "flattens the distribution instead of sharpening it":
        lambda o, temperature: _softmax(np.asarray(o) * temperature),
    "the exponentials exp(o / τ) were not divided by their sum, so they do not add up to 1":
        lambda o, temperature: np.exp(np.asarray(o) / temperature - np.asarray(o).max(axis=-1, keepdims=True)
                                      / temperature),
    "the softmax was normalised over the batch axis instead of the classes (axis 0 instead of -1)":
        lambda o, temperature: _softmax(np.asarray(o) / temperature, axis=0),
    "the maximum logit was not subtracted before the exponential: for large logits the sum of the "
    "exponentials overflows to infinity and every probability comes out 0":
        _no_shift,
}

register("char_lm_temperature", reference=reference_temperature_probs, cases=_cases,
         mistakes=TEMPERATURE_MISTAKES)
