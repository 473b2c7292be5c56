"""Large Monte Carlo ensembles of random networks: outputs at a few inputs, in vmapped chunks.

Network i of chunk c is drawn from ``jax.random.split(fold_in(key, c), chunk_size)[i]``, so a
run is reproducible bit for bit (CPU) for a given ``chunk_size`` and resumes from a file without
changing its result. Two samplers of the same law:

* ``"params"``: ``net.apply(net.init(k, x.shape), x)`` under ``vmap`` (any network spec);
  parameters exist only one chunk at a time.
* ``"collapsed"``: for chains ``serial(Dense, act, ..., Dense)`` with Gaussian weights only.
  Given the previous layer's activations h (P inputs x n_in), the columns of a Dense layer's
  output z = (w/sqrt(n_in)) h W + b beta are iid N(0, w^2 h h^T/n_in + b^2 1 1^T) (P x P), so we
  draw them from that covariance: P x width normals per layer (and a P x P square root) instead
  of n_in x width, exactly the same joint law of the outputs. Layers where that is not cheaper
  (P >= n_in, or a small readout after a wide layer) draw their weights instead.
"""

from __future__ import annotations

import functools
import hashlib
import math
import numbers
import os
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from .. import nets
from ._kurtosis import readout_moments

__all__ = ["METHODS", "output_samples", "one_layer_samples", "KurtosisEstimate",
           "sample_kurtosis", "ProportionalFit", "fit_proportional"]

METHODS = ("auto", "params", "collapsed")


def _check_count(owner, name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}.")


def _chain(net):
    """The layers of serial(Dense, act, ..., Dense) with Gaussian weights, or None."""
    layers = getattr(net, "layers", None)
    if not isinstance(net, nets.Serial) or not layers:
        return None
    for layer in layers:
        if isinstance(layer, nets.Dense):
            if layer.weights != "gaussian":
                return None
        elif not isinstance(layer, nets.Activation):
            return None
    return layers


def _dense_draw(layer, key, h, shared=False):
    """Draw z = Dense(h) given h (P, n_in): (P, width). Either from its conditional law
    N(0, w^2 h h^T/n_in + b^2) per column (P x width normals and a P x P square root) or, when
    that costs more, from the weights themselves (n_in x width normals); the law is the same.
    ``shared``: h is the same for every network (the inputs), so its square root is computed once.
    """
    p, n_in = h.shape
    eig_cost = 0 if shared or p == 1 else 8 * p**3
    if p * layer.width + eig_cost >= n_in * layer.width:
        kw, kb = jax.random.split(key)
        z = (h @ jax.random.normal(kw, (n_in, layer.width), h.dtype)) * (layer.w_std / n_in**0.5)
        if layer.b_std is not None:
            z = z + layer.b_std * jax.random.normal(kb, (layer.width,), h.dtype)
        return z
    cov = layer.w_std**2 * (h @ h.T) / n_in
    if layer.b_std is not None:
        cov = cov + layer.b_std**2
    xi = jax.random.normal(key, (p, layer.width), h.dtype)
    if p == 1:
        return jnp.sqrt(jnp.maximum(cov, 0)) * xi
    lam, vec = jnp.linalg.eigh(cov)
    return (vec * jnp.sqrt(jnp.maximum(lam, 0))) @ xi


def _blocks(layers):
    """Group a chain into (Dense, activation-or-None) blocks."""
    out, i = [], 0
    while i < len(layers):
        if isinstance(layers[i], nets.Dense):
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            act = nxt if isinstance(nxt, nets.Activation) else None
            out.append((layers[i], act))
            i += 2 if act is not None else 1
        else:
            out.append((None, layers[i]))
            i += 1
    return out


def _apply_block(block, key, h, shared=False):
    dense, act = block
    z = h if dense is None else _dense_draw(dense, key, h, shared)
    return z, (z if act is None else act.fn(z))


def _collapsed_one(net, key, x, layers_out):
    """One network's outputs (or unit 0 of every Dense layer) drawn layer by layer. Runs of
    identical (Dense(n), activation) blocks acting on n features are scanned (one compiled body,
    whatever the depth)."""
    blocks = _blocks(net.layers)
    keys = jax.random.split(key, len(blocks))
    h, rec, i = x, [], 0
    while i < len(blocks):
        treedef = jax.tree.structure(blocks[i])
        j = i
        while (j < len(blocks) and jax.tree.structure(blocks[j]) == treedef
               and blocks[j][0] is not None and blocks[j][0].width == h.shape[-1]):
            j += 1
        if j - i >= 2:
            stacked = jax.tree.map(lambda *a: jnp.stack([jnp.asarray(v) for v in a]), *blocks[i:j])

            def body(hh, inp):
                blk, k = inp
                z, out = _apply_block(blk, k, hh)
                return out, z[:, 0]

            h, zs = jax.lax.scan(body, h, (stacked, keys[i:j]))
            rec.extend(zs)
            i = j
            continue
        z, h = _apply_block(blocks[i], keys[i], h, shared=i == 0)
        if blocks[i][0] is not None:
            rec.append(z[:, 0])
        i += 1
    return jnp.stack(rec) if layers_out else h


def _params_one(net, key, x, layers_out):
    params = jax.tree.map(lambda p: p.astype(x.dtype), net.init(key, x.shape))
    if not layers_out:
        return net.apply(params, x)
    h, rec = x, []
    for p, layer in zip(params, net.layers, strict=True):
        h = layer.apply(p, h)
        if isinstance(layer, nets.Dense):
            rec.append(h[:, 0])
    return jnp.stack(rec)


@functools.partial(jax.jit, static_argnames=("method", "layers_out"))
def _chunk(net, keys, x, method, layers_out):
    one = _collapsed_one if method == "collapsed" else _params_one
    return jax.vmap(lambda k: one(net, k, x, layers_out))(keys)


def _fingerprint(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else repr(p).encode())
    return h.hexdigest()


def _load(path, fingerprint):
    if path is None or not os.path.exists(path):
        return []
    with np.load(path) as f:
        if str(f["fingerprint"]) != fingerprint:
            raise ValueError(f"output_samples: {path} holds samples of a different run (network, "
                             "inputs, key, chunk_size or method differ); remove it or pass "
                             "another path.")
        return [f["samples"]] if f["samples"].shape[0] else []


def _save(path, chunks, fingerprint):
    tmp = f"{path}.tmp.npz"
    np.savez(tmp, samples=np.concatenate(chunks), fingerprint=np.array(fingerprint))
    os.replace(tmp, path)


def _run_chunks(fn, key, n_total, chunk_size, path, fingerprint, progress, desc, save_every):
    chunks = _load(path, fingerprint)
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
            _save(path, chunks, fingerprint)
            chunks, last_save = [np.concatenate(chunks)], time.monotonic()
    bar.close()
    return np.concatenate(chunks)[:n_total]


def output_samples(net, key, x, n_networks: int, *, chunk_size: int = 8192, method: str = "auto",
                   layers: bool = False, path: str | os.PathLike | None = None,
                   progress: bool = True, save_every: float = 30.0) -> np.ndarray:
    """Outputs of ``n_networks`` independent random networks ``net`` at the inputs ``x`` (n, d).

    Returns a NumPy array (n_networks, n, k) (k output features), or with ``layers=True`` the
    pre-activation of unit 0 of every Dense layer, (n_networks, n_dense, n) (serial chains only).
    Networks are generated ``chunk_size`` at a time under ``jax.vmap`` (parameters of one chunk
    in memory at once), with a tqdm bar. ``method``: "params" (any spec), "collapsed" (Gaussian
    Dense/activation chains, same law, fewer random numbers; see the module docstring) or "auto"
    (collapsed when possible). ``path`` (an .npz file): finished chunks are saved there (at most
    every ``save_every`` seconds and at the end) and a later call resumes from them; a file from a
    different run raises ``ValueError``. Samples have the dtype of ``x``.
    """
    _check_count("output_samples", "n_networks", n_networks)
    _check_count("output_samples", "chunk_size", chunk_size)
    if method not in METHODS:
        raise ValueError(f"output_samples: method must be one of {METHODS}, got {method!r}.")
    if not isinstance(net, nets.Layer):
        raise TypeError(f"output_samples: net must be a widelimits network spec, got {net!r}.")
    x = jnp.asarray(x)
    if x.ndim != 2 or not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"output_samples: x must be a float array of shape (n, d), got shape "
                         f"{x.shape} and dtype {x.dtype}.")
    chain = _chain(net)
    if method == "auto":
        method = "collapsed" if chain is not None else "params"
    if chain is None and (method == "collapsed" or layers):
        what = "method='collapsed'" if method == "collapsed" else "layers=True"
        raise TypeError(f"output_samples: {what} needs serial(Dense, activation, ..., Dense) "
                        f"with Gaussian weights, got {net!r}.")
    fingerprint = _fingerprint(net, np.asarray(x).tobytes(), x.dtype.name,
                               np.asarray(jax.random.key_data(key)).tobytes(), chunk_size,
                               method, layers)
    fn = lambda keys: _chunk(net, keys, x, method, layers)
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
    a one-hidden-layer net of width N = ``width`` at one input (Gaussian first layer). (n_samples,).
    """
    _check_count("one_layer_samples", "n_samples", n_samples)
    _check_count("one_layer_samples", "width", width)
    _check_count("one_layer_samples", "chunk_size", chunk_size)
    if not isinstance(activation, nets.Activation):
        raise TypeError(f"one_layer_samples: activation must be an activation spec, got "
                        f"{activation!r}.")
    sampler = _readout_sampler(readout)
    q = jnp.asarray(q, dtype)
    if q.shape != () or not float(q) >= 0:
        raise ValueError(f"one_layer_samples: q must be a scalar >= 0, got {q!r}.")
    fn = lambda keys: _one_layer_chunk(keys, activation, q, jnp.asarray(v_std, dtype),
                                       jnp.asarray(vb_std, dtype), width, sampler)
    return _run_chunks(fn, key, n_samples, min(chunk_size, n_samples), None, "", progress,
                       "one-layer samples", 0.0)


class KurtosisEstimate(NamedTuple):
    """Sample excess kurtosis ``value`` and its standard error ``stderr`` (same shape)."""

    value: np.ndarray
    stderr: np.ndarray


def sample_kurtosis(samples, axis: int = 0) -> KurtosisEstimate:
    """Excess kurtosis g = m4/m2^2 - 3 (central sample moments) along ``axis``, in float64, with
    its delta-method standard error: sd(IF)/sqrt(M) over the M samples, IF the influence function

        IF(x) = [(x - mu)^4 - mu4 - 4 mu3 (x - mu)]/mu2^2 - 2 mu4/mu2^3 [(x - mu)^2 - mu2]

    (for a Gaussian: sqrt(24/M)). Needs M >= 8 samples with nonzero spread.
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
    freedom of the residuals (about 1 when the model and the errors are right)."""

    slope: float
    stderr: float
    chi2_dof: float


def fit_proportional(x, y, stderr) -> ProportionalFit:
    """Fit y = s x through the origin with weights 1/stderr^2 (x, y, stderr of one shape (m,)):
    s = sum(w x y)/sum(w x^2), se(s) = 1/sqrt(sum(w x^2))."""
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
