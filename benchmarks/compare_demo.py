"""The cold ``leadml demo``: a first run in a new folder (no model store, no cached simulator tables).

No peer runs the demo's story, so this line has leadml alone: its median wall time against the
issue's target (35 s) and its peak memory. Each run gets a new folder and a new MLflow store, as a
first run on a new machine would; numba's on-disk kernel cache stays (it is built at install time
on a user's machine too). Agreement: every run prints the same MQL count.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from harness import Command, Comparison, Runs, run_once

DEMO_TARGET_SECONDS = 35.0


def compare(case, work: Path, rounds: int) -> list[Comparison]:
    runs: Runs | None = None
    mqls: set[str] = set()
    for round_number in range(rounds + 1):
        folder = Path(tempfile.mkdtemp(prefix="demo-", dir=work))
        log = folder / "demo.log"
        command = Command(
            "leadml demo (cold)",
            ["sh", "-c", 'cd "$1" && exec "$0" -m leadml demo --dir out > demo.log 2>&1', sys.executable, str(folder)],
            env={"MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlruns.db'}"},
        )
        seconds, peak = run_once(command)
        if round_number == 0:
            continue  # the warm-up: the operating system's file cache, as for the other commands
        runs = runs or Runs(Command("leadml demo (cold)", [sys.executable, "-m", "leadml", "demo", "--dir", "DIR"]))
        runs.seconds.append(seconds)
        runs.peak_mb.append(peak)
        found = re.search(r"([\d,]+) MQL ->", log.read_text())
        mqls.add(found.group(1) if found else "none printed")
    assert runs is not None
    agreed = len(mqls) == 1 and "none printed" not in mqls
    return [
        Comparison(
            work="demo, cold first run",
            leadml=runs,
            peer=None,
            agreement=f"MQL count printed by every run: {', '.join(sorted(mqls))}",
            agreed=agreed,
            seconds_target=DEMO_TARGET_SECONDS,
        )
    ]
