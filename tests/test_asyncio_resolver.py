"""AsyncResolver under load and beside a sync Resolver, against a real DNSServer.

The must-show lines of issue 11: a burst of 1000 tasks on one cold name sends
one query and every task gets the answer; a sync ``Resolver`` and
``AsyncResolver(resolver=that_resolver)`` share one cache; nothing (task,
socket) is left behind once the resolver is closed.
"""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from safedns import AsyncResolver, Resolver, ResolverConfig
from safedns.testing import DNSServer
from tests.conftest import FakeClock

pytestmark = pytest.mark.filterwarnings(
    "error::ResourceWarning", "error::pytest.PytestUnraisableExceptionWarning"
)

NAME = "svc.example.com"


@pytest.fixture
def dns() -> Iterator[DNSServer]:
    with DNSServer() as server:
        server.add(NAME, "A", "192.0.2.80", ttl=60)
        server.add(NAME, "AAAA", "2001:db8::80", ttl=60)
        yield server
    gc.collect()  # a socket or transport left open warns now, inside the test


def config(server: DNSServer, **overrides: Any) -> ResolverConfig:
    settings: dict[str, Any] = {"nameservers": [server.nameserver], "timeout": 5, "attempts": 1}
    settings.update(overrides)
    return ResolverConfig(**settings)


def leftover_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]


def test_1000_tasks_on_one_cold_name_send_one_query(dns: DNSServer) -> None:
    dns.delay = 0.2

    async def main() -> list[list[str]]:
        async with AsyncResolver(config(dns)) as resolver:
            answers = await asyncio.gather(*(resolver.resolve(NAME) for _ in range(1000)))
            stats = resolver.stats()
        assert stats.upstream_queries == 1
        assert leftover_tasks() == []
        return [answer.addresses for answer in answers]

    addresses = asyncio.run(main())
    assert dns.queries == [(f"{NAME}.", "A")]
    assert len(addresses) == 1000
    assert all(a == ["192.0.2.80"] for a in addresses)


def test_1000_tasks_asking_both_families_send_one_query_each(dns: DNSServer) -> None:
    dns.delay = 0.2

    async def main() -> list[list[str]]:
        async with AsyncResolver(config(dns)) as resolver:
            return await asyncio.gather(*(resolver.resolve_addresses(NAME) for _ in range(1000)))

    results = asyncio.run(main())
    assert sorted(dns.queries) == [(f"{NAME}.", "A"), (f"{NAME}.", "AAAA")]
    assert all(r == ["192.0.2.80", "2001:db8::80"] for r in results)


def test_a_name_the_sync_resolver_resolved_is_a_hit_for_the_async_one(dns: DNSServer) -> None:
    dns.add("other.example.com", "A", "192.0.2.81", ttl=60)
    sync = Resolver(config(dns))
    assert not sync.resolve(NAME).from_cache
    assert sync.resolve_addresses("other.example.com") == ["192.0.2.81"]
    before = list(dns.queries)

    async def main() -> None:
        async with AsyncResolver(resolver=sync) as resolver:
            answer = await resolver.resolve(NAME)
            assert answer.from_cache and answer.addresses == ["192.0.2.80"]
            answers = await resolver.lookup_addresses("other.example.com")
            assert answers and all(a.from_cache for a in answers)
            assert await resolver.resolve_addresses("other.example.com") == ["192.0.2.81"]
            # ...and the other way round: what the async one asked, the sync one has.
            assert not (await resolver.resolve(NAME, "AAAA")).from_cache

    asyncio.run(main())
    assert dns.queries == [*before, (f"{NAME}.", "AAAA")]  # 0 new queries for the hits
    assert sync.resolve(NAME, "AAAA").from_cache
    assert len(dns.queries) == len(before) + 1
    sync.close()


def test_no_task_or_socket_left_after_aclose(dns: DNSServer, clock: FakeClock) -> None:
    async def main() -> None:
        resolver = AsyncResolver(config(dns, timeout=10), clock=clock)
        await resolver.resolve(NAME)
        dns.delay = 5  # the refresh-ahead below is still waiting when we close
        clock.advance(55)  # inside the refresh-ahead window
        assert (await resolver.resolve(NAME)).ttl == 5
        assert leftover_tasks(), "a background refresh should be running"
        await resolver.aclose()
        assert leftover_tasks() == []

    asyncio.run(main())


def test_families_through_the_async_resolver(dns: DNSServer) -> None:
    async def main() -> None:
        async with AsyncResolver(config(dns)) as resolver:
            assert await resolver.resolve_addresses(NAME, socket.AF_INET6) == ["2001:db8::80"]
            assert await resolver.resolve_addresses(NAME, socket.AF_INET) == ["192.0.2.80"]
            assert await resolver.resolve_addresses(NAME) == ["192.0.2.80", "2001:db8::80"]
        assert leftover_tasks() == []

    asyncio.run(main())
    assert sorted(dns.queries) == [(f"{NAME}.", "A"), (f"{NAME}.", "AAAA")]
