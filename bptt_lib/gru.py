r"""The gated recurrent unit (GRU) of Cho et al. (2014), batched, with full BPTT over the recurrent core.

For example ``b`` of a batch, with the book's output layer and loss:

.. math::

    z^{(t)} = \sigma(b_z + W_z h^{(t-1)} + U_z x^{(t)}),

    r^{(t)} = \sigma(b_r + W_r h^{(t-1)} + U_r x^{(t)}),

    \tilde h^{(t)} = \tanh\big(b_h + W_h (r^{(t)} \odot h^{(t-1)})
        + U_h x^{(t)}\big),

    h^{(t)} = z^{(t)} \odot h^{(t-1)} + (1 - z^{(t)}) \odot \tilde h^{(t)},

    o^{(t)} = c + V h^{(t)}, \quad \hat y^{(t)} = \operatorname{softmax}(o^{(t)}),

    L = \frac{1}{B} \sum_{b=1}^{B} \sum_{t=1}^{T} -\log \hat y^{(t)}_{b,\, y^{(t)}_b}.

Parameters (:data:`PARAM_SHAPES`): ``W_z, W_r, W_h`` (H, H), ``U_z, U_r, U_h`` (H, D),
``b_z, b_r, b_h`` (H,), ``V`` (K, H), ``c`` (K,). Shapes of arrays: ``x`` (T, B, D), ``y``
(T, B) integers in ``[0, K)``, ``state0`` (B, H), zeros by default.

Two conventions of other sources are options of every public function (derived in
:mod:`bptt_lib.derive.gru`): ``reset="after"`` applies the reset gate after the product,
:math:`\tilde h = \tanh(b_h + r \odot (W_h h^{(t-1)} + b_{hn}) + U_h x^{(t)})`, as PyTorch's
``nn.GRU`` does (its second candidate bias ``b_hn`` is the optional key ``params["b_hn"]``, zero
when absent; PyTorch's other second biases only add to ``b_z``, ``b_r``); ``update="candidate"``
lets the update gate weight the candidate, :math:`h^{(t)} = (1 - z) \odot h^{(t-1)} + z \odot \tilde h`.

How it runs. The cell of this module (:class:`GRUCell`) has the interface of
:class:`bptt_lib.cell.Cell`, so :func:`bptt_lib.bptt.forward` and :func:`bptt_lib.bptt.bptt`
run it unchanged, and so do truncated BPTT, ARTBP and checkpointing with ``model="gru"``
(:data:`MODEL`). The parameters are first *packed* (:func:`pack`): ``W`` (3H, H) stacks
:math:`W_z, W_r, W_h`, and ``U`` (3H, D) and ``b`` (3H,) likewise, so that the inputs of a
block of steps are projected for all three in one product. The state record of a step,
(B, 5H), holds the parts ``h, z, r, h~`` and ``q`` (:data:`SLOTS`, :func:`slots`), each a
contiguous (B, H) block: ``q`` is :math:`r \odot h^{(t-1)}`, what :math:`W_h` multiplies
(with ``reset="after"`` the part holds :math:`m = W_h h^{(t-1)}` instead), so the backward
pass needs nothing but the records. Every linear map and every backward rule is a kernel
generated from the derivation (:func:`gru_kernels`); the forward activations are NumPy's
``tanh`` and ``exp``, in place. The steps write into the records and into reused work arrays
(:func:`bptt_lib.bptt.workspace`); the weight gradients are products over whole blocks of
steps, outside the loop over time.
"""

from __future__ import annotations

import functools
import linecache
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from . import bptt, models
from .codegen import generate, generate_into
from .derive import gru as derive
from .kernels import rnn_kernels
from .rnn import check_targets, normal_weights
from .softmax import softmax_and_log
from .validation import as_array, check_finite_result, positive_int, require_finite, require_keys

__all__ = [
    "PARAM_SHAPES", "OPTIONAL_SHAPES", "SLOTS", "KERNEL_NAMES", "gru_kernels", "generate_in_place", "slots",
    "GRUCell", "gru_cell",
    "init_params", "check_params", "check_inputs", "pack", "unpack", "initial_record",
    "Trace", "forward", "loss", "loss_and_grads", "model", "MODEL",
    "GATE_KEYS", "step", "step_jacobian", "step_hessian", "negate_update_gate", "gradient_difference",
    "plot_gradient_pairs",
]

PARAM_SHAPES = {
    "W_z": ("H", "H"), "U_z": ("H", "D"), "b_z": ("H",),
    "W_r": ("H", "H"), "U_r": ("H", "D"), "b_r": ("H",),
    "W_h": ("H", "H"), "U_h": ("H", "D"), "b_h": ("H",),
    "V": ("K", "H"), "c": ("K",),
}
"""Each parameter's shape in the book's dimension names (``z`` update, ``r`` reset, ``h`` candidate)."""

OPTIONAL_SHAPES = {"b_hn": ("H",)}
r"""PyTorch's second candidate bias, inside :math:`r \odot (W_h h^{(t-1)} + b_{hn})`: with ``reset="after"`` only."""

GATES = ("z", "r", "h")

SLOTS = {"before": ("h", "z", "r", "h_tilde", "q"), "after": ("h", "z", "r", "h_tilde", "m")}
"""The parts of a state record, side by side on its last axis (each H wide), for each ``reset``."""

KERNEL_NAMES = (
    "input_projection", "gate_preactivation", "candidate_preactivation", "reset_after_product",
    "reset_after_affine", "reset_after_bias_vjp",
    "candidate_after", "interpolate_previous", "interpolate_candidate",
    *(f"update_vjp_{u}_{part}" for u in ("previous", "candidate") for part in ("a_z", "a_h", "h_prev")),
    "reset_vjp_gate", "reset_vjp_input",
    "candidate_vjp_input", "state_vjp_before", "state_vjp_after",
    "gates_vjp_weights", "candidate_vjp_weights", "input_vjp_params",
)
"""The names of the generated kernels that :func:`gru_kernels` returns."""


@functools.cache
def gru_kernels() -> SimpleNamespace:
    """Generate (once) and return the GRU's kernels, by name (see :data:`KERNEL_NAMES`).

    Linear maps (batch rows, from :func:`bptt_lib.derive.gru.linear_maps` and
    :func:`~bptt_lib.derive.gru.linear_vjps`, printed by :func:`bptt_lib.codegen.generate_into`
    or :func:`~bptt_lib.codegen.generate`) and elementwise rules (one unit, from
    :func:`~bptt_lib.derive.gru.update_rules`, :func:`~bptt_lib.derive.gru.reset_rules`,
    :func:`~bptt_lib.derive.gru.forward_rules`, printed by :func:`generate_in_place`), which
    apply to arrays of any shape.
    """
    s = derive.batch_symbols()
    maps, vjps = derive.linear_maps(s), derive.linear_vjps(s)
    d = derive
    k = SimpleNamespace()
    k.input_projection = generate_into(
        "input_projection", [s.X, s.U, s.b], maps["input_projection"],
        "[b_z + U_z x, b_r + U_r x, b_h + U_h x] for every row, written into out: (rows, 3H).", ones=[s.one_B])
    k.gate_preactivation = generate_into(
        "gate_preactivation", [s.H_prev, s.W_g, s.X_g], maps["gate"],
        "A gate's pre-activation H_prev W_g^T + X_g (W_g is W_z or W_r), written into out: (B, H).")
    k.candidate_preactivation = generate_into(
        "candidate_preactivation", [s.Q, s.W_h, s.X_h], maps["candidate"],
        "The candidate's pre-activation Q W_h^T + X_h, Q = r * h_prev (reset before), into out: (B, H).")
    k.reset_after_product = generate_into(
        "reset_after_product", [s.H_prev, s.W_h], maps["reset_after_product"],
        "m = H_prev W_h^T, what the reset gate multiplies when it acts after the product: (B, H).")
    k.reset_after_affine = generate_into(
        "reset_after_affine", [s.H_prev, s.W_h, s.b_n], maps["reset_after_affine"],
        "m = H_prev W_h^T + b_hn (reset after, with PyTorch's bias b_hn), written into out: (B, H).",
        ones=[s.one_B])
    k.reset_after_bias_vjp = generate(
        "reset_after_bias_vjp", [s.G_m, s.one_B], vjps[("reset_after_affine", s.b_n)],
        "db_hn = 1_B^T G_m, the gradient of PyTorch's bias b_hn summed over the rows: (1, H).")
    k.candidate_after = generate_in_place(
        "candidate_after", [d.x_h, d.r, d.v], d.forward_rules()["candidate_after"],
        "The candidate's pre-activation x_h + r * m (reset after), elementwise.")
    for update in d.UPDATES:
        setattr(k, f"interpolate_{update}", generate_in_place(
            f"interpolate_{update}", [d.z, d.h_prev, d.h_tilde], d.forward_rules(update)["state"],
            f"The new state from z, h_prev and the candidate (update={update!r}), elementwise."))
        rules = d.update_rules(update)
        for part, what in (("a_z", "dL/da_z"), ("a_h", "dL/da_h"), ("h_prev", "the direct part of dL/dh_prev")):
            setattr(k, f"update_vjp_{update}_{part}", generate_in_place(
                f"update_vjp_{update}_{part}", [d.g, d.z, d.h_prev, d.h_tilde], rules[part],
                f"{what} from g = dL/dh, elementwise (update={update!r})."))
    reset = d.reset_rules()
    k.reset_vjp_gate = generate_in_place(
        "reset_vjp_gate", [d.g, d.v, d.r], reset["a_r"],
        "dL/da_r from g = dL/d(r * v): v is h_prev (reset before) or m (reset after).")
    k.reset_vjp_input = generate_in_place(
        "reset_vjp_input", [d.g, d.r], reset["v"],
        "dL/dv from g = dL/d(r * v), elementwise.")
    k.candidate_vjp_input = generate_into(
        "candidate_vjp_input", [s.G_h, s.W_h], vjps[("candidate", s.Q)],
        "dL/dQ = G_h W_h, the gradient of r * h_prev through the candidate's product, into out: (B, H).")
    k.state_vjp_before = generate_into(
        "state_vjp_before", [s.G_z, s.W_z, s.G_r, s.W_r, s.D_1], vjps["state_before"],
        "dL/dh_prev = G_z W_z + G_r W_r + D_1 (reset before; D_1 the elementwise paths), into out: (B, H).")
    k.state_vjp_after = generate_into(
        "state_vjp_after", [s.G_z, s.W_z, s.G_r, s.W_r, s.G_m, s.W_h, s.D_1], vjps["state_after"],
        "dL/dh_prev = G_z W_z + G_r W_r + G_m W_h + D_1 (reset after), into out: (B, H).")
    # The weight gradients are generated transposed, (G^T P)^T = P^T G: the same numbers, and
    # OpenBLAS forms these long products (thousands of rows summed) faster with the narrower
    # operand on the left (measured: 13 % less time for the block's products at the canonical size).
    k.gates_vjp_weights = generate(
        "gates_vjp_weights", [s.G_zr, s.H_prev], vjps[("gates", s.W_zr)].T,
        "dW_zr^T = H_prev^T G_zr, summed over the rows: the transpose of dW_zr (any width of G).")
    k.candidate_vjp_weights = generate(
        "candidate_vjp_weights", [s.G_h, s.Q], vjps[("candidate", s.W_h)].T,
        "dW_h^T = Q^T G_h (reset before, Q = r * h_prev), summed over the rows: the transpose of dW_h.")
    k.input_vjp_params = generate(
        "input_vjp_params", [s.G_a, s.X, s.one_B],
        (vjps[("input_projection", s.U)].T, vjps[("input_projection", s.b)]),
        "(dU^T, db) of the stacked input projection, summed over the rows: (D, 3H), (1, 3H).")
    return k


class _InPlacePrinter:
    """Print an elementwise SymPy expression (sums, products, squares of symbols and numbers) as
    NumPy ufunc calls that write into ``out``, with scratch arrays ``tmp[i]`` for subexpressions."""

    def __init__(self):
        self.lines, self.n_tmp, self.free = [], 0, []

    def tmp(self) -> str:
        if self.free:
            return self.free.pop()
        self.n_tmp += 1
        return f"tmp[{self.n_tmp - 1}]"

    def emit(self, expr, dest: str) -> None:
        L = self.lines.append
        if expr.is_Symbol:
            L(f"numpy.copyto({dest}, {expr})")
        elif expr.is_Number:
            L(f"{dest}[...] = {float(expr)!r}")
        elif expr.is_Pow and expr.exp == 2:
            if not expr.base.is_Symbol:
                self.emit(expr.base, dest)
            L(f"numpy.square({expr.base if expr.base.is_Symbol else dest}, out={dest})")
        elif expr.is_Mul:
            self._mul(expr, dest)
        elif expr.is_Add:
            self._add(expr, dest)
        else:
            raise NotImplementedError(f"no in-place printing for {expr!r}")

    def _operand(self, expr, dest: str, op: str) -> None:
        """``dest op= expr`` (op one of + - *), through a scratch array unless expr is a symbol or number."""
        if expr.is_Symbol or expr.is_Number:
            self.lines.append(f"{dest} {op}= {expr if expr.is_Symbol else float(expr)!r}")
            return
        t = self.tmp()
        self.emit(expr, t)
        self.lines.append(f"{dest} {op}= {t}")
        self.free.append(t)

    def _mul(self, expr, dest: str) -> None:
        coeff, factors = expr.as_coeff_mul()
        symbols = [f for f in factors if f.is_Symbol]
        others = [f for f in factors if not f.is_Symbol]
        if len(symbols) >= 2:
            self.lines.append(f"numpy.multiply({symbols[0]}, {symbols[1]}, out={dest})")
            rest = symbols[2:] + others
        elif others:
            self.emit(others[0], dest)
            rest = symbols + others[1:]
        else:
            self.emit(symbols[0], dest)
            rest = []
        for f in rest:
            self._operand(f, dest, "*")
        if coeff == -1:
            self.lines.append(f"numpy.negative({dest}, out={dest})")
        elif coeff != 1:
            self.lines.append(f"{dest} *= {float(coeff)!r}")

    def _add(self, expr, dest: str) -> None:
        terms = list(expr.as_ordered_terms())
        neg = [-t for t in terms if t.could_extract_minus_sign()]
        pos = [t for t in terms if not t.could_extract_minus_sign()]
        pos.sort(key=lambda t: (t.is_Number, t.is_Symbol))       # a product first: no copy
        if pos and neg and (pos[0].is_Symbol or pos[0].is_Number) and neg[0].is_Symbol:
            a = pos[0] if pos[0].is_Symbol else float(pos[0])
            self.lines.append(f"numpy.subtract({a}, {neg[0]}, out={dest})")
            pos, neg = pos[1:], neg[1:]
        elif pos and pos[0].is_Number and neg:
            self.emit(neg[0], dest)
            self.lines.append(f"numpy.subtract({float(pos[0])!r}, {dest}, out={dest})")
            pos, neg = pos[1:], neg[1:]
        elif pos:
            self.emit(pos[0], dest)
            pos = pos[1:]
        else:
            self.emit(neg[0], dest)
            self.lines.append(f"numpy.negative({dest}, out={dest})")
            neg = neg[1:]
        for t in pos:
            self._operand(t, dest, "+")
        for t in neg:
            self._operand(t, dest, "-")


def generate_in_place(name: str, args, expr, doc: str = ""):
    """Generate ``name(*args, out, tmp)``: the elementwise ``expr`` written into ``out``, no allocation.

    The lambdified form of an elementwise rule allocates a temporary for every operation;
    at the canonical size that cost a GRU step about 40 microseconds. The code printed here
    performs the same operations with ``out=`` arguments, using the arrays ``tmp`` (at least
    ``fn.n_tmp`` of them, each the shape of ``out``) for subexpressions. ``fn.expr``,
    ``fn.args`` and ``source_of(fn)`` as for :func:`bptt_lib.codegen.generate`. ``out`` is
    written from the first operation on, so it may be an argument only of a kernel that is a
    single operation (``reset_vjp_input``, ``g * r``).
    """
    printer = _InPlacePrinter()
    printer.emit(expr, "out")
    params = ", ".join(str(a) for a in args)
    source = f"def {name}({params}, out, tmp=()):\n" + "".join(f"    {line}\n" for line in printer.lines) \
        + "    return out\n"
    filename = f"<generated {name}>"
    namespace = {"numpy": np}
    exec(compile(source, filename, "exec"), namespace)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    fn = namespace[name]
    fn.__doc__ = doc
    fn.expr, fn.args, fn.n_tmp = expr, tuple(args), printer.n_tmp
    return fn


def _run(kernel, *args, out):
    """Call an in-place kernel with scratch arrays from :func:`bptt_lib.bptt.workspace`."""
    tmp = [bptt.workspace(f"gru_tmp{i}", out.shape, out.dtype) for i in range(kernel.n_tmp)]
    return kernel(*args, out=out, tmp=tmp)


def _forward_weights(params: dict) -> np.ndarray:
    r"""The stacked ``W`` (3H, H) as the forward products should read it: the transpose of ``W_T``.

    The forward products are :math:`H_{prev} W_g^\top`; with ``W_g`` a view of the contiguous
    ``params["W_T"]`` (H, 3H) (:func:`pack` adds it), ``W_g.T`` is a plain slice and OpenBLAS
    runs a non-transposed product, measured 30 % faster at the canonical size (20 against 28
    microseconds for a (32, 128) by (128, 128) product). Without ``W_T``, ``W`` itself (same numbers).
    """
    W_T = params.get("W_T")
    return params["W"] if W_T is None else W_T.T


def _sigmoid_in_place(a: np.ndarray) -> np.ndarray:
    r""":math:`\sigma(a) = 1 / (1 + e^{-a})` written over ``a``; ``exp`` overflows to ``inf`` harmlessly (gives 0)."""
    np.negative(a, out=a)
    np.exp(a, out=a)
    a += 1
    return np.reciprocal(a, out=a)


def slots(record: np.ndarray, *, view: bool = False) -> np.ndarray:
    """The five parts of a state record (B, 5H) as an array (5, B, H): ``h, z, r, h~`` and ``q`` (or ``m``).

    A record is ``5 B H`` numbers in memory; the GRU reads them part by part, each part a
    contiguous (B, H) block (elementwise NumPy on contiguous blocks took a quarter of the
    time it took on columns of a (B, 5H) row layout, measured at the canonical size). With
    ``view=True`` the result must share memory with ``record`` (for writing): a record that
    is not contiguous raises ``ValueError``.
    """
    B, width = record.shape
    return np.reshape(record, (5, B, width // 5), copy=False if view else None)


@dataclass(frozen=True)
class GRUCell:
    r"""The GRU as a cell of :mod:`bptt_lib.bptt`, over the packed parameters of :func:`pack`.

    A state record is (B, 5H): ``5 B H`` numbers holding the parts ``(h, z, r, h~, q)`` (or
    ``m`` last, :data:`SLOTS`) one after the other, each a (B, H) block (:func:`slots`);
    :meth:`hidden` returns the ``h`` part. Gradients of records (``dh_next``, ``grad_h`` and
    the returned gradient of :func:`bptt_lib.bptt.bptt`) have the same layout, zero outside
    ``h``: take :meth:`hidden` of them. Projected inputs ``x_p`` (B, 3H) are rows
    ``[b_z + U_z x, b_r + U_r x, b_h + U_h x]``; the pre-activation gradients ``da`` (B, 3H)
    that :meth:`step_vjp` returns hold the blocks :math:`\nabla_{a_z} L`,
    :math:`\nabla_{a_r} L`, :math:`\nabla_{a_h} L` one after the other, as :meth:`param_vjp`
    reads them.

    Attributes
    ----------
    reset : {"before", "after"}
        Where the reset gate acts (:mod:`bptt_lib.derive.gru`).
    update : {"previous", "candidate"}
        Which of :math:`h^{(t-1)}` and the candidate the update gate weights.
    """

    reset: str = "before"
    update: str = "previous"

    def __post_init__(self):
        derive.check_convention(self.reset, self.update)

    @property
    def _update_vjp(self) -> tuple:
        return tuple(f"update_vjp_{self.update}_{part}" for part in ("a_z", "a_h", "h_prev"))

    @property
    def name(self) -> str:
        return "gru" if (self.reset, self.update) == ("before", "previous") else \
            f"gru(reset={self.reset}, update={self.update})"

    @property
    def state(self) -> tuple:
        return SLOTS[self.reset]

    param_shapes = {"W": ("3H", "H"), "U": ("3H", "D"), "b": ("3H",)}

    def width(self, params: dict) -> int:
        """``5H``: the length of one example's state record."""
        return 5 * params["W"].shape[1]

    def projection_width(self, params: dict) -> int:
        """``3H``: one block of ``b + U x`` per gate."""
        return params["U"].shape[0]

    def step_work(self, params: dict, h0: np.ndarray) -> int:
        """Multiply-adds of the largest matrix product of one step: ``B H H``.

        For :func:`bptt_lib.bptt.step_work`. Each step
        multiplies (B, H) by (H, H) three times; ``h0.size`` times the projection width,
        which the core uses for a cell without this method, would be ``15 B H H``.
        """
        return (h0.size // h0.shape[-1]) * params["W"].shape[1] ** 2

    def hidden(self, states: np.ndarray) -> np.ndarray:
        """The hidden states ``h`` (..., B, H) of records (..., B, 5H) (a view when the records are contiguous)."""
        *lead, B, width = states.shape
        return np.reshape(states, (*lead, 5, B, width // 5))[..., 0, :, :]

    def state_gradient(self, dh: np.ndarray) -> np.ndarray:
        """A gradient of ``h`` (..., B, H) as a gradient of the whole record (..., B, 5H): zeros beyond ``h``.

        The other parts are functions of the previous state and the input, recomputed by
        every step; nothing downstream reads them except through ``h``.
        """
        *lead, B, H = dh.shape
        full = np.zeros((*lead, B, 5 * H), dtype=dh.dtype)
        np.reshape(full, (*lead, 5, B, H), copy=False)[..., 0, :, :] = dh
        return full

    def project(self, params: dict, x: np.ndarray, out=None) -> np.ndarray:
        """``x_p = b + U x`` for a block of steps ``x`` (n, B, D): (n, B, 3H), one product for all rows and gates."""
        n, B, D = x.shape
        rows = None if out is None else out.reshape(n * B, -1)
        xp = gru_kernels().input_projection(x.reshape(n * B, D), params["U"], params["b"], out=rows)
        return xp.reshape(n, B, -1)

    def step(self, params: dict, h_prev: np.ndarray, xp: np.ndarray, out: np.ndarray) -> np.ndarray:
        """One step forward: the record ``out`` (B, 5H) from the record ``h_prev`` and ``xp`` (B, 3H)."""
        k = gru_kernels()
        W = _forward_weights(params)           # W_z, W_r, W_h as views whose transposes are contiguous
        H = W.shape[1]
        hp = slots(h_prev)[0]
        parts = slots(out, view=True)
        h, z, r, ht, last = parts
        tmp = [bptt.workspace("gru_tmp", hp.shape, out.dtype)]
        k.gate_preactivation(hp, W[:H], xp[:, :H], out=z)
        k.gate_preactivation(hp, W[H:2 * H], xp[:, H:2 * H], out=r)
        _sigmoid_in_place(parts[1:3])                                    # z and r: one contiguous block
        if self.reset == "before":
            np.multiply(r, hp, out=last)                                 # q = r * h_prev
            k.candidate_preactivation(last, W[2 * H:], xp[:, 2 * H:], out=ht)
        else:
            if "b_hn" in params:                                         # m = W_h h_prev (+ b_hn)
                k.reset_after_affine(hp, W[2 * H:], params["b_hn"], out=last)
            else:
                k.reset_after_product(hp, W[2 * H:], out=last)
            k.candidate_after(xp[:, 2 * H:], r, last, out=ht, tmp=tmp)
        np.tanh(ht, out=ht)
        getattr(k, f"interpolate_{self.update}")(z, hp, ht, out=h, tmp=tmp)
        return out

    def step_vjp(self, params: dict, h_prev: np.ndarray, h: np.ndarray,
                 dh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r"""Backward through one step: ``(da, dh_prev)``.

        ``h_prev``, ``h`` are the records (B, 5H) before and after the step and ``dh`` (B, 5H)
        the total gradient of the record (only its ``h`` part is read). ``da`` (B, 3H) holds
        :math:`\nabla_{a_z} L`, :math:`\nabla_{a_r} L`, :math:`\nabla_{a_h} L` (class docstring),
        the gradients of the three pre-activations (what :meth:`param_vjp` needs, with the
        records); ``dh_prev`` (B, 5H) is :math:`\nabla_{h^{(t-1)}} L` through this step in its
        ``h`` part, zeros elsewhere.
        """
        k = gru_kernels()
        W = params["W"]
        H = W.shape[1]
        B = dh.shape[0]
        hp = slots(h_prev)[0]
        _, z, r, ht, last = slots(h)
        g = slots(dh)[0]
        da = bptt.workspace("gru_da", (3, B, H), dh.dtype)
        direct = bptt.workspace("gru_direct", (B, H), dh.dtype)
        work = bptt.workspace("gru_work", (B, H), dh.dtype)
        tmp = [bptt.workspace("gru_tmp", (B, H), dh.dtype)]
        a_z, a_h, via_h = (getattr(k, name) for name in self._update_vjp)
        a_z(g, z, hp, ht, out=da[0], tmp=tmp)
        a_h(g, z, hp, ht, out=da[2], tmp=tmp)
        via_h(g, z, hp, ht, out=direct, tmp=tmp)
        dh_prev = np.zeros_like(dh)
        out = slots(dh_prev, view=True)[0]
        if self.reset == "before":
            g_q = k.candidate_vjp_input(da[2], W[2 * H:], out=work)     # dL/dq, q = r * h_prev
            k.reset_vjp_gate(g_q, hp, r, out=da[1], tmp=tmp)
            direct += k.reset_vjp_input(g_q, r, out=g_q, tmp=tmp)
            k.state_vjp_before(da[0], W[:H], da[1], W[H:2 * H], direct, out=out)
        else:
            k.reset_vjp_gate(da[2], last, r, out=da[1], tmp=tmp)         # last = m = W_h h_prev (+ b_hn)
            g_m = k.reset_vjp_input(da[2], r, out=work, tmp=tmp)         # dL/dm
            k.state_vjp_after(da[0], W[:H], da[1], W[H:2 * H], g_m, W[2 * H:], direct, out=out)
        return da.reshape(B, 3 * H), dh_prev

    def param_vjp(self, params: dict, da: np.ndarray, h: np.ndarray, x: np.ndarray, grads: dict) -> None:
        """Add the gradients of a block of ``n`` steps into ``grads["W"]``, ``["U"]``, ``["b"]`` (and ``["b_hn"]``).

        ``da`` (n, B, 3H) from :meth:`step_vjp`, ``h`` (n + 1, B, 5H) the records from before the
        first step to after the last, ``x`` (n, B, D): one product over all ``n B`` rows per matrix
        (the blocks of ``da`` and of the records are first laid out as rows, one copy each).
        """
        k = gru_kernels()
        n, B, D = x.shape
        H = params["W"].shape[1]
        rows = n * B
        # [dL/da_z | dL/da_r | dL/da_h] as rows (n B, 3H), and the parts of the records the products need
        G = np.reshape(da, (n, 3, B, H)).transpose(0, 2, 1, 3).reshape(rows, 3 * H)
        parts = np.reshape(h, (n + 1, 5, B, H))
        h_prev = parts[:-1, 0].reshape(rows, H)
        dU_T, db = k.input_vjp_params(G, x.reshape(rows, D), np.ones((rows, 1), dtype=G.dtype))
        grads["U"].T[...] += dU_T
        grads["b"] += db.reshape(3 * H)
        W_T = grads["W"].T                     # (H, 3H): the kernels return transposed weight gradients
        if self.reset == "before":
            q = parts[1:, 4].reshape(rows, H)
            W_T[:, :2 * H] += k.gates_vjp_weights(G[:, :2 * H], h_prev)
            W_T[:, 2 * H:] += k.candidate_vjp_weights(G[:, 2 * H:], q)
        else:                                  # dL/dm = r * dL/da_h in place of dL/da_h: H_prev^T [G_zr | G_m]
            r = parts[1:, 2].reshape(rows, H)
            _run(k.reset_vjp_input, G[:, 2 * H:], r, out=G[:, 2 * H:])
            W_T += k.gates_vjp_weights(G, h_prev)
            if "b_hn" in params:
                grads["b_hn"] += k.reset_after_bias_vjp(G[:, 2 * H:], np.ones((rows, 1), dtype=G.dtype)).reshape(H)


def gru_cell(reset: str = "before", update: str = "previous") -> GRUCell:
    """The :class:`GRUCell` of the given conventions (the book's by default); the same object every call."""
    derive.check_convention(reset, update)
    return _cell(reset, update)


@functools.cache
def _cell(reset: str, update: str) -> GRUCell:
    return GRUCell(reset=reset, update=update)


# --- parameters and validation --------------------------------------------------------------


def init_params(n_in: int, n_hidden: int, n_out: int, *, rng: np.random.Generator, scale=None) -> dict:
    """Random GRU parameters with ``D = n_in``, ``H = n_hidden``, ``K = n_out``.

    Every weight matrix is normal with standard deviation ``1 / sqrt(fan_in)`` (or ``scale``),
    drawn in the order of :data:`PARAM_SHAPES`; every bias is zero.

    Returns
    -------
    dict
        The keys of :data:`PARAM_SHAPES`: ``W_*`` (H, H), ``U_*`` (H, D), ``b_*`` (H,), ``V`` (K, H), ``c`` (K,).
    """
    D, H, K = (positive_int(name, value) for name, value in
               (("n_in", n_in), ("n_hidden", n_hidden), ("n_out", n_out)))
    dims = {"H": H, "D": D, "K": K}
    weights = normal_weights({key: tuple(dims[d] for d in shape) for key, shape in PARAM_SHAPES.items()
                              if len(shape) == 2}, rng=rng, scale=scale)
    return {key: weights[key] if key in weights else np.zeros(dims[shape[0]])
            for key, shape in PARAM_SHAPES.items()}


def check_params(params, sizes: dict, kind: str = "float", reset: str = "before") -> dict:
    """Validate the parameter dict (keys of :data:`PARAM_SHAPES`); record ``H``, ``D``, ``K`` in ``sizes``.

    PyTorch's second candidate bias ``b_hn`` (H,) (:data:`OPTIONAL_SHAPES`) is accepted with
    ``reset="after"`` only, where it sits inside the reset gate's product; it is kept, and
    gets a gradient, only when given.
    """
    require_keys("params", params, list(PARAM_SHAPES))
    shapes = dict(PARAM_SHAPES)
    if "b_hn" in params:
        if reset != "after":
            raise ValueError(f'params["b_hn"] (PyTorch\'s bias inside r * (W_h h + b_hn)) needs reset="after"; '
                             f"got reset={reset!r}")
        shapes.update(OPTIONAL_SHAPES)
    checked = {}
    for key in ("W_z", "V", *[k for k in shapes if k not in ("W_z", "V")]):
        arr = as_array(f'params["{key}"]', params[key], shapes[key], sizes, kind=kind)
        require_finite(f'params["{key}"]', arr)
        checked[key] = arr
    return {key: checked[key] for key in shapes}


def check_inputs(params, x, state0=None, *, kind: str = "float", reset: str = "before"):
    """Validate ``params``, ``x`` (T, B, D) and ``state0`` (B, H; zeros if None): ``(params, x, state0, sizes)``."""
    sizes: dict = {}
    p = check_params(params, sizes, kind, reset)
    x = as_array("x", x, ("T", "B", "D"), sizes, kind=kind)
    require_finite("x", x)
    if state0 is None:
        state0 = np.zeros((sizes["B"], sizes["H"]))
    state0 = as_array("state0", state0, ("B", "H"), sizes, kind=kind)
    require_finite("state0", state0)
    return p, x, state0, sizes


def pack(params: dict) -> dict:
    r"""The packed parameters the cell computes with: ``W`` (3H, H), ``U`` (3H, D), ``b`` (3H,), ``V``, ``c``.

    Rows ``0:H`` belong to the update gate, ``H:2H`` to the reset gate, ``2H:3H`` to the
    candidate. Also ``W_T`` (H, 3H), a contiguous copy of the transpose of ``W``: the forward
    products :math:`H_{prev} W_g^\top` then read a plain slice of it, which OpenBLAS multiplies
    about 30 % faster than a transposed one at the canonical size (measured). It is not a
    parameter: its gradient stays zero and :func:`unpack` ignores it. ``b_hn`` is passed on
    when given (reset after).
    """
    W = np.concatenate([params[f"W_{g}"] for g in GATES])
    packed = {"W": W, "W_T": np.ascontiguousarray(W.T),
              "U": np.concatenate([params[f"U_{g}"] for g in GATES]),
              "b": np.concatenate([params[f"b_{g}"] for g in GATES]),
              "V": params["V"], "c": params["c"]}
    if "b_hn" in params:
        packed["b_hn"] = params["b_hn"]
    return packed


def unpack(grads: dict) -> dict:
    """Gradients of the packed parameters as gradients with the keys of :data:`PARAM_SHAPES` (copies)."""
    H = grads["W"].shape[1]
    out = {}
    for i, gate in enumerate(GATES):
        rows = slice(i * H, (i + 1) * H)
        out[f"W_{gate}"] = grads["W"][rows].copy()
        out[f"U_{gate}"] = grads["U"][rows].copy()
        out[f"b_{gate}"] = grads["b"][rows].copy()
    out["V"], out["c"] = grads["V"], grads["c"]
    if "b_hn" in grads:
        out["b_hn"] = grads["b_hn"]
    return {key: out[key] for key in (*PARAM_SHAPES, *OPTIONAL_SHAPES) if key in out}


def initial_record(state0: np.ndarray) -> np.ndarray:
    """The record (B, 5H) of an initial state ``state0`` (B, H): ``h = state0``, the other parts zero (never read)."""
    B, H = state0.shape
    record = np.zeros((B, 5 * H), dtype=state0.dtype)
    slots(record, view=True)[0] = state0
    return record


# --- the public functions ---------------------------------------------------------------------


@dataclass
class Trace:
    """What :func:`forward` returns.

    Attributes
    ----------
    x : ndarray, (T, B, D)
    h : ndarray, (T + 1, B, H)
        Hidden states; ``h[0]`` is ``state0``, ``h[t]`` is :math:`h^{(t)}`.
    z, r, h_tilde : ndarray, (T, B, H)
        Update gate, reset gate and candidate of each step (``[t - 1]`` for step ``t``).
    o, yhat, log_yhat : ndarray, (T, B, K)
        Logits, softmax probabilities and their logarithms (computed stably from ``o``).
    states : ndarray, (T + 1, B, 5H)
        The cell's records (:func:`slots`); ``h``, ``z``, ``r`` and ``h_tilde`` are views of it.

    ``trace["h"]`` is ``trace.h`` (and so on for every attribute).
    """

    x: np.ndarray
    h: np.ndarray
    z: np.ndarray
    r: np.ndarray
    h_tilde: np.ndarray
    o: np.ndarray
    yhat: np.ndarray
    log_yhat: np.ndarray
    states: np.ndarray

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.__dataclass_fields__:
            raise KeyError(f"a GRU trace has {list(self.__dataclass_fields__)}; got {name!r}")
        return getattr(self, name)


def _forward_unchecked(p: dict, x, state0, cell) -> Trace:
    T, B, _ = x.shape
    H, K = state0.shape[1], p["V"].shape[0]
    packed = pack(p)
    with np.errstate(over="ignore"):     # exp(-a) overflows to inf for a very negative a: sigma(a) = 0
        states = bptt.forward(cell, packed, x, initial_record(state0))
    parts = np.reshape(states, (T + 1, 5, B, H), copy=False)
    o = rnn_kernels().output_logits(parts[1:, 0].reshape(T * B, H), p["V"], p["c"]).reshape(T, B, K)
    yhat, log_yhat = softmax_and_log(o)
    return Trace(x=x, h=parts[:, 0], z=parts[1:, 1], r=parts[1:, 2], h_tilde=parts[1:, 3],
                 o=o, yhat=yhat, log_yhat=log_yhat, states=states)


def forward(params: dict, x, state0=None, *, reset: str = "before", update: str = "previous") -> Trace:
    """Run the GRU and its output layer over a batch of sequences.

    Parameters
    ----------
    params : dict
        The keys of :data:`PARAM_SHAPES`. Complex entries are accepted (complex-step derivative).
    x : array_like, (T, B, D)
    state0 : array_like, (B, H), optional
        Initial hidden state; zeros by default.
    reset, update : str
        Conventions (module docstring).

    Returns
    -------
    Trace
        Hidden states ``h`` (T + 1, B, H), gates ``z``, ``r`` and candidates ``h_tilde`` (T, B, H),
        logits ``o`` and probabilities ``yhat`` (T, B, K).
    """
    cell = gru_cell(reset, update)
    p, x, state0, _ = check_inputs(params, x, state0, kind="number", reset=reset)
    return _forward_unchecked(p, x, state0, cell)


def loss(params: dict, x, y, state0=None, *, reset: str = "before", update: str = "previous"):
    """The loss alone, summed over time and averaged over the batch; accepts complex parameters."""
    cell = gru_cell(reset, update)
    p, x, state0, sizes = check_inputs(params, x, state0, kind="number", reset=reset)
    y = check_targets(y, sizes)
    trace = _forward_unchecked(p, x, state0, cell)
    return -np.take_along_axis(trace.log_yhat, y[..., None], axis=-1).sum() / y.shape[1]


def loss_and_grads(params: dict, x, y, state0=None, *, reset: str = "before",
                   update: str = "previous") -> tuple[float, dict]:
    """The loss and its gradient with respect to every parameter, by full BPTT.

    Same loss as :func:`bptt_lib.rnn.loss_and_grads`: softmax outputs :math:`o = c + V h`,
    negative log-likelihood summed over time and averaged over the batch.

    Parameters
    ----------
    params : dict
        The keys of :data:`PARAM_SHAPES`, real.
    x : array_like, (T, B, D)
    y : array_like of int, (T, B)
        Target classes in ``[0, K)``.
    state0 : array_like, (B, H), optional
        Initial hidden state; zeros by default.
    reset, update : str
        Conventions (module docstring); the book's by default.

    Returns
    -------
    loss : float
    grads : dict
        Same keys and shapes as ``params``.

    Raises
    ------
    KeyError, TypeError, ValueError
        Missing keys, wrong dtypes or shapes, targets out of range, non-finite inputs (the
        message names the argument).
    FloatingPointError
        If the loss or a gradient is not finite.
    """
    m = model(reset, update)
    p, x, y, h0 = m.prepare(params, x, y, state0)
    grads = {key: np.zeros_like(value) for key, value in p.items()}
    with np.errstate(over="ignore", invalid="ignore"):   # detected just below, with a clearer message
        value, grads, _ = bptt.bptt(m.cell, p, x, y, h0, grads=grads)
    check_finite_result("loss_and_grads", {"loss": np.asarray(value)})
    grads = unpack(grads)
    check_finite_result("loss_and_grads", grads)
    return value, grads


def _prepare(params, x, y, state0, reset="before"):
    """Validate for :mod:`bptt_lib.models`: packed params, ``x``, ``y`` and the initial record (B, 5H)."""
    p, x, state0, sizes = check_inputs(params, x, state0, kind="float", reset=reset)
    return pack(p), x, check_targets(y, sizes), initial_record(state0)


def model(reset: str = "before", update: str = "previous") -> models.Model:
    """The GRU of the given conventions as a :class:`bptt_lib.models.Model` (pass it as ``model=``)."""
    derive.check_convention(reset, update)
    return _model(reset, update)


@functools.cache
def _model(reset: str, update: str) -> models.Model:
    def prepare(params, x, y, state0):
        return _prepare(params, x, y, state0, reset)

    return models.Model(name="gru", cell=gru_cell(reset, update), prepare=prepare, unpack=unpack)


MODEL = model()
"""The book's GRU as ``model="gru"`` of truncated BPTT, ARTBP and checkpointing (:mod:`bptt_lib.models`)."""


# --- chapter 15: the step as a function, the update gate's reparametrisation, a figure ----------

GATE_KEYS = {gate: (f"W_{gate}", f"U_{gate}", f"b_{gate}") for gate in GATES}
"""The parameters of each of the cell's three parts: ``"z"`` update gate, ``"r"`` reset gate, ``"h"`` candidate."""


def step(params: dict, h_prev, x, *, reset: str = "before", update: str = "previous") -> np.ndarray:
    r"""One step of the state map, :math:`h^{(t)} = F(h^{(t-1)}, x^{(t)})`, for a batch.

    ``h_prev`` (B, H), ``x`` (B, D); returns :math:`h^{(t)}` (B, H). Complex entries are
    accepted (for :func:`step_jacobian`). It is :func:`forward` over one step.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"x must be one step of a batch, shape (B, D); got shape {x.shape}")
    return forward(params, x[None], h_prev, reset=reset, update=update).h[1]


def step_jacobian(params: dict, h_prev, x, *, reset: str = "before", update: str = "previous",
                  eps: float = 1e-20) -> np.ndarray:
    r""":math:`\partial h^{(t)} / \partial h^{(t-1)}` of every example, (B, H, H), by the complex step.

    Entry ``[b, i, k]`` is :math:`\partial h^{(t)}_i / \partial h^{(t-1)}_k` for example ``b``:
    column ``k`` is the imaginary part of :func:`step` at ``h_prev + i eps e_k``, divided by
    ``eps`` (no subtraction, so exact to round-off; the parameters must be real).
    """
    h_prev = np.asarray(h_prev, dtype=float)
    B, H = h_prev.shape
    jac = np.empty((B, H, H))
    for k in range(H):
        shifted = h_prev.astype(complex)
        shifted[:, k] += 1j * eps
        jac[:, :, k] = step(params, shifted, x, reset=reset, update=update).imag / eps
    return jac


def negate_update_gate(params: dict) -> dict:
    r"""A copy of ``params`` with ``W_z``, ``U_z`` and ``b_z`` negated (the other entries shared).

    Since :math:`\sigma(-a) = 1 - \sigma(a)`, the update gate of the result is :math:`1 - z`
    wherever that of ``params`` is :math:`z`: ``update="candidate"`` with the result computes the
    states of ``update="previous"`` with ``params``, and conversely; the gradients of the three
    negated entries change sign, all others are equal (chapter 15).
    """
    return {key: -value if key in GATE_KEYS["z"] else value for key, value in params.items()}


def gradient_difference(grads: dict, reference: dict, keys=None) -> float:
    r""":math:`\lVert g - g_{ref} \rVert / \lVert g_{ref} \rVert` over the entries of ``keys``.

    ``keys`` defaults to all of ``reference``'s. With a zero reference, the norm of ``grads`` itself.
    """
    keys = list(reference) if keys is None else list(keys)
    diff = np.sqrt(sum(np.sum((np.asarray(grads[k]) - reference[k]) ** 2) for k in keys))
    ref = np.sqrt(sum(np.sum(np.asarray(reference[k]) ** 2) for k in keys))
    return float(diff / ref) if ref > 0 else float(diff)


def plot_gradient_pairs(reference: dict, panels):
    r"""One scatter panel per ``(title, grads, name)`` in ``panels``: every entry of the cell's
    parameters, ``reference`` (x axis) against ``grads`` (y axis), coloured by the part of the cell
    (update gate, reset gate, candidate), with the diagonal :math:`y = x`; the y axis is labelled
    "gradient entry, <name>". Returns the figure."""
    import matplotlib.pyplot as plt

    from .plotting import COLORS

    names = {"z": "update gate $z$", "r": "reset gate $r$", "h": r"candidate $\tilde h$"}
    fig, axes = plt.subplots(1, len(panels), figsize=(4.0 * len(panels), 3.8), squeeze=False)
    for ax, (title, grads, ylabel) in zip(axes[0], panels):
        lo = hi = 0.0
        for color, gate in zip(COLORS, GATES):
            xs = np.concatenate([np.ravel(reference[k]) for k in GATE_KEYS[gate]])
            ys = np.concatenate([np.ravel(grads[k]) for k in GATE_KEYS[gate]])
            ax.plot(xs, ys, "o", ms=3.5, alpha=0.7, color=color, label=names[gate])
            lo, hi = min(lo, xs.min(), ys.min()), max(hi, xs.max(), ys.max())
        pad = 0.05 * (hi - lo)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "-", color="gray", lw=0.8, zorder=0)
        ax.set(xlabel="gradient entry, the book's GRU", ylabel=f"gradient entry, {ylabel}",
               xlim=(lo - pad, hi + pad), ylim=(lo - pad, hi + pad))
        ax.set_title(title, fontsize="medium")
    axes[0, 0].legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    return fig


def step_hessian(params: dict, h_prev, x, unit: int, *, reset: str = "before", update: str = "previous",
                 step_size: float = 1e-5) -> np.ndarray:
    r"""The Hessian of unit ``unit`` of the new state with respect to :math:`h^{(t-1)}`, (B, H, H).

    Central differences (step ``step_size``) of the row ``unit`` of :func:`step_jacobian`, whose
    entries are exact to round-off: the error of an entry is about ``step_size**2`` times a third
    derivative plus round-off over ``step_size``, near 1e-10 for entries of order one. Symmetrised.
    """
    h_prev = np.asarray(h_prev, dtype=float)
    B, H = h_prev.shape
    hess = np.empty((B, H, H))
    for k in range(H):
        up, down = h_prev.copy(), h_prev.copy()
        up[:, k] += step_size
        down[:, k] -= step_size
        hess[:, :, k] = (step_jacobian(params, up, x, reset=reset, update=update)[:, unit]
                         - step_jacobian(params, down, x, reset=reset, update=update)[:, unit]) / (2 * step_size)
    return (hess + np.swapaxes(hess, 1, 2)) / 2
