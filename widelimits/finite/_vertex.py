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
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import nets
from .._checks import activation as check_activation, concrete
from ..kernels import activation_moments
from ..signal import chi_parallel, chi_perp
from ._kurtosis import check_scalar

__all__ = ["VertexRecursion", "vertex_recursion", "net_vertex", "relu_exact_kurtosis"]


class VertexRecursion(NamedTuple):
    """Layer-by-layer single-input statistics for l = 1 .. L (arrays of shape (L,)).

    kernel: K^(l). vertex: V^(l) = n Var G^(l) (equal widths n; for ``net_vertex`` with unequal
    widths, ``vertex`` holds Var G^(l) times the last hidden width). chi_par, chi_perp: the
    susceptibilities at K^(l) (those of the map from layer l to l+1). kurtosis_coefficient:
    V/K^2; excess kurtosis of a unit of layer l is 3 V/(n K^2) to leading order (``excess``).
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
    """
    check_activation("vertex_recursion", activation)
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or depth < 1:
        raise ValueError(f"vertex_recursion: depth must be an int >= 1, got {depth!r}.")
    for name, v in (("c_w", c_w), ("c_b", c_b), ("k1", k1)):
        check_scalar("vertex_recursion", name, v)
    k1 = jnp.asarray(k1)
    k1 = k1.astype(jnp.result_type(k1, float))

    def step(carry, _):
        k, v = carry
        s2, s4 = activation_moments(activation, k, (2, 4), order=order)
        chi = chi_parallel(activation, k, c_w, order=order)
        return (c_b + c_w * s2, chi**2 * v + c_w**2 * (s4 - s2**2)), (k, v)

    (k_last, v_last), (ks, vs) = jax.lax.scan(step, (k1, jnp.zeros_like(k1)), None,
                                              length=depth - 1)
    ks, vs = jnp.append(ks, k_last), jnp.append(vs, v_last)
    return VertexRecursion(ks, vs, chi_parallel(activation, ks, c_w, order=order),
                           chi_perp(activation, ks, c_w, order=order))


def _split_mlp(net):
    """[(Dense, activation-or-None), ...] for serial(Dense, act, Dense, act, ..., Dense)."""
    layers = getattr(net, "layers", None)
    if not isinstance(net, nets.Serial) or len(layers) % 2 != 1:
        raise TypeError(f"net_vertex: net must be serial(Dense, act, ..., Dense) (e.g. nets.mlp), "
                        f"got {net!r}.")
    acts = layers[1::2]
    for i, layer in enumerate(layers):
        want = nets.Dense if i % 2 == 0 else nets.Activation
        if not isinstance(layer, want):
            raise TypeError(f"net_vertex: layer {i} must be a {want.__name__}, got {layer!r}.")
        if i % 2 == 0 and layer.weights != "gaussian":
            raise ValueError(f"net_vertex: layer {i} has weights={layer.weights!r}; the recursion "
                             "is for Gaussian weights.")
    if any(type(a) is not type(acts[0]) or a != acts[0] for a in acts[1:]):
        raise ValueError("net_vertex: every activation must be the same spec.")
    return layers[0::2], (acts[0] if acts else None)


def net_vertex(net, x, *, order: int | None = None) -> tuple[jax.Array, jax.Array]:
    """Leading-order (variance, excess kurtosis) of each output of an MLP at each input of ``x``.

    ``net`` = serial(Dense(n_1), act, ..., Dense(n_L), act, Dense(k)) with Gaussian weights
    (widths, C_W = w_std^2 and C_b = b_std^2 may differ per layer); ``x`` (n, d). Returns
    (K (n,), excess (n,)) with excess = 3 Var G / K^2 from the Var G recursion of the module
    docstring, which is exact for one hidden layer and leading order in 1/n beyond.
    """
    _split_mlp(net)
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"net_vertex: x must have shape (n, d), got {x.shape}.")
    return _net_vertex(net, x, order)


@functools.partial(jax.jit, static_argnums=2)
def _net_vertex(net, x, order):
    denses, act = _split_mlp(net)
    cw = [d.w_std**2 for d in denses]
    cb = [0.0 if d.b_std is None else d.b_std**2 for d in denses]
    k1 = cb[0] + cw[0] * jnp.sum(x * x, -1) / x.shape[-1]
    if act is None:
        return k1, jnp.zeros_like(k1)
    kk, vg = k1, jnp.zeros_like(k1)
    for c_w, c_b, d in zip(cw[1:], cb[1:], denses[:-1], strict=True):
        s2, s4 = activation_moments(act, kk, (2, 4), order=order)
        chi = chi_parallel(act, kk, c_w, order=order)
        kk, vg = c_b + c_w * s2, chi**2 * vg + c_w**2 * (s4 - s2**2) / d.width
    return kk, 3 * vg / kk**2


def relu_exact_kurtosis(depth: int, width):
    """Exact excess kurtosis 3 (1 + 5/n)^(l-1) - 3 of a unit of layer l = ``depth`` of a ReLU MLP
    with C_b = 0 (any C_W) and equal widths n = ``width`` (see the module docstring)."""
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or depth < 1:
        raise ValueError(f"relu_exact_kurtosis: depth must be an int >= 1, got {depth!r}.")
    width = jnp.asarray(width)
    w = concrete(width)
    if w is not None and np.any(w <= 0):
        raise ValueError(f"relu_exact_kurtosis: width must be > 0, got {w!r}.")
    return 3 * ((1 + 5 / width) ** (depth - 1) - 1)
