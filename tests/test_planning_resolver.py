"""The planning rule end to end: a real resolver against a real DNS server.

Each zone holds both a cluster name and its public twin, the absolute name a
registrant could own. The query log of the embedded server shows what was
asked, in which order. The unit tests of ``plan`` are in tests/test_planning.py.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from safedns import AsyncResolver, NameNotFound, Resolver
from safedns._dropin.addrinfo import AddrInfo
from safedns.testing import DNSServer
from tests.conftest import k8s_config

CLUSTER = "10.0.0.1"
PUBLIC = "203.0.113.1"
PROD_SEARCH = ("prod.svc.cluster.local", "svc.cluster.local", "cluster.local")
NAMESPACES = ("prod", "dev", "data", "app", "cloud", "shop", "services")


@pytest.fixture
def twins() -> Iterator[DNSServer]:
    """Services named api in namespaces named like IANA TLDs, each with a public twin."""
    with DNSServer() as server:
        for namespace in NAMESPACES:
            server.add(f"api.{namespace}.", "A", PUBLIC)
            server.add(f"api.{namespace}.svc.cluster.local.", "A", CLUSTER)
        server.add("web-0.nginx.prod.", "A", PUBLIC)
        server.add("web-0.nginx.prod.svc.cluster.local.", "A", "10.0.0.2")
        server.add("api.example.com.", "A", "192.0.2.10")
        server.add("api.example.com.ns1.svc.cluster.local.", "A", "10.9.9.9")
        server.add("my-svc.ns1.svc.cluster.local.", "A", "10.0.0.5")
        yield server


def asked(server: DNSServer) -> list[str]:
    return [name for name, _ in server.queries]


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_service_namespace_resolves_in_the_cluster_despite_a_public_twin(
    twins: DNSServer, namespace: str
) -> None:
    name = f"api.{namespace}"
    with Resolver(k8s_config(twins)) as resolver:
        answer = resolver.resolve(name)
    assert answer.addresses == [CLUSTER]
    assert answer.name == f"{name}.svc.cluster.local."
    assert asked(twins) == [f"{name}.ns1.svc.cluster.local.", f"{name}.svc.cluster.local."]
    assert f"{name}." not in asked(twins)  # the internal name never left for the public twin


def test_pod_behind_a_headless_service_in_the_own_namespace(twins: DNSServer) -> None:
    with Resolver(k8s_config(twins, search=PROD_SEARCH)) as resolver:
        answer = resolver.resolve("web-0.nginx.prod")
    assert answer.addresses == ["10.0.0.2"]
    assert answer.name == "web-0.nginx.prod.svc.cluster.local."
    assert asked(twins) == [
        "web-0.nginx.prod.prod.svc.cluster.local.",
        "web-0.nginx.prod.svc.cluster.local.",
    ]


def test_external_name_sends_exactly_one_query(twins: DNSServer) -> None:
    # Even though a search-list twin exists, the clearly external name is asked first.
    with Resolver(k8s_config(twins)) as resolver:
        answer = resolver.resolve("api.example.com")
        assert answer.addresses == ["192.0.2.10"]
        assert twins.queries == [("api.example.com.", "A")]
        assert resolver.stats().upstream_queries == 1


def test_external_first_off_gives_glibc_order(twins: DNSServer) -> None:
    with Resolver(k8s_config(twins, external_first=False)) as resolver:
        answer = resolver.resolve("api.example.com")
    # glibc walks the search list first, and so finds the search-list twin.
    assert answer.addresses == ["10.9.9.9"]
    assert asked(twins) == ["api.example.com.ns1.svc.cluster.local."]
    twins.clear()
    twins.remove("api.example.com.ns1.svc.cluster.local.")
    with Resolver(k8s_config(twins, external_first=False)) as resolver:
        assert resolver.resolve("api.example.com").addresses == ["192.0.2.10"]
    assert asked(twins) == [
        "api.example.com.ns1.svc.cluster.local.",
        "api.example.com.svc.cluster.local.",
        "api.example.com.cluster.local.",
        "api.example.com.",
    ]


def test_a_missing_service_namespace_asks_the_absolute_name_last(twins: DNSServer) -> None:
    with Resolver(k8s_config(twins)) as resolver, pytest.raises(NameNotFound):
        resolver.resolve("nope.prod")
    assert asked(twins) == [
        "nope.prod.ns1.svc.cluster.local.",
        "nope.prod.svc.cluster.local.",
        "nope.prod.cluster.local.",
        "nope.prod.",
    ]


def test_a_cluster_name_is_asked_as_is_first(twins: DNSServer) -> None:
    # Five labels under the cluster domain: none of its search candidates can
    # be answered by CoreDNS, so the name itself goes first (issue 16).
    with Resolver(k8s_config(twins)) as resolver:
        answer = resolver.resolve("my-svc.ns1.svc.cluster.local")
        assert answer.addresses == ["10.0.0.5"]
        assert asked(twins) == ["my-svc.ns1.svc.cluster.local."]
        twins.clear()
        for _ in range(20):  # the walk is cached
            assert resolver.resolve("my-svc.ns1.svc.cluster.local").addresses == ["10.0.0.5"]
        assert twins.queries == []
        assert resolver.resolve("my-svc.ns1.svc.cluster.local.").addresses == ["10.0.0.5"]
        assert twins.queries == []  # the trailing-dot form hits the same cache entry
        # A missing one still walks every candidate, the name itself first.
        with pytest.raises(NameNotFound):
            resolver.resolve("gone.ns1.svc.cluster.local")
    assert asked(twins) == [
        "gone.ns1.svc.cluster.local.",
        "gone.ns1.svc.cluster.local.ns1.svc.cluster.local.",
        "gone.ns1.svc.cluster.local.svc.cluster.local.",
        "gone.ns1.svc.cluster.local.cluster.local.",
    ]


def test_async_resolver_follows_the_same_rule(twins: DNSServer) -> None:
    async def main() -> tuple[list[str], list[str]]:
        async with AsyncResolver(k8s_config(twins)) as resolver:
            internal = (await resolver.resolve("api.prod")).addresses
            external = (await resolver.resolve("api.example.com")).addresses
        return internal, external

    assert asyncio.run(main()) == ([CLUSTER], ["192.0.2.10"])
    assert asked(twins) == [
        "api.prod.ns1.svc.cluster.local.",
        "api.prod.svc.cluster.local.",
        "api.example.com.",
    ]


def test_drop_in_getaddrinfo_follows_the_same_rule(twins: DNSServer, tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    nsswitch = tmp_path / "nsswitch.conf"
    nsswitch.write_text("hosts: files dns\n")
    with Resolver(k8s_config(twins)) as resolver:
        addrinfo = AddrInfo(resolver, hosts_path=str(hosts), nsswitch_path=str(nsswitch))
        infos = addrinfo.getaddrinfo("api.dev", 443, socket.AF_INET, socket.SOCK_STREAM)
    assert [info[4] for info in infos] == [(CLUSTER, 443)]
    assert "api.dev." not in asked(twins)
