"""leadml's commands beside the tools a user would pick instead, in one run: ratios, agreement, peak memory.

    python benchmarks/run.py --case 10m                    # every comparison at the issue's sizes
    python benchmarks/run.py --case small --only features  # a quick check of one comparison
    python benchmarks/run.py --case 10m --dir /tmp/bench --reuse   # keep the simulated data between runs

Each comparison lives in its own module (``compare_<name>.py``, a ``compare(case, work, rounds)``
returning :class:`harness.Comparison` lines): it prepares its inputs once, times leadml's command and
the peer's as whole processes in turn (``harness.alternate``), and checks that both outputs agree.
The table printed at the end is Markdown, ready for ``benchmarks/README.md``; the run exits 1 when
any two outputs disagree (a speed figure of a wrong answer is worthless) and says which targets were
missed (those do not change the exit code: they are figures to report).
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")  # as the `leadml` command sets it

from harness import Comparison, markdown_table

COMPARISONS = ("features", "score", "pyfunc", "train", "demo")


@dataclass(frozen=True)
class Case:
    """The sizes of one benchmark case: leads of the features case (about 20 events a lead), leads
    scored, labelled snapshots trained on."""

    name: str
    feature_leads: int
    score_leads: int
    train_snapshots: int


CASES = {
    "10m": Case("10m", feature_leads=500_000, score_leads=1_000_000, train_snapshots=1_000_000),
    "small": Case("small", feature_leads=20_000, score_leads=40_000, train_snapshots=40_000),
}


def simulated(work: Path, leads: int, seed: int = 5) -> Path:
    """A folder of simulated ``leads``/``events``/``outcomes`` Parquet files, written once per size and seed."""
    folder = work / f"sim-{leads}-{seed}"
    if not (folder / "events.parquet").exists():
        shutil.rmtree(folder, ignore_errors=True)
        code = "import sys; from leadml.data.simulate import write_simulation; write_simulation(sys.argv[1], int(sys.argv[2]), seed=int(sys.argv[3]))"
        subprocess.run([sys.executable, "-c", code, str(folder), str(leads), str(seed)], check=True)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=sorted(CASES), default="10m")
    parser.add_argument("--only", default=",".join(COMPARISONS), help="comma-separated: " + ", ".join(COMPARISONS))
    parser.add_argument("--rounds", type=int, default=3, help="counted runs of each command (after one warm-up)")
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a new temporary one)")
    parser.add_argument("--reuse", action="store_true", help="keep the work folder and reuse its data")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(names) - set(COMPARISONS))
    if unknown:
        parser.error(f"unknown comparison {', '.join(unknown)}; choose from {', '.join(COMPARISONS)}")
    work = args.dir or Path(tempfile.mkdtemp(prefix="leadml-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    case = CASES[args.case]
    with open("/proc/loadavg") as load:
        print(f"case {case.name}: {case}; work folder {work}; load {load.read().split()[0]}", flush=True)
    results: list[Comparison] = []
    try:
        for name in names:
            module = importlib.import_module(f"compare_{name}")
            lines = module.compare(case, work, args.rounds)
            results.extend(lines)
            print(markdown_table(lines), flush=True)
    finally:
        if args.dir is None and not args.reuse:
            shutil.rmtree(work, ignore_errors=True)
    with open("/proc/loadavg") as load:
        print(f"\nall comparisons (load at the end {load.read().split()[0]}):\n")
    print(markdown_table(results))
    print("\ncommands:")
    for item in results:
        for runs in (item.leadml, item.peer):
            if runs is not None:
                print(f"- {runs.command.label}: `{runs.command.shown()}`")
    disagreements = [item.work for item in results if not item.agreed]
    if disagreements:
        print(f"\nFAILED: outputs disagree in {', '.join(disagreements)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
