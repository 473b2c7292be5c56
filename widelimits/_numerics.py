"""Numerical guards shared by the views."""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["q_floor"]


def q_floor(q):
    """max(q, sqrt(tiny)): the variance at which q -> 0+ limits are evaluated (derivatives in q
    of E phi(sqrt(q) z)^2 involve 1/sqrt(q) factors that a literal 0 turns into 0 * inf)."""
    return jnp.maximum(q, jnp.sqrt(jnp.finfo(q.dtype).tiny))
