"""Validation of the kernel, target, rate and time arguments of the kernel-limit predictors.

Every kernel argument is a ``widelimits.kernels.Kernel`` (or any object with ``.nngp`` and
``.ntk``, or a pair ``(nngp, ntk)``) or an array used as is. Outside ``jit`` (concrete values)
kernels are checked for shape, symmetry, finiteness and positive semi-definiteness, and inverses
for conditioning; under ``jit`` (traced values) nothing can be checked, and eigenvalues below
``eps · λ_max`` are treated as null directions wherever an inverse is needed (a pseudo-inverse).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..._checks import is_concrete
from ...kernels import Kernel

__all__ = ["check_conditioning", "check_finite", "check_rate", "check_targets",
           "check_test_train", "check_times", "eps_of", "float_dtype", "kernel_array",
           "pinv_evals", "psd_eigh"]


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
    """The result dtype of ``xs``, promoted to the default float type if it is not floating."""
    dt = jnp.result_type(*xs)
    return dt if jnp.issubdtype(dt, jnp.floating) else jnp.result_type(float)


def eps_of(dtype):
    """Machine epsilon of ``dtype`` as a Python float."""
    return float(jnp.finfo(dtype).eps)


def check_finite(x, name):
    """``ValueError`` if ``x`` is concrete and holds NaN or inf."""
    if is_concrete(x) and not bool(np.all(np.isfinite(np.asarray(x)))):
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
    """A test-train kernel (m, n), finite."""
    if k.ndim != 2 or k.shape[1] != n:
        raise ValueError(f"{name}: expected a test-train kernel of shape (m, {n}), got "
                         f"{k.shape}")
    check_finite(k, name)
    return k


def check_rate(learning_rate, momentum, dtype):
    """``(learning_rate, momentum)`` as arrays of ``dtype`` (momentum None stays None):
    ``ValueError`` unless η > 0 is finite and μ lies in [0, 1) (when concrete)."""
    mom = None if momentum is None else jnp.asarray(momentum, dtype)
    if mom is not None and is_concrete(mom) and not 0 <= float(mom) < 1:
        raise ValueError(f"momentum must be in [0, 1), got {float(mom)}")
    lr = jnp.asarray(learning_rate, dtype)
    if is_concrete(lr) and not (np.isfinite(float(lr)) and float(lr) > 0):
        raise ValueError(f"learning_rate must be a finite positive number, got {float(lr)}")
    return lr, mom


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
    if is_concrete(k, diag_reg):
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
    if is_concrete(evals):
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
    if not is_concrete(evals) or evals.shape[0] == 0:
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


def check_times(t, steps, dtype, evals):
    """Resolve ``t``/``steps`` to a float array of times (or steps) and a mode string; a
    concrete ``t = inf`` also checks the conditioning of the kernel eigenvalues ``evals``."""
    if t is not None and steps is not None:
        raise ValueError("pass either t (continuous time) or steps (discrete gradient descent), "
                         "not both")
    if steps is not None:
        s = jnp.asarray(steps)
        if is_concrete(s):
            sn = np.asarray(s)
            if not np.all(np.isfinite(sn)) or np.any(sn < 0) or np.any(sn != np.round(sn)):
                raise ValueError(f"steps must be non-negative integers, got {sn}")
        elif not jnp.issubdtype(s.dtype, jnp.integer):
            raise TypeError(f"steps must be integers, got dtype {s.dtype}")
        return s.astype(dtype), "steps"
    t = jnp.asarray(jnp.inf if t is None else t)
    if is_concrete(t):
        tn = np.asarray(t)
        if np.any(np.isnan(tn)) or np.any(tn < 0):
            raise ValueError(f"t must be >= 0 (jnp.inf for the converged limit), got {tn}")
        if is_concrete(evals) and np.any(np.isinf(tn)):
            check_conditioning(evals, "the t = inf limit", dtype)
    return t.astype(dtype), "t"
