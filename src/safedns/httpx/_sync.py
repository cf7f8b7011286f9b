"""``SafeTransport``: an ``httpx.HTTPTransport`` whose connections resolve
through safedns, fail over between addresses, follow DNS changes, and whose
retries stay within a budget.

The shell only sends and sleeps: resolution is the resolver's, the address
order and the retirement of connections are ``safedns._follow``'s, and every
retry decision is ``safedns._retry``'s. ``AsyncSafeTransport`` (``_async.py``)
is the same shell for asyncio.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

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

__all__ = ["SafeBackend", "SafeTransport"]

#: At most this much of a response that will be retried is read (so its
#: connection can be reused) before it is closed.
_DRAIN_LIMIT = 64 * 1024


class SafeBackend(httpcore.NetworkBackend):
    """An httpcore network backend that resolves through a safedns ``Resolver``
    and connects to the addresses in turn (IPv6/IPv4 interleaved), moving on
    after a connect error or timeout. ``from_book``: dial what the transport
    read from the resolver for this request (in ``book``) instead of asking
    it again. Sockets come from ``httpcore.SyncBackend``;
    TLS (``start_tls``) still gets the hostname from httpcore, so SNI and the
    certificate check stay on the name."""

    def __init__(
        self,
        resolver: Resolver,
        *,
        book: AddressBook | None = None,
        counters: TransportCounters | None = None,
        from_book: bool = False,
        backend: httpcore.NetworkBackend | None = None,
    ) -> None:
        self.resolver = resolver
        self.book = book if book is not None else AddressBook()
        self.counters = counters if counters is not None else TransportCounters()
        self.from_book = from_book
        self._backend = backend if backend is not None else httpcore.SyncBackend()

    def addresses(self, host: str, local_address: str | None = None) -> list[str]:
        """The addresses to try for ``host``, in order."""
        if is_ip_literal(host):
            return [host.strip("[]")]
        known = self.book.addresses(host) if self.from_book else None
        if known:
            return interleave(known)
        try:
            found = self.resolver.resolve_addresses(host, family_for(local_address))
        except RESOLVE_ERRORS as exc:
            raise resolve_error(host, exc) from exc
        self.book.update(host, found)
        return interleave(found)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        error: Exception | None = None
        for address in self.addresses(host, local_address):
            try:
                stream = self._backend.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
                continue
            self.counters.bump("connections_opened")
            return stream
        assert error is not None
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_unix_socket(path, timeout, socket_options)
        self.counters.bump("connections_opened")
        return stream

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class _WatchedConnection(httpcore.ConnectionInterface):
    """A pooled connection that retires (is not reused, and is closed at the
    next checkout once idle) when its ``ConnectionWatch`` says so."""

    def __init__(
        self,
        inner: httpcore.ConnectionInterface,
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

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        response = self._inner.handle_request(request)
        if self._watch.peer is None:
            stream = response.extensions.get("network_stream")
            if stream is not None:
                with contextlib.suppress(OSError):  # the peer is gone: so is the connection
                    self._watch.learn(stream.get_extra_info("server_addr"))
        return response

    def close(self) -> None:
        self._inner.close()

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


class _WatchingPool(httpcore.ConnectionPool):
    """``httpcore.ConnectionPool`` whose connections follow DNS
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

    def create_connection(self, origin: httpcore.Origin) -> httpcore.ConnectionInterface:
        book, counters, max_age = self.safedns_watch
        host = origin.host.decode("ascii")
        watch = ConnectionWatch(host, book, time.monotonic(), max_age)
        return _WatchedConnection(super().create_connection(origin), watch, counters)


class SafeTransport(httpx.HTTPTransport):
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
    - Every other argument is ``httpx.HTTPTransport``'s, with its meaning.
      With a ``proxy``, the proxy's hostname resolves through safedns and
      the target's is resolved by the proxy, as with plain httpx.
    """

    def __init__(
        self,
        resolver: Resolver | None = None,
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
        self._owns_resolver = resolver is None
        self.resolver = resolver if resolver is not None else Resolver()
        self.retry = setup.retry
        self.retry_budget = setup.retry_budget
        self.max_connection_age = max_connection_age
        self._setup = setup
        self._counters = setup.counters
        self._backend = SafeBackend(
            self.resolver, book=setup.book, counters=setup.counters, from_book=setup.follow
        )
        pool: httpcore.ConnectionPool
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
            proxy_class = httpcore.HTTPProxy if kind == "http" else httpcore.SOCKSProxy
            pool = proxy_class(network_backend=self._backend, **kwargs)
        self.pool = pool
        install_pool(self, pool)

    def stats(self) -> TransportStats:
        """Requests, attempts, retries, retries denied, connections opened and
        retired (see ``TransportStats``)."""
        return self._counters.snapshot()

    def _refresh(self, host: str) -> None:
        """Read the host's current answer (a cache hit, except once per TTL)
        so that pooled connections can follow it. A failure here is not the
        request's: an open connection may still serve it."""
        setup = self._setup
        if not setup.follow or is_ip_literal(host):
            return
        try:
            setup.book.update(host, self.resolver.resolve_addresses(host, setup.family))
        except NOT_FOUND:
            setup.book.forget(host)  # the next connection asks the resolver, and fails
        except RESOLVE_ERRORS:
            return  # DNS is down: keep the last addresses we had

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        counters = self._counters
        counters.bump("requests")
        self._refresh(request.url.raw_host.decode("ascii"))
        run = RetryRun(
            self.retry,
            self.retry_budget,
            request.method,
            body_replayable=body_replayable(request),
        )
        while True:
            counters.bump("attempts")
            try:
                response = super().handle_request(request)
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
                _drain(response)
            counters.bump("retries")
            if decision.delay > 0:
                time.sleep(decision.delay)

    def close(self) -> None:
        super().close()
        if self._owns_resolver:
            self.resolver.close()


def _drain(response: httpx.Response) -> None:
    """Read a little of a response we will not return, so its connection can
    be reused, then close it."""
    try:
        read = 0
        for chunk in response.iter_raw():
            read += len(chunk)
            if read > _DRAIN_LIMIT:
                break
    except httpx.HTTPError:
        pass
    finally:
        response.close()
