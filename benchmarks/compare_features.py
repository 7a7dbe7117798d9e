"""``leadml features`` beside DuckDB and polars: the features of every open lead at one as_of.

leadml's line is a whole ``leadml features PIPELINE --as-of T --out f.parquet`` process on simulated
Parquet tables (``case.feature_leads`` leads, about 20 events each; a pipeline of leads and events,
no outcomes, so every lead created by T is open; T is the midnight after the last lead's creation):
the data contract's checks, the profile and behaviour features (counts per type and window, days
since last, totals, active days, decay, velocity, lead age), written to Parquet. The peers
(``peers/features_duckdb.py``, ``peers/features_polars.py``) read the same Parquet files and write
what they simply express: counts per type and window and days since the last event of each type,
for the leads created by T. Agreement: the same leads; every shared count equal; days since last
within 2e-6 days (float32) and missing for the same leads and types.
"""

from __future__ import annotations

import sys
from pathlib import Path

from harness import Command, Comparison, alternate
from run import simulated

SPEED_TARGETS = {"DuckDB": 2.5, "polars": 1.5}
PEAK_TARGET_MB = 1_000.0
DAYS_TOLERANCE = 2e-6
HERE = Path(__file__).resolve().parent
PIPELINE = """\
name: features-benchmark
data:
  source: tables
  leads: {folder}/leads.parquet
  events: {folder}/events.parquet
"""


def as_of_after(leads: Path) -> str:
    """The midnight (UTC) after the last lead's creation: every lead is open, every event is before it."""
    import pandas as pd
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    last = pc.max(pq.read_table(leads, columns=["created_at"]).column("created_at")).as_py()
    return (pd.Timestamp(last).tz_convert("UTC").normalize() + pd.Timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def agreement(ours: Path, theirs: Path) -> tuple[str, bool]:
    """Whether both outputs hold the same leads and the same shared cells, in words."""
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    shared = [name for name in pq.read_schema(theirs).names if name != "lead_id"]
    missing = [name for name in shared if name not in pq.read_schema(ours).names]
    if missing:
        return f"leadml has no column {missing[0]!r}", False
    a = pd.read_parquet(ours, columns=["lead_id", *shared]).set_index("lead_id").sort_index()
    b = pd.read_parquet(theirs, columns=["lead_id", *shared]).set_index("lead_id").sort_index()[a.columns]
    if not a.index.equals(b.index):
        return f"different leads: leadml {len(a):,}, peer {len(b):,}", False
    counts = [name for name in shared if "__count_" in name]
    days = [name for name in shared if name.endswith("__days_since_last")]
    differing = int((a[counts].to_numpy() != b[counts].to_numpy()).sum())
    ours_days, their_days = a[days].to_numpy(dtype="float64"), b[days].to_numpy(dtype="float64")
    nan_mismatch = int((np.isnan(ours_days) != np.isnan(their_days)).sum())
    gap = float(np.nanmax(np.abs(ours_days - their_days))) if np.isfinite(ours_days).any() else 0.0
    words = (
        f"{len(a):,} leads, {len(counts)} count columns ({differing} cells differ), {len(days)} days-since "
        f"columns (max diff {gap:.1e} d, {nan_mismatch} missing mismatches)"
    )
    return words, differing == 0 and nan_mismatch == 0 and gap <= DAYS_TOLERANCE


def compare(case, work: Path, rounds: int) -> list[Comparison]:
    folder = simulated(work, case.feature_leads)
    leads, events = folder / "leads.parquet", folder / "events.parquet"
    pipeline = work / f"features-{case.feature_leads}.yaml"
    pipeline.write_text(PIPELINE.format(folder=folder))
    as_of = as_of_after(leads)
    ours = work / "features-leadml.parquet"
    leadml = Command(
        "leadml features",
        [sys.executable, "-m", "leadml", "features", str(pipeline), "--as-of", as_of, "--out", str(ours)],
    )
    lines = []
    for name, script in (("DuckDB", "features_duckdb.py"), ("polars", "features_polars.py")):
        theirs = work / f"features-{name.lower()}.parquet"
        peer = Command(
            name, [sys.executable, str(HERE / "peers" / script), str(leads), str(events), as_of, str(theirs)]
        )
        runs, peer_runs = alternate(leadml, peer, rounds=rounds)
        words, agreed = agreement(ours, theirs)
        lines.append(
            Comparison(
                work=f"features of {case.feature_leads:,} open leads at one as_of",
                leadml=runs,
                peer=peer_runs,
                agreement=words,
                agreed=agreed,
                speed_target=SPEED_TARGETS[name],
                peak_target_mb=PEAK_TARGET_MB,
            )
        )
    return lines
