"""Which addresses this host has, as glibc's ``__check_pf`` sees them (for
``AI_ADDRCONFIG`` and the RFC 3484 sort): an ``RTM_GETADDR`` dump over netlink, cached
for a second, and whether an interface is a tunnel (``__check_native``)."""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass
from typing import Final

from safedns._dropin.constants import AF_INET, AF_INET6, LOOPBACK4, LOOPBACK6, MAPPED_PREFIX

__all__ = ["IN6AI_DEPRECATED", "IN6AI_HOMEADDRESS", "Interfaces", "interfaces", "native"]

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
            if address != LOOPBACK4:
                seen4 = True
            key = MAPPED_PREFIX + address[:4]
        else:
            if address != LOOPBACK6:
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


def native(index: int) -> int:
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
