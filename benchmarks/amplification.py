"""1. Amplification: upstream queries per lookup for the outage workload.

The workload of ``safedns._app.replay``: external names, internal short names,
internal dotted names and missing names, under ``ndots:5`` with three search
domains. Each peer runs in its own fresh process (inside the network namespace
when there is one, so glibc and c-ares read the k8s resolv.conf and talk to the
namespace's dnsmasq on 127.0.0.1:53) and queries are counted at the server,
from dnsmasq's query log. First every distinct name once (first lookups, kind
by kind), then a seeded weighted mix of the same names (repeats: caches show).
"""

from __future__ import annotations

import random
import time
from collections.abc import Generator
from typing import Any

from safedns._app.replay import workload

from ._common import (
    MIX,
    Child,
    Context,
    DnsSetup,
    expected_outcome,
    open_server,
    short,
    workload_records,
)
from ._peers import FAILED, PEER_ORDER, PEERS, Unavailable, open_peer, via_notes
from ._report import Column, PeerRow, ScenarioResult, fmt_count, fmt_float

NAME = "amplification"
SEED = 1
TTL = 300
_KIND_KEYS = {
    "external": "first_external",
    "internal short": "first_short",
    "internal dotted": "first_dotted",
    "missing": "first_missing",
}


def _outcome(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


# --------------------------------------------------------------------------- child side


def child(params: dict[str, Any]) -> Generator[dict[str, Any], Any, None]:
    setup = DnsSetup.from_json(params["setup"])
    records = workload_records()
    try:
        peer = open_peer(params["peer"], setup)
    except Unavailable as exc:
        yield {"unavailable": str(exc)}
        return
    try:
        yield {"ready": True}
        for kind, _, names in MIX:
            outcomes = {name: peer.lookup(name) for name in names}
            yield {"kind": kind, "lookups": len(names), "outcomes": outcomes}
        mix = workload(random.Random(params["seed"]), params["repeats"])
        wrong = failed = 0
        started = time.perf_counter()
        for name in mix:
            outcome = peer.lookup(name)
            wrong += outcome != expected_outcome(name, records)
            failed += outcome == FAILED
        seconds = time.perf_counter() - started
        yield {
            "lookups": len(mix),
            "wrong": wrong,
            "failed": failed,
            "seconds": seconds,
            "info": peer.info(),
        }
    finally:
        peer.close()


# --------------------------------------------------------------------------- parent side


def _measure(ctx: Context, server: Any, peer: str) -> PeerRow:
    label = PEERS[peer].label
    records = workload_records()
    params = {
        "peer": peer,
        "setup": server.setup.to_json(),
        "seed": SEED,
        "repeats": ctx.sizes.amp_repeats,
    }
    with Child(NAME, "child", params, netns=server.netns) as proc:
        hello = proc.receive()
        if "unavailable" in hello:
            status = "skipped" if PEERS[peer].system_only else "not available"
            return PeerRow(peer, label, status=status, reason=hello["unavailable"])
        server.clear()
        values: dict[str, Any] = {}
        first_queries = first_lookups = wrong = 0
        wrong_names: list[str] = []
        for _ in MIX:
            reply = proc.step(None)
            queries = server.count()
            server.clear()
            first_queries += queries
            first_lookups += reply["lookups"]
            values[_KIND_KEYS[reply["kind"]]] = queries / reply["lookups"]
            for name, outcome in reply["outcomes"].items():
                if _outcome(outcome) != expected_outcome(name, records):
                    wrong += 1
                    wrong_names.append(f"{name} -> {outcome}")
        reply = proc.step(None, timeout=600)
        repeat_queries = server.count()
        server.clear()
    lookups = first_lookups + reply["lookups"]
    values.update(
        first=first_queries / first_lookups,
        repeat=repeat_queries / reply["lookups"],
        total=(first_queries + repeat_queries) / lookups,
        queries=first_queries + repeat_queries,
        lookups=lookups,
        wrong=wrong + reply["wrong"],
        failed=reply["failed"],
        repeat_lookups_per_s=round(reply["lookups"] / reply["seconds"])
        if reply["seconds"]
        else None,
    )
    if wrong_names:
        values["wrong_first"] = wrong_names
    if reply.get("info"):
        values["info"] = reply["info"]
    return PeerRow(peer, label, values)


def run(ctx: Context) -> ScenarioResult:
    result = ScenarioResult(
        NAME,
        "1. Amplification: upstream queries per lookup (outage workload, ndots:5, 3 search "
        "domains)",
        reference="safedns",
        columns=[
            Column("first_external", "external, 1st", fmt_float, ratio=True),
            Column("first_short", "short, 1st", fmt_float, ratio=True),
            Column("first_dotted", "dotted, 1st", fmt_float, ratio=True),
            Column("first_missing", "missing, 1st", fmt_float, ratio=True),
            Column("first", "all, 1st", fmt_float, ratio=True),
            Column("repeat", "repeats", fmt_float, ratio=True),
            Column("total", "total", fmt_float, ratio=True),
            Column("wrong", "wrong answers", fmt_count),
        ],
    )
    records = workload_records()
    with open_server(ctx.env, records, TTL) as server:
        result.params = {
            "server": server.description,
            "record_ttl_s": TTL,
            "names": {kind: list(names) for kind, _, names in MIX},
            "repeats": ctx.sizes.amp_repeats,
            "seed": SEED,
            "lookup": "all addresses of the name (A and AAAA), port 443",
        }
        for peer in PEER_ORDER:
            if PEERS[peer].system_only and server.setup.system is False:
                reason = ctx.env.netns_reason or "needs the network namespace"
                result.rows.append(
                    PeerRow(peer, PEERS[peer].label, status="skipped", reason=reason)
                )
                continue
            ctx.log(f"  amplification: {peer}")
            try:
                result.rows.append(_measure(ctx, server, peer))
            except Exception as exc:
                result.rows.append(
                    PeerRow(peer, PEERS[peer].label, status="error", reason=short(exc))
                )
    first_lookups = sum(len(names) for _, _, names in MIX)
    result.notes += via_notes(result)
    result.notes += [
        f"Queries counted at the server (dnsmasq's query log). '1st': each of the "
        f"{first_lookups} distinct names looked up once, in a fresh process; 'repeats': then "
        f"{ctx.sizes.amp_repeats:,} lookups of a seeded weighted mix of the same names "
        "(40 % external, 25 % short, 20 % dotted, 15 % missing); 'total': both together.",
        "'wrong answers': lookups whose addresses (or not-found) differ from what glibc's "
        "search order gives for the zone.",
        "dnsmasq sends NXDOMAIN/NODATA without an SOA: RFC 2308 says not to cache those; safedns "
        "caches them for negative_ttl_no_soa (5 s), dnspython's LRUCache forever, c-ares never "
        "(NXDOMAIN).",
        "aiohttp: its connector's cache path (TCPConnector._resolve_host), ttl_dns_cache=10 s "
        "whatever the record TTL; failures are not cached.",
    ]
    if server.kind != "netns":
        result.notes.append(
            f"No network namespace ({ctx.env.netns_reason}): glibc and the peers that read "
            "/etc/resolv.conf are skipped, the others are configured explicitly."
        )
    glibc, ours = result.value("glibc", "total"), result.value("safedns", "total")
    if isinstance(glibc, float) and isinstance(ours, float) and ours > 0:
        result.extra["glibc_over_safedns_total"] = round(glibc / ours, 1)
    return result
