"""Linearised and quadratic (second-order Taylor) models of a network around its initial
parameters.

``linearize(f, params0)`` is the first-order model of Lee et al. 2019 ("Wide neural networks of
any depth evolve as linear models under gradient descent", eq. 5),

    f_lin(theta, x) = f(theta0, x) + J(theta0, x) (theta - theta0),

and ``quadratic(f, params0)`` adds the second-order term of the neural quadratic model (Zhu et
al. 2022, "Quadratic models for understanding neural network dynamics", eq. 3),

    f_quad(theta, x) = f_lin(theta, x) + 1/2 (theta - theta0)^T H_f(theta0, x) (theta - theta0).

Both are evaluated with forward-mode products (one ``jax.jvp``, resp. a ``jax.jvp`` of a
``jax.jvp``): no Jacobian or Hessian is ever formed, and the cost is a small multiple of one
forward pass. The models are pytrees (``params0`` and the network's hyperparameters are leaves),
so they pass through ``jax.jit``/``jax.vmap``/``jax.grad`` and one compilation of
``dynamics.train`` serves every linearisation point of the same shapes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .. import nets

__all__ = ["linearize", "quadratic", "Linearized", "Quadratic", "as_model"]


class _Static:
    """A pytree node without leaves wrapping a plain callable (compared by identity)."""

    __slots__ = ("fn",)

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, params, x):
        return self.fn(params, x)

    def __repr__(self):
        return getattr(self.fn, "__qualname__", type(self.fn).__name__)


class _Key:
    """Hashable-by-identity holder, so any callable can be pytree metadata."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __hash__(self):
        return id(self.obj)

    def __eq__(self, other):
        return isinstance(other, _Key) and other.obj is self.obj


jax.tree_util.register_pytree_node(
    _Static, lambda s: ((), _Key(s.fn)), lambda aux, _: _Static(aux.obj))


class _SpecApply:
    """``spec.apply`` as a pytree whose leaves are the spec's hyperparameters."""

    __slots__ = ("spec",)

    def __init__(self, spec):
        self.spec = spec

    def __call__(self, params, x):
        return self.spec.apply(params, x)

    def __repr__(self):
        return f"{self.spec!r}.apply"


jax.tree_util.register_pytree_node(
    _SpecApply, lambda s: ((s.spec,), None), lambda _, c: _SpecApply(c[0]))


def as_model(f, who: str):
    """``f`` as a pytree callable ``model(params, x)``: a widelimits spec or its bound ``apply``
    (the spec's hyperparameters become leaves), a callable that is already a pytree (e.g. the
    result of ``linearize``), or any other callable (kept as static metadata)."""
    if isinstance(f, nets.Layer):
        return _SpecApply(f)
    owner = getattr(f, "__self__", None)
    if isinstance(owner, nets.Layer) and getattr(f, "__name__", None) == "apply":
        return _SpecApply(owner)
    if not callable(f):
        raise TypeError(f"dynamics.{who}: f must be a callable f(params, x) or a widelimits "
                        f"network spec, got {f!r} of type {type(f).__name__}.")
    if isinstance(f, _Static | _SpecApply | _Taylor):
        return f
    if not jax.tree_util.treedef_is_leaf(jax.tree.structure(f)):
        return f  # a user's pytree callable (e.g. an equinox module): its leaves are traced
    return _Static(f)


def _delta(who, params, params0):
    p_def, p0_def = jax.tree.structure(params), jax.tree.structure(params0)
    if p_def != p0_def:
        raise ValueError(f"dynamics.{who}: params must have the structure of params0 "
                         f"({p0_def}), got {p_def}.")
    return jax.tree.map(lambda p, p0: jnp.asarray(p - p0, jnp.result_type(p0)), params, params0)


class _Taylor:
    """Common part of ``Linearized`` and ``Quadratic``: the network ``model`` and ``params0``."""

    __slots__ = ("model", "params0", "__weakref__")
    order = 0

    def __init__(self, model, params0):
        self.model = model
        self.params0 = params0

    def __repr__(self):
        return f"{type(self).__name__}({self.model!r})"

    # identity semantics: a model is a static argument of kernels.empirical_ntk's jit
    __hash__ = object.__hash__
    __eq__ = object.__eq__


class Linearized(_Taylor):
    """First-order Taylor model ``f(theta0, x) + J(theta0, x) (theta - theta0)`` (see module
    docstring). Call as ``f_lin(params, x)``; ``params`` has the structure of ``params0``."""

    __slots__ = ()
    order = 1

    def __call__(self, params, x):
        d = _delta("linearize", params, self.params0)
        f0, jd = jax.jvp(lambda p: self.model(p, x), (self.params0,), (d,))
        return f0 + jd


class Quadratic(_Taylor):
    """Second-order Taylor model ``f_lin(theta, x) + 1/2 d^T H_f(theta0, x) d`` with
    ``d = theta - theta0`` (see module docstring). Call as ``f_quad(params, x)``."""

    __slots__ = ()
    order = 2

    def __call__(self, params, x):
        d = _delta("quadratic", params, self.params0)

        def value_and_jd(p):  # (f(p), J(p) d)
            return jax.jvp(lambda q: self.model(q, x), (p,), (d,))

        (f0, jd), (_, hdd) = jax.jvp(value_and_jd, (self.params0,), (d,))
        return f0 + jd + 0.5 * hdd


for _cls in (Linearized, Quadratic):
    jax.tree_util.register_pytree_node(
        _cls, lambda m: ((m.model, m.params0), None),
        lambda _, c, cls=_cls: cls(*c))


def _make(cls, who, f, params0):
    model = as_model(f, who)
    leaves = jax.tree.leaves(params0)
    if not leaves:
        raise ValueError(f"dynamics.{who}: params0 has no array leaves, got {params0!r}.")
    for leaf in leaves:
        dt = jnp.result_type(leaf)
        if not jnp.issubdtype(dt, jnp.inexact):
            raise TypeError(f"dynamics.{who}: params0 leaves must be floating-point arrays, got "
                            f"dtype {dt}.")
    return cls(model, params0)


def linearize(f, params0) -> Linearized:
    """The linearised model of ``f`` around ``params0`` (Lee et al. 2019, eq. 5):
    ``f_lin(params, x) = f(params0, x) + J(params0, x) (params - params0)``.

    ``f``: a callable ``f(params, x)``, a widelimits spec or its bound ``apply``. Returns a
    callable pytree ``f_lin(params, x)`` with the output shape of ``f``, computed with one
    ``jax.jvp`` (cost ~ 2-3 forward passes, no Jacobian formed). It is exactly affine in
    ``params``, so its empirical NTK at any ``params`` is that of ``f`` at ``params0``. Works under
    ``jit``/``vmap``/``grad``, as ``f`` of ``dynamics.train`` and of ``kernels.empirical_ntk``.
    For ``train(..., ensemble=True)`` linearise at the stacked ``params0`` (members first): train
    maps over the members' linearisation points.
    """
    return _make(Linearized, "linearize", f, params0)


def quadratic(f, params0) -> Quadratic:
    """The neural quadratic model of ``f`` around ``params0`` (Zhu et al. 2022, eq. 3):
    ``f_lin(params, x) + 1/2 (params - params0)^T H_f(params0, x) (params - params0)``, with
    ``H_f`` the Hessian of each output in the parameters.

    Same arguments and uses as ``linearize``; the second-order term is a ``jax.jvp`` of a
    ``jax.jvp`` (a Hessian-vector-vector product, no Hessian formed; cost ~ 4-6 forward passes).
    """
    return _make(Quadratic, "quadratic", f, params0)
