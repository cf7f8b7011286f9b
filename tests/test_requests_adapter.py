"""safedns.requests.SafeAdapter: a real requests Session against real servers.

HTTP(S) servers on distinct loopback addresses (tests/httpservers.py), names
served by the embedded ``DNSServer``, real TLS with a trustme CA. Counts are
read on the servers' side; waits poll with a deadline.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests
import trustme

import safedns
from safedns.requests import SafeAdapter
from safedns.testing import DNSServer

from .adapterkit import (
    NAME,
    ProxyBackend,
    TunnelProxy,
    ca,
    dns,
    import_error_without,
    resolver,
    server_tls,
)
from .httpservers import BlackHole, RawServer, backends, wait_for

__all__ = ["ca", "dns", "resolver"]  # fixtures

CLOSE = [("Connection", "close")]


def session_for(adapter: SafeAdapter) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def test_200_gets_by_name_over_at_most_2_connections_few_queries(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=1)
    with backends("127.0.0.2") as (server,):
        adapter = SafeAdapter(resolver)
        started = time.monotonic()
        with session_for(adapter) as session:
            answers = [session.get(server.url(NAME)) for _ in range(200)]
        elapsed = time.monotonic() - started
        assert [(r.status_code, r.text) for r in answers] == [(200, "127.0.0.2")] * 200
        assert server.accepted <= 2
        assert 1 <= len(dns.queries) <= 2 * (2 + elapsed), (dns.queries, elapsed)
        stats = adapter.stats()
        assert (stats.requests, stats.attempts, stats.retries) == (200, 200, 0)
        assert stats.connections_opened == server.accepted


def test_requests_follow_the_name_to_its_new_address(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=1)
    with backends("127.0.0.2", "127.0.0.3") as (old, new):
        adapter = SafeAdapter(resolver)
        with session_for(adapter) as session:
            # Three connections at once, then idle in the pool: one will be
            # reused, the other two wait there.
            held = [session.get(old.url(NAME), stream=True) for _ in range(3)]
            for response in held:
                assert response.text == "127.0.0.2"
            assert old.accepted == 3
            for _ in range(5):
                assert session.get(old.url(NAME)).text == "127.0.0.2"
            dns.remove(NAME, "A")
            dns.add(NAME, "A", "127.0.0.3", ttl=1)
            switched = time.monotonic()
            assert wait_for(lambda: session.get(old.url(NAME)).text == "127.0.0.3", 3.0)
            reached = time.monotonic() - switched
            assert reached < 3.0
            assert wait_for(lambda: old.open_connections == 0, 0.5), old.open_connections
            for _ in range(10):
                assert session.get(old.url(NAME)).text == "127.0.0.3"
            assert new.accepted == 1 and old.open_connections == 0
        stats = adapter.stats()
        assert stats.connections_retired_dns == 3
        assert stats.connections_opened == 4


def test_a_black_holed_first_address_costs_one_attempt_delay(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    dns.add(NAME, "A", "127.0.0.4", ttl=60)
    dns.add(NAME, "A", "127.0.0.5", ttl=60)
    dead, live = resolver.resolve_addresses(NAME)  # the order the adapter dials in
    # The server says Connection: close too: the client never races its close.
    with backends(live, headers=CLOSE) as (alive,), BlackHole(dead, alive.port):
        adapter = SafeAdapter(resolver)
        latencies = []
        with session_for(adapter) as session:
            for _ in range(10):
                started = time.monotonic()
                response = session.get(alive.url(NAME), headers={"Connection": "close"})
                latencies.append(time.monotonic() - started)
                assert (response.status_code, response.text) == (200, live)
        assert max(latencies) < 0.6, latencies
        assert latencies[0] >= 0.2  # the first waited out the attempt delay once
        assert alive.accepted == 10
        assert adapter.stats().attempts == 10  # failover is not a retry


def test_a_close_without_a_response_is_retried_elsewhere_but_not_a_post(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    dns.add(NAME, "A", "127.0.0.4", ttl=60)
    dns.add(NAME, "A", "127.0.0.5", ttl=60)
    bad, good = resolver.resolve_addresses(NAME)
    dns.add("closer.example.com", "A", bad, ttl=60)
    with backends(good, headers=CLOSE) as (server,):
        closer = RawServer(bad, server.port)
        try:
            adapter = SafeAdapter(resolver, retry=safedns.RetryPolicy(backoff=0))
            with session_for(adapter) as session:
                for _ in range(5):
                    response = session.get(server.url(NAME), headers={"Connection": "close"})
                    assert (response.status_code, response.text) == (200, good)
                assert closer.accepted == 1  # then tried last: it failed
                stats = adapter.stats()
                assert (stats.requests, stats.retries) == (5, 1)
                with pytest.raises(requests.ConnectionError):
                    session.post(server.url("closer.example.com"), data=b"x")
            assert closer.accepted == 2  # the POST, once
            assert adapter.stats().attempts == 7
        finally:
            closer.close()


def test_503_everywhere_500_gets_within_the_budget_and_10_posts_once(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=60)
    with backends("127.0.0.2", status=503) as (server,):
        adapter = SafeAdapter(resolver, retry=safedns.RetryPolicy(attempts=4, backoff=0))
        with session_for(adapter) as session:
            started = time.monotonic()
            gets = [session.get(server.url(NAME)).status_code for _ in range(500)]
            elapsed = time.monotonic() - started
            assert gets == [503] * 500
            assert server.request_count <= 650 + 10 * elapsed  # plain retries: 2,000
            stats = adapter.stats()
            assert stats.attempts == server.request_count
            assert stats.retries == stats.attempts - 500 and stats.retries_denied > 0
            server.requests.clear()
            posts = [session.post(server.url(NAME), data=b"x").status_code for _ in range(10)]
        assert posts == [503] * 10
        assert server.request_count == 10
        assert server.accepted == 1  # retried responses were drained: one connection


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_https_by_name_with_a_ca_file_and_a_certificate_for_another_name_refused(
    dns: DNSServer, resolver: safedns.Resolver, ca: trustme.CA, tmp_path: Path
) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=60)
    dns.add("wrong.example.com", "A", "127.0.0.3", ttl=60)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with (
        backends("127.0.0.2", tls=server_tls(ca, NAME)) as (good,),
        backends("127.0.0.3", tls=server_tls(ca, "other.example.com")) as (bad,),
    ):
        adapter = SafeAdapter(resolver, retry=safedns.RetryPolicy(backoff=0))
        with session_for(adapter) as session:
            response = session.get(good.url(NAME), verify=str(ca_file))
            assert (response.status_code, response.text) == (200, "127.0.0.2")
            with pytest.raises(requests.exceptions.SSLError):
                session.get(bad.url("wrong.example.com"), verify=str(ca_file))
            with pytest.raises(requests.exceptions.SSLError):  # verify=True: not our CA
                session.get(good.url(NAME))
            assert session.get(good.url(NAME), verify=False).status_code == 200
        assert bad.request_count == 0
        assert adapter.stats().attempts == 4  # refused certificates are not retried


def test_a_client_certificate_with_cert(
    dns: DNSServer, resolver: safedns.Resolver, ca: trustme.CA, tmp_path: Path
) -> None:
    import ssl

    dns.add(NAME, "A", "127.0.0.2", ttl=60)
    tls = server_tls(ca, NAME)
    tls.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(tls)
    client = ca.issue_cert("client.example.com")
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    client.cert_chain_pems[0].write_to_path(str(cert))
    client.private_key_pem.write_to_path(str(key))
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with backends("127.0.0.2", tls=tls) as (server,), session_for(SafeAdapter(resolver)) as s:
        response = s.get(server.url(NAME), verify=str(ca_file), cert=(str(cert), str(key)))
        assert response.status_code == 200
        with pytest.raises(requests.ConnectionError):  # no certificate: refused
            s.get(server.url(NAME), verify=str(ca_file))


def test_kept_alive_requests_do_not_wait_on_a_dns_outage(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=1)
    with backends("127.0.0.2") as (server,):
        adapter = SafeAdapter(resolver)
        with session_for(adapter) as session:
            assert session.get(server.url(NAME)).status_code == 200
            dns.stop()
            resolver.flush()  # nothing cached, nothing stale: DNS is simply gone
            latencies = []
            deadline = time.monotonic() + 1.5  # past the TTL: a refresh fails meanwhile
            while time.monotonic() < deadline:
                started = time.monotonic()
                assert session.get(server.url(NAME)).status_code == 200
                latencies.append(time.monotonic() - started)
            # A DNS timeout is 0.5 s: no request waited for one.
            assert max(latencies) < 0.25, max(latencies)
            assert server.accepted == 1
            # New connections dial the last addresses the adapter had.
            response = session.get(server.url(NAME), headers={"Connection": "close"})
            assert response.status_code == 200


def test_pool_maxsize_and_pool_block_are_respected(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    dns.add(NAME, "A", "127.0.0.2", ttl=60)
    with backends("127.0.0.2") as (server,):
        adapter = SafeAdapter(resolver, pool_maxsize=2, pool_block=True)
        errors: list[BaseException] = []
        with session_for(adapter) as session:

            def work() -> None:
                try:
                    for _ in range(10):
                        assert session.get(server.url(NAME)).status_code == 200
                except BaseException as exc:  # reported below
                    errors.append(exc)

            threads = [threading.Thread(target=work) for _ in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert errors == []
        assert server.request_count == 60
        assert server.accepted <= 2


def test_proxies_the_proxy_name_resolves_through_safedns(
    dns: DNSServer, resolver: safedns.Resolver
) -> None:
    dns.add("proxy.example.com", "A", "127.0.0.6", ttl=60)
    proxy = ProxyBackend("127.0.0.6")
    try:
        adapter = SafeAdapter(resolver)
        proxies = {"http": f"http://proxy.example.com:{proxy.port}"}
        with session_for(adapter) as session:
            for _ in range(3):
                response = session.get("http://target.example.com/x", proxies=proxies)
                assert response.text == "proxied GET http://target.example.com/x"
        assert {name for name, _ in dns.queries} == {"proxy.example.com."}
        assert proxy.accepted == 1
        assert adapter.stats().requests == 3
    finally:
        proxy.close()


def test_https_through_a_tunnelling_proxy(
    dns: DNSServer, resolver: safedns.Resolver, ca: trustme.CA, tmp_path: Path
) -> None:
    """CONNECT through a proxy named in DNS: the proxy's name resolves through
    safedns, the target's is the proxy's, and TLS (SNI, the certificate
    check) is on the target's name."""
    dns.add("proxy.example.com", "A", "127.0.0.6", ttl=60)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with backends("127.0.0.2", tls=server_tls(ca, NAME)) as (server,):
        proxy = TunnelProxy("127.0.0.6", {NAME: "127.0.0.2"})
        try:
            adapter = SafeAdapter(resolver)
            proxies = {"https": f"http://proxy.example.com:{proxy.port}"}
            with session_for(adapter) as session:
                for _ in range(3):
                    response = session.get(server.url(NAME), proxies=proxies, verify=str(ca_file))
                    assert (response.status_code, response.text) == (200, "127.0.0.2")
            assert proxy.tunnels == [f"{NAME}:{server.port}"]  # one tunnel, kept alive
            assert {name for name, _ in dns.queries} == {"proxy.example.com."}
            assert adapter.stats().connections_opened == 1
        finally:
            proxy.close()


def test_environment_proxies_go_through_the_adapter(
    dns: DNSServer, resolver: safedns.Resolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/guides.md: with trust_env, requests hands the environment's proxy
    to the mounted adapter, which resolves the proxy's name through safedns."""
    for name in ("ALL_PROXY", "NO_PROXY", "HTTPS_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    dns.add("proxy.example.com", "A", "127.0.0.6", ttl=60)
    proxy = ProxyBackend("127.0.0.6")
    monkeypatch.setenv("HTTP_PROXY", f"http://proxy.example.com:{proxy.port}")
    try:
        adapter = SafeAdapter(resolver)
        with session_for(adapter) as session:
            session.trust_env = True
            response = session.get("http://target.example.com/y")
        assert response.text == "proxied GET http://target.example.com/y"
        assert adapter.stats().connections_opened == 1
        assert {name for name, _ in dns.queries} == {"proxy.example.com."}
    finally:
        proxy.close()


def test_an_unknown_name_is_a_connection_error_and_not_retried(
    resolver: safedns.Resolver,
) -> None:
    adapter = SafeAdapter(resolver, retry=safedns.RetryPolicy(backoff=0))
    with session_for(adapter) as session, pytest.raises(requests.ConnectionError) as info:
        session.get("http://missing.example.com/")
    assert "Failed to resolve 'missing.example.com'" in str(info.value)
    assert adapter.stats().attempts == 1


def test_bad_arguments_are_typed_errors(resolver: safedns.Resolver) -> None:
    with pytest.raises(TypeError, match="retry"):
        SafeAdapter(resolver, retry=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="resolver"):
        SafeAdapter(safedns.AsyncResolver())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="happy_eyeballs_delay"):
        SafeAdapter(resolver, happy_eyeballs_delay=5)
    with pytest.raises(ValueError, match="max_connection_age"):
        SafeAdapter(resolver, max_connection_age=-1)


def test_without_requests_the_error_names_the_extra() -> None:
    message = import_error_without("requests", "safedns.requests")
    assert "pip install 'safedns[requests]'" in message
