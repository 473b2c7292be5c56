"""Structured empirical NTK of convolutional specs against the Jacobian method (per-input
jax.jacrev Jacobians, contracted over every parameter): Conv in 1-D and 2-D with every padding,
strides 1 and 2, both parameterizations, with and without bias; pooling, Flatten and Dense
layers applied at every position; trace and full output, x2=None and a second batch, float32
and float64, under jit; both contraction formulations and the choice between them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from widelimits import kernels, nets
from widelimits.kernels import _empirical, _structured, _structured_conv

from .conftest import rtol_for


def _x(n, shape, seed, dtype):
    return jax.random.normal(jax.random.key(seed), (n, *shape), jnp.float64).astype(dtype)


def _params(net, shape, dtype):
    return jax.tree.map(lambda a: a.astype(dtype), net.init(jax.random.key(2), shape))


def _assert_close(got, want, dtype, what):
    assert got.dtype == dtype, what
    want = np.asarray(want, np.float64)
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=0,
                               atol=rtol_for(dtype) * np.abs(want).max(), err_msg=what)


def _reference(net, params, x1, x2):
    """The Jacobian method's full blocks Theta(x, x) for x = (x1, x2) stacked: one pass gives
    every block the tests compare."""
    return kernels.empirical_ntk(net, params, jnp.concatenate([x1, x2]), method="jacobian",
                                 output="full")


def _check(net, shape, dtype, n1=3, n2=2, trace=True, jit=False):
    """Structured = Jacobian method: full blocks with a separate x2 (under an outer ``jax.jit``
    and in tiles of 2 inputs if ``jit``) and, if ``trace``, the trace with x2=None."""
    x1, x2 = _x(n1, shape, 0, dtype), _x(n2, shape, 1, dtype)
    params = _params(net, x1.shape, dtype)
    ref = _reference(net, params, x1, x2)
    full = lambda p, xa, xb: kernels.empirical_ntk(net, p, xa, xb, method="structured",
                                                   output="full", batch_size=2 if jit else None)
    _assert_close((jax.jit(full) if jit else full)(params, x1, x2), ref[:n1, n1:], dtype,
                  "full, separate x2")
    if trace:
        _assert_close(kernels.empirical_ntk(net, params, x1, method="structured"),
                      jnp.trace(ref[:n1, :n1], axis1=2, axis2=3) / ref.shape[-1], dtype,
                      "trace, x2=None")


def _branches(**nets_by_name):
    """One net summing the outputs of several (each ends in a Dense(2)): one compilation checks
    them all (the NTK of a sum of branches with their own parameters is the sum of theirs)."""
    return nets.parallel(*nets_by_name.values())


def _conv_branches(filters, cases):
    """A branch per (padding, strides): Conv -> Relu -> Conv -> Flatten -> Dense, the two Convs
    with opposite parameterizations and biases (None / nonzero), alternating across branches."""
    out = {}
    for i, (padding, strides) in enumerate(cases):
        par = ("ntk", "standard") if i % 2 == 0 else ("standard", "ntk")
        bias = (None, 0.3) if (i // 2) % 2 == 0 else (0.3, None)
        out[f"{padding}-{strides}"] = nets.serial(
            nets.Conv(3, filters[0], strides=strides, padding=padding, w_std=1.3, b_std=bias[0],
                      parameterization=par[0]),
            nets.Relu(),
            nets.Conv(2, filters[1], padding=padding, b_std=bias[1], parameterization=par[1]),
            nets.Flatten(), nets.Dense(2, b_std=0.1))
    return out


@pytest.mark.slow  # make test-all (CI time)
def test_1d_conv_nets_match_jacobian():
    # every padding with strides 1 and 2; sum pools; a Dense straight on (n, L, C) sequences,
    # which acts at every position (its term sums over pairs of positions)
    cases = [(p, (s,)) for p in ("VALID", "SAME", "CIRCULAR") for s in (1, 2)]
    net = _branches(
        **_conv_branches([(3,), (2,)], cases),
        sum_pools=nets.serial(
            nets.Conv(3, (3,), padding="CIRCULAR", strides=(2,), b_std=0.4), nets.Erf(),
            nets.SumPool((2,), padding="SAME"),
            nets.Conv(2, (2,), padding="CIRCULAR", parameterization="standard"),
            nets.GlobalSumPool(), nets.Dense(2)),
        dense_on_sequences=nets.serial(nets.Dense(4, w_std=1.5, b_std=0.2), nets.Relu(),
                                       nets.Flatten(), nets.Dense(2)))
    _check(net, (7, 2), jnp.float64, trace=False)


def test_2d_conv_nets_match_jacobian():
    # the patches are built the same way for any number of spatial axes: every padding once,
    # with strides 1, 2 and mixed
    cases = [("VALID", (2, 2)), ("SAME", (1, 1)), ("CIRCULAR", (2, 1))]
    _check(_branches(**_conv_branches([(3, 2), (2, 2)], cases)), (5, 4, 2), jnp.float64,
           trace=False)


def test_pooling_flatten_and_dense_after_conv_match_jacobian_under_jit():
    # Conv -> Relu -> AvgPool -> Conv -> GlobalAvgPool -> Dense; Conv -> Flatten -> Dense; a
    # Dense at every position after a Conv; in float32 (float64: the other tests), the full
    # blocks under jax.jit and in tiles
    net = _branches(
        pooling=nets.serial(nets.Conv(3, (3, 3), padding="SAME", b_std=0.2), nets.Relu(),
                            nets.AvgPool((2, 2), strides=(2, 2)),
                            nets.Conv(4, (2, 2), w_std=1.2), nets.GlobalAvgPool(),
                            nets.Dense(2, b_std=0.1)),
        flatten=nets.serial(nets.Conv(4, (2, 2), strides=(2, 1), padding="SAME", b_std=0.1),
                            nets.Flatten(), nets.Dense(2)),
        dense_after_conv=nets.serial(nets.Conv(3, (2, 2), padding="SAME"), nets.Relu(),
                                     nets.Dense(4, b_std=0.3), nets.Tanh(),
                                     nets.Dense(3, parameterization="standard", b_std=None),
                                     nets.GlobalAvgPool(), nets.Dense(2)))
    _check(net, (4, 4, 2), jnp.float32, jit=True)


NET = nets.serial(nets.Conv(4, (3, 3), padding="SAME", b_std=0.2), nets.Relu(),
                  nets.Conv(3, (2, 2), strides=(2, 2)), nets.Relu(), nets.Dense(3, b_std=None),
                  nets.GlobalAvgPool(), nets.Dense(2, b_std=0.1))


def test_both_formulations_match_jacobian(monkeypatch):
    # Each formulation forced on every Conv and per-position Dense: full blocks with a second
    # batch, the trace with x2=None and the diagonal.
    x1, x2 = _x(3, (4, 4, 2), 0, jnp.float64), _x(2, (4, 4, 2), 1, jnp.float64)
    params = _params(NET, x1.shape, jnp.float64)
    ref = _reference(NET, params, x1, x2)
    want_trace = jnp.trace(ref[:3, :3], axis1=2, axis2=3) / 2
    for formulation in _structured_conv.FORMULATIONS:
        monkeypatch.setattr(_structured_conv, "choose", lambda *args, f=formulation: f)
        ntk = jax.jit(lambda p, xa, xb: (  # a new function: traced with this formulation
            _structured.structured_ntk(NET, p, xa, xb, "full", False),
            _structured.structured_ntk(NET, p, xa, None, "trace", False),
            _structured.structured_ntk(NET, p, xa, None, "full", True)))
        full, trace, diag = ntk(params, x1, x2)
        _assert_close(full, ref[:3, 3:], jnp.float64, f"{formulation}: full")
        _assert_close(trace, want_trace, jnp.float64, f"{formulation}: trace")
        _assert_close(diag, np.einsum("iikl->ikl", ref[:3, :3]), jnp.float64,
                      f"{formulation}: diagonal")


def test_auto_takes_structured_for_specs_on_spatial_inputs():
    x = _x(3, (4, 4, 2), 0, jnp.float64)
    params = NET.init(jax.random.key(0), x.shape)
    assert _empirical._choose(NET.apply, params, NET, x, None, "trace", False, 64) == "structured"
    # a plain function of the same net is not a spec: one of the generic methods
    assert _empirical._choose(NET.apply, params, None, x, None, "trace", False, 64) in (
        "jacobian", "ntvp")


def test_choice_of_formulation_follows_positions_channels_and_memory(monkeypatch):
    # many positions, few channels: per-example gradients; few positions, many channels and
    # outputs: the Gram matrix; a formulation over the memory limit is skipped.
    choose = _structured_conv.choose
    assert choose(32, 32, True, 10, 32 * 32, 27, 64, "trace", 4) == "gradients"
    assert choose(32, 32, True, 10, 4 * 4, 9 * 256, 256, "trace", 4) == "gram"
    assert choose(16, 16, False, 10, 8 * 8, 9 * 64, 64, "full", 4) == "gradients"
    shape = (16, 16, True, 10, 4 * 4, 27, 256, "trace", 4)
    costs = _structured_conv.costs(*shape)
    assert choose(*shape) == "gradients" and costs["gradients"][1] > costs["gram"][1]
    monkeypatch.setattr(_structured_conv, "MEMORY_BYTES", costs["gradients"][1] - 1)
    assert choose(*shape) == "gram"
    monkeypatch.setattr(_structured_conv, "MEMORY_BYTES", 0)  # neither fits: the smaller
    assert choose(*shape) == "gram"
    # one (n1, n2) = (1, 1) product: FLOPs and bytes as documented
    assert _structured_conv.costs(1, 1, True, 1, 1, 2, 3, "trace", 4) == {
        "gradients": (2 * 6 + 2 * 6, 6 * 4), "gram": (2 * 5 + 1, 2 * 4)}
