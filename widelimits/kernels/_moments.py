"""One-dimensional Gaussian moments of an activation spec, for z ~ N(0, 1) and a variance q:

* ``moment(act, k, q) = E phi(sqrt(q) z)^k``; ``activation_moments`` stacks several powers;
* ``derivative_moment(act, q) = E phi'(sqrt(q) z)^2``;
* ``second_moment_slope(act, q) = d/dq E phi(sqrt(q) z)^2 = E[phi'^2 + phi phi'']`` (Gaussian
  integration by parts; we differentiate the first form, so kinks where ``phi != 0``, as in
  clipped activations, are handled).

This is the one place that knows which of them have closed forms. Sources, first match wins:

1. ``PiecewiseLinear`` elementwise specs (``signal.shifted_relu``, ``signal.soft_threshold``):
   exact truncated-Gaussian formulas for E phi^2 and E phi'^2 (``_piecewise.py``);
2. E phi^k for every k: the ReLU family ``phi = a min(u, 0) + b max(u, 0)`` (Relu, LeakyRelu,
   Abs, ABRelu), RectifiedMonomial, Identity, Monomial, Sign, Exp;
3. E phi^2 and E phi'^2: the diagonal ``(q, q, q)`` of a closed-form ``dual`` (adds erf, GELU,
   sin, cos; derivative moments of the families of 2.);
4. otherwise Gauss-Hermite quadrature (``gaussian_expectation``; ``order`` defaults to the
   spec's own ``order``, as for ``nets.Elementwise``, else 384), spectrally accurate for smooth
   activations (tanh, sigmoid, softplus, swish, ...). Quadrature of a kinked function converges
   only algebraically (E relu(u) at order 384: relative error 5e-4; E relu(u)^3: 6e-7), hence
   the closed forms.

Everything is elementwise in ``q`` (any shape), differentiable in ``q`` and jit/vmap-able.
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from .. import nets
from ..nets._spec import concrete
from ._dual import DUALS, _hermite, dual
from ._gaussian import gaussian_expectation
from ._hermite import DEFAULT_ORDER, _derivative
from ._piecewise import is_piecewise_linear, piecewise_derivative_moment, piecewise_second_moment

__all__ = ["activation_moments", "check_activation", "closed_dual", "derivative_moment",
           "moment", "q_floor", "quadrature_order", "relu_family", "second_moment",
           "second_moment_slope"]


def check_activation(owner: str, act, name: str = "activation"):
    """Raise ``TypeError`` naming ``owner`` and the argument ``name`` unless ``act`` is an
    activation spec."""
    if not isinstance(act, nets.Activation):
        raise TypeError(f"{owner}: {name} must be an activation spec such as nets.Relu(), got "
                        f"{act!r} of type {type(act).__name__}.")


def relu_family(act):
    """(a, b) with ``act = a min(u, 0) + b max(u, 0)`` (Relu, LeakyRelu, Abs, ABRelu), else None."""
    t = type(act)
    if t is nets.Relu:
        return 0.0, 1.0
    if t is nets.LeakyRelu:
        return act.alpha, 1.0
    if t is nets.Abs:
        return -1.0, 1.0
    if t is nets.ABRelu:
        return act.a, act.b
    return None


def closed_dual(act) -> bool:
    """Whether ``kernels.dual(act)`` is a closed form (not a Hermite expansion)."""
    return DUALS.get(type(act)) not in (None, _hermite)


def quadrature_order(act, order=None) -> int:
    """``order`` if given, else the spec's own ``order`` (``nets.Elementwise``), else 384."""
    return getattr(act, "order", DEFAULT_ORDER) if order is None else order


def q_floor(q):
    """max(q, sqrt(tiny)): the variance at which q -> 0+ limits are evaluated (derivatives in q
    of E phi(sqrt(q) z)^2 involve 1/sqrt(q) factors that a literal 0 turns into 0 * inf)."""
    return jnp.maximum(q, jnp.sqrt(jnp.finfo(q.dtype).tiny))


def _float(q):
    q = jnp.asarray(q)
    return q.astype(jnp.result_type(q, float))


def _double_factorial(k: int) -> int:
    return math.prod(range(k, 0, -2)) if k > 0 else 1


def _rectified_moment(k, q):
    """E[relu(u)^k], u ~ N(0, q): q^(k/2) (k-1)!!/2 for even k, q^(k/2) 2^((k-1)/2) ((k-1)/2)!
    / sqrt(2 pi) for odd k."""
    if k % 2 == 0:
        return q ** (k // 2) * (_double_factorial(k - 1) / 2)
    return q ** (k / 2) * (2 ** ((k - 1) / 2) * math.factorial((k - 1) // 2) / math.sqrt(2 * math.pi))


def _gaussian_moment(k, q):
    return q ** (k / 2) * _double_factorial(k - 1) if k % 2 == 0 else jnp.zeros_like(q)


def _closed_form(act, k, q):
    """E[phi(u)^k] in closed form for every k, or None if ``act`` has none."""
    ab = relu_family(act)
    if ab is not None:  # phi = b relu(u) - a relu(-u): the pieces never overlap; -u ~ u
        a, b = ab
        return (b**k + (-a) ** k) * _rectified_moment(k, q)
    t = type(act)
    if t is nets.RectifiedMonomial:
        return _rectified_moment(act.degree * k, q)
    if t is nets.Identity:
        return _gaussian_moment(k, q)
    if t is nets.Monomial:
        return _gaussian_moment(act.degree * k, q)
    if t is nets.Sign:
        return jnp.ones_like(q) if k % 2 == 0 else jnp.zeros_like(q)
    if t is nets.Exp:
        return act.a**k * jnp.exp(0.5 * (k * act.b) ** 2 * q)
    return None


def moment(act, k: int, q, order: int | None = None):
    """E phi(sqrt(q) z)^k for every entry of ``q`` (any shape; no argument checks)."""
    q = _float(q)
    if k == 2 and is_piecewise_linear(act):
        return piecewise_second_moment(act.func, q)
    val = _closed_form(act, k, q)
    if val is None and k == 2 and closed_dual(act):
        val = dual(act)(q, q, q)[0]
    if val is None:
        val = gaussian_expectation(lambda u: act.fn(u) ** k, q, quadrature_order(act, order))
    return jnp.broadcast_to(jnp.asarray(val, q.dtype), q.shape)


def second_moment(act, q, order: int | None = None):
    """E phi(sqrt(q) z)^2 for every entry of ``q`` (any shape)."""
    return moment(act, 2, q, order)


def derivative_moment(act, q, order: int | None = None):
    """E phi'(sqrt(q) z)^2 for every entry of ``q`` (any shape); phi' by autodiff under
    quadrature (a delta function, as for ``nets.Sign``, counts as 0)."""
    q = _float(q)
    if is_piecewise_linear(act):
        return piecewise_derivative_moment(act.func, q)
    if closed_dual(act):
        return dual(act)(q, q, q)[1]
    dfn = _derivative(act.fn)
    return gaussian_expectation(lambda u: dfn(u) ** 2, q, quadrature_order(act, order))


def second_moment_slope(act, q, order: int | None = None):
    """d/dq E phi(sqrt(q) z)^2 = E[phi'^2 + phi phi''] at ``q`` (elementwise; at q = 0 the
    limit q -> 0+, evaluated at ``q_floor(q)``)."""
    q = q_floor(_float(q))
    return jax.jvp(lambda t: second_moment(act, t, order), (q,), (jnp.ones_like(q),))[1]


def _check_powers(powers):
    powers = tuple(powers)
    for p in powers:
        if isinstance(p, bool) or not isinstance(p, numbers.Integral) or p < 1:
            raise ValueError(f"activation_moments: powers must be positive ints, got {powers!r}.")
    return powers


def activation_moments(activation, q, powers=(2, 4, 6), *, order: int | None = None):
    """E[phi(u)^k], u ~ N(0, q), for each k in ``powers``: array of shape ``(len(powers),) + q.shape``.

    Closed forms for the ReLU family (Relu, LeakyRelu, Abs, ABRelu, RectifiedMonomial), Identity,
    Monomial, Sign and Exp (every k), and for k = 2 also erf, GELU, sin, cos (``kernels.dual``)
    and the piecewise-linear ``signal.shifted_relu``/``soft_threshold``; Gauss-Hermite quadrature
    (``kernels.gaussian_expectation``, ``order`` defaulting to 384, or the activation's own
    ``order`` for ``Elementwise``) otherwise, which is spectrally accurate for smooth activations
    (erf, tanh, GELU, ...). Quadrature of a kinked function converges only algebraically
    (E relu(u) at order 384: relative error 5e-4; E relu(u)^3: 6e-7; the smoother even powers are
    exact to round-off), hence the closed forms. Differentiable in ``q``; works under jit/vmap.
    """
    check_activation("activation_moments", activation)
    powers = _check_powers(powers)
    q = jnp.asarray(q)
    qc = concrete(q)
    if qc is not None and (np.any(~np.isfinite(qc)) or np.any(qc < 0)):
        raise ValueError(f"activation_moments: q (the pre-activation variance) must be finite and "
                         f">= 0, got {qc!r}.")
    return jnp.stack([moment(activation, k, q, order) for k in powers])
