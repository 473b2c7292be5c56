"""Empirical (finite-width) NTK and NNGP of any JAX function ``f(params, x)``.

Three ways to compute Theta(x1, x2)[k, l] = sum_p df_k(x1)/dp df_l(x2)/dp, with N = n1 + n2
inputs, O outputs, P parameters and F the forward FLOPs of one input (Novak et al. 2022, "Fast
Finite Width Neural Tangent Kernel", Table 1):

- ``"jacobian"``: per-input Jacobians (N O P numbers), contracted over parameters. FLOPs
  ~ 3 N O F + n1 n2 O P (O^2 P for ``output="full"``); memory N O P.
- ``"ntvp"``: NTK-vector products, one vjp at x2 then one jvp at x1 per column (j, l), never
  holding more than ``batch_size`` columns of P numbers. FLOPs ~ 3 n1 n2 O F; memory ~ P.
- ``"structured"``: our own specs only; one contraction per trained layer (see
  ``_structured``; Dense on (n, d): FLOPs ~ 3 N O F + n1 n2 sum_layers (n_in + O width),
  memory N O sum widths). ``Conv`` (and a Dense applied at every position of (n, *spatial, C)
  inputs) contracts its input patches with its output cotangents, by per-example weight
  gradients (FLOPs 2 N O P_pos |F| C_in C_out, memory N O |F| C_in C_out) or through the
  patch Gram matrix (FLOPs 2 n1 n2 P_pos^2 (|F| C_in + O C_out), memory 2 n1 n2 P_pos^2),
  whichever is cheaper for the shapes (see ``_structured_conv``). A layer without a
  structured rule contracts its per-example parameter gradients, N O P_layer numbers.

``"auto"`` takes ``"structured"`` for a widelimits spec, on (n, d) and on spatial
(n, *spatial, C) inputs alike: measured on CPU (float32, 2 cores) for a three-Conv network
(Conv-Relu-Conv-Relu-AvgPool-Conv-Relu-GlobalAvgPool-Dense, 3x3 SAME) with O = 10 outputs it
is 1-2.6x faster than ``"jacobian"`` for n = 8-16 inputs of 8x8 and 16x16 pixels and 4.5-7x
faster for 32x32 pixels or 128 channels; with O = 1 it is within 1.3x of ``"jacobian"`` either
way; and it holds at most one layer's share of the Jacobian. For any other ``f``, ``"auto"``
takes the cheaper of the other two in FLOPs among those needing at most ``AUTO_MEMORY_BYTES``
(F and P are counted from the traced program: dot and convolution FLOPs plus one per other
output element).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .._model import as_model, spec_of
from ._structured import readout_nngp, structured_ntk
from ._tiling import tiled_pair, tiled_rows

__all__ = ["empirical_ntk", "empirical_nngp", "METHODS", "AUTO_MEMORY_BYTES"]

METHODS = ("auto", "jacobian", "ntvp", "structured")
OUTPUTS = ("trace", "full")
AUTO_MEMORY_BYTES = 2**30  # "auto" avoids the Jacobian method when it would hold more than this


def _check_x(who, name, x, like=None):
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"kernels.{who}: {name} must be a batch of inputs of shape (n, ...), got "
                         f"shape {tuple(x.shape)}.")
    if like is not None and x.shape[1:] != like.shape[1:]:
        raise ValueError(f"kernels.{who}: x1 and x2 must have the same per-input shape; x1 has "
                         f"{tuple(like.shape)}, {name} has {tuple(x.shape)}.")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"kernels.{who}: {name} must be a floating-point array, got dtype "
                        f"{x.dtype}.")
    return jnp.asarray(x)


def _outputs(fn, params, x):
    """f on a batch, reshaped to (n, O)."""
    return fn(params, x).reshape(x.shape[0], -1)


def _per_input_jacobian(fn, params, x):
    """Pytree of per-input Jacobians (n, O, *leaf.shape): one vmapped reverse pass per output."""
    return jax.vmap(lambda xi: jax.jacrev(lambda p: _outputs(fn, p, xi[None])[0])(params))(x)


def _jacobian_ntk(fn, params, x1, x2, output, diagonal):
    j1 = _per_input_jacobian(fn, params, x1)
    j2 = j1 if (x2 is None or diagonal) else _per_input_jacobian(fn, params, x2)
    total = 0.0
    for a, b in zip(jax.tree.leaves(j1), jax.tree.leaves(j2), strict=True):
        a = a.reshape(a.shape[:2] + (-1,))
        b = b.reshape(b.shape[:2] + (-1,))
        if diagonal:
            term = (jnp.einsum("ikp,ikp->i", a, a) / a.shape[1] if output == "trace"
                    else jnp.einsum("ikp,ilp->ikl", a, a))
        else:
            term = (jnp.einsum("ikp,jkp->ij", a, b) / a.shape[1] if output == "trace"
                    else jnp.einsum("ikp,jlp->ijkl", a, b))
        total = total + term
    return total


def _ntvp_ntk(fn, params, x1, x2, output, diagonal, chunk):
    """Columns Theta[:, j, :, l] = J(x1) J(x2_j)^T e_l by a vjp then a jvp, ``chunk`` at a time."""
    x2 = x1 if x2 is None else x2
    n2 = x2.shape[0]
    k = jax.eval_shape(lambda p, x: _outputs(fn, p, x), params, x2[:1]).shape[1]

    def column(jl):
        j, l = jl // k, jl % k
        xj = jax.lax.dynamic_index_in_dim(x2, j, keepdims=True)
        _, vjp = jax.vjp(lambda p: _outputs(fn, p, xj)[0], params)
        (tangent,) = vjp(jax.nn.one_hot(l, k, dtype=x2.dtype))
        if diagonal:  # only Theta(x_j, x_j)[:, l]
            return jax.jvp(lambda p: _outputs(fn, p, xj)[0], (params,), (tangent,))[1]
        return jax.jvp(lambda p: _outputs(fn, p, x1), (params,), (tangent,))[1]  # (n1, O)

    cols = jax.lax.map(column, jnp.arange(n2 * k), batch_size=min(chunk, n2 * k))
    if diagonal:
        cols = cols.reshape(n2, k, k).swapaxes(1, 2)  # [j, k, l]
        return jnp.trace(cols, axis1=1, axis2=2) / k if output == "trace" else cols
    cols = cols.reshape(n2, k, x1.shape[0], k)  # [j, l, i, k]
    full = cols.transpose(2, 0, 3, 1)  # [i, j, k, l]
    return jnp.trace(full, axis1=2, axis2=3) / k if output == "trace" else full


def _count_flops(jaxpr) -> float:
    """Forward FLOPs of a jaxpr: 2 per multiply-add of dots and convolutions, 1 per other output
    element; sub-jaxprs (jit, custom derivatives, scans x length) are counted recursively."""
    total = 0.0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        out = sum(math.prod(v.aval.shape) for v in eqn.outvars if hasattr(v.aval, "shape"))
        if name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += 2.0 * out * math.prod(lhs[d] for d in contract)
        elif name == "conv_general_dilated":
            rhs = eqn.invars[1].aval.shape
            dn = eqn.params["dimension_numbers"]
            spatial = math.prod(rhs[d] for d in dn.rhs_spec[2:])
            total += 2.0 * out * spatial * rhs[dn.rhs_spec[1]]
        else:
            subs = [v for v in eqn.params.values() if hasattr(v, "eqns") or hasattr(v, "jaxpr")]
            for sub in subs:
                inner = _count_flops(sub.jaxpr if hasattr(sub, "jaxpr") else sub)
                total += inner * (eqn.params.get("length", 1) if name == "scan" else 1)
            if not subs:
                total += out
    return total


def _costs(fn, params, x1, x2, output, diagonal, chunk):
    """(FLOPs, bytes) of the jacobian and ntvp methods for these shapes."""
    n1 = x1.shape[0]
    n2 = n1 if x2 is None else x2.shape[0]
    jaxpr = jax.make_jaxpr(lambda p, x: _outputs(fn, p, x))(params, x1[:1])
    flops = _count_flops(jaxpr.jaxpr)
    o = jaxpr.out_avals[0].shape[1]
    p = sum(math.prod(jnp.shape(v)) for v in jax.tree.leaves(params))
    item = jnp.dtype(x1.dtype).itemsize
    pairs = n1 if diagonal else n1 * n2
    o_pairs = o if output == "trace" else o * o
    n_jac = n1 if (x2 is None or diagonal) else n1 + n2
    jac = (3 * n_jac * o * flops + pairs * o_pairs * p, n_jac * o * p * item)
    ntvp = (3 * (1 if diagonal else n1) * n2 * o * flops, min(chunk, n2 * o) * (p + n1 * o) * item)
    return {"jacobian": jac, "ntvp": ntvp}


def _choose(fn, params, spec, x1, x2, output, diagonal, chunk):
    if spec is not None:  # exact for every spec; measured no slower (see the module docstring)
        return "structured"
    costs = _costs(fn, params, x1, x2, output, diagonal, chunk)
    fits = {m: c for m, c in costs.items() if c[1] <= AUTO_MEMORY_BYTES} or {"ntvp": costs["ntvp"]}
    return min(fits, key=lambda m: fits[m][0])


def empirical_ntk(f, params, x1, x2=None, *, method: str = "auto", output: str = "trace",
                  diagonal: bool = False, batch_size: int | None = None):
    """Empirical NTK Theta(x1, x2) = J(x1) J(x2)^T of a finite network at ``params``.

    ``f``: a callable ``f(params, x)`` returning (n, ...) outputs (flattened to O per input; a
    ``flax.linen`` model's ``model.apply`` with ``params`` its variables), a widelimits spec or
    its bound ``apply`` (``params`` from ``net.init``), or a ``flax.nnx`` Module (``params=None``
    uses its ``nnx.Param`` state). Inputs are independent rows: ``f`` must not mix the batch.
    ``x1`` (n1, ...), ``x2`` (n2, ...) or None for x1.

    ``method``: "jacobian", "ntvp", "structured" (widelimits specs: one contraction per Dense or
    Conv layer, on (n, d) or (n, *spatial, C) inputs; no Jacobian is formed) or "auto"
    (widelimits specs: "structured"); costs in the module docstring (Novak et al. 2022).
    ``output``: "trace" (default; the mean over the O outputs, which estimates the scalar
    infinite-width kernel since Theta -> Theta_inf ⊗ I_O) gives (n1, n2); "full" gives the
    (n1, n2, O, O) blocks. ``diagonal=True`` gives only Theta(x1_i, x1_i): (n1,) or (n1, O, O).
    ``batch_size``: compute in tiles of that many inputs (and, for "ntvp", that many columns at
    once) to bound memory. Works under ``jit``/``vmap`` in float32 and float64.

    >>> import jax, jax.numpy as jnp
    >>> from widelimits import kernels, nets
    >>> net = nets.mlp(256, 1, nets.Erf())
    >>> x = jnp.array([[1.0, 0.0], [0.6, 0.8]])
    >>> theta = kernels.empirical_ntk(net, net.init(jax.random.key(0), x.shape), x)
    >>> theta.shape, bool(jnp.allclose(theta, kernels.analytic(net, x).ntk, rtol=0.2))
    ((2, 2), True)
    """
    who = "empirical_ntk"
    if method not in METHODS:
        raise ValueError(f"kernels.{who}: method must be one of {METHODS}, got {method!r}.")
    if output not in OUTPUTS:
        raise ValueError(f"kernels.{who}: output must be one of {OUTPUTS}, got {output!r}.")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size < 1):
        raise ValueError(f"kernels.{who}: batch_size must be a positive int or None, got "
                         f"{batch_size!r}.")
    if diagonal and x2 is not None:
        raise ValueError(f"kernels.{who}: diagonal=True computes Theta(x1_i, x1_i); x2 must be "
                         "None.")
    model, params = as_model(f, params, who=f"kernels.{who}", need_params=True)
    spec = spec_of(model)
    x1 = _check_x(who, "x1", x1)
    x2 = None if x2 is None else _check_x(who, "x2", x2, x1)
    chunk = batch_size or 64
    if method == "auto":
        method = _choose(model, params, spec, x1, x2, output, diagonal, chunk)
    if method == "structured":
        if spec is None:
            raise ValueError(f"kernels.{who}: method='structured' needs a widelimits network "
                             f"spec (pass the spec or its .apply), got {f!r}.")
    # the model is a pytree argument (a spec's hyperparameters are leaves, a plain callable is
    # static metadata): one compilation per structure
    return _ntk_jit(model, params, x1, x2, method, output, diagonal, batch_size, chunk)


def _ntk(fn, params, x1, x2, method, output, diagonal, batch_size, chunk):
    spec = spec_of(fn)

    def block(xa, xb):
        if method == "structured":
            return structured_ntk(spec, params, xa, xb, output, diagonal)
        if method == "jacobian":
            return _jacobian_ntk(fn, params, xa, xb, output, diagonal)
        return _ntvp_ntk(fn, params, xa, xb, output, diagonal, chunk)

    if batch_size is None:
        return block(x1, x2)
    if diagonal:
        return tiled_rows(lambda xa: block(xa, None), x1, batch_size)
    return tiled_pair(block, x1, x1 if x2 is None else x2, batch_size)


_ntk_jit = jax.jit(_ntk, static_argnums=(4, 5, 6, 7, 8))


def empirical_nngp(f, params, x1, x2=None):
    """Empirical NNGP kernel of a finite network: (n1, n2).

    For a widelimits spec (a ``serial`` ending in a Dense readout), the expectation over the
    readout layer of f(x1) f(x2): ``w_std^2 phi(x1) . phi(x2) / n + b_std^2`` with phi the n
    features entering the readout (Lee et al. 2018; its mean over initialisations is the finite-
    width NNGP). For any other ``f(params, x)`` (a feature map), the feature covariance
    ``f(x1) . f(x2) / O`` over its O outputs per input.

    >>> import jax, jax.numpy as jnp
    >>> from widelimits import kernels, nets
    >>> net = nets.mlp(512, 1, nets.Relu())
    >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> k = kernels.empirical_nngp(net, net.init(jax.random.key(0), x.shape), x)
    >>> bool(jnp.allclose(k, kernels.analytic(net, x).nngp, atol=0.03))
    True
    """
    who = "empirical_nngp"
    fn, params = as_model(f, params, who=f"kernels.{who}", need_params=True)
    spec = spec_of(fn)
    x1 = _check_x(who, "x1", x1)
    x2 = None if x2 is None else _check_x(who, "x2", x2, x1)
    if spec is not None:
        return readout_nngp(spec, params, x1, x2)
    phi1 = _outputs(fn, params, x1)
    phi2 = phi1 if x2 is None else _outputs(fn, params, x2)
    return phi1 @ phi2.T / phi1.shape[1]
