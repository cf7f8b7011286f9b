"""safedns benchmarks: ``python -m benchmarks [--quick] [--json FILE] [--markdown FILE]``.

One module per scenario (``amplification``, ``hit_latency``, ``burst``,
``outage``, ``scale``, ``httpx_bench``, ``negative_cache``, ``miss_path``),
each with ``run(ctx) -> ScenarioResult``; ``_report`` renders the table, the
JSON and the Markdown of ``docs/benchmarks.md``. Benchmarks are not tests:
nothing here asserts a time.
"""

from __future__ import annotations

#: Scenario modules, in the order they run and are reported.
SCENARIOS = (
    "amplification",
    "hit_latency",
    "burst",
    "outage",
    "scale",
    "httpx_bench",
    "clients",
    "negative_cache",
    "miss_path",
)

__all__ = ["SCENARIOS"]
