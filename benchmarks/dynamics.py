"""Time kernel-limit training dynamics against neural-tangents 0.6.5 on the same machine.

    .venv/bin/python benchmarks/dynamics.py --ntref /tmp/ntref/bin/python [--quick]

(a) Closed-form MSE predictions of an infinite ensemble: the mean test predictions at T = 100
times (``ts = logspace(0, 6, 100)`` steps, learning rate 1, diag_reg 0) for n = 2000 train and
m = 500 test points (``--quick``: 1000 / 250), k = 10 outputs with targets y ~ N(0, 1).
Kernels: ``kernels.analytic`` of ``nets.mlp(512, 3, nets.Relu(), w_std=1.5, b_std=0.1)`` on
x ~ N(0, I_32) (seed 0), float32 (x64 disabled on both sides); the NTK is handed to the worker
as .npy files, so both libraries start from the same kernels.

* ours: ``dynamics.gradient_descent_mse_ensemble((nngp_tt, ntk_tt), y, 1.0)(ts, (nngp_xt,
  ntk_xt), compute_cov=False).mean``;
* NT: ``predict.gradient_descent_mse_ensemble(kernel_fn, x_train, y, 1.0)(t=ts, x_test=x_test,
  get="ntk", compute_cov=False)``, ``kernel_fn`` returning the same NTK blocks.

Both use the loss ``½ Σ (f − y)² / y.size`` and time in steps of size η (NT: ``t *
learning_rate`` in ``exp(−λ t / y_train.size)``, predict.py), so the numbers are identical
in exact arithmetic; agreement is reported as max |a − b| / max |b| between the two and
against a float64 numpy evaluation (eigh in float64).

Two modes, each timed after its first call (compile / first call reported separately):
* **full**: one jitted function kernels -> predictions, the ``eigh`` included in every call;
* **cached**: the predictor is built once (one ``eigh``; NT caches it in its ``predict_fn`` on
  the first call) and each timed call predicts, eagerly, at the 100 times.
The two sides' timed calls alternate call by call; steady = median.

(b) ``_dynamics_ensemble.bench_ensemble`` (vmapped finite-width ensemble training vs a Python
loop), when that module is present: 64 MLPs of width 512 (the goal's case), then widths 8, 32
and 128 for 100 steps, with the ceiling that removing Python dispatch allows.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", False)

from _jsonlines import Worker  # noqa: E402
from analytic_kernels import BUILD_HINT, DEFAULT_NTREF, library_revision, ntref_problem  # noqa: E402

from widelimits import dynamics, kernels, nets  # noqa: E402

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_ntref_dynamics_worker.py"
WIDTH, DEPTH, W_STD, B_STD, D_IN, K_OUT, SEED = 512, 3, 1.5, 0.1, 32, 10, 0
LR, N_TIMES = 1.0, 100
MIN_REPS = 3


def make_data(n, m):
    net = nets.mlp(WIDTH, DEPTH, nets.Relu(), out_width=1, w_std=W_STD, b_std=B_STD)
    rng = np.random.default_rng(SEED)
    x = jnp.asarray(rng.standard_normal((n + m, D_IN)).astype(np.float32))
    k = jax.jit(lambda x: kernels.analytic(net, x))(x)
    nngp, ntk = np.asarray(k.nngp), np.asarray(k.ntk)
    y = rng.standard_normal((n, K_OUT)).astype(np.float32)
    ts = np.logspace(0, 6, N_TIMES).astype(np.float32)
    return dict(nngp_tt=nngp[:n, :n], ntk_tt=ntk[:n, :n], nngp_xt=nngp[n:, :n],
                ntk_xt=ntk[n:, :n], y=y, ts=ts)


def reference_f64(d):
    lam, v = np.linalg.eigh(d["ntk_tt"].astype(np.float64))
    y = d["y"].astype(np.float64)
    x = LR * np.maximum(lam, 0)[None] * d["ts"].astype(np.float64)[:, None] / y.size
    phi = -np.expm1(-x) / lam[None]
    b = d["ntk_xt"].astype(np.float64) @ v
    return np.einsum("ij,tj,jk->tik", b, phi, v.T @ y), lam


class Ours:
    def __init__(self, d):
        self.tt = (jnp.asarray(d["nngp_tt"]), jnp.asarray(d["ntk_tt"]))
        self.xt = (jnp.asarray(d["nngp_xt"]), jnp.asarray(d["ntk_xt"]))
        self.y, self.ts = jnp.asarray(d["y"]), jnp.asarray(d["ts"])
        self.full = jax.jit(lambda tt, xt, y, ts: dynamics.gradient_descent_mse_ensemble(
            tt, y, LR)(ts, xt, compute_cov=False).mean)

    def setup(self):
        t0 = time.perf_counter()
        self.out_full = jax.block_until_ready(self.full(self.tt, self.xt, self.y, self.ts))
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.pred = dynamics.gradient_descent_mse_ensemble(self.tt, self.y, LR)
        self.out_cached = jax.block_until_ready(self.cached())
        return {"compile_s": compile_s, "cached_first_s": time.perf_counter() - t0}

    def cached(self):
        return self.pred(self.ts, self.xt, compute_cov=False).mean

    def time(self, mode, calls):
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            if mode == "full":
                jax.block_until_ready(self.full(self.tt, self.xt, self.y, self.ts))
            else:
                jax.block_until_ready(self.cached())
            times.append(time.perf_counter() - t0)
        return times


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def bench_closed_form(n, m, nt, args, tmp):
    d = make_data(n, m)
    for key in ("ntk_tt", "ntk_xt", "y", "ts"):
        np.save(tmp / f"{key}.npy", d[key])
    ref, lam = reference_f64(d)
    res = {"n": n, "m": m, "k": K_OUT, "T": N_TIMES,
           "ntk_eigenvalues": [float(lam[0]), float(lam[-1])]}
    ours = Ours(d)
    res["ours"] = ours.setup()
    if nt is not None:
        res["nt"] = nt.request(cmd="setup", name="cf", dir=str(tmp), learning_rate=LR)
    for mode in ("full", "cached"):
        t_o = ours.time(mode, args.warmup)[-1]
        t_n = nt.request(cmd="time", name="cf", mode=mode, calls=args.warmup)["times_s"][-1] \
            if nt is not None else 0.0
        reps = max(MIN_REPS, min(args.reps, int(args.budget / (t_o + t_n))))
        to, tn = [], []
        for _ in range(reps):
            to += ours.time(mode, 1)
            if nt is not None:
                tn += nt.request(cmd="time", name="cf", mode=mode, calls=1)["times_s"]
        res["ours"][mode] = {"times_s": to, "median_s": statistics.median(to)}
        if nt is not None:
            res["nt"][mode] = {"times_s": tn, "median_s": statistics.median(tn)}
    diff = {"ours_full_vs_f64": rel(ours.out_full, ref),
            "ours_cached_vs_f64": rel(ours.out_cached, ref)}
    if nt is not None:
        nt.request(cmd="finish", name="cf", out=str(tmp / "nt"))
        nt_full, nt_cached = np.load(tmp / "nt_full.npy"), np.load(tmp / "nt_cached.npy")
        diff.update(nt_full_vs_f64=rel(nt_full, ref), nt_cached_vs_f64=rel(nt_cached, ref),
                    ours_vs_nt_full=rel(ours.out_full, nt_full),
                    ours_vs_nt_cached=rel(ours.out_cached, nt_cached))
    res["diff"] = diff
    return res


def ms(s):
    return f"{1e3 * s:.1f}"


def print_closed_form(r):
    print(f"(a) closed-form ensemble mean, n = {r['n']} train, m = {r['m']} test, k = {r['k']} "
          f"outputs, T = {r['T']} times; NTK eigenvalues {r['ntk_eigenvalues'][0]:.3g} .. "
          f"{r['ntk_eigenvalues'][1]:.3g}")
    o, t = r["ours"], r.get("nt")
    print(f"  {'mode':8s} {'ours (ms)':>10s} {'NT (ms)':>10s} {'NT/ours':>8s} {'calls':>6s}")
    for mode in ("full", "cached"):
        line = f"  {mode:8s} {ms(o[mode]['median_s']):>10s} "
        if t:
            line += (f"{ms(t[mode]['median_s']):>10s} "
                     f"{t[mode]['median_s'] / o[mode]['median_s']:8.2f} ")
        else:
            line += f"{'-':>10s} {'-':>8s} "
        print(line + f"{len(o[mode]['times_s']):6d}")
    line = (f"  first calls: ours compile (full) {ms(o['compile_s'])} ms, build + first "
            f"(cached) {ms(o['cached_first_s'])} ms")
    if t:
        line += (f"; NT compile (full) {ms(t['compile_s'])} ms, first (cached) "
                 f"{ms(t['cached_first_s'])} ms")
    print(line)
    print("  agreement (max |a - b| / max |b|): " +
          ", ".join(f"{k} {v:.2e}" for k, v in r["diff"].items()))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ntref", default=DEFAULT_NTREF if os.path.exists(DEFAULT_NTREF) else None,
                   help="python of the neural-tangents 0.6.5 venv (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="n = 1000 / m = 250; quick part (b)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls after the first (>= 1)")
    p.add_argument("--reps", type=int, default=7, help="timed calls per side at most")
    p.add_argument("--budget", type=float, default=60.0,
                   help="seconds of timed calls per mode (both sides) before --reps is cut")
    p.add_argument("--json", type=Path, help="also write all timings to this JSON file")
    args = p.parse_args(argv)
    args.warmup = max(1, args.warmup)
    n, m = (1000, 250) if args.quick else (2000, 500)

    rev = library_revision()
    print(f"widelimits{' ' + rev if rev else ''}: jax {jax.__version__}, backend "
          f"{jax.default_backend()}, {os.cpu_count()} CPU cores; float32.", flush=True)
    problem = ntref_problem(args.ntref)
    if problem:
        print(f"WARNING: neural-tangents reference venv unavailable ({problem}); timing "
              f"widelimits only.\n  Build it with:  {BUILD_HINT}", file=sys.stderr)
    out = {"jax": jax.__version__}
    with tempfile.TemporaryDirectory(prefix="widelimits-bench-dyn-") as tmp:
        tmp = Path(tmp)
        nt = None
        if not problem:
            try:
                nt = Worker(args.ntref, WORKER, tmp / "ntref_worker.log")
                out["nt"] = nt.info
                print(f"neural-tangents {nt.info['neural_tangents']}: jax {nt.info['jax']}, "
                      f"backend {nt.info['backend']}.", flush=True)
            except (RuntimeError, OSError) as e:
                print(f"WARNING: {e}\n  Timing widelimits only.", file=sys.stderr)
                nt = None
        try:
            out["closed_form"] = r = bench_closed_form(n, m, nt, args, tmp)
        finally:
            if nt is not None:
                nt.close()
    print()
    print_closed_form(r)
    print("  NT/ours >= 1.0 means widelimits is faster.")
    out["ensemble"] = bench_part_b(args.quick)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


def bench_part_b(quick):
    """Part (b), ``_dynamics_ensemble.bench_ensemble``, if that module exists."""
    try:
        from _dynamics_ensemble import bench_ensemble
    except ImportError as e:
        print(f"\n(b) skipped: {e}")
        return None
    res = bench_ensemble(quick=quick)
    print("\n(b) finite-width ensemble training (_dynamics_ensemble.bench_ensemble):")
    for k, v in res.items():
        print(f"  {k}: {v}")
    print("\n(b') the same at other widths, 100 steps: where dispatch, not arithmetic, bounds "
          "the loop")
    print(f"  {'width':>5}  {'loop (s)':>8}  {'vmap (s)':>8}  {'map (s)':>8}  {'loop/vmap':>9}  "
          f"{'loop/map':>8}  {'ceiling':>7}")
    sweep = []
    for width in (8, 32, 128):
        r = bench_ensemble(width=width, quick=True)
        sweep.append(r)
        print(f"  {width:>5}  {r['loop_s']:>8.3f}  {r['vmapped_s']:>8.3f}  {r['mapped_s']:>8.3f}  "
              f"{r['ratio']:>9.2f}  {r['ratio_mapped']:>8.2f}  {r['ceiling']:>7.2f}")
    return {"width_512": res, "sweep": sweep}


if __name__ == "__main__":
    sys.exit(main())
