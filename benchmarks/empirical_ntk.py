"""Empirical NTK: widelimits' three methods vs neural-tangents' three implementations.

Cases (float32, trace over the logits, x2 = None):
* ``mlp``: 3 hidden ReLU layers of width 2048, 8 outputs, n = 16 inputs of dimension 64; ours
  runs on ``nets.mlp(2048, 3, Relu, out_width=8, b_std=1)`` (jacobian, ntvp, structured) and
  NT on the same function written in pure JAX (``_bench_nets.mlp_apply``) with the same
  parameters;
* ``cnn``: two 3x3 convolutions with 32 channels on 16 x 8x8x3 images, 8 outputs; both sides
  differentiate ``_bench_nets.cnn_apply`` (our jacobian and ntvp; "structured" is for our specs).
* ``memory``: our structured method on ``nets.mlp(8192, 3, out_width=8)`` with n = 32, whose
  per-input Jacobians would hold 32 x 8 x 134M floats (137 GB); peak RSS is reported.

Usage: ``.venv/bin/python benchmarks/empirical_ntk.py [--ntref /tmp/ntref/bin/python]
[--reps 5] [--json PATH]``. NT/ours >= 1 means widelimits' best method is faster.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _bench_nets import cnn_apply  # noqa: E402

from widelimits import kernels, nets  # noqa: E402


def _time(fn, reps):
    t = time.perf_counter()
    out = jax.block_until_ready(fn())
    compile_s = time.perf_counter() - t
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return out, compile_s, statistics.median(times)


def _mlp_case():
    net = nets.mlp(2048, 3, nets.Relu(), out_width=8, b_std=1.0)
    x = jax.random.normal(jax.random.key(0), (16, 64), jnp.float32)
    params = net.init(jax.random.key(1), x.shape)
    flat = {f"W{i}": p["W"] for i, p in enumerate(params[::2])}
    flat.update({f"b{i}": p["b"] for i, p in enumerate(params[::2])})
    return net, params, x, flat


def _cnn_case():
    keys = jax.random.split(jax.random.key(2), 6)
    flat = {"C0": jax.random.normal(keys[0], (3, 3, 3, 32)),
            "C1": jax.random.normal(keys[1], (3, 3, 32, 32)),
            "c0": jax.random.normal(keys[2], (32,)), "c1": jax.random.normal(keys[3], (32,)),
            "W": jax.random.normal(keys[4], (32, 8)), "b": jax.random.normal(keys[5], (8,))}
    x = jax.random.normal(jax.random.key(3), (16, 8, 8, 3), jnp.float32)
    return cnn_apply, flat, x, flat


def _nt(ntref, kind, flat, x, reps, tmp):
    case = os.path.join(tmp, f"{kind}.npz")
    np.savez(case, kind=kind, reps=reps, x=np.asarray(x),
             **{k: np.asarray(v) for k, v in flat.items()})
    out = os.path.join(tmp, f"{kind}_nt.json")
    worker = os.path.join(os.path.dirname(__file__), "_ntref_empirical_worker.py")
    subprocess.run([ntref, worker, case, out], check=True)
    with open(out) as fh:
        res = json.load(fh)
    for k, v in res.items():
        if "error" in v:
            print(f"  NT {k} failed: {v['error']}")
    return {k: (np.load(v["path"]), v["compile_s"], statistics.median(v["times_s"]))
            for k, v in res.items() if "error" not in v}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ntref", default="/tmp/ntref/bin/python")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json")
    args = ap.parse_args()
    have_nt = os.path.exists(args.ntref)
    if not have_nt:
        print(f"no neural-tangents venv at {args.ntref} (bash ../shared/reference/ntref_env.sh "
              "/tmp/ntref builds it); timing widelimits alone.")
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, make, methods in (("mlp", _mlp_case, ("jacobian", "ntvp", "structured")),
                                    ("cnn", _cnn_case, ("jacobian", "ntvp"))):
            f, params, x, flat = make()
            ours = {m: _time(lambda m=m, f=f, p=params, x=x: kernels.empirical_ntk(
                f, p, x, method=m), args.reps) for m in methods}
            theirs = _nt(args.ntref, kind, flat, x, args.reps, tmp) if have_nt else {}
            ref = next(iter(ours.values()))[0]
            print(f"\n{kind}: median ms (compile ms), max rel. diff to our {methods[0]}")
            for name, (k, c, t) in [*ours.items(), *(("NT " + n, v) for n, v in theirs.items())]:
                diff = float(np.abs(np.asarray(k) - ref).max() / np.abs(ref).max())
                print(f"  {name:28s} {t * 1e3:9.1f} ({c * 1e3:8.0f})  {diff:.1e}")
            best = min(v[2] for v in ours.values())
            entry = {"ours_ms": {m: v[2] * 1e3 for m, v in ours.items()},
                     "nt_ms": {m: v[2] * 1e3 for m, v in theirs.items()}}
            if theirs:
                entry["nt_best_over_ours_best"] = min(v[2] for v in theirs.values()) / best
                print(f"  NT best / ours best = {entry['nt_best_over_ours_best']:.2f}")
            report[kind] = entry
    net = nets.mlp(8192, 3, nets.Relu(), out_width=8)
    x = jax.random.normal(jax.random.key(4), (32, 64), jnp.float32)
    params = net.init(jax.random.key(5), x.shape)
    _, c, t = _time(lambda: kernels.empirical_ntk(net, params, x, method="structured"), 1)
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    n_params = sum(a.size for a in jax.tree.leaves(params))
    jac_gb = 32 * 8 * n_params * 4 / 1e9
    print(f"\nmemory: structured NTK of mlp(8192, 3, out_width=8), n=32: {t:.1f} s; peak RSS "
          f"{rss_gb:.1f} GiB; the Jacobians would take {jac_gb:.0f} GB.")
    report["memory"] = {"seconds": t, "peak_rss_gib": rss_gb, "jacobian_gb": jac_gb}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
