"""The ntk_function_dynamics reproduction (Jacot et al. 2018, Fig. 2) at the smoke size."""

import numpy as np
import pytest

from widelimits import kernels
from widelimits.reproduce import REGISTRY, ntk_function_dynamics as nfd

from ._repro import assert_png, forbid


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, smoke_results):
    out = tmp_path_factory.mktemp("ntk_function_dynamics")
    result = smoke_results("ntk_function_dynamics", out)
    return result, nfd.plot(result, out), out


def test_figure_and_registry(smoke):
    result, paths, _ = smoke
    assert REGISTRY["ntk_function_dynamics"] is nfd
    assert_png(paths[0])
    cfg = nfd.CONFIGS["smoke"]
    shape = (len(cfg["widths"]), cfg["n_inits"], cfg["n_angles"])
    assert result["f0"].shape == result["f_t"].shape == shape


def test_band_is_the_ensemble_formula_with_the_analytic_kernels(smoke):
    """Oracle: the Gaussian of Lee et al. eqs. 15-16 written out with numpy from the analytic
    NNGP K and NTK Θ: A = Θ_*X Θ^-1 (I - (I - ηΘ/n)^T), mean A y,
    cov K_** + A K A^T - A K_X* - K_*X A^T; the 10/90 % quantiles are mean ∓ 1.2816 σ."""
    result = smoke[0]
    x, y = result["x_train"], result["y_train"].astype(np.float64)
    xs = nfd.circle(result["angles"])
    net = nfd.make_net(1)
    k, kx, kss = (kernels.analytic(net, *a) for a in ((x,), (xs, x), (xs,)))  # as in run
    f64 = lambda v: np.asarray(v, np.float64)  # noqa: E731
    th, thx = f64(k.ntk), f64(kx.ntk)
    steps, n = result["config"]["steps"], y.size
    a = thx @ np.linalg.solve(th, np.eye(n) - np.linalg.matrix_power(
        np.eye(n) - nfd.LEARNING_RATE * th / n, steps))
    mean = a @ y[:, 0]
    cov = f64(kss.nngp) + a @ f64(k.nngp) @ a.T - a @ f64(kx.nngp).T - f64(kx.nngp) @ a.T
    np.testing.assert_allclose(result["mean"], mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(result["std"], np.sqrt(np.clip(np.diag(cov), 0, None)),
                               rtol=1e-3, atol=1e-4)
    assert abs(nfd.Z90 - 1.2815515655446004) < 1e-15
    # the mean interpolates the targets once trained long enough: only checked loosely here
    assert result["limit_loss"][-1] < result["limit_loss"][0]


def test_networks_train_and_sit_in_the_band(smoke):
    """Smoke widths are small (16, 128): ask only that training lowered every loss and that a
    clear majority of the trained curves lie in the limit's 10-90 % band (0.8 at infinite
    width); the quick/full figures show the width dependence."""
    result = smoke[0]
    loss = result["loss"]
    assert np.all(loss[..., -1] < 0.5 * loss[..., 0])
    assert np.all(result["inside"] > 0.5), result["inside"]
    assert np.all(np.isfinite(result["f_t"]))


def test_run_resumes_finished_widths(smoke, monkeypatch):
    result, _, out = smoke

    forbid(monkeypatch, nfd, "_one_width")
    again = nfd.run("smoke", out)
    np.testing.assert_array_equal(again["f_t"], result["f_t"])
    loaded = nfd.load(result["data"], "smoke")
    np.testing.assert_array_equal(loaded["f0"], result["f0"])
