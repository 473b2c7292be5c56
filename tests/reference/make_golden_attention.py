"""Generate golden NNGP/NTK values of self-attention nets from neural-tangents 0.6.5 (float64).

Run with the pinned reference venv (NOT the project venv), from the repository root:

    bash ../shared/reference/ntref_env.sh /tmp/ntref
    /tmp/ntref/bin/python tests/reference/make_golden_attention.py

Writes ``nt_attention.npz`` next to this file (read by ``tests/test_attention.py``). Layout as
in ``make_golden.py`` (README.md), with these layer types added to the config schema:

* ``{"type": "GlobalSelfAttention", "features", "key_features", "value_features", "heads",
  "mechanism": "softmax"|"identity", "w_key_std", "w_value_std", "w_query_std", "w_out_std",
  "b_std" (null = no bias)}``: NT's ``stax.GlobalSelfAttention(..., linear_scaling=True,
  attention_mechanism=mechanism.upper())`` without positional embeddings;
* ``{"type": "Conv", "features", "filter_shape", "strides", "padding", "w_std", "b_std"}``
  (NTK parameterization), ``{"type": "GlobalAvgPool"}``, ``{"type": "Flatten"}``;
* ``{"type": "Residual", "scale", "block"}``: ``x + scale * block(x)``; the block ends in an
  attention layer, and a scale != 1 is given to NT by multiplying that layer's ``w_out_std``
  and ``b_std`` by it (exactly ``scale * attention`` for the NNGP and the NTK).

Inputs are sequences (n, L, C) or images (n, H, W, C) with at most 6 positions. For nets with
a readout ``nngp``/``ntk`` are (n1, n2) and ``var1``/``var2`` (n1,)/(n2,); for nets that end
with spatial axes S they are (n1, n2, *S, *S) and (n1, *S, *S), converted from NT's
interleaved layout (n1, n2, S1, S1', S2, S2', ...) to widelimits' (n1, n2, S1, S2, ...,
S1', S2', ...).

Finite networks: ``finite{i}_config`` (one attention layer), ``finite{i}_x`` (n, *S, C), NT's
parameters from ``init_fn(PRNGKey(seed), x.shape)`` -- ``finite{i}_K`` (H, C, d_k),
``finite{i}_V`` (H, C, d_v), ``finite{i}_Wout`` (d_v H, features; rows value-major:
row v H + h), ``finite{i}_b`` (features,; absent without a bias) -- and ``finite{i}_y``, NT's
``apply_fn(params, x)``; ``n_finite`` of them.
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
SEED = 20240917
MAX_ABS = 1e6  # resample a case whose kernels are this large ...
MIN_DIAG = 1e-8  # ... or whose NNGP diagonal collapses below this


def r6(v):
    return float(round(float(v), 6))


# --------------------------------------------------------------------------------------
# config -> neural-tangents network
# --------------------------------------------------------------------------------------

def nt_attention(L, scale=1.0):
    b = L["b_std"]
    return stax.GlobalSelfAttention(
        L["features"], L["key_features"], L["value_features"], L["heads"],
        linear_scaling=True, W_key_std=L["w_key_std"], W_value_std=L["w_value_std"],
        W_query_std=L["w_query_std"], W_out_std=scale * L["w_out_std"],
        b_std=None if b is None else scale * b,
        attention_mechanism=L["mechanism"].upper())


def nt_layer(L):
    t = L["type"]
    if t == "Dense":
        return stax.Dense(L["width"], W_std=L["w_std"], b_std=L["b_std"],
                          parameterization=L["parameterization"])
    if t == "Conv":
        return stax.Conv(L["features"], tuple(L["filter_shape"]),
                         None if L["strides"] is None else tuple(L["strides"]),
                         L["padding"], W_std=L["w_std"], b_std=L["b_std"])
    if t == "GlobalSelfAttention":
        return nt_attention(L)
    if t == "Erf":
        return stax.Erf(L["a"], L["b"], L["c"])
    if t in ("Relu", "LayerNorm", "GlobalAvgPool", "Flatten"):
        return getattr(stax, t)()
    if t == "Residual":
        block = L["block"]
        if block[-1]["type"] != "GlobalSelfAttention":
            raise ValueError("residual block must end with GlobalSelfAttention")
        layers = [nt_layer(m) for m in block[:-1]] + [nt_attention(block[-1], L["scale"])]
        return stax.serial(stax.FanOut(2), stax.parallel(stax.Identity(), stax.serial(*layers)),
                           stax.FanInSum())
    raise ValueError(t)


def nt_net(layers):
    return stax.serial(*[nt_layer(m) for m in layers])


def unzip(a, batch):
    """NT's interleaved positions (batch..., S1, S1', S2, S2', ...) -> (batch..., *S, *S')."""
    k = (a.ndim - batch) // 2
    return np.transpose(a, tuple(range(batch)) + tuple(batch + 2 * i for i in range(k))
                        + tuple(batch + 2 * i + 1 for i in range(k)))


def nt_kernels(layers, x1, x2):
    kernel_fn = nt_net(layers)[2]
    nngp, ntk = (np.asarray(a, np.float64) for a in kernel_fn(x1, x2, ("nngp", "ntk")))
    cov1, cov2 = kernel_fn(x1, x2, ("cov1", "cov2"))
    cov1 = np.asarray(cov1, np.float64)
    cov2 = None if cov2 is None else np.asarray(cov2, np.float64)
    if nngp.ndim > 2:
        nngp, ntk, cov1 = unzip(nngp, 2), unzip(ntk, 2), unzip(cov1, 1)
        cov2 = None if cov2 is None else unzip(cov2, 1)
    return nngp, ntk, cov1, cov2


# --------------------------------------------------------------------------------------
# random configs
# --------------------------------------------------------------------------------------

def dense(rng, width, bias=True, param="ntk"):
    return {"type": "Dense", "width": int(width), "w_std": r6(rng.uniform(0.6, 1.6)),
            "b_std": r6(rng.uniform(0.05, 0.6)) if bias else None, "parameterization": param}


def attention(rng, features, mechanism, bias=True):
    lo, hi = (0.5, 1.5) if mechanism == "softmax" else (0.3, 0.7)  # identity grows like A K A
    return {"type": "GlobalSelfAttention", "features": int(features),
            "key_features": int(rng.integers(2, 9)), "value_features": int(rng.integers(2, 9)),
            "heads": int(rng.integers(1, 5)), "mechanism": mechanism,
            "w_key_std": r6(rng.uniform(lo, hi)), "w_value_std": r6(rng.uniform(0.6, 1.5)),
            "w_query_std": r6(rng.uniform(lo, hi)), "w_out_std": r6(rng.uniform(0.6, 1.5)),
            "b_std": r6(rng.uniform(0.05, 0.5)) if bias else None}


def conv(rng, features, dims):
    return {"type": "Conv", "features": int(features), "filter_shape": [2] * dims,
            "strides": None, "padding": "SAME", "w_std": r6(rng.uniform(0.8, 1.6)),
            "b_std": r6(rng.uniform(0.05, 0.5))}


def inputs(rng, dims, x2_is_none):
    spatial = (int(rng.integers(3, 7)),) if dims == 1 else ((2, 3), (3, 2), (2, 2))[
        rng.integers(3)]
    c = int(rng.integers(2, 5))
    x1 = rng.normal(size=(int(rng.integers(2, 5)),) + spatial + (c,))
    x2 = None if x2_is_none else rng.normal(size=(int(rng.integers(2, 4)),) + spatial + (c,))
    return x1, x2


def structure(rng, kind, mechanism, dims):
    w = int(rng.integers(3, 9))
    erf = {"type": "Erf", "a": r6(rng.uniform(0.5, 1.5)), "b": r6(rng.uniform(0.5, 1.5)),
           "c": r6(rng.uniform(-0.3, 0.3))}
    if kind == "dense_att_relu_gap":
        return [dense(rng, w), attention(rng, w, mechanism), {"type": "Relu"}, dense(rng, w),
                {"type": "GlobalAvgPool"}, dense(rng, 1)]
    if kind == "conv_relu_att_flatten":
        return [conv(rng, w, dims), {"type": "Relu"}, attention(rng, w + 1, mechanism),
                {"type": "Flatten"}, dense(rng, 1)]
    if kind == "residual_layernorm_att":
        scale = r6(rng.uniform(0.5, 1.5)) if rng.uniform() < 0.5 else 1.0
        block = [{"type": "LayerNorm"}, attention(rng, w, mechanism)]
        return [dense(rng, w), {"type": "Residual", "scale": scale, "block": block},
                {"type": "LayerNorm"}, erf, {"type": "GlobalAvgPool"}, dense(rng, 1)]
    if kind == "dense_att_no_readout":
        return [dense(rng, w), attention(rng, w, mechanism, bias=rng.uniform() < 0.5)]
    if kind == "raw_att_relu_flatten":
        return [attention(rng, w, mechanism), {"type": "Relu"}, {"type": "Flatten"},
                dense(rng, 1)]
    if kind == "two_att_standard":
        return [dense(rng, w, param="standard"), attention(rng, w, mechanism, bias=False),
                dense(rng, w, param="standard"), {"type": "Relu"},
                attention(rng, w, mechanism), {"type": "GlobalAvgPool"},
                dense(rng, 1, param="standard")]
    if kind == "three_residual_blocks":
        blocks = [{"type": "Residual", "scale": 1.0,
                   "block": [{"type": "LayerNorm"}, attention(rng, w, mechanism)]}
                  for _ in range(3)]
        for b in blocks[1:]:  # identical structure (a scanned run in widelimits)
            b["block"][1].update({k: blocks[0]["block"][1][k] for k in
                                  ("key_features", "value_features", "heads")})
        return [dense(rng, w)] + blocks + [{"type": "GlobalAvgPool"}, dense(rng, 1)]
    raise ValueError(kind)


def make_case(rng, kind, mechanism, dims, x2_is_none, tries=50):
    for _ in range(tries):
        layers = structure(rng, kind, mechanism, dims)
        x1, x2 = inputs(rng, dims, x2_is_none)
        nngp, ntk, var1, var2 = nt_kernels(layers, x1, x2)
        arrays = [nngp, ntk, var1] + ([] if var2 is None else [var2])
        if not all(np.isfinite(a).all() for a in arrays):
            continue
        p = int(round(np.sqrt(var1[0].size)))  # positions (1 after a readout)
        diag = np.diagonal(var1.reshape(len(x1), p, p), axis1=1, axis2=2)
        if max(np.abs(a).max() for a in arrays) < MAX_ABS and diag.min() > MIN_DIAG:
            return layers, x1, x2, nngp, ntk, var1, var2
    raise RuntimeError(f"could not sample a well-scaled case: {kind} {mechanism} {dims}-D")


def cases(rng):
    """Each structure with both mechanisms on sequences and images; x2 given or None so that
    every structure, mechanism and input rank meets both; then one case of each extra net."""
    out = []
    for kind in ("dense_att_relu_gap", "conv_relu_att_flatten", "residual_layernorm_att",
                 "dense_att_no_readout"):
        for mechanism in ("softmax", "identity"):
            for dims in (1, 2):
                x2_is_none = (dims == 2) != (mechanism == "identity")
                out.append(make_case(rng, kind, mechanism, dims, x2_is_none))
    for kind, mechanism, dims, x2_is_none in (
            ("raw_att_relu_flatten", "identity", 1, True),
            ("two_att_standard", "softmax", 2, False),
            ("three_residual_blocks", "identity", 1, False)):
        out.append(make_case(rng, kind, mechanism, dims, x2_is_none))
    return out


def finite_cases(rng):
    out = []
    for j, (mechanism, shape, bias) in enumerate((("softmax", (3, 5, 4), True),
                                                 ("identity", (2, 2, 3, 3), False),
                                                 ("softmax", (2, 3, 2, 5), True))):
        L = attention(rng, 6, mechanism, bias=bias)
        x = rng.normal(size=shape)
        init_fn, apply_fn, _ = nt_attention(L)
        _, params = init_fn(jax.random.PRNGKey(100 + j), x.shape)
        q, k, v, w_out, b, pos = params
        assert q is None and pos is None
        y = np.asarray(apply_fn(params, x), np.float64)
        out.append((L, x, np.asarray(k), np.asarray(v), np.asarray(w_out),
                    None if b is None else np.asarray(b).ravel(), y))
    return out


def write(name, kernel_cases, finite, seed):
    out = {"n_cases": np.array(len(kernel_cases)), "n_finite": np.array(len(finite)),
           "meta": np.array(json.dumps({"neural_tangents": nt.__version__,
                                        "jax": jax.__version__, "numpy": np.__version__,
                                        "seed": seed, "dtype": "float64"}))}
    for i, (layers, x1, x2, nngp, ntk, var1, var2) in enumerate(kernel_cases):
        cfg = {"layers": layers, "x2_is_none": x2 is None, "nan_in_reference": False}
        out[f"case{i}_config"] = np.array(json.dumps(cfg))
        out[f"case{i}_x1"] = np.asarray(x1, np.float64)
        if x2 is not None:
            out[f"case{i}_x2"] = np.asarray(x2, np.float64)
            out[f"case{i}_var2"] = var2
        out[f"case{i}_nngp"], out[f"case{i}_ntk"], out[f"case{i}_var1"] = nngp, ntk, var1
    for i, (L, x, k, v, w_out, b, y) in enumerate(finite):
        out[f"finite{i}_config"] = np.array(json.dumps(L))
        out[f"finite{i}_x"], out[f"finite{i}_y"] = x, y
        out[f"finite{i}_K"], out[f"finite{i}_V"], out[f"finite{i}_Wout"] = k, v, w_out
        if b is not None:
            out[f"finite{i}_b"] = b
    path = os.path.join(HERE, name)
    np.savez_compressed(path, **out)
    print(f"{name}: {len(kernel_cases)} kernel cases, {len(finite)} finite cases, "
          f"{os.path.getsize(path)} bytes")


if __name__ == "__main__":
    rng = np.random.default_rng(SEED)
    write("nt_attention.npz", cases(rng), finite_cases(rng), SEED)
