"""The hosts file and the ``hosts:`` line of nsswitch.conf, read the way glibc reads them.

:class:`HostsFile` parses ``/etc/hosts`` with the rules of glibc 2.36's ``nss_files``
(``files-hosts.c``, ``files-parse.c``, ``nss_readline.c``):

- a line is read up to ``\\n``; a NUL ends it; everything from the first ``#`` is a comment;
- fields are separated by C whitespace (space, tab, ``\\v``, ``\\f``, ``\\r``); the first is
  the address, the second the canonical name (empty when missing), the rest aliases;
- the address is parsed with ``inet_pton`` (so ``010.0.0.1`` and ``127.1`` are not
  addresses); lines with no valid address are skipped;
- names match case-insensitively (ASCII only, as ``strcasecmp`` in a UTF-8 locale), and
  exactly otherwise: ``localhost.`` does not match ``localhost``;
- with ``multi on`` in ``/etc/host.conf`` (Debian's default) every matching line counts,
  otherwise only the first; the first matching line gives the canonical name;
- an IPv4 lookup also takes ``::1`` lines (as ``127.0.0.1``) and ``::ffff:a.b.c.d`` lines
  (as ``a.b.c.d``); an IPv6 lookup takes only IPv6 lines; an any-family lookup takes both,
  each as written.

:class:`ResolvConf` follows ``/etc/resolv.conf`` the way glibc 2.26+ does: the system
configuration is rebuilt when the file changes.

The file is re-read when its mtime, size, inode or device changes (checked on
:meth:`HostsFile.refresh`). :class:`NsSwitch` gives the ``hosts:`` sources and actions of
``/etc/nsswitch.conf`` (also re-read when it changes).
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from safedns._config import ResolverConfig

__all__ = [
    "DEFAULT_HOSTS_LINE",
    "HostEntry",
    "HostsData",
    "HostsFile",
    "HostsResult",
    "NsSwitch",
    "ResolvConf",
    "Source",
    "host_conf_multi",
    "parse_hosts",
    "parse_hosts_line",
]

HOSTS_PATH = "/etc/hosts"
NSSWITCH_PATH = "/etc/nsswitch.conf"
HOST_CONF_PATH = "/etc/host.conf"
RESOLV_CONF_PATH = "/etc/resolv.conf"

#: glibc's built-in ``hosts:`` line when nsswitch.conf has none (nss_database.c).
DEFAULT_HOSTS_LINE = "dns [!UNAVAIL=return] files"

_LOOPBACK6 = socket.inet_pton(socket.AF_INET6, "::1")
_MAPPED_PREFIX = bytes(10) + b"\xff\xff"
_LOOPBACK4 = socket.inet_pton(socket.AF_INET, "127.0.0.1")

# nss status names and the default action for each (nsswitch.h).
STATUSES = ("success", "notfound", "unavail", "tryagain")
_DEFAULT_ACTIONS = {
    "success": "return",
    "notfound": "continue",
    "unavail": "continue",
    "tryagain": "continue",
}


@dataclass(frozen=True, slots=True)
class HostEntry:
    """One usable line: its address as parsed for an any-family lookup, the canonical
    name and the aliases, all as bytes (the file's bytes, not decoded)."""

    family: int
    packed: bytes
    name: bytes
    aliases: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class HostsResult:
    """What a hosts lookup found: ``(family, packed address)`` pairs in file order, the
    canonical name (the first matching line's name) and the aliases glibc's
    ``gethostbyname`` would report (for :func:`socket.gethostbyname_ex`)."""

    addresses: tuple[tuple[int, bytes], ...]
    canonical_name: bytes
    aliases: tuple[bytes, ...]


def parse_hosts_line(raw: bytes) -> HostEntry | None:
    """One line of a hosts file, or None when glibc would skip it."""
    line = raw.split(b"\0", 1)[0].split(b"#", 1)[0]
    fields = line.split()  # bytes.split() splits on exactly C's isspace() set
    if not fields:
        return None
    address = fields[0]
    try:
        text = address.decode("ascii")
    except UnicodeDecodeError:
        return None
    try:
        packed = socket.inet_pton(socket.AF_INET, text)
        family = socket.AF_INET
    except OSError:
        try:
            packed = socket.inet_pton(socket.AF_INET6, text)
            family = socket.AF_INET6
        except OSError:
            return None
    name = fields[1] if len(fields) > 1 else b""
    return HostEntry(family, packed, name, tuple(fields[2:]))


class HostsData:
    """A parsed hosts file: its lines and an index from lower-cased name to lines."""

    __slots__ = ("entries", "index", "missing")

    def __init__(self, entries: Sequence[HostEntry], *, missing: bool = False) -> None:
        self.entries = tuple(entries)
        self.missing = missing
        index: dict[bytes, list[int]] = {}
        for i, entry in enumerate(self.entries):
            seen: set[bytes] = set()
            for name in (entry.name, *entry.aliases):
                key = name.lower()
                if key not in seen:
                    seen.add(key)
                    index.setdefault(key, []).append(i)
        self.index: Mapping[bytes, tuple[int, ...]] = {k: tuple(v) for k, v in index.items()}

    def lookup(self, name: bytes, family: int, *, multi: bool = True) -> HostsResult | None:
        """Look ``name`` up as glibc's files module does for ``family``.

        ``AF_UNSPEC`` is ``gethostbyname4_r`` (each line as written); ``AF_INET`` and
        ``AF_INET6`` are ``gethostbyname3_r`` (lines converted to or filtered for the
        family, aliases merged with ``multi``). Returns None when nothing matches.
        """
        matches = self.index.get(name.lower())
        if not matches:
            return None
        addresses: list[tuple[int, bytes]] = []
        canonical: bytes | None = None
        aliases: list[bytes] = []
        for i in matches:
            entry = self.entries[i]
            converted = _convert(entry, family)
            if converted is None:
                continue
            if canonical is None:
                canonical = entry.name
                aliases.extend(entry.aliases)
            else:
                aliases.extend(entry.aliases)
                if entry.name != canonical:
                    aliases.append(entry.name)
            addresses.append(converted)
            if not multi:
                break
        if canonical is None:
            return None
        if family == socket.AF_UNSPEC:
            aliases = []
        return HostsResult(tuple(addresses), canonical, tuple(aliases))


def _convert(entry: HostEntry, family: int) -> tuple[int, bytes] | None:
    if family == socket.AF_UNSPEC or family == entry.family:
        return entry.family, entry.packed
    if family == socket.AF_INET:  # an IPv6 line in an IPv4 lookup
        if entry.packed.startswith(_MAPPED_PREFIX):
            return socket.AF_INET, entry.packed[12:]
        if entry.packed == _LOOPBACK6:
            return socket.AF_INET, _LOOPBACK4
    return None  # an IPv4 line in an IPv6 lookup, or any other IPv6 line for IPv4


def parse_hosts(data: bytes) -> HostsData:
    """Parse the bytes of a hosts file."""
    entries = []
    for raw in data.split(b"\n"):
        entry = parse_hosts_line(raw)
        if entry is not None:
            entries.append(entry)
    return HostsData(entries)


_MISSING = HostsData((), missing=True)


def _file_state(path: str) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)


class HostsFile:
    """``/etc/hosts`` (or ``path``), parsed, re-read when it changes.

    ``multi`` defaults to the ``multi`` setting of ``/etc/host.conf`` (see
    :func:`host_conf_multi`). :meth:`refresh` stats the file and re-reads it if its
    mtime, size, inode or device changed; it returns True when the data changed.
    """

    def __init__(self, path: str = HOSTS_PATH, *, multi: bool | None = None) -> None:
        self.path = path
        self.multi = host_conf_multi() if multi is None else multi
        self._lock = threading.Lock()
        self._state: tuple[int, int, int, int] | None = None
        self._loaded = False
        self._data: HostsData = _MISSING

    @property
    def data(self) -> HostsData:
        """The parsed file as of the last :meth:`refresh` (read on first use)."""
        if not self._loaded:
            self.refresh()
        return self._data

    def refresh(self) -> bool:
        """Re-read the file if it changed since the last read. True if it did."""
        state = _file_state(self.path)
        if self._loaded and state == self._state:
            return False
        with self._lock:
            state = _file_state(self.path)
            if self._loaded and state == self._state:
                return False
            if state is None:
                data = _MISSING
            else:
                try:
                    with open(self.path, "rb") as f:
                        data = parse_hosts(f.read())
                except OSError:
                    data, state = _MISSING, None
            changed = not self._loaded or data is not self._data
            self._data, self._state, self._loaded = data, state, True
            return changed

    def after_fork(self) -> None:
        """A fresh lock in a forked child (the parent's may be held by a lost thread)."""
        self._lock = threading.Lock()

    def lookup(self, name: bytes, family: int = socket.AF_UNSPEC) -> HostsResult | None:
        """:meth:`HostsData.lookup` on the current data (refreshed first)."""
        self.refresh()
        return self._data.lookup(name, family, multi=self.multi)

    def __repr__(self) -> str:
        return f"<HostsFile {self.path} entries={len(self.data.entries)} multi={self.multi}>"


def host_conf_multi(path: str | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """Whether glibc merges every matching hosts line (``multi on`` in host.conf).

    Reads ``RESOLV_HOST_CONF`` (or ``/etc/host.conf``) then ``RESOLV_MULTI``, like
    glibc's ``res_hconf.c``. glibc's default, with no setting, is off.
    """
    env = os.environ if environ is None else environ
    if path is None:
        path = env.get("RESOLV_HOST_CONF") or HOST_CONF_PATH
    multi = False
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError:
        text = b""
    for raw in text.split(b"\n"):
        line = raw.split(b"#", 1)[0]
        words = line.split()
        if len(words) >= 2 and words[0].lower() == b"multi":
            value = words[1].lower()
            if value in (b"on", b"off"):
                multi = value == b"on"
    value_env = env.get("RESOLV_MULTI")
    if value_env is not None:
        lowered = value_env.strip().lower()
        if lowered in ("on", "off"):
            multi = lowered == "on"
    return multi


@dataclass(frozen=True, slots=True)
class Source:
    """One service on the ``hosts:`` line and its actions per status."""

    name: str
    actions: Mapping[str, str]

    def action(self, status: str) -> str:
        """``"return"``, ``"continue"`` or ``"merge"`` for an nss status name."""
        return self.actions.get(status, _DEFAULT_ACTIONS[status])


def parse_hosts_sources(line: str) -> tuple[Source, ...]:
    """The services and actions of a ``hosts:`` value such as ``files dns``."""
    sources: list[Source] = []
    tokens = line.replace("[", " [ ").replace("]", " ] ").split()
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "[":
            end = tokens.index("]", i) if "]" in tokens[i:] else len(tokens)
            spec = " ".join(tokens[i + 1 : end])
            i = end + 1
            if not sources:
                continue
            last = sources[-1]
            actions = dict(last.actions)
            for item in spec.replace(" = ", "=").replace(" =", "=").replace("= ", "=").split():
                status, sep, action = item.partition("=")
                action = action.lower()
                if not sep or action not in ("return", "continue", "merge"):
                    continue
                negate = status.startswith("!")
                status = status.lstrip("!").lower()
                if status not in STATUSES:
                    continue
                targets = [s for s in STATUSES if s != status] if negate else [status]
                for target in targets:
                    actions[target] = action
            sources[-1] = Source(last.name, actions)
            continue
        sources.append(Source(token, {}))
        i += 1
    return tuple(sources)


class NsSwitch:
    """The ``hosts:`` sources of ``nsswitch.conf`` (``path``), re-read when it changes.

    With no file, or no ``hosts:`` line, glibc's default ``dns [!UNAVAIL=return] files``.
    """

    def __init__(self, path: str = NSSWITCH_PATH) -> None:
        self.path = path
        self._state: tuple[int, int, int, int] | None = None
        self._loaded = False
        self._sources: tuple[Source, ...] = ()

    @property
    def sources(self) -> tuple[Source, ...]:
        if not self._loaded:
            self.refresh()
        return self._sources

    def refresh(self) -> bool:
        """Re-read the file if it changed. True if the sources changed."""
        state = _file_state(self.path)
        if self._loaded and state == self._state:
            return False
        line = DEFAULT_HOSTS_LINE
        if state is not None:
            try:
                with open(self.path, "rb") as f:
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                text = ""
            for raw in text.split("\n"):
                content = raw.split("#", 1)[0].strip()
                key, sep, value = content.partition(":")
                if sep and key.strip().lower() == "hosts":
                    line = value
                    break
        sources = parse_hosts_sources(line)
        changed = not self._loaded or sources != self._sources
        self._sources, self._state, self._loaded = sources, state, True
        return changed

    def __repr__(self) -> str:
        return f"<NsSwitch hosts: {' '.join(s.name for s in self.sources)}>"


class ResolvConf:
    """The system resolver configuration, followed like glibc 2.26+ follows resolv.conf.

    ``path`` defaults to ``$SAFEDNS_RESOLV_CONF`` or ``/etc/resolv.conf``; ``config`` is
    :meth:`ResolverConfig.from_system` of it (with the ``SAFEDNS_*`` and glibc variables).
    :meth:`refresh` stats the file (the caller rate-limits it) and, when its mtime, size,
    inode or device changed, builds the configuration again: it returns the new
    configuration when that differs from the current one, else None. A file that cannot
    be read now keeps the last configuration (glibc keeps its old state too).
    """

    def __init__(self, path: str | None = None) -> None:
        self.path = path or os.environ.get("SAFEDNS_RESOLV_CONF") or RESOLV_CONF_PATH
        self._state = _file_state(self.path)
        self.config = ResolverConfig.from_system(self.path)

    def refresh(self) -> ResolverConfig | None:
        """The new configuration if the file changed it, else None."""
        state = _file_state(self.path)
        if state == self._state:
            return None
        try:
            config = ResolverConfig.from_system(self.path)
        except (OSError, ValueError):
            return None  # retried on the next check: the state is not recorded
        self._state = state
        if config == self.config:
            return None
        self.config = config
        return config

    def __repr__(self) -> str:
        return f"<ResolvConf {self.path} nameservers={list(self.config.nameservers)}>"
