"""The single-input 1/n recursions as a view of a spec: a ``VertexState`` carried through the
layers, one rule per layer type in the registry ``RECURSIONS`` (Roberts, Yaida & Hanin 2022,
"The Principles of Deep Learning Theory", ch. 4-5).

At each input the state holds the kernel K of the current pre-activations and Var G, the
variance of the conditional variance G of a unit given the previous layer (``_vertex``'s module
docstring). Rules:

- ``Dense`` (Gaussian weights, C_W = w_std², C_b = b_std², either parameterization) on the
  network input x (d features): K = C_b + C_W |x|²/d, Var G = 0 (a Gaussian layer).
  After an activation sigma (or directly after a Dense: sigma = identity) of width n:
  K' = C_b + C_W <s²>_K and Var G' = chi_par² Var G + C_W² (<s⁴>_K - <s²>_K²)/n.
- activations: remembered until the next Dense (one per Dense).
- ``serial``: the layers in turn.

``net_vertex`` and ``net_output_cumulants`` read the final state (and the layers it passed).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from .. import nets
from .._registry import Registry, where
from ..kernels import activation_moments
from ..signal import chi_parallel

__all__ = ["RECURSIONS", "VertexState", "read", "vertex_step"]

RECURSIONS = Registry(
    "finite.recursions", noun="1/n-recursion rule",
    hint="finite.net_vertex and finite.net_output_cumulants read serial(Dense, activation, ..., "
         "Dense) with Gaussian weights (e.g. nets.mlp).")


def vertex_step(act, k, var_g, c_w, c_b, *, order=None, width=1):
    """(K', Var G') of the next Dense layer after ``act`` of width ``width`` (module docstring);
    ``width=1`` gives the book's V = n Var G of equal widths."""
    s2, s4 = activation_moments(act, k, (2, 4), order=order)
    chi = chi_parallel(act, k, c_w, order=order)
    return c_b + c_w * s2, chi**2 * var_g + c_w**2 * (s4 - s2**2) / width


@dataclasses.dataclass(frozen=True)
class VertexState:
    """What the recursion knows after a layer, at each of n inputs.

    kernel: (n,) K of the current pre-activations (at the input: |x|², not yet divided by d).
    var_g: (n,) Var G of the current layer. width: features of the current layer.
    raw: still the network input (no Dense yet). act: the activation since the last Dense.
    vertex: update Var G (``False``: K only). owner, order: the caller (for messages) and the
    quadrature order of the Gaussian moments. denses, acts, kernels: the Dense layers passed,
    the activation before each Dense after the first, and K after each Dense.
    """

    kernel: jax.Array
    var_g: jax.Array
    width: int
    owner: str
    raw: bool = True
    act: nets.Activation | None = None
    vertex: bool = True
    order: int | None = None
    denses: tuple = ()
    acts: tuple = ()
    kernels: tuple = ()

    def replace(self, **changes) -> VertexState:
        return dataclasses.replace(self, **changes)


def _propagate(layer, s: VertexState, path: str) -> VertexState:
    return RECURSIONS.rule(layer, path)(layer, s, path)


@RECURSIONS.register(nets.Dense)
def _dense(layer, s, path):
    if layer.weights != "gaussian":
        raise ValueError(f"{s.owner}: {where(path, layer)} has weights={layer.weights!r}; the "
                         "recursions are exact for Gaussian weights only (use "
                         "weights='gaussian').")
    c_w = layer.w_std**2
    c_b = 0.0 if layer.b_std is None else layer.b_std**2
    if s.raw:
        k, var_g, acts = c_b + c_w * s.kernel / s.width, jnp.zeros_like(s.kernel), s.acts
    else:
        act = nets.Identity() if s.act is None else s.act
        acts = s.acts + (act,)
        if s.vertex:
            k, var_g = vertex_step(act, s.kernel, s.var_g, c_w, c_b, order=s.order,
                                   width=s.width)
        else:
            k = c_b + c_w * activation_moments(act, s.kernel, (2,), order=s.order)[0]
            var_g = s.var_g
    return s.replace(kernel=k, var_g=var_g, width=layer.width, raw=False, act=None,
                     denses=s.denses + (layer,), acts=acts, kernels=s.kernels + (k,))


@RECURSIONS.register(nets.Activation)
def _activation(layer, s, path):
    if s.raw or s.act is not None:
        raise RECURSIONS.unsupported(
            layer, path, why=f"{s.owner}: an activation must follow a Dense layer "
            "(serial(Dense, activation, ..., Dense))")
    return s.replace(act=layer)


@RECURSIONS.register(nets.Serial)
def _serial(layer, s, path):
    for i, sub in enumerate(layer.layers):
        s = _propagate(sub, s, f"{path}serial[{i}].")
    return s


def read(net, x, *, owner: str, order=None, vertex: bool = True) -> VertexState:
    """The state after ``net`` at the inputs ``x`` (n, d)."""
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{owner}: x must have shape (n, d), got {x.shape}.")
    s = VertexState(kernel=jnp.sum(x * x, -1), var_g=jnp.zeros(x.shape[:1], x.dtype),
                    width=x.shape[-1], owner=owner, order=order, vertex=vertex)
    return _propagate(net, s, "")
