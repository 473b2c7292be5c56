"""Tiling of pairwise computations over blocks of inputs, to bound memory or to skip the
lower triangle of a symmetric one."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["tiles", "tiled_pair", "tiled_rows", "symmetric_blocks"]


def tiles(x, b):
    """Split ``x`` (n, ...) into ``ceil(n / b)`` tiles (nb, b, ...), padding with copies of x[0]."""
    n = x.shape[0]
    nb = -(-n // b)
    pad = jnp.broadcast_to(x[:1], (nb * b - n,) + x.shape[1:])
    return jnp.concatenate([x, pad]).reshape((nb, b) + x.shape[1:])


def tiled_pair(fn, x1, x2, b):
    """``fn(xa, xb)`` on every pair of ``b``-row tiles of x1 and x2, assembled to (n1, n2, ...).

    ``fn`` maps tiles (b, ...) and (b, ...) to a pytree of arrays of shape (b, b, ...). Tiles run
    one after the other (``lax.map``), so peak memory is that of one tile pair.
    """
    t1, t2 = tiles(x1, b), tiles(x2, b)
    blocks = jax.lax.map(lambda xa: jax.lax.map(lambda xb: fn(xa, xb), t2), t1)

    def merge(k):  # (nb1, nb2, b, b, ...) -> (n1, n2, ...)
        k = jnp.swapaxes(k, 1, 2).reshape((t1.shape[0] * b, t2.shape[0] * b) + k.shape[4:])
        return k[: x1.shape[0], : x2.shape[0]]

    return jax.tree.map(merge, blocks)


def tiled_rows(fn, x, b):
    """``fn(xa)`` on every ``b``-row tile of x, assembled to (n, ...); ``fn`` returns (b, ...)."""
    t = tiles(x, b)
    out = jax.lax.map(fn, t)
    return jax.tree.map(lambda k: k.reshape((t.shape[0] * b,) + k.shape[2:])[: x.shape[0]], out)


def symmetric_blocks(fn, x, m, sequential=False):
    """A symmetric pairwise quantity of ``x`` (n, ...) from its upper-triangular blocks.

    ``x`` is split into ``m`` tiles of ``b = ceil(n / m)`` rows (the last padded as in
    ``tiles``); ``fn(xa, xb, same)`` maps two tiles to a pytree of (b, b) blocks, ``same`` a
    traced bool that is True when ``xa`` is ``xb`` (a diagonal block). Only the m (m + 1) / 2
    blocks with i <= j are computed, vmapped as one program (``sequential``: one after the
    other, ``lax.map``, so that each block's intermediates stay small); block (j, i) is written
    as the transpose of block (i, j), so the (n, n) result is exactly symmetric outside the
    diagonal blocks (which are as symmetric as ``fn`` makes them).
    """
    n = x.shape[0]
    b = -(-n // m)
    t = tiles(x, b)
    iu, ju = np.triu_indices(m)
    if sequential:
        blocks = jax.lax.map(lambda ij: fn(t[ij[0]], t[ij[1]], ij[0] == ij[1]),
                             (jnp.asarray(iu), jnp.asarray(ju)))
    else:
        blocks = jax.vmap(fn)(t[iu], t[ju], jnp.asarray(iu == ju))
    rows, cols = jnp.asarray(iu * b), jnp.asarray(ju * b)

    def merge(o):
        def put(p, full):
            full = jax.lax.dynamic_update_slice(full, o[p].T, (cols[p], rows[p]))
            return jax.lax.dynamic_update_slice(full, o[p], (rows[p], cols[p]))

        full = jnp.zeros((m * b, m * b), o.dtype)
        return jax.lax.fori_loop(0, len(iu), put, full)[:n, :n]

    return jax.tree.map(merge, blocks)
