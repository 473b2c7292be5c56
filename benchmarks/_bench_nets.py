"""Pure-JAX networks shared by ``empirical_ntk.py`` and its neural-tangents worker, so both
libraries differentiate the same function with the same parameters (NTK parameterization)."""

import jax
import jax.numpy as jnp


def mlp_apply(params, x):
    """3 hidden ReLU layers and a linear readout; params W0..W3 (in, out), b0..b3 (out,)."""
    for i in range(4):
        w = params[f"W{i}"]
        x = x @ w / jnp.sqrt(w.shape[0]) + params[f"b{i}"]
        if i < 3:
            x = jax.nn.relu(x)
    return x


def cnn_apply(params, x):
    """Two 3x3 SAME convolutions (ReLU), global average pooling, a linear readout. x: NHWC."""
    for i in range(2):
        w = params[f"C{i}"]
        fan_in = w.shape[0] * w.shape[1] * w.shape[2]
        x = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        x = jax.nn.relu(x / jnp.sqrt(fan_in) + params[f"c{i}"])
    x = x.mean(axis=(1, 2))
    return x @ params["W"] / jnp.sqrt(params["W"].shape[0]) + params["b"]
