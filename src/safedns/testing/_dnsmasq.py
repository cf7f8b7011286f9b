"""A real dnsmasq on a loopback port, for integration tests and benchmarks.

:class:`Dnsmasq` runs ``dnsmasq`` as a child process that serves only the records it is
given and behaves like a cluster DNS for everything else: unknown names get NXDOMAIN, a
missing type gets NODATA (never REFUSED), and records carry a real TTL (dnsmasq's default
for its own records is 0). Every query is logged, and :meth:`Dnsmasq.queries` counts them
exactly: dnsmasq writes its log late, so counting sends a unique marker query and reads the
log up to the marker instead of sleeping.

Flags, and why (measured with dnsmasq 2.90):

``--conf-file=/dev/null``
    never read a system ``/etc/dnsmasq.conf`` (the full ``dnsmasq`` package installs one).
``--no-resolv --no-hosts``
    no upstream servers and no ``/etc/hosts``: only the given records exist.
``--local=/#/``
    every name is local, so unknown names get NXDOMAIN and missing types NODATA.
    ``--no-resolv`` alone answers REFUSED, and glibc then gives up on the search list.
``--host-record=NAME,[IPv4],[IPv6],TTL`` and ``--local-ttl=TTL``
    one option per IPv4/IPv6 pair (the syntax takes at most one of each), each with the TTL.
``--cname=ALIAS,TARGET,TTL``
    aliases; the target should be one of the records.
``--bind-interfaces --listen-address=HOST --port=N``
    bind exactly the loopback address and port, so parallel servers do not collide.
``--no-daemon``
    stay in the foreground as a child of this process. Unlike ``--keep-in-foreground`` it
    also answers TCP in the main process instead of forking a child per connection, so all
    log lines come from one process in the order the queries were answered: counting is
    exact for TCP too. It also keeps root, so the log file needs no privilege juggling
    (the file is still created first and handed to ``nobody`` when running as root, in case
    ``extra_args`` brings back a privilege drop). Its stderr copy of the log goes to
    ``output_path`` for diagnostics.
``--log-queries --log-facility=FILE``
    one ``query[TYPE] NAME from ADDR`` line per query, which :meth:`Dnsmasq.queries` parses.
No ``--cache-size``
    the default cache (150) is kept, like a caching cluster DNS. With ``--local=/#/``
    nothing is forwarded, so the cache does not change answers or counts.

dnsmasq's NXDOMAIN and NODATA replies carry no SOA record (CoreDNS's do): a client that
follows RFC 2308 to the letter will not cache them.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import TypeAlias

import dns.exception
import dns.message
import dns.query
import dns.rdatatype

__all__ = ["DNSMASQ", "Dnsmasq", "dnsmasq_available"]

DNSMASQ: str = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
"""Path of the dnsmasq binary (``PATH`` first, then Debian's location)."""

_MARKER_PREFIX = "safedns-marker-"
_MARKER_SUFFIX = ".invalid"
_QUERY_LINE = re.compile(r"\bquery\[([^\]]+)\] (\S+) from ")
_CLONE_NEWNET = 0x40000000
_START_ATTEMPTS = 5
_READY_TIMEOUT = 10.0
_MARKER_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0

Records: TypeAlias = "Mapping[str, Sequence[str] | str] | Iterable[tuple[str, str]]"


def dnsmasq_available() -> bool:
    """True when the dnsmasq binary (:data:`DNSMASQ`) exists and is executable."""
    return os.path.isfile(DNSMASQ) and os.access(DNSMASQ, os.X_OK)


def socket_in_netns(netns: str | None, family: int, kind: int) -> socket.socket:
    """Create a socket in network namespace ``netns`` (the current one when ``None``).

    A socket keeps the namespace it was created in, so this switches a short-lived helper
    thread into the namespace (``setns(2)`` on a thread only affects that thread), creates
    the socket there and hands it back; the socket then works from any thread. Needs root.
    """
    if netns is None:
        return socket.socket(family, kind)
    result: list[socket.socket | BaseException] = []

    def create() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(os.path.join("/var/run/netns", netns), os.O_RDONLY | os.O_CLOEXEC)
            try:
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({netns!r}): {os.strerror(err)}")
            finally:
                os.close(fd)
            result.append(socket.socket(family, kind))
        except BaseException as exc:  # handed to the calling thread
            result.append(exc)

    thread = threading.Thread(target=create, name=f"netns-socket-{netns}", daemon=True)
    thread.start()
    thread.join()
    item = result[0]
    if isinstance(item, BaseException):
        raise item
    return item


def _normalize_records(records: Records) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    pairs: Iterable[tuple[str, str]]
    if isinstance(records, Mapping):
        pairs = (
            (name, addr)
            for name, addrs in records.items()
            for addr in ([addrs] if isinstance(addrs, str) else addrs)
        )
    else:
        pairs = records
    for name, addr in pairs:
        key = _dnsmasq_name(name)
        grouped.setdefault(key, []).append(str(ipaddress.ip_address(addr)))
    return grouped


def _dnsmasq_name(name: str) -> str:
    stripped = name.rstrip(".")
    if not stripped or "," in stripped or any(c.isspace() for c in stripped):
        raise ValueError(f"invalid record name: {name!r}")
    return stripped


def _host_record_args(records: Mapping[str, Sequence[str]], ttl: int) -> list[str]:
    args = []
    for name, addrs in records.items():
        v4 = [a for a in addrs if ipaddress.ip_address(a).version == 4]
        v6 = [a for a in addrs if ipaddress.ip_address(a).version == 6]
        for a4, a6 in itertools.zip_longest(v4, v6, fillvalue=""):
            fields = [name, a4, a6] if a4 and a6 else [name, a4 or a6]
            if ttl > 0:
                fields.append(str(ttl))
            args.append("--host-record=" + ",".join(fields))
    return args


def _qtype_text(raw: str) -> str:
    if raw.startswith("type="):  # dnsmasq's spelling for types it has no name for
        with contextlib.suppress(ValueError):
            return dns.rdatatype.to_text(dns.rdatatype.RdataType.make(int(raw[5:])))
    return raw.upper()


def _absolute(name: str) -> str:
    name = name.lower()
    return name if name.endswith(".") else name + "."


def _is_marker(qname: str) -> bool:
    return qname.startswith(_MARKER_PREFIX) and qname.endswith(_MARKER_SUFFIX + ".")


def _terminate(proc: subprocess.Popen[bytes], timeout: float = _STOP_TIMEOUT) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()


def _cleanup(proc: subprocess.Popen[bytes] | None, workdir: str | None) -> None:
    if proc is not None:
        _terminate(proc)
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)


class Dnsmasq:
    """A dnsmasq child process serving ``records`` on ``host:port``.

    ``records`` maps names to addresses (IPv4 and/or IPv6), or is an iterable of
    ``(name, address)`` pairs; ``cnames`` maps alias to target. Records are served with TTL
    ``ttl``. ``port=0`` picks a free port. With ``netns``, dnsmasq runs inside that network
    namespace (``ip netns exec``), and this object's own queries (markers, :meth:`query`)
    are sent from inside it too. ``log_queries=False`` drops query logging (slightly
    faster for benchmarks; :meth:`queries` then raises). ``extra_args`` are appended to
    the command line.

    Use as a context manager, or call :meth:`start` and :meth:`close`.
    """

    def __init__(
        self,
        records: Records = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ttl: int = 300,
        cnames: Mapping[str, str] | None = None,
        netns: str | None = None,
        binary: str | None = None,
        log_queries: bool = True,
        extra_args: Sequence[str] = (),
    ) -> None:
        if ttl < 0:
            raise ValueError("ttl must be >= 0")
        if not 0 <= port <= 65535:
            raise ValueError(f"invalid port: {port}")
        self.records: dict[str, list[str]] = _normalize_records(records)
        self.cnames: dict[str, str] = {
            _dnsmasq_name(alias): _dnsmasq_name(target) for alias, target in (cnames or {}).items()
        }
        self.host = str(ipaddress.ip_address(host))
        self.ttl = ttl
        self.netns = netns
        self.binary = binary or DNSMASQ
        self.log_queries = log_queries
        self.extra_args = list(extra_args)
        self._requested_port = port
        self._port = port
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir: str | None = None
        self._finalizer: weakref.finalize[..., Dnsmasq] | None = None
        self._log_offset = 0
        self._lock = threading.Lock()

    # -- properties -------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port served on (the chosen one once started when ``port=0``)."""
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``."""
        return (self.host, self._port)

    @property
    def nameserver(self) -> str:
        """``"host:port"`` (``"[host]:port"`` for IPv6)."""
        if ipaddress.ip_address(self.host).version == 6:
            return f"[{self.host}]:{self._port}"
        return f"{self.host}:{self._port}"

    @property
    def family(self) -> int:
        """Address family of :attr:`host`."""
        return socket.AF_INET6 if ipaddress.ip_address(self.host).version == 6 else socket.AF_INET

    @property
    def running(self) -> bool:
        """True while the dnsmasq process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id of dnsmasq (``ip netns exec`` execs it, so this is dnsmasq itself)."""
        return None if self._proc is None else self._proc.pid

    @property
    def log_path(self) -> str:
        """The query log file (valid while started)."""
        return os.path.join(self._require_workdir(), "dnsmasq.log")

    @property
    def output_path(self) -> str:
        """dnsmasq's stdout/stderr, for diagnostics (valid while started)."""
        return os.path.join(self._require_workdir(), "dnsmasq.out")

    def output(self) -> str:
        """dnsmasq's stdout/stderr so far ("" when not started)."""
        if self._workdir is None:
            return ""
        try:
            with open(self.output_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    # -- lifecycle --------------------------------------------------------------------

    def command(self) -> list[str]:
        """The full command line for the current port and work directory."""
        args = [
            self.binary,
            "--conf-file=/dev/null",
            "--no-daemon",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            f"--listen-address={self.host}",
            f"--port={self._port}",
            "--local=/#/",
            f"--local-ttl={self.ttl}",
        ]
        if self.log_queries:
            args += ["--log-queries", f"--log-facility={self.log_path}"]
        else:
            args.append("--log-facility=-")
        args += _host_record_args(self.records, self.ttl)
        for alias, target in self.cnames.items():
            args.append(f"--cname={alias},{target}" + (f",{self.ttl}" if self.ttl > 0 else ""))
        args += self.extra_args
        if self.netns is not None:
            args = ["ip", "netns", "exec", self.netns, *args]
        return args

    def start(self) -> Dnsmasq:
        """Start dnsmasq and wait until it answers. Returns ``self``."""
        if self._proc is not None:
            if self.running:
                return self
            raise RuntimeError("dnsmasq was started and has exited; create a new Dnsmasq")
        if not os.path.exists(self.binary):
            raise FileNotFoundError(f"dnsmasq binary not found: {self.binary}")
        self._workdir = tempfile.mkdtemp(prefix="safedns-dnsmasq-")
        os.chmod(self._workdir, 0o755)
        self._finalizer = weakref.finalize(self, _cleanup, None, self._workdir)
        attempts = _START_ATTEMPTS if self._requested_port == 0 else 1
        error = ""
        for _ in range(attempts):
            if self._requested_port == 0:
                self._port = self._free_port()
            proc = self._spawn()
            error = self._wait_ready(proc)
            if not error:
                self._finalizer.detach()
                self._finalizer = weakref.finalize(self, _cleanup, proc, self._workdir)
                self._proc = proc
                self._log_offset = 0
                return self
            _terminate(proc)
            if "in use" not in error:
                break
        self.close()
        raise RuntimeError(f"dnsmasq failed to start on {self.host}:{self._port}: {error}")

    def _spawn(self) -> subprocess.Popen[bytes]:
        with open(self.log_path, "wb"):
            pass
        if os.geteuid() == 0:
            with contextlib.suppress(KeyError, OSError):
                nobody = pwd.getpwnam("nobody")
                os.chown(self.log_path, nobody.pw_uid, nobody.pw_gid)
        with open(self.output_path, "ab") as out:
            return subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                close_fds=True,
            )

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> str:
        """Wait until ``proc`` answers a query; return "" or an error description."""
        deadline = time.monotonic() + _READY_TIMEOUT
        timeout = 0.01  # a UDP query to a port nobody listens on yet just times out
        while True:
            rc = proc.poll()
            if rc is not None:
                return f"exited with status {rc}: {self.output().strip()}"
            try:
                self.query(self._marker_name(), "TXT", timeout=timeout)
                return ""
            except (dns.exception.Timeout, OSError):
                pass
            if time.monotonic() > deadline:
                return f"no answer within {_READY_TIMEOUT} s: {self.output().strip()}"
            timeout = min(timeout * 2, 0.5)

    def _free_port(self) -> int:
        """A port free for both UDP and TCP on :attr:`host` (in :attr:`netns`)."""
        for _ in range(50):
            with self._socket(socket.SOCK_DGRAM) as udp:
                udp.bind((self.host, 0))
                port = int(udp.getsockname()[1])
                with self._socket(socket.SOCK_STREAM) as tcp:
                    try:
                        tcp.bind((self.host, port))
                    except OSError:
                        continue
                    return port
        raise RuntimeError(f"no free UDP+TCP port on {self.host}")

    def stop(self) -> None:
        """Stop dnsmasq (SIGTERM, then SIGKILL after a timeout) and remove its files.

        Idempotent; safe if :meth:`start` failed or was never called.
        """
        proc, self._proc = self._proc, None
        if proc is not None:
            _terminate(proc)
        if self._finalizer is not None:
            self._finalizer()  # removes the work directory (and the process, if any)
            self._finalizer = None
        self._workdir = None

    close = stop

    def __enter__(self) -> Dnsmasq:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        where = f" netns={self.netns}" if self.netns else ""
        return f"<Dnsmasq {self.nameserver}{where} {state}>"

    # -- querying ---------------------------------------------------------------------

    def _socket(self, kind: int) -> socket.socket:
        return socket_in_netns(self.netns, self.family, kind)

    def query(
        self, qname: str, rdtype: str = "A", *, tcp: bool = False, timeout: float = 2.0
    ) -> dns.message.Message:
        """Send one query to this server (from inside :attr:`netns` if set)."""
        q = dns.message.make_query(qname, rdtype)
        if tcp:
            with self._socket(socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(self.address)
                sock.setblocking(False)
                return dns.query.tcp(q, self.host, timeout=timeout, port=self._port, sock=sock)
        with self._socket(socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            return dns.query.udp(q, self.host, timeout=timeout, port=self._port, sock=sock)

    def _marker_name(self) -> str:
        return f"{_MARKER_PREFIX}{uuid.uuid4().hex}{_MARKER_SUFFIX}."

    def _require_workdir(self) -> str:
        if self._workdir is None:
            raise RuntimeError("dnsmasq is not started")
        return self._workdir

    def _read_to_marker(self) -> tuple[bytes, int]:
        """Send a marker query; return the log bytes from the clear point to the marker's
        line, and the offset just past that line."""
        if not self.log_queries:
            raise RuntimeError("query counting needs log_queries=True")
        if not self.running:
            raise RuntimeError(f"dnsmasq is not running: {self.output().strip()}")
        marker = self._marker_name()
        needle = f"query[TXT] {marker[:-1]} from ".encode()
        self.query(marker, "TXT", timeout=2.0)
        deadline = time.monotonic() + _MARKER_TIMEOUT
        delay = 0.001
        while True:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                data = f.read()
            pos = data.find(needle)
            if pos >= 0:
                end = data.find(b"\n", pos)
                end = len(data) if end < 0 else end + 1
                return data[:pos], self._log_offset + end
            if time.monotonic() > deadline:
                raise RuntimeError(f"marker {marker} not logged within {_MARKER_TIMEOUT} s")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def queries(self) -> list[tuple[str, str]]:
        """Queries received since the last :meth:`clear` (or start), in order.

        Each is ``(qname, qtype)``: the name absolute and lower case (``"api.example.com."``),
        the type as text (``"A"``, ``"AAAA"``). This object's marker queries are left out.
        """
        with self._lock:
            data, _ = self._read_to_marker()
        result = []
        for line in data.decode("utf-8", "replace").splitlines():
            m = _QUERY_LINE.search(line)
            if m is None:
                continue
            qname = _absolute(m.group(2))
            if not _is_marker(qname):
                result.append((qname, _qtype_text(m.group(1))))
        return result

    def clear(self) -> None:
        """Forget the queries so far: later :meth:`queries` only count what comes after."""
        with self._lock:
            _, self._log_offset = self._read_to_marker()
