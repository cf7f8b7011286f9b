"""``safedns.getaddrinfo`` against the standard library, in this process.

The differential part only uses arguments that glibc answers without DNS (numeric hosts,
``None``, ``AI_NUMERICHOST``, names this machine's hosts file answers, argument errors),
so it never depends on this machine's resolv.conf or nameserver; names that need DNS are
compared with real glibc in ``test_glibc_differential.py``. The rest covers what only
safedns does: the finished-results cache, TTLs, CNAME canonical names and error mapping
against a ``DNSServer``.
"""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import safedns
from safedns import Resolver, ResolverConfig
from safedns._dropin.addrinfo import AddrInfo, set_default
from safedns._dropin.arguments import strtoul
from safedns._dropin.interfaces import Interfaces
from safedns._dropin.sort import GaiConf, msort, parse_gai_conf, rfc3484_sort
from safedns._hosts import HostsFile
from safedns.testing import DNSServer
from tests.conftest import FakeClock

S = socket
AI_IDN, AI_CANONIDN = 0x40, 0x80


@pytest.fixture(scope="module")
def server() -> Iterator[DNSServer]:
    with DNSServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def addrinfo(server: DNSServer) -> AddrInfo:
    """safedns on a resolver whose only nameserver is a DNSServer: anything that wrongly
    reaches DNS shows up in ``server.queries`` instead of this machine's resolver."""
    config = ResolverConfig(nameservers=[server.nameserver], search=(), timeout=1, attempts=1)
    return AddrInfo(Resolver(config))


def _outcome(fn: Any, *args: Any) -> Any:
    try:
        return ("ok", fn(*args))
    except Exception as exc:
        return ("error", type(exc), getattr(exc, "errno", None), str(exc))


def _answered_by_hosts(name: str, family: int) -> bool:
    return HostsFile().lookup(name.encode(), family) is not None


# --------------------------------------------------------------------------- differential

NUMERIC_HOSTS = [
    None,
    "*",
    "127.0.0.1",
    "10.1.2.3",
    "0.0.0.0",
    "255.255.255.255",
    "127.1",
    "10.1",
    "2130706433",
    "0x7f.0.0.1",
    "0177.0.0.1",
    "127.000.0.1",
    "0",
    "::",
    "::1",
    "2001:db8::1",
    "::ffff:192.0.2.1",
    "::192.0.2.1",
    "fe80::1%1",
    "fe80::1%lo",
    "fe80::1%4294967295",
    "fe80::1%4294967296",
    "ff02::1%1",
    "::1%7",
    "::1%lo",
    "fe80::1%",
    b"127.0.0.1",
    b"::1",
    "127.0.0.1\0garbage",
    b"10.0.0.1\0junk",
    "\uff11\uff12\uff17.0.0.1",
]
PORTS = [
    None,
    0,
    80,
    65535,
    65536,
    65615,
    -1,
    2**31,
    2**32 + 80,
    "80",
    " 80",
    "+80",
    "-0",
    "0x50",
    "80 ",
    "",
    "*",
    "http",
    "https",
    "domain",
    "www",
    "nope",
    b"53",
    "ht\0tp",
]
FAMILIES = [0, S.AF_INET, S.AF_INET6, S.AF_UNIX, 12345, -1]
TYPES = [0, S.SOCK_STREAM, S.SOCK_DGRAM, S.SOCK_RAW, S.SOCK_SEQPACKET, 6, 99, -1]
PROTOS = [0, 6, 17, 33, 132, 136, 255, -5]
FLAGS = [
    0,
    S.AI_PASSIVE,
    S.AI_CANONNAME,
    S.AI_NUMERICHOST,
    S.AI_NUMERICSERV,
    S.AI_V4MAPPED,
    S.AI_V4MAPPED | S.AI_ALL,
    S.AI_ALL,
    S.AI_ADDRCONFIG,
    S.AI_ADDRCONFIG | S.AI_PASSIVE,
    S.AI_CANONNAME | S.AI_NUMERICHOST,
    AI_IDN,
    AI_CANONIDN | S.AI_CANONNAME,
    0x300,
    0x800,
    -1,
    2**31 - 1,
]


def _table() -> Iterator[tuple[Any, ...]]:
    for host in NUMERIC_HOSTS:
        for family in FAMILIES[:3]:
            for flags in FLAGS:
                yield (host, 80, family, S.SOCK_STREAM, 0, flags)
            for kind in TYPES:
                for proto in PROTOS:
                    yield (host, "http", family, kind, proto)
    for port in PORTS:
        for kind in TYPES:
            yield ("127.0.0.1", port, 0, kind)
            yield (None, port, 0, kind, 0, S.AI_PASSIVE)
    for family in FAMILIES:
        yield ("::1", 80, family)
    for family in (0, S.AF_INET, S.AF_INET6):
        if _answered_by_hosts("localhost", family):
            for flags in (0, S.AI_CANONNAME, S.AI_ADDRCONFIG):
                yield ("localhost", 443, family, 0, 0, flags)
                yield ("LOCALHOST", 443, family, 0, 0, flags)
    # Errors before any lookup: arguments, flags, families, services.
    yield from [
        ("a" * 64 + ".example.com", 80),
        ("a..b", 80),
        (".", 80),
        ("\udcff", 80),
        ("é" * 70, 80),
        ("bad name", 80, 0, 0, 0, S.AI_NUMERICHOST),
        (b"\xff\xfe", 80, 0, 0, 0, S.AI_NUMERICHOST),
        (b"b\xc3\xbccher", 80, 0, 0, 0, AI_IDN | S.AI_NUMERICHOST),
        ("bücher.example", 80, 0, 0, 0, S.AI_NUMERICHOST),
        (1, 80),
        (bytearray(b"x"), 80),
        ([], 80),
        ("127.0.0.1", 80.0),
        ("127.0.0.1", True),
        ("127.0.0.1", bytearray(b"80")),
        ("127.0.0.1", 2**63),
        ("127.0.0.1", -(2**63) - 1),
        ("127.0.0.1", "\udcff"),
        ("127.0.0.1", "é"),
        ("127.0.0.1", 80, 2.0),
        ("127.0.0.1", 80, "2"),
        ("127.0.0.1", 80, 2**31),
        ("127.0.0.1", 80, -(2**31) - 1),
        ("127.0.0.1", 80, 2**64),
        ("127.0.0.1", 80, 0, 1.0),
        ("127.0.0.1", 80, 0, 0, None),
        ("127.0.0.1", 80, 0, 0, 0, []),
        ([], 80, 2.0),
        (None, None),
        ("*", "*"),
        (None, "http", 0, 0, 0, S.AI_CANONNAME),
        ("127.0.0.1", "http", 0, 0, 0, S.AI_NUMERICSERV),
    ]


def test_table_equals_stdlib(addrinfo: AddrInfo, server: DNSServer) -> None:
    server.clear()
    checked = 0
    for call in _table():
        want = _outcome(socket.getaddrinfo, *call)
        assert _outcome(addrinfo.getaddrinfo, *call) == want, call
        assert _outcome(addrinfo.getaddrinfo, *call) == want, ("cached", call)
        checked += 1
    assert checked > 2000
    assert server.queries == []


def test_results_keep_stdlib_types(addrinfo: AddrInfo) -> None:
    for call in [("127.0.0.1", 80), ("::1", "http", S.AF_INET6), ("::1", None, 0, 0, 255)]:
        for want, have in zip(socket.getaddrinfo(*call), addrinfo.getaddrinfo(*call), strict=True):
            assert [type(x) for x in have] == [type(x) for x in want]
            assert [type(x) for x in have[4]] == [type(x) for x in want[4]]


def test_keyword_arguments(addrinfo: AddrInfo) -> None:
    kwargs: dict[str, Any] = dict(host="127.0.0.1", port=80, type=S.SOCK_STREAM, flags=0)
    assert addrinfo.getaddrinfo(**kwargs) == socket.getaddrinfo(**kwargs)
    with pytest.raises(TypeError):
        addrinfo.getaddrinfo("127.0.0.1")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        addrinfo.getaddrinfo("127.0.0.1", 80, bogus=1)  # type: ignore[call-arg]


def test_audit_events(addrinfo: AddrInfo) -> None:
    seen: list[tuple[str, tuple[Any, ...]]] = []
    active = [True]

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if active[0] and event in ("socket.getaddrinfo", "socket.gethostbyname"):
            seen.append((event, args))

    sys.addaudithook(hook)  # hooks cannot be removed: this one goes quiet at the end
    try:
        socket.getaddrinfo("127.0.0.2", 81)
        socket.gethostbyname("127.0.0.2")
        want, seen[:] = list(seen), []
        addrinfo.getaddrinfo("127.0.0.2", 81)
        addrinfo.getaddrinfo("127.0.0.2", 81)  # a cache hit is audited too
        addrinfo.gethostbyname("127.0.0.2")
        assert seen == [want[0], want[0], want[1]]
    finally:
        active[0] = False


def _aton_valid(parts: list[int]) -> bool:
    """Whether decimal ``parts`` joined with dots are an inet_aton address."""
    if not 1 <= len(parts) <= 4:
        return False
    *head, last = parts
    return all(p < 256 for p in head) and last < 256 ** (5 - len(parts))


def _safe_host() -> st.SearchStrategy[Any]:
    """Hosts glibc answers without DNS whatever the flags."""
    dotted = st.lists(st.integers(0, 2**32), min_size=1, max_size=4).filter(_aton_valid)
    return st.one_of(
        st.sampled_from(NUMERIC_HOSTS),
        dotted.map(lambda parts: ".".join(map(str, parts))),
        st.ip_addresses().map(str),
    )


garbage_hosts = st.one_of(
    st.text(max_size=20),
    st.binary(max_size=20),
    st.text(alphabet="0123456789abcdefx.:%-", max_size=24),
    st.sampled_from([1, 2.0, bytearray(b"a"), [], "a" * 64]),
)
ints_or_garbage = st.one_of(
    st.integers(min_value=-(2**65), max_value=2**65),
    st.sampled_from([0, 0, 1, 2, 10, 2.0, "1", None, True]),
)


@settings(max_examples=800, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    numeric=st.booleans(),
    safe=_safe_host(),
    garbage=garbage_hosts,
    port=st.one_of(
        st.sampled_from(PORTS),
        st.integers(min_value=-(2**64), max_value=2**64),
        st.text(max_size=6),
        st.binary(max_size=6),
        st.sampled_from([80.0, True, bytearray(b"1")]),
    ),
    family=st.one_of(st.sampled_from([0, S.AF_INET, S.AF_INET6]), ints_or_garbage),
    kind=st.one_of(st.sampled_from(TYPES), ints_or_garbage),
    proto=st.one_of(st.sampled_from(PROTOS), ints_or_garbage),
    flags=st.one_of(st.integers(min_value=0, max_value=0x7FF), ints_or_garbage),
)
def test_hypothesis_equals_stdlib(
    addrinfo: AddrInfo,
    server: DNSServer,
    numeric: bool,
    safe: Any,
    garbage: Any,
    port: Any,
    family: Any,
    kind: Any,
    proto: Any,
    flags: Any,
) -> None:
    """Numeric hosts as they are; any other host with AI_NUMERICHOST, so glibc answers
    without DNS (garbage in every other argument still reaches the argument checks)."""
    _assert_equals_stdlib(
        addrinfo, server, _dns_free_call(numeric, safe, garbage, port, family, kind, proto, flags)
    )


def _dns_free_call(
    numeric: bool,
    safe: Any,
    garbage: Any,
    port: Any,
    family: Any,
    kind: Any,
    proto: Any,
    flags: Any,
) -> tuple[Any, ...]:
    """The call to compare: a garbage host only where the standard library cannot take it
    to this machine's DNS, that is with an int (not bool) flags value that gets
    AI_NUMERICHOST, or with a flags value it rejects before any lookup."""
    host = safe
    if not numeric:
        if isinstance(flags, bool):
            pass  # a bool is a valid flags value that cannot carry AI_NUMERICHOST: keep `safe`
        elif isinstance(flags, int):
            host, flags = garbage, flags | S.AI_NUMERICHOST
        else:
            host = garbage  # TypeError before any lookup
    return (host, port, family, kind, proto, flags)


def _assert_equals_stdlib(addrinfo: AddrInfo, server: DNSServer, call: tuple[Any, ...]) -> None:
    asked = len(server.queries)
    want = _outcome(socket.getaddrinfo, *call)
    assert _outcome(addrinfo.getaddrinfo, *call) == want, call
    assert _outcome(addrinfo.getaddrinfo, *call) == want, call  # again, from the cache
    assert server.queries[asked:] == [], call


#: Examples Hypothesis found; each once failed (machine DNS reached, or a difference).
HYPOTHESIS_EXAMPLES: list[tuple[Any, ...]] = [
    # A bool flags value skipped AI_NUMERICHOST: the garbage host went to machine DNS.
    _dns_free_call(False, "127.0.0.1", "0", None, 0, 0, 0, True),
    _dns_free_call(False, "::1", "a", 80, 0, 0, 0, False),
    # Port integers the C long cannot hold (3.11 raises, 3.12+ answers port 0).
    ("127.0.0.1", 2**63, 0, 0, 0, 0),
    ("127.0.0.1", -(2**63) - 1, 0, 0, 0, 0),
    ("127.0.0.1", 2**64, 0, 0, 0, 0),
]


@pytest.mark.parametrize("call", HYPOTHESIS_EXAMPLES)
def test_hypothesis_examples_equal_stdlib(
    addrinfo: AddrInfo, server: DNSServer, call: tuple[Any, ...]
) -> None:
    _assert_equals_stdlib(addrinfo, server, call)


def _ex_needs_no_dns(host: Any) -> bool:
    """Whether glibc's gethostbyname_r answers ``host`` itself (digits-and-dots or colon
    names); gethostbyname_ex of anything else asks DNS, which these tests must not."""
    try:
        name = host.encode("idna") if isinstance(host, str) else bytes(host)
    except (TypeError, UnicodeError):
        return True  # rejected before any lookup
    if b"\0" in name:
        return True  # TypeError before any lookup
    if not name:
        return False
    if name[:1].isdigit() and not name.endswith(b".") and not name.strip(b"0123456789."):
        return True
    return b":" in name and (name[:1] in b"0123456789abcdefABCDEF:")


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(host=st.one_of(_safe_host(), st.sampled_from([1, None, b"x\0", "<broadcast>", "*"])))
def test_hypothesis_gethostbyname_numeric(addrinfo: AddrInfo, host: Any) -> None:
    calls = ["gethostbyname"]
    if _ex_needs_no_dns(host):
        calls.append("gethostbyname_ex")
    for name in calls:
        want = _outcome(getattr(socket, name), host)
        have = _outcome(getattr(addrinfo, name), host)
        if want[0] == "error" and want[1] is socket.herror:
            # Colon names: glibc leaves h_errno as it was; only the type is defined.
            assert have[:2] == want[:2], (name, host)
            continue
        assert have == want, (name, host)


# --------------------------------------------------------------------------- the cache


@pytest.fixture
def dns() -> Iterator[DNSServer]:
    with DNSServer() as srv:
        srv.add("svc.example.com", "A", "192.0.2.10", ttl=60)
        srv.add("svc.example.com", "AAAA", "2001:db8::10", ttl=60)
        srv.add("v4.example.com", "A", "192.0.2.11", ttl=60)
        srv.add("www.example.org", "CNAME", "edge.cdn.example.net", ttl=120)
        srv.add("edge.cdn.example.net", "A", "198.51.100.7", ttl=20)
        srv.add("hop1.example.com", "CNAME", "hop2.example.com", ttl=120)
        srv.add("hop2.example.com", "CNAME", "v4.example.com", ttl=120)
        srv.add("my-svc.ns1.svc.cluster.local", "A", "10.0.0.5", ttl=30)
        yield srv


@pytest.fixture
def cached(dns: DNSServer, clock: FakeClock) -> AddrInfo:
    config = ResolverConfig(
        nameservers=[dns.nameserver],
        search=("ns1.svc.cluster.local", "svc.cluster.local", "cluster.local"),
        ndots=5,
        timeout=1,
        attempts=1,
        prefetch=False,
    )
    return AddrInfo(Resolver(config, clock=clock))


def test_hits_send_nothing_and_return_fresh_lists(cached: AddrInfo, dns: DNSServer) -> None:
    first = cached.getaddrinfo("svc.example.com", 80)
    assert sorted(row[4][0] for row in first[::3]) == ["192.0.2.10", "2001:db8::10"]
    queries = len(dns.queries)
    first.clear()
    for _ in range(100):
        again = cached.getaddrinfo("svc.example.com", 80)
        assert len(again) == 6
    assert len(dns.queries) == queries == 2


def test_entries_expire_with_the_smallest_ttl(
    cached: AddrInfo, dns: DNSServer, clock: FakeClock
) -> None:
    infos = cached.getaddrinfo("www.example.org", 80, 0, S.SOCK_STREAM)
    assert infos[0][4] == ("198.51.100.7", 80)
    dns.remove("edge.cdn.example.net", "A")
    dns.add("edge.cdn.example.net", "A", "198.51.100.8", ttl=20)
    clock.now += 19
    assert cached.getaddrinfo("www.example.org", 80, 0, S.SOCK_STREAM)[0][4][0] == "198.51.100.7"
    clock.now += 2  # past the target's 20 s, well within the CNAME's 120 s
    assert cached.getaddrinfo("www.example.org", 80, 0, S.SOCK_STREAM)[0][4][0] == "198.51.100.8"


def test_hit_path_keeps_argument_checks(cached: AddrInfo) -> None:
    cached.getaddrinfo("svc.example.com", 80, S.AF_INET, S.SOCK_STREAM)
    with pytest.raises(OSError, match="Int or String expected"):
        cached.getaddrinfo("svc.example.com", 80.0, S.AF_INET, S.SOCK_STREAM)
    with pytest.raises(OSError, match="Int or String expected"):
        cached.getaddrinfo("svc.example.com", True, 0, 0)
    with pytest.raises(TypeError):
        cached.getaddrinfo("svc.example.com", 80, 2.0, S.SOCK_STREAM)
    assert cached.getaddrinfo("svc.example.com", 80, 2, 1) == cached.getaddrinfo(
        "svc.example.com", 80, S.AF_INET, S.SOCK_STREAM
    )


def test_cache_is_bounded(dns: DNSServer) -> None:
    ai = AddrInfo(Resolver(ResolverConfig(nameservers=[dns.nameserver])), max_entries=10)
    for port in range(100):
        ai.getaddrinfo("127.0.0.1", port)
    assert len(ai._cache) <= 10
    # A full table loses its oldest entry, one at a time: the nine newest stay.
    assert [key[1] for key in ai._cache] == list(range(90, 100))


def test_failures_are_not_cached(cached: AddrInfo, dns: DNSServer, clock: FakeClock) -> None:
    with pytest.raises(socket.gaierror) as info:
        cached.getaddrinfo("new.example.com", 80)
    assert info.value.errno == S.EAI_NONAME
    dns.add("new.example.com", "A", "192.0.2.99")
    clock.now += 31  # the resolver's negative TTL (the DNSServer SOA says 30)
    assert cached.getaddrinfo("new.example.com", 80)[0][4][0] == "192.0.2.99"


# --------------------------------------------------------------------------- DNS semantics


def test_canonical_name_from_the_cname_chain(cached: AddrInfo) -> None:
    infos = cached.getaddrinfo("www.example.org", 443, 0, S.SOCK_STREAM, 0, S.AI_CANONNAME)
    assert [row[3] for row in infos] == ["edge.cdn.example.net"]
    infos = cached.getaddrinfo("My-Svc", 443, S.AF_INET, S.SOCK_STREAM, 0, S.AI_CANONNAME)
    assert infos[0][3] == "My-Svc.ns1.svc.cluster.local"  # as typed, with the search domain
    assert cached.gethostbyname_ex("hop1.example.com") == (
        "v4.example.com",
        ["hop1.example.com", "hop2.example.com"],
        ["192.0.2.11"],
    )
    assert cached.gethostbyname_ex("my-svc") == ("my-svc.ns1.svc.cluster.local", [], ["10.0.0.5"])


def test_error_codes(cached: AddrInfo, dns: DNSServer) -> None:
    def errno_of(*args: Any) -> int | None:
        try:
            cached.getaddrinfo(*args)
        except socket.gaierror as exc:
            return exc.errno
        return None

    assert errno_of("missing.example.com", 80) == S.EAI_NONAME
    assert errno_of("v4.example.com", 80, S.AF_INET6) == S.EAI_NODATA
    assert errno_of("hop1.example.com", 80, S.AF_INET6) == S.EAI_NONAME  # CNAME, no AAAA
    assert errno_of("v4.example.com", 80, S.AF_INET6, 0, 0, S.AI_V4MAPPED) is None
    with pytest.raises(socket.gaierror) as gai:
        cached.gethostbyname_ex("missing.example.com.")  # CPython asks getaddrinfo first
    assert gai.value.errno == S.EAI_NONAME
    dns.servfail = True
    assert errno_of("down.example.com", 80) == S.EAI_AGAIN
    with pytest.raises(socket.gaierror) as gai:
        cached.gethostbyname("down.example.com")
    assert gai.value.errno == S.EAI_AGAIN
    assert str(gai.value) == "[Errno -3] Temporary failure in name resolution"


QUERY_CASES = [
    # (name, family, flags): existing, NODATA, NXDOMAIN, CNAME chains with AI_CANONNAME.
    (name, family, flags)
    for name in (
        "svc.example.com",
        "v4.example.com",
        "missing.example.com",
        "hop1.example.com",
        "www.example.org",
        "my-svc",
        "missing",
    )
    for family in (S.AF_UNSPEC, S.AF_INET, S.AF_INET6)
    for flags in (0, S.AI_CANONNAME)
]


@pytest.mark.parametrize(("name", "family", "flags"), QUERY_CASES)
def test_never_more_queries_than_the_resolver(
    dns: DNSServer, tmp_path: Any, name: str, family: int, flags: int
) -> None:
    """getaddrinfo sends no query that ``resolve_addresses`` for the same families would
    not: error codes and canonical names come from the answers the walk already had."""
    hosts = tmp_path / "hosts"
    hosts.write_text("")
    nsswitch = tmp_path / "nsswitch.conf"
    nsswitch.write_text("hosts: files dns\n")
    config = ResolverConfig(
        nameservers=[dns.nameserver],
        search=("ns1.svc.cluster.local", "svc.cluster.local", "cluster.local"),
        ndots=5,
        timeout=1,
        attempts=1,
    )
    sent: dict[str, list[tuple[str, str]]] = {"dropin": [], "resolver": []}

    def counter(who: str) -> Any:
        return lambda server, qname, rdtype, transport: sent[who].append((qname, rdtype))

    dropin = AddrInfo(
        Resolver(config, on_query=counter("dropin")),
        hosts_path=str(hosts),
        nsswitch_path=str(nsswitch),
    )
    resolver = Resolver(config, on_query=counter("resolver"))
    outcome = _outcome(dropin.getaddrinfo, name, 80, family, S.SOCK_STREAM, 0, flags)
    with contextlib.suppress(safedns.ResolveError):
        resolver.resolve_addresses(name, family)
    assert sent["dropin"], outcome  # it did ask DNS
    assert sorted(sent["dropin"]) == sorted(sent["resolver"]), outcome
    if family == S.AF_INET:
        sent["resolver"].clear()
        with contextlib.suppress(safedns.ResolveError):
            Resolver(config, on_query=counter("resolver")).resolve(name, "A")
        assert len(sent["dropin"]) <= len(sent["resolver"])
    # gethostbyname_ex (aliases from the chain) asks nothing more than A lookups do.
    sent["dropin"].clear()
    fresh = AddrInfo(
        Resolver(config, on_query=counter("dropin")),
        hosts_path=str(hosts),
        nsswitch_path=str(nsswitch),
    )
    _outcome(fresh.gethostbyname_ex, name)
    assert {rdtype for _, rdtype in sent["dropin"]} <= {"A"}


def test_error_codes_and_aliases_need_no_extra_query(cached: AddrInfo, dns: DNSServer) -> None:
    def errno_of(*args: Any) -> int | None:
        try:
            cached.getaddrinfo(*args)
        except socket.gaierror as exc:
            return exc.errno
        return None

    before = len(dns.queries)
    assert errno_of("v4.example.com.", 80, S.AF_INET6) == S.EAI_NODATA
    assert len(dns.queries) == before + 1  # the AAAA question only
    assert errno_of("hop1.example.com.", 80, S.AF_INET6) == S.EAI_NONAME
    assert len(dns.queries) == before + 2
    assert cached.gethostbyname_ex("hop1.example.com.")[:2] == (
        "v4.example.com",
        ["hop1.example.com", "hop2.example.com"],
    )
    assert len(dns.queries) == before + 3  # one A question; no CNAME per hop


def _set_thread_h_errno(value: int) -> None:
    import ctypes

    location = ctypes.CDLL(None).__h_errno_location
    location.restype = ctypes.POINTER(ctypes.c_int)
    location().contents.value = value


@pytest.mark.parametrize(
    ("h_errno", "message"),
    [(0, "Resolver Error 0 (no error)"), (1, "Unknown host"), (3, "Unknown server error")],
)
def test_gethostbyname_ex_broadcast_keeps_the_threads_h_errno(
    cached: AddrInfo, dns: DNSServer, h_errno: int, message: str
) -> None:
    """Found by Hypothesis against glibc (ours HOST_NOT_FOUND, glibc NO_RECOVERY): CPython
    answers ``<broadcast>`` itself, then asks gethostbyname_r, whose DNS module refuses
    a name that is not a host name without touching h_errno; CPython raises herror with
    whatever the thread's last lookup left there."""
    _set_thread_h_errno(h_errno)
    with pytest.raises(socket.herror) as herr:
        cached.gethostbyname_ex("<broadcast>")
    assert (herr.value.errno, herr.value.strerror) == (h_errno, message)
    assert dns.queries == []
    assert cached.gethostbyname("<broadcast>") == "255.255.255.255"


def test_v4mapped_and_all(cached: AddrInfo) -> None:
    rows = cached.getaddrinfo(
        "svc.example.com", 80, S.AF_INET6, S.SOCK_STREAM, 0, S.AI_V4MAPPED | S.AI_ALL
    )
    assert sorted(r[4][0] for r in rows) == ["2001:db8::10", "::ffff:192.0.2.10"]
    rows = cached.getaddrinfo("v4.example.com", 80, S.AF_INET6, S.SOCK_STREAM, 0, S.AI_V4MAPPED)
    assert [r[4][0] for r in rows] == ["::ffff:192.0.2.11"]


def test_module_level_functions_use_the_default(dns: DNSServer) -> None:
    ai = AddrInfo(Resolver(ResolverConfig(nameservers=[dns.nameserver])))
    previous = set_default(ai)
    try:
        assert safedns.getaddrinfo("svc.example.com", 80, S.AF_INET)[0][4] == ("192.0.2.10", 80)
        assert safedns.gethostbyname("svc.example.com") == "192.0.2.10"
        assert safedns.gethostbyname_ex("svc.example.com")[2] == ["192.0.2.10"]
    finally:
        set_default(previous)


# --------------------------------------------------------------------------- internals


def test_strtoul_matches_c() -> None:
    assert strtoul(b"80") == (80, 2)
    assert strtoul(b" \t+80x") == (80, 5)
    assert strtoul(b"-1") == (2**64 - 1, 2)
    assert strtoul(b"99999999999999999999999") == (2**64 - 1, 23)
    assert strtoul(b"x80") == (0, 0)
    assert strtoul(b" ") == (0, 0)


def test_msort_is_glibc_merge_order() -> None:
    """With a comparator that ties, the merge keeps the left run first (stable)."""
    items = [(1, "a"), (0, "b"), (1, "c"), (0, "d")]
    assert msort(items, lambda x, y: x[0] - y[0]) == [(0, "b"), (0, "d"), (1, "a"), (1, "c")]


def test_gai_conf_precedence_changes_the_order() -> None:
    conf = parse_gai_conf("# prefer IPv4\nprecedence ::ffff:0:0/96  100\n")
    v6 = (S.AF_INET6, socket.inet_pton(S.AF_INET6, "2001:db8::1"), 0, 80)
    v4 = (S.AF_INET, socket.inet_pton(S.AF_INET, "192.0.2.1"), 0, 80)

    def unreachable(family: int, packed: bytes, port: int, scope: int) -> bytes | None:
        return None

    none = Interfaces(False, False, {})
    assert rfc3484_sort([v6, v4], none, GaiConf(), unreachable) == [0, 1]
    assert rfc3484_sort([v4, v6], none, GaiConf(), unreachable) == [1, 0]
    assert rfc3484_sort([v6, v4], none, conf, unreachable) == [1, 0]
    assert parse_gai_conf("label ::1/128 9\n").labels[0][2] == 9


def _dest(text: str, port: int = 80) -> tuple[int, bytes, int, int]:
    family = S.AF_INET6 if ":" in text else S.AF_INET
    return (family, socket.inet_pton(family, text), 0, port)


def _sources(table: dict[str, str]) -> Any:
    def source(family: int, packed: bytes, port: int, scope: int) -> bytes | None:
        src = table.get(socket.inet_ntop(family, packed))
        return None if src is None else socket.inet_pton(family, src)

    return source


def test_sort_rules_with_known_sources() -> None:
    """glibc's rules, fed with chosen source addresses instead of this machine's routes."""
    v4, ula, glob = "192.0.2.10", "fd00::10", "2001:db8::10"
    # Rule 1: a reachable destination first, whatever the precedence.
    only_v4 = _sources({v4: "192.0.2.2"})
    assert rfc3484_sort(
        [_dest(glob), _dest(v4)], Interfaces(True, True, {}), GaiConf(), only_v4
    ) == [1, 0]
    # Rule 5: matching labels first (a ULA source does not match a global destination).
    both = _sources({v4: "192.0.2.2", glob: "fd00::2"})
    assert rfc3484_sort([_dest(glob), _dest(v4)], Interfaces(True, True, {}), GaiConf(), both) == [
        1,
        0,
    ]
    # Rule 6: with matching labels, IPv6's precedence (40) beats IPv4's (10).
    same = _sources({v4: "192.0.2.2", glob: "2001:db8::2", ula: "fd00::2"})
    assert rfc3484_sort([_dest(v4), _dest(glob)], Interfaces(True, True, {}), GaiConf(), same) == [
        1,
        0,
    ]
    # Rule 3: a deprecated source goes last.
    deprecated = {socket.inet_pton(S.AF_INET6, "2001:db8::2"): (1, 64, 2)}
    info = Interfaces(True, True, deprecated)
    assert rfc3484_sort([_dest(glob), _dest(ula)], info, GaiConf(), same) == [1, 0]
    # Rule 9 (IPv4 too, with the prefix length from the interface list): the address on the
    # source's own subnet first.
    mapped = bytes(10) + b"\xff\xff"
    prefixes = {mapped + socket.inet_pton(S.AF_INET, "192.0.2.2"): (0, 24, 2)}
    far, near = _dest("198.51.100.9"), _dest("192.0.2.9")
    src = _sources({"198.51.100.9": "192.0.2.2", "192.0.2.9": "192.0.2.2"})
    assert rfc3484_sort([far, near], Interfaces(True, True, prefixes), GaiConf(), src) == [1, 0]
    assert rfc3484_sort([far, near], Interfaces(True, False, {}), GaiConf(), src) == [0, 1]
    # Rule 10: ties keep their order, and the socket types of one address stay together.
    dests = [_dest("10.0.0.1", 80), _dest("10.0.0.1", 80), _dest("10.0.0.2", 80)]
    assert rfc3484_sort(dests, Interfaces(True, True, {}), GaiConf(), _sources({})) == [0, 1, 2]
