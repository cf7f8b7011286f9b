"""Shared fixtures: an embedded DNS server with a cluster-like zone, a fake clock,
and the Hypothesis profiles (``ci`` when ``CI`` is set, ``dev`` otherwise)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import selectors
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from types import TracebackType
from typing import Any

import pytest
from hypothesis import HealthCheck, is_hypothesis_test, settings

from safedns import ResolverConfig
from safedns.testing import DNSServer, dnsmasq_available, netns_available

#: httpx2 (2.15 and later) exists only for Python 3.11 and newer: on 3.10 there
#: is no httpx2 to adapt, so its tests are not collected (nothing is skipped).
collect_ignore = ["test_httpx2_transport.py"] if sys.version_info < (3, 11) else []

# Hypothesis: under CI the examples are derived from each test's source, so a
# run never fails on an example that no earlier run saw, and nothing is read
# from or written to the example database. Locally the search stays random (a
# failure prints a blob to replay it). ``HYPOTHESIS_PROFILE`` picks another.
# Loaded here, before any test module is imported, so the ``@settings(...)``
# of a test inherits every field it does not set itself.
# Both start from Hypothesis' own defaults, not from the "ci" profile it
# loads by itself when a CI variable exists (even an empty one).
settings.register_profile(
    "ci",
    parent=settings.get_profile("default"),
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev", parent=settings.get_profile("default"), deadline=None, print_blob=True
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


# The parity and drop-in tests: they compare safedns with the standard library
# and glibc of the Python running them, so they run on every supported Python
# (``pytest -m parity``; scripts/test-pythons.sh --ci).
PARITY_FILES = frozenset(
    {"test_getaddrinfo.py", "test_patch.py", "test_glibc_differential.py", "test_hosts.py"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the parity tests, and refuse a property test whose own settings undo
    the profile's derandomize."""
    profile = settings.default
    for item in items:
        if item.path.name in PARITY_FILES:
            item.add_marker(pytest.mark.parity)
        test = getattr(item, "obj", None)
        if test is None or not is_hypothesis_test(test):
            continue
        # Hypothesis keeps a test's effective settings on the wrapper.
        own = getattr(test, "_hypothesis_internal_use_settings", None)
        if own is None:
            continue
        if own.derandomize != profile.derandomize or (
            profile.database is None and own.database is not None
        ):
            raise pytest.UsageError(
                f"{item.nodeid}: its @settings override the Hypothesis profile "
                f"(derandomize={own.derandomize}, database={own.database!r}); "
                "leave derandomize and database to the profile"
            )


K8S_SEARCH = ("ns1.svc.cluster.local", "svc.cluster.local", "cluster.local")


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class QueryGate:
    """A UDP relay in front of a :class:`DNSServer` that holds every query until
    ``count`` queries have arrived, then forwards them all and relays the
    replies. Whether a client sends its queries together is then an event, not
    a stopwatch reading: a client that waits for one reply before it sends the
    next query never opens the gate. After ``hold`` seconds without enough
    queries the gate lets what it holds through anyway (``opened`` stays
    False), so such a client fails its test instead of hanging."""

    def __init__(self, upstream: DNSServer, count: int, hold: float = 5.0) -> None:
        self.opened = False
        #: Client datagrams received, in order.
        self.received = 0
        self._upstream = upstream.address
        self._count = count
        self._deadline = time.monotonic() + hold
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._sock, selectors.EVENT_READ, None)
        self._held: list[tuple[bytes, Any]] = []
        self._through = False
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="QueryGate", daemon=True)
        self._thread.start()

    @property
    def nameserver(self) -> str:
        host, port = self._sock.getsockname()
        return f"{host}:{port}"

    def _forward(self, wire: bytes, client: Any) -> None:
        relay = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        relay.setblocking(False)
        relay.connect(self._upstream)
        relay.send(wire)
        self._sel.register(relay, selectors.EVENT_READ, client)

    def _loop(self) -> None:
        while not self._closing.is_set():
            for key, _ in self._sel.select(0.02):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if key.data is None:  # a client's query
                    wire, client = sock.recvfrom(65535)
                    self.received += 1
                    if self._through:
                        self._forward(wire, client)
                    else:
                        self._held.append((wire, client))
                else:  # the upstream's reply to one forwarded query
                    with contextlib.suppress(OSError):  # the client may have given up
                        self._sock.sendto(sock.recv(65535), key.data)
            if not self._through and (
                len(self._held) >= self._count or time.monotonic() >= self._deadline
            ):
                self.opened = len(self._held) >= self._count
                self._through = True
                for wire, client in self._held:
                    self._forward(wire, client)
        for key in list(self._sel.get_map().values()):
            self._sel.unregister(key.fileobj)
            key.fileobj.close()  # type: ignore[union-attr]
        self._sel.close()

    def close(self) -> None:
        self._closing.set()
        self._thread.join(5)

    def __enter__(self) -> QueryGate:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until it holds (True) or ``timeout`` seconds pass (False):
    waiting for something to happen, never a fixed sleep standing for it."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True


async def until(predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0) -> bool:
    """``wait_until`` on an event loop: the loop runs on while it waits. The
    predicate may be a coroutine function (``lambda: answered()``)."""
    deadline = time.monotonic() + timeout
    while True:
        held = predicate()
        if not isinstance(held, bool):
            held = await held
        if held:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.005)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server() -> Iterator[DNSServer]:
    with DNSServer() as srv:
        srv.add("api.example.com", "A", "192.0.2.10", ttl=60)
        srv.add("dual.example.com", "A", "192.0.2.11", ttl=60)
        srv.add("dual.example.com", "AAAA", "2001:db8::11", ttl=60)
        srv.add("my-svc.ns1.svc.cluster.local", "A", "10.0.0.5", ttl=30)
        srv.add("www.example.org", "CNAME", "edge.cdn.example.net", ttl=120)
        srv.add("edge.cdn.example.net", "A", "198.51.100.7", ttl=20)
        yield srv


def k8s_config(*servers: Any, **overrides: Any) -> ResolverConfig:
    """The Kubernetes resolver config of the outage, pointed at test servers."""
    settings: dict[str, Any] = {
        "nameservers": list(servers),
        "search": K8S_SEARCH,
        "ndots": 5,
        "timeout": 0.5,
        "attempts": 1,
    }
    settings.update(overrides)
    return ResolverConfig(**settings)


def require_dnsmasq() -> None:
    """Skip without dnsmasq, except in CI, where dnsmasq tests must run."""
    if not dnsmasq_available():
        if os.environ.get("CI"):
            pytest.fail("dnsmasq is not installed; CI must run the dnsmasq tests")
        pytest.skip("dnsmasq is not installed (apt-get install dnsmasq-base)")


def require_netns() -> None:
    if not netns_available():
        if os.environ.get("CI"):
            pytest.fail("network namespaces unavailable; CI runs as root and must run these")
        pytest.skip("needs root, iproute2, dnsmasq and network namespaces")
