"""``SafeTransport``: an ``httpx.HTTPTransport`` whose connections resolve
through safedns, fail over between addresses, follow DNS changes, and whose
retries stay within a budget.

The shell only resolves, connects, sends, sleeps and closes: everything else
is written once for both shells, in ``safedns.httpx._core`` (the non-I/O
halves of the backend, connection, pool and transport), ``safedns._follow``
(address order, retirement of connections) and ``safedns._retry`` (every
retry decision). ``AsyncSafeTransport`` (``_async.py``) is the same shell
for asyncio.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from safedns._resolver import Resolver
from safedns.httpx._common import Dial, Drain, family_for
from safedns.httpx._core import (
    BackendCore,
    ShellClasses,
    TransportCore,
    WatchedConnectionCore,
    WatchingPoolCore,
)

__all__ = ["SafeBackend", "SafeTransport"]


class SafeBackend(BackendCore[Resolver, httpcore.NetworkBackend], httpcore.NetworkBackend):
    """An httpcore network backend that resolves through a safedns ``Resolver``
    and connects to the addresses in turn (IPv6/IPv4 interleaved), moving on
    after a connect error or timeout.

    ``SafeBackend(resolver, *, book=None, counters=None, from_book=False,
    backend=None)``: ``from_book``, dial what the transport read from the
    resolver for this request (in ``book``) instead of asking it again.
    Sockets come from ``backend`` (default ``httpcore.SyncBackend()``); TLS
    (``start_tls``) still gets the hostname from httpcore, so SNI and the
    certificate check stay on the name."""

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
        dial = Dial(self.addresses(host, local_address))
        for address in dial:
            with dial.attempt():
                stream = self._backend.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
                return self._opened(stream)
        raise dial.failure()

    def addresses(self, host: str, local_address: str | None = None) -> list[str]:
        """The addresses to try for ``host``, in order."""
        known = self._known(host)
        if known is not None:
            return known
        with self._resolving(host):
            found = self.resolver.resolve_addresses(host, family_for(local_address))
        return self._learned(host, found)

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
        return self._learn_peer(self._inner.handle_request(request))

    def close(self) -> None:
        self._inner.close()


class _WatchingPool(WatchingPoolCore, httpcore.ConnectionPool):
    def create_connection(self, origin: httpcore.Origin) -> httpcore.ConnectionInterface:
        inner = super().create_connection(origin)
        return _WatchedConnection(inner, self.watch(origin), self.safedns_counters)


class SafeTransport(TransportCore[Resolver, Resolver], httpx.HTTPTransport):
    """A drop-in ``httpx.HTTPTransport`` that resolves hostnames through safedns.

    ``httpx.Client(transport=SafeTransport(resolver=..., retry=...))``.

    - ``resolver``: a ``safedns.Resolver`` (default: one built from the system
      configuration, owned and closed by the transport).
    - ``retry``: a ``safedns.RetryPolicy``, or None (default) for no retries.
    - ``retry_budget``: caps the retries of all requests through this
      transport (default ``RetryBudget()``); pass one to share it.
    - ``max_connection_age``: seconds after which a keep-alive connection is
      not reused (default None: connections live as long as their address is
      in DNS and the server keeps them).
    - Every other argument is ``httpx.HTTPTransport``'s (``verify``, ``cert``,
      ``trust_env``, ``http1``, ``http2``, ``limits``, ``proxy``, ``uds``,
      ``local_address``, ``retries``, ``socket_options``), with its meaning.
      With a ``proxy``, the proxy's hostname resolves through safedns and
      the target's is resolved by the proxy, as with plain httpx.
    """

    pool: httpcore.ConnectionPool
    classes = ShellClasses(SafeBackend, _WatchingPool, httpcore.HTTPProxy, httpcore.SOCKSProxy)

    def _adopt_resolver(self, resolver: Resolver | None) -> Resolver:
        return resolver if resolver is not None else Resolver()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        run = self._retry_run(request)
        host = self._to_refresh(request)
        if host is not None:
            with self._refreshing(host):
                self._found(host, self.resolver.resolve_addresses(host, self._setup.family))
        while True:
            with run.trying():
                response = super().handle_request(request)
                if not run.after_response(response.status_code, response.headers).retry:
                    return response
                _drain(response)
            if run.delay > 0:
                time.sleep(run.delay)

    def close(self) -> None:
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
