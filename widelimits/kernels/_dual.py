"""Dual activations: the infinite-width maps of each nonlinearity.

For centred jointly Gaussian (u, v) with covariance [[q11, q12], [q12, q22]] a dual returns

    V    = E[phi(u) phi(v)]      (NNGP map)
    Vdot = E[phi'(u) phi'(v)]    (derivative map, multiplies the NTK)

Closed forms where they exist (each is checked against quadrature and Monte Carlo in
tests/test_dual.py): the arc-cosine kernels (Cho & Saul 2009, eq. 1-3), erf (Williams 1997,
eq. 11), GELU (Tsuchida et al. 2020), sin/cos/exp (Gaussian moment identities), monomials
(Mehler's formula); a Hermite expansion (``_hermite.py``) for the rest, and a user's closed form
for ``nets.Elementwise(fn, dual=...)``. Inputs broadcast: q11 (n1, 1), q12 (n1, n2), q22
(1, n2) gives (n1, n2) outputs. Each activation type has one rule ``rule(act, q11, q12, q22)``
in the registry ``DUALS``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from .. import nets
from .._registry import Registry
from ._arccos import arccos_j, arctan2, safe_correlation, safe_sqrt
from ._hermite import DEFAULT_ORDER, hermite_dual

__all__ = ["dual", "DUALS", "closed_dual"]

DUALS = Registry(
    "kernels.dual", noun="infinite-width rule",
    hint="Wrap a custom function in nets.Elementwise(fn) (a Hermite expansion), or give its "
         "closed form with nets.Elementwise(fn, dual=...).")

_TWO_PI = 2 * math.pi


def _rectified(n, q11, q12, q22):
    """E[relu(u)^n relu(v)^n] (Cho & Saul 2009, arc-cosine kernel of order n)."""
    c = safe_correlation(q11, q12, q22)
    scale = safe_sqrt(q11 * q22) ** n if n else 1.0
    return scale * arccos_j(n, c) / _TWO_PI


def _relu(act, q11, q12, q22):
    return _rectified(1, q11, q12, q22), _rectified(0, q11, q12, q22)


def _abrelu_ab(a, b, q11, q12, q22):
    # phi = b relu(x) - a relu(-x); the pairs (u, -v) have correlation -c.
    same, flip = a * a + b * b, 2 * a * b
    v = same * _rectified(1, q11, q12, q22) - flip * _rectified(1, q11, -q12, q22)
    dv = same * _rectified(0, q11, q12, q22) + flip * _rectified(0, q11, -q12, q22)
    return v, dv


def _abrelu(act, q11, q12, q22):
    return _abrelu_ab(act.a, act.b, q11, q12, q22)


def _leaky_relu(act, q11, q12, q22):
    return _abrelu_ab(act.alpha, 1.0, q11, q12, q22)


def _abs(act, q11, q12, q22):
    return _abrelu_ab(-1.0, 1.0, q11, q12, q22)


def _rectified_monomial(act, q11, q12, q22):
    n = act.degree
    return _rectified(n, q11, q12, q22), n * n * _rectified(n - 1, q11, q12, q22)


def _sign(act, q11, q12, q22):
    # E[sign u sign v] = (2/pi) arcsin c = 2 J_0(c)/pi - 1; sign' = 0 almost everywhere.
    v = 2 * arccos_j(0, safe_correlation(q11, q12, q22)) / math.pi - 1
    return v, jnp.zeros_like(v)


def _erf(act, q11, q12, q22):
    # Williams 1997, for a erf(b x) + c: rescale covariances by b^2; E[erf] = 0.
    a, b, c = act.a, act.b, act.c
    b2 = b * b
    # arcsin(y / sqrt(p)) = atan2(y, s) with s^2 = p - y^2 >= 1 + 2 b^2 (q11 + q22) > 0: one
    # square root serves both maps.
    y = 2 * b2 * q12
    s = jnp.sqrt((1 + 2 * b2 * q11) * (1 + 2 * b2 * q22) - y * y)
    v = a * a * (2 / math.pi) * arctan2(y, s) + c * c
    dv = a * a * b2 * (4 / math.pi) / s
    return v, dv


def _gelu_value(q11, q12, q22):
    # Tsuchida et al. 2020 (arXiv 2002.08517): with D^2 = (1+q11)(1+q22) - q12^2,
    # V = q12/4 + [(q12^2 + q11 q22 D^2)/((1+q11)(1+q22) D) + q12 atan2(q12, D)] / (2 pi).
    p = (1 + q11) * (1 + q22)
    d = jnp.sqrt(p - q12 * q12)
    return q12 / 4 + ((q12 * q12 + q11 * q22 * d * d) / (p * d) + q12 * arctan2(q12, d)) / _TWO_PI


def _gelu(act, q11, q12, q22):
    # Price's theorem: E[phi'(u) phi'(v)] = dV/dq12 (V is smooth: D >= 1).
    q11, q12, q22 = jnp.broadcast_arrays(q11, q12, q22)
    return jax.jvp(lambda t: _gelu_value(q11, t, q22), (q12,), (jnp.ones_like(q12),))


def _sin_abc(a, b, c, q11, q12, q22):
    # E[sin(bu+c) sin(bv+c)] = [e^{-b^2(q11+q22-2q12)/2} - e^{-b^2(q11+q22+2q12)/2} cos 2c] / 2.
    b2 = b * b
    minus = jnp.exp(-b2 * (q11 + q22 - 2 * q12) / 2)
    plus = jnp.exp(-b2 * (q11 + q22 + 2 * q12) / 2) * jnp.cos(2 * c)
    return a * a * (minus - plus) / 2, a * a * b2 * (minus + plus) / 2


def _sin(act, q11, q12, q22):
    return _sin_abc(act.a, act.b, act.c, q11, q12, q22)


def _cos(act, q11, q12, q22):
    return _sin_abc(act.a, act.b, act.c + math.pi / 2, q11, q12, q22)


def _exp(act, q11, q12, q22):
    # E[a^2 e^{b(u+v)}] = a^2 exp(b^2 (q11 + q22 + 2 q12) / 2); phi' = b phi.
    v = act.a * act.a * jnp.exp(act.b * act.b * (q11 + q22 + 2 * q12) / 2)
    return v, act.b * act.b * v


def _monomial_value(k, q11, q12, q22):
    # x^k = sum_m k!/(m! ((k-m)/2)! 2^((k-m)/2)) He_m(x) (m = k mod 2) and Mehler's formula.
    total = 0.0
    for m in range(k % 2, k + 1, 2):
        j = (k - m) // 2
        coef = math.factorial(k) / (math.factorial(m) * math.factorial(j) * 2**j)
        total = total + coef * coef * math.factorial(m) * (q11 * q22) ** j * q12**m
    return total + jnp.zeros_like(q12)


def _monomial(act, q11, q12, q22):
    k = act.degree
    v = _monomial_value(k, q11, q12, q22)
    dv = k * k * _monomial_value(k - 1, q11, q12, q22) if k > 0 else jnp.zeros_like(v)
    return v, dv


def _identity(act, q11, q12, q22):
    q12 = q12 + jnp.zeros(jnp.broadcast_shapes(jnp.shape(q11), jnp.shape(q22)), q12.dtype)
    return q12, jnp.ones_like(q12)


def _hermite(act, q11, q12, q22):
    return hermite_dual(act.fn, q11, q12, q22, DEFAULT_ORDER)


def _elementwise(act, q11, q12, q22):
    if act.dual is not None:
        return act.dual(q11, q12, q22)
    return hermite_dual(act.fn, q11, q12, q22, act.order)


for _type, _rule in (
        (nets.Relu, _relu), (nets.LeakyRelu, _leaky_relu), (nets.Abs, _abs),
        (nets.ABRelu, _abrelu), (nets.RectifiedMonomial, _rectified_monomial),
        (nets.Sign, _sign), (nets.Erf, _erf), (nets.Gelu, _gelu), (nets.Sin, _sin),
        (nets.Cos, _cos), (nets.Exp, _exp), (nets.Monomial, _monomial),
        (nets.Identity, _identity), (nets.Tanh, _hermite), (nets.Sigmoid, _hermite),
        (nets.Softplus, _hermite), (nets.Swish, _hermite), (nets.Elementwise, _elementwise)):
    DUALS.register(_type, rule=_rule)


def closed_dual(act) -> bool:
    """Whether ``kernels.dual(act)`` is a closed form (not a Hermite expansion)."""
    rule = DUALS.find(type(act))
    if rule is _elementwise:
        return act.dual is not None
    return rule not in (None, _hermite)


def dual(activation):
    """The dual map of ``activation``: a function ``(q11, q12, q22) -> (V, Vdot)`` with
    ``V = E[phi(u) phi(v)]`` and ``Vdot = E[phi'(u) phi'(v)]`` for centred Gaussians of
    covariance ``[[q11, q12], [q12, q22]]`` (arrays broadcast). Closed forms: arc-cosine family
    (Cho & Saul 2009), erf (Williams 1997), GELU (Tsuchida et al. 2020), sin/cos/exp (Gaussian
    moment identities), monomials (Mehler), ``nets.Elementwise(fn, dual=...)``'s own; others by
    Hermite expansion.

    >>> from widelimits import kernels, nets
    >>> v, vdot = kernels.dual(nets.Relu())(1.0, 0.0, 1.0)   # orthogonal unit-variance inputs
    >>> round(float(v), 6), float(vdot)                       # 1/(2 pi), 1/4
    (0.159155, 0.25)
    """
    if not isinstance(activation, nets.Activation):
        raise TypeError(f"dual: expected an activation spec such as nets.Relu(), got "
                        f"{activation!r} of type {type(activation).__name__}.")
    rule = DUALS.rule(activation)

    def fn(q11, q12, q22):
        q11, q12, q22 = (jnp.asarray(q, dtype=jnp.result_type(q11, q12, q22, float))
                         for q in (q11, q12, q22))
        return rule(activation, q11, q12, q22)

    return fn
