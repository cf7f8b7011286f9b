"""glibc's ``getaddrinfo`` (``sysdeps/posix/getaddrinfo.c``) on C arguments, as steps
around the one part that may need DNS.

1. :func:`prepare`: the flag, family, ``AI_ADDRCONFIG`` and service checks, then hosts
   that need no lookup (``None``, numeric, after ``AI_IDN``);
2. the name lookup, :meth:`NameService.lookup` (a generator of DNS questions);
3. :func:`canonical_name` (``AI_CANONNAME``/``AI_CANONIDN``) and :func:`generate`:
   one row per address and service, in glibc's RFC 3484 order.

:func:`getaddrinfo_steps` chains them; the sync ``AddrInfo`` and the async drop-in drive
the same generator. Every error is a :class:`GaiError` with glibc's ``EAI_*`` code.
"""

from __future__ import annotations

import math
import socket
from dataclasses import dataclass
from typing import Any, Final

from safedns._dropin.arguments import ServTuple, servtuples, strtoul, to_c_int
from safedns._dropin.constants import (
    AF_INET,
    AF_INET6,
    AF_UNSPEC,
    AI_ADDRCONFIG,
    AI_ALL,
    AI_CANONIDN,
    AI_CANONNAME,
    AI_IDN,
    AI_NUMERICSERV,
    AI_PASSIVE,
    AI_V4MAPPED,
    ALLOWED_FLAGS,
    ANY4,
    ANY6,
    EAI_BADFLAGS,
    EAI_FAMILY,
    EAI_IDN_ENCODE,
    EAI_NONAME,
    LOOPBACK4,
    LOOPBACK6,
    MAPPED_PREFIX,
    AddrInfoTuple,
)
from safedns._dropin.errors import GaiError
from safedns._dropin.idna import idn2_call, idna_to_dns
from safedns._dropin.interfaces import Interfaces, interfaces
from safedns._dropin.nss import NameOutcome, NameService, Steps
from safedns._dropin.numeric import Address, numeric_host
from safedns._dropin.sort import Dest, gai_conf, rfc3484_sort

__all__ = [
    "IFACE_RECHECK",
    "Generated",
    "Request",
    "canonical_name",
    "generate",
    "getaddrinfo_steps",
    "prepare",
]

#: Seconds a result that depended on interface state (sorting, AI_ADDRCONFIG) is cached.
IFACE_RECHECK: Final = 5.0

# The socket module's _intenum_converter, as lookups.
_FAMILY_ENUMS: Final[dict[int, socket.AddressFamily | int]] = {
    int(m): m for m in socket.AddressFamily
}
_KIND_ENUMS: Final[dict[int, socket.SocketKind | int]] = {int(m): m for m in socket.SocketKind}


@dataclass(slots=True)
class Request:
    """A checked ``getaddrinfo`` call: what to look up, and what glibc already knows."""

    #: The name as given (for ``AI_CANONNAME`` without a canonical name).
    orig_name: bytes
    #: The name to look up (after ``AI_IDN``); None when ``known`` is set.
    name: bytes | None
    family: int
    flags: int
    servtuples: list[ServTuple]
    #: Interface state, when ``AI_ADDRCONFIG`` read it.
    info: Interfaces | None
    #: The addresses when no lookup is needed (no host, a numeric host).
    known: NameOutcome | None


@dataclass(frozen=True, slots=True)
class Generated:
    """The finished rows, when the DNS answers behind them expire, and whether they
    depended on interface state (then they are re-checked within ``IFACE_RECHECK``)."""

    rows: tuple[AddrInfoTuple, ...]
    expires: float
    iface_dependent: bool


def prepare(
    name: bytes | None, service: bytes | None, family: int, socktype: int, proto: int, flags: int
) -> Request:
    """glibc's checks and the hosts that need no lookup. Raises :class:`GaiError`."""
    if name == b"*":
        name = None
    if service == b"*":
        service = None
    if name is None and service is None:
        raise GaiError(EAI_NONAME)
    if flags & ~ALLOWED_FLAGS or (flags & AI_CANONNAME and name is None):
        raise GaiError(EAI_BADFLAGS)
    if family not in (AF_UNSPEC, AF_INET, AF_INET6):
        raise GaiError(EAI_FAMILY)
    info: Interfaces | None = None
    if flags & AI_ADDRCONFIG:
        info = interfaces()
        family = _configured_family(family, info)
    tuples = servtuples(*_service_number(service, flags), socktype, proto)
    if name is None:
        return Request(b"", None, family, flags, tuples, info, _no_host(family, flags))
    orig_name = name
    if flags & AI_IDN:
        name = idna_to_dns(name)
    numeric = numeric_host(name, family, flags)
    if numeric is not None:
        canon = name if flags & AI_CANONNAME else None
        known = NameOutcome(numeric, canon, False, math.inf)
        return Request(orig_name, None, family, flags, tuples, info, known)
    return Request(orig_name, name, family, flags, tuples, info, None)


def _configured_family(family: int, info: Interfaces) -> int:
    """``AI_ADDRCONFIG``: the family left once unconfigured ones are dropped."""
    if family == AF_UNSPEC and (info.seen_ipv4 or info.seen_ipv6):
        if info.seen_ipv4 != info.seen_ipv6:
            return AF_INET if info.seen_ipv4 else AF_INET6
    elif (family == AF_INET and not info.seen_ipv4) or (family == AF_INET6 and not info.seen_ipv6):
        raise GaiError(EAI_NONAME)
    return family


def _service_number(service: bytes | None, flags: int) -> tuple[bytes | None, int]:
    """The service (None when empty) and its number (-1: a name to look up)."""
    if not service:
        return None, -1
    value, end = strtoul(service)
    if end == len(service):
        return service, to_c_int(value)
    if flags & AI_NUMERICSERV:
        raise GaiError(EAI_NONAME)
    return service, -1


def _no_host(family: int, flags: int) -> NameOutcome:
    """A ``None`` host: the loopback (or with ``AI_PASSIVE`` the any) addresses."""
    addresses: list[Address] = []
    if family in (AF_UNSPEC, AF_INET6):
        addresses.append((AF_INET6, ANY6 if flags & AI_PASSIVE else LOOPBACK6, 0))
    if family in (AF_UNSPEC, AF_INET):
        addresses.append((AF_INET, ANY4 if flags & AI_PASSIVE else LOOPBACK4, 0))
    return NameOutcome(addresses, None, False, math.inf)


def canonical_name(request: Request, outcome: NameOutcome) -> bytes | None:
    """``ai_canonname`` for ``AI_CANONNAME``: the lookup's canonical name, converted
    back from IDNA with ``AI_CANONIDN``, or the name as given."""
    canon = outcome.canon
    if not request.flags & AI_CANONIDN:
        return canon if canon is not None else request.orig_name
    rc, out = idn2_call("idn2_to_unicode_lzlz", canon or request.orig_name)
    if rc == 0 and out is not None:
        return out
    if rc != EAI_IDN_ENCODE:
        raise GaiError(rc)
    return canon if canon is not None else request.orig_name


def generate(request: Request, outcome: NameOutcome) -> Generated:
    """glibc's ``generate_addrinfo`` and the RFC 3484 sort: the finished rows."""
    flags = request.flags
    rows: list[tuple[ServTuple, Address]] = []
    dests: list[Dest] = []
    naddrs = 0
    for address in outcome.addresses:
        af, packed, scope_id = address
        if (
            af == AF_INET6
            and outcome.got_ipv6
            and flags & (AI_V4MAPPED | AI_ALL) == AI_V4MAPPED
            and packed.startswith(MAPPED_PREFIX)
        ):
            continue  # a mapped address where real IPv6 ones were found
        for servtuple in request.servtuples:
            rows.append((servtuple, address))
            dests.append((af, packed, scope_id, servtuple[2]))
        naddrs += 1
    if not rows:  # every address was a mapped one dropped above
        raise GaiError(EAI_NONAME)
    iface_dependent = request.info is not None
    order = list(range(len(rows)))
    if naddrs > 1:
        info = request.info if request.info is not None else interfaces()
        order = rfc3484_sort(dests, info, gai_conf())
        iface_dependent = True
    canon = outcome.canon.decode("utf-8") if outcome.canon is not None else None
    result = tuple(_row(rows[i], canon if n == 0 else None) for n, i in enumerate(order))
    return Generated(result, outcome.expires, iface_dependent)


def _row(row: tuple[ServTuple, Address], canon: str | None) -> AddrInfoTuple:
    (socktype, protocol, port), (af, packed, scope_id) = row
    host = socket.inet_ntop(af, packed)
    sockaddr: tuple[Any, ...] = (host, port, 0, scope_id) if af == AF_INET6 else (host, port)
    return (
        _FAMILY_ENUMS.get(af, af),
        _KIND_ENUMS.get(socktype, socktype),
        protocol,
        canon if canon is not None else "",
        sockaddr,
    )


def getaddrinfo_steps(
    nss: NameService,
    name: bytes | None,
    service: bytes | None,
    family: int,
    socktype: int,
    proto: int,
    flags: int,
) -> Steps[Generated]:
    """glibc's ``getaddrinfo`` on C arguments, yielding the DNS questions it needs."""
    request = prepare(name, service, family, socktype, proto, flags)
    outcome = request.known
    if outcome is None:
        assert request.name is not None
        outcome = yield from nss.lookup(request.name, request.family, flags)
    if flags & AI_CANONNAME:
        outcome.canon = canonical_name(request, outcome)
    return generate(request, outcome)
