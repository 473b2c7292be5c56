"""Combinators: sequential composition, residual connections and summed parallel branches."""

from __future__ import annotations

import jax

from .._checks import integer, nonnegative
from ._activations import Activation, Relu
from ._dense import Dense, _in_features
from ._spec import Layer, _fmt, spec

__all__ = ["Serial", "Residual", "Parallel", "serial", "residual", "parallel", "mlp"]


def _check_layers(owner, layers):
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(f"{owner}: argument {i} must be a widelimits layer spec "
                            f"(e.g. nets.Dense(...), nets.Relu()), got {layer!r} "
                            f"of type {type(layer).__name__}.")


@spec
class Serial(Layer):
    """Layers applied one after the other."""

    layers: tuple = ()

    def __post_init__(self):
        _check_layers("serial", self.layers)

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = layer.output_shape(shape)
        return shape

    def init(self, key, input_shape):
        shape = tuple(input_shape)
        _in_features("serial", shape)
        keys = jax.random.split(key, max(len(self.layers), 1))
        params = []
        for k, layer in zip(keys, self.layers, strict=False):
            params.append(layer.init(k, shape))
            shape = layer.output_shape(shape)
        return tuple(params)

    def apply(self, params, x):
        if len(params) != len(self.layers):
            raise ValueError(f"serial.apply: params has {len(params)} entries for "
                             f"{len(self.layers)} layers.")
        for p, layer in zip(params, self.layers, strict=True):
            x = layer.apply(p, x)
        return x

    def __repr__(self):
        return "serial(" + ", ".join(repr(layer) for layer in self.layers) + ")"


@spec
class Residual(Layer):
    """``x + scale * block(x)``; ``block`` must map d features to d features."""

    block: Layer
    scale: float = 1.0

    def __post_init__(self):
        _check_layers("residual", (self.block,))
        nonnegative("residual", "scale", self.scale)

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        _in_features("residual", shape)
        out = self.block.output_shape(shape)
        if out != shape:
            raise ValueError(f"residual: the block maps {shape[-1]} input features to "
                             f"{out[-1]} (shape {shape} to {out}); a residual connection needs "
                             "it to keep the shape.")
        return shape

    def init(self, key, input_shape):
        self.output_shape(input_shape)
        return self.block.init(key, input_shape)

    def apply(self, params, x):
        return x + self.scale * self.block.apply(params, x)

    def __repr__(self):
        return f"residual({self.block!r}, scale={_fmt(self.scale)})"


@spec
class Parallel(Layer):
    """Sum of branches applied to the same input: ``sum_i branch_i(x)`` (fan-out, fan-in sum)."""

    branches: tuple = ()

    def __post_init__(self):
        _check_layers("parallel", self.branches)
        if len(self.branches) < 1:
            raise ValueError("parallel: needs at least one branch, got none.")

    def output_shape(self, input_shape):
        _in_features("parallel", input_shape)
        outs = {b.output_shape(tuple(input_shape)) for b in self.branches}
        if len(outs) != 1:
            raise ValueError(f"parallel: branches return different shapes {sorted(outs)} for "
                             f"inputs of shape {tuple(input_shape)}; they must agree to be "
                             "summed.")
        return outs.pop()

    def init(self, key, input_shape):
        self.output_shape(input_shape)
        keys = jax.random.split(key, len(self.branches))
        return tuple(b.init(k, input_shape) for k, b in zip(keys, self.branches, strict=True))

    def apply(self, params, x):
        outs = [b.apply(p, x) for p, b in zip(params, self.branches, strict=True)]
        return sum(outs[1:], outs[0])

    def __repr__(self):
        return "parallel(" + ", ".join(repr(b) for b in self.branches) + ")"


def serial(*layers: Layer) -> Serial:
    """Compose layers sequentially.

    >>> import jax, jax.numpy as jnp
    >>> from widelimits import nets
    >>> net = nets.serial(nets.Dense(512), nets.Relu(), nets.Dense(1))
    >>> params = net.init(jax.random.key(0), (4, 3))
    >>> net.apply(params, jnp.ones((4, 3))).shape
    (4, 1)
    """
    return Serial(tuple(layers))


def residual(*block: Layer, scale=1.0) -> Residual:
    """Residual connection ``x + scale * block(x)`` (several layers are wrapped in ``serial``).

    Hayou & Yang 2023 take ``scale = 1/sqrt(L)`` for a depth-L ResNet to get a depth limit.

    >>> from widelimits import nets
    >>> block = nets.residual(nets.Relu(), nets.Dense(8), scale=0.5)
    >>> nets.serial(nets.Dense(8), block).output_shape((2, 3))
    (2, 8)
    """
    inner = block[0] if len(block) == 1 else serial(*block)
    return Residual(inner, scale)


def parallel(*branches: Layer) -> Parallel:
    """Sum of independent branches on the same input (fan-out then fan-in sum).

    >>> import jax, jax.numpy as jnp
    >>> from widelimits import nets
    >>> net = nets.parallel(nets.Dense(4), nets.serial(nets.Dense(4), nets.Erf(), nets.Dense(4)))
    >>> net.apply(net.init(jax.random.key(0), (1, 2)), jnp.ones((1, 2))).shape
    (1, 4)
    """
    return Parallel(tuple(branches))


def mlp(width: int, depth: int, activation: Activation | None = None, *, out_width: int = 1,
        w_std=1.0, b_std=0.0, parameterization: str = "ntk", weights: str = "gaussian",
        ) -> Serial:
    """A fully connected net: ``depth`` hidden ``Dense(width)`` + activation blocks, then a
    ``Dense(out_width)`` readout. ``activation`` defaults to ``Relu()``.

    >>> from widelimits import nets
    >>> net = nets.mlp(16, 2, nets.Tanh(), b_std=0.1)
    >>> [type(layer).__name__ for layer in net.layers]
    ['Dense', 'Tanh', 'Dense', 'Tanh', 'Dense']
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise ValueError(f"mlp: depth must be an int >= 0, got {depth!r}.")
    integer("nets.mlp", "width", width)
    activation = Relu() if activation is None else activation
    if not isinstance(activation, Activation):
        raise TypeError(f"mlp: activation must be an activation spec such as nets.Relu(), "
                        f"got {activation!r}.")
    kw = dict(w_std=w_std, b_std=b_std, parameterization=parameterization, weights=weights)
    layers = []
    for _ in range(depth):
        layers += [Dense(width, **kw), activation]
    return serial(*layers, Dense(out_width, **kw))


