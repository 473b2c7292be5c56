"""Feature-learning (mean-field / muP) limit of gradient descent: the DMFT, entry point.

Bordelon & Pehlevan 2022, "Self-consistent dynamical field theory of kernel evolution in wide
neural networks" (arXiv 2205.09653). Network (all weights N(0, 1) at t = 0)::

    h^1 = W^0 x / sqrt(D),  h^{l+1} = W^l phi(h^l) / sqrt(N),  f = w^L . phi(h^L) / (gamma0 N),

trained by gradient descent on L = 1/2 mean_mu (f_mu - y_mu)^2 with learning rate gamma0^2 N eta
(time t_k = k eta). Differentiating f along the parameter flow gives, with Delta = y - f,
``dDelta/dt = -(1/P) K(t) Delta``, ``K = sum_{l=0}^{L} G^{l+1} * Phi^l``, Phi^0 = x x'/D, G^{L+1} = 1.

Discretisation. The fields follow the infinite-width limit of *discrete* gradient descent: every
time integral is the left Riemann sum ``eta sum_{m<k}`` (exact for gradient descent, O(eta) from
the continuous flow). Solvers: depth 1, one causal sweep (``_two_layer``); depth >= 2, sampled
single-site processes with or without the response functions (``_deep``, ``_sweep``); deep
linear networks, the exact Gaussian operator equations (``_linear``).
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from ..._checks import finite_float, integer
from ...nets import Identity
from ._common import DMFTResult
from ._deep import response_chunk, solve_deep
from ._linear import solve_linear
from ._spec import read_meanfield
from ._two_layer import solve_two_layer

__all__ = ["METHODS", "dmft", "estimate_memory"]

WHO = "dynamics.dmft"
METHODS = ("sampled", "gradient_independence", "closed_form")


def estimate_memory(n_points, steps, *, depth=1, n_samples=2000, n_test=0, method="sampled",
                    kernels="full", dtype=jnp.float64):
    """Estimated peak memory (bytes) of :func:`dmft` for P = ``n_points`` training points.

    It grows as O(P^2 T^2) (the two-time kernels) plus O(n_samples P T) (the sampled fields); the
    deep solvers also hold TP x TP covariance factors and per-sample Jacobians.

    >>> from widelimits import dynamics
    >>> dynamics.dmft_memory(10, 200) // 2**20     # MiB: the two-time kernels, O(T^2)
    124
    >>> dynamics.dmft_memory(10, 200, kernels="equal_time") // 2**20
    1
    """
    b = jnp.dtype(dtype).itemsize
    t1, p, q, n, L = steps + 1, n_points, n_points + n_test, n_samples, depth
    kern = (t1 * t1 if kernels == "full" else t1) * p * p
    if depth == 1:
        hist = 2 * n * t1 * p if kernels == "full" else 0
        return int(b * (2 * kern + hist + 8 * n * q + 3 * q * q + t1 * p * p))
    tp = t1 * p
    out = 4 * L * tp * tp + 3 * tp * tp + 2 * L * kern
    if method == "closed_form":
        return int(b * (out + 8 * tp * tp))
    fields = 8 * L * n * t1 * q
    if method == "gradient_independence":
        return int(b * (out + fields))
    jac = 12 * response_chunk(n, t1, q, itemsize=b) * (t1 * q) ** 2   # 6 histories, 2 types
    return int(b * (out + fields + jac))


def _check_inputs(x, y, x_test):
    x = jnp.asarray(x)
    if x.ndim != 2 or not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"{WHO}: x must be a float array of shape (P, D), got shape {x.shape} "
                         f"dtype {x.dtype}")
    y = jnp.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.shape != (x.shape[0],):
        raise ValueError(f"{WHO}: y must have shape (P,) = ({x.shape[0]},) (one output), got "
                         f"{y.shape}")
    dtype = jnp.result_type(x.dtype, y.dtype if jnp.issubdtype(y.dtype, jnp.floating) else x.dtype)
    if x_test is not None:
        x_test = jnp.asarray(x_test)
        if x_test.ndim != 2 or x_test.shape[1] != x.shape[1]:
            raise ValueError(f"{WHO}: x_test must have shape (P_test, {x.shape[1]}), got "
                             f"{x_test.shape}")
        x_test = x_test.astype(dtype)
    x, y = x.astype(dtype), y.astype(dtype)
    if not (np.all(np.isfinite(np.asarray(x))) and np.all(np.isfinite(np.asarray(y)))):
        raise ValueError(f"{WHO}: x and y must be finite")
    return x, y, x_test, dtype


def dmft(net, x, y, *, eta, steps, key, gamma0=None, n_samples=2000, x_test=None,
         method="sampled", damping=0.6, tol=1e-4, max_iter=50, on_fail="warn", kernels="full",
         jitter=None, max_memory=4 * 2**30, progress=False) -> DMFTResult:
    """Solve the DMFT of a depth-L mean-field (muP) MLP trained by gradient descent on MSE.

    Args:
      net: the network, ``nets.meanfield_mlp(width, depth, activation, gamma0)``: L hidden
        layers ``Dense(N, w_std=1, b_std=None)`` (Gaussian weights, NTK parameterization), each
        followed by the same activation (derivatives taken by jax), and the readout
        ``Dense(1, w_std=1/(gamma0 sqrt(N)), b_std=None)``. Depth, activation and gamma0 =
        1 / (readout w_std sqrt(N)) are read from it; the width N itself is irrelevant: the DMFT
        is the N -> infinity limit of this network trained with learning rate gamma0^2 N eta
        (``nets.meanfield_learning_rate``). Another structure raises ``TypeError`` or
        ``ValueError`` naming the layer (an unsupported layer type, e.g. ``LayerNorm``, the
        registry's ``UnsupportedLayer``).
      x: (P, D) training inputs; y: (P,) targets (one output).
      eta: time step (learning rate gamma0^2 N eta for the width-N network); steps: T.
      key: ``jax.random`` key (the same key gives the same result).
      gamma0: feature-learning strength (>= 0), overriding the spec's. ``gamma0=0`` is the lazy
        (NTK) limit, which no spec can express (its readout scale 1/gamma0 diverges); depth 1
        only.
      n_samples: Monte Carlo single-site samples.
      x_test: optional (P_test, D) test inputs; their fields are extended alongside the training
        ones (they do not affect the dynamics) to give ``f_test``.
      method: "sampled" (Monte Carlo, response functions included for depth >= 2),
        "gradient_independence" (depth >= 2: drops the response functions A, B -- an
        approximation, not the DMFT; for depth 1 it coincides with "sampled"), or "closed_form"
        (``nets.Identity()`` only: exact Gaussian operator equations, no sampling).
      damping: a in X <- a X_new + (1 - a) X for the outer fixed-point iteration (depth >= 2:
        of the response functions for "sampled", of all order parameters for "closed_form").
      tol, max_iter: stop when the max |change| of the order parameters is below ``tol``. The
        deep solvers continue in time over the horizons ceil(T / 2^k) (the first <= 16), each
        iterated at most ``max_iter`` times; ``residuals`` lists every iteration. Without
        response functions ("gradient_independence") one causal sweep is the solution.
      on_fail: "warn" (``warnings.warn`` with the residual) or "raise" (``RuntimeError``) when the
        iteration does not converge.
      kernels: "full" (two-time kernels) or "equal_time" (memory-lean) for ``phi``/``g``.
      jitter: diagonal added (relative to the mean diagonal) before Cholesky factorising the
        TP x TP covariances (default 1e-10 in float64, 1e-5 in float32).
      max_memory: bytes; a ``ValueError`` with the estimate is raised before allocating more.
      progress: show a tqdm bar over outer iterations.

    Returns a :class:`DMFTResult`. Fixed samples (common random numbers) are used across outer
    iterations, so the iteration converges to the fixed point of a deterministic map; the Monte
    Carlo error is O(n_samples^{-1/2}). Depth 1 needs no outer iteration: the order parameter
    Delta(t) is causal, so one sweep over time (all samples at once) solves the fixed point.
    ``dmft`` itself is not jit-traceable (argument checks and the outer loop run in Python); each
    sweep / outer iteration is one compiled program.

    >>> import jax, jax.numpy as jnp
    >>> from widelimits import dynamics, nets
    >>> net = nets.meanfield_mlp(100, 1, nets.Tanh(), gamma0=0.5)   # any width: N -> infinity
    >>> x, y = jnp.eye(3), jnp.array([1.0, 0.0, -1.0])
    >>> res = dynamics.dmft(net, x, y, eta=1.0, steps=4, key=jax.random.key(0), n_samples=256)
    >>> bool(jnp.linalg.norm(res.delta[-1]) < 0.6 * jnp.linalg.norm(y))   # it trains
    True
    """
    mf = read_meanfield(net)
    depth, activation = mf.depth, mf.activation
    x, y, x_test, dtype = _check_inputs(x, y, x_test)
    steps = integer(WHO, "steps", steps)
    n_samples = integer(WHO, "n_samples", n_samples, minimum=2)
    max_iter = integer(WHO, "max_iter", max_iter)
    gamma0 = mf.gamma0 if gamma0 is None else finite_float(WHO, "gamma0", gamma0, nonneg=True)
    eta = finite_float(WHO, "eta", eta, positive=True)
    tol = finite_float(WHO, "tol", tol, positive=True)
    damping = finite_float(WHO, "damping", damping, positive=True)
    if damping > 1:
        raise ValueError(f"{WHO}: damping must be in (0, 1], got {damping}")
    if method not in METHODS:
        raise ValueError(f"{WHO}: method must be one of {METHODS}, got {method!r}")
    if method == "closed_form" and not isinstance(activation, Identity):
        raise ValueError(f"{WHO}: method='closed_form' needs the activation nets.Identity() "
                         f"(deep linear network), got {activation!r}")
    if on_fail not in ("warn", "raise"):
        raise ValueError(f"{WHO}: on_fail must be 'warn' or 'raise', got {on_fail!r}")
    if kernels not in ("full", "equal_time"):
        raise ValueError(f"{WHO}: kernels must be 'full' or 'equal_time', got {kernels!r}")
    if jitter is None:
        jitter = 1e-10 if dtype == jnp.float64 else 1e-5
    jitter = finite_float(WHO, "jitter", jitter, nonneg=True)
    n_test = 0 if x_test is None else x_test.shape[0]
    need = estimate_memory(x.shape[0], steps, depth=depth, n_samples=n_samples, n_test=n_test,
                           method=method, kernels=kernels, dtype=dtype)
    if need > max_memory:
        raise ValueError(f"{WHO} would need about {need:,} bytes (P={x.shape[0]}, T={steps}, "
                         f"n_samples={n_samples}, depth={depth}, method={method!r}), more than "
                         f"max_memory={max_memory:,}; reduce P, steps or n_samples, use "
                         f"kernels='equal_time', or raise max_memory")
    if not isinstance(key, jax.Array) or key.shape not in ((), (2,)):
        raise TypeError(f"{WHO}: key must be a jax.random key, got {key!r}")
    common = dict(gamma0=gamma0, eta=eta, steps=steps, kernels=kernels)
    if method == "closed_form":
        res = solve_linear(x, y, x_test, depth=depth, damping=damping, tol=tol,
                           max_iter=max_iter, progress=progress, **common)
    elif depth == 1:
        res = solve_two_layer(x, y, x_test, activation, key=key, n_samples=n_samples, **common)
    else:
        res = solve_deep(x, y, x_test, activation, depth=depth, key=key, n_samples=n_samples,
                         responses=(method == "sampled"), damping=damping, tol=tol,
                         max_iter=max_iter, jitter=jitter, progress=progress, **common)
    res = res._replace(method=method)
    if not np.all(np.isfinite(np.asarray(res.f_train))):
        raise FloatingPointError(f"{WHO} produced non-finite predictions (gamma0={gamma0}, "
                                 f"eta={eta}); the step eta is probably too large")
    if not res.converged:
        msg = (f"{WHO} did not converge in {len(res.residuals)} iterations: residual "
               f"{res.residuals[-1]:.3g} > tol={tol:g}")
        if on_fail == "raise":
            raise RuntimeError(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    return res
