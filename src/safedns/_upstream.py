"""Talking to nameservers: ``Upstream`` (sockets) and ``AsyncUpstream`` (asyncio).

Both make the same moves, decided by the sans-I/O ``Exchange``: every
question of a batch goes out at once over one UDP socket per nameserver try
(so A and AAAA travel together, as glibc sends them); a truncated answer is
asked again over TCP once the UDP replies are in (the framing and the reply
checks of both transports are the ``Exchange``'s, shared by both shells);
the nameservers are walked in order (or rotated) for ``attempts`` rounds;
the result is one response or one ``UpstreamFailure`` per question. A reply
is accepted only if it comes from the server asked (the socket is
connected), carries the query's ID and echoes its question; anything else,
garbage included, is ignored.

A nameserver that times out is skipped for ``server_backoff`` seconds while
others answer (it is still tried when every server is backed off).

What happens is tallied in an ``UpstreamMetrics`` (``_metrics.py``): the
``Exchange`` records each query's result and latency (once per reply, from
the send time it notes in ``start_try``), the nameserver list the queries
sent and the backoffs. The shells only say which server a try goes to.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence

import dns.flags
import dns.message
import dns.rcode

from safedns._config import ResolverConfig
from safedns._metrics import MALFORMED, NETWORK_ERROR, TIMEOUT, TRUNCATED, UpstreamMetrics
from safedns._records import UpstreamFailure

__all__ = ["AsyncUpstream", "Exchange", "QueryObserver", "Upstream"]

Server = tuple[str, int]
Response = dns.message.Message | UpstreamFailure
#: Called for every query sent: (server "host:port", qname, rdtype, "udp"|"tcp").
QueryObserver = Callable[[str, str, str, str], None]

_ANSWERS = (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
_EDNS_PAYLOAD = 1232
_getaddrinfo = socket.getaddrinfo  # the original, even when safedns.patch() replaced it


def server_text(server: Server) -> str:
    host, port = server
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
        self.queries = [
            dns.message.make_query(qname, rdtype, use_edns=0, payload=_EDNS_PAYLOAD)
            for qname, rdtype in questions
        ]
        self.results: list[Response | None] = [None] * len(self.queries)
        self.errors = ["timed out"] * len(self.queries)
        self._metrics = metrics
        self._clock = clock
        self._server = ""
        #: The queries of this try still waiting for a result: index -> sent at.
        self._open: dict[int, float] = {}

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
        for i in pending:
            qid = int.from_bytes(os.urandom(2), "big")
            while qid in waiting:
                qid = int.from_bytes(os.urandom(2), "big")
            self.queries[i].id = qid
            waiting[qid] = i
        return waiting

    def match(
        self, data: bytes, waiting: dict[int, int]
    ) -> tuple[int, dns.message.Message] | None:
        """The (index, response) a datagram answers, or None for anything that
        is not a reply to one of our waiting queries."""
        try:
            response = dns.message.from_wire(data)
        except Exception:  # garbage on the wire is ignored, whatever it is
            return None
        i = waiting.get(response.id)
        if i is None or not self.queries[i].is_response(response):
            return None
        del waiting[response.id]
        return i, response

    def receive(self, data: bytes, waiting: dict[int, int]) -> tuple[int, bool] | None:
        """Take one datagram: None when it answers none of our waiting queries;
        else (index, needs_tcp). A complete answer is accepted here; a
        truncated one must be asked again over TCP."""
        matched = self.match(data, waiting)
        if matched is None:
            return None
        i, response = matched
        if is_truncated(response):
            self._answered(i, TRUNCATED)
            self._reopen(i)  # the TCP query to come
            return i, True
        self.accept(i, response)
        return i, False

    def tcp_frame(self, i: int) -> bytes:
        """Question ``i`` as a TCP message: two length octets, then the wire
        (asked for when the TCP query goes out)."""
        self._reopen(i)
        wire = self.queries[i].to_wire()
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
        if not self.queries[i].is_response(response):
            self.fail([i], "tcp error: mismatched reply", MALFORMED)
            return
        self.accept(i, response)

    def accept(self, i: int, response: dns.message.Message) -> None:
        self._answered(i, dns.rcode.to_text(response.rcode()))
        if response.rcode() in _ANSWERS:
            self.results[i] = response
        else:
            # SERVFAIL, REFUSED, NOTIMP, FORMERR: try the next server, as glibc does.
            self.errors[i] = dns.rcode.to_text(response.rcode())

    def fail(self, indices: Sequence[int], reason: str, result: str | None = None) -> None:
        """The queries ``indices`` failed for ``reason``; ``result`` (for the
        metrics) defaults to a timeout or a network error, as ``reason`` says."""
        if result is None:
            result = TIMEOUT if reason.startswith("timed out") else NETWORK_ERROR
        for i in indices:
            if self.results[i] is None:
                self.errors[i] = reason
            self._failed(i, result)

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


def is_truncated(response: dns.message.Message) -> bool:
    return bool(response.flags & dns.flags.TC)


class _Servers:
    """The nameservers of one resolver, their order and health. Thread-safe."""

    def __init__(
        self,
        config: ResolverConfig,
        clock: Callable[[], float] = time.monotonic,
        on_query: QueryObserver | None = None,
        metrics: UpstreamMetrics | None = None,
    ) -> None:
        self._servers: tuple[Server, ...] = config.servers()
        self._timeout = config.timeout
        self._attempts = config.attempts
        self._rotate = config.rotate
        self._backoff = config.server_backoff
        self._clock = clock
        self._next = itertools.count()
        self._backoff_until: dict[Server, float] = {}
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
        with self._lock:
            if healthy:
                until = self._backoff_until.pop(server, None)
                if until is None:
                    return  # healthy and was healthy: nothing to record
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


class Upstream(_Servers):
    """Blocking sockets, for the sync resolver."""

    def exchange(
        self, questions: Sequence[tuple[str, str]], attempts: int | None = None
    ) -> list[Response]:
        """Ask every question; one result per question, in order. ``attempts``
        (default: the config's) is how many rounds over the servers to make."""
        exchange = self.new_exchange(questions)
        for server in self.rounds(attempts):
            pending = exchange.pending()
            if not pending:
                break
            self._try_server(server, exchange, pending)
        return exchange.outcome()

    def _try_server(self, server: Server, exchange: Exchange, pending: list[int]) -> None:
        host, port = server
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        waiting = exchange.start_try(pending, server)
        heard = False
        truncated: list[int] = []
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.connect(_sockaddr(host, port, family))
                for i in pending:
                    self._observe(server, exchange.questions[i], "udp")
                    sock.send(exchange.queries[i].to_wire())
                deadline = time.monotonic() + self._timeout
                while waiting:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    sock.settimeout(remaining)
                    try:
                        data = sock.recv(65535)
                    except TimeoutError:
                        break
                    except ConnectionRefusedError:  # ICMP port unreachable
                        exchange.fail(list(waiting.values()), "connection refused")
                        break
                    received = exchange.receive(data, waiting)
                    if received is None:
                        continue
                    heard = True
                    i, needs_tcp = received
                    if needs_tcp:
                        truncated.append(i)
        except OSError as exc:
            exchange.fail(pending, f"network error: {exc.strerror or exc}")
        # TCP retries go after the UDP receive loop, so that the other
        # replies of the batch, already on their way, are not timed out by
        # a slow TCP exchange (each retry has its own timeout).
        for i in truncated:
            self._tcp(server, exchange, i)
        self._mark(server, heard)

    def _tcp(self, server: Server, exchange: Exchange, i: int) -> None:
        """Ask question ``i`` again over TCP; the answer or the error goes
        into ``exchange``, which validates the reply."""
        host, port = server
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._observe(server, exchange.questions[i], "tcp")
        deadline = time.monotonic() + self._timeout
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.settimeout(self._timeout)
                sock.connect(_sockaddr(host, port, family))
                sock.sendall(exchange.tcp_frame(i))
                length = exchange.tcp_length(_recv_exactly(sock, 2, deadline))
                data = _recv_exactly(sock, length, deadline)
        except TimeoutError:
            exchange.fail([i], "timed out (tcp)")
        except (OSError, EOFError) as exc:
            exchange.fail([i], f"tcp error: {exc}")
        else:
            exchange.receive_tcp(i, data)


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


class _DatagramQueue(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | OSError] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, OSError):
            self.queue.put_nowait(exc)


class AsyncUpstream(_Servers):
    """asyncio transports, for ``AsyncResolver``; the same moves as ``Upstream``."""

    async def exchange(
        self, questions: Sequence[tuple[str, str]], attempts: int | None = None
    ) -> list[Response]:
        exchange = self.new_exchange(questions)
        for server in self.rounds(attempts):
            pending = exchange.pending()
            if not pending:
                break
            await self._try_server(server, exchange, pending)
        return exchange.outcome()

    async def _try_server(self, server: Server, exchange: Exchange, pending: list[int]) -> None:
        host, port = server
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        waiting = exchange.start_try(pending, server)
        heard = False
        loop = asyncio.get_running_loop()
        transport: asyncio.DatagramTransport | None = None
        # TCP retries run beside the UDP receive loop (each with its own
        # timeout), so replies already on their way are still accepted.
        retries: list[asyncio.Task[None]] = []
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                _DatagramQueue,
                remote_addr=_sockaddr(host, port, family),  # type: ignore[arg-type]
                family=family,
            )
            for i in pending:
                self._observe(server, exchange.questions[i], "udp")
                transport.sendto(exchange.queries[i].to_wire())
            deadline = time.monotonic() + self._timeout
            while waiting:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    data = await asyncio.wait_for(protocol.queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
                if isinstance(data, ConnectionRefusedError):
                    exchange.fail(list(waiting.values()), "connection refused")
                    break
                if isinstance(data, OSError):
                    continue
                received = exchange.receive(data, waiting)
                if received is None:
                    continue
                heard = True
                i, needs_tcp = received
                if needs_tcp:
                    retries.append(loop.create_task(self._tcp(server, exchange, i)))
            if transport is not None:
                transport.close()
                transport = None
            if retries:
                await asyncio.gather(*retries)
        except OSError as exc:
            exchange.fail(pending, f"network error: {exc.strerror or exc}")
        finally:
            if transport is not None:
                transport.close()
            unfinished = [task for task in retries if not task.done()]
            for task in unfinished:
                task.cancel()
            if unfinished:
                # Cancelled ourselves: let the retries close their sockets.
                await asyncio.wait(unfinished)
        self._mark(server, heard)

    async def _tcp(self, server: Server, exchange: Exchange, i: int) -> None:
        """Ask question ``i`` again over TCP, as ``Upstream._tcp`` does."""
        host, port = server
        self._observe(server, exchange.questions[i], "tcp")
        writer: asyncio.StreamWriter | None = None
        deadline = time.monotonic() + self._timeout

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        try:
            reader, stream = await asyncio.wait_for(asyncio.open_connection(host, port), left())
            writer = stream
            stream.write(exchange.tcp_frame(i))
            await asyncio.wait_for(stream.drain(), left())
            header = await asyncio.wait_for(reader.readexactly(2), left())
            data = await asyncio.wait_for(reader.readexactly(exchange.tcp_length(header)), left())
        except (asyncio.TimeoutError, TimeoutError):
            exchange.fail([i], "timed out (tcp)")
        except (OSError, EOFError, asyncio.IncompleteReadError) as exc:
            exchange.fail([i], f"tcp error: {exc}")
        else:
            exchange.receive_tcp(i, data)
        finally:
            if writer is not None:
                writer.close()


def _sockaddr(host: str, port: int, family: int) -> tuple[str, int] | tuple[str, int, int, int]:
    if family == socket.AF_INET6:
        info = _getaddrinfo(host, port, family, socket.SOCK_DGRAM, 0, socket.AI_NUMERICHOST)
        address = info[0][4]  # keeps the scope id of a link-local address
        return (str(address[0]), int(address[1]), int(address[2]), int(address[3]))  # type: ignore[misc]
    return (host, port)
