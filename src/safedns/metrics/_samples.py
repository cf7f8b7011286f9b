"""``stats()`` snapshots as flat metric samples (pure).

Every field of a ``Stats`` dataclass becomes a sample named ``safedns_<field>``:

- an ``int`` or ``float`` is a counter, except the current sizes and states
  (names ending in ``entries``, ``size``, ``in_flight``, ``healthy``, ``up``,
  ``inflight``, ``_seconds``, ``_ms``, ``_state`` or ``_modules``), which are
  gauges; a ``bool`` is a gauge
  (1 or 0);
- a mapping gives one sample per key, with a label: ``upstream_queries_by_type
  = {"A": 3}`` is ``safedns_upstream_queries_by_type{type="A"} 3`` (the label is
  the part after ``_by_``; ``server`` for fields about servers; else ``key``),
  and a mapping of mappings or of dataclasses (per-server health) adds the
  inner names to the metric name;
- a nested dataclass adds its field names to the metric name;
- a ``Histogram`` (upstream latency) is one ``"histogram"`` sample: its
  value is the sum, its ``buckets`` the cumulative ``(upper bound, count)``
  pairs ending with ``+Inf``; :func:`flatten` turns it into the
  ``_bucket{le=...}``, ``_count`` and ``_sum`` counters of the Prometheus
  text format, for exporters without a histogram of their own;
- anything else (strings, sequences, None) is skipped.

:func:`kinds` names every metric a ``stats()`` type can give, from its
type hints, so that an exporter that must create its instruments up front
(OpenTelemetry) also gets those whose mapping is empty or whose value is
None when it starts.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from safedns._metrics import Histogram

__all__ = ["PREFIX", "Sample", "flatten", "kinds", "le_text", "samples"]

PREFIX = "safedns"
_GAUGE_SUFFIXES = (
    "entries",
    "size",
    "in_flight",
    "inflight",
    "healthy",
    "_up",
    "_seconds",
    "_ms",
    "_state",
    "_modules",
)


class Sample(NamedTuple):
    """One value: metric name, ``"counter"``, ``"gauge"`` or ``"histogram"``,
    labels, value; a histogram's value is its sum and ``buckets`` its
    cumulative ``(upper bound, count)`` pairs, the last one ``(inf, count)``."""

    name: str
    kind: str
    labels: tuple[tuple[str, str], ...]
    value: float
    buckets: tuple[tuple[float, float], ...] = ()


def le_text(bound: float) -> str:
    """A bucket bound as the ``le`` label shows it: ``"0.005"``, ``"+Inf"``."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def _kind(name: str, value: object) -> str:
    if isinstance(value, bool) or name.endswith(_GAUGE_SUFFIXES) or name == "up":
        return "gauge"
    return "counter"


def _label_for(name: str) -> str:
    if "_by_" in name:
        return name.rsplit("_by_", 1)[1]
    if "server" in name:
        return "server"
    return "key"


def _walk(name: str, value: object, labels: tuple[tuple[str, str], ...]) -> Iterator[Sample]:
    if isinstance(value, bool):
        yield Sample(name, "gauge", labels, 1.0 if value else 0.0)
    elif isinstance(value, Histogram):
        buckets = tuple((bound, float(count)) for bound, count in value.cumulative())
        yield Sample(name, "histogram", labels, float(value.sum), buckets)
    elif isinstance(value, int | float):
        yield Sample(name, _kind(name, value), labels, float(value))
    elif isinstance(value, Mapping):
        label = _label_for(name)
        for key, inner in value.items():
            yield from _walk(name, inner, (*labels, (label, str(key))))
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from _walk(f"{name}_{field.name}", getattr(value, field.name), labels)


def flatten(items: Iterable[Sample]) -> list[Sample]:
    """``items`` with each histogram as its ``_bucket`` (one per ``le``),
    ``_count`` and ``_sum`` counters."""
    out: list[Sample] = []
    for sample in items:
        if sample.kind != "histogram":
            out.append(sample)
            continue
        name, labels = sample.name, sample.labels
        for bound, count in sample.buckets:
            out.append(
                Sample(f"{name}_bucket", "counter", (*labels, ("le", le_text(bound))), count)
            )
        count = sample.buckets[-1][1] if sample.buckets else 0.0
        out.append(Sample(f"{name}_count", "counter", labels, count))
        out.append(Sample(f"{name}_sum", "counter", labels, sample.value))
    return out


def _hinted(name: str, hint: Any) -> Iterator[tuple[str, str]]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if arg is not type(None):
                yield from _hinted(name, arg)
                return
    elif origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
        args = typing.get_args(hint)
        if len(args) == 2:
            yield from _hinted(name, args[1])
    elif hint is bool:
        yield name, "gauge"
    elif hint in (int, float):
        yield name, _kind(name, hint())
    elif hint is Histogram:
        yield name, "histogram"
    elif isinstance(hint, type) and dataclasses.is_dataclass(hint):
        for field, inner in typing.get_type_hints(hint).items():
            yield from _hinted(f"{name}_{field}", inner)


def kinds(stats: Any) -> dict[str, str]:
    """Every metric name ``stats`` (a ``stats()`` snapshot) can give, with its
    kind: those of its values now, and those its type hints promise."""
    found = {sample.name: sample.kind for sample in samples(stats)}
    if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
        try:
            hints = typing.get_type_hints(type(stats))
        except Exception:  # unresolvable hints: the values alone say it
            hints = {}
        for field in dataclasses.fields(stats):
            if field.name in hints:
                for name, kind in _hinted(f"{PREFIX}_{field.name}", hints[field.name]):
                    found.setdefault(name, kind)
    return found


def samples(stats: Any) -> list[Sample]:
    """The samples of one ``stats()`` snapshot (a dataclass, or a mapping)."""
    if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
        items: Mapping[str, object] = {
            f.name: getattr(stats, f.name) for f in dataclasses.fields(stats)
        }
    elif isinstance(stats, Mapping):
        items = stats
    else:
        raise TypeError(f"stats() returned {type(stats).__name__}, not a dataclass or mapping")
    out: list[Sample] = []
    for name, value in items.items():
        out.extend(_walk(f"{PREFIX}_{name}", value, ()))
    return out
