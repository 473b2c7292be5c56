"""Infinite-width NNGP and NTK of a network spec (Neal 1996; Lee et al. 2018; Jacot et al. 2018).

The inputs give the first ``KernelState`` (covariances x1 x2^T / d); the registered rules of
``_rules.py`` (and users' ``register_analytic`` rules) carry it through the spec. The same rules
run on the diagonal pairs (x_i, x_i) (``diagonal=True``, shapes (n,)) to give the variances of
tiled kernels.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from .. import nets
from . import _attention, _rules  # noqa: F401  (register the built-in layers' rules)
from ._kernel import Kernel
from ._spatial import NeedsFullCovariance  # (and registers the convolutional rules)
from ._state import KernelState, propagate
from ._tiling import symmetric_blocks, tiled_pair

__all__ = ["analytic"]


def _input_covariances(x1, x2, full):
    """(var1, q12, var2) of the raw inputs (n, *S, C): x x'^T / C per pair of positions (all
    pairs when ``full``, else equal positions), or per input for (n, d)."""
    spatial, c = x1.shape[1:-1], x1.shape[-1]
    p = math.prod(spatial)
    a, b = x1.reshape(x1.shape[0], p, c), x2.reshape(x2.shape[0], p, c)
    if full:
        shape = lambda n: (n,) + spatial + spatial  # noqa: E731
        return (jnp.einsum("ipc,iqc->ipq", a, a).reshape(shape(a.shape[0])) / c,
                jnp.einsum("ipc,jqc->ijpq", a, b).reshape((a.shape[0],) + shape(b.shape[0])) / c,
                jnp.einsum("ipc,iqc->ipq", b, b).reshape(shape(b.shape[0])) / c)
    return (jnp.einsum("ipc,ipc->ip", a, a).reshape(x1.shape[:-1]) / c,
            jnp.einsum("ipc,jpc->ijp", a, b).reshape(x1.shape[:1] + x2.shape[:-1]) / c,
            jnp.einsum("ipc,ipc->ip", b, b).reshape(x2.shape[:-1]) / c)


def _needs_full(net, x):
    """Whether ``net`` on inputs shaped like ``x`` (n, *S, C) needs the covariance between all
    pairs of positions: some layer mixes positions before a Flatten readout, or the output keeps
    positions. Decided by tracing the equal-positions layout on one abstract input."""
    if x.ndim == 2:
        return False
    one = jax.ShapeDtypeStruct((1,) + x.shape[1:], x.dtype)
    try:
        out = jax.eval_shape(lambda x: _kernel_pair(net, x, x, full=False), one)
    except NeedsFullCovariance:
        return True
    return bool(out.spatial)


def _kernel_pair(net, x1, x2, same=False, full=False):
    """Final state for all pairs (x1[i], x2[j]); ``x2=None`` for the symmetric case x2 = x1.

    ``same`` (a bool, possibly traced) says that x2 is x1 given twice: the diagonal of q12 is
    then set to the squared norms, so identical inputs have correlation 1 exactly. ``full``:
    carry all pairs of positions of spatial inputs (else equal positions only).
    """
    if x2 is None:
        x2, same = x1, True
    sq1, q12, sq2 = _input_covariances(x1, x2, full)
    if same is not False:  # identical inputs: c = 1 exactly
        eye = jnp.eye(x1.shape[0], x2.shape[0], dtype=bool) & same
        q12 = jnp.where(eye.reshape(eye.shape + (1,) * (q12.ndim - 2)), sq1[:, None], q12)
    return propagate(net, KernelState(sq1, q12, sq2, jnp.zeros_like(q12), gaussian=False,
                                      features=x1.shape[-1], raw=True, spatial=x1.shape[1:-1],
                                      full=full))


def _kernel_diag(net, x, full):
    """NNGP/NTK of the pairs (x[i], x[i]) -> ((n, ...), (n, ...))."""
    q = _input_covariances(x, x, full)[0]
    s = propagate(net, KernelState(q, q, q, jnp.zeros_like(q), gaussian=False,
                                   features=x.shape[-1], raw=True, diagonal=True,
                                   spatial=x.shape[1:-1], full=full))
    return s.nngp, s.ntk


def _tiled_pair(net, x1, x2, b, full):
    def pair(xa, xb):
        s = _kernel_pair(net, xa, xb, full=full)
        return s.nngp, s.ntk

    return tiled_pair(pair, x1, x2, b)


_SYMMETRIC_TILE = 100  # rows per tile of k(x, x) built from its blocks
_TILE_ENTRIES = 2**18  # entries per array of one tile pair of spatial inputs (1 MiB in float32)


def _symmetric_tiles(n):
    """Number of tiles for ``k(x, x)`` of n inputs (n, d): 1 (one n x n program) below 400
    inputs, else n // 100 up to 16. Measured on 2 CPU cores (erf, depth 3): 1.3-1.4x faster
    than one program at n = 600, 1000 and 4000, none at n = 300; tiles of 100-250 rows keep the
    vectorised loops long while the skipped lower triangle approaches half the work."""
    m = min(n // _SYMMETRIC_TILE, 16)
    return m if m >= 4 else 1


def _spatial_tile(x, full):
    """Rows per tile for spatial inputs: b x b pairs of P (or P²) entries each hold about
    ``_TILE_ENTRIES`` (they stay in cache through the layers; one program over all pairs is
    3-6x slower on 2 CPU cores at 64-128 images 8x8, 3 convs + global pooling); None for
    (n, d) inputs."""
    if x.ndim == 2:
        return None
    per_pair = math.prod(x.shape[1:-1]) ** (2 if full else 1)
    return max(1, math.isqrt(_TILE_ENTRIES // per_pair))


def _symmetric(net, x, m, full, sequential):
    """(nngp, ntk) of x with itself from the m (m + 1) / 2 upper blocks (``symmetric_blocks``)."""
    def block(xa, xb, same):
        s = _kernel_pair(net, xa, xb, same, full)
        return s.nngp, s.ntk

    return symmetric_blocks(block, x, m, sequential=sequential)


@functools.partial(jax.jit, static_argnames=("batch_size", "spatial_out", "full"))
def _analytic(net, x1, x2, batch_size, spatial_out, full):
    n1, n2 = x1.shape[0], (x1 if x2 is None else x2).shape[0]
    tile = _spatial_tile(x1, full)
    if batch_size is None and tile is not None and tile < max(n1, n2):
        if x2 is None and not spatial_out:  # upper tiles one after the other
            nngp, ntk = _symmetric(net, x1, -(-n1 // tile), full, sequential=True)
            return _finish(nngp, ntk, jnp.diagonal(nngp), jnp.diagonal(nngp))
        batch_size = tile
    m = _symmetric_tiles(n1) if x2 is None and not spatial_out else 1
    if (batch_size is None or batch_size >= n1) and m > 1:
        nngp, ntk = _symmetric(net, x1, m, full, sequential=False)
        var1 = var2 = jnp.diagonal(nngp)
    elif batch_size is None or batch_size >= max(n1, n2):
        s = _kernel_pair(net, x1, x2, full=full)
        var1, var2, nngp, ntk = s.var1, s.var2, s.nngp, s.ntk
    else:
        var1, ntk1 = _kernel_diag(net, x1, full)
        var2 = var1 if x2 is None else _kernel_diag(net, x2, full)[0]
        nngp, ntk = _tiled_pair(net, x1, x1 if x2 is None else x2, batch_size, full)
        if x2 is None:
            i = jnp.arange(n1)
            nngp, ntk = nngp.at[i, i].set(var1), ntk.at[i, i].set(ntk1)
    return _finish(nngp, ntk, var1, var2)


def _finish(nngp, ntk, var1, var2):
    finite = jnp.isfinite(nngp).all() & jnp.isfinite(ntk).all()
    return Kernel(nngp=nngp, ntk=ntk, var1=var1, var2=var2), finite


def _check_inputs(name, x, shape=None):
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"kernels.analytic: {name} must have shape (n, d) or channels-last "
                         f"(n, *spatial, C) (batch first), got shape {tuple(x.shape)}.")
    if shape is not None and tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(f"kernels.analytic: x1 and x2 must have the same shape after the batch "
                         f"axis; x1 has shape (n1, {', '.join(map(str, shape))}), {name} has "
                         f"shape {tuple(x.shape)}.")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"kernels.analytic: {name} must be a floating-point array, got dtype "
                        f"{x.dtype}.")
    if not isinstance(x, jax.core.Tracer) and not bool(np.all(np.isfinite(np.asarray(x)))):
        bad = int(np.sum(~np.isfinite(np.asarray(x))))
        raise ValueError(f"kernels.analytic: {name} contains {bad} non-finite value(s) "
                         "(NaN or inf); the kernel would be NaN.")
    return x


def analytic(net, x1, x2=None, *, batch_size: int | None = None) -> Kernel:
    """Infinite-width NNGP and NTK of ``net`` on inputs ``x1`` (n1, d) and ``x2`` (n2, d), or
    channels-last images, sequences, volumes (n, *spatial, C).

    Implements the layer recursions of Lee et al. 2018 (NNGP) and Jacot et al. 2018 (NTK), with
    the standard-parameterization NTK of Sohl-Dickstein et al. 2020, and closed-form or
    Hermite-expanded activation duals (``kernels.dual``). ``x2=None`` means ``x2 = x1``; the
    result is then symmetric to round-off (XLA's vectorised and scalar loops may differ by an
    ulp; Cholesky and ``eigh`` read one triangle). ``batch_size`` computes the (n1, n2) kernels
    in tiles of ``batch_size x batch_size`` to bound memory. Runs of >= 3 identical
    (Dense, activation) or residual blocks are evaluated by one ``lax.scan``, so compile and run
    time grow linearly with depth. Works under ``jit``/``vmap``/``grad`` (the spec's
    ``w_std``/``b_std`` and activation parameters are differentiable leaves) in float32 and
    float64; the dtype follows the inputs. With ``x2=None`` and n >= 400 only the upper
    triangle of tiles is computed and the lower one is its transpose. Raises ``ValueError`` if
    the kernel overflows to inf/NaN (checked when called outside a trace).

    Convolutional nets (``nets.Conv``, pooling, ``Flatten``; Novak et al. 2019, Arora et al.
    2019) carry the covariance between positions. The representation is chosen from the spec:
    when no layer mixes positions before a ``Flatten`` readout, only equal positions
    (O(n1 n2 P) memory and FLOPs per layer for P positions), otherwise all pairs of positions
    (O(n1 n2 P²)); a ``Conv`` costs sum_d |F_d| shifted additions of that array (see
    ``kernels._spatial``). Conventions follow neural-tangents 0.6.5.

    Returns:
      ``Kernel`` with ``nngp``, ``ntk`` (n1, n2) and the NNGP variances ``var1`` (n1,),
      ``var2`` (n2,). The kernel of a k-output network is ``nngp ⊗ I_k`` (same for the NTK).
      A net whose output keeps spatial axes S (no readout) gives ``nngp``, ``ntk``
      (n1, n2, *S, *S) over all pairs of positions and ``var1`` (n1, *S, *S).

    >>> import jax.numpy as jnp, numpy as np
    >>> from widelimits import kernels, nets
    >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> k = kernels.analytic(nets.serial(nets.Dense(1), nets.Relu(), nets.Dense(1)), x)
    >>> np.asarray(k.nngp, float).round(4).tolist()  # inputs of variance 1/2: 1/4, 1/(4 pi)
    [[0.25, 0.0796], [0.0796, 0.25]]
    >>> np.asarray(k.ntk, float).round(4).tolist()   # the first layer adds 0 off the diagonal
    [[0.5, 0.0796], [0.0796, 0.5]]
    """
    if not isinstance(net, nets.Layer):
        raise TypeError(f"kernels.analytic: net must be a widelimits network spec (e.g. "
                        f"nets.serial(...)), got {type(net).__name__}.")
    x1 = _check_inputs("x1", x1)
    if x2 is not None:
        x2 = _check_inputs("x2", x2, x1.shape[1:])
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"kernels.analytic: batch_size must be a positive int or None, "
                             f"got {batch_size!r}.")
    dtype = jnp.result_type(x1.dtype, float)
    x1 = jnp.asarray(x1, dtype)
    x2 = None if x2 is None else jnp.asarray(x2, dtype)
    try:  # a kernel with positions left (no readout) is returned over all their pairs
        spatial_out = len(net.output_shape(x1.shape)) > 2
    except ValueError:  # the rules say what is wrong, naming the layer
        spatial_out = False
    kernel, finite = _analytic(net, x1, x2, batch_size, spatial_out, _needs_full(net, x1))
    if not isinstance(finite, jax.core.Tracer) and not bool(finite):
        raise ValueError(
            f"kernels.analytic: the kernel of {net!r} overflowed to inf/NaN in {x1.dtype} for "
            "these inputs (a kernel that grows with depth, e.g. exp or a large w_std, or very "
            "large inputs). Use float64 (jax_enable_x64), smaller inputs or a shallower net.")
    return kernel


