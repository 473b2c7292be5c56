"""Time ``kernels.empirical_ntk`` against neural-tangents 0.6.5's ``empirical_ntk_fn``.

    .venv/bin/python benchmarks/empirical_ntk.py --ntref /tmp/ntref/bin/python [--quick]

Cases (float32 with x64 disabled on both sides, ``x2 = None``, trace over the 8 logits, i.e. our
``output="trace"`` and NT's ``trace_axes=(-1,)``, both the mean over the logits):

* ``mlp``: ``nets.mlp(2048, 3, nets.Relu(), out_width=8, b_std=1)`` (NTK parameterization,
  w_std = 1) on n = 16 inputs x ~ N(0, 1) of dimension 64; NT: ``stax.serial(Dense(2048,
  b_std=1), Relu(), ..., Dense(8, b_std=1))`` with our parameters in stax's layout. Ours:
  "jacobian", "ntvp", "structured" and "auto".
* ``cnn``: two 3x3 SAME convolutions with 32 channels (ReLU), global average pooling and a Dense
  readout to 8 logits on n = 16 images of 8x8x3; both libraries differentiate the same pure-JAX
  function ``_bench_nets.cnn_apply`` with the same parameters. Ours: "jacobian", "ntvp" and "auto"
  ("structured" is only for our network specs); and "jacobian" / "auto" on the same CNN written as
  a ``flax.linen`` module (identical function of identical parameters), to show what a flax model
  costs on top.
* ``memory`` (ours only): "structured" on ``nets.mlp(8192, 3, out_width=8)`` with n = 32, whose
  per-input Jacobians would take 32 x 8 x 134.8M floats = 138 GB; run in a fresh process that
  reports its peak RSS and XLA's temporary-buffer size for the call.

NT runs ``JACOBIAN_CONTRACTION``, ``NTK_VECTOR_PRODUCTS`` and ``STRUCTURED_DERIVATIVES`` (the
last with two import shims for jax 0.4.38, see ``_ntref_empirical_worker.py``), each as
``jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), implementation=...))``. Ours is called
as a user would, ``kernels.empirical_ntk(f, params, x, method=...)``, which jits internally.
Per variant: compile = wall time of the first call (tracing + compilation + one run); steady =
median of timed calls (each ended by ``block_until_ready``) after ``--warmup`` untimed ones. All
variants' timed calls of a case alternate one by one, so load changes hit every variant alike;
a variant stops after ``--reps`` calls or once its calls have taken ``--budget`` seconds (at
least 3 calls; 2 with ``--quick``). Agreement: max |K - K_ref| / max |K_ref| with K_ref NT's
Jacobian contraction (our "jacobian" without NT). NT best / ours best >= 1.0 means our fastest
method is at least as fast as NT's fastest implementation.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", False)

import flax.linen as nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_nets import cnn_apply  # noqa: E402
from _jsonlines import Worker  # noqa: E402
from analytic_kernels import BUILD_HINT, DEFAULT_NTREF, library_revision, ntref_problem  # noqa: E402

from widelimits import kernels, nets  # noqa: E402

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_ntref_empirical_worker.py"

N, D_IN, WIDTH, DEPTH, OUT, B_STD = 16, 64, 2048, 3, 8, 1.0
IMAGE, CHANNELS = (8, 8, 3), 32
MEM_WIDTH, MEM_N = 8192, 32
NT_IMPLS = {"JACOBIAN_CONTRACTION": "jacobian", "NTK_VECTOR_PRODUCTS": "ntvp",
            "STRUCTURED_DERIVATIVES": "structured"}


class FlaxCNN(nn.Module):
    """``_bench_nets.cnn_apply`` as a flax.linen module (NTK parameterization: the 1/sqrt(fan_in)
    factors are explicit, so the parameters are the same standard-normal arrays)."""

    @nn.compact
    def __call__(self, x):
        for i in range(2):
            fan_in = 9 * x.shape[-1]
            x = nn.Conv(CHANNELS, (3, 3), padding="SAME", use_bias=False, name=f"C{i}")(x)
            x = nn.relu(x / math.sqrt(fan_in) + self.param(f"c{i}", nn.initializers.normal(1.0),
                                                            (CHANNELS,)))
        x = x.mean(axis=(1, 2))
        w = nn.Dense(OUT, use_bias=False, name="W")(x) / math.sqrt(CHANNELS)
        return w + self.param("b", nn.initializers.normal(1.0), (OUT,))


def mlp_case():
    """(our variants, NT setup fields, arrays for the worker)."""
    net = nets.mlp(WIDTH, DEPTH, nets.Relu(), out_width=OUT, b_std=B_STD)
    x = jax.random.normal(jax.random.key(0), (N, D_IN), jnp.float32)
    params = net.init(jax.random.key(1), x.shape)
    ours = {m: (net, params, x, m) for m in ("jacobian", "ntvp", "structured", "auto")}
    arrays = {"x": x}
    for i, p in enumerate(params[::2]):  # Dense layers; the Relu layers have no parameters
        arrays[f"W{i}"], arrays[f"b{i}"] = p["W"], p["b"]
    nt_fields = dict(net="mlp", width=WIDTH, depth=DEPTH, out=OUT, b_std=B_STD)
    return ours, nt_fields, arrays


def cnn_case():
    ks = jax.random.split(jax.random.key(2), 6)
    c = CHANNELS
    flat = {"C0": jax.random.normal(ks[0], (3, 3, IMAGE[2], c)),
            "C1": jax.random.normal(ks[1], (3, 3, c, c)),
            "c0": jax.random.normal(ks[2], (c,)), "c1": jax.random.normal(ks[3], (c,)),
            "W": jax.random.normal(ks[4], (c, OUT)), "b": jax.random.normal(ks[5], (OUT,))}
    x = jax.random.normal(jax.random.key(3), (N, *IMAGE), jnp.float32)
    variables = {"params": {"C0": {"kernel": flat["C0"]}, "C1": {"kernel": flat["C1"]},
                            "c0": flat["c0"], "c1": flat["c1"], "W": {"kernel": flat["W"]},
                            "b": flat["b"]}}
    apply = FlaxCNN().apply
    ours = {m: (cnn_apply, flat, x, m) for m in ("jacobian", "ntvp", "auto")}
    ours.update({f"flax {m}": (apply, variables, x, m) for m in ("jacobian", "auto")})
    return ours, dict(net="cnn"), {"x": x, **flat}


CASES = {"mlp": ("MLP 3 x 2048, 8 logits, n = 16, d = 64", mlp_case),
         "cnn": ("CNN 2 x conv3x3(32), 8x8x3 images, 8 logits, n = 16", cnn_case)}


class Ours:
    """One of our variants, in this process."""

    def __init__(self, f, params, x, method):
        self.call = lambda: kernels.empirical_ntk(f, params, x, method=method)

    def setup(self):
        t0 = time.perf_counter()
        self.out = np.asarray(jax.block_until_ready(self.call()))
        return {"compile_s": time.perf_counter() - t0}

    def time(self, calls):
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            jax.block_until_ready(self.call())
            times.append(time.perf_counter() - t0)
        return times

    def finish(self):
        return self.out


class Theirs:
    """One NT implementation of a case, in the worker."""

    def __init__(self, worker, name, impl, fields, case_path, tmp):
        self.worker, self.name, self.tmp = worker, name, tmp
        self.msg = dict(cmd="setup", name=name, impl=impl, case=str(case_path), **fields)

    def setup(self):
        return self.worker.request(allow_error=True, **self.msg)  # a failed setup is reported

    def time(self, calls):
        return self.worker.request(cmd="time", name=self.name, calls=calls)["times_s"]

    def finish(self):
        path = self.tmp / f"{self.name}.npy"
        self.worker.request(cmd="finish", name=self.name, out=str(path))
        out = np.load(path)
        path.unlink()
        return out


def run_case(key, worker, args, tmp):
    """Compile, warm up and time every variant of a case, alternating their timed calls."""
    ours, nt_fields, arrays = CASES[key][1]()
    variants = {m: Ours(*v) for m, v in ours.items()}
    if worker is not None:
        case_path = tmp / f"{key}.npz"
        np.savez(case_path, **{k: np.asarray(v) for k, v in arrays.items()})
        for impl in NT_IMPLS:
            variants["NT " + NT_IMPLS[impl]] = Theirs(worker, f"{key}-{impl}", impl, nt_fields,
                                                      case_path, tmp)
    res = {}
    for name, v in list(variants.items()):
        r = v.setup()
        if "error" in r:
            print(f"  {key}: {name} failed: {r['error'][:300]}", file=sys.stderr)
            res[name] = {"error": r["error"]}
            del variants[name]
            continue
        res[name] = {"compile_s": r["compile_s"], "times_s": []}
        if args.warmup:
            v.time(args.warmup)
        print(f"  {key}: {name} compiled in {r['compile_s']:.2f} s", file=sys.stderr, flush=True)
    for _ in range(args.reps):
        for name, v in variants.items():
            t = res[name]["times_s"]
            if len(t) < args.min_reps or sum(t) < args.budget:
                t += v.time(1)
    kernels_ = {name: v.finish() for name, v in variants.items()}
    ref = kernels_.get("NT jacobian", kernels_.get("jacobian"))
    scale = np.abs(ref).max()
    for name, k in kernels_.items():
        res[name]["median_s"] = statistics.median(res[name]["times_s"])
        res[name]["diff"] = float(np.abs(k.astype(np.float64) - ref).max() / scale)
    return res


def _rss_bytes(field):
    """VmRSS (now) or VmHWM (peak) of this process from /proc, in bytes; None if unavailable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def memory_child():
    """Runs in a fresh process: our structured NTK where the Jacobian would not fit in memory.

    The peak RSS of the NTK calls alone is measured by resetting the kernel's high-water mark
    (``/proc/self/clear_refs``, Linux >= 4.0) after the parameters exist; elsewhere the peak since
    the start of the process (``getrusage``) is reported instead."""
    net = nets.mlp(MEM_WIDTH, DEPTH, nets.Relu(), out_width=OUT)
    x = jax.random.normal(jax.random.key(4), (MEM_N, D_IN), jnp.float32)
    params = jax.block_until_ready(net.init(jax.random.key(5), x.shape))
    n_params = sum(a.size for a in jax.tree.leaves(params))
    rss0 = _rss_bytes("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")
        reset = _rss_bytes("VmHWM") is not None
    except OSError:
        reset = False
    t0 = time.perf_counter()
    jax.block_until_ready(kernels.empirical_ntk(net, params, x, method="structured"))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    k = jax.block_until_ready(kernels.empirical_ntk(net, params, x, method="structured"))
    steady = time.perf_counter() - t0
    peak = (_rss_bytes("VmHWM") if reset
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    mem = jax.jit(lambda p, x: kernels.empirical_ntk(net, p, x, method="structured")).lower(
        params, x).compile().memory_analysis()
    print(json.dumps({
        "width": MEM_WIDTH, "depth": DEPTH, "n": MEM_N, "params": int(n_params),
        "params_bytes": int(n_params) * 4, "jacobian_bytes": MEM_N * OUT * int(n_params) * 4,
        "first_call_s": first, "steady_s": steady, "finite": bool(np.isfinite(k).all()),
        "rss_before_bytes": rss0, "peak_rss_bytes": peak, "peak_of_calls_only": reset,
        "xla_temp_bytes": getattr(mem, "temp_size_in_bytes", None)}))


def memory_check():
    out = subprocess.run([sys.executable, __file__, "--memory-child"], capture_output=True,
                         text=True, timeout=600)
    if out.returncode:
        return {"error": f"exit code {out.returncode}: {out.stderr[-2000:]}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def fmt_table(head, rows):
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    line = lambda row: "  ".join(v.rjust(w) if i else v.ljust(w)
                                 for i, (v, w) in enumerate(zip(row, widths, strict=True)))
    return "\n".join([line(head), "  ".join("-" * w for w in widths), *map(line, rows)])


def report(results):
    for key, res in results.items():
        if key == "memory":
            continue
        rows = [(name, f"{1e3 * r['median_s']:.1f}", f"{1e3 * r['compile_s']:.0f}",
                 str(len(r["times_s"])), f"{r['diff']:.1e}") if "error" not in r
                else (name, "failed", "-", "-", "-") for name, r in res.items()]
        print(f"\n{key}: {CASES[key][0]}")
        print(fmt_table(("variant", "steady (ms)", "compile (ms)", "calls", "diff"), rows))
    head = ("case", "ours: jacobian", "ntvp", "structured", "auto", "NT: jacobian", "ntvp",
            "structured", "ours best", "NT best", "NT best / ours best")
    rows = []
    for key in CASES:
        res = results.get(key, {})
        ms = lambda name, res=res: (f"{1e3 * res[name]['median_s']:.1f}"
                                    if "median_s" in res.get(name, {})
                                    else ("failed" if name in res else "-"))
        ours = {m: res[m]["median_s"] for m in ("jacobian", "ntvp", "structured", "auto")
                if "median_s" in res.get(m, {})}
        theirs = {m: res[f"NT {m}"]["median_s"] for m in NT_IMPLS.values()
                  if "median_s" in res.get(f"NT {m}", {})}
        best_o = min(ours, key=ours.get)
        best_t = min(theirs, key=theirs.get) if theirs else None
        rows.append((key, *map(ms, ("jacobian", "ntvp", "structured", "auto")),
                     *(ms(f"NT {m}") for m in NT_IMPLS.values()), best_o, best_t or "-",
                     f"{theirs[best_t] / ours[best_o]:.2f}" if theirs else "-"))
        res["summary"] = {"ours_best": best_o, "nt_best": best_t,
                          "nt_best_over_ours_best": theirs[best_t] / ours[best_o] if theirs
                          else None}
    print("\nmedian ms per call (best = fastest method of each library):")
    print(fmt_table(head, rows))
    m = results.get("memory")
    if m and "error" not in m:
        print(f"\nmemory: structured NTK of nets.mlp({m['width']}, {m['depth']}, out_width={OUT}) "
              f"on n = {m['n']}: {m['params'] / 1e6:.1f}M parameters "
              f"({m['params_bytes'] / 2**30:.2f} GiB); the per-input Jacobians would take "
              f"{m['jacobian_bytes'] / 1e9:.0f} GB. First call {m['first_call_s']:.1f} s, then "
              f"{m['steady_s']:.2f} s; peak RSS "
              f"{'during the two calls' if m['peak_of_calls_only'] else 'of the process'} "
              f"{m['peak_rss_bytes'] / 2**30:.2f} GiB (RSS before them "
              f"{(m['rss_before_bytes'] or 0) / 2**30:.2f} GiB); XLA temporaries "
              f"{(m['xla_temp_bytes'] or 0) / 2**20:.0f} MiB.")
    elif m:
        print(f"\nmemory check failed: {m['error']}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ntref", default=DEFAULT_NTREF if os.path.exists(DEFAULT_NTREF) else None,
                   help="python of the neural-tangents 0.6.5 venv (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="2 timed calls per variant, no warm-up")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls after the first")
    p.add_argument("--reps", type=int, default=7, help="timed calls per variant at most")
    p.add_argument("--budget", type=float, default=30.0,
                   help="seconds of timed calls per variant before --reps is cut")
    p.add_argument("--json", type=Path, help="also write all timings to this JSON file")
    p.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.memory_child:
        return memory_child()
    args.min_reps = 2 if args.quick else 3
    if args.quick:
        args.reps, args.warmup = 2, 0

    problem = ntref_problem(args.ntref)
    if problem:
        print(f"WARNING: neural-tangents reference venv unavailable ({problem}); timing "
              f"widelimits only.\n  Build it with:  {BUILD_HINT}\n  then pass "
              f"--ntref /tmp/ntref/bin/python (or run `make bench`).", file=sys.stderr)
    rev = library_revision()
    print(f"widelimits{' ' + rev if rev else ''}: jax {jax.__version__}, backend "
          f"{jax.default_backend()}, {os.cpu_count()} CPU cores; float32.", flush=True)

    results, worker, nt_info = {}, None, None
    with tempfile.TemporaryDirectory(prefix="widelimits-bench-") as tmp:
        tmp = Path(tmp)
        if not problem:
            try:
                worker = Worker(args.ntref, WORKER, tmp / "ntref_empirical_worker.log")
                nt_info = worker.info
                print(f"neural-tangents {nt_info['neural_tangents']}: jax {nt_info['jax']}, "
                      f"backend {nt_info['backend']}, shims: {', '.join(nt_info['shims']) or '-'}.",
                      flush=True)
            except (RuntimeError, OSError, ValueError) as e:
                print(f"WARNING: {e}\n  (Re)build the reference venv with:  {BUILD_HINT}\n"
                      "  Timing widelimits only.", file=sys.stderr)
                worker = None
        try:
            for key in CASES:
                results[key] = run_case(key, worker, args, tmp)
        finally:
            if worker is not None:
                worker.close()
    print("  memory check (fresh process) ...", file=sys.stderr, flush=True)
    results["memory"] = memory_check()
    report(results)
    print("\nsteady: median of the timed calls; compile: first call (trace + compile + one run); "
          "diff: max |K - K_ref| / max |K_ref|,\nK_ref = NT jacobian (ours without NT). "
          "NT best / ours best >= 1.0 means widelimits' fastest method is at least as fast.")
    if worker is None:
        print(f"(no neural-tangents timings: build the reference venv with `{BUILD_HINT}`)")
    if args.json:
        args.json.write_text(json.dumps({"jax": jax.__version__, "nt": nt_info,
                                         "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
