"""What the sync and async transports share: error classification, the
counters behind ``stats()``, resolution errors as httpcore sees them, the
pool settings copied from ``httpx.HTTPTransport``, the one place that
touches a private attribute of httpx, and the two helpers of their I/O
loops: ``Dial`` (the addresses of one connect, in turn) and ``Drain`` (how
much of a response that will be retried is read).
"""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import ssl
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from safedns._exceptions import InvalidName, NameNotFound, ResolveError
from safedns._http.dial import DEFAULT_DELAY, check_delay
from safedns._http.follow import family_for
from safedns._http.retry import Failure, RetryBudget, RetryPolicy
from safedns._http.stats import TransportCounters, TransportStats

__all__ = [
    "DEFAULT_LIMITS",
    "DRAIN_LIMIT",
    "NOT_FOUND",
    "NO_RETRY",
    "RESOLVE_ERRORS",
    "Dial",
    "Drain",
    "PoolSettings",
    "Setup",
    "TransportCounters",
    "TransportStats",
    "body_replayable",
    "classify",
    "install_pool",
    "resolve_error",
]


def _chain(exc: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def classify(exc: BaseException) -> Failure:
    """What an exception from ``httpx.HTTPTransport.handle_request`` means for
    retrying (see ``safedns.RetryPolicy``)."""
    chain = list(_chain(exc))
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in chain):
        return Failure.TLS_CERTIFICATE
    if any(isinstance(e, RESOLVE_ERRORS) for e in chain):
        # The name does not exist, or DNS did not answer after the resolver's
        # own tries: an HTTP retry would only ask DNS again.
        return Failure.OTHER
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return Failure.CONNECT
    if isinstance(
        exc,
        (
            httpx.ReadError,
            httpx.ReadTimeout,
            httpx.WriteError,
            httpx.WriteTimeout,
            httpx.RemoteProtocolError,
        ),
    ):
        return Failure.TRANSPORT
    return Failure.OTHER


def body_replayable(request: httpx.Request) -> bool:
    """Can the request's body be sent again? Bytes can; a generator cannot."""
    return isinstance(request.stream, httpx.ByteStream)


def resolve_error(host: str, exc: Exception) -> httpcore.ConnectError:
    """A failed resolution as httpcore reports a failed ``getaddrinfo``:
    ``ConnectError`` with the stdlib's gaierror text, raised ``from`` ``exc``."""
    if isinstance(exc, (NameNotFound, InvalidName)):
        code, text = socket.EAI_NONAME, "Name or service not known"
    else:
        code, text = socket.EAI_AGAIN, "Temporary failure in name resolution"
    return httpcore.ConnectError(f"[Errno {int(code)}] {text} ({host}: {exc})")


#: At most this much of a response that will be retried is read (so its
#: connection can be reused) before it is closed.
DRAIN_LIMIT = 64 * 1024

#: A transport without a retry policy tries each request once.
NO_RETRY = RetryPolicy(attempts=1)

RESOLVE_ERRORS = (ResolveError, InvalidName)
NOT_FOUND = (NameNotFound, InvalidName)

#: httpx's own default (``httpx.HTTPTransport(limits=...)``).
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


@dataclass(frozen=True)
class PoolSettings:
    """The arguments ``httpx.HTTPTransport.__init__`` passes to httpcore,
    computed the same way (``httpx.create_ssl_context``, ``httpx.Proxy``)."""

    ssl_context: ssl.SSLContext
    limits: httpx.Limits
    http1: bool
    http2: bool
    proxy: httpx.Proxy | None
    uds: str | None
    local_address: str | None
    retries: int
    socket_options: Iterable[Any] | None

    @classmethod
    def build(
        cls,
        *,
        verify: ssl.SSLContext | str | bool,
        cert: Any,
        trust_env: bool,
        http1: bool,
        http2: bool,
        limits: httpx.Limits,
        proxy: Any,
        uds: str | None,
        local_address: str | None,
        retries: int,
        socket_options: Iterable[Any] | None,
    ) -> PoolSettings:
        if isinstance(proxy, (str, httpx.URL)):
            proxy = httpx.Proxy(url=proxy)
        if proxy is not None and proxy.url.scheme not in ("http", "https", "socks5", "socks5h"):
            raise ValueError(
                "Proxy protocol must be either 'http', 'https', 'socks5', or 'socks5h',"
                f" but got {proxy.url.scheme!r}."
            )
        if http2:
            try:
                import h2  # noqa: F401
            except ImportError:
                raise ImportError(
                    "http2=True needs the h2 package: pip install 'safedns[http2]'"
                ) from None
        ssl_context = httpx.create_ssl_context(verify=verify, cert=cert, trust_env=trust_env)
        return cls(
            ssl_context,
            limits,
            http1,
            http2,
            proxy,
            uds,
            local_address,
            retries,
            socket_options,
        )

    def common(self) -> dict[str, Any]:
        limits = self.limits
        return {
            "ssl_context": self.ssl_context,
            "max_connections": limits.max_connections,
            "max_keepalive_connections": limits.max_keepalive_connections,
            "keepalive_expiry": limits.keepalive_expiry,
            "http1": self.http1,
            "http2": self.http2,
        }

    def direct(self) -> dict[str, Any]:
        """Keyword arguments of ``httpcore.ConnectionPool`` (no proxy)."""
        return {
            **self.common(),
            "uds": self.uds,
            "local_address": self.local_address,
            "retries": self.retries,
            "socket_options": self.socket_options,
        }

    def proxied(self) -> tuple[str, dict[str, Any]]:
        """``("http" | "socks", kwargs)`` for ``httpcore.HTTPProxy`` / ``SOCKSProxy``."""
        proxy = self.proxy
        assert proxy is not None
        url = httpcore.URL(
            scheme=proxy.url.raw_scheme,
            host=proxy.url.raw_host,
            port=proxy.url.port,
            target=proxy.url.raw_path,
        )
        if proxy.url.scheme in ("http", "https"):
            return "http", {
                **self.common(),
                "proxy_url": url,
                "proxy_auth": proxy.raw_auth,
                "proxy_headers": proxy.headers.raw,
                "proxy_ssl_context": proxy.ssl_context,
                "socket_options": self.socket_options,
            }
        if importlib.util.find_spec("socksio") is None:
            raise ImportError(
                "Using SOCKS proxy, but the 'socksio' package is not installed. "
                "Make sure to install httpx using `pip install httpx[socks]`."
            )
        return "socks", {**self.common(), "proxy_url": url, "proxy_auth": proxy.raw_auth}


@dataclass(frozen=True)
class Setup:
    """Everything a transport is made of, besides its resolver, backend and
    pool: checked and built the same way for ``SafeTransport`` and
    ``AsyncSafeTransport``."""

    settings: PoolSettings
    retry: RetryPolicy
    retry_budget: RetryBudget
    max_connection_age: float | None
    happy_eyeballs_delay: float
    counters: TransportCounters
    #: Follow DNS (pre-read the host's answer, retire connections) only where
    #: the transport dials the host itself: not through a proxy or a socket file.
    follow: bool
    family: int

    @classmethod
    def build(
        cls,
        *,
        retry: RetryPolicy | None,
        retry_budget: RetryBudget | None,
        max_connection_age: float | None,
        happy_eyeballs_delay: float = DEFAULT_DELAY,
        **options: Any,
    ) -> Setup:
        if max_connection_age is not None and (
            isinstance(max_connection_age, bool)
            or not isinstance(max_connection_age, (int, float))
            or not max_connection_age >= 0
        ):
            raise ValueError(f"max_connection_age must be >= 0 or None, got {max_connection_age}")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be a safedns.RetryPolicy or None, got {retry!r}")
        if retry_budget is not None and not isinstance(retry_budget, RetryBudget):
            raise TypeError(
                f"retry_budget must be a safedns.RetryBudget or None, got {retry_budget!r}"
            )
        delay = check_delay(happy_eyeballs_delay)
        settings = PoolSettings.build(**options)
        return cls(
            settings=settings,
            retry=retry if retry is not None else NO_RETRY,
            retry_budget=retry_budget if retry_budget is not None else RetryBudget(),
            max_connection_age=max_connection_age,
            happy_eyeballs_delay=delay,
            counters=TransportCounters(),
            follow=settings.proxy is None and settings.uds is None,
            family=family_for(settings.local_address),
        )

    def pool_arguments(self) -> tuple[str, dict[str, Any]]:
        """What both transports build their httpcore pool from: ``(kind,
        keyword arguments)``, kind ``"direct"`` (a ``WatchingPoolCore`` pool,
        which also gets the counters and ``max_connection_age``; the shell adds
        the transport's ``Hosts``),
        ``"http"`` (``HTTPProxy``) or ``"socks"`` (``SOCKSProxy``). The network
        backend is the caller's to add."""
        if self.settings.proxy is not None:
            return self.settings.proxied()
        return "direct", {
            **self.settings.direct(),
            "counters": self.counters,
            "max_connection_age": self.max_connection_age,
        }


def install_pool(transport: Any, pool: Any) -> None:
    """Give an httpx transport our httpcore pool.

    THE ONE PRIVATE ATTRIBUTE: httpx's ``HTTPTransport`` keeps its pool in
    ``_pool`` and its ``handle_request`` (request conversion, exception
    mapping, response streams) and ``close`` use it; httpx offers no public
    way to pass a ``network_backend``. ``tests/test_httpx_transport.py::
    test_httpx_keeps_its_pool_in_one_private_attribute`` fails loudly if
    httpx changes this.
    """
    transport._pool = pool


class Dial:
    """The addresses of one ``connect_tcp``, in turn: ``with dial.attempt():``
    around each connect ends a connect error or timeout there (the next
    address is tried); ``failure()`` is the error to raise once none is left."""

    def __init__(self, addresses: Sequence[str]) -> None:
        self.addresses = addresses
        self.error: Exception | None = None

    def __iter__(self) -> Iterator[str]:
        return iter(self.addresses)

    @contextlib.contextmanager
    def attempt(self) -> Iterator[None]:
        try:
            yield
        except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
            self.error = exc

    def failure(self) -> Exception:
        if self.error is not None:
            return self.error
        return httpcore.ConnectError("no address to connect to")


class Drain:
    """Reading a response that will not be returned, so that its connection
    can be reused: ``enough(chunk)`` is True once ``limit`` bytes were read."""

    def __init__(self, limit: int = DRAIN_LIMIT) -> None:
        self.left = limit

    def enough(self, chunk: bytes) -> bool:
        self.left -= len(chunk)
        return self.left < 0
