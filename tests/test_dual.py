"""Activation duals against independent references (SciPy adaptive quadrature, not our code).

Reference. For centred Gaussians with covariance [[q11, q12], [q12, q22]] and c = q12 / sqrt(q11
q22), s = sqrt(1 - c^2), write u = sqrt(q11) z1, v = sqrt(q22) (c z1 + s z2) with z1, z2 iid
N(0, 1), so

    E[f(u) g(v)] = int N(z1) f(u) [ int N(z2) g(v) dz2 ] dz1,

computed in float64 by nested ``scipy.integrate.quad`` on [-L, L] (L = 10: the Gaussian mass
outside is < 1e-22) with breakpoints at the kinks: z1 = 0 (outer) and z2 = -c z1 / s (inner, where
v = 0). The functions f, g are written here with ``math`` (with their derivatives by hand), so
nothing is shared with the library. At c = +-1 and on the diagonal the reference is a 1-D quad of
E[f(sqrt(q11) z) g(+-sqrt(q22) z)]. References are cached (``functools.lru_cache``).

Tolerances (float64): closed forms |got - ref| <= 1e-9 |ref| + 1e-14 S, Hermite expansions
|got - ref| <= 1e-10 |ref| + 1e-14 S, where S = sqrt(E f(u)^2 E f(v)^2) is the Cauchy-Schwarz
scale (the floor only matters where the exact value is 0, e.g. odd functions at c = 0).
"""

from __future__ import annotations

import functools
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import integrate

from widelimits import kernels, nets

# Meant to keep the file on one xdist worker (make pytest runs -n 2 --dist loadgroup) so its tests
# share compiled programs and cached references. Note: with pytest 9.2 + xdist 3.8 loadgroup
# ignores groups (xdist renames item._nodeid, pytest 9 reads item._id); harmless, only slower.
pytestmark = pytest.mark.xdist_group("test_dual")

L = 10.0
RTOL_CLOSED = 1e-9
RTOL_HERMITE = 1e-10
FLOOR = 1e-14
BATCH = 64
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


# --------------------------------------------------------------------------------------------
# Reference quadrature (pure Python / SciPy, float64).


def _npdf(z):
    return _INV_SQRT_2PI * math.exp(-0.5 * z * z)


def _quad(f, lo, hi, points=()):
    edges = [lo, *sorted(p for p in points if lo < p < hi), hi]
    total = 0.0
    with warnings.catch_warnings():
        # "roundoff error detected" only says epsrel = 1e-13 is not provably reached; the
        # achieved accuracy is checked by the closed forms agreeing to 1e-9 and better.
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        for a, b in zip(edges[:-1], edges[1:], strict=True):
            total += integrate.quad(f, a, b, epsabs=1e-16, epsrel=1e-13, limit=400)[0]
    return total


def _expect_1d(f, g, s1, s2):
    """E[f(s1 z) g(s2 z)], z ~ N(0, 1)."""
    return _quad(lambda z: f(s1 * z) * g(s2 * z) * _npdf(z), -L, L, [0.0])


def _expect_2d(f, g, q11, q12, q22):
    """E[f(u) g(v)] for (u, v) centred Gaussian with covariance [[q11, q12], [q12, q22]]."""
    s1, s2 = math.sqrt(q11), math.sqrt(q22)
    c = q12 / (s1 * s2)
    if abs(c) >= 1:  # v = +-(s2 / s1) u
        return _expect_1d(f, g, s1, math.copysign(s2, c))
    if c == 0:  # independent: the double integral factorises
        return _expect_1d(f, _one, s1, 1.0) * _expect_1d(_one, g, 1.0, s2)
    s = math.sqrt(1 - c * c)

    def outer(z1):
        w = f(s1 * z1) * _npdf(z1)  # inside the inner integrand: epsabs is then absolute
        if w == 0.0:
            return 0.0
        return _quad(lambda z2: w * g(s2 * (c * z1 + s * z2)) * _npdf(z2), -L, L, [-c * z1 / s])

    return _quad(outer, -L, L, [0.0])


# Scalar activations and their derivatives, written independently of the library.
def _relu(x):
    return max(x, 0.0)


def _step(x):
    return 1.0 if x > 0 else 0.0


def _zero(x):
    return 0.0


def _one(x):
    return 1.0


def _ident(x):
    return x


def _sigmoid(x):
    if x >= 0:
        return 1 / (1 + math.exp(-x))
    e = math.exp(x)
    return e / (1 + e)


def _abrelu_pair(a, b):
    return (lambda x: a * min(x, 0.0) + b * max(x, 0.0)), (lambda x: b if x > 0 else a)


def _erf_pair(a, b, c):
    return (lambda x: a * math.erf(b * x) + c,
            lambda x: a * b * 2 / math.sqrt(math.pi) * math.exp(-b * b * x * x))


def _sin_pair(a, b, c):
    return lambda x: a * math.sin(b * x + c), lambda x: a * b * math.cos(b * x + c)


def _cos_pair(a, b, c):
    return lambda x: a * math.cos(b * x + c), lambda x: -a * b * math.sin(b * x + c)


def _rmono_pair(n):
    if n == 1:
        return _relu, _step
    return lambda x: max(x, 0.0) ** n, lambda x: n * max(x, 0.0) ** (n - 1)


def _mono_pair(k):
    if k == 0:
        return _one, _zero
    if k == 1:
        return _ident, _one
    return lambda x: x**k, lambda x: k * x ** (k - 1)


def _gelu(x):
    return x * 0.5 * math.erfc(-x / math.sqrt(2))


def _dgelu(x):
    return 0.5 * math.erfc(-x / math.sqrt(2)) + x * _npdf(x)


def _softplus(x):
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


# name -> (spec, phi, phi')
CLOSED = {
    "relu": (nets.Relu(), _relu, _step),
    "leaky_relu": (nets.LeakyRelu(0.2), *_abrelu_pair(0.2, 1.0)),
    "abs": (nets.Abs(), abs, lambda x: 1.0 if x > 0 else -1.0),
    "abrelu": (nets.ABRelu(-0.3, 1.7), *_abrelu_pair(-0.3, 1.7)),
    **{f"relu^{n}": (nets.RectifiedMonomial(n), *_rmono_pair(n)) for n in (1, 2, 3, 4)},
    "sign": (nets.Sign(), lambda x: float((x > 0) - (x < 0)), _zero),
    "erf": (nets.Erf(1.3, 0.7, 0.2), *_erf_pair(1.3, 0.7, 0.2)),
    "gelu": (nets.Gelu(), _gelu, _dgelu),
    "sin": (nets.Sin(1.2, 1.5, 0.4), *_sin_pair(1.2, 1.5, 0.4)),
    "cos": (nets.Cos(0.9, 0.8, -0.3), *_cos_pair(0.9, 0.8, -0.3)),
    "exp": (nets.Exp(0.8, 0.5), lambda x: 0.8 * math.exp(0.5 * x),
            lambda x: 0.4 * math.exp(0.5 * x)),
    **{f"x^{k}": (nets.Monomial(k), *_mono_pair(k)) for k in (0, 1, 2, 3, 4)},
    "identity": (nets.Identity(), _ident, _one),
}

HERMITE = {
    "tanh": (nets.Tanh(), math.tanh, lambda x: 1 - math.tanh(x) ** 2),
    "sigmoid": (nets.Sigmoid(), _sigmoid, lambda x: _sigmoid(x) * (1 - _sigmoid(x))),
    "softplus": (nets.Softplus(), _softplus, _sigmoid),
    "swish": (nets.Swish(), lambda x: x * _sigmoid(x),
              lambda x: _sigmoid(x) * (1 + x * (1 - _sigmoid(x)))),
    "tanh+0.1x^2": (nets.Elementwise(lambda x: jnp.tanh(x) + 0.1 * x**2, name="tanh+0.1x^2"),
                    lambda x: math.tanh(x) + 0.1 * x * x,
                    lambda x: 1 - math.tanh(x) ** 2 + 0.2 * x),
    "x cos x": (nets.Elementwise(lambda x: jnp.cos(x) * x, name="x cos x"),
                lambda x: x * math.cos(x), lambda x: math.cos(x) - x * math.sin(x)),
}
TABLE = {**CLOSED, **HERMITE}


def _cov(q11, c, q22):
    return (q11, c * math.sqrt(q11 * q22), q22)


# Off-diagonal covariances (q11, q12, q22), all with unequal variances: c = 0.999, -0.999, 0.6
# (nested quadrature) and c = 0 (product of 1-D quadratures).
COVS_CLOSED = [_cov(0.8, 0.999, 1.5), _cov(1.2, -0.999, 0.6), _cov(0.7, 0.6, 2.3), (0.5, 0.0, 2.0)]
# c = +-1 exactly with unequal variances (q12 = +-sqrt(q11 q22) is exact in binary: 1 * 4 = 2^2).
COVS_EDGE = [(1.0, 2.0, 4.0), (1.0, -2.0, 4.0)]
# Diagonal q11 = q12 = q22 (x1 == x2).
COVS_DIAG = [(q, q, q) for q in (0.3, 1.0, 2.5)]
# Hermite: variances up to 4, c = 1 exactly, c = -0.9, unequal variances.
COVS_HERMITE = [(4.0, 4.0, 4.0), (1.0, 2.0, 4.0), _cov(4.0, -0.9, 4.0), _cov(0.5, -0.9, 3.0),
                _cov(1.0, 0.5, 4.0), (0.25, 0.0, 4.0), (1.0, 1.0, 1.0)]
F32_COVS = [_cov(0.8, 0.95, 1.5), (0.5, 0.0, 2.0), _cov(1.0, -0.4, 1.0), (1.0, 1.0, 1.0),
            (1.0, 2.0, 4.0)]
ALL_CLOSED_COVS = COVS_CLOSED + COVS_EDGE + COVS_DIAG


@functools.cache
def reference(f, q11, q12, q22):
    """Reference E[f(u) f(v)] (cached; f is the activation or its derivative)."""
    return _expect_2d(f, f, q11, q12, q22)


@jax.jit
def _all_duals(q11, q12, q22):
    """Every dual of TABLE at once: one XLA compilation per dtype for the whole file."""
    return {name: kernels.dual(spec)(q11, q12, q22) for name, (spec, _, _) in TABLE.items()}


def _pad(covs):
    covs = list(covs)
    return covs + [covs[0]] * (BATCH - len(covs))


def _ours_arrays(q11, q12, q22, dtype=jnp.float64):
    """{name: (V, Vdot)} as float64 NumPy arrays, inputs cast to ``dtype`` (length BATCH)."""
    out = _all_duals(*(jnp.asarray(x, dtype) for x in (q11, q12, q22)))
    for name, (v, dv) in out.items():
        assert v.dtype == dv.dtype == dtype, (name, v.dtype, dv.dtype)
    return {name: (np.asarray(v, np.float64), np.asarray(dv, np.float64))
            for name, (v, dv) in out.items()}


@functools.cache
def _ours(covs, dtype=jnp.float64):
    """{name: {q: (V, Vdot)}} for every covariance q in ``covs`` (one call)."""
    out = _ours_arrays(*zip(*_pad(covs), strict=True), dtype=dtype)
    return {name: {q: (v[i], dv[i]) for i, q in enumerate(covs)}
            for name, (v, dv) in out.items()}


def _check(name, q, covs, rtol):
    got = _ours(tuple(covs))[name][q]
    for which in (0, 1):
        f = TABLE[name][1 + which]
        ref = reference(f, *q)
        scale = math.sqrt(abs(reference(f, q[0], q[0], q[0]) * reference(f, q[2], q[2], q[2])))
        err = abs(got[which] - ref)
        label = "V" if which == 0 else "Vdot"
        rel = err / max(abs(ref), 1e-300)
        assert err <= rtol * abs(ref) + FLOOR * scale, (
            f"{name} {label}{q}: got {got[which]!r}, reference {ref!r}, rel err {rel:.3g}")


# --------------------------------------------------------------------------------------------
# Closed forms.


@pytest.mark.parametrize("q", ALL_CLOSED_COVS, ids=str)
@pytest.mark.parametrize("name", list(CLOSED))
def test_closed_form_against_quadrature(name, q):
    _check(name, q, ALL_CLOSED_COVS, RTOL_CLOSED)


def test_unit_correlation_exact_in_batched_jit():
    # x1 == x2 (q12 = q11 = q22) must give c = 1 exactly: relu Vdot = 1/2, sign V = 1; and
    # q12 = -q11 = -q22 must give relu Vdot = 0, sign V = -1. Since d arccos/dc is infinite at
    # c = 1, a c off by one ulp costs sqrt(2 * 2^-53) ~ 1.5e-8 in theta (2.4e-9 relative in Vdot);
    # in batched jitted code (what kernels.analytic runs) XLA's division/rsqrt is not correctly
    # rounded, so q / sqrt(q * q) is not always 1 (it was off for 4 of these 64 values before
    # safe_correlation snapped |c| within 4 ulps of 1).
    q = np.linspace(0.05, 5.0, BATCH)
    out = _ours_arrays(q, q, q)
    np.testing.assert_allclose(out["relu"][1], 0.5, rtol=1e-13, err_msg="relu Vdot, c = 1")
    np.testing.assert_allclose(out["sign"][0], 1.0, rtol=1e-13, err_msg="sign V, c = 1")
    np.testing.assert_allclose(out["relu"][0], q / 2, rtol=1e-13, err_msg="relu V, c = 1")
    out = _ours_arrays(q, -q, q)
    np.testing.assert_allclose(out["relu"][1], 0.0, atol=1e-13, err_msg="relu Vdot, c = -1")
    np.testing.assert_allclose(out["sign"][0], -1.0, rtol=1e-13, err_msg="sign V, c = -1")


@pytest.mark.parametrize("name", ["relu", "gelu", "tanh"])
def test_broadcasting(name):
    # q11 (n1, 1), q12 (n1, n2), q22 (1, n2) -> (n1, n2), equal to the flattened evaluation.
    q11 = jnp.array([[0.5], [1.3]])
    q22 = jnp.array([[0.7, 2.0, 1.1]])
    c = jnp.array([[0.3, -0.999, 1.0], [0.0, 0.6, -1.0]])
    q12 = c * jnp.sqrt(q11 * q22)
    fn = jax.jit(kernels.dual(TABLE[name][0]))
    v, dv = fn(q11, q12, q22)
    assert v.shape == dv.shape == (2, 3)
    a, b, d = (jnp.broadcast_to(x, (2, 3)).ravel() for x in (q11, q12, q22))
    vf, dvf = fn(a, b, d)
    np.testing.assert_allclose(v.ravel(), vf, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(dv.ravel(), dvf, rtol=1e-13, atol=1e-15)


# --------------------------------------------------------------------------------------------
# Arc-cosine functions.


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_arccos_derivative_identity(n):
    # dJ_n/dc = n^2 J_{n-1}: 5-point central finite differences of the value (no autodiff).
    h = 1e-3
    c = np.array([-0.9, -0.3, 0.0, 0.2, 0.7, 0.95])
    j = lambda c: np.asarray(kernels.arccos_j(n, jnp.asarray(c)))
    fd = (8 * (j(c + h) - j(c - h)) - (j(c + 2 * h) - j(c - 2 * h))) / (12 * h)
    exact = n * n * np.asarray(kernels.arccos_j(n - 1, jnp.asarray(c)))
    np.testing.assert_allclose(fd, exact, rtol=1e-8, atol=1e-8)
    # and the custom JVP (used by jax.grad) agrees with the identity
    g = jax.vmap(jax.grad(lambda t: kernels.arccos_j(n, t)))(jnp.asarray(c))
    np.testing.assert_allclose(g, exact, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5])
def test_arccos_at_one(n):
    double_factorial = math.prod(range(2 * n - 1, 0, -2))  # (2n-1)!!, (-1)!! = 1
    np.testing.assert_allclose(float(kernels.arccos_j(n, jnp.float64(1.0))),
                               math.pi * double_factorial, rtol=1e-14)
    assert float(kernels.arccos_j(n, jnp.float64(-1.0))) == pytest.approx(0.0, abs=1e-14)


def test_arccos_against_quadrature():
    # J_n(c) / (2 pi) = E[relu(u)^n relu(v)^n] for unit variances (Cho & Saul 2009).
    for n in (1, 2, 3):
        for c in (-0.7, 0.4):
            f = _rmono_pair(n)[0]
            ref = _expect_2d(f, f, 1.0, c, 1.0)
            got = float(kernels.arccos_j(n, jnp.float64(c))) / (2 * math.pi)
            assert abs(got - ref) <= 1e-10 * abs(ref), (n, c, got, ref)


# --------------------------------------------------------------------------------------------
# Hermite expansions.


@pytest.mark.parametrize("q", COVS_HERMITE, ids=str)
@pytest.mark.parametrize("name", list(HERMITE))
def test_hermite_against_quadrature(name, q):
    _check(name, q, COVS_HERMITE, RTOL_HERMITE)


HERMITE_VS_CLOSED = [
    (nets.Elementwise(jnp.sin), nets.Sin()),
    (nets.Elementwise(jax.scipy.special.erf), nets.Erf()),
    (nets.Elementwise(lambda x: 1.2 * jnp.sin(1.5 * x + 0.4)), nets.Sin(1.2, 1.5, 0.4)),
    (nets.Elementwise(lambda x: 1.3 * jax.scipy.special.erf(0.7 * x) + 0.2), nets.Erf(1.3, 0.7, 0.2)),
    (nets.Elementwise(lambda x: x**3), nets.Monomial(3)),
]


@pytest.mark.parametrize("pair", HERMITE_VS_CLOSED, ids=lambda p: repr(p[1]))
def test_hermite_matches_closed_forms(pair):
    # Two independent routes: Elementwise (Hermite expansion) versus the closed forms, including
    # c = 1 (diagonal), c = -1 with unequal variances, c = -0.9.
    covs = [(2.0, 2.0, 2.0), (4.0, 4.0, 4.0), _cov(0.5, -0.9, 3.0), _cov(1.5, 0.7, 0.4),
            (1.0, -2.0, 4.0), (0.3, 0.0, 1.2)]
    q11, q12, q22 = (jnp.asarray(x) for x in zip(*covs, strict=True))
    hermite, closed = pair
    for g, w in zip(kernels.dual(hermite)(q11, q12, q22), kernels.dual(closed)(q11, q12, q22),
                    strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-14, err_msg=repr(closed))


def test_hermite_dual_function_matches_dual():
    q = (jnp.float64(1.3), jnp.float64(-0.4), jnp.float64(0.8))
    got = kernels.hermite_dual(jnp.tanh, *q, order=256)
    want = kernels.dual(nets.Tanh())(*q)
    np.testing.assert_allclose(got, want, rtol=1e-14)


# --------------------------------------------------------------------------------------------
# float32.


def _with_diagonals(covs):
    diag = [(q, q, q) for cov in covs for q in (cov[0], cov[2])]
    return tuple(dict.fromkeys(list(covs) + diag))


@pytest.mark.parametrize("name", list(TABLE))
def test_float32(name, dtype):
    # The dtype follows the inputs; float32 matches float64 on the same (float32-rounded)
    # inputs to 1e-5 relative, plus 1e-7 of the Cauchy-Schwarz scale for values near zero.
    covs = _with_diagonals([tuple(float(np.float32(x)) for x in q) for q in F32_COVS])
    got = _ours(covs, dtype)[name]  # asserts the output dtype
    want = _ours(covs, jnp.float64)[name]
    for q in covs:
        for which in (0, 1):
            g, w = got[q][which], want[q][which]
            scale = math.sqrt(abs(want[(q[0],) * 3][which] * want[(q[2],) * 3][which]))
            assert abs(g - w) <= 1e-5 * abs(w) + 1e-7 * scale, (name, q, which, g, w)


# --------------------------------------------------------------------------------------------
# Properties (hypothesis): 16 random covariances per example, every activation, one call.

_triples = st.lists(st.tuples(st.floats(0.05, 5.0), st.floats(-1.0, 1.0), st.floats(0.05, 5.0)),
                    min_size=BATCH // 4, max_size=BATCH // 4)


PROPERTY_SETTINGS = settings(max_examples=30, deadline=None, derandomize=True, database=None)


def _random_covs(triples):
    q11, c, q22 = (np.array(x, np.float64) for x in zip(*triples, strict=True))
    return q11, c * np.sqrt(q11 * q22), q22


def _stacked(triples):
    """One call on [q; q with q11, q22 swapped; diag(q11); diag(q22)] -> four {name: (V, Vdot)}."""
    q11, q12, q22 = _random_covs(triples)
    out = _ours_arrays(np.concatenate([q11, q22, q11, q22]), np.concatenate([q12, q12, q11, q22]),
                       np.concatenate([q22, q11, q11, q22]))
    n = len(triples)
    return [{k: (v[i * n:(i + 1) * n], dv[i * n:(i + 1) * n]) for k, (v, dv) in out.items()}
            for i in range(4)]


@PROPERTY_SETTINGS
@given(triples=_triples)
def test_symmetric_in_variances(triples):
    a, b, _, _ = _stacked(triples)
    for name in TABLE:
        for x, y in zip(a[name], b[name], strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14, err_msg=name)


@PROPERTY_SETTINGS
@given(triples=_triples, t=st.floats(0.1, 10.0))
def test_relu_positively_homogeneous(triples, t):
    q11, q12, q22 = _random_covs(triples)
    relu = kernels.dual(nets.Relu())
    v, dv = relu(q11, q12, q22)
    vt, dvt = relu(t * q11, t * q12, t * q22)
    np.testing.assert_allclose(vt, t * v, rtol=1e-12, atol=1e-14 * t)
    # Vdot has degree 0. Its tolerance is looser: Vdot = (pi - arccos c) / (2 pi) has an infinite
    # slope at c = +-1, so near there the ulp-level change of c = t q12 / sqrt(t q11 t q22)
    # moves it by up to ~1e-9.
    np.testing.assert_allclose(dvt, dv, rtol=0, atol=1e-8)


@PROPERTY_SETTINGS
@given(triples=_triples)
def test_cauchy_schwarz(triples):
    # |E phi(u) phi(v)| <= sqrt(E phi(u)^2 E phi(v)^2), and the same for phi'.
    v, _, d1, d2 = _stacked(triples)
    for name in TABLE:
        for which in (0, 1):
            bound = np.sqrt(d1[name][which] * d2[name][which])
            # Equality holds at c = +-1 with q11 = q22 (see test_unit_correlation_exact...).
            excess = np.abs(v[name][which]) - bound * (1 + 1e-10)
            assert np.all(excess <= 1e-14), (name, which, v[name][which], bound)
