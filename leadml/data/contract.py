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

ISO_HINT = "use ISO 8601, e.g. 2026-03-01T12:00:00Z"
_NS_MIN = pd.Timestamp.min.tz_localize("UTC")
_NS_MAX = pd.Timestamp.max.tz_localize("UTC")
_CLOCK_WORDS = ["now", "today", "tomorrow", "yesterday"]  # pandas reads these from the clock

OrphanPolicy = Literal["error", "drop"]


class LeadDataWarning(UserWarning):
    """A problem in the input that does not stop the work; the message carries the count."""


def _examples(frame: pd.DataFrame, mask: np.ndarray | pd.Series, column: str, n: int = 3) -> str:
    """Describe up to ``n`` offending rows as ``row 4 (lead_id='L1', timestamp='x')``.

    Row numbers are 1-based data rows (the header is not counted).
    """
    positions = np.flatnonzero(np.asarray(mask))[:n]
    parts = []
    for pos in positions:
        row = frame.iloc[pos]
        shown = [f"{column}={_show(row[column])}"] if column in frame.columns else []
        if column != "lead_id" and "lead_id" in frame.columns:
            shown.insert(0, f"lead_id={_show(row['lead_id'])}")
        parts.append(f"row {pos + 1} ({', '.join(shown)})")
    return "; ".join(parts)


def _show(value: object) -> str:
    """A cell as it should read in a message: quoted text, plain numbers, ISO dates, <missing>."""
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
        return "<missing>"
    return repr(value)


def _source(source: str | os.PathLike | None, table: str) -> str:
    return str(source) if source is not None else f"<{table} table>"


def _blank(values: pd.Series) -> np.ndarray:
    """Missing values and strings that are empty once stripped."""
    return values.isna().to_numpy() | (values.astype(str).str.strip() == "").to_numpy()


def check_not_empty(frame: pd.DataFrame, source: str) -> None:
    """Raise when the table has no rows."""
    if len(frame) == 0:
        raise LeadDataError(f"{source}: the table is empty (0 rows); it needs at least one row")


def check_required(
    frame: pd.DataFrame,
    required: Sequence[str],
    source: str,
    table: str,
    columns: Mapping[str, str] | None = None,
) -> None:
    """Raise naming every required column that is missing (and its mapped name) and those present."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        mapped = columns or {}
        names = ", ".join(
            f"{c!r} (mapped from {mapped[c]!r})" if mapped.get(c, c) != c else repr(c) for c in missing
        )
        have = ", ".join(map(str, list(frame.columns)[:12]))
        raise LeadDataError(
            f"{source}: missing required column(s) {names} in the {table} table "
            f"(columns present: {have}); map your names in the pipeline's `columns:`"
        )


def apply_column_map(
    frame: pd.DataFrame, columns: Mapping[str, str] | None, source: str | None = None
) -> pd.DataFrame:
    """Rename the user's column names to the contract's names (``{contract_name: user_name}``).

    A mapped column whose contract name is already taken by another column raises, since keeping
    both would leave two columns of one name.
    """
    if not columns:
        return frame
    renames = {user: ours for ours, user in columns.items() if user in frame.columns and user != ours}
    clashes = [ours for ours in renames.values() if ours in frame.columns]
    if clashes:
        raise LeadDataError(
            f"{source or '<table>'}: column {clashes[0]!r} is present and also mapped from "
            f"{columns[clashes[0]]!r}; drop one of them or remove the mapping"
        )
    return frame.rename(columns=renames)


def parse_lead_ids(frame: pd.DataFrame, source: str, column: str = "lead_id") -> pd.Series:
    """Return ``column`` as strings (whole floats as ``"1"``); missing or empty ids raise naming the rows."""
    values = frame[column]
    if pd.api.types.is_float_dtype(values):
        whole = values.dropna().to_numpy()
        exact = np.isfinite(whole) & (np.abs(whole) < 2**53)  # beyond 2**53 a float is not an exact integer
        if len(whole) and bool(np.all(exact & (np.mod(np.where(exact, whole, 0), 1) == 0))):
            values = values.astype("Int64")
    ids = values.astype(str).str.strip()
    missing = values.isna().to_numpy() | (ids == "").to_numpy()
    if missing.any():
        raise LeadDataError(
            f"{source}: column '{column}' has {int(missing.sum())} missing or empty values "
            f"(first rows: {_examples(frame, missing, column)}); every row needs an id"
        )
    return ids.astype(str)


def parse_timestamps(frame: pd.DataFrame, column: str, source: str) -> pd.Series:
    """Parse ``column`` to ``datetime64[ns, UTC]``; naive values are taken as UTC.

    ISO 8601 text with any offset (``Z``, ``+02:00``, mixed offsets, date only) is converted to
    UTC. Nothing is guessed: other formats (``03/01/2026``: March or January?), words read from the
    clock (``now``, ``today``), missing values, dates outside 1677-2262 and plain numbers (epochs in
    an unknown unit) raise naming the rows.
    """
    values = frame[column]
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
    elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.notna().to_numpy()
        if numbers.any():
            raise LeadDataError(
                f"{source}: column '{column}' holds numbers, not dates ({int(numbers.sum())} numeric "
                f"values; first rows: {_examples(frame, numbers, column)}); {ISO_HINT}"
            )
        parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    else:
        text = values.astype(object).where(values.notna(), None)
        clock = values.astype(str).str.strip().str.lower().isin(_CLOCK_WORDS).to_numpy()
        with warnings.catch_warnings():  # numbers inside text columns: NaT, reported below
            warnings.simplefilter("ignore")
            parsed = pd.to_datetime(text.where(~clock, None), utc=True, format="ISO8601", errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        kind = "missing" if np.all(_blank(values)[bad]) else "missing or unparseable"
        raise LeadDataError(
            f"{source}: column '{column}' has {int(bad.sum())} {kind} timestamps "
            f"(first rows: {_examples(frame, bad, column)}); {ISO_HINT}"
        )
    outside = ((parsed < _NS_MIN) | (parsed > _NS_MAX)).to_numpy()
    if outside.any():
        raise LeadDataError(
            f"{source}: column '{column}' has {int(outside.sum())} timestamps outside 1677-2262 "
            f"(first rows: {_examples(frame, outside, column)}); {ISO_HINT}"
        )
    return parsed.dt.as_unit("ns").rename(column)


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
    """Map won/lost, yes/no, true/false or 1/0 (any case) to an int8 0/1 column; anything else raises."""
    values = frame[column]
    norm = values.astype(str).str.strip().str.lower()
    won = norm.isin(WON_VALUES).to_numpy()
    bad = ~(won | norm.isin(LOST_VALUES).to_numpy())
    if bad.any():
        n_missing = int((bad & values.isna().to_numpy()).sum())
        seen = ", ".join(map(str, pd.unique(values[bad].astype(str))[:5]))
        raise LeadDataError(
            f"{source}: column '{column}' has {int(bad.sum())} values that are not a binary outcome "
            f"({n_missing} missing; seen: {seen}; first rows: {_examples(frame, bad, column)}); "
            "use won/lost, yes/no, true/false or 1/0"
        )
    return pd.Series(won.astype("int8"), index=frame.index, name=column)


def validate_leads(
    leads: pd.DataFrame, source: str | None = None, columns: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Check a leads table and return it typed: ``lead_id`` str, ``created_at`` UTC, unique ids.

    Example:
        >>> leads = validate_leads(pd.DataFrame({"lead_id": [7], "created_at": ["2026-03-01T14:00+02:00"]}))
        >>> leads["lead_id"].iloc[0], str(leads["created_at"].iloc[0])
        ('7', '2026-03-01 12:00:00+00:00')
    """
    src = _source(source, "leads")
    leads = apply_column_map(leads, columns, src)
    check_not_empty(leads, src)
    check_required(leads, LEADS_REQUIRED, src, "leads", columns)
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

    With ``leads`` (a validated leads table) given, events of unknown leads raise
    (``on_orphans="error"``, the default) or are dropped with a warning that counts them
    (``"drop"``); events before their lead's creation are kept and counted in a warning.
    """
    if on_orphans not in ("error", "drop"):
        raise ValueError(f"on_orphans must be 'error' or 'drop', not {on_orphans!r}")
    src = _source(source, "events")
    events = apply_column_map(events, columns, src)
    check_not_empty(events, src)
    check_required(events, EVENTS_REQUIRED, src, "events", columns)
    events = events.copy()
    events["lead_id"] = parse_lead_ids(events, src)
    events["timestamp"] = parse_timestamps(events, "timestamp", src)
    blank = _blank(events["event_type"])
    if blank.any():
        raise LeadDataError(
            f"{src}: column 'event_type' has {int(blank.sum())} missing or empty values "
            f"(first rows: {_examples(events, blank, 'event_type')}); every event needs a type"
        )
    events["event_type"] = events["event_type"].astype(str).str.strip().astype("category")
    if leads is not None:
        events = _check_event_leads(events, _lead_created(leads), src, on_orphans)
    return events.sort_values(["lead_id", "timestamp"], kind="stable").reset_index(drop=True)


def _lead_created(leads: pd.DataFrame) -> pd.Series:
    """``created_at`` indexed by ``lead_id`` (str), from a leads table given for cross-checks."""
    check_required(leads, LEADS_REQUIRED, "<leads table>", "leads")
    created = leads["created_at"]
    if not isinstance(created.dtype, pd.DatetimeTZDtype):
        created = parse_timestamps(leads, "created_at", "<leads table>")
    return created.set_axis(pd.Index(leads["lead_id"].astype(str), name="lead_id"))


def _check_event_leads(
    events: pd.DataFrame, created: pd.Series, src: str, on_orphans: OrphanPolicy
) -> pd.DataFrame:
    known = events["lead_id"].isin(created.index).to_numpy()
    # before any row is dropped, so that example row numbers are the input's
    early = (events["timestamp"] < events["lead_id"].map(created)).to_numpy()
    if not known.all():
        n_orphans = int((~known).sum())
        if on_orphans == "error":
            raise LeadDataError(
                f"{src}: column 'lead_id' has {n_orphans} events of unknown leads "
                f"(first rows: {_examples(events, ~known, 'lead_id')}); fix the export or drop "
                "them with on_orphans='drop' (CLI: --drop-orphans)"
            )
        warnings.warn(
            f"{src}: dropped {n_orphans} events of unknown leads (column 'lead_id'; first rows: "
            f"{_examples(events, ~known, 'lead_id')})",
            LeadDataWarning,
            stacklevel=3,
        )
    if early.any():
        warnings.warn(
            f"{src}: column 'timestamp' has {int(early.sum())} events before their lead's "
            f"created_at (first rows: {_examples(events, early, 'timestamp')}); they are kept",
            LeadDataWarning,
            stacklevel=3,
        )
    return events.loc[known].reset_index(drop=True)


def validate_outcomes(
    outcomes: pd.DataFrame,
    source: str | None = None,
    leads: pd.DataFrame | None = None,
    columns: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Check an outcomes table: one row per closed lead, binary ``outcome`` (1 = won), ``closed_at`` UTC.

    With ``leads`` given, outcomes of unknown leads and outcomes closed before their lead's
    creation raise.
    """
    src = _source(source, "outcomes")
    outcomes = apply_column_map(outcomes, columns, src)
    check_not_empty(outcomes, src)
    check_required(outcomes, OUTCOMES_REQUIRED, src, "outcomes", columns)
    outcomes = outcomes.copy()
    outcomes["lead_id"] = parse_lead_ids(outcomes, src)
    check_unique_ids(outcomes, src, "outcomes")
    outcomes["outcome"] = parse_binary_label(outcomes, "outcome", src)
    outcomes["closed_at"] = parse_timestamps(outcomes, "closed_at", src)
    if leads is not None:
        created = _lead_created(leads)
        known = outcomes["lead_id"].isin(created.index).to_numpy()
        if not known.all():
            raise LeadDataError(
                f"{src}: column 'lead_id' has {int((~known).sum())} outcomes of unknown leads "
                f"(first rows: {_examples(outcomes, ~known, 'lead_id')}); every outcome needs a lead"
            )
        early = (outcomes["closed_at"] < outcomes["lead_id"].map(created)).to_numpy()
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

    Returns the table with ``lead_id`` first (from ``id_column``, else an existing ``lead_id``
    column, else the 1-based row number zero-padded so that text order is row order) and the label
    as int8 in ``converted`` last; the original label column is removed so that it cannot reach
    the features.
    """
    src = _source(source, "flat")
    check_not_empty(flat, src)
    if id_column is None and "lead_id" in flat.columns:
        id_column = "lead_id"
    check_required(flat, [label] + ([id_column] if id_column else []), src, "flat")
    for taken, role in (("lead_id", "the id"), (LABEL_COLUMN, "the label")):
        if taken in flat.columns and taken not in (id_column, label):
            raise LeadDataError(
                f"{src}: column {taken!r} is reserved for {role} but holds something else; rename it"
            )
    flat = flat.copy()
    if id_column:
        flat["lead_id"] = parse_lead_ids(flat, src, id_column)
        if id_column != "lead_id":
            flat = flat.drop(columns=[id_column])
        check_unique_ids(flat, src, "flat")
    else:
        width = len(str(len(flat)))
        rows = pd.Series(np.arange(1, len(flat) + 1), index=flat.index)
        flat["lead_id"] = rows.astype(str).str.zfill(width)
    missing = flat[label].isna().to_numpy()
    if missing.any():
        raise LeadDataError(
            f"{src}: column '{label}' has {int(missing.sum())} missing labels "
            f"(first rows: {_examples(flat, missing, label)}); every row needs a label"
        )
    converted = parse_binary_label(flat, label, src)
    flat = flat.drop(columns=[label])
    flat[LABEL_COLUMN] = converted
    front = ["lead_id"] + [c for c in flat.columns if c not in ("lead_id", LABEL_COLUMN)]
    return flat[front + [LABEL_COLUMN]].reset_index(drop=True)


def _id_name(columns: Mapping[str, str] | None) -> list[str]:
    """The file's name of the id column, read as text so that ids keep leading zeros."""
    return [(columns or {}).get("lead_id", "lead_id")]


def load_leads(path: str | os.PathLike, columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Read and validate a leads table (CSV or Parquet); see :func:`validate_leads`."""
    leads = read_table(path, text_columns=_id_name(columns))
    return validate_leads(leads, source=str(path), columns=columns)


def load_events(
    path: str | os.PathLike,
    leads: pd.DataFrame | None = None,
    on_orphans: OrphanPolicy = "error",
    columns: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Read and validate an events table; see :func:`validate_events`."""
    events = read_table(path, text_columns=_id_name(columns))
    return validate_events(
        events, source=str(path), leads=leads, on_orphans=on_orphans, columns=columns
    )


def load_outcomes(
    path: str | os.PathLike,
    leads: pd.DataFrame | None = None,
    columns: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Read and validate an outcomes table; see :func:`validate_outcomes`."""
    outcomes = read_table(path, text_columns=_id_name(columns))
    return validate_outcomes(outcomes, source=str(path), leads=leads, columns=columns)


def load_flat(
    path: str | os.PathLike, label: str, id_column: str | None = None, **read_options
) -> pd.DataFrame:
    """Read and validate a flat table; ``read_options`` (``sep=";"``, ...) apply to CSV files.

    See :func:`validate_flat`.
    """
    flat = read_table(path, text_columns=[id_column or "lead_id"], **read_options)
    return validate_flat(flat, label=label, source=str(path), id_column=id_column)
