"""Feature-learning (mean-field / muP) limit of gradient descent: DMFT, entry point and two-layer solver.

Bordelon & Pehlevan 2022, "Self-consistent dynamical field theory of kernel evolution in wide
neural networks" (arXiv 2205.09653). Network (all weights N(0, 1) at t = 0)::

    h^1 = W^0 x / sqrt(D),  h^{l+1} = W^l phi(h^l) / sqrt(N),  f = w^L . phi(h^L) / (gamma0 N),

trained by gradient descent on L = 1/2 mean_mu (f_mu - y_mu)^2 with learning rate gamma0^2 N eta
(time t_k = k eta). Differentiating f along the parameter flow gives, with Delta = y - f,
``dDelta/dt = -(1/P) K(t) Delta``, ``K = sum_{l=0}^{L} G^{l+1} * Phi^l``, Phi^0 = x x'/D, G^{L+1} = 1.

Discretisation. The fields follow the infinite-width limit of *discrete* gradient descent: every
time integral is the left Riemann sum ``eta sum_{m<k}`` (exact for gradient descent, O(eta) from
the continuous flow). For depth 1 the output increment is the exact infinite-width one,
``f(t_{k+1}) - f(t_k) = <w(t_{k+1}) phi(h(t_{k+1})) - w(t_k) phi(h(t_k))> / gamma0``, so a width-N
network trained by gradient descent approaches it with no O(eta) bias; as gamma0 -> 0 it becomes
``Delta_{k+1} = (I - eta K / P) Delta_k`` (discrete kernel gradient descent, K the NTK at t = 0).
"""

from __future__ import annotations

import warnings
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..nets import Activation, Identity

__all__ = ["DMFTResult", "dmft", "estimate_memory"]


class DMFTResult(NamedTuple):
    """Solution of the DMFT equations on a training set of P points, times t_k = k eta, k = 0..T.

    Attributes:
      t: (T+1,) times k eta.
      f_train: (T+1, P) predictions on the training points (f = 0 at t = 0).
      delta: (T+1, P) errors Delta = y - f_train.
      f_test: (T+1, P_test) predictions on ``x_test`` (None without test points).
      phi: feature kernels Phi^l(t, s), l = 1..L: (L, T+1, T+1, P, P) with ``kernels="full"``,
        or the equal-time (L, T+1, P, P) with ``kernels="equal_time"``.
      g: gradient kernels G^l(t, s), l = 1..L, same layout as ``phi``.
      ntk: (T+1, P, P) the NTK K(t, t) that drives dDelta/dt = -K Delta / P.
      residuals: (n_iter,) max |change| of the order parameters per outer iteration (depth 1:
        one entry, 0, since the causal sweep solves the fixed point exactly).
      converged: whether the last residual is below ``tol``.
      method: the method used ("sampled", "gradient_independence" or "closed_form").
    """

    t: jax.Array
    f_train: jax.Array
    delta: jax.Array
    f_test: jax.Array | None
    phi: jax.Array
    g: jax.Array
    ntk: jax.Array
    residuals: np.ndarray
    converged: bool
    method: str


_METHODS = ("sampled", "gradient_independence", "closed_form")


def estimate_memory(n_points, steps, *, depth=1, n_samples=2000, n_test=0, method="sampled",
                    kernels="full", dtype=jnp.float64):
    """Estimated peak memory (bytes) of :func:`dmft` for P = ``n_points`` training points.

    It grows as O(P^2 T^2) (the two-time kernels) plus O(n_samples P T) (the sampled fields); the
    deep solvers also hold TP x TP covariance factors and per-sample Jacobians.
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
    from ._dmft_deep import response_chunk
    jac = 12 * response_chunk(n, t1, q, itemsize=b) * (t1 * q) ** 2   # 6 histories, 2 types
    return int(b * (out + fields + jac))


def _as_float(name, value, dtype, *, positive=False, nonneg=False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None
    if not np.isfinite(v) or (positive and v <= 0) or (nonneg and v < 0):
        want = "> 0" if positive else ">= 0" if nonneg else "finite"
        raise ValueError(f"{name} must be finite and {want}, got {v}")
    return v


def _as_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _check_inputs(x, y, x_test):
    x = jnp.asarray(x)
    if x.ndim != 2 or not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"x must be a float array of shape (P, D), got shape {x.shape} "
                         f"dtype {x.dtype}")
    y = jnp.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape (P,) = ({x.shape[0]},) (one output), got {y.shape}")
    dtype = jnp.result_type(x.dtype, y.dtype if jnp.issubdtype(y.dtype, jnp.floating) else x.dtype)
    if x_test is not None:
        x_test = jnp.asarray(x_test)
        if x_test.ndim != 2 or x_test.shape[1] != x.shape[1]:
            raise ValueError(f"x_test must have shape (P_test, {x.shape[1]}), got {x_test.shape}")
        x_test = x_test.astype(dtype)
    x, y = x.astype(dtype), y.astype(dtype)
    if not (np.all(np.isfinite(np.asarray(x))) and np.all(np.isfinite(np.asarray(y)))):
        raise ValueError("x and y must be finite")
    return x, y, x_test, dtype


def dmft(x, y, activation, *, depth=1, gamma0, eta, steps, key, n_samples=2000, x_test=None,
         method="sampled", damping=0.6, tol=1e-4, max_iter=50, on_fail="warn", kernels="full",
         jitter=None, max_memory=4 * 2**30, progress=False) -> DMFTResult:
    """Solve the DMFT of a depth-L mean-field (muP) MLP trained by gradient descent on MSE.

    Args:
      x: (P, D) training inputs; y: (P,) targets (one output).
      activation: a ``nets`` activation spec (``nets.Relu()``, ``nets.Tanh()``, ...); its
        derivatives are taken by jax.
      depth: number of hidden layers L (depth 1 = two-layer network).
      gamma0: feature-learning strength (>= 0; 0 is the lazy / NTK limit).
      eta: time step (learning rate gamma0^2 N eta for the width-N network); steps: T.
      key: ``jax.random`` key (the same key gives the same result).
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
    """
    x, y, x_test, dtype = _check_inputs(x, y, x_test)
    if not isinstance(activation, Activation):
        raise TypeError(f"activation must be a nets activation spec (e.g. nets.Relu()), got "
                        f"{activation!r}")
    depth = _as_int("depth", depth, 1)
    steps = _as_int("steps", steps, 1)
    n_samples = _as_int("n_samples", n_samples, 2)
    max_iter = _as_int("max_iter", max_iter, 1)
    gamma0 = _as_float("gamma0", gamma0, dtype, nonneg=True)
    eta = _as_float("eta", eta, dtype, positive=True)
    tol = _as_float("tol", tol, dtype, positive=True)
    damping = _as_float("damping", damping, dtype, positive=True)
    if damping > 1:
        raise ValueError(f"damping must be in (0, 1], got {damping}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if method == "closed_form" and not isinstance(activation, Identity):
        raise ValueError(f"method='closed_form' needs activation=nets.Identity() (deep linear "
                         f"network), got {activation!r}")
    if on_fail not in ("warn", "raise"):
        raise ValueError(f"on_fail must be 'warn' or 'raise', got {on_fail!r}")
    if kernels not in ("full", "equal_time"):
        raise ValueError(f"kernels must be 'full' or 'equal_time', got {kernels!r}")
    if jitter is None:
        jitter = 1e-10 if dtype == jnp.float64 else 1e-5
    jitter = _as_float("jitter", jitter, dtype, nonneg=True)
    n_test = 0 if x_test is None else x_test.shape[0]
    need = estimate_memory(x.shape[0], steps, depth=depth, n_samples=n_samples, n_test=n_test,
                           method=method, kernels=kernels, dtype=dtype)
    if need > max_memory:
        raise ValueError(f"dmft would need about {need:,} bytes (P={x.shape[0]}, T={steps}, "
                         f"n_samples={n_samples}, depth={depth}, method={method!r}), more than "
                         f"max_memory={max_memory:,}; reduce P, steps or n_samples, use "
                         f"kernels='equal_time', or raise max_memory")
    if not isinstance(key, jax.Array) or key.shape not in ((), (2,)):
        raise TypeError(f"key must be a jax.random key, got {key!r}")
    common = dict(gamma0=gamma0, eta=eta, steps=steps, kernels=kernels)
    if method == "closed_form":
        from ._dmft_linear import solve_linear
        res = solve_linear(x, y, x_test, depth=depth, damping=damping, tol=tol,
                           max_iter=max_iter, progress=progress, **common)
    elif depth == 1:
        res = _solve_two_layer(x, y, x_test, activation, key=key, n_samples=n_samples, **common)
    else:
        from ._dmft_deep import solve_deep
        res = solve_deep(x, y, x_test, activation, depth=depth, key=key, n_samples=n_samples,
                         responses=(method == "sampled"), damping=damping, tol=tol,
                         max_iter=max_iter, jitter=jitter, progress=progress, **common)
    res = res._replace(method=method)
    if not np.all(np.isfinite(np.asarray(res.f_train))):
        raise FloatingPointError(f"dmft produced non-finite predictions (gamma0={gamma0}, "
                                 f"eta={eta}); the step eta is probably too large")
    if not res.converged:
        msg = (f"dmft did not converge in {len(res.residuals)} iterations: residual "
               f"{res.residuals[-1]:.3g} > tol={tol:g}")
        if on_fail == "raise":
            raise RuntimeError(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    return res


def _progress_bar(total, enabled, desc):
    """A tqdm bar (a no-op one when ``enabled`` is false)."""
    from tqdm.auto import tqdm
    return tqdm(total=total, disable=not enabled, desc=desc, leave=False)


def schedule(steps, first=16):
    """Horizons ceil(steps / 2^k), k = K, ..., 0, with the first one <= ``first``: the fixed
    point is found by continuation in time. A Jacobi sweep over the whole horizon at once can
    overshoot without bound when gamma0^2 L t is large (Picard iterates of a Volterra system
    grow like (c t)^k / k!)."""
    out = [steps]
    while out[-1] > first:
        out.append(-(-out[-1] // 2))
    return out[::-1]


def extend_in_time(a, axes, grow):
    """``a`` with each of its time ``axes`` longer by ``grow`` steps, repeating the last time:
    the previous horizon's solution as the starting guess for the next (by causality its first
    steps are already converged)."""
    return jnp.pad(a, [(0, grow) if i in axes else (0, 0) for i in range(a.ndim)], mode="edge")


def iterate_in_time(steps, start, sweep, *, tol, max_iter, progress, desc, horizons=None):
    """Damped fixed-point iteration continued in time over the horizons ``schedule(steps)``.

    ``start(horizon, previous)`` returns ``(consts, state)`` for a horizon; ``previous`` is None
    for the first one, else ``(state, old_horizon)`` to extend (by causality its first steps are
    already solved). ``sweep(consts, state, horizon)`` returns ``(state, residual, out)``. Each
    horizon is iterated until ``residual < tol`` (or non-finite), at most ``max_iter`` times.
    Returns the last horizon's ``consts``, ``state`` and ``out``, and every residual.
    ``horizons`` replaces the schedule."""
    horizons = schedule(steps) if horizons is None else horizons
    residuals, state, previous = [], None, None
    bar = _progress_bar(max_iter * len(horizons), progress, desc)
    for horizon in horizons:
        consts, state = start(horizon, previous)
        for _ in range(max_iter):
            state, res, out = sweep(consts, state, horizon)
            residuals.append(float(res))
            bar.update(1)
            bar.set_postfix(T=horizon, residual=f"{residuals[-1]:.2e}")
            if residuals[-1] < tol or not np.isfinite(residuals[-1]):
                break
        previous = (state, horizon)
    bar.close()
    return consts, state, out, residuals


def derivative(activation):
    """Elementwise phi'(h) of an activation spec, by forward-mode jax."""
    def dphi(h):
        return jax.jvp(activation.fn, (h,), (jnp.ones_like(h),))[1]
    return dphi


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


@partial(jax.jit, static_argnames=("p", "steps", "n_samples", "kernels"))
def _two_layer_program(activation, xa, y, key, gamma0, eta, *, p, steps, n_samples, kernels):
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


def _solve_two_layer(x, y, x_test, activation, *, gamma0, eta, steps, key, n_samples, kernels):
    p = x.shape[0]
    xa = x if x_test is None else jnp.concatenate([x, x_test])
    fs, phi, g, ks = _two_layer_program(activation, xa, y, key, gamma0, eta, p=p, steps=steps,
                                        n_samples=n_samples, kernels=kernels)
    t = eta * jnp.arange(steps + 1, dtype=x.dtype)
    return DMFTResult(t=t, f_train=fs[:, :p], delta=y - fs[:, :p],
                      f_test=None if x_test is None else fs[:, p:], phi=phi[None], g=g[None],
                      ntk=ks, residuals=np.zeros(1), converged=True, method="sampled")
