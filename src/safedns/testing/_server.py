"""An embedded, authoritative-style DNS server for tests and demos.

:class:`DNSServer` serves records added with :meth:`DNSServer.add` over UDP and
TCP on one loopback port, records every query it sees, and can be told to
misbehave (outages, delays, SERVFAIL, truncation, packet loss, bogus replies)
so that client code can be tested against the failures real networks produce.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
import logging
import random
import selectors
import socket
import threading
import time
from types import TracebackType
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset

__all__ = ["DNSServer"]

_log = logging.getLogger(__name__)

_MAX_CNAME_HOPS = 8
_UDP_LIMIT = 512
_OUR_EDNS_PAYLOAD = 1232
_MAX_TTL = 2**31 - 1
_DRAIN_BATCH = 64
_POLL = 0.1

_SOA_TEXT = "ns.invalid. hostmaster.invalid. 1 3600 600 86400"  # + MINIMUM

_Address = tuple[str, int]
_Pending = tuple[float, int, tuple[Any, ...], bytes, int, bool, bytes | None]


def _to_name(name: str | dns.name.Name) -> dns.name.Name:
    """Absolute, lower-cased form of ``name`` (a trailing dot is optional)."""
    if isinstance(name, dns.name.Name):
        parsed = name.derelativize(dns.name.root)
    else:
        try:
            parsed = dns.name.from_text(name, origin=dns.name.root)
        except dns.exception.DNSException as exc:
            raise ValueError(f"invalid name {name!r}: {exc}") from exc
    return parsed.canonicalize()


def _to_rdtype(rdtype: str | int) -> dns.rdatatype.RdataType:
    try:
        return dns.rdatatype.RdataType.make(rdtype.upper() if isinstance(rdtype, str) else rdtype)
    except (dns.exception.DNSException, ValueError) as exc:
        raise ValueError(f"unknown record type {rdtype!r}") from exc


def _make_rdata(rdtype: dns.rdatatype.RdataType, value: str) -> dns.rdata.Rdata:
    if rdtype == dns.rdatatype.TXT and not value.startswith('"'):
        raw = value.encode()
        chunks = [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]
        return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, rdtype, chunks)
    try:
        return dns.rdata.from_text(
            dns.rdataclass.IN, rdtype, value, origin=dns.name.root, relativize=False
        )
    except dns.exception.DNSException as exc:
        raise ValueError(f"invalid {rdtype.name} value {value!r}: {exc}") from exc


def _question_key(msg: dns.message.Message) -> tuple[str, str] | None:
    if not msg.question:
        return None
    q = msg.question[0]
    return q.name.canonicalize().to_text(), dns.rdatatype.to_text(q.rdtype)


class DNSServer:
    """A real UDP + TCP DNS server on one loopback port, for tests.

    The sockets are bound and the server answers as soon as the object is
    created; use it as a context manager (or call :meth:`close`) to shut it
    down. Records live in one implicit zone, the root ``"."``: negative
    answers carry ``. SOA ns.invalid. hostmaster.invalid. 1 3600 600 86400
    <negative_ttl>`` with TTL ``negative_ttl``, and names are never delegated.

    Fault attributes (``delay``, ``servfail``, ``refused``, ``truncate``,
    ``truncate_types``, ``drop_rate``, ``drop_types``, ``wrong_id``,
    ``answer_ttl``, ``negative_ttl``, ``tcp_idle_timeout``) may be changed at
    any time from any thread; they apply to queries arriving afterwards.
    ``drop_rate``, ``truncate``, ``truncate_types`` and ``wrong_id`` affect
    UDP only; ``drop_types`` silences both transports. :meth:`craft` makes
    the server give a fixed (lying) answer to one question. If both
    ``servfail`` and ``refused`` are set, the answer is SERVFAIL. Replies
    pending when :meth:`stop` is called are not sent. Several queries on one
    TCP connection are answered in order.

    >>> with DNSServer() as server:                         # doctest: +SKIP
    ...     server.add("api.example.com", "A", "192.0.2.10")
    ...     server.nameserver                              # "127.0.0.1:PORT"
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        negative_ttl: int = 30,
        seed: int | None = None,
    ) -> None:
        self.negative_ttl = negative_ttl
        #: Seconds to wait before each answer (UDP replies are scheduled, not slept).
        self.delay: float = 0.0
        self.servfail = False
        self.refused = False
        #: UDP answers are sent empty with TC set; TCP answers stay complete.
        self.truncate = False
        #: Query types (e.g. ``{"AAAA"}``) whose UDP answers are sent empty with
        #: TC set, while other types are answered in full.
        self.truncate_types: set[str] = set()
        #: Fraction (0..1) of UDP queries silently dropped.
        self.drop_rate: float = 0.0
        #: Query types (e.g. ``{"AAAA"}``) never answered, over UDP or TCP.
        self.drop_types: set[str] = set()
        #: Precede each UDP reply with one wrong-ID reply and one garbage datagram.
        self.wrong_id = False
        #: Precede each UDP reply with a forged one (right ID and question, wrong
        #: address) sent from another port, as an off-path spoofer would.
        self.spoof_source = False
        #: If not None, the TTL of every answer record served.
        self.answer_ttl: int | None = None
        #: A TCP connection idle (or unanswered) this long is closed.
        self.tcp_idle_timeout: float = 10.0

        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._data: dict[dns.name.Name, dict[int, dns.rrset.RRset]] = {}
        self._crafted: dict[tuple[str, str], tuple[int, list[dns.rrset.RRset]]] = {}
        self._below: dict[dns.name.Name, int] = {}
        self._log: list[tuple[str, str, str]] = []
        self._sources: list[tuple[str, str, str, tuple[Any, ...], float]] = []
        #: Notified (under ``_lock``) whenever a query is recorded.
        self._arrived = threading.Condition(self._lock)
        self._serving = True
        self._closed = False
        self._closing = threading.Event()
        self._pending: list[_Pending] = []
        self._seq = itertools.count()
        self._conns: dict[threading.Thread, socket.socket] = {}
        self._conn_ids = itertools.count(1)

        self._udp, self._tcp = self._bind(host, port)
        self._spoof: socket.socket | None = None
        sockname = self._udp.getsockname()
        self._address: _Address = (str(sockname[0]), int(sockname[1]))
        self._wake_r, self._wake_w = socket.socketpair()
        for sock in (self._udp, self._tcp, self._wake_r, self._wake_w):
            sock.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._udp, selectors.EVENT_READ, "udp")
        self._sel.register(self._tcp, selectors.EVENT_READ, "tcp")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(
            target=self._loop, name=f"DNSServer-{self.address[1]}", daemon=True
        )
        self._thread.start()

    # -- lifecycle -------------------------------------------------------------

    @staticmethod
    def _bind(host: str, port: int) -> tuple[socket.socket, socket.socket]:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM, 0, socket.AI_PASSIVE)
        family, _, _, _, sockaddr = infos[0]
        last_error: OSError | None = None
        for _ in range(1 if port else 50):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            tcp = socket.socket(family, socket.SOCK_STREAM)
            try:
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                udp.bind(sockaddr)
                tcp.bind((sockaddr[0], udp.getsockname()[1], *sockaddr[2:]))
                tcp.listen(128)
            except OSError as exc:
                udp.close()
                tcp.close()
                last_error = exc
                continue
            return udp, tcp
        assert last_error is not None
        raise last_error

    def start(self) -> None:
        """Resume answering after :meth:`stop`."""
        if self._closed:
            raise RuntimeError("DNSServer is closed")
        self._serving = True

    def stop(self) -> None:
        """Simulate an outage: keep the port and record queries, answer nothing."""
        self._serving = False

    @property
    def serving(self) -> bool:
        """True while the server answers (not stopped, not closed)."""
        return self._serving and not self._closed

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop serving, close every socket and join every thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._serving = False
        self._closing.set()
        self._wake()
        if self._thread is not threading.current_thread():
            self._thread.join()
        self._sel.close()
        for sock in (self._udp, self._tcp, self._wake_r, self._wake_w, self._spoof):
            if sock is not None:
                sock.close()
        with self._lock:
            conns = list(self._conns.items())
        for _, sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread, sock in conns:
            if thread is not threading.current_thread():
                thread.join()
            sock.close()

    def __enter__(self) -> DNSServer:
        if not self._serving:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "serving" if self._serving else "stopped"
        return f"<DNSServer {self.nameserver} {state}>"

    # -- addresses and query log ---------------------------------------------

    @property
    def address(self) -> _Address:
        """The ``(host, port)`` both UDP and TCP listen on."""
        return self._address

    @property
    def nameserver(self) -> str:
        """``"127.0.0.1:PORT"`` or ``"[::1]:PORT"``."""
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def queries(self) -> list[tuple[str, str]]:
        """``(qname, qtype)`` of every query received, oldest first (a copy)."""
        with self._lock:
            return [(name, qtype) for name, qtype, _ in self._log]

    @property
    def query_count(self) -> int:
        """How many queries were received (without copying the log)."""
        with self._lock:
            return len(self._log)

    @property
    def query_log(self) -> list[tuple[str, str, str]]:
        """``(qname, qtype, "udp" | "tcp")`` of every query received (a copy)."""
        with self._lock:
            return list(self._log)

    @property
    def query_sources(self) -> list[tuple[str, str, str, tuple[Any, ...], float]]:
        """``(qname, qtype, "udp" | "tcp", source address, arrival time)`` of
        every query received (a copy): where each came from (the client's
        address and port) and when (``time.monotonic``)."""
        with self._lock:
            return list(self._sources)

    def wait_for_queries(self, count: int, timeout: float = 10.0) -> bool:
        """Block until at least ``count`` queries were received (since the last
        ``clear``), or ``timeout`` seconds passed: True when they were."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self._log) >= count, timeout)

    def clear(self) -> None:
        """Forget the queries recorded so far."""
        with self._lock:
            self._log.clear()
            self._sources.clear()

    # -- records ---------------------------------------------------------------

    def add(
        self, name: str | dns.name.Name, rdtype: str | int, value: str, ttl: int = 300
    ) -> None:
        """Add one record; adding to an existing name/type grows that RRset.

        ``value`` is in zone-file syntax (relative names are taken as absolute),
        except that a TXT value not starting with ``"`` is one literal string.
        An RRset's TTL is the smallest TTL given for it.
        """
        if not 0 <= ttl <= _MAX_TTL:
            raise ValueError(f"ttl out of range: {ttl}")
        owner = _to_name(name)
        rtype = _to_rdtype(rdtype)
        rdata = _make_rdata(rtype, value)
        with self._lock:
            node = self._data.get(owner)
            if node is None:
                node = self._data[owner] = {}
                for ancestor in self._ancestors(owner):
                    self._below[ancestor] = self._below.get(ancestor, 0) + 1
            rrset = node.get(rtype)
            if rrset is None:
                rrset = node[rtype] = dns.rrset.RRset(owner, dns.rdataclass.IN, rtype)
            rrset.add(rdata, ttl)

    def craft(
        self,
        name: str | dns.name.Name,
        rdtype: str | int,
        answer: list[str],
        *,
        rcode: int = dns.rcode.NOERROR,
    ) -> None:
        """Answer questions for ``name``/``rdtype`` with exactly these answer
        records (zone-file lines, ``"owner ttl IN type data"``), whatever the
        server's own records say, as a lying or broken upstream would.
        ``craft(name, rdtype, [])`` with ``rcode`` crafts a bare reply."""
        key = (_to_name(name).to_text(), dns.rdatatype.to_text(_to_rdtype(rdtype)))
        rrsets = [_zone_line(line) for line in answer]
        with self._lock:
            self._crafted[key] = (rcode, rrsets)

    def remove(self, name: str | dns.name.Name, rdtype: str | int | None = None) -> bool:
        """Remove ``name``'s records of ``rdtype`` (all of them if None).

        Returns True if anything was removed.
        """
        owner = _to_name(name)
        rtype = None if rdtype is None else _to_rdtype(rdtype)
        with self._lock:
            node = self._data.get(owner)
            if node is None:
                return False
            if rtype is not None:
                if node.pop(rtype, None) is None:
                    return False
                if node:
                    return True
            del self._data[owner]
            for ancestor in self._ancestors(owner):
                left = self._below[ancestor] - 1
                if left:
                    self._below[ancestor] = left
                else:
                    del self._below[ancestor]
            return True

    @staticmethod
    def _ancestors(name: dns.name.Name) -> list[dns.name.Name]:
        out = []
        while name != dns.name.root:
            name = name.parent()
            out.append(name)
        return out

    # -- answering -------------------------------------------------------------

    def _soa(self) -> dns.rrset.RRset:
        return _soa_rrset(self.negative_ttl)

    def _served(self, rrset: dns.rrset.RRset) -> dns.rrset.RRset:
        out = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype)
        ttl = rrset.ttl if self.answer_ttl is None else self.answer_ttl
        for rdata in rrset:
            out.add(rdata, ttl)
        return out

    def _respond(self, query: dns.message.Message) -> dns.message.Message:
        try:
            return self._answer(query)
        except Exception:
            _log.debug("DNSServer failed to build an answer", exc_info=True)
            response = dns.message.make_response(
                query, recursion_available=True, our_payload=_OUR_EDNS_PAYLOAD
            )
            response.set_rcode(dns.rcode.SERVFAIL)
            return response

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(
            query, recursion_available=True, our_payload=_OUR_EDNS_PAYLOAD
        )
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return response
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        if self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
            return response
        question = query.question[0]
        if self.refused or question.rdclass not in (dns.rdataclass.IN, dns.rdataclass.ANY):
            response.set_rcode(dns.rcode.REFUSED)
            return response
        response.flags |= dns.flags.AA
        with self._lock:
            key = (question.name.canonicalize().to_text(), dns.rdatatype.to_text(question.rdtype))
            crafted = self._crafted.get(key)
            if crafted is not None:
                response.set_rcode(dns.rcode.Rcode.make(crafted[0]))
                response.answer.extend(crafted[1])
            else:
                self._resolve(response, question.name.canonicalize(), question.rdtype)
        return response

    def _resolve(self, response: dns.message.Message, name: dns.name.Name, rdtype: int) -> None:
        """Fill ``response`` for ``name``/``rdtype``; the caller holds the lock."""
        seen = {name}
        for hops in range(_MAX_CNAME_HOPS + 1):
            node = self._data.get(name)
            if node is None:
                if name == dns.name.root and rdtype == dns.rdatatype.SOA:
                    response.answer.append(self._soa())
                    return
                if name != dns.name.root and name not in self._below:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                response.authority.append(self._soa())
                return
            if rdtype == dns.rdatatype.ANY:
                response.answer.extend(self._served(rrset) for rrset in node.values())
                return
            rrset = node.get(rdtype)
            if rrset is not None:
                response.answer.append(self._served(rrset))
                return
            cname = node.get(dns.rdatatype.CNAME)
            if cname is None:
                response.authority.append(self._soa())
                return
            response.answer.append(self._served(cname))
            target = next(iter(cname)).target.canonicalize()
            if target in seen or hops == _MAX_CNAME_HOPS:
                return
            seen.add(target)
            name = target

    def _parse(
        self, wire: bytes, transport: str, source: tuple[Any, ...] = ()
    ) -> dns.message.Message | None:
        """Parse and record a query; None if it is not one we can answer."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            try:
                key = _question_key(dns.message.from_wire(wire, question_only=True))
            except Exception:
                key = None
            if key is not None:
                self._record(key, transport, source)
            return None
        if query.flags & dns.flags.QR:
            return None
        key = _question_key(query)
        if key is not None:
            self._record(key, transport, source)
        return query

    def _record(self, key: tuple[str, str], transport: str, source: tuple[Any, ...]) -> None:
        with self._arrived:
            self._log.append((key[0], key[1], transport))
            self._sources.append((key[0], key[1], transport, source, time.monotonic()))
            self._arrived.notify_all()

    @staticmethod
    def _typed(query: dns.message.Message, types: set[str]) -> bool:
        if not types or not query.question:
            return False
        qtype = dns.rdatatype.to_text(query.question[0].rdtype)
        return qtype in {t.upper() for t in types}

    def _dropped(self, query: dns.message.Message) -> bool:
        return self._typed(query, self.drop_types)

    # -- the UDP / accept loop -------------------------------------------------

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def _loop(self) -> None:
        while not self._closing.is_set():
            timeout: float | None = None
            if self._pending:
                timeout = max(0.0, self._pending[0][0] - time.monotonic())
            try:
                events = self._sel.select(timeout)
            except OSError:
                if self._closing.is_set():
                    return
                events = []
            for key, _ in events:
                try:
                    if key.data == "udp":
                        self._read_udp()
                    elif key.data == "tcp":
                        self._accept()
                    else:
                        self._wake_r.recv(4096)
                except Exception:
                    _log.debug("DNSServer loop error", exc_info=True)
            self._send_due()

    def _read_udp(self) -> None:
        for _ in range(_DRAIN_BATCH):
            try:
                wire, addr = self._udp.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionError:
                continue
            try:
                self._handle_udp(wire, addr)
            except Exception:
                _log.debug("DNSServer failed to answer a UDP query", exc_info=True)

    def _handle_udp(self, wire: bytes, addr: tuple[Any, ...]) -> None:
        query = self._parse(wire, "udp", addr)
        if query is None or not self._serving:
            return
        if self.drop_rate > 0 and self._rng.random() < self.drop_rate:
            return
        if self._dropped(query):
            return
        response = self._respond(query)
        if self.truncate or self._typed(query, self.truncate_types):
            response.answer = []
            response.authority = []
            response.additional = []
            response.flags |= dns.flags.TC
        limit = max(_UDP_LIMIT, query.payload) if query.edns >= 0 else _UDP_LIMIT
        reply = response.to_wire(max_size=min(limit, 65535), prefer_truncation=True)
        item = (
            time.monotonic() + self.delay,
            next(self._seq),
            addr,
            reply,
            query.id,
            self.wrong_id,
            _forge(query) if self.spoof_source else None,
        )
        if self.delay > 0:
            heapq.heappush(self._pending, item)
        else:
            self._send_udp(item)

    def _send_due(self) -> None:
        now = time.monotonic()
        while self._pending and self._pending[0][0] <= now:
            self._send_udp(heapq.heappop(self._pending))

    def _send_udp(self, item: _Pending) -> None:
        _, _, addr, reply, qid, wrong_id, forged = item
        if not self._serving:
            return
        try:
            if forged is not None:
                if self._spoof is None:
                    self._spoof = socket.socket(self._udp.family, socket.SOCK_DGRAM)
                    self._spoof.bind((self._address[0], 0))
                self._spoof.sendto(forged, addr)
            if wrong_id:
                bogus_id = (qid + self._rng.randint(1, 0xFFFF)) & 0xFFFF
                self._udp.sendto(bogus_id.to_bytes(2, "big") + reply[2:], addr)
                garbage = bytearray(self._rng.randbytes(self._rng.randint(12, 64)))
                if garbage[:2] == qid.to_bytes(2, "big"):
                    garbage[0] ^= 0xFF
                self._udp.sendto(bytes(garbage), addr)
            self._udp.sendto(reply, addr)
        except OSError:
            _log.debug("DNSServer failed to send a UDP reply", exc_info=True)

    # -- TCP -------------------------------------------------------------------

    def _accept(self) -> None:
        for _ in range(_DRAIN_BATCH):
            try:
                conn, peer = self._tcp.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                _log.debug("DNSServer accept failed", exc_info=True)
                return
            conn.settimeout(_POLL)
            thread = threading.Thread(
                target=self._serve_tcp,
                args=(conn, tuple(peer)),
                name=f"DNSServer-{self.address[1]}-tcp-{next(self._conn_ids)}",
                daemon=True,
            )
            with self._lock:
                self._conns[thread] = conn
            thread.start()

    def _recv_exact(self, conn: socket.socket, size: int) -> bytes | None:
        """Read ``size`` bytes; None on EOF, close(), error or idle timeout."""
        buf = bytearray()
        deadline = time.monotonic() + self.tcp_idle_timeout
        while len(buf) < size:
            if self._closing.is_set() or time.monotonic() >= deadline:
                return None
            try:
                chunk = conn.recv(size - len(buf))
            except TimeoutError:
                continue
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def _serve_tcp(self, conn: socket.socket, peer: tuple[Any, ...] = ()) -> None:
        try:
            while True:
                header = self._recv_exact(conn, 2)
                if header is None:
                    return
                size = int.from_bytes(header, "big")
                wire = self._recv_exact(conn, size) if size else None
                if wire is None:
                    return
                query = self._parse(wire, "tcp", peer)
                if query is None:
                    return
                if not self._serving or self._dropped(query):
                    continue
                response = self._respond(query)
                if self.delay > 0 and self._closing.wait(self.delay):
                    return
                if not self._serving:
                    continue
                reply = response.to_wire(
                    max_size=65535, prefer_truncation=True, prepend_length=True
                )
                conn.settimeout(max(self.tcp_idle_timeout, _POLL))
                try:
                    conn.sendall(reply)
                finally:
                    conn.settimeout(_POLL)
        except Exception:
            _log.debug("DNSServer TCP connection error", exc_info=True)
        finally:
            conn.close()
            with self._lock:
                self._conns.pop(threading.current_thread(), None)


#: What a forged reply claims, by query type.
FORGED_ADDRESSES = {dns.rdatatype.A: "203.0.113.66", dns.rdatatype.AAAA: "2001:db8:bad::66"}


def _forge(query: dns.message.Message) -> bytes:
    """A reply to ``query`` with its ID and question but a forged address."""
    forged = dns.message.make_response(query)
    question = query.question[0]
    address = FORGED_ADDRESSES.get(question.rdtype)
    if address is not None:
        forged.answer.append(
            dns.rrset.from_text(question.name, 300, dns.rdataclass.IN, question.rdtype, address)
        )
    return forged.to_wire()


def _zone_line(line: str) -> dns.rrset.RRset:
    """One ``"owner ttl class type data"`` line as an RRset."""
    try:
        name, ttl, rdclass, rdtype, *data = line.split()
        return dns.rrset.from_text(name, int(ttl), rdclass, rdtype, " ".join(data))
    except (ValueError, dns.exception.DNSException) as exc:
        raise ValueError(f"not a zone-file record line: {line!r}: {exc}") from exc


@functools.lru_cache(maxsize=16)
def _soa_rrset(ttl: int) -> dns.rrset.RRset:
    """The SOA of negative answers (shared between responses: never mutated)."""
    rdata = dns.rdata.from_text(
        dns.rdataclass.IN, dns.rdatatype.SOA, f"{_SOA_TEXT} {ttl}", relativize=False
    )
    rrset = dns.rrset.RRset(dns.name.root, dns.rdataclass.IN, dns.rdatatype.SOA)
    rrset.add(rdata, ttl)
    return rrset
