"""A sync program using the standard library and requests, with safedns as its resolver.

``safedns.patch()`` replaces ``socket.getaddrinfo`` (and ``gethostbyname``), so
``urllib.request`` and ``requests`` resolve through safedns's cache without any
other change. Here the names live on an embedded DNS server and the "service"
is a local HTTP server, so the example runs anywhere:

    python examples/patch_sync.py
"""

from __future__ import annotations

import http.server
import threading
import urllib.request

import requests

import safedns
from safedns.testing import DNSServer


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello from the downstream\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


def main() -> None:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    with DNSServer() as dns_server:
        dns_server.add("svc.example.com", "A", "127.0.0.1", ttl=60)
        config = safedns.ResolverConfig(
            nameservers=[dns_server.nameserver],
            search=["ns1.svc.cluster.local", "svc.cluster.local", "cluster.local"],
            ndots=5,  # the Kubernetes default: glibc would send 8 queries per lookup
        )
        with safedns.Resolver(config) as resolver:
            safedns.patch(resolver)  # in a real program: safedns.patch() at start-up
            try:
                url = f"http://svc.example.com:{port}/"
                for _ in range(10):
                    with urllib.request.urlopen(url, timeout=5) as response:
                        text = response.read().decode()
                print("urllib.request:", text.strip())
                with requests.Session() as session:
                    for _ in range(10):
                        reply = session.get(url, timeout=5)
                print("requests:", reply.text.strip())
            finally:
                safedns.unpatch()
            stats = resolver.stats()
        print(f"20 requests, {len(dns_server.queries)} DNS queries, {stats.cache_hits} cache hits")
        print("queries:", dns_server.queries)
    httpd.shutdown()
    httpd.server_close()


if __name__ == "__main__":
    main()
