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
(g^{l+1}(k) depends on h^{l+1}(k)). ``responses=False`` is the *gradient-independence
approximation* (RA = RB = 0): not the DMFT, cheap.

Given the order parameters, the layers' single-site processes are independent (each has its own
sources u^l, r^l), so each layer is solved on its own by forward substitution in time
(``_forward``), for all samples at once. The responses are the sample means of exact
per-sample Jacobians: the same causal recursion, linearised, with one column per source
direction (``_jacobians``): O(n (TP)^3 / 3) per layer and iteration.

Outputs f(k) = <w(k) phi(h^L(k)) - w(0) phi(h^L(0))> / gamma0 (the exact infinite-width output of
gradient descent), so gamma0 > 0 is required here. Test points ride along with Delta = 0.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ._dmft import DMFTResult, derivative, extend_in_time, iterate_in_time

_TIME_BLOCKS = 8   # at most; blocks of >= 8 steps (compile time grows with the block count)


def _blocks(t1):
    """Time blocks [lo, hi) covering steps 0..t1-1."""
    nb = max(1, min(_TIME_BLOCKS, t1 // 8))
    ends = [-(-t1 * (j + 1) // nb) for j in range(nb)]
    return list(zip([0] + ends[:-1], ends, strict=True))


def _forward(kh, kz, dl, blocks, widths, source, pointwise, coef=None):
    """Forward substitution in time of one layer's single-site equations, many columns at once:

        h(k) = sh(k) + sum_{m<k} Kh(k, m) g(m),      phi(k) = pointwise[0](c(k), h(k)),
        z(k) = sz(k) + sum_{m<=k} Kz(k, m) phi(m),   g(k) = pointwise[1](c(k), h(k), z(k)).

    The columns are the samples (the fields) or the source directions (their Jacobians).
    Kh, Kz: (T+1, T+1, Q, Q) [k, m, a, b], zero where they do not reach; a (Q, Q) matrix M
    instead stands for the time-invariant M diag(dl(m)) [m < k], a running sum. ``source(k, w)``
    gives (sh, sz), (Q, w) each; ``coef``: arrays with a leading time axis, sliced per step.

    Time runs in ``blocks`` [lo, hi); block j has ``widths[j]`` active columns (a prefix of the
    next block's: later columns are still zero). The earlier blocks enter a block through one
    matrix product each, before its steps; the steps, a scan, only contract the block itself.
    Returns per block the histories (h, z, phi, g), each (hi - lo, Q, widths[j]).
    """
    q = dl.shape[1]
    out = []
    acc = (jnp.zeros((q, widths[0]), dl.dtype),) * 2     # sum_{m<k} dl(m) g(m), ... phi(m)
    for j, ((lo, hi), w) in enumerate(zip(blocks, widths, strict=True)):
        far = [jnp.zeros((hi - lo, q, w), dl.dtype), jnp.zeros((hi - lo, q, w), dl.dtype)]
        for i in range(j):
            (plo, phi_), wi = blocks[i], widths[i]
            for f, (kern, hist) in enumerate(((kh, out[i][3]), (kz, out[i][2]))):
                if kern.ndim == 4:
                    far[f] = far[f].at[..., :wi].add(
                        jnp.einsum("kmab,mbc->kac", kern[lo:hi, plo:phi_], hist))
        acc = tuple(jnp.pad(a, ((0, 0), (0, w - a.shape[1]))) for a in acc)
        near = [kern[lo:hi, lo:hi] if kern.ndim == 4 else None for kern in (kh, kz)]

        def step(carry, x, lo=lo, w=w):
            ph_b, g_b, acc_g, acc_p = carry                 # (B, Q, w), (B, Q, w), (Q, w), (Q, w)
            k, far_h, far_z, kh_k, kz_k, c = x
            sh, sz = source(k, w)
            h = sh + far_h + (jnp.einsum("mab,mbc->ac", kh_k, g_b) if kh.ndim == 4
                              else kh @ acc_g)
            ph = pointwise[0](c, h)
            ph_b = jax.lax.dynamic_update_index_in_dim(ph_b, ph, k - lo, 0)
            z = sz + far_z + (jnp.einsum("mab,mbc->ac", kz_k, ph_b) if kz.ndim == 4
                              else kz @ acc_p)
            g = pointwise[1](c, h, z)
            g_b = jax.lax.dynamic_update_index_in_dim(g_b, g, k - lo, 0)
            return (ph_b, g_b, acc_g + dl[k][:, None] * g, acc_p + dl[k][:, None] * ph), (h, z)

        blk = jnp.zeros((hi - lo, q, w), dl.dtype)
        xs = (jnp.arange(lo, hi), far[0], far[1], near[0], near[1],
              None if coef is None else jax.tree.map(lambda a, lo=lo, hi=hi: a[lo:hi], coef))
        (ph_b, g_b, *acc), (h, z) = jax.lax.scan(step, (blk, blk) + acc, xs)
        acc = tuple(acc)
        out.append((h, z, ph_b, g_b))
    return out


def _second(activation):
    """(phi'(h), phi''(h)) of an activation spec, by forward-mode jax."""
    dphi = derivative(activation)

    def d12(h):
        return jax.jvp(dphi, (h,), (jnp.ones_like(h),))
    return d12


def _layer_kernels(state, phi0, dl, c, responses):
    """(Kh, Kz) per layer for ``_forward``: Kh^l = c Phi^{l-1} diag(Delta) [m < k] + RA^{l-1},
    Kz^l = c G^{l+1} diag(Delta) [m < k] + RB^l; the first layer's Kh (Phi^0 is constant) and the
    last layer's Kz (z^L = w) are time-invariant (Q, Q) matrices."""
    _, phis, gs, ra, rb = state
    depth, t1, _, q, _ = phis.shape
    weight = c * jnp.tri(t1, k=-1, dtype=dl.dtype)[:, :, None, None] * dl[None, :, None, :]
    kh = [c * phi0] + [phis[j - 1] * weight + (ra[j - 1] if responses else 0)
                       for j in range(1, depth)]
    kz = [gs[j + 1] * weight + (rb[j] if responses else 0) for j in range(depth - 1)]
    return list(zip(kh, kz + [c * jnp.ones((q, q), dl.dtype)], strict=True))


def _fields(activation, kh, kz, dl, blocks, u, r):
    """One layer's fields for all samples: u, r (T+1, Q, n) sources (u (Q, n) if constant in
    time, r (n,) for z^L = w(0)). Returns h, z, phi(h), g histories, (T+1, Q, n) each."""
    q, n = dl.shape[1], u.shape[-1]
    dphi = derivative(activation)

    def source(k, w):
        sh = u if u.ndim == 2 else u[k]
        return sh, jnp.broadcast_to(r, (q, n)) if r.ndim == 1 else r[k]

    pointwise = (lambda _, h: activation.fn(h), lambda _, h, z: dphi(h) * z)
    out = _forward(kh, kz, dl, blocks, [n] * len(blocks), source, pointwise)
    return [jnp.concatenate(a) for a in zip(*out, strict=True)]


def response_chunk(n, t1, q, n_types=2, budget=2**30, itemsize=8):
    """Samples per chunk of the Jacobian pass: the largest divisor of n whose tangent
    histories, about 6 (T+1)Q x (T+1)Q n_types per sample, fit ``budget`` bytes (at least 1)."""
    per = 6 * (t1 * q) ** 2 * n_types * itemsize
    top = max(1, min(n, 64, budget // per))
    return max(b for b in range(1, top + 1) if n % b == 0)


def _jacobians(kh, kz, dl, blocks, a1, a2, types, chunk):
    """Sample means of one layer's exact Jacobians d phi(h(k)) / d r(m) (if "r" in ``types``,
    else None) and d g(k) / d u(m) (if "u"), (T+1, T+1, Q, Q) [k, m, a, b] each, by the
    linearised recursion

        dh = du + Kh dg,  dphi = phi'(h) dh,  dz = dr + Kz dphi,  dg = phi''(h) z dh + phi'(h) dz

    (``_forward`` with one column per sample, source type and source (m, b); a1 = phi'(h),
    a2 = phi''(h) z: (T+1, Q, n)). Columns are ordered (m, b), sample, type, so a block's
    active columns (sources m < hi; the rest are zero by causality) are a prefix."""
    t1, q, n = a1.shape
    nt = len(types)
    widths = [hi * q * chunk * nt for _, hi in blocks]
    iu, ir = (types.index(s) if s in types else -1 for s in ("u", "r"))
    per_q = jnp.arange(q)[:, None]

    def source(k, w):
        col = jnp.arange(w)[None, :]
        hit = col // (chunk * nt) == k * q + per_q
        kind = col % nt
        return (hit & (kind == iu)).astype(dl.dtype), (hit & (kind == ir)).astype(dl.dtype)

    def split(x):                                       # (Q, w) -> (Q, w / (chunk nt), chunk, nt)
        return x.reshape(q, -1, chunk, nt)

    pointwise = (
        lambda c, dh: (c[0][:, None, :, None] * split(dh)).reshape(dh.shape),
        lambda c, dh, dz: (c[1][:, None, :, None] * split(dh)
                           + c[0][:, None, :, None] * split(dz)).reshape(dh.shape))

    def one_chunk(total, coef):
        out = _forward(kh, kz, dl, blocks, widths, source, pointwise, coef)
        sums = []
        for (lo, hi), (_, _, ph, g) in zip(blocks, out, strict=True):
            pick = jnp.stack([a.reshape(hi - lo, q, hi * q, chunk, nt)[..., i].sum(-1)
                              for a, i in ((ph, ir), (g, iu)) if i >= 0])
            sums.append(jnp.pad(pick, ((0, 0), (0, 0), (0, 0), (0, (t1 - hi) * q))))
        return total + jnp.concatenate(sums, axis=1), None

    coefs = tuple(a.reshape(t1, q, n // chunk, chunk).transpose(2, 0, 1, 3) for a in (a1, a2))
    total, _ = jax.lax.scan(one_chunk, jnp.zeros((nt, t1, q, t1 * q), dl.dtype), coefs)
    # (nt, T+1, Q, (T+1) Q) [., k, a, (m, b)] -> (nt, T+1, T+1, Q, Q) [., k, m, a, b]
    mean = list((total / n).reshape(nt, t1, q, t1, q).transpose(0, 1, 3, 2, 4))
    return (mean.pop(0) if ir >= 0 else None), (mean.pop(0) if iu >= 0 else None)


def _chol(cov, jitter):
    n = cov.shape[0]
    scale = jnp.mean(jnp.diag(cov))
    return jnp.linalg.cholesky(cov + (jitter * scale + 1e-300) * jnp.eye(n, dtype=cov.dtype))


def _sources(state, noise, phi0, jitter):
    """The layers' Gaussian sources from the fixed noise, (T+1, Q, n) each: u^1 (Q, n), static,
    ~ N(0, Phi^0); u^l ~ GP(0, Phi^{l-1}); r^l ~ GP(0, G^{l+1}); and r^L = w(0), (n,)."""
    _, phis, gs, _, _ = state
    xi_u, xi_r, w0 = noise              # (n, L, (T+1) Q), (n, L-1, (T+1) Q), (n,)
    depth, t1, _, q, _ = phis.shape
    n = w0.shape[0]
    flat = lambda k: k.transpose(0, 2, 1, 3).reshape(t1 * q, t1 * q)  # noqa: E731
    l0 = jnp.linalg.cholesky(phi0 + jitter * jnp.mean(jnp.diag(phi0)) * jnp.eye(q, dtype=w0.dtype))
    us = [l0 @ xi_u[:, 0, :q].T] + [
        (_chol(flat(phis[l - 1]), jitter) @ xi_u[:, l].T).reshape(t1, q, n)
        for l in range(1, depth)]
    rs = [(_chol(flat(gs[l + 1]), jitter) @ xi_r[:, l].T).reshape(t1, q, n)
          for l in range(depth - 1)] + [w0]
    return us, rs


def _layers(activation, state, phi0, us, rs, dl, c, responses, chunk):
    """Every layer's fields and (with ``responses``) its Jacobians' means. Returns phi(h) and g
    histories (L, T+1, Q, n), w(k) (T+1, n), RA^1..RA^{L-1} and RB^1..RB^{L-1} (or None)."""
    depth = state[1].shape[0]
    blocks = _blocks(dl.shape[0])
    d12 = _second(activation)
    ph, g, ra, rb = [], [], [], []
    for l, (kh, kz) in enumerate(_layer_kernels(state, phi0, dl, c, responses)):
        h, z, ph_l, g_l = _fields(activation, kh, kz, dl, blocks, us[l], rs[l])
        ph.append(ph_l)
        g.append(g_l)
        if responses:
            types = ("u",) * (l > 0) + ("r",) * (l < depth - 1)
            d1, d2 = d12(h)
            dphi_dr, dg_du = _jacobians(kh, kz, dl, blocks, d1, d2 * z, types, chunk)
            ra += [dphi_dr] * (l < depth - 1)
            rb += [dg_du] * (l > 0)
    out = (jnp.stack(ra), jnp.stack(rb)) if responses else (None, None)
    return (jnp.stack(ph), jnp.stack(g), z[:, 0]) + out


def _iteration(activation, state, noise, phi0, y, gamma0, eta, damping, jitter, responses, chunk):
    delta, phis, gs, ra, rb = state     # delta (T+1, P); phis (L, T+1, T+1, Q, Q) = Phi^1..L, ...
    t1, q = phis.shape[1], phis.shape[3]
    p, n = y.shape[0], noise[2].shape[0]
    us, rs = _sources(state, noise, phi0, jitter)
    dl = jnp.concatenate([delta, jnp.zeros((t1, q - p), y.dtype)], axis=1)
    ph, g, ws, new_ra, new_rb = _layers(activation, state, phi0, us, rs, dl, gamma0 * eta / p,
                                        responses, chunk)
    new_phis = jnp.einsum("ltqn,lsrn->ltsqr", ph, ph) / n
    new_gs = jnp.einsum("ltqn,lsrn->ltsqr", g, g) / n
    prod = ws[:, None] * ph[-1]                                     # (T+1, Q, n)
    f = jnp.mean(prod - prod[:1], axis=-1) / gamma0                 # (T+1, Q)
    new_delta = y - f[:, :p]
    new = (new_delta, new_phis, new_gs) + ((new_ra, new_rb) if responses else (ra, rb))
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

    def start(horizon, previous):
        # fresh common random numbers per horizon; the previous solution, extended, as the start
        phi0, noise, lazy = _start(xa, y, key, depth=depth, steps=horizon, n_samples=n_samples)
        return (phi0, noise), lazy if previous is None else _extend(*previous, horizon)

    def sweep(consts, state, horizon):
        phi0, noise = consts
        chunk = response_chunk(n_samples, horizon + 1, q, itemsize=y.dtype.itemsize)
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
