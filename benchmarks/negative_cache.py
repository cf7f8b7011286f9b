"""7. Negative caching: when does a resolver see a record that was missing?

Why ``AsyncResolver`` does not go through c-ares (docs/asyncio.md). Each peer
asks AAAA for a name that has only an A record: ``DNSServer`` answers NODATA
with an SOA whose TTL and MINIMUM are ``NEGATIVE_TTL`` seconds. Then the AAAA
record is added, and every peer asks again every ``POLL`` seconds until it sees
the record or the horizon passes. RFC 2308 says the NODATA may be kept for the
SOA's TTL; c-ares' query cache keeps a NOERROR answer for the smallest TTL of
its records *other than the SOA*, which a NODATA does not have, so it keeps it
for ``qcache_max_ttl`` (3600 s by default), and pycares offers no way to change
or turn off that cache.

Every peer has its own name on one server and they poll side by side, so the
scenario lasts one horizon. Figures: seconds from the add to the first answer
with the record, and queries the server received for the name after the add.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from safedns import AsyncResolver, NameNotFound, ResolverConfig
from safedns.testing import DNSServer

from ._common import Context
from ._report import Column, PeerRow, ScenarioResult, fmt_count, fmt_ms

NAME = "negative_cache"
NEGATIVE_TTL = 1
POLL = 0.25
#: How long each peer is watched after the record is added, per size.
HORIZON = {"tiny": 3.0, "quick": 10.0, "full": 30.0}
ADDRESS = "2001:db8::77"

Ask = Callable[[str], Awaitable[str]]
NODATA = "NODATA"


class _Peer:
    def __init__(self, peer: str, label: str, ask: Ask, close: Callable[[], Awaitable[None]]):
        self.peer, self.label, self.ask, self.close = peer, label, ask, close


async def _safedns(nameserver: str) -> _Peer:
    resolver = AsyncResolver(ResolverConfig(nameservers=[nameserver], timeout=2, attempts=1))

    async def ask(name: str) -> str:
        try:
            return ",".join(await resolver.resolve_addresses(name, socket.AF_INET6))
        except NameNotFound:
            return NODATA

    return _Peer("safedns-async", "safedns AsyncResolver", ask, resolver.aclose)


async def _aiodns(nameserver: str, how: str) -> _Peer:
    import aiodns

    resolver = aiodns.DNSResolver(nameservers=[nameserver], timeout=2, tries=1)

    async def ask(name: str) -> str:
        try:
            if how == "query":
                result = await resolver.query_dns(name, "AAAA")
                return ",".join(str(rr.data.addr) for rr in result.answer)
            info = await resolver.getaddrinfo(name, family=socket.AF_INET6)
            return ",".join(node.addr[0].decode() for node in info.nodes)
        except aiodns.error.DNSError as exc:
            return NODATA if exc.args and exc.args[0] == aiodns.error.ARES_ENODATA else repr(exc)

    async def close() -> None:
        resolver.cancel()

    if how == "query":
        return _Peer("aiodns-query", "aiodns query_dns(name, 'AAAA') (c-ares)", ask, close)
    return _Peer("aiodns", "aiodns getaddrinfo (c-ares)", ask, close)


async def _aiohttp(nameserver: str) -> _Peer:
    from aiohttp.resolver import AsyncResolver as AiohttpAsyncResolver

    resolver = AiohttpAsyncResolver(nameservers=[nameserver], timeout=2, tries=1)

    async def ask(name: str) -> str:
        try:
            hosts = await resolver.resolve(name, 80, socket.AF_INET6)
        except OSError:
            return NODATA
        return ",".join(h["host"] for h in hosts)

    label = "aiohttp AsyncResolver (aiodns), use_dns_cache=False"
    return _Peer("aiohttp-async", label, ask, resolver.close)


async def _watch(peer: _Peer, name: str, added: asyncio.Event, horizon: float) -> dict[str, Any]:
    first = await peer.ask(name)
    await added.wait()
    start = time.monotonic()
    seen: float | None = None
    last = first
    while time.monotonic() - start < horizon:
        last = await peer.ask(name)
        if ADDRESS in last:
            seen = time.monotonic() - start
            break
        await asyncio.sleep(POLL)
    return {"first": first, "last": last, "seen_ms": None if seen is None else seen * 1000}


async def _run(ctx: Context, result: ScenarioResult) -> None:
    horizon = HORIZON.get(ctx.sizes.level, HORIZON["quick"])
    with DNSServer(negative_ttl=NEGATIVE_TTL) as server:
        makers: list[tuple[str, Callable[[], Awaitable[_Peer]]]] = [
            ("safedns-async", lambda: _safedns(server.nameserver)),
            ("aiodns", lambda: _aiodns(server.nameserver, "getaddrinfo")),
            ("aiodns-query", lambda: _aiodns(server.nameserver, "query")),
            ("aiohttp-async", lambda: _aiohttp(server.nameserver)),
        ]
        peers: list[_Peer] = []
        for peer_id, make in makers:
            try:
                peers.append(await make())
            except ImportError as exc:
                result.rows.append(
                    PeerRow(peer_id, peer_id, status="not available", reason=str(exc))
                )
        names = {p.peer: f"{p.peer}.example.com" for p in peers}
        for name in names.values():
            server.add(name, "A", "192.0.2.77")
        added = asyncio.Event()
        watches = [asyncio.ensure_future(_watch(p, names[p.peer], added, horizon)) for p in peers]
        # Every peer has its NODATA cached before the record appears.
        while len(server.queries) < len(peers):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        counted = len(server.query_log)
        for name in names.values():
            server.add(name, "AAAA", ADDRESS)
        added.set()
        outcomes = await asyncio.gather(*watches)
        after = server.query_log[counted:]
        for peer, outcome in zip(peers, outcomes, strict=True):
            await peer.close()
            queried = sum(1 for qname, _, _ in after if qname == names[peer.peer] + ".")
            values = {
                "seen_ms": outcome["seen_ms"]
                if outcome["seen_ms"] is not None
                else f"not within {horizon:g} s",
                "queries_after_add": queried,
                "before": outcome["first"],
                "at_end": outcome["last"],
            }
            result.rows.append(PeerRow(peer.peer, peer.label, values))
    import pycares

    options = inspect.signature(pycares.Channel.__init__).parameters
    result.params.update(
        {
            "negative_ttl_s": NEGATIVE_TTL,
            "poll_s": POLL,
            "horizon_s": horizon,
            "c_ares": getattr(pycares, "ARES_VERSION", "?"),
            "pycares": getattr(pycares, "__version__", "?"),
            "pycares_channel_has_qcache_option": any("qcache" in o for o in options),
        }
    )


def run(ctx: Context) -> ScenarioResult:
    result = ScenarioResult(
        NAME,
        "7. Negative caching: a record added after a NODATA (SOA TTL 1 s)",
        columns=[
            Column("before", "before the add"),
            Column("seen_ms", "record seen after", fmt_ms),
            Column("queries_after_add", "queries after the add", fmt_count),
            Column("at_end", "last answer"),
        ],
        reference="safedns-async",
    )
    asyncio.run(_run(ctx, result))
    result.notes.append(
        "c-ares caches a NOERROR answer for the smallest TTL among its records other "
        "than the SOA (ares_qcache.c); a NODATA has none, so it is kept for qcache_max_ttl, "
        "3600 s by default. pycares' Channel has no option to change or disable it "
        "(see params). NXDOMAIN is cached by the SOA's MINIMUM/TTL, as RFC 2308 says."
    )
    return result
