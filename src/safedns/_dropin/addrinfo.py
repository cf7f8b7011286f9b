"""``AddrInfo``: ``getaddrinfo``, ``gethostbyname`` and ``gethostbyname_ex`` with the
standard library's contract, answered by a safedns :class:`~safedns.Resolver` and the
hosts file, and the module-level functions on a process-wide instance.

The lookup follows glibc 2.36's ``getaddrinfo`` step by step (:mod:`.gai`), so results
and errors match :func:`socket.getaddrinfo` on glibc:

1. CPython's argument handling (:mod:`.arguments`): ``idna`` for str hosts, ``%ld`` (or
   the text, on 3.12+) for int ports, the same ``TypeError``/``OverflowError``/
   ``OSError``/``UnicodeError``;
2. the flag, family, ``AI_ADDRCONFIG`` (:mod:`.interfaces`) and service checks, with
   the ``EAI_*`` codes and ``gai_strerror`` messages of the C library (:mod:`.errors`);
3. numeric hosts (:mod:`.numeric`), ``None`` hosts, then the ``hosts:`` sources of
   nsswitch.conf (:mod:`.nss`): ``files`` and ``dns`` (the resolver, which plans far
   fewer queries than glibc's search-list walk); other NSS modules are skipped;
4. the RFC 3484 sort of glibc with ``/etc/gai.conf`` (:mod:`.sort`).

Finished results are cached by the full argument tuple until the earliest expiry of the
DNS answers used (entries that depended on interface state live at most
``IFACE_RECHECK`` seconds); the hosts file, nsswitch.conf and (for the system resolver)
resolv.conf are re-checked at most every ``hosts_check_interval`` seconds and any change
empties the cache. A cache hit is one dict lookup, one clock read and a list copy.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any, Final

from safedns._async import AsyncResolver
from safedns._bypasses import notice as notice_bypasses
from safedns._cache import bounded_put
from safedns._core import drive
from safedns._dropin.arguments import c_int, host_arg, hostname_arg, port_arg
from safedns._dropin.constants import AF_INET, AI_PASSIVE, NO_DATA, AddrInfoTuple
from safedns._dropin.errors import GaiError, gai_error, host_error, thread_h_errno
from safedns._dropin.gai import IFACE_RECHECK, Generated, getaddrinfo_steps
from safedns._dropin.nss import (
    SUCCESS,
    DnsQuestion,
    DnsReply,
    NameService,
    dns_aliases,
)
from safedns._exceptions import InvalidName, ResolveError
from safedns._fork import reset_in_child
from safedns._hosts import HOSTS_PATH, NSSWITCH_PATH, HostsFile, NsSwitch, ResolvConf
from safedns._resolver import Resolver

__all__ = [
    "AddrInfo",
    "default_addrinfo",
    "getaddrinfo",
    "gethostbyname",
    "gethostbyname_ex",
    "set_default",
]

_INT_CLASSES: Final = frozenset(
    {int, bool, socket.AddressFamily, socket.SocketKind, socket.AddressInfo}
)
_PORT_CLASSES: Final = frozenset({int, str, bytes, type(None)})
_HOST_CLASSES: Final = frozenset({str, bytes, type(None)})

_audit = sys.audit

CacheKey = tuple[object, ...]


class AddrInfo:
    """``getaddrinfo``, ``gethostbyname`` and ``gethostbyname_ex`` bound to ``resolver``.

    Drop-in replacements for the :mod:`socket` functions (``safedns.patch()`` installs
    the bound methods). ``hosts_path`` and ``nsswitch_path`` select the files consulted
    (``/etc/hosts`` and ``/etc/nsswitch.conf``); they are re-checked for changes at most
    every ``hosts_check_interval`` seconds of the resolver's clock. ``multi`` overrides
    ``/etc/host.conf``. At most ``max_entries`` finished results are cached.

    Without a ``resolver`` it builds one from the system configuration and follows
    ``/etc/resolv.conf`` (or ``$SAFEDNS_RESOLV_CONF``) as glibc 2.26+ does: the file is
    stat'ed with the hosts file, and when a change alters the configuration the resolver
    is replaced by :meth:`Resolver.reconfigured` (which keeps the cached answers when the
    nameservers are the same) and the finished results are dropped. A given resolver
    keeps its configuration.
    """

    def __init__(
        self,
        resolver: Resolver | None = None,
        *,
        hosts_path: str = HOSTS_PATH,
        nsswitch_path: str = NSSWITCH_PATH,
        multi: bool | None = None,
        hosts_check_interval: float = 1.0,
        max_entries: int = 4096,
        async_resolver: AsyncResolver | None = None,
    ) -> None:
        self._system: ResolvConf | None = None
        if resolver is None:
            self._system = ResolvConf()
            resolver = Resolver(self._system.config)
        self.resolver = resolver
        self._clock: Callable[[], float] = resolver.clock
        self.hosts = HostsFile(hosts_path, multi=multi)
        self.nsswitch = NsSwitch(nsswitch_path)
        self.nss = NameService(self.hosts, self.nsswitch)
        self.hosts_check_interval = hosts_check_interval
        self.max_entries = max_entries
        self._cache: dict[CacheKey, tuple[float, tuple[AddrInfoTuple, ...]]] = {}
        self._recheck_at = -math.inf
        self._generation = 0
        self._lock = threading.Lock()
        self._follow_lock = threading.Lock()
        #: The asyncio side (``async_getaddrinfo``): the one given, or one sharing the
        #: resolver's cache, made on first use (again after resolv.conf changed it).
        self._async_given = async_resolver
        self._async: tuple[Resolver, AsyncResolver] | None = None
        #: Counts a finished result served (a lookup and a cache hit) in the stats of
        #: the resolver asked on a miss (the async one, when given).
        self._hits = (async_resolver or resolver).hit_ticks
        reset_in_child(self, AddrInfo.after_fork)

    def __repr__(self) -> str:
        return f"<AddrInfo {self.resolver!r} cached={len(self._cache)}>"

    def after_fork(self) -> None:
        """Fresh locks in a forked child (the parent's may be held by lost threads)."""
        self._lock = threading.Lock()
        self._follow_lock = threading.Lock()
        self.hosts.after_fork()

    def clear_cache(self) -> None:
        """Forget every finished result (the resolver's own cache is kept)."""
        with self._lock:
            self._generation += 1
            self._cache.clear()

    def async_resolver(self) -> AsyncResolver:
        """The :class:`AsyncResolver` that ``async_getaddrinfo`` asks for this instance."""
        if self._async_given is not None:
            return self._async_given
        paired = self._async
        resolver = self.resolver
        if paired is None or paired[0] is not resolver:
            paired = self._async = (resolver, AsyncResolver(resolver=resolver))
        return paired[1]

    @property
    def clock(self) -> Callable[[], float]:
        """The resolver's clock, which the finished results expire on."""
        return self._clock

    # -- getaddrinfo ------------------------------------------------------------------

    def getaddrinfo(
        self,
        host: Any,
        port: Any,
        family: Any = 0,
        type: Any = 0,  # the standard library's name
        proto: Any = 0,
        flags: Any = 0,
    ) -> list[AddrInfoTuple]:
        """:func:`socket.getaddrinfo`, answered by safedns."""
        # The hit path of :meth:`hit`, inline: a method call would cost a quarter of it.
        try:
            expires, rows = self._cache[(host, port, family, type, proto, flags)]
        except (KeyError, TypeError):
            pass
        else:
            now = self._clock()
            if (
                now < expires
                and now < self._recheck_at
                and port.__class__ in _PORT_CLASSES
                and family.__class__ in _INT_CLASSES
                and type.__class__ in _INT_CLASSES
                and proto.__class__ in _INT_CLASSES
                and flags.__class__ in _INT_CLASSES
            ):
                _audit("socket.getaddrinfo", host, port, family, type, proto)
                next(self._hits)  # a lookup and a cache hit in the resolver's stats
                return [*rows]
        key, name, service, family_i, type_i, proto_i, flags_i = self.arguments(
            host, port, family, type, proto, flags
        )
        return list(self._cached_resolve(key, name, service, family_i, type_i, proto_i, flags_i))

    def hit(
        self, host: Any, port: Any, family: Any, type: Any, proto: Any, flags: Any
    ) -> list[AddrInfoTuple] | None:
        """A finished result still good for exactly these arguments, audited; else None."""
        try:
            expires, rows = self._cache[(host, port, family, type, proto, flags)]
        except (KeyError, TypeError):
            return None
        now = self._clock()
        if (
            now < expires
            and now < self._recheck_at
            and port.__class__ in _PORT_CLASSES
            and family.__class__ in _INT_CLASSES
            and type.__class__ in _INT_CLASSES
            and proto.__class__ in _INT_CLASSES
            and flags.__class__ in _INT_CLASSES
        ):
            _audit("socket.getaddrinfo", host, port, family, type, proto)
            next(self._hits)
            return [*rows]
        return None

    @staticmethod
    def arguments(
        host: Any, port: Any, family: Any, type_: Any, proto: Any, flags: Any
    ) -> tuple[CacheKey | None, bytes | None, bytes | None, int, int, int, int]:
        """CPython's argument handling, in its order (the ints, then host, then port),
        and the audit event: the cache key (None: not cacheable) and the C arguments."""
        family_i, type_i, proto_i, flags_i = (
            c_int(family),
            c_int(type_),
            c_int(proto),
            c_int(flags),
        )
        name = host_arg(host)
        service = port_arg(port)
        sys.audit("socket.getaddrinfo", host, port, family_i, type_i, proto_i)
        cacheable = host.__class__ in _HOST_CLASSES and port.__class__ in _PORT_CLASSES
        key = (host, port, family_i, type_i, proto_i, flags_i) if cacheable else None
        return key, name, service, family_i, type_i, proto_i, flags_i

    def begin(self, key: CacheKey | None) -> tuple[float, int, tuple[AddrInfoTuple, ...] | None]:
        """Before a lookup: re-check the files (rate-limited), then the cache.

        Returns the time, the cache generation (for :meth:`store`) and a cached result.
        """
        now = self._clock()
        self.check_files(now)
        generation = self._generation
        if key is not None:
            entry = self._cache.get(key)
            if entry is not None and now < entry[0]:
                next(self._hits)
                return now, generation, entry[1]
        return now, generation, None

    def store(
        self, key: CacheKey | None, generated: Generated, now: float, generation: int
    ) -> tuple[AddrInfoTuple, ...]:
        """After a lookup: cache its rows (unless the files changed meanwhile) until the
        earliest of the answers' validity (the resolver's refresh-ahead point, so hot
        names are refreshed in the background rather than on a miss, or its failure
        recheck after a family failed) and, for rows that depended on interfaces,
        ``IFACE_RECHECK``."""
        expires = generated.expires
        if generated.iface_dependent:
            expires = min(expires, now + IFACE_RECHECK)
        if key is not None and expires > now:
            with self._lock:
                if generation == self._generation:
                    bounded_put(self._cache, key, (expires, generated.rows), self.max_entries)
        return generated.rows

    def check_files(self, now: float) -> None:
        """Re-read the hosts file, nsswitch.conf and resolv.conf if they changed (at
        most every ``hosts_check_interval``); any change empties the cache."""
        if now < self._recheck_at:
            return
        notice_bypasses()  # a module imported since that resolves outside safedns
        changed = self.hosts.refresh()
        changed = self.nsswitch.refresh() or changed
        if self._system is not None and self._follow_resolv_conf(self._system):
            changed = True
        if changed:
            self.clear_cache()
        self._recheck_at = now + self.hosts_check_interval

    def _follow_resolv_conf(self, system: ResolvConf) -> bool:
        """Switch to a resolver on the new system configuration if resolv.conf changed it."""
        with self._follow_lock:
            config = system.refresh()
            if config is None:
                return False
            previous, self.resolver = self.resolver, self.resolver.reconfigured(config)
            if self._async_given is None:
                self._hits = self.resolver.hit_ticks
        previous.close()  # its background refreshes; lookups in progress still finish
        return True

    def ask(self, question: DnsQuestion) -> DnsReply:
        """The resolver's reply to one DNS question of a lookup."""
        try:
            return self.resolver.lookup_addresses(question.name, question.family)
        except (ResolveError, InvalidName) as exc:
            return exc

    def _cached_resolve(
        self,
        key: CacheKey | None,
        name: bytes | None,
        service: bytes | None,
        family: int,
        socktype: int,
        proto: int,
        flags: int,
    ) -> tuple[AddrInfoTuple, ...]:
        """glibc's ``getaddrinfo`` through the finished-results cache (``key`` None:
        uncached). Raises ``socket.gaierror``."""
        now, generation, cached = self.begin(key)
        if cached is not None:
            return cached
        steps = getaddrinfo_steps(self.nss, name, service, family, socktype, proto, flags)
        try:
            generated = drive(steps, self.ask)
        except GaiError as exc:
            raise gai_error(exc.code) from None
        return self.store(key, generated, now, generation)

    # -- gethostbyname ----------------------------------------------------------------

    def _setipaddr(self, name: bytes) -> str:
        """CPython's ``setipaddr(name, ..., AF_INET)``: the first IPv4 address."""
        if not name:
            dgram = int(socket.SOCK_DGRAM)
            key = (None, b"0", AF_INET, dgram, 0, AI_PASSIVE)
            rows = self._cached_resolve(key, None, b"0", AF_INET, dgram, 0, AI_PASSIVE)
            return str(rows[0][4][0])
        if name in (b"255.255.255.255", b"<broadcast>"):
            return "255.255.255.255"
        try:
            return socket.inet_ntop(
                socket.AF_INET, socket.inet_pton(socket.AF_INET, name.decode("ascii"))
            )
        except (OSError, UnicodeDecodeError):
            pass
        # The same question as getaddrinfo(name, None, AF_INET) with a bytes host.
        rows = self._cached_resolve((name, None, AF_INET, 0, 0, 0), name, None, AF_INET, 0, 0, 0)
        return str(rows[0][4][0])

    def gethostbyname(self, hostname: Any, /) -> str:
        """:func:`socket.gethostbyname`, answered by safedns."""
        name = hostname_arg(hostname, "gethostbyname")
        sys.audit("socket.gethostbyname", hostname)
        self.check_files(self._clock())
        return self._setipaddr(name)

    def gethostbyname_ex(self, hostname: Any, /) -> tuple[str, list[str], list[str]]:
        """:func:`socket.gethostbyname_ex`, answered by safedns."""
        name = hostname_arg(hostname, "gethostbyname_ex")
        sys.audit("socket.gethostbyname", hostname)
        self.check_files(self._clock())
        self._setipaddr(name)
        found, handled = drive(self.nss.gethostbyname2(name), self.ask)
        if found.status != SUCCESS:
            raise host_error(thread_h_errno() if found.h_errno_kept else found.h_errno)
        if not found.addresses:
            raise host_error(NO_DATA)
        h_name = found.canon if found.canon is not None else name
        aliases = list(found.aliases)
        if not handled and found.answers:
            h_name, aliases = dns_aliases(name, found.answers[0], found.canon)
        return (
            os.fsdecode(h_name),
            [alias.decode("utf-8") for alias in aliases],
            [socket.inet_ntop(socket.AF_INET, packed) for _, packed in found.addresses],
        )


# --------------------------------------------------------------------------- module level

_default: AddrInfo | None = None
_default_lock = threading.Lock()


def default_addrinfo() -> AddrInfo:
    """The process-wide :class:`AddrInfo`, on the system resolver, created on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = AddrInfo()
    return _default


def set_default(addrinfo: AddrInfo | None) -> AddrInfo | None:
    """Replace the process-wide instance (for tests); returns the previous one."""
    global _default
    with _default_lock:
        previous, _default = _default, addrinfo
    return previous


def getaddrinfo(
    host: Any,
    port: Any,
    family: Any = 0,
    type: Any = 0,  # the standard library's name
    proto: Any = 0,
    flags: Any = 0,
) -> list[AddrInfoTuple]:
    """:func:`socket.getaddrinfo` with the same results and errors, answered by safedns
    (the hosts file, then the default resolver)."""
    return (_default or default_addrinfo()).getaddrinfo(host, port, family, type, proto, flags)


def gethostbyname(hostname: Any, /) -> str:
    """:func:`socket.gethostbyname`, answered by safedns."""
    return (_default or default_addrinfo()).gethostbyname(hostname)


def gethostbyname_ex(hostname: Any, /) -> tuple[str, list[str], list[str]]:
    """:func:`socket.gethostbyname_ex`, answered by safedns."""
    return (_default or default_addrinfo()).gethostbyname_ex(hostname)


def _reinit_after_fork() -> None:
    # Each AddrInfo resets itself (``reset_in_child``); the module's own lock here.
    global _default_lock
    _default_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
