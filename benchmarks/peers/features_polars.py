"""The features peer in polars: counts per event type and window, days since the last event of each type.

    python benchmarks/peers/features_polars.py LEADS EVENTS AS_OF OUT

One row per lead created at or before AS_OF (the open leads of a pipeline without outcomes), from
the events strictly before AS_OF; Parquet in (lazy scans, so only the columns used are read),
Parquet out, Float32 columns (leadml writes float32). Aggregated per lead and type, then pivoted.
"""

from __future__ import annotations

import sys
from datetime import datetime

import polars as pl

WINDOWS = (7, 30, 90)
DAY_NS = 86_400 * 10**9


def main(leads: str, events: str, as_of: str, out: str) -> None:
    stamp = datetime.fromisoformat(as_of.replace("Z", "+00:00"))
    stamp_ns = int(stamp.timestamp()) * 10**9
    open_leads = pl.scan_parquet(leads).filter(pl.col("created_at") <= stamp).select(pl.col("lead_id").cast(pl.String))
    seen = (
        pl.scan_parquet(events)
        .select(pl.col("lead_id").cast(pl.String), pl.col("event_type").cast(pl.String), "timestamp")
        .filter(pl.col("timestamp") < stamp)
        .with_columns(age=pl.lit(stamp_ns) - pl.col("timestamp").dt.epoch("ns"))
    )
    by_type = (
        seen.join(open_leads, on="lead_id", how="semi")
        .group_by("lead_id", "event_type")
        .agg(
            *[(pl.col("age") <= days * DAY_NS).sum().alias(f"count_{days}d") for days in WINDOWS],
            (pl.col("age").min() / DAY_NS).alias("days_since_last"),
        )
        .collect()
    )
    values = [f"count_{days}d" for days in WINDOWS] + ["days_since_last"]
    wide = by_type.pivot(on="event_type", index="lead_id", values=values, separator="|")
    renamed = {name: "__".join(reversed(name.split("|", 1))) for name in wide.columns if "|" in name}
    wide = wide.rename(renamed)
    table = open_leads.collect().join(wide, on="lead_id", how="left")
    counts = [name for name in table.columns if "__count_" in name]
    table = table.with_columns(
        *[pl.col(name).fill_null(0).cast(pl.Float32) for name in counts],
        *[pl.col(name).cast(pl.Float32) for name in table.columns if name.endswith("__days_since_last")],
    )
    table.write_parquet(out)


if __name__ == "__main__":
    main(*sys.argv[1:5])
