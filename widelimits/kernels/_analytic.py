"""Infinite-width NNGP and NTK of a network spec (Neal 1996; Lee et al. 2018; Jacot et al. 2018).

The interpreter walks the spec tree with a ``_State`` holding, for every pair of inputs, the
pre-activation covariance q12 (n1, n2), its diagonals q11 (n1, 1) and q22 (1, n2), and the NTK
t12. Each layer type has one rule in ``RULES`` (formulas: ../shared/theory/kernels.md).
The same rules run on the diagonal (shapes (n,)) to give the variances.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from .. import nets
from ._arccos import safe_sqrt
from ._dual import dual
from ._kernel import Kernel
from ._tiling import symmetric_blocks, tiled_pair

__all__ = ["analytic", "RULES"]


@dataclasses.dataclass(frozen=True)
class _State:
    q11: jax.Array
    q12: jax.Array
    q22: jax.Array
    t12: jax.Array
    gaussian: bool  # a centred Gaussian process at infinite width (output of a fresh Dense)
    features: int  # feature count of the finite network here (standard-NTK fan-in)
    # "pair": q11 (n1, 1), q22 (1, n2);
    # "diag": the pairs (x_i, x_i), q11 = q12 = q22 of shape (n,) (one dual evaluation).
    mode: str = "pair"
    raw: bool = False  # the network input itself (fixed fan-in d), before any Dense layer

    def replace(self, **kw):
        return dataclasses.replace(self, **kw)

    def map(self, fn):
        return self.replace(q11=fn(self.q11), q12=fn(self.q12), q22=fn(self.q22))


def _where(path, layer):
    return f"{path} ({layer!r})" if path else repr(layer)


def _dense(layer, s, path):
    if s.raw and layer.weights in ("low_rank", "sparse"):
        raise ValueError(
            f"kernels.analytic: Dense(width={layer.width}, weights={layer.weights!r}) at "
            f"{path or 'the top level'} acts on the network input, whose fan-in d "
            "stays fixed at infinite width; with that ensemble its output is not "
            "Gaussian there and the Gaussian-weight kernel would be wrong. Use "
            "weights='gaussian' or 'orthogonal' for the first layer (low-rank and sparse "
            "ensembles share the Gaussian NNGP only in layers whose fan-in grows).")
    w2 = layer.w_std**2
    b2 = 0.0 if layer.b_std is None else layer.b_std**2
    out = s.map(lambda q: w2 * q + b2)
    if layer.parameterization == "ntk":
        t12 = w2 * s.t12 + out.q12
    else:  # Sohl-Dickstein et al. 2020: trained W ~ N(0, w^2/n_in) contributes n_in * K_in.
        t12 = s.features * s.q12 + w2 * s.t12 + (0.0 if layer.b_std is None else 1.0)
    return out.replace(t12=t12, gaussian=True, features=layer.width, raw=False)


def _require_gaussian(layer, s, path, what):
    if not s.gaussian:
        raise ValueError(
            f"kernels.analytic: {what} {_where(path, layer)} receives an input that is not a "
            "centred Gaussian process at infinite width (it must follow a Dense layer, possibly "
            "through LayerNorm, residual or parallel sums of Dense outputs); got the raw "
            "network input or an activation's output. Put a nets.Dense before it.")


def _activation(layer, s, path):
    _require_gaussian(layer, s, path, "activation")
    phi = dual(layer)
    v, dv = phi(s.q11, s.q12, s.q22)
    if s.mode == "diag":
        q11 = q22 = v
    else:
        q11 = phi(s.q11, s.q11, s.q11)[0]
        q22 = phi(s.q22, s.q22, s.q22)[0]
    return s.replace(q11=q11, q12=v, q22=q22, t12=dv * s.t12, gaussian=False)


def _layer_norm(layer, s, path):
    _require_gaussian(layer, s, path, "LayerNorm")
    norm = safe_sqrt(s.q11 * s.q22)
    inv = jnp.where(norm > 0, 1 / jnp.where(norm > 0, norm, 1), 0)
    ones = lambda q: jnp.where(q > 0, 1.0, 0.0).astype(q.dtype)
    return s.replace(q11=ones(s.q11), q12=s.q12 * inv, q22=ones(s.q22), t12=s.t12 * inv)


_MIN_REPEATS = 3  # shorter runs are unrolled: a scan pays off only from two iterations on


class _Unstable(Exception):
    """A repeated unit changes the state's static metadata, so it cannot be a scan body."""


def _repeats(layers, i, p):
    """How many consecutive units ``layers[i:i+p]``, ``layers[i+p:i+2p]``, ... share one
    pytree structure (same layer types and static fields; only the leaves differ)."""
    structure = lambda j: jax.tree_util.tree_structure(layers[j:j + p])
    first, k = structure(i), 1
    while i + (k + 1) * p <= len(layers) and structure(i + k * p) == first:
        k += 1
    return k


def _scan_units(units, s, path):
    """Propagate ``s`` through structurally identical ``units`` with one ``lax.scan``.

    The first unit runs unrolled (it fixes the feature count and Gaussianity of the state);
    the rest share its traced body, so compile time and the fused XLA program no longer grow
    with depth (an unrolled chain is fused into every later n x n operation).
    """
    s = _serial_layers(units[0], s, path[0])
    leaves = [jax.tree_util.tree_leaves(u) for u in units[1:]]
    dtype = jnp.result_type(s.q12, s.t12, *(v for vs in leaves for v in vs))
    stacked = [jnp.stack([jnp.asarray(v, dtype) for v in vs]) for vs in zip(*leaves, strict=True)]
    treedef = jax.tree_util.tree_structure(units[1])
    start = s.map(lambda q: q.astype(dtype)).replace(t12=s.t12.astype(dtype))

    def body(carry, unit_leaves):
        q11, q12, q22, t12 = carry
        unit = jax.tree_util.tree_unflatten(treedef, unit_leaves)
        out = _serial_layers(unit, start.replace(q11=q11, q12=q12, q22=q22, t12=t12), path[1])
        if (out.gaussian, out.features) != (start.gaussian, start.features):
            raise _Unstable
        return tuple(q.astype(dtype) for q in (out.q11, out.q12, out.q22, out.t12)), None

    carry = (start.q11, start.q12, start.q22, start.t12)
    (q11, q12, q22, t12), _ = jax.lax.scan(body, carry, stacked)
    return start.replace(q11=q11, q12=q12, q22=q22, t12=t12)


def _serial_layers(layers, s, first):
    """Unrolled propagation through ``layers``, the first of which is ``serial[first]``."""
    for layer in layers:
        s = _propagate(layer, s, first)
        first = _next_path(first)
    return s


def _next_path(path):
    head, _, index = path.rstrip("].").rpartition("[")
    return f"{head}[{int(index) + 1}]."


def _serial(layer, s, path):
    """Layers in sequence; runs of >= 3 identical units of 1 or 2 layers (an MLP's
    (Dense, activation) blocks, a ResNet's residual blocks) are scanned, the rest unrolled."""
    layers, i = layer.layers, 0
    here = lambda j: f"{path}serial[{j}]."
    while i < len(layers):
        p, k = max(((p, _repeats(layers, i, p)) for p in (1, 2) if i + p <= len(layers)),
                   key=lambda pk: pk[0] * pk[1])
        if k >= _MIN_REPEATS:
            units = [layers[i + j * p: i + (j + 1) * p] for j in range(k)]
            try:
                s = _scan_units(units, s, (here(i), here(i + p)))
                i += k * p
                continue
            except _Unstable:
                pass
        s = _propagate(layers[i], s, here(i))
        i += 1
    return s


def _sum_branches(states, path, owner):
    non_gaussian = [i for i, b in enumerate(states) if not b.gaussian]
    if len(non_gaussian) > 1:
        raise ValueError(
            f"kernels.analytic: {owner} at {path or 'the top level'} sums branches "
            f"{non_gaussian} whose outputs are not fresh Gaussian processes; their "
            "cross-covariance is not determined by the kernel. At most one branch may be "
            "the identity or end in an activation; the others must end in a Dense layer.")
    features = {b.features for b in states}
    if len(features) != 1:
        raise ValueError(f"kernels.analytic: {owner} at {path or 'the top level'} sums "
                         f"branches with different feature counts {sorted(features)}.")
    total = states[0]
    for b in states[1:]:
        total = total.replace(q11=total.q11 + b.q11, q12=total.q12 + b.q12,
                              q22=total.q22 + b.q22, t12=total.t12 + b.t12)
    return total.replace(gaussian=not non_gaussian)


def _residual(layer, s, path):
    block = _propagate(layer.block, s, f"{path}residual.")
    if not block.gaussian:
        raise ValueError(f"kernels.analytic: the block of {_where(path, layer)} must end in a "
                         "Dense layer (its output must be a fresh Gaussian process independent "
                         "of the skip connection); it ends in an activation or is the identity.")
    scale2 = layer.scale**2
    block = block.map(lambda q: scale2 * q).replace(t12=scale2 * block.t12)
    return _sum_branches([s, block], path, "residual")


def _parallel(layer, s, path):
    states = [_propagate(b, s, f"{path}parallel[{i}].") for i, b in enumerate(layer.branches)]
    return _sum_branches(states, path, "parallel")


RULES = {
    nets.Dense: _dense,
    nets.LayerNorm: _layer_norm,
    nets.Serial: _serial,
    nets.Residual: _residual,
    nets.Parallel: _parallel,
}


def _propagate(layer, s, path=""):
    if isinstance(layer, nets.Activation):
        return _activation(layer, s, path)
    rule = RULES.get(type(layer))
    if rule is None:
        raise TypeError(f"kernels.analytic: no infinite-width rule for layer "
                        f"{type(layer).__name__} at {path or 'the top level'}; supported: "
                        f"{sorted(t.__name__ for t in RULES)} and activations "
                        "(see kernels.dual).")
    return rule(layer, s, path)


def _kernel_pair(net, x1, x2, same=False):
    """Final state for all pairs (x1[i], x2[j]); ``x2=None`` for the symmetric case x2 = x1.

    ``same`` (a bool, possibly traced) says that x2 is x1 given twice: the diagonal of q12 is
    then set to the squared norms, so identical inputs have correlation 1 exactly.
    """
    if x2 is None:
        x2, same = x1, True
    d = x1.shape[-1]
    sq1, sq2 = jnp.sum(x1 * x1, axis=-1) / d, jnp.sum(x2 * x2, axis=-1) / d
    q12 = x1 @ x2.T / d
    if same is not False:  # identical inputs: c = 1 exactly
        q12 = jnp.where(jnp.eye(x1.shape[0], x2.shape[0], dtype=bool) & same, sq1[:, None], q12)
    s = _State(sq1[:, None], q12, sq2[None, :], jnp.zeros_like(q12), False, d, raw=True)
    return _propagate(net, s)


def _kernel_diag(net, x):
    """NNGP/NTK of the pairs (x[i], x[i]) -> ((n,), (n,))."""
    d = x.shape[-1]
    q = jnp.sum(x * x, axis=-1) / d
    s = _propagate(net, _State(q, q, q, jnp.zeros_like(q), False, d, "diag", raw=True))
    return s.q12, s.t12


def _tiled_pair(net, x1, x2, b):
    def pair(xa, xb):
        s = _kernel_pair(net, xa, xb)
        return s.q12, s.t12

    return tiled_pair(pair, x1, x2, b)


_SYMMETRIC_TILE = 100  # rows per tile of k(x, x) built from its blocks


def _symmetric_tiles(n):
    """Number of tiles for ``k(x, x)`` of n inputs: 1 (one n x n program) below 400 inputs,
    else n // 100 up to 16. Measured on 2 CPU cores (erf, depth 3): 1.3-1.4x faster than one
    program at n = 600, 1000 and 4000, none at n = 300; tiles of 100-250 rows keep the
    vectorised loops long while the skipped lower triangle approaches half the work."""
    m = min(n // _SYMMETRIC_TILE, 16)
    return m if m >= 4 else 1


def _symmetric(net, x, m):
    """(nngp, ntk) of x with itself from the m (m + 1) / 2 upper blocks (``symmetric_blocks``)."""
    def block(xa, xb, same):
        s = _kernel_pair(net, xa, xb, same)
        return s.q12, s.t12

    return symmetric_blocks(block, x, m)


@functools.partial(jax.jit, static_argnames=("batch_size",))
def _analytic(net, x1, x2, batch_size):
    n1, n2 = x1.shape[0], (x1 if x2 is None else x2).shape[0]
    m = _symmetric_tiles(n1) if x2 is None else 1
    if (batch_size is None or batch_size >= n1) and m > 1:
        nngp, ntk = _symmetric(net, x1, m)
        var1 = var2 = jnp.diagonal(nngp)
    elif batch_size is None or batch_size >= max(n1, n2):
        s = _kernel_pair(net, x1, x2)
        var1, var2 = s.q11[:, 0], s.q22[0, :]
        nngp, ntk = s.q12, s.t12
    else:
        var1, ntk1 = _kernel_diag(net, x1)
        var2 = var1 if x2 is None else _kernel_diag(net, x2)[0]
        nngp, ntk = _tiled_pair(net, x1, x1 if x2 is None else x2, batch_size)
        if x2 is None:
            i = jnp.arange(n1)
            nngp, ntk = nngp.at[i, i].set(var1), ntk.at[i, i].set(ntk1)
    finite = jnp.isfinite(nngp).all() & jnp.isfinite(ntk).all()
    return Kernel(nngp=nngp, ntk=ntk, var1=var1, var2=var2), finite


def _check_inputs(name, x, d=None):
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"kernels.analytic: {name} must have shape (n, d) (batch first), got "
                         f"shape {tuple(x.shape)}.")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"kernels.analytic: {name} must be a floating-point array, got dtype "
                        f"{x.dtype}.")
    if d is not None and x.shape[1] != d:
        raise ValueError(f"kernels.analytic: x1 and x2 must have the same number of features; "
                         f"x1 has {d}, {name} has shape {tuple(x.shape)}.")
    if not isinstance(x, jax.core.Tracer) and not bool(np.all(np.isfinite(np.asarray(x)))):
        bad = int(np.sum(~np.isfinite(np.asarray(x))))
        raise ValueError(f"kernels.analytic: {name} contains {bad} non-finite value(s) "
                         "(NaN or inf); the kernel would be NaN.")
    return x


def analytic(net, x1, x2=None, *, batch_size: int | None = None) -> Kernel:
    """Infinite-width NNGP and NTK of ``net`` on inputs ``x1`` (n1, d) and ``x2`` (n2, d).

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

    Returns:
      ``Kernel`` with ``nngp``, ``ntk`` (n1, n2) and the NNGP variances ``var1`` (n1,),
      ``var2`` (n2,). The kernel of a k-output network is ``nngp ⊗ I_k`` (same for the NTK).
    """
    if not isinstance(net, nets.Layer):
        raise TypeError(f"kernels.analytic: net must be a widelimits network spec (e.g. "
                        f"nets.serial(...)), got {type(net).__name__}.")
    x1 = _check_inputs("x1", x1)
    if x2 is not None:
        x2 = _check_inputs("x2", x2, x1.shape[1])
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"kernels.analytic: batch_size must be a positive int or None, "
                             f"got {batch_size!r}.")
    dtype = jnp.result_type(x1.dtype, float)
    x1 = jnp.asarray(x1, dtype)
    x2 = None if x2 is None else jnp.asarray(x2, dtype)
    kernel, finite = _analytic(net, x1, x2, batch_size)
    if not isinstance(finite, jax.core.Tracer) and not bool(finite):
        raise ValueError(
            f"kernels.analytic: the kernel of {net!r} overflowed to inf/NaN in {x1.dtype} for "
            "these inputs (a kernel that grows with depth, e.g. exp or a large w_std, or very "
            "large inputs). Use float64 (jax_enable_x64), smaller inputs or a shallower net.")
    return kernel


