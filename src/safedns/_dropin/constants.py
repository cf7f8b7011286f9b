"""The C constants of glibc's ``getaddrinfo`` world (``netdb.h``), by their C names.

``EAI_*`` results, ``h_errno`` values, the ``AI_*`` flags glibc accepts, and the
addresses the emulation builds (the v4-mapped prefix, loopback and any).
"""

from __future__ import annotations

import socket
from typing import Any, Final, TypeAlias

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

# h_errno values (netdb.h) and hstrerror's messages.
NETDB_INTERNAL: Final = -1
HOST_NOT_FOUND: Final = 1
TRY_AGAIN: Final = 2
NO_RECOVERY: Final = 3
NO_DATA: Final = 4
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
ALLOWED_FLAGS: Final = 0x07FF

MAPPED_PREFIX: Final = bytes(10) + b"\xff\xff"
LOOPBACK6: Final = bytes(15) + b"\x01"
ANY6: Final = bytes(16)
LOOPBACK4: Final = b"\x7f\x00\x00\x01"
ANY4: Final = bytes(4)
