"""The ntk_convergence reproduction (Jacot et al. 2018, Fig. 1) at the smoke size."""

import jax
import numpy as np
import optax
import pytest

from widelimits import dynamics, kernels
from widelimits.reproduce import REGISTRY, ntk_convergence as nc

from ._repro import assert_png, forbid


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, smoke_results):
    out = tmp_path_factory.mktemp("ntk_convergence")
    result = smoke_results("ntk_convergence", out)
    return result, nc.plot(result, out), out


def test_figure_and_registry(smoke):
    _, paths, _ = smoke
    assert REGISTRY["ntk_convergence"] is nc
    assert_png(paths[0])


def test_limit_is_the_analytic_ntk(smoke):
    result = smoke[0]
    x = nc.circle(result["angles"])
    want = kernels.analytic(nc.make_net(7), nc.circle([0.0]), x).ntk[0]
    np.testing.assert_allclose(result["limit"], want, rtol=1e-6)
    # On the circle the kernel depends on cos(γ) only.
    np.testing.assert_allclose(result["limit"], result["limit"][::-1], rtol=1e-5)


def test_wide_networks_hug_the_limit_and_move_less(smoke):
    # Fluctuations scale as width^-1/2 and the kernel's movement in training as width^-1; the
    # smoke widths differ 32-fold, so the expected ratios are ~5.7 and ~32 (we ask for 2 and 5).
    result = smoke[0]
    narrow, wide = result["deviation"][0], result["deviation"][1]
    assert np.all(wide * 2 < narrow), result["deviation"]
    assert result["movement"][1] * 5 < result["movement"][0], result["movement"]


def test_training_reduces_the_loss(smoke):
    loss = smoke[0]["loss"]
    assert loss.shape[-1] == nc.CONFIGS["smoke"]["steps"] + 1
    assert np.all(loss[..., -1] < 0.5 * loss[..., 0])


def test_gradient_descent_matches_a_hand_written_step():
    # The figure trains with dynamics.train and optax.sgd: its "mse" loss is the figure's cost
    # (1/2N) sum (f - y)^2 for one output, and one step is a plain gradient-descent step.
    net = nc.make_net(16)
    x, y = nc.training_set()
    params = net.init(jax.random.key(0), x.shape)
    res = dynamics.train(net, params, x, y, optax.sgd(0.3), 1, progress=False)
    trained, losses = res.params, res.loss
    loss = lambda p: 0.5 * np.mean((np.asarray(net.apply(p, x)) - np.asarray(y)) ** 2)
    grad = jax.grad(lambda p: 0.5 * ((net.apply(p, x) - y) ** 2).mean())(params)
    want = jax.tree.map(lambda a, g: a - 0.3 * g, params, grad)
    for a, b in zip(jax.tree.leaves(trained), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(losses, [loss(params), loss(trained)], rtol=1e-5)


def test_run_resumes_finished_widths(smoke, monkeypatch):
    result, _, out = smoke

    forbid(monkeypatch, nc, "_one_width")
    again = nc.run("smoke", out)
    np.testing.assert_array_equal(again["ntk_t"], result["ntk_t"])
    loaded = nc.load(result["data"], "smoke")
    np.testing.assert_array_equal(loaded["ntk0"], result["ntk0"])
