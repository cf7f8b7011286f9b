"""safedns.urllib3.SafePoolManager and SafeProxyManager: real urllib3 against
real servers on loopback (tests/httpservers.py), names served by the embedded
``DNSServer``, real TLS with a trustme CA. The requests adapter's tests
(test_requests_adapter.py) cover the same pools more fully."""

from __future__ import annotations

import inspect
import time
from pathlib import Path

import pytest
import trustme
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.exceptions import MaxRetryError, NameResolutionError, ProtocolError, SSLError
from urllib3.util.retry import Retry

import safedns
from safedns._http.retry import Failure
from safedns.testing import DNSServer
from safedns.urllib3 import SafePoolManager, SafeProxyManager, TransportState
from safedns.urllib3._pool import classify, single_try

from .adapterkit import (
    NAME,
    ProxyBackend,
    ca,
    dns,
    import_error_without,
    resolver,
    server_tls,
)
from .httpservers import BlackHole, RawServer, backends, wait_for

__all__ = ["ca", "dns", "resolver"]  # fixtures

CLOSE = [("Connection", "close")]


def test_the_urllib3_hooks_we_rely_on() -> None:
    """SafeHTTPConnection replaces ``_new_conn`` (the socket factory both
    connection classes' ``connect`` call) and extends ``is_connected`` (what
    the pool's checkout asks through ``is_connection_dropped``). If urllib3
    changes either, this fails loudly."""
    for cls in (HTTPConnection, HTTPSConnection):
        assert "self._new_conn()" in inspect.getsource(cls.connect), cls
    assert "is_connection_dropped(conn)" in inspect.getsource(HTTPConnectionPool._get_conn)
    assert "not conn.is_connected" in inspect.getsource(urllib3.util.is_connection_dropped)
    assert isinstance(inspect.getattr_static(HTTPConnection, "is_connected"), property)
    manager = urllib3.PoolManager()
    assert set(manager.pool_classes_by_scheme) == {"http", "https"}


def test_reuse_and_few_queries(dns: DNSServer, resolver: safedns.Resolver) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=1)
    with backends("127.0.0.2") as (server,):
        started = time.monotonic()
        with SafePoolManager(resolver) as http:
            answers = [http.request("GET", server.url(NAME)) for _ in range(200)]
            stats = http.stats()
        elapsed = time.monotonic() - started
        assert {(r.status, r.data) for r in answers} == {(200, b"127.0.0.2")}
        assert server.accepted <= 2
        assert 1 <= len(dns.queries) <= 2 * (2 + elapsed), (dns.queries, elapsed)
        assert (stats.requests, stats.attempts, stats.connections_opened) == (
            200,
            200,
            server.accepted,
        )


def test_following_a_dns_change(dns: DNSServer, resolver: safedns.Resolver) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=1)
    with backends("127.0.0.2", "127.0.0.3") as (old, new), SafePoolManager(resolver) as http:
        assert http.request("GET", old.url(NAME)).data == b"127.0.0.2"
        dns.remove(NAME, "A")
        dns.add(NAME, "A", "127.0.0.3", ttl=1)
        switched = time.monotonic()
        assert wait_for(lambda: http.request("GET", old.url(NAME)).data == b"127.0.0.3", 3.0)
        assert time.monotonic() - switched < 3.0
        assert wait_for(lambda: old.open_connections == 0, 0.5)
        assert new.accepted == 1
        assert http.stats().connections_retired_dns == 1


def test_a_black_holed_first_address(dns: DNSServer, resolver: safedns.Resolver) -> None:
    dns.add(NAME, "A", "127.0.0.4", ttl=60)
    dns.add(NAME, "A", "127.0.0.5", ttl=60)
    dead, live = resolver.resolve_addresses(NAME)
    with (
        backends(live, headers=CLOSE) as (alive,),
        BlackHole(dead, alive.port),
        SafePoolManager(resolver) as http,
    ):
        for _ in range(5):
            started = time.monotonic()
            response = http.request("GET", alive.url(NAME), headers={"Connection": "close"})
            assert time.monotonic() - started < 0.6
            assert response.data == live.encode()


def test_503_within_the_budget_and_posts_once(dns: DNSServer, resolver: safedns.Resolver) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=60)
    policy = safedns.RetryPolicy(attempts=4, backoff=0)
    with (
        backends("127.0.0.2", status=503) as (server,),
        SafePoolManager(resolver, retry=policy) as http,
    ):
        started = time.monotonic()
        for _ in range(500):  # urllib3's own retries become 0: only the policy retries
            assert http.request("GET", server.url(NAME), retries=Retry(5)).status == 503
        elapsed = time.monotonic() - started
        assert server.request_count <= 650 + 10 * elapsed
        assert http.stats().attempts == server.request_count
        server.requests.clear()
        for _ in range(10):
            assert http.request("POST", server.url(NAME), body=b"x").status == 503
        assert server.request_count == 10
        assert server.accepted == 1


def test_a_file_body_is_rewound_for_each_try_and_a_generator_is_sent_once(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    import io

    dns.add(NAME, "A", "127.0.0.2", ttl=60)
    policy = safedns.RetryPolicy(attempts=3, backoff=0)
    with (
        backends("127.0.0.2", status=503) as (server,),
        SafePoolManager(resolver, retry=policy) as http,
    ):
        body = io.BytesIO(b"skip:abc")
        body.seek(5)
        headers = {"Content-Length": "3"}
        assert http.urlopen("PUT", server.url(NAME), body=body, headers=headers).status == 503
        assert server.requests == [("PUT", "/", b"abc")] * 3
        server.requests.clear()
        chunks = iter([b"a", b"b"])
        assert http.urlopen("PUT", server.url(NAME), body=chunks, chunked=True).status == 503
        assert server.requests == [("PUT", "/", b"ab")]


def test_close_without_a_response(dns: DNSServer, resolver: safedns.Resolver) -> None:
    dns.add(NAME, "A", "127.0.0.4", ttl=60)
    dns.add(NAME, "A", "127.0.0.5", ttl=60)
    bad, good = resolver.resolve_addresses(NAME)
    dns.add("closer.example.com", "A", bad, ttl=60)
    with backends(good, headers=CLOSE) as (server,):
        closer = RawServer(bad, server.port)
        try:
            with SafePoolManager(resolver, retry=safedns.RetryPolicy(backoff=0)) as http:
                for _ in range(3):  # the GET goes to the other address
                    assert http.request("GET", server.url(NAME)).data == good.encode()
                assert closer.accepted == 1 and http.stats().retries == 1
                with pytest.raises(ProtocolError):  # a POST is not retried
                    http.request("POST", server.url("closer.example.com"), body=b"x")
                assert closer.accepted == 2 and http.stats().attempts == 5
        finally:
            closer.close()


def test_without_retry_urllib3s_own_retries_go_elsewhere_and_count(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    dns.add(NAME, "A", "127.0.0.4", ttl=60)
    dns.add(NAME, "A", "127.0.0.5", ttl=60)
    bad, good = resolver.resolve_addresses(NAME)
    with backends(good, headers=CLOSE) as (server,):
        closer = RawServer(bad, server.port)
        try:
            with SafePoolManager(resolver, retries=Retry(1)) as http:
                assert http.request("GET", server.url(NAME)).data == good.encode()
                stats = http.stats()
            assert closer.accepted == 1
            assert (stats.requests, stats.attempts, stats.retries) == (1, 2, 1)
        finally:
            closer.close()


def test_https_by_name_and_a_certificate_for_another_name(
    dns: DNSServer, resolver: safedns.Resolver, ca: trustme.CA, tmp_path: Path
) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=60)
    dns.add("wrong.example.com", "A", "127.0.0.3", ttl=60)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with (
        backends("127.0.0.2", tls=server_tls(ca, NAME)) as (good,),
        backends("127.0.0.3", tls=server_tls(ca, "other.example.com")) as (bad,),
        SafePoolManager(
            resolver, retry=safedns.RetryPolicy(backoff=0), ca_certs=str(ca_file)
        ) as http,
    ):
        assert http.request("GET", good.url(NAME)).data == b"127.0.0.2"
        with pytest.raises(MaxRetryError) as info:
            http.request("GET", bad.url("wrong.example.com"))
        assert isinstance(info.value.reason, SSLError)
        assert classify(info.value) is Failure.TLS_CERTIFICATE
        assert http.stats().attempts == 2  # not retried
        assert bad.request_count == 0


def test_kept_alive_requests_do_not_wait_on_a_dns_outage(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=1)
    with backends("127.0.0.2") as (server,), SafePoolManager(resolver) as http:
        assert http.request("GET", server.url(NAME)).status == 200
        dns.stop()
        resolver.flush()
        deadline = time.monotonic() + 1.5
        slowest = 0.0
        while time.monotonic() < deadline:
            started = time.monotonic()
            assert http.request("GET", server.url(NAME)).status == 200
            slowest = max(slowest, time.monotonic() - started)
        assert slowest < 0.25, slowest  # a DNS timeout is 0.5 s
        assert server.accepted == 1


def test_proxy_manager_resolves_the_proxy_through_safedns(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    dns.add("proxy.example.com", "A", "127.0.0.6", ttl=60)
    proxy = ProxyBackend("127.0.0.6")
    try:
        with SafeProxyManager(f"http://proxy.example.com:{proxy.port}", resolver) as http:
            response = http.request("GET", "http://target.example.com/x")
            assert response.data == b"proxied GET http://target.example.com/x"
            assert http.stats().connections_opened == 1
        assert {name for name, _ in dns.queries} == {"proxy.example.com."}
    finally:
        proxy.close()


def test_an_unknown_name_fails_as_urllib3_says_and_is_not_retried(
    resolver: safedns.Resolver,
) -> None:
    with SafePoolManager(resolver, retry=safedns.RetryPolicy(backoff=0)) as http:
        with pytest.raises(MaxRetryError) as info:
            http.request("GET", "http://missing.example.com/")
        assert isinstance(info.value.reason, NameResolutionError)
        assert isinstance(info.value.reason.__cause__, safedns.NameNotFound)
        assert http.stats().attempts == 1


def test_single_try_keeps_only_redirects() -> None:
    once = single_try(Retry(5, redirect=2), True, None)
    assert (once.connect, once.read, once.status, once.other, once.redirect) == (0, 0, 0, 0, 2)
    assert single_try(Retry(0, read=False), False, None).read is False  # requests' own
    assert single_try(False, True, None).total is False


def test_bad_arguments(resolver: safedns.Resolver) -> None:
    with pytest.raises(TypeError, match="retry_budget"):
        SafePoolManager(resolver, retry_budget=1)  # type: ignore[arg-type]
    state = TransportState(resolver)
    with pytest.raises(TypeError, match="safedns="):
        SafePoolManager(resolver, safedns=state)


def test_without_urllib3_the_error_names_the_extra() -> None:
    message = import_error_without("urllib3", "safedns.urllib3")
    assert "pip install 'safedns[urllib3]'" in message
