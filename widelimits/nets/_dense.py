"""Fully connected layer and layer normalisation."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._spec import Layer, check_nonnegative, check_positive_int, spec, static

__all__ = ["Dense", "LayerNorm", "PARAMETERIZATIONS", "WEIGHT_ENSEMBLES"]

PARAMETERIZATIONS = ("ntk", "standard")
WEIGHT_ENSEMBLES = ("gaussian", "orthogonal")


def _in_features(owner, input_shape):
    shape = tuple(input_shape)
    if len(shape) < 1:
        raise ValueError(f"{owner}.init: input_shape must have at least one axis (features last), "
                         f"got {shape}.")
    check_positive_int(owner, "input_shape[-1] (number of input features)", shape[-1])
    return shape[-1]


@spec
class Dense(Layer):
    """Fully connected layer ``z = x W + b`` acting on the last axis.

    ``parameterization="ntk"`` (Jacot et al. 2018): ``z = (w_std/sqrt(n_in)) x W + b_std b`` with
    ``W, b ~ N(0, 1)`` the trained parameters. ``"standard"``: ``W ~ N(0, w_std^2/n_in)``,
    ``b ~ N(0, b_std^2)`` trained directly (Sohl-Dickstein et al. 2020). ``b_std=None``: no bias;
    ``b_std=0.0``: a bias initialised at zero (it still contributes to the standard NTK).
    ``weights="orthogonal"``: ``W`` is a scaled Haar-orthogonal matrix with ``E W_ij^2`` equal to
    the Gaussian case (same NNGP at infinite width).

    Attributes:
      width: output features (static).
      w_std, b_std: weight and bias standard deviations (array leaves, differentiable).
    """

    width: int = static()
    w_std: float = 1.0
    b_std: float | None = 0.0
    parameterization: str = static("ntk")
    weights: str = static("gaussian")

    def __post_init__(self):
        check_positive_int("Dense", "width", self.width)
        check_nonnegative("Dense", "w_std", self.w_std)
        check_nonnegative("Dense", "b_std", self.b_std)
        if self.parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"Dense: parameterization must be one of {PARAMETERIZATIONS}, "
                             f"got {self.parameterization!r}.")
        if self.weights not in WEIGHT_ENSEMBLES:
            raise ValueError(f"Dense: weights must be one of {WEIGHT_ENSEMBLES}, "
                             f"got {self.weights!r}.")

    def out_features(self, in_features):
        return self.width

    def init(self, key, input_shape, dtype=None):
        n_in = _in_features("Dense", input_shape)
        dtype = dtype or jnp.result_type(float)
        kw, kb = jax.random.split(key)
        if self.weights == "orthogonal":
            big = max(n_in, self.width)
            w = jax.nn.initializers.orthogonal(scale=big**0.5)(kw, (n_in, self.width), dtype)
        else:
            w = jax.random.normal(kw, (n_in, self.width), dtype)
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

    def apply(self, params, x):
        mean = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean((x - mean) ** 2, axis=-1, keepdims=True)
        return (x - mean) * jax.lax.rsqrt(var + self.eps)
