"""Benchmark: `leadml demo` end to end, as a new user runs it, in a fresh folder each time.

Each run starts `leadml demo --dir DIR` as a child process in a new temporary folder (MLflow goes
to DIR/mlruns.db: ``MLFLOW_TRACKING_URI`` is removed from the child's environment) and reports the
wall seconds from start to exit (Python's start and imports included), the child's peak resident
memory (``ru_maxrss`` of that child, from ``os.wait4``) and, as a check, the largest resident
memory of the child's process tree seen by psutil sampling every 0.1 s. The 1-minute load average
before each run says how busy the machine was. Target: under 3 minutes on the 2-core machine.

    python benchmarks/demo.py               # 3 runs of the default demo (20,000 leads)
    python benchmarks/demo.py --runs 1 --leads 5000 --keep
    python benchmarks/demo.py --cold        # each run builds leadml's wheel too, as on a new machine
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

TARGET_SECONDS = 180.0


@dataclass(frozen=True)
class DemoRun:
    seconds: float
    peak_rss_mb: float
    sampled_rss_mb: float
    load_before: float
    exit_code: int
    folder: Path


def demo_command(folder: Path, leads: int | None) -> list[str]:
    """`leadml demo` through the installed script beside this interpreter (else the same entry point)."""
    script = Path(sys.executable).with_name("leadml")
    base = [str(script)] if script.is_file() else [sys.executable, "-c", "from leadml.cli.app import main; main()"]
    extra = ["--leads", str(leads)] if leads else []
    return [*base, "demo", "--dir", str(folder / "leadml-demo"), *extra]


def _sample_tree(pid: int, peak: list[float], stop: threading.Event) -> None:
    """Largest summed RSS of a process and its descendants, polled until ``stop`` is set."""
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    while not stop.is_set():
        try:
            total = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
        except psutil.Error:
            total = 0  # the child is exiting
        peak[0] = max(peak[0], total)
        stop.wait(0.1)


def run_once(leads: int | None, keep: bool, parent: Path | None, cold: bool = False) -> DemoRun:
    folder = Path(tempfile.mkdtemp(prefix="leadml-demo-bench-", dir=parent))
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_ARTIFACTS_DESTINATION")}
    if cold:  # an empty wheel cache (leadml.modeling.model_env): the model's wheel is built in the run
        env["LEADML_WHEEL_CACHE"] = str(folder / "wheels")
    load_before = os.getloadavg()[0]
    peak, stop = [0.0], threading.Event()
    with open(folder / "demo.log", "wb") as log:
        started = time.perf_counter()
        child = subprocess.Popen(demo_command(folder, leads), cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
        sampler = threading.Thread(target=_sample_tree, args=(child.pid, peak, stop), daemon=True)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        stop.set()
        sampler.join()
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here; tell Popen so it does not wait again
    result = DemoRun(seconds, usage.ru_maxrss / 1024, peak[0] / 2**20, load_before, child.returncode, folder)
    if child.returncode != 0:
        tail = (folder / "demo.log").read_text(errors="replace").splitlines()[-20:]
        print("\n".join(tail), file=sys.stderr)
    elif not keep:
        shutil.rmtree(folder, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--leads", type=int, default=None, help="--leads of `leadml demo` (default: its own, 20,000)")
    parser.add_argument("--keep", action="store_true", help="keep each run's folder (its path is printed)")
    parser.add_argument("--tmp", type=Path, default=None, help="parent folder of the runs' temporary folders")
    parser.add_argument("--cold", action="store_true", help="an empty wheel cache for each run (the wheel is built)")
    args = parser.parse_args(argv)

    print(
        f"leadml demo{f' --leads {args.leads}' if args.leads else ''}: {args.runs} {'cold ' * args.cold}runs, "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )
    print("| run | seconds | peak RSS (wait4) | peak RSS (psutil) | load before | exit |")
    print("|---:|---:|---:|---:|---:|---:|")
    runs = []
    for number in range(1, args.runs + 1):
        run = run_once(args.leads, args.keep, args.tmp, args.cold)
        runs.append(run)
        kept = f"  ({run.folder})" if args.keep or run.exit_code else ""
        print(
            f"| {number} | {run.seconds:.1f} | {run.peak_rss_mb:,.0f} MB | {run.sampled_rss_mb:,.0f} MB "
            f"| {run.load_before:.2f} | {run.exit_code} |{kept}",
            flush=True,
        )
    ok = [r for r in runs if r.exit_code == 0]
    if ok:
        median = statistics.median(r.seconds for r in ok)
        worst = max(r.seconds for r in ok)
        verdict = "met" if worst < TARGET_SECONDS else "NOT met"
        print(
            f"median {median:.1f} s, slowest {worst:.1f} s, peak {max(r.peak_rss_mb for r in ok):,.0f} MB; "
            f"target under {TARGET_SECONDS:.0f} s: {verdict}"
        )
    return 0 if len(ok) == len(runs) else 1


if __name__ == "__main__":
    sys.exit(main())
