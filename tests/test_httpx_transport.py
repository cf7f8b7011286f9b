"""safedns.httpx.SafeTransport and AsyncSafeTransport against real servers.

Real HTTP(S) servers on distinct loopback addresses (127.0.0.2, 127.0.0.3 …,
all on ``lo`` under Linux), names served by the embedded ``DNSServer``, real
TLS with a trustme CA, real ``httpx.Client``/``AsyncClient``. Counts are read
on the servers' side (connections accepted and still open, requests, DNS
queries). Waits poll with a deadline; nothing sleeps to prove an absence.
"""

from __future__ import annotations

import asyncio
import math
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any

import httpcore
import httpx
import pytest
import trustme

import safedns
from safedns._http.follow import AddressBook, ConnectionWatch, Retirement, interleave
from safedns.httpx import AsyncSafeTransport, SafeTransport, TransportStats
from safedns.testing import DNSServer

from .adapterkit import (
    NAME,
    ProxyBackend,
    ca,
    client_tls,
    dns,
    resolver,
    server_tls,
)
from .httpservers import Backend, H2Backend, backends, wait_for

__all__ = ["ca", "dns", "resolver"]  # fixtures


# ------------------------------------------------------------------ pure parts


def test_interleave_alternates_families_ipv6_first() -> None:
    assert interleave(["10.0.0.1", "10.0.0.2", "2001:db8::1", "2001:db8::2", "10.0.0.3"]) == [
        "2001:db8::1",
        "10.0.0.1",
        "2001:db8::2",
        "10.0.0.2",
        "10.0.0.3",
    ]
    assert interleave(["10.0.0.2", "10.0.0.1", "10.0.0.2"]) == ["10.0.0.2", "10.0.0.1"]
    assert interleave([]) == []


def test_connection_watch_retires_when_the_address_leaves_dns_or_by_age() -> None:
    book = AddressBook()
    watch = ConnectionWatch(NAME, book, opened=100.0)
    assert watch.check(101.0) is None  # peer unknown, host never resolved
    watch.learn(("127.0.0.2", 443))
    assert watch.check(101.0) is None
    book.learn(NAME, ["127.0.0.2", "127.0.0.5"])
    assert watch.check(102.0) is None
    book.learn(NAME, ["127.0.0.3"])
    assert watch.check(103.0) is Retirement.DNS
    assert watch.check(104.0) is None and watch.retired is Retirement.DNS  # reported once
    aged = ConnectionWatch(NAME, book, opened=100.0, max_age=30.0)
    aged.learn(("127.0.0.3", 443, 0, 0))
    assert aged.check(129.9) is None
    assert aged.check(130.0) is Retirement.AGE
    v6 = ConnectionWatch("v6.example.com", book, opened=0.0)
    v6.learn(("2001:db8:0:0::1", 443, 0, 0))
    book.learn("v6.example.com", ["2001:0db8::0001"])
    assert v6.check(1.0) is None  # same address, other spelling


def test_address_book_is_bounded() -> None:
    book = AddressBook(max_hosts=3)
    for i in range(10):
        book.learn(f"h{i}.example.com", [f"192.0.2.{i}"])
    assert [book.current(f"h{i}.example.com") for i in (6, 7, 8, 9)] == [
        None,
        frozenset({"192.0.2.7"}),
        frozenset({"192.0.2.8"}),
        frozenset({"192.0.2.9"}),
    ]
    assert book.addresses("h9.example.com") == ("192.0.2.9",)
    book.forget("h9.example.com")
    assert book.addresses("h9.example.com") is None


def test_public_names() -> None:
    import safedns.httpx

    public = {name for name in dir(safedns.httpx) if not name.startswith("_")}
    assert public <= set(safedns.httpx.__all__) | {"annotations"}
    for name in ("SafeTransport", "AsyncSafeTransport", "TransportStats"):
        assert getattr(safedns.httpx, name).__module__ == "safedns.httpx"
    assert {f for f in TransportStats.__dataclass_fields__} >= {
        "requests",
        "attempts",
        "retries",
        "retries_denied",
        "connections_opened",
        "connections_retired_dns",
    }


# ------------------------------------------------------------ the one private hook


def test_httpx_keeps_its_pool_in_one_private_attribute() -> None:
    """SafeTransport relies on httpx.HTTPTransport keeping its httpcore pool in
    ``_pool`` (and nothing else). If httpx changes that, this fails loudly."""
    for cls, pool_cls in (
        (httpx.HTTPTransport, httpcore.ConnectionPool),
        (httpx.AsyncHTTPTransport, httpcore.AsyncConnectionPool),
    ):
        plain = cls()
        assert set(vars(plain)) == {"_pool"}, f"httpx.{cls.__name__} changed: {vars(plain)}"
        assert isinstance(plain._pool, pool_cls)
    assert callable(httpcore.ConnectionPool.create_connection)
    assert callable(httpcore.AsyncConnectionPool.create_connection)


def test_requests_go_through_our_pool_and_backend(dns: DNSServer, resolver: Any) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=60)
    with backends("127.0.0.2") as (server,):
        transport = SafeTransport(resolver=resolver)
        assert transport._pool is transport.pool
        assert isinstance(transport, httpx.HTTPTransport)
        with httpx.Client(transport=transport) as client:
            assert client.get(server.url(NAME)).text == "127.0.0.2"
        assert transport.stats().connections_opened == 1


# ------------------------------------------------------------------ must show


def test_200_requests_by_name_over_at_most_2_connections_few_queries(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=1)
    with backends("127.0.0.2") as (server,):
        transport = SafeTransport(resolver=resolver)
        started = time.monotonic()
        with httpx.Client(transport=transport) as client:
            answers = [client.get(server.url(NAME)) for _ in range(200)]
        elapsed = time.monotonic() - started
        assert [(r.status_code, r.text) for r in answers] == [(200, "127.0.0.2")] * 200
        assert server.request_count == 200
        assert server.accepted <= 2
        # One A (+ one AAAA, NODATA cached for its negative TTL of 1 s) per TTL
        # at most: the name is read from the cache on every request.
        queries = len(dns.queries)
        assert 1 <= queries <= 2 * (math.ceil(elapsed) + 1), (queries, elapsed)
        stats = transport.stats()
        assert (stats.requests, stats.attempts, stats.retries) == (200, 200, 0)
        assert stats.connections_opened == server.accepted


def test_a_frozen_cache_means_exactly_one_lookup(dns: DNSServer) -> None:
    """With the resolver's clock stopped, 200 requests ask DNS once (A + AAAA)."""
    dns.add(NAME, "A", "127.0.0.2", ttl=1)
    config = safedns.ResolverConfig(nameservers=[dns.nameserver], search=(), ndots=1)
    with (
        safedns.Resolver(config, clock=lambda: 5000.0) as frozen,
        backends("127.0.0.2") as (server,),
        httpx.Client(transport=SafeTransport(resolver=frozen)) as client,
    ):
        for _ in range(200):
            assert client.get(server.url(NAME)).status_code == 200
    assert sorted(dns.queries) == [(NAME + ".", "A"), (NAME + ".", "AAAA")]


def test_connections_follow_the_record_to_its_new_address(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=1)
    with backends("127.0.0.2", "127.0.0.3") as (old, new):
        transport = SafeTransport(resolver=resolver)
        with httpx.Client(transport=transport) as client:
            for _ in range(5):
                assert client.get(old.url(NAME)).text == "127.0.0.2"
            assert old.open_connections == 1
            dns.remove(NAME, "A")
            dns.add(NAME, "A", "127.0.0.3", ttl=1)
            switched = time.monotonic()
            seen: list[str] = []

            def moved() -> bool:
                seen.append(client.get(old.url(NAME)).text)
                return seen[-1] == "127.0.0.3" and old.open_connections == 0

            assert wait_for(moved, timeout=3.0), (seen[-5:], old.open_connections)
            assert time.monotonic() - switched < 3.0
            # Once moved, it stays moved, on one kept-alive connection.
            for _ in range(20):
                assert client.get(old.url(NAME)).text == "127.0.0.3"
            assert old.open_connections == 0
            assert new.open_connections == 1
            assert new.accepted == 1
        stats = transport.stats()
        assert stats.connections_retired_dns == 1
        assert stats.connections_opened == 2


def test_first_address_dead_second_alive_20_of_20(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    dns.add(NAME, "A", "127.0.0.4", ttl=60)
    dns.add(NAME, "A", "127.0.0.5", ttl=60)
    # The answer's order is the order the transport dials in (cached for 60 s):
    # make its first address the dead one.
    dead, live = resolver.resolve_addresses(NAME)
    with backends(live) as (alive,):
        transport = SafeTransport(resolver=resolver)
        with httpx.Client(transport=transport) as client:
            # A new connection for each request: each one meets the dead address first.
            answers = [
                client.get(alive.url(NAME), headers={"Connection": "close"}) for _ in range(20)
            ]
        assert resolver.resolve_addresses(NAME) == [dead, live]
        assert [(r.status_code, r.text) for r in answers] == [(200, live)] * 20
        assert alive.accepted == 20
        assert transport.stats().attempts == 20  # failover is not a retry


def test_503_everywhere_500_gets_within_the_budget_and_posts_once(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=60)
    with backends("127.0.0.2", status=503) as (server,):
        transport = SafeTransport(
            resolver=resolver, retry=safedns.RetryPolicy(attempts=4, backoff=0)
        )
        with httpx.Client(transport=transport) as client:
            gets = [client.get(server.url(NAME)).status_code for _ in range(500)]
            assert gets == [503] * 500
            assert server.request_count <= 650, server.request_count  # plain: 2,000
            assert server.request_count >= 600  # the budget's floor was used
            stats = transport.stats()
            assert stats.attempts == server.request_count
            assert stats.retries == stats.attempts - 500
            assert stats.retries_denied > 0
            server.requests.clear()
            posts = [client.post(server.url(NAME), content=b"x").status_code for _ in range(10)]
        assert posts == [503] * 10
        assert server.request_count == 10
        assert server.accepted == 1  # retried responses were drained: one connection


def test_the_budget_arithmetic_is_exact_on_a_stopped_clock(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=60)
    budget = safedns.RetryBudget(ratio=0.1, min_per_second=10, window=10.0, clock=lambda: 7.0)
    with backends("127.0.0.2", status=503) as (server,):
        transport = SafeTransport(
            resolver=resolver,
            retry=safedns.RetryPolicy(attempts=4, backoff=0),
            retry_budget=budget,
        )
        with httpx.Client(transport=transport) as client:
            for _ in range(500):
                client.get(server.url(NAME))
        assert server.request_count == 650  # 500 + 10/s * 10 s + 10 % of 500
        stats = transport.stats()
        assert stats.retries == 150
        assert 0 < stats.retries_denied <= 500  # at most once per request: then it stops


def test_https_by_name_and_a_certificate_for_another_name_is_refused(
    dns: DNSServer, resolver: safedns.Resolver, ca: trustme.CA
) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=60)
    dns.add("wrong.example.com", "A", "127.0.0.3", ttl=60)
    with (
        backends("127.0.0.2", tls=server_tls(ca, NAME)) as (good,),
        backends("127.0.0.3", tls=server_tls(ca, "other.example.com")) as (bad,),
    ):
        transport = SafeTransport(
            resolver=resolver, verify=client_tls(ca), retry=safedns.RetryPolicy(backoff=0)
        )
        with httpx.Client(transport=transport) as client:
            response = client.get(good.url(NAME))
            assert (response.status_code, response.text) == (200, "127.0.0.2")
            with pytest.raises(httpx.ConnectError) as info:
                client.get(bad.url("wrong.example.com"))
        assert isinstance(_root(info.value), ssl.SSLCertVerificationError)
        assert wait_for(lambda: bad.counts["tls_failures"] == 1, timeout=10)
        assert bad.request_count == 0
        assert transport.stats().attempts == 2  # the refused certificate was not retried


def test_https_by_name_through_the_async_transport(
    dns: DNSServer, resolver: safedns.Resolver, ca: trustme.CA
) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=60)
    dns.add("wrong.example.com", "A", "127.0.0.3", ttl=60)

    async def main(good: Backend, bad: Backend) -> None:
        transport = AsyncSafeTransport(resolver=resolver, verify=client_tls(ca))
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.get(good.url(NAME))
            assert (response.status_code, response.text) == (200, "127.0.0.2")
            with pytest.raises(httpx.ConnectError) as info:
                await client.get(bad.url("wrong.example.com"))
        assert isinstance(_root(info.value), ssl.SSLCertVerificationError)

    with (
        backends("127.0.0.2", tls=server_tls(ca, NAME)) as (good,),
        backends("127.0.0.3", tls=server_tls(ca, "other.example.com")) as (bad,),
    ):
        asyncio.run(main(good, bad))
        assert bad.request_count == 0


def test_async_50_concurrent_requests_by_name_at_most_2_queries(dns: DNSServer) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=60)

    async def main(server: Backend) -> tuple[list[httpx.Response], TransportStats]:
        config = safedns.ResolverConfig(nameservers=[dns.nameserver], search=(), ndots=1)
        async with safedns.AsyncResolver(config) as resolver:
            transport = AsyncSafeTransport(resolver=resolver)
            async with httpx.AsyncClient(transport=transport) as client:
                answers = await asyncio.gather(*(client.get(server.url(NAME)) for _ in range(50)))
            return list(answers), transport.stats()

    with backends("127.0.0.2") as (server,):
        answers, stats = asyncio.run(main(server))
    assert [(r.status_code, r.text) for r in answers] == [(200, "127.0.0.2")] * 50
    assert len(dns.queries) <= 2, dns.queries
    assert stats.requests == 50 and stats.connections_opened == server.accepted


# ------------------------------------------------------------------ more behaviour


def _root(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return exc


def test_async_transport_follows_dns_and_fails_over(dns: DNSServer) -> None:
    dns.add(NAME, "A", "127.0.0.4", ttl=1)  # dead
    dns.add(NAME, "A", "127.0.0.2", ttl=1)

    async def main(old: Backend, new: Backend) -> TransportStats:
        config = safedns.ResolverConfig(
            nameservers=[dns.nameserver], search=(), ndots=1, timeout=0.5, attempts=1
        )
        async with safedns.AsyncResolver(config) as resolver:
            transport = AsyncSafeTransport(resolver=resolver)
            async with httpx.AsyncClient(transport=transport) as client:
                for _ in range(5):
                    assert (await client.get(old.url(NAME))).text == "127.0.0.2"
                dns.remove(NAME, "A")
                dns.add(NAME, "A", "127.0.0.3", ttl=1)
                deadline = time.monotonic() + 3.0
                while time.monotonic() < deadline:
                    text = (await client.get(old.url(NAME))).text
                    if text == "127.0.0.3" and old.open_connections == 0:
                        break
                    await asyncio.sleep(0.01)
                assert text == "127.0.0.3"
                assert old.open_connections == 0
            return transport.stats()

    with backends("127.0.0.2", "127.0.0.3") as (old, new):
        stats = asyncio.run(main(old, new))
    assert stats.connections_retired_dns == 1
    assert stats.connections_opened == 2


def test_http2_by_name(dns: DNSServer, resolver: safedns.Resolver, ca: trustme.CA) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=60)
    server = H2Backend("127.0.0.2", server_tls(ca, NAME))
    try:
        transport = SafeTransport(resolver=resolver, verify=client_tls(ca), http2=True)
        with httpx.Client(transport=transport) as client:
            answers = [client.get(server.url(NAME)) for _ in range(10)]
        assert {(r.http_version, r.text) for r in answers} == {("HTTP/2", "h2 127.0.0.2")}
        assert server.connections == 1 and server.streams == 10
    finally:
        server.close()


def test_http2_by_name_through_the_async_transport(dns: DNSServer, ca: trustme.CA) -> None:
    """HTTP/2 through ``AsyncSafeTransport``: one TLS connection by name, ALPN
    h2, concurrent requests multiplexed as streams on it."""
    dns.add(NAME, "A", "127.0.0.2", ttl=60)

    async def main(server: H2Backend) -> tuple[list[httpx.Response], TransportStats]:
        config = safedns.ResolverConfig(nameservers=[dns.nameserver], search=(), ndots=1)
        async with safedns.AsyncResolver(config) as resolver:
            transport = AsyncSafeTransport(resolver=resolver, verify=client_tls(ca), http2=True)
            async with httpx.AsyncClient(transport=transport) as client:
                first = await client.get(server.url(NAME))
                rest = await asyncio.gather(*(client.get(server.url(NAME)) for _ in range(20)))
            return [first, *rest], transport.stats()

    server = H2Backend("127.0.0.2", server_tls(ca, NAME))
    try:
        answers, stats = asyncio.run(main(server))
        assert {(r.http_version, r.text) for r in answers} == {("HTTP/2", "h2 127.0.0.2")}
        assert len(answers) == 21
        assert server.connections == 1 and server.streams == 21
        assert (stats.requests, stats.attempts, stats.connections_opened) == (21, 21, 1)
        assert len(dns.queries) <= 2, dns.queries
    finally:
        server.close()


def test_literal_ip_never_asks_dns(dns: DNSServer, resolver: safedns.Resolver) -> None:
    with backends("127.0.0.2") as (server,):
        transport = SafeTransport(resolver=resolver)
        with httpx.Client(transport=transport) as client:
            assert client.get(server.url()).text == "127.0.0.2"
            assert client.get(server.url()).text == "127.0.0.2"
    assert dns.queries == []
    assert transport.stats().connections_opened == 1


def test_proxy_hostname_resolves_through_safedns_target_does_not(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    dns.add("proxy.example.com", "A", "127.0.0.6", ttl=60)
    proxy = ProxyBackend("127.0.0.6")
    try:
        transport = SafeTransport(
            resolver=resolver, proxy=f"http://proxy.example.com:{proxy.port}"
        )
        with httpx.Client(transport=transport) as client:
            response = client.get("http://target.example.com/x")
        assert response.text == "proxied GET http://target.example.com/x"
        assert {name for name, _ in dns.queries} == {"proxy.example.com."}
    finally:
        proxy.close()


@pytest.fixture
def env_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProxyBackend]:
    """A real proxy on 127.0.0.6, named by ``HTTP_PROXY`` in the environment."""
    for name in ("ALL_PROXY", "NO_PROXY", "HTTPS_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    proxy = ProxyBackend("127.0.0.6")
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.6:{proxy.port}")
    try:
        yield proxy
    finally:
        proxy.close()


def test_trust_env_proxies_and_the_transport_as_docs_guides_say(
    dns: DNSServer, resolver: safedns.Resolver, env_proxy: ProxyBackend
) -> None:
    """docs/guides.md, httpx: with ``transport=``, httpx.Client ignores the
    proxy environment variables (trust_env=True or not); without it, or with
    ``Client(proxy=...)``, httpx builds plain transports that bypass ours;
    ``proxy=`` on our transport, in ``mounts=`` built from the environment
    (an exempt host mounted on its own), is the way."""
    import urllib.request

    dns.add(NAME, "A", "127.0.0.2", ttl=60)
    dns.add("direct.example.com", "A", "127.0.0.2", ttl=60)
    proxy_url = f"http://127.0.0.6:{env_proxy.port}"
    with backends("127.0.0.2") as (server,):
        ours = SafeTransport(resolver=resolver)
        with httpx.Client(transport=ours, trust_env=True) as client:
            assert client.get(server.url(NAME)).text == "127.0.0.2"  # direct: HTTP_PROXY unused
        assert env_proxy.request_count == 0 and ours.stats().requests == 1

        bypassed = SafeTransport(resolver=resolver)
        with httpx.Client(transport=bypassed, proxy=proxy_url) as client:
            response = client.get(server.url(NAME))
        assert response.text == f"proxied GET {server.url(NAME)}"
        assert bypassed.stats().requests == 0  # httpx's own transport carried it

        with httpx.Client(trust_env=True) as plain:  # no transport: httpx builds one per proxy
            assert plain.get(server.url(NAME)).text == f"proxied GET {server.url(NAME)}"

        proxies = urllib.request.getproxies()  # the guide's recipe
        mounts: dict[str, httpx.BaseTransport | None] = {
            f"{scheme}://": SafeTransport(resolver=resolver, proxy=url)
            for scheme, url in proxies.items()
            if scheme in ("http", "https")
        }
        exempt = SafeTransport(resolver=resolver)  # as for NO_PROXY
        mounts["all://direct.example.com"] = exempt
        with httpx.Client(transport=SafeTransport(resolver=resolver), mounts=mounts) as client:
            response = client.get(server.url(NAME))
            assert client.get(server.url("direct.example.com")).text == "127.0.0.2"
        assert response.text == f"proxied GET {server.url(NAME)}"
        mounted = mounts["http://"]
        assert isinstance(mounted, SafeTransport) and mounted.stats().requests == 1
        assert exempt.stats().requests == 1
    assert env_proxy.request_count == 3 and server.request_count == 2


def test_unknown_name_is_a_connect_error_and_not_retried(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    transport = SafeTransport(resolver=resolver, retry=safedns.RetryPolicy(backoff=0))
    with httpx.Client(transport=transport) as client, pytest.raises(httpx.ConnectError) as info:
        client.get("http://missing.example.com/")
    assert "Name or service not known" in str(info.value)
    assert isinstance(info.value.__cause__, httpcore.ConnectError)
    # httpcore's pool re-raises "from None": the resolver's error is the context.
    assert isinstance(_root(info.value), safedns.NameNotFound)
    assert transport.stats().attempts == 1


def test_post_is_retried_when_nothing_could_be_sent(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    port = _unused_port("127.0.0.4")
    dns.add(NAME, "A", "127.0.0.4", ttl=60)
    transport = SafeTransport(resolver=resolver, retry=safedns.RetryPolicy(backoff=0))
    with httpx.Client(transport=transport) as client, pytest.raises(httpx.ConnectError):
        client.post(f"http://{NAME}:{port}/", content=b"x")
    stats = transport.stats()
    assert (stats.attempts, stats.retries) == (3, 2)


def test_a_body_that_cannot_be_replayed_is_not_retried(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=60)
    with backends("127.0.0.2", status=503) as (server,):
        transport = SafeTransport(resolver=resolver, retry=safedns.RetryPolicy(backoff=0))
        with httpx.Client(transport=transport) as client:
            streamed = client.put(server.url(NAME), content=iter([b"a", b"b"]))
            assert streamed.status_code == 503
            assert server.requests == [("PUT", "/", b"ab")]
            assert client.put(server.url(NAME), content=b"ab").status_code == 503
            assert server.request_count == 1 + 3


def test_retry_after_is_honoured(dns: DNSServer, resolver: safedns.Resolver) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=60)
    with backends("127.0.0.2", status=503, headers=[("Retry-After", "1")]) as (server,):
        policy = safedns.RetryPolicy(attempts=2, backoff=0, backoff_max=0.2)
        transport = SafeTransport(resolver=resolver, retry=policy)
        with httpx.Client(transport=transport) as client:
            started = time.monotonic()
            assert client.get(server.url(NAME)).status_code == 503
            assert time.monotonic() - started >= 0.2  # Retry-After, capped by backoff_max
        assert server.request_count == 2


def test_max_connection_age(dns: DNSServer, resolver: safedns.Resolver) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=60)
    with backends("127.0.0.2") as (server,):
        transport = SafeTransport(resolver=resolver, max_connection_age=0)
        with httpx.Client(transport=transport) as client:
            for _ in range(3):
                assert client.get(server.url(NAME)).status_code == 200
        assert server.accepted == 3
        assert transport.stats().connections_retired_age == 3  # each, once idle
        with pytest.raises(ValueError, match="max_connection_age"):
            SafeTransport(resolver=resolver, max_connection_age=-1)


def test_keepalive_survives_a_dns_outage(dns: DNSServer, resolver: safedns.Resolver) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=1)
    with backends("127.0.0.2") as (server,):
        transport = SafeTransport(resolver=resolver)
        with httpx.Client(transport=transport) as client:
            assert client.get(server.url(NAME)).status_code == 200
            dns.stop()
            resolver.flush()  # nothing cached, nothing stale: DNS is simply gone
            for _ in range(5):
                started = time.monotonic()
                assert client.get(server.url(NAME)).status_code == 200
                assert time.monotonic() - started < 0.15  # DNS is not on the path
            assert server.accepted == 1
            # New connections dial the last addresses the transport had (the
            # first of these requests still goes over the kept-alive one).
            for _ in range(3):
                response = client.get(server.url(NAME), headers={"Connection": "close"})
                assert response.status_code == 200
        assert server.accepted == 3


def test_bad_arguments_are_typed_errors(resolver: safedns.Resolver) -> None:
    with pytest.raises(TypeError, match="retry"):
        SafeTransport(resolver=resolver, retry=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError) as plain:
        httpx.HTTPTransport(proxy="ftp://proxy.example.com")
    with pytest.raises(ValueError) as ours:
        SafeTransport(resolver=resolver, proxy="ftp://proxy.example.com")
    assert str(ours.value) == str(plain.value)  # as plain httpx says it


def _unused_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
