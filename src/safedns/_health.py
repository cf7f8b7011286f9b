"""Rate-limited health logging: what an operator needs to hear, once.

:class:`HealthLog` is fed events by the resolver core (cheap calls, no I/O
of their own) and logs under the ``safedns`` logger:

- one WARNING when a resolver starts serving stale answers (upstream is
  failing) and one when its query budget runs dry, each with counts;
- while the condition lasts, at most one reminder WARNING per
  ``remind_after`` seconds (default 300), with the counts since the last line;
- one INFO line when upstream answers again, with the totals and duration.

Never a line per lookup. Time comes from an injectable clock. Thread-safe:
``upstream_ok`` on a healthy resolver is one attribute read and no lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BUDGET", "STALE", "HealthLog"]

STALE = "stale"
BUDGET = "budget"

_WHAT = {
    STALE: ("serving stale answers: upstream DNS is failing", "stale answer"),
    BUDGET: ("the upstream query budget is spent: lookups are being denied", "denied lookup"),
}


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


@dataclass
class _Episode:
    """One stretch of a degraded condition."""

    began: float
    total: int = 0
    since_line: int = 0
    last_line: float = 0.0
    last_event: float = 0.0


class HealthLog:
    """Turns per-lookup events into a handful of log lines (see the module doc).

    ``name`` (e.g. the nameservers) is included in every line to tell
    resolvers apart.
    """

    def __init__(
        self,
        logger: logging.Logger | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        remind_after: float = 300.0,
        quiet: float = 10.0,
        name: str = "",
    ) -> None:
        if not remind_after > 0:
            raise ValueError(f"remind_after must be > 0, got {remind_after}")
        self.logger = logger if logger is not None else logging.getLogger("safedns")
        self.clock = clock
        self.remind_after = remind_after
        #: Seconds without a denial after which a budget episode is over.
        self.quiet = quiet
        self.name = name
        self._lock = threading.Lock()
        self._episodes: dict[str, _Episode] = {}
        self.degraded = False  # read without the lock on the hot path

    # ---------------------------------------------------------------- events

    def stale_served(self, count: int = 1) -> None:
        """``count`` answers were just served stale."""
        self._event(STALE, count)

    def budget_denied(self, count: int = 1) -> None:
        """``count`` lookups were just denied (or made to wait) by the budget."""
        self._event(BUDGET, count)

    def upstream_ok(self) -> None:
        """Upstream answered a query: serving stale is over."""
        if self.degraded:
            self._end(STALE, quiet=0.0)

    def budget_ok(self) -> None:
        """The budget let a query through at once: a budget episode is over
        once no lookup was denied for ``quiet`` seconds (so a budget that runs
        dry again and again under a sustained flood stays one episode)."""
        if self.degraded:
            self._end(BUDGET, quiet=self.quiet)

    def _end(self, kind: str, quiet: float) -> None:
        with self._lock:
            now = self.clock()
            episode = self._episodes.get(kind)
            if episode is None or now - episode.last_event < quiet:
                return
            del self._episodes[kind]
            self.degraded = bool(self._episodes)
        _, unit = _WHAT[kind]
        what = "upstream DNS answers again" if kind == STALE else "the query budget recovered"
        self.logger.info(
            "%s%s after %.1f s (%s in all)",
            self._prefix(),
            what,
            now - episode.began,
            _count(episode.total, unit),
        )

    # -------------------------------------------------------------- internal

    def _prefix(self) -> str:
        return f"resolver {self.name}: " if self.name else ""

    def _event(self, kind: str, count: int) -> None:
        line: tuple[str, int, int, float] | None = None
        with self._lock:
            now = self.clock()
            episode = self._episodes.get(kind)
            if episode is None:
                episode = self._episodes[kind] = _Episode(began=now, last_line=now, last_event=now)
                self.degraded = True
                episode.total = count
                line = ("start", count, count, 0.0)
            else:
                episode.last_event = now
                episode.total += count
                episode.since_line += count
                if now - episode.last_line >= self.remind_after:
                    line = ("still", episode.since_line, episode.total, now - episode.last_line)
                    episode.since_line = 0
                    episode.last_line = now
        if line is None:
            return
        state, recent, total, span = line
        what, unit = _WHAT[kind]
        if state == "start":
            self.logger.warning("%s%s (%s so far)", self._prefix(), what, _count(total, unit))
        else:
            self.logger.warning(
                "%sstill %s (%s in the last %.0f s, %d in all)",
                self._prefix(),
                what,
                _count(recent, unit),
                span,
                total,
            )
