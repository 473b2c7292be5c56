"""Golden values of neural-tangents 0.6.5's continuous-time momentum dynamics (float64).

Run with the pinned reference venv (NOT the project venv):

    bash ../shared/reference/ntref_env.sh /tmp/ntref
    /tmp/ntref/bin/python tests/reference/make_golden_momentum.py

Writes ``nt_momentum_flow.npz`` next to this file, read by ``tests/test_gradient_flow.py``.
For each case i: ``predict.gradient_descent(loss, k, y, learning_rate, momentum)`` with the MSE
loss ``0.5 * mean((f - y)^2)`` (the convention of ``widelimits.dynamics``), evaluated by NT's
ODE solver at ``times``. Keys: ``k`` (n, n), ``kx`` (m, n), ``y``, ``f0`` (n, 2), ``ft0``
(m, 2), ``times`` (T,), ``case{i}_lr``, ``case{i}_mu`` (0-d), ``case{i}_train`` (T, n, 2),
``case{i}_test`` (T, m, 2); ``n_cases`` and ``meta`` (JSON).
"""

import json
import os
import pathlib
import warnings

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
warnings.filterwarnings("ignore")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import neural_tangents as nt  # noqa: E402

SEED = 20261125
CASES = [(0.05, 0.5), (0.5, 0.9), (2.0, 0.9), (1.0, 0.0), (0.2, 0.99)]


def main():
    rng = np.random.default_rng(SEED)
    n, m = 7, 3
    j = rng.standard_normal((n + m, 12))
    theta = j @ j.T / 12
    out = {"k": theta[:n, :n], "kx": theta[n:, :n], "y": rng.standard_normal((n, 2)),
           "f0": rng.standard_normal((n, 2)), "ft0": rng.standard_normal((m, 2)),
           "times": np.array([0.0, 0.5, 3.0, 20.0, 150.0])}
    loss = lambda fx, y: 0.5 * jnp.mean((fx - y) ** 2)  # noqa: E731
    for i, (lr, mu) in enumerate(CASES):
        fn = nt.predict.gradient_descent(loss, jnp.asarray(out["k"]), jnp.asarray(out["y"]),
                                         learning_rate=lr, momentum=mu)
        tr, te = fn(jnp.asarray(out["times"]), jnp.asarray(out["f0"]), jnp.asarray(out["ft0"]),
                    jnp.asarray(out["kx"]))
        out.update({f"case{i}_lr": np.array(lr), f"case{i}_mu": np.array(mu),
                    f"case{i}_train": np.asarray(tr), f"case{i}_test": np.asarray(te)})
    out["n_cases"] = np.array(len(CASES))
    out["meta"] = np.array(json.dumps({"neural_tangents": nt.__version__, "jax": jax.__version__,
                                       "seed": SEED}))
    path = pathlib.Path(__file__).with_name("nt_momentum_flow.npz")
    np.savez(path, **out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
