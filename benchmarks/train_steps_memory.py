"""The peak memory of ``leadml train`` step by step: which step sets the process's peak.

Runs the training job in this process (as ``leadml train PIPELINE`` does, MLflow at
``MLFLOW_TRACKING_URI``) and prints, at each of the job's progress messages, the seconds since the
start, the resident memory now and the peak so far (``getrusage``): the step that raises the peak is
the one whose next line shows it higher.

    MLFLOW_TRACKING_URI=sqlite:////tmp/t/mlruns.db python benchmarks/train_steps_memory.py PIPELINE
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path


def resident_gb() -> float:
    """This process's resident memory now, in GB (from /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1e6
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline", type=Path)
    args = parser.parse_args()
    from leadml.core.config import load_pipeline
    from leadml.jobs.train import run_training

    started = time.perf_counter()

    def report(message: str) -> None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        print(f"{time.perf_counter() - started:7.1f} s  now {resident_gb():.2f} GB  peak {peak:.2f} GB  | {message}",
              flush=True)  # fmt: skip

    config = load_pipeline(args.pipeline)
    report("start")
    run_training(config, progress=report)
    report("done")


if __name__ == "__main__":
    main()
