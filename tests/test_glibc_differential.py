"""safedns's ``getaddrinfo`` against real glibc, in a network namespace.

A namespace gets a dnsmasq on 127.0.0.1:53 (with CNAMEs), a Kubernetes-like resolv.conf
(``search ns1.svc.cluster.local svc.cluster.local cluster.local``, ``ndots:5``), its own
hosts file and ``hosts: files dns``. One helper process inside it runs each call through
the standard library (real glibc) and through ``safedns.getaddrinfo`` (a ``Resolver()``
configured from that resolv.conf, reading that hosts file) and reports both. Results must
be equal, call for call and error for error, for a table of corners and for
hypothesis-generated arguments; the sort order is checked with loopback-only interfaces
and with IPv4-only and dual-stack routes; and safedns must send far fewer queries than
glibc (counted from dnsmasq's log).

Needs root, ``ip netns`` and dnsmasq: skipped without them, failed when ``CI`` is set.
"""

from __future__ import annotations

import base64
import enum
import json
import os
import pickle
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safedns.testing import Dnsmasq, GlibcNamespace, dnsmasq_available, netns_available

pytestmark = pytest.mark.netns

S = socket
AI_IDN, AI_CANONIDN = 0x40, 0x80

RECORDS = {
    "api.example.com": ["10.0.0.1", "fd00::1"],
    "v4.example.com": ["10.0.0.2"],
    "v6.example.com": ["fd00::2"],
    "dual.example.org": ["10.0.0.3", "2001:db8:2::3"],
    "multi.example.com": ["10.0.1.1", "10.0.1.2", "fd00:1::1", "fd00:1::2"],
    "loop.example.com": ["127.0.0.5", "::1"],
    "mixed.example.com": ["127.0.0.1", "192.0.2.7", "::1", "2001:db8:2::7", "fe80::7"],
    "near.example.com": ["192.0.2.9", "198.51.100.9"],
    "my-svc.ns1.svc.cluster.local": ["10.96.0.10"],
    "other.ns2.svc.cluster.local": ["10.96.0.11", "fd00:96::11"],
    "kube-dns.kube-system.svc.cluster.local": ["10.96.0.53"],
}
CNAMES = {
    "alias.example.com": "api.example.com",
    "alias2.example.com": "alias.example.com",
    "www.example.net": "v4.example.com",
}
HOSTS = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "10.1.1.1  First.Example  one two   # a comment\n"
    "10.1.1.2  second.example one\n"
    "fd00::9   first.example six\n"
    "::ffff:10.2.2.2 mapped.example\n"
    " 10.3.3.3 spaced.example\n"
    "#10.4.4.4 commented.example\n"
    "10.5.5.5 dup.example\n"
    "10.5.5.5 dup.example\n"
    "10.6.6.6 api.example.com\n"
    "010.7.7.7 leadingzero.example\n"
    "10.8.8.8\tUPPER.EXAMPLE\tUp\n"
)

NAMES = [
    "api.example.com",
    "API.Example.COM",
    "api.example.com.",
    "alias.example.com",
    "ALIAS2.example.com",
    "www.example.net",
    "v4.example.com",
    "v6.example.com",
    "dual.example.org",
    "loop.example.com",
    "mixed.example.com",
    "near.example.com",
    "my-svc",
    "My-Svc",
    "my-svc.ns1",
    "my-svc.ns1.svc.cluster.local",
    "other.ns2",
    "other.ns2.svc",
    "kube-dns.kube-system",
    "nonexistent",
    "nonexistent.example.com",
    "localhost",
    "LOCALHOST",
    "localhost.",
    "ip6-localhost",
    "one",
    "two",
    "six",
    "first.example",
    "second.example",
    "mapped.example",
    "spaced.example",
    "commented.example",
    "dup.example",
    "leadingzero.example",
    "upper.example",
    "up",
    "",
    "svc.cluster.local",
    "cluster.local",
    "1.2.3.4.5",
    "999.1.1.1",
    "abc:def",
    "1:2",
    "foo bar",
    "my_svc",
    "<broadcast>",
    "127.1",
    "0x7f.1",
    "127.000.0.1",
    "::1",
    "fe80::1%lo",
    "::ffff:10.0.0.1",
    "10.0.0.1.",
    "*",
]
FAMILIES = [0, S.AF_INET, S.AF_INET6]
FLAGS = [
    0,
    S.AI_CANONNAME,
    S.AI_V4MAPPED,
    S.AI_V4MAPPED | S.AI_ALL,
    S.AI_ADDRCONFIG,
    S.AI_CANONNAME | S.AI_V4MAPPED | S.AI_ALL,
    S.AI_NUMERICHOST,
    S.AI_PASSIVE,
    S.AI_ADDRCONFIG | S.AI_CANONNAME,
]
# Two addresses of a family that glibc's sort cannot tell apart keep the DNS server's
# order, which dnsmasq rotates: those are compared without their order.
ROTATING = {"multi.example.com", "near.example.com"}

HELPER = r"""
import base64, json, pickle, socket, sys
from safedns import Resolver, ResolverConfig
from safedns._dropin.addrinfo import AddrInfo
# The namespace's resolv.conf; a query budget that thousands of random names cannot spend.
config = ResolverConfig.from_system(upstream_qps=1e6, upstream_burst=10**6)
ai = AddrInfo(Resolver(config), hosts_check_interval=0)
std = {"getaddrinfo": socket.getaddrinfo, "gethostbyname": socket.gethostbyname,
       "gethostbyname_ex": socket.gethostbyname_ex}
ours = {"getaddrinfo": ai.getaddrinfo, "gethostbyname": ai.gethostbyname,
        "gethostbyname_ex": ai.gethostbyname_ex}
def run(fn, args):
    try:
        r = fn(*args)
    except Exception as exc:
        return ["exc", type(exc).__name__, getattr(exc, "errno", None), str(exc)]
    if isinstance(r, list):
        return ["ok", [[int(a), int(b), c, d, list(e), type(a).__name__, type(b).__name__]
                       for a, b, c, d, e in r]]
    return ["ok", r]
for line in sys.stdin:
    which, name, args = pickle.loads(base64.b64decode(line))
    out = {}
    if which in ("std", "both"):
        out["std"] = run(std[name], args)
    if which in ("ours", "both"):
        out["ours"] = run(ours[name], args)
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
"""


def _require() -> None:
    reasons = []
    if os.geteuid() != 0:
        reasons.append("needs root")
    if not dnsmasq_available():
        reasons.append("needs dnsmasq")
    if not reasons and not netns_available():
        reasons.append("ip netns does not work here")
    if reasons:
        message = ", ".join(reasons)
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI is set: the glibc differential tests must run)")
        pytest.skip(message)


class Helper:
    """A Python process inside the namespace answering calls through both implementations."""

    def __init__(self, ns: GlibcNamespace) -> None:
        paths = [p or os.getcwd() for p in sys.path]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(dict.fromkeys(paths)))
        self.proc = subprocess.Popen(
            ns.command(sys.executable, "-c", HELPER),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def call(self, which: str, name: str, args: Sequence[Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        plain = tuple(int(a) if isinstance(a, enum.Enum) else a for a in args)
        data = base64.b64encode(pickle.dumps((which, name, plain))).decode("ascii")
        self.proc.stdin.write(data + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"helper died (exit {self.proc.poll()})"
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class Env:
    def __init__(self, ns: GlibcNamespace, dnsmasq: Dnsmasq) -> None:
        self.ns = ns
        self.dnsmasq = dnsmasq

    def ip(self, *args: str) -> None:
        subprocess.run(["ip", "-n", self.ns.name, *args], check=True, capture_output=True)

    def helper(self) -> Helper:
        return Helper(self.ns)


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    _require()
    with GlibcNamespace(records=()) as ns:
        ns.dnsmasq.close()  # replaced by one that also serves CNAMEs, on the same address
        with open(os.path.join(ns.etc_dir, "hosts"), "w", encoding="utf-8") as f:
            f.write(HOSTS)
        with Dnsmasq(
            RECORDS, host="127.0.0.1", port=53, ttl=300, cnames=CNAMES, netns=ns.name
        ) as dnsmasq:
            yield Env(ns, dnsmasq)


@pytest.fixture(scope="module")
def helper(env: Env) -> Iterator[Helper]:
    h = env.helper()
    yield h
    h.close()


MULTI_A = {"multi.example.com", "near.example.com", "mixed.example.com"}


def _normalized(result: list[Any], name: object, exact: bool) -> list[Any]:
    """Order that depends on the DNS server's rotation is left out of the comparison.

    dnsmasq rotates RRsets, so: gethostbyname of a name with several A records may give
    any of them; gethostbyname_ex's addresses are compared as a set; getaddrinfo results
    whose sort leaves two addresses tied are compared as the family sequence, the
    canonical name on the first row and the set of rows.
    """
    if result[0] == "exc" and result[1] == "herror" and _colon(name):
        # gethostbyname_ex of an IPv4-mapped IPv6 literal: glibc's gethostbyname_r fails
        # without setting h_errno, and CPython reports whatever the thread's h_errno was
        # (history-dependent). safedns says HOST_NOT_FOUND; only the type is compared.
        return ["exc", "herror"]
    if result[0] != "ok" or exact or not isinstance(name, str):
        return result
    if isinstance(result[1], str):  # gethostbyname
        return ["ok", f"an address of {name}"] if name in MULTI_A else result
    if len(result[1]) == 3 and isinstance(result[1][0], str):  # gethostbyname_ex
        h_name, aliases, addresses = result[1]
        return ["ok", [h_name, aliases, sorted(addresses)]]
    if name not in ROTATING:
        return result
    rows = result[1]
    return [
        "ok",
        [row[0] for row in rows],
        rows[0][3] if rows else None,
        sorted(json.dumps([*row[:3], row[4]]) for row in rows),
    ]


def _colon(name: object) -> bool:
    if isinstance(name, str):
        return ":" in name
    return isinstance(name, (bytes, bytearray)) and b":" in name


def _check(helper: Helper, name: str, args: Sequence[Any], *, exact: bool = False) -> None:
    out = helper.call("both", name, args)
    std = _normalized(out["std"], args[0], exact)
    ours = _normalized(out["ours"], args[0], exact)
    assert ours == std, f"{name}{tuple(args)!r}"


def test_table_against_glibc(helper: Helper) -> None:
    for host in NAMES:
        for family in FAMILIES:
            for flags in FLAGS:
                _check(helper, "getaddrinfo", (host, 80, family, S.SOCK_STREAM, 0, flags))
        _check(helper, "getaddrinfo", (host, "http", 0, 0, 0, 0))
        _check(helper, "getaddrinfo", (host, None, 0, 0, 0, S.AI_CANONNAME))
        _check(helper, "gethostbyname", (host,))
        _check(helper, "gethostbyname_ex", (host,))
    for host in (b"api.example.com", b"my-svc", b"localhost", b"\xff\xfe", b"a" * 64):
        _check(helper, "getaddrinfo", (host, 443, 0, 0, 0, 0))
        _check(helper, "gethostbyname_ex", (host,))
    for host in ("api.example.com", "localhost"):
        _check(helper, "getaddrinfo", (host, 80, 0, 0, 0, AI_IDN | S.AI_CANONNAME | AI_CANONIDN))


def test_broadcast_reports_the_threads_h_errno(helper: Helper) -> None:
    """Found by Hypothesis: ``gethostbyname_ex('<broadcast>')`` gave HOST_NOT_FOUND where
    glibc gave NO_RECOVERY. glibc leaves h_errno as the thread's last lookup set it, so
    each lookup below leaves a different value behind first."""
    for before in (b"a" * 64, "nonexistent", "v4.example.com", "<broadcast>", b"x" * 300):
        _check(helper, "gethostbyname_ex", (before,))
        _check(helper, "gethostbyname_ex", ("<broadcast>",))
        _check(helper, "gethostbyname", ("<broadcast>",))


def test_multiple_addresses_per_family_same_set(helper: Helper) -> None:
    for family in FAMILIES:
        _check(helper, "getaddrinfo", ("multi.example.com", 80, family, S.SOCK_STREAM))


def _first_family(helper: Helper, name: str) -> int:
    out = helper.call("both", "getaddrinfo", (name, 80, 0, S.SOCK_STREAM))
    assert out["ours"] == out["std"]
    return int(out["std"][1][0][0])


def test_sort_order_follows_routes(env: Env, helper: Helper) -> None:
    """IPv6 comes first only when glibc's RFC 3484 rules say so: with loopback alone no
    destination is usable and precedence puts IPv6 first; with an IPv4 route only, IPv4
    wins; with both routes, IPv6 wins where its label matches the source's (not for a
    ULA destination from a global source)."""
    assert _first_family(helper, "other.ns2") == S.AF_INET6
    assert _first_family(helper, "dual.example.org") == S.AF_INET6
    names = [
        "api.example.com",
        "dual.example.org",
        "mixed.example.com",
        "near.example.com",
        "other.ns2",
        "loop.example.com",
        "localhost",
        None,
    ]
    expected = {
        "ipv4 route only": {"other.ns2": S.AF_INET, "dual.example.org": S.AF_INET},
        "dual stack": {"other.ns2": S.AF_INET, "dual.example.org": S.AF_INET6},
    }
    env.ip("link", "add", "v0", "type", "veth", "peer", "name", "v1")
    try:
        env.ip("link", "set", "v0", "up")
        env.ip("link", "set", "v1", "up")
        env.ip("addr", "add", "192.0.2.2/24", "dev", "v0")
        env.ip("addr", "add", "2001:db8:1::2/64", "dev", "v0", "nodad")
        env.ip("route", "add", "default", "via", "192.0.2.1")
        for step in ("ipv4 route only", "dual stack"):
            if step == "dual stack":
                env.ip("-6", "route", "add", "default", "via", "2001:db8:1::1")
            h = env.helper()  # a new process: safedns caches interface-dependent results
            try:
                for name, family in expected[step].items():
                    assert _first_family(h, name) == family, (step, name)
                for name in names:
                    for flags in (0, S.AI_ADDRCONFIG, S.AI_PASSIVE):
                        for family in FAMILIES:
                            args = (name, 80, family, S.SOCK_STREAM, 0, flags)
                            _check(h, "getaddrinfo", args, exact=name == "near.example.com")
            finally:
                h.close()
    finally:
        env.ip("link", "del", "v0")


LABELS = [
    "my-svc",
    "other",
    "ns1",
    "ns2",
    "svc",
    "cluster",
    "local",
    "api",
    "alias",
    "alias2",
    "example",
    "com",
    "net",
    "org",
    "www",
    "v4",
    "v6",
    "dual",
    "kube-dns",
    "kube-system",
    "localhost",
    "one",
    "dup",
    "mapped",
    "first",
    "nonexistent",
]
composed_names = st.builds(
    lambda labels, dot, upper: (
        (".".join(labels) + dot).upper() if upper else ".".join(labels) + dot
    ),
    st.lists(st.sampled_from(LABELS), min_size=1, max_size=5),
    st.sampled_from(["", "."]),
    st.booleans(),
)
hosts_strategy = st.one_of(
    st.sampled_from(NAMES),
    composed_names,
    st.sampled_from([None, "*", "127.0.0.1", "::1", "fe80::1%1", "0", "4294967295", "::"]),
    st.text(alphabet="abcdef0123456789.:-%_xX ", max_size=24),
    st.text(max_size=12),
    st.binary(max_size=12),
    st.integers(min_value=-2, max_value=2),
)
ports_strategy = st.one_of(
    st.sampled_from([None, 0, 80, "80", b"80", "http", "https", "domain", "", "*", "-1"]),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.text(alphabet="0123456789 +-xhtp", max_size=8),
    st.binary(max_size=4),
    st.sampled_from([True, 80.0, bytearray(b"80")]),
)
ints = st.one_of(st.integers(min_value=-(2**33), max_value=2**33), st.sampled_from([2.0, "1"]))


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    host=hosts_strategy,
    port=ports_strategy,
    family=st.one_of(st.sampled_from([0, S.AF_INET, S.AF_INET6, S.AF_UNIX, 99]), ints),
    type_=st.one_of(st.sampled_from([0, 1, 2, 3, 5, 6, 10]), ints),
    proto=st.one_of(st.sampled_from([0, 6, 17, 33, 132, 136, 255]), ints),
    flags=st.one_of(st.integers(min_value=0, max_value=0x7FF), ints),
)
def test_hypothesis_against_glibc(
    helper: Helper, host: Any, port: Any, family: Any, type_: Any, proto: Any, flags: Any
) -> None:
    _check(helper, "getaddrinfo", (host, port, family, type_, proto, flags))


VALID_FLAGS = [
    S.AI_PASSIVE,
    S.AI_CANONNAME,
    S.AI_NUMERICHOST,
    S.AI_V4MAPPED,
    S.AI_ALL,
    S.AI_ADDRCONFIG,
    S.AI_NUMERICSERV,
]


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    host=st.one_of(composed_names, st.sampled_from(NAMES), st.text(max_size=10)),
    port=st.sampled_from([None, 80, "https", "domain", 0]),
    family=st.sampled_from(FAMILIES),
    type_=st.sampled_from([0, S.SOCK_STREAM, S.SOCK_DGRAM]),
    flags=st.lists(st.sampled_from(VALID_FLAGS), max_size=3).map(lambda fs: sum(set(fs))),
)
def test_hypothesis_names_against_glibc(
    helper: Helper, host: Any, port: Any, family: int, type_: int, flags: int
) -> None:
    """Arguments that reach the name lookup: the hosts file, the search list, CNAMEs."""
    _check(helper, "getaddrinfo", (host, port, family, type_, 0, flags))


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(host=st.one_of(hosts_strategy, st.binary(max_size=8).map(bytearray)))
def test_hypothesis_gethostbyname_against_glibc(helper: Helper, host: Any) -> None:
    _check(helper, "gethostbyname", (host,))
    _check(helper, "gethostbyname_ex", (host,))


K8S_NAMES = [
    "api.example.com",
    "alias.example.com",
    "www.example.net",
    "my-svc",
    "my-svc.ns1",
    "other.ns2",
    "kube-dns.kube-system",
    "my-svc.ns1.svc.cluster.local",
    "nonexistent",
    "nonexistent.example.com",
]


def test_same_answers_far_fewer_queries(env: Env) -> None:
    """Each name looked up 5 times (AF_UNSPEC, then AF_INET): glibc re-sends its search-list
    walk every time, safedns sends each needed question once."""
    results: dict[str, list[Any]] = {}
    counts: dict[str, int] = {}
    for which in ("std", "ours"):
        h = env.helper()
        try:
            env.dnsmasq.clear()
            got = []
            for _ in range(5):
                for name in K8S_NAMES:
                    for family in (0, S.AF_INET):
                        got.append(h.call(which, "getaddrinfo", (name, 443, family, 1))[which])
            counts[which] = len(env.dnsmasq.queries())
            results[which] = got
        finally:
            h.close()
    assert results["ours"] == results["std"]
    assert counts["std"] >= 300, counts
    assert counts["ours"] * 10 <= counts["std"], counts
    print(f"queries for {len(K8S_NAMES)} names x 2 families x 5 rounds: {counts}")


def test_helper_sees_namespace_config(env: Env) -> None:
    """Guard against a vacuous comparison: the namespace really uses its own files."""
    h = env.helper()
    try:
        out = h.call("both", "getaddrinfo", ("my-svc", 80, S.AF_INET, S.SOCK_STREAM))
        assert out["std"] == out["ours"]
        assert out["std"][1][0][4] == ["10.96.0.10", 80]
        out = h.call("both", "gethostbyname_ex", ("one",))
        assert (
            out["std"]
            == out["ours"]
            == [
                "ok",
                [
                    "First.Example",
                    ["one", "two", "one", "second.example"],
                    ["10.1.1.1", "10.1.1.2"],
                ],
            ]
        )
    finally:
        h.close()


_NO_AAAA_SCRIPT = """
import json, socket, sys
import safedns
out = []
for call in json.load(sys.stdin):
    row = []
    for lookup in (socket.getaddrinfo, safedns.getaddrinfo):
        try:
            row.append(sorted(json.dumps([list(r[:4]), list(r[4])]) for r in lookup(*call)))
        except socket.gaierror as exc:
            row.append(["gaierror", exc.errno])
    out.append(row)
print(json.dumps(out))
"""


def test_no_aaaa_answers_as_glibc_does() -> None:
    """glibc 2.36's ``options no-aaaa`` (read by safedns too): the same results as
    glibc's getaddrinfo for every family, and no AAAA query reaches the server."""
    _require()
    records = {"dual.test": ["192.0.2.1", "2001:db8::1"], "v6only.test": ["2001:db8::2"]}
    calls = [
        ["dual.test", 80, 0, S.SOCK_STREAM],
        ["dual.test", 80, S.AF_INET, S.SOCK_STREAM],
        ["dual.test", 80, S.AF_INET6, S.SOCK_STREAM],
        ["dual.test", 80, S.AF_INET6, S.SOCK_STREAM, 0, S.AI_V4MAPPED],
        ["v6only.test", 80, 0, S.SOCK_STREAM],
        ["v6only.test", 80, S.AF_INET6, S.SOCK_STREAM],
    ]
    with GlibcNamespace(records, search=(), ndots=1, options=["no-aaaa"]) as ns:
        proc = ns.run_python(_NO_AAAA_SCRIPT, input=json.dumps(calls))
        assert proc.returncode == 0, proc.stderr
        results = json.loads(proc.stdout)
        queried = {qtype for _, qtype in ns.dnsmasq.queries()}
    for call, (glibc, ours) in zip(calls, results, strict=True):
        assert ours == glibc, call
    assert results[0][0] and not any("2001:db8" in row for row in results[0][0])
    assert "AAAA" not in queried and "A" in queried
