"""``safedns doctor``: the pure diagnosis, and the command against real servers,
a server that never answers, and a network namespace with no network at all."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import safedns
from safedns import ResolverConfig
from safedns._app.cli import main
from safedns._app.doctor import HostFacts, Probe, default_names, diagnose, format_diagnosis, gather
from safedns.testing import DNSServer

from .conftest import K8S_SEARCH, require_netns

K8S_RESOLV_CONF = """\
search ns1.svc.cluster.local svc.cluster.local cluster.local
nameserver 10.96.0.10
options ndots:5
"""
SRC = str(Path(safedns.__file__).resolve().parents[1])


def facts(**changes: Any) -> HostFacts:
    settings: dict[str, Any] = {
        "config": ResolverConfig(nameservers=["10.96.0.10"], search=K8S_SEARCH, ndots=5),
        "resolv_conf": "/etc/resolv.conf",
        "resolv_conf_found": True,
        "nsswitch": "/etc/nsswitch.conf",
        "hosts_sources": ("files", "dns"),
        "hosts_path": "/etc/hosts",
        "hosts_found": True,
        "hosts_names": frozenset({"localhost"}),
        "environment": {},
    }
    settings.update(changes)
    return HostFacts(**settings)


ANSWERED = [Probe("10.96.0.10", True, "NOERROR", 1.5)]


@pytest.fixture
def dead_server() -> Iterator[str]:
    """A UDP socket on loopback that receives queries and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@pytest.fixture
def etc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private resolv.conf, nsswitch.conf and hosts; no inherited resolver variables."""
    (tmp_path / "resolv.conf").write_text(K8S_RESOLV_CONF)
    (tmp_path / "nsswitch.conf").write_text("passwd: files\nhosts: files dns\n")
    (tmp_path / "hosts").write_text("127.0.0.1 localhost\n10.1.2.3 legacy-db\n")
    monkeypatch.setenv("SAFEDNS_RESOLV_CONF", str(tmp_path / "resolv.conf"))
    for name in list(os.environ):
        if name.startswith("SAFEDNS_") and name != "SAFEDNS_RESOLV_CONF":
            monkeypatch.delenv(name)
    for name in ("LOCALDOMAIN", "RES_OPTIONS", "HOSTALIASES", "RESOLV_HOST_CONF", "RESOLV_MULTI"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def doctor_argv(etc: Path, *args: str) -> list[str]:
    return [
        "doctor",
        "--nsswitch-conf",
        str(etc / "nsswitch.conf"),
        "--hosts-file",
        str(etc / "hosts"),
        *args,
    ]


# -- the pure diagnosis -------------------------------------------------------------


def test_query_counts_glibc_against_safedns() -> None:
    names = ["api.example.com", "my-svc", "my-svc.ns1", "kubernetes.default.svc.cluster.local"]
    diagnosis = diagnose(facts(), names, ANSWERED)
    costs = {c.name: c for c in diagnosis.names}
    # api.example.com: glibc walks three search domains first (8); safedns asks it as-is (2).
    assert (costs["api.example.com"].glibc_queries, costs["api.example.com"].safedns_queries) == (
        8,
        2,
    )
    assert costs["api.example.com"].safedns_candidates[0] == "api.example.com."
    assert costs["api.example.com"].glibc_candidates[-1] == "api.example.com."
    # A short name exists under the first search domain: 2 queries for both.
    assert (costs["my-svc"].glibc_queries, costs["my-svc"].safedns_queries) == (2, 2)
    # service.namespace exists under svc.cluster.local, the second candidate of both.
    assert (costs["my-svc.ns1"].glibc_queries, costs["my-svc.ns1"].safedns_queries) == (4, 4)
    full = costs["kubernetes.default.svc.cluster.local"]
    # A full cluster name below ndots: glibc walks the search list first, safedns
    # asks it as-is first (issue 16).
    assert (full.glibc_queries, full.safedns_queries) == (8, 2)
    assert "a full cluster name: asked as-is first" in full.note
    assert all(c.glibc_queries_not_found == 8 for c in costs.values())
    assert diagnosis.ok
    messages = " ".join(p["message"] for p in diagnosis.problems)
    assert "glibc sends 8 queries to find api.example.com where safedns sends 2" in messages
    advice = "\n".join(diagnosis.advice)
    assert 'name: ndots\n        value: "2"' in advice
    assert "NodeLocal DNSCache" in advice
    assert "safedns.patch()" in advice


def test_ambiguous_names_walk_the_search_list_like_glibc() -> None:
    diagnosis = diagnose(facts(), ["api.prod", "metrics.example.io"], ANSWERED)
    prod, io_name = diagnosis.names
    assert prod.safedns_candidates == prod.glibc_candidates
    assert prod.safedns_candidates[0] == "api.prod.ns1.svc.cluster.local."
    assert (prod.glibc_queries, prod.safedns_queries) == (4, 4)  # found as api.prod.svc...
    assert "ambiguous" in prod.note and "write api.prod. if you mean the public name" in prod.note
    assert "ambiguous" in io_name.note
    assert any("api.prod.svc.cluster.local." in advice for advice in diagnosis.advice)


def test_trailing_dot_and_ndots1_host_cost_the_same() -> None:
    host = facts(config=ResolverConfig(nameservers=["192.0.2.53"], search=["corp.example"]))
    diagnosis = diagnose(host, ["api.example.com", "api.example.com."], ANSWERED)
    assert [(c.glibc_queries, c.safedns_queries) for c in diagnosis.names] == [(2, 2), (2, 2)]
    assert not any("NodeLocal" in a for a in diagnosis.advice)  # not a Kubernetes pod
    assert not any("ndots" in p["message"] for p in diagnosis.problems)


def test_no_answer_from_any_nameserver_is_an_error() -> None:
    probes = [Probe("10.96.0.10", False, error="unreachable: [Errno 101] Network is unreachable")]
    diagnosis = diagnose(facts(), ["api.example.com"], probes)
    assert not diagnosis.ok
    assert diagnosis.network == "unreachable"
    assert any("cannot reach DNS" in p["message"] for p in diagnosis.problems)
    assert diagnosis.names[0].glibc_queries == 8  # the cost is still computed


def test_one_dead_server_of_two_is_a_warning() -> None:
    host = facts(config=ResolverConfig(nameservers=["10.0.0.1", "10.0.0.2"], search=K8S_SEARCH))
    probes = [Probe("10.0.0.1", True, "NOERROR", 2.0), Probe("10.0.0.2", False, error="timeout")]
    diagnosis = diagnose(host, ["my-svc"], probes)
    assert diagnosis.ok
    assert {"severity": "warning", "message": "nameserver 10.0.0.2 does not answer: timeout"} in (
        diagnosis.problems
    )


def test_invalid_name_config_error_hostaliases_and_nsswitch() -> None:
    host = facts(
        config_error="SAFEDNS_NDOTS must be an integer 0..15, got 'x'",
        environment={"HOSTALIASES": "/tmp/aliases", "SAFEDNS_NDOTS": "x"},
        hosts_sources=("files",),
        hosts_names=frozenset({"localhost", "legacy-db"}),
    )
    diagnosis = diagnose(host, ["bad..name", "legacy-db"], ANSWERED)
    assert not diagnosis.ok
    text = json.dumps(diagnosis.as_dict())
    for needle in ("SAFEDNS_NDOTS", "HOSTALIASES", "has no 'dns'", "bad..name"):
        assert needle in text, needle
    bad, legacy = diagnosis.names
    assert bad.error and bad.glibc_queries == 0
    assert legacy.in_hosts_file
    assert "invalid" in format_diagnosis(diagnosis)


def test_default_names_on_a_pod_and_elsewhere() -> None:
    pod = default_names(facts().config)
    assert pod == [
        "api.example.com",
        "my-svc",
        "my-svc.ns1",
        "api.prod",
        "kubernetes.default.svc.cluster.local",
    ]
    assert default_names(ResolverConfig()) == ["api.example.com", "my-svc"]


def test_gather_reads_files_and_environment(etc: Path) -> None:
    env = {
        "SAFEDNS_RESOLV_CONF": str(etc / "resolv.conf"),
        "LOCALDOMAIN": "corp.example",
        "SAFEDNS_NDOTS": "2",
        "UNRELATED": "1",
    }
    got = gather(env, nsswitch=str(etc / "nsswitch.conf"), hosts=str(etc / "hosts"))
    assert got.config.search == ("corp.example",)  # LOCALDOMAIN replaces the search list
    assert got.config.ndots == 2
    assert got.config.nameservers == ("10.96.0.10",)
    assert got.hosts_sources == ("files", "dns")
    assert got.hosts_names == {"localhost", "legacy-db"}
    assert set(got.environment) == {"SAFEDNS_RESOLV_CONF", "LOCALDOMAIN", "SAFEDNS_NDOTS"}
    assert got.config_error is None

    bad = gather({**env, "SAFEDNS_NDOTS": "many"}, hosts=str(etc / "missing"))
    assert bad.config_error is not None and "SAFEDNS_NDOTS" in bad.config_error
    assert bad.config.ndots == 5  # glibc's view of the same files
    assert not bad.hosts_found


# -- the command ---------------------------------------------------------------------


def test_doctor_json_with_a_dead_server(
    etc: Path,
    dead_server: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SAFEDNS_NAMESERVERS", dead_server)
    status = main(doctor_argv(etc, "--json", "--probe-timeout", "0.2"))
    document = json.loads(capsys.readouterr().out)
    assert status == 1
    assert document["ok"] is False
    assert document["network"] == "unreachable"
    assert document["probes"] == [
        {
            "server": dead_server,
            "answered": False,
            "rcode": None,
            "latency_ms": None,
            "error": "no answer within 0.2 s",
        }
    ]
    names = {n["name"]: n for n in document["names"]}
    assert set(names) == set(default_names(ResolverConfig(search=K8S_SEARCH)))
    for entry in names.values():
        assert isinstance(entry["glibc_queries"], int) and isinstance(
            entry["safedns_queries"], int
        )
    assert names["api.example.com"]["glibc_queries"] == 8
    assert document["search"] == list(K8S_SEARCH) and document["ndots"] == 5


def test_doctor_healthy_server_text_and_json(
    etc: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with DNSServer() as server:
        monkeypatch.setenv("SAFEDNS_NAMESERVERS", server.nameserver)
        assert main(doctor_argv(etc, "legacy-db", "api.example.com")) == 0
        text = capsys.readouterr().out
        assert main(doctor_argv(etc, "--json", "api.example.com")) == 0
        document = json.loads(capsys.readouterr().out)
        assert main(doctor_argv(etc, "--strict", "api.example.com")) == 1  # warnings fail
        capsys.readouterr()
        assert server.queries and all(q == (".", "NS") for q in server.queries)
    assert f"{server.nameserver}: answers" in text
    assert "names in the hosts file are answered from it" in text
    assert "\nok" in text
    (probe,) = document["probes"]
    assert probe["answered"] is True and probe["latency_ms"] >= 0
    assert document["names"][0]["safedns_candidates"][0] == "api.example.com."


def test_doctor_bad_ndots_keeps_the_rest_of_the_environment(
    etc: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad SAFEDNS_NDOTS is reported, and SAFEDNS_NAMESERVERS still counts
    (issue 19, 8): the healthy server it names is probed, not resolv.conf's."""
    with DNSServer() as server:
        monkeypatch.setenv("SAFEDNS_NAMESERVERS", server.nameserver)
        monkeypatch.setenv("SAFEDNS_SEARCH", "corp.example")
        monkeypatch.setenv("SAFEDNS_NDOTS", "many")
        assert main(doctor_argv(etc, "--json", "api.example.com")) == 1
        document = json.loads(capsys.readouterr().out)
        assert main(doctor_argv(etc, "api.example.com")) == 1
        text = capsys.readouterr().out
        assert server.queries == [(".", "NS")] * 2
    assert "SAFEDNS_NDOTS must be an integer" in document["config_error"]
    assert "SAFEDNS_NDOTS ignored" in document["config_error"]
    assert document["nameservers"] == [server.nameserver]
    assert document["search"] == ["corp.example"] and document["ndots"] == 5
    assert [p["answered"] for p in document["probes"]] == [True]
    assert document["network"] != "unreachable"
    errors = [p["message"] for p in document["problems"] if p["severity"] == "error"]
    assert len(errors) == 1 and "SAFEDNS_NDOTS" in errors[0]
    assert f"{server.nameserver}: answers" in text and "SAFEDNS_NDOTS" in text


def test_doctor_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--probe-timeout", "0"]) == 2
    assert "must be > 0" in capsys.readouterr().err


def _can_unshare() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False)
    return probe.returncode == 0


def test_doctor_json_in_a_namespace_without_network(etc: Path) -> None:
    """`safedns doctor --json` where no DNS can be reached at all: a fresh network
    namespace (not even loopback is up) and a Kubernetes resolv.conf."""
    if not _can_unshare():
        if os.environ.get("CI"):
            pytest.fail("CI runs as root and must run the network namespace test")
        pytest.skip("needs root and unshare --net")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": SRC,
        "SAFEDNS_RESOLV_CONF": str(etc / "resolv.conf"),
    }
    proc = subprocess.run(
        ["unshare", "--net", sys.executable, "-m", "safedns", *doctor_argv(etc, "--json")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    document = json.loads(proc.stdout)
    assert document["network"] == "unreachable"
    assert document["probes"][0]["error"].startswith("unreachable")
    assert len(document["names"]) == 5
    names = {entry["name"]: entry for entry in document["names"]}
    for entry in names.values():
        assert entry["glibc_queries"] >= entry["safedns_queries"] >= 2, entry
    assert (
        names["api.example.com"]["glibc_queries"],
        names["api.example.com"]["safedns_queries"],
    ) == (8, 2)


def test_no_ipv6_route_suggests_no_aaaa() -> None:
    advice = diagnose(facts(ipv6_route=False), ["my-svc"], ANSWERED).advice
    assert any("no-aaaa" in a for a in advice)
    for quiet in (
        facts(ipv6_route=True),
        facts(ipv6_route=None),
        facts(
            ipv6_route=False,
            config=ResolverConfig(
                nameservers=["10.96.0.10"], search=K8S_SEARCH, ndots=5, no_aaaa=True
            ),
        ),
    ):
        assert not any("no-aaaa" in a for a in diagnose(quiet, ["my-svc"], ANSWERED).advice)
    assert diagnose(facts(ipv6_route=False), [], ANSWERED).as_dict()["ipv6_route"] is False


@pytest.mark.netns
def test_has_ipv6_route_in_namespaces_with_and_without_one() -> None:
    """The probe, run for real: in a namespace with loopback only there is no IPv6
    route; with a default route over a veth there is one."""
    require_netns()
    name = f"safedns-v6-{os.getpid()}"
    probe = (
        f"import sys; sys.path.insert(0, {SRC!r});"
        " from safedns._app.doctor import has_ipv6_route; print(has_ipv6_route())"
    )

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)

    def run_probe() -> str:
        out = subprocess.run(
            ["ip", "netns", "exec", name, sys.executable, "-c", probe],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return out.stdout.strip()

    ip("netns", "add", name)
    try:
        ip("-n", name, "link", "set", "lo", "up")
        assert run_probe() == "False"
        ip("-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        for link in ("v0", "v1"):
            ip("-n", name, "link", "set", link, "up")
        ip("-n", name, "-6", "addr", "add", "2001:db8:1::1/64", "dev", "v0", "nodad")
        ip("-n", name, "-6", "route", "add", "default", "via", "2001:db8:1::2", "dev", "v0")
        assert run_probe() == "True"
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
