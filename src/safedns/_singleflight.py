"""Single-flight bookkeeping: one upstream query per question at a time.

``Flights.begin(key, now)`` makes the caller the *leader* of a new flight or
hands it the flight already under way; the leader later calls ``finish``,
which publishes the outcome and wakes every follower. How a follower waits is
the shell's business, so a flight comes in two kinds: ``ThreadFlight`` (a
``threading.Event``, for the sync resolver) and ``AsyncFlight`` (an asyncio
future, for ``AsyncResolver``). The bookkeeping is the same for both.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["AsyncFlight", "Flight", "Flights", "SharedTasks", "ThreadFlight"]

K = TypeVar("K")
T = TypeVar("T")


class Flight(Generic[T]):
    """One question in flight. ``result`` / ``error`` stay None until it lands."""

    __slots__ = ("error", "followers", "result", "started")

    def __init__(self, started: float) -> None:
        #: When the leader began (real monotonic time), so late joiners know
        #: how long the query has been under way.
        self.started = started
        self.result: T | None = None
        self.error: BaseException | None = None
        #: How many callers joined this flight instead of sending their own query.
        self.followers = 0

    def land(self, result: T | None, error: BaseException | None) -> None:
        """Publish the outcome (once) and wake the waiters."""
        if self.landed:
            return
        self.result = result
        self.error = error
        self._wake()

    @property
    def landed(self) -> bool:
        raise NotImplementedError

    def _wake(self) -> None:
        raise NotImplementedError


class ThreadFlight(Flight[T]):
    """A flight that threads wait for."""

    __slots__ = ("_done",)

    def __init__(self, started: float) -> None:
        super().__init__(started)
        self._done = threading.Event()

    @property
    def landed(self) -> bool:
        return self._done.is_set()

    def _wake(self) -> None:
        self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)


class AsyncFlight(Flight[T]):
    """A flight that tasks of one event loop wait for.

    ``future`` is done once the flight lands. Followers ``await wait(timeout)``:
    each gets a future of its own (cancelling one follower cancels only its
    wait, never the flight nor the others), and followers whose timeouts end
    within the same ``TIMER_GRAIN`` seconds share one timer, so a burst of a
    thousand followers costs a few timers, not a task and a timer each."""

    __slots__ = ("_loop", "_timers", "_waiters", "future")

    #: Timeouts are rounded up to this many seconds to share timers.
    TIMER_GRAIN = 0.005

    def __init__(self, started: float, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(started)
        self._loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self._waiters: list[asyncio.Future[None]] = []
        #: One timer per rounded deadline, and the waiters it wakes.
        self._timers: dict[float, tuple[asyncio.TimerHandle, list[asyncio.Future[None]]]] = {}

    @property
    def landed(self) -> bool:
        return self.future.done()

    def _wake(self) -> None:
        self.future.set_result(None)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()
        for handle, _ in self._timers.values():
            handle.cancel()
        self._timers.clear()

    def wait(self, timeout: float) -> asyncio.Future[None]:
        """A future done when the flight lands or about ``timeout`` seconds
        pass (at most ``TIMER_GRAIN`` later), whichever comes first."""
        waiter = self._loop.create_future()
        if self.landed or timeout <= 0:
            waiter.set_result(None)
            return waiter
        self._waiters.append(waiter)
        grain = self.TIMER_GRAIN
        when = math.ceil((self._loop.time() + timeout) / grain) * grain
        shared = self._timers.get(when)
        if shared is None:
            handle = self._loop.call_at(when, self._expire, when)
            shared = self._timers[when] = (handle, [])
        shared[1].append(waiter)
        return waiter

    def _expire(self, when: float) -> None:
        _, waiters = self._timers.pop(when, (None, []))
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


F = TypeVar("F", bound=Flight[Any])


class Flights(Generic[K, F]):
    """The flights under way, by question. Thread-safe."""

    def __init__(self, make: Callable[[float], F]) -> None:
        self._make = make
        self._flights: dict[K, F] = {}
        self._lock = threading.Lock()

    def begin(self, key: K, now: float) -> tuple[F, bool]:
        """(flight, True) when the caller must send the query and ``finish``
        it; (flight, False) when it should wait for the leader's."""
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None:
                flight.followers += 1
                return flight, False
            flight = self._flights[key] = self._make(now)
            return flight, True

    def in_flight(self, key: K) -> bool:
        return key in self._flights

    def finish(self, key: K, flight: F, result: Any, error: BaseException | None = None) -> None:
        """Retire the flight and publish the leader's outcome to its waiters."""
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
        flight.land(result, error)

    def __len__(self) -> int:
        return len(self._flights)


class _Shared(Generic[T]):
    """A computation under way in a task, and how many callers wait for it."""

    __slots__ = ("task", "waiters")

    def __init__(self, task: asyncio.Task[T]) -> None:
        self.task = task
        self.waiters = 0


class SharedTasks(Generic[K, T]):
    """Computations under way as tasks of one event loop, by key, each shared
    by every caller that asks for it while it runs (``AsyncResolver``'s
    lookups, ``async_getaddrinfo``'s computations).

    Each caller waits through ``asyncio.shield``: cancelling one cancels only
    its wait; when the last one is gone the task is cancelled, and later
    callers start afresh."""

    def __init__(self) -> None:
        self._running: dict[K, _Shared[T]] = {}

    def __contains__(self, key: K) -> bool:
        """Whether ``key`` is under way (``TypeError`` for an unhashable key)."""
        return key in self._running

    async def join(
        self, key: K, start: Callable[[], asyncio.Task[T]], on_join: Callable[[], object]
    ) -> T:
        """The outcome of ``key``'s computation: started with ``start()`` when
        none is under way, else joined (``on_join()`` counts that)."""
        running = self._running
        shared = running.get(key)
        if shared is None:
            shared = running[key] = _Shared(start())
            shared.task.add_done_callback(lambda _: self._forget(key, shared))
        else:
            on_join()
        shared.waiters += 1
        try:
            return await asyncio.shield(shared.task)
        finally:
            shared.waiters -= 1
            if not shared.waiters and not shared.task.done():
                self._forget(key, shared)
                shared.task.cancel()

    def _forget(self, key: K, shared: _Shared[T]) -> None:
        if self._running.get(key) is shared:
            del self._running[key]
