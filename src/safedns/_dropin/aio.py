"""``async_getaddrinfo``: the drop-in ``getaddrinfo`` for asyncio, without a thread.

The same steps as the sync drop-in (:func:`.gai.getaddrinfo_steps`: arguments, checks,
the NSS chain, canonical name, the RFC 3484 sort) and the same finished-results cache
(an :class:`AddrInfo`'s); only the DNS questions go to an :class:`AsyncResolver` and are
awaited. A cache hit returns without suspending; a miss never touches an executor.

:func:`loop_getaddrinfo` is what ``safedns.patch()`` installs as the event loops'
``getaddrinfo`` method.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import weakref
from collections.abc import Callable, Coroutine
from ssl import SSLError
from typing import Any

from safedns._async import AsyncResolver
from safedns._core import drive_async
from safedns._dropin.addrinfo import AddrInfo, CacheKey, default_addrinfo
from safedns._dropin.constants import AddrInfoTuple
from safedns._dropin.errors import GaiError, gai_error
from safedns._dropin.gai import getaddrinfo_steps
from safedns._dropin.nss import DnsQuestion, DnsReply
from safedns._exceptions import InvalidName, ResolveError
from safedns._resolver import Resolver
from safedns._singleflight import SharedTasks

__all__ = [
    "async_getaddrinfo",
    "getaddrinfo_with",
    "loop_create_connection",
    "loop_getaddrinfo",
]


def _addrinfo_of(resolver: AsyncResolver | Resolver | None) -> AddrInfo:
    if resolver is None:
        return default_addrinfo()
    if isinstance(resolver, Resolver):
        # A sync resolver: its drop-in asks an AsyncResolver sharing its cache
        # (``AddrInfo.async_resolver``), as ``AsyncResolver(resolver=r)`` does.
        given = resolver.dropin
        if not isinstance(given, AddrInfo):
            given = resolver.dropin = AddrInfo(resolver)
        return given
    if not isinstance(resolver, AsyncResolver):
        raise TypeError(
            "async_getaddrinfo(resolver=...) takes an AsyncResolver (or a Resolver, whose"
            f" cache it shares), not {type(resolver).__name__}"
        )
    addrinfo = resolver.dropin
    if not isinstance(addrinfo, AddrInfo):
        # Its sync resolver is never asked here: it lends the clock and configuration
        # the cached results are timed by (the AsyncResolver's own). Kept on the
        # resolver, so it goes when the resolver does.
        sync = Resolver(resolver.config, clock=resolver.clock)
        addrinfo = resolver.dropin = AddrInfo(sync, async_resolver=resolver)
    return addrinfo


async def async_getaddrinfo(
    host: Any,
    port: Any,
    family: Any = 0,
    type: Any = 0,  # the standard library's name
    proto: Any = 0,
    flags: Any = 0,
    *,
    resolver: AsyncResolver | Resolver | None = None,
) -> list[AddrInfoTuple]:
    """:func:`socket.getaddrinfo`'s results and errors (``socket.gaierror`` with the
    same codes), for asyncio: answered through ``resolver`` (default: one sharing the
    cache of the resolver behind ``safedns.patch()``), never through a thread. A sync
    ``Resolver`` is accepted too: its cache is shared, as with
    ``AsyncResolver(resolver=r)``; anything else is a ``TypeError``."""
    return await getaddrinfo_with(_addrinfo_of(resolver), host, port, family, type, proto, flags)


async def getaddrinfo_with(
    addrinfo: AddrInfo, host: Any, port: Any, family: Any, type: Any, proto: Any, flags: Any
) -> list[AddrInfoTuple]:
    """``async_getaddrinfo`` on ``addrinfo``'s cache, files and async resolver.

    Calls with the same arguments while one is being answered share its computation
    (one task runs the steps; the others wait for its rows or its error code), so a
    burst of tasks on a cold name costs one walk of the steps, not one each."""
    hit = addrinfo.hit(host, port, family, type, proto, flags)
    if hit is not None:
        return hit
    key, name, service, family_i, type_i, proto_i, flags_i = addrinfo.arguments(
        host, port, family, type, proto, flags
    )
    now, generation, cached = addrinfo.begin(key)
    if cached is not None:
        return list(cached)
    call = (addrinfo, key, name, service, family_i, type_i, proto_i, flags_i, now, generation)
    if key is None:  # not cacheable (an unusual host or port class): not shared either
        outcome = await _compute(*call)
    else:
        outcome = await _shared((addrinfo, generation, key), call)
    if isinstance(outcome, int):
        raise gai_error(outcome) from None
    return list(outcome)


async def _compute(
    addrinfo: AddrInfo,
    key: CacheKey | None,
    name: bytes | None,
    service: bytes | None,
    family: int,
    socktype: int,
    proto: int,
    flags: int,
    now: float,
    generation: int,
) -> tuple[AddrInfoTuple, ...] | int:
    """The steps, their DNS questions asked of the async resolver: the rows (stored in
    the cache as :meth:`AddrInfo.store` decides), or the ``EAI_*`` code (each caller
    raises its own ``socket.gaierror``: one shared exception would collect every
    caller's traceback)."""
    resolver = addrinfo.async_resolver()

    async def ask(question: DnsQuestion) -> DnsReply:
        try:
            return await resolver.lookup_addresses(question.name, question.family)
        except (ResolveError, InvalidName) as exc:
            return exc

    steps = getaddrinfo_steps(addrinfo.nss, name, service, family, socktype, proto, flags)
    try:
        generated = await drive_async(steps, ask)
    except GaiError as exc:
        return exc.code
    return addrinfo.store(key, generated, now, generation)


_SharedKey = tuple[AddrInfo, int, CacheKey]
_Outcome = tuple[AddrInfoTuple, ...] | int

#: The computations under way on each event loop, by AddrInfo, cache generation and
#: arguments (tasks are of one loop).
_running: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, SharedTasks[_SharedKey, _Outcome]
] = weakref.WeakKeyDictionary()


async def _shared(key: _SharedKey, call: tuple[Any, ...]) -> _Outcome:
    """``_compute(*call)``'s outcome, shared by every caller asking ``key`` while it
    runs (those that join count as coalesced lookups)."""
    loop = asyncio.get_running_loop()
    table = _running.get(loop)
    if table is None:
        table = _running[loop] = SharedTasks()
    return await table.join(
        key, lambda: loop.create_task(_compute(*call)), key[0].async_resolver().count_joined
    )


def loop_getaddrinfo(
    addrinfo: AddrInfo,
) -> Callable[..., Coroutine[Any, Any, list[AddrInfoTuple]]]:
    """An event loop ``getaddrinfo`` method answered by ``addrinfo``, without the
    executor (what ``safedns.patch()`` installs on the loop classes)."""

    async def getaddrinfo(
        self: asyncio.AbstractEventLoop,
        host: Any,
        port: Any,
        *,
        family: Any = 0,
        type: Any = 0,
        proto: Any = 0,
        flags: Any = 0,
    ) -> list[AddrInfoTuple]:
        return await getaddrinfo_with(addrinfo, host, port, family, type, proto, flags)

    getaddrinfo.__safedns_addrinfo__ = addrinfo  # type: ignore[attr-defined]
    return getaddrinfo


def _numeric(host: object) -> bool:
    if not isinstance(host, str):
        return False
    try:
        ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    return True


def loop_create_connection(
    addrinfo: AddrInfo, original: Callable[..., Coroutine[Any, Any, Any]]
) -> Callable[..., Coroutine[Any, Any, Any]]:
    """A ``create_connection`` for loops that resolve inside it without calling their
    own ``getaddrinfo`` (uvloop resolves in libuv's thread pool): a named host is
    resolved by ``addrinfo`` first, then each address is tried in order through
    ``original`` (TLS still checks the name: ``server_hostname`` defaults to it; a
    TLS failure is raised as it is, without trying the next address)."""

    async def create_connection(
        self: asyncio.AbstractEventLoop,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: Any = None,
        port: Any = None,
        *,
        ssl: Any = None,
        family: int = 0,
        proto: int = 0,
        flags: int = 0,
        sock: Any = None,
        server_hostname: Any = None,
        **kwargs: Any,
    ) -> Any:
        options: dict[str, Any] = dict(kwargs, ssl=ssl, proto=proto, flags=flags, sock=sock)
        if host is None or sock is not None or _numeric(host):
            options.update(family=family, server_hostname=server_hostname)
            return await original(self, protocol_factory, host, port, **options)
        rows = await getaddrinfo_with(
            addrinfo, host, port, family, socket.SOCK_STREAM, proto, flags
        )
        if ssl and server_hostname is None:
            server_hostname = host
        errors: list[OSError] = []
        for row_family, _, _, _, sockaddr in rows:
            address = str(sockaddr[0])
            if row_family == socket.AF_INET6 and sockaddr[3]:
                address = f"{address}%{sockaddr[3]}"
            options.update(family=int(row_family), server_hostname=server_hostname)
            try:
                return await original(self, protocol_factory, address, sockaddr[1], **options)
            except SSLError:
                # Connected, then TLS failed (a certificate for another name, a
                # handshake error): not a connect failure of this one address,
                # so the next is not tried, and the caller gets the TLS error,
                # as from asyncio's own create_connection.
                raise
            except OSError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise OSError(f"Multiple exceptions: {', '.join(str(e) for e in errors)}")

    create_connection.__safedns_addrinfo__ = addrinfo  # type: ignore[attr-defined]
    return create_connection
