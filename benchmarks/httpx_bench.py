"""6. httpx: requests per second and DNS queries per 10k requests.

Inside the network namespace, a small HTTP/1.1 server listens on 127.0.0.1
and the namespace's dnsmasq maps ``web.example.com`` to it, under the k8s
resolv.conf. A client sends N sequential GETs, with connection reuse
(keep-alive) and with a new connection per request (``Connection: close``,
the case where every request resolves the name again). Plain httpx resolves
through glibc (``socket.create_connection``); ``safedns.httpx.SafeTransport``
through safedns. Queries are counted at dnsmasq.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ._common import Child, Context, Server, open_server, short
from ._peers import Unavailable
from ._report import Column, PeerRow, ScenarioResult, fmt_count, fmt_float

NAME = "httpx_bench"
HOST = "web.example.com"
RECORDS = {HOST: ["127.0.0.1"]}
TTL = 300
CLIENTS = {
    "httpx": "plain httpx.Client (glibc getaddrinfo)",
    "safedns-httpx": "httpx.Client(transport=safedns SafeTransport)",
}
MODES = ("keepalive", "close")


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


def _safe_transport() -> Any:
    try:
        from safedns.httpx import SafeTransport  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise Unavailable(f"safedns.httpx.SafeTransport is not in this tree yet ({exc})") from None
    from safedns import Resolver, ResolverConfig

    resolver = Resolver(ResolverConfig.from_system(environ={}))
    errors = []
    makers: tuple[Callable[[], Any], ...] = (
        lambda: SafeTransport(resolver=resolver),
        lambda: SafeTransport(resolver),
        lambda: SafeTransport(),
    )
    for make in makers:
        try:
            return make()
        except TypeError as exc:
            errors.append(str(exc))
    raise Unavailable(f"could not construct SafeTransport: {'; '.join(errors)}")


def child(params: dict[str, Any]) -> Generator[dict[str, Any], Any, None]:
    import httpx

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://{HOST}:{server.server_address[1]}/"
    try:
        message = yield {"ready": True}
        while message is not None:
            n = int(message["n"])
            try:
                transport = _safe_transport() if message["client"] == "safedns-httpx" else None
            except Unavailable as exc:
                message = yield {"unavailable": str(exc)}
                continue
            headers = {"Connection": "close"} if message["mode"] == "close" else {}
            ok = 0
            with httpx.Client(transport=transport, trust_env=False, timeout=10) as client:
                started = time.perf_counter()
                for _ in range(n):
                    ok += client.get(url, headers=headers).status_code == 200
                seconds = time.perf_counter() - started
            message = yield {"n": n, "ok": ok, "seconds": seconds}
    finally:
        server.shutdown()
        server.server_close()


def _measure(ctx: Context, server: Server, proc: Child, client: str) -> PeerRow:
    row = PeerRow(client, CLIENTS[client])
    n = ctx.sizes.httpx_requests
    for mode in MODES:
        server.clear()
        reply = proc.step({"client": client, "mode": mode, "n": n}, timeout=120 + n / 50)
        if "unavailable" in reply:
            return PeerRow(
                client, CLIENTS[client], status="not available", reason=reply["unavailable"]
            )
        queries = server.count()
        row.values[f"rps_{mode}"] = reply["n"] / reply["seconds"]
        row.values[f"queries_per_10k_{mode}"] = queries * 10_000 / reply["n"]
        row.values[f"queries_{mode}"] = queries
        row.values[f"ok_{mode}"] = reply["ok"]
    return row


def run(ctx: Context) -> ScenarioResult:
    result = ScenarioResult(
        NAME,
        "6. httpx: requests per second and DNS queries per 10k requests",
        reference="safedns-httpx",
        columns=[
            Column("rps_keepalive", "keep-alive: req/s", fmt_float, ratio=True),
            Column("queries_per_10k_keepalive", "keep-alive: DNS q/10k req", fmt_count),
            Column("rps_close", "new connection each: req/s", fmt_float, ratio=True),
            Column("queries_per_10k_close", "new connection each: DNS q/10k req", fmt_count),
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
    with open_server(ctx.env, RECORDS, TTL) as server:
        result.params["server"] = server.description
        with Child(NAME, "child", {}, netns=server.netns) as proc:
            proc.receive()
            for client in CLIENTS:
                ctx.log(f"  httpx: {client}")
                try:
                    result.rows.append(_measure(ctx, server, proc, client))
                except Exception as exc:
                    result.rows.append(
                        PeerRow(client, CLIENTS[client], status="error", reason=short(exc))
                    )
    result.notes.append(
        f"{n:,} sequential GETs per client and mode from one process to an HTTP/1.1 server in "
        "it (so req/s is client + server CPU); DNS queries counted at dnsmasq and scaled to "
        "10k requests. Record TTL 300 s."
    )
    if ctx.sizes.level != "full":
        result.notes.append(f"{ctx.sizes.level} run: {n:,} requests (the full run: 10,000).")
    safe = result.row("safedns-httpx")
    if safe is not None and not safe.ok:
        plain = result.value("httpx", "queries_close")
        result.notes.append(
            f"Plain httpx alone: {plain} DNS queries for {n:,} new connections "
            "(SafeTransport not available to compare)."
        )
    return result
