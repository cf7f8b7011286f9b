"""Resolve names through safedns against an embedded DNS server.

Run: python examples/basic.py
"""

from __future__ import annotations

import safedns
from safedns.testing import DNSServer


def main() -> None:
    with DNSServer() as server:
        server.add("api.example.com", "A", "192.0.2.10", ttl=60)
        server.add("my-svc.ns1.svc.cluster.local", "A", "10.0.0.5", ttl=30)
        config = safedns.ResolverConfig(
            nameservers=[server.nameserver],
            search=["ns1.svc.cluster.local", "svc.cluster.local", "cluster.local"],
            ndots=5,
        )
        with safedns.Resolver(config) as resolver:
            for _ in range(1000):
                answer = resolver.resolve("api.example.com")
            print(answer)
            print(resolver.resolve("my-svc"))
            try:
                resolver.resolve("nope.example.com")
            except safedns.NameNotFound as exc:
                print("not found:", exc)
            print(resolver.stats())
            print("queries the server saw:", server.queries)


if __name__ == "__main__":
    main()
