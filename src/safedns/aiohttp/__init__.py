"""aiohttp over safedns (``pip install 'safedns[aiohttp]'``, aiohttp >= 3.12).

>>> import aiohttp, safedns                                 # doctest: +SKIP
>>> from safedns.aiohttp import RetryMiddleware, SafeConnector
>>> async with aiohttp.ClientSession(
...     connector=SafeConnector(),
...     middlewares=(RetryMiddleware(retry=safedns.RetryPolicy()),),
... ) as session:
...     await session.get("https://api.example.com/")

- ``SafeConnector``: an ``aiohttp.TCPConnector`` whose hosts resolve through
  a safedns ``AsyncResolver``; a pooled connection whose address left DNS
  (or older than ``max_connection_age``) is closed instead of reused;
  aiohttp's own Happy Eyeballs over the host's addresses, spread across
  them, those that failed lately last; DNS refreshed in the background.
- ``RetryMiddleware``: retries under a ``safedns.RetryPolicy`` and a
  ``safedns.RetryBudget``; with a ``SafeConnector``, to another address.
- ``Resolver``: only the lookups, for a plain ``aiohttp.TCPConnector``.
"""

from __future__ import annotations

try:
    import aiohttp as _aiohttp  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "safedns.aiohttp needs aiohttp; install it with: pip install 'safedns[aiohttp]'"
    ) from exc

from safedns.aiohttp._connector import SafeConnector
from safedns.aiohttp._resolver import Resolver
from safedns.aiohttp._retry import RetryMiddleware

__all__ = ["Resolver", "RetryMiddleware", "SafeConnector"]

for _name in __all__:
    globals()[_name].__module__ = "safedns.aiohttp"
del _name
