"""Lazy vs rich training: the output scale alpha controls the distance travelled (Chizat, Oyallon &
Bach 2019, "On lazy training in differentiable programming", arXiv 1812.07956, Thm. 2.3 and
Fig. 1-2).

Chizat et al. train the centred, scaled model alpha [h(theta) - h(theta0)] on the objective
F_alpha(theta) = R(alpha [h(theta) - h(theta0)]) / alpha^2. Gradient descent with step eta on
F_alpha is gradient descent with learning rate eta / alpha^2 on R(alpha [h - h0]): that is what we
run, with R = the loss of ``dynamics.train`` (1/2 mean over the m training targets of the squared
error). At initialisation the scaled model's NTK is alpha^2 Theta_0 (Theta_0 the NTK of h), so
the function-space step (eta / alpha^2) alpha^2 Theta_0 / m does not depend on alpha: we fix
eta lambda_0 = ``ETA_LAMBDA`` (lambda_0 = lambda_max(Theta_0) / m) and a horizon of ``steps``
steps for every alpha. The linearised model alpha J(theta0) (theta - theta0) then has one
function-space trajectory for all alpha (the kernel-limit recursion of
``dynamics.gradient_descent_mse``).

Thm. 2.3 (finite horizon, smooth h): ||theta_T - theta0|| = O(1/alpha), the distance to the
linearised model's parameters O(1/alpha^2), and the function-space gap to the linearised model
O(1/alpha); hence the relative change of the tangent kernel ||Theta_T - Theta_0|| / ||Theta_0|| =
O(1/alpha). Large alpha is lazy (kernel regime), small alpha rich (the kernel moves by O(1)).

The scaled model is ``dynamics.Centered(h)``; h: a one-hidden-layer tanh network (NTK
parameterization, biases with b_std = 0.1; smooth, as the theorem needs) of width ``width`` on
m = 8 inputs on the sphere of radius sqrt(d), d = 4, target y = sin(pi x_1 / 2) + x_2 x_3 / 2;
32 test inputs. All alphas train in one vmapped ``dynamics.train`` program (alpha and theta0
ride in the parameters behind ``stop_gradient``; the learning rates eta / alpha^2 in an
``optax.inject_hyperparams`` state), float64. The exponents are
fitted with ``compare.fit_power_law`` over alpha >= ``alpha_fit``.

``run(size)`` (smoke: seconds; quick: under a minute on two CPU cores; full: a wider net, a longer
horizon, a finer alpha grid) saves to and resumes from ``out/lazy_vs_rich_<size>.npz``;
``plot(result, out)`` draws ``lazy_vs_rich.png``.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import compare, dynamics, kernels, nets
from ._common import check_size, checkpoint, new_figure, resume, save_figure, saved_stamp

__all__ = ["CONFIGS", "ETA_LAMBDA", "IN_DIM", "N_TRAIN", "N_TEST", "make_net", "problem",
           "train_alphas", "measures", "fits", "run", "plot", "load"]

ETA_LAMBDA = 0.5
IN_DIM = 4
N_TRAIN = 8
N_TEST = 32

CONFIGS = {
    "smoke": dict(width=16, steps=60, alphas=tuple(np.geomspace(0.3, 300, 7)), alpha_fit=10.0),
    "quick": dict(width=64, steps=300, alphas=tuple(np.geomspace(0.03, 300, 17)),
                  alpha_fit=10.0),
    "full": dict(width=256, steps=2000, alphas=tuple(np.geomspace(0.01, 1000, 31)),
                 alpha_fit=10.0),
}


def make_net(width: int):
    """h: ``nets.mlp(width, 1, Tanh(), b_std=0.1)`` (NTK parameterization, one output)."""
    return nets.mlp(width, 1, nets.Tanh(), b_std=0.1)


def problem(width: int, key):
    """``(net, theta0, x, y, x_test)``: inputs on the sphere of radius sqrt(IN_DIM), targets
    sin(pi x_1 / 2) + x_2 x_3 / 2 (N_TRAIN, 1), float64 (call under ``jax.enable_x64``)."""
    kx, kt, kp = jax.random.split(key, 3)

    def sphere(k, m):
        z = jax.random.normal(k, (m, IN_DIM), jnp.float64)
        return z / jnp.linalg.norm(z, axis=1, keepdims=True) * np.sqrt(IN_DIM)

    x, x_test = sphere(kx, N_TRAIN), sphere(kt, N_TEST)
    y = jnp.sin(np.pi * x[:, :1] / 2) + x[:, 1:2] * x[:, 2:3] / 2
    net = make_net(width)
    theta0 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), net.init(kp, x.shape))
    return net, theta0, x, y, x_test


def train_alphas(h, theta0, x, y, x_test, alphas, steps: int, learning_rate: float, *,
                 ntk: bool = True, progress: bool = False):
    """Gradient descent of ``dynamics.Centered(h)`` at learning rates ``learning_rate / alpha^2``
    for every alpha, ``steps`` steps, in one vmapped ``dynamics.train`` (records every step;
    with ``ntk`` the empirical NTK at steps 0 and ``steps``). Returns the ``TrainResult``."""
    alphas = np.asarray(alphas, np.float64)
    if alphas.ndim != 1 or alphas.size == 0 or not np.all(np.isfinite(alphas) & (alphas > 0)):
        raise ValueError(f"lazy_vs_rich.train_alphas: alphas must be a non-empty 1-D sequence of "
                         f"positive scales, got {alphas!r}.")
    model = dynamics.Centered(h)
    params = model.init_params(theta0, alphas)
    opt = optax.inject_hyperparams(optax.sgd)(learning_rate=1.0)
    state = jax.vmap(opt.init)(params)
    state.hyperparams["learning_rate"] = jnp.asarray(learning_rate / alphas ** 2,
                                                     params["alpha"].dtype)
    return dynamics.train(model, params, x, y, opt, steps, x_test=x_test,
                          opt_state=state, ntk_at=(0, steps) if ntk else (), ensemble=True,
                          on_nonfinite="stop", progress=progress)


def _norm(tree):
    return np.sqrt(sum(np.sum(np.asarray(a).reshape(a.shape[0], -1) ** 2, axis=1)
                       for a in jax.tree.leaves(tree)))


def measures(res, res_lin, theta0, alphas) -> dict:
    """The quantities of Thm. 2.3 per alpha (A,) from the runs of the model and of its
    linearisation: ``distance`` ||theta_T - theta0||, ``param_gap`` ||theta_T - theta_lin_T||,
    ``kernel_change`` ||Theta_T - Theta_0||_F / ||Theta_0||_F, ``function_gap`` the largest over
    the recorded steps of the RMS difference of the two models' predictions on the train and
    test inputs, ``loss`` (A, T + 1) and ``loss_lin`` (A, T + 1), ``nonfinite_step`` (A,)."""
    theta = res.params["theta"]
    diff = jax.tree.map(lambda a, b: a - b, theta, theta0)
    gap = jax.tree.map(lambda a, b: a - b, theta, res_lin.params["theta"])
    ntk = np.asarray(res.ntk)
    kchange = (np.linalg.norm(ntk[:, -1] - ntk[:, 0], axis=(-1, -2))
               / np.linalg.norm(ntk[:, 0], axis=(-1, -2)))
    pred = np.concatenate([np.asarray(res.pred_train), np.asarray(res.pred_test)], axis=2)
    pred_lin = np.concatenate([np.asarray(res_lin.pred_train), np.asarray(res_lin.pred_test)],
                              axis=2)
    fgap = np.sqrt(np.mean((pred - pred_lin) ** 2, axis=(2, 3))).max(axis=1)
    return {"alphas": np.asarray(alphas, np.float64), "distance": _norm(diff),
            "param_gap": _norm(gap), "kernel_change": kchange, "function_gap": fgap,
            "loss": np.asarray(res.loss), "loss_lin": np.asarray(res_lin.loss),
            "nonfinite_step": np.asarray(res.nonfinite_step)}


_FIT_KEYS = {"distance": -1.0, "kernel_change": -1.0, "function_gap": -1.0, "param_gap": -2.0}


def fits(result: dict, alpha_fit: float) -> dict:
    """``compare.fit_power_law`` of each measure against alpha over alpha >= ``alpha_fit``:
    name -> PowerLaw (theory: exponents -1, -1, -1 and -2 for ``param_gap``)."""
    sel = result["alphas"] >= alpha_fit
    return {k: compare.fit_power_law(result["alphas"][sel], result[k][sel]) for k in _FIT_KEYS}


def _stamp(cfg, seed):
    return dict(seed=seed, steps=cfg["steps"], width=cfg["width"],
                alphas=np.asarray(cfg["alphas"], np.float64))


def run(size: str = "full", out: str | os.PathLike = "figures", *, seed: int = 0) -> dict:
    """Train the scaled model and its linearisation for every alpha of ``CONFIGS[size]``;
    the result is saved to and resumed from ``out/lazy_vs_rich_<size>.npz``. Returns the dict of
    ``measures`` plus ``size``, ``config``, ``lam0``, ``learning_rate``, ``fits`` (name ->
    PowerLaw), ``data`` (the file)."""
    cfg = CONFIGS[check_size(size)]
    alphas = np.asarray(cfg["alphas"], np.float64)
    os.makedirs(out, exist_ok=True)
    data = os.path.join(os.fspath(out), f"lazy_vs_rich_{size}.npz")
    stamp = _stamp(cfg, seed)
    result = resume(data, **stamp)
    if not result:
        with jax.enable_x64(True):
            net, theta0, x, y, x_test = problem(cfg["width"], jax.random.key(seed))
            ntk0 = kernels.empirical_ntk(net, theta0, x)
            lam0 = 2.0 / float(dynamics.max_learning_rate(ntk0, y.size))
            lr = ETA_LAMBDA / lam0
            res = train_alphas(net, theta0, x, y, x_test, alphas, cfg["steps"], lr)
            res_lin = train_alphas(dynamics.linearize(net, theta0), theta0, x, y, x_test,
                                   alphas, cfg["steps"], lr, ntk=False)
            result = measures(res, res_lin, theta0, alphas)
        result |= {"lam0": np.asarray(lam0), "learning_rate": np.asarray(lr)}
        checkpoint(data, result, **stamp)
    return {**result, "size": size, "config": dict(cfg), "data": data,
            "fits": fits(result, cfg["alpha_fit"])}


def load(path: str | os.PathLike, size: str) -> dict:
    """Rebuild ``run``'s result from its saved file (which must match ``CONFIGS[size]``)."""
    seed = int(saved_stamp(path)["seed"])
    if not resume(path, **_stamp(CONFIGS[check_size(size)], seed)):
        raise ValueError(f"lazy_vs_rich.load: {path} was not made at size {size!r}.")
    return run(size, os.path.dirname(os.fspath(path)) or ".", seed=seed)


_LABELS = {"distance": "‖θ_T − θ0‖", "kernel_change": "‖Θ_T − Θ0‖ / ‖Θ0‖",
           "function_gap": "max_t RMS |g_α − g_lin|", "param_gap": "‖θ_T − θ_lin,T‖"}


def plot(result: dict, out: str | os.PathLike = "figures") -> list[str]:
    """Draw ``lazy_vs_rich.png``: the four measures against alpha (log-log, with the fitted power
    laws over alpha >= alpha_fit and their exponents ± s.e.), and the training losses of a few
    alphas against the linearised model's."""
    fig, axes = new_figure(1, 3, panel=(4.6, 3.6))
    alphas, fitted = result["alphas"], result["fits"]
    a_fit = result["config"]["alpha_fit"]
    for ax, names in ((axes[0, 0], ("distance", "kernel_change")),
                      (axes[0, 1], ("function_gap", "param_gap"))):
        for name, color in zip(names, ("tab:blue", "tab:orange"), strict=True):
            fit = fitted[name]
            ax.loglog(alphas, result[name], "o", color=color, ms=4,
                      label=f"{_LABELS[name]}: slope {fit.exponent:.4f} ± {fit.stderr:.4f} "
                            f"(theory {_FIT_KEYS[name]:g})")
            sel = alphas >= a_fit
            ax.loglog(alphas[sel], fit.prefactor * alphas[sel] ** fit.exponent, "-",
                      color=color, lw=1)
        ax.axvspan(alphas.min(), a_fit, color="0.92", zorder=0)
        ax.set_xlabel("output scale α")
        ax.legend(fontsize="x-small")
    axes[0, 0].set_title("distance travelled and kernel change", fontsize="medium")
    axes[0, 1].set_title("gap to the linearised model", fontsize="medium")
    ax = axes[0, 2]
    picks = np.unique(np.round(np.linspace(0, len(alphas) - 1, 5)).astype(int))
    for i in picks:
        loss = np.where(np.isfinite(result["loss"][i]), result["loss"][i], np.nan)
        ax.semilogy(loss, lw=1, label=f"α = {alphas[i]:.3g}")
    ax.semilogy(result["loss_lin"][0], "k--", lw=1.2, label="linearised (any α)")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title("training loss", fontsize="medium")
    ax.legend(fontsize="x-small")
    cfg = result["config"]
    fig.suptitle(f"Lazy vs rich (Chizat et al. 2019): α[h(θ) − h(θ0)], tanh net width "
                 f"{cfg['width']}, {cfg['steps']} GD steps at ηλ0 = {ETA_LAMBDA} (lr η/α²); "
                 f"shaded: α < {a_fit:g}, not fitted", fontsize="medium")
    return [save_figure(fig, out, "lazy_vs_rich.png")]
