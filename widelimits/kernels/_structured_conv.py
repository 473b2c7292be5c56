"""Structured NTK terms of layers whose weights are shared across positions: ``nets.Conv``, and
``nets.Dense`` applied position by position (inputs ``(n, *positions, d)``).

Both are ``z(a) = c patch(a) W + s b`` at every output position ``a``, with ``patch(a)`` the
m numbers the layer reads there (a Dense: ``x(a)``, m = d; a Conv: the |F| C_in window of the
padded input at ``strides * a``, wrapped around for "CIRCULAR"). With output cotangents
``delta_i^k(a)`` (w channels, P positions, k outputs) the layer's NTK term is

    Theta(x_i, x_j)[k, l] = c^2 sum_{a, a'} <patch_i(a), patch_j(a')> delta_i^k(a) . delta_j^l(a')
                            + s^2 (sum_a delta_i^k(a)) . (sum_a' delta_j^l(a')),

contracted one of two ways (Novak et al. 2022, "Fast Finite Width Neural Tangent Kernel",
structured derivatives), whichever is cheaper in FLOPs weighted by their measured CPU speed
(``SPEED``) among those holding at most ``MEMORY_BYTES``. Shapes are static, so the choice is
made once per layer, at trace time (``choose``; ``costs`` counts both). N = n1 + n2 inputs (n1
when x2 is x1), k outputs, P output positions, m = |F| C_in (a Dense: n_in), w = C_out:

- ``"gradients"``: per-example weight gradients g_i^k = sum_a patch_i(a) ⊗ delta_i^k(a)
  (m x w per input and output: the layer's share of the Jacobian), then Theta = c^2 g_i^k .
  g_j^l. FLOPs 2 N k P m w + 2 n1 n2 k m w (k^2 for ``output="full"``); memory N k m w. Best
  for many positions and few channels (early layers on large images).
- ``"gram"``: the patch Gram matrix G_ij(a, a') = <patch_i(a), patch_j(a')> times the
  cotangents' Gram matrix, summed over (a, a'). FLOPs 2 n1 n2 P^2 (m + k w) (+ 2 n1 n2 P k^2 w
  for "full"); memory 2 n1 n2 P^2 (n1 n2 P (P + k w) for "full"). Best for few positions and
  many channels or outputs (late layers, after pooling). Holds no per-example gradient.

Both also hold the N P m patches (the layer's input copied |F| / prod(strides) times; strided
slices of the padded input) and, for the bias, the N k w position sums of the cotangents.
"""

from __future__ import annotations

import itertools
import math

import jax.numpy as jnp
from jax import lax

__all__ = ["FORMULATIONS", "MEMORY_BYTES", "SPEED", "choose", "conv_coefficients",
           "conv_contract", "conv_patches", "costs", "positions_contract"]

FORMULATIONS = ("gradients", "gram")
MEMORY_BYTES = 2**30  # the cheaper formulation is skipped if it would hold more than this
# Relative FLOP rates (measured: float32, XLA CPU, 2 cores, 32 Conv shapes n = 16-64, 4x4-32x32
# positions, 3-256 channels, k = 1, 10): forming per-example gradients is a thin, memory-bound
# product (5-40 GFLOP/s); the trace's Gram products run at 20-80 GFLOP/s, the full blocks' (thin
# products and a transpose) at 5-25 GFLOP/s. With these weights the choice was at most 1.18x
# slower than the faster of the two on every measured shape (25 for "trace", 8 for "full").
SPEED = {("gradients", "trace"): 1.0, ("gradients", "full"): 1.0,
         ("gram", "trace"): 3.0, ("gram", "full"): 0.75}


def conv_patches(layer, x):
    """(n, P, |F| C_in): the input window of ``layer`` (a ``nets.Conv``) at each of its P output
    positions, from ``x`` (n, *lead, *spatial, C_in) (extra ``lead`` axes count as positions).
    Strided slices of the padded input, no convolution."""
    s = len(layer.filter_shape)
    spatial, c_in = x.shape[-s - 1:-1], x.shape[-1]
    xb = x.reshape((-1,) + x.shape[-s - 1:])
    if layer.padding == "VALID":
        pads = [(0, 0)] * s
    else:
        pads = lax.padtype_to_pads(spatial, layer.filter_shape, layer.strides, "SAME")
    mode = "wrap" if layer.padding == "CIRCULAR" else "constant"
    xb = jnp.pad(xb, [(0, 0)] + list(pads) + [(0, 0)], mode=mode)
    out = [-(-(n - f + 1) // st) for n, f, st in zip(xb.shape[1:-1], layer.filter_shape,
                                                     layer.strides, strict=True)]
    windows = []
    for b in itertools.product(*(range(f) for f in layer.filter_shape)):
        start = (0, *b, 0)
        limit = (xb.shape[0], *(o + st * (m - 1) + 1 for o, st, m in
                               zip(b, layer.strides, out, strict=True)), c_in)
        windows.append(lax.slice(xb, start, limit, (1, *layer.strides, 1)))
    patches = jnp.stack(windows, axis=-2)  # (n * lead, *out, |F|, C_in)
    return patches.reshape(x.shape[0], -1, len(windows) * c_in)


def costs(n1, n2, same, k, p, m, w, output, itemsize):
    """{formulation: (FLOPs, bytes)} of the weight term for n1 x n2 inputs with P = ``p``
    positions, ``m`` numbers per patch, ``w`` output channels and ``k`` outputs; ``same``:
    the second batch is the first (its gradients are reused)."""
    kk = k if output == "trace" else k * k
    n_grad = n1 if same else n1 + n2
    grads = (2 * n_grad * k * p * m * w + 2 * n1 * n2 * kk * m * w, n_grad * k * m * w)
    if output == "trace":
        gram = (2 * n1 * n2 * p * p * (m + k * w) + n1 * n2 * p * p, 2 * n1 * n2 * p * p)
    else:
        gram = (2 * n1 * n2 * p * p * (m + k * w) + 2 * n1 * n2 * p * kk * w,
                n1 * n2 * p * (p + k * w))
    return {"gradients": (grads[0], grads[1] * itemsize), "gram": (gram[0], gram[1] * itemsize)}


def choose(n1, n2, same, k, p, m, w, output, itemsize):
    """The formulation that ``positions_contract`` uses: the cheaper in weighted FLOPs (see
    ``SPEED``) among those holding at most ``MEMORY_BYTES`` (else the one holding less)."""
    c = costs(n1, n2, same, k, p, m, w, output, itemsize)
    fits = [f for f in FORMULATIONS if c[f][1] <= MEMORY_BYTES]
    if not fits:
        return min(FORMULATIONS, key=lambda f: c[f][1])
    return min(fits, key=lambda f: c[f][0] / SPEED[f, output])


def _weight_gradients(p, d):
    """(n, m, k w): sum_a p[i, a, :] ⊗ d[k, i, a, :], one (m, P) x (P, k w) product per example i
    (measured the fastest layout of this product on CPU)."""
    k, n, npos, w = d.shape
    return jnp.matmul(p.transpose(0, 2, 1), d.transpose(1, 2, 0, 3).reshape(n, npos, k * w))


def _gram_full(p1, p2, d1, d2):
    """(n1, n2, k, k): sum_{a, b} <p1[i, a], p2[j, b]> d1[k, i, a] . d2[l, j, b] as three
    products (batched over j, then over i) with one transpose of n1 n2 P k w numbers between."""
    k, n1, p, w = d1.shape
    n2 = p2.shape[0]
    gram = lax.dot_general(p2, p1, (((2,), (2,)), ((), ()))).reshape(n2, p, n1 * p)  # j, b, ia
    e2 = d2.transpose(1, 2, 0, 3).reshape(n2, p, k * w)  # j, b, lw
    t = lax.dot_general(gram, e2, (((1,), (1,)), ((0,), (0,))))  # j, ia, lw
    t = t.reshape(n2, n1, p, k, w).transpose(1, 0, 3, 2, 4).reshape(n1, n2 * k, p * w)
    e1 = d1.transpose(1, 2, 3, 0).reshape(n1, p * w, k)  # i, aw, k
    out = lax.dot_general(t, e1, (((2,), (1,)), ((0,), (0,))))  # i, jl, k
    return out.reshape(n1, n2, k, k).transpose(0, 1, 3, 2)


def positions_contract(cw, cb, p1, p2, d1, d2, output, formulation=None):
    """NTK term of a layer shared over positions (see the module docstring).

    ``p1`` (n1, P, m), ``p2`` (n2, P, m): patches; ``d1`` (k, n1, P, w), ``d2`` (k, n2, P, w):
    output cotangents; ``cw``, ``cb``: the weight and bias factors c^2, s^2. ``p2 is p1`` and
    ``d2 is d1`` reuse the first batch's work. ``formulation``: one of ``FORMULATIONS`` or None
    (the cheaper, ``choose``). Returns (n1, n2) for ``output="trace"`` (mean over k = l) or
    (n1, n2, k, k) for "full".
    """
    same = p2 is p1 and d2 is d1
    k, n1, p, w = d1.shape
    n2, m = p2.shape[0], p1.shape[-1]
    if formulation is None:
        formulation = choose(n1, n2, same, k, p, m, w, output, jnp.dtype(d1.dtype).itemsize)
    if formulation == "gradients":
        g1 = _weight_gradients(p1, d1)
        g2 = g1 if same else _weight_gradients(p2, d2)
        if output == "trace":  # sum over k, w, m at once: one (n1, X) x (X, n2) product
            weight = g1.reshape(n1, -1) @ g2.reshape(n2, -1).T / k
        else:  # (i, k, j, l) contracting m and w
            g1, g2 = g1.reshape(n1, m, k, w), g2.reshape(n2, m, k, w)
            weight = lax.dot_general(g1, g2, (((1, 3), (1, 3)), ((), ()))).transpose(0, 2, 1, 3)
    elif formulation == "gram":
        gram = jnp.einsum("iam,jbm->ijab", p1, p2)
        if output == "trace":
            weight = jnp.sum(gram * jnp.einsum("kiaw,kjbw->ijab", d1, d2), axis=(2, 3)) / k
        else:
            weight = _gram_full(p1, p2, d1, d2)
    else:
        raise ValueError(f"positions_contract: formulation must be one of {FORMULATIONS} or "
                         f"None, got {formulation!r}.")
    total = cw * weight
    if isinstance(cb, (int, float)) and cb == 0:
        return total
    s1, s2 = jnp.sum(d1, axis=2), jnp.sum(d2, axis=2)  # (k, n, w)
    bias = (jnp.einsum("kiw,kjw->ij", s1, s2) / k if output == "trace"
            else jnp.einsum("kiw,ljw->ijkl", s1, s2))
    return total + cb * bias


def conv_coefficients(layer, c_in):
    """(c^2, s^2): the weight and bias factors of a Conv layer's NTK term."""
    has_bias = layer.b_std is not None
    if layer.parameterization == "standard":
        return 1.0, 1.0 if has_bias else 0.0
    return (layer.w_std**2 / (c_in * math.prod(layer.filter_shape)),
            layer.b_std**2 if has_bias else 0.0)


def conv_contract(layer, params, x1, x2, d1, d2, output):
    """``Tape.tap`` contraction of a ``nets.Conv``: its NTK term from its inputs x (n, ...,
    C_in) and output cotangents d (k, n, ..., C_out), by ``positions_contract``.

    >>> import jax, jax.numpy as jnp
    >>> from widelimits import nets
    >>> conv = nets.Conv(2, (3,), padding="CIRCULAR", b_std=None)
    >>> x = jnp.ones((1, 4, 1))
    >>> d = jnp.ones((1, 1, 4, 2))   # every output position and channel: 1
    >>> float(conv_contract(conv, None, x, x, d, d, "trace")[0, 0])   # (1/3) 4 4 3 2
    32.0
    """
    cw, cb = conv_coefficients(layer, x1.shape[-1])
    p1 = conv_patches(layer, x1)
    p2 = p1 if x2 is x1 else conv_patches(layer, x2)
    flat = lambda d, n: d.reshape(d.shape[0], n, -1, d.shape[-1])
    e1 = flat(d1, x1.shape[0])
    e2 = e1 if d2 is d1 else flat(d2, x2.shape[0])
    return positions_contract(cw, cb, p1, p2, e1, e2, output)
