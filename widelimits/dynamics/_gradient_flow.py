"""Closed-form gradient flow / gradient descent on the MSE loss in the kernel (lazy) limit.

Conventions (shared by every function of ``widelimits.dynamics``):

* **Loss.** ``L(f) = ½ Σ (f(X) − Y)² / Y.size`` (½ mean over all entries of the targets
  ``Y`` of shape (n, k) or (n,)). Gradient descent with learning rate ``η`` on the parameters is,
  in the kernel limit, the function-space recursion ``f ← f − (η / Y.size) Θ (f − Y)``.
* **Time** is measured in steps of size ``η``: continuous time ``t`` is the number of steps, and
  gradient flow gives ``f_t(X) = Y + exp(−η Θ t / Y.size) (f_0(X) − Y)``; discrete gradient
  descent (``steps=``) replaces the exponential by ``(I − η Θ / Y.size)^steps``. In the notation
  of Lee et al. 2019 (and of the theory notes, loss ``(1/2n) Σ_i ||f(x_i) − y_i||²``) a
  k-output network has ``η_here = η_notes · k``; for one output they coincide. neural-tangents'
  ``predict`` module uses the same normalisation and time unit as here.
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

from ..kernels import Kernel

__all__ = ["MSEPredictor", "gradient_descent_mse", "max_learning_rate"]


# ----------------------------------------------------------------------------- input helpers
def _concrete(*xs):
    """True when no argument is a tracer (eager mode: values can be checked)."""
    return not any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(xs))


def kernel_array(k, which, name, *, single_ok=True):
    """The array of kernel argument ``name``: ``k.<which>`` of a ``Kernel`` (or any object with
    ``.nngp`` and ``.ntk``, or a pair ``(nngp, ntk)``), or ``k`` itself when it is an array and
    ``single_ok`` (the caller needs one kernel only from this argument)."""
    if which not in ("nngp", "ntk"):
        raise ValueError(f"kernel kind must be 'nngp' or 'ntk', got {which!r}")
    if isinstance(k, Kernel) or (hasattr(k, "nngp") and hasattr(k, "ntk")):
        return jnp.asarray(getattr(k, which))
    if isinstance(k, tuple) and len(k) == 2:
        return jnp.asarray(k[0 if which == "nngp" else 1])
    if isinstance(k, (jax.Array, np.ndarray)) or (
            hasattr(k, "shape") and hasattr(k, "dtype")):
        if not single_ok:
            raise TypeError(f"{name}: this computation needs both the NNGP and the NTK of this "
                            "block, got a single array; pass a widelimits.kernels.Kernel or a "
                            "pair (nngp, ntk)")
        return jnp.asarray(k)
    raise TypeError(f"{name}: expected a widelimits.kernels.Kernel or an array, got "
                    f"{type(k).__name__}")


def float_dtype(*xs):
    dt = jnp.result_type(*xs)
    return dt if jnp.issubdtype(dt, jnp.floating) else jnp.result_type(float)


def eps_of(dtype):
    return float(jnp.finfo(dtype).eps)


def check_finite(x, name):
    if _concrete(x) and not bool(np.all(np.isfinite(np.asarray(x)))):
        raise ValueError(f"{name} contains NaN or inf values")


def check_targets(y, n, name="y_train"):
    """Targets (n,) or (n, k) for n training points."""
    y = jnp.asarray(y)
    if y.ndim not in (1, 2) or y.shape[0] != n:
        raise ValueError(f"{name}: expected shape ({n},) or ({n}, k) to match the train-train "
                         f"kernel ({n}, {n}), got {y.shape}")
    check_finite(y, name)
    return y


def check_test_train(k, n, name):
    if k.ndim != 2 or k.shape[1] != n:
        raise ValueError(f"{name}: expected a test-train kernel of shape (m, {n}), got "
                         f"{k.shape}")
    check_finite(k, name)
    return k


def psd_eigh(k, diag_reg, name):
    """Eigendecomposition of the symmetric PSD kernel ``k + diag_reg I`` (checked when concrete).

    Returns ``(evals, evecs)`` with ``evals`` clipped at 0 (round-off negatives).
    """
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"{name}: expected a square (n, n) train-train kernel, got shape "
                         f"{k.shape}")
    dtype = float_dtype(k, diag_reg)
    k = k.astype(dtype)
    n = k.shape[0]
    eps = eps_of(dtype)
    if _concrete(k, diag_reg):
        check_finite(k, name)
        kn = np.asarray(k, np.float64)
        scale = float(np.max(np.abs(kn))) if n else 0.0
        asym = float(np.max(np.abs(kn - kn.T))) if n else 0.0
        if asym > 100 * eps * scale:
            raise ValueError(f"{name} is not symmetric: max |K - K^T| = {asym:.3g} for "
                             f"max |K| = {scale:.3g} (tolerance {100 * eps:.1g} relative)")
        if float(diag_reg) < 0:
            raise ValueError(f"diag_reg must be >= 0, got {float(diag_reg)}")
    k = 0.5 * (k + k.T) + diag_reg * jnp.eye(n, dtype=dtype)
    evals, evecs = jnp.linalg.eigh(k)
    if _concrete(evals):
        ev = np.asarray(evals)
        lmax = float(ev[-1]) if n else 0.0
        tol = 10 * max(n, 10) * eps * max(lmax, 0.0)
        if n and (lmax < 0 or float(ev[0]) < -tol):
            raise ValueError(f"{name} (+ diag_reg) is not positive semi-definite: most "
                             f"negative eigenvalue {float(ev[0]):.3g} for largest "
                             f"{lmax:.3g} (tolerance -{tol:.2g}); a kernel must be PSD — if "
                             "this is round-off, add a diag_reg of that size")
    return jnp.maximum(evals, 0), evecs


def check_conditioning(evals, what, dtype):
    """Raise if an inverse is needed and ``cond(K) = λ_max / λ_min`` exceeds ``1 / eps``."""
    if not _concrete(evals) or evals.shape[0] == 0:
        return
    ev = np.asarray(evals, np.float64)
    lmin, lmax = float(ev.min()), float(ev.max())
    eps = eps_of(dtype)
    cond = np.inf if lmin <= 0 else lmax / lmin
    if cond * eps > 1:
        raise ValueError(f"{what} needs the inverse of the train-train kernel, whose condition "
                         f"number {cond:.3g} exceeds 1/eps = {1 / eps:.3g} of {np.dtype(dtype)} "
                         f"(eigenvalues {lmin:.3g} .. {lmax:.3g}); pass diag_reg > 0 (e.g. "
                         f"{max(lmax, 1e-300) * eps * 1e3:.2g})"
                         + (" or use float64" if np.dtype(dtype) != np.float64 else ""))


def pinv_evals(evals, dtype):
    """``1/λ``, with eigenvalues below ``eps · λ_max`` treated as null directions (0)."""
    cut = eps_of(dtype) * jnp.max(evals, initial=0.0)
    ok = evals > cut
    return jnp.where(ok, 1.0 / jnp.where(ok, evals, 1.0), 0.0)


# ----------------------------------------------------------------------------- time arguments
def check_times(t, steps, momentum, dtype, evals):
    """Resolve ``t``/``steps`` to a float array of times (or steps) and a mode string; a
    concrete ``t = inf`` also checks the conditioning of the kernel eigenvalues ``evals``."""
    if t is not None and steps is not None:
        raise ValueError("pass either t (continuous time) or steps (discrete gradient descent), "
                         "not both")
    if steps is not None:
        s = jnp.asarray(steps)
        if _concrete(s):
            sn = np.asarray(s)
            if not np.all(np.isfinite(sn)) or np.any(sn < 0) or np.any(sn != np.round(sn)):
                raise ValueError(f"steps must be non-negative integers, got {sn}")
        elif not jnp.issubdtype(s.dtype, jnp.integer):
            raise TypeError(f"steps must be integers, got dtype {s.dtype}")
        return s.astype(dtype), "steps"
    t = jnp.asarray(jnp.inf if t is None else t)
    if _concrete(t):
        tn = np.asarray(t)
        if np.any(np.isnan(tn)) or np.any(tn < 0):
            raise ValueError(f"t must be >= 0 (jnp.inf for the converged limit), got {tn}")
        if _concrete(evals) and np.any(np.isinf(tn)):
            check_conditioning(evals, "the t = inf limit", dtype)
    return t.astype(dtype), "t"


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
        times, mode = check_times(t, steps, self.momentum, dtype, self.evals)
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
    if _concrete(out) and not bool(np.all(np.isfinite(np.asarray(out)))):
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
    neural-tangents' ``predict``; for the theory notes' ``(1/2n) Σ_i ||f(x_i) − y_i||²`` with
    k outputs, use ``learning_rate = k · η_notes``. Θ must be symmetric PSD (checked outside
    jit); ``t = ∞`` needs ``cond(Θ + diag_reg I) < 1/eps`` (checked outside jit; under jit the
    null directions are left untrained, a pseudo-inverse).

    Returns an :class:`MSEPredictor`; call it at any array of times
    (``pred(t)``, ``pred(steps=k)``, ``pred(t, f0, ft0, k_test_train)``).
    Jacot et al. 2018; Lee et al. 2019, "Wide neural networks of any depth evolve as linear
    models under gradient descent", eqs. 8-9.
    """
    k = kernel_array(k_train_train, "ntk", "k_train_train")
    y = check_targets(y_train, k.shape[0] if k.ndim == 2 else -1)
    dtype = float_dtype(k, y)
    evals, evecs = psd_eigh(k.astype(dtype), diag_reg, "k_train_train")
    if momentum is not None:
        mom = jnp.asarray(momentum, dtype)
        if _concrete(mom) and not 0 <= float(mom) < 1:
            raise ValueError(f"momentum must be in [0, 1), got {float(mom)}")
    else:
        mom = None
    lr = jnp.asarray(learning_rate, dtype)
    if _concrete(lr) and not (np.isfinite(float(lr)) and float(lr) > 0):
        raise ValueError(f"learning_rate must be a finite positive number, got {float(lr)}")
    return MSEPredictor(evals=evals, evecs=evecs, y_train=y.astype(dtype), learning_rate=lr,
                        momentum=mom)


def max_learning_rate(ntk_train_train, y_train_size=None, momentum=0.0):
    """Largest stable learning rate of gradient descent on ``½ Σ (f − Y)² / Y.size``:
    ``2 (1 + μ) Y.size / λ_max(Θ)`` (``μ = 0``: plain gradient descent). Above it the
    function-space recursion diverges along the top eigenvector.

    ``ntk_train_train``: ``Kernel`` (its ``.ntk``) or (n, n) array; ``y_train_size``: number of
    target entries ``Y.size`` (default n, one output).
    """
    k = kernel_array(ntk_train_train, "ntk", "ntk_train_train")
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"ntk_train_train: expected a square (n, n) kernel, got {k.shape}")
    size = k.shape[0] if y_train_size is None else y_train_size
    if isinstance(size, (int, np.integer)) and size <= 0:
        raise ValueError(f"y_train_size must be a positive integer, got {size}")
    mu = jnp.asarray(momentum, float_dtype(k))
    if _concrete(mu) and not 0 <= float(mu) < 1:
        raise ValueError(f"momentum must be in [0, 1), got {float(mu)}")
    check_finite(k, "ntk_train_train")
    lmax = jnp.linalg.eigvalsh(0.5 * (k + k.T))[-1]
    if _concrete(lmax) and float(lmax) <= 0:
        raise ValueError(f"ntk_train_train has no positive eigenvalue (largest {float(lmax)})")
    return 2 * (1 + mu) * size / lmax
