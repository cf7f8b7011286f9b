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
from safedns.metrics import Sample, flatten, kinds, samples
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


def _otel_data(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every metric the reader collects: name -> [(attributes, value)]."""
    data = reader.get_metrics_data()
    assert data is not None
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                out[metric.name] = [
                    ({k: str(v) for k, v in (p.attributes or {}).items()}, p.value)
                    for p in metric.data.data_points
                ]
    return out


def _otel_points(reader: InMemoryMetricReader) -> dict[str, float]:
    return {name: sum(value for _, value in points) for name, points in _otel_data(reader).items()}


def _field_of(metric: str) -> str:
    """The ``Stats`` field an exported metric comes from."""
    names = [f.name for f in dataclasses.fields(safedns.Stats)]
    return max((n for n in names if metric.startswith(n)), key=len)


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
    # Every Stats field is exported, and every instrument comes from one.
    fields = {f.name for f in dataclasses.fields(resolver.stats())}
    assert {_field_of(name.removeprefix("safedns.")) for name in after} == fields


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


# -- upstream by type and result, latency, server health, evictions --------------


def test_prometheus_exports_upstream_detail(server: DNSServer) -> None:
    server.add("a.example.com", "A", "192.0.2.20")
    server.add("b.example.com", "A", "192.0.2.21")
    config = k8s_config(server, search=(), ndots=1, max_entries=1)
    registry = CollectorRegistry()
    with (
        DNSServer() as dead,
        safedns.Resolver(k8s_config(dead, server, search=(), ndots=1)) as two,
    ):
        dead.stop()
        safedns.metrics.prometheus.register(two, registry, labels={"resolver": "two"})
        with safedns.Resolver(config) as resolver:
            safedns.metrics.prometheus.register(resolver, registry, labels={"resolver": "one"})

            def value(name: str, **labels: str) -> float:
                got = registry.get_sample_value(name, {"resolver": "one", **labels})
                assert got is not None, (name, labels)
                return got

            assert value("safedns_upstream_queries_by_result_total", result="NXDOMAIN") == 0
            assert value("safedns_upstream_latency_seconds_count") == 0
            resolver.resolve("a.example.com")
            resolver.resolve("b.example.com")  # evicts a.example.com (max_entries=1)
            with pytest.raises(safedns.NameNotFound):
                resolver.resolve("nothing.example.com", "AAAA")
            server.servfail = True
            with pytest.raises(safedns.TemporaryFailure):
                resolver.resolve("c.example.com")
            server.servfail = False

            assert value("safedns_upstream_queries_by_type_total", type="A") == 3
            assert value("safedns_upstream_queries_by_type_total", type="AAAA") == 1
            assert value("safedns_upstream_queries_by_result_total", result="NOERROR") == 2
            assert value("safedns_upstream_queries_by_result_total", result="NXDOMAIN") == 1
            assert value("safedns_upstream_queries_by_result_total", result="SERVFAIL") == 1
            assert value("safedns_upstream_queries_by_result_total", result="timeout") == 0
            assert value("safedns_evictions_total") == 1
            assert value("safedns_refreshes_total") == 0
            # A histogram: cumulative buckets, +Inf equal to the count.
            assert value("safedns_upstream_latency_seconds_count") == 4
            assert value("safedns_upstream_latency_seconds_bucket", le="+Inf") == 4
            assert value("safedns_upstream_latency_seconds_bucket", le="5.0") <= 4
            assert value("safedns_upstream_latency_seconds_sum") > 0
            me = server.nameserver
            assert value("safedns_server_health_queries_total", server=me) == 4
            assert value("safedns_server_health_responses_total", server=me) == 4
            assert value("safedns_server_health_backed_off", server=me) == 0
            assert value("safedns_server_health_last_rtt_seconds", server=me) > 0

            two.resolve("a.example.com")  # the dead server first: it times out
            sick = {"resolver": "two", "server": dead.nameserver}
            assert registry.get_sample_value("safedns_server_health_backed_off", sick) == 1
            assert registry.get_sample_value("safedns_server_health_timeouts_total", sick) == 1
            text = generate_latest(registry).decode()
    assert "# TYPE safedns_upstream_latency_seconds histogram" in text
    assert "# TYPE safedns_server_health_backed_off gauge" in text
    assert "# TYPE safedns_upstream_queries_by_result_total counter" in text


def test_opentelemetry_exports_upstream_detail(server: DNSServer) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        with (
            DNSServer() as dead,
            safedns.Resolver(
                k8s_config(dead, server, search=(), ndots=1, timeout=0.3)
            ) as resolver,
        ):
            dead.stop()
            # Instrumented before any query: the per-result, per-server and
            # latency instruments exist already (found from the Stats type).
            made = safedns.metrics.opentelemetry.instrument(resolver, provider)
            assert {
                "safedns.upstream_queries_by_result",
                "safedns.upstream_queries_by_type",
                "safedns.upstream_latency_seconds_bucket",
                "safedns.upstream_latency_seconds_count",
                "safedns.upstream_latency_seconds_sum",
                "safedns.server_health_backed_off",
                "safedns.server_health_last_rtt_seconds",
                "safedns.evictions",
                "safedns.refreshes",
            } <= set(made.instruments)
            resolver.resolve("api.example.com")
            with pytest.raises(safedns.NameNotFound):
                resolver.resolve("nothing.example.com")
            data = _otel_data(reader)
    finally:
        provider.shutdown()

    def point(name: str, **attributes: str) -> float:
        values = [v for attrs, v in data[name] if attrs == attributes]
        assert len(values) == 1, (name, attributes, data.get(name))
        return values[0]

    assert point("safedns.upstream_queries_by_result", result="NOERROR") == 1
    assert point("safedns.upstream_queries_by_result", result="NXDOMAIN") == 1
    assert point("safedns.upstream_queries_by_result", result="timeout") == 1  # the dead one
    assert point("safedns.upstream_queries_by_type", type="A") == 3
    assert point("safedns.upstream_latency_seconds_count") == 2
    assert point("safedns.upstream_latency_seconds_bucket", le="+Inf") == 2
    buckets = sorted(
        (float(attrs["le"]), v) for attrs, v in data["safedns.upstream_latency_seconds_bucket"]
    )
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
    assert point("safedns.server_health_backed_off", server=dead.nameserver) == 1
    assert point("safedns.server_health_backed_off", server=server.nameserver) == 0
    assert point("safedns.server_health_timeouts", server=dead.nameserver) == 1
    assert point("safedns.server_health_last_rtt_seconds", server=server.nameserver) > 0
    assert not [
        a
        for a, _ in data["safedns.server_health_last_rtt_seconds"]
        if a["server"] == dead.nameserver
    ]


def test_histogram_samples_and_flatten() -> None:
    stats = safedns.Stats(
        upstream_latency_seconds=safedns.Histogram((0.01, 0.1), (1, 3), 4, 2.5),
    )
    got = [s for s in samples(stats) if s.kind == "histogram"]
    assert got == [
        Sample(
            "safedns_upstream_latency_seconds",
            "histogram",
            (),
            2.5,
            ((0.01, 1.0), (0.1, 3.0), (float("inf"), 4.0)),
        )
    ]
    assert flatten(got) == [
        Sample("safedns_upstream_latency_seconds_bucket", "counter", (("le", "0.01"),), 1.0),
        Sample("safedns_upstream_latency_seconds_bucket", "counter", (("le", "0.1"),), 3.0),
        Sample("safedns_upstream_latency_seconds_bucket", "counter", (("le", "+Inf"),), 4.0),
        Sample("safedns_upstream_latency_seconds_count", "counter", (), 4.0),
        Sample("safedns_upstream_latency_seconds_sum", "counter", (), 2.5),
    ]


def test_kinds_come_from_the_type_when_values_are_empty() -> None:
    found = kinds(_FutureStats(1, 1, {}, {}, 0.0, ""))
    assert found["safedns_upstream_queries_by_type"] == "counter"
    assert found["safedns_server_health_healthy"] == "gauge"
    assert found["safedns_server_health_timeouts"] == "counter"
    assert "safedns_note" not in found
    assert kinds({"lookups": 3}) == {"safedns_lookups": "counter"}  # a mapping: its values
