"""The cnn_kernels reproduction at the smoke size, its CLI options, and the digits data set and
image preprocessing it uses (``widelimits.datasets``).

What the smoke size supports robustly and is asserted: every kernel learns (well above chance,
better with more data), the pooled kernels are not worse than the FC kernel beyond sampling
error, and the finite CNN-GAP approaches its infinite-width NTK as the width grows eightfold
(distance ratio ≈ √8 expected). Finer orderings (CNN-GAP > CNN-flatten ≈ FC) are computed and
reported in ``result["ordering"]`` but need the full size's test set to be resolved.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from widelimits import datasets, dynamics, kernels
from widelimits.__main__ import main
from widelimits.reproduce import REGISTRY, cnn_kernels as ck

from ._repro import assert_png, forbid


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, smoke_results):
    out = tmp_path_factory.mktemp("cnn_kernels")
    result = smoke_results("cnn_kernels", out)
    return result, ck.plot(result, out), out


def test_figure_and_registry(smoke):
    result, paths, _ = smoke
    assert REGISTRY["cnn_kernels"] is ck
    assert_png(*paths)
    assert set(result["accuracy"]) == {f"{a}_{k}" for a in ck.ARCHITECTURES
                                       for k in ("nngp", "ntk")}
    assert result["n_test"] == ck.CONFIGS["smoke"]["n_test"] and result["n_classes"] == 10


def test_every_kernel_learns(smoke):
    result = smoke[0]
    for name, acc in result["accuracy"].items():
        assert acc.shape == (len(result["train_sizes"]),)
        # chance is 0.1; the smoke kernels reach 0.84-0.94 with 40 training images
        assert acc[-1] >= 0.7 and acc[-1] > acc[0], (name, acc)


def test_pooled_kernels_are_not_worse_than_fc(smoke):
    # On average over the training sizes, within twice the standard error of a difference.
    order = smoke[0]["ordering"]
    for name in ("myrtle_minus_fc", "gap_minus_flatten"):
        assert np.all(order[name + "_mean"] > -2 * order[name + "_se"].mean()), order
    assert order["gap_minus_flatten"].shape == (2, len(smoke[0]["train_sizes"]))
    assert {"gap_beats_flatten", "flatten_close_to_fc", "myrtle_beats_fc"} <= set(order)


def test_finite_networks_approach_their_kernel(smoke):
    result = smoke[0]
    narrow, wide = (result["finite"][w] for w in ck.CONFIGS["smoke"]["widths"])
    # Widths 8 and 64: the distance to the NTK's outputs should shrink by about sqrt(8) = 2.8
    # (2.7 measured over 8 seeds); every wide net is closer than every narrow one.
    assert np.all(wide["distance"] * 1.4 < narrow["distance"]), (narrow, wide)
    assert wide["distance_seeds"].max() < narrow["distance_seeds"].min(), (narrow, wide)
    assert result["ordering"]["finite_approaches_kernel"]
    assert np.all(wide["acc"] >= narrow["acc"]) and result["learning_rate"] > 0


def test_kernel_accuracy_is_gp_inference():
    # The FC kernel of a small split, by kernels.analytic and dynamics.gp_inference directly.
    x_train, y_train, x_test, y_test = (jnp.asarray(a, jnp.float64) if a.ndim > 1 else a
                                        for a in ck._digits_split(30, 20, 3))
    net = ck.make_net("fc")
    k_xx, k_tx = kernels.analytic(net, x_train), kernels.analytic(net, x_test, x_train)
    for get in ("nngp", "ntk"):
        kxx, ktx = np.asarray(getattr(k_xx, get)), np.asarray(getattr(k_tx, get))
        reg = ck.DIAG_REG * np.trace(kxx) / len(kxx)
        mean = dynamics.gp_inference(kxx, jnp.eye(10)[y_train], ktx, diag_reg=reg).mean
        want = float(np.mean(np.asarray(mean).argmax(1) == y_test))
        assert ck.kernel_accuracy(np.concatenate([kxx, ktx]), y_train, y_test, 30) == want
        assert want > 0.5


def test_kernel_accuracy_with_flips_uses_images_and_mirrors():
    # 2 training images + their mirrors (columns 0, 1 | 2, 3), then 2 test rows.
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(6, 5))
    k = feats @ feats[:4].T
    y_train, y_test = np.array([0, 1, 0, 1]), np.array([0, 1])
    got = ck.kernel_accuracy(k, y_train, y_test, 1, flip=True)
    rows = [0, 2]                                  # first image and its mirror
    kxx = k[np.ix_(rows, rows)]
    pred = k[4:, rows] @ np.linalg.solve(kxx + ck.DIAG_REG * np.trace(kxx) / 2 * np.eye(2),
                                         np.eye(2)[y_train[rows]])
    assert got == np.mean(pred.argmax(1) == y_test)


def test_patch_convolutions_are_the_network():
    net = ck.make_net("cnn_gap", 6, out_width=3)
    x = jax.random.normal(jax.random.key(0), (4, 7, 6, 2), jnp.float64)
    params = net.init(jax.random.key(1), x.shape)
    model = ck.patch_conv_apply(net)
    np.testing.assert_allclose(jax.jit(model)(params, x), jax.jit(net.apply)(params, x),
                               rtol=1e-12, atol=1e-12)
    grad = lambda f: jax.jit(jax.grad(lambda p: jnp.sum(f(p, x) ** 2)))(params)  # noqa: E731
    for a, b in zip(jax.tree.leaves(grad(model)), jax.tree.leaves(grad(net.apply)),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_balanced_order_prefixes_are_balanced():
    y = np.repeat(np.arange(4), [5, 3, 4, 6])
    order = ck.balanced_order(y, np.random.default_rng(1))
    assert sorted(order.tolist()) == list(range(len(y)))
    for m in range(1, len(y) + 1):
        counts = np.bincount(y[order[:m]], minlength=4)
        left = [c for c, total in zip(counts, np.bincount(y), strict=True) if c < total]
        assert not left or max(counts) - min(left) <= 1, (m, counts)


def test_run_resumes_finished_pieces(smoke, monkeypatch):
    result, _, out = smoke
    forbid(monkeypatch, ck, "_kernels", "_one_width")
    again = ck.run("smoke", out)
    for name, acc in result["accuracy"].items():
        np.testing.assert_array_equal(again["accuracy"][name], acc)
    loaded = ck.load(result["data"], "smoke")
    np.testing.assert_array_equal(loaded["finite"][8]["distance"],
                                  result["finite"][8]["distance"])


def test_cli_runs_a_users_file_with_zca(tmp_path, smoke, monkeypatch):
    # The digits as a user's file, with the smoke's array shapes (its kernel programs are
    # reused), one short-trained width, and the FC kernel in place of every architecture's
    # (the smoke run above computes them all; this one checks the path of a user's data).
    monkeypatch.setitem(ck.CONFIGS, "smoke", dict(ck.CONFIGS["smoke"], widths=(8,), seeds=1,
                                                  steps=5))
    fc_kernels = ck._kernels
    monkeypatch.setattr(ck, "_kernels", lambda arch, *data: fc_kernels("fc", *data))
    x, y = datasets.digits()
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=x[:300], y_train=y[:300], x_test=x[1000:1050], y_test=y[1000:1050])
    assert main(["reproduce", "cnn_kernels", "--smoke", "--out", str(tmp_path / "f"),
                 "--data", str(path), "--zca", "0.5"]) == 0
    assert (tmp_path / "f" / "cnn_kernels_mine.png").exists()
    result = ck.run("smoke", tmp_path / "f", data=path, zca=0.5)
    assert result["source"] == str(path) and result["zca"] == 0.5
    assert all(acc[-1] > 0.5 for acc in result["accuracy"].values())


def test_users_data_with_flips_and_zca_are_prepared(tmp_path):
    x, y = datasets.digits()
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=x[:100], y_train=y[:100], x_test=x[500:600], y_test=y[500:600])
    cfg = dict(ck.CONFIGS["smoke"], train_sizes=(10, 20), n_test=30)
    x_train, y_train, x_test, y_test, tag, _ = ck._prepare(path, 0.1, True, cfg, 0)
    assert tag == "_mine" and x_train.shape == (40, 8, 8, 1) and x_test.shape == (30, 8, 8, 1)
    np.testing.assert_array_equal(x_train[20:], x_train[:20, :, ::-1])   # the mirrors follow
    np.testing.assert_array_equal(y_train[20:], y_train[:20])
    assert np.bincount(y_train[:10]).tolist() == [1] * 10                 # balanced prefixes
    flat = x_train[:20].reshape(20, -1)
    assert np.allclose(flat.mean(1), 0, atol=1e-6)                         # centred by ZCA


def test_cli_options_and_their_errors(tmp_path):
    assert ck.parse_options([]) == {"data": None, "zca": None, "flip": False}
    assert ck.parse_options(["--zca", "0.3", "--flip"])["zca"] == 0.3
    with pytest.raises(SystemExit):
        ck.parse_options(["--bogus"])
    with pytest.raises(SystemExit):   # a figure without options of its own
        main(["reproduce", "kernel_gallery", "--smoke", "--zca"])
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((4, 8, 8, 1)), y_train=np.zeros(4, int))
    with pytest.raises(ValueError, match="lacks the arrays"):
        ck.run("smoke", tmp_path, data=bad)
    np.savez(bad, x_train=np.zeros((4, 64)), y_train=np.zeros(4, int),
             x_test=np.zeros((2, 64)), y_test=np.zeros(2, int))
    with pytest.raises(ValueError, match="channels-last"):
        ck.run("smoke", tmp_path, data=bad)
    with pytest.raises(ValueError, match="arch must be one of"):
        ck.make_net("resnet")


# ------------------------------------------------------------------ datasets (shipped, preprocessing)
def test_digits_are_the_uci_test_set():
    x, y = datasets.digits()
    assert x.shape == (1797, 8, 8, 1) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    assert np.allclose(x * 16, np.round(x * 16))               # integer pixel counts 0..16
    assert y.dtype == np.int64 and sorted(np.unique(y).tolist()) == list(range(10))
    assert np.bincount(y).min() == 174 and np.bincount(y).max() == 183
    assert datasets.digits(np.float64)[0].dtype == np.float64
    with pytest.raises(TypeError, match="dtype"):
        datasets.digits(np.int32)


def test_zca_whitens_the_training_images_and_maps_test_images_alike():
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(12, 12))
    x = (rng.normal(size=(400, 12)) @ mix).reshape(400, 2, 3, 2)
    x_test = (rng.normal(size=(7, 12)) @ mix).reshape(7, 2, 3, 2)
    w, w_test = datasets.zca_whiten(x, x_test, reg=0.0)
    flat = w.reshape(400, -1)
    # Centred, unit-norm images whitened: identity on the complement of the constant image.
    np.testing.assert_allclose(flat.T @ flat / 400, np.eye(12) - 1 / 12, atol=1e-9)
    # Symmetric (zero-phase) map, the same for train and test images.
    normed = lambda a: (a - a.mean(1, keepdims=True)) / np.linalg.norm(  # noqa: E731
        a - a.mean(1, keepdims=True), axis=1, keepdims=True)
    m = np.linalg.lstsq(normed(x.reshape(400, -1)), flat, rcond=None)[0]
    np.testing.assert_allclose(m, m.T, atol=1e-8)
    np.testing.assert_allclose(w_test.reshape(7, -1), normed(x_test.reshape(7, -1)) @ m,
                               atol=1e-8)
    # A regulariser shrinks the small directions: eigenvalues lambda / (lambda + eps) < 1.
    reg = datasets.zca_whiten(x, reg=1.0).reshape(400, -1)
    assert np.linalg.eigvalsh(reg.T @ reg / 400).max() < 1


def test_preprocessing_arguments_are_checked():
    with pytest.raises(ValueError, match="x_train"):
        datasets.zca_whiten(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="reg"):
        datasets.zca_whiten(np.ones((3, 2, 2, 1)), reg=-1.0)
    with pytest.raises(ValueError, match="image shape"):
        datasets.zca_whiten(np.ones((3, 2, 2, 1)), np.ones((3, 2, 3, 1)))
    with pytest.raises(ValueError, match="one entry per image"):
        datasets.flip_augment(np.ones((3, 2, 2, 1)), np.ones(2))


def test_flip_augment_mirrors_the_width_axis():
    x = np.arange(2 * 3 * 4 * 2.0).reshape(2, 3, 4, 2)
    x_aug, y_aug = datasets.flip_augment(x, np.array([1, 2]))
    assert x_aug.shape == (4, 3, 4, 2) and y_aug.tolist() == [1, 2, 1, 2]
    np.testing.assert_array_equal(x_aug[:2], x)
    np.testing.assert_array_equal(x_aug[2:, :, ::-1], x)      # mirrored back
    np.testing.assert_array_equal(datasets.flip_augment(x_aug[2:])[2:], x)
