"""The rate-limited health log (pure: events in, log lines out, on a fake clock)."""

from __future__ import annotations

import logging
import threading

import pytest

from safedns._health import HealthLog

from .conftest import FakeClock


@pytest.fixture
def log(clock: FakeClock) -> HealthLog:
    return HealthLog(logging.getLogger("safedns"), clock=clock, name="10.96.0.10")


def records(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "safedns"]


def test_200_stale_answers_make_one_warning_then_one_recovery_line(
    log: HealthLog, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="safedns")
    for _ in range(200):  # the outage: 200 lookups served stale over 20 s
        log.stale_served()
        clock.advance(0.1)
    lines = records(caplog)
    assert lines == [
        (
            logging.WARNING,
            "resolver 10.96.0.10: serving stale answers: upstream DNS is failing "
            "(1 stale answer so far)",
        )
    ]
    for _ in range(100):
        log.upstream_ok()
    assert records(caplog)[1:] == [
        (
            logging.INFO,
            "resolver 10.96.0.10: upstream DNS answers again after 20.0 s "
            "(200 stale answers in all)",
        )
    ]
    assert not log.degraded


def test_a_long_outage_reminds_at_most_once_per_period(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    log = HealthLog(clock=clock, remind_after=300)
    caplog.set_level(logging.WARNING, logger="safedns")
    for _ in range(1000):  # one stale answer a second for 1000 s
        log.stale_served()
        clock.advance(1)
    lines = records(caplog)
    assert len(lines) == 4  # the start, then reminders at 300, 600, 900 s
    assert lines[1][1] == (
        "still serving stale answers: upstream DNS is failing "
        "(300 stale answers in the last 300 s, 301 in all)"
    )
    assert lines[3][1].endswith("(300 stale answers in the last 300 s, 901 in all)")


def test_budget_and_stale_are_separate_conditions(
    log: HealthLog, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="safedns")
    log.budget_denied(5)
    log.budget_denied()
    log.stale_served()
    clock.advance(2)
    log.upstream_ok()  # ends serving stale, not the budget episode
    log.budget_ok()  # too soon after the last denial
    clock.advance(log.quiet)
    log.budget_ok()
    levels_messages = records(caplog)
    assert [level for level, _ in levels_messages] == [
        logging.WARNING,
        logging.WARNING,
        logging.INFO,
        logging.INFO,
    ]
    assert (
        "budget is spent" in levels_messages[0][1]
        and "5 denied lookups so far" in (levels_messages[0][1])
    )
    assert "(1 stale answer in all)" in levels_messages[2][1]
    assert "budget recovered" in levels_messages[3][1]
    assert "(6 denied lookups in all)" in levels_messages[3][1]


def test_a_sustained_flood_is_one_budget_episode(
    log: HealthLog, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    # Under a flood the bucket refills and runs dry again and again: queries go
    # through between denials, yet the operator hears of it once.
    caplog.set_level(logging.INFO, logger="safedns")
    for _ in range(100):
        log.budget_denied()
        clock.advance(0.1)
        log.budget_ok()
        log.upstream_ok()
    assert [level for level, _ in records(caplog)] == [logging.WARNING]


def test_a_new_episode_after_recovery_warns_again(
    log: HealthLog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="safedns")
    log.stale_served()
    log.upstream_ok()
    log.stale_served()
    assert len(records(caplog)) == 2


def test_healthy_resolver_logs_nothing(log: HealthLog, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="safedns")
    for _ in range(1000):
        log.upstream_ok()
    assert records(caplog) == []


def test_concurrent_events_warn_once(log: HealthLog, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="safedns")
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(500):
            log.stale_served()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(records(caplog)) == 1
    log.upstream_ok()


def test_bad_period() -> None:
    with pytest.raises(ValueError, match="remind_after"):
        HealthLog(remind_after=0)


def test_an_outage_served_stale_warns_once_not_per_lookup(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    from safedns import Resolver
    from safedns.testing import DNSServer
    from tests.conftest import k8s_config

    caplog.set_level(logging.INFO, logger="safedns")
    with DNSServer() as server:
        server.add("api.example.com", "A", "192.0.2.10", ttl=60)
        resolver = Resolver(k8s_config(server.nameserver, stale_response_timeout=0), clock=clock)
        assert not resolver.resolve("api.example.com.").stale
        clock.advance(120)
        server.stop()
        answers = [resolver.resolve("api.example.com.") for _ in range(200)]
        resolver.close()
    assert all(answer.stale for answer in answers)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert 1 <= len(warnings) <= 3, [r.getMessage() for r in warnings]
    assert "stale" in warnings[0].getMessage()
