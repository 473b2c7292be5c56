"""Kernel width scaling: ||K_n - K_inf||_F / ||K_inf||_F vs width n, slope -1/2.

Finite-width NNGP and NTK of ReLU MLPs (NTK parameterization, w_std = √2, b_std = 0.1) on random
inputs fluctuate around the infinite-width kernels with a relative Frobenius deviation that
decays as n^(-1/2) (central limit theorem over the n units of each layer; Jacot et al. 2018,
"Neural tangent kernel", Fig. 1, for the convergence; Hanin & Nica 2020, "Finite depth and width
corrections to the neural tangent kernel", for the fluctuations at fixed depth). For each width
we draw several initialisations, measure the deviation with ``compare.kernel_convergence`` and
fit the exponent with its standard error.

``run(size)`` computes the numbers (smoke: seconds, quick: under a minute on two CPU cores, full:
more widths and seeds), resuming finished depths from ``out/kernel_width_scaling_<size>.npz``;
``plot(result, out)`` draws ``kernel_width_scaling.png``.
"""

from __future__ import annotations

import math
import os

import jax
import numpy as np

from .. import compare, nets
from ._common import check_size, checkpoint, new_figure, resume, save_figure

__all__ = ["CONFIGS", "make_net", "run", "plot"]

CONFIGS = {
    "smoke": dict(widths=(32, 64, 128, 256, 512), depths=(1,), n_seeds=4, n_inputs=6),
    "quick": dict(widths=(32, 64, 128, 256, 512, 1024, 2048), depths=(1, 3), n_seeds=8,
                  n_inputs=10),
    "full": dict(widths=(32, 64, 128, 256, 512, 1024, 2048, 4096, 8192), depths=(1, 3),
                 n_seeds=20, n_inputs=20),
}


def make_net(width: int, depth: int):
    """ReLU MLP with ``depth`` hidden layers, NTK parameterization, w_std = √2, b_std = 0.1."""
    return nets.mlp(width, depth, nets.Relu(), w_std=math.sqrt(2), b_std=0.1)


def run(size: str = "full", out: str | os.PathLike = "figures", *, seed: int = 0) -> dict:
    """Deviations and fits for every depth of ``CONFIGS[size]``; each finished depth is saved to
    and resumed from ``out/kernel_width_scaling_<size>.npz``.

    Returns a dict: ``size``, ``config``, ``widths``, ``depths`` and ``results`` (one
    ``compare.KernelConvergence`` per depth), ``data`` (the file).
    """
    cfg = CONFIGS[check_size(size)]
    x = jax.random.normal(jax.random.key(seed), (cfg["n_inputs"], 4))
    widths = np.asarray(cfg["widths"])
    os.makedirs(out, exist_ok=True)
    data = os.path.join(os.fspath(out), f"kernel_width_scaling_{size}.npz")
    stamp = dict(seed=seed, widths=widths, n_seeds=cfg["n_seeds"], n_inputs=cfg["n_inputs"])
    done = resume(data, **stamp)
    results = []
    for d in cfg["depths"]:
        if f"ntk_depth{d}" not in done:
            res = compare.kernel_convergence(lambda w, d=d: make_net(w, d), cfg["widths"], x,
                                             jax.random.key(seed + 1 + d),
                                             n_seeds=cfg["n_seeds"])
            done.update({f"{k}_depth{d}": v for k, v in res.deviations.items()})
            checkpoint(data, done, **stamp)
        devs = {k: done[f"{k}_depth{d}"] for k in ("nngp", "ntk")}
        results.append(compare.KernelConvergence(
            widths=widths, deviations=devs,
            fits={k: compare.fit_power_law(widths, v) for k, v in devs.items()}))
    return {"size": size, "config": dict(cfg), "widths": list(cfg["widths"]),
            "depths": list(cfg["depths"]), "results": results, "data": data}


def plot(result: dict, out: str | os.PathLike = "figures") -> list[str]:
    """One log-log panel per depth: mean deviation ± s.e. over seeds and the fitted power laws."""
    depths = result["depths"]
    fig, axes = new_figure(1, len(depths), panel=(4.4, 3.4), sharey=True)
    for i, (depth, res) in enumerate(zip(depths, result["results"], strict=True)):
        ax = compare.plot_kernel_convergence(res, axes[0, i])
        w = np.asarray(result["widths"], float)
        start = res.deviations["ntk"][0].mean()
        ax.plot(w, start * (w / w[0]) ** -0.5, color="0.5", ls=":", lw=1,
                label="slope −1/2 (theory)")
        ax.legend(fontsize="x-small")
        ax.set_title(f"ReLU MLP, {depth} hidden layer{'s' if depth > 1 else ''}")
    fig.suptitle("Finite-width kernels approach the limit as width^(−1/2) "
                 f"({result['config']['n_seeds']} seeds per width, NTK param., w_std = √2, "
                 "b_std = 0.1)", fontsize="medium")
    return [save_figure(fig, out, "kernel_width_scaling.png")]
