"""Gradients of the analytic NNGP/NTK: finite everywhere, correct where the kernel is smooth.

Every network goes through one jitted program ``_program``: the value and the gradient, with
respect to both the input ``x1`` and the spec (a pytree whose leaves are ``w_std``, ``b_std`` and
the activation parameters), of ``a * sum(nngp) + b * sum(ntk)`` with (a, b) = (1, 0) or (0, 1),
for ``x2=None`` and/or an explicit ``x2``. XLA compilation dominates the runtime (the gradient
program of a depth-3 LeakyReLU net takes ~10 s of CPU to compile), so each network is compiled
once, with only the ``x2`` forms it is assigned, and every check on it -- finite gradients at
singular inputs, finite differences at generic inputs -- reuses that program with inputs of the
same shapes. The networks form a covering design rather than a full product: every activation,
depths 1, 2 and 3, with (b_std > 0) and without (b_std=None) bias, and both parameterizations
each occur, and so do both ``x2`` forms.

Singular inputs: ``x1`` has rows a, b, 2.5 a, -a, and a zero row when every layer has a bias
(b_std > 0); the explicit ``x2`` is [copy of x1; 2.5 x1; -x1], so the pairs include x1 == x2,
parallel and antiparallel inputs.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from widelimits import kernels, nets

# Meant to keep the file on one xdist worker (make pytest runs -n 2 --dist loadgroup) so its tests
# share compiled programs and cached references. Note: with pytest 9.2 + xdist 3.8 loadgroup
# ignores groups (xdist renames item._nodeid, pytest 9 reads item._id); harmless, only slower.
pytestmark = pytest.mark.xdist_group("test_gradients")

D = 4  # input features
NNGP, NTK = (1.0, 0.0), (0.0, 1.0)
BOTH, NONE, EXPLICIT = ("none", "explicit"), ("none",), ("explicit",)


def _objective(net, x1, x2, weights):
    k = kernels.analytic(net, x1, x2)
    return weights[0] * jnp.sum(k.nngp) + weights[1] * jnp.sum(k.ntk)


@functools.partial(jax.jit, static_argnames=("modes",))
def _program(net, x1, x2, weights, modes):
    """{mode: (S, (dS/dnet, dS/dx1))} for mode "none" (x2=None) and/or "explicit" (x2)."""
    vg = jax.value_and_grad(_objective, argnums=(0, 1))
    return {m: vg(net, x1, None if m == "none" else x2, weights) for m in modes}


def _singular_inputs(with_zero_row):
    a, b = jax.random.normal(jax.random.key(0), (2, D), jnp.float64)
    last = jnp.zeros(D) if with_zero_row else jax.random.normal(jax.random.key(1), (D,))
    x1 = jnp.stack([a, b, 2.5 * a, -a, last])
    x2 = jnp.concatenate([x1 + 0.0, 2.5 * x1, -x1])  # explicit copy, parallel, antiparallel
    return x1, x2


def _generic_inputs(with_zero_row):
    """Same shapes as _singular_inputs, no two rows parallel (the kernel is smooth there)."""
    x1 = jax.random.normal(jax.random.key(2), (5, D), jnp.float64)
    if with_zero_row:
        x1 = x1.at[4].set(0.0)
    return x1, jax.random.normal(jax.random.key(3), (15, D), jnp.float64)


def _mlp(act, depth, b_std, param, width=8):
    kw = dict(b_std=b_std, parameterization=param)
    layers = []
    for i in range(depth):
        layers += [nets.Dense(width, w_std=1.3 - 0.1 * i, **kw), act]
    return nets.serial(*layers, nets.Dense(3, w_std=0.9, **kw))


# name: (activation, depth, b_std, parameterization, x2 forms).
MLPS = {
    "relu-d2-bias-ntk": (nets.Relu(), 2, 0.3, "ntk", EXPLICIT),
    "relu-d1-nobias-std": (nets.Relu(), 1, None, "standard", NONE),
    "leaky_relu-d1-nobias-std": (nets.LeakyRelu(0.2), 1, None, "standard", EXPLICIT),
    "abs-d1-bias-ntk": (nets.Abs(), 1, 0.2, "ntk", NONE),
    "sign-d3-nobias-ntk": (nets.Sign(), 3, None, "ntk", EXPLICIT),
    "relu^2-d2-bias-ntk": (nets.RectifiedMonomial(2), 2, 0.3, "ntk", EXPLICIT),
    "erf-d1-bias-std": (nets.Erf(1.1, 0.9, 0.1), 1, 0.3, "standard", BOTH),
    "gelu-d2-nobias-ntk": (nets.Gelu(), 2, None, "ntk", EXPLICIT),
    "tanh-d1-bias-std": (nets.Tanh(), 1, 0.2, "standard", NONE),
}
OTHERS = {"residual": EXPLICIT, "layernorm": NONE}
MODES = {**{k: v[-1] for k, v in MLPS.items()}, **OTHERS}


def _net(name):
    if name == "residual":
        return nets.serial(nets.Dense(8, w_std=1.2, b_std=0.2),
                           nets.residual(nets.Relu(), nets.Dense(8, w_std=1.1, b_std=0.1),
                                         scale=0.7),
                           nets.Dense(3, b_std=0.1))
    if name == "layernorm":
        return nets.serial(nets.Dense(8, w_std=1.2, b_std=0.3, parameterization="standard"),
                           nets.LayerNorm(), nets.Relu(),
                           nets.Dense(3, b_std=0.2, parameterization="standard"))
    return _mlp(*MLPS[name][:-1])


def _has_bias_everywhere(net):
    dense = [leaf for leaf in _layers(net) if isinstance(leaf, nets.Dense)]
    return all(d.b_std is not None and d.b_std > 0 for d in dense)


def _layers(layer):
    if isinstance(layer, nets.Serial):
        return [x for sub in layer.layers for x in _layers(sub)]
    if isinstance(layer, nets.Residual):
        return [layer, *_layers(layer.block)]
    return [layer]


ALL_NETS = list(MODES)


def _finite(tree):
    return all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree_util.tree_leaves(tree))


def _report(tree):
    paths = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [jax.tree_util.keystr(p) for p, leaf in paths if not bool(jnp.all(jnp.isfinite(leaf)))]


@functools.cache
def _cached_net(name):
    return _net(name)


# --------------------------------------------------------------------------------------------
# Finite gradients at x1 == x2, parallel, antiparallel and zero inputs.


@pytest.mark.parametrize("name", ALL_NETS)
def test_gradients_finite_at_singular_inputs(name):
    net = _cached_net(name)
    x1, x2 = _singular_inputs(_has_bias_everywhere(net))
    for label, weights in (("nngp", NNGP), ("ntk", NTK)):
        out = _program(net, x1, x2, jnp.array(weights), modes=MODES[name])
        for mode, (value, grads) in out.items():
            assert _finite(value), (name, label, mode, value)
            assert _finite(grads), (name, label, mode, _report(grads))
            # the spec gradient is a spec-shaped pytree (w_std, b_std, activation parameters)
            assert jax.tree_util.tree_structure(grads[0]) == jax.tree_util.tree_structure(net)


# --------------------------------------------------------------------------------------------
# Central finite differences where the kernel is smooth (float64).

H = 1e-5
FD_RTOL = 1e-6


def _fd(name, net, x1, x2, weights):
    """Central differences of S w.r.t. every entry of x1 and every leaf of the spec:
    {mode: (d/dspec leaves, d/dx1)}."""
    modes = MODES[name]
    value = lambda n, x: {m: float(v[0]) for m, v in _program(n, x, x2, weights, modes=modes).items()}
    diff = lambda plus, minus: {m: (plus[m] - minus[m]) / (2 * H) for m in modes}
    leaves, treedef = jax.tree_util.tree_flatten(net)
    d_spec = []
    for k in range(len(leaves)):
        shifted = [list(leaves), list(leaves)]
        shifted[0][k] += H
        shifted[1][k] -= H
        d_spec.append(diff(*(value(jax.tree_util.tree_unflatten(treedef, s), x1)
                             for s in shifted)))
    d_x1 = np.zeros((len(modes), *x1.shape))
    for i in range(x1.shape[0]):
        for j in range(x1.shape[1]):
            d = diff(value(net, x1.at[i, j].add(H)), value(net, x1.at[i, j].add(-H)))
            for mi, m in enumerate(modes):
                d_x1[mi, i, j] = d[m]
    return {m: ([d[m] for d in d_spec], d_x1[mi]) for mi, m in enumerate(modes)}


def _assert_close(got, fd, what):
    got, fd = np.asarray(got), np.asarray(fd)
    scale = np.max(np.abs(fd))
    np.testing.assert_allclose(got, fd, rtol=FD_RTOL, atol=FD_RTOL * scale, err_msg=what)


@pytest.mark.parametrize("name", ["relu-d1-nobias-std", "relu-d2-bias-ntk", "erf-d1-bias-std",
                                  "gelu-d2-nobias-ntk", "tanh-d1-bias-std", "residual",
                                  "layernorm"])
def test_gradient_matches_finite_differences(name):
    # Generic inputs (no two rows parallel): the kernels are smooth in x1 and in the spec.
    net = _cached_net(name)
    x1, x2 = _generic_inputs(_has_bias_everywhere(net))
    for label, weights in (("nngp", NNGP), ("ntk", NTK)):
        weights = jnp.array(weights)
        out = _program(net, x1, x2, weights, modes=MODES[name])
        fd = _fd(name, net, x1, x2, weights)
        for mode, (_, (g_spec, g_x1)) in out.items():
            _assert_close(g_x1, fd[mode][1], f"{name} {label} {mode}: d/dx1")
            _assert_close(jax.tree_util.tree_leaves(g_spec), fd[mode][0],
                          f"{name} {label} {mode}: d/dspec")


def test_relu_nngp_hyperparameter_gradient():
    # d NNGP / d (w_std, b_std) of every layer of a depth-2 ReLU net against finite differences,
    # at generic inputs and at the singular ones: the NNGP is smooth in (w_std, b_std) there too.
    name = "relu-d2-bias-ntk"
    net = _cached_net(name)
    assert len(jax.tree_util.tree_leaves(net)) == 6  # (w_std, b_std) x 3 Dense layers
    weights = jnp.array(NNGP)
    for x1, x2 in (_generic_inputs(True), _singular_inputs(True)):
        out = _program(net, x1, x2, weights, modes=MODES[name])
        fd = _fd(name, net, x1, x2, weights)
        for mode, (_, (g_spec, _)) in out.items():
            assert np.all(np.abs(fd[mode][0]) > 1e-3)  # not trivially zero
            _assert_close(jax.tree_util.tree_leaves(g_spec), fd[mode][0], f"relu nngp {mode}")


# --------------------------------------------------------------------------------------------
# jit and vmap.


def test_jit_matches_eager():
    net = _cached_net("relu-d2-bias-ntk")
    x1, x2 = _generic_inputs(True)
    eager = kernels.analytic(net, x1, x2)
    jitted = jax.jit(kernels.analytic)(net, x1, x2)
    for field in ("nngp", "ntk", "var1", "var2"):
        np.testing.assert_allclose(getattr(jitted, field), getattr(eager, field), rtol=1e-13,
                                   err_msg=field)


def test_vmap_over_inputs_gives_variances():
    net = _cached_net("relu-d2-bias-ntk")
    xs, _ = _generic_inputs(True)
    per_row = jax.vmap(lambda x: kernels.analytic(net, x[None]).nngp[0, 0])(xs)
    k = kernels.analytic(net, xs)
    np.testing.assert_allclose(per_row, k.var1, rtol=1e-12)
    np.testing.assert_allclose(per_row, jnp.diag(k.nngp), rtol=1e-12)


def test_vmap_over_w_std():
    x1, x2 = _generic_inputs(True)
    w_stds = jnp.array([0.5, 1.0, 1.7])

    def kernel(w):
        net = nets.serial(nets.Dense(8, w_std=w, b_std=0.1), nets.Relu(),
                          nets.Dense(1, w_std=w, b_std=0.1))
        k = kernels.analytic(net, x1, x2)
        return k.nngp, k.ntk

    nngp, ntk = jax.vmap(kernel)(w_stds)
    assert nngp.shape == ntk.shape == (3, *nngp.shape[1:])
    for i, w in enumerate(w_stds.tolist()):
        want = kernel(w)
        np.testing.assert_allclose(nngp[i], want[0], rtol=1e-12)
        np.testing.assert_allclose(ntk[i], want[1], rtol=1e-12)
