"""urllib3 2.x over safedns (``pip install 'safedns[urllib3]'``).

>>> import safedns                                          # doctest: +SKIP
>>> from safedns.urllib3 import SafePoolManager
>>> with SafePoolManager(retry=safedns.RetryPolicy()) as http:
...     http.request("GET", "https://api.example.com/")

- Hostnames resolve through the safedns cache (serve-stale, single flight,
  query budget); TLS SNI and the certificate check stay on the hostname.
- A new connection races the host's addresses as RFC 8305 says (the next one
  250 ms after the first if it has not connected), spread across them, the
  ones that failed lately tried last.
- A pooled connection is reused while its address is in the host's DNS
  answer; DNS is refreshed in the background, never on the request's path.
- With ``retry=``, retries follow a ``safedns.RetryPolicy`` within a
  ``safedns.RetryBudget``, each to another address when there is one.
- ``SafeProxyManager``: the same through a proxy, whose name resolves
  through safedns.
"""

from __future__ import annotations

try:
    import urllib3 as _urllib3
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        f"safedns.urllib3 needs urllib3 2.x: pip install 'safedns[urllib3]' ({exc})"
    ) from exc

if not hasattr(_urllib3, "BaseHTTPResponse"):  # pragma: no cover - urllib3 1.x
    raise ImportError("safedns.urllib3 needs urllib3 2.x: pip install 'safedns[urllib3]'")

from safedns._http.stats import TransportStats
from safedns.urllib3._connection import SafeHTTPConnection, SafeHTTPSConnection, TransportState
from safedns.urllib3._pool import (
    SafeHTTPConnectionPool,
    SafeHTTPSConnectionPool,
    SafePoolManager,
    SafeProxyManager,
)

__all__ = [
    "SafeHTTPConnection",
    "SafeHTTPConnectionPool",
    "SafeHTTPSConnection",
    "SafeHTTPSConnectionPool",
    "SafePoolManager",
    "SafeProxyManager",
    "TransportState",
    "TransportStats",
]

for _name in __all__:
    if _name != "TransportStats":  # safedns.httpx's, shared
        globals()[_name].__module__ = "safedns.urllib3"
del _name
