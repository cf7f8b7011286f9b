"""Upstream metrics: queries by type and by result, a latency histogram and
the health of each nameserver (pure; thread-safe; no I/O).

``UpstreamMetrics`` is fed by the upstream code (``Exchange`` and the
nameserver list of ``_upstream.py``) as queries go out and replies or
failures come back, never on the cache-hit path; ``snapshot()`` gives the
frozen values that ``stats()`` reports:

- ``queries_by_type``: queries sent, by record type (``"A"``, ``"AAAA"``, ...);
- ``queries_by_result``: what became of each query sent: the reply's RCODE
  (``"NOERROR"``, ``"NXDOMAIN"``, ``"SERVFAIL"``, ``"REFUSED"``, ...),
  ``"truncated"`` (a UDP reply with TC set: asked again over TCP, which is one
  more query), ``"timeout"``, ``"network_error"`` (refused connection, socket
  or TCP error) or ``"malformed"`` (a TCP reply that does not parse or does not
  answer the query);
- ``latency``: a ``Histogram`` of the seconds from sending a query to its
  reply, one observation per reply (every RCODE, truncated replies included);
- ``servers``: a ``ServerHealth`` per nameserver.

One lock guards the tallies: an upstream query costs milliseconds, an
uncontended lock a fraction of a microsecond.
"""

from __future__ import annotations

import bisect
import itertools
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_BUCKETS",
    "MALFORMED",
    "NETWORK_ERROR",
    "TIMEOUT",
    "TRUNCATED",
    "Histogram",
    "LatencyHistogram",
    "ServerHealth",
    "UpstreamMetrics",
    "UpstreamSnapshot",
]

#: Upper bounds (seconds) of the latency buckets: a loopback or node-local
#: cache answers in well under a millisecond, a cluster DNS in a few, a
#: failing upstream in seconds (``timeout`` is 5 s by default).
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)

TIMEOUT = "timeout"
NETWORK_ERROR = "network_error"
MALFORMED = "malformed"
TRUNCATED = "truncated"

#: Results present (at 0) from the start, so that every series exists before
#: the first failure (a rate over a series that appears late misses its start).
_KNOWN_RESULTS = ("NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", TIMEOUT, NETWORK_ERROR)
_KNOWN_TYPES = ("A", "AAAA")
_FAILURES = frozenset({TIMEOUT, NETWORK_ERROR, MALFORMED})


@dataclass(frozen=True)
class Histogram:
    """A snapshot of a latency distribution, Prometheus-style.

    ``buckets`` are the upper bounds in seconds, ascending; ``counts[i]`` is
    how many observations were ``<= buckets[i]`` (cumulative); ``count`` is
    every observation (the ``+Inf`` bucket) and ``sum`` their total seconds.
    """

    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    counts: tuple[int, ...] = (0,) * len(DEFAULT_BUCKETS)
    count: int = 0
    sum: float = 0.0

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, cumulative count)`` pairs, ending with ``(inf, count)``."""
        return [*zip(self.buckets, self.counts, strict=True), (math.inf, self.count)]


class LatencyHistogram:
    """Fixed buckets, thread-safe: ``observe(seconds)`` is a bisect and one
    locked increment."""

    def __init__(self, buckets: Sequence[float] = DEFAULT_BUCKETS) -> None:
        bounds = tuple(float(b) for b in buckets)
        if not bounds or any(not 0 < b < math.inf for b in bounds):
            raise ValueError("histogram buckets must be positive, finite seconds")
        if any(a >= b for a, b in itertools.pairwise(bounds)):
            raise ValueError("histogram buckets must be strictly ascending")
        self.buckets = bounds
        self._counts = [0] * (len(bounds) + 1)  # per bucket, then the overflow
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        i = bisect.bisect_left(self.buckets, seconds)  # a bound is inclusive ("le")
        with self._lock:
            self._counts[i] += 1
            self._sum += seconds

    def snapshot(self) -> Histogram:
        with self._lock:
            counts = list(self._counts)
            total = self._sum
        cumulative = tuple(itertools.accumulate(counts))
        return Histogram(self.buckets, cumulative[:-1], cumulative[-1], total)

    def after_fork(self) -> None:
        self._lock = threading.Lock()


@dataclass(frozen=True)
class ServerHealth:
    """One nameserver as this resolver sees it.

    - ``backed_off``: skipped now, after a try it did not answer at all
      (``server_backoff``);
    - ``queries``: queries sent to it (UDP and TCP); ``responses``: replies it
      gave (any RCODE); ``timeouts``: queries it left unanswered;
      ``errors``: queries lost to network errors or malformed replies;
    - ``last_rtt_seconds``: the round trip of its latest reply;
      ``last_response_age_seconds``: how long ago that reply came (on the
      resolver's clock). Both are None before its first reply.
    """

    backed_off: bool = False
    queries: int = 0
    responses: int = 0
    timeouts: int = 0
    errors: int = 0
    last_rtt_seconds: float | None = None
    last_response_age_seconds: float | None = None


@dataclass(frozen=True)
class UpstreamSnapshot:
    """What ``UpstreamMetrics.snapshot`` returns (see the module doc)."""

    queries_by_type: dict[str, int] = field(default_factory=dict)
    queries_by_result: dict[str, int] = field(default_factory=dict)
    latency: Histogram = field(default_factory=Histogram)
    servers: dict[str, ServerHealth] = field(default_factory=dict)


class _Tally:
    __slots__ = (
        "backoff_until",
        "errors",
        "last_response",
        "last_rtt",
        "queries",
        "responses",
        "timeouts",
    )

    def __init__(self) -> None:
        self.queries = 0
        self.responses = 0
        self.timeouts = 0
        self.errors = 0
        self.last_rtt: float | None = None
        self.last_response: float | None = None
        self.backoff_until: float | None = None


class UpstreamMetrics:
    """The upstream tallies of one resolver (shared by the sync and async
    shells of one core). ``clock`` is the resolver's clock: it dates replies
    and backoffs; latencies are measured by the caller and passed in."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        self._clock = clock
        self.latency = LatencyHistogram(buckets)
        self._by_type = dict.fromkeys(_KNOWN_TYPES, 0)
        self._by_result = dict.fromkeys(_KNOWN_RESULTS, 0)
        self._servers: dict[str, _Tally] = {}
        self._lock = threading.Lock()

    def _tally(self, server: str) -> _Tally:
        tally = self._servers.get(server)
        if tally is None:
            tally = self._servers[server] = _Tally()
        return tally

    def add_servers(self, servers: Iterable[str]) -> None:
        """Report these nameservers (at zero) before they are first asked."""
        with self._lock:
            for server in servers:
                self._tally(server)

    def sent(self, server: str, rdtype: str) -> None:
        """A query for ``rdtype`` went to ``server``."""
        with self._lock:
            self._by_type[rdtype] = self._by_type.get(rdtype, 0) + 1
            self._tally(server).queries += 1

    def answered(self, server: str, result: str, seconds: float) -> None:
        """``server`` replied (``result``: the RCODE, or ``TRUNCATED``) after
        ``seconds``."""
        self.latency.observe(seconds)
        now = self._clock()
        with self._lock:
            self._by_result[result] = self._by_result.get(result, 0) + 1
            tally = self._tally(server)
            tally.responses += 1
            tally.last_rtt = seconds
            tally.last_response = now

    def failed(self, server: str, result: str) -> None:
        """A query to ``server`` got no usable reply: ``TIMEOUT``,
        ``NETWORK_ERROR`` or ``MALFORMED``."""
        if result not in _FAILURES:
            raise ValueError(f"not a failure result: {result!r}")
        with self._lock:
            self._by_result[result] = self._by_result.get(result, 0) + 1
            tally = self._tally(server)
            if result == TIMEOUT:
                tally.timeouts += 1
            else:
                tally.errors += 1

    def backoff(self, server: str, until: float | None) -> None:
        """``server`` is skipped until ``until`` (resolver clock); None: not at all."""
        with self._lock:
            self._tally(server).backoff_until = until

    def snapshot(self) -> UpstreamSnapshot:
        now = self._clock()
        with self._lock:
            servers = {
                name: ServerHealth(
                    backed_off=t.backoff_until is not None and t.backoff_until > now,
                    queries=t.queries,
                    responses=t.responses,
                    timeouts=t.timeouts,
                    errors=t.errors,
                    last_rtt_seconds=t.last_rtt,
                    last_response_age_seconds=(
                        None if t.last_response is None else max(0.0, now - t.last_response)
                    ),
                )
                for name, t in self._servers.items()
            }
            by_type = dict(self._by_type)
            by_result = dict(self._by_result)
        return UpstreamSnapshot(by_type, by_result, self.latency.snapshot(), servers)

    def after_fork(self) -> None:
        """In a forked child: fresh locks (the tallies stay, as the cache does)."""
        self._lock = threading.Lock()
        self.latency.after_fork()
