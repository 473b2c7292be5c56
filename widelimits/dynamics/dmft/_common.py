"""What the DMFT solvers share: the result type, continuation in time, activation derivatives.

The deep solvers find the fixed point of the DMFT equations by damped iteration, continued in
time over growing horizons (``iterate_in_time``): by causality the first steps of a horizon are
those of the previous one, so each horizon starts from the previous solution extended in time
(``extend_in_time``) and only its new steps move.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

__all__ = ["DMFTResult", "derivative", "extend_in_time", "iterate_in_time", "schedule"]


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

    >>> import jax, jax.numpy as jnp
    >>> from widelimits import dynamics, nets
    >>> net = nets.meanfield_mlp(100, 1, nets.Tanh(), gamma0=2.0)
    >>> x, y = jnp.eye(3), jnp.array([1.0, 0.0, -1.0])
    >>> res = dynamics.dmft(net, x, y, eta=1.0, steps=4, key=jax.random.key(1), n_samples=256)
    >>> res.f_train.shape, res.phi.shape, res.converged   # (T+1, P), (L, T+1, T+1, P, P)
    ((5, 3), (1, 5, 5, 3, 3), True)
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


def derivative(activation):
    """Elementwise phi'(h) of an activation spec, by forward-mode jax."""
    def dphi(h):
        return jax.jvp(activation.fn, (h,), (jnp.ones_like(h),))[1]
    return dphi


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


def _progress_bar(total, enabled, desc):
    """A tqdm bar (a no-op one when ``enabled`` is false)."""
    return tqdm(total=total, disable=not enabled, desc=desc, leave=False)


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
