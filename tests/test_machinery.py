"""The shared machinery: the dispatch registry, argument checks, resumable results, runs of
identical blocks and the shape contract of specs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from widelimits import _checks, _registry, _resume, kernels, nets

# ----------------------------------------------------------------------------- registry

def test_registry_follows_the_mro_and_names_the_supporting_views():
    reg = _registry.Registry("test.view", noun="test rule", hint="Try another view.")
    try:
        reg.register(nets.Activation, rule=lambda *a: "activation")
        reg.register(nets.Relu, rule=lambda *a: "relu")
        assert reg.rule(nets.Relu())() == "relu"
        assert reg.rule(nets.Tanh())() == "activation"  # the base class's rule
        assert reg.find(nets.Dense) is None and not reg.supports(nets.Dense(2))
        with pytest.raises(_registry.UnsupportedLayer,
                           match=r"test\.view: no test rule for Dense at serial\[2\]\. "
                                 r"\(Dense\(width=3.*\); supported here: Activation, Relu\. "
                                 r"Views that support Dense: kernels\.analytic.* Try another"):
            reg.rule(nets.Dense(3), "serial[2].")
        assert issubclass(_registry.UnsupportedLayer, TypeError)
        assert "test.view" in _registry.views_supporting(nets.Sin)
        with pytest.raises(ValueError, match="exists already"):
            _registry.Registry("test.view")
        with pytest.raises(TypeError, match="layer classes"):
            reg.register("Relu")
    finally:
        del _registry.VIEWS["test.view"]


# ----------------------------------------------------------------------------- checks

@pytest.mark.parametrize("value, minimum, exc, match", [
    (0, 1, ValueError, r"f: n must be a positive int, got 0\."),
    (2.0, 1, TypeError, r"f: n must be a positive int, got 2\.0 of type float"),
    (True, 1, TypeError, r"got True of type bool"),
    (-1, 0, ValueError, r"f: n must be an int >= 0, got -1"),
])
def test_integer(value, minimum, exc, match):
    with pytest.raises(exc, match=match):
        _checks.integer("f", "n", value, minimum)


def test_integer_accepts_numpy_ints_and_its_type_error_is_a_value_error():
    assert _checks.integer("f", "n", np.int64(3)) == 3
    with pytest.raises(ValueError):  # callers validating values catch non-ints too
        _checks.integer("f", "n", 2.5)


def test_nonnegative_and_finite_float():
    _checks.nonnegative("f", "w", None)  # absent
    _checks.nonnegative("f", "w", jnp.asarray(0.0))
    with pytest.raises(ValueError, match=r"f: w must be a finite number >= 0, got -1\.0"):
        _checks.nonnegative("f", "w", -1.0)
    jax.jit(lambda w: _checks.nonnegative("f", "w", w) or w)(-1.0)  # traced: not checkable
    assert _checks.finite_float("f", "eta", 2) == 2.0
    with pytest.raises(ValueError, match=r"f: eta must be finite and > 0, got 0\.0"):
        _checks.finite_float("f", "eta", 0.0, positive=True)
    with pytest.raises(TypeError, match="real number"):
        _checks.finite_float("f", "eta", "0.1")


# ----------------------------------------------------------------------------- resume

def test_resume_round_trip_and_refusal(tmp_path):
    path = tmp_path / "sub" / "run.npz"
    assert _resume.load(path, "abc", who="f") is None
    fp = {"data": _resume.fingerprint(np.ones(3)), "config": _resume.fingerprint("lr", 0.1)}
    _resume.save(path, {"a": np.arange(3), "b": np.ones((2, 2))}, fp)
    got = _resume.load(path, fp, who="f")
    assert set(got) == {"a", "b"} and np.array_equal(got["a"], np.arange(3))
    other = dict(fp, config=_resume.fingerprint("lr", 0.2))
    with pytest.raises(ValueError, match=r"f: the checkpoint .*run\.npz holds the results of a "
                                         r"different run \(config differ\)"):
        _resume.load(path, other, who="f")
    assert _resume.load(path, other, who="f", on_mismatch="ignore") is None
    with pytest.raises(ValueError, match=r"\(other arguments\)"):
        _resume.load(path, "plain", who="f")


def test_resume_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "run.npz"
    _resume.save(path, {"a": np.zeros(2)}, "fp")

    def crash(fh, **arrays):
        fh.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        _resume.save(path, {"a": np.ones(2)}, "fp")
    monkeypatch.undo()
    assert np.array_equal(_resume.load(path, "fp", who="f")["a"], np.zeros(2))


def test_fingerprint_sees_values_dtypes_structure_and_keys():
    fp = _resume.fingerprint
    assert fp(np.ones(2)) == fp(np.ones(2))
    assert len({fp(np.ones(2)), fp(np.ones(2, np.float32)), fp(np.ones(3)), fp([np.ones(2)]),
                fp(jax.random.key(0)), fp(jax.random.key(1)), fp("a"), fp(b"a"),
                fp(nets.Dense(3)), fp(nets.Dense(4))}) == 10


# ----------------------------------------------------------------------------- runs, shapes

LAYERS = [nets.Dense(4), nets.Dense(4, w_std=2.0), nets.Relu(), nets.Tanh(), nets.LayerNorm()]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(range(len(LAYERS))), max_size=12), st.integers(1, 4))
def test_runs_cover_the_layers_with_identical_units(picks, min_count):
    layers = [LAYERS[i] for i in picks]
    runs = nets.runs(layers, min_count=min_count)
    assert [layer for r in runs for unit in r.units(layers) for layer in unit] == layers
    for r in runs:
        units = r.units(layers)
        assert r.count == 1 or r.count >= min_count
        assert len({jax.tree.structure(u) for u in units}) == 1


def test_runs_of_an_mlp_and_a_resnet():
    block = nets.residual(nets.Relu(), nets.Dense(8), scale=0.5)
    assert nets.runs(nets.serial(nets.Dense(8), *[block] * 5).layers) == (
        nets.Run(0, 1, 1), nets.Run(1, 1, 5))
    assert nets.runs(nets.mlp(8, 2).layers) == tuple(nets.Run(i, 1, 1) for i in range(5))


@pytest.mark.parametrize("net", [
    nets.mlp(6, 2, nets.Erf(), out_width=3),
    nets.serial(nets.Dense(5), nets.LayerNorm(), nets.residual(nets.Relu(), nets.Dense(5)),
                nets.parallel(nets.Dense(2), nets.serial(nets.Gelu(), nets.Dense(2)))),
    nets.meanfield_mlp(7, 2, nets.Tanh(), 0.5, out_width=2),
], ids=["mlp", "combinators", "meanfield"])
@pytest.mark.parametrize("shape", [(3,), (4, 3), (2, 4, 3)])
def test_output_shape_is_the_shape_of_apply(net, shape):
    params = net.init(jax.random.key(0), shape)
    assert net.apply(params, jnp.ones(shape)).shape == net.output_shape(shape)


def test_shape_errors_name_the_layer():
    with pytest.raises(ValueError, match=r"parallel: branches return different shapes"):
        nets.parallel(nets.Dense(2), nets.Dense(3)).output_shape((1, 4))
    with pytest.raises(ValueError, match=r"residual: the block maps 4 input features to 5"):
        nets.residual(nets.Dense(5)).output_shape((1, 4))
    assert kernels.analytic(nets.Dense(2), jnp.ones((1, 4))).nngp.shape == (1, 1)
