"""Direct unit tests of the sans-I/O core: ``TokenBucket``, ``Core``, ``Walk``
and ``Exchange``, driven by scripted dnspython messages and a fake clock.
No socket, no thread, no sleep."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from safedns import NameNotFound, ResolveError, ResolverConfig, TemporaryFailure
from safedns._budget import TokenBucket
from safedns._cache import Entry
from safedns._core import Ask, Core, Got, Walk
from safedns._records import Negative, Positive, UpstreamFailure
from safedns._singleflight import Flights, ThreadFlight
from safedns._upstream import Exchange
from tests.conftest import K8S_SEARCH, FakeClock

CONFIG = ResolverConfig(nameservers=["127.0.0.1"], failure_recheck=1, budget_wait=1.0)
SOA = ". 60 IN SOA ns.invalid. host.invalid. 1 3600 600 86400 60"


def reply(
    qname: str,
    rdtype: str,
    answer: list[str] = (),  # type: ignore[assignment]
    rcode: dns.rcode.Rcode = dns.rcode.NOERROR,
    authority: list[str] = (),  # type: ignore[assignment]
) -> dns.message.Message:
    message = dns.message.make_response(dns.message.make_query(qname, rdtype))
    message.set_rcode(rcode)
    for line in answer:
        name, ttl, rdclass, rtype, *data = line.split()
        message.answer.append(dns.rrset.from_text(name, int(ttl), rdclass, rtype, " ".join(data)))
    for line in authority:
        name, ttl, rdclass, rtype, *data = line.split()
        message.authority.append(
            dns.rrset.from_text(name, int(ttl), rdclass, rtype, " ".join(data))
        )
    return message


# -- TokenBucket: the budget's arithmetic ----------------------------------------


def test_reserve_takes_a_token_at_once_while_the_bucket_holds_one() -> None:
    bucket = TokenBucket(10, 3, 0.0)
    assert [bucket.reserve(0.0, 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.reserve(0.0, 0.0) is None  # empty, and no wait allowed
    assert bucket.available(0.0) == 0.0


def test_reservations_queue_in_arrival_order() -> None:
    bucket = TokenBucket(10, 10, 0.0)
    delays = [bucket.reserve(0.0, 3.0) for _ in range(30)]
    assert delays[:10] == [0.0] * 10
    # Token 11 arrives 0.1 s from now, token 30 after 2 s: one per 1/qps, in order.
    assert delays[10:] == pytest.approx([0.1 * k for k in range(1, 21)])
    assert bucket.available(0.0) == pytest.approx(-20)


def test_a_wait_longer_than_max_wait_reserves_nothing() -> None:
    bucket = TokenBucket(10, 10, 0.0)
    delays = [bucket.reserve(0.0, 1.0) for _ in range(25)]
    assert delays[:20] == pytest.approx([0.0] * 10 + [0.1 * k for k in range(1, 11)])
    assert delays[20:] == [None] * 5
    assert bucket.available(0.0) == pytest.approx(-10)  # the denied took nothing
    # Time pays the debt back: 1 s later the queue is gone, 0.1 s more is a token.
    assert bucket.reserve(1.0, 0.0) is None
    assert bucket.reserve(1.1, 0.0) == 0.0


def test_reservations_never_exceed_burst_plus_rate_times_elapsed() -> None:
    bucket = TokenBucket(10, 10, 0.0)
    sends: list[float] = []
    now = 0.0
    for step in range(400):  # 40 reservations per second asked for 10 s
        now = step * 0.025
        delay = bucket.reserve(now, 1.0)
        if delay is not None:
            sends.append(now + delay)
    sends.sort()
    for n, at in enumerate(sends, start=1):
        assert n <= 10 + 10 * at + 1e-9
    assert len(sends) == pytest.approx(10 + 10 * 10, abs=11)  # the budget, all used


def test_try_acquire_does_not_jump_the_queue() -> None:
    bucket = TokenBucket(10, 1, 0.0)
    assert bucket.reserve(0.0, 1.0) == 0.0
    assert bucket.reserve(0.0, 1.0) == pytest.approx(0.1)
    assert not bucket.try_acquire(0.1)  # the token of 0.1 s is reserved
    assert bucket.try_acquire(0.2)


def test_budget_wait_is_validated() -> None:
    assert ResolverConfig().budget_wait == 2.0
    assert CONFIG.replace(budget_wait=0).budget_wait == 0.0
    for bad in (-1, float("inf"), "1", True):
        with pytest.raises(ValueError, match="budget_wait"):
            CONFIG.replace(budget_wait=bad)


# -- Core -------------------------------------------------------------------------


def test_core_spend_counts_waits_and_denials_apart(clock: FakeClock) -> None:
    core = Core(CONFIG.replace(upstream_qps=1, upstream_burst=1), clock)
    assert core.spend(clock(), 1.0) == 0.0
    assert core.spend(clock(), 1.0) == pytest.approx(1.0)
    assert core.spend(clock(), 1.0) is None
    stats = core.stats()
    assert (stats.budget_waits, stats.budget_denied) == (1, 1)


def test_core_budget_wait_is_capped_by_the_lookup_and_zero_with_stale(clock: FakeClock) -> None:
    core = Core(CONFIG.replace(budget_wait=2.0), clock)
    assert core.budget_wait(None, 10.0) == 2.0
    assert core.budget_wait(None, 0.5) == 0.5
    assert core.budget_wait(None, -1.0) == 0.0
    stale = Entry(Positive(("192.0.2.1",), "a.", 60), clock() - 1, clock() - 1)
    assert core.budget_wait(stale, 10.0) == 0.0
    assert core.lifetime() == CONFIG.timeout * CONFIG.attempts


def test_core_admit_returns_the_longest_delay_and_fails_the_rest(clock: FakeClock) -> None:
    core = Core(CONFIG.replace(upstream_qps=10, upstream_burst=1), clock)
    flights: Flights[tuple[str, str], ThreadFlight[Entry]] = Flights(ThreadFlight)
    keys = [("a.", "A"), ("a.", "AAAA"), ("b.", "A")]
    led = [(key, flights.begin(key, 0.0)[0]) for key in keys]
    send, delay = core.admit(flights, led, clock(), [1.0, 1.0, 0.05])
    assert [key for key, _ in send] == keys[:2]
    assert delay == pytest.approx(0.1)
    denied = led[2][1]
    assert denied.landed and isinstance(denied.error, UpstreamFailure)
    assert "budget" in denied.error.reason
    assert not flights.in_flight(("b.", "A"))


def test_core_records_a_cname_chain_under_the_question_only(clock: FakeClock) -> None:
    core = Core(CONFIG, clock)
    response = reply(
        "evil.example.com.",
        "A",
        ["evil.example.com. 300 IN CNAME bank.example.net.", "bank.example.net. 300 IN A 6.6.6.6"],
    )
    entry = core.record(("evil.example.com.", "A"), response, clock())
    assert isinstance(entry, Entry) and entry.result.records == ("6.6.6.6",)  # type: ignore[union-attr]
    assert core.triage(("bank.example.net.", "A"), clock()).got is None
    assert core.stats().entries == 1


def test_core_records_a_cname_loop_as_a_failure(clock: FakeClock) -> None:
    core = Core(CONFIG, clock)
    response = reply(
        "a.example.",
        "A",
        ["a.example. 60 IN CNAME b.example.", "b.example. 60 IN CNAME a.example."],
    )
    failure = core.record(("a.example.", "A"), response, clock())
    assert isinstance(failure, UpstreamFailure) and "CNAME loop" in failure.reason
    assert core.stats().upstream_errors == 1 and core.stats().negative_entries == 0


def test_core_settle_chains_an_internal_error(clock: FakeClock) -> None:
    core = Core(CONFIG, clock)
    cause = RuntimeError("boom")
    outcome = core.settle(None, cause, None, clock())
    assert isinstance(outcome, UpstreamFailure) and outcome.__cause__ is cause


def test_core_special_names(clock: FakeClock) -> None:
    core = Core(CONFIG, clock)
    [a, aaaa] = core.special_answers("Foo.LocalHost.", ("A", "AAAA"))  # type: ignore[misc]
    assert (a.name, a.addresses, aaaa.addresses) == ("foo.localhost.", ["127.0.0.1"], ["::1"])
    assert core.special_answers("localhost.example.com", ("A",)) is None
    with pytest.raises(NameNotFound) as info:
        core.special_answers("x.invalid", ("A",))
    assert info.value.nxdomain
    with pytest.raises(NameNotFound) as info:
        core.special_answers("localhost", ("TXT",))
    assert not info.value.nxdomain


def test_core_memo_evicts_one_entry_at_a_time(clock: FakeClock) -> None:
    core = Core(CONFIG.replace(max_entries=3), clock)
    for i in range(5):
        walk = Walk(f"n{i}.example.", ("A",), CONFIG)
        walk.next()
        got = Got(Positive((f"192.0.2.{i}",), f"n{i}.example.", 60), 1060, 1054, False, False)
        assert walk.feed([got], clock())
        core.remember(f"n{i}.example.", "A", walk)
        assert len(core.memo) == min(i + 1, 3)
    assert [name for name, _ in core.memo] == ["n2.example.", "n3.example.", "n4.example."]


# -- Walk -------------------------------------------------------------------------


def _got(result: Positive | Negative, refresh_at: float = 1054.0) -> Got:
    return Got(result, refresh_at + 6, refresh_at, False, False)


A = Positive(("192.0.2.1",), "x.", 60)
NXDOMAIN = Negative(True, "x.", 30)
NODATA = Negative(False, "x.", 30)


def test_walk_goes_through_the_search_list_until_data() -> None:
    config = CONFIG.replace(search=K8S_SEARCH, ndots=5)
    walk = Walk("my-svc", ("A", "AAAA"), config)
    questions = walk.next()
    assert questions == [
        ("my-svc.ns1.svc.cluster.local.", "A"),
        ("my-svc.ns1.svc.cluster.local.", "AAAA"),
    ]
    assert not walk.feed([_got(NXDOMAIN, 1030), _got(NXDOMAIN, 1030)], 1000.0)
    walk.next()
    assert walk.feed([_got(A), _got(NODATA, 1020)], 1000.0)
    assert walk.candidate == "my-svc.svc.cluster.local."
    assert walk.valid_until == 1020  # the earliest refresh point used
    assert not walk.stale


def test_walk_partial_failure_is_valid_only_until_failure_recheck() -> None:
    walk = Walk("dual.example.com.", ("A", "AAAA"), CONFIG)
    walk.next()
    assert walk.feed([_got(A), UpstreamFailure("timed out")], 1000.0)
    assert walk.valid_until == 1001.0  # failure_recheck=1, not A's 1054


def test_walk_failure_before_data_raises_temporary_failure_from_it() -> None:
    walk = Walk("dual.example.com.", ("A", "AAAA"), CONFIG)
    walk.next()
    failure = UpstreamFailure("SERVFAIL")
    with pytest.raises(TemporaryFailure) as info:
        walk.feed([_got(NODATA), failure], 1000.0)
    assert info.value.__cause__ is failure


def test_walk_without_data_fails_with_name_not_found() -> None:
    walk = Walk("gone.example.com.", ("A",), CONFIG)
    walk.next()
    assert not walk.feed([_got(NODATA)], 1000.0)
    assert walk.next() is None
    error = walk.fail()
    assert isinstance(error, NameNotFound) and not error.nxdomain
    assert isinstance(error, ResolveError)


# -- Exchange ---------------------------------------------------------------------


def _answer_to(exchange: Exchange, i: int, *records: str) -> dns.message.Message:
    response = dns.message.make_response(exchange.queries[i].message())
    for line in records:
        name, ttl, rdclass, rtype, *data = line.split()
        response.answer.append(dns.rrset.from_text(name, int(ttl), rdclass, rtype, " ".join(data)))
    return response


def test_exchange_accepts_only_replies_to_waiting_queries() -> None:
    exchange = Exchange([("a.example.", "A"), ("a.example.", "AAAA")])
    waiting = exchange.start_try(exchange.pending())
    assert sorted(waiting.values()) == [0, 1]
    good = _answer_to(exchange, 1, "a.example. 60 IN AAAA 2001:db8::1")
    forged = dns.message.make_response(dns.message.make_query("b.example.", "AAAA"))
    forged.id = good.id  # right ID, wrong question
    assert exchange.receive(forged.to_wire(), waiting) is None
    assert exchange.receive(b"\x00garbage", waiting) is None
    assert exchange.receive(good.to_wire(), waiting) == (1, False)
    assert exchange.receive(good.to_wire(), waiting) is None  # a duplicate
    assert exchange.pending() == [0]
    outcome = exchange.outcome()
    assert isinstance(outcome[0], UpstreamFailure) and outcome[0].reason == "timed out"
    assert not isinstance(outcome[1], UpstreamFailure)


def test_exchange_truncated_reply_asks_for_tcp_and_servfail_is_retried() -> None:
    exchange = Exchange([("a.example.", "A"), ("a.example.", "AAAA")])
    waiting = exchange.start_try([0, 1])
    truncated = _answer_to(exchange, 0)
    truncated.flags |= dns.flags.TC
    servfail = _answer_to(exchange, 1)
    servfail.set_rcode(dns.rcode.SERVFAIL)
    assert exchange.receive(truncated.to_wire(), waiting) == (0, True)
    assert exchange.receive(servfail.to_wire(), waiting) == (1, False)
    assert exchange.pending() == [0, 1]  # neither is an answer yet
    assert exchange.errors[1] == "SERVFAIL"
    exchange.accept(0, _answer_to(exchange, 0, "a.example. 60 IN A 192.0.2.1"))
    exchange.fail([0, 1], "tcp error")
    assert exchange.pending() == [1] and exchange.errors[1] == "tcp error"


# -- Core.walk: the one walk both shells drive -------------------------------------


def test_core_walk_yields_asks_and_returns_the_finished_walk(clock: FakeClock) -> None:
    config = CONFIG.replace(search=K8S_SEARCH, ndots=5, stale_response_timeout=1.5)
    core = Core(config, clock)
    steps = core.walk("my-svc", ("A",), 500.0)
    ask = next(steps)
    assert ask.questions == [("my-svc.ns1.svc.cluster.local.", "A")]
    assert ask.stale_deadline == 501.5
    assert ask.deadline == 500.0 + config.timeout * config.attempts
    ask = steps.send([_got(NXDOMAIN)])
    assert ask.questions == [("my-svc.svc.cluster.local.", "A")]
    with pytest.raises(StopIteration) as done:
        steps.send([_got(A)])
    walk = done.value.value
    assert isinstance(walk, Walk) and walk.candidate == "my-svc.svc.cluster.local."


def test_core_walk_raises_when_no_candidate_has_data(clock: FakeClock) -> None:
    steps = Core(CONFIG, clock).walk("gone.example.com.", ("A",), 0.0)
    next(steps)
    with pytest.raises(NameNotFound):
        steps.send([_got(NXDOMAIN)])


def test_core_lead_backgrounds_a_query_when_stale_data_is_on_hand(clock: FakeClock) -> None:
    core = Core(CONFIG.replace(stale_response_timeout=0.5), clock)
    flights: Flights[tuple[str, str], ThreadFlight[Entry]] = Flights(ThreadFlight)
    stale = Entry(A, clock() - 1, clock() - 1)
    core.cache.put("x.", "A", A, clock() - 100)
    batch = core.sort([("x.", "A")], flights, clock(), 10.0)
    assert batch.led and batch.stale[0] is not None
    ask = Ask([("x.", "A")], 10.2, 20.0)
    lead = core.lead(flights, ask, batch, 10.0)
    assert lead.background and lead.delay == 0.0 and lead.wait_until == 10.2
    assert [key for key, _ in lead.send] == [("x.", "A")]
    # A follower with stale data waits out the client timer from the query's start.
    flight = lead.send[0][1]
    assert core.follow_timeout(flight, stale, Ask([], 99.0, 99.0), 10.1) == pytest.approx(0.4)
    assert core.follow_timeout(flight, None, ask, 10.1) == core.max_wait()


def test_core_land_and_abort_land_every_flight(clock: FakeClock) -> None:
    core = Core(CONFIG, clock)
    flights: Flights[tuple[str, str], ThreadFlight[Entry]] = Flights(ThreadFlight)
    keys = [("a.example.", "A"), ("a.example.", "AAAA"), ("b.example.", "A")]
    send = [(key, flights.begin(key, 0.0)[0]) for key in keys]
    answer = reply("a.example.", "A", ["a.example. 60 IN A 192.0.2.1"])
    core.land(flights, send[:2], [answer, UpstreamFailure("timed out")])
    assert isinstance(send[0][1].result, Entry) and send[0][1].error is None
    assert isinstance(send[1][1].error, UpstreamFailure)
    cause = KeyboardInterrupt()
    core.abort(flights, send, cause)
    assert send[0][1].error is None  # landed already: untouched
    error = send[2][1].error
    assert isinstance(error, UpstreamFailure) and error.__cause__ is cause
    assert len(flights) == 0


def test_core_prefetch_never_waits_for_the_budget(clock: FakeClock) -> None:
    core = Core(CONFIG.replace(upstream_qps=1, upstream_burst=1), clock)
    flights: Flights[tuple[str, str], ThreadFlight[Entry]] = Flights(ThreadFlight)
    flight = core.prefetch(flights, ("a.", "A"), 0.0)
    assert flight is not None and flights.in_flight(("a.", "A"))
    assert core.prefetch(flights, ("a.", "A"), 0.0) is None  # one at a time
    assert core.prefetch(flights, ("b.", "A"), 0.0) is None  # no token: no wait
    assert core.stats().prefetches == 1 and core.stats().budget_waits == 0


def test_exchange_tcp_framing_and_reply_checks() -> None:
    exchange = Exchange([("a.example.", "A"), ("b.example.", "A"), ("c.example.", "A")])
    exchange.start_try([0, 1, 2])
    frame = exchange.tcp_frame(0)
    assert exchange.tcp_length(frame[:2]) == len(frame) - 2
    assert dns.message.from_wire(frame[2:]).id == exchange.queries[0].id
    exchange.receive_tcp(0, _answer_to(exchange, 0, "a.example. 60 IN A 192.0.2.1").to_wire())
    exchange.receive_tcp(1, _answer_to(exchange, 2).to_wire())  # another query's reply
    exchange.receive_tcp(2, b"\x12\x34garbage")
    assert exchange.pending() == [1, 2]
    assert exchange.errors[1] == "tcp error: mismatched reply"
    assert exchange.errors[2].startswith("tcp error: malformed reply")


def test_answers_of_a_partial_walk_are_reusable_only_until_failure_recheck(
    clock: FakeClock,
) -> None:
    """Front ends with caches of their own (the drop-in's finished results)
    read how long an answer may be handed out again from the answer."""
    core = Core(CONFIG, clock)
    walk = Walk("dual.example.com.", ("A", "AAAA"), CONFIG)
    walk.next()
    assert walk.feed([_got(A), UpstreamFailure("timed out")], clock())
    [answer] = walk.answers(core.answer)
    assert answer.expires == 1060.0
    assert answer.valid_until == clock() + CONFIG.failure_recheck
