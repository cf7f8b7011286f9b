"""``SafeConnector``: an aiohttp ``TCPConnector`` whose connections follow DNS.

A thin shell over aiohttp's own extension points; every decision is the HTTP
core's (``safedns._http``):

- ``resolver=`` (public): a ``DialResolver`` answers aiohttp's lookups from
  the connector's ``Hosts``: the request's own earlier answer, else the
  host's last answer while it is fresh or within ``stale_ttl`` (no wait),
  else the ``AsyncResolver`` (once per request). It hands the addresses back
  in ``Hosts.order`` (spread, failing and avoided ones last); aiohttp's own
  Happy Eyeballs (``aiohappyeyeballs``) then races them.
- ``socket_factory=`` (public): records which addresses each connect
  started, in order, for ``Hosts.raced`` (the failed-address memory).
- ``connect()`` (public): a background refresh when the host's answer
  expired; a pooled connection whose ``ConnectionWatch`` says retire (its
  address left DNS, or ``max_connection_age``) is closed and the next one
  taken; one a retry should pass by is closed too; a new one is watched.

No private attribute or method of aiohttp is touched.
"""

from __future__ import annotations

import asyncio
import contextvars
import socket
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohappyeyeballs import AddrInfoType, SocketFactoryType
from aiohttp.abc import ResolveResult
from aiohttp.client_proto import ResponseHandler
from aiohttp.connector import Connection

from safedns._async import AsyncResolver
from safedns._dropin.constants import EAI_NODATA
from safedns._dropin.errors import gai_error
from safedns._exceptions import InvalidName, NameNotFound, ResolveError
from safedns._hosts import HOSTS_PATH
from safedns._http.background import Refreshes
from safedns._http.dial import DEFAULT_DELAY, Hosts, Route, check_delay, current_route, find_route
from safedns._http.follow import (
    ConnectionWatch,
    HostAnswer,
    Retirement,
    is_ip_literal,
    is_local_name,
)
from safedns._http.stats import TransportCounters, TransportStats
from safedns._resolver import Resolver as SyncResolver
from safedns.aiohttp._resolver import FAMILIES, Resolver, error_code, results

if TYPE_CHECKING:
    from aiohttp.client_reqrep import ClientRequest
    from aiohttp.tracing import Trace

__all__ = ["EXCHANGE", "DialResolver", "Exchange", "SafeConnector"]

#: The counter each reason for retiring a connection bumps.
_RETIRED = {
    Retirement.DNS: "connections_retired_dns",
    Retirement.AGE: "connections_retired_age",
}

_NOT_FOUND = (NameNotFound, InvalidName)


@dataclass(slots=True)
class Exchange:
    """One request as ``RetryMiddleware`` and the connector both see it: its
    ``Route``, and the ``Hosts`` (and clock) of the connector that carried
    it, for the middleware to report a connection that broke."""

    route: Route
    hosts: Hosts | None = None
    clock: Callable[[], float] | None = None


#: The exchange of the request being sent here (set by ``RetryMiddleware``).
EXCHANGE: contextvars.ContextVar[Exchange | None] = contextvars.ContextVar(
    "safedns_aiohttp_exchange", default=None
)


@dataclass(slots=True)
class _Dial:
    """One ``connect()``: the addresses its attempts started, in order."""

    started: list[str] = field(default_factory=list)


#: The connect under way in this task (the attempts' tasks inherit it).
_DIAL: contextvars.ContextVar[_Dial | None] = contextvars.ContextVar(
    "safedns_aiohttp_dial", default=None
)


class DialResolver(Resolver):
    """The connector's resolver: lookups answered from its ``Hosts`` (see the
    module docstring), in the order a new connection should try them."""

    def __init__(self, resolver: AsyncResolver, hosts: Hosts, *, hosts_file: str | None) -> None:
        super().__init__(resolver, hosts=hosts_file)
        self.known = hosts
        self.clock: Callable[[], float] = resolver.clock

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if family not in FAMILIES:
            raise gai_error(socket.EAI_FAMILY)
        route = current_route()
        addresses = await self.addresses(host, family, route)
        return results(host, self.known.order(host, addresses, route, self.clock()), port)

    async def addresses(self, host: str, family: int, route: Route) -> Sequence[str]:
        """What a new connection to ``host`` may dial: the resolver is asked
        only when nothing dialable is known, and at most once per request."""
        if route.addresses is not None:
            return route.addresses
        known = self.known.dialable(host, self.clock())
        if known:
            return known
        if route.error is not None:
            raise route.error
        route.resolved = True
        try:
            entry = await self.lookup(host, family)
        except (ResolveError, ValueError) as exc:
            route.error = gai_error(error_code(exc))
            if isinstance(exc, _NOT_FOUND):
                self.known.book.forget(host)
            raise route.error from exc
        if not entry.addresses:
            route.error = gai_error(EAI_NODATA)
            raise route.error
        route.addresses = entry.addresses
        return entry.addresses

    async def lookup(self, host: str, family: int) -> HostAnswer:
        """Ask (the hosts file, then the resolver) and keep the answer."""
        local = self.hosts_file_addresses(host, family)
        if local is None and is_local_name(host):
            local = await self.resolver.resolve_addresses(host, family)
        if local is not None:
            return self.known.learn_local(host, local, self.clock())
        return self.known.learn(host, await self.resolver.lookup_addresses(host, family))


class SafeConnector(aiohttp.TCPConnector):
    """A drop-in ``aiohttp.TCPConnector`` whose connections follow DNS.

    ``aiohttp.ClientSession(connector=SafeConnector())``, inside a running
    event loop.

    - ``resolver``: a ``safedns.AsyncResolver`` (default: one from the
      system configuration, owned and closed by the connector); a sync
      ``safedns.Resolver`` is accepted and shares its cache.
    - ``happy_eyeballs_delay``: RFC 8305's Connection Attempt Delay, 10 ms
      to 2 s, given to aiohttp's own Happy Eyeballs.
    - ``max_connection_age``: seconds after which a pooled connection is
      closed instead of reused (None: no limit).
    - ``hosts``: the hosts file read before DNS (None: none).
    - every other keyword: as for ``aiohttp.TCPConnector`` (``ssl``,
      ``limit``, ``keepalive_timeout``, ``force_close``, ``family``,
      ``socket_factory`` ...). ``use_dns_cache`` stays False: safedns caches.

    ``stats()`` counts the connections opened and retired; the requests,
    attempts and retries are ``RetryMiddleware``'s to count.
    """

    def __init__(
        self,
        resolver: AsyncResolver | SyncResolver | None = None,
        *,
        happy_eyeballs_delay: float = DEFAULT_DELAY,
        max_connection_age: float | None = None,
        hosts: str | None = HOSTS_PATH,
        socket_factory: SocketFactoryType | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs.pop("use_dns_cache", False):
            raise ValueError("SafeConnector caches through safedns: use_dns_cache must be False")
        if not (resolver is None or isinstance(resolver, (AsyncResolver, SyncResolver))):
            raise TypeError(
                f"resolver must be a safedns.AsyncResolver or safedns.Resolver, got {resolver!r}"
            )
        age_ok = max_connection_age is None or (
            isinstance(max_connection_age, (int, float))
            and not isinstance(max_connection_age, bool)
            and max_connection_age >= 0
        )
        if not age_ok:
            raise ValueError(f"max_connection_age must be >= 0 or None, got {max_connection_age}")
        delay = check_delay(happy_eyeballs_delay)
        if isinstance(resolver, SyncResolver):
            own: AsyncResolver = AsyncResolver(resolver=resolver)  # shares its cache
        else:
            own = resolver if resolver is not None else AsyncResolver()
        self.async_resolver = own
        self._owns_resolver = own is not resolver
        self.hosts = Hosts(stale_ttl=own.config.stale_ttl)  # 0: serve-stale off
        self.max_connection_age = max_connection_age
        self._counters = TransportCounters()
        self._user_socket_factory = socket_factory
        self._watches: weakref.WeakKeyDictionary[ResponseHandler, ConnectionWatch] = (
            weakref.WeakKeyDictionary()
        )
        self._refreshes = Refreshes()
        self.dial_resolver = DialResolver(own, self.hosts, hosts_file=hosts)
        super().__init__(
            resolver=self.dial_resolver,
            use_dns_cache=False,
            happy_eyeballs_delay=delay,
            socket_factory=self._make_socket,
            **kwargs,
        )

    def stats(self) -> TransportStats:
        """Connections opened, and retired because their address left DNS or
        by age (``requests``, ``attempts`` and the retries stay 0 here: see
        ``RetryMiddleware.stats()``)."""
        return self._counters.snapshot()

    def _now(self) -> float:
        return self.async_resolver.clock()

    # -- aiohttp's public hooks --------------------------------------------

    def _make_socket(self, addr_info: AddrInfoType) -> socket.socket:
        """``socket_factory``: note the attempt (its address) for the connect
        it belongs to, then make the socket as aiohttp would."""
        dial = _DIAL.get()
        if dial is not None:
            dial.started.append(str(addr_info[4][0]))
        if self._user_socket_factory is not None:
            return self._user_socket_factory(addr_info)
        family, type_, proto, _, _ = addr_info
        return socket.socket(family=family, type=type_, proto=proto)

    async def connect(
        self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> Connection:
        """A pooled connection that may still be used, else a new one."""
        host = req.proxy.raw_host if req.proxy is not None else req.host
        host = host or ""
        follow = not is_ip_literal(host)
        if follow and self.hosts.refresh_due(host, self._now()):
            self._refresh_in_background(host)
        route = find_route()
        exchange = EXCHANGE.get()
        if exchange is not None:
            exchange.hosts, exchange.clock = self.hosts, self._now
        while True:
            dial = _Dial()
            token = _DIAL.set(dial)
            try:
                conn = await super().connect(req, traces, timeout)
            except Exception:
                if dial.started:
                    self.hosts.raced(dial.started, None, self._now())
                raise
            finally:
                _DIAL.reset(token)
            proto = conn.protocol
            watch = self._watches.get(proto) if proto is not None else None
            if watch is None:
                return self._opened(conn, host, dial, route)
            if self._retired(watch) or self._avoided(watch, route):
                conn.close()
                continue
            if route is not None:
                route.last = watch.peer  # this attempt's address
            return conn

    def _opened(self, conn: Connection, host: str, dial: _Dial, route: Route | None) -> Connection:
        """A new connection: watched from now on."""
        self._counters.bump("connections_opened")
        watch = ConnectionWatch(host, self.hosts.book, time.monotonic(), self.max_connection_age)
        transport = conn.transport
        if transport is not None:
            watch.learn(transport.get_extra_info("peername"))
        if conn.protocol is not None:
            self._watches[conn.protocol] = watch
        if watch.peer is not None:
            self.hosts.raced(dial.started, watch.peer, self._now())
            if route is not None:
                route.last = watch.peer
        return conn

    def _retired(self, watch: ConnectionWatch) -> bool:
        reason = watch.check(time.monotonic())
        if reason is not None:
            self._counters.bump(_RETIRED[reason])
        return watch.retired is not None

    def _avoided(self, watch: ConnectionWatch, route: Route | None) -> bool:
        """Is this a retry that should go elsewhere than ``watch``'s address?"""
        peer = watch.peer
        return (
            route is not None
            and peer is not None
            and peer in route.avoid
            and self.hosts.has_others(watch.host, peer)
        )

    # -- refreshes in the background ---------------------------------------

    def _refresh_in_background(self, host: str) -> None:
        self._refreshes.start(self._refresh(host))

    async def _refresh(self, host: str) -> None:
        try:
            await self.dial_resolver.lookup(host, self.family)
        except asyncio.CancelledError:
            self.hosts.refresh_failed(host, self._now(), not_found=False)
            raise
        except Exception as exc:  # DNS down (keep the answer), or the name gone
            self.hosts.refresh_failed(host, self._now(), not_found=isinstance(exc, _NOT_FOUND))

    async def close(self, *, abort_ssl: bool = False) -> None:
        """Close the connections, stop the refreshes, and close the resolver
        if the connector made it."""
        await self._refreshes.aclose()
        await super().close(abort_ssl=abort_ssl)
        await self.dial_resolver.close()
        if self._owns_resolver:
            await self.async_resolver.aclose()
