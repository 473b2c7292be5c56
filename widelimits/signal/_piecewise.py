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
    ``nets.Elementwise`` spec. ``tau >= 0`` and ``clip > 0`` are Python floats (static)."""
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
