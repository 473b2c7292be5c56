"""Beyond iid weights: orthogonal, low-rank and sparse ensembles share the Gaussian NNGP, but not
its finite-width fluctuations (Nait Saada, Naderi & Tanner 2024; Day, Kahn & Roberts 2023).

Left panels (convergence): an erf network ``Dense(n) -> erf -> Dense(n, E) -> erf -> Dense(1)``
(w_std = 1.5, b_std = 0.1) on points of the unit circle; the hidden-to-hidden layer uses ensemble E
("gaussian", "orthogonal", "low_rank" with rank n/4, "sparse" with density 1/4), the first layer
(fan-in d = 2) and the readout (rank <= 1) are Gaussian (see ``make_net``). For every width we draw
several initialisations and compare the empirical NNGP (``kernels.empirical_nngp``, the expectation
over the readout) and the empirical NTK with the single analytic limit ``kernels.analytic``, which
ignores the ensemble. We plot the relative Frobenius deviation of one network (fluctuations, slope
-1/2) and of the mean over initialisations (bias + fluctuations / sqrt(seeds)), with fitted
exponents. The NTK panel checks numerically that the NTK limit at initialisation is the Gaussian one
too (the theorem covers the NNGP only).

Right panel (fluctuations vs depth): a deep tanh network at criticality (w_std = 1, no biases)
of width n, every layer from ensemble E, on one input with ||x||² = n. For K̂_l = ||z_l||² / n
(the diagonal kernel of layer l's pre-activations) we plot ``n Var(K̂_l) / E[K̂_l]²`` over
initialisations against depth l, with the Gaussian leading-order prediction 2 + V_l / K_l²
(four-point vertex recursion of Roberts, Yaida & Hanin 2022, ch. 4-5: V_{l+1} = χ_∥² V_l +
<σ⁴> - <σ²>², V_1 = 0; ``finite.vertex_recursion``). Gaussian weights: the normalised variance
grows linearly in depth (≈ 2/3 per layer). Day et al. predict depth-independent leading-order
fluctuations for orthogonal weights.

``run(size)`` computes the numbers (smoke: seconds; quick: under a minute on two CPU cores: the
four ensembles of one width share one compiled program, and so do the four fluctuation chains),
resuming finished pieces from ``out/beyond_iid_<size>.npz``; ``plot(result, out)`` draws
``beyond_iid.png``.
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from .. import compare, finite, kernels, nets
from ._common import check_size, checkpoint, circle, new_figure, resume, save_figure

__all__ = ["CONFIGS", "ENSEMBLES", "W_STD", "B_STD", "make_net", "fluctuation_net_layer",
           "gaussian_fluctuation_theory", "run", "plot"]

ENSEMBLES = {
    "gaussian": dict(weights="gaussian"),
    "orthogonal": dict(weights="orthogonal"),
    "low_rank": dict(weights="low_rank", rank=0.25),
    "sparse": dict(weights="sparse", density=0.25),
}
W_STD, B_STD = 1.5, 0.1

CONFIGS = {
    "smoke": dict(widths=(16, 64, 256), n_seeds=2, n_angles=4, fl_width=16, fl_depth=6,
                  fl_samples=100),
    "quick": dict(widths=(64, 256, 1024), n_seeds=8, n_angles=6, fl_width=64, fl_depth=16,
                  fl_samples=300),
    "full": dict(widths=(64, 128, 256, 512, 1024, 2048, 4096), n_seeds=32, n_angles=9,
                 fl_width=128, fl_depth=80, fl_samples=4000),
}


def make_net(width: int, ensemble: str = "gaussian"):
    """``Dense(width) -> erf -> Dense(width, E) -> erf -> Dense(1)`` (NTK parameterization,
    w_std = 1.5, b_std = 0.1), E = ``ENSEMBLES[ensemble]``. Only the hidden-to-hidden layer,
    whose fan-in and fan-out both grow, uses E: the first layer's fan-in is the input dimension
    and the readout's rank is at most 1, so a low-rank readout is ``c u`` with one Gaussian
    scale c (``||W||² ~ n χ²_1``), which keeps the NNGP covariance but makes the output and the
    NTK non-Gaussian / non-concentrating at any width."""
    kw = dict(w_std=W_STD, b_std=B_STD)
    return nets.serial(nets.Dense(width, **kw), nets.Erf(),
                       nets.Dense(width, **kw, **ENSEMBLES[ensemble]), nets.Erf(),
                       nets.Dense(1, **kw))


def fluctuation_net_layer(width: int, ensemble: str):
    """One layer of the fluctuation experiment: ``Dense(width, w_std=1, no bias, E)``."""
    return nets.Dense(width, w_std=1.0, b_std=None, **ENSEMBLES[ensemble])


@functools.partial(jax.jit, static_argnames=("nets_",))
def _kernels(nets_, keys, x):
    """Empirical NNGP and NTK (two arrays (E, S, n, n)) of each net of ``nets_`` (E specs, e.g.
    the ensembles of one width: one compiled program) initialised with each of its keys
    ``keys[e]`` (E, S)."""

    def one(net, key):
        params = net.init(key, x.shape)
        return kernels.empirical_nngp(net, params, x), kernels.empirical_ntk(net, params, x)

    out = [jax.vmap(functools.partial(one, net))(k) for net, k in zip(nets_, keys, strict=True)]
    return jnp.stack([o[0] for o in out]), jnp.stack([o[1] for o in out])


@functools.partial(jax.jit, static_argnames=("layers", "depth"))
def _norms(layers, keys, x, depth):
    """K̂_l = ||z_l||² / n for l = 1..depth of the tanh chain z_{l+1} = layer(tanh(z_l)), z_1 =
    layer(x), a fresh ``layer.init`` per layer and key, for each layer spec of ``layers`` (E,)
    with its keys ``keys[e]`` (E, S): (E, S, depth), one compiled program."""

    def chain(layer, key):
        def step(h, l):
            z = layer.apply(layer.init(jax.random.fold_in(key, l), h.shape, h.dtype), h)
            return jnp.tanh(z), jnp.mean(z**2)

        return jax.lax.scan(step, x, jnp.arange(depth))[1]

    return jnp.stack([jax.vmap(functools.partial(chain, layer))(k)
                      for layer, k in zip(layers, keys, strict=True)])


def gaussian_fluctuation_theory(depth: int, k1: float = 1.0):
    """Leading-order ``n Var(K̂_l) / K_l² = 2 + V_l / K_l²`` for iid Gaussian weights, tanh,
    C_W = 1, C_b = 0, l = 1..depth: the kernel K_l and four-point vertex V_l of Roberts, Yaida &
    Hanin (2022, ch. 4-5), ``finite.vertex_recursion``, with K_1 = ``k1``, V_1 = 0. Returns
    (K (depth,), 2 + V/K² (depth,))."""
    rec = finite.vertex_recursion(nets.Tanh(), depth, c_w=1.0, c_b=0.0, k1=k1)
    return np.asarray(rec.kernel), 2 + np.asarray(rec.kurtosis_coefficient)


def run(size: str = "full", out: str | os.PathLike = "figures", *, seed: int = 0) -> dict:
    """Compute both experiments at ``size``; every (ensemble, width) piece is saved to and
    resumed from ``out/beyond_iid_<size>.npz``.

    Returns a dict: ``size``, ``config``, ``ensembles``, ``widths`` (W,), ``limit_nngp``,
    ``limit_ntk`` (A, A), ``dev`` {(ensemble, kind): (W, S) per-network deviations},
    ``mean_dev`` {(ensemble, kind): (W,) deviation of the mean kernel}, ``fits``
    {(ensemble, kind): PowerLaw of the per-network deviations}, ``mean_fits`` (same for the
    mean), ``fl_depths`` (D,), ``fl_ratio`` {ensemble: (D,) n Var(K̂_l)/E[K̂_l]²},
    ``fl_stderr`` {ensemble: (D,)}, ``fl_theory`` (D,) the Gaussian prediction, ``data``.
    """
    cfg = CONFIGS[check_size(size)]
    x = jnp.asarray(circle(np.linspace(0, np.pi, cfg["n_angles"])))
    limit = kernels.analytic(make_net(1), x)
    lim = {"nngp": np.asarray(limit.nngp), "ntk": np.asarray(limit.ntk)}
    os.makedirs(out, exist_ok=True)
    data = os.path.join(os.fspath(out), f"beyond_iid_{size}.npz")
    stamp = dict(seed=seed, config=repr(cfg))
    done = resume(data, **stamp)
    key = jax.random.key(seed)
    save = lambda: checkpoint(data, done, **stamp)  # noqa: E731
    names = list(ENSEMBLES)
    for width in tqdm(cfg["widths"], desc="beyond_iid: widths", leave=False):
        if all(f"nngp_{ens}_{width}" in done for ens in names):
            continue
        keys = jnp.stack([jax.random.split(jax.random.fold_in(jax.random.fold_in(key, e), width),
                                           cfg["n_seeds"]) for e in range(len(names))])
        nngp, ntk = _kernels(tuple(make_net(width, ens) for ens in names), keys, x)
        for e, ens in enumerate(names):
            done[f"nngp_{ens}_{width}"], done[f"ntk_{ens}_{width}"] = map(np.asarray,
                                                                          (nngp[e], ntk[e]))
        save()
    if not all(f"fluctuations_{ens}" in done for ens in names):
        n = cfg["fl_width"]
        keys = jnp.stack([jax.random.split(jax.random.fold_in(key, 100 + e), cfg["fl_samples"])
                          for e in range(len(names))])
        k = _norms(tuple(fluctuation_net_layer(n, ens) for ens in names), keys,
                   jnp.ones((1, n), x.dtype), cfg["fl_depth"])
        done.update({f"fluctuations_{ens}": np.asarray(k[e]) for e, ens in enumerate(names)})
        save()
    widths = np.asarray(cfg["widths"])
    rel = lambda k, kind: np.linalg.norm(k - lim[kind], axis=(-2, -1)) / np.linalg.norm(lim[kind])
    dev, mean_dev, fits, mean_fits = {}, {}, {}, {}
    for ens in ENSEMBLES:
        for kind in ("nngp", "ntk"):
            ks = np.stack([done[f"{kind}_{ens}_{w}"] for w in widths]).astype(np.float64)
            dev[ens, kind] = rel(ks, kind)
            mean_dev[ens, kind] = rel(ks.mean(1), kind)
            fits[ens, kind] = compare.fit_power_law(widths, dev[ens, kind])
            mean_fits[ens, kind] = compare.fit_power_law(widths, mean_dev[ens, kind])
    n, s = cfg["fl_width"], cfg["fl_samples"]
    fl_ratio, fl_se = {}, {}
    for ens in ENSEMBLES:
        k = done[f"fluctuations_{ens}"].astype(np.float64)  # (S, D)
        mean, var = k.mean(0), k.var(0, ddof=1)
        fl_ratio[ens] = n * var / mean**2
        # Standard error of a sample variance: sqrt((m4 - var²) / S), m4 the 4th central moment.
        m4 = np.mean((k - mean) ** 4, 0)
        fl_se[ens] = n * np.sqrt(np.maximum(m4 - var**2, 0) / s) / mean**2
    _, theory = gaussian_fluctuation_theory(cfg["fl_depth"])
    return {"size": size, "config": dict(cfg), "ensembles": list(ENSEMBLES), "widths": widths,
            "limit_nngp": lim["nngp"], "limit_ntk": lim["ntk"], "dev": dev,
            "mean_dev": mean_dev, "fits": fits, "mean_fits": mean_fits,
            "fl_depths": np.arange(1, cfg["fl_depth"] + 1), "fl_ratio": fl_ratio,
            "fl_stderr": fl_se, "fl_theory": theory, "data": data}


def plot(result: dict, out: str | os.PathLike = "figures") -> list[str]:
    """Draw ``beyond_iid.png``: NNGP and NTK deviations vs width per ensemble (per network:
    filled markers and fitted line; mean over initialisations: open markers), and the
    normalised variance of the diagonal kernel vs depth."""
    fig, axes = new_figure(1, 3, panel=(4.3, 3.6))
    widths = result["widths"]
    for a, kind in enumerate(("nngp", "ntk")):
        ax = axes[0, a]
        for i, ens in enumerate(result["ensembles"]):
            c = f"C{i}"
            dev = result["dev"][ens, kind]
            fit, mfit = result["fits"][ens, kind], result["mean_fits"][ens, kind]
            ax.plot(widths, dev.mean(1), "o", color=c, ms=4,
                    label=f"{ens}: {fit.exponent:.2f}±{fit.stderr:.2f}")
            ax.plot(widths, fit.prefactor * widths.astype(float) ** fit.exponent, color=c, lw=1)
            ax.plot(widths, result["mean_dev"][ens, kind], "s", mfc="none", color=c, ms=4,
                    label=f"  mean: {mfit.exponent:.2f}±{mfit.stderr:.2f}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("width n")
        ax.set_ylabel(f"‖K_n − K_∞‖_F / ‖K_∞‖_F ({kind.upper()})")
        ax.set_title(f"{kind.upper()} vs the Gaussian limit: one net (●), "
                     f"mean of {result['config']['n_seeds']} (□)", fontsize="small")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="x-small", ncols=2, title="fitted exponent", title_fontsize="x-small")
    ax = axes[0, 2]
    depths = result["fl_depths"]
    for i, ens in enumerate(result["ensembles"]):
        ax.errorbar(depths, result["fl_ratio"][ens], yerr=result["fl_stderr"][ens], fmt=".-",
                    color=f"C{i}", ms=3, lw=0.8, capsize=0, label=ens)
    ax.plot(depths, result["fl_theory"], "k--", lw=1.2, label="Gaussian theory 2 + V/K²")
    cfg = result["config"]
    ax.set_xlabel("layer l")
    ax.set_ylabel("n Var(K̂_l) / E[K̂_l]²")
    ax.set_title(f"critical tanh, width {cfg['fl_width']}, {cfg['fl_samples']} inits",
                 fontsize="small")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small")
    fig.suptitle("Weight ensembles share the Gaussian NNGP/NTK limit (Nait Saada et al. 2024) "
                 "but not its fluctuations (Day et al. 2023)", fontsize="medium")
    return [save_figure(fig, out, "beyond_iid.png")]
