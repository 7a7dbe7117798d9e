"""The score history store: each scoring run's scores kept by day.

``leadml score`` appends its scores to a Parquet dataset partitioned by the day of as_of
(``as_of_date=2026-06-01/scores.parquet``, hive style, so DuckDB, Spark or pyarrow read the folder
as one table). Re-scoring a day replaces that day's file (written to a temp file, then renamed),
so a re-run never duplicates rows. What the history says about leads (warming up, stuck MQLs,
one lead over time) is read by :mod:`leadml.explain.trends`.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from leadml.core.config import PipelineConfig
from leadml.core.errors import LeadDataError
from leadml.data.contract import LeadDataWarning
from leadml.data.io import atomic_output, output_error, read_output
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
    "mql_route",
    "next_action",
    "due_at",
    "mql_since",
    "overdue",
    "out_of_range",
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

    All rows must share one as_of day. The day's file is replaced whole, atomically: a failed write
    (disk full, read-only store) raises :class:`~leadml.core.errors.OutputError` naming the file and
    leaves the day as it was (a new day's folder is removed again).
    """
    if isinstance(scores, (str, os.PathLike)):
        path = Path(scores)
        if path.suffix == ".csv":
            frame = read_output(path, text_columns=["lead_id"])  # leadml's own CSV: the formula guard comes off
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
    target = folder / "scores.parquet"
    new_day = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(target, exc) from exc
    try:
        with atomic_output(target) as temp:
            pq.write_table(table, temp)
    except BaseException:
        if new_day:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty
        raise
    return target


def load_history(
    store: str | os.PathLike,
    *,
    lead_ids: Sequence[str] | None = None,
    since: object = None,
    until: object = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The history (optionally some leads, as_of in ``[since, until]``), ordered by lead_id, as_of.

    ``columns``: only these (those a day lacks are missing there); ``lead_id`` and ``as_of`` always.

    A day whose file cannot be read (truncated, not Parquet) is left out with a
    :class:`~leadml.data.contract.LeadDataWarning` naming the file and the day; the other days load.
    When no day can be read, :class:`~leadml.core.errors.LeadDataError` names the files.
    """
    store = Path(store)
    files = sorted(store.glob(f"{PARTITION}=*/scores.parquet")) if store.is_dir() else []
    if not files:
        raise LeadDataError(f"{store}: no score history here yet (run `leadml score` first)")
    condition = None
    if lead_ids is not None:
        condition = ds.field("lead_id").isin(pa.array([str(i) for i in lead_ids], pa.string()))
    tables, damaged = [], []
    for file in files:
        try:
            day = ds.dataset(str(file), format="parquet")
            wanted = None if columns is None else [c for c in day.schema.names if c in {"lead_id", "as_of", *columns}]
            tables.append(day.to_table(columns=wanted, filter=condition))
        except (pa.ArrowException, OSError) as exc:
            damaged.append(file)
            _warn_damaged(file, exc)
    if not tables:
        names = ", ".join(str(file) for file in damaged)
        raise LeadDataError(f"{store}: no day of the score history can be read (damaged: {names}); score again")
    frame = pa.concat_tables(tables, promote_options="permissive").to_pandas()
    frame["as_of"] = pd.to_datetime(frame["as_of"], utc=True)
    if since is not None:
        frame = frame[frame["as_of"] >= to_utc(since)]
    if until is not None:
        frame = frame[frame["as_of"] <= to_utc(until)]
    return frame.sort_values(["lead_id", "as_of"], kind="stable").reset_index(drop=True)


def _warn_damaged(file: Path, exc: BaseException) -> None:
    """Warn, in one line, that the day stored in ``file`` is left out of the history."""
    day = file.parent.name.removeprefix(f"{PARTITION}=")
    reason = "the file is damaged (truncated or not Parquet)"
    if isinstance(exc, OSError) and exc.errno is not None and exc.strerror:
        reason = f"the file cannot be read ({exc.strerror.splitlines()[0]})"
    message = f"{file}: the score history of {day} is left out: {reason}; score that day again to replace it"
    warnings.warn(LeadDataWarning(message, "damaged_history", 1), stacklevel=3)


def keep_history(config: PipelineConfig, summary, history: bool | None) -> None:
    """Append the written scores to the pipeline's score history (replacing the same day's)."""
    if not (config.history.enabled if history is None else history) or not summary.rows:
        return
    summary.history_path = history_path(config, summary.out)
    record_scores(summary.out, summary.history_path)
