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

import dns.message
import dns.name
import dns.rdatatype

__all__ = ["EDNS_PAYLOAD", "Query"]

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
