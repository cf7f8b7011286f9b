"""One ``AsyncResolver`` used from event loops on several threads at once, as
``safedns.patch()`` shares one between every loop (issue 16, defect 5)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import Coroutine
from typing import Any

import pytest

from safedns import AsyncResolver, NameNotFound
from safedns.testing import DNSServer
from tests.conftest import k8s_config, until

#: Seconds each churn run lasts.
RUN = 4.0


def _run_loop(coro: Coroutine[Any, Any, Any], errors: list[BaseException | str]) -> Any:
    """``coro`` on a new loop of this thread, shut down as ``asyncio.run`` does;
    what the loop reports to its exception handler is kept in ``errors``."""
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda _, context: errors.append(str(context)))
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


@pytest.mark.parametrize("run", range(3))
def test_one_resolver_on_a_churning_loop_and_new_loops_raises_nothing(
    server: DNSServer, run: int
) -> None:
    # Retransmissions: 300 queries at once may overflow the server's receive buffer.
    config = k8s_config(server, upstream_qps=1e6, upstream_burst=10**6, timeout=0.5, attempts=4)
    resolver = AsyncResolver(config)
    errors: list[BaseException | str] = []
    stop = threading.Event()
    cycles = [0, 0]

    async def churn() -> None:
        while not stop.is_set():
            names = [f"c{run}-{cycles[0]}-{i}.example.com." for i in range(300)]
            results = await asyncio.gather(
                *(resolver.resolve(name) for name in names), return_exceptions=True
            )
            errors.extend(r for r in results if not isinstance(r, NameNotFound))
            cycles[0] += 1

    async def one_lookup(i: int) -> None:
        with contextlib.suppress(NameNotFound):
            await resolver.resolve(f"n{run}-{i}.example.com.")

    def guarded(target: Any) -> None:
        try:
            target()
        except BaseException as exc:  # a race shows as any exception at all
            errors.append(exc)
            stop.set()

    def churn_thread() -> None:
        _run_loop(churn(), errors)

    def new_loops_thread() -> None:
        while not stop.is_set():
            _run_loop(one_lookup(cycles[1]), errors)
            cycles[1] += 1

    threads = [
        threading.Thread(target=guarded, args=(churn_thread,)),
        threading.Thread(target=guarded, args=(new_loops_thread,)),
    ]
    # Switch threads often, so that a race has many chances to show.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        for thread in threads:
            thread.start()
        stop.wait(RUN)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        sys.setswitchinterval(interval)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert cycles[0] >= 2 and cycles[1] >= 10, cycles


def test_aclose_cancels_another_threads_lookup_on_its_own_loop(server: DNSServer) -> None:
    server.stop()  # the other thread's query waits for an answer that never comes
    resolver = AsyncResolver(k8s_config(server, timeout=30.0))
    outcome: list[BaseException | str] = []
    started = threading.Event()
    errors: list[BaseException | str] = []

    async def waiting() -> None:
        task = asyncio.ensure_future(resolver.resolve("slow.example.com."))
        if await until(lambda: server.query_count > 0, 10):  # the query is at the server
            started.set()
        try:
            await task
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=_run_loop, args=(waiting(), errors))
    thread.start()
    assert started.wait(10)
    begun = time.monotonic()
    asyncio.run(resolver.aclose())
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - begun < 10
    assert len(outcome) == 1 and errors == []
