"""Records as dnspython users expect them (issue 10 §3): record types given as
text, enum or number; answers that iterate over rdata objects; reverse
lookups; per-call ``search=False`` and ``timeout=``; immutable answers; and
the same on ``AsyncResolver``. Against the embedded DNS server."""

from __future__ import annotations

import asyncio
import ipaddress
import pickle
import socket
import time
from collections.abc import Iterator

import dns.rdatatype
import pytest

from safedns import (
    Answer,
    AsyncResolver,
    InvalidName,
    Resolver,
    ResolverConfig,
    TemporaryFailure,
)
from safedns.testing import DNSServer
from tests.conftest import FakeClock, k8s_config


@pytest.fixture
def records() -> Iterator[DNSServer]:
    with DNSServer() as srv:
        srv.add("example.com", "MX", "10 mail.example.com.", ttl=60)
        srv.add("example.com", "MX", "20 backup.example.com.", ttl=60)
        srv.add("_http._tcp.example.com", "SRV", "1 5 8080 web.example.com.", ttl=60)
        srv.add("example.com", "TXT", "v=spf1 -all", ttl=60)
        srv.add("10.2.0.192.in-addr.arpa", "PTR", "api.example.com.", ttl=60)
        ptr6 = ipaddress.ip_address("2001:db8::10").reverse_pointer
        srv.add(ptr6, "PTR", "v6.example.com.", ttl=60)
        srv.add("my-svc", "A", "10.9.9.9", ttl=60)
        srv.add("my-svc.ns1.svc.cluster.local", "A", "10.0.0.5", ttl=60)
        srv.add("api.example.com", "A", "192.0.2.10", ttl=60)
        yield srv


def _mx(answer: Answer) -> list[tuple[int, str]]:
    return sorted((rd.preference, rd.exchange.to_text()) for rd in answer)


# -- record types and rdata ----------------------------------------------------


@pytest.mark.parametrize("rdtype", ["MX", "mx", dns.rdatatype.MX, 15])
def test_mx_by_text_enum_or_number(records: DNSServer, rdtype: object) -> None:
    resolver = Resolver(k8s_config(records))
    answer = resolver.resolve("example.com", rdtype)  # type: ignore[arg-type]
    assert answer.rdtype == "MX"
    assert _mx(answer) == [(10, "mail.example.com."), (20, "backup.example.com.")]
    assert len(answer) == 2 and answer[0].rdtype == dns.rdatatype.MX
    assert sorted(answer.records) == ["10 mail.example.com.", "20 backup.example.com."]
    assert answer.addresses == []


def test_every_spelling_of_a_type_shares_one_cache_entry(records: DNSServer) -> None:
    resolver = Resolver(k8s_config(records))
    first = resolver.resolve("example.com", dns.rdatatype.MX)
    assert min(rd.preference for rd in first) == 10
    for rdtype in (15, "mx", "MX", dns.rdatatype.MX):
        again = resolver.resolve("example.com", rdtype)  # type: ignore[arg-type]
        assert again.from_cache and _mx(again) == _mx(first)
    assert records.queries == [("example.com.", "MX")]


def test_srv_txt_and_a_rdata(records: DNSServer) -> None:
    resolver = Resolver(k8s_config(records))
    (srv,) = resolver.resolve("_http._tcp.example.com", "SRV")
    assert (srv.priority, srv.weight, srv.port) == (1, 5, 8080)
    assert srv.target.to_text() == "web.example.com."
    (txt,) = resolver.resolve("example.com", "TXT")
    assert txt.strings == (b"v=spf1 -all",)
    (a,) = resolver.resolve("api.example.com", "A")
    assert a.address == "192.0.2.10"


@pytest.mark.parametrize(
    ("rdtype", "error"),
    [
        (True, TypeError),
        (1.0, TypeError),
        (None, TypeError),
        ("NOPE", ValueError),
        (0, ValueError),
        (70000, ValueError),
        (-1, ValueError),
        ("ANY", ValueError),
        ("AXFR", ValueError),
        (dns.rdatatype.OPT, ValueError),
    ],
)
def test_bad_record_types(records: DNSServer, rdtype: object, error: type[Exception]) -> None:
    resolver = Resolver(k8s_config(records))
    resolver.resolve("api.example.com", 1)  # (name, 1) must not answer for True
    with pytest.raises(error, match="type"):
        resolver.resolve("api.example.com", rdtype)  # type: ignore[arg-type]


# -- answers are immutable -----------------------------------------------------


def test_answer_is_immutable(records: DNSServer) -> None:
    resolver = Resolver(k8s_config(records))
    answer = resolver.resolve("example.com", "MX")
    for attribute in ("name", "rdtype", "canonical_name", "from_cache", "stale", "_records"):
        with pytest.raises(AttributeError, match="immutable"):
            setattr(answer, attribute, "x")
        with pytest.raises(AttributeError, match="immutable"):
            delattr(answer, attribute)
    with pytest.raises(AttributeError):
        answer.ttl = 5  # type: ignore[misc]
    with pytest.raises(AttributeError):
        answer.anything = 1  # type: ignore[attr-defined]
    assert resolver.resolve("example.com", "MX").name == "example.com."
    assert bool(answer) and len(answer) == 2


def test_answer_pickles(records: DNSServer) -> None:
    answer = Resolver(k8s_config(records)).resolve("example.com", "MX")
    clone = pickle.loads(pickle.dumps(answer))
    assert (clone.name, clone.records, clone.expires) == (
        answer.name,
        answer.records,
        answer.expires,
    )
    assert _mx(clone) == _mx(answer)


# -- reverse lookups -----------------------------------------------------------


def test_resolve_address_ipv4_and_ipv6(records: DNSServer) -> None:
    resolver = Resolver(k8s_config(records))
    answer = resolver.resolve_address("192.0.2.10")
    assert answer.name == "10.2.0.192.in-addr.arpa." and answer.rdtype == "PTR"
    assert answer.records == ["api.example.com."]
    assert [rd.target.to_text() for rd in answer] == ["api.example.com."]
    again = resolver.resolve_address(ipaddress.ip_address("192.0.2.10"))
    assert again.from_cache
    assert resolver.resolve_address("2001:db8::10").records == ["v6.example.com."]
    # Asked exactly as the reverse name: no search list, once each.
    assert records.queries == [
        ("10.2.0.192.in-addr.arpa.", "PTR"),
        (ipaddress.ip_address("2001:db8::10").reverse_pointer + ".", "PTR"),
    ]


@pytest.mark.parametrize("bad", ["api.example.com", "", "192.0.2", "1.2.3.4.5", "::g"])
def test_resolve_address_refuses_what_is_not_an_address(records: DNSServer, bad: str) -> None:
    with pytest.raises(InvalidName, match="not an IPv4 or IPv6 address"):
        Resolver(k8s_config(records)).resolve_address(bad)
    with pytest.raises(TypeError):
        Resolver(k8s_config(records)).resolve_address(3232235777)
    assert records.queries == []


# -- search=False --------------------------------------------------------------


def test_search_false_sends_exactly_the_name(records: DNSServer) -> None:
    sent: list[tuple[str, str]] = []
    resolver = Resolver(k8s_config(records), on_query=lambda s, q, t, tr: sent.append((q, t)))
    answer = resolver.resolve("my-svc", "A", search=False)
    assert sent == [("my-svc.", "A")]
    assert answer.name == "my-svc." and answer.addresses == ["10.9.9.9"]
    # The searched lookup is another question, cached apart.
    assert resolver.resolve("my-svc", "A").addresses == ["10.0.0.5"]
    assert resolver.resolve("my-svc", "A", search=False).addresses == ["10.9.9.9"]
    assert resolver.resolve_addresses("my-svc", search=False) == ["10.9.9.9"]
    assert resolver.resolve_addresses("192.0.2.1", search=False) == ["192.0.2.1"]
    assert sent[0] == ("my-svc.", "A") and ("my-svc.", "AAAA") in sent
    assert all(not q.startswith("my-svc.ns1") for q, _ in sent[:1])


# -- timeout= ------------------------------------------------------------------


def _silent(records: DNSServer) -> ResolverConfig:
    """A server that never answers A, with 3 s per try: a call left alone
    would take 3 s or more."""
    records.drop_types = {"A"}
    return k8s_config(records, timeout=3.0, attempts=1)


def test_timeout_bounds_a_call_to_a_silent_server(records: DNSServer) -> None:
    with Resolver(_silent(records)) as resolver:
        started = time.monotonic()
        with pytest.raises(TemporaryFailure, match="timed out"):
            resolver.resolve("api.example.com", timeout=0.3)
        assert time.monotonic() - started < 2.0
        # Waiting for another caller's query of the same name is bounded too.
        started = time.monotonic()
        with pytest.raises(TemporaryFailure, match="timed out"):
            resolver.resolve("api.example.com", timeout=0.3)
        assert time.monotonic() - started < 2.0
        assert resolver.stats().coalesced >= 1


@pytest.mark.parametrize(
    ("timeout", "error"),
    [
        (0, ValueError),
        (-1, ValueError),
        ("1", TypeError),
        (True, TypeError),
        (float("nan"), ValueError),
    ],
)
def test_bad_timeouts(records: DNSServer, timeout: object, error: type[Exception]) -> None:
    resolver = Resolver(k8s_config(records))
    resolver.resolve("api.example.com")
    with pytest.raises(error, match="timeout"):
        resolver.resolve("api.example.com", timeout=timeout)  # type: ignore[arg-type]


def test_timeout_does_not_cut_an_answer_in_time(records: DNSServer) -> None:
    resolver = Resolver(k8s_config(records))
    assert resolver.resolve("api.example.com", timeout=30).addresses == ["192.0.2.10"]
    assert resolver.lookup_addresses("api.example.com", timeout=30)[0].addresses == ["192.0.2.10"]


# -- AsyncResolver -------------------------------------------------------------


def test_async_records_reverse_and_search(records: DNSServer) -> None:
    sent: list[tuple[str, str]] = []

    async def main() -> None:
        config = k8s_config(records)
        async with AsyncResolver(config, on_query=lambda s, q, t, tr: sent.append((q, t))) as r:
            mx = await r.resolve("example.com", dns.rdatatype.MX)
            assert min(rd.preference for rd in mx) == 10
            assert _mx(await r.resolve("example.com", 15)) == _mx(mx)
            (srv,) = await r.resolve("_http._tcp.example.com", "srv")
            assert (srv.priority, srv.weight, srv.port) == (1, 5, 8080)
            assert (await r.resolve_address("192.0.2.10")).records == ["api.example.com."]
            v6 = await r.resolve_address("2001:db8::10")
            assert [rd.target.to_text() for rd in v6] == ["v6.example.com."]
            sent.clear()
            assert (await r.resolve("my-svc", "A", search=False)).addresses == ["10.9.9.9"]
            assert sent == [("my-svc.", "A")]
            with pytest.raises(TypeError):
                await r.resolve("example.com", True)  # type: ignore[arg-type]
            with pytest.raises(InvalidName):
                await r.resolve_address("not-an-address")

    asyncio.run(main())


def test_async_timeout_bounds_a_call(records: DNSServer) -> None:
    async def main() -> float:
        async with AsyncResolver(_silent(records)) as resolver:
            started = time.monotonic()
            with pytest.raises(TemporaryFailure, match="timed out"):
                await resolver.resolve("api.example.com", timeout=0.3)
            with pytest.raises(TemporaryFailure, match="timed out"):
                await resolver.resolve_addresses("api.example.com", socket.AF_INET, timeout=0.3)
            return time.monotonic() - started

    assert asyncio.run(main()) < 4.0


def test_async_resolver_refuses_what_it_would_ignore(records: DNSServer) -> None:
    sync = Resolver(k8s_config(records))
    with pytest.raises(TypeError, match="config would be ignored"):
        AsyncResolver(k8s_config(records), resolver=sync)
    with pytest.raises(TypeError, match="clock would be ignored"):
        AsyncResolver(resolver=sync, clock=FakeClock())
    with pytest.raises(TypeError, match="config and clock"):
        AsyncResolver(k8s_config(records), resolver=sync, clock=FakeClock())
    shared = AsyncResolver(resolver=sync)
    assert shared.config is sync.config
