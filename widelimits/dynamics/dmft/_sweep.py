"""One causal sweep over time of the deep single-site processes, all samples in lockstep.

Given the response functions RA, RB, everything else in the deep DMFT is causal: the sources'
covariances at time k, Phi^{l-1}(k, m <= k) and G^{l+1}(k, m <= k), involve fields at times <= k
only, and Phi^{l-1}(k, k) is known once layer l-1 has stepped (forward over layers), G^{l+1}(k, k)
once layer l+1 has (backward). So one pass over time, drawing each source u^l(k), r^l(k) from its
Gaussian law conditioned on its own past (the next block row of the Cholesky factor of its
two-time covariance), solves the fixed point for Delta, Phi and G exactly, with no outer iteration.
With fixed noise xi the sources are L xi, as for a Cholesky factor L of the whole covariance.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

from ._common import derivative

__all__ = ["sweep"]


def _conditional(inverse, cov_row, k, xi, jitter):
    """The source at time k given its past, and the next block row of the inverse of the
    lower-triangular factor L of its two-time covariance C (L L^T = C).

    inverse: ((T+1) Q, (T+1) Q) = L^{-1} on block rows < k, zero from block row k on; cov_row:
    (T+1, Q, Q) [m, a, b] = C((k, a), (m, b)), zero for m > k; xi: ((T+1) Q, n) the fixed
    noise. With x = L(k, <k) = C(k, <k) L^{-T} and L(k, k) the Cholesky factor of the
    conditional covariance C(k, k) - x x^T, the source is L(k, :) xi (Q, n). Matrix products
    only: a triangular solve per step is much slower on XLA:CPU."""
    t1, q, _ = cov_row.shape
    row = cov_row.transpose(1, 0, 2).reshape(q, t1 * q)                # [a, (m, b)]
    past = jnp.where(jnp.arange(t1 * q)[None, :] // q < k, row, 0.0)
    x = past @ inverse.T                                                # (Q, (T+1) Q), 0 from k
    diag = jax.lax.dynamic_slice(row, (0, k * q), (q, q))
    rest = diag - x @ x.T
    rest = 0.5 * (rest + rest.T)
    lift = jnp.maximum(0.0, -jnp.linalg.eigvalsh(rest)[0])              # round-off below zero
    scale = jnp.mean(jnp.diag(diag))
    eye = jnp.eye(q, dtype=rest.dtype)
    lkk = jnp.linalg.cholesky(rest + (lift + jitter * scale + 1e-300) * eye)
    lkk_inv = solve_triangular(lkk, eye, lower=True)
    # L^{-1}(k, :) = L(k, k)^{-1} [-x L^{-1}(<k, :), 1 at (k, k)]
    inv_row = jax.lax.dynamic_update_slice(-lkk_inv @ (x @ inverse), lkk_inv, (0, k * q))
    source = x @ xi + lkk @ jax.lax.dynamic_slice_in_dim(xi, k * q, q, 0)
    return jax.lax.dynamic_update_slice(inverse, inv_row, (k * q, 0)), source


def sweep(activation, noise, phi0, y, ra, rb, gamma0, eta, jitter):
    """Fields, kernels and errors of the deep DMFT for given response functions, in one pass.

    noise: (xi_u (n, L, (T+1) Q), xi_r (n, L-1, (T+1) Q), w0 (n,)); phi0: (Q, Q) input kernel
    (first P rows the training points); y: (P,); ra, rb: (L-1, T+1, T+1, Q, Q) the raw
    responses RA^1..RA^{L-1}, RB^1..RB^{L-1} of the deep solver. Returns a dict: ``delta``
    (T+1, P); ``phi``, ``g`` (L, T+1, T+1, Q, Q) = Phi^1..Phi^L, G^1..G^L; ``h``, ``z``,
    ``ph``, ``gf`` (L, T+1, Q, n) the fields h, z, phi(h), g of every sample; ``u``, ``r``
    (L, T+1, Q, n) their sources (r^L = w(0)); ``w`` (T+1, n); ``f`` (T+1, Q)."""
    xi_u, xi_r, w0 = noise
    n, depth, tq = xi_u.shape
    q, p, dt = phi0.shape[0], y.shape[0], y.dtype
    t1 = tq // q
    c = gamma0 * eta / p
    dphi = derivative(activation)
    xi_u, xi_r = xi_u.transpose(1, 2, 0), xi_r.transpose(1, 2, 0)       # (L, (T+1) Q, n)
    l0 = jnp.linalg.cholesky(phi0 + jitter * jnp.mean(jnp.diag(phi0)) * jnp.eye(q, dtype=dt))
    u1 = l0 @ xi_u[0, :q]                                               # static first layer
    fields = jnp.zeros((6, depth, t1, q, n), dt)                        # h, z, phi, g, u, r
    kern = jnp.zeros((2, depth, t1, t1, q, q), dt)                      # Phi^1..L, G^1..L
    factors = jnp.zeros((2, max(depth - 1, 1), tq, tq), dt)             # L^{-1}: u^2..L, r^1..L-1
    dl = jnp.zeros((t1, q), dt)
    before = jnp.arange(t1)

    def gram(a, hist):                      # <a (k) hist(m)^T> over samples: (T+1, Q, Q)
        return jnp.einsum("an,mbn->mab", a, hist) / n

    def put(kk, i, l, k, row):              # two-time kernel row k and column k
        kk = kk.at[i, l, k].set(row)
        return kk.at[i, l, :, k].set(row.transpose(0, 2, 1))

    def step(k, carry):
        fields, kern, factors, dl, w = carry
        mask = (before < k).astype(dt)[:, None, None] * c * dl[:, None, :]   # c Delta(m), m < k
        for l in range(depth):                                          # forward: h^l(k)
            if l == 0:
                u = u1
                h = u + c * phi0 @ jnp.einsum("mb,mbn->bn", dl * (before < k)[:, None],
                                              fields[3, 0])
            else:
                fac, u = _conditional(factors[0, l - 1], kern[0, l - 1, k], k, xi_u[l], jitter)
                factors = factors.at[0, l - 1].set(fac)
                k_h = kern[0, l - 1, k] * mask + ra[l - 1, k]
                h = u + jnp.einsum("mab,mbn->an", k_h, fields[3, l])
            ph = activation.fn(h)
            fields = fields.at[0, l, k].set(h).at[2, l, k].set(ph).at[4, l, k].set(u)
            kern = put(kern, 0, l, k, gram(ph, fields[2, l]))
        prod = w * fields[2, -1, k] - w0 * fields[2, -1, 0]
        f = jnp.mean(prod, axis=-1) / gamma0                            # (Q,)
        dl = dl.at[k, :p].set(y - f[:p])
        for l in range(depth - 1, -1, -1):                              # backward: z^l(k)
            if l == depth - 1:
                r = jnp.broadcast_to(w, (q, n))
                z = r
            else:
                fac, r = _conditional(factors[1, l], kern[1, l + 1, k], k, xi_r[l], jitter)
                factors = factors.at[1, l].set(fac)
                k_z = kern[1, l + 1, k] * mask + rb[l, k]
                z = r + jnp.einsum("mab,mbn->an", k_z, fields[2, l])
            g = dphi(fields[0, l, k]) * z
            fields = fields.at[1, l, k].set(z).at[3, l, k].set(g).at[5, l, k].set(r)
            kern = put(kern, 1, l, k, gram(g, fields[3, l]))
        w = w + c * dl[k] @ fields[2, -1, k]
        return fields, kern, factors, dl, w

    fields, kern, _, dl, _ = jax.lax.fori_loop(0, t1, step, (fields, kern, factors, dl, w0))
    h, z, ph, gf, u, r = fields
    ws = z[-1, :, 0]                                                    # z^L = w: (T+1, n)
    prod = ws[:, None] * ph[-1]
    f = jnp.mean(prod - prod[:1], axis=-1) / gamma0
    return dict(delta=dl[:, :p], phi=kern[0], g=kern[1], h=h, z=z, ph=ph, gf=gf, u=u, r=r,
                w=ws, f=f)
