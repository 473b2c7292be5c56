"""One dispatch mechanism for every view of a network spec.

A *view* interprets a spec tree: the analytic NNGP/NTK, the activation duals, the structured
empirical NTK, Gaussian moments, sampled ensembles, the 1/n recursions, the DMFT. Each view owns
one ``Registry``: a table from layer type to the view's *rule* for that type. Looking a layer up
walks its class's method resolution order, so a rule registered for a base class (say
``nets.Activation``) serves its subclasses unless a subclass has its own.

A layer that a view has no rule for raises ``UnsupportedLayer`` (a ``TypeError``) naming the
layer, its path in the net, the view and the views that do support it. Adding a layer type is
one spec plus one ``register`` per view; users register rules for their own layers the same way
(``kernels.register_analytic``, ``kernels.register_structured``).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Registry", "UnsupportedLayer", "VIEWS", "views_supporting", "where"]

VIEWS: dict[str, Registry] = {}  # every registry by view name, in creation order


class UnsupportedLayer(TypeError):
    """A view has no rule for a layer (or cannot handle this instance of it)."""


def where(path: str, layer=None) -> str:
    """``"serial[1]. (Dense(...))"``: a layer's path in the net (and the layer), for messages."""
    if not path:
        return "the top level" if layer is None else f"the top level ({layer!r})"
    return path if layer is None else f"{path} ({layer!r})"


def views_supporting(layer_type: type) -> list[str]:
    """Names of the views with a rule for ``layer_type`` (or one of its base classes)."""
    return [name for name, reg in VIEWS.items() if reg.find(layer_type) is not None]


class Registry:
    """The rules of one view, keyed by layer type.

    ``view`` names the view in messages (``"kernels.analytic"``); ``noun`` says what is missing
    (``"infinite-width rule"``); ``hint`` is appended to the error (what to do instead).
    """

    def __init__(self, view: str, *, noun: str = "rule", hint: str = ""):
        if view in VIEWS:
            raise ValueError(f"Registry: a view named {view!r} exists already.")
        self.view, self.noun, self.hint = view, noun, hint
        self._rules: dict[type, Callable] = {}
        VIEWS[view] = self

    def register(self, *types: type, rule: Callable | None = None):
        """Register ``rule`` for each of ``types``; without ``rule``, a decorator. A later
        registration for the same type replaces the earlier one."""
        for t in types:
            if not isinstance(t, type):
                raise TypeError(f"{self.view}: register takes layer classes, got {t!r}.")

        def add(fn):
            if not callable(fn):
                raise TypeError(f"{self.view}: a rule must be callable, got {fn!r}.")
            for t in types:
                self._rules[t] = fn
            return fn

        return add if rule is None else add(rule)

    def find(self, layer_type: type) -> Callable | None:
        """The rule for ``layer_type`` or its nearest registered base class, else ``None``."""
        for t in layer_type.__mro__:
            rule = self._rules.get(t)
            if rule is not None:
                return rule
        return None

    def supports(self, layer) -> bool:
        """Whether this view has a rule for ``layer``'s type."""
        return self.find(type(layer)) is not None

    def types(self) -> list[str]:
        """Names of the registered layer types, sorted."""
        return sorted(t.__name__ for t in self._rules)

    def unsupported(self, layer, path: str = "", why: str = "") -> UnsupportedLayer:
        """The error for ``layer`` at ``path`` (``why``: a reason beyond a missing rule)."""
        name = type(layer).__name__
        others = [v for v in views_supporting(type(layer)) if v != self.view]
        reason = why or f"no {self.noun} for {name}"
        msg = (f"{self.view}: {reason} at {where(path, layer)}; supported here: "
               f"{', '.join(self.types())}. Views that support {name}: "
               f"{', '.join(others) if others else 'none'}.")
        return UnsupportedLayer(msg + (f" {self.hint}" if self.hint else ""))

    def rule(self, layer, path: str = "") -> Callable:
        """The rule for ``layer``; ``UnsupportedLayer`` if there is none."""
        found = self.find(type(layer))
        if found is None:
            raise self.unsupported(layer, path)
        return found

    def __repr__(self):
        return f"Registry({self.view!r}: {', '.join(self.types())})"
