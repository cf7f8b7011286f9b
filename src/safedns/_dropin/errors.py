"""Errors as CPython raises them from glibc's results: ``socket.gaierror`` with
``gai_strerror``'s text, ``socket.herror`` with ``hstrerror``'s, and the thread's
``h_errno`` where glibc leaves it alone.

The C library is asked for the messages (through ctypes, loaded on first use), so they
match the process's locale and glibc version; the tables below are the fallback.
"""

from __future__ import annotations

import errno as _errno
import functools
import os
import socket
from typing import TYPE_CHECKING, Final

from safedns._dropin.constants import (
    EAI_ADDRFAMILY,
    EAI_AGAIN,
    EAI_BADFLAGS,
    EAI_FAIL,
    EAI_FAMILY,
    EAI_IDN_ENCODE,
    EAI_MEMORY,
    EAI_NODATA,
    EAI_NONAME,
    EAI_SERVICE,
    EAI_SOCKTYPE,
    EAI_SYSTEM,
    HOST_NOT_FOUND,
    NETDB_INTERNAL,
    NO_DATA,
    NO_RECOVERY,
    TRY_AGAIN,
)

if TYPE_CHECKING:
    import ctypes

__all__ = ["GaiError", "gai_error", "host_error", "libc", "thread_h_errno"]

_GAI_MESSAGES: Final = {
    EAI_BADFLAGS: "Bad value for ai_flags",
    EAI_NONAME: "Name or service not known",
    EAI_AGAIN: "Temporary failure in name resolution",
    EAI_FAIL: "Non-recoverable failure in name resolution",
    EAI_NODATA: "No address associated with hostname",
    EAI_FAMILY: "ai_family not supported",
    EAI_SOCKTYPE: "ai_socktype not supported",
    EAI_SERVICE: "Servname not supported for ai_socktype",
    EAI_ADDRFAMILY: "Address family for hostname not supported",
    EAI_MEMORY: "Memory allocation failure",
    EAI_SYSTEM: "System error",
    EAI_IDN_ENCODE: "Parameter string not correctly encoded",
}

_H_MESSAGES: Final = {
    NETDB_INTERNAL: "Resolver internal error",
    0: "Resolver Error 0 (no error)",
    HOST_NOT_FOUND: "Unknown host",
    TRY_AGAIN: "Host name lookup failure",
    NO_RECOVERY: "Unknown server error",
    NO_DATA: "No address associated with name",
}


class GaiError(Exception):
    """An EAI_* result inside the emulation; turned into ``socket.gaierror``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


# --------------------------------------------------------------------------- libc helpers


@functools.cache
def libc() -> ctypes.CDLL | None:
    import ctypes  # only for error messages: keep ``import safedns`` light

    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - ctypes cannot open the process
        return None


def _c_message(function: str, code: int, fallback: dict[int, str]) -> str:
    lib = libc()
    if lib is not None:
        import ctypes

        fn = getattr(lib, function, None)
        if fn is not None:
            fn.restype = ctypes.c_char_p
            fn.argtypes = [ctypes.c_int]
            raw = fn(code)
            if raw:
                return bytes(raw).decode("utf-8", "replace")
    return fallback.get(code, f"Unknown error {code}")


def gai_error(code: int) -> OSError:
    """The exception CPython raises for getaddrinfo's result ``code``."""
    if code == EAI_SYSTEM:
        return OSError(_errno.ENOENT, os.strerror(_errno.ENOENT))
    return socket.gaierror(code, _c_message("gai_strerror", code, _GAI_MESSAGES))


def host_error(h_errno: int) -> OSError:
    """The ``socket.herror`` CPython raises for ``h_errno``."""
    return socket.herror(h_errno, _c_message("hstrerror", h_errno, _H_MESSAGES))


def thread_h_errno() -> int:
    """The calling thread's C ``h_errno`` (glibc's ``__h_errno_location``), 0 if unknown.

    CPython's ``gethostbyname_ex`` raises ``herror(h_errno)`` with the thread's value,
    which glibc leaves alone for names nss_dns refuses to look up."""
    lib = libc()
    location = getattr(lib, "__h_errno_location", None) if lib is not None else None
    if location is None:
        return 0
    import ctypes

    location.restype = ctypes.POINTER(ctypes.c_int)
    location.argtypes = []
    return int(location().contents.value)
