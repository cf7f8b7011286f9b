"""What a DNS response means for one question, and the answer objects callers get.

Pure: no sockets, no clock. ``interpret`` turns a dnspython response into a
``Positive`` or ``Negative`` result (or raises ``UpstreamFailure``); the cache
stores those results; ``Answer`` is what ``Resolver.resolve`` returns.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

__all__ = [
    "Answer",
    "Negative",
    "Positive",
    "Result",
    "UpstreamFailure",
    "interpret",
]

MAX_CNAME_HOPS = 16


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
    """The answer to one lookup. Immutable; a cache hit may hand out the same
    object again.

    - ``name``: the absolute name (trailing dot) that answered, after the
      search list; ``canonical_name``: where its CNAME chain ended.
    - ``aliases``: the owners of the CNAME chain from ``name`` to
      ``canonical_name`` (``name`` first; empty when no CNAME was followed).
    - ``rdtype``: the type asked for, e.g. ``"A"``.
    - ``addresses``: the addresses (A/AAAA), a new list on each access;
      ``records``: every record's data as text, whatever the type.
    - ``ttl``: whole seconds left before the answer expires (counts down).
    - ``from_cache``: answered without asking upstream; ``stale``: served
      after its TTL ran out because upstream failed (RFC 8767).
    """

    __slots__ = (
        "_clock",
        "_expires",
        "_records",
        "_refresh_at",
        "aliases",
        "canonical_name",
        "from_cache",
        "name",
        "rdtype",
        "stale",
    )

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
        self.name = name
        self.aliases = aliases
        self.rdtype = rdtype
        self._records = records
        self.canonical_name = canonical_name
        self._expires = expires
        #: Until when a resolver may hand this object out again without asking
        #: its cache (the refresh-ahead point, or earlier).
        self._refresh_at = expires if refresh_at is None else refresh_at
        self._clock = clock
        self.from_cache = from_cache
        self.stale = stale

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

    @property
    def valid_until(self) -> float:
        """Until when a front end may reuse this answer without asking the
        resolver again, on its clock: the refresh-ahead point, or earlier when
        another family of the same lookup failed (``failure_recheck``)."""
        return self._refresh_at

    def __repr__(self) -> str:
        flags = " stale" if self.stale else (" cached" if self.from_cache else "")
        return f"<Answer {self.name} {self.rdtype} {list(self._records)} ttl={self.ttl}{flags}>"
