"""Grokking as the transition from lazy to rich training (Kumar, Bordelon, Gershman & Pehlevan,
ICLR 2024, arXiv 2310.06110, Figs. 1b and 3a).

A two-layer network f(x) = (α/N) Σ_i φ(w_i·x), φ(h) = h + (ε/2) h², readouts fixed to one,
trained centred (f(W) − f(W0)) by full-batch gradient descent on ½ mean (f − y)² with learning
rate η0 N/α², on the target y(x) = ½ (β*·x)², x ~ N(0, I/D), P training points, β* a Gaussian
vector rescaled to |β*|² = D (so y = ½ z², z ~ N(0, 1), and the initial error E y² = 3/4).
Losses shown are mean squared errors mean (f − y)² (twice the training objective) on the
training set and on 1000 fresh test points; "t_train" and "t_test" are the first recorded steps
at which they fall below 0.1 and the grokking amount is t_test − t_train.

* Fig. 1b (α = 1, ε = 0.02, η0 = 1): the train error falls long before the test error (grokking
  without regularisation). The linearised network (gradient descent with the initial empirical
  NTK, ``dynamics.gradient_descent_mse`` on ``kernels.empirical_ntk``) follows the network in
  the first ~10³ steps (lazy phase), then fits the training set only slowly, through its weak
  (order ε²) quadratic features, towards the ridgeless initial-NTK kernel regression, whose test
  error is the horizontal line; the network's train error falls first and its test error later,
  far below that line, once the features (M) align with β*β*ᵀ.
* Fig. 3a (ε = 0.25, η0 = 0.5, α from 2^-5 to 2^5): small α learns features at once and
  generalises with little delay; the delay grows with α; large α stays lazy (the test error never
  reaches 0.1 within the run).

The training runs use ``models.grokking.gradient_descent``: gradient descent on the sufficient statistics
(w̄, M), which is exact for this network (its φ' is affine, so every neuron takes the same affine
step) and about P N D / (P D² + D³) times cheaper than stepping the N × D weights with
``dynamics.train`` (the tests check that the two agree to round-off).

Settings the paper states: D = 100, N = 500, 1000 test points; Fig. 1b P = 550, ε = 0.02,
η0 = 1, 10^5 steps; Fig. 3a P = 450, ε = 0.25, η0 = 0.5, 6·10^4 steps. Not stated there (our
choices): |β*|² = D, the error normalisation and the 0.1 threshold on mean (f − y)².
Sizes: ``full`` = those settings (411 s measured on two busy CPU cores); ``quick`` D = 40, N = 200
(P scaled with D); ``smoke`` D = 16 (seconds). ``run(size, out)`` resumes finished α values from
``out/grokking_lazy_rich_<size>.npz``; ``plot(result, out)`` draws
``grokking_lazy_rich_fig1.png`` and ``grokking_lazy_rich_alpha.png``.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from .. import dynamics, kernels
from ..models import grokking
from ._common import check_size, checkpoint, new_figure, rerun_saved, resume, save_figure

__all__ = ["CONFIGS", "THRESHOLD", "N_TEST", "make_problem", "first_below", "run", "plot", "load"]

THRESHOLD = 0.1  # on mean (f - y)^2
N_TEST = 1000

CONFIGS = {
    "smoke": dict(fig1=dict(d=16, p=96, n=64, epsilon=0.02, alpha=1.0, eta0=1.0, steps=6000,
                            record_every=20),
                  sweep=dict(d=16, p=72, n=64, epsilon=0.25, eta0=0.5, steps=4000,
                             record_every=10, alphas=(2.0 ** -4, 0.5))),
    "quick": dict(fig1=dict(d=40, p=220, n=200, epsilon=0.02, alpha=1.0, eta0=1.0, steps=40000,
                            record_every=50),
                  sweep=dict(d=40, p=180, n=200, epsilon=0.25, eta0=0.5, steps=40000,
                             record_every=20, alphas=tuple(2.0 ** k for k in range(-4, 4)))),
    "full": dict(fig1=dict(d=100, p=550, n=500, epsilon=0.02, alpha=1.0, eta0=1.0, steps=100000,
                           record_every=100),
                 sweep=dict(d=100, p=450, n=500, epsilon=0.25, eta0=0.5, steps=60000,
                            record_every=20, alphas=tuple(2.0 ** k for k in range(-5, 6)))),
}


def make_problem(d: int, p: int, n: int, seed: int = 0, n_test: int = N_TEST):
    """Data and initial weights (float32): β* (D,) with |β*|² = D, x (P, D) and x_test
    (n_test, D) ~ N(0, I/D), targets y = ½ (β*·x)², first-layer weights W0 (N, D) ~ N(0, 1)."""
    kb, kx, kt, kw = jax.random.split(jax.random.key(seed), 4)
    f32 = jnp.float32
    beta = jax.random.normal(kb, (d,), f32)
    beta = beta * jnp.sqrt(jnp.asarray(d, f32)) / jnp.linalg.norm(beta)
    x = jax.random.normal(kx, (p, d), f32) / d ** 0.5
    x_test = jax.random.normal(kt, (n_test, d), f32) / d ** 0.5
    w0 = jax.random.normal(kw, (n, d), f32)
    return dict(beta=beta, x=x, y=grokking.target(x, beta), x_test=x_test,
                y_test=grokking.target(x_test, beta), w0=w0)


def first_below(steps, values, threshold: float = THRESHOLD) -> float:
    """First entry of ``steps`` whose ``values`` is below ``threshold``; NaN if none."""
    below = np.flatnonzero(np.asarray(values) < threshold)
    return float(np.asarray(steps)[below[0]]) if below.size else float("nan")


def _train(cfg, prob, alpha):
    lr = cfg["eta0"] * cfg["n"] / alpha ** 2
    res = grokking.gradient_descent(grokking.stats(prob["w0"]), prob["x"], prob["y"],
                                    alpha=alpha, epsilon=cfg["epsilon"], learning_rate=lr,
                                    width=cfg["n"], steps=cfg["steps"],
                                    record_every=cfg["record_every"], x_test=prob["x_test"],
                                    y_test=prob["y_test"], beta=prob["beta"])
    return {"train": np.asarray(res.mse_train), "test": np.asarray(res.mse_test),
            "population": np.asarray(res.mse_population)}


def _linearised(cfg, prob, steps):
    """Gradient descent of the linearised network (initial empirical NTK) and the ridgeless
    initial-NTK kernel regression: MSEs on train and test at ``steps``, and the t = ∞ test MSE."""
    alpha, eps = cfg["alpha"], cfg["epsilon"]
    net = lambda w, x: grokking.apply(w, x, alpha, eps)  # noqa: E731
    k_tt = kernels.empirical_ntk(net, prob["w0"], prob["x"])
    k_st = kernels.empirical_ntk(net, prob["w0"], prob["x_test"], prob["x"])
    lr = cfg["eta0"] * cfg["n"] / alpha ** 2
    pred = dynamics.gradient_descent_mse(k_tt, prob["y"], learning_rate=lr)
    f_train, f_test = pred(steps=jnp.asarray(steps), k_test_train=k_st)  # centred: f_0 = 0
    y, yt = np.asarray(prob["y"], np.float64), np.asarray(prob["y_test"], np.float64)
    coef = np.linalg.solve(np.asarray(k_tt, np.float64), y)
    krr = np.mean((np.asarray(k_st, np.float64) @ coef - yt) ** 2)
    return {"lin_train": np.mean((np.asarray(f_train) - y) ** 2, axis=-1),
            "lin_test": np.mean((np.asarray(f_test) - yt) ** 2, axis=-1),
            "krr_test": np.asarray(krr)}


def _keys(cfg):
    """The pieces of a run: Fig. 1b and each alpha of the sweep."""
    return ["fig1"] + [f"alpha{a:.6g}" for a in cfg["sweep"]["alphas"]]


def run(size: str = "full", out: str | os.PathLike = "figures", *, seed: int = 0) -> dict:
    """Compute both figures at ``size``; finished pieces (Fig. 1b, each α of the sweep) are
    saved to and resumed from ``out/grokking_lazy_rich_<size>.npz``.

    Returns a dict: ``size``, ``config``, ``fig1`` (``steps`` (R,), ``train``, ``test``,
    ``population`` (R,) the network's MSEs, ``lin_train``, ``lin_test`` (R,) the linearised
    network's, ``krr_test`` the initial-NTK kernel regression test MSE, ``t_train``,
    ``t_test``), ``sweep`` (``alphas`` (A,), ``steps`` (R,), ``train``, ``test``, ``population``
    (A, R), ``t_train``, ``t_test``, ``grokking`` = t_test − t_train (A,), NaN where a loss
    never fell below ``THRESHOLD``), and ``data`` (the saved file).
    """
    cfg = CONFIGS[check_size(size)]
    os.makedirs(out, exist_ok=True)
    path = os.path.join(os.fspath(out), f"grokking_lazy_rich_{size}.npz")
    stamp = dict(seed=seed, config=repr(cfg))
    saved = resume(path, **stamp)
    done = {key: {name[len(key) + 1:]: v for name, v in saved.items()
                  if name.startswith(key + "_")} for key in _keys(cfg) if f"{key}_train" in saved}
    c1, cs = cfg["fig1"], cfg["sweep"]
    steps1 = np.arange(0, c1["steps"] + 1, c1["record_every"])
    steps_s = np.arange(0, cs["steps"] + 1, cs["record_every"])
    todo = [k for k in _keys(cfg) if k not in done]
    prob1 = make_problem(c1["d"], c1["p"], c1["n"], seed) if "fig1" in todo else None
    prob_s = make_problem(cs["d"], cs["p"], cs["n"], seed + 1) if len(todo) > ("fig1" in todo) \
        else None
    for key in tqdm(todo, desc="grokking_lazy_rich", unit="run", disable=not todo):
        if key == "fig1":
            done[key] = _train(c1, prob1, c1["alpha"]) | _linearised(c1, prob1, steps1)
        else:
            done[key] = _train(cs, prob_s, float(key[5:]))
        checkpoint(path, {f"{k}_{name}": v for k, r in done.items() for name, v in r.items()},
                   **stamp)

    fig1 = {"steps": steps1, **done["fig1"]}
    fig1["t_train"] = first_below(steps1, fig1["train"])
    fig1["t_test"] = first_below(steps1, fig1["test"])
    keys = _keys(cfg)[1:]
    sweep = {"alphas": np.asarray(cs["alphas"]), "steps": steps_s}
    for name in ("train", "test", "population"):
        sweep[name] = np.stack([done[k][name] for k in keys])
    sweep["t_train"] = np.array([first_below(steps_s, v) for v in sweep["train"]])
    sweep["t_test"] = np.array([first_below(steps_s, v) for v in sweep["test"]])
    sweep["grokking"] = sweep["t_test"] - sweep["t_train"]
    return {"size": size, "config": cfg, "fig1": fig1, "sweep": sweep, "data": path}


def load(path: str | os.PathLike, size: str) -> dict:
    """Rebuild ``run``'s result from its saved file without computing anything new (every
    piece of ``CONFIGS[size]`` must be in the file)."""
    keys = _keys(CONFIGS[check_size(size)])
    return rerun_saved(path, run, size, {k: f"{k}_train" for k in keys},
                       "grokking_lazy_rich.load")


def _logx(steps):
    return np.maximum(steps, 1)


def plot(result: dict, out: str | os.PathLike = "figures") -> list[str]:
    """Draw ``grokking_lazy_rich_fig1.png`` (train/test MSE of the network, of the linearised
    network and the initial-NTK regression level at α = 1) and ``grokking_lazy_rich_alpha.png``
    (train/test MSE across α, and the grokking amount t_test − t_train against α)."""
    f1, sw = result["fig1"], result["sweep"]
    c1, cs = result["config"]["fig1"], result["config"]["sweep"]
    fig, axes = new_figure(1, 1, panel=(5.2, 3.8))
    ax = axes[0, 0]
    t = _logx(f1["steps"])
    ax.plot(t, f1["train"], color="tab:blue", label="network, train")
    ax.plot(t, f1["test"], color="tab:red", label="network, test")
    ax.plot(t, f1["lin_train"], color="tab:blue", ls="--", label="linearised, train")
    ax.plot(t, f1["lin_test"], color="tab:red", ls="--", label="linearised, test")
    ax.axhline(float(f1["krr_test"]), color="k", lw=1.2, label="initial-NTK regression, test")
    ax.axhline(THRESHOLD, color="0.6", lw=0.8, ls=":")
    for name, col in (("t_train", "tab:blue"), ("t_test", "tab:red")):
        if np.isfinite(f1[name]):
            ax.axvline(f1[name], color=col, lw=0.7, ls=":")
    ax.set(xscale="log", yscale="log", xlabel="step", ylabel="mean (f − y)²")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(f"α = {c1['alpha']:g}, ε = {c1['epsilon']:g}, D = {c1['d']}, P = {c1['p']}, "
                 f"N = {c1['n']}, lr = {c1['eta0']:g}·N/α²\nt_train = {f1['t_train']:.0f}, "
                 f"t_test = {f1['t_test']:.0f} (first MSE < {THRESHOLD:g})", fontsize="small")
    fig.suptitle("Grokking without regularisation (Kumar et al. 2024, Fig. 1b)",
                 fontsize="medium")
    paths = [save_figure(fig, out, "grokking_lazy_rich_fig1.png")]

    fig, axes = new_figure(1, 3, panel=(4.4, 3.6))
    alphas = sw["alphas"]
    colors = [_color(i, len(alphas)) for i in range(len(alphas))]
    t = _logx(sw["steps"])
    for i, a in enumerate(alphas):
        axes[0, 0].plot(t, sw["train"][i], color=colors[i], label=f"α = {a:g}")
        axes[0, 1].plot(t, sw["test"][i], color=colors[i], label=f"α = {a:g}")
    for ax, name in ((axes[0, 0], "train"), (axes[0, 1], "test")):
        ax.axhline(THRESHOLD, color="0.6", lw=0.8, ls=":")
        ax.set(xscale="log", yscale="log", xlabel="step", ylabel=f"{name} mean (f − y)²",
               title=f"{name} error")
        ax.grid(alpha=0.3)
    axes[0, 1].legend(fontsize="x-small", ncols=2)
    ax = axes[0, 2]
    ok = np.isfinite(sw["grokking"])
    ax.plot(alphas[ok], np.maximum(sw["grokking"][ok], 1), "o-", color="k",
            label="t_test − t_train")
    ax.plot(alphas, sw["t_train"], "s--", color="tab:blue", ms=4, label="t_train")
    ax.plot(alphas[ok], sw["t_test"][ok], "^--", color="tab:red", ms=4, label="t_test")
    if (~ok).any():
        ax.plot(alphas[~ok], np.full((~ok).sum(), cs["steps"]), "v", color="tab:red",
                label=f"test never < {THRESHOLD:g} (≥ {cs['steps']})")
    ax.set(xscale="log", yscale="log", xlabel="α", ylabel="steps", title="grokking amount")
    ax.set_xscale("log", base=2)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small")
    fig.suptitle(f"Lazy → rich: larger α delays generalisation (Kumar et al. 2024, Fig. 3a); "
                 f"ε = {cs['epsilon']:g}, D = {cs['d']}, P = {cs['p']}, N = {cs['n']}, "
                 f"lr = {cs['eta0']:g}·N/α²", fontsize="medium")
    paths.append(save_figure(fig, out, "grokking_lazy_rich_alpha.png"))
    return paths


def _color(i: int, n: int):
    """Colour ``i`` of ``n`` along the viridis map (RGBA)."""
    from matplotlib import colormaps

    return colormaps["viridis"](i / max(n - 1, 1))
