"""Elementwise activation specs.

Each activation is a frozen pytree dataclass: calling it applies the function, ``init``/``apply``
make it a layer. Parameters (``alpha``, ``a``, ``b``, ``c``) are array leaves; integer degrees and
user functions are static. Their infinite-width duals live in ``widelimits.kernels``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable

import jax
import jax.numpy as jnp

from ._spec import Layer, spec, static

__all__ = [
    "check_activation", "Activation", "Relu", "LeakyRelu", "Abs", "ABRelu", "Erf", "Gelu",
    "Sin", "Cos", "Tanh",
    "Sigmoid", "Softplus", "Swish", "Identity", "Sign", "RectifiedMonomial", "Monomial", "Exp",
    "Elementwise",
]


class Activation(Layer):
    """An elementwise nonlinearity ``phi``; ``act(x)`` evaluates it."""

    def __call__(self, x):
        return self.fn(jnp.asarray(x))

    @abc.abstractmethod
    def fn(self, x):
        """The elementwise function phi(x)."""

    def init(self, key, input_shape):
        return ()

    def apply(self, params, x):
        return self.fn(x)


def check_activation(owner: str, act, name: str = "activation"):
    """``act`` if it is an activation spec, else a ``TypeError`` naming ``owner`` and ``name``.

    >>> from widelimits import nets
    >>> nets.check_activation("my_function", nets.Tanh())
    Tanh()
    >>> nets.check_activation("my_function", "tanh")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: my_function: activation must be an activation spec such as nets.Relu(), got ...
    """
    if not isinstance(act, Activation):
        raise TypeError(f"{owner}: {name} must be an activation spec such as nets.Relu(), got "
                        f"{act!r} of type {type(act).__name__}.")
    return act


def _check_degree(owner, degree, minimum):
    if isinstance(degree, bool) or not isinstance(degree, int):
        raise TypeError(f"{owner}: degree must be an int, got {degree!r} "
                        f"of type {type(degree).__name__}.")
    if degree < minimum:
        raise ValueError(f"{owner}: degree must be >= {minimum}, got {degree}.")


@spec
class Relu(Activation):
    """max(x, 0)."""

    def fn(self, x):
        return jnp.maximum(x, 0)


@spec
class LeakyRelu(Activation):
    """max(x, 0) + alpha * min(x, 0)."""

    alpha: float = 0.01

    def fn(self, x):
        return jnp.where(x > 0, x, self.alpha * x)


@spec
class Abs(Activation):
    """|x|."""

    def fn(self, x):
        return jnp.abs(x)


@spec
class ABRelu(Activation):
    """a * min(x, 0) + b * max(x, 0) (LeakyRelu: a=alpha, b=1; Abs: a=-1, b=1)."""

    a: float = 0.0
    b: float = 1.0

    def fn(self, x):
        return self.a * jnp.minimum(x, 0) + self.b * jnp.maximum(x, 0)


@spec
class Erf(Activation):
    """a * erf(b x) + c."""

    a: float = 1.0
    b: float = 1.0
    c: float = 0.0

    def fn(self, x):
        return self.a * jax.scipy.special.erf(self.b * x) + self.c


@spec
class Gelu(Activation):
    """Exact GELU x * Phi(x), Phi the standard normal CDF."""

    def fn(self, x):
        return jax.nn.gelu(x, approximate=False)


@spec
class Sin(Activation):
    """a * sin(b x + c)."""

    a: float = 1.0
    b: float = 1.0
    c: float = 0.0

    def fn(self, x):
        return self.a * jnp.sin(self.b * x + self.c)


@spec
class Cos(Activation):
    """a * cos(b x + c)."""

    a: float = 1.0
    b: float = 1.0
    c: float = 0.0

    def fn(self, x):
        return self.a * jnp.cos(self.b * x + self.c)


@spec
class Tanh(Activation):
    """tanh(x) (infinite-width dual by Hermite expansion)."""

    def fn(self, x):
        return jnp.tanh(x)


@spec
class Sigmoid(Activation):
    """Logistic sigmoid 1 / (1 + exp(-x)) (dual by Hermite expansion)."""

    def fn(self, x):
        return jax.nn.sigmoid(x)


@spec
class Softplus(Activation):
    """log(1 + exp(x)) (dual by Hermite expansion)."""

    def fn(self, x):
        return jax.nn.softplus(x)


@spec
class Swish(Activation):
    """x * sigmoid(x), also called SiLU (dual by Hermite expansion)."""

    def fn(self, x):
        return jax.nn.silu(x)


@spec
class Identity(Activation):
    """x."""

    def fn(self, x):
        return x


@spec
class Sign(Activation):
    """sign(x); its derivative is taken as 0 (almost everywhere), so it blocks the NTK."""

    def fn(self, x):
        return jnp.sign(x)


@spec
class RectifiedMonomial(Activation):
    """max(x, 0)^degree, degree >= 1 (arc-cosine kernel of that order; Cho & Saul 2009)."""

    degree: int = static(2)

    def __post_init__(self):
        _check_degree("RectifiedMonomial", self.degree, 1)

    def fn(self, x):
        return jnp.maximum(x, 0) ** self.degree


@spec
class Monomial(Activation):
    """x^degree, degree >= 0."""

    degree: int = static(2)

    def __post_init__(self):
        _check_degree("Monomial", self.degree, 0)

    def fn(self, x):
        return x**self.degree


@spec
class Exp(Activation):
    """a * exp(b x)."""

    a: float = 1.0
    b: float = 1.0

    def fn(self, x):
        return self.a * jnp.exp(self.b * x)


@spec
class Elementwise(Activation):
    """Any user function ``func`` (jax-traceable, differentiable almost everywhere).

    Its infinite-width dual is ``dual`` when given: a closed form ``dual(q11, q12, q22) ->
    (V, Vdot)`` with ``V = E[func(u) func(v)]`` and ``Vdot = E[func'(u) func'(v)]`` for centred
    Gaussians of covariance ``[[q11, q12], [q12, q22]]`` (arrays broadcast; the signature of the
    functions ``kernels.dual`` returns). Otherwise it is a Hermite expansion of ``order`` terms
    (``kernels.hermite_dual``), whose accuracy depends on the smoothness of ``func``.
    ``func``, ``dual``, ``name`` and ``order`` are static (hashable callables).

    >>> import jax.numpy as jnp
    >>> from widelimits import kernels, nets
    >>> lin = nets.Elementwise(lambda x: 2 * x, name="2x",
    ...                        dual=lambda q11, q12, q22: (4 * q12, 4 + 0 * q12))
    >>> [float(v) for v in kernels.dual(lin)(1.0, 0.5, 1.0)]
    [2.0, 4.0]
    """

    func: Callable = static()
    name: str = static("")
    order: int = static(384)
    dual: Callable | None = static(None)

    def __post_init__(self):
        if not callable(self.func):
            raise TypeError(f"Elementwise: func must be callable, got {self.func!r}.")
        _check_degree("Elementwise(order)", self.order, 2)
        if self.dual is not None and not callable(self.dual):
            raise TypeError(f"Elementwise: dual must be None or a callable dual(q11, q12, q22) "
                            f"-> (V, Vdot), got {self.dual!r}.")

    def fn(self, x):
        return self.func(x)

    def __repr__(self):
        name = self.name or getattr(self.func, "__name__", repr(self.func))
        return f"Elementwise({name})"
