"""Talking to nameservers (the sync shell's only network code).

``Upstream.exchange(questions)`` sends every question at once over one UDP
socket per nameserver try (so A and AAAA travel together, as glibc sends
them), retries over TCP on truncation, walks the nameservers in order (or
rotated) for ``attempts`` rounds, and returns one response or one
``UpstreamFailure`` per question. A reply is accepted only if it comes from the
server asked (the socket is connected), carries the query's ID and echoes its
question; anything else, garbage included, is ignored.

A nameserver that times out is skipped for ``server_backoff`` seconds while
others answer (it is still tried when every server is backed off).
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode

from safedns._config import ResolverConfig
from safedns._records import UpstreamFailure

__all__ = ["QueryObserver", "Upstream"]

Server = tuple[str, int]
#: Called for every query sent: (server "host:port", qname, rdtype, "udp"|"tcp").
QueryObserver = Callable[[str, str, str, str], None]

_ANSWERS = (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
_getaddrinfo = socket.getaddrinfo
_EDNS_PAYLOAD = 1232


def server_text(server: Server) -> str:
    host, port = server
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Upstream:
    """The nameservers of one resolver, with their health. Thread-safe."""

    def __init__(
        self,
        config: ResolverConfig,
        clock: Callable[[], float] = time.monotonic,
        on_query: QueryObserver | None = None,
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

    def _mark(self, server: Server, healthy: bool) -> None:
        with self._lock:
            if healthy:
                self._backoff_until.pop(server, None)
            elif self._backoff > 0:
                self._backoff_until[server] = self._clock() + self._backoff

    def exchange(
        self, questions: Sequence[tuple[str, str]], attempts: int | None = None
    ) -> list[dns.message.Message | UpstreamFailure]:
        """Ask every question; one result per question, in order. ``attempts``
        (default: the config's) is how many rounds over the servers to make."""
        queries = [
            dns.message.make_query(qname, rdtype, use_edns=0, payload=_EDNS_PAYLOAD)
            for qname, rdtype in questions
        ]
        results: list[dns.message.Message | UpstreamFailure | None] = [None] * len(queries)
        errors: list[str] = ["timed out"] * len(queries)
        order = self.server_order()
        for _attempt in range(attempts or self._attempts):
            for server in order:
                pending = [i for i, r in enumerate(results) if r is None]
                if not pending:
                    break
                self._try_server(server, questions, queries, pending, results, errors)
            if all(r is not None for r in results):
                break
        return [r if r is not None else UpstreamFailure(errors[i]) for i, r in enumerate(results)]

    def _try_server(
        self,
        server: Server,
        questions: Sequence[tuple[str, str]],
        queries: Sequence[dns.message.Message],
        pending: list[int],
        results: list[dns.message.Message | UpstreamFailure | None],
        errors: list[str],
    ) -> None:
        host, port = server
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        waiting: dict[int, int] = {}  # query id -> index
        heard = False
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.connect(_sockaddr(host, port, family))
                for i in pending:
                    query = queries[i]
                    query.id = _new_id(waiting)
                    waiting[query.id] = i
                    self._observe(server, questions[i], "udp")
                    sock.send(query.to_wire())
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
                    except ConnectionRefusedError:
                        # ICMP port unreachable: nobody listens there.
                        for i in waiting.values():
                            errors[i] = "connection refused"
                        heard = False
                        break
                    response = _parse(data)
                    if response is None or response.id not in waiting:
                        continue
                    i = waiting[response.id]
                    if not queries[i].is_response(response):
                        continue
                    del waiting[response.id]
                    heard = True
                    if response.flags & dns.flags.TC:
                        response = self._tcp(server, questions[i], queries[i], errors, i)
                        if response is None:
                            continue
                    self._accept(response, i, results, errors)
        except OSError as exc:
            for i in pending:
                if results[i] is None:
                    errors[i] = f"network error: {exc.strerror or exc}"
        self._mark(server, heard)

    def _tcp(
        self,
        server: Server,
        question: tuple[str, str],
        query: dns.message.Message,
        errors: list[str],
        i: int,
    ) -> dns.message.Message | None:
        host, port = server
        self._observe(server, question, "tcp")
        try:
            return dns.query.tcp(query, host, timeout=self._timeout, port=port)
        except (dns.exception.Timeout, TimeoutError):
            errors[i] = "timed out (tcp)"
        except (OSError, EOFError, dns.exception.DNSException) as exc:
            errors[i] = f"tcp error: {exc}"
        return None

    @staticmethod
    def _accept(
        response: dns.message.Message,
        i: int,
        results: list[dns.message.Message | UpstreamFailure | None],
        errors: list[str],
    ) -> None:
        if response.rcode() in _ANSWERS:
            results[i] = response
        else:
            # SERVFAIL, REFUSED, NOTIMP, FORMERR: try the next server, as glibc does.
            errors[i] = dns.rcode.to_text(response.rcode())

    def _observe(self, server: Server, question: tuple[str, str], transport: str) -> None:
        if self.on_query is not None:
            self.on_query(server_text(server), question[0], question[1], transport)


def _sockaddr(host: str, port: int, family: int) -> tuple[str, int] | tuple[str, int, int, int]:
    if family == socket.AF_INET6:
        # The original getaddrinfo, even when safedns.patch() has replaced it.
        info = _getaddrinfo(host, port, family, socket.SOCK_DGRAM, 0, socket.AI_NUMERICHOST)
        address = info[0][4]  # keeps the scope id of a link-local address
        return (str(address[0]), int(address[1]), int(address[2]), int(address[3]))  # type: ignore[misc]
    return (host, port)


def _new_id(taken: dict[int, int]) -> int:
    while True:
        qid = int.from_bytes(os.urandom(2), "big")
        if qid not in taken:
            return qid


def _parse(data: bytes) -> dns.message.Message | None:
    try:
        return dns.message.from_wire(data)
    except Exception:  # garbage on the wire is ignored, whatever it is
        return None
