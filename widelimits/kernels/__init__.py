"""Kernels of network specs: infinite-width NNGP and NTK (``analytic``), activation duals and
Gaussian moments, and the empirical and Monte Carlo kernels of finite networks."""

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
from ._moments import (
    activation_moments as activation_moments,
    derivative_moment as derivative_moment,
    equal_variance_dual as equal_variance_dual,
    gaussian_moment as gaussian_moment,
    second_moment_slope as second_moment_slope,
)
from ._monte_carlo import monte_carlo as monte_carlo
from ._state import (
    KernelState as KernelState,
    propagate as propagate,
    register_analytic as register_analytic,
)
from ._structured import (
    Tape as Tape,
    feature_kernels as feature_kernels,
    record as record,
    register_structured as register_structured,
)

__all__ = ["Kernel", "KernelState", "METHODS", "Tape", "activation_moments", "analytic",
           "arccos_j", "derivative_moment", "dual", "empirical_nngp", "empirical_ntk",
           "equal_variance_dual", "feature_kernels", "gaussian_expectation", "gaussian_moment",
           "hermite_coefficients", "hermite_dual", "monte_carlo", "propagate", "record",
           "register_analytic", "register_structured", "second_moment_slope"]
