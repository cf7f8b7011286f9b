"""Resolver configuration: the :class:`ResolverConfig` value object.

A :class:`ResolverConfig` is immutable and validated once, in ``__post_init__``;
every other module can rely on its fields being in range.  It is built either
directly (``ResolverConfig(nameservers=["10.0.0.2"], ndots=2)``) or from the
system configuration with :meth:`ResolverConfig.from_system`, which reads
``/etc/resolv.conf`` the way glibc 2.36 (``resolv/res_init.c``) does, then applies
glibc's ``LOCALDOMAIN`` and ``RES_OPTIONS`` environment variables, then safedns's
own ``SAFEDNS_*`` variables, then explicit keyword overrides.

Deliberate differences from glibc, all where glibc's own result is a resolver
that cannot work or a value our fields cannot hold:

* ``attempts:0`` (or a negative number) makes glibc send no query at all; here it
  becomes 1 attempt.
* ``timeout:0`` (or a negative number) is used by glibc's ``res_send`` as a
  1-second timeout; here it is stored as ``timeout=1.0``, which is the same.
* Search-list entries that are not valid domain names (for example with a stray
  carriage return from a CRLF file, or the root ``.``) are dropped.  glibc keeps
  them and sends queries that cannot succeed.  Whether glibc *had* a search list
  still decides whether the host name's domain is used as a fallback.
* A link-local IPv6 nameserver's ``%scope`` is kept as written; glibc keeps it only
  if the interface exists on this machine, which a config object cannot know.

Faithful quirks worth knowing: ``nameserver`` lines of a CRLF file are ignored
(``"10.0.0.1\\r"`` is not an address to glibc), legacy ``inet_aton`` forms such as
``127.1`` or ``010.0.0.1`` (octal: 8.0.0.1) are accepted, and option numbers go
through C ``atoi`` (``ndots:x`` is 0, ``ndots: 4`` is 4, ``ndots:-1`` is 15).
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import ipaddress
import math
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypedDict

from safedns._inet import inet_aton_exact
from safedns._planning import DEFAULT_EXTERNAL_TLDS

__all__ = ["ResolverConfig", "parse_nameserver"]

#: Where glibc reads its configuration from (``_PATH_RESCONF``).
_DEFAULT_RESOLV_CONF = "/etc/resolv.conf"

# glibc limits (resolv/resolv.h).
_MAXNS = 3  # name servers used from resolv.conf
_RES_MAXNDOTS = 15
_RES_MAXRETRANS = 30  # seconds, clamp for "timeout:"
_RES_MAXRETRY = 5  # clamp for "attempts:"
_RES_TIMEOUT = 5  # default timeout, seconds
_RES_DFLRETRY = 2  # default attempts
_DNS_PORT = 53

# fopen() errors glibc treats as "no resolv.conf" (__resolv_conf_load).
_IGNORED_OPEN_ERRORS = frozenset(
    {errno.EACCES, errno.EISDIR, errno.ELOOP, errno.ENOENT, errno.ENOTDIR, errno.EPERM}
)

_C_SPACE = " \t\n\v\f\r"  # isspace() in the C locale
_DIGITS = "0123456789"


# ---------------------------------------------------------------- nameservers


class _HasAddress(Protocol):
    """Anything with a ``(host, port)`` ``.address``, such as the embedded test server."""

    @property
    def address(self) -> tuple[Any, ...]: ...


#: What ``ResolverConfig(nameservers=...)`` accepts for one server.
_NameserverSpec: TypeAlias = "str | tuple[Any, ...] | _HasAddress"


def _format_server(host: str, port: int) -> str:
    """``"host:port"``, or ``"[v6]:port"`` when *host* is an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _canonical_ip(text: str, *, allow_v4: bool = True, allow_v6: bool = True) -> str:
    """Return *text* as a canonical IP address string, or raise ValueError."""
    if allow_v4 and ":" not in text:
        return str(ipaddress.IPv4Address(text))
    if allow_v6 and ":" in text:
        return str(ipaddress.IPv6Address(text))
    raise ValueError("not an IP address")


def _split_server(text: str) -> tuple[str, int]:
    """``(canonical host, port)`` for *text*, or ValueError with the reason."""
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ValueError("missing ']'")
        host = _canonical_ip(text[1:close], allow_v4=False)
        rest = text[close + 1 :]
        if not rest:
            return host, _DNS_PORT
        if not rest.startswith(":"):
            raise ValueError("expected ':port' after ']'")
        return host, _parse_port(rest[1:])
    colons = text.count(":")
    if colons == 0:
        return _canonical_ip(text, allow_v6=False), _DNS_PORT
    if colons == 1:
        host_text, _, port_text = text.partition(":")
        return _canonical_ip(host_text, allow_v6=False), _parse_port(port_text)
    return _canonical_ip(text, allow_v4=False), _DNS_PORT


def _parse_port(text: str) -> int:
    if not text or not text.isascii() or not text.isdecimal():
        raise ValueError(f"port {text!r} is not a number")
    port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port must be between 1 and 65535, got {port}")
    return port


def parse_nameserver(text: str) -> tuple[str, int]:
    """Split a nameserver string into ``(host, port)``.

    Accepted forms: ``"1.2.3.4"``, ``"1.2.3.4:5353"``, ``"::1"``, ``"[::1]"``,
    ``"[::1]:5353"``, and IPv6 with a zone (``"fe80::1%eth0"``,
    ``"[fe80::1%eth0]:5353"``).  The port defaults to 53 and must be 1..65535.
    The host must be an IP address literal (no host names) and is returned in
    canonical form (``"0:0::1"`` becomes ``"::1"``); an IPv6 zone is kept.

    Raises ValueError, naming ``nameservers``, for anything else.
    """
    if not isinstance(text, str):
        raise ValueError(f"nameservers: expected a str, got {type(text).__name__} {text!r}")
    try:
        return _split_server(text)
    except ValueError as exc:
        raise ValueError(
            f"nameservers: invalid nameserver {text!r} (expected 'ip', 'ip:port' or "
            f"'[ipv6]:port'): {exc}"
        ) from None


def _host_port_to_server(value: tuple[Any, ...], what: str) -> str:
    """Turn ``(host, port)`` (or a 4-tuple IPv6 socket address) into ``"host:port"``."""
    if len(value) not in (2, 4):
        raise ValueError(f"nameservers: {what} must be a (host, port) tuple, got {value!r}")
    host, port = value[0], value[1]
    if not isinstance(host, str):
        raise ValueError(f"nameservers: host in {what} {value!r} must be a str")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ValueError(f"nameservers: port in {what} {value!r} must be an int in 1..65535")
    if len(value) == 4 and isinstance(value[3], int) and value[3] and "%" not in host:
        host = f"{host}%{value[3]}"  # (host, port, flowinfo, scope_id) from AF_INET6
    try:
        canonical = _canonical_ip(host)
    except ValueError:
        raise ValueError(f"nameservers: host in {what} {value!r} is not an IP address") from None
    return _format_server(canonical, port)


def _normalise_nameserver(value: object) -> str:
    if isinstance(value, str):
        parse_nameserver(value)
        return value
    if isinstance(value, tuple):
        return _host_port_to_server(value, "nameserver tuple")
    address = getattr(value, "address", None)
    if isinstance(address, tuple):
        return _host_port_to_server(address, f"{type(value).__name__}.address")
    raise ValueError(
        "nameservers: each entry must be a str, a (host, port) tuple or an object with an "
        f".address (host, port) tuple, got {type(value).__name__} {value!r}"
    )


# ---------------------------------------------------------------- domains


def _normalise_domain(value: object, field: str) -> str:
    """Lower-case *value* and strip leading/trailing dots; raise ValueError if invalid."""
    if not isinstance(value, str):
        raise ValueError(f"{field}: expected a domain name str, got {type(value).__name__}")
    name = value.strip(".").lower()
    if not name:
        raise ValueError(f"{field}: {value!r} is empty (the root is not allowed)")
    if not name.isascii():
        raise ValueError(f"{field}: {value!r} is not ASCII (use the IDNA 'xn--' form)")
    if any(not 33 <= ord(ch) <= 126 for ch in name):
        raise ValueError(f"{field}: {value!r} contains whitespace or control characters")
    if len(name) > 253:
        raise ValueError(f"{field}: {value!r} is longer than 253 characters")
    for label in name.split("."):
        if not label:
            raise ValueError(f"{field}: {value!r} has an empty label")
        if len(label) > 63:
            raise ValueError(f"{field}: {value!r} has a label longer than 63 characters")
    return name


def _normalise_tld(value: object) -> str:
    """A top-level domain as one lower-case label of letters, digits and hyphens."""
    name = _normalise_domain(value, "external_tlds")
    if not all(ch.isalnum() or ch == "-" for ch in name):
        raise ValueError(f"external_tlds: {value!r} is not one label (letters, digits, '-')")
    return name


def _as_tuple(value: object, field: str) -> tuple[object, ...]:
    if isinstance(value, (str, bytes)):
        raise ValueError(
            f"{field} must be a sequence of entries, not a single {type(value).__name__}; "
            f"use ({value!r},)"
        )
    if not isinstance(value, Iterable):
        raise ValueError(f"{field} must be a tuple or list, got {type(value).__name__}")
    return tuple(value)


# ---------------------------------------------------------------- numbers


def _check_int(field: str, value: object, low: int, high: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{field} must be an int, got {type(value).__name__} {value!r}")
    if high is not None and not low <= value <= high:
        raise ValueError(f"{field} must be between {low} and {high}, got {value}")
    if value < low:
        raise ValueError(f"{field} must be >= {low}, got {value}")
    return int(value)


def _check_number(field: str, value: object, *, positive: bool = False) -> float:
    """Validate a finite, non-negative (or, with *positive*, > 0) real number."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"{field} must be a number, got {type(value).__name__} {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{field} must be finite, got {value!r}")
    if positive and number <= 0:
        raise ValueError(f"{field} must be > 0, got {value!r}")
    if number < 0:
        raise ValueError(f"{field} must be >= 0, got {value!r}")
    return number


def _check_bool(field: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{field} must be a bool, got {type(value).__name__} {value!r}")
    return value


# ---------------------------------------------------------------- the config


@dataclass(frozen=True, kw_only=True)
class ResolverConfig:
    """Immutable, validated resolver settings.  All durations are in seconds.

    Tuple fields also accept lists (or any iterable except a str); they are
    stored as tuples.  Domain names (``search``, ``cluster_domain``,
    ``internal_suffixes``, ``external_tlds``) are stored lower case without
    leading or trailing dots.  Every invalid value raises ValueError naming the field.
    """

    #: Upstream servers, tried in order: ``"ip"``, ``"ip:port"`` or ``"[v6]:port"``
    #: (port 53 by default).  ``(host, port)`` tuples and objects with an
    #: ``.address`` ``(host, port)`` tuple are converted to ``"host:port"``.
    #: At least one is required.
    nameservers: tuple[str, ...] = ("127.0.0.1",)
    #: Search list appended to names with fewer than ``ndots`` dots; () = none.
    search: tuple[str, ...] = ()
    #: A name with at least this many dots is tried as-is first.  0..15.
    ndots: int = 1
    #: Seconds to wait for one answer from one server; > 0.
    timeout: float = 5.0
    #: Rounds over the server list before giving up; >= 1.
    attempts: int = 2
    #: Start each query at the next server (round robin) instead of the first.
    rotate: bool = False
    #: glibc's ``single-request``: send A first and AAAA only after A's answer,
    #: instead of both at once (each on its own socket either way).
    single_request: bool = False
    #: glibc's ``use-vc``: every query over TCP, none over UDP.
    use_vc: bool = False
    #: glibc's ``no-aaaa``: no AAAA query at all; address lookups return IPv4
    #: only, and asking for AAAA answers "no data" without a query.
    no_aaaa: bool = False
    #: Cluster DNS domain such as ``"cluster.local"``; None = derive it from the
    #: search list (done by the resolver, not here).
    cluster_domain: str | None = None
    #: Names under these suffixes are never treated as external; () = none.
    internal_suffixes: tuple[str, ...] = ()
    #: Last labels that make a name with one or two dots (``service.namespace``)
    #: external; other such names walk the search list first (docs/planning.md).
    external_tlds: tuple[str, ...] = DEFAULT_EXTERNAL_TLDS
    #: Ask clearly external names as-is first; False = glibc's exact order.
    external_first: bool = True
    #: Capacity of the positive cache, in entries; >= 1.
    max_entries: int = 10_000
    #: Capacity of the negative cache, in entries; >= 1.
    max_negative_entries: int = 2_000
    #: Lower bound applied to answer TTLs, seconds; 0 = no lower bound.
    min_ttl: float = 0
    #: Upper bound applied to answer TTLs, seconds; must be >= ``min_ttl``.
    max_ttl: float = 3600
    #: Upper bound for caching NXDOMAIN/NODATA (from the SOA), seconds; 0 = no
    #: negative caching.
    max_negative_ttl: float = 300
    #: Seconds to cache a negative answer that carries no SOA; 0 = do not cache.
    negative_ttl_no_soa: float = 5
    #: Seconds an expired entry is kept for serve-stale; 0 = serve-stale off.
    stale_ttl: float = 86400
    #: TTL, in seconds, given to answers served from stale data.
    stale_answer_ttl: float = 30
    #: Seconds to wait for upstream before answering from stale data; 0 = answer
    #: from stale data immediately (and refresh in the background).
    stale_response_timeout: float = 1.8
    #: After a failed refresh, seconds before upstream is asked again for that
    #: name while stale data is served; 0 = ask again on every lookup.
    failure_recheck: float = 30
    #: Refresh popular entries shortly before they expire.
    prefetch: bool = True
    #: Prefetch when less than this fraction of the original TTL remains; 0 < r < 1.
    prefetch_ratio: float = 0.1
    #: Sustained upstream query budget, queries per second; > 0.
    upstream_qps: float = 100
    #: Upstream burst allowance, queries; >= 1.
    upstream_burst: int = 200
    #: Seconds a lookup the budget denies may wait for a token (in arrival
    #: order) before it fails; never longer than the lookup's own timeout;
    #: 0 = fail at once. 2 s lets a burst of three times ``upstream_burst``
    #: through at ``upstream_qps = upstream_burst`` (the 30-thread case).
    budget_wait: float = 2.0
    #: Seconds a timed-out nameserver is skipped while others answer; 0 = never skip.
    server_backoff: float = 30

    if TYPE_CHECKING:
        # What __init__ accepts before __post_init__ normalises it; the dataclass
        # machinery keeps a class-defined __init__, so this exists for type checkers only.
        def __init__(
            self,
            *,
            nameservers: Iterable[_NameserverSpec] = ...,
            search: Iterable[str] = ...,
            ndots: int = ...,
            timeout: float = ...,
            attempts: int = ...,
            rotate: bool = ...,
            single_request: bool = ...,
            use_vc: bool = ...,
            no_aaaa: bool = ...,
            cluster_domain: str | None = ...,
            internal_suffixes: Iterable[str] = ...,
            external_tlds: Iterable[str] = ...,
            external_first: bool = ...,
            max_entries: int = ...,
            max_negative_entries: int = ...,
            min_ttl: float = ...,
            max_ttl: float = ...,
            max_negative_ttl: float = ...,
            negative_ttl_no_soa: float = ...,
            stale_ttl: float = ...,
            stale_answer_ttl: float = ...,
            stale_response_timeout: float = ...,
            failure_recheck: float = ...,
            prefetch: bool = ...,
            prefetch_ratio: float = ...,
            upstream_qps: float = ...,
            upstream_burst: int = ...,
            budget_wait: float = ...,
            server_backoff: float = ...,
        ) -> None: ...

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)

        servers = tuple(
            _normalise_nameserver(s) for s in _as_tuple(self.nameservers, "nameservers")
        )
        if not servers:
            raise ValueError("nameservers must contain at least one server")
        set_("nameservers", servers)

        set_(
            "search",
            tuple(_normalise_domain(d, "search") for d in _as_tuple(self.search, "search")),
        )
        if self.cluster_domain is not None:
            set_("cluster_domain", _normalise_domain(self.cluster_domain, "cluster_domain"))
        set_(
            "internal_suffixes",
            tuple(
                _normalise_domain(d, "internal_suffixes")
                for d in _as_tuple(self.internal_suffixes, "internal_suffixes")
            ),
        )
        tlds = (_normalise_tld(t) for t in _as_tuple(self.external_tlds, "external_tlds"))
        set_("external_tlds", tuple(dict.fromkeys(tlds)))
        set_("external_first", _check_bool("external_first", self.external_first))

        set_("ndots", _check_int("ndots", self.ndots, 0, _RES_MAXNDOTS))
        set_("timeout", _check_number("timeout", self.timeout, positive=True))
        set_("attempts", _check_int("attempts", self.attempts, 1))
        for flag in ("rotate", "single_request", "use_vc", "no_aaaa"):
            set_(flag, _check_bool(flag, getattr(self, flag)))
        set_("max_entries", _check_int("max_entries", self.max_entries, 1))
        set_(
            "max_negative_entries",
            _check_int("max_negative_entries", self.max_negative_entries, 1),
        )
        for name in (
            "min_ttl",
            "max_ttl",
            "max_negative_ttl",
            "negative_ttl_no_soa",
            "stale_ttl",
            "stale_answer_ttl",
            "stale_response_timeout",
            "failure_recheck",
            "server_backoff",
            "budget_wait",
        ):
            set_(name, _check_number(name, getattr(self, name)))
        if self.max_ttl < self.min_ttl:
            raise ValueError(
                f"max_ttl must be >= min_ttl, got max_ttl={self.max_ttl} min_ttl={self.min_ttl}"
            )
        set_("prefetch", _check_bool("prefetch", self.prefetch))
        ratio = _check_number("prefetch_ratio", self.prefetch_ratio)
        if not 0 < ratio < 1:
            raise ValueError(f"prefetch_ratio must be between 0 and 1 (exclusive), got {ratio}")
        set_("prefetch_ratio", ratio)
        set_("upstream_qps", _check_number("upstream_qps", self.upstream_qps, positive=True))
        set_("upstream_burst", _check_int("upstream_burst", self.upstream_burst, 1))

        # Prime the cached_property so servers() never re-parses.
        self.__dict__["_server_pairs"] = tuple(parse_nameserver(s) for s in servers)

    @functools.cached_property
    def _server_pairs(self) -> tuple[tuple[str, int], ...]:
        return tuple(parse_nameserver(s) for s in self.nameservers)

    def servers(self) -> tuple[tuple[str, int], ...]:
        """The nameservers as ``(canonical ip, port)`` pairs, in configured order."""
        return self._server_pairs

    def replace(self, **changes: Any) -> ResolverConfig:
        """A copy with *changes* applied (validated like a new instance)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_system(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> ResolverConfig:
        """Build a config the way glibc 2.36 configures its stub resolver.

        Order of precedence, lowest first:

        1. glibc defaults: nameserver 127.0.0.1, ndots 1, timeout 5, attempts 2.
        2. The resolv.conf file at *path*; if *path* is None,
           ``environ["SAFEDNS_RESOLV_CONF"]`` when set and non-empty, else
           ``/etc/resolv.conf``.  A missing or unreadable file (including a
           directory) means "no file", as in glibc; other I/O errors propagate.
           Without ``search``/``domain`` the search list is the host name's
           domain (the part after its first dot), if it has one.
        3. ``LOCALDOMAIN`` (replaces the search list) and ``RES_OPTIONS`` (same
           syntax as ``options``), as glibc applies them.
        4. ``SAFEDNS_NAMESERVERS`` (comma-separated), ``SAFEDNS_SEARCH``
           (space-separated; empty = no search list), ``SAFEDNS_NDOTS``
           (integer 0..15) and ``SAFEDNS_EXTERNAL_FIRST`` (1/0, true/false,
           yes/no, on/off; empty = unset).  An invalid value raises ValueError
           naming the variable.
        5. *overrides*: any field of :class:`ResolverConfig`.

        *environ* defaults to ``os.environ``; pass a dict to isolate from it.
        """
        env: Mapping[str, str] = os.environ if environ is None else environ
        if path is None:
            path = env.get("SAFEDNS_RESOLV_CONF") or _DEFAULT_RESOLV_CONF

        text: str | None
        try:
            with open(path, "rb") as fh:
                text = fh.read().decode("utf-8", "surrogateescape")
        except OSError as exc:
            if exc.errno not in _IGNORED_OPEN_ERRORS:
                raise
            text = None

        try:
            hostname = socket.gethostname()
        except OSError:
            hostname = ""

        kwargs: dict[str, Any] = dict(
            _parse_resolv_conf(
                text,
                localdomain=env.get("LOCALDOMAIN"),
                res_options=env.get("RES_OPTIONS"),
                hostname=hostname,
            )
        )
        kwargs.update(_safedns_env_overrides(env))
        kwargs.update(overrides)
        return cls(**kwargs)


# ---------------------------------------------------------------- SAFEDNS_* env


_FLAGS = {"1": True, "true": True, "yes": True, "on": True}
_FLAGS.update({"0": False, "false": False, "no": False, "off": False})


def _safedns_env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """The fields set by ``SAFEDNS_NAMESERVERS``, ``_SEARCH``, ``_NDOTS``, ``_EXTERNAL_FIRST``."""
    out: dict[str, Any] = {}

    raw = env.get("SAFEDNS_NAMESERVERS")
    if raw is not None:
        servers = [item.strip() for item in raw.split(",") if item.strip()]
        if not servers:
            raise ValueError("SAFEDNS_NAMESERVERS is set but names no nameserver")
        for server in servers:
            try:
                parse_nameserver(server)
            except ValueError as exc:
                raise ValueError(f"SAFEDNS_NAMESERVERS: {exc}") from None
        out["nameservers"] = tuple(servers)

    raw = env.get("SAFEDNS_SEARCH")
    if raw is not None:
        try:
            out["search"] = tuple(_normalise_domain(d, "search") for d in raw.split())
        except ValueError as exc:
            raise ValueError(f"SAFEDNS_SEARCH: {exc}") from None

    raw = env.get("SAFEDNS_NDOTS")
    if raw is not None:
        text = raw.strip()
        if not (text.isascii() and text.isdecimal()):
            raise ValueError(f"SAFEDNS_NDOTS must be an integer 0..{_RES_MAXNDOTS}, got {raw!r}")
        ndots = int(text)
        if ndots > _RES_MAXNDOTS:
            raise ValueError(f"SAFEDNS_NDOTS must be between 0 and {_RES_MAXNDOTS}, got {ndots}")
        out["ndots"] = ndots

    raw = env.get("SAFEDNS_EXTERNAL_FIRST", "").strip().lower()
    if raw:
        if raw not in _FLAGS:
            raise ValueError(
                f"SAFEDNS_EXTERNAL_FIRST must be 1/0, true/false, yes/no or on/off, got {raw!r}"
            )
        out["external_first"] = _FLAGS[raw]

    return out


# ---------------------------------------------------------------- glibc parsing


class _GlibcSettings(TypedDict):
    nameservers: tuple[str, ...]
    search: tuple[str, ...]
    ndots: int
    timeout: float
    attempts: int
    rotate: bool
    single_request: bool
    use_vc: bool
    no_aaaa: bool


@dataclass
class _GlibcState:
    """The parts of glibc's ``struct resolv_conf`` that we use, as glibc holds them."""

    nameservers: list[str] = dataclasses.field(default_factory=list)
    search: list[str] = dataclasses.field(default_factory=list)  # raw, unvalidated
    ndots: int = 1
    retrans: int = _RES_TIMEOUT
    retry: int = _RES_DFLRETRY
    rotate: bool = False
    single_request: bool = False  # RES_SNGLKUP
    use_vc: bool = False  # RES_USEVC
    no_aaaa: bool = False  # RES_NOAAAA


def _atoi(text: str) -> int:
    """C ``atoi`` as glibc on LP64 implements it: ``(int) strtol(text, NULL, 10)``."""
    pos, end = 0, len(text)
    while pos < end and text[pos] in _C_SPACE:
        pos += 1
    negative = False
    if pos < end and text[pos] in "+-":
        negative = text[pos] == "-"
        pos += 1
    start = pos
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    if pos == start:
        return 0
    value = int(text[start:pos])
    value = -value if negative else value
    value = max(-(2**63), min(2**63 - 1, value))  # strtol saturates (ERANGE)
    value &= 0xFFFFFFFF  # the (int) conversion keeps the low 32 bits
    return value - 2**32 if value >= 2**31 else value


def _v6_scope(address: ipaddress.IPv6Address, scope: str) -> str:
    """The zone glibc would keep for *address* given ``%scope`` ("" = none).

    glibc (``__inet6_scopeid_pton``) resolves an interface name only for
    link-local and link/node-local multicast addresses, else accepts a decimal
    number up to 2**32-1; anything else is ignored.
    """
    packed = address.packed
    link_scoped = address.is_link_local or (packed[0] == 0xFF and (packed[1] & 0xF) in (1, 2))
    valid_ifname = 0 < len(scope) < 16 and all(
        33 <= ord(ch) <= 126 and ch not in "/%" for ch in scope
    )
    if link_scoped and valid_ifname and not scope.isdecimal():
        return scope
    if scope and all(ch in _DIGITS for ch in scope):
        number = int(scope)
        if 0 < number <= 0xFFFFFFFF:
            return str(number)
    return ""


def _glibc_nameserver(token: str) -> str | None:
    """Parse a ``nameserver`` value like glibc; return our server string or None."""
    if not token:
        return None
    v4 = inet_aton_exact(token)
    if v4 is not None:
        return v4
    addr_text, sep, scope = token.partition("%")
    if not addr_text:
        return None
    try:
        address = ipaddress.IPv6Address(addr_text)
    except ValueError:
        return None
    zone = _v6_scope(address, scope) if sep else ""
    return f"{address}%{zone}" if zone else str(address)


#: glibc 2.36's ``res_setoptions`` flag table (``resolv/res_init.c``), in its
#: order: each option and the ``_GlibcState`` field it sets ("" = accepted,
#: nothing to set here).
_FLAG_OPTIONS = (
    ("rotate", "rotate"),
    ("edns0", ""),
    ("single-request-reopen", ""),
    ("single-request", "single_request"),
    ("no_tld_query", ""),
    ("no-tld-query", ""),
    ("no-reload", ""),
    ("use-vc", "use_vc"),
    ("trust-ad", ""),
    ("no-aaaa", "no_aaaa"),
)


def _res_setoptions(state: _GlibcState, options: str) -> None:
    """glibc ``res_setoptions``: apply an ``options`` line or ``RES_OPTIONS``."""
    pos, end = 0, len(options)
    while pos < end:
        while pos < end and options[pos] in " \t":
            pos += 1
        if options.startswith("ndots:", pos):
            value = _atoi(options[pos + 6 :])
            # ndots is a 4-bit unsigned bitfield in struct __res_state.
            state.ndots = value & 0xF if value <= _RES_MAXNDOTS else _RES_MAXNDOTS
        elif options.startswith("timeout:", pos):
            value = _atoi(options[pos + 8 :])
            state.retrans = min(value, _RES_MAXRETRANS)
        elif options.startswith("attempts:", pos):
            value = _atoi(options[pos + 9 :])
            state.retry = min(value, _RES_MAXRETRY)
        else:
            # glibc's table, in its order; strncmp: each a prefix match. So
            # "single-request-reopen" never reaches "single-request" (it is
            # RES_SNGLKUPREOP, which a socket per query already provides).
            for option, flag in _FLAG_OPTIONS:
                if options.startswith(option, pos):
                    if flag:
                        setattr(state, flag, True)
                    break
        while pos < end and options[pos] not in " \t":
            pos += 1


def _first_token(text: str) -> str:
    """*text* up to its first space or tab (glibc's ``strpbrk(cp, " \\t\\n")``)."""
    return text.replace("\t", " ").split(" ", 1)[0]


def _split_blanks(text: str) -> list[str]:
    """The non-empty words of *text*, separated by spaces and tabs only."""
    return [word for word in text.replace("\t", " ").split(" ") if word]


def _keyword_rest(line: str, keyword: str) -> str | None:
    """glibc's MATCH(): *keyword* followed by a space or tab; returns the rest."""
    if line.startswith(keyword) and line[len(keyword) : len(keyword) + 1] in (" ", "\t"):
        return line[len(keyword) :].lstrip(" \t")
    return None


def _parse_resolv_conf(
    text: str | None,
    *,
    localdomain: str | None = None,
    res_options: str | None = None,
    hostname: str = "",
) -> _GlibcSettings:
    """Interpret resolv.conf *text* exactly as glibc 2.36's ``res_vinit_1``.

    *text* None means the file is missing or unreadable.  *localdomain* and
    *res_options* are the values of ``LOCALDOMAIN`` / ``RES_OPTIONS`` (None =
    unset).  *hostname* is what ``gethostname()`` returned ("" = unknown); its
    domain becomes the search list when nothing else sets one.  Pure: reads no
    files and no environment.  Returns :class:`ResolverConfig` keyword arguments.
    """
    state = _GlibcState()

    # LOCALDOMAIN is read first and makes glibc skip the file's search/domain.
    have_env = localdomain is not None
    if localdomain is not None:
        # glibc keeps the first (possibly empty) word, then every non-empty one.
        first, *others = localdomain.split("\n", 1)[0].replace("\t", " ").split(" ")
        state.search = [first, *(word for word in others if word)]

    # getline() splits on "\n" only; the newline itself changes nothing below.
    for raw_line in text.split("\n") if text else ():
        line = raw_line.split("\0", 1)[0]  # C strings end at NUL
        if not line or line[0] in ";#":
            continue
        rest = _keyword_rest(line, "domain")
        if rest is not None:
            if not have_env and rest:
                state.search = [_first_token(rest)]
            continue
        rest = _keyword_rest(line, "search")
        if rest is not None:
            if not have_env and rest:
                state.search = _split_blanks(rest)
            continue
        rest = _keyword_rest(line, "nameserver")
        if rest is not None:
            server = _glibc_nameserver(_first_token(rest))
            if server is not None:
                state.nameservers.append(server)
            continue
        rest = _keyword_rest(line, "options")
        if rest is not None:
            _res_setoptions(state, rest)

    if not state.nameservers:
        state.nameservers.append("127.0.0.1")
    if not state.search and "." in hostname:
        state.search = [hostname.split(".", 1)[1]]
    if res_options is not None:
        _res_setoptions(state, res_options)

    search: list[str] = []
    for entry in state.search:
        try:
            search.append(_normalise_domain(entry, "search"))
        except ValueError:
            continue  # glibc would send queries that cannot succeed; drop it
    return _GlibcSettings(
        nameservers=tuple(state.nameservers[:_MAXNS]),
        search=tuple(search),
        ndots=state.ndots,
        # res_send uses 1 second when retrans <= 0.
        timeout=float(state.retrans if state.retrans > 0 else 1),
        # glibc sends nothing with retry <= 0; we need at least one attempt.
        attempts=max(state.retry, 1),
        rotate=state.rotate,
        single_request=state.single_request,
        use_vc=state.use_vc,
        no_aaaa=state.no_aaaa,
    )
