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
from dataclasses import dataclass, fields

__all__ = ["Counter", "Counters", "Stats"]


@dataclass(frozen=True)
class Stats:
    """A snapshot of a resolver's counters.

    - ``lookups``: calls of ``resolve``/``resolve_addresses``/``getaddrinfo``.
    - ``cache_hits`` / ``negative_hits``: questions answered by a fresh
      positive / negative cache entry; ``cache_misses``: questions not.
    - ``upstream_queries``: questions sent to a nameserver (each try counts);
      ``upstream_errors``: questions that upstream failed (timeout, SERVFAIL,
      REFUSED, network error).
    - ``coalesced``: questions that waited for another caller's query (in
      ``AsyncResolver``, a lookup that waited for another caller's identical
      lookup counts once).
    - ``stale_served``: answers served stale (RFC 8767).
    - ``prefetches``: background refreshes started (refresh-ahead).
    - ``budget_waits``: questions that waited for a budget token (and then
      went upstream); ``budget_denied``: questions the budget refused (their
      wait would have been longer than ``budget_wait``, or stale data was
      served instead).
    - ``entries`` / ``negative_entries``: what the cache holds now.
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
    entries: int = 0
    negative_entries: int = 0


_COUNTED = tuple(f.name for f in fields(Stats) if f.name not in ("entries", "negative_entries"))


class Counter:
    """A thread-safe event counter: ``inc()`` (a few tens of ns), ``value``."""

    __slots__ = ("_count", "_lock", "_reads", "inc")

    def __init__(self) -> None:
        self._count = itertools.count()
        #: Numbers ``value`` took from ``_count`` itself.
        self._reads = 0
        self._lock = threading.Lock()
        self.inc = self._count.__next__

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
    lookup and a cache hit (one increment on the hottest path, not two)."""

    #: Extra counters, and the ``Stats`` fields each one also counts in.
    FOLDED = {"memo_hits": ("lookups", "cache_hits")}

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
    memo_hits: Counter

    def snapshot(self, entries: int, negative_entries: int) -> Stats:
        values = {name: getattr(self, name).value for name in _COUNTED}
        for name, into in self.FOLDED.items():
            value = getattr(self, name).value
            for field in into:
                values[field] += value
        return Stats(**values, entries=entries, negative_entries=negative_entries)
