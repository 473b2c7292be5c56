"""Kernel alignment: the cosine similarity of two kernel matrices (Cristianini, Shawe-Taylor,
Elisseeff & Kandola 2001, "On kernel-target alignment", NeurIPS 14, Def. 1).

    A(K1, K2) = <K1, K2>_F / (||K1||_F ||K2||_F),    <K1, K2>_F = sum_ij K1_ij K2_ij.

It is 1 for proportional kernels and, for positive semi-definite ones, lies in [0, 1]. With
K2 = y y^T (the target kernel) it measures how well K1 suits the task; between a network's feature
kernel before and after training, how far features moved (Bordelon & Pehlevan 2022 plot both).
"""

from __future__ import annotations

import numpy as np

__all__ = ["alignment"]


def alignment(a, b) -> np.ndarray:
    """Kernel alignment <a, b>_F / (||a||_F ||b||_F) over the last two axes of ``a`` and ``b``
    (Cristianini et al. 2001, "On kernel-target alignment", Def. 1): the cosine similarity of
    the two matrices seen as vectors.

    ``a`` (..., n, m) and ``b`` (..., n, m): arrays (NumPy or JAX) whose leading axes broadcast
    against each other, e.g. a stack of kernels against one reference. Computed in float64 NumPy
    (a post-processing step, not traced). Returns the alignments, shape the broadcast of the
    leading axes (a NumPy float for two matrices); NaN where either matrix is zero.

    >>> import numpy as np
    >>> from widelimits import compare
    >>> k = np.array([[2.0, 1.0], [1.0, 2.0]])
    >>> float(compare.alignment(k, 3 * k))              # proportional kernels
    1.0
    >>> float(compare.alignment(np.eye(4), np.ones((4, 4))))   # n / (sqrt(n) n) = 1/2
    0.5
    >>> y = np.array([1.0, -1.0, 1.0])
    >>> compare.alignment(np.stack([np.outer(y, y), np.eye(3)]), np.outer(y, y)).round(4)
    array([1.    , 0.5774])
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    for name, v in (("a", a), ("b", b)):
        if v.ndim < 2:
            raise ValueError(f"compare.alignment: {name} must have at least two axes (a kernel "
                             f"matrix (n, m) or a stack of them), got shape {v.shape}.")
    if a.shape[-2:] != b.shape[-2:]:
        raise ValueError(f"compare.alignment: a and b must have the same last two axes, got "
                         f"shapes {a.shape} and {b.shape}.")
    dot = np.sum(a * b, axis=(-2, -1))
    norms = np.sqrt(np.sum(a * a, axis=(-2, -1)) * np.sum(b * b, axis=(-2, -1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = dot / norms
    return np.where(norms > 0, out, np.nan)[()]
