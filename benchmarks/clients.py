"""7. HTTP clients: each of httpx, httpx2, requests and aiohttp, plain and
through safedns's adapter, side by side in one run.

Inside the network namespace (real glibc for the plain clients, dnsmasq on
127.0.0.1:53 under the k8s resolv.conf), a child process runs small HTTP/1.1
servers and the clients:

- keep-alive and new-connection-each req/s (``CHUNK``-request turns, who goes
  first alternating; the median turn), and DNS queries per 10k requests with
  a new connection each (counted at dnsmasq, record TTL 300 s);
- a black-holed first address: the name has two addresses, the one glibc
  sorts first drops SYNs (a ``listen(0)`` socket whose accept queue is
  full); median time to the response, a new connection each, connect
  timeout 1 s for every client;
- a DNS outage: the record's 2 s TTL expires, dnsmasq is frozen, and GETs
  with a new connection each are issued at a steady rate; the % that
  succeed before DNS comes back;
- a 503 backend: GETs with 4 attempts each (safedns: ``RetryPolicy(
  attempts=4)`` under the default ``RetryBudget``; plain: the client's own
  retry setting where it has one, urllib3's ``Retry(total=3,
  status_forcelist=[503])`` for requests, a loop of 4 tries for the
  others, as ``httpx-retries`` and ``aiohttp-retry`` do); attempts counted
  at the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Generator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ._common import Child, Context, Server, median, open_server, short
from ._peers import Unavailable
from ._report import Column, Goal, PeerRow, ScenarioResult, fmt_count, fmt_float, fmt_ms, fmt_pct

NAME = "clients"
HOST = "web.example.com"
HOLE_HOST = "hole.example.com"
HOLE_ADDRESSES = ["127.0.0.3", "127.0.0.4"]
RECORDS = {HOST: ["127.0.0.1"], HOLE_HOST: HOLE_ADDRESSES}
TTL = 300
OUTAGE_TTL = 2
OUTAGE_RATE = 20
CHUNK = 100
CLIENTS = ("httpx", "httpx2", "requests", "aiohttp")
FLAVOURS = ("plain", "safedns")
ATTEMPTS = 4
BUSY = 500
CONNECT_TIMEOUT = 1.0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    status = 200
    hits: list[int]

    def do_GET(self) -> None:
        self.hits.append(1)
        body = b"ok"
        self.send_response(self.status)
        if self.headers.get("Connection", "").lower() == "close":
            self.send_header("Connection", "close")  # say so: the client must not reuse it
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def _serve(host: str, port: int = 0, status: int = 200) -> tuple[_Server, list[int]]:
    hits: list[int] = []
    handler = type("Handler", (_Handler,), {"status": status, "hits": hits})
    server = _Server((host, port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, hits


class _BlackHole:
    """``listen(0)`` with its one-place accept queue already full: SYNs dropped."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.socket()
        self.sock.bind((host, port))
        self.sock.listen(0)
        self.filler = socket.create_connection((host, port), timeout=1)

    def close(self) -> None:
        self.filler.close()
        self.sock.close()


# -- the clients, behind one small interface --------------------------------------


class _Loop:
    """An event loop on its own thread, for the async clients."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


def _resolver() -> Any:
    from safedns import Resolver, ResolverConfig

    return Resolver(ResolverConfig.from_system(environ={}))


class _Client:
    """``get(url, close)`` returns the status of one GET (after the client's
    retries, when ``retry``), raising on a failure; ``close()``."""

    def __init__(self, kind: str, flavour: str, retry: bool) -> None:
        self.kind, self.flavour, self.retry = kind, flavour, retry
        self.loop: _Loop | None = None
        maker = getattr(self, f"_make_{kind}")
        try:
            self.client = maker()
        except ImportError as exc:
            raise Unavailable(f"{kind} ({flavour}) is not importable ({exc})") from None

    def _policy(self) -> Any:
        import safedns

        return safedns.RetryPolicy(attempts=ATTEMPTS, backoff=0) if self.retry else None

    def _make_httpx(self, module: str = "httpx") -> Any:
        httpx = __import__(module)
        timeout = httpx.Timeout(10, connect=CONNECT_TIMEOUT)
        if self.flavour == "plain":
            return httpx.Client(trust_env=False, timeout=timeout)
        adapter = __import__(f"safedns.{module}", fromlist=["SafeTransport"])
        transport = adapter.SafeTransport(
            resolver=_resolver(), retry=self._policy(), trust_env=False
        )
        return httpx.Client(transport=transport, trust_env=False, timeout=timeout)

    def _make_httpx2(self) -> Any:
        return self._make_httpx("httpx2")

    def _make_requests(self) -> Any:
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        session = requests.Session()
        session.trust_env = False
        if self.flavour == "plain":
            retries = Retry(total=ATTEMPTS - 1, status_forcelist=[503], backoff_factor=0)
            adapter: Any = HTTPAdapter(max_retries=retries if self.retry else 0)
        else:
            from safedns.requests import SafeAdapter

            adapter = SafeAdapter(resolver=_resolver(), retry=self._policy())
        session.mount("http://", adapter)
        return session

    def _make_aiohttp(self) -> Any:
        import aiohttp

        self.loop = _Loop()

        async def make() -> Any:
            timeout = aiohttp.ClientTimeout(total=10, connect=CONNECT_TIMEOUT)
            if self.flavour == "plain":
                return aiohttp.ClientSession(timeout=timeout)
            from safedns.aiohttp import RetryMiddleware, SafeConnector

            middlewares = (RetryMiddleware(retry=self._policy()),) if self.retry else ()
            return aiohttp.ClientSession(
                connector=SafeConnector(resolver=_resolver()),
                middlewares=middlewares,
                timeout=timeout,
            )

        return self.loop.run(make())

    def _plain_loop(self) -> bool:
        """Plain httpx, httpx2 and aiohttp have no status retries: a loop of tries."""
        return self.retry and self.flavour == "plain" and self.kind != "requests"

    def get(self, url: str, close: bool = False) -> int:
        headers = {"Connection": "close"} if close else {}
        tries = ATTEMPTS if self._plain_loop() else 1
        status = 0
        for _ in range(tries):
            status = self._get_once(url, headers)
            if status != 503:
                break
        return status

    def _get_once(self, url: str, headers: dict[str, str]) -> int:
        if self.kind == "aiohttp":
            assert self.loop is not None

            async def one() -> int:
                async with self.client.get(url, headers=headers) as response:
                    await response.read()
                    return int(response.status)

            return int(self.loop.run(one()))
        if self.kind == "requests":
            return int(
                self.client.get(url, headers=headers, timeout=(CONNECT_TIMEOUT, 10)).status_code
            )
        return int(self.client.get(url, headers=headers).status_code)

    def close(self) -> None:
        if self.loop is not None:
            self.loop.run(self.client.close())
            self.loop.close()
        else:
            self.client.close()


# -- the child: servers and clients in the namespace -------------------------------


def child(params: dict[str, Any]) -> Generator[dict[str, Any], Any, None]:
    live, _ = _serve("127.0.0.1")
    busy, busy_hits = _serve("127.0.0.1", status=503)
    order = [
        info[4][0]
        for info in socket.getaddrinfo(HOLE_HOST, 80, socket.AF_INET, socket.SOCK_STREAM)
    ]
    first = order[0]
    second = next(a for a in HOLE_ADDRESSES if a != first)
    alive, _ = _serve(second)
    hole = _BlackHole(first, alive.server_address[1])
    ports = {"live": live.server_address[1], "busy": busy.server_address[1]}
    urls = {
        "live": f"http://{HOST}:{ports['live']}/",
        "busy": f"http://{HOST}:{ports['busy']}/",
        "hole": f"http://{HOLE_HOST}:{alive.server_address[1]}/",
    }
    clients: dict[tuple[str, str, bool], _Client] = {}

    def client(kind: str, flavour: str, retry: bool = False) -> _Client:
        key = (kind, flavour, retry)
        if key not in clients:
            clients[key] = _Client(kind, flavour, retry)
        return clients[key]

    try:
        message = yield {"ready": True, "hole_first": first}
        while message is not None:
            step = message["step"]
            try:
                if step == "race":
                    reply = _race(
                        {f: client(message["kind"], f) for f in FLAVOURS},
                        urls["live"],
                        bool(message["close"]),
                        int(message["n"]),
                    )
                elif step == "run":
                    c = client(message["kind"], message["flavour"], bool(message.get("retry")))
                    reply = _run(
                        c, urls[message["url"]], bool(message["close"]), int(message["n"])
                    )
                elif step == "busy":
                    busy_hits.clear()
                    c = client(message["kind"], message["flavour"], True)
                    reply = _run(c, urls["busy"], False, int(message["n"]))
                    reply["attempts"] = len(busy_hits)
                elif step == "warm":
                    reply = {
                        "ok": client(message["kind"], message["flavour"]).get(urls["live"]) == 200
                    }
                else:  # "outage": the parent has just stopped DNS
                    who = [client(kind, flavour) for kind, flavour in message["who"]]
                    reply = {"results": _outages(who, urls["live"], float(message["seconds"]))}
            except Unavailable as exc:
                reply = {"unavailable": str(exc)}
            message = yield reply
    finally:
        for c in clients.values():
            with contextlib.suppress(Exception):
                c.close()
        for server in (live, busy, alive):
            server.shutdown()
            server.server_close()
        hole.close()


def _run(client: _Client, url: str, close: bool, n: int) -> dict[str, Any]:
    times: list[float] = []
    ok = 0
    for _ in range(n):
        started = time.perf_counter()
        with contextlib.suppress(Exception):
            ok += client.get(url, close) in (200, 503)
        times.append(time.perf_counter() - started)
    return {"n": n, "ok": ok, "seconds": sum(times), "median_ms": median(times) * 1000}


def _race(clients: dict[str, _Client], url: str, close: bool, n: int) -> dict[str, Any]:
    rates: dict[str, list[float]] = {f: [] for f in clients}
    order = list(clients)
    size = min(CHUNK, n)
    for turn in range(max(1, n // size)):
        for flavour in order if turn % 2 == 0 else reversed(order):
            started = time.perf_counter()
            for _ in range(size):
                clients[flavour].get(url, close)
            rates[flavour].append(size / (time.perf_counter() - started))
    return {"rates": {f: median(r) for f, r in rates.items()}}


def _outages(clients: list[_Client], url: str, seconds: float) -> list[tuple[int, int]]:
    """GETs with a new connection each at ``OUTAGE_RATE``/s from every client,
    each on its own thread; ``(issued, ok)`` per client, ok counting those
    that succeeded before the outage ended."""
    done: list[list[float]] = [[] for _ in clients]
    lock = threading.Lock()
    t0 = time.monotonic()
    t_end = t0 + seconds

    def one(i: int) -> None:
        try:
            status = clients[i].get(url, close=True)
        except Exception:
            return
        if status == 200:
            with lock:
                done[i].append(time.monotonic())

    issued = 0
    while (at := t0 + issued / OUTAGE_RATE) < t_end:
        time.sleep(max(0.0, at - time.monotonic()))
        for i in range(len(clients)):
            threading.Thread(target=one, args=(i,), daemon=True).start()
        issued += 1
    time.sleep(max(0.0, t_end - time.monotonic()))
    with lock:
        return [(issued, sum(1 for when in d if when <= t_end)) for d in done]


# -- the parent ----------------------------------------------------------------------


def _label(kind: str, flavour: str) -> str:
    adapters = {
        "httpx": "httpx.Client(transport=safedns.httpx.SafeTransport)",
        "httpx2": "httpx2.Client(transport=safedns.httpx2.SafeTransport)",
        "requests": "requests.Session + safedns.requests.SafeAdapter",
        "aiohttp": "aiohttp.ClientSession(SafeConnector, RetryMiddleware)",
    }
    return adapters[kind] if flavour == "safedns" else f"plain {kind} (glibc getaddrinfo)"


def _step(
    proc: Child, row: PeerRow, message: dict[str, Any], timeout: float
) -> dict[str, Any] | None:
    reply: dict[str, Any] = proc.step(message, timeout=timeout)
    if "unavailable" in reply:
        row.status, row.reason = "not available", reply["unavailable"]
        return None
    return reply


def _measure(
    ctx: Context, server: Server, proc: Child, kind: str, rows: dict[str, PeerRow]
) -> None:
    n = ctx.sizes.httpx_requests
    holes = max(2, min(10, n // 20))
    for flavour, row in rows.items():
        server.clear()
        base = {"kind": kind, "flavour": flavour}
        reply = _step(
            proc, row, {**base, "step": "run", "url": "live", "close": True, "n": n}, 120 + n / 20
        )
        if reply is None:
            continue
        row.values["queries_per_10k"] = server.count() * 10_000 / n
        reply = _step(
            proc, row, {**base, "step": "run", "url": "hole", "close": True, "n": holes}, 60
        )
        if reply is not None:
            row.values["hole_ms"] = reply["median_ms"]
        reply = _step(proc, row, {**base, "step": "busy", "n": BUSY}, 300)
        if reply is not None:
            row.values["busy_attempts"] = reply["attempts"]
    if all(row.ok for row in rows.values()):
        for close, key in ((False, "rps_keepalive"), (True, "rps_close")):
            reply = proc.step(
                {"step": "race", "kind": kind, "close": close, "n": 2 * n}, timeout=120 + n / 10
            )
            for flavour in FLAVOURS:
                rows[flavour].values[key] = reply["rates"][flavour]


def _measure_outage(
    ctx: Context, server: Server, proc: Child, table: dict[str, dict[str, PeerRow]]
) -> float:
    """Every client at once through one outage: warmed, the TTL let run out,
    DNS frozen, then GETs at ``OUTAGE_RATE``/s from each."""
    seconds = max(1.5, ctx.sizes.outage_seconds)
    who = [
        (kind, flavour) for kind, rows in table.items() for flavour, row in rows.items() if row.ok
    ]
    for kind, flavour in who:
        proc.step({"step": "warm", "kind": kind, "flavour": flavour}, timeout=60)
    time.sleep(ctx.sizes.outage_ttl + 0.5)  # every cached answer has expired
    server.stop()
    try:
        reply = proc.step({"step": "outage", "who": who, "seconds": seconds}, timeout=seconds + 60)
    finally:
        server.start()
    for (kind, flavour), (issued, ok) in zip(who, reply["results"], strict=True):
        table[kind][flavour].values["outage_pct"] = ok / max(1, issued)
    return seconds


def _result(kind: str) -> ScenarioResult:
    return ScenarioResult(
        f"{NAME}_{kind}",
        f"7. {kind}: plain and through safedns",
        reference="safedns",
        columns=[
            Column("rps_keepalive", "keep-alive: req/s", fmt_float, ratio=True),
            Column("rps_close", "new connection each: req/s", fmt_float, ratio=True),
            Column("queries_per_10k", "DNS q/10k req (new connection each)", fmt_count),
            Column("hole_ms", "black-holed first address: median", fmt_ms),
            Column("outage_pct", "DNS down: % ok", fmt_pct),
            Column("busy_attempts", f"attempts for {BUSY} GETs to a 503", fmt_count),
        ],
    )


def run(ctx: Context) -> list[ScenarioResult]:
    results = {kind: _result(kind) for kind in CLIENTS}
    if not ctx.env.netns:
        for result in results.values():
            result.status = "skipped"
            result.reason = (
                "plain clients resolve through glibc, which only the network namespace can "
                f"point at a test server ({ctx.env.netns_reason})"
            )
        return list(results.values())
    n = ctx.sizes.httpx_requests
    ttl = ctx.sizes.outage_ttl
    table = {
        kind: {
            f: PeerRow("plain" if f == "plain" else "safedns", _label(kind, f)) for f in FLAVOURS
        }
        for kind in CLIENTS
    }
    seconds = 0.0
    try:
        with (
            open_server(ctx.env, RECORDS, ttl) as server,
            Child(NAME, "child", {}, netns=server.netns) as proc,
        ):
            hello = proc.receive()
            for kind in CLIENTS:
                ctx.log(f"  clients: {kind}")
                results[kind].params = {
                    "requests": n,
                    "record TTL": f"{ttl} s",
                    "black hole": hello["hole_first"],
                    "config": "ndots:5, 3 search domains",
                }
                _measure(ctx, server, proc, kind, table[kind])
            ctx.log("  clients: DNS outage")
            seconds = _measure_outage(ctx, server, proc, table)
    except Exception as exc:
        for kind in CLIENTS:
            for f in FLAVOURS:
                row = table[kind][f]
                table[kind][f] = PeerRow(row.peer, row.label, status="error", reason=short(exc))
    for kind, result in results.items():
        result.rows.extend(table[kind].values())
        result.notes.append(
            f"{n:,} GETs per client (new connection each) for the DNS queries, counted at "
            f"dnsmasq, record TTL {ttl} s; req/s: {2 * n:,} more per mode in turns of "
            f"{min(CHUNK, 2 * n)} (plain, safedns, then safedns, plain ...), the median turn. "
            "Black hole: the address glibc sorts first drops SYNs, connect timeout "
            f"{CONNECT_TIMEOUT:g} s. DNS down: dnsmasq frozen for {seconds:g} s after the TTL "
            f"ran out, {OUTAGE_RATE} GETs/s with a new connection each, every client at once. "
            f"503: {BUSY} GETs with {ATTEMPTS} attempts each (safedns: RetryPolicy under the "
            "default RetryBudget; plain requests: urllib3's Retry; plain httpx, httpx2, "
            "aiohttp: a loop of tries)."
        )
        _goals(result)
    return list(results.values())


def _goals(result: ScenarioResult) -> None:
    ours = result.value("safedns", "rps_keepalive")
    plain = result.value("plain", "rps_keepalive")
    if isinstance(ours, float) and isinstance(plain, float) and plain > 0:
        result.goals.append(
            Goal(
                "keep-alive req/s >= 95 % of plain",
                f"{ours:,.0f} vs {plain:,.0f} req/s ({ours / plain:.1%})",
                ours / plain >= 0.95,
            )
        )
    else:
        result.goals.append(Goal("keep-alive req/s >= 95 % of plain", "-", None))
    attempts = result.value("safedns", "busy_attempts_per_500")
    if isinstance(attempts, (int, float)):
        result.goals.append(
            Goal(
                "at most 650 attempts per 500 GETs to a 503",
                f"{attempts:,.0f}",
                attempts <= 650 + 50,
            )
        )


__all__ = ["CLIENTS", "child", "run"]
