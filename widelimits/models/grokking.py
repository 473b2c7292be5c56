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

``gradient_descent`` runs this recursion (O(P D^2 + D^3) per step instead of O(P N D) for the
weights); it equals gradient descent on the weights to round-off (tested against
``dynamics.train``). The learning rate of the paper is eta = eta0 N / alpha^2: then
kappa = eta0 / (alpha P), the function moves at an alpha-independent rate and the features at a
rate 1/alpha (lazy as alpha -> infinity).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .._checks import integer

__all__ = ["Run", "Stats", "apply", "gradient_descent", "ntk", "population_mse", "stats",
           "stats_apply", "target"]

_WHO = "models.grokking."


class Stats(NamedTuple):
    """Sufficient statistics of the first-layer weights W (N, D): ``wbar`` = mean_i w_i (D,) and
    ``m`` = mean_i w_i w_i^T (D, D). A NamedTuple, hence a pytree.

    >>> import jax.numpy as jnp
    >>> from widelimits.models import grokking
    >>> s = grokking.stats(jnp.array([[1.0, 0.0], [0.0, 1.0]]))
    >>> s.wbar.tolist(), s.m.tolist()
    ([0.5, 0.5], [[0.5, 0.0], [0.0, 0.5]])
    """

    wbar: jax.Array
    m: jax.Array


class Run(NamedTuple):
    """Result of ``gradient_descent``; R = steps / record_every + 1 records at steps 0, r, ...,
    steps.

    - ``steps`` (R,) int: the recorded steps.
    - ``mse_train`` (R,), ``mse_test`` (R,) or None: mean squared error mean (f_c - y)^2 on the
      training set and on (``x_test``, ``y_test``) (not halved: the loss is half of it).
    - ``mse_population`` (R,) or None: E_x (f_c - y)^2 for x ~ N(0, I/D) in closed form
      (``population_mse``; needs ``beta``).
    - ``stats``: the final ``Stats``.

    >>> import jax, jax.numpy as jnp
    >>> from widelimits.models import grokking
    >>> beta = jnp.array([1.0, 0.0, 0.0])
    >>> x = jax.random.normal(jax.random.key(0), (20, 3)) / jnp.sqrt(3.0)
    >>> s0 = grokking.stats(jax.random.normal(jax.random.key(1), (16, 3)))
    >>> run = grokking.gradient_descent(s0, x, grokking.target(x, beta), alpha=1.0,
    ...                                 epsilon=1.0, learning_rate=10.0, width=16, steps=200,
    ...                                 record_every=100, beta=beta)
    >>> run.steps.tolist(), run.mse_population.shape, run.mse_test is None
    ([0, 100, 200], (3,), True)
    """

    steps: jax.Array
    mse_train: jax.Array
    mse_test: jax.Array | None
    mse_population: jax.Array | None
    stats: Stats


def _matrix(name, x, who):
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{_WHO}{who}: {name} must have shape (n, D), got {tuple(x.shape)}.")
    return x


def _phi(h, epsilon):
    return h + 0.5 * epsilon * h * h


def apply(w, x, alpha, epsilon):
    """Network output f(x; W) = (alpha / N) sum_i phi(w_i . x), phi(h) = h + epsilon h^2 / 2.

    ``w`` (N, D) first-layer weights, ``x`` (n, D) inputs; returns (n,). Not centred: the model
    trained in the paper is ``apply(w, x) - apply(w0, x)``. Kumar et al. 2024, Sec. 5.

    >>> import jax.numpy as jnp
    >>> from widelimits.models import grokking
    >>> w = jnp.array([[1.0, 0.0], [0.0, 2.0]])
    >>> grokking.apply(w, jnp.array([[1.0, 1.0]]), 2.0, 1.0).tolist()   # (1.5 + 4) * 2 / 2
    [5.5]
    """
    w, x = _matrix("w", w, "apply"), _matrix("x", x, "apply")
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"{_WHO}apply: w (N, D) and x (n, D) must share D, got "
                         f"{tuple(w.shape)} and {tuple(x.shape)}.")
    return alpha * jnp.mean(_phi(x @ w.T, epsilon), axis=1)


def stats(w) -> Stats:
    """Sufficient statistics (w_bar (D,), M (D, D)) of first-layer weights ``w`` (N, D).

    >>> import jax.numpy as jnp
    >>> from widelimits.models import grokking
    >>> grokking.stats(jnp.array([[1.0, 2.0], [3.0, 4.0]])).wbar.tolist()
    [2.0, 3.0]
    """
    w = _matrix("w", w, "stats")
    return Stats(jnp.mean(w, axis=0), w.T @ w / w.shape[0])


def _check_stats(s, who):
    if not isinstance(s, Stats):
        raise TypeError(f"{_WHO}{who}: stats must be a models.grokking.Stats (from "
                        f"models.grokking.stats), got {type(s).__name__}.")
    d = jnp.shape(s.wbar)[-1]
    if jnp.ndim(s.wbar) != 1 or jnp.shape(s.m) != (d, d):
        raise ValueError(f"{_WHO}{who}: stats must hold wbar (D,) and m (D, D), got "
                         f"{jnp.shape(s.wbar)} and {jnp.shape(s.m)}.")
    return d


def stats_apply(stats: Stats, x, alpha, epsilon):
    """f(x) = alpha w_bar . x + (alpha epsilon / 2) x^T M x from the sufficient statistics;
    ``x`` (n, D) -> (n,). Equals ``apply(w, x, ...)`` for ``stats = stats(w)``.
    Linear in ``stats``, so the centred model is ``stats_apply(stats - stats0, ...)``.

    >>> import jax.numpy as jnp
    >>> from widelimits.models import grokking
    >>> w, x = jnp.array([[1.0, 0.0], [0.0, 2.0]]), jnp.array([[1.0, 1.0]])
    >>> grokking.stats_apply(grokking.stats(w), x, 2.0, 1.0).tolist()   # = apply(w, x, 2, 1)
    [5.5]
    """
    d = _check_stats(stats, "stats_apply")
    x = _matrix("x", x, "stats_apply")
    if x.shape[1] != d:
        raise ValueError(f"{_WHO}stats_apply: x must have D = {d} columns, got "
                         f"{tuple(x.shape)}.")
    return alpha * (x @ stats.wbar) + 0.5 * alpha * epsilon * jnp.einsum(
        "pi,ij,pj->p", x, stats.m, x)


def ntk(stats: Stats, x1, x2, alpha, epsilon, width):
    """Empirical NTK of the network with respect to W, from the sufficient statistics:

    Theta(x, x') = sum_i grad_{w_i} f(x) . grad_{w_i} f(x')
                 = (alpha^2 / N) (x . x') [1 + epsilon w_bar . (x + x') + epsilon^2 x^T M x'].

    ``x1`` (n1, D), ``x2`` (n2, D) or None (= x1), ``width`` = N; returns (n1, n2).

    >>> import jax.numpy as jnp
    >>> from widelimits.models import grokking
    >>> s = grokking.stats(jnp.zeros((4, 2)))             # w = 0: phi'(0) = 1, a linear net
    >>> grokking.ntk(s, jnp.eye(2), None, 2.0, 0.5, 4).tolist()   # alpha^2 / N x . x'
    [[1.0, 0.0], [0.0, 1.0]]
    """
    _check_stats(stats, "ntk")
    x1 = _matrix("x1", x1, "ntk")
    x2 = x1 if x2 is None else _matrix("x2", x2, "ntk")
    a1, a2 = x1 @ stats.wbar, x2 @ stats.wbar
    inner = 1.0 + epsilon * (a1[:, None] + a2[None, :]) + epsilon ** 2 * (x1 @ stats.m @ x2.T)
    return alpha ** 2 / width * (x1 @ x2.T) * inner


def target(x, beta):
    """Target y(x) = 1/2 (beta . x)^2 (Kumar et al. 2024, Sec. 5); ``x`` (n, D) -> (n,).

    >>> import jax.numpy as jnp
    >>> from widelimits.models import grokking
    >>> grokking.target(jnp.array([[1.0, 2.0]]), jnp.array([1.0, 1.0])).tolist()
    [4.5]
    """
    return 0.5 * (_matrix("x", x, "target") @ jnp.asarray(beta)) ** 2


def population_mse(stats: Stats, stats0: Stats, beta, alpha, epsilon):
    """E_x [(f_c(x) - y(x))^2] for x ~ N(0, I/D) in closed form (the test loss with infinitely
    many test points). With a = alpha (w_bar - w_bar0), B = alpha epsilon (M - M0) - beta beta^T
    (f_c - y = a . x + x^T B x / 2, Gaussian moments of x):

        |a|^2 / D + [(tr B)^2 + 2 ||B||_F^2] / (4 D^2).

    >>> import jax.numpy as jnp
    >>> from widelimits.models import grokking
    >>> s0 = grokking.stats(jnp.ones((3, 2)))
    >>> float(grokking.population_mse(s0, s0, jnp.array([1.0, 0.0]), 1.0, 0.1))  # E y^2 = 3/16
    0.1875
    """
    d = _check_stats(stats, "population_mse")
    _check_stats(stats0, "population_mse")
    beta = jnp.asarray(beta)
    a = alpha * (stats.wbar - stats0.wbar)
    b = alpha * epsilon * (stats.m - stats0.m) - jnp.outer(beta, beta)
    return (a @ a) / d + (jnp.trace(b) ** 2 + 2 * jnp.sum(b * b)) / (4 * d * d)


@functools.partial(jax.jit, static_argnames=("steps", "record_every"))
def _gd(stats0, x, y, x_test, y_test, beta, alpha, epsilon, kappa, steps, record_every):
    eye = jnp.eye(x.shape[1], dtype=x.dtype)

    def fc(s, xs):
        return stats_apply(Stats(s.wbar - stats0.wbar, s.m - stats0.m), xs, alpha, epsilon)

    def step(s, _):
        delta = fc(s, x) - y
        g = x.T @ delta
        b = eye - kappa * epsilon * ((x * delta[:, None]).T @ x)
        bw = b @ s.wbar
        m = b @ s.m @ b - kappa * (jnp.outer(bw, g) + jnp.outer(g, bw)) \
            + kappa ** 2 * jnp.outer(g, g)
        return Stats(bw - kappa * g, 0.5 * (m + m.T)), None

    def record(s):
        rec = {"train": jnp.mean((fc(s, x) - y) ** 2)}
        if x_test is not None:
            rec["test"] = jnp.mean((fc(s, x_test) - y_test) ** 2)
        if beta is not None:
            rec["population"] = population_mse(s, stats0, beta, alpha, epsilon)
        return rec

    def interval(s, _):
        s, _ = jax.lax.scan(step, s, None, length=record_every)
        return s, record(s)

    final, recs = jax.lax.scan(interval, stats0, None, length=steps // record_every)
    first = record(stats0)
    recs = {k: jnp.concatenate([first[k][None], v]) for k, v in recs.items()}
    return final, recs


def gradient_descent(stats0: Stats, x, y, *, alpha, epsilon, learning_rate, width, steps: int,
                     record_every: int = 1, x_test=None, y_test=None, beta=None) -> Run:
    """Full-batch gradient descent of the centred network f_c = f(W) - f(W0) on
    L = 1/2 mean_mu (f_c(x_mu) - y_mu)^2 with learning rate ``learning_rate`` (on W), run
    exactly on the sufficient statistics (module docstring), from ``stats0 = stats(W0)``.

    ``x`` (P, D), ``y`` (P,); ``width`` = N (enters only through kappa = eta alpha / (N P));
    ``steps`` a multiple of ``record_every``. ``alpha``, ``epsilon``, ``learning_rate`` may be
    traced (``jax.vmap`` over them compiles once). Optional test set and ``beta`` (D,) for the
    closed-form population error. Returns a ``Run``. Kumar et al. 2024, Sec. 5.

    >>> import jax, jax.numpy as jnp
    >>> from widelimits.models import grokking
    >>> beta = jnp.array([1.0, 0.0, 0.0])
    >>> x = jax.random.normal(jax.random.key(0), (20, 3)) / jnp.sqrt(3.0)
    >>> s0 = grokking.stats(jax.random.normal(jax.random.key(1), (16, 3)))
    >>> run = grokking.gradient_descent(s0, x, grokking.target(x, beta), alpha=1.0,
    ...                                 epsilon=1.0, learning_rate=10.0, width=16, steps=200,
    ...                                 record_every=100, beta=beta)
    >>> bool(run.mse_train[-1] < 0.01 * run.mse_train[0])   # it fits the training set
    True
    """
    who = "gradient_descent"
    d = _check_stats(stats0, who)
    x = _matrix("x", x, who)
    y = jnp.asarray(y)
    if x.shape[1] != d or y.shape != x.shape[:1]:
        raise ValueError(f"{_WHO}{who}: x must be (P, {d}) and y (P,), got {tuple(x.shape)} "
                         f"and {tuple(y.shape)}.")
    steps = integer(_WHO + who, "steps", steps)
    record_every = integer(_WHO + who, "record_every", record_every)
    if steps % record_every:
        raise ValueError(f"{_WHO}{who}: steps ({steps}) must be a multiple of record_every "
                         f"({record_every}).")
    if (x_test is None) != (y_test is None):
        raise ValueError(f"{_WHO}{who}: pass both x_test and y_test or neither.")
    if x_test is not None:
        x_test, y_test = _matrix("x_test", x_test, who), jnp.asarray(y_test)
        if x_test.shape[1] != d or y_test.shape != x_test.shape[:1]:
            raise ValueError(f"{_WHO}{who}: x_test must be (m, {d}) and y_test (m,), got "
                             f"{tuple(x_test.shape)} and {tuple(y_test.shape)}.")
    if beta is not None and jnp.shape(beta) != (d,):
        raise ValueError(f"{_WHO}{who}: beta must have shape ({d},), got {jnp.shape(beta)}.")
    width = integer(_WHO + who, "width", width)
    kappa = learning_rate * alpha / (width * x.shape[0])
    final, recs = _gd(stats0, x, y, x_test, y_test, beta, alpha, epsilon, kappa, steps,
                      record_every)
    return Run(jnp.arange(0, steps + 1, record_every), recs["train"], recs.get("test"),
               recs.get("population"), final)
