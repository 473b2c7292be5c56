"""Signal propagation in deep random networks at infinite width: length and correlation maps,
their fixed points and depth scales (Poole et al. 2016; Schoenholz et al. 2017), the edge of
chaos (Hayou, Doucet & Rousseau 2019), criticality in Roberts, Yaida & Hanin's language, and
sparsity-inducing activations (Price et al. 2024).

Convention: ``sw2`` and ``sb2`` are the weight and bias **variances** sigma_w^2, sigma_b^2
(Roberts et al.'s C_W and C_b): ``W_ij ~ N(0, sw2 / n_in)``, ``b_i ~ N(0, sb2)``, i.e.
``nets.Dense(width, w_std=sqrt(sw2), b_std=sqrt(sb2))`` in either parameterization.

Any activation spec of ``widelimits.nets`` works: 1-D moments from ``kernels.dual``'s closed
forms (ReLU family, erf, GELU, sin, cos, exp, monomials), exact piecewise formulas
(``shifted_relu``, ``soft_threshold``) or Gauss-Hermite quadrature (tanh, sigmoid, softplus,
swish, ``nets.Elementwise``); correlation maps from the closed forms or Hermite coefficients.
"""

from ..nets import PiecewiseLinear as PiecewiseLinear
from ._criticality import (
    Criticality as Criticality,
    chi_parallel as chi_parallel,
    chi_perp as chi_perp,
    critical_points as critical_points,
    criticality as criticality,
    edge_of_chaos as edge_of_chaos,
)
from ._maps import (
    KernelMaps as KernelMaps,
    MeanField as MeanField,
    correlation_fixed_point as correlation_fixed_point,
    correlation_map as correlation_map,
    edge_of_chaos_init as edge_of_chaos_init,
    fixed_point as fixed_point,
    kernel_maps as kernel_maps,
    length_map as length_map,
    mean_field as mean_field,
)
from ._piecewise import shifted_relu as shifted_relu, soft_threshold as soft_threshold

__all__ = ["Criticality", "KernelMaps", "MeanField", "PiecewiseLinear", "chi_parallel",
           "chi_perp", "correlation_fixed_point", "correlation_map", "critical_points",
           "criticality", "edge_of_chaos", "edge_of_chaos_init", "fixed_point", "kernel_maps",
           "length_map", "mean_field", "shifted_relu", "soft_threshold"]
