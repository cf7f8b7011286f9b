"""The urllib3 connection pools and pool managers of safedns.

- ``SafeHTTPConnectionPool`` / ``SafeHTTPSConnectionPool``: urllib3's pools
  with ``ConnectionCls`` (urllib3's extension point) set to safedns's
  connections and ``urlopen`` around urllib3's: one request's attempts
  (``Trip.send``: ``RetryRun`` under ``RetryPolicy`` and ``RetryBudget``, each
  retry elsewhere), with urllib3's own retries then set to 0, and the
  background refresh of the host's answer before it.
- ``SafePoolManager`` / ``SafeProxyManager``: urllib3's managers whose
  ``pool_classes_by_scheme`` (their extension point) build those pools, all
  on one ``TransportState``.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import queue
import ssl
import typing
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any

from urllib3 import BaseHTTPResponse, HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    NameResolutionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.poolmanager import PoolManager, ProxyManager
from urllib3.util.request import set_file_position
from urllib3.util.retry import Retry
from urllib3.util.ssl_match_hostname import CertificateError

from safedns._http.dial import find_route, routing
from safedns._http.follow import family_for
from safedns._http.retry import Failure, RetryBudget, RetryPolicy
from safedns._http.stats import TransportStats
from safedns._http.trip import RESOLVE_ERRORS, Trip
from safedns._resolver import Resolver
from safedns.urllib3._connection import SafeHTTPConnection, SafeHTTPSConnection, TransportState

__all__ = [
    "SafeHTTPConnectionPool",
    "SafeHTTPSConnectionPool",
    "SafePoolManager",
    "SafeProxyManager",
    "classify",
    "single_try",
]

#: At most this much of a response that will be retried is read (its
#: connection then goes back to the pool); a longer one is closed.
DRAIN_LIMIT = 64 * 1024

#: ``body_pos``'s place among ``urlopen``'s arguments after ``redirect``
#: (``assert_same_host``, ``timeout``, ``pool_timeout``, ``release_conn``,
#: ``chunked``, ``body_pos``), where urllib3's own retries pass it.
_BODY_POS = 5


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: causes, contexts, urllib3's ``reason``
    (``MaxRetryError``) and ``original_error`` (``ProxyError``)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for inner in (
            current.__cause__,
            current.__context__,
            getattr(current, "reason", None),
            getattr(current, "original_error", None),
        ):
            if isinstance(inner, BaseException):
                todo.append(inner)


def classify(exc: BaseException) -> Failure:
    """What an exception from urllib3's ``urlopen`` means for retrying (see
    ``safedns.RetryPolicy``)."""
    found = list(_causes(exc))
    if any(isinstance(e, (ssl.SSLCertVerificationError, CertificateError)) for e in found):
        return Failure.TLS_CERTIFICATE
    if any(isinstance(e, (NameResolutionError, *RESOLVE_ERRORS)) for e in found):
        return Failure.OTHER  # asking DNS again is the resolver's business
    if any(isinstance(e, ConnectTimeoutError) for e in found):  # NewConnectionError too
        return Failure.CONNECT
    transport = (ProtocolError, ReadTimeoutError, SSLError, http.client.HTTPException, OSError)
    if any(isinstance(e, transport) for e in found):
        return Failure.TRANSPORT
    return Failure.OTHER


def single_try(
    retries: Retry | bool | int | None, redirect: bool, default: Retry | bool | int | None
) -> Retry:
    """urllib3's ``retries`` for one attempt when safedns retries: no connect,
    read, status or other retry (errors surface as they would with 0), and
    redirects as asked."""
    if not isinstance(retries, Retry):
        retries = Retry.from_int(retries, redirect=redirect, default=default)
    return retries.new(
        connect=0,
        read=False if retries.read is False else 0,
        status=0,
        other=0,
        status_forcelist=None,
    )


def _status(response: BaseHTTPResponse) -> tuple[int, Mapping[str, str]]:
    return response.status, response.headers


def _discard(response: BaseHTTPResponse) -> None:
    """A response that will be retried: read to its end when that is little
    (its connection goes back to the pool), else closed; released either way."""
    left = getattr(response, "length_remaining", None)
    try:
        if left is not None and left <= DRAIN_LIMIT:
            response.drain_conn()
        else:
            response.close()
    finally:
        response.release_conn()


def _replayable(body: object, body_pos: object) -> bool:
    """Can the body be sent again? None, bytes and text can, and a file whose
    position urllib3 could read (it rewinds it); an iterator cannot."""
    if body is None or isinstance(body, (bytes, bytearray, memoryview, str)):
        return True
    return isinstance(body_pos, int)


class SafeHTTPConnectionPool(HTTPConnectionPool):
    """A urllib3 ``HTTPConnectionPool`` whose connections resolve and dial
    through safedns, follow DNS and retry elsewhere (see the module
    docstring). ``safedns``: the ``TransportState`` to share (default: a new
    one, with its own resolver); every other argument is urllib3's."""

    ConnectionCls = SafeHTTPConnection

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *args: Any,
        safedns: TransportState | None = None,
        **kwargs: Any,
    ) -> None:
        state = safedns if safedns is not None else TransportState()
        super().__init__(host, port, *args, safedns=state, **kwargs)
        self.safedns = state
        #: The host's answer when the idle connections were last swept.
        self.safedns_swept: object = None

    def stats(self) -> TransportStats:
        return self.safedns.stats()

    def urlopen(  # type: ignore[override]
        self,
        method: str,
        url: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        retries: Retry | bool | int | None = None,
        redirect: bool = True,
        *args: Any,
        **kwargs: Any,
    ) -> BaseHTTPResponse:
        """urllib3's ``urlopen`` (same arguments), as one request's attempts
        (see the module docstring)."""
        state = self.safedns
        send = functools.partial(super().urlopen, method, url, body, headers)
        route = find_route()
        if route is not None:  # urllib3 retrying (no retry=): elsewhere too, and counted
            route.retrying()
            state.counters.bump("attempts")
            state.counters.bump("retries")
            return send(retries, redirect, *args, **kwargs)
        if state.retry is not None:
            retries = single_try(retries, redirect, self.retries)
        # Where a file body starts, read once: urllib3 rewinds it for each try.
        rest = list(args)
        if len(rest) > _BODY_POS:
            body_pos = rest[_BODY_POS] = set_file_position(body, rest[_BODY_POS])
        else:
            body_pos = kwargs["body_pos"] = set_file_position(body, kwargs.get("body_pos"))
        run = state.retry_run(method, body_replayable=_replayable(body, body_pos))
        source = self.conn_kw.get("source_address")
        host = self._dialled_host()
        state.refresh_if_due(host, family_for(source[0] if source else None))
        answer = state.hosts.book.get(host)
        if answer is not self.safedns_swept:
            self.safedns_swept = answer
            self._sweep()
        with routing() as route:
            trip = Trip(run, route, state.hosts, state.clock)
            return trip.send(
                functools.partial(send, retries, redirect, *rest, **kwargs),
                classify=classify,
                status=_status,
                discard=_discard,
            )

    def _sweep(self) -> None:
        """The host's answer changed: close the idle connections that must
        retire now, not at their next checkout (the busy one is reused, the
        others could wait there for long). Each is taken out of the pool's
        queue (``pool``, public) while it is looked at, so none in use is
        touched, and put back (closed: it dials anew when checked out)."""
        idle = self.pool
        if idle is None:
            return
        taken = []
        with contextlib.suppress(queue.Empty):
            while True:
                taken.append(idle.get_nowait())
        for conn in reversed(taken):  # a LIFO queue: back in the same order
            if isinstance(conn, SafeHTTPConnection) and conn.safedns_retired():
                conn.close()
            try:
                idle.put_nowait(conn)
            except queue.Full:  # another thread put one back meanwhile
                if conn is not None:
                    conn.close()

    def _dialled_host(self) -> str:
        """The host this pool's connections dial (the proxy's, if any), as they
        name it (``HTTPConnection.host``: no trailing dot)."""
        proxy = self.proxy
        host = proxy.host if proxy is not None and proxy.host is not None else self.host
        return host.rstrip(".")


class SafeHTTPSConnectionPool(SafeHTTPConnectionPool, HTTPSConnectionPool):
    """``SafeHTTPConnectionPool`` for HTTPS (urllib3's ``HTTPSConnectionPool``)."""

    ConnectionCls = SafeHTTPSConnection


def _pool_classes(state: TransportState) -> dict[str, Any]:
    """A manager's ``pool_classes_by_scheme``: safedns's pools on ``state``."""
    return {
        "http": functools.partial(SafeHTTPConnectionPool, safedns=state),
        "https": functools.partial(SafeHTTPSConnectionPool, safedns=state),
    }


class _Managed:
    """What ``SafePoolManager`` and ``SafeProxyManager`` add to urllib3's."""

    safedns: TransportState
    pool_classes_by_scheme: Any

    def _adopt(self, state: TransportState) -> None:
        self.safedns = state
        self.pool_classes_by_scheme = _pool_classes(state)

    def stats(self) -> TransportStats:
        """Requests, attempts, retries, retries denied, connections opened
        and retired (``safedns.httpx.TransportStats``'s fields)."""
        return self.safedns.stats()

    def close(self) -> None:
        """Close every pool (as ``clear()``) and the resolver if the manager
        made it."""
        typing.cast(PoolManager, self).clear()
        self.safedns.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> typing.Literal[False]:
        self.close()
        return False


def _state(
    safedns: TransportState | None,
    resolver: Resolver | None,
    retry: RetryPolicy | None,
    retry_budget: RetryBudget | None,
    happy_eyeballs_delay: float,
    max_connection_age: float | None,
) -> TransportState:
    if safedns is not None:
        given = (resolver, retry, retry_budget, max_connection_age)
        if any(v is not None for v in given) or happy_eyeballs_delay != 0.25:
            raise TypeError(
                "safedns= brings its own resolver and retry settings: pass one or the other"
            )
        return safedns
    return TransportState(
        resolver,
        retry=retry,
        retry_budget=retry_budget,
        happy_eyeballs_delay=happy_eyeballs_delay,
        max_connection_age=max_connection_age,
    )


class SafePoolManager(_Managed, PoolManager):
    """A urllib3 ``PoolManager`` whose connections resolve through safedns.

    ``SafePoolManager(resolver=None, *, retry=None, retry_budget=None,
    happy_eyeballs_delay=0.25, max_connection_age=None, **PoolManager
    kwargs)``:

    - ``resolver``: a ``safedns.Resolver`` (default: one from the system
      configuration, closed by ``close()`` or ``with``).
    - ``retry``: a ``safedns.RetryPolicy``: each request's attempts follow it
      under ``retry_budget`` (default ``RetryBudget()``), each retry to
      another address when the host has one, and urllib3's own ``retries``
      become 0 (redirects still follow them). None (default): urllib3's own
      ``retries`` apply, as without safedns.
    - ``happy_eyeballs_delay``: RFC 8305's Connection Attempt Delay (0.25 s;
      0.01 to 2).
    - ``max_connection_age``: seconds after which a pooled connection is not
      reused (default None: as long as its address is in DNS).
    - ``safedns``: a ``TransportState`` to share with other managers (then
      the four arguments above are its own and must not be given).

    Every other argument is ``PoolManager``'s (``num_pools``, ``headers``,
    ``maxsize``, ``block``, ``cert_reqs``, ``ca_certs``, ``ssl_context``,
    ``timeout``, ``retries``, ``source_address``, ``socket_options``...).
    DNS is never on the path of a request that has a pooled connection: an
    expired answer is refreshed in the background.
    """

    def __init__(
        self,
        resolver: Resolver | None = None,
        *,
        retry: RetryPolicy | None = None,
        retry_budget: RetryBudget | None = None,
        happy_eyeballs_delay: float = 0.25,
        max_connection_age: float | None = None,
        safedns: TransportState | None = None,
        num_pools: int = 10,
        headers: Mapping[str, str] | None = None,
        **connection_pool_kw: Any,
    ) -> None:
        state = _state(
            safedns, resolver, retry, retry_budget, happy_eyeballs_delay, max_connection_age
        )
        super().__init__(num_pools, headers, **connection_pool_kw)
        self._adopt(state)


class SafeProxyManager(_Managed, ProxyManager):
    """A urllib3 ``ProxyManager`` over safedns: the proxy's hostname
    resolves through safedns (and its connections follow its DNS); the
    target's name is the proxy's to resolve, as with plain urllib3.

    ``SafeProxyManager(proxy_url, resolver=None, *, retry=None, ...,
    **ProxyManager kwargs)``: the safedns arguments as ``SafePoolManager``'s.
    """

    def __init__(
        self,
        proxy_url: str,
        resolver: Resolver | None = None,
        *,
        retry: RetryPolicy | None = None,
        retry_budget: RetryBudget | None = None,
        happy_eyeballs_delay: float = 0.25,
        max_connection_age: float | None = None,
        safedns: TransportState | None = None,
        **proxy_kw: Any,
    ) -> None:
        state = _state(
            safedns, resolver, retry, retry_budget, happy_eyeballs_delay, max_connection_age
        )
        super().__init__(proxy_url, **proxy_kw)
        self._adopt(state)
