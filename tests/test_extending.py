"""A layer defined outside the package, registered through the public extension API, works in
every view: kernels.analytic, every empirical_ntk method, monte_carlo and dynamics.train; and
nets.Elementwise(fn, dual=...) uses the user's closed-form dual.

Oracles: ``Bias(s)`` after a bias-free ``Dense(w)`` is exactly ``Dense(w, b_std=s)`` and
``Scale(c)`` after ``Dense(w, b)`` is exactly ``Dense(c w, c b)`` (same function, same
parameters up to a relabelling, same gradients), so the custom net's analytic kernel and its
training run must equal the built-in net's to round-off; the empirical NTK of every method must
equal the Jacobian method's; Monte Carlo with one hidden layer has the analytic kernel as its
exact expectation, so its error is sampling error (z-scores, fixed keys).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from widelimits import dynamics, kernels, nets

from .conftest import rtol_for


class _Shift(nets.Layer):
    """y = x + s b with b ~ N(0, 1) per feature, trained (NTK parameterization)."""

    def init(self, key, input_shape):
        return {"b": jax.random.normal(key, tuple(input_shape)[-1:])}

    def apply(self, params, x):
        return x + self.s * params["b"]


@nets.spec
class Bias(_Shift):
    s: float = 1.0


@nets.spec
class PlainBias(_Shift):
    """The same layer with no structured rule of its own: the structured NTK falls back on its
    per-example parameter gradients."""

    s: float = 1.0


@nets.spec
class Scale(nets.Layer):
    """y = c x, no parameters."""

    c: float = 1.0

    def init(self, key, input_shape):
        return ()

    def apply(self, params, x):
        return self.c * x


@nets.spec
class Unknown(nets.Layer):
    """A layer without an infinite-width rule."""

    def init(self, key, input_shape):
        return ()

    def apply(self, params, x):
        return x


@kernels.register_analytic(Bias, PlainBias)
def _bias(layer, state, path):
    s2 = layer.s**2
    return state.map(lambda k: k + s2).replace(ntk=state.ntk + s2)


@kernels.register_analytic(Scale)
def _scale(layer, state, path):
    c2 = layer.c**2
    return state.map(lambda k: c2 * k).replace(ntk=c2 * state.ntk)


def _bias_term(layer, params, x1, x2, d1, d2, output):
    if output == "trace":
        return layer.s**2 * jnp.einsum("kib,kjb->ij", d1, d2) / d1.shape[0]
    return layer.s**2 * jnp.einsum("kib,ljb->ijkl", d1, d2)


CALLS = []


@kernels.register_structured(Bias)
def _bias_structured(layer, params, x, tape, path):
    CALLS.append(type(layer).__name__)
    return tape.tap(layer, params, x, layer.apply(params, x), _bias_term)


def _erf_dual(q11, q12, q22):
    CALLS.append("dual")
    return kernels.dual(nets.Erf())(q11, q12, q22)


ERF = nets.Elementwise(jax.scipy.special.erf, name="erf", dual=_erf_dual)


def custom_net(width, bias=Bias, out=1):
    return nets.serial(nets.Dense(width, w_std=1.2, b_std=None), bias(0.3), nets.Relu(),
                       nets.Dense(width, w_std=0.9, b_std=0.1), Scale(1.5), ERF,
                       nets.Dense(out, w_std=1.1, b_std=0.2))


def builtin_net(width, out=1):
    return nets.serial(nets.Dense(width, w_std=1.2, b_std=0.3), nets.Relu(),
                       nets.Dense(width, w_std=0.9 * 1.5, b_std=0.1 * 1.5), nets.Erf(),
                       nets.Dense(out, w_std=1.1, b_std=0.2))


def builtin_params(p):
    """The built-in net's parameters equal to the custom net's ``p`` (same function)."""
    return ({"W": p[0]["W"], "b": p[1]["b"]}, (), p[3], (), p[6])


def _x(dtype, n=5, d=3):
    return jax.random.normal(jax.random.key(3), (n, d), dtype)


def test_analytic_kernel_of_registered_layers(dtype):
    x = _x(dtype)
    CALLS.clear()
    jax.clear_caches()
    got = kernels.analytic(custom_net(8), x)
    want = kernels.analytic(builtin_net(8), x)
    assert "dual" in CALLS  # the user's closed form, not the Hermite expansion
    for name in ("nngp", "ntk", "var1"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name),
                                   rtol=rtol_for(dtype, 1e-12, 1e-5))
    # tiles (the diagonal pairs run the same rules) and jit
    tiled = jax.jit(lambda x: kernels.analytic(custom_net(8), x, batch_size=2))(x)
    rtol = rtol_for(dtype, 1e-12, 1e-5)  # round-off relative to the kernel's scale
    np.testing.assert_allclose(tiled.ntk, want.ntk, rtol=rtol,
                               atol=rtol * float(np.max(np.abs(want.ntk))))


def test_registered_rule_is_differentiable_and_vmaps():
    x = _x(jnp.float64)

    def k(s, net_of):
        return kernels.analytic(net_of(s), x).ntk.sum()

    custom = lambda s: nets.serial(nets.Dense(4, b_std=None), Bias(s), nets.Relu(),  # noqa: E731
                                   nets.Dense(1))
    builtin = lambda s: nets.serial(nets.Dense(4, b_std=s), nets.Relu(), nets.Dense(1))  # noqa: E731
    np.testing.assert_allclose(jax.grad(k)(0.4, custom), jax.grad(k)(0.4, builtin), rtol=1e-12)
    xs = jnp.stack([x, 2 * x])
    got = jax.vmap(lambda x: kernels.analytic(custom(0.4), x).nngp)(xs)
    want = jnp.stack([kernels.analytic(builtin(0.4), xi).nngp for xi in xs])
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("method", ["jacobian", "ntvp", "structured", "auto"])
@pytest.mark.parametrize("bias", [Bias, PlainBias], ids=["own_rule", "gradient_fallback"])
def test_empirical_ntk_every_method(method, bias, dtype):
    x = _x(dtype)
    net = custom_net(6, bias, out=2)
    p = jax.tree.map(lambda a: a.astype(dtype), net.init(jax.random.key(1), x.shape))
    want = kernels.empirical_ntk(net, p, x, method="jacobian", output="full")
    CALLS.clear()
    jax.clear_caches()  # trace again, so CALLS sees which rule ran
    got = kernels.empirical_ntk(net, p, x, method=method, output="full")
    np.testing.assert_allclose(got, want, rtol=rtol_for(dtype, 1e-10, 1e-4),
                               atol=rtol_for(dtype, 1e-12, 1e-5))
    if method in ("structured", "auto"):
        assert ("Bias" in CALLS) == (bias is Bias)  # our contraction, or the fallback's
        diag = kernels.empirical_ntk(net, p, x, method=method, diagonal=True)
        np.testing.assert_allclose(diag, jnp.einsum("iikk->i", want) / 2,
                                   rtol=rtol_for(dtype, 1e-10, 1e-4))
    # and it equals the built-in net's at the same function
    builtin = kernels.empirical_ntk(builtin_net(6, out=2), builtin_params(p), x,
                                    method="jacobian", output="full")
    np.testing.assert_allclose(want, builtin, rtol=rtol_for(dtype, 1e-10, 1e-4),
                               atol=rtol_for(dtype, 1e-12, 1e-5))


def test_monte_carlo_converges_to_the_registered_rules():
    # One hidden layer: E[empirical NNGP] and E[empirical NTK] equal the analytic kernels at
    # every width; 256 networks, |z| < 5 per entry (fixed key).
    x = _x(jnp.float64, n=4)
    net = nets.serial(nets.Dense(16, w_std=1.2, b_std=None), Bias(0.3), Scale(1.5), ERF,
                      nets.Dense(1, w_std=1.1, b_std=0.2))
    want = kernels.analytic(net, x)
    key = jax.random.key(5)
    mc = kernels.monte_carlo(net, key, x, n_samples=256, batch_size=128)
    per = jax.vmap(lambda k: (kernels.empirical_nngp(net, net.init(k, x.shape), x),
                              kernels.empirical_ntk(net, net.init(k, x.shape), x)))(
        jax.random.split(key, 256))
    for got, samples, name in ((mc.nngp, per[0], "nngp"), (mc.ntk, per[1], "ntk")):
        np.testing.assert_allclose(got, np.mean(samples, 0), rtol=1e-10)
        se = np.std(samples, 0, ddof=1) / np.sqrt(256)
        z = (np.asarray(got) - np.asarray(getattr(want, name))) / se
        assert np.all(np.abs(z) < 5), (name, z)


def test_training_a_registered_layer_equals_the_builtin_net():
    x = _x(jnp.float64, n=6)
    y = jnp.sin(x[:, :1])
    net = custom_net(16)
    p = net.init(jax.random.key(2), x.shape)
    opt = optax.sgd(0.5)
    got = dynamics.train(net, p, x, y, opt, 20, progress=False)
    want = dynamics.train(builtin_net(16), builtin_params(p), x, y, opt, 20, progress=False)
    np.testing.assert_allclose(got.loss, want.loss, rtol=1e-10)
    assert got.loss[-1] < 0.5 * got.loss[0]
    np.testing.assert_allclose(got.params[1]["b"], want.params[0]["b"], rtol=1e-10)


def test_a_layer_without_a_rule_is_named_with_its_path_and_the_views_that_support_it():
    net = nets.serial(nets.Dense(4), nets.Relu(), nets.Dense(4), Unknown(), nets.Dense(1))
    with pytest.raises(TypeError, match=r"kernels\.analytic: no infinite-width rule for Unknown "
                       r"at serial\[3\]\. \(Unknown\(\)\).*Views that support Unknown: .*"
                       r"empirical_ntk\(method='structured'\)"):
        kernels.analytic(net, _x(jnp.float32))
    # the finite views need no rule: it is a network like any other
    p = net.init(jax.random.key(0), (5, 3))
    assert kernels.empirical_ntk(net, p, _x(jnp.float32)).shape == (5, 5)


def test_the_readme_extending_example_runs(capsys):
    import pathlib
    import re

    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    section = readme[readme.index("## Extending"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    scope = {}
    exec(compile(code, "README.md (Extending)", "exec"), scope)  # noqa: S102
    k, t = scope["k"], scope["t"]
    # x^2 after a bias: K = 3 q^2 with q = |x|^2 / 3 + 1/4 (Isserlis), the NTK from the rules
    q = np.sum(np.asarray(scope["x"], np.float64) ** 2, 1) / 3 + 0.25
    np.testing.assert_allclose(np.diag(k.nngp), 3 * q**2, rtol=1e-5)
    np.testing.assert_allclose(t, k.ntk, rtol=0.1)
    assert "[[" in capsys.readouterr().out
