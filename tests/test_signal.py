"""widelimits.signal: length/correlation maps, fixed points, depth scales, edge of chaos and
criticality, against independent numpy/scipy brute force (adaptive quadrature, numpy's own
Gauss-Hermite nodes, brentq) and closed forms."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, optimize, special, stats

from tests.conftest import rtol_for
from widelimits import kernels, nets, signal

# ---------------------------------------------------------------- brute-force oracles (numpy)

_Z, _W = np.polynomial.hermite_e.hermegauss(200)
_W = _W / _W.sum()


def _pdf(z):
    return math.exp(-z * z / 2) / math.sqrt(2 * math.pi)


def _quad(f):
    """E f(z), z ~ N(0, 1), by adaptive quadrature."""
    return integrate.quad(lambda z: f(z) * _pdf(z), -np.inf, np.inf, epsabs=1e-14,
                          epsrel=1e-13, limit=200)[0]


def _gh(f):
    """E f(z), z ~ N(0, 1), by numpy's 200-node Gauss-Hermite rule (smooth f only)."""
    return float(np.sum(_W * f(_Z)))


def _tanh_q_star(sw2, sb2, mean=_quad):
    """q* by brentq; ``mean=_gh`` is faster and accurate to ~1e-14 for q < 1 only."""
    f = lambda q: sw2 * mean(lambda z: np.tanh(np.sqrt(q) * z) ** 2) + sb2 - q
    return optimize.brentq(f, 1e-12, 50.0, xtol=1e-15, rtol=1e-14)


def _dtanh(x):
    return 1 - np.tanh(x) ** 2


def _pair(fn, q, c):
    """E fn(u1) fn(u2), corr c, variance q: numpy's 200-node Gauss-Hermite on a 2-D grid."""
    z1, z2 = _Z[:, None], _Z[None, :]
    u1, u2 = np.sqrt(q) * z1, np.sqrt(q) * (c * z1 + np.sqrt(1 - c * c) * z2)
    return float(np.sum(_W[:, None] * _W[None, :] * fn(u1) * fn(u2)))


def _tanh_c_star(sw2, sb2, q):
    h = lambda c: (sw2 * _pair(np.tanh, q, c) + sb2) / q - c
    return optimize.brentq(h, 0.0, 1 - 1e-6, xtol=1e-14)


# ---------------------------------------------------------------- tests

TANH_POINTS = [(0.8, 0.05), (1.5, 0.05), (2.5, 0.05), (3.5, 0.2)]


@pytest.fixture(scope="module")
def tanh_oracle():
    out = []
    for sw2, sb2 in TANH_POINTS:
        q = _tanh_q_star(sw2, sb2)
        chi1 = sw2 * _quad(lambda z, q=q: _dtanh(np.sqrt(q) * z) ** 2)
        # Schoenholz et al.'s chi_q = chi_1 + sw2 E phi'' phi, phi'' = -2 tanh sech^2.
        ddphi_phi = _quad(lambda z, q=q: -2 * np.tanh(np.sqrt(q) * z) ** 2 * _dtanh(np.sqrt(q) * z))
        chi_q = chi1 + sw2 * ddphi_phi
        c = 1.0 if chi1 <= 1 else _tanh_c_star(sw2, sb2, q)
        chi_c = chi1 if c == 1 else sw2 * _pair(_dtanh, q, c)
        out.append(dict(q=q, c=c, chi1=chi1, chi_q=chi_q, chi_c=chi_c))
    return out


def test_tanh_mean_field_matches_brute_force(tanh_oracle, dtype):
    sw2 = jnp.asarray([p[0] for p in TANH_POINTS], dtype)
    sb2 = jnp.asarray([p[1] for p in TANH_POINTS], dtype)
    mf = signal.mean_field(nets.Tanh(), sw2, sb2)
    assert mf.q_star.dtype == dtype and mf.xi_c.shape == (4,)
    rtol = rtol_for(dtype, 1e-10, 2e-5)
    for i, o in enumerate(tanh_oracle):
        np.testing.assert_allclose(mf.q_star[i], o["q"], rtol=rtol)
        np.testing.assert_allclose(mf.chi_1[i], o["chi1"], rtol=rtol)
        np.testing.assert_allclose(mf.chi_q[i], o["chi_q"], rtol=rtol)
        # c* solves map(c) = c with slope chi_c ~ 0.9 there: errors grow by 1 / (1 - chi_c)
        np.testing.assert_allclose(mf.c_star[i], o["c"], rtol=rtol_for(dtype, 2e-8, 1e-4))
        np.testing.assert_allclose(mf.chi_c[i], o["chi_c"], rtol=rtol_for(dtype, 2e-8, 1e-4))
        np.testing.assert_allclose(mf.xi_q[i], -1 / np.log(o["chi_q"]), rtol=rtol_for(dtype, 1e-9,
                                                                                        1e-4))
        np.testing.assert_allclose(mf.xi_c[i], -1 / np.log(o["chi_c"]),
                                   rtol=rtol_for(dtype, 1e-8, 2e-3))
    # first two points ordered (c* = 1), last two chaotic
    assert np.all(np.asarray(mf.c_star[:2]) == 1) and np.all(np.asarray(mf.c_star[2:]) < 0.9)


def test_xi_c_is_the_decay_rate_of_the_correlation_map():
    # Iterate the correlation map at q* (one jitted scan) and fit ln|c^l - c*| ~ -l / xi_c
    # where |c^l - c*| < 1e-5 (nonlinear corrections are relatively that small).
    act = nets.Tanh()

    @jax.jit
    def iterate(q, sw2, sb2, c0):
        step = lambda c, _: (signal.correlation_map(act, c, q, sw2, sb2),) * 2
        return jnp.concatenate([c0[None], jax.lax.scan(step, c0, None, length=250)[1]])

    for sw2, sb2, c0 in [(1.2, 0.05, 0.2), (4.0, 0.05, 0.95)]:
        mf = signal.mean_field(act, sw2, sb2)
        cs = np.asarray(iterate(mf.q_star, sw2, sb2, jnp.asarray(c0)))
        gap = np.abs(cs - float(mf.c_star))
        keep = (gap < 1e-5) & (gap > 1e-9)  # below ~1e-11 Hermite truncation shows
        assert keep.sum() > 10
        slope = np.polyfit(np.flatnonzero(keep), np.log(gap[keep]), 1)[0]
        np.testing.assert_allclose(-1 / slope, float(mf.xi_c), rtol=1e-4)


def test_kernel_maps_are_the_mlp_nngp(dtype):
    x = jnp.asarray([[1.0, 0.5, -0.3], [0.2, -1.0, 0.7]], dtype)
    for act, sw2, sb2 in [(nets.Erf(), 1.7, 0.1)]:  # closed-form dual: exact to round-off
        q = sw2 * (x @ x.T) / x.shape[1] + sb2
        maps = signal.kernel_maps(act, sw2, sb2, q[0, 0], q[0, 1], q[1, 1], 3)
        assert maps.q11.shape == (4,) and maps.q12.dtype == dtype
        net = nets.mlp(5, 3, act, w_std=math.sqrt(sw2), b_std=math.sqrt(sb2))
        k = kernels.analytic(net, x).nngp
        np.testing.assert_allclose([maps.q11[3], maps.q12[3], maps.q22[3]],
                                   [k[0, 0], k[0, 1], k[1, 1]], rtol=rtol_for(dtype, 1e-12, 1e-5))


def test_erf_fixed_point_closed_form_and_gradient():
    # E erf(sqrt(q) z)^2 = (2/pi) arcsin(2q / (1 + 2q)) (Williams 1997); brentq on the closed form.
    sw2, sb2 = 2.0, 0.3
    f = lambda q: sw2 * 2 / np.pi * np.arcsin(2 * q / (1 + 2 * q)) + sb2 - q
    want = optimize.brentq(f, 1e-9, 100, xtol=1e-15, rtol=1e-15)
    q = signal.fixed_point(nets.Erf(), sw2, sb2)
    np.testing.assert_allclose(q, want, rtol=1e-13)
    # Implicit-function-theorem derivative vs central differences of the brentq oracle.
    def oracle(w):
        g = lambda q: w * 2 / np.pi * np.arcsin(2 * q / (1 + 2 * q)) + sb2 - q
        return optimize.brentq(g, 1e-9, 100, xtol=1e-15, rtol=1e-15)

    # under the caller's jit, with the spec as an argument
    grad = jax.jit(jax.grad(lambda act, w: signal.fixed_point(act, w, sb2), argnums=1))(
        nets.Erf(), sw2)
    fd = (oracle(sw2 + 1e-5) - oracle(sw2 - 1e-5)) / 2e-5
    np.testing.assert_allclose(grad, fd, rtol=1e-7)


def test_relu_is_critical_for_every_k(dtype):
    k = jnp.asarray([0.0, 1e-3, 0.5, 1.0, 7.0, 1e3], dtype)
    tol = rtol_for(dtype, 1e-14, 1e-6)
    both = jax.jit(lambda k: (signal.chi_parallel(nets.Relu(), k, 2.0),
                              signal.chi_perp(nets.Relu(), k, 2.0)))
    par, perp = both(k)
    assert par.dtype == dtype
    np.testing.assert_allclose(par, 1.0, rtol=tol)
    np.testing.assert_allclose(perp, 1.0, rtol=tol)


# (spec, the function and its derivative in NumPy) for the susceptibility oracles
CHI_ACTS = {
    "tanh": (nets.Tanh(), np.tanh, _dtanh),
    "erf": (nets.Erf(1.2, 0.7), lambda u: 1.2 * special.erf(0.7 * u),
            lambda u: 1.2 * 0.7 * 2 / np.sqrt(np.pi) * np.exp(-((0.7 * u) ** 2))),
    "relu": (nets.Relu(), lambda u: np.maximum(u, 0), lambda u: (u > 0) * 1.0),
    "gelu": (nets.Gelu(), lambda u: u * special.ndtr(u),
             lambda u: special.ndtr(u) + u * np.exp(-u * u / 2) / np.sqrt(2 * np.pi)),
}


def _split_quad_moment(fn, k, q):
    """E fn(sqrt(q) z)^k by adaptive quadrature split at the kink z = 0."""
    f = lambda z: fn(math.sqrt(q) * z) ** k * math.exp(-z * z / 2)
    pieces = [integrate.quad(f, a, b, limit=200, epsabs=1e-13, epsrel=1e-12)[0]
              for a, b in ((-40.0, 0.0), (0.0, 40.0))]
    return sum(pieces) / math.sqrt(2 * math.pi)


@pytest.mark.parametrize("name", ["tanh", "erf", "relu", "gelu"])
def test_chi_parallel_forms_agree_and_match_the_kernel_map(name):
    # chi_par = (C_W/K) <z s s'>_K = (C_W/(2K^2)) <s^2 (z^2 - K)>_K = dK'/dK (scipy quadrature,
    # central difference of the kernel map); chi_perp = C_W <s'^2>_K.
    act, s, ds = CHI_ACTS[name]
    k, c_w, c_b = 0.9, 1.7, 0.1
    gauss = lambda f: sum(integrate.quad(lambda z: f(z) * math.exp(-z * z / (2 * k)), a, b,
                                         epsabs=1e-13)[0] for a, b in ((-30, 0), (0, 30)))
    norm = math.sqrt(2 * math.pi * k)
    a = c_w / k * gauss(lambda z: z * s(z) * ds(z)) / norm
    b = c_w / (2 * k * k) * gauss(lambda z: s(z) ** 2 * (z * z - k)) / norm
    kmap = lambda kk: c_b + c_w * _split_quad_moment(s, 2, kk)
    fd = (kmap(k + 1e-5) - kmap(k - 1e-5)) / 2e-5
    got = float(signal.chi_parallel(act, jnp.float64(k), c_w))
    np.testing.assert_allclose([a, b, fd], got, rtol=1e-7)
    perp = c_w * gauss(lambda z: ds(z) ** 2) / norm
    np.testing.assert_allclose(signal.chi_perp(act, jnp.float64(k), c_w), perp, rtol=1e-7)
    if name == "tanh":  # quadrature: the order= option reaches it
        np.testing.assert_allclose(signal.chi_parallel(act, jnp.float64(k), c_w, order=200), a,
                                   rtol=1e-7)
        np.testing.assert_allclose(signal.chi_perp(act, jnp.float64(k), c_w, order=200), perp,
                                   rtol=1e-7)
        assert abs(float(signal.chi_perp(act, jnp.float64(k), c_w, order=2)) / perp - 1) > 1e-3


def test_relu_edge_of_chaos_and_criticality():
    crit = signal.criticality(nets.Relu())
    assert crit.kind == "scale_invariant" and crit.k_star is None
    assert crit.c_b == 0 and crit.c_w == pytest.approx(2.0, rel=1e-12)
    mf = signal.mean_field(nets.Relu(), [2.0, 1.5], [0.0, 0.1])
    np.testing.assert_allclose(mf.chi_1, [1.0, 0.75], rtol=1e-14)
    assert float(mf.xi_c[0]) == np.inf and float(mf.q_star[0]) == 1.0  # every q is fixed: q0
    np.testing.assert_allclose(mf.q_star[1], 0.1 / (1 - 0.75), rtol=1e-14)  # sb2 / (1 - sw2/2)
    assert float(signal.edge_of_chaos(nets.Relu(), 0.0)) == pytest.approx(2.0, rel=1e-12)
    # leaky ReLU: C_W = 2 / (1 + alpha^2)
    assert signal.criticality(nets.LeakyRelu(0.3)).c_w == pytest.approx(2 / 1.09, rel=1e-12)


def test_tanh_and_gelu_criticality_vs_brute_force():
    crit = signal.criticality(nets.Tanh())
    assert crit == signal.Criticality(0.0, 1.0, 0.0, "zero")
    # tanh: chi_par = chi_perp = 1 at K = 0 and both < 1 for K > 0 (marginal fixed point)
    assert float(signal.chi_parallel(nets.Tanh(), 0.0, 1.0)) == pytest.approx(1.0, abs=1e-12)
    assert float(signal.chi_parallel(nets.Tanh(), 0.1, 1.0)) < 1
    # GELU: the nonzero K* where <sigma sigma''>_K = 0, by scipy quadrature + brentq
    gelu = lambda x: x * special.ndtr(x)
    gelu2 = lambda x: _pdf(x) * (2 - x * x)
    gap = lambda k: _quad(lambda z: gelu(np.sqrt(k) * z) * gelu2(np.sqrt(k) * z))
    k = optimize.brentq(gap, 1.0, 10.0, xtol=1e-14)
    c_w = 1 / _quad(lambda z: (special.ndtr(np.sqrt(k) * z)
                               + np.sqrt(k) * z * _pdf(np.sqrt(k) * z)) ** 2)
    c_b = k - c_w * _quad(lambda z: gelu(np.sqrt(k) * z) ** 2)
    (crit,) = signal.critical_points(nets.Gelu())  # K* = 0 is repelling for GELU: not listed
    assert crit.kind == "nonzero"
    np.testing.assert_allclose([crit.k_star, crit.c_w, crit.c_b], [k, c_w, c_b], rtol=1e-9)
    with pytest.raises(ValueError, match="no critical initialisation"):
        signal.criticality(nets.Sigmoid(), k_range=(1e-3, 1e2), num=9)


def test_tanh_edge_of_chaos_vs_brute_force():
    def chi1(sw2, sb2):
        q = _tanh_q_star(sw2, sb2, _gh)
        return sw2 * _gh(lambda z: _dtanh(np.sqrt(q) * z) ** 2)

    sb2 = np.asarray([0.0, 1e-6, 0.05, 0.2])
    sw2, q = signal.edge_of_chaos(nets.Tanh(), sb2, return_q=True)
    assert float(sw2[0]) == pytest.approx(1.0, abs=1e-12)  # passes through (0, 1)
    want = optimize.brentq(lambda w: chi1(w, 0.05) - 1, 1.05, 5.0, xtol=1e-13)
    np.testing.assert_allclose(sw2[2], want, rtol=1e-9)
    # small sb2: sw2 - 1 ~ 2 (3 sb2 / 4)^(1/3) (expansion of E tanh^2 / E sech^4 at q* -> 0)
    np.testing.assert_allclose(sw2[1] - 1, 2 * (0.75e-6) ** (1 / 3), rtol=0.02)
    fine = signal.edge_of_chaos(nets.Tanh(), np.linspace(0, 0.5, 8))
    assert np.all(np.diff(np.asarray(fine)) > 0)  # rises
    # the returned q is the stable fixed point there, and chi_1 = 1
    mf = signal.mean_field(nets.Tanh(), sw2[1:], sb2[1:])
    np.testing.assert_allclose(mf.q_star, q[1:], rtol=1e-9)
    np.testing.assert_allclose(mf.chi_1, 1.0, rtol=1e-9)
    assert np.all(np.asarray(mf.chi_q) < 1)
    # edge_of_chaos_init inverts it
    w2, b2 = signal.edge_of_chaos_init(nets.Tanh(), q[2:])
    np.testing.assert_allclose(w2, sw2[2:], rtol=1e-9)
    np.testing.assert_allclose(b2, sb2[2:], rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("make", [lambda: signal.shifted_relu(0.8),
                                  lambda: signal.soft_threshold(0.5, clip=1.5),
                                  lambda: signal.shifted_relu(1.0, clip=0.7)])
def test_piecewise_moments_are_exact(make):
    act = make()
    f = act.func
    m = np.inf if f.clip is None else f.clip
    if f.kind == "shifted_relu":  # numpy definitions, independent of the spec
        ref = lambda x: min(max(x - f.tau, 0.0), m)
    else:
        ref = lambda x: np.sign(x) * min(max(abs(x) - f.tau, 0.0), m)
    xs = np.linspace(-4, 4, 101)
    np.testing.assert_allclose(act(xs), [ref(x) for x in xs], atol=1e-15)
    for q in (0.2, 5.0):
        kinks = sorted({p / np.sqrt(q) for piece in f.pieces for p in piece[:2]
                        if np.isfinite(p)})
        m2 = integrate.quad(lambda z, q=q: ref(np.sqrt(q) * z) ** 2 * _pdf(z),
                            -40, 40, points=kinks, epsabs=1e-15, epsrel=1e-13, limit=200)[0]
        slopes = [(lo, hi, a) for lo, hi, a, _ in f.pieces if a]
        d2 = sum(a * a * (stats.norm.cdf(hi / np.sqrt(q)) - stats.norm.cdf(lo / np.sqrt(q)))
                 for lo, hi, a in slopes)
        np.testing.assert_allclose(signal.length_map(act, q, 1.0, 0.0), m2, rtol=1e-12)
        np.testing.assert_allclose(signal.chi_perp(act, q, 1.0), d2, rtol=1e-12)
        # (kernels.dual's Hermite expansion is only accurate to ~1e-3 for these kinked
        # functions: measured in the sparse_activations reproduction and its test)


def test_errors():
    with pytest.raises(ValueError, match="sw2"):
        signal.mean_field(nets.Tanh(), -1.0, 0.1)
    with pytest.raises(ValueError, match="sb2"):
        signal.fixed_point(nets.Tanh(), 1.0, np.nan)
    with pytest.raises(TypeError, match="activation spec"):
        signal.mean_field(nets.Dense(3), 1.0, 0.1)
    with pytest.raises(TypeError, match="sw2"):
        signal.length_map(nets.Tanh(), 1.0, "2", 0.1)
    with pytest.raises(ValueError, match="Sign"):
        signal.mean_field(nets.Sign(), 1.0, 0.0)
    with pytest.raises(ValueError, match="no finite fixed point"):
        signal.fixed_point(nets.Relu(), 3.0, 0.1)
    assert np.isinf(signal.fixed_point(nets.Relu(), 3.0, 0.1, check=False))
    with pytest.raises(ValueError, match="no edge-of-chaos point"):
        signal.edge_of_chaos(nets.Relu(), 0.1)
    with pytest.raises(ValueError, match="c must be in"):
        signal.correlation_map(nets.Tanh(), 1.5, 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="q must be > 0"):
        signal.correlation_map(nets.Tanh(), 0.5, 0.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="depth"):
        signal.kernel_maps(nets.Tanh(), 1.0, 0.0, 1.0, 0.5, 1.0, -1)
    with pytest.raises(ValueError, match="sb2 = q\\* - sw2"):
        signal.edge_of_chaos_init(nets.Sigmoid(), 1.0)
    with pytest.raises(ValueError, match="tau"):
        signal.shifted_relu(-0.5)
    with pytest.raises(TypeError, match="clip"):
        signal.soft_threshold(1.0, clip="big")


def test_maps_take_python_lists():
    relu = nets.Relu()
    got = signal.correlation_map(relu, [0.0, 1.0], 1.0, 2.0, 0.0)
    np.testing.assert_allclose(got, [1 / np.pi, 1.0], rtol=1e-6)
    km = signal.kernel_maps(relu, 2.0, 0.0, 1.0, [0.0, 0.5], 1.0, 1)
    np.testing.assert_allclose(km.q12[1], signal.correlation_map(relu, [0.0, 0.5], 1.0, 2.0, 0.0),
                               rtol=1e-6)
