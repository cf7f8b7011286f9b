"""6. httpx, sync and async: requests per second, DNS queries per 10k requests,
a black-holed first address, and requests while DNS is down.

Inside the network namespace, a small HTTP/1.1 server listens on 127.0.0.1
and the namespace's dnsmasq maps ``web.example.com`` to it, under the k8s
resolv.conf (ndots:5, three search domains). Plain ``httpx.Client`` and
``httpx.AsyncClient`` resolve through glibc; ``safedns.httpx.SafeTransport``
and ``AsyncSafeTransport`` through safedns (configured from the same
resolv.conf). Each async client is compared with its plain peer in its own
table. The servers and clients are in ``_httpx_child``.

- keep-alive / new connection each: N sequential GETs over one client, with
  connection reuse, then with ``Connection: close`` (every request dials, so
  resolves, again). Queries counted at dnsmasq. Record TTL 300 s.
- black-holed first address: ``hole.example.com`` has two addresses on one
  port, the first (as glibc orders them) a black hole that drops SYNs, the
  second a live server; GETs with ``Connection: close``, median time to the
  response.
- DNS down, per client in a fresh namespace (record TTL 1 s): kept-alive GETs
  timed before and during the outage (dnsmasq frozen with SIGSTOP after the
  answer expired), then a steady stream of GETs on new connections. Queries
  sent while dnsmasq is frozen are counted at the namespace's UDP counters.
"""

from __future__ import annotations

import time
from typing import Any

from ._common import Child, Context, Server, median, open_server, short
from ._httpx_child import (
    ASYNC,
    CLIENTS,
    CONNECT_TIMEOUT,
    HOLE_HOST,
    HOLE_RECORDS,
    HOST,
    OUTAGE_RATE,
)
from ._report import (
    Column,
    Goal,
    PeerRow,
    ScenarioResult,
    fmt_count,
    fmt_float,
    fmt_ms,
    fmt_pct,
)

NAME = "httpx_bench"
CHILD = "_httpx_child"
RECORDS = {HOST: ["127.0.0.1"], HOLE_HOST: HOLE_RECORDS}
TTL = 300
OUTAGE_TTL = 1
MODES = ("keepalive", "close")
#: req/s: RACE * N requests per client, in turns of CHUNK requests.
RACE = 2
CHUNK = 100
#: (table, reference, plain peer, title) per kind of client.
TABLES = (
    (
        NAME,
        "safedns-httpx",
        "httpx",
        "6. httpx: requests per second, DNS queries, a black-holed address, DNS outage",
    ),
    (
        f"{NAME}_async",
        "safedns-httpx-async",
        "httpx-async",
        "6b. httpx async: requests per second, DNS queries, a black-holed address, DNS outage",
    ),
)
COLUMNS = (
    Column("rps_keepalive", "keep-alive: req/s", fmt_float, ratio=True),
    Column("queries_per_10k_keepalive", "keep-alive: DNS q/10k req", fmt_count),
    Column("rps_close", "new connection each: req/s", fmt_float, ratio=True),
    Column("queries_per_10k_close", "new connection each: DNS q/10k req", fmt_count),
    Column("hole_ms", "black-holed 1st address: median", fmt_ms, ratio=True),
    Column("keepalive_added_ms", "DNS down, kept-alive: added latency", fmt_ms),
    Column("outage_queries_per_request", "DNS down: DNS q/req", fmt_float),
    Column("outage_ok", "DNS down: requests ok", fmt_count),
    Column("outage_pct", "DNS down: % ok", fmt_pct),
)


def _failed(rows: dict[str, PeerRow], exc: Exception) -> None:
    for client, row in rows.items():
        if row.ok:
            rows[client] = PeerRow(client, CLIENTS[client], status="error", reason=short(exc))


def _unavailable(rows: dict[str, PeerRow], client: str, reply: dict[str, Any]) -> bool:
    if "unavailable" not in reply:
        return False
    rows[client] = PeerRow(
        client, CLIENTS[client], status="not available", reason=reply["unavailable"]
    )
    return True


def _measure(ctx: Context, server: Server, proc: Child, rows: dict[str, PeerRow]) -> None:
    """Per mode: each client alone first (its DNS queries, counted at dnsmasq,
    from a fresh client), then each client raced with its peer in turns for req/s."""
    n = ctx.sizes.httpx_requests
    for mode in MODES:
        for client, row in list(rows.items()):
            if not row.ok:
                continue
            server.clear()
            reply = proc.step(
                {"client": client, "step": "run", "mode": mode, "n": n}, timeout=120 + n / 50
            )
            if _unavailable(rows, client, reply):
                continue
            queries = server.count()
            row.values[f"queries_per_10k_{mode}"] = queries * 10_000 / reply["n"]
            row.values[f"queries_{mode}"] = queries
            row.values[f"ok_{mode}"] = reply["ok"]
        for _, reference, plain, _ in TABLES:  # each pair raced on its own: A B, B A, ...
            racing = [client for client in (plain, reference) if rows[client].ok]
            if not racing:
                continue
            reply = proc.step(
                {"clients": racing, "step": "race", "mode": mode, "n": RACE * n, "chunk": CHUNK},
                timeout=120 + RACE * n * len(racing) / 50,
            )
            for client in racing:
                rows[client].values[f"rps_{mode}"] = median(reply["rates"][client])
                rows[client].values[f"ok_{mode}"] += reply["ok"][client]


def _measure_hole(ctx: Context, proc: Child, rows: dict[str, PeerRow]) -> None:
    """Each client's GETs to the black-holed name, each on a new connection."""
    n = ctx.sizes.httpx_hole_requests
    for client, row in rows.items():
        if not row.ok:
            continue
        reply = proc.step(
            {"client": client, "step": "hole", "n": n}, timeout=60 + 3 * n * CONNECT_TIMEOUT
        )
        times = [seconds * 1000 for seconds in reply["times"]]
        row.values["hole_ms"] = median(times)
        row.values["hole_first_ms"] = times[0]
        row.values["hole_max_ms"] = max(times)
        row.values["hole_failed"] = reply["n"] - reply["ok"]


def _outage_one(ctx: Context, client: str, row: PeerRow, seconds: float) -> None:
    """One client in its own namespace (its queries alone in the counters,
    and nothing left of an earlier client's stuck lookups)."""
    m = ctx.sizes.httpx_outage_requests
    with (
        open_server(ctx.env, {HOST: ["127.0.0.1"]}, OUTAGE_TTL) as server,
        Child(CHILD, "child", {}, netns=server.netns) as proc,
    ):
        proc.receive()
        try:
            reply = proc.step({"client": client, "step": "warm"})
            if "unavailable" in reply or not reply["ok"]:
                row.values["outage_ok"] = 0
                return
            before = proc.step({"client": client, "step": "latency", "n": m})
            time.sleep(OUTAGE_TTL + 0.5)  # the cached answer has expired
            server.stop()  # not started again: the namespace goes
            sent = [server.udp_sent()]
            during = proc.step({"client": client, "step": "latency", "n": m}, timeout=60 + m)
            sent.append(server.udp_sent())
            stream = proc.step(
                {"client": client, "step": "outage", "seconds": seconds}, timeout=seconds + 60
            )
            sent.append(server.udp_sent())
        finally:
            proc.kill()  # threads stuck in glibc need not be waited for
    ms_before = median(before["times"]) * 1000
    ms_during = median(during["times"]) * 1000
    row.values["keepalive_before_ms"] = ms_before
    row.values["keepalive_during_ms"] = ms_during
    row.values["keepalive_during_max_ms"] = max(during["times"]) * 1000
    row.values["keepalive_added_ms"] = ms_during - ms_before
    row.values["keepalive_during_ok"] = during["ok"]
    row.values["outage_issued"] = stream["issued"]
    row.values["outage_ok"] = stream["ok"]
    row.values["outage_pct"] = stream["ok"] / max(1, stream["issued"])
    counts = [count for count in sent if count is not None]
    if len(counts) == 3:
        row.values["outage_keepalive_queries"] = counts[1] - counts[0]
        row.values["outage_queries"] = counts[2] - counts[1]
        row.values["outage_queries_per_request"] = (counts[2] - counts[1]) / max(
            1, stream["issued"]
        )


def _measure_outage(ctx: Context, rows: dict[str, PeerRow]) -> float:
    seconds = max(1.5, ctx.sizes.outage_seconds)
    for client, row in list(rows.items()):
        if not row.ok:
            continue
        try:
            _outage_one(ctx, client, row, seconds)
        except Exception as exc:
            rows[client] = PeerRow(client, CLIENTS[client], status="error", reason=short(exc))
    return seconds


def run(ctx: Context) -> list[ScenarioResult]:
    results = [
        ScenarioResult(name, title, columns=list(COLUMNS), reference=reference)
        for name, reference, _, title in TABLES
    ]
    n = ctx.sizes.httpx_requests
    params: dict[str, Any] = {
        "requests_per_mode": n,
        "host": HOST,
        "config": "ndots:5, 3 search domains",
        "connect_timeout_s": CONNECT_TIMEOUT,
    }
    if not ctx.env.netns:
        for result in results:
            result.status = "skipped"
            result.reason = (
                f"plain httpx resolves through the system resolver, which only the network "
                f"namespace can point at a test server ({ctx.env.netns_reason})"
            )
        return results
    rows = {client: PeerRow(client, label) for client, label in CLIENTS.items()}
    with open_server(ctx.env, RECORDS, TTL) as server:
        params["server"] = server.description
        with Child(CHILD, "child", {"hole": True}, netns=server.netns) as proc:
            ready = proc.receive()
            params["hole"] = {key: ready[key] for key in ("glibc_order", "hole", "live")}
            try:
                ctx.log("  httpx: keep-alive and new connections")
                _measure(ctx, server, proc, rows)
                ctx.log("  httpx: a black-holed first address")
                _measure_hole(ctx, proc, rows)
            except Exception as exc:
                _failed(rows, exc)
    seconds = 0.0
    if any(row.ok for row in rows.values()):
        ctx.log("  httpx: DNS outage")
        seconds = _measure_outage(ctx, rows)
    for result, (_, reference, plain, _) in zip(results, TABLES, strict=True):
        result.params = dict(params)
        result.rows.extend(rows[kind] for kind in (plain, reference))
        result.notes.extend(_notes(ctx, params["hole"], seconds, is_async=plain in ASYNC))
        _goals(result, reference, plain)
    return results


def _notes(ctx: Context, hole: dict[str, Any], seconds: float, *, is_async: bool) -> list[str]:
    n = ctx.sizes.httpx_requests
    plain = (
        "plain httpx.AsyncClient (anyio) races the addresses 250 ms apart"
        if is_async
        else "plain httpx.Client tries them one after the other, each with the whole "
        "connect timeout"
    )
    notes = [
        f"{n:,} sequential GETs per client and mode from one process to an HTTP/1.1 server "
        "in it (so req/s is client + server CPU), from a fresh client: DNS queries counted at "
        f"dnsmasq, scaled to 10k requests. Then req/s: {RACE * n:,} more GETs per client, in "
        f"turns of {min(CHUNK, RACE * n)} against its peer in this table (A B, B A, …) so that "
        "both meet the same machine load; the median turn's rate. Record TTL 300 s.",
        f"Black-holed first address: {HOLE_HOST} has two A records on one port: "
        f"{hole['hole']}, a black hole (a listener with listen(0) whose one-place accept queue "
        f"is full, so SYNs are dropped), and {hole['live']}, a live server. glibc sorts them "
        f"{', '.join(hole['glibc_order'])} (RFC 6724) in every answer: the hole first for plain "
        "httpx; safedns keeps the order of dnsmasq's answer (dnsmasq rotates its records) and "
        "spreads new connections round-robin, so it meets the hole on its first or second "
        f"connection. {ctx.sizes.httpx_hole_requests} GETs per client, each on a new "
        "connection ('Connection: close'): the median time to the response (the slowest is "
        f"hole_max_ms in the JSON). Every client has a {CONNECT_TIMEOUT:g} s connect timeout; "
        f"{plain}; the safedns transport races them 250 ms apart (RFC 8305) and then tries the "
        "address that did not answer last (for 30 s).",
        f"DNS down, per client in a fresh namespace (record TTL {OUTAGE_TTL} s): one GET, "
        f"{ctx.sizes.httpx_outage_requests} kept-alive GETs, {OUTAGE_TTL + 0.5:g} s idle (the "
        "answer expires; the connection stays pooled), dnsmasq frozen (SIGSTOP), "
        f"{ctx.sizes.httpx_outage_requests} more kept-alive GETs: 'added latency' is their "
        "median minus the median before (plain httpx never asks DNS for a pooled "
        f"connection). Then, DNS still down, {seconds:g} s of {OUTAGE_RATE} GETs/s with "
        "'Connection: close', each on its own "
        + ("task (cancelled at the end)" if is_async else "thread")
        + ": 'ok' = those that succeeded within it. 'DNS q/req' = UDP datagrams the "
        "namespace sent during those seconds (/proc/net/snmp OutDatagrams: a frozen dnsmasq "
        "reads and logs nothing, and sends nothing) ÷ GETs issued; glibc's lookups still "
        "waiting (timeout 5 s, attempts 2, 4 candidate names) send more after that, "
        "uncounted"
        + (
            "; plain httpx.AsyncClient's lookups also queue for asyncio's default executor "
            "(min(32, cores + 4) threads)"
            if is_async
            else ""
        )
        + ". The queries of the kept-alive phase are in the JSON "
        "(outage_keepalive_queries).",
    ]
    if ctx.sizes.level != "full":
        notes.append(f"{ctx.sizes.level} run: {n:,} requests (the full run: 10,000).")
    return notes


def _goals(result: ScenarioResult, ours_id: str, plain_id: str) -> None:
    ours_label = "AsyncSafeTransport" if ours_id in ASYNC else "SafeTransport"
    plain_label = "plain httpx.AsyncClient" if plain_id in ASYNC else "plain httpx"
    for mode, label in (("keepalive", "keep-alive"), ("close", "new connection each")):
        text = f"{label}: {ours_label} req/s within 5 % of {plain_label}"
        ours = result.value(ours_id, f"rps_{mode}")
        plain = result.value(plain_id, f"rps_{mode}")
        if not isinstance(ours, float) or not isinstance(plain, float) or plain <= 0:
            result.goals.append(Goal(text, "-", None))
            continue
        ratio = ours / plain
        result.goals.append(
            Goal(
                text,
                f"{ours:,.0f} vs {plain:,.0f} req/s ({ratio:.1%} of plain)",
                ratio >= 0.95,
            )
        )
