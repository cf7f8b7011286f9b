"""``getaddrinfo``, ``gethostbyname`` and ``gethostbyname_ex`` with the standard library's
contract, answered by a safedns :class:`~safedns.Resolver` and the hosts file.

The lookup follows glibc 2.36's ``getaddrinfo`` (``sysdeps/posix/getaddrinfo.c``) step by
step, so results and errors match :func:`socket.getaddrinfo` on glibc:

1. CPython's argument handling (``socketmodule.c``): ``idna`` for str hosts, ``%ld`` for
   int ports, the same ``TypeError``/``OverflowError``/``OSError``/``UnicodeError``;
2. the flag, family, ``AI_ADDRCONFIG`` and service checks, with the ``EAI_*`` codes and
   ``gai_strerror`` messages of the C library;
3. numeric hosts (``inet_aton`` forms, IPv6 with ``%scope``), ``None`` hosts, the
   ``gethostbyname2_r`` short cut for ``AF_INET`` (digits-and-dots names), then the
   ``hosts:`` sources of nsswitch.conf: ``files`` (:mod:`safedns._hosts`) and ``dns`` (the
   resolver, which plans far fewer queries than glibc's search-list walk); other NSS
   modules are skipped;
4. the RFC 3484 sort of glibc (source addresses from ``connect``, ``/etc/gai.conf``,
   interface flags from netlink), with glibc's own merge sort, so ties break the same way.

Finished results are cached by the full argument tuple until the earliest expiry of the
DNS answers used (entries that depended on interface state live at most
``IFACE_RECHECK`` seconds); the hosts file and nsswitch.conf are re-checked at most every
``hosts_check_interval`` seconds and any change empties the cache. A cache hit is one
dict lookup, one clock read and a list copy.
"""

from __future__ import annotations

import _socket
import errno as _errno
import functools
import locale
import math
import operator
import os
import socket
import struct
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from safedns._config import _inet_aton_exact
from safedns._exceptions import InvalidName, NameNotFound, TemporaryFailure
from safedns._hosts import HOSTS_PATH, NSSWITCH_PATH, HostsFile, NsSwitch, ResolvConf, Source
from safedns._records import Answer
from safedns._resolver import Resolver

if TYPE_CHECKING:
    import ctypes

__all__ = [
    "AddrInfo",
    "default_addrinfo",
    "getaddrinfo",
    "gethostbyname",
    "gethostbyname_ex",
]

AddrInfoTuple: TypeAlias = (
    "tuple[socket.AddressFamily | int, socket.SocketKind | int, int, str, tuple[Any, ...]]"
)

AF_UNSPEC: Final = int(socket.AF_UNSPEC)
AF_INET: Final = int(socket.AF_INET)
AF_INET6: Final = int(socket.AF_INET6)

# glibc's EAI_* values (netdb.h); the socket module has most of them.
EAI_BADFLAGS: Final = -1
EAI_NONAME: Final = -2
EAI_AGAIN: Final = -3
EAI_FAIL: Final = -4
EAI_NODATA: Final = -5
EAI_FAMILY: Final = -6
EAI_SOCKTYPE: Final = -7
EAI_SERVICE: Final = -8
EAI_ADDRFAMILY: Final = -9
EAI_MEMORY: Final = -10
EAI_SYSTEM: Final = -11
EAI_IDN_ENCODE: Final = -105

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

# h_errno values (netdb.h) and hstrerror's messages.
NETDB_INTERNAL: Final = -1
HOST_NOT_FOUND: Final = 1
TRY_AGAIN: Final = 2
NO_RECOVERY: Final = 3
NO_DATA: Final = 4
_H_MESSAGES: Final = {
    NETDB_INTERNAL: "Resolver internal error",
    0: "Resolver Error 0 (no error)",
    HOST_NOT_FOUND: "Unknown host",
    TRY_AGAIN: "Host name lookup failure",
    NO_RECOVERY: "Unknown server error",
    NO_DATA: "No address associated with name",
}

# hints.ai_flags glibc accepts (AI_IDN, AI_CANONIDN and the two deprecated IDN bits too).
AI_PASSIVE: Final = 0x0001
AI_CANONNAME: Final = 0x0002
AI_NUMERICHOST: Final = 0x0004
AI_V4MAPPED: Final = 0x0008
AI_ALL: Final = 0x0010
AI_ADDRCONFIG: Final = 0x0020
AI_IDN: Final = 0x0040
AI_CANONIDN: Final = 0x0080
AI_NUMERICSERV: Final = 0x0400
_ALLOWED_FLAGS: Final = 0x07FF

# nss status values.
_SUCCESS: Final = "success"
_NOTFOUND: Final = "notfound"
_UNAVAIL: Final = "unavail"
_TRYAGAIN: Final = "tryagain"

#: Seconds a result that depended on interface state (sorting, AI_ADDRCONFIG) is cached.
IFACE_RECHECK: Final = 5.0

_C_LONG_BITS: Final = struct.calcsize("l") * 8
_LONG_MIN: Final = -(1 << (_C_LONG_BITS - 1))
_LONG_MAX: Final = (1 << (_C_LONG_BITS - 1)) - 1
_ULONG_MAX: Final = (1 << _C_LONG_BITS) - 1
_INT_MIN: Final = -(1 << 31)
_INT_MAX: Final = (1 << 31) - 1

_MAPPED_PREFIX: Final = bytes(10) + b"\xff\xff"
_LOOPBACK6: Final = bytes(15) + b"\x01"
_ANY6: Final = bytes(16)
_LOOPBACK4: Final = b"\x7f\x00\x00\x01"
_ANY4: Final = bytes(4)


class _GaiError(Exception):
    """An EAI_* result inside the emulation; turned into ``socket.gaierror``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


# --------------------------------------------------------------------------- libc helpers


@functools.cache
def _libc() -> ctypes.CDLL | None:
    import ctypes  # only for error messages: keep ``import safedns`` light

    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - ctypes cannot open the process
        return None


def _c_message(function: str, code: int, fallback: dict[int, str]) -> str:
    libc = _libc()
    if libc is not None:
        import ctypes

        fn = getattr(libc, function, None)
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


# --------------------------------------------------------------------------- arguments


def _c_int(value: object) -> int:
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


def _host_arg(host: object) -> bytes | None:
    if host is None:
        return None
    if isinstance(host, str):
        return _c_string(str.encode(host, "idna"))
    if isinstance(host, bytes):
        return _c_string(bytes(host))
    raise TypeError("getaddrinfo() argument 1 must be string or None")


def _port_arg(port: object) -> bytes | None:
    if type(port) is int:
        if not _LONG_MIN <= port <= _LONG_MAX and not _port_int_as_text():
            raise OverflowError("Python int too large to convert to C long")
        return b"%d" % port
    if isinstance(port, str):
        data = str.encode(port, "utf-8")
        if b"\0" in data and _port_nul_raises():
            raise ValueError("embedded null character")
        return _c_string(data)
    if isinstance(port, bytes):
        return _c_string(bytes(port))
    if port is None:
        return None
    raise OSError("Int or String expected")


@functools.cache
def _port_int_as_text() -> bool:
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
def _port_nul_raises() -> bool:
    """Whether this CPython rejects a str port with a NUL (its C API changed over versions);
    asked of the C function itself, with numeric arguments only."""
    try:
        _socket.getaddrinfo("127.0.0.1", "1\0", 0, 0, 0, AI_NUMERICHOST | AI_NUMERICSERV)
    except ValueError:
        return True
    except OSError:
        return False
    return False


def _hostname_arg(hostname: object, function: str) -> bytes:
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


def _strtoul(text: bytes) -> tuple[int, int]:
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


def _to_c_int(value: int) -> int:
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
    if len(_service_cache) >= _SERVICE_CACHE_MAX:
        _service_cache.clear()
    _service_cache[key] = port
    return port


ServTuple: TypeAlias = "tuple[int, int, int]"  # socktype, protocol, port


def _servtuples(service: bytes | None, num: int, socktype: int, proto: int) -> list[ServTuple]:
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
            raise _GaiError(EAI_SOCKTYPE if socktype else EAI_SERVICE)
    if service is not None and tp is not None and tp.protoflag & _NOSERVICE:
        raise _GaiError(EAI_SERVICE)
    if service is None or num >= 0:
        port = 0 if service is None else num & 0xFFFF
        if tp is not None:
            return [(tp.socktype, proto if tp.protoflag & _PROTOANY else tp.protocol, port)]
        return [(e.socktype, e.protocol, port) for e in _TYPEPROTO if e.default]
    if tp is not None:
        found = _getservbyname(service, tp.name)
        if found is None:
            raise _GaiError(EAI_SERVICE)
        return [(tp.socktype, proto if tp.protoflag & _PROTOANY else tp.protocol, found)]
    out: list[ServTuple] = []
    for entry in _TYPEPROTO:
        if entry.protoflag & _NOSERVICE:
            continue
        found = _getservbyname(service, entry.name)
        if found is not None:
            out.append((entry.socktype, entry.protocol, found))
    if not out:
        raise _GaiError(EAI_SERVICE)
    return out


# --------------------------------------------------------------------------- IDN (libidn2)

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


def _idn2_call(function: str, name: bytes) -> tuple[int, bytes | None]:
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


def _idna_to_dns(name: bytes) -> bytes:
    """glibc's ``__idna_to_dns_encoding`` (AI_IDN)."""
    if name.isascii():
        return name
    try:
        text = name.decode(locale.nl_langinfo(locale.CODESET) or "ascii")
    except (UnicodeDecodeError, LookupError):
        raise _GaiError(EAI_IDN_ENCODE) from None
    if "\\" in text:
        raise _GaiError(EAI_IDN_ENCODE)
    rc, out = _idn2_call("idn2_lookup_ul", name)
    if rc != 0 or out is None:
        raise _GaiError(rc)
    return out


# --------------------------------------------------------------------------- interfaces

IN6AI_DEPRECATED: Final = 1
IN6AI_HOMEADDRESS: Final = 4
_IFA_F_OPTIMISTIC: Final = 0x04
_IFA_F_HOMEADDRESS: Final = 0x10
_IFA_F_DEPRECATED: Final = 0x20


@dataclass(frozen=True, slots=True)
class Interfaces:
    """glibc's ``__check_pf``: whether a non-loopback IPv4 / IPv6 address is configured,
    and (only when IPv6 is) every address with its flags, prefix length and interface."""

    seen_ipv4: bool
    seen_ipv6: bool
    in6ai: dict[bytes, tuple[int, int, int]]


def _netlink_addresses() -> list[tuple[int, int, int, int, bytes]] | None:
    """(family, prefixlen, flags, index, address) from an RTM_GETADDR dump, or None."""
    if not hasattr(socket, "AF_NETLINK"):
        return None
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    except OSError:
        return None
    out: list[tuple[int, int, int, int, bytes]] = []
    try:
        sock.settimeout(2.0)
        sock.bind((0, 0))
        seq = int(time.monotonic_ns() & 0x7FFFFFFF)
        # nlmsghdr (RTM_GETADDR, NLM_F_REQUEST|NLM_F_ROOT|NLM_F_MATCH) + rtgenmsg(AF_UNSPEC).
        request = struct.pack("=IHHII", 20, 22, 0x301, seq, 0) + struct.pack("=Bxxx", 0)
        sock.sendto(request, (0, 0))
        pid = sock.getsockname()[0]
        while True:
            data = sock.recv(65536)
            if not data:
                return None
            offset = 0
            while offset + 16 <= len(data):
                length, kind, _flags, mseq, mpid = struct.unpack_from("=IHHII", data, offset)
                if length < 16:
                    return None
                body = data[offset + 16 : offset + length]
                offset += (length + 3) & ~3
                if mseq != seq or mpid != pid:
                    continue
                if kind == 3:  # NLMSG_DONE
                    return out
                if kind == 2:  # NLMSG_ERROR
                    return None
                if kind != 20 or len(body) < 8:  # RTM_NEWADDR
                    continue
                family, prefixlen, ifa_flags, _scope, index = struct.unpack_from("=BBBBI", body)
                if family not in (AF_INET, AF_INET6):
                    continue
                local = address = None
                pos = 8
                while pos + 4 <= len(body):
                    rta_len, rta_type = struct.unpack_from("=HH", body, pos)
                    if rta_len < 4:
                        break
                    value = body[pos + 4 : pos + rta_len]
                    if rta_type == 2:  # IFA_LOCAL
                        local = value
                    elif rta_type == 1:  # IFA_ADDRESS
                        address = value
                        break
                    pos += (rta_len + 3) & ~3
                chosen = address if address is not None else local
                if chosen is None:
                    continue
                out.append((family, prefixlen, ifa_flags, index, chosen))
    except OSError:
        return None
    finally:
        sock.close()


def _read_interfaces() -> Interfaces:
    entries = _netlink_addresses()
    if entries is None:  # glibc's fallback when netlink fails: assume both, no details
        return Interfaces(True, True, {})
    seen4 = seen6 = False
    in6ai: dict[bytes, tuple[int, int, int]] = {}
    for family, prefixlen, ifa_flags, index, address in entries:
        if family == AF_INET:
            if address != _LOOPBACK4:
                seen4 = True
            key = _MAPPED_PREFIX + address[:4]
        else:
            if address != _LOOPBACK6:
                seen6 = True
            key = address[:16]
        flags = IN6AI_DEPRECATED if ifa_flags & (_IFA_F_DEPRECATED | _IFA_F_OPTIMISTIC) else 0
        if ifa_flags & _IFA_F_HOMEADDRESS:
            flags |= IN6AI_HOMEADDRESS
        in6ai.setdefault(key, (flags, prefixlen, index))
    return Interfaces(seen4, seen6, in6ai if seen6 else {})


_iface_cache: tuple[float, Interfaces] | None = None


def interfaces(max_age: float = 1.0) -> Interfaces:
    """The current :class:`Interfaces`, re-read at most every ``max_age`` seconds."""
    global _iface_cache
    now = time.monotonic()
    cached = _iface_cache
    if cached is not None and now - cached[0] < max_age:
        return cached[1]
    info = _read_interfaces()
    _iface_cache = (now, info)
    return info


_ARPHRD_NOT_NATIVE: Final = frozenset({768, 769, 776})  # TUNNEL, TUNNEL6, SIT


def _native(index: int) -> int:
    """glibc's ``__check_native`` for one interface: 1 unless it is a tunnel."""
    if index == 0xFFFFFFFF:
        return 0
    try:
        name = socket.if_indextoname(index)
        with open(f"/sys/class/net/{name}/type", "rb") as f:
            kind = int(f.read().strip() or b"0")
    except (OSError, ValueError):
        return 0
    return 0 if kind in _ARPHRD_NOT_NATIVE else 1


# --------------------------------------------------------------------------- gai.conf

_Prefix: TypeAlias = "tuple[bytes, int, int]"  # prefix (16 bytes), bits, value
_Scope: TypeAlias = "tuple[int, int, int]"  # addr32 & mask, netmask (network order int), scope


def _v6(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, text)


DEFAULT_LABELS: Final[tuple[_Prefix, ...]] = (
    (_v6("::1"), 128, 0),
    (_v6("2002::"), 16, 2),
    (_v6("::"), 96, 3),
    (_v6("::ffff:0:0"), 96, 4),
    (_v6("fec0::"), 10, 5),
    (_v6("fc00::"), 7, 6),
    (_v6("2001::"), 32, 7),
    (_v6("::"), 0, 1),
)
DEFAULT_PRECEDENCE: Final[tuple[_Prefix, ...]] = (
    (_v6("::1"), 128, 50),
    (_v6("2002::"), 16, 30),
    (_v6("::"), 96, 20),
    (_v6("::ffff:0:0"), 96, 10),
    (_v6("::"), 0, 40),
)


def _be32(data: bytes) -> int:
    return int.from_bytes(data, "big")


def _net_order(value: int) -> int:
    """A host-order 32-bit value as the int glibc compares after ``htonl`` on this CPU."""
    return int.from_bytes(value.to_bytes(4, "big"), sys.byteorder)


DEFAULT_SCOPES: Final[tuple[_Scope, ...]] = (
    (_be32(bytes((169, 254, 0, 0))), 0xFFFF0000, 2),
    (_be32(bytes((127, 0, 0, 0))), 0xFF000000, 2),
    (0, 0, 14),
)


@dataclass(frozen=True, slots=True)
class GaiConf:
    """The tables of ``/etc/gai.conf`` (glibc's defaults when absent)."""

    labels: tuple[_Prefix, ...] = DEFAULT_LABELS
    precedence: tuple[_Prefix, ...] = DEFAULT_PRECEDENCE
    scopes: tuple[_Scope, ...] = DEFAULT_SCOPES


def _msort(items: list[Any], cmp: Callable[[Any, Any], int]) -> list[Any]:
    """glibc 2.36's ``qsort`` (``msort_with_tmp``): a top-down merge sort."""
    n = len(items)
    if n <= 1:
        return list(items)
    n1 = n // 2
    left = _msort(items[:n1], cmp)
    right = _msort(items[n1:], cmp)
    out: list[Any] = []
    i = j = 0
    while i < len(left) and j < len(right):
        if cmp(left[i], right[j]) <= 0:
            out.append(left[i])
            i += 1
        else:
            out.append(right[j])
            j += 1
    out.extend(left[i:])
    out.extend(right[j:])
    return out


def _parse_prefix(val1: str, val2: str) -> _Prefix | None:
    addr, _, bits_text = val1.partition("/")
    try:
        prefix = _v6(addr)
    except (OSError, ValueError):
        return None
    bits = 128
    if "/" in val1:
        value, end = _strtoul(bits_text.encode())
        if end != len(bits_text):
            return None
        bits = value
    number, end = _strtoul(val2.encode())
    if end != len(val2) or bits > 128 or number > 0x7FFFFFFF:
        return None
    return prefix, bits, number


def parse_gai_conf(text: str) -> GaiConf:
    """Parse gai.conf ``label``, ``precedence`` and ``scopev4`` lines like glibc."""
    labels: list[_Prefix] = []
    precedence: list[_Prefix] = []
    scopes: list[_Scope] = []
    for raw in text.split("\n"):
        words = raw.split("#", 1)[0].split()
        if len(words) < 2:
            continue
        cmd, val1 = words[0], words[1]
        val2 = words[2] if len(words) > 2 else ""
        if cmd in ("label", "precedence"):
            entry = _parse_prefix(val1, val2)
            if entry is not None:
                (labels if cmd == "label" else precedence).append(entry)
        elif cmd == "scopev4":
            addr, slash, bits_text = val1.partition("/")
            number, end2 = _strtoul(val2.encode())
            if end2 != len(val2) or number > 0x7FFFFFFF:
                continue
            try:
                packed = _v6(addr)
                base = 128
                if not packed.startswith(_MAPPED_PREFIX):
                    continue
            except OSError:
                try:
                    packed = _MAPPED_PREFIX + socket.inet_pton(socket.AF_INET, addr)
                except OSError:
                    continue
                base = 32
            bits = base
            if slash:
                bits, end = _strtoul(bits_text.encode())
                if end != len(bits_text):
                    continue
            if base == 128 and not 96 <= bits <= 128:
                continue
            if base == 32:
                if bits > 32:
                    continue
                bits += 96
            mask = ((0xFFFFFFFF << (128 - bits)) & 0xFFFFFFFF) if bits != 96 else 0
            scopes.append((_be32(packed[12:]) & mask, mask, number))

    def finish(
        entries: list[_Prefix], default: tuple[_Prefix, ...], last: int
    ) -> tuple[_Prefix, ...]:
        if not entries:
            return default
        if not any(bits == 0 for _, bits, _ in entries):
            entries = [*entries, (bytes(16), 0, last)]
        return tuple(_msort(entries, lambda a, b: (b[1] > a[1]) - (b[1] < a[1])))

    scope_table: tuple[_Scope, ...] = DEFAULT_SCOPES
    if scopes:
        if not any(mask == 0 for _, mask, _ in scopes):
            scopes.append((0, 0, 14))
        # glibc compares the netmasks as stored, in network byte order.
        scope_table = tuple(
            _msort(
                scopes,
                lambda a, b: (
                    (_net_order(b[1]) > _net_order(a[1])) - (_net_order(b[1]) < _net_order(a[1]))
                ),
            )
        )
    return GaiConf(
        finish(labels, DEFAULT_LABELS, 1), finish(precedence, DEFAULT_PRECEDENCE, 40), scope_table
    )


_gai_conf: GaiConf | None = None


def gai_conf() -> GaiConf:
    """``/etc/gai.conf``, read once per process (as glibc does without ``reload yes``)."""
    global _gai_conf
    if _gai_conf is None:
        try:
            with open("/etc/gai.conf", encoding="utf-8", errors="replace") as f:
                _gai_conf = parse_gai_conf(f.read())
        except OSError:
            _gai_conf = GaiConf()
    return _gai_conf


# --------------------------------------------------------------------------- RFC 3484 sort


def _match_prefix(addr16: bytes, table: Sequence[_Prefix], default: int) -> int:
    for prefix, bits, value in table:
        full, rest = divmod(bits, 8)
        if addr16[:full] != prefix[:full]:
            continue
        if rest == 0 or full >= 16:
            return value
        mask = (0xFF00 >> rest) & 0xFF
        if addr16[full] & mask == prefix[full] & mask:
            return value
    return default


def _scope(family: int, packed: bytes, conf: GaiConf) -> int:
    if family == AF_INET6:
        if packed[0] != 0xFF:
            if (packed[0] == 0xFE and packed[1] & 0xC0 == 0x80) or packed == _LOOPBACK6:
                return 2
            if packed[0] == 0xFE and packed[1] & 0xC0 == 0xC0:
                return 5
            return 14
        return packed[1] & 0x0F
    value = _be32(packed)
    for addr, mask, scope in conf.scopes:
        if value & mask == addr:
            return scope
    return 14  # pragma: no cover - the table always ends with 0/0


def _as16(family: int, packed: bytes) -> bytes:
    return packed if family == AF_INET6 else _MAPPED_PREFIX + packed


def _clz32(value: int) -> int:
    return 32 - value.bit_length()


@dataclass(slots=True)
class _SortItem:
    index: int
    family: int
    packed: bytes
    got_source: bool
    src_family: int
    src_packed: bytes
    src_flags: int
    prefixlen: int
    ifindex: int
    dst_scope: int
    dst_label: int
    dst_prec: int
    src_scope: int
    src_label: int


def _source_address(family: int, packed: bytes, port: int, scope_id: int) -> bytes | None:
    """The source address the kernel would use to reach the destination, or None."""
    try:
        sock = socket.socket(family, socket.SOCK_DGRAM)
    except OSError:
        return None
    try:
        if family == AF_INET6:
            sock.connect((socket.inet_ntop(family, packed), port, 0, scope_id))
            return socket.inet_pton(family, sock.getsockname()[0].split("%", 1)[0])
        sock.connect((socket.inet_ntop(family, packed), port))
        return socket.inet_pton(family, sock.getsockname()[0])
    except (OSError, OverflowError, ValueError):
        return None
    finally:
        sock.close()


_Dest: TypeAlias = "tuple[int, bytes, int, int]"  # family, packed, scope_id, port


def rfc3484_sort(
    dests: Sequence[_Dest],
    info: Interfaces,
    conf: GaiConf,
    source: Callable[[int, bytes, int, int], bytes | None] | None = None,
) -> list[int]:
    """glibc's destination address sort: the new order, as indexes into ``dests``.

    ``source(family, packed, port, scope_id)`` gives the source address the kernel would
    use for a destination, None when unreachable (default: ``connect`` a UDP socket).
    """
    if source is None:
        source = _source_address
    items: list[_SortItem] = []
    sock_af = AF_UNSPEC
    last: _Dest | None = None
    for i, dest in enumerate(dests):
        family, packed, scope_id, port = dest
        dst16 = _as16(family, packed)
        if last is not None and last[0] == family and last[1:] == dest[1:]:
            prev = items[-1]
            got, src_family, src_packed = prev.got_source, prev.src_family, prev.src_packed
            src_flags, prefixlen, ifindex = prev.src_flags, prev.prefixlen, prev.ifindex
        else:
            if sock_af == AF_UNSPEC or (sock_af == AF_INET and family == AF_INET6):
                sock_af = family
            src = source(family, packed, port, scope_id)
            got = src is not None
            src_family, src_packed = family, src or bytes(len(packed))
            src_flags, prefixlen, ifindex = 0, 0, 0xFFFFFFFF
            if got and info.in6ai:
                if family == AF_INET and sock_af == AF_INET:
                    key = _MAPPED_PREFIX + (_LOOPBACK4 if src_packed[0] == 127 else src_packed)
                else:
                    key = _as16(family, src_packed)
                found = info.in6ai.get(key)
                if found is not None:
                    src_flags, prefixlen, ifindex = found
        last = dest
        src16 = _as16(src_family, src_packed)
        items.append(
            _SortItem(
                i,
                family,
                packed,
                got,
                src_family,
                src_packed,
                src_flags,
                prefixlen,
                ifindex,
                _scope(family, packed, conf),
                _match_prefix(dst16, conf.labels, 0x7FFFFFFF),
                _match_prefix(dst16, conf.precedence, 0),
                _scope(src_family, src_packed, conf) if got else 0,
                _match_prefix(src16, conf.labels, 0x7FFFFFFF) if got else 0,
            )
        )
    natives: dict[int, int] = {}

    def native(index: int) -> int:
        if index not in natives:
            natives[index] = _native(index)
        return natives[index]

    def compare(a1: _SortItem, a2: _SortItem) -> int:
        # Rule 1: avoid unusable destinations.
        if a1.got_source != a2.got_source:
            return -1 if a1.got_source else 1
        if a1.got_source:
            # Rule 2: prefer matching scope.
            m1 = a1.dst_scope == a1.src_scope
            m2 = a2.dst_scope == a2.src_scope
            if m1 != m2:
                return -1 if m1 else 1
            # Rule 3: avoid deprecated addresses.
            d1 = bool(a1.src_flags & IN6AI_DEPRECATED)
            d2 = bool(a2.src_flags & IN6AI_DEPRECATED)
            if d1 != d2:
                return 1 if d1 else -1
            # Rule 4: prefer home addresses.
            h1 = bool(a1.src_flags & IN6AI_HOMEADDRESS)
            h2 = bool(a2.src_flags & IN6AI_HOMEADDRESS)
            if h1 != h2:
                return -1 if h1 else 1
            # Rule 5: prefer matching label.
            l1 = a1.dst_label == a1.src_label
            l2 = a2.dst_label == a2.src_label
            if l1 != l2:
                return -1 if l1 else 1
        # Rule 6: prefer higher precedence.
        if a1.dst_prec != a2.dst_prec:
            return -1 if a1.dst_prec > a2.dst_prec else 1
        # Rule 7: prefer native transport.
        if a1.got_source and a1.ifindex != a2.ifindex:
            n1, n2 = native(a1.ifindex), native(a2.ifindex)
            if n1 != n2:
                return -1 if n1 else 1
        # Rule 8: prefer smaller scope.
        if a1.dst_scope != a2.dst_scope:
            return -1 if a1.dst_scope < a2.dst_scope else 1
        # Rule 9: use longest matching prefix.
        if a1.got_source and a1.family == a2.family:
            bit1 = bit2 = 0
            if a1.family == AF_INET:
                for item in (a1, a2):
                    dst, src = _be32(item.packed), _be32(item.src_packed)
                    # C's 0xffffffff << 32 is a shift by 0 on x86 and arm64.
                    mask = (0xFFFFFFFF << ((32 - item.prefixlen) & 31)) & 0xFFFFFFFF
                    bits = _clz32(dst ^ src) if src & mask == dst & mask else 0
                    if item is a1:
                        bit1 = bits
                    else:
                        bit2 = bits
            else:
                for w in range(4):
                    s = slice(4 * w, 4 * w + 4)
                    if a1.packed[s] != a1.src_packed[s] or a2.packed[s] != a2.src_packed[s]:
                        bit1 = _clz32(_be32(a1.packed[s]) ^ _be32(a1.src_packed[s]))
                        bit2 = _clz32(_be32(a2.packed[s]) ^ _be32(a2.src_packed[s]))
                        break
            if bit1 != bit2:
                return -1 if bit1 > bit2 else 1
        # Rule 10: keep the order.
        return -1 if a1.index < a2.index else 1

    return [item.index for item in _msort(items, compare)]


# --------------------------------------------------------------------------- numeric hosts


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


_ATON_CHARS: Final = frozenset(b"0123456789abcdefABCDEFxX.")


def _inet_aton(name: bytes) -> bytes | None:
    """glibc's ``__inet_aton_exact``: a dotted-quad or legacy (``127.1``, ``0x7f.1``,
    ``2130706433``) IPv4 address, packed; None if ``name`` is not one."""
    if not name or not _ATON_CHARS.issuperset(name):
        return None
    try:
        return socket.inet_pton(socket.AF_INET, name.decode("ascii"))  # the common form
    except OSError:
        pass
    text = _inet_aton_exact(name.decode("ascii"))
    return socket.inet_aton(text) if text is not None else None


def _numeric_host(name: bytes, family: int, flags: int) -> list[Address] | None:
    """glibc's ``text_to_binary_address``: the address for a numeric host, or None."""
    packed = _inet_aton(name)
    if packed is not None:
        if family in (AF_UNSPEC, AF_INET):
            return [(AF_INET, packed, 0)]
        if family == AF_INET6 and flags & AI_V4MAPPED:
            return [(AF_INET6, _MAPPED_PREFIX + packed, 0)]
        raise _GaiError(EAI_ADDRFAMILY)
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
        elif family == AF_INET and packed6.startswith(_MAPPED_PREFIX):
            result = (AF_INET, packed6[12:], 0)
        else:
            raise _GaiError(EAI_ADDRFAMILY)
        if pct:
            scope_id = _inet6_scope_id(packed6, scope)
            if scope_id is None:
                raise _GaiError(EAI_NONAME)
            if result[0] == AF_INET6:
                result = (AF_INET6, packed6, scope_id)
        return [result]
    if flags & AI_NUMERICHOST:
        raise _GaiError(EAI_NONAME)
    return None


def _digits_dots(name: bytes) -> tuple[bool, bytes | None]:
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
        return True, _inet_aton(name)
    if (is_xdigit and b":" in name) or first == 0x3A:
        return True, None
    return False, None


# --------------------------------------------------------------------------- lookups


@dataclass(slots=True)
class _Found:
    """One NSS module's answer for one family question."""

    status: str
    h_errno: int
    addresses: list[tuple[int, bytes]]
    canon: bytes | None = None
    aliases: tuple[bytes, ...] = ()
    answers: tuple[Answer, ...] = ()
    #: The module failed without touching the thread's ``h_errno`` (glibc's nss_dns
    #: refuses a name that is not a host name before any resolver call), so
    #: ``gethostbyname*`` reports whatever the thread's last lookup left there.
    h_errno_kept: bool = False


def _thread_h_errno() -> int:
    """The calling thread's C ``h_errno`` (glibc's ``__h_errno_location``), 0 if unknown.

    CPython's ``gethostbyname_ex`` raises ``herror(h_errno)`` with the thread's value,
    which glibc leaves alone for names nss_dns refuses to look up."""
    libc = _libc()
    location = getattr(libc, "__h_errno_location", None) if libc is not None else None
    if location is None:
        return 0
    import ctypes

    location.restype = ctypes.POINTER(ctypes.c_int)
    location.argtypes = []
    return int(location().contents.value)


def _invalid_h_errno(exc: InvalidName) -> int:
    # glibc cannot build a query for these (res_mkquery fails: NO_RECOVERY); for other
    # names it sends the query and the server answers NXDOMAIN.
    reason = exc.reason
    if reason.startswith(("empty", "label longer", "name longer", "the root")):
        return NO_RECOVERY
    return HOST_NOT_FOUND


def _not_found_h_errno(exc: NameNotFound, family: int) -> int:
    """h_errno for a lookup without data: HOST_NOT_FOUND for NXDOMAIN, NO_DATA for
    "no data of this family", except where glibc's answer is a CNAME chain ending
    without such records (it parses the answer, finds none: HOST_NOT_FOUND). The
    error says both, from the answers the walk already had: no further query."""
    if exc.nxdomain:
        return HOST_NOT_FOUND
    if family != AF_UNSPEC and exc.canonical_name is not None:
        return HOST_NOT_FOUND
    return NO_DATA


def _strip_dot(name: str) -> str:
    return name[:-1] if name.endswith(".") else name


def _typed_name(typed: bytes, candidate: str) -> bytes:
    """``candidate`` (lower case, from the resolver) spelled as the caller typed it,
    which is how a DNS server echoes the question (and glibc reports it)."""
    asked = typed[:-1] if typed.endswith(b".") else typed
    found = _strip_dot(candidate).encode("ascii", "replace")
    if found.lower().startswith(asked.lower()):
        return asked + found[len(asked) :]
    return found


@dataclass(slots=True)
class _Result:
    """glibc's ``struct gaih_result`` while the NSS modules run."""

    at: list[Address] = field(default_factory=list)
    canon: bytes | None = None
    got_ipv6: bool = False
    answers: list[Answer] = field(default_factory=list)


def _no_data(h_errno: int) -> int:
    return EAI_AGAIN if h_errno == TRY_AGAIN else int(h_errno == NO_DATA)


@dataclass(slots=True)
class _Outcome:
    """What the name lookup produced: addresses in glibc's pre-sort order, the
    canonical name, whether IPv6 was found, and when it expires."""

    addresses: list[Address]
    canon: bytes | None
    got_ipv6: bool
    expires: float


# --------------------------------------------------------------------------- the API class

_INT_CLASSES: Final = frozenset(
    {int, bool, socket.AddressFamily, socket.SocketKind, socket.AddressInfo}
)
_PORT_CLASSES: Final = frozenset({int, str, bytes, type(None)})
_HOST_CLASSES: Final = frozenset({str, bytes, type(None)})

_instances: weakref.WeakSet[AddrInfo] = weakref.WeakSet()
_PLAIN = Source("plain", {})
_audit = sys.audit


# The socket module's _intenum_converter, as lookups.
_FAMILY_ENUMS: Final[dict[int, socket.AddressFamily | int]] = {
    int(m): m for m in socket.AddressFamily
}
_KIND_ENUMS: Final[dict[int, socket.SocketKind | int]] = {int(m): m for m in socket.SocketKind}


class AddrInfo:
    """``getaddrinfo``, ``gethostbyname`` and ``gethostbyname_ex`` bound to ``resolver``.

    Drop-in replacements for the :mod:`socket` functions (``safedns.patch()`` installs
    the bound methods). ``hosts_path`` and ``nsswitch_path`` select the files consulted
    (``/etc/hosts`` and ``/etc/nsswitch.conf``); they are re-checked for changes at most
    every ``hosts_check_interval`` seconds of the resolver's clock. ``multi`` overrides
    ``/etc/host.conf``. At most ``max_entries`` finished results are cached.

    Without a ``resolver`` it builds one from the system configuration and follows
    ``/etc/resolv.conf`` (or ``$SAFEDNS_RESOLV_CONF``) as glibc 2.26+ does: the file is
    stat'ed with the hosts file, and when a change alters the configuration the resolver
    is replaced by :meth:`Resolver.reconfigured` (which keeps the cached answers when the
    nameservers are the same) and the finished results are dropped. A given resolver
    keeps its configuration.
    """

    def __init__(
        self,
        resolver: Resolver | None = None,
        *,
        hosts_path: str = HOSTS_PATH,
        nsswitch_path: str = NSSWITCH_PATH,
        multi: bool | None = None,
        hosts_check_interval: float = 1.0,
        max_entries: int = 4096,
    ) -> None:
        self._system: ResolvConf | None = None
        if resolver is None:
            self._system = ResolvConf()
            resolver = Resolver(self._system.config)
        self.resolver = resolver
        self._clock: Callable[[], float] = resolver.clock
        self.hosts = HostsFile(hosts_path, multi=multi)
        self.nsswitch = NsSwitch(nsswitch_path)
        self.hosts_check_interval = hosts_check_interval
        self.max_entries = max_entries
        self._cache: dict[tuple[object, ...], tuple[float, tuple[AddrInfoTuple, ...]]] = {}
        self._recheck_at = -math.inf
        self._generation = 0
        self._lock = threading.Lock()
        self._follow_lock = threading.Lock()
        _instances.add(self)

    def __repr__(self) -> str:
        return f"<AddrInfo {self.resolver!r} cached={len(self._cache)}>"

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._follow_lock = threading.Lock()
        self.hosts._lock = threading.Lock()

    def clear_cache(self) -> None:
        """Forget every finished result (the resolver's own cache is kept)."""
        with self._lock:
            self._generation += 1
            self._cache.clear()

    # -- getaddrinfo ------------------------------------------------------------------

    def getaddrinfo(
        self,
        host: Any,
        port: Any,
        family: Any = 0,
        type: Any = 0,  # the standard library's name
        proto: Any = 0,
        flags: Any = 0,
    ) -> list[AddrInfoTuple]:
        """:func:`socket.getaddrinfo`, answered by safedns."""
        try:
            entry = self._cache[(host, port, family, type, proto, flags)]
        except (KeyError, TypeError):
            return self._getaddrinfo(host, port, family, type, proto, flags)
        now = self._clock()
        if (
            now < entry[0]
            and now < self._recheck_at
            and port.__class__ in _PORT_CLASSES
            and family.__class__ in _INT_CLASSES
            and type.__class__ in _INT_CLASSES
            and proto.__class__ in _INT_CLASSES
            and flags.__class__ in _INT_CLASSES
        ):
            _audit("socket.getaddrinfo", host, port, family, type, proto)
            return list(entry[1])
        return self._getaddrinfo(host, port, family, type, proto, flags)

    def _check_files(self, now: float) -> None:
        if now < self._recheck_at:
            return
        changed = self.hosts.refresh()
        changed = self.nsswitch.refresh() or changed
        if self._system is not None and self._follow_resolv_conf(self._system):
            changed = True
        if changed:
            self.clear_cache()
        self._recheck_at = now + self.hosts_check_interval

    def _follow_resolv_conf(self, system: ResolvConf) -> bool:
        """Switch to a resolver on the new system configuration if resolv.conf changed it."""
        with self._follow_lock:
            config = system.refresh()
            if config is None:
                return False
            previous, self.resolver = self.resolver, self.resolver.reconfigured(config)
        previous.close()  # its background refreshes; lookups in progress still finish
        return True

    def _getaddrinfo(
        self, host: Any, port: Any, family: Any, type_: Any, proto: Any, flags: Any
    ) -> list[AddrInfoTuple]:
        # CPython's order: the int arguments, then host, then port.
        family_i, type_i, proto_i, flags_i = (
            _c_int(family),
            _c_int(type_),
            _c_int(proto),
            _c_int(flags),
        )
        name = _host_arg(host)
        service = _port_arg(port)
        sys.audit("socket.getaddrinfo", host, port, family_i, type_i, proto_i)
        key = (host, port, family_i, type_i, proto_i, flags_i)
        cacheable = host.__class__ in _HOST_CLASSES and port.__class__ in _PORT_CLASSES
        result = self._cached_resolve(
            key if cacheable else None, name, service, family_i, type_i, proto_i, flags_i
        )
        return list(result)

    def _cached_resolve(
        self,
        key: tuple[object, ...] | None,
        name: bytes | None,
        service: bytes | None,
        family: int,
        socktype: int,
        proto: int,
        flags: int,
    ) -> tuple[AddrInfoTuple, ...]:
        """:meth:`_resolve` through the finished-results cache (``key`` None: uncached).

        Raises ``socket.gaierror``.
        """
        now = self._clock()
        self._check_files(now)
        generation = self._generation
        if key is not None:
            entry = self._cache.get(key)
            if entry is not None and now < entry[0]:
                return entry[1]
        try:
            result, expires = self._resolve(name, service, family, socktype, proto, flags)
        except _GaiError as exc:
            raise gai_error(exc.code) from None
        if key is not None and expires > now:
            with self._lock:
                if generation == self._generation:
                    if len(self._cache) >= self.max_entries:
                        self._cache.clear()
                    self._cache[key] = (expires, result)
        return result

    def _resolve(
        self,
        name: bytes | None,
        service: bytes | None,
        family: int,
        socktype: int,
        proto: int,
        flags: int,
    ) -> tuple[tuple[AddrInfoTuple, ...], float]:
        """glibc's ``getaddrinfo`` on C arguments. Raises :class:`_GaiError`."""
        if name == b"*":
            name = None
        if service == b"*":
            service = None
        if name is None and service is None:
            raise _GaiError(EAI_NONAME)
        if flags & ~_ALLOWED_FLAGS:
            raise _GaiError(EAI_BADFLAGS)
        if flags & AI_CANONNAME and name is None:
            raise _GaiError(EAI_BADFLAGS)
        if family not in (AF_UNSPEC, AF_INET, AF_INET6):
            raise _GaiError(EAI_FAMILY)
        info: Interfaces | None = None
        iface_dependent = False
        if flags & AI_ADDRCONFIG:
            info = interfaces()
            iface_dependent = True
            if family == AF_UNSPEC and (info.seen_ipv4 or info.seen_ipv6):
                if info.seen_ipv4 != info.seen_ipv6:
                    family = AF_INET if info.seen_ipv4 else AF_INET6
            elif (family == AF_INET and not info.seen_ipv4) or (
                family == AF_INET6 and not info.seen_ipv6
            ):
                raise _GaiError(EAI_NONAME)
        num = -1
        if service:
            value, end = _strtoul(service)
            if end != len(service):
                if flags & AI_NUMERICSERV:
                    raise _GaiError(EAI_NONAME)
            else:
                num = _to_c_int(value)
        else:
            service = None
        servtuples = _servtuples(service, num, socktype, proto)

        if name is None:
            addresses: list[Address] = []
            if family in (AF_UNSPEC, AF_INET6):
                addresses.append((AF_INET6, _ANY6 if flags & AI_PASSIVE else _LOOPBACK6, 0))
            if family in (AF_UNSPEC, AF_INET):
                addresses.append((AF_INET, _ANY4 if flags & AI_PASSIVE else _LOOPBACK4, 0))
            outcome = _Outcome(addresses, None, False, math.inf)
            orig_name = b""
        else:
            orig_name = name
            if flags & AI_IDN:
                name = _idna_to_dns(name)
            numeric = _numeric_host(name, family, flags)
            if numeric is not None:
                canon = name if flags & AI_CANONNAME else None
                outcome = _Outcome(numeric, canon, False, math.inf)
            else:
                outcome = self._lookup(name, family, flags)
            if flags & AI_CANONNAME:
                canon = outcome.canon
                do_idn = bool(flags & AI_CANONIDN)
                if do_idn:
                    rc, out = _idn2_call("idn2_to_unicode_lzlz", canon or orig_name)
                    if rc == 0 and out is not None:
                        canon = out
                    elif rc == EAI_IDN_ENCODE:
                        do_idn = False
                    else:
                        raise _GaiError(rc)
                if not do_idn and canon is None:
                    canon = orig_name
                outcome.canon = canon

        # generate_addrinfo
        canon_text = outcome.canon.decode("utf-8") if outcome.canon is not None else None
        dests: list[_Dest] = []
        rows: list[tuple[int, int, int, Address]] = []
        naddrs = 0
        for address in outcome.addresses:
            af, packed, _scope_id = address
            if (
                af == AF_INET6
                and outcome.got_ipv6
                and flags & (AI_V4MAPPED | AI_ALL) == AI_V4MAPPED
                and packed.startswith(_MAPPED_PREFIX)
            ):
                continue
            for socktype_, protocol, port in servtuples:
                rows.append((socktype_, protocol, port, address))
                dests.append((af, packed, address[2], port))
            naddrs += 1
        if not rows:  # every address was a mapped one dropped above
            raise _GaiError(EAI_NONAME)
        order = list(range(len(rows)))
        if naddrs > 1:
            if info is None:
                info = interfaces()
            order = rfc3484_sort(dests, info, gai_conf())
            iface_dependent = True
        result: list[AddrInfoTuple] = []
        for position, i in enumerate(order):
            socktype_, protocol, port, (af, packed, scope_id) = rows[i]
            host_text = socket.inet_ntop(af, packed)
            sockaddr: tuple[Any, ...] = (
                (host_text, port, 0, scope_id) if af == AF_INET6 else (host_text, port)
            )
            canon_field = canon_text if position == 0 and canon_text is not None else ""
            result.append(
                (
                    _FAMILY_ENUMS.get(af, af),
                    _KIND_ENUMS.get(socktype_, socktype_),
                    protocol,
                    canon_field,
                    sockaddr,
                )
            )
        now = self._clock()
        expires = outcome.expires
        config = self.resolver.config
        if config.prefetch and now < expires < math.inf:
            # Come back to the resolver while its entry is still fresh but due for a
            # refresh-ahead, so hot names are refreshed in the background, not on a miss.
            expires = now + (expires - now) * (1.0 - config.prefetch_ratio)
        if iface_dependent:
            expires = min(expires, now + IFACE_RECHECK)
        return tuple(result), expires

    # -- the NSS part -----------------------------------------------------------------

    def _sources(self) -> list[tuple[str, Source]]:
        """The ``hosts:`` services safedns can stand in for, in order, with their actions.

        ``files`` and ``dns`` as glibc runs them; ``resolve`` (systemd-resolved) counts as
        ``dns`` when the line has no ``dns``; other modules (``myhostname``, ``mdns*``,
        ...) are skipped. A line with none of these means ``files dns``.
        """
        sources = self.nsswitch.sources
        names = {s.name for s in sources}
        usable = [
            ("dns" if s.name == "resolve" else s.name, s)
            for s in sources
            if s.name in ("files", "dns") or (s.name == "resolve" and "dns" not in names)
        ]
        return usable or [("files", _PLAIN), ("dns", _PLAIN)]

    def _files4(self, name: bytes) -> _Found:
        data = self.hosts.data
        if data.missing:
            return _Found(_UNAVAIL, NO_DATA, [])
        found = data.lookup(name, AF_UNSPEC, multi=self.hosts.multi)
        if found is None:
            return _Found(_NOTFOUND, HOST_NOT_FOUND, [])
        return _Found(_SUCCESS, 0, list(found.addresses), found.canonical_name)

    def _files3(self, name: bytes, family: int) -> _Found:
        data = self.hosts.data
        if data.missing:
            return _Found(_UNAVAIL, HOST_NOT_FOUND, [])
        found = data.lookup(name, family, multi=self.hosts.multi)
        if found is None:
            return _Found(_NOTFOUND, HOST_NOT_FOUND, [])
        return _Found(_SUCCESS, 0, list(found.addresses), found.canonical_name, found.aliases)

    def _dns(self, name: bytes, family: int) -> _Found:
        try:
            answers = self.resolver.lookup_addresses(name, family)
        except NameNotFound as exc:
            return _Found(_NOTFOUND, _not_found_h_errno(exc, family), [])
        except TemporaryFailure:
            return _Found(_TRYAGAIN, TRY_AGAIN, [])
        except InvalidName as exc:
            kept = exc.reason.startswith("character")
            return _Found(_NOTFOUND, _invalid_h_errno(exc), [], h_errno_kept=kept)
        addresses: list[tuple[int, bytes]] = []
        for answer in answers:
            af = AF_INET if answer.rdtype == "A" else AF_INET6
            for text in answer.addresses:
                try:
                    addresses.append((af, socket.inet_pton(af, text)))
                except OSError:  # pragma: no cover - the resolver returns valid rdata
                    continue
        if not addresses:
            return _Found(_NOTFOUND, NO_DATA, [])
        first = answers[0]
        if first.canonical_name.lower() == first.name.lower():
            canon = _typed_name(name, first.name)
        else:
            canon = _strip_dot(first.canonical_name).encode("ascii", "replace")
        return _Found(_SUCCESS, 0, addresses, canon, (), tuple(answers))

    def _module4(self, module: str, name: bytes) -> _Found:
        return self._files4(name) if module == "files" else self._dns(name, AF_UNSPEC)

    def _module3(self, module: str, name: bytes, family: int) -> _Found:
        return self._files3(name, family) if module == "files" else self._dns(name, family)

    def _gethostbyname2(self, name: bytes) -> tuple[_Found, bool]:
        """glibc's ``gethostbyname2_r(name, AF_INET)`` over the NSS chain.

        Returns the last module's answer and whether digits-dots handled the name.
        """
        handled, packed = _digits_dots(name)
        if handled:
            if packed is None:
                return _Found(_NOTFOUND, HOST_NOT_FOUND, []), True
            return _Found(_SUCCESS, 0, [(AF_INET, packed)], name), True
        found = _Found(_UNAVAIL, HOST_NOT_FOUND, [])
        for module, source in self._sources():
            found = self._module3(module, name, AF_INET)
            if source.action(found.status) == "return":
                break
        return found, False

    def _lookup(self, name: bytes, family: int, flags: int) -> _Outcome:
        """The name part of glibc's ``gaih_inet`` for a non-numeric name."""
        if family == AF_INET and not flags & AI_CANONNAME:
            found, _ = self._gethostbyname2(name)
            if found.status == _SUCCESS and found.addresses:
                addresses = [(AF_INET, packed, 0) for _, packed in found.addresses]
                return _Outcome(addresses, None, False, _expiry(found.answers))
            if found.status in (_SUCCESS, _NOTFOUND, _UNAVAIL):
                raise _GaiError(EAI_NODATA if found.h_errno == NO_DATA else EAI_NONAME)
            raise _GaiError(EAI_AGAIN if found.h_errno == TRY_AGAIN else EAI_NODATA)

        no_data = no_inet6_data = 0
        status = inet6_status = _UNAVAIL
        res = _Result()
        for module, source in self._sources():
            res = _Result()  # gaih_result_reset: a module's results replace the last's
            no_data = 0
            if family == AF_UNSPEC:
                found = self._module4(module, name)
                status = found.status
                res.answers.extend(found.answers)
                if status == _SUCCESS:
                    if flags & AI_CANONNAME:
                        res.canon = found.canon
                    res.at = [(af, packed, 0) for af, packed in found.addresses]
                    no_data = 0 if res.at else 1
                else:
                    no_data = _no_data(found.h_errno)
                no_inet6_data = no_data
            else:
                if family == AF_INET6:
                    status, no_data = self._gethosts(module, name, AF_INET6, family, flags, res)
                    no_inet6_data, inet6_status = no_data, status
                if family == AF_INET or (
                    family == AF_INET6
                    and flags & AI_V4MAPPED
                    and (flags & AI_ALL or not res.got_ipv6)
                ):
                    status, no_data = self._gethosts(module, name, AF_INET, family, flags, res)
                    if family == AF_INET:
                        no_inet6_data, inet6_status = no_data, status
                if _SUCCESS in (inet6_status, status):
                    if flags & AI_CANONNAME and res.canon is None:
                        res.canon = name  # getcanonname() returns a copy of the name
                    status = _SUCCESS
                elif inet6_status == _TRYAGAIN:
                    status = _TRYAGAIN
                elif status == _UNAVAIL and inet6_status != _UNAVAIL:
                    status = inet6_status
            if source.action(status) == "return":
                break
        if no_data and no_inet6_data:
            raise _GaiError(
                EAI_AGAIN if no_data == EAI_AGAIN and no_inet6_data == EAI_AGAIN else EAI_NODATA
            )
        if not res.at:
            raise _GaiError(EAI_NONAME)
        return _Outcome(res.at, res.canon, res.got_ipv6, _expiry(res.answers))

    def _gethosts(
        self, module: str, name: bytes, af: int, family: int, flags: int, res: _Result
    ) -> tuple[str, int]:
        """glibc's ``gethosts``: one family from one module into ``res``.

        Returns the module's status and the ``no_data`` value.
        """
        found = self._module3(module, name, af)
        res.answers.extend(found.answers)
        if found.status != _SUCCESS:
            return found.status, _no_data(found.h_errno)
        if found.addresses:
            res.got_ipv6 = af == AF_INET6
            for fam, packed in found.addresses:
                if fam == AF_INET and family == AF_INET6:
                    res.at.append((AF_INET6, _MAPPED_PREFIX + packed, 0))
                else:
                    res.at.append((fam, packed, 0))
        if flags & AI_CANONNAME and res.canon is None and found.canon is not None:
            res.canon = found.canon
        return found.status, 0

    # -- gethostbyname ----------------------------------------------------------------

    def _setipaddr(self, name: bytes) -> str:
        """CPython's ``setipaddr(name, ..., AF_INET)``: the first IPv4 address."""
        if not name:
            dgram = int(socket.SOCK_DGRAM)
            key = (None, b"0", AF_INET, dgram, 0, AI_PASSIVE)
            rows = self._cached_resolve(key, None, b"0", AF_INET, dgram, 0, AI_PASSIVE)
            return str(rows[0][4][0])
        if name in (b"255.255.255.255", b"<broadcast>"):
            return "255.255.255.255"
        try:
            return socket.inet_ntop(
                socket.AF_INET, socket.inet_pton(socket.AF_INET, name.decode("ascii"))
            )
        except (OSError, UnicodeDecodeError):
            pass
        # The same question as getaddrinfo(name, None, AF_INET) with a bytes host.
        rows = self._cached_resolve((name, None, AF_INET, 0, 0, 0), name, None, AF_INET, 0, 0, 0)
        return str(rows[0][4][0])

    def gethostbyname(self, hostname: Any, /) -> str:
        """:func:`socket.gethostbyname`, answered by safedns."""
        name = _hostname_arg(hostname, "gethostbyname")
        sys.audit("socket.gethostbyname", hostname)
        self._check_files(self._clock())
        return self._setipaddr(name)

    def gethostbyname_ex(self, hostname: Any, /) -> tuple[str, list[str], list[str]]:
        """:func:`socket.gethostbyname_ex`, answered by safedns."""
        name = _hostname_arg(hostname, "gethostbyname_ex")
        sys.audit("socket.gethostbyname", hostname)
        self._check_files(self._clock())
        self._setipaddr(name)
        found, handled = self._gethostbyname2(name)
        if found.status != _SUCCESS or not found.addresses:
            if found.status == _SUCCESS:
                raise host_error(NO_DATA)
            raise host_error(_thread_h_errno() if found.h_errno_kept else found.h_errno)
        h_name = found.canon if found.canon is not None else name
        aliases = list(found.aliases)
        if not handled and found.answers:
            h_name, aliases = self._dns_aliases(name, found.answers[0], found.canon)
        return (
            os.fsdecode(h_name),
            [alias.decode("utf-8") for alias in aliases],
            [socket.inet_ntop(socket.AF_INET, packed) for _, packed in found.addresses],
        )

    def _dns_aliases(
        self, name: bytes, answer: Answer, canon: bytes | None
    ) -> tuple[bytes, list[bytes]]:
        """h_name and aliases as glibc's DNS module reports them: the CNAME owners."""
        h_name = canon if canon is not None else name
        if not answer.aliases:
            return h_name, []
        aliases = [_typed_name(name, answer.name)]
        aliases.extend(
            _strip_dot(owner).encode("ascii", "replace") for owner in answer.aliases[1:]
        )
        return h_name, aliases


def _expiry(answers: Sequence[Answer]) -> float:
    return min((a.expires for a in answers), default=math.inf)


# --------------------------------------------------------------------------- module level

_default: AddrInfo | None = None
_default_lock = threading.Lock()


def default_addrinfo() -> AddrInfo:
    """The process-wide :class:`AddrInfo`, on a ``Resolver()`` created on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = AddrInfo()
    return _default


def _set_default(addrinfo: AddrInfo | None) -> AddrInfo | None:
    """Replace the process-wide instance (for tests); returns the previous one."""
    global _default
    with _default_lock:
        previous, _default = _default, addrinfo
    return previous


def getaddrinfo(
    host: Any,
    port: Any,
    family: Any = 0,
    type: Any = 0,  # the standard library's name
    proto: Any = 0,
    flags: Any = 0,
) -> list[AddrInfoTuple]:
    """:func:`socket.getaddrinfo` with the same results and errors, answered by safedns
    (the hosts file, then the default resolver)."""
    return (_default or default_addrinfo()).getaddrinfo(host, port, family, type, proto, flags)


def gethostbyname(hostname: Any, /) -> str:
    """:func:`socket.gethostbyname`, answered by safedns."""
    return (_default or default_addrinfo()).gethostbyname(hostname)


def gethostbyname_ex(hostname: Any, /) -> tuple[str, list[str], list[str]]:
    """:func:`socket.gethostbyname_ex`, answered by safedns."""
    return (_default or default_addrinfo()).gethostbyname_ex(hostname)


def _reinit_after_fork() -> None:
    global _service_lock, _default_lock
    _service_lock = threading.Lock()
    _default_lock = threading.Lock()
    for instance in list(_instances):
        instance._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
