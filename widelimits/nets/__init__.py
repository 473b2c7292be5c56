"""Network specs: frozen pytree dataclasses that define a finite network (``init``/``apply``)
and, through the views of the other subpackages, its infinite-width limits.

A spec knows no view: it declares its parameters (``init``), its forward pass (``apply``) and
its output shape (``output_shape``); each view (``kernels.analytic``, ``kernels.empirical_ntk``,
``finite.output_samples``, ...) registers one rule per layer type. ``spec`` and ``static`` make
a new layer; ``runs`` finds the repeated blocks that views scan."""

from ._activations import (
    ABRelu as ABRelu,
    Abs as Abs,
    Activation as Activation,
    Cos as Cos,
    Elementwise as Elementwise,
    Erf as Erf,
    Exp as Exp,
    Gelu as Gelu,
    Identity as Identity,
    LeakyRelu as LeakyRelu,
    Monomial as Monomial,
    RectifiedMonomial as RectifiedMonomial,
    Relu as Relu,
    Sigmoid as Sigmoid,
    Sign as Sign,
    Sin as Sin,
    Softplus as Softplus,
    Swish as Swish,
    Tanh as Tanh,
    check_activation as check_activation,
)
from ._architectures import myrtle as myrtle, wide_resnet as wide_resnet
from ._attention import GlobalSelfAttention as GlobalSelfAttention
from ._combinators import (
    Parallel as Parallel,
    Residual as Residual,
    Serial as Serial,
    mlp as mlp,
    parallel as parallel,
    residual as residual,
    serial as serial,
)
from ._conv import (
    AvgPool as AvgPool,
    Conv as Conv,
    Flatten as Flatten,
    GlobalAvgPool as GlobalAvgPool,
    GlobalSumPool as GlobalSumPool,
    SumPool as SumPool,
)
from ._dense import Dense as Dense, LayerNorm as LayerNorm
from ._meanfield import (
    meanfield_learning_rate as meanfield_learning_rate,
    meanfield_mlp as meanfield_mlp,
)
from ._piecewise import PiecewiseLinear as PiecewiseLinear
from ._runs import Run as Run, runs as runs
from ._spec import Layer as Layer, spec as spec, static as static

__all__ = [
    "ABRelu", "Abs", "Activation", "AvgPool", "Conv", "Cos", "Dense", "Elementwise", "Erf", "Exp",
    "Flatten", "Gelu", "GlobalAvgPool", "GlobalSelfAttention", "GlobalSumPool", "Identity", "Layer",
    "LayerNorm", "LeakyRelu", "Monomial", "Parallel", "PiecewiseLinear", "RectifiedMonomial",
    "Relu", "Residual", "Run", "Serial", "Sigmoid", "Sign", "Sin", "Softplus", "SumPool", "Swish",
    "Tanh", "check_activation", "meanfield_learning_rate", "meanfield_mlp", "mlp", "myrtle",
    "parallel", "residual", "runs", "serial", "spec", "static", "wide_resnet",
]
