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

Given RA and RB, one causal sweep over time solves the rest exactly (``_sweep.sweep``: each
source is drawn conditioned on its own past). The responses are then the sample means of exact
per-sample Jacobians of the sweep's fields. Given the kernels the layers' single-site processes
are independent (each has its own sources u^l, r^l), so each layer's Jacobians come from its own
causal recursion, linearised, with one column per source direction, in time blocks
(``_forward``, ``_jacobians``): O(n (TP)^3 / 3) per layer. The outer iteration is a damped
fixed-point iteration on RA, RB alone; without them (gradient independence) one sweep is the
solution.

Outputs f(k) = <w(k) phi(h^L(k)) - w(0) phi(h^L(0))> / gamma0 (the exact infinite-width output of
gradient descent), so gamma0 > 0 is required here. Test points ride along with Delta = 0.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ._common import DMFTResult, derivative, extend_in_time, iterate_in_time
from ._sweep import sweep

__all__ = ["response_chunk", "solve_deep"]

_TIME_BLOCKS = 8   # at most; blocks of >= 8 steps (compile time grows with the block count)


def _blocks(t1):
    """Time blocks [lo, hi) covering steps 0..t1-1."""
    nb = max(1, min(_TIME_BLOCKS, t1 // 8))
    ends = [-(-t1 * (j + 1) // nb) for j in range(nb)]
    return list(zip([0] + ends[:-1], ends, strict=True))


def _forward(kh, kz, dl, blocks, widths, source, pointwise, coef):
    """Forward substitution in time of one layer's linearised single-site equations, many
    columns at once:

        h(k) = sh(k) + sum_{m<k} Kh(k, m) g(m),      phi(k) = pointwise[0](c(k), h(k)),
        z(k) = sz(k) + sum_{m<=k} Kz(k, m) phi(m),   g(k) = pointwise[1](c(k), h(k), z(k)).

    The columns are source directions (of one or several samples).
    Kh, Kz: (T+1, T+1, Q, Q) [k, m, a, b], zero where they do not reach; a (Q, Q) matrix M
    instead stands for the time-invariant M diag(dl(m)) [m < k], a running sum. ``source(k, w)``
    gives (sh, sz), (Q, w) each; ``coef``: arrays with a leading time axis, sliced per step.

    Time runs in ``blocks`` [lo, hi); block j has ``widths[j]`` active columns (a prefix of the
    next block's: later columns are still zero). The earlier blocks enter a block through one
    matrix product each, before its steps; the steps, a scan, only contract the block itself.
    Returns per block the histories (phi, g), each (hi - lo, Q, widths[j]).
    """
    q = dl.shape[1]
    out = []
    acc = (jnp.zeros((q, widths[0]), dl.dtype),) * 2     # sum_{m<k} dl(m) g(m), ... phi(m)
    for j, ((lo, hi), w) in enumerate(zip(blocks, widths, strict=True)):
        far = [jnp.zeros((hi - lo, q, w), dl.dtype), jnp.zeros((hi - lo, q, w), dl.dtype)]
        for i in range(j):
            (plo, phi_), wi = blocks[i], widths[i]
            for f, (kern, hist) in enumerate(((kh, out[i][1]), (kz, out[i][0]))):
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
            return (ph_b, g_b, acc_g + dl[k][:, None] * g, acc_p + dl[k][:, None] * ph), None

        blk = jnp.zeros((hi - lo, q, w), dl.dtype)
        xs = (jnp.arange(lo, hi), far[0], far[1], near[0], near[1],
              jax.tree.map(lambda a, lo=lo, hi=hi: a[lo:hi], coef))
        (ph_b, g_b, *acc), _ = jax.lax.scan(step, (blk, blk) + acc, xs)
        acc = tuple(acc)
        out.append((ph_b, g_b))
    return out


def _second(activation):
    """(phi'(h), phi''(h)) of an activation spec, by forward-mode jax."""
    dphi = derivative(activation)

    def d12(h):
        return jax.jvp(dphi, (h,), (jnp.ones_like(h),))
    return d12


def _layer_kernels(state, phi0, dl, c):
    """(Kh, Kz) per layer for ``_forward``: Kh^l = c Phi^{l-1} diag(Delta) [m < k] + RA^{l-1},
    Kz^l = c G^{l+1} diag(Delta) [m < k] + RB^l; the first layer's Kh (Phi^0 is constant) and the
    last layer's Kz (z^L = w) are time-invariant (Q, Q) matrices."""
    _, phis, gs, ra, rb = state
    depth, t1, _, q, _ = phis.shape
    weight = c * jnp.tri(t1, k=-1, dtype=dl.dtype)[:, :, None, None] * dl[None, :, None, :]
    kh = [c * phi0] + [phis[j - 1] * weight + ra[j - 1] for j in range(1, depth)]
    kz = [gs[j + 1] * weight + rb[j] for j in range(depth - 1)]
    return list(zip(kh, kz + [c * jnp.ones((q, q), dl.dtype)], strict=True))


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
        for (lo, hi), (ph, g) in zip(blocks, out, strict=True):
            pick = jnp.stack([a.reshape(hi - lo, q, hi * q, chunk, nt)[..., i].sum(-1)
                              for a, i in ((ph, ir), (g, iu)) if i >= 0])
            sums.append(jnp.pad(pick, ((0, 0), (0, 0), (0, 0), (0, (t1 - hi) * q))))
        return total + jnp.concatenate(sums, axis=1), None

    coefs = tuple(a.reshape(t1, q, n // chunk, chunk).transpose(2, 0, 1, 3) for a in (a1, a2))
    total, _ = jax.lax.scan(one_chunk, jnp.zeros((nt, t1, q, t1 * q), dl.dtype), coefs)
    # (nt, T+1, Q, (T+1) Q) [., k, a, (m, b)] -> (nt, T+1, T+1, Q, Q) [., k, m, a, b]
    mean = list((total / n).reshape(nt, t1, q, t1, q).transpose(0, 1, 3, 2, 4))
    return (mean.pop(0) if ir >= 0 else None), (mean.pop(0) if iu >= 0 else None)


def _responses(activation, state, phi0, fields, c, chunk):
    """RA^1..RA^{L-1}, RB^1..RB^{L-1}, (L-1, T+1, T+1, Q, Q): the sample means of every
    layer's Jacobians at the fields h, z (L, T+1, Q, n) of the sweep that ``state`` came from."""
    delta, phis = state[0], state[1]
    depth, t1, q = phis.shape[0], phis.shape[1], phis.shape[3]
    dl = jnp.concatenate([delta, jnp.zeros((t1, q - delta.shape[1]), delta.dtype)], axis=1)
    blocks = _blocks(t1)
    d12 = _second(activation)
    ra, rb = [], []
    for l, (kh, kz) in enumerate(_layer_kernels(state, phi0, dl, c)):
        d1, d2 = d12(fields["h"][l])
        types = ("u",) * (l > 0) + ("r",) * (l < depth - 1)
        dphi_dr, dg_du = _jacobians(kh, kz, dl, blocks, d1, d2 * fields["z"][l], types, chunk)
        ra += [dphi_dr] * (l < depth - 1)
        rb += [dg_du] * (l > 0)
    return jnp.stack(ra), jnp.stack(rb)


def _iteration(activation, state, noise, phi0, y, gamma0, eta, damping, jitter, responses, chunk):
    """One causal sweep (``_sweep.sweep``) with the current responses, then (with ``responses``)
    the responses of its fields, damped: ra <- a RA_new + (1 - a) ra. The sweep solves Delta,
    Phi and G exactly, so without responses one iteration is the solution (residual 0)."""
    ra, rb = state[3], state[4]
    fields = sweep(activation, noise, phi0, y, ra, rb, gamma0, eta, jitter)
    new = (fields["delta"], fields["phi"], fields["g"], ra, rb)
    if not responses:
        return new, jnp.zeros((), y.dtype), (fields["f"], fields["phi"], fields["g"])
    new_ra, new_rb = _responses(activation, new, phi0, fields, gamma0 * eta / y.shape[0], chunk)
    new = new[:3] + (new_ra, new_rb)
    res = jnp.max(jnp.stack([jnp.max(jnp.abs(a - b)) for a, b in zip(new, state, strict=True)]))
    damped = new[:3] + (damping * new_ra + (1 - damping) * ra, damping * new_rb + (1 - damping) * rb)
    return damped, res, (fields["f"], fields["phi"], fields["g"])


_iteration_jit = jax.jit(_iteration, static_argnames=("responses", "chunk"))


@partial(jax.jit, static_argnames=("depth", "steps", "n_samples"))
def _start(xa, y, key, *, depth, steps, n_samples):
    """Input kernel and the fixed Gaussian noise (common random numbers) for ``steps``; a shorter
    horizon uses its first time rows (``_horizon``), so its sources are the same."""
    q, t1, dt = xa.shape[0], steps + 1, y.dtype
    phi0 = xa @ xa.T / xa.shape[1]
    ku, kr, kw = jax.random.split(key, 3)
    noise = (jax.random.normal(ku, (n_samples, depth, t1 * q), dt),
             jax.random.normal(kr, (n_samples, depth - 1, t1 * q), dt),
             jax.random.normal(kw, (n_samples,), dt))
    return phi0, noise


def _horizon(phi0, noise, y, depth, horizon):
    """The noise of the first ``horizon`` steps, and the lazy initial state for them."""
    q, t1, dt = phi0.shape[0], horizon + 1, y.dtype
    noise = (noise[0][:, :, : t1 * q], noise[1][:, :, : t1 * q], noise[2])
    zero_r = jnp.zeros((depth - 1, t1, t1, q, q), dt)
    lazy = (jnp.tile(y, (t1, 1)), jnp.broadcast_to(phi0, (depth, t1, t1, q, q)),
            jnp.ones((depth, t1, t1, q, q), dt), zero_r, zero_r)
    return noise, lazy


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
    """The state for ``old`` steps extended to ``new`` (``extend_in_time``)."""
    delta, phis, gs, ra, rb = state
    return ((extend_in_time(delta, (0,), new - old),)
            + tuple(extend_in_time(a, (1, 2), new - old) for a in (phis, gs, ra, rb)))


def solve_deep(x, y, x_test, activation, *, depth, gamma0, eta, steps, key, n_samples, responses,
               damping, tol, max_iter, jitter, progress, kernels):
    """The deep sampled DMFT (see the module docstring). Without responses one causal sweep
    solves it. With them, the responses are iterated (damped) to ``tol``, continued in time over
    the horizons ``_common.schedule(steps)`` (at most ``max_iter`` iterations each), with the same
    noise on every horizon, so the steps already solved stay solved."""
    if gamma0 == 0:
        raise ValueError("dynamics.dmft: gamma0 = 0 with depth >= 2: the lazy limit is the NTK "
                         "gradient flow; use dynamics.gradient_descent_mse with kernels.analytic, "
                         "or gamma0 > 0")
    p = x.shape[0]
    xa = x if x_test is None else jnp.concatenate([x, x_test])
    q = xa.shape[0]
    phi0, noise = _start(xa, y, key, depth=depth, steps=steps, n_samples=n_samples)

    def start(horizon, previous):
        # the previous solution, extended in time, as the start
        part, lazy = _horizon(phi0, noise, y, depth, horizon)
        return part, lazy if previous is None else _extend(*previous, horizon)

    def step(part, state, horizon):
        chunk = response_chunk(n_samples, horizon + 1, q, itemsize=y.dtype.itemsize)
        return _iteration_jit(activation, state, part, phi0, y, gamma0, eta, damping, jitter,
                              responses=responses, chunk=chunk)

    _, _, out, residuals = iterate_in_time(steps, start, step, tol=tol, max_iter=max_iter,
                                           progress=progress, desc="dmft",
                                           horizons=None if responses else [steps])
    t, f_tr, delta, f_te, phis, gs, ntk = _finish(*out, phi0, y, eta, p=p, kernels=kernels)
    return DMFTResult(t=t, f_train=f_tr, delta=delta, f_test=None if q == p else f_te,
                      phi=phis, g=gs, ntk=ntk,
                      residuals=np.asarray(residuals), converged=residuals[-1] < tol,
                      method="sampled" if responses else "gradient_independence")
