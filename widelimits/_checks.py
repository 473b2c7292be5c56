"""Argument checks shared by every subpackage: one wording for one kind of mistake.

Each check names its ``owner`` (the public function or spec, e.g. ``"nets.Dense"``) and the
argument, says what it got and what it expected. Values that are traced (inside ``jit``)
cannot be checked and pass; array leaves of specs are checked when they are concrete. The check
that an argument is an activation spec is ``nets.check_activation``: this module sits below
``nets`` and imports nothing of it.
"""

from __future__ import annotations

import numbers

import jax
import numpy as np

__all__ = ["IntegerTypeError", "concrete", "finite_float", "integer", "is_concrete",
           "nonnegative"]


class IntegerTypeError(TypeError, ValueError):
    """A value that should be an int is not one. Both a ``TypeError`` (its type is wrong) and a
    ``ValueError`` (callers that validate values catch it too)."""


def concrete(x):
    """``x`` as a NumPy array if its value is known now (not a tracer), else ``None``."""
    if isinstance(x, jax.core.Tracer):
        return None
    if isinstance(x, numbers.Number | np.ndarray | jax.Array):
        return np.asarray(x)
    return None


def is_concrete(*xs) -> bool:
    """True when no leaf of ``xs`` is a tracer (outside ``jit``: values can be checked)."""
    return not any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(xs))


def integer(owner: str, name: str, value, minimum: int = 1) -> int:
    """``value`` as an ``int`` if it is one (NumPy integers too, bools not) and ``>= minimum``.

    Raises ``IntegerTypeError`` for a non-int and ``ValueError`` below ``minimum``, worded
    "``owner: name must be a positive int, got 0``" (or "an int >= m" for ``minimum`` != 1).
    """
    want = "a positive int" if minimum == 1 else f"an int >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise IntegerTypeError(f"{owner}: {name} must be {want}, got {value!r} of type "
                               f"{type(value).__name__}.")
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be {want}, got {value}.")
    return int(value)


def nonnegative(owner: str, name: str, value) -> None:
    """``ValueError`` unless ``value`` is a finite scalar >= 0 (checked when concrete; ``None``
    and traced values pass)."""
    v = concrete(value)
    if v is None:
        return
    if v.shape != ():
        raise ValueError(f"{owner}: {name} must be a scalar, got an array of shape {v.shape}.")
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{owner}: {name} must be a finite number >= 0, got {v.item()!r}.")


def finite_float(owner: str, name: str, value, *, positive: bool = False,
                 nonneg: bool = False) -> float:
    """``value`` as a Python float: ``TypeError`` if it is not a real number, ``ValueError`` if
    it is not finite (or not > 0 with ``positive``, not >= 0 with ``nonneg``)."""
    if isinstance(value, bool | str):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r}.")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r}.") from None
    if not np.isfinite(v) or (positive and v <= 0) or (nonneg and v < 0):
        want = "> 0" if positive else ">= 0" if nonneg else "finite"
        raise ValueError(f"{owner}: {name} must be finite and {want}, got {v}.")
    return v
