"""The upstream query budget: a token bucket, pure arithmetic on a clock reading.

``upstream_qps`` tokens arrive per second up to ``upstream_burst``; every
question sent upstream spends one. A question that finds the bucket empty
may *reserve* the next token instead (``reserve``): the bucket goes into
debt by one token, and the question is told how long to wait until that
token has arrived. Later questions queue behind the debt, so tokens are
handed out in arrival order, and a question whose wait would exceed its
``max_wait`` (``ResolverConfig.budget_wait``, capped by what the lookup's own
timeout leaves) reserves nothing and fails at once.

The trade-off: upstream load is exactly what it was without waiting (no
more than ``burst + qps * elapsed`` questions are ever sent, because a
reserved token is one that has arrived by the time it is used), but a burst
of new names costs latency instead of errors. A warm-up of 300 names, or 30
new names in a second under ``upstream_qps=10``, is absorbed by waiting; a
sustained overload still fails, after ``budget_wait`` at most. Stale data on
hand is served at once rather than waiting; background refreshes never wait
or queue (``try_acquire``), so they never delay a caller.

The shells only sleep for the delay ``reserve`` returns (``time.sleep`` or
``asyncio.sleep``); the arithmetic lives here and is tested on a fake clock.
"""

from __future__ import annotations

import threading

__all__ = ["TokenBucket"]


class TokenBucket:
    """A thread-safe token bucket. Time comes in as ``now`` (seconds on any
    monotonic clock), so tests drive it without sleeping."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst!r}")
        self.rate = float(rate)
        self.burst = float(burst)
        self._tokens = float(burst)
        self._last = now
        self._lock = threading.Lock()

    def try_acquire(self, now: float, tokens: float = 1.0) -> bool:
        """Spend ``tokens`` if the bucket holds them; False (spending nothing)
        otherwise."""
        with self._lock:
            self._refill(now)
            if self._tokens >= tokens:
                self._tokens -= tokens
                return True
            return False

    def reserve(self, now: float, max_wait: float, tokens: float = 1.0) -> float | None:
        """Take ``tokens`` now or on credit: the seconds until they are yours
        (0.0: at once), or None, reserving nothing, when that would be more
        than ``max_wait`` seconds. Reservations are served in the order they
        are made: each one deepens the debt the next one waits behind."""
        with self._lock:
            self._refill(now)
            if self._tokens >= tokens:
                self._tokens -= tokens
                return 0.0
            delay = (tokens - self._tokens) / self.rate
            if delay > max_wait:
                return None
            self._tokens -= tokens
            return delay

    def _refill(self, now: float) -> None:
        elapsed = now - self._last
        if elapsed > 0:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._last = now

    def available(self, now: float) -> float:
        """Tokens the bucket would hold at ``now`` (spends nothing; negative
        while reservations are outstanding)."""
        with self._lock:
            return min(self.burst, self._tokens + max(0.0, now - self._last) * self.rate)
