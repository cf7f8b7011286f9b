"""``RetryMiddleware``: retries for aiohttp (>= 3.12) client sessions that
cannot become a storm, made by the HTTP core's ``RetryRun``.

``aiohttp.ClientSession(middlewares=(RetryMiddleware(retry=...),))``: each
request's attempts go through one ``RetryRun`` (``RetryPolicy`` under a
``RetryBudget``); this shell only calls aiohttp's handler, sleeps, and
releases every response it does not hand back. Around the attempts it sets
the request's ``Route`` (``safedns._http.dial.routing``), so that a
``SafeConnector`` sends a retry to another of the host's addresses, and an
``Exchange`` through which that connector's ``Hosts`` learns of a
connection that broke.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp.client_middlewares import ClientHandlerType
from aiohttp.client_reqrep import ClientRequest, ClientResponse
from aiohttp.payload import Payload

from safedns._http.dial import routing
from safedns._http.retry import Decision, Failure, RetryBudget, RetryPolicy, RetryRun
from safedns._http.stats import TransportCounters, TransportStats
from safedns.aiohttp._connector import EXCHANGE, Exchange

__all__ = ["RetryMiddleware", "classify", "replayable"]

#: A response to be retried is read (so its connection can be reused) when
#: its announced length is at most this; else it is released unread.
DRAIN_LIMIT = 64 * 1024


def classify(exc: BaseException) -> Failure:
    """What an exception from aiohttp's request handler means for retrying
    (see ``safedns.RetryPolicy``)."""
    if isinstance(
        exc, (aiohttp.ClientConnectorCertificateError, aiohttp.ServerFingerprintMismatch)
    ):
        return Failure.TLS_CERTIFICATE
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        # The name does not exist, or DNS did not answer after the resolver's
        # own tries: an HTTP retry would only ask DNS again.
        return Failure.OTHER
    if isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
        return Failure.CONNECT
    if isinstance(
        exc,
        (
            aiohttp.ServerConnectionError,  # disconnected, read timeout
            aiohttp.ClientOSError,  # reset
            aiohttp.ClientPayloadError,
            aiohttp.ClientResponseError,  # a malformed response
        ),
    ):
        return Failure.TRANSPORT
    return Failure.OTHER


def replayable(request: ClientRequest) -> bool:
    """Can the request's body be sent again? aiohttp's payloads say
    (``consumed``: a stream read once cannot)."""
    body = request.body
    return not isinstance(body, Payload) or not body.consumed


class RetryMiddleware:
    """An aiohttp client middleware that retries as ``retry`` (a
    ``safedns.RetryPolicy``, default ``RetryPolicy()``) allows, within
    ``retry_budget`` (a ``safedns.RetryBudget``, default ``RetryBudget()``,
    shared by every request through this middleware).

    - Statuses in ``retry.retry_on_status`` and transport errors are retried
      for ``retry.retry_methods``; other methods (POST) only when nothing was
      sent (a connect failure). A refused certificate and a DNS failure are
      not retried. ``Retry-After`` is honoured up to ``retry.backoff_max``.
    - Every response not handed back is released (read first when short,
      so its connection is reused).
    - With a ``SafeConnector``, a retry goes to another of the host's
      addresses when it has one.

    ``stats()``: requests, attempts, retries and retries denied.
    """

    def __init__(
        self, retry: RetryPolicy | None = None, retry_budget: RetryBudget | None = None
    ) -> None:
        if not (retry is None or isinstance(retry, RetryPolicy)):
            raise TypeError(f"retry must be a safedns.RetryPolicy or None, got {retry!r}")
        if not (retry_budget is None or isinstance(retry_budget, RetryBudget)):
            raise TypeError(
                f"retry_budget must be a safedns.RetryBudget or None, got {retry_budget!r}"
            )
        self.retry = retry if retry is not None else RetryPolicy()
        self.retry_budget = retry_budget if retry_budget is not None else RetryBudget()
        self._counters = TransportCounters()

    def stats(self) -> TransportStats:
        """Requests, attempts, retries and retries denied (the connection
        counts are the connector's: ``SafeConnector.stats()``)."""
        return self._counters.snapshot()

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        run = RetryRun(
            self.retry,
            self.retry_budget,
            request.method,
            body_replayable=replayable(request),
            tally=self._counters.bump,
        )
        with routing() as route:
            exchange = Exchange(route)
            token = EXCHANGE.set(exchange)
            try:
                while True:
                    run.begin()
                    try:
                        response = await handler(request)
                    except Exception as exc:
                        run.body_replayable = replayable(request)
                        if not self._errored(run, exchange, exc).retry:
                            raise
                    else:
                        try:
                            run.body_replayable = replayable(request)
                            retry = run.after_response(response.status, response.headers).retry
                        except BaseException:
                            response.release()
                            raise
                        if not retry:
                            return response
                        route.retrying()
                        await _discard(response)
                    if run.delay > 0:
                        await asyncio.sleep(run.delay)
            finally:
                EXCHANGE.reset(token)

    def _errored(self, run: RetryRun, exchange: Exchange, exc: Exception) -> Decision:
        """An attempt raised ``exc``: retry (elsewhere) or not."""
        failure = classify(exc)
        route = exchange.route
        if failure is Failure.TRANSPORT and exchange.hosts is not None and exchange.clock:
            exchange.hosts.broke(route.last, exchange.clock())  # reset, closed unanswered
        decision = run.after_error(failure)
        if decision.retry:
            route.retrying()
        return decision


async def _discard(response: ClientResponse) -> None:
    """Release a response that will not be returned: read first when it is
    short (its connection is then reused), else closed unread."""
    try:
        length = response.content_length
        if length is not None and length <= DRAIN_LIMIT:
            await response.read()
    except (aiohttp.ClientError, asyncio.TimeoutError):
        pass  # released below all the same
    finally:
        response.release()
