"""compare.trajectories: finite-width training trajectories against the kernel limit.

The sweep below is also the default suite's check of the width trend of the closed form
(tests/test_dynamics_vs_networks.py holds a direct, slow variant)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from widelimits import compare, kernels, nets
from widelimits.compare import _trajectories

from ._repro import forbid

WIDTHS = (64, 256, 1024, 4096)
SEEDS, STEPS, EVERY, LR = 16, 40, 5, 1.0


def make_net(width):
    return nets.mlp(width, 1, nets.Erf(), w_std=1.5, b_std=0.1)


def _data():
    x = np.random.default_rng(0).standard_normal((11, 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.sin(2 * x[:8, :1]) + x[:8, 1:2] * x[:8, 2:3]
    return jnp.asarray(x[:8]), jnp.asarray(y), jnp.asarray(0.7 * x[8:])


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    x, y, xt = _data()
    path = tmp_path_factory.mktemp("trajectories") / "sweep.npz"
    res = compare.trajectories(make_net, WIDTHS, x, y, jax.random.key(0), x_test=xt,
                               steps=STEPS, learning_rate=LR, n_seeds=SEEDS,
                               record_every=EVERY, checkpoint=path, progress=False)
    return res, path


def test_shapes_and_initial_agreement(sweep):
    res = sweep[0]
    w, r = len(WIDTHS), STEPS // EVERY + 1
    np.testing.assert_array_equal(res.steps, np.arange(0, STEPS + 1, EVERY))
    assert res.deviation_train.shape == (w, SEEDS, r)
    assert res.deviation_test.shape == (w, SEEDS, r)
    assert res.pred_train.shape == res.limit_train.shape == (w, SEEDS, r, 8, 1)
    assert res.pred_test.shape == res.limit_test.shape == (w, SEEDS, r, 3, 1)
    assert res.movement.shape == (w, SEEDS) and res.loss.shape == (w, SEEDS, r)
    # the limit starts from each network's own initial function
    np.testing.assert_allclose(res.deviation_train[..., 0], 0, atol=1e-13)
    np.testing.assert_allclose(res.deviation_test[..., 0], 0, atol=1e-13)
    mean, pct = res.summary("test")
    assert mean.shape == (w, r) and pct.shape == (3, w, r)
    assert np.all(pct[0] <= pct[1]) and np.all(pct[1] <= pct[2])


def test_limit_is_the_kernel_recursion_with_the_analytic_ntk(sweep):
    """Oracle: iterate f ← f − (η / y.size) Θ∞ (f − y) on the train points and
    f* ← f* − (η / y.size) Θ∞(x*, X) (f − y) on the test points, from the network's f_0."""
    res = sweep[0]
    x, y, xt = (np.asarray(a) for a in _data())
    theta = np.asarray(kernels.analytic(make_net(1), x).ntk)
    theta_t = np.asarray(kernels.analytic(make_net(1), xt, x).ntk)
    for w, s in ((0, 0), (3, 5)):
        f, ft = res.pred_train[w, s, 0], res.pred_test[w, s, 0]
        for t in range(STEPS + 1):
            if t % EVERY == 0:
                np.testing.assert_allclose(res.limit_train[w, s, t // EVERY], f, rtol=1e-10,
                                           atol=1e-12)
                np.testing.assert_allclose(res.limit_test[w, s, t // EVERY], ft, rtol=1e-10,
                                           atol=1e-12)
            f, ft = f - LR / y.size * theta @ (f - y), ft - LR / y.size * theta_t @ (f - y)
    # and the reported losses are those of the recorded trajectories
    np.testing.assert_allclose(res.loss, 0.5 * np.mean((res.pred_train[..., 0] - y[:, 0]) ** 2,
                                                       axis=-1), rtol=1e-12)


def test_deviation_and_kernel_movement_shrink_with_width(sweep):
    """sup_t ‖f_N − f_∞‖ / ‖f_∞‖ ~ N^-1/2 (the initial NTK fluctuation), kernel movement
    ~ N^-1 (smooth activation, fixed training time): fitted exponents within 3 standard errors,
    and the mean over seeds strictly decreasing (16 seeds per width; widths 4 x apart)."""
    res = sweep[0]
    sup = res.deviation_train.max(-1).mean(1)
    assert np.all(np.diff(sup) < 0), sup
    assert np.all(np.diff(res.deviation_test[..., -1].mean(1)) < 0)
    assert np.all(np.diff(res.movement.mean(1)) < 0), res.movement.mean(1)
    dev, mov = res.deviation_fit, res.movement_fit
    assert dev.stderr < 0.1 and mov.stderr < 0.1, (dev, mov)
    assert abs(dev.exponent + 0.5) < 3 * dev.stderr, dev
    assert abs(mov.exponent + 1.0) < 3 * mov.stderr, mov
    assert sup[-1] < 0.02  # width 4096 follows the closed form to 2 %


def test_checkpoint_resumes_and_refuses_other_arguments(sweep, monkeypatch):
    res, path = sweep
    x, y, xt = _data()

    forbid(monkeypatch, _trajectories, "_one_width")
    kw = dict(x_test=xt, steps=STEPS, learning_rate=LR, n_seeds=SEEDS, record_every=EVERY,
              checkpoint=path, progress=False)
    again = compare.trajectories(make_net, WIDTHS, x, y, jax.random.key(0), **kw)
    np.testing.assert_array_equal(again.pred_test, res.pred_test)
    assert again.deviation_fit == res.deviation_fit
    with pytest.raises(ValueError, match="checkpoint"):
        compare.trajectories(make_net, WIDTHS, x, y, jax.random.key(1), **kw)
    with pytest.raises(ValueError, match="another network"):
        compare.trajectories(lambda w: nets.mlp(w, 1, nets.Tanh()), WIDTHS, x, y,
                             jax.random.key(0), **kw)


def test_plot(sweep):
    for which in ("train", "test"):
        axes = compare.plot_trajectories(sweep[0], which=which)
        assert len(axes) == 2 and axes[1].get_xscale() == "log"
    with pytest.raises(ValueError, match="which"):
        sweep[0].summary("val")


@pytest.mark.parametrize("kw, match", [
    (dict(widths=(8,)), "widths"),
    (dict(widths=(8, 16), n_seeds=1), "n_seeds"),
    (dict(widths=(8, 8, 16)), "distinct"),
    (dict(learning_rate=-1.0), "learning_rate"),
    (dict(n_seeds=0), "n_seeds"),
    (dict(steps=2.5), "steps"),
    (dict(momentum=1.0), "momentum"),
    (dict(y_train=np.zeros((8,))), "y_train"),
    (dict(x_test=np.zeros((2, 4))), "x_test"),
])
def test_bad_arguments(kw, match):
    x, y, _ = _data()
    args = dict(widths=(8, 16, 32), x_train=x, y_train=y, steps=3, learning_rate=0.5,
                n_seeds=2) | kw
    with pytest.raises(ValueError, match=match):
        compare.trajectories(make_net, args.pop("widths"), args.pop("x_train"),
                             args.pop("y_train"), jax.random.key(0), progress=False, **args)
