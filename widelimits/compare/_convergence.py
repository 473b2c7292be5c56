"""Convergence of finite-width kernels to their infinite-width limit, and power-law fits."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from tqdm.auto import tqdm

from .. import kernels
from .._checks import integer

__all__ = ["PowerLaw", "KernelConvergence", "fit_power_law", "kernel_convergence",
           "plot_kernel_convergence"]

KINDS = ("nngp", "ntk")


@dataclasses.dataclass(frozen=True)
class PowerLaw:
    """``y ≈ prefactor * x ** exponent``; ``stderr``: the standard error of the exponent."""

    exponent: float
    stderr: float
    prefactor: float


@dataclasses.dataclass(frozen=True)
class KernelConvergence:
    """Result of ``kernel_convergence``: ``widths`` (W,), ``deviations`` kind -> (W, S) relative
    Frobenius deviations of S seeds, ``fits`` kind -> ``PowerLaw``."""

    widths: np.ndarray
    deviations: dict
    fits: dict


def fit_power_law(x, y) -> PowerLaw:
    """Ordinary least squares of log y on log x over all points (x (W,), y (W,) or (W, S)).

    With t = log x, u = log y and m points, the slope is b = Σ(t - t̄)(u - ū) / Σ(t - t̄)² and
    its standard error sqrt(Σ r² / (m - 2) / Σ(t - t̄)²), r the residuals.

    An exact power law is recovered exactly (zero standard error):

    >>> import numpy as np
    >>> from widelimits import compare
    >>> x = np.array([16, 32, 64, 128])
    >>> fit = compare.fit_power_law(x, 3.0 * x ** -0.5)
    >>> round(fit.exponent, 4), round(fit.prefactor, 4), round(fit.stderr, 4)
    (-0.5, 3.0, 0.0)
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if y.ndim == 2:
        x = np.repeat(x[:, None], y.shape[1], axis=1)
    if x.shape != y.shape or x.size < 3:
        raise ValueError(f"fit_power_law: x and y must match with >= 3 points, got shapes "
                         f"{x.shape} and {y.shape}.")
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("fit_power_law: x and y must be positive (log-log fit).")
    t, u = np.log(x.ravel()), np.log(y.ravel())
    tc = t - t.mean()
    slope = tc @ (u - u.mean()) / (tc @ tc)
    intercept = u.mean() - slope * t.mean()
    resid = u - intercept - slope * t
    stderr = np.sqrt(resid @ resid / (t.size - 2) / (tc @ tc))
    return PowerLaw(float(slope), float(stderr), float(np.exp(intercept)))


def _relative(k, limit):
    return float(np.linalg.norm(np.asarray(k) - limit) / np.linalg.norm(limit))


def kernel_convergence(make_net, widths, x, key, *, n_seeds: int = 10, kinds=KINDS,
                       train=None, progress: bool = True) -> KernelConvergence:
    """Relative Frobenius deviation ||K_n - K_inf||_F / ||K_inf||_F of finite-width kernels.

    ``make_net(width)`` returns a widelimits spec; for every width and seed s the network is
    initialised with ``net.init(fold_in(fold_in(key, width), s), x.shape)`` and, if ``train``
    is given, replaced by ``train(net, params)`` (kernels after training). NNGP:
    ``kernels.empirical_nngp``; NTK: ``kernels.empirical_ntk`` (mean over outputs); the limit
    is ``kernels.analytic(make_net(widths[0]), x)``. Fluctuations give the exponent -1/2
    (e.g. Jacot et al. 2018; Hanin & Nica 2020), fitted by ``fit_power_law`` over all points.
    Results are not cached; a sweep is one width at a time with a progress bar.

    ``x`` (n, d). Returns ``KernelConvergence`` with deviations (W, n_seeds) per kind.

    A one-hidden-layer ReLU net on 3 inputs, widths 4 and 64, 3 seeds: the NNGP deviation
    shrinks with width, its fitted exponent consistent with -1/2 (within 3 standard errors).

    >>> import jax
    >>> from widelimits import compare, nets
    >>> x = jax.random.normal(jax.random.key(0), (3, 2))
    >>> res = compare.kernel_convergence(lambda n: nets.mlp(n, 1, nets.Relu()), [4, 64], x,
    ...                                  jax.random.key(1), n_seeds=3, kinds=("nngp",),
    ...                                  progress=False)
    >>> res.deviations["nngp"].shape
    (2, 3)
    >>> fit = res.fits["nngp"]
    >>> bool(fit.exponent < 0), bool(abs(fit.exponent + 0.5) < 3 * fit.stderr)
    (True, True)
    """
    widths = np.asarray(widths)
    if widths.ndim != 1 or widths.size < 2 or np.any(widths < 1) or widths.dtype.kind not in "iu":
        raise ValueError(f"kernel_convergence: widths must be >= 2 positive ints, got "
                         f"{widths.tolist()}.")
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ValueError(f"kernel_convergence: kinds must be a non-empty subset of {KINDS}, got "
                         f"{tuple(kinds)}.")
    integer("kernel_convergence", "n_seeds", n_seeds)
    limit_kernel = kernels.analytic(make_net(int(widths[0])), x)
    limits = {k: np.asarray(getattr(limit_kernel, k), np.float64) for k in kinds}
    devs = {k: np.zeros((widths.size, n_seeds)) for k in kinds}
    for w, width in enumerate(tqdm(widths, desc="widths", leave=False, disable=not progress)):
        net = make_net(int(width))
        for s in range(n_seeds):
            params = net.init(jax.random.fold_in(jax.random.fold_in(key, int(width)), s), x.shape)
            if train is not None:
                params = train(net, params)
            if "nngp" in kinds:
                devs["nngp"][w, s] = _relative(kernels.empirical_nngp(net, params, x),
                                               limits["nngp"])
            if "ntk" in kinds:
                devs["ntk"][w, s] = _relative(kernels.empirical_ntk(net, params, x),
                                              limits["ntk"])
    fits = {k: fit_power_law(widths, devs[k]) for k in kinds}
    return KernelConvergence(widths=widths, deviations=devs, fits=fits)


def plot_kernel_convergence(result: KernelConvergence, ax=None):
    """Log-log plot of the mean deviation ± standard error over seeds per width, with each fitted
    line and its exponent ± standard error in the legend. Returns the axes.

    >>> import jax
    >>> from widelimits import compare, nets
    >>> x = jax.random.normal(jax.random.key(0), (3, 2))
    >>> res = compare.kernel_convergence(lambda n: nets.mlp(n, 1, nets.Relu()), [4, 64], x,
    ...                                  jax.random.key(1), n_seeds=3, kinds=("nngp",),
    ...                                  progress=False)
    >>> ax = compare.plot_kernel_convergence(res)
    >>> ax.get_xscale(), ax.get_xlabel(), len(ax.get_legend().get_texts())  # data + fit
    ('log', 'width n', 2)
    """
    if ax is None:
        from matplotlib.figure import Figure

        ax = Figure(figsize=(4.5, 3.5), layout="constrained").subplots()
    w = result.widths
    for i, (kind, dev) in enumerate(result.deviations.items()):
        color = f"C{i}"
        mean = dev.mean(1)
        se = dev.std(1, ddof=1) / np.sqrt(dev.shape[1]) if dev.shape[1] > 1 else 0 * mean
        ax.errorbar(w, mean, yerr=se, fmt="o", color=color, capsize=2, label=f"{kind.upper()}")
        fit = result.fits[kind]
        ax.plot(w, fit.prefactor * w.astype(float) ** fit.exponent, color=color, lw=1.2,
                label=f"fit: width^({fit.exponent:.3f} ± {fit.stderr:.3f})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("width n")
    ax.set_ylabel("‖K_n − K_∞‖_F / ‖K_∞‖_F")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    return ax
