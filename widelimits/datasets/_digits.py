"""The 8x8 handwritten digits shipped with the package (``digits.npz``)."""

from __future__ import annotations

from importlib import resources

import numpy as np

__all__ = ["digits", "DIGITS_FILE"]

DIGITS_FILE = "digits.npz"


def digits(dtype=np.float32):
    """The 1797 handwritten digits of scikit-learn's ``load_digits``: images (1797, 8, 8, 1)
    of ``dtype`` scaled to [0, 1] (channels last) and labels (1797,) int64 in 0..9 (about 180
    per class).

    Source: the test set of the UCI "Optical Recognition of Handwritten Digits" data set
    (E. Alpaydin and C. Kaynak, 1998; https://doi.org/10.24432/C50P49), licensed CC BY 4.0:
    32x32 bitmaps of digits written by 13 people, NIST-preprocessed and reduced to 8x8 by
    counting the on pixels in 4x4 blocks, so each pixel is an integer 0..16 (divided by 16
    here). Stored in the package as ``widelimits/datasets/digits.npz`` (uint8 ``images``
    (1797, 8, 8) and ``labels`` (1797,), 45 kB), extracted from scikit-learn's copy
    (``sklearn/datasets/data/digits.csv.gz``) without other changes.

    >>> from widelimits import datasets
    >>> x, y = datasets.digits()
    >>> x.shape, x.dtype.name, float(x.min()), float(x.max()), y.shape, int(y.max())
    ((1797, 8, 8, 1), 'float32', 0.0, 1.0, (1797,), 9)
    """
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"datasets.digits: dtype must be a floating-point type, got {dtype}.")
    with resources.files(__package__).joinpath(DIGITS_FILE).open("rb") as fh:
        with np.load(fh) as data:
            images, labels = data["images"], data["labels"]
    return (images[..., None].astype(dtype) / dtype.type(16.0)), labels.astype(np.int64)
