"""Exact output cumulants of one-hidden-layer networks at finite width, and Edgeworth densities.

Network (one input x, Gaussian first layer in either parameterization):

    u_i = (w_std/sqrt(d)) W_i . x + b_std b_i ~ N(0, q),   q = w_std^2 |x|^2/d + b_std^2,
    f   = (v_std/sqrt(N)) sum_{i<N} v_i phi(u_i) + vb_std c,   c ~ N(0, 1),

with v_i iid, symmetric (odd moments 0), E v^2 = 1. The N terms t_i = v_i phi(u_i) are iid and
centred (E v = 0 whatever E phi), so cumulants add (Antognini 2019, "Finite size corrections for
neural network Gaussian processes", arXiv:1908.10030): with m_k(h) = E h^k / (E h^2)^(k/2),

    K          = v_std^2 E h^2 + vb_std^2                                   (variance)
    gamma_4    = kappa_4/K^2 = (r^2/N)   [m_4(v) m_4(h) - 3]                  (excess kurtosis)
    gamma_6    = kappa_6/K^3 = (r^3/N^2) [m_6(v) m_6(h) - 15 m_4(v) m_4(h) + 30]
    r          = v_std^2 E h^2 / K   (the share of the variance not from the readout bias)

exactly at every N (the Gaussian readout bias adds nothing to cumulants of order > 2). These hold
for a Gaussian first layer only: other first-layer ensembles make u non-Gaussian at finite d.

Edgeworth expansion of the density of the standardised output y = f / sqrt(K) (odd cumulants 0):

    p(y) = phi(y) [1 + gamma_4/24 He_4(y) + gamma_6/720 He_6(y) + gamma_4^2/1152 He_8(y)] + O(N^-3)

(first order: the He_4 term only, error O(N^-2)); its CDF subtracts phi(y) times the same
series with He_{k-1} in place of He_k.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import concrete, integer, nonnegative
from ..kernels import activation_moments
from ._recursion import read

__all__ = ["READOUTS", "OneLayerCumulants", "one_layer_cumulants",
           "net_output_cumulants", "readout_moments", "edgeworth_pdf", "edgeworth_cdf",
           "hermite_he"]

# Standardised moments (E v^4, E v^6) / (E v^2)^(2, 3) of symmetric readout weight laws.
READOUTS = {
    "gaussian": (3.0, 15.0),
    "rademacher": (1.0, 1.0),
    "uniform": (9.0 / 5.0, 27.0 / 7.0),
}


def readout_moments(readout):
    """(m_4, m_6) = (E v^4/(E v^2)^2, E v^6/(E v^2)^3) of a symmetric readout law.

    ``readout``: a name in ``READOUTS`` ("gaussian", "rademacher", "uniform"), a number m_4
    (then m_6 is NaN and only first-order results are available), or a pair (m_4, m_6).
    Raises ``ValueError`` for impossible values (m_4 >= 1, m_6 >= m_4^2 by Jensen/Cauchy-Schwarz).

    >>> from widelimits import finite
    >>> finite.readout_moments("rademacher"), finite.readout_moments((3.0, 15.0))
    ((1.0, 1.0), (3.0, 15.0))
    """
    if isinstance(readout, str):
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {sorted(READOUTS)} or the moment ratio "
                             f"E v^4/(E v^2)^2 (a number >= 1), got {readout!r}.")
        return READOUTS[readout]
    if isinstance(readout, numbers.Real) and not isinstance(readout, bool):
        m4, m6 = float(readout), float("nan")
    elif isinstance(readout, tuple | list) and len(readout) == 2:
        m4, m6 = (float(v) for v in readout)
    else:
        raise TypeError(f"readout must be a name, a number E v^4/(E v^2)^2 or a pair (m4, m6), "
                        f"got {readout!r} of type {type(readout).__name__}.")
    if not (np.isfinite(m4) and m4 >= 1):
        raise ValueError(f"readout: E v^4/(E v^2)^2 must be a finite number >= 1, got {m4!r}.")
    if not np.isnan(m6) and not (np.isfinite(m6) and m6 >= m4**2 * (1 - 1e-12)):
        raise ValueError(f"readout: E v^6/(E v^2)^3 must be >= (E v^4/(E v^2)^2)^2 = {m4**2!r}, "
                         f"got {m6!r}.")
    return m4, m6


class OneLayerCumulants(NamedTuple):
    """Cumulants of a one-hidden-layer network output at one input (see the module docstring).

    variance: K = Var f. kurtosis: excess kurtosis gamma_4 = kappa_4/K^2 (exact, O(1/N)).
    sixth: gamma_6 = kappa_6/K^3 (exact, O(1/N^2); NaN if the readout's sixth moment is unknown).
    moments: (E h^2, E h^4, E h^6) of the hidden unit h = phi(u).

    >>> from widelimits import finite, nets
    >>> c = finite.one_layer_cumulants(nets.Relu(), 1.0, 10)
    >>> [round(float(v), 4) for v in (c.variance, c.kurtosis, c.sixth)]
    [0.5, 1.5, 6.6]
    """

    variance: jax.Array
    kurtosis: jax.Array
    sixth: jax.Array
    moments: jax.Array


def one_layer_cumulants(activation, q, width: int, *, readout="gaussian", v_std=1.0, vb_std=0.0,
                        order: int | None = None) -> OneLayerCumulants:
    """Exact variance, excess kurtosis and sixth standardised cumulant of
    f = (v_std/sqrt(N)) sum_i v_i phi(u_i) + vb_std c, u_i ~ N(0, q) iid, N = ``width``.

    ``q`` (any shape) is the hidden pre-activation variance (``w_std^2 |x|^2/d + b_std^2`` for a
    Gaussian first layer); ``readout`` as in ``readout_moments``. Antognini 2019, eq. for the
    kurtosis; derivation in the module docstring. Works under jit in ``q``, ``v_std``, ``vb_std``.

    ReLU with a Gaussian readout: E h^4/(E h^2)^2 = 6, so gamma_4 = 3 (6 - 1)/N = 15/N; a
    Rademacher readout (m_4(v) = 1) gives (6 - 3)/N.

    >>> from widelimits import finite, nets
    >>> round(float(finite.one_layer_cumulants(nets.Relu(), 2.0, 30).kurtosis), 6)
    0.5
    >>> round(float(finite.one_layer_cumulants(nets.Relu(), 2.0, 30, readout="rademacher")
    ...             .kurtosis), 6)
    0.1
    """
    integer("finite.one_layer_cumulants", "width", width)
    m4v, m6v = readout_moments(readout)
    for name, v in (("v_std", v_std), ("vb_std", vb_std)):
        nonnegative("finite.one_layer_cumulants", name, v)
    mom = activation_moments(activation, q, (2, 4, 6), order=order)
    h2, h4, h6 = mom
    hidden = v_std**2 * h2
    var = hidden + vb_std**2
    r = jnp.where(var > 0, hidden / jnp.where(var > 0, var, 1), 0.0)
    safe_h2 = jnp.where(h2 > 0, h2, 1)
    m4h, m6h = h4 / safe_h2**2, h6 / safe_h2**3
    kurt = r**2 * (m4v * m4h - 3) / width
    sixth = r**3 * (m6v * m6h - 15 * m4v * m4h + 30) / width**2
    return OneLayerCumulants(var, kurt, sixth, mom)


def net_output_cumulants(net, x, *, order: int | None = None) -> OneLayerCumulants:
    """Exact cumulants of each output of ``serial(Dense(N, w, b), act, Dense(k, v, vb))`` at each
    input of ``x`` (n, d): fields of shape (n,). Gaussian weights, either parameterization (both
    give u ~ N(0, w^2 |x|^2/d + b^2) and a Gaussian readout of variance v^2/N per weight); every
    one of the k outputs has the same law. The net is read through the registry view
    ``finite.recursions`` (as ``net_vertex``); deeper nets raise ``TypeError`` (their cumulants
    are not exact: ``net_vertex`` gives the leading order).

    >>> import jax.numpy as jnp
    >>> from widelimits import finite, nets
    >>> net = nets.serial(nets.Dense(30, w_std=2**0.5), nets.Relu(), nets.Dense(1))
    >>> c = finite.net_output_cumulants(net, jnp.ones((1, 4)))   # q = 2: as above
    >>> round(float(c.variance[0]), 4), round(float(c.kurtosis[0]), 4)
    (1.0, 0.5)
    """
    s = read(net, x, owner="finite.net_output_cumulants", order=order, vertex=False)
    if len(s.denses) != 2 or s.act is not None:
        raise TypeError(f"finite.net_output_cumulants: net must be serial(Dense(N, ...), "
                        f"activation, Dense(k, ...)), got {net!r}.")
    (dense, head), (act,) = s.denses, s.acts
    vb = 0.0 if head.b_std is None else head.b_std
    return one_layer_cumulants(act, s.kernels[0], dense.width, readout="gaussian",
                               v_std=head.w_std, vb_std=vb, order=order)


def hermite_he(k: int, y):
    """Probabilists' Hermite polynomial He_k(y) by the recursion He_{k+1} = y He_k - k He_{k-1}
    (``y`` any shape; He_4(y) = y^4 - 6 y^2 + 3).

    >>> from widelimits import finite
    >>> finite.hermite_he(4, [0.0, 1.0, 2.0]).tolist()
    [3.0, -2.0, -5.0]
    """
    integer("finite.hermite_he", "k", k, minimum=0)
    y = jnp.asarray(y)
    prev, cur = jnp.ones_like(y), y
    if k == 0:
        return prev
    for j in range(1, k):
        prev, cur = cur, y * cur - j * prev
    return cur


def _check_kurtosis(name, value):
    c = concrete(value)
    if c is not None and np.any(~np.isfinite(c)):
        raise ValueError(f"edgeworth: {name} must be finite, got {c!r}.")


def _series(y, kurtosis, sixth, shift):
    y = jnp.asarray(y)
    y = y.astype(jnp.result_type(y, float))
    _check_kurtosis("kurtosis", kurtosis)
    s = kurtosis / 24 * hermite_he(4 - shift, y)
    if sixth is not None:
        _check_kurtosis("sixth", sixth)
        s = s + sixth / 720 * hermite_he(6 - shift, y) + kurtosis**2 / 1152 * hermite_he(8 - shift, y)
    return y, s


def edgeworth_pdf(y, kurtosis, sixth=None):
    """Edgeworth density of a standardised symmetric variable at ``y`` (any shape).

    phi(y) [1 + g4/24 He_4(y)] with g4 = ``kurtosis`` (excess kurtosis), plus
    g6/720 He_6(y) + g4^2/1152 He_8(y) when ``sixth`` = g6 is given (next order in 1/N for a sum
    of N iid terms). Integrates to 1 and has fourth cumulant g4 (and sixth g6) exactly; it can
    dip below zero in the tails when g4 is not small.

    >>> import math
    >>> from widelimits import finite
    >>> p0 = float(finite.edgeworth_pdf(0.0, 0.4))   # phi(0) (1 + 0.4/24 He_4(0)), He_4(0) = 3
    >>> round(p0 / (1 / math.sqrt(2 * math.pi)), 4)
    1.05
    """
    y, s = _series(y, kurtosis, sixth, 0)
    return jnp.exp(-0.5 * y * y) / math.sqrt(2 * math.pi) * (1 + s)


def edgeworth_cdf(y, kurtosis, sixth=None):
    """CDF of ``edgeworth_pdf``: Phi(y) - phi(y) [g4/24 He_3(y) (+ g6/720 He_5 + g4^2/1152 He_7)].

    Symmetric: 1/2 at 0 whatever the cumulants; heavier tails (g4 > 0) put more mass below -2.

    >>> from widelimits import finite
    >>> float(finite.edgeworth_cdf(0.0, 0.4, 0.05))
    0.5
    >>> bool(finite.edgeworth_cdf(-2.0, 0.4) > finite.edgeworth_cdf(-2.0, 0.0))
    True
    """
    y, s = _series(y, kurtosis, sixth, 1)
    pdf = jnp.exp(-0.5 * y * y) / math.sqrt(2 * math.pi)
    return jax.scipy.stats.norm.cdf(y) - pdf * s
