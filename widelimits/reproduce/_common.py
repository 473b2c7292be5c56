"""Helpers shared by the figure modules: run sizes, figure creation and saving.

Figures are built on ``matplotlib.figure.Figure`` directly (no ``pyplot``), so saving uses the
Agg canvas whatever backend the caller (a notebook, a script) has selected, and no global
matplotlib state is touched.
"""

from __future__ import annotations

import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["SIZES", "DPI", "check_size", "new_figure", "save_figure"]

SIZES = ("full", "quick", "smoke")
DPI = 120


def check_size(size: str) -> str:
    """Return ``size`` if it is one of ``SIZES``, else raise ``ValueError`` naming the choices."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}.")
    return size


def new_figure(nrows: int, ncols: int, *, panel=(3.0, 2.6), **subplot_kw):
    """An Agg-backed figure with an ``nrows x ncols`` grid of axes of ``panel`` inches each.

    Returns ``(fig, axes)`` with ``axes`` always a 2-D array of shape ``(nrows, ncols)``.
    """
    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows + 0.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return fig, axes


def save_figure(fig, out: str | os.PathLike, name: str) -> str:
    """Save ``fig`` as ``out/name`` (PNG, ``DPI`` dots per inch), creating ``out``; return the
    path as a string."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(os.fspath(out), name)
    fig.savefig(path, dpi=DPI)
    return path
