"""The metrics exporters, against a real resolver and the embedded DNS server."""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, generate_latest

import safedns
import safedns.metrics.opentelemetry
import safedns.metrics.prometheus
from safedns.metrics import Sample, samples
from safedns.testing import DNSServer

from .conftest import k8s_config


@pytest.fixture
def resolver(server: DNSServer) -> Iterator[safedns.Resolver]:
    with safedns.Resolver(k8s_config(server)) as res:
        yield res


def test_prometheus_counters_move_with_lookups(resolver: safedns.Resolver) -> None:
    registry = CollectorRegistry()
    collector = safedns.metrics.prometheus.register(resolver, registry)

    def value(name: str) -> float:
        got = registry.get_sample_value(name)
        assert got is not None, name
        return got

    assert value("safedns_cache_hits_total") == 0
    assert value("safedns_upstream_queries_total") == 0
    resolver.resolve("api.example.com")
    resolver.resolve("api.example.com")
    resolver.resolve("api.example.com")
    assert value("safedns_upstream_queries_total") == 1
    assert value("safedns_cache_hits_total") >= 1  # the memo may answer some repeats
    hits = value("safedns_cache_hits_total")
    resolver.resolve("my-svc")
    assert value("safedns_upstream_queries_total") > 1
    resolver.resolve("my-svc")
    assert value("safedns_cache_hits_total") >= hits
    assert value("safedns_entries") >= 2  # a gauge: no _total

    text = generate_latest(registry).decode()
    assert "\nsafedns_cache_hits_total " in text
    assert "\nsafedns_upstream_queries_total " in text
    assert "# TYPE safedns_entries gauge" in text
    names = {metric.name for metric in registry.collect()}
    assert {"safedns_cache_hits", "safedns_upstream_queries", "safedns_entries"} <= names
    # Every Stats field is exported.
    for field in dataclasses.fields(resolver.stats()):
        assert f"safedns_{field.name}" in text, field.name
    registry.unregister(collector)
    assert "safedns_" not in generate_latest(registry).decode()


def test_prometheus_labels_tell_resolvers_apart(
    server: DNSServer, resolver: safedns.Resolver
) -> None:
    registry = CollectorRegistry()
    with safedns.Resolver(k8s_config(server)) as other:
        safedns.metrics.prometheus.register(resolver, registry, labels={"resolver": "a"})
        safedns.metrics.prometheus.register(other, registry, labels={"resolver": "b"})
        resolver.resolve("api.example.com")
        a = registry.get_sample_value("safedns_upstream_queries_total", {"resolver": "a"})
        b = registry.get_sample_value("safedns_upstream_queries_total", {"resolver": "b"})
    assert (a, b) == (1, 0)


def _otel_points(reader: InMemoryMetricReader) -> dict[str, float]:
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, float] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points[metric.name] = sum(p.value for p in metric.data.data_points)
    return points


def test_opentelemetry_instruments_move_with_lookups(resolver: safedns.Resolver) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        made = safedns.metrics.opentelemetry.instrument(resolver, provider)
        assert {"safedns.cache_hits", "safedns.upstream_queries"} <= set(made.instruments)
        before = _otel_points(reader)
        assert before["safedns.upstream_queries"] == 0
        for _ in range(3):
            resolver.resolve("api.example.com")
        resolver.resolve("my-svc")
        resolver.resolve("my-svc")
        after = _otel_points(reader)
    finally:
        provider.shutdown()
    assert after["safedns.upstream_queries"] > before["safedns.upstream_queries"]
    assert after["safedns.cache_hits"] > before["safedns.cache_hits"]
    assert after["safedns.lookups"] >= 3
    assert set(after) == {f"safedns.{f.name}" for f in dataclasses.fields(resolver.stats())}


@dataclasses.dataclass(frozen=True)
class _Health:
    healthy: bool
    timeouts: int


@dataclasses.dataclass(frozen=True)
class _FutureStats:
    """A stats() shape with kinds of fields the resolver may grow."""

    lookups: int
    entries: int
    upstream_queries_by_type: dict[str, int]
    server_health: dict[str, _Health]
    latency_ms: float
    note: str


def test_samples_cover_new_kinds_of_fields() -> None:
    stats = _FutureStats(
        lookups=5,
        entries=2,
        upstream_queries_by_type={"A": 3, "AAAA": 1},
        server_health={"10.0.0.1:53": _Health(True, 0), "10.0.0.2:53": _Health(False, 4)},
        latency_ms=1.5,
        note="skipped",
    )
    assert samples(stats) == [
        Sample("safedns_lookups", "counter", (), 5.0),
        Sample("safedns_entries", "gauge", (), 2.0),
        Sample("safedns_upstream_queries_by_type", "counter", (("type", "A"),), 3.0),
        Sample("safedns_upstream_queries_by_type", "counter", (("type", "AAAA"),), 1.0),
        Sample("safedns_server_health_healthy", "gauge", (("server", "10.0.0.1:53"),), 1.0),
        Sample("safedns_server_health_timeouts", "counter", (("server", "10.0.0.1:53"),), 0.0),
        Sample("safedns_server_health_healthy", "gauge", (("server", "10.0.0.2:53"),), 0.0),
        Sample("safedns_server_health_timeouts", "counter", (("server", "10.0.0.2:53"),), 4.0),
        Sample("safedns_latency_ms", "gauge", (), 1.5),
    ]
    with pytest.raises(TypeError, match="not a dataclass or mapping"):
        samples(42)


def test_labelled_fields_through_prometheus() -> None:
    class Source:
        def stats(self) -> _FutureStats:
            return _FutureStats(1, 1, {"A": 7}, {"s:53": _Health(True, 2)}, 0.5, "")

    registry = CollectorRegistry()
    safedns.metrics.prometheus.register(Source(), registry)
    assert registry.get_sample_value("safedns_upstream_queries_by_type_total", {"type": "A"}) == 7
    assert registry.get_sample_value("safedns_server_health_healthy", {"server": "s:53"}) == 1


@pytest.mark.parametrize(
    ("module", "dependency", "extra"),
    [
        ("safedns.metrics.prometheus", "prometheus_client", "safedns[prometheus]"),
        ("safedns.metrics.opentelemetry", "opentelemetry", "safedns[opentelemetry]"),
    ],
)
def test_missing_extra_names_it(
    monkeypatch: pytest.MonkeyPatch, module: str, dependency: str, extra: str
) -> None:
    for name in list(sys.modules):
        if name in (dependency, module) or name.startswith(f"{dependency}."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, dependency, None)
    with pytest.raises(ImportError, match=extra.replace("[", r"\[").replace("]", r"\]")):
        importlib.import_module(module)
