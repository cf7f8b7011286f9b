"""The sync resolver: a thin shell of threads and sockets around ``Core``.

The core decides (cache, budget, failures, the search-list walk); this shell
joins or leads flights (``threading.Event``), calls ``Upstream.exchange`` and
runs refreshes on a small thread pool. ``AsyncResolver`` (``_async.py``) is the
same shell for asyncio.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from socket import AF_UNSPEC
from typing import Any

from safedns._cache import Entry
from safedns._config import ResolverConfig
from safedns._core import Ask, Core, Key, Name, Outcome, QueryObserver, RdType, Timeout, drive
from safedns._fork import reset_in_child
from safedns._records import Answer, UpstreamFailure, reverse_name
from safedns._singleflight import Flights, ThreadFlight
from safedns._stats import Stats
from safedns._upstream import Upstream

__all__ = ["Resolver", "shared_core"]

_Batch = list[tuple[Key, ThreadFlight[Entry]]]


class Resolver:
    """A caching, thread-safe stub resolver.

    ``config`` defaults to ``ResolverConfig.from_system()``. ``clock`` is a
    monotonic clock in seconds (inject one to test TTLs without sleeping).
    ``on_query(server, qname, rdtype, transport)`` is called for every query
    sent upstream. ``close()`` (or ``with``) stops background refreshes and
    waits for them.
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
        self._core = Core(self.config, clock)
        counters = self._core.counters
        #: ``next(resolver.hit_ticks)`` counts one lookup answered by a cache in
        #: front of this resolver (the getaddrinfo drop-in's finished results): a
        #: lookup and a cache hit in ``stats()``, one increment.
        self.hit_ticks: Iterator[int] = counters.memo_hits.ticks
        #: Count one lookup that waited for an identical one in front of this
        #: resolver (the drop-in's): a lookup and coalesced in ``stats()``.
        self.count_joined: Callable[[], object] = counters.joined.inc
        #: The drop-in's finished-results cache for ``async_getaddrinfo(...,
        #: resolver=self)``, made there on first use (as ``AsyncResolver.dropin``).
        self.dropin: Any = None
        self._init_runtime()
        reset_in_child(self, Resolver._after_fork)

    def _init_runtime(self) -> None:
        """Flights, sockets, threads: what a forked child must not inherit."""
        self._flights: Flights[Key, ThreadFlight[Entry]] = Flights(ThreadFlight)
        observe = self._core.observer(self._on_query)
        self._upstream = Upstream(
            self.config,
            self._clock,
            on_query=observe,
            metrics=self._core.upstream_metrics,
            spend=self._core.spend_again,
        )
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._closed = False

    def _after_fork(self) -> None:
        self._core.reset_runtime()
        self._init_runtime()

    # -- public API ---------------------------------------------------------

    def resolve(
        self, name: Name, rdtype: RdType = "A", *, search: bool = True, timeout: Timeout = None
    ) -> Answer:
        """Resolve ``name`` (walking the search list as planned) for one type:
        ``"MX"``, ``"mx"``, ``dns.rdatatype.MX`` or ``15``. Iterate the answer
        for dnspython rdata objects.

        ``search=False`` asks only ``name`` itself, as an absolute name (one
        query per type). ``timeout`` bounds this call in seconds, everything
        included (waiting for another caller's query of the same name, or
        for the query budget); when it runs out the call raises
        ``TemporaryFailure`` while the query, if already sent, finishes in
        the background for the cache. A cache hit ignores it.

        Raises ``NameNotFound``, ``TemporaryFailure`` or ``InvalidName``.
        """
        if search and timeout is None and (answer := self._core.hit(name, rdtype)) is not None:
            return answer
        steps = self._core.lookup(name, rdtype, search, timeout, time.monotonic())
        return drive(steps, self._ask)

    def resolve_address(self, address: object, *, timeout: Timeout = None) -> Answer:
        """The reverse (PTR) lookup of an IPv4 or IPv6 address: the answer for
        ``10.2.0.192.in-addr.arpa.`` (no search list), cached like any
        other; ``records`` holds the host names as text (trailing dot),
        iteration their PTR rdata (``.target``). Raises ``InvalidName`` (a
        ``ValueError``) for anything but an address."""
        return self.resolve(reverse_name(address), "PTR", search=False, timeout=timeout)

    def resolve_addresses(
        self, name: Name, family: int = AF_UNSPEC, *, search: bool = True, timeout: Timeout = None
    ) -> list[str]:
        """The addresses of ``name``: A and AAAA asked together (``AF_UNSPEC``),
        or one family. IPv4 first. ``search`` and ``timeout`` as for
        ``resolve`` (an IP address given as the name answers itself)."""
        if search and timeout is None and (memo := self._core.address_hit(name, family)):
            return memo.addresses
        steps = self._core.lookup_addresses(name, family, search, timeout, time.monotonic())
        return [a for answer in drive(steps, self._ask) for a in answer.addresses]

    def lookup_addresses(
        self, name: Name, family: int = AF_UNSPEC, *, search: bool = True, timeout: Timeout = None
    ) -> list[Answer]:
        """Like ``resolve_addresses`` but returns the ``Answer`` of each type that
        had data (A before AAAA), all for the same candidate name.

        This is DNS only, as glibc's DNS backend sees it (the drop-in
        ``getaddrinfo`` uses it, and leaves ``localhost`` to the hosts file as
        glibc does): RFC 6761 names are not answered locally here."""
        if search and timeout is None and (memo := self._core.address_hit(name, family)):
            return list(memo.answers)
        started = time.monotonic()
        return drive(
            self._core.lookup_addresses(name, family, search, timeout, started, local=False),
            self._ask,
        )

    def stats(self) -> Stats:
        return self._core.stats()

    @property
    def clock(self) -> Callable[[], float]:
        """The monotonic clock answers expire on (``Answer.expires``)."""
        return self._clock

    def reconfigured(self, config: ResolverConfig) -> Resolver:
        """A resolver on ``config`` with this one's clock and query observer.

        When both ask the same nameservers it shares this one's cache, so cached names
        stay answered (the answers come from the same servers); other servers may
        answer differently, so then it starts empty.
        """
        other = Resolver(config, clock=self._clock, on_query=self._on_query)
        if config.servers() == self.config.servers():
            other._core.cache = self._core.cache
        return other

    def flush(self, name: str | None = None) -> None:
        """Forget cached answers: all of them, or those of one absolute name."""
        self._core.flush(name)

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

    # -- I/O -------------------------------------------------------------------

    def _ask(self, ask: Ask) -> list[Outcome]:
        """The core's lookups decide (``drive`` runs them); this answers their
        asks: one outcome per question, from the cache, another caller's flight,
        or upstream (every question this call leads goes out together)."""
        core = self._core
        batch = core.sort(ask.questions, self._flights, self._clock(), time.monotonic())
        for key in batch.prefetch:
            self._prefetch(key)
        if batch.led:
            lead = core.lead(self._flights, ask, batch, time.monotonic())
            if not lead.send:
                pass
            elif lead.background and self._submit(
                self._refresh, lead.send, lead.delay, lead.attempts
            ):
                # Stale data is on hand: serve it after the client response
                # timer and let the query finish in the background (RFC 8767);
                # or the caller's timeout may run out first.
                for _, flight in lead.send:
                    flight.wait(max(0.0, lead.wait_until - time.monotonic()))
            else:
                if lead.delay > 0:
                    time.sleep(lead.delay)  # our budget token arrives (arrival order)
                self._exchange(lead.send)
        for i, flight in batch.followed:
            flight.wait(core.follow_timeout(flight, batch.stale[i], ask, time.monotonic()))
        return core.settle_batch(batch)

    def _refresh(self, send: _Batch, delay: float = 0.0, attempts: int | None = 1) -> None:
        """A background query for data we can already serve (stale or about to
        expire): one try per nameserver, so a dead server is not hammered
        (``attempts``; None, the config's, for a caller that timed out).
        ``delay``: the wait for a reserved budget token."""
        if delay > 0:
            time.sleep(delay)
        self._exchange(send, attempts=attempts)

    def _exchange(self, send: _Batch, attempts: int | None = None) -> None:
        """Send the questions upstream, cache what comes back and finish their
        flights. Always finishes every flight, whatever happens."""
        error: BaseException | None = None
        try:
            responses = self._upstream.exchange([key for key, _ in send], attempts)
            self._core.land(self._flights, send, responses)
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._core.abort(self._flights, send, error)

    def _prefetch(self, key: Key) -> None:
        """Refresh ``key`` in the background (once at a time), budget allowing."""
        if self._closed:
            return
        flight = self._core.prefetch(self._flights, key, time.monotonic())
        if flight is not None and not self._submit(self._refresh, [(key, flight)]):
            self._flights.finish(key, flight, None, UpstreamFailure("resolver closed"))

    def _submit(
        self,
        fn: Callable[[_Batch, float, int | None], None],
        arg: _Batch,
        delay: float = 0.0,
        attempts: int | None = 1,
    ) -> bool:
        with self._executor_lock:
            if self._closed:
                return False
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="safedns")
            try:
                self._executor.submit(fn, arg, delay, attempts)
            except RuntimeError:  # interpreter shutting down
                return False
        return True


def shared_core(resolver: Resolver) -> Core:
    """The core of ``resolver`` (its cache, counters, budget and failure
    bookkeeping), for a front end that shares it: ``AsyncResolver(resolver=r)``."""
    return resolver._core
