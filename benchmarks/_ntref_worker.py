"""neural-tangents side of ``benchmarks/analytic_kernels.py``; runs in the pinned NT venv.

Started by ``analytic_kernels.py`` as ``/tmp/ntref/bin/python benchmarks/_ntref_worker.py``
and driven over stdin/stdout, one JSON object per line each way, so that the two libraries'
timed calls can be interleaved (fair under a fluctuating machine load):

* on start it prints ``{"ready": true, "jax": ..., "neural_tangents": ..., "backend": ...}``;
* ``{"cmd": "setup", "name", "activation": "relu"|"erf", "depth", "width", "w_std", "b_std",
  "x": PATH.npy}`` builds ``stax.serial(Dense(width), Act(), ..., Dense(1))`` (NTK
  parameterization, float32), jits ``kernel_fn(x, None, get=("nngp", "ntk"))`` with ``get``
  static and times its first call (tracing + compilation + one run): ``{"compile_s": ...}``;
* ``{"cmd": "time", "name", "calls": k}`` times k further calls, each ended by
  ``block_until_ready``: ``{"times_s": [...]}``;
* ``{"cmd": "finish", "name", "out": PREFIX}`` saves the kernels of the first call to
  ``PREFIX_nngp.npy`` / ``PREFIX_ntk.npy`` and frees the case: ``{"done": true}``.

Errors come back as ``{"error": "..."}``. Any other stdout line (none expected) is not JSON.
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
from _jsonlines import serve  # noqa: E402
from neural_tangents import stax  # noqa: E402

ACTIVATIONS = {"relu": stax.Relu, "erf": stax.Erf}
GET = ("nngp", "ntk")
CASES = {}


def network(activation, depth, width, w_std, b_std):
    layers = []
    for _ in range(depth):
        layers += [stax.Dense(width, W_std=w_std, b_std=b_std), ACTIVATIONS[activation]()]
    layers.append(stax.Dense(1, W_std=w_std, b_std=b_std))
    return stax.serial(*layers)


def setup(msg):
    _, _, kernel_fn = network(msg["activation"], msg["depth"], msg["width"], msg["w_std"],
                              msg["b_std"])
    fn = jax.jit(kernel_fn, static_argnames="get")
    x = jax.device_put(np.load(msg["x"]).astype(np.float32))
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(x, None, get=GET))
    compile_s = time.perf_counter() - t0
    CASES[msg["name"]] = (fn, x, out)
    return {"compile_s": compile_s, "dtype": str(out[0].dtype)}


def time_calls(msg):
    fn, x, _ = CASES[msg["name"]]
    times = []
    for _ in range(msg["calls"]):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(x, None, get=GET))
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
