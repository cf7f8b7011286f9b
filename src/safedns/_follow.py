"""Connections that follow DNS: which address to dial first, and when a
keep-alive connection must not be used again. Pure (no sockets; time comes in
as ``now``), shared by the sync and async httpx transports.

- ``interleave``: the order to try a host's addresses in, IPv6 and IPv4
  alternating (RFC 8305, section 4), so one dead family costs one attempt.
- ``AddressBook``: each host's current answer, as the transport last read it
  from the resolver (a cache hit on every request; a query only when the TTL
  ran out, through the resolver's own refresh).
- ``ConnectionWatch``: one connection's peer address and age; it says when the
  connection must retire: its address left the host's answer, or it is older
  than ``max_connection_age``.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import itertools
import threading
from collections.abc import Iterable, Sequence

__all__ = ["AddressBook", "ConnectionWatch", "Retirement", "interleave", "is_ip_literal"]


@functools.lru_cache(maxsize=4096)
def is_ip_literal(host: str) -> bool:
    """True for ``"192.0.2.1"`` and ``"2001:db8::1"`` (with or without brackets).
    Asked on every request: answers are memoised."""
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def _canonical(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address.split("%", 1)[0]))
    except ValueError:
        return address


def interleave(addresses: Sequence[str]) -> list[str]:
    """``addresses`` (duplicates dropped), IPv6 and IPv4 alternating, IPv6
    first, each family in its given order (RFC 8305's "First Address Family
    Count" of 1)."""
    seen: dict[str, None] = dict.fromkeys(addresses)
    v6 = [a for a in seen if ":" in a]
    v4 = [a for a in seen if ":" not in a]
    if not v6 or not v4:
        return list(seen)
    out: list[str] = []
    for pair in itertools.zip_longest(v6, v4):
        out.extend(a for a in pair if a is not None)
    return out


class AddressBook:
    """The current answer of every host a transport talks to.

    ``update`` is called with what the resolver returned (cheap when nothing
    changed); ``current`` is read on every connection checkout. Safe across
    threads: each host's entry is replaced whole. At most ``max_hosts``
    hosts are kept (the oldest is dropped first).
    """

    def __init__(self, max_hosts: int = 10_000) -> None:
        if max_hosts < 1:
            raise ValueError(f"max_hosts must be >= 1, got {max_hosts}")
        self.max_hosts = max_hosts
        self._raw: dict[str, tuple[str, ...]] = {}
        self._current: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()

    def update(self, host: str, addresses: Iterable[str]) -> None:
        raw = tuple(addresses)
        if self._raw.get(host) == raw:
            return
        canonical = frozenset(_canonical(a) for a in raw)
        with self._lock:
            if host not in self._raw and len(self._raw) >= self.max_hosts:
                oldest = next(iter(self._raw))  # bounded: the longest-known host goes
                del self._raw[oldest], self._current[oldest]
            self._raw[host] = raw
            self._current[host] = canonical

    def addresses(self, host: str) -> tuple[str, ...] | None:
        """The host's addresses in the resolver's order, or None."""
        return self._raw.get(host)

    def current(self, host: str) -> frozenset[str] | None:
        """The host's addresses, or None if the host was never resolved."""
        return self._current.get(host)

    def forget(self, host: str) -> None:
        with self._lock:
            self._raw.pop(host, None)
            self._current.pop(host, None)


class Retirement(enum.Enum):
    """Why a connection stops being reused."""

    DNS = "dns"  # its address left the host's answer
    AGE = "age"  # older than max_connection_age


class ConnectionWatch:
    """One pooled connection to ``host``, opened at ``opened``.

    The peer address is learnt once the connection is up (``learn``). Until
    then, and for hosts never resolved (literal IPs, proxies), DNS retires
    nothing. Once retired, a connection stays retired.
    """

    __slots__ = ("book", "host", "max_age", "opened", "peer", "retired")

    def __init__(
        self, host: str, book: AddressBook, opened: float, max_age: float | None = None
    ) -> None:
        self.host = host
        self.book = book
        self.opened = opened
        self.max_age = max_age
        self.peer: str | None = None
        self.retired: Retirement | None = None

    def learn(self, peer: object) -> None:
        """Record the peer from ``get_extra_info("server_addr")``: ``(ip, port)``
        or ``(ip, port, flow, scope)``; anything else is ignored."""
        if self.peer is None and isinstance(peer, tuple) and peer and isinstance(peer[0], str):
            self.peer = _canonical(peer[0])

    def check(self, now: float) -> Retirement | None:
        """Retire now? Returns the reason the first time it becomes true, and
        None before and after (``retired`` keeps the reason)."""
        if self.retired is not None:
            return None
        reason: Retirement | None = None
        if self.max_age is not None and now - self.opened >= self.max_age:
            reason = Retirement.AGE
        elif self.peer is not None:
            current = self.book.current(self.host)
            if current is not None and self.peer not in current:
                reason = Retirement.DNS
        self.retired = reason
        return reason
