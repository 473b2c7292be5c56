"""Kernel gallery: infinite-width NNGP/NTK on the unit circle, and finite networks against them.

Two figures, in the setting of Jacot et al. 2018 (Fig. 1: inputs on the unit circle
x(γ) = (cos γ, sin γ), NTK parameterization, bias 0.1):

``kernel_gallery_circle.png``
    K(x(0), x(γ)) for γ in [-π, π], normalised by K(x(0), x(0)), for MLPs with L hidden layers
    and several activations; NNGP (Neal 1996; Lee et al. 2018) in the top row, NTK (Jacot et al.
    2018) in the bottom row. Depth drives ReLU-like kernels towards a constant and erf/tanh/sin
    kernels (chaotic phase at w_std = √2) towards a spike at γ = 0 (Poole et al. 2016;
    Schoenholz et al. 2017).
``kernel_gallery_finite.png``
    Finite width vs the limit: the output covariance Cov[f(x(0)), f(x(γ))] of random depth-2
    ReLU and erf networks of widths 64 and 1024, estimated from an ensemble of initialisations,
    against ``kernels.analytic(...).nngp``, with ±2 standard-error bands. The wide ensemble sits
    on the limit; the narrow one carries an O(1/width) bias and scatters more.

``run(size)`` computes the numbers (``size`` = "smoke" for tests, "quick" for the demo,
"full" for the figures), resuming finished panels from ``out/kernel_gallery.npz``;
``plot(result, out)`` draws them.
"""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from .. import kernels, nets
from ._common import (
    angle_axis,
    check_size,
    checkpoint,
    circle,
    new_figure,
    resume,
    save_figure,
    saved_stamp,
)

__all__ = [
    "ACTIVATIONS", "CONFIGS", "B_STD", "W_STD", "circle", "circle_kernels",
    "ensemble_covariance", "finite_vs_limit", "load", "run", "plot",
]

W_STD = math.sqrt(2.0)
B_STD = 0.1

# id -> (plot label, activation spec).
ACTIVATIONS = {
    "relu": ("ReLU", nets.Relu()),
    "leaky_relu": ("leaky ReLU (α = 0.1)", nets.LeakyRelu(0.1)),
    "gelu": ("GELU", nets.Gelu()),
    "erf": ("erf", nets.Erf()),
    "tanh": ("tanh", nets.Tanh()),
    "sin": ("sin", nets.Sin()),
    "abs": ("|x|", nets.Abs()),
    "swish": ("swish", nets.Swish()),
}

CONFIGS = {
    "smoke": dict(
        circle_activations=("relu", "erf"), depths=(1, 2), circle_angles=33,
        finite_activations=("relu", "erf"), widths=(64, 1024), finite_angles=9,
        n_networks=64, out_width=128, chunk=32,
    ),
    "quick": dict(
        circle_activations=("relu", "leaky_relu", "gelu", "erf", "tanh", "sin"),
        depths=(1, 2, 4, 8), circle_angles=121,
        finite_activations=("relu", "erf"), widths=(64, 1024), finite_angles=25,
        n_networks=256, out_width=128, chunk=32,
    ),
    "full": dict(
        circle_activations=("relu", "leaky_relu", "abs", "gelu", "swish", "erf", "tanh", "sin"),
        depths=(1, 2, 4, 8, 16), circle_angles=361,
        finite_activations=("relu", "erf"), widths=(64, 1024), finite_angles=49,
        n_networks=2048, out_width=128, chunk=32,
    ),
}


def circle_kernels(activation, depths, angles, *, w_std=W_STD, b_std=B_STD) -> dict:
    """Infinite-width NNGP and NTK K(x(0), x(γ)) on the unit circle for MLPs of several depths.

    ``activation``: a spec such as ``nets.Relu()``; ``depths``: numbers of hidden layers L;
    ``angles``: γ (n,). Networks are ``nets.mlp(width, L, activation, w_std, b_std)`` in the NTK
    parameterization (Jacot et al. 2018); NNGP recursion of Lee et al. 2018.

    Returns float64 arrays ``nngp``, ``ntk`` (len(depths), n) of K(x(0), x(γ)) and ``nngp0``,
    ``ntk0`` (len(depths),) of K(x(0), x(0)) (all inputs have the same norm, so these are the
    variances at every γ).
    """
    x = jnp.asarray(np.concatenate([circle([0.0]), circle(angles)]))
    rows = {"nngp": [], "ntk": [], "nngp0": [], "ntk0": []}
    for depth in depths:
        net = nets.mlp(512, depth, activation, w_std=w_std, b_std=b_std)  # width: unused
        k = kernels.analytic(net, x)
        for name, mat in (("nngp", k.nngp), ("ntk", k.ntk)):
            row = np.asarray(mat[0], dtype=np.float64)
            rows[name].append(row[1:])
            rows[name + "0"].append(row[0])
    return {name: np.asarray(v) for name, v in rows.items()}


def _second_moments(specs, keys, x):
    """For each spec, per network (one per key): (1/k) sum_i f_i(x[0]) f_i(x[j]) -> (S, c, n).

    The parameters are drawn once per key with ``specs[0].init`` and shared by all specs. The
    networks of a chunk run one after the other (``lax.map``): vmapping ``init`` compiles twice
    as slowly on CPU (threefry) and holds every network's weights in memory at once.
    """

    def one(key):
        params = specs[0].init(key, x.shape)
        outs = []
        for net in specs:
            f = net.apply(params, x)  # (n, k)
            outs.append(f @ f[0] / f.shape[1])
        return jnp.stack(outs)

    return jnp.moveaxis(jax.lax.map(one, keys), 0, 1)


_second_moments_jit = jax.jit(_second_moments)


def ensemble_covariance(net, x, n_networks: int, key, *, chunk: int = 32, desc=None,
                        progress: bool = True) -> np.ndarray:
    """Per-network estimates of the output covariance Cov[f(x[0]), f(x[j])] of a random network.

    Draws ``n_networks`` independent initialisations of ``net`` (``net.init`` mapped over keys
    split from ``key``, ``chunk`` networks per compiled call), applies each to ``x`` (n, d) and
    averages f_i(x[0]) f_i(x[j]) over the network's k outputs (exchangeable, independent given
    the last hidden layer). The outputs have mean zero exactly (the readout weights are
    symmetric), so this uncentred moment is the covariance; at infinite width its expectation
    is the NNGP K(x[0], x[j]) (Neal 1996; Lee et al. 2018).

    ``net`` may also be a sequence of specs with the same parameters (e.g. one MLP with
    different activations): all are then applied to the same initialisations (common random
    numbers: each spec's estimate is unchanged in law, the random draws are paid once).

    Returns float64 (n_networks, n), or (len(net), n_networks, n) for a sequence: one row per
    network (i.i.d.), so the ensemble mean is ``s.mean(-2)`` and its standard error
    ``s.std(-2, ddof=1) / sqrt(n_networks)``. Results do not depend on ``chunk``.
    """
    single = isinstance(net, nets.Layer)
    specs = (net,) if single else tuple(net)
    if isinstance(n_networks, bool) or not isinstance(n_networks, int) or n_networks < 2:
        raise ValueError(f"ensemble_covariance: n_networks must be an int >= 2 to estimate an "
                         f"error, got {n_networks!r}.")
    x = jnp.asarray(x)
    shapes = [jax.eval_shape(lambda k, s=s: s.init(k, x.shape), key) for s in specs]
    if any(jax.tree.structure(sh) != jax.tree.structure(shapes[0]) or
           jax.tree.leaves(sh) != jax.tree.leaves(shapes[0]) for sh in shapes[1:]):
        raise ValueError("ensemble_covariance: the specs in `net` must have identical "
                         "parameters (same layers and widths) to share initialisations; got "
                         f"{list(specs)}.")
    n_chunks = -(-n_networks // chunk)
    keys = jax.random.split(key, n_chunks * chunk)  # padded; the extra networks are dropped
    out = []
    for i in tqdm(range(n_chunks), desc=desc, unit="chunk", leave=False, disable=not progress):
        s = _second_moments_jit(specs, keys[i * chunk:(i + 1) * chunk], x)
        out.append(np.asarray(s, dtype=np.float64))
    s = np.concatenate(out, axis=1)[:, :n_networks]
    return s[0] if single else s


def finite_vs_limit(activations, widths, angles, n_networks: int, key, *, depth: int = 2,
                    out_width: int = 128, chunk: int = 32, w_std=W_STD, b_std=B_STD,
                    line_angles=None, progress: bool = True) -> dict:
    """Empirical output covariance of finite random MLPs against their infinite-width NNGP.

    For each width in ``widths`` and activation spec in ``activations``: ``n_networks`` random
    ``nets.mlp(width, depth, activation, out_width=out_width)`` (NTK parameterization) applied
    to x(0) and x(γ) on the unit circle, γ = ``angles`` (m,); see ``ensemble_covariance`` (the
    activations of one width share the random weights). The limit is
    ``kernels.analytic(net, x).nngp`` (Lee et al. 2018).

    Returns ``nngp`` (A, m), the limit at ``angles``; ``mean``, ``se``, ``z`` (A, W, m): the
    ensemble mean, its standard error and the z-score (mean - nngp) / se; ``line_nngp``
    (A, len(line_angles)), the limit on a fine grid for plotting.
    """
    angles = np.asarray(angles, dtype=np.float64)
    line_angles = np.linspace(-np.pi, np.pi, 201) if line_angles is None else line_angles
    x = np.concatenate([circle([0.0]), circle(angles)])
    xs = jnp.asarray(np.concatenate([x, circle(line_angles)]))
    nngp, line = [], []
    for act in activations:
        limit = nets.mlp(max(widths), depth, act, w_std=w_std, b_std=b_std)
        row = np.asarray(kernels.analytic(limit, xs).nngp[0], dtype=np.float64)
        nngp.append(row[1:len(x)])
        line.append(row[len(x):])
    means, ses = [], []
    for w, width in enumerate(widths):
        specs = [nets.mlp(width, depth, act, out_width=out_width, w_std=w_std, b_std=b_std)
                 for act in activations]
        s = ensemble_covariance(specs, x, n_networks, jax.random.fold_in(key, w), chunk=chunk,
                                progress=progress, desc=f"width {width}")[:, :, 1:]
        means.append(s.mean(1))
        ses.append(s.std(1, ddof=1) / math.sqrt(n_networks))
    res = {"nngp": np.asarray(nngp), "line_nngp": np.asarray(line),
           "mean": np.stack(means, axis=1), "se": np.stack(ses, axis=1)}
    res["z"] = (res["mean"] - res["nngp"][:, None, :]) / res["se"]
    res["line_angles"] = np.asarray(line_angles, dtype=np.float64)
    return res


def run(size: str = "full", out: str | os.PathLike = "figures", *, seed: int = 0,
        progress: bool = True) -> dict:
    """Compute both panels of the gallery at ``size`` ("full", "quick" or "smoke"); each
    finished panel is saved to and resumed from ``out/kernel_gallery.npz``.

    Returns a dict: ``size``, ``config`` (the ``CONFIGS[size]`` entry), ``circle`` (angles,
    activation ids and labels, depths, and ``circle_kernels`` arrays stacked over activations:
    ``nngp``, ``ntk`` (A, D, n), ``nngp0``, ``ntk0`` (A, D)) and ``finite`` (angles, widths,
    activations, ``n_networks``, ``out_width`` and the ``finite_vs_limit`` arrays), ``data``
    (the file).
    """
    cfg = CONFIGS[check_size(size)]
    os.makedirs(out, exist_ok=True)
    data = os.path.join(os.fspath(out), "kernel_gallery.npz")
    stamp = dict(seed=seed, config=repr(cfg))
    done = resume(data, **stamp)
    if "circle_nngp" not in done:
        angles = np.linspace(-np.pi, np.pi, cfg["circle_angles"])
        acts = cfg["circle_activations"]
        per_act = [circle_kernels(ACTIVATIONS[a][1], cfg["depths"], angles)
                   for a in tqdm(acts, desc="analytic kernels", leave=False,
                                 disable=not progress)]
        circ = {name: np.stack([p[name] for p in per_act]) for name in per_act[0]}
        circ.update(angles=angles, activations=list(acts), depths=list(cfg["depths"]),
                    labels=[ACTIVATIONS[a][0] for a in acts])
        done.update({f"circle_{k}": np.asarray(v) for k, v in circ.items()})
        checkpoint(data, done, **stamp)
    if "finite_mean" not in done:
        fin_angles = np.linspace(-np.pi, np.pi, cfg["finite_angles"])
        fin_acts = cfg["finite_activations"]
        fin = finite_vs_limit([ACTIVATIONS[a][1] for a in fin_acts], cfg["widths"], fin_angles,
                              cfg["n_networks"], jax.random.key(seed),
                              out_width=cfg["out_width"], chunk=cfg["chunk"], progress=progress)
        fin.update(angles=fin_angles, activations=list(fin_acts), widths=list(cfg["widths"]),
                   labels=[ACTIVATIONS[a][0] for a in fin_acts], n_networks=cfg["n_networks"],
                   out_width=cfg["out_width"], depth=2)
        done.update({f"finite_{k}": np.asarray(v) for k, v in fin.items()})
        checkpoint(data, done, **stamp)
    return {"size": size, "config": dict(cfg), **_unpack(done), "data": data}


def _unpack(done: dict) -> dict:
    """The ``circle`` and ``finite`` dicts from the saved arrays (names, ints: Python)."""
    parts = {"circle": {}, "finite": {}}
    for name, value in done.items():
        part, key = name.split("_", 1)
        parts[part][key] = value.tolist() if value.dtype.kind in "UiS" else value
    return parts


def load(path: str | os.PathLike) -> dict:
    """Read ``run``'s ``kernel_gallery.npz`` back into the dict ``plot`` takes."""
    done = resume(path, **saved_stamp(path))
    return {"size": None, **_unpack(done), "data": os.fspath(path)}


def _viridis(t):
    from matplotlib import colormaps

    return colormaps["viridis"](0.85 * t)


def _plot_circle(circ, out):
    labels, depths = circ["labels"], circ["depths"]
    fig, axes = new_figure(2, len(labels), panel=(2.9, 2.5), sharex=True)
    colors = [_viridis(i / max(len(depths) - 1, 1)) for i in range(len(depths))]
    for a, label in enumerate(labels):
        for r, (kind, name) in enumerate((("nngp", "NNGP"), ("ntk", "NTK"))):
            ax = axes[r, a]
            for d, depth in enumerate(depths):
                ax.plot(circ["angles"], circ[kind][a, d] / circ[kind + "0"][a, d],
                        color=colors[d], lw=1.6, label=f"L = {depth}")
            angle_axis(ax)
            ax.axhline(0, color="k", lw=0.6)
            if r == 0:
                ax.set_title(label)
            else:
                ax.set_xlabel("angle γ")
            if a == 0:
                ax.set_ylabel(f"{name} (normalised)")
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside right center", title="hidden\nlayers")
    fig.suptitle("Infinite-width kernels on the unit circle x(γ) = (cos γ, sin γ)\n"
                 "normalised: K(x(0), x(γ)) / K(x(0), x(0)); top NNGP, bottom NTK\n"
                 f"MLP, L hidden layers, NTK param., w_std = √2, b_std = {B_STD}",
                 fontsize="medium")
    return save_figure(fig, out, "kernel_gallery_circle.png")


def _plot_finite(fin, out):
    labels, widths = fin["labels"], fin["widths"]
    fig, axes = new_figure(2, len(labels), panel=(5.0, 2.9), sharex=True)
    colors = ["tab:orange", "tab:blue", "tab:green", "tab:red"]
    step = fin["angles"][1] - fin["angles"][0] if len(fin["angles"]) > 1 else 1.0
    offsets = (np.arange(len(widths)) - (len(widths) - 1) / 2) * 0.12 * step
    for a, label in enumerate(labels):
        top, bottom = axes[0, a], axes[1, a]
        top.plot(fin["line_angles"], fin["line_nngp"][a], color="k", lw=1.4,
                 label="infinite width: analytic NNGP")
        bottom.axhline(0, color="k", lw=1.4)
        zmax = []
        for w, width in enumerate(widths):
            mean, se = fin["mean"][a, w], fin["se"][a, w]
            g = fin["angles"] + offsets[w]
            kw = dict(fmt="o", ms=3.5, capsize=2, lw=1.1, color=colors[w % len(colors)])
            top.errorbar(g, mean, yerr=2 * se, label=f"width {width}: ensemble mean ± 2 s.e.",
                         **kw)
            bottom.errorbar(g, mean - fin["nngp"][a], yerr=2 * se, **kw)
            zmax.append(f"{np.max(np.abs(fin['z'][a, w])):.1f} (width {width})")
        top.set_title(f"{label}, depth {fin['depth']}")
        bottom.set_title("empirical − analytic; max |z| = " + ", ".join(zmax), fontsize="small")
        bottom.set_xlabel("angle γ")
        for ax in (top, bottom):
            angle_axis(ax)
        if a == 0:
            top.set_ylabel("Cov[f(x(0)), f(x(γ))]")
            bottom.set_ylabel("empirical − analytic")
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=len(handles))
    fig.suptitle(
        "Finite width vs infinite width: output covariance of random MLPs against the NNGP\n"
        f"{fin['n_networks']} networks per width × {fin['out_width']} outputs each; bars: ±2 "
        "standard errors across networks\n"
        f"NTK parameterization, w_std = √2, b_std = {B_STD}", fontsize="medium")
    return save_figure(fig, out, "kernel_gallery_finite.png")


def plot(result: dict, out: str | os.PathLike = "figures") -> list[str]:
    """Draw ``run``'s result: ``out/kernel_gallery_circle.png`` (NNGP/NTK on the circle, one
    column per activation, one line per depth) and ``out/kernel_gallery_finite.png`` (finite
    ensembles vs the NNGP). Returns the two paths."""
    return [_plot_circle(result["circle"], out), _plot_finite(result["finite"], out)]
