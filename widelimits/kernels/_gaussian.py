"""One-dimensional Gaussian expectations by Gauss-Hermite quadrature."""

from __future__ import annotations

import jax.numpy as jnp

from ._arccos import safe_sqrt
from ._hermite import DEFAULT_ORDER, _nodes

__all__ = ["gaussian_expectation"]


def gaussian_expectation(fn, q, order: int = DEFAULT_ORDER):
    """E[fn(sqrt(q) z)], z ~ N(0, 1), for every entry of the variance ``q`` (any shape).

    Gauss-Hermite quadrature with ``2 * order`` nodes: exact for polynomials of degree
    < 4 * order, spectrally accurate for smooth ``fn``; kinks (ReLU) converge only algebraically
    in ``order``, so prefer a closed form there. ``fn`` must act elementwise. Differentiable in
    ``q`` and in any parameters ``fn`` closes over; works under jit and vmap.

    >>> import jax.numpy as jnp
    >>> from widelimits import kernels
    >>> round(float(kernels.gaussian_expectation(lambda u: u**4, 2.0)), 4)   # 3 q^2
    12.0
    """
    z_np, sw_np = _nodes(order)
    q = jnp.asarray(q)
    dtype = jnp.result_type(q, float)
    z, w = jnp.asarray(z_np, dtype), jnp.asarray(sw_np**2, dtype)
    vals = fn(safe_sqrt(q.astype(dtype))[..., None] * z)
    return vals @ w
