"""Exact one-dimensional Gaussian moments of continuous piecewise-linear functions.

A ``nets.PiecewiseLinear`` is the callable of a ``nets.Elementwise`` spec (``signal.shifted_relu``
and ``signal.soft_threshold`` build them). Its moments ``E phi(sqrt(q) z)^2`` and
``E phi'(sqrt(q) z)^2`` follow from truncated Gaussian moments: for a piece ``a x + b`` on
``(lo, hi)``, with ``alpha = lo/sqrt(q)``, ``beta = hi/sqrt(q)``,

    T0 = Phi(beta) - Phi(alpha),  T1 = pdf(alpha) - pdf(beta),
    T2 = T0 + alpha pdf(alpha) - beta pdf(beta),
    E[(a u + b)^2 1{lo < u < hi}] = a^2 q T2 + 2 a b sqrt(q) T1 + b^2 T0.

Gauss-Hermite quadrature of such kinked functions converges only algebraically in the number of
nodes, hence these exact forms.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax.scipy.special import ndtr

from .. import nets

__all__ = ["is_piecewise_linear", "piecewise_second_moment", "piecewise_derivative_moment"]

_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def is_piecewise_linear(act) -> bool:
    """Whether the function of the ``nets.Elementwise`` spec ``act`` is a ``nets.PiecewiseLinear``."""
    return isinstance(act.func, nets.PiecewiseLinear)


def _truncated_moments(lo, hi, s):
    """(T0, T1, T2) = E[z^k 1{lo/s < z < hi/s}], k = 0, 1, 2, for z ~ N(0, 1) and scale s > 0;
    infinite ends are handled statically (no inf * 0)."""
    def ends(x):
        if math.isinf(x):
            return None
        t = x / s
        return t, jnp.exp(-t * t / 2) * _INV_SQRT_2PI

    a, b = ends(lo), ends(hi)
    # Upper and lower tail probabilities, each from the side that avoids cancellation.
    upper = lambda e: 0.0 if e is None else ndtr(-e[0])  # P(z > t)
    if a is None and b is None:
        t0 = jnp.ones_like(s)
    elif a is None:
        t0 = ndtr(b[0])
    elif b is None:
        t0 = upper(a)
    else:
        t0 = jnp.where(a[0] > 0, upper(a) - upper(b), ndtr(b[0]) - ndtr(a[0]))
    pa = 0.0 if a is None else a[1]
    pb = 0.0 if b is None else b[1]
    t1 = pa - pb
    t2 = t0 + (0.0 if a is None else a[0] * a[1]) - (0.0 if b is None else b[0] * b[1])
    return t0, t1, t2


def _scale(q):
    q = jnp.asarray(q)
    tiny = jnp.finfo(jnp.result_type(q, float)).tiny
    return jnp.sqrt(jnp.maximum(q, tiny))


def piecewise_second_moment(func, q):
    """E[phi(sqrt(q) z)^2], z ~ N(0, 1), exactly (elementwise in ``q``; differentiable)."""
    s = _scale(q)
    total = 0.0
    for lo, hi, a, b in func.pieces:
        if a == 0 and b == 0:
            continue
        t0, t1, t2 = _truncated_moments(lo, hi, s)
        total = total + a * a * s * s * t2 + 2 * a * b * s * t1 + b * b * t0
    return total + jnp.zeros_like(s)


def piecewise_derivative_moment(func, q):
    """E[phi'(sqrt(q) z)^2], z ~ N(0, 1), exactly: the sum of slope^2 times piece probability."""
    s = _scale(q)
    total = 0.0
    for lo, hi, a, _ in func.pieces:
        if a != 0:
            total = total + a * a * _truncated_moments(lo, hi, s)[0]
    return total + jnp.zeros_like(s)
