"""The upstream query budget: a token bucket, pure arithmetic on a clock reading.

``upstream_qps`` tokens arrive per second up to ``upstream_burst``; every
question sent upstream spends one. When the bucket is empty the question is
answered from stale data or fails at once; it never waits.
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
            elapsed = now - self._last
            if elapsed > 0:
                self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
                self._last = now
            if self._tokens >= tokens:
                self._tokens -= tokens
                return True
            return False

    def available(self, now: float) -> float:
        """Tokens the bucket would hold at ``now`` (spends nothing)."""
        with self._lock:
            return min(self.burst, self._tokens + max(0.0, now - self._last) * self.rate)
