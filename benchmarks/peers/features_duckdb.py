"""The features peer in DuckDB SQL: counts per event type and window, days since the last event of each type.

    python benchmarks/peers/features_duckdb.py LEADS EVENTS AS_OF OUT

One row per lead created at or before AS_OF (the open leads of a pipeline without outcomes), from
the events strictly before AS_OF; Parquet in, Parquet out, FLOAT columns (leadml writes float32).
The query is benchmarks/features.py's: one row per lead and type first, then pivoted (the fastest
of the formulations tried there).
"""

from __future__ import annotations

import sys

import duckdb

WINDOWS = (7, 30, 90)
DAY_NS = 86_400 * 10**9


def main(leads: str, events: str, as_of: str, out: str) -> None:
    con = duckdb.connect()
    stamp = f"TIMESTAMPTZ '{as_of}'"
    types = [
        row[0] for row in con.execute(f"SELECT DISTINCT event_type FROM read_parquet('{events}') ORDER BY 1").fetchall()
    ]
    pivot = []
    for kind in types:
        for days in WINDOWS:
            pivot.append(
                f"coalesce(sum(c{days}) FILTER (WHERE event_type = '{kind}'), 0)::FLOAT AS \"{kind}__count_{days}d\""
            )
        pivot.append(f"(min(since) FILTER (WHERE event_type = '{kind}'))::FLOAT AS \"{kind}__days_since_last\"")
    counts = ", ".join(f"count(timestamp) FILTER (WHERE age <= {days * DAY_NS}) AS c{days}" for days in WINDOWS)
    con.execute(f"""
        COPY (
            WITH open_leads AS (
                SELECT lead_id FROM read_parquet('{leads}') WHERE created_at <= {stamp}
            ),
            seen AS (
                SELECT l.lead_id, e.event_type, e.timestamp, epoch_ns({stamp}) - epoch_ns(e.timestamp) AS age
                FROM open_leads l
                LEFT JOIN read_parquet('{events}') e ON e.lead_id = l.lead_id AND e.timestamp < {stamp}
            ),
            by_type AS (
                SELECT lead_id, event_type, {counts}, min(age) / {DAY_NS}.0 AS since
                FROM seen GROUP BY lead_id, event_type
            )
            SELECT lead_id, {", ".join(pivot)} FROM by_type GROUP BY lead_id
        ) TO '{out}' (FORMAT parquet)
    """)


if __name__ == "__main__":
    main(*sys.argv[1:5])
