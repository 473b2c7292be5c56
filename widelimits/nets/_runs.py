"""Runs of identical blocks in a sequence of layers: where a view may use one ``lax.scan``.

Deep nets repeat a unit (an MLP's ``(Dense, activation)``, a ResNet's residual block). Units
with the same pytree structure (same layer types and static fields; only array leaves such as
``w_std`` may differ) can share one traced body, so compile time stops growing with depth.
Every view that scans (the analytic kernels, sampled ensembles) asks ``runs`` where the runs
are; how to scan its own state is the view's business.
"""

from __future__ import annotations

from typing import NamedTuple

import jax

from .._checks import integer

__all__ = ["Run", "runs"]


class Run(NamedTuple):
    """``count`` consecutive units of ``period`` layers starting at ``layers[start]``."""

    start: int
    period: int
    count: int

    def units(self, layers) -> list[tuple]:
        """The run's units: ``count`` tuples of ``period`` layers."""
        return [tuple(layers[self.start + j * self.period: self.start + (j + 1) * self.period])
                for j in range(self.count)]


def _repeats(layers, i, p):
    """How many consecutive units ``layers[i:i+p]``, ``layers[i+p:i+2p]``, ... share one pytree
    structure."""
    structure = lambda j: jax.tree_util.tree_structure(tuple(layers[j:j + p]))  # noqa: E731
    first, k = structure(i), 1
    while i + (k + 1) * p <= len(layers) and structure(i + k * p) == first:
        k += 1
    return k


def runs(layers, *, periods=(1, 2), min_count: int = 3) -> tuple[Run, ...]:
    """Cover ``layers`` (a sequence of specs, e.g. ``serial.layers``) left to right by runs.

    At each position the unit length p in ``periods`` that covers the most layers (p times its
    repeat count k) wins; runs of fewer than ``min_count`` units are split into single layers
    (``Run(i, 1, 1)``). Returns the runs in order; their layers are exactly ``layers``.

    >>> from widelimits import nets
    >>> net = nets.mlp(16, depth=4)   # (Dense, Relu) x 4, Dense
    >>> nets.runs(net.layers)
    (Run(start=0, period=2, count=4), Run(start=8, period=1, count=1))
    """
    integer("nets.runs", "min_count", min_count)
    for p in periods:
        integer("nets.runs", "periods entries", p)
    layers, out, i = tuple(layers), [], 0
    while i < len(layers):
        p, k = max(((p, _repeats(layers, i, p)) for p in periods if i + p <= len(layers)),
                   key=lambda pk: pk[0] * pk[1])
        if k < min_count:
            p, k = 1, 1
        out.append(Run(i, p, k))
        i += p * k
    return tuple(out)
