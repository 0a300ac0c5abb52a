"""Layout checks: every module imports, and xtok_stream's top-level packages/modules form no
import cycle (function-level imports included: a lazy import hides a cycle, it does not remove it).
"""

from __future__ import annotations

import ast
import graphlib
import importlib
import pkgutil
from pathlib import Path

import xtok_stream

ROOT = Path(xtok_stream.__file__).parent


def _unit(module: str) -> str:
    """The package-level node of a dotted module name: ``xtok_stream.stages.read`` -> ``stages``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> set[str]:
    """Absolute xtok_stream module names imported anywhere in ``path`` (any nesting level)."""
    package = list(path.relative_to(ROOT.parent).parts[:-1])  # what a level-1 import is from
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("xtok_stream."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name == "xtok_stream":  # from xtok_stream import x / from . import x
                out.update(f"xtok_stream.{a.name}" for a in node.names)
            elif name.startswith("xtok_stream."):
                out.add(name)
    return out


def import_graph() -> dict[tuple[str, str], str]:
    """(importer, imported) package-level edges -> one file that makes the edge."""
    edges: dict[tuple[str, str], str] = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        src = _unit(".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts))
        for target in _imports(path):
            dst = _unit(target)
            if dst != src and src != "__init__":  # the package's facade re-exports: a root
                edges.setdefault((src, dst), str(path.relative_to(ROOT.parent)))
    return edges


def find_cycle(edges) -> list[str] | None:
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return exc.args[1]
    return None


def test_every_module_imports():
    names = [m.name for m in pkgutil.walk_packages(xtok_stream.__path__, "xtok_stream.")
             if m.name != "xtok_stream.__main__"]  # runs the CLI
    assert "xtok_stream.loader" in names and "xtok_stream.lanes" in names
    for name in names:
        importlib.import_module(name)


def test_no_package_cycle():
    edges = import_graph()
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle between xtok_stream packages: " + " -> ".join(
        f"{b} ({edges[b, a]})" for a, b in zip(cycle[1:], cycle))


def test_checker_sees_lazy_imports_and_cycles():
    """The checker itself: a lazy import inside a function is an edge, and a cycle is found."""
    assert ("pipeline", "stages") in import_graph()
    assert find_cycle({("a", "b"): "", ("b", "c"): "", ("c", "a"): ""}) is not None
    assert find_cycle({("a", "b"): "", ("b", "c"): ""}) is None
    assert not (ROOT / "dist").exists()
