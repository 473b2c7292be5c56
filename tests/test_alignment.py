"""compare.alignment: kernel alignment (Cristianini et al. 2001) against a brute-force sum."""

import jax.numpy as jnp
import numpy as np
import pytest

from widelimits import compare


def _brute(a, b):
    """<a, b>_F / (||a||_F ||b||_F) by explicit loops over the entries (float64)."""
    dot = na = nb = 0.0
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            dot += float(a[i, j]) * float(b[i, j])
            na += float(a[i, j]) ** 2
            nb += float(b[i, j]) ** 2
    return dot / np.sqrt(na * nb)


def test_matches_brute_force_and_broadcasts():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 2, 5, 4))                       # a stack of (5, 4) matrices
    b = rng.standard_normal((2, 5, 4))                          # broadcast over the first axis
    got = compare.alignment(a, b)
    assert got.shape == (3, 2) and got.dtype == np.float64
    for i in range(3):
        for j in range(2):
            assert got[i, j] == pytest.approx(_brute(a[i, j], b[j]), rel=1e-13)
    # symmetric in its arguments, and JAX float32 inputs are promoted to float64
    np.testing.assert_allclose(compare.alignment(b, a), got, rtol=1e-14)
    one = compare.alignment(jnp.asarray(a[0, 0], jnp.float32), jnp.asarray(b[0], jnp.float32))
    assert np.ndim(one) == 0
    assert one == pytest.approx(_brute(np.float32(a[0, 0]), np.float32(b[0])), rel=1e-12)


def test_scale_invariance_and_bounds():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((6, 3))
    k = z @ z.T                                                 # positive semi-definite
    y = rng.standard_normal(6)
    assert compare.alignment(k, 7.5 * k) == pytest.approx(1.0, rel=1e-14)
    assert compare.alignment(k, -k) == pytest.approx(-1.0, rel=1e-14)
    target = compare.alignment(k, np.outer(y, y))
    assert 0.0 <= target <= 1.0                                  # PSD kernels: in [0, 1]
    assert compare.alignment(np.eye(9), np.ones((9, 9))) == pytest.approx(1 / 3, rel=1e-14)


def test_zero_kernel_and_errors():
    assert np.isnan(compare.alignment(np.zeros((2, 2)), np.eye(2)))
    with pytest.raises(ValueError, match="at least two axes"):
        compare.alignment(np.ones(3), np.ones((3, 3)))
    with pytest.raises(ValueError, match="same last two axes"):
        compare.alignment(np.ones((3, 3)), np.ones((3, 2)))
