"""The score history store: each scoring run's scores kept by day.

``leadml score`` appends its scores to a Parquet dataset partitioned by the day of as_of
(``as_of_date=2026-06-01/scores.parquet``, hive style, so DuckDB, Spark or pyarrow read the folder
as one table). Re-scoring a day replaces that day's file (written to a temp file, then renamed),
so a re-run never duplicates rows. What the history says about leads (warming up, stuck MQLs,
one lead over time) is read by :mod:`leadml.explain.trends`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from leadml.core.config import PipelineConfig
from leadml.core.errors import LeadDataError
from leadml.features.snapshots import to_utc

__all__ = ["HISTORY_COLUMNS", "history_path", "keep_history", "load_history", "record_scores"]

HISTORY_COLUMNS = (
    "lead_id",
    "as_of",
    "model_name",
    "model_version",
    "probability",
    "score",
    "tier",
    "is_mql",
    "fit_score",
    "engagement_score",
    "grid_tier",
    "next_action",
    "due_at",
    "reason_1",
)
PARTITION = "as_of_date"
DAY = pd.Timedelta(days=1)


def history_path(config: PipelineConfig, scores_out: str | os.PathLike | None = None) -> Path:
    """The pipeline's history folder: ``history.path``, else ``score_history`` beside the scores file."""
    if config.history.path is not None:
        return Path(config.history.path)
    return (Path(scores_out).parent if scores_out is not None else Path.cwd()) / "score_history"


def _partition(store: Path, day: pd.Timestamp) -> Path:
    return store / f"{PARTITION}={day:%Y-%m-%d}"


def record_scores(scores: pd.DataFrame | pa.Table | str | os.PathLike, store: str | os.PathLike) -> Path:
    """Put one run's scores (a frame, table or scores file) into the history; returns the day's file.

    All rows must share one as_of day. The day's file is replaced whole, atomically.
    """
    if isinstance(scores, (str, os.PathLike)):
        path = Path(scores)
        if path.suffix == ".csv":
            frame = pd.read_csv(path, dtype={"lead_id": str})
            frame["as_of"] = pd.to_datetime(frame["as_of"], utc=True, format="ISO8601")
            table = pa.Table.from_pandas(frame, preserve_index=False)
        else:
            table = pq.read_table(path) if path.is_file() else ds.dataset(path, format="parquet").to_table()
    elif isinstance(scores, pd.DataFrame):
        table = pa.Table.from_pandas(scores, preserve_index=False)
    else:
        table = scores
    keep = [c for c in HISTORY_COLUMNS if c in table.column_names]
    if "lead_id" not in keep or "as_of" not in keep or "score" not in keep:
        raise LeadDataError(f"scores: the history needs lead_id, as_of and score columns, got {table.column_names}")
    table = table.select(keep)
    as_of = pd.to_datetime(table.column("as_of").to_pandas(), utc=True)
    days = as_of.dt.floor("D").unique()
    if len(days) != 1:
        raise LeadDataError(f"scores: one run has one as_of day; these scores have {len(days)} "
                            f"(e.g. {[f'{d:%Y-%m-%d}' for d in days[:3]]})")  # fmt: skip
    folder = _partition(Path(store), days[0])
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "scores.parquet"
    temp = folder / f".scores.parquet.{os.getpid()}.tmp"
    try:
        pq.write_table(table, temp)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return target


def load_history(
    store: str | os.PathLike, *, lead_ids: Sequence[str] | None = None, since: object = None, until: object = None
) -> pd.DataFrame:
    """The history (optionally some leads, as_of in ``[since, until]``), ordered by lead_id, as_of."""
    store = Path(store)
    if not store.is_dir() or not any(store.glob(f"{PARTITION}=*/scores.parquet")):
        raise LeadDataError(f"{store}: no score history here yet (run `leadml score` first)")
    dataset = ds.dataset(sorted(str(p) for p in store.glob(f"{PARTITION}=*/scores.parquet")), format="parquet")
    condition = None
    if lead_ids is not None:
        condition = ds.field("lead_id").isin(pa.array([str(i) for i in lead_ids], pa.string()))
    frame = dataset.to_table(filter=condition).to_pandas()
    frame["as_of"] = pd.to_datetime(frame["as_of"], utc=True)
    if since is not None:
        frame = frame[frame["as_of"] >= to_utc(since)]
    if until is not None:
        frame = frame[frame["as_of"] <= to_utc(until)]
    return frame.sort_values(["lead_id", "as_of"], kind="stable").reset_index(drop=True)


def keep_history(config: PipelineConfig, summary, history: bool | None) -> None:
    """Append the written scores to the pipeline's score history (replacing the same day's)."""
    if not (config.history.enabled if history is None else history) or not summary.rows:
        return
    summary.history_path = history_path(config, summary.out)
    record_scores(summary.out, summary.history_path)
