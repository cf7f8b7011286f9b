"""The modules under ``src/`` form layers (issue 18 §2): no module reaches itself
through its imports. Read statically from the source (ast), so an import inside a
function or under ``TYPE_CHECKING`` counts as much as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(SRC.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules under ``src/`` that ``name`` imports: for ``from P import N``,
    ``P.N`` when that is a module, else ``P`` (not the packages above either:
    importing ``a.b`` runs ``a/__init__`` but is no import *by* ``a``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if child in known else base)
    return {module for module in found if module in known and module != name}


def graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every module that reaches itself, with one path back to it."""
    found = []
    for start in sorted(edges):
        stack = [(start, [start])]
        seen: set[str] = set()
        while stack:
            node, path = stack.pop()
            for nxt in sorted(edges[node]):
                if nxt == start:
                    found.append([*path, start])
                    stack.clear()
                    break
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    return found


def test_the_graph_sees_the_imports() -> None:
    edges = graph()
    assert "safedns._core" in edges["safedns._resolver"]
    assert "safedns._walk" in edges["safedns._core"]
    assert "safedns._dropin.addrinfo" in edges["safedns._patch"]
    assert "safedns._app.doctor" in edges["safedns._app.cli"]


def test_the_check_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        ["a", "b", "c", "a"],
        ["b", "c", "a", "b"],
        ["c", "a", "b", "c"],
    ]


def test_no_module_reaches_itself_through_its_imports() -> None:
    assert cycles(graph()) == []


def test_the_library_never_imports_the_application() -> None:
    edges = graph()
    # ``python -m safedns`` is the application's door, not a library module.
    application = ("safedns._app", "safedns.__main__")
    library = [name for name in edges if not name.startswith(application)]
    assert [
        (name, target)
        for name in library
        for target in edges[name]
        if target.startswith("safedns._app")
    ] == []


def test_the_application_lives_in_its_own_package() -> None:
    root = SRC / "safedns"
    moved = ["_cli.py", "_doctor.py", "_replay.py", "_fleet.py", "_timeline.py"]
    assert [name for name in [*moved, "_getaddrinfo.py"] if (root / name).exists()] == []
    assert sorted(p.name for p in (root / "_app").glob("*.py")) == [
        "__init__.py",
        "cli.py",
        "doctor.py",
        "fleet.py",
        "replay.py",
        "timeline.py",
    ]
