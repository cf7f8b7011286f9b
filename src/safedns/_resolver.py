"""The sync resolver: a thin shell of I/O and waiting around the shared core.

The core decides (``_planning.plan``, ``_cache`` policy, ``_singleflight``,
``_budget``, ``_records.interpret``); this module asks the cache, joins or
leads flights, spends budget, calls ``Upstream.exchange`` and publishes what
came back. Every front end (``resolve``, ``resolve_addresses``, the
``getaddrinfo`` drop-in) goes through ``Resolver._ask``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import dns.rdatatype

from safedns._budget import TokenBucket
from safedns._cache import DNSCache, Entry
from safedns._config import ResolverConfig
from safedns._exceptions import NameNotFound, TemporaryFailure
from safedns._planning import plan
from safedns._records import Answer, Negative, Positive, Result, UpstreamFailure, interpret
from safedns._singleflight import Flight, Flights
from safedns._stats import Counters, Stats
from safedns._upstream import QueryObserver, Upstream

__all__ = ["Resolver"]

Key = tuple[str, str]

_FAMILY_TYPES: dict[int, tuple[str, ...]] = {
    socket.AF_UNSPEC: ("A", "AAAA"),
    socket.AF_INET: ("A",),
    socket.AF_INET6: ("AAAA",),
}
_BUDGET_SPENT = "query budget exhausted"


@dataclass(frozen=True, slots=True)
class Got:
    """The outcome of one question: a result, and how it was obtained."""

    result: Result
    expires: float
    refresh_at: float
    from_cache: bool
    stale: bool


Outcome = Got | UpstreamFailure
_Batch = list[tuple[Key, Flight[Entry]]]


def _rdtype_text(rdtype: str) -> str:
    if not isinstance(rdtype, str):
        raise TypeError(f"rdtype must be a str such as 'A', not {type(rdtype).__name__}")
    try:
        return dns.rdatatype.to_text(dns.rdatatype.from_text(rdtype))
    except dns.rdatatype.UnknownRdatatype:
        raise ValueError(f"unknown record type {rdtype!r}") from None


_all_resolvers: weakref.WeakSet[Resolver] = weakref.WeakSet()


class Resolver:
    """A caching, thread-safe stub resolver.

    ``config`` defaults to ``ResolverConfig.from_system()``. ``clock`` is a
    monotonic clock in seconds (inject one to test TTLs without sleeping).
    ``on_query(server, qname, rdtype, transport)`` is called for every query
    sent upstream. ``close()`` (or ``with``) stops background refreshes.
    """

    def __init__(
        self,
        config: ResolverConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_query: QueryObserver | None = None,
    ) -> None:
        self.config = config if config is not None else ResolverConfig.from_system()
        self._clock = clock
        self._on_query = on_query
        self._counters = Counters()
        self._cache = DNSCache(self.config, clock)
        self._init_runtime()
        # A memo of finished positive answers by the caller's own (name, type):
        # a hit is one dict lookup and one clock read.
        self._fast: dict[tuple[object, str], tuple[Answer, float]] = {}
        _all_resolvers.add(self)

    def _init_runtime(self) -> None:
        """Locks, flights, sockets, threads: everything a forked child must
        not inherit."""
        self._flights: Flights[Key, Entry] = Flights()
        self._budget = TokenBucket(
            self.config.upstream_qps, self.config.upstream_burst, self._clock()
        )
        self._upstream = Upstream(self.config, self._clock, on_query=self._observe)
        self._failed_until: dict[Key, float] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._closed = False

    def _after_fork(self) -> None:
        self._cache.after_fork()
        self._init_runtime()

    # -- public API ---------------------------------------------------------

    def resolve(self, name: str | bytes, rdtype: str = "A") -> Answer:
        """Resolve ``name`` (walking the search list as planned) for one type.

        Raises ``NameNotFound``, ``TemporaryFailure`` or ``InvalidName``.
        """
        try:
            memo = self._fast.get((name, rdtype))
        except TypeError:
            memo = None
        if memo is not None and self._clock() < memo[1]:
            self._counters.lookups.inc()
            self._counters.cache_hits.inc()
            return memo[0]
        return self._resolve(name, rdtype)

    def resolve_addresses(self, name: str | bytes, family: int = socket.AF_UNSPEC) -> list[str]:
        """The addresses of ``name``: A and AAAA asked together (``AF_UNSPEC``),
        or one family. IPv4 first."""
        answers = self.lookup_addresses(name, family)
        return [address for answer in answers for address in answer.addresses]

    def lookup_addresses(self, name: str | bytes, family: int = socket.AF_UNSPEC) -> list[Answer]:
        """Like ``resolve_addresses`` but returns the ``Answer`` of each type that
        had data (A before AAAA), all for the same candidate name."""
        try:
            rdtypes = _FAMILY_TYPES[family]
        except (KeyError, TypeError):
            raise ValueError(
                f"family must be AF_UNSPEC, AF_INET or AF_INET6, got {family!r}"
            ) from None
        self._counters.lookups.inc()
        candidate, gots = self._walk(name, rdtypes)
        return [
            self._answer(candidate, rdtype, got)
            for rdtype, got in zip(rdtypes, gots, strict=False)
            if isinstance(got, Got) and isinstance(got.result, Positive)
        ]

    def stats(self) -> Stats:
        positive, negative = self._cache.sizes()
        return self._counters.snapshot(positive, negative)

    def flush(self, name: str | None = None) -> None:
        """Forget cached answers: all of them, or those of one absolute name."""
        self._fast.clear()
        if name is None:
            self._cache.clear()
        else:
            self._cache.remove(name.lower() if name.endswith(".") else name.lower() + ".")

    def close(self) -> None:
        """Stop background work and wait for it. The resolver still answers
        afterwards, without refresh-ahead or background queries."""
        self._closed = True
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Resolver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Resolver nameservers={list(self.config.nameservers)}>"

    # -- the walk over candidate names -------------------------------------

    def _resolve(self, name: str | bytes, rdtype: str) -> Answer:
        self._counters.lookups.inc()
        rdtype_text = _rdtype_text(rdtype)
        candidate, gots = self._walk(name, (rdtype_text,))
        got = gots[0]
        assert isinstance(got, Got) and isinstance(got.result, Positive)
        answer = self._answer(candidate, rdtype_text, got)
        if not got.stale:
            cached = (
                answer
                if answer.from_cache
                else self._answer(
                    candidate,
                    rdtype_text,
                    Got(got.result, got.expires, got.refresh_at, True, False),
                )
            )
            if len(self._fast) >= self.config.max_entries:
                self._fast.clear()
            with contextlib.suppress(TypeError):
                self._fast[(name, rdtype)] = (cached, got.refresh_at)
        return answer

    def _walk(self, name: str | bytes, rdtypes: Sequence[str]) -> tuple[str, list[Outcome]]:
        """Ask each planned candidate name for ``rdtypes`` (together) until one
        has data. Returns the candidate and its outcomes; raises
        ``NameNotFound`` when no candidate has data, ``TemporaryFailure`` when
        upstream fails before one does."""
        nxdomain = True
        display = name.decode("ascii", "replace") if isinstance(name, bytes) else str(name)
        for candidate in plan(name, self.config):
            gots = self._ask([(candidate, rdtype) for rdtype in rdtypes])
            if any(isinstance(g, Got) and isinstance(g.result, Positive) for g in gots):
                return candidate, gots
            failure = next((g for g in gots if isinstance(g, UpstreamFailure)), None)
            if failure is not None:
                raise TemporaryFailure(display, "/".join(rdtypes), failure.reason)
            nxdomain = nxdomain and all(
                isinstance(g, Got) and isinstance(g.result, Negative) and g.result.nxdomain
                for g in gots
            )
        raise NameNotFound(display, "/".join(rdtypes), nxdomain=nxdomain)

    def _answer(self, candidate: str, rdtype: str, got: Got) -> Answer:
        result = got.result
        assert isinstance(result, Positive)
        return Answer(
            candidate,
            rdtype,
            result.records,
            result.canonical_name,
            got.expires,
            self._clock,
            from_cache=got.from_cache,
            stale=got.stale,
        )

    # -- one batch of questions: cache, flights, budget, upstream ----------

    def _ask(self, questions: Sequence[Key]) -> list[Outcome]:
        """One outcome per question, from the cache, another caller's flight,
        or upstream (every question this call leads goes out together)."""
        counters = self._counters
        now = self._clock()
        outcomes: list[Outcome | None] = [None] * len(questions)
        stale: list[Entry | None] = [None] * len(questions)
        led: list[tuple[int, Flight[Entry]]] = []
        followed: list[tuple[int, Flight[Entry]]] = []
        for i, key in enumerate(questions):
            entry = self._cache.get(key[0], key[1], now)
            if entry is not None and entry.fresh(now):
                if isinstance(entry.result, Positive):
                    counters.cache_hits.inc()
                else:
                    counters.negative_hits.inc()
                if now >= entry.refresh_at:
                    self._prefetch(key)
                outcomes[i] = Got(entry.result, entry.expires, entry.refresh_at, True, False)
                continue
            counters.cache_misses.inc()
            stale[i] = entry
            if entry is not None and self._failed_until.get(key, 0.0) > now:
                # Upstream failed for this question lately: do not ask again yet.
                outcomes[i] = self._serve_stale(entry, now)
                continue
            flight, leader = self._flights.begin(key, time.monotonic())
            if leader:
                led.append((i, flight))
            else:
                counters.coalesced.inc()
                followed.append((i, flight))

        if led:
            self._lead(questions, led, stale, outcomes)
        for i, flight in followed:
            outcomes[i] = self._follow(flight, stale[i])

        return [o if o is not None else UpstreamFailure("no outcome") for o in outcomes]

    def _lead(
        self,
        questions: Sequence[Key],
        led: list[tuple[int, Flight[Entry]]],
        stale: list[Entry | None],
        outcomes: list[Outcome | None],
    ) -> None:
        now = self._clock()
        send: list[tuple[Key, Flight[Entry]]] = []
        for i, flight in led:
            key = questions[i]
            if self._budget.try_acquire(now):
                send.append((key, flight))
            else:
                self._counters.budget_denied.inc()
                self._flights.finish(key, flight, None, UpstreamFailure(_BUDGET_SPENT))
        if send:
            has_stale = any(stale[i] is not None for i, _ in led)
            timeout = self.config.stale_response_timeout
            if has_stale and timeout > 0 and self._submit(self._refresh, send):
                # Stale data is on hand: wait a little, then serve it and let the
                # query finish in the background (RFC 8767 client response timer).
                deadline = time.monotonic() + timeout  # real time: we wait on sockets
                for _, flight in send:
                    flight.wait(max(0.0, deadline - time.monotonic()))
            else:
                self._exchange(send)
        for i, flight in led:
            outcomes[i] = self._outcome(flight, stale[i])

    def _follow(self, flight: Flight[Entry], stale: Entry | None) -> Outcome:
        if stale is not None and self.config.stale_response_timeout > 0:
            # The client response timer runs from when the query went out.
            timeout = flight.started + self.config.stale_response_timeout - time.monotonic()
            flight.wait(max(0.0, timeout))
        else:
            flight.wait(self._max_exchange_time())
        return self._outcome(flight, stale)

    def _outcome(self, flight: Flight[Entry], stale: Entry | None) -> Outcome:
        if flight.done.is_set() and flight.result is not None:
            entry = flight.result
            return Got(entry.result, entry.expires, entry.refresh_at, False, False)
        if stale is not None:
            return self._serve_stale(stale, self._clock())
        if flight.done.is_set() and isinstance(flight.error, UpstreamFailure):
            return flight.error
        return UpstreamFailure("timed out waiting for another lookup of the same name")

    def _serve_stale(self, entry: Entry, now: float) -> Got:
        self._counters.stale_served.inc()
        expires = now + self.config.stale_answer_ttl
        return Got(entry.result, expires, expires, True, True)

    def _max_exchange_time(self) -> float:
        config = self.config
        return config.timeout * config.attempts * (len(config.nameservers) + 1) + 1.0

    def _refresh(self, send: _Batch) -> None:
        """A background query for data we can already serve (stale or about to
        expire): one try per nameserver, so a dead server is not hammered."""
        self._exchange(send, attempts=1)

    def _exchange(self, send: _Batch, attempts: int | None = None) -> None:
        """Send the questions upstream, cache what comes back and finish their
        flights. Always finishes every flight, whatever happens."""
        finished: set[int] = set()
        try:
            responses = self._upstream.exchange([key for key, _ in send], attempts)
            now = self._clock()
            for j, ((qname, rdtype), flight) in enumerate(send):
                response = responses[j]
                if isinstance(response, UpstreamFailure):
                    self._counters.upstream_errors.inc()
                    self._note_failure((qname, rdtype), now)
                    self._flights.finish((qname, rdtype), flight, None, response)
                    finished.add(j)
                    continue
                try:
                    results = interpret(response, qname, rdtype)
                except UpstreamFailure as failure:
                    self._counters.upstream_errors.inc()
                    self._flights.finish((qname, rdtype), flight, None, failure)
                    finished.add(j)
                    continue
                self._failed_until.pop((qname, rdtype), None)
                entry: Entry | None = None
                for name, result in results:
                    stored = self._cache.put(name, rdtype, result, now)
                    if entry is None:
                        entry = stored or self._cache.make_entry(result, now)
                self._flights.finish((qname, rdtype), flight, entry)
                finished.add(j)
        except BaseException as exc:
            for j, (key, flight) in enumerate(send):
                if j not in finished:
                    self._flights.finish(
                        key, flight, None, UpstreamFailure(f"internal error: {exc!r}")
                    )
            raise

    def _note_failure(self, key: Key, now: float) -> None:
        failed = self._failed_until
        if len(failed) >= self.config.max_negative_entries:
            for old in [k for k, until in failed.items() if until <= now]:
                failed.pop(old, None)
            if len(failed) >= self.config.max_negative_entries:
                failed.clear()
        failed[key] = now + self.config.failure_recheck

    def _prefetch(self, key: Key) -> None:
        """Refresh ``key`` in the background (once at a time), budget allowing."""
        if self._closed or self._flights.in_flight(key):
            return
        if not self._budget.try_acquire(self._clock()):
            return
        flight, leader = self._flights.begin(key, time.monotonic())
        if not leader:
            return
        self._counters.prefetches.inc()
        if not self._submit(self._refresh, [(key, flight)]):
            self._flights.finish(key, flight, None, UpstreamFailure("resolver closed"))

    def _submit(
        self,
        fn: Callable[[list[tuple[Key, Flight[Entry]]]], None],
        arg: list[tuple[Key, Flight[Entry]]],
    ) -> bool:
        with self._executor_lock:
            if self._closed:
                return False
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="safedns")
            try:
                self._executor.submit(fn, arg)
            except RuntimeError:  # interpreter shutting down
                return False
        return True

    def _observe(self, server: str, qname: str, rdtype: str, transport: str) -> None:
        self._counters.upstream_queries.inc()
        if self._on_query is not None:
            self._on_query(server, qname, rdtype, transport)


def _reinit_after_fork() -> None:
    for resolver in list(_all_resolvers):
        resolver._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
