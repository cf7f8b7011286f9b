"""Resilience: single flight, serve-stale, refresh-ahead, the query budget,
bounded memory, and a chaos suite of server faults. Every test counts what
reached the server."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import dns.message
import pytest

from safedns import NameNotFound, ResolveError, Resolver, ResolverConfig, TemporaryFailure
from safedns.testing import Dnsmasq, DNSServer
from tests.conftest import FakeClock, k8s_config, require_dnsmasq


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def run_threads(n: int, target: Callable[[], None]) -> None:
    threads = [threading.Thread(target=target) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)


# -- single flight ------------------------------------------------------------


def test_64_threads_one_cold_name_send_one_query(server: DNSServer) -> None:
    server.delay = 0.3
    resolver = Resolver(ResolverConfig(nameservers=[server], timeout=2.0))
    barrier = threading.Barrier(64)
    results: list[object] = []

    def lookup() -> None:
        barrier.wait()
        try:
            results.append(resolver.resolve("api.example.com.").addresses)
        except Exception as exc:  # collected and asserted below
            results.append(exc)

    run_threads(64, lookup)
    assert results == [["192.0.2.10"]] * 64
    assert server.queries == [("api.example.com.", "A")]
    assert resolver.stats().coalesced == 63


def test_followers_share_the_leaders_failure(server: DNSServer) -> None:
    server.delay = 0.3
    server.servfail = True
    resolver = Resolver(ResolverConfig(nameservers=[server], timeout=2.0, attempts=1))
    barrier = threading.Barrier(16)
    errors: list[BaseException] = []

    def lookup() -> None:
        barrier.wait()
        try:
            resolver.resolve("api.example.com.")
        except TemporaryFailure as exc:
            errors.append(exc)

    run_threads(16, lookup)
    assert len(errors) == 16
    assert len(server.queries) == 1


# -- serve-stale ---------------------------------------------------------------


def test_outage_serves_stale_for_ten_seconds_with_one_query(
    server: DNSServer, clock: FakeClock
) -> None:
    """The issue's check: a 10 s outage on the resolver's clock, with the default
    settings but a short query timeout (how long the one query waits is real time)."""
    server.add("short.example.com", "A", "192.0.2.55", ttl=1)
    resolver = Resolver(ResolverConfig(nameservers=[server], timeout=0.5), clock=clock)
    assert resolver.resolve("short.example.com.").addresses == ["192.0.2.55"]
    clock.advance(1.5)
    server.stop()
    server.clear()
    assert resolver.resolve("short.example.com.").stale
    assert wait_for(lambda: resolver.stats().upstream_errors == 1)  # the one query failed
    # Steps a float adds exactly: an answer's TTL is read at the instant it was made.
    for _ in range(160):  # a lookup every 62.5 ms for 10 s
        answer = resolver.resolve("short.example.com.")
        assert answer.stale and answer.addresses == ["192.0.2.55"]
        assert answer.ttl <= 30
        clock.advance(0.0625)
    assert len(server.queries) == 1  # not repeated inside failure_recheck (30 s)
    clock.advance(20)  # 30 s after the failure: asked once more, still served stale
    assert resolver.resolve("short.example.com.").stale
    resolver.close()
    assert len(server.queries) == 2


def test_stale_answer_after_failure_then_recheck(server: DNSServer, clock: FakeClock) -> None:
    config = k8s_config(server, timeout=0.1, stale_response_timeout=0.5, failure_recheck=30)
    resolver = Resolver(config, clock=clock)
    resolver.resolve("api.example.com")
    clock.advance(61)
    server.stop()
    server.clear()
    answer = resolver.resolve("api.example.com")
    assert answer.stale and answer.ttl == 30 and answer.addresses == ["192.0.2.10"]
    assert wait_for(lambda: resolver.stats().upstream_errors == 1)
    for _ in range(100):
        clock.advance(0.25)
        assert resolver.resolve("api.example.com").stale
    assert len(server.queries) == 1  # 25 s later: still inside failure_recheck
    clock.advance(6)
    server.start()
    resolver.resolve("api.example.com")  # recheck: asks again, serves stale meanwhile
    assert wait_for(lambda: not resolver.resolve("api.example.com").stale)
    assert len(server.queries) == 2
    stats = resolver.stats()
    assert stats.stale_served >= 101
    resolver.close()


def test_slow_upstream_gets_stale_after_the_client_timer(
    server: DNSServer, clock: FakeClock
) -> None:
    server.add("short.example.com", "A", "192.0.2.55", ttl=1)
    config = ResolverConfig(nameservers=[server], stale_response_timeout=0.2)
    resolver = Resolver(config, clock=clock)
    resolver.resolve("short.example.com.")
    clock.advance(1.05)
    server.delay = 1.5
    # Stale, so not the reply (it comes 1.5 s later): the client timer fired.
    answer = resolver.resolve("short.example.com.")
    assert answer.stale
    # The query finishes in the background and refreshes the cache.
    assert wait_for(lambda: not resolver.resolve("short.example.com.").stale, 10)
    assert len([q for q in server.queries if q[0] == "short.example.com."]) == 2
    resolver.close()


def test_stale_response_timeout_0_answers_stale_at_once(
    server: DNSServer, clock: FakeClock
) -> None:
    """0 means "answer stale at once and refresh in the background" (issue
    19, 1): with DNS stopped after the TTL ran out and ``timeout=2``, the
    stale answer comes back at once, not after the exchange (4 s)."""
    config = ResolverConfig(nameservers=[server], timeout=2, stale_response_timeout=0)
    resolver = Resolver(config, clock=clock)
    resolver.resolve("api.example.com.")
    clock.advance(61)
    server.stop()
    for _ in range(2):  # the caller leading the refresh, then one following it
        started = time.monotonic()
        answer = resolver.resolve("api.example.com.")
        assert time.monotonic() - started < 0.1
        assert answer.stale and answer.addresses == ["192.0.2.10"]
    # The refresh went out in the background and failed there, once.
    assert wait_for(lambda: resolver.stats().upstream_errors == 1, 10)
    assert server.queries == [("api.example.com.", "A")] * 2
    resolver.close()


def test_stale_response_timeout_0_refreshes_in_the_background(
    server: DNSServer, clock: FakeClock
) -> None:
    config = ResolverConfig(nameservers=[server], timeout=2, stale_response_timeout=0)
    resolver = Resolver(config, clock=clock)
    resolver.resolve("api.example.com.")
    clock.advance(61)
    server.remove("api.example.com")
    server.add("api.example.com", "A", "192.0.2.99", ttl=60)
    server.delay = 0.5
    started = time.monotonic()
    answer = resolver.resolve("api.example.com.")
    assert time.monotonic() - started < 0.1
    assert answer.stale and answer.addresses == ["192.0.2.10"]
    assert wait_for(lambda: resolver.resolve("api.example.com.").addresses == ["192.0.2.99"])
    assert not resolver.resolve("api.example.com.").stale
    resolver.close()


def test_nxdomain_replaces_a_stale_entry(server: DNSServer, clock: FakeClock) -> None:
    resolver = Resolver(k8s_config(server), clock=clock)
    resolver.resolve("api.example.com.")
    clock.advance(61)
    server.remove("api.example.com")
    with pytest.raises(NameNotFound):
        resolver.resolve("api.example.com.")
    clock.advance(31)
    with pytest.raises(NameNotFound):  # the stale positive answer is gone for good
        resolver.resolve("api.example.com.")


def test_stale_entries_expire_after_stale_ttl(server: DNSServer, clock: FakeClock) -> None:
    resolver = Resolver(k8s_config(server, stale_ttl=100, timeout=0.1), clock=clock)
    resolver.resolve("api.example.com.")
    server.stop()
    clock.advance(60 + 101)
    with pytest.raises(TemporaryFailure):
        resolver.resolve("api.example.com.")


def test_short_name_walk_is_served_stale(server: DNSServer, clock: FakeClock) -> None:
    resolver = Resolver(k8s_config(server, timeout=0.1, stale_response_timeout=0.1), clock=clock)
    assert resolver.resolve_addresses("my-svc") == ["10.0.0.5"]
    clock.advance(40)
    server.stop()
    assert resolver.resolve_addresses("my-svc") == ["10.0.0.5"]
    resolver.close()


# -- refresh-ahead -------------------------------------------------------------


def test_popular_name_is_refreshed_before_it_expires(server: DNSServer, clock: FakeClock) -> None:
    resolver = Resolver(k8s_config(server), clock=clock)
    resolver.resolve("api.example.com")
    clock.advance(55)  # under 10 % of the TTL left
    answer = resolver.resolve("api.example.com")
    assert answer.from_cache and answer.ttl == 5  # the caller did not wait
    assert wait_for(lambda: len(server.queries) == 2)
    assert wait_for(lambda: resolver.resolve("api.example.com").ttl == 60)
    assert resolver.stats().prefetches == 1
    clock.advance(10)  # past the first TTL: still a hit
    server.clear()
    assert resolver.resolve("api.example.com").from_cache
    assert server.queries == []
    resolver.close()


def test_prefetch_off(server: DNSServer, clock: FakeClock) -> None:
    resolver = Resolver(k8s_config(server, prefetch=False), clock=clock)
    resolver.resolve("api.example.com")
    clock.advance(55)
    resolver.resolve("api.example.com")
    assert resolver.stats().prefetches == 0  # counted when a refresh starts
    resolver.close()  # waits for any background query
    assert len(server.queries) == 1


def test_one_refresh_at_a_time(server: DNSServer, clock: FakeClock) -> None:
    server.add("slow.example.com", "A", "192.0.2.77", ttl=100)
    resolver = Resolver(k8s_config(server), clock=clock)
    resolver.resolve("slow.example.com")
    server.delay = 0.3
    clock.advance(95)
    for _ in range(50):
        assert resolver.resolve("slow.example.com").from_cache
    assert resolver.stats().prefetches == 1  # counted when a refresh starts
    assert wait_for(lambda: len(server.queries) == 2)
    resolver.close()  # waits for the background query (and any other)
    assert len(server.queries) == 2


# -- the query budget ------------------------------------------------------------


def test_budget_caps_queries_and_fails_fast(server: DNSServer) -> None:
    config = k8s_config(server, upstream_qps=10, upstream_burst=10, budget_wait=0)
    resolver = Resolver(config)
    outcomes: dict[str, int] = {}
    started = time.monotonic()
    for i in range(1000):
        try:
            resolver.resolve(f"host{i}.example.com")
            outcomes["ok"] = outcomes.get("ok", 0) + 1
        except TemporaryFailure:
            outcomes["temporary"] = outcomes.get("temporary", 0) + 1
        except NameNotFound:
            outcomes["missing"] = outcomes.get("missing", 0) + 1
    assert time.monotonic() - started < 5
    assert len(server.queries) <= 20
    assert outcomes["temporary"] >= 990
    assert resolver.stats().budget_denied >= 990


def test_budget_refill_lets_queries_through_again(server: DNSServer, clock: FakeClock) -> None:
    config = k8s_config(server, upstream_qps=1, upstream_burst=1, budget_wait=0)
    resolver = Resolver(config, clock=clock)
    resolver.resolve("api.example.com.")
    with pytest.raises(TemporaryFailure, match="budget"):
        resolver.resolve("dual.example.com.")
    clock.advance(1)
    assert resolver.resolve("dual.example.com.").addresses == ["192.0.2.11"]


def test_budget_exhausted_serves_stale(server: DNSServer, clock: FakeClock) -> None:
    config = k8s_config(server, upstream_qps=1, upstream_burst=1, budget_wait=5, timeout=5)
    resolver = Resolver(config, clock=clock)
    resolver.resolve("api.example.com.")
    clock.advance(61)  # the bucket refilled one token and the entry expired
    resolver.resolve("dual.example.com.")  # spends it
    started = time.monotonic()
    answer = resolver.resolve("api.example.com.")  # stale on hand: no waiting
    assert answer.stale and answer.addresses == ["192.0.2.10"]
    assert time.monotonic() - started < 4  # generous: the wait would be 1 s of budget_wait
    assert resolver.stats().budget_waits == 0


# -- the budget slows a burst down before it fails it (issue 8 §9) -------------


def _burst(resolver: Resolver, names: list[str]) -> tuple[dict[str, object], list[float]]:
    """Every name looked up at once from its own thread: outcome and time taken."""
    outcomes: dict[str, object] = {}
    took: list[float] = []
    go = threading.Barrier(len(names))

    def lookup(name: str) -> None:
        go.wait()
        started = time.monotonic()
        try:
            outcomes[name] = resolver.resolve(name).addresses
        except ResolveError as exc:
            outcomes[name] = exc
        took.append(time.monotonic() - started)

    threads = [threading.Thread(target=lookup, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes, took


def test_a_burst_waits_for_the_budget_instead_of_failing(server: DNSServer) -> None:
    names = [f"new{i}.example.com." for i in range(30)]
    for i, name in enumerate(names):
        server.add(name, "A", f"192.0.2.{i + 1}")
    config = ResolverConfig(
        nameservers=[server.nameserver],
        upstream_qps=10,
        upstream_burst=10,
        timeout=5,
        attempts=1,
    )
    assert config.budget_wait == 2.0  # the default absorbs this burst
    resolver = Resolver(config)
    outcomes, took = _burst(resolver, names)
    assert all(outcomes[name] == [f"192.0.2.{i + 1}"] for i, name in enumerate(names))
    assert max(took) < 3.5  # the 30th token arrives 2 s after the 10th
    stats = resolver.stats()
    assert stats.budget_denied == 0
    assert stats.budget_waits >= 15  # ~20: the bucket refills while threads start
    assert len(server.queries) == 30


def test_a_flood_still_sends_no_more_than_the_budget(server: DNSServer) -> None:
    names = [f"flood{i}.example.com." for i in range(50)]
    for name in names:
        server.add(name, "A", "192.0.2.1")
    sent: list[float] = []
    config = ResolverConfig(
        nameservers=[server.nameserver],
        upstream_qps=10,
        upstream_burst=10,
        timeout=5,
        attempts=1,
    )
    resolver = Resolver(config, on_query=lambda *_: sent.append(time.monotonic()))
    started = time.monotonic()
    outcomes, took = _burst(resolver, names)
    assert max(took) < 3.5
    # Never more than the budget: burst + qps * elapsed, at every send.
    for n, at in enumerate(sorted(sent), start=1):
        assert n <= 10 + 10 * (at - started) + 1e-6
    failed = [o for o in outcomes.values() if isinstance(o, ResolveError)]
    assert all(isinstance(f, TemporaryFailure) and "budget" in str(f) for f in failed)
    assert 30 <= len(outcomes) - len(failed) <= 40  # 10 now + 20 within 2 s (+ refill)
    stats = resolver.stats()
    assert stats.budget_denied == len(failed) and stats.budget_waits >= 15


# -- bounded memory ---------------------------------------------------------------


def test_flood_of_random_missing_names_keeps_the_used_names(server: DNSServer) -> None:
    names = [f"svc{i}.example.com" for i in range(100)]
    for i, name in enumerate(names):
        server.add(name, "A", f"192.0.2.{i + 1}")
    # budget_wait=0: the flood is refused at once rather than slowed to the budget.
    resolver = Resolver(k8s_config(server, budget_wait=0))
    expected = {name: resolver.resolve(name).addresses for name in names}
    rng = random.Random(1)
    for _ in range(100_000):
        with contextlib.suppress(ResolveError):
            resolver.resolve(f"{rng.getrandbits(64):x}.example.com")
    server.clear()
    for name in names:
        answer = resolver.resolve(name)
        assert answer.from_cache and answer.addresses == expected[name]
    assert server.queries == []
    stats = resolver.stats()
    assert stats.negative_entries <= resolver.config.max_negative_entries


def test_answered_negative_flood_is_bounded(server: DNSServer) -> None:
    config = k8s_config(server, max_negative_entries=200, upstream_qps=1e9, upstream_burst=10**9)
    resolver = Resolver(config)
    resolver.resolve("api.example.com.")
    for i in range(2000):
        with pytest.raises(NameNotFound):
            resolver.resolve(f"missing{i}.example.com.")
    stats = resolver.stats()
    assert stats.negative_entries == 200
    server.clear()
    assert resolver.resolve("api.example.com.").from_cache
    assert server.queries == []


# -- chaos: each fault, what the caller gets, what reached the server -----------------


def test_chaos_server_stopped(server: DNSServer) -> None:
    server.stop()
    resolver = Resolver(k8s_config(server, timeout=0.2, attempts=2))
    with pytest.raises(TemporaryFailure, match="timed out"):
        resolver.resolve("api.example.com")
    assert server.queries == [("api.example.com.", "A")] * 2


def test_chaos_slow_beyond_timeout(server: DNSServer) -> None:
    server.delay = 3.0  # far beyond both tries (2 x 0.2 s)
    resolver = Resolver(k8s_config(server, timeout=0.2, attempts=2))
    # A failure, not the answer: the resolver gave up before the reply came.
    with pytest.raises(TemporaryFailure, match="timed out"):
        resolver.resolve("api.example.com")
    assert len(server.queries) == 2


def test_chaos_servfail_everywhere(server: DNSServer) -> None:
    server.servfail = True
    resolver = Resolver(k8s_config(server, attempts=2))
    with pytest.raises(TemporaryFailure, match="SERVFAIL"):
        resolver.resolve_addresses("my-svc")
    # The walk stops at the first failure: A and AAAA of the first candidate, twice.
    assert sorted(server.queries) == sorted(
        [("my-svc.ns1.svc.cluster.local.", "A"), ("my-svc.ns1.svc.cluster.local.", "AAAA")] * 2
    )


def test_chaos_truncating(server: DNSServer) -> None:
    server.truncate = True
    resolver = Resolver(k8s_config(server))
    assert resolver.resolve_addresses("dual.example.com") == ["192.0.2.11", "2001:db8::11"]
    assert sorted(t for _, _, t in server.query_log) == ["tcp", "tcp", "udp", "udp"]


def test_chaos_thirty_percent_dropped() -> None:
    with DNSServer(seed=7) as server:
        for i in range(50):
            server.add(f"n{i}.example.com", "A", f"192.0.2.{i + 1}")
        server.drop_rate = 0.3
        resolver = Resolver(k8s_config(server, timeout=0.05, attempts=3))
        ok = 0
        for i in range(50):
            try:
                assert resolver.resolve(f"n{i}.example.com.").addresses == [f"192.0.2.{i + 1}"]
                ok += 1
            except TemporaryFailure:
                pass
        assert ok >= 44  # 1 - 0.3**3 ≈ 97 % expected
        assert len(server.queries) <= 50 * 3


def test_chaos_wrong_id_and_garbage(server: DNSServer) -> None:
    server.wrong_id = True
    resolver = Resolver(k8s_config(server))
    assert resolver.resolve_addresses("dual.example.com") == ["192.0.2.11", "2001:db8::11"]
    assert len(server.queries) == 2


def test_chaos_dnsmasq_frozen_then_back(clock: FakeClock) -> None:
    """A real server that stops answering (SIGSTOP) and comes back (SIGCONT)."""
    require_dnsmasq()
    with Dnsmasq({"api.example.com": ["192.0.2.10"]}, ttl=1) as dnsmasq:
        resolver = Resolver(
            k8s_config(dnsmasq.nameserver, timeout=0.2, stale_response_timeout=0.3), clock=clock
        )
        assert resolver.resolve("api.example.com").addresses == ["192.0.2.10"]
        clock.advance(1.05)
        assert dnsmasq.pid is not None
        os.kill(dnsmasq.pid, signal.SIGSTOP)
        try:
            for _ in range(20):
                answer = resolver.resolve("api.example.com")
                assert answer.stale and answer.addresses == ["192.0.2.10"]
            with pytest.raises(TemporaryFailure):
                resolver.resolve("never-cached.example.com.")
        finally:
            os.kill(dnsmasq.pid, signal.SIGCONT)
        resolver.flush()
        assert not resolver.resolve("api.example.com").stale
        resolver.close()


def test_chaos_spoofed_source_is_ignored(server: DNSServer) -> None:
    """A forged reply (right ID and question, wrong address) from another port
    reaches the client's port first; safedns accepts only the real server."""
    server.spoof_source = True
    # The forgery is real: an unconnected socket receives it first.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        raw.settimeout(2)
        raw.sendto(dns.message.make_query("api.example.com.", "A").to_wire(), server.address)
        _, source = raw.recvfrom(512)
        assert source != server.address
    resolver = Resolver(k8s_config(server))
    assert resolver.resolve("api.example.com").addresses == ["192.0.2.10"]
    assert resolver.resolve_addresses("dual.example.com") == ["192.0.2.11", "2001:db8::11"]


def test_client_timer_covers_the_whole_walk(server: DNSServer, clock: FakeClock) -> None:
    """Stale answers for a name found at the sixth candidate come after one
    stale_response_timeout, not one per candidate (6 x 0.3 s)."""
    search = ("a.example", "b.example", "c.example", "d.example", "e.example")
    config = k8s_config(server, timeout=1.0, stale_response_timeout=0.3)
    config = dataclasses.replace(config, search=(*search, "svc.cluster.local"))
    resolver = Resolver(config, clock=clock)
    assert resolver.resolve("my-svc.ns1").name == "my-svc.ns1.svc.cluster.local."
    assert len(server.queries) == 6
    clock.advance(31)  # the five NXDOMAINs (30 s) and the answer (30 s) expired
    server.stop()
    started = time.monotonic()
    answer = resolver.resolve("my-svc.ns1")
    elapsed = time.monotonic() - started
    assert answer.stale and answer.addresses == ["10.0.0.5"]
    # The timer was waited for, once: one per candidate would take 1.8 s.
    assert 0.25 < elapsed < 1.2, elapsed
    resolver.close()


def test_memo_expires_with_the_walks_earliest_negative(clock: FakeClock) -> None:
    with DNSServer(negative_ttl=5) as server:
        server.add("my-svc.ns1.svc.cluster.local", "A", "10.0.0.5", ttl=300)
        resolver = Resolver(k8s_config(server), clock=clock)
        resolver.resolve("my-svc.ns1")
        resolver.resolve_addresses("my-svc.ns1", socket.AF_INET)
        assert len(server.queries) == 2
        clock.advance(4)
        resolver.resolve("my-svc.ns1")
        resolver.resolve_addresses("my-svc.ns1", socket.AF_INET)
        assert len(server.queries) == 2
        clock.advance(2)  # the first candidate's NXDOMAIN expired: it is asked again
        resolver.resolve("my-svc.ns1")
        assert server.queries[2:] == [("my-svc.ns1.ns1.svc.cluster.local.", "A")]
        resolver.resolve_addresses("my-svc.ns1", socket.AF_INET)
        assert len(server.queries) == 3


# -- a partial failure is not memoised (issue 8 §2) -----------------------------


def test_failed_family_is_asked_again_after_failure_recheck(
    server: DNSServer, clock: FakeClock
) -> None:
    server.drop_types = {"AAAA"}
    resolver = Resolver(
        k8s_config(server, timeout=0.3, attempts=1, failure_recheck=1), clock=clock
    )
    assert resolver.resolve_addresses("dual.example.com") == ["192.0.2.11"]
    server.drop_types = set()
    server.clear()
    clock.advance(0.5)  # inside failure_recheck: the memo still answers
    assert resolver.resolve_addresses("dual.example.com") == ["192.0.2.11"]
    assert server.queries == []
    clock.advance(1.1)  # 1.6 s after the failure
    assert resolver.resolve_addresses("dual.example.com") == ["192.0.2.11", "2001:db8::11"]
    assert server.queries == [("dual.example.com.", "AAAA")]  # A is still cached
    [_, aaaa] = resolver.lookup_addresses("dual.example.com")
    assert aaaa.addresses == ["2001:db8::11"] and aaaa.from_cache


def test_failed_family_is_asked_again_async(server: DNSServer, clock: FakeClock) -> None:
    import asyncio

    from safedns import AsyncResolver

    server.drop_types = {"AAAA"}

    async def main() -> None:
        config = k8s_config(server, timeout=0.3, attempts=1, failure_recheck=1)
        async with AsyncResolver(config, clock=clock) as resolver:
            assert await resolver.resolve_addresses("dual.example.com") == ["192.0.2.11"]
            server.drop_types = set()
            clock.advance(1.6)
            assert await resolver.resolve_addresses("dual.example.com") == [
                "192.0.2.11",
                "2001:db8::11",
            ]

    asyncio.run(main())


def test_failed_family_is_asked_again_through_getaddrinfo(
    server: DNSServer, clock: FakeClock, tmp_path: Path
) -> None:
    # The drop-in's own result cache honours the shorter validity too.
    from safedns._dropin.addrinfo import AddrInfo

    hosts = tmp_path / "hosts"
    hosts.write_text("")
    server.drop_types = {"AAAA"}
    resolver = Resolver(
        k8s_config(server, timeout=0.3, attempts=1, failure_recheck=1), clock=clock
    )
    drop_in = AddrInfo(resolver, hosts_path=str(hosts))

    def addresses() -> list[str]:
        rows = drop_in.getaddrinfo("dual.example.com", 80, type=socket.SOCK_STREAM)
        return [str(row[4][0]) for row in rows]

    assert addresses() == ["192.0.2.11"]
    server.drop_types = set()
    server.clear()
    clock.advance(0.5)
    assert addresses() == ["192.0.2.11"]
    assert server.queries == []
    clock.advance(1.1)
    assert sorted(addresses()) == ["192.0.2.11", "2001:db8::11"]
    assert server.queries == [("dual.example.com.", "AAAA")]
