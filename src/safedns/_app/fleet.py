"""The fleet model: N pods, each with its own resolver, against one cluster DNS.

Measured, then scaled. A few sample pods each run the replay's workload
(``MIX``) for a simulated stretch of time against one embedded DNS server:

- the glibc side (``GlibcBaseline``: the search order, no cache) for a sample
  of lookups, giving its queries per lookup; it caches nothing, so a pod sends
  ``rate * queries per lookup`` queries per second, whatever the time;
- the safedns side (a real ``Resolver`` on a simulated clock) for
  ``seconds`` simulated seconds at ``rate`` lookups per second, giving its
  steady queries per second after the first minute (the cache warm) and its
  cold start (the first second).

Pods are independent (each has its own cache; they share only the cluster
DNS), so the cluster DNS receives N times one pod's queries per second. That
linear step is the model; everything before it is measured on real sockets.

The capacity of one CoreDNS replica is the published figure from CoreDNS's
``Scaling_CoreDNS.md`` (n1-standard-2 node, cache on): 33,669 QPS for names
it answers itself (the cluster domain: services, and the NXDOMAINs of the
search list) and 6,733 QPS for names it forwards (external). The blended
capacity for a query stream is the harmonic mix of the two by share.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from safedns._app.replay import (
    EXTERNAL,
    NDOTS,
    SEARCH,
    SERVICES,
    GlibcBaseline,
    safedns_outcome,
    workload,
)
from safedns._config import ResolverConfig
from safedns._resolver import Resolver
from safedns.testing._server import DNSServer

__all__ = [
    "COREDNS_EXTERNAL_QPS",
    "COREDNS_INTERNAL_QPS",
    "FleetReport",
    "blended_capacity",
    "fleet_steps",
    "format_fleet",
    "run_fleet",
]

#: Published QPS of one CoreDNS replica (Scaling_CoreDNS.md, n1-standard-2).
COREDNS_INTERNAL_QPS = 33_669
COREDNS_EXTERNAL_QPS = 6_733
CLUSTER_SUFFIX = ".cluster.local."
#: TTLs of the model's zone: CoreDNS's kubernetes plugin answers with 5 s; the
#: external names carry 300 s; negative answers 5 s (the cluster SOA minimum).
SERVICE_TTL = 5
EXTERNAL_TTL = 300
NEGATIVE_TTL = 5


def blended_capacity(internal_share: float) -> float:
    """QPS one CoreDNS replica sustains for a stream with ``internal_share`` of
    cluster-domain queries and the rest forwarded (pure)."""
    if not 0 <= internal_share <= 1:
        raise ValueError(f"internal_share must be in 0..1, got {internal_share}")
    external = 1 - internal_share
    return 1 / (internal_share / COREDNS_INTERNAL_QPS + external / COREDNS_EXTERNAL_QPS)


def fleet_steps(pods: int) -> list[int]:
    """1, 10, 100, ... up to and including ``pods`` (pure)."""
    if pods < 1:
        raise ValueError(f"pods must be >= 1, got {pods}")
    steps = []
    step = 1
    while step < pods:
        steps.append(step)
        step *= 10
    return [*steps, pods]


@dataclass(frozen=True)
class FleetReport:
    """Per-pod measurements and the cluster DNS load they imply."""

    pods: int
    rate: float
    seconds: float
    sample_pods: int
    glibc_queries_per_lookup: float
    glibc_internal_share: float
    safedns_qps_per_pod: float
    safedns_cold_start_queries: float
    safedns_internal_share: float
    steps: list[int] = field(default_factory=list)

    @property
    def glibc_qps_per_pod(self) -> float:
        return self.rate * self.glibc_queries_per_lookup

    @property
    def glibc_capacity(self) -> float:
        return blended_capacity(self.glibc_internal_share)

    @property
    def safedns_capacity(self) -> float:
        return blended_capacity(self.safedns_internal_share)

    @property
    def glibc_pods_per_replica(self) -> int:
        return int(self.glibc_capacity / self.glibc_qps_per_pod) if self.glibc_qps_per_pod else 0

    @property
    def safedns_pods_per_replica(self) -> int | None:
        """None when safedns sent nothing in steady state (no limit from DNS)."""
        if not self.safedns_qps_per_pod:
            return None
        return int(self.safedns_capacity / self.safedns_qps_per_pod)

    def rows(self) -> list[dict[str, float | int]]:
        return [
            {
                "pods": n,
                "glibc_qps": round(n * self.glibc_qps_per_pod, 1),
                "safedns_qps": round(n * self.safedns_qps_per_pod, 2),
                "glibc_replicas": round(n * self.glibc_qps_per_pod / self.glibc_capacity, 2),
                "safedns_replicas": round(n * self.safedns_qps_per_pod / self.safedns_capacity, 4),
            }
            for n in self.steps
        ]

    def as_dict(self) -> dict[str, object]:
        return {
            "pods": self.pods,
            "lookups_per_second_per_pod": self.rate,
            "simulated_seconds": self.seconds,
            "sample_pods": self.sample_pods,
            "glibc_queries_per_lookup": round(self.glibc_queries_per_lookup, 3),
            "glibc_qps_per_pod": round(self.glibc_qps_per_pod, 2),
            "safedns_qps_per_pod": round(self.safedns_qps_per_pod, 4),
            "safedns_cold_start_queries_per_pod": round(self.safedns_cold_start_queries, 1),
            "coredns_capacity": {
                "internal_qps": COREDNS_INTERNAL_QPS,
                "external_qps": COREDNS_EXTERNAL_QPS,
                "glibc_stream_qps": round(self.glibc_capacity),
                "safedns_stream_qps": round(self.safedns_capacity),
            },
            "pods_per_coredns_replica": {
                "glibc": self.glibc_pods_per_replica,
                "safedns": self.safedns_pods_per_replica,
            },
            "fleet": self.rows(),
        }


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _zone(server: DNSServer) -> None:
    for name, (v4, v6) in EXTERNAL.items():
        server.add(name, "A", v4, ttl=EXTERNAL_TTL)
        server.add(name, "AAAA", v6, ttl=EXTERNAL_TTL)
    for name, address in SERVICES.items():
        server.add(name, "A", address, ttl=SERVICE_TTL)


def _internal_share(queries: Sequence[tuple[str, str]]) -> float:
    if not queries:
        return 1.0
    return sum(q.endswith(CLUSTER_SUFFIX) for q, _ in queries) / len(queries)


def run_fleet(
    pods: int,
    *,
    rate: float = 10.0,
    seconds: float = 300.0,
    sample_pods: int = 2,
    glibc_lookups: int = 300,
    seed: int = 1,
) -> FleetReport:
    """Measure sample pods and scale to ``pods`` (see the module docstring).

    ``rate``: lookups per second per pod; ``seconds``: simulated time per
    sample pod (at least 120: the first 60 s are the warm-up).
    """
    if not rate > 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    if seconds < 120:
        raise ValueError(f"seconds must be >= 120, got {seconds}")
    if sample_pods < 1 or glibc_lookups < 1:
        raise ValueError("sample_pods and glibc_lookups must be >= 1")
    steps = fleet_steps(pods)
    warmup = 60.0
    lookups = int(rate * seconds)
    steady: list[float] = []
    cold: list[int] = []
    safedns_queries: list[tuple[str, str]] = []
    with DNSServer(negative_ttl=NEGATIVE_TTL, seed=seed) as server:
        _zone(server)
        config = ResolverConfig(
            nameservers=(server.nameserver,),
            search=SEARCH,
            ndots=NDOTS,
            timeout=1.0,
            attempts=2,
            upstream_qps=1_000_000,
            upstream_burst=1_000_000,
        )
        for pod in range(sample_pods):
            names = workload(random.Random(seed * 1000 + pod), lookups)
            clock = _Clock()
            server.clear()
            first_second = after_warmup = 0
            with Resolver(config, clock=clock) as resolver:
                for i, name in enumerate(names):
                    clock.now = 1000.0 + i / rate
                    if i / rate >= 1.0 and not first_second:
                        first_second = server.query_count
                    if i / rate >= warmup and not after_warmup:
                        after_warmup = server.query_count
                    safedns_outcome(resolver, name)
            total = server.query_count
            safedns_queries += server.queries[after_warmup:]
            steady.append((total - after_warmup) / (seconds - warmup))
            cold.append(first_second)
        server.clear()
        sample = workload(random.Random(seed), glibc_lookups)
        with GlibcBaseline(server.address, SEARCH, NDOTS) as baseline:
            for name in sample:
                baseline.lookup(name)
        glibc_queries = server.queries
    return FleetReport(
        pods=pods,
        rate=rate,
        seconds=seconds,
        sample_pods=sample_pods,
        glibc_queries_per_lookup=len(glibc_queries) / glibc_lookups,
        glibc_internal_share=_internal_share(glibc_queries),
        safedns_qps_per_pod=sum(steady) / len(steady),
        safedns_cold_start_queries=sum(cold) / len(cold),
        safedns_internal_share=_internal_share(safedns_queries),
        steps=steps,
    )


def format_fleet(report: FleetReport) -> str:
    """The fleet report as a text table."""
    header = ("pods", "glibc qps", "safedns qps", "CoreDNS replicas (glibc)", "(safedns)")
    rows = [
        (
            f"{r['pods']:,}",
            f"{r['glibc_qps']:,.0f}",
            f"{r['safedns_qps']:,.1f}",
            f"{r['glibc_replicas']:,.2f}",
            f"{r['safedns_replicas']:,.4f}",
        )
        for r in report.rows()
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = [
        f"fleet model: {report.rate:g} lookups/s per pod (the replay's mix), "
        f"{report.sample_pods} sample pods x {report.seconds:g} simulated s",
        f"per pod: glibc {report.glibc_qps_per_pod:,.1f} qps "
        f"({report.glibc_queries_per_lookup:.2f} queries/lookup, no cache); "
        f"safedns {report.safedns_qps_per_pod:.3f} qps steady "
        f"(cold start: {report.safedns_cold_start_queries:.0f} queries in the first second)",
        "",
        "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)),
        *("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows),
        "",
        f"one CoreDNS replica (n1-standard-2: {COREDNS_INTERNAL_QPS:,} QPS cluster names, "
        f"{COREDNS_EXTERNAL_QPS:,} QPS forwarded) carries:",
        f"  glibc:   {report.glibc_pods_per_replica:,} pods like this "
        f"(its stream: {report.glibc_capacity:,.0f} QPS capacity)",
    ]
    if report.safedns_pods_per_replica is None:
        lines.append("  safedns: no steady-state queries; DNS sets no limit")
    else:
        lines.append(
            f"  safedns: {report.safedns_pods_per_replica:,} pods like this "
            f"(its stream: {report.safedns_capacity:,.0f} QPS capacity)"
        )
    return "\n".join(lines)
