"""kernels.gaussian_expectation against closed-form moments and adaptive quadrature."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy import integrate
from scipy.special import factorial2

from widelimits import kernels

from .conftest import rtol_for


def test_even_moments_are_double_factorials(dtype):
    q = jnp.asarray([0.3, 1.0, 2.5], dtype)
    for k in (1, 2, 3, 5):
        got = kernels.gaussian_expectation(lambda x, k=k: x ** (2 * k), q)
        want = factorial2(2 * k - 1) * np.asarray(q, np.float64) ** k
        np.testing.assert_allclose(got, want, rtol=rtol_for(dtype, 1e-12, 1e-5))
        assert got.dtype == dtype


def test_smooth_function_matches_adaptive_quadrature():
    for q in (0.1, 1.0, 4.0):
        want = integrate.quad(lambda z, q=q: np.tanh(np.sqrt(q) * z) ** 2 * np.exp(-z * z / 2)
                              / np.sqrt(2 * np.pi), -np.inf, np.inf, epsabs=1e-14)[0]
        got = kernels.gaussian_expectation(lambda x: jnp.tanh(x) ** 2, jnp.float64(q))
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_gradient_in_the_variance_is_stein():
    # d/dq E[f(sqrt(q) z)] = E[f''(sqrt(q) z)] / 2 (Price / Stein); for f = x^4: 6 q.
    g = jax.grad(lambda q: kernels.gaussian_expectation(lambda x: x**4, q))(jnp.float64(1.7))
    np.testing.assert_allclose(g, 6 * 1.7, rtol=1e-12)
    batched = jax.jit(jax.vmap(lambda q: kernels.gaussian_expectation(jnp.cos, q)))
    q = jnp.linspace(0.0, 3.0, 7)
    np.testing.assert_allclose(batched(q), np.exp(-np.asarray(q) / 2), rtol=1e-12)
