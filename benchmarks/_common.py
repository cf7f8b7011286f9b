"""What every scenario shares: sizes, the environment, the DNS server the peers
talk to, child processes (inside the network namespace when there is one),
statistics and the machine description."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import json
import math
import os
import platform
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from safedns._app.replay import EXTERNAL, MIX, NDOTS, SEARCH, SERVICES, glibc_plan
from safedns.testing import (
    DNSMASQ,
    Dnsmasq,
    DNSServer,
    GlibcNamespace,
    dnsmasq_available,
    netns_available,
)

__all__ = [
    "EXTERNAL",
    "MIX",
    "NDOTS",
    "REPO_ROOT",
    "SEARCH",
    "SERVICES",
    "Child",
    "Context",
    "DnsSetup",
    "Env",
    "Server",
    "Sizes",
    "expected_outcome",
    "machine_info",
    "median",
    "open_server",
    "percentile",
    "pinned",
    "rss_bytes",
    "short",
    "workload_records",
]

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Set to 1 to run as if network namespaces were unavailable (tests the fallback).
NO_NETNS_ENV = "SAFEDNS_BENCH_NO_NETNS"


# --------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class Sizes:
    """How big each scenario runs: ``full`` (the issue's sizes), ``quick`` (every
    scenario, under a minute) or ``tiny`` (the smoke test)."""

    level: str
    #: Amplification: lookups of the weighted workload after the first lookups.
    amp_repeats: int
    #: Hit latency: rounds (one batch per peer each), target batch length, per-call samples.
    hit_rounds: int
    hit_batch_ns: int
    hit_samples: int
    #: Burst: numbers of concurrent callers.
    burst: tuple[int, ...]
    #: Outage: seconds the server is stopped, record TTL, lookups per second per peer,
    #: healthy seconds before the outage, longest wait for lookups after it.
    outage_seconds: float
    outage_ttl: int
    outage_rate: float
    outage_before: float
    outage_grace: float
    #: Scale: cached names per run; flood of missing names with the default query budget,
    #: and with the budget lifted (every name reaches the server and the negative cache).
    scale_sizes: tuple[int, ...]
    scale_flood: int
    scale_flood_unbudgeted: int
    scale_samples: int
    #: httpx: requests per client and mode; requests to the black-holed name per client;
    #: kept-alive requests per client before, and again during, the DNS outage.
    httpx_requests: int
    httpx_hole_requests: int
    httpx_outage_requests: int


SIZES: dict[str, Sizes] = {
    "tiny": Sizes(
        level="tiny",
        amp_repeats=40,
        hit_rounds=6,
        hit_batch_ns=200_000,
        hit_samples=200,
        burst=(10,),
        outage_seconds=1.5,
        outage_ttl=1,
        outage_rate=10,
        outage_before=0.6,
        outage_grace=6,
        scale_sizes=(1000, 3000),
        scale_flood=3000,
        scale_flood_unbudgeted=2500,
        scale_samples=200,
        httpx_requests=40,
        httpx_hole_requests=2,
        httpx_outage_requests=20,
    ),
    "quick": Sizes(
        level="quick",
        amp_repeats=500,
        hit_rounds=120,
        hit_batch_ns=1_000_000,
        hit_samples=2000,
        burst=(10, 100),
        outage_seconds=3,
        outage_ttl=2,
        outage_rate=20,
        outage_before=1,
        outage_grace=6,
        scale_sizes=(1000, 10_000),
        scale_flood=20_000,
        scale_flood_unbudgeted=5000,
        scale_samples=1000,
        httpx_requests=1000,
        httpx_hole_requests=7,
        httpx_outage_requests=300,
    ),
    "full": Sizes(
        level="full",
        amp_repeats=10_000,
        hit_rounds=300,
        hit_batch_ns=2_000_000,
        hit_samples=20_000,
        burst=(10, 100, 1000),
        outage_seconds=30,
        outage_ttl=5,
        outage_rate=20,
        outage_before=2,
        outage_grace=25,
        scale_sizes=(1000, 10_000, 100_000),
        scale_flood=1_000_000,
        scale_flood_unbudgeted=100_000,
        scale_samples=1000,
        httpx_requests=10_000,
        httpx_hole_requests=21,
        httpx_outage_requests=1000,
    ),
}


# --------------------------------------------------------------------------- environment


@dataclass(frozen=True)
class Env:
    """What this machine allows."""

    netns: bool
    netns_reason: str
    dnsmasq: bool

    @classmethod
    def detect(cls) -> Env:
        dnsmasq = dnsmasq_available()
        if os.environ.get(NO_NETNS_ENV) == "1":
            return cls(False, f"disabled by {NO_NETNS_ENV}=1", dnsmasq)
        if netns_available():
            return cls(True, "", dnsmasq)
        if not hasattr(os, "geteuid") or os.geteuid() != 0:
            reason = "needs root for a network namespace (glibc only uses port 53)"
        elif not dnsmasq:
            reason = "dnsmasq is not installed (apt-get install dnsmasq-base)"
        elif shutil.which("ip") is None:
            reason = "iproute2 (ip) is not installed"
        else:
            reason = "network namespaces do not work here (ip netns add failed)"
        return cls(False, reason, dnsmasq)


@dataclass
class Context:
    sizes: Sizes
    env: Env
    pin: bool = True
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- workload


def workload_records() -> dict[str, list[str]]:
    """The outage workload's zone: external names (A + AAAA) and cluster services (A)."""
    records: dict[str, list[str]] = {name: list(addrs) for name, addrs in EXTERNAL.items()}
    records.update({name: [addr] for name, addr in SERVICES.items()})
    return records


def expected_outcome(name: str, records: Mapping[str, Sequence[str]]) -> tuple[str, ...] | str:
    """The answer a correct getaddrinfo gives for ``name`` under the k8s resolv.conf:
    the addresses of the first candidate (glibc's order) that has records."""
    for candidate in glibc_plan(name, SEARCH, NDOTS):
        addrs = records.get(candidate.rstrip("."))
        if addrs:
            return tuple(sorted(addrs))
    return "not found"


# --------------------------------------------------------------------------- DNS setup


@dataclass(frozen=True)
class DnsSetup:
    """How a peer finds the server: the system's resolv.conf (inside the namespace,
    where it names the namespace's dnsmasq) or explicit settings."""

    system: bool
    nameserver: str | None = None
    search: tuple[str, ...] = SEARCH
    ndots: int = NDOTS

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DnsSetup:
        return cls(
            system=bool(data["system"]),
            nameserver=data.get("nameserver"),
            search=tuple(data.get("search", SEARCH)),
            ndots=int(data.get("ndots", NDOTS)),
        )

    def host_port(self) -> tuple[str, int]:
        assert self.nameserver is not None
        host, _, port = self.nameserver.rpartition(":")
        return host.strip("[]"), int(port)


class Server:
    """The DNS server of one scenario: counts queries, can be stopped (an outage)."""

    def __init__(
        self,
        kind: str,
        setup: DnsSetup,
        *,
        netns: GlibcNamespace | None = None,
        dnsmasq: Dnsmasq | None = None,
        embedded: DNSServer | None = None,
    ) -> None:
        self.kind = kind
        self.setup = setup
        self.netns = netns
        self._dnsmasq = dnsmasq if netns is None else netns.dnsmasq
        self._embedded = embedded
        self._restarted: Dnsmasq | None = None
        self._paused = False

    @property
    def description(self) -> str:
        return {
            "netns": "dnsmasq on 127.0.0.1:53 in a network namespace (k8s resolv.conf)",
            "dnsmasq": "dnsmasq on a loopback port (no namespace: peers configured explicitly)",
            "embedded": "safedns.testing.DNSServer (no dnsmasq: peers configured explicitly)",
        }[self.kind]

    def clear(self) -> None:
        if self._dnsmasq is not None:
            self._dnsmasq.clear()
        elif self._embedded is not None:
            self._embedded.clear()

    def queries(self) -> list[tuple[str, str]]:
        if self._dnsmasq is not None:
            return self._dnsmasq.queries()
        assert self._embedded is not None
        return self._embedded.queries

    def count(self) -> int:
        return len(self.queries())

    def _snmp(self, path: str, prefix: str) -> dict[str, int] | None:
        """The UDP counters of the namespace's ``/proc/net/snmp`` (``Udp:`` rows,
        a header then the values) or ``snmp6`` (``Udp6Name value`` lines)."""
        if self.netns is None:
            return None
        out = subprocess.run(
            self.netns.command("cat", path),
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
        rows = [line.split() for line in out.splitlines() if line.startswith(prefix)]
        if prefix.endswith(":"):
            if len(rows) < 2:
                return None
            return {k: int(v) for k, v in zip(rows[0][1:], rows[1][1:], strict=False)}
        return {row[0][len(prefix) :]: int(row[1]) for row in rows if len(row) == 2}

    def udp_receive_errors(self) -> int | None:
        """UDP datagrams dropped in the namespace because a receive buffer was full:
        queries the server never saw (or replies a client never got). None without one."""
        fields = self._snmp("/proc/net/snmp", "Udp:")
        return None if fields is None else fields.get("RcvbufErrors", 0)

    def udp_sent(self) -> int | None:
        """UDP datagrams sent in the namespace so far (IPv4 and IPv6). While the
        server is stopped (frozen: it sends nothing, and reads nothing, so its own
        log cannot count), the difference of two readings is the DNS queries the
        clients sent. None without a namespace."""
        v4 = self._snmp("/proc/net/snmp", "Udp:")
        v6 = self._snmp("/proc/net/snmp6", "Udp6")
        if v4 is None:
            return None
        return v4.get("OutDatagrams", 0) + (v6 or {}).get("OutDatagrams", 0)

    def stop(self) -> None:
        """Stop answering. dnsmasq is frozen (SIGSTOP): it keeps its port, so queries
        are neither answered nor refused, as with a dead or unreachable server."""
        self._paused = True
        if self._dnsmasq is not None:
            assert self._dnsmasq.pid is not None
            os.kill(self._dnsmasq.pid, signal.SIGSTOP)
        elif self._embedded is not None:
            self._embedded.stop()

    def start(self) -> None:
        """Answer again. A frozen dnsmasq is killed and a fresh one started on the same
        address: the queries sent during the outage are dropped with the old socket
        (a restarted server never answers them), and the cache starts empty."""
        if not self._paused:
            return
        self._paused = False
        old = self._dnsmasq
        if old is not None:
            with contextlib.suppress(ProcessLookupError, TypeError):
                os.kill(old.pid, signal.SIGKILL)  # type: ignore[arg-type]
            old.stop()
            fresh = Dnsmasq(
                old.records,
                host=old.host,
                port=old.port,
                ttl=old.ttl,
                cnames=old.cnames,
                netns=old.netns,
                log_queries=old.log_queries,
                extra_args=old.extra_args,
            )
            self._dnsmasq = self._restarted = fresh
            fresh.start()
        elif self._embedded is not None:
            self._embedded.start()

    def close(self) -> None:
        if self._paused and self._dnsmasq is not None and self._dnsmasq.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._dnsmasq.pid, signal.SIGKILL)
        if self._restarted is not None:
            self._restarted.close()
        if self.netns is not None:
            self.netns.close()
        elif self._dnsmasq is not None:
            self._dnsmasq.close()
        elif self._embedded is not None:
            self._embedded.close()


@contextlib.contextmanager
def open_server(
    env: Env,
    records: Mapping[str, Sequence[str]],
    ttl: int,
    *,
    log_queries: bool = True,
    extra_args: Sequence[str] = (),
    use_netns: bool = True,
) -> Iterator[Server]:
    """The best server this machine allows: dnsmasq in a namespace (real glibc can
    use it), else dnsmasq on a loopback port, else the embedded server."""
    server: Server
    if env.netns and use_netns:
        ns = GlibcNamespace(records, search=SEARCH, ndots=NDOTS, ttl=ttl)
        ns.start()
        server = Server("netns", DnsSetup(system=True), netns=ns)
    elif env.dnsmasq:
        dm = Dnsmasq(records, ttl=ttl, log_queries=log_queries, extra_args=extra_args)
        dm.start()
        server = Server("dnsmasq", DnsSetup(system=False, nameserver=dm.nameserver), dnsmasq=dm)
    else:
        srv = DNSServer(negative_ttl=ttl)
        for name, addrs in records.items():
            for addr in addrs:
                srv.add(name, "AAAA" if ":" in addr else "A", addr, ttl=ttl)
        server = Server(
            "embedded", DnsSetup(system=False, nameserver=srv.nameserver), embedded=srv
        )
    try:
        yield server
    finally:
        server.close()


# --------------------------------------------------------------------------- children


class ChildError(RuntimeError):
    pass


class Child:
    """A Python child process running a generator ``module.func(params)``.

    Protocol: the child writes each value the generator yields as one JSON line
    on stdout; the parent answers with one JSON line on stdin, which the child
    sends into the generator. Closing stdin ends the child. Runs inside
    ``netns`` when given (``ip netns exec``), so glibc there uses its dnsmasq.
    """

    def __init__(
        self,
        module: str,
        func: str,
        params: Mapping[str, Any],
        *,
        netns: GlibcNamespace | None = None,
    ) -> None:
        argv = [sys.executable, "-m", "benchmarks._child", module, func]
        if netns is not None:
            argv = netns.command(*argv)
        paths = [str(REPO_ROOT), *(p or os.getcwd() for p in sys.path)]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(dict.fromkeys(paths)))
        env.pop(NO_NETNS_ENV, None)
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=REPO_ROOT,
            env=env,
        )
        self._buffer = b""
        self.send(dict(params))

    def send(self, message: Any) -> None:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(json.dumps(message).encode() + b"\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            raise ChildError(f"child exited early: {self.stderr()}") from None

    def receive(self, timeout: float = 120.0) -> Any:
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise ChildError(f"child gave no answer within {timeout:g} s: {self.stderr()}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    self._proc.wait()
                    raise ChildError(
                        f"child exited ({self._proc.returncode}) without an answer: "
                        f"{self.stderr()}"
                    )
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        reply = json.loads(line)
        if isinstance(reply, dict) and "child_error" in reply:
            raise ChildError(reply["child_error"])
        return reply

    def step(self, message: Any = None, timeout: float = 120.0) -> Any:
        self.send(message)
        return self.receive(timeout)

    def stderr(self) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace").strip()
        return text[-3000:] or "(no stderr)"

    def kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def close(self, timeout: float = 30.0) -> None:
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._stderr.close()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def short(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, for a table cell."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100) of ``values`` (not empty)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def rss_bytes() -> int:
    """Resident set size of this process now."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


@contextlib.contextmanager
def pinned(enabled: bool = True) -> Iterator[int | None]:
    """Pin the calling thread to one CPU (the last one allowed) while inside."""
    if not enabled or not hasattr(os, "sched_setaffinity"):
        yield None
        return
    before = os.sched_getaffinity(0)
    cpu = max(before)
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:
        yield None
        return
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, before)


# --------------------------------------------------------------------------- machine


_PACKAGES = (
    "safedns",
    "dnspython",
    "cachetools",
    "aiodns",
    "pycares",
    "aiohttp",
    "httpx",
    "httpcore",
)


def _first_line(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({exc})"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "unknown"
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) // 1024:,} MiB"
                break
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION") or "unknown"
    except (ValueError, OSError):
        glibc = " ".join(platform.libc_ver())
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    with contextlib.suppress(ImportError, AttributeError):
        import pycares

        versions["c-ares"] = str(pycares.ARES_VERSION)
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    dnsmasq = _first_line([DNSMASQ, "--version"]) if os.path.exists(DNSMASQ) else "not installed"
    virtualization = []
    if shutil.which("lscpu"):
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in lscpu.splitlines():
            if line.startswith(("Hypervisor vendor:", "Virtualization type:")):
                virtualization.append(line.split(":", 1)[1].strip())
    if shutil.which("systemd-detect-virt"):
        virtualization.append(f"systemd-detect-virt: {_first_line(['systemd-detect-virt'])}")
    info: dict[str, Any] = {
        "uname -a": _first_line(["uname", "-a"]),
        "cpu": cpu,
        "cores": f"{os.cpu_count()} logical ({affinity} usable by this process)",
        "memory": mem,
        "virtualization": ", ".join(virtualization) or "none detected",
        "load average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "glibc": glibc,
        "dnsmasq": dnsmasq,
        "packages": versions,
        "root": hasattr(os, "geteuid") and os.geteuid() == 0,
    }
    info["summary"] = f"{cpu}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, {glibc}"
    return info
