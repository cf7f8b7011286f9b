"""5. Scale: memory and hit latency with many cached names, and a flood of missing names.

Each measurement runs in a fresh process so figures do not mix. Names come
from a dnsmasq on a loopback port answering every ``*.scale.test`` (one
wildcard, no query log) and NXDOMAIN for everything else.

- Fill: N names looked up once (``resolve(name)``, A), so N entries are
  cached; RSS before and after (``/proc/self/statm``, after a GC) gives bytes
  per entry; then the hit latency of random cached names (batches, median).
- Flood: 1,000 names the application uses are cached, then a flood of random
  missing names; RSS along the way, what the cache holds at the end and
  whether the application's names survived.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable, Generator
from typing import Any

from ._common import Context, median, percentile, rss_bytes, short
from ._report import (
    TIMES,
    Column,
    Goal,
    PeerRow,
    ScenarioResult,
    fmt_bytes,
    fmt_count,
    fmt_float,
    fmt_ns,
)

NAME = "scale"
ZONE = "scale.test"
ADDRESS = "10.9.0.1"
#: Names the application uses, cached before a flood (within safedns's default burst).
APP_NAMES = 150
PEERS = {
    "safedns": "safedns Resolver.resolve",
    "dnspython-lru": "dnspython resolve + LRUCache",
}
_BATCH = 100


# --------------------------------------------------------------------------- child side


def _resolver(
    peer: str, nameserver: str, capacity: int, budget: bool
) -> tuple[Any, Callable[..., Any]]:
    host, _, port = nameserver.rpartition(":")
    if peer == "safedns":
        from safedns import Resolver, ResolverConfig

        # With the budget, a refused lookup fails at once (budget_wait=0): by
        # default a one-thread flood would be slowed to the budget instead,
        # which bounds it just as well but makes the run take n / qps seconds.
        overrides: dict[str, Any] = (
            {"budget_wait": 0.0} if budget else {"upstream_qps": 1e9, "upstream_burst": 10**9}
        )
        config = ResolverConfig(
            nameservers=(nameserver,),
            ndots=1,
            timeout=2.0,
            attempts=2,
            max_entries=max(capacity, 10_000),
            **overrides,
        )
        resolver = Resolver(config)
        return resolver, resolver.resolve
    import dns.resolver

    dres = dns.resolver.Resolver(configure=False)
    dres.nameservers = [host]
    dres.port = int(port)
    dres.lifetime = 4.0
    dres.cache = dns.resolver.LRUCache(max(capacity, 100_000))
    return dres, dres.resolve


def _rss() -> int:
    gc.collect()
    return rss_bytes()


def fill_child(params: dict[str, Any]) -> Generator[dict[str, Any], Any, None]:
    peer, n = params["peer"], int(params["n"])
    resolver, resolve = _resolver(peer, params["nameserver"], n + 100, budget=False)
    resolve(f"warm-up.{ZONE}")
    before = _rss()
    started = time.perf_counter()
    for i in range(n):
        resolve(f"n{i}.{ZONE}")
    fill_s = time.perf_counter() - started
    after = _rss()
    rng = random.Random(5)
    # The same number of names at every N: only the size of the cache changes.
    sample = [f"n{i}.{ZONE}" for i in rng.sample(range(n), min(n, params["samples"]))]
    upstream = _upstream(peer, resolver)
    for name in sample:  # warm-up
        resolve(name)
    means: list[float] = []
    rounds = max(20, 20_000 // len(sample))
    gc.disable()
    try:
        for _ in range(rounds):
            for start in range(0, len(sample), _BATCH):
                chunk = sample[start : start + _BATCH]
                t0 = time.perf_counter_ns()
                for name in chunk:
                    resolve(name)
                means.append((time.perf_counter_ns() - t0) / len(chunk))
    finally:
        gc.enable()
    yield {
        "n": n,
        "rss_before": before,
        "rss_after": after,
        "bytes_per_entry": (after - before) / n,
        "fill_lookups_per_s": n / fill_s,
        "hit_median_ns": median(means),
        "hit_p99_ns": percentile(means, 99),
        "upstream_during_timing": _upstream(peer, resolver) - upstream,
        "cached": _cached(peer, resolver),
    }


def _upstream(peer: str, resolver: Any) -> int:
    if peer == "safedns":
        return int(resolver.stats().upstream_queries)
    return int(resolver.cache.misses())  # dnspython: a miss is a query


def _cached(peer: str, resolver: Any) -> dict[str, int]:
    if peer == "safedns":
        stats = resolver.stats()
        return {"entries": stats.entries, "negative_entries": stats.negative_entries}
    return {"entries": len(resolver.cache.data)}


def _still_cached(peer: str, resolver: Any, names: list[str]) -> int:
    """How many of ``names`` are answered from the cache (looks them up)."""
    if peer == "safedns":
        count = 0
        for name in names:
            before = resolver.stats().upstream_queries
            resolver.resolve(name)
            count += resolver.stats().upstream_queries == before
        return count
    import dns.name
    import dns.rdataclass
    import dns.rdatatype

    keys = [(dns.name.from_text(n), dns.rdatatype.A, dns.rdataclass.IN) for n in names]
    return sum(resolver.cache.get(key) is not None for key in keys)


def flood_child(params: dict[str, Any]) -> Generator[dict[str, Any], Any, None]:
    peer, n = params["peer"], int(params["n"])
    budget = bool(params["budget"])
    resolver, resolve = _resolver(peer, params["nameserver"], APP_NAMES + 100, budget=budget)
    app = [f"app{i}.{ZONE}" for i in range(APP_NAMES)]
    for name in app:
        resolve(name)
    base = _rss()
    rng = random.Random(11)
    checkpoints: list[int] = []
    failures = 0
    started = time.perf_counter()
    step = max(1, n // 10)
    for i in range(n):
        try:
            resolve(f"{rng.getrandbits(60):015x}.missing.test")
        except Exception:  # NXDOMAIN expected; budget refusals too
            failures += 1
        if (i + 1) % step == 0:
            checkpoints.append(_rss() - base)
    seconds = time.perf_counter() - started
    final = _rss() - base
    still = _still_cached(peer, resolver, app)
    info: dict[str, Any] = {"cached": _cached(peer, resolver)}
    if peer == "safedns":
        stats = resolver.stats()
        info["upstream_queries"] = stats.upstream_queries
        info["budget_denied"] = stats.budget_denied
    yield {
        "n": n,
        "rss_growth": final,
        "rss_growth_max": max([final, *checkpoints]),
        "rss_growth_second_half": final - checkpoints[len(checkpoints) // 2 - 1]
        if len(checkpoints) >= 2
        else None,
        "checkpoints": checkpoints,
        "seconds": seconds,
        "app_names_still_cached": still,
        **info,
    }


# --------------------------------------------------------------------------- parent side


def _one(module_func: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
    from ._common import Child

    with Child(NAME, module_func, params) as proc:
        reply: dict[str, Any] = proc.receive(timeout=timeout)
        return reply


def run(ctx: Context) -> list[ScenarioResult]:
    from safedns.testing import Dnsmasq

    sizes = ctx.sizes
    fill = ScenarioResult(
        NAME,
        "5a. Scale: memory and hit latency with N cached names",
        reference="safedns",
    )
    for n in sizes.scale_sizes:
        fill.columns += [
            Column(f"bytes_per_entry_{n}", f"{n:,}: bytes/entry", fmt_bytes, ratio=True),
            Column(f"hit_median_ns_{n}", f"{n:,}: hit median", fmt_ns, ratio=True),
        ]
    flood = ScenarioResult(
        f"{NAME}_flood",
        "5b. Scale: a flood of random missing names",
        columns=[
            Column("n", "missing names", fmt_count),
            Column("rss_growth", "RSS growth", fmt_bytes),
            Column("rss_growth_second_half", "growth in 2nd half", fmt_bytes),
            Column("negative_entries", "negative entries held", fmt_count),
            Column("entries", "entries held", fmt_count),
            Column(
                "app_names_still_cached", f"of {APP_NAMES:,} app names still cached", fmt_count
            ),
            Column("lookups_per_s", "lookups/s", fmt_float),
        ],
    )
    if not ctx.env.dnsmasq:
        for result in (fill, flood):
            result.status, result.reason = "skipped", "needs dnsmasq (a wildcard zone)"
        return [fill, flood]
    smaller = sizes.level != "full"
    with Dnsmasq(
        {}, ttl=3600, log_queries=False, extra_args=[f"--address=/{ZONE}/{ADDRESS}"]
    ) as dm:
        for peer, label in PEERS.items():
            row = PeerRow(peer, label)
            for n in sizes.scale_sizes:
                ctx.log(f"  scale: {peer} {n:,} names")
                try:
                    reply = _one(
                        "fill_child",
                        {
                            "peer": peer,
                            "n": n,
                            "nameserver": dm.nameserver,
                            "samples": sizes.scale_samples,
                        },
                        timeout=60 + n / 500,
                    )
                except Exception as exc:
                    row.status, row.reason = "error", short(exc)
                    break
                row.values[f"bytes_per_entry_{n}"] = reply["bytes_per_entry"]
                row.values[f"hit_median_ns_{n}"] = reply["hit_median_ns"]
                row.values[f"hit_p99_ns_{n}"] = reply["hit_p99_ns"]
                row.values[f"fill_lookups_per_s_{n}"] = round(reply["fill_lookups_per_s"])
                row.values[f"upstream_during_timing_{n}"] = reply["upstream_during_timing"]
                row.values[f"cached_{n}"] = reply["cached"]
            fill.rows.append(row)

        floods = (
            ("safedns", "safedns, default query budget", sizes.scale_flood, True),
            ("safedns", "safedns, budget lifted", sizes.scale_flood_unbudgeted, False),
            ("dnspython-lru", "dnspython + LRUCache", sizes.scale_flood_unbudgeted, False),
        )
        for peer, label, n, budget in floods:
            key = f"{peer}-{'budget' if budget else 'nobudget'}"
            ctx.log(f"  scale: flood {n:,} through {label}")
            try:
                reply = _one(
                    "flood_child",
                    {"peer": peer, "n": n, "nameserver": dm.nameserver, "budget": budget},
                    timeout=120 + n / 1000,
                )
            except Exception as exc:
                flood.rows.append(PeerRow(key, label, status="error", reason=short(exc)))
                continue
            values = dict(reply)
            values.update(reply.pop("cached"))
            values.pop("cached", None)
            values["lookups_per_s"] = round(n / reply["seconds"]) if reply["seconds"] else None
            flood.rows.append(PeerRow(key, label, values))

    fill.params = {
        "sizes": list(sizes.scale_sizes),
        "server": "dnsmasq wildcard on a loopback port",
        "hit_sample": sizes.scale_samples,
    }
    flood.params = {
        "flood_default_budget": sizes.scale_flood,
        "flood_unbudgeted": sizes.scale_flood_unbudgeted,
        "app_names": APP_NAMES,
        "safedns_config": "defaults (max_negative_entries 2000; NXDOMAIN without SOA kept 5 s)",
    }
    fill.notes.append(
        "A fresh process per peer and size; bytes/entry = RSS growth while filling ÷ N (the "
        "cache, safedns's memo of answers and the name strings); hit median over batches of "
        f"{_BATCH} lookups of the same number ({sizes.scale_samples:,}) of random cached names "
        "at every N. safedns with max_entries ≥ N, dnspython's LRUCache with max_size ≥ N."
    )
    if smaller:
        fill.notes.append(
            f"{sizes.level} run: {', '.join(f'{n:,}' for n in sizes.scale_sizes)} names "
            "(the full run: 1k, 10k, 100k)."
        )
        flood.notes.append(
            f"{sizes.level} run: floods of {sizes.scale_flood:,} and "
            f"{sizes.scale_flood_unbudgeted:,} names (the full run: 1M and 100k)."
        )
    flood.notes.append(
        "'default query budget': safedns's default budget (100 queries/s, burst 200), with "
        "budget_wait=0 so that a refusal is immediate (by default a one-thread flood is slowed "
        "to the budget instead): most of the flood is refused before it reaches the server. "
        "'budget lifted': "
        "every name is sent and its NXDOMAIN cached, the worst case for memory. RSS growth is "
        f"measured from after caching the {APP_NAMES:,} application names."
    )
    _goals(fill, flood, sizes.scale_sizes)
    return [fill, flood]


def _goals(fill: ScenarioResult, flood: ScenarioResult, ns: tuple[int, ...]) -> None:
    # RSS moves in pages and allocator arenas: judge at 10k names and up (or the largest).
    judged = [n for n in ns if n >= 10_000] or [ns[-1]]
    per_entry = {n: fill.value("safedns", f"bytes_per_entry_{n}") for n in judged}
    if all(isinstance(v, (int, float)) for v in per_entry.values()):
        text = ", ".join(f"{v:,.0f} B at {n:,} names" for n, v in per_entry.items())
        top = max(float(v) for v in per_entry.values())
        fill.goals.append(Goal("≤ 1 KiB per cached entry", text, top <= 1024))
    low, high = (fill.value("safedns", f"hit_median_ns_{n}") for n in (ns[0], ns[-1]))
    if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low > 0:
        fill.goals.append(
            Goal(
                f"hit latency flat from {ns[0]:,} to {ns[-1]:,} names (≤ 1.5{TIMES})",
                f"{low:.0f} ns → {high:.0f} ns ({TIMES}{high / low:.2f})",
                high / low <= 1.5,
            )
        )
    for key in ("safedns-budget", "safedns-nobudget"):
        row = flood.row(key)
        if row is None or not row.ok:
            continue
        half = row.values.get("rss_growth_second_half")
        if isinstance(half, (int, float)):
            flood.goals.append(
                Goal(
                    f"memory bounded under the flood ({row.label}): < 1 MiB growth over its "
                    "second half",
                    f"{half / 1024:,.0f} KiB",
                    half < 1024 * 1024,
                )
            )
