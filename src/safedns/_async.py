"""The asyncio resolver: the same shell as ``Resolver``, for an event loop.

It shares ``Core`` (cache, counters, budget, the search-list walk) with the
sync resolver, and may share one ``Core`` with a given ``Resolver`` so a
process keeps one cache whichever way it looks names up. Upstream I/O goes
through ``AsyncUpstream``, which makes the same moves as the sync
``Upstream`` on asyncio transports, so answers, TTLs and failures are the
same in both. A cache hit completes without suspending.
"""

from __future__ import annotations

import asyncio
import math
import socket
import time
import weakref
from collections.abc import Callable, Coroutine, Sequence

from safedns._cache import Entry
from safedns._config import ResolverConfig
from safedns._core import Core, Key, Outcome, Walk, family_types, rdtype_text
from safedns._records import Answer, UpstreamFailure
from safedns._resolver import Resolver
from safedns._singleflight import AsyncFlight, Flights
from safedns._stats import Stats
from safedns._upstream import AsyncUpstream, QueryObserver

__all__ = ["AsyncResolver"]

_Flights = Flights[Key, AsyncFlight[Entry]]
_Batch = list[tuple[Key, AsyncFlight[Entry]]]


class AsyncResolver:
    """A caching stub resolver for asyncio.

    ``AsyncResolver(config)`` has its own cache; ``AsyncResolver(resolver=r)``
    shares the cache, counters and budget of the sync resolver ``r``.
    Use ``async with`` or ``await aclose()`` to stop background refreshes.
    """

    def __init__(
        self,
        config: ResolverConfig | None = None,
        *,
        resolver: Resolver | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_query: QueryObserver | None = None,
    ) -> None:
        if resolver is not None:
            self._core: Core = resolver._core
            self.config = resolver.config
            self._clock = resolver._clock
        else:
            self.config = config if config is not None else ResolverConfig.from_system()
            self._clock = clock
            self._core = Core(self.config, clock)
        self._on_query = on_query
        self._upstream = AsyncUpstream(self.config, self._clock, on_query=self._observe)
        # Flights are futures of one event loop: one table per loop.
        self._flights: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Flights] = (
            weakref.WeakKeyDictionary()
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    # -- public API ---------------------------------------------------------

    async def resolve(self, name: str | bytes, rdtype: str = "A") -> Answer:
        """Resolve ``name`` for one type; see ``Resolver.resolve``."""
        answer = self._core.hit(name, rdtype)
        if answer is not None:
            return answer
        self._core.counters.lookups.inc()
        text = rdtype_text(rdtype)
        return self._core.remember(name, rdtype, await self._walk(name, (text,)))

    async def resolve_addresses(
        self, name: str | bytes, family: int = socket.AF_UNSPEC
    ) -> list[str]:
        """A and AAAA asked together (``AF_UNSPEC``), or one family. IPv4 first."""
        memo = self._core.address_hit(name, family)
        if memo is not None:
            return memo.addresses
        answers = await self._lookup_addresses(name, family)
        return [a for answer in answers for a in answer.addresses]

    async def lookup_addresses(
        self, name: str | bytes, family: int = socket.AF_UNSPEC
    ) -> list[Answer]:
        memo = self._core.address_hit(name, family)
        if memo is not None:
            return list(memo.answers)
        return await self._lookup_addresses(name, family)

    async def _lookup_addresses(self, name: str | bytes, family: int) -> list[Answer]:
        rdtypes = family_types(family)
        self._core.counters.lookups.inc()
        literal = self._core.literal_answers(name, family)
        if literal is not None:
            return literal
        return self._core.remember_addresses(name, family, await self._walk(name, rdtypes))

    def stats(self) -> Stats:
        return self._core.stats()

    @property
    def clock(self) -> Callable[[], float]:
        """The monotonic clock answers expire on (``Answer.expires``)."""
        return self._clock

    def flush(self, name: str | None = None) -> None:
        self._core.flush(name)

    async def aclose(self) -> None:
        """Cancel background refreshes and wait for them."""
        self._closed = True
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> AsyncResolver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<AsyncResolver nameservers={list(self.config.nameservers)}>"

    # -- I/O -------------------------------------------------------------------

    async def _walk(self, name: str | bytes, rdtypes: Sequence[str]) -> Walk:
        walk = Walk(name, rdtypes, self.config)
        # RFC 8767's client response timer covers the whole lookup, however
        # many candidates it walks.
        stale_deadline = time.monotonic() + self.config.stale_response_timeout
        while (questions := walk.next()) is not None:
            if walk.feed(await self._ask(questions, stale_deadline)):
                return walk
        raise walk.fail()

    def _loop_flights(self) -> _Flights:
        loop = asyncio.get_running_loop()
        flights = self._flights.get(loop)
        if flights is None:
            flights = self._flights[loop] = Flights(lambda now: AsyncFlight(now, loop))
        return flights

    async def _ask(
        self, questions: Sequence[Key], stale_deadline: float = math.inf
    ) -> list[Outcome]:
        core = self._core
        flights = self._loop_flights()
        batch = core.sort(questions, flights, self._clock(), time.monotonic())
        for key in batch.prefetch:
            self._prefetch(key, flights)
        if batch.led:
            await self._lead(questions, batch.led, batch.stale, stale_deadline, flights)
        for i, flight in batch.followed:
            await self._wait(flight, batch.stale[i], stale_deadline)
        return core.settle_batch(batch)

    async def _lead(
        self,
        questions: Sequence[Key],
        led: list[tuple[int, AsyncFlight[Entry]]],
        stale: list[Entry | None],
        stale_deadline: float,
        flights: _Flights,
    ) -> None:
        batch = [(questions[i], flight) for i, flight in led]
        send = self._core.admit(flights, batch, self._clock())
        if not send:
            return
        timeout = self.config.stale_response_timeout
        if any(stale[i] is not None for i, _ in led) and timeout > 0 and not self._closed:
            # Stale data is on hand: wait a little, then serve it and let the
            # query finish in the background (RFC 8767 client response timer).
            task = self._spawn(self._exchange(send, flights, attempts=1))
            deadline = min(time.monotonic() + timeout, stale_deadline)
            await asyncio.wait({task}, timeout=max(0.0, deadline - time.monotonic()))
        else:
            await self._exchange(send, flights)

    async def _wait(
        self, flight: AsyncFlight[Entry], stale: Entry | None, stale_deadline: float
    ) -> None:
        if stale is not None and self.config.stale_response_timeout > 0:
            timer = flight.started + self.config.stale_response_timeout
            timeout = min(timer, stale_deadline) - time.monotonic()
        else:
            timeout = self._core.max_wait()
        if flight.landed:
            return
        await asyncio.wait({flight.future}, timeout=max(0.0, timeout))

    async def _exchange(
        self, send: _Batch, flights: _Flights, attempts: int | None = None
    ) -> None:
        """Send the questions, cache what comes back, land every flight."""
        error: BaseException | None = None
        try:
            responses = await self._upstream.exchange([key for key, _ in send], attempts)
            now = self._clock()
            for (key, flight), response in zip(send, responses, strict=True):
                recorded = self._core.record(key, response, now)
                if isinstance(recorded, UpstreamFailure):
                    flights.finish(key, flight, None, recorded)
                else:
                    flights.finish(key, flight, recorded)
        except BaseException as exc:
            error = exc
            raise
        finally:
            for key, flight in send:
                if not flight.landed:
                    failure = UpstreamFailure(f"lookup interrupted: {error!r}")
                    flights.finish(key, flight, None, failure)

    def _prefetch(self, key: Key, flights: _Flights) -> None:
        if self._closed or flights.in_flight(key):
            return
        if not self._core.budget.try_acquire(self._clock()):
            return
        flight, leader = flights.begin(key, time.monotonic())
        if not leader:
            return
        self._core.counters.prefetches.inc()
        self._spawn(self._exchange([(key, flight)], flights, attempts=1))

    def _spawn(self, coro: Coroutine[object, object, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _observe(self, server: str, qname: str, rdtype: str, transport: str) -> None:
        self._core.counters.upstream_queries.inc()
        if self._on_query is not None:
            self._on_query(server, qname, rdtype, transport)
