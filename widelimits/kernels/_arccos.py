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

__all__ = ["arccos", "arccos_j", "arctan2", "safe_correlation"]

# asin(x) = x + x z p(z), z = x^2 <= 1/4: p fitted to (asin(sqrt z) - sqrt z) / z^1.5 (whose
# Taylor series has the coefficients C(2k, k) / (4^k (2k + 1))) by relative least squares on
# Chebyshev nodes in 40-digit arithmetic; the relative error of p is 1e-9 (float32, degree 6)
# and 5e-18 (float64, degree 13), below the ulp of asin.
_ASIN32 = (0.16666666686044024, 0.07499992416181726, 0.0446476584683335, 0.03026923015387233,
           0.023611118532835665, 0.01057687881189432, 0.030971278704132917)
_ASIN64 = (0.16666666666666666, 0.07500000000000118, 0.044642857142551236, 0.030381944475591983,
           0.022372157440717466, 0.017352816617756082, 0.013963778636220892,
           0.011566475960553163, 0.00962171028406244, 0.009320298817537808,
           0.003042112803367317, 0.019561197368064193, -0.019251063609761476,
           0.02961784360278849)


def _asin_small(x):
    """asin(x) for 0 <= x <= 1/2 by a polynomial (vectorised, unlike XLA's arccos on CPU)."""
    z = x * x
    coefs = _ASIN32 if jnp.finfo(x.dtype).bits <= 32 else _ASIN64
    p = jnp.asarray(coefs[-1], x.dtype)
    for a in coefs[-2::-1]:
        p = p * z + a
    return x + x * z * p


@jax.custom_jvp
def arccos(c):
    """arccos(c) for c in [-1, 1], to about an ulp, as a polynomial after the range reduction
    arccos(c) = 2 asin(sqrt((1 - c) / 2)) for c > 1/2 (Cephes' scheme). XLA evaluates
    ``jnp.arccos`` on CPU one element at a time (~50 ns each); this one vectorises (~1 ns). Its
    derivative is -1 / sqrt(1 - c^2), as ``jnp.arccos``'s.

    >>> import jax.numpy as jnp, numpy as np
    >>> c = jnp.linspace(-1.0, 1.0, 9)
    >>> bool(np.allclose(arccos(c), np.arccos(np.asarray(c)), rtol=1e-6, atol=0))
    True
    """
    a = jnp.abs(c)
    big = a > 0.5
    r = _asin_small(jnp.where(big, jnp.sqrt(jnp.maximum((1 - a) * 0.5, 0)), a))
    acos_a = jnp.where(big, 2 * r, (jnp.pi / 2 - r))
    return jnp.where(c < 0, jnp.pi - acos_a, acos_a)


@arccos.defjvp
def _arccos_jvp(primals, tangents):
    (c,), (dc,) = primals, tangents
    return arccos(c), -jax.lax.rsqrt(1 - c * c) * dc


@jax.custom_jvp
def arctan2(y, x):
    """atan2(y, x) for x > 0, to about an ulp and vectorised (see ``arccos``): asin(|y| / r)
    with r = sqrt(x² + y²), through asin(u) = pi/2 - 2 asin(sqrt((1 - u) / 2)) for u > 1/2,
    where 1 - u = x² / (r (r + |y|)) has no cancellation.

    >>> import jax.numpy as jnp, numpy as np
    >>> y, x = jnp.array([-3.0, 0.0, 0.5, 1e6]), jnp.array([1.0, 2.0, 1.0, 1.0])
    >>> bool(np.allclose(arctan2(y, x), np.arctan2(y, x), rtol=1e-6, atol=0))
    True
    """
    a = jnp.abs(y)
    r = jnp.sqrt(x * x + a * a)
    u = a / r
    big = u > 0.5
    w = jnp.where(big, jnp.sqrt(x * x / (2 * r * (r + a))), u)
    angle = jnp.where(big, jnp.pi / 2 - 2 * _asin_small(w), _asin_small(w))
    return jnp.where(y < 0, -angle, angle)


@arctan2.defjvp
def _arctan2_jvp(primals, tangents):
    (y, x), (dy, dx) = primals, tangents
    return arctan2(y, x), (x * dy - y * dx) / (x * x + y * y)


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
    j_prev = jnp.pi - arccos(c)
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
