"""The replay: a Kubernetes-like lookup workload, run through glibc's search
order (the baseline) and through safedns, against one embedded DNS server.

Phase 1 (amplification) counts the queries that reach the server for the
same seeded lookups on each side. Phase 2 (outage) lets the records expire,
stops the server, and measures which side still gives the answers it gave
while DNS was healthy.

``glibc_plan`` and ``GlibcBaseline`` are reusable: benchmarks compare against
them. The baseline reproduces glibc 2.36's ``getaddrinfo(host, port)`` with
``AF_UNSPEC`` under ``res_search``: A and AAAA for each candidate name until
one has data, no cache.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Protocol, TextIO

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from safedns._config import ResolverConfig
from safedns._exceptions import NameNotFound, TemporaryFailure
from safedns._planning import encode_name
from safedns._resolver import Resolver
from safedns.testing._server import DNSServer

__all__ = [
    "EXTERNAL",
    "FAILED",
    "MIX",
    "NDOTS",
    "NOT_FOUND",
    "SEARCH",
    "SERVICES",
    "GlibcBaseline",
    "Outcome",
    "Progress",
    "Recorder",
    "ReplayReport",
    "build_zone",
    "format_report",
    "glibc_plan",
    "run_replay",
    "safedns_outcome",
    "workload",
]

#: The search list and ndots of a pod in namespace ``ns1`` (Kubernetes defaults).
SEARCH = ("ns1.svc.cluster.local", "svc.cluster.local", "cluster.local")
NDOTS = 5

#: External names, with their A and AAAA addresses.
EXTERNAL: dict[str, tuple[str, str]] = {
    "api.example.com": ("192.0.2.10", "2001:db8::10"),
    "cdn.example.net": ("192.0.2.20", "2001:db8::20"),
    "auth.example.org": ("192.0.2.30", "2001:db8::30"),
    "metrics.example.io": ("192.0.2.40", "2001:db8::40"),
}
#: Cluster services (A only), by fully qualified name.
SERVICES: dict[str, str] = {
    "my-svc.ns1.svc.cluster.local": "10.0.0.5",
    "orders.ns1.svc.cluster.local": "10.0.0.6",
    "payments.ns1.svc.cluster.local": "10.0.0.7",
    "catalog.ns2.svc.cluster.local": "10.0.1.5",
}
#: The workload: (kind, share of lookups, names of that kind drawn uniformly).
MIX: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("external", 0.40, tuple(EXTERNAL)),
    ("internal short", 0.25, ("my-svc", "orders", "payments")),
    (
        "internal dotted",
        0.20,
        ("my-svc.ns1", "orders.ns1", "catalog.ns2", "my-svc.ns1.svc.cluster.local"),
    ),
    ("missing", 0.15, ("nonexistent.example.com", "missing-svc")),
)

#: Outcome of a lookup: the sorted addresses, ``NOT_FOUND`` or ``FAILED``.
Outcome = tuple[str, ...] | str
NOT_FOUND = "not found"
FAILED = "temporary failure"

_MAX_NAME = 253
_OUTAGE_RATE = 60.0  # outage lookups per second, per side
_OUTAGE_CAP = 300  # at most this many outage lookups per side
_OUTAGE_WORKERS = 32
_CHUNK = 1000  # baseline lookups per task in a worker process
_RECORDED_CHUNK = 100  # ... when a timeline records the answers as they come


# ----------------------------------------------------------------- the baseline


def glibc_plan(name: str, search: Sequence[str], ndots: int) -> list[str]:
    """The names glibc's ``res_search`` tries for ``name``, in order.

    A trailing dot means only the name itself. Otherwise the name as-is comes
    first if it has at least ``ndots`` dots, then each search domain, then the
    name as-is if not tried yet. Names are lower case and absolute; search
    candidates longer than 253 octets are skipped. Raises ``InvalidName``.
    """
    encoded = encode_name(name)
    if encoded.endswith("."):
        return [encoded]
    absolute = f"{encoded}."
    searched = [
        f"{encoded}.{domain}."
        for domain in (d.strip(".").lower() for d in search)
        if domain and len(encoded) + 1 + len(domain) <= _MAX_NAME
    ]
    if encoded.count(".") >= ndots:
        return [absolute, *searched]
    return [*searched, absolute]


class GlibcBaseline:
    """What the standard library does: glibc's search order over dnspython.

    Each lookup asks every type in ``rdtypes`` (A and AAAA, as
    ``getaddrinfo`` with ``AF_UNSPEC``) for each candidate of ``glibc_plan``
    until one has data. Nothing is cached. As in ``res_search``, NXDOMAIN,
    NODATA and SERVFAIL move on to the next search domain; a timeout or
    another error (REFUSED, ...) ends the search list, but the name as-is is
    still tried if it was not first. Thread-safe: each thread has its own socket.
    """

    def __init__(
        self,
        server: tuple[str, int],
        search: Sequence[str] = SEARCH,
        ndots: int = NDOTS,
        *,
        timeout: float = 2.0,
        rdtypes: Sequence[str] = ("A", "AAAA"),
    ) -> None:
        self.server = server
        self.search = tuple(search)
        self.ndots = ndots
        self.timeout = timeout
        self.rdtypes = tuple(rdtypes)
        self._local = threading.local()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def lookup(self, name: str) -> Outcome:
        """The outcome of one ``getaddrinfo``-like lookup of ``name``."""
        candidates = glibc_plan(name, self.search, self.ndots)
        as_is = candidates[0] if name.endswith(".") else f"{encode_name(name)}."
        failed = stop_search = False
        for candidate in candidates:
            if stop_search and candidate != as_is:
                continue
            replies = [self._query(candidate, rdtype) for rdtype in self.rdtypes]
            addresses = [a for reply in replies if isinstance(reply, tuple) for a in reply]
            if addresses:
                return tuple(sorted(addresses))
            if "error" in replies:
                failed = True
                stop_search = stop_search or candidate != as_is
            elif "servfail" in replies:
                failed = True
        return FAILED if failed else NOT_FOUND

    def close(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()

    def __enter__(self) -> GlibcBaseline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _socket(self) -> socket.socket:
        sock: socket.socket | None = getattr(self._local, "sock", None)
        if sock is None:
            family = socket.AF_INET6 if ":" in self.server[0] else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setblocking(False)  # dnspython requires it for a socket it is given
            self._local.sock = sock
            with self._lock:
                self._sockets.append(sock)
        return sock

    def _query(self, qname: str, rdtype: str) -> tuple[str, ...] | str:
        """Records of ``rdtype`` (maybe none), or "nxdomain", "servfail" or "error"
        (a timeout, REFUSED or any other failure)."""
        query = dns.message.make_query(qname, rdtype)
        host, port = self.server
        try:
            response = dns.query.udp(
                query,
                host,
                port=port,
                timeout=self.timeout,
                sock=self._socket(),
                ignore_unexpected=True,
                ignore_errors=True,
            )
        except (dns.exception.DNSException, OSError):
            return "error"
        rcode = response.rcode()
        if rcode == dns.rcode.NXDOMAIN:
            return "nxdomain"
        if rcode == dns.rcode.SERVFAIL:
            return "servfail"
        if rcode != dns.rcode.NOERROR:
            return "error"
        wanted = dns.rdatatype.from_text(rdtype)
        return tuple(
            rd.to_text() for rrset in response.answer if rrset.rdtype == wanted for rd in rrset
        )


def safedns_outcome(resolver: Resolver, name: str) -> Outcome:
    """The outcome of ``resolver.resolve_addresses(name)`` (A and AAAA)."""
    try:
        return tuple(sorted(resolver.resolve_addresses(name)))
    except NameNotFound:
        return NOT_FOUND
    except TemporaryFailure:
        return FAILED


# ------------------------------------------------------------------ the workload


def build_zone(server: DNSServer, ttl: int) -> None:
    """Add the external names (A, AAAA) and the cluster services (A) to ``server``."""
    for name, (v4, v6) in EXTERNAL.items():
        server.add(name, "A", v4, ttl=ttl)
        server.add(name, "AAAA", v6, ttl=ttl)
    for name, address in SERVICES.items():
        server.add(name, "A", address, ttl=ttl)


def workload(rng: random.Random, count: int) -> list[str]:
    """``count`` names drawn from ``MIX`` with ``rng``."""
    kinds = [names for _, _, names in MIX]
    weights = [share for _, share, _ in MIX]
    return [rng.choice(names) for names in rng.choices(kinds, weights, k=count)]


def _kind(name: str) -> str:
    return next(kind for kind, _, names in MIX if name in names)


# -------------------------------------------------------------------- progress


class Progress:
    """Progress on a stream: one updating line on a TTY, a few plain lines otherwise."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        try:
            self.tty = self.stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        self._title = ""
        self._total = 0
        self._shown = 0.0

    def start(self, title: str, total: int = 0) -> None:
        self._title, self._total, self._shown = title, total, 0.0
        if self.tty:
            self._write(f"\r\x1b[K{title}...")
        else:
            self._write(f"{title}...\n")

    def update(self, done: int, extra: str = "") -> None:
        if not self.tty:
            return
        now = time.monotonic()
        if now - self._shown < 0.1:
            return
        self._shown = now
        of = f"/{self._total}" if self._total else ""
        self._write(f"\r\x1b[K{self._title}: {done}{of}{extra}")

    def finish(self, summary: str) -> None:
        if self.tty:
            self._write(f"\r\x1b[K{self._title}: {summary}\n")
        else:
            self._write(f"{self._title}: {summary}\n")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


class Recorder(Protocol):
    """Told when each phase begins and ends (e.g. a timeline of queries), with
    functions counting the queries the server received and the lookups answered."""

    def begin(self, label: str, count: Callable[[], int], answered: Callable[[], int]) -> None: ...

    def end(self) -> None: ...


class Answered:
    """The lookups of a phase answered so far: an address or "not found", not a
    failure (what the application got). Thread-safe."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def add(self, outcome: Outcome) -> None:
        if outcome != FAILED:
            self.add_count(1)

    def add_count(self, count: int) -> None:
        with self._lock:
            self.value += count


def _begin(recorder: Recorder | None, label: str, server: DNSServer, answered: Answered) -> None:
    if recorder is not None:
        recorder.begin(label, lambda: server.query_count, lambda: answered.value)


def _end(recorder: Recorder | None) -> None:
    if recorder is not None:
        recorder.end()


# ---------------------------------------------------------------------- report


@dataclass(frozen=True)
class ReplayReport:
    """The figures of one replay."""

    seed: int
    lookups: int
    baseline_queries: int
    safedns_queries: int
    outage_seconds: float
    outage_lookups: int
    baseline_outage_success: float
    safedns_outage_success: float
    baseline_outage_queries: int
    safedns_outage_queries: int
    seconds: float
    ttl: int
    #: Lookups per kind of name in phase 1.
    mix: dict[str, int] = field(default_factory=dict)
    #: Names whose healthy outcome differed between the two sides (should be empty).
    disagreements: list[str] = field(default_factory=list)

    @property
    def baseline_queries_per_lookup(self) -> float:
        return self.baseline_queries / self.lookups if self.lookups else 0.0

    @property
    def safedns_queries_per_lookup(self) -> float:
        return self.safedns_queries / self.lookups if self.lookups else 0.0

    @property
    def reduction(self) -> float | None:
        """baseline / safedns queries; None if safedns sent none."""
        return self.baseline_queries / self.safedns_queries if self.safedns_queries else None

    def as_dict(self) -> dict[str, object]:
        """The figures as one JSON-ready dict."""
        return {
            "seed": self.seed,
            "lookups": self.lookups,
            "baseline_queries": self.baseline_queries,
            "safedns_queries": self.safedns_queries,
            "baseline_queries_per_lookup": round(self.baseline_queries_per_lookup, 4),
            "safedns_queries_per_lookup": round(self.safedns_queries_per_lookup, 6),
            "reduction": None if self.reduction is None else round(self.reduction, 1),
            "outage_seconds": self.outage_seconds,
            "outage_lookups": self.outage_lookups,
            "baseline_outage_success": round(self.baseline_outage_success, 4),
            "safedns_outage_success": round(self.safedns_outage_success, 4),
            "baseline_outage_queries": self.baseline_outage_queries,
            "safedns_outage_queries": self.safedns_outage_queries,
            "ttl": self.ttl,
            "mix": dict(self.mix),
            "disagreements": list(self.disagreements),
            "seconds": round(self.seconds, 2),
        }


def format_report(report: ReplayReport) -> str:
    """The report as a text table."""
    header = (
        "",
        "lookups",
        "upstream queries",
        "queries/lookup",
        "outage success",
        "outage queries",
    )
    rows = [
        (
            "baseline (glibc)",
            f"{report.lookups:,}",
            f"{report.baseline_queries:,}",
            f"{report.baseline_queries_per_lookup:.3f}",
            f"{report.baseline_outage_success:.1%}",
            f"{report.baseline_outage_queries:,}",
        ),
        (
            "safedns",
            f"{report.lookups:,}",
            f"{report.safedns_queries:,}",
            f"{report.safedns_queries_per_lookup:.4f}",
            f"{report.safedns_outage_success:.1%}",
            f"{report.safedns_outage_queries:,}",
        ),
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        return "  ".join(cells).rstrip()

    mix = ", ".join(f"{count:,} {kind}" for kind, count in report.mix.items())
    reduction = "inf" if report.reduction is None else f"{report.reduction:,.1f}x"
    lines = [
        f"replay: {report.lookups:,} lookups (seed {report.seed}; {mix}),",
        f"search {' '.join(SEARCH)}, ndots {NDOTS}, record TTL {report.ttl} s",
        "",
        line(header),
        *(line(row) for row in rows),
        "",
        f"reduction: safedns sent {reduction} fewer queries than the baseline.",
        f"outage: {report.outage_seconds:g} s with DNS down after the TTLs expired, "
        f"{report.outage_lookups} lookups per side; success = same answer as when healthy.",
    ]
    if report.disagreements:
        lines.append(
            f"WARNING: the sides disagreed when healthy on: {', '.join(report.disagreements)}"
        )
    lines.append(f"took {report.seconds:.1f} s")
    return "\n".join(lines)


# ------------------------------------------------------------------ the replay


def _run_phase(
    title: str,
    lookup: Callable[[str], Outcome],
    names: Sequence[str],
    server: DNSServer,
    progress: Progress | None,
    recorder: Recorder | None = None,
) -> tuple[int, dict[str, Outcome]]:
    """Run ``names`` through ``lookup``: (queries at the server, first outcome per name)."""
    server.clear()
    answered = Answered()
    _begin(recorder, title.split(":")[0] + " healthy", server, answered)
    if progress is not None:
        progress.start(title, len(names))
    outcomes: dict[str, Outcome] = {}
    for i, name in enumerate(names):
        outcome = lookup(name)
        answered.add(outcome)
        outcomes.setdefault(name, outcome)
        if progress is not None and progress.tty and i % 256 == 0:
            progress.update(i, f" lookups, {server.query_count:,} queries")
    return _finish_phase(recorder, server, progress, len(names), outcomes)


def _finish_phase(
    recorder: Recorder | None,
    server: DNSServer,
    progress: Progress | None,
    lookups: int,
    outcomes: dict[str, Outcome],
) -> tuple[int, dict[str, Outcome]]:
    """The end of a healthy phase: (queries at the server, first outcome per name)."""
    _end(recorder)
    queries = server.query_count
    if progress is not None:
        progress.finish(f"{lookups:,} lookups, {queries:,} queries")
    return queries, outcomes


def _baseline_chunk(
    server: tuple[str, int], search: tuple[str, ...], ndots: int, names: list[str]
) -> tuple[dict[str, Outcome], int]:
    """Run a chunk of baseline lookups (in a worker process): first outcome per
    name, and how many of the lookups were answered (not a failure)."""
    outcomes: dict[str, Outcome] = {}
    answered = Answered()
    with GlibcBaseline(server, search, ndots) as baseline:
        for name in names:
            outcome = baseline.lookup(name)
            answered.add(outcome)
            outcomes.setdefault(name, outcome)
    return outcomes, answered.value


def _run_baseline_phase(
    title: str,
    names: Sequence[str],
    server: DNSServer,
    workers: int,
    progress: Progress | None,
    chunk: int = _CHUNK,
    recorder: Recorder | None = None,
) -> tuple[int, dict[str, Outcome]]:
    """``_run_phase`` for the baseline, spread over ``workers`` processes
    (``chunk`` lookups per task).

    The baseline keeps no state between lookups, so splitting the lookups
    changes no count; it only keeps the in-process server from sharing the
    GIL with the clients.
    """
    if workers <= 1:
        with GlibcBaseline(server.address, SEARCH, NDOTS) as baseline:
            return _run_phase(title, baseline.lookup, names, server, progress, recorder)
    server.clear()
    if progress is not None:
        progress.start(title, len(names))
    answered = Answered()
    _begin(recorder, "baseline healthy", server, answered)
    if recorder is not None:
        chunk = min(chunk, _RECORDED_CHUNK)  # answers are counted as each chunk returns
    chunks = [list(names[i : i + chunk]) for i in range(0, len(names), chunk)]
    outcomes: dict[str, Outcome] = {}
    try:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [
                pool.submit(_baseline_chunk, server.address, SEARCH, NDOTS, part)
                for part in chunks
            ]
            done = 0
            for future, part in zip(futures, chunks, strict=True):
                firsts, got = future.result()
                for name, outcome in firsts.items():
                    outcomes.setdefault(name, outcome)
                answered.add_count(got)
                done += len(part)
                if progress is not None and progress.tty:
                    progress.update(done, f" lookups, {server.query_count:,} queries")
    except (OSError, BrokenProcessPool):
        _end(recorder)
        # No worker processes here: count again, in this process.
        with GlibcBaseline(server.address, SEARCH, NDOTS) as baseline:
            return _run_phase(title, baseline.lookup, names, server, progress, recorder)
    return _finish_phase(recorder, server, progress, len(names), outcomes)


def _run_outage(
    title: str,
    lookup: Callable[[str], Outcome],
    names: Sequence[str],
    expected: dict[str, Outcome],
    seconds: float,
    server: DNSServer,
    progress: Progress | None,
    recorder: Recorder | None = None,
) -> tuple[float, int]:
    """Run ``names`` paced over ``seconds`` from a thread pool, with the server
    stopped: (share of outcomes equal to ``expected``, queries at the server)."""
    server.clear()
    if progress is not None:
        progress.start(title, len(names))
    answered = Answered()
    _begin(recorder, title.split(":")[0] + " outage", server, answered)
    interval = seconds / len(names)
    start = time.monotonic()

    def counted(name: str) -> Outcome:
        outcome = lookup(name)
        answered.add(outcome)
        return outcome

    with ThreadPoolExecutor(_OUTAGE_WORKERS, thread_name_prefix="replay") as pool:
        futures = []
        for i, name in enumerate(names):
            delay = start + i * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(counted, name))
            if progress is not None:
                progress.update(i + 1, " lookups")
        results = [future.result() for future in futures]
    _end(recorder)
    good = sum(result == expected[name] for name, result in zip(names, results, strict=True))
    queries = server.query_count
    success = good / len(names)
    if progress is not None:
        progress.finish(f"{success:.1%} answered as when healthy, {queries:,} queries")
    return success, queries


def run_replay(
    lookups: int = 10_000,
    *,
    seed: int = 1,
    outage_seconds: float = 5.0,
    ttl: int = 5,
    workers: int | None = None,
    progress: Progress | None = None,
    recorder: Recorder | None = None,
) -> ReplayReport:
    """Run both phases on both sides and return the figures.

    Deterministic given ``seed`` (the lookups drawn; the counts can vary a
    little with timing in the outage phase). Takes the baseline's lookups
    (at least ``ttl + 1`` s, so the cache expires) plus ``2 * outage_seconds``
    (the sides take turns, so the server counts each apart). ``workers``:
    processes for the baseline's healthy lookups (default: up to 3 with more
    than two CPUs, else 1 = in this process). ``recorder`` is told when each
    phase begins and ends ("safedns healthy", "baseline healthy", "safedns
    outage", "baseline outage"), with functions counting the server's queries and
    the lookups answered (an address or "not found": what the application got).
    """
    if lookups < 1:
        raise ValueError(f"lookups must be >= 1, got {lookups}")
    if not outage_seconds > 0:
        raise ValueError(f"outage_seconds must be > 0, got {outage_seconds}")
    if workers is None:
        cpus = os.cpu_count() or 1
        workers = min(3, cpus - 1) if cpus > 2 else 1
    began = time.monotonic()
    rng = random.Random(seed)
    names = workload(rng, lookups)
    outage_count = max(1, min(_OUTAGE_CAP, round(_OUTAGE_RATE * outage_seconds)))
    outage_names = [rng.choice(names) for _ in range(outage_count)]
    mix = {kind: 0 for kind, _, _ in MIX}
    for name in names:
        mix[_kind(name)] += 1

    with DNSServer(negative_ttl=ttl, seed=seed) as server:
        build_zone(server, ttl)
        config = ResolverConfig(
            nameservers=(server.nameserver,),
            search=SEARCH,
            ndots=NDOTS,
            timeout=0.2,
            attempts=1,
            stale_response_timeout=0.2,
        )
        with (
            Resolver(config) as resolver,
            GlibcBaseline(server.address, SEARCH, NDOTS, timeout=0.1) as outage_baseline,
        ):

            def ours(name: str) -> Outcome:
                return safedns_outcome(resolver, name)

            # Phase 1: amplification. safedns first, so its cache can expire
            # while the (slower) baseline runs.
            safedns_queries, ours_healthy = _run_phase(
                "safedns: lookups", ours, names, server, progress, recorder
            )
            cached_until = time.monotonic() + ttl + 1
            baseline_queries, base_healthy = _run_baseline_phase(
                "baseline: lookups", names, server, workers, progress, recorder=recorder
            )
            disagreements = sorted(n for n in ours_healthy if ours_healthy[n] != base_healthy[n])

            # Phase 2: the outage, once every record has expired.
            wait = cached_until - time.monotonic()
            if wait > 0:
                if progress is not None:
                    progress.start(f"waiting {wait:.1f} s for the TTLs to expire")
                time.sleep(wait)
                if progress is not None:
                    progress.finish("done")
            server.stop()
            try:
                safedns_success, safedns_outage_queries = _run_outage(
                    f"safedns: {outage_seconds:g} s outage",
                    ours,
                    outage_names,
                    ours_healthy,
                    outage_seconds,
                    server,
                    progress,
                    recorder,
                )
                baseline_success, baseline_outage_queries = _run_outage(
                    f"baseline: {outage_seconds:g} s outage",
                    outage_baseline.lookup,
                    outage_names,
                    base_healthy,
                    outage_seconds,
                    server,
                    progress,
                    recorder,
                )
            finally:
                server.start()

    return ReplayReport(
        seed=seed,
        lookups=lookups,
        baseline_queries=baseline_queries,
        safedns_queries=safedns_queries,
        outage_seconds=outage_seconds,
        outage_lookups=outage_count,
        baseline_outage_success=baseline_success,
        safedns_outage_success=safedns_success,
        baseline_outage_queries=baseline_outage_queries,
        safedns_outage_queries=safedns_outage_queries,
        seconds=time.monotonic() - began,
        ttl=ttl,
        mix=mix,
        disagreements=disagreements,
    )
