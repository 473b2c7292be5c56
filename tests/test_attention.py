"""``nets.GlobalSelfAttention`` and its infinite-width rule.

Oracles: neural-tangents 0.6.5's kernels and finite forward passes (``reference/
nt_attention.npz``, written by ``reference/make_golden_attention.py``; never imported here), the
forward pass written out head by head and position by position in NumPy, and Monte Carlo
averages over wide finite networks with a tolerance set by their sampling error.
"""

import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

jax.config.update("jax_enable_x64", True)

from widelimits import dynamics, kernels, nets  # noqa: E402

from ._mc import z_scores  # noqa: E402
from .conftest import rtol_for  # noqa: E402

REF = pathlib.Path(__file__).parent / "reference" / "nt_attention.npz"
RTOL = 1e-9  # elementwise, plus an absolute floor of ATOL_REL * max|reference|
ATOL_REL = 1e-12


# --------------------------------------------------------------------------------------
# config (tests/reference/README.md) -> our spec
# --------------------------------------------------------------------------------------

def attention(L):
    return nets.GlobalSelfAttention(
        L["features"], L["key_features"], L["value_features"], L["heads"],
        mechanism=L["mechanism"], w_key_std=L["w_key_std"], w_value_std=L["w_value_std"],
        w_query_std=L["w_query_std"], w_out_std=L["w_out_std"], b_std=L["b_std"])


def build_layer(L):
    t = L["type"]
    if t == "Dense":
        return nets.Dense(L["width"], w_std=L["w_std"], b_std=L["b_std"],
                          parameterization=L["parameterization"])
    if t == "Conv":
        return nets.Conv(L["features"], tuple(L["filter_shape"]),
                         None if L["strides"] is None else tuple(L["strides"]), L["padding"],
                         w_std=L["w_std"], b_std=L["b_std"])
    if t == "GlobalSelfAttention":
        return attention(L)
    if t == "Erf":
        return nets.Erf(a=L["a"], b=L["b"], c=L["c"])
    if t in ("Relu", "LayerNorm", "GlobalAvgPool", "Flatten"):
        return getattr(nets, t)()
    if t == "Residual":
        return nets.residual(*[build_layer(m) for m in L["block"]], scale=L["scale"])
    raise ValueError(f"unknown layer type in golden config: {t!r}")


def _summary(layers):
    short = {"GlobalSelfAttention": "Att", "GlobalAvgPool": "GAP", "LayerNorm": "LN"}
    out = []
    for L in layers:
        t = L["type"]
        if t == "Residual":
            out.append("Res(" + _summary(L["block"]) + ")")
        elif t == "GlobalSelfAttention":
            out.append(f"Att[{L['mechanism']}]")
        else:
            out.append(short.get(t, t))
    return "-".join(out)


def _load():
    with np.load(REF) as z:
        cases = []
        for i in range(int(z["n_cases"])):
            cfg = json.loads(str(z[f"case{i}_config"]))
            x2 = None if cfg["x2_is_none"] else z[f"case{i}_x2"]
            ref = {k: z[f"case{i}_{k}"] for k in ("nngp", "ntk", "var1")}
            ref["var2"] = None if x2 is None else z[f"case{i}_var2"]
            x1 = z[f"case{i}_x1"]
            cid = (f"{i:02d}-{x1.ndim - 2}d-{'x2none-' if x2 is None else ''}"
                   f"{_summary(cfg['layers'])}")
            cases.append(pytest.param(cfg, x1, x2, ref, id=cid))
        finite = [pytest.param({k[len(f"finite{i}_"):]: z[k] for k in z.files
                                if k.startswith(f"finite{i}_")}, id=f"finite{i}")
                  for i in range(int(z["n_finite"]))]
    return cases, finite


CASES, FINITE = _load()


def _check(name, ours, ref):
    ours = np.asarray(ours, np.float64)
    assert ours.shape == ref.shape, f"{name}: shape {ours.shape} != reference {ref.shape}"
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=ATOL_REL * np.abs(ref).max(),
                               err_msg=name)


# --------------------------------------------------------------------------------------
# golden values (neural-tangents 0.6.5)
# --------------------------------------------------------------------------------------

def _flat_layers(layers):
    for L in layers:
        yield L
        if L["type"] == "Residual":
            yield from _flat_layers(L["block"])


def test_golden_file_covers_both_mechanisms_ranks_and_x2():
    mechanisms = {L["mechanism"] for c in CASES for L in _flat_layers(c.values[0]["layers"])
                  if L["type"] == "GlobalSelfAttention"}
    assert mechanisms == {"softmax", "identity"}
    assert {c.values[1].ndim for c in CASES} == {3, 4}  # sequences and images
    assert {c.values[0]["x2_is_none"] for c in CASES} == {True, False}
    assert len(CASES) >= 19 and REF.stat().st_size < 200_000


# The default suite compiles 9 of the 19 nets (each structure, both mechanisms, sequences and
# images, x2 given and None); the others run under ``make test-all`` (marker ``slow``).
DEFAULT = {0, 6, 9, 11, 13, 15, 16, 17, 18}
GOLDEN = [c if i in DEFAULT else pytest.param(*c.values, id=c.id, marks=pytest.mark.slow)
          for i, c in enumerate(CASES)]


@pytest.mark.parametrize("cfg, x1, x2, ref", GOLDEN)
def test_golden(cfg, x1, x2, ref):
    """NNGP, NTK and variances against NT, every entry at rtol 1e-9 (the diagonal of x2=None
    kernels too: NT's pair formulas agree with its variances here; the largest difference seen
    is 3e-12, from LayerNorm's eps = 1e-12)."""
    net = nets.serial(*[build_layer(L) for L in cfg["layers"]])
    k = kernels.analytic(net, x1, x2)
    _check("nngp", k.nngp, ref["nngp"])
    _check("ntk", k.ntk, ref["ntk"])
    _check("var1", k.var1, ref["var1"])
    if x2 is not None:
        _check("var2", k.var2, ref["var2"])


def test_tiled_kernel_uses_the_diagonal_rule():
    # batch_size < n: the variances and the NTK diagonal come from the pairs (x_i, x_i)
    # (KernelState.diagonal), the rest from tiles of pairs.
    cfg, x1, _, ref = CASES[13].values  # Dense-attention, x1 (3, 3, 2, C), x2=None
    assert x1.shape[0] >= 3 and ref["nngp"].ndim == 6
    net = nets.serial(*[build_layer(L) for L in cfg["layers"]])
    tiled = kernels.analytic(net, x1, batch_size=2)
    _check("nngp", tiled.nngp, ref["nngp"])
    _check("ntk", tiled.ntk, ref["ntk"])
    _check("var1", tiled.var1, ref["var1"])


# --------------------------------------------------------------------------------------
# the finite network
# --------------------------------------------------------------------------------------

def _loops(att, params, x):
    """The forward pass written out per input, head and pair of positions (NumPy, float64)."""
    x = np.asarray(x, np.float64)
    n, spatial, c = x.shape[0], x.shape[1:-1], x.shape[-1]
    p = math.prod(spatial)
    xs = x.reshape(n, p, c)
    K, V, O = (np.asarray(params[k], np.float64) for k in ("K", "V", "O"))
    qk = float(att.w_query_std) * float(att.w_key_std)
    y = np.zeros((n, p, att.features))
    for i in range(n):
        for h in range(att.heads):
            key = [xs[i, a] @ K[h] for a in range(p)]
            value = [xs[i, a] @ V[h] for a in range(p)]
            for a in range(p):
                logits = np.array([qk * float(key[a] @ key[b]) / (c * att.key_features)
                                   for b in range(p)])
                if att.mechanism == "softmax":
                    e = np.exp(logits - logits.max())
                    weights = e / e.sum()
                else:
                    weights = logits
                head = sum(weights[b] * value[b] for b in range(p))
                y[i, a] += head @ O[h]
    y *= float(att.w_out_std) * float(att.w_value_std) / math.sqrt(
        att.value_features * att.heads * c)
    if "b" in params:
        y += float(att.b_std) * np.asarray(params["b"], np.float64)
    return y.reshape((n,) + spatial + (att.features,))


ATTS = [
    (nets.GlobalSelfAttention(5, 3, 4, 3, w_query_std=1.3, w_key_std=0.8, w_value_std=1.1,
                              w_out_std=0.9, b_std=0.4), (2, 5, 3)),
    (nets.GlobalSelfAttention(4, 2, 3, 2, "identity", w_query_std=0.7, b_std=None),
     (3, 2, 3, 2)),
]


@pytest.mark.parametrize("att, shape", ATTS, ids=["softmax-1d", "identity-2d"])
def test_forward_pass_is_the_written_out_sum(att, shape, dtype):
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape)
    c, h, dk, dv, f = shape[-1], att.heads, att.key_features, att.value_features, att.features
    want = {"K": (h, c, dk), "V": (h, c, dv), "O": (h, dv, f)} | (
        {"b": (f,)} if att.b_std is not None else {})
    shapes = jax.eval_shape(lambda key: att.init(key, x.shape, dtype), jax.random.key(1))
    assert {k: (v.shape, v.dtype) for k, v in shapes.items()} == {
        k: (v, dtype) for k, v in want.items()}
    params = {k: jnp.asarray(rng.normal(size=v), dtype) for k, v in want.items()}
    # the inputs and a copy with permuted positions, in one batch: rows are independent, and
    # permuting positions permutes the outputs (there are no positional embeddings)
    n, flat = shape[0], x.reshape(shape[0], -1, shape[-1])
    perm = rng.permutation(flat.shape[1])
    both = jnp.asarray(np.concatenate([x, flat[:, perm].reshape(shape)]), dtype)
    y = jax.jit(att.apply)(params, both)
    assert y.shape == att.output_shape(both.shape) == (2 * n,) + shape[1:-1] + (att.features,)
    assert y.dtype == dtype
    np.testing.assert_allclose(y[:n], _loops(att, params, x), rtol=rtol_for(dtype, 1e-12, 1e-4),
                               atol=rtol_for(dtype, 1e-12, 1e-5))
    y = y.reshape(2 * n, -1, att.features)
    np.testing.assert_allclose(y[n:], y[:n, perm], rtol=rtol_for(dtype, 1e-12, 1e-4),
                               atol=rtol_for(dtype, 1e-12, 1e-5))


@pytest.mark.parametrize("case", FINITE)
def test_forward_pass_matches_neural_tangents(case):
    # NT's parameters: keys/values as ours; W_out rows are value-major (row v H + h).
    L = json.loads(str(case["config"]))
    att = attention(L)
    h, dv = L["heads"], L["value_features"]
    params = {"K": case["K"], "V": case["V"],
              "O": case["Wout"].reshape(dv, h, L["features"]).transpose(1, 0, 2)}
    if "b" in case:
        params["b"] = case["b"]
    np.testing.assert_allclose(att.apply(params, jnp.asarray(case["x"])), case["y"],
                               rtol=1e-12, atol=1e-12)


def test_pytree_repr_and_leaves():
    att = nets.GlobalSelfAttention(4, 2, 3, 2, w_query_std=0.5, b_std=None)
    assert jax.tree.leaves(att) == [1.0, 1.0, 0.5, 1.0]  # w_key, w_value, w_query, w_out
    assert "mechanism='softmax'" in repr(att) and "heads=2" in repr(att)
    assert jax.tree.unflatten(jax.tree.structure(att), [2.0, 1.0, 0.5, 1.0]).w_key_std == 2.0


# --------------------------------------------------------------------------------------
# Monte Carlo: wide finite nets against the analytic NNGP and NTK
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("mechanism, shape, qk", [("softmax", (2, 4, 3), 1.5),
                                                  ("identity", (2, 2, 2, 3), 0.6)])
def test_monte_carlo_nngp_of_wide_attention(mechanism, shape, qk):
    """The covariance over output channels between every pair of positions of two inputs,
    averaged over 64 networks (fixed keys), against the analytic NNGP: every entry within 5
    standard errors (estimated from the networks' spread; about 2 % of the largest entry).
    The input is the raw x, whose kernel x x'^T / C is exact at any width; the remaining bias
    is that of the finite key width d_k (the logits' O(d_k^-1/2) fluctuations enter the mean
    at O(1/d_k): about 1 % at d_k = 256 for the identity mechanism, measured with 2000
    networks), so d_k = 1024 keeps it well below the standard error."""
    att = nets.GlobalSelfAttention(64, 1024, 16, 8, mechanism, w_query_std=qk, w_value_std=1.2,
                                   w_out_std=0.9, b_std=0.3)
    x = jax.random.normal(jax.random.key(0), shape, jnp.float64)
    want = np.asarray(kernels.analytic(att, x).nngp)

    def one(key):
        y = att.apply(att.init(key, x.shape), x).reshape(shape[0], -1, att.features)
        k = jnp.einsum("iaf,jbf->ijab", y, y) / att.features
        return k.reshape(want.shape)

    samples = np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(1), 64)))
    mean, stderr = samples.mean(0), samples.std(0, ddof=1) / np.sqrt(len(samples))
    assert np.abs(z_scores(mean, stderr, want)).max() < 5
    assert stderr.max() < 0.05 * np.abs(want).max()  # the check has teeth


@pytest.mark.slow  # make test-all (CI time)
def test_monte_carlo_ntk_has_no_query_key_term():
    """The empirical NTK of a wide net ``attention -> GlobalAvgPool -> Dense`` on raw inputs,
    averaged over 16 networks, against the analytic one (ov² A (Theta + 2 K) A'^T + b², with
    Theta = 0 here): within 5 standard errors. The key weights' own contribution is O(1/d_k)."""
    att = nets.GlobalSelfAttention(32, 256, 16, 4, w_query_std=1.5, w_value_std=1.2, b_std=0.3)
    net = nets.serial(att, nets.GlobalAvgPool(), nets.Dense(1, b_std=0.1))
    x = jax.random.normal(jax.random.key(2), (2, 3, 3), jnp.float64)
    want = np.asarray(kernels.analytic(net, x).ntk)

    def one(key):
        params = net.init(key, x.shape)
        jac = jax.jacrev(lambda p: net.apply(p, x)[:, 0])(params)
        return sum(_gram(a) for a in jax.tree.leaves(jac)), _gram(jac[0]["K"])

    total, key_part = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(3), 16))
    total = np.asarray(total)
    mean, stderr = total.mean(0), total.std(0, ddof=1) / np.sqrt(len(total))
    assert np.abs(z_scores(mean, stderr, want)).max() < 5
    assert np.abs(np.asarray(key_part).mean(0)).max() < 0.02 * np.abs(want).max()


# --------------------------------------------------------------------------------------
# transformations, other views
# --------------------------------------------------------------------------------------

def _gram(jac):
    """sum_p J[i, p] J[j, p] of per-input gradients (n, *leaf shape)."""
    flat = jac.reshape(jac.shape[0], -1)
    return flat @ flat.T


def _net(w_query_std):
    return nets.serial(nets.Dense(3, w_std=1.2, b_std=0.1),
                       nets.GlobalSelfAttention(4, 2, 2, 2, w_query_std=w_query_std,
                                                w_key_std=0.8, w_out_std=1.1, b_std=0.2),
                       nets.GlobalAvgPool(), nets.Dense(1))


def test_jit_vmap_grad_of_the_kernel(dtype):
    x1 = jax.random.normal(jax.random.key(4), (3, 4, 2), dtype)
    x2 = jax.random.normal(jax.random.key(5), (2, 4, 2), dtype)

    def total(net, x1=x1, x2=x2):
        k = kernels.analytic(net, x1, x2)
        return jnp.sum(k.nngp) + jnp.sum(k.ntk)

    # float64 evaluations one at a time are the oracle for both precisions
    x64 = (x1.astype(jnp.float64), x2.astype(jnp.float64))
    f64 = lambda v: total(_net(jnp.asarray(v, jnp.float64)), *x64)  # noqa: E731
    ws = jnp.asarray([0.5, 0.9, 1.4], dtype)
    values = jax.jit(jax.vmap(lambda w: total(_net(w))))(ws)
    assert values.dtype == dtype
    np.testing.assert_allclose(values, [f64(w) for w in ws], rtol=rtol_for(dtype, 1e-12, 1e-5))
    # gradients with respect to every std of the spec; a central difference in w_query_std
    g = jax.jit(jax.grad(total))(_net(ws[1])).layers[1]
    stds = ("w_key_std", "w_value_std", "w_query_std", "w_out_std", "b_std")
    assert all(np.isfinite(getattr(g, n)) and getattr(g, n) != 0 for n in stds)
    assert g.w_query_std.dtype == dtype  # (the other stds are Python floats: float64 grads)
    w = float(ws[1])
    want = (f64(w + 1e-6) - f64(w - 1e-6)) / 2e-6
    np.testing.assert_allclose(g.w_query_std, want, rtol=rtol_for(dtype, 1e-7, 1e-3))


def test_empirical_ntk_and_training_of_an_attention_net():
    # The Jacobian contraction written out here is the oracle of empirical_ntk; dynamics.train
    # runs plain gradient descent on the finite net, and its loss falls.
    net = nets.serial(nets.Dense(4), nets.GlobalSelfAttention(4, 3, 2, 2, "identity", b_std=0.1),
                      nets.Flatten(), nets.Dense(1))
    x = jax.random.normal(jax.random.key(6), (3, 4, 2), jnp.float64)
    y = jnp.sin(x[:, 0, :1])
    params = jax.jit(net.init, static_argnums=1)(jax.random.key(7), x.shape)
    jac = jax.jit(jax.jacrev(lambda p: net.apply(p, x)[:, 0]))(params)
    want = sum(_gram(a) for a in jax.tree.leaves(jac))
    got = kernels.empirical_ntk(net, params, x, method="jacobian")
    np.testing.assert_allclose(got, want, rtol=1e-10)
    res = dynamics.train(net, params, x, y, optax.sgd(0.2), 4, progress=False)
    assert res.pred_train.shape == (5, 3, 1) and np.all(np.isfinite(res.loss))
    assert res.loss[-1] < res.loss[0]


def test_attention_takes_non_gaussian_inputs_and_gives_a_gaussian_output():
    # Only the second moments of its input enter the limit, so raw inputs and activation
    # outputs are fine (as in neural-tangents; golden cases 04-07 and 16); its output is a
    # fresh Gaussian process, so a LayerNorm may follow it (not directly a Relu).
    x = jax.random.normal(jax.random.key(8), (2, 3, 2), jnp.float64)
    att = nets.GlobalSelfAttention(3, 2, 2, 2)
    k = kernels.analytic(nets.serial(nets.Dense(3), nets.Relu(), att, nets.LayerNorm()), x)
    assert k.nngp.shape == (2, 2, 3, 3) and np.all(np.isfinite(k.ntk))
    np.testing.assert_allclose(np.diagonal(k.var1, axis1=1, axis2=2), 1.0, rtol=1e-12)
    with pytest.raises(ValueError, match="LayerNorm serial\\[2\\].*not a centred Gaussian"):
        kernels.analytic(nets.serial(nets.Dense(3), nets.Relu(), nets.LayerNorm(), att), x)


# --------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------

def test_attention_on_inputs_without_positions_names_the_layer():
    att = nets.GlobalSelfAttention(3, 2, 2, 2)
    with pytest.raises(ValueError, match=r"attention on an input without a sequence axis: "
                       r"GlobalSelfAttention serial\[1\]\. \(GlobalSelfAttention\("):
        kernels.analytic(nets.serial(nets.Dense(3), att, nets.Dense(1)), jnp.ones((2, 4)))
    with pytest.raises(ValueError, match=r"without a sequence axis.*serial\[2\]"):
        kernels.analytic(nets.serial(nets.Dense(3), nets.Flatten(), att), jnp.ones((2, 4, 2)))


@pytest.mark.parametrize("make, error, match", [
    (lambda: nets.GlobalSelfAttention(3, 2, 2, 0), ValueError, "heads must be a positive int, got 0"),
    (lambda: nets.GlobalSelfAttention(3, 2, 2, 2.0), TypeError, "heads must be a positive int"),
    (lambda: nets.GlobalSelfAttention(0, 2, 2, 2), ValueError, "features must be a positive"),
    (lambda: nets.GlobalSelfAttention(3, -1, 2, 2), ValueError, "key_features must be a pos"),
    (lambda: nets.GlobalSelfAttention(3, 2, None, 2), TypeError, "value_features must be a pos"),
    (lambda: nets.GlobalSelfAttention(3, 2, 2, 2, "relu"), ValueError,
     r"mechanism must be one of \('softmax', 'identity'\), got 'relu'"),
    (lambda: nets.GlobalSelfAttention(3, 2, 2, 2, 1), TypeError, "mechanism must be one of"),
    (lambda: nets.GlobalSelfAttention(3, 2, 2, 2, w_query_std=-1.0), ValueError,
     "w_query_std must be a finite number >= 0, got -1.0"),
    (lambda: nets.GlobalSelfAttention(3, 2, 2, 2, b_std=float("nan")), ValueError, "b_std"),
    (lambda: nets.GlobalSelfAttention(3, 2, 2, 2).output_shape((4, 3)), ValueError,
     r"at least one spatial \(sequence\) axis.*got shape \(4, 3\)"),
    (lambda: nets.GlobalSelfAttention(3, 2, 2, 2).init(jax.random.key(0), (4, 3)), ValueError,
     "GlobalSelfAttention.init: inputs must be"),
    (lambda: nets.GlobalSelfAttention(3, 2, 2, 2).apply(
        {"K": np.ones((2, 2, 2)), "V": np.ones((2, 2, 2)), "O": np.ones((2, 2, 3))},
        jnp.ones((1, 4, 5))), ValueError, "x has 5 channels on its last axis but the weights "
     "expect 2"),
])
def test_bad_arguments_say_what_is_wrong(make, error, match):
    with pytest.raises(error, match=match):
        make()
