"""gunicorn configuration: every worker resolves through safedns.

    cd examples && gunicorn -c gunicorn.conf.py wsgi_app:app
    curl 'http://127.0.0.1:8000/?name=svc.example.com'   # <pid> True 192.0.2.44

A pre-fork server copies the master into each worker. safedns resets its
sockets, locks and in-flight queries in a forked child, so patching in the
master (``preload_app = True`` and ``safedns.patch()`` at import) also works;
patching in ``post_fork`` is the simplest to reason about: each worker gets
its own resolver, cache and query budget, configured from resolv.conf and the
``SAFEDNS_*`` variables. The budget is per process: with 4 workers a pod may
send up to 4 x ``upstream_qps`` queries per second.

So that the example runs on loopback, without the host's DNS: when
``SAFEDNS_NAMESERVERS`` is not set, the master starts an embedded DNS server
on 127.0.0.1 that knows ``svc.example.com`` and points the workers at it
(``on_starting``). In a real deployment leave ``on_starting`` and
``on_exit`` out: the workers then read resolv.conf.
"""

from __future__ import annotations

import os
from typing import Any

import safedns
from safedns.testing import DNSServer

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
accesslog = None
_embedded: list[DNSServer] = []


def on_starting(server: Any) -> None:
    if os.environ.get("SAFEDNS_NAMESERVERS"):
        return
    dns = DNSServer()
    dns.add("svc.example.com", "A", "192.0.2.44", ttl=300)
    _embedded.append(dns)
    os.environ["SAFEDNS_NAMESERVERS"] = dns.nameserver  # the workers inherit it
    server.log.info("example names served by an embedded DNS server on %s", dns.nameserver)


def post_fork(server: Any, worker: Any) -> None:
    safedns.patch()
    server.log.info("worker %s: socket.getaddrinfo resolves through safedns", worker.pid)


def worker_exit(server: Any, worker: Any) -> None:
    safedns.unpatch()


def on_exit(server: Any) -> None:
    for dns in _embedded:
        dns.close()
