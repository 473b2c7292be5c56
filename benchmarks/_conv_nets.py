"""The convolutional networks of ``conv_kernels.py``, described once and built in either library.

A description is a list of layers ``("conv", channels)`` (3x3, SAME, W_std = sqrt(2),
b_std = 0.1, NTK parameterization), ``("relu",)``, ``("avgpool",)`` (2x2, strides 2, VALID),
``("gap",)`` (global average pooling) and ``("dense", width)``. Standard library only at import:
each builder imports its own library, so the neural-tangents worker (its own venv) and the
driver share this file.
"""

import math

W_STD, B_STD = math.sqrt(2.0), 0.1

CNN_GAP = [("conv", 64), ("relu",)] * 3 + [("gap",), ("dense", 1)]
# Myrtle-5 (Shankar et al. 2020): convolutions per stage 2, 1, 1 with 2x2 average pooling between
# the stages; on 8x8 images the last stage ends in global average pooling.
MYRTLE5 = ([("conv", 64), ("relu",)] * 2 + [("avgpool",)] + [("conv", 64), ("relu",)]
           + [("avgpool",)] + [("conv", 64), ("relu",)] + [("gap",), ("dense", 1)])
NETWORKS = {"cnn-gap": CNN_GAP, "myrtle5": MYRTLE5}


def widelimits_net(desc):
    from widelimits import nets

    make = {
        "conv": lambda c: nets.Conv(c, (3, 3), padding="SAME", w_std=W_STD, b_std=B_STD),
        "relu": nets.Relu,
        "avgpool": lambda: nets.AvgPool((2, 2), strides=(2, 2)),
        "gap": nets.GlobalAvgPool,
        "dense": lambda w: nets.Dense(w, w_std=W_STD, b_std=B_STD),
    }
    return nets.serial(*(make[kind](*args) for kind, *args in desc))


def stax_net(desc):
    from neural_tangents import stax

    make = {
        "conv": lambda c: stax.Conv(c, (3, 3), padding="SAME", W_std=W_STD, b_std=B_STD),
        "relu": stax.Relu,
        "avgpool": lambda: stax.AvgPool((2, 2), strides=(2, 2)),
        "gap": stax.GlobalAvgPool,
        "dense": lambda w: stax.Dense(w, W_std=W_STD, b_std=B_STD),
    }
    return stax.serial(*(make[kind](*args) for kind, *args in desc))
