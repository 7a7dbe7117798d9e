"""Imports flow down the layers (docs/architecture.md): no arrow up, no cycle, lazy imports included.

Every module of the package is parsed (not imported), and every import in it counts: at the top,
inside functions, under ``TYPE_CHECKING``. A module may import its own layer and the layers below;
the package root (``leadml/__init__.py``, ``__main__.py``, ``_shims.py``) may import any layer.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "leadml"

# lowest first: a layer may import itself and those before it
LAYERS = ("core", "data", "features", "rules", "modeling", "explain", "jobs", "serve", "cli")
ROOT_MODULES = {"leadml", "leadml.__main__", "leadml._shims"}


def module_names(package: Path) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its file."""
    top = name.split(".")[0]
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        for target in targets:
            if target.split(".")[0] != top:
                continue
            while target and target not in modules:  # `import a.b.c` where c is a name, not a module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def layer_of(name: str) -> int | None:
    """The layer index of a module (None for the package root, which may import anything)."""
    if name in ROOT_MODULES:
        return None
    parts = name.split(".")
    if len(parts) < 2 or parts[1] not in LAYERS:
        raise AssertionError(f"{name} is in no layer: put it in one of {', '.join(LAYERS)}")
    return LAYERS.index(parts[1])


def import_graph(package: Path) -> dict[str, set[str]]:
    modules = module_names(package)
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def upward_arrows(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for source, targets in sorted(graph.items()):
        source_layer = layer_of(source)
        for target in sorted(targets):
            target_layer = layer_of(target)
            if source_layer is not None and target_layer is not None and target_layer > source_layer:
                bad.append(f"{source} -> {target} ({LAYERS[source_layer]} imports {LAYERS[target_layer]})")
            if target in ROOT_MODULES and source not in ROOT_MODULES:
                bad.append(f"{source} -> {target} (the package root is above every layer)")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_module_is_in_a_layer():
    for name in module_names(PACKAGE):
        layer_of(name)


def test_no_import_runs_up_the_layers():
    assert upward_arrows(import_graph(PACKAGE)) == []


def test_no_import_cycle():
    assert cycles(import_graph(PACKAGE)) == []


def test_no_module_imports_an_old_path():
    """The 0.1 paths are for users, for one release (leadml/_shims.py); the package uses the new ones."""
    from leadml._shims import MOVED

    old = []
    for name, path in module_names(PACKAGE).items():
        if name == "leadml._shims":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            old += [f"{name}: {target}" for target in targets if target in MOVED]
    assert old == []


def test_the_graph_sees_lazy_imports():
    graph = import_graph(PACKAGE)
    # jobs.score dispatches to the Spark engine from inside score_batch only
    assert "leadml.jobs.spark" in graph["leadml.jobs.score"]
    assert "leadml.core.errors" in graph["leadml.data.contract"]


def _plant(root: Path, files: dict[str, str]) -> Path:
    package = root / "leadml"
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    for folder in [package, *[p for p in package.rglob("*") if p.is_dir()]]:
        (folder / "__init__.py").touch()
    return package


def test_a_planted_upward_import_fails(tmp_path):
    package = _plant(tmp_path, {
        "data/io.py": """
            def read():
                from leadml.jobs.score import score_batch  # lazy, and still an arrow up
                return score_batch
        """,
        "jobs/score.py": "from leadml.data.io import read\n",
        "modeling/train.py": "from ..explain import reasons\n",
        "explain/reasons.py": "X = 1\n",
    })  # fmt: skip
    graph = import_graph(package)
    assert upward_arrows(graph) == [
        "leadml.data.io -> leadml.jobs.score (data imports jobs)",
        "leadml.modeling.train -> leadml.explain.reasons (modeling imports explain)",
    ]
    assert cycles(graph) == [["leadml.data.io", "leadml.jobs.score"]]


def test_a_planted_cycle_inside_one_layer_fails(tmp_path):
    package = _plant(tmp_path, {
        "jobs/a.py": "import leadml.jobs.b\n",
        "jobs/b.py": "from leadml.jobs import c\n",
        "jobs/c.py": "from leadml.jobs.a import thing\n",
    })  # fmt: skip
    graph = import_graph(package)
    assert upward_arrows(graph) == []
    assert cycles(graph) == [["leadml.jobs.a", "leadml.jobs.b", "leadml.jobs.c"]]


def test_a_module_outside_the_layers_fails(tmp_path):
    package = _plant(tmp_path, {"helpers.py": "X = 1\n"})
    with pytest.raises(AssertionError, match="leadml.helpers is in no layer"):
        for name in module_names(package):
            layer_of(name)
