"""Closed-form kernel-limit MSE dynamics, infinite ensembles and GP inference vs brute force.

Oracles: scipy.linalg.expm and dense solves in float64, explicit Python loops of the
function-space recursions (gradient descent ``f ← f − (η/N) Θ (f − y)``, heavy ball
``u ← μ u − (η/N) Θ (f − y); f ← f + u``), with N = y.size.
"""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg as sl

from tests.conftest import rtol_for
from widelimits import dynamics as dy
from widelimits.kernels import Kernel

N_TR, N_TE, K_OUT = 6, 3, 2
STEPS = [0, 1, 2, 3, 10, 60]


@pytest.fixture(scope="module")
def prob():
    """Joint PSD kernels of 6 train + 3 test points (NTK full rank, NNGP separate), targets."""
    rng = np.random.default_rng(0)
    j = rng.standard_normal((N_TR + N_TE, 11))
    j2 = rng.standard_normal((N_TR + N_TE, 13))
    theta, k = j @ j.T / 11, j2 @ j2.T / 13
    n = N_TR
    low = j[:, :3] @ j[:, :3].T / 3  # rank 3 < n: a singular train-train kernel
    return dict(
        t=theta[:n, :n], tx=theta[n:, :n], k=k[:n, :n], kx=k[n:, :n], kxx=k[n:, n:],
        low=low[:n, :n], lowx=low[n:, :n],
        y=rng.standard_normal((n, K_OUT)), f0=rng.standard_normal((n, K_OUT)),
        ft0=rng.standard_normal((N_TE, K_OUT)))


def close(a, b, dtype, f64=1e-10, f32=1e-4):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(np.max(np.abs(b)), 1e-300)
    assert np.max(np.abs(a - b)) <= rtol_for(dtype, f64, f32) * scale, np.max(np.abs(a - b))


def cast(p, dtype, *names):
    return [jnp.asarray(p[x], dtype) for x in names]


def flow_oracle(t, tx, y, f0, ft0, lr, time):
    e = sl.expm(-lr * t * time / y.size)
    return y + e @ (f0 - y), ft0 + tx @ np.linalg.solve(t, (np.eye(len(t)) - e) @ (y - f0))


def loop_oracle(t, tx, y, f0, ft0, lr, steps, mu=None):
    """Explicit function-space gradient descent / heavy ball; outputs at the given steps."""
    f, ft, u, ut, out = f0.copy(), ft0.copy(), 0 * f0, 0 * ft0, {}
    for s in range(max(steps) + 1):
        out[s] = (f.copy(), ft.copy())
        g = lr / y.size * (f - y)
        if mu is None:
            f, ft = f - t @ g, ft - tx @ g
        else:
            u, ut = mu * u - t @ g, mu * ut - tx @ g
            f, ft = f + u, ft + ut
    return [np.stack([out[s][i] for s in steps]) for i in (0, 1)]


# ----------------------------------------------------------------------------- closed forms
def test_gradient_flow_matches_expm(prob, dtype):
    t, tx, y, f0, ft0 = cast(prob, dtype, "t", "tx", "y", "f0", "ft0")
    times = np.array([0.0, 0.3, 2.0, 17.0, 300.0])
    pred = dy.gradient_descent_mse(t, y, learning_rate=0.7)
    tr, te = pred(jnp.asarray(times, dtype), f0, ft0, tx)
    assert tr.dtype == dtype and tr.shape == (5, N_TR, K_OUT) and te.shape == (5, N_TE, K_OUT)
    for i, time in enumerate(times):
        rtr, rte = flow_oracle(prob["t"], prob["tx"], prob["y"], prob["f0"], prob["ft0"], 0.7,
                               time)
        close(tr[i], rtr, dtype)
        close(te[i], rte, dtype)
    # times of any shape: leading axes of the output
    tr2 = pred(jnp.asarray(times[1:].reshape(2, 2), dtype), f0)
    close(tr2.reshape(4, N_TR, K_OUT), tr[1:], dtype, 1e-14, 1e-6)


def test_t_inf_is_kernel_regression(prob, dtype):
    t, tx, y, f0, ft0 = cast(prob, dtype, "t", "tx", "y", "f0", "ft0")
    expect = prob["ft0"] + prob["tx"] @ np.linalg.solve(prob["t"], prob["y"] - prob["f0"])
    for pred in (dy.gradient_descent_mse(t, y, 0.5),
                 dy.gradient_descent_mse(t, y, 0.5, momentum=0.9)):
        tr, te = pred(jnp.inf, f0, ft0, tx)
        close(tr, prob["y"], dtype)
        close(te, expect, dtype)
        tr_none = pred(None, f0)
        close(tr_none, prob["y"], dtype)
    # one output, 1-d targets: same numbers
    tr1, te1 = dy.gradient_descent_mse(t, y[:, 0], 0.5)(jnp.inf, f0[:, 0], ft0[:, 0], tx)
    assert tr1.shape == (N_TR,) and te1.shape == (N_TE,)
    close(te1, expect[:, 0], dtype)


@pytest.mark.parametrize("low_rank", [False, True], ids=["full", "singular"])
def test_discrete_steps_match_loop(prob, dtype, low_rank):
    key, keyx = ("low", "lowx") if low_rank else ("t", "tx")
    t, tx, y, f0, ft0 = cast(prob, dtype, key, keyx, "y", "f0", "ft0")
    lr = 0.8 * float(dy.max_learning_rate(prob[key], y.size))
    steps = [0, 1, 2, 7, 40]
    tr, te = dy.gradient_descent_mse(t, y, lr)(None, f0, ft0, tx, steps=jnp.array(steps))
    rtr, rte = loop_oracle(prob[key], prob[keyx], prob["y"], prob["f0"], prob["ft0"], lr, steps)
    close(tr, rtr, dtype)
    close(te, rte, dtype)
    # continuous time on a singular kernel: finite, equal to the expm series (no inverse used)
    tr, te = dy.gradient_descent_mse(t, y, lr)(jnp.asarray([5.0], dtype), f0, ft0, tx)
    a = -lr * prob[key] * 5.0 / y.size
    block = sl.expm(np.block([[a, np.eye(N_TR)], [np.zeros((N_TR, 2 * N_TR))]]))
    e, phi1 = block[:N_TR, :N_TR], block[:N_TR, N_TR:]  # phi1(a) = (e^a - I) / a
    close(tr[0], prob["y"] + e @ (prob["f0"] - prob["y"]), dtype)
    close(te[0], prob["ft0"] + lr * 5.0 / y.size * prob[keyx] @ phi1 @ (prob["y"] - prob["f0"]),
          dtype)


@pytest.mark.parametrize("mu", [0.0, 0.5, 0.95])
def test_momentum_matches_heavy_ball_loop(prob, dtype, mu):
    """Real, double and complex roots of the per-eigenvalue recursion all occur here."""
    steps = STEPS
    for key, keyx in (("t", "tx"), ("low", "lowx")):
        t, tx, y, f0, ft0 = cast(prob, dtype, key, keyx, "y", "f0", "ft0")
        for frac in (0.02, 0.4, 0.98):
            lr = frac * float(dy.max_learning_rate(prob[key], y.size, momentum=mu))
            pred = dy.gradient_descent_mse(t, y, lr, momentum=mu)
            tr, te = pred(None, f0, ft0, tx, steps=jnp.array(steps))
            rtr, rte = loop_oracle(prob[key], prob[keyx], prob["y"], prob["f0"], prob["ft0"],
                                   lr, steps, mu)
            close(tr, rtr, dtype, 1e-10, 2e-4)
            close(te, rte, dtype, 1e-10, 2e-4)


def test_max_learning_rate_is_the_stability_edge(prob):
    t, y = prob["t"], prob["y"]
    lam = np.linalg.eigvalsh(t)[-1]
    np.testing.assert_allclose(dy.max_learning_rate(t, y.size), 2 * y.size / lam, rtol=1e-12)
    np.testing.assert_allclose(dy.max_learning_rate(Kernel(t, t, t[0], t[0])), 2 * N_TR / lam,
                               rtol=1e-12)
    for mu in (0.0, 0.6):
        eta = float(dy.max_learning_rate(t, y.size, momentum=mu))
        np.testing.assert_allclose(eta, 2 * (1 + mu) * y.size / lam, rtol=1e-12)
        norms = {}
        for frac in (0.99, 1.01):
            tr, _ = loop_oracle(t, prob["tx"], y, prob["f0"], prob["ft0"], frac * eta,
                                [0, 3000], None if mu == 0 else mu)
            norms[frac] = [np.linalg.norm(tr[i] - y) for i in (0, 1)]
        assert norms[0.99][1] < norms[0.99][0]  # converges (slowest mode aside, it shrinks)
        assert norms[1.01][1] > 1e3 * norms[1.01][0]  # diverges along the top eigenvector
    with pytest.raises(ValueError, match="overflowed"):
        dy.gradient_descent_mse(t, y, 1.1 * float(dy.max_learning_rate(t, y.size)))(
            steps=jnp.array([100_000]))


# ----------------------------------------------------------------------------- ensembles
def ensemble_oracle(p, e, lr_t_inf=False):
    """Lee et al. 2019 eqs. 15-16, dense: E = the residual-decay matrix."""
    n = N_TR
    a = p["tx"] @ np.linalg.solve(p["t"], np.eye(n) - e)
    mean = a @ p["y"]
    cov = p["kxx"] + a @ p["k"] @ a.T - a @ p["kx"].T - p["kx"] @ a.T
    return mean, cov, (np.eye(n) - e) @ p["y"], e @ p["k"] @ e


def test_ensemble_matches_dense_formulas(prob, dtype):
    t, tx, k, kx, kxx, y = cast(prob, dtype, "t", "tx", "k", "kx", "kxx", "y")
    lr, times, steps = 0.6, [0.0, 1.5, 40.0], [0, 1, 9]
    ens = dy.gradient_descent_mse_ensemble((k, t), y, lr)
    g = ens(jnp.asarray(times, dtype), (kx, tx), kxx)
    gtr = ens(jnp.asarray(times, dtype))
    gs = ens(steps=jnp.array(steps), k_test_train=(kx, tx), k_test_test=kxx)
    assert g.mean.shape == (3, N_TE, K_OUT) and g.covariance.shape == (3, N_TE, N_TE)
    assert gtr.covariance.shape == (3, N_TR, N_TR)
    for i in range(3):
        m, c, mtr, ctr = ensemble_oracle(prob, sl.expm(-lr * prob["t"] * times[i] / y.size))
        close(g.mean[i], m, dtype)
        close(g.covariance[i], c, dtype)
        close(gtr.mean[i], mtr, dtype)
        close(gtr.covariance[i], ctr, dtype)
        e = np.linalg.matrix_power(np.eye(N_TR) - lr * prob["t"] / y.size, steps[i])
        m, c, _, _ = ensemble_oracle(prob, e)
        close(gs.mean[i], m, dtype)
        close(gs.covariance[i], c, dtype)
    # t = inf: the NTK-GP (E = 0); no covariance without k_test_test
    m, c, _, _ = ensemble_oracle(prob, np.zeros((N_TR, N_TR)))
    ginf = ens(jnp.inf, (kx, tx), kxx)
    close(ginf.mean, m, dtype)
    close(ginf.covariance, c, dtype)
    assert ens(1.0, (kx, tx)).covariance is None
    assert ens(1.0, (kx, tx), kxx, compute_cov=False).covariance is None


def test_nngp_ensemble_at_inf_is_gp_inference(prob, dtype):
    k, kx, kxx, y = cast(prob, dtype, "k", "kx", "kxx", "y")
    gi = dy.gradient_descent_mse_ensemble(k, y, 0.3, get="nngp")(jnp.inf, kx, kxx)
    gp = dy.gp_inference(k, y, kx, kxx)
    close(gi.mean, gp.mean, dtype)
    close(gi.covariance, gp.covariance, dtype, f32=3e-4)
    mean = prob["kx"] @ np.linalg.solve(prob["k"], prob["y"])
    cov = prob["kxx"] - prob["kx"] @ np.linalg.solve(prob["k"], prob["kx"].T)
    close(gp.mean, mean, dtype)
    close(gp.covariance, cov, dtype, f32=3e-4)


def test_gp_inference_with_noise_and_train_points(prob, dtype):
    k, kx, kxx, y = cast(prob, dtype, "k", "kx", "kxx", "y")
    s2 = 0.3
    a = prob["k"] + s2 * np.eye(N_TR)
    g = dy.gp_inference(k, y, kx, kxx, diag_reg=s2)
    close(g.mean, prob["kx"] @ np.linalg.solve(a, prob["y"]), dtype)
    close(g.covariance, prob["kxx"] - prob["kx"] @ np.linalg.solve(a, prob["kx"].T), dtype)
    g = dy.gp_inference(Kernel(k, k, jnp.diag(k), jnp.diag(k)), y, diag_reg=s2)
    close(g.mean, prob["k"] @ np.linalg.solve(a, prob["y"]), dtype)
    close(g.covariance, prob["k"] - prob["k"] @ np.linalg.solve(a, prob["k"]), dtype)
    assert dy.gp_inference(k, y, kx).covariance is None
    gn = dy.gp_inference((k, k * 2), y, (kx, kx * 2), (kxx, kxx * 2), get="ntk")
    close(gn.mean, prob["kx"] @ np.linalg.solve(prob["k"], prob["y"]), dtype)


# ----------------------------------------------------------------------------- transformations
def momentum_flow_oracle(t, tx, y, f0, ft0, lr, mu, times):
    """Continuous heavy ball by one dense matrix exponential of the joint linear ODE
    r' = q, q' = -(1 - mu) q - A r (train, r = f - y), f*' = q*, q*' = -(1 - mu) q* - B r."""
    n, m = t.shape[0], tx.shape[0]
    a, b, i_n, i_m = lr / y.size * t, lr / y.size * tx, np.eye(n), np.eye(m)
    z = np.zeros
    gen = np.block([[z((n, n)), i_n, z((n, m)), z((n, m))],
                    [-a, -(1 - mu) * i_n, z((n, m)), z((n, m))],
                    [z((m, n)), z((m, n)), z((m, m)), i_m],
                    [-b, z((m, n)), z((m, m)), -(1 - mu) * i_m]])
    start = np.concatenate([f0 - y, 0 * f0, ft0, 0 * ft0])
    states = [sl.expm(gen * s) @ start for s in times]
    return (np.stack([y + st[:n] for st in states]),
            np.stack([st[2 * n:2 * n + m] for st in states]))


@pytest.mark.parametrize("mu", [0.0, 0.5, 0.9, 0.99])
def test_momentum_in_continuous_time_matches_expm(prob, dtype, mu):
    # Over- and under-damped eigen-directions, some near critical, all occur: a = eta lambda / N
    # spans 6e-4 .. 1e4 times ((1 - mu)/2)^2 across the learning rates and the spectrum (0.97 and
    # 0.91 among them); the singular kernel adds a = 0 directions.
    times = [0.0, 0.3, 2.0, 17.0, 300.0]
    for key, keyx in (("t", "tx"), ("low", "lowx")):
        t, tx, y, f0, ft0 = cast(prob, dtype, key, keyx, "y", "f0", "ft0")
        for lr in (0.01, 0.3, 2.0):
            pred = dy.gradient_descent_mse(t, y, lr, momentum=mu)
            tr, te = pred(jnp.asarray(times, dtype), f0, ft0, tx)
            rtr, rte = momentum_flow_oracle(prob[key], prob[keyx], prob["y"], prob["f0"],
                                            prob["ft0"], lr, mu, times)
            close(tr, rtr, dtype, 1e-9, 2e-4)
            close(te, rte, dtype, 1e-9, 2e-4)


def test_momentum_flow_matches_neural_tangents():
    # tests/reference/nt_momentum_flow.npz: NT 0.6.5's predict.gradient_descent with momentum,
    # the MSE loss 0.5 mean((f - y)^2), solved by its ODE solver (rtol 1.4e-8) at the same times.
    ref = np.load(pathlib.Path(__file__).parent / "reference" / "nt_momentum_flow.npz")
    k, kx, y, f0, ft0, times = (jnp.asarray(ref[x]) for x in ("k", "kx", "y", "f0", "ft0",
                                                              "times"))
    for i in range(int(ref["n_cases"])):
        pred = dy.gradient_descent_mse(k, y, float(ref[f"case{i}_lr"]),
                                       momentum=float(ref[f"case{i}_mu"]))
        tr, te = pred(times, f0, ft0, kx)
        for ours, nt_value in ((tr, ref[f"case{i}_train"]), (te, ref[f"case{i}_test"])):
            assert np.max(np.abs(ours - nt_value)) <= 1e-6 * np.max(np.abs(nt_value))


def test_momentum_flow_at_critical_damping():
    # One point, a = b^2 (1 + d): the residual is e^{-bt} (1 + bt) + O(d (bt)^2) on both sides
    # of the switch between the cosh and cos forms, with a finite time derivative.
    mu, lr, n = 0.6, 0.5, 1
    b = (1 - mu) / 2
    times = jnp.array([0.0, 1.0, 7.0, 40.0])
    for d in (-1e-9, 0.0, 1e-9):
        lam = b * b * (1 + d) * n / lr
        pred = dy.gradient_descent_mse(jnp.array([[lam]]), jnp.zeros((1, 1)), lr, momentum=mu)
        g = pred(times, jnp.ones((1, 1)))[:, 0, 0]
        np.testing.assert_allclose(g, np.exp(-b * times) * (1 + b * times), rtol=1e-7)
        dg = jax.grad(lambda s, p=pred: p(s, jnp.ones((1, 1)))[0, 0])(7.0)
        np.testing.assert_allclose(dg, -b * b * 7.0 * np.exp(-b * 7.0), rtol=1e-6)


def test_momentum_flow_is_the_small_step_limit_of_heavy_ball(prob):
    # Time t in steps: the recursion r_{k+1} = (1 + mu - a) r_k - mu r_{k-1} approaches the ODE
    # r'' + (1 - mu) r' + a r = 0 as the per-step change vanishes (a, 1 - mu -> 0 with
    # a / (1 - mu)^2 fixed, times ~ 1 / (1 - mu)); the gap shrinks like the step size.
    t, y, f0 = (jnp.asarray(prob[x]) for x in ("t", "y", "f0"))
    gaps = []
    for h in (0.1, 0.05, 0.025):
        mu, lr, k = 1 - h, 0.3 * h * h, int(round(10 / h))
        pred = dy.gradient_descent_mse(t, y, lr, momentum=mu)
        gaps.append(float(jnp.max(jnp.abs(pred(float(k), f0) - pred(steps=k, fx_train_0=f0)))))
    slope = np.polyfit(np.log([0.1, 0.05, 0.025]), np.log(gaps), 1)[0]
    assert 0.8 < slope < 1.2, (gaps, slope)


def test_jit_vmap_grad(prob):
    t, tx, y, f0 = (jnp.asarray(prob[x]) for x in ("t", "tx", "y", "f0"))
    times = jnp.array([0.5, 3.0, jnp.inf])
    eager = dy.gradient_descent_mse(t, y, 0.5)(times, f0, 0.0, tx)
    jitted = jax.jit(lambda t, y, lr, s: dy.gradient_descent_mse(t, y, lr)(s, f0, 0.0, tx))(
        t, y, 0.5, times)
    for a, b in zip(eager, jitted, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    # vmap over learning rates
    lrs, steps = jnp.array([0.1, 0.4, 0.9]), jnp.array(STEPS)
    v = jax.vmap(lambda lr: dy.gradient_descent_mse(t, y, lr)(steps=steps, k_test_train=tx)[1])(
        lrs)
    for i, lr in enumerate(lrs):
        np.testing.assert_allclose(v[i], dy.gradient_descent_mse(t, y, lr)(
            steps=steps, k_test_train=tx)[1], rtol=1e-12)
    # d f_t / dt = -(eta/N) Theta (f_t - y): exact derivative of the closed form; 0 at t = inf
    ts = jnp.array([2.5, jnp.inf])
    d = jax.jacfwd(lambda s: dy.gradient_descent_mse(t, y, 0.5)(s, f0))(ts)
    d = np.stack([np.asarray(d)[i, ..., i] for i in range(2)])  # d f(t_i) / d t_i
    ft = dy.gradient_descent_mse(t, y, 0.5)(2.5, f0)
    np.testing.assert_allclose(d[0], -0.5 / y.size * prob["t"] @ (ft - prob["y"]), rtol=1e-10)
    np.testing.assert_array_equal(d[1], 0.0)
    gy = jax.grad(lambda yy: dy.gradient_descent_mse(t, yy, 0.5)(jnp.inf, f0, 0.0, tx)[1]
                  .sum())(y)
    np.testing.assert_allclose(gy, np.tile(np.linalg.solve(prob["t"], prob["tx"].sum(0))
                                           [:, None], (1, K_OUT)), rtol=1e-10)
    # d/d(lr): heavy ball with mu = 0 (closed form of the two-term recursion) vs plain GD
    def last(lr, mu):
        pred = dy.gradient_descent_mse(t, y, lr, momentum=mu)
        return pred(steps=steps, k_test_train=tx)[1].sum()
    ga, gb = jax.grad(last)(0.5, 0.0), jax.grad(last)(0.5, None)
    assert np.isfinite(ga) and abs(ga - gb) <= 1e-10 * abs(gb)
    # an ensemble predictor is a pytree: it passes through jit
    ens = dy.gradient_descent_mse_ensemble((jnp.asarray(prob["k"]), t), y, 0.5)
    g = jax.jit(lambda e: e(1.0, (jnp.asarray(prob["kx"]), tx), jnp.asarray(prob["kxx"])))(ens)
    g0 = ens(1.0, (jnp.asarray(prob["kx"]), tx), jnp.asarray(prob["kxx"]))
    np.testing.assert_allclose(g.covariance, g0.covariance, rtol=1e-12)


def test_kernel_objects_and_arrays_agree(prob):
    t, tx, k, kx, kxx, y = (jnp.asarray(prob[x]) for x in ("t", "tx", "k", "kx", "kxx", "y"))
    ktr = Kernel(nngp=k, ntk=t, var1=jnp.diag(k), var2=jnp.diag(k))
    kte = Kernel(nngp=kx, ntk=tx, var1=jnp.diag(kxx), var2=jnp.diag(k))
    ktt = Kernel(nngp=kxx, ntk=kxx, var1=jnp.diag(kxx), var2=jnp.diag(kxx))
    a = dy.gradient_descent_mse(ktr, y, 0.5)(2.0, 0.0, 0.0, kte)
    b = dy.gradient_descent_mse(t, y, 0.5)(2.0, 0.0, 0.0, tx)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    a = dy.gradient_descent_mse_ensemble(ktr, y, 0.5)(2.0, kte, ktt)
    b = dy.gradient_descent_mse_ensemble((k, t), y, 0.5)(2.0, (kx, tx), kxx)
    np.testing.assert_array_equal(a.covariance, b.covariance)
    np.testing.assert_array_equal(dy.gp_inference(ktr, y, kte, ktt).mean,
                                  dy.gp_inference(k, y, kx, kxx).mean)
    np.testing.assert_array_equal(dy.max_learning_rate(ktr), dy.max_learning_rate(t))


def test_singular_kernel_under_jit_is_nan_free(prob):
    low, lowx, y = (jnp.asarray(prob[x]) for x in ("low", "lowx", "y"))
    with pytest.raises(ValueError, match="condition number"):
        dy.gradient_descent_mse(low, y)(jnp.inf)
    tr, te = jax.jit(lambda a, b: dy.gradient_descent_mse(a, y)(jnp.inf, 0.0, 0.0, b))(low,
                                                                                      lowx)
    assert np.all(np.isfinite(tr)) and np.all(np.isfinite(te))
    pinv = np.linalg.pinv(prob["low"], rcond=1e-10)
    np.testing.assert_allclose(te, prob["lowx"] @ pinv @ prob["y"], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(tr, prob["low"] @ pinv @ prob["y"], rtol=1e-6, atol=1e-8)
    g = jax.jit(lambda a: dy.gp_inference(a, y, lowx))(low)
    assert np.all(np.isfinite(g.mean))
    # the suggested remedy works
    tr = dy.gradient_descent_mse(low, y, diag_reg=1e-6)(jnp.inf)
    np.testing.assert_allclose(tr, prob["y"], rtol=1e-8)


def test_errors(prob):
    t, tx, k, y = (jnp.asarray(prob[x]) for x in ("t", "tx", "k", "y"))
    gd = dy.gradient_descent_mse
    cases = [
        (lambda: gd(t[:, :4], y), ValueError, "square"),
        (lambda: gd(t + jnp.triu(jnp.ones_like(t), 1), y), ValueError, "not symmetric"),
        (lambda: gd(t - 2 * jnp.eye(N_TR) * jnp.max(t), y), ValueError, "positive semi"),
        (lambda: gd(t.at[0, 0].set(jnp.nan), y), ValueError, "NaN"),
        (lambda: gd(t, y[:4]), ValueError, "y_train"),
        (lambda: gd(t, y, learning_rate=-1.0), ValueError, "learning_rate"),
        (lambda: gd(t, y, diag_reg=-1.0), ValueError, "diag_reg"),
        (lambda: gd(t, y, momentum=1.0), ValueError, "momentum"),
        (lambda: gd(t, y)(1.0, steps=jnp.array([1])), ValueError, "not both"),
        (lambda: gd(t, y)(steps=jnp.array([1.5])), ValueError, "integers"),
        (lambda: gd(t, y)(-1.0), ValueError, ">= 0"),
        (lambda: gd(t, y)(1.0, 0.0, 0.0, tx.T), ValueError, "k_test_train"),
        (lambda: gd(t, y)(1.0, jnp.full(y.shape, jnp.inf)), ValueError, "fx_train_0"),
        (lambda: gd("kernel", y), TypeError, "Kernel or an array"),
        (lambda: dy.gradient_descent_mse_ensemble(t, y), TypeError, "both the NNGP and the NTK"),
        (lambda: dy.gradient_descent_mse_ensemble((k, t), y)(1.0, tx), TypeError, "both"),
        (lambda: dy.gradient_descent_mse_ensemble((k, t), y, get="x"), ValueError, "get"),
        (lambda: dy.gradient_descent_mse_ensemble((k, t), y)(1.0, (tx, tx), k), ValueError,
         "k_test_test"),
        (lambda: dy.gp_inference(jnp.asarray(prob["low"]), y), ValueError, "diag_reg"),
        (lambda: dy.max_learning_rate(t, momentum=-0.1), ValueError, "momentum"),
        (lambda: dy.max_learning_rate(t[:2]), ValueError, "square"),
    ]
    for fn, err, match in cases:
        with pytest.raises(err, match=match):
            fn()
    with pytest.raises(ValueError, match="float64"):  # float32 suggestion
        dy.gp_inference(jnp.asarray(prob["low"], jnp.float32), y.astype(jnp.float32))
