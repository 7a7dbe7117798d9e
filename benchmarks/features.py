"""Benchmark: behaviour features from Parquet to Parquet, leadml's kernel against DuckDB SQL.

Makes simulated leads and events (``leadml.data.simulate.world``, thinned to the requested number of
events), one snapshot per lead (as_of = created_at + 60 days), then times in fresh processes:

- leadml: :func:`behaviour_features_from_parquet`, every event type, windows 7/30/90 (counts, days
  since last, totals, active days, decayed engagement, velocity, lead age);
- DuckDB: the same counts per type and window plus days since last, written directly in SQL
  (a subset of leadml's columns; aggregated per lead and type, then pivoted, which was the
  fastest of the formulations tried), read from and written to Parquet.

Each step runs in its own process; its peak memory is that process's maximum resident set size,
"seconds" time the Parquet-to-Parquet call inside it, "process" adds Python's start and imports,
"cpu" is the CPU time of all its threads (DuckDB uses both cores; leadml computes on one and
encodes the output Parquet on a second thread), "load" the machine's 1-minute load average as
the step started. The two outputs (both float32) are compared on the columns they share.

    python benchmarks/features.py                        # 500,000 leads, 10,000,000 events
    python benchmarks/features.py --events 100000000     # 5,000,000 leads, hash partitions
    python benchmarks/features.py --dir DIR --reuse      # keep the data in DIR and time again

With more than 20 million events the input is generated in parts (one simulation per part, lead
ids prefixed by the part) and leadml processes leads in hash partitions
(:func:`behaviour_features_partitioned`).
"""

from __future__ import annotations

import argparse
import json
import os

# The same setting the `leadml` command makes before numpy loads (see leadml/cli.py).
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EVENTS_PER_LEAD = 20
LEADS_PER_PART = 500_000
WINDOWS = (7, 30, 90)
AS_OF_DAYS = 60
DAY_NS = 86_400 * 10**9


# -- steps, each run in a fresh process ---------------------------------------------------------
def generate_part(folder: Path, part: int, n_leads: int, n_events: int, prefix: bool) -> dict:
    """Simulate one part; thin its events to ``n_events``; write events and snapshots Parquet."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from leadml.data.simulate import simulate

    sim = simulate(n_leads, seed=1000 + part)
    events = sim.events
    rng = np.random.default_rng(part)
    if len(events) > n_events:
        events = events.loc[rng.random(len(events)) < n_events / len(events)].reset_index(drop=True)
    leads = sim.leads[["lead_id", "created_at"]]
    if prefix:
        events["lead_id"] = f"P{part:03d}-" + events["lead_id"]
        leads = leads.assign(lead_id=f"P{part:03d}-" + leads["lead_id"])
    snapshots = leads.assign(as_of=leads["created_at"] + pd.Timedelta(days=AS_OF_DAYS))
    events_path = folder / "events" / f"part-{part:03d}.parquet"
    events_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(events, preserve_index=False), events_path, row_group_size=1_000_000)
    snapshots.to_parquet(folder / "snapshots" / f"part-{part:03d}.parquet", index=False)
    return {"events": len(events), "leads": len(leads)}


def run_leadml(snapshots: Path, events: Path, out: Path, partitions: int) -> dict:
    from leadml.features.behaviour.parquet import behaviour_features_from_parquet
    from leadml.features.behaviour.partitioned import behaviour_features_partitioned

    start = time.perf_counter()
    if partitions > 1:
        infos = behaviour_features_partitioned(snapshots, events, out, n_partitions=partitions, windows=WINDOWS)
    else:
        infos = behaviour_features_from_parquet(snapshots, events, out, windows=WINDOWS)
    return {"columns": len(infos), "seconds": time.perf_counter() - start}


def run_duckdb(snapshots: Path, events: Path, out: Path) -> dict:
    import duckdb
    import pyarrow.parquet as pq

    source = str(events / "*.parquet") if events.is_dir() else str(events)
    con = duckdb.connect()
    types = [
        row[0] for row in con.execute(f"SELECT DISTINCT event_type FROM read_parquet('{source}') ORDER BY 1").fetchall()
    ]
    # narrow first (one row per lead and type), then pivot: ~2.5x faster in DuckDB than 60
    # filtered aggregates over the joined rows; FLOAT columns, as leadml writes (float32)
    pivot = []
    for kind in types:
        for days in WINDOWS:
            pivot.append(
                f"coalesce(sum(c{days}) FILTER (WHERE event_type = '{kind}'), 0)::FLOAT AS \"{kind}__count_{days}d\""
            )
        pivot.append(f"(min(since) FILTER (WHERE event_type = '{kind}'))::FLOAT AS \"{kind}__days_since_last\"")
    counts = ", ".join(f"count(*) FILTER (WHERE age <= {days * DAY_NS}) AS c{days}" for days in WINDOWS)
    query = f"""
        COPY (
            WITH seen AS (
                SELECT s.lead_id, s.as_of, e.event_type, epoch_ns(s.as_of) - epoch_ns(e.timestamp) AS age
                FROM read_parquet('{snapshots}') s
                LEFT JOIN read_parquet('{source}') e ON e.lead_id = s.lead_id AND e.timestamp < s.as_of
            ),
            by_type AS (
                SELECT lead_id, as_of, event_type, {counts}, min(age) / {DAY_NS}.0 AS since
                FROM seen GROUP BY lead_id, as_of, event_type
            )
            SELECT lead_id, as_of, {", ".join(pivot)}
            FROM by_type
            GROUP BY lead_id, as_of
        ) TO '{out}' (FORMAT parquet)
    """
    start = time.perf_counter()
    con.execute(query)
    seconds = time.perf_counter() - start
    return {"columns": 4 * len(types), "rows": pq.ParquetFile(out).metadata.num_rows, "seconds": seconds}


def compare(leadml_out: Path, duckdb_out: Path) -> dict:
    """Largest differences between the two outputs on their shared columns, matched by lead."""
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    shared = [c for c in pq.ParquetFile(duckdb_out).schema_arrow.names if c != "as_of"]
    ours = pd.read_parquet(leadml_out, columns=shared).set_index("lead_id").sort_index()
    theirs = pd.read_parquet(duckdb_out, columns=shared).set_index("lead_id").sort_index()[ours.columns]
    counts = [c for c in ours.columns if "__count_" in c]
    days = [c for c in ours.columns if c.endswith("__days_since_last")]
    return {
        "rows_equal": bool(ours.index.equals(theirs.index)),
        "count_cells_differing": int((ours[counts].to_numpy() != theirs[counts].to_numpy()).sum()),
        "days_since_max_abs_diff": float(np.nanmax(np.abs(ours[days].to_numpy() - theirs[days].to_numpy()))),
        "days_since_nan_mismatch": int((np.isnan(ours[days].to_numpy()) != np.isnan(theirs[days].to_numpy())).sum()),
    }


# -- driver -------------------------------------------------------------------------------------
def measured(step: str, *args: str) -> tuple[float, float, dict]:
    """Run ``step`` in a fresh Python process: (seconds, peak RSS in MB, its JSON result).

    The result also gets ``cpu``: the process's user + system CPU seconds (all its threads), and
    ``load``: the 1-minute load average as the step started (other jobs on the machine).
    """
    command = [sys.executable, __file__, "--step", step, *args]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    output = process.stdout.read().decode()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"step {step} failed with exit code {process.returncode}")
    result = json.loads(output.strip().splitlines()[-1])
    result["cpu"] = usage.ru_utime + usage.ru_stime
    result["load"] = load
    return seconds, usage.ru_maxrss / 1024, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="number of events (default 10,000,000)")
    parser.add_argument("--leads", type=int, default=None, help=f"number of leads (default events / {EVENTS_PER_LEAD})")
    parser.add_argument(
        "--partitions", type=int, default=None, help="hash partitions (default: 1 up to 20M events, else events / 6M)"
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help="work folder (default: a temp folder, removed at the end)"
    )
    parser.add_argument("--skip-duckdb", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="reuse the data already generated in --dir")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.step:
        print(json.dumps(_dispatch(options.step, options.args)))
        return

    leads = options.leads or options.events // EVENTS_PER_LEAD
    partitions = options.partitions or (1 if options.events <= 20_000_000 else -(-options.events // 6_000_000))
    folder = options.dir or Path(tempfile.mkdtemp(prefix="leadml-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "snapshots").mkdir(exist_ok=True)
    n_parts = max(1, -(-leads // LEADS_PER_PART))
    snapshots = folder / "snapshots.parquet"
    if not (options.reuse and snapshots.exists()):
        print(f"generating {leads:,} leads, ~{options.events:,} events in {n_parts} part(s) into {folder}", flush=True)
        gen_seconds = 0.0
        for part in range(n_parts):
            part_leads = leads // n_parts + (part < leads % n_parts)
            part_events = options.events * part_leads // leads
            seconds, _, _ = measured(
                "generate", str(folder), str(part), str(part_leads), str(part_events), str(int(n_parts > 1))
            )
            gen_seconds += seconds
        _combine(sorted((folder / "snapshots").glob("*.parquet")), snapshots)
        print(f"generated in {gen_seconds:.0f} s", flush=True)
    files = sorted((folder / "events").glob("*.parquet"))
    events = folder / "events" if len(files) > 1 else files[0]
    import pyarrow.parquet as pq

    made = {
        "events": sum(pq.ParquetFile(f).metadata.num_rows for f in files),
        "leads": pq.ParquetFile(snapshots).metadata.num_rows,
    }
    size_mb = sum(f.stat().st_size for f in files) / 1e6
    print(
        f"data: {made['leads']:,} leads (one snapshot each), {made['events']:,} events ({size_mb:,.0f} MB Parquet)",
        flush=True,
    )

    n = made["events"]
    print(
        "seconds = the Parquet-to-Parquet call; process = the same plus Python start and imports; "
        "cpu = CPU seconds of the process (all threads)",
        flush=True,
    )
    process, peak, result = measured(
        "leadml", str(snapshots), str(events), str(folder / "leadml.parquet"), str(partitions)
    )
    seconds = result["seconds"]
    print(
        f"leadml  : {seconds:7.2f} s  {n / seconds / 1e6:6.2f} M events/s  (process {process:.2f} s, "
        f"{n / process / 1e6:.2f} M/s, cpu {result['cpu']:.2f} s)  peak {peak:6.0f} MB  {result['columns']} features, "
        f"{partitions} partition(s), load {result['load']:.1f}",
        flush=True,
    )
    if not options.skip_duckdb:
        process_db, peak_db, result_db = measured("duckdb", str(snapshots), str(events), str(folder / "duckdb.parquet"))
        seconds_db = result_db["seconds"]
        print(
            f"duckdb  : {seconds_db:7.2f} s  {n / seconds_db / 1e6:6.2f} M events/s  (process {process_db:.2f} s, "
            f"{n / process_db / 1e6:.2f} M/s, cpu {result_db['cpu']:.2f} s)  peak {peak_db:6.0f} MB  {result_db['columns']} columns "
            f"(counts per type and window + days since last), load {result_db['load']:.1f}",
            flush=True,
        )
        print(f"leadml / duckdb speed: {seconds_db / seconds:.2f}x (process: {process_db / process:.2f}x)", flush=True)
        _, _, diff = measured("compare", str(folder / "leadml.parquet"), str(folder / "duckdb.parquet"))
        diff = {k: v for k, v in diff.items() if k not in ("cpu", "load")}
        print(f"agreement on shared columns: {diff}", flush=True)
    if options.dir is None:
        shutil.rmtree(folder)


def _combine(paths: list[Path], target: Path) -> None:
    import pyarrow.parquet as pq

    with pq.ParquetWriter(target, pq.read_schema(paths[0])) as writer:
        for path in paths:
            writer.write_table(pq.read_table(path))


def _dispatch(step: str, args: list[str]) -> dict:
    if step == "generate":
        folder, part, n_leads, n_events, prefix = args
        return generate_part(Path(folder), int(part), int(n_leads), int(n_events), prefix == "1")
    if step == "leadml":
        return run_leadml(Path(args[0]), Path(args[1]), Path(args[2]), int(args[3]))
    if step == "duckdb":
        return run_duckdb(Path(args[0]), Path(args[1]), Path(args[2]))
    if step == "compare":
        return compare(Path(args[0]), Path(args[1]))
    raise SystemExit(f"unknown step {step!r}")


if __name__ == "__main__":
    main()
