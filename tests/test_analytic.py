"""Analytic kernels: closed-form special cases, tiling, symmetry, dtypes, jit/vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from widelimits import kernels, nets

from .conftest import rtol_for


def _x(n=6, d=4, dtype=jnp.float64, seed=0):
    return jax.random.normal(jax.random.key(seed), (n, d), jnp.float64).astype(dtype)


def test_single_dense_layer_closed_form():
    x1, x2 = _x(), _x(3, seed=1)
    dot = np.asarray(x1 @ x2.T)
    k = kernels.analytic(nets.Dense(7, w_std=1.3, b_std=0.4), x1, x2)
    np.testing.assert_allclose(k.nngp, 1.69 * dot / 4 + 0.16, rtol=1e-14)
    np.testing.assert_allclose(k.ntk, k.nngp, rtol=1e-14)
    k = kernels.analytic(nets.Dense(7, w_std=1.3, b_std=0.4, parameterization="standard"), x1, x2)
    np.testing.assert_allclose(k.ntk, dot + 1.0, rtol=1e-14)  # d(x.W + b)/dW, d/db
    k = kernels.analytic(nets.Dense(7, w_std=1.3, b_std=None, parameterization="standard"), x1, x2)
    np.testing.assert_allclose(k.ntk, dot, rtol=1e-14)


def test_two_layer_relu_closed_form():
    # Jacot et al. 2018: Theta = K2 + w^2 Vdot(K1) Theta1 with the arc-cosine formulas written
    # out independently here in NumPy.
    x = np.asarray(_x())
    w, b = 1.4, 0.2
    k1 = w**2 * x @ x.T / 4 + b**2
    d = np.sqrt(np.diag(k1))
    c = np.clip(k1 / np.outer(d, d), -1, 1)
    np.fill_diagonal(c, 1.0)  # x_i with itself: c = 1 exactly
    th = np.arccos(c)
    v = np.outer(d, d) * (np.sin(th) + (np.pi - th) * c) / (2 * np.pi)
    vdot = (np.pi - th) / (2 * np.pi)
    k2 = w**2 * v + b**2
    ntk = k2 + w**2 * vdot * k1
    k = kernels.analytic(nets.serial(nets.Dense(9, w_std=w, b_std=b), nets.Relu(),
                                     nets.Dense(1, w_std=w, b_std=b)), jnp.asarray(x))
    np.testing.assert_allclose(k.nngp, k2, rtol=1e-13)
    np.testing.assert_allclose(k.ntk, ntk, rtol=1e-13)
    np.testing.assert_allclose(k.var1, np.diag(k2), rtol=1e-13)


def test_standard_parameterization_uses_fan_in():
    # Sohl-Dickstein et al. 2020: Theta_out = n_in K_in + w^2 Theta_in + 1 (bias).
    x = _x()
    net = nets.serial(nets.Dense(11, w_std=1.2, b_std=0.3, parameterization="standard"),
                      nets.Erf(), nets.Dense(1, w_std=0.7, b_std=0.1, parameterization="standard"))
    k1 = kernels.analytic(net.layers[0], x)
    phi = kernels.dual(nets.Erf())
    v, vdot = phi(k1.var1[:, None], k1.nngp, k1.var1[None, :])
    expected = 11 * v + 0.49 * vdot * k1.ntk + 1
    np.testing.assert_allclose(kernels.analytic(net, x).ntk, expected, rtol=1e-13)


def test_layernorm_and_residual_rules():
    x = _x()
    base = nets.serial(nets.Dense(5, w_std=1.5, b_std=0.2))
    kb = kernels.analytic(base, x)
    norm = np.sqrt(np.outer(kb.var1, kb.var1))
    kl = kernels.analytic(nets.serial(*base.layers, nets.LayerNorm()), x)
    np.testing.assert_allclose(kl.nngp, kb.nngp / norm, rtol=1e-14)
    np.testing.assert_allclose(kl.ntk, kb.ntk / norm, rtol=1e-14)
    block = nets.serial(nets.Relu(), nets.Dense(5, w_std=0.8))
    kr = kernels.analytic(nets.serial(*base.layers, nets.residual(block, scale=0.6)), x)
    kblock = kernels.analytic(nets.serial(*base.layers, block), x)
    np.testing.assert_allclose(kr.nngp, kb.nngp + 0.36 * kblock.nngp, rtol=1e-14)
    np.testing.assert_allclose(kr.ntk, kb.ntk + 0.36 * kblock.ntk, rtol=1e-14)


@pytest.mark.parametrize("batch_size", [1, 2, 5, 7, 100])
def test_tiled_equals_untiled(batch_size):
    net = nets.mlp(16, 3, nets.Gelu(), b_std=0.1)
    x1, x2 = _x(7), _x(5, seed=3)
    full, tiled = kernels.analytic(net, x1, x2), kernels.analytic(net, x1, x2, batch_size=batch_size)
    for a, b in [(full.nngp, tiled.nngp), (full.ntk, tiled.ntk), (full.var1, tiled.var1)]:
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-15)


def test_x2_none_equals_explicit():
    net = nets.mlp(16, 2, nets.Tanh(), b_std=0.2)
    x = _x()
    k, k2 = kernels.analytic(net, x), kernels.analytic(net, x, x)
    np.testing.assert_allclose(k.nngp, k2.nngp, rtol=1e-14)
    np.testing.assert_allclose(k.ntk, k2.ntk, rtol=1e-14)
    np.testing.assert_allclose(np.diag(k.nngp), k.var1, rtol=1e-13)


@pytest.mark.parametrize("act", [nets.Relu(), nets.Erf(), nets.Tanh(), nets.Gelu()], ids=repr)
def test_float32_and_float64(act, dtype):
    net = nets.mlp(16, 3, act, b_std=0.1)
    k = kernels.analytic(net, _x(dtype=dtype))
    ref = kernels.analytic(net, _x(dtype=jnp.float64))
    assert k.nngp.dtype == dtype and k.ntk.dtype == dtype and k.var1.dtype == dtype
    np.testing.assert_allclose(k.nngp, ref.nngp, rtol=rtol_for(dtype, 1e-15, 2e-5), atol=1e-6)
    np.testing.assert_allclose(k.ntk, ref.ntk, rtol=rtol_for(dtype, 1e-15, 2e-5), atol=1e-6)


def test_jit_vmap_without_static_argnames(dtype):
    net = nets.mlp(16, 2, nets.Erf(), b_std=0.1)
    x = _x(dtype=dtype)
    k = kernels.analytic(net, x)
    kj = jax.jit(kernels.analytic)(net, x)
    np.testing.assert_allclose(kj.ntk, k.ntk, rtol=rtol_for(dtype, 1e-14, 1e-6))
    diag = jax.vmap(lambda xi: kernels.analytic(net, xi[None]).ntk[0, 0])(x)
    np.testing.assert_allclose(diag, np.diag(k.ntk), rtol=rtol_for(dtype, 1e-13, 1e-5))
    ws = jnp.linspace(0.5, 2.0, 4, dtype=dtype)
    per_w = jax.vmap(lambda w: kernels.analytic(nets.mlp(16, 2, nets.Erf(), w_std=w), x).nngp)(ws)
    for w, kw in zip(ws, per_w, strict=True):
        np.testing.assert_allclose(kw, kernels.analytic(nets.mlp(16, 2, nets.Erf(), w_std=float(w)),
                                                        x).nngp, rtol=rtol_for(dtype, 1e-13, 1e-5))


def test_kernel_is_a_pytree():
    k = kernels.analytic(nets.mlp(8, 1), _x())
    leaves = jax.tree.leaves(k)
    assert len(leaves) == 4
    doubled = jax.tree.map(lambda a: 2 * a, k)
    np.testing.assert_allclose(doubled.ntk, 2 * k.ntk)


ALL_ACTIVATIONS = [
    nets.Relu(), nets.LeakyRelu(0.1), nets.ABRelu(-0.5, 2.0), nets.Abs(), nets.Sign(), nets.Erf(),
    nets.Gelu(), nets.Sin(), nets.Cos(), nets.Exp(), nets.Identity(), nets.Monomial(3),
    nets.RectifiedMonomial(2), nets.Tanh(), nets.Sigmoid(), nets.Softplus(), nets.Swish(),
    nets.Elementwise(jnp.sinh, name="sinh", order=64),
]


# Activations whose dual is computed by the same code as one kept in the default suite (the
# arc-cosine kernel of order 1 as ReLU's; the Hermite expansion as tanh's and swish's).
_SAME_DUAL_CODE = {"LeakyRelu(alpha=0.1)", "ABRelu(a=-0.5, b=2.0)", "Abs()", "Sigmoid()",
                   "Softplus()", "Elementwise(sinh)"}


def _symmetry_cases():
    # Every dual implementation once in the default suite, the four (parameterization, dtype)
    # pairs taken in turn; the full product runs under `make test-all` (marked slow).
    combos = [(p, d) for p in ("ntk", "standard") for d in (jnp.float32, jnp.float64)]
    kept = [a for a in ALL_ACTIVATIONS if repr(a) not in _SAME_DUAL_CODE]
    for act in ALL_ACTIVATIONS:
        i = kept.index(act) if act in kept else None
        for j, (param, dtype) in enumerate(combos):
            marks = () if i is not None and j == i % len(combos) else (pytest.mark.slow,)
            yield pytest.param(act, param, dtype, marks=marks,
                               id=f"{np.dtype(dtype).name}-{param}-{act!r}")


@pytest.mark.parametrize("act, param, dtype", list(_symmetry_cases()))
def test_x2_none_is_symmetric_to_round_off(act, param, dtype):
    # x2=None gives K == K.T up to an ulp or two of round-off (XLA's vectorised and scalar loops
    # may differ), for the scanned MLP, a residual + LayerNorm net and a parallel sum (n = 23 is
    # not a multiple of any SIMD width).
    x = 0.3 * _x(n=23, d=5, dtype=dtype, seed=3)
    dense = lambda width=8, b_std=0.0: nets.Dense(width, w_std=0.5, b_std=b_std,
                                                  parameterization=param)
    block = nets.serial(dense(b_std=0.3), act, dense())
    for net in [nets.mlp(8, 3, act, w_std=0.8, b_std=0.2, parameterization=param),
                nets.serial(dense(), nets.LayerNorm(), nets.residual(*block.layers, scale=0.5),
                            nets.parallel(block, dense()), act, dense(1))]:
        for k in (kernels.analytic(net, x), kernels.analytic(net, x, batch_size=7)):
            assert k.nngp.dtype == dtype
            for mat in (np.asarray(k.nngp), np.asarray(k.ntk)):
                ulp = np.finfo(mat.dtype).eps * np.abs(mat).max()
                assert np.abs(mat - mat.T).max() <= 4 * ulp


def _unrolled(net):
    # The same recursion with the layers nested so that no run of identical units is scanned.
    return nets.serial(*[nets.serial(layer) if i % 2 else layer
                         for i, layer in enumerate(net.layers)])


@pytest.mark.parametrize("net", [
    nets.mlp(8, 6, nets.Erf(), w_std=1.4, b_std=0.3),
    nets.mlp(8, 5, nets.Relu(), w_std=1.2, b_std=None, parameterization="standard"),
    nets.serial(nets.Dense(8), *[nets.residual(nets.Relu(), nets.Dense(8, b_std=0.1), scale=0.4)
                                 for _ in range(5)], nets.Relu(), nets.Dense(1)),
], ids=["erf-mlp", "relu-standard", "resnet"])
def test_scanned_runs_equal_unrolled_recursion(net):
    # Runs of >= 3 identical units go through lax.scan; interleaving them with differently nested
    # units forces the plain layer-by-layer recursion. Both must agree to round-off, with x2 given
    # and not, tiled and diagonal paths included.
    x1, x2 = _x(n=9, seed=5), _x(n=7, seed=6)
    for args, kw in [((x1, x2), {}), ((x1,), {}), ((x1,), {"batch_size": 4})]:
        a, b = kernels.analytic(net, *args, **kw), kernels.analytic(_unrolled(net), *args, **kw)
        for u, v in [(a.nngp, b.nngp), (a.ntk, b.ntk), (a.var1, b.var1), (a.var2, b.var2)]:
            np.testing.assert_allclose(u, v, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("n, dtype", [(530, jnp.float64), (530, jnp.float32),
                                      (1100, jnp.float64)], ids=["f64-530", "f32-530", "f64-1100"])
def test_large_symmetric_kernel_from_blocks_equals_one_program(n, dtype):
    # k(x, x) for n >= 400 is assembled from the upper-triangular blocks of 4-16 tiles (the last
    # one padded). It must equal the one-program pair path k(x, x given) to round-off, be exactly
    # symmetric, keep the diagonal of the tiled path (c = 1 pinned) and differentiate the same.
    from widelimits.kernels._analytic import _symmetric_tiles

    assert _symmetric_tiles(n) > 1
    net = nets.mlp(8, 3, nets.Relu(), w_std=1.3, b_std=0.2)
    x = _x(n=n, d=5, seed=7, dtype=dtype)
    rtol = rtol_for(dtype, 1e-13, 2e-6)
    k, pair, tiled = (kernels.analytic(net, x), kernels.analytic(net, x, x),
                      kernels.analytic(net, x, batch_size=n // 3))
    off = ~np.eye(n, dtype=bool)
    for name in ("nngp", "ntk"):
        a = np.asarray(getattr(k, name))
        np.testing.assert_allclose(a[off], np.asarray(getattr(pair, name))[off], rtol=rtol)
        np.testing.assert_allclose(a, getattr(tiled, name), rtol=rtol)
        b = -(-n // _symmetric_tiles(n))
        assert np.array_equal(a[:b, b:], a[b:, :b].T)
    np.testing.assert_allclose(k.var1, tiled.var1, rtol=rtol)
    if n == 530:  # gradients through the assembly (once per dtype: each grad compiles twice)
        loss = lambda w, x2: jnp.sum(kernels.analytic(nets.mlp(8, 1, nets.Relu(), w_std=w), x,
                                                      x2).ntk[:200, 300:])
        np.testing.assert_allclose(jax.grad(loss)(1.3, None), jax.grad(loss)(1.3, x),
                                   rtol=rtol_for(dtype, 1e-12, 1e-5))


def test_state_rules_act_per_position_on_trailing_spatial_axes():
    # The rules of elementwise layers (Dense, activations, LayerNorm, residual sums, scanned
    # runs) act on any trailing axes of the state: the convolutional layers' positions. With P
    # positions carried at once, each position's kernel equals that of a state of one position.
    rng = np.random.default_rng(3)
    n1, n2, p = 3, 4, 5
    a, b = rng.normal(size=(n1, p, 6)), rng.normal(size=(n2, p, 6))
    var1, var2 = np.einsum("ipc,ipc->ip", a, a) / 6, np.einsum("jpc,jpc->jp", b, b) / 6
    cov = np.einsum("ipc,jpc->ijp", a, b) / 6
    net = nets.serial(nets.Dense(8, w_std=1.3, b_std=0.2), nets.Erf(), nets.Dense(8),
                      nets.LayerNorm(), nets.residual(nets.Relu(), nets.Dense(8)),
                      *[nets.Dense(8), nets.Tanh()] * 3, nets.Dense(1))

    def state(v1, k, v2):
        return kernels.KernelState(var1=jnp.asarray(v1), nngp=jnp.asarray(k),
                                   var2=jnp.asarray(v2), ntk=jnp.zeros_like(jnp.asarray(k)),
                                   gaussian=False, features=6, raw=True)

    propagate = jax.jit(lambda s: kernels.propagate(net, s))  # a state is a pytree
    out = propagate(state(var1, cov, var2))
    assert out.nngp.shape == (n1, n2, p) and out.var1.shape == (n1, p)
    for q in range(p):
        one = propagate(state(var1[:, q], cov[..., q], var2[:, q]))
        np.testing.assert_allclose(out.nngp[..., q], one.nngp, rtol=1e-12)
        np.testing.assert_allclose(out.ntk[..., q], one.ntk, rtol=1e-12)
        np.testing.assert_allclose(out.var2[:, q], one.var2, rtol=1e-12)
