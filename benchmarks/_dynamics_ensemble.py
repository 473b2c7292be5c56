"""Ensemble training: one vmapped compiled program vs a Python loop over seeds.

    .venv/bin/python benchmarks/_dynamics_ensemble.py [--quick] [--models 64] [--width 512]

Both sides train the same ``n_models`` MLPs ``nets.mlp(width, depth, nets.Relu())`` (NTK
parameterization, one output, seeds 0 .. n_models - 1) by full-batch gradient descent
(``optax.sgd``) with the MSE loss on the same n = 64 inputs x ~ N(0, I_16) and targets
y = sin(x_0) + noise, in float32:

* **vmapped**: ``dynamics.train(net.apply, params, x, y, opt, steps, ensemble=True,
  record_every=steps, chunk_size=steps)``: all members in one compiled ``lax.scan``.
* **mapped**: the same with ``ensemble_mode="map"``: the members one after another inside one
  compiled program (``lax.map``), one matrix product per member instead of a batched one.
* **loop**: for each seed, ``steps`` calls from Python of one jitted gradient step
  ``(params, opt_state) -> (params, opt_state)`` (compiled once, reused for every seed).

Times are wall seconds after compilation (each side is run once untimed first, with the same
shapes; ``*_first_call_s`` is that first call: compilation plus one run), ended by
``block_until_ready``. ``ratio = loop_s / vmapped_s``, ``ratio_mapped = loop_s / mapped_s``.
``compute_s`` is n_models times one member's steps run as one compiled ``lax.scan`` (no Python
dispatch), and ``ceiling = loop_s / compute_s``: where the loop is compute-bound (width 512:
about 100 MFLOP per step) the ceiling is near 1 and no single program can be much faster.
``max_rel_diff`` compares the compiled runs' final training losses with the loop's (max over
members and modes of |a - b| / |b|).
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from widelimits import dynamics, nets

N, D_IN = 64, 16


def _data():
    kx, ky = jax.random.split(jax.random.PRNGKey(1234))
    x = jax.random.normal(kx, (N, D_IN), jnp.float32)
    y = jnp.sin(x[:, :1]) + 0.1 * jax.random.normal(ky, (N, 1), jnp.float32)
    return x, y


def bench_ensemble(n_models: int = 64, width: int = 512, steps: int = 1000, depth: int = 2,
                   learning_rate: float = 0.5, quick: bool = False) -> dict:
    """Time ``n_models`` MLPs trained ``steps`` steps: vmapped ``dynamics.train`` vs a Python loop
    over seeds calling one jitted step (and ``ensemble_mode="map"``). ``quick=True`` uses 100
    steps. Returns a dict of the configuration, ``vmapped_s``, ``mapped_s``, ``loop_s``,
    ``ratio`` (loop / vmapped), ``ratio_mapped`` (loop / mapped), ``compute_s`` (n_models times
    one member's steps compiled as one ``lax.scan``: the loop's arithmetic without its dispatch),
    ``ceiling`` (loop / compute: the speed-up that removing dispatch can give unless batching
    makes the arithmetic itself faster) and ``max_rel_diff`` (final losses of the compiled runs
    vs the loop)."""
    if quick:
        steps = min(steps, 100)
    x, y = _data()
    net = nets.mlp(width, depth, nets.Relu())
    opt = optax.sgd(learning_rate)
    keys = jax.random.split(jax.random.PRNGKey(0), n_models)
    params = jax.tree.map(lambda a: a.astype(jnp.float32),
                          jax.vmap(net.init, (0, None))(keys, x.shape))

    def ensemble(mode):
        res = dynamics.train(net.apply, params, x, y, opt, steps, ensemble=True,
                             ensemble_mode=mode, record_every=steps, chunk_size=steps,
                             progress=False)
        return jax.block_until_ready(res.loss[:, -1])

    def loss_fn(p):
        return 0.5 * jnp.mean((net.apply(p, x) - y) ** 2)

    @jax.jit
    def step(p, s):
        g = jax.grad(loss_fn)(p)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s

    final_loss = jax.jit(loss_fn)

    def loop(n_steps):
        out = []
        for e in range(n_models):
            p = jax.tree.map(lambda a, e=e: a[e], params)
            s = opt.init(p)
            for _ in range(n_steps):
                p, s = step(p, s)
            out.append(final_loss(p))
        return np.asarray(jax.block_until_ready(jnp.stack(out)))

    first, timed, final = {}, {}, {}
    for mode in ("vmap", "map"):
        t0 = time.perf_counter()
        ensemble(mode)
        first[mode] = time.perf_counter() - t0
    loop(1)  # compiles the step and the loss
    for mode in ("vmap", "map"):
        t0 = time.perf_counter()
        final[mode] = np.asarray(ensemble(mode))
        timed[mode] = time.perf_counter() - t0
    t0 = time.perf_counter()
    b = loop(steps)
    loop_s = time.perf_counter() - t0

    @jax.jit
    def one_member(p):  # the loop's work for one member without its Python dispatch
        return jax.lax.scan(lambda c, _: (step(*c), None), (p, opt.init(p)), None,
                            length=steps)[0][0]

    p0 = jax.tree.map(lambda a: a[0], params)
    jax.block_until_ready(one_member(p0))
    t0 = time.perf_counter()
    jax.block_until_ready(one_member(p0))
    compute_s = n_models * (time.perf_counter() - t0)
    return {
        "n_models": n_models, "width": width, "depth": depth, "steps": steps, "n": N,
        "d_in": D_IN, "learning_rate": learning_rate, "dtype": "float32",
        "devices": f"{jax.device_count()} x {jax.devices()[0].platform}",
        "vmapped_first_call_s": first["vmap"], "vmapped_s": timed["vmap"],
        "mapped_first_call_s": first["map"], "mapped_s": timed["map"], "loop_s": loop_s,
        "ratio": loop_s / timed["vmap"], "ratio_mapped": loop_s / timed["map"],
        "compute_s": compute_s, "ceiling": loop_s / compute_s,
        "max_rel_diff": float(max(np.max(np.abs(a - b) / np.abs(b)) for a in final.values())),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100 steps instead of 1000")
    ap.add_argument("--models", type=int, default=64)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--json", help="also write the result dict to this path")
    args = ap.parse_args(argv)
    res = bench_ensemble(args.models, args.width, args.steps, args.depth, quick=args.quick)
    for key, value in res.items():
        print(f"{key:>18}: {value:.4g}" if isinstance(value, float) else f"{key:>18}: {value}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
