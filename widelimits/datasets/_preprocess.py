"""Image preprocessing of Shankar et al. 2020 ("Neural kernels without tangents", Sec. 5): ZCA
whitening and horizontal-flip augmentation, on channels-last arrays (n, H, W, C)."""

from __future__ import annotations

import numpy as np

__all__ = ["zca_whiten", "flip_augment"]


def _images(owner, name, x):
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{owner}: {name} must be channels-last images (n, H, W, C), got shape "
                         f"{x.shape}.")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise TypeError(f"{owner}: {name} must be a numeric array, got dtype {x.dtype}.")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{owner}: {name} contains non-finite values.")
    return x


def _normalised(x):
    """Each image (flattened) minus its mean, divided by its norm (norms below 1e-8 left)."""
    flat = x.reshape(x.shape[0], -1).astype(np.float64)
    flat = flat - flat.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(flat, axis=1, keepdims=True)
    return flat / np.where(norms < 1e-8, 1.0, norms)


def zca_whiten(x_train, x_test=None, *, reg: float = 0.1):
    """ZCA whitening as in Shankar et al. 2020 (Sec. 5; their ``preprocess``): every image is
    centred (its own mean over pixels and channels) and scaled to unit norm, then multiplied by
    ``W = (Σ + ε I)^(-1/2)`` (symmetric: the "zero-phase" whitening), where ``Σ = XᵀX / n`` is
    the second-moment matrix of the normalised *training* images over the H·W·C pixel values and
    ``ε = reg · tr(Σ) / (H W C)`` (``reg`` in units of the mean eigenvalue, so it does not
    depend on the image size; their CIFAR-10 ``zca_bias = 1e-4`` on unit-norm 3072-pixel images
    is ``reg ≈ 0.3``). ``reg = 0`` whitens completely, within the span of the training images
(null directions of ``Σ``, such as the constant image removed by the centring, map to 0).

    ``x_train`` (n, H, W, C), ``x_test`` (m, H, W, C) or None. Returns the whitened
    ``x_train`` (float64, same shape) or ``(x_train, x_test)``, both mapped by the same ``W``.

    >>> import numpy as np
    >>> from widelimits import datasets
    >>> x = np.random.default_rng(0).normal(size=(500, 2, 2, 1)) * [[[1.0], [3.0]], [[0.5], [2.0]]]
    >>> w = datasets.zca_whiten(x, reg=0.0).reshape(500, 4)
    >>> bool(np.allclose(w.T @ w / 500, np.eye(4) - 0.25, atol=1e-9))  # white, less the mean
    True
    """
    owner = "datasets.zca_whiten"
    x_train = _images(owner, "x_train", x_train)
    if x_test is not None:
        x_test = _images(owner, "x_test", x_test)
        if x_test.shape[1:] != x_train.shape[1:]:
            raise ValueError(f"{owner}: x_test must have the image shape of x_train "
                             f"{x_train.shape[1:]}, got {x_test.shape[1:]}.")
    reg = float(reg)
    if not np.isfinite(reg) or reg < 0:
        raise ValueError(f"{owner}: reg must be a finite number >= 0, got {reg!r}.")
    train = _normalised(x_train)
    sigma = train.T @ train / train.shape[0]
    evals, evecs = np.linalg.eigh(sigma)
    evals = np.clip(evals, 0.0, None) + reg * np.trace(sigma) / sigma.shape[0]
    null = evals <= 1e-12 * evals.max()          # only with reg = 0: a pseudo-inverse
    w = (evecs * np.where(null, 0.0, 1.0 / np.sqrt(np.where(null, 1.0, evals)))) @ evecs.T
    out = (train @ w).reshape(x_train.shape)
    if x_test is None:
        return out
    return out, (_normalised(x_test) @ w).reshape(x_test.shape)


def flip_augment(x, y=None):
    """Horizontal-flip augmentation (Shankar et al. 2020, Sec. 5): the images ``x`` (n, H, W, C)
    followed by their mirror images (the W axis reversed), (2n, H, W, C); with labels ``y``
    (n, ...) also ``y`` repeated, (2n, ...): ``(x_aug, y_aug)``.

    >>> import numpy as np
    >>> from widelimits import datasets
    >>> x = np.arange(4.0).reshape(1, 2, 2, 1)
    >>> x_aug, y_aug = datasets.flip_augment(x, np.array([7]))
    >>> x_aug[..., 0].tolist(), y_aug.tolist()
    ([[[0.0, 1.0], [2.0, 3.0]], [[1.0, 0.0], [3.0, 2.0]]], [7, 7])
    """
    x = _images("datasets.flip_augment", "x", x)
    flipped = np.concatenate([x, x[:, :, ::-1, :]])
    if y is None:
        return flipped
    y = np.asarray(y)
    if y.shape[:1] != x.shape[:1]:
        raise ValueError(f"datasets.flip_augment: y must have one entry per image ({x.shape[0]}), "
                         f"got shape {y.shape}.")
    return flipped, np.concatenate([y, y])
