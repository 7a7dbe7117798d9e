"""The command benchmarks' harness: whole processes in turn, their peak memory, ratios and verdicts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from harness import Command, Comparison, Runs, alternate, markdown_table, run_once

ALLOCATE = "import time, numpy; a = numpy.ones({mb} * 2**20 // 8); time.sleep({sleep})"


def python(label: str, code: str) -> Command:
    return Command(label, [sys.executable, "-c", code])


def test_alternate_counts_runs_after_the_warm_up_and_measures_each_process() -> None:
    import numpy as np

    held = np.ones(400 * 2**20 // 8)  # the benchmark's own memory must not be charged to its commands
    small = python("small", ALLOCATE.format(mb=20, sleep=0.05))
    large = python("large", ALLOCATE.format(mb=300, sleep=0.4))
    first, second = alternate(small, large, rounds=2, warmup=1)
    assert second is not None
    assert len(first.seconds) == len(first.peak_mb) == 2 and len(second.seconds) == 2
    assert all(peak > 300 for peak in second.peak_mb), second.peak_mb  # the array is resident
    assert all(peak < 250 for peak in first.peak_mb), first.peak_mb
    assert held.sum() == len(held)
    assert min(second.seconds) > 0.4
    line = Comparison("work", first, second, "nothing compared", agreed=True, speed_target=1.0, peak_target_mb=10)
    assert line.ratio is not None and line.ratio > 1.0
    assert line.missed() == [f"peak {first.median_peak_mb:,.0f} MB > 10 MB"]


def test_a_failing_command_stops_the_benchmark_with_its_output() -> None:
    failing = python("failing", "import sys; print('the reason it failed'); sys.exit(3)")
    with pytest.raises(RuntimeError, match="failing exited 3") as caught:
        run_once(failing)
    assert "the reason it failed" in str(caught.value)


def test_the_table_says_which_targets_were_missed_and_flags_disagreement() -> None:
    leadml, peer = Runs(python("leadml x", "")), Runs(python("peer y", ""))
    leadml.seconds, leadml.peak_mb = [2.0, 4.0, 3.0], [900.0, 1100.0, 1000.0]
    peer.seconds, peer.peak_mb = [4.0, 4.0, 9.0], [500.0, 500.0, 500.0]
    slow = Comparison("work a", leadml, peer, "counts", agreed=False, speed_target=2.5, units=3_000_000,
                      unit_name="leads", rate_target=1_000_000, seconds_target=2.5)  # fmt: skip
    assert slow.ratio == 2.0  # pairs 2.0, 1.0, 3.0
    assert slow.rate == 1_000_000.0
    assert slow.missed() == ["speed 2.00x < 2.5x", "3.0 s > 2 s"]
    table = markdown_table([slow])
    assert "DISAGREE: counts" in table and "**2.00x**" in table and "1,000,000 leads/s" in table
    assert Command("c", ["/usr/bin/python3", "-m", "leadml", "score"]).shown() == "python -m leadml score"


def test_run_refuses_an_unknown_comparison(capsys: pytest.CaptureFixture[str]) -> None:
    import run

    with pytest.raises(SystemExit) as stopped:
        run.main(["--case", "small", "--only", "features,speed"])
    assert stopped.value.code == 2
    assert "unknown comparison speed" in capsys.readouterr().err
