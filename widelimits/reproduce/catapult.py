"""Catapult: the three learning-rate phases of wide networks (Lewkowycz, Bahri, Dyer,
Sohl-Dickstein & Gur-Ari 2020, "The large learning rate phase of deep learning: the catapult
mechanism", arXiv 2003.02218, Fig. 1-2; Zhu, Liu, Radhakrishnan & Belkin 2022, "Quadratic models
for understanding catapult dynamics of neural networks", arXiv 2205.11787).

Convention. Every model is trained by full-batch gradient descent on the loss of
``dynamics.train``, L = 1/2 mean over the m·k target entries of (f - y)^2. Its linearisation is
the function-space recursion f <- f - (eta / (m k)) Theta_0 (f - y), stable iff
eta < eta_crit = ``dynamics.max_learning_rate(Theta_0, y.size)`` = 2 m k / lambda_max(Theta_0).
We therefore set

    lambda_0 = lambda_max(Theta_0) / y.size      (Theta_0: empirical NTK on the training inputs)

so that the lazy/catapult boundary is eta lambda_0 = 2 whatever m and k. For the uv model
f(x) = v^T u x / sqrt(n) on the paper's single example (x = 1, y = 0) this lambda_0 is the
paper's lambda = (|u|^2 + |v|^2) / n and the paper's loss is ours, so its thresholds
eta lambda_0 = 2 and 4 carry over unchanged (``models.uv.reduced_dynamics`` gives the exact
two-variable map).

Models (one panel row each): the uv model (width ``uv_width``, the paper's setup); a
one-hidden-layer ReLU network in the NTK parameterization without biases, f(x) =
sum_i v_i relu(w_i . x / sqrt(d)) / sqrt(n), on m = 8 inputs on the sphere of radius sqrt(d),
d = 4, targets sign(x_1); its neural quadratic model (``dynamics.quadratic``); and its
linearised model (``dynamics.linearize``, constant kernel, so it diverges for every
eta lambda_0 > 2). Each is trained for ``steps`` steps at eta lambda_0 on a grid of [0.5, 5]
(all learning rates in one vmapped program), in float64. Recorded: the loss at every step, and
eta lambda_t (the top eigenvalue of the empirical NTK, same normalisation) at a geometric grid
of steps.

Phases (``classify``): "lazy" = converged (final loss < ``CONVERGED`` x initial) with the loss
never rising; "catapult" = converged after the loss rose at some step; "diverged" = non-finite
or final loss above the initial one; otherwise "unconverged".

``run(size)`` (smoke: seconds; quick: under a minute on two CPU cores; full: wider models,
longer runs, a finer grid) saves each finished model to ``out/catapult_<size>.npz`` and resumes
from it; ``plot(result, out)`` draws ``catapult.png``.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from .. import dynamics, kernels, nets
from ..models import uv
from ._common import check_size, checkpoint, new_figure, rerun_saved, resume, save_figure

__all__ = ["CONFIGS", "MODELS", "PHASES", "CONVERGED", "IN_DIM", "N_TRAIN", "uv_problem",
           "relu_problem", "make_net", "lambda0", "sweep", "classify", "run", "plot", "load"]

MODELS = ("uv", "quadratic", "network", "linearized")
PHASES = ("lazy", "catapult", "diverged", "unconverged")
CONVERGED = 1e-3  # final / initial loss below which a run counts as converged
IN_DIM = 4
N_TRAIN = 8

CONFIGS = {
    "smoke": dict(uv_width=500, net_width=1024, steps=300,
                  rates=(0.5, 1.5, 1.95, 2.05, 2.5, 3.0, 4.5), n_ntk=8),
    "quick": dict(uv_width=1000, net_width=1024, steps=500,
                  rates=tuple(np.round(np.arange(0.5, 5.01, 0.25), 2)), n_ntk=16),
    "full": dict(uv_width=10000, net_width=8192, steps=3000,
                 rates=tuple(np.round(np.arange(0.5, 5.001, 0.1), 2)), n_ntk=40),
}


def make_net(width: int):
    """The ReLU network: ``nets.mlp(width, 1, Relu(), b_std=None)`` (NTK param., no biases)."""
    return nets.mlp(width, 1, nets.Relu(), b_std=None)


def uv_problem(width: int, key):
    """The uv model on the paper's single example: ``(f, params0, x, y)`` with x = [[1]],
    y = [[0]] and ``params0 = models.uv.init(key, width)`` in float64 (call under
    ``jax.enable_x64(True)``, as ``run`` does)."""
    params0 = uv.init(key, width, dtype=jnp.float64)
    return uv.apply, params0, jnp.ones((1, 1), jnp.float64), jnp.zeros((1, 1), jnp.float64)


def relu_problem(width: int, key):
    """The ReLU network's problem: ``(net, params0, x, y)``; x (N_TRAIN, IN_DIM) Gaussian
    directions scaled to |x| = sqrt(IN_DIM), y = sign(x_1) (N_TRAIN, 1), float64 (call under
    ``jax.enable_x64(True)``)."""
    kx, kp = jax.random.split(key)
    x = jax.random.normal(kx, (N_TRAIN, IN_DIM), jnp.float64)
    x = x / jnp.linalg.norm(x, axis=1, keepdims=True) * np.sqrt(IN_DIM)
    net = make_net(width)
    params0 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), net.init(kp, x.shape))
    return net, params0, x, jnp.sign(x[:, :1])


def lambda0(f, params, x, y) -> float:
    """lambda_0 = lambda_max(Theta) / y.size of the empirical NTK of ``f`` at ``params`` on ``x``:
    eta lambda_0 = 2 is the linearised model's stability edge, ``dynamics.max_learning_rate``."""
    ntk = kernels.empirical_ntk(f, params, x)
    return float(2.0 / dynamics.max_learning_rate(ntk, y.size))


def classify(loss, nonfinite_step=-1, *, converged: float = CONVERGED) -> str:
    """Phase of one run from its losses (T + 1,) at every step (see the module docstring).

    A rise is a step with L_{t+1} > L_t (1 + 1e-9) while L_t is above the round-off floor
    ``L_0 * 1e4 * eps`` of the dtype."""
    loss = np.asarray(loss)
    if nonfinite_step >= 0 or not np.all(np.isfinite(loss)) or loss[-1] > loss[0]:
        return "diverged"
    if loss[-1] >= converged * loss[0]:
        return "unconverged"
    floor = loss[0] * 1e4 * np.finfo(loss.dtype).eps
    live = loss[:-1] > floor
    rose = np.any((loss[1:] > loss[:-1] * (1 + 1e-9)) & live)
    return "catapult" if rose else "lazy"


def _ntk_steps(steps: int, count: int):
    grid = np.unique(np.round(np.geomspace(1, steps, max(count - 1, 1))).astype(int))
    return tuple(int(t) for t in np.concatenate([[0], grid]))


def sweep(f, params0, x, y, rates, steps: int, *, lam0=None, n_ntk: int = 16,
          progress: bool = False) -> dict:
    """Train ``f`` from ``params0`` at learning rates eta = rate / lambda_0 for each
    eta lambda_0 in ``rates`` (one vmapped ``dynamics.train`` program, non-finite losses
    stopped and reported). Returns numpy arrays: ``rates`` (E,), ``lam0``, ``loss`` (E, steps+1),
    ``ntk_steps`` (K,), ``eta_lam`` (E, K) = eta lambda_max(Theta_t) / y.size (inf once
    non-finite), ``nonfinite_step`` (E,), ``phase`` (E,) strings."""
    rates = np.asarray(rates, np.float64)
    if rates.ndim != 1 or rates.size == 0 or not np.all(np.isfinite(rates) & (rates > 0)):
        raise ValueError(f"catapult.sweep: rates must be a non-empty 1-D sequence of positive "
                         f"eta*lambda_0 values, got {rates!r}.")
    lam0 = lambda0(f, params0, x, y) if lam0 is None else float(lam0)
    if not (np.isfinite(lam0) and lam0 > 0):
        raise ValueError(f"catapult.sweep: lam0 must be positive and finite, got {lam0}.")
    members = len(rates)
    opt = optax.inject_hyperparams(optax.sgd)(learning_rate=1.0)
    stacked = jax.tree.map(lambda a: jnp.broadcast_to(a, (members,) + a.shape), params0)
    state = jax.vmap(opt.init)(stacked)
    state.hyperparams["learning_rate"] = jnp.asarray(rates / lam0, jnp.result_type(
        *jax.tree.leaves(params0)))
    ntk_at = _ntk_steps(steps, n_ntk)
    with np.errstate(all="ignore"):
        res = dynamics.train(f, stacked, x, y, opt, steps, opt_state=state, ensemble=True,
                             ntk_at=ntk_at, on_nonfinite="stop", progress=progress)
        ntk = np.asarray(res.ntk)
        ok = np.all(np.isfinite(ntk), axis=(-1, -2))
        top = np.full(ok.shape, np.inf)
        top[ok] = np.linalg.eigvalsh(ntk[ok])[..., -1] / y.size
        loss = np.asarray(res.loss)
        bad = np.asarray(res.nonfinite_step)
        for e in range(members):  # kernels recorded after the loss became non-finite: inf
            if bad[e] >= 0:
                top[e, np.asarray(ntk_at) >= bad[e]] = np.inf
    return {"rates": rates, "lam0": np.asarray(lam0), "loss": loss,
            "ntk_steps": np.asarray(ntk_at), "eta_lam": top * (rates / lam0)[:, None],
            "nonfinite_step": bad,
            "phase": np.array([classify(loss[e], bad[e]) for e in range(members)])}


def _model_problem(name, cfg, key):
    if name == "uv":
        return uv_problem(cfg["uv_width"], jax.random.fold_in(key, 0))
    net, params0, x, y = relu_problem(cfg["net_width"], jax.random.fold_in(key, 1))
    f = {"quadratic": lambda: dynamics.quadratic(net, params0),
         "network": lambda: net,
         "linearized": lambda: dynamics.linearize(net, params0)}[name]()
    return f, params0, x, y


def run(size: str = "full", out: str | os.PathLike = "figures", *, seed: int = 0) -> dict:
    """Sweep eta lambda_0 for the four ``MODELS`` at ``size``; finished models are saved to and
    resumed from ``out/catapult_<size>.npz``. Returns a dict: ``size``, ``config``, ``models``,
    and per model ``<model>`` the dict of ``sweep``; ``data`` (the file)."""
    cfg = CONFIGS[check_size(size)]
    os.makedirs(out, exist_ok=True)
    data = os.path.join(os.fspath(out), f"catapult_{size}.npz")
    rates = np.asarray(cfg["rates"], np.float64)
    stamp = dict(seed=seed, config=repr(cfg))
    saved = resume(data, **stamp)
    done = {name: {k[len(name) + 1:]: v for k, v in saved.items() if k.startswith(name + "_")}
            for name in MODELS if f"{name}_loss" in saved}
    key = jax.random.key(seed)
    with jax.enable_x64(True):
        for name in tqdm(MODELS, desc="catapult", unit="model", leave=False):
            if name in done:
                continue
            f, params0, x, y = _model_problem(name, cfg, key)
            done[name] = sweep(f, params0, x, y, rates, cfg["steps"], n_ntk=cfg["n_ntk"])
            checkpoint(data, {f"{m}_{k}": v for m, r in done.items() for k, v in r.items()},
                       **stamp)
    return {"size": size, "config": dict(cfg), "models": MODELS, **done, "data": data}


def load(path: str | os.PathLike, size: str) -> dict:
    """Rebuild ``run``'s result from its saved file without computing anything new."""
    return rerun_saved(path, run, check_size(size), {m: f"{m}_loss" for m in MODELS},
                       "catapult.load")


_TITLES = {"uv": "uv model f = vᵀux/√n (x = 1, y = 0)",
           "quadratic": "quadratic model of the ReLU net",
           "network": "ReLU network (1 hidden layer)",
           "linearized": "linearised ReLU net (constant kernel)"}
_COLORS = {"lazy": "tab:blue", "catapult": "tab:orange", "diverged": "tab:red",
           "unconverged": "0.5"}


def _shown_rates(rates):
    want = (1.0, 1.5, 2.5, 3.0, 3.5, 4.5)
    return [int(np.argmin(np.abs(rates - w))) for w in want if np.min(np.abs(rates - w)) < 0.3]


def plot(result: dict, out: str | os.PathLike = "figures") -> list[str]:
    """Draw ``catapult.png``: one row per model; columns: the loss curves and the curves of
    eta lambda_t for a few eta lambda_0, and eta lambda at the end of training against
    eta lambda_0 (lines at 2 and 4; colour = phase, crosses = diverged)."""
    fig, axes = new_figure(len(MODELS), 3, panel=(4.4, 2.9))
    for row, name in enumerate(MODELS):
        r = result[name]
        rates = r["rates"]
        shown = _shown_rates(rates)
        for e in shown:
            color = _COLORS[str(r["phase"][e])]
            loss = np.where(np.isfinite(r["loss"][e]) & (r["loss"][e] < 1e30), r["loss"][e],
                            np.nan)  # above the axis anyway
            ls = "-" if rates[e] < 2 else ("--" if rates[e] < 4 else ":")
            axes[row, 0].semilogy(loss, color=color, ls=ls, lw=1,
                                  label=f"ηλ0 = {rates[e]:g} ({r['phase'][e]})")
            lam = np.where(np.isfinite(r["eta_lam"][e]), r["eta_lam"][e], np.nan)
            axes[row, 1].plot(np.maximum(r["ntk_steps"], 0.5), lam, color=color, ls=ls,
                              marker=".", lw=1)
        ax = axes[row, 0]
        ax.set_ylim(max(np.nanmin(np.where(r["loss"] > 0, r["loss"], np.nan)), 1e-30), 1e8)
        ax.set_ylabel("training loss")
        ax.set_title(_TITLES[name], fontsize="medium")
        ax.legend(fontsize="x-small", ncols=2)
        ax = axes[row, 1]
        ax.set_xscale("log")
        ax.axhline(2, color="k", lw=0.7)
        ax.set_ylim(0, 6)
        ax.set_ylabel("η λ_t")
        ax = axes[row, 2]
        final = r["eta_lam"][:, -1]
        for phase in PHASES:
            sel = (r["phase"] == phase)
            if not sel.any():
                continue
            y = np.where(np.isfinite(final[sel]) & (final[sel] < 6) & (phase != "diverged"),
                         final[sel], 5.8)
            ax.scatter(rates[sel], y, color=_COLORS[phase], s=16,
                       marker="x" if phase == "diverged" else "o", label=phase)
        ax.plot([0, 6], [0, 6], color="0.7", lw=0.7, ls=":")
        for v in (2, 4):
            ax.axvline(v, color="k", lw=0.7, ls="--")
        ax.axhline(2, color="k", lw=0.7)
        ax.set_xlim(0, 5.5)
        ax.set_ylim(0, 6)
        ax.set_ylabel("η λ at the end")
        ax.legend(fontsize="x-small")
    axes[-1, 0].set_xlabel("step")
    axes[-1, 1].set_xlabel("step")
    axes[-1, 2].set_xlabel("η λ0")
    cfg = result["config"]
    fig.suptitle(f"Catapult phases (Lewkowycz et al. 2020; Zhu et al. 2022): uv width "
                 f"{cfg['uv_width']}, ReLU width {cfg['net_width']}, {cfg['steps']} GD steps; "
                 "λ = λ_max(NTK)/m, crosses at the top = diverged", fontsize="medium")
    return [save_figure(fig, out, "catapult.png")]
