"""``stats()``: upstream queries by type and result, latency, server health,
evictions and refreshes, against the embedded DNS server; and the pure
``UpstreamMetrics`` / ``LatencyHistogram`` on their own."""

from __future__ import annotations

import asyncio
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator

import dns.flags
import dns.message
import dns.rcode
import pytest

from safedns import (
    AsyncResolver,
    Histogram,
    NameNotFound,
    Resolver,
    ResolverConfig,
    ServerHealth,
    Stats,
    TemporaryFailure,
)
from safedns._metrics import (
    DEFAULT_BUCKETS,
    MALFORMED,
    NETWORK_ERROR,
    TIMEOUT,
    TRUNCATED,
    LatencyHistogram,
    UpstreamMetrics,
)
from safedns._records import UpstreamFailure
from safedns._upstream import Exchange
from safedns.testing import DNSServer

from .conftest import FakeClock, k8s_config

ANSWERS = ("NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", TRUNCATED)


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def fqdn_config(*servers: object, **overrides: object) -> ResolverConfig:
    """One question per lookup: no search list, a short timeout, one attempt."""
    settings: dict[str, object] = {
        "nameservers": list(servers),
        "search": (),
        "ndots": 1,
        "timeout": 0.3,
        "attempts": 1,
    }
    settings.update(overrides)
    return ResolverConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture
def lab() -> Iterator[DNSServer]:
    with DNSServer() as srv:
        srv.add("ok.example.com", "A", "192.0.2.1", ttl=60)
        srv.add("ok.example.com", "AAAA", "2001:db8::1", ttl=60)
        srv.add("other.example.com", "A", "192.0.2.2", ttl=60)
        srv.add("third.example.com", "A", "192.0.2.3", ttl=60)
        yield srv


def answered(stats: Stats) -> int:
    return sum(stats.upstream_queries_by_result.get(result, 0) for result in ANSWERS)


def closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- by type and by result ----------------------------------------------------


def test_results_and_types_are_counted(lab: DNSServer) -> None:
    lab.drop_types = {"MX"}
    with Resolver(fqdn_config(lab.nameserver)) as resolver:
        before = resolver.stats()
        assert before.upstream_queries_by_result["NXDOMAIN"] == 0  # a series from the start
        resolver.resolve("ok.example.com")
        resolver.resolve("ok.example.com", "AAAA")
        with pytest.raises(NameNotFound):
            resolver.resolve("missing.example.com")
        with pytest.raises(TemporaryFailure):
            resolver.resolve("ok.example.com", "MX")  # dropped: times out
        lab.servfail = True
        with pytest.raises(TemporaryFailure):
            resolver.resolve("other.example.com", "TXT")
        lab.servfail = False
        lab.refused = True
        with pytest.raises(TemporaryFailure):
            resolver.resolve("third.example.com", "AAAA")
        stats = resolver.stats()
    results = stats.upstream_queries_by_result
    assert results["NOERROR"] == 2
    assert results["NXDOMAIN"] == 1
    assert results[TIMEOUT] == 1
    assert results["SERVFAIL"] == 1
    assert results["REFUSED"] == 1
    assert results[NETWORK_ERROR] == 0
    assert stats.upstream_queries_by_type == {"A": 2, "AAAA": 2, "MX": 1, "TXT": 1}
    assert stats.upstream_queries == 6 == sum(results.values())
    assert stats.upstream_errors == 3  # the timeout, SERVFAIL and REFUSED


def test_truncated_reply_and_its_tcp_retry_are_two_queries(lab: DNSServer) -> None:
    lab.truncate_types = {"A"}
    with Resolver(fqdn_config(lab.nameserver)) as resolver:
        assert resolver.resolve("ok.example.com").addresses == ["192.0.2.1"]
        stats = resolver.stats()
    assert stats.upstream_queries == 2
    assert stats.upstream_queries_by_type["A"] == 2
    assert stats.upstream_queries_by_result[TRUNCATED] == 1
    assert stats.upstream_queries_by_result["NOERROR"] == 1
    assert stats.upstream_latency_seconds.count == 2


def test_refused_port_is_a_network_error() -> None:
    port = closed_udp_port()
    with Resolver(fqdn_config(f"127.0.0.1:{port}")) as resolver:
        with pytest.raises(TemporaryFailure):
            resolver.resolve("ok.example.com")
        stats = resolver.stats()
    assert stats.upstream_queries_by_result[NETWORK_ERROR] == 1
    assert stats.upstream_queries_by_result[TIMEOUT] == 0
    health = stats.server_health[f"127.0.0.1:{port}"]
    assert (health.queries, health.errors, health.responses) == (1, 1, 0)


def test_async_resolver_counts_the_same(lab: DNSServer) -> None:
    lab.drop_types = {"MX"}

    async def main() -> Stats:
        async with AsyncResolver(fqdn_config(lab.nameserver)) as resolver:
            await resolver.resolve("ok.example.com")
            with pytest.raises(NameNotFound):
                await resolver.resolve("missing.example.com", "AAAA")
            with pytest.raises(TemporaryFailure):
                await resolver.resolve("ok.example.com", "MX")
            lab.servfail = True
            with pytest.raises(TemporaryFailure):
                await resolver.resolve("other.example.com")
            return resolver.stats()

    stats = asyncio.run(main())
    results = stats.upstream_queries_by_result
    assert (results["NOERROR"], results["NXDOMAIN"], results[TIMEOUT], results["SERVFAIL"]) == (
        1,
        1,
        1,
        1,
    )
    assert stats.upstream_queries_by_type == {"A": 2, "AAAA": 1, "MX": 1}
    assert stats.upstream_latency_seconds.count == 3
    assert stats.server_health[lab.nameserver].timeouts == 1


def test_async_resolver_on_a_shared_core_reports_into_the_same_stats(lab: DNSServer) -> None:
    with Resolver(fqdn_config(lab.nameserver)) as resolver:
        resolver.resolve("ok.example.com")

        async def main() -> None:
            async with AsyncResolver(resolver=resolver) as shared:
                await shared.resolve("other.example.com")

        asyncio.run(main())
        stats = resolver.stats()
    assert stats.upstream_queries_by_result["NOERROR"] == 2
    assert stats.server_health[lab.nameserver].responses == 2


# -- latency ------------------------------------------------------------------


# -- the getaddrinfo drop-in -------------------------------------------------


def test_drop_in_hits_are_lookups_and_cache_hits(lab: DNSServer) -> None:
    """20 patched ``socket.getaddrinfo`` calls are 20 lookups: the first asks the
    resolver, the 19 answered from the drop-in's finished results are cache hits."""
    import safedns

    resolver = Resolver(fqdn_config(lab.nameserver))
    with safedns.patched(resolver):
        rows = [socket.getaddrinfo("ok.example.com", 80) for _ in range(20)]
    assert all(r == rows[0] for r in rows)
    stats = resolver.stats()
    assert stats.lookups == 20
    assert stats.cache_hits >= 19
    assert stats.upstream_queries == 2  # A and AAAA, once


def test_async_drop_in_hits_and_joined_calls_are_counted(lab: DNSServer) -> None:
    """``async_getaddrinfo``: each call is a lookup; repeated calls are cache hits;
    in a burst on a cold name, every call but the one computing is coalesced."""
    import safedns

    async def main() -> tuple[Stats, Stats]:
        async with AsyncResolver(fqdn_config(lab.nameserver)) as resolver:
            for _ in range(20):
                await safedns.async_getaddrinfo("ok.example.com", 80, resolver=resolver)
            sequential = resolver.stats()
        async with AsyncResolver(fqdn_config(lab.nameserver, timeout=5.0)) as resolver:
            calls = (
                safedns.async_getaddrinfo("ok.example.com", 80, resolver=resolver)
                for _ in range(100)
            )
            await asyncio.gather(*calls)
            return sequential, resolver.stats()

    lab.delay = 0.1
    sequential, burst = asyncio.run(main())
    assert (sequential.lookups, sequential.cache_hits) == (20, 19)
    assert (burst.lookups, burst.coalesced, burst.upstream_queries) == (100, 99, 2)


def test_histogram_counts_every_reply(lab: DNSServer) -> None:
    lab.drop_types = {"MX"}
    with Resolver(fqdn_config(lab.nameserver)) as resolver:
        resolver.resolve("ok.example.com")
        resolver.resolve("ok.example.com", "AAAA")
        with pytest.raises(NameNotFound):
            resolver.resolve("missing.example.com")
        with pytest.raises(TemporaryFailure):
            resolver.resolve("ok.example.com", "MX")  # no reply: no latency
        for _ in range(20):
            resolver.resolve("ok.example.com")  # hits: no latency either
        stats = resolver.stats()
    histogram = stats.upstream_latency_seconds
    assert histogram.count == answered(stats) == 3
    assert histogram.count == stats.server_health[lab.nameserver].responses
    assert list(histogram.counts) == sorted(histogram.counts)  # cumulative
    assert histogram.counts[-1] <= histogram.count
    assert 0 < histogram.sum < histogram.count * 0.3  # each within the timeout


def test_latency_is_measured_from_send_to_reply(lab: DNSServer) -> None:
    lab.delay = 0.06
    with Resolver(fqdn_config(lab.nameserver, timeout=2.0)) as resolver:
        resolver.resolve("ok.example.com")
        stats = resolver.stats()
    histogram = stats.upstream_latency_seconds
    below = histogram.buckets.index(0.05)
    assert histogram.count == 1
    assert histogram.counts[below] == 0  # took longer than 50 ms: the server's delay
    assert histogram.sum >= 0.06
    rtt = stats.server_health[lab.nameserver].last_rtt_seconds
    assert rtt is not None and rtt >= 0.06


# -- server health ------------------------------------------------------------


def test_dead_server_is_backed_off(lab: DNSServer, clock: FakeClock) -> None:
    with DNSServer() as dead:
        dead.stop()
        config = fqdn_config(dead.nameserver, lab.nameserver, server_backoff=30)
        with Resolver(config, clock=clock) as resolver:
            before = resolver.stats().server_health
            assert set(before) == {dead.nameserver, lab.nameserver}  # listed before any query
            assert before[dead.nameserver] == ServerHealth()
            resolver.resolve("ok.example.com")
            clock.advance(1)
            health = resolver.stats().server_health
            sick, well = health[dead.nameserver], health[lab.nameserver]
            assert sick.backed_off and not well.backed_off
            assert (sick.queries, sick.timeouts, sick.responses) == (1, 1, 0)
            assert sick.last_rtt_seconds is None and sick.last_response_age_seconds is None
            assert (well.queries, well.responses, well.timeouts) == (1, 1, 0)
            assert well.last_rtt_seconds is not None and well.last_rtt_seconds > 0
            assert well.last_response_age_seconds == 1  # on the resolver's clock

            resolver.resolve("other.example.com")  # the sick server is skipped
            assert resolver.stats().server_health[dead.nameserver].queries == 1
            clock.advance(30)  # the backoff is over
            assert not resolver.stats().server_health[dead.nameserver].backed_off
            dead.start()
            dead.add("third.example.com", "A", "192.0.2.3")
            resolver.resolve("third.example.com")  # first in line again, and it answers
            health = resolver.stats().server_health
            assert not health[dead.nameserver].backed_off
            assert (health[dead.nameserver].queries, health[dead.nameserver].responses) == (2, 1)
            assert health[lab.nameserver].responses == 2


def test_server_answering_again_is_not_backed_off(clock: FakeClock) -> None:
    with DNSServer() as only:
        only.add("ok.example.com", "A", "192.0.2.1")
        only.stop()
        with Resolver(fqdn_config(only.nameserver), clock=clock) as resolver:
            with pytest.raises(TemporaryFailure):
                resolver.resolve("ok.example.com")
            assert resolver.stats().server_health[only.nameserver].backed_off
            only.start()  # still asked while backed off: it is the only server
            assert resolver.resolve("ok.example.com").addresses == ["192.0.2.1"]
            health = resolver.stats().server_health[only.nameserver]
    assert not health.backed_off
    assert (health.queries, health.timeouts, health.responses) == (2, 1, 1)


# -- evictions and refreshes ---------------------------------------------------


def test_evictions_are_counted(lab: DNSServer) -> None:
    for i in range(5):
        lab.add(f"n{i}.example.com", "A", f"192.0.2.{100 + i}")
    config = fqdn_config(lab.nameserver, max_entries=3, max_negative_entries=2)
    with Resolver(config) as resolver:
        for i in range(5):
            resolver.resolve(f"n{i}.example.com")
        stats = resolver.stats()
        assert (stats.entries, stats.evictions, stats.negative_evictions) == (3, 2, 0)
        for i in range(4):
            with pytest.raises(NameNotFound):
                resolver.resolve(f"gone{i}.example.com")
        stats = resolver.stats()
        assert (stats.negative_entries, stats.negative_evictions, stats.evictions) == (2, 2, 2)
        resolver.flush()  # forgetting is not evicting
        resolver.resolve("n0.example.com")  # replacing neither
        stats = resolver.stats()
    assert (stats.entries, stats.evictions, stats.negative_evictions) == (1, 2, 2)


def test_refreshes_count_prefetches_and_stale_refreshes(
    server: DNSServer, clock: FakeClock
) -> None:
    config = k8s_config(server, timeout=0.2, stale_response_timeout=0.1)
    with Resolver(config, clock=clock) as resolver:
        resolver.resolve("api.example.com")
        clock.advance(55)  # under 10 % of the 60 s TTL left: refresh-ahead
        assert resolver.resolve("api.example.com").from_cache
        assert wait_for(lambda: len(server.queries) == 2)
        stats = resolver.stats()
        assert (stats.prefetches, stats.refreshes) == (1, 1)
        assert wait_for(lambda: resolver.stats().upstream_queries_by_result["NOERROR"] == 2)

        server.stop()
        clock.advance(61)  # expired: served stale while a refresh runs behind
        assert resolver.resolve("api.example.com").stale
        stats = resolver.stats()
        assert (stats.prefetches, stats.refreshes) == (1, 2)
    assert resolver.stats().upstream_queries_by_result[TIMEOUT] == 1


def test_hits_leave_the_upstream_metrics_alone(lab: DNSServer, clock: FakeClock) -> None:
    with Resolver(fqdn_config(lab.nameserver), clock=clock) as resolver:
        resolver.resolve("ok.example.com")
        resolver.resolve_addresses("ok.example.com")
        before = resolver.stats()
        for _ in range(100):
            resolver.resolve("ok.example.com")
            resolver.resolve_addresses("ok.example.com")
        after = resolver.stats()
    assert after.cache_hits >= before.cache_hits + 200
    assert after.upstream_queries_by_type == before.upstream_queries_by_type
    assert after.upstream_queries_by_result == before.upstream_queries_by_result
    assert after.upstream_latency_seconds == before.upstream_latency_seconds
    assert after.server_health == before.server_health


# -- the pure parts -------------------------------------------------------------


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    histogram = LatencyHistogram((0.01, 0.1, 1.0))
    for seconds in (0.005, 0.01, 0.05, 0.1, 0.5, 3.0, -1.0):
        histogram.observe(seconds)
    snap = histogram.snapshot()
    assert snap == Histogram((0.01, 0.1, 1.0), (3, 5, 6), 7, pytest.approx(3.665))
    assert snap.cumulative() == [(0.01, 3), (0.1, 5), (1.0, 6), (math.inf, 7)]
    assert Histogram().buckets == DEFAULT_BUCKETS and Histogram().count == 0


@pytest.mark.parametrize("buckets", [(), (0.1, 0.1), (0.5, 0.1), (0.0, 1.0), (1.0, math.inf)])
def test_histogram_refuses_bad_buckets(buckets: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="buckets"):
        LatencyHistogram(buckets)


def test_histogram_is_thread_safe() -> None:
    histogram = LatencyHistogram()

    def work() -> None:
        for _ in range(5000):
            histogram.observe(0.002)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    snap = histogram.snapshot()
    assert snap.count == 20000
    assert snap.counts[DEFAULT_BUCKETS.index(0.0025)] == 20000
    assert snap.counts[DEFAULT_BUCKETS.index(0.001)] == 0
    assert snap.sum == pytest.approx(40.0)


def test_upstream_metrics_tally(clock: FakeClock) -> None:
    metrics = UpstreamMetrics(clock)
    metrics.add_servers(["a:53", "b:53"])
    metrics.sent("a:53", "A")
    metrics.sent("a:53", "SRV")
    metrics.sent("b:53", "A")
    metrics.answered("a:53", "NOERROR", 0.002)
    metrics.failed("a:53", TIMEOUT)
    metrics.failed("b:53", MALFORMED)
    metrics.backoff("a:53", clock() + 10)
    clock.advance(4)
    snap = metrics.snapshot()
    assert snap.queries_by_type == {"A": 2, "AAAA": 0, "SRV": 1}
    assert snap.queries_by_result["NOERROR"] == 1
    assert snap.queries_by_result[TIMEOUT] == 1 and snap.queries_by_result[MALFORMED] == 1
    assert snap.latency.count == 1
    assert snap.servers["a:53"] == ServerHealth(True, 2, 1, 1, 0, 0.002, 4.0)
    assert snap.servers["b:53"] == ServerHealth(False, 1, 0, 0, 1, None, None)
    clock.advance(6)
    assert not metrics.snapshot().servers["a:53"].backed_off
    with pytest.raises(ValueError, match="not a failure"):
        metrics.failed("a:53", "NOERROR")


def test_exchange_records_one_result_per_query_sent(clock: FakeClock) -> None:
    """The sans-I/O ``Exchange`` on its own: replies, garbage, truncation and
    what is left open when the try ends."""
    metrics = UpstreamMetrics(clock)
    exchange = Exchange(
        [("a.example.", "A"), ("a.example.", "AAAA"), ("b.example.", "A")], metrics, clock
    )
    first = ("192.0.2.53", 53)
    waiting = exchange.start_try(exchange.pending(), first)
    by_index = {i: qid for qid, i in waiting.items()}
    clock.advance(0.004)
    nxdomain = dns.message.make_response(exchange.queries[0].message())
    nxdomain.set_rcode(dns.rcode.NXDOMAIN)
    assert exchange.receive(b"garbage", waiting) is None
    assert exchange.receive(nxdomain.to_wire(), waiting) == (0, False)
    truncated = dns.message.make_response(exchange.queries[1].message())
    truncated.flags |= dns.flags.TC
    assert exchange.receive(truncated.to_wire(), waiting) == (1, True)
    exchange.tcp_frame(1)  # the TCP query goes out
    clock.advance(0.02)
    exchange.receive_tcp(1, b"\x00\x01")  # does not parse: malformed
    snap = metrics.snapshot().queries_by_result
    assert (snap["NXDOMAIN"], snap[TRUNCATED], snap[MALFORMED], snap[TIMEOUT]) == (1, 1, 1, 0)
    assert by_index[2] in waiting  # b.example. is still open

    second = ("192.0.2.54", 53)
    waiting = exchange.start_try(exchange.pending(), second)  # b.example. timed out on first
    servfail = dns.message.make_response(exchange.queries[2].message())
    servfail.set_rcode(dns.rcode.SERVFAIL)
    clock.advance(0.001)
    exchange.receive(servfail.to_wire(), waiting)
    exchange.fail([2], "network error: unreachable")  # answered this try: not counted
    outcome = exchange.outcome()  # the AAAA question, still open on second, timed out
    snap = metrics.snapshot().queries_by_result
    assert (snap["SERVFAIL"], snap[TIMEOUT], snap[NETWORK_ERROR]) == (1, 2, 0)
    latency = metrics.snapshot().latency
    assert latency.count == 3  # NXDOMAIN, truncated, SERVFAIL
    assert latency.sum == pytest.approx(0.004 + 0.004 + 0.001)
    assert not isinstance(outcome[0], UpstreamFailure)
    assert outcome[0].rcode() == dns.rcode.NXDOMAIN  # read off the wire: a WireReply
    assert [isinstance(o, UpstreamFailure) for o in outcome] == [False, True, True]
    servers = metrics.snapshot().servers
    assert servers["192.0.2.53:53"] == ServerHealth(
        False, 0, 2, 1, 1, pytest.approx(0.004), pytest.approx(0.021)
    )
    assert servers["192.0.2.54:53"] == ServerHealth(False, 0, 1, 1, 0, pytest.approx(0.001), 0.0)
