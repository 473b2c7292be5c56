"""The catapult reproduction (Lewkowycz et al. 2020; Zhu et al. 2022) and the uv model: the
closed-form NTK against autodiff, full gradient descent against the paper's two-variable map,
the phase thresholds eta lambda_0 = 2 and 4, and the linearised model against the exact
kernel recursion of gradient descent on a linear model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.conftest import rtol_for
from widelimits import dynamics, kernels
from widelimits.models import uv
from widelimits.reproduce import REGISTRY, catapult as cat

from ._repro import assert_png, forbid


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, smoke_results):
    out = tmp_path_factory.mktemp("catapult")
    result = smoke_results("catapult", out)
    return result, cat.plot(result, out), out


def _at(result, model, rate):
    r = result[model]
    return r, int(np.flatnonzero(np.isclose(r["rates"], rate))[0])


# ----------------------------------------------------------------------------- the uv model
def test_uv_ntk_closed_form_matches_autodiff(dtype):
    p = uv.init(jax.random.key(3), 7, in_dim=3, out_dim=2, dtype=dtype)
    x1 = jax.random.normal(jax.random.key(4), (4, 3), dtype)
    x2 = jax.random.normal(jax.random.key(5), (2, 3), dtype)
    want = kernels.empirical_ntk(uv.apply, p, x1, x2)
    got = uv.ntk(p, x1, x2)
    assert got.dtype == dtype and got.shape == (4, 2)
    np.testing.assert_allclose(got, want, rtol=rtol_for(dtype, 1e-12, 1e-5), atol=1e-6)
    # one scalar input: Theta = x x' (|u|^2 + |v|^2) / n
    p1 = uv.init(jax.random.key(6), 9, dtype=dtype)
    lam = (jnp.sum(p1["u"] ** 2) + jnp.sum(p1["v"] ** 2)) / 9
    np.testing.assert_allclose(uv.ntk(p1, jnp.array([[2.0]], dtype)), 4 * lam[None, None],
                               rtol=rtol_for(dtype, 1e-12, 1e-5))


def test_uv_reduced_dynamics_is_one_step_of_gradient_descent():
    # Oracle: one hand-written gradient step on u, v for three scalar examples.
    p = uv.init(jax.random.key(0), 11, dtype=jnp.float64)
    x, y, eta = jnp.array([0.5, -1.0, 2.0]), jnp.array([0.3, 0.1, -0.7]), 0.37
    loss = lambda q: 0.5 * jnp.mean((uv.apply(q, x[:, None])[:, 0] - y) ** 2)  # noqa: E731
    g = jax.grad(loss)(p)
    q = jax.tree.map(lambda a, b: a - eta * b, p, g)
    s = lambda q: jnp.sum(q["u"] * q["v"]) / jnp.sqrt(11.0)  # noqa: E731
    lam = lambda q: (jnp.sum(q["u"] ** 2) + jnp.sum(q["v"] ** 2)) / 11  # noqa: E731
    ss, ll = uv.reduced_dynamics(s(p), lam(p), x, y, eta, 11, 1)
    np.testing.assert_allclose([ss[1], ll[1]], [s(q), lam(q)], rtol=1e-13)


def test_uv_reduced_map_thresholds_are_2_and_4():
    # The paper's map (x = 1, y = 0) at width 10^4: lazy below 2, catapult between, divergence
    # above 4. Final eta*lambda < 2 whenever it converges.
    rates = jnp.array([1.9, 2.1, 3.0, 3.9, 4.1, 4.5])
    n, lam0, steps = 10_000, 2.0, 3000
    run = jax.jit(jax.vmap(lambda r: uv.reduced_dynamics(
        1.0, lam0, jnp.ones(1), jnp.zeros(1), r / lam0, n, steps)))
    with np.errstate(all="ignore"):
        s, lam = (np.asarray(a) for a in run(rates))
        phases = [cat.classify(0.5 * s[i] ** 2) for i in range(len(rates))]
    assert phases == ["lazy", "catapult", "catapult", "catapult", "diverged", "diverged"], phases
    final = np.asarray(rates[:4]) / lam0 * lam[:4, -1]
    assert np.all(final < 2), final


def test_uv_training_matches_the_reduced_map(smoke):
    result = smoke[0]
    r = result["uv"]
    key, cfg = jax.random.fold_in(jax.random.key(0), 0), cat.CONFIGS["smoke"]
    with jax.enable_x64(True):
        f, p, x, y = cat.uv_problem(cfg["uv_width"], key)
        s0 = float(f(p, x)[0, 0])
        lam0 = float(uv.ntk(p, x)[0, 0])
        np.testing.assert_allclose(r["lam0"], lam0, rtol=1e-12)
        for e, rate in enumerate(r["rates"]):
            if r["phase"][e] == "diverged":
                continue
            s, lam = uv.reduced_dynamics(s0, lam0, jnp.ones(1), jnp.zeros(1), rate / lam0,
                                         cfg["uv_width"], cfg["steps"])
            live = np.asarray(0.5 * s ** 2) > 1e-20
            np.testing.assert_allclose(r["loss"][e][live], 0.5 * np.asarray(s)[live] ** 2,
                                       rtol=1e-7, atol=1e-14 * r["loss"][e][0])
            np.testing.assert_allclose(r["eta_lam"][e], rate / lam0 * np.asarray(lam)[
                r["ntk_steps"]], rtol=1e-8)


# ----------------------------------------------------------------------------- the three phases
@pytest.mark.parametrize("model", ["uv", "quadratic"])
def test_three_phases(smoke, model):
    result = smoke[0]
    r, lazy = _at(result, model, 1.5)
    assert r["phase"][lazy] == "lazy"
    assert np.all(np.diff(r["loss"][lazy]) <= 1e-14 * r["loss"][lazy, 0])  # round-off floor
    assert abs(r["eta_lam"][lazy, -1] - 1.5) < 0.02  # the kernel barely moves
    _, cata = _at(result, model, 3.0)
    loss = r["loss"][cata]
    assert r["phase"][cata] == "catapult"
    assert loss.max() > 2 * loss[0] and loss[-1] < 1e-6 * loss[0]  # spike, then convergence
    assert r["eta_lam"][cata, -1] < 2.0  # the kernel dropped below the stability edge
    _, div = _at(result, model, 4.5)
    assert r["phase"][div] == "diverged"
    assert r["nonfinite_step"][div] >= 0 or r["loss"][div, -1] > 1e6 * r["loss"][div, 0]


def test_network_catapults_but_its_linearisation_diverges(smoke):
    result = smoke[0]
    r, i = _at(result, "network", 3.0)
    assert r["phase"][i] == "catapult" and r["eta_lam"][i, -1] < 2.0
    lin, j = _at(result, "linearized", 3.0)
    assert lin["phase"][j] == "diverged"


def test_linearised_model_is_gradient_descent_on_a_linear_model(smoke):
    # Stable just below eta lambda_0 = 2 (monotone), unstable just above; and the losses are
    # those of the exact recursion f <- f - (eta / m) Theta_0 (f - y).
    result = smoke[0]
    r = result["linearized"]
    _, below = _at(result, "linearized", 1.95)
    _, above = _at(result, "linearized", 2.05)
    assert np.all(np.diff(r["loss"][below]) <= 1e-14 * r["loss"][below, 0])
    assert r["phase"][below] == "lazy"
    assert r["loss"][above, -1] > 100 * r["loss"][above, 0]
    ok = np.isfinite(r["eta_lam"])  # a constant kernel, eta lambda_t = eta lambda_0, until the
    assert ok[:, 0].all() and ok[below].all()  # loss overflows
    np.testing.assert_allclose(r["eta_lam"][ok], np.broadcast_to(r["eta_lam"][:, :1],
                                                                 ok.shape)[ok], rtol=1e-10)
    key = jax.random.fold_in(jax.random.key(0), 1)
    with jax.enable_x64(True):
        net, p, x, y = cat.relu_problem(cat.CONFIGS["smoke"]["net_width"], key)
        ntk = kernels.empirical_ntk(net, p, x)
        f0 = net.apply(p, x)
        steps = np.arange(r["loss"].shape[1])
        for e in (below, above):
            lr = r["rates"][e] / float(r["lam0"])
            pred = dynamics.gradient_descent_mse(ntk, y, lr)(fx_train_0=f0, steps=steps)
            want = 0.5 * np.mean((np.asarray(pred) - np.asarray(y)) ** 2, axis=(1, 2))
            np.testing.assert_allclose(r["loss"][e], want, rtol=1e-8, atol=1e-14 * want[0])
            assert 2 * lr / float(dynamics.max_learning_rate(ntk, y.size)) == pytest.approx(
                r["rates"][e], rel=1e-12)


def test_classify():
    assert cat.classify(np.array([1.0, 0.5, 1e-5])) == "lazy"
    assert cat.classify(np.array([1.0, 3.0, 1e-5])) == "catapult"
    assert cat.classify(np.array([1.0, 0.5, 0.4])) == "unconverged"
    assert cat.classify(np.array([1.0, 2.0, np.inf])) == "diverged"
    assert cat.classify(np.array([1.0, 0.5, 1e-5]), nonfinite_step=3) == "diverged"
    assert cat.classify(np.array([1.0, 1e-14, 3e-14, 1e-15])) == "lazy"  # round-off floor


# ----------------------------------------------------------------------------- the reproduction
def test_figure_registry_and_resume(smoke, monkeypatch):
    result, paths, out = smoke
    assert REGISTRY["catapult"] is cat
    assert_png(paths[0])

    forbid(monkeypatch, cat, "sweep")
    again = cat.load(result["data"], "smoke")
    for model in cat.MODELS:
        np.testing.assert_array_equal(again[model]["loss"], result[model]["loss"])
    with pytest.raises(ValueError, match="size"):
        cat.run("huge", out)


def test_sweep_bad_input():
    f, p, x, y = cat.uv_problem(3, jax.random.key(0))
    with pytest.raises(ValueError, match="rates"):
        cat.sweep(f, p, x, y, [1.0, -2.0], 5)
    with pytest.raises(ValueError, match="lam0"):
        cat.sweep(f, p, x, y, [1.0], 5, lam0=0.0)


def test_uv_bad_input():
    p = uv.init(jax.random.key(0), 4, in_dim=2)
    with pytest.raises(ValueError, match="width"):
        uv.init(jax.random.key(0), 0)
    with pytest.raises(TypeError, match="dtype"):
        uv.init(jax.random.key(0), 3, dtype=jnp.int32)
    with pytest.raises(ValueError, match=r"x must have shape \(m, 2\)"):
        uv.apply(p, jnp.ones((3, 3)))
    with pytest.raises(ValueError, match="keys 'u'"):
        uv.ntk({"w": 1}, jnp.ones((3, 2)))
    with pytest.raises(ValueError, match="x and y"):
        uv.reduced_dynamics(1.0, 2.0, jnp.ones(2), jnp.ones(3), 0.1, 10, 5)
    with pytest.raises(ValueError, match="steps"):
        uv.reduced_dynamics(1.0, 2.0, jnp.ones(2), jnp.ones(2), 0.1, 10, -1)
