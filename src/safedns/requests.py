"""A requests ``HTTPAdapter`` over safedns (``pip install 'safedns[requests]'``).

>>> import requests, safedns                                # doctest: +SKIP
>>> from safedns.requests import SafeAdapter
>>> session = requests.Session()
>>> adapter = SafeAdapter(retry=safedns.RetryPolicy())
>>> session.mount("https://", adapter)
>>> session.mount("http://", adapter)
>>> session.get("https://api.example.com/")

The adapter's pools are ``safedns.urllib3``'s: hostnames resolve through the
safedns cache, connections race a host's addresses (RFC 8305), follow DNS
changes without waiting on DNS, and retries go elsewhere within a budget.
``verify``, ``cert``, ``proxies``, ``timeout`` and ``stream`` mean what they
mean in requests.
"""

from __future__ import annotations

from typing import Any

try:
    from requests.adapters import DEFAULT_POOLBLOCK, DEFAULT_POOLSIZE, HTTPAdapter
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        f"safedns.requests needs requests: pip install 'safedns[requests]' ({exc})"
    ) from exc

from safedns._http.retry import RetryBudget, RetryPolicy
from safedns._http.stats import TransportStats
from safedns._resolver import Resolver
from safedns.urllib3 import SafePoolManager, SafeProxyManager, TransportState

__all__ = ["SafeAdapter"]


class SafeAdapter(HTTPAdapter):
    """A requests ``HTTPAdapter`` whose connections resolve through safedns.

    ``session.mount("https://", SafeAdapter(resolver=..., retry=...))``.

    - ``resolver``: a ``safedns.Resolver`` (default: one from the system
      configuration, closed by ``close()``, as ``Session.close()`` does).
    - ``retry``: a ``safedns.RetryPolicy``: a request's attempts follow it
      under ``retry_budget`` (default ``RetryBudget()``), each retry to
      another address when the host has one; ``max_retries`` then counts
      for nothing but redirects. None (default): ``max_retries`` as in
      requests (0: no retry).
    - ``happy_eyeballs_delay``: RFC 8305's Connection Attempt Delay (0.25 s).
    - ``max_connection_age``: seconds after which a pooled connection is not
      reused (default None: as long as its address is in DNS).
    - Every other argument is ``HTTPAdapter``'s (``pool_connections``,
      ``pool_maxsize``, ``max_retries``, ``pool_block``), with its meaning.

    The direct pools and those of every HTTP(S) proxy share one
    ``safedns.urllib3.TransportState``: one address book, one budget, one
    ``stats()``. A proxy's hostname resolves through safedns; SOCKS proxies
    are requests' own (PySocks resolves their names).
    """

    def __init__(
        self,
        resolver: Resolver | None = None,
        *,
        retry: RetryPolicy | None = None,
        retry_budget: RetryBudget | None = None,
        happy_eyeballs_delay: float = 0.25,
        max_connection_age: float | None = None,
        pool_connections: int = DEFAULT_POOLSIZE,
        pool_maxsize: int = DEFAULT_POOLSIZE,
        max_retries: Any = 0,
        pool_block: bool = DEFAULT_POOLBLOCK,
    ) -> None:
        self.safedns = TransportState(
            resolver,
            retry=retry,
            retry_budget=retry_budget,
            happy_eyeballs_delay=happy_eyeballs_delay,
            max_connection_age=max_connection_age,
        )
        super().__init__(pool_connections, pool_maxsize, max_retries, pool_block)

    def _state(self) -> TransportState:
        state: TransportState | None = getattr(self, "safedns", None)
        if state is None:  # unpickled: requests keeps only its own attributes
            state = self.safedns = TransportState()
        return state

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = DEFAULT_POOLBLOCK, **pool_kwargs: Any
    ) -> None:
        """As requests does, with a ``SafePoolManager``."""
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.safedns_pool_args: dict[str, Any] = {
            "num_pools": connections,
            "maxsize": maxsize,
            "block": block,
        }
        self.poolmanager = SafePoolManager(
            safedns=self._state(), **self.safedns_pool_args, **pool_kwargs
        )

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """As requests does, with a ``SafeProxyManager`` for HTTP(S) proxies."""
        if proxy in self.proxy_manager or proxy.lower().startswith("socks"):
            return super().proxy_manager_for(proxy, **proxy_kwargs)
        manager = SafeProxyManager(
            proxy,
            safedns=self._state(),
            proxy_headers=self.proxy_headers(proxy),
            **self.safedns_pool_args,
            **proxy_kwargs,
        )
        self.proxy_manager[proxy] = manager
        return manager

    def stats(self) -> TransportStats:
        """Requests, attempts, retries, retries denied, connections opened and
        retired, over the direct and the proxied pools."""
        return self._state().stats()

    def close(self) -> None:
        """As requests does (every pool closed), and the resolver closed if
        the adapter made it (it still answers: the session stays usable)."""
        super().close()
        self._state().close()
