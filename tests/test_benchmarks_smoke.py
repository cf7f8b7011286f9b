"""The benchmarks cannot rot: every scenario runs end to end at a tiny size.

Benchmarks are not tests: nothing here checks a time or a ratio, only that
each scenario produced its figures (or says why it was skipped), that the JSON
and the Markdown page are written, and that the report arithmetic is right.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from safedns.testing import netns_available

ROOT = Path(__file__).resolve().parent.parent

SCENARIOS = (
    "amplification",
    "hit_latency",
    "burst_threads",
    "burst_tasks",
    "outage",
    "scale",
    "scale_flood",
    "httpx_bench",
    "clients_httpx",
    "clients_httpx2",
    "clients_requests",
    "clients_aiohttp",
    "httpx_bench_async",
    "negative_cache",
    "miss_path",
)


def _run(tmp: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    json_path, md_path = tmp / "bench.json", tmp / "bench.md"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--tiny",
            "--json",
            str(json_path),
            "--markdown",
            str(md_path),
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=320,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    data: dict[str, Any] = json.loads(json_path.read_text(encoding="utf-8"))
    data["_markdown"] = md_path.read_text(encoding="utf-8")
    data["_stdout"] = proc.stdout
    return data


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _run(tmp_path_factory.mktemp("bench"))


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@pytest.mark.timeout(350)
def test_every_scenario_ran_or_says_why(tiny: dict[str, Any]) -> None:
    scenarios = tiny["scenarios"]
    assert set(SCENARIOS) <= set(scenarios)
    for name in SCENARIOS:
        scenario = scenarios[name]
        assert scenario["status"] in ("ok", "skipped"), (name, scenario["reason"])
        if scenario["status"] == "skipped":
            assert scenario["reason"], name
            continue
        assert scenario["peers"], name
        for peer, figures in scenario["peers"].items():
            assert figures["status"] != "error", (name, peer, figures.get("reason"))
            if figures["status"] != "ok":
                assert figures["reason"], (name, peer)


def test_amplification_has_glibc_dnspython_and_safedns(tiny: dict[str, Any]) -> None:
    peers = tiny["scenarios"]["amplification"]["peers"]
    for peer in ("dnspython", "dnspython-lru", "safedns"):
        assert peers[peer]["status"] == "ok", peers[peer]
        for key in ("first", "repeat", "total", "first_external", "queries", "wrong"):
            assert _number(peers[peer][key]), (peer, key)
    glibc = peers["glibc"]
    if netns_available():
        assert glibc["status"] == "ok", glibc
        assert _number(glibc["total"]) and glibc["total"] > 0
    else:
        if os.environ.get("CI"):
            pytest.fail("CI runs as root: glibc must be measured, not skipped")
        assert glibc["status"] == "skipped" and glibc["reason"]
    summary = tiny["summary"]["amplification.total"]
    assert _number(summary["safedns"]) and _number(summary["dnspython"])


def test_hit_latency_has_safedns_and_dnspython_medians(tiny: dict[str, Any]) -> None:
    peers = tiny["scenarios"]["hit_latency"]["peers"]
    for peer in ("safedns-resolve", "dnspython-lru", "dnspython-lru-search"):
        assert peers[peer]["status"] == "ok", peers[peer]
        assert _number(peers[peer]["median_ns"]) and peers[peer]["median_ns"] > 0
        assert _number(peers[peer]["p99_ns"])
    assert _number(peers["dnspython-lru"]["ratios_vs_reference"]["median_ns"])
    assert tiny["scenarios"]["hit_latency"]["params"]["upstream_queries_during_timing"] == 0
    goals = {g["goal"] for g in tiny["scenarios"]["hit_latency"]["goals"]}
    assert any("1/5 of stdlib" in g for g in goals)


def test_other_scenarios_have_their_figures(tiny: dict[str, Any]) -> None:
    scenarios = tiny["scenarios"]
    burst = scenarios["burst_threads"]["peers"]["safedns"]
    assert _number(burst["queries_10"]) and _number(burst["last_ms_10"])
    outage = scenarios["outage"]["peers"]["safedns"]
    assert _number(outage["success"]) and _number(outage["median_ms"])
    if scenarios["scale"]["status"] == "ok":
        fill = scenarios["scale"]["peers"]["safedns"]
        assert _number(fill["bytes_per_entry_1000"]) and _number(fill["hit_median_ns_1000"])
        flood = scenarios["scale_flood"]["peers"]["safedns-nobudget"]
        assert _number(flood["rss_growth"]) and flood["negative_entries"] >= 1
    negative = scenarios["negative_cache"]["peers"]
    assert negative["safedns-async"]["before"] == "NODATA"
    assert _number(negative["safedns-async"]["queries_after_add"])
    assert negative["aiodns"]["status"] == "ok" and negative["aiodns"]["seen_ms"] is not None
    for kind in ("httpx", "httpx2", "requests", "aiohttp"):  # python -m benchmarks --only clients
        clients = scenarios[f"clients_{kind}"]
        if clients["status"] == "ok":
            for peer in ("plain", "safedns"):
                figures = clients["peers"][peer]
                assert _number(figures["rps_keepalive"]), (kind, peer)
                assert _number(figures["busy_attempts"]) and _number(figures["hole_ms"])
    for name, plain, ours in (
        ("httpx_bench", "httpx", "safedns-httpx"),
        ("httpx_bench_async", "httpx-async", "safedns-httpx-async"),
    ):
        if scenarios[name]["status"] != "ok":
            continue
        peers = scenarios[name]["peers"]
        assert _number(peers[plain]["queries_per_10k_close"])
        for peer in (plain, ours):
            for key in ("rps_keepalive", "rps_close", "hole_ms", "keepalive_added_ms"):
                assert _number(peers[peer][key]), (name, peer, key)
            assert _number(peers[peer]["outage_pct"]), (name, peer)
            assert _number(peers[peer]["outage_queries_per_request"]), (name, peer)
        assert any("keep-alive" in g["goal"] for g in scenarios[name]["goals"])


def test_miss_path_has_safedns_and_dnspython_side_by_side(tiny: dict[str, Any]) -> None:
    scenario = tiny["scenarios"]["miss_path"]
    peers = scenario["peers"]
    for peer in ("safedns-resolve", "dnspython"):
        assert peers[peer]["status"] == "ok", peers[peer]
        assert _number(peers[peer]["median_ns"]) and peers[peer]["median_ns"] > 0
        assert peers[peer]["batches"] >= 2
    assert _number(peers["dnspython"]["ratios_vs_reference"]["median_ns"])
    assert any("dnspython" in g["goal"] for g in scenario["goals"])


def test_markdown_page_has_tables_reproduction_and_machine(tiny: dict[str, Any]) -> None:
    page = tiny["_markdown"]
    assert page.startswith("# Benchmarks")
    assert "| peer |" in page
    assert "## How to reproduce" in page
    assert "## Machine" in page and "glibc" in page and "python" in page
    assert "1. Amplification" in tiny["_stdout"]


@pytest.mark.timeout(120)
def test_without_a_namespace_glibc_is_skipped_not_faked(tmp_path: Path) -> None:
    env = dict(os.environ, SAFEDNS_BENCH_NO_NETNS="1")
    data = _run(tmp_path, "--only", "amplification", env=env)
    peers = data["scenarios"]["amplification"]["peers"]
    assert peers["glibc"]["status"] == "skipped"
    assert "SAFEDNS_BENCH_NO_NETNS" in peers["glibc"]["reason"]
    assert "total" not in peers["glibc"]
    assert _number(peers["safedns"]["total"]) and _number(peers["dnspython"]["total"])


def test_report_ratios_and_json() -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks._report import Column, PeerRow, Run, ScenarioResult, render_json
    finally:
        sys.path.remove(str(ROOT))
    result = ScenarioResult(
        "demo",
        "demo",
        columns=[Column("q", "q", ratio=True)],
        reference="ours",
        rows=[
            PeerRow("ours", "ours", {"q": 2.0}),
            PeerRow("theirs", "theirs", {"q": 8.0}),
            PeerRow("zero", "zero", {"q": 0.0}),
            PeerRow("gone", "gone", status="skipped", reason="no root"),
        ],
    )
    assert result.ratio("theirs", "q") == 4.0
    assert result.ratio("gone", "q") is None
    result.rows[0].values["q"] = 0.0
    assert result.ratio("theirs", "q") == math.inf
    assert result.ratio("zero", "q") == 1.0
    data = json.loads(render_json(Run("tiny", "cmd", {}, [result])))
    peers = data["scenarios"]["demo"]["peers"]
    assert peers["theirs"]["ratios_vs_reference"]["q"] is None  # inf is not JSON
    assert peers["gone"] == {"label": "gone", "status": "skipped", "reason": "no root"}


def test_the_benchmarks_page_shows_the_current_hit_latency_goals() -> None:
    """docs/benchmarks.md's goal lines name the thresholds hit_latency judges by."""
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.hit_latency import GETADDRINFO_GOAL, RESOLVE_GOAL
    finally:
        sys.path.remove(str(ROOT))
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    goals = [
        line for line in page.splitlines() if line.startswith("- Goal") and "hit median" in line
    ]
    assert [line.split(": ", 1)[1].split(" — ")[0] for line in goals] == [
        RESOLVE_GOAL,
        GETADDRINFO_GOAL,
    ]
    assert RESOLVE_GOAL == "Resolver.resolve hit median ≤ 0.3 µs"
    assert GETADDRINFO_GOAL == "patched getaddrinfo hit median ≤ 0.4 µs"
