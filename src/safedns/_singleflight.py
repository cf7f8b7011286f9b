"""Single-flight bookkeeping: one upstream query per question at a time.

``Flights.begin(key)`` makes the caller the *leader* of a new flight or hands
it the flight already under way; the leader later calls ``finish``. Waiting is
the shell's business: the sync resolver waits on ``Flight.done`` (a
``threading.Event``).
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

__all__ = ["Flight", "Flights"]

K = TypeVar("K")
T = TypeVar("T")


class Flight(Generic[T]):
    """One question in flight. ``result`` / ``error`` are set before ``done``."""

    __slots__ = ("done", "error", "followers", "result", "started")

    def __init__(self, started: float = 0.0) -> None:
        #: When the leader began (on the shell's clock), so late joiners know
        #: how long the query has been under way.
        self.started = started
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None
        #: How many callers joined this flight instead of sending their own query.
        self.followers = 0

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)


class Flights(Generic[K, T]):
    """The flights under way, by question. Thread-safe."""

    def __init__(self) -> None:
        self._flights: dict[K, Flight[T]] = {}
        self._lock = threading.Lock()

    def begin(self, key: K, now: float = 0.0) -> tuple[Flight[T], bool]:
        """(flight, True) when the caller must send the query and ``finish``
        it; (flight, False) when it should wait for the leader's."""
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None:
                flight.followers += 1
                return flight, False
            flight = self._flights[key] = Flight(now)
            return flight, True

    def in_flight(self, key: K) -> bool:
        return key in self._flights

    def finish(
        self, key: K, flight: Flight[T], result: T | None, error: BaseException | None = None
    ) -> None:
        """Publish the leader's outcome and wake every waiter."""
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
        flight.result = result
        flight.error = error
        flight.done.set()

    def __len__(self) -> int:
        return len(self._flights)
