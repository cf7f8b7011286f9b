"""6. httpx: requests per second, DNS queries per 10k requests, and requests
that succeed while DNS is down.

Inside the network namespace, a small HTTP/1.1 server listens on 127.0.0.1
and the namespace's dnsmasq maps ``web.example.com`` to it, under the k8s
resolv.conf (ndots:5, three search domains). Plain httpx resolves through
glibc (``socket.create_connection``); ``safedns.httpx.SafeTransport`` through
safedns (configured from the same resolv.conf). Queries are counted at dnsmasq.

- keep-alive / new connection each: N sequential GETs over one client, with
  connection reuse, then with ``Connection: close`` (every request dials, so
  resolves, again). Record TTL 300 s.
- outage: in a fresh namespace with a record TTL of 2 s, each client makes one
  request (the healthy answer), then dnsmasq is frozen (SIGSTOP) for the
  outage; meanwhile a steady stream of GETs with ``Connection: close`` is
  issued (each on its own thread). Counted: those that succeeded before DNS
  came back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ._common import Child, Context, Server, median, open_server, short
from ._peers import Unavailable
from ._report import Column, Goal, PeerRow, ScenarioResult, fmt_count, fmt_float, fmt_pct

NAME = "httpx_bench"
HOST = "web.example.com"
RECORDS = {HOST: ["127.0.0.1"]}
TTL = 300
OUTAGE_TTL = 2
OUTAGE_RATE = 20  # requests per second during the outage
CLIENTS = {
    "httpx": "plain httpx.Client (glibc getaddrinfo)",
    "safedns-httpx": "httpx.Client(transport=safedns.httpx.SafeTransport)",
}
MODES = ("keepalive", "close")
#: req/s: RACE * N requests per client, in turns of CHUNK requests.
RACE = 2
CHUNK = 100


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed ACK

    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a burst of connects must not meet SYN drops (1 s retransmit)


def _client(kind: str) -> Any:
    import httpx

    if kind != "safedns-httpx":
        return httpx.Client(trust_env=False, timeout=10)
    try:
        from safedns.httpx import SafeTransport
    except ImportError as exc:
        raise Unavailable(f"safedns.httpx is not importable ({exc})") from None
    from safedns import Resolver, ResolverConfig

    resolver = Resolver(ResolverConfig.from_system(environ={}))
    transport = SafeTransport(resolver=resolver, trust_env=False)
    return httpx.Client(transport=transport, trust_env=False, timeout=10)


def child(params: dict[str, Any]) -> Generator[dict[str, Any], Any, None]:
    server = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://{HOST}:{server.server_address[1]}/"
    clients: dict[str, Any] = {}
    try:
        message = yield {"ready": True}
        while message is not None:
            try:
                for kind in message.get("clients", [message.get("client")]):
                    if kind not in clients:
                        clients[kind] = _client(kind)
            except Unavailable as exc:
                message = yield {"unavailable": str(exc)}
                continue
            if message["step"] == "race":
                racing = {kind: clients[kind] for kind in message["clients"]}
                message = yield _race(racing, url, message["mode"], int(message["n"]))
                continue
            client = clients[message["client"]]
            if message["step"] == "run":
                message = yield _run(client, url, message["mode"], int(message["n"]))
            elif message["step"] == "warm":
                message = yield {"ok": client.get(url).status_code == 200}
            else:  # "outage": the parent has just stopped DNS
                message = yield _outage(client, url, float(message["seconds"]))
    finally:
        for client in clients.values():
            client.close()
        server.shutdown()
        server.server_close()


def _run(client: Any, url: str, mode: str, n: int) -> dict[str, Any]:
    headers = {"Connection": "close"} if mode == "close" else {}
    ok = 0
    started = time.perf_counter()
    for _ in range(n):
        ok += client.get(url, headers=headers).status_code == 200
    return {"n": n, "ok": ok, "seconds": time.perf_counter() - started}


def _race(clients: dict[str, Any], url: str, mode: str, n: int) -> dict[str, Any]:
    """``n`` requests per client, in turns of ``CHUNK`` (who goes first
    alternates), so that every client meets the same machine load; the rate of
    each turn is kept, and the median turn is the figure (robust to the load
    of a shared machine coming and going)."""
    headers = {"Connection": "close"} if mode == "close" else {}
    rates: dict[str, list[float]] = {kind: [] for kind in clients}
    ok = dict.fromkeys(clients, 0)
    order = list(clients)
    size = min(CHUNK, n)
    for turn in range(n // size):
        for kind in order if turn % 2 == 0 else reversed(order):
            client = clients[kind]
            started = time.perf_counter()
            for _ in range(size):
                ok[kind] += client.get(url, headers=headers).status_code == 200
            rates[kind].append(size / (time.perf_counter() - started))
    return {"n": n // size * size, "rates": rates, "ok": ok}


def _outage(client: Any, url: str, seconds: float) -> dict[str, Any]:
    """GETs at a steady rate for ``seconds``, each on its own thread; counts
    those that succeeded before the outage ended (stragglers are abandoned:
    the threads are daemons, stuck in glibc at worst)."""
    done: list[float] = []
    lock = threading.Lock()
    t0 = time.monotonic()
    t_end = t0 + seconds

    def one() -> None:
        try:
            response = client.get(url, headers={"Connection": "close"})
        except Exception:
            return
        if response.status_code == 200:
            with lock:
                done.append(time.monotonic())

    issued = 0
    while (at := t0 + issued / OUTAGE_RATE) < t_end:
        time.sleep(max(0.0, at - time.monotonic()))
        threading.Thread(target=one, daemon=True).start()
        issued += 1
    time.sleep(max(0.0, t_end - time.monotonic()))
    with lock:
        ok = sum(1 for when in done if when <= t_end)
    return {"issued": issued, "ok": ok}


def _measure(ctx: Context, server: Server, proc: Child, rows: dict[str, PeerRow]) -> None:
    """Per mode: each client alone first (its DNS queries, counted at dnsmasq,
    from a fresh client), then all clients raced in turns for req/s."""
    n = ctx.sizes.httpx_requests
    for mode in MODES:
        for client, row in list(rows.items()):
            if not row.ok:
                continue
            server.clear()
            reply = proc.step(
                {"client": client, "step": "run", "mode": mode, "n": n}, timeout=120 + n / 50
            )
            if "unavailable" in reply:
                rows[client] = PeerRow(
                    client, CLIENTS[client], status="not available", reason=reply["unavailable"]
                )
                continue
            queries = server.count()
            row.values[f"queries_per_10k_{mode}"] = queries * 10_000 / reply["n"]
            row.values[f"queries_{mode}"] = queries
            row.values[f"ok_{mode}"] = reply["ok"]
        racing = [client for client, row in rows.items() if row.ok]
        reply = proc.step(
            {"clients": racing, "step": "race", "mode": mode, "n": RACE * n},
            timeout=120 + RACE * n * len(racing) / 50,
        )
        for client in racing:
            rows[client].values[f"rps_{mode}"] = median(reply["rates"][client])
            rows[client].values[f"ok_{mode}"] += reply["ok"][client]


def _measure_outage(ctx: Context, rows: dict[str, PeerRow]) -> str:
    seconds = max(2.0, ctx.sizes.outage_seconds)
    with (
        open_server(ctx.env, RECORDS, OUTAGE_TTL) as server,
        Child(NAME, "child", {}, netns=server.netns) as proc,
    ):
        proc.receive()
        for client, row in rows.items():
            if not row.ok:
                continue
            reply = proc.step({"client": client, "step": "warm"})
            if "unavailable" in reply or not reply["ok"]:
                row.values["outage_ok"] = 0
                continue
            time.sleep(OUTAGE_TTL + 0.5)  # the cached answer has expired
            server.stop()
            try:
                reply = proc.step(
                    {"client": client, "step": "outage", "seconds": seconds},
                    timeout=seconds + 60,
                )
            finally:
                server.start()
            row.values["outage_issued"] = reply["issued"]
            row.values["outage_ok"] = reply["ok"]
            row.values["outage_pct"] = reply["ok"] / max(1, reply["issued"])
    return f"{seconds:g} s"


def run(ctx: Context) -> ScenarioResult:
    result = ScenarioResult(
        NAME,
        "6. httpx: requests per second, DNS queries per 10k requests, DNS outage",
        reference="safedns-httpx",
        columns=[
            Column("rps_keepalive", "keep-alive: req/s", fmt_float, ratio=True),
            Column("queries_per_10k_keepalive", "keep-alive: DNS q/10k req", fmt_count),
            Column("rps_close", "new connection each: req/s", fmt_float, ratio=True),
            Column("queries_per_10k_close", "new connection each: DNS q/10k req", fmt_count),
            Column("outage_ok", "DNS down: requests ok", fmt_count),
            Column("outage_pct", "DNS down: % ok", fmt_pct),
        ],
    )
    n = ctx.sizes.httpx_requests
    result.params = {"requests_per_mode": n, "host": HOST, "config": "ndots:5, 3 search domains"}
    if not ctx.env.netns:
        result.status = "skipped"
        result.reason = (
            f"plain httpx resolves through the system resolver, which only the network "
            f"namespace can point at a test server ({ctx.env.netns_reason})"
        )
        return result
    rows = {client: PeerRow(client, label) for client, label in CLIENTS.items()}
    with open_server(ctx.env, RECORDS, TTL) as server:
        result.params["server"] = server.description
        with Child(NAME, "child", {}, netns=server.netns) as proc:
            proc.receive()
            ctx.log("  httpx: keep-alive and new connections")
            try:
                _measure(ctx, server, proc, rows)
            except Exception as exc:
                for client in rows:
                    rows[client] = PeerRow(
                        client, CLIENTS[client], status="error", reason=short(exc)
                    )
    outage = "-"
    if any(row.ok for row in rows.values()):
        ctx.log("  httpx: DNS outage")
        try:
            outage = _measure_outage(ctx, rows)
        except Exception as exc:
            for client in rows:
                rows[client] = PeerRow(client, CLIENTS[client], status="error", reason=short(exc))
    result.rows.extend(rows.values())
    result.notes.append(
        f"{n:,} sequential GETs per client and mode from one process to an HTTP/1.1 server in "
        "it (so req/s is client + server CPU), from a fresh client: DNS queries counted at "
        f"dnsmasq, scaled to 10k requests. Then req/s: {RACE * n:,} more GETs per client, in "
        f"turns of {min(CHUNK, RACE * n)} (A B, B A, …) so that both meet the same machine load; "
        "the median turn's rate. Record TTL 300 s."
    )
    result.notes.append(
        f"DNS down: one healthy request, then {OUTAGE_TTL + 0.5:g} s idle (the {OUTAGE_TTL} s "
        f"TTL expires), then dnsmasq frozen for {outage} while {OUTAGE_RATE} GETs/s with "
        "'Connection: close' are issued, each on its own thread; 'ok': those that succeeded "
        "before DNS came back."
    )
    if ctx.sizes.level != "full":
        result.notes.append(f"{ctx.sizes.level} run: {n:,} requests (the full run: 10,000).")
    _goals(result)
    return result


def _goals(result: ScenarioResult) -> None:
    for mode, label in (("keepalive", "keep-alive"), ("close", "new connection each")):
        ours = result.value("safedns-httpx", f"rps_{mode}")
        plain = result.value("httpx", f"rps_{mode}")
        if not isinstance(ours, float) or not isinstance(plain, float) or plain <= 0:
            result.goals.append(Goal(f"{label}: req/s within 5 % of plain httpx", "-", None))
            continue
        ratio = ours / plain
        result.goals.append(
            Goal(
                f"{label}: SafeTransport req/s within 5 % of plain httpx",
                f"{ours:,.0f} vs {plain:,.0f} req/s ({ratio:.1%} of plain)",
                ratio >= 0.95,
            )
        )
