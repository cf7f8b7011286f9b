"""3. Burst: N concurrent callers (threads; tasks) on one cold name.

N callers are released together (a barrier for threads, one ``gather`` for
tasks) on ``api.example.com`` under ``ndots:5`` with a fresh resolver (cold
cache) per N, in a fresh process per peer. Figures: queries the server
received, time from the release to the last answer, and how many callers got
the right answer. UDP datagrams the kernel dropped because a receive buffer was
full are counted separately (they never reached the server).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Generator
from typing import Any

from ._common import Child, Context, DnsSetup, Server, expected_outcome, open_server, short
from ._common import workload_records as records_
from ._peers import PEERS, Outcome, Unavailable, open_async_peer, open_peer, via_notes
from ._report import Column, PeerRow, ScenarioResult, fmt_count, fmt_ms

NAME = "burst"
HOST = "api.example.com"
WARM_HOST = "warm-up.example.net"
THREAD_PEERS = ("glibc", "dnspython", "dnspython-lru", "safedns", "safedns-getaddrinfo")
TASK_PEERS = (
    "asyncio-glibc",
    "aiodns",
    "aiohttp-threaded",
    "aiohttp-async",
    "aiohttp-safedns",
    "safedns-async",
    "safedns-async-getaddrinfo",
    "safedns-patched-loop",
)
TTL = 300
_JOIN_TIMEOUT = 120.0


# --------------------------------------------------------------------------- child side


Run = tuple[float, list[Any], list[float], dict[str, Any]]


def _threads(peer_id: str, setup: DnsSetup, n: int) -> Run:
    peer = open_peer(peer_id, setup)
    barrier = threading.Barrier(n + 1)
    outcomes: list[Outcome | None] = [None] * n
    ends = [0.0] * n

    def worker(i: int) -> None:
        barrier.wait()
        outcomes[i] = peer.lookup(HOST)
        ends[i] = time.perf_counter()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
    try:
        for thread in threads:
            thread.start()
        barrier.wait()
        start = time.perf_counter()
        deadline = time.monotonic() + _JOIN_TIMEOUT
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        info = peer.info()
    finally:
        peer.close()
    return start, list(outcomes), ends, info


async def _tasks(peer_id: str, setup: DnsSetup, n: int) -> Run:
    peer = await open_async_peer(peer_id, setup)
    ends = [0.0] * n

    async def one(i: int) -> Outcome:
        outcome = await peer.lookup(HOST)
        ends[i] = time.perf_counter()
        return outcome

    try:
        start = time.perf_counter()
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(one(i) for i in range(n))), _JOIN_TIMEOUT
        )
        info = peer.info()
    finally:
        await peer.aclose()
    return start, list(outcomes), ends, info


def child(params: dict[str, Any]) -> Generator[dict[str, Any], Any, None]:
    setup = DnsSetup.from_json(params["setup"])
    peer_id = params["peer"]
    expected = expected_outcome(HOST, records_())
    try:
        # Warm the process (lazy imports, first sockets) with a name outside the test;
        # the parent starts counting after this.
        warm = open_peer(peer_id, setup)
        try:
            warm.lookup(WARM_HOST)
        finally:
            warm.close()
    except Unavailable as exc:
        yield {"unavailable": str(exc)}
        return
    message = yield {"ready": True}
    while message is not None:
        n = int(message["n"])
        if PEERS[peer_id].kind == "thread":
            start, outcomes, ends, info = _threads(peer_id, setup, n)
        else:
            start, outcomes, ends, info = asyncio.run(_tasks(peer_id, setup, n))
        done = [end - start for end in ends if end]
        message = yield {
            "n": n,
            "answered": len(done),
            "right": sum(tuple(o) == expected for o in outcomes if isinstance(o, (list, tuple))),
            "last_s": max(done) if done else None,
            "median_s": sorted(done)[len(done) // 2] if done else None,
            "info": info,
        }


# --------------------------------------------------------------------------- parent side


def _measure(ctx: Context, server: Server, peer: str) -> PeerRow:
    label = PEERS[peer].label
    params = {"peer": peer, "setup": server.setup.to_json()}
    values: dict[str, Any] = {}
    with Child(NAME, "child", params, netns=server.netns) as proc:
        hello = proc.receive()
        if "unavailable" in hello:
            return PeerRow(peer, label, status="not available", reason=hello["unavailable"])
        for n in ctx.sizes.burst:
            server.clear()
            drops = server.udp_receive_errors()
            reply = proc.step({"n": n}, timeout=_JOIN_TIMEOUT + 60)
            values[f"queries_{n}"] = server.count()
            after = server.udp_receive_errors()
            if drops is not None and after is not None:
                values[f"udp_drops_{n}"] = after - drops
            for key in ("last", "median"):
                seconds = reply[f"{key}_s"]
                values[f"{key}_ms_{n}"] = None if seconds is None else seconds * 1000
            values[f"right_{n}"] = reply["right"]
            if reply.get("info"):
                values[f"info_{n}"] = reply["info"]
            values[f"answered_{n}"] = reply["answered"]
    return PeerRow(peer, label, values)


def _result(ctx: Context, kind: str, peers: tuple[str, ...], reference: str) -> ScenarioResult:
    columns: list[Column] = []
    for n in ctx.sizes.burst:
        columns += [
            Column(f"queries_{n}", f"N={n}: queries", fmt_count, ratio=True),
            Column(f"last_ms_{n}", f"N={n}: last answer", fmt_ms, ratio=True),
            Column(f"right_{n}", f"N={n}: right answers", fmt_count),
        ]
    title = f"3. Burst ({kind}): N concurrent callers on one cold name"
    return ScenarioResult(f"{NAME}_{kind}", title, columns=columns, reference=reference)


def run(ctx: Context) -> list[ScenarioResult]:
    threads = _result(ctx, "threads", THREAD_PEERS, "safedns")
    tasks = _result(ctx, "tasks", TASK_PEERS, "safedns-async")
    with open_server(ctx.env, records_(), TTL) as server:
        for result, peers in ((threads, THREAD_PEERS), (tasks, TASK_PEERS)):
            result.params = {
                "server": server.description,
                "name": HOST,
                "callers": list(ctx.sizes.burst),
                "config": "ndots:5, 3 search domains; each peer's own timeouts",
            }
            for peer in peers:
                if PEERS[peer].system_only and not server.setup.system:
                    result.rows.append(
                        PeerRow(
                            peer, PEERS[peer].label, status="skipped", reason=ctx.env.netns_reason
                        )
                    )
                    continue
                ctx.log(f"  burst: {peer}")
                try:
                    result.rows.append(_measure(ctx, server, peer))
                except Exception as exc:
                    result.rows.append(
                        PeerRow(peer, PEERS[peer].label, status="error", reason=short(exc))
                    )
    for result in (threads, tasks):
        result.notes += via_notes(result)
        drops = {
            row.peer: {k: v for k, v in row.values.items() if k.startswith("udp_drops_") and v}
            for row in result.rows
            if row.ok
        }
        drops = {peer: d for peer, d in drops.items() if d}
        result.extra["udp_receive_buffer_drops"] = drops
        result.notes.append(
            "'queries': what the server received, in a fresh process (warmed up by one lookup of "
            "another name) with a fresh resolver, cold cache, per N; "
            "'last answer': from the release of all N callers to the last one's answer."
        )
        if drops:
            shown = "; ".join(
                f"{PEERS[p].label}: " + ", ".join(f"N={k[10:]}: {v}" for k, v in d.items())
                for p, d in drops.items()
            )
            result.notes.append(
                f"UDP datagrams dropped on full receive buffers (never reached the server or "
                f"the client; each drop costs a retransmission timeout): {shown}."
            )
    tasks.notes.append(
        "asyncio's loop.getaddrinfo runs glibc in the default executor "
        "(min(32, CPUs + 4) threads); aiohttp ThreadedResolver does too."
    )
    return [threads, tasks]
