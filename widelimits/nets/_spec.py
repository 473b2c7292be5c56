"""Base machinery shared by all network specs: pytree registration and argument checks.

A spec is a frozen dataclass. Fields marked ``static`` (widths, kinds, parameterization) are
pytree metadata; all other fields (``w_std``, ``b_std``, activation parameters) are array leaves,
so specs pass through ``jax.jit``/``jax.vmap``/``jax.grad`` and hyperparameters are
differentiable.
"""

from __future__ import annotations

import abc
import dataclasses
import numbers

import jax
import numpy as np

__all__ = ["Layer", "spec", "static", "check_nonnegative", "check_positive_int", "concrete"]


def static(default=dataclasses.MISSING, **kwargs):
    """A dataclass field stored as pytree metadata (not traced, part of the treedef)."""
    return dataclasses.field(default=default, metadata={"static": True}, **kwargs)


def spec(cls):
    """Make ``cls`` a frozen dataclass registered as a pytree (static fields as metadata).

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


def concrete(x):
    """``x`` as a NumPy array if its value is known now (not a tracer), else ``None``."""
    if isinstance(x, jax.core.Tracer):
        return None
    if isinstance(x, numbers.Number | np.ndarray | jax.Array):
        return np.asarray(x)
    return None


def check_nonnegative(owner: str, name: str, value):
    """Raise ``ValueError`` unless ``value`` is finite and >= 0 (checked when concrete)."""
    v = concrete(value)
    if v is None:
        return
    if v.shape != ():
        raise ValueError(f"{owner}: {name} must be a scalar, got an array of shape {v.shape}.")
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{owner}: {name} must be a finite number >= 0, got {v.item()!r}.")


def check_positive_int(owner: str, name: str, value):
    """Raise ``TypeError``/``ValueError`` unless ``value`` is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: {name} must be a positive int, got {value!r} "
                        f"of type {type(value).__name__}.")
    if value < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value}.")


def _fmt(v):
    c = concrete(v)
    if c is not None and c.shape == ():
        return repr(c.item())
    return repr(v)


class Layer(abc.ABC):
    """Base class of every spec: a finite network view (``init``/``apply``) and a compact repr."""

    @abc.abstractmethod
    def init(self, key, input_shape):
        """Random parameters for inputs of shape ``input_shape`` (``(n, d)`` or ``(d,)``)."""

    @abc.abstractmethod
    def apply(self, params, x):
        """Forward pass on ``x`` of shape ``(..., d)``; returns ``(..., out_features)``."""

    def out_features(self, in_features: int) -> int:
        """Number of output features given ``in_features`` input features."""
        return in_features

    def __repr__(self):
        parts = [f"{f.name}={_fmt(getattr(self, f.name))}" for f in dataclasses.fields(self)]
        return f"{type(self).__name__}({', '.join(parts)})"
