"""The exchange with the nameservers as a sans-I/O generator (``steps``), and
the queries on the wire (``Query``), driven by hand: no socket, no sleep.

Both shells (``Upstream``: blocking sockets, ``AsyncUpstream``: asyncio) only
perform the commands ``steps`` yields, so what is checked here holds for both;
tests/test_resolver.py and tests/test_async.py run the same moves for real."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from safedns import ResolverConfig
from safedns._records import UpstreamFailure
from safedns._upstream import (
    Command,
    Finish,
    Open,
    Receive,
    Send,
    StartTcp,
    Upstream,
)
from safedns._wire import Query
from tests.conftest import FakeClock

CONFIG = ResolverConfig(
    nameservers=["127.0.0.1:5301", "127.0.0.2:5302"], timeout=1.0, attempts=1, server_backoff=30
)


@pytest.mark.parametrize(
    ("qname", "rdtype"),
    [
        ("m1.example.", "A"),
        ("Foo.Bar", "AAAA"),
        ("a\\.b.example.", "TXT"),
        ("x.", "HTTPS"),
        ("10.2.0.192.in-addr.arpa.", "PTR"),
        ("_sip._tcp.example.com.", "SRV"),
    ],
)
def test_query_wire_is_what_dnspython_writes(qname: str, rdtype: str) -> None:
    query = Query(qname, rdtype)
    query.id = 0xBEEF
    expected = dns.message.make_query(qname, rdtype, use_edns=0, payload=1232)
    expected.id = 0xBEEF
    assert bytes(query.wire) == expected.to_wire()
    assert query.id == 0xBEEF
    assert query.answered_by(dns.message.make_response(expected).to_wire())


def test_query_accepts_only_a_reply_to_its_own_question() -> None:
    query = Query("a.example.", "HTTPS")  # type 65: its octets read "A" as text
    query.id = 7
    good = dns.message.make_response(query.message())
    assert query.answered_by(good.to_wire())
    upper = dns.message.make_response(dns.message.make_query("A.EXAMPLE.", "HTTPS"))
    upper.id = 7
    assert query.answered_by(upper.to_wire())  # names compare case-insensitively
    for other in (("a.example.", 97), ("b.example.", "HTTPS"), ("a.example.", "A")):
        forged = dns.message.make_response(dns.message.make_query(*other))
        forged.id = 7
        assert not query.answered_by(forged.to_wire()), other
    not_a_response = query.message()
    assert not query.answered_by(not_a_response.to_wire())
    notify = dns.message.make_response(query.message())
    notify.set_opcode(dns.opcode.NOTIFY)
    assert not query.answered_by(notify.to_wire())
    assert not query.answered_by(b"\x00\x07\x80")  # shorter than a header
    wrong_id = dns.message.make_response(query.message())
    wrong_id.id = 8
    assert not query.answered_by(wrong_id.to_wire())
    # An error reply may come without the question (dnspython accepts it too).
    bare = bytearray(good.to_wire()[:12])
    bare[4:6] = b"\x00\x00"
    bare[3] = (bare[3] & 0xF0) | dns.rcode.SERVFAIL
    assert query.answered_by(bytes(bare))
    bare[3] = bare[3] & 0xF0  # NOERROR without a question: not an answer
    assert not query.answered_by(bytes(bare))


# -- the exchange, step by step ----------------------------------------------------


def _reply_to(datagram: bytes, *records: str, tc: bool = False, rcode: int = 0) -> bytes:
    response = dns.message.make_response(dns.message.from_wire(datagram))
    response.set_rcode(dns.rcode.Rcode(rcode))
    for line in records:
        name, ttl, rdclass, rtype, *data = line.split()
        response.answer.append(dns.rrset.from_text(name, int(ttl), rdclass, rtype, " ".join(data)))
    if tc:
        response.flags |= dns.flags.TC
    return response.to_wire()


class Script:
    """Drives ``steps`` and records the commands it yields."""

    def __init__(self, steps: Generator[Command, Any, list[Any]]) -> None:
        self.steps = steps
        self.seen: list[Command] = []
        self.result: list[Any] | None = None

    def send(self, reply: Any) -> Command | None:
        try:
            command = self.steps.send(reply)
        except StopIteration as done:
            self.result = done.value
            return None
        self.seen.append(command)
        return command


def test_one_server_try_sends_every_question_from_a_socket_of_its_own() -> None:
    observed: list[tuple[str, str, str, str]] = []
    config = CONFIG.replace(nameservers=["127.0.0.1:5301"])
    upstream = Upstream(config, on_query=lambda *a: observed.append(a))
    script = Script(upstream.steps([("a.example.", "A"), ("a.example.", "AAAA")]))
    assert script.send(None) == Open(2, ("127.0.0.1", 5301), 0)
    first = script.send(None)
    assert isinstance(first, Send) and first.index == 0
    # The AAAA gets a socket of its own (its own random source port), and
    # goes out before any reply: both travel together, as glibc sends them.
    assert script.send(None) == Open(2, ("127.0.0.1", 5301), 1)
    second = script.send(None)
    assert isinstance(second, Send) and second.index == 1
    assert [o[1:] for o in observed] == [("a.example.", "A", "udp"), ("a.example.", "AAAA", "udp")]
    receive = script.send(None)
    assert isinstance(receive, Receive)
    # Garbage, and a reply with a foreign ID, are ignored: the loop goes on.
    assert isinstance(script.send((0, b"\x00garbage")), Receive)
    foreign = bytearray(_reply_to(first.datagram))
    foreign[0] ^= 0xFF
    assert isinstance(script.send((0, bytes(foreign))), Receive)
    answer = _reply_to(second.datagram, "a.example. 60 IN AAAA 2001:db8::1")
    # A reply on the socket of another query is not its reply.
    assert isinstance(script.send((0, answer)), Receive)
    assert isinstance(script.send((1, answer)), Receive)
    # The A reply is truncated: TCP is started at once, the UDP loop goes on.
    tcp = script.send((0, _reply_to(first.datagram, tc=True)))
    assert isinstance(tcp, StartTcp) and tcp.index == 0 and tcp.host == "127.0.0.1"
    assert tcp.frame[2:] == first.datagram and tcp.timeout == 1.0
    assert observed[-1][1:] == ("a.example.", "A", "tcp")
    assert isinstance(script.send(None), Finish)  # nothing is waiting on UDP any more
    tcp_answer = _reply_to(first.datagram, "a.example. 60 IN A 192.0.2.1")
    assert script.send([(0, tcp_answer[:2] + b"garbage", 0.01)]) is None  # round over: one server
    assert script.result is not None
    a, aaaa = script.result
    assert isinstance(a, UpstreamFailure) and a.reason.startswith("tcp error: malformed")
    assert not isinstance(aaaa, UpstreamFailure)


def _open_and_send(script: Script, reply: Any, server: tuple[str, int], count: int) -> list[Send]:
    """Step through a try's opens and sends (``reply``: the answer to the
    previous command); the sends, in order."""
    sends = []
    for index in range(count):
        assert script.send(reply if index == 0 else None) == Open(2, server, index)
        send = script.send(None)
        assert isinstance(send, Send) and send.index == index
        sends.append(send)
    return sends


def test_timeout_refusal_and_network_errors_fail_over_and_back_off(clock: FakeClock) -> None:
    config = CONFIG.replace(attempts=2)
    upstream = Upstream(config, clock)
    first, second = ("127.0.0.1", 5301), ("127.0.0.2", 5302)
    script = Script(upstream.steps([("a.example.", "A"), ("b.example.", "A")]))
    sends = _open_and_send(script, None, first, 2)
    assert isinstance(script.send(None), Receive)
    # One reply is truncated, then the deadline passes (None) for the other.
    assert isinstance(script.send((0, _reply_to(sends[0].datagram, tc=True))), StartTcp)
    assert isinstance(script.send(None), Receive)
    assert isinstance(script.send(None), Finish)
    # The TCP exchange timed out; the server answered (TC), so it is not backed off.
    _open_and_send(script, [(0, TimeoutError("timed out"), 1.0)], second, 2)
    assert isinstance(script.send(None), Receive)
    # ICMP port unreachable, on each socket: its question fails at once.
    assert isinstance(script.send((0, ConnectionRefusedError())), Receive)
    assert isinstance(script.send((1, ConnectionRefusedError())), Finish)
    # Round 2: the first server cannot even be reached.
    assert script.send([]) == Open(2, first, 0)
    assert script.send(OSError(101, "Network is unreachable")) == Open(2, first, 1)
    assert script.send(OSError(101, "Network is unreachable")) == Finish()
    sends = _open_and_send(script, [], second, 2)
    assert isinstance(script.send(None), Receive)
    for index, name in enumerate(("a", "b")):
        script.send(
            (index, _reply_to(sends[index].datagram, f"{name}.example. 60 IN A 192.0.2.1"))
        )
    assert script.seen[-1] == Finish()
    assert script.send([]) is None
    assert script.result is not None
    assert not any(isinstance(r, UpstreamFailure) for r in script.result)
    # The first server heard nothing in round 2: backed off, tried last until it expires.
    assert upstream.server_order() == [second, first]
    clock.advance(31)
    assert upstream.server_order() == [first, second]


def test_a_network_error_fails_the_question_of_its_socket() -> None:
    upstream = Upstream(CONFIG.replace(nameservers=["127.0.0.1:5301"]))
    script = Script(upstream.steps([("a.example.", "A"), ("b.example.", "A")]))
    _open_and_send(script, None, ("127.0.0.1", 5301), 2)
    assert isinstance(script.send(None), Receive)
    assert isinstance(script.send((0, OSError(113, "No route to host"))), Receive)
    assert isinstance(script.send(None), Finish)  # the deadline, for the other
    assert script.send([]) is None
    assert script.result is not None
    assert [r.reason for r in script.result] == ["network error: No route to host", "timed out"]


def _truncated(upstream: Upstream) -> Script:
    """One question sent and answered truncated (TC); the script after that reply."""
    script = Script(upstream.steps([("a.example.", "A")]))
    script.send(None)
    send = script.send(None)
    assert isinstance(send, Send)
    script.send(None)
    script.send((0, _reply_to(send.datagram, tc=True)))
    return script


def test_tcp_failures_are_reported_as_before() -> None:
    for error, reason in (
        (TimeoutError("timed out"), "timed out (tcp)"),
        (
            EOFError("connection closed by the server"),
            "tcp error: connection closed by the server",
        ),
        (ConnectionResetError(104, "Connection reset by peer"), "tcp error: [Errno 104]"),
    ):
        script = _truncated(Upstream(CONFIG.replace(nameservers=["127.0.0.1:5301"])))
        assert isinstance(script.seen[-1], StartTcp)
        assert isinstance(script.send(None), Finish)
        assert script.send([(0, error, 0.5)]) is None
        assert script.result is not None
        assert script.result[0].reason.startswith(reason), (error, script.result[0].reason)


def test_servfail_moves_on_to_the_next_server_and_ids_are_fresh() -> None:
    upstream = Upstream(CONFIG)
    script = Script(upstream.steps([("a.example.", "A")]))
    ids = []
    for server in (("127.0.0.1", 5301), ("127.0.0.2", 5302)):
        assert script.send(None if not ids else []) == Open(2, server)
        send = script.send(None)
        assert isinstance(send, Send)
        ids.append(send.datagram[:2])
        assert isinstance(script.send(None), Receive)
        assert isinstance(script.send((0, _reply_to(send.datagram, rcode=2))), Finish)
    assert script.send([]) is None
    assert script.result is not None and script.result[0].reason == "SERVFAIL"
    # Each try has its own random ID (a 1 in 65536 chance of a repeat).
    assert len(ids) == 2


def test_every_send_after_a_questions_first_spends_a_budget_token() -> None:
    # The first send of a question was paid for by the caller (Core.admit);
    # the retransmissions ask ``spend``, and go out only with a token.
    asked: list[bool] = []
    tokens = iter([True])

    def spend() -> bool:
        asked.append(next(tokens, False))
        return asked[-1]

    upstream = Upstream(CONFIG.replace(attempts=2), spend=spend)
    script = Script(upstream.steps([("a.example.", "A")]))
    servers = [("127.0.0.1", 5301), ("127.0.0.2", 5302)]
    for reply, server in zip((None, []), servers, strict=True):
        assert script.send(reply) == Open(2, server)
        assert isinstance(script.send(None), Send)
        assert isinstance(script.send(None), Receive)
        assert isinstance(script.send(None), Finish)  # timed out
    # Round 2: the budget is empty, so nothing is sent to either server.
    assert script.send([]) == Finish()
    assert script.send([]) == Finish()
    assert script.send([]) is None
    assert asked == [True, False, False]
    assert script.result is not None and script.result[0].reason == "timed out"
    # A TCP retry after truncation is a query too: denied, it is not sent.
    script = _truncated(
        Upstream(CONFIG.replace(nameservers=["127.0.0.1:5301"]), spend=lambda: False)
    )
    assert isinstance(script.seen[-1], Finish)
    assert script.send([]) is None
    assert script.result is not None and script.result[0].reason == "query budget exhausted"


def test_single_request_asks_aaaa_once_a_is_answered() -> None:
    config = CONFIG.replace(nameservers=["127.0.0.1:5301"], single_request=True)
    script = Script(Upstream(config).steps([("a.example.", "A"), ("a.example.", "AAAA")]))
    server = ("127.0.0.1", 5301)
    (send,) = _open_and_send(script, None, server, 1)
    assert isinstance(script.send(None), Receive)
    assert isinstance(
        script.send((0, _reply_to(send.datagram, "a.example. 60 IN A 192.0.2.1"))), Finish
    )
    # Only now does the AAAA go out, in an exchange of its own.
    (send,) = _open_and_send(script, [], server, 1)
    assert dns.message.from_wire(send.datagram).question[0].rdtype == dns.rdatatype.AAAA
    assert isinstance(script.send(None), Receive)
    assert isinstance(script.send(None), Finish)  # no AAAA answer: timed out
    assert script.send([]) is None
    assert script.result is not None
    a, aaaa = script.result
    assert not isinstance(a, UpstreamFailure) and aaaa.reason == "timed out"


def test_use_vc_asks_every_question_over_tcp() -> None:
    observed: list[tuple[str, str, str, str]] = []
    config = CONFIG.replace(nameservers=["127.0.0.1:5301"], use_vc=True)
    upstream = Upstream(config, on_query=lambda *a: observed.append(a))
    script = Script(upstream.steps([("a.example.", "A"), ("a.example.", "AAAA")]))
    starts = [script.send(None), script.send(None)]
    assert [type(c) for c in starts] == [StartTcp, StartTcp]
    assert isinstance(script.send(None), Finish)
    assert [o[3] for o in observed] == ["tcp", "tcp"]
    assert not any(isinstance(c, (Open, Send, Receive)) for c in script.seen)
    frames = [c.frame for c in starts if isinstance(c, StartTcp)]
    replies = [
        (0, _reply_to(frames[0][2:], "a.example. 60 IN A 192.0.2.1"), 0.01),
        (1, _reply_to(frames[1][2:], "a.example. 60 IN AAAA 2001:db8::1"), 0.01),
    ]
    assert script.send(replies) is None
    assert script.result is not None
    assert not any(isinstance(r, UpstreamFailure) for r in script.result)
