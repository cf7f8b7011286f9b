"""``Resolver``: an aiohttp ``AbstractResolver`` over ``safedns.AsyncResolver``.

aiohttp's ``TCPConnector`` looks host names up through an ``AbstractResolver``
(glibc in a thread, or c-ares) and keeps its own cache, which ignores TTLs and
caches no failures. ``Resolver`` hands the lookups to an ``AsyncResolver``
instead: TTL-true positive and negative caching, single flight, serve-stale,
the query budget, and no thread::

    import aiohttp
    import safedns.aiohttp

    async with safedns.aiohttp.Resolver() as resolver:
        connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False)
        async with aiohttp.ClientSession(connector=connector) as session:
            ...

``use_dns_cache=False`` leaves caching to safedns. A connector does not close a
resolver it was given: ``async with`` closes it (as ``await resolver.close()``
does).

``SafeConnector`` (``_connector.py``) builds on it.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from types import TracebackType

from aiohttp.abc import AbstractResolver, ResolveResult

from safedns import AsyncResolver, InvalidName, NameNotFound, ResolveError, TemporaryFailure
from safedns._dropin.constants import EAI_NODATA
from safedns._dropin.errors import gai_error
from safedns._hosts import HOSTS_PATH, HostsFile

__all__ = ["FAMILIES", "Resolver", "error_code", "results"]

#: What aiohttp's own resolvers put in ``flags``: the host and port are numeric,
#: so ``loop.create_connection`` will not look them up again.
_NUMERIC_FLAGS = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
FAMILIES = (socket.AF_UNSPEC, socket.AF_INET, socket.AF_INET6)


def error_code(exc: ValueError | ResolveError) -> int:
    """The ``EAI_*`` code glibc's getaddrinfo gives for this failure."""
    if isinstance(exc, NameNotFound):
        return socket.EAI_NONAME if exc.nxdomain else EAI_NODATA
    if isinstance(exc, TemporaryFailure):
        return socket.EAI_AGAIN
    if isinstance(exc, InvalidName):
        return socket.EAI_NONAME
    return socket.EAI_FAIL


def results(host: str, addresses: Iterable[str], port: int) -> list[ResolveResult]:
    """``addresses`` of ``host``, in order, as aiohttp's own resolvers give them."""
    return [
        ResolveResult(
            hostname=host,
            # An IPv6 address with a zone ("fe80::1%eth0", only from a
            # literal) keeps it, as getnameinfo writes it for aiohttp.
            host=address,
            port=port,
            family=socket.AF_INET6 if ":" in address else socket.AF_INET,
            proto=socket.IPPROTO_TCP,
            flags=_NUMERIC_FLAGS,
        )
        for address in addresses
    ]


class Resolver(AbstractResolver):
    """An aiohttp ``AbstractResolver`` that looks names up with safedns.

    ``Resolver()`` builds an ``AsyncResolver`` from the system configuration
    (resolv.conf, like glibc) on first use and closes it in :meth:`close`.
    ``Resolver(resolver=r)`` uses the ``AsyncResolver`` ``r``, shared with the
    rest of the program; :meth:`close` leaves ``r`` open.

    Names in the hosts file (``hosts``, ``/etc/hosts`` by default; None to
    skip it) are answered from it first, as glibc's ``hosts: files dns`` does,
    so ``localhost`` works as it does with aiohttp's own resolvers.

    Failures raise ``socket.gaierror`` with glibc's code, as aiohttp's
    ``ThreadedResolver`` does: ``EAI_NONAME`` (no such name), ``EAI_NODATA``
    (no address of that family), ``EAI_AGAIN`` (timeout, SERVFAIL, query
    budget spent), ``EAI_FAMILY`` (a family other than ``AF_INET``,
    ``AF_INET6``, ``AF_UNSPEC``). aiohttp turns them into
    ``ClientConnectorDNSError``.
    """

    def __init__(
        self, resolver: AsyncResolver | None = None, *, hosts: str | None = HOSTS_PATH
    ) -> None:
        self._given = resolver
        self._hosts = HostsFile(hosts) if hosts is not None else None
        self._owned: AsyncResolver | None = None
        self._closed = False

    @property
    def resolver(self) -> AsyncResolver:
        """The ``AsyncResolver`` answering, built on first use if none was given."""
        if self._closed:
            raise RuntimeError("safedns.aiohttp.Resolver is closed")
        if self._given is not None:
            return self._given
        if self._owned is None:
            self._owned = AsyncResolver()
        return self._owned

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Every address of ``host`` in ``family``, as aiohttp's resolvers give them."""
        if family not in FAMILIES:
            raise gai_error(socket.EAI_FAMILY)
        resolver = self.resolver
        addresses = self.hosts_file_addresses(host, family)
        try:
            if addresses is None:
                addresses = await resolver.resolve_addresses(host, family)
        except (ResolveError, ValueError) as exc:
            raise gai_error(error_code(exc)) from exc
        if not addresses:
            raise gai_error(EAI_NODATA)
        return results(host, addresses, port)

    def hosts_file_addresses(self, host: str, family: int) -> list[str] | None:
        """``host``'s addresses in the hosts file, or None (not there, or no file)."""
        if self._hosts is None:
            return None
        try:
            found = self._hosts.lookup(host.encode("idna"), family)
        except UnicodeError:
            return None
        if found is None or not found.addresses:
            return None
        return [socket.inet_ntop(af, packed) for af, packed in found.addresses]

    async def close(self) -> None:
        """Close the ``AsyncResolver`` this built; one that was given stays open.

        Afterwards :meth:`resolve` raises ``RuntimeError``."""
        self._closed = True
        owned, self._owned = self._owned, None
        if owned is not None:
            await owned.aclose()

    async def __aenter__(self) -> Resolver:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "given" if self._given is not None else "own"
        return f"<safedns.aiohttp.Resolver {state}>"
