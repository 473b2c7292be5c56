"""Weight ensembles of Dense: moments, structure, and the one-hidden-layer NNGP
(Nait Saada, Naderi & Tanner 2024, "Beyond IID weights")."""

import itertools
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests._mc import ensemble_stats, z_scores
from widelimits import kernels, nets
from widelimits.nets import _weights

ENSEMBLES = {
    "gaussian": dict(weights="gaussian"),
    "orthogonal": dict(weights="orthogonal"),
    "low_rank": dict(weights="low_rank", rank=0.25),
    "low_rank_int": dict(weights="low_rank", rank=3),
    "sparse": dict(weights="sparse", density=0.2),
}
Z = 4.5  # |z| bound: a false alarm has probability < 1e-5 per entry under the Gaussian approximation


@pytest.fixture(scope="module")
def draws():
    """200 draws of a (40, 24) matrix per ensemble, float64 (one compilation for all)."""
    denses = {name: nets.Dense(24, **kw) for name, kw in ENSEMBLES.items()}
    one = lambda k: {name: d.init(k, (40,), jnp.float64)["W"] for name, d in denses.items()}
    out = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(7), 200))
    return {name: np.asarray(w) for name, w in out.items()}


@pytest.mark.parametrize("name", list(ENSEMBLES))
def test_entries_have_mean_zero_unit_variance_and_are_uncorrelated(draws, name):
    w = draws[name]  # (S, n_in, n_out); statistics per draw, then mean and s.e. over draws
    s = w.shape[0]
    stats = {"mean": w.mean((1, 2)), "second moment": (w**2).mean((1, 2))}
    gram = np.einsum("sik,sjk->sij", w, w) / w.shape[2]  # E[W W^T] / n_out = I
    off = ~np.eye(w.shape[1], dtype=bool)
    stats["W W^T off-diagonal"] = gram[:, off].mean(1)
    want = {"mean": 0.0, "second moment": 1.0, "W W^T off-diagonal": 0.0}
    for key, v in stats.items():
        z = z_scores(v.mean(), v.std(ddof=1) / np.sqrt(s), want[key])
        assert abs(z) < Z, (name, key, v.mean(), z)


def test_structure_of_each_ensemble(draws):
    n_in, n_out = 40, 24
    r = _weights.effective_rank(0.25, n_in, n_out)
    assert r == 6 and _weights.effective_rank(3, n_in, n_out) == 3
    assert _weights.effective_rank(100, n_in, n_out) == 24  # capped at min(n_in, n_out)
    for name, rank in (("low_rank", 6), ("low_rank_int", 3)):
        for w in draws[name][:5]:
            sv = np.linalg.svd(w, compute_uv=False)
            assert np.sum(sv > 1e-9 * sv[0]) == rank
    k = _weights.nonzeros_per_unit(0.2, n_in)
    assert k == 8
    w = draws["sparse"]
    np.testing.assert_array_equal((w != 0).sum(1), k)  # exactly K inputs per output unit
    # The supports are uniformly random: every input is used with frequency K / n_in.
    freq = (w != 0).mean((0, 2))
    se = np.sqrt(k / n_in * (1 - k / n_in) / (w.shape[0] * n_out))
    assert np.all(np.abs(freq - k / n_in) < Z * se * 1.2), freq
    g = np.einsum("sij,sik->sjk", draws["orthogonal"], draws["orthogonal"])  # n_in >= n_out
    np.testing.assert_allclose(g, np.broadcast_to(n_in * np.eye(n_out), g.shape), atol=1e-9)


def test_float32_and_determinism():
    for kw in ENSEMBLES.values():
        dense = nets.Dense(16, **kw)
        w = dense.init(jax.random.key(3), (20,), jnp.float32)["W"]
        assert w.dtype == jnp.float32 and w.shape == (20, 16)
        np.testing.assert_array_equal(w, dense.init(jax.random.key(3), (20,), jnp.float32)["W"])
        assert np.all(np.isfinite(np.asarray(w)))
    spec = nets.Dense(16, weights="low_rank", rank=0.5)
    assert hash(spec) == hash(nets.Dense(16, weights="low_rank", rank=0.5))
    assert spec != nets.Dense(16, weights="low_rank", rank=0.25)
    leaves, tree = jax.tree.flatten(spec)
    assert jax.tree.unflatten(tree, leaves) == spec


X = np.array([[1.0, 0.5, -0.3, 0.2], [-0.4, 1.1, 0.6, -0.9], [0.8, -0.2, 0.9, 1.3]])


def test_one_hidden_layer_nngp_is_exact_for_any_readout_ensemble():
    # f = Dense(k, ensemble)(erf(Dense(n)(x))): E[f f^T / k] = w² V_erf(q) + b² at every width,
    # because the readout is independent of the hidden layer and E[W W^T] = k I for every
    # ensemble. The three readouts share the hidden layer of each network (one compilation).
    hidden = nets.serial(nets.Dense(6, w_std=1.3, b_std=0.2), nets.Erf())
    names = ("orthogonal", "low_rank", "sparse")
    heads = [nets.Dense(3, w_std=0.9, b_std=0.1, **ENSEMBLES[n]) for n in names]

    def one(key):
        kh, *ks = jax.random.split(key, 4)
        h = hidden.apply(hidden.init(kh, X.shape), X)
        outs = [head.apply(head.init(k, h.shape), h) for head, k in zip(heads, ks, strict=True)]
        return jnp.stack([f @ f.T / f.shape[-1] for f in outs])

    keys = jax.random.split(jax.random.key(11), 12000)
    stats = np.asarray(jax.jit(jax.vmap(one))(keys))
    mean, se = stats.mean(0), stats.std(0, ddof=1) / np.sqrt(len(stats))
    want = np.asarray(kernels.analytic(nets.serial(hidden, heads[0]), X).nngp)
    for i, name in enumerate(names):
        z = z_scores(mean[i], se[i], want)
        assert np.all(np.abs(z) < Z), (name, z)


def test_sparse_first_layer_has_a_mixture_limit_not_the_gaussian_one():
    # A hidden layer with fixed fan-in d = 4 and K = 2 inputs per unit: each unit's
    # pre-activation is N(0, q_S) with q_S the covariance of the 2 inputs it sees, so the exact
    # expectation (any width) is the average of the erf dual over the 6 subsets S — an
    # independent oracle — and it differs from the Gaussian NNGP (why the ensembles need a
    # growing fan-in and the first layer is kept Gaussian).
    net = nets.serial(nets.Dense(8, b_std=None, weights="sparse", density=0.5), nets.Erf(),
                      nets.Dense(1, b_std=None))
    mean, se = ensemble_stats(net, X, jax.random.key(12), 10000, chunk=5000)
    dual = kernels.dual(nets.Erf())
    mix = []
    for s in itertools.combinations(range(4), 2):
        xs = X[:, list(s)]
        q = xs @ xs.T / 2
        d = np.diag(q)
        mix.append(np.asarray(dual(d[:, None], q, d[None, :])[0]))
    mix = np.mean(mix, 0)
    assert np.all(np.abs(z_scores(mean, se, mix)) < Z)
    # ... and the mixture differs from the Gaussian NNGP by > 5 standard errors (~7.6 here),
    # so the Monte Carlo above tells the two apart.
    gaussian_net = nets.serial(nets.Dense(8, b_std=None), nets.Erf(), nets.Dense(1, b_std=None))
    gaussian = np.asarray(kernels.analytic(gaussian_net, X).nngp)
    assert np.max(np.abs(mix - gaussian) / se) > 5


@pytest.mark.parametrize("kw, exc, match", [
    (dict(weights="low_rank"), ValueError, r"weights='low_rank' needs rank=\.\.\., got rank=None"),
    (dict(weights="sparse"), ValueError, r"weights='sparse' needs density=\.\.\., got density=None"),
    (dict(rank=4), ValueError, r"rank=4 applies only to weights='low_rank', got weights='gaussian'"),
    (dict(weights="low_rank", density=0.5), ValueError, r"needs rank"),
    (dict(weights="sparse", density=0.5, rank=2), ValueError, r"rank=2 applies only"),
    (dict(weights="low_rank", rank=0), ValueError, r"rank must be an int >= 1 .* got 0"),
    (dict(weights="low_rank", rank=1.5), ValueError, r"float rank .* in \(0, 1\], got 1\.5"),
    (dict(weights="low_rank", rank=0.0), ValueError, r"in \(0, 1\], got 0\.0"),
    (dict(weights="low_rank", rank="3"), TypeError, r"rank must be an int >= 1 .* got '3'"),
    (dict(weights="low_rank", rank=True), TypeError, r"rank must be an int"),
    (dict(weights="sparse", density=0.0), ValueError, r"density must lie in \(0, 1\], got 0\.0"),
    (dict(weights="sparse", density=1.2), ValueError, r"density must lie in \(0, 1\], got 1\.2"),
    (dict(weights="sparse", density=float("nan")), ValueError, r"density must lie in"),
    (dict(weights="sparse", density="0.5"), TypeError, r"density must be a number"),
    (dict(weights="uniform"), ValueError, r"weights must be one of \('gaussian', 'orthogonal', "
                                          r"'low_rank', 'sparse'\), got 'uniform'"),
])
def test_bad_ensemble_arguments(kw, exc, match):
    with pytest.raises(exc, match=match):
        nets.Dense(8, **kw)


@pytest.mark.parametrize("dense", [nets.Dense(8, weights="low_rank", rank=2),
                                   nets.Dense(8, weights="sparse", density=0.5)])
def test_analytic_refuses_a_non_gaussian_first_layer(dense):
    # A low-rank or sparse first layer sees the fixed input dimension d: its infinite-width
    # output is not the Gaussian process of Gaussian weights, so no kernel is returned.
    x = jnp.ones((3, 4))
    with pytest.raises(ValueError, match="acts on the network input"):
        kernels.analytic(nets.serial(dense, nets.Relu(), nets.Dense(1)), x)
    deeper = nets.serial(nets.Dense(8), nets.Relu(), dense, nets.Relu(), nets.Dense(1))
    np.testing.assert_allclose(kernels.analytic(deeper, x).nngp,
                               kernels.analytic(nets.mlp(8, 2, nets.Relu()), x).nngp)


_CONCURRENT_QR = """
import jax
from widelimits import nets
net = nets.serial(nets.Dense(24, weights="orthogonal"), nets.Dense(24, weights="orthogonal"),
                  nets.Dense(24, weights="low_rank", rank=3), nets.Dense(24, weights="low_rank", rank=5))
init = jax.jit(jax.vmap(lambda k: net.init(k, (40,))))
for i in range(8):
    jax.block_until_ready(init(jax.random.split(jax.random.key(i), 200)))
print("done")
"""


def test_vmapped_init_of_several_orthogonal_layers_completes():
    """Several vmapped QRs in one program used to deadlock XLA:CPU's thread pool on 2 cores
    (batched LAPACK calls each waiting for pool threads held by the other); the draws now run
    member by member under vmap. A fresh process, so a regression fails here instead of hanging."""
    env = {**os.environ, "JAX_ENABLE_X64": "1"}
    out = subprocess.run([sys.executable, "-c", _CONCURRENT_QR], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "done" in out.stdout, out.stderr[-2000:]
