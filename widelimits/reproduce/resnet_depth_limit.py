"""ResNet depth limits: width and depth limits commute (Hayou & Yang 2023); at fixed width the
depth limit is an SDE with a log-normal norm (Hayou 2022).

ReLU ResNets ``x_{l+1} = x_l + L^{-1/2} relu(x_l) W_l / sqrt(n)`` (W iid N(0, 1), Gaussian
embedding of three inputs on the unit circle at angles 0, π/3, 2π/3). ``depth`` functions give
the infinite-width, infinite-depth covariance q_t (ODE dq/dt = V_relu(q), diffrax) and the
infinite-width depth-L recursion; ``depth.sample_covariance`` draws finite networks.

Panels: (a) the correlation of each pair along the depth, t = l/L, of finite networks (width
n_max, depth L_max) against the ODE; (b) depth sweep at the largest width: deviation of the mean
covariance from q_1 vs L, with the n = ∞ recursion (rate 1/L, fitted); (c) width sweep at the
largest depth: per-network deviation vs n (fluctuations n^{-1/2}, fitted) and deviation of the
mean; both sweeps end at the same (n_max, L_max) network, so the limit is reached whichever of
n, L grows first; (d) fixed width, depth L: histograms of log(||x_L||²/||x_0||²) for linear
ResNets of two widths against the log-normal SDE law N(1 - 2/n, 4/n) (depth → ∞) and the
exact finite-depth moments (``depth.linear_resnet_log_norm``).

``run(size)`` computes the numbers (smoke: seconds; quick: under a minute on two CPU cores),
resuming finished pieces from ``out/resnet_depth_limit_<size>.npz``; ``plot(result, out)``
draws ``resnet_depth_limit.png``.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from matplotlib.ticker import NullFormatter
from tqdm import tqdm

from .. import compare, depth, nets
from ._common import check_size, checkpoint, circle, new_figure, resume, save_figure

__all__ = ["CONFIGS", "ANGLES", "inputs", "run", "plot"]

ANGLES = (0.0, np.pi / 3, 2 * np.pi / 3)

CONFIGS = {
    "smoke": dict(widths=(16, 64, 256), depths=(2, 8, 32), n_samples=32,
                  recursion_depths=(8, 16, 32), sde_widths=(8,), sde_depth=32,
                  sde_samples=1000),
    "quick": dict(widths=(16, 64, 256, 1024), depths=(2, 8, 32, 128), n_samples=64,
                  recursion_depths=(2, 4, 8, 16, 32, 64, 128, 256, 512), sde_widths=(4, 16),
                  sde_depth=128, sde_samples=8000),
    "full": dict(widths=(16, 64, 256, 1024, 4096), depths=(2, 8, 32, 128, 512), n_samples=256,
                 recursion_depths=(2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048),
                 sde_widths=(4, 16), sde_depth=512, sde_samples=40000),
}


def inputs():
    """The three inputs on the unit circle (3, 2) and their embedded covariance q0 = x x^T / 2."""
    x = circle(ANGLES).astype(np.float64)
    return x, x @ x.T / 2


def _rel(k, q):
    return np.linalg.norm(k - q, axis=(-2, -1)) / np.linalg.norm(q)


def run(size: str = "full", out: str | os.PathLike = "figures", *, seed: int = 0) -> dict:
    """Compute every panel's numbers at ``size``; finished pieces are saved to and resumed from
    ``out/resnet_depth_limit_<size>.npz``.

    Returns a dict: ``size``, ``config``, ``ts`` (T,), ``ode`` (T, 3, 3) q_t,
    ``recursion_depths``, ``recursion_error`` (R,) max-abs error of the n = ∞ recursion vs q_1
    and its ``recursion_fit``; ``trajectory`` (S, L_max + 1, 3, 3) per-network covariances of
    the (n_max, L_max) networks; ``depth_sweep`` (D, S, 3, 3) at n_max and ``width_sweep``
    (W, S, 3, 3) at L_max; ``mean_dev_depth``, ``mean_dev_width`` (relative Frobenius
    deviation of the mean covariance from q_1), ``net_dev_width`` (W, S) per network and its
    ``width_fit``; ``sde`` {n: log(||x_L||²/||x_0||²) of linear networks of width n} and
    ``sde_exact`` {n: exact finite-depth (mean, variance)}; ``data``.
    """
    cfg = CONFIGS[check_size(size)]
    x, q0 = inputs()
    x = x.astype(np.float32) if not jax.config.jax_enable_x64 else x
    relu, ident = nets.Relu(), nets.Identity()
    ts = np.linspace(0, 1, 41)
    ode = np.asarray(depth.resnet_covariance(relu, q0.astype(x.dtype), ts), np.float64)
    q1 = ode[-1]
    rec = [np.abs(np.asarray(depth.resnet_covariance_recursion(relu, q0.astype(x.dtype), int(L)))
                  - q1).max() for L in cfg["recursion_depths"]]
    os.makedirs(out, exist_ok=True)
    data = os.path.join(os.fspath(out), f"resnet_depth_limit_{size}.npz")
    done = resume(data, seed=seed)
    key = jax.random.key(seed)
    save = lambda: checkpoint(data, done, seed=seed)  # noqa: E731
    n_max, l_max, s = cfg["widths"][-1], cfg["depths"][-1], cfg["n_samples"]
    if "trajectory" not in done:
        done["trajectory"] = np.asarray(depth.sample_covariance(
            jax.random.fold_in(key, 0), x, n_max, l_max, relu, n_samples=s, all_layers=True,
            batch_size=s))
        save()
    points = [(n_max, L) for L in cfg["depths"][:-1]] + [(n, l_max) for n in cfg["widths"][:-1]]
    for n, L in tqdm(points, desc="(width, depth) sweeps", leave=False):
        name = f"cov_{n}_{L}"
        if name not in done:
            done[name] = np.asarray(depth.sample_covariance(
                jax.random.fold_in(jax.random.fold_in(key, n), L), x, n, L, relu, n_samples=s,
                batch_size=s))
            save()
    done[f"cov_{n_max}_{l_max}"] = done["trajectory"][:, -1]
    for i, n in enumerate(cfg["sde_widths"]):
        name = f"sde_{n}"
        if name not in done:
            c = depth.sample_covariance(jax.random.fold_in(key, 1000 + i), np.ones((1, n), x.dtype),
                                        n, cfg["sde_depth"], ident, n_samples=cfg["sde_samples"],
                                        all_layers=True, batch_size=1000)
            c = np.asarray(c, np.float64)
            done[name] = np.log(c[:, -1, 0, 0] / c[:, 0, 0, 0])
            save()
    depth_sweep = np.stack([done[f"cov_{n_max}_{L}"] for L in cfg["depths"]]).astype(np.float64)
    width_sweep = np.stack([done[f"cov_{n}_{l_max}"] for n in cfg["widths"]]).astype(np.float64)
    net_dev_width = _rel(width_sweep, q1)
    return {
        "size": size, "config": dict(cfg), "ts": ts, "ode": ode, "q0": q0,
        "recursion_depths": np.asarray(cfg["recursion_depths"]),
        "recursion_error": np.asarray(rec),
        "recursion_fit": compare.fit_power_law(cfg["recursion_depths"], np.asarray(rec)),
        "trajectory": done["trajectory"].astype(np.float64),
        "depth_sweep": depth_sweep, "width_sweep": width_sweep,
        "mean_dev_depth": _rel(depth_sweep.mean(1), q1),
        "mean_dev_width": _rel(width_sweep.mean(1), q1),
        "net_dev_width": net_dev_width,
        "width_fit": compare.fit_power_law(cfg["widths"], net_dev_width),
        "sde": {n: done[f"sde_{n}"] for n in cfg["sde_widths"]},
        "sde_exact": {n: depth.linear_resnet_log_norm(n, cfg["sde_depth"])
                      for n in cfg["sde_widths"]},
        "data": data,
    }


def _corr(q):
    d = np.sqrt(np.diagonal(q, axis1=-2, axis2=-1))
    return q / (d[..., :, None] * d[..., None, :])


def plot(result: dict, out: str | os.PathLike = "figures") -> list[str]:
    """Draw ``resnet_depth_limit.png`` (panels described in the module docstring)."""
    cfg = result["config"]
    fig, axes = new_figure(1, 4, panel=(3.9, 3.4))
    # (a) trajectories: diagonal (normalised by q0) and correlations along depth
    ax = axes[0, 0]
    traj = result["trajectory"]
    tl = np.arange(traj.shape[1]) / (traj.shape[1] - 1)
    ode, ts = result["ode"], result["ts"]
    rho_net, rho_ode = _corr(traj), _corr(ode)
    for c, (a, b) in enumerate([(0, 1), (0, 2)]):
        m = rho_net[:, :, a, b]
        ax.fill_between(tl, np.percentile(m, 10, 0), np.percentile(m, 90, 0), color=f"C{c}",
                        alpha=0.25, lw=0)
        ax.plot(ts, rho_ode[:, a, b], color=f"C{c}", lw=1.5,
                label=f"ρ(x{a}, x{b}), angle {np.degrees(ANGLES[b] - ANGLES[a]):.0f}°")
    d = traj[:, :, 0, 0] / result["q0"][0, 0]
    ax.fill_between(tl, np.percentile(d, 10, 0), np.percentile(d, 90, 0), color="C2", alpha=0.25,
                    lw=0)
    ax.plot(ts, np.exp(ts / 2), color="C2", lw=1.5, label="q_t(x,x)/q_0 = e^{t/2}")
    ax.set_xlabel("t = l / L")
    ax.set_title(f"n = {cfg['widths'][-1]}, L = {cfg['depths'][-1]}: 10–90% of "
                 f"{traj.shape[0]} nets vs ODE", fontsize="small")
    ax.legend(fontsize="x-small")
    ax.grid(alpha=0.3)
    # (b) depth sweep
    ax = axes[0, 1]
    depths = np.asarray(cfg["depths"])
    ax.plot(depths, result["mean_dev_depth"], "o-", color="C0",
            label=f"mean of {cfg['n_samples']} nets, n = {cfg['widths'][-1]}")
    rd, re, fit = result["recursion_depths"], result["recursion_error"], result["recursion_fit"]
    q1 = np.linalg.norm(result["ode"][-1])
    ax.plot(rd, re * np.sqrt(9) / q1, "k.--", lw=1,
            label=f"n = ∞ recursion: L^({fit.exponent:.3f} ± {fit.stderr:.3f})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("depth L")
    ax.set_ylabel("‖K_{n,L} − q_1‖_F / ‖q_1‖_F")
    ax.set_title("depth sweep at the largest width\n(finite nets floor: fluctuations / √samples)",
                 fontsize="small")
    ax.legend(fontsize="x-small")
    ax.grid(alpha=0.3, which="both")
    # (c) width sweep
    ax = axes[0, 2]
    widths = np.asarray(cfg["widths"])
    wf = result["width_fit"]
    ax.plot(widths, result["net_dev_width"].mean(1), "o", color="C1",
            label=f"one net: n^({wf.exponent:.2f} ± {wf.stderr:.2f})")
    ax.plot(widths, wf.prefactor * widths.astype(float) ** wf.exponent, color="C1", lw=1)
    ax.plot(widths, result["mean_dev_width"], "s-", mfc="none", color="C0",
            label=f"mean of {cfg['n_samples']} nets")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("width n")
    ax.set_title(f"width sweep at the largest depth L = {cfg['depths'][-1]}", fontsize="small")
    ax.legend(fontsize="x-small")
    ax.grid(alpha=0.3, which="both")
    # (d) fixed width: log-normal norms
    ax = axes[0, 3]
    grid = np.linspace(-2.5, 3.0, 400)
    for c, n in enumerate(cfg["sde_widths"]):
        mean, var = depth.linear_sde_log_norm(n, 1.0)
        sample = result["sde"][n]
        ax.hist(sample, bins=60, density=True, histtype="stepfilled", alpha=0.35, color=f"C{c}",
                label=f"n = {n}: nets {sample.mean():.3f}, {sample.var():.3f}")
        ax.plot(grid, np.exp(-(grid - mean) ** 2 / (2 * var)) / np.sqrt(2 * np.pi * var),
                color=f"C{c}", lw=1.4, label=f"  SDE N({mean:.3f}, {var:.3f})")
    ax.set_xlabel("log(‖x_L‖² / ‖x_0‖²)")
    ax.set_title(f"fixed width, linear φ, L = {cfg['sde_depth']}: log-normal norm",
                 fontsize="small")
    ax.legend(fontsize="x-small", title="mean, variance", title_fontsize="x-small")
    ax.grid(alpha=0.3)
    for ax in axes[0, 1:3]:
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
    fig.suptitle("ResNet depth limits: finite nets → covariance ODE in either order (Hayou & "
                 "Yang 2023); fixed width → SDE (Hayou 2022)", fontsize="medium")
    return [save_figure(fig, out, "resnet_depth_limit.png")]
