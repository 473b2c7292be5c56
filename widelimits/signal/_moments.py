"""Gaussian moments of an activation spec, as the signal-propagation maps need them.

For z ~ N(0, 1) and a variance q:

* ``second_moment(act, q)     = E phi(sqrt(q) z)^2``
* ``derivative_moment(act, q) = E phi'(sqrt(q) z)^2``
* ``second_moment_slope(act, q) = d/dq E phi(sqrt(q) z)^2 = E[phi'^2 + phi phi'']`` (Gaussian
  integration by parts; the second form is Schoenholz et al. 2017's, the first is what we
  differentiate, so kinks with ``phi != 0`` there, e.g. a clipped activation, are handled)
* ``equal_variance_dual(act, q)``: a function ``c -> (E phi(u1) phi(u2), E phi'(u1) phi'(u2))``
  for ``u1, u2`` of variance ``q`` and correlation ``c``.

Sources, per activation: closed-form duals of ``kernels.dual`` (ReLU family, erf, GELU, sin,
cos, exp, monomials, identity, sign); exact piecewise formulas for ``shifted_relu`` and
``soft_threshold``; otherwise (tanh, sigmoid, softplus, swish, ``nets.Elementwise``) 1-D
Gauss-Hermite quadrature (``kernels.gaussian_expectation``) and, for the correlation dual, the
Hermite coefficients of ``phi`` and ``phi'`` at variance q (Mehler: ``V(c) = sum_k b_k^2 c^k``),
computed once per q and reused for every c.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .. import kernels, nets
from ._piecewise import (
    is_piecewise_linear,
    piecewise_derivative_moment,
    piecewise_second_moment,
)

__all__ = ["second_moment", "derivative_moment", "second_moment_slope", "equal_variance_dual",
           "check_activation", "q_floor"]

# Activations whose kernels.dual is a Hermite expansion: here 1-D quadrature is cheaper.
_QUADRATURE = (nets.Tanh, nets.Sigmoid, nets.Softplus, nets.Swish, nets.Elementwise)
_DEFAULT_ORDER = 384


def check_activation(owner: str, act, derivative: bool = True):
    """Raise ``TypeError`` unless ``act`` is an activation spec with an infinite-width dual;
    ``ValueError`` for ``nets.Sign`` when ``derivative`` (its derivative is a delta function,
    which ``kernels.dual`` sets to 0, so chi_1 and the depth scales are undefined)."""
    if not isinstance(act, nets.Activation):
        raise TypeError(f"{owner}: act must be an activation spec such as nets.Tanh(), got "
                        f"{act!r} of type {type(act).__name__}.")
    kernels.dual(act)  # raises TypeError naming the supported activations
    if derivative and isinstance(act, nets.Sign):
        raise ValueError(f"{owner}: nets.Sign has a delta-function derivative, so chi_1 and "
                         "the depth scales are undefined; use a smooth surrogate such as "
                         "nets.Erf(b=...) or nets.Tanh().")


def _order(act):
    return getattr(act, "order", _DEFAULT_ORDER)


def _derivative(fn):
    return lambda x: jax.jvp(fn, (x,), (jnp.ones_like(x),))[1]


def q_floor(q):
    """max(q, sqrt(tiny)): the variance at which K -> 0+ limits are evaluated (derivatives in q
    of E phi(sqrt(q) z)^2 involve 1/sqrt(q) factors that a literal 0 turns into 0 * inf)."""
    return jnp.maximum(q, jnp.sqrt(jnp.finfo(q.dtype).tiny))


def second_moment(act, q):
    """E phi(sqrt(q) z)^2 for every entry of ``q`` (any shape)."""
    q = jnp.asarray(q)
    if is_piecewise_linear(act):
        return piecewise_second_moment(act.func, q)
    if isinstance(act, _QUADRATURE):
        return kernels.gaussian_expectation(lambda x: act.fn(x) ** 2, q, _order(act))
    return kernels.dual(act)(q, q, q)[0]


def derivative_moment(act, q):
    """E phi'(sqrt(q) z)^2 for every entry of ``q`` (any shape)."""
    q = jnp.asarray(q)
    if is_piecewise_linear(act):
        return piecewise_derivative_moment(act.func, q)
    if isinstance(act, _QUADRATURE):
        dfn = _derivative(act.fn)
        return kernels.gaussian_expectation(lambda x: dfn(x) ** 2, q, _order(act))
    return kernels.dual(act)(q, q, q)[1]


def second_moment_slope(act, q):
    """d/dq E phi(sqrt(q) z)^2 = E[phi'^2 + phi phi''] at ``q`` (elementwise; at q = 0 the
    limit q -> 0+, evaluated at ``q_floor(q)``)."""
    q = q_floor(jnp.asarray(q, jnp.result_type(q, float)))
    return jax.jvp(lambda t: second_moment(act, t), (q,), (jnp.ones_like(q),))[1]


def equal_variance_dual(act, q):
    """A function ``c -> (V(c), Vdot(c))``: ``V = E phi(u1) phi(u2)``, ``Vdot = E phi'(u1)
    phi'(u2)`` for ``u1, u2`` centred Gaussian of variance ``q`` (a scalar) and correlation
    ``c`` (any shape)."""
    q = jnp.asarray(q)
    if isinstance(act, _QUADRATURE):
        order = _order(act)
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
