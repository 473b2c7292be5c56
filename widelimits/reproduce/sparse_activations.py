"""Sparsity-inducing activations at the edge of chaos: an unstable variance map, and clipping as the
cure (Price et al. 2024, "Deep neural network initialization with sparsity inducing
activations", ICLR; their Figs. 2-4 in spirit).

For the shifted ReLU ``max(0, x - tau)`` (ReLU_tau) and soft thresholding
``sign(x) max(0, |x| - tau)`` (ST_tau) we pick tau so that a fraction ``SPARSITY`` of the
pre-activations at variance q* = 1 is zeroed, and the edge-of-chaos initialisation with that
fixed point (``signal.edge_of_chaos_init``: sw2 = 1 / E phi'^2, sb2 = q* - sw2 E phi^2). The
variance map V(q) = sw2 E phi(sqrt(q) z)^2 + sb2 then touches the diagonal at q* with slope 1
(phi phi'' = 0 at the kinks, so V'(q*) = chi_1 = 1) and lies above it on both sides: q* is
attracting from below and repelling from above -- no stable fixed point, and any upward
fluctuation of a finite network's variance grows through depth. Clipping the magnitude at m
(CReLU_{tau,m}, CST_{tau,m}) adds a kink where phi = m, so V'(q*) = 1 - sw2 m p_{q*}(tau + m) < 1
(p_q the N(0, q) density; for CST twice that): a stable fixed point.

Moments are exact (truncated-Gaussian formulas in ``widelimits.signal``); the result also
records how far ``kernels.dual``'s Hermite expansion (and 1-D Gauss-Hermite quadrature) is from
them for these kinked functions. Finite-width check: random networks of width N at these
initialisations, started at q^0 = q*, with the empirical variance q^l = mean_i h_i^2 per layer.

``run(size)`` (smoke: seconds; quick: < 1 min on two CPU cores) saves to
``out/sparse_activations_<size>.npz`` and resumes; ``plot`` draws ``sparse_activations.png``.
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import norm

from .. import kernels, signal
from ._common import check_size, checkpoint, new_figure, resume, save_figure

__all__ = ["CONFIGS", "SPARSITY", "Q_STAR", "CLIP", "activations", "variance_maps", "simulate",
           "run", "plot"]

SPARSITY = 0.8
Q_STAR = 1.0
CLIP = 1.0  # clipping level m, in units of sqrt(q*)

CONFIGS = {
    "smoke": dict(n_q=41, depth=12, width=128, seeds=4, start=(0.7, 1.3)),
    "quick": dict(n_q=201, depth=60, width=500, seeds=12, start=(0.5, 1.5)),
    "full": dict(n_q=801, depth=200, width=2000, seeds=64, start=(0.5, 1.5)),
}


def activations(sparsity: float = SPARSITY, clip: float = CLIP, q_star: float = Q_STAR) -> dict:
    """The four activations of the figure, keyed by name: tau chosen so that a fraction
    ``sparsity`` of N(0, q*) pre-activations is zeroed (ReLU_tau: Phi(tau/sqrt(q*)) = s;
    ST_tau: 2 Phi(tau/sqrt(q*)) - 1 = s), clipped ones at m = ``clip`` sqrt(q*)."""
    r = np.sqrt(q_star)
    t_relu = float(norm.ppf(sparsity) * r)
    t_st = float(norm.ppf((1 + sparsity) / 2) * r)
    m = float(clip * r)
    return {"ReLU_τ": signal.shifted_relu(t_relu), "ST_τ": signal.soft_threshold(t_st),
            "CReLU_τ,m": signal.shifted_relu(t_relu, m), "CST_τ,m": signal.soft_threshold(t_st, m)}


@functools.partial(jax.jit, static_argnums=4)
def _maps_program(acts, qs, q_star, starts, depth):
    """Everything ``variance_maps`` needs, for a tuple of activations, in one compiled program."""
    out = []
    for act in acts:
        sw2, sb2 = signal.edge_of_chaos_init(act, q_star)

        def step(q, _, act=act, sw2=sw2, sb2=sb2):
            q = signal.length_map(act, jnp.where(jnp.isfinite(q), q, 0.0), sw2, sb2)
            q = jnp.where(q > 1e6, jnp.inf, q)
            return q, q

        _, path = jax.lax.scan(step, starts, None, length=depth)
        out.append((sw2, sb2, signal.length_map(act, qs, sw2, sb2),
                    signal.chi_parallel(act, q_star, sw2), signal.chi_perp(act, q_star, sw2),
                    jnp.concatenate([starts[None], path]).T))
    return out


def variance_maps(acts: dict, qs, q_star: float = Q_STAR, depth: int = 0, starts=()) -> dict:
    """For each activation at its edge-of-chaos initialisation with fixed point q*: sw2, sb2,
    V(q) on ``qs``, the slope V'(q*) (RY's chi_par = chi_q), chi_1 (= chi_perp, 1 by
    construction) and mean-field iterates q^l (l = 0 .. depth; inf once past 1e6) from each of
    ``starts``."""
    dtype = jnp.result_type(float)
    signal.edge_of_chaos_init(next(iter(acts.values())), q_star)  # argument checks, eagerly
    res = _maps_program(tuple(acts.values()), jnp.asarray(qs, dtype), jnp.asarray(q_star, dtype),
                        jnp.asarray(starts, dtype), depth)
    keys = ("sw2", "sb2", "V", "slope", "chi_1", "paths")
    return {name: {k: (float(v) if np.ndim(v) == 0 else np.asarray(v)) for k, v in zip(keys, r,
                                                                                        strict=True)}
            for name, r in zip(acts, res, strict=True)}


def _unified(x, tau, clip, symmetric):
    """The four activations as one traced function of their parameters (clip = inf: none)."""
    mag = jnp.clip(jnp.where(symmetric, jnp.abs(x), x) - tau, 0, clip)
    return jnp.where(symmetric, jnp.sign(x), 1.0) * mag


@functools.partial(jax.jit, static_argnames=("depth", "width", "seeds"))
def _simulate(key, tau, clip, symmetric, sw2, sb2, q0, depth, width, seeds):
    # All activations and seeds advance together: one (A, S, N, N) weight draw per layer.
    col = lambda v: v[:, None, None]
    k0, k = jax.random.split(key)
    h0 = jnp.sqrt(q0) * jax.random.normal(k0, (tau.size, seeds, width))

    def layer(h, kl):
        kw, kb = jax.random.split(kl)
        w = jax.random.normal(kw, (tau.size, seeds, width, width))
        phi = _unified(h, col(tau), col(clip), col(symmetric))
        pre = jnp.sqrt(col(sw2) / width) * jnp.einsum("asij,asj->asi", w, phi)
        h = pre + jnp.sqrt(col(sb2)) * jax.random.normal(kb, h.shape)
        h = jnp.where(jnp.isfinite(h), h, jnp.inf)
        return h, jnp.mean(h * h, -1)

    _, qs = jax.lax.scan(layer, h0, jax.random.split(k, depth))
    return jnp.concatenate([jnp.mean(h0 * h0, -1)[None], qs]).transpose(1, 2, 0)


def simulate(acts, sw2, sb2, q0: float, depth: int, width: int, seeds: int, key):
    """Empirical variances mean_i (h_i^l)^2, l = 0 .. depth, of ``seeds`` random networks of
    ``width`` units (h^{l+1} = sqrt(sw2/N) W phi(h^l) + sqrt(sb2) b), started from
    h^0 ~ N(0, q0) iid, for each of ``acts`` (``shifted_relu``/``soft_threshold`` specs) with
    its (sw2, sb2): shape (len(acts), seeds, depth + 1). One compiled program for all."""
    funcs = [a.func for a in acts]
    tau = jnp.asarray([f.tau for f in funcs])
    clip = jnp.asarray([np.inf if f.clip is None else f.clip for f in funcs])
    sym = jnp.asarray([f.kind == "soft_threshold" for f in funcs])
    return np.asarray(_simulate(key, tau, clip, sym, jnp.asarray(sw2), jnp.asarray(sb2), q0,
                                depth, width, seeds))


def _quadrature_errors(acts: dict, q: float = Q_STAR) -> dict:
    """Relative errors of the Hermite dual (``kernels.dual``, order 384) and of 1-D Gauss-Hermite
    quadrature (``kernels.gaussian_expectation``) against the exact E phi(sqrt(q) z)^2."""
    out = {}
    for name, act in acts.items():
        exact = float(kernels.gaussian_moment(act, 2, q))
        herm = float(kernels.dual(act)(q, q, q)[0])
        gh = float(kernels.gaussian_expectation(lambda x, a=act: a(x) ** 2, q))
        out[name] = (abs(herm - exact) / exact, abs(gh - exact) / exact)
    return out


def run(size: str = "full", out: str | os.PathLike = "figures", *, seed: int = 0) -> dict:
    """Compute the variance maps, mean-field iterates and finite-width simulations at ``size``
    (saved to and resumed from ``out/sparse_activations_<size>.npz``).

    Returns a dict: ``names`` (4,), ``qs`` (Q,), ``V`` (4, Q) the variance maps, ``sw2``, ``sb2``,
    ``slope`` (V'(q*)), ``chi_1`` (4,), ``paths`` (4, len(start), depth + 1) mean-field
    iterates, ``sim`` (4, seeds, depth + 1) finite-width variances, ``hermite_error`` and
    ``quadrature_error`` (4,) relative errors of E phi^2 at q*, ``taus`` (4,), ``data``.
    """
    cfg = CONFIGS[check_size(size)]
    acts = activations()
    names = list(acts)
    qs = np.geomspace(0.05, 20.0, cfg["n_q"])
    maps = variance_maps(acts, qs, Q_STAR, cfg["depth"], cfg["start"])
    os.makedirs(out, exist_ok=True)
    data = os.path.join(os.fspath(out), f"sparse_activations_{size}.npz")
    stamp = dict(seed=seed, depth=cfg["depth"], width=cfg["width"], seeds=cfg["seeds"])
    sim = resume(data, **stamp).get("sim")
    if sim is None:
        sim = simulate([acts[n] for n in names], [maps[n]["sw2"] for n in names],
                       [maps[n]["sb2"] for n in names], Q_STAR, cfg["depth"], cfg["width"],
                       cfg["seeds"], jax.random.key(seed))
        checkpoint(data, {"sim": sim}, **stamp)
    errs = _quadrature_errors(acts)
    pick = lambda k: np.asarray([maps[n][k] for n in names])
    return {"size": size, "config": dict(cfg), "names": names, "qs": qs, "V": pick("V"),
            "sw2": pick("sw2"), "sb2": pick("sb2"), "slope": pick("slope"), "chi_1": pick("chi_1"),
            "paths": pick("paths"), "sim": sim,
            "hermite_error": np.asarray([errs[n][0] for n in names]),
            "quadrature_error": np.asarray([errs[n][1] for n in names]),
            "taus": np.asarray([acts[n].func.tau for n in names]), "data": data}


def plot(result: dict, out: str | os.PathLike = "figures") -> list[str]:
    """Draw ``sparse_activations.png``: (V(q) - q)/q for the four activations at their EoC
    initialisation, mean-field iterates q^l, and finite-width variances through depth."""
    fig, axes = new_figure(1, 3, panel=(4.3, 3.6))
    colors = ["tab:red", "tab:orange", "tab:blue", "tab:green"]
    qs = result["qs"]
    ax = axes[0, 0]
    for i, name in enumerate(result["names"]):
        ax.plot(qs, (result["V"][i] - qs) / qs, color=colors[i],
                label=f"{name} (τ={result['taus'][i]:.2f}): V'(q*) = {result['slope'][i]:.3f}")
    ax.axhline(0, color="k", lw=0.8)
    ax.axvline(Q_STAR, color="0.5", ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_ylim(-0.6, 0.6)
    ax.set_xlabel("q")
    ax.set_ylabel("(V(q) − q) / q")
    ax.set_title(f"variance maps at the EoC (q* = {Q_STAR:g}, {SPARSITY:.0%} sparse)",
                 fontsize="small")
    ax.legend(fontsize="x-small", loc="lower left")
    ax = axes[0, 1]
    depth = result["paths"].shape[-1] - 1
    for i, _ in enumerate(result["names"]):
        for path in result["paths"][i]:
            ax.plot(np.arange(depth + 1), path, color=colors[i])
    ax.set_yscale("log")
    ax.set_ylim(0.1, 1e3)
    ax.set_xlabel("layer l")
    ax.set_ylabel("q^l (infinite width)")
    ax.set_title("mean-field iterates from q⁰ = " + ", ".join(f"{s:g}" for s in
                 result["config"]["start"]), fontsize="small")
    ax = axes[0, 2]
    sim = result["sim"]
    layers = np.arange(sim.shape[-1])
    for i, name in enumerate(result["names"]):
        med = np.median(sim[i], axis=0)
        lo, hi = np.percentile(sim[i], [10, 90], axis=0)
        ax.plot(layers, med, color=colors[i], label=name)
        ax.fill_between(layers, lo, hi, color=colors[i], alpha=0.2)
    ax.set_yscale("log")
    ax.set_ylim(0.1, 1e3)
    ax.set_xlabel("layer l")
    ax.set_ylabel("empirical q^l")
    cfg = result["config"]
    ax.set_title(f"width {cfg['width']}, {cfg['seeds']} nets from q⁰ = q* (median, 10-90%)",
                 fontsize="small")
    ax.legend(fontsize="x-small")
    fig.suptitle("Sparsifying activations (Price et al. 2024): tangent variance map = unstable "
                 "fixed point; clipping restores stability", fontsize="medium")
    return [save_figure(fig, out, "sparse_activations.png")]
