"""Reference architectures (nets.myrtle, nets.wide_resnet): their layer structure as in the papers,
finite forward passes, and their infinite-width kernels (finite, symmetric, PSD, and the NNGP of
wide finite networks by Monte Carlo).

Oracle for the kernels: the mean over S random initialisations of the empirical NNGP (the
expectation over the readout of f(x) f(x')ᵀ) of width-n networks, within 4 standard errors of the
mean plus the O(L/n) finite-width bias of the mean kernel of an L-layer network (Yaida 2020;
Hanin & Nica 2020), allowed as (L/n)·|K|. Tiny inputs (4x4 pixels) keep the compile and run
times small.
"""

import math

import jax
import numpy as np
import pytest

from widelimits import kernels, nets


def _kinds(layer):
    """Every leaf layer of a spec, in order (descending into serial/parallel/residual)."""
    if isinstance(layer, nets.Serial):
        return [k for sub in layer.layers for k in _kinds(sub)]
    if isinstance(layer, nets.Parallel):
        return [k for sub in layer.branches for k in _kinds(sub)]
    if isinstance(layer, nets.Residual):
        return _kinds(layer.block)
    return [layer]


def _count(layer, kind):
    return sum(isinstance(k, kind) for k in _kinds(layer))


@pytest.mark.parametrize("depth", [5, 7, 10])
def test_myrtle_has_the_papers_layers(depth):
    net = nets.myrtle(depth, width=32, out_width=10)
    layers = net.layers
    # Shankar et al. 2020, Fig. 2: convs per stage (2, 1, 1), (2, 2, 2), (3, 3, 3), each conv
    # followed by a ReLU, 2x2 average pooling between stages, global pooling and a readout.
    stages, current = [], 0
    for layer in layers:
        if isinstance(layer, nets.Conv):
            current += 1
        elif isinstance(layer, nets.AvgPool | nets.GlobalAvgPool):
            stages.append(current)
            current = 0
    assert tuple(stages) == {5: (2, 1, 1), 7: (2, 2, 2), 10: (3, 3, 3)}[depth]
    assert sum(stages) + 1 == depth                      # the depth counts convs and readout
    convs = [layer for layer in layers if isinstance(layer, nets.Conv)]
    assert all(c.filter_shape == (3, 3) and c.padding == "SAME" and c.strides == (1, 1)
               and c.features == 32 for c in convs)
    assert all(isinstance(b, nets.Relu) for a, b in zip(layers, layers[1:], strict=False)
               if isinstance(a, nets.Conv))
    pools = [layer for layer in layers if isinstance(layer, nets.AvgPool)]
    assert len(pools) == 2 and all(p.window_shape == (2, 2) and p.strides == (2, 2)
                                   for p in pools)
    assert isinstance(layers[-2], nets.GlobalAvgPool) and isinstance(layers[-1], nets.Dense)
    assert net.output_shape((3, 8, 8, 1)) == (3, 10)
    np.testing.assert_allclose(convs[0].w_std, math.sqrt(2))


@pytest.mark.parametrize("depth, blocks", [(10, 1), (16, 2), (28, 4)])
def test_wide_resnet_has_the_readme_layers(depth, blocks):
    net = nets.wide_resnet(depth, width_factor=2, channels=4, out_width=3)
    first, *groups, pool, readout = net.layers
    assert isinstance(first, nets.Conv) and first.features == 4
    assert isinstance(pool, nets.GlobalAvgPool) and isinstance(readout, nets.Dense)
    assert len(groups) == 3
    for group, (channels, stride) in zip(groups, [(8, 1), (16, 2), (32, 2)], strict=True):
        assert len(group.layers) == blocks
        head, *rest = group.layers
        # The first block of a group: a 3x3 Conv shortcut with the group's stride.
        assert isinstance(head, nets.Parallel)
        main, shortcut = head.branches
        assert isinstance(shortcut, nets.Conv) and shortcut.strides == (stride, stride)
        assert [type(k).__name__ for k in main.layers] == ["Relu", "Conv", "Relu", "Conv"]
        assert main.layers[1].strides == (stride, stride) and main.layers[3].strides == (1, 1)
        assert all(isinstance(b, nets.Residual) for b in rest)     # identity shortcuts
        assert {c.features for c in _kinds(group) if isinstance(c, nets.Conv)} == {channels}
    # WRN-depth counts the convolutions: the first, two per block, the group shortcuts: 6n + 4.
    assert _count(net, nets.Conv) == depth
    assert net.output_shape((2, 8, 8, 1)) == (2, 3)
    assert net.output_shape((2, 32, 32, 3)) == (2, 3)


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="depth must be one of"):
        nets.myrtle(6)
    with pytest.raises(TypeError, match="width"):
        nets.myrtle(5, width=2.5)
    with pytest.raises(ValueError, match="parameterization"):
        nets.myrtle(5, parameterization="mup")
    with pytest.raises(ValueError, match="6n \\+ 4"):
        nets.wide_resnet(12)
    with pytest.raises(ValueError, match="width_factor"):
        nets.wide_resnet(10, width_factor=0)


X = jax.random.normal(jax.random.key(0), (3, 4, 4, 1))
MYRTLE = nets.myrtle(5, width=128)      # the MC's width; its analytic kernel does not depend on it
WRN = nets.wide_resnet(10, channels=128)


def test_finite_wide_resnet_runs_on_images():
    # (The finite Myrtle runs in the Monte Carlo test below.)
    net = nets.wide_resnet(10, channels=2, out_width=2)
    x = jax.random.normal(jax.random.key(1), (2, 8, 8, 3))
    y = jax.jit(net.apply)(net.init(jax.random.key(2), x.shape), x)
    assert y.shape == (2, 2) and np.all(np.isfinite(y))


def _check_kernel(k):
    for name in ("nngp", "ntk"):
        a = np.asarray(getattr(k, name))
        assert a.shape == (3, 3) and np.all(np.isfinite(a)), name
        np.testing.assert_allclose(a, a.T, rtol=1e-12, atol=1e-15)
        assert np.linalg.eigvalsh(a).min() > -1e-12 * np.abs(a).max(), name
    assert np.all(np.asarray(k.ntk).diagonal() > np.asarray(k.nngp).diagonal())


def _monte_carlo(net, n_nets):
    """Mean and standard error over ``n_nets`` networks of the empirical NNGP on ``X``
    (networks one after another in one compiled ``lax.map``: conv weights are not batched)."""
    one = lambda key: kernels.empirical_nngp(net, net.init(key, X.shape), X)  # noqa: E731
    ks = np.asarray(jax.jit(lambda keys: jax.lax.map(one, keys))(
        jax.random.split(jax.random.key(3), n_nets)))
    return ks.mean(0), ks.std(0, ddof=1) / math.sqrt(n_nets)


def _agrees(mean, stderr, limit, depth, width):
    tol = 4 * stderr + depth / width * np.abs(limit)
    assert np.all(np.abs(mean - limit) <= tol), ((mean - limit) / stderr, limit)


@pytest.mark.slow
def test_myrtle_kernel_is_psd_and_matches_wide_networks():
    k = kernels.analytic(MYRTLE, X)
    _check_kernel(k)
    mean, stderr = _monte_carlo(MYRTLE, 32)
    _agrees(mean, stderr, np.asarray(k.nngp), 5, 128)


def test_wide_resnet_kernel_is_psd():
    _check_kernel(kernels.analytic(WRN, X))


@pytest.mark.slow
def test_wide_resnet_kernel_matches_wide_networks():
    mean, stderr = _monte_carlo(WRN, 48)
    _agrees(mean, stderr, np.asarray(kernels.analytic(WRN, X).nngp), 10, 128)
