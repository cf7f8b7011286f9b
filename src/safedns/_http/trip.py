"""One request's trip through a transport, for adapters that send from a
thread (urllib3, requests): where its new connections' addresses come from,
how they are dialled, what each attempt's outcome teaches the transport, and
the background refresh that keeps DNS off the request path. Every decision is
``Hosts``'s, ``Attempts``'s or ``RetryRun``'s; this only strings them together
so that each adapter is left with its client's exceptions and hooks.

- ``dial_addresses``: an IP literal's own address; what this request already
  resolved; the transport's answer while it may be dialled (fresh, or within
  ``stale_ttl``); else the resolver, asked at most once per request (a second
  ask raises the first one's error again).
- ``dial_sync``: the RFC 8305 race of one new connection over those
  addresses (``Hosts.order`` then ``connect_sync``), and what its outcome
  teaches ``Hosts``.
- ``refresh_due`` / ``refresh_sync``: before a request, should the host's
  expired answer be refreshed (in the background: the request never waits
  for it), and the refresh itself.
- ``Trip``: a request's ``RetryRun`` and ``Route`` together: after an error
  or a response, retry (elsewhere) or not; ``Trip.send`` is the whole retry
  loop of a thread (attempt, decide, discard a retried response, back off).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from safedns._exceptions import InvalidName, NameNotFound, ResolveError
from safedns._http.connect import connect_sync
from safedns._http.dial import Attempts, Hosts, Route
from safedns._http.follow import is_ip_literal, is_local_name
from safedns._http.retry import Decision, Failure, RetryRun

if TYPE_CHECKING:
    from safedns._resolver import Resolver

__all__ = [
    "NOT_FOUND",
    "RESOLVE_ERRORS",
    "Trip",
    "dial_addresses",
    "dial_sync",
    "refresh_due",
    "refresh_sync",
]

#: What the resolver raises when a name cannot be resolved, and when it does
#: not exist (the host is then forgotten: the next connection asks again).
RESOLVE_ERRORS = (ResolveError, InvalidName)
NOT_FOUND = (NameNotFound, InvalidName)

R = TypeVar("R")


def dial_addresses(
    resolver: Resolver, hosts: Hosts, host: str, route: Route, family: int = socket.AF_UNSPEC
) -> Sequence[str]:
    """The addresses a new connection to ``host`` may dial (see the module
    docstring). Raises the resolver's ``ResolveError`` or ``InvalidName``."""
    if is_ip_literal(host):
        return [host.strip("[]")]
    if route.addresses is not None:
        return route.addresses
    known = hosts.dialable(host, resolver.clock())
    if known is not None:
        return known
    if route.error is not None:
        raise route.error  # this request asked already
    route.resolved = True
    try:
        if is_local_name(host):
            found = resolver.resolve_addresses(host, family)
            entry = hosts.learn_local(host, found, resolver.clock())
        else:
            entry = hosts.learn(host, resolver.lookup_addresses(host, family))
    except RESOLVE_ERRORS as exc:
        route.error = exc
        if isinstance(exc, NOT_FOUND):
            hosts.book.forget(host)
        raise
    route.addresses = entry.addresses
    return entry.addresses


def dial_sync(
    hosts: Hosts,
    host: str,
    port: int,
    addresses: Sequence[str],
    route: Route,
    *,
    delay: float,
    timeout: float | None,
    clock: Callable[[], float],
    local_address: str | None = None,
    socket_options: Iterable[Any] | None = None,
) -> tuple[socket.socket, str]:
    """Race ``addresses`` as RFC 8305 says, in the order ``Hosts`` gives for
    this request, within ``timeout`` seconds. Returns the connected (blocking)
    socket and its address (also the route's ``last``). Raises
    ``TimeoutError`` or the last attempt's ``OSError``; either way every
    address tried is remembered as failing."""
    order = hosts.order(host, addresses, route, clock())
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    attempts = Attempts(order, delay, started, deadline)
    try:
        sock, address = connect_sync(
            attempts, port, local_address=local_address, socket_options=socket_options
        )
    except OSError:
        hosts.gave_up(attempts, clock())
        raise
    hosts.connected(attempts, clock())
    route.last = address
    return sock, address


def refresh_due(hosts: Hosts, host: str, now: float) -> bool:
    """Should ``host``'s answer be refreshed now, in the background? (Once per
    expiry; never for an IP literal or a name answered without DNS.)"""
    if is_ip_literal(host) or is_local_name(host):
        return False
    return hosts.refresh_due(host, now)


def refresh_sync(resolver: Resolver, hosts: Hosts, host: str, family: int) -> None:
    """Refresh ``host``'s answer: learnt, or (DNS down) the last one kept, or
    (the name is gone) forgotten. Never raises."""
    try:
        answers = resolver.lookup_addresses(host, family)
    except Exception as exc:
        hosts.refresh_failed(host, resolver.clock(), not_found=isinstance(exc, NOT_FOUND))
    else:
        hosts.learn(host, answers)


class Trip:
    """A request's ``RetryRun`` and its ``Route`` (the one ``routing()``
    set): each attempt's outcome goes to the run, and a retry is sent
    elsewhere. ``failed`` and ``answered`` return the run's ``Decision``."""

    __slots__ = ("clock", "hosts", "route", "run")

    def __init__(
        self, run: RetryRun, route: Route, hosts: Hosts, clock: Callable[[], float]
    ) -> None:
        self.run = run
        self.route = route
        self.hosts = hosts
        self.clock = clock

    def _onward(self, decision: Decision) -> Decision:
        if decision.retry:
            self.route.retrying()  # the next attempt avoids this one's address
        return decision

    def failed(self, failure: Failure) -> Decision:
        """The attempt raised: a reset or a close without a response makes
        its address one to try last for a while."""
        if failure is Failure.TRANSPORT:
            self.hosts.broke(self.route.last, self.clock())
        return self._onward(self.run.after_error(failure))

    def answered(self, status: int, headers: Mapping[str, str]) -> Decision:
        """The attempt got a response (one to retry must be closed first)."""
        return self._onward(self.run.after_response(status, headers))

    def send(
        self,
        attempt: Callable[[], R],
        *,
        classify: Callable[[Exception], Failure],
        status: Callable[[R], tuple[int, Mapping[str, str]]],
        discard: Callable[[R], None],
        sleep: Callable[[float], object] = time.sleep,
    ) -> R:
        """Call ``attempt()`` until its outcome is one to keep: a response
        (``status`` reads its status and headers) not to retry, or an error
        (``classify`` says how it failed) not to retry, which is raised. A
        response to retry goes to ``discard`` (read a little, or closed), also
        when deciding raises; between attempts, the run's backoff is slept."""
        while True:
            self.run.begin()
            try:
                response = attempt()
            except Exception as exc:
                if not self.failed(classify(exc)).retry:
                    raise
            else:
                if not self._passed_over(response, status, discard):
                    return response
            if self.run.delay > 0:
                sleep(self.run.delay)

    def _passed_over(
        self,
        response: R,
        status: Callable[[R], tuple[int, Mapping[str, str]]],
        discard: Callable[[R], None],
    ) -> bool:
        retry = True  # a decision that raises discards the response too
        try:
            retry = self.answered(*status(response)).retry
        finally:
            if retry:
                discard(response)
        return retry
