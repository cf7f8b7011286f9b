"""8. Miss path: one lookup of a name nobody asked before, in this process.

safedns's ``Resolver.resolve`` and dnspython's ``dns.resolver.Resolver.resolve``
(no cache) side by side, on the same server (dnsmasq on a loopback port when it
is installed, else the embedded ``DNSServer``), in the same process, with the
calling thread pinned to one CPU. Every lookup asks a unique missing name
(``miss-<run>-<i>.example.``: an absolute name, so neither walks a search
list), which the server answers NXDOMAIN: nothing can come from a cache, each
lookup is one query, one reply and the work around them. Batches of lookups
alternate between the peers (the one that goes first swaps every round), so
drift hits both alike. Figures: median and p90 of the batch means, per lookup.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import dns.resolver

from safedns import NameNotFound, Resolver, ResolverConfig
from safedns.testing import Dnsmasq, DNSServer

from ._common import Context, median, percentile, pinned
from ._report import TIMES, Column, Goal, PeerRow, ScenarioResult, fmt_ns

NAME = "miss_path"
REFERENCE = "safedns-resolve"
#: (rounds, lookups per batch) by run size.
_SIZES = {"tiny": (4, 20), "quick": (40, 50), "full": (200, 100)}
_perf = time.perf_counter_ns


@contextlib.contextmanager
def _server(ctx: Context) -> Iterator[tuple[str, str]]:
    """(nameserver "host:port", description): dnsmasq if installed, else embedded."""
    if ctx.env.dnsmasq:
        with Dnsmasq({"present.example": ["192.0.2.1"]}, log_queries=False) as dm:
            yield dm.nameserver, "dnsmasq on a loopback port (no query log)"
        return
    with DNSServer() as srv:
        yield srv.nameserver, "safedns.testing.DNSServer (dnsmasq is not installed)"


def _safedns(nameserver: str) -> tuple[Callable[[str], None], Callable[[], None]]:
    # The query budget is lifted: it exists to slow floods like this one down.
    config = ResolverConfig(
        nameservers=(nameserver,),
        search=(),
        ndots=1,
        timeout=2.0,
        attempts=2,
        upstream_qps=1e9,
        upstream_burst=10**9,
    )
    resolver = Resolver(config)

    def lookup(name: str) -> None:
        with contextlib.suppress(NameNotFound):
            resolver.resolve(name, "A")

    return lookup, resolver.close


def _dnspython(nameserver: str) -> tuple[Callable[[str], None], Callable[[], None]]:
    host, _, port = nameserver.rpartition(":")
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [host.strip("[]")]
    resolver.port = int(port)
    resolver.timeout = 2.0
    resolver.lifetime = 4.0

    def lookup(name: str) -> None:
        with contextlib.suppress(dns.resolver.NXDOMAIN):
            resolver.resolve(name, "A", search=False)

    return lookup, lambda: None


PEERS: dict[str, tuple[str, Callable[[str], tuple[Callable[[str], None], Callable[[], None]]]]] = {
    REFERENCE: ("safedns Resolver.resolve (NXDOMAIN, unique name)", _safedns),
    "dnspython": ("dnspython Resolver.resolve, no cache (NXDOMAIN, unique name)", _dnspython),
}


def _batch(lookup: Callable[[str], None], names: Iterator[str], n: int) -> float:
    batch = [next(names) for _ in range(n)]
    t0 = _perf()
    for name in batch:
        lookup(name)
    return (_perf() - t0) / n


def run(ctx: Context) -> ScenarioResult:
    rounds, per_batch = _SIZES.get(ctx.sizes.level, _SIZES["quick"])
    result = ScenarioResult(
        NAME,
        "8. Miss path: one lookup of a unique missing name, in-process",
        reference=REFERENCE,
        columns=[
            Column("median_ns", "median", fmt_ns, ratio=True),
            Column("p90_ns", "p90 (batch means)", fmt_ns, ratio=True),
        ],
    )
    counter = itertools.count()
    tag = f"{time.monotonic_ns() % 1_000_000:x}"
    names = (f"miss-{tag}-{i}.example." for i in counter)
    means: dict[str, list[float]] = {peer: [] for peer in PEERS}
    with _server(ctx) as (nameserver, description), contextlib.ExitStack() as exits:
        lookups: dict[str, Callable[[str], None]] = {}
        for peer, (_, make) in PEERS.items():
            lookup, close = make(nameserver)
            exits.callback(close)
            lookups[peer] = lookup
            _batch(lookup, names, per_batch)  # warm up: imports, first sockets
        order = list(PEERS)
        with pinned(ctx.pin):
            for round_ in range(rounds):
                for peer in order if round_ % 2 == 0 else order[::-1]:
                    means[peer].append(_batch(lookups[peer], names, per_batch))
    for peer, (label, _) in PEERS.items():
        result.rows.append(
            PeerRow(
                peer,
                label,
                {
                    "median_ns": median(means[peer]),
                    "p90_ns": percentile(means[peer], 90),
                    "batches": len(means[peer]),
                    "batch": per_batch,
                },
            )
        )
    result.params = {
        "server": description,
        "rounds": rounds,
        "lookups_per_batch": per_batch,
        "names": "miss-<run>-<i>.example. (absolute, unique, NXDOMAIN)",
    }
    ours, theirs = result.value(REFERENCE, "median_ns"), result.value("dnspython", "median_ns")
    ratio = result.ratio("dnspython", "median_ns")
    result.goals.append(
        Goal(
            "safedns's miss path no slower than dnspython's Resolver.resolve on the same server",
            f"{fmt_ns(ours)} vs {fmt_ns(theirs)} (dnspython {TIMES}{ratio:.2f})"
            if ratio is not None
            else "not measured",
            None if ratio is None else ratio >= 1.0,
        )
    )
    result.notes.append(
        "Both peers are timed in the same process against the same server, batches "
        "alternating; a ratio above 1 means dnspython takes longer per lookup."
    )
    return result


def _main(argv: list[str] | None = None) -> Any:  # pragma: no cover - manual runs
    from ._common import SIZES, Env

    return run(Context(sizes=SIZES["quick"], env=Env.detect()))


if __name__ == "__main__":  # pragma: no cover
    for row in _main().rows:
        print(row.peer, {k: round(v) for k, v in row.values.items()})
