"""The state of the infinite-width recursion, and the registry of its per-layer rules.

``kernels.analytic`` walks a spec with a ``KernelState``: for every pair of inputs the NNGP
(covariance of the layer's outputs at infinite width), the NTK, and each input's own variance.
Each layer type has one rule ``rule(layer, state, path) -> state`` in the registry ``ANALYTIC``;
users add rules for their own layers with ``register_analytic``.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp

from .._registry import Registry

__all__ = ["ANALYTIC", "KernelState", "propagate", "register_analytic"]

ANALYTIC = Registry("kernels.analytic", noun="infinite-width rule",
                    hint="Register one with kernels.register_analytic(LayerType).")


@functools.partial(jax.tree_util.register_dataclass,
                   data_fields=["var1", "nngp", "var2", "ntk"],
                   meta_fields=["gaussian", "features", "raw", "diagonal", "spatial", "full"])
@dataclasses.dataclass(frozen=True)
class KernelState:
    """What the infinite-width recursion knows after a layer (Lee et al. 2018; Jacot et al. 2018).

    Attributes:
      var1: (n1,) variances K(x1_i, x1_i) of the layer's outputs.
      nngp: (n1, n2) covariances K(x1_i, x2_j); (n,) when ``diagonal``.
      var2: (n2,) variances K(x2_j, x2_j).
      ntk: the NTK Theta(x1_i, x2_j), shaped like ``nngp``.
      gaussian: the outputs are a centred Gaussian process (a fresh ``Dense`` output, possibly
        normalised or summed with independent ones); activations need this.
      features: features of the finite network here (the fan-in of the next layer, which the
        standard-parameterization NTK needs).
      raw: the network input itself (fan-in fixed at infinite width), before any ``Dense``.
      diagonal: the pairs are (x_i, x_i): ``var1``, ``nngp``, ``var2`` are all (n,) (with
        spatial axes: (n, *S), or (n, *S, *S) when ``full``).
      spatial: the spatial shape S of channels-last inputs (n, *S, C) at this layer; () for
        inputs (n, d) and after ``Flatten`` or global pooling.
      full: the covariances over all pairs of positions are carried: ``nngp`` and ``ntk`` are
        (n1, n2, *S, *S) and ``var1`` (n1, *S, *S) (the input's own covariance between its
        positions). Otherwise only equal positions: ``nngp`` (n1, n2, *S), ``var1`` (n1, *S).

    A k-feature layer's kernel is ``nngp ⊗ I_k`` (features are iid at infinite width). The
    rules of elementwise maps (``Dense``, activations) act on any trailing axes, which the
    convolutional layers use for positions. A state is a pytree (its arrays are the leaves), so
    it passes through ``jax.jit`` and ``jax.vmap``.

    >>> import jax.numpy as jnp
    >>> from widelimits import kernels
    >>> s = kernels.KernelState(var1=jnp.ones(2), nngp=jnp.eye(2), var2=jnp.ones(2),
    ...                         ntk=jnp.zeros((2, 2)), gaussian=True, features=3)
    >>> s.map(lambda k: 4 * k).nngp.tolist()
    [[4.0, 0.0], [0.0, 4.0]]
    >>> [a.shape for a in s.pair_variances()]
    [(2, 1), (1, 2)]
    """

    var1: jax.Array
    nngp: jax.Array
    var2: jax.Array
    ntk: jax.Array
    gaussian: bool
    features: int
    raw: bool = False
    diagonal: bool = False
    spatial: tuple = ()
    full: bool = False

    def replace(self, **changes) -> KernelState:
        """A copy with ``changes`` applied (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def map(self, fn) -> KernelState:
        """``fn`` applied to the covariances ``var1``, ``nngp`` and ``var2`` (not the NTK)."""
        return self.replace(var1=fn(self.var1), nngp=fn(self.nngp), var2=fn(self.var2))

    def pair_variances(self) -> tuple[jax.Array, jax.Array]:
        """(var1, var2) broadcastable against ``nngp``: (n1, 1) and (1, n2), or both (n,) when
        ``diagonal`` (with positions: each position's variance, e.g. (n1, 1, *S, 1..) and
        (1, n2, 1.., *S) when ``full``). The dual of an activation takes ``(v1, nngp, v2)``."""
        if self.diagonal:
            return self.own_variances(self.var1)
        if self.full:
            k = len(self.spatial)
            v1 = self.position_variances(self.var1)
            v2 = self.position_variances(self.var2)
            return (jnp.expand_dims(v1, (1,) + tuple(range(-k, 0))),
                    jnp.expand_dims(v2, (0,) + tuple(range(2, k + 2))))
        return jnp.expand_dims(self.var1, 1), jnp.expand_dims(self.var2, 0)

    def position_variances(self, var: jax.Array) -> jax.Array:
        """Each position's variance from ``var1`` or ``var2``: (n, *S) (``var`` itself unless
        ``full``, where it is the diagonal of (n, *S, *S))."""
        if not self.full:
            return var
        s = self.spatial
        p = math.prod(s)
        flat = var.reshape(var.shape[: var.ndim - 2 * len(s)] + (p, p))
        return jnp.diagonal(flat, axis1=-2, axis2=-1).reshape(flat.shape[:-2] + s)

    def own_variances(self, var: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(a, b) broadcastable against ``var1`` (or ``var2``): the variances of the two sides
        of each of its entries, for the dual of an activation ``V(a, var, b)``: ``var`` itself
        twice, or with positions carried in full the variance of each position (n, *S, 1..) and
        (n, 1.., *S)."""
        if not self.full:
            return var, var
        k = len(self.spatial)
        d = self.position_variances(var)
        return jnp.expand_dims(d, tuple(range(-k, 0))), jnp.expand_dims(d, tuple(range(1, k + 1)))


def propagate(layer, state: KernelState, path: str = "") -> KernelState:
    """The state after ``layer`` (its registered rule; ``path`` locates it in errors). Rules
    of combinators call this on their sublayers.

    >>> import jax.numpy as jnp
    >>> from widelimits import kernels, nets
    >>> s = kernels.KernelState(var1=jnp.ones(1), nngp=jnp.ones((1, 1)), var2=jnp.ones(1),
    ...                         ntk=jnp.zeros((1, 1)), gaussian=False, features=2, raw=True)
    >>> out = kernels.propagate(nets.Dense(8, w_std=2.0, b_std=0.5), s)
    >>> float(out.nngp[0, 0]), float(out.ntk[0, 0])
    (4.25, 4.25)
    """
    return ANALYTIC.rule(layer, path)(layer, state, path)


def register_analytic(*layer_types):
    """Decorator registering ``rule(layer, state, path) -> KernelState`` as the infinite-width
    NNGP/NTK rule of ``layer_types`` (and their subclasses without a rule of their own), for
    ``kernels.analytic``. ``state`` is a ``KernelState``; ``path`` names the layer's place in
    the net for error messages. Returns the rule unchanged.

    >>> import jax, jax.numpy as jnp
    >>> from widelimits import kernels, nets
    >>> @nets.spec
    ... class Scale(nets.Layer):  # y = c x: multiplies the NNGP and the NTK by c^2
    ...     c: float = 2.0
    ...     def init(self, key, input_shape):
    ...         return ()
    ...     def apply(self, params, x):
    ...         return self.c * x
    >>> @kernels.register_analytic(Scale)
    ... def _scale(layer, state, path):
    ...     c2 = layer.c ** 2
    ...     return state.map(lambda k: c2 * k).replace(ntk=c2 * state.ntk)
    >>> x = jnp.eye(2)
    >>> net = nets.serial(nets.Dense(4), Scale(3.0))
    >>> float(kernels.analytic(net, x).nngp[0, 0])
    4.5
    """
    return ANALYTIC.register(*layer_types)
