"""One-dimensional Gaussian moments of an activation spec, for z ~ N(0, 1) and a variance q:

* ``gaussian_moment(act, k, q) = E phi(sqrt(q) z)^k``; ``activation_moments`` stacks powers;
* ``derivative_moment(act, q) = E phi'(sqrt(q) z)^2``;
* ``second_moment_slope(act, q) = d/dq E phi(sqrt(q) z)^2 = E[phi'^2 + phi phi'']`` (Gaussian
  integration by parts; we differentiate the first form, so kinks where ``phi != 0``, as in
  clipped activations, are handled);
* ``equal_variance_dual(act, q)``: the dual at one variance, as a function of the correlation.

This is the one place that knows which of them have closed forms. The registry ``MOMENTS``
holds, per activation type, a rule ``rule(act, k, q, derivative)`` returning the closed form
of ``E phi^k`` (``derivative=False``) or ``E phi'^k`` (``True``), or ``None`` where it has none.
Sources, first match wins:

1. the rule: ``E phi^k`` for every k for the ReLU family ``phi = a min(u, 0) + b max(u, 0)``
   (Relu, LeakyRelu, Abs, ABRelu), RectifiedMonomial, Identity, Monomial, Sign, Exp; exact
   truncated-Gaussian formulas for ``E phi^2`` and ``E phi'^2`` of ``nets.PiecewiseLinear``
   elementwise specs (``signal.shifted_relu``, ``signal.soft_threshold``; ``_piecewise.py``);
2. k = 2: the diagonal ``(q, q, q)`` of a closed-form ``dual`` (adds erf, GELU, sin, cos, a
   user's ``Elementwise(fn, dual=...)``, and the derivative moments of the families above);
3. otherwise Gauss-Hermite quadrature (``gaussian_expectation``; ``order`` defaults to the
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
from .._checks import concrete
from .._numerics import q_floor
from .._registry import Registry
from ..nets import check_activation
from ._dual import closed_dual, dual
from ._gaussian import gaussian_expectation
from ._hermite import DEFAULT_ORDER, derivative, hermite_coefficients
from ._piecewise import is_piecewise_linear, piecewise_derivative_moment, piecewise_second_moment

__all__ = ["MOMENTS", "activation_moments", "derivative_moment", "equal_variance_dual",
           "gaussian_moment", "second_moment_slope"]

MOMENTS = Registry("kernels.gaussian_moment", noun="closed-form Gaussian moment")


def _quadrature_order(act, order=None) -> int:
    """``order`` if given, else the spec's own ``order`` (``nets.Elementwise``), else 384."""
    return getattr(act, "order", DEFAULT_ORDER) if order is None else order


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


def _relu_family(a, b):
    """The rule of phi = b relu(u) - a relu(-u): the pieces never overlap and -u ~ u."""
    def rule(act, k, q, derivative):
        if derivative:
            return None  # the closed-form dual's diagonal gives (a^2 + b^2) / 2
        return (b(act) ** k + (-a(act)) ** k) * _rectified_moment(k, q)
    return rule


def _const(value):
    return lambda act: value


for _type, _a, _b in ((nets.Relu, _const(0.0), _const(1.0)),
                      (nets.LeakyRelu, lambda act: act.alpha, _const(1.0)),
                      (nets.Abs, _const(-1.0), _const(1.0)),
                      (nets.ABRelu, lambda act: act.a, lambda act: act.b)):
    MOMENTS.register(_type, rule=_relu_family(_a, _b))


@MOMENTS.register(nets.RectifiedMonomial)
def _rectified_monomial(act, k, q, derivative):
    return None if derivative else _rectified_moment(act.degree * k, q)


@MOMENTS.register(nets.Identity)
def _identity(act, k, q, derivative):
    return None if derivative else _gaussian_moment(k, q)


@MOMENTS.register(nets.Monomial)
def _monomial(act, k, q, derivative):
    return None if derivative else _gaussian_moment(act.degree * k, q)


@MOMENTS.register(nets.Sign)
def _sign(act, k, q, derivative):
    if derivative:
        return None
    return jnp.ones_like(q) if k % 2 == 0 else jnp.zeros_like(q)


@MOMENTS.register(nets.Exp)
def _exp(act, k, q, derivative):
    return None if derivative else act.a**k * jnp.exp(0.5 * (k * act.b) ** 2 * q)


@MOMENTS.register(nets.Elementwise)
def _elementwise(act, k, q, derivative):
    if k != 2 or not is_piecewise_linear(act):
        return None
    return (piecewise_derivative_moment if derivative else piecewise_second_moment)(act.func, q)


def _closed_form(act, k, q, derivative=False):
    rule = MOMENTS.find(type(act))
    return None if rule is None else rule(act, k, q, derivative)


def gaussian_moment(act, k: int, q, order: int | None = None):
    """E phi(sqrt(q) z)^k, z ~ N(0, 1), for every entry of ``q`` (any shape; no argument
    checks): closed form where there is one, else Gauss-Hermite quadrature of ``order``.

    >>> from widelimits import kernels, nets
    >>> float(kernels.gaussian_moment(nets.Relu(), 2, 3.0))    # E relu(u)^2 = q / 2
    1.5
    """
    q = _float(q)
    val = _closed_form(act, k, q)
    if val is None and k == 2 and closed_dual(act):
        val = dual(act)(q, q, q)[0]
    if val is None:
        val = gaussian_expectation(lambda u: act.fn(u) ** k, q, _quadrature_order(act, order))
    return jnp.broadcast_to(jnp.asarray(val, q.dtype), q.shape)


def derivative_moment(act, q, order: int | None = None):
    """E phi'(sqrt(q) z)^2 for every entry of ``q`` (any shape); phi' by autodiff under
    quadrature (a delta function, as for ``nets.Sign``, counts as 0).

    >>> from widelimits import kernels, nets
    >>> float(kernels.derivative_moment(nets.Relu(), 2.0))    # P(u > 0)
    0.5
    """
    q = _float(q)
    val = _closed_form(act, 2, q, derivative=True)
    if val is not None:
        return val
    if closed_dual(act):
        return dual(act)(q, q, q)[1]
    dfn = derivative(act.fn)
    return gaussian_expectation(lambda u: dfn(u) ** 2, q, _quadrature_order(act, order))


def second_moment_slope(act, q, order: int | None = None):
    """d/dq E phi(sqrt(q) z)^2 = E[phi'^2 + phi phi''] at ``q`` (elementwise; at q = 0 the
    limit q -> 0+, evaluated at ``q_floor(q)``).

    >>> from widelimits import kernels, nets
    >>> round(float(kernels.second_moment_slope(nets.Tanh(), 1e-9)), 5)  # E phi^2 ~ q near 0
    1.0
    """
    q = q_floor(_float(q))
    return jax.jvp(lambda t: gaussian_moment(act, 2, t, order), (q,), (jnp.ones_like(q),))[1]


def equal_variance_dual(act, q):
    """A function ``c -> (V(c), Vdot(c))``: ``V = E phi(u1) phi(u2)``, ``Vdot = E phi'(u1)
    phi'(u2)`` for ``u1, u2`` centred Gaussian of variance ``q`` (a scalar) and correlation
    ``c`` (any shape). The closed-form dual where there is one, else the Hermite coefficients
    of ``phi`` and ``phi'`` at variance q (Mehler: ``V(c) = sum_k b_k^2 c^k``), computed once
    per q and reused for every c.

    >>> from widelimits import kernels, nets
    >>> v, vdot = kernels.equal_variance_dual(nets.Tanh(), 1.0)(0.0)
    >>> abs(float(v)) < 1e-12    # tanh is odd: uncorrelated inputs give uncorrelated outputs
    True
    """
    q = jnp.asarray(q)
    if not closed_dual(act):
        order = _quadrature_order(act)
        b2 = hermite_coefficients(act.fn, q, order) ** 2
        d2 = hermite_coefficients(derivative(act.fn), q, order) ** 2

        def series(c):
            c = jnp.asarray(c, q.dtype)[..., None]
            rest = jnp.cumprod(jnp.broadcast_to(c, c.shape[:-1] + (order - 1,)), axis=-1)
            powers = jnp.concatenate([jnp.ones_like(c), rest], axis=-1)  # c^0 .. c^(order-1)
            return jnp.sum(b2 * powers, -1), jnp.sum(d2 * powers, -1)

        return series
    closed = dual(act)
    return lambda c: closed(q, jnp.asarray(c, q.dtype) * q, q)


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

    >>> from widelimits import kernels, nets
    >>> kernels.activation_moments(nets.Identity(), 2.0, (2, 4)).tolist()   # q, 3 q^2
    [2.0, 12.0]
    """
    check_activation("activation_moments", activation)
    powers = _check_powers(powers)
    q = jnp.asarray(q)
    qc = concrete(q)
    if qc is not None and (np.any(~np.isfinite(qc)) or np.any(qc < 0)):
        raise ValueError(f"activation_moments: q (the pre-activation variance) must be finite and "
                         f">= 0, got {qc!r}.")
    return jnp.stack([gaussian_moment(activation, k, q, order) for k in powers])
