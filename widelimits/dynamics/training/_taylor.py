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
``dynamics.train`` serves every linearisation point of the same shapes. ``f`` is anything
``dynamics.train`` accepts: a spec, its ``apply``, a ``flax.nnx`` Module or a callable
``f(params, x)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..._model import as_model

__all__ = ["Linearized", "Quadratic", "linearize", "quadratic"]


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
    docstring). Call as ``f_lin(params, x)``; ``params`` has the structure of ``params0``.

    >>> import jax.numpy as jnp
    >>> from widelimits import dynamics
    >>> f_lin = dynamics.linearize(lambda p, x: jnp.sin(p * x), jnp.array(0.0))
    >>> float(f_lin(jnp.array(0.5), 2.0))   # sin(0) + cos(0) * 2 * 0.5
    1.0
    """

    __slots__ = ()
    order = 1

    def __call__(self, params, x):
        d = _delta("linearize", params, self.params0)
        f0, jd = jax.jvp(lambda p: self.model(p, x), (self.params0,), (d,))
        return f0 + jd


class Quadratic(_Taylor):
    """Second-order Taylor model ``f_lin(theta, x) + 1/2 d^T H_f(theta0, x) d`` with
    ``d = theta - theta0`` (see module docstring). Call as ``f_quad(params, x)``.

    >>> import jax.numpy as jnp
    >>> from widelimits import dynamics
    >>> f_quad = dynamics.quadratic(lambda p, x: jnp.exp(p * x), jnp.array(0.0))
    >>> float(f_quad(jnp.array(1.0), 1.0))   # 1 + 1 + 1/2
    2.5
    """

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
    model, _ = as_model(f, who=f"dynamics.{who}")
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

    >>> import jax.numpy as jnp
    >>> from widelimits import dynamics, nets
    >>> net = nets.Dense(1, w_std=2.0)                  # affine in its parameters W, b
    >>> p0 = {"W": jnp.zeros((2, 1)), "b": jnp.zeros(1)}
    >>> f_lin = dynamics.linearize(net, p0)
    >>> p = {"W": jnp.ones((2, 1)), "b": jnp.ones(1)}
    >>> x = jnp.array([[1.0, 1.0]])
    >>> round(float(f_lin(p, x)[0, 0]), 4), round(float(net.apply(p, x)[0, 0]), 4)  # 2 sqrt(2)
    (2.8284, 2.8284)
    """
    return _make(Linearized, "linearize", f, params0)


def quadratic(f, params0) -> Quadratic:
    """The neural quadratic model of ``f`` around ``params0`` (Zhu et al. 2022, eq. 3):
    ``f_lin(params, x) + 1/2 (params - params0)^T H_f(params0, x) (params - params0)``, with
    ``H_f`` the Hessian of each output in the parameters.

    Same arguments and uses as ``linearize``; the second-order term is a ``jax.jvp`` of a
    ``jax.jvp`` (a Hessian-vector-vector product, no Hessian formed; cost ~ 4-6 forward passes).

    >>> import jax.numpy as jnp
    >>> from widelimits import dynamics
    >>> f_quad = dynamics.quadratic(lambda p, x: (p * x) ** 2, jnp.array(1.0))
    >>> float(f_quad(jnp.array(3.0), 1.0))   # exact for a quadratic: 9
    9.0
    """
    return _make(Quadratic, "quadratic", f, params0)
