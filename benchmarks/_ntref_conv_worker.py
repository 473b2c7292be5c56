"""neural-tangents side of ``benchmarks/conv_kernels.py``; runs in the pinned NT venv.

Driven over stdin/stdout, one JSON object per line each way (``_jsonlines``):

* on start: ``{"ready": true, "jax", "neural_tangents", "backend"}``;
* ``{"cmd": "setup", "name", "net": NAME, "x": PATH.npy}`` builds ``_conv_nets.NETWORKS[NAME]``
  with ``stax``, jits ``kernel_fn(x, None, get=("nngp", "ntk"))`` (float32) and times its first
  call: ``{"compile_s", "temp_bytes", "output_bytes"}`` (XLA's memory analysis of the program);
* ``{"cmd": "time", "name", "calls": k}``: ``{"times_s": [...]}``;
* ``{"cmd": "finish", "name", "out": PREFIX}`` saves ``PREFIX_nngp.npy`` / ``PREFIX_ntk.npy``.
"""

import os
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")

import jax  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_enable_x64", False)

import neural_tangents as nt  # noqa: E402
from _conv_nets import NETWORKS, stax_net  # noqa: E402
from _jsonlines import serve  # noqa: E402

GET = ("nngp", "ntk")
CASES = {}


def setup(msg):
    _, _, kernel_fn = stax_net(NETWORKS[msg["net"]])
    x = jax.device_put(np.load(msg["x"]).astype(np.float32))
    fn = jax.jit(lambda x: kernel_fn(x, None, get=GET))
    t0 = time.perf_counter()
    compiled = fn.lower(x).compile()
    out = jax.block_until_ready(compiled(x))
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    CASES[msg["name"]] = (compiled, x, out)
    return {"compile_s": compile_s, "temp_bytes": int(mem.temp_size_in_bytes),
            "output_bytes": int(mem.output_size_in_bytes)}


def time_calls(msg):
    fn, x, _ = CASES[msg["name"]]
    times = []
    for _ in range(msg["calls"]):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(x))
        times.append(time.perf_counter() - t0)
    return {"times_s": times}


def finish(msg):
    _, _, (nngp, ntk) = CASES.pop(msg["name"])
    np.save(msg["out"] + "_nngp.npy", np.asarray(nngp))
    np.save(msg["out"] + "_ntk.npy", np.asarray(ntk))
    return {"done": True}


def main():
    serve({"setup": setup, "time": time_calls, "finish": finish},
          {"ready": True, "jax": jax.__version__, "backend": jax.default_backend(),
           "neural_tangents": getattr(nt, "__version__", "?")})


if __name__ == "__main__":
    main()
