"""What the replay records over time, and how it is shown: a query timeline,
the PNG plot (the ``plot`` extra, matplotlib) and a rich progress bar (the
``cli`` extra) on a terminal.

matplotlib and rich are imported lazily, only when used, so the library and
``safedns replay --json`` never need them.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, TextIO

from safedns._app.replay import Progress, ReplayReport

__all__ = [
    "Layout",
    "PlotUnavailable",
    "QueryTimeline",
    "check_plot_available",
    "close_progress",
    "layout",
    "make_progress",
    "plot_replay",
    "rates",
]

#: The phases of a replay, in the order they run, as timeline labels.
HEALTHY = "healthy"
OUTAGE = "outage"


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


class QueryTimeline:
    """Samples a query counter and a counter of lookups answered while a phase
    runs: ``series[label]`` and ``answered[label]`` are lists of ``(seconds since
    the phase began, queries so far)`` and ``(..., lookups answered so far)``.

    ``begin(label, count, answered)`` starts a sampling thread, ``end()`` stops it
    and takes a last sample; one phase at a time.
    """

    def __init__(self, interval: float = 0.05, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self.clock = clock
        self.series: dict[str, list[tuple[float, int]]] = {}
        self.answered: dict[str, list[tuple[float, int]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._active: tuple[str, Callable[[], int], Callable[[], int], float] | None = None

    def begin(
        self, label: str, count: Callable[[], int], answered: Callable[[], int] = lambda: 0
    ) -> None:
        self.end()
        began = self.clock()
        self._active = (label, count, answered, began)
        self.series[label] = [(0.0, count())]
        self.answered[label] = [(0.0, answered())]
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="safedns-timeline", daemon=True)
        self._thread.start()

    def end(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        if self._active is not None:
            self._sample()
            self._active = None

    def _sample(self) -> None:
        assert self._active is not None
        label, count, answered, began = self._active
        now = self.clock() - began
        self.series[label].append((now, count()))
        self.answered[label].append((now, answered()))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()


def _count_at(samples: list[tuple[float, int]], at: float, start: int) -> tuple[float, int]:
    """The cumulative count at ``at``, linear between the samples around it, and
    the index of the sample at or before it (searching from ``start``)."""
    index = start
    while index + 1 < len(samples) and samples[index + 1][0] <= at:
        index += 1
    t0, c0 = samples[index]
    if index + 1 >= len(samples) or at <= t0:
        return float(c0), index
    t1, c1 = samples[index + 1]
    return c0 + (c1 - c0) * (at - t0) / (t1 - t0), index


def rates(
    samples: list[tuple[float, int]], width: float | None = None
) -> list[tuple[float, float]]:
    """``(bin start, per second)`` over bins of ``width`` seconds (by default a
    tenth of the span, between 0.05 and 0.25 s), from cumulative ``samples``
    (the count between two samples taken to grow evenly, so a bin shorter than
    the sampling interval gets its share, not all of it), then ``(end, last
    rate)`` to close the last bin (pure)."""
    if len(samples) < 2:
        return []
    end = samples[-1][0]
    if width is None:
        width = max(0.05, min(0.25, end / 10))
    bins = max(1, int(end / width + 0.999999))
    out: list[tuple[float, float]] = []
    index = 0
    previous = float(samples[0][1])
    for b in range(bins):
        limit = min((b + 1) * width, end)
        count, index = _count_at(samples, limit, index)
        span = (limit - b * width) or width
        out.append((b * width, max(0.0, count - previous) / span))
        previous = count
    out.append((end, out[-1][1]))
    return out


# ---------------------------------------------------------------------- plot


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise PlotUnavailable("--plot needs matplotlib: pip install 'safedns[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def check_plot_available() -> None:
    """Raise ``PlotUnavailable`` (naming the extra) unless matplotlib imports."""
    _pyplot()


#: The sides, as the plot names and colours them.
SIDES = (
    ("baseline", "baseline (glibc order, no cache)", "tab:red"),
    ("safedns", "safedns", "tab:blue"),
)
_GAP = 0.5  # seconds of axis between the healthy phases and the outage


@dataclass(frozen=True)
class Layout:
    """The replay on one time axis (pure): each side's healthy phase from 0,
    both outages from ``outage_start`` (after the longer healthy phase, so they
    line up), until ``outage_end``. ``queries[side]`` and ``answered[side]`` are
    ``(seconds, per second)`` steps."""

    healthy_end: dict[str, float]
    outage_start: float
    outage_end: float
    queries: dict[str, list[tuple[float, float]]]
    answered: dict[str, list[tuple[float, float]]]


def layout(timeline: QueryTimeline, outage_seconds: float) -> Layout:
    """Where each side's phases go on the one time axis of :func:`plot_replay`."""
    healthy_end = {
        side: (timeline.series.get(f"{side} {HEALTHY}") or [(0.0, 0)])[-1][0]
        for side, _, _ in SIDES
    }
    start = max(healthy_end.values()) + _GAP
    outage_ends = [
        start + timeline.series[f"{side} {OUTAGE}"][-1][0]
        for side, _, _ in SIDES
        if timeline.series.get(f"{side} {OUTAGE}")
    ]
    end = max([start + outage_seconds, *outage_ends])

    def steps(series: dict[str, list[tuple[float, int]]], side: str) -> list[tuple[float, float]]:
        healthy = rates(series.get(f"{side} {HEALTHY}", []))
        gap = [(healthy[-1][0], math.nan)] if healthy else []  # no line across the gap
        outage = [(start + t, q) for t, q in rates(series.get(f"{side} {OUTAGE}", []))]
        return healthy + gap + outage

    return Layout(
        healthy_end,
        start,
        end,
        {side: steps(timeline.series, side) for side, _, _ in SIDES},
        {side: steps(timeline.answered, side) for side, _, _ in SIDES},
    )


def plot_replay(timeline: QueryTimeline, report: ReplayReport, path: str | IO[bytes]) -> None:
    """Draw both sides on one time axis, the healthy lookups then the outage
    (shaded, lined up): upstream queries per second in one panel, lookups
    answered per second (what the application got) in the other; write a PNG."""
    plt = _pyplot()
    placed = layout(timeline, report.outage_seconds)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    summary = {
        "baseline": (
            report.baseline_queries,
            report.baseline_outage_queries,
            report.baseline_outage_success,
        ),
        "safedns": (
            report.safedns_queries,
            report.safedns_outage_queries,
            report.safedns_outage_success,
        ),
    }
    short = placed.outage_end / 50  # a healthy phase this short gets markers to be seen
    for side, title, colour in SIDES:
        queries, outage_queries, success = summary[side]
        took = placed.healthy_end[side]
        for ax, points, label in (
            (
                top,
                placed.queries[side],
                f"{title}: {queries:,} queries for {report.lookups:,} lookups "
                f"(in {took:.2g} s), {outage_queries:,} in the outage",
            ),
            (bottom, placed.answered[side], f"{title}: {success:.0%} answered in the outage"),
        ):
            if points:
                xs, ys = zip(*points, strict=True)
                ax.step(xs, ys, where="post", color=colour, label=label)
                if took < short:
                    healthy = [(x, y) for x, y in points if x <= took and not math.isnan(y)]
                    ax.plot(*zip(*healthy, strict=True), "o", color=colour, markersize=4)
    for ax, ylabel, heading in (
        (top, "queries/s", "queries sent to the DNS server"),
        (bottom, "lookups/s", "lookups answered (an address or no such name; not a failure)"),
    ):
        ax.axvspan(placed.outage_start, placed.outage_end, color="tab:orange", alpha=0.2)
        ax.axvline(placed.outage_start - _GAP / 2, color="grey", linestyle=":", linewidth=1)
        ax.set_yscale("symlog", linthresh=1)
        ax.set_ylim(0, max(ax.get_ylim()[1] * 3, 10))
        ax.set_ylabel(ylabel)
        ax.set_title(heading, fontsize=10, loc="left")
        ax.legend(loc="lower left", fontsize=8)
        ax.grid(True, alpha=0.3)
    bottom.text(
        placed.outage_start,
        0.02,
        f" DNS down ({report.outage_seconds:g} s)",
        transform=bottom.get_xaxis_transform(),
        fontsize=8,
        color="tab:orange",
    )
    bottom.set_xlabel(
        "seconds: each side's healthy lookups from 0, then both outages from the same moment\n"
        "(the wait for the TTLs to expire, at the dotted line, is left out)"
    )
    fig.suptitle(
        f"safedns replay (seed {report.seed}): what reached the DNS, and what the application got"
    )
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------ progress


class _RichProgress(Progress):
    """``Progress`` drawn as a rich progress bar (a TTY only)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar

        self.tty = True
        self._bar = Bar(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[extra]}"),
            TimeElapsedColumn(),
            console=Console(file=stream),
            transient=False,
        )
        self._task: Any = None

    def start(self, title: str, total: int = 0) -> None:
        self._finish_task()
        self._title = title
        if not self._bar.live.is_started:
            self._bar.start()
        self._task = self._bar.add_task(title, total=total or None, extra="")

    def update(self, done: int, extra: str = "") -> None:
        if self._task is not None:
            self._bar.update(self._task, completed=done, extra=extra.strip(" ,"))

    def finish(self, summary: str) -> None:
        if self._task is not None:
            task = self._bar.tasks[-1]
            total = task.total if task.total is not None else 1
            self._bar.update(self._task, completed=total, total=total, extra=summary)
            self._task = None

    def _finish_task(self) -> None:
        if self._task is not None:
            self.finish("")

    def close(self) -> None:
        self._finish_task()
        if self._bar.live.is_started:
            self._bar.stop()


def make_progress(stream: TextIO) -> Progress:
    """A rich progress bar on a terminal (when rich is installed), plain lines otherwise."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    if tty:
        try:
            return _RichProgress(stream)
        except ImportError:
            pass
    return Progress(stream)


def close_progress(progress: Progress) -> None:
    """Stop a rich bar's live display (no-op for plain progress)."""
    if isinstance(progress, _RichProgress):
        progress.close()
