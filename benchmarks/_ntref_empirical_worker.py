"""neural-tangents side of ``benchmarks/empirical_ntk.py``; runs in the pinned NT venv.

Started by ``empirical_ntk.py`` as ``/tmp/ntref/bin/python benchmarks/_ntref_empirical_worker.py``
and driven over stdin/stdout, one JSON object per line each way (as ``_ntref_worker.py``), so
that the two libraries' timed calls can be interleaved:

* on start it prints ``{"ready": true, "jax": ..., "neural_tangents": ..., "backend": ...}``;
* ``{"cmd": "setup", "name", "net": "mlp"|"cnn", "impl", "case": PATH.npz, ...}`` builds
  ``jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), implementation=impl))`` for
  ``impl`` a ``nt.NtkImplementation`` name and times its first call (tracing + compilation + one
  run): ``{"compile_s": ...}``. The case file holds ``x`` and the parameters by name. ``"mlp"``
  (with ``"width"``, ``"depth"``, ``"out"``, ``"b_std"``): ``stax.serial(Dense(width, b_std=b_std),
  Relu(), ..., Dense(out, b_std=b_std))``, NTK parameterization, W_std = 1, params ``W0, b0, ...``
  laid out as stax's ``[(W0, b0), (), (W1, b1), (), ...]``; ``"cnn"``: the pure-JAX
  ``_bench_nets.cnn_apply`` that our side differentiates too;
* ``{"cmd": "time", "name", "calls": k}`` times k further calls, each ended by
  ``block_until_ready``: ``{"times_s": [...]}``;
* ``{"cmd": "finish", "name", "out": PATH.npy}`` saves the kernel of the first call and frees the
  case: ``{"done": true}``.

Errors come back as ``{"error": "..."}``. Replies use the real stdout; anything the libraries
print (NT's ``AUTO`` prints its FLOP estimates) goes to stderr.

Compatibility shims: neural-tangents 0.6.5's ``STRUCTURED_DERIVATIVES`` reads
``jax.interpreters.ad.source_info_util`` and ``jax.interpreters.ad.config``, which jax 0.4.38 no
longer re-exports (``AttributeError: module 'jax.interpreters.ad' has no attribute
'source_info_util'``). We put back the same two modules under those names (``SHIMS`` below); with
them, structured derivatives run and agree with the other two implementations to float32
round-off. Nothing else in neural-tangents is changed.
"""

import os
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax._src import source_info_util  # noqa: E402
from jax.interpreters import ad  # noqa: E402

jax.config.update("jax_enable_x64", False)

SHIMS = []
for _name, _module in (("source_info_util", source_info_util), ("config", jax.config)):
    if not hasattr(ad, _name):
        setattr(ad, _name, _module)
        SHIMS.append(f"jax.interpreters.ad.{_name}")

import neural_tangents as nt  # noqa: E402
from neural_tangents import stax  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bench_nets import cnn_apply  # noqa: E402
from _jsonlines import serve  # noqa: E402

CASES = {}


def build(msg, arrays):
    """(apply_fn, params) of the case."""
    if msg["net"] == "mlp":
        layers = []
        for _ in range(msg["depth"]):
            layers += [stax.Dense(msg["width"], b_std=msg["b_std"]), stax.Relu()]
        layers.append(stax.Dense(msg["out"], b_std=msg["b_std"]))
        _, apply_fn, _ = stax.serial(*layers)
        params = []
        for i in range(msg["depth"] + 1):
            params.append((arrays[f"W{i}"], arrays[f"b{i}"]))
            if i < msg["depth"]:
                params.append(())
        return apply_fn, params
    if msg["net"] == "cnn":
        return cnn_apply, {k: v for k, v in arrays.items() if k != "x"}
    raise ValueError(f"unknown net {msg['net']!r}")


def setup(msg):
    with np.load(msg["case"]) as data:
        arrays = {k: jax.device_put(data[k].astype(np.float32)) for k in data.files}
    apply_fn, params = build(msg, arrays)
    impl = getattr(nt.NtkImplementation, msg["impl"])
    fn = jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), implementation=impl))
    x = arrays["x"]
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(x, None, params))
    compile_s = time.perf_counter() - t0
    CASES[msg["name"]] = (fn, x, params, out)
    return {"compile_s": compile_s, "shape": list(out.shape), "dtype": str(out.dtype)}


def time_calls(msg):
    fn, x, params, _ = CASES[msg["name"]]
    times = []
    for _ in range(msg["calls"]):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(x, None, params))
        times.append(time.perf_counter() - t0)
    return {"times_s": times}


def finish(msg):
    *_, out = CASES.pop(msg["name"])
    np.save(msg["out"], np.asarray(out))
    return {"done": True}


def main():
    serve({"setup": setup, "time": time_calls, "finish": finish},
          {"ready": True, "jax": jax.__version__, "backend": jax.default_backend(),
           "neural_tangents": getattr(nt, "__version__", "?"), "shims": SHIMS})


if __name__ == "__main__":
    main()
