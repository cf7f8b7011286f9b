"""safedns.aiohttp.Resolver: a real aiohttp client and server, names from DNSServer."""

from __future__ import annotations

import asyncio
import gc
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

aiohttp = pytest.importorskip("aiohttp")  # the test extra installs it
from aiohttp import web  # noqa: E402

import safedns  # noqa: E402
import safedns.aiohttp  # noqa: E402
from safedns import AsyncResolver, ResolverConfig  # noqa: E402
from safedns.testing import DNSServer  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "error::ResourceWarning", "error::pytest.PytestUnraisableExceptionWarning"
)

NAME = "svc.example.com"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def dns() -> Any:
    with DNSServer() as server:
        server.add(NAME, "A", "127.0.0.1", ttl=60)
        server.add("v6only.example.com", "AAAA", "::1", ttl=60)
        yield server
    gc.collect()  # a socket or transport left open warns now, inside the test


def config(server: DNSServer, **overrides: Any) -> ResolverConfig:
    settings: dict[str, Any] = {"nameservers": [server.nameserver], "timeout": 2, "attempts": 1}
    settings.update(overrides)
    return ResolverConfig(**settings)


@asynccontextmanager
async def web_server() -> AsyncIterator[int]:
    """A local aiohttp server on 127.0.0.1; yields its port."""

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"hello {request.host}")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def run(main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main`` and check that it left no task behind on its loop."""

    async def checked() -> None:
        await main()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert others == []

    asyncio.run(checked())


def test_session_fetches_by_a_name_only_dnsserver_knows(dns: DNSServer) -> None:
    async def main() -> None:
        async with AsyncResolver(config(dns)) as shared, web_server() as port:
            resolver = safedns.aiohttp.Resolver(shared, hosts=None)
            connector = aiohttp.TCPConnector(
                resolver=resolver, use_dns_cache=False, force_close=True
            )
            async with aiohttp.ClientSession(connector=connector) as session:
                async with session.get(f"http://{NAME}:{port}/") as response:
                    assert response.status == 200
                    assert await response.text() == f"hello {NAME}:{port}"
                asked = sorted(dns.queries)
                # A fresh connection (force_close) resolves again: a safedns cache hit.
                async with session.get(f"http://{NAME}:{port}/") as response:
                    assert response.status == 200
            await resolver.close()
            assert asked == [(f"{NAME}.", "A"), (f"{NAME}.", "AAAA")]
            assert sorted(dns.queries) == asked
            stats = shared.stats()
            assert stats.upstream_queries == 2 and stats.cache_hits >= 1
            # close() leaves a resolver it was given open.
            assert await shared.resolve_addresses(NAME) == ["127.0.0.1"]

    run(main)


def test_resolve_returns_what_aiohttp_resolvers_return(dns: DNSServer) -> None:
    dns.add("dual.example.com", "A", "192.0.2.11")
    dns.add("dual.example.com", "AAAA", "2001:db8::11")

    async def main() -> None:
        async with safedns.aiohttp.Resolver(AsyncResolver(config(dns)), hosts=None) as resolver:
            both = await resolver.resolve("dual.example.com", 443, socket.AF_UNSPEC)
            assert both == [
                {
                    "hostname": "dual.example.com",
                    "host": "192.0.2.11",
                    "port": 443,
                    "family": socket.AF_INET,
                    "proto": socket.IPPROTO_TCP,
                    "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                },
                {
                    "hostname": "dual.example.com",
                    "host": "2001:db8::11",
                    "port": 443,
                    "family": socket.AF_INET6,
                    "proto": socket.IPPROTO_TCP,
                    "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                },
            ]
            v6 = await resolver.resolve("dual.example.com", 443, socket.AF_INET6)
            assert [(r["host"], r["family"]) for r in v6] == [("2001:db8::11", socket.AF_INET6)]
            # aiohttp's default family is AF_INET.
            v4 = await resolver.resolve("dual.example.com", 80)
            assert [(r["host"], r["port"]) for r in v4] == [("192.0.2.11", 80)]
            # A link-local literal keeps its zone, as getnameinfo writes it for aiohttp.
            scoped = await resolver.resolve("fe80::1%lo", 80, socket.AF_UNSPEC)
            assert [(r["host"], r["family"]) for r in scoped] == [("fe80::1%lo", socket.AF_INET6)]

    run(main)


def _code(exc: BaseException) -> int | None:
    assert isinstance(exc, socket.gaierror), repr(exc)
    return exc.errno


@pytest.mark.parametrize(
    ("host", "family", "code", "cause"),
    [
        ("nope.example.com", socket.AF_UNSPEC, socket.EAI_NONAME, safedns.NameNotFound),
        ("v6only.example.com", socket.AF_INET, socket.EAI_NODATA, safedns.NameNotFound),
        ("bad..name", socket.AF_UNSPEC, socket.EAI_NONAME, safedns.InvalidName),
        ("x" * 64 + ".example.com", socket.AF_UNSPEC, socket.EAI_NONAME, safedns.InvalidName),
        (NAME, socket.AF_UNIX, socket.EAI_FAMILY, type(None)),
    ],
)
def test_failures_are_gaierrors_with_glibc_codes(
    dns: DNSServer, host: str, family: int, code: int, cause: type
) -> None:
    async def main() -> None:
        async with safedns.aiohttp.Resolver(AsyncResolver(config(dns)), hosts=None) as resolver:
            with pytest.raises(socket.gaierror) as raised:
                await resolver.resolve(host, 80, family)  # type: ignore[arg-type]
            assert _code(raised.value) == code
            assert isinstance(raised.value.strerror, str) and raised.value.strerror
            assert isinstance(raised.value.__cause__, cause)

    run(main)


def test_nxdomain_and_timeout_through_a_session(dns: DNSServer) -> None:
    async def main() -> None:
        async with AsyncResolver(config(dns, timeout=0.3)) as shared:
            resolver = safedns.aiohttp.Resolver(shared, hosts=None)
            connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False)
            async with aiohttp.ClientSession(connector=connector) as session:
                with pytest.raises(aiohttp.ClientConnectorError) as nx:
                    await session.get("http://nope.example.com/")
                assert _code(nx.value.os_error) == socket.EAI_NONAME
                assert "nope.example.com" in str(nx.value)
                dns.stop()  # no answers from now on: every query times out
                with pytest.raises(aiohttp.ClientConnectorError) as slow:
                    await session.get("http://other.example.com/")
                assert _code(slow.value.os_error) == socket.EAI_AGAIN
                assert isinstance(slow.value.os_error.__cause__, safedns.TemporaryFailure)
            await resolver.close()

    run(main)


def test_default_resolver_is_built_lazily_from_the_system_config_and_closed(
    dns: DNSServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("search example.com\noptions ndots:1 timeout:2 attempts:1\n")
    monkeypatch.setenv("SAFEDNS_RESOLV_CONF", str(conf))
    monkeypatch.setenv("SAFEDNS_NAMESERVERS", dns.nameserver)
    resolver = safedns.aiohttp.Resolver()
    assert "own" in repr(resolver)

    async def main() -> None:
        async with web_server() as port:
            connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False)
            # "svc" walks the search list of the resolv.conf given.
            async with (
                aiohttp.ClientSession(connector=connector) as session,
                session.get(f"http://svc:{port}/") as response,
            ):
                assert await response.text() == f"hello svc:{port}"
            built = resolver.resolver
            assert built.config.search == ("example.com",)
            assert built.config.nameservers == (dns.nameserver,)
            await resolver.close()
            with pytest.raises(RuntimeError, match="closed"):
                await resolver.resolve(NAME)

    run(main)
    assert (f"{NAME}.", "A") in dns.queries


def test_the_documented_way_async_with_closes_the_resolver(
    dns: DNSServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """README, guides.md, migrating.md and asyncio.md all open the resolver
    with ``async with`` (issue 19, 9): it closes what it built, although the
    connector and the session do not."""
    conf = tmp_path / "resolv.conf"
    conf.write_text("options timeout:2 attempts:1\n")
    monkeypatch.setenv("SAFEDNS_RESOLV_CONF", str(conf))
    monkeypatch.setenv("SAFEDNS_NAMESERVERS", dns.nameserver)

    async def main() -> None:
        async with web_server() as port:
            async with safedns.aiohttp.Resolver() as resolver:
                connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False)
                async with (
                    aiohttp.ClientSession(connector=connector) as session,
                    session.get(f"http://{NAME}:{port}/") as response,
                ):
                    assert await response.text() == f"hello {NAME}:{port}"
                assert resolver.resolver.config.nameservers == (dns.nameserver,)
            assert "closed" in repr(resolver)  # its AsyncResolver too: no socket left
            with pytest.raises(RuntimeError, match="closed"):
                await resolver.resolve(NAME)

    run(main)


def test_importing_safedns_needs_no_aiohttp_and_the_error_names_the_extra() -> None:
    # A child where aiohttp cannot be imported (None in sys.modules blocks it).
    code = (
        "import sys; sys.modules['aiohttp'] = None\n"
        "import safedns\n"
        "assert safedns.AsyncResolver\n"
        "try:\n"
        "    import safedns.aiohttp\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    assert "safedns[aiohttp]" in out.stdout


def test_hosts_file_names_are_answered_without_dns(dns: DNSServer, tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost web.internal\n::1 localhost ip6-localhost\n")

    async def main() -> None:
        shared = AsyncResolver(config(dns))
        resolver = safedns.aiohttp.Resolver(shared, hosts=str(hosts))
        async with web_server() as port:
            connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False)
            async with (
                aiohttp.ClientSession(connector=connector) as session,
                session.get(f"http://web.internal:{port}/") as response,
            ):
                assert await response.text() == f"hello web.internal:{port}"
        both = await resolver.resolve("localhost", 80, socket.AF_UNSPEC)
        assert [r["host"] for r in both] == ["127.0.0.1", "::1"]
        # glibc's rule: an IPv4 lookup takes "::1" lines as 127.0.0.1.
        v4 = await resolver.resolve("ip6-localhost", 80, socket.AF_INET)
        assert [(r["host"], r["family"]) for r in v4] == [("127.0.0.1", socket.AF_INET)]
        # A name not in the file goes to DNS.
        assert [r["host"] for r in await resolver.resolve(NAME, 80)] == ["127.0.0.1"]
        await resolver.close()
        await shared.aclose()

    run(main)
    assert dns.queries == [(f"{NAME}.", "A")]
