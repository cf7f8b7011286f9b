"""``safedns.async_getaddrinfo`` and the patched event loop.

Real sockets: a ``DNSServer`` that alone knows ``svc.example.com``, a local asyncio TCP
server, and event loops whose default executor refuses all work (so any thread hop
fails the test).
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import concurrent.futures
import contextlib
import gc
import os
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import warnings
import weakref
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

import safedns
from safedns import AsyncResolver, Resolver, ResolverConfig
from safedns._dropin.addrinfo import AddrInfo, set_default
from safedns._dropin.aio import getaddrinfo_with
from safedns.testing import DNSServer
from tests.conftest import FakeClock, until

S = socket
T = TypeVar("T")
LOOP_GETADDRINFO = asyncio.base_events.BaseEventLoop.getaddrinfo
ORIGINALS = (socket.getaddrinfo, socket.gethostbyname, socket.gethostbyname_ex)


class RefusingExecutor(concurrent.futures.ThreadPoolExecutor):
    """A default executor that fails every submission: a thread hop is an error.
    (asyncio only takes ThreadPoolExecutor instances; this one never starts a thread.)"""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.refused = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        self.refused += 1
        raise RuntimeError("this test's default executor refuses all work")


def run(coro: Coroutine[Any, Any, T], executor: RefusingExecutor | None = None) -> T:
    loop = asyncio.new_event_loop()
    loop.set_default_executor(executor or RefusingExecutor())
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


@pytest.fixture(autouse=True)
def _always_unpatched() -> Iterator[None]:
    assert asyncio.base_events.BaseEventLoop.getaddrinfo is LOOP_GETADDRINFO
    try:
        yield
    finally:
        safedns.unpatch()
        asyncio.base_events.BaseEventLoop.getaddrinfo = LOOP_GETADDRINFO  # type: ignore[method-assign]
        (socket.getaddrinfo, socket.gethostbyname, socket.gethostbyname_ex) = ORIGINALS


@pytest.fixture
def dns() -> Iterator[DNSServer]:
    with DNSServer() as server:
        server.add("svc.example.com", "A", "127.0.0.1", ttl=300)
        server.add("dual.example.com", "A", "127.0.0.1", ttl=300)
        server.add("dual.example.com", "AAAA", "::1", ttl=300)
        server.add("v4.example.com", "A", "192.0.2.4", ttl=300)
        server.add("alias.example.com", "CNAME", "v4.example.com", ttl=300)
        yield server


@pytest.fixture
def config(dns: DNSServer) -> ResolverConfig:
    return ResolverConfig(nameservers=[dns.nameserver], search=(), timeout=1.0, attempts=2)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Any]:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.9 from-hosts.example\n")
    nsswitch = tmp_path / "nsswitch.conf"
    nsswitch.write_text("hosts: files dns\n")
    return {"hosts_path": str(hosts), "nsswitch_path": str(nsswitch)}


def _outcome(value: Callable[[], Any]) -> Any:
    try:
        return ("ok", value())
    except Exception as exc:
        return ("error", type(exc), getattr(exc, "errno", None), str(exc))


async def _aoutcome(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        return ("ok", await coro)
    except Exception as exc:
        return ("error", type(exc), getattr(exc, "errno", None), str(exc))


CALLS: list[tuple[Any, ...]] = [
    ("svc.example.com", 80, 0, S.SOCK_STREAM),
    ("dual.example.com", 443),
    ("dual.example.com", "https", S.AF_INET6, S.SOCK_STREAM),
    ("alias.example.com", 80, 0, 0, 0, S.AI_CANONNAME),
    ("v4.example.com", 80, S.AF_INET6),  # NODATA: EAI_NODATA
    ("alias.example.com", 80, S.AF_INET6),  # CNAME, no AAAA: EAI_NONAME
    ("missing.example.com", 80),  # NXDOMAIN: EAI_NONAME
    ("v4.example.com", 80, S.AF_INET6, 0, 0, S.AI_V4MAPPED),
    ("from-hosts.example", 22),
    ("127.0.0.1", 80),
    (None, 8080, 0, 0, 0, S.AI_PASSIVE),
    ("::1", "no-such-service"),
    ("svc.example.com", 80, 12345),  # EAI_FAMILY
    ("svc.example.com", 80, 0, 0, 0, -1),  # EAI_BADFLAGS
    (1234, 80),  # TypeError
    ("svc.example.com", 80.0),  # OSError
    ("a" * 64, 80),  # UnicodeError
    ("foo bar", 80),
]


def _full(call: tuple[Any, ...]) -> tuple[Any, ...]:
    """``call`` with the defaulted int arguments spelled out (six arguments)."""
    return call + (0,) * (6 - len(call))


def test_same_results_and_errors_as_the_sync_drop_in(
    config: ResolverConfig, files: dict[str, Any], dns: DNSServer
) -> None:
    sync = AddrInfo(Resolver(config), **files)
    want = [_outcome(lambda call=call: sync.getaddrinfo(*call)) for call in CALLS]
    assert {w[2] for w in want if w[0] == "error"} >= {S.EAI_NONAME, S.EAI_NODATA}

    async def main() -> list[Any]:
        async with AsyncResolver(config) as resolver:
            addrinfo = AddrInfo(Resolver(config), async_resolver=resolver, **files)
            got = [await _aoutcome(getaddrinfo_with(addrinfo, *_full(c))) for c in CALLS]
            again = [await _aoutcome(getaddrinfo_with(addrinfo, *_full(c))) for c in CALLS]
            return [got, again]

    got, again = run(main())
    for call, w, g, a in zip(CALLS, want, got, again, strict=True):
        assert g == w, call
        assert a == w, call


def test_async_getaddrinfo_returns_the_dns_server_address(config: ResolverConfig) -> None:
    async def main() -> Any:
        async with AsyncResolver(config) as resolver:
            rows = await safedns.async_getaddrinfo(
                "svc.example.com", 80, type=S.SOCK_STREAM, resolver=resolver
            )
            return rows, resolver.stats().upstream_queries

    rows, queries = run(main())
    assert rows == [(S.AF_INET, S.SOCK_STREAM, 6, "", ("127.0.0.1", 80))]
    assert queries == 2  # A and AAAA, once


def test_a_resolver_given_to_async_getaddrinfo_is_not_kept_alive(config: ResolverConfig) -> None:
    # Its finished-results cache lives on the resolver, not in a module-level table.
    async def main() -> weakref.ref[AsyncResolver]:
        resolver = AsyncResolver(config)
        rows = await safedns.async_getaddrinfo("svc.example.com", 80, resolver=resolver)
        assert rows
        again = await safedns.async_getaddrinfo("svc.example.com", 80, resolver=resolver)
        assert again == rows and resolver.stats().upstream_queries == 2  # a hit
        await resolver.aclose()
        return weakref.ref(resolver)

    ref = run(main())
    gc.collect()
    assert ref() is None


def test_one_query_for_a_thousand_tasks(dns: DNSServer, config: ResolverConfig) -> None:
    dns.delay = 0.2

    async def main() -> list[Any]:
        async with AsyncResolver(config.replace(timeout=5.0)) as resolver:
            return await asyncio.gather(
                *(
                    safedns.async_getaddrinfo(
                        "v4.example.com", 80, S.AF_INET, S.SOCK_STREAM, resolver=resolver
                    )
                    for _ in range(1000)
                )
            )

    results = run(main())
    assert all(r == [(S.AF_INET, S.SOCK_STREAM, 6, "", ("192.0.2.4", 80))] for r in results)
    assert dns.queries == [("v4.example.com.", "A")]


def test_a_burst_shares_one_computation_and_each_task_gets_its_own_error(
    dns: DNSServer, config: ResolverConfig
) -> None:
    """1000 tasks on a missing name: one walk (one query per family), and each task
    raises a gaierror of its own with the stdlib code (not one shared instance)."""
    dns.delay = 0.1

    async def main() -> list[BaseException]:
        async with AsyncResolver(config.replace(timeout=5.0)) as resolver:
            calls = (
                safedns.async_getaddrinfo("missing.example.com", 80, resolver=resolver)
                for _ in range(1000)
            )
            return await asyncio.gather(*calls, return_exceptions=True)

    errors = run(main())
    assert all(isinstance(e, socket.gaierror) and e.errno == S.EAI_NONAME for e in errors)
    assert len({id(e) for e in errors}) == 1000
    assert sorted(dns.queries) == [("missing.example.com.", "A"), ("missing.example.com.", "AAAA")]


def test_cancelling_waiters_of_a_shared_computation(
    dns: DNSServer, config: ResolverConfig
) -> None:
    """Cancelling one waiter cancels only its wait; when every waiter is gone the
    computation stops (no task is left), and the next call starts afresh."""
    dns.delay = 0.3

    async def main() -> tuple[Any, ...]:
        async with AsyncResolver(config.replace(timeout=5.0)) as resolver:

            def ask(host: str) -> asyncio.Task[Any]:
                coro = safedns.async_getaddrinfo(host, 80, S.AF_INET, resolver=resolver)
                return asyncio.ensure_future(coro)

            first, second = ask("v4.example.com"), ask("v4.example.com")
            await asyncio.sleep(0)
            first.cancel()
            rows = await second
            assert first.cancelled()
            dns.delay = 1.0
            alone = ask("svc.example.com")
            # Under way: its query is at the server.
            assert await until(lambda: ("svc.example.com.", "A") in dns.queries)
            alone.cancel()
            with pytest.raises(asyncio.CancelledError):
                await alone

            def running() -> set[str]:
                return {t.get_coro().__qualname__ for t in asyncio.all_tasks()}  # type: ignore[union-attr]

            # The computation and the resolver's walk are gone; only the query already
            # sent runs on (its answer still lands in the cache).
            assert await until(lambda: not running() & {"_compute", "AsyncResolver._run"})
            assert "AsyncResolver._exchange" in running()
            dns.delay = 0.0
            fresh = await asyncio.wait_for(ask("svc.example.com"), 10)
            return rows, fresh

    rows, fresh = run(main())
    assert rows[0][4] == ("192.0.2.4", 80)
    assert fresh[0][4] == ("127.0.0.1", 80)


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A local asyncio TCP echo server, on its own loop in a thread."""
    import threading

    ready: concurrent.futures.Future[tuple[asyncio.AbstractEventLoop, asyncio.Event, int]] = (
        concurrent.futures.Future()
    )

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        stopping = asyncio.Event()
        port = server.sockets[0].getsockname()[1]
        ready.set_result((asyncio.get_running_loop(), stopping, port))
        await stopping.wait()
        server.close()
        await server.wait_closed()

    thread = threading.Thread(target=asyncio.run, args=(main(),))
    thread.start()
    loop, stopping, port = ready.result(timeout=10)
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout=10)
    assert not thread.is_alive()


async def _echo(host: str, port: int, text: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(text + b"\n")
    await writer.drain()
    line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return line.strip()


def test_patched_open_connection_needs_no_executor(
    dns: DNSServer, config: ResolverConfig, files: dict[str, Any], echo_port: int
) -> None:
    executor = RefusingExecutor()
    # The stdlib loop hops to the executor (and machine DNS) for a name: refused here.
    with pytest.raises(RuntimeError, match="refuses"):
        run(_echo("svc.example.com", echo_port, b"x"), executor)
    assert executor.refused == 1
    before_patch = asyncio.new_event_loop()  # a loop made before patch() is covered too
    before_patch.set_default_executor(executor)
    resolver = Resolver(config)
    addrinfo = AddrInfo(resolver, **files)
    previous = set_default(addrinfo)
    try:
        with safedns.patched(resolver):

            async def main() -> list[bytes]:
                lines = [await _echo("svc.example.com", echo_port, b"hello")]
                asked = len(dns.queries)
                for i in range(20):
                    lines.append(await _echo("svc.example.com", echo_port, b"%d" % i))
                assert len(dns.queries) == asked  # repeated opens: no query
                return lines

            lines = before_patch.run_until_complete(main())
            assert lines == [b"hello"] + [b"%d" % i for i in range(20)]
            assert run(_echo("svc.example.com", echo_port, b"again"), executor) == b"again"
            assert sorted(set(dns.queries)) == [
                ("svc.example.com.", "A"),
                ("svc.example.com.", "AAAA"),
            ]
        assert asyncio.base_events.BaseEventLoop.getaddrinfo is LOOP_GETADDRINFO
    finally:
        set_default(previous)
        before_patch.close()
    assert executor.refused == 1


def test_the_loop_shares_the_sync_cache(
    dns: DNSServer, config: ResolverConfig, echo_port: int
) -> None:
    resolver = Resolver(config)
    safedns.patch(resolver)
    try:
        assert socket.getaddrinfo("svc.example.com", echo_port)[0][4][0] == "127.0.0.1"
        asked = len(dns.queries)
        assert run(_echo("svc.example.com", echo_port, b"shared")) == b"shared"
        assert len(dns.queries) == asked
    finally:
        safedns.unpatch()
    assert asyncio.base_events.BaseEventLoop.getaddrinfo is LOOP_GETADDRINFO
    assert socket.getaddrinfo is ORIGINALS[0]


def test_patched_nests_and_restores_the_loop(config: ResolverConfig) -> None:
    with Resolver(config) as one, Resolver(config) as two:
        with safedns.patched(one) as first:
            outer = asyncio.base_events.BaseEventLoop.getaddrinfo
            assert outer.__safedns_addrinfo__ is first  # type: ignore[attr-defined]
            with safedns.patched(two) as second:
                inner = asyncio.base_events.BaseEventLoop.getaddrinfo
                assert inner.__safedns_addrinfo__ is second  # type: ignore[attr-defined]
            assert asyncio.base_events.BaseEventLoop.getaddrinfo is outer
        assert asyncio.base_events.BaseEventLoop.getaddrinfo is LOOP_GETADDRINFO


def _udp_sockets() -> set[str]:
    """This process's open UDP sockets (by inode)."""
    inodes = set()
    for table in ("/proc/self/net/udp", "/proc/self/net/udp6"):
        with open(table) as f:
            inodes |= {line.split()[9] for line in list(f)[1:]}
    links = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            links.add(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:  # the directory listing's own descriptor
            continue
    return {link for link in links if link.startswith("socket:[") and link[8:-1] in inodes}


@pytest.mark.skipif(not os.path.exists("/proc/self/net/udp"), reason="reads /proc (Linux)")
@pytest.mark.parametrize("how", ["asyncio.run", "run_until_complete"])
def test_no_task_or_socket_outlives_a_patched_loop(
    dns: DNSServer, config: ResolverConfig, clock: FakeClock, how: str
) -> None:
    """A program that opened connections under ``safedns.patched()`` ends while a
    background refresh of the patched loop's resolver is under way (the server is
    slow): when its loop shuts down, the refresh is stopped, its socket closed, and
    no task of that loop is left (``asyncio.run``, or ``shutdown_asyncgens()`` then
    ``close()``)."""
    resolver = Resolver(config.replace(timeout=5.0, attempts=1), clock=clock)
    loops: list[asyncio.AbstractEventLoop] = []
    refreshing: list[str] = []

    async def main() -> None:
        loops.append(asyncio.get_running_loop())
        listener = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        for _ in range(2):
            opening = asyncio.open_connection("svc.example.com", port, family=S.AF_INET)
            _, writer = await opening
            writer.close()
            await writer.wait_closed()
            clock.advance(280)  # past the refresh-ahead point of the 300 s answers
            dns.delay = 2.0
        listener.close()
        await listener.wait_closed()
        await until(lambda: len(dns.queries) >= 2, 30)  # the refresh's query is at the server
        tasks = asyncio.all_tasks() - {asyncio.current_task()}
        refreshing.extend(t.get_coro().__qualname__ for t in tasks)  # type: ignore[union-attr]

    before = _udp_sockets()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        with safedns.patched(resolver):
            if how == "asyncio.run":
                asyncio.run(main())
            else:
                loop = asyncio.new_event_loop()
                loop.run_until_complete(main())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()
    assert "AsyncResolver._exchange" in refreshing  # a refresh was under way at the end
    assert dns.queries == [("svc.example.com.", "A")] * 2  # and had reached the server
    assert asyncio.all_tasks(loops[0]) == set()
    assert _udp_sockets() == before


ASYNC_CHILD = textwrap.dedent(
    """\
    import asyncio, concurrent.futures, sys

    class Refusing(concurrent.futures.ThreadPoolExecutor):
        def submit(self, *args, **kwargs):
            raise RuntimeError("no executor")

    async def main(port):
        asyncio.get_running_loop().set_default_executor(Refusing())
        reader, writer = await asyncio.open_connection("svc.example.com", port)
        writer.write(b"from-child\\n")
        await writer.drain()
        print((await reader.readline()).decode().strip())
        writer.close()

    asyncio.run(main(int(sys.argv[1])))
    """
)


def test_safedns_run_covers_asyncio_programs(
    dns: DNSServer, echo_port: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SAFEDNS_NAMESERVERS", dns.nameserver)
    monkeypatch.setenv("SAFEDNS_SEARCH", "")
    script = tmp_path / "child.py"
    script.write_text(ASYNC_CHILD)
    out = tmp_path / "out.txt"
    with out.open("w") as f:
        status = subprocess.run(
            [
                sys.executable,
                "-m",
                "safedns",
                "run",
                "--",
                sys.executable,
                str(script),
                str(echo_port),
            ],
            stdout=f,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert status.returncode == 0, status.stderr
    assert out.read_text().strip() == "from-child"


def test_patch_covers_uvloop(dns: DNSServer, config: ResolverConfig, echo_port: int) -> None:
    """uvloop's create_connection resolves in libuv, not through loop.getaddrinfo: both
    are covered while patched, and restored after (a name only DNSServer knows)."""
    uvloop = pytest.importorskip("uvloop")  # in the test extra; absent on PyPy/Windows
    assert "getaddrinfo" not in uvloop.Loop.__dict__
    with safedns.patched(Resolver(config)):

        async def main() -> list[bytes]:
            loop = asyncio.get_running_loop()
            assert isinstance(loop, uvloop.Loop)
            rows = await loop.getaddrinfo("svc.example.com", echo_port, type=S.SOCK_STREAM)
            assert rows[0][4] == ("127.0.0.1", echo_port)
            lines = [await _echo("svc.example.com", echo_port, b"uv")]
            asked = len(dns.queries)
            lines.append(await _echo("svc.example.com", echo_port, b"again"))
            assert len(dns.queries) == asked
            return lines

        loop = uvloop.new_event_loop()
        try:
            assert loop.run_until_complete(main()) == [b"uv", b"again"]
        finally:
            loop.close()
    assert "getaddrinfo" not in uvloop.Loop.__dict__
    assert "create_connection" not in uvloop.Loop.__dict__


def test_a_sync_resolver_is_accepted_and_its_cache_shared(
    dns: DNSServer, config: ResolverConfig
) -> None:
    resolver = Resolver(config)
    assert resolver.resolve_addresses("dual.example.com") == ["127.0.0.1", "::1"]
    dns.clear()

    async def main() -> list[Any]:
        return await safedns.async_getaddrinfo(
            "dual.example.com", 443, type=S.SOCK_STREAM, resolver=resolver
        )

    infos = run(main())
    assert {info[4][0] for info in infos} == {"127.0.0.1", "::1"}
    assert dns.queries == []  # answered from the sync resolver's cache
    assert run(main()) == infos  # the same drop-in, kept on the resolver
    assert resolver.stats().lookups >= 3

    async def wrong() -> Any:
        return await safedns.async_getaddrinfo("dual.example.com", 443, resolver=object())  # type: ignore[arg-type]

    with pytest.raises(TypeError, match="AsyncResolver"):
        run(wrong())


@pytest.mark.parametrize("loop_kind", ["uvloop", "asyncio"])
def test_patched_create_connection_raises_tls_errors_as_they_are(
    dns: DNSServer, config: ResolverConfig, loop_kind: str
) -> None:
    """A certificate for another name is a TLS failure, not a connect failure of one
    address: with two addresses the caller still gets ``SSLCertVerificationError``."""
    trustme = pytest.importorskip("trustme")
    new_loop = asyncio.new_event_loop
    if loop_kind == "uvloop":
        new_loop = pytest.importorskip("uvloop").new_event_loop
    dns.add("two.example.com", "A", "127.0.0.1")
    dns.add("two.example.com", "A", "127.0.0.2")
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("other.example").configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)

    # A blocking TLS server on both addresses, one port, in threads of its own.
    listeners = [socket.create_server(("127.0.0.1", 0))]
    port = listeners[0].getsockname()[1]
    listeners.append(socket.create_server(("127.0.0.2", port)))
    stop = threading.Event()

    def serve(listener: socket.socket) -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn, contextlib.suppress(OSError):  # the client rejects the certificate
                conn.settimeout(10)
                server_tls.wrap_socket(conn, server_side=True).close()

    threads = [threading.Thread(target=serve, args=(sock,)) for sock in listeners]
    for thread in threads:
        thread.start()

    async def main() -> None:
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection("two.example.com", port, ssl=client_tls)

    try:
        with safedns.patched(Resolver(config)):
            loop = new_loop()
            try:
                loop.run_until_complete(main())
            finally:
                loop.close()
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        for sock in listeners:
            sock.close()
    assert dns.queries and {q[0] for q in dns.queries} == {"two.example.com."}
