"""The linearized_training reproduction (Lee et al. 2019) at the smoke size."""

import numpy as np
import pytest

from widelimits import dynamics
from widelimits.reproduce import REGISTRY, linearized_training as lt

from ._repro import assert_png, forbid


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, smoke_results):
    out = tmp_path_factory.mktemp("linearized_training")
    result = smoke_results("linearized_training", out)
    return result, lt.plot(result, out), out


def test_figure_and_registry(smoke):
    result, paths, _ = smoke
    assert REGISTRY["linearized_training"] is lt
    assert_png(paths[0])
    cfg = lt.CONFIGS["smoke"]
    w, s, r = len(cfg["widths"]), cfg["n_seeds"], cfg["steps"] // cfg["record_every"] + 1
    assert result["lin_train"].shape == (w, s, r, lt.N_TRAIN, 1)
    assert result["lin_test"].shape == (w, s, r, lt.N_TEST, 1)
    assert result["gap_lin"].shape == result["gap_limit"].shape == (w, s)


def test_linearised_models_start_at_the_network_and_follow_it(smoke):
    """Same initialisation (the keys of compare.trajectories), so f_lin(0) = f_net(0) exactly;
    during training the network stays closer to its linearisation than to the limit (the
    initial-kernel fluctuation is absent from the first gap), and the gap to the
    linearisation shrinks from the narrowest to the widest smoke width."""
    result = smoke[0]
    traj = result["traj"]
    np.testing.assert_allclose(result["lin_train"][:, :, 0], traj.pred_train[:, :, 0],
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(result["lin_test"][:, :, 0], traj.pred_test[:, :, 0],
                               rtol=1e-6, atol=1e-6)
    assert np.all(result["gap_lin"].mean(1) < result["gap_limit"].mean(1))
    assert result["gap_lin"].mean(1)[-1] < result["gap_lin"].mean(1)[0]
    assert result["fit_lin"].exponent < 0
    assert np.all(result["loss_net"][..., -1] < 0.5 * result["loss_net"][..., 0])


def test_learning_rate_is_stable_for_the_limit():
    x, y, _, _ = lt.dataset()
    from widelimits import kernels

    lr_max = float(dynamics.max_learning_rate(kernels.analytic(lt.make_net(1), x), y.size))
    assert lt.LEARNING_RATE < 0.6 * lr_max


def test_dataset_is_on_the_sphere():
    x, y, xt, yt = lt.dataset()
    np.testing.assert_allclose(np.linalg.norm(np.concatenate([x, xt]), axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(y[:, 0], np.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2], rtol=1e-5)
    assert xt.shape == (lt.N_TEST, 3) and yt.shape == (lt.N_TEST, 1)


def test_run_resumes_finished_widths(smoke, monkeypatch):
    result, _, out = smoke

    from widelimits.compare import _trajectories

    forbid(monkeypatch, lt, "_linearized")
    forbid(monkeypatch, _trajectories, "_one_width")
    again = lt.run("smoke", out)
    np.testing.assert_array_equal(again["lin_test"], result["lin_test"])
    loaded = lt.load(result["data"][1], "smoke")
    np.testing.assert_array_equal(loaded["gap_lin"], result["gap_lin"])
