"""The key resolver checks against a real DNS server: dnsmasq, queries counted
from its own log. dnsmasq sends no SOA with negative answers, which is what
``negative_ttl_no_soa`` is for."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from safedns import NameNotFound, Resolver, TemporaryFailure
from safedns.testing import Dnsmasq
from tests.conftest import FakeClock, k8s_config, require_dnsmasq

pytestmark = pytest.mark.dnsmasq


@pytest.fixture(scope="module")
def dnsmasq() -> Iterator[Dnsmasq]:
    require_dnsmasq()
    records = {
        "api.example.com": ["192.0.2.10", "2001:db8::10"],
        "my-svc.ns1.svc.cluster.local": ["10.0.0.5"],
    }
    with Dnsmasq(records, ttl=60, cnames={"www.example.org": "api.example.com"}) as server:
        yield server


@pytest.fixture
def counted(dnsmasq: Dnsmasq) -> Dnsmasq:
    dnsmasq.clear()
    return dnsmasq


def test_external_name_one_query_for_a_thousand_lookups(counted: Dnsmasq) -> None:
    resolver = Resolver(k8s_config(counted.nameserver))
    for _ in range(1000):
        assert resolver.resolve("api.example.com").addresses == ["192.0.2.10"]
    assert counted.queries() == [("api.example.com.", "A")]


def test_short_name_then_zero_queries(counted: Dnsmasq) -> None:
    resolver = Resolver(k8s_config(counted.nameserver))
    assert resolver.resolve("my-svc").name == "my-svc.ns1.svc.cluster.local."
    counted.clear()
    for _ in range(100):
        resolver.resolve("my-svc")
    assert counted.queries() == []


def test_missing_name_without_soa_is_cached_for_negative_ttl_no_soa(
    counted: Dnsmasq, clock: FakeClock
) -> None:
    resolver = Resolver(k8s_config(counted.nameserver), clock=clock)
    with pytest.raises(NameNotFound):
        resolver.resolve("nope.example.com")
    assert len(counted.queries()) == 4  # absolute first, then the three search names
    counted.clear()
    for _ in range(100):
        with pytest.raises(NameNotFound):
            resolver.resolve("nope.example.com")
    assert counted.queries() == []
    clock.advance(5)  # negative_ttl_no_soa
    with pytest.raises(NameNotFound):
        resolver.resolve("nope.example.com")
    assert len(counted.queries()) == 4


def test_negative_ttl_no_soa_zero_turns_caching_off(counted: Dnsmasq) -> None:
    resolver = Resolver(k8s_config(counted.nameserver, negative_ttl_no_soa=0))
    for _ in range(3):
        with pytest.raises(NameNotFound):
            resolver.resolve("nope.example.com.")
    assert counted.queries() == [("nope.example.com.", "A")] * 3


def test_both_families_and_cname(counted: Dnsmasq) -> None:
    resolver = Resolver(k8s_config(counted.nameserver))
    assert resolver.resolve_addresses("api.example.com") == ["192.0.2.10", "2001:db8::10"]
    assert resolver.resolve_addresses("my-svc", socket.AF_INET) == ["10.0.0.5"]
    answer = resolver.resolve("www.example.org")
    assert answer.canonical_name == "api.example.com."
    assert answer.addresses == ["192.0.2.10"]
    with pytest.raises(NameNotFound) as info:
        resolver.resolve("my-svc", "AAAA")
    assert not info.value.nxdomain


def test_dead_nameserver_then_dnsmasq(counted: Dnsmasq) -> None:
    # A port nobody listens on: ICMP port unreachable, then the real server.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{probe.getsockname()[1]}"
    resolver = Resolver(k8s_config(dead, counted.nameserver))
    assert resolver.resolve("api.example.com").addresses == ["192.0.2.10"]
    only_dead = Resolver(k8s_config(dead))
    with pytest.raises(TemporaryFailure):
        only_dead.resolve("api.example.com")
