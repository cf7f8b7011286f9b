"""Counters, and the ``Stats`` snapshot that ``Resolver.stats()`` returns.

Counters are bumped on the hot path from many threads, so each is an
``itertools.count``: ``inc()`` is its ``__next__``, atomic in CPython, a few
tens of nanoseconds, no lock. Reading one takes a number from the same
``count`` (under a lock, so reads do not race each other) and subtracts the
reads made before: nothing parses a ``repr``.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any

from safedns._metrics import Histogram, ServerHealth

__all__ = ["Counter", "Counters", "Stats"]


@dataclass(frozen=True)
class Stats:
    """A snapshot of a resolver's counters.

    - ``lookups``: calls of ``resolve``/``resolve_addresses``/``getaddrinfo``
      (the drop-in's, ``async_getaddrinfo`` and a patched event loop's too:
      one answered from the drop-in's finished results is a lookup and a
      cache hit; one that waited for an identical call is a lookup and
      coalesced).
    - ``cache_hits`` / ``negative_hits``: questions answered by a fresh
      positive / negative cache entry; ``cache_misses``: questions not.
    - ``upstream_queries``: questions sent to a nameserver (each try counts);
      ``upstream_errors``: questions that upstream failed (timeout, SERVFAIL,
      REFUSED, network error).
    - ``coalesced``: questions that waited for another caller's query (in
      ``AsyncResolver``, a lookup that waited for another caller's identical
      lookup counts once).
    - ``stale_served``: answers served stale (RFC 8767).
    - ``prefetches``: background refreshes started (refresh-ahead);
      ``refreshes``: every question refreshed in the background, the
      prefetches plus the stale answers refreshed after the client response
      timer (RFC 8767).
    - ``budget_waits``: questions that waited for a budget token (and then
      went upstream); ``budget_denied``: questions the budget refused (their
      wait would have been longer than ``budget_wait``, or stale data was
      served instead), and retransmissions or TCP retries not sent for want
      of a token.
    - ``entries`` / ``negative_entries``: what the cache holds now;
      ``evictions`` / ``negative_evictions``: entries dropped to make room
      (least recently used first; expiry and replacement are not counted).
    - ``upstream_queries_by_type``: queries sent, by record type;
      ``upstream_queries_by_result``: what became of each query sent: the
      RCODE of its reply (``NOERROR``, ``NXDOMAIN``, ``SERVFAIL``,
      ``REFUSED``, ...), ``truncated``, ``timeout``, ``network_error`` or
      ``malformed``.
    - ``upstream_latency_seconds``: a ``Histogram`` of the time from query
      to reply, one observation per reply.
    - ``server_health``: a ``ServerHealth`` per nameserver (``"host:port"``):
      backed off or not, queries, responses, timeouts, errors, and its latest
      reply's round trip and age.
    - ``bypassing_modules``: how many modules loaded in this process resolve
      names outside safedns (``safedns.bypasses()`` names them); the same in
      every resolver's snapshot.
    """

    lookups: int = 0
    cache_hits: int = 0
    negative_hits: int = 0
    cache_misses: int = 0
    upstream_queries: int = 0
    upstream_errors: int = 0
    coalesced: int = 0
    stale_served: int = 0
    prefetches: int = 0
    budget_denied: int = 0
    budget_waits: int = 0
    refreshes: int = 0
    entries: int = 0
    negative_entries: int = 0
    evictions: int = 0
    negative_evictions: int = 0
    upstream_queries_by_type: dict[str, int] = field(default_factory=dict)
    upstream_queries_by_result: dict[str, int] = field(default_factory=dict)
    upstream_latency_seconds: Histogram = field(default_factory=Histogram)
    server_health: dict[str, ServerHealth] = field(default_factory=dict)
    bypassing_modules: int = 0


#: The fields read from elsewhere when a snapshot is taken (the cache, the
#: upstream metrics); every other field is a ``Counters`` counter.
_OBSERVED = frozenset(
    {
        "entries",
        "negative_entries",
        "evictions",
        "negative_evictions",
        "upstream_queries_by_type",
        "upstream_queries_by_result",
        "upstream_latency_seconds",
        "server_health",
        "bypassing_modules",
    }
)
_COUNTED = tuple(f.name for f in fields(Stats) if f.name not in _OBSERVED)


class Counter:
    """A thread-safe event counter: ``inc()`` (a few tens of ns), ``value``.

    ``next(counter.ticks)`` counts one too, a little faster than ``inc()`` (no
    method-wrapper call): for the hottest paths."""

    __slots__ = ("_count", "_lock", "_reads", "inc", "ticks")

    def __init__(self) -> None:
        self._count = itertools.count()
        #: Numbers ``value`` took from ``_count`` itself.
        self._reads = 0
        self._lock = threading.Lock()
        self.inc = self._count.__next__
        self.ticks: Iterator[int] = self._count

    @property
    def value(self) -> int:
        """How many times ``inc()`` ran: ``_count`` hands out every number once,
        to an ``inc()`` or a read, so the next number, less the reads before
        this one, is the number of ``inc()`` calls."""
        with self._lock:
            taken = next(self._count)
            self._reads += 1
            return taken - (self._reads - 1)


class Counters:
    """One counter per field of ``Stats``: ``counters.cache_hits.inc()``.

    ``memo_hits`` counts the lookups a memoised answer served, each both a
    lookup and a cache hit (one increment on the hottest path, not two), also
    those the getaddrinfo drop-in answers from its finished results;
    ``joined`` the lookups that waited for another caller's identical lookup,
    each both a lookup and a coalesced one."""

    #: Extra counters, and the ``Stats`` fields each one also counts in.
    FOLDED = {"memo_hits": ("lookups", "cache_hits"), "joined": ("lookups", "coalesced")}

    def __init__(self) -> None:
        for name in (*_COUNTED, *self.FOLDED):
            setattr(self, name, Counter())

    lookups: Counter
    cache_hits: Counter
    negative_hits: Counter
    cache_misses: Counter
    upstream_queries: Counter
    upstream_errors: Counter
    coalesced: Counter
    stale_served: Counter
    prefetches: Counter
    budget_denied: Counter
    budget_waits: Counter
    refreshes: Counter
    memo_hits: Counter
    joined: Counter

    def snapshot(self, **observed: Any) -> Stats:
        """The counters, plus the ``observed`` fields (cache sizes, ...)."""
        values = {name: getattr(self, name).value for name in _COUNTED}
        for name, into in self.FOLDED.items():
            value = getattr(self, name).value
            for counted in into:
                values[counted] += value
        return Stats(**values, **observed)
