"""Time ``kernels.analytic`` against neural-tangents 0.6.5 on the same inputs and machine.

    .venv/bin/python benchmarks/analytic_kernels.py --ntref /tmp/ntref/bin/python [--quick]

Cases: ReLU and erf MLPs (``nets.mlp(512, depth, act, w_std=1.5, b_std=0.1)``, NTK
parameterization; NT: ``stax.serial(Dense(512, W_std=1.5, b_std=0.1), Act(), ..., Dense(1))``)
of depth 3 and 10 on x ~ N(0, 1) of shape (n, 32), n = 1000 and 4000 (``--quick``: n = 1000),
drawn once per n with a fixed seed; float32 with x64 disabled on both sides. Each side jits
the whole kernel computation (``jax.jit(lambda x: kernels.analytic(net, x))`` and
``jax.jit(kernel_fn, static_argnames="get")`` called as ``kernel_fn(x, None, get=("nngp",
"ntk"))``) and reports

* compile: wall time of the first call (tracing + XLA compilation + one run);
* steady: the median over timed calls, each ended by ``block_until_ready``, made after
  ``--warmup`` further untimed calls. The number of timed calls is ``--reps``, lowered (not
  below 3) so that a case spends about ``--budget`` seconds in them.

The neural-tangents side runs in its own venv (jax 0.4.38) as a subprocess executing
``_ntref_worker.py``; x reaches it through a temporary .npy file and its kernels come back the
same way for the agreement check (max |ours - NT| / max |NT| over the n x n matrix, for nngp
and ntk, and for the ntk off the diagonal). The two sides' timed calls alternate one by one,
so that a change in machine load hits both alike. Build that venv with
``bash ../shared/reference/ntref_env.sh /tmp/ntref`` (or run ``make bench``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", False)

from _jsonlines import Worker  # noqa: E402

from widelimits import kernels, nets  # noqa: E402

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_ntref_worker.py"
BUILD_HINT = "bash ../shared/reference/ntref_env.sh /tmp/ntref"
DEFAULT_NTREF = "/tmp/ntref/bin/python"

WIDTH, W_STD, B_STD, D_IN, SEED = 512, 1.5, 0.1, 32, 0
ACTIVATIONS = {"relu": nets.Relu, "erf": nets.Erf}
DEPTHS = (3, 10)
MIN_REPS = 3


def make_cases(ns):
    return [dict(name=f"{act}-d{depth}-n{n}", activation=act, depth=depth, n=n)
            for n in ns for act in ACTIVATIONS for depth in DEPTHS]


class Ours:
    """widelimits side, in this process."""

    def setup(self, case, x_path):
        net = nets.mlp(WIDTH, case["depth"], ACTIVATIONS[case["activation"]](), out_width=1,
                       w_std=W_STD, b_std=B_STD)
        self.fn = jax.jit(lambda x: kernels.analytic(net, x))
        self.x = jax.device_put(np.load(x_path))
        t0 = time.perf_counter()
        self.out = jax.block_until_ready(self.fn(self.x))
        return {"compile_s": time.perf_counter() - t0, "dtype": str(self.out.nngp.dtype)}

    def time(self, calls):
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            jax.block_until_ready(self.fn(self.x))
            times.append(time.perf_counter() - t0)
        return times

    def finish(self, prefix):
        np.save(f"{prefix}_nngp.npy", np.asarray(self.out.nngp))
        np.save(f"{prefix}_ntk.npy", np.asarray(self.out.ntk))
        del self.fn, self.x, self.out


class NTWorker(Worker):
    """neural-tangents side: ``_ntref_worker.py`` in the reference venv, one JSON line each way."""

    def __init__(self, python, log_path):
        super().__init__(python, WORKER, log_path)

    def setup(self, case, x_path):
        return self.request(cmd="setup", name=case["name"], activation=case["activation"],
                            depth=case["depth"], width=WIDTH, w_std=W_STD, b_std=B_STD,
                            x=str(x_path))

    def time(self, name, calls):
        return self.request(cmd="time", name=name, calls=calls)["times_s"]

    def finish(self, name, prefix):
        self.request(cmd="finish", name=name, out=str(prefix))


def library_revision():
    """``git describe`` of the checkout widelimits is imported from, '' outside git."""
    try:
        root = Path(kernels.__file__).resolve().parents[2]
        out = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def ntref_problem(python):
    if python is None:
        return f"no --ntref given and {DEFAULT_NTREF} does not exist"
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        return f"{python} is not an executable"
    return None


def rel_diffs(prefix_a, prefix_b):
    out = {}
    for what in ("nngp", "ntk"):
        a = np.load(f"{prefix_a}_{what}.npy").astype(np.float64)
        b = np.load(f"{prefix_b}_{what}.npy").astype(np.float64)
        if a.shape != b.shape:
            raise ValueError(f"{what}: shapes differ, ours {a.shape} vs NT {b.shape}")
        scale = np.max(np.abs(b))
        err = np.abs(a - b)
        out[what] = float(np.max(err) / scale)
        if what == "ntk":
            np.fill_diagonal(err, 0)
            out["ntk_offdiag"] = float(np.max(err) / scale)
    return out


def run_case(case, x_path, ours, nt, args, tmp):
    """Compile, warm up and time one case on both sides, alternating their timed calls."""
    res = {"ours": ours.setup(case, x_path)}
    if nt is not None:
        res["nt"] = nt.setup(case, x_path)
    t_ours = ours.time(args.warmup)[-1]
    t_nt = nt.time(case["name"], args.warmup)[-1] if nt is not None else 0.0
    reps = max(MIN_REPS, min(args.reps, int(args.budget / (t_ours + t_nt))))
    times_ours, times_nt = [], []
    for _ in range(reps):
        times_ours += ours.time(1)
        if nt is not None:
            times_nt += nt.time(case["name"], 1)
    res["ours"].update(times_s=times_ours, median_s=statistics.median(times_ours))
    ours.finish(tmp / f"ours_{case['name']}")
    if nt is not None:
        res["nt"].update(times_s=times_nt, median_s=statistics.median(times_nt))
        nt.finish(case["name"], tmp / f"nt_{case['name']}")
        res["diff"] = rel_diffs(tmp / f"ours_{case['name']}", tmp / f"nt_{case['name']}")
    for path in tmp.glob(f"*_{case['name']}_*.npy"):
        path.unlink()
    return res


def ms(seconds):
    return f"{1e3 * seconds:.1f}"


def print_table(cases, results):
    head = ("case", "ours (ms)", "NT (ms)", "NT/ours", "ours compile (ms)", "NT compile (ms)",
            "calls", "diff nngp", "diff ntk", "diff ntk off-diag")
    rows = []
    for c in cases:
        r = results[c["name"]]
        o, t, d = r["ours"], r.get("nt"), r.get("diff")
        rows.append((
            c["name"], ms(o["median_s"]),
            ms(t["median_s"]) if t else "-",
            f"{t['median_s'] / o['median_s']:.2f}" if t else "-",
            ms(o["compile_s"]), ms(t["compile_s"]) if t else "-",
            str(len(o["times_s"])),
            *((f"{d['nngp']:.1e}", f"{d['ntk']:.1e}", f"{d['ntk_offdiag']:.1e}") if d
              else ("-", "-", "-")),
        ))
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    fmt = lambda row: "  ".join(v.rjust(w) if i else v.ljust(w)
                                for i, (v, w) in enumerate(zip(row, widths, strict=True)))
    print(fmt(head))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(fmt(row))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ntref", default=DEFAULT_NTREF if os.path.exists(DEFAULT_NTREF) else None,
                   help="python of the neural-tangents 0.6.5 venv (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="only n = 1000")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls after the first (>= 1)")
    p.add_argument("--reps", type=int, default=7, help="timed calls per side at most")
    p.add_argument("--budget", type=float, default=60.0,
                   help="seconds of timed calls per case (both sides) before --reps is cut, "
                        f"never below {MIN_REPS} calls")
    p.add_argument("--json", type=Path, help="also write all timings to this JSON file")
    args = p.parse_args(argv)
    args.warmup = max(1, args.warmup)

    ns = (1000,) if args.quick else (1000, 4000)
    cases = make_cases(ns)
    problem = ntref_problem(args.ntref)
    if problem:
        print(f"WARNING: neural-tangents reference venv unavailable ({problem}); timing "
              f"widelimits only.\n  Build it with:  {BUILD_HINT}\n  then pass "
              f"--ntref /tmp/ntref/bin/python (or run `make bench`).", file=sys.stderr)

    rev = library_revision()
    print(f"widelimits{' ' + rev if rev else ''}: jax {jax.__version__}, "
          f"backend {jax.default_backend()}, "
          f"{os.cpu_count()} CPU cores; float32; width {WIDTH}, w_std={W_STD}, b_std={B_STD}; "
          f"x ~ N(0, 1) of shape (n, {D_IN}), seed {SEED}.", flush=True)

    results, nt, nt_info = {}, None, None
    with tempfile.TemporaryDirectory(prefix="widelimits-bench-") as tmp:
        tmp = Path(tmp)
        x_paths = {}
        for n in ns:
            x_paths[n] = tmp / f"x_{n}.npy"
            np.save(x_paths[n], np.random.default_rng(SEED).standard_normal((n, D_IN))
                    .astype(np.float32))
        if not problem:
            try:
                nt = NTWorker(args.ntref, tmp / "ntref_worker.log")
                nt_info = nt.info
                print(f"neural-tangents {nt_info['neural_tangents']}: jax {nt_info['jax']}, "
                      f"backend {nt_info['backend']}.", flush=True)
                if nt_info["backend"] != jax.default_backend():
                    print("WARNING: the two sides run on different backends; the ratio "
                          "compares different hardware.", file=sys.stderr)
            except (RuntimeError, OSError) as e:
                print(f"WARNING: {e}\n  (Re)build the reference venv with:  {BUILD_HINT}\n"
                      "  Timing widelimits only.", file=sys.stderr)
                nt = None
        ours = Ours()
        try:
            for c in cases:
                results[c["name"]] = r = run_case(c, x_paths[c["n"]], ours, nt, args, tmp)
                line = f"  {c['name']}: ours {ms(r['ours']['median_s'])} ms"
                if "nt" in r:
                    line += f", NT {ms(r['nt']['median_s'])} ms"
                print(line, file=sys.stderr, flush=True)
        finally:
            if nt is not None:
                nt.close()

    print()
    print_table(cases, results)
    print("\nours / NT: median steady-state call; NT/ours >= 1.0 means widelimits is faster. "
          "compile: first call (trace + compile + one run).\ndiff: max |ours - NT| / max |NT|.")
    if nt is None:
        print(f"(no neural-tangents timings: build the reference venv with `{BUILD_HINT}`)")
    if args.json:
        args.json.write_text(json.dumps({"jax": jax.__version__, "nt": nt_info,
                                         "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
