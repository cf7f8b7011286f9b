"""The sans-I/O core: cache policy, the cache, interpreting responses, the
budget and single-flight bookkeeping. No sockets, no sleeping."""

from __future__ import annotations

import asyncio
import threading

import dns.message
import dns.rcode
import dns.rrset
import pytest

from safedns import ResolverConfig
from safedns._budget import TokenBucket
from safedns._cache import DNSCache, entry_ttl
from safedns._records import Negative, Positive, UpstreamFailure, interpret
from safedns._singleflight import AsyncFlight, Flights, ThreadFlight
from tests.conftest import FakeClock

CONFIG = ResolverConfig(nameservers=["127.0.0.1"])


def response(
    qname: str,
    rdtype: str,
    answer: list[str] = (),  # type: ignore[assignment]
    authority: list[str] = (),  # type: ignore[assignment]
    rcode: int = dns.rcode.NOERROR,
) -> dns.message.Message:
    query = dns.message.make_query(qname, rdtype)
    reply = dns.message.make_response(query)
    reply.set_rcode(rcode)
    for line in answer:
        reply.answer.append(dns.rrset.from_text(*_split(line)))
    for line in authority:
        reply.authority.append(dns.rrset.from_text(*_split(line)))
    return reply


def _split(line: str) -> list[str]:
    name, ttl, rdclass, rdtype, *data = line.split()
    return [name, ttl, rdclass, rdtype, " ".join(data)]


SOA = ". 900 IN SOA ns.invalid. host.invalid. 1 3600 600 86400 60"


# -- policy -------------------------------------------------------------------


@pytest.mark.parametrize(("ttl", "expected"), [(0, 0), (30, 30), (3600, 3600), (86400 * 7, 3600)])
def test_positive_ttl_is_clamped_to_max(ttl: float, expected: float) -> None:
    assert entry_ttl(Positive(("192.0.2.1",), "a.", ttl), CONFIG) == expected


def test_positive_ttl_min() -> None:
    config = CONFIG.replace(min_ttl=5)
    assert entry_ttl(Positive(("192.0.2.1",), "a.", 1), config) == 5


def test_negative_ttl_rules() -> None:
    assert entry_ttl(Negative(True, "a.", 60), CONFIG) == 60
    assert entry_ttl(Negative(True, "a.", 9000), CONFIG) == 300  # max_negative_ttl
    assert entry_ttl(Negative(False, "a.", None), CONFIG) == 5  # negative_ttl_no_soa
    assert entry_ttl(Negative(False, "a.", None), CONFIG.replace(negative_ttl_no_soa=0)) == 0


# -- interpreting responses --------------------------------------------------


def test_interpret_answer() -> None:
    reply = response("a.example.", "A", ["a.example. 42 IN A 192.0.2.1"])
    assert interpret(reply, "a.example.", "A") == Positive(("192.0.2.1",), "a.example.", 42.0)


def test_interpret_cname_chain_takes_smallest_ttl() -> None:
    reply = response(
        "www.example.",
        "A",
        [
            "www.example. 300 IN CNAME mid.example.",
            "mid.example. 10 IN CNAME end.example.",
            "end.example. 60 IN A 192.0.2.9",
        ],
    )
    # One result, for the question asked: the chain answers nothing else. Its
    # owners (the question first) are the answer's aliases.
    aliases = ("www.example.", "mid.example.")
    assert interpret(reply, "www.example.", "A") == Positive(
        ("192.0.2.9",), "end.example.", 10.0, aliases
    )


def test_interpret_nxdomain_and_nodata_with_soa() -> None:
    nx = response("x.example.", "A", authority=[SOA], rcode=dns.rcode.NXDOMAIN)
    assert interpret(nx, "x.example.", "A") == Negative(True, "x.example.", 60)
    nodata = response("x.example.", "AAAA", authority=[SOA])
    assert interpret(nodata, "x.example.", "AAAA") == Negative(False, "x.example.", 60)
    bare = response("x.example.", "A", rcode=dns.rcode.NXDOMAIN)
    assert interpret(bare, "x.example.", "A") == Negative(True, "x.example.", None)


def test_interpret_nxdomain_after_cname_is_not_nxdomain_for_the_alias() -> None:
    reply = response(
        "alias.example.",
        "A",
        ["alias.example. 300 IN CNAME gone.example."],
        [SOA],
        rcode=dns.rcode.NXDOMAIN,
    )
    assert interpret(reply, "alias.example.", "A") == Negative(False, "gone.example.", 60)


@pytest.mark.parametrize(
    "chain",
    [
        ["a.example. 60 IN CNAME a.example."],
        ["a.example. 60 IN CNAME b.example.", "b.example. 60 IN CNAME a.example."],
        [f"c{i}.example. 60 IN CNAME c{i + 1}.example." for i in range(17)]
        + ["c17.example. 60 IN A 192.0.2.1"],
    ],
    ids=["self", "two-names", "17-hops"],
)
def test_interpret_cname_loop_or_overlong_chain_is_a_failure(chain: list[str]) -> None:
    qname = chain[0].split()[0]
    reply = response(qname, "A", chain)
    with pytest.raises(UpstreamFailure, match="CNAME"):
        interpret(reply, qname, "A")


def test_interpret_sixteen_hops_are_allowed() -> None:
    chain = [f"c{i}.example. 60 IN CNAME c{i + 1}.example." for i in range(16)]
    reply = response("c0.example.", "A", [*chain, "c16.example. 60 IN A 192.0.2.1"])
    owners = tuple(f"c{i}.example." for i in range(16))
    assert interpret(reply, "c0.example.", "A") == Positive(
        ("192.0.2.1",), "c16.example.", 60, owners
    )


@pytest.mark.parametrize("rcode", [dns.rcode.SERVFAIL, dns.rcode.REFUSED, dns.rcode.FORMERR])
def test_interpret_failures(rcode: int) -> None:
    with pytest.raises(UpstreamFailure):
        interpret(response("x.example.", "A", rcode=rcode), "x.example.", "A")


def test_interpret_ignores_records_for_other_names() -> None:
    reply = response("a.example.", "A", ["evil.example. 60 IN A 192.0.2.66"], [SOA])
    assert interpret(reply, "a.example.", "A") == Negative(False, "a.example.", 60)


# -- the cache ----------------------------------------------------------------


def test_cache_fresh_stale_gone(clock: FakeClock) -> None:
    config = CONFIG.replace(stale_ttl=100, prefetch=False)
    cache = DNSCache(config, clock)
    cache.put("a.", "A", Positive(("192.0.2.1",), "a.", 10), clock())
    entry = cache.get("a.", "A", clock())
    assert entry is not None and entry.fresh(clock())
    clock.advance(10)
    entry = cache.get("a.", "A", clock())
    assert entry is not None and not entry.fresh(clock())  # stale, kept
    clock.advance(100)
    assert cache.get("a.", "A", clock()) is None
    assert cache.sizes() == (0, 0)


def test_cache_nxdomain_covers_all_types_and_replaces_positive(clock: FakeClock) -> None:
    cache = DNSCache(CONFIG, clock)
    cache.put("a.", "A", Positive(("192.0.2.1",), "a.", 10), clock())
    clock.advance(1)
    cache.put("a.", "A", Negative(True, "a.", 30), clock())
    for rdtype in ("A", "AAAA", "TXT"):
        entry = cache.get("a.", rdtype, clock())
        assert entry is not None and isinstance(entry.result, Negative)


def test_cache_refresh_point(clock: FakeClock) -> None:
    cache = DNSCache(CONFIG.replace(prefetch_ratio=0.1), clock)
    entry = cache.put("a.", "A", Positive(("192.0.2.1",), "a.", 100), clock())
    assert entry is not None
    assert entry.refresh_at == pytest.approx(clock() + 90)


def test_negative_flood_cannot_evict_positive(clock: FakeClock) -> None:
    cache = DNSCache(CONFIG.replace(max_entries=100, max_negative_entries=50), clock)
    for i in range(100):
        cache.put(f"keep{i}.", "A", Positive(("192.0.2.1",), f"keep{i}.", 300), clock())
    for i in range(10_000):
        cache.put(f"junk{i}.", "A", Negative(True, f"junk{i}.", 300), clock())
    assert cache.sizes() == (100, 50)
    assert all(cache.get(f"keep{i}.", "A", clock()) is not None for i in range(100))


def test_positive_capacity_is_lru(clock: FakeClock) -> None:
    cache = DNSCache(CONFIG.replace(max_entries=2), clock)
    for name in ("a.", "b."):
        cache.put(name, "A", Positive(("192.0.2.1",), name, 300), clock())
    cache.get("a.", "A", clock())
    cache.put("c.", "A", Positive(("192.0.2.1",), "c.", 300), clock())
    assert cache.get("b.", "A", clock()) is None
    assert cache.get("a.", "A", clock()) is not None


# -- budget and flights -------------------------------------------------------


def test_token_bucket_burst_then_rate() -> None:
    bucket = TokenBucket(rate=10, burst=5, now=0.0)
    assert [bucket.try_acquire(0.0) for _ in range(6)] == [True] * 5 + [False]
    assert not bucket.try_acquire(0.05)
    assert bucket.try_acquire(0.1)
    assert bucket.available(100.0) == 5  # never above the burst


def test_token_bucket_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(0, 1, 0.0)
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(1, 0, 0.0)


def test_single_flight_one_leader() -> None:
    flights: Flights[str, ThreadFlight[int]] = Flights(ThreadFlight)
    first, lead = flights.begin("q", 1.0)
    second, follow = flights.begin("q", 2.0)
    assert lead and not follow and first is second
    assert first.followers == 1 and first.started == 1.0
    waiter = threading.Thread(target=second.wait)
    waiter.start()
    flights.finish("q", first, 42)
    waiter.join(1)
    assert not waiter.is_alive() and second.result == 42 and second.landed
    flights.finish("q", first, 43)  # a flight lands once
    assert first.result == 42
    third, lead_again = flights.begin("q", 3.0)
    assert lead_again and third is not first


def test_async_flight_wakes_tasks() -> None:
    async def main() -> list[object]:
        loop = asyncio.get_running_loop()
        flights: Flights[str, AsyncFlight[str]] = Flights(lambda now: AsyncFlight(now, loop))
        flight, lead = flights.begin("q", 0.0)
        assert lead

        async def follower() -> object:
            joined, leader = flights.begin("q", 0.0)
            assert not leader
            await joined.future
            return joined.result

        waiting = [asyncio.ensure_future(follower()) for _ in range(3)]
        await asyncio.sleep(0)
        flights.finish("q", flight, None, UpstreamFailure("boom"))
        results = await asyncio.gather(*waiting)
        assert isinstance(flight.error, UpstreamFailure) and not flights.in_flight("q")
        return results

    assert asyncio.run(main()) == [None, None, None]


def test_async_flight_waits_end_on_landing_timeout_or_own_cancel_only() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        flight: AsyncFlight[str] = AsyncFlight(0.0, loop)
        # A thousand followers with one timeout: each has its own future, and
        # cancelling some never disturbs the flight or the others.
        waits = [flight.wait(60.0) for _ in range(1000)]
        assert len({id(w) for w in waits}) == 1000
        for w in waits[:10]:
            w.cancel()
        started = loop.time()
        short = flight.wait(0.05)
        await short  # the timeout ends it; the flight is still in the air
        assert loop.time() - started >= 0.05 - 1e-6 and not flight.landed
        assert not any(w.done() for w in waits[10:])
        flight.land("answer", None)
        await asyncio.gather(*waits[10:])
        assert all(w.cancelled() for w in waits[:10]) and flight.result == "answer"
        # Once landed (or with no time left) a wait is over at once.
        assert flight.wait(60.0).done() and AsyncFlight(0.0, loop).wait(0.0).done()

    asyncio.run(main())


def test_cache_keeps_existence_consistent(clock: FakeClock) -> None:
    cache = DNSCache(CONFIG, clock)
    cache.put("a.", "AAAA", Negative(True, "a.", 30), clock())
    cache.put("a.", "A", Positive(("192.0.2.1",), "a.", 300), clock())
    # The name exists now: the NXDOMAIN no longer answers its other types.
    assert cache.get("a.", "AAAA", clock()) is None
    cache.put("a.", "AAAA", Negative(False, "a.", 30), clock())
    cache.put("a.", "TXT", Negative(True, "a.", 30), clock())
    # An NXDOMAIN never erases data of another type within its TTL: the data
    # wins, and the NXDOMAIN is kept as NODATA for its own type.
    entry = cache.get("a.", "A", clock())
    assert entry is not None and isinstance(entry.result, Positive)
    entry = cache.get("a.", "TXT", clock())
    assert entry is not None and isinstance(entry.result, Negative)
    assert not entry.result.nxdomain
    assert cache.sizes() == (1, 2)
    # Once the address is past its TTL, an NXDOMAIN answers every type again.
    clock.advance(301)
    cache.put("a.", "MX", Negative(True, "a.", 30), clock())
    for rdtype in ("A", "AAAA", "MX"):
        entry = cache.get("a.", rdtype, clock())
        assert entry is not None and isinstance(entry.result, Negative)
        assert entry.result.nxdomain


def test_a_negative_never_shadows_fresh_data_of_another_type(clock: FakeClock) -> None:
    cache = DNSCache(CONFIG, clock)
    # The NXDOMAIN first, then data of another type: the data answers its type.
    cache.put("b.", "AAAA", Negative(True, "b.", 300), clock())
    cache.put("b.", "A", Positive(("192.0.2.2",), "b.", 60), clock())
    entry = cache.get("b.", "A", clock())
    assert entry is not None and isinstance(entry.result, Positive)
    # A and the AAAA NXDOMAIN of one exchange, in that order.
    cache.put("c.", "A", Positive(("192.0.2.3",), "c.", 60), clock())
    cache.put("c.", "AAAA", Negative(True, "c.", 300), clock())
    entry = cache.get("c.", "A", clock())
    assert entry is not None and isinstance(entry.result, Positive)
    entry = cache.get("c.", "AAAA", clock())
    assert entry is not None and isinstance(entry.result, Negative)
    assert entry.expires == pytest.approx(clock() + 300)
