"""Tests of the real-dnsmasq and network-namespace test fixtures.

Skipped when dnsmasq / root / network namespaces are genuinely unavailable; with the ``CI``
environment variable set they fail instead, because CI must run them.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from safedns.testing._dnsmasq import DNSMASQ, Dnsmasq, dnsmasq_available
from safedns.testing._netns import GlibcNamespace, netns_available

RECORDS = {
    "api.example.com": ["10.0.0.1", "fd00::1"],
    "my-svc.ns1.svc.cluster.local": ["10.96.0.10"],
}


def _require(available: bool, reason: str) -> None:
    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: these tests must run there)")
    pytest.skip(reason)


@pytest.fixture
def need_dnsmasq() -> None:
    _require(dnsmasq_available(), f"dnsmasq binary not found ({DNSMASQ})")


def _require_netns() -> None:
    _require(dnsmasq_available(), f"dnsmasq binary not found ({DNSMASQ})")
    _require(os.geteuid() == 0, "network namespaces need root")
    _require(netns_available(), "ip netns add/del does not work here")


@pytest.fixture
def need_netns() -> None:
    _require_netns()


@pytest.fixture
def server(need_dnsmasq: None) -> Iterator[Dnsmasq]:
    with Dnsmasq(RECORDS, ttl=123, cnames={"alias.example.com": "api.example.com"}) as d:
        yield d


def _rrset_ttl_and_addresses(msg: dns.message.Message, rdtype: str) -> tuple[int, set[str]]:
    rrsets = [r for r in msg.answer if r.rdtype == dns.rdatatype.from_text(rdtype)]
    assert len(rrsets) == 1, msg
    return rrsets[0].ttl, {rdata.to_text() for rdata in rrsets[0]}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- Dnsmasq ------------------------------------------------------------------------------


@pytest.mark.dnsmasq
def test_answers_records_with_ttl(server: Dnsmasq) -> None:
    host, port = server.address
    assert host == "127.0.0.1" and port > 0
    assert server.nameserver == f"127.0.0.1:{port}"
    a = server.query("api.example.com", "A")
    assert a.rcode() == dns.rcode.NOERROR
    assert _rrset_ttl_and_addresses(a, "A") == (123, {"10.0.0.1"})
    aaaa = server.query("api.example.com.", "AAAA", tcp=True)
    assert _rrset_ttl_and_addresses(aaaa, "AAAA") == (123, {"fd00::1"})
    cname = server.query("alias.example.com", "A")
    assert _rrset_ttl_and_addresses(cname, "CNAME") == (123, {"api.example.com."})
    assert _rrset_ttl_and_addresses(cname, "A") == (123, {"10.0.0.1"})


@pytest.mark.dnsmasq
def test_several_addresses_and_pairs(need_dnsmasq: None) -> None:
    pairs = [("multi.test.", "10.0.0.1"), ("multi.test", "10.0.0.2"), ("multi.test", "fd00::2")]
    with Dnsmasq(pairs, ttl=60) as d:
        assert _rrset_ttl_and_addresses(d.query("multi.test"), "A") == (
            60,
            {"10.0.0.1", "10.0.0.2"},
        )
        assert _rrset_ttl_and_addresses(d.query("multi.test", "AAAA"), "AAAA") == (
            60,
            {"fd00::2"},
        )


@pytest.mark.dnsmasq
@pytest.mark.parametrize("tcp", [False, True])
def test_unknown_name_is_nxdomain_not_refused(server: Dnsmasq, tcp: bool) -> None:
    for rdtype in ("A", "AAAA"):
        reply = server.query("nonexistent.example.com", rdtype, tcp=tcp)
        assert dns.rcode.to_text(reply.rcode()) == "NXDOMAIN"
        assert reply.answer == []
    # a name under an existing one does not exist either
    assert server.query("x.api.example.com").rcode() == dns.rcode.NXDOMAIN


@pytest.mark.dnsmasq
def test_missing_type_is_nodata(server: Dnsmasq) -> None:
    for name, rdtype in [
        ("my-svc.ns1.svc.cluster.local", "AAAA"),
        ("api.example.com", "MX"),
        ("api.example.com", "HTTPS"),
    ]:
        reply = server.query(name, rdtype)
        assert dns.rcode.to_text(reply.rcode()) == "NOERROR", (name, rdtype)
        assert reply.answer == [], (name, rdtype)


@pytest.mark.dnsmasq
def test_query_counting_is_exact(server: Dnsmasq) -> None:
    server.clear()
    server.query("api.example.com", "A")
    server.query("API.Example.com.", "AAAA", tcp=True)
    server.query("nonexistent.example.com", "A")
    expected = [
        ("api.example.com.", "A"),
        ("api.example.com.", "AAAA"),
        ("nonexistent.example.com.", "A"),
    ]
    assert server.queries() == expected
    # queries() does not move the clear point, and its markers are never counted
    assert server.queries() == expected
    server.query("x.test", "TYPE999")
    assert server.queries()[3:] == [("x.test.", "TYPE999")]


@pytest.mark.dnsmasq
def test_clear(server: Dnsmasq) -> None:
    server.query("api.example.com")
    assert ("api.example.com.", "A") in server.queries()
    server.clear()
    assert server.queries() == []
    server.query("my-svc.ns1.svc.cluster.local", "AAAA")
    server.clear()
    server.query("api.example.com", "AAAA")
    assert server.queries() == [("api.example.com.", "AAAA")]


@pytest.mark.dnsmasq
def test_stop_is_idempotent_and_ends_the_process(need_dnsmasq: None) -> None:
    d = Dnsmasq({"a.test": ["192.0.2.1"]}).start()
    pid = d.pid
    assert pid is not None and d.running
    log = d.log_path
    assert os.path.exists(log)
    d.stop()
    d.close()
    assert not d.running
    assert not _pid_alive(pid)
    assert not os.path.exists(log)
    Dnsmasq().close()  # never started


@pytest.mark.dnsmasq
def test_port_in_use_fails_cleanly(need_dnsmasq: None) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        d = Dnsmasq(port=port)
        with pytest.raises(RuntimeError, match="failed to start"):
            d.start()
        assert not d.running
        d.close()


# -- GlibcNamespace -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def k8s_ns() -> Iterator[GlibcNamespace]:
    _require_netns()
    with GlibcNamespace(RECORDS) as ns:
        yield ns


# Per getaddrinfo call under search ns1.svc.cluster.local svc.cluster.local cluster.local,
# ndots:5 (the table in /work/shared/reference/dnsmasq-and-glibc-notes.md).
K8S_COUNTS = [
    ("api.example.com", 8, "10.0.0.1"),
    ("api.example.com.", 2, "10.0.0.1"),
    ("my-svc", 2, "10.96.0.10"),
    ("my-svc.ns1", 4, "10.96.0.10"),
    ("my-svc.ns1.svc.cluster.local", 8, "10.96.0.10"),
    ("nonexistent.example.com", 8, None),
    ("localhost", 0, "127.0.0.1"),
]


@pytest.mark.netns
@pytest.mark.parametrize(("name", "count", "address"), K8S_COUNTS)
def test_glibc_query_counts_ndots5(
    need_netns: None, k8s_ns: GlibcNamespace, name: str, count: int, address: str | None
) -> None:
    k8s_ns.dnsmasq.clear()
    [result] = k8s_ns.getaddrinfo([(name, 80, socket.AF_UNSPEC, socket.SOCK_STREAM)])
    queries = k8s_ns.dnsmasq.queries()
    assert len(queries) == count, queries
    if address is None:
        assert isinstance(result, tuple)
        assert result[:2] == ("error", "gaierror")
        assert result[2] == socket.EAI_NONAME
    else:
        assert isinstance(result, list)
        assert address in {sockaddr[0] for *_, sockaddr in result}
        assert all(kind == socket.SOCK_STREAM for _, kind, *_ in result)


@pytest.mark.netns
def test_glibc_search_order_and_ipv4_only(need_netns: None, k8s_ns: GlibcNamespace) -> None:
    k8s_ns.dnsmasq.clear()
    [result] = k8s_ns.getaddrinfo([("api.example.com", 443, socket.AF_INET)])
    assert result and result[0] == (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", 443))
    assert k8s_ns.dnsmasq.queries() == [
        ("api.example.com.ns1.svc.cluster.local.", "A"),
        ("api.example.com.svc.cluster.local.", "A"),
        ("api.example.com.cluster.local.", "A"),
        ("api.example.com.", "A"),
    ]
    k8s_ns.dnsmasq.clear()
    k8s_ns.getaddrinfo([("my-svc.ns1", 80, socket.AF_INET), ("my-svc", 80, socket.AF_INET)])
    assert len(k8s_ns.dnsmasq.queries()) == 2 + 1


@pytest.mark.netns
def test_namespace_files_and_python(need_netns: None, k8s_ns: GlibcNamespace) -> None:
    with open("/etc/resolv.conf", "rb") as f:
        host_resolv_conf = f.read()
    proc = k8s_ns.run_python(
        "import safedns, sys; print(open('/etc/resolv.conf').read(), end=''); "
        "print(open('/etc/hosts').read(), end='', file=sys.stderr)"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        "nameserver 127.0.0.1\n"
        "search ns1.svc.cluster.local svc.cluster.local cluster.local\n"
        "options ndots:5\n"
    )
    assert proc.stderr.startswith("127.0.0.1\tlocalhost\n")
    with open("/etc/resolv.conf", "rb") as f:
        assert f.read() == host_resolv_conf
    # the namespace's dnsmasq is only reachable from inside it, via Dnsmasq.query
    assert k8s_ns.dnsmasq.address == ("127.0.0.1", 53)
    reply = k8s_ns.dnsmasq.query("api.example.com")
    assert _rrset_ttl_and_addresses(reply, "A") == (300, {"10.0.0.1"})


@pytest.mark.netns
def test_glibc_query_counts_ndots1(need_netns: None) -> None:
    with GlibcNamespace(RECORDS, ndots=1, options=["attempts:2"]) as ns:
        counts = {}
        for name in ("api.example.com", "my-svc.ns1", "nonexistent.example.com"):
            ns.dnsmasq.clear()
            ns.getaddrinfo([(name, 80)])
            counts[name] = len(ns.dnsmasq.queries())
    assert counts == {"api.example.com": 2, "my-svc.ns1": 6, "nonexistent.example.com": 8}


def _netns_list() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


@pytest.mark.netns
def test_namespace_teardown(need_netns: None) -> None:
    ns = GlibcNamespace({"a.test": ["192.0.2.1"]}).start()
    name, etc_dir, pid = ns.name, ns.etc_dir, ns.dnsmasq.pid
    assert pid is not None and _pid_alive(pid)
    assert name in _netns_list() and os.path.isdir(etc_dir)
    ns.close()
    assert name not in _netns_list()
    assert not os.path.exists(etc_dir)
    assert not _pid_alive(pid)
    ns.close()  # idempotent
    with pytest.raises(RuntimeError, match="not started"):
        ns.run_python("pass")


@pytest.mark.netns
def test_namespace_setup_failure_leaves_nothing_behind(
    need_netns: None, k8s_ns: GlibcNamespace
) -> None:
    clash = GlibcNamespace(name=k8s_ns.name)
    with pytest.raises(RuntimeError, match="already exists"):
        clash.start()
    clash.close()
    # the existing namespace is untouched
    assert k8s_ns.name in _netns_list()
    assert k8s_ns.dnsmasq.query("api.example.com").rcode() == dns.rcode.NOERROR
