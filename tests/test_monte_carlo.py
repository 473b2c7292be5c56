"""Analytic NNGP/NTK against ensembles of finite networks.

Designs where the finite-width expectation equals the limit *exactly*, so the only error is
sampling error and the tolerance is a z-score: with one hidden layer the readout sees exactly
Gaussian pre-activations at any width, so E[f f'] = w^2 V(K) + b^2 and E[empirical NTK] = NTK.
For depth 2 the first hidden layer is made very wide (2048: bias O(1/2048), ~2% of the sampling
error) and the second narrow (the narrow layer adds no bias). The statistic per network is the
average over its k outputs, networks are iid, and we require |z| < 5 at every pair of inputs
(deterministic: fixed keys).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from widelimits import kernels, nets

from ._mc import ensemble_stats, z_scores

Z_MAX = 5.0

ACTIVATIONS = [
    nets.Relu(), nets.LeakyRelu(0.2), nets.Abs(), nets.ABRelu(-0.4, 1.3), nets.Erf(1.2, 0.8, 0.1),
    nets.Gelu(), nets.Sin(1.0, 1.3, 0.4), nets.Cos(0.9, 0.7, 0.2), nets.Tanh(), nets.Sigmoid(),
    nets.Softplus(), nets.Swish(), nets.Identity(), nets.Sign(), nets.RectifiedMonomial(1),
    nets.RectifiedMonomial(2), nets.RectifiedMonomial(3), nets.Monomial(2), nets.Monomial(3),
    nets.Exp(0.8, 0.4), nets.Elementwise(lambda x: jnp.cos(x) * x, name="x cos x"),
]


def _inputs():
    x = jax.random.normal(jax.random.key(7), (5, 3), jnp.float64)
    return jnp.concatenate([x, x[:1], -x[1:2]])  # include x1 == x2 and antiparallel pairs


SLOW = pytest.mark.slow  # exhaustive variants: `make test-all`


@pytest.mark.parametrize("act", ACTIVATIONS, ids=repr)
@pytest.mark.parametrize("param", ["ntk", pytest.param("standard", marks=SLOW)])
def test_nngp_one_hidden_layer(act, param):
    x = _inputs()
    net = nets.serial(nets.Dense(32, w_std=1.3, b_std=0.3, parameterization=param), act,
                      nets.Dense(8, w_std=1.1, b_std=0.2, parameterization=param))
    mean, se = ensemble_stats(net, x, jax.random.key(1), n_nets=1000)
    z = z_scores(mean, se, kernels.analytic(net, x).nngp)
    assert np.max(np.abs(z)) < Z_MAX, np.round(z, 1)


@pytest.mark.parametrize("act", [nets.Relu(), nets.RectifiedMonomial(2),
                                 *(pytest.param(a, marks=SLOW) for a in
                                   (nets.Erf(), nets.Tanh(), nets.Sign(), nets.Gelu()))], ids=repr)
def test_nngp_depth_two(act):
    # RectifiedMonomial(2) at depth >= 2 is where neural-tangents 0.6.5 returns NaN.
    x = _inputs()
    net = nets.serial(nets.Dense(2048, w_std=1.2, b_std=0.2), act, nets.Dense(16, w_std=1.1),
                      act, nets.Dense(4, b_std=0.1))
    mean, se = ensemble_stats(net, x, jax.random.key(2), n_nets=500, chunk=250)
    z = z_scores(mean, se, kernels.analytic(net, x).nngp)
    assert np.max(np.abs(z)) < Z_MAX, np.round(z, 1)


@pytest.mark.parametrize("act", [nets.Relu(), nets.Erf(0.9, 1.1, 0.2), nets.Sign(),
                                 *(pytest.param(a, marks=SLOW) for a in
                                   (nets.Tanh(), nets.Abs(), nets.RectifiedMonomial(2), nets.Sin()))],
                         ids=repr)
@pytest.mark.parametrize("param", ["ntk", "standard"])
def test_ntk_one_hidden_layer(act, param):
    x = _inputs()
    net = nets.serial(nets.Dense(32, w_std=1.2, b_std=0.4, parameterization=param), act,
                      nets.Dense(2, w_std=0.9, b_std=0.3, parameterization=param))
    mean, se = ensemble_stats(net, x, jax.random.key(3), n_nets=1000, ntk=True)
    z = z_scores(mean, se, kernels.analytic(net, x).ntk)
    assert np.max(np.abs(z)) < Z_MAX, np.round(z, 1)


def test_residual_and_layernorm_by_monte_carlo():
    # Width 256 in the hidden layers: the O(1/n) bias is ~0.4% vs ~6% sampling error.
    x = _inputs()
    net = nets.serial(nets.Dense(256, w_std=1.4, b_std=0.2), nets.LayerNorm(),
                      nets.residual(nets.Relu(), nets.Dense(256, w_std=1.3), scale=0.7),
                      nets.Erf(), nets.Dense(4, b_std=0.1))
    mean, se = ensemble_stats(net, x, jax.random.key(4), n_nets=500, chunk=250)
    z = z_scores(mean, se, kernels.analytic(net, x).nngp)
    assert np.max(np.abs(z)) < Z_MAX, np.round(z, 1)


def test_parallel_by_monte_carlo():
    # Every layer feeding a nonlinearity is >= 256 wide except the readouts of the summed
    # branches, which feed Tanh through exactly Gaussian (given the wide layers) Dense outputs.
    x = _inputs()
    branch = nets.serial(nets.Dense(256), nets.Erf(), nets.Dense(8))
    net = nets.serial(nets.Dense(256, w_std=1.1, b_std=0.1), nets.Relu(),
                      nets.parallel(nets.Dense(8, w_std=0.8), branch), nets.Tanh(),
                      nets.Dense(4))
    mean, se = ensemble_stats(net, x, jax.random.key(5), n_nets=500, chunk=250)
    z = z_scores(mean, se, kernels.analytic(net, x).nngp)
    assert np.max(np.abs(z)) < Z_MAX, np.round(z, 1)
