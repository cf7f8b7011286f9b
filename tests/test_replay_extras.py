"""``safedns replay --plot``, the progress bar and the fleet model (``--pods``)."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import safedns
from safedns._app.cli import main
from safedns._app.fleet import (
    COREDNS_EXTERNAL_QPS,
    COREDNS_INTERNAL_QPS,
    blended_capacity,
    fleet_steps,
    run_fleet,
)
from safedns._app.replay import FAILED, NOT_FOUND, Answered, Progress
from safedns._app.timeline import QueryTimeline, close_progress, layout, make_progress, rates

from .conftest import FakeClock

SRC = str(Path(safedns.__file__).resolve().parents[1])
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_replay_quick_plot_writes_a_png(tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    env = dict(os.environ, PYTHONPATH=SRC)
    proc = subprocess.run(
        [sys.executable, "-m", "safedns", "replay", "--quick", "--json", "--plot", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["lookups"] == 2000
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    assert f"plot written to {out}" in proc.stderr
    assert "\x1b[" not in proc.stderr  # not a terminal: plain lines, no bar


def test_plot_without_matplotlib_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    assert main(["replay", "--quick", "--plot", str(tmp_path / "x.png")]) == 2
    assert "pip install 'safedns[plot]'" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_rates_bins_cumulative_samples() -> None:
    samples = [(0.0, 0), (0.1, 10), (0.25, 30), (0.5, 30), (0.6, 40)]
    got = rates(samples, width=0.25)
    assert [t for t, _ in got] == pytest.approx([0.0, 0.25, 0.5, 0.6])
    assert [q for _, q in got] == pytest.approx([120.0, 0.0, 100.0, 100.0])
    assert rates([(0.0, 5)]) == []


def test_timeline_samples_each_phase() -> None:
    clock = FakeClock()
    counter = [0]
    timeline = QueryTimeline(interval=3600, clock=clock)  # only begin/end sample
    timeline.begin("safedns healthy", lambda: counter[0])
    counter[0], clock.now = 7, clock.now + 2
    timeline.begin("safedns outage", lambda: counter[0])  # ends the previous phase
    counter[0], clock.now = 9, clock.now + 1
    timeline.end()
    timeline.end()  # idempotent
    assert timeline.series == {
        "safedns healthy": [(0.0, 0), (2.0, 7)],
        "safedns outage": [(0.0, 7), (1.0, 9)],
    }
    assert timeline.answered == {  # no counter of answers given: none counted
        "safedns healthy": [(0.0, 0), (2.0, 0)],
        "safedns outage": [(0.0, 0), (1.0, 0)],
    }


def test_rates_spread_a_count_over_the_time_between_samples() -> None:
    """A phase shorter than the sampling interval: 50 queries in 0.054 s is about
    925/s in every bin, not 50 queries in the last few milliseconds."""
    got = rates([(0.0, 0), (0.054, 50)], width=0.05)
    assert [q for _, q in got] == pytest.approx([925.9, 925.9, 925.9], rel=1e-3)


def _timeline(phases: dict[str, tuple[float, int, int]]) -> QueryTimeline:
    """A timeline with each phase's (duration, queries, lookups answered)."""
    clock = FakeClock()
    timeline = QueryTimeline(interval=3600, clock=clock)
    for label, (seconds, queries, answered) in phases.items():
        counts = [0, 0]
        timeline.begin(label, lambda c=counts: c[0], lambda c=counts: c[1])
        counts[0], counts[1] = queries, answered
        clock.now += seconds
        timeline.end()
    return timeline


def test_layout_puts_both_outages_on_one_time_axis() -> None:
    timeline = _timeline(
        {
            "safedns healthy": (0.1, 50, 2000),
            "baseline healthy": (7.0, 11_000, 2000),
            "safedns outage": (2.0, 40, 120),
            "baseline outage": (2.1, 480, 0),
        }
    )
    placed = layout(timeline, outage_seconds=2.0)
    assert placed.healthy_end == pytest.approx({"safedns": 0.1, "baseline": 7.0})
    assert placed.outage_start == pytest.approx(7.5)  # after the longer healthy phase
    assert placed.outage_end == pytest.approx(7.5 + 2.1)
    for side in ("safedns", "baseline"):
        for steps in (placed.queries[side], placed.answered[side]):
            xs = [x for x, _ in steps]
            assert xs == sorted(xs)
            (gap,) = [i for i, (_, y) in enumerate(steps) if math.isnan(y)]
            assert steps[gap][0] == pytest.approx(placed.healthy_end[side])
            assert steps[gap + 1][0] == pytest.approx(placed.outage_start)  # lined up
    # What reached the DNS, and what the application got, side by side.
    assert placed.answered["safedns"][-1][1] == pytest.approx(120 / 2.0)
    assert placed.answered["baseline"][-1][1] == 0
    assert placed.queries["baseline"][-1][1] == pytest.approx(480 / 2.1)


def test_answered_counts_what_is_not_a_failure() -> None:
    answered = Answered()
    for outcome in [("192.0.2.1",), NOT_FOUND, FAILED, ("192.0.2.2", "2001:db8::2")]:
        answered.add(outcome)
    answered.add_count(5)
    assert answered.value == 8


def test_progress_bar_on_a_terminal_plain_lines_elsewhere() -> None:
    tty = TTY()
    progress = make_progress(tty)
    assert progress.tty and type(progress) is not Progress
    progress.start("safedns: lookups", 100)
    progress.update(50, " lookups, 3 queries")
    progress.finish("100 lookups, 3 queries")
    progress.start("waiting")
    progress.finish("done")
    close_progress(progress)
    text = tty.getvalue()
    assert "safedns: lookups" in text and "100/100" in text and "waiting" in text

    plain = io.StringIO()
    progress = make_progress(plain)
    assert type(progress) is Progress
    progress.start("baseline: lookups", 10)
    progress.finish("10 lookups")
    close_progress(progress)
    assert plain.getvalue() == "baseline: lookups...\nbaseline: lookups: 10 lookups\n"


# -- the fleet model -------------------------------------------------------------------


def test_blended_capacity_and_steps() -> None:
    assert blended_capacity(1.0) == pytest.approx(COREDNS_INTERNAL_QPS)
    assert blended_capacity(0.0) == pytest.approx(COREDNS_EXTERNAL_QPS)
    assert COREDNS_EXTERNAL_QPS < blended_capacity(0.5) < COREDNS_INTERNAL_QPS
    assert fleet_steps(1) == [1]
    assert fleet_steps(250) == [1, 10, 100, 250]
    assert fleet_steps(1000) == [1, 10, 100, 1000]
    with pytest.raises(ValueError, match="pods"):
        fleet_steps(0)
    with pytest.raises(ValueError, match="internal_share"):
        blended_capacity(1.5)


def test_fleet_model_scales_measured_pods() -> None:
    report = run_fleet(500, rate=10, seconds=120, sample_pods=1, glibc_lookups=100)
    # glibc's search order: 2 (short names) to 8 (external) queries per lookup, every time.
    assert 2 <= report.glibc_queries_per_lookup <= 8
    assert report.glibc_qps_per_pod == pytest.approx(10 * report.glibc_queries_per_lookup)
    # safedns caches: in steady state far fewer queries than glibc for the same lookups.
    assert 0 < report.safedns_qps_per_pod * 5 < report.glibc_qps_per_pod
    rows = report.rows()
    assert [r["pods"] for r in rows] == [1, 10, 100, 500]
    assert rows[-1]["glibc_qps"] == pytest.approx(500 * report.glibc_qps_per_pod, rel=1e-3)
    assert report.glibc_pods_per_replica == int(report.glibc_capacity / report.glibc_qps_per_pod)
    safedns_pods = report.safedns_pods_per_replica
    assert safedns_pods is not None and safedns_pods > 5 * report.glibc_pods_per_replica
    with pytest.raises(ValueError, match="seconds"):
        run_fleet(10, seconds=60)


def test_replay_pods_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--pods", "20", "--pod-rate", "5", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [r["pods"] for r in document["fleet"]] == [1, 10, 20]
    assert document["coredns_capacity"]["internal_qps"] == 33_669
    assert document["coredns_capacity"]["external_qps"] == 6_733
    per_replica = document["pods_per_coredns_replica"]
    assert per_replica["safedns"] > per_replica["glibc"] > 0
    assert main(["replay", "--pods", "20", "--plot", "x.png"]) == 2
    assert main(["replay", "--pods", "0"]) == 2
