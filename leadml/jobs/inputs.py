"""The inputs of a batch job, chunk by chunk: leads sorted by ``lead_id`` with their events.

A scoring job must not hold every event in memory. When the leads and the events are Parquet
files whose row groups are ordered by ``lead_id`` (the row-group statistics say so; the simulator
and any file written from a validated, sorted frame are), both are read as a merge: a chunk is a
run of whole leads row groups, and the events are read row group by row group until every event
of the chunk's last lead is in, the rest of the last group being kept for the next chunk. Memory
holds one chunk of leads and about one chunk of events, whatever the number of leads.

Files that are not ordered that way (or CSV, or the simulator) are read whole, validated by the
data contract, sorted, and then served in the same chunks: the job works, but its memory grows
with the data; :attr:`Inputs.notes` says which table was read whole.

Events read from Parquet get the data contract's event-type check either way: a missing or blank
``event_type`` raises the very :class:`LeadDataError` the whole-table read raises (file, column,
count, first rows), and types are stripped of surrounding spaces as the contract strips them.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from leadml.core.config import DataConfig, FeatureConfig
from leadml.core.data_config import TableName
from leadml.core.errors import LeadDataError
from leadml.data import contract
from leadml.data.columns import example_rows, is_blank, parse_lead_ids
from leadml.data.merge import Chunk, merge_chunks, read_ahead
from leadml.data.timestamps import parse_timestamps
from leadml.features.behaviour.features import parse_step
from leadml.features.behaviour.matrix import value_columns
from leadml.features.behaviour.parquet import KEYS
from leadml.features.behaviour.parquet import event_columns as parquet_event_columns

log = logging.getLogger("leadml.jobs.score")


# -- event types -------------------------------------------------------------------------------
def _blank_types(values: pa.Array) -> np.ndarray:
    """Per event, whether its type is missing or empty once stripped (the contract's :func:`is_blank`)."""
    kind = values.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        values = pc.dictionary_encode(values)
    elif not pa.types.is_dictionary(kind):  # numbers: only missing values (a later check refuses them)
        return np.asarray(pc.is_null(values, nan_is_null=True), dtype=bool)
    blank = np.append(is_blank(values.dictionary.to_pandas()), True)  # the last: a null index
    if not values.indices.null_count and not blank[:-1].any():
        return np.zeros(len(values), dtype=bool)
    return blank[np.asarray(pc.fill_null(values.indices, -1))]


def _stripped_types(values: pa.Array) -> pa.Array:
    """Event types without surrounding spaces, as the contract reads them (only dictionaries change)."""
    if not pa.types.is_dictionary(values.type) or not pa.types.is_string(values.type.value_type):
        return values
    words = values.dictionary.to_pylist()
    stripped = [word.strip() if word is not None else None for word in words]
    if stripped == words:
        return values
    return pa.DictionaryArray.from_arrays(values.indices, pa.array(stripped, pa.string()))


def _checked_types(events: pa.Table, path: Path) -> pa.Table:
    """``events`` with the contract's event types: a missing or blank one raises (:func:`_blank_types_error`)."""
    column = events.column("event_type")
    if any(_blank_types(chunk).any() for chunk in column.chunks):
        raise _blank_types_error(path)
    chunks = [_stripped_types(chunk) for chunk in column.chunks]
    if all(new is old for new, old in zip(chunks, column.chunks)):
        return events
    position = events.schema.get_field_index("event_type")
    return events.set_column(position, "event_type", pa.chunked_array(chunks, chunks[0].type))


def _blank_types_error(path: Path) -> LeadDataError:
    """The contract's error on events without a type, counted over the whole file.

    The message is the one :func:`~leadml.data.contract.validate_events` gives on the same file
    (rows are 1-based rows of the file); it is an error path, so the column is read again.
    """
    file = pq.ParquetFile(path)
    count, first = 0, 1
    shown: list[str] = []
    for batch in file.iter_batches(batch_size=1 << 16, columns=["lead_id", "event_type"]):
        blank = _blank_types(batch.column("event_type"))
        count += int(blank.sum())
        for position in np.flatnonzero(blank)[: 3 - len(shown)]:
            row = batch.slice(int(position), 1).to_pandas()
            if row["lead_id"].notna().all():  # ids read as the contract reads them: 7 and 7.0 are '7'
                row["lead_id"] = parse_lead_ids(row, str(path))
            shown.append(f"row {first + position} " + example_rows(row, [True], "event_type").removeprefix("row 1 "))
        first += batch.num_rows
    return LeadDataError(
        f"{path}: column 'event_type' has {count} missing or empty values "
        f"(first rows: {'; '.join(shown)}); every event needs a type"
    )


# -- events ------------------------------------------------------------------------------------
def _row_group_bounds(file: pq.ParquetFile, column: str) -> list[tuple[str, str]] | None:
    """``(min, max)`` of ``column`` in every row group, or None when a group has no statistics."""
    position = file.schema_arrow.get_field_index(column)
    if position < 0:
        return None
    bounds = []
    for k in range(file.metadata.num_row_groups):
        group = file.metadata.row_group(k)
        if group.num_rows == 0:
            continue
        stats = group.column(position).statistics
        if stats is None or not stats.has_min_max or not isinstance(stats.min, str):
            return None
        bounds.append((stats.min, stats.max))
    return bounds


def _ordered(bounds: list[tuple[str, str]] | None, strict: bool) -> bool:
    if bounds is None:
        return False
    pairs = zip(bounds[:-1], bounds[1:])
    return all((a[1] < b[0]) if strict else (a[1] <= b[0]) for a, b in pairs)


def _at_most(ids: pa.ChunkedArray, last: str) -> np.ndarray:
    """``ids <= last`` as a numpy mask, comparing each row group's dictionary once."""
    parts = []
    for chunk in ids.chunks:
        if pa.types.is_dictionary(chunk.type):
            below = np.append(np.asarray(pc.less_equal(chunk.dictionary, last), dtype=bool), False)
            indices = np.asarray(pc.fill_null(chunk.indices, -1) if chunk.null_count else chunk.indices)
            parts.append(below[indices])
        else:
            parts.append(np.asarray(pc.fill_null(pc.less_equal(chunk, last), False), dtype=bool))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


class ParquetEvents:
    """Events from a Parquet file whose row groups are ordered by ``lead_id``, read lead range by range."""

    def __init__(self, path: Path, columns: Sequence[str], strings: Sequence[str]):
        self.path = path
        self.file = pq.ParquetFile(path, read_dictionary=list(strings))
        self.columns = list(columns)
        groups = [k for k in range(self.file.metadata.num_row_groups) if self.file.metadata.row_group(k).num_rows]
        self.groups = groups
        self.bounds = _row_group_bounds(self.file, "lead_id") or []
        self.next = 0
        self.buffer: pa.Table | None = None

    def take_until(self, last: str) -> pa.Table:
        """Every not yet taken event whose ``lead_id <= last``."""
        parts = [self.buffer] if self.buffer is not None else []
        while self.next < len(self.groups) and self.bounds[self.next][0] <= last:
            group = self.file.read_row_group(self.groups[self.next], columns=self.columns)
            parts.append(_checked_types(group, self.path))
            self.next += 1
        if not parts:
            return self.file.schema_arrow.empty_table().select(self.columns)
        table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        mine = _at_most(table.column("lead_id"), last)
        taken = int(mine.sum())
        if mine[:taken].all():  # sorted within the groups: a prefix, no copy
            self.buffer = table.slice(taken) if taken < table.num_rows else None
            return table.slice(0, taken)
        self.buffer = table.filter(pa.array(~mine)) if taken < table.num_rows else None
        return table.filter(pa.array(mine))

    def remaining(self) -> int:
        """Events not taken so far (they belong to no lead of the file)."""
        rest = sum(self.file.metadata.row_group(k).num_rows for k in self.groups[self.next :])
        return rest + (self.buffer.num_rows if self.buffer is not None else 0)


class TableEvents:
    """Events held in memory as an Arrow table sorted by ``lead_id``, served lead range by range."""

    def __init__(self, table: pa.Table):
        self.table = table
        self.ids = table.column("lead_id")
        self.position = 0

    def _upper(self, last: str) -> int:
        lo, hi = self.position, self.table.num_rows
        while lo < hi:  # bisection over the sorted ids: log2(n) Python steps a chunk
            mid = (lo + hi) // 2
            if self.ids[mid].as_py() <= last:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def take_until(self, last: str) -> pa.Table:
        stop = self._upper(last)
        taken = self.table.slice(self.position, stop - self.position)
        self.position = stop
        return taken

    def remaining(self) -> int:
        return self.table.num_rows - self.position


# -- leads -------------------------------------------------------------------------------------
def _sorted_leads(leads: pd.DataFrame, source: str) -> pd.DataFrame:
    """Leads sorted by ``lead_id``; a duplicate id raises naming the file."""
    if _increasing(leads["lead_id"]):  # a sorted file's chunk: already in order, no id twice
        return leads.reset_index(drop=True)
    ordered = leads.sort_values("lead_id", kind="stable").reset_index(drop=True)
    ids = ordered["lead_id"]
    repeated = (ids.to_numpy()[1:] == ids.to_numpy()[:-1]) if len(ids) > 1 else np.zeros(0, bool)
    if repeated.any():
        examples = ", ".join(map(repr, pd.unique(ids.to_numpy()[1:][repeated])[:3]))
        raise LeadDataError(f"{source}: column 'lead_id' has duplicate ids ({examples}); every lead needs one row")
    return ordered


def _increasing(ids: pd.Series) -> bool:
    """Whether the ids are text in strictly increasing order (compared as the sort compares them)."""
    if len(ids) < 2 or not (pd.api.types.is_string_dtype(ids.dtype) and ids.notna().all()):
        return len(ids) < 2
    try:
        values = pa.array(ids, pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # not all text: the sort and its checks decide
        return False
    return bool(pc.all(pc.less(values.slice(0, len(values) - 1), values.slice(1))).as_py())


def _parquet_lead_chunks(path: Path, columns: Sequence[str], chunk_leads: int, source: str) -> Iterator[pd.DataFrame]:
    """Validated lead chunks of whole row groups (the groups' ranges of ``lead_id`` are ordered)."""
    file = pq.ParquetFile(path)
    groups = [k for k in range(file.metadata.num_row_groups) if file.metadata.row_group(k).num_rows]
    batch: list[int] = []
    rows = 0
    for k in groups:
        batch.append(k)
        rows += file.metadata.row_group(k).num_rows
        if rows >= chunk_leads or k == groups[-1]:
            leads = file.read_row_groups(batch, columns=list(columns)).to_pandas()
            yield _sorted_leads(_validated_leads(leads, source), source)
            batch, rows = [], 0


def _validated_leads(leads: pd.DataFrame, source: str) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", contract.LeadDataWarning)
        return contract.validate_leads(leads, source=source)


def _frame_lead_chunks(leads: pd.DataFrame, chunk_leads: int, source: str) -> Iterator[pd.DataFrame]:
    ordered = _sorted_leads(leads, source)  # a new frame, indexed 0..n-1
    if 0 < len(ordered) <= chunk_leads:  # one chunk: the rows 0..n-1 are the frame itself
        yield ordered
        return
    for first in range(0, len(ordered), chunk_leads):
        yield ordered.iloc[first : first + chunk_leads].reset_index(drop=True)


# -- outcomes ----------------------------------------------------------------------------------
class Closings:
    """When leads stopped being prospects: closed, or reached a stage (``sql_at``, ...) before ``as_of``.

    Only what happened before ``as_of`` is kept: those leads are not scored (closed ones at all,
    those past the target stage as prospects).
    """

    def __init__(self, outcomes: pd.DataFrame | None, as_of: pd.Timestamp):
        self.frame: pd.DataFrame | None = None
        if outcomes is None or not len(outcomes):
            return
        stages = [c for c in contract.STAGE_COLUMNS if c in outcomes.columns]
        frame = pd.DataFrame({"lead_id": outcomes["lead_id"].astype(str).to_numpy(),
                              "closed_at": pd.to_datetime(outcomes["closed_at"], utc=True).dt.as_unit("ns").array})  # fmt: skip
        for column in stages:
            frame[column] = pd.to_datetime(outcomes[column], utc=True).dt.as_unit("ns").array
        early = np.zeros(len(frame), dtype=bool)
        for column in ["closed_at", *stages]:
            before = (frame[column] < as_of).to_numpy()
            early |= before
            frame.loc[~before, column] = pd.NaT  # what happens at or after as_of is the future
        self.frame = frame.loc[early].set_index("lead_id")

    def of(self, lead_ids: pd.Series) -> pd.DataFrame | None:
        """Outcome rows (``lead_id``, ``outcome``, ``closed_at``, stage times) of these leads that closed
        or reached a stage before as_of."""
        if self.frame is None:
            return None
        found = self.frame.index.get_indexer(lead_ids.to_numpy())
        hit = found >= 0
        rows = self.frame.iloc[found[hit]].reset_index(drop=True)
        # outcome 1: snapshots.stage_times fails on outcomes that are all lost (an all-NaT column);
        # the value does not matter, these leads are dropped as closed (or past a stage) before as_of
        rows.insert(0, "outcome", np.ones(int(hit.sum()), np.int8))
        rows.insert(0, "lead_id", lead_ids.to_numpy()[hit])
        return rows


def _parquet_closings(path: Path, as_of: pd.Timestamp) -> Closings:
    file = pq.ParquetFile(path)
    missing = [c for c in ("lead_id", "closed_at") if c not in file.schema_arrow.names]
    if missing:
        raise LeadDataError(
            f"{path}: missing required column(s) {', '.join(map(repr, missing))} in the outcomes table "
            f"(columns present: {', '.join(file.schema_arrow.names[:12])})"
        )
    stages = [c for c in contract.STAGE_COLUMNS if c in file.schema_arrow.names]
    outcomes = file.read(columns=["lead_id", "closed_at", *stages]).to_pandas()
    outcomes["lead_id"] = parse_lead_ids(outcomes, str(path))
    outcomes["closed_at"] = parse_timestamps(outcomes, "closed_at", str(path))
    for column in stages:  # a lead that never reached the stage has no time: only the others must parse
        outcomes[column] = parse_timestamps(outcomes, column, str(path), rows=outcomes[column].notna().to_numpy())
    return Closings(outcomes, as_of)


# -- choosing how to read ----------------------------------------------------------------------
@dataclass(frozen=True)
class Inputs:
    """How a job reads its data: the total leads (for progress) and the chunk iterator's parts."""

    total_leads: int
    streamed: bool
    lead_chunks: Iterator[pd.DataFrame]
    events: object | None
    closings: Closings
    events_source: str
    on_orphans: str
    notes: tuple[str, ...] = ()
    chunk_leads: int = 0  # leads per chunk (0: not said)

    def chunks(self, prefetch: bool = True) -> Iterator[Chunk]:
        """The chunks; with ``prefetch`` the next one is read in a thread while the caller works.

        Leads that fit in one chunk have no next chunk to read ahead: the thread would only be started
        and waited for (most of a millisecond on a request of one lead), so none is started.
        """
        chunks = merge_chunks(self.lead_chunks, self.events, self.closings,
                              events_source=self.events_source, on_orphans=self.on_orphans)  # fmt: skip
        single = 0 < self.total_leads <= self.chunk_leads
        return read_ahead(chunks) if prefetch and not single else chunks


def _path(data: DataConfig, name: TableName) -> Path | None:
    table = data.table(name)
    return table.path if table is not None else None


def _is_parquet(path: Path | None) -> bool:
    return path is not None and path.suffix.lower() in (".parquet", ".pq") and path.is_file()


def lead_columns(path: Path, wanted: Sequence[str]) -> list[str]:
    """The wanted columns that the leads file has, with the contract's keys first."""
    names = pq.ParquetFile(path).schema_arrow.names
    missing = [c for c in contract.LEADS_REQUIRED if c not in names]
    if missing:
        raise LeadDataError(
            f"{path}: missing required column(s) {', '.join(map(repr, missing))} in the leads table "
            f"(columns present: {', '.join(names[:12])})"
        )
    return list(dict.fromkeys([*contract.LEADS_REQUIRED, *(c for c in wanted if c in names)]))


def open_inputs(
    data: DataConfig,
    as_of: pd.Timestamp,
    *,
    lead_fields: Sequence[str],
    features: FeatureConfig,
    chunk_leads: int,
) -> Inputs:
    """Plan the reading of a pipeline's three tables for a job at ``as_of``.

    ``lead_fields`` are the profile columns the features need; ``features`` (the model's
    behaviour settings) name the event attributes to read. Parquet tables stream only when they
    are read as the data contract names them (no column map, timestamp format or outcome values:
    :meth:`~leadml.core.config.DataConfig.reshaping_keys`); otherwise the pandas loaders read them.
    """
    leads_path, events_path, outcomes_path = _path(data, "leads"), _path(data, "events"), _path(data, "outcomes")
    streamable = (
        data.source == "tables" and not data.reshaping_keys() and _is_parquet(leads_path)
        and (events_path is None or _is_parquet(events_path))
        and (outcomes_path is None or _is_parquet(outcomes_path))
    )  # fmt: skip
    notes: list[str] = []
    if streamable and leads_path is not None:
        leads_file = pq.ParquetFile(leads_path)
        total = leads_file.metadata.num_rows
        columns = lead_columns(leads_path, lead_fields)
        if _ordered(_row_group_bounds(leads_file, "lead_id"), strict=True):
            lead_chunks = _parquet_lead_chunks(leads_path, columns, chunk_leads, str(leads_path))
        else:
            notes.append(f"{leads_path}: row groups are not ordered by lead_id; the leads are read whole")
            leads = _validated_leads(leads_file.read(columns=columns).to_pandas(), str(leads_path))
            lead_chunks = _frame_lead_chunks(leads, chunk_leads, str(leads_path))
        events: ParquetEvents | TableEvents | None = None
        if events_path is not None:
            event_columns = parquet_event_columns(
                events_path, features.attribute_counts, features.scenarios, features.event_values
            )
            events_file = pq.ParquetFile(events_path)
            if _ordered(_row_group_bounds(events_file, "lead_id"), strict=False):
                events = ParquetEvents(events_path, *event_columns)
            else:
                notes.append(f"{events_path}: row groups are not ordered by lead_id; the events are read whole "
                             "(write them sorted by lead_id to stream them)")  # fmt: skip
                table = pq.read_table(events_path, columns=event_columns[0], read_dictionary=event_columns[1])
                events = TableEvents(_sort_events(_checked_types(table, events_path)))
        closings = _parquet_closings(outcomes_path, as_of) if outcomes_path is not None else Closings(None, as_of)
        return Inputs(total, True, lead_chunks, events, closings, str(events_path), data.on_orphans, tuple(notes),
                      chunk_leads)  # fmt: skip
    from leadml.data.sources import load_pipeline_data

    loaded = load_pipeline_data(data, need_outcomes=False)
    return frame_inputs(loaded.leads, loaded.events, loaded.outcomes, as_of, features=features,
                        chunk_leads=chunk_leads, source=str(events_path or "<events>"))  # fmt: skip


def frame_inputs(
    leads: pd.DataFrame,
    events: pd.DataFrame | pa.Table | None,
    outcomes: pd.DataFrame | None,
    as_of: pd.Timestamp,
    *,
    features: FeatureConfig,
    chunk_leads: int,
    source: str = "<events>",
) -> Inputs:
    """Inputs from validated frames in memory (the simulator, CSV files, a notebook's tables); the
    events may be the Arrow table of such a frame already (what the service builds of stored rows)."""
    table = None
    if isinstance(events, pa.Table):
        table = TableEvents(_sort_events(events.select(frame_event_columns(events.column_names, features))))
    elif events is not None:
        wanted = frame_event_columns(events.columns, features)
        with warnings.catch_warnings():  # pyarrow reads Series.values of the tz-aware timestamps
            warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
            table = TableEvents(_sort_events(_arrow_events(events, wanted)))
    return Inputs(len(leads), False, _frame_lead_chunks(leads, chunk_leads, "<leads>"), table,
                  Closings(outcomes, as_of), source, "drop", (), chunk_leads)  # fmt: skip


def _arrow_events(events: pd.DataFrame, wanted: list[str]) -> pa.Table:
    """``pa.Table.from_pandas(events[wanted])`` (schema and pandas metadata alike), without the frame
    ``events[wanted]`` in between: Arrow converts the wanted columns of ``events`` itself (it refuses
    repeated column names, which the frame of ``events[wanted]`` alone might not have)."""
    if not events.columns.is_unique:
        return pa.Table.from_pandas(events[wanted], preserve_index=False)
    return pa.Table.from_pandas(events, columns=wanted, preserve_index=False)


def frame_event_columns(columns: Sequence[str], features: FeatureConfig) -> list[str]:
    """The events columns the features read: the keys, counted attributes, value columns, all of them for
    ``type[value]`` steps."""
    wanted = {column for by_column in features.attribute_counts.values() for column in by_column}
    wanted |= value_columns(features.event_values)
    steps = [parse_step(step, name) for name, path in features.scenarios.items() for step in path]
    if any(value is not None for _, value in steps):
        wanted |= set(columns)
    return [c for c in (*KEYS, *sorted(wanted - set(KEYS))) if c in columns]


def _sort_events(table: pa.Table) -> pa.Table:
    """Events with ``lead_id`` as text, sorted by it (kept as they are when they already are)."""
    ids = table.column("lead_id")
    if not (pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)):
        ids = ids.cast(pa.string())  # dictionary-encoded or numeric ids: compared as text, like the leads'
        table = table.set_column(table.schema.get_field_index("lead_id"), "lead_id", ids)
    if len(ids) < 2 or not pc.any(pc.less(ids.slice(1), ids.slice(0, len(ids) - 1))).as_py():
        return table
    return table.take(pc.sort_indices(ids))
