"""The registry views of widelimits.finite: the collapsed sampler (``finite.draw``, behind
``output_samples``), the recording forward pass (``layers=True``) and the 1/n recursions
(``net_vertex``, ``net_output_cumulants``)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from widelimits import finite, kernels, nets, signal

X = jnp.asarray([[1.0, 0.0, 0.5], [0.3, -1.0, 0.2], [0.0, 0.7, -0.9]], jnp.float64)
Z = 4.5


def _mixed_net():
    """Residual blocks (a scanned run), a parallel sum of a bias-free layer and a standard-
    parameterization branch, and a readout."""
    block = nets.residual(nets.Erf(), nets.Dense(6, 1.2, 0.1), scale=0.5)
    std = nets.Dense(6, 1.3, 0.2, parameterization="standard")
    return nets.serial(nets.Dense(6, 1.1, 0.2), block, block, block,
                       nets.parallel(nets.Dense(6, 0.8, None), nets.serial(nets.Tanh(), std)),
                       nets.Relu(), nets.Dense(2, 1.0, 0.3))


_draw = jax.jit(finite.draw, static_argnames=("dense", "shared"))
_forward = jax.jit(lambda net, key, x: net.apply(net.init(key, x.shape), x))


@pytest.mark.parametrize("net", [
    nets.mlp(5, 4, nets.Tanh(), w_std=1.3, b_std=0.2),  # (Dense, Tanh) x 4: one scan
    _mixed_net(),
    nets.mlp(4, 1, weights="orthogonal"),  # any ensemble when every layer draws its weights
], ids=["mlp", "mixed", "orthogonal"])
def test_weights_draw_is_the_nets_forward_pass(net):
    key = jax.random.key(3)
    got = _draw(net, key, X, dense="weights")
    np.testing.assert_allclose(got, _forward(net, key, X), rtol=1e-12, atol=1e-13)


def test_law_and_weights_draws_agree_in_distribution():
    # Two-sample z-scores of E f_a f_b and E f_a^4 over 20000 networks each (same law).
    net = _mixed_net()
    draw = lambda dense, k: jax.jit(jax.vmap(  # noqa: E731
        lambda k: finite.draw(net, k, X, dense=dense)[:, 0]))(jax.random.split(k, 16_384))
    a, b = np.asarray(draw("law", jax.random.key(1))), np.asarray(draw("weights", jax.random.key(2)))
    for stat in (lambda f: (f[:, :, None] * f[:, None, :]).reshape(len(f), -1), lambda f: f**4):
        sa, sb = stat(a), stat(b)
        se = np.sqrt(sa.var(0) / len(sa) + sb.var(0) / len(sb))
        z = (sa.mean(0) - sb.mean(0)) / se
        assert np.all(np.abs(z) < Z), z


def test_draw_works_under_jit_and_keeps_the_dtype(dtype):
    out = _draw(nets.mlp(8, 3, nets.Relu()), jax.random.key(0), X.astype(dtype), dense="law")
    assert out.dtype == dtype and out.shape == (3, 1)


def test_layers_true_records_every_dense_layer_with_the_params_sampler():
    # Any spec for "params" (layers without a rule of their own are applied as they are);
    # "auto" falls back to it here (LayerNorm has no collapsed rule).
    net = nets.serial(nets.Dense(8), nets.LayerNorm(), nets.Dense(8), nets.Relu(), nets.Dense(1))
    kw = dict(progress=False, chunk_size=64)
    key = jax.random.key(4)
    x = X.astype(jnp.float32)
    rec = finite.output_samples(net, key, x, 64, layers=True, **kw)
    out = finite.output_samples(net, key, x, 64, method="params", **kw)
    assert rec.shape == (64, 3, 3)
    np.testing.assert_array_equal(rec[:, -1], out[:, :, 0])  # the readout is the last record
    with pytest.raises(ValueError, match="no Dense layer"):
        finite.output_samples(nets.Relu(), key, x, 4, layers=True, **kw)


def test_auto_asks_the_registry():
    key, x = jax.random.key(5), X.astype(jnp.float32)
    kw = dict(progress=False, chunk_size=32)
    ortho = nets.mlp(4, 1, weights="orthogonal")
    np.testing.assert_array_equal(finite.output_samples(ortho, key, x, 32, **kw),
                                  finite.output_samples(ortho, key, x, 32, method="params", **kw))
    with pytest.raises(TypeError, match=r"finite\.draw: Dense\(weights='orthogonal'\) has no "
                                        r"Gaussian conditional law .* at serial\[0\]\."):
        finite.output_samples(ortho, key, x, 32, method="collapsed", **kw)
    with pytest.raises(TypeError, match=r"no collapsed sampling rule for LayerNorm at "
                                        r"serial\[1\]\..*Views that support LayerNorm: "
                                        r"kernels\.analytic"):
        jax.eval_shape(lambda k: finite.draw(nets.serial(nets.Dense(3), nets.LayerNorm()), k,
                                             x), key)
    with pytest.raises(ValueError, match="dense must be one of"):
        finite.draw(ortho, key, x, dense="exact")


def test_collapsed_residual_net_covariance_is_the_analytic_kernel():
    # A residual net whose blocks are linear: f is Gaussian given the embedding at any width, so
    # E f f^T is exactly the analytic kernel (propagated by kernels.analytic).
    block = nets.residual(nets.Dense(32, 0.9, 0.2), scale=0.7)
    net = nets.serial(nets.Dense(32, 1.0, 0.1), block, block, block, nets.Dense(1, 1.0, 0.0))
    want = np.asarray(kernels.analytic(net, X).nngp)
    s = finite.output_samples(net, jax.random.key(6), X, 20_000, method="collapsed",
                              progress=False, chunk_size=20_000)[..., 0]
    cov = s.T @ s / len(s)
    se = np.sqrt(np.outer(np.diag(want), np.diag(want)) + want**2) / np.sqrt(len(s))
    assert np.all(np.abs(cov - want) < Z * se), (cov, want)


# ----------------------------------------------------------------------------- recursions


def test_net_vertex_reads_each_layer_with_its_own_activation():
    x = X[:2]
    net = nets.serial(nets.Dense(8, 1.2, 0.1), nets.Tanh(), nets.Dense(6, 0.9, 0.2), nets.Erf(),
                      nets.Dense(1, 1.1, 0.0))
    k, ex = finite.net_vertex(net, x)
    # by hand: K1 = C_b + C_W |x|^2/d, then the Var G recursion with each layer's activation
    kk = 0.01 + 1.44 * jnp.sum(x * x, -1) / 3
    vg = jnp.zeros_like(kk)
    for act, c_w, c_b, n in ((nets.Tanh(), 0.81, 0.04, 8), (nets.Erf(), 1.21, 0.0, 6)):
        s2, s4 = kernels.activation_moments(act, kk, (2, 4))
        chi = signal.chi_parallel(act, kk, c_w)
        kk, vg = c_b + c_w * s2, chi**2 * vg + c_w**2 * (s4 - s2**2) / n
    np.testing.assert_allclose(k, kk, rtol=1e-12)
    np.testing.assert_allclose(ex, 3 * vg / kk**2, rtol=1e-12)
    # A Dense right after a Dense is an identity activation between them.
    lin = finite.net_vertex(nets.serial(nets.Dense(5), nets.Dense(1)), x)
    ident = finite.net_vertex(nets.serial(nets.Dense(5), nets.Identity(), nets.Dense(1)), x)
    np.testing.assert_allclose(lin, ident, rtol=1e-14)
    # One Dense layer: Gaussian, no excess kurtosis.
    np.testing.assert_array_equal(finite.net_vertex(nets.Dense(3), x)[1], 0.0)


def test_recursion_errors_name_the_layer_and_its_path():
    x = X[:1]
    with pytest.raises(TypeError, match=r"finite\.recursions: no 1/n-recursion rule for "
                                        r"LayerNorm at serial\[1\]\..*serial\(Dense"):
        finite.net_vertex(nets.serial(nets.Dense(4), nets.LayerNorm(), nets.Dense(1)), x)
    with pytest.raises(TypeError, match=r"activation must follow a Dense layer"):
        finite.net_vertex(nets.serial(nets.Relu(), nets.Dense(1)), x)
    with pytest.raises(TypeError, match=r"ending in a Dense layer"):
        finite.net_vertex(nets.serial(nets.Dense(4), nets.Relu()), x)
    with pytest.raises(ValueError, match=r"serial\[2\]\. .*Gaussian"):
        finite.net_vertex(nets.serial(nets.Dense(4), nets.Relu(),
                                      nets.Dense(1, weights="sparse", density=0.5)), x)
    # The exact cumulants need no susceptibility (sign has none): sign(u)^2 = 1, so a Gaussian
    # readout of the N hidden units is exactly Gaussian, of variance 1.
    c = finite.net_output_cumulants(nets.serial(nets.Dense(3), nets.Sign(), nets.Dense(1)), x)
    np.testing.assert_allclose([c.variance[0], c.kurtosis[0]], [1.0, 0.0], atol=1e-12)
