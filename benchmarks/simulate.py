"""Benchmark: the simulator streaming leads, events, outcomes and truth to Parquet.

For each requested size, :func:`leadml.data.simulate.world.write_simulation` runs in a fresh process
(so the sizes do not share caches or memory). Reported per size: wall-clock seconds of the call
(the one-off intercept calibration included), events written and events per second, the peak
resident memory of the child (its ``ru_maxrss``, cross-checked by sampling its RSS with psutil
every 20 ms) and the size of the written files.

    python benchmarks/simulate.py --leads 100000 1000000
    python benchmarks/simulate.py --leads 1000000 --out /data/sim   # keep the files
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_child(n_leads: int, seed: int, out: Path) -> None:
    """The measured step: write one simulation and print its figures as JSON."""
    import pyarrow.parquet as pq

    from leadml.data.simulate import write_simulation

    started = time.perf_counter()
    paths = write_simulation(out, n_leads, seed)
    seconds = time.perf_counter() - started
    rows = {name: pq.ParquetFile(path).metadata.num_rows for name, path in paths.items()}
    print(json.dumps({
        "seconds": seconds,
        "rows": rows,
        "bytes": sum(path.stat().st_size for path in paths.values()),
        "maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # KiB on Linux
    }))  # fmt: skip


def measure(n_leads: int, seed: int, out: Path) -> dict:
    """Run one size in a fresh interpreter; sample its RSS while it runs."""
    import psutil

    command = [sys.executable, __file__, "--child", str(n_leads), "--seed", str(seed), "--out", str(out)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    sampled = 0
    watched = psutil.Process(child.pid)
    while child.poll() is None:
        try:
            sampled = max(sampled, watched.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    stdout, _ = child.communicate()
    if child.returncode != 0:
        raise SystemExit(f"simulate benchmark: the child for {n_leads} leads failed ({child.returncode})")
    figures = json.loads(stdout.strip().splitlines()[-1])
    figures["sampled_rss_bytes"] = sampled
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write here (one folder per size); default: a temp dir")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        run_child(args.child, args.seed, args.out)
        return

    header = f"{'leads':>10} {'events':>12} {'seconds':>8} {'events/s':>11} {'peak RSS':>9} {'sampled':>9} {'files':>8}"
    print(header)
    with tempfile.TemporaryDirectory(prefix="leadml-bench-sim-") as scratch:
        for n_leads in args.leads:
            out = (args.out or Path(scratch)) / f"sim-{n_leads}"
            fig = measure(n_leads, args.seed, out)
            events = fig["rows"]["events"]
            print(
                f"{n_leads:>10,} {events:>12,} {fig['seconds']:>8.1f} {events / fig['seconds']:>11,.0f} "
                f"{fig['maxrss_bytes'] / 2**30:>7.2f} G {fig['sampled_rss_bytes'] / 2**30:>7.2f} G "
                f"{fig['bytes'] / 2**20:>6.0f} M",
                flush=True,
            )


if __name__ == "__main__":
    main()
