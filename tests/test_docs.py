"""The documentation cannot drift from the code: every ``ResolverConfig`` field
and every ``SAFEDNS_*`` variable the code reads is in the configuration
reference, and every page the README links to exists."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import safedns

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "configuration.md"


def _documented_names(text: str) -> set[str]:
    """Names in the first column of the reference's tables: ``| `name` | ...``."""
    return set(re.findall(r"^\|\s*`([A-Za-z_][A-Za-z0-9_]*)`", text, flags=re.M))


def test_every_config_field_is_in_the_reference() -> None:
    documented = _documented_names(REFERENCE.read_text())
    fields = {f.name for f in dataclasses.fields(safedns.ResolverConfig)}
    missing = fields - documented
    assert not missing, f"ResolverConfig fields missing from docs/configuration.md: {missing}"


def test_every_safedns_variable_is_in_the_reference() -> None:
    source = "\n".join(p.read_text() for p in (ROOT / "src" / "safedns").rglob("*.py"))
    variables = set(re.findall(r"\bSAFEDNS_[A-Z][A-Z0-9_]*\b", source))
    assert {"SAFEDNS_RESOLV_CONF", "SAFEDNS_NAMESERVERS", "SAFEDNS_NDOTS"} <= variables
    documented = _documented_names(REFERENCE.read_text())
    missing = variables - documented
    assert not missing, f"SAFEDNS_* variables missing from docs/configuration.md: {missing}"


def test_reference_documents_no_field_that_does_not_exist() -> None:
    documented = {n for n in _documented_names(REFERENCE.read_text()) if n.islower()}
    fields = {f.name for f in dataclasses.fields(safedns.ResolverConfig)}
    assert documented - fields == set(), documented - fields


def test_readme_and_docs_links_resolve() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


_PLAN_LINE = re.compile(r'plan\("([^"]+)", config\)[^\n#]*(?:#[^\n\[]*)?(\[[^\]\n]*\])?')


def _documented_plans(text: str) -> list[tuple[str, list[str]]]:
    """``(name, shown)`` for each ``plan("name", config)`` whose result is shown
    in a comment, on its line or the next: ``# ['a.', 'b...', ..., 'z.']``."""
    found = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = _PLAN_LINE.search(line)
        if match is None:
            continue
        shown = match.group(2)
        if shown is None and i + 1 < len(lines) and lines[i + 1].lstrip().startswith("# ["):
            shown = lines[i + 1].split("#", 1)[1].strip()
        if shown is not None:
            found.append((match.group(1), re.findall(r"'([^']*)'|(\.\.\.)", shown)))
    return [(name, [a or b for a, b in items]) for name, items in found]


def _shows(shown: list[str], planned: list[str]) -> bool:
    """Whether ``shown`` (items, ``...`` for any run, ``x...`` for a prefix)
    describes ``planned``."""
    if not shown:
        return not planned
    head, rest = shown[0], shown[1:]
    if head == "...":
        return any(_shows(rest, planned[i:]) for i in range(len(planned) + 1))
    if not planned:
        return False
    if head.endswith("..."):
        return planned[0].startswith(head[:-3]) and _shows(rest, planned[1:])
    return planned[0] == head and _shows(rest, planned[1:])


def test_plans_shown_in_the_readme_and_how_it_works_hold() -> None:
    """The plans README.md and docs/how-it-works.md show are plan()'s (issue
    19, 3): they stay in step with docs/planning.md, whose examples
    tests/test_planning.py runs."""
    config = safedns.ResolverConfig(
        search=["ns1.svc.cluster.local", "svc.cluster.local", "cluster.local"], ndots=5
    )
    checked = 0
    for page in (ROOT / "README.md", ROOT / "docs" / "how-it-works.md"):
        for name, shown in _documented_plans(page.read_text()):
            planned = safedns.plan(name, config)
            assert _shows(shown, planned), f"{page.name}: plan({name!r}) is {planned}, not {shown}"
            checked += 1
    assert checked >= 5
