"""Mean-field (muP) MLPs, whose infinite-width training limit is the DMFT of ``dynamics.dmft``.

Bordelon & Pehlevan 2022, "Self-consistent dynamical field theory of kernel evolution in wide
neural networks" (arXiv 2205.09653), Sec. 3. With every weight N(0, 1) at initialisation::

    h^1 = W^0 x / sqrt(D),  h^{l+1} = W^l phi(h^l) / sqrt(N),  f = w . phi(h^L) / (gamma0 N),

trained by gradient descent on L = 1/2 mean_mu (f_mu - y_mu)^2 with learning rate
eta gamma0^2 N (``meanfield_learning_rate``). The hidden layers are NTK-parameterized ``Dense``
layers with ``w_std = 1`` and no bias; the readout is ``Dense(out_width, w_std=1/(gamma0
sqrt(N)))``, whose NTK scaling w_std/sqrt(N) gives exactly 1/(gamma0 N). ``w_std`` is a
hyperparameter leaf of the spec, not a trained parameter, so the trained parameters are the N(0, 1)
matrices W^l, w themselves and their gradients are those of the equations above.
"""

from __future__ import annotations

import numbers

import jax
import numpy as np

from .._checks import concrete, integer
from ._activations import Activation, Relu
from ._combinators import Serial, serial
from ._dense import Dense

__all__ = ["meanfield_mlp", "meanfield_learning_rate"]


def _check_gamma0(owner, gamma0):
    v = concrete(gamma0)
    if v is None:
        if isinstance(gamma0, jax.core.Tracer):
            return
        raise TypeError(f"{owner}: gamma0 must be a real scalar, got {gamma0!r}.")
    if v.shape != () or not np.issubdtype(v.dtype, np.number) or np.iscomplexobj(v):
        raise TypeError(f"{owner}: gamma0 must be a real scalar, got {gamma0!r}.")
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{owner}: gamma0 must be a finite number > 0 (gamma0 -> 0 is the lazy "
                         f"limit, whose readout scale 1/gamma0 diverges), got {v.item()!r}.")


def meanfield_mlp(width: int, depth: int, activation: Activation | None = None, gamma0=1.0, *,
                  out_width: int = 1) -> Serial:
    """A depth-L mean-field (muP) MLP of Bordelon & Pehlevan 2022 (eqs. above, no biases).

    ``depth`` L >= 1 hidden layers of ``width`` N, each ``Dense(N, w_std=1, b_std=None)``
    followed by ``activation`` (default ``Relu()``), then the readout
    ``Dense(out_width, w_std=1/(gamma0 sqrt(N)), b_std=None)``: for inputs x (n, D),
    ``f = phi(h^L) w / (gamma0 N)`` of shape (n, out_width). At initialisation f has mean 0 and
    variance Phi^L(x, x) / (gamma0^2 N) (Phi^L the NNGP of the last hidden layer): it vanishes at
    infinite width. ``gamma0`` > 0 (a hyperparameter leaf: it may be a traced array) sets the
    feature-learning strength; train with ``meanfield_learning_rate(eta, gamma0, width)``.

    >>> from widelimits import nets
    >>> net = nets.meanfield_mlp(100, 2, nets.Tanh(), gamma0=0.5)
    >>> round(float(net.layers[-1].w_std), 6)    # 1 / (gamma0 sqrt(N))
    0.2
    """
    integer("meanfield_mlp", "width", width)
    integer("meanfield_mlp", "out_width", out_width)
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or depth < 1:
        raise ValueError(f"meanfield_mlp: depth must be an int >= 1 (hidden layers), got {depth!r}.")
    activation = Relu() if activation is None else activation
    if not isinstance(activation, Activation):
        raise TypeError(f"meanfield_mlp: activation must be an activation spec such as "
                        f"nets.Relu(), got {activation!r}.")
    _check_gamma0("meanfield_mlp", gamma0)
    layers = []
    for _ in range(depth):
        layers += [Dense(width, w_std=1.0, b_std=None), activation]
    readout = Dense(out_width, w_std=1.0 / (gamma0 * np.sqrt(width)), b_std=None)
    return serial(*layers, readout)


def meanfield_learning_rate(eta, gamma0, width: int):
    """The learning rate ``eta gamma0^2 N`` of a width-N ``meanfield_mlp``.

    Gradient descent with this rate on L = 1/2 mean_mu (f_mu - y_mu)^2 (``dynamics.train``'s
    ``"mse"`` with one output) has a finite N -> infinity limit, the DMFT of ``dynamics.dmft``
    with time step ``eta`` (Bordelon & Pehlevan 2022, Sec. 3: dtheta/dt = -gamma0^2 N grad L).

    >>> from widelimits import nets
    >>> nets.meanfield_learning_rate(0.1, 2.0, 1000)
    400.0
    """
    integer("meanfield_learning_rate", "width", width)
    _check_gamma0("meanfield_learning_rate", gamma0)
    v = concrete(eta)
    if v is not None and (v.shape != () or not np.isfinite(v) or v <= 0):
        raise ValueError(f"meanfield_learning_rate: eta must be a finite number > 0, got {eta!r}.")
    return eta * gamma0**2 * width
