"""What reaches the nameserver, and what a lookup makes of it (issue 16): a
negative never erases a positive, a socket per query, glibc's
``single-request``, ``use-vc`` and ``no-aaaa``, and a budget that bounds
every datagram sent."""

from __future__ import annotations

import dns.rcode

from safedns import Resolver
from safedns.testing import DNSServer
from tests.conftest import k8s_config


def test_an_aaaa_nxdomain_never_erases_the_a_of_the_same_name(server: DNSServer) -> None:
    # A broken middlebox: NXDOMAIN for AAAA, while the name has an A.
    server.craft("api.example.com", "AAAA", [], rcode=dns.rcode.NXDOMAIN)
    resolver = Resolver(k8s_config(server))
    assert resolver.resolve_addresses("api.example.com") == ["192.0.2.10"]
    answer = resolver.resolve("api.example.com", "A")
    assert answer.addresses == ["192.0.2.10"] and answer.from_cache
    assert sorted(server.queries) == [("api.example.com.", "A"), ("api.example.com.", "AAAA")]
