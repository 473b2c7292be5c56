"""Gaussian moments of an activation spec, as the signal-propagation maps need them.

The 1-D moments (for z ~ N(0, 1) and a variance q) come from ``widelimits/kernels/_moments.py``,
the one place that knows their closed forms (ReLU family, erf, GELU, sin, cos, exp, monomials,
the exact piecewise-linear formulas of ``shifted_relu``/``soft_threshold``) and falls back on
Gauss-Hermite quadrature (tanh, sigmoid, softplus, swish, ``nets.Elementwise``):

* ``second_moment(act, q)     = E phi(sqrt(q) z)^2``
* ``derivative_moment(act, q) = E phi'(sqrt(q) z)^2``
* ``second_moment_slope(act, q) = d/dq E phi(sqrt(q) z)^2 = E[phi'^2 + phi phi'']``

Here lives the two-input piece: ``equal_variance_dual(act, q)``, a function
``c -> (E phi(u1) phi(u2), E phi'(u1) phi'(u2))`` for ``u1, u2`` of variance ``q`` and
correlation ``c``: the closed-form dual of ``kernels.dual`` where there is one, else the Hermite
coefficients of ``phi`` and ``phi'`` at variance q (Mehler: ``V(c) = sum_k b_k^2 c^k``),
computed once per q and reused for every c.
"""

from __future__ import annotations

import jax.numpy as jnp

from .. import kernels, nets
from ..kernels import _moments
from ..kernels._hermite import _derivative
from ..kernels._moments import (
    derivative_moment as derivative_moment,
    q_floor as q_floor,
    second_moment as second_moment,
    second_moment_slope as second_moment_slope,
)

__all__ = ["second_moment", "derivative_moment", "second_moment_slope", "equal_variance_dual",
           "check_activation", "q_floor"]


def check_activation(owner: str, act, derivative: bool = True):
    """Raise ``TypeError`` unless ``act`` is an activation spec with an infinite-width dual;
    ``ValueError`` for ``nets.Sign`` when ``derivative`` (its derivative is a delta function,
    which ``kernels.dual`` sets to 0, so chi_1 and the depth scales are undefined)."""
    _moments.check_activation(owner, act, "act")
    kernels.dual(act)  # raises TypeError naming the supported activations
    if derivative and isinstance(act, nets.Sign):
        raise ValueError(f"{owner}: nets.Sign has a delta-function derivative, so chi_1 and "
                         "the depth scales are undefined; use a smooth surrogate such as "
                         "nets.Erf(b=...) or nets.Tanh().")


def equal_variance_dual(act, q):
    """A function ``c -> (V(c), Vdot(c))``: ``V = E phi(u1) phi(u2)``, ``Vdot = E phi'(u1)
    phi'(u2)`` for ``u1, u2`` centred Gaussian of variance ``q`` (a scalar) and correlation
    ``c`` (any shape)."""
    q = jnp.asarray(q)
    if not _moments.closed_dual(act):
        order = _moments.quadrature_order(act)
        b2 = kernels.hermite_coefficients(act.fn, q, order) ** 2
        d2 = kernels.hermite_coefficients(_derivative(act.fn), q, order) ** 2

        def series(c):
            c = jnp.asarray(c, q.dtype)[..., None]
            rest = jnp.cumprod(jnp.broadcast_to(c, c.shape[:-1] + (order - 1,)), axis=-1)
            powers = jnp.concatenate([jnp.ones_like(c), rest], axis=-1)  # c^0 .. c^(order-1)
            return jnp.sum(b2 * powers, -1), jnp.sum(d2 * powers, -1)

        return series
    dual = kernels.dual(act)
    return lambda c: dual(q, jnp.asarray(c, q.dtype) * q, q)
