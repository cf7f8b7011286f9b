"""``stats()`` snapshots as flat metric samples (pure).

Every field of a ``Stats`` dataclass becomes a sample named ``safedns_<field>``:

- an ``int`` or ``float`` is a counter, except the current sizes and states
  (names ending in ``entries``, ``size``, ``in_flight``, ``healthy``, ``up``,
  ``inflight``, ``_seconds`` or ``_ms``), which are gauges; a ``bool`` is a gauge
  (1 or 0);
- a mapping gives one sample per key, with a label: ``upstream_queries_by_type
  = {"A": 3}`` is ``safedns_upstream_queries_by_type{type="A"} 3`` (the label is
  the part after ``_by_``; ``server`` for fields about servers; else ``key``),
  and a mapping of mappings or of dataclasses (per-server health) adds the
  inner names to the metric name;
- a nested dataclass adds its field names to the metric name;
- anything else (strings, sequences, None) is skipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

__all__ = ["PREFIX", "Sample", "samples"]

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
)


class Sample(NamedTuple):
    """One value: metric name, ``"counter"`` or ``"gauge"``, labels, value."""

    name: str
    kind: str
    labels: tuple[tuple[str, str], ...]
    value: float


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
    elif isinstance(value, int | float):
        yield Sample(name, _kind(name, value), labels, float(value))
    elif isinstance(value, Mapping):
        label = _label_for(name)
        for key, inner in value.items():
            yield from _walk(name, inner, (*labels, (label, str(key))))
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from _walk(f"{name}_{field.name}", getattr(value, field.name), labels)


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
