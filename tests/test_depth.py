"""Depth limits of ResNets: covariance ODE (Hayou & Yang 2023), its depth-L recursion, Monte
Carlo of finite ResNets, and the fixed-width log-normal SDE (Hayou 2022)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from tests.conftest import rtol_for
from widelimits import compare, depth, finite, kernels, nets
from widelimits.depth import _resnet

X = np.array([[1.0, 0.0], [np.cos(1.0), np.sin(1.0)], [0.3, -2.0]])
Q0 = X @ X.T / 2
Z = 4.5  # |z| bound for Monte Carlo checks (false alarm < 1e-5 per statistic)


def _relu_rhs(t, y):
    q = y.reshape(3, 3)
    d = np.diag(q)
    s = np.sqrt(d[:, None] * d[None, :])
    theta = np.arccos(np.clip(q / s, -1, 1))
    return (s / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * np.cos(theta))).ravel()


@pytest.fixture(scope="module")
def relu_ode():
    ts = np.array([0.25, 0.5, 1.0])
    return ts, np.asarray(depth.resnet_covariance(nets.Relu(), Q0, ts))


def test_relu_diagonal_grows_as_exp_half_t(relu_ode, dtype):
    ts, q = relu_ode
    want = np.diag(Q0)[None] * np.exp(ts / 2)[:, None]
    np.testing.assert_allclose(np.diagonal(q, axis1=1, axis2=2), want, rtol=1e-8, atol=0)
    q32 = depth.resnet_covariance(nets.Relu(), jnp.asarray(Q0, dtype), 1.0)
    assert q32.dtype == dtype
    np.testing.assert_allclose(np.diag(q32), np.diag(Q0) * np.exp(0.5), rtol=rtol_for(dtype, 1e-8, 2e-5))


def test_relu_off_diagonal_matches_scipy(relu_ode):
    ts, q = relu_ode
    ref = solve_ivp(_relu_rhs, (0, 1), Q0.ravel(), method="DOP853", t_eval=ts, rtol=1e-13,
                    atol=1e-14).y.T.reshape(-1, 3, 3)
    np.testing.assert_allclose(q, ref, rtol=1e-9, atol=1e-12)


def test_recursion_is_the_analytic_kernel_and_converges_at_rate_one_over_depth(relu_ode):
    q1 = relu_ode[1][-1]
    depths = np.array([8, 16, 32, 64, 128])
    errors = []
    for L in depths:
        r = np.asarray(depth.resnet_covariance_recursion(nets.Relu(), Q0, int(L)))
        errors.append(np.abs(r - q1).max())
    fit = compare.fit_power_law(depths, np.array(errors))
    assert abs(fit.exponent + 1) < max(3 * fit.stderr, 0.03), fit
    # The recursion is the infinite-width kernel of the nets spec (an independent interpreter).
    layers = np.asarray(depth.resnet_covariance_recursion(nets.Relu(), Q0, 8, all_layers=True))
    assert layers.shape == (9, 3, 3)
    np.testing.assert_allclose(layers[0], Q0, rtol=1e-15)
    np.testing.assert_allclose(kernels.analytic(depth.resnet(5, 8, nets.Relu()), X).nngp,
                               layers[-1], rtol=1e-12)


def test_erf_with_bias_ode_is_the_limit_of_the_recursion():
    kw = dict(w_std=1.5, b_std=0.3)
    q1 = np.asarray(depth.resnet_covariance(nets.Erf(), Q0, 1.0, **kw))
    e = [np.abs(np.asarray(depth.resnet_covariance_recursion(nets.Erf(), Q0, L, **kw)) - q1).max()
         for L in (100, 200)]
    assert e[1] < 0.55 * e[0] and e[0] < 1e-2  # O(1/L)
    net = depth.resnet(4, 6, nets.Erf(), w_std=1.5, b_std=0.3)
    np.testing.assert_allclose(kernels.analytic(net, X).nngp,
                               depth.resnet_covariance_recursion(nets.Erf(), Q0, 6, **kw),
                               rtol=1e-12)


def test_recursion_gradient():
    h = jax.grad(lambda q: depth.resnet_covariance_recursion(nets.Relu(), q, 4)[0, 0])(jnp.eye(1))
    # ReLU on one input: V(q) = q / 2, so q_4 = (1 + 1/8)^4 q_0.
    np.testing.assert_allclose(h[0, 0], 1.125**4, rtol=1e-12)


@pytest.mark.slow
def test_ode_under_jit_and_grad():
    f = jax.jit(lambda q: depth.resnet_covariance(nets.Relu(), q, 1.0))
    np.testing.assert_allclose(f(jnp.asarray(Q0)), depth.resnet_covariance(nets.Relu(), Q0, 1.0),
                               rtol=1e-12)
    # d q_1 / d q_0 on the diagonal of a single input: q_1 = q_0 e^{1/2}.
    g = jax.grad(lambda a: depth.resnet_covariance(nets.Relu(), a * jnp.eye(1))[0, 0])(2.0)
    np.testing.assert_allclose(g, np.exp(0.5), rtol=1e-8)


def test_sampler_forward_is_the_nets_spec():
    # depth.resnet(...) as a nets spec and the sampler's forward pass (its "weights" draw through
    # finite.draw, each layer's parameters from its own init) agree for the same weights.
    net = depth.resnet(7, 5, nets.Tanh(), w_std=1.3, b_std=None)
    key = jax.random.key(0)
    k_embed, k_blocks = jax.random.split(key)  # the sampler's keys (_resnet._network)
    params = (net.layers[0].init(k_embed, X.shape),) + tuple(
        block.init(jax.random.fold_in(k_blocks, l), (3, 7))
        for l, block in enumerate(net.layers[1:]))
    hs = _resnet._network(nets.Tanh(), key, jnp.asarray(X), 7, 5, 1.3, None, "weights",
                          each=lambda h: h)
    np.testing.assert_allclose(hs[-1], net.apply(params, X), rtol=1e-12, atol=1e-13)
    # The traced-depth path (no per-layer record) draws the same network.
    last = _resnet._network(nets.Tanh(), key, jnp.asarray(X), 7, jnp.asarray(5), 1.3, None,
                            "weights")
    np.testing.assert_allclose(last, hs[-1], rtol=1e-12, atol=1e-13)
    # The whole spec through the view with dense="weights" is net.apply(net.init(key)).
    np.testing.assert_allclose(finite.draw(net, key, X, dense="weights"),
                               net.apply(net.init(key, X.shape), X), rtol=1e-12, atol=1e-13)


def test_finite_resnets_approach_the_limit():
    # Width 128, depth 32: the Monte Carlo mean of x_L x_L^T / n against the infinite-width
    # recursion at the same depth (bias O(1/n) ~ 0.5%, below the ~1.4% standard error).
    c = np.asarray(depth.sample_covariance(jax.random.key(1), X, 128, 32, nets.Relu(),
                                           n_samples=128, batch_size=128))
    mean, se = c.mean(0), c.std(0, ddof=1) / np.sqrt(len(c))
    r = np.asarray(depth.resnet_covariance_recursion(nets.Relu(), Q0, 32))
    assert np.all(np.abs((mean - r) / se) < Z), (mean - r) / se
    # The sampling shortcut is exact in distribution: it agrees with drawing every block matrix
    # (two-sample z-scores at width 24, where the 1/n bias is large but shared).
    kw = dict(n_samples=600, batch_size=600)
    a = np.asarray(depth.sample_covariance(jax.random.key(2), X, 24, 6, nets.Relu(), **kw))
    b = np.asarray(depth.sample_covariance(jax.random.key(3), X, 24, 6, nets.Relu(),
                                           method="weights", **kw))
    se2 = np.sqrt(a.var(0, ddof=1) / len(a) + b.var(0, ddof=1) / len(b))
    assert np.all(np.abs((a.mean(0) - b.mean(0)) / se2) < Z)


def test_fixed_width_log_norm_is_log_normal():
    n, L, s = 8, 256, 4000
    mean_sde, var_sde = depth.linear_sde_log_norm(n, 1.0)
    assert (mean_sde, var_sde) == (1 - 2 / n, 4 / n)
    # Exact finite-depth moments converge to the SDE's with the 1/(2L) correction of the mean.
    for depth_ in (256, 4096):
        m, v = depth.linear_resnet_log_norm(n, depth_)
        assert abs(m - mean_sde + (1 - 6 / n + 8 / n**2) / (2 * depth_)) < 5 / depth_**2
        assert abs(v - var_sde) < 10 / (n * depth_)
    x = np.ones((1, n))
    c = np.asarray(depth.sample_covariance(jax.random.key(4), x, n, L, nets.Identity(),
                                           n_samples=s, batch_size=1000, all_layers=True))
    logs = np.log(c[:, -1, 0, 0] / c[:, 0, 0, 0])
    sde = np.asarray(depth.sample_sde(jax.random.key(5), np.ones(n), nets.Identity(),
                                      n_steps=L, n_samples=s))
    logs_sde = np.log(np.sum(sde**2, -1) / n)
    m_exact, v_exact = depth.linear_resnet_log_norm(n, L)
    for sample in (logs, logs_sde):
        m, v = sample.mean(), sample.var(ddof=1)
        se_v = np.sqrt((np.mean((sample - m) ** 4) - v**2) / s)
        assert abs(m - m_exact) < Z * np.sqrt(v / s), (m, m_exact)
        assert abs(v - v_exact) < Z * se_v, (v, v_exact)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: depth.resnet_covariance(nets.Relu(), np.ones(3)), ValueError,
     r"q0 must be a square covariance matrix \(m, m\), got shape \(3,\)"),
    (lambda: depth.resnet_covariance(nets.Relu(), [[1.0, 0.5], [0.2, 1.0]]), ValueError,
     r"q0 must be symmetric"),
    (lambda: depth.resnet_covariance(nets.Relu(), [[-1.0, 0.0], [0.0, 1.0]]), ValueError,
     r"nonnegative diagonal"),
    (lambda: depth.resnet_covariance(nets.Relu(), [[np.nan]]), ValueError, r"non-finite"),
    (lambda: depth.resnet_covariance("relu", Q0), TypeError, r"activation must be an activation"),
    (lambda: depth.resnet_covariance(nets.Relu(), Q0, [0.5, 0.2]), ValueError,
     r"t must be finite, >= 0 and increasing"),
    (lambda: depth.resnet_covariance(nets.Relu(), Q0, -1.0), ValueError, r"t must be finite"),
    (lambda: depth.resnet_covariance(nets.Relu(), Q0, w_std=-1.0), ValueError, r"w_std must be"),
    (lambda: depth.resnet_covariance_recursion(nets.Relu(), Q0, 0), ValueError,
     r"depth must be a positive int, got 0"),
    (lambda: depth.resnet(8, -1, nets.Relu()), ValueError, r"depth must be an int >= 0, got -1"),
    (lambda: depth.sample_covariance(jax.random.key(0), X, 4, 2, nets.Relu(), method="exact"),
     ValueError, r"method must be one of \('projected', 'weights'\), got 'exact'"),
    (lambda: depth.sample_covariance(jax.random.key(0), X[0], 4, 2, nets.Relu()), ValueError,
     r"x must have shape \(m, d\)"),
    (lambda: depth.sample_covariance(jax.random.key(0), X, 0, 2, nets.Relu()), ValueError,
     r"width must be a positive int, got 0"),
    (lambda: depth.linear_sde_log_norm(0), ValueError, r"width must be a positive int"),
    (lambda: depth.linear_sde_log_norm(4, -0.5), ValueError, r"t must be a finite number >= 0"),
    (lambda: depth.sample_sde(jax.random.key(0), np.ones((2, 2)), nets.Relu(), n_steps=4,
                              n_samples=2), ValueError, r"x0 must be a floating-point vector"),
])
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
