"""Infinite ensembles of infinite-width networks trained on MSE, and exact GP inference.

Over random initialisations ``f_0 ~ GP(0, K)`` (K = NNGP kernel), kernel-limit gradient descent
with kernel Θ gives Gaussian predictions (Lee et al. 2019, "Wide neural networks of any depth
evolve as linear models under gradient descent", eqs. 15-16):

  mean  μ_t(x*) = Θ_*X Θ^{-1} (I − E_t) Y,
  cov   Σ_t     = K_** + A_t K A_tᵀ − A_t K_X* − K_*X A_tᵀ,   A_t = Θ_*X Θ^{-1} (I − E_t),

with ``E_t = exp(−ηΘt / Y.size)`` (or its discrete / momentum counterparts, see
:func:`gradient_descent_mse`); on the train points ``μ_t = (I − E_t) Y`` and
``Σ_t = E_t K E_t``. t = ∞ gives the NTK-GP; training with K instead of Θ (``get="nngp"``)
gives, at t = ∞, the Bayesian NNGP posterior (:func:`gp_inference`). Loss, time and
``diag_reg`` conventions are those of :func:`gradient_descent_mse` (``½ mean`` loss, t in steps
of size η, ``diag_reg`` absolute, added to the training kernel). Covariances are per output: a
k-output network has covariance ``Σ ⊗ I_k``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ._args import (
    check_conditioning,
    check_finite,
    check_rate,
    check_targets,
    check_test_train,
    check_times,
    float_dtype,
    kernel_array,
    pinv_evals,
    psd_eigh,
)
from ._gradient_flow import decay

__all__ = ["Gaussian", "EnsemblePredictor", "gradient_descent_mse_ensemble", "gp_inference"]


class Gaussian(NamedTuple):
    """A Gaussian over predictions: ``mean`` (..., m, k) or (..., m) like the targets, and the
    per-output ``covariance`` (..., m, m) (None when not computed).

    >>> import jax.numpy as jnp
    >>> from widelimits import dynamics
    >>> g = dynamics.gp_inference(jnp.eye(2), jnp.array([1.0, 0.0]), diag_reg=1.0)
    >>> [float(v) for v in g.mean], g.covariance.shape   # posterior at the train points
    ([0.5, 0.0], (2, 2))
    """

    mean: jax.Array
    covariance: jax.Array | None


def _get(get):
    if get not in ("ntk", "nngp"):
        raise ValueError(f"get must be 'ntk' or 'nngp', got {get!r}")
    return get


def _square(k, n, name):
    if k.ndim != 2 or k.shape != (n, n):
        raise ValueError(f"{name}: expected shape ({n}, {n}), got {k.shape}")
    check_finite(k, name)
    return k


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class EnsemblePredictor:
    """Mean and covariance of an infinite ensemble trained by kernel gradient descent
    (from :func:`gradient_descent_mse_ensemble`; a pytree).

    Call it as ``predictor(t=None, k_test_train=None, k_test_test=None, *, steps=None,
    compute_cov=True) -> Gaussian``:

    * ``t`` (any shape S; ``None`` / ``jnp.inf``: converged) or integer ``steps`` as in
      :class:`MSEPredictor`;
    * without ``k_test_train``: the train points, mean S + y.shape, covariance S + (n, n);
    * with ``k_test_train`` (a ``Kernel`` or ``(nngp, ntk)`` pair for ``get="ntk"``; a
      ``Kernel`` or array for ``get="nngp"``): the test points, mean S + (m, k); the
      covariance S + (m, m) needs ``k_test_test`` (``Kernel`` — its ``.nngp`` — or (m, m) NNGP
      array), else it is None.

    >>> import jax.numpy as jnp
    >>> from widelimits import dynamics
    >>> ens = dynamics.gradient_descent_mse_ensemble((jnp.eye(2), jnp.eye(2)), jnp.ones(2))
    >>> g = ens(t=jnp.array([0.0, jnp.inf]))       # at t = 0 the prior, at t = inf the data
    >>> g.mean.tolist(), [float(c[0, 0]) for c in g.covariance]
    ([[0.0, 0.0], [1.0, 1.0]], [1.0, 0.0])
    """

    evals: jax.Array  # (n,) of the training kernel + diag_reg
    evecs: jax.Array  # (n, n)
    nngp: jax.Array  # (n, n) K, the prior covariance of the initial outputs
    y_train: jax.Array
    learning_rate: jax.Array
    momentum: jax.Array | None = None
    get: str = dataclasses.field(default="ntk", metadata=dict(static=True))

    def __call__(self, t=None, k_test_train=None, k_test_test=None, *, steps=None,
                 compute_cov=True):
        dtype = self.evecs.dtype
        n = self.evecs.shape[0]
        y = self.y_train
        times, mode = check_times(t, steps, dtype, self.evals)
        kt = kx = ktt = None
        if k_test_train is not None:
            single = self.get == "nngp"
            kt = check_test_train(kernel_array(k_test_train, self.get, "k_test_train",
                                               single_ok=single), n, "k_test_train")
            kt = kt.astype(dtype)
            if compute_cov and k_test_test is not None:
                kx = check_test_train(kernel_array(k_test_train, "nngp", "k_test_train",
                                                   single_ok=single), n, "k_test_train")
                kx = kx.astype(dtype)
                ktt = kernel_array(k_test_test, "nngp", "k_test_test")
                ktt = _square(ktt, kt.shape[0], "k_test_test").astype(dtype)
        mean, cov = _ensemble_core(self.evals, self.evecs, self.nngp, y.reshape(n, -1),
                                   self.learning_rate, self.momentum, times, kt, kx, ktt,
                                   mode=mode, compute_cov=bool(compute_cov) and kt is None)
        rows = (n,) if kt is None else (kt.shape[0],)
        return Gaussian(mean.reshape(times.shape + rows + y.shape[1:]), cov)


@functools.partial(jax.jit, static_argnames=("mode", "compute_cov"))
def _ensemble_core(evals, evecs, k, y2, learning_rate, momentum, times, kt, kx, ktt, *, mode,
                   compute_cov):
    """The arithmetic of :class:`EnsemblePredictor` (one compiled call)."""
    dtype = evecs.dtype
    g, ph = decay(evals, learning_rate, y2.size, times, mode, momentum, dtype,
                  phi=kt is not None)
    v = evecs
    yc = v.T @ y2  # (n, k)
    if kt is None:  # train points: mean (I - E) y, covariance E K E = V g (V^T K V) g V^T
        mean = jnp.einsum("ij,...j,jk->...ik", v, 1 - g, yc)
        if not compute_cov:
            return mean, None
        vg = v * g[..., None, :]
        return mean, vg @ (v.T @ k @ v) @ jnp.swapaxes(vg, -1, -2)
    b = kt @ v  # (m, n) training kernel test-train, eigenbasis
    mean = jnp.einsum("ij,...j,jk->...ik", b, ph, yc)
    if ktt is None:
        return mean, None
    c = v.T @ kx.T  # (n, m) = V^T K_X*
    bp = b * ph[..., None, :]  # A_t = Θ_*X Θ^{-1} (I - E_t) times V: (..., m, n)
    ac = bp @ c
    cov = ktt + bp @ (v.T @ k @ v) @ jnp.swapaxes(bp, -1, -2) - ac - jnp.swapaxes(ac, -1, -2)
    return mean, cov


def gradient_descent_mse_ensemble(k_train_train, y_train, learning_rate=1.0, diag_reg=0.0,
                                  momentum=None, *, get="ntk"):
    """Infinite ensemble of kernel-limit networks trained on ``½ Σ (f − Y)² / Y.size``.

    Args:
      k_train_train: for ``get="ntk"`` a ``Kernel`` (or ``(nngp, ntk)`` pair) of the train
        points: trains with the NTK Θ, initial outputs ~ GP(0, NNGP). For ``get="nngp"`` a
        ``Kernel`` or (n, n) NNGP array: trains with K and samples with K.
      y_train: targets (n,) or (n, k).
      learning_rate, diag_reg, momentum: as in :func:`gradient_descent_mse` (``diag_reg`` is
        added to the training kernel only; the prior covariance K is not regularised).
    Returns an :class:`EnsemblePredictor` (one ``eigh``) giving ``Gaussian(mean, covariance)``
    at any array of times; Lee et al. 2019, eqs. 15-16; t = ∞ is the NTK-GP (``get="ntk"``) or
    the NNGP posterior mean/covariance (``get="nngp"``, :func:`gp_inference`).

    >>> import jax.numpy as jnp
    >>> from widelimits import dynamics, kernels, nets
    >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> k = kernels.analytic(nets.mlp(1, 1, nets.Relu()), x)
    >>> ens = dynamics.gradient_descent_mse_ensemble(k, jnp.array([1.0, -1.0]))
    >>> [round(float(v), 4) for v in ens(t=jnp.inf).mean]   # the NTK-GP fits the train points
    [1.0, -1.0]
    """
    get = _get(get)
    single = get == "nngp"
    theta = kernel_array(k_train_train, get, "k_train_train", single_ok=single)
    k = kernel_array(k_train_train, "nngp", "k_train_train", single_ok=single)
    y = check_targets(y_train, theta.shape[0] if theta.ndim == 2 else -1)
    dtype = float_dtype(theta, k, y)
    evals, evecs = psd_eigh(theta.astype(dtype), diag_reg, "k_train_train")
    n = evecs.shape[0]
    k = _square(k, n, "k_train_train (nngp)").astype(dtype)
    k = 0.5 * (k + k.T)
    lr, mom = check_rate(learning_rate, momentum, dtype)
    return EnsemblePredictor(evals=evals, evecs=evecs, nngp=k,
                             y_train=y.astype(dtype), learning_rate=lr, momentum=mom, get=get)


def gp_inference(k_train_train, y_train, k_test_train=None, k_test_test=None, diag_reg=0.0, *,
                 get="nngp"):
    """Exact Gaussian-process posterior with prior covariance ``K`` (the NNGP for
    ``get="nngp"``, or the NTK for ``get="ntk"``) and observation noise variance ``diag_reg``:

      mean = K_*X (K + diag_reg I)^{-1} Y,   cov = K_** − K_*X (K + diag_reg I)^{-1} K_X*.

    Kernel arguments are ``Kernel``s (their ``.<get>``) or arrays. Without ``k_test_train`` it
    returns the posterior at the train points (mean y.shape, cov (n, n)); with it, at the test
    points (mean (m, k) or (m,), cov (m, m) when ``k_test_test`` is given, else None).
    Rasmussen & Williams 2006, eqs. 2.23-2.24; Lee et al. 2018 (NNGP).
    Needs ``cond(K + diag_reg I) < 1/eps`` (checked outside jit; under jit eigenvalues below
    ``eps · λ_max`` are dropped, a pseudo-inverse).

    >>> import jax.numpy as jnp
    >>> from widelimits import dynamics
    >>> k = jnp.array([[1.0, 0.5], [0.5, 1.0]])
    >>> g = dynamics.gp_inference(k, jnp.array([1.0, 1.0]), jnp.array([[0.5, 0.5]]),
    ...                           jnp.array([[1.0]]))
    >>> round(float(g.mean[0]), 4), round(float(g.covariance[0, 0]), 4)   # 2/3, 2/3
    (0.6667, 0.6667)
    """
    get = _get(get)
    k = kernel_array(k_train_train, get, "k_train_train")
    y = check_targets(y_train, k.shape[0] if k.ndim == 2 else -1)
    dtype = float_dtype(k, y, diag_reg)
    evals, evecs = psd_eigh(k.astype(dtype), diag_reg, "k_train_train")
    check_conditioning(evals, "gp_inference", dtype)
    n = evecs.shape[0]
    inv = pinv_evals(evals, dtype)
    yc = evecs.T @ y.reshape(n, -1).astype(dtype)
    if k_test_train is None:
        kx = 0.5 * (k + k.T).astype(dtype)
    else:
        kx = check_test_train(kernel_array(k_test_train, get, "k_test_train"), n,
                              "k_test_train").astype(dtype)
    b = kx @ evecs  # (m, n)
    mean = b @ (inv[:, None] * yc)
    mean = mean.reshape((kx.shape[0],) + y.shape[1:])
    if k_test_train is None:
        ktt = kx
    elif k_test_test is None:
        return Gaussian(mean, None)
    else:
        ktt = _square(kernel_array(k_test_test, get, "k_test_test"), kx.shape[0],
                      "k_test_test").astype(dtype)
    cov = ktt - (b * inv) @ b.T
    return Gaussian(mean, cov)
