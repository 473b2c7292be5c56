"""Base machinery shared by all network specs: the ``Layer`` base class and pytree registration.

A spec is a frozen dataclass. Fields marked ``static`` (widths, kinds, parameterization) are
pytree metadata; all other fields (``w_std``, ``b_std``, activation parameters) are array leaves,
so specs pass through ``jax.jit``/``jax.vmap``/``jax.grad`` and hyperparameters are
differentiable.
"""

from __future__ import annotations

import abc
import dataclasses

import jax

from .._checks import concrete

__all__ = ["Layer", "spec", "static"]


def static(default=dataclasses.MISSING, **kwargs):
    """A dataclass field stored as pytree metadata (not traced, part of the treedef): widths,
    kinds, flags. Use it inside a class decorated with ``nets.spec``; fields without it are array
    leaves (differentiable hyperparameters).

    >>> from widelimits import nets
    >>> @nets.spec
    ... class Shift(nets.Layer):
    ...     width: int = nets.static(4)
    ...     b: float = 0.5
    ...     def init(self, key, input_shape):
    ...         return ()
    ...     def apply(self, params, x):
    ...         return x + self.b
    >>> import jax
    >>> jax.tree.leaves(Shift())
    [0.5]
    """
    return dataclasses.field(default=default, metadata={"static": True}, **kwargs)


def spec(cls):
    """Make ``cls`` a frozen dataclass registered as a pytree (static fields as metadata), the
    decorator of every layer spec.

    >>> import jax
    >>> from widelimits import nets
    >>> @nets.spec
    ... class Gain(nets.Layer):
    ...     c: float = 2.0
    ...     def init(self, key, input_shape):
    ...         return ()
    ...     def apply(self, params, x):
    ...         return self.c * x
    >>> jax.tree.leaves(Gain(3.0)), Gain(3.0) == Gain(3.0)
    ([3.0], True)

    Registered with an explicit flatten/unflatten rather than ``jax.tree_util.register_dataclass``:
    with the latter (jax 0.10) treedefs of two *different* classes with the same field names
    compare equal, so ``jit`` could reuse a trace of ``Sin`` for ``Cos``. Unflattening bypasses
    ``__init__`` so placeholder leaves (tracers, ``None``) are never validated.
    """
    cls = dataclasses.dataclass(frozen=True, repr=False)(cls)
    fields = dataclasses.fields(cls)
    static_names = tuple(f.name for f in fields if f.metadata.get("static", False))
    data_names = tuple(f.name for f in fields if not f.metadata.get("static", False))

    def flatten_with_keys(obj):
        children = tuple((jax.tree_util.GetAttrKey(n), getattr(obj, n)) for n in data_names)
        return children, tuple(getattr(obj, n) for n in static_names)

    def unflatten(aux, children):
        obj = object.__new__(cls)
        for n, v in zip(static_names + data_names, tuple(aux) + tuple(children), strict=True):
            object.__setattr__(obj, n, v)
        return obj

    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten)
    return cls


def _fmt(v):
    c = concrete(v)
    if c is not None and c.shape == ():
        return repr(c.item())
    if isinstance(v, jax.core.Tracer):  # inside a trace (e.g. in an error message of a view)
        return f"<traced {v.dtype}{list(v.shape)}>"
    return repr(v)


class Layer(abc.ABC):
    """Base class of every spec: the finite network (``init``/``apply``), its shape contract
    (``output_shape``) and a compact repr.

    A new layer is a frozen dataclass decorated with ``nets.spec``: static fields (``nets.static``)
    are widths and kinds, the others array leaves (hyperparameters). Its infinite-width and other
    views are rules registered per view (``kernels.register_analytic``, ...). Example:

    >>> import jax, jax.numpy as jnp
    >>> from widelimits import nets
    >>> @nets.spec
    ... class Scale(nets.Layer):
    ...     c: float = 2.0
    ...     def init(self, key, input_shape):
    ...         return ()
    ...     def apply(self, params, x):
    ...         return self.c * x
    >>> Scale().output_shape((5, 3))
    (5, 3)
    >>> Scale(3.0).apply((), jnp.ones(2)).tolist()
    [3.0, 3.0]
    """

    @abc.abstractmethod
    def init(self, key, input_shape):
        """Random parameters for inputs of shape ``input_shape`` (``(n, d)`` or ``(d,)``)."""

    @abc.abstractmethod
    def apply(self, params, x):
        """Forward pass on ``x`` of shape ``input_shape``; returns ``output_shape(x.shape)``."""

    def output_shape(self, input_shape: tuple) -> tuple:
        """Shape of ``apply(params, x)`` for ``x`` of shape ``input_shape`` (batch axes first,
        features last). The default keeps the shape (elementwise layers)."""
        return tuple(input_shape)

    def __repr__(self):
        if not dataclasses.is_dataclass(self):  # a subclass not decorated with nets.spec
            return f"{type(self).__name__}()"
        parts = [f"{f.name}={_fmt(getattr(self, f.name))}" for f in dataclasses.fields(self)]
        return f"{type(self).__name__}({', '.join(parts)})"
