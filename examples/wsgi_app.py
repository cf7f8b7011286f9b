"""A WSGI application that looks a name up on each request (for gunicorn.conf.py).

GET /?name=svc.example.com answers ``<pid> <patched> <addresses>``. It is not a
script: gunicorn runs it (see gunicorn.conf.py and examples/README.md).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

import safedns


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    name = parse_qs(environ.get("QUERY_STRING", "")).get("name", ["localhost"])[0]
    try:
        infos = socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)
        addresses = sorted({info[4][0] for info in infos})
        status, body = "200 OK", f"{os.getpid()} {safedns.is_patched()} {' '.join(addresses)}"
    except OSError as exc:
        status, body = "502 Bad Gateway", f"{os.getpid()} {safedns.is_patched()} error: {exc}"
    data = body.encode() + b"\n"
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]
