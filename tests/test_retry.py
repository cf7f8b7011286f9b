"""RetryPolicy, RetryBudget and RetryRun: pure decisions on a fake clock and a
seeded random source (no sockets, no sleeping)."""

from __future__ import annotations

import dataclasses
import random
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

import safedns
from safedns._http.retry import Decision, Failure, RetryRun, parse_retry_after

from .conftest import FakeClock


def test_public_names_and_defaults() -> None:
    policy = safedns.RetryPolicy()
    assert policy.attempts == 3
    assert policy.retry_on_status == frozenset({502, 503, 504})
    assert policy.retry_methods == frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
    assert policy.respect_retry_after is True
    budget = safedns.RetryBudget(ratio=0.1, min_per_second=10, window=10.0)
    assert (budget.ratio, budget.min_per_second, budget.window) == (0.1, 10.0, 10.0)
    assert "RetryPolicy" in safedns.__all__ and "RetryBudget" in safedns.__all__


def test_policy_is_immutable_and_validated() -> None:
    policy = safedns.RetryPolicy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.attempts = 5  # type: ignore[misc]
    assert dataclasses.replace(policy, attempts=5).attempts == 5
    with pytest.raises(ValueError, match="attempts"):
        safedns.RetryPolicy(attempts=0)
    with pytest.raises(TypeError, match="attempts"):
        safedns.RetryPolicy(attempts=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backoff"):
        safedns.RetryPolicy(backoff=-1)
    with pytest.raises(ValueError, match="backoff_max"):
        safedns.RetryPolicy(backoff_max=float("inf"))
    with pytest.raises(ValueError, match="retry_on_status"):
        safedns.RetryPolicy(retry_on_status=frozenset({700}))
    assert safedns.RetryPolicy(retry_methods=frozenset({"get"})).retry_methods == {"GET"}


def test_idempotent_methods_retry_on_status_and_errors() -> None:
    policy = safedns.RetryPolicy(attempts=3)
    for method in ("GET", "get", "PUT", "DELETE", "HEAD", "OPTIONS"):
        assert policy.should_retry(method, 1, status=503)
        assert policy.should_retry(method, 2, error=Failure.TRANSPORT)
        assert policy.should_retry(method, 1, error=Failure.CONNECT)
    assert not policy.should_retry("GET", 1, status=500)
    assert not policy.should_retry("GET", 1, status=200)
    assert not policy.should_retry("GET", 3, status=503)  # attempts used up


def test_post_is_retried_only_when_nothing_was_sent() -> None:
    policy = safedns.RetryPolicy(attempts=3)
    assert policy.should_retry("POST", 1, error=Failure.CONNECT)
    assert policy.should_retry("PATCH", 1, error=Failure.TRANSPORT, nothing_sent=True)
    assert not policy.should_retry("POST", 1, error=Failure.TRANSPORT)
    assert not policy.should_retry("POST", 1, status=503)
    assert not policy.should_retry("POST", 1, status=502)


def test_never_retried_certificate_other_and_unreplayable_bodies() -> None:
    policy = safedns.RetryPolicy(attempts=5)
    for method in ("GET", "POST"):
        assert not policy.should_retry(method, 1, error=Failure.TLS_CERTIFICATE)
        assert not policy.should_retry(method, 1, error=Failure.OTHER)
        assert not policy.should_retry(method, 1, error=Failure.CONNECT, body_replayable=False)
    assert not policy.should_retry("PUT", 1, status=503, body_replayable=False)


def test_backoff_is_full_jitter_and_capped() -> None:
    rng = random.Random(7)
    policy = safedns.RetryPolicy(backoff=0.5, backoff_max=3.0, random=rng.random)
    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (50, 3.0), (5000, 3.0)):
        delays = [policy.delay(attempt) for _ in range(300)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > 0.8 * ceiling  # the whole range is used
        assert min(delays) < 0.2 * ceiling
    replay = safedns.RetryPolicy(backoff=0.5, random=random.Random(7).random)
    again = safedns.RetryPolicy(backoff=0.5, random=random.Random(7).random)
    assert [replay.delay(2) for _ in range(5)] == [again.delay(2) for _ in range(5)]
    assert safedns.RetryPolicy(backoff=0).delay(3) == 0.0


def test_retry_after_is_respected_up_to_backoff_max() -> None:
    policy = safedns.RetryPolicy(backoff=0.1, backoff_max=2.0, random=lambda: 0.5)
    assert policy.delay(1, retry_after=1.5) == 1.5
    assert policy.delay(1, retry_after=60) == 2.0
    assert policy.delay(1, retry_after=None) == 0.05
    ignoring = dataclasses.replace(policy, respect_retry_after=False)
    assert ignoring.delay(1, retry_after=1.5) == 0.05


def test_parse_retry_after() -> None:
    now = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT
    assert parse_retry_after("3", now) == 3.0
    assert parse_retry_after(" 120 ", now) == 120.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:30 GMT", now) == 10.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now) == 0.0
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("-5", now) is None


def test_budget_allows_minimum_plus_ratio_in_the_window(clock: FakeClock) -> None:
    budget = safedns.RetryBudget(ratio=0.1, min_per_second=10, window=10.0, clock=clock)
    spent = sum(budget.try_spend_retry() for _ in range(1000))
    assert spent == 100  # min_per_second * window, with no requests yet
    for _ in range(500):
        budget.record_request()
    assert budget.available() == pytest.approx(50)
    assert sum(budget.try_spend_retry() for _ in range(1000)) == 50
    assert not budget.try_spend_retry()
    clock.advance(10.0)  # everything left the window
    assert budget.available() == pytest.approx(100)


def test_budget_window_slides_in_tenths(clock: FakeClock) -> None:
    budget = safedns.RetryBudget(ratio=0.0, min_per_second=1, window=10.0, clock=clock)
    clock.now = 100.0
    assert sum(budget.try_spend_retry() for _ in range(20)) == 10
    clock.advance(9.9)
    assert not budget.try_spend_retry()
    clock.advance(0.1)  # the slot of the spent retries leaves the window
    assert budget.try_spend_retry()


def test_budget_validation() -> None:
    with pytest.raises(ValueError, match="window"):
        safedns.RetryBudget(window=0)
    with pytest.raises(ValueError, match="ratio"):
        safedns.RetryBudget(ratio=-0.1)
    with pytest.raises(TypeError, match="min_per_second"):
        safedns.RetryBudget(min_per_second="10")  # type: ignore[arg-type]
    assert repr(safedns.RetryBudget()) == "RetryBudget(ratio=0.1, min_per_second=10, window=10)"


def test_budget_is_thread_safe(clock: FakeClock) -> None:
    budget = safedns.RetryBudget(ratio=0.0, min_per_second=100, window=10.0, clock=clock)
    spent: list[int] = []
    barrier = threading.Barrier(8)

    def spend() -> None:
        barrier.wait()
        spent.append(sum(budget.try_spend_retry() for _ in range(500)))

    threads = [threading.Thread(target=spend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(spent) == 1000


def test_run_of_500_failing_gets_stays_within_the_default_budget(clock: FakeClock) -> None:
    """The arithmetic behind the transport's figure: 500 requests, 4 attempts
    each allowed, default budget: 100 + 0.1 * 500 retries at most."""
    policy = safedns.RetryPolicy(attempts=4, backoff=0)
    budget = safedns.RetryBudget(clock=clock)
    attempts = denied = 0
    for _ in range(500):
        run = RetryRun(policy, budget, "GET", body_replayable=True)
        while True:
            attempts += 1
            decision = run.after_status(503)
            denied += decision.denied
            if not decision.retry:
                break
    assert 600 <= attempts <= 650
    assert denied > 0


def test_run_posts_and_errors() -> None:
    policy = safedns.RetryPolicy(attempts=3, backoff=0)
    post = RetryRun(policy, safedns.RetryBudget(), "POST", body_replayable=True)
    assert not post.after_status(503).retry
    assert post.after_error(Failure.CONNECT).retry
    assert post.attempt == 2
    assert not post.after_error(Failure.TRANSPORT).retry
    get = RetryRun(policy, None, "GET", body_replayable=True)
    assert not get.after_status(200).retry
    assert get.after_error(Failure.TRANSPORT).retry
    assert get.after_status(502).retry
    assert not get.after_status(502).retry  # third attempt was the last
    assert get.attempt == 3


def test_spent_budget_answers_at_once() -> None:
    clock = FakeClock()
    budget = safedns.RetryBudget(ratio=0, min_per_second=0.1, window=10.0, clock=clock)
    policy = safedns.RetryPolicy(attempts=3, backoff=5.0)
    run = RetryRun(policy, budget, "GET", body_replayable=True)
    first = run.after_status(503)
    assert first.retry and 0 <= first.delay <= 5.0
    second = run.after_status(503)
    assert second == Decision(retry=False, delay=0.0, denied=True)


def test_run_trying_is_the_whole_retry_loop() -> None:
    """The loop both transports run: ``trying()`` counts each try and ends a
    retried error there; every event reaches ``tally``; what is not retried
    leaves as it was raised."""
    events: list[str] = []
    policy = safedns.RetryPolicy(attempts=3, backoff=0)
    kinds = {ConnectionRefusedError: Failure.CONNECT, PermissionError: Failure.TLS_CERTIFICATE}

    def classify(exc: Exception) -> Failure:
        return kinds.get(type(exc), Failure.OTHER)

    run = RetryRun(
        policy, None, "GET", body_replayable=True, classify=classify, tally=events.append
    )
    with run.trying():
        raise ConnectionRefusedError  # retried: it ends here
    assert (run.attempt, run.delay) == (2, 0.0)
    refused = PermissionError("certificate")
    with pytest.raises(PermissionError) as info, run.trying():
        raise refused
    assert info.value is refused  # not retried: the caller gets it as raised
    assert events == ["requests", "attempts", "retries", "attempts"]

    events.clear()
    cancel = RetryRun(
        policy, None, "GET", body_replayable=True, classify=classify, tally=events.append
    )
    with pytest.raises(KeyboardInterrupt), cancel.trying():
        raise KeyboardInterrupt  # a BaseException is never classified nor retried
    unknown = RetryRun(policy, None, "GET", body_replayable=True, tally=events.append)
    with pytest.raises(ConnectionRefusedError), unknown.trying():
        raise ConnectionRefusedError  # no classify: every error is Failure.OTHER
    assert events == ["requests", "attempts", "requests", "attempts"]


def test_run_after_response_reads_retry_after_and_counts_denials() -> None:
    clock = FakeClock()
    budget = safedns.RetryBudget(ratio=0, min_per_second=0.1, window=10.0, clock=clock)
    policy = safedns.RetryPolicy(attempts=3, backoff=5.0, backoff_max=30.0)
    events: list[str] = []
    run = RetryRun(policy, budget, "GET", body_replayable=True, tally=events.append)
    assert run.after_response(200, {"Retry-After": "7"}) == Decision(False)
    date = "Wed, 21 Oct 2015 07:28:10 GMT"  # 1445412490
    first = run.after_response(503, {"Retry-After": date}, now_wall=1445412480.0)
    assert first == Decision(True, 10.0) and run.delay == 10.0
    assert run.after_response(503, {"Retry-After": "1"}) == Decision(False, denied=True)
    assert events == ["requests", "retries", "retries_denied"]


@given(
    attempts=st.integers(1, 8),
    attempt=st.integers(1, 10),
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]),
    status=st.one_of(st.none(), st.integers(100, 599)),
    error=st.one_of(st.none(), st.sampled_from(list(Failure))),
    replayable=st.booleans(),
)
def test_should_retry_invariants(
    attempts: int,
    attempt: int,
    method: str,
    status: int | None,
    error: Failure | None,
    replayable: bool,
) -> None:
    policy = safedns.RetryPolicy(attempts=attempts)
    verdict = policy.should_retry(
        method, attempt, status=status, error=error, body_replayable=replayable
    )
    if verdict:
        assert attempt < attempts and replayable
        assert error not in (Failure.TLS_CERTIFICATE, Failure.OTHER)
        if method in ("POST", "PATCH"):
            assert error is Failure.CONNECT
        elif error is None:
            assert status in (502, 503, 504)
