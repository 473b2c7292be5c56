"""Sampled DMFT of deep (L >= 2) mean-field networks, with or without the response functions.

Single-site equations for discrete gradient descent (left Riemann sums, t_k = k eta), layer l:

    h^l(k) = u^l(k) + gamma0 (eta/P) sum_{m<k} Phi^{l-1}(k, m) [Delta(m) g^l(m)]
                    + sum_{m<k} RA^{l-1}(k, m) g^l(m)
    z^l(k) = r^l(k) + gamma0 (eta/P) sum_{m<k} G^{l+1}(k, m) [Delta(m) phi(h^l(m))]
                    + sum_{m<=k} RB^l(k, m) phi(h^l(m))
    g^l = phi'(h^l) z^l,   z^L = w(k) = w(0) + gamma0 (eta/P) sum_{m<k} Delta(m) . phi(h^L(m)),

u^l ~ GP(0, Phi^{l-1}), r^l ~ GP(0, G^{l+1}), w(0) ~ N(0, 1); the raw responses
RA^l(k, m) = <d phi(h^l(k)) / d r^l(m)> and RB^l(k, m) = <d g^{l+1}(k) / d u^{l+1}(m)> are gamma0 times
the paper's A^l, B^l (Bordelon & Pehlevan 2022, eq. for the single-site stochastic process). They
come from the cavity argument at finite time step: RA is strictly causal, RB includes m = k
(g^{l+1}(k) depends on h^{l+1}(k)). Here they are computed exactly per sample by forward-mode
differentiation of the single-site solver (jax.jacfwd through the causal scan), averaged in chunks:
cost O(n (TP)^2 T P) per iteration, so keep P T small. ``responses=False`` is the
*gradient-independence approximation* (RA = RB = 0): not the DMFT, cheap.

Outputs f(k) = <w(k) phi(h^L(k)) - w(0) phi(h^L(0))> / gamma0 (the exact infinite-width output of
gradient descent), so gamma0 > 0 is required here. Test points ride along with Delta = 0.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ._dmft import DMFTResult, derivative, extend_in_time, iterate_in_time


def _single_site(activation, u, r, w0, delta, phis, gs, ra, rb, gamma0, eta, p, responses=True):
    """One sample's trajectory. u: (L, T+1, Q) (Q = P + test points); r: (L-1, T+1, Q); w0: ();
    delta: (T+1, Q) (zero on test points); phis: (L, T+1, T+1, Q, Q) = Phi^0..Phi^{L-1}, where
    Phi^0, the input kernel, is constant in time, so its term is a running sum (O(Q^2) a step);
    gs: (L-1, ...) = G^2..G^L; ra: (L-1, ...) = RA^1..RA^{L-1}; rb: (L-1, ...) = RB^1..RB^{L-1}.
    ``responses=False`` skips the (zero) response terms. Returns phi(h) and g histories,
    (L, T+1, Q) each, and w (T+1,)."""
    depth, t1, q = u.shape
    dphi = derivative(activation)
    c = gamma0 * eta / p

    phi0 = phis[0, 0, 0]

    def step(carry, k, hist, phis_k, gs_k, ra_k, rb_k):
        # hist: the history rows m < hist, all that steps k < hist can reach (static);
        # phis_k: Phi^1..Phi^{L-1} at time k; acc = sum_{m<k} Delta(m) g^1(m)
        ph_hist, g_hist, w, acc = carry                # (L, T+1, Q), (L, T+1, Q), (), (Q,)
        dl = delta[:hist]
        # With responses, Delta, the causal mask and the response share one (T+1, Q, Q) kernel
        # per term (the same for all samples): one matrix product with the history instead of
        # two. Without them the weighted history is contracted directly (measured faster).
        hs = [u[0, k] + c * (phi0 @ acc)]
        for l in range(1, depth):                      # forward: h^{l+1}(k) uses g^{l+1}(m < k)
            gl = g_hist[l, :hist]
            if responses:                              # history rows m >= k are still zero
                kern = c * phis_k[l - 1] * dl[:, None, :] + ra_k[l - 1]
                h = jnp.einsum("mab,mb->a", kern, gl)
            else:
                h = c * jnp.einsum("mab,mb->a", phis_k[l - 1], gl * dl)
            hs.append(u[l, k] + h)
        ph_hist = jax.lax.dynamic_update_index_in_dim(
            ph_hist, jnp.stack([activation.fn(h) for h in hs]), k, axis=1)
        zs = [None] * depth
        zs[-1] = jnp.full((q,), w)
        for l in range(depth - 2, -1, -1):             # backward: z^l(k) uses phi(h^l(m <= k))
            past = (jnp.arange(hist) != k)[:, None] * dl
            phl = ph_hist[l, :hist]
            if responses:
                kern = c * gs_k[l] * past[:, None, :] + rb_k[l]
                z = jnp.einsum("mab,mb->a", kern, phl)
            else:
                z = c * jnp.einsum("mab,mb->a", gs_k[l], phl * past)
            zs[l] = r[l, k] + z
        g_now = jnp.stack([dphi(h) * z for h, z in zip(hs, zs, strict=True)])
        g_hist = jax.lax.dynamic_update_index_in_dim(g_hist, g_now, k, axis=1)
        w_new = w + c * jnp.dot(delta[k], ph_hist[-1, k])
        return (ph_hist, g_hist, w_new, acc + delta[k] * g_now[0]), w

    # Time in nb blocks: the steps of block j reach only the first (j + 1) (T+1) / nb history
    # rows, so the contractions skip most of the zero future ((nb + 1) / (2 nb) of the work;
    # one scan per block). Blocks of >= 8 steps, at most 8 (compile time grows with nb).
    zeros = jnp.zeros((depth, t1, q), u.dtype)
    carry, ws = (zeros, zeros, w0, jnp.zeros((q,), u.dtype)), []
    nb = max(1, min(_TIME_BLOCKS, t1 // 8))
    ends = [-(-t1 * (j + 1) // nb) for j in range(nb)]
    for lo, hi in zip([0] + ends[:-1], ends, strict=True):
        ks = jnp.arange(lo, hi)
        xs = (ks, phis[1:, lo:hi, :hi].swapaxes(0, 1), gs[:, lo:hi, :hi].swapaxes(0, 1),
              ra[:, lo:hi, :hi].swapaxes(0, 1), rb[:, lo:hi, :hi].swapaxes(0, 1))
        carry, w_blk = jax.lax.scan(lambda cr, x, hi=hi: step(cr, x[0], hi, *x[1:]), carry, xs)
        ws.append(w_blk)
    ph_hist, g_hist = carry[:2]
    return ph_hist, g_hist, jnp.concatenate(ws)


_TIME_BLOCKS = 8  # measured: P = 10, T = 100, n = 2000: 4.3 s per scan -> 2.7 s (4), 2.2 s (8)


def _chol(cov, jitter):
    n = cov.shape[0]
    scale = jnp.mean(jnp.diag(cov))
    return jnp.linalg.cholesky(cov + (jitter * scale + 1e-300) * jnp.eye(n, dtype=cov.dtype))


def _iteration(activation, state, noise, phi0, y, gamma0, eta, damping, jitter, responses, chunk):
    delta, phis, gs, ra, rb = state     # delta (T+1, P); phis (L, T+1, T+1, Q, Q) = Phi^1..L, ...
    xi_u, xi_r, w0 = noise              # (n, L, (T+1) Q), (n, L-1, (T+1) Q), (n,)
    depth, t1, _, q, _ = phis.shape
    p = y.shape[0]
    n = w0.shape[0]
    flat = lambda k: k.transpose(0, 2, 1, 3).reshape(t1 * q, t1 * q)  # noqa: E731
    # sources: u^1 static (Phi^0 tiled), u^l ~ GP(0, Phi^{l-1}), r^l ~ GP(0, G^{l+1})
    phi_all = jnp.concatenate([jnp.broadcast_to(phi0, (1, t1, t1, q, q)), phis[:-1]])
    lu = jnp.stack([_chol(flat(k), jitter) for k in phi_all[1:]]) if depth > 1 else None
    l0 = jnp.linalg.cholesky(phi0 + jitter * jnp.mean(jnp.diag(phi0)) * jnp.eye(q, dtype=y.dtype))
    u1 = jnp.broadcast_to((xi_u[:, 0, :q] @ l0.T)[:, None, :], (n, t1, q))
    us = [u1] + [(xi_u[:, l] @ lu[l - 1].T).reshape(n, t1, q) for l in range(1, depth)]
    lr = jnp.stack([_chol(flat(k), jitter) for k in gs[1:]])
    rs = jnp.stack([(xi_r[:, l] @ lr[l].T).reshape(n, t1, q) for l in range(depth - 1)], axis=1)
    u = jnp.stack(us, axis=1)                                       # (n, L, T+1, Q)
    dpad = jnp.concatenate([delta, jnp.zeros((t1, q - p), y.dtype)], axis=1)

    def site(u_, r_, w0_):
        return _single_site(activation, u_, r_, w0_, dpad, phi_all, gs[1:], ra, rb, gamma0, eta, p,
                            responses)

    ph, g, ws = jax.vmap(site)(u, rs, w0)                           # (n, L, T+1, Q), (n, T+1)
    new_phis = jnp.einsum("nltq,nlsr->ltsqr", ph, ph) / n
    new_gs = jnp.einsum("nltq,nlsr->ltsqr", g, g) / n
    prod = ws[:, :, None] * ph[:, -1]                               # (n, T+1, Q)
    f = jnp.mean(prod - prod[:, :1], axis=0) / gamma0               # (T+1, Q)
    new_delta = y - f[:, :p]
    if responses:
        def jac_one(args):
            u_, r_, w0_ = args
            fn = lambda uu, rr: site(u_.at[1:].set(uu), rr, w0_)[:2]  # noqa: E731
            (dph_du, dph_dr), (dg_du, dg_dr) = jax.jacfwd(fn, argnums=(0, 1))(u_[1:], r_)
            ra_ = jnp.stack([dph_dr[l, :, :, l] for l in range(depth - 1)])   # dphi^l / dr^l
            rb_ = jnp.stack([dg_du[l + 1, :, :, l] for l in range(depth - 1)])  # dg^{l+1}/du^{l+1}
            return ra_, rb_

        def body(acc, args):
            ra_, rb_ = jax.vmap(jac_one)(args)
            return (acc[0] + ra_.sum(0), acc[1] + rb_.sum(0)), None

        nb = n // chunk
        resh = lambda a: a[: nb * chunk].reshape((nb, chunk) + a.shape[1:])  # noqa: E731
        acc0 = (jnp.zeros_like(ra.transpose(0, 1, 3, 2, 4)),) * 2
        (sra, srb), _ = jax.lax.scan(body, acc0, (resh(u), resh(rs), resh(w0)))
        # (L-1, T+1, Q, T+1, Q) -> (L-1, T+1, T+1, Q, Q)
        new_ra = (sra / (nb * chunk)).transpose(0, 1, 3, 2, 4)
        new_rb = (srb / (nb * chunk)).transpose(0, 1, 3, 2, 4)
    else:
        new_ra, new_rb = ra, rb
    new = (new_delta, new_phis, new_gs, new_ra, new_rb)
    res = jnp.max(jnp.stack([jnp.max(jnp.abs(a - b)) for a, b in zip(new, state, strict=True)]))
    damped = jax.tree.map(lambda a, b: damping * a + (1 - damping) * b, new, state)
    return damped, res, (f, new_phis, new_gs)


_iteration_jit = jax.jit(_iteration, static_argnames=("responses", "chunk"))


@partial(jax.jit, static_argnames=("depth", "steps", "n_samples"))
def _start(xa, y, key, *, depth, steps, n_samples):
    """Input kernel, the fixed Gaussian noise (common random numbers) and the initial state."""
    q, t1, dt = xa.shape[0], steps + 1, y.dtype
    phi0 = xa @ xa.T / xa.shape[1]
    ku, kr, kw = jax.random.split(key, 3)
    noise = (jax.random.normal(ku, (n_samples, depth, t1 * q), dt),
             jax.random.normal(kr, (n_samples, depth - 1, t1 * q), dt),
             jax.random.normal(kw, (n_samples,), dt))
    zero_r = jnp.zeros((depth - 1, t1, t1, q, q), dt)
    lazy = (jnp.tile(y, (t1, 1)), jnp.broadcast_to(phi0, (depth, t1, t1, q, q)),
            jnp.ones((depth, t1, t1, q, q), dt), zero_r, zero_r)
    return phi0, noise, lazy


@partial(jax.jit, static_argnames=("p", "kernels"))
def _finish(f, phis, gs, phi0, y, eta, *, p, kernels):
    t1 = f.shape[0]
    phis, gs = phis[:, :, :, :p, :p], gs[:, :, :, :p, :p]
    eq = jnp.arange(t1)
    phi_tt, g_tt = phis[:, eq, eq], gs[:, eq, eq]
    ntk = phi_tt[-1] + g_tt[0] * phi0[:p, :p] + jnp.sum(g_tt[1:] * phi_tt[:-1], axis=0)
    if kernels == "equal_time":
        phis, gs = phi_tt, g_tt
    t = eta * jnp.arange(t1, dtype=y.dtype)
    return t, f[:, :p], y - f[:, :p], f[:, p:], phis, gs, ntk


def _extend(state, old, new):
    """The state for ``old`` steps extended to ``new`` (``_dmft.extend_in_time``)."""
    delta, phis, gs, ra, rb = state
    return ((extend_in_time(delta, (0,), new - old),)
            + tuple(extend_in_time(a, (1, 2), new - old) for a in (phis, gs, ra, rb)))


def solve_deep(x, y, x_test, activation, *, depth, gamma0, eta, steps, key, n_samples, responses,
               damping, tol, max_iter, jitter, progress, kernels):
    """Damped fixed-point iteration of the deep sampled DMFT (see the module docstring),
    continued in time over the horizons ``_dmft.schedule(steps)`` (each iterated to ``tol``, at
    most ``max_iter`` times): iterating over a long horizon at once can overshoot without bound."""
    if gamma0 == 0:
        raise ValueError("gamma0 = 0 with depth >= 2: the lazy limit is the NTK gradient flow; "
                         "use dynamics.gradient_descent_mse with kernels.analytic, or gamma0 > 0")
    p = x.shape[0]
    xa = x if x_test is None else jnp.concatenate([x, x_test])
    q = xa.shape[0]
    chunk = max(1, min(n_samples, 32))

    def start(horizon, previous):
        # fresh common random numbers per horizon; the previous solution, extended, as the start
        phi0, noise, lazy = _start(xa, y, key, depth=depth, steps=horizon, n_samples=n_samples)
        return (phi0, noise), lazy if previous is None else _extend(*previous, horizon)

    def sweep(consts, state, horizon):
        phi0, noise = consts
        return _iteration_jit(activation, state, noise, phi0, y, gamma0, eta, damping, jitter,
                              responses=responses, chunk=chunk)

    (phi0, _), _, out, residuals = iterate_in_time(steps, start, sweep, tol=tol,
                                                   max_iter=max_iter, progress=progress,
                                                   desc="dmft")
    t, f_tr, delta, f_te, phis, gs, ntk = _finish(*out, phi0, y, eta, p=p, kernels=kernels)
    return DMFTResult(t=t, f_train=f_tr, delta=delta, f_test=None if q == p else f_te,
                      phi=phis, g=gs, ntk=ntk,
                      residuals=np.asarray(residuals), converged=residuals[-1] < tol,
                      method="sampled" if responses else "gradient_independence")
