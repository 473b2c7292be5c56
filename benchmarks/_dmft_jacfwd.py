"""Baseline for the deep DMFT's response functions, timed by ``benchmarks/dmft.py``.

The direct way to get RA^l = <d phi(h^l) / d r^l> and RB^l = <d g^{l+1} / d u^{l+1}>: one
``lax.scan`` over time of all layers' single-site equations per sample (each step contracts the
whole history), differentiated by ``jax.jacfwd`` with respect to every source of every layer, in
chunks of samples. ``widelimits`` solves each layer's linearised recursion on its own, in time
blocks, for only its own sources (``dynamics.dmft._deep._jacobians``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _site(dphi, fn, u, r, w0, dl, phi0, phis, gs, ra, rb, c):
    """u (L, T+1, Q), r (L-1, T+1, Q); phis = Phi^1..Phi^{L-1}, gs = G^2..G^L, (L-1, T+1, T+1,
    Q, Q). Returns the phi(h) and g histories, (L, T+1, Q)."""
    depth, t1, q = u.shape
    below = jnp.arange(t1)

    def step(carry, k):
        ph, g, w = carry
        past = (below < k)[:, None] * dl                                  # Delta(m), m < k
        hs = [u[0, k] + c * phi0 @ jnp.sum(past * g[0], 0)]
        for l in range(1, depth):
            kern = c * phis[l - 1, k] * past[:, None, :] + ra[l - 1, k]
            hs.append(u[l, k] + jnp.einsum("mab,mb->a", kern, g[l]))
        ph = ph.at[:, k].set(jnp.stack([fn(h) for h in hs]))
        zs = [r[l, k] + jnp.einsum("mab,mb->a", c * gs[l, k] * past[:, None, :] + rb[l, k],
                                   ph[l]) for l in range(depth - 1)] + [jnp.full((q,), w)]
        g = g.at[:, k].set(jnp.stack([dphi(h) * z for h, z in zip(hs, zs, strict=True)]))
        return (ph, g, w + c * dl[k] @ ph[-1, k]), None

    zeros = jnp.zeros((depth, t1, q), u.dtype)
    (ph, g, _), _ = jax.lax.scan(step, (zeros, zeros, w0), jnp.arange(t1))
    return ph, g


def responses(activation, u, r, w0, dl, phi0, phis, gs, ra, rb, c, chunk):
    """Sample means (RA^1..RA^{L-1}, RB^1..RB^{L-1}), (L-1, T+1, T+1, Q, Q) [l, k, m, a, b] each,
    by ``jax.jacfwd`` of ``_site``; u (n, L, T+1, Q), r (n, L-1, T+1, Q), w0 (n,)."""
    fn = activation.fn
    dphi = jax.vmap(jax.grad(fn))
    depth = u.shape[1]

    def one(u_, r_, w0_):
        site = lambda a, b: _site(dphi, fn, u_.at[1:].set(a), b, w0_, dl, phi0, phis, gs,  # noqa: E731
                                  ra, rb, c)
        (_, dph_dr), (dg_du, _) = jax.jacfwd(site, argnums=(0, 1))(u_[1:], r_)
        return (jnp.stack([dph_dr[l, :, :, l] for l in range(depth - 1)]),
                jnp.stack([dg_du[l + 1, :, :, l] for l in range(depth - 1)]))

    def body(acc, args):
        a, b = jax.vmap(one)(*args)
        return (acc[0] + a.sum(0), acc[1] + b.sum(0)), None

    n = w0.shape[0]
    split = lambda a: a.reshape((n // chunk, chunk) + a.shape[1:])  # noqa: E731
    zero = jnp.zeros((depth - 1,) + u.shape[2:] + u.shape[2:], u.dtype)
    (sa, sb), _ = jax.lax.scan(body, (zero, zero), (split(u), split(r), split(w0)))
    # [l, k, a, m, b] -> [l, k, m, a, b]
    return (sa / n).transpose(0, 1, 3, 2, 4), (sb / n).transpose(0, 1, 3, 2, 4)
