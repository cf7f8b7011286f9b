"""httpx transports that resolve through safedns (``pip install 'safedns[httpx]'``).

>>> import httpx, safedns                                   # doctest: +SKIP
>>> from safedns.httpx import SafeTransport
>>> transport = SafeTransport(resolver=safedns.Resolver(), retry=safedns.RetryPolicy())
>>> with httpx.Client(transport=transport) as client:
...     client.get("https://api.example.com/")

- Hostnames resolve through the safedns cache (serve-stale, single flight,
  query budget); TLS SNI and certificate checks stay on the hostname.
- A host's addresses are tried in turn (IPv6/IPv4 interleaved): one dead
  backend does not fail the request.
- A keep-alive connection is reused while its address is still in the host's
  DNS answer, and closed at its next checkout once it left.
- Retries follow a ``safedns.RetryPolicy`` within a ``safedns.RetryBudget``.
"""

from __future__ import annotations

try:
    import httpcore as _httpcore  # noqa: F401
    import httpx as _httpx  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"safedns.httpx needs httpx: pip install 'safedns[httpx]' ({exc})") from exc

from safedns.httpx._async import AsyncSafeBackend, AsyncSafeTransport
from safedns.httpx._common import TransportStats
from safedns.httpx._sync import SafeBackend, SafeTransport

__all__ = [
    "AsyncSafeBackend",
    "AsyncSafeTransport",
    "SafeBackend",
    "SafeTransport",
    "TransportStats",
]

for _name in __all__:
    globals()[_name].__module__ = "safedns.httpx"
del _name
