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


def interpret(response: dns.message.Message, qname: str, rdtype: str) -> list[tuple[str, Result]]:
    """What ``response`` says about (qname, rdtype), plus what it says about the
    names its CNAME chain passes through.

    Returns ``[(name, result), ...]``: the first item is for ``qname``; further
    items are for CNAME targets that the response also answered, so they can be
    cached under their own names. Raises ``UpstreamFailure`` for SERVFAIL,
    REFUSED and every other rcode that is not an answer.
    """
    rcode = response.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        raise UpstreamFailure(dns.rcode.to_text(rcode))
    qtype = dns.rdatatype.from_text(rdtype)
    current = dns.name.from_text(qname)
    chain: list[tuple[str, float]] = []  # (owner, CNAME ttl) along the way
    for _ in range(MAX_CNAME_HOPS):
        rrset = _find(response, current, qtype)
        if rrset is not None:
            data_ttl = float(rrset.ttl)
            records = tuple(rd.to_text() for rd in rrset)
            canonical = _text(current) if chain else qname
            ttl = min([data_ttl, *(t for _, t in chain)])
            aliases = tuple(owner for owner, _ in chain)
            results: list[tuple[str, Result]] = [
                (qname, Positive(records, canonical, ttl, aliases))
            ]
            if chain:
                results.append((canonical, Positive(records, canonical, data_ttl)))
            return results
        if qtype == dns.rdatatype.CNAME:
            break
        cname = _find(response, current, dns.rdatatype.CNAME)
        if cname is None:
            break
        chain.append((_text(current), float(cname.ttl)))
        current = cname[0].target
    canonical = _text(current)
    soa_ttl = _soa_ttl(response)
    if soa_ttl is not None and chain:
        soa_ttl = min([soa_ttl, *(t for _, t in chain)])
    nxdomain = rcode == dns.rcode.NXDOMAIN
    results = [(qname, Negative(nxdomain and not chain, canonical, soa_ttl))]
    if chain:
        results.append((canonical, Negative(nxdomain, canonical, _soa_ttl(response))))
    return results


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

    def __repr__(self) -> str:
        flags = " stale" if self.stale else (" cached" if self.from_cache else "")
        return f"<Answer {self.name} {self.rdtype} {list(self._records)} ttl={self.ttl}{flags}>"
