"""Modules meet through public names only (issue 10 §2): no module imports a
private name from another, no front end reaches into a resolver's or an
answer's privates, and no module is over 800 lines."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "safedns"
#: Private attributes that belong to one class and are read only by it.
GUARDED = {"_core", "_records", "_refresh_at", "_clock", "_rdata", "_expires"}


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_no_module_imports_a_private_name() -> None:
    found = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("safedns"):
                found += [
                    f"{path.relative_to(SRC)}: {node.module}.{alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")
                ]
    assert found == []


def test_no_module_reads_another_objects_privates() -> None:
    found = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in GUARDED
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}: .{node.attr}")
    # One exception, inside the class's own module: Resolver.reconfigured hands
    # its cache to the resolver it builds, and shared_core is the one door.
    allowed = {"_resolver.py"}
    assert [f for f in found if f.split(":")[0] not in allowed] == []


def test_every_module_is_under_800_lines() -> None:
    sizes = {str(p.relative_to(SRC)): len(p.read_text().splitlines()) for p in _modules()}
    assert {name: n for name, n in sizes.items() if n >= 800} == {}
