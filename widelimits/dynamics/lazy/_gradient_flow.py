"""Closed-form gradient flow / gradient descent on the MSE loss in the kernel (lazy) limit.

Conventions (shared by every function of ``widelimits.dynamics.lazy``):

* **Loss.** ``L(f) = ½ Σ (f(X) − Y)² / Y.size`` (½ mean over all entries of the targets
  ``Y`` of shape (n, k) or (n,)). Gradient descent with learning rate ``η`` on the parameters is,
  in the kernel limit, the function-space recursion ``f ← f − (η / Y.size) Θ (f − Y)``.
* **Time** is measured in steps of size ``η``: continuous time ``t`` is the number of steps, and
  gradient flow gives ``f_t(X) = Y + exp(−η Θ t / Y.size) (f_0(X) − Y)``; discrete gradient
  descent (``steps=``) replaces the exponential by ``(I − η Θ / Y.size)^steps``. Lee et al.
  2019 (Sec. 2) normalise the loss per example, ``(1/2n) Σ_i ||f(x_i) − y_i||²``, whose
  gradient ``(f − Y)/n`` is k times ours for k outputs: their rate η is ``η / k`` here (for one
  output the two coincide). neural-tangents' ``predict`` module uses the same normalisation and
  time unit as here.
* **Kernels** are ``(n, n)`` (train-train) and ``(m, n)`` (test-train) for one output; a
  k-output network has kernel ``Θ ⊗ I_k`` (outputs independent given the kernel).
  Every kernel argument is a ``widelimits.kernels.Kernel`` (gradient descent trains with its
  ``.ntk``) or an array used as is.
* **diag_reg** is added to the diagonal of the train-train kernel in absolute units
  (``Θ + diag_reg · I`` replaces ``Θ`` everywhere); for a scale-free jitter pass
  ``diag_reg = r · trace(Θ) / n``.
* **Checks.** Outside ``jit`` (concrete values) kernels are checked for shape, symmetry,
  finiteness and positive semi-definiteness, ``t = ∞`` and GP inference for conditioning, and
  non-finite predictions raise ``ValueError``. Under ``jit`` (traced values) nothing can be
  checked; instead eigenvalues below ``eps · λ_max`` are treated as null directions wherever an
  inverse is needed (a pseudo-inverse), and negative round-off eigenvalues are clipped to 0, so
  no NaN is produced by an ill-conditioned kernel.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ..._checks import is_concrete
from ._args import (
    check_finite,
    check_rate,
    check_targets,
    check_test_train,
    check_times,
    float_dtype,
    kernel_array,
    pinv_evals,
    psd_eigh,
)

__all__ = ["MSEPredictor", "decay", "gradient_descent_mse", "max_learning_rate"]


# ----------------------------------------------------------------------------- decay factors
def _momentum_u(a, mu, k):
    """``U_k`` of the recursion ``U_{k+1} = (1 + μ − a) U_k − μ U_{k−1}``, ``U_0 = 1``, at
    ``|1 + μ − a|`` (the caller restores the sign), in closed form, elementwise, k >= 0."""
    p = jnp.abs(1 + mu - a)
    disc = p * p - 4 * mu
    kk = k + 1
    real = disc > 0
    # Distinct real roots z > z' = μ/z >= 0: U_k = z^k (1 − r^{k+1}) / (1 − r), 1 − r = s / z.
    s = jnp.sqrt(jnp.where(real, disc, 1.0))
    z = (p + s) / 2
    inner = real & (mu > 0)  # μ = 0: r = 0, U_k = z^k (kept out of log1p(-1) for gradients)
    x = jnp.where(inner, s / z, 0.5)
    u_real = z**k * jnp.where(inner, -jnp.expm1(kk * jnp.log1p(-x)) / x, 1.0)
    # Complex pair ρ e^{±iφ} (or a double root, w = 0): U_k = ρ^k sin((k+1)φ) / sin φ.
    rho = jnp.sqrt(mu)
    w = jnp.sqrt(jnp.where(real, 0.0, -disc))
    phi = jnp.arctan2(w, p)
    sin_phi = w / (2 * jnp.where(rho > 0, rho, 1.0))
    wpos = w > 0
    ratio = jnp.where(wpos, jnp.sin(kk * phi) / jnp.where(wpos, sin_phi, 1.0), kk)
    u_cplx = rho**k * ratio
    return jnp.where(real, u_real, u_cplx)


def _momentum_decay(a, mu, k):
    """``g_k`` with ``f_k − y = g_k (f_0 − y)`` for heavy ball on one eigen-direction,
    ``a = η λ / Y.size``: ``g_k = U_k − μ U_{k−1}`` (``U_{−1} = 0``), and its a → 0 limit of
    ``(1 − g_k) / a``."""
    negative = (1 + mu - a) < 0
    odd = jnp.mod(k, 2) == 1
    sgn_k = jnp.where(negative & odd, -1.0, 1.0)
    km1 = jnp.maximum(k - 1, 0)
    u = _momentum_u(a, mu, jnp.stack(jnp.broadcast_arrays(k, km1)))  # one graph for both
    u_k, u_km1 = u[0], jnp.where(k > 0, u[1], 0.0)
    sgn = jnp.where(negative, -1.0, 1.0)
    g = sgn_k * (u_k - mu * sgn * u_km1)
    # a = 0: U_j = (1 − μ^{j+1}) / (1 − μ); (1 − g_k)/a = Σ_{j<k} U_j.
    one_m = jnp.where(mu < 1, 1 - mu, 1.0)
    lim = (k - mu * (-jnp.expm1(k * jnp.log(jnp.where(mu > 0, mu, 1.0)))) * (mu > 0)
           / one_m) / one_m
    return g, lim


def _exprel(x):
    """``(1 − e^{−x}) / x`` for x >= 0, 1 at x = 0 (finite gradients)."""
    pos = x > 0
    return jnp.where(pos, -jnp.expm1(-x) / jnp.where(pos, x, 1.0), 1.0)


def _momentum_flow(a, mu, t):
    """``g(t)`` and ``(1 − g)/a`` for the continuous heavy ball on one eigen-direction.

    ``ü + (1 − μ) u̇ + a u = 0``, ``u(0) = 1``, ``u̇(0) = 0``, t in steps, a = ηλ/Y.size: the
    continuum limit of ``r_{k+1} = (1 + μ − a) r_k − μ r_{k−1}`` (neural-tangents'
    ``predict.gradient_descent`` with momentum, whose time √η t is in units of √η). With
    b = (1 − μ)/2 and ω² = b² − a: ``g = e^{−bt} (cosh ωt + b sinh(ωt)/ω)`` (cos for ω² < 0).
    Overdamped modes use ε = b − ω = a/(b + ω) >= 0 and δ = 2ω, so nothing overflows and
    ``(1 − g)/a = t [E(εt) − e^{−εt} E(δt)] / (b + ω)``, E(x) = (1 − e^{−x})/x, has no
    cancellation as a → 0.
    """
    b = (1 - mu) / 2
    w2 = b * b - a
    over = w2 >= 0
    pos = w2 > 0
    w = jnp.where(pos, jnp.sqrt(jnp.where(pos, w2, 1.0)), 0.0)
    eps = a / jnp.where(b + w > 0, b + w, 1.0)
    delta = 2 * w
    decay_slow = jnp.exp(-eps * t)
    # e^{-bt} cosh(wt) = e^{-εt} (1 + e^{-δt}) / 2;  e^{-bt} sinh(wt)/w = e^{-εt} t E(δt).
    g_over = decay_slow * ((1 + jnp.exp(-delta * t)) / 2 + b * t * _exprel(delta * t))
    ph_over = t * (_exprel(eps * t) - decay_slow * _exprel(delta * t)) / jnp.where(
        b + w > 0, b + w, 1.0)
    nu = jnp.sqrt(jnp.where(over, 1.0, -w2))
    nut = nu * t
    sinc = jnp.where(nut > 0, jnp.sin(nut) / jnp.where(nut > 0, nut, 1.0), 1.0)
    g_under = jnp.exp(-b * t) * (jnp.cos(nut) + b * t * sinc)
    ph_under = (1 - g_under) / jnp.where(over, 1.0, a)  # a > b² here
    return jnp.where(over, g_over, g_under), jnp.where(over, ph_over, ph_under)


def decay(evals, learning_rate, size, times, mode, momentum, dtype, *, phi=True):
    """Per eigenvalue and time: ``g`` (residual factor, ``f − y = g (f_0 − y)``) and ``φ`` with
    ``f − f_0 = Θ φ (y − f_0)`` in the eigenbasis, i.e. ``φ = (1 − g) / λ`` (finite as λ → 0).

    ``times`` of shape S gives arrays of shape S + (n,).
    """
    lam = evals
    c = jnp.asarray(learning_rate, dtype) / size
    tt = times[..., None]
    inf = jnp.isinf(tt)
    fin_t = jnp.where(inf, 0.0, tt)
    if mode == "t" and momentum is not None:
        g, ph = _momentum_flow(c * lam, jnp.asarray(momentum, dtype), fin_t)
        ph = c * ph
    elif mode == "t":
        x = c * lam * fin_t
        g = jnp.exp(-x)
        xpos = x > 0
        rel = jnp.where(xpos, -jnp.expm1(-x) / jnp.where(xpos, x, 1.0), 1.0)
        ph = c * fin_t * rel
    else:
        a = c * lam
        k = fin_t
        if momentum is None:
            small = a < 1
            lg = k * jnp.log1p(-jnp.where(small, a, 0.0))
            g = jnp.where(small, jnp.exp(lg), (1 - a) ** k)
            apos = a > 0
            sa = jnp.where(apos, a, 1.0)
            ph_a = jnp.where(small, -jnp.expm1(lg) / sa, (1 - (1 - a) ** k) / sa)
            ph = c * jnp.where(apos, ph_a, k)
        else:
            mu = jnp.asarray(momentum, dtype)
            g, lim = _momentum_decay(a, mu, k)
            apos = a > 0
            ph = c * jnp.where(apos, (1 - g) / jnp.where(apos, a, 1.0), lim)
    # t = ∞: converged limit (pseudo-inverse on null directions).
    inv = pinv_evals(lam, dtype)
    g = jnp.where(inf, jnp.where(inv > 0, 0.0, 1.0), g)
    ph = jnp.where(inf, inv, ph) if phi else None
    return g, ph


# ----------------------------------------------------------------------------- predictor
@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class MSEPredictor:
    """Kernel-limit gradient descent on the MSE loss, from one eigendecomposition of the
    train-train kernel (returned by :func:`gradient_descent_mse`; a pytree).

    Call it as ``predictor(t=None, fx_train_0=0., fx_test_0=None, k_test_train=None, *,
    steps=None)``:

    * ``t``: continuous time(s) in steps of size η (gradient flow, or with momentum its
      continuous heavy-ball limit), any shape S; ``None`` or ``jnp.inf`` is the converged limit
      (kernel regression). Or ``steps``: integer number(s) of discrete gradient-descent steps,
      any shape S.
    * ``fx_train_0``: outputs at initialisation on the train points, scalar or ``y_train``'s
      shape; ``fx_test_0``: on the test points (scalar or (m, k); default 0).
    * ``k_test_train``: ``Kernel`` (its ``.ntk``) or (m, n) array; when given, test predictions
      are returned too.

    Returns ``fx_train_t`` of shape S + y_train.shape, and ``(fx_train_t, fx_test_t)`` (test of
    shape S + (m, k)) when ``k_test_train`` is given:
      ``f_t(X) = Y + g(Θ) (f_0(X) − Y)``,
      ``f_t(x*) = f_0(x*) + Θ(x*, X) Θ^{-1} (I − g(Θ)) (Y − f_0(X))`` (Lee et al. 2019, eq. 9),
    with ``g(Θ) = exp(−ηΘt/Y.size)``, ``(I − ηΘ/Y.size)^steps`` or, with momentum μ
    (``v ← μ v − η ∇L``, ``θ ← θ + v``, ``v_0 = 0``), the solution of the two-term recursion
    ``r_{k+1} = (1 + μ − ηλ/Y.size) r_k − μ r_{k−1}`` on each eigenvalue λ for ``steps``, and
    of its continuum limit ``r̈ + (1 − μ) ṙ + (ηλ/Y.size) r = 0``, ``ṙ(0) = 0``, for ``t``
    (neural-tangents' ``predict.gradient_descent(..., momentum)``: its ODE in time √η·t is this
    one in t; solved in closed form per eigenvalue, damped cos/cosh).

    >>> import jax.numpy as jnp
    >>> from widelimits import dynamics
    >>> pred = dynamics.gradient_descent_mse(jnp.eye(2), jnp.array([1.0, -1.0]))
    >>> f_train, f_test = pred(t=jnp.inf, k_test_train=jnp.array([[0.5, 0.5]]))
    >>> [float(v) for v in f_train], [float(v) for v in f_test]   # kernel regression
    ([1.0, -1.0], [0.0])
    """

    evals: jax.Array  # (n,) eigenvalues of Θ + diag_reg I, clipped at 0
    evecs: jax.Array  # (n, n)
    y_train: jax.Array  # (n,) or (n, k)
    learning_rate: jax.Array
    momentum: jax.Array | None = None

    def __call__(self, t=None, fx_train_0=0.0, fx_test_0=None, k_test_train=None, *,
                 steps=None):
        dtype = self.evecs.dtype
        n = self.evecs.shape[0]
        y = self.y_train
        times, mode = check_times(t, steps, dtype, self.evals)
        y2 = y.reshape(n, -1).astype(dtype)
        f0 = jnp.broadcast_to(jnp.asarray(fx_train_0, dtype), y.shape).reshape(n, -1)
        check_finite(f0, "fx_train_0")
        kt = ft0 = None
        if k_test_train is not None:
            kt = check_test_train(kernel_array(k_test_train, "ntk", "k_test_train"), n,
                                  "k_test_train").astype(dtype)
            ft0 = jnp.broadcast_to(jnp.asarray(0.0 if fx_test_0 is None else fx_test_0, dtype),
                                   kt.shape[:1] + y.shape[1:]).reshape(kt.shape[0], -1)
            check_finite(ft0, "fx_test_0")
        train, test = _mse_core(self.evals, self.evecs, y2, self.learning_rate, self.momentum,
                                times, f0, kt, ft0, mode=mode)
        train = train.reshape(times.shape + y.shape)
        _check_output(train, self)
        if k_test_train is None:
            return train
        test = test.reshape(times.shape + test.shape[-2:-1] + y.shape[1:])
        _check_output(test, self)
        return train, test


@functools.partial(jax.jit, static_argnames="mode")
def _mse_core(evals, evecs, y2, learning_rate, momentum, times, f0, kt, ft0, *, mode):
    """The arithmetic of :class:`MSEPredictor` (one compiled call; checks happen outside)."""
    dtype = evecs.dtype
    g, ph = decay(evals, learning_rate, y2.size, times, mode, momentum, dtype,
                  phi=kt is not None)
    c = evecs.T @ (f0 - y2)  # (n, k) residual in the eigenbasis
    train = y2 + jnp.einsum("ij,...j,jk->...ik", evecs, g, c)
    if kt is None:
        return train, None
    test = ft0 - jnp.einsum("ij,...j,jk->...ik", kt @ evecs, ph, c)
    return train, test


def _check_output(out, pred):
    if is_concrete(out) and not bool(np.all(np.isfinite(np.asarray(out)))):
        lr_max = 2 * pred.y_train.size / max(float(np.max(np.asarray(pred.evals))), 1e-300)
        if pred.momentum is not None:
            lr_max *= 1 + float(pred.momentum)
        raise ValueError(f"the predictions overflowed to inf/NaN: learning_rate "
                         f"{float(pred.learning_rate):.4g} vs max_learning_rate {lr_max:.4g} "
                         "(gradient descent diverges above it); lower learning_rate or steps")


def gradient_descent_mse(k_train_train, y_train, learning_rate=1.0, diag_reg=0.0,
                         momentum=None):
    """Kernel-limit (linearised) gradient descent on ``½ Σ (f − Y)² / Y.size``: one ``eigh``.

    Args:
      k_train_train: ``Kernel`` (trains with its ``.ntk``) or (n, n) array Θ.
      y_train: targets (n,) or (n, k).
      learning_rate: η (a scalar; may be traced, e.g. vmapped over).
      diag_reg: added to Θ's diagonal (absolute units).
      momentum: None (plain gradient descent / flow) or heavy-ball μ in [0, 1): ``steps=``
        gives the discrete heavy ball, ``t`` its continuous-time limit (see ``MSEPredictor``).

    Loss ``½ mean`` over all ``Y.size`` entries and time ``t`` in steps of size η, as in
    neural-tangents' ``predict``; for the per-example loss ``(1/2n) Σ_i ||f(x_i) − y_i||²`` of
    Lee et al. 2019 (Sec. 2) with k outputs and rate η', pass ``learning_rate = k · η'``. Θ
    must be symmetric PSD (checked outside jit); ``t = ∞`` needs ``cond(Θ + diag_reg I) < 1/eps``
    (checked outside jit; under jit the null directions are left untrained, a pseudo-inverse).

    Returns an :class:`MSEPredictor`; call it at any array of times
    (``pred(t)``, ``pred(steps=k)``, ``pred(t, f0, ft0, k_test_train)``).
    Jacot et al. 2018; Lee et al. 2019, "Wide neural networks of any depth evolve as linear
    models under gradient descent", eqs. 8-9.

    >>> import jax.numpy as jnp
    >>> from widelimits import dynamics
    >>> theta = jnp.array([[2.0, 0.0], [0.0, 1.0]])
    >>> pred = dynamics.gradient_descent_mse(theta, jnp.array([1.0, 1.0]), learning_rate=1.0)
    >>> [round(float(v), 4) for v in pred(t=1.0)]     # 1 - exp(-lambda t / 2)
    [0.6321, 0.3935]
    >>> [round(float(v), 4) for v in pred(steps=1)]   # one step: 1 - (1 - lambda / 2)
    [1.0, 0.5]
    """
    k = kernel_array(k_train_train, "ntk", "k_train_train")
    y = check_targets(y_train, k.shape[0] if k.ndim == 2 else -1)
    dtype = float_dtype(k, y)
    evals, evecs = psd_eigh(k.astype(dtype), diag_reg, "k_train_train")
    lr, mom = check_rate(learning_rate, momentum, dtype)
    return MSEPredictor(evals=evals, evecs=evecs, y_train=y.astype(dtype), learning_rate=lr,
                        momentum=mom)


def max_learning_rate(ntk_train_train, y_train_size=None, momentum=0.0):
    """Largest stable learning rate of gradient descent on ``½ Σ (f − Y)² / Y.size``:
    ``2 (1 + μ) Y.size / λ_max(Θ)`` (``μ = 0``: plain gradient descent). Above it the
    function-space recursion diverges along the top eigenvector.

    ``ntk_train_train``: ``Kernel`` (its ``.ntk``) or (n, n) array; ``y_train_size``: number of
    target entries ``Y.size`` (default n, one output).

    >>> import jax.numpy as jnp
    >>> from widelimits import dynamics
    >>> float(dynamics.max_learning_rate(jnp.array([[4.0, 0.0], [0.0, 1.0]])))   # 2 * 2 / 4
    1.0
    """
    k = kernel_array(ntk_train_train, "ntk", "ntk_train_train")
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"ntk_train_train: expected a square (n, n) kernel, got {k.shape}")
    size = k.shape[0] if y_train_size is None else y_train_size
    if isinstance(size, (int, np.integer)) and size <= 0:
        raise ValueError(f"y_train_size must be a positive integer, got {size}")
    mu = jnp.asarray(momentum, float_dtype(k))
    if is_concrete(mu) and not 0 <= float(mu) < 1:
        raise ValueError(f"momentum must be in [0, 1), got {float(mu)}")
    check_finite(k, "ntk_train_train")
    lmax = jnp.linalg.eigvalsh(0.5 * (k + k.T))[-1]
    if is_concrete(lmax) and float(lmax) <= 0:
        raise ValueError(f"ntk_train_train has no positive eigenvalue (largest {float(lmax)})")
    return 2 * (1 + mu) * size / lmax
