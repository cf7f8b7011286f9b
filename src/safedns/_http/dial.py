"""Which address a new connection dials, and when. Pure: no sockets, time in
as ``now``. The two drivers of the schedule are in ``connect.py``.

- ``Attempts``: RFC 8305 section 5 over an ordered list of addresses. The
  first attempt starts at once; the next one starts when the one before it
  failed, or ``delay`` seconds (the Connection Attempt Delay, 250 ms by
  default, 10 ms to 2 s) after it started if it is still pending. The first
  connection to complete wins and the others are abandoned; all of it within
  one deadline (the request's connect timeout)::

      next(now) -> Connect(address)   start an attempt now
                 | Wait(until)        until an attempt completes, or ``until``
                 | GiveUp(timed_out)  every attempt failed, or the deadline passed

- ``FailedAddresses``: addresses that failed to connect, reset, or lost a
  race they had a head start in, remembered for ``hold`` seconds (30), so
  that new connections try them last, unless every address is failing.
- ``connect_order``: the order of one connect: the host's addresses rotated
  by one on each new connection (spreading), the failing and the avoided
  (the earlier attempts of the same request: a retry goes elsewhere) last,
  then IPv6 and IPv4 interleaved.
- ``Route``: one request's way across its attempts: whether its name was
  resolved (a request asks the resolver at most once, whatever its
  retries), the address of its latest attempt and the addresses it avoids.
- ``Hosts``: what one transport keeps: its ``AddressBook``, its
  ``FailedAddresses`` and the spreading counters, behind one small API.
"""

from __future__ import annotations

import contextvars
import itertools
import threading
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from safedns._http.follow import AddressBook, HostAnswer, canonical, interleave
from safedns._records import Answer

__all__ = [
    "DEFAULT_DELAY",
    "Attempts",
    "Connect",
    "FailedAddresses",
    "GiveUp",
    "Hosts",
    "Route",
    "Wait",
    "check_delay",
    "connect_order",
    "current_route",
    "find_route",
    "routing",
]

#: RFC 8305 section 8: the recommended Connection Attempt Delay, and its bounds.
DEFAULT_DELAY = 0.25
MIN_DELAY = 0.01
MAX_DELAY = 2.0


def check_delay(delay: object) -> float:
    """``happy_eyeballs_delay`` checked: seconds, from 10 ms to 2 s (RFC 8305
    section 5)."""
    if isinstance(delay, bool) or not isinstance(delay, (int, float)):
        raise TypeError(f"happy_eyeballs_delay must be a number of seconds, got {delay!r}")
    if not MIN_DELAY <= delay <= MAX_DELAY:
        raise ValueError(
            f"happy_eyeballs_delay must be from {MIN_DELAY} to {MAX_DELAY} seconds"
            f" (RFC 8305, section 5), got {delay!r}"
        )
    return float(delay)


@dataclass(frozen=True, slots=True)
class Connect:
    """Start a connection attempt to ``address`` now."""

    address: str


@dataclass(frozen=True, slots=True)
class Wait:
    """Wait until an attempt completes (then report it: ``connected`` or
    ``failed``), or until ``until`` (then ask ``next`` again)."""

    until: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    """No attempt connected: every address failed, or (``timed_out``) the
    deadline passed with attempts still pending (abandon them)."""

    timed_out: bool


class Attempts:
    """The RFC 8305 schedule of one connect over ``addresses`` (in order).

    ``now``: when the connect began; ``deadline``: when it must give up
    (None: never, each attempt then fails on its own). Not thread-safe: one
    connect, one driver.
    """

    def __init__(
        self,
        addresses: Sequence[str],
        delay: float = DEFAULT_DELAY,
        now: float = 0.0,
        deadline: float | None = None,
    ) -> None:
        self._queue = list(dict.fromkeys(addresses))
        self.delay = delay
        self.deadline = deadline
        self.pending: list[str] = []
        #: Every address tried, in the order attempts started.
        self.started: list[str] = []
        self.failures: list[str] = []
        self.winner: str | None = None
        self._next_at = now

    def next(self, now: float) -> Connect | Wait | GiveUp:
        if self.winner is not None:
            raise RuntimeError("the connect is over: an attempt connected")
        if self.deadline is not None and now >= self.deadline:
            return GiveUp(timed_out=True)
        if self._queue and (not self.pending or now >= self._next_at):
            address = self._queue.pop(0)
            self.pending.append(address)
            self.started.append(address)
            self._next_at = now + self.delay
            return Connect(address)
        if not self.pending:
            return GiveUp(timed_out=False)
        until = self._next_at if self._queue else float("inf")
        if self.deadline is not None:
            until = min(until, self.deadline)
        return Wait(until)

    def failed(self, address: str, now: float) -> None:
        """The attempt to ``address`` failed: the next one may start at once."""
        if address in self.pending:
            self.pending.remove(address)
            self.failures.append(address)
            self._next_at = now

    def connected(self, address: str) -> list[str]:
        """The attempt to ``address`` won. Returns the attempts still pending,
        to abandon; those started before it are the ones that lost a head
        start (``slow``)."""
        self.winner = address
        losers = [a for a in self.pending if a != address]
        self.pending = []
        return losers

    def slow(self) -> list[str]:
        """Attempts that started before the winner and had not completed when
        it connected: slower than the Connection Attempt Delay."""
        if self.winner is None:
            return []
        before = self.started[: self.started.index(self.winner)]
        return [a for a in before if a not in self.failures]


class FailedAddresses:
    """Addresses that failed lately, each for ``hold`` seconds from its last
    failure (or until ``succeeded``). Bounded (the oldest goes first);
    thread-safe."""

    def __init__(self, hold: float = 30.0, max_entries: int = 4096) -> None:
        self.hold = hold
        self.max_entries = max_entries
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def failed(self, address: str, now: float) -> None:
        address = canonical(address)
        with self._lock:
            self._until.pop(address, None)
            if len(self._until) >= self.max_entries:
                del self._until[next(iter(self._until))]
            self._until[address] = now + self.hold

    def succeeded(self, address: str) -> None:
        if self._until:
            with self._lock:
                self._until.pop(canonical(address), None)

    def failing(self, address: str, now: float) -> bool:
        until = self._until.get(canonical(address))
        return until is not None and now < until

    def forget(self, addresses: Iterable[str]) -> None:
        """End the memory of ``addresses`` (they left DNS)."""
        with self._lock:
            for address in addresses:
                self._until.pop(canonical(address), None)


def connect_order(
    addresses: Sequence[str],
    *,
    start: int = 0,
    last: Collection[str] = (),
) -> list[str]:
    """The order to try ``addresses`` in: rotated to begin at ``start`` (mod
    their number), those in ``last`` moved to the end (in the same rotated
    order), each part IPv6/IPv4 interleaved."""
    unique = list(dict.fromkeys(addresses))
    if not unique:
        return []
    k = start % len(unique)
    rotated = unique[k:] + unique[:k]
    first = [a for a in rotated if canonical(a) not in last]
    rest = [a for a in rotated if canonical(a) in last]
    return interleave(first) + interleave(rest)


@dataclass(slots=True)
class Route:
    """One request's way across its attempts (see the module docstring).

    ``resolved``: the resolver was asked for this request (``error`` is
    what it raised, if it failed: later attempts raise it again without
    asking); ``last``: the address of the latest attempt, once it has one;
    ``avoid``: addresses its retries go elsewhere from."""

    resolved: bool = False
    error: Exception | None = None
    addresses: tuple[str, ...] | None = None
    last: str | None = None
    avoid: set[str] = field(default_factory=set)

    def retrying(self) -> None:
        """The latest attempt will be retried: the next one avoids its address."""
        if self.last is not None:
            self.avoid.add(canonical(self.last))
            self.last = None


#: The route of the request the current thread or task is sending (set by the
#: adapters around each request: the connect it causes happens in the same
#: thread, or the same task, under httpcore and urllib3).
_ROUTE: contextvars.ContextVar[Route | None] = contextvars.ContextVar(
    "safedns_http_route", default=None
)


def current_route() -> Route:
    """The route of the request being sent here; outside one (a connection
    opened by hand), a new route that nothing else sees."""
    route = _ROUTE.get()
    return route if route is not None else Route()


def find_route() -> Route | None:
    """The route of the request being sent here, or None."""
    return _ROUTE.get()


class routing:
    """``with routing() as route:`` around one request (all its attempts)."""

    __slots__ = ("_token", "route")

    def __enter__(self) -> Route:
        self.route = Route()
        self._token = _ROUTE.set(self.route)
        return self.route

    def __exit__(self, *exc: object) -> None:
        _ROUTE.reset(self._token)


def answer_expiry(answers: Iterable[Answer]) -> tuple[tuple[str, ...], float, bool]:
    """The addresses of a lookup's answers, when the first of them expires,
    and whether any was served stale."""
    addresses: list[str] = []
    expires = float("inf")
    stale = False
    for answer in answers:
        addresses.extend(answer.addresses)
        expires = min(expires, answer.expires)
        stale = stale or answer.stale
    return tuple(addresses), expires, stale


class Hosts:
    """Everything one transport knows about the hosts it dials.

    - ``stale_ttl``: how long past its expiry an answer may still be dialled
      (the resolver's ``ResolverConfig.stale_ttl``; 0 with serve-stale off).
    - ``hold``: how long a failed address is tried last.
    - ``local_ttl``: the lifetime given to answers with no TTL of their own
      (``localhost``, answered without DNS).
    """

    def __init__(self, *, stale_ttl: float, hold: float = 30.0, local_ttl: float = 3600.0) -> None:
        self.book = AddressBook()
        self.failures = FailedAddresses(hold)
        self.stale_ttl = stale_ttl
        self.local_ttl = local_ttl
        self._turns: dict[str, itertools.count[int]] = {}

    # -- what DNS said ----------------------------------------------------------

    def learn(self, host: str, answers: Sequence[Answer]) -> HostAnswer:
        """Keep what the resolver answered for ``host``."""
        addresses, expires, stale = answer_expiry(answers)
        usable_until = expires if stale else expires + self.stale_ttl
        before = self.book.current(host)
        entry = self.book.learn(host, addresses, expires=expires, usable_until=usable_until)
        if before:
            self.failures.forget(before - entry.current)  # they left DNS
        return entry

    def learn_local(self, host: str, addresses: Sequence[str], now: float) -> HostAnswer:
        """Keep addresses answered without DNS (``localhost``)."""
        return self.book.learn(host, addresses, expires=now + self.local_ttl)

    def dialable(self, host: str, now: float) -> tuple[str, ...] | None:
        """See ``AddressBook.dialable``."""
        return self.book.dialable(host, now)

    def refresh_due(self, host: str, now: float) -> bool:
        """See ``AddressBook.refresh_due``."""
        return self.book.refresh_due(host, now)

    def refresh_failed(self, host: str, now: float, *, not_found: bool) -> None:
        """A background refresh failed: ``not_found`` (the name is gone), the
        host is forgotten; else (DNS down) its last answer is kept."""
        if not_found:
            self.book.forget(host)
        else:
            self.book.refresh_failed(host, now)

    # -- which address ----------------------------------------------------------

    def order(self, host: str, addresses: Sequence[str], route: Route, now: float) -> list[str]:
        """The order a new connection to ``host`` tries ``addresses`` in."""
        turns = self._turns.get(host)
        if turns is None:
            turns = self._turns.setdefault(host, itertools.count())
            if len(self._turns) > self.book.max_hosts:
                self._turns.pop(next(iter(self._turns)), None)
        last = {canonical(a) for a in addresses if self.failures.failing(a, now)}
        last |= route.avoid
        return connect_order(addresses, start=next(turns), last=last)

    def connected(self, attempts: Attempts, now: float) -> None:
        """A connect is over with a winner: its failed and slow addresses are
        remembered as failing, the winner as healthy."""
        for address in attempts.failures:
            self.failures.failed(address, now)
        for address in attempts.slow():
            self.failures.failed(address, now)
        if attempts.winner is not None:
            self.failures.succeeded(attempts.winner)

    def gave_up(self, attempts: Attempts, now: float) -> None:
        """A connect failed: every address it tried failed or timed out."""
        for address in attempts.started:
            self.failures.failed(address, now)

    def raced(self, started: Sequence[str], winner: str | None, now: float) -> None:
        """A connect whose schedule the HTTP client ran itself (aiohttp's own
        Happy Eyeballs): ``started``, the addresses it tried in the order it
        started them; ``winner``, the one that connected (None: none did).
        Those started before the winner failed or were slower than the
        Connection Attempt Delay, and are remembered as failing, as
        ``connected`` and ``gave_up`` do."""
        if winner is None:
            for address in started:
                self.failures.failed(address, now)
            return
        winner = canonical(winner)
        for address in started:
            if canonical(address) == winner:
                break
            self.failures.failed(address, now)
        self.failures.succeeded(winner)

    def broke(self, address: str | None, now: float) -> None:
        """A connection to ``address`` was reset, or closed without a
        response: tried last for a while."""
        if address is not None:
            self.failures.failed(address, now)

    def has_others(self, host: str, address: str) -> bool:
        """Does ``host``'s answer hold an address other than ``address``?"""
        current = self.book.current(host)
        return current is not None and bool(current - {canonical(address)})
