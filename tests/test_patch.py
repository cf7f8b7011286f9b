"""``safedns.patch()``, ``unpatch()``, ``patched()``, ``is_patched()`` and ``safedns run``.

Real sockets throughout: a ``DNSServer`` that alone knows ``svc.example.com``, a TCP echo
server and an HTTP server on loopback, real child processes and a real ``os.fork()``.
"""

from __future__ import annotations

import contextlib
import gc
import http.server
import os
import select
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import safedns
from safedns import Resolver, ResolverConfig
from safedns._dropin.addrinfo import AddrInfo, set_default
from safedns._hosts import HostsFile
from safedns._patch import child_environment, run_command, write_bootstrap
from safedns.testing import DNSServer

S = socket
ORIGINALS = (socket.getaddrinfo, socket.gethostbyname, socket.gethostbyname_ex)


def _current() -> tuple[Any, Any, Any]:
    return (socket.getaddrinfo, socket.gethostbyname, socket.gethostbyname_ex)


@pytest.fixture(autouse=True)
def _always_unpatched() -> Iterator[None]:
    """Every test starts and ends with the real functions in place."""
    assert _current() == ORIGINALS
    try:
        yield
    finally:
        safedns.unpatch()
        (socket.getaddrinfo, socket.gethostbyname, socket.gethostbyname_ex) = ORIGINALS


@pytest.fixture
def dns() -> Iterator[DNSServer]:
    with DNSServer() as server:
        server.add("svc.example.com", "A", "127.0.0.1", ttl=300)
        server.add("other.example.com", "A", "127.0.0.1", ttl=300)
        server.add("other.example.com", "AAAA", "::1", ttl=300)
        yield server


@pytest.fixture
def resolver(dns: DNSServer) -> Iterator[Resolver]:
    config = ResolverConfig(nameservers=[dns.nameserver], search=(), timeout=1.0, attempts=2)
    with Resolver(config) as r:
        yield r


@pytest.fixture
def default_resolver(resolver: Resolver) -> Iterator[AddrInfo]:
    """Make the process-wide default (what ``patch()`` uses) a test-controlled resolver, so
    nothing here can reach this machine's nameserver."""
    addrinfo = AddrInfo(resolver)
    previous = set_default(addrinfo)
    try:
        yield addrinfo
    finally:
        set_default(previous)


# --------------------------------------------------------------------------- patch state


def test_patch_and_unpatch_restore_exactly(default_resolver: AddrInfo) -> None:
    assert not safedns.is_patched()
    addrinfo = safedns.patch()
    assert addrinfo is default_resolver
    assert safedns.is_patched()
    assert socket.getaddrinfo == addrinfo.getaddrinfo
    assert socket.gethostbyname == addrinfo.gethostbyname
    assert socket.gethostbyname_ex == addrinfo.gethostbyname_ex
    assert safedns.patch() is addrinfo  # twice: harmless
    safedns.unpatch()
    assert _current() == ORIGINALS
    assert all(a is b for a, b in zip(_current(), ORIGINALS, strict=True))
    assert not safedns.is_patched()
    safedns.unpatch()  # twice: harmless
    assert _current() == ORIGINALS


def test_patch_with_other_resolver_then_unpatch(resolver: Resolver) -> None:
    first = safedns.patch(resolver)
    assert safedns.patch(resolver) is first  # one AddrInfo (one cache) per resolver
    with Resolver(ResolverConfig(nameservers=["127.0.0.1:9"])) as other:
        second = safedns.patch(other)
        assert second is not first
        assert socket.getaddrinfo == second.getaddrinfo
    safedns.unpatch()
    assert all(a is b for a, b in zip(_current(), ORIGINALS, strict=True))


def test_patch_does_not_keep_its_resolver_alive(dns: DNSServer) -> None:
    config = ResolverConfig(nameservers=[dns.nameserver], search=(), timeout=1.0, attempts=1)
    r = Resolver(config)
    addrinfo = safedns.patch(r)
    assert safedns.patch(r) is addrinfo  # still one AddrInfo per resolver while patched
    assert socket.getaddrinfo("svc.example.com", 80, S.AF_INET)[0][4] == ("127.0.0.1", 80)
    safedns.unpatch()
    dead = weakref.ref(r)
    del r, addrinfo
    gc.collect()
    assert dead() is None


def test_unpatch_restores_what_was_there_before(resolver: Resolver) -> None:
    def foreign(*args: Any, **kwargs: Any) -> Any:
        return ORIGINALS[0](*args, **kwargs)

    socket.getaddrinfo = foreign
    try:
        safedns.patch(resolver)
        safedns.unpatch()
        assert socket.getaddrinfo is foreign
    finally:
        socket.getaddrinfo = ORIGINALS[0]


def test_patched_nests_and_unwinds(resolver: Resolver, default_resolver: AddrInfo) -> None:
    with safedns.patched() as outer:
        assert safedns.is_patched() and socket.getaddrinfo == outer.getaddrinfo
        with safedns.patched(resolver) as inner:
            assert socket.getaddrinfo == inner.getaddrinfo
        assert socket.getaddrinfo == outer.getaddrinfo
        with pytest.raises(RuntimeError), safedns.patched(resolver):
            raise RuntimeError("unwinds on error too")
        assert socket.getaddrinfo == outer.getaddrinfo
    assert all(a is b for a, b in zip(_current(), ORIGINALS, strict=True))
    safedns.patch(resolver)
    with safedns.patched():
        pass
    assert safedns.is_patched()  # back to the patch() from before the block
    safedns.unpatch()
    assert all(a is b for a, b in zip(_current(), ORIGINALS, strict=True))


# --------------------------------------------------------------------------- equality with stdlib


def _outcome(fn: Any, *args: Any) -> Any:
    try:
        return ("ok", fn(*args))
    except Exception as exc:
        return ("error", type(exc), getattr(exc, "errno", None), str(exc))


def _hosts_answers(name: str, family: int) -> bool:
    """Whether this machine's hosts file answers ``name`` for ``family`` (then glibc
    needs no DNS, which the machine's tests must never use)."""
    lookup = family if family != S.AF_UNSPEC else S.AF_UNSPEC
    return HostsFile().lookup(name.encode(), lookup) is not None


def _table() -> list[tuple[Any, ...]]:
    calls: list[tuple[Any, ...]] = []
    families = (0, S.AF_INET, S.AF_INET6)
    types = (0, S.SOCK_STREAM, S.SOCK_DGRAM, S.SOCK_RAW)
    for host in ("127.0.0.1", "::1", "192.0.2.1", "2001:db8::1", "fe80::1%1", "127.1", "0"):
        for family in families:
            for kind in types:
                for port in (80, "80", None, 0):
                    calls.append((host, port, family, kind))
    for family in families:
        for kind in types:
            calls.append((None, 8080, family, kind, 0, S.AI_PASSIVE))
            calls.append((None, 8080, family, kind))
            if _hosts_answers("localhost", family):
                calls.append(("localhost", 80, family, kind))
    for service in ("http", "https", "domain", "ssh", b"http", "www"):
        calls.append(("127.0.0.1", service))
        calls.append(("::1", service, S.AF_INET6, S.SOCK_STREAM))
    calls += [
        ("127.0.0.1", "no-such-service"),  # EAI_SERVICE
        ("127.0.0.1", 80, 12345),  # EAI_FAMILY
        ("127.0.0.1", 80, S.AF_UNIX),  # EAI_FAMILY
        ("127.0.0.1", 80, 0, 12345),  # EAI_SOCKTYPE
        ("127.0.0.1", 80, 0, S.SOCK_STREAM, S.IPPROTO_UDP),  # EAI_SOCKTYPE
        ("a" * 64 + ".example.com", 80),  # over-long label: UnicodeError
        ("a" * 64, 80),
        ("::1", 80, S.AF_INET),  # EAI_ADDRFAMILY
        ("127.0.0.1", 80, 0, 0, 0, -1),  # EAI_BADFLAGS
        (None, None),  # EAI_NONAME
        ("not a number", 80, 0, 0, 0, S.AI_NUMERICHOST),  # EAI_NONAME
        ("127.0.0.1", "http", 0, 0, 0, S.AI_NUMERICSERV),  # EAI_NONAME
        (1234, 80),  # TypeError
        ("127.0.0.1", 80.0),  # OSError
        ("127.0.0.1", 2**64),  # OverflowError
        ("127.0.0.1", 80, 2.0),  # TypeError
        ("127.0.0.1", 80, 2**40),  # OverflowError
        ("127.0.0.1", "\udcff"),  # UnicodeEncodeError
    ]
    if _hosts_answers("localhost", S.AF_INET):
        calls.append(("localhost", 80, 0, S.SOCK_STREAM, 0, S.AI_CANONNAME))
    return calls


def test_patched_getaddrinfo_equals_unpatched(default_resolver: AddrInfo) -> None:
    """The table of the issue: numeric hosts, localhost, None with and without
    AI_PASSIVE, service names, every family/type, and the standard errors."""
    calls = _table()
    expected = [_outcome(socket.getaddrinfo, *call) for call in calls]
    kinds = {e[1] for e in expected if e[0] == "error"}
    # (3.13's idna codec raises UnicodeEncodeError where older ones raise UnicodeError.)
    for kind in (socket.gaierror, TypeError, OSError, OverflowError, UnicodeError):
        assert any(issubclass(k, kind) for k in kinds), kind
    errnos = {e[2] for e in expected if e[0] == "error" and e[1] is socket.gaierror}
    assert {
        S.EAI_SERVICE,
        S.EAI_FAMILY,
        S.EAI_SOCKTYPE,
        S.EAI_BADFLAGS,
        S.EAI_NONAME,
        S.EAI_ADDRFAMILY,
    } <= errnos
    with safedns.patched():
        got = [_outcome(socket.getaddrinfo, *call) for call in calls]
        again = [_outcome(socket.getaddrinfo, *call) for call in calls]  # from the cache
    for call, want, have, cached in zip(calls, expected, got, again, strict=True):
        assert have == want, call
        assert cached == want, call
    assert default_resolver.resolver.stats().upstream_queries == 0


def test_patched_gethostbyname_equals_unpatched(default_resolver: AddrInfo) -> None:
    names: list[Any] = [
        "127.0.0.1",
        "127.1",
        "0x7f.1",
        "",
        "<broadcast>",
        "255.255.255.255",
        b"10.0.0.1",
        bytearray(b"10.0.0.2"),
        "::1",
        None,
        5,
        "x\0y",
    ]
    if _hosts_answers("localhost", S.AF_INET):
        names.append("localhost")
    for fn_name in ("gethostbyname", "gethostbyname_ex"):
        for name in names:
            if fn_name == "gethostbyname_ex" and name in ("<broadcast>", "0x7f.1", ""):
                continue  # gethostbyname_r would ask DNS for these: not on this machine
            want = _outcome(getattr(socket, fn_name), name)
            with safedns.patched():
                have = _outcome(getattr(socket, fn_name), name)
            assert have == want, (fn_name, name)


# --------------------------------------------------------------------------- real connections


@pytest.fixture
def echo_server() -> Iterator[int]:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            ready, _, _ = select.select([listener], [], [], 0.1)
            if not ready:
                continue
            conn, _ = listener.accept()
            with conn:
                data = conn.recv(1024)
                conn.sendall(b"echo:" + data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    stop.set()
    thread.join()
    listener.close()


def test_create_connection_by_a_name_only_dns_server_knows(
    dns: DNSServer, resolver: Resolver, echo_server: int
) -> None:
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("svc.example.com", echo_server, 0, 0, 0, S.AI_NUMERICHOST)
    with safedns.patched(resolver):
        with socket.create_connection(("svc.example.com", echo_server), timeout=5) as conn:
            conn.sendall(b"hello")
            assert conn.recv(1024) == b"echo:hello"
        dns.clear()
        for _ in range(1000):
            infos = socket.getaddrinfo("svc.example.com", echo_server)
            assert infos[0][4] == ("127.0.0.1", echo_server)
    assert len(dns.queries) <= 2
    assert resolver.stats().upstream_queries <= 2


@pytest.fixture
def http_server() -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"hello from {self.headers['Host']}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join()


def test_http_clients_through_the_patch(resolver: Resolver, http_server: int) -> None:
    url = f"http://svc.example.com:{http_server}/"
    with safedns.patched(resolver):
        with urllib.request.urlopen(url, timeout=5) as response:  # http.client
            assert response.read() == f"hello from svc.example.com:{http_server}".encode()
        import httpx

        assert httpx.get(url, timeout=5).text.startswith("hello from svc.example.com")
        try:
            import requests
        except ImportError:
            pass
        else:
            assert requests.get(url, timeout=5).text.startswith("hello from svc.example.com")


# --------------------------------------------------------------------------- fork and threads


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_keeps_a_working_resolver(dns: DNSServer, resolver: Resolver) -> None:
    """Fork while other threads are in the middle of lookups (holding locks, sockets in
    use): each child must resolve a name nobody has looked up yet."""
    dns.delay = 0.002  # keep lookups in flight while forking
    with safedns.patched(resolver):
        stop = threading.Event()
        errors: list[BaseException] = []

        def hammer(n: int) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    with contextlib.suppress(socket.gaierror):
                        socket.getaddrinfo(f"busy{n}-{i}.example.com", 80)
                    socket.getaddrinfo("svc.example.com", 80)
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)

        threads = [threading.Thread(target=hammer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        try:
            for attempt in range(5):
                time.sleep(0.02)
                dns.add(f"fresh{attempt}.example.com", "A", "127.0.0.9")
                pid = os.fork()
                if pid == 0:  # pragma: no cover - runs in the child
                    code = 1
                    try:
                        signal_alarm(10)
                        infos = socket.getaddrinfo(f"fresh{attempt}.example.com", 80)
                        ok = infos[0][4] == ("127.0.0.9", 80)
                        ok = ok and socket.gethostbyname("svc.example.com") == "127.0.0.1"
                        code = 0 if ok else 1
                    finally:
                        os._exit(code)
                _, status = os.waitpid(pid, 0)
                assert os.waitstatus_to_exitcode(status) == 0, f"child {attempt} failed"
        finally:
            stop.set()
            for t in threads:
                t.join()
    assert not errors


def signal_alarm(seconds: int) -> None:
    import signal

    signal.alarm(seconds)


def test_64_threads_mixed_names(dns: DNSServer, resolver: Resolver) -> None:
    expected = {
        ("svc.example.com", 80, 0, S.SOCK_STREAM): [("127.0.0.1", 80)],
        ("other.example.com", 443, S.AF_INET6, S.SOCK_STREAM): [("::1", 443, 0, 0)],
        ("127.0.0.1", "http", 0, S.SOCK_STREAM): [("127.0.0.1", 80)],
        ("::1", 53, 0, S.SOCK_DGRAM): [("::1", 53, 0, 0)],
        ("10.1.2.3", 8080, S.AF_INET, S.SOCK_STREAM): [("10.1.2.3", 8080)],
    }
    with safedns.patched(resolver):
        addrinfo_other = socket.getaddrinfo("other.example.com", 80, 0, S.SOCK_STREAM)
        families = [info[0] for info in addrinfo_other]
        assert sorted(families) == [S.AF_INET, S.AF_INET6]
        errors: list[str] = []
        barrier = threading.Barrier(64)

        def worker(n: int) -> None:
            barrier.wait()
            keys = list(expected)
            for i in range(300):
                key = keys[(n + i) % len(keys)]
                try:
                    got = [info[4] for info in socket.getaddrinfo(*key)]
                except Exception as exc:
                    errors.append(f"{key}: {exc!r}")
                    return
                if got != expected[key]:
                    errors.append(f"{key}: {got}")
                    return
                if i % 50 == 0:
                    socket.getaddrinfo("other.example.com", 80, 0, S.SOCK_STREAM)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(64)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert len(dns.queries) <= 4


# --------------------------------------------------------------------------- safedns run


CHILD = textwrap.dedent(
    """
    import socket, subprocess, sys
    out = open(sys.argv[1], "w")
    out.write(socket.gethostbyname("svc.example.com") + "\\n")
    infos = socket.getaddrinfo("other.example.com", 80, 0, socket.SOCK_STREAM)
    out.write(str(infos[0][4]) + "\\n")
    import safedns
    out.write(f"patched={safedns.is_patched()}\\n")
    grandchild = subprocess.run(
        [sys.executable, "-c", "import socket; print(socket.gethostbyname('svc.example.com'))"],
        capture_output=True, text=True,
    )
    out.write("grandchild=" + grandchild.stdout.strip() + "\\n")
    out.close()
    """
)


def test_safedns_run_patches_a_python_program(
    dns: DNSServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAFEDNS_NAMESERVERS", dns.nameserver)
    monkeypatch.setenv("SAFEDNS_SEARCH", "")
    out = tmp_path / "out.txt"
    status = run_command([sys.executable, "-c", CHILD, str(out)])
    assert status == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "127.0.0.1"
    assert lines[1] in ("('::1', 80, 0, 0)", "('127.0.0.1', 80)")
    assert lines[2] == "patched=True"
    assert lines[3] == "grandchild=127.0.0.1"


def test_safedns_run_keeps_pythonpath_and_chains_sitecustomize(
    dns: DNSServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "sitecustomize.py").write_text("import os\nos.environ['CHAINED'] = 'yes'\n")
    (existing / "helper_mod.py").write_text("VALUE = 42\n")
    monkeypatch.setenv("PYTHONPATH", str(existing))
    monkeypatch.setenv("SAFEDNS_NAMESERVERS", dns.nameserver)
    out = tmp_path / "out.txt"
    code = (
        "import os, socket, sys, helper_mod\n"
        "open(sys.argv[1], 'w').write(f\"{os.environ.get('CHAINED')} {helper_mod.VALUE} "
        "{socket.gethostbyname('svc.example.com')}\")\n"
    )
    assert run_command([sys.executable, "-c", code, str(out)]) == 0
    assert out.read_text() == "yes 42 127.0.0.1"


def test_safedns_run_exit_statuses(tmp_path: Path) -> None:
    assert run_command([sys.executable, "-c", "raise SystemExit(7)"]) == 7
    assert run_command([str(tmp_path / "no-such-program")]) == 127
    assert run_command([]) == 2
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    assert run_command([str(script)]) == 126
    kill = "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    assert run_command([sys.executable, "-c", kill]) == 128 + 15


def test_bootstrap_directory_is_importable(tmp_path: Path, dns: DNSServer) -> None:
    write_bootstrap(str(tmp_path))
    env = child_environment(str(tmp_path), dict(os.environ, SAFEDNS_NAMESERVERS=dns.nameserver))
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(tmp_path)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import safedns, socket; print(safedns.is_patched(), "
            "socket.gethostbyname('svc.example.com'))",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.strip() == "True 127.0.0.1", proc.stderr


def test_python_m_safedns_run(dns: DNSServer, tmp_path: Path) -> None:
    """The command line: ``safedns run -- python -c ...``."""
    paths = [p or os.getcwd() for p in sys.path]
    env = dict(
        os.environ,
        SAFEDNS_NAMESERVERS=dns.nameserver,
        PYTHONPATH=os.pathsep.join(dict.fromkeys(paths)),
    )
    code = "import socket; print(socket.gethostbyname('svc.example.com'))"
    proc = subprocess.run(
        [sys.executable, "-m", "safedns", "run", "--", sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (proc.returncode, proc.stdout.strip()) == (0, "127.0.0.1"), proc.stderr


# --------------------------------------------------------------------------- resolv.conf


@pytest.fixture
def system_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A resolv.conf of the test's own (SAFEDNS_RESOLV_CONF), an empty hosts file and
    ``hosts: files dns``: the machine's own configuration plays no part."""
    for name in ("LOCALDOMAIN", "RES_OPTIONS", "SAFEDNS_NAMESERVERS", "SAFEDNS_SEARCH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("SAFEDNS_NDOTS", raising=False)
    resolv_conf = tmp_path / "resolv.conf"
    monkeypatch.setenv("SAFEDNS_RESOLV_CONF", str(resolv_conf))
    hosts = tmp_path / "hosts"
    hosts.write_text("")
    nsswitch = tmp_path / "nsswitch.conf"
    nsswitch.write_text("hosts: files dns\n")
    return {
        "resolv_conf": resolv_conf,
        "addrinfo": lambda **kw: AddrInfo(
            hosts_path=str(hosts), nsswitch_path=str(nsswitch), hosts_check_interval=0, **kw
        ),
    }


def _rewrite(path: Path, text: str) -> None:
    """Replace the file as resolvconf/NetworkManager do: a new inode, so the change is
    seen even within one mtime tick."""
    new = path.with_suffix(".new")
    new.write_text(text)
    os.replace(new, path)


def test_default_resolver_follows_resolv_conf_and_keeps_its_cache(
    dns: DNSServer, system_files: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    dns.add("my-svc.a.example", "A", "10.0.0.1", ttl=300)
    dns.add("my-svc.b.example", "A", "10.0.0.2", ttl=300)
    # The nameserver (a test port) comes from SAFEDNS_NAMESERVERS; the search list from
    # the file, which changes.
    monkeypatch.setenv("SAFEDNS_NAMESERVERS", dns.nameserver)
    _rewrite(system_files["resolv_conf"], "search a.example\noptions timeout:1\n")
    addrinfo = system_files["addrinfo"]()
    first = addrinfo.resolver
    assert first.config.search == ("a.example",)
    assert addrinfo.getaddrinfo("my-svc", 80, S.AF_INET)[0][4] == ("10.0.0.1", 80)
    assert addrinfo.getaddrinfo("svc.example.com", 80, S.AF_INET)[0][4] == ("127.0.0.1", 80)
    asked = len(dns.queries)

    _rewrite(system_files["resolv_conf"], "search b.example\noptions timeout:1\n")
    assert addrinfo.getaddrinfo("my-svc", 80, S.AF_INET)[0][4] == ("10.0.0.2", 80)
    assert addrinfo.resolver is not first
    assert addrinfo.resolver.config.search == ("b.example",)
    # Same nameservers: the cached answers are still theirs, so still used.
    assert addrinfo.getaddrinfo("svc.example.com", 80, S.AF_INET)[0][4] == ("127.0.0.1", 80)
    assert dns.queries[asked:] == [("my-svc.b.example.", "A")]

    # A rewrite that changes nothing keeps the resolver.
    current = addrinfo.resolver
    _rewrite(system_files["resolv_conf"], "search b.example\noptions timeout:1\n")
    addrinfo.getaddrinfo("svc.example.com", 80, S.AF_INET)
    assert addrinfo.resolver is current


def test_new_nameservers_start_with_an_empty_cache(
    system_files: dict[str, Any],
) -> None:
    # resolv.conf names port-53 servers only: two loopback addresses of the test's own.
    base = f"127.{53 + os.getpid() % 100}.{os.getpid() % 250}"
    try:
        one, two = DNSServer(host=f"{base}.1", port=53), DNSServer(host=f"{base}.2", port=53)
    except OSError as exc:
        pytest.skip(f"cannot serve DNS on port 53 of a loopback address: {exc}")
    with one, two:
        one.add("svc.example.com", "A", "10.1.0.1", ttl=300)
        two.add("svc.example.com", "A", "10.2.0.2", ttl=300)
        path = system_files["resolv_conf"]
        _rewrite(path, f"nameserver {base}.1\noptions timeout:1 attempts:1\n")
        addrinfo = system_files["addrinfo"]()
        explicit = system_files["addrinfo"](resolver=Resolver(ResolverConfig.from_system()))
        assert addrinfo.gethostbyname("svc.example.com") == "10.1.0.1"
        assert explicit.gethostbyname("svc.example.com") == "10.1.0.1"
        _rewrite(path, f"nameserver {base}.2\noptions timeout:1 attempts:1\n")
        assert addrinfo.gethostbyname("svc.example.com") == "10.2.0.2"
        assert len(two.queries) == 1
        # A resolver given its configuration keeps it.
        explicit.clear_cache()
        explicit.resolver.flush()
        assert explicit.gethostbyname("svc.example.com") == "10.1.0.1"
        assert len(two.queries) == 1
