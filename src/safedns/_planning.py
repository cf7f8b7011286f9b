"""Query planning: which absolute names to ask for, in which order.

``plan`` turns a host name into the ordered candidate list a stub resolver
queries, following glibc's ``res_search`` (search list vs. ``ndots``) with two
short cuts that avoid the Kubernetes ``ndots:5`` query storm:

1. a trailing dot means "exactly this name";
2. names under the cluster domain are already fully qualified;
3. names ending in a real IANA top-level domain (and not listed in
   ``internal_suffixes``) are tried as-is first, then the search list;
4. everything else uses glibc's order.

Names are encoded like CPython's ``socket.getaddrinfo`` encodes str hosts
(the ``idna`` codec, IDNA 2003) and validated against what DNS can carry.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable
from importlib.resources import files
from typing import NamedTuple, Protocol

from safedns._exceptions import InvalidName

__all__ = ["cluster_domain_of", "encode_name", "iana_tld_version", "is_external", "plan"]

_MAX_NAME = 253  # octets, presentation form, without the trailing dot
_MAX_LABEL = 63
_TLD_FILE = "tlds-alpha-by-domain.txt"

# A valid, lower-cased name: labels of [a-z0-9_*-], 1..63 long, optional trailing dot.
_VALID_NAME = re.compile(r"(?:[a-z0-9_*-]{1,63}\.)*[a-z0-9_*-]{1,63}\.?")
_BAD_CHAR = re.compile(r"[^a-z0-9_*-]")


class PlanConfig(Protocol):
    """The resolver settings planning reads (satisfied by ``ResolverConfig``)."""

    @property
    def search(self) -> tuple[str, ...]:
        """Search domains, lower case, without leading or trailing dots."""
        ...

    @property
    def ndots(self) -> int:
        """Names with at least this many dots are tried as-is first."""
        ...

    @property
    def cluster_domain(self) -> str | None:
        """Kubernetes cluster domain; None derives it from ``search``."""
        ...

    @property
    def internal_suffixes(self) -> tuple[str, ...]:
        """Suffixes that are never "external", even under an IANA TLD."""
        ...


# --------------------------------------------------------------------- IANA


@functools.cache
def _iana() -> tuple[str, frozenset[str]]:
    """Read the packaged IANA list once: (version line, lower-case TLDs)."""
    text = (files("safedns") / "data" / _TLD_FILE).read_text(encoding="ascii")
    lines = text.splitlines()
    header = lines[0] if lines else ""
    version = header.removeprefix("#").strip().removeprefix("Version").strip()
    tlds = frozenset(
        line.strip().lower() for line in lines if line.strip() and not line.startswith("#")
    )
    return version, tlds


def iana_tld_version() -> str:
    """The shipped IANA list's version, e.g. ``"2025100500, Last Updated ..."``."""
    return _iana()[0]


# ----------------------------------------------------------------- encoding


def _invalid(original: str | bytes, text: str) -> InvalidName:
    """Explain why ``text`` (ASCII, lower case) is not a valid host name."""
    if not text:
        return InvalidName(original, "empty name")
    body = text[:-1] if text.endswith(".") else text
    if not body:
        return InvalidName(original, "the root '.' is not a host name")
    for label in body.split("."):
        if not label:
            return InvalidName(original, "empty label")
        if len(label) > _MAX_LABEL:
            return InvalidName(original, f"label longer than {_MAX_LABEL} octets")
        bad = _BAD_CHAR.search(label)
        if bad is not None:
            return InvalidName(original, f"character {bad.group()!r} not allowed in a host name")
    if len(body) > _MAX_NAME:
        return InvalidName(original, f"name longer than {_MAX_NAME} octets")
    return InvalidName(original, "not a valid host name")  # pragma: no cover


@functools.lru_cache(maxsize=256)
def _idna(text: str) -> str:
    """IDNA 2003 ToASCII of a whole name (the codec is slow; cache it)."""
    return text.encode("idna").decode("ascii")


def encode_name(name: str | bytes) -> str:
    """Validate ``name`` and return its lower-case ASCII form.

    A str is encoded with the ``idna`` codec (IDNA 2003), as
    ``socket.getaddrinfo`` does; bytes must already be ASCII. A single trailing
    dot is kept. Raises ``InvalidName`` for names DNS cannot carry.
    """
    if isinstance(name, bytes):
        try:
            text = name.decode("ascii")
        except UnicodeDecodeError as exc:
            raise InvalidName(name, "bytes name is not ASCII") from exc
    elif isinstance(name, str):
        text = name
        if not text.isascii():
            try:
                text = _idna(text)
            except UnicodeError as exc:
                raise InvalidName(name, f"cannot be IDNA-encoded: {exc}") from exc
    else:
        raise TypeError(f"name must be str or bytes, not {type(name).__name__}")
    text = text.lower()
    if _VALID_NAME.fullmatch(text) and len(text) - text.endswith(".") <= _MAX_NAME:
        return text
    raise _invalid(name, text)


# ------------------------------------------------------------------ planning


def _normalize(domain: str) -> str:
    return domain.strip(".").lower()


def cluster_domain_of(search: Iterable[str]) -> str | None:
    """The Kubernetes cluster domain implied by a search list, if any.

    ``svc.<cd>`` or ``<namespace>.svc.<cd>`` give ``<cd>``; the first match wins.
    """
    for domain in search:
        labels = _normalize(domain).split(".")
        for index in (0, 1):
            if len(labels) > index + 1 and labels[index] == "svc" and all(labels[: index + 1]):
                return ".".join(labels[index + 1 :])
    return None


class _Prepared(NamedTuple):
    """Per-config data, computed once per distinct config."""

    ndots: int
    suffixes: tuple[tuple[str, int], ...]  # (".domain", len(".domain")), search order
    has_root: bool  # an empty search domain yields the absolute name itself
    cluster: str | None
    cluster_suffix: str  # "." + cluster, or "" when there is none
    internal: frozenset[str]
    internal_suffixes: tuple[str, ...]  # "." + suffix


@functools.lru_cache(maxsize=16)
def _prepare(
    search: tuple[str, ...],
    ndots: int,
    cluster_domain: str | None,
    internal_suffixes: tuple[str, ...],
) -> _Prepared:
    domains = tuple(dict.fromkeys(_normalize(d) for d in search))
    suffixes = tuple((f".{d}" if d else "", len(d) + 1 if d else 0) for d in domains)
    cluster = _normalize(cluster_domain) if cluster_domain else cluster_domain_of(domains)
    internal = frozenset(s for s in (_normalize(s) for s in internal_suffixes) if s)
    return _Prepared(
        ndots=ndots,
        suffixes=suffixes,
        has_root="" in domains,
        cluster=cluster or None,
        cluster_suffix=f".{cluster}" if cluster else "",
        internal=internal,
        internal_suffixes=tuple(f".{s}" for s in sorted(internal)),
    )


def _prepared(config: PlanConfig) -> _Prepared:
    return _prepare(
        tuple(config.search),
        config.ndots,
        config.cluster_domain,
        tuple(config.internal_suffixes),
    )


def _in_cluster(name: str, prepared: _Prepared) -> bool:
    cluster = prepared.cluster
    return cluster is not None and (name == cluster or name.endswith(prepared.cluster_suffix))


def _external(name: str, prepared: _Prepared) -> bool:
    dot = name.rfind(".")
    if dot < 0 or name[dot + 1 :] not in _iana()[1]:
        return False
    return not (
        prepared.internal
        and (name in prepared.internal or name.endswith(prepared.internal_suffixes))
    )


def is_external(name: str, config: PlanConfig) -> bool:
    """Whether an encoded name (no trailing dot) is tried as-is first (rule 3).

    True for two or more labels ending in an IANA TLD, unless an
    ``internal_suffixes`` entry or the cluster domain covers the name.
    """
    if name.endswith("."):
        name = name[:-1]
    prepared = _prepared(config)
    return not _in_cluster(name, prepared) and _external(name, prepared)


def plan(name: str | bytes, config: PlanConfig) -> list[str]:
    """The absolute names (lower case, trailing dot) to query, in order.

    Raises ``InvalidName`` if ``name`` is not a valid host name. The search
    list ends at the first candidate longer than 253 octets (glibc's query
    for it fails and ends the search); the name as-is is still asked.
    """
    encoded = encode_name(name)
    if encoded.endswith("."):
        return [encoded]
    prepared = _prepared(config)
    absolute = f"{encoded}."
    if _in_cluster(encoded, prepared):
        return [absolute]
    room = _MAX_NAME - len(encoded)
    searched = [
        f"{encoded}{suffix}."
        for suffix, _ in itertools.takewhile(lambda s: s[1] <= room, prepared.suffixes)
    ]
    if encoded.count(".") >= prepared.ndots or _external(encoded, prepared):
        searched.insert(0, absolute)
    else:
        searched.append(absolute)
    if prepared.has_root:
        return list(dict.fromkeys(searched))
    return searched
