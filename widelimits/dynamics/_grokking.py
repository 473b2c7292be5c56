"""Two-layer polynomial network of the grokking model of Kumar, Bordelon, Gershman & Pehlevan
(ICLR 2024, "Grokking as the transition from lazy to rich training dynamics", Sec. 5).

Network of width N on inputs x in R^D, readouts fixed to one, output scale alpha:

    f(x; W) = (alpha / N) sum_i phi(w_i . x),   phi(h) = h + (epsilon / 2) h^2,   W (N, D),

trained *centred*, f_c(x; W) = f(x; W) - f(x; W0), on the target y(x) = 1/2 (beta* . x)^2 with
x ~ N(0, I/D). The sufficient statistics w_bar = mean_i w_i (D,) and M = mean_i w_i w_i^T (D, D)
determine the function,

    f(x; W) = alpha w_bar . x + (alpha epsilon / 2) x^T M x,

and, because phi' is affine, full-batch gradient descent closes on them exactly: on the loss
L = 1/2 mean_mu (f_c(x_mu) - y_mu)^2 with learning rate eta, every neuron takes the same affine
step w_i <- B w_i - kappa g with kappa = eta alpha / (N P), g = sum_mu Delta_mu x_mu,
A = sum_mu Delta_mu x_mu x_mu^T, B = I - kappa epsilon A (Delta = f_c - y on the P training
points), so

    w_bar <- B w_bar - kappa g,   M <- B M B - kappa (B w_bar g^T + g w_bar^T B) + kappa^2 g g^T.

``grok_gd`` runs this recursion (O(P D^2 + D^3) per step instead of O(P N D) for the weights);
it equals gradient descent on the weights to round-off (tested against ``dynamics.train``).
The learning rate of the paper is eta = eta0 N / alpha^2: then kappa = eta0 / (alpha P), the
function moves at an alpha-independent rate and the features at a rate 1/alpha (lazy as
alpha -> infinity).
"""

from __future__ import annotations

import functools
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["GrokStats", "GrokRun", "grok_apply", "grok_stats", "grok_stats_apply", "grok_ntk",
           "grok_target", "grok_population_mse", "grok_gd"]


class GrokStats(NamedTuple):
    """Sufficient statistics of the first-layer weights W (N, D): ``wbar`` = mean_i w_i (D,) and
    ``m`` = mean_i w_i w_i^T (D, D). A NamedTuple, hence a pytree."""

    wbar: jax.Array
    m: jax.Array


class GrokRun(NamedTuple):
    """Result of ``grok_gd``; R = steps / record_every + 1 records at steps 0, r, ..., steps.

    - ``steps`` (R,) int: the recorded steps.
    - ``mse_train`` (R,), ``mse_test`` (R,) or None: mean squared error mean (f_c - y)^2 on the
      training set and on (``x_test``, ``y_test``) (not halved: the loss is half of it).
    - ``mse_population`` (R,) or None: E_x (f_c - y)^2 for x ~ N(0, I/D) in closed form
      (``grok_population_mse``; needs ``beta``).
    - ``stats``: the final ``GrokStats``.
    """

    steps: jax.Array
    mse_train: jax.Array
    mse_test: jax.Array | None
    mse_population: jax.Array | None
    stats: GrokStats


def _matrix(name, x, who):
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"dynamics.{who}: {name} must have shape (n, D), got {tuple(x.shape)}.")
    return x


def _phi(h, epsilon):
    return h + 0.5 * epsilon * h * h


def grok_apply(w, x, alpha, epsilon):
    """Network output f(x; W) = (alpha / N) sum_i phi(w_i . x), phi(h) = h + epsilon h^2 / 2.

    ``w`` (N, D) first-layer weights, ``x`` (n, D) inputs; returns (n,). Not centred: the model
    trained in the paper is ``grok_apply(w, x) - grok_apply(w0, x)``. Kumar et al. 2024, Sec. 5.
    """
    w, x = _matrix("w", w, "grok_apply"), _matrix("x", x, "grok_apply")
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"dynamics.grok_apply: w (N, D) and x (n, D) must share D, got "
                         f"{tuple(w.shape)} and {tuple(x.shape)}.")
    return alpha * jnp.mean(_phi(x @ w.T, epsilon), axis=1)


def grok_stats(w) -> GrokStats:
    """Sufficient statistics (w_bar (D,), M (D, D)) of first-layer weights ``w`` (N, D)."""
    w = _matrix("w", w, "grok_stats")
    return GrokStats(jnp.mean(w, axis=0), w.T @ w / w.shape[0])


def _check_stats(stats, who):
    if not isinstance(stats, GrokStats):
        raise TypeError(f"dynamics.{who}: stats must be a GrokStats (from grok_stats), got "
                        f"{type(stats).__name__}.")
    d = jnp.shape(stats.wbar)[-1]
    if jnp.ndim(stats.wbar) != 1 or jnp.shape(stats.m) != (d, d):
        raise ValueError(f"dynamics.{who}: stats must hold wbar (D,) and m (D, D), got "
                         f"{jnp.shape(stats.wbar)} and {jnp.shape(stats.m)}.")
    return d


def grok_stats_apply(stats: GrokStats, x, alpha, epsilon):
    """f(x) = alpha w_bar . x + (alpha epsilon / 2) x^T M x from the sufficient statistics;
    ``x`` (n, D) -> (n,). Equals ``grok_apply(w, x, ...)`` for ``stats = grok_stats(w)``.
    Linear in ``stats``, so the centred model is ``grok_stats_apply(stats - stats0, ...)``."""
    d = _check_stats(stats, "grok_stats_apply")
    x = _matrix("x", x, "grok_stats_apply")
    if x.shape[1] != d:
        raise ValueError(f"dynamics.grok_stats_apply: x must have D = {d} columns, got "
                         f"{tuple(x.shape)}.")
    return alpha * (x @ stats.wbar) + 0.5 * alpha * epsilon * jnp.einsum(
        "pi,ij,pj->p", x, stats.m, x)


def grok_ntk(stats: GrokStats, x1, x2, alpha, epsilon, width):
    """Empirical NTK of the network with respect to W, from the sufficient statistics:

    Theta(x, x') = sum_i grad_{w_i} f(x) . grad_{w_i} f(x')
                 = (alpha^2 / N) (x . x') [1 + epsilon w_bar . (x + x') + epsilon^2 x^T M x'].

    ``x1`` (n1, D), ``x2`` (n2, D) or None (= x1), ``width`` = N; returns (n1, n2).
    """
    _check_stats(stats, "grok_ntk")
    x1 = _matrix("x1", x1, "grok_ntk")
    x2 = x1 if x2 is None else _matrix("x2", x2, "grok_ntk")
    a1, a2 = x1 @ stats.wbar, x2 @ stats.wbar
    inner = 1.0 + epsilon * (a1[:, None] + a2[None, :]) + epsilon ** 2 * (x1 @ stats.m @ x2.T)
    return alpha ** 2 / width * (x1 @ x2.T) * inner


def grok_target(x, beta):
    """Target y(x) = 1/2 (beta . x)^2 (Kumar et al. 2024, Sec. 5); ``x`` (n, D) -> (n,)."""
    return 0.5 * (_matrix("x", x, "grok_target") @ jnp.asarray(beta)) ** 2


def grok_population_mse(stats: GrokStats, stats0: GrokStats, beta, alpha, epsilon):
    """E_x [(f_c(x) - y(x))^2] for x ~ N(0, I/D) in closed form (the test loss with infinitely
    many test points). With a = alpha (w_bar - w_bar0), B = alpha epsilon (M - M0) - beta beta^T
    (f_c - y = a . x + x^T B x / 2, Gaussian moments of x):

        |a|^2 / D + [(tr B)^2 + 2 ||B||_F^2] / (4 D^2).
    """
    d = _check_stats(stats, "grok_population_mse")
    _check_stats(stats0, "grok_population_mse")
    beta = jnp.asarray(beta)
    a = alpha * (stats.wbar - stats0.wbar)
    b = alpha * epsilon * (stats.m - stats0.m) - jnp.outer(beta, beta)
    return (a @ a) / d + (jnp.trace(b) ** 2 + 2 * jnp.sum(b * b)) / (4 * d * d)


@functools.partial(jax.jit, static_argnames=("steps", "record_every"))
def _gd(stats0, x, y, x_test, y_test, beta, alpha, epsilon, kappa, steps, record_every):
    eye = jnp.eye(x.shape[1], dtype=x.dtype)

    def fc(s, xs):
        return grok_stats_apply(GrokStats(s.wbar - stats0.wbar, s.m - stats0.m), xs, alpha,
                                epsilon)

    def step(s, _):
        delta = fc(s, x) - y
        g = x.T @ delta
        b = eye - kappa * epsilon * ((x * delta[:, None]).T @ x)
        bw = b @ s.wbar
        m = b @ s.m @ b - kappa * (jnp.outer(bw, g) + jnp.outer(g, bw)) \
            + kappa ** 2 * jnp.outer(g, g)
        return GrokStats(bw - kappa * g, 0.5 * (m + m.T)), None

    def record(s):
        rec = {"train": jnp.mean((fc(s, x) - y) ** 2)}
        if x_test is not None:
            rec["test"] = jnp.mean((fc(s, x_test) - y_test) ** 2)
        if beta is not None:
            rec["population"] = grok_population_mse(s, stats0, beta, alpha, epsilon)
        return rec

    def interval(s, _):
        s, _ = jax.lax.scan(step, s, None, length=record_every)
        return s, record(s)

    final, recs = jax.lax.scan(interval, stats0, None, length=steps // record_every)
    first = record(stats0)
    recs = {k: jnp.concatenate([first[k][None], v]) for k, v in recs.items()}
    return final, recs


def grok_gd(stats0: GrokStats, x, y, *, alpha, epsilon, learning_rate, width, steps: int,
            record_every: int = 1, x_test=None, y_test=None, beta=None) -> GrokRun:
    """Full-batch gradient descent of the centred network f_c = f(W) - f(W0) on
    L = 1/2 mean_mu (f_c(x_mu) - y_mu)^2 with learning rate ``learning_rate`` (on W), run
    exactly on the sufficient statistics (module docstring), from ``stats0 = grok_stats(W0)``.

    ``x`` (P, D), ``y`` (P,); ``width`` = N (enters only through kappa = eta alpha / (N P));
    ``steps`` a multiple of ``record_every``. ``alpha``, ``epsilon``, ``learning_rate`` may be
    traced (``jax.vmap`` over them compiles once). Optional test set and ``beta`` (D,) for the
    closed-form population error. Returns a ``GrokRun``. Kumar et al. 2024, Sec. 5.
    """
    who = "grok_gd"
    d = _check_stats(stats0, who)
    x = _matrix("x", x, who)
    y = jnp.asarray(y)
    if x.shape[1] != d or y.shape != x.shape[:1]:
        raise ValueError(f"dynamics.{who}: x must be (P, {d}) and y (P,), got {tuple(x.shape)} "
                         f"and {tuple(y.shape)}.")
    for name, v in (("steps", steps), ("record_every", record_every)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"dynamics.{who}: {name} must be a positive int, got {v!r}.")
    if steps % record_every:
        raise ValueError(f"dynamics.{who}: steps ({steps}) must be a multiple of record_every "
                         f"({record_every}).")
    if (x_test is None) != (y_test is None):
        raise ValueError(f"dynamics.{who}: pass both x_test and y_test or neither.")
    if x_test is not None:
        x_test, y_test = _matrix("x_test", x_test, who), jnp.asarray(y_test)
        if x_test.shape[1] != d or y_test.shape != x_test.shape[:1]:
            raise ValueError(f"dynamics.{who}: x_test must be (m, {d}) and y_test (m,), got "
                             f"{tuple(x_test.shape)} and {tuple(y_test.shape)}.")
    if beta is not None and jnp.shape(beta) != (d,):
        raise ValueError(f"dynamics.{who}: beta must have shape ({d},), got {jnp.shape(beta)}.")
    if isinstance(width, bool) or not isinstance(width, numbers.Integral) or width < 1:
        raise ValueError(f"dynamics.{who}: width must be a positive int (N), got {width!r}.")
    kappa = learning_rate * alpha / (width * x.shape[0])
    final, recs = _gd(stats0, x, y, x_test, y_test, beta, alpha, epsilon, kappa, int(steps),
                      int(record_every))
    return GrokRun(jnp.arange(0, steps + 1, record_every), recs["train"], recs.get("test"),
                   recs.get("population"), final)
