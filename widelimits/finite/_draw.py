"""Random networks drawn layer by layer: the views of a spec behind ``finite.output_samples``.

``draw(net, key, x)`` is the output of one random network ``net`` (fresh parameters from ``key``)
at the inputs ``x`` (P, d). It carries a ``_Draw`` state (this network's activations h (P, n))
through the spec, one rule per layer type in the registry ``DRAW``:

- ``Dense`` with Gaussian weights, either parameterization: given its input h (P, n), the columns
  of ``z = (w/sqrt(n)) h W + b beta`` are iid ``N(0, w² h h^T/n + b² 1 1^T)`` (P x P), the
  conditional law of a layer given the previous one (Roberts, Yaida & Hanin 2022, "The
  Principles of Deep Learning Theory", ch. 4). Drawing z from that law takes P x width normals
  and a P x P square root instead of n x width weights, with exactly the same joint law of all
  the layers, since each weight matrix is used once (``residual`` and ``parallel`` branches
  draw their own). Other weight ensembles have no Gaussian conditional law: the rule refuses
  them unless every Dense draws its weights (``dense="weights"``).
- activations: h -> phi(h).
- ``serial``: the layers in turn, layer j with ``jax.random.split(key, len(layers))[j]`` (the
  keys of ``Serial.init``); runs of identical units (``nets.runs``) are drawn as the first unit
  unrolled and the rest in one ``lax.scan``, so compile time does not grow with depth.
- ``residual``: h + scale * block(h); ``parallel``: the sum of the branches, each with its key
  of ``jax.random.split(key, len(branches))``.

``dense`` says how every Dense is drawn: ``"law"`` (the conditional law), ``"weights"`` (its
parameters from its own ``init``, then ``apply``: the whole draw is then
``net.apply(net.init(key, x.shape), x)``) or ``"auto"`` (per layer the cheaper one: the law
costs P x width normals plus about 8 P³ for the square root, which is free when the input is
shared by every network drawn under ``vmap`` or when P = 1; the weights cost n x width).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from .. import nets
from .._numerics import one_at_a_time
from .._registry import Registry

__all__ = ["DENSE_DRAWS", "draw"]

DENSE_DRAWS = ("auto", "law", "weights")
MIN_REPEATS = 3  # shorter runs are unrolled (as in kernels.analytic)

DRAW = Registry("finite.draw", noun="collapsed sampling rule",
                hint="finite.output_samples(..., method='params') samples any spec.")


@dataclasses.dataclass(frozen=True)
class _Draw:
    """One network being drawn: activations ``h`` (P, n), the current layer's ``key``, how Dense
    layers are drawn (``dense``), whether ``h`` is the same for every network (``shared``: the
    inputs; its square root is then computed once under ``vmap``), and unit 0 of every Dense
    output so far (``records``, kept when ``record``)."""

    h: jax.Array
    key: jax.Array
    dense: str
    shared: bool
    record: bool
    records: tuple = ()

    def replace(self, **changes) -> _Draw:
        return dataclasses.replace(self, **changes)


def _propagate(layer, s: _Draw, path: str) -> _Draw:
    return DRAW.rule(layer, path)(layer, s, path)


def _law_costs_more(p, n_in, width, shared):
    eig = 0 if shared or p == 1 else 8 * p**3
    return p * width + eig >= n_in * width


def _eigh_factor(cov):
    lam, vec = jnp.linalg.eigh(cov)
    return vec * jnp.sqrt(jnp.maximum(lam, 0))


# F (P, P) with F F^T = cov (symmetric PSD) by eigh; under vmap one network at a time: two
# batched eighs at once (the branches of a parallel) can deadlock XLA:CPU's thread pool.
_factor = one_at_a_time(_eigh_factor)


def _conditional(layer, key, h):
    """z ~ N(0, w² h h^T/n + b²) per column, given h (P, n)."""
    p, n_in = h.shape
    cov = layer.w_std**2 * (h @ h.T) / n_in
    if layer.b_std is not None:
        cov = cov + layer.b_std**2
    xi = jax.random.normal(key, (p, layer.width), h.dtype)
    if p == 1:
        return jnp.sqrt(jnp.maximum(cov, 0)) * xi
    return _factor(cov) @ xi


@DRAW.register(nets.Dense)
def _dense(layer, s, path):
    h = s.h
    if layer.weights != "gaussian" and s.dense != "weights":
        raise DRAW.unsupported(
            layer, path, why=f"Dense(weights={layer.weights!r}) has no Gaussian conditional law "
            "given its input (collapsed draws need weights='gaussian'; draw the weights with "
            "dense='weights')")
    p, n_in = h.shape
    if s.dense == "weights" or (s.dense == "auto"
                                and _law_costs_more(p, n_in, layer.width, s.shared)):
        z = layer.apply(layer.init(s.key, h.shape, h.dtype), h)
    else:
        z = _conditional(layer, s.key, h)
    z = z.astype(h.dtype)
    return s.replace(h=z, shared=False,
                     records=s.records + ((z[:, 0],) if s.record else ()))


@DRAW.register(nets.Activation)
def _activation(layer, s, path):
    return s.replace(h=layer.fn(s.h).astype(s.h.dtype))


class _Unstable(Exception):
    """A repeated unit changes the state's shape or sharing, so it cannot be a scan body."""


def _scan_units(layers, keys, run, s, here):
    """Draw the ``run`` of identical units: the first unrolled, the rest one ``lax.scan``."""
    first, p = run.start, run.period
    for j in range(first, first + p):
        s = _propagate(layers[j], s.replace(key=keys[j]), here(j))
    units = run.units(layers)[1:]
    dtype = s.h.dtype
    leaves = [jax.tree_util.tree_leaves(u) for u in units]
    stacked = [jnp.stack([jnp.asarray(v, dtype) for v in vs]) for vs in zip(*leaves, strict=True)]
    treedef = jax.tree_util.tree_structure(units[0])
    unit_keys = keys[first + p:first + p * run.count].reshape(run.count - 1, p)
    start = s

    def body(h, xs):
        unit_leaves, ks = xs
        unit = jax.tree_util.tree_unflatten(treedef, unit_leaves)
        out = start.replace(h=h, records=())
        for j, layer in enumerate(unit):
            out = _propagate(layer, out.replace(key=ks[j]), here(first + p + j))
        if (out.h.shape, out.h.dtype, out.shared) != (h.shape, h.dtype, start.shared):
            raise _Unstable
        return out.h, out.records

    h, recs = jax.lax.scan(body, start.h, (stacked, unit_keys))
    records = tuple(r[i] for i in range(run.count - 1) for r in recs)
    return start.replace(h=h, records=start.records + records)


@DRAW.register(nets.Serial)
def _serial(layer, s, path):
    layers = layer.layers
    if not layers:
        return s
    keys = jax.random.split(s.key, len(layers))
    here = lambda j: f"{path}serial[{j}]."  # noqa: E731
    for run in nets.runs(layers, min_count=MIN_REPEATS):
        if run.count > 1:
            try:
                s = _scan_units(layers, keys, run, s, here)
                continue
            except _Unstable:
                pass
        for j in range(run.start, run.start + run.period * run.count):
            s = _propagate(layers[j], s.replace(key=keys[j]), here(j))
    return s


@DRAW.register(nets.Residual)
def _residual(layer, s, path):
    out = _propagate(layer.block, s, f"{path}residual.")
    return out.replace(h=s.h + layer.scale * out.h, shared=s.shared and out.shared)


@DRAW.register(nets.Parallel)
def _parallel(layer, s, path):
    keys = jax.random.split(s.key, len(layer.branches))
    outs, records = [], s.records
    for i, branch in enumerate(layer.branches):
        out = _propagate(branch, s.replace(key=keys[i], records=records), f"{path}parallel[{i}].")
        outs.append(out)
        records = out.records
    h = sum((o.h for o in outs[1:]), outs[0].h)
    return s.replace(h=h, shared=all(o.shared for o in outs), records=records)


def _check_dense(owner, dense):
    if dense not in DENSE_DRAWS:
        raise ValueError(f"{owner}: dense must be one of {DENSE_DRAWS}, got {dense!r}.")


def _check_x(owner, x):
    x = jnp.asarray(x)
    if x.ndim != 2 or not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"{owner}: x must be a float array of shape (n, d), got shape "
                         f"{x.shape} and dtype {x.dtype}.")
    return x


def draw_state(net, key, x, *, dense: str = "auto", shared: bool = True, record: bool = False):
    """The state after drawing ``net`` (``draw``'s workhorse): ``.h`` the output, ``.records``
    unit 0 of every Dense output in order when ``record``."""
    _check_dense("finite.draw", dense)
    return _propagate(net, _Draw(h=_check_x("finite.draw", x), key=key, dense=dense,
                                 shared=shared, record=record), "")


def draw(net, key, x, *, dense: str = "auto", shared: bool = True) -> jax.Array:
    """The output (P, k) of one random network ``net`` with parameters drawn from ``key``, at the
    inputs ``x`` (P, d), drawn layer by layer through the collapsed view (module docstring).

    ``dense``: ``"law"`` draws every Dense output from its Gaussian law given the layer's input,
    ``"weights"`` draws every Dense layer's parameters with its own ``init`` (the result is then
    ``net.apply(net.init(key, x.shape), x)``), ``"auto"`` the cheaper of the two per layer. The
    three have the same law. ``shared``: ``x`` is the same for every network drawn under
    ``jax.vmap`` (the network inputs; ``False`` for a layer's input inside a network), which
    only informs ``"auto"``'s choice. Gaussian Dense weights only, except with
    ``dense="weights"``; a layer without a rule raises ``TypeError`` naming it and its path.
    Works under ``jit``/``vmap`` (``dense``, ``shared`` static).

    >>> import jax, jax.numpy as jnp, numpy as np
    >>> from widelimits import finite, nets
    >>> net = nets.serial(nets.Dense(4, w_std=1.5), nets.Tanh(), nets.Dense(2))
    >>> x, key = jnp.ones((3, 5)), jax.random.key(0)
    >>> y = finite.draw(net, key, x, dense="weights")   # (3, 2): the spec's own forward pass
    >>> bool(np.allclose(y, net.apply(net.init(key, x.shape), x), rtol=1e-5))
    True
    """
    return draw_state(net, key, x, dense=dense, shared=shared).h
