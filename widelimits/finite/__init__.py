"""Finite-width corrections: the output distribution of random networks at finite width.

Exact one-hidden-layer cumulants and Edgeworth densities (Antognini 2019), the deep four-point
vertex recursion (Roberts, Yaida & Hanin 2022, ch. 4-5; its susceptibilities chi_par, chi_perp
are ``signal.chi_parallel`` and ``signal.chi_perp``) and large Monte Carlo ensembles of networks
to check them. ``activation_moments`` (E phi(u)^k, u ~ N(0, q)) is shared with ``signal``.

Two views of a spec live here, each a registry with one rule per layer type: the collapsed
sampler (``draw``, behind ``output_samples``: a random network drawn layer by layer) and the
single-input recursions (``net_vertex``, ``net_output_cumulants``).
"""

from ..kernels import activation_moments as activation_moments
from ._draw import DENSE_DRAWS as DENSE_DRAWS, draw as draw
from ._ensembles import (
    METHODS as METHODS,
    KurtosisEstimate as KurtosisEstimate,
    ProportionalFit as ProportionalFit,
    fit_proportional as fit_proportional,
    one_layer_samples as one_layer_samples,
    output_samples as output_samples,
    sample_kurtosis as sample_kurtosis,
)
from ._kurtosis import (
    READOUTS as READOUTS,
    OneLayerCumulants as OneLayerCumulants,
    edgeworth_cdf as edgeworth_cdf,
    edgeworth_pdf as edgeworth_pdf,
    hermite_he as hermite_he,
    net_output_cumulants as net_output_cumulants,
    one_layer_cumulants as one_layer_cumulants,
    readout_moments as readout_moments,
)
from ._vertex import (
    VertexRecursion as VertexRecursion,
    net_vertex as net_vertex,
    relu_exact_kurtosis as relu_exact_kurtosis,
    vertex_recursion as vertex_recursion,
)

__all__ = [
    "DENSE_DRAWS", "METHODS", "READOUTS", "KurtosisEstimate", "OneLayerCumulants",
    "ProportionalFit", "VertexRecursion", "activation_moments", "draw", "edgeworth_cdf",
    "edgeworth_pdf", "fit_proportional", "hermite_he", "net_output_cumulants", "net_vertex",
    "one_layer_cumulants", "one_layer_samples", "output_samples", "readout_moments",
    "relu_exact_kurtosis", "sample_kurtosis", "vertex_recursion",
]
