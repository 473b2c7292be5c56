"""Network specs: frozen pytree dataclasses that define a finite network (``init``/``apply``)
and, through ``widelimits.kernels``, its infinite-width limits."""

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
)
from ._combinators import (
    Parallel as Parallel,
    Residual as Residual,
    Serial as Serial,
    mlp as mlp,
    parallel as parallel,
    residual as residual,
    serial as serial,
)
from ._dense import Dense as Dense, LayerNorm as LayerNorm
from ._meanfield import (
    meanfield_learning_rate as meanfield_learning_rate,
    meanfield_mlp as meanfield_mlp,
)
from ._spec import Layer as Layer

__all__ = [
    "ABRelu", "Abs", "Activation", "Cos", "Dense", "Elementwise", "Erf", "Exp", "Gelu",
    "Identity", "Layer", "LayerNorm", "LeakyRelu", "Monomial", "Parallel", "RectifiedMonomial",
    "Relu", "Residual", "Serial", "Sigmoid", "Sign", "Sin", "Softplus", "Swish", "Tanh",
    "meanfield_learning_rate", "meanfield_mlp", "mlp",
    "parallel", "residual", "serial",
]
