"""IDNA as glibc does it for ``AI_IDN`` and ``AI_CANONIDN``: libidn2 through ctypes,
loaded on first use (``import safedns`` stays light)."""

from __future__ import annotations

import locale
from typing import TYPE_CHECKING

from safedns._dropin.constants import EAI_IDN_ENCODE, EAI_MEMORY, EAI_SYSTEM
from safedns._dropin.errors import GaiError

if TYPE_CHECKING:
    import ctypes

__all__ = ["idn2_call", "idna_to_dns"]

_idn2: ctypes.CDLL | bool | None = False


def _libidn2() -> ctypes.CDLL | None:
    import ctypes
    import ctypes.util

    global _idn2
    if _idn2 is False:
        lib: ctypes.CDLL | None = None
        for candidate in ("libidn2.so.0", ctypes.util.find_library("idn2")):
            if not candidate:
                continue
            try:
                lib = ctypes.CDLL(candidate)
            except OSError:
                continue
            for fn_name in ("idn2_lookup_ul", "idn2_to_unicode_lzlz"):
                fn = getattr(lib, fn_name)
                fn.restype = ctypes.c_int
                fn.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_int]
            lib.idn2_free.argtypes = [ctypes.c_void_p]
            lib.idn2_free.restype = None
            break
        _idn2 = lib
    return _idn2 if isinstance(_idn2, ctypes.CDLL) else None


def idn2_call(function: str, name: bytes) -> tuple[int, bytes | None]:
    import ctypes

    lib = _libidn2()
    if lib is None:
        return EAI_SYSTEM, None
    out = ctypes.c_void_p()
    rc = getattr(lib, function)(name, ctypes.byref(out), 0)
    if rc != 0:
        return (EAI_MEMORY if rc == -100 else EAI_IDN_ENCODE), None
    try:
        return 0, ctypes.string_at(out.value) if out.value else b""
    finally:
        lib.idn2_free(out)


def idna_to_dns(name: bytes) -> bytes:
    """glibc's ``__idna_to_dns_encoding`` (AI_IDN)."""
    if name.isascii():
        return name
    try:
        text = name.decode(locale.nl_langinfo(locale.CODESET) or "ascii")
    except (UnicodeDecodeError, LookupError):
        raise GaiError(EAI_IDN_ENCODE) from None
    if "\\" in text:
        raise GaiError(EAI_IDN_ENCODE)
    rc, out = idn2_call("idn2_lookup_ul", name)
    if rc != 0 or out is None:
        raise GaiError(rc)
    return out
