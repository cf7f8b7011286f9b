"""gunicorn configuration: every worker resolves through safedns.

    gunicorn -c examples/gunicorn.conf.py examples.wsgi_app:app

A pre-fork server copies the master into each worker. safedns resets its
sockets, locks and in-flight queries in a forked child, so patching in the
master (``preload_app = True`` and ``safedns.patch()`` at import) also works;
patching in ``post_fork`` is the simplest to reason about: each worker gets
its own resolver, cache and query budget, configured from resolv.conf and the
``SAFEDNS_*`` variables. The budget is per process: with 4 workers a pod may
send up to 4 x ``upstream_qps`` queries per second.
"""

from __future__ import annotations

import os
from typing import Any

import safedns

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
accesslog = None


def post_fork(server: Any, worker: Any) -> None:
    safedns.patch()
    server.log.info("worker %s: socket.getaddrinfo resolves through safedns", worker.pid)


def worker_exit(server: Any, worker: Any) -> None:
    safedns.unpatch()
