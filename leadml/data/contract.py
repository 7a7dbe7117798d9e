"""The data contract: the columns, types and rules every input table must follow.

After loading, every table has ``lead_id`` as string, timestamps as timezone-aware UTC
(``datetime64[ns, UTC]``) and ``event_type`` as a category. Bad input raises :class:`LeadDataError`
whose message names the file, the column, how many rows are bad and a few of them. Problems that do
not stop the work (events before their lead's creation, dropped orphan events) are reported as a
:class:`LeadDataWarning` with a count, never silently.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from leadml.data.io import read_table
from leadml.errors import LeadDataError

LEADS_REQUIRED = ("lead_id", "created_at")
EVENTS_REQUIRED = ("lead_id", "timestamp", "event_type")
OUTCOMES_REQUIRED = ("lead_id", "outcome", "closed_at")
LABEL_COLUMN = "converted"

WON_VALUES = {"won", "win", "1", "1.0", "true", "yes", "y", "converted"}
LOST_VALUES = {"lost", "lose", "0", "0.0", "false", "no", "n", "not converted"}

OrphanPolicy = Literal["error", "drop"]


class LeadDataWarning(UserWarning):
    """A problem in the input that does not stop the work; the message carries the count."""


def _examples(frame: pd.DataFrame, mask: np.ndarray | pd.Series, column: str, n: int = 3) -> str:
    """Describe up to ``n`` offending rows as ``row 4 (lead_id=L1, timestamp='x')``.

    Row numbers are 1-based data rows (the header is not counted).
    """
    positions = np.flatnonzero(np.asarray(mask))[:n]
    parts = []
    for pos in positions:
        row = frame.iloc[pos]
        shown = [f"{column}={row[column]!r}"] if column in frame.columns else []
        if column != "lead_id" and "lead_id" in frame.columns:
            shown.insert(0, f"lead_id={row['lead_id']!r}")
        parts.append(f"row {pos + 1} ({', '.join(shown)})")
    return "; ".join(parts)


def _source(source: str | os.PathLike | None, table: str) -> str:
    return str(source) if source is not None else f"<{table} table>"


def check_not_empty(frame: pd.DataFrame, source: str) -> None:
    """Raise when the table has no rows."""
    if len(frame) == 0:
        raise LeadDataError(f"{source}: the table is empty (0 rows); it needs at least one row")


def check_required(frame: pd.DataFrame, required: Sequence[str], source: str, table: str) -> None:
    """Raise naming every required column that is missing and the columns that are there."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        have = ", ".join(map(str, list(frame.columns)[:12]))
        raise LeadDataError(
            f"{source}: missing required column(s) {', '.join(repr(c) for c in missing)} in the "
            f"{table} table (columns present: {have}); map your names in the pipeline's `columns:`"
        )


def apply_column_map(frame: pd.DataFrame, columns: Mapping[str, str] | None) -> pd.DataFrame:
    """Rename the user's column names to the contract's names (``{contract_name: user_name}``)."""
    if not columns:
        return frame
    renames = {user: ours for ours, user in columns.items() if user in frame.columns and user != ours}
    return frame.rename(columns=renames)


def parse_lead_ids(frame: pd.DataFrame, source: str, column: str = "lead_id") -> pd.Series:
    """Return ``column`` as strings; missing or empty ids raise naming the rows."""
    values = frame[column]
    if pd.api.types.is_float_dtype(values):
        whole = values.dropna()
        if len(whole) and bool(np.all(np.mod(whole.to_numpy(), 1) == 0)):
            values = values.astype("Int64")
    ids = values.astype(str).str.strip()
    missing = values.isna().to_numpy() | (ids == "").to_numpy()
    if missing.any():
        raise LeadDataError(
            f"{source}: column '{column}' has {int(missing.sum())} missing or empty values "
            f"(first rows: {_examples(frame, missing, column)}); every row needs an id"
        )
    return ids.astype(object).astype(str)


def parse_timestamps(frame: pd.DataFrame, column: str, source: str) -> pd.Series:
    """Parse ``column`` to ``datetime64[ns, UTC]``; naive values are taken as UTC.

    Missing values, values that are not dates, and plain numbers (ambiguous epochs) raise naming
    the rows.
    """
    values = frame[column]
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
    elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        raise LeadDataError(
            f"{source}: column '{column}' holds numbers, not dates (first rows: "
            f"{_examples(frame, np.ones(len(frame), bool), column)}); use ISO 8601, e.g. 2026-03-01T12:00:00Z"
        )
    else:
        text = values.astype(object).where(values.notna(), None)
        try:
            parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="raise")
        except (ValueError, TypeError, OverflowError):
            parsed = _parse_mixed(text)
    parsed = parsed.dt.as_unit("ns")
    bad = parsed.isna().to_numpy()
    if bad.any():
        blank = values.isna().to_numpy() | (values.astype(str).str.strip() == "").to_numpy()
        kind = "missing" if np.all(blank[bad]) else "missing or unparseable"
        raise LeadDataError(
            f"{source}: column '{column}' has {int(bad.sum())} {kind} timestamps "
            f"(first rows: {_examples(frame, bad, column)}); use ISO 8601, e.g. 2026-03-01T12:00:00Z"
        )
    return parsed


def _parse_mixed(text: pd.Series) -> pd.Series:
    """Parse values one format at a time (mixed formats and time zones); bad ones become NaT."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pd.to_datetime(text, utc=True, format="mixed", errors="coerce")
        except (ValueError, TypeError, OverflowError):
            return pd.Series(
                [pd.to_datetime(v, utc=True, errors="coerce") for v in text], index=text.index
            ).astype("datetime64[ns, UTC]")


def check_unique_ids(frame: pd.DataFrame, source: str, table: str) -> None:
    """Raise when a ``lead_id`` appears more than once in a one-row-per-lead table."""
    dup = frame["lead_id"].duplicated(keep=False).to_numpy()
    if dup.any():
        n_ids = frame.loc[dup, "lead_id"].nunique()
        raise LeadDataError(
            f"{source}: column 'lead_id' has {n_ids} duplicated ids over {int(dup.sum())} rows "
            f"(first rows: {_examples(frame, dup, 'lead_id')}); the {table} table needs one row per lead"
        )


def parse_binary_label(frame: pd.DataFrame, column: str, source: str) -> pd.Series:
    """Map won/lost, yes/no, true/false or 1/0 to an int8 0/1 column; anything else raises."""
    values = frame[column]
    if pd.api.types.is_bool_dtype(values):
        return values.astype("int8")
    text = values.astype(object).where(values.notna(), None)
    norm = pd.Series(
        [None if v is None else str(v).strip().lower() for v in text], index=frame.index, dtype=object
    )
    won = norm.isin(WON_VALUES).to_numpy()
    lost = norm.isin(LOST_VALUES).to_numpy()
    bad = ~(won | lost)
    if bad.any():
        seen = sorted({str(v) for v in values[bad].head(50)})[:5]
        raise LeadDataError(
            f"{source}: column '{column}' has {int(bad.sum())} values that are not a binary outcome "
            f"(seen: {', '.join(seen)}; first rows: {_examples(frame, bad, column)}); "
            "use won/lost, yes/no, true/false or 1/0"
        )
    return pd.Series(won.astype("int8"), index=frame.index, name=column)


def validate_leads(
    leads: pd.DataFrame, source: str | None = None, columns: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Check a leads table and return it typed: ``lead_id`` str, ``created_at`` UTC, unique ids."""
    src = _source(source, "leads")
    leads = apply_column_map(leads, columns)
    check_not_empty(leads, src)
    check_required(leads, LEADS_REQUIRED, src, "leads")
    leads = leads.copy()
    leads["lead_id"] = parse_lead_ids(leads, src)
    check_unique_ids(leads, src, "leads")
    leads["created_at"] = parse_timestamps(leads, "created_at", src)
    return leads.reset_index(drop=True)


def validate_events(
    events: pd.DataFrame,
    source: str | None = None,
    leads: pd.DataFrame | None = None,
    on_orphans: OrphanPolicy = "error",
    columns: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Check an events table and return it typed, sorted by ``lead_id`` then ``timestamp``.

    With ``leads`` given, events of unknown leads raise (``on_orphans="error"``, the default) or are
    dropped with a warning that counts them (``"drop"``); events before their lead's creation are
    kept and counted in a warning.
    """
    src = _source(source, "events")
    events = apply_column_map(events, columns)
    check_not_empty(events, src)
    check_required(events, EVENTS_REQUIRED, src, "events")
    events = events.copy()
    events["lead_id"] = parse_lead_ids(events, src)
    events["timestamp"] = parse_timestamps(events, "timestamp", src)
    kinds = events["event_type"]
    blank = kinds.isna().to_numpy() | (kinds.astype(str).str.strip() == "").to_numpy()
    if blank.any():
        raise LeadDataError(
            f"{src}: column 'event_type' has {int(blank.sum())} missing or empty values "
            f"(first rows: {_examples(events, blank, 'event_type')}); every event needs a type"
        )
    events["event_type"] = kinds.astype(str).str.strip().astype("category")
    if leads is not None:
        events = _check_event_leads(events, leads, src, on_orphans)
    return events.sort_values(["lead_id", "timestamp"], kind="stable").reset_index(drop=True)


def _check_event_leads(
    events: pd.DataFrame, leads: pd.DataFrame, src: str, on_orphans: OrphanPolicy
) -> pd.DataFrame:
    known = events["lead_id"].isin(leads["lead_id"]).to_numpy()
    if not known.all():
        n_orphans = int((~known).sum())
        if on_orphans == "error":
            raise LeadDataError(
                f"{src}: column 'lead_id' has {n_orphans} events of unknown leads "
                f"(first rows: {_examples(events, ~known, 'lead_id')}); fix the export or pass "
                "--drop-orphans to drop them"
            )
        warnings.warn(
            f"{src}: dropped {n_orphans} events of unknown leads (column 'lead_id')",
            LeadDataWarning,
            stacklevel=3,
        )
        events = events.loc[known].reset_index(drop=True)
    created = events["lead_id"].map(leads.set_index("lead_id")["created_at"])
    early = (events["timestamp"] < created).to_numpy()
    if early.any():
        warnings.warn(
            f"{src}: column 'timestamp' has {int(early.sum())} events before their lead's "
            f"created_at (first rows: {_examples(events, early, 'timestamp')}); they are kept",
            LeadDataWarning,
            stacklevel=3,
        )
    return events


def validate_outcomes(
    outcomes: pd.DataFrame,
    source: str | None = None,
    leads: pd.DataFrame | None = None,
    columns: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Check an outcomes table: one row per closed lead, binary ``outcome`` (1 = won), ``closed_at`` UTC."""
    src = _source(source, "outcomes")
    outcomes = apply_column_map(outcomes, columns)
    check_not_empty(outcomes, src)
    check_required(outcomes, OUTCOMES_REQUIRED, src, "outcomes")
    outcomes = outcomes.copy()
    outcomes["lead_id"] = parse_lead_ids(outcomes, src)
    check_unique_ids(outcomes, src, "outcomes")
    outcomes["outcome"] = parse_binary_label(outcomes, "outcome", src)
    outcomes["closed_at"] = parse_timestamps(outcomes, "closed_at", src)
    if leads is not None:
        known = outcomes["lead_id"].isin(leads["lead_id"]).to_numpy()
        if not known.all():
            raise LeadDataError(
                f"{src}: column 'lead_id' has {int((~known).sum())} outcomes of unknown leads "
                f"(first rows: {_examples(outcomes, ~known, 'lead_id')})"
            )
        created = outcomes["lead_id"].map(leads.set_index("lead_id")["created_at"])
        early = (outcomes["closed_at"] < created).to_numpy()
        if early.any():
            raise LeadDataError(
                f"{src}: column 'closed_at' has {int(early.sum())} outcomes closed before the lead "
                f"was created (first rows: {_examples(outcomes, early, 'closed_at')})"
            )
    return outcomes.reset_index(drop=True)


def validate_flat(
    flat: pd.DataFrame,
    label: str,
    source: str | None = None,
    id_column: str | None = None,
) -> pd.DataFrame:
    """Check a flat table (one row per lead, behaviour aggregated, a label column).

    Returns the table with ``lead_id`` (from ``id_column``, or the row number when there is none)
    and the label as int8 in ``converted``; the original label column is removed so that it cannot
    reach the features.
    """
    src = _source(source, "flat")
    check_not_empty(flat, src)
    check_required(flat, [label] + ([id_column] if id_column else []), src, "flat")
    flat = flat.copy()
    if id_column:
        flat["lead_id"] = parse_lead_ids(flat, src, id_column)
        if id_column != "lead_id":
            flat = flat.drop(columns=[id_column])
        check_unique_ids(flat, src, "flat")
    else:
        flat["lead_id"] = [str(i) for i in range(len(flat))]
    missing = flat[label].isna().to_numpy()
    if missing.any():
        raise LeadDataError(
            f"{src}: column '{label}' has {int(missing.sum())} missing labels "
            f"(first rows: {_examples(flat, missing, label)})"
        )
    converted = parse_binary_label(flat, label, src)
    flat = flat.drop(columns=[label])
    flat[LABEL_COLUMN] = converted
    front = ["lead_id"] + [c for c in flat.columns if c not in ("lead_id", LABEL_COLUMN)]
    return flat[front + [LABEL_COLUMN]].reset_index(drop=True)


def load_leads(path: str | os.PathLike, columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Read and validate a leads table (CSV or Parquet)."""
    return validate_leads(read_table(path), source=str(path), columns=columns)


def load_events(
    path: str | os.PathLike,
    leads: pd.DataFrame | None = None,
    on_orphans: OrphanPolicy = "error",
    columns: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Read and validate an events table; see :func:`validate_events`."""
    return validate_events(
        read_table(path), source=str(path), leads=leads, on_orphans=on_orphans, columns=columns
    )


def load_outcomes(
    path: str | os.PathLike,
    leads: pd.DataFrame | None = None,
    columns: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Read and validate an outcomes table; see :func:`validate_outcomes`."""
    return validate_outcomes(read_table(path), source=str(path), leads=leads, columns=columns)


def load_flat(
    path: str | os.PathLike, label: str, id_column: str | None = None, **read_options
) -> pd.DataFrame:
    """Read and validate a flat table; see :func:`validate_flat`."""
    from leadml.data.io import table_format

    if read_options and table_format(path) == "csv":
        from pathlib import Path

        if not Path(path).exists():
            raise LeadDataError(f"{path}: file not found")
        try:
            flat = pd.read_csv(path, low_memory=False, **read_options)
        except Exception as exc:
            raise LeadDataError(f"{path}: cannot be read as csv: {exc}") from exc
    else:
        flat = read_table(path)
    return validate_flat(flat, label=label, source=str(path), id_column=id_column)
