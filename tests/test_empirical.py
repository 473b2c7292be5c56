"""Empirical NTK/NNGP: every method against a brute-force jax.jacrev contraction, on our nets
(MLPs, residual, parallel, LayerNorm, standard parameterization) and flax linen/nnx models;
output modes, tiling, jit/vmap, float32/float64, errors; Monte Carlo kernels."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from widelimits import kernels, nets

from ._mc import z_scores
from .conftest import rtol_for

METHODS = ["jacobian", "ntvp", "structured", "auto"]


def brute_force(f, params, x1, x2):
    """Full (n1, n2, O, O) NTK by materialising whole-batch Jacobians with jax.jacrev."""
    out = lambda p, x: f(p, x).reshape(x.shape[0], -1)
    j1 = jax.jacrev(lambda p: out(p, x1))(params)
    j2 = jax.jacrev(lambda p: out(p, x2))(params)
    flat = lambda j: j.reshape(j.shape[:2] + (-1,))
    return sum(jnp.einsum("ikp,jlp->ijkl", flat(a), flat(b))
               for a, b in zip(jax.tree.leaves(j1), jax.tree.leaves(j2), strict=True))


def _x(n, shape=(4,), seed=0, dtype=jnp.float64):
    return jax.random.normal(jax.random.key(seed), (n, *shape), jnp.float64).astype(dtype)


OUR_NETS = {
    "mlp-relu": nets.mlp(16, 3, nets.Relu(), out_width=3, w_std=1.4, b_std=0.2),
    "mlp-erf-standard": nets.mlp(12, 2, nets.Erf(), out_width=2, w_std=1.2, b_std=0.3,
                                 parameterization="standard"),
    "resnet": nets.serial(
        nets.Dense(16, b_std=0.1), nets.LayerNorm(),
        *[nets.residual(nets.Relu(), nets.Dense(16, w_std=0.8, b_std=None), scale=0.5)] * 3,
        nets.parallel(nets.Dense(16), nets.serial(nets.Dense(16), nets.Tanh(), nets.Dense(16))),
        nets.Gelu(), nets.Dense(4, b_std=0.1)),
}


class _LinenCNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(6, (3, 3))(x))
        x = nn.tanh(nn.Conv(5, (2, 2), strides=2)(x))
        return nn.Dense(3)(x.mean(axis=(1, 2)))


class _LinenMLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.gelu(nn.Dense(20)(x))
        return nn.Dense(2)(nn.relu(nn.Dense(10)(x)))


class _NnxMLP(nnx.Module):
    def __init__(self, rngs):
        self.a = nnx.Linear(4, 12, param_dtype=jnp.float64, rngs=rngs)
        self.b = nnx.Linear(12, 3, param_dtype=jnp.float64, rngs=rngs)

    def __call__(self, x):
        return self.b(jnp.tanh(self.a(x)))


def _case(name, dtype):
    """(f, params, x1, x2) for a named model in ``dtype``."""
    cast = lambda tree: jax.tree.map(lambda a: a.astype(dtype), tree)
    if name in OUR_NETS:
        net = OUR_NETS[name]
        x1, x2 = _x(5, dtype=dtype), _x(4, seed=1, dtype=dtype)
        return net, cast(net.init(jax.random.key(2), x1.shape)), x1, x2
    if name == "linen-cnn":
        model = _LinenCNN()
        x1, x2 = _x(3, (6, 6, 2), dtype=dtype), _x(2, (6, 6, 2), seed=1, dtype=dtype)
    else:
        model = _LinenMLP()
        x1, x2 = _x(5, dtype=dtype), _x(4, seed=1, dtype=dtype)
    return model.apply, cast(model.init(jax.random.key(3), x1)), x1, x2


CASES = [*OUR_NETS, "linen-cnn", "linen-mlp"]


# float64 for every model; float32 (the same code path, looser tolerance) for two of them, to
# keep the suite's run time down.
DTYPE_CASES = [(name, jnp.float64) for name in CASES] + [
    ("mlp-relu", jnp.float32), ("linen-mlp", jnp.float32)]


@pytest.mark.parametrize("name, dtype", DTYPE_CASES,
                         ids=[f"{n}-{d.__name__}" for n, d in DTYPE_CASES])
def test_methods_match_brute_force_jacobian(name, dtype):
    f, params, x1, x2 = _case(name, dtype)
    apply = f.apply if isinstance(f, nets.Layer) else f
    ref = np.asarray(jax.jit(brute_force, static_argnums=0)(apply, params, x1, x2), np.float64)
    ref_tr = np.trace(ref, axis1=2, axis2=3) / ref.shape[-1]
    ref_11 = np.asarray(jax.jit(brute_force, static_argnums=0)(apply, params, x1, x1),
                        np.float64)
    ref_diag = np.einsum("iikl->ikl", ref_11)
    rtol = rtol_for(dtype, f64=1e-10, f32=2e-5)
    methods = ["jacobian", "ntvp", "structured"] if name in OUR_NETS else ["jacobian", "ntvp"]
    for method in methods:
        got = {
            "full": kernels.empirical_ntk(f, params, x1, x2, method=method, output="full"),
            "tiled trace": kernels.empirical_ntk(f, params, x1, x2, method=method, batch_size=2),
            "tiled diag": kernels.empirical_ntk(f, params, x1, method=method, output="full",
                                                diagonal=True, batch_size=2),
        }
        if method == "structured":  # x2=None reuses the x1 pass
            got["x2=None"] = kernels.empirical_ntk(f, params, x1, method=method)
        want = {"full": ref, "tiled trace": ref_tr, "tiled diag": ref_diag,
                "x2=None": np.trace(ref_11, axis1=2, axis2=3) / ref.shape[-1]}
        for key, value in got.items():
            assert value.dtype == dtype, (method, key)
            scale = np.abs(want[key]).max()
            np.testing.assert_allclose(value, want[key], rtol=0, atol=rtol * scale,
                                       err_msg=f"{method} {key}")


def test_nnx_module_uses_its_params():
    model = _NnxMLP(nnx.Rngs(0))
    x1, x2 = _x(4), _x(3, seed=1)
    graphdef, state = nnx.split(model, nnx.Param)
    ref = brute_force(lambda p, x: nnx.merge(graphdef, p)(x), state, x1, x2)
    for method in ["jacobian", "ntvp", "auto"]:
        got = kernels.empirical_ntk(model, None, x1, x2, method=method, output="full")
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12 * np.abs(ref).max())


@pytest.mark.parametrize("method", METHODS)
def test_jit_and_vmap_over_params(method):
    net = OUR_NETS["mlp-relu"]
    x = _x(4)
    keys = jax.random.split(jax.random.key(0), 3)
    params = jax.vmap(lambda k: net.init(k, x.shape))(keys)
    batched = jax.jit(jax.vmap(lambda p: kernels.empirical_ntk(net, p, x, method=method)))(params)
    for i in range(3):
        p = jax.tree.map(lambda a, i=i: a[i], params)
        ref = np.trace(brute_force(net.apply, p, x, x), axis1=2, axis2=3) / 3
        np.testing.assert_allclose(batched[i], ref, rtol=1e-10)


def test_auto_picks_structured_for_our_nets_and_a_cheap_method_otherwise():
    from widelimits.kernels import _empirical

    net = OUR_NETS["mlp-relu"]
    x = _x(4)
    params = net.init(jax.random.key(0), x.shape)
    assert _empirical._choose(net.apply, params, net, x, None, "trace", False, 64) == "structured"
    # A plain function of the same net: not structured; the Jacobian fits in memory and costs
    # fewer FLOPs than n1 n2 O forward passes.
    assert _empirical._choose(net.apply, params, None, x, None, "trace", False, 64) == "jacobian"
    costs = _empirical._costs(net.apply, params, x, None, "trace", False, 64)
    # Forward FLOPs of one input: 2 per weight of the dense layers plus elementwise work.
    dense = 2 * (4 * 16 + 16 * 16 * 2 + 16 * 3)
    flops_jac = costs["jacobian"][0]
    n_params = sum(a.size for a in jax.tree.leaves(params))
    contraction = 16 * 3 * n_params  # n1 n2 O P
    assert 3 * 4 * 3 * dense + contraction <= flops_jac <= 3 * 4 * 3 * 2 * dense + contraction


def test_empirical_nngp_is_the_readout_expectation():
    # Brute force: the mean of f(x1) f(x2)^T over many readout layers, others fixed; the readout
    # part of the NTK equals the NNGP estimate for the NTK parameterization too.
    net = nets.mlp(32, 2, nets.Relu(), out_width=1, w_std=1.3, b_std=0.4)
    x1, x2 = _x(4), _x(3, seed=1)
    params = net.init(jax.random.key(0), x1.shape)
    body = nets.serial(*net.layers[:-1])
    phi1, phi2 = body.apply(params[:-1], x1), body.apply(params[:-1], x2)
    want = 1.3**2 * phi1 @ phi2.T / 32 + 0.4**2
    np.testing.assert_allclose(kernels.empirical_nngp(net, params, x1, x2), want, rtol=1e-12)
    # A generic feature map: the feature covariance over its outputs.
    feats = lambda p, x: body.apply(p, x)
    np.testing.assert_allclose(kernels.empirical_nngp(feats, params[:-1], x1, x2),
                               phi1 @ phi2.T / 32, rtol=1e-12)


def test_monte_carlo_mean_equals_average_of_per_network_kernels():
    net = nets.mlp(8, 2, nets.Erf(), out_width=2, b_std=0.1)
    x1, x2 = _x(3), _x(2, seed=1)
    key = jax.random.key(7)
    mc = kernels.monte_carlo(net, key, x1, x2, n_samples=10, batch_size=4)
    ps = jax.vmap(lambda k: net.init(k, x1.shape))(jax.random.split(key, 10))
    per_net = jax.jit(jax.vmap(lambda p: (
        jnp.trace(brute_force(net.apply, p, x1, x2), axis1=2, axis2=3) / 2,
        kernels.empirical_nngp(net, p, x1, x2), jnp.diag(kernels.empirical_nngp(net, p, x1)))))
    ntk, nngp, var1 = (np.mean(a, axis=0) for a in per_net(ps))
    np.testing.assert_allclose(mc.ntk, ntk, rtol=1e-12)
    np.testing.assert_allclose(mc.nngp, nngp, rtol=1e-12)
    np.testing.assert_allclose(mc.var1, var1, rtol=1e-12)


@pytest.mark.parametrize("act", [nets.Relu(), nets.Erf()], ids=repr)
def test_monte_carlo_converges_to_the_analytic_kernels(act):
    # One hidden layer: the finite-width expectation of both estimators equals the limit exactly
    # (the readout is independent of the hidden layer), so |z| < 5 is pure sampling error.
    net = nets.mlp(32, 1, act, out_width=2, w_std=1.3, b_std=0.2)
    x = _x(4, (3,), seed=5)
    key = jax.random.key(11)
    n = 256
    ps = jax.vmap(lambda k: net.init(k, x.shape))(jax.random.split(key, n))
    per_net = jax.vmap(lambda p: jnp.stack([kernels.empirical_nngp(net, p, x),
                                            kernels.empirical_ntk(net, p, x)]))(ps)
    stderr = np.asarray(per_net).std(0, ddof=1) / np.sqrt(n)
    mc = kernels.monte_carlo(net, key, x, n_samples=n, batch_size=64)
    limit = kernels.analytic(net, x)
    for got, se, want in [(mc.nngp, stderr[0], limit.nngp), (mc.ntk, stderr[1], limit.ntk)]:
        z = z_scores(np.asarray(got), se, np.asarray(want))
        assert np.abs(z).max() < 5, z


def test_structured_never_forms_the_jacobian():
    # The jaxpr of the structured method holds no array as large as one input's Jacobian
    # (O x P numbers); the jacobian method's does.
    net = nets.mlp(256, 2, nets.Relu(), out_width=4)
    x = _x(3)
    params = net.init(jax.random.key(0), x.shape)
    n_params = sum(a.size for a in jax.tree.leaves(params))

    def largest(method):
        jaxpr = jax.make_jaxpr(lambda p: kernels.empirical_ntk(net, p, x, method=method))(params)
        sizes = [int(np.prod(v.aval.shape)) for eqn in _all_eqns(jaxpr.jaxpr) for v in eqn.outvars
                 if hasattr(v.aval, "shape")]
        return max(sizes)

    assert largest("jacobian") >= 4 * n_params // 2
    assert largest("structured") < n_params // 2


def _all_eqns(jaxpr):
    for eqn in jaxpr.eqns:
        yield eqn
        for v in eqn.params.values():
            inner = getattr(v, "jaxpr", v)
            if hasattr(inner, "eqns"):
                yield from _all_eqns(inner)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(method="fast"), ValueError, r"method must be one of .* got 'fast'"),
    (dict(output="diag"), ValueError, r"output must be one of .* got 'diag'"),
    (dict(batch_size=0), ValueError, r"batch_size must be a positive int or None, got 0"),
    (dict(diagonal=True, x2=np.zeros((2, 4))), ValueError, r"diagonal=True .* x2 must be None"),
    (dict(x1=np.zeros(4)), ValueError, r"x1 must be a batch of inputs of shape \(n, \.\.\.\), got "
                                       r"shape \(4,\)"),
    (dict(x2=np.zeros((2, 5))), ValueError, r"same per-input shape; x1 has \(3, 4\), x2 has"),
    (dict(x1=np.zeros((3, 4), int)), TypeError, r"x1 must be a floating-point array"),
])
def test_errors(kwargs, exc, match):
    net = OUR_NETS["mlp-relu"]
    args = dict(x1=np.zeros((3, 4)), x2=None)
    args.update({k: kwargs.pop(k) for k in ("x1", "x2") if k in kwargs})
    params = net.init(jax.random.key(0), (3, 4))
    with pytest.raises(exc, match=match):
        kernels.empirical_ntk(net, params, args["x1"], args["x2"], **kwargs)


def test_structured_needs_our_spec():
    model = _LinenMLP()
    x = _x(3)
    with pytest.raises(ValueError, match="method='structured' needs a widelimits network spec"):
        kernels.empirical_ntk(model.apply, model.init(jax.random.key(0), x), x,
                              method="structured")
    with pytest.raises(ValueError, match="params is None"):
        kernels.empirical_ntk(model.apply, None, x)
    with pytest.raises(TypeError, match="f must be a callable"):
        kernels.empirical_ntk(3, {}, x)


def test_feature_kernels_are_the_activations_gram_matrices(dtype):
    # Brute force: run the layers one by one and take phi(h^l) phi(h^l)^T / N after each
    # activation; residual blocks and a parallel branch record theirs in forward order.
    net = nets.serial(nets.Dense(7), nets.Tanh(), nets.residual(nets.Relu(), nets.Dense(7)),
                      nets.Dense(5), nets.Erf(), nets.Dense(2))
    x = jax.random.normal(jax.random.key(0), (4, 3), dtype)
    x2 = jax.random.normal(jax.random.key(1), (3, 3), dtype)
    p = jax.tree.map(lambda a: a.astype(dtype), net.init(jax.random.key(2), x.shape))

    def manual(x):
        h1 = nets.Dense(7).apply(p[0], x)
        a1 = jnp.tanh(h1)
        a2 = jax.nn.relu(a1)
        h3 = nets.Dense(5).apply(p[3], a1 + nets.Dense(7).apply(p[2][1], a2))
        return [a1, a2, jax.scipy.special.erf(h3)]

    got = kernels.feature_kernels(net, p, x, x2)
    want = [a @ b.T / a.shape[1] for a, b in zip(manual(x), manual(x2), strict=True)]
    assert got.shape == (3, 4, 3)
    np.testing.assert_allclose(got, np.stack(want), rtol=rtol_for(dtype, 1e-12, 1e-5))
    erf = manual(x)[2]
    np.testing.assert_allclose(kernels.feature_kernels(net, p, x)[2], erf @ erf.T / 5,
                               rtol=rtol_for(dtype, 1e-12, 1e-5))
    with pytest.raises(ValueError, match="no activation"):
        kernels.feature_kernels(nets.Dense(2), p[0], x)
