"""Switching the standard library over to safedns.

:func:`patch` replaces ``socket.getaddrinfo``, ``socket.gethostbyname`` and
``socket.gethostbyname_ex`` with the bound methods of an :class:`AddrInfo` (so everything
that resolves through :mod:`socket` - ``socket.create_connection``, ``http.client``,
``urllib3``/``requests`` - uses safedns), and the event loops' ``getaddrinfo`` with
:func:`safedns.async_getaddrinfo` (``asyncio.open_connection``, aiohttp, asyncpg...: no
executor thread); :func:`unpatch` puts
back exactly what was there before the first :func:`patch`; :func:`patched` does both
around a block and nests.

:func:`run_command` (``safedns run -- COMMAND ...``) runs a program patched from its first
line: the child's ``PYTHONPATH`` starts with a generated directory whose
``sitecustomize.py`` calls :func:`patch` (configured by the ``SAFEDNS_*`` variables) and then
runs any other ``sitecustomize`` the interpreter would have found. The variable is
inherited, so the program's Python child processes are patched too.
"""

from __future__ import annotations

import asyncio.base_events
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from types import FrameType
from typing import Any

from safedns._bypasses import watch as watch_bypasses
from safedns._dropin.addrinfo import AddrInfo, default_addrinfo
from safedns._dropin.aio import loop_create_connection, loop_getaddrinfo
from safedns._resolver import Resolver

__all__ = ["is_patched", "patch", "patched", "run_command", "unpatch"]

NAMES = ("getaddrinfo", "gethostbyname", "gethostbyname_ex")

_ABSENT: Any = object()
_Targets = dict[tuple[object, str], Any]

_lock = threading.RLock()
_originals: _Targets | None = None
#: The AddrInfo of each resolver given to patch(), so patching again with the same resolver
#: keeps one cache. Both sides are weak: an AddrInfo holds its resolver, so a strong value
#: would keep every resolver ever patched alive; while patched, ``socket``'s bound methods
#: keep the AddrInfo (and so the resolver) alive.
_by_resolver: weakref.WeakKeyDictionary[Resolver, weakref.ref[AddrInfo]] = (
    weakref.WeakKeyDictionary()
)


def _addrinfo_for(resolver: Resolver | None) -> AddrInfo:
    if resolver is None:
        return default_addrinfo()
    with _lock:
        ref = _by_resolver.get(resolver)
        addrinfo = ref() if ref is not None else None
        if addrinfo is None:
            addrinfo = AddrInfo(resolver)
            _by_resolver[resolver] = weakref.ref(addrinfo)
    return addrinfo


def _loop_classes() -> list[type]:
    """The event loop classes whose ``getaddrinfo`` patch() replaces: asyncio's base
    loop (every asyncio loop, created before or after) and uvloop's, when installed."""
    classes: list[type] = [asyncio.base_events.BaseEventLoop]
    if importlib.util.find_spec("uvloop") is not None:
        try:
            uvloop = importlib.import_module("uvloop")
        except ImportError:  # pragma: no cover - installed but broken
            return classes
        classes.append(uvloop.Loop)
    return classes


def _targets() -> list[tuple[object, str]]:
    targets: list[tuple[object, str]] = [(socket, name) for name in NAMES]
    for cls in _loop_classes():
        targets.append((cls, "getaddrinfo"))
        if cls is not asyncio.base_events.BaseEventLoop:
            targets.append((cls, "create_connection"))  # uvloop resolves inside it
    return targets


def _snapshot() -> _Targets:
    """What is installed now at every place patch() changes."""
    return {
        (owner, name): owner.__dict__.get(name, _ABSENT)
        if isinstance(owner, type)
        else getattr(owner, name)
        for owner, name in _targets()
    }


def _restore(snapshot: _Targets) -> None:
    for (owner, name), value in snapshot.items():
        if value is not _ABSENT:
            setattr(owner, name, value)
        elif name in getattr(owner, "__dict__", {}):
            delattr(owner, name)


def _install(addrinfo: AddrInfo) -> None:
    socket.getaddrinfo = addrinfo.getaddrinfo  # type: ignore[assignment]
    socket.gethostbyname = addrinfo.gethostbyname
    socket.gethostbyname_ex = addrinfo.gethostbyname_ex
    method = loop_getaddrinfo(addrinfo)
    for cls in _loop_classes():
        setattr(cls, "getaddrinfo", method)  # noqa: B010 - a class attribute, on purpose
        if cls is not asyncio.base_events.BaseEventLoop:
            # uvloop's create_connection resolves in libuv, not through getaddrinfo.
            base = next(b for b in cls.__mro__[1:] if "create_connection" in b.__dict__)
            cls.create_connection = loop_create_connection(  # type: ignore[attr-defined]
                addrinfo, base.__dict__["create_connection"]
            )


def patch(resolver: Resolver | None = None) -> AddrInfo:
    """Make :mod:`socket`'s name lookups, and every asyncio event loop's
    ``getaddrinfo``, go through safedns; returns the :class:`AddrInfo`.

    ``resolver`` defaults to the process-wide ``Resolver()`` (configured from
    ``/etc/resolv.conf`` and the ``SAFEDNS_*`` variables). Patching again (with the same
    or another resolver) just switches resolvers; the originals are remembered once.
    Event loops resolve through :func:`safedns.async_getaddrinfo` on an
    ``AsyncResolver`` sharing the resolver's cache: no executor thread.
    """
    addrinfo = _addrinfo_for(resolver)
    global _originals
    with _lock:
        if _originals is None:
            _originals = _snapshot()
        _install(addrinfo)
    watch_bypasses(True)  # warn about the modules that resolve outside safedns
    return addrinfo


def unpatch() -> None:
    """Restore what :func:`patch` replaced. Harmless when not patched."""
    global _originals
    with _lock:
        if _originals is not None:
            _restore(_originals)
            _originals = None
    watch_bypasses(False)


def is_patched() -> bool:
    """Whether ``socket.getaddrinfo`` is currently safedns's."""
    return isinstance(getattr(socket.getaddrinfo, "__self__", None), AddrInfo)


@contextmanager
def patched(resolver: Resolver | None = None) -> Iterator[AddrInfo]:
    """Patch for the duration of a ``with`` block, then restore what was there before
    the block (so nested blocks, and blocks inside :func:`patch`, unwind correctly)."""
    global _originals
    with _lock:
        saved = _snapshot()
        saved_originals = _originals
    addrinfo = patch(resolver)
    try:
        yield addrinfo
    finally:
        with _lock:
            _restore(saved)
            _originals = saved_originals
        watch_bypasses(is_patched())


# --------------------------------------------------------------------------- safedns run

_SITECUSTOMIZE = '''\
"""Generated by ``safedns run``: patch socket name lookups, then chain to any other
sitecustomize module."""
import os as _os
import sys as _sys


def _safedns_patch():
    try:
        import safedns._patch
    except ImportError:
        _sys.path.append({package_parent!r})
        try:
            import safedns._patch
        except ImportError as exc:
            _sys.stderr.write("safedns run: cannot import safedns (%s); not patched\\n" % exc)
            return
    try:
        safedns._patch.patch()
    except Exception as exc:
        _sys.stderr.write("safedns run: not patched: %s\\n" % exc)


def _safedns_chain():
    import importlib.machinery
    import importlib.util

    here = _os.path.dirname(_os.path.abspath(__file__))
    path = [p for p in _sys.path if _os.path.abspath(p or _os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    _sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


_safedns_patch()
_safedns_chain()
'''


def write_bootstrap(directory: str) -> str:
    """Write the ``sitecustomize.py`` that patches at interpreter start into
    ``directory``; returns its path."""
    # This module's package directory, and the directory above it.
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(directory, "sitecustomize.py")
    with open(path, "w", encoding="utf-8") as f:
        f.write(_SITECUSTOMIZE.format(package_parent=package_parent))
    return path


def child_environment(bootstrap_dir: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default: this process's) with ``bootstrap_dir`` first on PYTHONPATH."""
    env = dict(os.environ if environ is None else environ)
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = bootstrap_dir + (os.pathsep + existing if existing else "")
    return env


def run_command(argv: Sequence[str]) -> int:
    """Run ``argv`` with every Python process in it patched; return its exit status.

    Exit status 127 when the command is not found, 126 when it cannot be run, and
    128 + N when it was killed by signal N. SIGINT, SIGTERM and SIGHUP are passed on to
    the child while it runs.
    """
    if not argv:
        sys.stderr.write("safedns run: no command given (usage: safedns run -- COMMAND ...)\n")
        return 2
    directory = tempfile.mkdtemp(prefix="safedns-run-")
    try:
        write_bootstrap(directory)
        env = child_environment(directory)
        try:
            proc = subprocess.Popen(list(argv), env=env)
        except FileNotFoundError:
            sys.stderr.write(f"safedns run: command not found: {argv[0]}\n")
            return 127
        except PermissionError:
            sys.stderr.write(f"safedns run: permission denied: {argv[0]}\n")
            return 126
        except OSError as exc:
            sys.stderr.write(f"safedns run: cannot run {argv[0]}: {exc}\n")
            return 126
        previous = _forward_signals(proc)
        try:
            while True:
                try:
                    returncode = proc.wait()
                    break
                except KeyboardInterrupt:  # SIGINT was forwarded; keep waiting
                    continue
        finally:
            _restore_signals(previous)
        return 128 - returncode if returncode < 0 else returncode
    finally:
        shutil.rmtree(directory, ignore_errors=True)


_Handler = Callable[[int, FrameType | None], Any] | int | None


def _forward_signals(proc: subprocess.Popen[bytes]) -> dict[int, _Handler]:
    previous: dict[int, _Handler] = {}
    if threading.current_thread() is not threading.main_thread():
        return previous

    def forward(signum: int, frame: FrameType | None) -> None:
        with suppress(OSError):
            proc.send_signal(signum)

    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        try:
            previous[signum] = signal.signal(signum, forward)
        except (OSError, ValueError):
            continue
    return previous


def _restore_signals(previous: dict[int, _Handler]) -> None:
    for signum, handler in previous.items():
        try:
            signal.signal(signum, handler)
        except (OSError, ValueError, TypeError):
            continue


def _reinit_after_fork() -> None:
    global _lock
    _lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
