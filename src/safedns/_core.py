"""The resolver's decisions, shared by the sync and async shells (sans-I/O).

``Core`` owns the cache, the counters, the query budget and the failure
bookkeeping of one resolver, and answers the questions a shell asks between
its I/O steps:

- ``triage(key, now)``: can the cache answer (fresh or, after a recent
  failure, stale), is a refresh-ahead due, and what stale data is on hand?
- ``spend(now)``: may one more question go upstream?
- ``record(key, response, now)``: what did upstream say; cache it.
- ``settle(entry, error, stale, now)``: what the caller gets once a flight
  is over (or its wait ran out).
- ``lead``, ``follow_timeout``, ``land``, ``abort``, ``prefetch``: the
  budget, stale and single-flight policy of the flights a shell leads or
  follows, so that the shells only wait, send and receive.

``Walk`` (``_walk.py``) is the search-list walk over planned candidate
names. ``Core.walk`` drives it as a generator that yields each ``Ask`` and
takes its outcomes; ``Core.lookup`` and ``Core.lookup_addresses`` wrap it
into whole lookups (the caller's options, the memo, RFC 6761 names), so both
shells run the one lookup and only answer its asks.

Nothing here touches a socket, a thread or an event loop; the clock is
injected.
"""

from __future__ import annotations

import ipaddress
import math
import socket
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeAlias, TypeVar

import dns.message
import dns.rdatatype

from safedns._budget import TokenBucket
from safedns._bypasses import count as count_bypasses
from safedns._cache import DNSCache, Entry, bounded_put
from safedns._config import ResolverConfig
from safedns._drive import drive, drive_async
from safedns._exceptions import NameNotFound
from safedns._health import HealthLog
from safedns._metrics import UpstreamMetrics
from safedns._planning import absolute_name, encode_name
from safedns._records import (
    Answer,
    Positive,
    UpstreamFailure,
    interpret,
    rdtype_text,
)
from safedns._singleflight import Flight, Flights
from safedns._stats import Counters, Stats
from safedns._walk import Got, Key, Outcome, Walk
from safedns._wire import WireReply

__all__ = [
    "FAMILY_TYPES",
    "AddressMemo",
    "Ask",
    "Core",
    "Got",
    "Key",
    "Lead",
    "Name",
    "Outcome",
    "QueryObserver",
    "RdType",
    "Timeout",
    "Walk",
    "call_timeout",
    "drive",
    "drive_async",
    "rdtype_text",
]

F = TypeVar("F", bound=Flight[Any])
#: Called for every query sent: (server "host:port", qname, rdtype, "udp"|"tcp").
QueryObserver = Callable[[str, str, str, str], None]
#: A host name as callers give it (``str``, IDNA-encoded; ``bytes``, ASCII).
Name: TypeAlias = str | bytes
#: A record type: ``"MX"``, ``"mx"``, ``dns.rdatatype.MX`` or ``15``.
RdType: TypeAlias = str | int
#: A bound on one call, in seconds; None: the configured timeouts alone.
Timeout: TypeAlias = float | None

FAMILY_TYPES: dict[int, tuple[str, ...]] = {
    socket.AF_UNSPEC: ("A", "AAAA"),
    socket.AF_INET: ("A",),
    socket.AF_INET6: ("AAAA",),
}

BUDGET_SPENT = "query budget exhausted"

#: The addresses of ``localhost`` and the names under it (RFC 6761 §6.3).
LOOPBACK = {"A": "127.0.0.1", "AAAA": "::1"}


def call_timeout(timeout: object) -> float:
    """A caller's ``timeout=`` as seconds: a positive, finite real number
    (TypeError for anything else, a bool included; ValueError when not > 0)."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, not {type(timeout).__name__}")
    seconds = float(timeout)
    if not 0 < seconds < math.inf:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return seconds


def family_types(family: int) -> tuple[str, ...]:
    try:
        return FAMILY_TYPES[family]
    except (KeyError, TypeError):
        raise ValueError(
            f"family must be AF_UNSPEC, AF_INET or AF_INET6, got {family!r}"
        ) from None


@dataclass(slots=True)
class Triage:
    """What the cache can do for one question right now."""

    #: The outcome, when the cache answers (fresh, or stale after a failure).
    got: Got | None
    #: Expired data on hand to fall back on, if any.
    stale: Entry | None
    #: True when a fresh hit is inside its refresh-ahead window.
    prefetch: bool


@dataclass(slots=True)
class Batch(Generic[F]):
    """One call's questions, sorted by what the cache and the flights can do:
    ``outcomes`` already known, ``led`` flights this caller must send,
    ``followed`` flights to wait for, ``prefetch`` keys due a refresh."""

    outcomes: list[Outcome | None]
    stale: list[Entry | None]
    led: list[tuple[int, F]] = field(default_factory=list)
    followed: list[tuple[int, F]] = field(default_factory=list)
    prefetch: list[Key] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Ask:
    """One step of a lookup: the next candidate's questions, and the
    lookup's deadlines in real (monotonic) time, which cover the whole walk:
    RFC 8767's client response timer and the caller's timeout."""

    questions: list[Key]
    stale_deadline: float
    deadline: float
    #: True when the caller gave a timeout: the lookup ends at ``deadline``
    #: even while a query it leads is still under way.
    bounded: bool = False


@dataclass(frozen=True, slots=True)
class Lead(Generic[F]):
    """What a shell does with the flights it leads: ``send`` them (after
    ``delay``, the wait for reserved budget tokens), either waiting for the
    answers, or, when ``background``, in the background while it waits only
    until ``wait_until`` (real time) before serving stale data, or before
    its own timeout runs out. ``attempts``: the rounds over the nameservers
    (None: the config's)."""

    send: list[tuple[Key, F]]
    delay: float
    background: bool
    wait_until: float
    attempts: int | None = 1


@dataclass(frozen=True, slots=True)
class AddressMemo:
    """A finished address lookup, reusable until ``refresh_at``."""

    answers: tuple[Answer, ...]
    refresh_at: float
    #: Every answer's addresses, in order, flattened once when memoised.
    flat: tuple[str, ...] = ()

    @property
    def addresses(self) -> list[str]:
        return list(self.flat)


class Core:
    """The cache, counters, budget and failure bookkeeping of one resolver.

    Thread-safe: the sync shell calls it from many threads, the async shell
    from its event loop, and both may share one ``Core`` (one cache).
    """

    def __init__(self, config: ResolverConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self.counters = Counters()
        #: ``next()`` on it counts a memo hit (a lookup and a cache hit): the
        #: hottest path, so no method call (``Counter.ticks``).
        self._hit_ticks = self.counters.memo_hits.ticks
        self.cache = DNSCache(config, clock)
        #: Upstream queries by type and result, latency, per-server health:
        #: fed by the upstream of each shell on this core, never by a hit.
        self.upstream_metrics = UpstreamMetrics(clock)
        #: Finished answers by the caller's own (name, type), each valid until
        #: its ``valid_until``: a hit is a dict lookup and a clock read.
        self.memo: dict[tuple[object, object], Answer] = {}
        #: The same for address lookups, by (name, family).
        self.address_memo: dict[tuple[object, int], AddressMemo] = {}
        self.reset_runtime()

    def reset_runtime(self) -> None:
        """Fresh locks and bookkeeping (after ``fork``: the parent's locks may be
        held by threads that do not exist in the child)."""
        #: Rate-limited warnings when stale answers or budget denials begin.
        self.health = HealthLog(clock=self.clock, name=",".join(self.config.nameservers))
        self.cache.after_fork()
        self.upstream_metrics.after_fork()
        self.budget = TokenBucket(
            self.config.upstream_qps, self.config.upstream_burst, self.clock()
        )
        self.failed_until: dict[Key, float] = {}

    # -- the cache ---------------------------------------------------------

    def triage(self, key: Key, now: float) -> Triage:
        entry = self.cache.get(key[0], key[1], now)
        counters = self.counters
        if entry is not None and now < entry.expires:
            if isinstance(entry.result, Positive):
                counters.cache_hits.inc()
            else:
                counters.negative_hits.inc()
            got = Got(entry.result, entry.expires, entry.refresh_at, True, False)
            return Triage(got, None, now >= entry.refresh_at)
        counters.cache_misses.inc()
        if entry is not None and self.failed_until.get(key, 0.0) > now:
            # Upstream failed for this question lately: do not ask again yet.
            return Triage(self.serve_stale(entry, now), entry, False)
        return Triage(None, entry, False)

    def serve_stale(self, entry: Entry, now: float) -> Got:
        self.counters.stale_served.inc()
        self.health.stale_served()
        expires = now + self.config.stale_answer_ttl
        return Got(entry.result, expires, expires, True, True)

    def hit(self, name: object, rdtype: object) -> Answer | None:
        """The memoised answer for ``resolve(name, rdtype)``, if still good
        (memoised under the type's canonical text only, so that a bool,
        equal to 1, never finds the answer for ``A``)."""
        try:
            answer = self.memo.get((name, rdtype))
        except TypeError:  # unhashable: the slow path raises the right error
            return None
        if answer is None or self.clock() >= answer.valid_until:
            return None
        next(self._hit_ticks)  # a lookup and a cache hit
        return answer

    def address_hit(self, name: object, family: int) -> AddressMemo | None:
        """The memoised address lookup of ``name`` for ``family``, if still good."""
        try:
            memo = self.address_memo.get((name, family))
        except TypeError:
            return None
        if memo is None or self.clock() >= memo.refresh_at:
            return None
        next(self._hit_ticks)
        return memo

    def literal_answers(self, name: object, family: int) -> list[Answer] | None:
        """An IP address given as a name answers itself, without DNS (as
        glibc's getaddrinfo does); None when ``name`` is not an address."""
        if isinstance(name, bytes):
            try:
                name = name.decode("ascii")
            except UnicodeDecodeError:
                return None
        if not isinstance(name, str) or not name or not (name[0].isdigit() or ":" in name):
            return None
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return None
        rdtype = "A" if address.version == 4 else "AAAA"
        if rdtype not in family_types(family):
            raise NameNotFound(name, "/".join(family_types(family)), nxdomain=False)
        text = str(address)
        expires = self.clock() + self.config.max_ttl
        return [Answer(text, rdtype, (text,), text, expires, self.clock, from_cache=True)]

    @staticmethod
    def call_options(
        name: str | bytes, search: bool, timeout: object
    ) -> tuple[str | bytes, float | None]:
        """A call's ``name`` and ``timeout`` once its options are applied:
        with ``search=False`` the name as an absolute name (so it is asked
        as given, and cached apart from the searched lookup; an IP address
        stays as it is), the timeout checked (``call_timeout``)."""
        seconds = None if timeout is None else call_timeout(timeout)
        if not search and not _is_address(name):
            name = absolute_name(name)
        return name, seconds

    def cached_copy(self, answer: Answer, refresh_at: float) -> Answer:
        """``answer`` as later hits see it: from the cache, valid until ``refresh_at``."""
        return answer.cached(self.clock, refresh_at)

    def remember(self, name: object, rdtype: str, walk: Walk) -> Answer:
        """The walk's answer for ``resolve``; memoised for the fast path unless
        it is stale."""
        answer = walk.answers(self.answer)[0]
        if not walk.stale:
            copy = self.cached_copy(answer, walk.valid_until)
            bounded_put(self.memo, (name, rdtype), copy, self.config.max_entries)
        return answer

    def remember_addresses(self, name: object, family: int, walk: Walk) -> list[Answer]:
        """The walk's answers for an address lookup, memoised likewise."""
        answers = walk.answers(self.answer)
        if not walk.stale:
            memo = AddressMemo(
                tuple(self.cached_copy(a, walk.valid_until) for a in answers),
                walk.valid_until,
                tuple(a for answer in answers for a in answer.addresses),
            )
            bounded_put(self.address_memo, (name, family), memo, self.config.max_entries)
        return answers

    def special_answers(self, name: str | bytes, rdtypes: Sequence[str]) -> list[Answer] | None:
        """RFC 6761 special-use names, answered here and never asked upstream:
        ``localhost`` and every name under it are the loopback addresses
        (127.0.0.1 for A, ::1 for AAAA, no data of any other type);
        ``invalid`` and every name under it do not exist. None for any other
        name. Raises ``InvalidName`` for a name DNS cannot carry."""
        text = encode_name(name)
        bare = text[:-1] if text.endswith(".") else text
        if bare == "invalid" or bare.endswith(".invalid"):
            raise NameNotFound(self._display(name), "/".join(rdtypes), nxdomain=True)
        if not (bare == "localhost" or bare.endswith(".localhost")):
            return None
        absolute = bare + "."
        now = self.clock()
        answers = [
            Answer(
                absolute,
                rdtype,
                (LOOPBACK[rdtype],),
                absolute,
                now + self.config.max_ttl,
                self.clock,
                from_cache=True,
            )
            for rdtype in rdtypes
            if rdtype in LOOPBACK
        ]
        if not answers:
            raise NameNotFound(self._display(name), "/".join(rdtypes), nxdomain=False)
        return answers

    def no_aaaa(self, name: str | bytes, rdtypes: tuple[str, ...]) -> tuple[str, ...]:
        """The types a lookup asks upstream: under ``no_aaaa`` (glibc's
        ``options no-aaaa``) never AAAA, and a lookup left with no type
        answers "no data" (``NameNotFound``, not NXDOMAIN) without a query,
        as glibc's stub resolver does under it."""
        if not self.config.no_aaaa or "AAAA" not in rdtypes:
            return rdtypes
        kept = tuple(t for t in rdtypes if t != "AAAA")
        if not kept:
            encode_name(name)  # InvalidName first, for a name DNS cannot carry
            raise NameNotFound(self._display(name), "/".join(rdtypes), nxdomain=False)
        return kept

    @staticmethod
    def _display(name: str | bytes) -> str:
        return name.decode("ascii", "replace") if isinstance(name, bytes) else name

    def flush(self, name: str | None = None) -> None:
        self.memo.clear()
        self.address_memo.clear()
        if name is None:
            self.cache.clear()
        else:
            self.cache.remove(name.lower() if name.endswith(".") else name.lower() + ".")

    # -- upstream ------------------------------------------------------------

    def spend(self, now: float, max_wait: float = 0.0) -> float | None:
        """Take one token from the query budget, or reserve the next one: the
        seconds to wait before sending (0.0: at once, counted in
        ``budget_waits`` otherwise), or None (counted in ``budget_denied``)
        when the wait would exceed ``max_wait``."""
        delay = self.budget.reserve(now, max_wait)
        if delay is None:
            self.counters.budget_denied.inc()
            self.health.budget_denied()
        elif delay > 0:
            self.counters.budget_waits.inc()
        else:
            self.health.budget_ok()
        return delay

    def spend_again(self) -> bool:
        """One budget token for a send beyond a question's first (a
        retransmission, a TCP retry after truncation), which the exchange
        asks for as it goes: never waits; False (counted in
        ``budget_denied``) when the bucket is empty, and the query is not
        sent. So every datagram and TCP query upstream sees is paid for."""
        if self.budget.try_acquire(self.clock()):
            return True
        self.counters.budget_denied.inc()
        self.health.budget_denied()
        return False

    def budget_wait(self, stale: Entry | None, remaining: float) -> float:
        """How long a question may wait for a budget token: not at all when
        stale data is on hand (it is served instead), else ``budget_wait``,
        never longer than the ``remaining`` time of the caller's lookup."""
        if stale is not None:
            return 0.0
        return max(0.0, min(self.config.budget_wait, remaining))

    def lifetime(self) -> float:
        """The caller's timeout for one lookup: the longest its questions may
        spend upstream (every attempt at every server), as glibc would."""
        config = self.config
        return config.timeout * config.attempts * len(config.nameservers)

    def sort(
        self, questions: Sequence[Key], flights: Flights[Key, F], now: float, started: float
    ) -> Batch[F]:
        """Triage every question, then lead or join a flight for each one the
        cache cannot answer (``started``: real time, for the client timer)."""
        batch: Batch[F] = Batch([None] * len(questions), [None] * len(questions))
        for i, key in enumerate(questions):
            triage = self.triage(key, now)
            if triage.prefetch:
                batch.prefetch.append(key)
            if triage.got is not None:
                batch.outcomes[i] = triage.got
                continue
            batch.stale[i] = triage.stale
            flight, leader = flights.begin(key, started)
            if leader:
                batch.led.append((i, flight))
            else:
                self.counters.coalesced.inc()
                batch.followed.append((i, flight))
        return batch

    def settle_batch(self, batch: Batch[F]) -> list[Outcome]:
        """Every question's outcome once the batch's flights landed (or their
        waits ran out)."""
        outcomes = batch.outcomes
        now = self.clock()
        for i, flight in batch.led + batch.followed:
            outcomes[i] = self.settle(flight.result, flight.error, batch.stale[i], now)
        return [o if o is not None else UpstreamFailure("no outcome") for o in outcomes]

    def admit(
        self,
        flights: Flights[Key, F],
        led: Sequence[tuple[Key, F]],
        now: float,
        max_waits: Sequence[float] | None = None,
    ) -> tuple[list[tuple[Key, F]], float]:
        """The led flights the budget lets go upstream, and how long the shell
        must wait before sending them (the longest reservation among them).
        The others land at once with a budget failure (their callers fall
        back to stale data). ``max_waits``: each flight's longest wait
        (default: none)."""
        send: list[tuple[Key, F]] = []
        delay = 0.0
        for i, (key, flight) in enumerate(led):
            reserved = self.spend(now, max_waits[i] if max_waits is not None else 0.0)
            if reserved is None:
                flights.finish(key, flight, None, UpstreamFailure(BUDGET_SPENT))
            else:
                send.append((key, flight))
                delay = max(delay, reserved)
        return send, delay

    def lead(self, flights: Flights[Key, F], ask: Ask, batch: Batch[F], mono: float) -> Lead[F]:
        """Budget and stale policy for the flights ``batch`` leads (``mono``:
        real time now): which go upstream, after how long, and whether the
        caller waits for them or serves stale data after the client timer."""
        led = [(ask.questions[i], flight) for i, flight in batch.led]
        remaining = ask.deadline - mono
        waits = [self.budget_wait(batch.stale[i], remaining) for i, _ in batch.led]
        send, delay = self.admit(flights, led, self.clock(), waits)
        # With stale data on hand the caller waits at most the client
        # response timer; 0: it gets the stale answer at once.
        if any(batch.stale[i] is not None for i, _ in batch.led):
            timeout = self.config.stale_response_timeout
            wait_until = min(mono + timeout, ask.stale_deadline)
            if ask.bounded:
                wait_until = min(wait_until, ask.deadline)
            for _ in send:  # a refresh of stale data (RFC 8767), in the background
                self.counters.refreshes.inc()
            return Lead(send, delay, True, wait_until)
        # A caller's timeout that may run out before the exchange is over: the
        # query goes on in the background (for the flight's other callers and
        # the cache) while this caller waits only until its deadline.
        cut = ask.bounded and ask.deadline < mono + delay + self.max_wait()
        return Lead(send, delay, cut, ask.deadline, None)

    def follow_timeout(
        self, flight: Flight[Any], stale: Entry | None, ask: Ask, mono: float
    ) -> float:
        """How long a follower waits for ``flight`` (``mono``: real time now):
        with stale data on hand, until the client response timer, which runs
        from when the query went out; else as long as an exchange can take."""
        timeout = self.config.stale_response_timeout
        cap = ask.deadline - mono if ask.bounded else math.inf  # the caller's timeout
        if stale is not None:  # timeout 0: stale data at once
            return max(0.0, min(flight.started + timeout - mono, ask.stale_deadline - mono, cap))
        return max(0.0, min(self.max_wait(), cap))

    def land(
        self,
        flights: Flights[Key, F],
        send: Sequence[tuple[Key, F]],
        responses: Sequence[dns.message.Message | WireReply | UpstreamFailure],
    ) -> None:
        """Record what upstream said for each question and land its flight."""
        now = self.clock()
        for (key, flight), response in zip(send, responses, strict=True):
            recorded = self.record(key, response, now)
            if isinstance(recorded, UpstreamFailure):
                flights.finish(key, flight, None, recorded)
            else:
                flights.finish(key, flight, recorded)

    @staticmethod
    def abort(
        flights: Flights[Key, F], send: Sequence[tuple[Key, F]], error: BaseException | None
    ) -> None:
        """Land every flight of ``send`` still in the air with a failure (the
        exchange was interrupted by ``error``), so no caller waits forever."""
        for key, flight in send:
            if not flight.landed:
                failure = UpstreamFailure(f"lookup interrupted: {error!r}")
                failure.__cause__ = error
                flights.finish(key, flight, None, failure)

    def prefetch(self, flights: Flights[Key, F], key: Key, mono: float) -> F | None:
        """A flight for a background refresh of ``key``, or None when one is
        under way already or the budget has no token to spare (a refresh
        never waits for the budget, nor queues ahead of callers)."""
        if flights.in_flight(key) or not self.budget.try_acquire(self.clock()):
            return None
        flight, leader = flights.begin(key, mono)
        if not leader:
            return None
        self.counters.prefetches.inc()
        self.counters.refreshes.inc()
        return flight

    def record(
        self, key: Key, response: dns.message.Message | WireReply | UpstreamFailure, now: float
    ) -> Entry | UpstreamFailure:
        """Interpret and cache what upstream said about ``key`` (a reply read
        off the wire comes interpreted already)."""
        qname, rdtype = key
        if isinstance(response, WireReply):
            result = response.result
        elif not isinstance(response, UpstreamFailure):
            try:
                result = interpret(response, qname, rdtype)
            except UpstreamFailure as failure:
                response = failure
        if isinstance(response, UpstreamFailure):
            self.counters.upstream_errors.inc()
            self._note_failure(key, now)
            return response
        self.failed_until.pop(key, None)
        self.health.upstream_ok()
        # Cached under the question asked only: a CNAME chain's records
        # never answer for the names it passes through.
        return self.cache.put(qname, rdtype, result, now) or self.cache.make_entry(result, now)

    def _note_failure(self, key: Key, now: float) -> None:
        # Every entry is now + failure_recheck and goes in last, so the oldest
        # entry, which a full table drops first, is the first to expire.
        bounded_put(
            self.failed_until,
            key,
            now + self.config.failure_recheck,
            self.config.max_negative_entries,
        )

    def settle(
        self, entry: Entry | None, error: BaseException | None, stale: Entry | None, now: float
    ) -> Outcome:
        """The caller's outcome once its flight is over, or its wait ran out
        (``entry`` and ``error`` both None)."""
        if entry is not None:
            return Got(entry.result, entry.expires, entry.refresh_at, False, False)
        if stale is not None:
            return self.serve_stale(stale, now)
        if isinstance(error, UpstreamFailure):
            return error
        if error is not None:
            failure = UpstreamFailure(f"internal error: {error!r}")
            failure.__cause__ = error
            return failure
        return UpstreamFailure("timed out")

    def max_wait(self) -> float:
        """The longest a follower waits for a leader's exchange."""
        config = self.config
        exchange = config.timeout * config.attempts * (len(config.nameservers) + 1)
        if config.single_request:  # A's exchange, then AAAA's
            exchange *= 2
        return exchange + config.budget_wait + 1.0

    # -- the walk --------------------------------------------------------------

    def walk(
        self,
        name: str | bytes,
        rdtypes: Sequence[str],
        started: float,
        timeout: float | None = None,
    ) -> Generator[Ask, list[Outcome], Walk]:
        """The search-list walk of one lookup, as a generator: it yields an
        ``Ask`` per candidate, takes that candidate's outcomes, and returns
        the finished ``Walk`` (or raises ``NameNotFound`` /
        ``TemporaryFailure``). ``started``: real time at the start;
        ``timeout``: the caller's bound on the whole lookup (seconds, checked
        by ``call_timeout``), instead of the longest its questions may take.

        >>> steps = core.walk("my-svc", ("A",), time.monotonic())  # doctest: +SKIP
        >>> ask = next(steps)
        >>> ask = steps.send(outcomes_of(ask))  # ... until StopIteration
        """
        walk = Walk(name, rdtypes, self.config)
        stale_deadline = started + self.config.stale_response_timeout
        bounded = timeout is not None
        deadline = started + (timeout if timeout is not None else self.lifetime())
        while (questions := walk.next()) is not None:
            outcomes = yield Ask(questions, stale_deadline, deadline, bounded)
            if walk.feed(outcomes, self.clock()):
                return walk
        raise walk.fail()

    # -- answers and stats ---------------------------------------------------

    def answer(
        self, candidate: str, rdtype: str, got: Got, refresh_at: float | None = None
    ) -> Answer:
        """``got`` as an ``Answer``; ``refresh_at``: until when a front end may
        hand it out again without asking (the walk's validity: earlier than
        ``expires`` after a partial failure, see ``Walk.feed``)."""
        result = got.result
        assert isinstance(result, Positive)
        return Answer(
            candidate,
            rdtype,
            result.records,
            result.canonical_name,
            got.expires,
            self.clock,
            from_cache=got.from_cache,
            stale=got.stale,
            refresh_at=None if refresh_at is None else min(refresh_at, got.expires),
            aliases=result.aliases,
        )

    def stats(self) -> Stats:
        positive, negative = self.cache.sizes()
        evicted, negative_evicted = self.cache.evictions()
        upstream = self.upstream_metrics.snapshot()
        return self.counters.snapshot(
            entries=positive,
            negative_entries=negative,
            evictions=evicted,
            negative_evictions=negative_evicted,
            upstream_queries_by_type=upstream.queries_by_type,
            upstream_queries_by_result=upstream.queries_by_result,
            upstream_latency_seconds=upstream.latency,
            server_health=upstream.servers,
            bypassing_modules=count_bypasses(),  # and, while patched, warns about new ones
        )

    def observer(self, on_query: QueryObserver | None) -> QueryObserver:
        """What a shell's upstream calls for every query sent: counted in
        ``upstream_queries``, then passed on to the caller's ``on_query``."""
        count = self.counters.upstream_queries.inc

        def observe(server: str, qname: str, rdtype: str, transport: str) -> None:
            count()
            if on_query is not None:
                on_query(server, qname, rdtype, transport)

        return observe

    # -- lookups, as the shells run them ---------------------------------------

    def lookup(
        self,
        name: str | bytes,
        rdtype: str | int,
        search: bool,
        timeout: object,
        started: float,
    ) -> Generator[Ask, list[Outcome], Answer]:
        """``resolve(name, rdtype, search=, timeout=)`` past the shell's fast
        path (a memo hit for a call without options): the caller's options
        (``call_options``), the memo (under the type as given, then under
        its canonical text), RFC 6761 names, else the walk (see ``walk``;
        ``started``: real time)."""
        if not search or timeout is not None:
            name, timeout = self.call_options(name, search, timeout)
            if (answer := self.hit(name, rdtype)) is not None:
                return answer
        text = rdtype_text(rdtype)
        if text != rdtype and (answer := self.hit(name, text)) is not None:
            return answer  # asked as "mx" or 15: memoised as "MX"
        self.counters.lookups.inc()
        special = self.special_answers(name, (text,))
        if special is not None:
            return special[0]
        self.no_aaaa(name, (text,))
        walk = yield from self.walk(name, (text,), started, _seconds(timeout))
        return self.remember(name, text, walk)

    def lookup_addresses(
        self,
        name: str | bytes,
        family: int,
        search: bool,
        timeout: object,
        started: float,
        *,
        local: bool = True,
    ) -> Generator[Ask, list[Outcome], list[Answer]]:
        """An address lookup past the shell's fast path: the caller's options
        and the memo as for ``lookup``; an IP address answers itself, RFC
        6761 names are answered here (unless ``local`` is False, as for the
        drop-in, which leaves them to the hosts file), else the walk."""
        if not search or timeout is not None:
            name, timeout = self.call_options(name, search, timeout)
            if (memo := self.address_hit(name, family)) is not None:
                return list(memo.answers)
        rdtypes = family_types(family)
        self.counters.lookups.inc()
        literal = self.literal_answers(name, family)
        if literal is not None:
            return literal
        if local:
            special = self.special_answers(name, rdtypes)
            if special is not None:
                return special
        rdtypes = self.no_aaaa(name, rdtypes)
        walk = yield from self.walk(name, rdtypes, started, _seconds(timeout))
        return self.remember_addresses(name, family, walk)


def _seconds(timeout: object) -> float | None:
    assert timeout is None or isinstance(timeout, float)  # checked by call_options
    return timeout


def _is_address(name: object) -> bool:
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    if not isinstance(name, str):
        return False
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
