r"""The LSTM, batched, with full backpropagation through time over the recurrent core.

Notation (Goodfellow, Bengio & Courville, ch. 10; the output gate is ``q``
because ``o`` is the logits). For each gate :math:`\ast \in \{f, i, g, q\}`,

.. math::

    a_\ast^{(t)} = b_\ast + W_\ast h^{(t-1)} + U_\ast x^{(t)},

    f = \sigma(a_f), \quad i = \sigma(a_i), \quad
    g = \tanh(a_g), \quad q = \sigma(a_q),

    s^{(t)} = f \odot s^{(t-1)} + i \odot g,

    h^{(t)} = q \odot \tanh(s^{(t)}),

    o^{(t)} = c + V h^{(t)}, \quad
    \hat y^{(t)} = \operatorname{softmax}(o^{(t)}).

The loss is that of :func:`bptt_lib.rnn.loss_and_grads`: the negative
log-likelihood summed over time and averaged over the batch. The state is the
pair :math:`(h, s)`, zero at the start unless ``state0 = (h0, s0)`` is given.

How it runs. :data:`LSTM_CELL` is a cell of the interface of
:mod:`bptt_lib.cell`, so :func:`bptt_lib.bptt.forward` and
:func:`bptt_lib.bptt.bptt` run it unchanged, and so do truncated BPTT, ARTBP
and checkpointing through :data:`MODEL` (``model="lstm"``). Its parameters are
packed: the four gates' matrices stacked, ``W`` (4H, H) =
:math:`[W_f; W_i; W_g; W_q]`, ``U`` (4H, D), ``b`` (4H,), so that one product
:math:`(B, H) \times (H, 4H)` per step serves all four gates
(:func:`pack`, :func:`unpack`; the stacking is proven in
:func:`bptt_lib.derive.lstm.prove_packed_gates`). One step's record is
:math:`(h, s, f, i, g, q)` side by side, width ``6H``: the carried state
:math:`(h, s)` and the gates that the backward step reads.

What is generated. Every matrix product and every backward rule is a kernel
generated from :mod:`bptt_lib.derive.lstm` (:func:`lstm_kernels`), where the
backward step is proven for every size. The forward definitions are evaluated
in place with NumPy ufuncs, as the RNN's tanh is: the gates by
:func:`gate_activations_in_place` (the sigmoid as :math:`(1 + \tanh(a/2))/2`,
proven equal to :math:`1/(1 + e^{-a})` in
:func:`bptt_lib.derive.lstm.prove_sigmoid_via_tanh`; no overflow), then
:math:`s` and :math:`h`; tests compare them with the generated kernels
``cell_state`` and ``hidden_state`` and with the derivation's explicit step.

Speed. At the canonical size (T, B, D, H, K) = (100, 32, 64, 128, 64), on one
thread, :func:`loss_and_grads` is timed against PyTorch's ``nn.LSTM`` by
``benchmarks/bptt_speed.py``. What made it fast: one product per step for the
four gates; the input projection and the parameter gradients as products over
whole blocks of steps, outside the time loop, the latter in the orientation
BLAS runs fastest (the gradients of :math:`W^\top` and :math:`U^\top`); the
elementwise work of a step on contiguous scratch arrays rather than on column
slices of the records; and no array of the size of the sequence zeroed on each call.
"""

from __future__ import annotations

import functools
import threading
import weakref
from dataclasses import dataclass, fields
from types import SimpleNamespace

import numpy as np

from . import bptt, models
from .codegen import generate, generate_into
from .derive import lstm as derive
from .kernels import rnn_kernels
from .rnn import check_targets, normal_weights
from .softmax import softmax_and_log
from .validation import as_array, check_finite_result, positive_int, require_finite, require_keys

__all__ = [
    "GATES", "PARAM_SHAPES", "KERNEL_NAMES", "lstm_kernels", "LSTMCell", "LSTM_CELL",
    "init_params", "check_params", "check_state0", "pack", "unpack", "initial_record", "state_of",
    "gate_activations_in_place", "Trace", "forward", "loss", "loss_and_grads", "MODEL",
    "reference_loss", "gradient_reach", "reach_by_forget_bias", "plot_reach",
]

GATES = derive.GATES
"""The gates in the order they are stacked and stored: forget, input, candidate, output."""

PARAM_SHAPES = {
    **{key: shape for gate in GATES
       for key, shape in ((f"W_{gate}", ("H", "H")), (f"U_{gate}", ("H", "D")), (f"b_{gate}", ("H",)))},
    "V": ("K", "H"), "c": ("K",),
}
"""Each parameter's shape in the book's dimension names: ``W_f, U_f, b_f, W_i, ..., b_q, V, c``."""

KERNEL_NAMES = ("input_projection", "gate_preactivation", "cell_state", "hidden_state",
                "cell_state_vjp", "gate_vjp", "s_prev_vjp", "h_prev_vjp", "params_vjp")
"""The names of the generated kernels that :func:`lstm_kernels` returns."""


# ---------------------------------------------------------------- kernels

@functools.cache
def lstm_kernels() -> SimpleNamespace:
    """Generate (once) and return the LSTM's kernels, by name (see :data:`KERNEL_NAMES`).

    Batch-as-rows convention (:func:`bptt_lib.derive.lstm.batch_symbols`): ``X`` (B, D),
    ``H_prev`` (B, H), the stacked pre-activations ``Z`` and their gradient ``G_z`` (B, 4H).
    The elementwise kernels broadcast over any shape. Looked up by name at every call,
    so that a test can watch them.
    """
    sym = derive.batch_symbols()
    u = derive.unit_symbols()
    vjp = derive.unit_vjp(u)
    dWt, dUt, db = derive.params_vjp_transposed(sym)
    k = SimpleNamespace()
    k.input_projection = generate_into(
        "lstm_input_projection", [sym.X, sym.U, sym.b], derive.input_projection(sym),
        "x_p = b + U x for all four gates and every row at once: (rows, 4H).", ones=[sym.one_B])
    k.gate_preactivation = generate_into(
        "lstm_gate_preactivation", [sym.H_prev, sym.W, sym.Xp], derive.gate_preactivation(sym),
        "The four gates' pre-activations a = W h_prev + x_p of one step, written into out: (B, 4H).")
    k.cell_state = generate(
        "lstm_cell_state", [u.f, u.s_prev, u.i, u.g], derive.cell_state(u),
        "s = f s_prev + i g, elementwise.")
    k.hidden_state = generate(
        "lstm_hidden_state", [u.q, u.s], derive.hidden_state(u),
        "h = q tanh(s), elementwise.")
    k.cell_state_vjp = generate(
        "lstm_cell_state_vjp", [u.g_h, u.g_s, u.q, u.c], vjp["delta_s"],
        "delta_s, the total gradient of s, from the gradients dh of h and ds of s (from step t + 1), c = tanh s.")
    k.gate_vjp = generate(
        "lstm_gate_vjp", [u.delta_s, u.g_h, u.c, u.s_prev, u.f, u.i, u.g, u.q],
        tuple(vjp[f"a_{gate}"] for gate in GATES),
        "The gradients of the four pre-activations (a_f, a_i, a_g, a_q), elementwise.")
    k.s_prev_vjp = generate(
        "lstm_s_prev_vjp", [u.delta_s, u.f], vjp["s_prev"],
        "The gradient reaching s_prev through the cell state: delta_s * f.")
    k.h_prev_vjp = generate_into(
        "lstm_h_prev_vjp", [sym.G_z, sym.W], derive.h_prev_vjp(sym),
        "The gradient reaching h_prev through all four gates, G_z W, written into out: (B, H).")
    k.params_vjp = generate(
        "lstm_params_vjp", [sym.G_z, sym.H_prev, sym.X, sym.one_B], (dWt, dUt, db),
        "Gradients (dW^T, dU^T, db) of the stacked gates, summed over the rows: (H, 4H), (D, 4H), (1, 4H).")
    return k


@functools.cache
def _gate_activation_affine(H: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Per-column ``(scale, shift)`` (4H,) that turn ``tanh`` into each gate's activation.

    With :math:`\sigma(a) = (1 + \tanh(a/2))/2` (proven in
    :func:`bptt_lib.derive.lstm.prove_sigmoid_via_tanh`), every gate is
    ``shift + scale * tanh(scale * a)``: ``scale = 1/2, shift = 1/2`` for the sigmoid
    gates ``f, i, q`` and ``scale = 1, shift = 0`` for the candidate ``g = tanh(a_g)``.
    So the four gates of a step are computed by four in-place operations on one block.
    """
    scale = np.full(4 * H, 0.5)
    scale[2 * H:3 * H] = 1.0
    shift = np.where(scale == 0.5, 0.5, 0.0)
    scale.flags.writeable = shift.flags.writeable = False
    return scale, shift


def gate_activations_in_place(z: np.ndarray) -> np.ndarray:
    """Turn the stacked pre-activations ``z`` (B, 4H) into the gates ``(f, i, g, q)`` in place; returns ``z``."""
    scale, shift = _gate_activation_affine(z.shape[-1] // 4)
    z *= scale
    np.tanh(z, out=z)
    z *= scale
    z += shift
    return z


# ---------------------------------------------------------------- the cell

_scratch = threading.local()


class LSTMCell:
    r"""The LSTM as a cell of :mod:`bptt_lib.bptt` (the interface of :class:`bptt_lib.cell.Cell`).

    It works on packed parameters (:func:`pack`): ``W`` (4H, H), ``U`` (4H, D),
    ``b`` (4H,), and the output layer's ``V``, ``c``. A state record (B, 6H) holds
    :math:`(h, s, f, i, g, q)`; the initial record has zero gates
    (:func:`initial_record`), which no step reads.

    The gradient of a record (``grad_h`` and ``dh0`` of :func:`bptt_lib.bptt.bptt`)
    treats :math:`h^{(t)}` and :math:`s^{(t)}` as two independent coordinates of the
    state: its ``h`` part is :math:`\nabla_{h^{(t)}} L`, its ``s`` part the gradient
    reaching :math:`s^{(t)}` through step :math:`t + 1` only (through
    :math:`f \odot s^{(t)}`), and its gate parts are zero. The total gradient of
    :math:`s^{(t)}`, which adds the path through :math:`h^{(t)} = q \odot \tanh s^{(t)}`,
    is :math:`\delta_s` of :meth:`step_vjp` (kernel ``cell_state_vjp``). For the
    initial state both parts are the gradients with respect to ``h0`` and ``s0``.
    """

    name = "lstm"
    state = ("h", "s", "f", "i", "g", "q")
    param_shapes = {"W": ("4H", "H"), "U": ("4H", "D"), "b": ("4H",)}

    def width(self, params: dict) -> int:
        """``6H``, the length of one example's record."""
        return 6 * params["W"].shape[1]

    def projection_width(self, params: dict) -> int:
        """``4H``, the length of one example's projected input (all four gates)."""
        return params["W"].shape[0]

    def step_work(self, params: dict, h0: np.ndarray) -> int:
        """Multiply-adds of one step's product, (B, H) by (H, 4H): ``4 B H H`` (for :func:`bptt_lib.bptt.step_work`)."""
        return (h0.size // h0.shape[-1]) * params["W"].shape[0] * params["W"].shape[1]

    def hidden(self, states: np.ndarray) -> np.ndarray:
        """The hidden states :math:`h` of records (..., 6H): a view (..., H)."""
        return states[..., :states.shape[-1] // 6]

    def carried(self, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The carried state ``(h, s)`` of records (..., 6H): two views (..., H)."""
        H = states.shape[-1] // 6
        return states[..., :H], states[..., H:2 * H]

    def state_gradient(self, dh: np.ndarray) -> np.ndarray:
        """``dh`` (n, B, H) as the gradient of whole records (n, B, 6H): zero for ``s`` and the gates.

        The array is a :func:`bptt_lib.bptt.workspace`, reused by the next call. Its gate
        parts are zeroed when the workspace is allocated and stay zero, because nothing
        writes there: :meth:`step_vjp` returns zero gradients for the gates (they are
        not carried from step to step), except the incoming ``dh_next`` of
        :func:`bptt_lib.bptt.bptt`, added to the last row, whose gate parts are zeroed
        on each call. So only the ``h`` and ``s`` parts are written on each call, which
        saves zeroing two thirds of the array every time.
        """
        n, B, H = dh.shape
        full = bptt.workspace("lstm_state_gradient", (n, B, 6 * H), dh.dtype)
        base = full if full.base is None else full.base
        known = getattr(_scratch, "zeroed", None)
        if known is None or known() is not base:       # a new workspace: zero it once
            base[...] = 0.0
            _scratch.zeroed = weakref.ref(base)
        full[..., :H] = dh
        full[..., H:2 * H] = 0.0
        full[-1, :, 2 * H:] = 0.0    # the one row a caller's dh_next is added to (zero there too, as a rule)
        return full

    def project(self, params: dict, x: np.ndarray, out=None) -> np.ndarray:
        """``x_p = b + U x`` for a block of steps ``x`` (n, B, D): (n, B, 4H), one product for all rows."""
        n, B, D = x.shape
        rows = None if out is None else out.reshape(n * B, -1)
        xp = lstm_kernels().input_projection(x.reshape(n * B, D), params["U"], params["b"], out=rows)
        return xp.reshape(n, B, -1)

    def step(self, params: dict, h_prev: np.ndarray, xp: np.ndarray, out: np.ndarray) -> np.ndarray:
        r"""One step forward from the record ``h_prev`` (B, 6H) into the record ``out`` (B, 6H); returns ``out``.

        The gates' pre-activations (generated kernel ``gate_preactivation``) are
        turned into gates in place (:func:`gate_activations_in_place`) and copied into
        the record; then :math:`s = f \odot s^{(t-1)} + i \odot g`
        and :math:`h = q \odot \tanh s`, the definitions, evaluated in place with no
        temporary array (the kernels ``cell_state`` and ``hidden_state`` print the same
        expressions; a test checks that they agree).
        """
        B, H = len(out), params["W"].shape[1]
        # the gates in a contiguous scratch array first: elementwise work on it is about
        # twice as fast as on the column slice of the record, and one copy moves it there
        gates = bptt.workspace("lstm_gates", (B, 4 * H), out.dtype)
        lstm_kernels().gate_preactivation(h_prev[:, :H], params["W"], xp, out=gates)
        gate_activations_in_place(gates)
        out[:, 2 * H:] = gates
        f, i, g, q = (gates[:, j * H:(j + 1) * H] for j in range(4))
        s, h = out[:, H:2 * H], out[:, :H]
        np.multiply(f, h_prev[:, H:2 * H], out=s)    # s = f s_prev + i g, with h as scratch for i g
        np.multiply(i, g, out=h)
        s += h
        np.tanh(s, out=h)                            # h = q tanh(s)
        h *= q
        return out

    def step_vjp(self, params: dict, h_prev: np.ndarray, h: np.ndarray,
                 dh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r"""Backward through one step: ``(da, dh_prev)``.

        ``h_prev``, ``h`` are the step's input and output records (B, 6H), ``dh`` the
        total gradient of the output record (its ``h`` and ``s`` parts:
        :math:`\nabla_{h^{(t)}} L` and the gradient reaching :math:`s^{(t)}` from step
        :math:`t + 1`). Returns ``da`` (B, 4H), the gradients of the four gates'
        pre-activations (a workspace, copied by the caller), and ``dh_prev`` (B, 6H),
        the gradient of the input record: :math:`G_z W` for :math:`h^{(t-1)}`,
        :math:`\delta_s \odot f` for :math:`s^{(t-1)}`, zero for the gates.
        """
        k = lstm_kernels()
        B, H = len(dh), params["W"].shape[1]
        # the record parts, copied once into contiguous (B, H) planes: elementwise work on
        # contiguous arrays is several times faster than on column slices of the records
        planes = bptt.workspace("lstm_planes", (8, B, H), dh.dtype)
        planes[:5] = h[:, H:].reshape(B, 5, H).transpose(1, 0, 2)
        planes[5:7] = dh[:, :2 * H].reshape(B, 2, H).transpose(1, 0, 2)
        s, f, i, g, q, dh_h, ds, s_prev = planes
        s_prev[...] = h_prev[:, H:2 * H]
        c = np.tanh(s)
        delta_s = k.cell_state_vjp(dh_h, ds, q, c)
        da = bptt.workspace("lstm_da", (B, 4 * H), dh.dtype)
        da_f, da_i, da_g, da_q = k.gate_vjp(delta_s, dh_h, c, s_prev, f, i, g, q)
        da[:, :H], da[:, H:2 * H], da[:, 2 * H:3 * H], da[:, 3 * H:] = da_f, da_i, da_g, da_q
        dh_prev = np.empty_like(dh)
        dh_prev[:, 2 * H:] = 0.0
        k.h_prev_vjp(da, params["W"], out=dh_prev[:, :H])
        dh_prev[:, H:2 * H] = k.s_prev_vjp(delta_s, f)
        return da, dh_prev

    def param_vjp(self, params: dict, da: np.ndarray, h: np.ndarray, x: np.ndarray, grads: dict) -> None:
        """Add the gradients of a block of ``n`` steps into ``grads["W"]``, ``["U"]``, ``["b"]`` (packed).

        ``da`` (n, B, 4H), the records ``h`` (n + 1, B, 6H) from before the first step to
        after the last, ``x`` (n, B, D): one product over all ``n B`` rows for each parameter.
        """
        n, B, D = x.shape
        H4 = da.shape[-1]
        H = H4 // 4
        dWt, dUt, db = lstm_kernels().params_vjp(
            da.reshape(n * B, H4), h[:-1, :, :H].reshape(n * B, H), x.reshape(n * B, D), np.ones((n * B, 1)))
        grads["W"] += dWt.T           # the kernel gives the gradients of W^T and U^T (faster products)
        grads["U"] += dUt.T
        grads["b"] += db.reshape(H4)


LSTM_CELL = LSTMCell()
"""The LSTM cell that :func:`loss_and_grads` and :data:`MODEL` run."""


# ---------------------------------------------------------------- parameters and state

def init_params(n_in: int, n_hidden: int, n_out: int, *, rng: np.random.Generator,
                forget_bias: float = 1.0, scale=None) -> dict:
    r"""Random parameters for an LSTM with ``D = n_in``, ``H = n_hidden``, ``K = n_out``.

    Parameters
    ----------
    n_in, n_hidden, n_out : int
        Positive sizes.
    rng : numpy.random.Generator
        The only source of randomness.
    forget_bias : float
        Every entry of :math:`b_f` (1 by default, so that :math:`f \approx \sigma(1) = 0.73`
        at the start and the cell state is kept rather than reset; 0 gives
        :math:`f \approx 1/2`). Any finite real number.
    scale : float, optional
        Standard deviation of every weight entry; by default ``1 / sqrt(fan_in)``
        (the number of columns) for each matrix.

    Returns
    -------
    dict
        ``W_*`` (H, H), ``U_*`` (H, D) for each gate ``*`` in ``f, i, g, q`` and ``V``
        (K, H), normal, drawn in the order of :data:`PARAM_SHAPES`; ``b_f`` filled with
        ``forget_bias``; ``b_i``, ``b_g``, ``b_q`` (H,) and ``c`` (K,) zero.
    """
    n_in, n_hidden, n_out = (positive_int(name, value) for name, value in
                             (("n_in", n_in), ("n_hidden", n_hidden), ("n_out", n_out)))
    if isinstance(forget_bias, (bool, np.bool_)) or not isinstance(forget_bias, (int, float, np.integer, np.floating)) \
            or not np.isfinite(forget_bias):
        raise ValueError(f"forget_bias must be a finite real number; got {forget_bias!r}")
    sizes = {"H": n_hidden, "D": n_in, "K": n_out}
    shapes = {key: tuple(sizes[d] for d in dims) for key, dims in PARAM_SHAPES.items() if len(dims) == 2}
    weights = normal_weights(shapes, rng=rng, scale=scale)
    params = {}
    for key, dims in PARAM_SHAPES.items():
        if len(dims) == 2:
            params[key] = weights[key]
        else:
            params[key] = np.full(sizes[dims[0]], float(forget_bias) if key == "b_f" else 0.0)
    return params


def check_params(params, sizes: dict) -> dict:
    """Validate the LSTM's parameter dict (float64, finite, shapes of :data:`PARAM_SHAPES`); record ``H, K, D``."""
    require_keys("params", params, list(PARAM_SHAPES))
    order = ["W_f", "V"] + [key for key in PARAM_SHAPES if key not in ("W_f", "V")]   # W_f and V fix H and K
    checked = {}
    for key in order:
        arr = as_array(f'params["{key}"]', params[key], PARAM_SHAPES[key], sizes, kind="float")
        require_finite(f'params["{key}"]', arr)
        checked[key] = arr
    return {key: checked[key] for key in PARAM_SHAPES}


def check_state0(state0, sizes: dict) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``state0``: None (zeros) or a pair ``(h0, s0)`` of (B, H) arrays (a tuple, a list or a
    (2, B, H) array), either of them None for zeros. Returns the two arrays, float64."""
    if state0 is None:
        state0 = (None, None)
    if isinstance(state0, np.ndarray) and state0.ndim == 3 and len(state0) == 2:
        state0 = tuple(state0)                       # a stacked pair (2, B, H)
    if isinstance(state0, np.ndarray) or not isinstance(state0, (tuple, list)) or len(state0) != 2:
        raise TypeError("state0 must be None or a pair (h0, s0) of (B, H) arrays; got "
                        + (f"an array of shape {state0.shape}" if isinstance(state0, np.ndarray)
                           else f"{type(state0).__name__}"))
    parts = []
    for name, value in zip(("h0", "s0"), state0):
        if value is None:
            value = np.zeros((sizes["B"], sizes["H"]))
        arr = as_array(f"state0 {name}", value, ("B", "H"), sizes)
        require_finite(f"state0 {name}", arr)
        parts.append(arr)
    return parts[0], parts[1]


def pack(params: dict) -> dict:
    """The packed parameters of :class:`LSTMCell`: ``W`` (4H, H), ``U`` (4H, D), ``b`` (4H,), ``V``, ``c``.

    The gates are stacked in the order of :data:`GATES` (f, i, g, q). ``params`` must be validated.
    """
    return {"W": np.concatenate([params[f"W_{gate}"] for gate in GATES]),
            "U": np.concatenate([params[f"U_{gate}"] for gate in GATES]),
            "b": np.concatenate([params[f"b_{gate}"] for gate in GATES]),
            "V": params["V"], "c": params["c"]}


def unpack(packed: dict) -> dict:
    """Packed arrays (parameters or their gradients) back to the keys of :data:`PARAM_SHAPES`, as copies."""
    H = packed["W"].shape[0] // 4
    out = {}
    for j, gate in enumerate(GATES):
        rows = slice(j * H, (j + 1) * H)
        out[f"W_{gate}"] = packed["W"][rows].copy()
        out[f"U_{gate}"] = packed["U"][rows].copy()
        out[f"b_{gate}"] = packed["b"][rows].copy()
    out["V"], out["c"] = packed["V"].copy(), packed["c"].copy()
    return {key: out[key] for key in PARAM_SHAPES}


def initial_record(h0: np.ndarray, s0: np.ndarray) -> np.ndarray:
    """The record (B, 6H) of the state ``(h0, s0)``: ``[h0, s0, 0, 0, 0, 0]`` (the gates are not read)."""
    B, H = h0.shape
    record = np.zeros((B, 6 * H), dtype=np.result_type(h0, s0))
    record[:, :H], record[:, H:2 * H] = h0, s0
    return record


def state_of(record: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The state ``(h, s)`` held in a record (B, 6H), e.g. the last record of a chunk, as copies: a valid ``state0``."""
    h, s = LSTM_CELL.carried(np.asarray(record))
    return h.copy(), s.copy()


def _prepare(params, x, y, state0):
    """Validate for :mod:`bptt_lib.models` and pack: ``(packed params, x, y, initial record)``."""
    sizes: dict = {}
    p = check_params(params, sizes)
    x = as_array("x", x, ("T", "B", "D"), sizes)
    require_finite("x", x)
    y = check_targets(y, sizes)
    h0, s0 = check_state0(state0, sizes)
    return pack(p), x, y, initial_record(h0, s0)


# ---------------------------------------------------------------- the public functions

@dataclass
class Trace:
    """What :func:`forward` returns (attributes; ``trace["h"]`` works too).

    Attributes
    ----------
    x : ndarray, (T, B, D)
    h, s : ndarray, (T + 1, B, H)
        Hidden and cell states; ``[0]`` is the initial state, ``[t]`` the state after step ``t``.
    f, i, g, q : ndarray, (T, B, H)
        The gates; ``[t - 1]`` is the gate of step ``t``.
    o, yhat, log_yhat : ndarray, (T, B, K)
        Logits, softmax probabilities and their logarithms.
    """

    x: np.ndarray
    h: np.ndarray
    s: np.ndarray
    f: np.ndarray
    i: np.ndarray
    g: np.ndarray
    q: np.ndarray
    o: np.ndarray
    yhat: np.ndarray
    log_yhat: np.ndarray

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def keys(self) -> tuple:
        return tuple(fld.name for fld in fields(self))


def _forward_unchecked(packed: dict, x: np.ndarray, record0: np.ndarray) -> Trace:
    T, B, _ = x.shape
    H, K = packed["W"].shape[1], packed["V"].shape[0]
    records = bptt.forward(LSTM_CELL, packed, x, record0)
    parts = [np.ascontiguousarray(records[..., j * H:(j + 1) * H]) for j in range(6)]
    h, s = parts[0], parts[1]
    f, i, g, q = (part[1:] for part in parts[2:])
    o = rnn_kernels().output_logits(h[1:].reshape(T * B, H), packed["V"], packed["c"]).reshape(T, B, K)
    yhat, log_yhat = softmax_and_log(o)
    return Trace(x=x, h=h, s=s, f=f, i=i, g=g, q=q, o=o, yhat=yhat, log_yhat=log_yhat)


def forward(params: dict, x, state0=None) -> Trace:
    """Run the LSTM over a batch of sequences.

    Parameters
    ----------
    params : dict
        The keys of :data:`PARAM_SHAPES`, real float arrays.
    x : array_like, (T, B, D)
    state0 : pair of array_like (B, H), optional
        ``(h0, s0)``; zeros by default (either part may be None for zeros).

    Returns
    -------
    Trace
        ``h`` and ``s`` (T + 1, B, H), the gates ``f``, ``i``, ``g``, ``q`` (T, B, H),
        ``o``, ``yhat`` and ``log_yhat`` (T, B, K), and ``x``.
    """
    sizes: dict = {}
    p = check_params(params, sizes)
    x = as_array("x", x, ("T", "B", "D"), sizes)
    require_finite("x", x)
    h0, s0 = check_state0(state0, sizes)
    with np.errstate(over="ignore", invalid="ignore"):
        return _forward_unchecked(pack(p), x, initial_record(h0, s0))


def loss(params: dict, x, y, state0=None) -> float:
    """The loss alone, from :func:`forward`: summed over time, averaged over the batch."""
    sizes: dict = {}
    p = check_params(params, sizes)
    x = as_array("x", x, ("T", "B", "D"), sizes)
    require_finite("x", x)
    y = check_targets(y, sizes)
    trace = _forward_unchecked(pack(p), x, initial_record(*check_state0(state0, sizes)))
    picked = np.take_along_axis(trace.log_yhat, y[..., None], axis=-1)
    return float(-picked.sum() / y.shape[1])


def loss_and_grads(params: dict, x, y, state0=None) -> tuple[float, dict]:
    r"""The loss and its gradient with respect to every parameter, by full BPTT.

    Parameters
    ----------
    params : dict
        ``W_*`` (H, H), ``U_*`` (H, D), ``b_*`` (H,) for each gate ``*`` in
        ``f, i, g, q``, ``V`` (K, H), ``c`` (K,); real floats.
    x : array_like, (T, B, D)
    y : array_like of int, (T, B)
        Target classes in ``[0, K)``.
    state0 : pair of array_like (B, H), optional
        ``(h0, s0)``, zeros by default.

    Returns
    -------
    loss : float
        :math:`L = \frac{1}{B} \sum_{b, t} -\log \hat y^{(t)}_{b, y^{(t)}_b}`.
    grads : dict
        Same keys and shapes as :data:`PARAM_SHAPES`.

    Raises
    ------
    KeyError, TypeError, ValueError
        For missing keys, wrong dtypes or shapes, targets out of range, a
        ``state0`` that is not a pair, or non-finite inputs; the message names the argument.
    FloatingPointError
        If the loss or a gradient is not finite.
    """
    packed, x, y, record0 = _prepare(params, x, y, state0)
    grads = {key: np.zeros_like(value) for key, value in packed.items()}
    with np.errstate(over="ignore", invalid="ignore"):
        value, grads, _ = bptt.bptt(LSTM_CELL, packed, x, y, record0, grads=grads)
    check_finite_result("loss_and_grads", {"loss": np.asarray(value)})
    grads = unpack(grads)
    check_finite_result("loss_and_grads", grads)
    return value, grads


MODEL = models.Model(name="lstm", cell=LSTM_CELL, prepare=_prepare, unpack=unpack)
"""The LSTM as ``model="lstm"`` of truncated BPTT, ARTBP and checkpointing (:mod:`bptt_lib.models`).

``state0`` is ``None`` or a pair ``(h0, s0)``; a state record carried from one
window to the next is turned back into such a pair by :func:`state_of`.
"""


# ---------------------------------------------------------------- chapter 14: a plain reference, gradient reach

def reference_loss(params: dict, x, y, state0=None):
    r"""The loss by a plain loop over the steps, written from the equations (complex-safe).

    The sigmoid is :math:`1/(1 + e^{-a})` and nothing is packed or generated: an independent
    implementation for gradient checks, also by the complex step (parameters may be complex,
    and then so is the loss). Same loss as :func:`loss`.
    """
    x, y = np.asarray(x), np.asarray(y)
    T, B, _ = x.shape
    H = params["W_f"].shape[0]
    dtype = np.result_type(*params.values(), x)
    h = np.zeros((B, H), dtype) if state0 is None or state0[0] is None else np.asarray(state0[0], dtype)
    s = np.zeros((B, H), dtype) if state0 is None or state0[1] is None else np.asarray(state0[1], dtype)
    total = 0
    for t in range(T):
        a = {n: params[f"b_{n}"] + h @ params[f"W_{n}"].T + x[t] @ params[f"U_{n}"].T for n in GATES}
        f, i, q = (1 / (1 + np.exp(-a[n])) for n in ("f", "i", "q"))
        g = np.tanh(a["g"])
        s = f * s + i * g
        h = q * np.tanh(s)
        o = params["c"] + h @ params["V"].T
        o = o - o.real.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(o).sum(axis=1))
        total = total - (o[np.arange(B), y[t]] - log_norm).sum()
    return total / B


def gradient_reach(params: dict, x, y_last, state0=None, *, cell_path_only: bool = False) -> tuple:
    r"""How far back the gradient of the last step's loss reaches: ``(reach_h, reach_s)``, each (T + 1,).

    With :math:`L^{(T)}` the loss of the last step alone (targets ``y_last`` (B,)),
    ``reach_h[t]`` is :math:`\lVert \partial L^{(T)} / \partial h^{(t)} \rVert` and ``reach_s[t]``
    :math:`\lVert \partial L^{(T)} / \partial s^{(t)} \rVert` (total derivatives, Frobenius norm
    over the batch), both divided by their value at :math:`t = T`; entry 0 is the initial state.
    The backward steps are those of :class:`LSTMCell` (``step_vjp``).

    With ``cell_path_only=True``, only the constant-error-carousel path is followed: from
    :math:`\partial L^{(T)}/\partial s^{(T)}` the gradient is multiplied by :math:`f^{(t)}` at each
    step, and the terms through :math:`h^{(t-1)}` are dropped (``reach_h`` is then zero before ``T``).
    """
    sizes: dict = {}
    p = check_params(params, sizes)
    x = as_array("x", x, ("T", "B", "D"), sizes)
    packed = pack(p)
    record0 = initial_record(*check_state0(state0, sizes))
    T, B, _ = x.shape
    H = packed["W"].shape[1]
    records = bptt.forward(LSTM_CELL, packed, x, record0)
    h_T = records[T, :, :H]
    o = h_T @ packed["V"].T + packed["c"]
    yhat = np.exp(o - o.max(axis=1, keepdims=True))
    yhat /= yhat.sum(axis=1, keepdims=True)
    yhat[np.arange(B), np.asarray(y_last)] -= 1.0
    dh = np.zeros((B, 6 * H))
    dh[:, :H] = yhat @ packed["V"] / B              # dL^(T)/dh^(T)
    reach_h, reach_s = np.zeros(T + 1), np.zeros(T + 1)
    for t in range(T, 0, -1):
        s, q = records[t, :, H:2 * H], records[t, :, 5 * H:]
        total_s = dh[:, H:2 * H] + dh[:, :H] * q * (1 - np.tanh(s) ** 2)
        reach_h[t], reach_s[t] = np.linalg.norm(dh[:, :H]), np.linalg.norm(total_s)
        if cell_path_only:
            nxt = np.zeros_like(dh)
            nxt[:, H:2 * H] = total_s * records[t, :, 2 * H:3 * H]     # times f^(t)
            dh = nxt
        else:
            _, dh = LSTM_CELL.step_vjp(packed, records[t - 1], records[t], dh)
    reach_h[0], reach_s[0] = np.linalg.norm(dh[:, :H]), np.linalg.norm(dh[:, H:2 * H])
    return reach_h / reach_h[T], reach_s / reach_s[T]


def reach_by_forget_bias(biases, seeds, *, T: int = 50, B: int = 16, D: int = 8, H: int = 32, K: int = 8,
                         cell_path_only: bool = False) -> dict:
    """:func:`gradient_reach` at initialisation for each forget-gate bias and seed.

    Seed ``s`` draws the weights (:func:`init_params` with ``forget_bias`` = the bias, so that
    every bias sees the same weights), standard normal inputs (T, B, D) and last targets from
    ``np.random.default_rng([14, s])``. Returns ``{"h": ..., "s": ...}``, arrays
    (len(biases), len(seeds), T + 1).
    """
    out = {"h": np.zeros((len(biases), len(seeds), T + 1)), "s": np.zeros((len(biases), len(seeds), T + 1))}
    for j, seed in enumerate(seeds):
        for k, bias in enumerate(biases):
            rng = np.random.default_rng([14, seed])
            params = init_params(D, H, K, rng=rng, forget_bias=bias)
            x = rng.standard_normal((T, B, D))
            y_last = rng.integers(0, K, B)
            out["h"][k, j], out["s"][k, j] = gradient_reach(params, x, y_last, cell_path_only=cell_path_only)
    return out


def plot_reach(biases, reach: dict, carousel: dict | None = None):
    """Two panels, ``h`` and ``s``: the reach against the lag ``T - t`` (log scale), one colour per bias.

    Each seed a thin line, the median a thick one; ``carousel`` (same layout), if given, dashed medians.
    """
    import matplotlib.pyplot as plt

    from .plotting import COLORS

    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.8), sharey=True)
    T = reach["h"].shape[-1] - 1
    lags = np.arange(T, -1, -1)
    for ax, part, title in zip(axes, ("h", "s"), (r"$\|\partial L^{(T)}/\partial h^{(t)}\|$, relative",
                                                   r"$\|\partial L^{(T)}/\partial s^{(t)}\|$, relative")):
        for k, bias in enumerate(biases):
            color = COLORS[k % len(COLORS)]
            for run in reach[part][k]:
                ax.semilogy(lags, np.maximum(run, 1e-300), color=color, lw=0.6, alpha=0.4)
            ax.semilogy(lags, np.median(reach[part][k], axis=0), color=color, lw=2, label=f"$b_f = {bias:g}$")
            if carousel is not None and part == "s":
                ax.semilogy(lags, np.median(carousel["s"][k], axis=0), color=color, lw=1.2, ls="--")
        ax.set(xlabel="lag $T - t$ (steps back from the loss)", title=title, ylim=(1e-45, 10))
    axes[0].set_ylabel("norm relative to $t = T$")
    axes[0].legend(loc="lower left")
    fig.tight_layout()
    return fig
