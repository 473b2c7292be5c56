"""DMFT of a two-layer ReLU network vs width-N mean-field networks (Bordelon & Pehlevan 2022).

Bordelon & Pehlevan 2022, "Self-consistent dynamical field theory of kernel evolution in wide
neural networks" (arXiv 2205.09653), two-layer ReLU experiment.

A two-layer ReLU network in the mean-field (muP) parameterization, ``nets.meanfield_mlp(N, 1,
Relu, gamma0)``: h = W^0 x / sqrt(D), f = w . relu(h) / (gamma0 N), all weights N(0, 1), no
biases, trained by full-batch gradient descent on L = 1/2 mean_mu (f_mu - y_mu)^2 with learning
rate eta gamma0^2 N (``nets.meanfield_learning_rate``) for T steps. Its N -> infinity limit is the
DMFT (``dynamics.dmft``, depth 1: one causal sweep over time of ``n_samples`` single-site
neurons). Settings of the paper: P = 25 points, D = 40, T = 200, eta = 0.075,
gamma0 in {0.2, 1, 2, 3}, N = 3000.

Data: x_mu ~ N(0, I_D) (P, D) and a random linear teacher y_mu = beta . x_mu / sqrt(D),
beta ~ N(0, I_D), drawn once from ``seed`` (the paper uses a random target of unit scale; any
such target shows the effect). Larger gamma0 moves the feature kernel Phi = <relu(h) relu(h)^T>
further from its initial value and aligns it with the target kernel y y^T, and the width-N
networks' losses and final kernels follow the DMFT's.

Plotted: the training losses (DMFT and every network seed) per gamma0, the final feature kernels
Phi(T, T) of the DMFT and of one network (points sorted by target), and the summaries: relative
kernel change ||Phi(T,T) - Phi(0,0)||_F / ||Phi(0,0)||_F and the kernel alignments
<A, B>_F / (||A||_F ||B||_F) (Cristianini et al. 2001, ``compare.alignment``) between the
DMFT's and the networks' final kernels, between each final kernel and its initial one, and
between the final kernels and y y^T. The networks' kernels are ``kernels.feature_kernels``.

``run(size)`` (smoke: seconds; quick: well under a minute on two CPU cores; full: the paper's
sizes) saves each finished gamma0 to and resumes from ``out/dmft_two_layer_<size>.npz``;
``plot(result, out)`` draws ``dmft_two_layer.png``.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from .. import compare, dynamics, kernels, nets
from ._common import check_size, checkpoint, new_figure, rerun_saved, resume, save_figure

__all__ = ["CONFIGS", "N_TRAIN", "IN_DIM", "STEPS", "ETA", "GAMMAS", "OPTIMIZER", "dataset",
           "run", "plot", "load"]

N_TRAIN = 25
_DATA_STREAM = 10_000  # fold_in index of the data's key (gamma0 number i uses index i)
IN_DIM = 40
STEPS = 200
ETA = 0.075
GAMMAS = (0.2, 1.0, 2.0, 3.0)
# One optimizer object for every gamma0 and width: its learning rate lives in the optimizer state
# (set per run), so dynamics.train compiles its program once per shape.
OPTIMIZER = optax.inject_hyperparams(optax.sgd)(learning_rate=1.0)

CONFIGS = {
    "smoke": dict(width=1024, seeds=4, n_samples=1024, steps=100),
    "quick": dict(width=1000, seeds=2, n_samples=1000, steps=STEPS),
    "full": dict(width=3000, seeds=8, n_samples=2000, steps=STEPS),
}


def dataset(seed: int = 0):
    """Inputs x (N_TRAIN, IN_DIM) ~ N(0, I) and targets y = x beta / sqrt(IN_DIM) (N_TRAIN,),
    beta ~ N(0, I), float32."""
    kx, kb = jax.random.split(jax.random.fold_in(jax.random.key(seed), _DATA_STREAM))
    x = jax.random.normal(kx, (N_TRAIN, IN_DIM), jnp.float32)
    beta = jax.random.normal(kb, (IN_DIM,), jnp.float32)
    return x, x @ beta / np.float32(np.sqrt(IN_DIM))


def _one_gamma(gamma0, cfg, key, x, y):
    """DMFT and ``cfg['seeds']`` width-N networks at one gamma0."""
    steps, width = cfg["steps"], cfg["width"]
    kd, kn = jax.random.split(key)
    net = nets.meanfield_mlp(width, 1, nets.Relu(), gamma0)
    dm = dynamics.dmft(net, x, y, eta=ETA, steps=steps, key=kd, n_samples=cfg["n_samples"],
                       kernels="equal_time")
    keys = jax.random.split(kn, cfg["seeds"])
    params0 = jax.tree.map(lambda a: a.astype(x.dtype), jax.vmap(net.init, (0, None))(keys, x.shape))
    opt_state = jax.vmap(OPTIMIZER.init)(params0)
    lr = nets.meanfield_learning_rate(ETA, gamma0, width)
    opt_state.hyperparams["learning_rate"] = jnp.full((cfg["seeds"],), lr, jnp.float32)
    tr = dynamics.train(net, params0, x, y[:, None], OPTIMIZER, steps, ensemble=True,
                        opt_state=opt_state, ensemble_mode="map", progress=False)
    phi = jax.vmap(lambda p: kernels.feature_kernels(net, p, x)[0])   # relu(h) relu(h)^T / N
    return {
        "dmft_loss": np.asarray(0.5 * jnp.mean(dm.delta**2, axis=-1)),
        "dmft_phi": np.asarray(dm.phi[0][jnp.array([0, steps])]),     # (2, P, P): t = 0, T
        "net_loss": np.asarray(tr.loss),                               # (S, T + 1)
        "net_phi": np.stack([np.asarray(phi(params0)), np.asarray(phi(tr.params))], 1),
    }


_NAMES = ("dmft_loss", "dmft_phi", "net_loss", "net_phi")


def run(size: str = "full", out: str | os.PathLike = "figures", *, seed: int = 0) -> dict:
    """Compute the figure's numbers at ``size``; finished gamma0 values are saved to and resumed
    from ``out/dmft_two_layer_<size>.npz``.

    Returns a dict: ``size``, ``config``, ``gammas`` (G,), ``x`` (P, D), ``y`` (P,), ``t`` (T+1,)
    times k eta, and per gamma0 (leading axis G; S network seeds): ``dmft_loss`` (G, T+1),
    ``net_loss`` (G, S, T+1), the feature kernels at t = 0 and T ``dmft_phi`` (G, 2, P, P) and
    ``net_phi`` (G, S, 2, P, P); summaries
    ``change_dmft`` (G,), ``change_net`` (G, S) = ||Phi(T,T) - Phi(0,0)||_F / ||Phi(0,0)||_F,
    ``align_dmft_net`` (G, S) = cosine similarity of the DMFT's and each network's Phi(T,T),
    ``align_init_dmft`` (G,) / ``align_init_net`` (G, S) = that of Phi(0,0) and Phi(T,T);
    ``align_target_dmft`` (G, 2) at t = 0 and T / ``align_target_net`` (G, S) at T = that of Phi
    and the target kernel y y^T;
    ``data`` the file.
    """
    cfg = CONFIGS[check_size(size)]
    x, y = dataset(seed)
    gammas = np.asarray(GAMMAS, np.float64)
    os.makedirs(out, exist_ok=True)
    data = os.path.join(os.fspath(out), f"dmft_two_layer_{size}.npz")
    stamp = dict(seed=seed, **cfg)
    done = resume(data, **stamp)
    key = jax.random.key(seed)
    todo = [g for g in GAMMAS if f"dmft_loss_{float(g)!r}" not in done]
    for g in tqdm(todo, desc="dmft_two_layer gamma0", leave=False, unit="gamma0"):
        piece = _one_gamma(g, cfg, jax.random.fold_in(key, GAMMAS.index(g)), x, y)
        done.update({f"{k}_{float(g)!r}": v for k, v in piece.items()})
        checkpoint(data, done, **stamp)
    res = {k: np.stack([done[f"{k}_{float(g)!r}"] for g in GAMMAS]) for k in _NAMES}
    d_phi, n_phi = res["dmft_phi"], res["net_phi"]
    yy = np.outer(np.asarray(y, np.float64), np.asarray(y, np.float64))
    rel = lambda a, b: (np.linalg.norm(a - b, axis=(-2, -1)) / np.linalg.norm(b, axis=(-2, -1)))
    return {
        "size": size, "config": dict(cfg), "gammas": gammas, "x": np.asarray(x),
        "y": np.asarray(y), "t": ETA * np.arange(cfg["steps"] + 1), **res,
        "change_dmft": rel(d_phi[:, 1], d_phi[:, 0]),
        "change_net": rel(n_phi[:, :, 1], n_phi[:, :, 0]),
        "align_dmft_net": compare.alignment(d_phi[:, None, 1], n_phi[:, :, 1]),
        "align_init_dmft": compare.alignment(d_phi[:, 0], d_phi[:, 1]),
        "align_init_net": compare.alignment(n_phi[:, :, 0], n_phi[:, :, 1]),
        "align_target_dmft": compare.alignment(d_phi, yy),
        "align_target_net": compare.alignment(n_phi[:, :, 1], yy),
        "data": data,
    }


def load(path: str | os.PathLike, size: str) -> dict:
    """Rebuild ``run``'s result from its saved file without computing anything new (every
    gamma0 of ``GAMMAS`` must be in the file)."""
    return rerun_saved(path, run, check_size(size),
                       {f"gamma0 {g}": f"dmft_loss_{float(g)!r}" for g in GAMMAS},
                       "dmft_two_layer.load")


def plot(result: dict, out: str | os.PathLike = "figures") -> list[str]:
    """Draw ``dmft_two_layer.png``: row 1 the losses (DMFT black, network seeds coloured) per
    gamma0 and the kernel change vs gamma0; row 2 the DMFT's Phi(T, T) per gamma0 and the
    alignments vs gamma0; row 3 one network's Phi(T, T) (points sorted by target)."""
    gammas, t = result["gammas"], result["t"]
    n = len(gammas)
    width, seeds = result["config"]["width"], result["net_loss"].shape[1]
    fig, axes = new_figure(3, n + 1, panel=(3.0, 2.7))
    order = np.argsort(result["y"])
    for i, g in enumerate(gammas):
        ax = axes[0, i]
        for s in range(seeds):
            ax.plot(t, result["net_loss"][i, s], color="tab:orange", lw=1.0, alpha=0.7,
                    label=f"networks N = {width} ({seeds} seeds)" if s == 0 else None)
        ax.plot(t, result["dmft_loss"][i], color="k", lw=1.4, ls="--", label="DMFT")
        ax.set_yscale("log")
        ax.set_title(f"γ0 = {g:g}", fontsize="medium")
        ax.set_xlabel("time t = step × η")
        ax.grid(alpha=0.3)
        vmax = max(np.abs(result["dmft_phi"][i, 1]).max(), np.abs(result["net_phi"][i, 0, 1]).max())
        for row, (kern, who) in enumerate(((result["dmft_phi"][i, 1], "DMFT"),
                                           (result["net_phi"][i, 0, 1], f"net N = {width}")), 1):
            ax = axes[row, i]
            ax.imshow(kern[np.ix_(order, order)], cmap="viridis", vmin=0, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            extra = (f", align {result['align_dmft_net'][i, 0]:.3f}" if row == 2 else "")
            ax.set_title(f"{who} Φ(T,T), γ0 = {g:g}{extra}", fontsize="small")
    axes[0, 0].set_ylabel("train loss ½ mean (f − y)²")
    axes[0, 0].legend(fontsize="small")
    axes[1, 0].set_ylabel("points sorted by y")
    axes[2, 0].set_ylabel("points sorted by y")
    ax = axes[0, n]
    ax.plot(gammas, result["change_dmft"], "k--o", label="DMFT")
    ax.plot(gammas, result["change_net"].mean(1), "o-", color="tab:orange",
            label="networks (mean)")
    ax.set_xlabel("γ0")
    ax.set_title("‖Φ(T,T) − Φ(0,0)‖ / ‖Φ(0,0)‖", fontsize="small")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    ax = axes[1, n]
    ax.plot(gammas, result["align_dmft_net"].mean(1), "o-", color="tab:green",
            label="DMFT vs network Φ(T,T)")
    ax.plot(gammas, result["align_init_dmft"], "k--o", label="Φ(0,0) vs Φ(T,T), DMFT")
    ax.plot(gammas, result["align_init_net"].mean(1), "o-", color="tab:orange",
            label="Φ(0,0) vs Φ(T,T), networks")
    ax.plot(gammas, result["align_target_dmft"][:, 1], "k:s", label="Φ(T,T) vs y yᵀ, DMFT")
    ax.plot(gammas, result["align_target_net"].mean(1), "s-", color="tab:purple",
            label="Φ(T,T) vs y yᵀ, networks")
    ax.set_xlabel("γ0")
    ax.set_title("kernel alignment (cosine)", fontsize="small")
    ax.grid(alpha=0.3)
    axes[2, n].axis("off")
    axes[2, n].legend(*ax.get_legend_handles_labels(), loc="upper left", fontsize="small",
                      title="kernel alignment")
    fig.suptitle(f"Two-layer ReLU mean-field network: DMFT vs width N = {width} "
                 f"(P = {N_TRAIN}, D = {IN_DIM}, η = {ETA}; Bordelon & Pehlevan 2022)",
                 fontsize="medium")
    return [save_figure(fig, out, "dmft_two_layer.png")]
