"""Convolution, pooling and flattening specs: finite forward passes against explicit loops.

Oracle: the definitions written out position by position in NumPy (every output position, every
filter offset), with "SAME" padding placed as TensorFlow and neural-tangents place it (total
padding max((out - 1) s + k - n, 0), the smaller half before) and "CIRCULAR" reading positions
modulo the size.
"""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from widelimits import compare, dynamics, kernels, nets

from .conftest import rtol_for


def _offset(n, k, s, padding):
    """(output size, index of output 0's first window position) of one spatial axis."""
    if padding == "VALID":
        return -(-(n - k + 1) // s), 0
    out = -(-n // s)
    return out, -(max((out - 1) * s + k - n, 0) // 2)


def _window_sum(x, window, strides, padding, weight):
    """sum_{b in window} weight(b, x[i, pos + b]) per output position, batch i first."""
    spatial = x.shape[1:-1]
    geo = [_offset(n, k, s, padding) for n, k, s in zip(spatial, window, strides, strict=True)]
    out = np.zeros((x.shape[0], *[o for o, _ in geo], weight(None, None)), x.dtype)
    for a in itertools.product(*[range(o) for o, _ in geo]):
        for b in itertools.product(*[range(k) for k in window]):
            pos = [s * ai + lo + bi for ai, bi, s, (_, lo) in
                   zip(a, b, strides, geo, strict=True)]
            if padding == "CIRCULAR":
                pos = [p % n for p, n in zip(pos, spatial, strict=True)]
            elif any(p < 0 or p >= n for p, n in zip(pos, spatial, strict=True)):
                continue                                             # a zero of the padding
            out[(slice(None), *a)] += weight(b, x[(slice(None), *pos)])
    return out


def _conv_loops(conv, params, x):
    w = np.asarray(params["W"], np.float64)
    z = _window_sum(np.asarray(x, np.float64), conv.filter_shape, conv.strides, conv.padding,
                    lambda b, v: w.shape[-1] if b is None else v @ w[b])
    b = np.asarray(params.get("b", 0.0), np.float64)
    if conv.parameterization == "standard":
        return z + b
    fan_in = x.shape[-1] * math.prod(conv.filter_shape)
    return conv.w_std / math.sqrt(fan_in) * z + (conv.b_std or 0.0) * b


CONVS = [
    nets.Conv(3, (3,), padding="VALID"),
    nets.Conv(3, (4,), strides=(2,), padding="SAME", b_std=0.5),
    nets.Conv(2, (3,), strides=(3,), padding="CIRCULAR", w_std=1.3, b_std=0.2),
    nets.Conv(3, (3, 2), padding="SAME", w_std=0.7, b_std=None),
    nets.Conv(2, (2, 3), strides=(2, 1), padding="CIRCULAR", b_std=0.3,
              parameterization="standard"),
    nets.Conv(4, (3, 3), strides=(1, 2), padding="VALID", w_std=1.5, b_std=0.1,
              parameterization="standard"),
]


@pytest.mark.parametrize("conv", CONVS, ids=lambda c: f"{len(c.filter_shape)}d-{c.padding}-"
                         f"{c.strides}-{c.parameterization}")
def test_conv_is_the_sum_over_filter_offsets(conv, dtype):
    s = len(conv.filter_shape)
    x = jax.random.normal(jax.random.key(1), (2, *(7, 5)[:s], 3), dtype)
    params = conv.init(jax.random.key(2), x.shape, dtype)
    z = conv.apply(params, x)
    assert z.dtype == dtype and z.shape == conv.output_shape(x.shape)
    np.testing.assert_allclose(z, _conv_loops(conv, params, x), rtol=rtol_for(dtype),
                               atol=rtol_for(dtype))
    # extra leading batch axes, or none, are the same convolution
    np.testing.assert_allclose(conv.apply(params, x[None]).reshape(z.shape), z, rtol=1e-6)
    np.testing.assert_allclose(conv.apply(params, x[1]), z[1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("pool, scale", [
    (nets.AvgPool((2,), strides=(2,)), 1 / 2),
    (nets.SumPool((3,), padding="SAME"), 1.0),
    (nets.AvgPool((2, 3), strides=(1, 2), padding="SAME"), 1 / 6),
    (nets.SumPool((3, 2), strides=(2, 2), padding="CIRCULAR"), 1.0),
], ids=["avg-1d-valid", "sum-1d-same", "avg-2d-same", "sum-2d-circular"])
def test_window_pools_sum_or_average_each_window(pool, scale):
    # neural-tangents' AvgPool (normalize_edges=False): padded zeros count in the mean.
    s = len(pool.window_shape)
    x = jax.random.normal(jax.random.key(3), (2, *(6, 5)[:s], 3), jnp.float64)
    got = pool.apply(pool.init(jax.random.key(0), x.shape), x)
    want = scale * _window_sum(np.asarray(x), pool.window_shape, pool.strides, pool.padding,
                               lambda b, v: 3 if b is None else v)
    assert got.shape == pool.output_shape(x.shape)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_global_pools_and_flatten():
    x = jax.random.normal(jax.random.key(4), (3, 4, 5, 2), jnp.float64)
    xn = np.asarray(x)
    for layer, want in [(nets.GlobalAvgPool(), xn.mean(axis=(1, 2))),
                        (nets.GlobalSumPool(), xn.sum(axis=(1, 2))),
                        (nets.Flatten(), np.stack([xi.ravel() for xi in xn]))]:
        got = layer.apply(layer.init(jax.random.key(0), x.shape), x)
        assert got.shape == layer.output_shape(x.shape) == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12)


def _cnn(padding="SAME"):
    return nets.serial(nets.Conv(4, (3, 3), padding=padding, b_std=0.1), nets.Relu(),
                       nets.AvgPool((2, 2), strides=(2, 2)), nets.Conv(4, (2, 2), strides=(2, 2)),
                       nets.Erf(), nets.Flatten(), nets.Dense(2))


def test_cnn_shapes_jit_vmap_grad(dtype):
    net = _cnn()
    x = jax.random.normal(jax.random.key(5), (3, 8, 8, 3), dtype)
    params = jax.tree.map(lambda p: p.astype(dtype), net.init(jax.random.key(6), x.shape))
    y = net.apply(params, x)
    assert y.shape == net.output_shape(x.shape) == (3, 2) and y.dtype == dtype
    np.testing.assert_allclose(jax.jit(net.apply)(params, x), y, rtol=rtol_for(dtype))
    per_input = jax.vmap(lambda xi: net.apply(params, xi[None])[0])(x)
    np.testing.assert_allclose(per_input, y, rtol=rtol_for(dtype), atol=rtol_for(dtype))
    g = jax.grad(lambda p: jnp.sum(net.apply(p, x) ** 2))(params)
    assert all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree.leaves(g))
    # float64: a central difference along the first conv's weights; float32: the float64 gradient
    d = jax.random.normal(jax.random.key(7), params[0]["W"].shape, jnp.float64)
    p64, x64 = jax.tree.map(lambda a: a.astype(jnp.float64), params), x.astype(jnp.float64)
    loss = lambda w: jnp.sum(net.apply((dict(p64[0], W=w),) + tuple(p64[1:]), x64) ** 2)  # noqa: E731
    if dtype == jnp.float64:
        want = (loss(p64[0]["W"] + 1e-6 * d) - loss(p64[0]["W"] - 1e-6 * d)) / 2e-6
    else:
        want = jnp.vdot(jax.grad(loss)(p64[0]["W"]), d)
    np.testing.assert_allclose(jnp.vdot(g[0]["W"].astype(jnp.float64), d), want,
                               rtol=rtol_for(dtype, f64=1e-6, f32=1e-3))


def test_empirical_ntk_of_a_cnn_every_method():
    # The Jacobian contraction written out here is the oracle.
    net = _cnn("CIRCULAR")
    x1 = jax.random.normal(jax.random.key(8), (3, 6, 6, 2), jnp.float64)
    x2 = jax.random.normal(jax.random.key(9), (2, 6, 6, 2), jnp.float64)
    params = net.init(jax.random.key(10), x1.shape)
    j1, j2 = (jax.jacrev(lambda p, x=x: net.apply(p, x))(params) for x in (x1, x2))
    want = sum(np.einsum("iaP,jbP->ijab", a.reshape(3, 2, -1), b.reshape(2, 2, -1))
               for a, b in zip(jax.tree.leaves(j1), jax.tree.leaves(j2), strict=True))
    want = np.einsum("ijaa->ij", want) / 2
    for method in ("jacobian", "ntvp", "structured", "auto"):
        got = kernels.empirical_ntk(net, params, x1, x2, method=method)
        np.testing.assert_allclose(got, want, rtol=1e-10, err_msg=method)


def test_analytic_conv_on_inputs_without_spatial_axes_names_the_layer():
    with pytest.raises(ValueError, match=r"Conv serial\[0\]\..*2 spatial axes.*without spatial"):
        kernels.analytic(_cnn(), jnp.ones((2, 8 * 8 * 3)))


@pytest.mark.parametrize("make, match", [
    (lambda: nets.Conv(3, (3,), padding="FULL"), "padding must be one of"),
    (lambda: nets.Conv(3, (3, 3), strides=(1,)), "one entry per spatial axis"),
    (lambda: nets.Conv(0, (3,)), "features must be a positive int"),
    (lambda: nets.Conv(3, (0,)), r"filter_shape\[0\] must be a positive int"),
    (lambda: nets.Conv(3, "abc"), "filter_shape"),
    (lambda: nets.AvgPool((2,), strides=(1, 1)), "one entry per spatial axis"),
    (lambda: nets.Conv(3, (5,)).output_shape((2, 4, 1)), "does not fit"),
    (lambda: nets.Conv(3, (3, 3)).output_shape((4, 3)), "2 spatial axes"),
    (lambda: nets.GlobalAvgPool().output_shape((4, 3)), "at least one spatial axis"),
    (lambda: nets.Conv(3, (2,)).apply(nets.Conv(3, (2,)).init(jax.random.key(0), (1, 4, 2)),
                                      jnp.ones((1, 4, 5))), "5 channels"),
])
def test_bad_arguments_say_what_is_wrong(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_monte_carlo_and_training_of_a_cnn():
    # monte_carlo is the mean of the members' kernels (jax.random.split(key, n) draws them);
    # dynamics.train is plain gradient descent on 1/2 sum (f - y)^2 / y.size, written out here.
    net = nets.serial(nets.Conv(4, (3,), padding="SAME"), nets.Relu(), nets.GlobalAvgPool(),
                      nets.Dense(1))
    x = jax.random.normal(jax.random.key(0), (3, 5, 2), jnp.float64)
    y = jnp.sin(x[:, 0, :1])
    members = [net.init(k, x.shape) for k in jax.random.split(jax.random.key(1), 4)]
    mc = kernels.monte_carlo(net, jax.random.key(1), x, n_samples=4)
    np.testing.assert_allclose(mc.ntk, np.mean([kernels.empirical_ntk(net, p, x, method="jacobian")
                                                for p in members], axis=0), rtol=1e-10)
    res = dynamics.train(net, members[0], x, y, optax.sgd(0.5), 3, progress=False)
    loss = lambda p: 0.5 * jnp.sum((net.apply(p, x) - y) ** 2) / y.size  # noqa: E731
    p = members[0]
    for _ in range(3):
        p = jax.tree.map(lambda a, g: a - 0.5 * g, p, jax.grad(loss)(p))
    np.testing.assert_allclose(res.pred_train[-1], net.apply(p, x), rtol=1e-10)
    assert res.loss[-1] < res.loss[0]


@pytest.mark.slow
def test_kernel_convergence_of_cnn_and_attention_nets():
    # The deviation of the empirical NNGP/NTK from the analytic limit is a fluctuation of
    # order width^-1/2: the fitted exponent is -1/2 within 3 standard errors of the fit.
    x = jax.random.normal(jax.random.key(0), (4, 6, 2), jnp.float64)
    cnn = lambda n: nets.serial(nets.Conv(n, (3,), padding="SAME"), nets.Relu(),  # noqa: E731
                                nets.Conv(n, (3,), padding="CIRCULAR"), nets.Relu(),
                                nets.GlobalAvgPool(), nets.Dense(1))
    att = lambda n: nets.serial(nets.Dense(n), nets.GlobalSelfAttention(n, n, n, 2),  # noqa: E731
                                nets.Relu(), nets.Flatten(), nets.Dense(1))
    for make in (cnn, att):
        res = compare.kernel_convergence(make, [16, 64, 256], x, jax.random.key(1), n_seeds=6,
                                         progress=False)
        for kind, fit in res.fits.items():
            assert abs(fit.exponent + 0.5) < 3 * fit.stderr, (kind, fit)
