"""``Refreshes``: the background refreshes of one asyncio adapter (a task per
refresh, kept so that ``aclose()`` can cancel and await them: no task
outlives its adapter). The sync adapters run theirs on a thread
(``trip.refresh_sync`` for urllib3, a one-thread executor for httpx)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

__all__ = ["Refreshes"]


class Refreshes:
    """A set of running refresh tasks."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, refresh: Coroutine[Any, Any, None]) -> None:
        """Run ``refresh`` in a task of the running loop; never waited for."""
        task = asyncio.ensure_future(refresh)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Cancel every refresh still running and wait for each to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    def __len__(self) -> int:
        return len(self._tasks)
