"""Gaussian moments of an activation spec, as the signal-propagation maps need them.

The moments themselves live in ``kernels`` (``kernels.gaussian_moment``,
``kernels.derivative_moment``, ``kernels.second_moment_slope``, ``kernels.equal_variance_dual``),
the one place that knows their closed forms. Here: the argument check of the maps, which also
refuses ``nets.Sign`` where its derivative (a delta function) is needed.
"""

from __future__ import annotations

from .. import kernels, nets
from .._numerics import q_floor as q_floor

__all__ = ["second_moment", "derivative_moment", "second_moment_slope", "equal_variance_dual",
           "check_activation", "q_floor"]

derivative_moment = kernels.derivative_moment
second_moment_slope = kernels.second_moment_slope
equal_variance_dual = kernels.equal_variance_dual


def second_moment(act, q, order=None):
    """E phi(sqrt(q) z)^2 for every entry of ``q`` (``kernels.gaussian_moment`` with k = 2)."""
    return kernels.gaussian_moment(act, 2, q, order)


def check_activation(owner: str, act, derivative: bool = True):
    """Raise ``TypeError`` unless ``act`` is an activation spec with an infinite-width dual;
    ``ValueError`` for ``nets.Sign`` when ``derivative`` (its derivative is a delta function,
    which ``kernels.dual`` sets to 0, so chi_1 and the depth scales are undefined)."""
    nets.check_activation(owner, act, "act")
    kernels.dual(act)  # raises TypeError naming the supported activations
    if derivative and isinstance(act, nets.Sign):
        raise ValueError(f"{owner}: nets.Sign has a delta-function derivative, so chi_1 and "
                         "the depth scales are undefined; use a smooth surrogate such as "
                         "nets.Erf(b=...) or nets.Tanh().")
