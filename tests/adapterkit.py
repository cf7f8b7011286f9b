"""What every HTTP adapter's tests share (httpx, httpx2, urllib3, requests,
aiohttp), besides ``httpservers``: the DNS server and a resolver on it, a
trustme CA and TLS contexts, an HTTP proxy that answers itself, a tunnelling
proxy, all real and on loopback."""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

import safedns
from safedns.testing import DNSServer

from .httpservers import Backend, BlackHole

NAME = "svc.example.com"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def dns() -> Iterator[DNSServer]:
    with DNSServer(negative_ttl=1) as server:
        yield server


def make_resolver(dns: DNSServer) -> safedns.Resolver:
    config = safedns.ResolverConfig(
        nameservers=[dns.nameserver], search=(), ndots=1, timeout=0.5, attempts=1
    )
    return safedns.Resolver(config)


@pytest.fixture
def resolver(dns: DNSServer) -> Iterator[safedns.Resolver]:
    with make_resolver(dns) as res:
        yield res


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_tls(ca: trustme.CA, name: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(ctx)
    return ctx


def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def hole_then_live(resolver: safedns.Resolver, dns: DNSServer) -> tuple[BlackHole, Backend]:
    """A black hole on the first address ``NAME``'s answer lists, a live
    server on the second, one port."""
    dns.add(NAME, "A", "127.0.0.6", ttl=60)
    dns.add(NAME, "A", "127.0.0.7", ttl=60)
    first, second = resolver.resolve_addresses(NAME)
    for _ in range(20):
        hole = BlackHole(first)
        try:
            return hole, Backend(second, hole.port)
        except OSError:
            hole.close()
    raise RuntimeError("no common port")


async def timed_gets(client: Any, url: str, n: int = 4) -> list[float]:
    """Seconds each of ``n`` GETs through an async httpx-like ``client`` took
    (each must answer 200)."""
    times = []
    for _ in range(n):
        started = time.monotonic()
        assert (await client.get(url)).status_code == 200
        times.append(time.monotonic() - started)
    return times


class ProxyBackend(Backend):
    """An HTTP proxy that answers itself, naming the request it got."""

    def answer(self, handler: Any) -> tuple[int, list[tuple[str, str]], bytes]:
        return 200, [], f"proxied {handler.command} {handler.path}".encode()


def import_error_without(client: str, adapter: str) -> str:
    """What ``import <adapter>`` raises in a child where ``client`` cannot
    be imported (None in ``sys.modules`` blocks it); safedns itself imports."""
    code = (
        f"import sys; sys.modules[{client!r}] = None\n"
        "import safedns\n"
        "try:\n"
        f"    import {adapter}\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


class TunnelProxy:
    """An HTTP proxy that only tunnels (``CONNECT host:port``), to the address
    ``routes`` gives for the host: the target's name is the proxy's to
    resolve. Counts the tunnels it opened."""

    def __init__(self, host: str, routes: dict[str, str]) -> None:
        self.routes = routes
        self.tunnels: list[str] = []
        self._listener = socket.create_server((host, 0))
        self.port = int(self._listener.getsockname()[1])
        self._socks: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._socks.append(client)
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                client.close()
                return
            head += chunk
        target = head.split(b" ", 2)[1].decode()
        name, _, port = target.rpartition(":")
        self.tunnels.append(target)
        upstream = socket.create_connection((self.routes[name], int(port)), timeout=5)
        self._socks.append(upstream)
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        self._listener.close()
        for sock in self._socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._thread.join(5)
