"""The sparse_activations reproduction (Price et al. 2024) at the smoke size."""

import numpy as np
import pytest
from scipy.stats import norm

from widelimits.reproduce import REGISTRY, sparse_activations as sa

from ._repro import assert_png


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, smoke_results):
    out = tmp_path_factory.mktemp("sparse_activations")
    result = smoke_results("sparse_activations", out)
    return result, sa.plot(result, out), out


def test_figure_and_registry(smoke):
    _, paths, _ = smoke
    assert REGISTRY["sparse_activations"] is sa
    assert_png(paths[0])


def test_edge_of_chaos_initialisation_and_sparsity(smoke):
    r = smoke[0]
    # tau zeroes the requested fraction of N(0, q*) pre-activations
    assert norm.cdf(r["taus"][0]) == pytest.approx(sa.SPARSITY, rel=1e-12)
    assert 2 * norm.cdf(r["taus"][1]) - 1 == pytest.approx(sa.SPARSITY, rel=1e-12)
    np.testing.assert_allclose(r["chi_1"], 1.0, rtol=1e-12)
    # sw2 = 1 / P(phi' != 0)
    np.testing.assert_allclose(r["sw2"][:2], [1 / (1 - sa.SPARSITY)] * 2, rtol=1e-12)


def test_unclipped_maps_are_tangent_and_above_the_diagonal(smoke):
    r = smoke[0]
    qs, v = r["qs"], r["V"]
    np.testing.assert_allclose(r["slope"][:2], 1.0, rtol=1e-9)  # V'(q*) = chi_1 = 1
    assert np.all(v[:2] >= qs * (1 - 1e-12))  # no crossing: q* repels from above
    for path in r["paths"][:2]:
        lo, hi = path  # from below: creeps up to q*; from above: grows
        assert lo[-1] > lo[0] and lo[-1] < sa.Q_STAR and hi[-1] > hi[0]


def test_clipping_gives_a_stable_fixed_point(smoke):
    r = smoke[0]
    qs, v = r["qs"], r["V"]
    m, q = sa.CLIP, sa.Q_STAR
    for i, mult in ((2, 1), (3, 2)):  # V'(q*) = 1 - sw2 m p_q(tau + m) (twice for CST)
        want = 1 - mult * r["sw2"][i] * m * norm.pdf((r["taus"][i] + m) / np.sqrt(q)) / np.sqrt(q)
        assert r["slope"][i] == pytest.approx(want, rel=1e-10) and want < 1
        assert np.all(v[i][qs > 1.05 * q] < qs[qs > 1.05 * q])
        assert np.all(v[i][qs < 0.95 * q] > qs[qs < 0.95 * q])
        for path in r["paths"][i]:
            assert abs(path[-1] - q) < abs(path[0] - q)


def test_hermite_error_is_reported(smoke):
    r = smoke[0]
    assert np.all(r["hermite_error"] < 5e-3) and np.all(r["hermite_error"] > 1e-8)
    assert r["sim"].shape == (4, sa.CONFIGS["smoke"]["seeds"], sa.CONFIGS["smoke"]["depth"] + 1)
    np.testing.assert_allclose(r["sim"][:, :, 0], sa.Q_STAR, rtol=0.5)
