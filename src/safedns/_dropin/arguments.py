"""CPython's argument handling for ``getaddrinfo``/``gethostbyname`` and glibc's
service step, on plain values (no lookups but ``/etc/services``).

``c_int``, ``host_arg``, ``port_arg`` and ``hostname_arg`` turn Python arguments into
what ``socketmodule.c`` passes to C, with its exceptions; ``strtoul`` is C's;
``servtuples`` is glibc's ``get_servtuples``: the (socktype, protocol, port) triples a
service gives for each address.
"""

from __future__ import annotations

import _socket
import functools
import operator
import os
import socket
import struct
import threading
from dataclasses import dataclass
from typing import Final, TypeAlias

from safedns._cache import bounded_put
from safedns._dropin.constants import (
    AI_NUMERICHOST,
    AI_NUMERICSERV,
    EAI_SERVICE,
    EAI_SOCKTYPE,
)
from safedns._dropin.errors import GaiError

__all__ = [
    "ServTuple",
    "c_int",
    "host_arg",
    "hostname_arg",
    "port_arg",
    "servtuples",
    "strtoul",
    "to_c_int",
]

_C_LONG_BITS: Final = struct.calcsize("l") * 8
_LONG_MIN: Final = -(1 << (_C_LONG_BITS - 1))
_LONG_MAX: Final = (1 << (_C_LONG_BITS - 1)) - 1
_ULONG_MAX: Final = (1 << _C_LONG_BITS) - 1
_INT_MIN: Final = -(1 << 31)
_INT_MAX: Final = (1 << 31) - 1


def c_int(value: object) -> int:
    """PyArg_Parse ``"i"``: ``__index__``, then the C int range."""
    number = operator.index(value)  # type: ignore[arg-type]
    if not _LONG_MIN <= number <= _LONG_MAX:
        raise OverflowError("Python int too large to convert to C long")
    if number > _INT_MAX:
        raise OverflowError("signed integer is greater than maximum")
    if number < _INT_MIN:
        raise OverflowError("signed integer is less than minimum")
    return int(number)


def _c_string(data: bytes) -> bytes:
    nul = data.find(b"\0")
    return data if nul < 0 else data[:nul]


def host_arg(host: object) -> bytes | None:
    if host is None:
        return None
    if isinstance(host, str):
        return _c_string(str.encode(host, "idna"))
    if isinstance(host, bytes):
        return _c_string(bytes(host))
    raise TypeError("getaddrinfo() argument 1 must be string or None")


def port_arg(port: object) -> bytes | None:
    if type(port) is int:
        if not _LONG_MIN <= port <= _LONG_MAX and not port_int_as_text():
            raise OverflowError("Python int too large to convert to C long")
        return b"%d" % port
    if isinstance(port, str):
        data = str.encode(port, "utf-8")
        if b"\0" in data and port_nul_raises():
            raise ValueError("embedded null character")
        return _c_string(data)
    if isinstance(port, bytes):
        return _c_string(bytes(port))
    if port is None:
        return None
    raise OSError("Int or String expected")


@functools.cache
def port_int_as_text() -> bool:
    """Whether this CPython passes an int port as its decimal text, whatever its size
    (3.12+: ``2**63`` is the service ``"9223372036854775808"``), rather than through a C
    ``long`` (3.11 and older: OverflowError). Asked of the C function itself, with
    numeric arguments only."""
    try:
        _socket.getaddrinfo("127.0.0.1", 1 << 64, 0, 0, 0, AI_NUMERICHOST | AI_NUMERICSERV)
    except OverflowError:
        return False
    except OSError:
        return True
    return True


@functools.cache
def port_nul_raises() -> bool:
    """Whether this CPython rejects a str port with a NUL (its C API changed over versions);
    asked of the C function itself, with numeric arguments only."""
    try:
        _socket.getaddrinfo("127.0.0.1", "1\0", 0, 0, 0, AI_NUMERICHOST | AI_NUMERICSERV)
    except ValueError:
        return True
    except OSError:
        return False
    return False


def hostname_arg(hostname: object, function: str) -> bytes:
    """PyArg_Parse ``"et"`` with the ``idna`` encoding (gethostbyname's argument)."""
    if isinstance(hostname, str):
        data = str.encode(hostname, "idna")
        kind = "str"
    elif isinstance(hostname, (bytes, bytearray)):
        data = bytes(hostname)
        kind = type(hostname).__name__
    else:
        raise TypeError(
            f"{function}() argument 1 must be str, bytes or bytearray, "
            f"not {'None' if hostname is None else type(hostname).__name__}"
        )
    if b"\0" in data:
        raise TypeError(
            f"{function}() argument 1 must be encoded string without null bytes, not {kind}"
        )
    return data


def strtoul(text: bytes) -> tuple[int, int]:
    """C ``strtoul(text, &end, 10)``: (value, index of end)."""
    i, n = 0, len(text)
    while i < n and text[i] in b" \t\n\v\f\r":
        i += 1
    negative = False
    if i < n and text[i] in b"+-":
        negative = text[i] == 0x2D
        i += 1
    start = i
    while i < n and 0x30 <= text[i] <= 0x39:
        i += 1
    if i == start:
        return 0, 0
    value = int(text[start:i])
    if value > _ULONG_MAX:
        value = _ULONG_MAX
    elif negative:
        value = -value & _ULONG_MAX
    return value, i


def to_c_int(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= (1 << 31) else value


# --------------------------------------------------------------------------- services

_SOCK_DCCP: Final = 6
_IPPROTO_DCCP: Final = 33
_IPPROTO_UDPLITE: Final = 136
_IPPROTO_SCTP: Final = 132
_PROTOANY: Final = 2
_NOSERVICE: Final = 1


@dataclass(frozen=True, slots=True)
class _TypeProto:
    socktype: int
    protocol: int
    protoflag: int
    default: bool
    name: str


# glibc's gaih_inet_typeproto, in order.
_TYPEPROTO: Final = (
    _TypeProto(int(socket.SOCK_STREAM), 6, 0, True, "tcp"),
    _TypeProto(int(socket.SOCK_DGRAM), 17, 0, True, "udp"),
    _TypeProto(_SOCK_DCCP, _IPPROTO_DCCP, 0, False, "dccp"),
    _TypeProto(int(socket.SOCK_DGRAM), _IPPROTO_UDPLITE, 0, False, "udplite"),
    _TypeProto(int(socket.SOCK_STREAM), _IPPROTO_SCTP, 0, False, "sctp"),
    _TypeProto(int(socket.SOCK_SEQPACKET), _IPPROTO_SCTP, 0, False, "sctp"),
    _TypeProto(int(socket.SOCK_RAW), 0, _PROTOANY | _NOSERVICE, True, "raw"),
)

_service_cache: dict[tuple[bytes, str], int | None] = {}
_service_lock = threading.Lock()
_SERVICE_CACHE_MAX: Final = 1024


def _getservbyname(name: bytes, proto: str) -> int | None:
    """The port of service ``name`` for ``proto`` (``/etc/services`` via libc), cached."""
    key = (name, proto)
    try:
        return _service_cache[key]
    except KeyError:
        pass
    try:
        text = name.decode("utf-8")
    except UnicodeDecodeError:
        port: int | None = None
    else:
        # getservbyname() is not reentrant and CPython drops the GIL around it.
        with _service_lock:
            try:
                port = socket.getservbyname(text, proto)
            except (OSError, ValueError):
                port = None
    bounded_put(_service_cache, key, port, _SERVICE_CACHE_MAX)
    return port


ServTuple: TypeAlias = "tuple[int, int, int]"  # socktype, protocol, port


def servtuples(service: bytes | None, num: int, socktype: int, proto: int) -> list[ServTuple]:
    """glibc's ``get_servtuples``: (socktype, protocol, port) for each result per address."""
    tp: _TypeProto | None = None
    if proto or socktype:
        for entry in _TYPEPROTO:
            if socktype != 0 and socktype != entry.socktype:
                continue
            if proto != 0 and not entry.protoflag & _PROTOANY and proto != entry.protocol:
                continue
            tp = entry
            break
        if tp is None:
            raise GaiError(EAI_SOCKTYPE if socktype else EAI_SERVICE)
    if service is not None and tp is not None and tp.protoflag & _NOSERVICE:
        raise GaiError(EAI_SERVICE)
    if service is None or num >= 0:
        port = 0 if service is None else num & 0xFFFF
        if tp is not None:
            return [(tp.socktype, proto if tp.protoflag & _PROTOANY else tp.protocol, port)]
        return [(e.socktype, e.protocol, port) for e in _TYPEPROTO if e.default]
    if tp is not None:
        found = _getservbyname(service, tp.name)
        if found is None:
            raise GaiError(EAI_SERVICE)
        return [(tp.socktype, proto if tp.protoflag & _PROTOANY else tp.protocol, found)]
    out: list[ServTuple] = []
    for entry in _TYPEPROTO:
        if entry.protoflag & _NOSERVICE:
            continue
        found = _getservbyname(service, entry.name)
        if found is not None:
            out.append((entry.socktype, entry.protocol, found))
    if not out:
        raise GaiError(EAI_SERVICE)
    return out


def _reinit_after_fork() -> None:
    global _service_lock
    _service_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
