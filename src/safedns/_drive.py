"""Running a sans-I/O generator: every command it yields is performed by the
shell, and what came of it is sent back (``drive`` with blocking I/O,
``drive_async`` on an event loop). The core's lookups, the exchange with the
nameservers and the drop-in's steps all run this way."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

__all__ = ["drive", "drive_async"]

T = TypeVar("T")


def drive(steps: Generator[Any, Any, T], perform: Callable[[Any], Any]) -> T:
    """Run a sans-I/O generator to its end with blocking I/O: every command
    it yields goes to ``perform``, whose result is sent back; its return
    value is returned."""
    reply = None
    while True:
        try:
            command = steps.send(reply)
        except StopIteration as done:
            result: T = done.value
            return result
        reply = perform(command)


async def drive_async(
    steps: Generator[Any, Any, T], perform: Callable[[Any], Awaitable[Any]], first: Any = None
) -> T:
    """``drive`` for asyncio: each command's result is awaited. ``first``: the
    generator's first command, when the caller already took it."""
    try:
        command = next(steps) if first is None else first
        while True:
            command = steps.send(await perform(command))
    except StopIteration as done:
        result: T = done.value
        return result
