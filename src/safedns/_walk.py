"""The search-list walk of one lookup, as a little state machine (sans-I/O).

``Walk`` goes through the planned candidate names: the shell (through
``Core.walk``) asks for the next candidate's questions, feeds back their
outcomes (``Got`` or ``UpstreamFailure``), and is told to go on, stop with an
answer, or raise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from safedns._config import ResolverConfig
from safedns._exceptions import NameNotFound, TemporaryFailure
from safedns._planning import plan
from safedns._records import Answer, Negative, Positive, Result, UpstreamFailure

__all__ = ["Got", "Key", "Outcome", "Walk"]

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Got:
    """The outcome of one question: a result, and how it was obtained."""

    result: Result
    expires: float
    refresh_at: float
    from_cache: bool
    stale: bool


Outcome = Got | UpstreamFailure


class Walk:
    """The search-list walk for one lookup, as a little state machine.

    >>> walk = Walk("my-svc", ("A",), config)          # doctest: +SKIP
    >>> while (questions := walk.next()) is not None:   # doctest: +SKIP
    ...     if walk.feed(ask(questions), clock()):
    ...         return walk.candidate, walk.outcomes
    >>> walk.fail()                                      # raises NameNotFound
    """

    __slots__ = (
        "_alias",
        "_candidates",
        "_display",
        "_index",
        "_nxdomain",
        "_rdtypes",
        "_recheck",
        "candidate",
        "outcomes",
        "stale",
        "valid_until",
    )

    def __init__(self, name: str | bytes, rdtypes: Sequence[str], config: ResolverConfig) -> None:
        self._candidates = plan(name, config)
        self._rdtypes = tuple(rdtypes)
        self._recheck = config.failure_recheck
        self._index = 0
        self._nxdomain = True
        self._alias: str | None = None
        self._display = name.decode("ascii", "replace") if isinstance(name, bytes) else str(name)
        self.candidate = ""
        self.outcomes: list[Outcome] = []
        #: Until when the walk would run the same way: the earliest refresh
        #: point of every cached answer it used, negative ones included.
        self.valid_until = math.inf
        #: True when any answer the walk used was stale.
        self.stale = False

    def next(self) -> list[Key] | None:
        """The next candidate's questions, or None when every candidate is done."""
        if self._index >= len(self._candidates):
            return None
        self.candidate = self._candidates[self._index]
        self._index += 1
        return [(self.candidate, rdtype) for rdtype in self._rdtypes]

    def feed(self, outcomes: list[Outcome], now: float) -> bool:
        """True when the current candidate has data (the walk is over). Raises
        ``TemporaryFailure`` when upstream failed before any candidate had.

        A candidate that answered some questions and failed others (A
        answered, AAAA timed out) ends the walk with what it has, but the
        walk is valid only until ``now + failure_recheck``: the failed
        question is asked again then, not when the answered one expires."""
        self.outcomes = outcomes
        for outcome in outcomes:
            if isinstance(outcome, Got):
                self.valid_until = min(self.valid_until, outcome.refresh_at)
                self.stale = self.stale or outcome.stale
        if any(isinstance(o, Got) and isinstance(o.result, Positive) for o in outcomes):
            if any(isinstance(o, UpstreamFailure) for o in outcomes):
                self.valid_until = min(self.valid_until, now + self._recheck)
            return True
        for outcome in outcomes:
            if isinstance(outcome, UpstreamFailure):
                rdtypes = "/".join(self._rdtypes)
                raise TemporaryFailure(self._display, rdtypes, outcome.reason) from outcome
        self._nxdomain = self._nxdomain and all(
            isinstance(o, Got) and isinstance(o.result, Negative) and o.result.nxdomain
            for o in outcomes
        )
        for outcome in outcomes:
            if self._alias is None and isinstance(outcome, Got):
                end = outcome.result.canonical_name
                if end.lower() != self.candidate.lower():
                    self._alias = end
        return False

    def fail(self) -> NameNotFound:
        """The error for a walk in which no candidate had data."""
        return NameNotFound(
            self._display,
            "/".join(self._rdtypes),
            nxdomain=self._nxdomain,
            canonical_name=self._alias,
        )

    def answers(self, answer: Callable[[str, str, Got, float], Answer]) -> list[Answer]:
        """The answers of the candidate that had data, one per type with data,
        each made by ``answer`` (``Core.answer``: the walk knows no ``Core``)."""
        return [
            answer(self.candidate, rdtype, got, self.valid_until)
            for rdtype, got in zip(self._rdtypes, self.outcomes, strict=True)
            if isinstance(got, Got) and isinstance(got.result, Positive)
        ]
