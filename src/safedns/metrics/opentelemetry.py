"""OpenTelemetry: ``instrument(resolver, meter_provider=None)`` creates
observable instruments that read ``resolver.stats()`` at collection time.

    import safedns.metrics.opentelemetry
    safedns.metrics.opentelemetry.instrument(resolver)

Every ``Stats`` field present at instrumentation time becomes one instrument
named ``safedns.<field>``: an ``ObservableCounter`` for counts, an
``ObservableGauge`` for sizes and states; mapping fields become attributes.
Needs the ``opentelemetry`` extra (``pip install 'safedns[opentelemetry]'``),
plus an SDK and exporter of your choice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from safedns.metrics._samples import PREFIX, samples

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


def _callback(
    source: HasStats, name: str, attributes: dict[str, str]
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(sample.value, {**attributes, **dict(sample.labels)})
            for sample in samples(source.stats())
            if sample.name == name
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
    kinds: dict[str, str] = {}
    for sample in samples(resolver.stats()):
        kinds.setdefault(sample.name, sample.kind)
    created: dict[str, Instrument] = {}
    for name, kind in kinds.items():
        otel_name = f"{PREFIX}." + name.removeprefix(f"{PREFIX}_")
        description = f"safedns {name.removeprefix(f'{PREFIX}_').replace('_', ' ')}"
        callback = _callback(resolver, name, extra)
        if kind == "counter":
            created[otel_name] = meter.create_observable_counter(
                otel_name, callbacks=[callback], description=description
            )
        else:
            created[otel_name] = meter.create_observable_gauge(
                otel_name, callbacks=[callback], description=description
            )
    return Instrumentation(created)
