"""What an HTTP adapter counts, for its ``stats()``: ``TransportStats`` (a
snapshot) and ``TransportCounters`` (the live counters), shared by every
adapter (``safedns.httpx``, ``safedns.aiohttp`` ...) and importing no HTTP
client.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from safedns._stats import Counter

__all__ = ["TransportCounters", "TransportStats"]


@dataclass(frozen=True)
class TransportStats:
    """A snapshot of a transport's counters (``transport.stats()``).

    - ``requests``: requests handled (each once, however many attempts).
    - ``attempts``: tries sent, first tries included.
    - ``retries``: tries after the first (``attempts - requests``).
    - ``retries_denied``: retries the policy allowed but the budget refused;
      the caller got the original response or error at once.
    - ``connections_opened``: TCP connections made (to servers or proxies).
    - ``connections_retired_dns``: keep-alive connections closed because
      their address left the host's DNS answer.
    - ``connections_retired_age``: closed for passing ``max_connection_age``.
    """

    requests: int = 0
    attempts: int = 0
    retries: int = 0
    retries_denied: int = 0
    connections_opened: int = 0
    connections_retired_dns: int = 0
    connections_retired_age: int = 0


_FIELDS = tuple(f.name for f in fields(TransportStats))


class TransportCounters:
    """One ``safedns`` ``Counter`` per ``TransportStats`` field, as the
    resolvers keep theirs (no lock on the request path)."""

    def __init__(self) -> None:
        self._counts = {name: Counter() for name in _FIELDS}

    def bump(self, name: str) -> None:
        self._counts[name].inc()

    def snapshot(self) -> TransportStats:
        return TransportStats(**{n: c.value for n, c in self._counts.items()})
