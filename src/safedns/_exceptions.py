"""The exceptions safedns raises.

::

    ValueError
     ├── InvalidName           the caller asked for a name DNS cannot carry
     └── (config errors are plain ValueError naming the field)
    ResolveError               the name could not be resolved
     ├── NameNotFound          NXDOMAIN, or no data for every candidate name
     └── TemporaryFailure      timeouts, SERVFAIL, REFUSED, network errors,
                               an exhausted query budget (after ``budget_wait``),
                               a CNAME loop or a chain over 16 hops (what a
                               recursive resolver reports as SERVFAIL)

Errors from dnspython and from sockets are mapped to ``UpstreamFailure`` once,
at the edge (``_upstream``, ``_records``); ``_core`` raises the public error
``from`` that failure, so ``__cause__`` tells what upstream did.
"""

from __future__ import annotations

__all__ = ["InvalidName", "NameNotFound", "ResolveError", "TemporaryFailure"]


class InvalidName(ValueError):
    """A name that DNS cannot carry: empty label, label over 63 octets, name
    over 253 octets, or characters that cannot be encoded."""

    def __init__(self, name: object, reason: str) -> None:
        super().__init__(f"invalid name {name!r}: {reason}")
        self.name = name
        self.reason = reason


class ResolveError(Exception):
    """A lookup failed. ``name`` is the name asked for, ``rdtype`` the type."""

    def __init__(self, name: str, rdtype: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.rdtype = rdtype


class NameNotFound(ResolveError):
    """The name does not exist (NXDOMAIN), or no candidate name has data of
    the type asked for (NODATA)."""

    def __init__(
        self, name: str, rdtype: str, *, nxdomain: bool = True, canonical_name: str | None = None
    ) -> None:
        what = "does not exist" if nxdomain else f"has no {rdtype} records"
        super().__init__(name, rdtype, f"{name} {what}")
        #: True when every candidate was NXDOMAIN; False when some name existed
        #: but had no data of this type (glibc's EAI_NODATA vs EAI_NONAME).
        self.nxdomain = nxdomain
        #: Where the CNAME chain of the first candidate that had one ended (that
        #: name has no data of this type, or does not exist); None when no
        #: candidate was an alias.
        self.canonical_name = canonical_name


class TemporaryFailure(ResolveError):
    """Upstream could not give an answer now: timeout, SERVFAIL, REFUSED,
    a network error, the query budget is spent, or the reply's CNAME chain
    loops (or is over 16 hops long). Trying later may work. Never a
    ``NameNotFound``: nothing said the name does not exist."""

    def __init__(self, name: str, rdtype: str, reason: str) -> None:
        super().__init__(name, rdtype, f"temporary failure resolving {name} {rdtype}: {reason}")
        self.reason = reason
