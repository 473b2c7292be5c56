"""The infinite-width rules of convolution, pooling and flattening (Novak et al. 2019, CNN-GP;
Arora et al. 2019, CNTK; Garriga-Alonso et al. 2019), in neural-tangents 0.6.5's conventions.

The state carries, for every pair of inputs, the covariance between positions: in full,
K[a, a'] (``state.full``), or only its diagonal K[a, a] when no layer mixes positions before
the readout (``Flatten`` needs only the diagonal). With F the filter window and s the strides:

- ``Conv``: K'[a, a'] = (w² / |F|) sum_{b in F} K[s a + b, s a' + b] + b²: the covariance
  summed over the *same* offset on both sides, i.e. a diagonal filter; it maps the diagonal
  a = a' to itself. The filter is a product over spatial axes, so the sum is taken one axis
  (pair) at a time: sum_d |F_d| shifted copies instead of |F|, no dense 2k-D convolution.
  The NTK: Theta' = K' + (w² / |F|) sum_b Theta[s a + b, s a' + b] (NTK parameterization),
  or C_in |F| (1/|F|) sum_b K[...] + w² (1/|F|) sum_b Theta[...] + 1 (standard, as ``Dense``
  with fan-in C_in |F|). Zeros padded under "SAME" contribute 0; "CIRCULAR" wraps.
- ``AvgPool``/``SumPool``: K'[a, a'] = c² sum_{b, b' in w} K[s a + b, s a' + b'] (c = 1/|w|
  or 1): independent window sums on the two sides; the NTK alike.
- ``GlobalAvgPool``/``GlobalSumPool``: the mean (sum) of K over all pairs of positions.
- ``Flatten``: the mean of K[a, a] over positions (the next ``Dense`` has fan-in P C).

FLOPs per pair of inputs and per layer: ``Conv`` sum_d |F_d| P (diagonal layout) or
sum_d |F_d| P² (full layout), for the NNGP and again for the NTK; memory P or P² per pair.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax import lax

from .. import nets
from .._registry import where
from ._state import ANALYTIC

__all__ = ["NeedsFullCovariance", "require_full"]


class NeedsFullCovariance(Exception):
    """Raised by a rule that mixes positions when the state carries only the diagonal positions;
    ``kernels.analytic`` then starts again with the full covariance."""


def require_full(layer, s, path):
    """Raise ``NeedsFullCovariance`` unless ``s`` carries all pairs of positions (or none)."""
    if s.spatial and not s.full:
        raise NeedsFullCovariance(where(path, layer))


def _check_spatial(layer, s, path, k):
    if len(s.spatial) != k:
        got = ("inputs without spatial axes (shape (n, C), or after Flatten or global "
               "pooling)" if not s.spatial else f"inputs with spatial shape {s.spatial}")
        raise ValueError(f"kernels.analytic: {type(layer).__name__} {where(path, layer)} works "
                         f"on inputs (n, *spatial, C) with {k} spatial "
                         f"{'axis' if k == 1 else 'axes'}; it gets {got}.")


def _output_spatial(layer, s, path):
    try:
        return tuple(layer.output_shape((1,) + s.spatial + (1,))[1:-1])
    except ValueError as e:
        raise ValueError(f"kernels.analytic: {where(path, layer)} on spatial shape "
                         f"{s.spatial}: {e}") from None


def _pads(spatial, window, strides, padding):
    if padding == "VALID":
        return [(0, 0)] * len(spatial)
    return lax.padtype_to_pads(spatial, window, strides, "SAME")


def _window_sum(q, axes, window, stride, pad, padding, out):
    """sum_{b < window} q[s a + b] along each of ``axes`` at once (the same offset b on all of
    them), after padding them; ``out`` positions per axis."""
    if pad != (0, 0):
        widths = [(0, 0)] * q.ndim
        for ax in axes:
            widths[ax] = pad
        q = jnp.pad(q, widths, mode="wrap" if padding == "CIRCULAR" else "constant")
    total = None
    for b in range(window):
        t = q
        for ax in axes:
            t = lax.slice_in_dim(t, b, b + (out - 1) * stride + 1, stride, ax % q.ndim)
        total = t if total is None else total + t
    return total


def _conv_of(window, strides, padding, s, out_spatial, paired):
    """q -> sum over the filter (``paired``: the same offset on both position sets of a full
    covariance; else each set on its own, as pooling does) of the trailing position axes."""
    k = len(s.spatial)
    pads = _pads(s.spatial, window, strides, padding)

    def apply(q):
        # Materialise q: fused into the shifted copies below, XLA would recompute its producer
        # (an activation's dual) once per copy (measured 4x slower for two 3x3 convolutions).
        q = lax.optimization_barrier(q)
        for d in range(k):
            args = (window[d], strides[d], pads[d], padding, out_spatial[d])
            if not s.full:
                q = _window_sum(q, (d - k,), *args)
            elif paired:
                q = _window_sum(q, (d - 2 * k, d - k), *args)
            else:
                q = _window_sum(_window_sum(q, (d - 2 * k,), *args), (d - k,), *args)
        return q

    return apply


@ANALYTIC.register(nets.Conv)
def _conv(layer, s, path):
    _check_spatial(layer, s, path, len(layer.filter_shape))
    out_spatial = _output_spatial(layer, s, path)
    size = math.prod(layer.filter_shape)
    conv = _conv_of(layer.filter_shape, layer.strides, layer.padding, s, out_spatial,
                    paired=True)
    avg = lambda q: conv(q) / size  # noqa: E731
    w2 = layer.w_std**2
    b2 = 0.0 if layer.b_std is None else layer.b_std**2
    out = s.map(lambda q: w2 * avg(q) + b2)
    if layer.parameterization == "ntk":
        ntk = w2 * avg(s.ntk) + out.nngp
    else:  # trained W ~ N(0, w^2 / (C_in |F|)) contributes its fan-in C_in |F| times avg(K)
        ntk = (s.features * size) * avg(s.nngp) + w2 * avg(s.ntk) + (
            0.0 if layer.b_std is None else 1.0)
    return out.replace(ntk=ntk, gaussian=True, features=layer.features, raw=False,
                       spatial=out_spatial)


@ANALYTIC.register(nets.AvgPool, nets.SumPool)
def _window_pool(layer, s, path):
    _check_spatial(layer, s, path, len(layer.window_shape))
    require_full(layer, s, path)
    out_spatial = _output_spatial(layer, s, path)
    pool = _conv_of(layer.window_shape, layer.strides, layer.padding, s, out_spatial,
                    paired=False)
    c2 = (1.0 / math.prod(layer.window_shape)) ** 2 if isinstance(layer, nets.AvgPool) else 1.0
    out = s.map(lambda q: c2 * pool(q))
    return out.replace(ntk=c2 * pool(s.ntk), spatial=out_spatial)


@ANALYTIC.register(nets.GlobalAvgPool, nets.GlobalSumPool)
def _global_pool(layer, s, path):
    if not s.spatial:
        raise ValueError(f"kernels.analytic: {type(layer).__name__} {where(path, layer)} pools "
                         "over spatial axes, but its inputs have none left (shape (n, C), or "
                         "after Flatten or another global pooling).")
    require_full(layer, s, path)
    axes = tuple(range(-2 * len(s.spatial), 0))
    mean = isinstance(layer, nets.GlobalAvgPool)
    reduce = lambda q: (jnp.mean if mean else jnp.sum)(lax.optimization_barrier(q), axis=axes)  # noqa: E731
    out = s.map(reduce)
    return out.replace(ntk=reduce(s.ntk), spatial=(), full=False)


@ANALYTIC.register(nets.Flatten)
def _flatten(layer, s, path):
    if not s.spatial:
        return s
    k, p = len(s.spatial), math.prod(s.spatial)

    def mean_diagonal(q):  # mean over positions of K[a, a]
        if s.full:
            q = q.reshape(q.shape[: q.ndim - 2 * k] + (p, p))
            return jnp.trace(q, axis1=-2, axis2=-1) / p
        return jnp.mean(q, axis=tuple(range(-k, 0)))

    out = s.map(mean_diagonal)
    return out.replace(ntk=mean_diagonal(s.ntk), spatial=(), full=False,
                       features=s.features * p)
