"""Continuous piecewise-linear functions: the callables of sparsity-inducing activations.

``signal.shifted_relu`` and ``signal.soft_threshold`` (Price et al. 2024) wrap one in a
``nets.Elementwise``; ``kernels`` computes their Gaussian moments exactly from the pieces.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

__all__ = ["PiecewiseLinear"]


@dataclasses.dataclass(frozen=True)
class PiecewiseLinear:
    """A continuous piecewise-linear function ``phi(x) = slope * x + intercept`` on each piece
    ``(lo, hi)`` of ``pieces`` (tuples of Python floats; ``lo``/``hi`` may be -inf/inf; pieces
    cover the real line in increasing order). Hashable, so it can be the static ``func`` of a
    ``nets.Elementwise``. ``kind`` ("shifted_relu" or "soft_threshold"), ``tau`` and ``clip``
    describe the family it came from (Price et al. 2024)."""

    kind: str
    tau: float
    clip: float | None
    pieces: tuple

    @property
    def __name__(self):  # used by nets.Elementwise.__repr__
        clip = "" if self.clip is None else f", clip={self.clip:g}"
        return f"{self.kind}(tau={self.tau:g}{clip})"

    def __call__(self, x):
        m = jnp.inf if self.clip is None else self.clip
        if self.kind == "shifted_relu":
            return jnp.clip(x - self.tau, 0, m)
        return jnp.sign(x) * jnp.clip(jnp.abs(x) - self.tau, 0, m)
