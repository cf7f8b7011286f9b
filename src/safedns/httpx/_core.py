"""The halves of the sync and async httpx shells that do no I/O, written once.

``SafeTransport`` (``_sync.py``) and ``AsyncSafeTransport`` (``_async.py``)
are each made of a network backend, a watched connection, a pool and the
transport itself. Everything those four do besides calling a socket, the
resolver or a sleep lives here, in one class each that both shells inherit:

- ``BackendCore``: the backend's state, the addresses to dial (IP literal,
  the transport's address book, or the resolver's answer) and the errors a
  failed resolution becomes.
- ``WatchedConnectionCore``: a pooled connection's ``ConnectionWatch``: every
  method of httpcore's connection interface that does no I/O, retirement
  (counted in the transport's stats) and learning the peer address.
- ``WatchingPoolCore``: the pool's watch setup for ``create_connection``.
- ``TransportCore``: the constructor (options checked and pool built by
  ``Setup``, the one private attribute set by ``install_pool``), ``stats()``,
  the ``RetryRun`` of a request and the DNS refresh decisions; a shell names
  its I/O classes in one ``ShellClasses``.

The shells subclass these together with the httpcore/httpx base classes and
add only their I/O: ``connect_tcp`` (walking ``_common.Dial``),
``handle_request`` (closing retried responses as ``_common.Drain`` says),
``close`` and their ``async`` twins.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar, Generic, NamedTuple, Protocol, TypeVar

import httpcore
import httpx

from safedns._follow import AddressBook, ConnectionWatch, Retirement, interleave, is_ip_literal
from safedns._retry import RetryBudget, RetryPolicy, RetryRun
from safedns.httpx._common import (
    DEFAULT_LIMITS,
    NOT_FOUND,
    RESOLVE_ERRORS,
    Setup,
    TransportCounters,
    TransportStats,
    body_replayable,
    classify,
    install_pool,
    resolve_error,
)

__all__ = [
    "BackendCore",
    "ShellClasses",
    "TransportCore",
    "WatchedConnectionCore",
    "WatchingPoolCore",
]

ResolverT = TypeVar("ResolverT")
ResolverArgT = TypeVar("ResolverArgT")
NetworkT = TypeVar("NetworkT")
StreamT = TypeVar("StreamT")

#: The counter each reason for retiring a connection bumps.
_RETIRED = {
    Retirement.DNS: "connections_retired_dns",
    Retirement.AGE: "connections_retired_age",
}


class BackendCore(Generic[ResolverT, NetworkT]):
    """``SafeBackend`` and ``AsyncSafeBackend`` without their I/O: the
    resolver, the transport's address book and counters, and the socket
    backend (``backend``, default ``_default_backend()``) that dials."""

    def __init__(
        self,
        resolver: ResolverT,
        *,
        book: AddressBook | None = None,
        counters: TransportCounters | None = None,
        from_book: bool = False,
        backend: NetworkT | None = None,
    ) -> None:
        self.resolver = resolver
        self.book = book if book is not None else AddressBook()
        self.counters = counters if counters is not None else TransportCounters()
        self.from_book = from_book
        self._backend = backend if backend is not None else self._default_backend()

    def _default_backend(self) -> NetworkT:
        raise NotImplementedError

    def _known(self, host: str) -> list[str] | None:
        """The addresses to try without asking the resolver: an IP literal's
        own, or (``from_book``) what the transport read for this request."""
        if is_ip_literal(host):
            return [host.strip("[]")]
        known = self.book.addresses(host) if self.from_book else None
        return interleave(known) if known else None

    @contextlib.contextmanager
    def _resolving(self, host: str) -> Iterator[None]:
        """Around the resolver's call: its failure becomes the
        ``httpcore.ConnectError`` a failed ``getaddrinfo`` would be."""
        try:
            yield
        except RESOLVE_ERRORS as exc:
            raise resolve_error(host, exc) from exc

    def _learned(self, host: str, found: Sequence[str]) -> list[str]:
        """The resolver answered ``found``: kept in the book, returned in the
        order to try."""
        self.book.update(host, found)
        return interleave(found)

    def _opened(self, stream: StreamT) -> StreamT:
        self.counters.bump("connections_opened")
        return stream


class _Pooled(Protocol):
    """What httpcore's sync and async connection interfaces have in common."""

    def info(self) -> str: ...
    def can_handle_request(self, origin: httpcore.Origin) -> bool: ...
    def is_available(self) -> bool: ...
    def has_expired(self) -> bool: ...
    def is_idle(self) -> bool: ...
    def is_closed(self) -> bool: ...


ConnectionT = TypeVar("ConnectionT", bound=_Pooled)


class WatchedConnectionCore(Generic[ConnectionT]):
    """A pooled connection that retires (is not reused, and is closed at the
    next checkout once idle) when its ``ConnectionWatch`` says so. The
    shells add ``handle_request``/``close`` (or their async twins), which
    pass ``_inner``'s response through ``_learn_peer``."""

    def __init__(
        self, inner: ConnectionT, watch: ConnectionWatch, counters: TransportCounters
    ) -> None:
        self._inner = inner
        self._watch = watch
        self._counters = counters

    def _retired(self) -> bool:
        watch = self._watch
        reason = watch.check(time.monotonic())
        if reason is not None:
            self._counters.bump(_RETIRED[reason])
        return watch.retired is not None

    def _learn_peer(self, response: httpcore.Response) -> httpcore.Response:
        """Learn the peer's address from the first response's network stream."""
        if self._watch.peer is None:
            stream = response.extensions.get("network_stream")
            if stream is not None:
                with contextlib.suppress(OSError):  # the peer is gone: so is the connection
                    self._watch.learn(stream.get_extra_info("server_addr"))
        return response

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


class WatchingPoolCore:
    """Mixed into ``httpcore.ConnectionPool`` / ``AsyncConnectionPool``: the
    arguments that make its connections follow DNS (``Setup.pool_arguments``)
    and the ``ConnectionWatch`` of each new one. The shells' pools override
    ``create_connection`` (httpcore's own extension point) to wrap httpcore's
    connection with ``watch(origin)``."""

    def __init__(
        self,
        *,
        book: AddressBook,
        counters: TransportCounters,
        max_connection_age: float | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.safedns_book = book
        self.safedns_counters = counters
        self.safedns_max_age = max_connection_age

    def watch(self, origin: httpcore.Origin) -> ConnectionWatch:
        host = origin.host.decode("ascii")
        return ConnectionWatch(host, self.safedns_book, time.monotonic(), self.safedns_max_age)


class ShellClasses(NamedTuple):
    """The I/O classes of one shell: its network backend (a ``BackendCore``)
    and its pool for each kind ``Setup.pool_arguments`` names."""

    backend: Callable[..., Any]
    direct: Callable[..., Any]
    http: Callable[..., Any]
    socks: Callable[..., Any]


class TransportCore(Generic[ResolverArgT, ResolverT]):
    """``SafeTransport`` and ``AsyncSafeTransport`` without their I/O.

    ``ResolverArgT`` is what the ``resolver`` argument may be,
    ``ResolverT`` the resolver the transport uses (``_adopt_resolver``);
    ``classes`` the shell's network backend and pools.
    ``httpx.HTTPTransport.__init__`` is not called: it would build a pool
    without our backend; ``install_pool`` gives httpx ours instead.
    """

    classes: ClassVar[ShellClasses]

    def __init__(
        self,
        resolver: ResolverArgT | None = None,
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
        kind, kwargs = setup.pool_arguments()  # may raise: before a resolver is made
        self.resolver: ResolverT = self._adopt_resolver(resolver)
        self._owns_resolver = self.resolver is not resolver
        self.retry = setup.retry
        self.retry_budget = setup.retry_budget
        self.max_connection_age = max_connection_age
        self._setup = setup
        self._counters = setup.counters
        classes = self.classes
        backend = classes.backend(
            self.resolver, book=setup.book, counters=setup.counters, from_book=setup.follow
        )
        pool_class = {"direct": classes.direct, "http": classes.http, "socks": classes.socks}[kind]
        self.pool = pool_class(network_backend=backend, **kwargs)
        install_pool(self, self.pool)

    def _adopt_resolver(self, resolver: ResolverArgT | None) -> ResolverT:
        """The resolver to use for ``resolver`` (None: one of the transport's
        own). One that is not ``resolver`` itself is closed with the transport."""
        raise NotImplementedError

    def stats(self) -> TransportStats:
        """Requests, attempts, retries, retries denied, connections opened and
        retired (see ``TransportStats``)."""
        return self._counters.snapshot()

    def _retry_run(self, request: httpx.Request) -> RetryRun:
        """The run of ``request``'s attempts, counted in ``stats()``."""
        return RetryRun(
            self.retry,
            self.retry_budget,
            request.method,
            body_replayable=body_replayable(request),
            classify=classify,
            tally=self._counters.bump,
        )

    def _to_refresh(self, request: httpx.Request) -> str | None:
        """The host whose current answer to read before ``request`` (a cache
        hit, except once per TTL) so that pooled connections can follow it;
        None where the transport does not dial the host itself (proxy, socket
        file) or it is an IP literal."""
        if not self._setup.follow:
            return None
        host = request.url.raw_host.decode("ascii")
        return None if is_ip_literal(host) else host

    @contextlib.contextmanager
    def _refreshing(self, host: str) -> Iterator[None]:
        """Around the resolver's call for ``_to_refresh``: its failure is not
        the request's, as an open connection may still serve it."""
        try:
            yield
        except NOT_FOUND:
            self._setup.book.forget(host)  # the next connection asks the resolver, and fails
        except RESOLVE_ERRORS:
            pass  # DNS is down: keep the last addresses we had

    def _found(self, host: str, addresses: Sequence[str]) -> None:
        self._setup.book.update(host, addresses)
