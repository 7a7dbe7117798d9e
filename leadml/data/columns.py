"""Column-level checks and parsers shared by the table validators of :mod:`leadml.data.contract`.

Each one checks or parses a single column (required columns present, ids, timestamps, binary
labels) and raises :class:`LeadDataError` naming the file, the column, how many rows are bad and a
few of them (:func:`example_rows`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from leadml.core.errors import LeadDataError

WON_VALUES = {"won", "win", "1", "1.0", "true", "yes", "y", "converted"}
LOST_VALUES = {"lost", "lose", "0", "0.0", "false", "no", "n", "not converted"}

ISO_HINT = "use ISO 8601, e.g. 2026-03-01T12:00:00Z"
_NS_MIN = pd.Timestamp.min.tz_localize("UTC")
_NS_MAX = pd.Timestamp.max.tz_localize("UTC")
_CLOCK_WORDS = ["now", "today", "tomorrow", "yesterday"]  # pandas reads these from the clock


def example_rows(frame: pd.DataFrame, mask: np.ndarray | pd.Series, column: str, n: int = 3) -> str:
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


def table_source(source: str | os.PathLike | None, table: str) -> str:
    return str(source) if source is not None else f"<{table} table>"


def is_blank(values: pd.Series) -> np.ndarray:
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
        names = ", ".join(f"{c!r} (mapped from {mapped[c]!r})" if mapped.get(c, c) != c else repr(c) for c in missing)
        have = ", ".join(map(str, list(frame.columns)[:12]))
        raise LeadDataError(
            f"{source}: missing required column(s) {names} in the {table} table "
            f"(columns present: {have}); map your names in the pipeline's `columns:`"
        )


def apply_column_map(frame: pd.DataFrame, columns: Mapping[str, str] | None, source: str | None = None) -> pd.DataFrame:
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
            f"(first rows: {example_rows(frame, missing, column)}); every row needs an id"
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
                f"values; first rows: {example_rows(frame, numbers, column)}); {ISO_HINT}"
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
        kind = "missing" if np.all(is_blank(values)[bad]) else "missing or unparseable"
        raise LeadDataError(
            f"{source}: column '{column}' has {int(bad.sum())} {kind} timestamps "
            f"(first rows: {example_rows(frame, bad, column)}); {ISO_HINT}"
        )
    outside = ((parsed < _NS_MIN) | (parsed > _NS_MAX)).to_numpy()
    if outside.any():
        raise LeadDataError(
            f"{source}: column '{column}' has {int(outside.sum())} timestamps outside 1677-2262 "
            f"(first rows: {example_rows(frame, outside, column)}); {ISO_HINT}"
        )
    return parsed.dt.as_unit("ns").rename(column)


def check_unique_ids(frame: pd.DataFrame, source: str, table: str) -> None:
    """Raise when a ``lead_id`` appears more than once in a one-row-per-lead table."""
    dup = frame["lead_id"].duplicated(keep=False).to_numpy()
    if dup.any():
        n_ids = frame.loc[dup, "lead_id"].nunique()
        raise LeadDataError(
            f"{source}: column 'lead_id' has {n_ids} duplicated ids over {int(dup.sum())} rows "
            f"(first rows: {example_rows(frame, dup, 'lead_id')}); the {table} table needs one row per lead"
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
            f"({n_missing} missing; seen: {seen}; first rows: {example_rows(frame, bad, column)}); "
            "use won/lost, yes/no, true/false or 1/0"
        )
    return pd.Series(won.astype("int8"), index=frame.index, name=column)
