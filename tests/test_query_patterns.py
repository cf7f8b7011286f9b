"""What reaches the nameserver, and what a lookup makes of it (issue 16): a
negative never erases a positive, a socket per query, glibc's
``single-request``, ``use-vc`` and ``no-aaaa``, and a budget that bounds
every datagram sent."""

from __future__ import annotations

import asyncio
import socket
import time

import dns.rcode
import pytest

from safedns import AsyncResolver, NameNotFound, Resolver, TemporaryFailure
from safedns._dropin.addrinfo import AddrInfo
from safedns.testing import DNSServer
from tests.conftest import QueryGate, k8s_config


def test_an_aaaa_nxdomain_never_erases_the_a_of_the_same_name(server: DNSServer) -> None:
    # A broken middlebox: NXDOMAIN for AAAA, while the name has an A.
    server.craft("api.example.com", "AAAA", [], rcode=dns.rcode.NXDOMAIN)
    resolver = Resolver(k8s_config(server))
    assert resolver.resolve_addresses("api.example.com") == ["192.0.2.10"]
    answer = resolver.resolve("api.example.com", "A")
    assert answer.addresses == ["192.0.2.10"] and answer.from_cache
    assert sorted(server.queries) == [("api.example.com.", "A"), ("api.example.com.", "AAAA")]


# -- a socket per query in flight ---------------------------------------------------


def _dual_server(server: DNSServer, count: int) -> list[str]:
    names = [f"dual{i}.example.com" for i in range(count)]
    for i, name in enumerate(names):
        server.add(name, "A", f"192.0.2.{i + 1}")
        server.add(name, "AAAA", f"2001:db8::{i + 1:x}")
    return names


def _ports_per_lookup(server: DNSServer) -> dict[str, dict[str, int]]:
    ports: dict[str, dict[str, int]] = {}
    for qname, qtype, transport, source, _ in server.query_sources:
        assert transport == "udp"
        ports.setdefault(qname, {})[qtype] = source[1]
    return ports


def test_a_and_aaaa_leave_from_different_source_ports(server: DNSServer) -> None:
    names = _dual_server(server, 40)
    resolver = Resolver(k8s_config(server))
    for name in names:
        assert len(resolver.resolve_addresses(name)) == 2
    assert server.query_count == 80
    ports = _ports_per_lookup(server)
    assert len(ports) == 40
    assert all(p["A"] != p["AAAA"] for p in ports.values()), ports


def test_a_and_aaaa_leave_from_different_source_ports_async(server: DNSServer) -> None:
    names = _dual_server(server, 40)

    async def main() -> None:
        async with AsyncResolver(k8s_config(server)) as resolver:
            for name in names:
                assert len(await resolver.resolve_addresses(name)) == 2

    asyncio.run(main())
    assert server.query_count == 80
    ports = _ports_per_lookup(server)
    assert len(ports) == 40
    assert all(p["A"] != p["AAAA"] for p in ports.values()), ports


def test_a_and_aaaa_still_travel_together(server: DNSServer) -> None:
    # Each on its own socket, but the AAAA is not held back for A's reply:
    # the gate opens only once both queries are in.
    with QueryGate(server, 2) as gate:
        resolver = Resolver(k8s_config(gate.nameserver))
        assert resolver.resolve_addresses("dual.example.com") == ["192.0.2.11", "2001:db8::11"]
    assert gate.opened


# -- glibc's single-request, use-vc and no-aaaa ---------------------------------------


def _gap(server: DNSServer) -> float:
    times = {qtype: at for _, qtype, _, _, at in server.query_sources}
    return times["AAAA"] - times["A"]


def test_single_request_sends_aaaa_only_after_a_is_answered(server: DNSServer) -> None:
    server.delay = 0.3  # A's answer leaves the server 0.3 s after A came in
    resolver = Resolver(k8s_config(server, single_request=True, timeout=2.0))
    assert resolver.resolve_addresses("dual.example.com") == ["192.0.2.11", "2001:db8::11"]
    assert [q[1] for q in server.queries] == ["A", "AAAA"]
    assert _gap(server) >= 0.3 - 0.01
    # Without it, both leave at once (the gap is one send, not a reply).
    server.clear()
    server.delay = 0.0
    resolver = Resolver(k8s_config(server, timeout=2.0))
    assert resolver.resolve_addresses("dual.example.com")
    server.clear()
    server.delay = 0.3
    resolver = Resolver(k8s_config(server, timeout=2.0))
    resolver.resolve_addresses("dual.example.com")
    assert abs(_gap(server)) < 0.3 - 0.01


def test_single_request_async(server: DNSServer) -> None:
    server.delay = 0.3

    async def main() -> list[str]:
        config = k8s_config(server, single_request=True, timeout=2.0)
        async with AsyncResolver(config) as resolver:
            return await resolver.resolve_addresses("dual.example.com")

    assert asyncio.run(main()) == ["192.0.2.11", "2001:db8::11"]
    assert _gap(server) >= 0.3 - 0.01


def test_use_vc_sends_every_query_over_tcp(server: DNSServer) -> None:
    resolver = Resolver(k8s_config(server, use_vc=True))
    assert resolver.resolve_addresses("dual.example.com") == ["192.0.2.11", "2001:db8::11"]
    assert resolver.resolve("my-svc").addresses == ["10.0.0.5"]

    async def main() -> list[str]:
        async with AsyncResolver(k8s_config(server, use_vc=True)) as resolver:
            return await resolver.resolve_addresses("dual.example.com")

    assert asyncio.run(main()) == ["192.0.2.11", "2001:db8::11"]
    log = server.query_log
    assert len(log) == 5 and {transport for _, _, transport in log} == {"tcp"}


def test_no_aaaa_sends_no_aaaa_query(server: DNSServer) -> None:
    resolver = Resolver(k8s_config(server, no_aaaa=True))
    assert resolver.resolve_addresses("dual.example.com") == ["192.0.2.11"]
    with pytest.raises(NameNotFound) as caught:
        resolver.resolve_addresses("dual.example.com", socket.AF_INET6)
    assert not caught.value.nxdomain
    with pytest.raises(NameNotFound):
        resolver.resolve("dual.example.com", "AAAA")
    # An IPv6 literal is not DNS: it still answers itself.
    assert resolver.resolve_addresses("2001:db8::1") == ["2001:db8::1"]
    infos = AddrInfo(resolver).getaddrinfo("dual.example.com", 443)
    assert infos and {info[0] for info in infos} == {socket.AF_INET}

    async def main() -> list[str]:
        async with AsyncResolver(k8s_config(server, no_aaaa=True)) as resolver:
            return await resolver.resolve_addresses("dual.example.com")

    assert asyncio.run(main()) == ["192.0.2.11"]
    assert {qtype for _, qtype in server.queries} == {"A"}


# -- the budget bounds every datagram ---------------------------------------------


def test_budget_bounds_every_datagram_retransmissions_included(server: DNSServer) -> None:
    server.stop()  # every try times out
    qps, burst = 2.0, 2
    config = k8s_config(
        server, upstream_qps=qps, upstream_burst=burst, attempts=3, timeout=0.1, budget_wait=0.5
    )
    resolver = Resolver(config)
    started = time.monotonic()
    lookups = 0
    while time.monotonic() - started < 1.0:
        with pytest.raises(TemporaryFailure):
            resolver.resolve(f"gone{lookups}.example.com.")
        lookups += 1
    elapsed = time.monotonic() - started
    # Every datagram spent a token: the first try of each question when it
    # was admitted, each retransmission as it went out (or it did not go).
    allowed = burst + qps * elapsed + 1
    assert 3 <= server.query_count <= allowed, (server.query_count, elapsed)
    stats = resolver.stats()
    assert stats.upstream_queries == server.query_count
    assert stats.budget_denied > 0 and lookups > 2
