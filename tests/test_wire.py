"""``read_reply``: the common replies read off the wire without dnspython must
mean exactly what ``interpret`` makes of dnspython's parse of the same octets.

Replies are built with dnspython (compressed names, merged RRsets, CNAME
chains and loops, SOA and NS records, OPT) and compared both ways; whatever
``read_reply`` declines (None) goes to dnspython in the resolver."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safedns._records import Negative, Positive, UpstreamFailure, interpret
from safedns._wire import WireReply, read_reply

QNAME = "www.example.com."
NAMES = ["www.example.com.", "WWW.Example.COM.", "cdn.example.net.", "edge.example.org.", "x."]
A_VALUES = ["192.0.2.1", "192.0.2.2", "198.51.100.7"]
AAAA_VALUES = ["2001:db8::1", "2001:db8:0:0:1::1", "::ffff:192.0.2.1", "2001:db8::"]
SOA = "ns.example.com. hostmaster.example.com. 1 3600 600 86400 {minimum}"


def _rrset(name: str, ttl: int, rdtype: str, value: str) -> dns.rrset.RRset:
    return dns.rrset.from_text(name, ttl, "IN", rdtype, value)


def _reply(
    rdtype: str,
    answer: list[tuple[str, int, str, str]],
    authority: list[tuple[str, int, str, str]] = (),  # type: ignore[assignment]
    rcode: int = 0,
    edns: bool = True,
) -> bytes:
    query = dns.message.make_query(QNAME, rdtype, use_edns=0 if edns else None, payload=1232)
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.Rcode(rcode))
    # One RR per RRset, as a server may send them (dnspython merges them when reading).
    for section, records in ((response.answer, answer), (response.authority, authority)):
        for name, ttl, rtype, value in records:
            section.append(_rrset(name, ttl, rtype, value))
    return response.to_wire()


def _same(data: bytes, rdtype: str) -> WireReply | None:
    """read_reply agrees with dnspython + interpret, or declines."""
    fast = read_reply(data, QNAME, rdtype)
    if fast is None:
        return None
    message = dns.message.from_wire(data)
    assert fast.id == message.id and fast.flags == message.flags
    assert fast.rcode() == message.rcode()
    try:
        slow: Positive | Negative | UpstreamFailure = interpret(message, QNAME, rdtype)
    except UpstreamFailure as failure:
        slow = failure
    assert fast.result == slow
    return fast


def test_common_replies_are_read_off_the_wire() -> None:
    positive = _reply("A", [(QNAME, 60, "A", "192.0.2.1"), (QNAME, 30, "A", "192.0.2.2")])
    fast = _same(positive, "A")
    assert fast is not None and fast.result == Positive(("192.0.2.1", "192.0.2.2"), QNAME, 30.0)
    chain = _reply(
        "AAAA",
        [
            (QNAME, 300, "CNAME", "cdn.example.net."),
            ("cdn.example.net.", 20, "AAAA", "2001:db8::1"),
        ],
    )
    fast = _same(chain, "AAAA")
    assert fast is not None
    assert fast.result == Positive(("2001:db8::1",), "cdn.example.net.", 20.0, (QNAME,))
    nxdomain = _reply("A", [], [("example.com.", 900, "SOA", SOA.format(minimum=60))], rcode=3)
    fast = _same(nxdomain, "A")
    assert fast is not None and fast.result == Negative(True, QNAME, 60.0)
    bare_nxdomain = _reply("A", [], rcode=3)  # as dnsmasq answers: no SOA
    fast = _same(bare_nxdomain, "A")
    assert fast is not None and fast.result == Negative(True, QNAME, None)
    nodata = _reply("AAAA", [], [("example.com.", 30, "SOA", SOA.format(minimum=300))])
    fast = _same(nodata, "AAAA")
    assert fast is not None and fast.result == Negative(False, QNAME, 30.0)
    assert _same(_reply("A", [(QNAME, 5, "A", "192.0.2.9")], edns=False), "A") is not None


def test_anything_unusual_is_left_to_dnspython() -> None:
    plain = _reply("A", [(QNAME, 60, "A", "192.0.2.1")])
    assert read_reply(plain, QNAME, "MX") is None  # only A and AAAA questions
    truncated = bytearray(plain)
    truncated[2] |= dns.flags.TC >> 8
    assert read_reply(bytes(truncated), QNAME, "A") is None
    assert read_reply(_reply("A", [], rcode=2), QNAME, "A") is None  # SERVFAIL
    assert read_reply(plain + b"\x00", QNAME, "A") is None  # trailing octets
    assert read_reply(plain[:-3], QNAME, "A") is None  # cut short
    txt = _reply("A", [(QNAME, 60, "TXT", '"hello"')])
    assert read_reply(txt, QNAME, "A") is None
    loop = _reply(
        "A", [(QNAME, 60, "CNAME", "cdn.example.net."), ("cdn.example.net.", 60, "CNAME", QNAME)]
    )
    assert read_reply(loop, QNAME, "A") is None  # interpret reports the loop
    escaped = _reply(
        "A", [(QNAME, 60, "CNAME", "a\\.b.example."), ("a\\.b.example.", 60, "A", "192.0.2.1")]
    )
    assert read_reply(escaped, QNAME, "A") is None
    message = dns.message.from_wire(plain)
    message.additional.append(_rrset("ns.example.com.", 60, "A", "192.0.2.53"))
    assert read_reply(message.to_wire(), QNAME, "A") is None  # glue: dnspython checks it


@st.composite
def replies(draw: st.DrawFn) -> tuple[bytes, str]:
    rdtype = draw(st.sampled_from(["A", "AAAA"]))
    records: list[tuple[str, int, str, str]] = []
    for _ in range(draw(st.integers(0, 7))):
        rtype = draw(st.sampled_from(["A", "AAAA", "CNAME"]))
        value = draw(
            st.sampled_from(
                {"A": A_VALUES, "AAAA": AAAA_VALUES, "CNAME": [n for n in NAMES if n != "x."]}[
                    rtype
                ]
            )
        )
        records.append((draw(st.sampled_from(NAMES)), draw(st.integers(0, 7200)), rtype, value))
    authority: list[tuple[str, int, str, str]] = []
    for _ in range(draw(st.integers(0, 3))):
        if draw(st.booleans()):
            minimum = draw(st.integers(0, 7200))
            authority.append(
                (
                    draw(st.sampled_from(["example.com.", "Example.COM.", "example.net."])),
                    draw(st.integers(0, 7200)),
                    "SOA",
                    SOA.format(minimum=minimum),
                )
            )
        else:
            authority.append(("example.com.", 60, "NS", draw(st.sampled_from(NAMES))))
    rcode = draw(st.sampled_from([0, 3]))
    return _reply(rdtype, records, authority, rcode, draw(st.booleans())), rdtype


@settings(max_examples=400)
@given(replies())
def test_read_reply_means_what_interpret_means(case: tuple[bytes, str]) -> None:
    data, rdtype = case
    _same(data, rdtype)


@pytest.mark.parametrize("rdtype", ["A", "AAAA"])
def test_most_generated_replies_take_the_fast_path(rdtype: str) -> None:
    fast = 0
    for ttl in range(50):
        data = _reply(rdtype, [(QNAME, ttl, "CNAME", "cdn.example.net.")])
        fast += _same(data, rdtype) is not None
    assert fast == 50
