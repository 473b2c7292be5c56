"""Arc-cosine functions J_n(c) of Cho & Saul (2009) with derivatives that stay finite.

For jointly Gaussian (u, v) with variances q11, q22 and correlation c = cos(theta),
``E[relu(u)^n relu(v)^n] = (q11 q22)^(n/2) J_n(c) / (2 pi)`` with

    J_0 = pi - theta,   J_1 = sin(theta) + (pi - theta) c,
    J_n = (2n - 1) c J_{n-1} + (n - 1)^2 (1 - c^2) J_{n-2}   (n >= 2).

By Price's theorem dJ_n/dc = n^2 J_{n-1}, which is what the custom JVP uses: it avoids the
``inf * 0`` of differentiating ``arccos`` and ``sqrt(1 - c^2)`` at c = +-1 (x1 == x2 or
antiparallel inputs). dJ_0/dc = 1/sqrt(1 - c^2) is set to 0 where |c| = 1; there c sits at its
extreme value, so every tangent dc vanishes and 0 is the correct product.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

__all__ = ["arccos_j", "safe_correlation"]


def safe_correlation(q11, q12, q22):
    """c = q12 / sqrt(q11 q22) clipped to [-1, 1]; 0 where a variance vanishes (finite grads).

    Values within 4 ulps of +-1 are set to +-1: c carries that much round-off (under jit XLA
    evaluates the division with an approximate rsqrt), and arccos would turn it into an error of
    sqrt(2 * 4 ulp) ~ 3e-8 in theta for identical inputs, whose c is exactly 1.
    """
    p = q11 * q22
    pos = p > 0
    c = jnp.clip(q12 / jnp.sqrt(jnp.where(pos, p, 1)), -1, 1)
    tol = 4 * jnp.finfo(c.dtype).eps
    c = jnp.where(c >= 1 - tol, 1, jnp.where(c <= tol - 1, -1, c))
    return jnp.where(pos, c, 0)


def safe_sqrt(x):
    """sqrt(max(x, 0)) with a zero (not infinite) derivative at 0."""
    pos = x > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, x, 1)), 0)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def arccos_j(n: int, c):
    """J_n(c) for an int order n >= 0 and correlation c in [-1, 1] (any shape)."""
    j_prev = jnp.pi - jnp.arccos(c)
    if n == 0:
        return j_prev
    s2 = jnp.maximum(1 - c * c, 0)
    j = jnp.sqrt(s2) + j_prev * c
    for m in range(2, n + 1):
        j, j_prev = (2 * m - 1) * c * j + (m - 1) ** 2 * s2 * j_prev, j
    return j


@arccos_j.defjvp
def _arccos_j_jvp(n, primals, tangents):
    (c,), (dc,) = primals, tangents
    value = arccos_j(n, c)
    if n == 0:
        s2 = 1 - c * c
        pos = s2 > 0
        slope = jnp.where(pos, jax.lax.rsqrt(jnp.where(pos, s2, 1)), 0)
    else:
        slope = n * n * arccos_j(n - 1, c)
    return value, slope * dc
