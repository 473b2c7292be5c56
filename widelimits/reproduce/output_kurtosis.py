"""Output kurtosis of one-hidden-layer networks at finite width (Antognini 2019, "Finite size
corrections for neural network Gaussian processes", arXiv:1908.10030).

Networks ``serial(Dense(N, 1, 0), act, Dense(1, 1, 0))`` (NTK parameterization, Gaussian weights)
at one input with |x|^2/d = 1, so the hidden pre-activations are N(0, 1). The output is a sum of N
iid centred terms, so its excess kurtosis is exactly (3/N)(E h^4/(E h^2)^2 - 1)
(``finite.one_layer_cumulants``). For ReLU, tanh and GELU and widths N = 2 .. 128 we draw large
ensembles of networks (``finite.output_samples``) and compare their sample kurtosis (delta-method
standard errors, z-scores) with the exact 1/N law; at one small width we compare the histogram of
the standardised output with the Gaussian and the Edgeworth densities (first order, and second
order with the exact sixth cumulant), with Kolmogorov-Smirnov distances.

``run(size)`` (smoke: seconds; quick: under a minute on two CPU cores; full: 10^6 networks per
point) resumes finished points from ``out/output_kurtosis_<size>.npz``; ``plot(result, out)``
draws ``output_kurtosis.png``.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats
from tqdm import tqdm

from .. import finite, nets
from ._common import check_size, checkpoint, new_figure, resume, save_figure

__all__ = ["CONFIGS", "ACTIVATIONS", "D_IN", "make_net", "run", "plot"]

D_IN = 4
ACTIVATIONS = {"relu": nets.Relu(), "tanh": nets.Tanh(), "gelu": nets.Gelu()}

CONFIGS = {
    "smoke": dict(widths=(2, 16), activations=("relu",), n_networks=8192,
                  hist=("relu", 16), bins=41),
    "quick": dict(widths=(2, 8, 32, 128), activations=("relu", "tanh", "gelu"),
                  n_networks=200_000, hist=("relu", 32), bins=61),
    "full": dict(widths=(2, 4, 8, 16, 32, 64, 128), activations=("relu", "tanh", "gelu"),
                 n_networks=1_000_000, hist=("relu", 32), bins=81),
}


def make_net(width: int, activation: str):
    """``serial(Dense(width, 1, 0), act, Dense(1, 1, 0))`` with act = ``ACTIVATIONS[activation]``."""
    return nets.serial(nets.Dense(width, 1.0, 0.0), ACTIVATIONS[activation],
                       nets.Dense(1, 1.0, 0.0))


def _point(act, width, n, key, bins):
    net = make_net(width, act)
    x = jnp.ones((1, D_IN), jnp.float32)
    f = finite.output_samples(net, key, x, n, chunk_size=min(n, 65_536), progress=False)[:, 0, 0]
    exact = finite.one_layer_cumulants(ACTIVATIONS[act], 1.0, width)
    y = f / np.sqrt(float(exact.variance))
    est = finite.sample_kurtosis(y)
    counts, _ = np.histogram(y, bins=bins, range=(-5, 5))
    g4, g6 = float(exact.kurtosis), float(exact.sixth)
    ks = [stats.kstest(y, cdf).statistic for cdf in (
        stats.norm.cdf, lambda t: np.asarray(finite.edgeworth_cdf(t, g4)),
        lambda t: np.asarray(finite.edgeworth_cdf(t, g4, g6)))]
    return np.array([est.value, est.stderr, g4, g6, float(y.var()), *ks]), counts


def _exponent(widths, value, se):
    """Weighted least-squares slope of log kurtosis vs log N (points resolved at 3 s.e.; error of
    log y taken as se/y) and its standard error; (nan, nan) with fewer than 2 such points."""
    ok = value > 3 * se
    if ok.sum() < 2:
        return float("nan"), float("nan")
    t, u, w = np.log(np.asarray(widths, float)[ok]), np.log(value[ok]), (value[ok] / se[ok]) ** 2
    tm = np.sum(w * t) / w.sum()
    stt = np.sum(w * (t - tm) ** 2)
    return float(np.sum(w * (t - tm) * u) / stt), float(1 / np.sqrt(stt))


def run(size: str = "full", out: str | os.PathLike = "figures", *, seed: int = 0) -> dict:
    """Sample kurtosis of ensembles of one-hidden-layer nets vs the exact formula.

    Returns a dict: ``size``, ``config``, ``widths`` (W,), ``activations`` (A,), ``kurtosis``,
    ``stderr``, ``exact`` (A, W) (sample and exact excess kurtosis of the output), ``sixth``
    (A, W) exact gamma_6, ``variance`` (A, W) sample variance / exact variance, ``z`` (A, W),
    ``ks`` (A, W, 3) KS distances of the standardised outputs from the Gaussian, first- and
    second-order Edgeworth CDFs, ``slope`` {act: (s, se(s), exact N gamma_4)} from the weighted
    fit kurtosis = s/N, ``exponent`` {act: (b, se(b))} from a free fit kurtosis ∝ N^b,
    ``hist`` = (activation, width), ``counts`` (bins,), ``edges``, ``data``.
    """
    cfg = CONFIGS[check_size(size)]
    os.makedirs(out, exist_ok=True)
    data = os.path.join(os.fspath(out), f"output_kurtosis_{size}.npz")
    done = resume(data, seed=seed)
    key = jax.random.key(seed)
    points = [(a, w) for a in cfg["activations"] for w in cfg["widths"]]
    for i, (act, width) in enumerate(tqdm(points, desc="output_kurtosis", unit="point")):
        name = f"{act}_{width}"
        if name not in done:
            stats_, counts = _point(act, width, cfg["n_networks"], jax.random.fold_in(key, i),
                                    cfg["bins"])
            done[name], done[f"counts_{name}"] = stats_, counts
            checkpoint(data, done, seed=seed)
    acts, widths = list(cfg["activations"]), list(cfg["widths"])
    table = np.array([[done[f"{a}_{w}"] for w in widths] for a in acts])
    value, se, exact = table[..., 0], table[..., 1], table[..., 2]
    slopes, exponents = {}, {}
    for a, act in enumerate(acts):
        fit = finite.fit_proportional(1 / np.asarray(widths, float), value[a], se[a])
        slopes[act] = (fit.slope, fit.stderr, float(exact[a, 0] * widths[0]))
        exponents[act] = _exponent(widths, value[a], se[a])
    hist = tuple(cfg["hist"])
    return {
        "size": size, "config": dict(cfg), "widths": widths, "activations": acts,
        "kurtosis": value, "stderr": se, "exact": exact, "sixth": table[..., 3],
        "variance": table[..., 4], "z": (value - exact) / se, "ks": table[..., 5:8],
        "slope": slopes, "exponent": exponents, "hist": hist,
        "counts": done[f"counts_{hist[0]}_{hist[1]}"],
        "edges": np.linspace(-5, 5, cfg["bins"] + 1), "data": data,
    }


def plot(result: dict, out: str | os.PathLike = "figures") -> list[str]:
    """Draw ``output_kurtosis.png``: (left) sample excess kurtosis vs width on log-log axes with
    the exact 1/N lines; (middle) N times the kurtosis, flat at the exact constant; (right) the
    histogram of the standardised output at one small width vs Gaussian and Edgeworth densities."""
    fig, axes = new_figure(1, 3, panel=(4.2, 3.4))
    widths = np.asarray(result["widths"], float)
    dense = np.geomspace(widths[0], widths[-1], 50)
    n_net = result["config"]["n_networks"]
    for a, act in enumerate(result["activations"]):
        color = f"C{a}"
        val, se, ex = result["kurtosis"][a], result["stderr"][a], result["exact"][a]
        c = ex[0] * widths[0]
        slope, slope_se, _ = result["slope"][act]
        b, b_se = result["exponent"][act]
        label = (f"{act}: exact {c:.3g}/N; fit {slope:.3g}±{slope_se:.2g}/N, N^({b:.3f}±{b_se:.3f}),"
                 f" max|z| {np.max(np.abs(result['z'][a])):.1f}")
        ax = axes[0, 0]
        pos = val > 0
        ax.errorbar(widths[pos], val[pos], yerr=np.minimum(se[pos], 0.999 * val[pos]), fmt="o",
                    ms=4, color=color, capsize=2, label=label)
        ax.plot(widths[~pos], 2 * se[~pos], "v", color=color, ms=5)
        ax.plot(dense, c / dense, color=color, lw=1)
        ax = axes[0, 1]
        ax.errorbar(widths, val * widths, yerr=2 * se * widths, fmt="o", ms=4, color=color,
                    capsize=2, label=act)
        ax.axhline(c, color=color, lw=1)
    ax = axes[0, 0]
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("hidden width N")
    ax.set_ylabel("excess kurtosis of f(x)")
    ax.set_title(f"{n_net:,} networks per point (±1 s.e.; ▽: 2 s.e. bound)", fontsize="small")
    ax.legend(fontsize="x-small")
    ax = axes[0, 1]
    ax.set_xscale("log", base=2)
    ax.set_xlabel("hidden width N")
    ax.set_ylabel("N × excess kurtosis (±2 s.e.)")
    ax.set_title("exact at every N: lines = 3 (E h⁴/(E h²)² − 1)", fontsize="small")
    ax.grid(alpha=0.3)
    ax = axes[0, 2]
    act, width = result["hist"]
    a, w = result["activations"].index(act), result["widths"].index(width)
    edges, counts = result["edges"], result["counts"]
    centres, dx = 0.5 * (edges[1:] + edges[:-1]), edges[1] - edges[0]
    density = counts / (counts.sum() * dx)
    err = np.sqrt(np.maximum(counts, 1)) / (counts.sum() * dx)
    ax.errorbar(centres, density, yerr=err, fmt=".", color="k", ms=3, label=f"{act}, N = {width}")
    yy = np.linspace(edges[0], edges[-1], 400)
    g4, g6 = result["exact"][a, w], result["sixth"][a, w]
    ks = result["ks"][a, w]
    ax.plot(yy, stats.norm.pdf(yy), color="C7", label=f"Gaussian (KS {ks[0]:.4f})")
    ax.plot(yy, np.asarray(finite.edgeworth_pdf(yy, g4)), color="C3",
            label=f"Edgeworth, γ₄ = {g4:.3f} (KS {ks[1]:.4f})")
    ax.plot(yy, np.asarray(finite.edgeworth_pdf(yy, g4, g6)), color="C2", ls="--",
            label=f"+ 2nd order, γ₆ = {g6:.3f} (KS {ks[2]:.4f})")
    ax.set_yscale("log")
    ax.set_ylim(max(density[density > 0].min() / 3, 1e-7), 1)
    ax.set_xlabel("standardised output f/√K")
    ax.set_ylabel("density")
    ax.legend(fontsize="x-small", loc="lower center")
    fig.suptitle("One-hidden-layer networks at finite width: the output's excess kurtosis is exactly "
                 "∝ 1/N (Antognini 2019)", fontsize="medium")
    return [save_figure(fig, out, "output_kurtosis.png")]
