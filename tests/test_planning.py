"""Tests for safedns._planning: name encoding, candidate order, the IANA list.

The resolver-level proofs of the planning rule (queries counted at a real
server) are in tests/test_planning_resolver.py.
"""

from __future__ import annotations

import doctest
import re
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import safedns
from safedns import ResolverConfig
from safedns._exceptions import InvalidName
from safedns._planning import (
    DEFAULT_EXTERNAL_TLDS,
    cluster_domain_of,
    encode_name,
    iana_tld_version,
    is_external,
    namespace_of,
    plan,
)
from safedns._planning import _iana as load_iana


@dataclass(frozen=True)
class Cfg:
    search: tuple[str, ...] = ()
    ndots: int = 1
    cluster_domain: str | None = None
    internal_suffixes: tuple[str, ...] = ()
    external_tlds: tuple[str, ...] = DEFAULT_EXTERNAL_TLDS
    external_first: bool = True


K8S = Cfg(search=("ns1.svc.cluster.local", "svc.cluster.local", "cluster.local"), ndots=5)
K8S_INTERNAL = Cfg(search=K8S.search, ndots=5, internal_suffixes=("example.com",))
CORP = Cfg(search=("corp.example",), ndots=1)


def k8s(name: str) -> list[str]:
    return [f"{name}.{domain}." for domain in K8S.search]


PLAN_CASES = [
    # external name: as-is first, then the search list
    (K8S, "api.example.com", ["api.example.com.", *k8s("api.example.com")]),
    (K8S, "api.example.com.", ["api.example.com."]),
    (K8S, "my-svc", [*k8s("my-svc"), "my-svc."]),
    (K8S, "my-svc.ns1", [*k8s("my-svc.ns1"), "my-svc.ns1."]),
    # a cluster name (five labels or more under the cluster domain): as-is
    # first, then the search list, no candidate dropped
    (
        K8S,
        "my-svc.ns1.svc.cluster.local",
        ["my-svc.ns1.svc.cluster.local.", *k8s("my-svc.ns1.svc.cluster.local")],
    ),
    # under the cluster domain with fewer labels: glibc's order
    (K8S, "x.y.cluster.local", [*k8s("x.y.cluster.local"), "x.y.cluster.local."]),
    (K8S, "cluster.local", [*k8s("cluster.local"), "cluster.local."]),
    (K8S, "API.Example.COM", ["api.example.com.", *k8s("api.example.com")]),
    (K8S, b"api.example.com", ["api.example.com.", *k8s("api.example.com")]),
    (K8S, b"My-Svc", [*k8s("my-svc"), "my-svc."]),
    # single label that happens to be a TLD: not external
    (K8S, "com", [*k8s("com"), "com."]),
    # 5 dots >= ndots 5: as-is first even without a known TLD
    (K8S, "a.b.c.d.e.internal", ["a.b.c.d.e.internal.", *k8s("a.b.c.d.e.internal")]),
    # internal suffix: glibc order
    (K8S_INTERNAL, "api.example.com", [*k8s("api.example.com"), "api.example.com."]),
    (K8S_INTERNAL, "example.com", [*k8s("example.com"), "example.com."]),
    # suffix matches only at a label boundary
    (K8S_INTERNAL, "notexample.com", ["notexample.com.", *k8s("notexample.com")]),
    (CORP, "api.example.com", ["api.example.com.", "api.example.com.corp.example."]),
    (CORP, "api.example.com.", ["api.example.com."]),
    (CORP, "my-svc", ["my-svc.corp.example.", "my-svc."]),
    (CORP, "my-svc.ns1", ["my-svc.ns1.", "my-svc.ns1.corp.example."]),
    (
        CORP,
        "my-svc.ns1.svc.cluster.local",
        ["my-svc.ns1.svc.cluster.local.", "my-svc.ns1.svc.cluster.local.corp.example."],
    ),
    (CORP, "HOST", ["host.corp.example.", "host."]),
    (CORP, "bücher.example", ["xn--bcher-kva.example.", "xn--bcher-kva.example.corp.example."]),
    (CORP, "münchen.de", ["xn--mnchen-3ya.de.", "xn--mnchen-3ya.de.corp.example."]),
]


@pytest.mark.parametrize(("config", "name", "expected"), PLAN_CASES)
def test_plan(config: Cfg, name: str | bytes, expected: list[str]) -> None:
    assert plan(name, config) == expected


def test_plan_explicit_cluster_domain() -> None:
    config = Cfg(search=("corp.example",), ndots=5, cluster_domain="k8s.internal")
    assert plan("web.default.svc.k8s.internal", config) == [
        "web.default.svc.k8s.internal.",
        "web.default.svc.k8s.internal.corp.example.",
    ]
    assert plan("web.svc.k8s.internal", config) == [
        "web.svc.k8s.internal.corp.example.",
        "web.svc.k8s.internal.",
    ]
    assert plan("web", config) == ["web.corp.example.", "web."]


def test_cluster_names_are_asked_as_is_first() -> None:
    """Issue 16: a name of five labels or more under the cluster domain is asked
    as-is first, then the search list, nothing dropped; api.prod and my-svc keep
    glibc's order."""
    for name in (
        "web.ns2.svc.cluster.local",
        "web-0.nginx.ns2.svc.cluster.local",
        "_http._tcp.web.ns2.svc.cluster.local",
    ):
        planned = plan(name, K8S)
        assert planned == [f"{name}.", *k8s(name)]
        assert len(planned) == 4 and sorted(planned) == sorted(glibc_order(name, K8S))
    assert plan("api.prod", K8S)[0] == "api.prod.ns1.svc.cluster.local."
    assert plan("api.prod", K8S) == glibc_order("api.prod", K8S)
    assert plan("my-svc", K8S) == glibc_order("my-svc", K8S)
    # external_first=False: glibc's exact order here too.
    off = replace(K8S, external_first=False)
    assert plan("web.ns2.svc.cluster.local", off) == glibc_order("web.ns2.svc.cluster.local", off)


def test_plan_no_search_list() -> None:
    assert plan("host", Cfg()) == ["host."]
    assert plan("api.example.com", Cfg(ndots=5)) == ["api.example.com."]


def test_plan_skips_duplicate_and_root_search_domains() -> None:
    config = Cfg(search=("a.example", "a.example", "", "b.example"), ndots=1)
    assert plan("host", config) == ["host.a.example.", "host.", "host.b.example."]


def test_plan_skips_candidates_over_253_octets() -> None:
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 50])  # 242 octets
    config = Cfg(search=("short.xy", "much-longer.example"), ndots=5)
    assert plan(name, config) == [f"{name}.short.xy.", f"{name}."]
    exactly = name + ".zzzzzzzzzz"  # 253 octets: valid, nothing fits after it
    assert plan(exactly, config) == [f"{exactly}."]


def test_plan_rejects_invalid_name() -> None:
    with pytest.raises(InvalidName):
        plan("a..b", K8S)
    with pytest.raises(InvalidName):
        plan("x" * 254, K8S)


def test_is_external() -> None:
    assert is_external("api.example.com", K8S)
    assert is_external("api.example.com.", K8S)
    assert not is_external("xn--mnchen-3ya.xn--p1ai", K8S)  # one dot, TLD not listed
    assert is_external("xn--mnchen-3ya.xn--p1ai", replace(K8S, external_tlds=("xn--p1ai",)))
    assert is_external("www.xn--mnchen-3ya.shop.xn--p1ai", K8S)  # three dots
    assert not is_external("com", K8S)
    assert not is_external("my-svc.ns1", K8S)
    assert not is_external("svc.cluster.local", K8S)
    assert not is_external("api.example.com", K8S_INTERNAL)
    assert is_external("api.example.org", K8S_INTERNAL)
    under_cluster = Cfg(search=(), cluster_domain="k8s.example.com")
    assert not is_external("web.ns.svc.k8s.example.com", under_cluster)


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        (K8S.search, "cluster.local"),
        (("svc.cluster.local",), "cluster.local"),
        (("corp.example", "ns.svc.k8s.example.org"), "k8s.example.org"),
        (("Svc.Cluster.Local.",), "cluster.local"),
        (("corp.example",), None),
        (("a.b.svc.cluster.local",), None),
        (("svc",), None),
        ((), None),
    ],
)
def test_cluster_domain_of(search: tuple[str, ...], expected: str | None) -> None:
    assert cluster_domain_of(search) == expected


# ------------------------------------------------------------------ encoding


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("example.com", "example.com"),
        ("Example.COM.", "example.com."),
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.example.", "xn--bcher-kva.example."),
        (b"Example.com", "example.com"),
        (b"host.", "host."),
        ("_sip._tcp.example.com", "_sip._tcp.example.com"),
        ("*.example.com", "*.example.com"),
        ("a" * 63, "a" * 63),
        (".".join(["a" * 63] * 3 + ["b" * 61]), ".".join(["a" * 63] * 3 + ["b" * 61])),
        (".".join(["a" * 63] * 3 + ["b" * 61]) + ".", ".".join(["a" * 63] * 3 + ["b" * 61]) + "."),
    ],
)
def test_encode_name(name: str | bytes, expected: str) -> None:
    assert encode_name(name) == expected


@pytest.mark.parametrize(
    "name", ["bücher", "bücher.example", "München.DE", "straße.de", "日本.jp"]
)
def test_encode_name_matches_idna_codec(name: str) -> None:
    assert encode_name(name) == name.encode("idna").decode("ascii").lower()


@pytest.mark.parametrize(
    "name",
    [
        "",
        b"",
        ".",
        b".",
        "..",
        "a..b",
        ".example.com",
        "example.com..",
        "a" * 64,
        "a" * 64 + ".com",
        ".".join(["a" * 63] * 4),  # 255 octets
        ".".join(["a" * 63] * 3 + ["b" * 62]),  # 254 octets
        "has space.com",
        "tab\t.com",
        "nul\x00.com",
        "new\nline.com",
        "a/b.com",
        "user@example.com",
        "back\\slash.com",
        "colon:80",
        "bü cher.example",
        b"b\xc3\xbccher.example",
        b"has space.com",
    ],
)
def test_encode_name_invalid(name: str | bytes) -> None:
    with pytest.raises(InvalidName) as info:
        encode_name(name)
    assert isinstance(info.value, ValueError)
    assert info.value.name == name


@pytest.mark.parametrize("name", ["bü..x", ".bücher", "ü" * 70 + ".com"])
def test_encode_name_idna_failure_chains_unicode_error(name: str) -> None:
    with pytest.raises(InvalidName) as info:
        encode_name(name)
    assert isinstance(info.value.__cause__, UnicodeError)


def test_encode_name_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        encode_name(42)  # type: ignore[arg-type]


# ---------------------------------------------------------------- IANA list


def test_iana_list_loads() -> None:
    _, tlds = load_iana()
    assert len(tlds) > 1000
    assert {"com", "org", "net", "de", "xn--p1ai"} <= tlds
    assert not {"local", "cluster", "internal", "localhost", "svc", "lan"} & tlds
    assert all(tld == tld.lower() and "." not in tld for tld in tlds)


def test_iana_version() -> None:
    version = iana_tld_version()
    assert re.match(r"20\d{8}\b", version), version
    assert "Last Updated" in version


# ---------------------------------------------------------------- property


LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ0123456789-_", min_size=1, max_size=63)


@st.composite
def valid_names(draw: st.DrawFn) -> str:
    labels = draw(st.lists(LABEL, min_size=1, max_size=8))
    tld = draw(st.sampled_from(["", "com", "org", "local", "cluster", "xn--p1ai"]))
    if tld:
        labels.append(tld)
    name = ".".join(labels)
    while len(name) > 253:
        labels.pop(0)
        name = ".".join(labels)
    if draw(st.booleans()) and draw(st.booleans()):
        name += "."
    return name


DOMAIN = st.lists(LABEL, min_size=1, max_size=4).map(lambda ls: ".".join(ls).lower()[:200])

CONFIGS = st.builds(
    Cfg,
    search=st.lists(
        st.one_of(DOMAIN, st.sampled_from([*K8S.search, "corp.example", ""])),
        max_size=6,
    ).map(tuple),
    ndots=st.integers(min_value=0, max_value=15),
    cluster_domain=st.one_of(st.none(), st.just("cluster.local"), DOMAIN),
    internal_suffixes=st.lists(st.one_of(DOMAIN, st.just("com")), max_size=3).map(tuple),
)


@settings(max_examples=300, deadline=None)
@given(name=valid_names(), config=CONFIGS)
def test_plan_properties(name: str, config: Cfg) -> None:
    planned = plan(name, config)
    assert planned
    assert len(planned) == len(set(planned))
    absolute = encode_name(name).rstrip(".") + "."
    assert absolute in planned
    for candidate in planned:
        assert candidate.endswith(".")
        assert len(candidate) <= 254
        assert encode_name(candidate) == candidate
        assert candidate == absolute or candidate.startswith(absolute[:-1] + ".")
    if not name.endswith("."):
        assert len(planned) <= len(config.search) + 1


@settings(max_examples=200, deadline=None)
@given(name=valid_names())
def test_encode_name_agrees_with_idna_codec_on_ascii(name: str) -> None:
    assert encode_name(name) == name.encode("idna").decode("ascii").lower()


def test_search_list_ends_at_the_first_candidate_too_long() -> None:
    # glibc's query for an over-long candidate fails and ends the search list;
    # the name as-is is still asked.
    config = Cfg(search=("a" * 60 + ".example", "short.example"), ndots=5)
    name = ".".join(["x" * 63] * 3)  # 191 octets: the first suffix does not fit
    assert plan(name, config) == [f"{name}."]
    config = Cfg(search=("short.example", "a" * 60 + ".example"), ndots=5)
    assert plan(name, config) == [f"{name}.short.example.", f"{name}."]


# ------------------------------------------------------------ the rule, by case

PROD = Cfg(search=("prod.svc.cluster.local", "svc.cluster.local", "cluster.local"), ndots=5)


def glibc_order(name: str | bytes, config: Cfg) -> list[str]:
    """glibc's ``res_search`` order, written out independently of ``plan``."""
    encoded = encode_name(name)
    if encoded.endswith("."):
        return [encoded]
    absolute = f"{encoded}."
    searched: list[str] = []
    for domain in dict.fromkeys(d.strip(".").lower() for d in config.search):
        candidate = f"{encoded}.{domain}." if domain else absolute
        if len(candidate) > 254:
            break  # the over-long query fails and ends the search list
        searched.append(candidate)
    if encoded.count(".") >= config.ndots:
        return list(dict.fromkeys([absolute, *searched]))
    return list(dict.fromkeys([*searched, absolute]))


def external_order(name: str, config: Cfg) -> list[str]:
    absolute = f"{encode_name(name)}."
    return [absolute, *(c for c in glibc_order(name, config) if c != absolute)]


@pytest.mark.parametrize(
    "name",
    [
        # service.namespace whose namespace is an IANA TLD (the cases)
        "api.prod",
        "api.dev",
        "api.data",
        "api.app",
        "api.cloud",
        "api.shop",
        "api.services",
        # pod.service.namespace
        "web-0.nginx.prod",
        "web-0.nginx.dev",
        # two dots under a TLD that is not in external_tlds
        "bbc.co.uk",
        "api.example.io",
        "xn--mnchen-3ya.de",
        # under the own namespace or svc, whatever the number of dots
        "a.b.c.ns1",
        "a.b.c.d.ns1",
        "x.svc",
        "a.b.c.svc",
        # under the cluster domain, with fewer than five labels
        "x.y.cluster.local",
        "cluster.local",
        # not an IANA TLD, or one label
        "my-svc.internal",
        "a.b.c.internal",
        "com",
        "prod",
    ],
)
def test_internal_looking_names_get_glibc_order(name: str) -> None:
    planned = plan(name, K8S)
    assert planned == glibc_order(name, K8S)
    assert planned[0] != f"{name}."
    assert planned[-1] == f"{name}."
    assert not is_external(name, K8S)


@pytest.mark.parametrize(
    "name",
    [
        "example.com",
        "api.example.com",
        "api.example.net",
        "api.example.org",
        "www.mit.edu",
        "www.nasa.gov",
        "www.army.mil",
        "www.who.int",
        "www.bbc.co.uk",  # three dots, IANA TLD
        "a.b.c.prod",  # three dots, prod is not this pod's namespace
        "web-0.nginx.ns1.example.de",
    ],
)
def test_clearly_external_names_are_asked_as_is_first(name: str) -> None:
    assert plan(name, K8S) == external_order(name, K8S)
    assert is_external(name, K8S)


def test_names_in_the_own_namespace_walk_the_search_list_first() -> None:
    # From a pod in namespace prod, *.prod is internal whatever the number of dots.
    for name in ("web-0.nginx.prod", "a.b.c.prod", "a.b.c.d.prod"):
        assert plan(name, PROD) == glibc_order(name, PROD)
        assert plan(name, PROD)[0] == f"{name}.prod.svc.cluster.local."
    # ...while from namespace ns1, a.b.c.prod is external.
    assert plan("a.b.c.prod", K8S)[0] == "a.b.c.prod."


def test_a_namespace_named_like_an_external_tld_is_internal() -> None:
    in_com = Cfg(search=("com.svc.cluster.local", "svc.cluster.local", "cluster.local"), ndots=5)
    assert plan("api.example.com", in_com) == glibc_order("api.example.com", in_com)
    assert plan("api.example.net", in_com) == external_order("api.example.net", in_com)


def test_internal_suffixes_and_an_explicit_cluster_domain_are_internal() -> None:
    config = Cfg(
        search=("ns1.svc.k8s.example.com", "svc.k8s.example.com"),
        ndots=5,
        internal_suffixes=("corp.example.net",),
    )
    for name in ("web.ns1.svc.k8s.example.com", "k8s.example.com", "git.corp.example.net"):
        assert plan(name, config) == glibc_order(name, config)
    assert plan("www.example.com", config) == external_order("www.example.com", config)
    explicit = replace(config, search=("corp.example",), cluster_domain="k8s.example.com")
    assert plan("web.ns.svc.k8s.example.com", explicit) == glibc_order(
        "web.ns.svc.k8s.example.com", explicit
    )


def test_external_tlds_can_be_changed() -> None:
    with_io = replace(K8S, external_tlds=(*DEFAULT_EXTERNAL_TLDS, "io"))
    assert plan("api.example.io", with_io) == external_order("api.example.io", with_io)
    without_com = replace(K8S, external_tlds=("net",))
    assert plan("api.example.com", without_com) == glibc_order("api.example.com", without_com)
    assert plan("www.bbc.co.uk", without_com) == external_order("www.bbc.co.uk", without_com)
    # A listed TLD never overrides the namespace, svc, cluster or non-IANA rules.
    odd = replace(K8S, external_tlds=("ns1", "svc", "local", "internal"))
    for name in ("api.ns1", "x.svc", "x.cluster.local", "my-svc.internal"):
        assert plan(name, odd) == glibc_order(name, odd)


@pytest.mark.parametrize("name", ["api.example.com", "www.bbc.co.uk", "example.com", "my-svc"])
def test_external_first_off_gives_glibc_order(name: str) -> None:
    config = replace(K8S, external_first=False)
    assert plan(name, config) == glibc_order(name, config)
    assert not is_external(name, config)


def test_ndots_at_or_below_the_dots_asks_as_is_first_like_glibc() -> None:
    # The rule only reorders; with ndots:1 glibc itself asks a dotted name as-is first.
    low = replace(PROD, ndots=1)
    assert plan("web-0.nginx.prod", low) == glibc_order("web-0.nginx.prod", low)
    assert plan("web-0.nginx.prod", low)[0] == "web-0.nginx.prod."
    assert plan("my-svc", low)[0] == "my-svc.prod.svc.cluster.local."


@pytest.mark.parametrize(
    ("search", "cluster_domain", "expected"),
    [
        (K8S.search, None, "ns1"),
        (PROD.search, None, "prod"),
        (("Prod.Svc.Cluster.Local.",), None, "prod"),
        (("svc.cluster.local", "ns2.svc.cluster.local"), None, "ns2"),
        (("corp.example", "ns.svc.k8s.example.org"), None, "ns"),
        (("a.b.svc.cluster.local", "svc.cluster.local"), None, None),
        (("svc.cluster.local", "ns.svc.other.local"), None, None),
        (("ns.svc.k8s.internal",), "k8s.internal", "ns"),
        (("ns.svc.cluster.local",), "k8s.internal", None),
        (("corp.example",), None, None),
        ((), None, None),
    ],
)
def test_namespace_of(search: tuple[str, ...], cluster_domain: str | None, expected: str) -> None:
    assert namespace_of(search, cluster_domain) == expected


def test_plan_docstring_examples_hold() -> None:
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    examples = 0
    for function in (plan, namespace_of):
        for test in finder.find(
            function, function.__name__, globs={"plan": plan, "namespace_of": namespace_of}
        ):
            examples += len(test.examples)
            runner.run(test)
    assert examples >= 10
    assert runner.summarize(verbose=False).failed == 0


def test_preparation_is_cached_per_config() -> None:
    from safedns._planning import _prepare

    config = replace(K8S, ndots=4)  # a config no other test uses
    plan("api.example.com", config)
    before = _prepare.cache_info()
    for _ in range(10):
        plan("api.prod", config)
    after = _prepare.cache_info()
    assert after.hits - before.hits == 10
    assert after.misses == before.misses


# -------------------------------------------------------- the config fields


def test_config_defaults() -> None:
    config = ResolverConfig()
    assert config.external_first is True
    assert config.external_tlds == ("com", "net", "org", "edu", "gov", "mil", "int")
    assert config.external_tlds == DEFAULT_EXTERNAL_TLDS
    assert set(DEFAULT_EXTERNAL_TLDS) <= load_iana()[1]


def test_config_external_tlds_are_normalised() -> None:
    config = ResolverConfig(external_tlds=["COM", ".io.", "io", "XN--P1AI"])
    assert config.external_tlds == ("com", "io", "xn--p1ai")
    assert ResolverConfig(external_tlds=[]).external_tlds == ()
    assert plan("api.example.com", ResolverConfig(search=K8S.search, ndots=5, external_tlds=()))[
        0
    ] == ("api.example.com.ns1.svc.cluster.local.")


@pytest.mark.parametrize("bad", ["co.uk", "", ".", "a b", "ü", "a_b", "*", 5, None, "x" * 64])
def test_config_bad_external_tld_names_the_field(bad: object) -> None:
    with pytest.raises(ValueError, match="external_tlds"):
        ResolverConfig(external_tlds=[bad])  # type: ignore[list-item]


def test_config_external_tlds_rejects_a_bare_string() -> None:
    with pytest.raises(ValueError, match="external_tlds"):
        ResolverConfig(external_tlds="com")


@pytest.mark.parametrize("bad", ["yes", 0, 1, None])
def test_config_external_first_must_be_a_bool(bad: object) -> None:
    with pytest.raises(ValueError, match="external_first"):
        ResolverConfig(external_first=bad)  # type: ignore[arg-type]


def test_config_replace_repr_equality() -> None:
    config = ResolverConfig(search=K8S.search, ndots=5)
    off = config.replace(external_first=False, external_tlds=["net"])
    assert off.external_first is False and off.external_tlds == ("net",)
    assert config.external_first is True
    assert "external_first=False" in repr(off) and "external_tlds=('net',)" in repr(off)
    assert off != config and off == config.replace(external_first=False, external_tlds=("NET",))
    assert hash(off) == hash(config.replace(external_first=False, external_tlds=("net",)))
    with pytest.raises(ValueError, match="external_tlds"):
        config.replace(external_tlds=["co.uk"])
    assert plan("api.example.com", off) == glibc_order("api.example.com", K8S)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", False), ("false", False), (" Off ", False), ("no", False), ("1", True), ("ON", True)],
)
def test_safedns_external_first_env(tmp_path: Path, value: str, expected: bool) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 10.0.0.2\nsearch ns1.svc.cluster.local\noptions ndots:5\n")
    config = ResolverConfig.from_system(conf, environ={"SAFEDNS_EXTERNAL_FIRST": value})
    assert config.external_first is expected
    assert ResolverConfig.from_system(conf, environ={}).external_first is True
    assert ResolverConfig.from_system(conf, environ={"SAFEDNS_EXTERNAL_FIRST": ""}).external_first
    # An explicit override beats the environment.
    overridden = ResolverConfig.from_system(
        conf, environ={"SAFEDNS_EXTERNAL_FIRST": value}, external_first=not expected
    )
    assert overridden.external_first is not expected


def test_safedns_external_first_env_rejects_garbage(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 10.0.0.2\n")
    with pytest.raises(ValueError, match="SAFEDNS_EXTERNAL_FIRST"):
        ResolverConfig.from_system(conf, environ={"SAFEDNS_EXTERNAL_FIRST": "maybe"})


def test_plan_is_exported() -> None:
    assert safedns.plan is plan


# ------------------------------------------------- the rule, as properties

NAMESPACES = ("ns1", "prod", "dev", "com", "default")
CLUSTERS = ("cluster.local", "k8s.example.com", "cluster.internal")
TLDS = ("com", "net", "io", "de", "uk", "prod", "dev", "svc", "local", "internal", "xn--p1ai")


@st.composite
def pod_configs(draw: st.DrawFn) -> Cfg:
    namespace = draw(st.sampled_from(NAMESPACES))
    cluster = draw(st.sampled_from(CLUSTERS))
    search = [f"{namespace}.svc.{cluster}", f"svc.{cluster}", cluster]
    search += draw(
        st.lists(st.sampled_from(["corp.example", "ec2.internal", "lan"]), max_size=2, unique=True)
    )
    return Cfg(
        search=tuple(search),
        ndots=draw(st.integers(min_value=0, max_value=6)),
        cluster_domain=draw(st.sampled_from([None, cluster])),
        internal_suffixes=tuple(
            draw(st.lists(st.sampled_from(["corp.example.net", "io"]), max_size=2, unique=True))
        ),
        external_tlds=tuple(draw(st.lists(st.sampled_from(TLDS), max_size=5, unique=True))),
        external_first=draw(st.booleans()),
    )


@st.composite
def pod_names(draw: st.DrawFn) -> str:
    labels = draw(st.lists(st.sampled_from(["api", "web-0", "nginx", "svc", "ns1", "example"])))
    tail = draw(
        st.sampled_from(
            [*TLDS, *NAMESPACES, "svc.cluster.local", "k8s.example.com", "corp.example.net"]
        )
    )
    return ".".join([*labels, tail])


def clearly_external(name: str, config: Cfg) -> bool:
    """The documented rule, spelled out as in docs/planning.md."""
    labels = name.split(".")
    tld, dots = labels[-1], len(labels) - 1
    cluster = config.cluster_domain or cluster_domain_of(config.search)
    internal = [*config.internal_suffixes, *([cluster] if cluster else [])]
    rule_a = (
        tld == namespace_of(config.search, config.cluster_domain)
        or tld == "svc"
        or any(name == s or name.endswith(f".{s}") for s in internal)
    )
    rule_b = dots in (1, 2) and tld not in config.external_tlds
    rule_c = dots == 0 or tld not in load_iana()[1]
    rule_d = not config.external_first
    return not (rule_a or rule_b or rule_c or rule_d)


def cluster_name(name: str, config: Cfg) -> bool:
    """The documented cluster rule: five labels or more under the cluster domain."""
    cluster = config.cluster_domain or cluster_domain_of(config.search)
    return (
        config.external_first
        and cluster is not None
        and len(name.split(".")) >= 5
        and name.endswith(f".{cluster}")
    )


@settings(max_examples=400, deadline=None)
@given(name=pod_names(), config=pod_configs())
def test_plan_follows_the_documented_rule(name: str, config: Cfg) -> None:
    planned = plan(name, config)
    external = clearly_external(name, config)
    assert is_external(name, config) is external
    first = external or cluster_name(name, config)
    assert planned == (external_order(name, config) if first else glibc_order(name, config))


@settings(max_examples=300, deadline=None)
@given(name=valid_names(), config=CONFIGS, external_first=st.booleans())
def test_plan_is_a_permutation_of_glibc_and_equals_it_when_switched_off(
    name: str, config: Cfg, external_first: bool
) -> None:
    config = replace(config, external_first=external_first)
    planned = plan(name, config)
    expected = glibc_order(name, config)
    assert sorted(planned) == sorted(expected)
    if not external_first:
        assert planned == expected
    elif not name.endswith("."):
        first = is_external(name, config) or cluster_name(name, config)
        assert planned == (external_order(name, config) if first else expected)


@settings(max_examples=200, deadline=None)
@given(name=pod_names(), config=pod_configs())
def test_switched_off_plan_equals_the_replay_baseline(name: str, config: Cfg) -> None:
    from safedns._app.replay import glibc_plan

    real = ResolverConfig(
        search=config.search, ndots=config.ndots, external_first=False
    )  # the validated config the resolver uses
    assert plan(name, real) == glibc_plan(name, real.search, real.ndots)


def test_docs_planning_examples_hold() -> None:
    docs = Path(__file__).resolve().parent.parent / "docs" / "planning.md"
    results = doctest.testfile(str(docs), module_relative=False)
    assert results.attempted >= 5
    assert results.failed == 0
    k8s = ResolverConfig(search=K8S.search, ndots=5)
    rack = ResolverConfig(search=["example.net"], ndots=5)
    assert plan("db1.rack4.eu.prod", rack)[0] == "db1.rack4.eu.prod."
    assert plan("db1.rack4.eu.prod", rack.replace(internal_suffixes=["prod"]))[0] == (
        "db1.rack4.eu.prod.example.net."
    )
    assert plan("google.de", k8s)[-1] == "google.de."
