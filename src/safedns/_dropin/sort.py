"""glibc's destination address sort (RFC 3484 with ``/etc/gai.conf``), pure but for the
source address the kernel picks for each destination (a ``connect``ed UDP socket,
injectable) and the interface type read for rule 7.

``msort`` is glibc 2.36's ``qsort`` (a top-down merge sort), so ties break the same way.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from safedns._dropin.arguments import strtoul
from safedns._dropin.constants import (
    AF_INET,
    AF_INET6,
    AF_UNSPEC,
    LOOPBACK4,
    LOOPBACK6,
    MAPPED_PREFIX,
)
from safedns._dropin.interfaces import IN6AI_DEPRECATED, IN6AI_HOMEADDRESS, Interfaces, native

__all__ = [
    "DEFAULT_LABELS",
    "DEFAULT_PRECEDENCE",
    "DEFAULT_SCOPES",
    "Dest",
    "GaiConf",
    "gai_conf",
    "msort",
    "parse_gai_conf",
    "rfc3484_sort",
]

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


def msort(items: list[Any], cmp: Callable[[Any, Any], int]) -> list[Any]:
    """glibc 2.36's ``qsort`` (``msort_with_tmp``): a top-down merge sort."""
    n = len(items)
    if n <= 1:
        return list(items)
    n1 = n // 2
    left = msort(items[:n1], cmp)
    right = msort(items[n1:], cmp)
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
        value, end = strtoul(bits_text.encode())
        if end != len(bits_text):
            return None
        bits = value
    number, end = strtoul(val2.encode())
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
            number, end2 = strtoul(val2.encode())
            if end2 != len(val2) or number > 0x7FFFFFFF:
                continue
            try:
                packed = _v6(addr)
                base = 128
                if not packed.startswith(MAPPED_PREFIX):
                    continue
            except OSError:
                try:
                    packed = MAPPED_PREFIX + socket.inet_pton(socket.AF_INET, addr)
                except OSError:
                    continue
                base = 32
            bits = base
            if slash:
                bits, end = strtoul(bits_text.encode())
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
        return tuple(msort(entries, lambda a, b: (b[1] > a[1]) - (b[1] < a[1])))

    scope_table: tuple[_Scope, ...] = DEFAULT_SCOPES
    if scopes:
        if not any(mask == 0 for _, mask, _ in scopes):
            scopes.append((0, 0, 14))
        # glibc compares the netmasks as stored, in network byte order.
        scope_table = tuple(
            msort(
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
            if (packed[0] == 0xFE and packed[1] & 0xC0 == 0x80) or packed == LOOPBACK6:
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
    return packed if family == AF_INET6 else MAPPED_PREFIX + packed


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


Dest: TypeAlias = "tuple[int, bytes, int, int]"  # family, packed, scope_id, port


def rfc3484_sort(
    dests: Sequence[Dest],
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
    last: Dest | None = None
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
                    key = MAPPED_PREFIX + (LOOPBACK4 if src_packed[0] == 127 else src_packed)
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

    def native_of(index: int) -> int:
        if index not in natives:
            natives[index] = native(index)
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
            n1, n2 = native_of(a1.ifindex), native_of(a2.ifindex)
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

    return [item.index for item in msort(items, compare)]
