"""Large Monte Carlo ensembles of random networks: outputs at a few inputs, in vmapped chunks.

Network i of chunk c is drawn from ``jax.random.split(fold_in(key, c), chunk_size)[i]``, so a
run is reproducible bit for bit (CPU) for a given ``chunk_size`` and resumes from a file (one
``.npz`` of the library's resumable format, array ``"samples"``) without changing its result.
Two samplers of the same law:

* ``"params"``: ``net.apply(net.init(k, x.shape), x)`` under ``vmap`` (any network spec);
  parameters exist only one chunk at a time.
* ``"collapsed"``: ``finite.draw(net, k, x)``, every Dense layer's output drawn from its Gaussian
  law given the previous layer (P inputs: P x width normals and a P x P square root instead of
  n_in x width weights; see ``finite.draw``), for specs whose every layer has a rule in that
  view (Gaussian Dense, activations, serial, residual, parallel). Layers where that is not
  cheaper (P >= n_in, or a small readout after a wide layer) draw their weights instead.

``method="auto"`` asks the collapsed view whether it supports the net (a trace of one draw) and
falls back to ``"params"`` when it does not.
"""

from __future__ import annotations

import functools
import math
import os
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from .. import _resume, kernels, nets
from .._checks import integer, nonnegative
from .._registry import UnsupportedLayer
from ._draw import draw_state
from ._kurtosis import readout_moments

__all__ = ["METHODS", "output_samples", "one_layer_samples", "KurtosisEstimate",
           "sample_kurtosis", "ProportionalFit", "fit_proportional"]

METHODS = ("auto", "params", "collapsed")
_OWNER = "finite.output_samples"


def _stack_records(records, net):
    if not records:
        raise ValueError(f"{_OWNER}: layers=True returns unit 0 of every Dense layer's output, "
                         f"but {net!r} has no Dense layer.")
    return jnp.stack(records)


def _collapsed_one(net, key, x, layers_out):
    """One network's outputs (or unit 0 of every Dense layer), drawn through the collapsed view."""
    s = draw_state(net, key, x, record=layers_out)
    return _stack_records(s.records, net) if layers_out else s.h


def _params_one(net, key, x, layers_out):
    params = jax.tree.map(lambda p: p.astype(x.dtype), net.init(key, x.shape))
    if not layers_out:
        return net.apply(params, x)
    _, tape = kernels.record(net, params, x)  # every trained layer's output, in order
    return _stack_records([z[..., 0] for (layer, *_), z in zip(tape.taps, tape.outputs,
                                                               strict=True)
                           if isinstance(layer, nets.Dense)], net)


@functools.partial(jax.jit, static_argnames=("method", "layers_out"))
def _chunk(net, keys, x, method, layers_out):
    one = _collapsed_one if method == "collapsed" else _params_one
    return jax.vmap(lambda k: one(net, k, x, layers_out).astype(x.dtype))(keys)


def _collapsible(net, key, x, layers_out, *, strict):
    """Whether the collapsed view supports ``net`` (decided by tracing one draw); with
    ``strict`` its ``TypeError`` naming the unsupported layer propagates."""
    try:
        jax.eval_shape(lambda k: _collapsed_one(net, k, x, layers_out), key)
    except UnsupportedLayer:
        if strict:
            raise
        return False
    return True


def _run_chunks(fn, key, n_total, chunk_size, path, fingerprint, progress, desc, save_every):
    saved = None if path is None else _resume.load(path, fingerprint, who=_OWNER)
    chunks = [saved["samples"]] if saved is not None and saved["samples"].shape[0] else []
    done = sum(c.shape[0] for c in chunks)
    n_chunks = -(-n_total // chunk_size)
    last_save = time.monotonic()
    bar = tqdm(total=n_chunks * chunk_size, initial=min(done, n_chunks * chunk_size), desc=desc,
               unit="net", unit_scale=True, disable=not progress, leave=False)
    for c in range(done // chunk_size, n_chunks):
        keys = jax.random.split(jax.random.fold_in(key, c), chunk_size)
        chunks.append(np.asarray(fn(keys)))
        bar.update(chunk_size)
        if path is not None and (time.monotonic() - last_save > save_every or c == n_chunks - 1):
            chunks = [np.concatenate(chunks)]
            _resume.save(path, {"samples": chunks[0]}, fingerprint)
            last_save = time.monotonic()
    bar.close()
    return np.concatenate(chunks)[:n_total]


def output_samples(net, key, x, n_networks: int, *, chunk_size: int = 8192, method: str = "auto",
                   layers: bool = False, path: str | os.PathLike | None = None,
                   progress: bool = True, save_every: float = 30.0) -> np.ndarray:
    """Outputs of ``n_networks`` independent random networks ``net`` at the inputs ``x`` (n, d).

    Returns a NumPy array (n_networks, n, k) (k output features), or with ``layers=True`` the
    pre-activation of unit 0 of every Dense layer, (n_networks, n_dense, n), in the order of the
    forward pass. Networks are generated ``chunk_size`` at a time under ``jax.vmap``
    (parameters of one chunk in memory at once), with a tqdm bar. ``method``: "params" (any
    spec), "collapsed" (specs of Gaussian Dense layers, activations, serial, residual and
    parallel: same law, fewer random numbers; see the module docstring and ``finite.draw``) or
    "auto" (collapsed when that view supports the net). ``path`` (an .npz file): finished chunks
    are saved there (at most every ``save_every`` seconds and at the end) and a later call
    resumes from them; a file from a different run raises ``ValueError``. Samples have the
    dtype of ``x``.

    >>> import jax, jax.numpy as jnp
    >>> from widelimits import finite, nets
    >>> net = nets.serial(nets.Dense(8), nets.Relu(), nets.Dense(1))
    >>> s = finite.output_samples(net, jax.random.key(0), jnp.ones((2, 3), jnp.float32), 64,
    ...                           layers=True, progress=False)   # 2 Dense layers, 2 inputs
    >>> s.shape, s.dtype
    ((64, 2, 2), dtype('float32'))
    """
    integer(_OWNER, "n_networks", n_networks)
    integer(_OWNER, "chunk_size", chunk_size)
    if method not in METHODS:
        raise ValueError(f"{_OWNER}: method must be one of {METHODS}, got {method!r}.")
    if not isinstance(net, nets.Layer):
        raise TypeError(f"{_OWNER}: net must be a widelimits network spec, got {net!r}.")
    x = jnp.asarray(x)
    if x.ndim != 2 or not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"{_OWNER}: x must be a float array of shape (n, d), got shape "
                         f"{x.shape} and dtype {x.dtype}.")
    layers = bool(layers)
    if method != "params":
        ok = _collapsible(net, key, x, layers, strict=method == "collapsed")
        method = "collapsed" if ok else "params"
    fingerprint = {"network": _resume.fingerprint(repr(net), jax.tree.leaves(net)),
                   "inputs": _resume.fingerprint(x), "key": _resume.fingerprint(key),
                   "chunk_size": str(chunk_size), "method": method, "layers": str(layers)}
    fn = lambda keys: _chunk(net, keys, x, method, layers)  # noqa: E731
    return _run_chunks(fn, key, n_networks, chunk_size, None if path is None else os.fspath(path),
                       fingerprint, progress, f"{method} ensemble", save_every)


def _readout_sampler(readout):
    readout_moments(readout)
    if readout == "gaussian":
        return jax.random.normal
    if readout == "rademacher":
        return lambda k, shape, dtype: jax.random.rademacher(k, shape, dtype)
    if readout == "uniform":
        r = math.sqrt(3.0)
        return lambda k, shape, dtype: jax.random.uniform(k, shape, dtype, -r, r)
    raise ValueError(f"one_layer_samples: readout must be one of 'gaussian', 'rademacher', "
                     f"'uniform' to be sampled, got {readout!r}.")


@functools.partial(jax.jit, static_argnames=("width", "sampler"))
def _one_layer_chunk(keys, activation, q, v_std, vb_std, width, sampler):
    def one(k):
        ku, kv, kb = jax.random.split(k, 3)
        h = activation.fn(jnp.sqrt(q) * jax.random.normal(ku, (width,), q.dtype))
        v = sampler(kv, (width,), q.dtype)
        return v_std * (v @ h) / math.sqrt(width) + vb_std * jax.random.normal(kb, (), q.dtype)

    return jax.vmap(one)(keys)


def one_layer_samples(key, n_samples: int, width: int, activation, q, *, readout="gaussian",
                      v_std=1.0, vb_std=0.0, chunk_size: int = 65536, dtype=jnp.float32,
                      progress: bool = False) -> np.ndarray:
    """Draws of f = (v_std/sqrt(N)) sum_i v_i phi(u_i) + vb_std c, u_i ~ N(0, q), v_i iid from
    ``readout`` ("gaussian", "rademacher" or "uniform", unit variance), c ~ N(0, 1): the output of
    a one-hidden-layer net of width N = ``width`` at one input (Gaussian first layer), in
    vmapped chunks of ``chunk_size``. Returns (n_samples,) in ``dtype``. The exact cumulants of
    this law are ``one_layer_cumulants`` (Antognini 2019).

    >>> import jax
    >>> from widelimits import finite, nets
    >>> f = finite.one_layer_samples(jax.random.key(0), 20_000, 4, nets.Relu(), 1.0)
    >>> f.shape, round(float(f.var()), 1)   # variance E relu(u)^2 = q/2
    ((20000,), 0.5)
    """
    owner = "finite.one_layer_samples"
    integer(owner, "n_samples", n_samples)
    integer(owner, "width", width)
    integer(owner, "chunk_size", chunk_size)
    nets.check_activation(owner, activation)
    sampler = _readout_sampler(readout)
    nonnegative(owner, "q", q)
    q = jnp.asarray(q, dtype)
    fn = lambda keys: _one_layer_chunk(keys, activation, q, jnp.asarray(v_std, dtype),
                                       jnp.asarray(vb_std, dtype), width, sampler)
    return _run_chunks(fn, key, n_samples, min(chunk_size, n_samples), None, "", progress,
                       "one-layer samples", 0.0)


class KurtosisEstimate(NamedTuple):
    """Sample excess kurtosis ``value`` and its standard error ``stderr`` (same shape), as
    returned by ``sample_kurtosis``.

    >>> from widelimits import finite
    >>> est = finite.KurtosisEstimate(value=0.1, stderr=0.02)
    >>> est.value > 4 * est.stderr   # resolved: 5 standard errors from 0
    True
    """

    value: np.ndarray
    stderr: np.ndarray


def sample_kurtosis(samples, axis: int = 0) -> KurtosisEstimate:
    """Excess kurtosis g = m4/m2^2 - 3 (central sample moments) along ``axis``, in float64, with
    its delta-method standard error: sd(IF)/sqrt(M) over the M samples, IF the influence function

        IF(x) = [(x - mu)^4 - mu4 - 4 mu3 (x - mu)]/mu2^2 - 2 mu4/mu2^3 [(x - mu)^2 - mu2]

    (for a Gaussian: sqrt(24/M)). Needs M >= 8 samples with nonzero spread.

    >>> import numpy as np
    >>> from widelimits import finite
    >>> u = np.random.default_rng(0).uniform(-1, 1, 100_000)   # excess kurtosis -6/5
    >>> est = finite.sample_kurtosis(u)
    >>> round(float(est.value), 2), bool(abs(est.value + 1.2) < 4 * est.stderr)
    (-1.2, True)
    """
    s = np.asarray(samples, np.float64)
    s = np.moveaxis(s, axis, 0)
    m = s.shape[0]
    if m < 8:
        raise ValueError(f"sample_kurtosis: need at least 8 samples along axis {axis}, got {m}.")
    d = s - s.mean(0)
    d2 = d * d
    mu2, mu3, mu4 = d2.mean(0), (d2 * d).mean(0), (d2 * d2).mean(0)
    if np.any(mu2 <= 0) or not np.all(np.isfinite(mu4)):
        raise ValueError("sample_kurtosis: samples must be finite with nonzero variance.")
    infl = (d2 * d2 - mu4 - 4 * mu3 * d) / mu2**2 - 2 * mu4 / mu2**3 * (d2 - mu2)
    return KurtosisEstimate(mu4 / mu2**2 - 3, infl.std(0, ddof=1) / np.sqrt(m))


class ProportionalFit(NamedTuple):
    """y = slope * x by weighted least squares: slope, its standard error, chi^2 per degree of
    freedom of the residuals (about 1 when the model and the errors are right); returned by
    ``fit_proportional``.

    >>> from widelimits import finite
    >>> finite.ProportionalFit(slope=15.0, stderr=0.5, chi2_dof=1.1).slope
    15.0
    """

    slope: float
    stderr: float
    chi2_dof: float


def fit_proportional(x, y, stderr) -> ProportionalFit:
    """Fit y = s x through the origin with weights 1/stderr^2 (x, y, stderr of one shape (m,)):
    s = sum(w x y)/sum(w x^2), se(s) = 1/sqrt(sum(w x^2)). Used for excess kurtosis against
    1/width (Antognini 2019: gamma_4 = c/N exactly for one hidden layer).

    >>> import numpy as np
    >>> from widelimits import finite
    >>> fit = finite.fit_proportional(np.array([1.0, 2.0, 4.0]), np.array([3.1, 5.9, 12.0]),
    ...                               np.full(3, 0.1))
    >>> round(fit.slope, 3), round(fit.stderr, 4)
    (2.995, 0.0218)
    """
    x, y, e = (np.asarray(a, np.float64).ravel() for a in (x, y, stderr))
    if not (x.shape == y.shape == e.shape) or x.size < 2:
        raise ValueError(f"fit_proportional: x, y, stderr must have one shape with >= 2 points, "
                         f"got {x.shape}, {y.shape}, {e.shape}.")
    if np.any(e <= 0) or not np.all(np.isfinite(np.concatenate([x, y, e]))):
        raise ValueError("fit_proportional: values must be finite and stderr > 0.")
    w = 1 / e**2
    sxx = np.sum(w * x * x)
    slope = np.sum(w * x * y) / sxx
    chi2 = np.sum(w * (y - slope * x) ** 2) / (x.size - 1)
    return ProportionalFit(float(slope), float(1 / np.sqrt(sxx)), float(chi2))
