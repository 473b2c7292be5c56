"""Convolution, pooling and flattening layers on channels-last inputs ``(n, *spatial, C)``.

Conventions and defaults follow neural-tangents 0.6.5's ``stax`` (``Conv``, ``AvgPool``,
``SumPool``, ``GlobalAvgPool``, ``GlobalSumPool``, ``Flatten``) so that its users' networks and
numbers carry over; the one difference is ``Conv``'s ``b_std=0.0`` default (as ``Dense``'s).
Axis 0 is the batch; ``Conv`` and the window pools also take extra leading batch axes, or none.
"""

from __future__ import annotations

import abc
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._checks import integer, nonnegative
from ._dense import PARAMETERIZATIONS
from ._spec import Layer, spec, static

__all__ = ["Conv", "AvgPool", "SumPool", "GlobalAvgPool", "GlobalSumPool", "Flatten",
           "PADDINGS"]

PADDINGS = ("VALID", "SAME", "CIRCULAR")


def _ints(owner, name, value):
    if isinstance(value, int):
        value = (value,)
    try:
        value = tuple(value)
    except TypeError:
        raise TypeError(f"{owner}: {name} must be a tuple of positive ints, "
                        f"got {value!r}.") from None
    if not value:
        raise ValueError(f"{owner}: {name} must have at least one entry, got {value!r}.")
    return tuple(integer(owner, f"{name}[{i}]", v) for i, v in enumerate(value))


def _windowed(owner, window, strides, padding, name="filter_shape"):
    """Checked (window, strides, padding); strides default to 1 per spatial axis."""
    window = _ints(owner, name, window)
    strides = (1,) * len(window) if strides is None else _ints(owner, "strides", strides)
    if len(strides) != len(window):
        raise ValueError(f"{owner}: strides {strides} must have one entry per spatial axis of "
                         f"{name} {window}.")
    if padding not in PADDINGS:
        raise ValueError(f"{owner}: padding must be one of {PADDINGS}, got {padding!r}.")
    return window, strides


def _spatial(owner, input_shape, s):
    """(batch axes, spatial shape, channels) of ``input_shape`` for ``s`` spatial axes."""
    shape = tuple(input_shape)
    if len(shape) < s + 1:
        raise ValueError(f"{owner}: inputs need {s} spatial axes and a channel axis last, got "
                         f"shape {shape}.")
    return shape[:-s - 1], shape[-s - 1:-1], integer(owner, "input channels", shape[-1])


def _out_size(size, window, stride, padding):
    if padding == "VALID":
        out = -(-(size - window + 1) // stride)
        if out < 1:
            raise ValueError(f"padding='VALID': a window of {window} does not fit in a spatial "
                             f"axis of size {size}.")
        return out
    return -(-size // stride)


def _pads(spatial, window, strides, padding):
    """Low/high padding per spatial axis (lax's rule for "SAME"; none for "VALID")."""
    if padding == "VALID":
        return [(0, 0)] * len(spatial)
    return lax.padtype_to_pads(spatial, window, strides, "SAME")


def _with_one_batch_axis(x, s, fn):
    """``fn`` on ``x`` reshaped to exactly one batch axis (any number of them, or none)."""
    lead = x.shape[:-s - 1]
    y = fn(x.reshape((math.prod(lead),) + x.shape[-s - 1:]))
    return y.reshape(lead + y.shape[1:])


def _padded(x, pads, padding):
    """(x, padding for lax) of one-batch-axis ``x``: "CIRCULAR" wraps ``x`` itself around,
    the other paddings are left to lax."""
    if padding == "CIRCULAR":
        return jnp.pad(x, [(0, 0)] + list(pads) + [(0, 0)], mode="wrap"), [(0, 0)] * len(pads)
    return x, pads


@spec
class Conv(Layer):
    """Convolution ``z(a) = sum_{b in F} x(s a + b) W(b) + bias`` over the spatial axes.

    Inputs ``(n, *spatial, C_in)`` (channels last, ``len(filter_shape)`` spatial axes; more
    leading batch axes or none also work); outputs ``(n, *spatial_out, features)``. ``padding``:
    ``"VALID"`` (no padding), ``"SAME"`` (zeros, output size ``ceil(size / stride)``) or
    ``"CIRCULAR"`` (wrap-around, sizes as ``"SAME"``). ``strides`` default to 1.

    ``parameterization="ntk"`` (Novak et al. 2019; Arora et al. 2019): ``W, b ~ N(0, 1)`` and
    ``z = (w_std / sqrt(C_in |F|)) conv(x, W) + b_std b``; ``"standard"``: ``W ~ N(0, w_std^2 /
    (C_in |F|))``, ``b ~ N(0, b_std^2)`` trained directly. ``b_std=None``: no bias. As
    neural-tangents 0.6.5's ``stax.Conv`` except the default ``b_std=0.0`` (there ``None``).

    >>> import jax, jax.numpy as jnp
    >>> from widelimits import nets
    >>> conv = nets.Conv(4, (3, 3), padding="SAME")
    >>> conv.output_shape((2, 8, 8, 3))
    (2, 8, 8, 4)
    >>> x = jnp.ones((2, 8, 8, 3))
    >>> conv.apply(conv.init(jax.random.key(0), x.shape), x).shape
    (2, 8, 8, 4)

    Attributes:
      features: output channels (static).
      filter_shape, strides, padding, parameterization: static.
      w_std, b_std: weight and bias standard deviations (array leaves, differentiable).
    """

    features: int = static()
    filter_shape: tuple = static()
    strides: tuple | None = static(None)
    padding: str = static("VALID")
    w_std: float = 1.0
    b_std: float | None = 0.0
    parameterization: str = static("ntk")

    def __post_init__(self):
        integer("Conv", "features", self.features)
        window, strides = _windowed("Conv", self.filter_shape, self.strides, self.padding)
        object.__setattr__(self, "filter_shape", window)
        object.__setattr__(self, "strides", strides)
        nonnegative("Conv", "w_std", self.w_std)
        nonnegative("Conv", "b_std", self.b_std)
        if self.parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"Conv: parameterization must be one of {PARAMETERIZATIONS}, "
                             f"got {self.parameterization!r}.")

    def output_shape(self, input_shape):
        lead, spatial, _ = _spatial("Conv", input_shape, len(self.filter_shape))
        return lead + tuple(_out_size(n, f, s, self.padding) for n, f, s in
                            zip(spatial, self.filter_shape, self.strides, strict=True)) + (
            self.features,)

    def init(self, key, input_shape, dtype=None):
        _, _, c_in = _spatial("Conv", input_shape, len(self.filter_shape))
        self.output_shape(input_shape)  # the window fits
        dtype = dtype or jnp.result_type(float)
        kw, kb = jax.random.split(key)
        params = {"W": jax.random.normal(kw, self.filter_shape + (c_in, self.features), dtype)}
        if self.b_std is not None:
            params["b"] = jax.random.normal(kb, (self.features,), dtype)
        if self.parameterization == "standard":
            params["W"] = params["W"] * (self.w_std / math.sqrt(c_in * math.prod(
                self.filter_shape)))
            if "b" in params:
                params["b"] = params["b"] * self.b_std
        return params

    def apply(self, params, x):
        s = len(self.filter_shape)
        _, spatial, c_in = _spatial("Conv.apply", x.shape, s)
        if params["W"].shape[-2] != c_in:
            raise ValueError(f"Conv.apply: x has {c_in} channels on its last axis but the "
                             f"weights expect {params['W'].shape[-2]} (shape {x.shape}).")
        pads = _pads(spatial, self.filter_shape, self.strides, self.padding)
        ndim = s + 2
        dims = lax.ConvDimensionNumbers(lhs_spec=(0, ndim - 1) + tuple(range(1, ndim - 1)),
                                        rhs_spec=(ndim - 1, ndim - 2) + tuple(range(s)),
                                        out_spec=(0, ndim - 1) + tuple(range(1, ndim - 1)))

        def conv(xb):
            xb, padding = _padded(xb, pads, self.padding)
            return lax.conv_general_dilated(xb, params["W"].astype(xb.dtype), self.strides,
                                            padding, dimension_numbers=dims)

        z = _with_one_batch_axis(x, s, conv)
        if self.parameterization == "standard":
            return z + params["b"] if "b" in params else z
        z = z * (self.w_std / math.sqrt(c_in * math.prod(self.filter_shape)))
        return z + self.b_std * params["b"] if "b" in params else z


@spec
class _WindowPool(Layer):
    """Shared window pooling: a sum over windows of ``window_shape`` positions, scaled by
    ``_scale``."""

    window_shape: tuple = static()
    strides: tuple | None = static(None)
    padding: str = static("VALID")

    def __post_init__(self):
        window, strides = _windowed(type(self).__name__, self.window_shape, self.strides,
                                    self.padding, name="window_shape")
        object.__setattr__(self, "window_shape", window)
        object.__setattr__(self, "strides", strides)

    def _scale(self):
        return 1.0

    def output_shape(self, input_shape):
        lead, spatial, c = _spatial(type(self).__name__, input_shape, len(self.window_shape))
        return lead + tuple(_out_size(n, w, s, self.padding) for n, w, s in
                            zip(spatial, self.window_shape, self.strides, strict=True)) + (c,)

    def init(self, key, input_shape):
        self.output_shape(input_shape)
        return ()

    def apply(self, params, x):
        s = len(self.window_shape)
        _, spatial, _ = _spatial(type(self).__name__ + ".apply", x.shape, s)
        pads = _pads(spatial, self.window_shape, self.strides, self.padding)

        def pool(xb):
            xb, padding = _padded(xb, pads, self.padding)
            return lax.reduce_window(xb, np.zeros((), xb.dtype), lax.add,  # a window sum
                                     (1,) + self.window_shape + (1,),
                                     (1,) + self.strides + (1,),
                                     [(0, 0)] + list(padding) + [(0, 0)])

        return _with_one_batch_axis(x, s, pool) * self._scale()


@spec
class AvgPool(_WindowPool):
    """Average over windows of ``window_shape`` positions: ``mean_{b in w} x(s a + b)``.

    Inputs ``(n, *spatial, C)``; ``strides`` default to 1 and ``padding`` is ``"VALID"``,
    ``"SAME"`` or ``"CIRCULAR"``, as in neural-tangents 0.6.5's ``stax.AvgPool`` (whose
    ``normalize_edges=False`` this is: zeros padded under ``"SAME"`` count in the mean).

    >>> import jax.numpy as jnp
    >>> from widelimits import nets
    >>> x = jnp.arange(4.0).reshape(1, 4, 1)
    >>> nets.AvgPool((2,), strides=(2,)).apply((), x)[0, :, 0].tolist()
    [0.5, 2.5]
    """

    def _scale(self):
        return 1.0 / math.prod(self.window_shape)


@spec
class SumPool(_WindowPool):
    """Sum over windows of ``window_shape`` positions (``AvgPool`` without the 1/|w|).

    >>> import jax.numpy as jnp
    >>> from widelimits import nets
    >>> x = jnp.arange(4.0).reshape(1, 4, 1)
    >>> nets.SumPool((2,), strides=(2,)).apply((), x)[0, :, 0].tolist()
    [1.0, 5.0]
    """


class _GlobalPool(Layer):
    """Reduce every axis between the batch axis 0 and the channel axis -1."""

    @abc.abstractmethod
    def _reduce(self, x, axes):
        """``x`` reduced over ``axes`` (the spatial ones)."""

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) < 3:
            raise ValueError(f"{type(self).__name__}: inputs must be (n, *spatial, C) with at "
                             f"least one spatial axis, got shape {shape}.")
        return (shape[0], shape[-1])

    def init(self, key, input_shape):
        self.output_shape(input_shape)
        return ()

    def apply(self, params, x):
        self.output_shape(x.shape)
        return self._reduce(x, tuple(range(1, x.ndim - 1)))


@spec
class GlobalAvgPool(_GlobalPool):
    """Mean over all spatial positions: ``(n, *spatial, C) -> (n, C)`` (neural-tangents'
    ``stax.GlobalAvgPool``).

    >>> import jax.numpy as jnp
    >>> from widelimits import nets
    >>> nets.GlobalAvgPool().apply((), jnp.arange(6.0).reshape(1, 3, 2)).tolist()
    [[2.0, 3.0]]
    """

    def _reduce(self, x, axes):
        return jnp.mean(x, axis=axes)


@spec
class GlobalSumPool(_GlobalPool):
    """Sum over all spatial positions: ``(n, *spatial, C) -> (n, C)``.

    >>> import jax.numpy as jnp
    >>> from widelimits import nets
    >>> nets.GlobalSumPool().apply((), jnp.arange(6.0).reshape(1, 3, 2)).tolist()
    [[6.0, 9.0]]
    """

    def _reduce(self, x, axes):
        return jnp.sum(x, axis=axes)


@spec
class Flatten(Layer):
    """All axes after the batch axis 0 as one: ``(n, *spatial, C) -> (n, prod(spatial) C)``, in
    row-major order (neural-tangents' ``stax.Flatten``). A following ``Dense`` then has fan-in
    ``prod(spatial) C``.

    >>> from widelimits import nets
    >>> nets.Flatten().output_shape((2, 4, 4, 3))
    (2, 48)
    """

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) < 2:
            raise ValueError(f"Flatten: inputs must have a batch axis and at least one more, "
                             f"got shape {shape}.")
        return (shape[0], math.prod(shape[1:]))

    def init(self, key, input_shape):
        self.output_shape(input_shape)
        return ()

    def apply(self, params, x):
        return x.reshape(self.output_shape(x.shape))
