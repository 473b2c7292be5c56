"""Shared test fixtures: run every test in float32 and float64 where it asks for ``dtype``."""

import jax
import jax.numpy as jnp
import pytest

jax.config.update("jax_enable_x64", True)  # float64 available; float32 tests pass f32 arrays


@pytest.fixture(params=[jnp.float32, jnp.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param


def rtol_for(dtype, f64=1e-10, f32=1e-4):
    """Relative tolerance matched to the precision under test."""
    return f64 if dtype == jnp.float64 else f32
