"""The output_kurtosis reproduction (Antognini 2019) at the smoke size."""

import numpy as np
import pytest

from widelimits import finite
from widelimits.reproduce import REGISTRY, output_kurtosis as ok

from ._repro import assert_png, forbid


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, smoke_results):
    out = tmp_path_factory.mktemp("output_kurtosis")
    result = smoke_results("output_kurtosis", out)
    return result, ok.plot(result, out), out


def test_figure_and_registry(smoke):
    _, paths, _ = smoke
    assert REGISTRY["output_kurtosis"] is ok
    assert_png(paths[0])


def test_exact_column_is_the_one_layer_formula(smoke):
    # ReLU with a Gaussian readout: E h^4/(E h^2)^2 = (3/2)/(1/4) = 6, so 15/N.
    result = smoke[0]
    a = result["activations"].index("relu")
    np.testing.assert_allclose(result["exact"][a], 15 / np.asarray(result["widths"]), rtol=1e-5)
    np.testing.assert_allclose(result["slope"]["relu"][2], 15, rtol=1e-5)


def test_sample_kurtosis_matches_the_exact_value(smoke):
    # |z| < 4 per point (false alarm 6e-5 each); variance within 4 s.e. of the exact variance.
    result = smoke[0]
    assert np.all(np.abs(result["z"]) < 4), result["z"]
    n = result["config"]["n_networks"]
    se_var = np.sqrt((2 + result["exact"]) / n)
    assert np.all(np.abs(result["variance"] - 1) < 4 * se_var), result["variance"]


def test_edgeworth_is_closer_than_the_gaussian_at_small_width(smoke):
    result = smoke[0]
    a = result["activations"].index(result["hist"][0])
    w = result["widths"].index(result["hist"][1])
    ks = result["ks"][a, w]
    assert ks[1] < ks[0] and ks[2] < ks[0], ks
    assert result["counts"].sum() > 0.99 * result["config"]["n_networks"]


def test_run_resumes_finished_points(smoke, monkeypatch):
    result, _, out = smoke
    forbid(monkeypatch, ok, "_point")
    again = ok.run("smoke", out)
    np.testing.assert_array_equal(again["kurtosis"], result["kurtosis"])


def test_make_net_matches_the_cumulant_api():
    net = ok.make_net(8, "tanh")
    c = finite.net_output_cumulants(net, np.ones((1, ok.D_IN)))
    want = finite.one_layer_cumulants(ok.ACTIVATIONS["tanh"], 1.0, 8)
    np.testing.assert_allclose(c.kurtosis, want.kurtosis, rtol=1e-6)
