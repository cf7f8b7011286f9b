"""The urllib3 connections of ``SafePoolManager`` and what they share.

- ``TransportState``: what every pool and connection of one manager (or one
  requests adapter) shares: the resolver, the hosts' answers and failed
  addresses (``Hosts``), the counters behind ``stats()``, the retry policy
  and budget, the background refreshes.
- ``SafeHTTPConnection`` / ``SafeHTTPSConnection``: urllib3's connections
  with one method replaced and one property extended, both urllib3's own
  extension points (``HTTPConnection`` documents ``_new_conn`` as the socket
  factory its subclasses override; ``is_connected`` is public):

  - ``_new_conn``: the socket comes from the HTTP core (addresses from
    ``Hosts`` or the resolver, once per request, raced as RFC 8305 says);
    TLS, proxies and tunnels stay urllib3's, on the hostname, so SNI and the
    certificate check are the name's.
  - ``is_connected``: urllib3 asks it at every checkout from the pool; it is
    also False once the connection must retire (its address left DNS, or it
    passed ``max_connection_age``) and for a retry that goes elsewhere. The
    pool then closes it and the same object dials anew. The pool also closes
    its idle connections that must retire once the host's answer changed
    (``SafeHTTPConnectionPool``).
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from safedns._dropin.errors import gai_error
from safedns._exceptions import InvalidName, NameNotFound
from safedns._http.dial import Hosts, check_delay, current_route, find_route
from safedns._http.follow import ConnectionWatch, Retirement, family_for
from safedns._http.retry import RetryBudget, RetryPolicy, RetryRun
from safedns._http.stats import TransportCounters, TransportStats
from safedns._http.trip import (
    RESOLVE_ERRORS,
    dial_addresses,
    dial_sync,
    refresh_due,
    refresh_sync,
)
from safedns._resolver import Resolver

__all__ = ["SafeHTTPConnection", "SafeHTTPSConnection", "TransportState"]

#: Without ``retry=``, each request is tried once by safedns (urllib3's own
#: ``retries`` then apply, as they would without safedns).
_ONCE = RetryPolicy(attempts=1)

_RETIRED = {Retirement.DNS: "connections_retired_dns", Retirement.AGE: "connections_retired_age"}


class TransportState:
    """What all pools and connections of one ``SafePoolManager`` share.

    ``resolver``: a ``safedns.Resolver`` (None: one from the system
    configuration, owned: ``close()`` closes it). ``retry``: a
    ``safedns.RetryPolicy`` or None (urllib3's own ``retries`` then apply).
    ``retry_budget``: caps the retries of every request sharing this state
    (default ``RetryBudget()``). ``happy_eyeballs_delay``: RFC 8305's
    Connection Attempt Delay, 0.01 to 2 s. ``max_connection_age``: seconds
    after which a pooled connection is not reused (None: no limit).
    """

    def __init__(
        self,
        resolver: Resolver | None = None,
        *,
        retry: RetryPolicy | None = None,
        retry_budget: RetryBudget | None = None,
        happy_eyeballs_delay: float = 0.25,
        max_connection_age: float | None = None,
    ) -> None:
        for name, value, kind in (
            ("resolver", resolver, Resolver),
            ("retry", retry, RetryPolicy),
            ("retry_budget", retry_budget, RetryBudget),
        ):
            if value is not None and not isinstance(value, kind):
                raise TypeError(f"{name} must be a safedns.{kind.__name__} or None, got {value!r}")
        age = max_connection_age
        if age is not None and (
            isinstance(age, bool) or not isinstance(age, (int, float)) or not age >= 0
        ):
            raise ValueError(f"max_connection_age must be >= 0 seconds or None, got {age!r}")
        self.delay = check_delay(happy_eyeballs_delay)
        self.retry = retry
        self.retry_budget = retry_budget if retry_budget is not None else RetryBudget()
        self.max_connection_age = age
        self.resolver = resolver if resolver is not None else Resolver()
        self.owns_resolver = resolver is None
        self.clock = self.resolver.clock
        self.hosts = Hosts(stale_ttl=self.resolver.config.stale_ttl)  # 0: serve-stale off
        self.counters = TransportCounters()

    def stats(self) -> TransportStats:
        return self.counters.snapshot()

    def retry_run(self, method: str, *, body_replayable: bool) -> RetryRun:
        """The run of one request's attempts, counted in ``stats()``."""
        policy = self.retry if self.retry is not None else _ONCE
        return RetryRun(
            policy,
            self.retry_budget,
            method,
            body_replayable=body_replayable,
            tally=self.counters.bump,
        )

    def refresh_if_due(self, host: str, family: int = socket.AF_UNSPEC) -> None:
        """Before a request to ``host``: if its answer expired, refresh it in
        a background thread (once per expiry). Never waits."""
        if refresh_due(self.hosts, host, self.clock()):
            args = (self.resolver, self.hosts, host, family)
            threading.Thread(
                target=refresh_sync, args=args, name="safedns-urllib3-refresh", daemon=True
            ).start()

    def close(self) -> None:
        """Close the resolver if this state made it (it still answers after,
        without background work)."""
        if self.owns_resolver:
            self.resolver.close()


def _resolve_error(host: str, conn: HTTPConnection, exc: Exception) -> NameResolutionError:
    """A failed resolution as urllib3 reports a failed ``getaddrinfo``."""
    code = socket.EAI_NONAME if isinstance(exc, (NameNotFound, InvalidName)) else socket.EAI_AGAIN
    reason = gai_error(code)
    assert isinstance(reason, socket.gaierror)
    return NameResolutionError(host, conn, reason)


class SafeHTTPConnection(HTTPConnection):
    """A urllib3 ``HTTPConnection`` whose socket comes from safedns (see the
    module docstring). ``safedns``: the manager's ``TransportState``; every
    other argument is urllib3's."""

    def __init__(self, *args: Any, safedns: TransportState, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.safedns = safedns
        self.safedns_watch: ConnectionWatch | None = None

    def _new_conn(self) -> socket.socket:
        state = self.safedns
        host, port = self.host, self.port
        local = None
        if self.source_address is not None:
            local, local_port = self.source_address
            if local_port:
                raise ValueError(
                    "source_address: a source port cannot be shared by the parallel"
                    f" attempts of Happy Eyeballs; use port 0, got {self.source_address!r}"
                )
        route = current_route()
        try:
            addresses = dial_addresses(state.resolver, state.hosts, host, route, family_for(local))
        except RESOLVE_ERRORS as exc:
            raise _resolve_error(host, self, exc) from exc
        try:
            sock, address = dial_sync(
                state.hosts,
                host,
                port,
                addresses,
                route,
                delay=state.delay,
                timeout=self.timeout,
                clock=state.clock,
                local_address=local,
                socket_options=self.socket_options,
            )
        except TimeoutError as exc:
            raise ConnectTimeoutError(
                self, f"Connection to {host} timed out. (connect timeout={self.timeout})"
            ) from exc
        except OSError as exc:
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc
        sock.settimeout(self.timeout)
        watch = ConnectionWatch(host, state.hosts.book, time.monotonic(), state.max_connection_age)
        watch.learn(address)
        self.safedns_watch = watch
        state.counters.bump("connections_opened")
        sys.audit("http.client.connect", self, host, port)
        return sock

    def safedns_retired(self) -> bool:
        """Must this connection retire (its address left DNS, or it passed
        ``max_connection_age``)? Counted in ``stats()`` the first time."""
        watch = self.safedns_watch
        if watch is None:
            return False
        reason = watch.check(time.monotonic())
        if reason is not None:
            self.safedns.counters.bump(_RETIRED[reason])
        return watch.retired is not None

    @property
    def is_connected(self) -> bool:
        """urllib3's answer (the socket is open and has nothing unread), and
        the connection may be reused: it did not retire, and the request
        being sent is not a retry that should go to another address."""
        if not super().is_connected or self.safedns_retired():
            return False
        watch, route = self.safedns_watch, find_route()
        if watch is None or watch.peer is None or route is None:
            return True
        if watch.peer in route.avoid and self.safedns.hosts.has_others(watch.host, watch.peer):
            return False  # a retry goes elsewhere: dial anew
        route.last = watch.peer  # this attempt's address
        return True


class SafeHTTPSConnection(SafeHTTPConnection, HTTPSConnection):
    """``SafeHTTPConnection`` for HTTPS: urllib3's ``HTTPSConnection`` (TLS
    on the hostname: SNI, certificate and hostname checks) over a socket
    from safedns."""
