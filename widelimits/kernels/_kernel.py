"""The ``Kernel`` value: infinite-width NNGP and NTK of a pair of input batches."""

from __future__ import annotations

import dataclasses

import jax

__all__ = ["Kernel"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Kernel:
    """NNGP and NTK of inputs x1 (n1, d) and x2 (n2, d), a pytree (jit/vmap/grad friendly).

    Attributes:
      nngp: (n1, n2) output covariance E[f(x1) f(x2)] of the network at initialisation.
      ntk: (n1, n2) neural tangent kernel sum_p df(x1)/dp df(x2)/dp.
      var1: (n1,) NNGP variances K(x1, x1); var2: (n2,) variances K(x2, x2).
    A network with k outputs has kernels ``nngp ⊗ I_k`` and ``ntk ⊗ I_k``.
    """

    nngp: jax.Array
    ntk: jax.Array
    var1: jax.Array
    var2: jax.Array

    @property
    def shape(self):
        return self.nngp.shape

    def __repr__(self):
        return f"Kernel(shape={tuple(self.nngp.shape)}, dtype={self.nngp.dtype})"
