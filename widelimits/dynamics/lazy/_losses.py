"""Loss functions of the network outputs, in the normalisation used throughout ``dynamics``."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["mse", "cross_entropy"]


def mse(fx, y):
    """``½ Σ (f − y)² / y.size``: half the mean over all entries (n examples × k outputs).

    Its gradient ``(f − y) / y.size`` makes gradient descent with learning rate η the recursion
    ``f ← f − (η / y.size) Θ (f − y)`` of :func:`gradient_descent_mse`.

    >>> import jax.numpy as jnp
    >>> from widelimits import dynamics
    >>> float(dynamics.mse(jnp.array([[1.0], [3.0]]), jnp.array([[0.0], [1.0]])))   # (1 + 4) / 4
    1.25
    """
    fx, y = jnp.asarray(fx), jnp.asarray(y)
    if fx.shape != y.shape:
        raise ValueError(f"mse: outputs {fx.shape} and targets {y.shape} must have one shape")
    return 0.5 * jnp.mean((fx - y) ** 2)


def cross_entropy(fx, y):
    """Softmax cross-entropy averaged over examples: ``−(1/n) Σ_i Σ_c y_ic log softmax(f_i)_c``.

    ``fx``: logits (n, k); ``y``: one-hot labels or class probabilities (n, k) (rows summing
    to 1). Note the normalisation is per example (not per entry as for :func:`mse`).

    >>> import jax.numpy as jnp
    >>> from widelimits import dynamics
    >>> round(float(dynamics.cross_entropy(jnp.zeros((2, 4)), jnp.eye(4)[:2])), 4)   # log 4
    1.3863
    """
    fx, y = jnp.asarray(fx), jnp.asarray(y)
    if fx.ndim != 2 or fx.shape != y.shape:
        raise ValueError(f"cross_entropy: expected logits and targets of one shape (n, k), got "
                         f"{fx.shape} and {y.shape}")
    return -jnp.sum(y * jax.nn.log_softmax(fx, axis=-1)) / fx.shape[0]
