"""The edge_of_chaos reproduction (Schoenholz et al. 2017, Figs. 1 and 5) at the smoke size."""

import numpy as np
import pytest

from widelimits import nets, signal
from widelimits.reproduce import REGISTRY, edge_of_chaos as eoc

from ._repro import assert_png, forbid


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, smoke_results):
    out = tmp_path_factory.mktemp("edge_of_chaos")
    result = smoke_results("edge_of_chaos", out)
    return result, eoc.plot(result, out), out


def test_figure_and_registry(smoke):
    _, paths, _ = smoke
    assert REGISTRY["edge_of_chaos"] is eoc
    assert_png(paths[0])


def test_phase_diagram(smoke):
    r = smoke[0]
    sw2 = np.broadcast_to(r["sw2_grid"][None], r["chi_1"].shape)
    # on each sb2 row, chi_1 crosses 1 once, where sw2 crosses the edge-of-chaos curve
    eoc_at = np.interp(r["sb2_grid"], r["eoc_sb2"], r["eoc_sw2"])
    below = sw2 < eoc_at[:, None] - 0.05
    above = sw2 > eoc_at[:, None] + 0.05
    assert np.all(r["chi_1"][below] < 1) and np.all(r["chi_1"][above] > 1)
    assert np.all(r["c_star"][below] == 1) and np.all(r["c_star"][above] < 1)
    assert r["eoc_sw2"][0] == pytest.approx(1.0, abs=1e-9) and np.all(np.diff(r["eoc_sw2"]) > 0)
    # xi_c is largest next to the curve
    for i, row in enumerate(r["xi_c"]):
        j = np.argmax(row)
        assert abs(r["sw2_grid"][j] - eoc_at[i]) <= 1.5 * np.diff(r["sw2_grid"])[0]


def test_trainable_depth_tracks_xi_c(smoke):
    r = smoke[0]
    acc = r["accuracy"].mean(-1)  # (depths, sw2): depth 16, sw2 (0.5, 1.75, 3.0)
    xi = r["xi_c_train"]
    # 6 xi_c ~ 7 layers at sw2 = 0.5 (deep ordered nets fail), > 16 near the edge and at 3.0
    assert 6 * xi[0] < 16 < 6 * min(xi[1], xi[2])
    assert acc[0, 1] > 0.85 and acc[0, 2] > 0.85 and acc[0, 0] < acc[0, 1] - 0.2
    assert list(r["trainable_depth"]) == [0, 16, 16]
    np.testing.assert_allclose(xi, signal.mean_field(nets.Tanh(), r["sw2"], eoc.SB2_TRAIN).xi_c,
                               rtol=1e-5)


def test_run_resumes_finished_depths(smoke, monkeypatch):
    result, _, out = smoke

    forbid(monkeypatch, eoc, "train_depth")
    again = eoc.run("smoke", out)
    np.testing.assert_array_equal(again["accuracy"], result["accuracy"])
