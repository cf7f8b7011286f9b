"""The peers, each behind one lookup function that returns an ``Outcome``.

A lookup is what an application does before it connects: all the addresses of a
host name (A and AAAA), through each library's getaddrinfo-like API. Every peer
is configured from the same resolv.conf: inside the benchmark's network
namespace the system one (which names the namespace's dnsmasq, with the k8s
search list and ``ndots:5``); without a namespace, explicit settings with the
same values (peers that can only read the system file are then skipped).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import safedns
from safedns import NameNotFound, ResolveError, Resolver, ResolverConfig

from ._common import DnsSetup

__all__ = [
    "FAILED",
    "NOT_FOUND",
    "PEERS",
    "AsyncPeer",
    "Outcome",
    "PeerInfo",
    "SyncPeer",
    "Unavailable",
    "open_async_peer",
    "open_peer",
    "safedns_config",
    "via_notes",
]

Outcome = tuple[str, ...] | str
NOT_FOUND = "not found"
FAILED = "temporary failure"
PORT = 443


#: The peers the amplification and outage tables list, in order (the burst adds the
#: asyncio front ends: aiohttp over safedns, async_getaddrinfo, the patched loop).
PEER_ORDER = (
    "glibc",
    "dnspython",
    "dnspython-lru",
    "aiodns",
    "aiohttp-threaded",
    "aiohttp-async",
    "safedns",
    "safedns-getaddrinfo",
    "safedns-async",
)


@dataclass(frozen=True)
class PeerInfo:
    id: str
    label: str
    #: "thread" (a blocking call) or "task" (a coroutine).
    kind: str
    #: Only works reading the system resolv.conf (so only inside the namespace).
    system_only: bool = False


PEERS: dict[str, PeerInfo] = {
    p.id: p
    for p in (
        PeerInfo("glibc", "stdlib socket.getaddrinfo (glibc)", "thread", True),
        PeerInfo("asyncio-glibc", "stdlib loop.getaddrinfo (glibc, executor)", "task", True),
        PeerInfo("dnspython", "dnspython Resolver.resolve_name", "thread"),
        PeerInfo("dnspython-lru", "dnspython resolve_name + LRUCache", "thread"),
        PeerInfo("aiodns", "aiodns getaddrinfo (c-ares)", "task"),
        PeerInfo("aiohttp-threaded", "aiohttp ThreadedResolver, ttl_dns_cache=10", "task", True),
        PeerInfo("aiohttp-async", "aiohttp AsyncResolver, ttl_dns_cache=10", "task"),
        PeerInfo("safedns", "safedns Resolver.resolve_addresses", "thread"),
        PeerInfo("safedns-getaddrinfo", "safedns getaddrinfo drop-in", "thread"),
        PeerInfo("safedns-async", "safedns AsyncResolver", "task"),
        PeerInfo(
            "aiohttp-safedns", "aiohttp + safedns.aiohttp.Resolver, use_dns_cache=False", "task"
        ),
        PeerInfo("safedns-async-getaddrinfo", "safedns async_getaddrinfo", "task"),
        # Connects for real: the records' addresses are put on the namespace's loopback.
        PeerInfo(
            "safedns-patched-loop",
            "asyncio.open_connection by name, safedns.patched()",
            "task",
            True,
        ),
    )
}


class Unavailable(Exception):
    """This peer cannot run here; the message says why."""


@dataclass
class SyncPeer:
    lookup: Callable[[str], Outcome]
    close: Callable[[], None] = lambda: None
    #: Facts for the report (e.g. the resolver's stats), filled by ``info()``.
    info: Callable[[], dict[str, Any]] = field(default=lambda: {})


@dataclass
class AsyncPeer:
    lookup: Callable[[str], Awaitable[Outcome]]
    aclose: Callable[[], Awaitable[None]]
    info: Callable[[], dict[str, Any]] = field(default=lambda: {})


def _sorted(addresses: Any) -> tuple[str, ...]:
    return tuple(sorted({str(a) for a in addresses}))


_GAI_NOT_FOUND = {
    getattr(socket, name)
    for name in ("EAI_NONAME", "EAI_NODATA", "EAI_ADDRFAMILY")
    if hasattr(socket, name)
}


def _gai_outcome(exc: OSError) -> str:
    return NOT_FOUND if exc.errno in _GAI_NOT_FOUND else FAILED


def _sockaddr_outcome(infos: Any) -> Outcome:
    return _sorted(info[4][0] for info in infos)


def safedns_config(setup: DnsSetup, **overrides: Any) -> ResolverConfig:
    """safedns's config: from the system resolv.conf (like glibc) or explicit."""
    if setup.system:
        return ResolverConfig.from_system(environ={}, **overrides)
    assert setup.nameserver is not None
    return ResolverConfig(
        nameservers=(setup.nameserver,), search=setup.search, ndots=setup.ndots, **overrides
    )


def _stats_info(resolver: Any) -> Callable[[], dict[str, Any]]:
    def info() -> dict[str, Any]:
        stats = resolver.stats()
        # asdict: the latency histogram and server health become plain JSON.
        return {"stats": {k: v for k, v in dataclasses.asdict(stats).items() if v}}

    return info


def via_notes(result: Any) -> list[str]:
    """Notes saying how the getaddrinfo drop-in was called, from its rows' info."""
    notes = []
    for row in result.rows:
        infos = [v for k, v in row.values.items() if k.startswith("info") and isinstance(v, dict)]
        via = next((i["via"] for i in infos if "via" in i), None)
        if via:
            notes.append(f"{row.label}: {via}.")
    return notes


def _check(info: PeerInfo, setup: DnsSetup) -> None:
    if info.system_only and not setup.system:
        raise Unavailable("reads the system resolv.conf: needs the network namespace")


# --------------------------------------------------------------------------- blocking peers


def _glibc() -> SyncPeer:
    def lookup(name: str) -> Outcome:
        try:
            infos = socket.getaddrinfo(name, PORT, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            return _gai_outcome(exc)
        return _sockaddr_outcome(infos)

    return SyncPeer(lookup)


def _dnspython(setup: DnsSetup, cache: bool) -> SyncPeer:
    import dns.exception
    import dns.name
    import dns.resolver

    res = dns.resolver.Resolver(configure=setup.system)
    if not setup.system:
        host, port = setup.host_port()
        res.nameservers = [host]
        res.port = port
        res.search = [dns.name.from_text(d) for d in setup.search]
        res.ndots = setup.ndots
    if cache:
        res.cache = dns.resolver.LRUCache()

    def lookup(name: str) -> Outcome:
        try:
            answers = res.resolve_name(name, socket.AF_UNSPEC, search=True)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return NOT_FOUND
        except dns.exception.DNSException:
            return FAILED
        return _sorted(answers.addresses())

    return SyncPeer(lookup)


def _safedns_lookup(resolver: Resolver) -> Callable[[str], Outcome]:
    def lookup(name: str) -> Outcome:
        try:
            return _sorted(resolver.resolve_addresses(name))
        except NameNotFound:
            return NOT_FOUND
        except ResolveError:
            return FAILED

    return lookup


def _safedns(setup: DnsSetup, overrides: dict[str, Any]) -> SyncPeer:
    resolver = Resolver(safedns_config(setup, **overrides))
    return SyncPeer(_safedns_lookup(resolver), resolver.close, _stats_info(resolver))


def getaddrinfo_replaced(before: tuple[object, object]) -> bool:
    """Whether ``socket.getaddrinfo`` (or ``_socket.getaddrinfo``) is no longer ``before``."""
    import _socket

    return (socket.getaddrinfo, _socket.getaddrinfo) != before


def original_getaddrinfo() -> tuple[object, object]:
    import _socket

    return socket.getaddrinfo, _socket.getaddrinfo


def addrinfo_class() -> Any:
    """safedns's getaddrinfo drop-in class (``AddrInfo``), or None."""
    cls = getattr(safedns, "AddrInfo", None)
    if cls is None:
        try:
            from safedns._dropin.addrinfo import AddrInfo as cls
        except ImportError:
            return None
    return cls


def _safedns_getaddrinfo(setup: DnsSetup, overrides: dict[str, Any]) -> SyncPeer:
    """The getaddrinfo drop-in: through ``safedns.patched(resolver)`` and
    ``socket.getaddrinfo`` when safedns exports it, else the function it installs,
    ``AddrInfo(resolver).getaddrinfo``, called directly."""
    patched = getattr(safedns, "patched", None)
    resolver = Resolver(safedns_config(setup, **overrides))
    stats = _stats_info(resolver)
    if patched is None:
        cls = addrinfo_class()
        if cls is None:
            resolver.close()
            raise Unavailable("neither safedns.patched nor its getaddrinfo is in this tree yet")
        function = cls(resolver).getaddrinfo
        via = "AddrInfo(resolver).getaddrinfo, called directly (safedns.patched not exported yet)"

        def lookup(name: str) -> Outcome:
            try:
                infos = function(name, PORT, type=socket.SOCK_STREAM)
            except socket.gaierror as exc:
                return _gai_outcome(exc)
            return _sockaddr_outcome(infos)

        return SyncPeer(lookup, resolver.close, lambda: {"via": via, **stats()})
    before = original_getaddrinfo()
    try:
        manager = patched(resolver)
        manager.__enter__()
    except Exception as exc:
        resolver.close()
        raise Unavailable(f"safedns.patched(resolver) failed: {exc!r}") from exc

    def close() -> None:
        manager.__exit__(None, None, None)
        resolver.close()

    if not getaddrinfo_replaced(before):  # never let glibc reach the host's DNS
        close()
        raise Unavailable("safedns.patched(resolver) did not replace socket.getaddrinfo")
    via = "safedns.patched(resolver), then socket.getaddrinfo"
    return SyncPeer(_glibc().lookup, close, lambda: {"via": via, **stats()})


def open_peer(peer: str, setup: DnsSetup, **overrides: Any) -> SyncPeer:
    """A blocking lookup for ``peer``; an async peer gets a private event loop."""
    info = PEERS[peer]
    _check(info, setup)
    if info.kind == "task":
        return _on_loop(peer, setup, overrides)
    if peer == "glibc":
        return _glibc()
    if peer in ("dnspython", "dnspython-lru"):
        return _dnspython(setup, cache=peer == "dnspython-lru")
    if peer == "safedns":
        return _safedns(setup, overrides)
    if peer == "safedns-getaddrinfo":
        return _safedns_getaddrinfo(setup, overrides)
    raise ValueError(f"unknown peer {peer!r}")


def _on_loop(peer: str, setup: DnsSetup, overrides: dict[str, Any]) -> SyncPeer:
    loop = asyncio.new_event_loop()
    try:
        apeer = loop.run_until_complete(open_async_peer(peer, setup, **overrides))
    except BaseException:
        loop.close()
        raise

    def lookup(name: str) -> Outcome:
        return loop.run_until_complete(apeer.lookup(name))

    def close() -> None:
        try:
            loop.run_until_complete(apeer.aclose())
        finally:
            loop.close()

    return SyncPeer(lookup, close, apeer.info)


# --------------------------------------------------------------------------- async peers


async def _maybe_await(value: Any) -> None:
    if inspect.isawaitable(value):
        await value


def _aiodns_kwargs(setup: DnsSetup) -> dict[str, Any]:
    if setup.system:
        return {}
    return {
        "nameservers": [setup.nameserver],
        "domains": list(setup.search),
        "ndots": setup.ndots,
    }


def _ares_outcome(code: Any) -> str:
    import pycares

    not_found = {pycares.errno.ARES_ENOTFOUND, pycares.errno.ARES_ENODATA}
    return NOT_FOUND if code in not_found else FAILED


async def _aiodns(setup: DnsSetup) -> AsyncPeer:
    import aiodns

    resolver = aiodns.DNSResolver(**_aiodns_kwargs(setup))

    async def lookup(name: str) -> Outcome:
        try:
            result = await resolver.getaddrinfo(
                name, family=socket.AF_UNSPEC, port=PORT, type=socket.SOCK_STREAM
            )
        except aiodns.error.DNSError as exc:
            return _ares_outcome(exc.args[0] if exc.args else None)
        return _sorted(node.addr[0].decode() for node in result.nodes)

    async def aclose() -> None:
        await _maybe_await(resolver.close())

    return AsyncPeer(lookup, aclose)


async def _asyncio_glibc() -> AsyncPeer:
    loop = asyncio.get_running_loop()

    async def lookup(name: str) -> Outcome:
        try:
            infos = await loop.getaddrinfo(name, PORT, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            return _gai_outcome(exc)
        return _sockaddr_outcome(infos)

    async def aclose() -> None:
        return None

    return AsyncPeer(lookup, aclose)


async def _aiohttp(setup: DnsSetup, threaded: bool) -> AsyncPeer:
    try:
        import aiohttp
        from aiohttp.resolver import AsyncResolver, ThreadedResolver
    except ImportError as exc:
        raise Unavailable(f"aiohttp is not installed ({exc})") from None
    resolver = ThreadedResolver() if threaded else AsyncResolver(**_aiodns_kwargs(setup))
    connector = aiohttp.TCPConnector(resolver=resolver, ttl_dns_cache=10)
    resolve_host = getattr(connector, "_resolve_host", None)
    if resolve_host is None:
        await connector.close()
        raise Unavailable("aiohttp.TCPConnector._resolve_host is gone in this version")

    async def lookup(name: str) -> Outcome:
        try:
            hosts = await resolve_host(name, PORT)
        except socket.gaierror as exc:
            return _gai_outcome(exc)
        except OSError as exc:
            cause = exc.__cause__
            if cause is not None and getattr(cause, "args", None):
                return _ares_outcome(cause.args[0])
            return FAILED
        return _sorted(h["host"] for h in hosts)

    async def aclose() -> None:
        await connector.close()
        await _maybe_await(resolver.close())

    return AsyncPeer(lookup, aclose)


async def _safedns_async(setup: DnsSetup, overrides: dict[str, Any]) -> AsyncPeer:
    cls = getattr(safedns, "AsyncResolver", None)
    if cls is None:
        raise Unavailable("safedns.AsyncResolver is not in this tree yet")
    try:
        resolver = cls(safedns_config(setup, **overrides))
    except Exception as exc:
        raise Unavailable(f"safedns.AsyncResolver(config) failed: {exc!r}") from exc
    many = getattr(resolver, "resolve_addresses", None)

    async def lookup(name: str) -> Outcome:
        try:
            if many is not None:
                return _sorted(await many(name))
            answer = await resolver.resolve(name, "A")
            return _sorted(answer.addresses)
        except NameNotFound:
            return NOT_FOUND
        except ResolveError:
            return FAILED

    async def aclose() -> None:
        close = getattr(resolver, "aclose", None) or getattr(resolver, "close", None)
        if close is not None:
            await _maybe_await(close())

    def info() -> dict[str, Any]:
        out: dict[str, Any] = {"method": "resolve_addresses" if many else "resolve(name, 'A')"}
        if hasattr(resolver, "stats"):
            out.update(_stats_info(resolver)())
        return out

    return AsyncPeer(lookup, aclose, info)


def _gai_lookup(getaddrinfo: Callable[..., Awaitable[Any]]) -> Callable[[str], Awaitable[Outcome]]:
    async def lookup(name: str) -> Outcome:
        try:
            infos = await getaddrinfo(name, PORT, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            return _gai_outcome(exc)
        return _sockaddr_outcome(infos)

    return lookup


async def _aiohttp_safedns(setup: DnsSetup, overrides: dict[str, Any]) -> AsyncPeer:
    try:
        import aiohttp

        import safedns.aiohttp as safedns_aiohttp
    except ImportError as exc:
        raise Unavailable(f"aiohttp or safedns.aiohttp is missing ({exc})") from None
    shared = safedns.AsyncResolver(safedns_config(setup, **overrides))
    resolver = safedns_aiohttp.Resolver(shared)
    connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False)
    resolve_host = getattr(connector, "_resolve_host", None)
    if resolve_host is None:
        await connector.close()
        await shared.aclose()
        raise Unavailable("aiohttp.TCPConnector._resolve_host is gone in this version")

    async def lookup(name: str) -> Outcome:
        try:
            hosts = await resolve_host(name, PORT)
        except OSError as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
            return _gai_outcome(cause) if isinstance(cause, socket.gaierror) else FAILED
        return _sorted(h["host"] for h in hosts)

    async def aclose() -> None:
        await connector.close()
        await resolver.close()
        await shared.aclose()

    return AsyncPeer(lookup, aclose, _stats_info(shared))


async def _safedns_async_getaddrinfo(setup: DnsSetup, overrides: dict[str, Any]) -> AsyncPeer:
    function = getattr(safedns, "async_getaddrinfo", None)
    if function is None:
        raise Unavailable("safedns.async_getaddrinfo is not in this tree yet")
    resolver = safedns.AsyncResolver(safedns_config(setup, **overrides))

    async def getaddrinfo(host: str, port: int, **kwargs: Any) -> Any:
        return await function(host, port, resolver=resolver, **kwargs)

    return AsyncPeer(_gai_lookup(getaddrinfo), resolver.aclose, _stats_info(resolver))


def _local_addresses() -> list[str]:
    """Put the workload's IPv4 addresses on the namespace's loopback (so a connection
    to them succeeds); only ever called inside the benchmark's network namespace."""
    import subprocess

    from ._common import EXTERNAL

    added = []
    for addresses in EXTERNAL.values():
        for address in addresses:
            if ":" in address:
                continue
            proc = subprocess.run(
                ["ip", "addr", "replace", f"{address}/32", "dev", "lo"],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise Unavailable(f"cannot put {address} on lo: {proc.stderr.strip()}")
            added.append(address)
    return added


def _raise_fd_limit(wanted: int = 8192) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))


async def _safedns_patched_loop(setup: DnsSetup, overrides: dict[str, Any]) -> AsyncPeer:
    """``asyncio.open_connection(name, port)`` under ``safedns.patched(resolver)``: the
    lookup is the loop's own ``getaddrinfo``, then a real TCP connection is made to a
    listener on the namespace's loopback (the workload's addresses are put there)."""
    _local_addresses()
    _raise_fd_limit()
    loop = asyncio.get_running_loop()
    before = loop.getaddrinfo

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    listener = await asyncio.start_server(accept, "0.0.0.0", 0, backlog=4096)
    port = listener.sockets[0].getsockname()[1]
    resolver = Resolver(safedns_config(setup, **overrides))
    manager = safedns.patched(resolver)
    manager.__enter__()
    loop_patched = loop.getaddrinfo != before
    via = (
        "safedns.patched(resolver): the loop's getaddrinfo goes through safedns, no thread"
        if loop_patched
        else "safedns.patched(resolver) patches socket.getaddrinfo only here: "
        "loop.getaddrinfo still hops to the default executor"
    )

    async def lookup(name: str) -> Outcome:
        try:
            _, writer = await asyncio.open_connection(name, port)
        except socket.gaierror as exc:
            return _gai_outcome(exc)
        except OSError:
            return FAILED
        writer.close()
        # What it resolved, for the right-answer check: a cache hit by now.
        infos = await loop.getaddrinfo(name, PORT, type=socket.SOCK_STREAM)
        return _sockaddr_outcome(infos)

    async def aclose() -> None:
        manager.__exit__(None, None, None)
        listener.close()
        await listener.wait_closed()
        resolver.close()

    def info() -> dict[str, Any]:
        return {"via": via, "loop_patched": loop_patched, **_stats_info(resolver)()}

    return AsyncPeer(lookup, aclose, info)


async def open_async_peer(peer: str, setup: DnsSetup, **overrides: Any) -> AsyncPeer:
    """An awaitable lookup for ``peer`` (call inside a running event loop)."""
    info = PEERS[peer]
    _check(info, setup)
    if peer == "aiodns":
        return await _aiodns(setup)
    if peer == "asyncio-glibc":
        return await _asyncio_glibc()
    if peer in ("aiohttp-threaded", "aiohttp-async"):
        return await _aiohttp(setup, threaded=peer == "aiohttp-threaded")
    if peer == "safedns-async":
        return await _safedns_async(setup, overrides)
    if peer == "aiohttp-safedns":
        return await _aiohttp_safedns(setup, overrides)
    if peer == "safedns-async-getaddrinfo":
        return await _safedns_async_getaddrinfo(setup, overrides)
    if peer == "safedns-patched-loop":
        return await _safedns_patched_loop(setup, overrides)
    raise ValueError(f"{peer!r} is not an async peer")
