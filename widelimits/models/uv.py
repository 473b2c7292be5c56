"""The uv model of Lewkowycz et al. 2020 ("The large learning rate phase of deep learning: the
catapult mechanism", arXiv 2003.02218, Sec. 2): a two-layer linear network

    f(x) = v^T u x / sqrt(n),    u (n, d),  v (n, k),  entries N(0, 1) at initialisation,

with n hidden units. Its empirical NTK has the closed form (outputs a, b)

    Theta_ab(x, x') = [ (v_a . v_b) (x . x') + delta_ab (u x) . (u x') ] / n,

so that for one scalar input (d = k = 1) Theta(x, x') = x x' lambda with
lambda = (|u|^2 + |v|^2) / n. Gradient descent with learning rate eta on the loss of
``dynamics.train`` (L = 1/2 mean over the m examples of (f(x_i) - y_i)^2) then closes on the two
numbers s = u . v / sqrt(n) (so f(x) = s x) and lambda: with g = (1/m) sum_i x_i (s x_i - y_i),

    s'      = s - eta lambda g + eta^2 g^2 s / n,
    lambda' = lambda - 4 eta g s / n + eta^2 g^2 lambda / n,

which for m = 1, x = 1, y = 0 is the paper's eq. (3)-(4) with f = s:
f' = f (1 - eta lambda + eta^2 f^2 / n), lambda' = lambda + eta f^2 (eta lambda - 4) / n.
In the normalisation of ``dynamics`` the critical learning rates are eta lambda_0 = 2 and 4 with
lambda_0 = lambda_max(Theta_0) / m = lambda |x|^2 / m (``reduced_dynamics``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._checks import integer

__all__ = ["apply", "init", "ntk", "reduced_dynamics"]

_WHO = "models.uv."


def init(key, width: int, in_dim: int = 1, out_dim: int = 1, dtype=None) -> dict:
    """Initial parameters of the uv model: ``{"u": (width, in_dim), "v": (width, out_dim)}``
    with i.i.d. N(0, 1) entries (Lewkowycz et al. 2020, Sec. 2). ``dtype`` defaults to JAX's
    default float type.

    >>> import jax
    >>> from widelimits.models import uv
    >>> p = uv.init(jax.random.key(0), 5, in_dim=2)
    >>> p["u"].shape, p["v"].shape
    ((5, 2), (5, 1))
    """
    for name, value in (("width", width), ("in_dim", in_dim), ("out_dim", out_dim)):
        integer(_WHO + "init", name, value)
    dtype = jnp.result_type(float) if dtype is None else dtype
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"{_WHO}init: dtype must be a floating type, got {dtype}.")
    ku, kv = jax.random.split(key)
    return {"u": jax.random.normal(ku, (width, in_dim), dtype),
            "v": jax.random.normal(kv, (width, out_dim), dtype)}


def _params(who, params):
    if not (isinstance(params, dict) and set(params) == {"u", "v"}):
        raise ValueError(f"{_WHO}{who}: params must be a dict with keys 'u' (n, d) and 'v' "
                         f"(n, k), got {params!r:.80}.")
    u, v = jnp.asarray(params["u"]), jnp.asarray(params["v"])
    if u.ndim != 2 or v.ndim != 2 or u.shape[0] != v.shape[0]:
        raise ValueError(f"{_WHO}{who}: params['u'] must be (n, d) and params['v'] (n, k) with "
                         f"one n, got {u.shape} and {v.shape}.")
    return u, v


def _inputs(who, name, x, d):
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[1] != d:
        raise ValueError(f"{_WHO}{who}: {name} must have shape (m, {d}), got {x.shape}.")
    return x


def apply(params, x):
    """The uv model ``f(x) = v^T u x / sqrt(n)`` on inputs ``x`` (m, d): outputs (m, k).

    >>> import jax.numpy as jnp
    >>> from widelimits.models import uv
    >>> p = {"u": jnp.ones((4, 1)), "v": jnp.ones((4, 1))}
    >>> uv.apply(p, jnp.array([[1.0], [2.0]])).tolist()   # u . v / sqrt(4) = 2
    [[2.0], [4.0]]
    """
    u, v = _params("apply", params)
    x = _inputs("apply", "x", x, u.shape[1])
    n = u.shape[0]
    return (x @ u.T) @ v / jnp.sqrt(jnp.asarray(n, u.dtype))


def ntk(params, x1, x2=None):
    """Closed-form empirical NTK of the uv model, mean over the k outputs (the convention of
    ``kernels.empirical_ntk(..., output="trace")``): ``[ |v|_F^2 / k (x . x') + (u x).(u x') ] /
    n``, shape (m1, m2).

    >>> import jax.numpy as jnp
    >>> from widelimits.models import uv
    >>> p = {"u": jnp.ones((4, 1)), "v": jnp.ones((4, 1))}
    >>> uv.ntk(p, jnp.array([[1.0]])).tolist()   # lambda = (|u|^2 + |v|^2) / n = 2
    [[2.0]]
    """
    u, v = _params("ntk", params)
    x1 = _inputs("ntk", "x1", x1, u.shape[1])
    x2 = x1 if x2 is None else _inputs("ntk", "x2", x2, u.shape[1])
    n, k = v.shape
    return (jnp.sum(v * v) / k * (x1 @ x2.T) + (x1 @ u.T) @ (u @ x2.T)) / n


def reduced_dynamics(s0, lam0, x, y, learning_rate, width: int, steps: int):
    """Exact gradient descent of the scalar-input, scalar-output uv model, reduced to the two
    numbers ``s = u . v / sqrt(n)`` (f(x) = s x) and ``lambda = (|u|^2 + |v|^2) / n`` (see the
    module docstring; Lewkowycz et al. 2020, eq. 3-4 for one example with y = 0).

    ``x``, ``y``: (m,) training inputs and targets; loss 1/2 mean_i (s x_i - y_i)^2. Returns
    ``(s, lam)``, each (steps + 1,), the values before each step and after the last. The NTK's
    top eigenvalue in the normalisation of ``dynamics`` is ``lam * |x|^2 / m``.

    >>> import jax.numpy as jnp
    >>> from widelimits.models import uv
    >>> s, lam = uv.reduced_dynamics(0.5, 1.0, jnp.ones(1), jnp.zeros(1), 1.0, 100, 30)
    >>> abs(float(s[-1])) < 1e-6, round(float(lam[-1]), 2)   # eta lambda < 2: lazy, s -> 0
    (True, 0.99)
    """
    integer(_WHO + "reduced_dynamics", "width", width)
    integer(_WHO + "reduced_dynamics", "steps", steps, minimum=0)
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"{_WHO}reduced_dynamics: x and y must be (m,) vectors of one "
                         f"shape, got {x.shape} and {y.shape}.")
    dtype = jnp.result_type(s0, lam0, x, y, learning_rate, float)
    eta, n = jnp.asarray(learning_rate, dtype), jnp.asarray(width, dtype)

    def step(carry, _):
        s, lam = carry
        g = jnp.mean(x * (s * x - y))
        new = (s - eta * lam * g + eta ** 2 * g ** 2 * s / n,
               lam - 4 * eta * g * s / n + eta ** 2 * g ** 2 * lam / n)
        return new, carry

    last, hist = jax.lax.scan(step, (jnp.asarray(s0, dtype), jnp.asarray(lam0, dtype)), None,
                              length=steps)
    return (jnp.append(hist[0], last[0]), jnp.append(hist[1], last[1]))
