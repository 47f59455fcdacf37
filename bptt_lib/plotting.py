"""One plot style for every chapter, so figures look alike across the book."""

from __future__ import annotations

import matplotlib as mpl

__all__ = ["use_book_style", "COLORS"]

COLORS = ["#0b5394", "#cc4125", "#6aa84f", "#e69138", "#674ea7", "#3d85c6", "#a61c00", "#38761d"]
"""The book's colour cycle (colour-blind-safe enough to tell eight lines apart)."""


def use_book_style() -> None:
    """Set matplotlib defaults for the book: size, resolution, grid, colours.

    Figures are PNG at a modest resolution, which keeps notebooks small and
    keeps nbval's comparison away from SVG timestamps.
    """
    mpl.rcParams.update({
        "figure.figsize": (6.4, 3.8),
        "figure.dpi": 100,
        "savefig.dpi": 100,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.prop_cycle": mpl.cycler(color=COLORS),
        "font.size": 10,
        "legend.frameon": False,
        "svg.hashsalt": "bptt",
    })
