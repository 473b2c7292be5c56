"""Structured NTK of our own network specs: per-layer contractions of Dense layers.

For a Dense layer z = c x W + s b (c = w_std/sqrt(n_in), s = b_std in the NTK parameterization;
c = 1, s = 1 in the standard one), the derivative of output k at input x_i is
dz/dW = c x_i (outer) delta_i^k, with delta_i^k = d f_k(x_i) / d z_i. Its NTK contribution is

    Theta_W+b(x_i, x_j)[k, l] = (c^2 x_i . x_j + s^2) (delta_i^k . delta_j^l),

so only the layer inputs X (n, n_in) and output cotangents delta (k, n, width) are needed: one
forward pass and k backward passes of the batch, then n1 n2 (n_in + k width) multiply-adds per
layer. The Jacobian (n k P entries) is never formed (Novak et al. 2022, "Fast Finite Width Neural
Tangent Kernel", structured derivatives for fully connected layers).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .. import nets

__all__ = ["supports_structured", "dense_taps", "structured_ntk", "readout_nngp"]


def supports_structured(net) -> bool:
    """True if ``net`` is one of our specs whose only trained layers are ``Dense``."""
    if isinstance(net, nets.Dense | nets.LayerNorm | nets.Activation):
        return True
    if isinstance(net, nets.Serial):
        return all(supports_structured(layer) for layer in net.layers)
    if isinstance(net, nets.Residual):
        return supports_structured(net.block)
    if isinstance(net, nets.Parallel):
        return all(supports_structured(b) for b in net.branches)
    return False


def _forward(layer, params, x, probes, taps):
    """``layer.apply(params, x)`` with ``probes[i]`` added to the output of the i-th Dense layer
    and ``(layer, input, output)`` of each appended to ``taps`` (the combinators below mirror
    their ``apply``)."""
    if isinstance(layer, nets.Dense):
        z = layer.apply(params, x)
        taps.append((layer, x, z))
        return z + probes[len(taps) - 1]
    if isinstance(layer, nets.Serial):
        for p, sub in zip(params, layer.layers, strict=True):
            x = _forward(sub, p, x, probes, taps)
        return x
    if isinstance(layer, nets.Residual):
        return x + layer.scale * _forward(layer.block, params, x, probes, taps)
    if isinstance(layer, nets.Parallel):
        outs = [_forward(b, p, x, probes, taps) for p, b in zip(params, layer.branches, strict=True)]
        return sum(outs[1:], outs[0])
    return layer.apply(params, x)  # activations, LayerNorm: no trained parameters


def _dense_shapes(net, params, x):
    """Output shapes of every Dense layer (in forward order) for inputs like x."""
    taps = []

    class _Zeros:
        def __getitem__(self, i):
            return 0.0

    jax.eval_shape(lambda p, x: _forward(net, p, x, _Zeros(), taps), params, x)
    return [jax.ShapeDtypeStruct(z.shape, z.dtype) for _, _, z in taps]


def dense_taps(net, params, x):
    """Forward pass of ``net`` on ``x`` (n, d) recording every Dense layer.

    Returns ``(out, layers, inputs, deltas)``: the output (n, k), the Dense specs, their inputs
    (n, n_in) and the cotangents delta (k, n, width) = d out[:, l] / d z for each output l
    (rows are independent, so one backward pass per output gives every example's delta).
    """
    shapes = _dense_shapes(net, params, x)
    probes = [jnp.zeros(s.shape, s.dtype) for s in shapes]
    taps = []

    def fwd(probes):
        taps.clear()
        out = _forward(net, params, x, probes, taps)
        return out.reshape(x.shape[0], -1), [t[1] for t in taps]

    out, vjp, inputs = jax.vjp(fwd, probes, has_aux=True)
    layers = [t[0] for t in taps]
    k = out.shape[1]
    eye = jnp.eye(k, dtype=out.dtype)
    (deltas,) = jax.vmap(lambda e: vjp(jnp.broadcast_to(e, out.shape)))(eye)
    return out, layers, inputs, deltas


def _coefficients(layer, n_in):
    """(c^2, s^2): the weight and bias factors of a Dense layer's NTK contribution."""
    has_bias = layer.b_std is not None
    if layer.parameterization == "standard":
        return 1.0, 1.0 if has_bias else 0.0
    return layer.w_std**2 / n_in, layer.b_std**2 if has_bias else 0.0


def structured_ntk(net, params, x1, x2, output, diagonal):
    """Empirical NTK of our spec ``net`` by per-layer contractions (see the module docstring).

    ``output``: "trace" (mean over the k outputs) or "full" (k x k blocks). ``diagonal``: only
    Theta(x1_i, x1_i) (x2 ignored); x2=None means x1. Returns (n1, n2), (n1, n2, k, k), (n1,)
    or (n1, k, k).
    """
    _, layers, in1, d1 = dense_taps(net, params, x1)
    if diagonal or x2 is None:
        in2, d2 = in1, d1
    else:
        _, _, in2, d2 = dense_taps(net, params, x2)
    k = d1[0].shape[0]
    total = 0.0
    for layer, a1, a2, e1, e2 in zip(layers, in1, in2, d1, d2, strict=True):
        cw, cb = _coefficients(layer, a1.shape[-1])
        if diagonal:
            g = cw * jnp.sum(a1 * a1, axis=-1) + cb  # (n,)
            if output == "trace":
                total = total + g * jnp.sum(e1 * e1, axis=(0, 2)) / k
            else:
                total = total + g[:, None, None] * jnp.einsum("lib,mib->ilm", e1, e1)
        else:
            g = cw * (a1 @ a2.T) + cb  # (n1, n2)
            if output == "trace":
                total = total + g * jnp.einsum("lib,ljb->ij", e1, e2) / k
            else:
                total = total + g[:, :, None, None] * jnp.einsum("lib,mjb->ijlm", e1, e2)
    return total


def readout_nngp(net, params, x1, x2):
    """E over the readout layer of f(x1) f(x2): (w_std^2 / n) phi(x1) . phi(x2) + b_std^2 with phi
    the features entering the last Dense layer of ``net`` (a ``Serial``). (n1, n2)."""
    if not (isinstance(net, nets.Serial) and net.layers and isinstance(net.layers[-1], nets.Dense)):
        raise ValueError(f"kernels.empirical_nngp: a network spec must be a serial(...) ending in "
                         f"a Dense readout layer, got {net!r}.")
    body, readout = nets.serial(*net.layers[:-1]), net.layers[-1]
    phi1 = body.apply(params[:-1], x1)
    phi2 = phi1 if x2 is None else body.apply(params[:-1], x2)
    b2 = 0.0 if readout.b_std is None else readout.b_std**2
    return readout.w_std**2 * (phi1 @ phi2.T) / phi1.shape[-1] + b2
