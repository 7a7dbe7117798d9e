"""The data contract: the columns, types and rules every input table must follow.

After loading, every table has ``lead_id`` as string, timestamps as timezone-aware UTC
(``datetime64[ns, UTC]``) and ``event_type`` as a category. Bad input raises :class:`LeadDataError`
whose message names the file, the column, how many rows are bad and a few of them. Problems that do
not stop the work (events before their lead's creation, dropped orphan events, open deals left out
of the outcomes, dropped outcomes closed before their lead was created) are reported as a
:class:`LeadDataWarning` with a count, never silently.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from leadml.core.errors import LeadDataError
from leadml.data.columns import (
    apply_column_map,
    check_not_empty,
    check_required,
    check_unique_ids,
    example_rows,
    is_blank,
    parse_binary_label,
    parse_lead_ids,
    parse_outcomes,
    table_source,
)
from leadml.data.io import read_table
from leadml.data.timestamps import parse_timestamps

LEADS_REQUIRED = ("lead_id", "created_at")
EVENTS_REQUIRED = ("lead_id", "timestamp", "event_type")
OUTCOMES_REQUIRED = ("lead_id", "outcome", "closed_at")
# when a lead reached a funnel stage, where the export has it (mapped like any column: data.outcomes.columns)
STAGE_COLUMNS = ("mql_at", "pql_at", "sql_at", "opportunity_at")
STILL_OPEN = -1  # the outcome of an open deal kept for its stage times (not won, not lost)
LABEL_COLUMN = "converted"

_BLOCK = 1 << 20  # rows a vectorised check handles at a time
OrphanPolicy = Literal["error", "drop"]
EarlyOutcomePolicy = Literal["error", "drop"]


class LeadDataWarning(UserWarning):
    """A problem in the input that does not stop the work: the message says it, ``kind`` and ``count`` count it.

    Kinds: ``open_deals`` (outcomes not decided, left out), ``early_outcomes`` (closed before their
    lead was created, dropped), ``orphan_events`` (events of unknown leads, dropped) and
    ``early_events`` (events before their lead's creation, kept).
    """

    def __init__(self, message: str, kind: str = "", count: int = 0):
        super().__init__(message)
        self.kind, self.count = kind, count


def _warn(message: str, kind: str, count: int) -> None:
    warnings.warn(LeadDataWarning(message, kind, count), stacklevel=4)


def validate_leads(
    leads: pd.DataFrame,
    source: str | None = None,
    columns: Mapping[str, str] | None = None,
    *,
    timestamp_format: str | None = None,
) -> pd.DataFrame:
    """Check a leads table and return it typed: ``lead_id`` str, ``created_at`` UTC, unique ids.

    ``timestamp_format`` reads ``created_at`` spelled otherwise than ISO 8601 or epoch milliseconds
    (see :func:`~leadml.data.timestamps.parse_timestamps`).

    Example:
        >>> leads = validate_leads(pd.DataFrame({"lead_id": [7], "created_at": ["2026-03-01T14:00+02:00"]}))
        >>> leads["lead_id"].iloc[0], str(leads["created_at"].iloc[0])
        ('7', '2026-03-01 12:00:00+00:00')
    """
    src = table_source(source, "leads")
    leads = apply_column_map(leads, columns, src)
    check_not_empty(leads, src)
    check_required(leads, LEADS_REQUIRED, src, "leads", columns)
    leads = leads.copy()
    leads["lead_id"] = parse_lead_ids(leads, src)
    check_unique_ids(leads, src, "leads")
    leads["created_at"] = parse_timestamps(leads, "created_at", src, timestamp_format=timestamp_format)
    return leads.reset_index(drop=True)


def validate_events(
    events: pd.DataFrame,
    source: str | None = None,
    leads: pd.DataFrame | None = None,
    on_orphans: OrphanPolicy = "error",
    columns: Mapping[str, str] | None = None,
    *,
    timestamp_format: str | None = None,
) -> pd.DataFrame:
    """Check an events table and return it typed, sorted by ``lead_id`` then ``timestamp``.

    With ``leads`` (a validated leads table) given, events of unknown leads raise
    (``on_orphans="error"``, the default) or are dropped with a warning that counts them
    (``"drop"``); events before their lead's creation are kept and counted in a warning.
    """
    if on_orphans not in ("error", "drop"):
        raise ValueError(f"on_orphans must be 'error' or 'drop', not {on_orphans!r}")
    src = table_source(source, "events")
    events = apply_column_map(events, columns, src)
    check_not_empty(events, src)
    check_required(events, EVENTS_REQUIRED, src, "events", columns)
    events = events.copy(deep=False)  # copy-on-write: the columns replaced below never reach the caller's frame
    events["lead_id"], ranks, ids = _event_lead_ids(events, src)
    events["timestamp"] = parse_timestamps(events, "timestamp", src, timestamp_format=timestamp_format)
    events["event_type"] = _event_types(events, src)
    if leads is not None:
        known = _check_event_leads(events, ranks, ids, _lead_created(leads), src, on_orphans)
        if not known.all():
            events, ranks = events.loc[known].reset_index(drop=True), ranks[known]
    return _by_lead_and_time(events, ranks)


def _event_lead_ids(events: pd.DataFrame, src: str) -> tuple[pd.Series, np.ndarray, pd.Index]:
    """``parse_lead_ids`` of the events, each id's rank among the sorted distinct ids, and those ids.

    A text column is checked and stripped once per distinct id; when no id needs stripping (most
    exports) the column is kept as it is, not copied. Other columns go through ``parse_lead_ids``.
    """
    values = events["lead_id"]
    if pd.api.types.is_string_dtype(values.dtype) and not pd.api.types.is_object_dtype(values.dtype):
        ranks, ids = pd.factorize(values, sort=True)
        stripped = ids.str.strip()
        if (ranks >= 0).all() and stripped.equals(ids) and not (ids == "").any():
            return values.astype(str), ranks, ids
    parsed = parse_lead_ids(events, src)
    ranks, ids = pd.factorize(parsed, sort=True)
    return parsed, ranks, ids


def _event_types(events: pd.DataFrame, src: str) -> pd.Categorical:
    """``event_type`` stripped, as a category; missing or empty types raise naming the rows.

    Text and categorical columns are checked and stripped once per distinct value (a few dozen
    among millions of rows), then the codes are gathered: the same result as stripping every row.
    """
    values = events["event_type"]
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.cat.remove_unused_categories()  # unused categories are no event types
        codes, distinct = values.cat.codes.to_numpy(), pd.Series(values.cat.categories)
    elif pd.api.types.is_string_dtype(values.dtype) and not pd.api.types.is_object_dtype(values.dtype):
        codes, uniques = pd.factorize(values)
        distinct = pd.Series(uniques)
    else:  # object columns may mix 1 and 1.0 (one value to factorize, two texts): every row as text
        codes, distinct = np.arange(len(values)), values.reset_index(drop=True)
    blank = (codes < 0) | np.append(is_blank(distinct), False)[codes]
    if blank.any():
        raise LeadDataError(
            f"{src}: column 'event_type' has {int(blank.sum())} missing or empty values "
            f"(first rows: {example_rows(events, blank, 'event_type')}); every event needs a type"
        )
    stripped = pd.Categorical(distinct.astype(str).str.strip())
    return pd.Categorical.from_codes(stripped.codes[codes], dtype=stripped.dtype)


def _by_lead_and_time(events: pd.DataFrame, ranks: np.ndarray) -> pd.DataFrame:
    """``events`` sorted by ``lead_id`` then ``timestamp``, ties in input order, a new 0..n-1 index.

    ``ranks`` are the ids' ranks among the sorted distinct ids: a stable sort on (rank, time) as
    integers gives the order of ``sort_values(["lead_id", "timestamp"], kind="stable")`` without
    comparing millions of strings, and an export already in that order (most are) is not sorted.
    """
    times = events["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    ordered = True
    for first in range(0, len(times) - 1, _BLOCK):  # blocks: no row-long temporaries
        rows = slice(first, min(first + _BLOCK + 1, len(times)))
        step = np.diff(ranks[rows])
        ordered = bool(np.all((step > 0) | ((step == 0) & (np.diff(times[rows]) >= 0))))
        if not ordered:
            break
    if ordered:
        return events.reset_index(drop=True)
    return events.take(np.lexsort((times, ranks))).reset_index(drop=True)


def _lead_created(leads: pd.DataFrame) -> pd.Series:
    """``created_at`` indexed by ``lead_id`` (str), from a leads table given for cross-checks."""
    check_required(leads, LEADS_REQUIRED, "<leads table>", "leads")
    created = leads["created_at"]
    if not isinstance(created.dtype, pd.DatetimeTZDtype):
        created = parse_timestamps(leads, "created_at", "<leads table>")
    return created.set_axis(pd.Index(leads["lead_id"].astype(str), name="lead_id"))


def _check_event_leads(
    events: pd.DataFrame, codes: np.ndarray, ids: pd.Index, created: pd.Series, src: str, on_orphans: OrphanPolicy
) -> np.ndarray:
    """Raise on (or warn of) events of unknown leads, warn of events before their lead's creation.

    ``codes`` give each row its id among the distinct ``ids``: each id is looked up once among the
    leads and the answers gathered to the rows. Returns the mask of the events to keep.
    """
    position = created.index.get_indexer(ids)
    known = (position >= 0)[codes]
    created_ns = created.dt.as_unit("ns").to_numpy(dtype="datetime64[ns]").view(np.int64)
    # an unknown lead's events are not early: no time is before int64's least
    lead_created = np.where(position >= 0, created_ns[np.maximum(position, 0)], np.iinfo(np.int64).min)
    times = events["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    # before any row is dropped, so that example row numbers are the input's
    early = np.empty(len(times), dtype=bool)
    for first in range(0, len(times), _BLOCK):  # blocks: no row-long temporaries of creation times
        rows = slice(first, first + _BLOCK)
        early[rows] = times[rows] < lead_created[codes[rows]]
    if not known.all():
        n_orphans = int((~known).sum())
        if on_orphans == "error":
            raise LeadDataError(
                f"{src}: column 'lead_id' has {n_orphans} events of unknown leads "
                f"(first rows: {example_rows(events, ~known, 'lead_id')}); fix the export or drop "
                "them with on_orphans='drop' (CLI: --drop-orphans)"
            )
        _warn(
            f"{src}: dropped {n_orphans} events of unknown leads (column 'lead_id'; first rows: "
            f"{example_rows(events, ~known, 'lead_id')})",
            "orphan_events",
            n_orphans,
        )
    if early.any():
        _warn(
            f"{src}: column 'timestamp' has {int(early.sum())} events before their lead's "
            f"created_at (first rows: {example_rows(events, early, 'timestamp')}); they are kept",
            "early_events",
            int(early.sum()),
        )
    return known


def validate_outcomes(
    outcomes: pd.DataFrame,
    source: str | None = None,
    leads: pd.DataFrame | None = None,
    columns: Mapping[str, str] | None = None,
    *,
    won: Sequence[str] | None = None,
    lost: Sequence[str] | None = None,
    open: Sequence[str] | None = None,  # the word users write (data.outcomes.open)
    on_early_outcomes: EarlyOutcomePolicy = "error",
    timestamp_format: str | None = None,
) -> pd.DataFrame:
    """Check an outcomes table: one row per closed lead, binary ``outcome`` (1 = won), ``closed_at`` UTC.

    ``won`` / ``lost`` / ``open`` map a CRM's values (``closedwon``, ``Closed Lost``, ``open``; see
    :func:`~leadml.data.columns.parse_outcomes`). Open deals are not outcomes: their rows are left
    out (their ``closed_at`` may be empty) and counted in a warning, so their leads stay open. With
    ``leads`` given, outcomes of unknown leads raise, and outcomes closed before their lead was
    created raise (``on_early_outcomes="error"``, the default) or are dropped with a warning that
    counts them (``"drop"``). Stage times (``sql_at``, ... :data:`STAGE_COLUMNS`) are parsed where
    present; an open deal that has one is kept for it, with outcome :data:`STILL_OPEN` (-1) and no
    ``closed_at``: a lead already SQL is no prospect for an SQL target, closed or not.

    Example:
        >>> deals = pd.DataFrame({"lead_id": ["a", "b", "c"], "outcome": ["closedwon", "open", "closedlost"],
        ...                       "closed_at": [1709648520000, None, "2024-03-05 14:22"]})
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     outcomes = validate_outcomes(deals, won=["closedwon"], lost=["closedlost"], open=["open"])
        >>> outcomes["outcome"].tolist(), "has 1 open deals" in str(caught[0].message)
        ([1, 0], True)
    """
    if on_early_outcomes not in ("error", "drop"):
        raise ValueError(f"on_early_outcomes must be 'error' or 'drop', not {on_early_outcomes!r}")
    src = table_source(source, "outcomes")
    outcomes = apply_column_map(outcomes, columns, src)
    check_not_empty(outcomes, src)
    check_required(outcomes, OUTCOMES_REQUIRED, src, "outcomes", columns)
    outcomes = outcomes.reset_index(drop=True)
    outcomes["lead_id"] = parse_lead_ids(outcomes, src)
    check_unique_ids(outcomes, src, "outcomes")
    label, is_open = parse_outcomes(outcomes, "outcome", src, won=won, lost=lost, open=open)
    decided = ~is_open
    outcomes["closed_at"] = parse_timestamps(
        outcomes, "closed_at", src, timestamp_format=timestamp_format, rows=decided
    )
    staged = np.zeros(len(outcomes), dtype=bool)
    for column in (c for c in STAGE_COLUMNS if c in outcomes.columns):
        given = outcomes[column].notna().to_numpy() & (outcomes[column].astype(str).str.strip() != "").to_numpy()
        outcomes[column] = parse_timestamps(outcomes, column, src, timestamp_format=timestamp_format, rows=given)
        staged |= given
    if is_open.any():
        _warn_open_deals(outcomes.loc[is_open, "outcome"], src, kept=int((is_open & staged).sum()))
    outcome = np.zeros(len(outcomes), dtype="int8")
    outcome[decided] = label.to_numpy()
    outcome[~decided] = STILL_OPEN
    outcomes["outcome"] = outcome
    outcomes.loc[~decided, "closed_at"] = pd.NaT
    keep = decided
    if leads is not None:
        keep = decided & ~_check_outcome_leads(outcomes, decided, _lead_created(leads), src, on_early_outcomes)
    return outcomes.loc[keep | (~decided & staged)].reset_index(drop=True)


def _warn_open_deals(values: pd.Series, src: str, kept: int = 0) -> None:
    """Count the open deals left out of the outcomes, by value (``kept``: those kept for their stage times)."""
    seen = values.astype(str).str.strip().value_counts(sort=True)
    shown = ", ".join(f"{value} ({count} row{'s' if count > 1 else ''})" for value, count in seen.iloc[:6].items())
    stages = f"; {kept} of them are kept for their stage times (sql_at, ...)" if kept else ""
    _warn(
        f"{src}: column 'outcome' has {len(values)} open deals ({shown}{', ...' if len(seen) > 6 else ''}); "
        f"they are not outcomes yet and are left out, so their leads stay open (censored, not lost){stages}",
        "open_deals",
        len(values),
    )


def _check_outcome_leads(
    outcomes: pd.DataFrame, decided: np.ndarray, created: pd.Series, src: str, on_early_outcomes: EarlyOutcomePolicy
) -> np.ndarray:
    """Raise on decided outcomes of unknown leads; return the mask of those closed before their lead's creation.

    Early outcomes raise (``"error"``) or are counted in a warning (``"drop"``: the caller drops them).
    Row numbers in messages are the input's.
    """
    known = outcomes["lead_id"].isin(created.index).to_numpy() | ~decided
    if not known.all():
        raise LeadDataError(
            f"{src}: column 'lead_id' has {int((~known).sum())} outcomes of unknown leads "
            f"(first rows: {example_rows(outcomes, ~known, 'lead_id')}); every outcome needs a lead"
        )
    early = decided & (outcomes["closed_at"] < outcomes["lead_id"].map(created)).to_numpy()
    if early.any() and on_early_outcomes == "error":
        raise LeadDataError(
            f"{src}: column 'closed_at' has {int(early.sum())} outcomes closed before the lead "
            f"was created (first rows: {example_rows(outcomes, early, 'closed_at')}); fix the export or "
            "drop them with on_early_outcomes='drop' (pipeline: data.on_early_outcomes: drop)"
        )
    if early.any():
        _warn(
            f"{src}: dropped {int(early.sum())} outcomes closed before the lead was created (column "
            f"'closed_at'; first rows: {example_rows(outcomes, early, 'closed_at')})",
            "early_outcomes",
            int(early.sum()),
        )
    return early


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
    src = table_source(source, "flat")
    check_not_empty(flat, src)
    if id_column is None and "lead_id" in flat.columns:
        id_column = "lead_id"
    check_required(flat, [label] + ([id_column] if id_column else []), src, "flat")
    for taken, role in (("lead_id", "the id"), (LABEL_COLUMN, "the label")):
        if taken in flat.columns and taken not in (id_column, label):
            raise LeadDataError(f"{src}: column {taken!r} is reserved for {role} but holds something else; rename it")
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
            f"(first rows: {example_rows(flat, missing, label)}); every row needs a label"
        )
    converted = parse_binary_label(flat, label, src)
    flat = flat.drop(columns=[label])
    flat[LABEL_COLUMN] = converted
    front = ["lead_id"] + [c for c in flat.columns if c not in ("lead_id", LABEL_COLUMN)]
    return flat[front + [LABEL_COLUMN]].reset_index(drop=True)


def _id_name(columns: Mapping[str, str] | None) -> list[str]:
    """The file's name of the id column, read as text so that ids keep leading zeros."""
    return [(columns or {}).get("lead_id", "lead_id")]


def _pruned_columns(
    path: str | os.PathLike, required: Sequence[str], keep: Sequence[str] | None, columns: Mapping[str, str] | None
) -> list[str] | None:
    """The file's names of ``required`` and ``keep`` (mapped by ``columns``) to read from a Parquet file.

    None (read every column) for CSV, for ``keep=None``, and when a wanted column is not in the file:
    the error then lists the file's columns as a full read would.
    """
    if keep is None or not str(path).lower().endswith((".parquet", ".pq")):
        return None
    import pyarrow.parquet as pq

    try:
        present = pq.read_schema(path).names
    except (OSError, ValueError):  # missing or unreadable: read_table says so
        return None
    mapped = {(columns or {}).get(name, name) for name in (*required, *keep)}
    if not mapped <= set(present):
        return None
    names = mapped | {*required, *keep}  # a contract name beside its mapped column is read: the clash is refused
    return [name for name in present if name in names]


def load_leads(
    path: str | os.PathLike,
    columns: Mapping[str, str] | None = None,
    *,
    separator: str | None = None,
    encoding: str | None = None,
    timestamp_format: str | None = None,
) -> pd.DataFrame:
    """Read and validate a leads table (CSV or Parquet); see :func:`read_table` and :func:`validate_leads`."""
    leads = read_table(path, text_columns=_id_name(columns), separator=separator, encoding=encoding)
    return validate_leads(leads, source=str(path), columns=columns, timestamp_format=timestamp_format)


def load_events(
    path: str | os.PathLike,
    leads: pd.DataFrame | None = None,
    on_orphans: OrphanPolicy = "error",
    columns: Mapping[str, str] | None = None,
    *,
    separator: str | None = None,
    encoding: str | None = None,
    timestamp_format: str | None = None,
    keep: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read and validate an events table; see :func:`read_table` and :func:`validate_events`.

    ``keep`` names the attribute columns the caller needs (None: all): a Parquet file is then read
    without the others (the contract's columns are always read).
    """
    wanted = _pruned_columns(path, EVENTS_REQUIRED, keep, columns)
    events = read_table(path, wanted, text_columns=_id_name(columns), separator=separator, encoding=encoding)
    return validate_events(
        events,
        source=str(path),
        leads=leads,
        on_orphans=on_orphans,
        columns=columns,
        timestamp_format=timestamp_format,
    )


def load_outcomes(
    path: str | os.PathLike,
    leads: pd.DataFrame | None = None,
    columns: Mapping[str, str] | None = None,
    *,
    won: Sequence[str] | None = None,
    lost: Sequence[str] | None = None,
    open: Sequence[str] | None = None,  # the word users write (data.outcomes.open)
    on_early_outcomes: EarlyOutcomePolicy = "error",
    separator: str | None = None,
    encoding: str | None = None,
    timestamp_format: str | None = None,
) -> pd.DataFrame:
    """Read and validate an outcomes table; see :func:`read_table` and :func:`validate_outcomes`."""
    outcomes = read_table(path, text_columns=_id_name(columns), separator=separator, encoding=encoding)
    return validate_outcomes(
        outcomes,
        source=str(path),
        leads=leads,
        columns=columns,
        won=won,
        lost=lost,
        open=open,
        on_early_outcomes=on_early_outcomes,
        timestamp_format=timestamp_format,
    )


def load_flat(path: str | os.PathLike, label: str, id_column: str | None = None, **read_options) -> pd.DataFrame:
    """Read and validate a flat table; ``read_options`` (``sep=";"``, ...) apply to CSV files.

    See :func:`validate_flat`.
    """
    flat = read_table(path, text_columns=[id_column or "lead_id"], **read_options)
    return validate_flat(flat, label=label, source=str(path), id_column=id_column)
