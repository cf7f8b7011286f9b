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
