"""What the urllib3 and requests adapter tests share, besides ``httpservers``:
the DNS server and a resolver on it, a trustme CA, a black hole and a server
that closes every connection without a response, all real and on loopback."""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

import safedns
from safedns.testing import DNSServer

from .httpservers import Backend

NAME = "svc.example.com"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def dns() -> Iterator[DNSServer]:
    with DNSServer(negative_ttl=1) as server:
        yield server


@pytest.fixture
def resolver(dns: DNSServer) -> Iterator[safedns.Resolver]:
    config = safedns.ResolverConfig(
        nameservers=[dns.nameserver], search=(), ndots=1, timeout=0.5, attempts=1
    )
    with safedns.Resolver(config) as res:
        yield res


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_tls(ca: trustme.CA, name: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(ctx)
    return ctx


@contextlib.contextmanager
def black_hole(host: str, port: int) -> Iterator[None]:
    """``host:port`` drops every SYN: a listener with ``listen(0)`` whose
    accept queue is already full (one connection made, never accepted), so a
    connect to it neither succeeds nor fails."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(0)
    filler = socket.create_connection((host, port), timeout=2)
    probe = socket.socket()
    probe.setblocking(False)
    try:
        probe.connect_ex((host, port))
        _, writable, _ = select.select([], [probe], [], 0.3)
        assert not writable, "the black hole answered a SYN"
        yield
    finally:
        for sock in (probe, filler, listener):
            sock.close()


class Closer:
    """A TCP server on ``host:port`` that reads a request and closes the
    connection without a response (``port`` 0: any free one)."""

    def __init__(self, host: str, port: int = 0) -> None:
        self._listener = socket.create_server((host, port))
        self.port = int(self._listener.getsockname()[1])
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            with sock:
                sock.settimeout(2)
                with contextlib.suppress(OSError):
                    sock.recv(65536)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(5)


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
