"""Numeric hosts as glibc reads them: ``text_to_binary_address`` (IPv4 in every
``inet_aton`` form, IPv6 with a ``%scope``) and ``__nss_hostname_digits_dots``."""

from __future__ import annotations

import socket
from typing import TypeAlias

from safedns._dropin.constants import (
    AF_INET,
    AF_INET6,
    AF_UNSPEC,
    AI_NUMERICHOST,
    AI_V4MAPPED,
    EAI_ADDRFAMILY,
    EAI_NONAME,
    MAPPED_PREFIX,
)
from safedns._dropin.errors import GaiError
from safedns._inet import inet_aton

__all__ = ["Address", "digits_dots", "numeric_host"]


def _inet6_scope_id(packed: bytes, scope: bytes) -> int | None:
    """glibc's ``__inet6_scopeid_pton``."""
    link = packed[0] == 0xFE and packed[1] & 0xC0 == 0x80
    multicast = packed[0] == 0xFF and packed[1] & 0x0F in (1, 2)
    if link or multicast:
        try:
            index = socket.if_nametoindex(scope.decode("utf-8", "surrogateescape"))
        except (OSError, ValueError, UnicodeError):
            index = 0
        if index:
            return index
    if scope[:1].isdigit():
        if not scope.isdigit():
            return None
        number = int(scope)
        if number <= 0xFFFFFFFF:
            return number
    return None


Address: TypeAlias = "tuple[int, bytes, int]"  # family, packed, scope_id


def numeric_host(name: bytes, family: int, flags: int) -> list[Address] | None:
    """glibc's ``text_to_binary_address``: the address for a numeric host, or None."""
    packed = inet_aton(name)
    if packed is not None:
        if family in (AF_UNSPEC, AF_INET):
            return [(AF_INET, packed, 0)]
        if family == AF_INET6 and flags & AI_V4MAPPED:
            return [(AF_INET6, MAPPED_PREFIX + packed, 0)]
        raise GaiError(EAI_ADDRFAMILY)
    head, pct, scope = name.partition(b"%")
    packed6: bytes | None = None
    if head.isascii():
        try:
            packed6 = socket.inet_pton(socket.AF_INET6, head.decode("ascii"))
        except (OSError, ValueError):
            packed6 = None
    if packed6 is not None:
        if family in (AF_UNSPEC, AF_INET6):
            result: Address = (AF_INET6, packed6, 0)
        elif family == AF_INET and packed6.startswith(MAPPED_PREFIX):
            result = (AF_INET, packed6[12:], 0)
        else:
            raise GaiError(EAI_ADDRFAMILY)
        if pct:
            scope_id = _inet6_scope_id(packed6, scope)
            if scope_id is None:
                raise GaiError(EAI_NONAME)
            if result[0] == AF_INET6:
                result = (AF_INET6, packed6, scope_id)
        return [result]
    if flags & AI_NUMERICHOST:
        raise GaiError(EAI_NONAME)
    return None


def digits_dots(name: bytes) -> tuple[bool, bytes | None]:
    """glibc's ``__nss_hostname_digits_dots`` for ``AF_INET``: (handled, address).

    ``(True, None)`` is HOST_NOT_FOUND without any lookup.
    """
    if not name:
        return False, None
    first = name[0]
    is_digit = 0x30 <= first <= 0x39
    is_xdigit = is_digit or first in b"abcdefABCDEF"
    if not (is_xdigit or first == 0x3A):
        return False, None
    if is_digit and all(c in b"0123456789." for c in name) and not name.endswith(b"."):
        return True, inet_aton(name)
    if (is_xdigit and b":" in name) or first == 0x3A:
        return True, None
    return False, None
