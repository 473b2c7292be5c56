"""Reference convolutional architectures built from the layer specs: the Myrtle networks of
Shankar et al. 2020 and a Wide ResNet in the style of neural-tangents' README.

Both return a plain ``nets.serial`` spec, so every view works on them: ``init``/``apply`` of
the finite network on channels-last images ``(n, H, W, C)`` and ``kernels.analytic`` for the
infinite-width NNGP/NTK (which needs the covariance between all pairs of positions here, as the
pooling layers mix them).
"""

from __future__ import annotations

import math

from .._checks import integer
from ._activations import Relu
from ._combinators import Serial, parallel, residual, serial
from ._conv import AvgPool, Conv, GlobalAvgPool
from ._dense import PARAMETERIZATIONS, Dense

__all__ = ["MYRTLE_STAGES", "myrtle", "wide_resnet"]

# Convolutions per stage of Myrtle-5/7/10 (Shankar et al. 2020, Sec. 4 and Fig. 2; the depth
# counts the convolutions and the readout: 2+1+1+1 = 5, 2+2+2+1 = 7, 3+3+3+1 = 10).
MYRTLE_STAGES = {5: (2, 1, 1), 7: (2, 2, 2), 10: (3, 3, 3)}
_SQRT2 = math.sqrt(2.0)


def _parameterization(owner, parameterization):
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(f"{owner}: parameterization must be one of {PARAMETERIZATIONS}, got "
                         f"{parameterization!r}.")
    return parameterization


def myrtle(depth: int = 5, width: int = 128, *, out_width: int = 1, w_std=_SQRT2,
           b_std=0.0, parameterization: str = "ntk") -> Serial:
    """The Myrtle network of depth 5, 7 or 10 (Shankar et al. 2020, "Neural kernels without
    tangents", Sec. 4, Fig. 2; after D. Page's "myrtle" ResNet for fast CIFAR-10 training).

    Three stages of ``MYRTLE_STAGES[depth]`` (``(2, 1, 1)``, ``(2, 2, 2)``, ``(3, 3, 3)``)
    blocks ``Conv(width, (3, 3), padding="SAME")`` + ``Relu``, a 2x2 average pooling (stride 2)
    after the first two stages, then global average pooling and a ``Dense(out_width)`` readout.
    On 32x32 inputs the global pooling is the paper's three further 2x2 poolings (8x8 -> 1x1);
    written as ``GlobalAvgPool`` it takes any input of at least 4x4 (8x8 digits: 8 -> 4 -> 2).
    ``w_std`` (default √2, the paper's and neural-tangents' example's choice, which keeps the
    ReLU variance fixed) and ``b_std`` apply to every convolution and the readout.

    Inputs ``(n, H, W, C)``; outputs ``(n, out_width)``; the infinite-width kernel is the same
    scalar kernel for every output (``K ⊗ I_out_width``).

    >>> from widelimits import nets
    >>> net = nets.myrtle(5, width=8, out_width=10)
    >>> [type(layer).__name__ for layer in net.layers][:6]
    ['Conv', 'Relu', 'Conv', 'Relu', 'AvgPool', 'Conv']
    >>> sum(isinstance(layer, nets.Conv) for layer in net.layers)
    4
    >>> net.output_shape((2, 8, 8, 1))   # kernels.analytic(net, x) gives (2, 2) kernels
    (2, 10)
    """
    owner = "nets.myrtle"
    if integer(owner, "depth", depth) not in MYRTLE_STAGES:
        raise ValueError(f"{owner}: depth must be one of {sorted(MYRTLE_STAGES)}, got {depth!r}.")
    integer(owner, "width", width)
    integer(owner, "out_width", out_width)
    _parameterization(owner, parameterization)
    kw = dict(w_std=w_std, b_std=b_std, parameterization=parameterization)
    layers = []
    for stage, n_convs in enumerate(MYRTLE_STAGES[depth]):
        if stage:
            layers.append(AvgPool((2, 2), strides=(2, 2)))
        for _ in range(n_convs):
            layers += [Conv(width, (3, 3), padding="SAME", **kw), Relu()]
    return serial(*layers, GlobalAvgPool(), Dense(out_width, **kw))


def _wrn_block(channels, strides, conv_shortcut, kw):
    """Relu -> Conv(3x3, strides) -> Relu -> Conv(3x3), plus the identity or a 3x3 Conv."""
    main = serial(Relu(), Conv(channels, (3, 3), strides=strides, padding="SAME", **kw),
                  Relu(), Conv(channels, (3, 3), padding="SAME", **kw))
    if not conv_shortcut:
        return residual(main)
    return parallel(main, Conv(channels, (3, 3), strides=strides, padding="SAME", **kw))


def wide_resnet(depth: int = 10, width_factor: int = 1, *, channels: int = 16,
                out_width: int = 1, w_std=1.0, b_std=0.0, parameterization: str = "ntk"
                ) -> Serial:
    """A Wide ResNet WRN-``depth``-``width_factor`` (Zagoruyko & Komodakis 2016) without batch
    normalisation, as in neural-tangents' README example ("Infinitely WideResnet").

    ``Conv(channels, 3x3)``, then three groups of ``n = (depth - 4) / 6`` blocks with
    ``channels * width_factor * (1, 2, 4)`` channels and strides 1, 2, 2, then global average
    pooling and ``Dense(out_width)``. A block is ``Relu -> Conv(3x3, strides) -> Relu ->
    Conv(3x3)`` summed with a shortcut: a ``Conv(3x3, strides)`` for the first block of each
    group (``nets.parallel``, where channels or strides change), the identity for the others
    (``nets.residual``). ``depth`` = 6n + 4 counts the convolutions: the first, two per block and
    the three group shortcuts (10, 16, 22, 28, ...). ``w_std`` (default 1, neural-tangents' default) and
    ``b_std`` apply to every layer. The README pools with ``AvgPool((8, 8))`` + ``Flatten``, the
    same as ``GlobalAvgPool`` on its 32x32 inputs; this one takes any size of at least 3x3.

    Inputs ``(n, H, W, C)``; outputs ``(n, out_width)`` (kernel ``K ⊗ I_out_width``).

    >>> from widelimits import nets
    >>> net = nets.wide_resnet(16, width_factor=2, channels=4, out_width=3)
    >>> [len(group.layers) for group in net.layers[1:4]]   # blocks per group
    [2, 2, 2]
    >>> net.output_shape((2, 8, 8, 1))   # 8x8 -> 8x8 -> 4x4 -> 2x2, pooled
    (2, 3)
    """
    owner = "nets.wide_resnet"
    depth = integer(owner, "depth", depth)
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"{owner}: depth must be 6n + 4 with n >= 1 blocks per group "
                         f"(10, 16, 22, 28, ...), got {depth}.")
    integer(owner, "width_factor", width_factor)
    integer(owner, "channels", channels)
    integer(owner, "out_width", out_width)
    _parameterization(owner, parameterization)
    kw = dict(w_std=w_std, b_std=b_std, parameterization=parameterization)
    n = (depth - 4) // 6
    layers = [Conv(channels, (3, 3), padding="SAME", **kw)]
    for scale, stride in ((1, 1), (2, 2), (4, 2)):
        c = channels * width_factor * scale
        layers.append(serial(*[_wrn_block(c, (stride, stride) if i == 0 else (1, 1), i == 0, kw)
                               for i in range(n)]))
    return serial(*layers, GlobalAvgPool(), Dense(out_width, **kw))
