"""The network of ``dynamics.dmft``, read from its mean-field spec (a view of the spec tree).

``dynamics.dmft`` takes the network as ``nets.meanfield_mlp(width, depth, activation, gamma0)``:
``depth`` hidden layers ``Dense(N, w_std=1, b_std=None)`` (Gaussian weights, NTK
parameterization), each followed by the same activation, then the readout
``Dense(1, w_std=1/(gamma0 sqrt(N)), b_std=None)`` (Bordelon & Pehlevan 2022, Sec. 3). This
module reads depth, activation and gamma0 = 1 / (w_std sqrt(N)) back from such a tree, with one
rule per layer type registered in the view ``"dynamics.dmft"`` (``Dense``, ``Activation``,
``Serial``); any other layer (``LayerNorm``, ``residual``, ...) raises the registry's
``UnsupportedLayer``, and a tree of the right layers in the wrong arrangement a ``TypeError``
or ``ValueError`` naming the layer and what the mean-field structure needs there.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

from ... import nets
from ..._checks import concrete
from ..._registry import Registry, where

__all__ = ["MEANFIELD", "MeanField", "read_meanfield"]

WHO = "dynamics.dmft"
_SHAPE = "nets.meanfield_mlp(width, depth, activation, gamma0)"
MEANFIELD = Registry(WHO, noun="mean-field rule",
                     hint=f"dynamics.dmft takes the mean-field spec {_SHAPE}.")


class MeanField(NamedTuple):
    """What the DMFT needs of a mean-field spec."""

    depth: int  # hidden layers L
    activation: nets.Activation
    gamma0: float  # 1 / (readout w_std * sqrt(N))
    width: int  # N (irrelevant to the DMFT, its N -> infinity limit)


class _Reading(NamedTuple):
    """The state of the walk: hidden layers read so far, their activation (and where it was),
    and the last ``Dense`` not yet followed by an activation (the readout, if nothing follows)."""

    hidden: tuple = ()  # ((width, path), ...)
    activation: tuple | None = None  # (spec, path)
    pending: tuple | None = None  # (Dense, path)


def _read(layer, state, path):
    return MEANFIELD.rule(layer, path)(layer, state, path)


@MEANFIELD.register(nets.Serial)
def _serial(layer, state, path):
    for i, sub in enumerate(layer.layers):
        state = _read(sub, state, f"{path}serial[{i}].")
    return state


@MEANFIELD.register(nets.Dense)
def _dense(layer, state, path):
    at = where(path, layer)
    if state.pending is not None:
        raise TypeError(f"{WHO}: the hidden Dense at {where(*state.pending[::-1])} must be "
                        f"followed by an activation, got another Dense at {at}; the mean-field "
                        f"spec is {_SHAPE}.")
    if layer.parameterization != "ntk":
        raise ValueError(f"{WHO}: Dense at {at} has parameterization="
                         f"{layer.parameterization!r}; the mean-field spec uses 'ntk' (weights "
                         "N(0, 1), scaled by w_std / sqrt(fan-in)).")
    if layer.weights != "gaussian":
        raise ValueError(f"{WHO}: Dense at {at} has weights={layer.weights!r}; the DMFT is "
                         "derived for Gaussian weights (weights='gaussian').")
    if layer.b_std is not None:
        raise ValueError(f"{WHO}: Dense at {at} has a bias (b_std={layer.b_std!r}); the "
                         "mean-field spec has none (b_std=None).")
    return state._replace(pending=(layer, path))


@MEANFIELD.register(nets.Activation)
def _activation(layer, state, path):
    if state.pending is None:
        raise TypeError(f"{WHO}: the activation at {where(path, layer)} must follow a hidden "
                        f"Dense layer; the mean-field spec is {_SHAPE}.")
    dense, dense_path = state.pending
    w = concrete(dense.w_std)
    if w is None or w.shape != () or float(w) != 1.0:
        raise ValueError(f"{WHO}: the hidden Dense at {where(dense_path, dense)} has w_std="
                         f"{dense.w_std!r}; the mean-field spec has w_std=1 in every hidden "
                         "layer (h = W x / sqrt(fan-in), W ~ N(0, 1)).")
    if state.activation is not None and not _same(state.activation[0], layer):
        first, first_path = state.activation
        raise ValueError(f"{WHO}: every hidden layer must use one activation, got "
                         f"{first!r} at {where(first_path)} and {layer!r} at {where(path)}.")
    return state._replace(hidden=state.hidden + ((dense.width, dense_path),),
                          activation=state.activation or (layer, path), pending=None)


def _same(a, b):
    """Whether two activation specs are equal (type, static fields and leaf values)."""
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    return ta == tb and all(np.array_equal(np.asarray(u), np.asarray(v))
                            for u, v in zip(la, lb, strict=True))


def read_meanfield(net) -> MeanField:
    """Depth, activation, gamma0 and width of the mean-field spec ``net`` (module docstring);
    ``TypeError``/``ValueError`` naming what differs from the mean-field structure."""
    if not isinstance(net, nets.Layer):
        raise TypeError(f"{WHO}: net must be the mean-field spec {_SHAPE} (its depth, activation "
                        f"and gamma0 define the network), got {net!r} of type "
                        f"{type(net).__name__}.")
    state = _read(net, _Reading(), "")
    if state.pending is None:
        raise TypeError(f"{WHO}: the spec must end in the readout Dense(1, w_std=1/(gamma0 "
                        f"sqrt(N)), b_std=None); it ends in "
                        f"{'an activation' if state.hidden else 'nothing'}. Use {_SHAPE}.")
    readout, readout_path = state.pending
    if not state.hidden:
        raise TypeError(f"{WHO}: the spec needs at least one hidden layer (Dense(N, w_std=1, "
                        f"b_std=None) and an activation) before the readout at "
                        f"{where(readout_path, readout)}. Use {_SHAPE}.")
    widths = {w for w, _ in state.hidden}
    if len(widths) != 1:
        raise ValueError(f"{WHO}: the hidden layers must share one width N, got "
                         f"{[w for w, _ in state.hidden]}.")
    if readout.width != 1:
        raise ValueError(f"{WHO}: the readout at {where(readout_path, readout)} has "
                         f"{readout.width} outputs; the DMFT here is for one output "
                         "(out_width=1).")
    width = widths.pop()
    w = concrete(readout.w_std)
    if w is None or w.shape != () or not np.isfinite(w) or w <= 0:
        raise ValueError(f"{WHO}: the readout w_std must be a concrete number > 0 (it is "
                         f"1/(gamma0 sqrt(N))), got {readout.w_std!r}.")
    gamma0 = 1.0 / (float(w) * np.sqrt(width))
    return MeanField(len(state.hidden), state.activation[0], gamma0, width)
