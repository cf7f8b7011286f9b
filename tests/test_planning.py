"""Tests for safedns._planning: name encoding, candidate order, the IANA list."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safedns._exceptions import InvalidName
from safedns._planning import _iana as load_iana
from safedns._planning import (
    cluster_domain_of,
    encode_name,
    iana_tld_version,
    is_external,
    plan,
)


@dataclass(frozen=True)
class Cfg:
    search: tuple[str, ...] = ()
    ndots: int = 1
    cluster_domain: str | None = None
    internal_suffixes: tuple[str, ...] = ()


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
    (K8S, "my-svc.ns1.svc.cluster.local", ["my-svc.ns1.svc.cluster.local."]),
    (K8S, "cluster.local", ["cluster.local."]),
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
    assert plan("web.default.svc.k8s.internal", config) == ["web.default.svc.k8s.internal."]
    assert plan("web", config) == ["web.corp.example.", "web."]


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
    assert is_external("xn--mnchen-3ya.xn--p1ai", K8S)
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
