"""Kernel and four-point vertex recursions of deep MLPs at one input (Roberts, Yaida & Hanin,
"The Principles of Deep Learning Theory", 2022, ch. 4-5).

Conventions (the book's, equal to our NTK parameterization with C_W = w_std^2, C_b = b_std^2):
z^(1) = b + W x, z^(l+1) = b + W sigma(z^(l)), Var W = C_W / n_in, Var b = C_b. Write
G^(l+1) = C_b + (C_W/n_l) sum_j sigma(z_j^(l))^2 for the conditional variance of a unit of layer
l+1 given layer l; the units are then iid N(0, G^(l+1)), so

    E z^4 - 3 (E z^2)^2 = 3 Var G,      Var G^(l+1) = (C_W^2/n_l) [<s^4> - <s^2>^2] + chi_par^2 Var G^(l)

to leading order in 1/n (the n_l (n_l - 1) covariances of sigma_j^2, sigma_k^2 are both driven
by G^(l): Cov = (d<s^2>/dK)^2 Var G^(l)). With equal widths n and V = n Var G this is the book's

    K^(l+1) = C_b + C_W <s^2>_{K^(l)},   V^(l+1) = chi_par^2 V^(l) + C_W^2 [<s^4> - <s^2>^2],
    V^(1) = 0 (Gaussian first layer),    E z^4 - 3K^2 = 3 V/n + O(1/n^2),

with chi_par = dK^(l+1)/dK^(l) = C_W d<s^2>_K/dK = (C_W/K) <z s'(z) s(z)>_K
= (C_W/(2K^2)) <s^2 (z^2 - K)>_K, and chi_perp = C_W <s'^2>_K. <.>_K: z ~ N(0, K). Both are
``signal.chi_parallel`` and ``signal.chi_perp``; the moments <s^k>_K are ``activation_moments``.

ReLU at (C_b, C_W) = (0, 2): chi_par = 1, C_W^2 (<s^4> - <s^2>^2) = 4 (3/2 - 1/4) K^2 = 5 K^2, so
V^(l)/K^2 = 5 (l - 1). Here the law is exact at every width: G^(l+1) = G^(l) (2/n) chi^2_{Bin(n,1/2)},
so E z^4/(3K^2) = (1 + 5/n)^(l-1) (``relu_exact_kurtosis``).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import nets
from .._checks import concrete, integer, nonnegative
from ..signal import chi_parallel, chi_perp
from ._recursion import read, vertex_step

__all__ = ["VertexRecursion", "vertex_recursion", "net_vertex", "relu_exact_kurtosis"]


class VertexRecursion(NamedTuple):
    """Layer-by-layer single-input statistics for l = 1 .. L (arrays of shape (L,)).

    kernel: K^(l). vertex: V^(l) = n Var G^(l) (equal widths n; for ``net_vertex`` with unequal
    widths, ``vertex`` holds Var G^(l) times the last hidden width). chi_par, chi_perp: the
    susceptibilities at K^(l) (those of the map from layer l to l+1). kurtosis_coefficient:
    V/K^2; excess kurtosis of a unit of layer l is 3 V/(n K^2) to leading order (``excess``).

    >>> from widelimits import finite, nets
    >>> r = finite.vertex_recursion(nets.Relu(), 3, c_w=2.0, c_b=0.0, k1=1.0)
    >>> r.kurtosis_coefficient.tolist(), r.excess(10).tolist()   # 5 (l - 1), 3 V/(n K^2)
    ([0.0, 5.0, 10.0], [0.0, 1.5, 3.0])
    """

    kernel: jax.Array
    vertex: jax.Array
    chi_par: jax.Array
    chi_perp: jax.Array

    @property
    def kurtosis_coefficient(self):
        return self.vertex / self.kernel**2

    def excess(self, width):
        """Leading-order excess kurtosis 3 V/(n K^2) of a unit of each layer at width ``width``."""
        return 3 * self.kurtosis_coefficient / width


def vertex_recursion(activation, depth: int, *, c_w, c_b, k1, order: int | None = None
                     ) -> VertexRecursion:
    """K^(l), V^(l), chi_par(K^(l)), chi_perp(K^(l)) for l = 1 .. ``depth`` (equal widths).

    ``k1`` = K^(1) = C_b + C_W |x|^2/d is the first layer's pre-activation variance. The vertex is
    normalised as in Roberts, Yaida & Hanin (V^(1) = 0, E z^4 - 3K^2 = 3V/n + O(1/n^2)); see the
    module docstring for the derivation. A net with L hidden layers has its output at l = L + 1.
    Works under jit (``depth`` static) and is differentiable in c_w, c_b, k1.

    Critical tanh (C_W = 1, C_b = 0): K decays and V/K^2 grows about like 2 l/3 (K* = 0
    universality class, Roberts, Yaida & Hanin ch. 5).

    >>> import numpy as np
    >>> from widelimits import finite, nets
    >>> r = finite.vertex_recursion(nets.Tanh(), 4, c_w=1.0, c_b=0.0, k1=1.0)
    >>> [round(float(k), 3) for k in r.kernel]
    [1.0, 0.394, 0.236, 0.167]
    >>> bool(np.all(np.diff(np.asarray(r.kurtosis_coefficient)) > 0))
    True
    """
    nets.check_activation("finite.vertex_recursion", activation)
    integer("finite.vertex_recursion", "depth", depth)
    for name, v in (("c_w", c_w), ("c_b", c_b), ("k1", k1)):
        nonnegative("finite.vertex_recursion", name, v)
    k1 = jnp.asarray(k1)
    k1 = k1.astype(jnp.result_type(k1, float))

    def step(carry, _):
        k, v = carry
        return vertex_step(activation, k, v, c_w, c_b, order=order), (k, v)

    (k_last, v_last), (ks, vs) = jax.lax.scan(step, (k1, jnp.zeros_like(k1)), None,
                                              length=depth - 1)
    ks, vs = jnp.append(ks, k_last), jnp.append(vs, v_last)
    return VertexRecursion(ks, vs, chi_parallel(activation, ks, c_w, order=order),
                           chi_perp(activation, ks, c_w, order=order))


def net_vertex(net, x, *, order: int | None = None) -> tuple[jax.Array, jax.Array]:
    """Leading-order (variance, excess kurtosis) of each output of an MLP at each input of ``x``.

    ``net`` = serial(Dense(n_1), act, ..., Dense(n_L), act, Dense(k)) with Gaussian weights
    (widths, activations, C_W = w_std^2 and C_b = b_std^2 may differ per layer; a Dense right
    after a Dense counts as an identity activation); ``x`` (n, d). Returns (K (n,), excess (n,))
    with excess = 3 Var G / K^2 from the Var G recursion of the module docstring, which is exact
    for one hidden layer and leading order in 1/n beyond. The net is read through the
    registry view ``finite.recursions`` (``TypeError`` naming a layer it has no rule for).

    >>> import jax.numpy as jnp
    >>> from widelimits import finite, nets
    >>> net = nets.mlp(16, 2, nets.Relu(), w_std=2**0.5, b_std=0.0)
    >>> k, excess = finite.net_vertex(net, jnp.ones((1, 3)))
    >>> round(float(k[0]), 4), round(float(excess[0]), 4)   # 15 (l - 1)/n at l = 3
    (2.0, 1.875)
    """
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"finite.net_vertex: x must have shape (n, d), got {x.shape}.")
    return _net_vertex(net, x, order)


@functools.partial(jax.jit, static_argnums=2)
def _net_vertex(net, x, order):
    s = read(net, x, owner="finite.net_vertex", order=order)
    if s.raw or s.act is not None:
        raise TypeError(f"finite.net_vertex: net must be serial(Dense, act, ..., Dense) ending "
                        f"in a Dense layer (e.g. nets.mlp), got {net!r}.")
    if len(s.denses) == 1:
        return s.kernel, jnp.zeros_like(s.kernel)
    return s.kernel, 3 * s.var_g / s.kernel**2


def relu_exact_kurtosis(depth: int, width):
    """Exact excess kurtosis 3 (1 + 5/n)^(l-1) - 3 of a unit of layer l = ``depth`` of a ReLU MLP
    with C_b = 0 (any C_W) and equal widths n = ``width`` (see the module docstring).

    >>> from widelimits import finite
    >>> round(float(finite.relu_exact_kurtosis(3, 10)), 4)   # 3 (1.5^2 - 1)
    3.75
    """
    integer("finite.relu_exact_kurtosis", "depth", depth)
    width = jnp.asarray(width)
    w = concrete(width)
    if w is not None and np.any(w <= 0):
        raise ValueError(f"finite.relu_exact_kurtosis: width must be > 0, got {w!r}.")
    return 3 * ((1 + 5 / width) ** (depth - 1) - 1)
