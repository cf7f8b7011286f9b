"""Many concurrent asyncio lookups of one cold name share one query.

Run: python examples/async_resolve.py
"""

from __future__ import annotations

import asyncio

import safedns
from safedns.testing import DNSServer


async def main(server: DNSServer) -> None:
    config = safedns.ResolverConfig(nameservers=[server.nameserver])
    async with safedns.AsyncResolver(config) as resolver:
        results = await asyncio.gather(
            *(resolver.resolve_addresses("api.example.com") for _ in range(1000))
        )
        print(results[0], "x", len(results))
        print(resolver.stats())


if __name__ == "__main__":
    with DNSServer() as dns_server:
        dns_server.add("api.example.com", "A", "192.0.2.10")
        dns_server.add("api.example.com", "AAAA", "2001:db8::10")
        dns_server.delay = 0.1
        asyncio.run(main(dns_server))
        print("queries the server saw:", dns_server.queries)
