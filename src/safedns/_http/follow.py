"""Connections that follow DNS, and DNS kept off the request path. Pure (no
sockets; time comes in as ``now``, on the resolver's clock).

- ``interleave``: the order to try a host's addresses in, IPv6 and IPv4
  alternating (RFC 8305, section 4), so one dead family costs one attempt.
- ``AddressBook``: each host's last answer as the transport read it from the
  resolver, with what it may still be used for::

      now < expires                 fresh: dial it, pooled connections follow it
      expires <= now < usable_until stale: dial it at once, refresh in the
                                    background (stale-while-revalidate)
      usable_until <= now          unknown: a new connection must ask the
                                    resolver (pooled ones keep going)

  ``usable_until`` is ``expires + stale_ttl`` for a fresh answer (the
  resolver's own ``stale_ttl``: with serve-stale off, 0), and ``expires`` for
  an answer the resolver already served stale. "DNS unknown" never retires a
  connection: only an answer without its address does.
- ``ConnectionWatch``: one connection's peer address and age; it says when the
  connection must retire: its address left the host's answer, or it is older
  than ``max_connection_age``.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import itertools
import socket
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "AddressBook",
    "ConnectionWatch",
    "HostAnswer",
    "Retirement",
    "canonical",
    "family_for",
    "interleave",
    "is_ip_literal",
    "is_local_name",
]

#: After a background refresh failed, the next one waits this long (seconds):
#: a dead DNS is asked about a host at most once a second, not per request.
REFRESH_BACKOFF = 1.0


@functools.lru_cache(maxsize=4096)
def is_ip_literal(host: str) -> bool:
    """True for ``"192.0.2.1"`` and ``"2001:db8::1"`` (with or without brackets).
    Asked on every request: answers are memoised."""
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def is_local_name(host: str) -> bool:
    """``localhost`` and the names under it (RFC 6761): the resolver answers
    them without DNS (``resolve_addresses``), so there is no answer to follow."""
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def family_for(local_address: str | None) -> int:
    """The address family to resolve for: that of a bound ``local_address``,
    else both (``AF_UNSPEC``)."""
    if local_address is None:
        return socket.AF_UNSPEC
    return socket.AF_INET6 if ":" in local_address else socket.AF_INET


def canonical(address: str) -> str:
    """``address`` as ``ipaddress`` writes it (``"2001:DB8::01"`` is
    ``"2001:db8::1"``); anything that is not an address, unchanged."""
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


@dataclass(frozen=True, slots=True)
class HostAnswer:
    """One host's answer as an ``AddressBook`` holds it (see the module's table)."""

    addresses: tuple[str, ...]
    current: frozenset[str]
    expires: float
    usable_until: float

    def fresh(self, now: float) -> bool:
        return now < self.expires

    def usable(self, now: float) -> bool:
        return now < self.usable_until


class AddressBook:
    """The last answer of every host a transport talks to.

    ``learn`` is called with what the resolver returned; ``current`` is read
    at every connection checkout, ``dialable`` before every new connection,
    ``refresh_due`` before every request. Safe across threads: each host's
    entry is replaced whole. At most ``max_hosts`` hosts are kept (the
    longest-known goes first).
    """

    def __init__(self, max_hosts: int = 10_000) -> None:
        if max_hosts < 1:
            raise ValueError(f"max_hosts must be >= 1, got {max_hosts}")
        self.max_hosts = max_hosts
        self._hosts: dict[str, HostAnswer] = {}
        #: Hosts whose refresh is under way, and when a failed one may be retried.
        self._refreshing: set[str] = set()
        self._not_before: dict[str, float] = {}
        self._lock = threading.Lock()

    def learn(
        self,
        host: str,
        addresses: Iterable[str],
        *,
        expires: float = float("inf"),
        usable_until: float | None = None,
    ) -> HostAnswer:
        """Keep ``host``'s new answer (ends its refresh, if one was under way)."""
        raw = tuple(addresses)
        entry = HostAnswer(
            raw,
            frozenset(canonical(a) for a in raw),
            expires,
            expires if usable_until is None else max(expires, usable_until),
        )
        with self._lock:
            if host not in self._hosts and len(self._hosts) >= self.max_hosts:
                oldest = next(iter(self._hosts))
                del self._hosts[oldest]
                self._not_before.pop(oldest, None)
            self._hosts[host] = entry
            self._refreshing.discard(host)
            self._not_before.pop(host, None)
        return entry

    def get(self, host: str) -> HostAnswer | None:
        return self._hosts.get(host)

    def addresses(self, host: str) -> tuple[str, ...] | None:
        """The host's addresses in the resolver's order, or None."""
        entry = self._hosts.get(host)
        return None if entry is None else entry.addresses

    def current(self, host: str) -> frozenset[str] | None:
        """The host's addresses (canonical), or None if it was never resolved."""
        entry = self._hosts.get(host)
        return None if entry is None else entry.current

    def dialable(self, host: str, now: float) -> tuple[str, ...] | None:
        """The addresses a new connection may dial without asking DNS (fresh
        or within the stale window), or None: the resolver must be asked."""
        entry = self._hosts.get(host)
        if entry is None or not entry.usable(now):
            return None
        return entry.addresses

    def refresh_due(self, host: str, now: float) -> bool:
        """Should a background refresh of ``host`` start now? True (once: the
        refresh is then under way until ``learn`` or ``refresh_failed``) when
        its answer is known and expired, none is under way, and the last one
        did not fail less than ``REFRESH_BACKOFF`` ago."""
        entry = self._hosts.get(host)
        if entry is None or now < entry.expires or host in self._refreshing:
            return False
        with self._lock:
            if host in self._refreshing or self._not_before.get(host, 0.0) > now:
                return False
            self._refreshing.add(host)
        return True

    def refresh_failed(self, host: str, now: float) -> None:
        """The refresh of ``host`` failed (DNS down): keep the last answer
        (it retires nothing) and wait ``REFRESH_BACKOFF`` before the next."""
        with self._lock:
            self._refreshing.discard(host)
            self._not_before[host] = now + REFRESH_BACKOFF

    def forget(self, host: str) -> None:
        """``host`` no longer exists (NXDOMAIN): the next connection asks DNS."""
        with self._lock:
            self._hosts.pop(host, None)
            self._refreshing.discard(host)
            self._not_before.pop(host, None)


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
        """Record the peer: an address, or ``get_extra_info("server_addr")``'s
        ``(ip, port)`` / ``(ip, port, flow, scope)``; anything else is ignored."""
        if self.peer is not None:
            return
        if isinstance(peer, tuple) and peer:
            peer = peer[0]
        if isinstance(peer, str) and peer:
            self.peer = canonical(peer)

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
