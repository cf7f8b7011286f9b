"""safedns.aiohttp.SafeConnector and RetryMiddleware against real servers.

Real aiohttp sessions; real HTTP(S) servers on distinct loopback addresses
(``tests/httpservers.py``: 127.0.0.2 … on one port), names served by the
embedded ``DNSServer``, real TLS with a trustme CA. Counts are read on the
servers' side (connections accepted and still open, requests, DNS queries).
Waits poll with a deadline; latency is asserted where the behaviour is
about time, with margins far below what the old behaviour cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

import pytest

aiohttp = pytest.importorskip("aiohttp")  # the aiohttp extra installs it
import trustme  # noqa: E402

import safedns  # noqa: E402
from safedns._http.dial import Hosts  # noqa: E402
from safedns.aiohttp import RetryMiddleware, SafeConnector  # noqa: E402
from safedns.testing import DNSServer  # noqa: E402

from .adapterkit import (  # noqa: E402
    ProxyBackend,
    ca,
    client_tls,
    dns,
    hole_then_live,
    resolver,
    server_tls,
)
from .conftest import FakeClock, until  # noqa: E402
from .httpservers import Backend, RawServer, backends, same_port  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "error::ResourceWarning", "error::pytest.PytestUnraisableExceptionWarning"
)

NAME = "svc.example.com"
T = TypeVar("T")


__all__ = ["ca", "dns", "resolver"]  # fixtures


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(main())


@contextlib.asynccontextmanager
async def client(
    resolver: Any,
    *,
    retry: safedns.RetryPolicy | None = None,
    budget: safedns.RetryBudget | None = None,
    **connector: Any,
) -> AsyncIterator[tuple[Any, SafeConnector, RetryMiddleware]]:
    """A session over a ``SafeConnector`` and a ``RetryMiddleware`` (one
    attempt per request unless ``retry`` says otherwise)."""
    conn = SafeConnector(resolver, hosts=None, **connector)
    middleware = RetryMiddleware(
        retry=retry if retry is not None else safedns.RetryPolicy(attempts=1),
        retry_budget=budget,
    )
    async with aiohttp.ClientSession(connector=conn, middlewares=(middleware,)) as session:
        yield session, conn, middleware


async def fetch(session: Any, url: str, **kwargs: Any) -> tuple[int, str]:
    async with session.get(url, **kwargs) as response:
        return response.status, await response.text()


# ------------------------------------------------------------------ pure parts


def test_a_race_run_by_the_client_teaches_the_failed_address_memory() -> None:
    hosts = Hosts(stale_ttl=0.0)
    hosts.failures.failed("127.0.0.3", 0.0)
    hosts.raced(["127.0.0.2", "127.0.0.3", "127.0.0.4"], "127.0.0.3", 10.0)
    assert hosts.failures.failing("127.0.0.2", 11.0)  # started first, lost: failed or slow
    assert not hosts.failures.failing("127.0.0.3", 11.0)  # the winner is healthy again
    assert not hosts.failures.failing("127.0.0.4", 11.0)  # started after: no verdict
    hosts.raced(["2001:db8::1", "127.0.0.4"], None, 10.0)  # none connected
    assert hosts.failures.failing("2001:db8:0::1", 11.0)
    assert hosts.failures.failing("127.0.0.4", 11.0)
    assert not hosts.failures.failing("127.0.0.4", 41.0)  # held 30 s


def test_public_names() -> None:
    import safedns.aiohttp

    assert set(safedns.aiohttp.__all__) == {"Resolver", "RetryMiddleware", "SafeConnector"}
    public = {name for name in dir(safedns.aiohttp) if not name.startswith("_")}
    assert public <= set(safedns.aiohttp.__all__) | {"annotations"}
    for name in safedns.aiohttp.__all__:
        assert getattr(safedns.aiohttp, name).__module__ == "safedns.aiohttp"
    assert issubclass(SafeConnector, aiohttp.TCPConnector)


def test_the_aiohttp_hooks_the_connector_relies_on() -> None:
    """SafeConnector uses only public extension points of aiohttp: a given
    ``resolver`` with ``use_dns_cache=False`` (asked on every new connection,
    in the request's task), ``socket_factory`` (called once per attempt of
    its Happy Eyeballs), ``happy_eyeballs_delay`` and ``connect(req, traces,
    timeout)``; and ClientSession's ``middlewares``. If aiohttp changes any
    of them, this fails loudly."""
    params = inspect.signature(aiohttp.TCPConnector.__init__).parameters
    for name in ("resolver", "use_dns_cache", "socket_factory", "happy_eyeballs_delay"):
        assert name in params, f"aiohttp.TCPConnector lost {name}="
    assert list(inspect.signature(aiohttp.BaseConnector.connect).parameters) == [
        "self",
        "req",
        "traces",
        "timeout",
    ]
    assert "middlewares" in inspect.signature(aiohttp.ClientSession.__init__).parameters
    assert "consumed" in dir(aiohttp.payload.Payload)


def test_bad_arguments_are_typed_errors(resolver: safedns.Resolver) -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="resolver"):
            SafeConnector(aiohttp.ThreadedResolver())  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="use_dns_cache"):
            SafeConnector(resolver, use_dns_cache=True)
        with pytest.raises(ValueError, match="max_connection_age"):
            SafeConnector(resolver, max_connection_age=-1)
        with pytest.raises(ValueError, match="happy_eyeballs_delay"):
            SafeConnector(resolver, happy_eyeballs_delay=5)

    run(main)
    with pytest.raises(TypeError, match="retry"):
        RetryMiddleware(retry=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="retry_budget"):
        RetryMiddleware(retry_budget=0.1)  # type: ignore[arg-type]


# ------------------------------------------------------------------ must show


def test_200_gets_by_name_over_at_most_2_connections_few_queries(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=1)

    async def main(server: Backend) -> tuple[list[tuple[int, str]], float, Any]:
        started = time.monotonic()
        async with client(resolver) as (session, conn, middleware):
            answers = []
            for _ in range(200):  # paced over ~2 s: the 1 s answer expires on the way
                answers.append(await fetch(session, server.url(NAME)))
                await asyncio.sleep(0.01)
        return answers, time.monotonic() - started, (conn.stats(), middleware.stats())

    with backends("127.0.0.2") as (server,):
        answers, elapsed, (conn_stats, stats) = run(lambda: main(server))
        assert answers == [(200, "127.0.0.2")] * 200
        assert server.request_count == 200
        assert server.accepted <= 2
    # One A (+ one AAAA, NODATA cached for its negative TTL of 1 s) per TTL at
    # most, refreshed in the background: the name is read from the book.
    queries = len(dns.queries)
    assert 1 <= queries <= 2 * (2 + math.ceil(elapsed)), (queries, elapsed)
    assert (stats.requests, stats.attempts, stats.retries) == (200, 200, 0)
    assert conn_stats.connections_opened == server.accepted


def test_connections_follow_the_record_to_its_new_address(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=1)

    async def main(old: Backend, new: Backend) -> Any:
        async with client(resolver) as (session, conn, _):
            for _ in range(5):
                assert await fetch(session, old.url(NAME)) == (200, "127.0.0.2")
            assert old.open_connections == 1
            dns.remove(NAME, "A")
            dns.add(NAME, "A", "127.0.0.3", ttl=1)
            switched = time.monotonic()
            seen: list[str] = []
            while time.monotonic() - switched < 3.0:
                seen.append((await fetch(session, old.url(NAME)))[1])
                if seen[-1] == "127.0.0.3":
                    break
                await asyncio.sleep(0.01)
            assert seen[-1] == "127.0.0.3", seen[-5:]
            assert time.monotonic() - switched < 3.0
            moved = time.monotonic()
            for _ in range(20):  # once moved, it stays moved, on one kept-alive connection
                assert await fetch(session, old.url(NAME)) == (200, "127.0.0.3")
            assert await until(lambda: old.open_connections == 0, 0.5 - (time.monotonic() - moved))
            assert new.open_connections == 1 and new.accepted == 1
            return conn.stats()

    with backends("127.0.0.2", "127.0.0.3") as (old, new):
        stats = run(lambda: main(old, new))
    assert stats.connections_retired_dns == 1
    assert stats.connections_opened == 2


def test_a_black_holed_first_address_and_no_keepalive(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    async def main(live: Backend) -> list[float]:
        times = []
        async with client(resolver, force_close=True) as (session, _, _):
            for _ in range(6):
                started = time.monotonic()
                assert await fetch(session, live.url(NAME)) == (200, live.host)
                times.append(time.monotonic() - started)
        return times

    hole, live = hole_then_live(resolver, dns)
    with hole, live:
        times = run(lambda: main(live))
        assert live.accepted == 6
    assert max(times) < 0.6, times  # plain aiohttp: its connect timeout, each time
    # The first race costs one Connection Attempt Delay (250 ms); then the
    # hole is remembered and dialled last.
    assert sum(times[1:]) < 0.6, times


def _broken_then_good(dns: DNSServer, resolver: safedns.Resolver) -> tuple[str, Backend]:
    """Two addresses for NAME: a good server on the second the answer lists;
    returns the first (for a broken server, on the same port) and it."""
    dns.add(NAME, "A", "127.0.0.4", ttl=60)
    dns.add(NAME, "A", "127.0.0.5", ttl=60)
    bad_host, good_host = resolver.resolve_addresses(NAME)
    (good,) = same_port([good_host])
    return bad_host, good


def test_closed_without_a_response_get_retried_elsewhere_post_not(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    bad_host, good = _broken_then_good(dns, resolver)
    dns.add("closer.example.com", "A", bad_host, ttl=60)
    bad = RawServer(bad_host, good.port)  # reads the request, closes unanswered

    async def main() -> Any:
        policy = safedns.RetryPolicy(attempts=3, backoff=0)
        async with client(resolver, retry=policy, force_close=True) as (session, _, middleware):
            codes = [(await fetch(session, good.url(NAME)))[0] for _ in range(10)]
            assert codes == [200] * 10
            before = bad.accepted
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await session.post(good.url("closer.example.com"), data=b"x")
            assert bad.accepted == before + 1  # the POST may have been sent: once
            return middleware.stats()

    try:
        stats = run(main)
        assert good.request_count == 10
        assert 1 <= bad.accepted <= 3  # tried, then remembered as broken: dialled last
    finally:
        bad.close()
        good.close()
    assert stats.requests == 11
    assert stats.retries == stats.attempts - stats.requests


def test_503_everywhere_500_gets_within_the_budget_and_10_posts_are_10(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=60)

    async def main(server: Backend) -> tuple[float, Any]:
        policy = safedns.RetryPolicy(attempts=4, backoff=0)
        async with client(resolver, retry=policy) as (session, _, middleware):
            started = time.monotonic()
            gets = [(await fetch(session, server.url(NAME)))[0] for _ in range(500)]
            elapsed = time.monotonic() - started
            assert gets == [503] * 500
            stats = middleware.stats()
            assert server.request_count <= 650 + 10 * elapsed, (server.request_count, elapsed)
            assert server.request_count >= 600  # the budget's floor was used
            assert stats.attempts == server.request_count
            assert stats.retries == stats.attempts - 500
            assert stats.retries_denied > 0
            server.requests.clear()
            for _ in range(10):
                async with session.post(server.url(NAME), data=b"x") as response:
                    assert (response.status, await response.read()) == (503, b"127.0.0.2")
            return elapsed, middleware.stats()

    with backends("127.0.0.2", status=503) as (server,):
        _, stats = run(lambda: main(server))
        assert server.request_count == 10
        assert server.accepted == 1  # retried responses were read: one connection
    assert stats.requests == 510


def test_the_budget_arithmetic_is_exact_on_a_stopped_clock(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=60)
    budget = safedns.RetryBudget(ratio=0.1, min_per_second=10, window=10.0, clock=lambda: 7.0)

    async def main(server: Backend) -> Any:
        policy = safedns.RetryPolicy(attempts=4, backoff=0)
        async with client(resolver, retry=policy, budget=budget) as (session, _, middleware):
            for _ in range(500):
                await fetch(session, server.url(NAME))
            return middleware.stats()

    with backends("127.0.0.2", status=503) as (server,):
        stats = run(lambda: main(server))
        assert server.request_count == 650  # 500 + 10/s * 10 s + 10 % of 500
    assert stats.retries == 150
    assert 0 < stats.retries_denied <= 500


def test_https_by_name_and_a_certificate_for_another_name_is_refused(
    dns: DNSServer, resolver: safedns.Resolver, ca: trustme.CA
) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=60)
    dns.add("wrong.example.com", "A", "127.0.0.3", ttl=60)

    async def main(good: Backend, bad: Backend) -> Any:
        policy = safedns.RetryPolicy(backoff=0)
        async with client(resolver, retry=policy, ssl=client_tls(ca)) as (session, _, middleware):
            assert await fetch(session, good.url(NAME)) == (200, "127.0.0.2")
            with pytest.raises(aiohttp.ClientConnectorCertificateError) as info:
                await session.get(bad.url("wrong.example.com"))
            assert isinstance(info.value.certificate_error, ssl.SSLCertVerificationError)
            return middleware.stats()

    with (
        backends("127.0.0.2", tls=server_tls(ca, NAME)) as (good,),
        backends("127.0.0.3", tls=server_tls(ca, "other.example.com")) as (bad,),
    ):
        stats = run(lambda: main(good, bad))
        assert bad.request_count == 0
    assert stats.attempts == 2  # the refused certificate was not retried


def test_keepalive_and_new_connections_survive_a_dns_outage_without_waiting(
    dns: DNSServer,
) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=1)

    async def main(server: Backend, resolver: safedns.Resolver) -> list[float]:
        times = []
        async with client(resolver) as (session, _, _):
            assert (await fetch(session, server.url(NAME)))[0] == 200
            dns.stop()
            resolver.flush()  # nothing cached, nothing stale: DNS is simply gone
            clock.advance(2)  # the answer's TTL runs out: refreshes are due
            for headers in [{}] * 5 + [{"Connection": "close"}] * 3:
                started = time.monotonic()
                assert (await fetch(session, server.url(NAME), headers=headers))[0] == 200
                times.append(time.monotonic() - started)
        return times

    config = safedns.ResolverConfig(
        nameservers=[dns.nameserver], search=(), ndots=1, timeout=2.0, attempts=1
    )
    clock = FakeClock()
    with safedns.Resolver(config, clock=clock) as resolver, backends("127.0.0.2") as (server,):
        times = run(lambda: main(server, resolver))
        # New connections dial the last addresses the connector had (the first
        # "close" request still goes over the kept-alive connection).
        assert server.accepted == 3
    # A request never waits for DNS (a refresh would take its 2 s timeout).
    assert max(times) < 1.0, times


# ------------------------------------------------------------------ more behaviour


def test_a_retry_after_a_503_goes_to_the_other_address(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    bad_host, good = _broken_then_good(dns, resolver)
    bad = Backend(bad_host, good.port, status=503)

    async def main() -> Any:
        policy = safedns.RetryPolicy(attempts=2, backoff=0)
        async with client(resolver, retry=policy) as (session, _, middleware):
            codes = [(await fetch(session, good.url(NAME)))[0] for _ in range(20)]
            assert codes == [200] * 20
            return middleware.stats()

    try:
        stats = run(main)
        assert bad.request_count >= 1 and good.request_count == 20
    finally:
        bad.close()
        good.close()
    assert stats.retries == bad.request_count


def test_new_connections_spread_over_the_addresses(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=60)
    dns.add(NAME, "A", "127.0.0.3", ttl=60)

    async def main(one: Backend) -> list[str]:
        async with client(resolver, force_close=True) as (session, _, _):
            return [(await fetch(session, one.url(NAME)))[1] for _ in range(20)]

    with backends("127.0.0.2", "127.0.0.3") as (one, two):
        seen = run(lambda: main(one))
        assert sorted(set(seen)) == ["127.0.0.2", "127.0.0.3"]
        assert abs(one.accepted - two.accepted) <= 2, (one.accepted, two.accepted)


def test_max_connection_age(dns: DNSServer, resolver: safedns.Resolver) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=60)

    async def main(server: Backend) -> Any:
        async with client(resolver, max_connection_age=0) as (session, conn, _):
            for _ in range(3):
                assert (await fetch(session, server.url(NAME)))[0] == 200
            return conn.stats()

    with backends("127.0.0.2") as (server,):
        stats = run(lambda: main(server))
        assert server.accepted == 3
    assert stats.connections_retired_age == 2  # checked at checkout: the third is never reused
    assert stats.connections_opened == 3


def failed(resolver: Any, method: str, url: str, expected: type[BaseException]) -> Any:
    """Send one request that must raise ``expected`` (retries allowed);
    returns the exception and the middleware's stats."""

    async def main() -> Any:
        policy = safedns.RetryPolicy(backoff=0)
        async with client(resolver, retry=policy) as (session, _, middleware):
            with pytest.raises(expected) as info:
                await session.request(method, url, data=b"x" if method == "POST" else None)
            return info.value, middleware.stats()

    return run(main)


def test_unknown_name_is_a_dns_error_and_not_retried(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    error, stats = failed(
        resolver, "GET", "http://missing.example.com/", aiohttp.ClientConnectorDNSError
    )
    assert isinstance(error.os_error, socket.gaierror)
    assert error.os_error.errno == socket.EAI_NONAME
    assert (stats.requests, stats.attempts) == (1, 1)


def test_post_is_retried_when_nothing_could_be_sent(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    dns.add(NAME, "A", "127.0.0.4", ttl=60)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.4", 0))
        port = sock.getsockname()[1]
    _, stats = failed(resolver, "POST", f"http://{NAME}:{port}/", aiohttp.ClientConnectorError)
    assert (stats.attempts, stats.retries) == (3, 2)


def test_a_body_that_cannot_be_replayed_is_not_retried(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=60)

    async def body() -> AsyncIterator[bytes]:
        yield b"a"
        yield b"b"

    async def main(server: Backend) -> None:
        policy = safedns.RetryPolicy(backoff=0)
        async with client(resolver, retry=policy) as (session, _, _):
            async with session.put(server.url(NAME), data=body()) as streamed:
                assert streamed.status == 503
            assert [(m, b) for m, _, b in server.requests] == [("PUT", b"ab")]
            async with session.put(server.url(NAME), data=b"ab") as replayed:
                assert replayed.status == 503
            assert server.request_count == 1 + 3

    with backends("127.0.0.2", status=503) as (server,):
        run(lambda: main(server))


def test_retry_after_is_honoured(dns: DNSServer, resolver: safedns.Resolver) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=60)

    async def main(server: Backend) -> float:
        policy = safedns.RetryPolicy(attempts=2, backoff=0, backoff_max=0.2)
        async with client(resolver, retry=policy) as (session, _, _):
            started = time.monotonic()
            assert (await fetch(session, server.url(NAME)))[0] == 503
            return time.monotonic() - started

    with backends("127.0.0.2", status=503, headers=[("Retry-After", "1")]) as (server,):
        took = run(lambda: main(server))
        assert server.request_count == 2
    assert 0.2 <= took < 1.0  # Retry-After, capped by backoff_max


def test_literal_ip_never_asks_dns(dns: DNSServer, resolver: safedns.Resolver) -> None:
    async def main(server: Backend) -> Any:
        async with client(resolver) as (session, conn, _):
            assert await fetch(session, server.url()) == (200, "127.0.0.2")
            assert await fetch(session, server.url()) == (200, "127.0.0.2")
            return conn.stats()

    with backends("127.0.0.2") as (server,):
        stats = run(lambda: main(server))
    assert dns.queries == []
    assert stats.connections_opened == 1


def test_an_async_resolver_given_stays_open_one_made_is_closed(dns: DNSServer) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=60)
    config = safedns.ResolverConfig(nameservers=[dns.nameserver], search=(), ndots=1)

    async def main(server: Backend) -> None:
        async with safedns.AsyncResolver(config) as shared:
            for _ in range(2):
                async with client(shared) as (session, conn, _):
                    assert await fetch(session, server.url(NAME)) == (200, "127.0.0.2")
                assert conn.async_resolver is shared
            assert await shared.resolve_addresses(NAME) == ["127.0.0.2"]  # still open

    with backends("127.0.0.2") as (server,):
        run(lambda: main(server))
    assert len(dns.queries) <= 2  # the two connectors shared its cache


def test_the_proxy_hostname_resolves_through_safedns_the_target_does_not(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    dns.add("proxy.example.com", "A", "127.0.0.6", ttl=60)

    async def main(proxy: Backend) -> tuple[int, str]:
        async with client(resolver) as (session, _, _):
            return await fetch(
                session, "http://target.example.com/x", proxy=proxy.url("proxy.example.com")
            )

    proxy = ProxyBackend("127.0.0.6")
    try:
        assert run(lambda: main(proxy)) == (200, "proxied GET http://target.example.com/x")
    finally:
        proxy.close()
    assert {name for name, _ in dns.queries} == {"proxy.example.com."}
