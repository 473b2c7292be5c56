"""Helpers shared by the figure modules: run sizes, resumable results (the package's one format,
``widelimits._resume``), figure creation and saving.

Figures are built on ``matplotlib.figure.Figure`` directly (no ``pyplot``), so saving uses the
Agg canvas whatever backend the caller (a notebook, a script) has selected, and no global
matplotlib state is touched.
"""

from __future__ import annotations

import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .. import _resume

__all__ = ["SIZES", "DPI", "angle_axis", "check_size", "checkpoint", "circle", "new_figure",
           "rerun_saved", "resume", "save_figure", "saved_stamp"]

SIZES = ("full", "quick", "smoke")
DPI = 120


def check_size(size: str) -> str:
    """Return ``size`` if it is one of ``SIZES``, else raise ``ValueError`` naming the choices."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}.")
    return size


_STAMP = "stamp."  # prefix of the stamp's arrays in a saved file


def _fingerprint(stamp: dict) -> str:
    return _resume.fingerprint("widelimits.reproduce", {k: np.asarray(v) for k, v in
                                                        stamp.items()})


def resume(path: str | os.PathLike, **stamp) -> dict:
    """The named arrays saved at ``path`` by :func:`checkpoint` under the same ``stamp`` (the
    seed and any setting the pieces depend on: arrays, numbers, strings), else ``{}``.

    Long reproductions save after every finished piece and skip the pieces found here, so a
    killed run resumes where it stopped; a file written under other settings (another
    fingerprint of the stamp, ``widelimits._resume``) is ignored, and replaced by the next save.
    """
    saved = _resume.load(path, _fingerprint(stamp), who="widelimits.reproduce",
                         on_mismatch="ignore")
    if saved is None:
        return {}
    return {k: v for k, v in saved.items() if not k.startswith(_STAMP)}


def checkpoint(path: str | os.PathLike, done: dict, **stamp) -> None:
    """Write ``done`` (name -> array) to ``path`` under ``stamp`` (read back by :func:`resume`)
    in the one resumable format of the package (``widelimits._resume``: an ``.npz`` with the
    fingerprint of the stamp, written atomically, so a run killed while saving leaves the previous
    file intact). The stamp's values are saved too (:func:`saved_stamp`)."""
    stamped = {_STAMP + k: np.asarray(v) for k, v in stamp.items()}
    bad = [k[len(_STAMP):] for k, v in stamped.items() if v.dtype == object]
    if bad:
        raise TypeError(f"widelimits.reproduce.checkpoint: stamp values must be arrays, numbers "
                        f"or strings, got {bad} of other types.")
    arrays = {**done, **stamped}
    _resume.save(path, arrays, _fingerprint(stamp))


def saved_stamp(path: str | os.PathLike) -> dict:
    """The stamp ``path`` was saved under by :func:`checkpoint` (name -> array; a number as a 0-d
    array). ``ValueError`` if ``path`` is not such a file."""
    with np.load(path, allow_pickle=False) as f:
        stamp = {k[len(_STAMP):]: f[k] for k in f.files if k.startswith(_STAMP)}
    if not stamp or _resume.load(path, _fingerprint(stamp), who="widelimits.reproduce",
                                 on_mismatch="ignore") is None:
        raise ValueError(f"{path} is not a file saved by a reproduction (no valid stamp).")
    return stamp


def rerun_saved(path: str | os.PathLike, run, size: str, pieces: dict, where: str) -> dict:
    """``run(size, folder, seed=the saved seed)`` on the folder of the saved file ``path``,
    after checking that it holds every piece: ``pieces`` maps a label (a width, a gamma0) to the
    array name that piece saves. Raises ``ValueError`` naming ``where`` and the missing labels,
    so a ``load`` never starts a long computation by surprise."""
    stamp = saved_stamp(path)
    done = resume(path, **stamp)
    missing = [label for label, name in pieces.items() if name not in done]
    if missing:
        raise ValueError(f"{where}: {path} lacks {missing} of size {size!r}.")
    return run(size, os.path.dirname(os.fspath(path)) or ".", seed=int(stamp["seed"]))


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
