"""compare: power-law fits against the OLS closed form, kernel convergence at exponent -1/2."""

import jax
import numpy as np
import pytest
from scipy import stats

from widelimits import compare, kernels, nets
from widelimits.reproduce import REGISTRY, kernel_width_scaling

from ._repro import assert_png


def test_fit_power_law_matches_linregress_and_recovers_the_exponent():
    rng = np.random.default_rng(0)
    x = np.repeat(np.array([10.0, 30, 100, 300, 1000])[:, None], 6, axis=1)
    y = 2.5 * x**-0.7 * np.exp(0.1 * rng.standard_normal(x.shape))
    fit = compare.fit_power_law(x[:, 0], y)
    ref = stats.linregress(np.log(x.ravel()), np.log(y.ravel()))
    np.testing.assert_allclose([fit.exponent, fit.stderr, np.log(fit.prefactor)],
                               [ref.slope, ref.stderr, ref.intercept], rtol=1e-10)
    assert abs(fit.exponent + 0.7) < 3 * fit.stderr


WIDTHS = [64, 128, 256, 512, 1024, 2048]


@pytest.fixture(scope="module")
def relu_convergence():
    make = lambda w: nets.mlp(w, 1, nets.Relu(), w_std=1.4, b_std=0.1)
    x = jax.random.normal(jax.random.key(0), (6, 3))
    return make, x, compare.kernel_convergence(make, WIDTHS, x, jax.random.key(1), n_seeds=8,
                                               progress=False)


def test_exponent_is_minus_one_half_within_three_standard_errors(relu_convergence):
    # One hidden layer: each kernel is a mean over n iid units, so its fluctuations are
    # O(n^-1/2) with no bias; fixed keys make the fit deterministic.
    res = relu_convergence[2]
    for kind, fit in res.fits.items():
        assert abs(fit.exponent + 0.5) < 3 * fit.stderr, (kind, fit)
        assert fit.stderr < 0.1


def test_deviation_equals_a_direct_computation(relu_convergence):
    make, x, res = relu_convergence
    net = make(256)
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(1), 256), 3)
    params = net.init(key, x.shape)
    limit = kernels.analytic(net, x)
    for kind, emp in (("nngp", kernels.empirical_nngp(net, params, x)),
                      ("ntk", kernels.empirical_ntk(net, params, x))):
        want = np.linalg.norm(emp - getattr(limit, kind)) / np.linalg.norm(getattr(limit, kind))
        np.testing.assert_allclose(res.deviations[kind][2, 3], want, rtol=1e-5)


def test_after_training_hook_is_applied():
    make = lambda w: nets.mlp(w, 1, nets.Relu())
    x = jax.random.normal(jax.random.key(0), (3, 2))
    zero = lambda net, p: jax.tree.map(lambda a: 0 * a, p)  # a "trained" net with no weights
    res = compare.kernel_convergence(make, [8, 16], x, jax.random.key(0), n_seeds=2,
                                     kinds=("nngp",), train=zero, progress=False)
    np.testing.assert_allclose(res.deviations["nngp"], 1.0)  # K_n = b_std^2 = 0 -> deviation 1


@pytest.mark.parametrize("kwargs, match", [
    (dict(widths=[]), r"widths must be >= 2 positive ints, got \[\]"),
    (dict(widths=[0, 8]), r"widths must be >= 2 positive ints, got \[0, 8\]"),
    (dict(kinds=("nngp", "cntk")), r"kinds must be a non-empty subset of .* got \('nngp', 'cntk'\)"),
    (dict(n_seeds=0), r"n_seeds must be a positive int, got 0"),
])
def test_errors(kwargs, match):
    args = dict(widths=[8, 16], kinds=("nngp",), n_seeds=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        compare.kernel_convergence(lambda w: nets.mlp(w, 1), args.pop("widths"),
                                   np.ones((2, 2)), jax.random.key(0), **args)
    with pytest.raises(ValueError, match="must be positive"):
        compare.fit_power_law([1, 2, 3], [1, -1, 1])


def test_reproduction_smoke(tmp_path, smoke_results):
    assert REGISTRY["kernel_width_scaling"] is kernel_width_scaling
    result = smoke_results("kernel_width_scaling", tmp_path)
    (path,) = kernel_width_scaling.plot(result, tmp_path)
    assert_png(path)
    assert set(result["results"][0].fits) == {"nngp", "ntk"}
