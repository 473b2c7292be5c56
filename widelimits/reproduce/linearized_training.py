"""Wide networks train like their linearisation (Lee et al. 2019, Figs. 1-2 style).

Lee et al. 2019 ("Wide neural networks of any depth evolve as linear models under gradient
descent") show that a wide network trained by gradient descent stays close to its first-order
Taylor model around the initial parameters, ``f_lin(θ) = f(θ0) + J(θ0)(θ − θ0)``, which in turn
follows the closed-form kernel dynamics. Here: an erf MLP (two hidden layers, NTK
parameterization, σ_w = 1.5, σ_b = 0.1) on a synthetic regression set (16 inputs on the unit
sphere of R^3, target ``y = sin(2 x1) + x2 x3``, 8 test inputs), trained by full-batch gradient
descent on ``½ Σ (f − y)² / y.size``, each initialisation three ways:

* the network itself (``dynamics.train``),
* its linearisation at the same initialisation (``dynamics.linearize`` + ``dynamics.train``),
* the infinite-width limit from the same initial outputs: the closed form
  ``dynamics.gradient_descent_mse`` with the analytic NTK (``compare.trajectories``).

Panels: training loss vs step, the output at one test input vs step, and at the end of training
the relative gaps ``‖f_net − f_lin‖ / ‖f_lin‖`` and ``‖f_net − f_∞‖ / ‖f_∞‖`` (train and test
inputs together) vs width with fitted exponents. Theory: Lee et al. bound the first gap by
O(N^{-1/2}); for a smooth activation at a fixed training time it is O(N^{-1}) (the kernel moves
by O(N^{-1}); Dyer & Gur-Ari 2020), while the gap to the limit is dominated by the O(N^{-1/2})
fluctuation of the initial NTK.

``run(size)`` computes the numbers (smoke: seconds; quick: under a minute on two CPU cores),
resuming finished widths from ``out/linearized_training_<size>_*.npz``; ``plot(result, out)``
draws ``linearized_training.png``.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import compare, dynamics, nets
from ._common import check_size, checkpoint, new_figure, rerun_saved, resume, save_figure

__all__ = ["CONFIGS", "DEPTH", "W_STD", "B_STD", "LEARNING_RATE", "make_net", "dataset", "run",
           "plot", "load"]

DEPTH = 2
W_STD = 1.5
B_STD = 0.1
LEARNING_RATE = 0.5  # max_learning_rate of the analytic NTK on the data: 1.13
N_TRAIN, N_TEST, DIM = 16, 8, 3

CONFIGS = {
    "smoke": dict(widths=(32, 128), n_seeds=2, steps=40, record_every=10),
    "quick": dict(widths=(64, 128, 256, 512), n_seeds=4, steps=200, record_every=10),
    "full": dict(widths=(64, 128, 256, 512, 1024, 2048), n_seeds=8, steps=1000,
                 record_every=20),
}


def make_net(width: int):
    """``nets.mlp(width, 2, Erf, w_std=1.5, b_std=0.1)`` (NTK parameterization, scalar output)."""
    return nets.mlp(width, DEPTH, nets.Erf(), w_std=W_STD, b_std=B_STD)


def dataset(seed: int = 0):
    """(x_train (16, 3), y_train (16, 1), x_test (8, 3), y_test (8, 1)): inputs uniform on the
    unit sphere, targets y = sin(2 x1) + x2 x3 (float32 numpy arrays)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N_TRAIN + N_TEST, DIM))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = (np.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2])[:, None]
    x, y = x.astype(np.float32), y.astype(np.float32)
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


def _linearized(width, cfg, key, x, y, xt):
    """Train the linearisations of the members ``compare.trajectories`` initialises."""
    net = make_net(width)
    params0 = jax.vmap(net.init, (0, None))(
        jax.random.split(jax.random.fold_in(key, width), cfg["n_seeds"]), x.shape)
    res = dynamics.train(dynamics.linearize(net, params0), params0, x, y,
                         optax.sgd(LEARNING_RATE), cfg["steps"], x_test=xt,
                         record_every=cfg["record_every"], ensemble=True, progress=False)
    return {"lin_train": np.asarray(res.pred_train, np.float64),
            "lin_test": np.asarray(res.pred_test, np.float64)}


def _relative(a, b):
    """‖a − b‖ / ‖b‖ over the trailing (points, outputs) axes."""
    flat = lambda v: v.reshape(v.shape[:-2] + (-1,))  # noqa: E731
    return np.linalg.norm(flat(a - b), axis=-1) / np.linalg.norm(flat(b), axis=-1)


def run(size: str = "full", out: str | os.PathLike = "figures", *, seed: int = 0) -> dict:
    """Compute the figure at ``size``. The networks and the limit come from
    ``compare.trajectories`` (checkpoint ``out/linearized_training_<size>_net.npz``), the
    linearised models from ``dynamics.train`` (``out/linearized_training_<size>_lin.npz``);
    finished widths are resumed from both.

    Returns a dict: ``size``, ``config``, ``widths`` (W,), ``steps`` (R,), ``traj`` (the
    ``compare.Trajectories``), ``lin_train`` (W, S, R, n, 1) and ``lin_test`` (W, S, R, m, 1)
    the linearised models' outputs, ``gap_lin`` and ``gap_limit`` (W, S): the relative gaps
    ``‖f_net − f_lin‖ / ‖f_lin‖`` and ``‖f_net − f_∞‖ / ‖f_∞‖`` at the last step over the train
    and test inputs together, their ``PowerLaw`` fits ``fit_lin`` and ``fit_limit``, the
    losses ``loss_net``, ``loss_lin``, ``loss_limit`` (W, S, R), and ``data`` (the two files).
    """
    cfg = CONFIGS[check_size(size)]
    x, y, xt, _ = dataset(seed)
    os.makedirs(out, exist_ok=True)
    base = os.path.join(os.fspath(out), f"linearized_training_{size}")
    key = jax.random.key(seed)
    traj = compare.trajectories(make_net, cfg["widths"], x, y, key, x_test=xt,
                                steps=cfg["steps"], learning_rate=LEARNING_RATE,
                                n_seeds=cfg["n_seeds"], record_every=cfg["record_every"],
                                checkpoint=base + "_net.npz")
    lin_path = base + "_lin.npz"
    dtype = str(np.dtype(jnp.result_type(float)))  # of the parameters net.init draws
    stamp = dict(seed=seed, steps=cfg["steps"], dtype=dtype)
    done = resume(lin_path, **stamp)
    from tqdm.auto import tqdm

    for width in tqdm(cfg["widths"], desc="linearized_training: widths", leave=False):
        if f"lin_train_{width}" not in done:
            piece = _linearized(width, cfg, key, jnp.asarray(x), jnp.asarray(y), jnp.asarray(xt))
            done.update({f"{k}_{width}": v for k, v in piece.items()})
            checkpoint(lin_path, done, **stamp)
    widths = list(cfg["widths"])
    lin_train = np.stack([done[f"lin_train_{w}"] for w in widths])
    lin_test = np.stack([done[f"lin_test_{w}"] for w in widths])
    both = lambda a, b: np.concatenate([a[:, :, -1], b[:, :, -1]], axis=-2)  # noqa: E731
    net_end = both(traj.pred_train, traj.pred_test)
    gap_lin = _relative(net_end, both(lin_train, lin_test))
    gap_limit = _relative(net_end, both(traj.limit_train, traj.limit_test))
    yv = np.asarray(y, np.float64)
    return {
        "size": size, "config": dict(cfg), "widths": widths, "steps": traj.steps, "traj": traj,
        "lin_train": lin_train, "lin_test": lin_test, "gap_lin": gap_lin,
        "gap_limit": gap_limit, "fit_lin": compare.fit_power_law(widths, gap_lin),
        "fit_limit": compare.fit_power_law(widths, gap_limit), "loss_net": traj.loss,
        "loss_lin": 0.5 * np.mean((lin_train - yv) ** 2, axis=(-2, -1)),
        "loss_limit": traj.loss_limit, "data": (base + "_net.npz", lin_path),
    }


def load(path: str | os.PathLike, size: str) -> dict:
    """Rebuild ``run``'s result from the folder of its saved files (``path``: either file)
    without training anything new."""
    folder = os.path.dirname(os.fspath(path)) or "."
    lin = os.path.join(folder, f"linearized_training_{check_size(size)}_lin.npz")
    return rerun_saved(lin, run, size, {f"width {w}": f"lin_train_{w}"
                                        for w in CONFIGS[size]["widths"]},
                       "linearized_training.load")


def plot(result: dict, out: str | os.PathLike = "figures") -> list[str]:
    """Draw ``linearized_training.png``: loss vs step and a test output vs step for the
    narrowest and the widest width (network solid, linearisation dashed, limit dotted), and
    the gaps at the end of training vs width with their fits."""
    fig, axes = new_figure(1, 3, panel=(4.4, 3.5))
    widths, t, traj = result["widths"], result["steps"], result["traj"]
    picks = ((0, "tab:red"), (len(widths) - 1, "tab:blue"))
    ax = axes[0, 0]
    for w, color in picks:
        for s in range(result["loss_net"].shape[1]):
            first = s == 0
            ax.plot(t, result["loss_net"][w, s], color=color, lw=1.2,
                    label=f"N = {widths[w]}: network" if first else None)
            ax.plot(t, result["loss_lin"][w, s], color=color, lw=1.2, ls="--",
                    label="linearised" if first else None)
            ax.plot(t, result["loss_limit"][w, s], color="k", lw=0.9, ls=":",
                    label="limit (same f_0)" if first and w == 0 else None)
    ax.set_yscale("log")
    ax.set_xlabel("gradient-descent step t")
    ax.set_ylabel("training loss")
    ax.legend(fontsize="x-small")
    ax.grid(alpha=0.3)
    ax = axes[0, 1]
    for w, color in picks:
        for s in range(traj.pred_test.shape[1]):
            first = s == 0
            ax.plot(t, traj.pred_test[w, s, :, 0, 0], color=color, lw=1.2,
                    label=f"N = {widths[w]}: network" if first else None)
            ax.plot(t, result["lin_test"][w, s, :, 0, 0], color=color, lw=1.2, ls="--",
                    label="linearised" if first else None)
            ax.plot(t, traj.limit_test[w, s, :, 0, 0], color="k", lw=0.9, ls=":",
                    label="limit (same f_0)" if first and w == 0 else None)
    ax.set_xlabel("gradient-descent step t")
    ax.set_ylabel("f(x_test,1)")
    ax.legend(fontsize="x-small")
    ax.grid(alpha=0.3)
    ax = axes[0, 2]
    wf = np.asarray(widths, float)
    for j, (name, gap, fit) in enumerate((
            ("‖f_net − f_lin‖ / ‖f_lin‖", result["gap_lin"], result["fit_lin"]),
            ("‖f_net − f_∞‖ / ‖f_∞‖", result["gap_limit"], result["fit_limit"]))):
        m = gap.mean(1)
        se = gap.std(1, ddof=1) / np.sqrt(gap.shape[1]) if gap.shape[1] > 1 else 0 * m
        ax.errorbar(wf, m, yerr=se, fmt="os"[j], color=f"C{j + 2}", capsize=2, label=name)
        ax.plot(wf, fit.prefactor * wf ** fit.exponent, color=f"C{j + 2}", lw=1.1,
                label=f"fit: N^({fit.exponent:.2f} ± {fit.stderr:.2f})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(wf, [str(v) for v in widths], minor=False)
    ax.set_xticks([], minor=True)
    ax.set_xlabel("width N")
    ax.set_ylabel(f"relative gap at t = {int(t[-1])}")
    ax.legend(fontsize="x-small")
    ax.grid(alpha=0.3, which="both")
    fig.suptitle("Erf MLP (2 hidden layers) vs its linearisation vs the infinite-width limit "
                 "(Lee et al. 2019)", fontsize="medium")
    return [save_figure(fig, out, "linearized_training.png")]
