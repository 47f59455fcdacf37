r"""Chapter 1, unrolling: one step, the unrolled closed form, counts and drawings.

- :func:`rnn_step` is one step :math:`h = \tanh(b + W h_{prev} + U x)` for a
  batch, built on the generated kernel ``hidden_preactivation``.
- :func:`closed_form_kernel` generates NumPy code from the nested SymPy
  expression of :func:`bptt_lib.derive.unrolling.unroll`, and
  :func:`unrolled_hidden_state` evaluates it: the unrolled network as *one*
  function, to be compared with the loop in :func:`bptt_lib.rnn.forward`.
- :func:`count_parameters` shows that the parameter count does not depend on ``T``.
- :func:`draw_folded_graph` and :func:`draw_unrolled_graph` draw the two
  views of the computational graph with matplotlib.
"""

from __future__ import annotations

import functools

import numpy as np
import sympy as sp

from .codegen import generate
from .derive import unrolling as derive_unrolling
from .kernels import rnn_kernels
from .rnn import PARAM_SHAPES
from .validation import as_array, positive_int, require_finite, require_keys

__all__ = [
    "count_parameters", "rnn_step", "closed_form_kernel", "unrolled_hidden_state",
    "saturated_fraction", "draw_folded_graph", "draw_unrolled_graph", "plot_hidden_trajectories", "GRAPH_COLORS",
]

GRAPH_COLORS = {"U": "#0b5394", "W": "#cc4125", "V": "#6aa84f", "other": "#444444"}
"""Arrow colours of the drawings: one colour per shared weight matrix."""


def count_parameters(n_in: int, n_hidden: int, n_out: int) -> dict:
    """Number of scalar parameters of the RNN, per array and in total.

    Parameters
    ----------
    n_in, n_hidden, n_out : int
        Positive sizes ``D``, ``H``, ``K``.

    Returns
    -------
    dict
        ``{"U": H*D, "W": H*H, "V": K*H, "b": H, "c": K, "total": ...}``.
        No entry depends on the sequence length ``T``: the same arrays are
        used at every step.
    """
    sizes = {"D": positive_int("n_in", n_in), "H": positive_int("n_hidden", n_hidden),
             "K": positive_int("n_out", n_out)}
    counts = {name: int(np.prod([sizes[d] for d in dims])) for name, dims in PARAM_SHAPES.items()}
    counts["total"] = sum(counts.values())
    return counts


def rnn_step(h_prev, x, U, W, b) -> np.ndarray:
    """One step of the recurrence for a batch: ``tanh(b + W h_prev + U x)`` per row.

    Parameters
    ----------
    h_prev : array_like, (B, H)
        Previous hidden states, one row per example.
    x : array_like, (B, D)
        Inputs at this step.
    U : array_like, (H, D)
    W : array_like, (H, H)
    b : array_like, (H,)

    Returns
    -------
    ndarray, (B, H)
        The new hidden states.
    """
    sizes: dict = {}
    W = as_array("W", W, ("H", "H"), sizes)
    U = as_array("U", U, ("H", "D"), sizes)
    b = as_array("b", b, ("H",), sizes)
    h_prev = as_array("h_prev", h_prev, ("B", "H"), sizes)
    x = as_array("x", x, ("B", "D"), sizes)
    for name, arr in (("W", W), ("U", U), ("b", b), ("h_prev", h_prev), ("x", x)):
        require_finite(name, arr)
    a = rnn_kernels().hidden_preactivation(h_prev, x, W, U, b[None, :], np.ones((sizes["B"], 1)))
    return np.tanh(a)


@functools.cache
def closed_form_kernel(T: int, n_in: int = 1, n_hidden: int = 1):
    r"""NumPy code generated from the nested expression of :math:`h^{(T)}`.

    Parameters
    ----------
    T : int
        Steps, 1 to 5.
    n_in, n_hidden : int
        Explicit sizes ``D`` and ``H``, 1 to 3.

    Returns
    -------
    callable
        ``kernel(*W.ravel(), *U.ravel(), *b, *h0, *x.ravel())``: one scalar
        argument per entry (named ``W``, ``U``, ``b``, ``h0``, ``x1``, ... for
        scalar sizes; ``W_12``, ``x2_1``, ... otherwise), returning :math:`h^{(T)}` as an (H, 1) array. Its
        ``.expr`` is the SymPy expression it was generated from.
    """
    sym = derive_unrolling.unrolled_symbols(T, n_in, n_hidden)
    h_T = derive_unrolling.unroll(sym)[-1]
    symbols = [*sym.W, *sym.U, *sym.b, *sym.h0] + [s for x_t in sym.x for s in x_t]
    # LaTeX names such as x^{(2)}_{1} become Python identifiers such as x2_1.
    plain = {s: sp.Symbol(_identifier(s.name), real=True) for s in symbols}
    return generate(f"unrolled_h{T}", [plain[s] for s in symbols], h_T.xreplace(plain),
                    f"h^({T}) of the unrolled RNN as one closed-form expression, D={n_in}, H={n_hidden}.")


def _identifier(latex_name: str) -> str:
    return latex_name.replace("^{(", "").replace(")}", "").replace("{", "").replace("}", "")


def unrolled_hidden_state(params: dict, x, h0=None) -> np.ndarray:
    r"""Evaluate the generated closed form of :math:`h^{(T)}` for one sequence.

    Parameters
    ----------
    params : dict
        ``"U"`` (H, D), ``"W"`` (H, H), ``"b"`` (H,); ``"V"`` and ``"c"`` are
        not needed and ignored. ``H`` and ``D`` at most 3.
    x : array_like, (T, D)
        One input sequence, ``T`` at most 5.
    h0 : array_like, (H,), optional
        Initial state; zeros by default.

    Returns
    -------
    ndarray, (H,)
        :math:`h^{(T)}`, computed without a loop over time.
    """
    require_keys("params", params, ["U", "W", "b"])
    sizes: dict = {}
    W = as_array('params["W"]', params["W"], ("H", "H"), sizes)
    U = as_array('params["U"]', params["U"], ("H", "D"), sizes)
    b = as_array('params["b"]', params["b"], ("H",), sizes)
    x = as_array("x", x, ("T", "D"), sizes)
    h0 = np.zeros(sizes["H"]) if h0 is None else h0
    h0 = as_array("h0", h0, ("H",), sizes)
    for name, arr in (('params["W"]', W), ('params["U"]', U), ('params["b"]', b), ("x", x), ("h0", h0)):
        require_finite(name, arr)
    if sizes["T"] > 5 or sizes["H"] > 3 or sizes["D"] > 3:
        raise ValueError(
            f"the closed form is generated for T <= 5 and H, D <= 3; got T={sizes['T']}, "
            f"H={sizes['H']}, D={sizes['D']} (use bptt_lib.rnn.forward for larger sizes)"
        )
    kernel = closed_form_kernel(sizes["T"], sizes["D"], sizes["H"])
    out = kernel(*W.ravel(), *U.ravel(), *b, *h0, *x.ravel())
    return np.asarray(out, dtype=float).reshape(sizes["H"])


def saturated_fraction(h, threshold: float = 0.95) -> float:
    """Fraction of hidden-state entries with ``|h| > threshold`` (tanh near its flat tails).

    Parameters
    ----------
    h : array_like
        Hidden states of any shape, for example ``trace.h[1:]`` (T, B, H).
    threshold : float
        A number in (0, 1).
    """
    if isinstance(threshold, bool) or not (isinstance(threshold, (int, float, np.floating)) and 0 < threshold < 1):
        raise ValueError(f"threshold must be a number in (0, 1); got {threshold!r}")
    h = np.asarray(h, dtype=float)
    if h.size == 0:
        raise ValueError(f"h must not be empty; got shape {h.shape}")
    return float(np.mean(np.abs(h) > threshold))


# --- drawings -----------------------------------------------------------------

_R = 0.28  # node radius in data units


def _require_axes(ax) -> None:
    from matplotlib.axes import Axes

    if not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes (fig, ax = plt.subplots()); got {type(ax).__name__}")


def _node(ax, xy, text, *, fill="white", edge="#222222", radius=_R, fontsize=11):
    from matplotlib.patches import Circle

    ax.add_patch(Circle(xy, radius, facecolor=fill, edgecolor=edge, linewidth=1.4, zorder=3))
    ax.text(*xy, text, ha="center", va="center", fontsize=fontsize, zorder=4)


def _arrow(ax, start, end, *, color, label=None, label_offset=(0.0, 0.0), rad=0.0, fontsize=10):
    from matplotlib.patches import FancyArrowPatch

    ax.add_patch(FancyArrowPatch(
        start, end, arrowstyle="-|>", mutation_scale=12, color=color, linewidth=1.5,
        connectionstyle=f"arc3,rad={rad}", shrinkA=0, shrinkB=0, zorder=2,
        patchA=None, patchB=None,
    ))
    if label:
        mid = ((start[0] + end[0]) / 2 + label_offset[0], (start[1] + end[1]) / 2 + label_offset[1])
        ax.text(*mid, label, ha="center", va="center", fontsize=fontsize, color=color,
                fontweight="bold", zorder=4)


def _edge(p, q, r=_R):
    """Start and end points on the two circles' rims, so arrows touch the nodes."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    d = (q - p) / np.linalg.norm(q - p)
    return tuple(p + r * d), tuple(q - r * d)


_ROWS = {"x": 0.0, "h": 1.25, "o": 2.5, "L": 3.75, "y": 3.75}
_FILL = {"x": "#e8f0fa", "h": "#fbe9e4", "o": "#eaf4e4", "L": "#f3f3f3", "y": "#ffffff"}


def _column(ax, cx, t_label, *, with_y_offset=0.85):
    """One time step: x -> h, h -> o, o -> L <- y. Returns the h position."""
    pos = {k: (cx, v) for k, v in _ROWS.items()}
    pos["y"] = (cx + with_y_offset, _ROWS["L"])
    pos["L"] = (cx, _ROWS["L"])
    for key, tex in (("x", r"$x{}$"), ("h", r"$h{}$"), ("o", r"$o{}$"), ("L", r"$L{}$"), ("y", r"$y{}$")):
        _node(ax, pos[key], tex.format(t_label), fill=_FILL[key], fontsize=10 if t_label else 12,
              radius=_R)
    s, e = _edge(pos["x"], pos["h"])
    _arrow(ax, s, e, color=GRAPH_COLORS["U"], label="U", label_offset=(-0.2, 0))
    s, e = _edge(pos["h"], pos["o"])
    _arrow(ax, s, e, color=GRAPH_COLORS["V"], label="V", label_offset=(-0.2, 0))
    s, e = _edge(pos["o"], pos["L"])
    _arrow(ax, s, e, color=GRAPH_COLORS["other"])
    s, e = _edge(pos["y"], pos["L"])
    _arrow(ax, s, e, color=GRAPH_COLORS["other"])
    return pos["h"]


def _finish(ax, xmin, xmax, title):
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(-0.55, 4.3)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=11)


def draw_folded_graph(ax, *, title: str | None = "folded: one cell and a loop") -> None:
    """Draw the folded RNN: ``x -> h -> o -> L`` with a self-loop ``W`` on ``h``.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw; the axes is switched off and its aspect set to equal.
    title : str or None
        Axes title.
    """
    _require_axes(ax)
    h = _column(ax, 0.0, "")
    from matplotlib.patches import FancyArrowPatch
    from matplotlib.path import Path

    # The recurrence: a loop that leaves h on the right and re-enters it, one step later
    # (an arc over the top would cross o, so the loop sits to the right of h).
    a_out, a_in = np.deg2rad(35), np.deg2rad(-35)
    start = (h[0] + _R * np.cos(a_out), h[1] + _R * np.sin(a_out))
    end = (h[0] + _R * np.cos(a_in), h[1] + _R * np.sin(a_in))
    verts = [start, (h[0] + 1.05, h[1] + 0.75), (h[0] + 1.05, h[1] - 0.75), end]
    loop = Path(verts, [Path.MOVETO, Path.CURVE4, Path.CURVE4, Path.CURVE4])
    ax.add_patch(FancyArrowPatch(path=loop, arrowstyle="-|>", mutation_scale=12,
                                 color=GRAPH_COLORS["W"], linewidth=1.5, zorder=2))
    ax.text(h[0] + 1.2, h[1], "W", ha="center", va="center", fontsize=10, color=GRAPH_COLORS["W"],
            fontweight="bold")
    ax.text(h[0] + 0.62, h[1] - 0.72, "one-step\ndelay", ha="center", va="center", fontsize=7.5,
            color=GRAPH_COLORS["W"])
    _finish(ax, -0.7, 1.5, title)


def draw_unrolled_graph(ax, T: int = 3, *, title: str | None = None) -> None:
    """Draw the RNN unrolled over ``T`` steps: one column per step, ``W`` arrows between them.

    Every ``U`` arrow has one colour, every ``W`` arrow another and every ``V``
    arrow a third: the same three matrices act at every step.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    T : int
        Number of steps, 1 to 8.
    title : str or None
        Axes title; by default ``"unrolled over T = ... steps"``.
    """
    _require_axes(ax)
    T = positive_int("T", T, low=1, high=8)
    step = 1.9
    h0 = (0.0, _ROWS["h"])
    _node(ax, h0, r"$h^{(0)}$", fill=_FILL["h"], fontsize=10)
    prev = h0
    for t in range(1, T + 1):
        h = _column(ax, t * step, f"^{{({t})}}")
        s, e = _edge(prev, h)
        _arrow(ax, s, e, color=GRAPH_COLORS["W"], label="W", label_offset=(0, 0.18))
        prev = h
    _finish(ax, -0.5, T * step + 1.2, title if title is not None else f"unrolled over T = {T} steps")


def plot_hidden_trajectories(h_runs: dict, *, n_lines: int = 4):
    """Hidden states after an input pulse, one column per gain.

    ``h_runs`` maps a gain ``g`` to hidden states of shape ``(T + 1, H)``
    (``h[0]`` the initial state). Top row: the first ``n_lines`` units over
    time, with the pulse ``t = 1, 2, 3`` shaded; bottom row: every unit,
    colour coded from -1 to 1. Returns the figure.
    """
    import matplotlib.pyplot as plt

    if not isinstance(h_runs, dict) or not h_runs:
        raise TypeError("h_runs must be a non-empty dict mapping a gain to hidden states (T + 1, H)")
    runs = {g: np.asarray(h, dtype=float) for g, h in h_runs.items()}
    for g, h in runs.items():
        if h.ndim != 2:
            raise ValueError(f"h_runs[{g!r}] must have shape (T + 1, H); got {h.shape}")
    fig, axes = plt.subplots(2, len(runs), figsize=(5 * len(runs), 5.4), sharex=True, layout="constrained",
                             height_ratios=[1.2, 1], squeeze=False)
    for col, (g, h_g) in enumerate(runs.items()):
        n_steps, n_hidden = h_g.shape[0] - 1, h_g.shape[1]
        steps = np.arange(n_steps + 1)
        ax = axes[0, col]
        ax.axvspan(0.5, 3.5, color="0.9", lw=0, label="input pulse")
        for i in range(min(n_lines, n_hidden)):
            ax.plot(steps, h_g[:, i], marker="o", ms=3, lw=1.2, label=f"unit {i + 1}")
        ax.set_ylim(-1.05, 1.05)
        ax.set_title(f"gain $g = {g}$")
        if col == 0:
            ax.legend(loc="lower right", fontsize=7, ncol=5)
            ax.set_ylabel(f"$h^{{(t)}}_i$, units $i = 1, \\dots, {min(n_lines, n_hidden)}$")
            axes[1, 0].set_ylabel("unit $i$")
        image = axes[1, col].imshow(h_g.T, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest",
                                    extent=(-0.5, n_steps + 0.5, n_hidden + 0.5, 0.5))
        axes[1, col].grid(False)
        axes[1, col].set_xlabel("time step $t$")
    fig.colorbar(image, ax=axes[1, :], label="$h^{(t)}_i$", shrink=0.9)
    return fig
