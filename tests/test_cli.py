"""Tests for the ``safedns`` command line and the replay's glibc baseline."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

import safedns
from safedns._app.cli import main
from safedns._app.replay import (
    FAILED,
    NOT_FOUND,
    SEARCH,
    GlibcBaseline,
    ReplayReport,
    _run_baseline_phase,
    build_zone,
    format_report,
    glibc_plan,
    workload,
)
from safedns.testing import DNSServer

K8S_RESOLV_CONF = """\
search ns1.svc.cluster.local svc.cluster.local cluster.local
nameserver 10.96.0.10
options ndots:5
"""

#: The glibc table in docs: name -> (ndots:5, ndots:5 IPv4 only, ndots:1) queries.
GLIBC_TABLE = {
    "api.example.com": (8, 4, 2),
    "api.example.com.": (2, 1, 2),
    "my-svc": (2, 1, 2),
    "my-svc.ns1": (4, 2, 6),
    "my-svc.ns1.svc.cluster.local": (8, 4, 2),
    "nonexistent.example.com": (8, 4, 8),
}


@pytest.fixture
def zone() -> Iterator[DNSServer]:
    with DNSServer() as srv:
        build_zone(srv, ttl=60)
        srv.add("txt.example.com", "TXT", "hello world")
        srv.add("www.example.org", "CNAME", "cdn.example.net")
        yield srv


@pytest.fixture(autouse=True)
def k8s_resolv_conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``from_system`` at a Kubernetes-like resolv.conf, away from the host's."""
    path = tmp_path / "resolv.conf"
    path.write_text(K8S_RESOLV_CONF)
    monkeypatch.setenv("SAFEDNS_RESOLV_CONF", str(path))
    for name in ("LOCALDOMAIN", "RES_OPTIONS", "SAFEDNS_NAMESERVERS", "SAFEDNS_SEARCH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("SAFEDNS_NDOTS", raising=False)
    return path


def printed_queries(out: str) -> list[tuple[str, str]]:
    """(qname, type) of the queries listed after "queries sent:"."""
    lines = out.split("queries sent:", 1)[1].splitlines()[1:]
    return [(line.split()[1], line.split()[2]) for line in lines if line.strip()]


# -- glibc_plan and the baseline ------------------------------------------------


def test_glibc_plan_ndots5_searches_first() -> None:
    assert glibc_plan("api.example.com", SEARCH, 5) == [
        "api.example.com.ns1.svc.cluster.local.",
        "api.example.com.svc.cluster.local.",
        "api.example.com.cluster.local.",
        "api.example.com.",
    ]


def test_glibc_plan_enough_dots_goes_as_is_first() -> None:
    assert glibc_plan("my-svc.ns1", SEARCH, 1) == [
        "my-svc.ns1.",
        "my-svc.ns1.ns1.svc.cluster.local.",
        "my-svc.ns1.svc.cluster.local.",
        "my-svc.ns1.cluster.local.",
    ]


def test_glibc_plan_trailing_dot_and_case() -> None:
    assert glibc_plan("API.Example.com.", SEARCH, 5) == ["api.example.com."]
    assert glibc_plan("my-svc", (), 5) == ["my-svc."]


def test_glibc_plan_rejects_invalid_names() -> None:
    with pytest.raises(safedns.InvalidName):
        glibc_plan("bad..name", SEARCH, 5)


@pytest.mark.parametrize("name", list(GLIBC_TABLE))
def test_baseline_query_counts_match_glibc_table(zone: DNSServer, name: str) -> None:
    expected = GLIBC_TABLE[name]
    settings = [(5, ("A", "AAAA")), (5, ("A",)), (1, ("A", "AAAA"))]
    for (ndots, rdtypes), count in zip(settings, expected, strict=True):
        zone.clear()
        with GlibcBaseline(zone.address, SEARCH, ndots, rdtypes=rdtypes) as baseline:
            baseline.lookup(name)
        assert len(zone.queries) == count, (name, ndots, rdtypes, zone.queries)


def test_baseline_outcomes(zone: DNSServer) -> None:
    with GlibcBaseline(zone.address) as baseline:
        assert baseline.lookup("api.example.com") == ("192.0.2.10", "2001:db8::10")
        assert baseline.lookup("my-svc") == ("10.0.0.5",)
        assert baseline.lookup("missing-svc") == NOT_FOUND
        zone.stop()
        zone.clear()
        baseline.timeout = 0.05
        assert baseline.lookup("api.example.com") == FAILED
    # A timeout ends the search list, but the name as-is is still tried.
    assert zone.queries == [
        ("api.example.com.ns1.svc.cluster.local.", "A"),
        ("api.example.com.ns1.svc.cluster.local.", "AAAA"),
        ("api.example.com.", "A"),
        ("api.example.com.", "AAAA"),
    ]


def test_baseline_servfail_continues_refused_stops(zone: DNSServer) -> None:
    with GlibcBaseline(zone.address) as baseline:
        zone.servfail = True
        assert baseline.lookup("my-svc") == FAILED
        assert len(zone.queries) == 8  # every search domain, then as-is
        zone.servfail = False
        zone.refused = True
        zone.clear()
        assert baseline.lookup("my-svc") == FAILED
    assert [name for name, _ in zone.queries] == [
        "my-svc.ns1.svc.cluster.local.",
        "my-svc.ns1.svc.cluster.local.",
        "my-svc.",
        "my-svc.",
    ]


def test_baseline_in_worker_processes_counts_the_same(zone: DNSServer) -> None:
    names = workload(random.Random(7), 300)
    in_process = _run_baseline_phase("b", names, zone, 1, None)
    spread = _run_baseline_phase("b", names, zone, 2, None, chunk=50)
    assert spread == in_process
    assert in_process[1]["missing-svc"] == NOT_FOUND


# -- resolve --------------------------------------------------------------------


def test_resolve_prints_answer_and_queries(
    zone: DNSServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["resolve", "my-svc.ns1", "--server", zone.nameserver]) == 0
    out = capsys.readouterr().out
    assert "answer: my-svc.ns1.svc.cluster.local. A" in out
    assert "  10.0.0.5" in out
    assert printed_queries(out) == zone.queries
    assert zone.queries == [
        ("my-svc.ns1.ns1.svc.cluster.local.", "A"),
        ("my-svc.ns1.svc.cluster.local.", "A"),
    ]
    assert f"{zone.nameserver} my-svc.ns1.ns1.svc.cluster.local. A udp" in out


@pytest.mark.parametrize(
    ("argv", "record"),
    [
        (["api.example.com", "--type", "AAAA"], "2001:db8::10"),
        (["txt.example.com", "--type", "txt"], '"hello world"'),
        (["www.example.org.", "--type", "CNAME"], "cdn.example.net."),
    ],
)
def test_resolve_other_types(
    zone: DNSServer, capsys: pytest.CaptureFixture[str], argv: list[str], record: str
) -> None:
    assert main(["resolve", *argv, "--server", zone.nameserver]) == 0
    out = capsys.readouterr().out
    assert f"  {record}\n" in out
    assert printed_queries(out) == zone.queries


@pytest.mark.parametrize(
    "argv",
    [
        ["192.0.2.10", "--type", "PTR"],
        ["192.0.2.10", "--type", "ptr"],
        ["192.0.2.10", "--reverse"],
        ["192.0.2.10", "-x", "--type", "PTR"],
    ],
)
def test_resolve_an_address_ptr_asks_its_reverse_name(
    zone: DNSServer, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """As ``resolve_address`` (issue 19, 2): the reverse name, no search list."""
    zone.add("10.2.0.192.in-addr.arpa", "PTR", "api.example.com.")
    assert main(["resolve", *argv, "--server", zone.nameserver]) == 0
    out = capsys.readouterr().out
    assert "answer: 10.2.0.192.in-addr.arpa. PTR" in out
    assert "  api.example.com.\n" in out
    assert zone.queries == [("10.2.0.192.in-addr.arpa.", "PTR")]
    assert printed_queries(out) == zone.queries


def test_resolve_an_ipv6_address_reverse_as_json(
    zone: DNSServer, capsys: pytest.CaptureFixture[str]
) -> None:
    reverse = "1.0.0.0." + "0." * 20 + "8.b.d.0.1.0.0.2.ip6.arpa."
    zone.add(reverse, "PTR", "v6.example.com.")
    assert main(["resolve", "2001:db8::1", "-x", "--json", "--server", zone.nameserver]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["answers"][0]["records"] == ["v6.example.com."]
    assert document["answers"][0]["name"] == reverse
    assert zone.queries == [(reverse, "PTR")]


def test_resolve_an_address_other_types_and_a_name_ptr_stay_forward(
    zone: DNSServer, capsys: pytest.CaptureFixture[str]
) -> None:
    zone.add("host.example.com", "PTR", "other.example.com.")
    argv = ["resolve", "host.example.com.", "--type", "PTR", "--server", zone.nameserver]
    assert main(argv) == 0
    assert "  other.example.com.\n" in capsys.readouterr().out
    assert zone.queries == [("host.example.com.", "PTR")]


def test_resolve_overrides_search_and_ndots(
    zone: DNSServer, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["resolve", "my-svc", "--server", zone.nameserver, "--search", "svc.cluster.local"]
    assert main([*argv, "--ndots", "1", "--timeout", "1"]) == 1
    captured = capsys.readouterr()
    assert printed_queries(captured.out) == zone.queries
    assert zone.queries[0] == ("my-svc.svc.cluster.local.", "A")


def test_resolve_name_not_found_exits_1(
    zone: DNSServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["resolve", "nonexistent.example.com", "--server", zone.nameserver]) == 1
    captured = capsys.readouterr()
    assert "nonexistent.example.com does not exist" in captured.err
    assert printed_queries(captured.out) == zone.queries
    assert len(zone.queries) == 4  # as-is first, then the three search domains


def test_resolve_temporary_failure_exits_2(
    zone: DNSServer, capsys: pytest.CaptureFixture[str]
) -> None:
    zone.stop()
    assert (
        main(["resolve", "api.example.com.", "--server", zone.nameserver, "--timeout", "0.05"])
        == 2
    )
    assert "temporary failure" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["resolve", "bad..name"], "invalid name 'bad..name'"),
        (["resolve", "x" * 64], "label longer than 63"),
        (["resolve", "api.example.com", "--type", "BOGUS"], "unknown record type"),
        (["resolve", "api.example.com", "--server", "not-an-ip"], "nameservers"),
        (["resolve", "api.example.com", "--ndots", "99"], "ndots"),
        (["resolve", "api.example.com", "--timeout", "-1"], "must be > 0"),
        (["resolve", "api.example.com", "--reverse"], "not an IPv4 or IPv6 address"),
        (["resolve", "192.0.2.10", "--reverse", "--type", "A"], "--reverse asks PTR only"),
        (["resolve"], "required"),
        (["bogus-command"], "invalid choice"),
    ],
)
def test_bad_input_exits_2_without_traceback(
    zone: DNSServer, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    if argv[:1] == ["resolve"] and "--server" not in argv and len(argv) > 1:
        argv = [*argv, "--server", zone.nameserver]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert zone.queries == []


def test_no_command_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "resolve" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "replay" in capsys.readouterr().out


# -- run ------------------------------------------------------------------------


def test_run_unavailable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "safedns._patch", None)  # makes the import fail
    assert main(["run", "--", "true"]) == 2
    assert "safedns run is not available in this build" in capsys.readouterr().err


def test_run_delegates_to_patch(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def run_command(argv: list[str]) -> int:
        calls.append(argv)
        return 7

    fake = types.ModuleType("safedns._patch")
    fake.run_command = run_command  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "safedns._patch", fake)
    assert main(["run", "--", "python", "-c", "pass", "--", "-x"]) == 7
    assert calls == [["python", "-c", "pass", "--", "-x"]]


def test_run_without_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run"]) == 2
    assert "no command given" in capsys.readouterr().err


# -- audit ----------------------------------------------------------------------


def test_audit_k8s_resolv_conf(k8s_resolv_conf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--resolv-conf", str(k8s_resolv_conf)]) == 0
    out = capsys.readouterr().out
    assert "ndots:5 with 3 search domains" in out
    assert "8 queries per uncached lookup" in out
    assert "10.96.0.10" in out
    assert "one nameserver" in out
    assert "up to 10 s" in out  # timeout 5 s x 2 attempts x 1 nameserver
    row = next(line.split() for line in out.splitlines() if line.startswith("  api.example.com "))
    assert row[-2:] == ["8", "2"]  # glibc vs safedns


def test_audit_defaults_from_environment(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit"]) == 0
    assert "8 queries per uncached lookup" in capsys.readouterr().out


def test_audit_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--resolv-conf", str(tmp_path / "nope")]) == 0
    out = capsys.readouterr().out
    assert "not found" in out
    assert "ndots" in out and "search domain" not in out


# -- replay ---------------------------------------------------------------------


def test_format_report() -> None:
    report = ReplayReport(
        seed=1,
        lookups=1000,
        baseline_queries=6000,
        safedns_queries=40,
        outage_seconds=2.0,
        outage_lookups=120,
        baseline_outage_success=0.0,
        safedns_outage_success=1.0,
        baseline_outage_queries=480,
        safedns_outage_queries=38,
        seconds=9.5,
        ttl=5,
        mix={"external": 400, "missing": 600},
    )
    text = format_report(report)
    assert "150.0x fewer queries" in text
    assert "100.0%" in text and "0.0%" in text
    data = report.as_dict()
    assert data["reduction"] == 150.0
    assert data["baseline_queries_per_lookup"] == 6.0


def test_replay_quick_json_subprocess() -> None:
    src = str(Path(safedns.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-m", "safedns", "replay", "--json", "--quick"],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    for key in (
        "lookups",
        "baseline_queries",
        "safedns_queries",
        "baseline_queries_per_lookup",
        "safedns_queries_per_lookup",
        "reduction",
        "outage_lookups",
        "baseline_outage_success",
        "safedns_outage_success",
        "baseline_outage_queries",
        "safedns_outage_queries",
        "seconds",
    ):
        assert key in data, key
    assert data["lookups"] == 2000
    assert data["safedns_queries"] * 100 <= data["baseline_queries"]
    assert data["safedns_outage_success"] >= 0.99
    assert data["baseline_outage_success"] <= 0.01
    assert data["disagreements"] == []
    # glibc's search order: between 2 (short names) and 8 queries per lookup.
    assert 2 <= data["baseline_queries_per_lookup"] <= 8
    # Progress went to stderr as plain lines (not a TTY).
    assert "baseline" in proc.stderr and "\r" not in proc.stderr


# -- --version, repeatable --type, --json ------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"safedns {safedns.__version__}"


def test_resolve_several_types_as_json(
    zone: DNSServer, capsys: pytest.CaptureFixture[str]
) -> None:
    zone.add("mail.example.com", "MX", "10 mx1.example.com.")
    zone.add("mail.example.com", "AAAA", "2001:db8::25")
    argv = ["resolve", "mail.example.com", "--type", "MX", "--type", "aaaa", "--json"]
    assert main([*argv, "--server", zone.nameserver]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["name"] == "mail.example.com"
    mx, aaaa = document["answers"]
    assert (mx["type"], mx["records"], mx["name"]) == (
        "MX",
        ["10 mx1.example.com."],
        "mail.example.com.",
    )
    assert (aaaa["type"], aaaa["records"]) == ("AAAA", ["2001:db8::25"])
    assert isinstance(mx["ttl"], int) and mx["from_cache"] is False and mx["stale"] is False
    assert [(q["qname"], q["type"]) for q in document["queries"]] == zone.queries
    assert zone.queries == [("mail.example.com.", "MX"), ("mail.example.com.", "AAAA")]


def test_resolve_json_partial_failure(zone: DNSServer, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["resolve", "api.example.com.", "--type", "A", "--type", "MX", "--type", "BOGUS"]
    assert main([*argv, "--json", "--server", zone.nameserver]) == 2
    a, mx, bogus = json.loads(capsys.readouterr().out)["answers"]
    assert a["records"] == ["192.0.2.10"]
    assert mx["error"] == "not found"
    assert bogus["error"] == "invalid" and "unknown record type" in bogus["message"]


def test_resolve_several_types_text(zone: DNSServer, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["resolve", "api.example.com.", "--type", "A", "--type", "AAAA"]
    assert main([*argv, "--server", zone.nameserver]) == 0
    out = capsys.readouterr().out
    assert "answer: api.example.com. A" in out and "answer: api.example.com. AAAA" in out
    assert "  2001:db8::10\n" in out
