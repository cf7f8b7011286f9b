"""Counters, and the ``Stats`` snapshot that ``Resolver.stats()`` returns.

Counters are bumped on the hot path from many threads, so each is an
``itertools.count`` (``next`` on it is atomic in CPython and costs a few tens
of nanoseconds; no lock).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, fields

__all__ = ["Counters", "Stats"]


@dataclass(frozen=True)
class Stats:
    """A snapshot of a resolver's counters.

    - ``lookups``: calls of ``resolve``/``resolve_addresses``/``getaddrinfo``.
    - ``cache_hits`` / ``negative_hits``: questions answered by a fresh
      positive / negative cache entry; ``cache_misses``: questions not.
    - ``upstream_queries``: questions sent to a nameserver (each try counts);
      ``upstream_errors``: questions that upstream failed (timeout, SERVFAIL,
      REFUSED, network error).
    - ``coalesced``: questions that waited for another caller's query.
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


class _Counter:
    __slots__ = ("_count", "inc")

    def __init__(self) -> None:
        self._count = itertools.count()
        self.inc = self._count.__next__

    @property
    def value(self) -> int:
        # repr is "count(N)": the next value, i.e. how many times inc() ran.
        return int(repr(self._count)[6:-1])


class Counters:
    """One counter per field of ``Stats``: ``counters.cache_hits.inc()``."""

    def __init__(self) -> None:
        for name in _COUNTED:
            setattr(self, name, _Counter())

    lookups: _Counter
    cache_hits: _Counter
    negative_hits: _Counter
    cache_misses: _Counter
    upstream_queries: _Counter
    upstream_errors: _Counter
    coalesced: _Counter
    stale_served: _Counter
    prefetches: _Counter
    budget_denied: _Counter
    budget_waits: _Counter

    def snapshot(self, entries: int, negative_entries: int) -> Stats:
        values = {name: getattr(self, name).value for name in _COUNTED}
        return Stats(**values, entries=entries, negative_entries=negative_entries)
