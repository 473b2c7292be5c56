"""Monte Carlo estimates of NNGP/NTK from ensembles of finite networks (test helper)."""

import jax
import jax.numpy as jnp
import numpy as np


def _ntk_one(net, params, x):
    """Empirical NTK of one network, averaged over its k outputs: (n, n)."""
    jac = jax.jacrev(lambda p: net.apply(p, x))(params)
    n, k = x.shape[0], net.apply(params, x).shape[-1]
    flat = [j.reshape(n, k, -1) for j in jax.tree.leaves(jac)]
    return sum(jnp.einsum("ikp,jkp->ij", j, j) for j in flat) / k


def ensemble_stats(net, x, key, n_nets, chunk=500, ntk=False):
    """Mean and standard error over ``n_nets`` random networks of the per-network statistic
    ``f(x) f(x)^T / k`` (NNGP) or the empirical NTK. Networks are iid, so the standard error is
    the sample standard deviation / sqrt(n_nets)."""

    def one(k):
        p = net.init(k, x.shape)
        if ntk:
            return _ntk_one(net, p, x)
        f = net.apply(p, x)
        return f @ f.T / f.shape[-1]

    if n_nets % chunk:
        raise ValueError(f"n_nets={n_nets} must be a multiple of chunk={chunk}.")
    run = jax.jit(jax.vmap(one))
    keys = jax.random.split(key, n_nets).reshape(n_nets // chunk, chunk)
    s = np.concatenate([np.asarray(run(k)) for k in keys])
    return s.mean(0), s.std(0, ddof=1) / np.sqrt(len(s))


def z_scores(mean, stderr, expected, roundoff=1e-10):
    """(mean - expected) / stderr. Entries whose statistic is deterministic (e.g. sign(u)^2 = 1)
    have a standard error of pure round-off, so ``roundoff * |expected|`` is added in quadrature."""
    expected = np.asarray(expected)
    se = np.sqrt(stderr**2 + (roundoff * np.abs(expected)) ** 2 + 1e-300)
    return (mean - expected) / se
