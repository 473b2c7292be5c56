"""neural-tangents side of ``benchmarks/dynamics.py``; runs in the pinned NT venv.

Started by ``dynamics.py`` as ``/tmp/ntref/bin/python benchmarks/_ntref_dynamics_worker.py``
and driven over stdin/stdout, one JSON object per line each way (see ``_jsonlines.py``):

* on start it prints ``{"ready": true, "jax": ..., "neural_tangents": ..., "backend": ...}``;
* ``{"cmd": "setup", "name", "dir", "learning_rate"}`` loads ``DIR/ntk_tt.npy`` (n, n),
  ``DIR/ntk_xt.npy`` (m, n), ``DIR/y.npy`` (n, k) and ``DIR/ts.npy`` (T,) (float32) and prepares
  ``predict.gradient_descent_mse_ensemble`` mean predictions on the test points at the T times
  (``get="ntk"``, ``compute_cov=False``, ``diag_reg=0``), fed with these kernels through a
  ``kernel_fn`` that returns them (x_train / x_test are placeholders of shapes (n, 1) / (m, 1)).
  Two modes: ``"full"`` jits kernels -> predictions (eigendecomposition included in every
  call); ``"cached"`` builds one ``predict_fn`` and calls it eagerly, NT's own cache keeping the
  eigendecomposition of the first call. Replies ``{"compile_s", "cached_first_s"}`` (first calls);
* ``{"cmd": "time", "name", "mode", "calls"}`` -> ``{"times_s": [...]}``;
* ``{"cmd": "finish", "name", "out": PREFIX}`` saves ``PREFIX_full.npy`` and ``PREFIX_cached.npy``.
"""

import collections
import os
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_enable_x64", False)

import neural_tangents as nt  # noqa: E402
from _jsonlines import serve  # noqa: E402
from neural_tangents import predict  # noqa: E402

CASES = {}
_K = collections.namedtuple("_K", ["nngp", "ntk"])


def make_predict_fn(ntk_tt, ntk_xt, y, learning_rate):
    n, m = ntk_tt.shape[0], ntk_xt.shape[0]
    x_train, x_test = jnp.zeros((n, 1)), jnp.zeros((m, 1))

    def kernel_fn(x1, x2, get, **kw):
        if x2 is None and x1.shape[0] == n:
            k = ntk_tt
        elif x2 is not None and x1.shape[0] == m:
            k = ntk_xt
        else:
            raise ValueError(f"unexpected kernel request {x1.shape}, {get}")
        if isinstance(get, str):
            if get != "ntk":
                raise ValueError(get)
            return k
        return _K(nngp=None, ntk=k)

    fn = predict.gradient_descent_mse_ensemble(kernel_fn, x_train, y,
                                               learning_rate=learning_rate, diag_reg=0.0)
    return lambda ts: fn(t=ts, x_test=x_test, get="ntk", compute_cov=False)


def setup(msg):
    d = msg["dir"]
    arrs = [jax.device_put(np.load(os.path.join(d, f)).astype(np.float32))
            for f in ("ntk_tt.npy", "ntk_xt.npy", "y.npy", "ts.npy")]
    lr = msg["learning_rate"]
    full = jax.jit(lambda ktt, kxt, y, ts: make_predict_fn(ktt, kxt, y, lr)(ts))
    t0 = time.perf_counter()
    out_full = jax.block_until_ready(full(*arrs))
    compile_s = time.perf_counter() - t0
    cached = make_predict_fn(arrs[0], arrs[1], arrs[2], lr)
    t0 = time.perf_counter()
    out_cached = jax.block_until_ready(cached(arrs[3]))
    first_s = time.perf_counter() - t0
    CASES[msg["name"]] = dict(full=full, cached=cached, arrs=arrs, out_full=out_full,
                              out_cached=out_cached)
    return {"compile_s": compile_s, "cached_first_s": first_s, "dtype": str(out_full.dtype)}


def time_calls(msg):
    c = CASES[msg["name"]]
    times = []
    for _ in range(msg["calls"]):
        t0 = time.perf_counter()
        if msg["mode"] == "full":
            jax.block_until_ready(c["full"](*c["arrs"]))
        else:
            jax.block_until_ready(c["cached"](c["arrs"][3]))
        times.append(time.perf_counter() - t0)
    return {"times_s": times}


def finish(msg):
    c = CASES.pop(msg["name"])
    np.save(msg["out"] + "_full.npy", np.asarray(c["out_full"]))
    np.save(msg["out"] + "_cached.npy", np.asarray(c["out_cached"]))
    return {"done": True}


def main():
    serve({"setup": setup, "time": time_calls, "finish": finish},
          {"ready": True, "jax": jax.__version__, "backend": jax.default_backend(),
           "neural_tangents": getattr(nt, "__version__", "?")})


if __name__ == "__main__":
    main()
