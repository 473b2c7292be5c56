"""Mean-field (muP) MLPs and the dmft_two_layer reproduction (Bordelon & Pehlevan 2022)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests.conftest import rtol_for
from widelimits import compare, nets
from widelimits.reproduce import REGISTRY, dmft_two_layer as dtl

from ._repro import assert_png, forbid


def _relu(a):
    return np.maximum(a, 0.0)


def test_meanfield_mlp_matches_hand_written_network_and_gd_step(dtype):
    """Depth 1: f = w . relu(W0 x / sqrt(D)) / (gamma0 N) and the gradient-descent step with rate
    eta gamma0^2 N, written out by hand in NumPy (float64)."""
    n, d, p, g0, eta = 48, 5, 7, 1.7, 0.3
    x = np.asarray(jax.random.normal(jax.random.key(1), (p, d), dtype))
    y = np.asarray(jax.random.normal(jax.random.key(2), (p, 1), dtype))
    net = nets.meanfield_mlp(n, 1, nets.Relu(), g0)
    params = jax.tree.map(lambda a: a.astype(dtype), net.init(jax.random.key(0), x.shape))
    w0, w = (np.asarray(params[i]["W"], np.float64) for i in (0, 2))
    assert set(params[0]) == {"W"} and set(params[2]) == {"W"}           # no biases
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    h = x64 @ w0 / np.sqrt(d)
    f = _relu(h) @ w / (g0 * n)
    rtol = rtol_for(dtype, 1e-12, 2e-5)
    np.testing.assert_allclose(net.apply(params, x), f, rtol=rtol, atol=rtol * np.abs(f).max())
    # One step of gradient descent on L = 1/2 mean (f - y)^2 at rate eta gamma0^2 N.
    lr = nets.meanfield_learning_rate(eta, g0, n)
    assert lr == pytest.approx(eta * g0**2 * n, rel=1e-15)
    err = (f - y64) / p                                                   # dL/df, (P, 1)
    grad_w = _relu(h).T @ err / (g0 * n)
    grad_w0 = x64.T @ ((err @ w.T) * (h > 0)) / (np.sqrt(d) * g0 * n)
    opt = optax.sgd(lr)

    @jax.jit
    def step(q):
        grads = jax.grad(lambda r: 0.5 * jnp.mean((net.apply(r, x) - y) ** 2))(q)
        return optax.apply_updates(q, opt.update(grads, opt.init(q), q)[0])

    new = step(params)
    for got, want in ((new[0]["W"], w0 - lr * grad_w0), (new[2]["W"], w - lr * grad_w)):
        scale = np.abs(want).max()
        np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=0,
                                   atol=rtol_for(dtype, 1e-12, 1e-5) * scale)


def test_deep_meanfield_mlp_matches_plain_jnp():
    """Depth 3 tanh: output and gradient equal those of a plain-jnp muP network."""
    n, d, p, g0, depth = 32, 6, 5, 0.6, 3
    x = jax.random.normal(jax.random.key(3), (p, d), jnp.float64)
    net = nets.meanfield_mlp(n, depth, nets.Tanh(), g0)
    params = jax.tree.map(lambda a: a.astype(jnp.float64), net.init(jax.random.key(4), x.shape))
    ws = [params[2 * i]["W"] for i in range(depth + 1)]

    def plain(ws):
        h = x @ ws[0] / np.sqrt(d)
        for w in ws[1:-1]:
            h = jnp.tanh(h) @ w / np.sqrt(n)
        return jnp.tanh(h) @ ws[-1] / (g0 * n)

    @jax.jit
    def both(g):  # gamma0 is a hyperparameter leaf: the spec may be built from a traced value
        model = nets.meanfield_mlp(n, depth, nets.Tanh(), g)
        got = jax.value_and_grad(lambda q: jnp.sum(model.apply(q, x) ** 2))(params)
        return got, jax.value_and_grad(lambda v: jnp.sum(plain(v) ** 2))(ws)

    (f2, got), (want_f2, want) = both(g0)
    np.testing.assert_allclose(f2, want_f2, rtol=1e-13)
    for i in range(depth + 1):
        np.testing.assert_allclose(got[2 * i]["W"], want[i], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(net.apply(params, x), plain(ws), rtol=1e-13)


def test_output_at_init_vanishes_like_one_over_gamma0_sqrt_n():
    """Var f(x) = Phi(x, x) / (gamma0^2 N) exactly at every width, Phi(x, x) = |x|^2 / (2 D) for
    ReLU. 4000 initialisations: the relative standard error of a sample variance is
    sqrt((kurtosis - 1) / K) <= 0.03 here (kurtosis ~ 3 + 15/N), and we allow 5 of them."""
    d, g0, k = 3, 0.5, 4000
    x = jnp.array([[1.0, 0.0, 0.0], [0.5, -2.0, 1.0]])
    want_phi = np.sum(np.asarray(x) ** 2, axis=1) / (2 * d)
    widths = (16, 256)

    @jax.jit
    def outputs(keys):  # (widths, K, 2): f(x) of K initialisations per width
        return [jax.vmap(lambda kk, n=n: nets.meanfield_mlp(n, 1, nets.Relu(), g0).apply(
            nets.meanfield_mlp(n, 1, nets.Relu(), g0).init(kk, x.shape), x)[:, 0])(keys)
            for n in widths]

    for n, f in zip(widths, outputs(jax.random.split(jax.random.key(5), k)), strict=True):
        var = np.asarray(jnp.mean(f**2, axis=0))
        np.testing.assert_allclose(var, want_phi / (g0**2 * n), rtol=0.15)
        assert abs(float(jnp.mean(f))) < 5 * np.sqrt(var.max() / k)


def test_meanfield_errors():
    with pytest.raises(ValueError, match="gamma0"):
        nets.meanfield_mlp(8, 1, nets.Relu(), 0.0)
    with pytest.raises(ValueError, match="gamma0"):
        nets.meanfield_mlp(8, 1, nets.Relu(), float("nan"))
    with pytest.raises(TypeError, match="gamma0"):
        nets.meanfield_mlp(8, 1, nets.Relu(), "1")
    with pytest.raises(ValueError, match="depth"):
        nets.meanfield_mlp(8, 0, nets.Relu(), 1.0)
    with pytest.raises(TypeError, match="width"):
        nets.meanfield_mlp(8.0, 1, nets.Relu(), 1.0)
    with pytest.raises(TypeError, match="activation"):
        nets.meanfield_mlp(8, 1, "relu", 1.0)
    with pytest.raises(ValueError, match="eta"):
        nets.meanfield_learning_rate(-0.1, 1.0, 8)
    with pytest.raises(ValueError, match="gamma0"):
        nets.meanfield_learning_rate(0.1, -1.0, 8)
    with pytest.raises(ValueError, match="width"):
        nets.meanfield_learning_rate(0.1, 1.0, 0)


# ------------------------------------------------------------------------ the reproduction

@pytest.fixture(scope="module")
def smoke(tmp_path_factory, smoke_results):
    out = tmp_path_factory.mktemp("dmft_two_layer")
    result = smoke_results("dmft_two_layer", out)
    return result, dtl.plot(result, out), out


def test_figure_and_registry(smoke):
    result, paths, _ = smoke
    assert REGISTRY["dmft_two_layer"] is dtl
    with pytest.raises(ValueError, match="size"):
        dtl.run("huge", smoke[2])
    assert_png(paths[0])
    np.testing.assert_allclose(compare.alignment(result["dmft_phi"], 3 * result["dmft_phi"]), 1,
                               rtol=1e-12)


def _z_tolerance(net_values, cfg, z=5.0):
    """z times the standard error of (mean over S network seeds - DMFT): the seeds scatter with
    the O(N^{-1/2}) finite-width fluctuation s (sample std over seeds); the DMFT's n single-site
    samples are a width-n empirical measure, so its Monte Carlo error is about s sqrt(N / n)."""
    s = np.std(net_values, axis=-1, ddof=1)
    return z * s * np.sqrt(1 / net_values.shape[-1] + cfg["width"] / cfg["n_samples"])


def test_networks_follow_the_dmft(smoke):
    result = smoke[0]
    cfg = result["config"]
    net_final, dm_final = result["net_loss"][:, :, -1], result["dmft_loss"][:, -1]
    assert np.all(dm_final < 0.8 * result["dmft_loss"][:, 0])               # it trains
    gap = np.abs(net_final.mean(1) - dm_final)
    assert np.all(gap < _z_tolerance(net_final, cfg)), (gap, _z_tolerance(net_final, cfg))
    # The final kernels' relative change agrees too where features move (gamma0 >= 1).
    rich = result["gammas"] >= 1
    gap = np.abs(result["change_net"].mean(1) - result["change_dmft"])[rich]
    tol = _z_tolerance(result["change_net"], cfg)[rich]
    assert np.all(gap < tol), (gap, tol)
    # At gamma0 = 3 the network's final kernel is far closer to the DMFT's than to its own start.
    assert 1 - result["align_dmft_net"][-1].max() < 0.1 * (1 - result["align_init_net"][-1].min())


def test_feature_learning_grows_with_gamma0(smoke):
    result = smoke[0]
    assert np.all(np.diff(result["change_dmft"]) > 0), result["change_dmft"]
    assert np.all(np.diff(result["change_net"].mean(1)) > 0), result["change_net"]
    assert result["change_dmft"][0] < 0.05 < 0.5 < result["change_dmft"][-1]
    assert np.all(np.diff(result["align_init_dmft"]) < 0)
    # The final kernel aligns with the target kernel y y^T more as gamma0 grows.
    target = result["align_target_dmft"]
    assert np.all(np.diff(target[:, 1]) > 0) and np.all(target[1:, 1] > target[1:, 0]), target
    assert np.all(np.diff(result["align_target_net"].mean(1)) > 0), result["align_target_net"]


def test_run_resumes_finished_gammas(smoke, monkeypatch):
    result, _, out = smoke

    forbid(monkeypatch, dtl, "_one_gamma")
    again = dtl.run("smoke", out)
    np.testing.assert_array_equal(again["net_phi"], result["net_phi"])
    loaded = dtl.load(result["data"], "smoke")
    np.testing.assert_array_equal(loaded["dmft_loss"], result["dmft_loss"])
