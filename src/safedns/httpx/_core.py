"""The halves of the sync and async httpx shells that do no I/O, written once.

``SafeTransport`` (``_sync.py``) and ``AsyncSafeTransport`` (``_async.py``)
are each made of a network backend, a watched connection, a pool and the
transport itself. Everything those four do besides calling a socket, the
resolver or a sleep lives here, in one class each that both shells inherit;
every decision is the HTTP core's (``safedns._http``):

- ``BackendCore``: the backend's state, the addresses a new connection may
  dial without DNS (an IP literal, the request's own earlier answer, or the
  transport's ``Hosts`` while the answer is fresh or within ``stale_ttl``),
  the order to try them in (spread, failed ones and the request's earlier
  ones last) and what a connect's outcome teaches ``Hosts``.
- ``WatchedConnectionCore``: a pooled connection's ``ConnectionWatch``: every
  method of httpcore's connection interface that does no I/O, retirement
  (counted in the transport's stats), and going elsewhere on a retry.
- ``WatchingPoolCore``: the pool's watch setup for ``create_connection``.
- ``TransportCore``: the constructor (options checked and pool built by
  ``Setup``, the one private attribute set by ``install_pool``), ``stats()``,
  the ``RetryRun`` of a request and what each attempt's outcome means, and
  the decision to refresh a host in the background (DNS is never on the path
  of a request that has a connection).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, Generic, NamedTuple, Protocol, TypeVar

import httpcore
import httpx

from safedns._http.dial import Attempts, Hosts, Route, find_route
from safedns._http.follow import ConnectionWatch, Retirement, is_ip_literal, is_local_name
from safedns._http.retry import Decision, Failure, RetryBudget, RetryPolicy, RetryRun
from safedns._records import Answer
from safedns.httpx._common import (
    DEFAULT_LIMITS,
    NOT_FOUND,
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
    resolver, the transport's ``Hosts`` and counters, and the socket backend
    (``backend``, default ``_default_backend()``).

    ``direct``: the backend dials the request's own host (the transport's
    direct pool): addresses come from ``Hosts`` and connects race as RFC
    8305 says. Otherwise (a proxy's host) each connect asks the resolver (a
    cache hit) and tries the addresses in turn.
    """

    def __init__(
        self,
        resolver: ResolverT,
        *,
        hosts: Hosts | None = None,
        counters: TransportCounters | None = None,
        direct: bool = False,
        family: int = 0,
        happy_eyeballs_delay: float = 0.25,
        backend: NetworkT | None = None,
    ) -> None:
        self.resolver = resolver
        self.hosts = hosts if hosts is not None else Hosts(stale_ttl=0.0)
        self.counters = counters if counters is not None else TransportCounters()
        self.direct = direct
        self.family = family
        self.happy_eyeballs_delay = happy_eyeballs_delay
        self._backend = backend if backend is not None else self._default_backend()

    def _default_backend(self) -> NetworkT:
        raise NotImplementedError

    def _clock(self) -> float:
        clock: Callable[[], float] = self.resolver.clock  # type: ignore[attr-defined]
        return clock()

    def _known(self, host: str, route: Route) -> Sequence[str] | None:
        """The addresses to try without asking the resolver: an IP literal's
        own, what this request already resolved, or (``direct``) the
        transport's answer while it may be dialled."""
        if is_ip_literal(host):
            return [host.strip("[]")]
        if route.addresses is not None:
            return route.addresses
        if not self.direct:
            return None
        return self.hosts.dialable(host, self._clock())

    def _must_resolve(self, host: str, route: Route) -> None:
        """Before asking the resolver for this request: a request asks at most
        once, so a second ask raises the first one's error again."""
        if route.error is not None:
            raise httpcore.ConnectError(str(route.error)) from route.error

    def _resolve_failed(self, host: str, route: Route, exc: Exception) -> httpcore.ConnectError:
        error = resolve_error(host, exc)
        route.resolved = True
        route.error = error
        if isinstance(exc, NOT_FOUND):
            self.hosts.book.forget(host)
        return error

    def _learned(self, host: str, route: Route, answers: Sequence[Answer]) -> Sequence[str]:
        """The resolver answered (``lookup_addresses``): kept for the transport
        and for the rest of this request."""
        entry = self.hosts.learn(host, answers)
        route.resolved = True
        route.addresses = entry.addresses
        return entry.addresses

    def _learned_local(self, host: str, route: Route, addresses: Sequence[str]) -> Sequence[str]:
        entry = self.hosts.learn_local(host, addresses, self._clock())
        route.resolved = True
        route.addresses = entry.addresses
        return entry.addresses

    def _attempts(
        self, host: str, addresses: Sequence[str], route: Route, timeout: float | None
    ) -> Attempts:
        """The RFC 8305 schedule of one connect, within ``timeout``."""
        order = self.hosts.order(host, addresses, route, self._clock())
        now = time.monotonic()
        deadline = None if timeout is None else now + timeout
        return Attempts(order, self.happy_eyeballs_delay, now, deadline)

    def _connected(self, attempts: Attempts, route: Route, address: str) -> None:
        self.hosts.connected(attempts, self._clock())
        route.last = address

    def _gave_up(self, attempts: Attempts) -> None:
        self.hosts.gave_up(attempts, self._clock())

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
    next checkout once idle) when its ``ConnectionWatch`` says so, and that
    a retry passes by when its host has another address. The shells add
    ``handle_request``/``close`` (or their async twins), which call
    ``_sending`` and ``_sent`` around ``_inner``'s."""

    def __init__(
        self, inner: ConnectionT, watch: ConnectionWatch, counters: TransportCounters, hosts: Hosts
    ) -> None:
        self._inner = inner
        self._watch = watch
        self._counters = counters
        self._hosts = hosts

    def _retired(self) -> bool:
        watch = self._watch
        reason = watch.check(time.monotonic())
        if reason is not None:
            self._counters.bump(_RETIRED[reason])
        return watch.retired is not None

    def _avoided(self) -> bool:
        """Is the request being sent here a retry that should go elsewhere?"""
        route = find_route()
        peer = self._watch.peer
        return (
            route is not None
            and peer is not None
            and peer in route.avoid
            and self._hosts.has_others(self._watch.host, peer)
        )

    def _sending(self) -> Route | None:
        route = find_route()
        if route is not None and self._watch.peer is not None:
            route.last = self._watch.peer  # a reused connection: this attempt's address
        return route

    def _sent(self, route: Route | None) -> None:
        if route is not None and self._watch.peer is None and route.last is not None:
            self._watch.learn(route.last)  # a new connection: the address it dialled

    def info(self) -> str:
        return self._inner.info()

    def can_handle_request(self, origin: httpcore.Origin) -> bool:
        return self._inner.can_handle_request(origin)

    def is_available(self) -> bool:
        return self._inner.is_available() and not self._retired() and not self._avoided()

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
    arguments that make its connections follow DNS (``Setup.pool_arguments``
    and the transport's ``Hosts``) and the ``ConnectionWatch`` of each new
    one. The shells' pools override ``create_connection`` (httpcore's own
    extension point) to wrap httpcore's connection with ``watch(origin)``."""

    def __init__(
        self,
        *,
        hosts: Hosts,
        counters: TransportCounters,
        max_connection_age: float | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.safedns_hosts = hosts
        self.safedns_counters = counters
        self.safedns_max_age = max_connection_age

    def watch(self, origin: httpcore.Origin) -> ConnectionWatch:
        host = origin.host.decode("ascii")
        return ConnectionWatch(
            host, self.safedns_hosts.book, time.monotonic(), self.safedns_max_age
        )


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
        happy_eyeballs_delay: float = 0.25,
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
            happy_eyeballs_delay=happy_eyeballs_delay,
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
        self.happy_eyeballs_delay = setup.happy_eyeballs_delay
        self._setup = setup
        self._counters = setup.counters
        config = self.resolver.config  # type: ignore[attr-defined]
        self.hosts = Hosts(stale_ttl=config.stale_ttl)  # 0: serve-stale off
        classes = self.classes
        backend = classes.backend(
            self.resolver,
            hosts=self.hosts,
            counters=setup.counters,
            direct=kind == "direct",
            family=setup.family,
            happy_eyeballs_delay=setup.happy_eyeballs_delay,
        )
        if kind == "direct":
            kwargs["hosts"] = self.hosts
        pool_class = {"direct": classes.direct, "http": classes.http, "socks": classes.socks}[kind]
        self.pool = pool_class(network_backend=backend, **kwargs)
        install_pool(self, self.pool)
        self._init_background()

    def _init_background(self) -> None:
        """The shell's state for background refreshes (none here)."""

    def _adopt_resolver(self, resolver: ResolverArgT | None) -> ResolverT:
        """The resolver to use for ``resolver`` (None: one of the transport's
        own). One that is not ``resolver`` itself is closed with the transport."""
        raise NotImplementedError

    def stats(self) -> TransportStats:
        """Requests, attempts, retries, retries denied, connections opened and
        retired (see ``TransportStats``)."""
        return self._counters.snapshot()

    def _clock(self) -> float:
        clock: Callable[[], float] = self.resolver.clock  # type: ignore[attr-defined]
        return clock()

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
        """The host to refresh in the background before ``request`` (its
        answer expired and no refresh is under way), or None. Never a wait:
        the request goes on at once, on a pooled connection if it has one."""
        if not self._setup.follow:
            return None
        host = request.url.raw_host.decode("ascii")
        if is_ip_literal(host) or is_local_name(host):
            return None  # no DNS answer to refresh: a new connection asks again
        return host if self.hosts.refresh_due(host, self._clock()) else None

    def _refreshed(self, host: str, answers: Sequence[Answer] | BaseException) -> None:
        """What a background refresh of ``host`` got: answers, or an error."""
        if isinstance(answers, BaseException):
            self.hosts.refresh_failed(
                host, self._clock(), not_found=isinstance(answers, NOT_FOUND)
            )
        else:
            self.hosts.learn(host, answers)

    def _errored(self, run: RetryRun, route: Route, exc: Exception) -> Decision:
        """An attempt raised ``exc``: retry (elsewhere) or not."""
        failure = classify(exc)
        if failure is Failure.TRANSPORT:
            self.hosts.broke(route.last, self._clock())  # reset, closed without a response
        decision = run.after_error(failure)
        if decision.retry:
            route.retrying()
        return decision

    def _responded(self, run: RetryRun, route: Route, response: httpx.Response) -> Decision:
        """An attempt got ``response``: return it, or retry (elsewhere)."""
        decision = run.after_response(response.status_code, response.headers)
        if decision.retry:
            route.retrying()
        return decision
