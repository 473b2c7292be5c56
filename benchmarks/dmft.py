"""Time ``widelimits.dynamics.dmft`` against NumPy transcriptions and against width-N networks.

    .venv/bin/python benchmarks/dmft.py [--quick] [--reps 3]

Cases: two-layer ReLU (P=25, D=40, T=200, eta=0.075, gamma0=1, 2000 samples) and deep tanh
(L=3, P=10, D=25, T=100, eta=0.1, gamma0=1, gradient-independence method, 2000 samples: one
causal sweep against the reference algorithm's damped fixed-point iterations); the
response functions of one deep outer iteration (L=3, P=10, T=30, 128 samples) against
jax.jacfwd through a plain scan (``_dmft_jacfwd``). Prints seconds per solve (compile excluded,
minimum over --reps), the ratios, and the width N at which gradient descent of a width-N muP
network matches the DMFT as well as the DMFT's own Monte Carlo error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
jax.config.update("jax_enable_x64", True)

import _dmft_jacfwd as jacfwd_ref  # noqa: E402
import _dmft_numpy as ref  # noqa: E402

from widelimits import dynamics, nets  # noqa: E402


def best_time(fn, reps):
    out = fn()
    jax.block_until_ready(out)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return min(times), out


def mup_net_predictions(x, y, gamma0, eta, steps, width, key):
    """Width-N muP two-layer ReLU net trained by gradient descent (lr gamma0^2 N eta)."""
    d = x.shape[1]
    k1, k2 = jax.random.split(key)
    params = (jax.random.normal(k1, (width, d)), jax.random.normal(k2, (width,)))

    def f(p):
        return jax.nn.relu(x @ p[0].T / np.sqrt(d)) @ p[1] / (gamma0 * width)

    def step(p, _):
        g = jax.grad(lambda p: 0.5 * jnp.mean((f(p) - y) ** 2))(p)
        p = jax.tree.map(lambda a, b: a - gamma0**2 * width * eta * b, p, g)
        return p, f(p)

    _, fs = jax.lax.scan(step, params, None, length=steps)
    return jnp.concatenate([f(params)[None], fs])


def two_layer(quick, reps):
    p, d, steps, eta, g0, n = (10, 20, 50, 0.075, 1.0, 2000) if quick else \
        (25, 40, 200, 0.075, 1.0, 2000)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((p, d))
    y = np.sign(x[:, 0])
    print(f"\n## two-layer ReLU: P={p}, D={d}, T={steps}, eta={eta}, gamma0={g0}, "
          f"n_samples={n}")
    print(f"memory estimate (kernels='full'): "
          f"{dynamics.dmft_memory(p, steps, n_samples=n) / 2**20:.1f} MiB; "
          f"(kernels='equal_time'): "
          f"{dynamics.dmft_memory(p, steps, n_samples=n, kernels='equal_time') / 2**20:.1f} MiB")
    key = jax.random.PRNGKey(0)
    net = nets.meanfield_mlp(1000, 1, nets.Relu(), g0)  # any width: the DMFT is N -> infinity
    run = lambda: dynamics.dmft(net, x, y, eta=eta, steps=steps, key=key,  # noqa: E731
                                n_samples=n, kernels="equal_time").f_train
    t_jax, f_jax = best_time(run, reps)
    t_np, (f_np, _) = best_time(lambda: ref.two_layer_sweep(x, y, g0, eta, steps, n), reps)
    t_damp, f_damp = best_time(lambda: ref.two_layer_damped(x, y, g0, eta, steps, n),
                               max(1, reps // 3))
    t_full, _ = best_time(lambda: dynamics.dmft(net, x, y, eta=eta, steps=steps, key=key,
                                                n_samples=n).phi, 1)
    print(f"widelimits dmft (causal sweep, jit)      : {t_jax:8.4f} s")
    print(f"  + two-time kernels Phi(t,s), G(t,s)     : {t_full:8.4f} s")
    print(f"NumPy, same sweep                        : {t_np:8.4f} s   ratio {t_np / t_jax:6.1f}x")
    print(f"NumPy, damped iteration (15 it., Euler)  : {t_damp:8.4f} s   ratio "
          f"{t_damp / t_jax:6.1f}x")
    # accuracy: reference DMFT with many samples; MC error of the n-sample solve
    f_ref = np.asarray(dynamics.dmft(net, x, y, eta=eta, steps=steps,
                                     key=jax.random.PRNGKey(99), n_samples=100 * n,
                                     kernels="equal_time").f_train)
    rms = lambda f: float(np.sqrt(np.mean((np.asarray(f) - f_ref) ** 2)))  # noqa: E731
    mc = np.mean([rms(dynamics.dmft(net, x, y, eta=eta, steps=steps,
                                    key=jax.random.PRNGKey(s), n_samples=n,
                                    kernels="equal_time").f_train) for s in range(4)])
    print(f"DMFT Monte Carlo error (rms vs 100x samples): {mc:.4f}; NumPy sweep {rms(f_np):.4f};"
          f" damped-iteration NumPy (Euler in Delta) {rms(f_damp):.4f}")
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    for width in (500, 1000, 2000, 4000, 8000, 16000):
        net = jax.jit(lambda k, w=width: mup_net_predictions(xj, yj, g0, eta, steps, w, k))
        errs = [rms(net(jax.random.PRNGKey(s))) for s in range(4)]
        t_net, _ = best_time(lambda net=net: net(jax.random.PRNGKey(0)), reps)
        print(f"  width-{width:<6d} network: rms error vs DMFT {np.mean(errs):.4f}, "
              f"train time {t_net:.4f} s")
        if np.mean(errs) <= mc:
            print(f"  -> a width-{width} network matches the DMFT to its Monte Carlo error")
            break


def deep(quick, reps):
    depth, p, d, steps, eta, g0, n = (3, 5, 25, 30, 0.1, 1.0, 2000) if quick else \
        (3, 10, 25, 100, 0.1, 1.0, 2000)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((p, d))
    y = np.sign(x[:, 0])
    print(f"\n## deep tanh, gradient independence: L={depth}, P={p}, T={steps}, n_samples={n}")
    mem = dynamics.dmft_memory(p, steps, depth=depth, n_samples=n, method="gradient_independence")
    print(f"memory estimate: {mem / 2**20:.1f} MiB")
    net = nets.meanfield_mlp(1000, depth, nets.Tanh(), g0)  # any width
    kw = dict(eta=eta, steps=steps, key=jax.random.PRNGKey(0), n_samples=n,
              method="gradient_independence", kernels="equal_time")
    t_jax, res = best_time(lambda: dynamics.dmft(net, x, y, **kw).f_train, 1)
    it = 10
    t1 = steps + 1
    phis = np.broadcast_to(x @ x.T / d, (depth, t1, t1, p, p)).copy()
    gs = np.ones((depth, t1, t1, p, p))
    delta = np.tile(y, (t1, 1))
    t = time.perf_counter()
    ref.deep_gradient_independence(x, y, g0, eta, steps, n, depth, phis, gs, delta)
    t_np = time.perf_counter() - t
    print(f"widelimits dmft, one causal sweep (the exact solution): {t_jax:8.3f} s")
    print(f"NumPy, one damped fixed-point iteration of the reference algorithm: {t_np:8.3f} s   "
          f"ratio {t_np / t_jax:6.1f}x")
    print(f"NumPy, {it} iterations (not yet converged at this horizon): {it * t_np:8.3f} s   "
          f"ratio {it * t_np / t_jax:6.1f}x")


def responses(quick, reps):
    """One outer iteration's response functions: the layer-wise blocked recursion against
    jax.jacfwd through a plain scan of all layers (``_dmft_jacfwd``), on the same samples."""
    from widelimits.dynamics.dmft import _deep as deep_solver
    from widelimits.dynamics.dmft._sweep import sweep
    depth, p, steps, n = (3, 10, 20, 64) if quick else (3, 10, 30, 128)
    g0, eta = 1.0, 0.1
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((p, 25)))
    y = jnp.asarray(np.sign(np.asarray(x[:, 0])))
    act = nets.Elementwise(lambda h: jnp.tanh(0.8 * h) / 0.8)
    print(f"\n## deep tanh, response functions of one outer iteration: L={depth}, P={p}, "
          f"T={steps}, n_samples={n}")
    phi0, noise = deep_solver._start(x, y, jax.random.PRNGKey(0), depth=depth, steps=steps,
                                     n_samples=n)
    _, state = deep_solver._horizon(phi0, noise, y, depth, steps)
    chunk = deep_solver.response_chunk(n, steps + 1, p)
    for _ in range(2):                                   # time-dependent kernels and responses
        state = deep_solver._iteration_jit(act, state, noise, phi0, y, g0, eta, 0.6, 1e-10,
                                           responses=True, chunk=chunk)[0]
    fields = jax.jit(lambda st: sweep(act, noise, phi0, y, st[3], st[4], g0, eta, 1e-10))(state)
    state = (fields["delta"], fields["phi"], fields["g"]) + state[3:]
    c = g0 * eta / p
    ours = jax.jit(lambda st, fl: deep_solver._responses(act, st, phi0, fl, c, chunk))
    t_ours, (ra, rb) = best_time(lambda: ours(state, fields), reps)
    u = fields["u"].transpose(3, 0, 1, 2)                # (n, L, T+1, Q)
    r = fields["r"][:-1].transpose(3, 0, 1, 2)
    dl = state[0]
    base = jax.jit(lambda st, u, r, w0: jacfwd_ref.responses(
        act, u, r, w0, dl, phi0, st[1][:-1], st[2][1:], st[3], st[4], c, min(n, 32)))
    t_base, (ra0, rb0) = best_time(lambda: base(state, u, r, noise[2]), max(1, reps // 3))
    diff = max(float(jnp.max(jnp.abs(ra - ra0))), float(jnp.max(jnp.abs(rb - rb0))))
    print(f"jax.jacfwd through one scan of all layers: {t_base:8.3f} s")
    print(f"widelimits, layer by layer, time blocks  : {t_ours:8.3f} s   ratio "
          f"{t_base / t_ours:6.1f}x   (max |difference| {diff:.1e})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    print(f"jax {jax.__version__}, devices {jax.devices()}, cpu count {os.cpu_count()}")
    two_layer(args.quick, args.reps)
    deep(args.quick, args.reps)
    responses(args.quick, args.reps)


if __name__ == "__main__":
    main()
