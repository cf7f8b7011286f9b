"""The loaded modules that resolve names outside safedns, and the warning about them.

``safedns.patch()`` and ``safedns run`` cover what resolves through Python's
:mod:`socket` module or an event loop. Some common libraries resolve in C
instead (gRPC's C-core, libpq, libmysqlclient, librdkafka, libcurl): their
lookups walk the search list and reach the cluster DNS with no cache, no budget
and no serve-stale, whatever safedns does. :func:`bypasses` names those loaded
in this process, from :data:`sys.modules` only (it imports nothing), with how
each resolves and what to do about it.

While safedns is patched in, :func:`watch` (called by ``patch()``) logs one
WARNING per bypassing module under the ``safedns`` logger: at once for those
already loaded, and for a module imported later at the next cheap point:
:func:`count` (every ``stats()`` reading) or :func:`notice` (the drop-in's
rate-limited check of its files, at most once per ``hosts_check_interval``).
Nothing runs on a cache hit.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass

__all__ = ["KNOWN", "Bypass", "bypasses", "count", "notice", "watch"]

_NODELOCAL = (
    "Run NodeLocal DNSCache (a cache on every node, 169.254.20.10), so these lookups are "
    "answered on the node instead of reaching CoreDNS."
)


@dataclass(frozen=True)
class Bypass:
    """A loaded module that resolves names outside safedns.

    ``module``: its import name (``"grpc"``); ``package``: what pip installs it
    as; ``resolves``: how its lookups are made; ``advice``: what to do about it.
    """

    module: str
    package: str
    resolves: str
    advice: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


#: Every module safedns knows to resolve outside it, checked against each
#: library's documentation (docs/faq.md gives the sources).
KNOWN: tuple[Bypass, ...] = (
    Bypass(
        "grpc",
        "grpcio",
        "gRPC's C-core resolves channel targets itself: with c-ares by default "
        "(GRPC_DNS_RESOLVER=ares), or with libc's getaddrinfo (GRPC_DNS_RESOLVER=native); "
        "never through Python's socket module. That includes every Google Cloud client "
        "library.",
        f"{_NODELOCAL} Write targets in full with a trailing dot "
        "(dns:///my-svc.my-ns.svc.cluster.local.:50051) so neither resolver walks the "
        "search list; with the c-ares resolver, dns://169.254.20.10:53/my-svc:50051 names "
        "the DNS server to ask (the native resolver takes no authority); ipv4:10.0.0.7:50051 "
        "and unix: targets need no DNS at all.",
    ),
    Bypass(
        "psycopg2",
        "psycopg2 / psycopg2-binary",
        "libpq resolves the host in C (getaddrinfo) for every new connection; safedns "
        "never sees the lookup.",
        f"{_NODELOCAL} Resolve the name through safedns and pass the address as hostaddr, "
        "keeping host for TLS verification (libpq then makes no lookup); keep connections "
        "in a pool; or move to psycopg 3's AsyncConnection, which resolves through the "
        "event loop, which safedns.patch() covers.",
    ),
    Bypass(
        "psycopg",
        "psycopg (3)",
        "A synchronous psycopg.Connection lets libpq resolve the host in C (getaddrinfo). "
        "AsyncConnection.connect (psycopg 3.1 and later) resolves through the event loop's "
        "getaddrinfo instead, which safedns.patch() covers.",
        f"Use AsyncConnection, or pass hostaddr (resolved through safedns) to synchronous "
        f"connections. {_NODELOCAL}",
    ),
    Bypass(
        "MySQLdb",
        "mysqlclient",
        "libmysqlclient (or MariaDB Connector/C) resolves the host in C (getaddrinfo) on "
        "every connect.",
        f"{_NODELOCAL} Give the host in full with a trailing dot so libc skips the search "
        "list; or use PyMySQL or aiomysql, which connect through Python's socket module or "
        "the event loop, both covered by safedns.patch().",
    ),
    Bypass(
        "confluent_kafka",
        "confluent-kafka",
        "librdkafka resolves the bootstrap servers and every broker's advertised name in "
        "its own C threads (getaddrinfo), again on each reconnect, keeping a result only "
        "for broker.address.ttl (1000 ms by default).",
        f"{_NODELOCAL} Raise broker.address.ttl (30000, say) so reconnects reuse the "
        "addresses; write bootstrap.servers in full with a trailing dot; or use aiokafka "
        "or kafka-python, which resolve through Python.",
    ),
    Bypass(
        "pycurl",
        "pycurl",
        "libcurl resolves in C (getaddrinfo on a thread of its own, or c-ares, as it was "
        "built) and keeps its own cache for DNS_CACHE_TIMEOUT (60 s by default), whatever "
        "the TTL.",
        f"Pin names resolved through safedns with pycurl.RESOLVE ('host:port:address'), or "
        f"use httpx or requests, which safedns.patch() covers. {_NODELOCAL}",
    ),
)


def bypasses(modules: Mapping[str, object] | None = None) -> list[Bypass]:
    """The modules loaded in this process (or found in ``modules``, default
    :data:`sys.modules`) that resolve names outside safedns: for each, the
    module, how it resolves and what to do. A module that is not loaded is not
    reported; nothing is imported."""
    loaded = sys.modules if modules is None else modules
    return [entry for entry in KNOWN if entry.module in loaded]


class _Watch:
    """The warning's state: whether safedns is patched in, and who was warned about."""

    def __init__(self) -> None:
        self.active = False  # read without the lock
        self.seen = -1  # len(sys.modules) at the last scan
        self.warned: set[str] = set()
        self.lock = threading.Lock()
        self.logger = logging.getLogger("safedns")

    def scan(self) -> int:
        found = bypasses()
        if self.active:
            with self.lock:
                self.seen = len(sys.modules)
                new = [entry for entry in found if entry.module not in self.warned]
                self.warned.update(entry.module for entry in new)
            for entry in new:
                self.logger.warning(
                    "%s (%s) resolves names outside safedns: %s Its lookups get no cache, "
                    "budget or serve-stale from safedns. What to do: %s",
                    entry.module,
                    entry.package,
                    entry.resolves,
                    entry.advice,
                )
        return len(found)


_watch = _Watch()


def watch(active: bool) -> None:
    """Called by ``patch()`` (True: warn now about what is loaded, and later about
    what is imported) and ``unpatch()`` (False: stop)."""
    _watch.active = active
    if active:
        _watch.scan()


def count() -> int:
    """How many bypassing modules are loaded; warns about new ones while patched."""
    return _watch.scan()


def notice() -> None:
    """While patched, warn about bypassing modules imported since the last look.
    Cheap: one attribute read when not patched, one ``len(sys.modules)`` when
    nothing was imported."""
    if _watch.active and len(sys.modules) != _watch.seen:
        _watch.scan()
