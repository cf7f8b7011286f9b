"""One exchange with the nameservers, sans-I/O: its commands (``Open``,
``Send``, ``Receive``, ``StartTcp``, ``Finish``) and ``Exchange``, which holds
its questions, gives each try fresh query IDs, validates every reply (on the
socket of the query it answers, with the query's ID and question) and keeps
the results and their metrics. ``_upstream.py`` decides the moves
(``steps``) and performs them.
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dns.flags
import dns.message
import dns.rcode

from safedns._metrics import MALFORMED, NETWORK_ERROR, TIMEOUT, TRUNCATED, UpstreamMetrics
from safedns._records import UpstreamFailure
from safedns._wire import Query, WireReply, read_reply

__all__ = [
    "BUDGET_SPENT",
    "Command",
    "Exchange",
    "Finish",
    "Open",
    "Receive",
    "Reply",
    "Response",
    "Send",
    "Server",
    "StartTcp",
    "TcpDone",
    "TcpResult",
    "is_truncated",
    "server_text",
]

Server = tuple[str, int]
#: A reply as dnspython parsed it, or as ``read_reply`` read it.
Reply = dns.message.Message | WireReply
Response = Reply | UpstreamFailure

_ANSWERS = (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
#: Why a question the budget would not let go out again failed.
BUDGET_SPENT = "query budget exhausted"


def server_text(server: Server) -> str:
    host, port = server
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


#: What a shell's TCP exchange ended with: the reply's octets, or the exception met.
TcpResult = bytes | BaseException
#: A TCP exchange done, as the shell reports it at ``Finish``: the question's
#: index, what it ended with, and how long it took (seconds).
TcpDone = tuple[int, TcpResult, float]


@dataclass(frozen=True, slots=True)
class Open:
    """Open a UDP socket for question ``index``, connected to ``address``: a
    socket of its own, so a random source port of its own (closing the one
    open for that question, if any). The shell answers None, or the
    ``OSError`` it met."""

    family: int
    address: tuple[Any, ...]
    index: int = 0


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``datagram`` on question ``index``'s socket: None, or the ``OSError`` met."""

    datagram: bytes
    index: int = 0


@dataclass(frozen=True, slots=True)
class Receive:
    """Wait until ``deadline`` (``time.monotonic``) for one datagram on any open
    socket: ``(index of the socket's question, its octets or the OSError met)``,
    or None once the deadline passed."""

    deadline: float


@dataclass(frozen=True, slots=True)
class StartTcp:
    """Ask question ``index`` again over TCP (``frame``: the framed query), with
    its own ``timeout``, beside or after the UDP receive loop (the shell's
    choice; the UDP deadline is not spent on it). The shell answers None and
    reports the result at ``Finish``."""

    index: int
    host: str
    port: int
    frame: bytes
    timeout: float


@dataclass(frozen=True, slots=True)
class Finish:
    """Close every UDP socket and complete every ``StartTcp`` of this server try;
    answer ``[(index, reply octets or the exception met, seconds it took), ...]``."""


Command = Open | Send | Receive | StartTcp | Finish


class Exchange:
    """One batch of questions on its way through the nameservers (sans-I/O).

    With ``metrics``, every query sent in a try gets exactly one result
    there: its reply's RCODE (with the latency since the try began), or
    truncated, or a failure; what is still open when the next try starts (or
    at ``outcome``) timed out. ``clock`` times the replies (real time)."""

    def __init__(
        self,
        questions: Sequence[tuple[str, str]],
        metrics: UpstreamMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.questions = list(questions)
        self.queries = [Query(qname, rdtype) for qname, rdtype in questions]
        self.results: list[Response | None] = [None] * len(self.queries)
        self.errors = ["timed out"] * len(self.queries)
        self._metrics = metrics
        self._clock = clock
        self._server = ""
        #: The queries of this try still waiting for a result: index -> sent at.
        self._open: dict[int, float] = {}
        #: The questions sent at least once (their first send was paid for).
        self.sent: set[int] = set()

    def pending(self) -> list[int]:
        return [i for i, r in enumerate(self.results) if r is None]

    def start_try(self, pending: list[int], server: Server | None = None) -> dict[int, int]:
        """Give each pending query a fresh random ID; returns {id: index}.
        ``server``: where this try sends them (for the metrics)."""
        self._close_try()
        if self._metrics is not None and server is not None:
            self._server = server_text(server)
            self._open = dict.fromkeys(pending, self._clock())
        waiting: dict[int, int] = {}
        ids = iter(os.urandom(2 * len(pending) + 8))
        for i in pending:
            qid = next(ids, 0) << 8 | next(ids, 0)
            while qid in waiting:
                qid = int.from_bytes(os.urandom(2), "big")
            self.queries[i].id = qid
            waiting[qid] = i
        return waiting

    def match(
        self, data: bytes, waiting: dict[int, int], index: int | None = None
    ) -> tuple[int, Reply] | None:
        """The (index, response) a datagram answers, or None for anything that
        is not a reply to one of our waiting queries (``index``: the question
        whose socket it came on, which it must answer). The common replies
        are read straight off the wire (``read_reply``), the others by
        dnspython."""
        if len(data) < 2:
            return None
        qid = data[0] << 8 | data[1]
        i = waiting.get(qid)
        if i is None or index not in (None, i) or not self.queries[i].answered_by(data):
            return None
        qname, rdtype = self.questions[i]
        response: Reply | None = read_reply(data, qname, rdtype) or _parse(data)
        if response is None:
            return None
        del waiting[qid]
        return i, response

    def receive(
        self, data: bytes, waiting: dict[int, int], index: int | None = None
    ) -> tuple[int, bool] | None:
        """Take one datagram (``index``: the question whose socket it came on):
        None when it answers none of our waiting queries; else (index,
        needs_tcp). A complete answer is accepted here; a truncated one must
        be asked again over TCP."""
        matched = self.match(data, waiting, index)
        if matched is None:
            return None
        i, response = matched
        if is_truncated(response):
            self._answered(i, TRUNCATED)
            return i, True
        self.accept(i, response)
        return i, False

    def tcp_frame(self, i: int) -> bytes:
        """Question ``i`` as a TCP message: two length octets, then the wire
        (asked for when the TCP query is handed to the shell)."""
        self._reopen(i)
        wire = self.queries[i].wire
        return struct.pack("!H", len(wire)) + wire

    @staticmethod
    def tcp_length(header: bytes) -> int:
        """The length of the TCP message whose two-octet ``header`` came in."""
        (length,) = struct.unpack("!H", header)
        return int(length)

    def receive_tcp(self, i: int, data: bytes) -> None:
        """Take the TCP reply to question ``i``: accepted when it parses and
        answers the query (ID and question), a failure otherwise. Both shells
        validate TCP replies here, as they do datagrams in ``receive``."""
        try:
            response = dns.message.from_wire(data)
        except Exception as exc:  # garbage on the wire, whatever it is
            self.fail([i], f"tcp error: malformed reply: {exc}", MALFORMED)
            return
        if not self.queries[i].answered_by(data):
            self.fail([i], "tcp error: mismatched reply", MALFORMED)
            return
        self.accept(i, response)

    def tcp_done(self, i: int, reply: TcpResult, seconds: float | None = None) -> None:
        """Take what the TCP exchange of question ``i`` ended with: the reply's
        octets, or the exception the shell met (a timeout, a socket error, the
        server closing early); ``seconds``: how long it took (the latency the
        metrics record), when the shell measured it."""
        if seconds is not None and i in self._open:
            self._open[i] = self._clock() - seconds
        if isinstance(reply, bytes):
            self.receive_tcp(i, reply)
        elif isinstance(reply, (TimeoutError, asyncio.TimeoutError)):
            self.fail([i], "timed out (tcp)")
        else:
            self.fail([i], f"tcp error: {reply}")

    def accept(self, i: int, response: Reply) -> None:
        rcode = response.rcode()
        text = dns.rcode.to_text(rcode)
        self._answered(i, text)
        if rcode in _ANSWERS:
            self.results[i] = response
        else:
            # SERVFAIL, REFUSED, NOTIMP, FORMERR: try the next server, as glibc does.
            self.errors[i] = text

    def fail(self, indices: Sequence[int], reason: str, result: str | None = None) -> None:
        """The queries ``indices`` failed for ``reason``; ``result`` (for the
        metrics) defaults to a timeout or a network error, as ``reason`` says."""
        if result is None:
            result = TIMEOUT if reason.startswith("timed out") else NETWORK_ERROR
        for i in indices:
            if self.results[i] is None:
                self.errors[i] = reason
            self._failed(i, result)

    def lost(self, i: int, waiting: dict[int, int], reason: str) -> None:
        """Question ``i``'s socket failed (``reason``): it waits no more."""
        self._forget(i, waiting)
        self.fail([i], reason)

    def unsent(self, i: int, waiting: dict[int, int], reason: str | None = None) -> None:
        """Question ``i`` is not sent in this try (the budget denied it): no
        result for the metrics; ``reason``, if given, is its failure."""
        self._forget(i, waiting)
        self._open.pop(i, None)
        if reason is not None and self.results[i] is None:
            self.errors[i] = reason

    def _forget(self, i: int, waiting: dict[int, int]) -> None:
        qid = self.queries[i].id
        if waiting.get(qid) == i:
            del waiting[qid]

    def outcome(self) -> list[Response]:
        self._close_try()
        return [
            r if r is not None else UpstreamFailure(self.errors[i])
            for i, r in enumerate(self.results)
        ]

    # -- metrics: one result per query sent ---------------------------------

    def _answered(self, i: int, result: str) -> None:
        sent = self._open.pop(i, None)
        if sent is not None and self._metrics is not None:
            self._metrics.answered(self._server, result, self._clock() - sent)

    def _failed(self, i: int, result: str) -> None:
        if self._open.pop(i, None) is not None and self._metrics is not None:
            self._metrics.failed(self._server, result)

    def _reopen(self, i: int) -> None:
        if self._metrics is not None and self._server:
            self._open[i] = self._clock()

    def _close_try(self) -> None:
        """The try is over: what is still open timed out."""
        if self._open and self._metrics is not None:
            for _ in self._open:
                self._metrics.failed(self._server, TIMEOUT)
        self._open = {}


def is_truncated(response: Reply) -> bool:
    return bool(response.flags & dns.flags.TC)


def _parse(data: bytes) -> dns.message.Message | None:
    try:
        return dns.message.from_wire(data)
    except Exception:  # garbage on the wire is ignored, whatever it is
        return None
