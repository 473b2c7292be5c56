"""Length and correlation maps of deep random networks, their fixed points and depth scales.

Mean-field signal propagation (Poole et al. 2016; Schoenholz et al. 2017, "Deep information
propagation"). A fully connected net with weights ``W_ij ~ N(0, sw2/n_in)`` and biases
``b_i ~ N(0, sb2)`` -- **sw2 = sigma_w^2 and sb2 = sigma_b^2 are variances** (Roberts, Yaida &
Hanin's C_W and C_b; ``nets.Dense(w_std=sqrt(sw2), b_std=sqrt(sb2))`` in either
parameterization) -- propagates, at infinite width, pre-activation variances and correlations:

    length map       q^{l+1} = sw2 E phi(sqrt(q^l) z)^2 + sb2
    correlation map  c^{l+1} = [sw2 E phi(u1) phi(u2) + sb2] / q*,   u_i ~ N(0, q*), corr c^l

    chi_1 = sw2 E phi'(sqrt(q*) z)^2               (slope of the correlation map at c = 1)
    chi_q = sw2 E[phi'^2 + phi phi''] = dq^{l+1}/dq^l at q*   (slope of the length map)
    chi_c = sw2 E phi'(u1) phi'(u2) at c*           (slope of the correlation map at c*)
    xi_q = -1/ln chi_q,  xi_c = -1/ln chi_c          (Schoenholz et al. 2017, eqs. 5 and 9)

chi_q = chi_1 + sw2 E phi'' phi is Schoenholz et al.'s expression; by Gaussian integration by
parts it is the derivative of the length map, which is how we compute it (so kinks where
``phi != 0``, as in clipped activations, are included). In the ordered phase (chi_1 <= 1) the
stable correlation fixed point is c* = 1 and xi_c = -1/ln chi_1; in the chaotic phase c* < 1.
Depth scales are ``inf`` where the slope is 1 (the edge of chaos) and 0 where it is 0.
"""

from __future__ import annotations

import functools
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import kernels
from ._moments import (
    check_activation,
    derivative_moment,
    equal_variance_dual,
    q_floor,
    second_moment,
    second_moment_slope,
)

__all__ = ["MeanField", "KernelMaps", "length_map", "correlation_map", "fixed_point",
           "correlation_fixed_point", "mean_field", "kernel_maps", "edge_of_chaos_init",
           "depth_scale", "check_variance", "broadcast_scalar_core", "bucketed"]

_STRIDE, _BRACKET = 4, 16  # the length map is scanned at q0 * 2^(4k), |k| <= 16
_BISECTIONS = 58


class MeanField(NamedTuple):
    """Mean-field quantities at (sw2, sb2), each an array of the broadcast shape of the inputs.

    Attributes:
      q_star: stable fixed point of the length map (inf where it diverges).
      c_star: stable fixed point of the correlation map (1 in the ordered phase).
      chi_1: sw2 E phi'(sqrt(q*) z)^2; < 1 ordered, > 1 chaotic, = 1 edge of chaos.
      chi_q: slope of the length map at q* (= chi_1 + sw2 E phi'' phi).
      chi_c: slope of the correlation map at c* (= chi_1 when c* = 1).
      xi_q, xi_c: depth scales -1/ln|chi_q|, -1/ln|chi_c| (in layers; inf at slope 1).
    """

    q_star: jax.Array
    c_star: jax.Array
    chi_1: jax.Array
    chi_q: jax.Array
    chi_c: jax.Array
    xi_q: jax.Array
    xi_c: jax.Array


class KernelMaps(NamedTuple):
    """Two-input kernel through depth: ``q11``, ``q12``, ``q22`` of shape (depth + 1, ...),
    entry l the pre-activation (co)variances after l applications of the maps."""

    q11: jax.Array
    q12: jax.Array
    q22: jax.Array

    @property
    def corr(self):
        """Correlation c^l = q12 / sqrt(q11 q22)."""
        return self.q12 / jnp.sqrt(self.q11 * self.q22)


def check_variance(owner: str, name: str, value):
    """``value`` as a float array; ``TypeError`` if not real numbers, ``ValueError`` naming the
    first offending entry if (when concrete) any entry is negative or not finite."""
    if isinstance(value, jax.core.Tracer):
        return value if jnp.issubdtype(value.dtype, jnp.floating) else value.astype(float)
    if isinstance(value, bool | str) or not isinstance(value, numbers.Real | np.ndarray
                                                       | jax.Array | list | tuple):
        raise TypeError(f"{owner}: {name} must be a real number or array, got {value!r} of "
                        f"type {type(value).__name__}.")
    arr = np.asarray(value)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{owner}: {name} must be real, got dtype {arr.dtype}.")
    bad = ~np.isfinite(arr) | (arr < 0)
    if np.any(bad):
        raise ValueError(f"{owner}: {name} must be finite and >= 0 (a variance), got "
                         f"{arr[bad].ravel()[0]!r}" + (f" among shape {arr.shape}" if arr.ndim else "")
                         + ".")
    return jnp.asarray(value) if np.issubdtype(arr.dtype, np.floating) else jnp.asarray(arr, float)


def _common(*arrays):
    arrays = [jnp.asarray(a) for a in arrays]  # lists too
    dtype = jnp.result_type(*arrays, float)
    arrays = [a.astype(dtype) for a in arrays]
    return jnp.broadcast_arrays(*arrays)


def broadcast_scalar_core(core, *arrays):
    """Apply a scalar function ``core(*scalars) -> pytree`` to broadcast arrays via ``vmap``;
    every output leaf gets the broadcast shape."""
    arrays = _common(*arrays)
    shape = arrays[0].shape
    flat = [a.reshape(-1) for a in arrays]
    out = jax.vmap(core)(*flat)
    return jax.tree.map(lambda x: x.reshape(shape + x.shape[1:]), out)


def bucketed(core, act, *arrays):
    """``broadcast_scalar_core(partial(core, act), *arrays)`` through one jitted program per
    bucket of sizes: the broadcast inputs are flattened and padded (with their first entry) to
    max(8, next power of two) entries, so calls of other shapes reuse compiled programs."""
    arrays = _common(*arrays)
    shape = arrays[0].shape
    n = max(1, arrays[0].size)
    size = max(8, 1 << (n - 1).bit_length())
    flat = [jnp.pad(a.reshape(-1), (0, size - a.size), mode="edge") if a.size else
            jnp.zeros((size,), a.dtype) for a in arrays]
    out = _jitted_core(core, act, *flat)
    return jax.tree.map(lambda x: x[:arrays[0].size].reshape(shape + x.shape[1:]), out)


@functools.partial(jax.jit, static_argnums=0)
def _jitted_core(core, act, *flat):
    return jax.vmap(functools.partial(core, act))(*flat)


def depth_scale(chi):
    """-1 / ln|chi| (layers): inf where |chi| >= 1 and 0 where chi = 0."""
    a = jnp.abs(chi)
    inside = (a > 0) & (a < 1)
    safe = jnp.where(inside, a, 0.5)
    return jnp.where(inside, -1 / jnp.log(safe), jnp.where(a == 0, 0.0, jnp.inf))


def length_map(act, q, sw2, sb2):
    """The length (variance) map ``sw2 E phi(sqrt(q) z)^2 + sb2`` (Poole et al. 2016, eq. 3),
    elementwise over the broadcast of ``q``, ``sw2``, ``sb2`` (variances >= 0).

    ReLU has E relu(sqrt(q) z)^2 = q / 2, so the map is ``sw2 q / 2 + sb2``: at He's
    initialisation (sw2 = 2, sb2 = 0) it is the identity and the variance is preserved.

    >>> import numpy as np
    >>> from widelimits import nets, signal
    >>> np.asarray(signal.length_map(nets.Relu(), [0.5, 1.0, 2.0], 2.0, 0.0), float).round(4).tolist()
    [0.5, 1.0, 2.0]
    >>> np.asarray(signal.length_map(nets.Relu(), [0.5, 1.0, 2.0], 1.0, 0.1), float).round(4).tolist()
    [0.35, 0.6, 1.1]
    """
    check_activation("signal.length_map", act, derivative=False)
    q = check_variance("signal.length_map", "q", q)
    sw2 = check_variance("signal.length_map", "sw2", sw2)
    sb2 = check_variance("signal.length_map", "sb2", sb2)
    q, sw2, sb2 = _common(q, sw2, sb2)
    return sw2 * second_moment(act, q) + sb2


def correlation_map(act, c, q, sw2, sb2):
    """The correlation map ``[sw2 E phi(u1) phi(u2) + sb2] / q`` for ``u1, u2`` of variance
    ``q`` (usually q*) and correlation ``c`` in [-1, 1] (Poole et al. 2016, eq. 5); elementwise
    over the broadcast of ``c``, ``q``, ``sw2``, ``sb2``. ``q`` must be > 0.

    For ReLU at sw2 = 2, sb2 = 0 it is the arc-cosine kernel of degree 1 (Cho & Saul 2009),
    ``c -> (sqrt(1 - c^2) + (pi - arccos c) c) / pi``, for every q: orthogonal inputs get
    correlation 1/pi after one layer, and c = 1 is a fixed point.

    >>> import numpy as np
    >>> from widelimits import nets, signal
    >>> c = np.array([0.0, 0.5, 1.0])
    >>> out = signal.correlation_map(nets.Relu(), c, 1.0, 2.0, 0.0)
    >>> np.asarray(out, float).round(4).tolist()
    [0.3183, 0.609, 1.0]
    >>> arccos = (np.sqrt(1 - c**2) + (np.pi - np.arccos(c)) * c) / np.pi
    >>> bool(np.allclose(out, arccos, atol=1e-5))
    True
    """
    check_activation("signal.correlation_map", act, derivative=False)
    q = check_variance("signal.correlation_map", "q", q)
    sw2 = check_variance("signal.correlation_map", "sw2", sw2)
    sb2 = check_variance("signal.correlation_map", "sb2", sb2)
    cc = np.asarray(c) if not isinstance(c, jax.core.Tracer) else None
    if cc is not None and (not np.all(np.isfinite(cc)) or np.any(np.abs(cc) > 1)):
        raise ValueError(f"signal.correlation_map: c must be in [-1, 1], got {c!r}.")
    qc = q if isinstance(q, jax.core.Tracer) else np.asarray(q)
    if not isinstance(qc, jax.core.Tracer) and np.any(qc == 0):
        raise ValueError("signal.correlation_map: q must be > 0 (the correlation of zero-"
                         "variance pre-activations is undefined), got 0.")

    def core(c, q, sw2, sb2):
        return (sw2 * equal_variance_dual(act, q)(c)[0] + sb2) / q

    return broadcast_scalar_core(core, c if cc is None else jnp.asarray(c), q, sw2, sb2)


def _qstar_core(act, sw2, sb2, q0):
    """Stable fixed point of the length map reached from q0 (scalars); +inf if it diverges."""
    dtype = sw2.dtype
    excess = lambda q: sw2 * second_moment(act, q) + sb2 - q  # F(q) = L(q) - q
    idx = jnp.arange(2 * _BRACKET + 1)
    grid = q0 * jnp.exp2(jnp.asarray(_STRIDE * (idx - _BRACKET), dtype))
    f = excess(grid)
    below = f < 0  # NaN (overflow) counts as "not below"
    mid = _BRACKET
    # From q0 the (monotone) iteration rises if F(q0) >= 0: bracket the first downward
    # crossing above q0; else it falls: bracket the last crossing below q0 (F(0) >= 0 always).
    none = 10 * _BRACKET
    first = jnp.min(jnp.where(below & (idx > mid), idx, none))
    last = jnp.max(jnp.where(~below & (idx < mid), idx, -1))
    rising = ~below[mid]
    found = jnp.where(rising, first < none, True)
    at = lambda i: grid[jnp.clip(i, 0, 2 * _BRACKET)]
    lo = jnp.where(rising, at(first - 1), jnp.where(last >= 0, at(last), 0.0))
    hi = jnp.where(rising, at(first), at(last + 1))

    def bisect(i, bounds):
        lo, hi = bounds
        # geometric steps first (the bracket spans a factor 2^_STRIDE), then arithmetic ones
        m = jnp.where((i < _STRIDE) & (lo > 0), jnp.sqrt(lo * hi), (lo + hi) / 2)
        neg = excess(m) < 0
        return jnp.where(neg, lo, m), jnp.where(neg, m, hi)

    lo, hi = jax.lax.fori_loop(0, _BISECTIONS, bisect, (lo, hi))
    q = (lo + hi) / 2
    # Every q is a fixed point (a scale-invariant activation at criticality, e.g. ReLU at
    # sw2 = 2, sb2 = 0): F vanishes to round-off at q0/2, q0 and 2 q0; return q0.
    tol = 64 * jnp.finfo(dtype).eps
    qs = q0 * jnp.asarray([0.5, 2.0], dtype)
    near = jnp.abs(jnp.append(excess(qs), f[mid])) <= tol * (jnp.append(qs, q0) + sb2)
    q = jnp.where(jnp.all(near), q0, jnp.where(found, q, jnp.inf))
    return jnp.where(sw2 == 0, sb2, q)


@jax.custom_jvp
def _qstar(act, sw2, sb2, q0):
    return _qstar_core(act, sw2, sb2, q0)


@_qstar.defjvp
def _qstar_jvp(primals, tangents):
    # Implicit function theorem: q* = L(q*; theta) gives dq* = dL_theta / (1 - dL/dq).
    act, sw2, sb2, q0 = primals
    dact, dsw2, dsb2, _ = tangents
    q = _qstar(act, sw2, sb2, q0)
    _, dl = jax.jvp(lambda a, w, b: w * second_moment(a, q) + b, (act, sw2, sb2),
                    (dact, dsw2, dsb2))
    slope = sw2 * second_moment_slope(act, q)
    return q, jnp.where(jnp.isfinite(q), dl / (1 - slope), 0.0)


def _raise_if_diverged(owner, q, sw2, sb2):
    if isinstance(q, jax.core.Tracer):
        return
    bad = ~np.isfinite(np.asarray(q))
    if np.any(bad):
        i = np.flatnonzero(bad.ravel())[0]
        w, b = (np.broadcast_to(np.asarray(v), bad.shape).ravel()[i] for v in (sw2, sb2))
        raise ValueError(f"{owner}: the length map has no finite fixed point at sw2 = {w:g}, "
                         f"sb2 = {b:g} (q^l grows without bound, e.g. an unbounded activation "
                         f"in its chaotic/exploding regime); {int(bad.sum())} of {bad.size} "
                         "points diverge. Pass check=False to get q* = inf there instead.")


def fixed_point(act, sw2, sb2, *, q0=1.0, check: bool = True):
    """Stable fixed point q* of the length map ``q -> sw2 E phi(sqrt(q) z)^2 + sb2``.

    Found by scanning the map at ``q0 * 16^k`` (|k| <= 16) for the crossing of the diagonal that
    the iteration from ``q0`` approaches (for a monotone map), then bisection to round-off; no
    slow fixed-point iteration (near the edge of chaos convergence is only algebraic). When
    every q is a fixed point (ReLU at sw2 = 2, sb2 = 0) ``q0`` is returned. ``sw2``, ``sb2``
    (variances, broadcast together) may be arrays; the result has their broadcast shape.
    Differentiable (implicit function theorem), jit/vmap-able.

    Raises ``ValueError`` if the map diverges (no finite fixed point) anywhere, when called
    outside a trace and ``check=True``; otherwise such entries are ``inf``.

    ReLU's length map ``sw2 q / 2 + sb2`` is linear: for sw2 < 2 its fixed point is
    ``q* = sb2 / (1 - sw2 / 2)``.

    >>> import numpy as np
    >>> from widelimits import nets, signal
    >>> np.asarray(signal.fixed_point(nets.Relu(), [1.0, 1.5], 1.0), float).round(4).tolist()
    [2.0, 4.0]
    """
    check_activation("signal.fixed_point", act, derivative=False)
    sw2 = check_variance("signal.fixed_point", "sw2", sw2)
    sb2 = check_variance("signal.fixed_point", "sb2", sb2)
    q0 = check_variance("signal.fixed_point", "q0", q0)
    q = bucketed(_qstar, act, sw2, sb2, q0)
    if check:
        _raise_if_diverged("signal.fixed_point", q, sw2, sb2)
    return q


def _mean_field_core(act, sw2, sb2, q0):
    q = _qstar(act, sw2, sb2, q0)
    finite = jnp.isfinite(q)
    qf = q_floor(jnp.where(finite, q, 1.0))
    chi_1 = sw2 * derivative_moment(act, qf)
    chi_q = sw2 * second_moment_slope(act, qf)
    ordered = chi_1 <= 1
    dual = equal_variance_dual(act, qf)
    # Chaotic phase: c -> map(c) is convex and increasing on [0, 1] (Mehler: nonnegative
    # coefficients), map(0) >= 0 and its slope at the fixed point c = 1 is chi_1 > 1, so the
    # stable fixed point is the unique root of map(c) - c in [0, 1): bisect.
    above = lambda c: (sw2 * dual(c)[0] + sb2) / qf - c >= 0

    def bisect(_, bounds):
        lo, hi = bounds
        m = (lo + hi) / 2
        up = above(m)
        return jnp.where(up, m, lo), jnp.where(up, hi, m)

    zero, one = jnp.zeros_like(q), jnp.ones_like(q)
    lo, hi = jax.lax.fori_loop(0, _BISECTIONS, bisect, (zero, one))
    c_star = jnp.where(ordered, one, (lo + hi) / 2)
    chi_c = jnp.where(ordered, chi_1, sw2 * dual(c_star)[1])
    nan = jnp.full_like(q, jnp.nan)
    out = MeanField(q, c_star, chi_1, chi_q, chi_c, depth_scale(chi_q), depth_scale(chi_c))
    return MeanField(q, *(jnp.where(finite, v, nan) for v in out[1:]))


def mean_field(act, sw2, sb2, *, q0=1.0, check: bool = True) -> MeanField:
    """Fixed points, susceptibilities and depth scales at (sw2, sb2) (variances; arrays
    broadcast together) for the activation spec ``act`` (Schoenholz et al. 2017, Sec. 2-3).

    Returns a ``MeanField`` (q*, c*, chi_1, chi_q, chi_c, xi_q, xi_c), each of the broadcast
    shape. q* as in ``fixed_point`` (same ``q0`` and ``check``); entries with no finite q*
    (``check=False``) are inf (q*) and NaN (the rest). Moments: closed-form duals, exact
    piecewise formulas or Gauss-Hermite quadrature (see ``widelimits.signal``). jit/vmap-able.

    ReLU at sw2 = 1, sb2 = 1: q* = 2 (see ``fixed_point``), chi_1 = sw2 E relu'^2 = sw2 / 2 =
    chi_q (the length map is linear), so the net is ordered (c* = 1) and both depth scales are
    -1 / ln(1/2) = 1 / ln 2 layers.

    >>> import math
    >>> from widelimits import nets, signal
    >>> mf = signal.mean_field(nets.Relu(), 1.0, 1.0)
    >>> [round(float(v), 4) for v in (mf.q_star, mf.c_star, mf.chi_1, mf.chi_q, mf.chi_c)]
    [2.0, 1.0, 0.5, 0.5, 0.5]
    >>> round(float(mf.xi_q), 4), round(float(mf.xi_c), 4), round(1 / math.log(2), 4)
    (1.4427, 1.4427, 1.4427)
    """
    check_activation("signal.mean_field", act)
    sw2 = check_variance("signal.mean_field", "sw2", sw2)
    sb2 = check_variance("signal.mean_field", "sb2", sb2)
    q0 = check_variance("signal.mean_field", "q0", q0)
    out = bucketed(_mean_field_core, act, sw2, sb2, q0)
    if check:
        _raise_if_diverged("signal.mean_field", out.q_star, sw2, sb2)
    return out


def correlation_fixed_point(act, sw2, sb2, *, q0=1.0, check: bool = True):
    """The stable fixed point c* of the correlation map at q* (1 in the ordered phase); shape
    of the broadcast (sw2, sb2). Shorthand for ``mean_field(...).c_star``.

    tanh without bias: ordered at sw2 = 0.5 (c* = 1: inputs become perfectly correlated);
    chaotic at sw2 = 4, where the odd map keeps c = 0 fixed (c* = 0: inputs decorrelate). A
    bias correlates them a little: then 0 < c* < 1.

    >>> import numpy as np
    >>> from widelimits import nets, signal
    >>> c = signal.correlation_fixed_point(nets.Tanh(), [0.5, 4.0], 0.0)
    >>> (np.asarray(c, float).round(4) + 0.0).tolist()
    [1.0, 0.0]
    >>> bool(0 < signal.correlation_fixed_point(nets.Tanh(), 4.0, 0.05) < 1)
    True
    """
    return mean_field(act, sw2, sb2, q0=q0, check=check).c_star


def kernel_maps(act, sw2, sb2, q11, q12, q22, depth: int) -> KernelMaps:
    """Iterate the two-input kernel map ``depth`` times from (q11, q12, q22):

        q_ab -> sw2 E phi(u_a) phi(u_b) + sb2,  (u_1, u_2) ~ N(0, [[q11, q12], [q12, q22]]),

    with ``kernels.dual(act)`` (closed form or Hermite). This is the NNGP recursion of an MLP:
    starting from the first layer's q^1 = sw2 x.x'/d + sb2, entry l is the NNGP of
    ``nets.mlp(width, l, act, w_std=sqrt(sw2), b_std=sqrt(sb2))``. Arguments broadcast; the
    result has shape (depth + 1,) + broadcast shape.

    ReLU at sw2 = 2, sb2 = 0 from two orthogonal unit-variance inputs: the variances stay 1
    and the correlation climbs towards 1 along the arc-cosine map (1/pi after one layer).

    >>> import numpy as np
    >>> from widelimits import nets, signal
    >>> km = signal.kernel_maps(nets.Relu(), 2.0, 0.0, 1.0, 0.0, 1.0, depth=3)
    >>> np.asarray(km.q11, float).round(4).tolist()
    [1.0, 1.0, 1.0, 1.0]
    >>> np.asarray(km.corr, float).round(4).tolist()
    [0.0, 0.3183, 0.4937, 0.6048]
    """
    check_activation("signal.kernel_maps", act, derivative=False)
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise ValueError(f"signal.kernel_maps: depth must be an int >= 0, got {depth!r}.")
    sw2 = check_variance("signal.kernel_maps", "sw2", sw2)
    sb2 = check_variance("signal.kernel_maps", "sb2", sb2)
    q11 = check_variance("signal.kernel_maps", "q11", q11)
    q22 = check_variance("signal.kernel_maps", "q22", q22)
    if not isinstance(q12, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(q12))):
        raise ValueError(f"signal.kernel_maps: q12 must be finite, got {q12!r}.")
    sw2, sb2, q11, q12, q22 = _common(sw2, sb2, q11, q12, q22)
    dual = kernels.dual(act)

    def step(state, _):
        a, b, c = state
        new = (sw2 * dual(a, a, a)[0] + sb2, sw2 * dual(a, b, c)[0] + sb2,
               sw2 * dual(c, c, c)[0] + sb2)
        return new, new

    _, path = jax.lax.scan(step, (q11, q12, q22), None, length=depth)
    return KernelMaps(*(jnp.concatenate([s[None], p]) for s, p in zip((q11, q12, q22), path,
                                                                        strict=True)))


def edge_of_chaos_init(act, q_star, *, check: bool = True):
    """(sw2, sb2) that put the network at the edge of chaos with length-map fixed point
    ``q_star`` (Price et al. 2024's parameterisation of the EoC curve):

        sw2 = 1 / E phi'(sqrt(q*) z)^2   (chi_1 = 1),   sb2 = q* - sw2 E phi(sqrt(q*) z)^2.

    ``q_star`` > 0 (array) gives arrays of its shape. Raises ``ValueError`` (when concrete and
    ``check``) where sb2 would be negative (that q* is not on the EoC curve) or E phi'^2 = 0.
    Whether q* is then a *stable* fixed point is what ``mean_field(...).chi_q`` tells.

    ReLU: E relu'^2 = 1/2 and E relu^2 = q*/2 give He's (2, 0) for every q*. tanh with
    q* = 1: ``mean_field`` at the returned point has q* = 1 and chi_1 = 1.

    >>> from widelimits import nets, signal
    >>> sw2, sb2 = signal.edge_of_chaos_init(nets.Relu(), 1.0)
    >>> round(float(sw2), 4), round(float(sb2), 4) + 0.0
    (2.0, 0.0)
    >>> sw2, sb2 = signal.edge_of_chaos_init(nets.Tanh(), 1.0)
    >>> round(float(sw2), 4), round(float(sb2), 4)
    (2.1533, 0.151)
    >>> mf = signal.mean_field(nets.Tanh(), sw2, sb2)
    >>> round(float(mf.q_star), 4), round(float(mf.chi_1), 4)
    (1.0, 1.0)
    """
    check_activation("signal.edge_of_chaos_init", act)
    q = check_variance("signal.edge_of_chaos_init", "q_star", q_star)
    q = jnp.asarray(q, jnp.result_type(q, float))
    sw2 = 1 / derivative_moment(act, q_floor(q))
    sb2 = q - sw2 * second_moment(act, q)
    if check and not isinstance(sb2, jax.core.Tracer):
        bad = ~np.isfinite(np.asarray(sw2)) | (np.asarray(sb2) < -64 * np.finfo(sb2.dtype).eps
                                               * np.asarray(q))
        if np.any(bad):
            qb = np.broadcast_to(np.asarray(q), bad.shape)[bad].ravel()[0]
            raise ValueError(f"signal.edge_of_chaos_init: no edge-of-chaos initialisation with "
                             f"q* = {qb:g} for {act!r}: it needs sb2 = q* - sw2 E phi^2 < 0 "
                             "(or E phi'^2 = 0).")
    return sw2, jnp.maximum(sb2, 0.0)

