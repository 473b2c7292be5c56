"""Finite-network view of the specs: init/apply conventions, pytrees, jit/vmap/grad."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from widelimits import nets


def test_dense_ntk_and_standard_conventions():
    x = jax.random.normal(jax.random.key(0), (4, 3))
    key = jax.random.key(1)
    ntk = nets.Dense(5, w_std=1.7, b_std=0.3)
    std = nets.Dense(5, w_std=1.7, b_std=0.3, parameterization="standard")
    p_ntk, p_std = ntk.init(key, x.shape), std.init(key, x.shape)
    # Same draws, different placement of the scale: identical functions at initialisation.
    np.testing.assert_allclose(ntk.apply(p_ntk, x), std.apply(p_std, x), rtol=1e-12)
    np.testing.assert_allclose(ntk.apply(p_ntk, x),
                               1.7 / np.sqrt(3) * x @ p_ntk["W"] + 0.3 * p_ntk["b"], rtol=1e-12)
    assert "b" not in nets.Dense(5, b_std=None).init(key, x.shape)


def test_orthogonal_weights_have_gaussian_second_moment():
    for n_in, n_out in [(64, 16), (16, 64), (32, 32)]:
        w = nets.Dense(n_out, weights="orthogonal").init(jax.random.key(2), (n_in,))["W"]
        gram = w.T @ w if n_in >= n_out else w @ w.T
        np.testing.assert_allclose(gram, max(n_in, n_out) * np.eye(min(n_in, n_out)), atol=1e-9)
        np.testing.assert_allclose(np.mean(np.asarray(w) ** 2), 1.0, rtol=1e-9)


@pytest.mark.parametrize("act", [nets.Relu(), nets.LeakyRelu(0.3), nets.Abs(), nets.ABRelu(-2., 3.),
                                 nets.Erf(2., 0.5, 1.), nets.Gelu(), nets.Sin(2., 3., 1.),
                                 nets.Cos(2., 3., 1.), nets.Tanh(), nets.Sigmoid(), nets.Softplus(),
                                 nets.Swish(), nets.Identity(), nets.Sign(),
                                 nets.RectifiedMonomial(3), nets.Monomial(3), nets.Exp(2., 0.5)],
                         ids=repr)
def test_activation_functions(act):
    from scipy.special import erf
    x = np.linspace(-2.5, 2.5, 11)
    expected = {
        "Relu": np.maximum(x, 0), "LeakyRelu": np.where(x > 0, x, 0.3 * x), "Abs": np.abs(x),
        "ABRelu": -2 * np.minimum(x, 0) + 3 * np.maximum(x, 0), "Erf": 2 * erf(0.5 * x) + 1,
        "Gelu": x * (1 + erf(x / np.sqrt(2))) / 2, "Sin": 2 * np.sin(3 * x + 1),
        "Cos": 2 * np.cos(3 * x + 1), "Tanh": np.tanh(x), "Sigmoid": 1 / (1 + np.exp(-x)),
        "Softplus": np.log1p(np.exp(x)), "Swish": x / (1 + np.exp(-x)), "Identity": x,
        "Sign": np.sign(x), "RectifiedMonomial": np.maximum(x, 0) ** 3, "Monomial": x**3,
        "Exp": 2 * np.exp(0.5 * x),
    }[type(act).__name__]
    np.testing.assert_allclose(act(x), expected, rtol=1e-12, atol=1e-14)


def _net():
    return nets.serial(nets.Dense(16, w_std=1.4, b_std=0.1), nets.Relu(), nets.LayerNorm(),
                       nets.residual(nets.Dense(16), nets.Erf(), nets.Dense(16), scale=0.5),
                       nets.parallel(nets.Dense(4), nets.serial(nets.Dense(8), nets.Tanh(),
                                                                nets.Dense(4))))


def test_combinators_compute_what_they_say():
    net = _net()
    x = jax.random.normal(jax.random.key(3), (5, 3))
    p = net.init(jax.random.key(4), x.shape)
    h = net.layers[2].apply((), net.layers[1].apply((), net.layers[0].apply(p[0], x)))
    np.testing.assert_allclose(np.mean(h, -1), 0, atol=1e-6)  # LayerNorm
    block = net.layers[3].block
    r = h + 0.5 * block.apply(p[3], h)
    np.testing.assert_allclose(net.layers[3].apply(p[3], h), r, rtol=1e-12)
    par = net.layers[4]
    out = par.branches[0].apply(p[4][0], r) + par.branches[1].apply(p[4][1], r)
    np.testing.assert_allclose(net.apply(p, x), out, rtol=1e-12)
    assert net.apply(p, x).shape == (5, 4)


def test_pure_and_transformable(dtype):
    net = _net()
    x = jax.random.normal(jax.random.key(5), (5, 3), dtype)
    p = jax.tree.map(lambda a: a.astype(dtype), net.init(jax.random.key(6), x.shape))
    y = net.apply(p, x)
    assert y.dtype == dtype
    np.testing.assert_allclose(jax.jit(net.apply)(p, x), y, rtol=1e-5)
    np.testing.assert_allclose(jax.vmap(net.apply, (None, 0))(p, x), y, rtol=1e-5, atol=1e-6)
    g = jax.grad(lambda p: jnp.sum(net.apply(p, x) ** 2))(p)
    assert all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree.leaves(g))
    # Same key, same parameters, bit for bit.
    q = net.init(jax.random.key(6), x.shape)
    assert all(np.array_equal(a, b) for a, b in
               zip(jax.tree.leaves(q), jax.tree.leaves(net.init(jax.random.key(6), x.shape)),
                   strict=True))


def test_specs_are_printable_hashable_pytrees():
    net = nets.mlp(32, 2, nets.Erf(), w_std=1.5, b_std=0.1)
    assert repr(net).startswith("serial(Dense(width=32, w_std=1.5, b_std=0.1")
    assert hash(net) == hash(nets.mlp(32, 2, nets.Erf(), w_std=1.5, b_std=0.1))
    assert net == nets.mlp(32, 2, nets.Erf(), w_std=1.5, b_std=0.1)
    leaves, tree = jax.tree.flatten(net)
    assert leaves == [1.5, 0.1, 1.0, 1.0, 0.0, 1.5, 0.1, 1.0, 1.0, 0.0, 1.5, 0.1]
    assert jax.tree.unflatten(tree, leaves) == net
    # Different activation classes with identical fields give different treedefs.
    assert jax.tree.structure(nets.Sin()) != jax.tree.structure(nets.Cos())
    assert jax.tree.structure(nets.Relu()) != jax.tree.structure(nets.Identity())


def test_mlp_structure():
    net = nets.mlp(8, 3, nets.Tanh(), out_width=2, parameterization="standard")
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds == ["Dense", "Tanh"] * 3 + ["Dense"]
    assert net.layers[-1].width == 2 and net.layers[0].parameterization == "standard"
    assert nets.mlp(8, 0).layers == (nets.Dense(1),)


def test_elementwise_user_function():
    act = nets.Elementwise(lambda x: x * jnp.cos(x), name="x cos x")
    np.testing.assert_allclose(act(jnp.array([1.0, 2.0])), [np.cos(1.0), 2 * np.cos(2.0)])
    assert repr(act) == "Elementwise(x cos x)"
