"""What the replay records over time, and how it is shown: a query timeline,
the PNG plot (the ``plot`` extra, matplotlib) and a rich progress bar (the
``cli`` extra) on a terminal.

matplotlib and rich are imported lazily, only when used, so the library and
``safedns replay --json`` never need them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import IO, Any, TextIO

from safedns._app.replay import Progress, ReplayReport

__all__ = [
    "PlotUnavailable",
    "QueryTimeline",
    "check_plot_available",
    "close_progress",
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
    """Samples a query counter while a phase runs: ``series[label]`` is a list of
    ``(seconds since the phase began, queries so far)``.

    ``begin(label, count)`` starts a sampling thread, ``end()`` stops it and
    takes a last sample; one phase at a time.
    """

    def __init__(self, interval: float = 0.05, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self.clock = clock
        self.series: dict[str, list[tuple[float, int]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._active: tuple[str, Callable[[], int], float] | None = None

    def begin(self, label: str, count: Callable[[], int]) -> None:
        self.end()
        began = self.clock()
        self._active = (label, count, began)
        self.series[label] = [(0.0, count())]
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
        label, count, began = self._active
        self.series[label].append((self.clock() - began, count()))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()


def rates(
    samples: list[tuple[float, int]], width: float | None = None
) -> list[tuple[float, float]]:
    """``(bin start, queries per second)`` over bins of ``width`` seconds (by
    default a tenth of the span, between 0.05 and 0.25 s), from cumulative
    ``samples``, then ``(end, last rate)`` to close the last bin (pure)."""
    if len(samples) < 2:
        return []
    end = samples[-1][0]
    if width is None:
        width = max(0.05, min(0.25, end / 10))
    bins = max(1, int(end / width + 0.999999))
    out: list[tuple[float, float]] = []
    index = 0
    previous = samples[0][1]
    for b in range(bins):
        limit = (b + 1) * width
        while index + 1 < len(samples) and samples[index + 1][0] <= limit:
            index += 1
        count = samples[index][1]
        span = min(width, end - b * width) or width
        out.append((b * width, max(0, count - previous) / span))
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


def plot_replay(timeline: QueryTimeline, report: ReplayReport, path: str | IO[bytes]) -> None:
    """Draw upstream queries per second for the baseline and safedns, the
    healthy phase then the outage (shaded), one panel per side; write a PNG."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True, sharey=True)
    sides = (
        ("baseline", "baseline (glibc order, no cache)", "tab:red"),
        ("safedns", "safedns", "tab:blue"),
    )
    for ax, (side, title, colour) in zip(axes, sides, strict=True):
        healthy = timeline.series.get(f"{side} {HEALTHY}", [])
        outage = timeline.series.get(f"{side} {OUTAGE}", [])
        healthy_end = healthy[-1][0] if healthy else 0.0
        gap = 0.5
        start = healthy_end + gap
        points = rates(healthy) + [(start + t, q) for t, q in rates(outage)]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.step(xs, ys, where="post", color=colour, label="upstream queries/s")
        ax.axvline(healthy_end + gap / 2, color="grey", linestyle=":", linewidth=1)
        outage_end = start + (outage[-1][0] if outage else report.outage_seconds)
        ax.axvspan(start, outage_end, color="tab:orange", alpha=0.2, label="DNS down")
        queries = report.baseline_queries if side == "baseline" else report.safedns_queries
        outage_q = (
            report.baseline_outage_queries if side == "baseline" else report.safedns_outage_queries
        )
        success = (
            report.baseline_outage_success if side == "baseline" else report.safedns_outage_success
        )
        ax.set_title(
            f"{title}: {queries:,} queries for {report.lookups:,} lookups; outage: "
            f"{outage_q:,} queries, {success:.0%} answered",
            fontsize=10,
        )
        ax.set_yscale("symlog", linthresh=1)
        ax.set_ylabel("upstream queries/s")
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlabel("seconds since the side began (healthy lookups, then the outage)")
    fig.suptitle(f"safedns replay (seed {report.seed}): what reaches the cluster DNS")
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
