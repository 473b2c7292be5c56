"""Depth limits of residual networks (Hayou & Yang 2023, "Width and depth limits commute in
residual networks").

The ResNet of width n and depth L on inputs x (m, d):

    x_0 = x W_0 / sqrt(d),   x_{l+1} = x_l + L^{-1/2} (w_std φ(x_l) W_{l+1} / sqrt(n) + b_std b_{l+1}),

with all weights and biases iid N(0, 1) (so the effective block weights are N(0, w_std²/n)):
the spec ``resnet(n, L, φ)``. Its per-network covariance is K̂_l = x_l x_l^T / n (m, m). At
infinite width K̂_l is deterministic and follows the Euler-type recursion
``q_{l+1} = q_l + (w_std² V_φ(q_l) + b_std²) / L`` with
``V_φ(q)_{ab} = E_{(u,v) ~ N(0, q_{[ab]})}[φ(u) φ(v)]``; as L → ∞ at ``t = l/L`` this converges
(globally at rate 1/L) to the ODE (Hayou & Yang 2023)

    dq_t/dt = w_std² V_φ(q_t) + b_std²,   q_0 = x x^T / d,   t ∈ [0, 1].

The drift ``w_std² V_φ(q) + b_std²`` is the infinite-width kernel of the block
``serial(φ, Dense(·, w_std, b_std))`` on a Gaussian input of covariance q: it is computed by
carrying a ``kernels.KernelState`` through that block (``kernels.propagate``, the rules of
``kernels.analytic``), so the ODE, its recursion and ``kernels.analytic(resnet(...))`` share one
definition. Hayou & Yang show that the finite network's K̂ converges to q_t whichever of n, L
grows first. ReLU with w_std = 1, b_std = 0: the diagonal obeys dq/dt = q/2, so
q_t = q_0 e^{t/2}.

Finite networks (``sample_covariance``) are drawn layer by layer through ``finite.draw``, the
collapsed view of the embedding and of each residual block (the block's Dense output given its
input is Gaussian, Roberts, Yaida & Hanin 2022, ch. 4).
"""

from __future__ import annotations

import functools

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from .. import finite, kernels, nets
from .._checks import concrete, integer, nonnegative

SAMPLING_METHODS = ("projected", "weights")

__all__ = ["SAMPLING_METHODS", "resnet", "resnet_covariance", "resnet_covariance_recursion",
           "sample_covariance"]


def _check_q0(who, q0):
    if not hasattr(q0, "shape") or not hasattr(q0, "dtype"):
        q0 = np.asarray(q0, dtype=float)
    if q0.ndim != 2 or q0.shape[0] != q0.shape[1]:
        raise ValueError(f"depth.{who}: q0 must be a square covariance matrix (m, m), got shape "
                         f"{tuple(q0.shape)}.")
    if not jnp.issubdtype(q0.dtype, jnp.floating):
        raise TypeError(f"depth.{who}: q0 must be a floating-point array, got dtype {q0.dtype}.")
    v = concrete(q0)
    if v is not None:
        if not np.all(np.isfinite(v)):
            raise ValueError(f"depth.{who}: q0 contains non-finite values.")
        if not np.allclose(v, v.T, rtol=1e-6, atol=1e-12 * max(1.0, np.abs(v).max())):
            raise ValueError(f"depth.{who}: q0 must be symmetric; max |q0 - q0.T| = "
                             f"{np.abs(v - v.T).max():.3g}.")
        if np.any(np.diag(v) < 0):
            raise ValueError(f"depth.{who}: q0 must have a nonnegative diagonal (variances), got "
                             f"{np.diag(v).tolist()}.")
    return jnp.asarray(q0)  # floating already; float32 when x64 is off


def _embedding(width, embed_std=1.0, weights="gaussian"):
    return nets.Dense(width, w_std=embed_std, b_std=None, weights=weights)


def _block(width, activation, w_std, b_std, scale, weights="gaussian"):
    return nets.residual(activation, nets.Dense(width, w_std=w_std, b_std=b_std, weights=weights),
                         scale=scale)


def _drift(activation, w_std, b_std):
    """q -> w_std² V_φ(q) + b_std² for every pair of an (m, m) covariance: the NNGP of the block
    serial(φ, Dense) on a centred Gaussian input of covariance q (``kernels.propagate``)."""
    block = nets.serial(activation, nets.Dense(1, w_std=w_std, b_std=b_std))

    def f(q):
        d = jnp.diagonal(q)
        state = kernels.KernelState(var1=d, nngp=q, var2=d, ntk=jnp.zeros_like(q),
                                    gaussian=True, features=1)
        k = kernels.propagate(block, state, "residual.").nngp
        return 0.5 * (k + k.T)  # exact symmetry (the duals are symmetric up to round-off)

    return f


def resnet(width: int, depth: int, activation, *, w_std=1.0, b_std=None, embed_std=1.0,
           weights: str = "gaussian") -> nets.Serial:
    """The ResNet of this module as a ``nets`` spec (no readout): ``Dense(width, embed_std)``
    followed by ``depth`` blocks ``nets.residual(activation, Dense(width, w_std, b_std),
    scale=depth**-0.5)``. ``kernels.analytic(spec, x).nngp`` is the infinite-width covariance
    after ``depth`` blocks, i.e. ``resnet_covariance_recursion`` with ``q0 = embed_std² x x^T/d``.
    ``depth=0``: the embedding only.

    >>> import numpy as np
    >>> from widelimits import depth, kernels, nets
    >>> net = depth.resnet(16, 4, nets.Relu())
    >>> len(net.layers), net.output_shape((3, 2))
    (5, (3, 16))
    >>> x = np.eye(2, dtype=np.float32)   # ReLU, one input: (1 + 1/(2L))^L q0, q0 = 1/2
    >>> round(float(kernels.analytic(net, x).nngp[0, 0]), 5), round(0.5 * 1.125**4, 5)
    (0.8009, 0.8009)
    """
    integer("depth.resnet", "width", width)
    integer("depth.resnet", "depth", depth, minimum=0)
    nets.check_activation("depth.resnet", activation)
    embed = _embedding(width, embed_std, weights)
    if depth == 0:
        return nets.serial(embed)
    block = _block(width, activation, w_std, b_std, depth**-0.5, weights)
    return nets.serial(embed, *([block] * depth))


def _default_tols(dtype):
    return (1e-11, 1e-13) if dtype == jnp.float64 else (1e-6, 1e-7)


@functools.partial(jax.jit, static_argnames=("max_steps",))
def _solve(activation, q0, ts, w_std, b_std, rtol, atol, max_steps):
    f = _drift(activation, w_std, b_std)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, q, args: f(q)), diffrax.Dopri8(), t0=0.0, t1=ts[-1], dt0=None,
        y0=q0, saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol), max_steps=max_steps)
    return sol.ys


def resnet_covariance(activation, q0, t=1.0, *, w_std=1.0, b_std=0.0, rtol=None, atol=None,
                      max_steps: int = 4096):
    """Infinite-width, infinite-depth covariance q_t of the ResNet (Hayou & Yang 2023): the
    solution of ``dq/dt = w_std² V_φ(q) + b_std²`` (``V_φ`` = ``kernels.dual(activation)``,
    applied to every pair (a, b) of the (m, m) matrix) from ``q0`` at time(s) ``t`` (depth
    fraction l/L; t = 1 is the output).

    Solved with diffrax (8th-order Dormand-Prince, adaptive steps with relative/absolute
    tolerances ``rtol``/``atol``; defaults 1e-11/1e-13 in float64, 1e-6/1e-7 in float32; the
    error is then a few times ``rtol``). ``q0`` (m, m) symmetric with a nonnegative diagonal,
    e.g. ``x @ x.T / d`` for a Gaussian embedding of inputs x (m, d). ``t``: a scalar >= 0
    (returns (m, m)) or an increasing 1-D array of times >= 0 (returns (T, m, m)). Works under
    ``jit``/``vmap``/``grad`` (in ``q0``, ``w_std``, ``b_std`` and activation parameters);
    the dtype follows ``q0``.

    >>> import numpy as np
    >>> from widelimits import depth, nets
    >>> q = depth.resnet_covariance(nets.Relu(), np.eye(2), [0.5, 1.0])   # diagonal e^{t/2}
    >>> np.round(np.asarray(q)[:, 0, 0] / np.exp([0.25, 0.5]), 5).tolist()
    [1.0, 1.0]
    """
    owner = "depth.resnet_covariance"
    nets.check_activation(owner, activation)
    nonnegative(owner, "w_std", w_std)
    nonnegative(owner, "b_std", b_std)
    integer(owner, "max_steps", max_steps)
    q0 = _check_q0("resnet_covariance", q0)
    dtype = q0.dtype
    ts = jnp.asarray(t, dtype)
    scalar = ts.ndim == 0
    ts = jnp.atleast_1d(ts)
    if ts.ndim != 1:
        raise ValueError(f"depth.resnet_covariance: t must be a scalar or a 1-D array of times, "
                         f"got shape {tuple(ts.shape)}.")
    tv = concrete(ts)
    if tv is not None and (np.any(tv < 0) or np.any(np.diff(tv) < 0) or not np.all(np.isfinite(tv))):
        raise ValueError(f"depth.resnet_covariance: t must be finite, >= 0 and increasing, got "
                         f"{tv.tolist()}.")
    r0, a0 = _default_tols(dtype)
    rtol, atol = (r0 if rtol is None else rtol), (a0 if atol is None else atol)
    if tv is not None and tv[-1] == 0:
        ys = jnp.broadcast_to(q0, (ts.size,) + q0.shape)
    else:
        ys = _solve(activation, q0, ts, jnp.asarray(w_std, dtype), jnp.asarray(b_std, dtype),
                    rtol, atol, max_steps)
    return ys[0] if scalar else ys


@functools.partial(jax.jit, static_argnames=("depth", "all_layers"))
def _recursion(activation, q0, depth, w_std, b_std, all_layers):
    f = _drift(activation, w_std, b_std)

    def step(q, _):
        q = q + f(q) / depth
        return q, q

    q, qs = jax.lax.scan(step, q0, None, length=depth)
    return jnp.concatenate([q0[None], qs]) if all_layers else q


def resnet_covariance_recursion(activation, q0, depth: int, *, w_std=1.0, b_std=0.0,
                                all_layers: bool = False):
    """Infinite-width covariance of the depth-``depth`` ResNet: ``depth`` steps of
    ``q_{l+1} = q_l + (w_std² V_φ(q_l) + b_std²) / depth`` from ``q0`` (m, m) — the explicit
    Euler scheme of ``resnet_covariance``'s ODE with step 1/depth, so it converges to q_1 with
    global error O(1/depth). Equals ``kernels.analytic(resnet(n, depth, activation), x).nngp``
    for ``q0 = x x^T / d``. Returns (m, m), or (depth + 1, m, m) for layers 0..depth with
    ``all_layers=True``. jit/vmap/grad-compatible (``depth`` static).

    >>> import numpy as np
    >>> from widelimits import depth, nets
    >>> q = depth.resnet_covariance_recursion(nets.Relu(), np.eye(1), 4, all_layers=True)
    >>> [round(float(v), 4) for v in q[:, 0, 0]]   # (1 + 1/8)^l for ReLU on one input
    [1.0, 1.125, 1.2656, 1.4238, 1.6018]
    """
    owner = "depth.resnet_covariance_recursion"
    nets.check_activation(owner, activation)
    integer(owner, "depth", depth)
    nonnegative(owner, "w_std", w_std)
    nonnegative(owner, "b_std", b_std)
    q0 = _check_q0("resnet_covariance_recursion", q0)
    return _recursion(activation, q0, depth, jnp.asarray(w_std, q0.dtype),
                      jnp.asarray(b_std, q0.dtype), bool(all_layers))


_DENSE_DRAW = {"projected": "law", "weights": "weights"}  # method -> finite.draw(dense=...)


def _network(activation, key, x, width, depth, w_std, b_std, method, each=None):
    """One random ResNet at the inputs ``x`` (m, d): its last hidden state x_L (m, width), or
    ``each(x_l)`` stacked for l = 0 .. depth when ``each`` is given (``depth`` then static).

    The embedding is drawn with ``k_embed`` and block l with ``fold_in(k_blocks, l)``, where
    ``k_embed, k_blocks = jax.random.split(key)``, each through ``finite.draw`` (with
    ``method="weights"``: each layer's parameters are its ``init`` with that key). ``depth``
    may be traced (a ``fori_loop``: one compilation for every depth)."""
    dense = _DENSE_DRAW[method]
    scale = jax.lax.rsqrt(jnp.asarray(depth, x.dtype))
    block = _block(width, activation, w_std, b_std, scale)
    k_embed, k_blocks = jax.random.split(key)
    h = finite.draw(_embedding(width), k_embed, x, dense=dense)

    def step(l, h):
        return finite.draw(block, jax.random.fold_in(k_blocks, l), h, dense=dense, shared=False)

    if each is None:
        return jax.lax.fori_loop(0, depth, step, h)

    def scan_step(h, l):
        h = step(l, h)
        return h, each(h)

    _, hs = jax.lax.scan(scan_step, h, jnp.arange(depth))
    return jnp.concatenate([each(h)[None], hs])


def _sample_chunk(activation, keys, x, width, depth, w_std, b_std, all_layers, method):
    """Covariances of the networks of ``keys``. With ``all_layers=False`` ``depth`` is a traced
    int32 (one compilation for every depth), else a static int (a scan recording every layer)."""
    cov = lambda h: h @ h.T / width  # noqa: E731

    def one(key):
        if all_layers:
            return _network(activation, key, x, width, depth, w_std, b_std, method, each=cov)
        return cov(_network(activation, key, x, width, depth, w_std, b_std, method))

    return jax.vmap(one)(keys)


_sample_layers = jax.jit(_sample_chunk, static_argnames=("width", "depth", "all_layers", "method"))
_sample_last = jax.jit(_sample_chunk, static_argnames=("width", "all_layers", "method"))


def sample_covariance(key, x, width: int, depth: int, activation, *, n_samples: int = 1,
                      w_std=1.0, b_std=0.0, all_layers: bool = False, batch_size: int = 64,
                      method: str = "projected", progress: bool | None = None):
    """Per-network covariances K̂ = x_L x_L^T / width of ``n_samples`` random ResNets (this
    module's docstring; Gaussian embedding, N(0, w_std²/width) block weights, N(0, b_std²)
    biases, ``b_std=None`` for none, block scale depth^{-1/2}) on inputs ``x`` (m, d).

    Network s uses ``jax.random.split(key, n_samples)[s]``; its layers are drawn one after the
    other through ``finite.draw`` in a ``lax.fori_loop``/``lax.scan`` (compile time independent
    of depth). ``method="weights"`` draws every block matrix W_l (width, width) (brute force,
    O(m width²) per layer); ``"projected"`` (default) draws only the block's output given its
    input, which is exact in distribution because W_l is used once and is independent of x_l:
    φ(x_l) W_l / sqrt(width) has iid columns N(0, φ(x_l) φ(x_l)^T / width), drawn from m x width
    normals and an m x m square root (O(m² width) per layer, so widths of 10^4 are cheap).
    ``batch_size`` networks are vmapped at a time (progress bar for more than 4 chunks unless
    ``progress=False``). Returns (n_samples, m, m), or (n_samples, depth + 1, m, m) for layers
    0..depth with ``all_layers=True``; the dtype follows ``x``. The log-norms
    ``log K̂_aa = log(||x_L||²/width)`` are the fixed-width observables of ``depth._sde``.

    >>> import jax, numpy as np
    >>> from widelimits import depth, nets
    >>> c = depth.sample_covariance(jax.random.key(0), np.eye(2), 32, 4, nets.Relu(),
    ...                             n_samples=8)
    >>> c.shape, bool(np.allclose(c, np.swapaxes(c, 1, 2)))
    ((8, 2, 2), True)
    """
    who = "depth.sample_covariance"
    integer(who, "width", width)
    integer(who, "depth", depth)
    integer(who, "n_samples", n_samples)
    integer(who, "batch_size", batch_size)
    nets.check_activation(who, activation)
    nonnegative(who, "w_std", w_std)
    nonnegative(who, "b_std", b_std)
    if method not in SAMPLING_METHODS:
        raise ValueError(f"{who}: method must be one of {SAMPLING_METHODS}, got {method!r}.")
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{who}: x must have shape (m, d) (batch first), got {tuple(x.shape)}.")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{who}: x must be a floating-point array, got dtype {x.dtype}.")
    x = jnp.asarray(x)
    w = jnp.asarray(w_std, x.dtype)
    b = None if b_std is None else jnp.asarray(b_std, x.dtype)
    keys = jax.random.split(key, n_samples)
    batch = min(batch_size, n_samples)
    starts = range(0, n_samples, batch)
    show = len(starts) > 4 if progress is None else progress
    fn, steps = ((_sample_layers, depth) if all_layers
                 else (_sample_last, jnp.asarray(depth, jnp.int32)))
    parts = []
    for s in tqdm(starts, desc=f"resnets n={width} L={depth}", disable=not show, leave=False):
        chunk = keys[s:s + batch]
        size = chunk.shape[0]
        if size < batch:  # pad the last chunk (one compilation for all chunks), then trim
            chunk = jnp.concatenate([chunk, keys[:batch - size]])
        out = fn(activation, chunk, x, width, steps, w, b, bool(all_layers), method)
        parts.append(np.asarray(out)[:size])
    return jnp.asarray(np.concatenate(parts), x.dtype)
