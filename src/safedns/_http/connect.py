"""The two drivers of the RFC 8305 schedule (``dial.Attempts``), shared by
every adapter: the only I/O of the HTTP core.

- ``connect_sync``: non-blocking sockets and one ``selectors`` loop, no thread
  per attempt. Returns the connected (blocking) socket and its address.
- ``connect_async``: one asyncio task per attempt, each the adapter's own
  connect to one address (its streams, its TLS); the losers are cancelled,
  and closed if they connected all the same.

Both run the schedule to its end: the first connection wins, the others are
abandoned and closed, and all of it stays within ``Attempts.deadline``. A
failed connect raises ``TimeoutError`` (the deadline passed) or the last
attempt's error (an ``OSError`` for ``connect_sync``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import selectors
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from safedns._http.dial import Attempts, Connect, GiveUp

__all__ = ["connect_async", "connect_sync"]

T = TypeVar("T")

_IN_PROGRESS = {errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK}


def _timed_out(attempts: Attempts, started: float, now: float) -> TimeoutError:
    tried = ", ".join(attempts.started) or "no address"
    return TimeoutError(f"connect timed out after {now - started:.2f} s ({tried})")


def _open(
    address: str,
    port: int,
    local_address: str | None,
    socket_options: Iterable[Any],
) -> tuple[socket.socket, int]:
    """A non-blocking socket connecting to ``address``: ``(sock, errno)``."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        for option in socket_options:
            sock.setsockopt(*option)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if local_address is not None:
            sock.bind((local_address, 0))
        return sock, sock.connect_ex((address, port))
    except BaseException:
        sock.close()
        raise


def connect_sync(
    attempts: Attempts,
    port: int,
    *,
    local_address: str | None = None,
    socket_options: Iterable[Any] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[socket.socket, str]:
    """Run ``attempts`` with blocking-free sockets until one connects."""
    options = list(socket_options or ())
    started = clock()
    selector = selectors.DefaultSelector()
    sockets: dict[str, socket.socket] = {}
    error: OSError | None = None
    winner: tuple[socket.socket, str] | None = None
    try:
        while winner is None:
            now = clock()
            step = attempts.next(now)
            if isinstance(step, GiveUp):
                if step.timed_out:
                    raise _timed_out(attempts, started, now)
                raise error if error is not None else OSError("no address to connect to")
            if isinstance(step, Connect):
                address = step.address
                try:
                    sock, code = _open(address, port, local_address, options)
                except OSError as exc:
                    error = exc
                    attempts.failed(address, clock())
                    continue
                if code == 0:
                    winner = (sock, address)
                elif code in _IN_PROGRESS:
                    sockets[address] = sock
                    selector.register(sock, selectors.EVENT_WRITE, address)
                else:
                    sock.close()
                    error = OSError(code, f"{errno.errorcode.get(code, code)} ({address})")
                    attempts.failed(address, clock())
                continue
            timeout = None if step.until == float("inf") else max(0.0, step.until - now)
            for key, _ in selector.select(timeout):
                address = key.data
                sock = sockets.pop(address)
                selector.unregister(sock)
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code == 0:
                    winner = (sock, address)
                    break
                sock.close()
                error = ConnectionError(code, f"{errno.errorcode.get(code, code)} ({address})")
                attempts.failed(address, clock())
        sock, address = winner
        attempts.connected(address)
        sock.setblocking(True)
        return sock, address
    except BaseException:
        if winner is not None:
            winner[0].close()
        raise
    finally:
        for sock in sockets.values():
            sock.close()
        selector.close()


async def connect_async(
    attempts: Attempts,
    open_one: Callable[[str, float | None], Awaitable[T]],
    close_one: Callable[[T], Awaitable[None]],
    *,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[T, str]:
    """Run ``attempts`` with one task per attempt: ``open_one(address,
    timeout)`` connects to one address (``timeout``: seconds left before the
    deadline, or None); ``close_one`` closes a connection that lost."""
    started = clock()
    tasks: dict[asyncio.Task[T], str] = {}
    error: BaseException | None = None
    try:
        while True:
            now = clock()
            step = attempts.next(now)
            if isinstance(step, GiveUp):
                if step.timed_out:
                    raise _timed_out(attempts, started, now)
                if error is not None:
                    raise error
                raise OSError("no address to connect to")
            if isinstance(step, Connect):
                left = None if attempts.deadline is None else max(0.0, attempts.deadline - now)
                task = asyncio.ensure_future(open_one(step.address, left))
                tasks[task] = step.address
                continue
            timeout = None if step.until == float("inf") else max(0.0, step.until - now)
            done, _ = await asyncio.wait(
                tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                address = tasks.pop(task)
                if task.cancelled():
                    attempts.failed(address, clock())
                    continue
                exc = task.exception()
                if exc is not None:
                    if not isinstance(exc, Exception):
                        raise exc
                    error = exc
                    attempts.failed(address, clock())
                    continue
                attempts.connected(address)
                stream = task.result()
                for other in done:  # a second one done in the same turn lost too
                    if other is not task and other in tasks:
                        tasks.pop(other)
                        await _close_quietly(other, close_one)
                return stream, address
    finally:
        for task in tasks:
            task.cancel()
        for task in list(tasks):
            await _close_quietly(task, close_one)


async def _close_quietly(task: asyncio.Task[T], close_one: Callable[[T], Awaitable[None]]) -> None:
    """Wait for an abandoned attempt; close what it opened, if it did."""
    await asyncio.wait({task})
    if task.done() and not task.cancelled() and task.exception() is None:
        with contextlib.suppress(Exception):
            await close_one(task.result())
