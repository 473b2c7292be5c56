"""DMFT of mean-field networks (Bordelon & Pehlevan 2022) against independent oracles.

Oracles: discrete kernel gradient descent with the analytic NTK (gamma0 -> 0); the error-norm ODE
and final kernel of two-layer linear networks on whitened data (derived in the test docstring);
the exact Gaussian operator equations of deep linear networks; finite-width muP networks trained
by plain gradient descent (written out here).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from widelimits import dynamics, kernels, nets
from widelimits._registry import UnsupportedLayer

P, D = 4, 8


def mf(act, depth=1, gamma0=1.0, width=64):
    """The mean-field spec ``dynamics.dmft`` solves (any width: the DMFT is its N -> inf limit)."""
    return nets.meanfield_mlp(width, depth, act, gamma0)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x, xt = rng.standard_normal((P, D)), rng.standard_normal((3, D))
    y = np.sin(x[:, 0]) + 0.5 * x[:, 1]
    return x, y, xt


def _maxdiff(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def _kernel_gd(k_tt, k_st, y, eta, steps):
    """Discrete kernel gradient descent on 1/2 mean (f - y)^2: Delta <- (I - eta K / P) Delta."""
    k_tt, k_st, y = np.asarray(k_tt), np.asarray(k_st), np.asarray(y)
    delta, f_test, out, out_t = y, np.zeros(k_st.shape[0]), [y], [np.zeros(k_st.shape[0])]
    for _ in range(steps):
        f_test = f_test + eta / len(y) * k_st @ delta
        delta = delta - eta / len(y) * k_tt @ delta
        out.append(delta)
        out_t.append(f_test)
    return np.stack(out), np.stack(out_t)


def test_lazy_limit_is_ntk_gradient_descent(data):
    """gamma0 = 0: the DMFT is discrete gradient descent with the NTK of the NTK-parameterised
    net Dense(N, w_std=1, no bias) -> act -> Dense(1, w_std=1) (muP NTK at gamma0 -> 0 is
    Phi^1 + G^1 * Phi^0 at t = 0). The sampled NTK agrees with the analytic one within 5 standard
    errors; given the sampled kernel, the dynamics are exact to round-off."""
    x, y, xt = data
    eta, steps, n = 0.2, 20, 20000
    key = jax.random.PRNGKey(1)
    r0 = dynamics.dmft(mf(nets.Relu()), x, y, gamma0=0.0, eta=eta, steps=steps, key=key,
                       n_samples=n, x_test=xt, kernels="equal_time")
    k_hat = np.asarray(r0.ntk[0])
    np.testing.assert_allclose(r0.ntk[-1], k_hat, atol=1e-13)          # no kernel motion
    delta_ref, _ = _kernel_gd(k_hat, np.zeros((1, P)), y, eta, steps)
    np.testing.assert_allclose(r0.delta, delta_ref, atol=1e-12)
    # sampled NTK vs analytic NTK, z-score from the per-entry sampling error
    net = nets.serial(nets.Dense(64, w_std=1.0, b_std=None), nets.Relu(),
                      nets.Dense(1, w_std=1.0, b_std=None))
    xa = np.concatenate([x, xt])
    kan = np.asarray(kernels.analytic(net, xa).ntk)
    rng = np.random.default_rng(9)                         # per-entry sampling error of K-hat
    u = rng.standard_normal((n, P)) @ np.linalg.cholesky(np.asarray(x @ x.T) / D).T
    w = rng.standard_normal(n)
    ph, dph = np.maximum(u, 0), (u > 0) * 1.0
    terms = ph[:, :, None] * ph[:, None, :] + (w**2)[:, None, None] * dph[:, :, None] \
        * dph[:, None, :] * (np.asarray(x @ x.T) / D)
    se = np.std(terms, axis=0) / np.sqrt(n)
    assert np.all(np.abs(k_hat - kan[:P, :P]) < 5 * se + 1e-12)
    # predictions (train and test) vs the analytic-NTK gradient descent, within sampling error
    delta_an, ft_an = _kernel_gd(kan[:P, :P], kan[P:, :P], y, eta, steps)
    tol = 5 * float(np.max(se)) * eta * steps * float(np.max(np.abs(y)))
    np.testing.assert_allclose(r0.delta, delta_an, atol=tol)
    np.testing.assert_allclose(r0.f_test, ft_an, atol=tol)
    # gamma0 = 1e-4 differs from gamma0 = 0 by O(gamma0)
    r1 = dynamics.dmft(mf(nets.Relu(), gamma0=1e-4), x, y, eta=eta, steps=steps, key=key,
                       n_samples=n, x_test=xt, kernels="equal_time")
    assert 0 < np.max(np.abs(np.asarray(r1.f_train) - np.asarray(r0.f_train))) < 1e-3
    assert np.max(np.abs(np.asarray(r1.f_test) - np.asarray(r0.f_test))) < 1e-3


def _whitened_moments(y, g0, eta, steps):
    """Exact infinite-width discrete gradient descent of a two-layer linear net with K^x = I, in
    moments H = <h h^T>, v = <w^2>, m = <w h> = gamma0 f (a = gamma0 eta / P):
    h' = h + a Delta w, w' = w + a Delta.h, so H' = H + a (Delta m^T + m Delta^T) + a^2 v Delta Delta^T,
    v' = v + 2 a Delta.m + a^2 Delta^T H Delta, m' = m + a (v Delta + H Delta) + a^2 Delta (Delta.m)."""
    p = len(y)
    a = g0 * eta / p
    h, v, m = np.eye(p), 1.0, np.zeros(p)
    deltas, hs = [], []
    for _ in range(steps + 1):
        dl = y - m / g0
        deltas.append(dl)
        hs.append(h)
        h, v, m = (h + a * (np.outer(dl, m) + np.outer(m, dl)) + a * a * v * np.outer(dl, dl),
                   v + 2 * a * dl @ m + a * a * dl @ h @ dl,
                   m + a * (v * dl + h @ dl) + a * a * dl * (dl @ m))
    return np.array(deltas), np.array(hs)


def test_whitened_two_layer_linear():
    """Two-layer linear net, K^x = I. In continuous time, with tau = t/P: dH/dtau =
    gamma0 (Delta m^T + m Delta^T), dv/dtau = 2 gamma0 Delta.m, dDelta/dtau = -(H + v I) Delta.
    Delta stays along y; H = I + (v - 1) yhat yhat^T, and v dv = -gamma0^2 (|y| - delta) d delta
    gives v = sqrt(1 + gamma0^2 (|y| - delta)^2). Hence, with delta = |Delta|,
        d delta / dt = -(2/P) sqrt(1 + gamma0^2 (|y| - delta)^2) delta,
    and Phi^1(inf) = I + [sqrt(1 + gamma0^2 |y|^2) - 1] y y^T / |y|^2."""
    p, d, g0 = 3, 6, 1.5
    q, _ = np.linalg.qr(np.random.default_rng(3).standard_normal((d, p)))
    x = np.sqrt(d) * q.T                                   # x x^T / D = I
    y = np.array([1.0, -0.5, 0.8])
    s = np.linalg.norm(y)
    eta, steps = 0.05, 40
    res = dynamics.dmft(mf(nets.Identity(), gamma0=g0), x, y, eta=eta, steps=steps,
                        key=jax.random.PRNGKey(0), method="closed_form", kernels="equal_time",
                        damping=1.0, tol=1e-11, max_iter=100)
    deltas, hs = _whitened_moments(y, g0, eta, steps)
    np.testing.assert_allclose(res.delta, deltas, atol=1e-9)   # exact discrete dynamics
    np.testing.assert_allclose(res.phi[0], hs, atol=1e-9)
    # the discrete dynamics converge to the ODE at first order in eta
    ode = lambda t_end: solve_ivp(  # noqa: E731
        lambda t, dl: -(2 / p) * np.sqrt(1 + g0**2 * (s - dl) ** 2) * dl, (0, t_end), [s],
        rtol=1e-11, atol=1e-13).y[0, -1]
    errs = [abs(np.linalg.norm(_whitened_moments(y, g0, e, round(2 / e))[0][-1]) - ode(2.0))
            for e in (0.05, 0.025, 0.0125)]
    assert 1.8 < errs[0] / errs[1] < 2.2 and 1.8 < errs[1] / errs[2] < 2.2
    assert errs[0] < 0.05 * s
    cos = res.delta @ y / (np.linalg.norm(res.delta, axis=1) * s)   # error stays along y
    np.testing.assert_allclose(cos, 1.0, atol=1e-10)
    # final feature kernel: long run of the exact recursion with a small step
    _, h_long = _whitened_moments(y, g0, 0.01, 3000)
    phi_inf = np.eye(p) + (np.sqrt(1 + g0**2 * s**2) - 1) * np.outer(y, y) / s**2
    np.testing.assert_allclose(h_long[-1], phi_inf, atol=0.02)
    # the sampled two-layer solver agrees with the operator solution within 5 s.e.
    n = 20000
    sm = dynamics.dmft(mf(nets.Identity(), gamma0=g0), x, y, eta=eta, steps=steps,
                       key=jax.random.PRNGKey(2), n_samples=n, kernels="equal_time")
    assert _maxdiff(sm.f_train, res.f_train) < 5 * 2 * s / np.sqrt(n)
    assert _maxdiff(sm.phi[0, -1], res.phi[0, -1]) < 5 * 3 / np.sqrt(n)


DEEP_NET = mf(nets.Identity(), depth=2, gamma0=1.5)
DEEP = dict(eta=0.1, steps=10, damping=1.0, key=jax.random.PRNGKey(2))


@pytest.fixture(scope="module")
def deep_linear(data):
    x, y, xt = data
    exact = dynamics.dmft(DEEP_NET, x[:3], y[:3], method="closed_form", tol=1e-10,
                          max_iter=60, x_test=xt[:1], **DEEP)
    sampled = dynamics.dmft(DEEP_NET, x[:3], y[:3], n_samples=6000, tol=1e-8,
                            max_iter=60, x_test=xt[:1], **DEEP)
    return exact, sampled


def test_deep_linear_sampled_matches_operator_equations(deep_linear):
    """L = 2 linear: sampled DMFT with the response functions = operator solution within Monte
    Carlo error (about 2 / sqrt(n) relative; 4x margin)."""
    exact, sampled = deep_linear
    assert exact.converged and sampled.converged
    assert exact.method == "closed_form" and sampled.method == "sampled"
    scale = float(np.max(np.abs(exact.f_train)))
    tol = 4 * 2 * scale / np.sqrt(6000)
    assert _maxdiff(sampled.f_train, exact.f_train) < tol
    assert _maxdiff(sampled.f_test, exact.f_test) < tol
    k_scale = float(np.max(np.abs(exact.ntk)))
    assert _maxdiff(sampled.ntk, exact.ntk) < 4 * 4 * k_scale / np.sqrt(6000)
    # kernels are symmetric PSD; the NTK moves (feature learning)
    k = np.asarray(exact.phi[1]).transpose(0, 2, 1, 3).reshape(11 * 3, 11 * 3)
    np.testing.assert_allclose(k, k.T, atol=1e-10)
    assert float(np.min(np.linalg.eigvalsh(k))) > -1e-8
    assert _maxdiff(exact.ntk[-1], exact.ntk[0]) > 0.05 * k_scale


@pytest.mark.slow
def test_gradient_independence_is_worse(data, deep_linear):
    """Dropping the response functions (gradient-independence approximation) is measurably
    further from the exact deep linear solution than the sampled DMFT."""
    x, y, xt = data
    exact, sampled = deep_linear
    gi = dynamics.dmft(DEEP_NET, x[:3], y[:3], n_samples=6000, tol=1e-8, max_iter=60,
                       x_test=xt[:1], method="gradient_independence", **DEEP)
    assert gi.method == "gradient_independence"
    e_gi = _maxdiff(gi.f_train, exact.f_train)
    assert e_gi > 2 * _maxdiff(sampled.f_train, exact.f_train)


def _mup_two_layer(x, y, gamma0, eta, steps, width, rng):
    """Width-N muP two-layer ReLU net (numpy), plain gradient descent with learning rate
    gamma0^2 N eta on 1/2 mean (f - y)^2: returns f at steps 0..T, shape (T+1, P)."""
    p, d = x.shape
    w1, w2 = rng.standard_normal((width, d)), rng.standard_normal(width)
    fs = []
    for k in range(steps + 1):
        pre = x @ w1.T / np.sqrt(d)                        # (P, N)
        act = np.maximum(pre, 0)
        f = act @ w2 / (gamma0 * width)
        fs.append(f)
        if k == steps:
            break
        err = (f - y) / p                                  # dL/df
        gw2 = act.T @ err / (gamma0 * width)
        gpre = np.outer(err, w2) * (pre > 0) / (gamma0 * width)
        gw1 = gpre.T @ x / np.sqrt(d)
        lr = gamma0**2 * width * eta
        w1, w2 = w1 - lr * gw1, w2 - lr * gw2
    return np.array(fs)


def _width_errors(x, y, dm, widths, seeds, gamma0, eta, steps):
    x, y, f_dm = np.asarray(x), np.asarray(y), np.asarray(dm.f_train)
    out = [[np.sqrt(np.mean((_mup_two_layer(x, y, gamma0, eta, steps, n,
                                            np.random.default_rng(1000 * n + s)) - f_dm) ** 2))
            for s in range(seeds)] for n in widths]
    return np.array(out)                                   # (widths, seeds)


@pytest.fixture(scope="module")
def relu_dmft(data):
    x, y, xt = data       # same shapes as the lazy-limit test: one compiled program for both
    return dynamics.dmft(mf(nets.Relu()), x, y, eta=0.2, steps=20, x_test=xt,
                         key=jax.random.PRNGKey(4), n_samples=20000, kernels="equal_time")


def test_finite_width_approaches_dmft(data, relu_dmft):
    """Two-layer ReLU muP networks approach the DMFT as the width grows (mean over 8 seeds)."""
    x, y, _ = data
    errs = _width_errors(x, y, relu_dmft, (64, 256, 1024), 8, 1.0, 0.2, 20).mean(axis=1)
    assert errs[0] > errs[1] > errs[2]
    assert errs[0] / errs[2] > 2.5                          # ~N^{-1/2}: expected ratio 4


@pytest.mark.slow
def test_finite_width_exponent(data):
    """Fitted exponent of the error vs N is -1/2 within 3 standard errors."""
    x, y, _ = data
    dm = dynamics.dmft(mf(nets.Relu()), x, y, eta=0.2, steps=20, kernels="equal_time",
                       key=jax.random.PRNGKey(4), n_samples=400000)
    widths = np.array([64, 128, 256, 512, 1024, 2048])
    errs = _width_errors(x, y, dm, tuple(widths), 24, 1.0, 0.2, 20)
    mean, se = errs.mean(axis=1), errs.std(axis=1, ddof=1) / np.sqrt(errs.shape[1])
    ls = np.log(mean)
    w = (mean / se) ** 2                                   # 1 / var(log mean)
    a = np.vstack([np.log(widths), np.ones(len(widths))]).T
    cov = np.linalg.inv(a.T @ (w[:, None] * a))
    slope = (cov @ a.T @ (w * ls))[0]
    assert abs(slope + 0.5) < 3 * np.sqrt(cov[0, 0]) + 0.03


def _mup_deep_tanh(x, y, gamma0, eta, steps, width, depth, key):
    """Width-N muP tanh MLP with ``depth`` hidden layers, plain gradient descent (lr gamma0^2 N eta)."""
    d = x.shape[1]
    ks = jax.random.split(key, depth + 1)
    ws = ([jax.random.normal(ks[0], (width, d))]
          + [jax.random.normal(ks[i], (width, width)) for i in range(1, depth)]
          + [jax.random.normal(ks[depth], (width,))])

    def f(ws):
        h = x @ ws[0].T / np.sqrt(d)
        for w in ws[1:-1]:
            h = jnp.tanh(h) @ w.T / np.sqrt(width)
        return jnp.tanh(h) @ ws[-1] / (gamma0 * width)

    def step(ws, _):
        g = jax.grad(lambda w: 0.5 * jnp.mean((f(w) - y) ** 2))(ws)
        ws = [a - gamma0**2 * width * eta * b for a, b in zip(ws, g, strict=True)]
        return ws, f(ws)

    _, fs = jax.lax.scan(step, ws, None, length=steps)
    return jnp.concatenate([f(ws)[None], fs])


@pytest.mark.slow
def test_deep_tanh_networks_approach_dmft_with_responses():
    """L = 2 tanh: width-N networks approach the sampled DMFT (response functions included) as
    N grows, roughly as N^{-1/2}; the gradient-independence approximation plateaus far away."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 8))
    y = np.sign(x[:, 0])
    net = mf(nets.Tanh(), depth=2, gamma0=1.5)
    kw = dict(eta=0.2, steps=10, key=jax.random.PRNGKey(1), n_samples=8000, damping=1.0,
              tol=1e-8, max_iter=60)
    dm = np.asarray(dynamics.dmft(net, x, y, **kw).f_train)
    gi = np.asarray(dynamics.dmft(net, x, y, method="gradient_independence", **kw).f_train)
    errs, errs_gi = [], []
    for n in (256, 1024, 4096):
        run = jax.jit(lambda k, n=n: _mup_deep_tanh(x, y, 1.5, 0.2, 10, n, 2, k))
        fs = np.array([np.asarray(run(jax.random.PRNGKey(s))) for s in range(6)])
        errs.append(np.sqrt(np.mean((fs - dm) ** 2)))
        errs_gi.append(np.sqrt(np.mean((fs - gi) ** 2)))
    assert errs[0] > errs[1] > errs[2]
    assert errs[0] / errs[2] > 2.5                          # N^{-1/2} over 16x: 4
    assert errs_gi[2] > 4 * errs[2]


def test_float32(data, relu_dmft):
    """float32 run (its own samples) agrees with the float64 large-sample solution within 5 s.e."""
    x, y, _ = data
    n = 20000
    r32 = dynamics.dmft(mf(nets.Relu()), x.astype(np.float32), y.astype(np.float32),
                        eta=0.2, steps=20, key=jax.random.PRNGKey(7), n_samples=n)
    assert r32.f_train.dtype == jnp.float32 and r32.phi.dtype == jnp.float32
    assert r32.phi.shape == (1, 21, 21, P, P) and r32.ntk.shape == (21, P, P)
    scale = float(np.max(np.abs(relu_dmft.f_train)))
    np.testing.assert_allclose(r32.f_train, relu_dmft.f_train, atol=5 * 2 * scale / np.sqrt(n))
    np.testing.assert_allclose(np.asarray(r32.phi[0])[np.arange(21), np.arange(21)], relu_dmft.phi[0],
                               atol=5 * 3 * float(np.max(relu_dmft.phi)) / np.sqrt(n))


def test_errors(data):
    x, y, _ = data
    relu = mf(nets.Relu())
    kw = dict(eta=0.1, steps=5, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="max_memory"):
        dynamics.dmft(relu, x, y, **{**kw, "steps": 400}, n_samples=10**6)
    assert dynamics.dmft_memory(4, 400, n_samples=10**6) > 4 * 2**30
    with pytest.raises(ValueError, match="gamma0"):
        dynamics.dmft(relu, x, y, gamma0=-1.0, **kw)
    with pytest.raises(ValueError, match="eta"):
        dynamics.dmft(relu, x, y, **{**kw, "eta": 0.0})
    with pytest.raises(TypeError, match="steps"):
        dynamics.dmft(relu, x, y, **{**kw, "steps": 2.5})
    with pytest.raises(ValueError, match="closed_form"):
        dynamics.dmft(relu, x, y, method="closed_form", **kw)
    with pytest.raises(ValueError, match="method"):
        dynamics.dmft(relu, x, y, method="exact", **kw)
    with pytest.raises(ValueError, match="y must"):
        dynamics.dmft(relu, x, y[:2], **kw)
    no_activation = nets.serial(nets.Dense(8, b_std=None), nets.Dense(1, b_std=None))
    with pytest.raises(TypeError, match="activation"):
        dynamics.dmft(no_activation, x, y, **kw)
    with pytest.raises(ValueError, match="on_fail"):
        dynamics.dmft(relu, x, y, on_fail="ignore", **kw)
    with pytest.raises(ValueError, match="gamma0 = 0"):
        dynamics.dmft(mf(nets.Relu(), depth=2), x, y, gamma0=0.0, **kw)


def test_non_convergence(deep_linear, data):
    x, y, xt = data
    kw = dict(DEEP, method="closed_form", max_iter=2, tol=1e-12, x_test=xt[:1])
    with pytest.warns(RuntimeWarning, match="did not converge"):
        r = dynamics.dmft(DEEP_NET, x[:3], y[:3], **kw)
    assert not r.converged and len(r.residuals) == 2
    with pytest.raises(RuntimeError, match="did not converge"):
        dynamics.dmft(DEEP_NET, x[:3], y[:3], on_fail="raise", **kw)


def test_deep_linear_long_horizon_continues_in_time(monkeypatch):
    """gamma0^2 L t large: one Jacobi sweep over the whole horizon from the lazy start overshoots
    to inf/nan within a few sweeps; continuation in time (horizons 12, 24, 48) converges, and by
    causality its first 24 steps equal the solution for T = 24."""
    from widelimits.dynamics.dmft import _common, _linear

    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 16))
    y = x @ rng.standard_normal(16) / 4.0
    net = mf(nets.Identity(), depth=5, gamma0=1.5)
    kw = dict(eta=0.025, max_iter=300, kernels="equal_time")
    assert _common.schedule(48) == [12, 24, 48]
    x, y = jnp.asarray(x), jnp.asarray(y)
    solve = lambda steps, tol: dynamics.dmft(net, x, y, method="closed_form",  # noqa: E731
                                             steps=steps, tol=tol, key=jax.random.key(0), **kw)
    r = solve(48, 1e-8)
    assert r.converged and np.all(np.isfinite(np.asarray(r.delta)))
    half = solve(24, 1e-10)
    assert _maxdiff(r.delta[:25], half.delta) < 1e-7
    # the same fixed point attempted over the whole horizon at once
    monkeypatch.setattr(_common, "schedule", lambda steps: [steps])
    direct = _linear.solve_linear(x, y, None, depth=5, gamma0=1.5, steps=48, damping=0.6,
                                  tol=1e-8, progress=False, **kw)
    assert not direct.converged


def _plain_single_site(act, u, r, w0, dl, phi0, phis, gs, ra, rb, c):
    """One sample's deep single-site trajectory, written out step by step from the equations in
    ``dynamics.dmft._deep``'s docstring (no blocks, no running sums): u (L, T+1, Q), r (L-1, T+1, Q).
    Returns phi(h), g histories, (L, T+1, Q) each."""
    depth, t1, q = u.shape
    dphi = jax.vmap(jax.grad(act.fn))
    ph, g = [[] for _ in range(depth)], [[] for _ in range(depth)]
    w = w0
    for k in range(t1):
        for l in range(depth):
            past = lambda a, l=l, k=k: jnp.stack(a[l][:k]) if k else jnp.zeros((0, q))  # noqa: E731
            if l == 0:
                kern = c * phi0[None] * dl[:k, None, :]
            else:
                kern = c * phis[l - 1, k, :k] * dl[:k, None, :] + ra[l - 1, k, :k]
            h = u[l, k] + jnp.einsum("mab,mb->a", kern, past(g))
            ph[l].append(act.fn(h))
            if l == depth - 1:
                z = jnp.full((q,), w)
            else:
                kern = c * gs[l + 1, k, :k] * dl[:k, None, :] + rb[l, k, :k]
                z = r[l, k] + jnp.einsum("mab,mb->a", kern, past(ph)) + rb[l, k, k] @ ph[l][k]
            g[l].append(dphi(h) * z)
        w = w + c * dl[k] @ ph[-1][k]
    return jnp.stack([jnp.stack(a) for a in ph]), jnp.stack([jnp.stack(a) for a in g])


@functools.partial(jax.jit, static_argnums=0)
def _plain_site_and_jacobian(act, u, r, w0, dl, phi0, phis, gs, ra, rb, c):
    """The plain process of every sample (u (n, L, T+1, Q), r (n, L-1, T+1, Q), w0 (n,)) and
    its forward-mode Jacobians: phi(h), g, d phi(h) / d r and d g / d u (sources after t = 0)."""
    def site(uu, rr, w):
        return _plain_single_site(act, uu, rr, w, dl, phi0, phis, gs, ra, rb, c)

    def jac(uu, rr, w):
        fn = lambda a, b: site(uu.at[1:].set(a), b, w)  # noqa: E731
        return jax.jacfwd(fn, argnums=(0, 1))(uu[1:], rr)

    ph, g = jax.vmap(site)(u, r, w0)
    (_, dph_dr), (dg_du, _) = jax.vmap(jac)(u, r, w0)
    return ph, g, dph_dr, dg_du


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_deep_sweep_and_responses_match_the_plain_single_site_process(dtype):
    """The deep sampled DMFT's causal sweep (L = 3, two time blocks, a test point, nonzero
    responses) and its response functions against the plain step-by-step single-site process
    above, on the same samples:

    * the sweep's sources are a fixed point: drawn again from the kernels the sweep produced
      (full Cholesky factors of the (T+1) Q covariances, the same noise), they agree with the
      sweep's own up to the jitter;
    * from the sweep's sources, the plain process gives the sweep's fields;
    * RA^l = <d phi(h^l) / d r^l> and RB^l = <d g^{l+1} / d u^{l+1}> equal the sample means of
      jax.jacfwd of the plain process (all sources of all layers at once)."""
    from widelimits.dynamics.dmft import _deep, _sweep

    rng = np.random.default_rng(5)
    depth, steps, p, n = 3, 17, 3, 8
    jit = 1e-12 if dtype == np.float64 else 1e-3
    x, y = rng.standard_normal((p + 1, 5)).astype(dtype), rng.standard_normal(p).astype(dtype)
    act, g0, eta = nets.Tanh(), 1.5, 0.1
    phi0, noise = _deep._start(jnp.asarray(x), jnp.asarray(y), jax.random.key(0),
                                    depth=depth, steps=steps, n_samples=n)
    _, state = _deep._horizon(phi0, noise, y, depth, steps)
    for _ in range(2):                                               # nonzero responses
        state = _deep._iteration_jit(act, state, noise, phi0, y, g0, eta, 1.0, jit,
                                          responses=True, chunk=4)[0]
    assert len(_deep._blocks(steps + 1)) == 2
    ra, rb = state[3], state[4]
    fields = _sweep.sweep(act, noise, phi0, y, ra, rb, g0, eta, jit)
    c = g0 * eta / p
    st = (fields["delta"], fields["phi"], fields["g"], ra, rb)
    got_ra, got_rb = _deep._responses(act, st, phi0, fields, c, 4)
    delta, phis, gs, ra, rb = (np.asarray(a, np.float64) for a in st)
    t1, q = steps + 1, p + 1
    u, r = (np.asarray(fields[k], np.float64).transpose(3, 0, 1, 2) for k in ("u", "r"))
    w0 = np.asarray(noise[2], np.float64)
    # the fixed point: full Cholesky factors of the sweep's own kernels give its sources back
    chol = lambda k: np.linalg.cholesky(  # noqa: E731
        k + (jit * np.mean(np.diag(k)) + 1e-300) * np.eye(len(k)))
    flat = lambda k: k.transpose(0, 2, 1, 3).reshape(t1 * q, t1 * q)  # noqa: E731
    xi_u, xi_r = (np.asarray(a, np.float64) for a in noise[:2])
    again_u = np.stack([(xi_u[:, l] @ chol(flat(phis[l - 1])).T).reshape(n, t1, q)
                        for l in range(1, depth)], axis=1)
    again_r = np.stack([(xi_r[:, l] @ chol(flat(gs[l + 1])).T).reshape(n, t1, q)
                        for l in range(depth - 1)], axis=1)
    tol_src = 5e-4 if dtype == np.float64 else 0.2    # measured 7e-5 / 5e-2: the jitter's effect
    assert _maxdiff(again_u, u[:, 1:]) < tol_src and _maxdiff(again_r, r[:, :-1]) < tol_src
    dl = np.concatenate([delta, np.zeros((t1, 1))], axis=1)
    with jax.enable_x64(True):   # the reference in float64 for both dtypes (compiled once)
        ph, g, dph_dr, dg_du = _plain_site_and_jacobian(
            act, u, r[:, :-1], w0, dl, np.asarray(phi0, np.float64), phis, gs, ra, rb, c)
    want_ra = np.stack([dph_dr[:, l, :, :, l].mean(0) for l in range(depth - 1)])
    want_rb = np.stack([dg_du[:, l + 1, :, :, l].mean(0) for l in range(depth - 1)])
    tol = 1e-10 if dtype == np.float64 else 2e-4
    for got, want in ((fields["ph"], ph.transpose(1, 2, 3, 0)),
                      (fields["gf"], g.transpose(1, 2, 3, 0)),
                      (fields["phi"], np.einsum("nltq,nlsr->ltsqr", ph, ph) / n),
                      (got_ra, want_ra.transpose(0, 1, 3, 2, 4)),
                      (got_rb, want_rb.transpose(0, 1, 3, 2, 4))):
        assert _maxdiff(got, want) < tol * max(1.0, float(np.max(np.abs(want))))
    assert float(np.max(np.abs(want_ra))) > 1e-3 and float(np.max(np.abs(want_rb))) > 1e-2


def test_the_spec_defines_the_network(data):
    """``dynamics.dmft`` reads depth, activation and gamma0 = 1 / (readout w_std sqrt(N)) from
    the mean-field spec: the spec's gamma0 and an explicit ``gamma0=`` (overriding another
    spec's, of another width) give one result to round-off, as does the same network written
    out by hand (nested serials included); the width itself does not matter."""
    x, y, xt = data
    g0 = 0.7
    kw = dict(eta=0.2, steps=6, key=jax.random.PRNGKey(3), n_samples=500, x_test=xt)
    spec = dynamics.dmft(mf(nets.Tanh(), gamma0=g0, width=100), x, y, **kw)
    explicit = dynamics.dmft(mf(nets.Tanh(), gamma0=3.0, width=7), x, y, gamma0=g0, **kw)
    n = 10
    hand = nets.serial(nets.serial(nets.Dense(n, w_std=1.0, b_std=None), nets.Tanh()),
                       nets.Dense(1, w_std=1 / (g0 * np.sqrt(n)), b_std=None))
    by_hand = dynamics.dmft(hand, x, y, **kw)
    for other in (explicit, by_hand):
        for name in ("f_train", "f_test", "phi", "g", "ntk"):
            np.testing.assert_allclose(getattr(other, name), getattr(spec, name), rtol=1e-10,
                                       atol=1e-12, err_msg=name)
    assert _maxdiff(spec.f_train, dynamics.dmft(mf(nets.Tanh(), gamma0=1.4), x, y,
                                                **kw).f_train) > 1e-3   # gamma0 matters
    # the depth comes from the spec too (deep linear network, operator equations)
    deep = dict(method="closed_form", eta=0.1, steps=4, key=jax.random.PRNGKey(0), tol=1e-10)
    a = dynamics.dmft(mf(nets.Identity(), depth=3, gamma0=g0), x[:3], y[:3], **deep)
    b = dynamics.dmft(mf(nets.Identity(), depth=3, width=5), x[:3], y[:3], gamma0=g0, **deep)
    assert a.phi.shape[0] == 3
    np.testing.assert_allclose(a.f_train, b.f_train, rtol=1e-10, atol=1e-12)


def _dense(width, **kw):
    return nets.Dense(width, **({"b_std": None} | kw))


NOT_MEANFIELD = [
    (nets.serial(_dense(8), nets.LayerNorm(), nets.Relu(), _dense(1)), UnsupportedLayer,
     r"dynamics\.dmft: no mean-field rule for LayerNorm at serial\[1\]"),
    (nets.serial(_dense(8), nets.Relu(), nets.residual(_dense(8)), _dense(1)), UnsupportedLayer,
     "Residual"),
    (nets.mlp(8, 1, nets.Relu()), ValueError, r"has a bias \(b_std=0.0\)"),
    (nets.meanfield_mlp(8, 1, out_width=2), ValueError, "2 outputs"),
    (nets.serial(_dense(8, parameterization="standard"), nets.Relu(), _dense(1)), ValueError,
     "parameterization='standard'"),
    (nets.serial(_dense(8, weights="orthogonal"), nets.Relu(), _dense(1)), ValueError,
     "Gaussian weights"),
    (nets.serial(_dense(8, w_std=2.0), nets.Relu(), _dense(1)), ValueError, "w_std=1"),
    (nets.serial(_dense(8), nets.Relu(), _dense(8), nets.Tanh(), _dense(1)), ValueError,
     "one activation"),
    (nets.serial(_dense(8), nets.Relu(), _dense(4), nets.Relu(), _dense(1)), ValueError,
     "one width"),
    (nets.serial(_dense(8), _dense(8), nets.Relu(), _dense(1)), TypeError,
     r"serial\[0\].*must be followed by an activation"),
    (nets.serial(nets.Relu(), _dense(1)), TypeError, "must follow a hidden Dense"),
    (nets.serial(_dense(8), nets.Relu()), TypeError, "must end in the readout"),
    (_dense(1), TypeError, "at least one hidden layer"),
    (jnp.tanh, TypeError, "meanfield_mlp"),
]


@pytest.mark.parametrize("net, err, match", NOT_MEANFIELD)
def test_a_spec_that_is_not_mean_field_is_refused(data, net, err, match):
    x, y, _ = data
    with pytest.raises(err, match=match):
        dynamics.dmft(net, x, y, eta=0.1, steps=2, key=jax.random.PRNGKey(0))
