"""Resumable results: one ``.npz`` format, written atomically, with a fingerprint of the run.

Long computations (training checkpoints, network ensembles, width sweeps, every reproduction)
save their finished pieces as named arrays and, when started again with the same arguments,
resume from them. The fingerprint (``fingerprint``: SHA-256 of everything the results depend
on) is stored beside the arrays; a file made by another run is refused with a ``ValueError``
naming what differs, or ignored (and later overwritten) with ``on_mismatch="ignore"``. Saving
writes a temporary file and renames it, so a run killed while saving keeps the previous file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import jax
import numpy as np

__all__ = ["fingerprint", "load", "save"]

_KEY = "__fingerprint__"


def fingerprint(*parts) -> str:
    """SHA-256 hex digest of ``parts``: strings, bytes, numbers, arrays and pytrees of arrays
    (their tree structure, dtypes, shapes and bytes), and anything else by its ``repr``."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, str):
            h.update(b"s" + part.encode())
        elif isinstance(part, bytes):
            h.update(b"b" + part)
        else:
            leaves, treedef = jax.tree.flatten(part)
            h.update(b"t" + str(treedef).encode())
            for leaf in leaves:
                if isinstance(leaf, np.ndarray | jax.Array | np.generic | int | float | complex):
                    if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(
                            leaf.dtype, jax.dtypes.prng_key):
                        leaf = jax.random.key_data(leaf)
                    a = np.asarray(leaf)
                    h.update(f"{a.dtype}{a.shape}".encode())
                    h.update(np.ascontiguousarray(a).tobytes())
                else:
                    h.update(b"r" + repr(leaf).encode())
    return h.hexdigest()


def _prints(fp) -> dict:
    return {"": fp} if isinstance(fp, str) else dict(fp)


def load(path, fp, *, who: str, on_mismatch: str = "raise") -> dict | None:
    """The arrays saved at ``path`` under the fingerprint ``fp``, else ``None`` (no file).

    ``fp``: a fingerprint string, or a dict of named fingerprints (the error then names the
    parts that differ). A file saved under another fingerprint raises ``ValueError`` starting
    with ``who`` (``on_mismatch="raise"``) or counts as absent (``"ignore"``).
    """
    if on_mismatch not in ("raise", "ignore"):
        raise ValueError(f"_resume.load: on_mismatch must be 'raise' or 'ignore', got "
                         f"{on_mismatch!r}.")
    path = Path(path)
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as f:
        saved = {k: f[k] for k in f.files}
    differ = [name for name, v in _prints(fp).items() if str(saved.get(_KEY + name, "")) != v]
    if differ:
        if on_mismatch == "ignore":
            return None
        what = "other arguments" if differ == [""] else f"{', '.join(differ)} differ"
        raise ValueError(f"{who}: the checkpoint {path} holds the results of a different run "
                         f"({what}); delete it or pass another path.")
    return {k: v for k, v in saved.items() if not k.startswith(_KEY)}


def save(path, arrays: dict, fp) -> None:
    """Write ``arrays`` (name -> array) and the fingerprint ``fp`` to ``path`` atomically,
    creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stamped = {_KEY + name: np.asarray(v) for name, v in _prints(fp).items()}
    tmp = path.with_name(path.name + ".partial.npz")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays, **stamped)
    os.replace(tmp, path)
