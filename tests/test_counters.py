"""``Counter``: exact under threads, read without parsing a repr."""

from __future__ import annotations

import threading

from safedns._stats import Counter, Counters


def test_value_counts_every_inc_and_reading_does_not_count() -> None:
    counter = Counter()
    assert counter.value == 0
    for _ in range(5):
        counter.inc()
    assert [counter.value for _ in range(3)] == [5, 5, 5]
    counter.inc()
    assert counter.value == 6


def test_concurrent_incs_and_reads_lose_nothing() -> None:
    counter = Counter()
    start = threading.Barrier(6)
    seen: list[int] = []

    def bump() -> None:
        start.wait()
        for _ in range(20_000):
            counter.inc()

    def read() -> None:
        start.wait()
        seen.extend(counter.value for _ in range(500))

    threads = [threading.Thread(target=bump) for _ in range(4)]
    threads += [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.value == 80_000
    assert all(0 <= value <= 80_000 for value in seen)


def test_memo_hits_count_as_lookups_and_cache_hits() -> None:
    counters = Counters()
    counters.lookups.inc()
    counters.cache_misses.inc()
    counters.memo_hits.inc()
    counters.memo_hits.inc()
    stats = counters.snapshot(entries=3, negative_entries=1)
    assert (stats.lookups, stats.cache_hits, stats.cache_misses) == (3, 2, 1)
    assert (stats.entries, stats.negative_entries) == (3, 1)
