"""Talking to nameservers: the exchange as a sans-I/O generator, and the two
shells that perform its I/O, ``Upstream`` (sockets) and ``AsyncUpstream``
(asyncio).

``_Servers.steps`` decides every move of an exchange, and ``Exchange`` holds
its questions and validates every reply: every question of a batch goes out
at once, each over a connected UDP socket of its own per nameserver try (so
A and AAAA travel together, as glibc sends them, but from two random source
ports: two queries from one port are what the Linux conntrack insertion race
drops, kubernetes/kubernetes#56903); a truncated answer is asked again
over TCP with its own timeout (the shells run it after the UDP receive loop,
or beside it, never on the UDP deadline); the nameservers are walked in
order (or rotated) for ``attempts`` rounds; the result is one response or
one ``UpstreamFailure`` per question. A reply is accepted only if it comes
from the server asked (the socket is connected), on the socket of the query
it answers, carries the query's ID and echoes its question (checked on the
wire by ``Query.answered_by`` before dnspython parses it); anything else,
garbage included, is ignored.

glibc's options change the moves: ``single_request`` asks the questions one
after another (AAAA once A's exchange is over), ``use_vc`` asks every one
over TCP. Each question's first send is paid for by the caller (the
resolver's query budget, ``Core.admit``); every later one, a retransmission
or a TCP retry after truncation, spends a token of its own through
``spend`` (a question the budget denies is not sent again), so upstream
never sees more than the budget allows.

The generator yields ``Open``, ``Send``, ``Receive``, ``StartTcp`` and
``Finish`` commands and takes what came of each; the shells do nothing
else. A nameserver that times out is skipped for ``server_backoff`` seconds
while others answer (it is still tried when every server is backed off).

What happens is tallied in an ``UpstreamMetrics`` (``_metrics.py``): the
``Exchange`` records each query's result and latency (once per reply, from
the send time it notes in ``start_try``, or the TCP exchange's own duration
as the shell measured it), the nameserver list the queries sent and the
backoffs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import dns.flags
import dns.message
import dns.rcode

from safedns._config import ResolverConfig
from safedns._core import QueryObserver, drive
from safedns._metrics import MALFORMED, NETWORK_ERROR, TIMEOUT, TRUNCATED, UpstreamMetrics
from safedns._records import UpstreamFailure
from safedns._wire import Query, WireReply, read_reply

__all__ = ["AsyncUpstream", "Exchange", "QueryObserver", "Upstream"]

Server = tuple[str, int]
#: A reply as dnspython parsed it, or as ``read_reply`` read it.
Reply = dns.message.Message | WireReply
Response = Reply | UpstreamFailure

_ANSWERS = (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
#: Why a question the budget would not let go out again failed.
BUDGET_SPENT = "query budget exhausted"
_getaddrinfo = socket.getaddrinfo  # the original, even when safedns.patch() replaced it


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


class _Servers:
    """The nameservers of one resolver, their order and health, and the moves
    of an exchange with them (``steps``, sans-I/O). Thread-safe."""

    def __init__(
        self,
        config: ResolverConfig,
        clock: Callable[[], float] = time.monotonic,
        on_query: QueryObserver | None = None,
        metrics: UpstreamMetrics | None = None,
        spend: Callable[[], bool] | None = None,
    ) -> None:
        self._servers: tuple[Server, ...] = config.servers()
        self._timeout = config.timeout
        self._single_request = config.single_request
        self._use_vc = config.use_vc
        #: Takes one token of the query budget for a send beyond a question's
        #: first (None: no budget), False when there is none.
        self._spend = spend
        self._attempts = config.attempts
        self._rotate = config.rotate
        self._backoff = config.server_backoff
        self._clock = clock
        self._next = itertools.count()
        self._backoff_until: dict[Server, float] = {}
        self._addresses: dict[Server, tuple[int, tuple[Any, ...]]] = {}
        self._lock = threading.Lock()
        self.on_query = on_query
        #: Queries, results, latency and backoffs (shared with the resolver's core).
        self.metrics = metrics if metrics is not None else UpstreamMetrics(clock)
        self.metrics.add_servers(server_text(s) for s in self._servers)

    def new_exchange(self, questions: Sequence[tuple[str, str]]) -> Exchange:
        """An ``Exchange`` for ``questions`` that records into ``metrics``."""
        return Exchange(questions, self.metrics)

    def server_order(self) -> list[Server]:
        """The servers to try, in order: rotated if configured, healthy first."""
        servers = list(self._servers)
        if self._rotate and len(servers) > 1:
            start = next(self._next) % len(servers)
            servers = servers[start:] + servers[:start]
        if not self._backoff_until:
            return servers
        now = self._clock()
        with self._lock:
            sick = {s for s, until in self._backoff_until.items() if until > now}
        if sick:
            servers = [s for s in servers if s not in sick] + [s for s in servers if s in sick]
        return servers

    def rounds(self, attempts: int | None) -> list[Server]:
        """Every server try of one exchange, in order."""
        return self.server_order() * (attempts or self._attempts)

    def _mark(self, server: Server, healthy: bool) -> None:
        if healthy and server not in self._backoff_until:
            return  # healthy and was healthy: nothing to record
        with self._lock:
            if healthy:
                until = self._backoff_until.pop(server, None)
                if until is None:
                    return
                until = None
            elif self._backoff > 0:
                until = self._backoff_until[server] = self._clock() + self._backoff
            else:
                return
        self.metrics.backoff(server_text(server), until)

    def _observe(self, server: Server, question: tuple[str, str], transport: str) -> None:
        text = server_text(server)
        self.metrics.sent(text, question[1])
        if self.on_query is not None:
            self.on_query(text, question[0], question[1], transport)

    def _address(self, server: Server) -> tuple[int, tuple[Any, ...]]:
        """(family, socket address) of ``server``, worked out once."""
        address = self._addresses.get(server)
        if address is None:
            host, port = server
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            address = self._addresses[server] = (family, _sockaddr(host, port, family))
        return address

    def steps(
        self, questions: Sequence[tuple[str, str]], attempts: int | None = None
    ) -> Generator[Command, Any, list[Response]]:
        """The exchange of ``questions`` with the nameservers, as a generator: it
        yields the I/O to do (``Open``, ``Send``, ``Receive``, ``StartTcp``,
        ``Finish``), takes what came of it, and returns one response or
        ``UpstreamFailure`` per question, in order. ``attempts`` (default: the
        config's) is how many rounds over the servers to make. Under
        ``single_request`` the questions go one after another, each exchange
        over before the next question is sent."""
        if self._single_request and len(questions) > 1:
            results: list[Response] = []
            for question in questions:
                results += yield from self._exchange([question], attempts)
            return results
        return (yield from self._exchange(questions, attempts))

    def _exchange(
        self, questions: Sequence[tuple[str, str]], attempts: int | None
    ) -> Generator[Command, Any, list[Response]]:
        exchange = self.new_exchange(questions)
        for server in self.rounds(attempts):
            pending = exchange.pending()
            if not pending:
                break
            yield from self._try_server(server, exchange, pending)
        return exchange.outcome()

    def _paid(self, exchange: Exchange, i: int) -> bool:
        """May question ``i`` go out (again)? Its first send was paid for by the
        caller; every later one (a retransmission, a TCP retry) spends a
        budget token of its own."""
        if i not in exchange.sent:
            exchange.sent.add(i)
            return True
        return self._spend is None or self._spend()

    def _try_server(
        self, server: Server, exchange: Exchange, pending: list[int]
    ) -> Generator[Command, Any, None]:
        """One try of one server: every pending question out at once, each over
        a connected UDP socket of its own (or, under ``use_vc``, over TCP),
        replies matched until the deadline, truncated answers asked again
        over TCP; the server's health marked."""
        family, address = self._address(server)
        waiting = exchange.start_try(pending, server)
        heard = False
        for i in pending:
            if not self._paid(exchange, i):
                exchange.unsent(i, waiting)
            elif self._use_vc:
                exchange.unsent(i, waiting)  # waits on TCP, not on a datagram
                yield from self._start_tcp(server, exchange, i)
            else:
                error: OSError | None = yield Open(family, address, i)
                if error is None:
                    self._observe(server, exchange.questions[i], "udp")
                    error = yield Send(bytes(exchange.queries[i].wire), i)
                if error is not None:
                    exchange.lost(i, waiting, f"network error: {error.strerror or error}")
        deadline = time.monotonic() + self._timeout
        while waiting:
            event = yield Receive(deadline)
            if event is None:
                break
            index, data = event
            if isinstance(data, ConnectionRefusedError):  # ICMP port unreachable
                exchange.lost(index, waiting, "connection refused")
                continue
            if isinstance(data, OSError):
                exchange.lost(index, waiting, f"network error: {data.strerror or data}")
                continue
            received = exchange.receive(data, waiting, index)
            if received is None:
                continue
            heard = True
            i, needs_tcp = received
            if not needs_tcp:
                continue
            if self._paid(exchange, i):
                yield from self._start_tcp(server, exchange, i)
            else:
                exchange.unsent(i, waiting, BUDGET_SPENT)
        replies: list[TcpDone] = yield Finish()
        for i, reply, seconds in replies:
            exchange.tcp_done(i, reply, seconds)
            heard = heard or isinstance(reply, bytes)
        self._mark(server, heard)

    def _start_tcp(
        self, server: Server, exchange: Exchange, i: int
    ) -> Generator[Command, Any, None]:
        self._observe(server, exchange.questions[i], "tcp")
        yield StartTcp(i, server[0], server[1], exchange.tcp_frame(i), self._timeout)


class Upstream(_Servers):
    """Blocking sockets, for the sync resolver: performs the I/O of ``steps``.
    TCP retries go after the UDP receive loop, so that the other replies of
    the batch, already on their way, are not timed out by a slow TCP exchange."""

    def exchange(
        self, questions: Sequence[tuple[str, str]], attempts: int | None = None
    ) -> list[Response]:
        """Ask every question; one result per question, in order."""
        with _Sockets() as io:
            return drive(self.steps(questions, attempts), io.perform)


class _Sockets:
    """The blocking I/O of one exchange: a non-blocking UDP socket per
    question, waited on together (``poll``); TCP retries queued until
    ``Finish``."""

    def __init__(self) -> None:
        self.socks: dict[int, socket.socket] = {}
        #: The question of each open socket, by file descriptor.
        self.owners: dict[int, int] = {}
        self.poller = select.poll()
        self.tcp: list[StartTcp] = []

    def perform(self, command: Command) -> Any:
        try:
            if isinstance(command, Receive):
                return self.receive(command.deadline)
            if isinstance(command, Send):
                self.socks[command.index].send(command.datagram)
            elif isinstance(command, Open):
                self.close(command.index)
                sock = self.socks[command.index] = socket.socket(command.family, socket.SOCK_DGRAM)
                sock.setblocking(False)
                self.poller.register(sock, select.POLLIN)
                self.owners[sock.fileno()] = command.index
                sock.connect(command.address)
            elif isinstance(command, StartTcp):
                self.tcp.append(command)
            else:  # Finish: the UDP sockets first, then the TCP retries in turn
                self.close()
                queued, self.tcp = self.tcp, []
                return [_tcp(t) for t in queued]
        except OSError as exc:
            return exc
        return None

    def receive(self, deadline: float) -> tuple[int, bytes | OSError] | None:
        """One datagram (or socket error) from any open socket by ``deadline``,
        with the index of the socket's question; None after the deadline."""
        while (remaining := deadline - time.monotonic()) > 0:
            for fd, _ in self.poller.poll(math.ceil(remaining * 1000)):
                index = self.owners[fd]
                try:
                    return index, self.socks[index].recv(65535)
                except BlockingIOError:
                    continue
                except OSError as exc:  # ICMP unreachable, and the like
                    return index, exc
        return None

    def close(self, index: int | None = None) -> None:
        """Close question ``index``'s socket, or every one."""
        for i in list(self.socks) if index is None else [index]:
            sock = self.socks.pop(i, None)
            if sock is not None:
                fd = sock.fileno()
                self.owners.pop(fd, None)
                with contextlib.suppress(KeyError, ValueError):
                    self.poller.unregister(fd)
                sock.close()

    def __enter__(self) -> _Sockets:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _tcp(command: StartTcp) -> TcpDone:
    """One TCP exchange: the reply's octets, or the exception met, and the
    seconds it took."""
    started = time.monotonic()
    return (
        command.index,
        _tcp_reply(command, started + command.timeout),
        time.monotonic() - started,
    )


def _tcp_reply(command: StartTcp, deadline: float) -> TcpResult:
    host, port = command.host, command.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(command.timeout)
            sock.connect(_sockaddr(host, port, family))
            sock.sendall(command.frame)
            length = Exchange.tcp_length(_recv_exactly(sock, 2, deadline))
            return _recv_exactly(sock, length, deadline)
    except (OSError, EOFError) as exc:
        return exc


def _recv_exactly(sock: socket.socket, size: int, deadline: float) -> bytes:
    """``size`` octets from ``sock`` by ``deadline``: TimeoutError after it,
    EOFError if the server closes first."""
    buf = bytearray()
    while len(buf) < size:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out")
        sock.settimeout(remaining)
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise EOFError("connection closed by the server")
        buf += chunk
    return bytes(buf)


#: What the datagram endpoints of one exchange put in its queue.
_Datagram = tuple[int, bytes | OSError]


class _DatagramQueue(asyncio.DatagramProtocol):
    """The endpoint of question ``index``: what it receives goes to the
    exchange's one queue, marked with the question."""

    def __init__(self, queue: asyncio.Queue[_Datagram], index: int) -> None:
        self.queue = queue
        self.index = index

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.queue.put_nowait((self.index, data))

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, OSError):
            self.queue.put_nowait((self.index, exc))


class AsyncUpstream(_Servers):
    """asyncio transports, for ``AsyncResolver``: performs the I/O of ``steps``.
    TCP retries run as tasks beside the UDP receive loop."""

    async def exchange(
        self, questions: Sequence[tuple[str, str]], attempts: int | None = None
    ) -> list[Response]:
        steps = self.steps(questions, attempts)
        io = _Transports(asyncio.get_running_loop())
        try:
            command = next(steps)
            while True:
                command = steps.send(await io.perform(command))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        finally:
            await io.aclose()


class _Transports:
    """The asyncio I/O of one exchange: a datagram endpoint per question, all
    feeding one queue; TCP retries as tasks, collected at ``Finish``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transports: dict[int, asyncio.DatagramTransport] = {}
        self.queue: asyncio.Queue[_Datagram] = asyncio.Queue()
        self.tcp: list[asyncio.Task[TcpDone]] = []

    async def perform(self, command: Command) -> Any:
        if isinstance(command, Receive):
            return await _next_datagram(self.queue, command.deadline)
        if isinstance(command, Send):
            self.transports[command.index].sendto(command.datagram)
        elif isinstance(command, Open):
            self.close(command.index)
            index = command.index
            try:
                transport, _ = await self.loop.create_datagram_endpoint(
                    lambda: _DatagramQueue(self.queue, index),
                    remote_addr=command.address,
                    family=command.family,
                )
            except OSError as exc:
                return exc
            self.transports[index] = transport
        elif isinstance(command, StartTcp):
            self.tcp.append(self.loop.create_task(_tcp_async(command)))
        else:
            self.close()
            done = [await task for task in self.tcp]
            self.tcp.clear()
            return done
        return None

    def close(self, index: int | None = None) -> None:
        """Close question ``index``'s endpoint, or every one (a new queue then:
        what the old endpoints received is not for the next try)."""
        if index is not None:
            transport = self.transports.pop(index, None)
            if transport is not None:
                transport.close()
            return
        for transport in self.transports.values():
            transport.close()
        if self.transports:
            self.transports.clear()
            self.queue = asyncio.Queue()

    async def aclose(self) -> None:
        self.close()
        unfinished = [task for task in self.tcp if not task.done()]
        for task in unfinished:
            task.cancel()
        if unfinished:
            # Cancelled ourselves: let the retries close their sockets.
            await asyncio.wait(unfinished)


async def _next_datagram(queue: asyncio.Queue[_Datagram], deadline: float) -> _Datagram | None:
    """One datagram (or socket error) from ``queue`` by ``deadline``, or None."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return None
    if not queue.empty():
        return queue.get_nowait()
    try:
        return await asyncio.wait_for(queue.get(), remaining)
    except asyncio.TimeoutError:
        return None


async def _tcp_async(command: StartTcp) -> TcpDone:
    """One TCP exchange on asyncio streams, as ``_tcp`` does with a blocking socket."""
    started = time.monotonic()
    reply = await _tcp_reply_async(command, started + command.timeout)
    return command.index, reply, time.monotonic() - started


async def _tcp_reply_async(command: StartTcp, deadline: float) -> TcpResult:
    writer: asyncio.StreamWriter | None = None

    def left() -> float:
        return max(0.0, deadline - time.monotonic())

    try:
        opening = asyncio.open_connection(command.host, command.port)
        reader, stream = await asyncio.wait_for(opening, left())
        writer = stream
        stream.write(command.frame)
        await asyncio.wait_for(stream.drain(), left())
        header = await asyncio.wait_for(reader.readexactly(2), left())
        return await asyncio.wait_for(reader.readexactly(Exchange.tcp_length(header)), left())
    except (asyncio.TimeoutError, OSError, EOFError) as exc:
        return exc
    finally:
        if writer is not None:
            writer.close()


def _sockaddr(host: str, port: int, family: int) -> tuple[str, int] | tuple[str, int, int, int]:
    if family == socket.AF_INET6:
        info = _getaddrinfo(host, port, family, socket.SOCK_DGRAM, 0, socket.AI_NUMERICHOST)
        address = info[0][4]  # keeps the scope id of a link-local address
        return (str(address[0]), int(address[1]), int(address[2]), int(address[3]))  # type: ignore[misc]
    return (host, port)
