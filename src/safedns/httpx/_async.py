"""``AsyncSafeTransport``: ``SafeTransport`` for asyncio (and trio, through
anyio), an ``httpx.AsyncHTTPTransport`` with the same decisions.

The async twin of ``_sync.py``: it awaits where that one blocks, and both
inherit everything that is not I/O from ``safedns.httpx._core``. A resolver
cache hit completes without suspending.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import anyio
import httpcore
import httpx

from safedns._async import AsyncResolver
from safedns._resolver import Resolver
from safedns.httpx._common import Dial, Drain, family_for
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
    through a safedns ``AsyncResolver`` and connects to the addresses in turn.
    Same arguments; sockets come from ``backend`` (default
    ``httpcore.AnyIOBackend()``)."""

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
        dial = Dial(await self.addresses(host, local_address))
        for address in dial:
            with dial.attempt():
                stream = await self._backend.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
                return self._opened(stream)
        raise dial.failure()

    async def addresses(self, host: str, local_address: str | None = None) -> list[str]:
        """The addresses to try for ``host``, in order."""
        known = self._known(host)
        if known is not None:
            return known
        with self._resolving(host):
            found = await self.resolver.resolve_addresses(host, family_for(local_address))
        return self._learned(host, found)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_unix_socket(path, timeout, socket_options)
        return self._opened(stream)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _WatchedConnection(
    WatchedConnectionCore[httpcore.AsyncConnectionInterface], httpcore.AsyncConnectionInterface
):
    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        return self._learn_peer(await self._inner.handle_async_request(request))

    async def aclose(self) -> None:
        await self._inner.aclose()


class _WatchingPool(WatchingPoolCore, httpcore.AsyncConnectionPool):
    def create_connection(self, origin: httpcore.Origin) -> httpcore.AsyncConnectionInterface:
        inner = super().create_connection(origin)
        return _WatchedConnection(inner, self.watch(origin), self.safedns_counters)


class AsyncSafeTransport(
    TransportCore[AsyncResolver | Resolver, AsyncResolver], httpx.AsyncHTTPTransport
):
    """A drop-in ``httpx.AsyncHTTPTransport`` that resolves hostnames through safedns.

    ``httpx.AsyncClient(transport=AsyncSafeTransport(resolver=..., retry=...))``.

    - ``resolver``: a ``safedns.AsyncResolver`` (default: one built from the system
      configuration, owned and closed by the transport; a sync ``safedns.Resolver`` is
      accepted too and shares its cache).
    - ``retry``, ``retry_budget``, ``max_connection_age`` and every argument of
      ``httpx.AsyncHTTPTransport``: as for ``SafeTransport``.
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
            with self._refreshing(host):
                found = await self.resolver.resolve_addresses(host, self._setup.family)
                self._found(host, found)
        while True:
            with run.trying():
                response = await super().handle_async_request(request)
                if not run.after_response(response.status_code, response.headers).retry:
                    return response
                await _drain(response)
            if run.delay > 0:
                await anyio.sleep(run.delay)

    async def aclose(self) -> None:
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
