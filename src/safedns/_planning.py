"""Query planning: which absolute names to ask for, in which order.

``plan`` turns a host name into the ordered candidate list a stub resolver
queries. The order is glibc's ``res_search`` (the search list first when the
name has fewer than ``ndots`` dots, the name as-is first otherwise), with one
saving: a name that is *clearly external* is asked as-is first even when it
has fewer than ``ndots`` dots, which avoids the Kubernetes ``ndots:5`` query
storm; and so is a fully qualified cluster name (five labels or more under
the cluster domain, ``web.ns2.svc.cluster.local``), none of whose search
candidates CoreDNS can answer (docs/planning.md). A trailing dot means
"exactly this name".

A name is clearly external only when none of these holds (docs/planning.md):

a. its last label is the pod's own namespace (from the search list) or
   ``svc``, or it is under the cluster domain or an ``internal_suffixes``
   entry, whatever its number of dots;
b. it has one or two dots (``service.namespace``, ``pod.service.namespace``)
   and its last label is not in ``external_tlds``;
c. its last label is not an IANA top-level domain (one label is never external);
d. ``external_first`` is off.

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

__all__ = [
    "DEFAULT_EXTERNAL_TLDS",
    "absolute_name",
    "cluster_domain_of",
    "encode_name",
    "iana_tld_version",
    "iana_tlds",
    "is_external",
    "namespace_of",
    "plan",
]

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

    @property
    def external_tlds(self) -> tuple[str, ...]:
        """TLDs that make a name with one or two dots external (lower case)."""
        ...

    @property
    def external_first(self) -> bool:
        """False: glibc's exact order for every name."""
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


def iana_tlds() -> frozenset[str]:
    """The shipped IANA top-level domains, lower case."""
    return _iana()[1]


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


def absolute_name(name: str | bytes) -> str:
    """``name`` as exactly that name, never searched: encoded as
    ``encode_name`` does, with a trailing dot (``"my-svc"`` → ``"my-svc."``)."""
    text = encode_name(name)
    return text if text.endswith(".") else text + "."


# ------------------------------------------------------------------ planning

#: TLDs that make a name with one or two dots clearly external by default. No
#: realistic Kubernetes namespace has one of these names, whereas prod, dev,
#: app, data, cloud, shop and services are both common namespaces and IANA TLDs.
DEFAULT_EXTERNAL_TLDS = ("com", "net", "org", "edu", "gov", "mil", "int")


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


def namespace_of(search: Iterable[str], cluster_domain: str | None = None) -> str | None:
    """The pod's own Kubernetes namespace implied by a search list, if any.

    ``<ns>`` of the first entry ``<ns>.svc.<cd>``, where ``<cd>`` is
    *cluster_domain* or, when None, ``cluster_domain_of(search)``.

    >>> namespace_of(["prod.svc.cluster.local", "svc.cluster.local", "cluster.local"])
    'prod'
    """
    domains = [_normalize(d) for d in search]
    cluster = _normalize(cluster_domain) if cluster_domain else cluster_domain_of(domains)
    if not cluster:
        return None
    tail = f".svc.{cluster}"
    for domain in domains:
        namespace = domain[: -len(tail)] if domain.endswith(tail) else ""
        if namespace and "." not in namespace:
            return namespace
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
    external_first: bool
    external_tlds: frozenset[str]
    # Last labels that are never external: "svc" and the pod's own namespace.
    internal_tlds: frozenset[str]


@functools.lru_cache(maxsize=16)
def _prepare(
    search: tuple[str, ...],
    ndots: int,
    cluster_domain: str | None,
    internal_suffixes: tuple[str, ...],
    external_tlds: tuple[str, ...],
    external_first: bool,
) -> _Prepared:
    domains = tuple(dict.fromkeys(_normalize(d) for d in search))
    suffixes = tuple((f".{d}" if d else "", len(d) + 1 if d else 0) for d in domains)
    cluster = _normalize(cluster_domain) if cluster_domain else cluster_domain_of(domains)
    internal = frozenset(s for s in (_normalize(s) for s in internal_suffixes) if s)
    namespace = namespace_of(domains, cluster) if cluster else None
    return _Prepared(
        ndots=ndots,
        suffixes=suffixes,
        has_root="" in domains,
        cluster=cluster or None,
        cluster_suffix=f".{cluster}" if cluster else "",
        internal=internal,
        internal_suffixes=tuple(f".{s}" for s in sorted(internal)),
        external_first=bool(external_first),
        external_tlds=frozenset(_normalize(t) for t in external_tlds),
        internal_tlds=frozenset({"svc", namespace} if namespace else {"svc"}),
    )


def _prepared(config: PlanConfig) -> _Prepared:
    return _prepare(
        tuple(config.search),
        config.ndots,
        config.cluster_domain,
        tuple(config.internal_suffixes),
        tuple(config.external_tlds),
        config.external_first,
    )


def _external(name: str, dots: int, prepared: _Prepared) -> bool:
    """Whether ``name`` (encoded, no trailing dot, ``dots`` dots) is clearly external."""
    if not dots or not prepared.external_first:
        return False  # one label (rule c), or the switch is off (rule d)
    tld = name[name.rfind(".") + 1 :]
    if tld not in _iana()[1] or tld in prepared.internal_tlds:
        return False  # rule c; rule a: the own namespace or "svc"
    if dots <= 2 and tld not in prepared.external_tlds:
        return False  # rule b: service.namespace, pod.service.namespace
    cluster = prepared.cluster
    if cluster is not None and (name == cluster or name.endswith(prepared.cluster_suffix)):
        return False  # rule a: under the cluster domain
    return not (
        prepared.internal
        and (name in prepared.internal or name.endswith(prepared.internal_suffixes))
    )  # rule a: under an internal suffix


#: A name under the cluster domain with at least this many labels is asked
#: as-is first: every search candidate built from it has at least this many
#: labels in front of ``svc.<zone>``, and CoreDNS's kubernetes plugin answers
#: at most four there (``_port._proto.service.namespace``); the rest is NXDOMAIN.
CLUSTER_NAME_LABELS = 5


def _cluster_name(name: str, dots: int, prepared: _Prepared) -> bool:
    """Whether ``name`` (encoded, no trailing dot, ``dots`` dots) is a fully
    qualified cluster name, asked as-is first (unless ``external_first`` is off)."""
    return (
        prepared.external_first
        and dots >= CLUSTER_NAME_LABELS - 1
        and prepared.cluster is not None
        and name.endswith(prepared.cluster_suffix)
    )


def is_external(name: str, config: PlanConfig) -> bool:
    """Whether ``plan`` asks an encoded name as-is first whatever ``ndots``.

    True when ``config.external_first`` is on and the name (a trailing dot is
    ignored) is clearly external: none of rules a, b, c of the module doc
    holds. When False, ``plan`` follows glibc's order exactly.
    """
    if name.endswith("."):
        name = name[:-1]
    return _external(name, name.count("."), _prepared(config))


def plan(name: str | bytes, config: PlanConfig) -> list[str]:
    """The absolute names (lower case, trailing dot) to query, in order.

    glibc's ``res_search`` order, except that a clearly external name (see
    ``is_external``), and a name of five labels or more under the cluster
    domain, are asked as-is first although they have fewer than ``ndots``
    dots. With a pod's search list and ``ndots:5``:

    >>> from safedns import ResolverConfig
    >>> k8s = ResolverConfig(
    ...     search=["ns1.svc.cluster.local", "svc.cluster.local", "cluster.local"], ndots=5
    ... )
    >>> plan("api.example.com", k8s)  # clearly external: as-is first
    ... # doctest: +NORMALIZE_WHITESPACE
    ['api.example.com.', 'api.example.com.ns1.svc.cluster.local.',
     'api.example.com.svc.cluster.local.', 'api.example.com.cluster.local.']
    >>> plan("api.prod", k8s)  # service.namespace (prod is not in external_tlds)
    ... # doctest: +NORMALIZE_WHITESPACE
    ['api.prod.ns1.svc.cluster.local.', 'api.prod.svc.cluster.local.',
     'api.prod.cluster.local.', 'api.prod.']
    >>> plan("www.bbc.co.uk", k8s)[0]  # three dots and an IANA TLD: external
    'www.bbc.co.uk.'
    >>> plan("bbc.co.uk", k8s)[0]  # two dots, uk not in external_tlds: glibc's order
    'bbc.co.uk.ns1.svc.cluster.local.'
    >>> plan("my-svc.ns2.svc.cluster.local", k8s)[0]  # a cluster name: as-is first
    'my-svc.ns2.svc.cluster.local.'
    >>> plan("x.y.cluster.local", k8s)[-1]  # 4 labels under the cluster: glibc's order
    'x.y.cluster.local.'
    >>> plan("web-0.nginx.ns1.example.net", k8s)[0]  # 4 dots, IANA TLD: external
    'web-0.nginx.ns1.example.net.'
    >>> plan("api.example.com", k8s.replace(external_first=False))[0]  # glibc's order
    'api.example.com.ns1.svc.cluster.local.'
    >>> plan("api.example.com.", k8s)  # a trailing dot: exactly that name
    ['api.example.com.']

    Raises ``InvalidName`` if ``name`` is not a valid host name. The search
    list ends at the first candidate longer than 253 octets (glibc's query
    for it fails and ends the search); the name as-is is still asked.
    """
    encoded = encode_name(name)
    if encoded.endswith("."):
        return [encoded]
    prepared = _prepared(config)
    absolute = f"{encoded}."
    room = _MAX_NAME - len(encoded)
    searched = [
        f"{encoded}{suffix}."
        for suffix, _ in itertools.takewhile(lambda s: s[1] <= room, prepared.suffixes)
    ]
    dots = encoded.count(".")
    if (
        dots >= prepared.ndots
        or _external(encoded, dots, prepared)
        or _cluster_name(encoded, dots, prepared)
    ):
        searched.insert(0, absolute)
    else:
        searched.append(absolute)
    if prepared.has_root:
        return list(dict.fromkeys(searched))
    return searched
