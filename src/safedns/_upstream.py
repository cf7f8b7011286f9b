"""Talking to nameservers: the exchange as a sans-I/O generator, and the two
shells that perform its I/O, ``Upstream`` (sockets) and ``AsyncUpstream``
(asyncio).

``_Servers.steps`` decides every move of an exchange, and ``Exchange``
(``_exchange.py``) holds its questions and validates every reply: every
question of a batch goes out at once, each over a connected UDP socket of its
own per nameserver try (so A and AAAA travel together, as glibc sends them,
but from two random source ports: two queries from one port are what the Linux
conntrack insertion race drops, kubernetes/kubernetes#56903); a truncated
answer is asked again over TCP with its own timeout (the shells run it after
the UDP receive loop, or beside it, never on the UDP deadline); the
nameservers are walked in order (or rotated) for ``attempts`` rounds; the
result is one response or one ``UpstreamFailure`` per question. A reply is
accepted only if it comes from the server asked (the socket is connected), on
the socket of the query it answers, carries the query's ID and echoes its
question (checked on the wire by ``Query.answered_by`` before dnspython parses
it); anything else, garbage included, is ignored.

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
import select
import socket
import threading
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any

from safedns._config import ResolverConfig
from safedns._core import QueryObserver, drive
from safedns._exchange import (
    BUDGET_SPENT,
    Command,
    Exchange,
    Finish,
    Open,
    Receive,
    Response,
    Send,
    Server,
    StartTcp,
    TcpDone,
    TcpResult,
    server_text,
)
from safedns._metrics import UpstreamMetrics

__all__ = [
    "AsyncUpstream",
    "Command",
    "Exchange",
    "Finish",
    "Open",
    "QueryObserver",
    "Receive",
    "Send",
    "StartTcp",
    "Upstream",
]

_getaddrinfo = socket.getaddrinfo  # the original, even when safedns.patch() replaced it


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
    """The blocking I/O of one exchange: a UDP socket per question, waited on
    together (``poll``; one alone with a socket timeout, the cheaper way);
    TCP retries queued until ``Finish``."""

    def __init__(self) -> None:
        self.socks: dict[int, socket.socket] = {}
        #: The question of each open socket, by file descriptor.
        self.owners: dict[int, int] = {}
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
        if len(self.socks) == 1:
            ((index, sock),) = self.socks.items()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            sock.settimeout(remaining)
            try:
                return index, sock.recv(65535)
            except TimeoutError:
                return None
            except OSError as exc:  # ICMP unreachable, and the like
                return index, exc
        poller = select.poll()
        for sock in self.socks.values():
            poller.register(sock, select.POLLIN)
        while (remaining := deadline - time.monotonic()) > 0:
            for fd, _ in poller.poll(math.ceil(remaining * 1000)):
                index = self.owners[fd]
                try:  # a datagram (or an error) is there: this does not block
                    return index, self.socks[index].recv(65535)
                except OSError as exc:
                    return index, exc
        return None

    def close(self, index: int | None = None) -> None:
        """Close question ``index``'s socket, or every one."""
        for i in list(self.socks) if index is None else [index]:
            sock = self.socks.pop(i, None)
            if sock is not None:
                self.owners.pop(sock.fileno(), None)
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


#: What the UDP sockets of one exchange put in its queue: (question, datagram or error).
_Datagram = tuple[int, bytes | OSError]


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
    """The asyncio I/O of one exchange: a non-blocking UDP socket per question,
    read by the loop (``add_reader``: cheaper than a datagram endpoint), all
    feeding one queue; TCP retries as tasks, collected at ``Finish``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.socks: dict[int, socket.socket] = {}
        self.queue: asyncio.Queue[_Datagram] = asyncio.Queue()
        self.tcp: list[asyncio.Task[TcpDone]] = []

    async def perform(self, command: Command) -> Any:
        if isinstance(command, Receive):
            return await _next_datagram(self.queue, command.deadline)
        try:
            if isinstance(command, Send):
                self.socks[command.index].send(command.datagram)
            elif isinstance(command, Open):
                self.close(command.index)
                sock = self.socks[command.index] = socket.socket(command.family, socket.SOCK_DGRAM)
                sock.setblocking(False)
                sock.connect(command.address)
                self.loop.add_reader(sock.fileno(), _readable, command.index, sock, self.queue)
            elif isinstance(command, StartTcp):
                self.tcp.append(self.loop.create_task(_tcp_async(command)))
            else:
                self.close()
                done = [await task for task in self.tcp]
                self.tcp.clear()
                return done
        except OSError as exc:
            return exc
        return None

    def close(self, index: int | None = None) -> None:
        """Close question ``index``'s socket, or every one (a new queue then:
        what the old sockets received is not for the next try)."""
        indices = list(self.socks) if index is None else [index]
        for i in indices:
            sock = self.socks.pop(i, None)
            if sock is not None:
                with contextlib.suppress(RuntimeError, ValueError):  # its loop is closed
                    self.loop.remove_reader(sock.fileno())
                sock.close()
        if index is None and indices:
            self.queue = asyncio.Queue()

    async def aclose(self) -> None:
        self.close()
        unfinished = [task for task in self.tcp if not task.done()]
        for task in unfinished:
            task.cancel()
        if unfinished:
            # Cancelled ourselves: let the retries close their sockets.
            await asyncio.wait(unfinished)


def _readable(index: int, sock: socket.socket, queue: asyncio.Queue[_Datagram]) -> None:
    """Question ``index``'s socket is readable: its datagram (or error) to the queue."""
    try:
        data = sock.recv(65535)
    except (BlockingIOError, InterruptedError):
        return
    except OSError as exc:  # ICMP unreachable, and the like
        queue.put_nowait((index, exc))
        return
    queue.put_nowait((index, data))


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
