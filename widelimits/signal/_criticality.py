"""The edge of chaos and criticality.

Edge of chaos (Poole et al. 2016; Schoenholz et al. 2017; Hayou, Doucet & Rousseau 2019): the
curve in the (sb2, sw2) plane where chi_1 = sw2 E phi'(sqrt(q*) z)^2 = 1 at the length map's
fixed point q* = sw2 E phi(sqrt(q*) z)^2 + sb2. For each sb2 we solve these two equations for
(q*, sw2): eliminating sw2 = 1 / E phi'^2(q*) leaves one equation in q*,

    s(q*) := q* - E phi(sqrt(q*) z)^2 / E phi'(sqrt(q*) z)^2 = sb2,

solved by a scan of q* on a logarithmic grid and bisection (the smallest root). Along the curve
q* is the length map's stable fixed point for tanh-like activations (chi_q = 1 + sw2 E phi'' phi
< 1); ``mean_field`` at the returned point confirms it (tested).

Criticality in Roberts, Yaida & Hanin's language ("The Principles of Deep Learning Theory",
ch. 5; C_W = sw2, C_b = sb2, K the single-input kernel):

    chi_par(K)  = (C_W / K) <z sigma'(z) sigma(z)>_K = C_W d<sigma^2>_K / dK   (= chi_q),
    chi_perp(K) = C_W <sigma'(z)^2>_K                                          (= chi_1),

and (C_b, C_W) is critical when chi_par = chi_perp = 1 at the fixed point
K* = C_b + C_W <sigma^2>_{K*}. Both equal 1 iff <sigma sigma''>_{K*} = 0 (integration by parts),
then C_W = 1 / <sigma'^2>_{K*} and C_b = K* - C_W <sigma^2>_{K*} >= 0 is required.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import brentq

from ._maps import bucketed, check_variance
from ._moments import (
    check_activation,
    derivative_moment,
    q_floor,
    second_moment,
    second_moment_slope,
)

__all__ = ["Criticality", "edge_of_chaos", "chi_parallel", "chi_perp", "critical_points",
           "criticality"]

_GRID = 97  # q* grid points (log-spaced) scanned for the edge-of-chaos root
_BISECTIONS = 60
_K_SMALL = 1e-3  # where the approach to a K* = 0 fixed point is tested


def _eoc_core(act, sb2, q_lo, q_hi):
    dtype = sb2.dtype
    s = lambda q: q - second_moment(act, q) / derivative_moment(act, q)
    grid = jnp.exp(jnp.linspace(jnp.log(q_lo), jnp.log(q_hi), _GRID, dtype=dtype))
    reached = s(grid) >= sb2
    idx = jnp.arange(_GRID)
    first = jnp.min(jnp.where(reached, idx, _GRID))
    found = first < _GRID
    at = lambda i: grid[jnp.clip(i, 0, _GRID - 1)]
    lo = jnp.where(first > 0, at(first - 1), 0.0)
    hi = at(first)

    def bisect(i, bounds):
        lo, hi = bounds
        m = jnp.where((i < 8) & (lo > 0), jnp.sqrt(lo * hi), (lo + hi) / 2)
        up = s(m) >= sb2
        return jnp.where(up, lo, m), jnp.where(up, m, hi)

    lo, hi = jax.lax.fori_loop(0, _BISECTIONS, bisect, (lo, hi))
    q = q_floor((lo + hi) / 2)
    sw2 = 1 / derivative_moment(act, q)
    return jnp.where(found, sw2, jnp.nan), jnp.where(found, q, jnp.nan)


def edge_of_chaos(act, sb2, *, q_range=(1e-6, 1e4), return_q: bool = False, check: bool = True):
    """The edge-of-chaos weight variance sw2(sb2): chi_1(sw2, sb2) = 1 at the length map's
    fixed point q*(sw2, sb2) (Schoenholz et al. 2017, Fig. 1; Hayou et al. 2019).

    ``sb2`` (variances, any shape) gives ``sw2`` of its shape (and q* on the curve if
    ``return_q``). The smallest q* in ``(0, q_range[1]]`` solving the system is taken (scanned
    on a log grid from ``q_range[0]``, then bisection; a root below ``q_range[0]``, e.g. q* = 0
    for tanh at sb2 = 0, is found too). tanh: the curve starts at (0, 1) and rises, sw2 - 1 ~
    2 (3 sb2 / 4)^(1/3) for small sb2. ReLU: only (0, 2) (every q* is then a fixed point).
    jit/vmap-able. Where no root exists in the range: ``ValueError`` when called outside a
    trace with ``check=True``, else NaN.

    ReLU: He's sw2 = 2. tanh: sw2 = 1 / tanh'(0)^2 = 1 at sb2 = 0 (q* = 0), larger with a
    bias; ``mean_field`` there has chi_1 = 1.

    >>> import numpy as np
    >>> from widelimits import nets, signal
    >>> round(float(signal.edge_of_chaos(nets.Relu(), 0.0)), 4)
    2.0
    >>> sw2 = signal.edge_of_chaos(nets.Tanh(), np.array([0.0, 0.05]))
    >>> np.asarray(sw2, float).round(4).tolist()
    [1.0, 1.761]
    >>> round(float(signal.mean_field(nets.Tanh(), sw2[1], 0.05).chi_1), 4)
    1.0
    """
    check_activation("signal.edge_of_chaos", act)
    sb2 = check_variance("signal.edge_of_chaos", "sb2", sb2)
    lo, hi = q_range
    if not (0 < lo < hi < np.inf):
        raise ValueError(f"signal.edge_of_chaos: q_range must be (lo, hi) with 0 < lo < hi < "
                         f"inf, got {q_range!r}.")
    dtype = jnp.result_type(sb2, float)
    sw2, q = bucketed(_eoc_core, act, jnp.asarray(sb2, dtype), jnp.asarray(lo, dtype),
                      jnp.asarray(hi, dtype))
    if check and not isinstance(sw2, jax.core.Tracer):
        bad = np.isnan(np.asarray(sw2))
        if np.any(bad):
            b = np.broadcast_to(np.asarray(sb2), bad.shape)[bad].ravel()[0]
            raise ValueError(f"signal.edge_of_chaos: no edge-of-chaos point for {act!r} at "
                             f"sb2 = {b:g} with q* in (0, {hi:g}] (chi_1 = 1 is never met at a "
                             "fixed point there).")
    return (sw2, q) if return_q else sw2


def _k_and_cw(owner, k, c_w):
    k = check_variance(owner, "k", k)
    c_w = check_variance(owner, "c_w", c_w)
    dtype = jnp.result_type(k, c_w, float)
    return jnp.asarray(k, dtype), jnp.asarray(c_w, dtype)


def chi_parallel(act, k, c_w, *, order: int | None = None):
    """chi_par(K) = (C_W/K) <z sigma'(z) sigma(z)>_K = C_W d<sigma^2>_K/dK (Roberts, Yaida &
    Hanin, eq. 5.10): the slope of the single-input kernel map K -> C_b + C_W <sigma^2>_K.
    ``k`` (kernel values >= 0; K = 0 means K -> 0+) and ``c_w`` broadcast; the result has
    their broadcast shape. <sigma^2>_K in closed form where there is one, else by Gauss-Hermite
    quadrature of ``order`` (default: the spec's own, else 384), differentiated in K.

    ReLU: <relu^2>_K = K / 2, so chi_par = C_W / 2 at every K (1 at C_W = 2). tanh:
    <sigma sigma''>_K < 0 for K > 0, so chi_par < chi_perp there and only K* = 0 can be critical.

    >>> import numpy as np
    >>> from widelimits import nets, signal
    >>> np.asarray(signal.chi_parallel(nets.Relu(), [0.1, 1.0, 10.0], 2.0), float).round(4).tolist()
    [1.0, 1.0, 1.0]
    >>> k = np.array([0.5, 2.0])
    >>> bool(np.all(signal.chi_parallel(nets.Tanh(), k, 1.0) < signal.chi_perp(nets.Tanh(), k, 1.0)))
    True
    """
    check_activation("signal.chi_parallel", act)
    k, c_w = _k_and_cw("signal.chi_parallel", k, c_w)
    return c_w * second_moment_slope(act, k, order)


def chi_perp(act, k, c_w, *, order: int | None = None):
    """chi_perp(K) = C_W <sigma'(z)^2>_K (Roberts, Yaida & Hanin, eq. 5.50; Schoenholz et al.'s
    chi_1): the slope of the two-input map in the off-diagonal direction. ``k`` (K = 0 means
    K -> 0+) and ``c_w`` broadcast. Closed form where there is one, else Gauss-Hermite
    quadrature of ``order`` (default: the spec's own, else 384) with sigma' by autodiff.

    ReLU: <relu'^2>_K = 1/2, so chi_perp = C_W / 2. tanh: tanh' = sech^2, so chi_perp =
    C_W E sech^4(sqrt(K) z), here against numpy's Gauss-Hermite rule (probabilists' weights).

    >>> import numpy as np
    >>> from widelimits import nets, signal
    >>> round(float(signal.chi_perp(nets.Relu(), 1.0, 2.0)), 4)
    1.0
    >>> z, w = np.polynomial.hermite_e.hermegauss(64)
    >>> ref = 1.5 * np.sum(w / np.cosh(np.sqrt(0.5) * z) ** 4) / np.sqrt(2 * np.pi)
    >>> chi = float(signal.chi_perp(nets.Tanh(), 0.5, 1.5))
    >>> round(chi, 4), bool(abs(chi - ref) < 1e-5)
    (0.8886, True)
    """
    check_activation("signal.chi_perp", act)
    k, c_w = _k_and_cw("signal.chi_perp", k, c_w)
    return c_w * derivative_moment(act, q_floor(k), order)


class Criticality(NamedTuple):
    """A critical initialisation (Roberts, Yaida & Hanin, ch. 5).

    Attributes:
      c_b, c_w: bias and weight variances (floats) with chi_par = chi_perp = 1 at K*.
      k_star: the fixed point K* (float); ``None`` for ``kind == "scale_invariant"``, where
        every K is a fixed point.
      kind: ``"scale_invariant"`` (ReLU family: critical at every K), ``"zero"`` (K* = 0: tanh,
        erf, sin, ... with sigma(0) = 0; the fixed point is marginal and approached as a power
        law, K^l ~ 1/l, not exponentially) or ``"nonzero"`` (an isolated K* > 0).
    """

    c_b: float
    c_w: float
    k_star: float | None
    kind: str


@functools.partial(jax.jit, static_argnums=())
def _ry_moments(act, k):
    return second_moment(act, k), derivative_moment(act, q_floor(k)), second_moment_slope(act, k)


def critical_points(act, *, k_range=(1e-6, 1e4), num: int = 241, rtol=None) -> tuple:
    """All critical initialisations of ``act`` with K* in ``{0} U k_range``, sorted by K*
    (a tuple of ``Criticality``; empty if there is none).

    Method: on a log grid of ``num`` kernel values the relative gap r(K) = (chi_par -
    chi_perp)/chi_perp = <sigma sigma''>_K / <sigma'^2>_K is evaluated (closed forms or
    quadrature, float64 when enabled); r = 0 on the whole grid with <sigma^2>_K = K <sigma'^2>_K
    means scale invariance; sign changes are refined with ``scipy.optimize.brentq``; K* = 0 is
    critical when sigma(0) = 0, sigma'(0) != 0 (then C_b = 0, C_W = 1/sigma'(0)^2) and
    chi_par(K) < 1 at small K > 0 (checked at K = 1e-3), so that the kernel flows into K* = 0
    (tanh, erf, sin; not GELU or swish, whose critical points have K* > 0). Points
    with C_b < 0 are not critical initialisations and are dropped. ``rtol`` (default
    sqrt(machine eps)) is the tolerance for "r = 0". Not jit-able (host-side root finding).

    ReLU is critical at every K with (C_b, C_W) = (0, 2); GELU has one isolated K* > 0.

    >>> from widelimits import nets, signal
    >>> signal.critical_points(nets.Relu())
    (Criticality(c_b=0.0, c_w=2.0, k_star=None, kind='scale_invariant'),)
    >>> [(p.kind, round(p.c_b, 3), round(p.c_w, 3), round(p.k_star, 3))
    ...  for p in signal.critical_points(nets.Gelu())]
    [('nonzero', 0.173, 1.983, 3.562)]
    """
    check_activation("signal.critical_points", act)
    lo, hi = k_range
    if not (0 < lo < hi < np.inf) or isinstance(num, bool) or not isinstance(num, int) or num < 3:
        raise ValueError(f"signal.critical_points: need 0 < k_range[0] < k_range[1] < inf and an "
                         f"int num >= 3, got k_range={k_range!r}, num={num!r}.")
    dtype = jnp.result_type(float)
    eps = float(jnp.finfo(dtype).eps)
    rtol = np.sqrt(eps) if rtol is None else rtol
    ks = np.geomspace(lo, hi, num)
    m2, perp, slope = (np.asarray(v, np.float64) for v in _ry_moments(act, jnp.asarray(ks, dtype)))
    keep = np.isfinite(m2) & np.isfinite(perp) & np.isfinite(slope) & (perp > 0)
    grid_k, m2, perp, slope = ks[keep], m2[keep], perp[keep], slope[keep]
    r = (slope - perp) / perp
    found = []
    scale_free = (np.all(np.abs(r) <= rtol) and np.all(np.abs(m2 - grid_k * perp)
                                                         <= rtol * grid_k * perp)
                  and np.ptp(perp) <= rtol * perp.max())
    if scale_free:
        return (Criticality(0.0, float(1 / perp[0]), None, "scale_invariant"),)
    phi0 = float(act(jnp.zeros((), dtype)))
    dphi0 = float(jax.grad(lambda x: act(x))(jnp.zeros((), dtype)))
    if phi0 == 0 and dphi0 != 0:
        # K* = 0 attracts (K^l -> 0 from above, marginally) only if the map's slope dips below 1
        # for K > 0; GELU and swish have chi_par > 1 there (K grows away), so no criticality.
        c_w = 1 / dphi0**2
        if float(c_w * _ry_moments(act, jnp.full(ks.shape, _K_SMALL, dtype))[2][0]) < 1:
            found.append(Criticality(0.0, c_w, 0.0, "zero"))

    def moments(k):  # on a grid-shaped array: reuses the compiled program
        return (float(v[0]) for v in _ry_moments(act, jnp.full(ks.shape, k, dtype)))

    def gap(k):
        a, b, c = moments(k)
        return (c - b) / b

    for i in np.flatnonzero(np.sign(r[:-1]) * np.sign(r[1:]) < 0):
        k = brentq(gap, grid_k[i], grid_k[i + 1], xtol=1e-14 * grid_k[i], rtol=4 * eps)
        a, b, _ = moments(k)
        c_w = 1 / b
        c_b = k - c_w * a
        if c_b >= -rtol * k:
            found.append(Criticality(max(c_b, 0.0), c_w, float(k), "nonzero"))
    return tuple(found)


def criticality(act, **kwargs) -> Criticality:
    """The critical initialisation (C_b, C_W) of ``act`` (Roberts, Yaida & Hanin, ch. 5) with the
    smallest K* (scale-invariant activations first): ReLU (0, 2) at every K; tanh (0, 1) with
    K* = 0. ``ValueError`` if none exists (e.g. sigmoid: sigma(0) != 0). Keyword arguments go
    to ``critical_points``, which lists all of them.

    erf (sigma(0) = 0, sigma'(0) = 2 / sqrt(pi)) is critical at K* = 0 with C_b = 0 and
    C_W = 1 / sigma'(0)^2 = pi / 4.

    >>> import math
    >>> from widelimits import nets, signal
    >>> p = signal.criticality(nets.Erf())
    >>> p.kind, round(p.c_b, 4) + 0.0, round(p.c_w, 4), round(math.pi / 4, 4)
    ('zero', 0.0, 0.7854, 0.7854)
    """
    points = critical_points(act, **kwargs)
    if not points:
        raise ValueError(f"signal.criticality: {act!r} has no critical initialisation (no K* in "
                         f"{{0}} U {kwargs.get('k_range', (1e-6, 1e4))} with chi_par = chi_perp "
                         "= 1 and C_b >= 0).")
    return points[0]
