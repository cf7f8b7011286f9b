"""glibc's NSS ``hosts`` lookups for the drop-in: the hosts file and DNS, run in the
order and with the actions of nsswitch.conf, with glibc's status and ``h_errno`` rules.

Sans-I/O for DNS: each lookup is a generator that yields a :class:`DnsQuestion` (a name
and a family) and is sent back what the resolver said (its answers, or the
``ResolveError``/``InvalidName`` it raised). :func:`drive` runs one against a function
that asks; the async drop-in runs the same generators against ``AsyncResolver``. The
hosts file is read in place (a stat at most every check interval, by the caller).
"""

from __future__ import annotations

import math
import socket
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeAlias, TypeVar

from safedns._dropin.constants import (
    AF_INET,
    AF_INET6,
    AF_UNSPEC,
    AI_ALL,
    AI_CANONNAME,
    AI_V4MAPPED,
    EAI_AGAIN,
    EAI_NODATA,
    EAI_NONAME,
    HOST_NOT_FOUND,
    MAPPED_PREFIX,
    NO_DATA,
    NO_RECOVERY,
    TRY_AGAIN,
)
from safedns._dropin.errors import GaiError
from safedns._dropin.numeric import Address, digits_dots
from safedns._exceptions import InvalidName, NameNotFound, ResolveError, TemporaryFailure
from safedns._hosts import HostsFile, NsSwitch, Source
from safedns._records import Answer

__all__ = [
    "NOTFOUND",
    "SUCCESS",
    "TRYAGAIN",
    "UNAVAIL",
    "DnsQuestion",
    "DnsReply",
    "Found",
    "NameOutcome",
    "NameService",
    "Steps",
    "dns_aliases",
    "expiry",
]

T = TypeVar("T")

# nss status values.
SUCCESS: Final = "success"
NOTFOUND: Final = "notfound"
UNAVAIL: Final = "unavail"
TRYAGAIN: Final = "tryagain"

PLAIN: Final = Source("plain", {})


@dataclass(frozen=True, slots=True)
class DnsQuestion:
    """What a lookup needs from DNS: the addresses of ``name`` for ``family``."""

    name: bytes
    family: int


#: What the resolver said: the answers of each type that had data, or its error.
DnsReply: TypeAlias = "list[Answer] | ResolveError | InvalidName"
#: A lookup that yields DNS questions, is sent their replies and returns a ``T``.
Steps: TypeAlias = Generator[DnsQuestion, DnsReply, T]


@dataclass(slots=True)
class Found:
    """One NSS module's answer for one family question."""

    status: str
    h_errno: int
    addresses: list[tuple[int, bytes]]
    canon: bytes | None = None
    aliases: tuple[bytes, ...] = ()
    answers: tuple[Answer, ...] = ()
    #: The module failed without touching the thread's ``h_errno`` (glibc's nss_dns
    #: refuses a name that is not a host name before any resolver call), so
    #: ``gethostbyname*`` reports whatever the thread's last lookup left there.
    h_errno_kept: bool = False


def invalid_h_errno(exc: InvalidName) -> int:
    # glibc cannot build a query for these (res_mkquery fails: NO_RECOVERY); for other
    # names it sends the query and the server answers NXDOMAIN.
    reason = exc.reason
    if reason.startswith(("empty", "label longer", "name longer", "the root")):
        return NO_RECOVERY
    return HOST_NOT_FOUND


def not_found_h_errno(exc: NameNotFound, family: int) -> int:
    """h_errno for a lookup without data: HOST_NOT_FOUND for NXDOMAIN, NO_DATA for
    "no data of this family", except where glibc's answer is a CNAME chain ending
    without such records (it parses the answer, finds none: HOST_NOT_FOUND). The
    error says both, from the answers the walk already had: no further query."""
    if exc.nxdomain:
        return HOST_NOT_FOUND
    if family != AF_UNSPEC and exc.canonical_name is not None:
        return HOST_NOT_FOUND
    return NO_DATA


def strip_dot(name: str) -> str:
    return name[:-1] if name.endswith(".") else name


def typed_name(typed: bytes, candidate: str) -> bytes:
    """``candidate`` (lower case, from the resolver) spelled as the caller typed it,
    which is how a DNS server echoes the question (and glibc reports it)."""
    asked = typed[:-1] if typed.endswith(b".") else typed
    found = strip_dot(candidate).encode("ascii", "replace")
    if found.lower().startswith(asked.lower()):
        return asked + found[len(asked) :]
    return found


@dataclass(slots=True)
class Gathered:
    """glibc's ``struct gaih_result`` while the NSS modules run."""

    at: list[Address] = field(default_factory=list)
    canon: bytes | None = None
    got_ipv6: bool = False
    answers: list[Answer] = field(default_factory=list)


def no_data_code(h_errno: int) -> int:
    return EAI_AGAIN if h_errno == TRY_AGAIN else int(h_errno == NO_DATA)


@dataclass(slots=True)
class NameOutcome:
    """What the name lookup produced: addresses in glibc's pre-sort order, the
    canonical name, whether IPv6 was found, and when it expires."""

    addresses: list[Address]
    canon: bytes | None
    got_ipv6: bool
    expires: float


def dns_found(name: bytes, family: int, reply: DnsReply) -> Found:
    """The ``dns`` module's answer for ``name`` from the resolver's ``reply``."""
    if isinstance(reply, NameNotFound):
        return Found(NOTFOUND, not_found_h_errno(reply, family), [])
    if isinstance(reply, TemporaryFailure):
        return Found(TRYAGAIN, TRY_AGAIN, [])
    if isinstance(reply, InvalidName):
        kept = reply.reason.startswith("character")
        return Found(NOTFOUND, invalid_h_errno(reply), [], h_errno_kept=kept)
    if isinstance(reply, ResolveError):  # a failure that trying again will not mend
        return Found(NOTFOUND, NO_RECOVERY, [])
    addresses: list[tuple[int, bytes]] = []
    for answer in reply:
        af = AF_INET if answer.rdtype == "A" else AF_INET6
        for text in answer.addresses:
            try:
                addresses.append((af, socket.inet_pton(af, text)))
            except OSError:  # pragma: no cover - the resolver returns valid rdata
                continue
    if not addresses:
        return Found(NOTFOUND, NO_DATA, [])
    first = reply[0]
    if first.canonical_name.lower() == first.name.lower():
        canon = typed_name(name, first.name)
    else:
        canon = strip_dot(first.canonical_name).encode("ascii", "replace")
    return Found(SUCCESS, 0, addresses, canon, (), tuple(reply))


def dns_aliases(name: bytes, answer: Answer, canon: bytes | None) -> tuple[bytes, list[bytes]]:
    """h_name and aliases as glibc's DNS module reports them: the CNAME owners."""
    h_name = canon if canon is not None else name
    if not answer.aliases:
        return h_name, []
    aliases = [typed_name(name, answer.name)]
    aliases.extend(strip_dot(owner).encode("ascii", "replace") for owner in answer.aliases[1:])
    return h_name, aliases


def expiry(answers: Sequence[Answer]) -> float:
    """Until when ``answers`` may be reused (never expiring, for none): the
    earliest ``valid_until``, which is the resolver's refresh-ahead point, or
    its failure recheck after a family failed."""
    return min((a.valid_until for a in answers), default=math.inf)


class NameService:
    """glibc's NSS ``hosts`` database over ``hosts`` and the ``hosts:`` line of
    ``nsswitch``; every method that may ask DNS is a :data:`Steps` generator."""

    def __init__(self, hosts: HostsFile, nsswitch: NsSwitch) -> None:
        self.hosts = hosts
        self.nsswitch = nsswitch

    def sources(self) -> list[tuple[str, Source]]:
        """The ``hosts:`` services safedns can stand in for, in order, with their actions.

        ``files`` and ``dns`` as glibc runs them; ``resolve`` (systemd-resolved) counts as
        ``dns`` when the line has no ``dns``; other modules (``myhostname``, ``mdns*``,
        ...) are skipped. A line with none of these means ``files dns``.
        """
        sources = self.nsswitch.sources
        names = {s.name for s in sources}
        usable = [
            ("dns" if s.name == "resolve" else s.name, s)
            for s in sources
            if s.name in ("files", "dns") or (s.name == "resolve" and "dns" not in names)
        ]
        return usable or [("files", PLAIN), ("dns", PLAIN)]

    def files4(self, name: bytes) -> Found:
        data = self.hosts.data
        if data.missing:
            return Found(UNAVAIL, NO_DATA, [])
        found = data.lookup(name, AF_UNSPEC, multi=self.hosts.multi)
        if found is None:
            return Found(NOTFOUND, HOST_NOT_FOUND, [])
        return Found(SUCCESS, 0, list(found.addresses), found.canonical_name)

    def files3(self, name: bytes, family: int) -> Found:
        data = self.hosts.data
        if data.missing:
            return Found(UNAVAIL, HOST_NOT_FOUND, [])
        found = data.lookup(name, family, multi=self.hosts.multi)
        if found is None:
            return Found(NOTFOUND, HOST_NOT_FOUND, [])
        return Found(SUCCESS, 0, list(found.addresses), found.canonical_name, found.aliases)

    def dns(self, name: bytes, family: int) -> Steps[Found]:
        """The ``dns`` module: one question to the resolver, read as glibc's nss_dns."""
        reply = yield DnsQuestion(name, family)
        return dns_found(name, family, reply)

    def module4(self, module: str, name: bytes) -> Steps[Found]:
        if module == "files":
            return self.files4(name)
        return (yield from self.dns(name, AF_UNSPEC))

    def module3(self, module: str, name: bytes, family: int) -> Steps[Found]:
        if module == "files":
            return self.files3(name, family)
        return (yield from self.dns(name, family))

    def gethostbyname2(self, name: bytes) -> Steps[tuple[Found, bool]]:
        """glibc's ``gethostbyname2_r(name, AF_INET)`` over the NSS chain.

        Returns the last module's answer and whether digits-dots handled the name.
        """
        handled, packed = digits_dots(name)
        if handled:
            if packed is None:
                return Found(NOTFOUND, HOST_NOT_FOUND, []), True
            return Found(SUCCESS, 0, [(AF_INET, packed)], name), True
        found = Found(UNAVAIL, HOST_NOT_FOUND, [])
        for module, source in self.sources():
            found = yield from self.module3(module, name, AF_INET)
            if source.action(found.status) == "return":
                break
        return found, False

    def lookup(self, name: bytes, family: int, flags: int) -> Steps[NameOutcome]:
        """The name part of glibc's ``gaih_inet`` for a non-numeric name."""
        if family == AF_INET and not flags & AI_CANONNAME:
            found, _ = yield from self.gethostbyname2(name)
            if found.status == SUCCESS and found.addresses:
                addresses = [(AF_INET, packed, 0) for _, packed in found.addresses]
                return NameOutcome(addresses, None, False, expiry(found.answers))
            if found.status in (SUCCESS, NOTFOUND, UNAVAIL):
                raise GaiError(EAI_NODATA if found.h_errno == NO_DATA else EAI_NONAME)
            raise GaiError(EAI_AGAIN if found.h_errno == TRY_AGAIN else EAI_NODATA)

        no_data = no_inet6_data = 0
        status = inet6_status = UNAVAIL
        res = Gathered()
        for module, source in self.sources():
            res = Gathered()  # gaih_result_reset: a module's results replace the last's
            no_data = 0
            if family == AF_UNSPEC:
                found = yield from self.module4(module, name)
                status = found.status
                res.answers.extend(found.answers)
                if status == SUCCESS:
                    if flags & AI_CANONNAME:
                        res.canon = found.canon
                    res.at = [(af, packed, 0) for af, packed in found.addresses]
                    no_data = 0 if res.at else 1
                else:
                    no_data = no_data_code(found.h_errno)
                no_inet6_data = no_data
            else:
                if family == AF_INET6:
                    status, no_data = yield from self.gethosts(
                        module, name, AF_INET6, family, flags, res
                    )
                    no_inet6_data, inet6_status = no_data, status
                if family == AF_INET or (
                    family == AF_INET6
                    and flags & AI_V4MAPPED
                    and (flags & AI_ALL or not res.got_ipv6)
                ):
                    status, no_data = yield from self.gethosts(
                        module, name, AF_INET, family, flags, res
                    )
                    if family == AF_INET:
                        no_inet6_data, inet6_status = no_data, status
                if SUCCESS in (inet6_status, status):
                    if flags & AI_CANONNAME and res.canon is None:
                        res.canon = name  # getcanonname() returns a copy of the name
                    status = SUCCESS
                elif inet6_status == TRYAGAIN:
                    status = TRYAGAIN
                elif status == UNAVAIL and inet6_status != UNAVAIL:
                    status = inet6_status
            if source.action(status) == "return":
                break
        if no_data and no_inet6_data:
            raise GaiError(
                EAI_AGAIN if no_data == EAI_AGAIN and no_inet6_data == EAI_AGAIN else EAI_NODATA
            )
        if not res.at:
            raise GaiError(EAI_NONAME)
        return NameOutcome(res.at, res.canon, res.got_ipv6, expiry(res.answers))

    def gethosts(
        self, module: str, name: bytes, af: int, family: int, flags: int, res: Gathered
    ) -> Steps[tuple[str, int]]:
        """glibc's ``gethosts``: one family from one module into ``res``.

        Returns the module's status and the ``no_data`` value.
        """
        found = yield from self.module3(module, name, af)
        res.answers.extend(found.answers)
        if found.status != SUCCESS:
            return found.status, no_data_code(found.h_errno)
        if found.addresses:
            res.got_ipv6 = af == AF_INET6
            for fam, packed in found.addresses:
                if fam == AF_INET and family == AF_INET6:
                    res.at.append((AF_INET6, MAPPED_PREFIX + packed, 0))
                else:
                    res.at.append((fam, packed, 0))
        if flags & AI_CANONNAME and res.canon is None and found.canon is not None:
            res.canon = found.canon
        return found.status, 0
