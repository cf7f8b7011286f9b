"""Prometheus: ``register(resolver, registry=None)`` adds a collector that
reads ``resolver.stats()`` at scrape time.

    import safedns.metrics.prometheus
    safedns.metrics.prometheus.register(resolver)

Every ``Stats`` field is a ``safedns_<field>`` metric (counters are exposed
as ``safedns_<field>_total``, the Prometheus convention): for example
``safedns_cache_hits_total``, ``safedns_upstream_queries_total``,
``safedns_stale_served_total``, ``safedns_entries``. Mapping fields are
labelled (``safedns_upstream_queries_by_result_total{result="NXDOMAIN"}``,
``safedns_server_health_backed_off{server="10.0.0.10:53"}``) and the upstream
latency is a Prometheus histogram, ``safedns_upstream_latency_seconds``
(``_bucket{le=...}``, ``_count``, ``_sum``). Needs the ``prometheus`` extra
(``pip install 'safedns[prometheus]'``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from safedns.metrics._samples import Sample, le_text, samples

try:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "safedns.metrics.prometheus needs prometheus_client: pip install 'safedns[prometheus]'"
    ) from exc

__all__ = ["StatsCollector", "register"]


class HasStats(Protocol):
    def stats(self) -> Any: ...


class StatsCollector(Collector):
    """A custom collector over ``source.stats()``; ``labels`` are added to every sample
    (e.g. ``{"resolver": "default"}`` to tell several resolvers apart)."""

    def __init__(self, source: HasStats, labels: dict[str, str] | None = None) -> None:
        self.source = source
        self.labels = dict(labels or {})

    def collect(self) -> Iterator[Metric]:
        families: dict[str, tuple[str, list[Sample]]] = {}
        for sample in samples(self.source.stats()):
            families.setdefault(sample.name, (sample.kind, []))[1].append(sample)
        for name, (kind, group) in families.items():
            label_names = [*self.labels, *(k for k, _ in group[0].labels)]
            documentation = f"safedns {name.removeprefix('safedns_').replace('_', ' ')}"
            if kind == "histogram":
                histogram = HistogramMetricFamily(name, documentation, labels=label_names)
                for sample in group:
                    histogram.add_metric(
                        [*self.labels.values(), *(v for _, v in sample.labels)],
                        [(le_text(bound), count) for bound, count in sample.buckets],
                        sample.value,
                    )
                yield histogram
                continue
            family: CounterMetricFamily | GaugeMetricFamily
            if kind == "counter":
                family = CounterMetricFamily(name, documentation, labels=label_names)
            else:
                family = GaugeMetricFamily(name, documentation, labels=label_names)
            for sample in group:
                family.add_metric(
                    [*self.labels.values(), *(v for _, v in sample.labels)], sample.value
                )
            yield family

    def describe(self) -> list[Metric]:
        return []  # the metric set follows stats(); describe nothing up front


def register(
    resolver: HasStats,
    registry: CollectorRegistry | None = None,
    *,
    labels: dict[str, str] | None = None,
) -> StatsCollector:
    """Register a collector for ``resolver`` (anything with ``stats()``) with
    ``registry`` (default: prometheus_client's global ``REGISTRY``) and return it
    (``registry.unregister(collector)`` removes it)."""
    collector = StatsCollector(resolver, labels)
    (REGISTRY if registry is None else registry).register(collector)
    return collector
