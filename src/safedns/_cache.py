"""Cache policy and the cache itself.

Policy is pure arithmetic on a ``ResolverConfig`` (``entry_ttl``); the store
(``DNSCache``) is a pair of bounded LRU maps (cachetools) with an injected
clock, so TTL tests never sleep.

Both maps count their LRU evictions (entries dropped to make room, not
those that expired or were replaced): ``evictions()``.

Keys are ``(absolute name, type)``. Positive answers and NODATA live under
their type; NXDOMAIN lives under ``(name, NXDOMAIN_KEY)`` and answers every
type of that name (RFC 2308 §5), except where it contradicts data: a negative
answer never removes or shadows data of another type that is still within
its TTL (``get`` prefers such data; an NXDOMAIN that arrives beside fresh
addresses of the name is kept as NODATA for its own type only). Negative
entries have their own capacity (``max_negative_entries``), so a flood of
random missing names can neither grow memory without bound nor evict the
names the application uses.

An entry is *fresh* while ``now < expires``, *stale* (kept for RFC 8767
serve-stale) while ``now < expires + stale_ttl``, and gone after that.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache

from safedns._config import ResolverConfig
from safedns._records import Negative, Positive, Result

__all__ = ["NXDOMAIN_KEY", "DNSCache", "Entry", "bounded_put", "entry_ttl"]

#: The type slot under which an NXDOMAIN for a name is stored.
NXDOMAIN_KEY = "*"

Key = tuple[str, str]


def entry_ttl(result: Result, config: ResolverConfig) -> float:
    """How long ``result`` may be served as fresh, in seconds.

    Positive: its smallest TTL clamped to ``[min_ttl, max_ttl]``. Negative:
    min(SOA TTL, SOA MINIMUM) capped at ``max_negative_ttl`` (RFC 2308), or
    ``negative_ttl_no_soa`` when the response had no SOA (0 = do not cache).
    """
    if isinstance(result, Positive):
        return min(max(result.ttl, config.min_ttl), config.max_ttl)
    if result.soa_ttl is None:
        return config.negative_ttl_no_soa
    return max(0.0, min(result.soa_ttl, config.max_negative_ttl))


@dataclass(frozen=True, slots=True)
class Entry:
    """One cached result. Times are on the cache's clock."""

    result: Result
    expires: float
    #: When a hit should trigger a background refresh (refresh-ahead).
    refresh_at: float

    def fresh(self, now: float) -> bool:
        return now < self.expires


class _CountingLRU(LRUCache[Key, Entry]):
    """An ``LRUCache`` that counts its evictions (``popitem`` is what
    cachetools calls to make room; reads are not touched)."""

    evicted = 0

    def popitem(self) -> tuple[Key, Entry]:
        item = super().popitem()
        self.evicted += 1
        return item

    def clear(self) -> None:
        evicted = self.evicted  # older cachetools clear() by popitem()
        super().clear()
        self.evicted = evicted


class DNSCache:
    """A thread-safe, bounded DNS cache shared by every front end of a resolver."""

    def __init__(self, config: ResolverConfig, clock: Callable[[], float]) -> None:
        self._config = config
        self._clock = clock
        self._positive = _CountingLRU(config.max_entries)
        self._negative = _CountingLRU(config.max_negative_entries)
        self._lock = threading.Lock()

    def make_entry(self, result: Result, now: float) -> Entry:
        config = self._config
        ttl = entry_ttl(result, config)
        expires = now + ttl
        refresh_at = expires - ttl * config.prefetch_ratio if config.prefetch else expires
        return Entry(result, expires, refresh_at)

    def get(self, name: str, rdtype: str, now: float) -> Entry | None:
        """The entry for (name, rdtype), fresh or stale, or None.

        A fresh entry is preferred to a stale one; an NXDOMAIN for the name
        counts for every type.
        """
        found: list[Entry] = []
        stale_ttl = self._config.stale_ttl
        with self._lock:
            for store, key in (
                (self._positive, (name, rdtype)),
                (self._negative, (name, rdtype)),
                (self._negative, (name, NXDOMAIN_KEY)),
            ):
                entry = store.get(key)
                if entry is None:
                    continue
                if now >= entry.expires + stale_ttl:  # past serving even stale
                    del store[key]
                elif store is self._positive and now < entry.expires:
                    return entry  # data within its TTL: no negative shadows it
                else:
                    found.append(entry)
        if not found:
            return None
        if len(found) == 1:
            return found[0]
        # Stale data beside a negative, or an NXDOMAIN beside a NODATA: prefer
        # fresh, then the later expiry.
        return max(found, key=lambda e: (now < e.expires, e.expires))

    def put(self, name: str, rdtype: str, result: Result, now: float) -> Entry | None:
        """Store ``result``; returns its entry, or None when policy says not to
        cache it (a TTL of 0 and no stale window)."""
        entry = self.make_entry(result, now)
        if entry.expires + self._config.stale_ttl <= now:
            return None
        positive, negative = self._positive, self._negative
        with self._lock:
            if isinstance(result, Positive) or not result.nxdomain:
                # The name exists: no NXDOMAIN for it any more.
                negative.pop((name, NXDOMAIN_KEY), None)
                if isinstance(result, Positive):
                    positive[(name, rdtype)] = entry
                    negative.pop((name, rdtype), None)
                else:
                    negative[(name, rdtype)] = entry
                    positive.pop((name, rdtype), None)
            else:
                positive.pop((name, rdtype), None)
                negative.pop((name, rdtype), None)
                if self._has_fresh_addresses(name, rdtype, now):
                    # The name has data still within its TTL (A beside an
                    # NXDOMAIN for AAAA from a broken middlebox): the data
                    # wins, and this answer is kept as NODATA for its own
                    # type only.
                    assert isinstance(result, Negative)
                    nodata = Negative(False, result.canonical_name, result.soa_ttl)
                    entry = Entry(nodata, entry.expires, entry.refresh_at)
                    negative[(name, rdtype)] = entry
                else:
                    negative[(name, NXDOMAIN_KEY)] = entry
                    for key in {(name, "A"), (name, "AAAA")}:
                        positive.pop(key, None)  # stale only: past their TTL
                        negative.pop(key, None)
        return entry

    def _has_fresh_addresses(self, name: str, rdtype: str, now: float) -> bool:
        """True when an address type of ``name`` other than ``rdtype`` has data
        within its TTL. Lock held."""
        for other in ("A", "AAAA"):
            entry = self._positive.get((name, other)) if other != rdtype else None
            if entry is not None and now < entry.expires:
                return True
        return False

    def remove(self, name: str, rdtype: str | None = None) -> None:
        """Forget one question, or every type of ``name`` when rdtype is None."""
        with self._lock:
            for store in (self._positive, self._negative):
                for key in [k for k in store if k[0] == name and rdtype in (None, k[1])]:
                    del store[key]
            if rdtype is None:
                self._negative.pop((name, NXDOMAIN_KEY), None)

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (the parent's may be held by a
        thread that does not exist here). The entries stay."""
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._positive.clear()
            self._negative.clear()

    def evictions(self) -> tuple[int, int]:
        """(positive, negative) entries evicted so far to make room."""
        with self._lock:
            return self._positive.evicted, self._negative.evicted

    def sizes(self) -> tuple[int, int]:
        """(positive entries, negative entries), stale ones included."""
        with self._lock:
            return len(self._positive), len(self._negative)


def bounded_put(table: dict[Any, Any], key: object, value: object, limit: int) -> None:
    """``table[key] = value`` as the newest entry; when the table is full the
    oldest entry goes, one at a time (never all at once, so names do not all
    miss together). Safe against other threads writing the same table."""
    table.pop(key, None)
    while len(table) >= limit:
        try:
            table.pop(next(iter(table)), None)
        except (RuntimeError, StopIteration):  # changed under us: look again
            continue
    table[key] = value
