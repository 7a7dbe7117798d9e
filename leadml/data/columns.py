"""Column-level checks and parsers shared by the table validators of :mod:`leadml.data.contract`.

Each one checks or parses a single column (required columns present, ids, timestamps, binary
labels) and raises :class:`LeadDataError` naming the file, the column, how many rows are bad and a
few of them (:func:`example_rows`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from leadml.core.errors import LeadDataError

WON_VALUES = {"won", "win", "1", "1.0", "true", "yes", "y", "converted"}
LOST_VALUES = {"lost", "lose", "0", "0.0", "false", "no", "n", "not converted"}


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
        have = ", ".join(str(c) if str(c).isprintable() else repr(str(c)) for c in list(frame.columns)[:12])
        where = (
            f"data.{table}.columns (or data.columns for every table)"
            if table in ("leads", "events", "outcomes")
            else "data.columns"
        )
        raise LeadDataError(
            f"{source}: missing required column(s) {names} in the {table} table "
            f"(columns present: {have}); map your names in the pipeline: {where}"
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


def _whole(values: pd.Series) -> pd.Series:
    """A float column whose values are all whole (``20250107.0``) as Int64, so that it reads ``20250107``."""
    if not pd.api.types.is_float_dtype(values):
        return values
    numbers = values.dropna().to_numpy()
    exact = np.isfinite(numbers) & (np.abs(numbers) < 2**53)
    whole = bool(np.all(exact)) and bool(np.all(np.mod(numbers, 1) == 0))
    return values.astype("Int64") if whole else values


def as_text(values: pd.Series) -> pd.Series:
    """Each value as stripped text (whole floats without ``.0``: ``20250107``), missing ones as ``""``."""
    values = _whole(values)
    if isinstance(values.dtype, pd.StringDtype):  # pandas' text columns: the quick way
        return values.astype(str).str.strip().where(values.notna(), "")
    return values.astype(object).where(values.notna(), "").astype(str).str.strip()


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


def parse_outcomes(
    frame: pd.DataFrame,
    column: str,
    source: str,
    *,
    won: Sequence[str] | None = None,
    lost: Sequence[str] | None = None,
    open: Sequence[str] | None = None,  # the word users write (data.outcomes.open)
) -> tuple[pd.Series, np.ndarray]:
    """Read a CRM's outcome values: the 0/1 label of the decided rows and the mask of open rows.

    Values are matched trimmed and in any case. Each of ``won`` / ``lost`` given replaces that
    side's defaults (:data:`WON_VALUES`: won, yes, true, 1, ...; :data:`LOST_VALUES`: lost, no,
    false, 0, ...); ``open`` (deals still in progress: not decided, so not lost) has none. So HubSpot
    reads with ``won=["closedwon"], lost=["closedlost"]``, Salesforce with ``["Closed Won"]`` /
    ``["Closed Lost"]`` and Pipedrive with ``open=["open"]`` alone. Any other value raises once,
    listing the values seen with their counts and the keys to set.

    Returns:
        The int8 label (1 = won) of the decided rows, indexed like them in ``frame``, and a boolean
        array over all rows, True where the deal is open.

    Example:
        >>> frame = pd.DataFrame({"stage": ["closedwon", " ClosedLost", "appointmentscheduled"]})
        >>> label, is_open = parse_outcomes(frame, "stage", "deals.csv", won=["closedwon"],
        ...                                 lost=["closedlost"], open=["appointmentscheduled"])
        >>> label.tolist(), is_open.tolist()
        ([1, 0], [False, False, True])
    """
    explicit = {side: _outcome_set(values) for side, values in (("won", won), ("lost", lost), ("open", open))}
    _check_disjoint(explicit, source)
    given = set().union(*(values for values in explicit.values() if values is not None))
    sets = {
        "won": explicit["won"] if explicit["won"] is not None else WON_VALUES - given,
        "lost": explicit["lost"] if explicit["lost"] is not None else LOST_VALUES - given,
        "open": explicit["open"] or set(),
    }
    values = frame[column]
    spelled = as_text(values).str.lower()
    present = values.notna().to_numpy()
    is_won, is_lost, is_open = (present & spelled.isin(sets[side]).to_numpy() for side in ("won", "lost", "open"))
    unknown = ~(is_won | is_lost | is_open)
    if unknown.any():
        raise LeadDataError(_unknown_outcomes_message(frame, column, source, unknown, explicit))
    decided = is_won | is_lost
    label = pd.Series(is_won[decided].astype("int8"), index=frame.index[decided], name=column)
    return label, is_open


def _outcome_set(values: Sequence[str] | None) -> set[str] | None:
    """A map's values as matched: trimmed lower-case text; one value may come without a list, ``1.0`` reads ``1``."""
    if values is None:
        return None
    listed: Iterable[object] = [values] if isinstance(values, str | int | float | bool) else values
    return {str(int(v) if isinstance(v, float) and v.is_integer() else v).strip().lower() for v in listed}


def _check_disjoint(explicit: Mapping[str, set[str] | None], source: str) -> None:
    """Raise when one value is mapped to two outcomes (won and lost, say)."""
    sides = [(side, values) for side, values in explicit.items() if values]
    for i, (side, values) in enumerate(sides):
        for other, other_values in sides[i + 1 :]:
            both = sorted(values & other_values)
            if both:
                raise LeadDataError(
                    f"{source}: outcome value(s) {', '.join(map(repr, both))} are in both data.outcomes.{side} "
                    f"and data.outcomes.{other}; keep each value in one list"
                )


def _unknown_outcomes_message(
    frame: pd.DataFrame,
    column: str,
    source: str,
    unknown: np.ndarray,
    explicit: Mapping[str, set[str] | None],
) -> str:
    """One message for every value no map reads: how many, which (with counts), where, the keys to set."""
    values = frame[column]
    n_missing = int((unknown & values.isna().to_numpy()).sum())
    seen = as_text(values[unknown & values.notna().to_numpy()]).value_counts(sort=True)
    shown = [f"{value} ({count} row{'s' if count > 1 else ''})" for value, count in seen.iloc[:6].items()]
    if len(seen) > 6:
        shown.append(f"{len(seen) - 6} more")
    head = (
        f"{source}: column '{column}' has {int(unknown.sum())} values that are not a binary outcome "
        f"({n_missing} missing{'; seen: ' + ', '.join(shown) if shown else ''}; "
        f"first rows: {example_rows(frame, unknown, column)})"
    )
    keys = "data.outcomes.won, data.outcomes.lost or data.outcomes.open (deals still in progress, kept open)"
    if all(values is None for values in explicit.values()):
        return (
            f"{head}; use won/lost, yes/no, true/false or 1/0, or list your CRM's values in {keys}, "
            "e.g. won: [closedwon], lost: [closedlost]"
        )
    mapped = "; ".join(
        f"{side}: {', '.join(sorted(values)) or '(none)'}" for side, values in explicit.items() if values is not None
    )
    return f"{head}; the maps read {mapped}: add each value seen to {keys}"
