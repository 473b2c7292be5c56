"""The criticality_vertex reproduction (Roberts, Yaida & Hanin 2022) at the smoke size."""

import numpy as np
import pytest

from widelimits import finite
from widelimits.reproduce import REGISTRY, criticality_vertex as cv

from ._repro import assert_png, forbid


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, smoke_results):
    out = tmp_path_factory.mktemp("criticality_vertex")
    result = smoke_results("criticality_vertex", out)
    return result, cv.plot(result, out), out


def test_figure_and_registry(smoke):
    _, paths, _ = smoke
    assert REGISTRY["criticality_vertex"] is cv
    assert_png(paths[0])


def test_predictions(smoke):
    result = smoke[0]
    layers = result["layers"]
    for width, r in result["results"]["relu"].items():
        np.testing.assert_allclose(r["coefficient"], 5 * (layers - 1), rtol=1e-6, atol=1e-6)
        want = [float(finite.relu_exact_kurtosis(int(l), width)) for l in layers]
        np.testing.assert_allclose(r["exact"], want, rtol=1e-6)
    # Critical tanh: the kernel decays (K^(l+1) < K^(l)) and V/K^2 grows with depth.
    for r in result["results"]["tanh"].values():
        assert np.all(np.diff(r["kernel"]) < 0) and np.all(np.diff(r["coefficient"]) > 0)


def test_ensembles_match_the_predictions(smoke):
    # |z| < 4 per layer (ReLU vs the exact law, tanh vs the recursion; at the smoke size the
    # O(1/n^2) gap of the recursion is below one standard error); variances are the kernels.
    result = smoke[0]
    n = result["config"]["n_networks"]
    for act in ("relu", "tanh"):
        for r in result["results"][act].values():
            assert np.all(np.abs(r["z"]) < 4), (act, r["z"])
            se_var = r["kernel"] * np.sqrt((2 + np.abs(r["recursion"])) / n)
            assert np.all(np.abs(r["variance"] - r["kernel"]) < 5 * se_var)


def test_run_resumes_finished_ensembles(smoke, monkeypatch):
    result, _, out = smoke
    forbid(monkeypatch, cv, "_ensemble")
    again = cv.run("smoke", out)
    for width, r in result["results"]["relu"].items():
        np.testing.assert_array_equal(again["results"]["relu"][width]["kurtosis"], r["kurtosis"])
