"""Metrics exporters over ``stats()``: ``safedns.metrics.prometheus`` and
``safedns.metrics.opentelemetry`` (each an optional extra).

Both read the resolver's ``stats()`` when they are collected, never on the
lookup path, and turn every field into a metric (see :func:`samples`), so new
counters appear without changes here.
"""

from safedns.metrics._samples import Sample, flatten, kinds, samples

__all__ = ["Sample", "flatten", "kinds", "samples"]
