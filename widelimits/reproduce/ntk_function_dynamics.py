"""Trained network functions against the infinite-width Gaussian limit (Jacot et al. 2018, Fig. 2).

The network of ``ntk_convergence`` (depth L = 4 ReLU: three hidden layers of width n, scalar
readout, NTK parameterization, bias scale β = 0.1) and its four training points on the unit
circle with targets f*(x) = x1 x2. For widths n = 50 and 1000 (full size) and 10
initialisations each we run 1000 steps of full-batch gradient descent (learning rate 1.0) on
the least-squares cost (1/2N) Σ (f(x_i) − f*(x_i))² and plot the trained functions f(x(γ)),
x(γ) = (cos γ, sin γ), against the limit: at infinite width the trained function is a Gaussian
process whose mean and covariance follow in closed form from the analytic NNGP and NTK
(``dynamics.gradient_descent_mse_ensemble``; Lee et al. 2019, eqs. 15-16), drawn as its 10 %,
50 % and 90 % quantiles (mean ± 1.2816 σ). Wide networks spread like the limit's band; narrow
ones scatter more and can leave it.

``run(size)`` computes the numbers (smoke: seconds; quick: under a minute on two CPU cores;
full: the paper's sizes), resuming finished widths from ``out/ntk_function_dynamics_<size>.npz``;
``plot(result, out)`` draws ``ntk_function_dynamics.png``.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import dynamics, kernels
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
from .ntk_convergence import B_STD, LEARNING_RATE, make_net, training_set

__all__ = ["CONFIGS", "Z90", "limit_band", "run", "plot", "load"]

Z90 = 1.2815515655446004  # standard normal 90 % quantile: mean ± Z90 σ are the 10 / 90 % quantiles

CONFIGS = {
    "smoke": dict(widths=(16, 128), n_inits=3, n_angles=25, steps=60, record_every=20),
    "quick": dict(widths=(50, 400), n_inits=6, n_angles=61, steps=500, record_every=50),
    "full": dict(widths=(50, 1000), n_inits=10, n_angles=201, steps=1000, record_every=50),
}


def limit_band(x_train, y_train, x_test, steps: int, lr: float = LEARNING_RATE):
    """The infinite ensemble of the figure's network after ``steps`` steps of gradient descent:
    mean (m,), standard deviation (m,) at ``x_test`` (m, 2), and the mean (steps + 1,) of the
    training loss over the ensemble at every step (E‖f_t − y‖²/(2N) = ‖μ_t − y‖²/(2N) +
    tr Σ_t / (2N) on the train points)."""
    net = make_net(1)
    pred = dynamics.gradient_descent_mse_ensemble(kernels.analytic(net, x_train), y_train, lr)
    k_tx, k_tt = kernels.analytic(net, x_test, x_train), kernels.analytic(net, x_test)
    test = pred(steps=steps, k_test_train=k_tx, k_test_test=k_tt)
    train = pred(steps=np.arange(steps + 1))
    y = np.asarray(y_train, np.float64)
    n = y.size
    loss = (np.sum((np.asarray(train.mean, np.float64) - y) ** 2, axis=(-2, -1))
            + np.trace(np.asarray(train.covariance, np.float64), axis1=-2, axis2=-1)) / (2 * n)
    var = np.clip(np.diagonal(np.asarray(test.covariance, np.float64)), 0.0, None)
    return np.asarray(test.mean, np.float64)[:, 0], np.sqrt(var), loss


def _one_width(width, cfg, key, x_train, y_train, xs):
    net = make_net(width)
    params = jax.vmap(net.init, (0, None))(jax.random.split(key, cfg["n_inits"]), x_train.shape)
    res = dynamics.train(net, params, x_train, y_train, optax.sgd(LEARNING_RATE), cfg["steps"],
                         x_test=xs, record_every=cfg["record_every"], ensemble=True,
                         progress=False)
    return {"f0": np.asarray(res.pred_test[:, 0, :, 0]), "f_t": np.asarray(res.pred_test[:, -1, :, 0]),
            "loss": np.asarray(res.loss), "loss_steps": np.asarray(res.steps)}


def run(size: str = "full", out: str | os.PathLike = "figures", *, seed: int = 0) -> dict:
    """Compute the figure at ``size``; finished widths are saved to and resumed from
    ``out/ntk_function_dynamics_<size>.npz``.

    Returns a dict: ``size``, ``config``, ``angles`` (A,), ``widths`` (W,), ``f0`` and ``f_t``
    (W, I, A) the I networks' functions on the circle at initialisation and after training,
    ``loss`` (W, I, R) their training loss at ``loss_steps`` (R,), the limit's ``mean``, ``std``
    (A,) after training and ``limit_loss`` (steps + 1,) (the ensemble's mean loss), the summary
    ``inside`` (W,) = fraction of (network, angle) pairs inside the limit's 10-90 % band (0.8
    for the limit itself), ``x_train``, ``y_train`` and ``data``.
    """
    cfg = CONFIGS[check_size(size)]
    angles = np.linspace(-np.pi, np.pi, cfg["n_angles"])
    xs = circle(angles)
    x_train, y_train = training_set(seed)
    mean, std, limit_loss = limit_band(x_train, y_train, xs, cfg["steps"])

    os.makedirs(out, exist_ok=True)
    data = os.path.join(os.fspath(out), f"ntk_function_dynamics_{size}.npz")
    names = ("f0", "f_t", "loss", "loss_steps")
    dtype = str(np.dtype(jnp.result_type(float)))  # of the parameters net.init draws
    done = resume(data, angles=angles, seed=seed, dtype=dtype)
    key = jax.random.key(seed)
    from tqdm.auto import tqdm

    for width in tqdm(cfg["widths"], desc="ntk_function_dynamics: widths", leave=False):
        if f"loss_{width}" not in done:
            piece = _one_width(width, cfg, jax.random.fold_in(key, width), x_train, y_train, xs)
            done.update({f"{k}_{width}": v for k, v in piece.items()})
            checkpoint(data, done, angles=angles, seed=seed, dtype=dtype)
    widths = list(cfg["widths"])
    res = {k: np.stack([done[f"{k}_{w}"] for w in widths]) for k in names[:3]}
    lo, hi = mean - Z90 * std, mean + Z90 * std
    inside = ((res["f_t"] >= lo) & (res["f_t"] <= hi)).mean(axis=(1, 2))
    return {"size": size, "config": dict(cfg), "angles": angles, "widths": widths, **res,
            "loss_steps": done[f"loss_steps_{widths[0]}"], "mean": mean, "std": std,
            "limit_loss": limit_loss, "inside": inside, "x_train": np.asarray(x_train),
            "y_train": np.asarray(y_train), "data": data}


def load(path: str | os.PathLike, size: str) -> dict:
    """Rebuild ``run``'s result from its saved file without training anything new (every width
    of ``CONFIGS[size]`` must be in the file)."""
    widths = CONFIGS[check_size(size)]["widths"]
    return rerun_saved(path, run, size, {f"width {w}": f"loss_{w}" for w in widths},
                       "ntk_function_dynamics.load")


def plot(result: dict, out: str | os.PathLike = "figures") -> list[str]:
    """Draw ``ntk_function_dynamics.png``: one panel per width with the trained functions and
    the limit's 10/50/90 % quantiles, and a panel of the training losses."""
    widths, angles = result["widths"], result["angles"]
    steps = result["config"]["steps"]
    fig, axes = new_figure(1, len(widths) + 1, panel=(4.4, 3.4))
    mean, std = result["mean"], result["std"]
    for w, width in enumerate(widths):
        ax = axes[0, w]
        ax.fill_between(angles, mean - Z90 * std, mean + Z90 * std, color="0.85", lw=0,
                        label="limit: 10-90 % band")
        for q, ls in ((-Z90, "--"), (0.0, "-"), (Z90, "--")):
            ax.plot(angles, mean + q * std, color="k", lw=1.3 if q == 0 else 0.9, ls=ls,
                    label="limit: 10 / 50 / 90 %" if q == -Z90 else None)
        for i in range(result["f_t"].shape[1]):
            ax.plot(angles, result["f_t"][w, i], color="tab:red" if w == 0 else "tab:blue",
                    lw=0.9, alpha=0.75, label=f"n = {width}, t = {steps}" if i == 0 else None)
        ax.plot(np.arctan2(result["x_train"][:, 1], result["x_train"][:, 0]),
                result["y_train"][:, 0], "o", color="k", mfc="w", ms=5, zorder=5,
                label="training points")
        ax.set_title(f"width n = {width}: {100 * result['inside'][w]:.0f} % of the curve points "
                     "in the band", fontsize="small")
        angle_axis(ax)
        ax.set_xlabel("angle γ")
        ax.set_ylabel("f(x(γ))")
        ax.legend(fontsize="x-small", loc="lower left")
    ax = axes[0, -1]
    for w, width in enumerate(widths):
        loss = result["loss"][w]
        for i in range(loss.shape[0]):
            ax.plot(result["loss_steps"], loss[i], color="tab:red" if w == 0 else "tab:blue",
                    lw=0.8, alpha=0.6, label=f"n = {width}" if i == 0 else None)
    ax.plot(np.arange(steps + 1), result["limit_loss"], color="k", lw=1.5,
            label="limit (ensemble mean)")
    ax.set_yscale("log")
    ax.set_xlabel("gradient-descent step t")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small")
    fig.suptitle(f"Depth-4 ReLU networks (β = {B_STD}) after {steps} steps of gradient descent "
                 "vs the infinite-width Gaussian limit (Jacot et al. 2018, Fig. 2)",
                 fontsize="medium")
    return [save_figure(fig, out, "ntk_function_dynamics.png")]
