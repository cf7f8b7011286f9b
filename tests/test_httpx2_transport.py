"""safedns.httpx2: the httpx transports, made from the same source for httpx2
and httpcore2 (issue 17 §5), against real servers. The behaviours that matter
are checked on both flavours side by side: reuse and few DNS queries,
following a DNS change, the retry budget, a black-holed first address."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import httpx2
import pytest

import safedns
import safedns.httpx
import safedns.httpx2
from safedns.testing import DNSServer

from .adapterkit import dns, hole_then_live, make_resolver, timed_gets
from .httpservers import Backend, backends, wait_for

__all__ = ["dns"]  # fixtures

NAME = "svc.example.com"
FLAVOURS = [
    pytest.param((httpx, safedns.httpx), id="httpx"),
    pytest.param((httpx2, safedns.httpx2), id="httpx2"),
]


def test_the_twin_is_made_of_the_same_source() -> None:
    sources = sorted(safedns.httpx2.SOURCE.glob("_*.py"))
    assert {p.name for p in sources} >= {"_common.py", "_core.py", "_sync.py", "_async.py"}
    used = set()
    for path in sources:
        text = path.read_text()
        twin = safedns.httpx2.twin_source(text)
        for i, (pattern, _) in enumerate(safedns.httpx2.REWRITES):
            if pattern.search(text):
                used.add(i)
        # Nothing of httpx itself is left in a twin.
        assert "\nimport httpx\n" not in twin and "\nimport httpcore\n" not in twin
        assert "safedns.httpx." not in twin
    assert used == set(range(len(safedns.httpx2.REWRITES)))  # every rewrite does something
    assert Path(safedns.httpx2.SafeTransport.__mro__[0].__init__.__code__.co_filename).parent == (
        safedns.httpx2.SOURCE
    )
    assert issubclass(safedns.httpx2.SafeTransport, httpx2.HTTPTransport)
    assert issubclass(safedns.httpx2.AsyncSafeTransport, httpx2.AsyncHTTPTransport)
    assert not issubclass(safedns.httpx2.SafeTransport, httpx.HTTPTransport)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_reuse_and_few_queries(dns: DNSServer, flavour: tuple[ModuleType, Any]) -> None:
    client_mod, adapter = flavour
    dns.add(NAME, "A", "127.0.0.2", ttl=1)
    with make_resolver(dns) as resolver, backends("127.0.0.2") as (server,):
        started = time.monotonic()
        with client_mod.Client(transport=adapter.SafeTransport(resolver=resolver)) as client:
            for _ in range(200):
                assert client.get(server.url(NAME)).status_code == 200
        elapsed = time.monotonic() - started
        assert server.accepted <= 2
        assert dns.query_count <= 2 * (2 + elapsed)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_following_a_dns_change(dns: DNSServer, flavour: tuple[ModuleType, Any]) -> None:
    client_mod, adapter = flavour
    dns.add(NAME, "A", "127.0.0.2", ttl=1)
    with make_resolver(dns) as resolver, backends("127.0.0.2", "127.0.0.3") as (old, new):
        with client_mod.Client(transport=adapter.SafeTransport(resolver=resolver)) as client:
            assert client.get(old.url(NAME)).text == "127.0.0.2"
            dns.remove(NAME)
            dns.add(NAME, "A", "127.0.0.3", ttl=1)
            moved_at = time.monotonic()
            assert wait_for(lambda: client.get(old.url(NAME)).text == "127.0.0.3", 3.0)
            assert time.monotonic() - moved_at < 3.0
            client.get(old.url(NAME))
            assert wait_for(lambda: old.open_connections == 0, 0.5)
        assert new.request_count >= 1


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_the_retry_budget_and_posts(dns: DNSServer, flavour: tuple[ModuleType, Any]) -> None:
    client_mod, adapter = flavour
    dns.add(NAME, "A", "127.0.0.2", ttl=60)
    with make_resolver(dns) as resolver, backends("127.0.0.2", status=503) as (server,):
        transport = adapter.SafeTransport(
            resolver=resolver, retry=safedns.RetryPolicy(attempts=4, backoff=0)
        )
        started = time.monotonic()
        with client_mod.Client(transport=transport) as client:
            assert {client.get(server.url(NAME)).status_code for _ in range(500)} == {503}
            elapsed = time.monotonic() - started
            assert server.request_count <= 650 + 10 * elapsed
            server.requests.clear()
            for _ in range(10):
                assert client.post(server.url(NAME), content=b"x").status_code == 503
        assert server.request_count == 10


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_black_holed_first_address_async(dns: DNSServer, flavour: tuple[ModuleType, Any]) -> None:
    client_mod, adapter = flavour

    async def main(live: Backend, resolver: safedns.Resolver) -> list[float]:
        async with safedns.AsyncResolver(resolver=resolver) as aresolver:
            transport = adapter.AsyncSafeTransport(
                resolver=aresolver, limits=client_mod.Limits(max_keepalive_connections=0)
            )
            async with client_mod.AsyncClient(transport=transport, timeout=5) as client:
                return await timed_gets(client, live.url(NAME))

    with make_resolver(dns) as resolver:
        hole, live = hole_then_live(resolver, dns)
        with hole, live:
            times = asyncio.run(main(live, resolver))
    assert max(times) < 0.6, times
