"""The drop-in ``getaddrinfo``, ``gethostbyname`` and ``gethostbyname_ex``.

The implementation lives in :mod:`safedns._dropin`, one module per concern; this module
keeps the names other modules (and users of ``AddrInfo``) import.
"""

from __future__ import annotations

from safedns._dropin.addrinfo import (
    AddrInfo,
    default_addrinfo,
    getaddrinfo,
    gethostbyname,
    gethostbyname_ex,
    set_default,
)
from safedns._dropin.constants import AddrInfoTuple

__all__ = [
    "AddrInfo",
    "AddrInfoTuple",
    "default_addrinfo",
    "getaddrinfo",
    "gethostbyname",
    "gethostbyname_ex",
    "set_default",
]
