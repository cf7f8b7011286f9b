"""``SafeTransport``: an ``httpx.HTTPTransport`` whose connections resolve
through safedns, race a host's addresses as RFC 8305 says, follow DNS changes
without waiting on DNS, and whose retries go elsewhere within a budget.

The shell only resolves, connects, sends, sleeps and closes: everything else
is written once for both shells, in ``safedns.httpx._core`` (the non-I/O
halves of the backend, connection, pool and transport) over the HTTP core,
``safedns._http`` (address order and schedule, the address book,
retirement of connections, every retry decision). ``AsyncSafeTransport``
(``_async.py``) is the same shell for asyncio.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpcore
import httpx

from safedns._http.connect import connect_sync
from safedns._http.dial import Route, current_route, routing
from safedns._http.follow import is_local_name
from safedns._resolver import Resolver
from safedns.httpx._common import RESOLVE_ERRORS, Dial, Drain
from safedns.httpx._core import (
    BackendCore,
    ShellClasses,
    TransportCore,
    WatchedConnectionCore,
    WatchingPoolCore,
)
from safedns.httpx._stream import SocketStream

__all__ = ["SafeBackend", "SafeTransport"]


class SafeBackend(BackendCore[Resolver, httpcore.NetworkBackend], httpcore.NetworkBackend):
    """An httpcore network backend that resolves through a safedns ``Resolver``.

    ``SafeBackend(resolver, *, hosts=None, counters=None, direct=False,
    family=AF_UNSPEC, happy_eyeballs_delay=0.25, backend=None)``. With
    ``direct`` (the transport's own pool) a connect races the host's
    addresses as RFC 8305 says, on non-blocking sockets; otherwise (a
    proxy's host) it tries them in turn through ``backend`` (default
    ``httpcore.SyncBackend()``). TLS (``start_tls``) still gets the hostname
    from httpcore, so SNI and the certificate check stay on the name."""

    def _default_backend(self) -> httpcore.NetworkBackend:
        return httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        route = current_route()
        addresses = self.addresses(host, route)
        if not self.direct:
            dial = Dial(addresses)
            for address in dial:
                with dial.attempt():
                    stream = self._backend.connect_tcp(
                        address, port, timeout, local_address, socket_options
                    )
                    return self._opened(stream)
            raise dial.failure()
        attempts = self._attempts(host, addresses, route, timeout)
        try:
            sock, address = connect_sync(
                attempts, port, local_address=local_address, socket_options=socket_options
            )
        except TimeoutError as exc:
            self._gave_up(attempts)
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except OSError as exc:
            self._gave_up(attempts)
            raise httpcore.ConnectError(str(exc)) from exc
        self._connected(attempts, route, address)
        return self._opened(SocketStream(sock))

    def addresses(self, host: str, route: Route | None = None) -> Sequence[str]:
        """The addresses to try for ``host`` (the resolver is asked only when
        nothing dialable is known, and at most once per request)."""
        route = route if route is not None else Route()
        known = self._known(host, route)
        if known is not None:
            return known
        self._must_resolve(host, route)
        try:
            if is_local_name(host):
                found = self.resolver.resolve_addresses(host, self.family)
                return self._learned_local(host, route, found)
            answers = self.resolver.lookup_addresses(host, self.family)
        except RESOLVE_ERRORS as exc:
            raise self._resolve_failed(host, route, exc) from exc
        return self._learned(host, route, answers)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        return self._opened(self._backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class _WatchedConnection(
    WatchedConnectionCore[httpcore.ConnectionInterface], httpcore.ConnectionInterface
):
    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        route = self._sending()
        try:
            return self._inner.handle_request(request)
        finally:
            self._sent(route)

    def close(self) -> None:
        self._inner.close()


class _WatchingPool(WatchingPoolCore, httpcore.ConnectionPool):
    def create_connection(self, origin: httpcore.Origin) -> httpcore.ConnectionInterface:
        inner = super().create_connection(origin)
        return _WatchedConnection(
            inner, self.watch(origin), self.safedns_counters, self.safedns_hosts
        )


class SafeTransport(TransportCore[Resolver, Resolver], httpx.HTTPTransport):
    """A drop-in ``httpx.HTTPTransport`` that resolves hostnames through safedns.

    ``httpx.Client(transport=SafeTransport(resolver=..., retry=...))``.

    - ``resolver``: a ``safedns.Resolver`` (default: one built from the system
      configuration, owned and closed by the transport).
    - ``retry``: a ``safedns.RetryPolicy``, or None (default) for no retries.
      A retry goes to another address of the host when it has one.
    - ``retry_budget``: caps the retries of all requests through this
      transport (default ``RetryBudget()``); pass one to share it.
    - ``max_connection_age``: seconds after which a keep-alive connection is
      not reused (default None: connections live as long as their address is
      in DNS and the server keeps them).
    - ``happy_eyeballs_delay``: seconds before the next address is tried while
      one attempt is still pending (RFC 8305's Connection Attempt Delay,
      0.25; from 0.01 to 2).
    - Every other argument is ``httpx.HTTPTransport``'s (``verify``, ``cert``,
      ``trust_env``, ``http1``, ``http2``, ``limits``, ``proxy``, ``uds``,
      ``local_address``, ``retries``, ``socket_options``), with its meaning.
      With a ``proxy``, the proxy's hostname resolves through safedns and
      the target's is resolved by the proxy, as with plain httpx.

    DNS is never on the path of a request that can use a pooled connection:
    an expired answer is refreshed in the background (one thread, started
    when first needed, stopped by ``close()``).
    """

    pool: httpcore.ConnectionPool
    classes = ShellClasses(SafeBackend, _WatchingPool, httpcore.HTTPProxy, httpcore.SOCKSProxy)

    def _adopt_resolver(self, resolver: Resolver | None) -> Resolver:
        return resolver if resolver is not None else Resolver()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        run = self._retry_run(request)
        host = self._to_refresh(request)
        if host is not None:
            self._refresh_in_background(host)
        with routing() as route:
            while True:
                run.begin()
                try:
                    response = super().handle_request(request)
                except Exception as exc:
                    if not self._errored(run, route, exc).retry:
                        raise
                else:
                    try:
                        retry = self._responded(run, route, response).retry
                    except BaseException:
                        response.close()
                        raise
                    if not retry:
                        return response
                    _drain(response)
                if run.delay > 0:
                    time.sleep(run.delay)

    # -- refreshes in the background ---------------------------------------

    def _init_background(self) -> None:
        self._refresher: ThreadPoolExecutor | None = None  # started when first needed
        self._refresher_lock = threading.Lock()
        self._closed = False

    def _refresh_in_background(self, host: str) -> None:
        with self._refresher_lock:
            if self._closed:
                self._refreshed(host, RuntimeError("transport closed"))
                return
            if self._refresher is None:
                self._refresher = ThreadPoolExecutor(1, thread_name_prefix="safedns-httpx")
            self._refresher.submit(self._refresh, host)

    def _refresh(self, host: str) -> None:
        try:
            answers = self.resolver.lookup_addresses(host, self._setup.family)
        except Exception as exc:  # DNS down, or the name gone: _refreshed tells
            self._refreshed(host, exc)
        else:
            self._refreshed(host, answers)

    def close(self) -> None:
        with self._refresher_lock:
            self._closed = True
            refresher, self._refresher = self._refresher, None
        if refresher is not None:
            refresher.shutdown(wait=True, cancel_futures=True)
        super().close()
        if self._owns_resolver:
            self.resolver.close()


def _drain(response: httpx.Response) -> None:
    """Read a little of a response we will not return, so its connection can
    be reused, then close it."""
    drain = Drain()
    try:
        for chunk in response.iter_raw():
            if drain.enough(chunk):
                break
    except httpx.HTTPError:
        pass  # closed below all the same
    finally:
        response.close()
