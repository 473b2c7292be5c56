"""Full-batch training of finite networks (or their linearised / quadratic models) with an optax
optimizer, as one compiled ``lax.scan`` per chunk of steps, optionally over an ensemble of
members (``jax.vmap`` or ``lax.map`` inside the same program).

Time is counted in optimizer steps t = 0 .. steps; "the state at step t" means the parameters
after t updates. Records are taken at t = 0, r, 2r, ... and at t = steps (r = ``record_every``).
The loop is cut into chunks of intervals of r steps; a chunk is one call of a program compiled
once per (f's structure, optimizer, loss, r, chunk length, shapes), so runs of any length with
the same ``chunk_size``, any parameters and any inputs of the same shapes reuse it. Steps past
the end are skipped with a ``lax.cond`` on the (unbatched) step counter, which stays a branch
under ``jax.vmap``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from ... import _resume, kernels
from ..._checks import integer
from ..._model import SpecApply, Static, as_model, spec_of
from ..lazy import cross_entropy, mse
from ._taylor import _Taylor

__all__ = ["ENSEMBLE_MODES", "LOSSES", "ON_NONFINITE", "TrainResult", "train"]

LOSSES = ("mse", "cross_entropy")
ON_NONFINITE = ("raise", "stop", "ignore")
ENSEMBLE_MODES = ("vmap", "map")
DEFAULT_CHUNK = 1024
CHECKPOINT_FILE = "train_checkpoint.npz"


class TrainResult(NamedTuple):
    """Result of ``dynamics.train``. With ``ensemble=True`` every array below except ``steps``
    and ``ntk_steps`` has a leading member axis E; R = number of records, K = len(ntk_at).

    - ``steps`` (R,): the step indices recorded (0, r, 2r, ..., steps).
    - ``loss`` (E, R): training loss at those steps.
    - ``pred_train`` (E, R, *f(params, x).shape): predictions on ``x``.
    - ``pred_test`` (E, R, *f(params, x_test).shape) or None: predictions on ``x_test``.
    - ``loss_test`` (E, R) or None: the loss on (``x_test``, ``y_test``).
    - ``ntk_steps`` (K,) or None and ``ntk`` (E, K, n, n) or None: the empirical NTK on ``x``
      (``kernels.empirical_ntk``, mean over outputs) at those steps.
    - ``nonfinite_step`` (E,) int: the first step whose loss was not finite, -1 if none.
    - ``params``, ``opt_state``: the final parameters and optimizer state.

    >>> import jax.numpy as jnp, optax
    >>> from widelimits import dynamics
    >>> res = dynamics.train(lambda p, x: x * p, jnp.array(0.0), jnp.ones((3, 1)),
    ...                      jnp.ones((3, 1)), optax.sgd(0.1), 4, progress=False)
    >>> res.loss.shape, res.pred_train.shape, res.pred_test is None
    ((5,), (5, 3, 1), True)
    """

    steps: Any
    loss: Any
    pred_train: Any
    pred_test: Any
    loss_test: Any
    ntk_steps: Any
    ntk: Any
    nonfinite_step: Any
    params: Any
    opt_state: Any


_LOSS_FNS = {"mse": mse, "cross_entropy": cross_entropy}


WHO = "dynamics.train"


class _Config(NamedTuple):  # static (hashable) configuration of the compiled chunk
    optimizer: Any
    loss: Any
    record_every: int
    intervals: int
    n_ntk: int
    stop_on_nonfinite: bool
    ensemble: str | None
    model_axes: tuple


def _chunk_one(model, cfg: _Config, carry, j0, steps, data):
    """Run intervals j0 .. j0 + cfg.intervals - 1 of one model; record at each interval start."""
    loss_fn = _LOSS_FNS.get(cfg.loss, cfg.loss)
    x, y, x_test, y_test, ntk_at = data
    r = cfg.record_every
    last = (steps + r - 1) // r  # index of the interval starting at t = steps

    def record(params):
        pred = model(params, x)
        rec = {"loss": loss_fn(pred, y), "pred_train": pred}
        if x_test is not None:
            rec["pred_test"] = model(params, x_test)
            if y_test is not None:
                rec["loss_test"] = loss_fn(rec["pred_test"], y_test)
        return rec

    def ntk(params):
        f = spec_of(model) or (model.fn if isinstance(model, Static) else model)
        return kernels.empirical_ntk(f, params, x)

    def objective(params):
        return loss_fn(model(params, x), y)

    def tick(i, state):
        params, opt_state, ntk_buf, bad, t = state
        if cfg.n_ntk:
            k = jnp.minimum(jnp.searchsorted(ntk_at, t), cfg.n_ntk - 1)
            ntk_buf = jax.lax.cond(ntk_at[k] == t,
                                   lambda b: b.at[k].set(ntk(params).astype(b.dtype)),
                                   lambda b: b, ntk_buf)

        def update(s):
            p, o, b = s
            value, grads = jax.value_and_grad(objective)(p)
            updates, o_new = cfg.optimizer.update(grads, o, p)
            p_new = optax.apply_updates(p, updates)
            b_new = jnp.where((b < 0) & ~jnp.isfinite(value), t, b).astype(b.dtype)
            if cfg.stop_on_nonfinite:
                keep = b_new < 0
                p_new = jax.tree.map(lambda a, c: jnp.where(keep, a, c), p_new, p)
                o_new = jax.tree.map(lambda a, c: jnp.where(keep, a, c), o_new, o)
            return p_new, o_new, b_new

        params, opt_state, bad = jax.lax.cond(t < steps, update, lambda s: s,
                                              (params, opt_state, bad))
        return params, opt_state, ntk_buf, bad, t + 1

    def interval(state, j):
        params, opt_state, ntk_buf, bad = state
        shapes = jax.eval_shape(record, params)
        rec = jax.lax.cond(j <= last, record,
                           lambda _: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes),
                           params)
        state = jax.lax.fori_loop(0, r, tick, (params, opt_state, ntk_buf, bad, j * r))
        return state[:4], rec

    return jax.lax.scan(interval, carry, j0 + jnp.arange(cfg.intervals))


def _chunk(model, cfg, carry, j0, steps, data):
    if not cfg.ensemble:
        return _chunk_one(model, cfg, carry, j0, steps, data)
    leaves, treedef = jax.tree.flatten(model)
    mapped = [i for i, a in enumerate(cfg.model_axes) if a == 0]

    def one(own, c):  # own: this member's values of the mapped model leaves
        full = list(leaves)
        for i, v in zip(mapped, own, strict=True):
            full[i] = v
        return _chunk_one(jax.tree.unflatten(treedef, full), cfg, c, j0, steps, data)

    own = [leaves[i] for i in mapped]
    if cfg.ensemble == "map":
        return jax.lax.map(lambda args: one(*args), (own, carry))
    return jax.vmap(one)(own, carry)


_chunk_jit = jax.jit(_chunk, static_argnums=(1,))


# ----------------------------------------------------------------------------- argument checks

def _array(name, a):
    if a is None:
        return None
    a = jnp.asarray(a)
    if a.ndim < 1:
        raise ValueError(f"{WHO}: {name} must have a leading batch axis, got shape "
                         f"{tuple(a.shape)}.")
    return a


def _model_axes(model, params0, ensemble):
    leaves = jax.tree.leaves(model)
    if not ensemble:
        return (None,) * len(leaves)
    if isinstance(model, _Taylor):
        n_shared = len(jax.tree.leaves(model.model))
        stacked = [np.shape(a) for a in jax.tree.leaves(params0)]
        own = [np.shape(a) for a in jax.tree.leaves(model.params0)]
        axis = 0 if own == stacked else None
        if axis is None and own != [s[1:] for s in stacked]:
            raise ValueError(f"{WHO}: the linearisation point of f has leaf shapes "
                             f"{own}; expected the stacked shapes of params0 {stacked} (one per "
                             "member) or those of one member.")
        return (None,) * n_shared + (axis,) * (len(leaves) - n_shared)
    return (None,) * len(leaves)


class _Checked(NamedTuple):
    """The arguments of ``train`` after ``_check``."""

    model: Any  # f as a pytree callable model(params, x)
    steps: int
    record_every: int
    chunk_size: int | None
    x: Any
    y: Any
    x_test: Any
    y_test: Any
    ntk_at: tuple  # sorted distinct steps
    members: int | None  # ensemble size E (None without ensemble)
    model_axes: tuple  # per leaf of model: 0 if mapped over the members, else None


def _check(f, params0, x, y, steps, loss, x_test, y_test, record_every, ntk_at, ensemble,
           on_nonfinite, chunk_size) -> _Checked:
    model, _ = as_model(f, who=WHO)
    steps = integer(WHO, "steps", steps)
    record_every = integer(WHO, "record_every", record_every)
    chunk_size = integer(WHO, "chunk_size", chunk_size) if chunk_size is not None else None
    if not (isinstance(loss, str) and loss in LOSSES) and (isinstance(loss, str)
                                                            or not callable(loss)):
        raise ValueError(f"{WHO}: loss must be one of {LOSSES} or a callable "
                         f"loss(f_x, y) -> scalar, got {loss!r}.")
    if on_nonfinite not in ON_NONFINITE:
        raise ValueError(f"{WHO}: on_nonfinite must be one of {ON_NONFINITE}, got "
                         f"{on_nonfinite!r}.")
    x, y = _array("x", x), _array("y", y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{WHO}: x and y must have the same number of examples; x has "
                         f"shape {tuple(x.shape)}, y has {tuple(y.shape)}.")
    x_test, y_test = _array("x_test", x_test), _array("y_test", y_test)
    if y_test is not None and x_test is None:
        raise ValueError(f"{WHO}: y_test needs x_test.")
    if x_test is not None and x_test.shape[1:] != x.shape[1:]:
        raise ValueError(f"{WHO}: x_test must have the per-example shape of x "
                         f"{tuple(x.shape[1:])}, got {tuple(x_test.shape)}.")
    if y_test is not None and y_test.shape[0] != x_test.shape[0]:
        raise ValueError(f"{WHO}: x_test and y_test must have the same number of "
                         f"examples; got {tuple(x_test.shape)} and {tuple(y_test.shape)}.")
    try:
        ntk_list = sorted({integer(WHO, "ntk_at entries", t, minimum=0) for t in ntk_at})
    except TypeError as err:
        raise TypeError(f"{WHO}: ntk_at must be a sequence of ints, got {ntk_at!r}.") \
            from err
    if ntk_list and ntk_list[-1] > steps:
        raise ValueError(f"{WHO}: ntk_at steps must lie in [0, steps={steps}], got "
                         f"{ntk_list[-1]}.")
    leaves = jax.tree.leaves(params0)
    if not leaves:
        raise ValueError(f"{WHO}: params0 has no array leaves, got {params0!r}.")
    members = None
    member = params0
    if ensemble:
        sizes = {np.shape(a)[0] if np.ndim(a) else None for a in leaves}
        if len(sizes) != 1 or None in sizes:
            raise ValueError(f"{WHO}: with ensemble=True every leaf of params0 needs the "
                             f"same leading member axis, got leading sizes {sorted(map(str, sizes))}.")
        members = sizes.pop()
        member = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a)[1:], jnp.result_type(a)),
                              params0)
    model_axes = _model_axes(model, params0, ensemble)
    one_model = model
    if isinstance(model, _Taylor) and ensemble and any(a == 0 for a in model_axes):
        one_model = type(model)(model.model, member)
    try:
        out = jax.eval_shape(lambda m, p: m(p, x), one_model, member)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{WHO}: f(params, x) failed for x of shape {tuple(x.shape)}: "
                         f"{err}") from err
    if isinstance(loss, str) and out.shape != y.shape:
        raise ValueError(f"{WHO}: f(params, x) has shape {out.shape}; y must have the same "
                         f"shape for loss={loss!r}, got {tuple(y.shape)}.")
    if y_test is not None and isinstance(loss, str) and y_test.shape[1:] != y.shape[1:]:
        raise ValueError(f"{WHO}: y_test must have the per-example shape of y "
                         f"{tuple(y.shape[1:])}, got {tuple(y_test.shape)}.")
    loss_fn = _LOSS_FNS.get(loss, loss)
    value = jax.eval_shape(loss_fn, out, y)
    if getattr(value, "shape", None) != ():
        raise ValueError(f"{WHO}: loss(f_x, y) must return a scalar, got "
                         f"{getattr(value, 'shape', value)}.")
    return _Checked(model, steps, record_every, chunk_size, x, y, x_test, y_test,
                    tuple(ntk_list), members, model_axes)


def _fingerprints(model, params0, opt_state0, optimizer, ensemble, data, config):
    """Fingerprints (``_resume.fingerprint``) of every part of the run, by name, so a foreign
    checkpoint is refused naming the parts that differ."""
    probe = "n/a"
    try:  # the optimizer's first update of a fixed probe gradient (params0 itself)
        upd = jax.vmap(optimizer.update) if ensemble else optimizer.update
        probe = _resume.fingerprint(upd(params0, opt_state0, params0)[0])
    except Exception:  # noqa: BLE001 - optimizers needing extra arguments are not probed
        pass
    ours = isinstance(model, Static | SpecApply | _Taylor)  # reprs without memory addresses
    model_desc = (repr(model) if ours else "") + type(model).__qualname__
    return {
        "f": _resume.fingerprint(model_desc, jax.tree.leaves(model)),
        "params0": _resume.fingerprint(params0),
        "optimizer": _resume.fingerprint(opt_state0, probe),
        "data": _resume.fingerprint([a for a in data if a is not None]),
        "config": _resume.fingerprint(repr(config)),
    }


def checkpoint_file(checkpoint) -> Path | None:
    """The file for ``checkpoint``: a path ending in ``.npz`` as is, anything else is a folder
    holding ``train_checkpoint.npz``; ``None`` for no checkpointing."""
    if checkpoint is None:
        return None
    if not isinstance(checkpoint, str | os.PathLike):
        raise TypeError(f"{WHO}: checkpoint must be None, a path ending in .npz or a folder, "
                        f"got {checkpoint!r} of type {type(checkpoint).__name__}.")
    path = Path(checkpoint)
    return path if path.suffix == ".npz" else path / CHECKPOINT_FILE


def train(f, params0, x, y, optimizer: optax.GradientTransformation, steps: int, *,
          loss="mse", x_test=None, y_test=None, record_every: int = 1, ntk_at=(),
          ensemble: bool = False, ensemble_mode: str = "vmap", opt_state=None,
          on_nonfinite: str = "raise", progress: bool = True, checkpoint=None,
          chunk_size: int | None = None) -> TrainResult:
    """Full-batch training of ``f(params, x)`` on (``x``, ``y``) for ``steps`` optimizer steps.

    ``f``: a callable ``f(params, x)``, a widelimits spec or its bound ``apply``, a
    ``flax.nnx`` Module, or a model from ``dynamics.linearize`` / ``dynamics.quadratic``.
    ``x`` (n, ...), ``y`` (n, ...) with
    ``f(params0, x).shape == y.shape`` for the built-in losses.

    ``loss``: ``"mse"``, L = 1/2 mean over all entries of (f(x) - y)^2, i.e. 1/2 sum (f - y)^2
    / y.size: the convention of the kernel-limit solution f_t = y + exp(-eta Theta t / y.size)
    (f_0 - y) with t the number of plain gradient-descent steps at learning rate eta;
    ``"cross_entropy"``, the mean over examples of -sum_k y_k log softmax(f)_k (``y`` one-hot or
    probabilities); or any callable ``loss(f_x, y) -> scalar``.

    ``optimizer``: an optax ``GradientTransformation`` (e.g. ``optax.sgd(eta)``); its
    hyperparameters are compile-time constants unless it comes from ``optax.inject_hyperparams``
    (then they live in ``opt_state``, and an ensemble may give each member its own by passing
    ``opt_state``, default ``optimizer.init(params0)``, vmapped for an ensemble).

    Records at steps 0, r, 2r, ..., steps (r = ``record_every``): the loss, the predictions on
    ``x`` and on ``x_test`` (and the loss on ``x_test``, ``y_test`` if given); at each step of
    ``ntk_at`` (ints in [0, steps]) the empirical NTK on ``x`` (``kernels.empirical_ntk``,
    mean over outputs: (n, n)). See ``TrainResult`` for names and shapes.

    ``ensemble=True``: ``params0`` (and ``opt_state``) carry a leading member axis E (e.g.
    ``jax.vmap(net.init, (0, None))(keys, x.shape)``); all members train in one vmapped
    program. A linearised/quadratic model built at the stacked ``params0`` is mapped over too.
    ``ensemble_mode``: ``"vmap"`` (default) batches the members' operations (best on
    accelerators); ``"map"`` runs them one after another inside the same compiled program
    (``lax.map``), often faster on CPU, where batched matrix products are slower than one
    product per member. Both give the same numbers as separate runs, to round-off.

    ``on_nonfinite``: what happens when the loss at some step is NaN or infinite: ``"raise"``
    (default) raises ``FloatingPointError`` naming the first such step after the chunk where it
    happened; ``"stop"`` freezes that member's parameters there (later records repeat that
    state) and ``"ignore"`` goes on; both report the step in ``nonfinite_step`` (-1: never),
    e.g. to map divergence against the learning rate.

    ``chunk_size``: steps per compiled chunk (rounded up to a multiple of ``record_every``;
    default ``min(steps, 1024)``); ``progress`` shows a tqdm bar advancing per chunk.
    ``checkpoint``: a ``.npz`` path or a folder; the state and the records so far are written
    after every chunk, and a run started again with the same arguments resumes there and returns
    results identical (bit for bit on CPU) to an uninterrupted run, or returns at once if the run
    had finished (the file format of ``widelimits._resume``: written atomically, with
    fingerprints of f, params0, the optimizer, the data and the configuration). A checkpoint of
    different arguments raises ``ValueError`` naming the parts that differ.

    >>> import jax.numpy as jnp, optax
    >>> from widelimits import dynamics
    >>> x, y = jnp.array([[1.0], [2.0]]), jnp.array([[2.0], [4.0]])
    >>> res = dynamics.train(lambda p, x: x * p, jnp.array(0.0), x, y, optax.sgd(0.5), 20,
    ...                      record_every=10, progress=False)
    >>> res.steps.tolist(), round(float(res.params), 4)   # fits y = 2 x
    ([0, 10, 20], 2.0)
    """
    args = _check(f, params0, x, y, steps, loss, x_test, y_test, record_every, ntk_at, ensemble,
                  on_nonfinite, chunk_size)
    model, steps, r, x = args.model, args.steps, args.record_every, args.x
    ntk_list, members = args.ntk_at, args.members
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"{WHO}: optimizer must be an optax GradientTransformation "
                        f"(e.g. optax.sgd(0.1)), got {type(optimizer).__name__}.")
    params0 = jax.tree.map(jnp.asarray, params0)
    if opt_state is None:
        opt_state = (jax.vmap(optimizer.init) if ensemble else optimizer.init)(params0)
    last = -(-steps // r)  # records at intervals 0 .. last
    k = -(-(args.chunk_size or min(steps, DEFAULT_CHUNK)) // r)
    n_chunks = -(-(last + 1) // k)
    if ensemble_mode not in ENSEMBLE_MODES:
        raise ValueError(f"{WHO}: ensemble_mode must be one of {ENSEMBLE_MODES}, got "
                         f"{ensemble_mode!r}.")
    cfg = _Config(optimizer, loss, r, k, len(ntk_list), on_nonfinite == "stop",
                  ensemble_mode if ensemble else None, args.model_axes)
    ntk_arr = jnp.asarray(ntk_list if ntk_list else [0], jnp.int32)
    data = (x, args.y, args.x_test, args.y_test, ntk_arr)

    ntk_buf = jnp.zeros((len(ntk_list), x.shape[0], x.shape[0]), jnp.result_type(*jax.tree.leaves(
        params0)))
    bad = jnp.asarray(-1, jnp.int32)
    if ensemble:
        ntk_buf = jnp.broadcast_to(ntk_buf, (members,) + ntk_buf.shape)
        bad = jnp.full((members,), -1, jnp.int32)
    carry = (params0, opt_state, ntk_buf, bad)
    treedef = jax.tree.structure(carry)

    path = checkpoint_file(checkpoint)
    records: dict[str, list] = {}
    start = 0
    if path is not None:
        config = (steps, r, k, ntk_list, repr(loss) if isinstance(loss, str) else
                  getattr(loss, "__qualname__", repr(loss)), on_nonfinite, cfg.ensemble)
        prints = _fingerprints(model, params0, opt_state, optimizer, ensemble, data[:4], config)
        saved = _resume.load(path, prints, who=WHO)
        if saved is not None:
            start = int(saved["next_chunk"])
            leaves = [saved[f"carry_{i}"] for i in range(treedef.num_leaves)]
            carry = jax.tree.unflatten(treedef, leaves)
            records = {name[4:]: [saved[name]] for name in saved if name.startswith("rec_")}

    bar = tqdm(total=steps, desc="dynamics.train", unit="step", disable=not progress,
               initial=min(start * k * r, steps))
    try:
        for c in range(start, n_chunks):
            carry, rec = _chunk_jit(model, cfg, carry, jnp.asarray(c * k, jnp.int32),
                                    jnp.asarray(steps, jnp.int32), data)
            for name, value in rec.items():
                records.setdefault(name, []).append(value)
            bad = np.asarray(carry[3])
            if on_nonfinite == "raise" and (bad >= 0).any():
                first = int(bad[bad >= 0].min())
                who = f" (member {int(np.argmax(bad == first))})" if ensemble else ""
                raise FloatingPointError(
                    f"{WHO}: the loss became non-finite at step {first}{who}; lower "
                    "the learning rate, or pass on_nonfinite='stop' or 'ignore' to record the "
                    "divergence.")
            if path is not None:
                arrays = {f"carry_{i}": np.asarray(v)
                          for i, v in enumerate(jax.tree.leaves(carry))}
                axis = 1 if ensemble else 0
                arrays |= {f"rec_{name}": np.concatenate([np.asarray(v) for v in vals], axis)
                           for name, vals in records.items()}
                arrays["next_chunk"] = np.asarray(c + 1)
                _resume.save(path, arrays, prints)
            bar.update(min((c + 1) * k * r, steps) - bar.n)
    finally:
        bar.close()
    return _result(carry, records, steps, r, last, ntk_list, ensemble, on_nonfinite)


def _result(carry, records, steps, r, last, ntk_list, ensemble, on_nonfinite):
    axis = 1 if ensemble else 0
    recs = {name: jnp.concatenate([jnp.asarray(v) for v in vals], axis) for name, vals in
            records.items()}
    recs = {name: (v[:, :last + 1] if ensemble else v[:last + 1]) for name, v in recs.items()}
    params, opt_state, ntk_buf, bad = carry
    final_loss = recs["loss"][..., -1]
    bad = jnp.where((bad < 0) & ~jnp.isfinite(final_loss), steps, bad).astype(jnp.int32)
    if on_nonfinite == "raise" and bool((bad >= 0).any()):
        raise FloatingPointError(f"{WHO}: the loss became non-finite at step {steps}, "
                                 "after the last update; lower the learning rate, or pass "
                                 "on_nonfinite='stop' or 'ignore' to record the divergence.")
    steps_rec = jnp.minimum(jnp.arange(last + 1) * r, steps)
    return TrainResult(
        steps=steps_rec, loss=recs["loss"], pred_train=recs["pred_train"],
        pred_test=recs.get("pred_test"), loss_test=recs.get("loss_test"),
        ntk_steps=jnp.asarray(ntk_list, jnp.int32) if ntk_list else None,
        ntk=jnp.asarray(ntk_buf) if ntk_list else None, nonfinite_step=bad,
        params=params, opt_state=opt_state)
