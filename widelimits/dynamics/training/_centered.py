"""The centred, scaled model of lazy training (Chizat, Oyallon & Bach 2019, "On lazy training in
differentiable programming", NeurIPS, arXiv 1812.07956, Sec. 2 and Thm. 2.3):

    g(theta, x) = alpha [h(theta, x) - h(theta0, x)].

Gradient descent with step eta on the objective R(g) / alpha^2 is gradient descent with learning
rate eta / alpha^2 on R(g). At initialisation g = 0 and its tangent kernel is alpha^2 times that
of h, so the function-space step does not depend on alpha; over a fixed horizon the parameters
move by O(1/alpha) and the kernel by O(1/alpha): large alpha is lazy (the kernel regime), small
alpha rich (features move).

``theta0`` and ``alpha`` ride in the parameters behind ``jax.lax.stop_gradient``: the optimizer
leaves them where they are, the empirical NTK is the one in ``theta``, and one compiled
``dynamics.train`` program serves every alpha, or an ensemble with one alpha per member.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..._model import as_model

__all__ = ["Centered"]

_KEYS = ("alpha", "theta", "theta0")


class Centered:
    """The centred, scaled model ``g(p, x) = alpha [h(theta, x) - h(theta0, x)]`` of Chizat,
    Oyallon & Bach 2019 (see the module docstring), with ``p = {"theta": theta,
    "theta0": theta0, "alpha": alpha}`` (``Centered.init_params`` builds it).

    ``h``: anything ``dynamics.train`` accepts — a widelimits spec or its bound ``apply``, a
    callable pytree (e.g. ``dynamics.linearize(net, theta0)``: the centred linearised model) or
    a callable ``h(theta, x)``. ``theta0`` and ``alpha`` enter through ``jax.lax.stop_gradient``,
    so gradients (and the empirical NTK) are those in ``theta`` only: d g / d theta = alpha
    d h / d theta. A pytree (``h``'s leaves are its leaves) that passes through ``jax.jit``,
    ``jax.vmap`` and ``jax.grad``; train it like a network, with learning rate eta / alpha^2 to
    run gradient descent on R(g) / alpha^2.

    >>> import jax, jax.numpy as jnp, optax
    >>> from widelimits import dynamics, nets
    >>> net = nets.mlp(32, 1, nets.Tanh())
    >>> x, y = jnp.ones((2, 3)), jnp.array([[1.0], [1.0]])
    >>> theta0 = net.init(jax.random.key(0), x.shape)
    >>> g = dynamics.Centered(net)
    >>> p = g.init_params(theta0, 10.0)
    >>> g(p, x).tolist()                                  # zero at initialisation
    [[0.0], [0.0]]
    >>> res = dynamics.train(g, p, x, y, optax.sgd(0.5 / 10.0**2), 50, progress=False)
    >>> bool(res.loss[-1] < 1e-3 * res.loss[0]), float(res.params["alpha"])  # alpha is fixed
    (True, 10.0)
    """

    __slots__ = ("h", "__weakref__")

    def __init__(self, h):
        self.h, _ = as_model(h, who="dynamics.Centered")

    def __call__(self, params, x):
        if not isinstance(params, dict) or set(params) != set(_KEYS):
            got = sorted(params) if isinstance(params, dict) else type(params).__name__
            raise ValueError(f"dynamics.Centered: params must be a dict with keys {list(_KEYS)} "
                             f"(see Centered.init_params), got {got}.")
        alpha = jax.lax.stop_gradient(params["alpha"])
        theta0 = jax.lax.stop_gradient(params["theta0"])
        return alpha * (self.h(params["theta"], x) - self.h(theta0, x))

    @staticmethod
    def init_params(theta0, alpha) -> dict:
        """The parameters at the start, ``{"theta": theta0, "theta0": theta0, "alpha": alpha}``.

        ``alpha``: a positive scale, or an array of them (E,) for an ensemble of E members
        (``dynamics.train(..., ensemble=True)``): ``theta0`` is then repeated along a new
        leading member axis. ``alpha`` takes the dtype of ``theta0``'s leaves.
        """
        dtype = jnp.result_type(*jax.tree.leaves(theta0))
        alpha = jnp.asarray(alpha, dtype)
        if alpha.ndim > 1:
            raise ValueError(f"dynamics.Centered.init_params: alpha must be a scalar or a 1-D "
                             f"array (one per ensemble member), got shape {alpha.shape}.")
        stack = lambda t: jax.tree.map(  # noqa: E731
            lambda a: jnp.broadcast_to(jnp.asarray(a), alpha.shape + jnp.shape(a)), t)
        return {"theta": stack(theta0), "theta0": stack(theta0), "alpha": alpha}

    def __repr__(self):
        return f"Centered({self.h!r})"

    # identity semantics, like the Taylor models: a model is a static argument of jitted kernels
    __hash__ = object.__hash__
    __eq__ = object.__eq__


def _unflatten(_, children):
    obj = object.__new__(Centered)  # no validation: jax rebuilds pytrees with placeholders
    obj.h = children[0]
    return obj


jax.tree_util.register_pytree_node(Centered, lambda m: ((m.h,), None), _unflatten)
