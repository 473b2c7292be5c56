"""CNN kernels on the digits: test accuracy of kernel regression with FC, CNN-flatten, CNN-GAP and
Myrtle-5 NNGP/NTK vs training-set size, against finite CNNs trained by gradient descent.

Novak et al. 2019 ("Bayesian deep convolutional networks with many channels are Gaussian
processes") and Arora et al. 2019 ("On exact computation with an infinitely wide neural net")
found on CIFAR-10 that global average pooling (CNN-GAP) is what makes convolutional kernels
beat fully connected ones, while the CNN-GP with a Flatten readout (no pooling, "vectorised")
is about as good as the FC kernel; Shankar et al. 2020 ("Neural kernels without tangents")
found the pooled Myrtle kernels best, especially with few training images. Here, on the 8x8
digits shipped with the package (``datasets.digits``), we compute the infinite-width NNGP and
NTK (``kernels.analytic``) of

* ``fc``: Flatten + ``DEPTH`` ReLU ``Dense`` layers + readout (on the flattened pixels),
* ``cnn_flatten``: ``DEPTH`` blocks ``Conv(3x3, SAME)`` + ReLU, Flatten + readout,
* ``cnn_gap``: the same blocks, global average pooling + readout,
* ``myrtle5``: ``nets.myrtle(5)``,

all with ``w_std = √2`` and no biases, and predict one-hot labels (1 for the class, 0
elsewhere; predicted class = argmax) by kernel regression ``K_*X (K + λ I)^{-1} Y`` on nested,
class-balanced training sets. With the NNGP this is the posterior mean of the Bayesian network,
with the NTK the infinite-time mean prediction of gradient descent on the MSE loss (Lee et al.
2019). ``λ = DIAG_REG · tr(K)/n`` with ``DIAG_REG = 1e-4`` (in units of the mean diagonal):
fixed in advance, below most of the spectrum (the smallest eigenvalue of the CNN-GAP NTK of 80
digits is 2e-3 of the mean diagonal), and the accuracies do not change for any value up to
1e-3; it keeps the float32 kernels of the larger sizes well conditioned.

Finite CNN-GAP networks (the ``cnn_gap`` architecture, NTK parameterization) of several widths
and seeds are trained by full-batch gradient descent on the MSE loss with ``dynamics.train``,
centred (fitted to ``Y + f_0(X)``, so ``f − f_0`` follows ``dynamics.Centered``'s trajectory and
its infinite-width limit is the NTK mean prediction above), for ``steps`` steps at a quarter
of the largest stable learning rate of the limiting NTK, and compared with the infinite-width
NTK prediction after as many steps (``dynamics.gradient_descent_mse``): their distance shrinks
as width^(-1/2). (Their convolutions are evaluated by :class:`patch_conv_apply`, the same
function of the same parameters: XLA on CPU runs a convolution's weight gradient 50x slower
inside ``dynamics.train``'s loop than outside.)

Sizes: ``smoke`` (tens of seconds, mostly compiling the four kernels), ``quick`` (under a
minute on two CPU cores: 10 to 80 training images, 100 test images, widths 8 and 32 trained on
80 images), ``full`` (10 to 1000 training images, 500 test images, widths 8, 32 and 128 trained
on 20 and 80 images; about 20 minutes on two CPU cores). Finished pieces (one per
architecture and per width) are saved to and resumed from ``out/cnn_kernels_<size>.npz``.

Own data: ``run(..., data="file.npz")`` (CLI ``--data FILE.npz``) reads arrays ``x_train``,
``y_train``, ``x_test``, ``y_test`` (channels-last images, integer labels) and does the same on
them (class-balanced training subsets and a random test subset of the sizes above);
``zca=reg`` (``--zca [REG]``) whitens them as Shankar et al. (``datasets.zca_whiten``, fitted on
the training images) and ``flip=True`` (``--flip``) adds the mirror image of every training
image (``datasets.flip_augment``; not for digits, whose mirror images are not digits). The
pooled kernels cost O(n_train (n_train + n_test) (H W)^2) per layer: a pair of 32x32 images
costs 256 times a pair of 8x8 ones.
"""

from __future__ import annotations

import argparse
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy import linalg
from tqdm.auto import tqdm

from .. import _resume, datasets, dynamics, kernels, nets
from ._common import check_size, checkpoint, new_figure, rerun_saved, resume, save_figure

__all__ = ["ARCHITECTURES", "CONFIGS", "DEPTH", "DIAG_REG", "W_STD", "balanced_order",
           "kernel_accuracy", "load", "make_net", "ordering", "parse_options", "plot", "run",
           "patch_conv_apply"]

ARCHITECTURES = ("fc", "cnn_flatten", "cnn_gap", "myrtle5")
LABELS = {"fc": "FC", "cnn_flatten": "CNN-flatten (CNN-GP)", "cnn_gap": "CNN-GAP",
          "myrtle5": "Myrtle-5"}
COLORS = {"fc": "tab:gray", "cnn_flatten": "tab:blue", "cnn_gap": "tab:red",
          "myrtle5": "tab:green"}
DEPTH = 2             # hidden layers of fc, cnn_flatten and cnn_gap
W_STD = math.sqrt(2)  # every layer; no biases
DIAG_REG = 1e-4       # λ = DIAG_REG · tr(K_train) / n

CONFIGS = {
    "smoke": dict(train_sizes=(10, 20, 40), n_test=50, widths=(8, 64), finite_sizes=(40,),
                  steps=60, seeds=3),
    "quick": dict(train_sizes=(10, 20, 40, 80), n_test=100, widths=(8, 32), finite_sizes=(80,),
                  steps=200, seeds=2),
    "full": dict(train_sizes=(10, 20, 40, 80, 160, 320, 640, 1000), n_test=500,
                 widths=(8, 32, 128), finite_sizes=(20, 80), steps=1000, seeds=2),
}


def make_net(arch: str, width: int = 1, out_width: int = 10):
    """The spec of architecture ``arch`` (one of ``ARCHITECTURES``) with ``width`` channels or
    units per hidden layer and ``out_width`` outputs (see the module docstring).

    >>> from widelimits.reproduce import cnn_kernels
    >>> net = cnn_kernels.make_net("cnn_gap", 16)
    >>> [type(layer).__name__ for layer in net.layers]
    ['Conv', 'Relu', 'Conv', 'Relu', 'GlobalAvgPool', 'Dense']
    """
    kw = dict(w_std=W_STD, b_std=0.0)
    conv = lambda: nets.Conv(width, (3, 3), padding="SAME", **kw)  # noqa: E731
    convs = [layer for _ in range(DEPTH) for layer in (conv(), nets.Relu())]
    readout = nets.Dense(out_width, **kw)
    if arch == "fc":
        hidden = [layer for _ in range(DEPTH) for layer in (nets.Dense(width, **kw), nets.Relu())]
        return nets.serial(nets.Flatten(), *hidden, readout)
    if arch == "cnn_flatten":
        return nets.serial(*convs, nets.Flatten(), readout)
    if arch == "cnn_gap":
        return nets.serial(*convs, nets.GlobalAvgPool(), readout)
    if arch == "myrtle5":
        return nets.myrtle(5, width, out_width=out_width, **kw)
    raise ValueError(f"cnn_kernels.make_net: arch must be one of {ARCHITECTURES}, got {arch!r}.")


# ----------------------------------------------------------------------------------- the data
def balanced_order(labels, rng) -> np.ndarray:
    """A random order of the indices of ``labels`` in which every prefix is as class-balanced as
    the classes allow: the i-th example of each class (in a random order within the class)
    comes in round i, and each round visits the classes in a random order.

    >>> import numpy as np
    >>> from widelimits.reproduce import cnn_kernels
    >>> y = np.array([0, 0, 0, 1, 1, 2])
    >>> order = cnn_kernels.balanced_order(y, np.random.default_rng(0))
    >>> sorted(y[order[:3]].tolist()), sorted(y[order[3:5]].tolist())
    ([0, 1, 2], [0, 1])
    """
    labels = np.asarray(labels)
    rank = np.empty(len(labels), np.int64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rank[idx] = rng.permutation(len(idx))
    return np.lexsort((rng.permutation(len(labels)), rank))


def _digits_split(n_train, n_test, seed):
    x, y = datasets.digits()
    rng = np.random.default_rng(seed)
    order = balanced_order(y, rng)
    test, rest = order[:n_test], order[n_test:]
    train = rest[balanced_order(y[rest], rng)][:n_train]
    return x[train], y[train], x[test], y[test]


def _user_data(path, cfg, seed):
    with np.load(path, allow_pickle=False) as f:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(f.files)
        if missing:
            raise ValueError(f"cnn_kernels: {path} lacks the arrays {sorted(missing)} (it has "
                             f"{sorted(f.files)}).")
        arrays = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    for name in ("x_train", "x_test"):
        if arrays[name].ndim != 4:
            raise ValueError(f"cnn_kernels: {name} in {path} must be channels-last images "
                             f"(n, H, W, C), got shape {arrays[name].shape}.")
    for name in ("y_train", "y_test"):
        y = arrays[name]
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
            raise ValueError(f"cnn_kernels: {name} in {path} must be integer labels >= 0 of "
                             f"shape (n,), got {y.dtype} {y.shape}.")
        if len(y) != len(arrays["x" + name[1:]]):
            raise ValueError(f"cnn_kernels: {name} has {len(y)} labels for "
                             f"{len(arrays['x' + name[1:]])} images in {path}.")
    rng = np.random.default_rng(seed)
    train = balanced_order(arrays["y_train"], rng)[:max(cfg["train_sizes"])]
    test = rng.permutation(len(arrays["y_test"]))[:cfg["n_test"]]
    return (arrays["x_train"][train].astype(np.float32), arrays["y_train"][train],
            arrays["x_test"][test].astype(np.float32), arrays["y_test"][test])


def _sizes(wanted, n):
    """The training sizes of ``wanted`` below ``n``, and ``n`` if it is below the largest."""
    sizes = [s for s in wanted if s < n]
    return tuple(sizes + ([min(n, max(wanted))] if min(n, max(wanted)) not in sizes else []))


# ------------------------------------------------------------------------------ the kernels
def _kernels(arch, x_train, x_test):
    """NNGP and NTK of ``arch`` between all images (train then test) and the training images:
    two (n + m, n) float64 arrays, their (n, n) training block made exactly symmetric."""
    x_all = np.concatenate([x_train, x_test])
    # (kernels.analytic tiles the pairs of spatial inputs itself, in cache-sized blocks)
    k = kernels.analytic(make_net(arch), jnp.asarray(x_all), jnp.asarray(x_train))
    out = []
    for a in (k.nngp, k.ntk):
        a = np.array(a, np.float64)
        n = a.shape[1]
        a[:n] = (a[:n] + a[:n].T) / 2  # the train-train block, symmetric to round-off
        out.append(a)
    return tuple(out)


def _train_rows(n, n_max, flip):
    """Rows of the training kernel holding the first n training images (and their mirrors)."""
    return np.r_[0:n, n_max:n_max + n] if flip else np.arange(n)


def kernel_accuracy(k, y_train, y_test, n, *, diag_reg=DIAG_REG, flip=False) -> float:
    """Test accuracy of kernel regression on one-hot labels with the first ``n`` training images:
    argmax of ``K_*X (K_XX + λ I)^{-1} Y``, ``λ = diag_reg · tr(K_XX) / n``.

    ``k`` (N + m, N): kernel between all images (the N training images first, then m test
    images) and the training images (with ``flip``, N = 2 N0: the N0 images then their mirrors,
    and the first n of each are used); ``y_train`` (N,), ``y_test`` (m,) integer labels.

    >>> import numpy as np
    >>> from widelimits.reproduce import cnn_kernels
    >>> x = np.array([[0.0], [1.0], [0.1], [0.9]])          # 2 training, 2 test points
    >>> k = np.exp(-(x - x[:2].T) ** 2)
    >>> cnn_kernels.kernel_accuracy(k, np.array([0, 1]), np.array([0, 1]), 2)
    1.0
    """
    k = np.asarray(k, np.float64)
    n_max = k.shape[1]
    rows = _train_rows(n, n_max // 2 if flip else n_max, flip)
    k_xx = k[np.ix_(rows, rows)]
    k_xx = (k_xx + k_xx.T) / 2
    k_tx = k[n_max:][:, rows]
    y = np.eye(int(max(y_train.max(), y_test.max())) + 1)[np.asarray(y_train)[rows]]
    reg = diag_reg * np.trace(k_xx) / len(rows)
    pred = k_tx @ linalg.solve(k_xx + reg * np.eye(len(rows)), y, assume_a="pos")
    return float(np.mean(pred.argmax(1) == np.asarray(y_test)))


# ---------------------------------------------------------------------- the finite networks
@jax.tree_util.register_pytree_node_class
class patch_conv_apply:  # noqa: N801 - used like a function
    """``net.apply`` for a ``nets.serial`` whose 2-D ``Conv`` layers (NTK parameterization,
    stride 1, ``"SAME"`` padding, odd filters) are evaluated as one matrix product of the image
    patches (the |F| shifted copies of the zero-padded input, concatenated over channels) with
    the filter: the same function of the same parameters (to round-off), whose weight gradient
    is a matrix product.

    Why: on CPU, XLA runs the weight gradient of a convolution inside a loop body (the
    ``lax.scan`` that ``dynamics.train`` compiles) 50-60x slower than outside one (jax 0.10.2;
    jax-ml/jax#12868 reports the forward case), and ``lax.conv_general_dilated_patches`` is
    slow too when XLA's backend optimisations are off (as in the test suite); written this way
    the finite CNNs of this figure train about as fast as the convolution outside a loop.

    >>> import jax, jax.numpy as jnp, numpy as np
    >>> from widelimits.reproduce import cnn_kernels
    >>> net = cnn_kernels.make_net("cnn_gap", 4)
    >>> x = jax.random.normal(jax.random.key(0), (2, 5, 5, 1))
    >>> p = net.init(jax.random.key(1), x.shape)
    >>> bool(np.allclose(cnn_kernels.patch_conv_apply(net)(p, x), net.apply(p, x), atol=1e-6))
    True
    """

    def __init__(self, net):
        self.net = net

    def __call__(self, params, x):
        for layer, p in zip(self.net.layers, params, strict=True):
            x = self._conv(layer, p, x) if self._patchable(layer) else layer.apply(p, x)
        return x

    @staticmethod
    def _patchable(layer):
        return (isinstance(layer, nets.Conv) and layer.padding == "SAME"
                and layer.parameterization == "ntk" and set(layer.strides) == {1}
                and len(layer.filter_shape) == 2 and all(f % 2 for f in layer.filter_shape))

    @staticmethod
    def _conv(layer, p, x):
        (fh, fw), (h, w) = layer.filter_shape, x.shape[1:3]
        xp = jnp.pad(x, ((0, 0), (fh // 2, fh // 2), (fw // 2, fw // 2), (0, 0)))
        cols = jnp.concatenate([xp[:, i:i + h, j:j + w, :]      # (n, H, W, |F| C_in)
                                for i in range(fh) for j in range(fw)], axis=-1)
        z = cols @ p["W"].astype(x.dtype).reshape(-1, p["W"].shape[-1])
        z = z * (layer.w_std / math.sqrt(cols.shape[-1]))
        return z + layer.b_std * p["b"] if "b" in p else z

    def tree_flatten(self):
        return (self.net,), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(children[0])


def _learning_rate(theta, sizes, k, flip):
    """A quarter of the largest stable rate ``2 n k / λ_max`` of the NTK, the smallest over
    ``sizes``: the finite nets' kernels fluctuate above the limit's at small widths and sharpen
    during training, and at half the largest rate some width-64 nets became unstable."""
    n_max = theta.shape[1] // 2 if flip else theta.shape[1]
    rates = []
    for n in sizes:
        rows = _train_rows(n, n_max, flip)
        rates.append(0.5 * len(rows) * k / np.linalg.eigvalsh(theta[np.ix_(rows, rows)])[-1])
    return float(min(rates))


def _one_width(width, theta, data, cfg, lr, key, flip):
    """Train ``cfg["seeds"]`` CNN-GAPs of ``width`` on each finite size (``data``: the training
    images with their mirrors when ``flip``, as the columns of ``theta``), centred: fitted to
    the targets ``Y + f_0(X)``, so that ``f_t − f_0`` follows exactly the trajectory of
    ``dynamics.Centered`` (α = 1), whose infinite-width limit is the NTK's mean prediction.
    Returns (seeds, F) arrays: the test accuracy of ``f_T − f_0`` and the relative distance of
    its test outputs to the NTK's after the same number of steps, and that NTK's accuracy (F,)."""
    x_train, y_train, x_test, y_test = data
    k = int(max(y_train.max(), y_test.max())) + 1
    n_cols = theta.shape[1]
    net = make_net("cnn_gap", width, k)
    model = patch_conv_apply(net)
    optimizer = optax.sgd(lr)  # one object: one compiled program per training size
    acc, acc_kernel, distance = [], [], []
    for i, n in enumerate(cfg["finite_sizes"]):
        rows = _train_rows(n, n_cols // 2 if flip else n_cols, flip)
        xs, ys = x_train[rows], np.eye(k)[y_train[rows]]
        pred = dynamics.gradient_descent_mse(theta[np.ix_(rows, rows)], ys, learning_rate=lr)
        f_ker = np.asarray(pred(steps=cfg["steps"], k_test_train=theta[n_cols:][:, rows])[1],
                           np.float64)
        acc_kernel.append(np.mean(f_ker.argmax(1) == y_test))
        for seed in range(cfg["seeds"]):
            params = net.init(jax.random.fold_in(key, i * cfg["seeds"] + seed), xs.shape)
            f0_train, f0_test = (np.asarray(net.apply(params, x)) for x in (xs, x_test))
            res = dynamics.train(model, params, xs, ys + f0_train, optimizer, cfg["steps"],
                                 record_every=cfg["steps"], progress=False)
            f_net = np.asarray(net.apply(res.params, x_test), np.float64) - f0_test
            acc.append(np.mean(f_net.argmax(1) == y_test))
            distance.append(np.linalg.norm(f_net - f_ker) / np.linalg.norm(f_ker))
    shape = (len(cfg["finite_sizes"]), cfg["seeds"])
    return {"acc": np.reshape(acc, shape).T, "acc_kernel_t": np.asarray(acc_kernel),
            "distance": np.reshape(distance, shape).T}


# ------------------------------------------------------------------------------ run and plot
def _prepare(data, zca, flip, cfg, seed):
    """(x_train, y_train, x_test, y_test, tag, fingerprint of the source)."""
    if data is None:
        arrays = _digits_split(max(cfg["train_sizes"]), cfg["n_test"], seed)
        tag, source = "", "digits"
    else:
        arrays = _user_data(data, cfg, seed)
        tag = "_" + os.path.splitext(os.path.basename(os.fspath(data)))[0]
        source = _resume.fingerprint(arrays)
    x_train, y_train, x_test, y_test = arrays
    if zca is not None:
        x_train, x_test = (a.astype(np.float32) for a in
                           datasets.zca_whiten(x_train, x_test, reg=zca))
    if flip:
        x_train, y_train = datasets.flip_augment(x_train, y_train)
    return x_train, y_train, x_test, y_test, tag, source


def run(size: str = "full", out: str | os.PathLike = "figures", *, seed: int = 0,
        data: str | os.PathLike | None = None, zca: float | None = None,
        flip: bool = False) -> dict:
    """Kernel-regression accuracies of every architecture and the finite CNN-GAPs at ``size``;
    finished pieces are saved to and resumed from ``out/cnn_kernels_<size>[_<data stem>].npz``.

    ``data``: a ``.npz`` file with ``x_train, y_train, x_test, y_test`` instead of the digits;
    ``zca``: ZCA-whiten with this regulariser (``datasets.zca_whiten``); ``flip``: add the
    mirror images of the training images (``datasets.flip_augment``).

    Returns a dict: ``size``, ``config``, ``source`` ("digits" or the file), ``train_sizes``
    (S,), ``n_test``, ``accuracy`` (name -> (S,) test accuracies; names ``<arch>_nngp`` and
    ``<arch>_ntk``), ``finite`` (width -> dict: ``acc`` (F,) over ``finite_sizes``, the test
    accuracy averaged over seeds, ``acc_seeds`` (seeds, F), ``acc_kernel_t`` (F,) the NTK's
    after as many steps, ``distance`` (F,) the mean relative distance of the test outputs to
    the NTK's, ``distance_se`` its standard error, ``distance_seeds`` (seeds, F)),
    ``learning_rate``, ``diag_reg``, ``n_classes``, ``ordering`` (see :func:`ordering`),
    ``tag`` and ``data`` (the results file).
    """
    cfg = CONFIGS[check_size(size)]
    x_train, y_train, x_test, y_test, tag, source = _prepare(data, zca, flip, cfg, seed)
    n0 = len(x_train) // 2 if flip else len(x_train)
    cfg = dict(cfg, train_sizes=_sizes(cfg["train_sizes"], n0),
               finite_sizes=_sizes(cfg["finite_sizes"], n0), n_test=len(x_test))
    k = int(max(y_train.max(), y_test.max())) + 1
    os.makedirs(out, exist_ok=True)
    path = os.path.join(os.fspath(out), f"cnn_kernels_{size}{tag}.npz")
    stamp = dict(seed=seed, config=repr(sorted(cfg.items())), source=source,
                 zca=-1.0 if zca is None else float(zca), flip=bool(flip),
                 dtype=str(jnp.result_type(float)), diag_reg=DIAG_REG)
    done = resume(path, **stamp)
    pieces = [("kernel", a) for a in ARCHITECTURES] + [("width", w) for w in cfg["widths"]]
    todo = [p for p in pieces if _piece_key(*p) not in done]
    for kind, what in tqdm(todo, desc="cnn_kernels", unit="piece", disable=not todo,
                           leave=False):
        if kind == "kernel":
            nngp, ntk = _kernels(what, x_train, x_test)
            for name, kern in (("nngp", nngp), ("ntk", ntk)):
                done[f"acc_{what}_{name}"] = np.asarray(
                    [kernel_accuracy(kern, y_train, y_test, n, flip=flip)
                     for n in cfg["train_sizes"]])
            if what == "cnn_gap":
                done["theta_cnn_gap"] = ntk.astype(np.float32)
        else:
            theta = done["theta_cnn_gap"].astype(np.float64)
            lr = _learning_rate(theta, cfg["finite_sizes"], k, flip)
            # "rbg" keys (XLA's RngBitGenerator): initialising a net compiles in a third of
            # the time of the default threefry keys on CPU, which dominated the quick size.
            key = jax.random.fold_in(jax.random.key(seed, impl="rbg"), what)
            piece = _one_width(what, theta, (x_train, y_train, x_test, y_test), cfg, lr, key,
                               flip)
            done.update({f"{name}_w{what}": v for name, v in piece.items()})
            done["learning_rate"] = np.asarray(lr)
        checkpoint(path, done, **stamp)
    result = {
        "size": size, "config": cfg, "source": "digits" if data is None else os.fspath(data),
        "train_sizes": np.asarray(cfg["train_sizes"]), "n_test": cfg["n_test"],
        "accuracy": {f"{a}_{kind}": done[f"acc_{a}_{kind}"] for a in ARCHITECTURES
                     for kind in ("nngp", "ntk")},
        "finite": {w: _finite_summary(done, w) for w in cfg["widths"]},
        "learning_rate": float(done["learning_rate"]), "diag_reg": DIAG_REG,
        "n_classes": k, "zca": zca, "flip": flip, "tag": tag, "data": path,
    }
    result["ordering"] = ordering(result)
    return result


def _finite_summary(done, w):
    acc, dist = done[f"acc_w{w}"], done[f"distance_w{w}"]
    se = dist.std(0, ddof=1) / math.sqrt(len(dist)) if len(dist) > 1 else np.zeros(dist.shape[1])
    return {"acc": acc.mean(0), "acc_seeds": acc, "distance": dist.mean(0),
            "distance_se": se, "distance_seeds": dist, "acc_kernel_t": done[f"acc_kernel_t_w{w}"]}


def _piece_key(kind, what):
    return f"acc_{what}_ntk" if kind == "kernel" else f"distance_w{what}"


def ordering(result: dict) -> dict:
    """The literature's ordering checked on ``result``, from accuracy differences (NNGP, NTK)
    per training size, (2, S), and their mean over the sizes, (2,); a difference of two
    accuracies on the same m test images has standard error about √(2 p (1 − p) / m), p their
    mean (``<name>_se``, (S,)):

    * ``gap_minus_flatten``, ``flatten_minus_fc``, ``myrtle_minus_fc`` (and ``..._mean``,
      ``..._se``);
    * ``gap_beats_flatten``: CNN-GAP above CNN-flatten on average over the sizes, for both
      kernels; ``flatten_close_to_fc``: |CNN-flatten − FC| on average within twice the mean
      standard error, for both; ``myrtle_beats_fc``: Myrtle-5 above FC on average, for both;
    * ``finite_approaches_kernel``: the finite CNN-GAP's mean distance to the NTK's outputs
      falls with width at every finite size; ``distance_ratio``: first over last width's.
    """
    acc, m = result["accuracy"], result["n_test"]
    out = {}
    for name, (a, b) in {"gap_minus_flatten": ("cnn_gap", "cnn_flatten"),
                         "flatten_minus_fc": ("cnn_flatten", "fc"),
                         "myrtle_minus_fc": ("myrtle5", "fc")}.items():
        diff = np.stack([acc[f"{a}_{k}"] - acc[f"{b}_{k}"] for k in ("nngp", "ntk")])
        p = np.mean([acc[f"{x}_{k}"] for x in (a, b) for k in ("nngp", "ntk")], axis=0)
        out[name], out[name + "_mean"] = diff, diff.mean(1)
        out[name + "_se"] = np.sqrt(2 * p * (1 - p) / m)
    out["gap_beats_flatten"] = bool(np.all(out["gap_minus_flatten_mean"] > 0))
    out["flatten_close_to_fc"] = bool(np.all(np.abs(out["flatten_minus_fc_mean"])
                                             <= 2 * out["flatten_minus_fc_se"].mean()))
    out["myrtle_beats_fc"] = bool(np.all(out["myrtle_minus_fc_mean"] > 0))
    dist = np.stack([result["finite"][w]["distance"] for w in sorted(result["finite"])])
    out["finite_approaches_kernel"] = bool(np.all(np.diff(dist, axis=0) < 0))
    out["distance_ratio"] = dist[0] / dist[-1]
    return out


def load(path: str | os.PathLike, size: str) -> dict:
    """Rebuild ``run``'s result on the digits from its saved file without computing anything new
    (every piece of ``CONFIGS[size]`` must be in the file)."""
    cfg = CONFIGS[check_size(size)]
    pieces = {f"kernel {a}": _piece_key("kernel", a) for a in ARCHITECTURES}
    pieces.update({f"width {w}": _piece_key("width", w) for w in cfg["widths"]})
    return rerun_saved(path, run, size, pieces, "cnn_kernels.load")


def plot(result: dict, out: str | os.PathLike = "figures") -> list[str]:
    """Draw ``cnn_kernels[<tag>].png``: test accuracy vs training-set size (log x) of every
    kernel (solid NNGP, dashed NTK) and of the finite CNN-GAPs (circles; crosses: the NTK after
    as many steps), and the finite nets' distance to the NTK's outputs vs width (log-log, with
    slope −1/2 for reference)."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FormatStrFormatter, NullLocator, ScalarFormatter

    fig, axes = new_figure(1, 2, panel=(5.4, 4.2))
    ax = axes[0, 0]
    sizes = result["train_sizes"]
    for arch in ARCHITECTURES:
        for kind, ls in (("nngp", "-"), ("ntk", "--")):
            ax.plot(sizes, result["accuracy"][f"{arch}_{kind}"], ls=ls, marker=".",
                    color=COLORS[arch])
    widths = sorted(result["finite"])
    fsizes = np.asarray(result["config"]["finite_sizes"])
    shades = [(0.95 - 0.75 * i / max(len(widths) - 1, 1),) * 3 for i in range(len(widths))]
    for shade, w in zip(shades, widths, strict=True):
        ax.plot(fsizes, result["finite"][w]["acc"], ls="none", marker="o", ms=7, mec="k",
                mfc=shade)
    ax.plot(fsizes, result["finite"][widths[0]]["acc_kernel_t"], ls="none", marker="x", ms=8,
            color="k")
    lowest = min(np.min(v) for v in result["accuracy"].values())
    lowest = min([lowest] + [np.min(result["finite"][w]["acc"]) for w in widths])
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    ax.set_ylim(max(0.0, lowest - 0.05), 1.0)
    ax.set_xlabel("training-set size n (log scale)")
    ax.set_ylabel(f"test accuracy ({result['n_test']} images)")
    ax.grid(alpha=0.3)
    ax.set_title(f"kernel regression on one-hot labels, λ = {result['diag_reg']:g}·tr K/n",
                 fontsize="small")
    handles = [Line2D([], [], color=COLORS[a], lw=2, label=LABELS[a]) for a in ARCHITECTURES]
    handles += [Line2D([], [], color="k", ls="-", label="NNGP"),
                Line2D([], [], color="k", ls="--", label="NTK (t = ∞)")]
    handles += [Line2D([], [], ls="none", marker="o", mec="k", mfc=shade,
                       label=f"finite CNN-GAP, width {w}") for shade, w in zip(shades, widths,
                                                                                 strict=True)]
    handles.append(Line2D([], [], ls="none", marker="x", color="k",
                          label=f"CNN-GAP NTK after {result['config']['steps']} steps"))
    fig.legend(handles=handles, fontsize="small", ncols=5, loc="outside lower center")

    ax = axes[0, 1]
    for j, n in enumerate(fsizes):
        d = np.asarray([result["finite"][w]["distance"][j] for w in widths])
        se = np.asarray([result["finite"][w]["distance_se"][j] for w in widths])
        ax.errorbar(widths, d, yerr=se, marker="o", capsize=3,
                    label=f"n = {n} (mean ± s.e., {result['config']['seeds']} seeds)")
        for wi, di in zip(widths, d, strict=True):
            ax.annotate(f"{di:.3g}", (wi, di), textcoords="offset points", xytext=(4, 4 - 11 * j),
                        fontsize="x-small")
    w = np.asarray(widths, float)
    first = np.mean([result["finite"][widths[0]]["distance"]])
    ax.plot(w, first * (w / w[0]) ** -0.5, color="0.5", ls=":", label="∝ width^(−1/2)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(widths, [str(v) for v in widths])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%.2g"))
    ax.set_xlabel("width (channels)")
    ax.set_ylabel("‖f_net − f_NTK‖ / ‖f_NTK‖ on the test images")
    ax.set_title("finite CNN-GAP (centred) vs its infinite-width NTK after "
                 f"{result['config']['steps']}\ngradient-descent steps (learning rate "
                 f"{result['learning_rate']:.3g})", fontsize="small")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small")
    source = "8x8 digits" if result["source"] == "digits" else result["source"]
    extra = (", ZCA" if result["zca"] is not None else "") + (", flips" if result["flip"] else "")
    fig.suptitle(f"CNN kernels vs FC on {source}{extra}: NNGP/NTK of depth-{DEPTH} nets and "
                 "Myrtle-5\n(Novak et al. 2019; Arora et al. 2019; Shankar et al. 2020)",
                 fontsize="medium")
    return [save_figure(fig, out, f"cnn_kernels{result['tag']}.png")]


def parse_options(argv) -> dict:
    """Options of ``python -m widelimits reproduce cnn_kernels`` after the id, as ``run``'s
    keyword arguments: ``--data FILE.npz``, ``--zca [REG]`` (default regulariser 0.1) and
    ``--flip``.

    >>> from widelimits.reproduce import cnn_kernels
    >>> cnn_kernels.parse_options(["--data", "mine.npz", "--zca", "--flip"])
    {'data': 'mine.npz', 'zca': 0.1, 'flip': True}
    """
    parser = argparse.ArgumentParser(prog="widelimits reproduce cnn_kernels",
                                     description="Options of the cnn_kernels figure.")
    parser.add_argument("--data", metavar="FILE.npz", default=None,
                        help="arrays x_train, y_train, x_test, y_test (channels-last images, "
                             "integer labels) instead of the digits")
    parser.add_argument("--zca", metavar="REG", type=float, nargs="?", const=0.1, default=None,
                        help="ZCA-whiten the images (regulariser REG, default 0.1)")
    parser.add_argument("--flip", action="store_true",
                        help="add the horizontal mirror image of every training image")
    return vars(parser.parse_args(list(argv)))
