"""Numeric IPv4 text as glibc reads it, shared by the resolv.conf parser and the drop-in.

Pure functions, no sockets: ``inet_aton_exact`` is glibc's ``__inet_aton_exact`` on text
(``127.1``, ``0x7f.1``, ``2130706433``), ``inet_aton`` the same on the bytes a C caller
passes, packed.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Final

__all__ = ["inet_aton", "inet_aton_exact", "strtoul0"]

_DIGITS: Final = "0123456789"
_OCTAL_DIGITS: Final = "01234567"
_HEX_DIGITS: Final = "0123456789abcdefABCDEF"
_ATON_CHARS: Final = frozenset(b"0123456789abcdefABCDEFxX.")


def strtoul0(text: str, pos: int) -> tuple[int, int]:
    """``strtoul(text + pos, &end, 0)`` where ``text[pos]`` is a digit: (value, end)."""
    if text.startswith(("0x", "0X"), pos) and pos + 2 < len(text) and text[pos + 2] in _HEX_DIGITS:
        digits, base, start = _HEX_DIGITS, 16, pos + 2
    elif text[pos] == "0":
        digits, base, start = _OCTAL_DIGITS, 8, pos
    else:
        digits, base, start = _DIGITS, 10, pos
    end = start
    while end < len(text) and text[end] in digits:
        end += 1
    return int(text[start:end], base), end


def inet_aton_exact(text: str) -> str | None:
    """glibc ``__inet_aton_exact``: dotted IPv4 in any legacy form, whole string.

    Accepts ``a.b.c.d``, ``a.b.c``, ``a.b`` and ``a``, each part decimal, octal
    (leading ``0``) or hex (``0x``); returns the dotted-quad form or None.
    """
    limits = (0xFFFFFFFF, 0xFFFFFF, 0xFFFF, 0xFF)
    parts: list[int] = []
    pos = 0
    while True:
        if pos >= len(text) or text[pos] not in _DIGITS:
            return None
        value, pos = strtoul0(text, pos)
        if value > 0xFFFFFFFF:
            return None
        if pos < len(text) and text[pos] == ".":
            if len(parts) > 2 or value > 0xFF:
                return None
            parts.append(value)
            pos += 1
        else:
            break
    if pos != len(text) or value > limits[len(parts)]:
        return None
    for index, part in enumerate(parts):
        value |= part << (24 - 8 * index)
    return str(ipaddress.IPv4Address(value))


def inet_aton(name: bytes) -> bytes | None:
    """glibc's ``__inet_aton_exact`` on bytes: a dotted-quad or legacy (``127.1``,
    ``0x7f.1``, ``2130706433``) IPv4 address, packed; None if ``name`` is not one."""
    if not name or not _ATON_CHARS.issuperset(name):
        return None
    try:
        return socket.inet_pton(socket.AF_INET, name.decode("ascii"))  # the common form
    except OSError:
        pass
    text = inet_aton_exact(name.decode("ascii"))
    return socket.inet_aton(text) if text is not None else None
