"""Generate golden NNGP/NTK values from neural-tangents 0.6.5 (float64).

Run with the pinned reference venv (NOT the project venv):

    bash ../shared/reference/ntref_env.sh /tmp/ntref
    /tmp/ntref/bin/python tests/reference/make_golden.py

Writes ``nt_mlp.npz``, ``nt_mixed.npz`` and ``nt_residual_layernorm.npz`` next to this file.
Layout of each file (read by ``tests/test_golden.py``):

* ``n_cases``: 0-d int.
* ``meta``: 0-d unicode string, JSON with versions / seed.
* ``case{i}_config``: 0-d unicode string, JSON
  ``{"layers": [LAYER, ...], "x2_is_none": bool, "nan_in_reference": bool}``
  (LAYER schema: see README.md).
* ``case{i}_x1``: (n1, d) float64.
* ``case{i}_x2``: (n2, d) float64 -- the key is ABSENT when ``x2_is_none`` is true
  (then the kernels are ``k(x1, x1)``).
* ``case{i}_nngp``, ``case{i}_ntk``: (n1, n2) float64, ``kernel_fn(x1, x2, ("nngp", "ntk"))``.
* ``case{i}_var1`` (n1,), ``case{i}_var2`` (n2,; absent when x2 is None): NT's NNGP variances
  ``kernel_fn(x1, x2, ("cov1", "cov2"))`` from its diagonal formulas.

Residual ``scale``: neural-tangents 0.6.5 has no scaling layer (no ``stax.Scale``; an
elementwise ``ABRelu(s, s)`` would mark the branch non-Gaussian and ``FanInSum`` then
raises). For ``parameterization="ntk"`` the block's last Dense(W_std, b_std) is given to NT
as Dense(scale*W_std, scale*b_std), which is exactly ``scale * Dense(W_std, b_std)`` for
both NNGP and NTK in that parameterization. The config keeps the *unscaled* Dense plus
``scale``. Standard-parameterization residual cases use ``scale = 1.0`` only (there the
fold is not an identity for the NTK).
"""

import json
import os
import warnings

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
warnings.filterwarnings("ignore")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import neural_tangents as nt  # noqa: E402
from neural_tangents import stax  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20240611
MAX_NNGP = 1e8  # resample a case whose kernels overflow these bounds ...
MAX_NTK = 1e14  # (standard-parameterization NTKs grow like the product of the widths)
MIN_DIAG = 1e-10  # ... or whose NNGP diagonal collapses below this


def r6(v):
    return float(round(float(v), 6))


# --------------------------------------------------------------------------------------
# config -> neural-tangents network
# --------------------------------------------------------------------------------------

def nt_layer(L, scale=1.0):
    t = L["type"]
    if t == "Dense":
        b = L["b_std"]
        return stax.Dense(L["width"], W_std=scale * L["w_std"],
                          b_std=None if b is None else scale * b,
                          parameterization=L["parameterization"])
    if scale != 1.0:
        raise ValueError("scale can only be folded into a Dense layer")
    if t == "Relu":
        return stax.Relu()
    if t == "Abs":
        return stax.Abs()
    if t == "Sign":
        return stax.Sign()
    if t == "Identity":
        return stax.Identity()
    if t == "Gelu":
        return stax.Gelu(approximate=False)
    if t == "LeakyRelu":
        return stax.LeakyRelu(L["alpha"])
    if t == "ABRelu":
        return stax.ABRelu(L["a"], L["b"])
    if t == "Erf":
        return stax.Erf(L["a"], L["b"], L["c"])
    if t == "Sin":
        return stax.Sin(L["a"], L["b"], L["c"])
    if t == "Cos":
        return stax.Cos(L["a"], L["b"], L["c"])
    if t == "Exp":
        return stax.Exp(L["a"], L["b"])
    if t == "Monomial":
        return stax.Monomial(L["degree"])
    if t == "RectifiedMonomial":
        return stax.RectifiedMonomial(L["degree"])
    if t == "LayerNorm":
        return stax.LayerNorm()
    if t == "Residual":
        block = L["block"]
        s = L["scale"]
        if block[-1]["type"] != "Dense":
            raise ValueError("residual block must end with Dense")
        if s != 1.0 and block[-1]["parameterization"] != "ntk":
            raise ValueError("scale != 1 only foldable for ntk parameterization")
        layers = [nt_layer(l) for l in block[:-1]] + [nt_layer(block[-1], scale=s)]
        return stax.serial(stax.FanOut(2),
                           stax.parallel(stax.Identity(), stax.serial(*layers)),
                           stax.FanInSum())
    raise ValueError(t)


def nt_net(layers):
    return stax.serial(*[nt_layer(l) for l in layers])


def nt_kernels(layers, x1, x2):
    _, _, kernel_fn = nt_net(layers)
    k = kernel_fn(x1, x2, ("nngp", "ntk"))
    return np.asarray(k[0], np.float64), np.asarray(k[1], np.float64)


def nt_variances(layers, x1, x2):
    """NT's NNGP variances ``cov1`` (n1,) and ``cov2`` (n2,) (None when x2 is None).

    NT computes these with its dedicated diagonal formulas (``nngp_fn_diag``), so they are the
    well-conditioned reference for the diagonal of an x2=None kernel (NT's full-matrix diagonal
    goes through ``sqrt(K11 K22 - K12^2)`` of round-off and can be off by ~1e-8 or worse).
    """
    _, _, kernel_fn = nt_net(layers)
    k = kernel_fn(x1, x2, ("cov1", "cov2"))
    cov2 = None if k[1] is None else np.asarray(k[1], np.float64)
    return np.asarray(k[0], np.float64), cov2


# --------------------------------------------------------------------------------------
# random configs
# --------------------------------------------------------------------------------------

ACTIVATIONS = ["Relu", "LeakyRelu", "Abs", "ABRelu", "Erf", "Gelu", "Sin", "Cos", "Exp",
               "Monomial1", "Monomial2", "Monomial3", "RectifiedMonomial1",
               "RectifiedMonomial2", "Sign", "Identity"]


def act_layer(rng, name):
    u = rng.uniform
    if name in ("Relu", "Abs", "Sign", "Identity", "Gelu"):
        return {"type": name}
    if name == "LeakyRelu":
        return {"type": name, "alpha": r6(u(-0.5, 0.5))}
    if name == "ABRelu":
        return {"type": name, "a": r6(u(-1.5, 1.5)), "b": r6(u(-1.5, 1.5))}
    if name == "Erf":
        return {"type": name, "a": r6(u(0.5, 2.0)), "b": r6(u(0.3, 2.0)), "c": r6(u(-0.5, 0.5))}
    if name in ("Sin", "Cos"):
        return {"type": name, "a": r6(u(0.5, 2.0)), "b": r6(u(0.3, 1.5)), "c": r6(u(-1.5, 1.5))}
    if name == "Exp":
        return {"type": name, "a": r6(u(0.3, 1.2)), "b": r6(u(0.1, 0.5))}
    if name.startswith("RectifiedMonomial"):
        return {"type": "RectifiedMonomial", "degree": int(name[-1])}
    if name.startswith("Monomial"):
        return {"type": "Monomial", "degree": int(name[-1])}
    raise ValueError(name)


def w_range(act):
    # keep deep polynomial / exponential nets well scaled
    if act["type"] == "Monomial" and act["degree"] == 3:
        return (0.55, 0.7)
    if act["type"] == "Monomial" and act["degree"] == 2:
        return (0.5, 0.9)
    if act["type"] == "RectifiedMonomial" and act["degree"] == 2:
        return (0.5, 1.3)
    if act["type"] == "Exp":
        return (0.5, 1.2)
    return (0.5, 2.0)


def dense(rng, width, param, bias_kind, wr=(0.5, 2.0)):
    b = {0: None, 1: 0.0, 2: r6(rng.uniform(0.05, 1.0))}[bias_kind]
    return {"type": "Dense", "width": int(width), "w_std": r6(rng.uniform(*wr)),
            "b_std": b, "parameterization": param}


def inputs(rng, x2_is_none):
    n1, n2, d = rng.integers(3, 7), rng.integers(2, 6), rng.integers(2, 8)
    x1 = rng.normal(size=(n1, d))
    x2 = None if x2_is_none else rng.normal(size=(n2, d))
    return x1, x2


def is_rectmono(layers):
    for L in layers:
        if L["type"] == "RectifiedMonomial":
            return True
        if L["type"] == "Residual" and is_rectmono(L["block"]):
            return True
    return False


def evaluate(layers, x1, x2):
    """Returns (nngp, ntk, status) with status in ok / nan / badscale."""
    nngp, ntk = nt_kernels(layers, x1, x2)
    if np.isnan(nngp).any() or np.isnan(ntk).any():
        return nngp, ntk, "nan"
    if not (np.isfinite(nngp).all() and np.isfinite(ntk).all()):
        return nngp, ntk, "badscale"
    if x2 is None:
        diag = np.diag(nngp).min()
    else:
        diag = nt_kernels(layers, x1, None)[0].diagonal().min()
    if np.abs(nngp).max() > MAX_NNGP or np.abs(ntk).max() > MAX_NTK or diag < MIN_DIAG:
        return nngp, ntk, "badscale"
    return nngp, ntk, "ok"


def make_case(rng, sample_layers, x2_is_none, tries=200):
    for _ in range(tries):
        layers = sample_layers()
        x1, x2 = inputs(rng, x2_is_none)
        nngp, ntk, status = evaluate(layers, x1, x2)
        if status == "ok":
            return layers, x1, x2, nngp, ntk, False
        if status == "nan":
            if is_rectmono(layers):
                return layers, x1, x2, nngp, ntk, True
            raise RuntimeError(f"unexpected NaN from NT for {json.dumps(layers)}")
    raise RuntimeError(f"could not sample a well-scaled case: {json.dumps(layers)}")


# --------------------------------------------------------------------------------------
# families
# --------------------------------------------------------------------------------------

def family_mlp(rng):
    """Every activation x depth 1..5 x {ntk, standard}; one activation per network."""
    cases = []
    i = 0
    for act_name in ACTIVATIONS:
        for depth in range(1, 6):
            for param in ("ntk", "standard"):
                x2_is_none = (i % 3 == 2)
                bias_offset = i

                def sample(act_name=act_name, depth=depth, param=param, off=bias_offset):
                    act = act_layer(rng, act_name)
                    wr = w_range(act)
                    layers = []
                    for l in range(depth):
                        layers.append(dense(rng, rng.integers(3, 65), param, (off + l) % 3, wr))
                        layers.append(dict(act))
                    layers.append(dense(rng, 1, param, (off + depth) % 3, wr))
                    return layers

                cases.append(make_case(rng, sample, x2_is_none))
                i += 1
    return cases


SAFE_MIXED = ["Relu", "LeakyRelu", "Abs", "ABRelu", "Erf", "Gelu", "Sin", "Cos", "Exp",
              "Monomial1", "Monomial2", "Sign", "Identity"]


def family_mixed(rng, n=40):
    """Different activation in every hidden layer, per-layer random stds.

    RectifiedMonomial appears only as the last hidden activation (every 5th case): NT 0.6.5
    returns NaN variances after it, which poison any later nonlinearity.
    """
    cases = []
    for i in range(n):
        param = ("ntk", "standard")[i % 2]
        depth = 2 + i % 4

        def sample(param=param, depth=depth, off=i):
            layers = []
            for l in range(depth):
                if off % 5 == 0 and l == depth - 1:
                    act = act_layer(rng, ("RectifiedMonomial1", "RectifiedMonomial2")[off % 2])
                else:
                    act = act_layer(rng, SAFE_MIXED[rng.integers(len(SAFE_MIXED))])
                layers.append(dense(rng, rng.integers(3, 65), param, (off + l) % 3, (0.5, 1.5)))
                layers.append(act)
            layers.append(dense(rng, 1, param, (off + depth) % 3, (0.5, 1.5)))
            return layers

        cases.append(make_case(rng, sample, x2_is_none=(i % 4 == 3)))
    return cases


RES_ACTS = ["Relu", "LeakyRelu", "Abs", "Erf", "Gelu", "Sin", "Cos", "Identity", "Exp"]


def family_residual_layernorm(rng):
    cases = []
    u = rng.uniform

    def act():
        return act_layer(rng, RES_ACTS[rng.integers(len(RES_ACTS))])

    def scale_for(param):
        return r6(u(0.3, 1.5)) if param == "ntk" else 1.0

    # 1) Dense(w), act?, Residual(Dense, act, Dense(w)) x k, act, Dense(1)
    for i in range(24):
        param = ("ntk", "standard")[i % 2]
        n_blocks = 1 + i % 3

        def sample(param=param, n_blocks=n_blocks, off=i):
            w = int(rng.integers(3, 65))
            layers = [dense(rng, w, param, off % 3, (0.5, 1.5))]
            for j in range(n_blocks):
                h = int(rng.integers(3, 65))
                if (off + j) % 2 == 0:  # post-activation block: Dense, act, Dense
                    block = [dense(rng, h, param, (off + j) % 3, (0.5, 1.5)), act(),
                             dense(rng, w, param, (off + j + 1) % 3, (0.5, 1.5))]
                else:  # pre-activation block: act, Dense, act, Dense
                    block = [act(), dense(rng, h, param, (off + j) % 3, (0.5, 1.5)), act(),
                             dense(rng, w, param, (off + j + 1) % 3, (0.5, 1.5))]
                layers.append({"type": "Residual", "scale": scale_for(param), "block": block})
            layers.append(act())
            layers.append(dense(rng, 1, param, (off + 1) % 3, (0.5, 1.5)))
            return layers

        cases.append(make_case(rng, sample, x2_is_none=(i % 3 == 2)))

    # 2) LayerNorm directly after Dense: [Dense, LayerNorm, act] x depth, Dense(1)
    for i in range(20):
        param = ("ntk", "standard")[i % 2]
        depth = 1 + i % 4

        def sample(param=param, depth=depth, off=i):
            layers = []
            for l in range(depth):
                layers.append(dense(rng, rng.integers(3, 65), param, (off + l) % 3))
                layers.append({"type": "LayerNorm"})
                layers.append(act())
            layers.append(dense(rng, 1, param, (off + depth) % 3))
            return layers

        cases.append(make_case(rng, sample, x2_is_none=(i % 3 == 1)))

    # 3) LayerNorm inside residual blocks and after residual sums (sum of Gaussians)
    for i in range(16):
        param = ("ntk", "standard")[i % 2]

        def sample(param=param, off=i):
            w = int(rng.integers(3, 65))
            h = int(rng.integers(3, 65))
            layers = [dense(rng, w, param, off % 3, (0.5, 1.5))]
            if off % 4 in (0, 1):
                layers.append({"type": "LayerNorm"})
            block = [dense(rng, h, param, (off + 1) % 3, (0.5, 1.5)), {"type": "LayerNorm"},
                     act(), dense(rng, w, param, (off + 2) % 3, (0.5, 1.5))]
            layers.append({"type": "Residual", "scale": scale_for(param), "block": block})
            if off % 2 == 0:
                layers.append({"type": "LayerNorm"})
            layers.append(act())
            layers.append(dense(rng, 1, param, off % 3, (0.5, 1.5)))
            return layers

        cases.append(make_case(rng, sample, x2_is_none=(i % 3 == 0)))
    return cases


def write(name, cases, seed):
    out = {"n_cases": np.array(len(cases)),
           "meta": np.array(json.dumps({"neural_tangents": nt.__version__,
                                        "jax": jax.__version__, "numpy": np.__version__,
                                        "seed": seed, "dtype": "float64"}))}
    n_nan = 0
    for i, (layers, x1, x2, nngp, ntk, nan) in enumerate(cases):
        cfg = {"layers": layers, "x2_is_none": x2 is None, "nan_in_reference": bool(nan)}
        out[f"case{i}_config"] = np.array(json.dumps(cfg))
        out[f"case{i}_x1"] = np.asarray(x1, np.float64)
        if x2 is not None:
            out[f"case{i}_x2"] = np.asarray(x2, np.float64)
        out[f"case{i}_nngp"] = nngp
        out[f"case{i}_ntk"] = ntk
        var1, var2 = nt_variances(layers, x1, x2)
        out[f"case{i}_var1"] = var1
        if x2 is not None:
            out[f"case{i}_var2"] = var2
        n_nan += bool(nan)
    path = os.path.join(HERE, name)
    np.savez_compressed(path, **out)
    print(f"{name}: {len(cases)} cases ({n_nan} flagged nan_in_reference), "
          f"{os.path.getsize(path)} bytes")


def probe_facts():
    """Print the NT behaviours the README documents."""
    x = np.random.default_rng(0).normal(size=(3, 4))
    _, _, kf = stax.serial(stax.Dense(8, 1.3, 0.2), stax.Sign())
    k = kf(x, None, ("nngp", "ntk"))
    print("Sign: NTK directly after Sign is all zero:", bool(np.all(np.asarray(k[1]) == 0)))
    try:
        stax.serial(stax.Dense(8), stax.Relu(), stax.LayerNorm())[2](x, None, "nngp")
        print("LayerNorm on non-Gaussian input: no error")
    except Exception as e:  # noqa: BLE001
        print(f"LayerNorm on non-Gaussian input raises {type(e).__name__}: {e}")
    try:
        stax.serial(stax.Dense(8), stax.Relu(),
                    stax.FanOut(2), stax.parallel(stax.Identity(), stax.Dense(8)),
                    stax.FanInSum())[2](x, None, "nngp")
        print("Residual on non-Gaussian input: no error")
    except Exception as e:  # noqa: BLE001
        print(f"Residual (FanInSum) on non-Gaussian input raises {type(e).__name__}")
    print("stax has Scale layer:", hasattr(stax, "Scale"))


def main():
    probe_facts()
    write("nt_mlp.npz", family_mlp(np.random.default_rng(SEED)), SEED)
    write("nt_mixed.npz", family_mixed(np.random.default_rng(SEED + 1)), SEED + 1)
    write("nt_residual_layernorm.npz",
          family_residual_layernorm(np.random.default_rng(SEED + 2)), SEED + 2)


if __name__ == "__main__":
    main()
