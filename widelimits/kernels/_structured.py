"""Structured NTK of our own network specs: one contraction per trained layer.

The empirical NTK is a sum over trained layers, Theta = sum_layers J_layer J_layer^T. A forward
pass of the batch records every trained layer's input x and (through a zero "probe" added to
its output z) the cotangents delta^k = d f_k / d z (k backward passes, one per output); each
layer's term is then a contraction of (x_i, delta_i) with (x_j, delta_j). For a Dense layer
z = c x W + s b (c = w_std/sqrt(n_in), s = b_std in the NTK parameterization; c = 1, s = 1 in
the standard one) it is

    Theta_W+b(x_i, x_j)[k, l] = (c^2 x_i . x_j + s^2) (delta_i^k . delta_j^l),

so no Jacobian is formed: n1 n2 (n_in + k width) multiply-adds per layer (Novak et al. 2022,
"Fast Finite Width Neural Tangent Kernel", structured derivatives of fully connected layers).
A ``Conv``, and a Dense applied at every position of inputs (n, *positions, n_in), sum this over
pairs of positions (a, a') with the input window ("patch") the layer reads at a in place of x:

    Theta_W+b(x_i, x_j)[k, l] = c^2 sum_{a, a'} <patch_i(a), patch_j(a')> delta_i^k(a) . delta_j^l(a')
                                + s^2 (sum_a delta_i^k(a)) . (sum_a' delta_j^l(a')),

contracted through per-example weight gradients or the patch Gram matrix, whichever is cheaper
for the shapes (``_structured_conv``, which states the FLOPs and memory of both).

Each layer type has one rule ``rule(layer, params, x, tape, path) -> y`` in ``STRUCTURED``. A
rule for a trained layer calls ``tape.tap(layer, params, x, y, contract)``. Layers without one
of their own fall back on the rule for ``nets.Layer``: no parameters, the plain ``apply``;
parameters, a tap whose contraction uses the layer's per-example parameter gradients (exact, at
O(n k P_layer) memory). Users register faster contractions with ``register_structured``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .. import nets
from .._registry import Registry
from ._structured_conv import conv_contract, positions_contract

__all__ = ["STRUCTURED", "Tape", "feature_kernels", "forward", "record", "register_structured",
           "structured_ntk", "readout_nngp"]

STRUCTURED = Registry("kernels.empirical_ntk(method='structured')")
READOUT = Registry("kernels.empirical_nngp", noun="readout rule",
                   hint="A spec's empirical NNGP is the expectation over its last layer, which "
                        "must be a nets.Dense (e.g. a serial(...) ending in one); pass the "
                        "feature map f(params, x) instead to get f(x1) . f(x2) / O.")


class Tape:
    """What a structured forward pass records: for every trained layer, its spec, parameters,
    input and contraction (``taps``) and its output (``outputs``); the outputs of every
    activation (``features``). ``probes[i]`` (zeros whose cotangents are the deltas) is added to
    the i-th trained layer's output, unless ``probes`` is None. ``kernels.record`` runs a net
    with a fresh tape."""

    def __init__(self, probes=None):
        self.probes = probes
        self.taps, self.outputs, self.features = [], [], []

    def tap(self, layer, params, x, y, contract):
        """Record a trained layer (input ``x``, output ``y``) and return ``y`` plus its probe.
        ``contract(layer, params, x1, x2, delta1, delta2, output)`` gives its NTK term: for
        inputs (n1, ...), (n2, ...) and output cotangents delta (k, n, *y.shape[1:]), the
        (n1, n2, k, k) blocks (``output="full"``) or their mean over k = l, (n1, n2)
        (``output="trace"``)."""
        self.taps.append((layer, params, x, contract))
        self.outputs.append(y)
        return y if self.probes is None else y + self.probes[len(self.taps) - 1]


def forward(layer, params, x, tape, path=""):
    """``layer.apply(params, x)`` through the structured rules, recording on ``tape``."""
    return STRUCTURED.rule(layer, path)(layer, params, x, tape, path)


def record(net, params, x):
    """``(net.apply(params, x), tape)``: the forward pass of a finite network through the
    structured rules and the ``Tape`` of what it saw: every trained layer's spec, parameters,
    input and output (``tape.taps``, ``tape.outputs``) and every activation's output
    (``tape.features``), in forward order.

    >>> import jax, jax.numpy as jnp
    >>> from widelimits import kernels, nets
    >>> net = nets.mlp(8, 2, nets.Tanh())
    >>> x = jnp.ones((3, 2))
    >>> y, tape = kernels.record(net, net.init(jax.random.key(0), x.shape), x)
    >>> y.shape, [z.shape for z in tape.outputs], len(tape.features)
    ((3, 1), [(3, 8), (3, 8), (3, 1)], 2)
    """
    tape = Tape()
    return forward(net, params, x, tape), tape


def register_structured(*layer_types):
    """Decorator registering ``rule(layer, params, x, tape, path) -> y`` as the structured
    empirical-NTK rule of ``layer_types``: it computes the layer's output and, for a trained
    layer, returns ``tape.tap(layer, params, x, y, contract)`` (see ``Tape.tap`` for
    ``contract``). Optional: without one, a layer's term comes from its per-example parameter
    gradients. Returns the rule unchanged.

    >>> import jax, jax.numpy as jnp
    >>> from widelimits import kernels, nets
    >>> @nets.spec
    ... class Bias(nets.Layer):  # y = x + s b, b ~ N(0, 1) trained: its NTK term is s^2
    ...     s: float = 1.0
    ...     def init(self, key, input_shape):
    ...         return {"b": jax.random.normal(key, input_shape[-1:])}
    ...     def apply(self, params, x):
    ...         return x + self.s * params["b"]
    >>> def bias_term(layer, params, x1, x2, d1, d2, output):
    ...     if output == "trace":
    ...         return layer.s**2 * jnp.einsum("kib,kjb->ij", d1, d2) / d1.shape[0]
    ...     return layer.s**2 * jnp.einsum("kib,ljb->ijkl", d1, d2)
    >>> @kernels.register_structured(Bias)
    ... def _bias(layer, params, x, tape, path):
    ...     return tape.tap(layer, params, x, layer.apply(params, x), bias_term)
    >>> net = nets.serial(Bias(0.5), nets.Dense(1, b_std=None))
    >>> x = jnp.ones((2, 3))
    >>> p = net.init(jax.random.key(0), x.shape)
    >>> a = kernels.empirical_ntk(net, p, x, method="structured")
    >>> b = kernels.empirical_ntk(net, p, x, method="jacobian")
    >>> bool(jnp.allclose(a, b, rtol=1e-5))
    True
    """
    return STRUCTURED.register(*layer_types)


def _per_example_grads(layer, params, x, delta):
    """Leaves (k, n, *leaf): d/dparams of delta^k_i . layer(params, x_i), per output k and input i."""
    def one(xi, di):
        _, vjp = jax.vjp(lambda p: layer.apply(p, xi[None])[0], params)
        return vjp(di)[0]

    return jax.vmap(jax.vmap(one), (None, 0))(x, delta)


def _gradient_contract(layer, params, x1, x2, d1, d2, output):
    """Any layer's NTK term from its per-example parameter gradients."""
    g1 = _per_example_grads(layer, params, x1, d1)
    g2 = g1 if (x2 is x1 and d2 is d1) else _per_example_grads(layer, params, x2, d2)
    total = 0.0
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2), strict=True):
        a, b = a.reshape(a.shape[:2] + (-1,)), b.reshape(b.shape[:2] + (-1,))
        total = total + (jnp.einsum("kip,kjp->ij", a, b) / a.shape[0] if output == "trace"
                         else jnp.einsum("kip,ljp->ijkl", a, b))
    return total


@STRUCTURED.register(nets.Layer)
def _generic(layer, params, x, tape, path):
    y = layer.apply(params, x)
    if not jax.tree.leaves(params):
        return y  # activations, LayerNorm: nothing trained
    return tape.tap(layer, params, x, y, _gradient_contract)


@STRUCTURED.register(nets.Activation)
def _activation(layer, params, x, tape, path):
    y = layer.apply(params, x)
    tape.features.append(y)
    return y


def feature_kernels(net, params, x1, x2=None):
    """Feature kernels Phi^l(x1, x2) = phi(h^l(x1)) . phi(h^l(x2)) / N_l of a finite network:
    one per activation layer of ``net`` (in forward order), each the mean over its N_l units of
    the products of the activation's outputs. ``x1`` (n1, d), ``x2`` (n2, d) or None (x1).
    Returns (L, n1, n2). These are the kernels whose evolution the feature-learning limit
    describes (Bordelon & Pehlevan 2022, eq. 8: Phi^l = phi(h^l) . phi(h^l) / N).

    >>> import jax, jax.numpy as jnp
    >>> from widelimits import kernels, nets
    >>> net = nets.mlp(256, 2, nets.Relu())
    >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> phi = kernels.feature_kernels(net, net.init(jax.random.key(0), x.shape), x)
    >>> phi.shape, round(float(phi[0, 0, 0]), 1)   # E relu(u)^2 = q / 2 with q = 1/2
    ((2, 2, 2), 0.2)
    """
    def features(x):
        return [f.reshape(x.shape[0], -1) for f in record(net, params, x)[1].features]

    f1 = features(x1)
    f2 = f1 if x2 is None else features(x2)
    if not f1:
        raise ValueError(f"kernels.feature_kernels: {net!r} has no activation layer.")
    return jnp.stack([a @ b.T / a.shape[1] for a, b in zip(f1, f2, strict=True)])


def _dense_coefficients(layer, n_in):
    """(c^2, s^2): the weight and bias factors of a Dense layer's NTK contribution."""
    has_bias = layer.b_std is not None
    if layer.parameterization == "standard":
        return 1.0, 1.0 if has_bias else 0.0
    return layer.w_std**2 / n_in, layer.b_std**2 if has_bias else 0.0


def _dense_contract(layer, params, x1, x2, d1, d2, output):
    cw, cb = _dense_coefficients(layer, x1.shape[-1])
    if x1.ndim > 2:  # applied at every position (a, a'): sum over pairs of positions
        p1 = x1.reshape(x1.shape[0], -1, x1.shape[-1])
        p2 = p1 if x2 is x1 else x2.reshape(x2.shape[0], -1, x2.shape[-1])
        e1 = d1.reshape(d1.shape[0], d1.shape[1], -1, d1.shape[-1])
        e2 = e1 if d2 is d1 else d2.reshape(d2.shape[0], d2.shape[1], -1, d2.shape[-1])
        return positions_contract(cw, cb, p1, p2, e1, e2, output)
    g = cw * (x1 @ x2.T) + cb  # (n1, n2)
    if output == "trace":
        return g * jnp.einsum("lib,ljb->ij", d1, d2) / d1.shape[0]
    return g[:, :, None, None] * jnp.einsum("lib,mjb->ijlm", d1, d2)


@STRUCTURED.register(nets.Dense)
def _dense(layer, params, x, tape, path):
    return tape.tap(layer, params, x, layer.apply(params, x), _dense_contract)


@STRUCTURED.register(nets.Conv)
def _conv(layer, params, x, tape, path):
    return tape.tap(layer, params, x, layer.apply(params, x), conv_contract)


@STRUCTURED.register(nets.Serial)
def _serial(layer, params, x, tape, path):
    for i, (p, sub) in enumerate(zip(params, layer.layers, strict=True)):
        x = forward(sub, p, x, tape, f"{path}serial[{i}].")
    return x


@STRUCTURED.register(nets.Residual)
def _residual(layer, params, x, tape, path):
    return x + layer.scale * forward(layer.block, params, x, tape, f"{path}residual.")


@STRUCTURED.register(nets.Parallel)
def _parallel(layer, params, x, tape, path):
    outs = [forward(b, p, x, tape, f"{path}parallel[{i}].")
            for i, (p, b) in enumerate(zip(params, layer.branches, strict=True))]
    return sum(outs[1:], outs[0])


def _taps(net, params, x):
    """Forward pass of ``net`` on ``x`` (n, ...) recording every trained layer.

    Returns ``(out, taps, deltas)``: the output (n, k), the taps (layer, params, input,
    contract) and the cotangents delta (k, n, ...) = d out[:, l] / d z of every trained layer's
    output z (rows are independent, so one backward pass per output gives every example's)."""
    shapes = jax.eval_shape(lambda p, x: record(net, p, x)[1].outputs, params, x)
    probes = [jnp.zeros(s.shape, s.dtype) for s in shapes]
    tape = Tape(probes)

    def fwd(probes):
        tape.probes, tape.taps = probes, []
        out = forward(net, params, x, tape)
        return out.reshape(x.shape[0], -1), [t[2] for t in tape.taps]

    out, vjp, inputs = jax.vjp(fwd, probes, has_aux=True)
    taps = [(layer, p, xi, c) for (layer, p, _, c), xi in zip(tape.taps, inputs, strict=True)]
    eye = jnp.eye(out.shape[1], dtype=out.dtype)
    (deltas,) = jax.vmap(lambda e: vjp(jnp.broadcast_to(e, out.shape)))(eye)
    return out, taps, deltas


def structured_ntk(net, params, x1, x2, output, diagonal):
    """Empirical NTK of our spec ``net`` by per-layer contractions (see the module docstring).

    ``output``: "trace" (mean over the k outputs) or "full" (k x k blocks). ``diagonal``: only
    Theta(x1_i, x1_i) (x2 ignored); x2=None means x1. Returns (n1, n2), (n1, n2, k, k), (n1,)
    or (n1, k, k).
    """
    _, taps1, d1 = _taps(net, params, x1)
    if diagonal or x2 is None:
        taps2, d2 = taps1, d1
    else:
        _, taps2, d2 = _taps(net, params, x2)
    total = 0.0
    for (layer, p, a1, contract), (_, _, a2, _), e1, e2 in zip(taps1, taps2, d1, d2, strict=True):
        if diagonal:
            def one(xi, ei, layer=layer, p=p, contract=contract):
                return contract(layer, p, xi[None], xi[None], ei[:, None], ei[:, None],
                                output)[0, 0]
            total = total + jax.vmap(one, (0, 1))(a1, e1)
        else:
            total = total + contract(layer, p, a1, a2, e1, e2, output)
    return total


def readout_nngp(net, params, x1, x2, path=""):
    """E over the last layer's parameters of f(x1) f(x2) (n1, n2), given the layers before it:
    for a Dense readout, (w_std^2 / n) phi(x1) . phi(x2) + b_std^2 with phi the n features
    entering it (Lee et al. 2018, eq. 4)."""
    return READOUT.rule(net, path)(net, params, x1, x2, path)


@READOUT.register(nets.Serial)
def _serial_readout(net, params, x1, x2, path):
    if not net.layers:
        raise READOUT.unsupported(net, path, "an empty serial has no readout layer")
    body = nets.serial(*net.layers[:-1])
    phi1 = body.apply(params[:-1], x1)
    phi2 = None if x2 is None else body.apply(params[:-1], x2)
    return readout_nngp(net.layers[-1], params[-1], phi1, phi2,
                        f"{path}serial[{len(net.layers) - 1}].")


@READOUT.register(nets.Dense)
def _dense_readout(layer, params, phi1, phi2, path):
    phi2 = phi1 if phi2 is None else phi2
    b2 = 0.0 if layer.b_std is None else layer.b_std**2
    return layer.w_std**2 * (phi1 @ phi2.T) / phi1.shape[-1] + b2
