"""The one adapter from "a network" to a pytree callable ``model(params, x)``.

Functions that take a network (``kernels.empirical_ntk``, ``dynamics.train``,
``dynamics.linearize``, ...) accept a widelimits spec, its bound ``spec.apply``, a ``flax.nnx``
Module, a callable that is itself a pytree (a linearised model, an equinox module) or any other
callable ``f(params, x)``. ``as_model`` turns each into a pytree callable: a spec's
hyperparameters become leaves (so one compilation serves every ``w_std``), a plain callable is
static metadata compared by identity.
"""

from __future__ import annotations

import jax

from .nets import Layer

__all__ = ["SpecApply", "Static", "as_model", "spec_of"]


class _Key:
    """Hashable-by-identity holder, so any callable can be pytree metadata."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __hash__(self):
        return id(self.obj)

    def __eq__(self, other):
        return isinstance(other, _Key) and other.obj is self.obj


class Static:
    """A pytree node without leaves wrapping a plain callable (compared by identity)."""

    __slots__ = ("fn",)

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, params, x):
        return self.fn(params, x)

    def __repr__(self):
        return getattr(self.fn, "__qualname__", type(self.fn).__name__)


jax.tree_util.register_pytree_node(
    Static, lambda s: ((), _Key(s.fn)), lambda aux, _: Static(aux.obj))


class SpecApply:
    """``spec.apply`` as a pytree whose leaves are the spec's hyperparameters."""

    __slots__ = ("spec",)

    def __init__(self, spec):
        self.spec = spec

    def __call__(self, params, x):
        return self.spec.apply(params, x)

    def __repr__(self):
        return f"{self.spec!r}.apply"


jax.tree_util.register_pytree_node(
    SpecApply, lambda s: ((s.spec,), None), lambda _, c: SpecApply(c[0]))


def _nnx_module(f):
    try:
        from flax import nnx
    except ImportError:  # pragma: no cover - flax is a dependency
        return None
    return nnx if isinstance(f, nnx.Module) else None


def as_model(f, params=None, *, who: str, need_params: bool = False):
    """``(model, params)``: ``f`` as a pytree callable ``model(params, x)``.

    ``f``: a widelimits spec or its bound ``apply`` (-> ``SpecApply``), a ``flax.nnx`` Module
    (split into its ``nnx.Param`` state, which becomes ``params`` when ``params`` is None), a
    callable pytree (kept), or any other callable (-> ``Static``). ``who`` names the caller in
    errors; ``need_params`` raises ``ValueError`` if ``params`` is still None.
    """
    owner = getattr(f, "__self__", None)
    if isinstance(f, Layer):
        model = SpecApply(f)
    elif isinstance(owner, Layer) and getattr(f, "__name__", None) == "apply":
        model = SpecApply(owner)
    elif (nnx := _nnx_module(f)) is not None:
        graphdef, state, rest = nnx.split(f, nnx.Param, ...)
        params = state if params is None else params
        model = Static(lambda p, x: nnx.merge(graphdef, p, rest)(x))
    elif not callable(f):
        raise TypeError(f"{who}: f must be a callable f(params, x), a widelimits network spec or "
                        f"a flax.nnx Module, got {f!r} of type {type(f).__name__}.")
    elif isinstance(f, Static | SpecApply) or not jax.tree_util.treedef_is_leaf(
            jax.tree.structure(f)):
        model = f  # already a pytree callable (e.g. dynamics.linearize's result, an eqx module)
    else:
        model = Static(f)
    if need_params and params is None:
        raise ValueError(f"{who}: params is None; pass the parameters of f(params, x) (only a "
                         "flax.nnx Module carries its own).")
    return model, params


def spec_of(model):
    """The widelimits spec behind ``model`` (from ``as_model``), else ``None``."""
    return model.spec if isinstance(model, SpecApply) else None
