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
- ``trip``: one request through a thread-driven transport (urllib3,
  requests): its addresses (resolved at most once), its RFC 8305 dial, the
  background refresh before it, and its retry loop (``Trip.send``).
- ``stats``: what every adapter counts (``TransportStats``, ``TransportCounters``).
"""
