"""dynamics.train against hand-written optax loops, per-member runs, the exact linear-model
recursion, and a simulated kill + resume."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests.conftest import rtol_for
from widelimits import _resume, dynamics, kernels, nets
from widelimits.dynamics.training import _train

NET = nets.mlp(8, 1, nets.Tanh(), out_width=2, b_std=0.3)
N, D, E = 5, 3, 3


@functools.cache
def _data(dtype):
    """x, y, x_test, params0 and E stacked params0; NumPy draws (no compilation): N(0, 1)
    parameters are the NTK-parameterization initialisation."""
    rng = np.random.default_rng(0)
    draw = lambda *shape: jnp.asarray(rng.normal(size=shape), dtype)  # noqa: E731
    x, y, xt = draw(N, D), draw(N, 2), draw(2, D)
    shapes = jax.eval_shape(lambda k: NET.init(k, (N, D)), jax.random.PRNGKey(0))
    p0 = jax.tree.map(lambda s: draw(*s.shape), shapes)
    pe = jax.tree.map(lambda s: draw(E, *s.shape), shapes)
    return x, y, xt, p0, pe


def _hand_loop(f, p, opt, x, y, xt, steps, record, ntk_at):
    """Plain optax loop; records (loss, f(x), f(xt)) at ``record`` and the NTK at ``ntk_at``."""
    loss = lambda p: 0.5 * jnp.mean((f(p, x) - y) ** 2)  # noqa: E731

    @jax.jit
    def step(p, s):
        g = jax.grad(loss)(p)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s

    measure = jax.jit(lambda p: (loss(p), f(p, x), f(p, xt)))
    s = jax.jit(opt.init)(p)
    recs, ntks = [], []
    for t in range(steps + 1):
        if t in record:
            recs.append(measure(p))
        if t in ntk_at:
            ntks.append(kernels.empirical_ntk(f, p, x))
        if t < steps:
            p, s = step(p, s)
    return [np.stack(r) for r in zip(*recs, strict=True)], np.stack(ntks), p


def test_matches_hand_written_optax_loop(dtype):
    x, y, xt, p0, _ = _data(dtype)
    opt = optax.sgd(0.2, momentum=0.9)
    res = dynamics.train(NET.apply, p0, x, y, opt, 7, x_test=xt, y_test=y[:2], record_every=3,
                         ntk_at=(5, 0, 7), progress=False, chunk_size=4)
    (loss, pred, pred_t), ntk, p_end = _hand_loop(NET.apply, p0, opt, x, y, xt, 7, (0, 3, 6, 7),
                                                  (0, 5, 7))
    rtol = rtol_for(dtype, 1e-12, 2e-5)
    np.testing.assert_array_equal(res.steps, [0, 3, 6, 7])
    np.testing.assert_array_equal(res.ntk_steps, [0, 5, 7])
    assert res.pred_train.shape == (4, N, 2) and res.pred_test.shape == (4, 2, 2)
    assert res.ntk.shape == (3, N, N) and res.loss.dtype == dtype
    np.testing.assert_allclose(res.loss, loss, rtol=rtol)
    np.testing.assert_allclose(res.pred_train, pred, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(res.pred_test, pred_t, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(res.loss_test, 0.5 * np.mean((pred_t - y[:2]) ** 2, axis=(1, 2)),
                               rtol=rtol)
    np.testing.assert_allclose(res.ntk, ntk, rtol=rtol, atol=rtol)
    assert not np.allclose(res.ntk[0], res.ntk[2], rtol=100 * rtol)  # the kernel moved
    for a, b in zip(jax.tree.leaves(res.params), jax.tree.leaves(p_end), strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
    assert int(res.nonfinite_step) == -1


def test_ensemble_equals_members_and_compiles_once():
    x, y, xt, _, pe = _data(jnp.float64)
    opt = optax.adam(0.05)
    kw = dict(x_test=xt, record_every=2, ntk_at=(0, 4), progress=False)
    res = dynamics.train(NET.apply, pe, x, y, opt, 5, ensemble=True, **kw)
    assert res.loss.shape == (E, 4) and res.pred_train.shape == (E, 4, N, 2)
    assert res.ntk.shape == (E, 2, N, N) and res.nonfinite_step.shape == (E,)
    before = _train._chunk_jit._cache_size()
    for e in range(E):
        member = jax.tree.map(lambda a, e=e: a[e], pe)
        one = dynamics.train(NET.apply, member, x, y, opt, 5, **kw)
        for name in ("loss", "pred_train", "pred_test", "ntk"):  # equal to a few ulp of the scale
            a, b = getattr(res, name)[e], getattr(one, name)
            np.testing.assert_allclose(a, b, rtol=0, atol=4 * np.finfo(b.dtype).eps * np.abs(b).max())
    assert _train._chunk_jit._cache_size() <= before + 1  # members reuse one compilation
    mapped = dynamics.train(NET.apply, pe, x, y, opt, 5, ensemble=True, ensemble_mode="map", **kw)
    for a, b in zip(jax.tree.leaves(mapped), jax.tree.leaves(res), strict=True):
        if jnp.issubdtype(b.dtype, jnp.integer):  # steps, ntk_steps, nonfinite_step
            np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_allclose(a, b, rtol=0, atol=4 * np.finfo(b.dtype).eps * np.abs(b).max())


def test_linearized_ensemble_follows_exact_kernel_recursion():
    """For f_lin and plain GD on L = 1/2 sum (f - y)^2 / y.size, function space evolves exactly
    as f_{t+1} = f_t - (eta / y.size) Theta (f_t - y), Theta the full (n k, n k) NTK at p0."""
    x, y, _, _, pe = _data(jnp.float64)
    eta, steps = 0.7, 6
    f_lin = dynamics.linearize(NET.apply, pe)  # one linearisation point per member
    res = dynamics.train(f_lin, pe, x, y, optax.sgd(eta), steps, ensemble=True,
                         ntk_at=(0, steps), progress=False)
    for e in range(E):
        member = jax.tree.map(lambda a, e=e: a[e], pe)
        theta = kernels.empirical_ntk(NET.apply, member, x, output="full")  # (n, n, k, k)
        theta = np.asarray(theta).transpose(0, 2, 1, 3).reshape(N * 2, N * 2)
        f = np.asarray(NET.apply(member, x)).reshape(-1)
        for t in range(steps + 1):
            np.testing.assert_allclose(res.pred_train[e, t].reshape(-1), f, rtol=1e-11, atol=1e-12)
            f = f - eta / y.size * theta @ (f - np.asarray(y).reshape(-1))
        # the linearised model's kernel does not move
        np.testing.assert_allclose(res.ntk[e, 1], res.ntk[e, 0], rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(res.ntk[e, 0], np.trace(theta.reshape(N, 2, N, 2), axis1=1,
                                                           axis2=3) / 2, rtol=1e-11)


def test_resume_after_kill_is_bit_identical(tmp_path, monkeypatch):
    x, y, xt, p0, _ = _data(jnp.float32)
    f_quad = dynamics.quadratic(NET.apply, p0)
    opt = optax.sgd(0.3, momentum=0.5)
    kw = dict(x_test=xt, record_every=2, ntk_at=(3,), chunk_size=2)
    full = dynamics.train(f_quad, p0, x, y, opt, 9, progress=False, **kw)
    ck = tmp_path / "run"

    calls = []
    real_save, real_chunk = _resume.save, _train._chunk_jit

    def save_then_die(path, arrays, fp):
        real_save(path, arrays, fp)
        raise KeyboardInterrupt("simulated kill")

    def counting_chunk(*args):
        calls.append(1)
        return real_chunk(*args)

    monkeypatch.setattr(_resume, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        dynamics.train(f_quad, p0, x, y, opt, 9, progress=False, checkpoint=ck, **kw)
    monkeypatch.setattr(_resume, "save", real_save)
    monkeypatch.setattr(_train, "_chunk_jit", counting_chunk)
    resumed = dynamics.train(f_quad, p0, x, y, opt, 9, progress=True, checkpoint=ck, **kw)
    assert len(calls) == 5  # 6 records (0, 2, .., 8, 9), one per chunk; the first was saved
    again = dynamics.train(f_quad, p0, x, y, opt, 9, progress=False, checkpoint=ck, **kw)
    assert len(calls) == 5  # a finished run returns from its checkpoint
    for out in (resumed, again):
        for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(full), strict=True):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="optimizer"):
        dynamics.train(f_quad, p0, x, y, optax.sgd(0.1), 9, progress=False, checkpoint=ck, **kw)
    with pytest.raises(ValueError, match="data"):
        dynamics.train(f_quad, p0, x, -y, opt, 9, progress=False, checkpoint=ck, **kw)


def test_nonfinite_raise_stop_ignore():
    """A linear model x w with eta far above 2 y.size / lambda_max diverges geometrically."""
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)))
    y = jnp.ones((4, 1))
    w0 = {"w": jnp.zeros((3, 1))}
    lin = lambda p, x: x @ p["w"]  # noqa: E731
    sq = lambda f, y: jnp.mean((f - y) ** 2)  # a callable loss  # noqa: E731
    opt = optax.sgd(1e30)
    with pytest.raises(FloatingPointError, match="non-finite at step"):
        dynamics.train(lin, w0, x, y, opt, 20, loss=sq, progress=False)
    stop = dynamics.train(lin, w0, x, y, opt, 20, loss=sq, progress=False, on_nonfinite="stop")
    ignore = dynamics.train(lin, w0, x, y, opt, 20, loss=sq, progress=False,
                            on_nonfinite="ignore", ntk_at=(0,))
    np.testing.assert_allclose(ignore.ntk[0], x @ x.T, rtol=1e-12)  # NTK of x w: x x^T
    t = int(stop.nonfinite_step)
    assert 0 < t < 20 and int(ignore.nonfinite_step) == t
    assert np.all(np.isfinite(stop.loss[:t])) and not np.isfinite(stop.loss[t])
    np.testing.assert_array_equal(stop.loss[:t + 1], ignore.loss[:t + 1])
    np.testing.assert_array_equal(stop.pred_train[t:], np.broadcast_to(stop.pred_train[t],
                                                                       stop.pred_train[t:].shape))
    # the hand-computed first steps: w1 = -eta grad L(0) = eta 2 x^T y / 4
    np.testing.assert_allclose(stop.pred_train[1], x @ (1e30 * 2 * x.T @ y / 4), rtol=1e-12)


def test_errors():
    x, y, _, p0, _ = _data(jnp.float64)
    opt = optax.sgd(0.1)
    cases = [
        (dict(y=y[:3]), ValueError, "same number of examples"),
        (dict(y=y[:, :1]), ValueError, "must have the same shape"),
        (dict(steps=0), ValueError, "steps must be a positive int"),
        (dict(steps=2.5), TypeError, "steps must be a positive int"),
        (dict(record_every=0), ValueError, "record_every"),
        (dict(ntk_at=(0, 4)), ValueError, r"ntk_at steps must lie in \[0, steps=3\]"),
        (dict(ntk_at=(-1,)), ValueError, "ntk_at"),
        (dict(loss="hinge"), ValueError, "loss must be one of"),
        (dict(loss=lambda f, y: (f - y) ** 2), ValueError, "must return a scalar"),
        (dict(on_nonfinite="warn"), ValueError, "on_nonfinite"),
        (dict(optimizer="sgd"), TypeError, "GradientTransformation"),
        (dict(f=3), TypeError, "f must be a callable"),
        (dict(x_test=jnp.ones((2, 4))), ValueError, "x_test"),
        (dict(y_test=y), ValueError, "y_test needs x_test"),
        (dict(ensemble=True), ValueError, "leading member axis"),
        (dict(checkpoint=3), TypeError, "checkpoint"),
        (dict(chunk_size=0), ValueError, "chunk_size"),
        (dict(ensemble_mode="pmap"), ValueError, "ensemble_mode"),
    ]
    for change, err, match in cases:
        kw = dict(f=NET.apply, params0=p0, x=x, y=y, optimizer=opt, steps=3, progress=False)
        kw.update(change)
        with pytest.raises(err, match=match):
            dynamics.train(**kw)
