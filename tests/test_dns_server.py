"""Tests for safedns.testing.DNSServer, driven by dnspython's own client."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from safedns.testing import DNSServer


@pytest.fixture
def server() -> Iterator[DNSServer]:
    with DNSServer(seed=1) as srv:
        yield srv


def udp(
    srv: DNSServer, name: str, rdtype: str = "A", timeout: float = 2.0, **kw: object
) -> dns.message.Message:
    host, port = srv.address
    query = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
    return dns.query.udp(query, host, port=port, timeout=timeout)


def tcp(srv: DNSServer, name: str, rdtype: str = "A", timeout: float = 2.0) -> dns.message.Message:
    host, port = srv.address
    return dns.query.tcp(dns.message.make_query(name, rdtype), host, port=port, timeout=timeout)


def values(response: dns.message.Message, rdtype: str = "A") -> set[str]:
    wanted = dns.rdatatype.from_text(rdtype)
    return {rd.to_text() for rrset in response.answer if rrset.rdtype == wanted for rd in rrset}


def only_soa(response: dns.message.Message) -> dns.rrset.RRset:
    assert len(response.authority) == 1
    soa = response.authority[0]
    assert soa.rdtype == dns.rdatatype.SOA
    return soa


# -- answers ---------------------------------------------------------------------


def test_a_and_aaaa_with_two_records(server: DNSServer) -> None:
    server.add("api.example.com", "A", "192.0.2.1")
    server.add("API.Example.COM.", "a", "192.0.2.2")
    server.add("api.example.com", "AAAA", "2001:db8::1")
    server.add("api.example.com", "AAAA", "2001:db8::2", ttl=60)

    response = udp(server, "api.example.com", "A")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AA
    assert values(response) == {"192.0.2.1", "192.0.2.2"}
    assert response.answer[0].ttl == 300

    response = tcp(server, "Api.Example.Com.", "AAAA")
    assert values(response, "AAAA") == {"2001:db8::1", "2001:db8::2"}
    assert response.answer[0].ttl == 60


def test_txt_mx_srv(server: DNSServer) -> None:
    server.add("t.example.com", "TXT", "hello world")
    server.add("t.example.com", "TXT", '"a" "b"')
    server.add("example.com", "MX", "10 mail.example.com")
    server.add("_sip._udp.example.com", "SRV", "0 5 5060 sip.example.com.")
    assert values(udp(server, "t.example.com", "TXT"), "TXT") == {'"hello world"', '"a" "b"'}
    assert values(udp(server, "example.com", "MX"), "MX") == {"10 mail.example.com."}
    srv = udp(server, "_sip._udp.example.com", "SRV")
    assert values(srv, "SRV") == {"0 5 5060 sip.example.com."}


def test_header_is_echoed(server: DNSServer) -> None:
    server.add("a.test", "A", "192.0.2.1")
    host, port = server.address
    query = dns.message.make_query("A.Test", "A")
    query.flags &= ~dns.flags.RD
    response = dns.query.udp(query, host, port=port, timeout=2)
    assert response.id == query.id
    assert response.question == query.question
    assert not response.flags & dns.flags.RD
    assert response.flags & dns.flags.RA
    assert response.edns == -1

    response = udp(server, "a.test", use_edns=0)
    assert response.flags & dns.flags.RD
    assert response.edns == 0


def test_cname_chain(server: DNSServer) -> None:
    server.add("www.example.com", "CNAME", "alias.example.com")
    server.add("alias.example.com", "CNAME", "api.example.com.")
    server.add("api.example.com", "A", "192.0.2.1")
    server.add("api.example.com", "A", "192.0.2.2")

    response = udp(server, "www.example.com", "A")
    assert response.rcode() == dns.rcode.NOERROR
    assert [(str(r.name), dns.rdatatype.to_text(r.rdtype)) for r in response.answer] == [
        ("www.example.com.", "CNAME"),
        ("alias.example.com.", "CNAME"),
        ("api.example.com.", "A"),
    ]
    assert values(response) == {"192.0.2.1", "192.0.2.2"}

    # Asking for the CNAME itself does not follow it.
    response = udp(server, "www.example.com", "CNAME")
    assert values(response, "CNAME") == {"alias.example.com."}
    assert len(response.answer) == 1

    # Target exists without the type: NODATA with the chain and an SOA.
    response = udp(server, "www.example.com", "AAAA")
    assert response.rcode() == dns.rcode.NOERROR
    assert len(response.answer) == 2
    only_soa(response)


def test_cname_to_missing_target_and_loop(server: DNSServer) -> None:
    server.add("dangling.example.com", "CNAME", "gone.example.com")
    response = udp(server, "dangling.example.com")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert values(response, "CNAME") == {"gone.example.com."}
    only_soa(response)

    server.add("a.loop", "CNAME", "b.loop")
    server.add("b.loop", "CNAME", "a.loop")
    response = udp(server, "a.loop")
    assert response.rcode() == dns.rcode.NOERROR
    assert len(response.answer) == 2

    for i in range(12):
        server.add(f"c{i}.chain", "CNAME", f"c{i + 1}.chain")
    response = udp(server, "c0.chain")
    assert len(response.answer) == 9  # the first CNAME plus 8 hops


def test_nxdomain_carries_soa_with_negative_ttl() -> None:
    with DNSServer(negative_ttl=17) as srv:
        srv.add("exists.example.com", "A", "192.0.2.1")
        response = udp(srv, "nope.example.com")
        assert response.rcode() == dns.rcode.NXDOMAIN
        assert response.flags & dns.flags.AA
        assert response.answer == []
        soa = only_soa(response)
        assert str(soa.name) == "."
        assert soa.ttl == 17
        assert soa[0].minimum == 17

        srv.negative_ttl = 5
        soa = only_soa(tcp(srv, "nope.example.com"))
        assert (soa.ttl, soa[0].minimum) == (5, 5)


def test_nodata_and_empty_non_terminal(server: DNSServer) -> None:
    server.add("host.sub.example.com", "A", "192.0.2.1")
    for name, rdtype in [("host.sub.example.com", "AAAA"), ("sub.example.com", "A"), (".", "A")]:
        response = udp(server, name, rdtype)
        assert response.rcode() == dns.rcode.NOERROR, name
        assert response.answer == []
        soa = only_soa(response)
        assert soa.ttl == 30
    assert udp(server, "other.sub.example.com").rcode() == dns.rcode.NXDOMAIN


def test_remove(server: DNSServer) -> None:
    server.add("h.sub.example.com", "A", "192.0.2.1")
    server.add("h.sub.example.com", "AAAA", "2001:db8::1")
    assert server.remove("H.sub.example.com.", "a") is True
    assert server.remove("h.sub.example.com", "A") is False
    assert udp(server, "h.sub.example.com", "A").rcode() == dns.rcode.NOERROR
    assert values(udp(server, "h.sub.example.com", "AAAA"), "AAAA") == {"2001:db8::1"}
    assert server.remove("h.sub.example.com") is True
    assert udp(server, "h.sub.example.com", "AAAA").rcode() == dns.rcode.NXDOMAIN
    # The empty non-terminal went away with the last name below it.
    assert udp(server, "sub.example.com").rcode() == dns.rcode.NXDOMAIN
    assert server.remove("never.example.com") is False


def test_add_rejects_bad_input(server: DNSServer) -> None:
    with pytest.raises(ValueError):
        server.add("x.test", "A", "not-an-address")
    with pytest.raises(ValueError):
        server.add("x.test", "NOSUCHTYPE", "1")
    with pytest.raises(ValueError):
        server.add("x.test", "A", "192.0.2.1", ttl=-1)


def test_answer_ttl_override(server: DNSServer) -> None:
    server.add("www.test", "CNAME", "api.test")
    server.add("api.test", "A", "192.0.2.1", ttl=3600)
    server.answer_ttl = 0
    assert [r.ttl for r in udp(server, "www.test").answer] == [0, 0]
    server.answer_ttl = None
    assert [r.ttl for r in udp(server, "www.test").answer] == [300, 3600]


def test_large_udp_answer_is_truncated(server: DNSServer) -> None:
    for i in range(60):
        server.add("big.test", "A", f"10.0.0.{i}")
    response = udp(server, "big.test")
    assert response.flags & dns.flags.TC
    assert len(response.to_wire()) <= 512
    assert response.answer == []
    response = udp(server, "big.test", use_edns=0, payload=4096)
    assert not response.flags & dns.flags.TC
    assert len(values(response)) == 60
    assert len(values(tcp(server, "big.test"))) == 60


# -- query log -------------------------------------------------------------------


def test_queries_are_recorded(server: DNSServer) -> None:
    server.add("api.example.com", "A", "192.0.2.1")
    udp(server, "API.Example.com", "A")
    tcp(server, "missing.example.com.", "AAAA")
    udp(server, "api.example.com", "TXT")
    assert server.queries == [
        ("api.example.com.", "A"),
        ("missing.example.com.", "AAAA"),
        ("api.example.com.", "TXT"),
    ]
    assert server.query_log == [
        ("api.example.com.", "A", "udp"),
        ("missing.example.com.", "AAAA", "tcp"),
        ("api.example.com.", "TXT", "udp"),
    ]
    server.queries.clear()  # a copy: the server's log is untouched
    assert len(server.queries) == 3
    server.clear()
    assert server.queries == [] and server.query_log == []


def test_several_queries_on_one_tcp_connection(server: DNSServer) -> None:
    server.add("a.test", "A", "192.0.2.1")
    with socket.create_connection(server.address, timeout=2) as sock:
        for _ in range(3):
            response = dns.query.tcp(dns.message.make_query("a.test", "A"), "", sock=sock)
            assert values(response) == {"192.0.2.1"}
    assert server.query_log == [("a.test.", "A", "tcp")] * 3


def test_malformed_input_is_ignored(server: DNSServer) -> None:
    server.add("a.test", "A", "192.0.2.1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for junk in (b"", b"\x00", b"\xff" * 7, b"\x12\x34" + b"\x00" * 3 + b"\x01garbage"):
            sock.sendto(junk, server.address)
    with socket.create_connection(server.address, timeout=2) as sock:
        sock.sendall(struct.pack("!H", 5) + b"hello")
        sock.settimeout(2)
        assert sock.recv(10) == b""  # the server hangs up
    assert values(udp(server, "a.test")) == {"192.0.2.1"}
    assert server.queries == [("a.test.", "A")]


def test_idle_tcp_connection_is_closed() -> None:
    with DNSServer() as srv, socket.create_connection(srv.address, timeout=2) as sock:
        srv.tcp_idle_timeout = 0.2
        start = time.monotonic()
        assert sock.recv(10) == b""
        assert time.monotonic() - start < 1.5


# -- faults ----------------------------------------------------------------------


def test_stop_and_start(server: DNSServer) -> None:
    server.add("a.test", "A", "192.0.2.1")
    server.stop()
    assert not server.serving
    with pytest.raises(dns.exception.Timeout):
        udp(server, "a.test", timeout=0.3)
    with pytest.raises(dns.exception.Timeout):
        tcp(server, "a.test", timeout=0.3)
    assert server.query_log == [("a.test.", "A", "udp"), ("a.test.", "A", "tcp")]
    server.start()
    assert values(udp(server, "a.test")) == {"192.0.2.1"}
    assert values(tcp(server, "a.test")) == {"192.0.2.1"}


def test_context_manager_restarts_a_stopped_server() -> None:
    srv = DNSServer()
    srv.stop()
    with srv:
        assert srv.serving
    assert srv.closed and not srv.serving
    with pytest.raises(RuntimeError):
        srv.start()


def test_delay_does_not_serialise(server: DNSServer) -> None:
    server.add("a.test", "A", "192.0.2.1")
    server.delay = 0.3
    results: list[set[str]] = []
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            results.append(values(udp(server, "a.test", timeout=3)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(20)]
    start = time.monotonic()
    for t in threads:
        t.start()
    tcp_response = tcp(server, "a.test", timeout=3)
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    assert errors == []
    assert results == [{"192.0.2.1"}] * 20
    assert values(tcp_response) == {"192.0.2.1"}
    assert 0.3 <= elapsed < 1.5


def test_servfail_and_refused(server: DNSServer) -> None:
    server.add("a.test", "A", "192.0.2.1")
    server.servfail = True
    assert udp(server, "a.test").rcode() == dns.rcode.SERVFAIL
    assert tcp(server, "a.test").rcode() == dns.rcode.SERVFAIL
    server.servfail = False
    server.refused = True
    response = udp(server, "a.test")
    assert response.rcode() == dns.rcode.REFUSED
    assert response.answer == []
    server.refused = False
    assert udp(server, "a.test").rcode() == dns.rcode.NOERROR


def test_truncate_forces_tcp(server: DNSServer) -> None:
    server.add("a.test", "A", "192.0.2.1")
    server.truncate = True
    response = udp(server, "a.test")
    assert response.flags & dns.flags.TC
    assert response.answer == []
    assert values(tcp(server, "a.test")) == {"192.0.2.1"}
    host, port = server.address
    query = dns.message.make_query("a.test", "A")
    response, used_tcp = dns.query.udp_with_fallback(query, host, port=port, timeout=2)
    assert used_tcp and values(response) == {"192.0.2.1"}


def test_drop_rate(server: DNSServer) -> None:
    server.add("a.test", "A", "192.0.2.1")
    server.drop_rate = 1.0
    for _ in range(2):
        with pytest.raises(dns.exception.Timeout):
            udp(server, "a.test", timeout=0.2)
    assert values(tcp(server, "a.test")) == {"192.0.2.1"}  # TCP is never dropped
    assert server.queries == [("a.test.", "A")] * 3
    server.drop_rate = 0.0
    assert values(udp(server, "a.test")) == {"192.0.2.1"}


def test_wrong_id_sends_bogus_replies_first(server: DNSServer) -> None:
    server.add("a.test", "A", "192.0.2.1")
    server.wrong_id = True
    query = dns.message.make_query("a.test", "A")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(query.to_wire(), server.address)
        datagrams = [sock.recv(65535) for _ in range(3)]
    qid = query.id.to_bytes(2, "big")
    assert datagrams[0][:2] != qid
    assert dns.message.from_wire(datagrams[0]).rcode() == dns.rcode.NOERROR  # a real reply
    assert datagrams[1][:2] != qid  # garbage
    real = dns.message.from_wire(datagrams[2])
    assert query.is_response(real)
    assert values(real) == {"192.0.2.1"}

    # A careful client skips the bogus datagrams.
    host, port = server.address
    response = dns.query.udp(query, host, port=port, timeout=2, ignore_errors=True)
    assert values(response) == {"192.0.2.1"}


# -- sockets and lifecycle -------------------------------------------------------


def test_address_nameserver_repr(server: DNSServer) -> None:
    host, port = server.address
    assert host == "127.0.0.1" and port > 0
    assert server.nameserver == f"127.0.0.1:{port}"
    assert f"127.0.0.1:{port}" in repr(server)
    with pytest.raises(OSError):
        DNSServer(port=port)


def test_ipv6() -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"cannot bind ::1: {exc}")
    with DNSServer("::1") as srv:
        srv.add("v6.test", "AAAA", "2001:db8::1")
        host, port = srv.address
        assert host == "::1"
        assert srv.nameserver == f"[::1]:{port}"
        assert values(udp(srv, "v6.test", "AAAA"), "AAAA") == {"2001:db8::1"}
        assert values(tcp(srv, "v6.test", "AAAA"), "AAAA") == {"2001:db8::1"}


def test_add_while_serving_from_other_threads(server: DNSServer) -> None:
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            server.add(f"n{i % 50}.churn.test", "A", f"10.0.0.{i % 250}")
            server.remove(f"n{(i + 25) % 50}.churn.test")
            i += 1

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        for _ in range(30):
            assert udp(server, "n1.churn.test").rcode() in (
                dns.rcode.NOERROR,
                dns.rcode.NXDOMAIN,
            )
    finally:
        stop.set()
        worker.join()


def test_close_leaves_no_thread_behind() -> None:
    before = set(threading.enumerate())
    srv = DNSServer()
    srv.add("a.test", "A", "192.0.2.1")
    assert values(tcp(srv, "a.test")) == {"192.0.2.1"}
    idle = socket.create_connection(srv.address, timeout=2)  # a connection left open
    srv.delay = 5.0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(dns.message.make_query("a.test", "A").to_wire(), srv.address)
        time.sleep(0.1)  # a delayed reply is pending
    assert len(set(threading.enumerate()) - before) >= 2
    start = time.monotonic()
    srv.close()
    assert time.monotonic() - start < 1.0
    srv.close()  # idempotent
    assert set(threading.enumerate()) - before == set()
    assert srv.closed
    idle.close()
