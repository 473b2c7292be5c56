"""Numerical guards shared by the views."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["one_at_a_time", "q_floor"]


def one_at_a_time(fn):
    """``fn(x)`` (one array argument) that, under ``jax.vmap``, runs member by member
    (``lax.map``) instead of as one batched call.

    A vmapped ``jnp.linalg.qr`` or ``eigh`` becomes one batched LAPACK call that splits its
    batch over XLA:CPU's thread pool and waits for the pieces. Two such calls running at once in
    one program (two orthogonal layers initialised under ``vmap``, the two branches of a
    ``parallel`` drawn from their conditional laws) can each hold a pool thread while waiting
    for the other's pieces: on a 2-core machine the program deadlocks (jaxlib 0.10). One member
    after another keeps every factorisation unbatched (for small matrices it is faster too)."""
    fn = jax.custom_batching.custom_vmap(fn)

    @fn.def_vmap
    def _rule(axis_size, in_batched, x):
        del axis_size
        if not in_batched[0]:
            return fn(x), False
        return jax.lax.map(fn, x), True

    return fn


def q_floor(q):
    """max(q, sqrt(tiny)): the variance at which q -> 0+ limits are evaluated (derivatives in q
    of E phi(sqrt(q) z)^2 involve 1/sqrt(q) factors that a literal 0 turns into 0 * inf)."""
    return jnp.maximum(q, jnp.sqrt(jnp.finfo(q.dtype).tiny))
