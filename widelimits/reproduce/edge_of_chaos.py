"""Edge of chaos: phase diagram and trainable depth of deep tanh networks (Schoenholz et al. 2017,
"Deep information propagation", Figs. 1 and 5; Hayou, Doucet & Rousseau 2019).

Mean field (``widelimits.signal``): on a (sb2, sw2) grid (variances) we compute chi_1 (ordered
< 1 < chaotic) and the correlation depth scale xi_c, which diverges on the edge-of-chaos curve
sw2(sb2) (overlaid, from ``signal.edge_of_chaos``). Trainability: tanh MLPs of width N in the
standard parameterization (W ~ N(0, sw2/N), b ~ N(0, sb2), sb2 = 0.05) at several sw2 and depths
L are trained by full-batch SGD with momentum (``dynamics.train``, all sw2 and seeds of one
depth in one vmapped program) on a synthetic binary task (inputs on the sphere of radius sqrt(d),
labels sign(u.x) of a random unit vector u; more points than the readout can memorise, so deep
untrainable networks stay near chance). The trainable depth tracks ~6 xi_c(sw2), as in the
paper (their MNIST/CIFAR runs are replaced by this synthetic task: no downloads).

``run(size)`` (smoke: seconds; quick: < 1 min on two CPU cores; full: minutes) saves finished
depths to ``out/edge_of_chaos_<size>.npz`` and resumes; ``plot`` draws ``edge_of_chaos.png``.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from .. import dynamics, nets, signal
from ._common import check_size, checkpoint, new_figure, resume, save_figure

__all__ = ["CONFIGS", "SB2_TRAIN", "make_net", "dataset", "init_params", "phase_diagram",
           "train_depth", "run", "plot"]

SB2_TRAIN = 0.05
INPUT_DIM = 16

CONFIGS = {
    "smoke": dict(grid=(10, 10), sw2=(0.5, 1.75, 3.0), depths=(16,), width=16,
                  n_train=64, steps=60, seeds=1, lr=0.02),
    "quick": dict(grid=(48, 48), sw2=(0.5, 1.0, 1.5, 2.0, 3.0, 4.0), depths=(4, 8, 16, 32, 64),
                  width=32, n_train=128, steps=200, seeds=1, lr=0.02),
    "full": dict(grid=(121, 121), sw2=tuple(np.round(np.linspace(0.5, 4.0, 15), 3)),
                 depths=(4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192), width=128, n_train=1024,
                 steps=2000, seeds=2, lr=0.02),
}


def make_net(width: int, depth: int):
    """A tanh MLP (``depth`` hidden layers of ``width``, 2 outputs) in the standard
    parameterization with w_std = b_std = 1; ``init_params`` rescales its weights to (sw2, sb2),
    so one spec (one compiled program) serves every sw2."""
    return nets.mlp(width, depth, nets.Tanh(), out_width=2, w_std=1.0, b_std=1.0,
                    parameterization="standard")


def dataset(n: int, seed: int = 0):
    """``n`` inputs uniform on the sphere of radius sqrt(d) (d = 16) and one-hot labels of
    sign(u . x) for a random unit u: ``(x (n, d), y (n, 2))`` float32."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, INPUT_DIM))
    x *= np.sqrt(INPUT_DIM) / np.linalg.norm(x, axis=1, keepdims=True)
    u = rng.standard_normal(INPUT_DIM)
    label = (x @ u > 0).astype(int)
    return x.astype(np.float32), np.eye(2, dtype=np.float32)[label]


def init_params(net, key, sw2, sb2, n_in):
    """Parameters of ``make_net``'s net with W ~ N(0, sw2/fan_in) and b ~ N(0, sb2) in every
    layer (``sw2``, ``sb2`` scalars, traceable: vmap over them)."""
    params = net.init(key, (1, n_in))
    scale = lambda p: {"W": p["W"] * jnp.sqrt(sw2), "b": p["b"] * jnp.sqrt(sb2)}
    return tuple(scale(p) if isinstance(p, dict) else p for p in params)


def phase_diagram(sb2_grid, sw2_grid, sw2_line=(), sb2_line: float = SB2_TRAIN):
    """Mean field of tanh on the grid: dict of (n_sb2, n_sw2) arrays chi_1, xi_c, q_star,
    c_star; the edge-of-chaos curve ``eoc_sb2``, ``eoc_sw2``; and ``xi_line``, xi_c at
    (``sw2_line``, ``sb2_line``) (one mean-field call for everything)."""
    sb2, sw2 = np.meshgrid(sb2_grid, sw2_grid, indexing="ij")
    line = np.asarray(sw2_line, np.float64)
    all_sw2 = np.concatenate([sw2.ravel(), line])
    all_sb2 = np.concatenate([sb2.ravel(), np.full(line.shape, sb2_line)])
    mf = signal.mean_field(nets.Tanh(), all_sw2, all_sb2)
    grid = lambda v: np.asarray(v)[:sw2.size].reshape(sw2.shape)
    eoc_sb2 = np.linspace(0, float(np.max(sb2_grid)), 60)
    eoc_sw2 = np.asarray(signal.edge_of_chaos(nets.Tanh(), eoc_sb2))
    return {"chi_1": grid(mf.chi_1), "xi_c": grid(mf.xi_c), "q_star": grid(mf.q_star),
            "c_star": grid(mf.c_star), "eoc_sb2": eoc_sb2, "eoc_sw2": eoc_sw2,
            "xi_line": np.asarray(mf.xi_c)[sw2.size:]}


def train_depth(depth: int, cfg: dict, seed: int = 0):
    """Train the width-``cfg['width']`` tanh nets of one ``depth`` at every sw2 of ``cfg`` and
    ``cfg['seeds']`` seeds (one ensemble); returns (accuracy (n_sw2, seeds), loss (n_sw2, seeds,
    2): the cross-entropy at the start and the end)."""
    x, y = dataset(cfg["n_train"], seed)
    net = make_net(cfg["width"], depth)
    sw2 = np.repeat(np.asarray(cfg["sw2"], np.float32), cfg["seeds"])
    keys = jax.random.split(jax.random.fold_in(jax.random.key(seed), depth), sw2.size)
    params = jax.vmap(lambda k, w: init_params(net, k, w, SB2_TRAIN, INPUT_DIM))(keys, sw2)
    res = dynamics.train(net, params, x, y, optax.sgd(cfg["lr"], momentum=0.9), cfg["steps"],
                         loss="cross_entropy", record_every=cfg["steps"], ensemble=True,
                         on_nonfinite="stop", progress=False)
    pred = np.asarray(res.pred_train[:, -1])
    acc = np.mean(np.argmax(pred, -1) == np.argmax(y, -1)[None], axis=-1)
    loss = np.asarray(res.loss)[:, [0, -1]]
    shape = (len(cfg["sw2"]), cfg["seeds"])
    return acc.reshape(shape), loss.reshape(shape + (2,))


def run(size: str = "full", out: str | os.PathLike = "figures", *, seed: int = 0) -> dict:
    """Compute the phase diagram and the trainability grid at ``size``; finished depths are
    saved to and resumed from ``out/edge_of_chaos_<size>.npz``.

    Returns a dict: ``sb2_grid``, ``sw2_grid`` and the ``phase_diagram`` arrays; ``sw2``
    (S,) and ``depths`` (L,) of the training runs, ``accuracy`` (L, S, seeds), ``loss``
    (L, S, seeds, 2), ``xi_c_train`` (S,) the depth scale at sb2 = 0.05, ``trainable_depth``
    (S,) the largest depth whose mean accuracy exceeds 0.75 (0 if none), ``sw2_fine`` and
    ``xi_c_fine`` (200,) for the overlay, ``data``.
    """
    cfg = CONFIGS[check_size(size)]
    sb2_grid = np.linspace(0.0, 0.25, cfg["grid"][0])
    sw2_grid = np.linspace(0.5, 4.0, cfg["grid"][1])
    os.makedirs(out, exist_ok=True)
    data = os.path.join(os.fspath(out), f"edge_of_chaos_{size}.npz")
    stamp = dict(seed=seed, sw2=np.asarray(cfg["sw2"]))
    done = resume(data, **stamp)
    for depth in tqdm(cfg["depths"], desc="edge_of_chaos depths", leave=False):
        if f"acc_{depth}" not in done:
            done[f"acc_{depth}"], done[f"loss_{depth}"] = train_depth(depth, cfg, seed)
            checkpoint(data, done, **stamp)
    depths = list(cfg["depths"])
    acc = np.stack([done[f"acc_{d}"] for d in depths])
    sw2_fine = np.linspace(cfg["sw2"][0], cfg["sw2"][-1], 200)
    pd = phase_diagram(sb2_grid, sw2_grid, np.concatenate([cfg["sw2"], sw2_fine]))
    n_sw2 = len(cfg["sw2"])
    ok = acc.mean(-1) > 0.75
    trainable = np.array([max([d for d, o in zip(depths, ok[:, s], strict=True) if o], default=0)
                          for s in range(len(cfg["sw2"]))])
    return {"size": size, "config": dict(cfg), "sb2_grid": sb2_grid, "sw2_grid": sw2_grid,
            **{k: v for k, v in pd.items() if k != "xi_line"}, "sw2": np.asarray(cfg["sw2"]),
            "depths": depths, "accuracy": acc,
            "loss": np.stack([done[f"loss_{d}"] for d in depths]),
            "xi_c_train": pd["xi_line"][:n_sw2], "sw2_fine": sw2_fine,
            "xi_c_fine": pd["xi_line"][n_sw2:], "trainable_depth": trainable, "data": data}


def plot(result: dict, out: str | os.PathLike = "figures") -> list[str]:
    """Draw ``edge_of_chaos.png``: chi_1 and xi_c over (sw2, sb2) with the edge-of-chaos curve,
    and the training accuracy over (sw2, depth) with 6 xi_c overlaid."""
    from matplotlib.colors import LogNorm, TwoSlopeNorm

    fig, axes = new_figure(1, 3, panel=(4.2, 3.6))
    sw2g, sb2g = result["sw2_grid"], result["sb2_grid"]
    ax = axes[0, 0]
    m = ax.pcolormesh(sw2g, sb2g, result["chi_1"], cmap="RdBu_r", shading="auto",
                      norm=TwoSlopeNorm(1.0, vmin=float(result["chi_1"].min()),
                                        vmax=float(result["chi_1"].max())))
    fig.colorbar(m, ax=ax, label="χ₁")
    ax.text(0.95, 0.17, "ordered\nχ₁ < 1", ha="center")
    ax.text(3.3, 0.05, "chaotic\nχ₁ > 1", ha="center")
    ax.set_title("χ₁ = σ_w² E φ'(√q* z)²  (tanh)", fontsize="small")
    ax = axes[0, 1]
    xi = np.clip(result["xi_c"], 0.3, 1e3)
    m = ax.pcolormesh(sw2g, sb2g, xi, cmap="magma", shading="auto", norm=LogNorm(0.3, 1e3))
    fig.colorbar(m, ax=ax, label="ξ_c (layers)")
    ax.set_title("correlation depth scale ξ_c", fontsize="small")
    for ax in axes[0, :2]:
        ax.plot(result["eoc_sw2"], result["eoc_sb2"], "k--", lw=1.5, label="edge of chaos")
        ax.set_xlabel("σ_w²")
        ax.set_ylabel("σ_b²")
        ax.set_xlim(sw2g[0], sw2g[-1])
        ax.set_ylim(sb2g[0], sb2g[-1])
    axes[0, 0].legend(loc="upper left", fontsize="small")
    ax = axes[0, 2]
    sw2, depths = result["sw2"], np.asarray(result["depths"])
    m = ax.pcolormesh(sw2, depths, result["accuracy"].mean(-1), cmap="viridis", shading="nearest",
                      vmin=0.5, vmax=1.0)
    fig.colorbar(m, ax=ax, label="training accuracy")
    fine, xi_fine = result["sw2_fine"], result["xi_c_fine"]
    ax.plot(fine, 6 * xi_fine, "w-", lw=1.8, label="6 ξ_c")
    ax.plot(fine, 3 * xi_fine, "w:", lw=1.2, label="3 ξ_c")
    ax.set_yscale("log")
    ax.set_ylim(depths[0] * 0.8, depths[-1] * 1.25)
    ax.set_xlabel("σ_w²")
    ax.set_ylabel("depth L")
    cfg = result["config"]
    ax.set_title(f"tanh MLPs, width {cfg['width']}, σ_b² = {SB2_TRAIN}, {cfg['steps']} SGD steps",
                 fontsize="small")
    ax.legend(loc="lower right", fontsize="small")
    fig.suptitle("Edge of chaos (Schoenholz et al. 2017): ordered/chaotic phases, diverging ξ_c, "
                 "trainable depth ∝ ξ_c", fontsize="medium")
    return [save_figure(fig, out, "edge_of_chaos.png")]
