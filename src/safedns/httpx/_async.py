"""``AsyncSafeTransport``: ``SafeTransport`` for asyncio (and trio, through
anyio), an ``httpx.AsyncHTTPTransport`` with the same decisions.

The twin of ``_sync.py``, line for line: every decision lives in
``safedns._retry`` and ``safedns._follow``; this shell awaits where that one
blocks. A resolver cache hit completes without suspending.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from typing import Any

import anyio
import httpcore
import httpx

from safedns._async import AsyncResolver
from safedns._follow import AddressBook, ConnectionWatch, Retirement, interleave, is_ip_literal
from safedns._resolver import Resolver
from safedns._retry import RetryBudget, RetryPolicy, RetryRun, parse_retry_after
from safedns.httpx._common import (
    DEFAULT_LIMITS,
    NOT_FOUND,
    RESOLVE_ERRORS,
    Setup,
    TransportCounters,
    TransportStats,
    body_replayable,
    classify,
    family_for,
    install_pool,
    resolve_error,
)

__all__ = ["AsyncSafeBackend", "AsyncSafeTransport"]

#: At most this much of a response that will be retried is read (so its
#: connection can be reused) before it is closed.
_DRAIN_LIMIT = 64 * 1024


class AsyncSafeBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves through a safedns ``AsyncResolver``
    and connects to the addresses in turn (IPv6/IPv4 interleaved), moving on
    after a connect error or timeout. ``from_book``: dial what the transport
    read from the resolver for this request (in ``book``) instead of asking
    it again. Sockets come from ``httpcore.AnyIOBackend``;
    TLS (``start_tls``) still gets the hostname from httpcore, so SNI and the
    certificate check stay on the name."""

    def __init__(
        self,
        resolver: AsyncResolver,
        *,
        book: AddressBook | None = None,
        counters: TransportCounters | None = None,
        from_book: bool = False,
        backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.resolver = resolver
        self.book = book if book is not None else AddressBook()
        self.counters = counters if counters is not None else TransportCounters()
        self.from_book = from_book
        self._backend = backend if backend is not None else httpcore.AnyIOBackend()

    async def addresses(self, host: str, local_address: str | None = None) -> list[str]:
        """The addresses to try for ``host``, in order."""
        if is_ip_literal(host):
            return [host.strip("[]")]
        known = self.book.addresses(host) if self.from_book else None
        if known:
            return interleave(known)
        try:
            found = await self.resolver.resolve_addresses(host, family_for(local_address))
        except RESOLVE_ERRORS as exc:
            raise resolve_error(host, exc) from exc
        self.book.update(host, found)
        return interleave(found)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        error: Exception | None = None
        for address in await self.addresses(host, local_address):
            try:
                stream = await self._backend.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
                continue
            self.counters.bump("connections_opened")
            return stream
        assert error is not None
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_unix_socket(path, timeout, socket_options)
        self.counters.bump("connections_opened")
        return stream

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _WatchedConnection(httpcore.AsyncConnectionInterface):
    """A pooled connection that retires (is not reused, and is closed at the
    next checkout once idle) when its ``ConnectionWatch`` says so."""

    def __init__(
        self,
        inner: httpcore.AsyncConnectionInterface,
        watch: ConnectionWatch,
        counters: TransportCounters,
    ) -> None:
        self._inner = inner
        self._watch = watch
        self._counters = counters

    def _retired(self) -> bool:
        watch = self._watch
        reason = watch.check(time.monotonic())
        if reason is Retirement.DNS:
            self._counters.bump("connections_retired_dns")
        elif reason is Retirement.AGE:
            self._counters.bump("connections_retired_age")
        return watch.retired is not None

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        response = await self._inner.handle_async_request(request)
        if self._watch.peer is None:
            stream = response.extensions.get("network_stream")
            if stream is not None:
                with contextlib.suppress(OSError):  # the peer is gone: so is the connection
                    self._watch.learn(stream.get_extra_info("server_addr"))
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()

    def info(self) -> str:
        return self._inner.info()

    def can_handle_request(self, origin: httpcore.Origin) -> bool:
        return self._inner.can_handle_request(origin)

    def is_available(self) -> bool:
        return self._inner.is_available() and not self._retired()

    def has_expired(self) -> bool:
        if self._inner.has_expired():
            return True
        return self._inner.is_idle() and self._retired()

    def is_idle(self) -> bool:
        return self._inner.is_idle()

    def is_closed(self) -> bool:
        return self._inner.is_closed()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} [{self.info()}] peer={self._watch.peer}>"


class _WatchingPool(httpcore.AsyncConnectionPool):
    """``httpcore.AsyncConnectionPool`` whose connections follow DNS
    (``create_connection`` is httpcore's own extension point)."""

    def __init__(
        self,
        *,
        book: AddressBook,
        counters: TransportCounters,
        max_connection_age: float | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.safedns_watch = (book, counters, max_connection_age)

    def create_connection(self, origin: httpcore.Origin) -> httpcore.AsyncConnectionInterface:
        book, counters, max_age = self.safedns_watch
        host = origin.host.decode("ascii")
        watch = ConnectionWatch(host, book, time.monotonic(), max_age)
        return _WatchedConnection(super().create_connection(origin), watch, counters)


class AsyncSafeTransport(httpx.AsyncHTTPTransport):
    """A drop-in ``httpx.AsyncHTTPTransport`` that resolves hostnames through safedns.

    ``httpx.AsyncClient(transport=AsyncSafeTransport(resolver=..., retry=...))``.

    - ``resolver``: a ``safedns.AsyncResolver`` (default: one built from the system
      configuration, owned and closed by the transport; a sync ``safedns.Resolver`` is
      accepted too and shares its cache).
    - ``retry``: a ``safedns.RetryPolicy``, or None (default) for no retries.
    - ``retry_budget``: caps the retries of all requests through this
      transport (default ``RetryBudget()``); pass one to share it.
    - ``max_connection_age``: seconds after which a keep-alive connection is
      not reused (default None: connections live as long as their address is
      in DNS and the server keeps them).
    - Every other argument is ``httpx.HTTPTransport``'s, with its meaning.
      With a ``proxy``, the proxy's hostname resolves through safedns and
      the target's is resolved by the proxy, as with plain httpx.
    """

    def __init__(
        self,
        resolver: AsyncResolver | Resolver | None = None,
        *,
        retry: RetryPolicy | None = None,
        retry_budget: RetryBudget | None = None,
        max_connection_age: float | None = None,
        verify: Any = True,
        cert: Any = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx.Limits = DEFAULT_LIMITS,
        proxy: Any = None,
        uds: str | None = None,
        local_address: str | None = None,
        retries: int = 0,
        socket_options: Iterable[Any] | None = None,
    ) -> None:
        # httpx.HTTPTransport.__init__ is not called: it would build a pool
        # without our backend; install_pool() gives httpx ours instead.
        setup = Setup.build(
            retry=retry,
            retry_budget=retry_budget,
            max_connection_age=max_connection_age,
            verify=verify,
            cert=cert,
            trust_env=trust_env,
            http1=http1,
            http2=http2,
            limits=limits,
            proxy=proxy,
            uds=uds,
            local_address=local_address,
            retries=retries,
            socket_options=socket_options,
        )
        self._owns_resolver = resolver is None or isinstance(resolver, Resolver)
        if isinstance(resolver, Resolver):
            resolver = AsyncResolver(resolver=resolver)  # shares its cache
        self.resolver = resolver if resolver is not None else AsyncResolver()
        self.retry = setup.retry
        self.retry_budget = setup.retry_budget
        self.max_connection_age = max_connection_age
        self._setup = setup
        self._counters = setup.counters
        self._backend = AsyncSafeBackend(
            self.resolver, book=setup.book, counters=setup.counters, from_book=setup.follow
        )
        pool: httpcore.AsyncConnectionPool
        if setup.settings.proxy is None:
            pool = _WatchingPool(
                book=setup.book,
                counters=setup.counters,
                max_connection_age=max_connection_age,
                network_backend=self._backend,
                **setup.settings.direct(),
            )
        else:
            kind, kwargs = setup.settings.proxied()
            proxy_class = httpcore.AsyncHTTPProxy if kind == "http" else httpcore.AsyncSOCKSProxy
            pool = proxy_class(network_backend=self._backend, **kwargs)
        self.pool = pool
        install_pool(self, pool)

    def stats(self) -> TransportStats:
        """Requests, attempts, retries, retries denied, connections opened and
        retired (see ``TransportStats``)."""
        return self._counters.snapshot()

    async def _refresh(self, host: str) -> None:
        """Read the host's current answer (a cache hit, except once per TTL)
        so that pooled connections can follow it. A failure here is not the
        request's: an open connection may still serve it."""
        setup = self._setup
        if not setup.follow or is_ip_literal(host):
            return
        try:
            setup.book.update(host, await self.resolver.resolve_addresses(host, setup.family))
        except NOT_FOUND:
            setup.book.forget(host)  # the next connection asks the resolver, and fails
        except RESOLVE_ERRORS:
            return  # DNS is down: keep the last addresses we had

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        counters = self._counters
        counters.bump("requests")
        await self._refresh(request.url.raw_host.decode("ascii"))
        run = RetryRun(
            self.retry,
            self.retry_budget,
            request.method,
            body_replayable=body_replayable(request),
        )
        while True:
            counters.bump("attempts")
            try:
                response = await super().handle_async_request(request)
            except httpx.TransportError as exc:
                decision = run.after_error(classify(exc))
                if decision.denied:
                    counters.bump("retries_denied")
                if not decision.retry:
                    raise
            else:
                if response.status_code not in self.retry.retry_on_status:
                    return response
                retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
                decision = run.after_status(response.status_code, retry_after)
                if decision.denied:
                    counters.bump("retries_denied")
                if not decision.retry:
                    return response
                await _drain(response)
            counters.bump("retries")
            if decision.delay > 0:
                await anyio.sleep(decision.delay)

    async def aclose(self) -> None:
        await super().aclose()
        if self._owns_resolver:
            await self.resolver.aclose()


async def _drain(response: httpx.Response) -> None:
    """Read a little of a response we will not return, so its connection can
    be reused, then close it."""
    try:
        read = 0
        async for chunk in response.aiter_raw():
            read += len(chunk)
            if read > _DRAIN_LIMIT:
                break
    except httpx.HTTPError:
        pass
    finally:
        await response.aclose()
