"""The resnet_depth_limit reproduction (Hayou & Yang 2023; Hayou 2022) at the smoke size."""

import numpy as np
import pytest

from widelimits import depth
from widelimits.reproduce import REGISTRY, resnet_depth_limit as rd

from ._repro import assert_png, forbid


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, smoke_results):
    out = tmp_path_factory.mktemp("resnet_depth_limit")
    result = smoke_results("resnet_depth_limit", out)
    return result, rd.plot(result, out), out


def test_figure_registry_and_resume(smoke, monkeypatch):
    result, paths, out = smoke
    assert REGISTRY["resnet_depth_limit"] is rd
    assert_png(paths[0])

    forbid(monkeypatch, depth, "sample_covariance")
    again = rd.run("smoke", out)
    np.testing.assert_array_equal(again["width_sweep"], result["width_sweep"])


def test_limits(smoke):
    result = smoke[0]
    cfg = rd.CONFIGS["smoke"]
    # ODE: ReLU diagonal q_0 e^{t/2}; the recursion converges at rate 1/L.
    np.testing.assert_allclose(result["ode"][:, 0, 0], result["q0"][0, 0] * np.exp(result["ts"] / 2),
                               rtol=1e-5)
    fit = result["recursion_fit"]
    assert abs(fit.exponent + 1) < 0.05, fit
    # Per-network fluctuations shrink with width at the largest depth (exponent ≈ -1/2).
    assert -0.8 < result["width_fit"].exponent < -0.25, result["width_fit"]
    # The largest network's mean covariance is within 5 standard errors of the ODE + Euler
    # bias (the n = ∞ recursion at that depth).
    cov = result["width_sweep"][-1]
    _, q0 = rd.inputs()
    rec = np.asarray(depth.resnet_covariance_recursion(rd.nets.Relu(), q0, cfg["depths"][-1]))
    z = (cov.mean(0) - rec) / (cov.std(0, ddof=1) / np.sqrt(len(cov)))
    assert np.all(np.abs(z) < 5), z
    # Fixed width: log-norm mean and variance of linear nets vs the exact finite-depth moments.
    for n in cfg["sde_widths"]:
        sample = result["sde"][n]
        m, v = result["sde_exact"][n]
        se_m = np.sqrt(v / sample.size)
        se_v = np.sqrt((np.mean((sample - sample.mean()) ** 4) - sample.var() ** 2) / sample.size)
        assert abs(sample.mean() - m) < 4.5 * se_m, (n, sample.mean(), m)
        assert abs(sample.var(ddof=1) - v) < 4.5 * se_v, (n, sample.var(), v)
