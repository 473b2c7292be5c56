"""DMFT of two-layer (depth 1) mean-field networks: one causal sweep over time, all samples at once.

Bordelon & Pehlevan 2022 (arXiv 2205.09653), Sec. 4 (two-layer networks). With one hidden layer
the only order parameter that couples the single-site processes is the error Delta(t), and it
is causal: the fields at step k+1 depend on Delta(m <= k) only. One pass over time, all
``n_samples`` single-site processes in lockstep, therefore solves the fixed point exactly, with
no outer iteration. The output increment is the exact infinite-width one,
``f(t_{k+1}) - f(t_k) = <w(t_{k+1}) phi(h(t_{k+1})) - w(t_k) phi(h(t_k))> / gamma0``, so a width-N
network trained by gradient descent approaches it with no O(eta) bias; as gamma0 -> 0 it becomes
``Delta_{k+1} = (I - eta K / P) Delta_k`` (discrete kernel gradient descent, K the NTK at t = 0).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ._common import DMFTResult, derivative

__all__ = ["solve_two_layer"]


def _two_layer_sweep(activation, phi0, y, xi, w0, gamma0, eta, steps, full=True):
    """One causal sweep over time for L = 1 (all samples at once).

    phi0: (P+Q, P+Q) input kernel, first P rows the training points; xi: (n, P+Q) static
    preactivations u ~ N(0, phi0); w0: (n,) readout weights at t = 0.
    """
    p = y.shape[0]
    g0 = jnp.asarray(gamma0, y.dtype)
    g0_safe = jnp.where(g0 == 0, 1.0, g0)
    n = xi.shape[0]

    def step(carry, _):
        h, w, f = carry                                   # (n, P+Q), (n,), (P+Q,)
        delta = y - f[:p]
        ph, dp = jax.jvp(activation.fn, (h,), (jnp.ones_like(h),))
        g = w[:, None] * dp                               # (n, P+Q)
        c = (eta / p) * (g[:, :p] * delta) @ phi0[:p]     # dh / gamma0, (n, P+Q)
        dw = (eta / p) * ph[:, :p] @ delta                # dw / gamma0, (n,)
        h_new = h + g0 * c
        ph_new = activation.fn(h_new)
        dph = jnp.where(g0 == 0, dp * c, (ph_new - ph) / g0_safe)
        df = (dw @ ph_new + w @ dph) / n                  # exact infinite-width increment
        pp, gg = ph[:, :p].T @ ph[:, :p] / n, g[:, :p].T @ g[:, :p] / n
        k_tt = pp + gg * phi0[:p, :p]
        hist = (ph[:, :p], g[:, :p]) if full else (pp, gg)
        return (h_new, w + g0 * dw, f + df), (f, *hist, k_tt)

    f0 = jnp.zeros(xi.shape[1], y.dtype)
    (h, w, f), (fs, phs, gs, ks) = jax.lax.scan(step, (xi, w0, f0), None, length=steps,
                                                unroll=2)
    ph, g = activation.fn(h)[:, :p], w[:, None] * derivative(activation)(h)[:, :p]
    k_last = (ph.T @ ph + (g.T @ g) * phi0[:p, :p]) / n
    if not full:
        ph, g = ph.T @ ph / n, g.T @ g / n
    fs = jnp.concatenate([fs, f[None]])
    phs = jnp.concatenate([phs, ph[None]])
    gs = jnp.concatenate([gs, g[None]])
    ks = jnp.concatenate([ks, k_last[None]])
    return fs, phs, gs, ks


@partial(jax.jit, static_argnames=("steps", "n_samples", "kernels"))
def _two_layer_program(activation, xa, y, key, gamma0, eta, *, steps, n_samples, kernels):
    """Sampling, the causal sweep and the kernels, as one compiled program."""
    phi0 = xa @ xa.T / xa.shape[1]
    evals, evecs = jnp.linalg.eigh(phi0)
    root = evecs * jnp.sqrt(jnp.clip(evals, 0, None))
    k1, k2 = jax.random.split(key)
    xi = jax.random.normal(k1, (n_samples, xa.shape[0]), xa.dtype) @ root.T
    w0 = jax.random.normal(k2, (n_samples,), xa.dtype)
    full = kernels == "full"
    fs, phi, g, ks = _two_layer_sweep(activation, phi0, y, xi, w0, gamma0, eta, steps, full)
    if full:
        n = n_samples
        phi, g = jnp.einsum("tnp,snq->tspq", phi, phi) / n, jnp.einsum("tnp,snq->tspq", g, g) / n
    return fs, phi, g, ks


def solve_two_layer(x, y, x_test, activation, *, gamma0, eta, steps, key, n_samples, kernels):
    """The two-layer DMFT (module docstring) for checked arguments; ``gamma0 >= 0``."""
    p = x.shape[0]
    xa = x if x_test is None else jnp.concatenate([x, x_test])
    fs, phi, g, ks = _two_layer_program(activation, xa, y, key, gamma0, eta, steps=steps,
                                        n_samples=n_samples, kernels=kernels)
    t = eta * jnp.arange(steps + 1, dtype=x.dtype)
    return DMFTResult(t=t, f_train=fs[:, :p], delta=y - fs[:, :p],
                      f_test=None if x_test is None else fs[:, p:], phi=phi[None], g=g[None],
                      ntk=ks, residuals=np.zeros(1), converged=True, method="sampled")
