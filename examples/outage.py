"""Keep answering while DNS is down: serve-stale (RFC 8767).

Run: python examples/outage.py
"""

from __future__ import annotations

import time

import safedns
from safedns.testing import DNSServer

with DNSServer() as server:
    server.add("api.example.com", "A", "192.0.2.10", ttl=1)
    resolver = safedns.Resolver(
        safedns.ResolverConfig(nameservers=[server.nameserver], timeout=0.5)
    )
    print("healthy:", resolver.resolve("api.example.com"))
    time.sleep(1.1)
    server.stop()  # the cluster DNS is gone
    for _ in range(3):
        print("outage: ", resolver.resolve("api.example.com"))
    print(resolver.stats())
    resolver.close()
