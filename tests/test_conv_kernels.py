"""Infinite-width NNGP/NTK of convolutional networks (``kernels.analytic`` on channels-last inputs).

Oracles, in order:
* neural-tangents 0.6.5 golden values (``tests/reference/nt_conv.npz``, written by
  ``tests/reference/make_golden_conv.py`` in the pinned reference venv; never imported here);
* Monte Carlo over wide finite CNNs (``nets`` forward passes, which ``tests/test_conv.py``
  checks against explicit loops), with tolerances from the sampling standard error;
* properties (symmetry, PSD, shapes) over random architectures (hypothesis);
* the same kernel computed another way (tiles, x2=None, jit, vmap, finite differences,
  float32 vs float64), and internal consistency of the two position layouts.
"""

import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

jax.config.update("jax_enable_x64", True)

from widelimits import kernels, nets  # noqa: E402

REF = pathlib.Path(__file__).parent / "reference" / "nt_conv.npz"
RTOL = 1e-9  # elementwise relative error off the diagonal ...
ATOL_REL = 1e-12  # ... plus an absolute floor of 1e-12 * max|reference| for entries near 0


# --------------------------------------------------------------------------------------
# golden config (tests/reference/README.md) -> our network spec
# --------------------------------------------------------------------------------------

def _tuple(v):
    return None if v is None else tuple(v)


def build_layer(L):
    t = L["type"]
    if t == "Dense":
        return nets.Dense(L["width"], w_std=L["w_std"], b_std=L["b_std"],
                          parameterization=L["parameterization"])
    if t == "Conv":
        return nets.Conv(L["features"], tuple(L["filter_shape"]), strides=_tuple(L["strides"]),
                         padding=L["padding"], w_std=L["w_std"], b_std=L["b_std"],
                         parameterization=L["parameterization"])
    if t in ("AvgPool", "SumPool"):
        return getattr(nets, t)(tuple(L["window_shape"]), strides=_tuple(L["strides"]),
                                padding=L["padding"])
    if t in ("GlobalAvgPool", "GlobalSumPool", "Flatten", "Relu", "Abs", "Identity", "Gelu",
             "LayerNorm"):
        return getattr(nets, t)()
    if t == "LeakyRelu":
        return nets.LeakyRelu(L["alpha"])
    if t == "ABRelu":
        return nets.ABRelu(L["a"], L["b"])
    if t in ("Erf", "Sin", "Cos"):
        return getattr(nets, t)(a=L["a"], b=L["b"], c=L["c"])
    if t == "Residual":
        return nets.residual(build(L["block"]), scale=L["scale"])
    if t == "Parallel":
        return nets.parallel(*[build(br) for br in L["branches"]])
    raise ValueError(f"unknown layer type in golden config: {t!r}")


def build(layers):
    return nets.serial(*[build_layer(L) for L in layers])


def nt_to_ours(a, batch_ndim, reversed_):
    """NT's position-pair layout (batch, A_1, A_1, ..., A_k, A_k), with A = S reversed when NT's
    ``is_reversed``, -> ours (batch, S_1, ..., S_k, S_1, ..., S_k)."""
    k = (a.ndim - batch_ndim) // 2
    if k == 0:
        return a
    pair = [k - 1 - d if reversed_ else d for d in range(k)]  # NT's pair index of our axis d
    perm = (list(range(batch_ndim)) + [batch_ndim + 2 * j for j in pair]
            + [batch_ndim + 2 * j + 1 for j in pair])
    return np.transpose(a, perm)


def _load_cases():
    if not REF.exists():  # a missing file is an error, not a skip
        raise FileNotFoundError(f"{REF} missing; regenerate with "
                                "tests/reference/make_golden_conv.py (see README there)")
    cases = []
    with np.load(REF) as z:
        for i in range(int(z["n_cases"])):
            cfg = json.loads(str(z[f"case{i}_config"]))
            x2_none, rev = cfg["x2_is_none"], cfg["nt_is_reversed"]
            ref = {"nngp": nt_to_ours(z[f"case{i}_nngp"], 2, rev),
                   "ntk": nt_to_ours(z[f"case{i}_ntk"], 2, rev),
                   "var1": nt_to_ours(z[f"case{i}_var1"], 1, rev),
                   "var2": None if x2_none else nt_to_ours(z[f"case{i}_var2"], 1, rev)}
            x2 = None if x2_none else z[f"case{i}_x2"]
            cases.append(pytest.param(cfg, z[f"case{i}_x1"], x2, ref,
                                      id=f"{i:02d}-{cfg['name']}{'-x2none' if x2_none else ''}"))
    return cases


CASES = _load_cases()
# Each case is one compilation (~0.5-2 s of CPU at the suite's XLA settings), so the default
# suite runs a subset that still covers every option (test_golden_file_covers_every_option
# checks it); all cases run under `make test-all` (marker ``slow``).
DEFAULT = {"2d-pool-zoo-circular-conv-abs", "1d-pool-zoo-valid-standard-gelu",
           "2d-valid-nonsquare-mixed-strides-erf-flatten-standard", "2d-residual-layernorm-gap-x2",
           "2d-parallel-branches-gap", "2d-no-readout-same-relu-valid-nonsquare",
           "2d-no-readout-avgpool-x2none", "2d-no-readout-raw-conv-s12",
           "3d-same-relu-avgpool-s2-gap"}
GOLDEN = [c if c.values[0]["name"] in DEFAULT else
          pytest.param(*c.values, id=c.id, marks=pytest.mark.slow) for c in CASES]


def _check(name, ours, ref, mask=None, rtol=RTOL):
    assert ours.shape == ref.shape, f"{name}: shape {ours.shape} != reference {ref.shape}"
    scale = np.max(np.abs(ref))
    if mask is not None:
        ours, ref = ours[mask], ref[mask]
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=ATOL_REL * scale, err_msg=name)


def test_golden_file_covers_every_option():
    """The reference set exercises every option the brief lists (a guard against a generator
    edit silently dropping one)."""
    seen = set()

    def walk(layers):
        for L in layers:
            t = L["type"]
            seen.add(t)
            if t in ("Conv", "AvgPool", "SumPool"):
                seen.add(f"{t}-{L['padding']}")
                shape = L.get("filter_shape") or L["window_shape"]
                seen.add(f"{len(shape)}d")
                strides = L["strides"] or [1] * len(shape)
                seen.update(f"stride{s}" for s in strides)
                if len(set(strides)) > 1:
                    seen.add("mixed-strides")
                if len(set(shape)) > 1:
                    seen.add("non-square")
            if t in ("Conv", "Dense"):
                seen.add(f"{t}-{L['parameterization']}")
                b = L["b_std"]
                seen.add(f"b-{'none' if b is None else 'zero' if b == 0 else 'nonzero'}")
            walk(L.get("block", []))
            for br in L.get("branches", []):
                walk(br)

    def options(cases):
        seen.clear()
        for c in cases:
            cfg, x1, x2, ref = c.values
            walk(cfg["layers"])
            seen.add("x2none" if x2 is None else "x2")
            seen.add("no-readout" if ref["nngp"].ndim > 2 else "readout")
            seen.add(f"input-{x1.ndim - 2}d")
        return set(seen)

    assert {c.values[0]["name"] for c in CASES} >= DEFAULT
    want = {"Conv-SAME", "Conv-VALID", "Conv-CIRCULAR", "stride1", "stride2", "mixed-strides",
            "1d", "2d", "3d", "input-1d", "input-2d", "input-3d", "non-square",
            "AvgPool-VALID", "AvgPool-SAME", "AvgPool-CIRCULAR", "SumPool-VALID", "SumPool-SAME",
            "SumPool-CIRCULAR", "GlobalAvgPool", "GlobalSumPool", "Flatten", "Conv-ntk",
            "Conv-standard", "Dense-ntk", "Dense-standard", "b-none", "b-zero", "b-nonzero",
            "Relu", "Erf", "Gelu", "Abs", "LeakyRelu", "Residual", "LayerNorm", "Parallel",
            "x2none", "x2", "no-readout", "readout"}
    # the default subset: every structural option, and four activations (the others are
    # position-wise duals, the same code as in tests/test_golden.py)
    want_default = want - {"LeakyRelu"}
    for label, cases, w in (("golden set", CASES, want),
                            ("default subset", [c for c in GOLDEN if not c.marks], want_default)):
        missing = w - options(cases)
        assert not missing, f"missing from the {label}: {sorted(missing)}"


@pytest.mark.parametrize("cfg, x1, x2, ref", GOLDEN)
def test_golden(cfg, x1, x2, ref):
    """All NNGP/NTK entries at rtol 1e-9 and the variances against NT's cov1/cov2. For x2=None
    the entries (x_i, x_i) are compared separately: the NNGP with NT's dedicated variance
    ``cov1`` at 1e-9, the NTK at NTK_DIAG_RTOL (NT computes its x2=None diagonal with the
    pair formula, see tests/reference/README.md)."""
    k = kernels.analytic(build(cfg["layers"]), x1, x2)
    nngp, ntk = np.asarray(k.nngp), np.asarray(k.ntk)
    assert nngp.dtype == np.float64
    _check("var1", np.asarray(k.var1), ref["var1"])
    if x2 is None:
        n = len(x1)
        off = ~np.eye(n, dtype=bool).reshape((n, n) + (1,) * (nngp.ndim - 2))
        off = np.broadcast_to(off, nngp.shape)
        _check("nngp (off-diagonal)", nngp, ref["nngp"], off)
        _check("ntk (off-diagonal)", ntk, ref["ntk"], off)
        i = np.arange(n)
        _check("nngp diagonal vs NT variance cov1", nngp[i, i], ref["var1"])
        _check("ntk diagonal", ntk[i, i], ref["ntk"][i, i], rtol=NTK_DIAG_RTOL)
    else:
        _check("var2", np.asarray(k.var2), ref["var2"])
        _check("nngp", nngp, ref["nngp"])
        _check("ntk", ntk, ref["ntk"])


# Measured worst relative errors against NT over all 36 cases: off the diagonal 2.7e-12 (the
# LayerNorm cases, where NT adds eps = 1e-12 to the variances; otherwise <= 1e-14); the NNGP
# diagonal of x2=None kernels vs NT's cov1 6e-13 (LayerNorm; otherwise <= 1e-15); the NTK
# diagonal vs NT's matrix diagonal 8.4e-10 (case 28, ABRelu: NT evaluates the arc-cosine
# derivative at an angle of ~1e-8 instead of 0 there, see tests/reference/README.md). The NTK
# diagonal is therefore held to 1e-7.
NTK_DIAG_RTOL = 1e-7


# --------------------------------------------------------------------------------------
# shared nets and inputs (the same net on the same shapes reuses one compiled program
# across tests: analytic is jitted and w_std/b_std are array leaves)
# --------------------------------------------------------------------------------------

X1 = jax.random.normal(jax.random.key(30), (4, 5, 4, 2), jnp.float64)
X2 = jax.random.normal(jax.random.key(31), (3, 5, 4, 2), jnp.float64)


def _gap_net(w_std=1.2):
    """All pairs of positions (pooling): Conv SAME strides (2, 1), Erf, AvgPool SAME,
    GlobalAvgPool, Dense. (Small: every layer adds ~0.2-1 s of compilation.)"""
    return nets.serial(nets.Conv(3, (3, 2), strides=(2, 1), padding="SAME", w_std=w_std,
                                 b_std=0.2), nets.Erf(), nets.AvgPool((2, 2), padding="SAME"),
                       nets.GlobalAvgPool(), nets.Dense(1, b_std=0.1))


def _flatten_net():
    """Equal positions only: Conv SAME strides (1, 2), Gelu, Conv VALID, Flatten, Dense."""
    return nets.serial(nets.Conv(3, (3, 3), strides=(1, 2), padding="SAME", b_std=0.2),
                       nets.Gelu(), nets.Conv(3, (2, 1), padding="VALID"), nets.Flatten(),
                       nets.Dense(1, b_std=0.1))


def _no_readout_net():
    """No readout: kernels over all pairs of output positions (n1, n2, 3, 2, 3, 2)."""
    return nets.serial(nets.Conv(3, (2, 2), strides=(2, 1), padding="SAME"), nets.Relu(),
                       nets.Conv(3, (1, 3), padding="VALID"))


NETS = {"gap": _gap_net, "flatten": _flatten_net, "no-readout": _no_readout_net}


# --------------------------------------------------------------------------------------
# internal consistency: the two position layouts
# --------------------------------------------------------------------------------------

def _layout_net(pool):
    return nets.serial(
        nets.Conv(3, (3, 2), strides=(2, 1), padding="SAME", w_std=1.3, b_std=0.2), *pool,
        nets.residual(nets.Gelu(), nets.Conv(3, (2, 2), padding="CIRCULAR"), scale=0.5),
        nets.LayerNorm(), nets.Relu(), nets.Flatten(), nets.Dense(1, w_std=1.1, b_std=0.3))


@pytest.mark.slow  # make test-all (CI time)
def test_internal_consistency_equal_positions_vs_all_pairs():
    """INTERNAL CONSISTENCY (not an independent oracle): a Flatten readout needs only the
    covariances of equal positions, which the net without pooling carries; inserting a window
    pool of size 1 (the identity, also on the finite net) forces the all-pairs representation.
    Both must give the same kernel. (That a window pool of size 1 is the identity on the finite
    net follows from the window sums checked in tests/test_conv.py.)"""
    pool = nets.AvgPool((1, 1))
    plain, pooled = _layout_net(()), _layout_net((pool,))
    a, b = kernels.analytic(plain, X1, X2), kernels.analytic(pooled, X1, X2)
    for f in ("nngp", "ntk", "var1", "var2"):
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=1e-12, err_msg=f)
    # the pool really forces the full layout: on a state with equal positions only, its rule
    # asks for all pairs (kernels.analytic then starts again with them) ...
    s = kernels.KernelState(var1=jnp.ones((1, 2, 2)), nngp=jnp.ones((1, 1, 2, 2)),
                            var2=jnp.ones((1, 2, 2)), ntk=jnp.zeros((1, 1, 2, 2)), gaussian=True,
                            features=2, spatial=(2, 2), full=False)
    with pytest.raises(Exception) as info:
        kernels.propagate(pool, s)
    assert type(info.value).__name__ == "NeedsFullCovariance"


@jax.jit
def _both_layouts(x1, x2):
    """States after each layer, propagated with all pairs of positions and with equal
    positions only (``kernels.propagate`` on hand-built input states)."""
    layers = [nets.Conv(3, (3, 3), strides=(1, 2), padding="SAME", b_std=0.3), nets.Erf(),
              nets.Conv(3, (3, 2), padding="CIRCULAR", parameterization="standard"),
              nets.Conv(3, (2, 1), padding="VALID", w_std=1.4)]
    n1, n2, spatial, c = x1.shape[0], x2.shape[0], x1.shape[1:-1], x1.shape[-1]
    a, b = x1.reshape(n1, -1, c), x2.reshape(n2, -1, c)
    full = kernels.KernelState(
        var1=jnp.einsum("ipc,iqc->ipq", a, a).reshape((n1,) + spatial * 2) / c,
        nngp=jnp.einsum("ipc,jqc->ijpq", a, b).reshape((n1, n2) + spatial * 2) / c,
        var2=jnp.einsum("ipc,iqc->ipq", b, b).reshape((n2,) + spatial * 2) / c,
        ntk=jnp.zeros((n1, n2) + spatial * 2, x1.dtype), gaussian=False, features=c, raw=True,
        spatial=spatial, full=True)
    diag = kernels.KernelState(
        var1=jnp.einsum("ipc,ipc->ip", a, a).reshape((n1,) + spatial) / c,
        nngp=jnp.einsum("ipc,jpc->ijp", a, b).reshape((n1, n2) + spatial) / c,
        var2=jnp.einsum("ipc,ipc->ip", b, b).reshape((n2,) + spatial) / c,
        ntk=jnp.zeros((n1, n2) + spatial, x1.dtype), gaussian=False, features=c, raw=True,
        spatial=spatial)
    out = []
    for layer in layers:
        full, diag = kernels.propagate(layer, full), kernels.propagate(layer, diag)
        assert full.spatial == diag.spatial
        out.append((full, diag))
    return out


@pytest.mark.slow  # 3-4 s of compilation; the test above checks the same at the readout
def test_internal_consistency_layouts_position_by_position():
    """INTERNAL CONSISTENCY: after every layer, the position diagonal a = a' of the all-pairs
    state is the equal-positions state."""
    def pos_diag(q, batch):
        s = q.shape[batch:batch + (q.ndim - batch) // 2]
        flat = q.reshape(q.shape[:batch] + (math.prod(s),) * 2)
        return jnp.diagonal(flat, axis1=-2, axis2=-1).reshape(q.shape[:batch] + s)

    for i, (full, diag) in enumerate(_both_layouts(X1, X2)):
        for f, batch in (("nngp", 2), ("ntk", 2), ("var1", 1), ("var2", 1)):
            assert float(jnp.abs(getattr(diag, f)).max()) > 0
            np.testing.assert_allclose(pos_diag(getattr(full, f), batch), getattr(diag, f),
                                       rtol=1e-12, err_msg=f"{f} after layer {i}")


# --------------------------------------------------------------------------------------
# Monte Carlo over wide finite CNNs
# --------------------------------------------------------------------------------------

def _mc_readout_nngp(net, x, key, n_nets, chunk):
    """Mean and standard error over ``n_nets`` finite nets of the NNGP given the body:
    E over the Dense readout of f(x_i) f(x_j) = w² phi_i . phi_j / n + b² (phi: the n features
    entering the readout). Nets are iid, so SE = sample std / sqrt(n_nets)."""
    body, readout = nets.serial(*net.layers[:-1]), net.layers[-1]
    b2 = 0.0 if readout.b_std is None else readout.b_std**2

    def one(k):
        params = body.init(k, x.shape)
        phi = body.apply(params, x)
        return readout.w_std**2 * (phi @ phi.T) / phi.shape[-1] + b2

    keys = jax.random.split(key, n_nets).reshape(n_nets // chunk, chunk)
    run = jax.jit(jax.vmap(one))
    s = np.concatenate([np.asarray(run(k)) for k in keys])
    return s.mean(0), s.std(0, ddof=1) / np.sqrt(n_nets)


def test_monte_carlo_cnn_gap_same_strides():
    """CNN-GAP: Conv(256, SAME, strides 2), Relu, Conv(64, SAME, strides (1, 2)),
    AvgPool(SAME), GlobalAvgPool, Dense. One nonlinearity: given the input, every channel of the
    first conv is exactly Gaussian with covariance K¹, and all that follows is linear in the
    feature covariance, so the expected readout NNGP equals the infinite-width one at *every*
    width (no finite-width bias). The tolerance is pure sampling error: |mean - K| <= 5 SE
    entrywise (SE = sample std / sqrt(128) over 128 nets; P(|z| > 5) < 6e-6 for each of the 10
    entries, though the entries are correlated; fixed keys make it deterministic; measured with
    these keys: max |z| = 2.2, SE = 0.6-0.9 % of max K)."""
    net = nets.serial(nets.Conv(256, (3, 3), strides=(2, 2), padding="SAME", w_std=1.2,
                                b_std=0.3), nets.Relu(),
                      nets.Conv(64, (2, 3), strides=(1, 2), padding="SAME", w_std=0.9),
                      nets.AvgPool((2, 2), padding="SAME"), nets.GlobalAvgPool(),
                      nets.Dense(1, w_std=1.1, b_std=0.2))
    x = jax.random.normal(jax.random.key(10), (4, 6, 5, 3), jnp.float64)
    want = np.asarray(kernels.analytic(net, x).nngp)
    mean, se = _mc_readout_nngp(net, x, jax.random.key(11), 128, 128)
    iu = np.triu_indices(4)
    z = (mean - want)[iu] / se[iu]
    assert np.all(np.abs(z) < 5), z
    assert np.all(se[iu] < 0.02 * np.abs(want[iu]).max())  # the check has teeth


@pytest.mark.slow  # make test-all (CI time)
def test_monte_carlo_cnn_flatten_two_nonlinearities():
    """CNN-Flatten: Conv(256, SAME, strides (2, 1)), Erf, Conv(256, SAME, strides 2), Relu,
    Flatten, Dense; 64 nets. Two nonlinearities, so the expected finite-width NNGP differs from
    the limit by O(1/width) (Yaida 2020): tolerance |mean - K| <= 4 SE + max|K| / width
    entrywise (P(|z| > 4) < 7e-5 per entry). The allowance takes the bias coefficient
    |E K_width - K| · width / max|K| to be <= 1; measured for this architecture and input at
    widths 8 and 16 (16384 nets each): <= 0.06 ± 0.04, so the allowance is 10x generous yet,
    at 0.4 % of max K, below the sampling tolerance 4 SE (SE = 0.4-1 % of max K; measured with
    these keys: max |z| = 1.3)."""
    width = 256
    net = nets.serial(nets.Conv(width, (3, 3), strides=(2, 1), padding="SAME", w_std=1.5,
                                b_std=0.2), nets.Erf(),
                      nets.Conv(width, (2, 2), strides=(2, 2), padding="SAME", w_std=1.3,
                                b_std=0.1), nets.Relu(),
                      nets.Flatten(), nets.Dense(1, w_std=1.0, b_std=0.0))
    x = jax.random.normal(jax.random.key(20), (3, 5, 4, 2), jnp.float64)
    want = np.asarray(kernels.analytic(net, x).nngp)
    mean, se = _mc_readout_nngp(net, x, jax.random.key(21), 64, 64)
    iu = np.triu_indices(3)
    err, tol = np.abs(mean - want)[iu], (4 * se + np.abs(want).max() / width)[iu]
    assert np.all(err <= tol), (err, tol)
    assert np.all(se[iu] < 0.02 * np.abs(want[iu]).max())


# --------------------------------------------------------------------------------------
# properties over random architectures
# --------------------------------------------------------------------------------------

ACTS = [nets.Relu(), nets.Erf(), nets.Gelu(), nets.Abs(), nets.LeakyRelu(0.2), nets.Tanh(),
        nets.Sin()]


@st.composite
def conv_nets(draw):
    """(net, input shape (n, *spatial, C)): a Conv, then up to two of [activation, Conv] /
    window pool / [activation, Dense per position] / LayerNorm / residual(activation, Conv
    SAME), then an activation and a GlobalAvgPool, GlobalSumPool or Flatten + Dense readout.
    VALID windows are drawn only where they fit."""
    k = draw(st.integers(1, 2))
    spatial = tuple(draw(st.integers(2, 5)) for _ in range(k))
    shape = (draw(st.integers(3, 5)), *spatial, draw(st.integers(1, 3)))
    param = draw(st.sampled_from(["ntk", "standard"]))
    bias = lambda: draw(st.sampled_from([None, 0.0, 0.3]))  # noqa: E731

    def window(kind, spatial):
        w = tuple(draw(st.integers(1, 3)) for _ in range(k))
        s = tuple(draw(st.integers(1, 2)) for _ in range(k))
        fits = all(wi <= si for wi, si in zip(w, spatial, strict=True))
        pad = draw(st.sampled_from(["VALID", "SAME", "CIRCULAR"] if fits else
                                   ["SAME", "CIRCULAR"]))
        if kind == "conv":
            layer = nets.Conv(2, w, strides=s, padding=pad, w_std=draw(st.floats(0.5, 1.5)),
                              b_std=bias(), parameterization=param)
        else:
            layer = getattr(nets, kind)(w, strides=s, padding=pad)
        return layer, layer.output_shape((1, *spatial, 1))[1:-1]

    layer, spatial = window("conv", spatial)
    layers = [layer]
    for _ in range(draw(st.integers(0, 2))):
        choice = draw(st.sampled_from(["act-conv", "pool", "dense", "layernorm", "residual"]))
        if choice == "act-conv":
            layer, spatial = window("conv", spatial)
            layers += [draw(st.sampled_from(ACTS)), layer]
        elif choice == "pool":
            layer, spatial = window(draw(st.sampled_from(["AvgPool", "SumPool"])), spatial)
            layers.append(layer)
        elif choice == "dense":
            layers += [draw(st.sampled_from(ACTS)),
                       nets.Dense(2, b_std=bias(), parameterization=param)]
        elif choice == "layernorm":
            layers.append(nets.LayerNorm())
        else:
            f = tuple(draw(st.integers(1, 3)) for _ in range(k))
            layers.append(nets.residual(draw(st.sampled_from(ACTS)),
                                        nets.Conv(2, f, padding="SAME", parameterization=param),
                                        scale=draw(st.floats(0.3, 1.0))))
    layers.append(draw(st.sampled_from(ACTS)))
    layers.append(draw(st.sampled_from([nets.GlobalAvgPool(), nets.GlobalSumPool(),
                                        nets.Flatten()])))
    layers.append(nets.Dense(1, b_std=bias(), parameterization=param))
    return nets.serial(*layers), shape


# 4 examples: each is a new architecture, i.e. one compilation (~1.5 s of CPU at the suite's
# XLA settings); derandomized (a fixed example sequence), as tests/test_dual.py does.
@settings(max_examples=4, deadline=None, derandomize=True, database=None)
@given(case=conv_nets(), seed=st.integers(0, 2**16))
def test_random_conv_nets_symmetric_psd_finite(case, seed):
    net, shape = case
    x = jax.random.normal(jax.random.key(seed), shape, jnp.float64)
    k = kernels.analytic(net, x)
    n = shape[0]
    for name, mat in (("nngp", k.nngp), ("ntk", k.ntk)):
        mat = np.asarray(mat)
        assert mat.shape == (n, n), name
        assert np.all(np.isfinite(mat)), name
        np.testing.assert_allclose(mat, mat.T, rtol=1e-12, atol=1e-14 * np.abs(mat).max(),
                                   err_msg=name)
        eig = np.linalg.eigvalsh(mat)
        assert eig.min() >= -1e-8 * eig.max(), (name, eig)
    assert k.var1.shape == k.var2.shape == (n,)
    np.testing.assert_allclose(k.var1, np.diag(np.asarray(k.nngp)), rtol=1e-12)
    assert np.all(np.asarray(k.var1) > 0)


# --------------------------------------------------------------------------------------
# the same kernel, computed another way
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "gap" else n
                                  for n in NETS])
def test_tiles_and_x2_none(name):
    """batch_size=2 tiles give the untiled kernel (x2 given, and x2=None); x2=None gives
    analytic(net, x, x)."""
    net = NETS[name]()
    full, tiled = kernels.analytic(net, X1, X2), kernels.analytic(net, X1, X2, batch_size=2)
    assert full.nngp.shape == (4, 3) + ((3, 2, 3, 2) if name == "no-readout" else ())
    for f in ("nngp", "ntk", "var1", "var2"):
        np.testing.assert_allclose(getattr(tiled, f), getattr(full, f), rtol=1e-12, err_msg=f)
    if name != "gap":  # x2=None of the other layouts: golden cases 09, 30, 33, 35
        return
    sym, same = kernels.analytic(net, X1), kernels.analytic(net, X1, X1)
    for f in ("nngp", "ntk", "var1"):
        np.testing.assert_allclose(getattr(sym, f), getattr(same, f), rtol=1e-12, err_msg=f)
    np.testing.assert_allclose(full.var1, sym.var1, rtol=1e-12)
    sym_tiled = kernels.analytic(net, X1, batch_size=2)  # diagonal tiles from the variances
    for f in ("nngp", "ntk", "var1"):
        np.testing.assert_allclose(getattr(sym_tiled, f), getattr(sym, f), rtol=1e-12,
                                   err_msg=f)


def test_jit_and_vmap_over_datasets():
    """jax.jit of a function calling analytic, and jax.vmap over a stack of 3 datasets, equal
    the plain calls."""
    net = _gap_net()
    xs = jnp.stack([X1, 0.5 * X1[::-1], X1 + 1.0])
    want = np.stack([np.asarray(kernels.analytic(net, x).ntk) for x in xs])
    f = lambda x: kernels.analytic(net, x).ntk  # noqa: E731
    np.testing.assert_allclose(jax.jit(f)(xs[1]), want[1], rtol=1e-12)
    np.testing.assert_allclose(jax.vmap(f)(xs), want, rtol=1e-12)


@pytest.mark.slow  # make test-all (CI time)
def test_grad_wrt_conv_w_std_matches_finite_difference():
    """d/dw of sum(NNGP) + sum(NTK) for the first Conv's w_std: jax.grad vs a central difference
    (float64, h = 1e-5: truncation ~h² ~ 1e-10, round-off ~1e-16/h ~ 1e-11 relative)."""
    def loss(w):
        k = kernels.analytic(_gap_net(w), X1, X2)
        return jnp.sum(k.nngp) + jnp.sum(k.ntk)

    w, h = 1.2, 1e-5
    g = jax.grad(loss)(jnp.float64(w))
    fd = (loss(w + h) - loss(w - h)) / (2 * h)
    assert abs(float(g)) > 1e-2
    np.testing.assert_allclose(g, fd, rtol=1e-7)


@pytest.mark.parametrize("name", ["gap", "flatten"])
def test_float32_agrees_with_float64(name):
    net = NETS[name]()
    k64 = kernels.analytic(net, X1, X2)
    k32 = kernels.analytic(net, X1.astype(jnp.float32), X2.astype(jnp.float32))
    for f in ("nngp", "ntk", "var1", "var2"):
        a, b = getattr(k32, f), np.asarray(getattr(k64, f))
        assert a.dtype == jnp.float32, f
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max(), err_msg=f)


# --------------------------------------------------------------------------------------
# bad input: clear ValueError/TypeError naming the layer's path and the shapes
# --------------------------------------------------------------------------------------

X2D = jnp.ones((2, 5, 5, 2))


@pytest.mark.parametrize("call, match", [
    (lambda: kernels.analytic(nets.serial(nets.Dense(3), nets.Conv(3, (3,)), nets.Flatten(),
                                          nets.Dense(1)), jnp.ones((2, 6))),
     r"Conv serial\[1\]\..*1 spatial axis.*without spatial axes \(shape \(n, C\)"),
    (lambda: kernels.analytic(nets.serial(nets.Conv(3, (3, 3)), nets.Relu(),
                                          nets.Conv(3, (4, 4)), nets.Flatten(), nets.Dense(1)),
                              X2D),
     r"serial\[2\]\. \(Conv.*on spatial shape \(3, 3\).*window of 4 does not fit.*size 3"),
    (lambda: kernels.analytic(nets.serial(nets.Conv(3, (3, 3)), nets.AvgPool((4, 1)),
                                          nets.GlobalAvgPool(), nets.Dense(1)), X2D),
     r"serial\[1\]\. \(AvgPool.*on spatial shape \(3, 3\).*window of 4 does not fit"),
    (lambda: kernels.analytic(nets.serial(nets.Conv(3, (3, 3)), nets.GlobalAvgPool(),
                                          nets.Dense(1)), X2D, jnp.ones((2, 4, 5, 2))),
     r"x1 and x2 must have the same shape.*\(n1, 5, 5, 2\).*\(2, 4, 5, 2\)"),
    (lambda: kernels.analytic(nets.serial(nets.Conv(3, (3, 3)), nets.Flatten(),
                                          nets.GlobalAvgPool(), nets.Dense(1)), X2D),
     r"GlobalAvgPool serial\[2\]\..*none left"),
    (lambda: kernels.analytic(nets.serial(nets.GlobalSumPool(), nets.GlobalSumPool(),
                                          nets.Dense(1)), X2D),
     r"GlobalSumPool serial\[1\]\..*none left"),
    (lambda: kernels.analytic(nets.serial(nets.Conv(3, (3,)), nets.GlobalAvgPool(),
                                          nets.Dense(1)), X2D),
     r"Conv serial\[0\]\..*1 spatial axis.*spatial shape \(5, 5\)"),
    (lambda: nets.Conv(3, (3, 3), strides=(0, 1)), r"Conv: strides\[0\] must be a positive int, "
                                                   r"got 0"),
    (lambda: nets.AvgPool((2, 2), strides=(1, -1)), r"AvgPool: strides\[1\].*positive.*got -1"),
    (lambda: nets.SumPool((0, 2)), r"SumPool: window_shape\[0\].*positive.*got 0"),
    (lambda: nets.AvgPool((-2,)), r"AvgPool: window_shape\[0\].*positive.*got -2"),
    (lambda: nets.Conv(3, (0, 2)), r"Conv: filter_shape\[0\].*positive.*got 0"),
    (lambda: nets.Conv(3, (2, 2), padding="same"), r"Conv: padding must be one of.*'same'"),
    (lambda: nets.SumPool((2,), padding="FULL"), r"SumPool: padding must be one of.*'FULL'"),
], ids=["conv-on-(n,d)", "filter-larger-than-valid-input", "pool-window-too-large",
        "x1-x2-spatial-differ", "global-pool-after-flatten", "global-pool-twice",
        "conv1d-on-2d-input", "conv-stride-0", "avgpool-stride-negative", "sumpool-window-0",
        "avgpool-window-negative", "conv-filter-0", "conv-padding-lowercase",
        "pool-padding-unknown"])
def test_bad_input_says_where_and_what(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
