"""Fully connected layer and layer normalisation."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._checks import integer, nonnegative
from . import _weights
from ._spec import Layer, spec, static

__all__ = ["Dense", "LayerNorm", "PARAMETERIZATIONS", "WEIGHT_ENSEMBLES"]

PARAMETERIZATIONS = ("ntk", "standard")
WEIGHT_ENSEMBLES = ("gaussian", "orthogonal", "low_rank", "sparse")


def _in_features(owner, input_shape):
    shape = tuple(input_shape)
    if len(shape) < 1:
        raise ValueError(f"{owner}.init: input_shape must have at least one axis (features last), "
                         f"got {shape}.")
    integer(owner, "input_shape[-1] (number of input features)", shape[-1])
    return shape[-1]


@spec
class Dense(Layer):
    """Fully connected layer ``z = x W + b`` acting on the last axis.

    ``parameterization="ntk"`` (Jacot et al. 2018): ``z = (w_std/sqrt(n_in)) x W + b_std b`` with
    ``W, b ~ N(0, 1)`` the trained parameters. ``"standard"``: ``W ~ N(0, w_std^2/n_in)``,
    ``b ~ N(0, b_std^2)`` trained directly (Sohl-Dickstein et al. 2020). ``b_std=None``: no bias;
    ``b_std=0.0``: a bias initialised at zero (it still contributes to the standard NTK).

    Weight ensembles (``weights``, static), each with ``E W_ij = 0``, ``E W_ij^2 = 1`` (times
    ``w_std^2 / n_in`` after scaling), uncorrelated entries and exchangeable output units:

    - ``"gaussian"`` (default): iid N(0, 1).
    - ``"orthogonal"``: ``sqrt(max(n_in, width))`` times a Haar matrix with orthonormal rows or
      columns.
    - ``"low_rank"``: ``W = P C`` with ``P`` (n_in, r) a Haar-random orthonormal basis and ``C``
      (r, width) iid N(0, n_in / r). ``rank`` (static) is an int r >= 1, capped at
      ``min(n_in, width)``, or a float in (0, 1]: the fraction ``max(1, round(rank * min(n_in,
      width)))``. A fraction keeps the rank proportional to the width as it grows.
    - ``"sparse"``: structured sparse; each output unit sees exactly
      ``K = max(1, round(density * n_in))`` inputs chosen uniformly at random, with iid
      N(0, n_in / K) weights. ``density`` (static) in (0, 1].

    Nait Saada, Naderi & Tanner 2024 ("Beyond IID weights") prove that these ensembles give the
    Gaussian NNGP as the fan-in of the layer grows (for "low_rank" and "sparse" the rank and
    the nonzeros per unit must grow too: use fractions). ``kernels.analytic`` therefore ignores
    ``weights``; it is exact only if the first layer, whose fan-in is the fixed input dimension,
    is Gaussian (or orthogonal, which becomes Gaussian as its width grows): a first layer with
    ``low_rank`` or ``sparse`` weights on d inputs has a non-Gaussian limit. Likewise a
    ``low_rank`` readout of k outputs has rank <= k; for k = 1 it is ``c u`` with a single
    Gaussian scale c, so its output is not Gaussian and the empirical NTK does not concentrate
    (it carries a factor ``c² / n_in ~ χ²_1``), although ``E[f f^T]`` is still the NNGP. The
    NTK at initialisation of hidden ``orthogonal``/``low_rank``/``sparse`` layers is checked
    by Monte Carlo to approach the Gaussian one (``reproduce.beyond_iid``). The ensemble shapes
    the initialisation only: the trained parameter is the full matrix ``W`` (no mask or factors
    are kept), so gradients and the empirical NTK treat every entry as free.

    Attributes:
      width: output features (static).
      w_std, b_std: weight and bias standard deviations (array leaves, differentiable).
      weights, rank, density: the weight ensemble and its parameter (static).
    """

    width: int = static()
    w_std: float = 1.0
    b_std: float | None = 0.0
    parameterization: str = static("ntk")
    weights: str = static("gaussian")
    rank: int | float | None = static(None)
    density: float | None = static(None)

    def __post_init__(self):
        integer("Dense", "width", self.width)
        nonnegative("Dense", "w_std", self.w_std)
        nonnegative("Dense", "b_std", self.b_std)
        if self.parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"Dense: parameterization must be one of {PARAMETERIZATIONS}, "
                             f"got {self.parameterization!r}.")
        if self.weights not in WEIGHT_ENSEMBLES:
            raise ValueError(f"Dense: weights must be one of {WEIGHT_ENSEMBLES}, "
                             f"got {self.weights!r}.")
        for name, kind in (("rank", "low_rank"), ("density", "sparse")):
            value = getattr(self, name)
            if value is None and self.weights == kind:
                raise ValueError(f"Dense: weights={kind!r} needs {name}=..., got {name}=None.")
            if value is not None and self.weights != kind:
                raise ValueError(f"Dense: {name}={value!r} applies only to weights={kind!r}, "
                                 f"got weights={self.weights!r}.")
        if self.rank is not None:
            _weights.check_rank("Dense", self.rank)
        if self.density is not None:
            _weights.check_density("Dense", self.density)

    def output_shape(self, input_shape):
        _in_features("Dense", input_shape)
        return tuple(input_shape[:-1]) + (self.width,)

    def init(self, key, input_shape, dtype=None):
        n_in = _in_features("Dense", input_shape)
        dtype = dtype or jnp.result_type(float)
        kw, kb = jax.random.split(key)
        if self.weights == "orthogonal":
            w = _weights.orthogonal(kw, n_in, self.width, dtype)
        elif self.weights == "low_rank":
            w = _weights.low_rank(kw, n_in, self.width, self.rank, dtype)
        elif self.weights == "sparse":
            w = _weights.sparse(kw, n_in, self.width, self.density, dtype)
        else:
            w = _weights.gaussian(kw, n_in, self.width, dtype)
        params = {"W": w}
        if self.b_std is not None:
            params["b"] = jax.random.normal(kb, (self.width,), dtype)
        if self.parameterization == "standard":
            params["W"] = params["W"] * (self.w_std / n_in**0.5)
            if "b" in params:
                params["b"] = params["b"] * self.b_std
        return params

    def apply(self, params, x):
        n_in = x.shape[-1]
        if params["W"].shape[0] != n_in:
            raise ValueError(f"Dense.apply: x has {n_in} features on its last axis but the "
                             f"weights expect {params['W'].shape[0]} (shape {x.shape}).")
        if self.parameterization == "standard":
            z = x @ params["W"]
            return z + params["b"] if "b" in params else z
        z = x @ params["W"] * (self.w_std / n_in**0.5)
        return z + self.b_std * params["b"] if "b" in params else z


@spec
class LayerNorm(Layer):
    """Normalise the last axis to zero mean and unit variance: ``(z - mean) / sqrt(var + eps)``.

    At infinite width after a Dense layer its NNGP and NTK are those of the input divided by
    ``sqrt(K(x, x) K(x', x'))``.
    """

    eps: float = static(1e-12)

    def init(self, key, input_shape):
        _in_features("LayerNorm", input_shape)
        return ()

    def output_shape(self, input_shape):
        _in_features("LayerNorm", input_shape)
        return tuple(input_shape)

    def apply(self, params, x):
        mean = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean((x - mean) ** 2, axis=-1, keepdims=True)
        return (x - mean) * jax.lax.rsqrt(var + self.eps)
