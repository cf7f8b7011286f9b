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
import contextlib
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator, Iterator
from socket import AF_UNSPEC
from typing import Any, TypeVar

from safedns._cache import Entry
from safedns._config import ResolverConfig
from safedns._core import (
    Ask,
    Core,
    Key,
    Name,
    Outcome,
    QueryObserver,
    RdType,
    Timeout,
    drive_async,
)
from safedns._fork import reset_in_child
from safedns._records import Answer, reverse_name
from safedns._resolver import Resolver, shared_core
from safedns._singleflight import AsyncFlight, Flights, SharedTasks
from safedns._stats import Stats
from safedns._upstream import AsyncUpstream

__all__ = ["AsyncResolver"]

_Flights = Flights[Key, AsyncFlight[Entry]]
_Batch = list[tuple[Key, AsyncFlight[Entry]]]
T = TypeVar("T")


class AsyncResolver:
    """A caching stub resolver for asyncio.

    ``AsyncResolver(config)`` has its own cache; ``AsyncResolver(resolver=r)``
    shares the cache, counters, budget, config and clock of the sync
    resolver ``r`` (so giving ``config`` or ``clock`` with it is a
    ``TypeError``).
    Use ``async with`` or ``await aclose()`` to stop background refreshes.
    """

    def __init__(
        self,
        config: ResolverConfig | None = None,
        *,
        resolver: Resolver | None = None,
        clock: Callable[[], float] | None = None,
        on_query: QueryObserver | None = None,
    ) -> None:
        if resolver is not None:
            ignored = [n for n, v in (("config", config), ("clock", clock)) if v is not None]
            if ignored:
                raise TypeError(
                    f"AsyncResolver(resolver=...) shares that resolver's config and clock:"
                    f" {' and '.join(ignored)} would be ignored, give them to the Resolver"
                )
            self._core: Core = shared_core(resolver)
            self.config = resolver.config
            self._clock = resolver.clock
        else:
            self.config = config if config is not None else ResolverConfig.from_system()
            self._clock = clock if clock is not None else time.monotonic
            self._core = Core(self.config, self._clock)
        self._owns_core = resolver is None
        counters = self._core.counters
        #: As ``Resolver.hit_ticks``: ``next()`` counts a lookup and a cache hit.
        self.hit_ticks: Iterator[int] = counters.memo_hits.ticks
        #: As ``Resolver.count_joined``: a lookup and coalesced, one increment.
        self.count_joined: Callable[[], object] = counters.joined.inc
        #: The drop-in's finished-results cache for ``async_getaddrinfo(...,
        #: resolver=self)``, made there on first use; it lives as long as this
        #: resolver does (a reference cycle, which the garbage collector frees).
        self.dropin: Any = None
        self._on_query = on_query
        self._init_runtime()
        self._closed = False
        reset_in_child(self, AsyncResolver._after_fork)

    def _init_runtime(self) -> None:
        """Sockets, flights, tasks: what a forked child must not inherit."""
        observe = self._core.observer(self._on_query)
        self._upstream = AsyncUpstream(
            self.config,
            self._clock,
            on_query=observe,
            metrics=self._core.upstream_metrics,
            spend=self._core.spend_again,
        )
        # Flights are futures of one event loop: one table per loop.
        self._flights: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Flights] = (
            weakref.WeakKeyDictionary()
        )
        #: The resolver's tasks on every loop. Loops on other threads add and
        #: discard theirs at any time: touched and copied under ``_tasks_lock``
        #: only (as are the per-loop tables below, which ``_watch`` walks).
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tasks_lock = threading.Lock()
        #: Lookups without options under way, per loop, by kind and arguments.
        self._lookups: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, SharedTasks[tuple[object, ...], Any]
        ] = weakref.WeakKeyDictionary()
        #: Per loop, the async generator whose closing (the loop's
        #: ``shutdown_asyncgens``) stops this resolver's tasks on that loop.
        self._watchers: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, AsyncGenerator[None, None]
        ] = weakref.WeakKeyDictionary()

    def _after_fork(self) -> None:
        """In a forked child: fresh locks, no flight, task or socket of the
        parent's. (A ``Resolver`` whose core is shared resets the core itself.)"""
        if self._owns_core:
            self._core.reset_runtime()
        inherited = self._tasks
        self._init_runtime()
        # Had the fork happened inside a running loop, the child's copy of
        # that loop would go on with the parent's queries on sockets the
        # parent still reads: cancel them (they close their sockets).
        for task in inherited:
            with contextlib.suppress(RuntimeError):  # its loop is closed
                task.cancel()

    # -- public API ---------------------------------------------------------

    async def resolve(
        self, name: Name, rdtype: RdType = "A", *, search: bool = True, timeout: Timeout = None
    ) -> Answer:
        """Resolve ``name`` for one type; see ``Resolver.resolve`` (``search``,
        ``timeout`` and the record types are the same)."""
        if search and timeout is None:
            if (answer := self._core.hit(name, rdtype)) is not None:
                return answer
            return await self._shared(("resolve", name, rdtype), self._core.lookup, rdtype)
        return await self._run(self._core.lookup(name, rdtype, search, timeout, time.monotonic()))

    async def resolve_address(self, address: object, *, timeout: Timeout = None) -> Answer:
        """The reverse (PTR) lookup of an address; see ``Resolver.resolve_address``."""
        return await self.resolve(reverse_name(address), "PTR", search=False, timeout=timeout)

    async def resolve_addresses(
        self, name: Name, family: int = AF_UNSPEC, *, search: bool = True, timeout: Timeout = None
    ) -> list[str]:
        """A and AAAA asked together (``AF_UNSPEC``), or one family. IPv4 first.
        ``search`` and ``timeout`` as for ``resolve``."""
        if search and timeout is None:
            if memo := self._core.address_hit(name, family):
                return memo.addresses
            key = ("addresses", name, family)
            answers = await self._shared(key, self._core.lookup_addresses, family)
        else:
            steps = self._core.lookup_addresses(name, family, search, timeout, time.monotonic())
            answers = await self._run(steps)
        return [a for answer in answers for a in answer.addresses]

    async def lookup_addresses(
        self, name: Name, family: int = AF_UNSPEC, *, search: bool = True, timeout: Timeout = None
    ) -> list[Answer]:
        """See ``Resolver.lookup_addresses`` (DNS only: no RFC 6761 names)."""
        if search and timeout is None:
            if memo := self._core.address_hit(name, family):
                return list(memo.answers)
            key = ("dns-addresses", name, family)
            return list(await self._shared(key, self._core.lookup_addresses, family, local=False))
        steps = self._core.lookup_addresses(
            name, family, search, timeout, time.monotonic(), local=False
        )
        return await self._run(steps)

    def stats(self) -> Stats:
        return self._core.stats()

    @property
    def clock(self) -> Callable[[], float]:
        """The monotonic clock answers expire on (``Answer.expires``)."""
        return self._clock

    def flush(self, name: str | None = None) -> None:
        self._core.flush(name)

    async def aclose(self) -> None:
        """Cancel the resolver's tasks (shared queries, background refreshes)
        and wait for them; their sockets are closed when this returns.

        Without it, the resolver's tasks on an event loop are cancelled and
        awaited when that loop shuts down (``asyncio.run`` ends, or
        ``loop.shutdown_asyncgens()``), so none outlives its loop."""
        self._closed = True
        loop = asyncio.get_running_loop()
        for task in self._task_list():
            other = task.get_loop()
            if other is not loop:
                # Another thread's loop: a task is cancelled on its own thread.
                with contextlib.suppress(RuntimeError):  # its loop is closed
                    other.call_soon_threadsafe(task.cancel)
        await self._stop_tasks(loop)

    def _task_list(self) -> list[asyncio.Task[Any]]:
        """A copy of the resolver's tasks, taken while no other thread changes them."""
        with self._tasks_lock:
            return list(self._tasks)

    def _forget_task(self, task: asyncio.Task[Any]) -> None:
        with self._tasks_lock:
            self._tasks.discard(task)

    async def _stop_tasks(self, loop: asyncio.AbstractEventLoop) -> None:
        """Cancel this resolver's tasks on ``loop`` (the running one) and wait for them."""
        while tasks := [t for t in self._task_list() if t.get_loop() is loop and not t.done()]:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> AsyncResolver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<AsyncResolver nameservers={list(self.config.nameservers)}>"

    # -- I/O -------------------------------------------------------------------

    async def _shared(
        self,
        key: tuple[object, ...],
        lookup: Callable[..., Generator[Ask, list[Outcome], T]],
        what: object,
        *,
        local: bool = True,
    ) -> T:
        """A lookup without options (``key``: its kind and arguments), shared
        by every caller that asks it while it runs: the first caller starts
        it as a task of the resolver's, the others (counted in ``coalesced``)
        wait for that task, so a burst of callers costs one lookup, not one
        walk each. Each caller waits through ``asyncio.shield``: cancelling
        one cancels only its wait; when the last one is gone the lookup
        stops (a query already sent still lands in the cache)."""
        loop = asyncio.get_running_loop()
        lookups = self._lookups.get(loop)
        if lookups is None:
            lookups = self._lookups[loop] = SharedTasks()
            self._watch(loop)
        name = key[1]
        try:
            joining = key in lookups
        except TypeError:  # an unhashable name: the lookup raises the right error
            return await self._run(lookup(name, what, True, None, time.monotonic()))
        start: Callable[[], asyncio.Task[T]] = _never
        if not joining:
            options = {} if local else {"local": False}
            steps = lookup(name, what, True, None, time.monotonic(), **options)
            try:
                first = next(steps)
            except StopIteration as done:  # answered without a query: no task
                answered: T = done.value
                return answered

            def start() -> asyncio.Task[T]:
                return self._spawn(self._run(steps, first))

        result: T = await lookups.join(key, start, self.count_joined)
        return result

    async def _run(self, steps: Generator[Ask, list[Outcome], T], first: Ask | None = None) -> T:
        """Run one of the core's lookups: it decides, this shell answers its asks
        (``first``: its first ask, when the caller already took it)."""
        return await drive_async(steps, self._ask, first)

    def _loop_flights(self) -> _Flights:
        loop = asyncio.get_running_loop()
        flights = self._flights.get(loop)
        if flights is None:
            flights = self._flights[loop] = Flights(lambda now: AsyncFlight(now, loop))
            self._watch(loop)
        return flights

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """On this resolver's first use on ``loop`` (the running one): have the
        loop's shutdown stop the resolver's tasks there. The hook is an async
        generator, started here so the loop's ``firstiter`` hook registers it:
        ``shutdown_asyncgens()`` closes it, and its ``finally`` cancels and
        awaits the tasks (a refresh under way, a shared query), which close
        their sockets. Tasks left on loops closed without that shutdown are
        let go (not kept alive by this resolver)."""
        with self._tasks_lock:
            if loop in self._watchers:
                return
            for task in [t for t in self._tasks if t.get_loop().is_closed()]:
                self._tasks.discard(task)
            for closed in [other for other in list(self._watchers) if other.is_closed()]:
                self._watchers.pop(closed, None)  # it refers to its loop: let the loop go
        watcher = _until_shutdown(weakref.ref(self))
        with contextlib.suppress(StopIteration):
            watcher.asend(None).send(None)
        with self._tasks_lock:
            self._watchers[loop] = watcher

    async def _ask(self, ask: Ask) -> list[Outcome]:
        core = self._core
        flights = self._loop_flights()
        batch = core.sort(ask.questions, flights, self._clock(), time.monotonic())
        for key in batch.prefetch:
            self._prefetch(key, flights)
        if batch.led:
            lead = core.lead(flights, ask, batch, time.monotonic())
            # The shared query runs in a task of its own, owned by the
            # resolver: it outlives any one caller, so cancelling this caller
            # (a ``wait_for`` around ``resolve``) cancels only this wait.
            if not lead.send:
                pass
            elif lead.background and not self._closed:
                # Stale data is on hand: serve it after the client response
                # timer and let the query finish in the background (RFC 8767);
                # or the caller's timeout may run out first.
                task = self._spawn(self._exchange(lead.send, flights, lead.attempts, lead.delay))
                timeout = max(0.0, lead.wait_until - time.monotonic())
                await asyncio.wait({task}, timeout=timeout)
            else:
                await asyncio.wait(
                    {self._spawn(self._exchange(lead.send, flights, None, lead.delay))}
                )
        for i, flight in batch.followed:
            if not flight.landed:
                timeout = core.follow_timeout(flight, batch.stale[i], ask, time.monotonic())
                await flight.wait(timeout)
        return core.settle_batch(batch)

    async def _exchange(
        self,
        send: _Batch,
        flights: _Flights,
        attempts: int | None = None,
        delay: float = 0.0,
    ) -> None:
        """Send the questions (after ``delay``, the wait for a reserved budget
        token), cache what comes back, land every flight."""
        error: BaseException | None = None
        try:
            if delay > 0:
                await asyncio.sleep(delay)
            responses = await self._upstream.exchange([key for key, _ in send], attempts)
            self._core.land(flights, send, responses)
        except asyncio.CancelledError as exc:  # aclose(), or the loop shutting down
            error = exc
            raise
        except Exception as exc:  # published to the flight's waiters, not lost
            error = exc
        finally:
            self._core.abort(flights, send, error)

    def _prefetch(self, key: Key, flights: _Flights) -> None:
        if self._closed:
            return
        flight = self._core.prefetch(flights, key, time.monotonic())
        if flight is not None:
            self._spawn(self._exchange([(key, flight)], flights, attempts=1))

    def _spawn(self, coro: Coroutine[object, object, T]) -> asyncio.Task[T]:
        task = asyncio.ensure_future(coro)
        with self._tasks_lock:
            self._tasks.add(task)
        task.add_done_callback(self._forget_task)
        return task


async def _until_shutdown(ref: weakref.ref[AsyncResolver]) -> AsyncGenerator[None, None]:
    """Suspended until its loop's ``shutdown_asyncgens()`` closes it; then stops
    the resolver's tasks on that loop (see ``AsyncResolver._watch``)."""
    try:
        yield
    finally:
        resolver = ref()
        if resolver is not None:
            loop = asyncio.get_running_loop()
            with resolver._tasks_lock:
                resolver._watchers.pop(loop, None)
            await resolver._stop_tasks(loop)


def _never() -> asyncio.Task[Any]:
    raise AssertionError("a joined lookup is never started")
