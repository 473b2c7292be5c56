"""Checkpoints of ``dynamics.train``: an ``.npz`` of named arrays written atomically, and
fingerprints of the arguments so a run resumes only from a checkpoint of the same run."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import jax
import numpy as np

__all__ = ["checkpoint_file", "save", "load", "digest"]

FILENAME = "train_checkpoint.npz"


def checkpoint_file(checkpoint) -> Path | None:
    """The file for ``checkpoint``: a path ending in ``.npz`` as is, anything else is a folder
    (created) holding ``train_checkpoint.npz``; ``None`` for no checkpointing."""
    if checkpoint is None:
        return None
    if not isinstance(checkpoint, str | os.PathLike):
        raise TypeError("dynamics.train: checkpoint must be None, a path ending in .npz or a "
                        f"folder, got {checkpoint!r} of type {type(checkpoint).__name__}.")
    path = Path(checkpoint)
    if path.suffix == ".npz":
        path.parent.mkdir(parents=True, exist_ok=True)
        return path
    path.mkdir(parents=True, exist_ok=True)
    return path / FILENAME


def save(path: Path, arrays: dict) -> None:
    """Write ``arrays`` to ``path`` atomically (a temporary file, then ``os.replace``)."""
    tmp = path.with_name(path.name + ".tmp.npz")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)


def load(path: Path) -> dict | None:
    """The arrays saved at ``path`` (None if there is no file)."""
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def digest(*items) -> str:
    """SHA-256 of strings and pytrees of arrays (their dtypes, shapes and bytes)."""
    h = hashlib.sha256()
    for item in items:
        if isinstance(item, str):
            h.update(b"s" + item.encode())
            continue
        leaves, treedef = jax.tree.flatten(item)
        h.update(b"t" + str(treedef).encode())
        for leaf in leaves:
            a = np.asarray(leaf)
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()
