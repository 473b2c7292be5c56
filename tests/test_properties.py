"""Hypothesis property tests: symmetry, positive semi-definiteness, ReLU homogeneity."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings, strategies as st

from widelimits import kernels, nets

ACTS = [nets.Relu(), nets.Erf(), nets.Tanh(), nets.Gelu(), nets.Abs(), nets.Sin(), nets.Sign(),
        nets.LeakyRelu(0.2), nets.RectifiedMonomial(2), nets.Softplus()]

nets_st = st.builds(
    lambda act, depth, w, b, param: nets.mlp(16, depth, act, w_std=w, b_std=b,
                                             parameterization=param),
    st.sampled_from(ACTS), st.integers(1, 4), st.floats(0.5, 2.0), st.floats(0.0, 1.0),
    st.sampled_from(["ntk", "standard"]))


def _x(seed, n, d=3, scale=1.0):
    return scale * jax.random.normal(jax.random.key(seed), (n, d), jnp.float64)


@settings(max_examples=25, deadline=None)
@given(net=nets_st, seed=st.integers(0, 2**16))
def test_symmetric_and_psd(net, seed):
    x1, x2 = _x(seed, 6), _x(seed + 1, 4)
    k12, k21 = kernels.analytic(net, x1, x2), kernels.analytic(net, x2, x1)
    np.testing.assert_allclose(k12.nngp, k21.nngp.T, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(k12.ntk, k21.ntk.T, rtol=1e-12, atol=1e-14)
    k = kernels.analytic(net, jnp.concatenate([x1, x2]))
    for mat in (k.nngp, k.ntk):
        eig = np.linalg.eigvalsh(np.asarray(mat))
        assert eig.min() >= -1e-10 * max(eig.max(), 1.0), eig


@settings(max_examples=25, deadline=None)
@given(depth=st.integers(1, 5), w=st.floats(0.5, 2.0), a=st.floats(0.1, 10.0),
       b=st.floats(0.1, 10.0), seed=st.integers(0, 2**16), param=st.sampled_from(["ntk", "standard"]))
def test_relu_kernels_are_positively_homogeneous(depth, w, a, b, seed, param):
    # Without biases, a ReLU network is positively homogeneous of degree 1 in its input, so both
    # kernels scale as K(a x1, b x2) = a b K(x1, x2).
    net = nets.mlp(16, depth, nets.Relu(), w_std=w, b_std=None, parameterization=param)
    x1, x2 = _x(seed, 5), _x(seed + 1, 3)
    k, ks = kernels.analytic(net, x1, x2), kernels.analytic(net, a * x1, b * x2)
    np.testing.assert_allclose(ks.nngp, a * b * k.nngp, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(ks.ntk, a * b * k.ntk, rtol=1e-11, atol=1e-14)


@settings(max_examples=15, deadline=None)
@given(net=nets_st, seed=st.integers(0, 2**16))
def test_cauchy_schwarz(net, seed):
    k = kernels.analytic(net, _x(seed, 5), _x(seed + 7, 4))
    bound = np.sqrt(np.outer(k.var1, k.var2))
    assert np.all(np.abs(np.asarray(k.nngp)) <= bound * (1 + 1e-12) + 1e-14)
