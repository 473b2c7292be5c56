"""Random weight ensembles for ``Dense``: Gaussian, orthogonal, low-rank and structured sparse.

Every sampler returns an ``(n_in, n_out)`` matrix ``W`` (the layer computes ``x W``) whose
entries have ``E W_ij = 0`` and ``E W_ij^2 = 1`` and whose columns (one per output unit) are
exchangeable, with ``E[W W^T] = n_out I`` (entries uncorrelated). These are the "pseudo-iid"
conditions of Nait Saada, Naderi & Tanner 2024 ("Beyond IID weights: sparse and low-rank deep
neural networks are also Gaussian processes"), under which a network's NNGP is the Gaussian one
as the fan-in of every such layer grows. ``Dense`` multiplies by ``w_std / sqrt(n_in)``.
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp

from .._numerics import one_at_a_time

__all__ = ["effective_rank", "nonzeros_per_unit", "gaussian", "orthogonal", "low_rank", "sparse",
           "check_rank", "check_density"]


def check_rank(owner: str, rank):
    """``rank`` must be an int >= 1 (a count) or a float in (0, 1] (a fraction)."""
    if isinstance(rank, bool) or not isinstance(rank, numbers.Real):
        raise TypeError(f"{owner}: rank must be an int >= 1 (a count) or a float in (0, 1] "
                        f"(a fraction of min(n_in, n_out)), got {rank!r} of type "
                        f"{type(rank).__name__}.")
    if isinstance(rank, numbers.Integral):
        if rank < 1:
            raise ValueError(f"{owner}: rank must be an int >= 1 or a float in (0, 1], got {rank}.")
    elif not (math.isfinite(rank) and 0 < rank <= 1):
        raise ValueError(f"{owner}: a float rank is a fraction of min(n_in, n_out) and must lie "
                         f"in (0, 1], got {rank!r}.")


def check_density(owner: str, density):
    """``density`` must be a real number in (0, 1]."""
    if isinstance(density, bool) or not isinstance(density, numbers.Real):
        raise TypeError(f"{owner}: density must be a number in (0, 1], got {density!r} of type "
                        f"{type(density).__name__}.")
    if not (math.isfinite(density) and 0 < density <= 1):
        raise ValueError(f"{owner}: density must lie in (0, 1], got {density!r}.")


def effective_rank(rank, n_in: int, n_out: int) -> int:
    """The rank used for an ``(n_in, n_out)`` matrix: an int ``rank`` capped at
    ``min(n_in, n_out)``; a float ``rank`` is the fraction ``max(1, round(rank * min))``."""
    m = min(n_in, n_out)
    if isinstance(rank, numbers.Integral):
        return int(min(rank, m))
    return int(max(1, min(m, round(rank * m))))


def nonzeros_per_unit(density, n_in: int) -> int:
    """Number K = max(1, round(density * n_in)) of inputs each output unit sees."""
    return int(max(1, min(n_in, round(density * n_in))))


def gaussian(key, n_in: int, n_out: int, dtype):
    """iid N(0, 1) entries."""
    return jax.random.normal(key, (n_in, n_out), dtype)


def orthogonal(key, n_in: int, n_out: int, dtype):
    """``sqrt(max(n_in, n_out))`` times a Haar matrix with orthonormal rows or columns
    (whichever are fewer), so that every entry has second moment 1."""
    draw = jax.nn.initializers.orthogonal(scale=max(n_in, n_out) ** 0.5)
    return one_at_a_time(lambda k: draw(k, (n_in, n_out), dtype))(key)


def low_rank(key, n_in: int, n_out: int, rank, dtype):
    """``W = P C``: ``P`` (n_in, r) a Haar-random orthonormal basis of an r-dimensional
    subspace of the inputs, ``C`` (r, n_out) iid N(0, n_in / r), with r =
    ``effective_rank(rank, n_in, n_out)``. Output units see iid Gaussian weights inside the
    random subspace: ``E W_ij^2 = r (1/n_in) (n_in/r) = 1`` and ``E W W^T = n_out E[P P^T] n_in/r
    = n_out I``. rank(W) = r almost surely."""
    r = effective_rank(rank, n_in, n_out)
    kp, kc = jax.random.split(key)
    draw = jax.nn.initializers.orthogonal()
    basis = one_at_a_time(lambda k: draw(k, (n_in, r), dtype))(kp)
    factors = jax.random.normal(kc, (r, n_out), dtype) * jnp.asarray((n_in / r) ** 0.5, dtype)
    return basis @ factors


def sparse(key, n_in: int, n_out: int, density, dtype):
    """Structured sparse: every output unit (column) sees exactly K =
    ``nonzeros_per_unit(density, n_in)`` inputs drawn uniformly without replacement,
    independently across units, with iid N(0, n_in / K) weights; the rest are 0. Hence
    ``E W_ij^2 = (K/n_in)(n_in/K) = 1`` and distinct entries are uncorrelated."""
    k = nonzeros_per_unit(density, n_in)
    ks, kg = jax.random.split(key)
    order = jnp.argsort(jax.random.uniform(ks, (n_in, n_out)), axis=0)
    ranks = jnp.argsort(order, axis=0)  # ranks[:, j]: a uniform random permutation of 0..n_in-1
    values = jax.random.normal(kg, (n_in, n_out), dtype) * jnp.asarray((n_in / k) ** 0.5, dtype)
    return jnp.where(ranks < k, values, jnp.zeros((), dtype))
