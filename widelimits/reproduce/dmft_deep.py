"""Deep mean-field networks vs their DMFT: width sweeps (Bordelon & Pehlevan 2022).

Bordelon & Pehlevan 2022, "Self-consistent dynamical field theory of kernel evolution in wide
neural networks" (arXiv 2205.09653), deep-network experiments.

Depth-L mean-field (muP) MLPs ``nets.meanfield_mlp(N, L, phi, gamma0)``: h^1 = W^0 x / sqrt(D),
h^{l+1} = W^l phi(h^l) / sqrt(N), f = w . phi(h^L) / (gamma0 N), all weights N(0, 1), no biases,
trained by full-batch gradient descent on L = 1/2 mean_mu (f_mu - y_mu)^2 with learning rate
eta gamma0^2 N (``nets.meanfield_learning_rate``) for T steps, at widths N = 2 ... 2000, against
their N -> infinity limit ``dynamics.dmft``:

(a) phi(h) = tanh(0.8 h) / 0.8, L = 3, gamma0 = 1, eta = 0.1. The DMFT is the sampled solver
    with exact response functions A, B (``method="sampled"``, per-sample Jacobians,
    O(n (TP)^3) per iteration). Full: the paper's P = 10, D = 25, T = 100 (t = 10), 512 samples
    (damping 0.8; about 35 s per iteration at T = 100 on 2 CPU cores). Quick: P = 4, T = 16
    (t = 1.6). The gradient-independence approximation (A = B = 0) is drawn for comparison: it
    is not the DMFT and visibly misses the networks' loss.
(b) phi = id, L = 5, P = 20, D = 40, T = 100, eta = 0.025, gamma0 = 1.5 (paper): the exact
    closed-form operator equations (``method="closed_form"``); quick uses L = 3, P = 10, T = 32
    (two continuation horizons, 16 and 32, each compiled once) and an undamped fixed-point
    iteration (damping 1: the same solution to 1e-8 as the default 0.6, in a third of the
    iterations).

Data: x_mu ~ N(0, I_D), y = x beta / sqrt(D), beta ~ N(0, I_D), drawn from ``seed``. Measured:
per width (``seeds`` networks each) the training loss and the final feature kernels
Phi^l(T, T) = phi(h^l) phi(h^l)^T / N, l = 1..L (``kernels.feature_kernels``), and their kernel
alignment (cosine similarity, Cristianini et al. 2001; ``compare.alignment``) with the DMFT's.

``run(size)`` saves each finished piece (a DMFT, one width's networks) to and resumes from
``out/dmft_deep_<size>.npz``; ``plot(result, out)`` draws ``dmft_deep.png``. The DMFT runs in
float64 (``jax.enable_x64``): its TP x TP Cholesky factors fail in float32.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from .. import compare, dynamics, kernels, nets
from ._common import check_size, checkpoint, new_figure, resume, save_figure, saved_stamp
from .dmft_two_layer import OPTIMIZER

__all__ = ["CONFIGS", "EXPERIMENTS", "scaled_tanh", "dataset", "run", "plot", "load"]

_DATA_STREAM = 20_000


def scaled_tanh(h):
    """phi(h) = tanh(0.8 h) / 0.8, the deep nonlinear experiment's activation."""
    return jnp.tanh(0.8 * h) / 0.8


_TANH = nets.Elementwise(scaled_tanh, name="tanh(0.8h)/0.8")
EXPERIMENTS = ("tanh", "linear")

CONFIGS = {
    "smoke": dict(
        tanh=dict(p=3, d=8, steps=8, depth=2, eta=0.1, gamma0=1.0, n_samples=128, max_iter=40),
        linear=dict(p=6, d=12, steps=20, depth=3, eta=0.025, gamma0=1.5, damping=1.0),
        widths=(8, 64, 512), seeds=4),
    "quick": dict(
        tanh=dict(p=4, d=10, steps=16, depth=3, eta=0.1, gamma0=1.0, n_samples=256, max_iter=40),
        linear=dict(p=10, d=20, steps=32, depth=3, eta=0.025, gamma0=1.5, damping=1.0),
        widths=(4, 16, 128, 1024), seeds=4),
    "full": dict(
        tanh=dict(p=10, d=25, steps=100, depth=3, eta=0.1, gamma0=1.0, n_samples=512,
                  max_iter=60, damping=0.8),
        linear=dict(p=20, d=40, steps=100, depth=5, eta=0.025, gamma0=1.5),
        widths=(2, 8, 32, 128, 500, 2000), seeds=4),
}


def _activation(name):
    return _TANH if name == "tanh" else nets.Identity()


def dataset(p, d, seed=0, dtype=jnp.float32):
    """x (p, d) ~ N(0, I) and y = x beta / sqrt(d) (p,), beta ~ N(0, I)."""
    kx, kb = jax.random.split(jax.random.fold_in(jax.random.key(seed), _DATA_STREAM + p * 1000 + d))
    x = np.asarray(jax.random.normal(kx, (p, d), jnp.float32))
    beta = np.asarray(jax.random.normal(kb, (d,), jnp.float32))
    return x.astype(dtype), (x @ beta / np.sqrt(d)).astype(dtype)


def _solve(name, c, seed, method):
    with jax.enable_x64(True):
        x, y = dataset(c["p"], c["d"], seed, np.float64)
        kw = (dict(n_samples=c["n_samples"], max_iter=c["max_iter"], tol=1e-3,
                   damping=c.get("damping", 0.6))
              if name == "tanh" else dict(max_iter=200, tol=1e-6, damping=c.get("damping", 0.6)))
        net = nets.meanfield_mlp(100, c["depth"], _activation(name), c["gamma0"])  # any width
        return dynamics.dmft(net, x, y, eta=c["eta"], steps=c["steps"],
                             key=jax.random.key(seed + 1), method=method, kernels="equal_time",
                             progress=True, **kw)


def _dmft_piece(name, c, seed):
    dm = _solve(name, c, seed, "sampled" if name == "tanh" else "closed_form")
    piece = {"loss": np.asarray(0.5 * jnp.mean(dm.delta**2, axis=-1)),
             "phi": np.asarray(dm.phi[:, -1]),                           # (L, P, P) at t = T
             "residual": np.asarray(dm.residuals[-1])}
    if name == "tanh":
        gi = _solve(name, c, seed, "gradient_independence")
        piece["gi_loss"] = np.asarray(0.5 * jnp.mean(gi.delta**2, axis=-1))
    return piece


def _net_piece(name, c, width, seeds, seed):
    x, y = dataset(c["p"], c["d"], seed, np.float32)
    net = nets.meanfield_mlp(width, c["depth"], _activation(name), c["gamma0"])
    keys = jax.random.split(jax.random.fold_in(jax.random.key(seed + 2), width), seeds)
    params0 = jax.vmap(net.init, (0, None))(keys, x.shape)
    opt_state = jax.vmap(OPTIMIZER.init)(params0)
    lr = nets.meanfield_learning_rate(c["eta"], c["gamma0"], width)
    opt_state.hyperparams["learning_rate"] = jnp.full((seeds,), lr, jnp.float32)
    tr = dynamics.train(net, params0, x, y[:, None], OPTIMIZER, c["steps"], ensemble=True,
                        opt_state=opt_state, ensemble_mode="map", progress=False)
    kern = jax.vmap(lambda p: kernels.feature_kernels(net, p, x))      # (L, P, P) per seed
    return {"loss": np.asarray(tr.loss), "phi": np.asarray(kern(tr.params))}


def run(size: str = "full", out: str | os.PathLike = "figures", *, seed: int = 0) -> dict:
    """Compute the figure's numbers at ``size``; every finished piece is saved to and resumed from
    ``out/dmft_deep_<size>.npz``.

    Returns a dict: ``size``, ``config``, ``widths`` (W,), and per experiment e in
    ``EXPERIMENTS``: ``{e}_t`` (T+1,) times, ``{e}_dmft_loss`` (T+1,), ``{e}_dmft_phi`` (L, P, P)
    final DMFT kernels, ``{e}_net_loss`` (W, S, T+1), ``{e}_net_phi`` (W, S, L, P, P),
    ``{e}_align`` (W, S, L) cosine alignment of network and DMFT final kernels per layer,
    ``{e}_loss_gap`` (W, S) |final network loss - final DMFT loss|, ``{e}_dmft_residual`` the
    DMFT's last fixed-point residual (tolerance 1e-3 for tanh, 1e-6 for linear);
    ``tanh_gi_loss`` (T+1,) the gradient-independence approximation's loss; ``data`` the file.
    """
    cfg = CONFIGS[check_size(size)]
    os.makedirs(out, exist_ok=True)
    data = os.path.join(os.fspath(out), f"dmft_deep_{size}.npz")
    stamp = dict(seed=seed, config=repr(cfg))
    done = resume(data, **stamp)
    todo = [(e, None) for e in EXPERIMENTS] + [(e, w) for e in EXPERIMENTS for w in cfg["widths"]]
    todo = [(e, w) for e, w in todo if f"{e}_{'dmft' if w is None else w}_loss" not in done]
    for e, w in tqdm(todo, desc="dmft_deep pieces", leave=False):
        c = cfg[e]
        piece = (_dmft_piece(e, c, seed) if w is None else _net_piece(e, c, w, cfg["seeds"], seed))
        tag = f"{e}_{'dmft' if w is None else w}"
        done.update({f"{tag}_{k}": v for k, v in piece.items()})
        checkpoint(data, done, **stamp)
    res = {"size": size, "config": cfg, "widths": np.asarray(cfg["widths"]), "data": data}
    for e in EXPERIMENTS:
        c = cfg[e]
        res[f"{e}_t"] = c["eta"] * np.arange(c["steps"] + 1)
        res[f"{e}_dmft_loss"] = done[f"{e}_dmft_loss"]
        res[f"{e}_dmft_phi"] = done[f"{e}_dmft_phi"]
        res[f"{e}_dmft_residual"] = float(done[f"{e}_dmft_residual"])
        if f"{e}_dmft_gi_loss" in done:
            res[f"{e}_gi_loss"] = done[f"{e}_dmft_gi_loss"]
        res[f"{e}_net_loss"] = np.stack([done[f"{e}_{w}_loss"] for w in cfg["widths"]])
        res[f"{e}_net_phi"] = np.stack([done[f"{e}_{w}_phi"] for w in cfg["widths"]])
        res[f"{e}_align"] = compare.alignment(res[f"{e}_net_phi"], res[f"{e}_dmft_phi"])
        res[f"{e}_loss_gap"] = np.abs(res[f"{e}_net_loss"][..., -1] - res[f"{e}_dmft_loss"][-1])
    return res


def load(path: str | os.PathLike, size: str) -> dict:
    """Rebuild ``run``'s result from its saved file (missing pieces are computed)."""
    seed = int(saved_stamp(path)["seed"])
    return run(size, os.path.dirname(os.fspath(path)) or ".", seed=seed)


def plot(result: dict, out: str | os.PathLike = "figures") -> list[str]:
    """Draw ``dmft_deep.png``: per experiment (rows) the losses of the DMFT and of networks at
    each width, and the per-layer alignment of the final kernels with the DMFT's vs width."""
    widths = result["widths"]
    fig, axes = new_figure(2, 2, panel=(4.2, 3.2))
    colors = [f"C{i}" for i in range(len(widths))]
    for row, e in enumerate(EXPERIMENTS):
        c = result["config"][e]
        what = ("tanh(0.8h)/0.8, sampled DMFT with responses" if e == "tanh"
                else "linear, closed-form DMFT")
        ax = axes[row, 0]
        for i, w in enumerate(widths):
            ax.plot(result[f"{e}_t"], result[f"{e}_net_loss"][i].mean(0), color=colors[i],
                    lw=1.0, label=f"N = {w}")
        ax.plot(result[f"{e}_t"], result[f"{e}_dmft_loss"], "k--", lw=1.6, label="DMFT")
        if f"{e}_gi_loss" in result:
            ax.plot(result[f"{e}_t"], result[f"{e}_gi_loss"], ":", color="0.45", lw=1.6,
                    label="grad. independence\n(approx., A = B = 0)")
        ax.set_yscale("log")
        ax.set_xlabel("time t = step × η")
        ax.set_ylabel("train loss")
        ax.set_title(f"L = {c['depth']} {what}\nP = {c['p']}, D = {c['d']}, η = {c['eta']}, "
                     f"γ0 = {c['gamma0']}, DMFT residual {result[e + '_dmft_residual']:.1g}",
                     fontsize="small")
        ax.legend(fontsize="x-small", ncol=2)
        ax.grid(alpha=0.3)
        ax = axes[row, 1]
        al = result[f"{e}_align"]                                         # (W, S, L)
        for l in range(al.shape[-1]):
            ax.plot(widths, al[:, :, l].mean(1), "o-", label=f"layer {l + 1}")
        ax.set_xscale("log")
        ax.set_xlabel("width N")
        ax.set_ylabel("cos(Φ_net(T,T), Φ_DMFT(T,T))")
        ax.set_title("final feature-kernel alignment", fontsize="small")
        ax.legend(fontsize="x-small")
        ax.grid(alpha=0.3)
    fig.suptitle("Deep mean-field networks vs DMFT (Bordelon & Pehlevan 2022)", fontsize="medium")
    return [save_figure(fig, out, "dmft_deep.png")]
