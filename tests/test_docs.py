"""The documentation cannot drift from the code: every ``ResolverConfig`` field
and every ``SAFEDNS_*`` variable the code reads is in the configuration
reference, and every page the README links to exists."""

from __future__ import annotations

import dataclasses
import os
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


# -- figures quoted from runs ---------------------------------------------------------

_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def _close(shown: str, measured: str, tolerance: float) -> bool:
    """``shown`` is ``measured`` within ``tolerance`` (relative), or within the
    last digit ``shown`` prints."""
    a, b = float(shown.replace(",", "")), float(measured.replace(",", ""))
    unit = 10.0 ** -len(shown.partition(".")[2])
    return abs(a - b) <= tolerance * max(abs(a), abs(b)) + unit


def _lines_agree(shown: str, measured: str, tolerance: float) -> bool:
    """Two outputs of one command: the same text, numbers within ``tolerance``."""
    shown_lines, measured_lines = shown.strip().splitlines(), measured.strip().splitlines()
    if len(shown_lines) != len(measured_lines):
        return False
    for ours, theirs in zip(shown_lines, measured_lines, strict=True):
        if _NUMBER.sub("#", ours).split() != _NUMBER.sub("#", theirs).split():
            return False
        pairs = zip(_NUMBER.findall(ours), _NUMBER.findall(theirs), strict=True)
        if not all(_close(a, b, tolerance) for a, b in pairs):
            return False
    return True


def test_scaling_fleet_block_and_figures_match_a_run() -> None:
    """docs/scaling.md's ``safedns replay --pods 1000`` block, and the figures
    its text takes from it, are what the command prints today (issue 19, 4).
    The model's background refreshes make the last digits vary from run to
    run: numbers agree within 5 %. When this fails, paste the output below
    into the page and update the figures that quote it."""
    import subprocess
    import sys

    command = "safedns replay --pods 1000"
    page = (ROOT / "docs" / "scaling.md").read_text()
    block = page.split(f"$ {command}\n", 1)[1].split("```", 1)[0]
    src = str(Path(safedns.__file__).resolve().parents[1])
    run = subprocess.run(
        [sys.executable, "-m", *command.split()],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=src),
        timeout=120,
        check=True,
    )
    measured = run.stdout
    assert _lines_agree(block, measured, 0.05), f"scaling.md's block is stale; a run:\n{measured}"
    pods = dict(re.findall(r"^\s+(glibc|safedns):\s+([\d,]+) pods", measured, flags=re.M))
    about = re.search(
        r"about ([\d,]+) with glibc's behaviour and about ([\d,]+) with\s+safedns", page
    )
    assert about is not None
    assert _close(about.group(1), pods["glibc"], 0.05), (about.group(1), pods["glibc"])
    assert _close(about.group(2), pods["safedns"], 0.05), (about.group(2), pods["safedns"])
    qps = re.search(r"glibc ([\d.]+) qps .* safedns ([\d.]+) qps steady", measured)
    assert qps is not None
    ratio = float(qps.group(1)) / float(qps.group(2))
    shown = re.search(r"\(([\d.]+)x in the fleet model above", page)
    assert shown is not None and _close(shown.group(1), f"{ratio:.1f}", 0.05), ratio


def test_memory_per_entry_is_the_benchmarks_figure() -> None:
    """docs/faq.md and docs/scaling.md quote the one measured per-entry figure,
    generated into docs/benchmarks.md (5a, 10,000 names), and the size of a
    full default cache it implies (issue 19, 4)."""
    benchmarks = (ROOT / "docs" / "benchmarks.md").read_text()
    table = benchmarks.split("## 5a.", 1)[1].split("\n\n", 2)[1]
    header, _, *rows = table.splitlines()
    columns = [c.strip() for c in header.strip("|").split("|")]
    row = next(r for r in rows if r.startswith("| safedns"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    per_entry = cells[columns.index("10,000: bytes/entry")].split(" (")[0]
    assert per_entry.endswith(" B")
    full = float(per_entry[:-2].replace(",", "")) * 12_000 / 2**20  # 10,000 + 2,000 entries
    for name in ("faq.md", "scaling.md"):
        text = re.sub(r"\s+", " ", (ROOT / "docs" / name).read_text())
        assert f"{per_entry} per entry at 10,000 names" in text, name
        assert f"about {round(full)} MiB" in text, name


def test_aiohttp_resolver_is_shown_closed_one_way() -> None:
    """Every page that builds a ``safedns.aiohttp.Resolver`` opens it with
    ``async with`` (issue 19, 9), never inline where nothing closes it."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    shown = 0
    for page in pages:
        for block in re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S):
            for line in block.splitlines():
                if "safedns.aiohttp.Resolver(" in line:
                    assert line.lstrip().startswith("async with safedns.aiohttp.Resolver("), (
                        f"{page.name}: {line.strip()}"
                    )
                    shown += 1
    assert shown >= 3  # the guides and migrating pages (the README shows SafeConnector)


# -- docs/api.md ------------------------------------------------------------------------

API = ROOT / "docs" / "api.md"


def _named(text: str) -> set[str]:
    """Every name written in code (backticks, code blocks) in ``text``, and the
    parts of each: `Resolver.resolve(name)` names ``Resolver`` and ``resolve``."""
    names = set()
    blocks = re.findall(r"```.*?```", text, flags=re.S)
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    for code in [*re.findall(r"`([^`]+)`", text), *blocks]:
        names.add(code)
        for token in re.findall(r"[A-Za-z_][A-Za-z0-9_.]*", code):
            names.update({token, *token.split(".")})
    return names


def test_api_reference_names_every_public_name() -> None:
    named = _named(API.read_text())
    assert set(safedns.__all__) - named == set()


def test_api_reference_has_every_answer_attribute_and_stats_field() -> None:
    named = _named(API.read_text())
    answer = {a for a in safedns.Answer.__slots__ if not a.startswith("_")}
    answer |= {n for n, v in vars(safedns.Answer).items() if isinstance(v, property)}
    assert {"aliases", "canonical_name", "expires", "valid_until", "from_cache", "stale"} <= answer
    assert answer - named == set()
    for cls in (safedns.Stats, safedns.ServerHealth, safedns.Histogram):
        fields = {f.name for f in dataclasses.fields(cls)}
        assert fields - named == set(), cls.__name__


def test_api_reference_lists_every_metric_as_scraped() -> None:
    """The names Prometheus scrapes and OpenTelemetry's instruments, from a
    resolver that has sent a query (so every labelled series exists)."""
    import prometheus_client
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    import safedns.metrics.opentelemetry
    import safedns.metrics.prometheus
    from safedns.testing import DNSServer

    with DNSServer() as server:
        server.add("api.example.com", "A", "192.0.2.10")
        with safedns.Resolver(safedns.ResolverConfig(nameservers=[server.nameserver])) as r:
            r.resolve("api.example.com.")
            registry = prometheus_client.CollectorRegistry()
            safedns.metrics.prometheus.register(r, registry)
            text = prometheus_client.generate_latest(registry).decode()
            reader = InMemoryMetricReader()
            provider = MeterProvider(metric_readers=[reader])
            safedns.metrics.opentelemetry.instrument(r, provider)
            data = reader.get_metrics_data()
            provider.shutdown()
    scraped = {
        line.split("{")[0].split()[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    instruments = {
        metric.name
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    assert "safedns_cache_hits_total" in scraped and "safedns.cache_hits" in instruments
    named = _named(API.read_text())
    assert scraped - named == set()
    assert instruments - named == set()


def test_readme_install_and_try_it_runs_as_written(tmp_path: Path) -> None:
    """The README's offline first run (issue 19): its snippet runs as a new
    user would run it, prints what its comments say, and the CLI it calls
    through SAFEDNS_NAMESERVERS exits 0 for a name found and 1 for one that
    does not exist. Under a pod's resolv.conf, the harder case."""
    import subprocess
    import sys

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Install and try it\n", 1)[1].split("\n## ", 1)[0]
    assert "pip install safedns\n" in section
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(
        "search ns1.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("SAFEDNS_")}
    env = {
        **base,
        "PYTHONPATH": str(Path(safedns.__file__).resolve().parents[1]),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
        "SAFEDNS_RESOLV_CONF": str(resolv),
    }
    run = subprocess.run(
        [sys.executable, "-c", snippet],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    printed = [line for line in run.stdout.splitlines() if line]
    expected = re.findall(r"^\s*print\(.*\)  # (.*)$", snippet, flags=re.M)
    assert len(expected) == 6
    said = [line for line in printed if line in expected]
    assert said == expected, run.stdout
    for quoted in re.findall(r'^\s*# Prints "([^"]+)"', snippet, flags=re.M):
        assert quoted in run.stdout + run.stderr, quoted
