"""``AsyncSafeTransport``: ``SafeTransport`` for asyncio, an
``httpx.AsyncHTTPTransport`` with the same decisions.

The async twin of ``_sync.py``: it awaits where that one blocks, races a
host's addresses with one task per attempt (each through httpcore's own
AnyIO backend, so TLS and proxies work as in plain httpx), and both inherit
everything that is not I/O from ``safedns.httpx._core``. A resolver cache hit
completes without suspending.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

import httpcore
import httpx

from safedns._async import AsyncResolver
from safedns._http.background import Refreshes
from safedns._http.connect import connect_async
from safedns._http.dial import Route, current_route, routing
from safedns._http.follow import is_local_name
from safedns._resolver import Resolver
from safedns.httpx._common import RESOLVE_ERRORS, Drain
from safedns.httpx._core import (
    BackendCore,
    ShellClasses,
    TransportCore,
    WatchedConnectionCore,
    WatchingPoolCore,
)

__all__ = ["AsyncSafeBackend", "AsyncSafeTransport"]


class AsyncSafeBackend(
    BackendCore[AsyncResolver, httpcore.AsyncNetworkBackend], httpcore.AsyncNetworkBackend
):
    """``SafeBackend`` for asyncio: an httpcore network backend that resolves
    through a safedns ``AsyncResolver`` and races the addresses as RFC 8305
    says, one task per attempt. Same arguments; sockets come from
    ``backend`` (default ``httpcore.AnyIOBackend()``)."""

    def _default_backend(self) -> httpcore.AsyncNetworkBackend:
        return httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        route = current_route()
        addresses = await self.addresses(host, route)
        attempts = self._attempts(host, addresses, route, timeout)

        async def open_one(address: str, left: float | None) -> httpcore.AsyncNetworkStream:
            return await self._backend.connect_tcp(
                address, port, left, local_address, socket_options
            )

        try:
            stream, address = await connect_async(attempts, open_one, _aclose)
        except TimeoutError as exc:
            self._gave_up(attempts)
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except (httpcore.ConnectError, httpcore.ConnectTimeout):
            self._gave_up(attempts)
            raise
        except OSError as exc:
            self._gave_up(attempts)
            raise httpcore.ConnectError(str(exc)) from exc
        self._connected(attempts, route, address)
        return self._opened(stream)

    async def addresses(self, host: str, route: Route | None = None) -> Sequence[str]:
        """The addresses to try for ``host`` (the resolver is asked only when
        nothing dialable is known, and at most once per request)."""
        route = route if route is not None else Route()
        known = self._known(host, route)
        if known is not None:
            return known
        self._must_resolve(host, route)
        try:
            if is_local_name(host):
                found = await self.resolver.resolve_addresses(host, self.family)
                return self._learned_local(host, route, found)
            answers = await self.resolver.lookup_addresses(host, self.family)
        except RESOLVE_ERRORS as exc:
            raise self._resolve_failed(host, route, exc) from exc
        return self._learned(host, route, answers)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_unix_socket(path, timeout, socket_options)
        return self._opened(stream)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


async def _aclose(stream: httpcore.AsyncNetworkStream) -> None:
    await stream.aclose()


class _WatchedConnection(
    WatchedConnectionCore[httpcore.AsyncConnectionInterface], httpcore.AsyncConnectionInterface
):
    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        route = self._sending()
        try:
            return await self._inner.handle_async_request(request)
        finally:
            self._sent(route)

    async def aclose(self) -> None:
        await self._inner.aclose()


class _WatchingPool(WatchingPoolCore, httpcore.AsyncConnectionPool):
    def create_connection(self, origin: httpcore.Origin) -> httpcore.AsyncConnectionInterface:
        inner = super().create_connection(origin)
        return _WatchedConnection(
            inner, self.watch(origin), self.safedns_counters, self.safedns_hosts
        )


class AsyncSafeTransport(
    TransportCore[AsyncResolver | Resolver, AsyncResolver], httpx.AsyncHTTPTransport
):
    """A drop-in ``httpx.AsyncHTTPTransport`` that resolves hostnames through safedns.

    ``httpx.AsyncClient(transport=AsyncSafeTransport(resolver=..., retry=...))``.

    - ``resolver``: a ``safedns.AsyncResolver`` (default: one built from the system
      configuration, owned and closed by the transport; a sync ``safedns.Resolver`` is
      accepted too and shares its cache).
    - ``retry``, ``retry_budget``, ``max_connection_age``, ``happy_eyeballs_delay``
      and every argument of ``httpx.AsyncHTTPTransport``: as for ``SafeTransport``.

    An expired answer is refreshed in a background task (cancelled by
    ``aclose()``); requests never wait for it.
    """

    pool: httpcore.AsyncConnectionPool
    classes = ShellClasses(
        AsyncSafeBackend, _WatchingPool, httpcore.AsyncHTTPProxy, httpcore.AsyncSOCKSProxy
    )

    def _adopt_resolver(self, resolver: AsyncResolver | Resolver | None) -> AsyncResolver:
        if isinstance(resolver, Resolver):
            return AsyncResolver(resolver=resolver)  # shares its cache
        return resolver if resolver is not None else AsyncResolver()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        run = self._retry_run(request)
        host = self._to_refresh(request)
        if host is not None:
            self._refresh_in_background(host)
        with routing() as route:
            while True:
                run.begin()
                try:
                    response = await super().handle_async_request(request)
                except Exception as exc:
                    if not self._errored(run, route, exc).retry:
                        raise
                else:
                    try:
                        retry = self._responded(run, route, response).retry
                    except BaseException:
                        await response.aclose()
                        raise
                    if not retry:
                        return response
                    await _drain(response)
                if run.delay > 0:
                    await asyncio.sleep(run.delay)

    # -- refreshes in the background ---------------------------------------

    def _init_background(self) -> None:
        self._refreshes = Refreshes()

    def _refresh_in_background(self, host: str) -> None:
        self._refreshes.start(self._refresh(host))

    async def _refresh(self, host: str) -> None:
        try:
            answers = await self.resolver.lookup_addresses(host, self._setup.family)
        except asyncio.CancelledError:
            self._refreshed(host, RuntimeError("transport closed"))
            raise
        except Exception as exc:  # DNS down, or the name gone: _refreshed tells
            self._refreshed(host, exc)
        else:
            self._refreshed(host, answers)

    async def aclose(self) -> None:
        await self._refreshes.aclose()
        await super().aclose()
        if self._owns_resolver:
            await self.resolver.aclose()


async def _drain(response: httpx.Response) -> None:
    """Read a little of a response we will not return, so its connection can
    be reused, then close it."""
    drain = Drain()
    try:
        async for chunk in response.aiter_raw():
            if drain.enough(chunk):
                break
    except httpx.HTTPError:
        pass  # closed below all the same
    finally:
        await response.aclose()
