"""The HTTP core: every decision safedns's HTTP adapters make, with no HTTP
client imported and no socket touched (sans-I/O, as h11 is). Time comes in as
``now``; the adapters do the I/O.

- ``retry``: ``RetryPolicy``, ``RetryBudget``, ``RetryRun`` (one request's
  attempts) and ``parse_retry_after``.
- ``follow``: each host's last DNS answer as a transport holds it
  (``AddressBook``: fresh, stale-but-dialable, or unknown) and when a pooled
  connection must retire (``ConnectionWatch``).
- ``dial``: which address to dial, and when: the RFC 8305 schedule
  (``Attempts``), spreading new connections across a host's addresses, the
  memory of addresses that failed (``FailedAddresses``), one request's route
  across its retries (``Route``), all held per transport by ``Hosts``.
- ``connect``: the two drivers of that schedule, the only I/O here, shared by
  every adapter: ``connect_sync`` (non-blocking sockets and ``selectors``) and
  ``connect_async`` (one asyncio task per attempt).
- ``stats``: what an adapter counts for its ``stats()`` (``TransportStats``,
  ``TransportCounters``).
"""
