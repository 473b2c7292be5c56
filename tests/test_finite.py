"""widelimits.finite: exact one-hidden-layer cumulants, Edgeworth densities, the deep vertex
recursion and Monte Carlo ensembles.

Monte Carlo checks use fixed keys and |z| < 4 (z = (estimate - exact) / standard error, the
delta-method standard error of ``sample_kurtosis``; a false alarm has probability 6e-5 per check).
"""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, special, stats

from widelimits import finite, kernels, nets

Z = 4.0
# (spec, the same function in NumPy for the scipy oracle)
ACTS = {
    "relu": (nets.Relu(), lambda u: np.maximum(u, 0)),
    "leaky": (nets.LeakyRelu(0.2), lambda u: np.where(u > 0, u, 0.2 * u)),
    "abs": (nets.Abs(), np.abs),
    "abrelu": (nets.ABRelu(-0.5, 1.5), lambda u: -0.5 * np.minimum(u, 0) + 1.5 * np.maximum(u, 0)),
    "relu2": (nets.RectifiedMonomial(2), lambda u: np.maximum(u, 0) ** 2),
    "erf": (nets.Erf(1.2, 0.7), lambda u: 1.2 * special.erf(0.7 * u)),
    "tanh": (nets.Tanh(), np.tanh),
    "gelu": (nets.Gelu(), lambda u: u * special.ndtr(u)),
    "sin": (nets.Sin(1.0, 1.3, 0.4), lambda u: np.sin(1.3 * u + 0.4)),
    "exp": (nets.Exp(0.8, 0.4), lambda u: 0.8 * np.exp(0.4 * u)),
    "id": (nets.Identity(), lambda u: u),
    "cube": (nets.Monomial(3), lambda u: u**3),
    "sign": (nets.Sign(), np.sign),
}


def _quad_moment(fn, k, q):
    f = lambda z: fn(math.sqrt(q) * z) ** k * math.exp(-z * z / 2)
    pieces = [integrate.quad(f, a, b, limit=200, epsabs=1e-13, epsrel=1e-12)[0]
              for a, b in ((-40.0, 0.0), (0.0, 40.0))]
    return sum(pieces) / math.sqrt(2 * math.pi)


@pytest.mark.parametrize("name", sorted(ACTS))
def test_activation_moments_match_scipy_quadrature(name, dtype):
    (act, fn), q = ACTS[name], 1.7
    got = finite.activation_moments(act, jnp.asarray(q, dtype), (1, 2, 3, 4, 6))
    assert got.dtype == dtype and got.shape == (5,)
    want = [_quad_moment(fn, k, q) for k in (1, 2, 3, 4, 6)]
    tol = 1e-9 if dtype == jnp.float64 else 2e-5
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(abs(w) for w in want))


def test_relu_closed_form_beats_plain_gauss_hermite():
    # E relu(u) = sqrt(q/(2 pi)); Gauss-Hermite on the kink is only algebraically accurate.
    q = jnp.float64(1.3)
    exact = math.sqrt(1.3 / (2 * math.pi))
    gh = kernels.gaussian_expectation(lambda u: jnp.maximum(u, 0), q)
    closed = finite.activation_moments(nets.Relu(), q, (1,))[0]
    assert abs(closed / exact - 1) < 1e-14
    assert abs(gh / exact - 1) > 1e-5


def _brute_cumulants(m_t, n):
    """(kappa2, kappa4, kappa6) of a sum of n iid symmetric terms with moments m_t[k] = E t^k,
    by expanding E (t_1 + ... + t_n)^k over all index tuples (independent of the cumulant
    additivity used by the library)."""
    mom = {}
    for k in (2, 4, 6):
        total = 0.0
        for idx in itertools.product(range(n), repeat=k):
            counts = np.bincount(idx, minlength=n)
            total += np.prod([m_t[c] for c in counts])
        mom[k] = total
    k2 = mom[2]
    return k2, mom[4] - 3 * k2**2, mom[6] - 15 * mom[4] * k2 + 30 * k2**3


@pytest.mark.parametrize("readout,v_moments", [("gaussian", (1, 3, 15)), ("rademacher", (1, 1, 1)),
                                               ("uniform", (1, 9 / 5, 27 / 7))])
def test_one_layer_cumulants_match_brute_force_expansion(readout, v_moments):
    act, q, n, v_std = nets.Erf(1.0, 1.1, 0.3), 0.8, 3, 1.4
    h = [_quad_moment(lambda u: special.erf(1.1 * u) + 0.3, k, q) for k in range(7)]
    m_t = {0: 1.0}
    for c in range(1, 7):  # moments of t = v_std v h / sqrt(n); odd ones vanish
        m_t[c] = 0.0 if c % 2 else v_std**c * v_moments[c // 2 - 1] * h[c] / n ** (c / 2)
    k2, k4, k6 = _brute_cumulants(m_t, n)
    got = finite.one_layer_cumulants(act, jnp.float64(q), n, readout=readout, v_std=v_std)
    np.testing.assert_allclose(got.variance, k2, rtol=1e-10)
    np.testing.assert_allclose(got.kurtosis, k4 / k2**2, rtol=1e-9)
    np.testing.assert_allclose(got.sixth, k6 / k2**3, rtol=1e-9)
    # A Gaussian readout bias adds vb^2 to the variance and nothing to higher cumulants.
    biased = finite.one_layer_cumulants(act, jnp.float64(q), n, readout=readout, v_std=v_std,
                                        vb_std=0.7)
    np.testing.assert_allclose(biased.kurtosis, k4 / (k2 + 0.49) ** 2, rtol=1e-9)
    np.testing.assert_allclose(biased.sixth, k6 / (k2 + 0.49) ** 3, rtol=1e-9)


# (The ReLU case shares its compiled sampler with the Edgeworth test below: same width, size.)
@pytest.mark.parametrize("act,readout,width,vb", [
    (nets.Relu(), "gaussian", 40, 0.5), (nets.Tanh(), "rademacher", 3, 0.0),
    pytest.param(nets.Erf(1.0, 2.0, 0.5), "uniform", 2, 0.3, marks=pytest.mark.slow)])
def test_one_layer_kurtosis_matches_monte_carlo(act, readout, width, vb):
    s = finite.one_layer_samples(jax.random.key(7), 131_072, width, act, 1.0, readout=readout,
                                 vb_std=vb)
    want = finite.one_layer_cumulants(act, 1.0, width, readout=readout, vb_std=vb)
    est = finite.sample_kurtosis(s)
    assert abs(est.value - want.kurtosis) < Z * est.stderr, (est, float(want.kurtosis))
    # variance: the sample variance's standard error is sqrt((mu4 - mu2^2)/M)
    se_var = float(want.variance) * math.sqrt((2 + float(want.kurtosis)) / s.size)
    assert abs(s.var() - want.variance) < Z * se_var


def test_net_output_cumulants_match_ensemble_of_our_networks():
    # Real networks (init + apply) at two inputs.
    x = jnp.array([[1.0, 0.5, -0.3], [0.2, -1.0, 0.4]], jnp.float32)
    net = nets.serial(nets.Dense(6, 1.3, 0.2), nets.Tanh(), nets.Dense(1, 0.9, 0.3))
    want = finite.net_output_cumulants(net, x)
    s = finite.output_samples(net, jax.random.key(3), x, 32768, method="params",
                              progress=False, chunk_size=32768)[..., 0]
    est = finite.sample_kurtosis(s)
    assert np.all(np.abs(est.value - want.kurtosis) < Z * est.stderr), (est, want.kurtosis)
    se_var = want.variance * np.sqrt((2 + want.kurtosis) / len(s))
    assert np.all(np.abs(s.var(0) - want.variance) < Z * se_var)
    # The standard parameterization draws the same law.
    std = nets.serial(nets.Dense(6, 1.3, 0.2, parameterization="standard"), nets.Tanh(),
                      nets.Dense(1, 0.9, 0.3, parameterization="standard"))
    np.testing.assert_array_equal(finite.net_output_cumulants(std, x).kurtosis, want.kurtosis)


def test_gaussian_readout_formula_is_the_notes_special_case():
    # (3/N)(E h^4/(E h^2)^2 - 1) for Gaussian v and no readout bias.
    c = finite.one_layer_cumulants(nets.Tanh(), jnp.float64(2.0), 10)
    h2, h4, _ = c.moments
    np.testing.assert_allclose(c.kurtosis, 0.3 * (h4 / h2**2 - 1), rtol=1e-12)


def test_cumulants_jit_grad_and_dtype(dtype):
    q = jnp.asarray(1.5, dtype)
    f = jax.jit(lambda q, v: finite.one_layer_cumulants(nets.Relu(), q, 8, v_std=v, vb_std=0.4))
    c = f(q, jnp.asarray(1.1, dtype))
    assert c.kurtosis.dtype == dtype and c.sixth.dtype == dtype
    # d gamma_4/dq through the readout-bias share r = h2/(h2 + 0.16), h2 = q/2 for ReLU.
    g = jax.grad(lambda q: finite.one_layer_cumulants(nets.Relu(), q, 8, vb_std=0.4).kurtosis)(q)
    r = 0.75 / (0.75 + 0.16)
    want = 2 * r * (0.5 * 0.16 / (0.75 + 0.16) ** 2) * (3 * 6 - 3) / 8
    np.testing.assert_allclose(g, want, rtol=1e-4 if dtype == jnp.float32 else 1e-12)


def test_hermite_he_matches_numpy():
    y = np.linspace(-3, 3, 13)
    for k in range(9):
        want = np.polynomial.hermite_e.hermeval(y, [0] * k + [1])
        np.testing.assert_allclose(finite.hermite_he(k, y), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("sixth", [None, 0.05])
def test_edgeworth_density_normalised_with_the_right_cumulants(sixth):
    g4 = 0.4
    y = np.linspace(-14, 14, 28_001)
    p = np.asarray(finite.edgeworth_pdf(jnp.asarray(y), g4, sixth))
    mom = [integrate.simpson(y**k * p, x=y) for k in range(7)]
    assert abs(mom[0] - 1) < 1e-10 and abs(mom[1]) < 1e-10 and abs(mom[2] - 1) < 1e-10
    assert abs(mom[4] - 3 * mom[2] ** 2 - g4) < 1e-9
    k6 = mom[6] - 15 * mom[4] * mom[2] + 30 * mom[2] ** 3
    assert abs(k6 - (sixth or 0.0)) < 1e-8  # the He_8 term only moves the eighth moment
    # The CDF is the integral of the density.
    cdf = np.asarray(finite.edgeworth_cdf(jnp.asarray(y), g4, sixth))
    want = integrate.cumulative_simpson(p, x=y, initial=0.0)
    np.testing.assert_allclose(cdf, want, atol=1e-9)


def test_edgeworth_beats_the_gaussian_on_a_small_network():
    # ReLU, width 40, Gaussian readout: excess kurtosis 3 (6 - 1)/40 = 0.375. KS distances of
    # 2e5 standardised outputs from the Gaussian and the Edgeworth CDFs (1% critical value of
    # the KS statistic: 1.63/sqrt(M) = 0.0036).
    width, m = 40, 196_608
    c = finite.one_layer_cumulants(nets.Relu(), 1.0, width)
    np.testing.assert_allclose(c.kurtosis, 0.375, rtol=1e-6)
    y = np.sort(finite.one_layer_samples(jax.random.key(11), m, width, nets.Relu(), 1.0,
                                         chunk_size=65_536) / np.sqrt(float(c.variance)))
    ks = lambda cdf: stats.kstest(y, cdf).statistic
    ks_gauss = ks(stats.norm.cdf)
    ks_edge1 = ks(lambda t: np.asarray(finite.edgeworth_cdf(t, c.kurtosis)))
    ks_edge2 = ks(lambda t: np.asarray(finite.edgeworth_cdf(t, c.kurtosis, c.sixth)))
    crit = 1.63 / math.sqrt(m)
    assert ks_gauss > 2 * crit, ks_gauss
    assert ks_edge1 < crit and ks_edge2 < crit, (ks_edge1, ks_edge2)


# ----------------------------------------------------------------------------- deep networks


def test_relu_vertex_at_criticality_is_5_l_minus_1(dtype):
    r = finite.vertex_recursion(nets.Relu(), 12, c_w=2.0, c_b=0.0, k1=jnp.asarray(0.7, dtype))
    assert r.vertex.dtype == dtype
    tol = 1e-12 if dtype == jnp.float64 else 1e-5
    np.testing.assert_allclose(r.kernel, 0.7, rtol=tol)
    np.testing.assert_allclose(r.kurtosis_coefficient, 5 * np.arange(12), rtol=tol, atol=tol)
    np.testing.assert_allclose(r.chi_par, 1.0, rtol=tol)
    np.testing.assert_allclose(r.chi_perp, 1.0, rtol=tol)
    # The exact law 3 (1 + 5/n)^(l-1) - 3 has the recursion's 15 (l - 1)/n as its 1/n term.
    n = 1e6
    np.testing.assert_allclose(finite.relu_exact_kurtosis(7, n) * n, 15 * 6, rtol=1e-4)


def test_tanh_vertex_grows_like_two_thirds_l():
    # K ~ 1/(2l) and V/(K^2 l) -> 2/3 (Roberts, Yaida & Hanin, the K* = 0 class), slowly.
    r = finite.vertex_recursion(nets.Tanh(), 1000, c_w=1.0, c_b=0.0, k1=1.0)
    l = np.arange(1, 1001)
    ratio = np.asarray(r.kurtosis_coefficient) / l
    assert abs(ratio[-1] - 2 / 3) < 3e-3 and np.all(np.diff(ratio[10:]) > 0)
    np.testing.assert_allclose(np.asarray(r.kernel)[-1] * 2 * 1000, 1.0, atol=5e-3)


def test_net_vertex_one_layer_is_exact_and_deep_is_the_recursion():
    dtype = jnp.float64
    x = jnp.asarray([[1.0, -2.0, 0.5]], dtype)
    one = nets.serial(nets.Dense(7, 1.2, 0.3), nets.Erf(), nets.Dense(1, 0.8, 0.2))
    k, ex = finite.net_vertex(one, x)
    c = finite.net_output_cumulants(one, x)
    rt = 1e-10 if dtype == jnp.float64 else 1e-5
    np.testing.assert_allclose(k, c.variance, rtol=rt)
    np.testing.assert_allclose(ex, c.kurtosis, rtol=rt)
    deep = nets.mlp(16, 3, nets.Tanh(), w_std=1.1, b_std=0.2)
    k, ex = finite.net_vertex(deep, x)
    r = finite.vertex_recursion(nets.Tanh(), 4, c_w=1.21, c_b=0.04,
                                k1=0.04 + 1.21 * float(jnp.sum(x * x)) / 3)
    np.testing.assert_allclose(k[0], r.kernel[-1], rtol=rt)
    np.testing.assert_allclose(ex[0], r.excess(16)[-1], rtol=rt)


@pytest.fixture(scope="module")
def deep_relu_samples():
    net = nets.mlp(16, 4, nets.Relu(), w_std=math.sqrt(2), b_std=0.0)
    x = jnp.ones((1, 3), jnp.float32)
    return finite.output_samples(net, jax.random.key(5), x, 100_000, layers=True,
                                 progress=False, chunk_size=50_000)[:, :, 0]


def test_deep_relu_kurtosis_matches_the_exact_law(deep_relu_samples):
    est = finite.sample_kurtosis(deep_relu_samples)
    want = np.array([float(finite.relu_exact_kurtosis(l, 16)) for l in range(1, 6)])
    assert np.all(np.abs(est.value - want) < Z * est.stderr), (est, want)
    np.testing.assert_allclose(deep_relu_samples.var(0), 2.0, rtol=0.05)


def test_deep_tanh_kurtosis_matches_the_vertex_recursion():
    # Width 32, 3 hidden layers: 3V/(nK^2) up to O((l/n)^2); at 65536 networks the standard
    # error (~0.02) exceeds that (|MC - recursion| < 0.01 at 1e6 networks).
    n, depth = 32, 3
    net = nets.mlp(n, depth, nets.Tanh(), w_std=1.0, b_std=0.0)
    x = jnp.ones((1, 2), jnp.float32)
    s = finite.output_samples(net, jax.random.key(8), x, 65_536, layers=True, progress=False,
                              chunk_size=65_536)[:, :, 0]
    est = finite.sample_kurtosis(s)
    want = finite.vertex_recursion(nets.Tanh(), depth + 1, c_w=1.0, c_b=0.0, k1=1.0).excess(n)
    assert np.all(np.abs(est.value - want) < Z * est.stderr), (est, want)
    assert est.value[-1] > 5 * est.stderr[-1]  # the effect is resolved, not just noise


# ----------------------------------------------------------------------------- ensembles


def test_collapsed_sampler_covariance_is_the_nngp():
    # E f(x) f(x')^T at finite width equals the NNGP exactly (each layer's kernel is a mean of
    # iid terms); the standard error of each entry is sqrt(K_ii K_jj + K_ij^2)/sqrt(M) for
    # near-Gaussian f (x1.2 for the small non-Gaussianity). Three inputs of dimension 5 and
    # width 64: the first two layers are drawn from 3 x 3 covariances (eigh; the first one shared
    # by all networks), the readout from its weights.
    x = jnp.array([[1.0, 0.0, 0.5, 0.2, -0.4], [0.3, -1.0, 0.2, 0.0, 0.9],
                   [0.0, 0.7, -0.9, 1.1, 0.1]], jnp.float32)
    net = nets.mlp(64, 2, nets.Erf(), w_std=1.4, b_std=0.3)
    want = np.asarray(kernels.analytic(net, x).nngp)
    s = finite.output_samples(net, jax.random.key(2), x, 20_000, method="collapsed",
                              progress=False, chunk_size=20_000)[..., 0]
    assert s.dtype == np.float32
    cov = s.T.astype(np.float64) @ s / len(s)
    se = np.sqrt(np.outer(np.diag(want), np.diag(want)) + want**2) / np.sqrt(len(s))
    assert np.all(np.abs(cov - want) < Z * 1.2 * se), (cov, want)


def test_output_samples_resume_from_a_file(tmp_path):
    net = nets.serial(nets.Dense(5, 1.0, 0.1), nets.Relu(), nets.Dense(2))
    x = jnp.ones((2, 3), jnp.float32)
    key = jax.random.key(4)
    kw = dict(chunk_size=300, progress=False)
    full = finite.output_samples(net, key, x, 1000, **kw)
    assert full.shape == (1000, 2, 2) and full.dtype == np.float32
    path = tmp_path / "ens.npz"
    part = finite.output_samples(net, key, x, 500, path=path, **kw)
    np.testing.assert_array_equal(part, full[:500])
    with np.load(path) as f:
        assert f["samples"].shape[0] == 600
    again = finite.output_samples(net, key, x, 1000, path=path, **kw)
    np.testing.assert_array_equal(again, full)
    with pytest.raises(ValueError, match="different run"):
        finite.output_samples(net, jax.random.key(9), x, 1000, path=path, **kw)


def test_sample_kurtosis_and_its_standard_error():
    rng = np.random.default_rng(0)
    u = rng.uniform(-1, 1, (400, 2000))  # excess kurtosis -6/5
    est = finite.sample_kurtosis(u, axis=1)
    spread = est.value.std(ddof=1)
    assert abs(np.median(est.stderr) / spread - 1) < 0.1  # SE matches the batch-to-batch spread
    assert abs(est.value.mean() + 1.2) < Z * spread / np.sqrt(400)
    g = finite.sample_kurtosis(rng.normal(size=(10_000, 3)))
    np.testing.assert_allclose(g.stderr, np.sqrt(24 / 10_000), rtol=0.1)


def test_fit_proportional():
    x = np.array([1.0, 2.0, 4.0])
    fit = finite.fit_proportional(x, 3 * x, np.array([0.1, 0.1, 0.2]))
    assert abs(fit.slope - 3) < 1e-12 and fit.chi2_dof < 1e-20
    np.testing.assert_allclose(fit.stderr, 1 / np.sqrt(100 + 400 + 400), rtol=1e-12)


def test_errors():
    with pytest.raises(TypeError, match="activation"):
        finite.activation_moments("relu", 1.0)
    with pytest.raises(ValueError, match="q"):
        finite.activation_moments(nets.Relu(), -1.0)
    with pytest.raises(ValueError, match="powers"):
        finite.activation_moments(nets.Relu(), 1.0, (0, 2))
    with pytest.raises(ValueError, match="readout"):
        finite.one_layer_cumulants(nets.Relu(), 1.0, 4, readout="cauchy")
    with pytest.raises(ValueError, match=">= 1"):
        finite.one_layer_cumulants(nets.Relu(), 1.0, 4, readout=0.5)
    with pytest.raises(ValueError, match="width"):
        finite.one_layer_cumulants(nets.Relu(), 1.0, 0)
    with pytest.raises(ValueError, match="v_std"):
        finite.one_layer_cumulants(nets.Relu(), 1.0, 3, v_std=-1.0)
    with pytest.raises(TypeError, match="serial"):
        finite.net_output_cumulants(nets.mlp(4, 2), jnp.ones((1, 2)))
    with pytest.raises(ValueError, match="Gaussian"):
        finite.net_output_cumulants(nets.mlp(4, 1, weights="orthogonal"), jnp.ones((1, 2)))
    with pytest.raises(ValueError, match="depth"):
        finite.vertex_recursion(nets.Relu(), 0, c_w=2.0, c_b=0.0, k1=1.0)
    with pytest.raises(ValueError, match="c_w"):
        finite.vertex_recursion(nets.Relu(), 3, c_w=-2.0, c_b=0.0, k1=1.0)
    with pytest.raises(ValueError, match="Sign"):  # chi_perp needs sign' (a delta function)
        finite.vertex_recursion(nets.Sign(), 3, c_w=1.0, c_b=0.0, k1=1.0)
    with pytest.raises(TypeError, match="activation"):
        finite.vertex_recursion("relu", 3, c_w=1.0, c_b=0.0, k1=1.0)
    with pytest.raises(ValueError, match="kurtosis"):
        finite.edgeworth_pdf(0.0, float("nan"))
    with pytest.raises(ValueError, match="n_networks"):
        finite.output_samples(nets.mlp(4, 1), jax.random.key(0), jnp.ones((1, 2)), 0)
    with pytest.raises(ValueError, match="method"):
        finite.output_samples(nets.mlp(4, 1), jax.random.key(0), jnp.ones((1, 2)), 5, method="x")
    with pytest.raises(TypeError, match="collapsed"):
        finite.output_samples(nets.serial(nets.Dense(3), nets.LayerNorm(), nets.Dense(1)),
                              jax.random.key(0), jnp.ones((1, 2)), 5, method="collapsed")
    with pytest.raises(ValueError, match="x must"):
        finite.output_samples(nets.mlp(4, 1), jax.random.key(0), jnp.ones(2), 5)
    with pytest.raises(ValueError, match="8 samples"):
        finite.sample_kurtosis(np.ones(3))
    with pytest.raises(ValueError, match="nonzero variance"):
        finite.sample_kurtosis(np.ones(30))
    with pytest.raises(ValueError, match="readout"):
        finite.one_layer_samples(jax.random.key(0), 10, 3, nets.Relu(), 1.0, readout=2.0)

