"""4. Outage: the DNS server stops answering during a steady workload.

Every peer runs at once, each in its own process, against the same server
(inside the network namespace when there is one). Each warms up (one lookup
of every name of the outage workload, the healthy answers), then issues a
steady, seeded stream of lookups (``rate`` per second, each on its own thread
or task, so a slow lookup never delays the next). Records have a short TTL,
so cached answers expire early in the outage. The server is then stopped:
dnsmasq is frozen (SIGSTOP: it keeps its port, so queries are neither answered
nor refused, as with a dead or unreachable server) and at the end of the
outage killed and restarted, so the queries sent meanwhile are never answered.
Figures, for lookups issued during the outage: success (the same answer as
when healthy) and latency.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Generator
from typing import Any

from safedns._app.replay import workload

from ._common import MIX, Child, Context, DnsSetup, median, open_server, percentile, short
from ._common import workload_records as records_
from ._peers import PEER_ORDER, PEERS, Outcome, Unavailable, open_async_peer, open_peer, via_notes
from ._report import Column, PeerRow, ScenarioResult, fmt_count, fmt_ms, fmt_pct

NAME = "outage"
SEED = 7
_NAMES = tuple(name for _, _, names in MIX for name in names)


def _norm(outcome: Any) -> Any:
    return tuple(outcome) if isinstance(outcome, list) else outcome


# --------------------------------------------------------------------------- child side


def _schedule(plan: dict[str, Any]) -> list[tuple[float, str]]:
    t0, t_end, rate = plan["t0"], plan["t_end"], plan["rate"]
    count = max(1, int((t_end - t0) * rate))
    names = workload(random.Random(plan["seed"]), count)
    return [(t0 + i / rate, name) for i, name in enumerate(names)]


def _run_threads(peer_id: str, setup: DnsSetup) -> Generator[dict[str, Any], Any, None]:
    peer = open_peer(peer_id, setup)
    try:
        expected = {name: peer.lookup(name) for name in _NAMES}
        plan = yield {"ready": True, "expected": expected}
        schedule = _schedule(plan)
        results: list[list[Any]] = [[at, None, False] for at, _ in schedule]

        def one(i: int, name: str) -> None:
            outcome = peer.lookup(name)
            results[i][1] = time.monotonic() - schedule[i][0]
            results[i][2] = outcome == expected[name]

        threads = []
        for i, (at, name) in enumerate(schedule):
            delay = at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            thread = threading.Thread(target=one, args=(i, name), daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join(max(0.0, plan["cutoff"] - time.monotonic()))
        yield {"results": results, "info": peer.info()}
    finally:
        peer.close()


def _run_tasks(peer_id: str, setup: DnsSetup) -> Generator[dict[str, Any], Any, None]:
    loop = asyncio.new_event_loop()
    try:
        peer = loop.run_until_complete(open_async_peer(peer_id, setup))

        async def warm() -> dict[str, Outcome]:
            return {name: await peer.lookup(name) for name in _NAMES}

        expected = loop.run_until_complete(warm())
        plan = yield {"ready": True, "expected": expected}
        schedule = _schedule(plan)
        results: list[list[Any]] = [[at, None, False] for at, _ in schedule]

        async def one(i: int, name: str) -> None:
            outcome = await peer.lookup(name)
            results[i][1] = time.monotonic() - schedule[i][0]
            results[i][2] = outcome == expected[name]

        async def drive() -> None:
            tasks = []
            for i, (at, name) in enumerate(schedule):
                delay = at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.ensure_future(one(i, name)))
            _, pending = await asyncio.wait(
                tasks, timeout=max(0.0, plan["cutoff"] - time.monotonic())
            )
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)

        loop.run_until_complete(drive())
        yield {"results": results, "info": peer.info()}
        loop.run_until_complete(peer.aclose())
    finally:
        loop.close()


def child(params: dict[str, Any]) -> Generator[dict[str, Any], Any, None]:
    setup = DnsSetup.from_json(params["setup"])
    peer_id = params["peer"]
    run = _run_threads if PEERS[peer_id].kind == "thread" else _run_tasks
    try:
        gen = run(peer_id, setup)
        first = next(gen)
    except Unavailable as exc:
        yield {"unavailable": str(exc)}
        return
    plan = yield first
    yield gen.send(plan)
    gen.close()


# --------------------------------------------------------------------------- parent side


def _figures(results: list[list[Any]], start: float, stop: float, cutoff: float) -> dict[str, Any]:
    outage = [r for r in results if start <= r[0] < stop]
    done = [r[1] for r in outage if r[1] is not None]
    waiting = [cutoff - r[0] for r in outage if r[1] is None]
    latencies = [*done, *waiting]  # lookups still waiting count with a lower bound
    values: dict[str, Any] = {
        "lookups": len(outage),
        "success": sum(bool(r[2]) for r in outage) / len(outage) if outage else None,
        "median_ms": median(latencies) * 1000 if latencies else None,
        "p99_ms": percentile(latencies, 99) * 1000 if latencies else None,
        "still_waiting": len(waiting),
    }
    healthy = [r for r in results if r[0] < start]
    if healthy:
        values["healthy_success"] = sum(bool(r[2]) for r in healthy) / len(healthy)
        values["healthy_median_ms"] = (
            median([r[1] for r in healthy if r[1] is not None] or [0]) * 1000
        )
    return values


def run(ctx: Context) -> ScenarioResult:
    sizes = ctx.sizes
    result = ScenarioResult(
        NAME,
        f"4. Outage: server stopped for {sizes.outage_seconds:g} s during a steady workload",
        reference="safedns",
        columns=[
            Column("success", "success", fmt_pct),
            Column("median_ms", "median latency", fmt_ms, ratio=True),
            Column("p99_ms", "p99 latency", fmt_ms, ratio=True),
            Column("lookups", "lookups", fmt_count),
            Column("still_waiting", "unanswered at cut-off", fmt_count),
        ],
    )
    children: dict[str, Child] = {}
    with open_server(ctx.env, records_(), sizes.outage_ttl) as server:
        result.params = {
            "server": server.description,
            "outage_s": sizes.outage_seconds,
            "record_ttl_s": sizes.outage_ttl,
            "lookups_per_s_per_peer": sizes.outage_rate,
            "healthy_s_before": sizes.outage_before,
            "cutoff_s_after_outage": sizes.outage_grace,
            "seed": SEED,
        }
        try:
            for peer in PEER_ORDER:
                info = PEERS[peer]
                if info.system_only and not server.setup.system:
                    result.rows.append(
                        PeerRow(peer, info.label, status="skipped", reason=ctx.env.netns_reason)
                    )
                    continue
                params = {"peer": peer, "setup": server.setup.to_json()}
                children[peer] = Child(NAME, "child", params, netns=server.netns)
            ready: dict[str, Any] = {}
            for peer, proc in list(children.items()):
                try:
                    hello = proc.receive(timeout=60)
                except Exception as exc:
                    hello = {"error": short(exc)}
                if "ready" not in hello:
                    status = "not available" if "unavailable" in hello else "error"
                    reason = hello.get("unavailable") or hello.get("error", "")
                    result.rows.append(
                        PeerRow(peer, PEERS[peer].label, status=status, reason=reason)
                    )
                    children.pop(peer).close()
                else:
                    ready[peer] = hello
            t0 = time.monotonic() + 0.5
            t_stop = t0 + sizes.outage_before
            t_resume = t_stop + sizes.outage_seconds
            cutoff = t_resume + sizes.outage_grace
            plan = {
                "t0": t0,
                "t_end": t_resume,
                "rate": sizes.outage_rate,
                "seed": SEED,
                "cutoff": cutoff,
            }
            for proc in children.values():
                proc.send(plan)
            ctx.log(
                f"  outage: {len(children)} peers, server stopped for {sizes.outage_seconds:g} s"
            )
            time.sleep(max(0.0, t_stop - time.monotonic()))
            drops = server.udp_receive_errors()
            server.stop()
            try:
                time.sleep(max(0.0, t_resume - time.monotonic()))
            finally:
                server.start()
            for peer, proc in children.items():
                try:
                    reply = proc.receive(timeout=max(10.0, cutoff - time.monotonic() + 30))
                except Exception as exc:
                    result.rows.append(
                        PeerRow(peer, PEERS[peer].label, status="error", reason=short(exc))
                    )
                    continue
                values = _figures(reply["results"], t_stop, t_resume, cutoff)
                if reply.get("info"):
                    values["info"] = reply["info"]
                result.rows.append(PeerRow(peer, PEERS[peer].label, values))
            after = server.udp_receive_errors()
            if drops is not None and after is not None:
                result.extra["udp_receive_buffer_drops"] = after - drops
        finally:
            for proc in children.values():
                proc.close(timeout=10)
    order = {peer: i for i, peer in enumerate(PEER_ORDER)}
    result.rows.sort(key=lambda row: order.get(row.peer, len(order)))
    result.notes += via_notes(result)
    result.notes += [
        f"All peers at once, each in its own process, {sizes.outage_rate:g} lookups/s each "
        f"(the outage workload's mix), record TTL {sizes.outage_ttl} s. The server (dnsmasq) "
        f"stops answering {sizes.outage_before:g} s after the workload starts, for "
        f"{sizes.outage_seconds:g} s (frozen with SIGSTOP, then restarted: queries sent "
        "meanwhile are never answered, nor refused). Figures cover lookups issued during the "
        "outage; 'success' = the same answer as when healthy.",
        f"Lookups still unanswered {sizes.outage_grace:g} s after the outage count as failures, "
        "with their wait so far as latency. Each peer uses its own default timeouts "
        "(glibc: 5 s x 2 attempts).",
        "aiohttp's ttl_dns_cache keeps answers 10 s whatever their TTL; dnspython's LRUCache "
        "keeps SOA-less NXDOMAIN forever.",
    ]
    if sizes.level != "full":
        result.notes.append(
            f"{sizes.level} run: a {sizes.outage_seconds:g} s outage (the full run: 30 s)."
        )
    if sizes.outage_seconds < 10:
        result.notes.append(
            f"A {sizes.outage_seconds:g} s outage is shorter than glibc's 5 s retransmission "
            "timeout: its retries reach the restarted server, so its lookups succeed, late "
            "(see the latency)."
        )
    return result
