"""The beyond_iid reproduction (Nait Saada et al. 2024; Day et al. 2023) at the smoke size."""

import numpy as np
import pytest

from widelimits import kernels
from widelimits.reproduce import REGISTRY, beyond_iid as bi

from ._repro import assert_png, forbid


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, smoke_results):
    out = tmp_path_factory.mktemp("beyond_iid")
    result = smoke_results("beyond_iid", out)
    return result, bi.plot(result, out), out


@pytest.mark.slow
def test_figure_registry_and_resume(smoke, monkeypatch):
    result, paths, out = smoke
    assert REGISTRY["beyond_iid"] is bi
    assert_png(paths[0])
    forbid(monkeypatch, bi, "_kernels", "_norms")
    again = bi.run("smoke", out)
    np.testing.assert_array_equal(again["fl_ratio"]["orthogonal"], result["fl_ratio"]["orthogonal"])


@pytest.mark.slow
def test_every_ensemble_approaches_the_one_analytic_limit(smoke):
    # Per-network deviations shrink with width for every ensemble (smoke: widths 16..64, so
    # only a clearly negative exponent is asked for; the quick size gives ≈ -1/2).
    result = smoke[0]
    x = bi.circle(np.linspace(0, np.pi, bi.CONFIGS["smoke"]["n_angles"]))
    np.testing.assert_allclose(result["limit_nngp"], kernels.analytic(bi.make_net(3), x).nngp,
                               rtol=1e-6)
    for ens in bi.ENSEMBLES:
        for kind in ("nngp", "ntk"):
            dev = result["dev"][ens, kind]
            assert dev[-1].mean() < dev[0].mean(), (ens, kind, dev.mean(1))
            assert dev[-1].mean() < 0.2, (ens, kind, dev.mean(1))


def test_gaussian_fluctuation_theory():
    # Layer 1 of a Gaussian net on a fixed input: K̂ = χ²_n / n, so n Var / K² = 2 exactly; the
    # four-point vertex then grows ≈ linearly (V/(K² l) → 2/3 for critical tanh).
    k, ratio = bi.gaussian_fluctuation_theory(200)
    assert ratio[0] == 2.0 and k[0] == 1.0
    slope = (ratio[-1] - ratio[99]) / 100
    assert 0.55 < slope < 0.75, slope
    np.testing.assert_allclose(k[1], 0.3942, atol=1e-3)  # <tanh²> under N(0, 1) (scipy.quad)


def test_fluctuations_gaussian_vs_orthogonal():
    # Direct run of the fluctuation experiment (default suite; the smoke run above is slow):
    # layer 1 of Gaussian weights gives n Var(χ²_n / n) / 1 = 2; orthogonal ones preserve the
    # norm exactly, and their fluctuations stay below the Gaussian ones at every depth.
    import jax
    import jax.numpy as jnp

    n, s, d = 16, 400, 5
    x = jnp.ones((1, n), jnp.float64)
    ratio = {}
    for ens in ("gaussian", "orthogonal"):
        keys = jax.random.split(jax.random.key(3), s)
        k = np.asarray(bi._norms((bi.fluctuation_net_layer(n, ens),), keys[None], x, d)[0])
        ratio[ens] = n * k.var(0, ddof=1) / k.mean(0) ** 2
        if ens == "gaussian":  # s.e. of a sample variance of χ²_n/n: ≈ ratio * sqrt(2 * 3 / s)
            assert abs(ratio[ens][0] - 2) < 4.5 * 2 * np.sqrt(6 / s), ratio[ens]
    assert ratio["orthogonal"][0] < 1e-9
    assert np.all(ratio["orthogonal"] < ratio["gaussian"]), ratio
