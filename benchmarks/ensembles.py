"""Networks per second of ``finite.output_samples`` (vmapped chunks) vs a per-network Python loop.

    .venv/bin/python benchmarks/ensembles.py [--quick] [--json PATH]

Network: ``serial(Dense(N, 1, 0.1), Relu(), Dense(1, 1, 0.1))`` (NTK parameterization) for
N = 8, 32, 128, at 4 inputs x ~ N(0, 1) of dimension 8, float32 (x64 off).

* **loop**: ``f = jax.jit(lambda k: net.apply(net.init(k, x.shape), x))`` called once per network
  key in a Python loop, each output fetched to NumPy (what a user writing the obvious loop gets);
  ``--loop`` networks (default 2000) after one warm-up call, rate = networks / seconds.
* **vmapped**: ``finite.output_samples(net, key, x, n, chunk_size=...)`` with ``method="params"``
  (``vmap`` of the same init + apply, parameters of one chunk at a time) and ``"collapsed"`` (each
  Dense layer drawn from its conditional Gaussian law given the previous layer: same law, fewer
  random numbers). One untimed call of one chunk compiles; then ``n`` networks (default 10^6,
  ``--quick`` 10^5) are timed end to end (all chunks, results in NumPy).

Ratio = vmapped rate / loop rate (goal >= 50). Also printed: the rate of one big
``jax.random.normal`` call, which bounds every sampler (threefry on CPU), and how close each
vmapped run comes to it. Timings are wall-clock on whatever else runs on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax

jax.config.update("jax_enable_x64", False)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from widelimits import finite, nets  # noqa: E402

WIDTHS = (8, 32, 128)
N_INPUTS, D_IN = 4, 8


def make_net(width):
    return nets.serial(nets.Dense(width, 1.0, 0.1), nets.Relu(), nets.Dense(1, 1.0, 0.1))


def loop_rate(net, x, n):
    f = jax.jit(lambda k: net.apply(net.init(k, x.shape), x))
    keys = list(jax.random.split(jax.random.key(1), n + 2))  # a list: no indexing in the loop
    np.asarray(f(keys[0]))
    np.asarray(f(keys[1]))
    t = time.perf_counter()
    for k in keys[2:]:
        np.asarray(f(k))
    return n / (time.perf_counter() - t)


def normals_rate(n=10_000_000):
    """Standard normals per second of one jitted ``jax.random.normal`` call (the RNG bound)."""
    f = jax.jit(lambda k: jax.random.normal(k, (n,)))
    f(jax.random.key(0)).block_until_ready()
    t = time.perf_counter()
    f(jax.random.key(1)).block_until_ready()
    return n / (time.perf_counter() - t)


def vmapped_rate(net, x, n, chunk, method):
    key = jax.random.key(2)
    finite.output_samples(net, key, x, chunk, chunk_size=chunk, method=method, progress=False)
    t = time.perf_counter()
    out = finite.output_samples(net, key, x, n, chunk_size=chunk, method=method, progress=False)
    dt = time.perf_counter() - t
    assert out.shape == (n, N_INPUTS, 1) and np.all(np.isfinite(out))
    return n / dt


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10^5 networks instead of 10^6")
    parser.add_argument("--networks", type=int, default=None, help="networks per vmapped run")
    parser.add_argument("--loop", type=int, default=2000, help="networks timed in the loop")
    parser.add_argument("--chunk", type=int, default=16384, help="chunk_size of output_samples")
    parser.add_argument("--json", default=None, help="write the rates to this JSON file")
    args = parser.parse_args()
    n = args.networks or (100_000 if args.quick else 1_000_000)
    loop_n = min(args.loop, 500) if args.quick else args.loop
    x = jnp.asarray(np.random.default_rng(0).normal(size=(N_INPUTS, D_IN)), jnp.float32)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs; "
          f"{n:,} networks per vmapped run (chunks of {args.chunk:,}), {loop_n:,} in the loop; "
          f"{N_INPUTS} inputs of dimension {D_IN}, float32")
    print(f"{'width':>6} {'loop net/s':>12} {'params net/s':>14} {'collapsed net/s':>16} "
          f"{'params/loop':>12} {'collapsed/loop':>15}")
    rows = []
    for width in WIDTHS:
        net = make_net(width)
        r_loop = loop_rate(net, x, loop_n)
        r_par = vmapped_rate(net, x, n, args.chunk, "params")
        r_col = vmapped_rate(net, x, n, args.chunk, "collapsed")
        rows.append(dict(width=width, loop=r_loop, params=r_par, collapsed=r_col))
        print(f"{width:6d} {r_loop:12,.0f} {r_par:14,.0f} {r_col:16,.0f} {r_par / r_loop:12.1f} "
              f"{r_col / r_loop:15.1f}")
    rng = normals_rate()
    print(f"RNG bound: {rng:,.0f} normals/s (one jax.random.normal call); a network needs "
          f"{D_IN + 3} x N + 1 normals (params) or about {N_INPUTS + 1} x N (collapsed)")
    for r in rows:
        w = r["width"]
        print(f"  N = {w}: params at {r['params'] * ((D_IN + 3) * w + 1) / rng:.0%} of the bound, "
              f"collapsed at {r['collapsed'] * (N_INPUTS + 1) * w / rng:.0%}")
    for r in rows:
        w = r["width"]
        best = max(r["params"], r["collapsed"]) / r["loop"]
        # no sampler beats the RNG: the loop's time per network over the bound's
        ceiling = rng / ((N_INPUTS + 1) * w) / r["loop"]
        print(f"  N = {w}: best vmapped/loop {best:.1f} (goal >= 50: "
              f"{'met' if best >= 50 else 'NOT met'}; the RNG bound allows at most {ceiling:.0f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(networks=n, loop_networks=loop_n, chunk=args.chunk, rows=rows,
                           normals_per_second=rng), f, indent=1)


if __name__ == "__main__":
    main()
