"""AsyncResolver: the same behaviour as Resolver, on an event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from safedns import AsyncResolver, NameNotFound, Resolver, ResolverConfig, TemporaryFailure
from safedns._planning import plan
from safedns.testing import DNSServer
from tests.conftest import FakeClock, QueryGate, k8s_config, until, wait_until

# No socket or task left behind: an unclosed one fails the test (issue 11, 4).
pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
]


def test_cached_external_name_one_query(server: DNSServer) -> None:
    async def main() -> None:
        async with AsyncResolver(k8s_config(server)) as resolver:
            first = await resolver.resolve("api.example.com")
            assert not first.from_cache and first.ttl == 60
            for _ in range(1000):
                answer = await resolver.resolve("api.example.com")
            assert answer.from_cache and answer.addresses == ["192.0.2.10"]

    asyncio.run(main())
    assert server.queries == [("api.example.com.", "A")]


def test_search_walk_negative_cache_and_both_families(server: DNSServer) -> None:
    async def main() -> None:
        resolver = AsyncResolver(k8s_config(server))
        assert (await resolver.resolve("my-svc")).name == "my-svc.ns1.svc.cluster.local."
        with pytest.raises(NameNotFound):
            await resolver.resolve("nope.example.com")
        assert await resolver.resolve_addresses("dual.example.com") == [
            "192.0.2.11",
            "2001:db8::11",
        ]
        server.clear()
        for _ in range(50):
            await resolver.resolve("my-svc")
            with pytest.raises(NameNotFound):
                await resolver.resolve("nope.example.com")
            await resolver.resolve_addresses("dual.example.com")
        assert server.queries == []
        await resolver.aclose()

    asyncio.run(main())


def test_a_and_aaaa_go_out_together(server: DNSServer) -> None:
    # The gate forwards nothing until both queries are in.
    with QueryGate(server, count=2) as gate:

        async def main() -> list[str]:
            resolver = AsyncResolver(k8s_config(gate.nameserver, timeout=10))
            return await resolver.resolve_addresses("dual.example.com.")

        assert asyncio.run(main()) == ["192.0.2.11", "2001:db8::11"]
    assert gate.opened and gate.received == 2


def test_truncation_timeout_and_servfail(server: DNSServer) -> None:
    async def main() -> None:
        server.truncate = True
        resolver = AsyncResolver(k8s_config(server, timeout=0.2, attempts=2))
        assert (await resolver.resolve("api.example.com")).addresses == ["192.0.2.10"]
        assert [t for _, _, t in server.query_log] == ["udp", "tcp"]
        server.truncate = False
        server.stop()
        server.clear()
        with pytest.raises(TemporaryFailure, match="timed out"):
            await resolver.resolve("dual.example.com.")
        assert len(server.queries) == 2
        server.start()
        server.servfail = True
        with pytest.raises(TemporaryFailure, match="SERVFAIL"):
            await resolver.resolve("www.example.org.")

    asyncio.run(main())


def test_wrong_id_replies_ignored(server: DNSServer) -> None:
    server.wrong_id = True

    async def main() -> list[str]:
        return (await AsyncResolver(k8s_config(server)).resolve("api.example.com")).addresses

    assert asyncio.run(main()) == ["192.0.2.10"]


def test_1000_tasks_one_cold_name_one_query(server: DNSServer) -> None:
    server.delay = 0.2

    async def main() -> list[list[str]]:
        resolver = AsyncResolver(ResolverConfig(nameservers=[server], timeout=2))
        return await asyncio.gather(
            *(resolver.resolve_addresses("dual.example.com.") for _ in range(1000))
        )

    results = asyncio.run(main())
    assert all(r == ["192.0.2.11", "2001:db8::11"] for r in results)
    assert sorted(server.queries) == [("dual.example.com.", "A"), ("dual.example.com.", "AAAA")]


def test_serves_stale_through_an_outage(server: DNSServer, clock: FakeClock) -> None:
    async def main() -> None:
        config = k8s_config(server, timeout=0.1, stale_response_timeout=0.3)
        resolver = AsyncResolver(config, clock=clock)
        await resolver.resolve("api.example.com")
        clock.advance(61)
        server.stop()
        server.clear()
        for _ in range(20):
            answer = await resolver.resolve("api.example.com")
            assert answer.stale and answer.addresses == ["192.0.2.10"]
        assert len(server.queries) == 1
        await resolver.aclose()

    asyncio.run(main())


def test_stale_response_timeout_0_answers_stale_at_once(
    server: DNSServer, clock: FakeClock
) -> None:
    """As the sync resolver (issue 19, 1): DNS stopped after the TTL ran
    out, ``timeout=2``: the stale answer at once, the refresh in the
    background."""

    async def main() -> None:
        config = ResolverConfig(nameservers=[server], timeout=2, stale_response_timeout=0)
        async with AsyncResolver(config, clock=clock) as resolver:
            await resolver.resolve("api.example.com.")
            clock.advance(61)
            server.stop()
            for _ in range(2):  # the caller leading the refresh, then one following it
                started = time.monotonic()
                answer = await resolver.resolve("api.example.com.")
                assert time.monotonic() - started < 0.1
                assert answer.stale and answer.addresses == ["192.0.2.10"]
            # The background refresh fails once, in its own time.
            assert await until(lambda: resolver.stats().upstream_errors == 1)
            server.start()
            server.remove("api.example.com")
            server.add("api.example.com", "A", "192.0.2.99", ttl=60)
            clock.advance(31)  # past failure_recheck: asked again, stale meanwhile
            started = time.monotonic()
            assert (await resolver.resolve("api.example.com.")).stale
            assert time.monotonic() - started < 0.1

            async def refreshed() -> bool:
                answer = await resolver.resolve("api.example.com.")
                return answer.addresses == ["192.0.2.99"]

            assert await until(refreshed)
            assert not (await resolver.resolve("api.example.com.")).stale
        assert server.queries == [("api.example.com.", "A")] * 3

    asyncio.run(main())


def test_refresh_ahead_in_the_background(server: DNSServer, clock: FakeClock) -> None:
    async def main() -> None:
        resolver = AsyncResolver(k8s_config(server), clock=clock)
        await resolver.resolve("api.example.com")
        clock.advance(55)
        assert (await resolver.resolve("api.example.com")).ttl == 5

        # Until the refresh lands the cached answer is served (TTL 5).
        async def refreshed() -> bool:
            return (await resolver.resolve("api.example.com")).ttl == 60

        assert await until(refreshed)
        assert len(server.queries) == 2
        await resolver.aclose()

    asyncio.run(main())


def test_shares_one_cache_with_a_sync_resolver(server: DNSServer) -> None:
    sync = Resolver(k8s_config(server))
    sync.resolve("api.example.com")

    async def main() -> None:
        resolver = AsyncResolver(resolver=sync)
        assert (await resolver.resolve("api.example.com")).from_cache
        await resolver.resolve("my-svc")

    asyncio.run(main())
    assert sync.resolve("my-svc").from_cache
    assert len(server.queries) == 2
    assert sync.stats().lookups == 4


def test_budget_fails_fast(server: DNSServer) -> None:
    async def main() -> int:
        config = k8s_config(server, upstream_qps=5, upstream_burst=5, budget_wait=0)
        resolver = AsyncResolver(config)
        failures = 0
        for i in range(200):
            try:
                await resolver.resolve(f"x{i}.example.com.")
            except TemporaryFailure:
                failures += 1
            except NameNotFound:
                pass
        return failures

    started = time.monotonic()
    assert asyncio.run(main()) >= 190
    assert time.monotonic() - started < 2
    assert len(server.queries) <= 10


def test_aclose_cancels_background_work(server: DNSServer, clock: FakeClock) -> None:
    server.delay = 5

    async def main() -> None:
        resolver = AsyncResolver(k8s_config(server, timeout=10), clock=clock)
        server.delay = 0
        await resolver.resolve("api.example.com")
        server.delay = 5
        clock.advance(55)
        await resolver.resolve("api.example.com")  # starts a slow refresh
        started = time.monotonic()
        await resolver.aclose()
        assert time.monotonic() - started < 1
        assert all(t.done() for t in asyncio.all_tasks() if t is not asyncio.current_task())

    asyncio.run(main())


def _other_tasks() -> list[asyncio.Task[object]]:
    current = asyncio.current_task()
    return [t for t in asyncio.all_tasks() if t is not current and not t.done()]


def test_cancelling_one_caller_leaves_the_others_their_answer(server: DNSServer) -> None:
    """Issue 8 §3: the shared query is the resolver's, not the first caller's."""
    server.delay = 0.5

    async def main() -> None:
        async with AsyncResolver(k8s_config(server, timeout=5)) as resolver:
            first = asyncio.create_task(asyncio.wait_for(resolver.resolve("api.example.com"), 0.1))
            await asyncio.sleep(0)  # the first caller leads the flight
            second = asyncio.create_task(resolver.resolve("api.example.com"))
            with pytest.raises(asyncio.TimeoutError):
                await first
            answer = await second
            assert answer.addresses == ["192.0.2.10"] and not answer.from_cache
            assert resolver.stats().coalesced == 1
            # A caller cancelled outright sees CancelledError, nobody else does.
            server.delay = 0.3
            third = asyncio.create_task(resolver.resolve("dual.example.com"))
            fourth = asyncio.create_task(resolver.resolve("dual.example.com"))
            assert await until(lambda: server.query_count == 2)  # its query is at the server
            third.cancel()
            with pytest.raises(asyncio.CancelledError):
                await third
            assert (await fourth).addresses == ["192.0.2.11"]
            assert _other_tasks() == []
        assert server.queries == [("api.example.com.", "A"), ("dual.example.com.", "A")]

    asyncio.run(main())


def test_a_burst_of_callers_shares_one_lookup(server: DNSServer) -> None:
    """A thousand tasks on one cold name: one walk, one query per type, the
    same answer (or the same error) for all of them."""

    async def main() -> None:
        async with AsyncResolver(k8s_config(server)) as resolver:
            results = await asyncio.gather(
                *(resolver.resolve_addresses("dual.example.com") for _ in range(1000))
            )
            assert all(r == ["192.0.2.11", "2001:db8::11"] for r in results)
            stats = resolver.stats()
            assert (stats.lookups, stats.coalesced, stats.upstream_queries) == (1000, 999, 2)
            errors = await asyncio.gather(
                *(resolver.resolve("gone.example.com") for _ in range(100)),
                return_exceptions=True,
            )
            assert all(isinstance(e, NameNotFound) for e in errors)
            assert resolver.stats().coalesced == 999 + 99

    asyncio.run(main())
    assert server.queries == [
        ("dual.example.com.", "A"),
        ("dual.example.com.", "AAAA"),
        *((candidate, "A") for candidate in _candidates("gone.example.com")),
    ]


def _candidates(name: str) -> list[str]:
    return plan(name, k8s_config("127.0.0.1"))


def test_the_walk_stops_when_its_last_caller_is_gone(server: DNSServer) -> None:
    """The walk of a lookup nobody waits for any more goes no further: the
    query already sent lands in the cache, the next candidate is not asked."""
    server.delay = 0.3

    async def main() -> None:
        async with AsyncResolver(k8s_config(server, timeout=5)) as resolver:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(resolver.resolve("other-svc"), 0.1)
            assert await until(lambda: not _other_tasks(), 30)  # the exchange task lands it
            assert _other_tasks() == []
            assert server.queries == [("other-svc.ns1.svc.cluster.local.", "A")]
            # The next caller starts afresh, with the first answer cached.
            server.delay = 0
            with pytest.raises(NameNotFound):
                await resolver.resolve("other-svc")
            assert server.queries[0] == ("other-svc.ns1.svc.cluster.local.", "A")
            assert ("other-svc.ns1.svc.cluster.local.", "A") not in server.queries[1:]

    asyncio.run(main())


def test_a_cancelled_lone_caller_leaves_no_task_after_aclose(server: DNSServer) -> None:
    server.delay = 5

    async def main() -> None:
        resolver = AsyncResolver(k8s_config(server, timeout=10))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(resolver.resolve("api.example.com"), 0.1)
        assert _other_tasks()  # the shared query goes on alone
        started = time.monotonic()
        await resolver.aclose()
        assert time.monotonic() - started < 1  # cancelled, not waited out
        assert _other_tasks() == []

    asyncio.run(main())


def test_async_with_closes_everything_without_resource_warnings(server: DNSServer) -> None:
    import gc
    import warnings

    async def main() -> None:
        async with AsyncResolver(k8s_config(server)) as resolver:
            server.truncate = True  # UDP and TCP both used
            await resolver.resolve_addresses("dual.example.com")
            server.truncate = False
        assert _other_tasks() == []

    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        asyncio.run(main())
        gc.collect()


def test_tcp_retry_does_not_eat_the_udp_deadline(server: DNSServer) -> None:
    """Issue 8 §4, async: the TCP retry runs beside the UDP receive loop."""
    server.truncate_types = {"A"}
    server.delay = 0.6

    async def main() -> list[str]:
        async with AsyncResolver(k8s_config(server, timeout=1.0, attempts=1)) as resolver:
            return await resolver.resolve_addresses("dual.example.com")

    assert asyncio.run(main()) == ["192.0.2.11", "2001:db8::11"]
    assert sorted(server.query_log) == [
        ("dual.example.com.", "A", "tcp"),
        ("dual.example.com.", "A", "udp"),
        ("dual.example.com.", "AAAA", "udp"),
    ]


# -- fork (issue 8 §6) ---------------------------------------------------------


def _in_child(child: Callable[[], int]) -> int:
    """Fork; the child runs ``child`` (killed by SIGALRM after 20 s should it
    hang) and exits with its result; returns the child's exit status."""
    import os
    import signal

    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 99
        try:
            signal.alarm(20)
            code = child()
        except BaseException:
            code = 98
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_async_resolver_used_before_fork_resolves_in_the_child(server: DNSServer) -> None:
    import threading

    resolver = AsyncResolver(k8s_config(server, timeout=2))
    assert asyncio.run(resolver.resolve("api.example.com")).addresses == ["192.0.2.10"]
    # At fork time, another thread's loop has a flight under way (its socket
    # open, its task pending) and holds the cache lock.
    server.delay = 1.0
    loop = asyncio.new_event_loop()
    started = threading.Event()
    flying = threading.Thread(
        target=lambda: loop.run_until_complete(resolver.resolve("dual.example.com"))
    )
    flying.start()
    assert wait_until(lambda: ("dual.example.com.", "A") in server.queries)
    lock = resolver._core.cache._lock
    release = threading.Event()

    def hold() -> None:
        with lock:
            started.set()
            release.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    started.wait()

    def child() -> int:
        server.delay = 0  # the server is a thread of the parent: unaffected
        cached = asyncio.run(resolver.resolve("api.example.com"))
        fresh = asyncio.run(resolver.resolve("dual.example.com"))
        ok = cached.addresses == ["192.0.2.10"] and fresh.addresses == ["192.0.2.11"]
        return 0 if ok else 1

    try:
        assert _in_child(child) == 0
    finally:
        release.set()
        holder.join()
        flying.join()
        loop.close()


def test_a_burst_waits_for_the_budget_async(server: DNSServer) -> None:
    names = [f"new{i}.example.com." for i in range(30)]
    for i, name in enumerate(names):
        server.add(name, "A", f"192.0.2.{i + 1}")
    config = ResolverConfig(
        nameservers=[server.nameserver],
        upstream_qps=10,
        upstream_burst=10,
        budget_wait=3,
        timeout=5,
        attempts=1,
    )

    async def main() -> list[object]:
        async with AsyncResolver(config) as resolver:
            results = await asyncio.gather(*(resolver.resolve(n) for n in names))
            assert resolver.stats().budget_waits == 20
            assert resolver.stats().budget_denied == 0
            return [r.addresses for r in results]

    started = time.monotonic()
    assert asyncio.run(main()) == [[f"192.0.2.{i + 1}"] for i in range(30)]
    assert time.monotonic() - started < 3.5
