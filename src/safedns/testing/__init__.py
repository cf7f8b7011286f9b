"""Helpers for testing code that resolves names.

- ``DNSServer``: an embedded DNS server (UDP + TCP on loopback) with faults.
- ``Dnsmasq``: a real dnsmasq on a loopback port, queries counted from its log.
- ``GlibcNamespace``: real glibc ``getaddrinfo`` in a network namespace whose
  resolv.conf points at a dnsmasq inside it (needs root).
"""

from __future__ import annotations

from safedns.testing._dnsmasq import DNSMASQ, Dnsmasq, dnsmasq_available
from safedns.testing._netns import GlibcNamespace, netns_available
from safedns.testing._server import DNSServer

__all__ = [
    "DNSMASQ",
    "DNSServer",
    "Dnsmasq",
    "GlibcNamespace",
    "dnsmasq_available",
    "netns_available",
]
