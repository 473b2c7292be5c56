"""Function-space gradient flow for any differentiable loss in the kernel limit (Jacot et al.
2018), integrated numerically with diffrax on the train and test points jointly:

  d f(X)/dt  = −η Θ(X, X)  ∇_f L(f(X), Y),
  d f(x*)/dt = −η Θ(x*, X) ∇_f L(f(X), Y),

with time t in steps of size η (as in the closed form :func:`gradient_descent_mse`; with
``loss=mse`` this is exactly its gradient flow).
"""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from ..._checks import is_concrete
from ._args import check_finite, check_test_train, float_dtype, kernel_array

__all__ = ["gradient_flow"]


def gradient_flow(loss, k_train_train, y_train, ts, fx_train_0=0.0, k_test_train=None,
                  fx_test_0=None, learning_rate=1.0, *, rtol=1e-6, atol=1e-6, solver=None,
                  dt0=None, max_steps=100_000):
    """Outputs of kernel gradient flow on ``loss`` at the times ``ts``.

    Args:
      loss: ``loss(fx, y) -> scalar``, e.g. :func:`mse` (½ mean) or :func:`cross_entropy`.
      k_train_train: ``Kernel`` (its ``.ntk``) or (n, n) array Θ.
      y_train: targets of the shape of the outputs, (n, k) (or whatever ``loss`` accepts with
        leading axis n).
      ts: (T,) non-decreasing times >= 0, in steps of size η (finite).
      fx_train_0: initial train outputs (scalar or ``y_train``'s shape).
      k_test_train: optional ``Kernel`` or (m, n) array; then test outputs are integrated too.
      fx_test_0: initial test outputs (scalar or (m,) + y_train.shape[1:]; default 0).
      learning_rate: η.
      rtol, atol: diffrax ``PIDController`` tolerances; solver: a diffrax solver (default
        ``Tsit5()``; pass e.g. ``diffrax.Kvaerno5()`` for stiff problems, i.e. η λ_max t/n
        large); dt0: initial step (None: chosen by diffrax); max_steps: solver step limit
        (exceeding it raises an error from diffrax).

    Returns ``fx_train`` of shape (T,) + y_train.shape, and ``(fx_train, fx_test)`` when
    ``k_test_train`` is given (test (T, m) + y_train.shape[1:]).

    >>> import jax.numpy as jnp
    >>> from widelimits import dynamics
    >>> f = dynamics.gradient_flow(dynamics.mse, jnp.eye(2), jnp.ones((2, 1)), jnp.array([2.0]))
    >>> [round(float(v), 4) for v in f[0, :, 0]]   # 1 - exp(-t / 2) at t = 2
    [0.6321, 0.6321]
    """
    if not callable(loss):
        raise TypeError(f"loss must be a callable loss(fx, y), got {type(loss).__name__}")
    theta = kernel_array(k_train_train, "ntk", "k_train_train")
    if theta.ndim != 2 or theta.shape[0] != theta.shape[1]:
        raise ValueError(f"k_train_train: expected a square (n, n) kernel, got {theta.shape}")
    n = theta.shape[0]
    y = jnp.asarray(y_train)
    if y.ndim < 1 or y.shape[0] != n:
        raise ValueError(f"y_train: expected leading axis {n} (the kernel's), got {y.shape}")
    check_finite(theta, "k_train_train")
    check_finite(y, "y_train")
    dtype = float_dtype(theta, y)
    theta, y = theta.astype(dtype), y.astype(dtype)
    ts = jnp.asarray(ts, dtype)
    if ts.ndim != 1 or ts.shape[0] == 0:
        raise ValueError(f"ts: expected a non-empty 1-d array of times, got shape {ts.shape}")
    if is_concrete(ts):
        tn = np.asarray(ts)
        if not np.all(np.isfinite(tn)) or np.any(tn < 0) or np.any(np.diff(tn) < 0):
            raise ValueError(f"ts must be finite, >= 0 and non-decreasing, got {tn}")
    f0 = jnp.broadcast_to(jnp.asarray(fx_train_0, dtype), y.shape)
    check_finite(f0, "fx_train_0")
    state0 = {"train": f0}
    if k_test_train is not None:
        kt = check_test_train(kernel_array(k_test_train, "ntk", "k_test_train"), n,
                              "k_test_train").astype(dtype)
        ft0 = jnp.broadcast_to(jnp.asarray(0.0 if fx_test_0 is None else fx_test_0, dtype),
                               (kt.shape[0],) + y.shape[1:])
        check_finite(ft0, "fx_test_0")
        state0["test"] = ft0
    lr = jnp.asarray(learning_rate, dtype)
    grad = jax.grad(lambda f: loss(f, y))

    def rhs(t, state, args):
        g = grad(state["train"]).reshape(n, -1)
        out = {"train": (-lr * theta @ g).reshape(y.shape)}
        if "test" in state:
            out["test"] = (-lr * kt @ g).reshape(state["test"].shape)
        return out

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(rhs), diffrax.Tsit5() if solver is None else solver,
        t0=jnp.zeros((), dtype), t1=ts[-1], dt0=dt0, y0=state0,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps)
    if k_test_train is None:
        return sol.ys["train"]
    return sol.ys["train"], sol.ys["test"]
