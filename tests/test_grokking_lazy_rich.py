"""The grokking model of Kumar et al. 2024 (``models.grokking``) and its reproduction
``reproduce.grokking_lazy_rich`` (Figs. 1b and 3a) at the smoke size."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests.conftest import rtol_for
from widelimits import dynamics, kernels
from widelimits.models import grokking
from widelimits.reproduce import REGISTRY, grokking_lazy_rich as gl

from ._repro import assert_png, forbid

ALPHA, EPS = 0.7, 0.3


def _problem(dtype, d=6, n=10, p=20, seed=0):
    k = jax.random.split(jax.random.key(seed), 4)
    w = jax.random.normal(k[0], (n, d), dtype)
    x = jax.random.normal(k[1], (p, d), dtype) / d ** 0.5
    beta = jax.random.normal(k[2], (d,), dtype)
    return w, x, beta, jax.random.normal(k[3], (n, d), dtype)


def _brute_f(w, x, alpha, eps):  # numpy float64, one neuron at a time
    w, x = np.asarray(w, np.float64), np.asarray(x, np.float64)
    out = np.zeros(len(x))
    for wi in w:
        h = x @ wi
        out += h + 0.5 * eps * h ** 2
    return alpha * out / len(w)


def test_network_equals_sufficient_statistics_formula(dtype):
    w, x, _, _ = _problem(dtype)
    want = _brute_f(w, x, ALPHA, EPS)
    f = grokking.apply(w, x, ALPHA, EPS)
    g = grokking.stats_apply(grokking.stats(w), x, ALPHA, EPS)
    assert f.dtype == dtype and g.dtype == dtype
    np.testing.assert_allclose(f, want, rtol=rtol_for(dtype), atol=1e-6)
    np.testing.assert_allclose(g, want, rtol=rtol_for(dtype), atol=1e-6)
    # jit and vmap over alpha
    if dtype == jnp.float32:
        return
    fa = jax.jit(jax.vmap(lambda a: grokking.apply(w, x, a, EPS)))(jnp.array([0.5, 2.0]))
    np.testing.assert_allclose(fa[1], 4 * fa[0], rtol=rtol_for(dtype))


def test_ntk_closed_form_equals_empirical_ntk(dtype):
    w, x, _, _ = _problem(dtype)
    xt = x[:7] * 1.3 + 0.1
    emp = kernels.empirical_ntk(lambda p, z: grokking.apply(p, z, ALPHA, EPS), w, xt, x)
    ours = grokking.ntk(grokking.stats(w), xt, x, ALPHA, EPS, w.shape[0])
    np.testing.assert_allclose(ours, emp, rtol=rtol_for(dtype, f32=1e-4), atol=1e-7)


def test_one_gd_step_equals_hand_computed_update():
    w, x, beta, w0 = _problem(jnp.float64)
    n, d = w.shape
    p = x.shape[0]
    y = np.asarray(grokking.target(x, beta))
    np.testing.assert_allclose(y, 0.5 * (np.asarray(x) @ np.asarray(beta)) ** 2, rtol=1e-14)
    lr = 3.0
    # By hand: Delta = f_c - y, grad_{w_i} L = (1/P) sum_mu Delta_mu (alpha/N) phi'(h_i,mu) x_mu
    wn, w0n, xn = (np.asarray(a) for a in (w, w0, x))
    delta = _brute_f(wn, xn, ALPHA, EPS) - _brute_f(w0n, xn, ALPHA, EPS) - y
    grad = np.stack([(delta * (1 + EPS * (xn @ wi))) @ xn for wi in wn]) * ALPHA / (n * p)
    w1 = wn - lr * grad
    # the reduced dynamics starts from W's statistics, centred at W0: give it the offset
    s0 = grokking.stats(w0)
    s = grokking.stats(w)
    run = grokking.gradient_descent(s, x, y + np.asarray(grokking.stats_apply(
        grokking.Stats(s0.wbar - s.wbar, s0.m - s.m), x, ALPHA, EPS)), alpha=ALPHA,
        epsilon=EPS, learning_rate=lr, width=n, steps=1)
    want = grokking.stats(w1)
    np.testing.assert_allclose(run.stats.wbar, want.wbar, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(run.stats.m, want.m, rtol=1e-12, atol=1e-14)


def test_reduced_gd_equals_training_the_weights():
    # dynamics.train on the N x D weights of the centred network vs gradient_descent on (wbar, M).
    w, x, beta, _ = _problem(jnp.float64, d=5, n=8, p=16, seed=1)
    xt = jax.random.normal(jax.random.key(9), (30, 5), jnp.float64) / 5 ** 0.5
    y, yt = grokking.target(x, beta), grokking.target(xt, beta)
    alpha, lr, steps = 0.5, 0.5 * 8 / 0.5 ** 2, 60
    f0 = lambda z: grokking.apply(w, z, alpha, EPS)  # noqa: E731
    centred = lambda p, z: grokking.apply(p, z, alpha, EPS) - f0(z)  # noqa: E731
    net = dynamics.train(centred, w, x, y, optax.sgd(lr), steps, x_test=xt, y_test=yt,
                         record_every=20, progress=False)

    def reduced(a):  # vmapped over alpha below: one compilation for both members
        return grokking.gradient_descent(grokking.stats(w), x, y, alpha=a, epsilon=EPS,
                                         learning_rate=lr, width=8, steps=steps,
                                         record_every=20, x_test=xt, y_test=yt, beta=beta)

    both = jax.vmap(reduced)(jnp.array([alpha, 2.0]))
    red = jax.tree.map(lambda v: v[0], both)
    np.testing.assert_allclose(red.mse_train, 2 * net.loss, rtol=1e-10)  # train: 1/2 mean
    np.testing.assert_allclose(red.mse_test, 2 * net.loss_test, rtol=1e-10)
    final = grokking.stats(net.params)
    np.testing.assert_allclose(red.stats.m, final.m, rtol=1e-10, atol=1e-13)
    assert red.mse_train[-1] < 0.5 * red.mse_train[0]
    # the other vmapped member (alpha = 2) is the run on its own
    alone = grokking.gradient_descent(grokking.stats(w), x, y, alpha=2.0, epsilon=EPS,
                                      learning_rate=lr, width=8, steps=steps, record_every=20)
    np.testing.assert_allclose(both.mse_train[1], alone.mse_train, rtol=1e-10)


def test_population_mse_closed_form_against_monte_carlo():
    w, x, beta, w0 = _problem(jnp.float64, d=6, n=10)
    d = 6
    s, s0 = grokking.stats(w), grokking.stats(w0)
    exact = float(grokking.population_mse(s, s0, beta, ALPHA, EPS))
    z = np.asarray(jax.random.normal(jax.random.key(3), (400_000, d), jnp.float64)) / d ** 0.5
    diff = grokking.stats_apply(grokking.Stats(s.wbar - s0.wbar, s.m - s0.m), z,
                                ALPHA, EPS) - grokking.target(z, beta)
    sq = np.asarray(diff) ** 2
    zscore = (sq.mean() - exact) / (sq.std() / np.sqrt(sq.size))
    assert abs(zscore) < 4, (sq.mean(), exact, zscore)
    # at initialisation the error is E y^2 = 3 (|beta|^2 / D)^2 / 4
    at0 = grokking.population_mse(s0, s0, beta, ALPHA, EPS)
    np.testing.assert_allclose(at0, 0.75 * (float(beta @ beta) / d) ** 2, rtol=1e-12)


def test_bad_input_raises():
    w, x, beta, _ = _problem(jnp.float64)
    s = grokking.stats(w)
    with pytest.raises(ValueError, match="share D"):
        grokking.apply(w, x[:, :3], 1.0, 0.1)
    with pytest.raises(ValueError, match="shape \\(n, D\\)"):
        grokking.stats(w[0])
    with pytest.raises(TypeError, match="grokking.Stats"):
        grokking.stats_apply((s.wbar, s.m), x, 1.0, 0.1)
    y = grokking.target(x, beta)
    kw = dict(alpha=1.0, epsilon=0.1, learning_rate=1.0, width=10)
    with pytest.raises(ValueError, match="multiple of record_every"):
        grokking.gradient_descent(s, x, y, steps=10, record_every=3, **kw)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        grokking.gradient_descent(s, x, y, steps=0, **kw)
    with pytest.raises(ValueError, match="y \\(P,\\)"):
        grokking.gradient_descent(s, x, y[:-1], steps=1, **kw)
    with pytest.raises(ValueError, match="x_test and y_test"):
        grokking.gradient_descent(s, x, y, steps=1, x_test=x, **kw)
    with pytest.raises(ValueError, match="width must be a positive int"):
        grokking.gradient_descent(s, x, y, steps=1, **(kw | {"width": 0}))
    with pytest.raises(ValueError, match="size must be one of"):
        gl.run("huge")


# ----------------------------------------------------------------------------- reproduction
@pytest.fixture(scope="module")
def smoke(tmp_path_factory, smoke_results):
    out = tmp_path_factory.mktemp("grokking_lazy_rich")
    result = smoke_results("grokking_lazy_rich", out)
    return result, gl.plot(result, out), out


def test_figures_written_and_registered(smoke):
    _, paths, _ = smoke
    assert REGISTRY["grokking_lazy_rich"] is gl
    assert len(paths) == 2
    for path in paths:
        assert_png(path)


def test_fig1_train_loss_falls_long_before_test_loss(smoke):
    f1 = smoke[0]["fig1"]
    assert np.isfinite(f1["t_train"]) and np.isfinite(f1["t_test"])
    assert 1.5 * f1["t_train"] < f1["t_test"], (f1["t_train"], f1["t_test"])
    # Lazy start: the network follows its linearisation (initial NTK) at first, ...
    np.testing.assert_allclose(f1["train"][1], f1["lin_train"][1], rtol=0.02)
    # ... then learns features: it generalises far below the initial-NTK regression level,
    # while the linearised network is still above that level (its t = infinity limit) at the end.
    assert f1["test"][-1] < 0.3 * f1["krr_test"]
    assert f1["lin_test"][-1] > f1["krr_test"]
    # the closed-form population error starts at E y^2 = 3/4 (|beta*|^2 = D)
    np.testing.assert_allclose(f1["population"][0], 0.75, rtol=1e-5)


def test_larger_alpha_delays_generalisation(smoke):
    sw = smoke[0]["sweep"]
    alphas, t_train, t_test = sw["alphas"], sw["t_train"], sw["t_test"]
    assert alphas[0] < alphas[1]
    assert np.all(np.isfinite(t_train)) and np.all(t_train < t_test)
    # Kumar et al.: the output scale alpha sets the rate of feature learning (~1/alpha); the
    # grokking amount t_test - t_train grows with alpha.
    assert sw["grokking"][1] > 3 * sw["grokking"][0], sw["grokking"]


def test_run_resumes_finished_pieces(smoke, monkeypatch):
    result, _, out = smoke

    forbid(monkeypatch, gl, "_train")
    again = gl.run("smoke", out)
    np.testing.assert_array_equal(again["sweep"]["test"], result["sweep"]["test"])
    np.testing.assert_array_equal(again["fig1"]["lin_test"], result["fig1"]["lin_test"])
    loaded = gl.load(result["data"], "smoke")
    np.testing.assert_array_equal(loaded["fig1"]["train"], result["fig1"]["train"])
    with pytest.raises(ValueError, match="lacks"):
        gl.load(result["data"], "quick")
