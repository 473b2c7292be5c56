"""Monte Carlo NNGP and NTK: empirical kernels averaged over random initialisations."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from .. import nets
from ._empirical import _check_x, empirical_nngp, empirical_ntk
from ._kernel import Kernel

__all__ = ["monte_carlo"]


@functools.partial(jax.jit, static_argnames=("method",))
def _chunk_sum(net, keys, x1, x2, method):
    """Sum over the networks drawn from ``keys`` of (nngp, ntk, var1, var2)."""

    def one(key):
        params = net.init(key, x1.shape)
        nngp = empirical_nngp(net, params, x1, x2)
        ntk = empirical_ntk(net, params, x1, x2, method=method)
        if x2 is None:
            var1 = var2 = jnp.diagonal(nngp)
        else:
            var1 = jnp.diagonal(empirical_nngp(net, params, x1))
            var2 = jnp.diagonal(empirical_nngp(net, params, x2))
        return nngp, ntk, var1, var2

    return jax.tree.map(lambda a: a.sum(0), jax.vmap(one)(keys))


def monte_carlo(net, key, x1, x2=None, *, n_samples: int = 64, batch_size: int = 16,
                method: str = "auto", progress: bool | None = None) -> Kernel:
    """NNGP and NTK of the finite network ``net`` averaged over ``n_samples`` initialisations.

    Network s has ``params = net.init(jax.random.split(key, n_samples)[s], x1.shape)``; its NNGP
    is ``kernels.empirical_nngp`` (the expectation over the readout layer) and its NTK is
    ``kernels.empirical_ntk`` (mean over outputs, ``method`` as there). ``batch_size`` networks
    are vmapped at a time (one compilation, memory bounded by a chunk); a progress bar shows
    for more than 4 chunks unless ``progress=False``. As ``n_samples`` and the width grow the
    result converges to ``kernels.analytic(net, x1, x2)`` (Neal 1996; Lee et al. 2018; Jacot
    et al. 2018); for one hidden layer its expectation equals the limit at every width.

    ``x1`` (n1, d), ``x2`` (n2, d) or None for x1. Returns a ``Kernel`` (float64 sums of the
    per-chunk results, cast back to the input dtype).

    >>> import jax, jax.numpy as jnp
    >>> from widelimits import kernels, nets
    >>> net = nets.mlp(64, 1, nets.Erf())
    >>> x = jnp.array([[1.0, 0.0], [0.6, 0.8]])
    >>> k = kernels.monte_carlo(net, jax.random.key(0), x, n_samples=32)
    >>> bool(jnp.allclose(k.nngp, kernels.analytic(net, x).nngp, atol=0.05))
    True
    """
    who = "monte_carlo"
    if not isinstance(net, nets.Layer):
        raise TypeError(f"kernels.{who}: net must be a widelimits network spec, got "
                        f"{type(net).__name__}.")
    for name, value in (("n_samples", n_samples), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"kernels.{who}: {name} must be a positive int, got {value!r}.")
    x1 = _check_x(who, "x1", x1)
    x2 = None if x2 is None else _check_x(who, "x2", x2, x1)
    keys = jax.random.split(key, n_samples)
    starts = range(0, n_samples, batch_size)
    show = len(starts) > 4 if progress is None else progress
    total = None
    for start in tqdm(starts, desc="monte carlo", unit="chunk", disable=not show, leave=False):
        part = _chunk_sum(net, keys[start:start + batch_size], x1, x2, method)
        part = [np.asarray(a, dtype=np.float64) for a in part]
        total = part if total is None else [t + p for t, p in zip(total, part, strict=True)]
    nngp, ntk, var1, var2 = (jnp.asarray(t / n_samples, x1.dtype) for t in total)
    return Kernel(nngp=nngp, ntk=ntk, var1=var1, var2=var2)
