"""Results of a benchmark run: the data model, the text table, JSON and Markdown.

A scenario returns a :class:`ScenarioResult`: one :class:`PeerRow` per peer
(its figures in ``values``, keyed by metric), the :class:`Column` s to show,
the reference peer that ratios are computed against (a safedns row), notes
and goals. Ratios are always ``peer value / reference value`` for the same
metric, from figures of the same run.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DASH",
    "TIMES",
    "Column",
    "Goal",
    "PeerRow",
    "Run",
    "ScenarioResult",
    "fmt_bytes",
    "fmt_count",
    "fmt_float",
    "fmt_ms",
    "fmt_ns",
    "fmt_pct",
    "render_json",
    "render_markdown",
    "render_text",
]

Formatter = Callable[[Any], str]

#: The multiplication sign and the en dash (spelled out: ruff flags them as ambiguous).
TIMES = "\u00d7"
DASH = "\u2013"


# --------------------------------------------------------------------------- formatting


def _sig(value: float, digits: int = 3) -> str:
    """``value`` with about ``digits`` significant digits, no exponent."""
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - magnitude)
    return f"{value:,.{decimals}f}"


def fmt_ns(value: Any) -> str:
    """Nanoseconds shown in ns, µs or ms."""
    if not isinstance(value, (int, float)):
        return str(value)
    if value < 1_000:
        return f"{_sig(value)} ns"
    if value < 1_000_000:
        return f"{_sig(value / 1_000)} µs"
    return f"{_sig(value / 1_000_000)} ms"


def fmt_ms(value: Any) -> str:
    """Milliseconds shown in ms or s."""
    if not isinstance(value, (int, float)):
        return str(value)
    if value < 1_000:
        return f"{_sig(value)} ms"
    return f"{_sig(value / 1_000)} s"


def fmt_float(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return str(value)
    return _sig(float(value))


def fmt_count(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return str(value)
    return f"{round(value):,}"


def fmt_pct(value: Any) -> str:
    """A fraction 0..1 shown as a percentage."""
    if not isinstance(value, (int, float)):
        return str(value)
    return f"{value * 100:.1f} %"


def fmt_bytes(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return str(value)
    if abs(value) < 10 * 1024:
        return f"{round(value):,} B"
    if abs(value) < 10 * 1024 * 1024:
        return f"{_sig(value / 1024)} KiB"
    return f"{_sig(value / 1024 / 1024)} MiB"


# --------------------------------------------------------------------------- data model


@dataclass(frozen=True)
class Column:
    """One figure shown in a scenario's table."""

    key: str
    heading: str
    fmt: Formatter = fmt_float
    #: Show ``peer / reference`` next to the value.
    ratio: bool = False


@dataclass
class PeerRow:
    """One peer's figures in one scenario."""

    peer: str
    label: str
    values: dict[str, Any] = field(default_factory=dict)
    #: "ok", or "skipped" / "not available" / "error" with ``reason``.
    status: str = "ok"
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class Goal:
    """A target from the issue, and whether this run met it (None: not measurable)."""

    text: str
    measured: str
    met: bool | None


@dataclass
class ScenarioResult:
    name: str
    title: str
    columns: list[Column] = field(default_factory=list)
    rows: list[PeerRow] = field(default_factory=list)
    #: Peer id whose figures are the denominator of every ratio.
    reference: str | None = None
    status: str = "ok"
    reason: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    #: More detail, JSON only.
    extra: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def figures(self, key: str) -> dict[str, Any]:
        """``key``'s value for every peer: a number, or the peer's status."""
        return {
            row.peer: row.values.get(key) if row.ok else f"{row.status}: {row.reason}"
            for row in self.rows
        }

    def row(self, peer: str) -> PeerRow | None:
        return next((r for r in self.rows if r.peer == peer), None)

    def value(self, peer: str, key: str) -> Any:
        row = self.row(peer)
        return None if row is None or not row.ok else row.values.get(key)

    def ratio(self, peer: str, key: str) -> float | None:
        """``peer / reference`` for ``key``; None when either is missing; inf
        when only the reference is zero."""
        if self.reference is None:
            return None
        value, ref = self.value(peer, key), self.value(self.reference, key)
        if not isinstance(value, (int, float)) or not isinstance(ref, (int, float)):
            return None
        if ref == 0:
            return 1.0 if value == 0 else math.inf
        return value / ref

    def as_dict(self) -> dict[str, Any]:
        peers: dict[str, Any] = {}
        for row in self.rows:
            entry: dict[str, Any] = {"label": row.label, "status": row.status}
            if row.reason:
                entry["reason"] = row.reason
            entry.update(row.values)
            ratios = {}
            for column in self.columns:
                if column.ratio and row.ok and row.peer != self.reference:
                    r = self.ratio(row.peer, column.key)
                    if r is not None:
                        ratios[column.key] = None if math.isinf(r) else round(r, 3)
            if ratios:
                entry["ratios_vs_reference"] = ratios
            peers[row.peer] = entry
        return {
            "title": self.title,
            "status": self.status,
            "reason": self.reason,
            "reference": self.reference,
            "params": self.params,
            "peers": peers,
            "goals": [{"goal": g.text, "measured": g.measured, "met": g.met} for g in self.goals],
            "notes": self.notes,
            "extra": self.extra,
            "seconds": round(self.seconds, 2),
        }


@dataclass
class Run:
    """Everything one ``python -m benchmarks`` run produced."""

    mode: str
    command: str
    machine: dict[str, Any]
    scenarios: list[ScenarioResult] = field(default_factory=list)
    #: Headline figures per scenario and peer (also in ``scenarios``), for quick reading.
    summary: dict[str, Any] = field(default_factory=dict)
    #: Caveats about the whole run (e.g. a busy machine).
    notes: list[str] = field(default_factory=list)
    started: str = field(
        default_factory=lambda: datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        )
    )
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": 1,
            "mode": self.mode,
            "command": self.command,
            "started": self.started,
            "seconds": round(self.seconds, 1),
            "machine": self.machine,
            "summary": self.summary,
            "notes": self.notes,
            "scenarios": {s.name: s.as_dict() for s in self.scenarios},
        }


# --------------------------------------------------------------------------- rendering


def _cell(result: ScenarioResult, row: PeerRow, column: Column) -> str:
    if not row.ok:
        return ""
    value = row.values.get(column.key)
    if value is None:
        return DASH
    text = column.fmt(value)
    if column.ratio and result.reference is not None and row.peer != result.reference:
        ratio = result.ratio(row.peer, column.key)
        if ratio is not None:
            text += f" ({TIMES}∞)" if math.isinf(ratio) else f" ({TIMES}{_sig(ratio, 2)})"
    return text


def _table(result: ScenarioResult) -> tuple[list[str], list[list[str]]]:
    header = ["peer", *(c.heading for c in result.columns)]
    body = []
    for row in result.rows:
        if row.ok:
            body.append([row.label, *(_cell(result, row, c) for c in result.columns)])
        else:
            status = f"{row.status}: {row.reason}" if row.reason else row.status
            body.append([row.label, status, *([""] * (len(result.columns) - 1))])
    return header, body


def _ratio_note(result: ScenarioResult) -> str | None:
    if result.reference is None or not any(c.ratio for c in result.columns):
        return None
    ref = result.row(result.reference)
    if ref is None or not ref.ok:
        return None
    label = ref.label
    return f"({TIMES}N) = peer's figure ÷ {label}'s, same run."


def _goal_mark(goal: Goal) -> str:
    return {True: "met", False: "NOT met", None: "n/a"}[goal.met]


def render_text(run: Run) -> str:
    """The whole run as plain text tables, for the terminal."""
    out = [f"safedns benchmarks ({run.mode}), {run.machine.get('summary', '')}", ""]
    out += [f"note: {n}" for n in run.notes]
    for result in run.scenarios:
        out.append(f"== {result.title} ==")
        if result.status != "ok":
            out.append(f"{result.status}: {result.reason}")
        if result.rows:
            header, body = _table(result)
            full = [line for line, row in zip(body, result.rows, strict=True) if row.ok]
            widths = [max(len(line[i]) for line in (header, *full)) for i in range(len(header))]
            widths[0] = max(len(line[0]) for line in (header, *body))
            for line, row in zip((header, *body), (None, *result.rows), strict=True):
                if row is not None and not row.ok:  # the reason spans the row
                    out.append(f"{line[0].ljust(widths[0])}  {line[1]}")
                    continue
                cells = [line[0].ljust(widths[0])]
                cells += [c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)]
                out.append("  ".join(cells).rstrip())
        note = _ratio_note(result)
        if note:
            out.append(note)
        for goal in result.goals:
            out.append(f"goal [{_goal_mark(goal)}] {goal.text}: {goal.measured}")
        out.extend(f"note: {n}" for n in result.notes)
        out.append("")
    out.append(f"total {run.seconds:.1f} s")
    return "\n".join(out)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(_md_escape(h) for h in header) + " |"]
    lines.append("|" + "|".join(["---", *["---:"] * (len(header) - 1)]) + "|")
    lines += ["| " + " | ".join(_md_escape(c) for c in line) + " |" for line in body]
    return lines


def render_markdown(run: Run, *, preamble: str = "", reproduce: str = "") -> str:
    """The run as Markdown: the tables, goals, notes and the machine block."""
    out = ["# Benchmarks", ""]
    if preamble:
        out += [preamble.strip(), ""]
    out += [
        f"Latest run: `{run.command}` ({run.mode} sizes), {run.started}, "
        f"{run.seconds:.0f} s in all. Machine: see [below](#machine).",
        "",
    ]
    if run.notes:
        out += [f"**Note:** {n}" for n in run.notes]
        out.append("")
    for result in run.scenarios:
        out += [f"## {result.title}", ""]
        if result.status != "ok":
            out += [f"**{result.status}**: {result.reason}", ""]
        if result.rows:
            header, body = _table(result)
            out += _md_table(header, body)
            out.append("")
        note = _ratio_note(result)
        if note:
            out += [note, ""]
        if result.goals:
            out += [f"- Goal ({_goal_mark(g)}): {g.text} — {g.measured}" for g in result.goals]
            out.append("")
        if result.notes:
            out += [f"- {n}" for n in result.notes]
            out.append("")
    if reproduce:
        out += ["## How to reproduce", "", reproduce.strip(), ""]
    out += ["## Machine", "", "```"]
    for key, value in run.machine.items():
        if key == "summary":
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        out.append(f"{key}: {value}")
    out += ["```", ""]
    return "\n".join(out)


def render_json(run: Run) -> str:
    def default(obj: object) -> object:
        if isinstance(obj, float) and not math.isfinite(obj):
            return None
        return str(obj)

    return json.dumps(_finite(run.as_dict()), indent=2, default=default) + "\n"


def _finite(obj: Any) -> Any:
    """Replace inf/nan (not valid JSON) by None, recursively."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
