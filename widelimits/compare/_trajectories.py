"""Training trajectories of finite-width networks against their infinite-width (kernel) limit.

For every width N, an ensemble of networks ``make_net(N)`` is trained by full-batch gradient
descent (``dynamics.train``, one compiled program per width) on the MSE loss
``½ Σ (f − Y)² / Y.size``, and every member is compared, at every recorded step t, with the
*infinite-width linearised model started from that member's own initial function*:

    f_∞(t) = Y + (I − η Θ∞ / Y.size)^t (f_0 − Y)                              (train points)
    f_∞(t, x*) = f_0(x*) + Θ∞(x*, X) Θ∞^{-1} (I − (I − η Θ∞ / Y.size)^t) (Y − f_0)   (test)

(``dynamics.gradient_descent_mse`` with ``steps=``; Lee et al. 2019, "Wide neural networks of
any depth evolve as linear models under gradient descent", eqs. 8-9), Θ∞ the analytic NTK
(``kernels.analytic``). Sharing the initial function removes the O(1) initial randomness, so
``‖f_N(t) − f_∞(t)‖`` measures only what width changes in the dynamics: the O(N^{-1/2})
fluctuation of the empirical NTK at initialisation (it dominates: exponent −1/2) and its
O(N^{-1}) movement during training. The kernel movement ``‖Θ_T − Θ_0‖_F / ‖Θ_0‖_F`` of every
member (empirical NTK on the train points, at the first and the last step) is reported too; at
a fixed training time it scales as N^{-1} (Dyer & Gur-Ari 2020, "Asymptotics of wide networks
from Feynman diagrams"; Lee et al. 2019 prove the weaker bound O(N^{-1/2})).
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from .. import _resume, dynamics, kernels
from .._checks import integer
from ._convergence import PowerLaw, fit_power_law

__all__ = ["Trajectories", "trajectories", "plot_trajectories"]

PERCENTILES = (10.0, 50.0, 90.0)


@dataclasses.dataclass(frozen=True)
class Trajectories:
    """Result of :func:`trajectories` (numpy arrays; W widths, S seeds, R recorded steps).

    - ``widths`` (W,), ``steps`` (R,): the recorded step indices 0, r, 2r, ..., T.
    - ``deviation_train`` (W, S, R): ``‖f_N(t) − f_∞(t)‖ / ‖f_∞(t)‖`` on the train points (norms
      over points and outputs), f_∞ started from the member's own f_0 (module docstring); 0 at
      t = 0 by construction. ``deviation_test`` (W, S, R) or None: the same on ``x_test``.
    - ``movement`` (W, S): ``‖Θ_T − Θ_0‖_F / ‖Θ_0‖_F`` of the empirical NTK on the train points.
    - ``loss`` (W, S, R): the networks' training loss; ``loss_limit`` (W, S, R): that of f_∞.
    - ``pred_train`` (W, S, R, n, k), ``limit_train`` (same); ``pred_test``, ``limit_test``
      (W, S, R, m, k) or None: the trajectories themselves.
    - ``deviation_fit``: ``PowerLaw`` vs width (all seeds) of the largest train deviation over
      the recorded steps, ``sup_t ‖f_N(t) − f_∞(t)‖ / ‖f_∞(t)‖`` (at the end of a converged run
      both sit on the targets, so the final step alone says little);
      ``movement_fit``: ``PowerLaw`` of the movement vs width.
    """

    widths: np.ndarray
    steps: np.ndarray
    deviation_train: np.ndarray
    deviation_test: np.ndarray | None
    movement: np.ndarray
    loss: np.ndarray
    loss_limit: np.ndarray
    pred_train: np.ndarray
    limit_train: np.ndarray
    pred_test: np.ndarray | None
    limit_test: np.ndarray | None
    deviation_fit: PowerLaw
    movement_fit: PowerLaw

    def summary(self, which: str = "train"):
        """Mean (W, R) and the 10/50/90 % percentiles (3, W, R) over seeds of the deviation
        ``which`` ("train" or "test")."""
        dev = self._deviation(which)
        return dev.mean(1), np.percentile(dev, PERCENTILES, axis=1)

    def _deviation(self, which):
        if which not in ("train", "test"):
            raise ValueError(f"Trajectories: which must be 'train' or 'test', got {which!r}.")
        dev = self.deviation_train if which == "train" else self.deviation_test
        if dev is None:
            raise ValueError("Trajectories: no test deviation (trajectories ran without x_test).")
        return dev


def _relative(a, b):
    """‖a − b‖ / ‖b‖ over the last two axes (points, outputs)."""
    num = np.linalg.norm((a - b).reshape(a.shape[:-2] + (-1,)), axis=-1)
    den = np.linalg.norm(b.reshape(b.shape[:-2] + (-1,)), axis=-1)
    return num / np.where(den > 0, den, 1.0)


def _check(widths, x_train, y_train, x_test, steps, learning_rate, n_seeds, record_every,
           momentum):
    w = np.asarray(widths)
    if w.ndim != 1 or w.size < 2 or w.dtype.kind not in "iu" or np.any(w < 1):
        raise ValueError(f"trajectories: widths must be >= 2 positive ints (for the fits), got "
                         f"{np.asarray(widths).tolist()}.")
    if len(set(w.tolist())) != w.size:
        raise ValueError(f"trajectories: widths must be distinct, got {w.tolist()}.")
    x_train, y_train = jnp.asarray(x_train), jnp.asarray(y_train)
    if x_train.ndim != 2:
        raise ValueError(f"trajectories: x_train must have shape (n, d), got {x_train.shape}.")
    if y_train.ndim != 2 or y_train.shape[0] != x_train.shape[0]:
        raise ValueError(f"trajectories: y_train must have shape ({x_train.shape[0]}, k) to "
                         f"match x_train {x_train.shape}, got {y_train.shape}.")
    if x_test is not None:
        x_test = jnp.asarray(x_test)
        if x_test.ndim != 2 or x_test.shape[1] != x_train.shape[1]:
            raise ValueError(f"trajectories: x_test must have shape (m, {x_train.shape[1]}), "
                             f"got {x_test.shape}.")
    steps = integer("trajectories", "steps", steps)
    n_seeds = integer("trajectories", "n_seeds", n_seeds)
    if w.size * n_seeds < 3:
        raise ValueError(f"trajectories: the power-law fits need widths x n_seeds >= 3 runs, got "
                         f"{w.size} widths x {n_seeds} seeds.")
    record_every = integer("trajectories", "record_every", record_every)
    lr = float(learning_rate)
    if not np.isfinite(lr) or lr <= 0:
        raise ValueError(f"trajectories: learning_rate must be a finite positive number, got "
                         f"{learning_rate!r}.")
    if momentum is not None and not 0 <= float(momentum) < 1:
        raise ValueError(f"trajectories: momentum must be None or in [0, 1), got {momentum!r}.")
    return w, x_train, y_train, x_test, steps, lr, n_seeds, record_every


def _one_width(net, x, y, xt, key, steps, lr, n_seeds, record_every, momentum, pred, k_test):
    """Train ``n_seeds`` members of ``net``, evaluate their limits (``pred``: the
    ``MSEPredictor`` of the analytic NTK; ``k_test``: its test-train NTK or None); numpy dict."""
    keys = jax.random.split(key, n_seeds)
    params0 = jax.vmap(net.init, (0, None))(keys, x.shape)
    opt = optax.sgd(lr) if momentum is None else optax.sgd(lr, momentum=float(momentum))
    res = dynamics.train(net, params0, x, y, opt, steps, x_test=xt, record_every=record_every,
                         ntk_at=(0, steps), ensemble=True, progress=False)
    rec = np.asarray(res.steps)
    if xt is None:
        lim_train = jax.vmap(lambda f0: pred(fx_train_0=f0, steps=rec))(res.pred_train[:, 0])
    else:
        lim_train, lim_test = jax.vmap(lambda f0, ft0: pred(
            fx_train_0=f0, fx_test_0=ft0, k_test_train=k_test, steps=rec))(
                res.pred_train[:, 0], res.pred_test[:, 0])
    ntk = np.asarray(res.ntk, np.float64)  # (S, 2, n, n)
    yv = np.asarray(y, np.float64)
    out = {
        "steps": rec,
        "pred_train": np.asarray(res.pred_train, np.float64),
        "limit_train": np.asarray(lim_train, np.float64),
        "movement": np.linalg.norm(ntk[:, 1] - ntk[:, 0], axis=(-2, -1))
        / np.linalg.norm(ntk[:, 0], axis=(-2, -1)),
    }
    out["loss"] = 0.5 * np.mean((out["pred_train"] - yv) ** 2, axis=(-2, -1))
    out["loss_limit"] = 0.5 * np.mean((out["limit_train"] - yv) ** 2, axis=(-2, -1))
    if xt is not None:
        out["pred_test"] = np.asarray(res.pred_test, np.float64)
        out["limit_test"] = np.asarray(lim_test, np.float64)
    return out


def _load(path, fp):
    saved = None if path is None else _resume.load(path, fp, who="compare.trajectories")
    if saved is None:
        return {}
    return {int(w): {k[len(f"{int(w)}_"):]: v for k, v in saved.items()
                     if k.startswith(f"{int(w)}_")} for w in saved["widths"]}


def _save(path, fp, done):
    arrays = {f"{w}_{k}": v for w, r in done.items() for k, v in r.items()}
    _resume.save(path, {"widths": np.array(sorted(done)), **arrays}, fp)


def trajectories(make_net, widths, x_train, y_train, key, *, x_test=None, steps: int,
                 learning_rate: float, n_seeds: int = 10, record_every: int = 1,
                 momentum: float | None = None, checkpoint=None,
                 progress: bool = True) -> Trajectories:
    """Deviation of finite-width training trajectories from the kernel limit, vs width.

    ``make_net(width)`` returns a widelimits spec with a Dense readout (NTK parameterization for
    a kernel limit). For each width, ``n_seeds`` members initialised with
    ``split(fold_in(key, width), n_seeds)`` are trained together (``dynamics.train(...,
    ensemble=True)``) for ``steps`` steps of gradient descent (``optax.sgd(learning_rate)``, with
    heavy-ball ``momentum`` if given) on ``½ Σ (f − Y)² / Y.size``, recording every
    ``record_every`` steps. Each member is compared with the discrete-step closed form of the
    infinite-width linearised model started from its own initial outputs (module docstring),
    whose NTK is ``kernels.analytic(make_net(width), ...)``. ``x_train`` (n, d), ``y_train``
    (n, k), ``x_test`` (m, d) or None.

    ``checkpoint``: a ``.npz`` path; every finished width is saved there and a later call with
    the same arguments resumes (finished widths are not recomputed). Widths are swept with a
    tqdm bar when ``progress``. Returns a :class:`Trajectories` with the power-law fits of the
    largest train deviation over time (exponent −1/2 expected) and of the kernel movement (−1 expected
    at a fixed training time).

    Two widths of a one-hidden-layer ReLU net, 2 seeds, 2 steps on 3 points: every member starts
    on its limit (deviation 0 at t = 0) and its training loss falls.

    >>> import jax, jax.numpy as jnp, numpy as np
    >>> from widelimits import compare, nets
    >>> x = jax.random.normal(jax.random.key(0), (3, 2))
    >>> res = compare.trajectories(lambda n: nets.mlp(n, 1, nets.Relu()), [8, 64], x,
    ...                            jnp.sin(x[:, :1]), jax.random.key(2), steps=2,
    ...                            learning_rate=0.5, n_seeds=2, progress=False)
    >>> res.steps.tolist(), res.deviation_train.shape, res.movement.shape
    ([0, 1, 2], (2, 2, 3), (2, 2))
    >>> bool(np.all(res.deviation_train[..., 0] < 1e-5))
    True
    >>> bool(np.all(res.loss[..., -1] < res.loss[..., 0]))
    True
    """
    (w, x, y, xt, steps, lr, n_seeds, record_every) = _check(
        widths, x_train, y_train, x_test, steps, learning_rate, n_seeds, record_every, momentum)
    path = None if checkpoint is None else os.fspath(checkpoint)
    fp = _resume.fingerprint(  # the params' default precision too: it changes the results
        [np.asarray(a, np.float64) for a in (x, y, xt) if a is not None], steps, lr, n_seeds,
        record_every, -1.0 if momentum is None else float(momentum), key,
        np.dtype(jnp.result_type(float)).name)
    done = _load(path, fp)
    nets_ = {width: make_net(width) for width in w.tolist()}
    for width, r in done.items():
        spec = str(r.get("spec", "unknown"))
        if width in nets_ and spec != repr(nets_[width]):
            raise ValueError(f"trajectories: the checkpoint {path} holds width {width} of "
                             f"another network ({spec}, not {nets_[width]!r}); delete it or "
                             "pass another checkpoint path.")
    limit_net = nets_[int(w[0])]  # the limit does not depend on the width
    pred = dynamics.gradient_descent_mse(kernels.analytic(limit_net, x), y, lr, momentum=momentum)
    k_test = None if xt is None else kernels.analytic(limit_net, xt, x)
    for width in tqdm(w.tolist(), desc="trajectories: widths", disable=not progress):
        net = nets_[width]
        if width in done:
            continue
        done[width] = _one_width(net, x, y, xt, jax.random.fold_in(key, width), steps, lr,
                                 n_seeds, record_every, momentum, pred, k_test)
        done[width]["spec"] = np.asarray(repr(net))
        if path is not None:
            _save(path, fp, done)
    stack = lambda name: np.stack([done[v][name] for v in w.tolist()])  # noqa: E731
    pred_train, limit_train = stack("pred_train"), stack("limit_train")
    dev_train = _relative(pred_train, limit_train)
    pred_test = limit_test = dev_test = None
    if xt is not None:
        pred_test, limit_test = stack("pred_test"), stack("limit_test")
        dev_test = _relative(pred_test, limit_test)
    movement = stack("movement")
    if not (np.all(np.isfinite(dev_train)) and np.all(np.isfinite(movement))):
        raise ValueError("trajectories: non-finite deviations; lower learning_rate (compare "
                         "dynamics.max_learning_rate of the analytic NTK).")
    return Trajectories(
        widths=w, steps=done[int(w[0])]["steps"], deviation_train=dev_train,
        deviation_test=dev_test, movement=movement, loss=stack("loss"),
        loss_limit=stack("loss_limit"), pred_train=pred_train, limit_train=limit_train,
        pred_test=pred_test, limit_test=limit_test,
        deviation_fit=fit_power_law(w, dev_train.max(-1)), movement_fit=fit_power_law(w, movement))


def plot_trajectories(result: Trajectories, axes=None, *, which: str = "train"):
    """Two panels: (left) the mean over seeds of the deviation ``which`` from the limit vs step,
    one line per width with its 10-90 % band; (right) log-log largest deviation over time and kernel
    movement vs width, mean ± standard error over seeds, with the fitted power laws (exponent ±
    standard error in the legend). ``axes``: two matplotlib axes or None (a new figure).
    Returns the axes.

    >>> import jax, jax.numpy as jnp
    >>> from widelimits import compare, nets
    >>> x = jax.random.normal(jax.random.key(0), (3, 2))
    >>> res = compare.trajectories(lambda n: nets.mlp(n, 1, nets.Relu()), [8, 64], x,
    ...                            jnp.sin(x[:, :1]), jax.random.key(2), steps=2,
    ...                            learning_rate=0.5, n_seeds=2, progress=False)
    >>> ax0, ax1 = compare.plot_trajectories(res)
    >>> ax0.get_xlabel(), ax1.get_xlabel(), ax1.get_xscale()
    ('gradient-descent step t', 'width N', 'log')
    >>> [t.get_text() for t in ax0.get_legend().get_texts()]  # one line per width
    ['N = 8', 'N = 64']
    """
    if axes is None:
        from matplotlib.figure import Figure

        axes = Figure(figsize=(9.0, 3.6), layout="constrained").subplots(1, 2)
    ax0, ax1 = axes
    mean, pct = result.summary(which)
    t = result.steps
    for i, width in enumerate(result.widths):
        ax0.plot(t, mean[i], color=f"C{i}", lw=1.4, label=f"N = {width}")
        ax0.fill_between(t, pct[0, i], pct[2, i], color=f"C{i}", alpha=0.2, lw=0)
    ax0.set_xlabel("gradient-descent step t")
    ax0.set_ylabel(f"‖f_N(t) − f_∞(t)‖ / ‖f_∞(t)‖ ({which})")
    ax0.grid(alpha=0.3)
    ax0.legend(fontsize="small")
    wf = result.widths.astype(float)
    series = (("max over t of the deviation", result._deviation(which).max(-1),
               result.deviation_fit if which == "train" else fit_power_law(
                   result.widths, result._deviation(which).max(-1))),
              ("kernel movement", result.movement, result.movement_fit))
    for j, (name, values, fit) in enumerate(series):
        m = values.mean(1)
        se = values.std(1, ddof=1) / np.sqrt(values.shape[1]) if values.shape[1] > 1 else 0 * m
        ax1.errorbar(wf, m, yerr=se, fmt="os"[j], color=f"C{j + 3}", capsize=2, label=name)
        ax1.plot(wf, fit.prefactor * wf ** fit.exponent, color=f"C{j + 3}", lw=1.1,
                 label=f"fit: N^({fit.exponent:.2f} ± {fit.stderr:.2f})")
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xticks(wf, [str(v) for v in result.widths], minor=False)
    ax1.set_xticks([], minor=True)
    ax1.set_xlabel("width N")
    ax1.set_ylabel("relative deviation / movement")
    ax1.grid(alpha=0.3, which="both")
    ax1.legend(fontsize="small")
    return axes
