"""The resolver against the embedded DNS server: queries counted at the server."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from safedns import (
    InvalidName,
    NameNotFound,
    ResolveError,
    Resolver,
    TemporaryFailure,
)
from safedns.testing import DNSServer
from tests.conftest import FakeClock, QueryGate, k8s_config


def test_external_name_sends_one_query_for_a_thousand_lookups(server: DNSServer) -> None:
    resolver = Resolver(k8s_config(server))
    for _ in range(1000):
        answer = resolver.resolve("api.example.com", "A")
    assert answer.addresses == ["192.0.2.10"]
    assert answer.name == "api.example.com."
    assert answer.from_cache and not answer.stale
    assert server.queries == [("api.example.com.", "A")]
    stats = resolver.stats()
    assert stats.lookups == 1000
    assert stats.upstream_queries == 1
    assert stats.cache_hits == 999


def test_first_answer_is_not_from_cache_and_has_full_ttl(server: DNSServer) -> None:
    answer = Resolver(k8s_config(server)).resolve("api.example.com")
    assert not answer.from_cache
    assert answer.ttl == 60
    assert answer.rdtype == "A"


def test_short_name_walks_the_search_list_once(server: DNSServer) -> None:
    resolver = Resolver(k8s_config(server))
    answer = resolver.resolve("my-svc", "A")
    assert answer.name == "my-svc.ns1.svc.cluster.local."
    assert answer.addresses == ["10.0.0.5"]
    assert server.queries == [("my-svc.ns1.svc.cluster.local.", "A")]
    server.clear()
    for _ in range(100):
        assert resolver.resolve("my-svc", "A").addresses == ["10.0.0.5"]
    assert server.queries == []


def test_dotted_internal_name_tries_search_list_first(server: DNSServer) -> None:
    resolver = Resolver(k8s_config(server))
    answer = resolver.resolve("my-svc.ns1")
    assert answer.name == "my-svc.ns1.svc.cluster.local."
    assert server.queries == [
        ("my-svc.ns1.ns1.svc.cluster.local.", "A"),
        ("my-svc.ns1.svc.cluster.local.", "A"),
    ]
    server.clear()
    for _ in range(50):
        resolver.resolve("my-svc.ns1")
    assert server.queries == []


def test_cluster_name_is_asked_as_is_first_and_a_trailing_dot_asks_it_alone(
    server: DNSServer,
) -> None:
    # Five labels under the cluster domain: as-is first (4 dots < ndots 5 would
    # walk the search list first under glibc); nothing is dropped.
    resolver = Resolver(k8s_config(server))
    resolver.resolve("my-svc.ns1.svc.cluster.local")
    assert server.queries == [("my-svc.ns1.svc.cluster.local.", "A")]
    server.clear()
    Resolver(k8s_config(server)).resolve("my-svc.ns1.svc.cluster.local.")
    assert server.queries == [("my-svc.ns1.svc.cluster.local.", "A")]


def test_missing_name_is_cached_for_every_candidate(server: DNSServer) -> None:
    resolver = Resolver(k8s_config(server))
    with pytest.raises(NameNotFound) as info:
        resolver.resolve("nope.example.com", "A")
    assert info.value.nxdomain
    assert server.queries == [
        ("nope.example.com.", "A"),
        ("nope.example.com.ns1.svc.cluster.local.", "A"),
        ("nope.example.com.svc.cluster.local.", "A"),
        ("nope.example.com.cluster.local.", "A"),
    ]
    server.clear()
    for _ in range(100):
        with pytest.raises(NameNotFound):
            resolver.resolve("nope.example.com", "A")
    assert server.queries == []
    assert resolver.stats().negative_hits == 400


def test_nodata_is_name_not_found_without_nxdomain(server: DNSServer) -> None:
    resolver = Resolver(k8s_config(server))
    with pytest.raises(NameNotFound) as info:
        resolver.resolve("api.example.com.", "AAAA")
    assert not info.value.nxdomain
    assert isinstance(info.value, ResolveError)
    server.clear()
    with pytest.raises(NameNotFound):
        resolver.resolve("api.example.com.", "AAAA")
    assert server.queries == []


def test_resolve_addresses_returns_both_families(server: DNSServer) -> None:
    resolver = Resolver(k8s_config(server))
    assert resolver.resolve_addresses("dual.example.com") == ["192.0.2.11", "2001:db8::11"]
    assert sorted(server.queries) == [("dual.example.com.", "A"), ("dual.example.com.", "AAAA")]
    assert resolver.resolve_addresses("dual.example.com", socket.AF_INET) == ["192.0.2.11"]
    assert resolver.resolve_addresses("dual.example.com", socket.AF_INET6) == ["2001:db8::11"]
    assert len(server.queries) == 2
    with pytest.raises(ValueError, match="family"):
        resolver.resolve_addresses("dual.example.com", 12345)


def test_resolve_addresses_asks_a_and_aaaa_concurrently(server: DNSServer) -> None:
    # The gate forwards nothing until both queries are in: one after the other
    # would never open it (the first reply would be awaited first).
    with QueryGate(server, count=2) as gate:
        resolver = Resolver(k8s_config(gate.nameserver, timeout=10.0))
        assert resolver.resolve_addresses("dual.example.com.") == ["192.0.2.11", "2001:db8::11"]
    assert gate.opened and gate.received == 2


def test_ttl_counts_down_and_expiry_asks_again(server: DNSServer, clock: FakeClock) -> None:
    resolver = Resolver(k8s_config(server, prefetch=False), clock=clock)
    assert resolver.resolve("api.example.com").ttl == 60
    clock.advance(20.5)
    answer = resolver.resolve("api.example.com")
    assert answer.from_cache and answer.ttl == 40
    assert len(server.queries) == 1
    clock.advance(40)
    answer = resolver.resolve("api.example.com")
    assert not answer.from_cache and answer.ttl == 60
    assert len(server.queries) == 2


def test_ttl_is_clamped(server: DNSServer, clock: FakeClock) -> None:
    resolver = Resolver(k8s_config(server, max_ttl=10, prefetch=False), clock=clock)
    assert resolver.resolve("api.example.com").ttl == 10
    clock.advance(10)
    resolver.resolve("api.example.com")
    assert len(server.queries) == 2
    server.add("short.example.com", "A", "192.0.2.99", ttl=1)
    resolver = Resolver(k8s_config(server, min_ttl=30, prefetch=False), clock=clock)
    assert resolver.resolve("short.example.com").ttl == 30
    clock.advance(29)
    resolver.resolve("short.example.com")
    assert server.queries.count(("short.example.com.", "A")) == 1


def test_negative_ttl_follows_the_soa_and_its_cap(server: DNSServer, clock: FakeClock) -> None:
    server.negative_ttl = 30
    resolver = Resolver(k8s_config(server, prefetch=False), clock=clock)
    with pytest.raises(NameNotFound):
        resolver.resolve("gone.example.com.")
    clock.advance(29)
    with pytest.raises(NameNotFound):
        resolver.resolve("gone.example.com.")
    assert len(server.queries) == 1
    clock.advance(1)
    with pytest.raises(NameNotFound):
        resolver.resolve("gone.example.com.")
    assert len(server.queries) == 2
    capped = Resolver(k8s_config(server, max_negative_ttl=5), clock=clock)
    server.clear()
    with pytest.raises(NameNotFound):
        capped.resolve("gone.example.com.")
    clock.advance(5)
    with pytest.raises(NameNotFound):
        capped.resolve("gone.example.com.")
    assert len(server.queries) == 2


def test_nxdomain_answers_every_type_of_the_name(server: DNSServer) -> None:
    resolver = Resolver(k8s_config(server))
    with pytest.raises(NameNotFound):
        resolver.resolve("gone.example.com.", "A")
    with pytest.raises(NameNotFound):
        resolver.resolve("gone.example.com.", "AAAA")
    assert server.queries == [("gone.example.com.", "A")]


def test_cname_chain_is_followed_and_cached_for_the_name_asked(server: DNSServer) -> None:
    resolver = Resolver(k8s_config(server))
    answer = resolver.resolve("www.example.org")
    assert answer.addresses == ["198.51.100.7"]
    assert answer.name == "www.example.org."
    assert answer.canonical_name == "edge.cdn.example.net."
    assert answer.ttl == 20  # the smallest TTL along the chain
    resolver.flush("nothing.example.")  # empties the memo, keeps the cache
    server.clear()
    assert resolver.resolve("www.example.org").from_cache
    assert resolver.resolve("edge.cdn.example.net").addresses == ["198.51.100.7"]
    assert server.queries == [("edge.cdn.example.net.", "A")]  # the target: its own question


def test_a_cname_chain_reply_never_answers_another_name(server: DNSServer) -> None:
    """Issue 8 §5: one bad reply cannot poison the cache for other names."""
    server.add("bank.example.net", "A", "192.0.2.50")
    server.craft(
        "evil.example.com",
        "A",
        [
            "evil.example.com. 300 IN CNAME bank.example.net.",
            "bank.example.net. 300 IN A 203.0.113.66",
        ],
    )
    resolver = Resolver(k8s_config(server))
    evil = resolver.resolve("evil.example.com")
    assert evil.addresses == ["203.0.113.66"]  # the answer to the question asked
    assert evil.canonical_name == "bank.example.net."
    assert resolver.resolve("bank.example.net").addresses == ["192.0.2.50"]
    assert resolver.resolve_addresses("bank.example.net") == ["192.0.2.50"]
    assert ("bank.example.net.", "A") in server.queries


@pytest.mark.parametrize("rdtype", ["A", "AAAA"])
def test_a_cname_loop_is_a_failure_not_a_missing_name(server: DNSServer, rdtype: str) -> None:
    server.add("loop1.example.com", "CNAME", "loop2.example.com")
    server.add("loop2.example.com", "CNAME", "loop1.example.com")
    resolver = Resolver(k8s_config(server))
    for _ in range(2):  # and not cached as NODATA either
        with pytest.raises(ResolveError) as info:
            resolver.resolve("loop1.example.com", rdtype)
        assert not isinstance(info.value, NameNotFound)
        assert isinstance(info.value, TemporaryFailure)
        assert "CNAME loop" in str(info.value)
        assert isinstance(info.value.__cause__, Exception)
    assert len(server.queries) == 2


def test_cname_query_type(server: DNSServer) -> None:
    answer = Resolver(k8s_config(server)).resolve("www.example.org", "cname")
    assert answer.records == ["edge.cdn.example.net."]
    assert answer.addresses == []
    assert answer.rdtype == "CNAME"


def test_truncated_udp_answer_is_retried_over_tcp(server: DNSServer) -> None:
    server.truncate = True
    resolver = Resolver(k8s_config(server))
    assert resolver.resolve("api.example.com").addresses == ["192.0.2.10"]
    assert server.query_log == [
        ("api.example.com.", "A", "udp"),
        ("api.example.com.", "A", "tcp"),
    ]


def test_tcp_retry_does_not_eat_the_udp_deadline(server: DNSServer) -> None:
    """Issue 8 §4: A comes back truncated first, its TCP retry takes longer
    than the UDP deadline has left; the AAAA reply already waiting in the
    socket is still accepted."""
    server.truncate_types = {"A"}
    server.delay = 0.6  # UDP and TCP replies alike
    resolver = Resolver(k8s_config(server, timeout=1.0, attempts=1))
    assert resolver.resolve_addresses("dual.example.com") == ["192.0.2.11", "2001:db8::11"]
    assert sorted(server.query_log) == [
        ("dual.example.com.", "A", "tcp"),
        ("dual.example.com.", "A", "udp"),
        ("dual.example.com.", "AAAA", "udp"),
    ]
    assert resolver.stats().upstream_errors == 0


def test_large_answer_needs_tcp(server: DNSServer) -> None:
    for i in range(100):
        server.add("big.example.com", "A", f"192.0.2.{i + 1}")
    answer = Resolver(k8s_config(server)).resolve("big.example.com")
    assert len(answer.addresses) == 100
    assert [t for _, _, t in server.query_log] == ["udp", "tcp"]


def test_timeout_is_a_temporary_failure_and_not_cached(server: DNSServer) -> None:
    server.stop()
    resolver = Resolver(k8s_config(server, timeout=0.2, attempts=2))
    started = time.monotonic()
    with pytest.raises(TemporaryFailure) as info:
        resolver.resolve("api.example.com")
    assert time.monotonic() - started < 1.5
    assert "timed out" in str(info.value)
    assert server.queries == [("api.example.com.", "A")] * 2  # attempts honoured
    server.start()
    assert resolver.resolve("api.example.com").addresses == ["192.0.2.10"]
    assert resolver.stats().upstream_errors == 1


def test_servfail_is_temporary_and_not_cached_as_nxdomain(server: DNSServer) -> None:
    server.servfail = True
    resolver = Resolver(k8s_config(server))
    with pytest.raises(TemporaryFailure, match="SERVFAIL"):
        resolver.resolve("my-svc")
    server.servfail = False
    assert resolver.resolve("my-svc").addresses == ["10.0.0.5"]


def test_refused_is_temporary(server: DNSServer) -> None:
    server.refused = True
    with pytest.raises(TemporaryFailure, match="REFUSED"):
        Resolver(k8s_config(server)).resolve("api.example.com")


def test_failover_to_the_next_server_and_back_off_the_dead_one(clock: FakeClock) -> None:
    asked: list[str] = []
    with DNSServer() as dead, DNSServer() as alive:
        for srv in (dead, alive):
            srv.add("api.example.com", "A", "192.0.2.10", ttl=60)
            srv.add("b.example.com", "A", "192.0.2.20", ttl=60)
            srv.add("c.example.com", "A", "192.0.2.30", ttl=60)
        dead.stop()
        resolver = Resolver(
            k8s_config(dead, alive, timeout=0.2),
            clock=clock,
            on_query=lambda server, *_: asked.append(server),
        )
        assert resolver.resolve("api.example.com").addresses == ["192.0.2.10"]
        assert dead.queries == [("api.example.com.", "A")]
        assert alive.queries == [("api.example.com.", "A")]
        # The dead server is skipped while it is backed off (server_backoff, 30 s
        # on the resolver's clock) ...
        clock.advance(29)
        asked.clear()
        assert resolver.resolve("b.example.com").addresses == ["192.0.2.20"]
        assert asked == [alive.nameserver]
        # ... and asked first again once the back-off is over.
        clock.advance(2)
        asked.clear()
        assert resolver.resolve("c.example.com").addresses == ["192.0.2.30"]
        assert asked == [dead.nameserver, alive.nameserver]


def test_rotate_spreads_queries_over_servers() -> None:
    with DNSServer() as one, DNSServer() as two:
        for srv in (one, two):
            for i in range(6):
                srv.add(f"n{i}.example.com", "A", "192.0.2.1")
        resolver = Resolver(k8s_config(one, two, rotate=True))
        for i in range(6):
            resolver.resolve(f"n{i}.example.com")
        assert len(one.queries) == 3 and len(two.queries) == 3


def test_wrong_id_and_garbage_replies_are_ignored(server: DNSServer) -> None:
    server.wrong_id = True
    assert Resolver(k8s_config(server)).resolve("api.example.com").addresses == ["192.0.2.10"]


@pytest.mark.parametrize(
    "name", ["", "a..b", ".leading", "x" * 64 + ".com", "a b.example.com", "ünicode\x00.com"]
)
def test_invalid_names_raise_invalid_name(server: DNSServer, name: str) -> None:
    with pytest.raises(InvalidName):
        Resolver(k8s_config(server)).resolve(name)
    assert server.queries == []


def test_bad_record_type(server: DNSServer) -> None:
    resolver = Resolver(k8s_config(server))
    with pytest.raises(ValueError, match="record type"):
        resolver.resolve("api.example.com", "NOPE")
    with pytest.raises(TypeError):
        resolver.resolve("api.example.com", True)


def test_threads_share_one_resolver(server: DNSServer) -> None:
    resolver = Resolver(k8s_config(server))
    names = ["api.example.com", "my-svc", "dual.example.com", "www.example.org"]
    expected = {n: resolver.resolve_addresses(n) for n in names}
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for i in range(300):
                name = names[i % len(names)]
                assert resolver.resolve_addresses(name) == expected[name]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_close_leaves_no_thread_behind(server: DNSServer, clock: FakeClock) -> None:
    before = set(threading.enumerate())
    resolver = Resolver(k8s_config(server), clock=clock)
    resolver.resolve("api.example.com")
    clock.advance(57)  # inside the refresh-ahead window
    resolver.resolve("api.example.com")
    resolver.close()
    assert set(threading.enumerate()) <= before


def test_address_lookups_hit_the_memo(server: DNSServer) -> None:
    resolver = Resolver(k8s_config(server))
    first = resolver.lookup_addresses("dual.example.com")
    assert [a.from_cache for a in first] == [False, False]
    before = resolver.stats()
    for _ in range(10):
        answers = resolver.lookup_addresses("dual.example.com")
        assert resolver.resolve_addresses("dual.example.com") == ["192.0.2.11", "2001:db8::11"]
    assert [a.from_cache for a in answers] == [True, True]
    after = resolver.stats()
    assert after.lookups - before.lookups == 20
    assert after.cache_hits - before.cache_hits == 20
    assert after.cache_misses == before.cache_misses
    answers.clear()  # callers own the lists they get
    assert len(resolver.lookup_addresses("dual.example.com")) == 2


def test_ip_literals_answer_themselves(server: DNSServer) -> None:
    resolver = Resolver(k8s_config(server))
    assert resolver.resolve_addresses("10.0.0.1") == ["10.0.0.1"]
    assert resolver.resolve_addresses("::1") == ["::1"]
    assert resolver.resolve_addresses(b"2001:DB8::0:1") == ["2001:db8::1"]
    assert resolver.resolve_addresses("10.0.0.1", socket.AF_INET) == ["10.0.0.1"]
    with pytest.raises(NameNotFound):
        resolver.resolve_addresses("10.0.0.1", socket.AF_INET6)
    assert server.queries == []


# -- RFC 6761 special-use names (issue 8 §6) ------------------------------------


@pytest.mark.parametrize(
    "name", ["localhost", "localhost.", "LocalHost", "x.localhost", b"a.b.localhost"]
)
def test_localhost_is_loopback_without_a_query(server: DNSServer, name: str | bytes) -> None:
    resolver = Resolver(k8s_config(server))
    answer = resolver.resolve(name)
    assert answer.addresses == ["127.0.0.1"]
    assert answer.name.endswith("localhost.") and answer.from_cache
    assert resolver.resolve(name, "AAAA").addresses == ["::1"]
    assert resolver.resolve_addresses(name) == ["127.0.0.1", "::1"]
    assert resolver.resolve_addresses(name, socket.AF_INET6) == ["::1"]
    with pytest.raises(NameNotFound) as info:
        resolver.resolve(name, "MX")
    assert not info.value.nxdomain
    assert server.queries == []
    assert resolver.stats().upstream_queries == 0


@pytest.mark.parametrize("name", ["invalid", "invalid.", "foo.invalid", "a.b.INVALID"])
def test_invalid_does_not_exist_without_a_query(server: DNSServer, name: str) -> None:
    resolver = Resolver(k8s_config(server))
    for rdtype in ("A", "AAAA", "TXT"):
        with pytest.raises(NameNotFound) as info:
            resolver.resolve(name, rdtype)
        assert info.value.nxdomain
    with pytest.raises(NameNotFound):
        resolver.resolve_addresses(name)
    assert server.queries == []


def test_names_that_only_look_special_are_asked(server: DNSServer) -> None:
    server.add("localhost.example.com", "A", "192.0.2.77")
    resolver = Resolver(k8s_config(server))
    assert resolver.resolve("localhost.example.com").addresses == ["192.0.2.77"]
    with pytest.raises(NameNotFound):
        resolver.resolve("notlocalhost")
    assert server.queries[0] == ("localhost.example.com.", "A")
    with pytest.raises(InvalidName):
        resolver.resolve("a..localhost")


def test_cli_resolve_localhost(server: DNSServer, capsys: pytest.CaptureFixture[str]) -> None:
    from safedns._app.cli import main

    assert main(["resolve", "localhost", "--server", server.nameserver]) == 0
    assert "127.0.0.1" in capsys.readouterr().out
    assert main(["resolve", "localhost", "--type", "AAAA", "--server", server.nameserver]) == 0
    assert "::1" in capsys.readouterr().out
    assert server.queries == []


# -- bounded memo tables (issue 8 §6) -------------------------------------------


def test_a_full_memo_evicts_its_oldest_entry_only(server: DNSServer) -> None:
    for i in range(4):
        server.add(f"n{i}.example.com", "A", f"192.0.2.{i + 1}")
    resolver = Resolver(k8s_config(server, max_entries=3))
    first = [resolver.resolve(f"n{i}.example.com") for i in range(3)]
    memoised = [resolver.resolve(f"n{i}.example.com") for i in range(3)]
    resolver.resolve("n3.example.com")  # the memo is full: n0 goes, alone
    assert resolver.resolve("n1.example.com") is memoised[1]
    assert resolver.resolve("n2.example.com") is memoised[2]
    again = resolver.resolve("n0.example.com")
    assert again is not memoised[0] and again.addresses == first[0].addresses


def test_temporary_failure_is_chained_to_what_upstream_did(server: DNSServer) -> None:
    server.servfail = True
    with pytest.raises(TemporaryFailure) as info:
        Resolver(k8s_config(server)).resolve("api.example.com")
    assert info.value.__cause__ is not None and "SERVFAIL" in str(info.value.__cause__)
