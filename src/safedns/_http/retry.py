"""Retries that cannot become a storm: ``RetryPolicy`` and ``RetryBudget``.

Pure and sans-I/O: no sockets, no sleeping, time and randomness come in as
arguments. ``RetryPolicy`` answers two questions, *may this attempt be tried
again?* (``should_retry``) and *after how long?* (``delay``: exponential
backoff with full jitter, or the server's ``Retry-After``). ``RetryBudget``
caps what all requests of a transport may add in retries together, so a
failing backend sees at most ``1 + ratio`` times its normal load (plus a small
floor) instead of ``attempts`` times. ``RetryRun`` walks one request through
its attempts; the sync and async transports only send, sleep and close
responses as it says.

The rules, in order (``should_retry``)::

    attempts used up                       -> no
    body cannot be sent again              -> no
    TLS certificate refused                -> no  (retrying cannot fix it)
    method in retry_methods (idempotent)   -> yes on connect and transport
                                              errors, and on retry_on_status
    any other method (POST, PATCH)         -> only on a connect failure where
                                              nothing of the request was sent
"""

from __future__ import annotations

import contextlib
import email.utils
import enum
import math
import random as _random_module
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

__all__ = ["Decision", "Failure", "RetryBudget", "RetryPolicy", "RetryRun", "parse_retry_after"]

#: Methods that RFC 9110 defines as idempotent: sending one twice has the same
#: effect as once, so a retry after an unclear failure is safe.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})

#: Bad gateway, service unavailable, gateway timeout: the answer of a
#: struggling or restarting backend, worth one more try elsewhere or later.
RETRY_STATUSES = frozenset({502, 503, 504})


class Failure(enum.Enum):
    """How an attempt failed, as far as retrying is concerned."""

    #: The connection could not be made (refused, unreachable, connect
    #: timeout): nothing of the request was sent.
    CONNECT = "connect"
    #: The server's TLS certificate was refused: retrying cannot fix it.
    TLS_CERTIFICATE = "tls_certificate"
    #: The request may have been (partly) sent: read/write errors and
    #: timeouts, a connection dropped mid-response.
    TRANSPORT = "transport"
    #: Anything else (pool timeout, protocol misuse, unsupported URL): not
    #: a failure a retry addresses.
    OTHER = "other"


@dataclass(frozen=True)
class RetryPolicy:
    """When and how soon to retry a request. Immutable; share it freely.

    - ``attempts``: tries in total, the first included (3: at most 2 retries;
      1: never retry). Must be >= 1.
    - ``backoff``: seconds; the n-th retry waits a uniformly random time in
      ``[0, min(backoff_max, backoff * 2 ** (n - 1))]`` (full jitter, so
      clients that failed together do not come back together). 0: no wait.
    - ``backoff_max``: seconds, the longest wait, also the cap on a server's
      ``Retry-After``.
    - ``retry_on_status``: response statuses retried (for ``retry_methods``).
    - ``retry_methods``: methods retried after a response or after an error
      that may have come after the request was sent. Other methods are
      retried only when nothing was sent (a connect failure).
    - ``respect_retry_after``: wait what the server's ``Retry-After`` says
      (seconds or an HTTP date), at most ``backoff_max``, instead of the
      jittered backoff.
    - ``random``: returns a float in [0, 1); inject a seeded one in tests.

    Whatever the policy allows, a ``RetryBudget`` may still refuse a retry.
    """

    attempts: int = 3
    backoff: float = 0.1
    backoff_max: float = 2.0
    retry_on_status: frozenset[int] = RETRY_STATUSES
    retry_methods: frozenset[str] = IDEMPOTENT_METHODS
    respect_retry_after: bool = True
    random: Callable[[], float] = field(default=_random_module.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise TypeError(f"attempts must be an int, got {self.attempts!r}")
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1 (1: never retry), got {self.attempts}")
        for name in ("backoff", "backoff_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number of seconds, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
        statuses = frozenset(self.retry_on_status)
        for status in statuses:
            if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
                raise ValueError(f"retry_on_status: not an HTTP status: {status!r}")
        object.__setattr__(self, "retry_on_status", statuses)
        methods = frozenset(self.retry_methods)
        for method in methods:
            if not isinstance(method, str) or not method:
                raise ValueError(f"retry_methods: not a method name: {method!r}")
        object.__setattr__(self, "retry_methods", frozenset(m.upper() for m in methods))

    def should_retry(
        self,
        method: str,
        attempt: int,
        *,
        status: int | None = None,
        error: Failure | None = None,
        body_replayable: bool = True,
        nothing_sent: bool = False,
    ) -> bool:
        """May a request be tried again after its ``attempt``-th try (1-based)
        ended with ``status`` (a response) or ``error``?

        ``nothing_sent`` is True when no byte of the request left (a connect
        failure is always so). The budget is not consulted here.
        """
        if attempt >= self.attempts or not body_replayable:
            return False
        if error is Failure.CONNECT:
            nothing_sent = True
        if error is Failure.TLS_CERTIFICATE or error is Failure.OTHER:
            return False
        if method.upper() not in self.retry_methods:
            return error is not None and nothing_sent
        if error is not None:
            return True
        return status is not None and status in self.retry_on_status

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before the try after the ``attempt``-th (1-based)."""
        if retry_after is not None and self.respect_retry_after:
            return min(max(0.0, retry_after), self.backoff_max)
        if self.backoff <= 0:
            return 0.0
        ceiling = min(self.backoff_max, self.backoff * 2.0 ** min(attempt - 1, 60))
        return self.random() * ceiling


def parse_retry_after(value: object, now_wall: float) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (RFC 9110 10.2.3): a
    number of seconds (ASCII digits only) or an HTTP date, compared with
    ``now_wall`` (seconds since the epoch). None when absent or anything
    else, never negative, never an exception: the value is the server's
    and may be anything (``"²"`` passes ``str.isdigit`` and fails ``float``)."""
    if not isinstance(value, str):
        return None
    value = value.strip(" \t")
    if not value or not value.isascii():
        return None
    if value.isdigit():
        return float(min(int(value[:12]), 10**11))  # a huge number is just "long"
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when is None or when.tzinfo is None:
            return None
        return max(0.0, when.timestamp() - now_wall)
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None


class RetryBudget:
    """How many retries the requests of one transport may add, together.

    Over the last ``window`` seconds, retries may number at most
    ``min_per_second * window + ratio * requests`` (requests counted once
    each, however many attempts they took). With the defaults, a transport
    that sends 100 requests/s to a dead backend adds at most 10 + 10 retries
    per second: 1.2x the load, where ``attempts=3`` alone would be 3x. When
    the budget is spent, ``try_spend_retry`` returns False and the caller
    gets the original error or response at once.

    Thread-safe. Time comes from ``clock`` (monotonic seconds) or ``now``.
    The window slides in tenths: counts leave it ``window / 10`` at a time.
    """

    _SLOTS = 10

    def __init__(
        self,
        ratio: float = 0.1,
        min_per_second: float = 10,
        window: float = 10.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in (
            ("ratio", ratio),
            ("min_per_second", min_per_second),
            ("window", window),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
        if window <= 0:
            raise ValueError(f"window must be > 0 seconds, got {window!r}")
        self.ratio = float(ratio)
        self.min_per_second = float(min_per_second)
        self.window = float(window)
        self._clock = clock
        self._width = self.window / self._SLOTS
        # (slot number, requests, retries), oldest first, at most _SLOTS of them.
        self._slots: deque[list[int]] = deque()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self.ratio:g}, min_per_second={self.min_per_second:g}, "
            f"window={self.window:g})"
        )

    def _current(self, now: float) -> list[int]:
        slot = math.floor(now / self._width)
        slots = self._slots
        while slots and slots[0][0] <= slot - self._SLOTS:
            slots.popleft()
        if not slots or slots[-1][0] < slot:
            slots.append([slot, 0, 0])
        return slots[-1]

    def _balance(self) -> float:
        requests = sum(s[1] for s in self._slots)
        retries = sum(s[2] for s in self._slots)
        return self.min_per_second * self.window + self.ratio * requests - retries

    def record_request(self, now: float | None = None) -> None:
        """Count one request (its first attempt)."""
        now = self._clock() if now is None else now
        with self._lock:
            self._current(now)[1] += 1

    def try_spend_retry(self, now: float | None = None) -> bool:
        """Take one retry from the budget: True if it had one, else False
        (and nothing is spent)."""
        now = self._clock() if now is None else now
        with self._lock:
            current = self._current(now)
            if self._balance() < 1:
                return False
            current[2] += 1
            return True

    def available(self, now: float | None = None) -> float:
        """Retries the budget would allow now (spends nothing)."""
        now = self._clock() if now is None else now
        with self._lock:
            self._current(now)
            return max(0.0, self._balance())


@dataclass(frozen=True)
class Decision:
    """What to do after an attempt: ``retry`` after ``delay`` seconds, or stop.
    ``denied``: the policy would retry, but the budget is spent."""

    retry: bool
    delay: float = 0.0
    denied: bool = False


class RetryRun:
    """One request's way through its attempts, shared by the sync and async
    transports: every decision of their retry loop is here, and they only
    send, sleep and close what it says::

        run = RetryRun(policy, budget, method, body_replayable=..., classify=...)
        while True:
            with run.trying():               # counts the try; a retried error ends here
                response = send(request)
                if not run.after_response(response.status, response.headers).retry:
                    return response
                close(response)
            sleep(run.delay)

    ``attempt`` is the number of tries made so far (1 while the first is
    under way); ``delay`` the seconds to wait before the next one. Creating a
    run counts the request in the budget. ``classify`` says what an exception
    raised by a try means for retrying (default: ``Failure.OTHER``, never
    retried). ``tally``, if given, is called with the name of each event, as
    the fields of ``safedns.httpx.TransportStats`` name them: ``"requests"``
    (once), ``"attempts"``, ``"retries"``, ``"retries_denied"``.
    """

    __slots__ = (
        "attempt",
        "body_replayable",
        "budget",
        "classify",
        "delay",
        "method",
        "policy",
        "tally",
    )

    def __init__(
        self,
        policy: RetryPolicy,
        budget: RetryBudget | None,
        method: str,
        *,
        body_replayable: bool,
        classify: Callable[[Exception], Failure] | None = None,
        tally: Callable[[str], None] | None = None,
    ) -> None:
        self.policy = policy
        self.budget = budget
        self.method = method
        self.body_replayable = body_replayable
        self.classify = classify
        self.tally = tally
        self.attempt = 1
        self.delay = 0.0
        self._count("requests")
        if budget is not None and policy.attempts > 1:
            budget.record_request()

    def _count(self, event: str) -> None:
        if self.tally is not None:
            self.tally(event)

    @contextlib.contextmanager
    def trying(self) -> Iterator[None]:
        """Around one try (``with run.trying(): send``): counts it, and
        ends there an exception that the policy retries and the budget
        allows (``delay`` then says how long to wait). Any other exception,
        and ``BaseException`` always, goes on to the caller as raised."""
        self.begin()
        try:
            yield
        except Exception as exc:
            failure = self.classify(exc) if self.classify is not None else Failure.OTHER
            if not self.after_error(failure).retry:
                raise

    def begin(self) -> None:
        """A try starts (counted as an attempt)."""
        self._count("attempts")

    def after_error(self, error: Failure) -> Decision:
        """The attempt raised; ``error`` says how it failed."""
        allowed = self.policy.should_retry(
            self.method, self.attempt, error=error, body_replayable=self.body_replayable
        )
        return self._decide(allowed, None)

    def after_status(self, status: int, retry_after: float | None = None) -> Decision:
        """The attempt got a response with ``status`` (and ``Retry-After``,
        in seconds, if it had one)."""
        if status not in self.policy.retry_on_status:
            return Decision(False)
        allowed = self.policy.should_retry(
            self.method, self.attempt, status=status, body_replayable=self.body_replayable
        )
        return self._decide(allowed, retry_after)

    def after_response(
        self, status: int, headers: Mapping[str, str], now_wall: float | None = None
    ) -> Decision:
        """The attempt got a response with ``status`` and ``headers`` (whose
        ``Retry-After``, if any, is read against ``now_wall``, seconds since
        the epoch, default now). A response to be retried must be closed
        before the next try."""
        if status not in self.policy.retry_on_status:
            return Decision(False)
        now_wall = time.time() if now_wall is None else now_wall
        return self.after_status(status, parse_retry_after(headers.get("Retry-After"), now_wall))

    def _decide(self, allowed: bool, retry_after: float | None) -> Decision:
        if not allowed:
            return Decision(False)
        if self.budget is not None and not self.budget.try_spend_retry():
            self._count("retries_denied")
            return Decision(False, denied=True)
        self.delay = self.policy.delay(self.attempt, retry_after)
        self.attempt += 1
        self._count("retries")
        return Decision(True, self.delay)
