"""Global multi-head self-attention over all spatial positions of channels-last inputs.

The finite network is neural-tangents 0.6.5's ``stax.GlobalSelfAttention(features,
key_features, value_features, heads, linear_scaling=True)`` without positional embeddings
(Hron, Bahri, Sohl-Dickstein & Novak 2020, "Infinite attention: NNGP and NTK for deep attention
networks"): logits scaled by ``1/key_features`` (not its square root), query and key weights
tied, every weight N(0, 1) and scaled in the forward pass (NTK parameterization).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from .._checks import integer, nonnegative
from ._spec import Layer, spec, static

__all__ = ["GlobalSelfAttention", "MECHANISMS"]

MECHANISMS = ("softmax", "identity")


def _shape(owner, input_shape):
    """(n, spatial shape, channels) of ``input_shape`` = (n, *spatial, C), >= 1 spatial axis."""
    shape = tuple(input_shape)
    if len(shape) < 3:
        raise ValueError(f"{owner}: inputs must be (n, *spatial, C) with at least one spatial "
                         f"(sequence) axis to attend over, got shape {shape}; (n, d) inputs "
                         "have no positions (reshape them to (n, L, C)).")
    return shape[0], shape[1:-1], integer(owner, "input channels (input_shape[-1])", shape[-1])


@spec
class GlobalSelfAttention(Layer):
    """Multi-head self-attention over all positions of ``(n, *spatial, C)`` inputs (the spatial
    axes flattened into P positions): outputs ``(n, *spatial, features)``.

    With x (P, C) one input, head h = 1..H, ``K_h`` (C, d_k), ``V_h`` (C, d_v), ``O``
    (H, d_v, features) and ``b`` (features,), all N(0, 1) (NTK parameterization):

    - logits ``G_h = (w_query_std w_key_std / (C d_k)) (x K_h)(x K_h)^T`` (P, P): queries and
      keys share ``K_h`` and the scaling is ``1/d_k`` (neural-tangents' ``linear_scaling=True``),
      so as d_k grows ``G_h -> w_q w_k x x^T / C``, a deterministic matrix;
    - attention weights ``A_h = softmax(G_h)`` over the attended positions (last axis), or
      ``A_h = G_h`` for ``mechanism="identity"``;
    - ``y = (w_out_std w_value_std / sqrt(d_v H C)) sum_h A_h (x V_h) O_h + b_std b``.

    This is neural-tangents 0.6.5's ``stax.GlobalSelfAttention(features, key_features,
    value_features, heads, linear_scaling=True, W_key_std, W_value_std, W_query_std, W_out_std,
    b_std, attention_mechanism)`` with ``pos_emb_type="NONE"``: there are no positional
    embeddings, so the layer is equivariant to permutations of the positions (add them to the
    inputs yourself). Its parameters map to ours as ``K = key_matrices``, ``V = val_matrices``,
    ``O = W_out.reshape(d_v, H, features).transpose(1, 0, 2)`` (its heads are concatenated
    value-major) and ``b = b.ravel()``; it keeps no query weights (tied to the keys), nor do we.
    ``w_query_std`` and ``w_key_std`` act only through their product, likewise ``w_out_std`` and
    ``w_value_std``. ``b_std=None``: no bias. The infinite-width limit (``kernels.analytic``)
    takes ``key_features``, ``value_features``, ``heads`` and C to infinity.

    >>> import jax, jax.numpy as jnp
    >>> from widelimits import nets
    >>> att = nets.GlobalSelfAttention(8, key_features=16, value_features=4, heads=2)
    >>> x = jnp.ones((3, 5, 6))  # 3 sequences of 5 positions with 6 channels
    >>> params = att.init(jax.random.key(0), x.shape)
    >>> att.apply(params, x).shape, att.output_shape((3, 4, 4, 6))
    ((3, 5, 8), (3, 4, 4, 8))

    Attributes:
      features, key_features, value_features, heads: output channels, key (= query) and value
        features per head, number of heads (static ints).
      mechanism: ``"softmax"`` or ``"identity"`` (static).
      w_key_std, w_value_std, w_query_std, w_out_std, b_std: standard deviations (array
        leaves, differentiable).
    """

    features: int = static()
    key_features: int = static()
    value_features: int = static()
    heads: int = static()
    mechanism: str = static("softmax")
    w_key_std: float = 1.0
    w_value_std: float = 1.0
    w_query_std: float = 1.0
    w_out_std: float = 1.0
    b_std: float | None = 0.0

    def __post_init__(self):
        owner = "GlobalSelfAttention"
        for name in ("features", "key_features", "value_features", "heads"):
            integer(owner, name, getattr(self, name))
        if not isinstance(self.mechanism, str):
            raise TypeError(f"{owner}: mechanism must be one of {MECHANISMS} (a string), got "
                            f"{self.mechanism!r} of type {type(self.mechanism).__name__}.")
        if self.mechanism not in MECHANISMS:
            raise ValueError(f"{owner}: mechanism must be one of {MECHANISMS}, got "
                             f"{self.mechanism!r}.")
        for name in ("w_key_std", "w_value_std", "w_query_std", "w_out_std", "b_std"):
            nonnegative(owner, name, getattr(self, name))

    def output_shape(self, input_shape):
        n, spatial, _ = _shape("GlobalSelfAttention", input_shape)
        return (n,) + spatial + (self.features,)

    def init(self, key, input_shape, dtype=None):
        _, _, c = _shape("GlobalSelfAttention.init", input_shape)
        dtype = dtype or jnp.result_type(float)
        kk, kv, ko, kb = jax.random.split(key, 4)
        h = self.heads
        params = {"K": jax.random.normal(kk, (h, c, self.key_features), dtype),
                  "V": jax.random.normal(kv, (h, c, self.value_features), dtype),
                  "O": jax.random.normal(ko, (h, self.value_features, self.features), dtype)}
        if self.b_std is not None:
            params["b"] = jax.random.normal(kb, (self.features,), dtype)
        return params

    def apply(self, params, x):
        n, spatial, c = _shape("GlobalSelfAttention.apply", x.shape)
        if params["K"].shape[1] != c:
            raise ValueError(f"GlobalSelfAttention.apply: x has {c} channels on its last axis "
                             f"but the weights expect {params['K'].shape[1]} (shape {x.shape}).")
        xf = x.reshape(n, math.prod(spatial), c)
        keys = jnp.einsum("npc,hck->hnpk", xf, params["K"].astype(x.dtype))
        logits = jnp.einsum("hnpk,hnqk->hnpq", keys, keys) * (
            self.w_query_std * self.w_key_std / (c * self.key_features))
        weights = jax.nn.softmax(logits, axis=-1) if self.mechanism == "softmax" else logits
        values = jnp.einsum("npc,hcv->hnpv", xf, params["V"].astype(x.dtype))
        heads = jnp.einsum("hnpq,hnqv->hnpv", weights, values)
        y = jnp.einsum("hnpv,hvf->npf", heads, params["O"].astype(x.dtype)) * (
            self.w_out_std * self.w_value_std / math.sqrt(self.value_features * self.heads * c))
        if "b" in params:
            y = y + self.b_std * params["b"].astype(x.dtype)
        return y.reshape((n,) + spatial + (self.features,))
