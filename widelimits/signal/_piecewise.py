"""Sparsity-inducing piecewise-linear activations (Price et al. 2024).

Price et al. 2024 ("Deep neural network initialization with sparsity inducing activations",
ICLR) study the shifted ReLU ``max(0, x - tau)``, soft thresholding
``sign(x) max(0, |x| - tau)`` and their magnitude-clipped versions
``min(max(0, x - tau), m)`` and ``sign(x) min(max(0, |x| - tau), m)``.

``shifted_relu`` and ``soft_threshold`` return ``nets.Elementwise`` specs, so every interpreter
of the package accepts them (``kernels.dual`` expands them in Hermite polynomials). Their
callable is a ``nets.PiecewiseLinear``: a list of linear pieces, from which
``kernels.gaussian_moment`` and ``kernels.derivative_moment`` compute ``E phi(sqrt(q) z)^2`` and
``E phi'(sqrt(q) z)^2`` exactly with truncated Gaussian moments; Gauss-Hermite quadrature of such
kinked functions converges only algebraically. The variance maps of the sparse-activation
reproduction use the exact forms.
"""

from __future__ import annotations

import math
import numbers

from .. import nets

__all__ = ["shifted_relu", "soft_threshold"]


def _check(owner, name, value, allow_none=False, positive=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r} "
                        f"of type {type(value).__name__}.")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        want = "> 0" if positive else ">= 0"
        raise ValueError(f"{owner}: {name} must be a finite number {want}, got {value!r}.")
    return value


def shifted_relu(tau: float, clip: float | None = None) -> nets.Elementwise:
    """The shifted ReLU ``max(0, x - tau)`` (Price et al. 2024, ReLU_tau), or with ``clip = m``
    the clipped ``min(max(0, x - tau), m)`` (CReLU_{tau,m}), as a ``nets.Elementwise`` spec.

    ``tau >= 0`` and ``clip > 0`` are Python floats (static: they select the pieces).

    Its second moment is exact: E max(0, z - tau)^2 = (1 + tau^2) P(z > tau) - tau phi(tau) for
    z ~ N(0, 1), phi the standard normal density; tau = 0 is the ReLU (variance-preserving at
    sw2 = 2, sb2 = 0).

    >>> import math
    >>> import jax.numpy as jnp, numpy as np
    >>> from widelimits import signal
    >>> act = signal.shifted_relu(0.5)
    >>> act
    Elementwise(shifted_relu(tau=0.5))
    >>> x = jnp.array([-1.0, 0.25, 1.0, 2.0])
    >>> np.asarray(act(x), float).tolist()
    [0.0, 0.0, 0.5, 1.5]
    >>> np.asarray(signal.shifted_relu(0.5, clip=1.0)(x), float).tolist()
    [0.0, 0.0, 0.5, 1.0]
    >>> tail = 0.5 * math.erfc(0.5 / math.sqrt(2))
    >>> ref = 1.25 * tail - 0.5 * math.exp(-0.125) / math.sqrt(2 * math.pi)
    >>> bool(abs(float(signal.length_map(act, 1.0, 1.0, 0.0)) - ref) < 1e-6)
    True
    >>> round(float(signal.length_map(signal.shifted_relu(0.0), 1.0, 2.0, 0.0)), 4)
    1.0
    """
    tau = _check("shifted_relu", "tau", tau)
    clip = _check("shifted_relu", "clip", clip, allow_none=True, positive=True)
    inf = math.inf
    if clip is None:
        pieces = ((-inf, tau, 0.0, 0.0), (tau, inf, 1.0, -tau))
    else:
        pieces = ((-inf, tau, 0.0, 0.0), (tau, tau + clip, 1.0, -tau), (tau + clip, inf, 0.0, clip))
    func = nets.PiecewiseLinear("shifted_relu", tau, clip, pieces)
    return nets.Elementwise(func, name=func.__name__)


def soft_threshold(tau: float, clip: float | None = None) -> nets.Elementwise:
    """Soft thresholding ``sign(x) max(0, |x| - tau)`` (Price et al. 2024, ST_tau), or with
    ``clip = m`` the clipped ``sign(x) min(max(0, |x| - tau), m)`` (CST_{tau,m}), as a
    ``nets.Elementwise`` spec. ``tau >= 0`` and ``clip > 0`` are Python floats (static).

    Inputs with |x| <= tau are set to 0 (sparsity), the rest shrunk towards 0 by tau. Being odd,
    its second moment is twice that of ``shifted_relu(tau)``.

    >>> import jax.numpy as jnp, numpy as np
    >>> from widelimits import signal
    >>> act = signal.soft_threshold(0.5)
    >>> (np.asarray(act(jnp.array([-2.0, -0.25, 0.25, 2.0])), float) + 0.0).tolist()
    [-1.5, 0.0, 0.0, 1.5]
    >>> q_st = signal.length_map(act, 1.0, 1.0, 0.0)
    >>> q_sr = signal.length_map(signal.shifted_relu(0.5), 1.0, 1.0, 0.0)
    >>> bool(abs(q_st - 2 * q_sr) < 1e-6)
    True
    """
    tau = _check("soft_threshold", "tau", tau)
    clip = _check("soft_threshold", "clip", clip, allow_none=True, positive=True)
    inf = math.inf
    if clip is None:
        pieces = ((-inf, -tau, 1.0, tau), (-tau, tau, 0.0, 0.0), (tau, inf, 1.0, -tau))
    else:
        top = tau + clip
        pieces = ((-inf, -top, 0.0, -clip), (-top, -tau, 1.0, tau), (-tau, tau, 0.0, 0.0),
                  (tau, top, 1.0, -tau), (top, inf, 0.0, clip))
    func = nets.PiecewiseLinear("soft_threshold", tau, clip, pieces)
    return nets.Elementwise(func, name=func.__name__)
