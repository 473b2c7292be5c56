"""Function-space gradient flow (diffrax) vs the MSE closed form and a fixed-step RK4 oracle;
the loss functions vs direct numpy evaluation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.conftest import rtol_for
from widelimits import dynamics as dy
from widelimits.kernels import Kernel

N_TR, N_TE, K_OUT = 5, 3, 3


@pytest.fixture(scope="module")
def prob():
    rng = np.random.default_rng(1)
    j = rng.standard_normal((N_TR + N_TE, 9))
    theta = j @ j.T / 9
    return dict(t=theta[:N_TR, :N_TR], tx=theta[N_TR:, :N_TR],
                y=rng.standard_normal((N_TR, K_OUT)), f0=rng.standard_normal((N_TR, K_OUT)),
                ft0=rng.standard_normal((N_TE, K_OUT)),
                labels=np.eye(K_OUT)[rng.integers(0, K_OUT, N_TR)])


@pytest.mark.parametrize("dtype", [jnp.float64, pytest.param(jnp.float32, marks=pytest.mark.slow)],
                         ids=["f64", "f32"])
def test_mse_flow_equals_closed_form(prob, dtype):
    t, tx, y, f0, ft0 = (jnp.asarray(prob[x], dtype) for x in ("t", "tx", "y", "f0", "ft0"))
    # Kernel inputs: the flow must use .ntk (the nngp field holds something else)
    ktr, kte = Kernel(0 * t, t, t[0], t[0]), Kernel(0 * tx, tx, tx[:, 0], t[0])
    ts = jnp.asarray([0.0, 0.7, 4.0, 25.0], dtype)
    tol = rtol_for(dtype, 1e-12, 1e-7)
    tr, te = dy.gradient_flow(dy.mse, ktr, y, ts, f0, kte, ft0, learning_rate=1.3, rtol=tol,
                              atol=tol)
    assert tr.dtype == dtype and tr.shape == (4, N_TR, K_OUT) and te.shape == (4, N_TE, K_OUT)
    ctr, cte = dy.gradient_descent_mse(t, y, 1.3)(ts, f0, ft0, tx)
    for a, b in ((tr, ctr), (te, cte)):
        scale = np.max(np.abs(np.asarray(b, np.float64)))
        assert np.max(np.abs(np.asarray(a, np.float64) - b)) <= rtol_for(dtype, 1e-8, 1e-4) * scale


def rk4_oracle(grad_fn, t, tx, f0, ft0, lr, ts, h):
    """Fixed-step classical RK4 on (f_train, f_test) in numpy float64, outputs at ts."""
    def rhs(state):
        g = grad_fn(state[0])
        return np.stack([-lr * t @ g, np.zeros_like(state[0])]), -lr * tx @ g

    out, s, st, now = [], f0.copy(), ft0.copy(), 0.0
    for target in ts:
        while now < target - 1e-12:
            step = min(h, target - now)
            k1, q1 = rhs(np.stack([s, 0 * s]))
            k2, q2 = rhs(np.stack([s + step / 2 * k1[0], 0 * s]))
            k3, q3 = rhs(np.stack([s + step / 2 * k2[0], 0 * s]))
            k4, q4 = rhs(np.stack([s + step * k3[0], 0 * s]))
            s = s + step / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
            st = st + step / 6 * (q1 + 2 * q2 + 2 * q3 + q4)
            now += step
        out.append((s.copy(), st.copy()))
    return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])


def test_cross_entropy_flow_matches_rk4(prob):
    t, tx, labels = prob["t"], prob["tx"], prob["labels"]
    f0, ft0 = 0.3 * prob["f0"], 0.3 * prob["ft0"]
    ts = np.array([0.0, 1.0, 6.0, 20.0])

    def grad_np(f):  # d/df of mean_i of softmax cross-entropy: (softmax(f) - y) / n
        p = np.exp(f - f.max(1, keepdims=True))
        return (p / p.sum(1, keepdims=True) - labels) / len(f)

    rtr, rte = rk4_oracle(grad_np, t, tx, f0, ft0, 2.0, ts, h=0.01)
    tr, te = dy.gradient_flow(dy.cross_entropy, t, labels, ts, f0, tx, ft0, learning_rate=2.0,
                              rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tr, rtr, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(te, rte, rtol=1e-8, atol=1e-9)
    # the gradient sums to 0 over classes, so sum_c f_c is conserved at every point
    np.testing.assert_allclose(tr.sum(-1), np.broadcast_to(f0.sum(-1), (4, N_TR)), atol=1e-10)
    np.testing.assert_allclose(te.sum(-1), np.broadcast_to(ft0.sum(-1), (4, N_TE)), atol=1e-10)
    losses = [float(dy.cross_entropy(f, labels)) for f in tr]
    assert all(a > b for a, b in zip(losses, losses[1:], strict=False))


def test_losses_match_numpy(prob):
    f, y = prob["f0"], prob["y"]
    np.testing.assert_allclose(dy.mse(f, y), 0.5 * np.sum((f - y) ** 2) / y.size, rtol=1e-14)
    probs = np.abs(y) / np.abs(y).sum(1, keepdims=True)
    logz = np.log(np.exp(f).sum(1, keepdims=True))
    np.testing.assert_allclose(dy.cross_entropy(f, probs),
                               -np.sum(probs * (f - logz)) / len(f), rtol=1e-13)
    g = jax.grad(dy.cross_entropy)(jnp.asarray(f), jnp.asarray(probs))
    np.testing.assert_allclose(g, (np.exp(f - logz) - probs) / len(f), rtol=1e-12)
    with pytest.raises(ValueError, match="one shape"):
        dy.mse(f, y[:2])
    with pytest.raises(ValueError, match="cross_entropy"):
        dy.cross_entropy(f[:, 0], y[:, 0])


def test_gradient_flow_errors(prob):
    t, tx, y = prob["t"], prob["tx"], prob["y"]
    gf = dy.gradient_flow
    cases = [
        (lambda: gf("mse", t, y, [1.0]), TypeError, "callable"),
        (lambda: gf(dy.mse, t[:, :2], y, [1.0]), ValueError, "square"),
        (lambda: gf(dy.mse, t, y[:2], [1.0]), ValueError, "y_train"),
        (lambda: gf(dy.mse, t, y, [2.0, 1.0]), ValueError, "non-decreasing"),
        (lambda: gf(dy.mse, t, y, [-1.0]), ValueError, ">= 0"),
        (lambda: gf(dy.mse, t, y, [np.inf]), ValueError, "finite"),
        (lambda: gf(dy.mse, t, y, [[1.0]]), ValueError, "1-d"),
        (lambda: gf(dy.mse, t, y, [1.0], 0.0, tx.T), ValueError, "k_test_train"),
        (lambda: gf(dy.mse, t * np.nan, y, [1.0]), ValueError, "NaN"),
        (lambda: gf(dy.mse, "t", y, [1.0]), TypeError, "Kernel or an array"),
    ]
    for fn, err, match in cases:
        with pytest.raises(err, match=match):
            fn()


@pytest.mark.slow
def test_gradient_flow_jit_and_vmap(prob):
    t, y, f0 = (jnp.asarray(prob[x]) for x in ("t", "y", "f0"))
    ts = jnp.array([0.5, 2.0])
    fn = jax.vmap(lambda lr: dy.gradient_flow(dy.mse, t, y, ts, f0, learning_rate=lr,
                                              rtol=1e-10, atol=1e-10))
    out = jax.jit(fn)(jnp.array([0.5, 1.5]))
    for i, lr in enumerate((0.5, 1.5)):
        np.testing.assert_allclose(out[i], dy.gradient_descent_mse(t, y, lr)(ts, f0),
                                   rtol=1e-7)
