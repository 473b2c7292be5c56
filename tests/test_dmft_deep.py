"""The dmft_deep reproduction: deep mean-field networks approach their DMFT as width grows."""

import numpy as np
import pytest

from widelimits.reproduce import REGISTRY, dmft_deep as dd

from ._repro import assert_png, forbid


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, smoke_results):
    out = tmp_path_factory.mktemp("dmft_deep")
    result = smoke_results("dmft_deep", out)
    return result, dd.plot(result, out), out


def test_figure_and_registry(smoke):
    result, paths, out = smoke
    assert REGISTRY["dmft_deep"] is dd
    with pytest.raises(ValueError, match="size"):
        dd.run("huge", out)
    assert_png(paths[0])
    # both DMFTs converged (the tolerances run() asks for)
    assert result["tanh_dmft_residual"] < 1e-3, result["tanh_dmft_residual"]
    assert result["linear_dmft_residual"] < 1e-6, result["linear_dmft_residual"]


@pytest.mark.parametrize("experiment, bound", [("tanh", 0.95), ("linear", 0.98)])
def test_alignment_grows_with_width(smoke, experiment, bound):
    """Cosine alignment of the networks' final per-layer feature kernels with the DMFT's (mean
    over seeds and layers) increases with N, and the widest networks exceed ``bound``."""
    align = smoke[0][f"{experiment}_align"].mean(axis=(1, 2))
    assert np.all(np.diff(align) > 0), align
    assert align[-1] > bound, align
    assert align[0] < align[-1] - 0.05, align                       # a real trend, not noise


def test_tanh_networks_follow_the_dmft_with_responses_not_gradient_independence(smoke):
    """At the widest width the networks' final loss (mean over seeds) is within 10% of the
    sampled DMFT's with exact response functions, and the gradient-independence approximation
    (A = B = 0) is further from the networks than the DMFT is: the responses matter."""
    result = smoke[0]
    net = result["tanh_net_loss"][-1, :, -1].mean()
    dmft, gi = result["tanh_dmft_loss"][-1], result["tanh_gi_loss"][-1]
    assert dmft < 0.9 * result["tanh_dmft_loss"][0]                  # it trains
    assert abs(net - dmft) < 0.1 * dmft, (net, dmft, gi)
    assert abs(net - gi) > 2 * abs(net - dmft), (net, dmft, gi)


def test_deep_linear_loss_approaches_closed_form(smoke):
    """Deep linear networks' final training loss (mean over seeds) is within 25% of the exact
    closed-form DMFT's at the widest width, and the gap shrinks with N."""
    result = smoke[0]
    final = result["linear_dmft_loss"][-1]
    assert final < 0.5 * result["linear_dmft_loss"][0]               # it trains
    gap = np.abs(result["linear_net_loss"][:, :, -1].mean(1) - final)
    assert gap[-1] < 0.25 * final, (gap, final)
    assert np.all(np.diff(gap) < 0), gap


def test_run_resumes_finished_pieces(smoke, monkeypatch):
    result, _, out = smoke

    forbid(monkeypatch, dd, "_dmft_piece", "_net_piece")
    again = dd.run("smoke", out)
    np.testing.assert_array_equal(again["tanh_net_phi"], result["tanh_net_phi"])
    loaded = dd.load(result["data"], "smoke")
    np.testing.assert_array_equal(loaded["linear_dmft_loss"], result["linear_dmft_loss"])
