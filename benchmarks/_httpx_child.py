"""The child side of ``httpx_bench``, run inside the network namespace: the
HTTP servers (a live one, and a black hole sharing its port on another
loopback address), the four clients and every measured step.

Clients: plain ``httpx.Client`` and ``httpx.AsyncClient`` (glibc
``getaddrinfo``; the async one through anyio, in a thread, with its own Happy
Eyeballs), and the same two with ``safedns.httpx.SafeTransport`` /
``AsyncSafeTransport`` (resolving through safedns, configured from the
namespace's resolv.conf). Async clients run on one event loop kept for the
child's life, so their pooled connections survive from one step to the next.
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

from ._peers import Unavailable

__all__ = [
    "ASYNC",
    "CLIENTS",
    "CONNECT_TIMEOUT",
    "HOLE_HOST",
    "HOLE_RECORDS",
    "HOST",
    "OUTAGE_RATE",
    "child",
]

HOST = "web.example.com"
#: Two addresses, the black hole first: glibc sorts these two (RFC 6724) with
#: 127.0.0.1 first whatever the order of the records, and safedns keeps
#: dnsmasq's order. The child checks what glibc gives and puts the hole there.
HOLE_HOST = "hole.example.com"
HOLE_RECORDS = ["127.0.0.1", "127.0.0.2"]
#: Every client's connect timeout (plain httpx tries addresses one after the
#: other, each with the whole connect timeout).
CONNECT_TIMEOUT = 2.0
TIMEOUT = 10.0
OUTAGE_RATE = 20  # requests per second during the outage
CLIENTS = {
    "httpx": "plain httpx.Client (glibc getaddrinfo)",
    "safedns-httpx": "httpx.Client(transport=safedns.httpx.SafeTransport)",
    "httpx-async": "plain httpx.AsyncClient (glibc getaddrinfo in a thread, anyio)",
    "safedns-httpx-async": "httpx.AsyncClient(transport=safedns.httpx.AsyncSafeTransport)",
}
ASYNC = frozenset({"httpx-async", "safedns-httpx-async"})
CLOSE = {"Connection": "close"}


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


def _serve(address: tuple[str, int]) -> _Server:
    server = _Server(address, _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class _Hole:
    """``host:port`` dropping every SYN, as a dead pod IP does: a listener
    with ``listen(0)`` whose one-place accept queue is taken by a connection
    nobody accepts. Checked: a further connect must time out."""

    def __init__(self, host: str, port: int) -> None:
        self.listener = socket.socket()
        self.listener.bind((host, port))
        self.listener.listen(0)
        self.queued = socket.create_connection((host, port), timeout=1)
        with socket.socket() as probe:
            probe.settimeout(0.2)
            with contextlib.suppress(TimeoutError):
                probe.connect((host, port))
                raise RuntimeError(f"{host}:{port} accepted a connect: no black hole here")

    def close(self) -> None:
        self.queued.close()
        self.listener.close()


def _hole_setup() -> tuple[_Server, _Hole, dict[str, Any]]:
    """The live server on glibc's second address of ``HOLE_HOST`` and the
    black hole on its first, on one port."""
    order = list(
        dict.fromkeys(
            str(info[4][0])
            for info in socket.getaddrinfo(HOLE_HOST, 80, socket.AF_INET, socket.SOCK_STREAM)
        )
    )
    if len(order) != 2:
        raise RuntimeError(f"{HOLE_HOST} should have two addresses, glibc gave {order}")
    hole_address, live_address = order
    for _ in range(20):
        live = _serve((live_address, 0))
        try:
            hole = _Hole(hole_address, live.server_address[1])
        except OSError:  # that port is taken on the hole's address: another one
            live.shutdown()
            live.server_close()
            continue
        info = {"glibc_order": order, "hole": hole_address, "live": live_address}
        return live, hole, info
    raise RuntimeError(f"no port free on both {hole_address} and {live_address}")


def _client(kind: str) -> Any:
    import httpx

    timeout = httpx.Timeout(TIMEOUT, connect=CONNECT_TIMEOUT)
    if kind == "httpx":
        return httpx.Client(trust_env=False, timeout=timeout)
    if kind == "httpx-async":
        return httpx.AsyncClient(trust_env=False, timeout=timeout)
    try:
        from safedns.httpx import AsyncSafeTransport, SafeTransport
    except ImportError as exc:
        raise Unavailable(f"safedns.httpx is not importable ({exc})") from None
    from safedns import AsyncResolver, Resolver, ResolverConfig

    config = ResolverConfig.from_system(environ={})
    if kind == "safedns-httpx":
        transport = SafeTransport(resolver=Resolver(config), trust_env=False)
        return httpx.Client(transport=transport, trust_env=False, timeout=timeout)
    assert kind == "safedns-httpx-async", kind
    atransport = AsyncSafeTransport(resolver=AsyncResolver(config), trust_env=False)
    return httpx.AsyncClient(transport=atransport, trust_env=False, timeout=timeout)


class _Clients:
    """The clients made so far, and the one event loop the async ones use."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._made: dict[str, Any] = {}

    def __getitem__(self, kind: str) -> Any:
        if kind not in self._made:
            self._made[kind] = _client(kind)
        return self._made[kind]

    def timed(self, kind: str, url: str, n: int, headers: dict[str, str]) -> dict[str, Any]:
        """``n`` sequential GETs: the seconds of each and of all, and how many
        got a 200 (a request that raised counts its time, not as ok)."""
        client = self[kind]
        started = time.perf_counter()
        if kind in ASYNC:
            times, ok = self.loop.run_until_complete(_timed_async(client, url, n, headers))
        else:
            times, ok = _timed_sync(client, url, n, headers)
        return {"n": n, "ok": ok, "times": times, "seconds": time.perf_counter() - started}

    def stream(self, kind: str, url: str, seconds: float) -> dict[str, Any]:
        client = self[kind]
        if kind in ASYNC:
            done, issued = self.loop.run_until_complete(_stream_async(client, url, seconds))
        else:
            done, issued = _stream_sync(client, url, seconds)
        return {"issued": issued, "ok": done}

    def close(self) -> None:
        for kind, client in self._made.items():
            if kind in ASYNC:
                self.loop.run_until_complete(client.aclose())
            else:
                client.close()
        self.loop.close()


def _timed_sync(client: Any, url: str, n: int, headers: dict[str, str]) -> tuple[list[float], int]:
    times, ok = [], 0
    for _ in range(n):
        started = time.perf_counter()
        with contextlib.suppress(Exception):
            ok += client.get(url, headers=headers).status_code == 200
        times.append(time.perf_counter() - started)
    return times, ok


async def _timed_async(
    client: Any, url: str, n: int, headers: dict[str, str]
) -> tuple[list[float], int]:
    times, ok = [], 0
    for _ in range(n):
        started = time.perf_counter()
        with contextlib.suppress(Exception):
            ok += (await client.get(url, headers=headers)).status_code == 200
        times.append(time.perf_counter() - started)
    return times, ok


def _stream_sync(client: Any, url: str, seconds: float) -> tuple[int, int]:
    """GETs at ``OUTAGE_RATE`` for ``seconds``, each on its own thread: how
    many succeeded within ``seconds``, and how many were issued (stragglers
    are abandoned: the threads are daemons, stuck in glibc at worst)."""
    done: list[float] = []
    lock = threading.Lock()
    t0 = time.monotonic()
    t_end = t0 + seconds

    def one() -> None:
        try:
            response = client.get(url, headers=CLOSE)
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
        return sum(1 for when in done if when <= t_end), issued


async def _stream_async(client: Any, url: str, seconds: float) -> tuple[int, int]:
    """``_stream_sync`` with one task per GET; those still running at the end
    are cancelled."""
    done: list[float] = []
    tasks: list[asyncio.Task[None]] = []
    t0 = time.monotonic()
    t_end = t0 + seconds

    async def one() -> None:
        try:
            response = await client.get(url, headers=CLOSE)
        except Exception:
            return
        if response.status_code == 200:
            done.append(time.monotonic())

    while (at := t0 + len(tasks) / OUTAGE_RATE) < t_end:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        tasks.append(asyncio.create_task(one()))
    await asyncio.sleep(max(0.0, t_end - time.monotonic()))
    ok = sum(1 for when in done if when <= t_end)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return ok, len(tasks)


def _race(
    clients: _Clients, kinds: list[str], url: str, mode: str, n: int, chunk: int
) -> dict[str, Any]:
    """``n`` requests per client, in turns of ``chunk`` (who goes first
    alternates), so that every client meets the same machine load; the rate
    of each turn is kept (the parent takes the median turn: robust to the
    load of a shared machine coming and going)."""
    headers = CLOSE if mode == "close" else {}
    rates: dict[str, list[float]] = {kind: [] for kind in kinds}
    ok = dict.fromkeys(kinds, 0)
    size = min(chunk, n)
    for turn in range(n // size):
        for kind in kinds if turn % 2 == 0 else reversed(kinds):
            reply = clients.timed(kind, url, size, headers)
            rates[kind].append(size / reply["seconds"])
            ok[kind] += reply["ok"]
    return {"n": n // size * size, "rates": rates, "ok": ok}


def child(params: dict[str, Any]) -> Generator[dict[str, Any], Any, None]:
    """Steps (the parent's messages): ``race`` (req/s of ``clients``),
    ``run`` (``n`` GETs of one client), ``warm`` (one GET), ``hole`` (``n``
    GETs to the black-holed name, each on a new connection), ``latency``
    (``n`` kept-alive GETs, each timed) and ``outage`` (a stream of GETs on
    new connections for ``seconds``). ``params["hole"]``: set up the hole."""
    server = _serve(("127.0.0.1", 0))
    url = f"http://{HOST}:{server.server_address[1]}/"
    hole_url: str | None = None
    hole_parts: tuple[_Server, _Hole] | None = None
    info: dict[str, Any] = {}
    clients = _Clients()
    try:
        if params.get("hole"):
            live, hole, info = _hole_setup()
            hole_parts = (live, hole)
            hole_url = f"http://{HOLE_HOST}:{live.server_address[1]}/"
        message = yield {"ready": True, **info}
        while message is not None:
            kinds = message.get("clients", [message.get("client")])
            try:
                for kind in kinds:
                    clients[kind]
            except Unavailable as exc:
                message = yield {"unavailable": str(exc)}
                continue
            step, kind, n = message["step"], kinds[0], int(message.get("n", 1))
            headers = CLOSE if message.get("mode") == "close" else {}
            if step == "race":
                reply = _race(clients, kinds, url, message["mode"], n, int(message["chunk"]))
            elif step in ("run", "warm", "latency"):
                reply = clients.timed(kind, url, n, headers)
                if step == "run":
                    del reply["times"]
            elif step == "hole":
                assert hole_url is not None, "the child was started without the hole"
                reply = clients.timed(kind, hole_url, n, CLOSE)
            else:  # "outage": the parent has just stopped DNS
                reply = clients.stream(kind, url, float(message["seconds"]))
            message = yield reply
    finally:
        clients.close()
        server.shutdown()
        server.server_close()
        if hole_parts is not None:
            hole_parts[0].shutdown()
            hole_parts[0].server_close()
            hole_parts[1].close()
