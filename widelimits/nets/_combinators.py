"""Combinators: sequential composition, residual connections and summed parallel branches."""

from __future__ import annotations

import jax

from ._activations import Activation, Relu
from ._dense import Dense, _in_features
from ._spec import Layer, _fmt, check_nonnegative, check_positive_int, spec

__all__ = ["Serial", "Residual", "Parallel", "serial", "residual", "parallel", "mlp"]


def _check_layers(owner, layers):
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(f"{owner}: argument {i} must be a widelimits layer spec "
                            f"(e.g. nets.Dense(...), nets.Relu()), got {layer!r} "
                            f"of type {type(layer).__name__}.")


def _with_features(input_shape, n):
    return tuple(input_shape[:-1]) + (n,)


@spec
class Serial(Layer):
    """Layers applied one after the other."""

    layers: tuple = ()

    def __post_init__(self):
        _check_layers("serial", self.layers)

    def out_features(self, in_features):
        for layer in self.layers:
            in_features = layer.out_features(in_features)
        return in_features

    def init(self, key, input_shape):
        n = _in_features("serial", input_shape)
        keys = jax.random.split(key, max(len(self.layers), 1))
        params = []
        for k, layer in zip(keys, self.layers, strict=False):
            params.append(layer.init(k, _with_features(input_shape, n)))
            n = layer.out_features(n)
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
        check_nonnegative("residual", "scale", self.scale)

    def init(self, key, input_shape):
        n = _in_features("residual", input_shape)
        if self.block.out_features(n) != n:
            raise ValueError(f"residual: the block maps {n} input features to "
                             f"{self.block.out_features(n)}; a residual connection needs it to "
                             f"return {n}.")
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

    def out_features(self, in_features):
        outs = {b.out_features(in_features) for b in self.branches}
        if len(outs) != 1:
            raise ValueError(f"parallel: branches return different numbers of features "
                             f"{sorted(outs)} for {in_features} inputs; they must agree to be "
                             "summed.")
        return outs.pop()

    def init(self, key, input_shape):
        self.out_features(_in_features("parallel", input_shape))
        keys = jax.random.split(key, len(self.branches))
        return tuple(b.init(k, input_shape) for k, b in zip(keys, self.branches, strict=True))

    def apply(self, params, x):
        outs = [b.apply(p, x) for p, b in zip(params, self.branches, strict=True)]
        return sum(outs[1:], outs[0])

    def __repr__(self):
        return "parallel(" + ", ".join(repr(b) for b in self.branches) + ")"


def serial(*layers: Layer) -> Serial:
    """Compose layers sequentially: ``serial(Dense(512), Relu(), Dense(1))``."""
    return Serial(tuple(layers))


def residual(*block: Layer, scale=1.0) -> Residual:
    """Residual connection ``x + scale * block(x)`` (several layers are wrapped in ``serial``).

    Hayou & Yang 2023 take ``scale = 1/sqrt(L)`` for a depth-L ResNet to get a depth limit.
    """
    inner = block[0] if len(block) == 1 else serial(*block)
    return Residual(inner, scale)


def parallel(*branches: Layer) -> Parallel:
    """Sum of independent branches on the same input (fan-out then fan-in sum)."""
    return Parallel(tuple(branches))


def mlp(width: int, depth: int, activation: Activation | None = None, *, out_width: int = 1,
        w_std=1.0, b_std=0.0, parameterization: str = "ntk", weights: str = "gaussian",
        ) -> Serial:
    """A fully connected net: ``depth`` hidden ``Dense(width)`` + activation blocks, then a
    ``Dense(out_width)`` readout. ``activation`` defaults to ``Relu()``."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise ValueError(f"mlp: depth must be an int >= 0, got {depth!r}.")
    check_positive_int("mlp", "width", width)
    activation = Relu() if activation is None else activation
    if not isinstance(activation, Activation):
        raise TypeError(f"mlp: activation must be an activation spec such as nets.Relu(), "
                        f"got {activation!r}.")
    kw = dict(w_std=w_std, b_std=b_std, parameterization=parameterization, weights=weights)
    layers = []
    for _ in range(depth):
        layers += [Dense(width, **kw), activation]
    return serial(*layers, Dense(out_width, **kw))


