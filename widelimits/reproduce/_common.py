"""Helpers shared by the figure modules: run sizes, resumable results, figure creation and
saving.

Figures are built on ``matplotlib.figure.Figure`` directly (no ``pyplot``), so saving uses the
Agg canvas whatever backend the caller (a notebook, a script) has selected, and no global
matplotlib state is touched.
"""

from __future__ import annotations

import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["SIZES", "DPI", "angle_axis", "check_size", "checkpoint", "circle", "new_figure",
           "rerun_saved", "resume", "save_figure"]

SIZES = ("full", "quick", "smoke")
DPI = 120


def check_size(size: str) -> str:
    """Return ``size`` if it is one of ``SIZES``, else raise ``ValueError`` naming the choices."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}.")
    return size


def resume(path: str | os.PathLike, **stamp) -> dict:
    """The named arrays saved at ``path`` by :func:`checkpoint` under the same ``stamp`` (the
    seed and any setting the pieces depend on; values ``np.array_equal`` compares), else ``{}``.

    Long reproductions save after every finished piece and skip the pieces found here, so a
    killed run resumes where it stopped; a file written under other settings is ignored (and
    replaced by the next save).
    """
    if not os.path.exists(path):
        return {}
    with np.load(path) as f:
        if not all(k in f.files and np.array_equal(f[k], v) for k, v in stamp.items()):
            return {}
        return {k: f[k] for k in f.files if k not in stamp}


def checkpoint(path: str | os.PathLike, done: dict, **stamp) -> None:
    """Write ``done`` (name -> array) and ``stamp`` to the npz file ``path`` (read back by
    :func:`resume`). Atomic: a run killed while saving leaves the previous file intact."""
    partial = f"{os.fspath(path)}.partial.npz"
    np.savez(partial, **stamp, **done)
    os.replace(partial, path)


def rerun_saved(path: str | os.PathLike, run, size: str, pieces: dict, where: str) -> dict:
    """``run(size, folder, seed=the saved seed)`` on the folder of the saved file ``path``,
    after checking that it holds every piece: ``pieces`` maps a label (a width, a gamma0) to the
    array name that piece saves. Raises ``ValueError`` naming ``where`` and the missing labels,
    so a ``load`` never starts a long computation by surprise."""
    with np.load(path) as f:
        missing = [label for label, name in pieces.items() if name not in f.files]
        seed = int(f["seed"])
    if missing:
        raise ValueError(f"{where}: {path} lacks {missing} of size {size!r}.")
    return run(size, os.path.dirname(os.fspath(path)) or ".", seed=seed)


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


def circle(angles) -> np.ndarray:
    """Points x(γ) = (cos γ, sin γ) on the unit circle for angles γ (n,) -> float32 (n, 2)."""
    angles = np.asarray(angles, dtype=np.float64)
    return np.stack([np.cos(angles), np.sin(angles)], axis=-1).astype(np.float32)


def angle_axis(ax):
    """An x axis for angles γ in [-π, π], ticked at multiples of π/2, with a light grid."""
    ax.set_xticks([-np.pi, -np.pi / 2, 0, np.pi / 2, np.pi], ["−π", "−π/2", "0", "π/2", "π"])
    ax.set_xlim(-np.pi, np.pi)
    ax.grid(alpha=0.3)
