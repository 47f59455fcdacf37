r"""Synthetic sequence tasks with a known, adjustable time lag (chapter 10).

The **delayed-recall** task: at every step the network sees one of ``n_symbols``
symbols, one-hot, and must output the symbol it saw ``gap`` steps earlier,

.. math::

    y^{(t)} = s^{(t - k)} \quad (t = k + 1, \dots, T), \qquad
    x^{(t)} = \mathrm{onehot}\big(s^{(t)}\big),

with :math:`k` the gap and the symbols :math:`s^{(t)}` drawn independently and
uniformly. For :math:`t \le k` there is nothing to recall: those targets are
:data:`IGNORE` and carry no loss. A correct answer at step :math:`t` needs
information that entered the network exactly :math:`k` steps earlier, so the
gap is the length of the dependency, and guessing scores ``1 / n_symbols``.

With ``blank=True`` the first :math:`k` steps get an extra class instead,
:math:`y^{(t)} = D` ("nothing to recall yet", ``K = D + 1`` classes), so that
every step has a target and the plain loss of :func:`bptt_lib.rnn.loss_and_grads`
applies (chapters 6 and 9).

The loss counts only the steps that have a target:

.. math::

    L = \frac{1}{B} \sum_{b=1}^{B} \sum_{t:\, y^{(t)}_b \ne \mathrm{IGNORE}}
        -\log \hat y^{(t)}_{b,\, y^{(t)}_b}.

:func:`masked_loss_and_grads` computes it and its gradient with the book's own
:func:`bptt_lib.rnn.forward` and :func:`bptt_lib.rnn.backward`, so it plugs into
:func:`bptt_lib.training.train` as ``loss_and_grads``.
"""

from __future__ import annotations

import numpy as np

from . import rnn
from .softmax import onehot
from .validation import as_array, check_finite_result, positive_int

__all__ = [
    "IGNORE", "recall_targets", "delayed_recall", "recall_batches",
    "masked_loss", "masked_backward", "masked_loss_and_grads", "accuracy",
    "adding_problem", "ADDING_BASELINE_MSE",
]

IGNORE = -1
"""Target value of a step without a target (no loss, not counted by :func:`accuracy`)."""


def recall_targets(x, gap: int) -> np.ndarray:
    r"""The targets of the delayed-recall task for given one-hot inputs.

    Parameters
    ----------
    x : array_like, (T, B, D)
        One-hot inputs: ``x[t - 1, b]`` is :math:`x^{(t)}` of example ``b``, with a
        single 1 at the index of the symbol shown.
    gap : int
        The lag :math:`k \ge 1`.

    Returns
    -------
    ndarray of int, (T, B)
        ``y[t - 1] = argmax x[t - 1 - gap]`` for :math:`t > k`, that is

        .. math:: y^{(t)} = s^{(t-k)},

        and :data:`IGNORE` for :math:`t \le k` (all of them if ``T <= gap``).

    Raises
    ------
    TypeError, ValueError
        If ``gap`` is not a positive int, or ``x`` is not a one-hot array of rank 3.
    """
    gap = positive_int("gap", gap)
    x = as_array("x", x, ("T", "B", "D"), {})
    if not (np.all((x == 0) | (x == 1)) and np.all(x.sum(axis=-1) == 1)):
        raise ValueError("x must be one-hot along its last axis (D): one 1 and zeros elsewhere at every (t, b)")
    symbols = x.argmax(axis=-1)
    y = np.full(symbols.shape, IGNORE, dtype=np.int64)
    y[gap:] = symbols[:-gap]  # both sides are empty when T <= gap
    return y


def delayed_recall(n_symbols: int, gap: int, T: int, batch: int, rng: np.random.Generator,
                   *, blank: bool = False):
    r"""A batch of the delayed-recall task: recall the symbol shown ``gap`` steps ago.

    Parameters
    ----------
    n_symbols : int
        Number of symbols :math:`D \ge 2`; inputs are one-hot of length ``D``.
    gap : int
        The lag :math:`k \ge 1`.
    T : int
        Sequence length, at least ``gap + 1`` so that some step has a target;
        ``T - gap`` steps have one.
    batch : int
        Number of sequences :math:`B \ge 1`.
    rng : numpy.random.Generator
        The only source of randomness: the same seed gives the same batch (and
        the same inputs whatever ``blank`` is).
    blank : bool
        ``False`` (default): the first ``gap`` steps have the target
        :data:`IGNORE`, for :func:`masked_loss_and_grads`. ``True``: they have
        the extra class ``n_symbols`` ("nothing yet"), so the network needs
        ``K = n_symbols + 1`` outputs and :func:`bptt_lib.rnn.loss_and_grads`
        trains on the targets as they are.

    Returns
    -------
    x : ndarray, (T, B, D)
        One-hot symbols drawn uniformly and independently.
    y : ndarray of int, (T, B)
        ``recall_targets(x, gap)``: :math:`y^{(t)} = s^{(t-k)}` for :math:`t > k`,
        :data:`IGNORE` (or ``n_symbols`` if ``blank``) before.

    Examples
    --------
    >>> x, y = delayed_recall(3, 2, 5, 1, np.random.default_rng(0))
    >>> x.argmax(-1)[:, 0], y[:, 0]
    (array([2, 1, 1, 0, 0]), array([-1, -1,  2,  1,  1]))
    >>> delayed_recall(3, 2, 5, 1, np.random.default_rng(0), blank=True)[1][:, 0]
    array([3, 3, 2, 1, 1])
    """
    n_symbols = positive_int("n_symbols", n_symbols, low=2)
    gap = positive_int("gap", gap)
    T = positive_int("T", T)
    batch = positive_int("batch", batch)
    if T <= gap:
        raise ValueError(f"T must exceed gap so that some step has a target; got T={T}, gap={gap}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)); got {type(rng).__name__}")
    if not isinstance(blank, (bool, np.bool_)):
        raise TypeError(f"blank must be a bool; got {type(blank).__name__}")
    symbols = rng.integers(0, n_symbols, size=(T, batch))
    x = onehot(symbols, n_symbols)
    y = recall_targets(x, gap)
    if blank:
        y[:gap] = n_symbols
    return x, y


def recall_batches(n_symbols: int, gap: int, T: int, batch: int, seed: int, *, blank: bool = False):
    """A fresh, reproducible batch per training step, for :func:`bptt_lib.training.train`.

    Returns
    -------
    callable
        ``data(step) -> (x, y)``, the :func:`delayed_recall` batch (with the
        given ``blank``) drawn with ``np.random.default_rng([seed, step])``: the
        same step always gives the same batch, whatever was drawn before.
    """
    seed = positive_int("seed", seed, low=0)
    delayed_recall(n_symbols, gap, T, batch, np.random.default_rng(seed), blank=blank)  # validate once, early

    def data(step: int):
        return delayed_recall(n_symbols, gap, T, batch, np.random.default_rng([seed, step]), blank=blank)

    return data


def _check_masked_targets(y, sizes: dict) -> np.ndarray:
    y = as_array("y", y, ("T", "B"), sizes, kind="int")
    bad = (y != IGNORE) & ((y < 0) | (y >= sizes["K"]))
    if np.any(bad):
        raise ValueError(f"y must hold class indices in [0, K={sizes['K']}) or IGNORE={IGNORE}; "
                         f"got {y[bad][0]} at index {tuple(int(i) for i in np.argwhere(bad)[0])}")
    if not np.any(y != IGNORE):
        raise ValueError("y has no step with a target (every entry is IGNORE)")
    return y


def _sizes(params, x) -> dict:
    sizes = {"K": np.shape(params["V"])[0]} if isinstance(params, dict) and "V" in params else {}
    as_array("x", x, ("T", "B", "D"), sizes, kind="number")
    return sizes


def masked_loss(params: dict, x, y):
    """The loss over the steps that have a target, averaged over the batch.

    Accepts complex parameters (for :func:`bptt_lib.gradcheck.complex_step`).

    Parameters
    ----------
    params : dict
        The RNN's parameters (see :func:`bptt_lib.rnn.init_params`).
    x : array_like, (T, B, D)
    y : array_like of int, (T, B)
        Classes in ``[0, K)`` or :data:`IGNORE`.
    """
    trace = rnn.forward(params, x)
    y = _check_masked_targets(y, _sizes(params, x))
    keep = y != IGNORE
    picked = np.take_along_axis(trace.log_yhat, np.where(keep, y, 0)[..., None], axis=-1)[..., 0]
    return -np.sum(picked * keep) / y.shape[1]


def masked_backward(params: dict, x, y) -> tuple[float, dict, np.ndarray]:
    r"""Forward and full backward pass for :func:`masked_loss`; also returns the hidden-state gradients.

    :func:`bptt_lib.rnn.backward` sees the logits only through their gradient
    :math:`\nabla_{o^{(t)}} L = (\hat y^{(t)} - \mathrm{onehot}(y^{(t)}))/B`. A step
    without a target must contribute zero there, so it is handed to ``backward``
    with a placeholder target and with :math:`\hat y^{(t)}` replaced by that
    target's one-hot vector: the difference is then exactly zero, and every
    other step is untouched. The recursion through the hidden states is
    ``backward``'s own.

    Returns
    -------
    loss : float
    grads : dict
        Same keys and shapes as ``params``.
    grad_h : ndarray, (T, B, H)
        ``grad_h[t - 1]`` is the total gradient :math:`\nabla_{h^{(t)}} L` of the masked loss.

    Raises
    ------
    FloatingPointError
        If the loss or a gradient is not finite.
    """
    trace = rnn.forward(params, x)
    y = _check_masked_targets(y, _sizes(params, x))
    keep = y != IGNORE
    y_filled = np.where(keep, y, 0)
    picked = np.take_along_axis(trace.log_yhat, y_filled[..., None], axis=-1)[..., 0]
    value = float(-np.sum(picked * keep) / y.shape[1])
    check_finite_result("masked_loss_and_grads", {"loss": np.asarray(value)})
    placeholder = onehot(y_filled, trace.yhat.shape[-1])
    yhat = np.where(keep[..., None], trace.yhat, placeholder)
    masked = rnn.Trace(x=trace.x, h=trace.h, o=trace.o, yhat=yhat, log_yhat=trace.log_yhat)
    grads, grad_h = rnn.backward(params, masked, y_filled)
    return value, grads, grad_h


def masked_loss_and_grads(params: dict, x, y) -> tuple[float, dict]:
    """:func:`masked_loss` and its gradient by full BPTT (see :func:`masked_backward`).

    The signature of :func:`bptt_lib.rnn.loss_and_grads`, so that it can be
    passed to :func:`bptt_lib.training.train` as ``loss_and_grads``.

    Returns
    -------
    loss : float
    grads : dict
        Same keys and shapes as ``params``.
    """
    value, grads, _ = masked_backward(params, x, y)
    return value, grads


def accuracy(params: dict, x, y) -> float:
    """Fraction of the steps with a target at which the most probable class is the target.

    Parameters
    ----------
    params : dict
    x : array_like, (T, B, D)
    y : array_like of int, (T, B)
        Classes or :data:`IGNORE`; ignored steps are not counted.
    """
    trace = rnn.forward(params, x)
    y = _check_masked_targets(y, _sizes(params, x))
    keep = y != IGNORE
    return float(np.mean(trace.o.real.argmax(axis=-1)[keep] == y[keep]))


# --- the adding problem (chapter 16) ------------------------------------------------------


ADDING_BASELINE_MSE = 1.0 / 6.0
r"""The mean squared error of always predicting the mean sum, 1: the variance of the sum of two
independent uniform numbers on :math:`[0, 1]`, :math:`2 \cdot \tfrac{1}{12} = \tfrac16`."""


def adding_problem(T: int, batch: int, rng: np.random.Generator):
    r"""A batch of the adding problem (Hochreiter & Schmidhuber 1997, in the form of Le et al. 2015).

    Every step shows two numbers: a value :math:`v^{(t)}`, uniform on :math:`[0, 1]`, and a
    marker :math:`m^{(t)} \in \{0, 1\}`. Exactly two steps of a sequence are marked, one drawn
    uniformly from the first :math:`\lfloor T/2 \rfloor` steps and one from the others; the target,
    read at the last step, is the sum of the two marked values,

    .. math:: y = \sum_t m^{(t)} v^{(t)} \in [0, 2].

    Always predicting its mean, 1, scores the mean squared error :data:`ADDING_BASELINE_MSE`.

    Parameters
    ----------
    T : int
        Sequence length, at least 2.
    batch : int
        Number of sequences :math:`B \ge 1`.
    rng : numpy.random.Generator
        The only source of randomness.

    Returns
    -------
    x : ndarray, (T, B, 2)
        ``x[t - 1, b] = (v, m)`` of step ``t``.
    y : ndarray, (B,)
        The sums.
    """
    T = positive_int("T", T, low=2)
    batch = positive_int("batch", batch)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)); got {type(rng).__name__}")
    values = rng.uniform(0.0, 1.0, size=(T, batch))
    half = T // 2
    first = rng.integers(0, half, size=batch)
    second = rng.integers(half, T, size=batch)
    markers = np.zeros((T, batch))
    columns = np.arange(batch)
    markers[first, columns] = 1.0
    markers[second, columns] = 1.0
    x = np.stack([values, markers], axis=-1)
    return x, values[first, columns] + values[second, columns]
