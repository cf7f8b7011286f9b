"""The httpx transports under hostile servers, dead backends and DNS outages
(issue 15): every response they do not return is closed, DNS stays off the
request path, retries go elsewhere, a black-holed address costs one
Connection Attempt Delay (RFC 8305), new connections spread, and the address
book never outlives ``stale_ttl``.

Real servers on loopback addresses, the embedded ``DNSServer``, real httpx
clients. Latency is asserted where the behaviour is about time; margins are
wide because the machine may be loaded, yet far below what the old
behaviour cost (a resolver timeout, a 5 s connect timeout).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import safedns
from safedns._http.dial import Attempts, Connect, GiveUp, Wait, connect_order
from safedns._http.retry import parse_retry_after
from safedns.httpx import AsyncSafeTransport, SafeTransport
from safedns.testing import DNSServer

from .adapterkit import dns, hole_then_live, timed_gets
from .conftest import FakeClock
from .httpservers import Backend, BlackHole, RawServer, backends, same_port

NAME = "svc.example.com"
__all__ = ["dns"]  # fixtures
NO_KEEPALIVE = httpx.Limits(max_keepalive_connections=0)
FIXTURE_REUSE = HealthCheck.function_scoped_fixture  # one DNS server serves every example


def make_resolver(
    dns: DNSServer, clock: FakeClock | None = None, **config: Any
) -> safedns.Resolver:
    options: dict[str, Any] = {"timeout": 0.5, "attempts": 1, **config}
    cfg = safedns.ResolverConfig(nameservers=[dns.nameserver], search=(), ndots=1, **options)
    return safedns.Resolver(cfg) if clock is None else safedns.Resolver(cfg, clock=clock)


def timed(fn: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = fn()
    return result, time.monotonic() - started


# ------------------------------------------------------------------ pure parts


@pytest.mark.parametrize(
    "value",
    ["²", "١٢", "1.5", "-3", "+3", "0x10", "", "   ", "3 s", "Mon, 99 Foo 2024", "\x00", "∞"],
)
def test_retry_after_is_ascii_digits_or_an_http_date_or_nothing(value: str) -> None:
    assert parse_retry_after(value, now_wall=1e9) is None


def test_retry_after_reads_digits_and_dates() -> None:
    assert parse_retry_after("3", 0.0) == 3.0
    assert parse_retry_after(" 7 ", 0.0) == 7.0
    assert parse_retry_after("9" * 400, 0.0) == 1e11  # huge is just "long", not inf
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", 4.0) == 6.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", 40.0) == 0.0


@given(st.text())
def test_retry_after_never_raises(value: str) -> None:
    result = parse_retry_after(value, now_wall=1.7e9)
    assert result is None or result >= 0


def test_attempts_follow_rfc_8305() -> None:
    plan = Attempts(["a", "b", "c"], delay=0.25, now=0.0, deadline=5.0)
    assert plan.next(0.0) == Connect("a")
    assert plan.next(0.0) == Wait(0.25)  # a is pending: b waits the delay
    assert plan.next(0.25) == Connect("b")
    plan.failed("b", 0.3)  # a failure starts the next at once
    assert plan.next(0.3) == Connect("c")
    assert plan.next(0.3) == Wait(5.0)  # nothing left to start: wait to the deadline
    assert plan.connected("c") == ["a"]
    assert plan.slow() == ["a"]  # a had a head start and lost
    timed_out = Attempts(["a"], delay=0.25, now=0.0, deadline=1.0)
    assert timed_out.next(0.0) == Connect("a")
    assert timed_out.next(1.0) == GiveUp(timed_out=True)
    failed = Attempts(["a"], now=0.0)
    failed.next(0.0)
    failed.failed("a", 0.1)
    assert failed.next(0.1) == GiveUp(timed_out=False)


def test_connect_order_spreads_and_puts_failing_last() -> None:
    addresses = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    firsts = [connect_order(addresses, start=i)[0] for i in range(6)]
    assert firsts == addresses * 2
    assert connect_order(addresses, start=0, last={"10.0.0.1"}) == [
        "10.0.0.2",
        "10.0.0.3",
        "10.0.0.1",
    ]
    # Every address failing: all are still tried, none dropped.
    assert sorted(connect_order(addresses, last=set(addresses))) == addresses


@pytest.mark.parametrize("delay", [0, 0.001, 2.5, -1, float("nan")])
def test_happy_eyeballs_delay_is_bounded_by_rfc_8305(delay: float, dns: DNSServer) -> None:
    with make_resolver(dns) as resolver, pytest.raises(ValueError, match="RFC 8305"):
        SafeTransport(resolver=resolver, happy_eyeballs_delay=delay)


# ------------------------------------------------ what a server sends (point 1)


def _retry_after_503(server: Backend, value: str) -> None:
    server.status = 503
    server.headers = [("Retry-After", value)]


@pytest.mark.parametrize("retry", [None, safedns.RetryPolicy(attempts=3, backoff=0)])
def test_a_503_with_a_bad_retry_after_comes_back_and_the_pool_stays_whole(
    dns: DNSServer, retry: safedns.RetryPolicy | None
) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=60)
    with make_resolver(dns) as resolver, backends("127.0.0.2") as (server,):
        _retry_after_503(server, "²")
        transport = SafeTransport(
            resolver=resolver, retry=retry, limits=httpx.Limits(max_connections=1)
        )
        with httpx.Client(transport=transport, timeout=3) as client:
            for method in ("GET", "POST", "GET"):
                assert client.request(method, server.url(NAME), content=b"x").status_code == 503
            server.status = 200
            assert client.get(server.url(NAME)).status_code == 200  # no PoolTimeout


@pytest.mark.parametrize("retry", [None, safedns.RetryPolicy(attempts=3, backoff=0)])
def test_a_503_with_a_bad_retry_after_through_the_async_transport(
    dns: DNSServer, retry: safedns.RetryPolicy | None
) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=60)

    async def main(server: Backend) -> list[int]:
        async with safedns.AsyncResolver(make_resolver(dns).config) as resolver:
            transport = AsyncSafeTransport(
                resolver=resolver, retry=retry, limits=httpx.Limits(max_connections=1)
            )
            async with httpx.AsyncClient(transport=transport, timeout=3) as client:
                codes = [
                    (await client.request(m, server.url(NAME), content=b"x")).status_code
                    for m in ("GET", "POST", "GET")
                ]
                server.status = 200
                codes.append((await client.get(server.url(NAME))).status_code)
                return codes

    with backends("127.0.0.2") as (server,):
        _retry_after_503(server, "²")
        assert asyncio.run(main(server)) == [503, 503, 503, 200]


_HEADER_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=40,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=_HEADER_TEXT, status=st.sampled_from([200, 429, 502, 503, 504]))
def test_any_retry_after_value_sync(dns: DNSServer, value: str, status: int) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=60)
    with make_resolver(dns) as resolver, backends("127.0.0.2") as (server,):
        server.status = status
        server.headers = [("Retry-After", value)]
        transport = SafeTransport(
            resolver=resolver,
            retry=safedns.RetryPolicy(attempts=2, backoff=0, backoff_max=0.05),
            limits=httpx.Limits(max_connections=1),
        )
        with httpx.Client(transport=transport, timeout=3) as client:
            assert client.get(server.url(NAME)).status_code == status
            assert client.post(server.url(NAME), content=b"x").status_code == status


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=_HEADER_TEXT, status=st.sampled_from([200, 502, 503]))
def test_any_retry_after_value_async(dns: DNSServer, value: str, status: int) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=60)

    async def main(server: Backend) -> tuple[int, int]:
        async with safedns.AsyncResolver(make_resolver(dns).config) as resolver:
            transport = AsyncSafeTransport(
                resolver=resolver,
                retry=safedns.RetryPolicy(attempts=2, backoff=0, backoff_max=0.05),
                limits=httpx.Limits(max_connections=1),
            )
            async with httpx.AsyncClient(transport=transport, timeout=3) as client:
                get = (await client.get(server.url(NAME))).status_code
                post = (await client.post(server.url(NAME), content=b"x")).status_code
                return get, post

    with backends("127.0.0.2") as (server,):
        server.status = status
        server.headers = [("Retry-After", value)]
        assert asyncio.run(main(server)) == (status, status)


@pytest.mark.parametrize(
    "reply, reset",
    [
        (b"", False),  # closes without a response
        (b"", True),  # resets before a response
        (b"HTTP/1.1 200 OK\r\nContent-Length: banana\r\n\r\n", False),
        (b"\x16\x03\x01 garbage \xff\xfe\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 200_000 + b"\r\n\r\n", False),
    ],
)
def test_broken_servers_give_httpx_errors_and_leak_nothing(
    dns: DNSServer, reply: bytes, reset: bool
) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=60)
    with make_resolver(dns) as resolver, RawServer("127.0.0.2", reply=reply, reset=reset) as bad:
        transport = SafeTransport(
            resolver=resolver,
            retry=safedns.RetryPolicy(attempts=2, backoff=0),
            limits=httpx.Limits(max_connections=1),
        )
        with httpx.Client(transport=transport, timeout=2) as client:
            for _ in range(3):  # the pool's one connection is given back every time
                with pytest.raises(httpx.HTTPError):
                    client.get(bad.url(NAME))
        assert bad.accepted >= 3


# ------------------------------------------------ DNS off the request path (2, 6)


def _outage_resolver(dns: DNSServer, clock: FakeClock) -> safedns.Resolver:
    return make_resolver(dns, clock, stale_ttl=0, timeout=0.5, attempts=2)


def test_kept_alive_requests_never_wait_for_a_dead_dns(dns: DNSServer) -> None:
    clock = FakeClock()
    dns.add(NAME, "A", "127.0.0.2", ttl=1)
    with _outage_resolver(dns, clock) as resolver, backends("127.0.0.2") as (server,):
        transport = SafeTransport(resolver=resolver)
        with httpx.Client(transport=transport) as client:
            assert client.get(server.url(NAME)).status_code == 200
            dns.stop()
            clock.advance(2)  # the 1 s answer expired; no stale serving
            for _ in range(3):
                response, took = timed(lambda: client.get(server.url(NAME)))
                assert response.status_code == 200
                assert took < 0.15, took  # was 1.0 s each: two 0.5 s tries
        assert server.accepted == 1


def test_kept_alive_requests_never_wait_for_a_dead_dns_async(dns: DNSServer) -> None:
    clock = FakeClock()
    dns.add(NAME, "A", "127.0.0.2", ttl=1)

    async def main(server: Backend) -> list[float]:
        async with safedns.AsyncResolver(resolver=_outage_resolver(dns, clock)) as resolver:
            transport = AsyncSafeTransport(resolver=resolver)
            async with httpx.AsyncClient(transport=transport) as client:
                assert (await client.get(server.url(NAME))).status_code == 200
                dns.stop()
                clock.advance(2)
                times = []
                for _ in range(3):
                    started = time.monotonic()
                    assert (await client.get(server.url(NAME))).status_code == 200
                    times.append(time.monotonic() - started)
                return times

    with backends("127.0.0.2") as (server,):
        times = asyncio.run(main(server))
        assert max(times) < 0.15, times
        assert server.accepted == 1


def test_keepalive_survives_a_dns_outage_without_waiting(dns: DNSServer) -> None:
    clock = FakeClock()
    dns.add(NAME, "A", "127.0.0.2", ttl=1)
    with make_resolver(dns, clock) as resolver, backends("127.0.0.2") as (server,):
        transport = SafeTransport(resolver=resolver)
        with httpx.Client(transport=transport) as client:
            assert client.get(server.url(NAME)).status_code == 200
            dns.stop()
            resolver.flush()  # nothing cached in the resolver: DNS is simply gone
            clock.advance(2)
            # Serve-stale is on (stale_ttl defaults to a day): new connections
            # dial the last answer at once (stale-while-revalidate).
            close = {"Connection": "close"}
            for headers in ({}, close, close, close):
                response, took = timed(lambda h=headers: client.get(server.url(NAME), headers=h))
                assert response.status_code == 200
                assert took < 0.15, took
        assert server.accepted == 3


def test_an_expired_name_past_stale_ttl_fails_fast_and_asks_dns_once(dns: DNSServer) -> None:
    clock = FakeClock()
    dns.add(NAME, "A", "127.0.0.2", ttl=1)
    resolver = make_resolver(dns, clock, stale_ttl=0, timeout=0.3, attempts=1)
    with resolver, backends("127.0.0.2") as (server,):
        transport = SafeTransport(
            resolver=resolver, retry=safedns.RetryPolicy(attempts=3), limits=NO_KEEPALIVE
        )
        with httpx.Client(transport=transport) as client:
            assert client.get(server.url(NAME)).status_code == 200
            dns.stop()
            clock.advance(2)
            before = dns.query_count
            started = time.monotonic()
            with pytest.raises(httpx.ConnectError):
                client.get(server.url(NAME))
            assert time.monotonic() - started < 0.6
            assert dns.query_count - before <= 2  # A and AAAA, once
        assert server.accepted == 1  # the expired address was never dialled


def test_a_new_connection_within_stale_ttl_dials_at_once_and_refreshes(dns: DNSServer) -> None:
    clock = FakeClock()
    dns.add(NAME, "A", "127.0.0.2", ttl=1)
    with (
        make_resolver(dns, clock) as resolver,
        backends("127.0.0.2", "127.0.0.3") as (
            old,
            _new,
        ),
    ):
        transport = SafeTransport(resolver=resolver, limits=NO_KEEPALIVE)
        with httpx.Client(transport=transport) as client:
            assert client.get(old.url(NAME)).text == "127.0.0.2"
            dns.remove(NAME)
            dns.add(NAME, "A", "127.0.0.3", ttl=60)
            clock.advance(2)
            response, took = timed(lambda: client.get(old.url(NAME)))
            assert response.text == "127.0.0.2"  # the last answer, at once
            assert took < 0.15
            # The refresh ran in the background; the next connections follow it.
            deadline = time.monotonic() + 3
            while client.get(old.url(NAME)).text != "127.0.0.3":
                assert time.monotonic() < deadline


# ------------------------------------------------ retries elsewhere (3)


@pytest.mark.parametrize("broken", ["close", "503"])
def test_retries_go_to_the_other_address(dns: DNSServer, broken: str) -> None:
    dns.add(NAME, "A", "127.0.0.4", ttl=60)
    dns.add(NAME, "A", "127.0.0.5", ttl=60)
    with make_resolver(dns) as resolver:
        bad_host, good_host = resolver.resolve_addresses(NAME)
        (good,) = same_port([good_host])
        if broken == "close":
            bad: Any = RawServer(bad_host, good.port)
        else:
            bad = Backend(bad_host, good.port, status=503)
        try:
            transport = SafeTransport(
                resolver=resolver,
                retry=safedns.RetryPolicy(attempts=3, backoff=0),
                limits=NO_KEEPALIVE,
            )
            with httpx.Client(transport=transport) as client:
                codes = [client.get(good.url(NAME)).status_code for _ in range(10)]
            assert codes == [200] * 10
            assert bad.accepted >= 1  # the broken address was tried
            assert good.request_count == 10
        finally:
            bad.close()
            good.close()


# ------------------------------------------------ black holes (4)


def test_a_black_holed_first_address_costs_one_attempt_delay(dns: DNSServer) -> None:
    with make_resolver(dns) as resolver:
        hole, live = hole_then_live(resolver, dns)
        with hole, live:
            transport = SafeTransport(resolver=resolver, limits=NO_KEEPALIVE)
            with httpx.Client(transport=transport, timeout=5) as client:
                times = []
                for _ in range(4):
                    response, took = timed(lambda: client.get(live.url(NAME)))
                    assert response.status_code == 200
                    times.append(took)
        assert max(times) < 0.6, times  # was 5.0 s each
        assert sum(times) < 1.2, times
        assert transport.stats().connections_opened == 4


def test_a_black_holed_first_address_async(dns: DNSServer) -> None:
    async def main(live: Backend, resolver: safedns.Resolver) -> list[float]:
        async with safedns.AsyncResolver(resolver=resolver) as aresolver:
            transport = AsyncSafeTransport(resolver=aresolver, limits=NO_KEEPALIVE)
            async with httpx.AsyncClient(transport=transport, timeout=5) as client:
                return await timed_gets(client, live.url(NAME))

    with make_resolver(dns) as resolver:
        hole, live = hole_then_live(resolver, dns)
        with hole, live:
            times = asyncio.run(main(live, resolver))
    assert max(times) < 0.6, times
    assert sum(times) < 1.2, times


def test_every_address_black_holed_fails_within_the_connect_timeout(dns: DNSServer) -> None:
    dns.add(NAME, "A", "127.0.0.6", ttl=60)
    dns.add(NAME, "A", "127.0.0.7", ttl=60)
    with make_resolver(dns) as resolver, BlackHole("127.0.0.6") as one:
        two = BlackHole("127.0.0.7", one.port)
        transport = SafeTransport(resolver=resolver)
        with two, httpx.Client(transport=transport, timeout=httpx.Timeout(5, connect=0.5)) as c:
            started = time.monotonic()
            with pytest.raises(httpx.ConnectTimeout):
                c.get(f"http://{NAME}:{one.port}/")
            assert 0.45 < time.monotonic() - started < 1.0


# ------------------------------------------------ spreading (5)


def test_new_connections_spread_over_the_addresses(dns: DNSServer) -> None:
    hosts = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
    for host in hosts:
        dns.add(NAME, "A", host, ttl=60)
    with make_resolver(dns) as resolver, backends(*hosts) as servers:
        transport = SafeTransport(resolver=resolver, limits=NO_KEEPALIVE)
        with httpx.Client(transport=transport) as client:
            for _ in range(30):
                assert client.get(servers[0].url(NAME)).status_code == 200
        counts = [s.accepted for s in servers]
        assert min(counts) >= 5, counts
        assert sum(counts) == 30
