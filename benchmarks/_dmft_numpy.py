"""NumPy transcriptions of the DMFT solvers timed by ``benchmarks/dmft.py``.

Straightforward vectorised NumPy (samples as the batch axis), the same algorithms, iteration
counts and sample counts as ``widelimits.dynamics.dmft``:

* ``two_layer_sweep``: the causal sweep of the two-layer DMFT (what ``dmft`` runs for a
  depth-1 ``nets.meanfield_mlp``).
* ``two_layer_damped``: the classic damped fixed-point iteration on Delta(t) with the Euler
  update dDelta = -eta K(t) Delta / P and fresh samples every iteration, as in the theory note.
* ``deep_gradient_independence``: one outer iteration of the deep sampled DMFT without response
  functions (Cholesky of the TP x TP covariances, forward substitution in time).
"""

from __future__ import annotations

import numpy as np


def relu(h):
    return np.maximum(h, 0.0)


def relu_prime(h):
    return (h > 0).astype(h.dtype)


def two_layer_sweep(x, y, gamma0, eta, steps, n_samples, seed=0, phi=relu, dphi=relu_prime):
    """Causal sweep for L = 1: returns f (T+1, P) and the NTK K(t, t) (T+1, P, P)."""
    rng = np.random.default_rng(seed)
    p, d = x.shape
    k0 = x @ x.T / d
    evals, evecs = np.linalg.eigh(k0)
    h = rng.standard_normal((n_samples, p)) @ (evecs * np.sqrt(np.clip(evals, 0, None))).T
    w = rng.standard_normal(n_samples)
    f = np.zeros(p)
    fs, ks = [f], []
    for _ in range(steps):
        delta = y - f
        ph, dp = phi(h), dphi(h)
        g = w[:, None] * dp
        ks.append((ph.T @ ph + (g.T @ g) * k0) / n_samples)
        c = (eta / p) * (g * delta) @ k0
        dw = (eta / p) * ph @ delta
        h_new = h + gamma0 * c
        ph_new = phi(h_new)
        df = (dw @ ph_new + w @ ((ph_new - ph) / gamma0)) / n_samples
        h, w, f = h_new, w + gamma0 * dw, f + df
        fs.append(f)
    ph, g = phi(h), w[:, None] * dphi(h)
    ks.append((ph.T @ ph + (g.T @ g) * k0) / n_samples)
    return np.array(fs), np.array(ks)


def two_layer_damped(x, y, gamma0, eta, steps, n_samples, iters=15, damping=0.6, seed=0,
                     phi=relu, dphi=relu_prime):
    """Damped fixed-point iteration on Delta(t) (fresh samples each iteration)."""
    rng = np.random.default_rng(seed)
    p, d = x.shape
    k0 = x @ x.T / d
    evals, evecs = np.linalg.eigh(k0)
    root = (evecs * np.sqrt(np.clip(evals, 0, None))).T
    delta = np.tile(y, (steps + 1, 1))
    for _ in range(iters):
        h = rng.standard_normal((n_samples, p)) @ root
        w = rng.standard_normal(n_samples)
        ks = []
        for k in range(steps + 1):
            ph, g = phi(h), w[:, None] * dphi(h)
            ks.append((ph.T @ ph + (g.T @ g) * k0) / n_samples)
            if k < steps:
                h, w = (h + gamma0 * (eta / p) * (g * delta[k]) @ k0,
                        w + gamma0 * (eta / p) * ph @ delta[k])
        new = np.empty_like(delta)
        new[0] = y
        for k in range(steps):
            new[k + 1] = new[k] - (eta / p) * ks[k] @ new[k]
        delta = damping * new + (1 - damping) * delta
    return y - delta


def deep_gradient_independence(x, y, gamma0, eta, steps, n_samples, depth, phis, gs, delta,
                               seed=0, jitter=1e-10, phi=np.tanh,
                               dphi=lambda h: 1 - np.tanh(h) ** 2):
    """One outer iteration of the deep DMFT without responses. phis: (L, T+1, T+1, P, P) =
    Phi^1..L, gs = G^1..L (current estimates), delta (T+1, P). Returns new Phi, G, f."""
    rng = np.random.default_rng(seed)
    p, d = x.shape
    t1 = steps + 1
    k0 = x @ x.T / d
    c = gamma0 * eta / p
    flat = lambda k: k.transpose(1, 0, 2).reshape(t1 * p, t1 * p) if k.ndim == 3 else \
        k.transpose(0, 2, 1, 3).reshape(t1 * p, t1 * p)  # noqa: E731
    phi_all = [np.broadcast_to(k0, (t1, t1, p, p))] + list(phis[:-1])
    us = []
    for l in range(depth):
        cov = flat(phi_all[l])
        chol = np.linalg.cholesky(cov + jitter * np.mean(np.diag(cov)) * np.eye(t1 * p))
        us.append((rng.standard_normal((n_samples, t1 * p)) @ chol.T).reshape(n_samples, t1, p))
    rs = []
    for l in range(depth - 1):
        cov = flat(gs[l + 1])
        chol = np.linalg.cholesky(cov + jitter * np.mean(np.diag(cov)) * np.eye(t1 * p))
        rs.append((rng.standard_normal((n_samples, t1 * p)) @ chol.T).reshape(n_samples, t1, p))
    w = rng.standard_normal(n_samples)
    w0 = w.copy()
    ph_hist = np.zeros((depth, n_samples, t1, p))
    g_hist = np.zeros((depth, n_samples, t1, p))
    for k in range(t1):
        for l in range(depth):
            dg = g_hist[l] * delta                                   # (n, T+1, P)
            h = us[l][:, k] + c * np.einsum("mab,nmb->na", phi_all[l][k], dg)
            ph_hist[l, :, k] = phi(h)
            if l == depth - 1:
                g_hist[l, :, k] = dphi(h) * w[:, None]
            else:
                g_hist[l, :, k] = dphi(h)            # times z below
        for l in range(depth - 2, -1, -1):
            past = ph_hist[l].copy()
            past[:, k] = 0.0
            z = rs[l][:, k] + c * np.einsum("mab,nmb->na", gs[l + 1][k], past * delta)
            g_hist[l, :, k] *= z
        w = w + c * ph_hist[-1, :, k] @ delta[k]
        if k == 0:
            ws = [w0]
        ws.append(w)
    ws = np.array(ws[:t1])                                           # (T+1, n)
    prod = ws.T[:, :, None] * ph_hist[-1]
    f = np.mean(prod - prod[:, :1], axis=0) / gamma0
    new_phis = np.einsum("lntq,lnsr->ltsqr", ph_hist, ph_hist) / n_samples
    new_gs = np.einsum("lntq,lnsr->ltsqr", g_hist, g_hist) / n_samples
    return new_phis, new_gs, f
