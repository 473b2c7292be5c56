"""Generate golden NNGP/NTK values of convolutional networks from neural-tangents 0.6.5 (float64).

Run with the pinned reference venv (NOT the project venv), from the repository root:

    bash ../shared/reference/ntref_env.sh /tmp/ntref
    /tmp/ntref/bin/python tests/reference/make_golden_conv.py

Writes ``nt_conv.npz`` next to this file, read by ``tests/test_conv_kernels.py``. Same layout as
``make_golden.py`` (``n_cases``, ``meta``, ``case{i}_config``, ``case{i}_x1``, ``case{i}_x2``
(absent when x2 is None), ``case{i}_nngp``, ``case{i}_ntk``, ``case{i}_var1``,
``case{i}_var2``), with channels-last inputs ``(n, *spatial, C)`` and the layer schema extended
by Conv / AvgPool / SumPool / GlobalAvgPool / GlobalSumPool / Flatten / Parallel (README.md).

Kernels are stored exactly as NT returns them. For a network without a readout (the output keeps
spatial axes S = (S_1, ..., S_k)) that is NT's interleaved layout ``(n1, n2, S_1, S_1, S_2, S_2,
...)`` -- or, when the config's ``nt_is_reversed`` is true, NT's lazily reversed one
``(n1, n2, S_k, S_k, ..., S_1, S_1)`` -- and the variances ``(n, S_1, S_1, ...)`` alike;
``tests/test_conv_kernels.py`` permutes them to widelimits' ``(n1, n2, *S, *S)``.

Every case is written out by hand below (architecture and the options it exercises); the
standard deviations and the inputs are drawn from a fixed-seed generator.
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
SEED = 20250301


def r6(v):
    return float(round(float(v), 6))


# --------------------------------------------------------------------------------------
# config -> neural-tangents network
# --------------------------------------------------------------------------------------

def nt_layer(L, scale=1.0):
    t = L["type"]
    if t in ("Dense", "Conv"):
        b = L["b_std"]
        kw = dict(W_std=scale * L["w_std"], b_std=None if b is None else scale * b,
                  parameterization=L["parameterization"])
        if t == "Dense":
            return stax.Dense(L["width"], **kw)
        strides = None if L["strides"] is None else tuple(L["strides"])
        return stax.Conv(L["features"], tuple(L["filter_shape"]), strides, L["padding"], **kw)
    if scale != 1.0:
        raise ValueError("scale can only be folded into a Dense or Conv layer")
    if t == "AvgPool":  # normalize_edges=False: padded zeros count in the mean (NT's default)
        strides = None if L["strides"] is None else tuple(L["strides"])
        return stax.AvgPool(tuple(L["window_shape"]), strides, L["padding"],
                            normalize_edges=False)
    if t == "SumPool":
        strides = None if L["strides"] is None else tuple(L["strides"])
        return stax.SumPool(tuple(L["window_shape"]), strides, L["padding"])
    if t in ("GlobalAvgPool", "GlobalSumPool", "Flatten", "Relu", "Abs", "Identity",
             "LayerNorm"):
        return getattr(stax, t)()
    if t == "Gelu":
        return stax.Gelu(approximate=False)
    if t == "LeakyRelu":
        return stax.LeakyRelu(L["alpha"])
    if t == "ABRelu":
        return stax.ABRelu(L["a"], L["b"])
    if t in ("Erf", "Sin", "Cos"):
        return getattr(stax, t)(L["a"], L["b"], L["c"])
    if t == "Residual":
        block, s = L["block"], L["scale"]
        last = block[-1]
        if s != 1.0 and (last["type"] not in ("Dense", "Conv")
                         or last["parameterization"] != "ntk"):
            raise ValueError("scale != 1 is only foldable into a final ntk Dense/Conv")
        layers = [nt_layer(l) for l in block[:-1]] + [nt_layer(last, scale=s)]
        return stax.serial(stax.FanOut(2),
                           stax.parallel(stax.Identity(), stax.serial(*layers)),
                           stax.FanInSum())
    if t == "Parallel":
        branches = [stax.serial(*[nt_layer(l) for l in br]) for br in L["branches"]]
        return stax.serial(stax.FanOut(len(branches)), stax.parallel(*branches),
                           stax.FanInSum())
    raise ValueError(t)


def nt_kernel_fn(layers):
    return stax.serial(*[nt_layer(l) for l in layers])[2]


# --------------------------------------------------------------------------------------
# layer constructors (JSON dicts; README.md documents the schema)
# --------------------------------------------------------------------------------------

class Cases:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.items = []

    # -- layers --
    def w(self, lo=0.6, hi=1.8):
        return r6(self.rng.uniform(lo, hi))

    def b(self, kind):
        """kind: None (no bias), 0 (a bias of std 0.0) or 1 (a random std)."""
        return {None: None, 0: 0.0, 1: r6(self.rng.uniform(0.05, 0.8))}[kind]

    def conv(self, features, filter_shape, strides=None, padding="VALID", bias=1,
             param="ntk", w=None):
        return {"type": "Conv", "features": features, "filter_shape": list(filter_shape),
                "strides": None if strides is None else list(strides), "padding": padding,
                "w_std": self.w() if w is None else w, "b_std": self.b(bias),
                "parameterization": param}

    def dense(self, width=1, bias=1, param="ntk"):
        return {"type": "Dense", "width": width, "w_std": self.w(), "b_std": self.b(bias),
                "parameterization": param}

    @staticmethod
    def pool(kind, window, strides=None, padding="VALID"):
        return {"type": kind, "window_shape": list(window),
                "strides": None if strides is None else list(strides), "padding": padding}

    def erf(self):
        u = self.rng.uniform
        return {"type": "Erf", "a": r6(u(0.5, 2.0)), "b": r6(u(0.3, 2.0)), "c": r6(u(-0.5, 0.5))}

    def trig(self, kind):
        u = self.rng.uniform
        return {"type": kind, "a": r6(u(0.5, 2.0)), "b": r6(u(0.3, 1.5)), "c": r6(u(-1.5, 1.5))}

    # -- cases --
    def add(self, name, layers, n1, spatial, c, x2=True, n2=None):
        x1 = self.rng.normal(size=(n1, *spatial, c))
        x2a = self.rng.normal(size=(n2 or max(n1 - 1, 2), *spatial, c)) if x2 else None
        self.items.append((name, layers, x1, x2a))


RELU, ABS, GELU, IDENT, LN = ({"type": t} for t in ("Relu", "Abs", "Gelu", "Identity",
                                                      "LayerNorm"))
GAP, GSP, FLAT = {"type": "GlobalAvgPool"}, {"type": "GlobalSumPool"}, {"type": "Flatten"}


def build_cases():
    C = Cases(SEED)
    avg = lambda *a, **k: C.pool("AvgPool", *a, **k)  # noqa: E731
    sum_ = lambda *a, **k: C.pool("SumPool", *a, **k)  # noqa: E731

    # ---- 1-D inputs (n, L, C)
    C.add("1d-valid-relu-flatten", [C.conv(3, (3,), bias=None), RELU, FLAT, C.dense(bias=None)],
          3, (6,), 2)
    C.add("1d-same-s2-erf-circular-gap",
          [C.conv(3, (3,), (2,), "SAME"), C.erf(), C.conv(2, (2,), None, "CIRCULAR", bias=0),
           RELU, GAP, C.dense()], 4, (6,), 3, x2=False)
    C.add("1d-circular-f4-s3-gelu-sumpool-gsp-standard",
          [C.conv(3, (4,), (3,), "CIRCULAR", param="standard"), GELU, sum_((2,)), GSP,
           C.dense(param="standard", bias=0)], 3, (6,), 2)
    C.add("1d-standard-b0-avgpool-same-s2-abs-flatten",
          [C.conv(2, (2,), bias=0, param="standard"), RELU, avg((3,), (2,), "SAME"),
           C.conv(2, (2,), param="standard", bias=None), ABS, FLAT,
           C.dense(param="standard", bias=None)], 3, (6,), 2)
    C.add("1d-sumpool-same-s2-gsp",
          [C.conv(3, (3,), None, "SAME", bias=0), {"type": "LeakyRelu", "alpha": 0.15},
           sum_((3,), (2,), "SAME"), GSP, C.dense()], 3, (5,), 3, x2=False)
    C.add("1d-avgpool-circular-s2",
          [C.conv(2, (2,), None, "CIRCULAR"), C.trig("Sin"), avg((3,), (2,), "CIRCULAR"),
           FLAT, C.dense()], 3, (6,), 2)
    C.add("1d-gap-on-raw-input-then-mlp", [GAP, C.dense(4), RELU, C.dense()], 4, (5,), 3)
    C.add("1d-no-readout-same-erf", [C.conv(3, (3,), None, "SAME"), C.erf()], 3, (5,), 2)

    # ---- 2-D inputs (n, H, W, C)
    C.add("2d-same-relu-same-relu-flatten",
          [C.conv(3, (3, 3), None, "SAME"), RELU, C.conv(3, (3, 3), None, "SAME"), RELU, FLAT,
           C.dense()], 3, (5, 5), 2)
    C.add("2d-valid-nonsquare-mixed-strides-erf-flatten-standard",
          [C.conv(3, (2, 3), (1, 2), "VALID", param="standard"), C.erf(), FLAT,
           C.dense(param="standard")], 3, (5, 6), 2, x2=False)
    C.add("2d-circular-s2-relu-gap",
          [C.conv(3, (3, 3), (2, 2), "CIRCULAR", bias=None), RELU, GAP, C.dense()],
          3, (5, 5), 3)
    C.add("2d-myrtle-like-avgpool-s2-gap",
          [C.conv(3, (3, 3), None, "SAME", bias=0), RELU, avg((2, 2), (2, 2)),
           C.conv(3, (3, 3), None, "SAME", bias=0), RELU, GAP, C.dense(bias=0)], 3, (6, 6), 3,
          x2=False)
    C.add("2d-nonsquare-same-s21-leakyrelu-sumpool-same-gsp",
          [C.conv(3, (3, 2), (2, 1), "SAME"), {"type": "LeakyRelu", "alpha": -0.3},
           sum_((2, 2), (1, 2), "SAME"), GSP, C.dense()], 3, (5, 4), 2)
    C.add("2d-valid-avgpool-circular-flatten",
          [C.conv(2, (2, 2), bias=None), RELU, avg((3, 3), None, "CIRCULAR"), FLAT, C.dense()],
          3, (5, 5), 2)
    C.add("2d-sumpool-circular-s2-gap",
          [C.conv(2, (3, 3), None, "SAME"), GELU, sum_((2, 3), (2, 2), "CIRCULAR"), GAP,
           C.dense()], 2, (5, 6), 2, x2=False)
    C.add("2d-avgpool-same-edges-32-s22-flatten",
          [C.conv(2, (2, 2), None, "SAME"), RELU, avg((3, 2), (2, 2), "SAME"), FLAT,
           C.dense(bias=None)], 3, (5, 5), 2)
    C.add("2d-avgpool-valid-s12-erf-gsp",
          [C.conv(2, (2, 2), None, "VALID", bias=0), C.erf(), avg((2, 2), (1, 2), "VALID"),
           GSP, C.dense()], 3, (5, 5), 2)
    C.add("2d-residual-layernorm-gap",
          [C.conv(3, (3, 3), None, "SAME"),
           {"type": "Residual", "scale": 1.0, "block": [RELU, C.conv(3, (3, 3), None, "SAME")]},
           LN, RELU, GAP, C.dense()], 3, (5, 5), 2, x2=False)
    C.add("2d-residual-layernorm-gap-x2",
          [C.conv(3, (3, 3), None, "SAME"),
           {"type": "Residual", "scale": 1.0, "block": [RELU, C.conv(3, (3, 3), None, "SAME")]},
           LN, RELU, GAP, C.dense()], 3, (4, 5), 2)
    C.add("2d-residual-scaled-layernorm-inside-flatten",
          [C.conv(3, (2, 2), None, "SAME", bias=0),
           {"type": "Residual", "scale": 0.7,
            "block": [RELU, C.conv(3, (3, 3), None, "CIRCULAR"), LN, GELU,
                      C.conv(3, (1, 1), bias=0)]},
           LN, C.erf(), FLAT, C.dense()], 3, (4, 4), 2)
    C.add("2d-standard-everywhere-b-none-0-nonzero-gap",
          [C.conv(3, (3, 3), None, "SAME", bias=None, param="standard"), RELU,
           C.conv(3, (2, 2), (2, 2), "VALID", bias=0, param="standard"), GELU, GAP,
           C.dense(bias=1, param="standard")], 3, (5, 5), 2)
    C.add("2d-dense-per-position-flatten",
          [C.conv(3, (3, 3), None, "SAME", bias=0), RELU, C.dense(4, bias=1), C.erf(), FLAT,
           C.dense(bias=None)], 3, (4, 4), 3)
    C.add("2d-dense-per-position-standard-gap",
          [C.conv(3, (2, 2), param="standard", bias=1), ABS, C.dense(4, param="standard",
                                                                     bias=None),
           RELU, avg((2, 2)), GAP, C.dense(param="standard")], 3, (4, 5), 2, x2=False)
    C.add("2d-parallel-branches-gap",
          [C.conv(3, (3, 3), None, "SAME"), RELU,
           {"type": "Parallel", "branches": [[C.conv(3, (3, 3), None, "SAME")],
                                             [C.conv(3, (1, 1), bias=None)]]},
           RELU, GAP, C.dense()], 3, (4, 4), 2)
    C.add("2d-avgpool-raw-input-then-conv",
          [avg((2, 2)), C.conv(3, (2, 2), None, "SAME"), RELU, GAP, C.dense()], 3, (5, 4), 2)
    C.add("2d-flatten-raw-input-mlp", [FLAT, C.dense(5), RELU, C.dense()], 3, (3, 4), 2,
          x2=False)
    C.add("2d-flatten-then-mlp",
          [C.conv(3, (2, 2), (2, 1), "VALID"), RELU, FLAT, C.dense(4), C.trig("Cos"),
           C.dense()], 3, (5, 4), 2)
    C.add("2d-linear-identity-gap",
          [C.conv(2, (3, 3), None, "SAME"), IDENT, C.conv(2, (2, 2), None, "CIRCULAR"), GAP,
           C.dense(bias=None)], 3, (4, 4), 2)
    C.add("2d-abrelu-three-convs-flatten",
          [C.conv(3, (2, 2), None, "SAME", w=1.2), {"type": "ABRelu", "a": -0.4, "b": 1.1},
           C.conv(3, (3, 3), None, "SAME"), {"type": "ABRelu", "a": 0.3, "b": 0.9},
           C.conv(3, (2, 2)), RELU, FLAT, C.dense()], 3, (5, 5), 2, x2=False)
    C.add("2d-no-readout-same-relu-valid-nonsquare",
          [C.conv(3, (3, 3), None, "SAME"), RELU, C.conv(3, (1, 2), None, "VALID")],
          3, (4, 3), 2)
    C.add("2d-no-readout-avgpool-x2none",
          [C.conv(2, (2, 2), None, "SAME"), RELU, avg((2, 2))], 3, (4, 3), 2, x2=False)
    C.add("2d-no-readout-raw-conv-s12", [C.conv(2, (1, 2), (1, 2), "CIRCULAR")], 2, (3, 4), 2)

    # ---- several pools in one net (pools are cheap to compile; the default test subset uses
    # these two to cover every padding of both pools)
    C.add("2d-pool-zoo-circular-conv-abs",
          [C.conv(3, (2, 3), (1, 2), "CIRCULAR"), ABS, avg((2, 2), None, "CIRCULAR"),
           sum_((2, 1), (2, 1), "SAME"), avg((2, 2), (1, 1), "VALID"), GSP,
           C.dense(param="standard", bias=None)], 3, (6, 6), 2)
    C.add("1d-pool-zoo-valid-standard-gelu",
          [C.conv(3, (2,), None, "VALID", bias=0, param="standard"), GELU,
           sum_((2,), None, "CIRCULAR"), avg((3,), (2,), "SAME"), sum_((2,), (1,), "VALID"),
           GAP, C.dense(bias=0, param="standard")], 4, (6,), 3, x2=False)

    # ---- 3-D inputs (n, D, H, W, C)
    C.add("3d-same-relu-avgpool-s2-gap",
          [C.conv(2, (2, 2, 2), None, "SAME"), RELU, avg((2, 2, 2), (2, 1, 2), "SAME"), GAP,
           C.dense()], 2, (3, 3, 3), 2)
    C.add("3d-valid-nonsquare-erf-flatten",
          [C.conv(2, (2, 1, 2), (1, 2, 1), "VALID", param="standard"), C.erf(), FLAT,
           C.dense(param="standard")], 3, (3, 3, 2), 2, x2=False)
    return C.items


# --------------------------------------------------------------------------------------
# evaluation and output
# --------------------------------------------------------------------------------------

def evaluate(layers, x1, x2):
    kf = nt_kernel_fn(layers)
    nngp, ntk, cov1, cov2, rev = kf(x1, x2, ("nngp", "ntk", "cov1", "cov2", "is_reversed"))
    out = [np.asarray(a, np.float64) for a in (nngp, ntk, cov1)]
    out.append(None if x2 is None else np.asarray(cov2, np.float64))
    for a in out:
        if a is not None and not np.all(np.isfinite(a)):
            raise RuntimeError(f"non-finite NT kernel for {json.dumps(layers)}")
    return (*out, bool(rev))


def write(name, items, seed):
    out = {"n_cases": np.array(len(items)),
           "meta": np.array(json.dumps({"neural_tangents": nt.__version__,
                                        "jax": jax.__version__, "numpy": np.__version__,
                                        "seed": seed, "dtype": "float64"}))}
    for i, (case_name, layers, x1, x2) in enumerate(items):
        nngp, ntk, var1, var2, rev = evaluate(layers, x1, x2)
        cfg = {"name": case_name, "layers": layers, "x2_is_none": x2 is None,
               "nan_in_reference": False, "nt_is_reversed": rev}
        out[f"case{i}_config"] = np.array(json.dumps(cfg))
        out[f"case{i}_x1"] = np.asarray(x1, np.float64)
        if x2 is not None:
            out[f"case{i}_x2"] = np.asarray(x2, np.float64)
            out[f"case{i}_var2"] = var2
        out[f"case{i}_nngp"], out[f"case{i}_ntk"], out[f"case{i}_var1"] = nngp, ntk, var1
        print(f"  {i:2d} {case_name}: nngp {nngp.shape}, reversed={rev}")
    path = os.path.join(HERE, name)
    np.savez_compressed(path, **out)
    print(f"{name}: {len(items)} cases, {os.path.getsize(path)} bytes")


def probe_facts():
    """Print the NT 0.6.5 defaults that differ from widelimits' (README.md lists them)."""
    import inspect
    for f in (stax.Conv, stax.Dense, stax.AvgPool, stax.SumPool, stax.LayerNorm, stax.Gelu):
        sig = inspect.signature(getattr(f, "__wrapped__", f))
        print(f"{f.__name__}{sig}")


def main():
    probe_facts()
    write("nt_conv.npz", build_cases(), SEED)


if __name__ == "__main__":
    main()
