"""dynamics.linearize / dynamics.quadratic against brute-force Taylor polynomials."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from tests.conftest import rtol_for
from widelimits import dynamics, kernels, nets

NET = nets.mlp(6, 1, nets.Tanh(), out_width=2, b_std=0.5)


@functools.cache
def _setup(dtype):
    """x, params0, params1 and their difference; NumPy draws (no compilation): N(0, 1)
    parameters are the NTK-parameterization initialisation."""
    rng = np.random.default_rng(0)
    draw = lambda *shape: jnp.asarray(rng.normal(size=shape), dtype)  # noqa: E731
    x = draw(4, 3)
    shapes = jax.eval_shape(lambda k: NET.init(k, x.shape), jax.random.PRNGKey(0))
    p0, p1 = (jax.tree.map(lambda s: draw(*s.shape), shapes) for _ in range(2))
    return x, p0, p1, jax.tree.map(lambda a, b: a - b, p1, p0)


def _along(p0, d, a):
    return jax.tree.map(lambda u, v: u + a * v, p0, d)


def test_linearize_value_jvp_affine_ntk(dtype):
    x, p0, p1, d = _setup(dtype)
    rtol = rtol_for(dtype, 1e-12, 2e-5)
    f_lin = dynamics.linearize(NET.apply, p0)

    @jax.jit  # one compilation for all the checks below
    def values(f_lin, p0, p1, d):
        lin_jvp = jax.jvp(lambda p: f_lin(p, x), (p1,), (d,))[1]
        f_jvp = jax.jvp(lambda p: NET.apply(p, x), (p0,), (d,))[1]
        line = [f_lin(_along(p0, d, a), x) for a in (0.0, 1.0, -2.0, 0.5, 3.0)]
        g_lin = jax.grad(lambda p: f_lin(p, x).sum())(p1)
        g_f = jax.grad(lambda p: NET.apply(p, x).sum())(p0)
        rows = jax.vmap(lambda xi: f_lin(p1, xi[None])[0])(x)
        return f_lin(p0, x), NET.apply(p0, x), lin_jvp, f_jvp, line, g_lin, g_f, rows

    at_p0, f_p0, lin_jvp, f_jvp, line, g_lin, g_f, rows = values(f_lin, p0, p1, d)
    # equal to f at params0 (the tangent is zero)
    np.testing.assert_allclose(at_p0, f_p0, rtol=rtol, atol=rtol)
    # its jvp at any params equals f's jvp at params0
    np.testing.assert_allclose(lin_jvp, f_jvp, rtol=rtol, atol=rtol)
    # exactly affine: f_lin(p0 + a d) = f_lin(p0) + a (f_lin(p1) - f_lin(p0))
    g0, g1 = line[0], line[1]
    for a, g in zip((-2.0, 0.5, 3.0), line[2:], strict=True):
        np.testing.assert_allclose(g, g0 + a * (g1 - g0), rtol=rtol, atol=rtol * 10)
    # grad of f_lin at any params is J(p0)^T 1; vmap over inputs gives the same rows
    for a, b in zip(jax.tree.leaves(g_lin), jax.tree.leaves(g_f), strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(rows, line[1], rtol=rtol, atol=rtol)
    # its empirical NTK at any params is f's at params0 (and not f's at p1)
    k_lin = kernels.empirical_ntk(f_lin, p1, x, output="full")
    k0 = kernels.empirical_ntk(NET.apply, p0, x, output="full")
    k1 = kernels.empirical_ntk(NET.apply, p1, x, output="full")
    np.testing.assert_allclose(k_lin, k0, rtol=rtol, atol=rtol)
    assert np.max(np.abs(k1 - k0)) > 100 * rtol * np.max(np.abs(k0))


def test_quadratic_equals_brute_force_taylor(dtype):
    x, p0, p1, d = _setup(dtype)
    rtol = rtol_for(dtype, 1e-11, 1e-4)
    p_half = _along(p0, d, 0.5)  # a point where the quadratic term matters but is not huge
    f_quad = dynamics.quadratic(NET.apply, p0)
    f_lin = dynamics.linearize(NET.apply, p0)

    @jax.jit  # one compilation for all the checks below
    def values(f_quad, f_lin, p0, p_half, d):
        v0, unravel = ravel_pytree(p0)
        dv = ravel_pytree(p_half)[0] - v0
        flat = lambda v: NET.apply(unravel(v), x)  # noqa: E731
        jac = jax.jacfwd(flat)(v0)  # (n, k, P)
        hess = jax.hessian(flat)(v0)  # (n, k, P, P)
        expected = flat(v0) + jac @ dv + 0.5 * jnp.einsum("nkpq,p,q->nk", hess, dv, dv)
        line = [f_quad(_along(p0, d, a), x) for a in (0.0, 1.0, 2.0, 3.0)]
        return expected, f_quad(p_half, x), f_lin(p_half, x), line

    expected, got, lin, q = values(f_quad, f_lin, p0, p_half, d)
    scale = np.max(np.abs(expected))
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * scale)
    # the quadratic term is really there: f_quad differs from f_lin by more than round-off
    assert np.max(np.abs(got - lin)) > 1e3 * rtol * scale
    # exactly quadratic along a line: third finite difference vanishes, second does not
    third = q[3] - 3 * q[2] + 3 * q[1] - q[0]
    second = q[2] - 2 * q[1] + q[0]
    big = max(np.max(np.abs(v)) for v in q)
    assert np.max(np.abs(third)) < 50 * rtol * big
    assert np.max(np.abs(second)) > 1e3 * rtol * big


def test_taylor_errors():
    x = jnp.ones((2, 3))
    p0 = NET.init(jax.random.PRNGKey(0), x.shape)
    with pytest.raises(TypeError, match="f must be a callable"):
        dynamics.linearize("not a function", p0)
    with pytest.raises(TypeError, match="floating-point"):
        dynamics.quadratic(lambda p, x: p * x, jnp.arange(3))
    with pytest.raises(ValueError, match="no array leaves"):
        dynamics.linearize(NET.apply, ())
    with pytest.raises(ValueError, match="structure of params0"):
        dynamics.linearize(NET.apply, p0)(p0[:2], x)
