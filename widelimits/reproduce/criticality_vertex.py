"""Excess kurtosis of deep critical networks: the depth-to-width ratio l/n controls the deviation
from the Gaussian process (Roberts, Yaida & Hanin, "The Principles of Deep Learning Theory", 2022,
ch. 4-5).

MLPs ``nets.mlp(n, L, act, w_std=sqrt(C_W), b_std=0)`` at criticality: ReLU with C_W = 2 and
tanh with C_W = 1 (C_b = 0), one input with |x|^2/d = 1. For each width n we draw an ensemble of
networks (``finite.output_samples(..., layers=True)``: unit 0 of every layer's pre-activations
z^(l), l = 1 .. L + 1) and estimate the excess kurtosis of z^(l) with its delta-method standard
error. Predictions: the four-point vertex recursion (``finite.vertex_recursion``), excess =
3 V^(l)/(n K^(l)^2) + O(1/n^2); for ReLU V/K^2 = 5 (l - 1) and the exact finite-width law
3 (1 + 5/n)^(l-1) - 3 (``finite.relu_exact_kurtosis``), which at fixed l/n tends to
3 (exp(5 l/n) - 1). For tanh V/(K^2 l) -> 2/3 slowly, so excess -> 2 l/n at small l/n.

Fits (weighted least squares, standard errors from the sampling errors): the initial slope a of
excess = a x + b x^2 in x = (l - 1)/n (ReLU, expected 15) or x = l/n (tanh, compared with the same
fit applied to the recursion's values), over x <= ``fit_max``. Both are compared with the same
fit applied to the predictions at the same points (ReLU: the exact law, whose slope at width n
is 3 n log(1 + 5/n), 13.1 at n = 16 to 14.7 at n = 128, below the 1/n order's 15).

``run(size)`` (smoke: seconds; quick: under a minute on two CPU cores; full: 10^6 networks per
width) resumes finished (activation, width) ensembles from ``out/criticality_vertex_<size>.npz``;
``plot(result, out)`` draws ``criticality_vertex.png``.
"""

from __future__ import annotations

import functools
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from .. import finite, nets
from ._common import check_size, checkpoint, new_figure, resume, save_figure

__all__ = ["CONFIGS", "CRITICAL", "D_IN", "make_net", "predictions", "run", "plot"]

D_IN = 4
CRITICAL = {"relu": (nets.Relu(), 2.0), "tanh": (nets.Tanh(), 1.0)}  # (activation, C_W), C_b = 0

CONFIGS = {
    "smoke": dict(widths={"relu": (8,), "tanh": (8,)}, depth=4, n_networks=4096, fit_max=0.2),
    "quick": dict(widths={"relu": (16, 32, 64), "tanh": (16, 32, 64)}, depth=24,
                  n_networks=100_000, fit_max=0.2),
    "full": dict(widths={"relu": (16, 32, 64, 128), "tanh": (16, 32, 64, 128)}, depth=32,
                 n_networks=1_000_000, fit_max=0.2),
}


def make_net(act: str, width: int, depth: int):
    """``nets.mlp(width, depth, act, w_std=sqrt(C_W), b_std=0)`` at the critical point of ``act``."""
    activation, c_w = CRITICAL[act]
    return nets.mlp(width, depth, activation, w_std=math.sqrt(c_w), b_std=0.0)


@functools.lru_cache(maxsize=16)
def _recursion(act: str, depth: int):
    activation, c_w = CRITICAL[act]
    rec = finite.vertex_recursion(activation, depth + 1, c_w=c_w, c_b=0.0, k1=c_w)
    return (np.asarray(rec.kurtosis_coefficient, np.float64),
            np.asarray(rec.kernel, np.float64))


def predictions(act: str, width: int, depth: int) -> dict:
    """Leading-order excess kurtosis 3V/(nK^2) of layers l = 1 .. depth + 1 from the vertex
    recursion (``recursion``), V/K^2 (``coefficient``), K (``kernel``), and for ReLU the exact
    law (``exact``)."""
    coefficient, kernel = _recursion(act, depth)
    out = {"recursion": 3 * coefficient / width, "coefficient": coefficient, "kernel": kernel}
    if act == "relu":
        out["exact"] = 3 * ((1 + 5 / width) ** np.arange(depth + 1) - 1)
    return out


def _ensemble(act, width, depth, n, key):
    z = finite.output_samples(make_net(act, width, depth), key, jnp.ones((1, D_IN)), n,
                              layers=True, chunk_size=min(n, 32_768), progress=False)[:, :, 0]
    est = finite.sample_kurtosis(z)
    return np.stack([est.value, est.stderr, z.var(0)])


def _initial_slope(x, y, se, x_max):
    """(a, se(a)) of the weighted fit y = a x + b x^2 over 0 < x <= x_max."""
    ok = (x > 0) & (x <= x_max) & np.isfinite(y)
    if ok.sum() < 3:
        return float("nan"), float("nan")
    design = np.stack([x[ok], x[ok] ** 2], axis=1) / se[ok, None]
    coef, *_ = np.linalg.lstsq(design, y[ok] / se[ok], rcond=None)
    cov = np.linalg.inv(design.T @ design)
    return float(coef[0]), float(np.sqrt(cov[0, 0]))


def run(size: str = "full", out: str | os.PathLike = "figures", *, seed: int = 0) -> dict:
    """Ensembles of deep critical ReLU and tanh nets: sample excess kurtosis per layer vs the
    vertex recursion.

    Returns a dict: ``size``, ``config``, ``depth`` (hidden layers L), ``layers`` (L + 1,) the
    layer index l, and per activation ``results[act][width]`` = dict with ``kurtosis``,
    ``stderr``, ``variance`` (L + 1,) (sample), ``recursion``, ``coefficient``, ``kernel``
    (and ``exact`` for ReLU) (L + 1,); ``z`` = (sample - prediction)/stderr with the exact law for
    ReLU and the recursion for tanh; ``slopes[act]`` = (a, se(a), the same fit to those
    predictions' values at the same points: ReLU's exact law has slope 3 n log(1 + 5/n) < 15);
    ``data``.
    """
    cfg = CONFIGS[check_size(size)]
    depth = cfg["depth"]
    os.makedirs(out, exist_ok=True)
    data = os.path.join(os.fspath(out), f"criticality_vertex_{size}.npz")
    done = resume(data, seed=seed, depth=depth)
    key = jax.random.key(seed)
    jobs = [(a, w) for a in cfg["widths"] for w in cfg["widths"][a]]
    for act, width in tqdm(jobs, desc="criticality_vertex", unit="ensemble"):
        name = f"{act}_{width}"
        if name not in done:
            k = jax.random.fold_in(jax.random.fold_in(key, width), list(CRITICAL).index(act))
            done[name] = _ensemble(act, width, depth, cfg["n_networks"], k)
            checkpoint(data, done, seed=seed, depth=depth)
    layers = np.arange(1, depth + 2)
    results, slopes = {}, {}
    for act in cfg["widths"]:
        results[act] = {}
        xs, ys, ses, preds = [], [], [], []
        for width in cfg["widths"][act]:
            value, se, var = done[f"{act}_{width}"]
            pred = predictions(act, width, depth)
            ref = pred["exact"] if act == "relu" else pred["recursion"]
            results[act][width] = dict(kurtosis=value, stderr=se, variance=var,
                                       z=(value - ref) / se, **pred)
            xs.append((layers - (act == "relu")) / width)
            ys.append(value)
            ses.append(se)
            preds.append(ref)
        x, y, se, p = (np.concatenate(a) for a in (xs, ys, ses, preds))
        a, a_se = _initial_slope(x, y, se, cfg["fit_max"])
        a_rec, _ = _initial_slope(x, p, se, cfg["fit_max"])
        slopes[act] = (a, a_se, a_rec)
    return {"size": size, "config": dict(cfg), "depth": depth, "layers": layers,
            "results": results, "slopes": slopes, "data": data}


def plot(result: dict, out: str | os.PathLike = "figures") -> list[str]:
    """Draw ``criticality_vertex.png``: excess kurtosis vs depth for critical ReLU and tanh at
    several widths (points: ensembles ±1 s.e.; lines: the recursion 3V/(nK^2); dashed: ReLU's exact
    law), and the collapse of all widths on l/n (log-log)."""
    fig, axes = new_figure(1, 3, panel=(4.2, 3.5))
    layers = result["layers"]
    n_net = result["config"]["n_networks"]
    for col, act in enumerate(("relu", "tanh")):
        if act not in result["results"]:
            continue
        ax, cax = axes[0, col], axes[0, 2]
        for i, (width, r) in enumerate(sorted(result["results"][act].items())):
            color = f"C{i}"
            ok = (r["kurtosis"] > 0) & (layers > 1)  # z^(1) is exactly Gaussian
            err = np.minimum(r["stderr"], 0.9 * r["kurtosis"])[ok]
            ax.errorbar(layers[ok], r["kurtosis"][ok], yerr=err, fmt="o", ms=3, color=color,
                        capsize=1.5, label=f"n = {width}")
            ax.plot(layers, r["recursion"], color=color, lw=1)
            if "exact" in r:
                ax.plot(layers, r["exact"], color=color, lw=1, ls="--")
            x = (layers - (act == "relu")) / width
            marker = "o" if act == "relu" else "s"
            cax.errorbar(x[ok], r["kurtosis"][ok], yerr=err, fmt=marker, ms=3, color=color,
                         mfc="none" if act == "tanh" else color, capsize=1, alpha=0.8,
                         label=f"{act}, n = {width}")
            if act == "tanh":
                cax.plot(x[1:], r["recursion"][1:], color=color, lw=0.8, ls=":")
        a, a_se, a_rec = result["slopes"][act]
        ax.set_yscale("log")
        ax.set_xlabel("layer l")
        ax.set_ylabel("excess kurtosis of z⁽ˡ⁾")
        what = "15 (l−1)/n; dashed: exact 3(1+5/n)^(l−1) − 3" if act == "relu" else \
            "3V/(nK²), V/(K² l) → 2/3"
        ax.set_title(f"critical {act} (C_W = {CRITICAL[act][1]:g}, C_b = 0), {n_net:,} nets\n"
                     f"lines: recursion {what}\ninitial slope in l/n: {a:.3g} ± {a_se:.2g} "
                     f"({'exact law' if act == 'relu' else 'recursion'}, same fit: {a_rec:.3g})",
                     fontsize="x-small")
        ax.legend(fontsize="x-small")
        ax.grid(alpha=0.3)
    cax = axes[0, 2]
    xx = np.geomspace(1 / 256, 4, 200)
    cax.plot(xx, 15 * xx, color="k", lw=1, label="ReLU 15 x")
    cax.plot(xx, 3 * np.expm1(5 * xx), color="k", lw=1, ls="--", label="ReLU 3(e^{5x} − 1)")
    cax.plot(xx, 2 * xx, color="0.5", lw=1, label="tanh 2 x (l → ∞)")
    cax.set_xscale("log")
    cax.set_yscale("log")
    cax.set_ylim(1e-3, 1e3)
    cax.set_xlabel("x = (l − 1)/n (ReLU), l/n (tanh)")
    cax.set_ylabel("excess kurtosis")
    cax.set_title("collapse on depth/width (dotted: tanh recursion)", fontsize="x-small")
    cax.legend(fontsize=6, ncols=2)
    cax.grid(alpha=0.3)
    fig.suptitle("Deep critical networks: excess kurtosis ≈ 3V/(nK²) grows with depth/width "
                 "(Roberts, Yaida & Hanin 2022)", fontsize="medium")
    return [save_figure(fig, out, "criticality_vertex.png")]
