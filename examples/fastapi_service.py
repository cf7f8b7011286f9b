"""A FastAPI service (run by uvicorn) that calls a downstream service through
``safedns.httpx.AsyncSafeTransport``: the downstream's name resolves through
safedns (cache, serve-stale, budget), keep-alive connections follow DNS, and
retries stay within a budget.

    python examples/fastapi_service.py           # self-contained demo
    DOWNSTREAM_URL=http://orders.ns1:8080 \\
        uvicorn examples.fastapi_service:app      # in a real deployment

The demo starts an embedded DNS server that knows ``downstream.example.com``,
a local downstream HTTP server, and this service under uvicorn; it calls the
service 20 times and shows how few DNS queries that took.
"""

from __future__ import annotations

import http.server
import os
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

import safedns
from safedns.httpx import AsyncSafeTransport


def create_app(downstream_url: str, config: safedns.ResolverConfig | None = None) -> FastAPI:
    """The service: ``GET /orders`` calls ``downstream_url`` and relays its answer."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolver = safedns.AsyncResolver(config)  # one per process: one cache, one budget
        transport = AsyncSafeTransport(resolver=resolver, retry=safedns.RetryPolicy(attempts=3))
        async with (
            resolver,
            httpx.AsyncClient(transport=transport, base_url=downstream_url, timeout=5.0) as client,
        ):
            app.state.client = client
            app.state.resolver = resolver
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/orders")
    async def orders() -> dict[str, Any]:
        reply = await app.state.client.get("/")
        return {"downstream_status": reply.status_code, "downstream_body": reply.text.strip()}

    @app.get("/dns")
    async def dns_stats() -> dict[str, int]:
        stats = app.state.resolver.stats()
        return {"lookups": stats.lookups, "upstream_queries": stats.upstream_queries}

    return app


class _Downstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"3 open orders\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    from safedns.testing import DNSServer

    downstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Downstream)
    threading.Thread(target=downstream.serve_forever, daemon=True).start()
    with DNSServer() as dns_server:
        dns_server.add("downstream.example.com", "A", "127.0.0.1", ttl=60)
        config = safedns.ResolverConfig(nameservers=[dns_server.nameserver], timeout=1.0)
        url = f"http://downstream.example.com:{downstream.server_address[1]}"
        server = uvicorn.Server(
            uvicorn.Config(create_app(url, config), host="127.0.0.1", port=0, log_level="warning")
        )
        thread = threading.Thread(target=server.run)
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError("uvicorn did not start")
                time.sleep(0.02)
            port = server.servers[0].sockets[0].getsockname()[1]
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                for _ in range(20):
                    answer = client.get("/orders").json()
                print("GET /orders ->", answer)
                print("service DNS stats:", client.get("/dns").json())
        finally:
            server.should_exit = True
            thread.join(30)
        print(f"20 calls to the downstream, {len(dns_server.queries)} DNS queries")
    downstream.shutdown()
    downstream.server_close()


if os.environ.get("DOWNSTREAM_URL"):
    app = create_app(os.environ["DOWNSTREAM_URL"])

if __name__ == "__main__":
    main()
