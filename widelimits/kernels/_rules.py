"""The infinite-width rules of the built-in layers (Lee et al. 2018, NNGP; Jacot et al. 2018,
NTK; Sohl-Dickstein et al. 2020, standard-parameterization NTK).

With (var1, nngp, var2) = (K11, K12, K22) the covariances of a layer's input and Theta its NTK:

- ``Dense`` (weights w_std, bias b_std, fan-in n): K' = w² K + b²; NTK parameterization
  Theta' = w² Theta + K' (Jacot et al. 2018, Thm. 1); standard parameterization
  Theta' = n K12 + w² Theta + [bias] (Sohl-Dickstein et al. 2020, eq. 8).
- activation phi: K' = V(K11, K12, K22), Theta' = Vdot(K11, K12, K22) Theta with
  (V, Vdot) = ``kernels.dual(phi)`` (needs a Gaussian input, i.e. after a Dense).
- ``LayerNorm`` after a Dense: K12' = K12 / sqrt(K11 K22), Theta' = Theta / sqrt(K11 K22).
- ``residual(block, scale)``: K' = K + scale² K_block (the block ends in a fresh Dense, so its
  output is independent of the skip); ``parallel``: the branches' kernels add.
- ``serial``: the layers in turn; runs of >= 3 identical units (``nets.runs``) share one
  ``lax.scan`` body, so compile time does not grow with depth.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .. import nets
from .._registry import where
from ._arccos import safe_sqrt
from ._dual import DUALS
from ._state import ANALYTIC, propagate

__all__ = ["MIN_REPEATS"]

MIN_REPEATS = 3  # shorter runs are unrolled: a scan pays off only from two iterations on


@ANALYTIC.register(nets.Dense)
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
        ntk = w2 * s.ntk + out.nngp
    else:  # Sohl-Dickstein et al. 2020: trained W ~ N(0, w^2/n_in) contributes n_in * K_in.
        ntk = s.features * s.nngp + w2 * s.ntk + (0.0 if layer.b_std is None else 1.0)
    return out.replace(ntk=ntk, gaussian=True, features=layer.width, raw=False)


def _require_gaussian(layer, s, path, what):
    if not s.gaussian:
        raise ValueError(
            f"kernels.analytic: {what} {where(path, layer)} receives an input that is not a "
            "centred Gaussian process at infinite width (it must follow a Dense layer, possibly "
            "through LayerNorm, residual or parallel sums of Dense outputs); got the raw "
            "network input or an activation's output. Put a nets.Dense before it.")


@ANALYTIC.register(nets.Activation)
def _activation(layer, s, path):
    _require_gaussian(layer, s, path, "activation")
    phi = DUALS.rule(layer, path)
    v1, v2 = s.pair_variances()
    v, dv = phi(layer, v1, s.nngp, v2)
    if s.diagonal:
        var1 = var2 = v
    else:
        a1, b1 = s.own_variances(s.var1)
        a2, b2 = s.own_variances(s.var2)
        var1, var2 = phi(layer, a1, s.var1, b1)[0], phi(layer, a2, s.var2, b2)[0]
    return s.replace(var1=var1, nngp=v, var2=var2, ntk=dv * s.ntk, gaussian=False)


@ANALYTIC.register(nets.LayerNorm)
def _layer_norm(layer, s, path):
    _require_gaussian(layer, s, path, "LayerNorm")
    v1, v2 = s.pair_variances()
    norm = safe_sqrt(v1 * v2)
    inv = jnp.where(norm > 0, 1 / jnp.where(norm > 0, norm, 1), 0)
    if s.full and not s.diagonal:  # correlations between the positions of one input
        var1, var2 = (_correlation(q, *s.own_variances(q)) for q in (s.var1, s.var2))
    else:
        ones = lambda q: jnp.where(q > 0, 1.0, 0.0).astype(q.dtype)  # noqa: E731
        var1, var2 = ones(s.var1), ones(s.var2)
        if s.diagonal and s.full:
            var1 = var2 = s.nngp * inv
    return s.replace(var1=var1, nngp=s.nngp * inv, var2=var2, ntk=s.ntk * inv)


def _correlation(q, a, b):
    norm = safe_sqrt(a * b)
    return q * jnp.where(norm > 0, 1 / jnp.where(norm > 0, norm, 1), 0)


class _Unstable(Exception):
    """A repeated unit changes the state's static metadata, so it cannot be a scan body."""


def _unrolled(layers, s, first):
    """``layers`` in turn, the first of which sits at ``first`` = ``"...serial[i]."``."""
    head, _, index = first.rstrip("].").rpartition("[")
    for j, layer in enumerate(layers):
        path = f"{head}[{int(index) + j}]."
        s = _isolated(layer, s, path) if s.spatial else propagate(layer, s, path)
    return s


def _isolated(layer, s, path):
    """``propagate(layer, s, path)`` as the body of a one-step ``lax.scan``. XLA:CPU compiles
    an unrolled chain of spatial layers into one program whose time grows about 2.5x per
    layer (two 3x3 convolution + ReLU layers: 18 ms per tile of 8 x 8 images 8x8, four: 140
    ms; optimisation barriers between the layers do not help); each layer in its own loop body
    takes 2-3 ms, as the scanned runs of identical layers do."""
    out = {}

    def body(_, arrays):
        var1, nngp, var2, ntk = arrays
        out["state"] = propagate(layer, s.replace(var1=var1, nngp=nngp, var2=var2, ntk=ntk),
                                 path)
        o = out["state"]
        return None, (o.var1, o.nngp, o.var2, o.ntk)

    xs = tuple(a[None] for a in (s.var1, s.nngp, s.var2, s.ntk))
    _, (var1, nngp, var2, ntk) = jax.lax.scan(body, None, xs)
    return out["state"].replace(var1=var1[0], nngp=nngp[0], var2=var2[0], ntk=ntk[0])


def _scan_units(units, s, paths):
    """Propagate ``s`` through structurally identical ``units`` with one ``lax.scan``.

    The first unit runs unrolled (it fixes the feature count and Gaussianity of the state);
    the rest share its traced body, so compile time and the fused XLA program no longer grow
    with depth (an unrolled chain is fused into every later n x n operation).
    """
    s = _unrolled(units[0], s, paths[0])
    leaves = [jax.tree_util.tree_leaves(u) for u in units[1:]]
    dtype = jnp.result_type(s.nngp, s.ntk, *(v for vs in leaves for v in vs))
    stacked = [jnp.stack([jnp.asarray(v, dtype) for v in vs]) for vs in zip(*leaves, strict=True)]
    treedef = jax.tree_util.tree_structure(units[1])
    start = s.map(lambda q: q.astype(dtype)).replace(ntk=s.ntk.astype(dtype))

    def body(carry, unit_leaves):
        var1, nngp, var2, ntk = carry
        unit = jax.tree_util.tree_unflatten(treedef, unit_leaves)
        out = _unrolled(unit, start.replace(var1=var1, nngp=nngp, var2=var2, ntk=ntk), paths[1])
        if (out.gaussian, out.features, out.spatial, out.full) != (
                start.gaussian, start.features, start.spatial, start.full):
            raise _Unstable
        return tuple(q.astype(dtype) for q in (out.var1, out.nngp, out.var2, out.ntk)), None

    carry = (start.var1, start.nngp, start.var2, start.ntk)
    (var1, nngp, var2, ntk), _ = jax.lax.scan(body, carry, stacked)
    return start.replace(var1=var1, nngp=nngp, var2=var2, ntk=ntk)


@ANALYTIC.register(nets.Serial)
def _serial(layer, s, path):
    here = lambda j: f"{path}serial[{j}]."  # noqa: E731
    for run in nets.runs(layer.layers, min_count=MIN_REPEATS):
        units = run.units(layer.layers)
        if run.count > 1:
            try:
                s = _scan_units(units, s, (here(run.start), here(run.start + run.period)))
                continue
            except _Unstable:
                pass
        s = _unrolled(sum(units, ()), s, here(run.start))
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
    shapes = {b.spatial for b in states}
    if len(shapes) != 1:
        raise ValueError(f"kernels.analytic: {owner} at {path or 'the top level'} sums "
                         f"branches with different spatial shapes {sorted(shapes)}.")
    total = states[0]
    for b in states[1:]:
        total = total.replace(var1=total.var1 + b.var1, nngp=total.nngp + b.nngp,
                              var2=total.var2 + b.var2, ntk=total.ntk + b.ntk)
    return total.replace(gaussian=not non_gaussian)


@ANALYTIC.register(nets.Residual)
def _residual(layer, s, path):
    block = propagate(layer.block, s, f"{path}residual.")
    if not block.gaussian:
        raise ValueError(f"kernels.analytic: the block of {where(path, layer)} must end in a "
                         "Dense layer (its output must be a fresh Gaussian process independent "
                         "of the skip connection); it ends in an activation or is the identity.")
    scale2 = layer.scale**2
    block = block.map(lambda q: scale2 * q).replace(ntk=scale2 * block.ntk)
    return _sum_branches([s, block], path, "residual")


@ANALYTIC.register(nets.Parallel)
def _parallel(layer, s, path):
    states = [propagate(b, s, f"{path}parallel[{i}].") for i, b in enumerate(layer.branches)]
    return _sum_branches(states, path, "parallel")
