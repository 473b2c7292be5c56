"""NTK convergence: finite-width NTKs on the unit circle against the limit (Jacot et al. 2018, Fig. 1).

A depth L = 4 ReLU network (three hidden layers of width n and a scalar readout) in the NTK
parameterization with bias scale β = 0.1. For widths n = 500 and 10000 (full size) and 10
initialisations each we plot Θ(x0, x(γ)), x0 = (1, 0), x(γ) = (cos γ, sin γ) for γ in [-π, π],
at initialisation and after 200 steps of full-batch gradient descent (learning rate 1.0) on the
least-squares cost (1/2N) Σ (f(x_i) - f*(x_i))² with f*(x) = x1 x2, against the analytic
infinite-width NTK. The wide networks' kernels hug the limit and barely move in training; the
narrow ones scatter and move.

Training set: the paper does not list its inputs; we use N = 4 points on the unit circle at
angles drawn once (seed 0), the size of the training set of its Fig. 2.

``run(size)`` computes the numbers (smoke: seconds; quick: under a minute on two CPU cores;
full: the paper's sizes), resuming finished widths from ``out/ntk_convergence_<size>.npz``;
``plot(result, out)`` draws ``ntk_convergence.png``.
"""

from __future__ import annotations

import os

import jax
import numpy as np
import optax

from .. import dynamics, kernels, nets
from ._common import (
    angle_axis,
    check_size,
    checkpoint,
    circle,
    new_figure,
    rerun_saved,
    resume,
    save_figure,
)

__all__ = ["CONFIGS", "DEPTH", "B_STD", "LEARNING_RATE", "N_TRAIN", "OPTIMIZER", "make_net",
           "training_set", "run", "plot", "load"]

DEPTH = 3  # hidden layers: L = 4 layers of weights in Jacot et al.'s counting
B_STD = 0.1
LEARNING_RATE = 1.0
N_TRAIN = 4
OPTIMIZER = optax.sgd(LEARNING_RATE)  # one object: dynamics.train compiles once per width

CONFIGS = {
    "smoke": dict(widths=(32, 1024), n_inits=3, n_angles=25, steps=20),
    "quick": dict(widths=(100, 1000), n_inits=10, n_angles=61, steps=200),
    "full": dict(widths=(500, 10000), n_inits=10, n_angles=201, steps=200),
}


def make_net(width: int):
    """The network of the figure: ``nets.mlp(width, 3, Relu, w_std=1, b_std=0.1)`` (NTK param.)."""
    return nets.mlp(width, DEPTH, nets.Relu(), w_std=1.0, b_std=B_STD)


def training_set(seed: int = 0):
    """The N_TRAIN training inputs on the unit circle (N, 2) and targets f*(x) = x1 x2 (N, 1)."""
    angles = np.random.default_rng(seed).uniform(-np.pi, np.pi, N_TRAIN)
    x = circle(angles)
    return x, x[:, :1] * x[:, 1:]


def _one_width(width, cfg, key, x0, xs, x_train, y_train):
    """The I initialisations of one width (keys ``fold_in(key, i)``), each trained by
    ``dynamics.train`` with ``OPTIMIZER``: plain gradient descent on its "mse" loss, which for
    one output is the figure's cost (1/2N) sum (f - y)^2 (one compiled program per width: the
    optimizer is one object); the empirical NTKs Θ(x0, x(γ)) before and after training."""
    net = make_net(width)
    ntk0, ntk_t, losses = [], [], []
    for i in range(cfg["n_inits"]):
        params = net.init(jax.random.fold_in(key, i), x_train.shape)
        ntk0.append(np.asarray(kernels.empirical_ntk(net, params, x0, xs)[0]))
        res = dynamics.train(net, params, x_train, y_train, OPTIMIZER, cfg["steps"],
                             progress=False)
        ntk_t.append(np.asarray(kernels.empirical_ntk(net, res.params, x0, xs)[0]))
        losses.append(np.asarray(res.loss))
    return {"ntk0": np.stack(ntk0), "ntk_t": np.stack(ntk_t), "loss": np.stack(losses)}


def run(size: str = "full", out: str | os.PathLike = "figures", *, seed: int = 0) -> dict:
    """Compute the figure's kernels at ``size``; finished widths are saved to and resumed from
    ``out/ntk_convergence_<size>.npz``.

    Returns a dict: ``size``, ``config``, ``angles`` (A,), ``widths`` (W,), ``limit`` (A,) the
    analytic NTK Θ∞(x0, x(γ)), ``ntk0`` and ``ntk_t`` (W, I, A) the empirical NTKs of I
    initialisations at t = 0 and after training, ``loss`` (W, I, steps + 1), and the summaries
    ``deviation`` (W, 2) = mean over inits of ||Θ - Θ∞|| / ||Θ∞|| at t = 0 and t = T, and
    ``movement`` (W,) = mean of ||Θ_T - Θ_0|| / ||Θ_0|| (norms over the angles), ``data``.
    """
    cfg = CONFIGS[check_size(size)]
    angles = np.linspace(-np.pi, np.pi, cfg["n_angles"])
    x0, xs = circle([0.0]), circle(angles)
    x_train, y_train = training_set(seed)
    limit = np.asarray(kernels.analytic(make_net(1), x0, xs).ntk[0], np.float64)

    os.makedirs(out, exist_ok=True)
    data = os.path.join(os.fspath(out), f"ntk_convergence_{size}.npz")
    stamp = dict(seed=seed, config=repr(cfg))
    done = resume(data, **stamp)
    key = jax.random.key(seed)
    for width in cfg["widths"]:
        if f"loss_{width}" not in done:
            piece = _one_width(width, cfg, jax.random.fold_in(key, width), x0, xs, x_train,
                               y_train)
            done.update({f"{k}_{width}": v for k, v in piece.items()})
            checkpoint(data, done, **stamp)
    widths = list(cfg["widths"])
    res = {k: np.stack([done[f"{k}_{w}"] for w in widths]) for k in ("ntk0", "ntk_t", "loss")}
    rel = lambda a, b: np.linalg.norm(a - b, axis=-1) / np.linalg.norm(b, axis=-1)
    return {
        "size": size, "config": dict(cfg), "angles": angles, "widths": widths, "limit": limit,
        **res,
        "deviation": np.stack([rel(res["ntk0"], limit).mean(1), rel(res["ntk_t"], limit).mean(1)],
                              axis=-1),
        "movement": rel(res["ntk_t"], res["ntk0"]).mean(1),
        "x_train": np.asarray(x_train), "data": data,
    }


def load(path: str | os.PathLike, size: str) -> dict:
    """Rebuild ``run``'s result from its saved file without computing anything new (every
    width of ``CONFIGS[size]`` must be in the file)."""
    widths = CONFIGS[check_size(size)]["widths"]
    return rerun_saved(path, run, size, {f"width {w}": f"loss_{w}" for w in widths},
                       "ntk_convergence.load")


def plot(result: dict, out: str | os.PathLike = "figures") -> list[str]:
    """Draw ``ntk_convergence.png``: one panel per width, the I initialisations' Θ(x0, x(γ))
    at t = 0 (solid) and after training (dashed) against the analytic limit (black)."""
    widths, angles = result["widths"], result["angles"]
    fig, axes = new_figure(1, len(widths), panel=(4.6, 3.4), sharey=True)
    steps = result["config"]["steps"]
    for w, width in enumerate(widths):
        ax = axes[0, w]
        for i in range(result["ntk0"].shape[1]):
            first = i == 0
            ax.plot(angles, result["ntk0"][w, i], color="tab:blue", lw=0.9, alpha=0.6,
                    label="t = 0" if first else None)
            ax.plot(angles, result["ntk_t"][w, i], color="tab:orange", lw=0.9, ls="--",
                    alpha=0.8, label=f"t = {steps} (GD, lr {LEARNING_RATE:g})" if first else None)
        ax.plot(angles, result["limit"], color="k", lw=1.8, label="infinite width (analytic)")
        for xt in result["x_train"]:
            ax.axvline(np.arctan2(xt[1], xt[0]), color="0.6", lw=0.6, ls=":")
        dev0, dev_t = result["deviation"][w]
        ax.set_title(f"width n = {width}\n‖Θ−Θ∞‖/‖Θ∞‖: {dev0:.3f} (t=0), {dev_t:.3f} (t={steps});"
                     f" moved {result['movement'][w]:.3f}", fontsize="small")
        angle_axis(ax)
        ax.set_xlabel("angle γ")
    axes[0, 0].set_ylabel("NTK Θ(x0, x(γ))")
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=3)
    fig.suptitle(f"NTK of a depth-4 ReLU network (β = {B_STD}), "
                 f"{result['ntk0'].shape[1]} initialisations per width, vs the limit "
                 "(Jacot et al. 2018, Fig. 1); dotted: training inputs", fontsize="medium")
    return [save_figure(fig, out, "ntk_convergence.png")]
