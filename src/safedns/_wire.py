"""DNS queries on the wire, without dnspython's per-query object work (sans-I/O).

A ``Query`` is built once per question: the twelve-octet header (RD set, one
question, one additional record), the question, and an EDNS0 OPT record
advertising ``EDNS_PAYLOAD`` octets, exactly the octets that
``dns.message.make_query(qname, rdtype, use_edns=0, payload=EDNS_PAYLOAD)``
writes. A new try only patches the two ID octets. ``answered_by`` checks a
reply's header and question on the wire, so that only a datagram that really
answers the query is handed to dnspython's parser: what ``Message.is_response``
checks (ID, QR, opcode, the question, case-insensitively; an error reply may
omit the question), without parsing anything else first.
"""

from __future__ import annotations

import re

import dns.ipv6
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from safedns._records import MAX_CNAME_HOPS, Negative, Positive

__all__ = ["EDNS_PAYLOAD", "Query", "WireReply", "read_reply"]

EDNS_PAYLOAD = 1232

#: Header after the ID: flags RD, QDCOUNT 1, ANCOUNT 0, NSCOUNT 0, ARCOUNT 1.
_HEADER_TAIL = b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01"
#: The OPT record: root owner, TYPE 41, CLASS = payload size, TTL 0 (no
#: extended rcode, version 0, no DO), RDLENGTH 0.
_OPT = b"\x00\x00\x29" + EDNS_PAYLOAD.to_bytes(2, "big") + b"\x00\x00\x00\x00\x00\x00"
_CLASS_IN = b"\x00\x01"
#: A name whose labels need no escaping: encoded label by label, no dnspython.
_PLAIN = re.compile(r"(?:[A-Za-z0-9_*-]{1,63}\.)+")
#: rcodes for which a reply may come without a question section (as dnspython allows).
_QUESTIONLESS_RCODES = frozenset((1, 2, 4, 5))  # FORMERR, SERVFAIL, NOTIMP, REFUSED

_TYPES: dict[str, bytes] = {}


def _type_octets(rdtype: str) -> bytes:
    octets = _TYPES.get(rdtype)
    if octets is None:
        octets = int(dns.rdatatype.from_text(rdtype)).to_bytes(2, "big")
        if len(_TYPES) < 256:
            _TYPES[rdtype] = octets
    return octets


def _name_octets(qname: str) -> bytes:
    absolute = qname if qname.endswith(".") else qname + "."
    if len(absolute) <= 254 and _PLAIN.fullmatch(absolute):
        labels = absolute[:-1].split(".")
        return b"".join(len(label).to_bytes(1, "big") + label.encode() for label in labels) + (
            b"\x00"
        )
    wire = dns.name.from_text(absolute).to_wire()
    assert wire is not None  # to_wire() without a file returns the octets
    return wire


class Query:
    """One question as a query on the wire; ``id`` is patched in place."""

    __slots__ = ("_end", "_name", "_tail", "wire")

    def __init__(self, qname: str, rdtype: str) -> None:
        name = _name_octets(qname)
        tail = _type_octets(rdtype) + _CLASS_IN
        #: What a reply must echo after its header: the name (compared
        #: case-insensitively; length octets are below "A"), type and class.
        self._name = name.lower()
        self._tail = tail
        self._end = 12 + len(name)
        self.wire = bytearray(b"\x00\x00" + _HEADER_TAIL + name + tail + _OPT)

    @property
    def id(self) -> int:
        return int.from_bytes(self.wire[:2], "big")

    @id.setter
    def id(self, qid: int) -> None:
        self.wire[:2] = qid.to_bytes(2, "big")

    def message(self) -> dns.message.Message:
        """The query as a dnspython message (for tests and diagnostics)."""
        return dns.message.from_wire(bytes(self.wire))

    def answered_by(self, data: bytes) -> bool:
        """True when ``data`` is a reply to this query, judged on its header and
        question alone: same ID, QR set, opcode QUERY, and the same question
        (an error reply may carry none)."""
        wire = self.wire
        if len(data) < 12 or data[0] != wire[0] or data[1] != wire[1]:
            return False
        flags = data[2]
        if not flags & 0x80 or flags & 0x78:  # not a response, or not opcode QUERY
            return False
        qdcount = (data[4] << 8) | data[5]
        if qdcount == 0:
            return data[3] & 0x0F in _QUESTIONLESS_RCODES
        end = self._end
        return (
            qdcount == 1
            and data[end : end + 4] == self._tail
            and data[12:end].lower() == self._name
        )


# -- replies -----------------------------------------------------------------------

_A, _NS, _CNAME, _SOA, _AAAA, _OPT_TYPE = 1, 2, 5, 6, 28, 41
_FAST_QTYPES = {"A": _A, "AAAA": _AAAA}
_SAFE_LABEL = re.compile(rb"[A-Za-z0-9_*-]{1,63}")


class WireReply:
    """A reply read straight off the wire, for the common case only: an A or
    AAAA question answered NOERROR or NXDOMAIN, not truncated, with nothing
    but A, AAAA and CNAME records in the answer, NS or SOA records in the
    authority (all of class IN) and at most an OPT record in the additional
    section. ``result`` is what ``interpret`` would make of
    the same octets (the test suite compares both over many replies)."""

    __slots__ = ("_rcode", "flags", "id", "result")

    def __init__(self, qid: int, flags: int, rcode: int, result: Positive | Negative) -> None:
        self.id = qid
        self.flags = flags
        self._rcode = rcode
        self.result = result

    def rcode(self) -> dns.rcode.Rcode:
        return dns.rcode.Rcode(self._rcode)


def _name(data: bytes, offset: int) -> tuple[str, int] | None:
    """The lower-case text of the name at ``offset`` (compression followed) and
    the offset after it; None for anything unusual (dnspython decides then)."""
    labels: list[str] = []
    end = -1
    hops = 0
    length = len(data)
    while True:
        if offset >= length:
            return None
        size = data[offset]
        if size == 0:
            offset += 1
            break
        if size >= 0xC0:
            if offset + 1 >= length or hops > 64:
                return None
            if end < 0:
                end = offset + 2
            target = ((size & 0x3F) << 8) | data[offset + 1]
            if target >= offset:  # only backwards, as dnspython requires
                return None
            offset = target
            hops += 1
            continue
        if size > 63 or offset + 1 + size > length:
            return None
        label = data[offset + 1 : offset + 1 + size]
        if not _SAFE_LABEL.fullmatch(label):
            return None
        labels.append(label.decode("ascii").lower())
        offset += 1 + size
    text = ".".join(labels) + "." if labels else "."
    if len(text) > 254:
        return None
    return text, (offset if end < 0 else end)


def read_reply(data: bytes, qname: str, rdtype: str) -> WireReply | None:
    """``data`` (a reply already matched to the query ``(qname, rdtype)`` by
    ``Query.answered_by``) read without dnspython, or None when it is not the
    common case ``WireReply`` covers or looks wrong in any way: then dnspython
    parses it and ``interpret`` reads it, as for every other reply."""
    qtype = _FAST_QTYPES.get(rdtype)
    if qtype is None or len(data) < 12:
        return None
    flags = (data[2] << 8) | data[3]
    rcode = flags & 0x0F
    if flags & 0x0200 or rcode not in (0, 3):  # truncated, or not an answer
        return None
    qd, an, ns, ar = (int.from_bytes(data[i : i + 2], "big") for i in (4, 6, 8, 10))
    if qd != 1:
        return None
    question = _name(data, 12)
    if question is None:
        return None
    offset = question[1] + 4
    # (name, type) -> (min TTL, values in order); first SOA's TTL and MINIMUM.
    answer: dict[tuple[str, int], tuple[int, list[str]]] = {}
    soa: tuple[int, int] | None = None
    soa_owner = ""
    opt = False
    for section, count in ((0, an), (1, ns), (2, ar)):
        for _ in range(count):
            owner = _name(data, offset)
            if owner is None:
                return None
            offset = owner[1]
            if offset + 10 > len(data):
                return None
            rtype = (data[offset] << 8) | data[offset + 1]
            rclass = (data[offset + 2] << 8) | data[offset + 3]
            ttl = int.from_bytes(data[offset + 4 : offset + 8], "big")
            size = (data[offset + 8] << 8) | data[offset + 9]
            start = offset + 10
            offset = start + size
            if offset > len(data):
                return None
            if section == 2:
                # Only one OPT, owned by the root, without an extended rcode
                # (dnspython would fold it into the rcode); anything else in
                # the additional section goes to dnspython.
                if rtype != _OPT_TYPE or opt or owner[0] != "." or data[start - 6] != 0:
                    return None
                opt = True
                continue
            if rclass != 1 or ttl > 0x7FFFFFFF:
                return None
            if section == 1:
                if rtype == _SOA:
                    mname = _name(data, start)
                    rname = None if mname is None else _name(data, mname[1])
                    if rname is None or rname[1] + 20 != offset:
                        return None
                    minimum = int.from_bytes(data[offset - 4 : offset], "big")
                    if soa is None:
                        soa_owner, soa = owner[0], (ttl, minimum)
                    elif owner[0] == soa_owner:
                        # One RRset of a singleton type: the least TTL, the last data.
                        soa = (min(soa[0], ttl), minimum)
                elif rtype == _NS:
                    target = _name(data, start)
                    if target is None or target[1] != offset:
                        return None
                else:
                    return None
                continue
            if rtype == _A and size == 4:
                value = ".".join(map(str, data[start:offset]))
            elif rtype == _AAAA and size == 16:
                value = dns.ipv6.inet_ntoa(data[start:offset])
            elif rtype == _CNAME:
                target = _name(data, start)
                if target is None or target[1] != offset:
                    return None
                value = target[0]
            else:
                return None
            key = (owner[0], rtype)
            known = answer.get(key)
            if known is None:
                answer[key] = (ttl, [value])
            elif rtype == _CNAME:  # a singleton type, as dnspython keeps it: the last data
                answer[key] = (min(known[0], ttl), [value])
            else:  # one RRset: the least TTL, each data once
                if value not in known[1]:
                    known[1].append(value)
                answer[key] = (min(known[0], ttl), known[1])
    if offset != len(data):
        return None
    result = _meaning(answer, soa, rcode, qname, qtype)
    if result is None:
        return None
    return WireReply((data[0] << 8) | data[1], flags, rcode, result)


def _meaning(
    answer: dict[tuple[str, int], tuple[int, list[str]]],
    soa: tuple[int, int] | None,
    rcode: int,
    qname: str,
    qtype: int,
) -> Positive | Negative | None:
    """``interpret``'s reading of the records (None for a CNAME loop or an
    overlong chain: ``interpret`` reports those)."""
    current = qname.lower()
    seen = {current}
    chain_ttls: list[float] = []
    aliases: list[str] = []
    for _ in range(MAX_CNAME_HOPS + 1):
        found = answer.get((current, qtype))
        if found is not None:
            canonical = current if chain_ttls else qname
            ttl = min([float(found[0]), *chain_ttls])
            return Positive(tuple(found[1]), canonical, ttl, tuple(aliases))
        cname = answer.get((current, _CNAME))
        if cname is None:
            break
        chain_ttls.append(float(cname[0]))
        aliases.append(current)
        current = cname[1][0]
        if current in seen:
            return None
        seen.add(current)
    else:
        return None
    soa_ttl = None if soa is None else float(min(soa))
    if soa_ttl is not None and chain_ttls:
        soa_ttl = min([soa_ttl, *chain_ttls])
    return Negative(rcode == 3 and not chain_ttls, current, soa_ttl)
