"""What a DNS response means for one question, and the answer objects callers get.

Pure: no sockets, no clock. ``interpret`` turns a dnspython response into a
``Positive`` or ``Negative`` result (or raises ``UpstreamFailure``); the cache
stores those results; ``Answer`` is what ``Resolver.resolve`` returns.
``rdtype_text`` and ``reverse_name`` check what a caller asks for.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn, overload

import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.rrset

from safedns._exceptions import InvalidName

__all__ = [
    "Answer",
    "Negative",
    "Positive",
    "Result",
    "UpstreamFailure",
    "interpret",
    "rdtype_text",
    "reverse_name",
]

MAX_CNAME_HOPS = 16


_RDTYPES: dict[str, str] = {}
_RDTYPE_NUMBERS: dict[int, str] = {}


def rdtype_text(rdtype: object) -> str:
    """The canonical text of a record type, the cache's key for it: ``"MX"``
    for ``"MX"``, ``"mx"``, ``dns.rdatatype.MX`` or ``15``.

    Raises ``TypeError`` for anything but a str or an int (a bool is not a
    record type), ``ValueError`` for an unknown type name, a number outside
    1..65535, or a meta type (``ANY``, ``AXFR``, ``IXFR``, ``OPT``, ``TSIG``...),
    which a stub resolver does not ask for (dnspython refuses them too).
    """
    if type(rdtype) is str:
        try:
            return _RDTYPES[rdtype]
        except KeyError:
            pass
        try:
            value = dns.rdatatype.from_text(rdtype)
        except (dns.rdatatype.UnknownRdatatype, ValueError):
            raise ValueError(f"unknown record type {rdtype!r}") from None
    elif isinstance(rdtype, int) and not isinstance(rdtype, bool):
        known = _RDTYPE_NUMBERS.get(int(rdtype))
        if known is not None:
            return known
        if not 0 < rdtype <= 65535:
            raise ValueError(f"record type {rdtype!r} is outside 1..65535")
        value = dns.rdatatype.RdataType.make(int(rdtype))
    else:
        raise TypeError(
            "rdtype must be a str such as 'MX', a dns.rdatatype value or an int such as 15,"
            f" not {type(rdtype).__name__}"
        )
    if dns.rdatatype.is_metatype(value) or value == 0:
        raise ValueError(f"{dns.rdatatype.to_text(value)} is not a record type to resolve")
    text = dns.rdatatype.to_text(value)
    if isinstance(rdtype, str):
        if len(_RDTYPES) < 256:
            _RDTYPES[rdtype] = text
    elif len(_RDTYPE_NUMBERS) < 256:
        _RDTYPE_NUMBERS[int(rdtype)] = text
    return text


def reverse_name(address: object) -> str:
    """The PTR name of an IPv4 or IPv6 address (str, bytes or an
    ``ipaddress`` object), absolute: ``"192.0.2.10"`` →
    ``"10.2.0.192.in-addr.arpa."``. An IPv6 scope (``%eth0``) is dropped.
    Raises ``InvalidName`` (a ``ValueError``) when ``address`` is not one."""
    if isinstance(address, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = address
    elif isinstance(address, (str, bytes)):
        text = address.decode("ascii", "replace") if isinstance(address, bytes) else address
        try:
            ip = ipaddress.ip_address(text.partition("%")[0])
        except ValueError:
            raise InvalidName(address, "not an IPv4 or IPv6 address") from None
    else:
        raise TypeError(
            f"address must be str, bytes or an ipaddress, not {type(address).__name__}"
        )
    bare = ip if ip.version == 4 else ipaddress.IPv6Address(int(ip))
    return str(dns.reversename.from_address(str(bare)).to_text())


class UpstreamFailure(Exception):
    """Upstream gave no usable answer: timeout, SERVFAIL, REFUSED, network error,
    or a spent query budget. ``reason`` is short text for the caller's error."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Positive:
    """Data for the question. ``records`` are the answer's rdata as text
    (addresses for A/AAAA); ``canonical_name`` ends the CNAME chain; ``ttl`` is
    the smallest TTL over the chain and the answer, before any policy;
    ``aliases`` are the CNAME owners on the way, the question first (empty
    without a chain)."""

    records: tuple[str, ...]
    canonical_name: str
    ttl: float
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Negative:
    """No data: ``nxdomain`` True for NXDOMAIN, False for NODATA. ``soa_ttl`` is
    min(SOA TTL, SOA MINIMUM) (and the CNAME TTLs on the way), or None when the
    response carried no SOA (dnsmasq sends none)."""

    nxdomain: bool
    canonical_name: str
    soa_ttl: float | None


Result = Positive | Negative


def _text(name: dns.name.Name) -> str:
    return name.to_text().lower()


def interpret(response: dns.message.Message, qname: str, rdtype: str) -> Result:
    """What ``response`` says about (qname, rdtype), following its CNAME chain.

    The records along the chain are part of the answer to the question asked
    and nothing else: they are never taken as answers for the names the
    chain passes through (a reply for ``evil.example.com`` cannot vouch for
    ``bank.example.net``). Raises ``UpstreamFailure`` for SERVFAIL, REFUSED
    and every other rcode that is not an answer, and for a CNAME loop or a
    chain longer than ``MAX_CNAME_HOPS`` (a recursive resolver reports both
    as SERVFAIL).
    """
    rcode = response.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        raise UpstreamFailure(dns.rcode.to_text(rcode))
    qtype = dns.rdatatype.from_text(rdtype)
    current = dns.name.from_text(qname)
    seen = {current}
    chain_ttls: list[float] = []  # the TTL of every CNAME along the way
    aliases: list[str] = []  # the owner of every CNAME along the way
    for _ in range(MAX_CNAME_HOPS + 1):
        rrset = _find(response, current, qtype)
        if rrset is not None:
            records = tuple(rd.to_text() for rd in rrset)
            canonical = _text(current) if chain_ttls else qname
            ttl = min([float(rrset.ttl), *chain_ttls])
            return Positive(records, canonical, ttl, tuple(aliases))
        if qtype == dns.rdatatype.CNAME:
            break
        cname = _find(response, current, dns.rdatatype.CNAME)
        if cname is None:
            break
        chain_ttls.append(float(cname.ttl))
        aliases.append(_text(current))
        current = cname[0].target
        if current in seen:
            raise UpstreamFailure(f"CNAME loop at {_text(current)}")
        seen.add(current)
    else:
        raise UpstreamFailure(f"CNAME chain longer than {MAX_CNAME_HOPS} hops")
    soa_ttl = _soa_ttl(response)
    if soa_ttl is not None and chain_ttls:
        soa_ttl = min([soa_ttl, *chain_ttls])
    nxdomain = rcode == dns.rcode.NXDOMAIN
    return Negative(nxdomain and not chain_ttls, _text(current), soa_ttl)


def _find(
    response: dns.message.Message, name: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> dns.rrset.RRset | None:
    for rrset in response.answer:
        if rrset.rdtype == rdtype and rrset.rdclass == dns.rdataclass.IN and rrset.name == name:
            return rrset
    return None


def _soa_ttl(response: dns.message.Message) -> float | None:
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            return float(min(rrset.ttl, rrset[0].minimum))
    return None


class Answer:
    """The answer to one lookup. Immutable (setting or deleting an attribute
    raises ``AttributeError``); a cache hit may hand out the same object again.

    - ``name``: the absolute name (trailing dot) that answered, after the
      search list; ``canonical_name``: where its CNAME chain ended.
    - ``aliases``: the owners of the CNAME chain from ``name`` to
      ``canonical_name`` (``name`` first; empty when no CNAME was followed).
    - ``rdtype``: the type asked for, as canonical text, e.g. ``"MX"``
      (whether it was asked as ``"mx"``, ``dns.rdatatype.MX`` or ``15``).
    - Iterating gives the records as dnspython rdata objects, as
      ``dns.resolver.Answer`` does: ``.address`` for A/AAAA,
      ``.preference``/``.exchange`` for MX,
      ``.priority``/``.weight``/``.port``/``.target`` for SRV, ``.strings``
      for TXT, ``.target`` for PTR and CNAME. ``len()`` and indexing work
      likewise. An answer always holds at least one record (no data is a
      ``NameNotFound``), so it is always true: unlike dnspython's, an
      ``Answer`` is never falsy.
    - ``addresses``: the addresses (A/AAAA), a new list on each access;
      ``records``: every record's data as text (zone-file syntax, absolute
      names with a trailing dot), whatever the type: for PTR, the host names.
    - ``ttl``: whole seconds left before the answer expires (counts down);
      ``expires``: when, on the resolver's clock; ``valid_until``: until when
      a front end may hand it out again without asking the resolver (the
      refresh-ahead point, or ``failure_recheck`` after another family of the
      same lookup failed).
    - ``from_cache``: answered without asking upstream; ``stale``: served
      after its TTL ran out because upstream failed (RFC 8767).

    The cache keeps each record as text; the rdata objects are parsed from it
    the first time an answer is iterated (or indexed) and kept on that answer.
    """

    __slots__ = (
        "_clock",
        "_expires",
        "_rdata",
        "_records",
        "aliases",
        "canonical_name",
        "from_cache",
        "name",
        "rdtype",
        "stale",
        "valid_until",
    )

    name: str
    rdtype: str
    canonical_name: str
    aliases: tuple[str, ...]
    from_cache: bool
    stale: bool
    _records: tuple[str, ...]
    _expires: float
    #: Until when a front end may reuse this answer without asking the
    #: resolver again, on its clock: the refresh-ahead point, or earlier when
    #: another family of the same lookup failed (``failure_recheck``).
    valid_until: float
    _clock: Callable[[], float]
    _rdata: tuple[dns.rdata.Rdata, ...] | None

    def __init__(
        self,
        name: str,
        rdtype: str,
        records: tuple[str, ...],
        canonical_name: str,
        expires: float,
        clock: Callable[[], float],
        *,
        from_cache: bool,
        stale: bool = False,
        refresh_at: float | None = None,
        aliases: tuple[str, ...] = (),
    ) -> None:
        init = _INIT
        init(self, "name", name)
        init(self, "rdtype", rdtype)
        init(self, "_records", records)
        init(self, "canonical_name", canonical_name)
        init(self, "_expires", expires)
        init(self, "aliases", aliases)
        init(self, "valid_until", expires if refresh_at is None else refresh_at)
        init(self, "_clock", clock)
        init(self, "from_cache", from_cache)
        init(self, "stale", stale)
        init(self, "_rdata", None)

    def cached(self, clock: Callable[[], float], valid_until: float) -> Answer:
        """This answer as later hits see it: from the cache, on ``clock``,
        reusable until ``valid_until``."""
        return Answer(
            self.name,
            self.rdtype,
            self._records,
            self.canonical_name,
            self._expires,
            clock,
            from_cache=True,
            refresh_at=valid_until,
            aliases=self.aliases,
        )

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"Answer is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"Answer is immutable: cannot delete {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        args = (self.name, self.rdtype, self._records, self.canonical_name, self._expires)
        flags = (self.from_cache, self.stale, self.valid_until, self.aliases)
        return (_rebuild, (*args, self._clock, *flags))

    @property
    def addresses(self) -> list[str]:
        if self.rdtype in ("A", "AAAA"):
            return list(self._records)
        return []

    @property
    def records(self) -> list[str]:
        return list(self._records)

    @property
    def ttl(self) -> int:
        return max(0, math.ceil(self._expires - self._clock()))

    @property
    def expires(self) -> float:
        """When the answer expires, on the resolver's clock."""
        return self._expires

    def rdata(self) -> tuple[dns.rdata.Rdata, ...]:
        """The records as dnspython rdata objects (what iteration yields)."""
        rdata = self._rdata
        if rdata is None:
            rdata = parse_records(self.rdtype, self._records)
            _INIT(self, "_rdata", rdata)
        return rdata

    def __iter__(self) -> Iterator[dns.rdata.Rdata]:
        return iter(self.rdata())

    def __len__(self) -> int:
        return len(self._records)

    def __bool__(self) -> bool:
        return True

    @overload
    def __getitem__(self, index: int) -> dns.rdata.Rdata: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[dns.rdata.Rdata, ...]: ...
    def __getitem__(self, index: int | slice) -> dns.rdata.Rdata | tuple[dns.rdata.Rdata, ...]:
        return self.rdata()[index]

    def __repr__(self) -> str:
        flags = " stale" if self.stale else (" cached" if self.from_cache else "")
        return f"<Answer {self.name} {self.rdtype} {list(self._records)} ttl={self.ttl}{flags}>"


#: Sets a slot of an ``Answer`` past its ``__setattr__`` guard.
_INIT = object.__setattr__


def _rebuild(
    name: str,
    rdtype: str,
    records: tuple[str, ...],
    canonical_name: str,
    expires: float,
    clock: Callable[[], float],
    from_cache: bool,
    stale: bool,
    refresh_at: float,
    aliases: tuple[str, ...] = (),
) -> Answer:
    return Answer(
        name,
        rdtype,
        records,
        canonical_name,
        expires,
        clock,
        from_cache=from_cache,
        stale=stale,
        refresh_at=refresh_at,
        aliases=aliases,
    )


def parse_records(rdtype: str, records: tuple[str, ...]) -> tuple[dns.rdata.Rdata, ...]:
    """Records kept as text (``rdata.to_text()``, absolute names) back as
    dnspython rdata objects: the text form is dnspython's own, and it reads
    it back to equal objects."""
    value = dns.rdatatype.from_text(rdtype)
    return tuple(
        dns.rdata.from_text(dns.rdataclass.IN, value, text, relativize=False) for text in records
    )
