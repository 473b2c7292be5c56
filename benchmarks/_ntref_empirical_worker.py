"""neural-tangents side of ``benchmarks/empirical_ntk.py``; runs in the pinned NT venv.

``python _ntref_empirical_worker.py CASE.npz OUT.json``: CASE holds ``kind`` ("mlp" or
"cnn"), the parameters and x; prints nothing, writes ``{"implementation": {"compile_s",
"times_s", "path"}}`` and saves each kernel to ``OUT_<implementation>.npy``.
"""

import json
import os
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import neural_tangents as nt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from _bench_nets import cnn_apply, mlp_apply  # noqa: E402


def main(case_path, out_path):
    case = dict(np.load(case_path, allow_pickle=True))
    kind, reps = str(case.pop("kind")), int(case.pop("reps"))
    x = jnp.asarray(case.pop("x"))
    params = {k: jnp.asarray(v) for k, v in case.items()}
    f = mlp_apply if kind == "mlp" else cnn_apply
    res = {}
    for impl in ("JACOBIAN_CONTRACTION", "NTK_VECTOR_PRODUCTS", "STRUCTURED_DERIVATIVES"):
        fn = jax.jit(nt.empirical_ntk_fn(f, trace_axes=(-1,),
                                         implementation=getattr(nt.NtkImplementation, impl)))
        t = time.perf_counter()
        try:
            k = jax.block_until_ready(fn(x, None, params))
        except Exception as e:  # noqa: BLE001 - reported, e.g. structured fails on jax 0.4.38
            res[impl] = {"error": f"{type(e).__name__}: {e}"[:200]}
            continue
        compile_s = time.perf_counter() - t
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            jax.block_until_ready(fn(x, None, params))
            times.append(time.perf_counter() - t)
        path = f"{out_path}_{impl}.npy"
        np.save(path, np.asarray(k))
        res[impl] = {"compile_s": compile_s, "times_s": times, "path": path}
    with open(out_path, "w") as fh:
        json.dump(res, fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
