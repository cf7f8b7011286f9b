"""``SocketStream``: httpcore's network stream over a socket that
``safedns._http.connect.connect_sync`` connected, with httpcore's own errors
and timeouts (as ``httpcore.SyncBackend``'s streams have them).
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import httpcore

__all__ = ["SocketStream"]


@contextlib.contextmanager
def _mapped(timeout_error: type[Exception], other: type[Exception]) -> Iterator[None]:
    try:
        yield
    except TimeoutError as exc:
        raise timeout_error(exc) from exc
    except OSError as exc:
        raise other(exc) from exc


def _readable(sock: socket.socket) -> bool:
    """Is there something to read (or has the peer closed)? A closed socket
    counts as readable, as httpcore's check says: it must not be reused."""
    if sock.fileno() < 0:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class SocketStream(httpcore.NetworkStream):
    """A connected TCP socket (or its TLS upgrade) as httpcore reads it."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _mapped(httpcore.ReadTimeout, httpcore.ReadError):
            self._sock.settimeout(timeout)
            return self._sock.recv(max_bytes)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        with _mapped(httpcore.WriteTimeout, httpcore.WriteError):
            while buffer:
                self._sock.settimeout(timeout)
                sent = self._sock.send(buffer)
                buffer = buffer[sent:]

    def close(self) -> None:
        self._sock.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        if isinstance(self._sock, ssl.SSLSocket):
            # TLS inside TLS happens only through an HTTPS proxy, and a proxied
            # transport dials through httpcore's own backend.
            raise httpcore.ConnectError("TLS over TLS is not supported on a direct connection")
        try:
            with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
                self._sock.settimeout(timeout)
                sock = ssl_context.wrap_socket(self._sock, server_hostname=server_hostname)
        except BaseException:
            self.close()
            raise
        return SocketStream(sock)

    def get_extra_info(self, info: str) -> Any:
        sock = self._sock
        if info == "ssl_object":
            # The SSLSocket itself: it has every method of the SSLObject inside
            # it that httpcore asks (selected_alpn_protocol, getpeercert, ...).
            return sock if isinstance(sock, ssl.SSLSocket) else None
        if info == "client_addr":
            return sock.getsockname()
        if info == "server_addr":
            return sock.getpeername()
        if info == "socket":
            return sock
        if info == "is_readable":
            return _readable(sock)
        return None
