"""Fixed width, infinite depth: the ResNet as a stochastic differential equation (Hayou 2022,
"On the infinite-depth limit of finite-width neural networks").

For one input, a block ``x_{l+1} = x_l + L^{-1/2} φ(x_l) W / sqrt(n)`` with W iid N(0, 1) (n, n)
adds ``L^{-1/2} ||φ(x_l)|| / sqrt(n)`` times a standard normal n-vector independent of the past
(rotation invariance of W). The depth-L network is therefore, in distribution, the
Euler-Maruyama scheme with step 1/L of

    dX_t = n^{-1/2} ||φ(X_t)|| dB_t,   B an n-dimensional Brownian motion, t ∈ [0, 1],

and converges to it as L → ∞ at fixed n. For linear φ, Itô's formula for Y = ||X||² gives
``dY = 2 X·dX + ||X||²/n · n dt = Y dt + (2/sqrt(n)) Y dW_t`` with W_t = ∫ X/||X||·dB a
one-dimensional Brownian motion, a geometric Brownian motion:

    ||X_t||² = ||X_0||² exp((1 - 2/n) t + 2 W_t / sqrt(n)),

so log(||X_t||²/||X_0||²) ~ N((1 - 2/n) t, 4 t / n): the norm is log-normal at every finite width
and concentrates on e^{t} (the infinite-width value, q_t = q_0 e^t for φ = id) as n → ∞.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special

from .. import nets
from .._checks import finite_float, integer, nonnegative

__all__ = ["linear_sde_log_norm", "linear_resnet_log_norm", "sample_sde"]


def _check_t(who, t):
    nonnegative(f"depth.{who}", "t", t)
    return finite_float(f"depth.{who}", "t", t)


def linear_sde_log_norm(width: int, t: float = 1.0) -> tuple[float, float]:
    """Mean and variance of ``log(||X_t||² / ||X_0||²)`` for the linear-activation SDE
    ``dX = n^{-1/2} ||X|| dB`` at width n = ``width`` and time ``t`` (Hayou 2022): the Gaussian
    ``N((1 - 2/n) t, 4 t / n)`` (module docstring). Returns ``(mean, variance)`` as floats.

    >>> from widelimits import depth
    >>> depth.linear_sde_log_norm(8, 1.0)
    (0.75, 0.5)
    """
    integer("depth.linear_sde_log_norm", "width", width)
    t = _check_t("linear_sde_log_norm", t)
    return (1.0 - 2.0 / width) * t, 4.0 * t / width


def linear_resnet_log_norm(width: int, depth: int, *, order: int = 160) -> tuple[float, float]:
    """Exact mean and variance of ``log(||x_L||² / ||x_0||²)`` for the linear ResNet
    ``x_{l+1} = x_l + L^{-1/2} x_l W_l / sqrt(n)`` of finite width n and depth L, W iid N(0, 1).

    By rotation invariance the L step ratios ``||x_{l+1}||²/||x_l||² = (1 + a g)² + a² χ²_{n-1}``
    (a = (nL)^{-1/2}, g ~ N(0, 1) and χ²_{n-1} independent) are iid, so the log-norm is a sum of
    L iid terms; the moments of one term are computed by Gauss-Hermite (in g) times generalised
    Gauss-Laguerre (in χ²_{n-1}/2 ~ Gamma((n-1)/2)) quadrature with ``order`` nodes each
    (NumPy/SciPy, float64). Converges to ``linear_sde_log_norm(width, 1)`` as L → ∞; expanding
    log R to fourth order in a, the mean is ``1 - 2/n - (1 - 6/n + 8/n²) / (2L) + O(L^-2)``.

    >>> from widelimits import depth
    >>> m, v = depth.linear_resnet_log_norm(8, 64)   # SDE: (0.75, 0.5); mean 0.75 - 0.375/128
    >>> round(m, 4), round(0.75 - 0.375 / 128, 4), round(v, 3)
    (0.7471, 0.7471, 0.492)
    """
    integer("depth.linear_resnet_log_norm", "width", width)
    integer("depth.linear_resnet_log_norm", "depth", depth)
    integer("depth.linear_resnet_log_norm", "order", order)
    a2 = 1.0 / (width * depth)
    z, wz = special.roots_hermitenorm(order)
    wz = wz / wz.sum()
    if width == 1:
        chi, wc = np.zeros(1), np.ones(1)
    else:
        k = (width - 1) / 2
        y, wy = special.roots_genlaguerre(order, k - 1)
        chi, wc = 2 * y, wy / wy.sum()
    ratio = (1 + np.sqrt(a2) * z[:, None]) ** 2 + a2 * chi[None, :]
    logr = np.log(ratio)
    w = wz[:, None] * wc[None, :]
    m1 = float(np.sum(w * logr))
    var1 = float(np.sum(w * (logr - m1) ** 2))
    return depth * m1, depth * var1


@functools.partial(jax.jit, static_argnames=("n_steps",))
def _euler(activation, keys, x0, n_steps, dt):
    n = x0.shape[-1]

    def one(key):
        def step(x, k):
            dw = jax.random.normal(k, x.shape, x.dtype) * jnp.sqrt(dt)
            return x + jnp.linalg.norm(activation(x)) / n**0.5 * dw, None

        x, _ = jax.lax.scan(step, x0, jax.random.split(key, n_steps))
        return x

    return jax.vmap(one)(keys)


def sample_sde(key, x0, activation, *, n_steps: int, n_samples: int, t: float = 1.0):
    """Samples of X_t for the fixed-width SDE ``dX = n^{-1/2} ||φ(X)|| dB`` (Hayou 2022) from
    ``x0`` (n,), by Euler-Maruyama with ``n_steps`` steps of size t/n_steps driven by Gaussian
    n-vectors (O(n) work per step, unlike the O(n²) matrix product of the network). Sample s
    uses ``jax.random.split(key, n_samples)[s]``. Returns (n_samples, n) in the dtype of x0.
    The depth-L network is this scheme with n_steps = L (in distribution, for one input).

    >>> import jax, numpy as np
    >>> from widelimits import depth, nets
    >>> xt = depth.sample_sde(jax.random.key(0), np.ones(4, np.float32), nets.Identity(),
    ...                       n_steps=8, n_samples=3)
    >>> xt.shape, xt.dtype
    ((3, 4), dtype('float32'))
    """
    integer("depth.sample_sde", "n_steps", n_steps)
    integer("depth.sample_sde", "n_samples", n_samples)
    t = _check_t("sample_sde", t)
    nets.check_activation("depth.sample_sde", activation)
    if not hasattr(x0, "shape") or not hasattr(x0, "dtype"):
        x0 = np.asarray(x0, dtype=float)
    if x0.ndim != 1 or not jnp.issubdtype(x0.dtype, jnp.floating):
        raise ValueError(f"depth.sample_sde: x0 must be a floating-point vector (n,), got shape "
                         f"{tuple(x0.shape)} and dtype {x0.dtype}.")
    x0 = jnp.asarray(x0)
    keys = jax.random.split(key, n_samples)
    return _euler(activation, keys, x0, n_steps, jnp.asarray(t / n_steps, x0.dtype))
