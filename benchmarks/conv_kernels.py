"""Time the infinite-width NNGP + NTK of convolutional nets against neural-tangents 0.6.5.

    .venv/bin/python benchmarks/conv_kernels.py --ntref /tmp/ntref/bin/python [--quick]

Cases (``_conv_nets.py``): a 3-layer CNN with global average pooling (CNN-GAP; 64 channels,
3x3 SAME convolutions, ReLU) and Myrtle-5, on n = 64 and 128 images x ~ N(0, 1) of shape
(n, 8, 8, 3) (``--quick``: n = 64), float32, ``k(x, x)``. Both need the covariance between all
pairs of the 64 positions: n² 64² entries per kernel. Each side jits the whole computation
and reports the first call (compile: trace + XLA compilation + one run), the median of the
timed calls (alternating between the two sides, so that load changes hit both alike), XLA's
memory analysis of the compiled program (temporary buffers + outputs: the peak memory the
program allocates), and the agreement max |ours - NT| / max |NT|. Goal: >= 5x faster.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", False)

from _conv_nets import NETWORKS, widelimits_net  # noqa: E402
from _jsonlines import Worker  # noqa: E402

from widelimits import kernels  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_NTREF = "/tmp/ntref/bin/python"
BUILD_HINT = "bash ../shared/reference/ntref_env.sh /tmp/ntref"


class Ours:
    def setup(self, name, net, x_path):
        spec = widelimits_net(NETWORKS[net])
        self.x = jax.device_put(np.load(x_path))
        fn = jax.jit(lambda x: kernels.analytic(spec, x))
        t0 = time.perf_counter()
        self.fn = fn.lower(self.x).compile()
        self.out = jax.block_until_ready(self.fn(self.x))
        compile_s = time.perf_counter() - t0
        mem = self.fn.memory_analysis()
        return {"compile_s": compile_s, "temp_bytes": int(mem.temp_size_in_bytes),
                "output_bytes": int(mem.output_size_in_bytes)}

    def time(self, name, calls):
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            jax.block_until_ready(self.fn(self.x))
            times.append(time.perf_counter() - t0)
        return times

    def finish(self, name, prefix):
        np.save(f"{prefix}_nngp.npy", np.asarray(self.out.nngp))
        np.save(f"{prefix}_ntk.npy", np.asarray(self.out.ntk))


class NT(Worker):
    def setup(self, name, net, x_path):
        return self.request(cmd="setup", name=name, net=net, x=str(x_path))

    def time(self, name, calls):
        return self.request(cmd="time", name=name, calls=calls)["times_s"]

    def finish(self, name, prefix):
        self.request(cmd="finish", name=name, out=str(prefix))


def diff(prefix_a, prefix_b):
    out = {}
    for what in ("nngp", "ntk"):
        a, b = (np.load(f"{p}_{what}.npy").astype(np.float64) for p in (prefix_a, prefix_b))
        out[what] = float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ntref", default=DEFAULT_NTREF if os.path.exists(DEFAULT_NTREF) else None,
                   help="python of the neural-tangents 0.6.5 venv (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="only n = 64")
    p.add_argument("--reps", type=int, default=3, help="timed calls per side")
    args = p.parse_args(argv)

    ns = (64,) if args.quick else (64, 128)
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, {os.cpu_count()} CPU "
          f"cores; float32; x ~ N(0, 1) of shape (n, 8, 8, 3).", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="widelimits-bench-") as tmp:
        tmp = Path(tmp)
        nt = None
        if args.ntref and os.path.exists(args.ntref):
            nt = NT(args.ntref, HERE / "_ntref_conv_worker.py", tmp / "nt.log")
            print(f"neural-tangents {nt.info['neural_tangents']}: jax {nt.info['jax']}.",
                  flush=True)
        else:
            print(f"WARNING: no neural-tangents venv; timing widelimits only. Build it with "
                  f"{BUILD_HINT}", file=sys.stderr)
        ours = Ours()
        try:
            for n in ns:
                x_path = tmp / f"x{n}.npy"
                np.save(x_path, np.random.default_rng(0).standard_normal((n, 8, 8, 3))
                        .astype(np.float32))
                for net in NETWORKS:
                    name = f"{net}-n{n}"
                    sides = {"ours": ours} | ({"nt": nt} if nt else {})
                    res = {k: s.setup(name, net, x_path) for k, s in sides.items()}
                    times = {k: [] for k in sides}
                    for _ in range(args.reps):
                        for k, s in sides.items():
                            times[k] += s.time(name, 1)
                    for k, s in sides.items():
                        res[k]["median_s"] = statistics.median(times[k])
                        s.finish(name, tmp / f"{k}_{name}")
                    if nt:
                        res["diff"] = diff(tmp / f"ours_{name}", tmp / f"nt_{name}")
                    rows.append((name, res))
                    print(f"  {name}: " + ", ".join(f"{k} {res[k]['median_s']:.3f} s"
                                                    for k in sides), file=sys.stderr,
                          flush=True)
        finally:
            if nt:
                nt.close()

    mib = lambda r: (r["temp_bytes"] + r["output_bytes"]) / 2**20  # noqa: E731
    print(f"\n{'case':16} {'ours s':>8} {'NT s':>8} {'NT/ours':>8} {'ours MiB':>9} "
          f"{'NT MiB':>9} {'ours compile s':>15} {'NT compile s':>13} {'diff nngp':>10} "
          f"{'diff ntk':>9}")
    for name, r in rows:
        o, t = r["ours"], r.get("nt")
        print(f"{name:16} {o['median_s']:8.3f} "
              + (f"{t['median_s']:8.3f} {t['median_s'] / o['median_s']:8.1f} " if t else
                 f"{'-':>8} {'-':>8} ")
              + f"{mib(o):9.0f} " + (f"{mib(t):9.0f} " if t else f"{'-':>9} ")
              + f"{o['compile_s']:15.1f} " + (f"{t['compile_s']:13.1f} " if t else f"{'-':>13} ")
              + (f"{r['diff']['nngp']:10.1e} {r['diff']['ntk']:9.1e}" if t else ""))
    print("\nmedian steady call; MiB: XLA's temporary buffers + outputs of the compiled "
          "program; compile: first call (trace + compile + one run); diff: max |ours - NT| / "
          "max |NT|.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
