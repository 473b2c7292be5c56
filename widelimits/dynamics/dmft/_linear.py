"""DMFT of deep linear mean-field networks (phi = id) by the exact Gaussian operator equations.

With phi = id every single-site field is linear in the Gaussian sources, so the averages are
exact matrix products (no sampling). Index (time, point) pairs as one axis of size (T+1)(P+Q)
(test points ride along with Delta = 0, so they do not drive the dynamics). For layer l:

    h = u + gamma0 C g,  g = z,  z = r + gamma0 Dm h,   u ~ GP(0, Phi^{l-1}), r ~ GP(0, G^{l+1}),
    C  = (eta/P) Phi^{l-1} diag(Delta) [m < k] + A^{l-1},
    Dm = (eta/P) G^{l+1}   diag(Delta) [m < k] + B^l,

(left Riemann sums of discrete gradient descent). With S = (I - gamma0^2 C Dm)^{-1} (unit lower
block-triangular in time):

    Phi^l = S (Phi^{l-1} + gamma0^2 C G^{l+1} C^T) S^T,
    G^l   = E G^{l+1} E^T + gamma0^2 Dm S Phi^{l-1} S^T Dm^T,   E = I + gamma0^2 Dm S C,
    A^l   = <dh^l/dr^l> / gamma0 = S C,   B^{l-1} = <dg^l/du^l> / gamma0 = Dm S,

with Phi^0 = x x'/D, G^{L+1} = 1, A^0 = B^L = 0 (Bordelon & Pehlevan 2022, Sec. 5 / App. on deep
linear networks: H^l = (I - gamma0^2 C D)^{-1}[H^{l-1} + gamma0^2 C G^{l+1} C^T](...)^{-T}).
The output is the exact infinite-width one, f_mu(t_k) = <w(t_k) h^L_mu(t_k)> / gamma0
(= [E G^{L+1} C^T S^T + Dm S Phi^{L-1} S^T] at ((k, .), (k, mu))), and Delta = y - f is iterated
to the fixed point together with the kernels.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from ._common import DMFTResult, extend_in_time, iterate_in_time

__all__ = ["solve_linear"]


def _layer(phi_prev, g_next, a_prev, b_l, dmask, gamma0):
    """One layer's operator update; all arrays (TP, TP), dmask = (eta/P) diag(Delta) [m < k]."""
    n = phi_prev.shape[0]
    c = phi_prev * dmask + a_prev
    dm = g_next * dmask + b_l
    eye = jnp.eye(n, dtype=phi_prev.dtype)
    s = solve_triangular(eye - gamma0**2 * c @ dm, eye, lower=True, unit_diagonal=True)
    sc, ds = s @ c, dm @ s
    phi = s @ (phi_prev + gamma0**2 * c @ g_next @ c.T) @ s.T
    e = eye + gamma0**2 * ds @ c
    g = e @ g_next @ e.T + gamma0**2 * ds @ phi_prev @ ds.T
    czh = e @ g_next @ sc.T + ds @ phi_prev @ s.T          # <z h^T> / gamma0
    return phi, g, sc, ds, czh


def _iterate(state, phi0, y, p, q, steps, depth, gamma0, eta, damping):
    """One Jacobi sweep of all order parameters; returns the damped state and the residual."""
    delta, phis, gs, a, b = state          # phis: (L, TP, TP) Phi^1..L; gs: G^1..L; a, b: (L, ...)
    t1, pq = steps + 1, p + q
    tidx = jnp.repeat(jnp.arange(t1), pq)
    causal = (tidx[None, :] < tidx[:, None]).astype(y.dtype)
    dpad = jnp.concatenate([delta, jnp.zeros((t1, q), y.dtype)], axis=1).reshape(-1)
    dmask = (eta / p) * causal * dpad[None, :]
    ones = jnp.ones_like(phi0)
    zero = jnp.zeros_like(phi0)
    new_phi, new_g, new_a, new_b = [], [], [], []
    czh = None
    for l in range(1, depth + 1):
        phi_prev = phi0 if l == 1 else phis[l - 2]
        g_next = ones if l == depth else gs[l]
        a_prev = zero if l == 1 else a[l - 2]
        b_l = zero if l == depth else b[l - 1]
        phi, g, sc, ds, c = _layer(phi_prev, g_next, a_prev, b_l, dmask, gamma0)
        new_phi.append(phi)
        new_g.append(g)
        new_a.append(sc)                 # A^l
        new_b.append(ds)                 # B^{l-1} (from layer l); B^0 unused
        if l == depth:
            czh = c
    czh = czh.reshape(t1, pq, t1, pq)
    f = jnp.einsum("kkm->km", czh[:, 0, :, :])                # (T+1, P+Q)
    new_delta = y - f[:, :p]
    new = (new_delta, jnp.stack(new_phi), jnp.stack(new_g), jnp.stack(new_a),
           jnp.stack(new_b[1:] + [zero]))
    res = jnp.max(jnp.stack([jnp.max(jnp.abs(n_ - o)) for n_, o in zip(new, state, strict=True)]))
    damped = jax.tree.map(lambda n_, o: damping * n_ + (1 - damping) * o, new, state)
    return damped, res, f


_iterate_jit = jax.jit(_iterate, static_argnames=("p", "q", "steps", "depth"))


@partial(jax.jit, static_argnames=("p", "q", "steps", "depth", "kernels"))
def _finish(phis, gs, f, k0, y, eta, *, p, q, steps, depth, kernels):
    """(TP, TP) kernels -> (L, T+1, T+1, P, P) training blocks, equal-time NTK."""
    t1, pq = steps + 1, p + q
    blocks = lambda m: m.reshape(depth, t1, pq, t1, pq)[:, :, :p, :, :p].transpose(0, 1, 3, 2, 4)  # noqa: E731
    phi_b, g_b = blocks(phis), blocks(gs)
    eq = jnp.arange(t1)
    phi_tt, g_tt = phi_b[:, eq, eq], g_b[:, eq, eq]           # (L, T+1, P, P)
    ntk = phi_tt[-1] + g_tt[0] * k0[:p, :p] + jnp.sum(g_tt[1:] * phi_tt[:-1], axis=0)
    if kernels == "equal_time":
        phi_b, g_b = phi_tt, g_tt
    t = eta * jnp.arange(t1, dtype=y.dtype)
    return t, f[:, :p], y - f[:, :p], f[:, p:], phi_b, g_b, ntk


@partial(jax.jit, static_argnames=("steps", "depth"))
def _start(xa, y, *, steps, depth):
    t1 = steps + 1
    k0 = xa @ xa.T / xa.shape[1]
    phi0 = jnp.tile(k0, (t1, t1))                 # ((k, mu), (m, alpha)) ordering
    zeros = jnp.zeros_like(phi0)
    state = (jnp.tile(y, (t1, 1)), jnp.stack([phi0] * depth),
             jnp.ones((depth,) + phi0.shape, y.dtype), jnp.stack([zeros] * depth),
             jnp.stack([zeros] * depth))
    return k0, phi0, state


def _extend(state, old, new, *, p, q):
    """The state for ``old`` steps extended to ``new`` (``extend_in_time``); the kernels
    are (layers, (T+1)(P+Q), (T+1)(P+Q)) with time outermost in each flat axis."""
    pq, t0, t1 = p + q, old + 1, new + 1
    delta = extend_in_time(state[0], (0,), t1 - t0)

    def grow(m):
        m = extend_in_time(m.reshape(m.shape[0], t0, pq, t0, pq), (1, 3), t1 - t0)
        return m.reshape(m.shape[0], t1 * pq, t1 * pq)

    return (delta,) + tuple(grow(m) for m in state[1:])


def solve_linear(x, y, x_test, *, depth, gamma0, eta, steps, damping, tol, max_iter, progress,
                 kernels):
    """Deep linear DMFT by the operator equations (see the module docstring), continued in time
    over the horizons of ``_common.schedule(steps)``, each iterated to ``tol`` (at most ``max_iter``
    sweeps per horizon). ``residuals`` lists every sweep of every horizon."""
    p, d = x.shape
    xa = x if x_test is None else jnp.concatenate([x, x_test])
    q = xa.shape[0] - p

    def start(horizon, previous):
        k0, phi, lazy = _start(xa, y, steps=horizon, depth=depth)
        return (k0, phi), lazy if previous is None else _extend(*previous, horizon, p=p, q=q)

    def sweep(consts, state, horizon):
        return _iterate_jit(state, consts[1], y, p=p, q=q, steps=horizon, depth=depth,
                            gamma0=gamma0, eta=eta, damping=damping)

    (k0, phi0), state, _, residuals = iterate_in_time(
        steps, start, sweep, tol=tol, max_iter=max_iter, progress=progress,
        desc="dmft closed form")
    # one undamped evaluation at the final state gives the reported quantities
    _, _, f = _iterate_jit(state, phi0, y, p=p, q=q, steps=steps, depth=depth, gamma0=gamma0,
                           eta=eta, damping=1.0)
    t, f_tr, delta, f_te, phi_b, g_b, ntk = _finish(state[1], state[2], f, k0, y, eta, p=p, q=q,
                                                    steps=steps, depth=depth, kernels=kernels)
    return DMFTResult(t=t, f_train=f_tr, delta=delta, f_test=None if q == 0 else f_te,
                      phi=phi_b, g=g_b, ntk=ntk,
                      residuals=np.asarray(residuals), converged=residuals[-1] < tol,
                      method="closed_form")
