"""The infinite-width rule of ``nets.GlobalSelfAttention`` (Hron, Bahri, Sohl-Dickstein &
Novak 2020, "Infinite attention: NNGP and NTK for deep attention networks", with the logits
scaled by 1/d_key), in neural-tangents 0.6.5's conventions.

With K the input NNGP between positions (all pairs carried, ``state.full``), Theta its NTK,
qk = w_query_std w_key_std, ov = w_out_std w_value_std and b = b_std (0 without a bias):

- attention weights of each input, from its own covariance between its positions:
  A(x) = softmax_b(qk K(x, x)[a, b]) (over the attended position b), or qk K(x, x) for
  ``mechanism="identity"``. As d_key grows, the tied query-key logits
  qk (x K_h)(x K_h)^T / (C d_key) converge to qk x x^T / C = qk K(x, x): A is deterministic.
- NNGP: K'(x, x')[a, a'] = ov² sum_{b, b'} A(x)[a, b] K(x, x')[b, b'] A(x')[a', b'] + b²,
  i.e. K' = ov² A K A'^T + b² per pair of inputs (heads are iid, so their number drops out).
- NTK: Theta' = ov² A (Theta + 2 K) A'^T + b². The value and the output weights each contribute
  the NNGP without the bias (NTK parameterization: ov² A K A'^T); the bias b²; earlier layers
  ov² A Theta A'^T. The key/query weights and the dependence of A on earlier layers' parameters
  contribute O(1/d_key) and O(1/C), which vanish: A is a constant of the limit.

The input need not be Gaussian (raw inputs and activation outputs are fine): the limit uses only
its second moments between positions, and the output is a fresh centred Gaussian process
(a sum over infinitely many heads and value features with Gaussian output weights).

Cost per layer, with P = prod(spatial) positions: 2 n1 n2 P³ multiply-adds for the NNGP and
2 n1 n2 P³ for the NTK (two P x P matrix products per pair of inputs, since the NTK mixes
Theta + 2 K at once), 2 (n1 + n2) P³ for the inputs' own covariances and O((n1 + n2) P²) for
the softmax; memory n1 n2 P² per array (one temporary of that size), as every layer of the
full-covariance layout.

>>> import jax.numpy as jnp, numpy as np
>>> from widelimits import kernels, nets
>>> att = nets.GlobalSelfAttention(4, 8, 8, 2, w_value_std=2.0, b_std=0.5)
>>> x = jnp.array([[[1.0, 0.0]], [[0.6, 0.8]]])  # 2 sequences of 1 position: A = 1
>>> k = kernels.analytic(att, x)  # K = x x^T / 2: ov² K + b², and the NTK adds 2 ov² K
>>> k.nngp.shape
(2, 2, 1, 1)
>>> np.asarray(k.nngp[:, :, 0, 0], float).round(4).tolist()
[[2.25, 1.45], [1.45, 2.25]]
>>> np.asarray(k.ntk[:, :, 0, 0], float).round(4).tolist()
[[4.25, 2.65], [2.65, 4.25]]
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from .. import nets
from .._registry import where
from ._spatial import require_full
from ._state import ANALYTIC

__all__: list[str] = []


def _flat(q, spatial):
    """(..., *S, *S) -> (..., P, P)."""
    k, p = len(spatial), math.prod(spatial)
    return q.reshape(q.shape[: q.ndim - 2 * k] + (p, p))


@ANALYTIC.register(nets.GlobalSelfAttention)
def _attention(layer, s, path):
    if not s.spatial:
        raise ValueError(
            f"kernels.analytic: attention on an input without a sequence axis: "
            f"GlobalSelfAttention {where(path, layer)} attends over the spatial positions of "
            "inputs (n, *spatial, C), but its input has none (shape (n, C), or after Flatten "
            "or global pooling). Give it sequences (n, L, C) or images (n, H, W, C).")
    require_full(layer, s, path)
    spatial = s.spatial
    qk = layer.w_query_std * layer.w_key_std
    ov2 = (layer.w_out_std * layer.w_value_std) ** 2
    b2 = 0.0 if layer.b_std is None else layer.b_std**2

    def weights(var):  # (n, P, P): each input's attention weights
        g = qk * _flat(var, spatial)
        return jax.nn.softmax(g, axis=-1) if layer.mechanism == "softmax" else g

    def own(a, q):  # ov² A q A^T + b² for one input's own (n, P, P) covariance
        t = jnp.einsum("iab,ibc->iac", a, _flat(q, spatial))
        return (ov2 * jnp.einsum("iac,idc->iad", t, a) + b2).reshape(q.shape)

    a1 = weights(s.var1)
    if s.diagonal:  # var1 = nngp = var2: the pairs (x_i, x_i)
        nngp = own(a1, s.nngp)
        ntk = own(a1, s.ntk + 2 * s.nngp)
        return s.replace(var1=nngp, nngp=nngp, var2=nngp, ntk=ntk, gaussian=True,
                         features=layer.features, raw=False)
    a2 = weights(s.var2)

    def pair(q):  # ov² A1 q A2^T + b² for every pair (n1, n2, P, P)
        t = jnp.einsum("iab,ijbc->ijac", a1, _flat(q, spatial))
        return (ov2 * jnp.einsum("ijac,jdc->ijad", t, a2) + b2).reshape(q.shape)

    return s.replace(var1=own(a1, s.var1), nngp=pair(s.nngp), var2=own(a2, s.var2),
                     ntk=pair(s.ntk + 2 * s.nngp), gaussian=True, features=layer.features,
                     raw=False)
