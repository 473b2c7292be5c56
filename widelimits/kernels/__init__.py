"""Infinite-width kernels of network specs: NNGP, NTK and activation duals."""

from ._analytic import analytic as analytic
from ._arccos import arccos_j as arccos_j
from ._dual import dual as dual
from ._empirical import (
    METHODS as METHODS,
    empirical_nngp as empirical_nngp,
    empirical_ntk as empirical_ntk,
)
from ._gaussian import gaussian_expectation as gaussian_expectation
from ._hermite import hermite_coefficients as hermite_coefficients, hermite_dual as hermite_dual
from ._kernel import Kernel as Kernel
from ._monte_carlo import monte_carlo as monte_carlo

__all__ = ["Kernel", "METHODS", "analytic", "arccos_j", "dual", "empirical_nngp", "empirical_ntk",
           "gaussian_expectation", "hermite_coefficients", "hermite_dual", "monte_carlo"]
