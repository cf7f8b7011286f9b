"""Real local HTTP(S) servers for the transport tests.

``Backend`` is a stdlib ``ThreadingHTTPServer`` on one loopback address
(Linux routes all of 127.0.0.0/8 to ``lo``, so 127.0.0.2 and 127.0.0.3 are
two distinct servers on one port). It counts what a test needs to see from
the server's side: connections accepted and still open, requests, and TLS
handshakes. ``H2Backend`` speaks HTTP/2 (h2) over TLS with ALPN.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes
    server: _Server

    def setup(self) -> None:
        backend = self.server.backend
        if backend.tls is not None:
            raw = self.request
            try:
                self.request = backend.tls.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError):
                backend.count("tls_failures")
                raise
            backend.count("handshakes")
            backend.opened(raw, self.request)
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self.server.backend.tls is not None:
                self.request.close()

    def _respond(self) -> None:
        backend = self.server.backend
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body_in = self._read_chunked()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body_in = self.rfile.read(length) if length else b""
        backend.record(self.command, self.path, self.headers, body_in)
        status, headers, body = backend.answer(self)
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _read_chunked(self) -> bytes:
        body = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return body
            body += self.rfile.read(size)
            self.rfile.readline()  # the CRLF after each chunk

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _respond

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # bursts of connects must not meet SYN drops (1 s retransmit)
    daemon_threads = False
    block_on_close = True
    backend: Backend

    def process_request(self, request: Any, client_address: Any) -> None:
        self.backend.opened(request, request)
        self.backend.count("accepted")
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        self.backend.closed(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        return None  # a client that went away, or a refused handshake


class Backend:
    """An HTTP/1.1 server on ``host:port`` (port 0: any free one).

    ``status``/``headers``/``body`` are what every request gets (the body
    defaults to the server's own address, so a client sees which server
    answered). ``tls``: a server-side ``ssl.SSLContext``.
    """

    def __init__(
        self,
        host: str,
        port: int = 0,
        *,
        status: int = 200,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.status = status
        self.headers = list(headers)
        self.body = body if body is not None else host.encode()
        self.tls = tls
        self.requests: list[tuple[str, str, bytes]] = []
        self.counts: dict[str, int] = {"accepted": 0, "handshakes": 0, "tls_failures": 0}
        self._open: dict[Any, Any] = {}
        self._lock = threading.Lock()
        self._server = _Server((host, port), _Handler)
        self._server.backend = self
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    # -- what the handler reports -------------------------------------------

    def count(self, name: str) -> None:
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + 1

    def opened(self, raw: Any, sock: Any) -> None:
        with self._lock:
            self._open[raw] = sock

    def closed(self, raw: Any) -> None:
        with self._lock:
            self._open.pop(raw, None)

    def record(self, method: str, path: str, headers: Any, body: bytes) -> None:
        with self._lock:
            self.requests.append((method, path, body))

    def answer(self, handler: BaseHTTPRequestHandler) -> tuple[int, list[tuple[str, str]], bytes]:
        return self.status, self.headers, self.body

    # -- what tests read ------------------------------------------------------

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._open)

    @property
    def accepted(self) -> int:
        with self._lock:
            return self.counts["accepted"]

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def url(self, name: str | None = None, path: str = "/") -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{name or self.host}:{self.port}{path}"

    def close(self) -> None:
        self._server.shutdown()
        with self._lock:
            socks = list(self._open.values())
        for sock in socks:  # unblock handlers still waiting on a keep-alive
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def same_port(hosts: Sequence[str], **kwargs: Any) -> list[Backend]:
    """One ``Backend`` per host, all on one port (as one URL needs)."""
    for _ in range(50):
        first = Backend(hosts[0], **kwargs)
        backends = [first]
        try:
            for host in hosts[1:]:
                backends.append(Backend(host, first.port, **kwargs))
        except OSError:
            for backend in backends:
                backend.close()
            continue
        return backends
    raise RuntimeError(f"no common free port for {hosts}")


@contextlib.contextmanager
def backends(*hosts: str, **kwargs: Any) -> Iterator[list[Backend]]:
    started = same_port(hosts, **kwargs)
    try:
        yield started
    finally:
        for backend in started:
            backend.close()


class H2Backend:
    """An HTTP/2 server over TLS (ALPN ``h2``) answering 200 to everything,
    built on the ``h2`` state machine with one thread per connection."""

    def __init__(self, host: str, tls: ssl.SSLContext) -> None:
        import h2.config
        import h2.connection

        self._h2_config = h2.config.H2Configuration(client_side=False)
        self._h2_connection = h2.connection.H2Connection
        tls.set_alpn_protocols(["h2"])
        self.tls = tls
        self.host = host
        self.streams = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server((host, 0))
        self._listener.settimeout(0.05)
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def url(self, name: str, path: str = "/") -> str:
        return f"https://{name}:{self.port}{path}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            with self._lock:
                self.connections += 1
                self._threads.append(thread)
                self._socks.append(sock)
            thread.start()

    def _serve(self, raw: socket.socket) -> None:
        import h2.events

        try:
            raw.settimeout(None)
            sock = self.tls.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            return
        with self._lock:  # close() must shut down the socket that owns the fd now
            self._socks[self._socks.index(raw)] = sock
        conn = self._h2_connection(config=self._h2_config)
        conn.initiate_connection()
        try:
            sock.sendall(conn.data_to_send())
            while not self._stop.is_set():
                data = sock.recv(65536)
                if not data:
                    break
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        with self._lock:
                            self.streams += 1
                        body = b"h2 " + self.host.encode()
                        conn.send_headers(
                            event.stream_id,
                            [(":status", "200"), ("content-length", str(len(body)))],
                        )
                        conn.send_data(event.stream_id, body, end_stream=True)
                sock.sendall(conn.data_to_send())
        except OSError:
            pass
        finally:
            sock.close()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join()
        with self._lock:
            socks, threads = list(self._socks), list(self._threads)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join()


class RawServer:
    """A TCP server on ``host:port`` that answers every connection with
    ``reply`` (raw bytes, possibly not HTTP at all), then closes it: with
    ``reply=b""`` it closes without a response, and with ``reset`` it
    resets the connection (RST) once the request arrived. Counts
    connections accepted."""

    def __init__(self, host: str, port: int = 0, *, reply: bytes = b"", reset: bool = False):
        self.host = host
        self.reply = reply
        self.reset = reset
        self.accepted = 0
        self._lock = threading.Lock()
        self._sock = socket.create_server((host, port))
        self._sock.settimeout(0.05)
        self.port = int(self._sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            with self._lock:
                self.accepted += 1
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    conn.recv(65536)
                    if self.reset:
                        import struct

                        conn.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                    elif self.reply:
                        conn.sendall(self.reply)

    def url(self, name: str, path: str = "/") -> str:
        return f"http://{name}:{self.port}{path}"

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BlackHole:
    """A listening port on ``host`` that drops every SYN: ``listen(0)`` with
    its one-place accept queue already full (a connection nobody accepts).
    What a dead pod IP looks like to a client: the connect just hangs."""

    def __init__(self, host: str, port: int = 0) -> None:
        self.host = host
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(0)
        self.port = int(self._sock.getsockname()[1])
        self._filler = socket.create_connection((host, self.port), timeout=1)
        probe = socket.socket()
        probe.settimeout(0.2)
        try:
            probe.connect((host, self.port))
        except TimeoutError:
            pass  # dropped: the hole is there
        else:
            raise RuntimeError("the accept queue did not fill: no black hole here")
        finally:
            probe.close()

    def close(self) -> None:
        self._filler.close()
        self._sock.close()

    def __enter__(self) -> BlackHole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
