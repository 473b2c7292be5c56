"""The package's layout rules (DESIGN.md), checked on the source: no import cycle between
modules (imports inside functions count), no subpackage importing another subpackage's private
module, no file over 600 lines, and a docstring example (run by pytest's doctest collection)
for every public function of every subpackage."""

import ast
import inspect
import pathlib

import pytest

import widelimits

ROOT = pathlib.Path(widelimits.__file__).parent
MAX_LINES = 600


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def _resolve(module, level, name, is_package):
    if level == 0:
        return name
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _imports(name, path):
    """(target module, line) of every import statement of ``path``, anywhere in the file."""
    tree = ast.parse(path.read_text())
    package = path.name == "__init__.py"
    known = dict(_modules())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = _resolve(name, node.level, node.module or "", package)
            if not target.startswith("widelimits"):
                continue
            for alias in node.names:  # `from .. import kernels` imports the submodule
                sub = f"{target}.{alias.name}"
                yield (sub if sub in known else target), node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("widelimits"):
                    yield alias.name, node.lineno


def _graph():
    return {name: {t for t, _ in _imports(name, path) if t != "widelimits"}
            for name, path in _modules()}


def test_no_import_cycle():
    graph = _graph()
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)


def _subpackage(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and not parts[1].startswith("_")) \
        else None


def test_no_cross_subpackage_private_import():
    bad = []
    for name, path in _modules():
        own = _subpackage(name)
        for target, line in _imports(name, path):
            parts = target.split(".")
            private = [p for p in parts[2:] if p.startswith("_")]
            if len(parts) > 2 and private and parts[1] != own:
                bad.append(f"{path.relative_to(ROOT.parent)}:{line} imports {target}")
    assert not bad, "\n".join(bad)


def test_no_file_over_600_lines():
    long = {str(p.relative_to(ROOT.parent)): n for _, p in _modules()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


SUBPACKAGES = ["nets", "kernels", "dynamics", "compare", "finite", "signal", "depth", "models"]


@pytest.mark.parametrize("sub", SUBPACKAGES)
def test_every_public_function_has_a_docstring_example(sub):
    module = getattr(widelimits, sub)
    names = [(f"{m}.{n}", getattr(getattr(module, m), n)) for m in module.__all__
             if inspect.ismodule(getattr(module, m)) for n in getattr(module, m).__all__]
    names += [(n, getattr(module, n)) for n in module.__all__]
    missing = [name for name, obj in names
               if inspect.isfunction(obj) and ">>>" not in (inspect.getdoc(obj) or "")]
    assert not missing, f"{sub}: no docstring example in {missing}"
