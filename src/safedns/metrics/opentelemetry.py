"""OpenTelemetry: ``instrument(resolver, meter_provider=None)`` creates
observable instruments that read ``resolver.stats()`` at collection time.

    import safedns.metrics.opentelemetry
    safedns.metrics.opentelemetry.instrument(resolver)

Every ``Stats`` field becomes one instrument named ``safedns.<field>``: an
``ObservableCounter`` for counts, an ``ObservableGauge`` for sizes and
states; mapping fields become attributes (``safedns.upstream_queries_by_result``
with ``result="NXDOMAIN"``, ``safedns.server_health_backed_off`` with
``server="10.0.0.10:53"``). The instruments are found from the type of
``stats()`` as well as its values, so a per-server or per-result series that
has no value yet at instrumentation time still gets its instrument.

The upstream latency histogram: the OpenTelemetry API has no asynchronous
(observable) histogram, only observable counters, up-down counters and
gauges, and a synchronous ``Histogram`` would have to be recorded on the
resolver's own path. So the histogram, read at collection time like every
other metric, is exported the way the Prometheus text format spells it: an
``ObservableCounter`` ``safedns.upstream_latency_seconds_bucket`` of the
cumulative counts with an ``le`` attribute (``"0.005"``, ..., ``"+Inf"``),
plus ``safedns.upstream_latency_seconds_count`` and ``..._sum`` (unit
``s``). A backend rebuilds the distribution from them (in PromQL,
``histogram_quantile(0.99, rate(..._bucket[5m]))``).

Needs the ``opentelemetry`` extra (``pip install 'safedns[opentelemetry]'``),
plus an SDK and exporter of your choice.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from safedns.metrics._samples import PREFIX, Sample, flatten, kinds, samples

try:
    from opentelemetry import metrics as otel_metrics
    from opentelemetry.metrics import CallbackOptions, Instrument, MeterProvider, Observation
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "safedns.metrics.opentelemetry needs opentelemetry-api: "
        "pip install 'safedns[opentelemetry]'"
    ) from exc

__all__ = ["Instrumentation", "instrument"]


class HasStats(Protocol):
    def stats(self) -> Any: ...


@dataclass(frozen=True)
class Instrumentation:
    """What :func:`instrument` created: the instruments, by metric name."""

    instruments: dict[str, Instrument]


class _Reading:
    """One ``stats()`` reading shared by the callbacks of every instrument:
    a callback reads ``stats()`` again only when its own metric was already
    served from the current reading (a new collection), so one collection
    reads once and every instrument reports the same snapshot."""

    def __init__(self, source: HasStats) -> None:
        self._source = source
        self._groups: dict[str, list[Sample]] = {}
        self._served: set[str] | None = None  # None: nothing read yet
        self._lock = threading.Lock()

    def samples(self, name: str) -> list[Sample]:
        with self._lock:
            if self._served is None or name in self._served:
                groups: dict[str, list[Sample]] = {}
                for sample in flatten(samples(self._source.stats())):
                    groups.setdefault(sample.name, []).append(sample)
                self._groups, self._served = groups, set()
            self._served.add(name)
            return self._groups.get(name, [])


def _callback(
    reading: _Reading, name: str, attributes: dict[str, str]
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(sample.value, {**attributes, **dict(sample.labels)})
            for sample in reading.samples(name)
        ]

    return observe


def instrument(
    resolver: HasStats,
    meter_provider: MeterProvider | None = None,
    *,
    attributes: dict[str, str] | None = None,
) -> Instrumentation:
    """Create one observable instrument per ``stats()`` field of ``resolver``
    on ``meter_provider`` (default: the global one); ``attributes`` are added to
    every observation."""
    meter = otel_metrics.get_meter("safedns", meter_provider=meter_provider)
    extra = dict(attributes or {})
    created: dict[str, Instrument] = {}
    reading = _Reading(resolver)
    for name, kind in _flat_kinds(kinds(resolver.stats())).items():
        otel_name = f"{PREFIX}." + name.removeprefix(f"{PREFIX}_")
        description = f"safedns {name.removeprefix(f'{PREFIX}_').replace('_', ' ')}"
        unit = "s" if "_seconds" in name else ""
        callback = _callback(reading, name, extra)
        if kind == "counter":
            created[otel_name] = meter.create_observable_counter(
                otel_name, callbacks=[callback], unit=unit, description=description
            )
        else:
            created[otel_name] = meter.create_observable_gauge(
                otel_name, callbacks=[callback], unit=unit, description=description
            )
    return Instrumentation(created)


def _flat_kinds(found: dict[str, str]) -> dict[str, str]:
    """``found`` with each histogram as its ``_bucket``/``_count``/``_sum`` counters."""
    flat: dict[str, str] = {}
    for name, kind in found.items():
        if kind == "histogram":
            for sample in flatten([Sample(name, kind, (), 0.0, ((math.inf, 0.0),))]):
                flat[sample.name] = sample.kind
        else:
            flat[name] = kind
    return flat
