"""Behaviour features straight from Parquet files, for event files with tens of millions of rows.

The frame path (:func:`~leadml.features.behaviour.features.behaviour_features`) needs every ``lead_id`` as a
Python string. Here ids stay in Arrow: the events' ``lead_id`` is read dictionary-encoded, each row
group's dictionary (the distinct ids of that group) is looked up once among the snapshots' leads,
and the rows get integer codes by a gather (:mod:`leadml.features.timeline.codes`). Event types
and attributes stay dictionary codes too. The features come from the same
:class:`~leadml.features.behaviour.matrix.FeatureMatrix` as the frame path, so both paths give the
same values; finished rows are encoded to Parquet on a second thread while the next ones are
computed (:func:`stream_features`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from leadml.core.errors import LeadDataError
from leadml.data.io import atomic_output, table_format, write_table
from leadml.features.behaviour.features import AttributeCounts, Scenarios, parse_step, timeline_features
from leadml.features.behaviour.matrix import EventValues, FeatureMatrix, value_columns
from leadml.features.metadata import FeatureInfo
from leadml.features.timeline.codes import categorical, code_leads
from leadml.features.timeline.engine import EventTimeline

_NAT = np.iinfo(np.int64).min
KEYS = ("lead_id", "timestamp", "event_type")
ROW_GROUP_ROWS = 1 << 16  # snapshots per row group of the streamed output


def read_snapshots(
    snapshots_path: str | os.PathLike, as_of: object = None, leads_path: str | os.PathLike | None = None
) -> pa.Table:
    """``lead_id`` (string), ``as_of`` and, when known, ``created_at`` (both int64 ns) as Arrow.

    The file holds snapshots (``lead_id``, ``as_of``) or leads (``lead_id``, ``created_at``) scored
    at one fixed ``as_of``; leads created after that instant are left out, as in ``as_of_fixed``.
    """
    path = Path(snapshots_path)
    names = pq.ParquetFile(path).schema_arrow.names
    if "lead_id" not in names:
        raise LeadDataError(f"{path}: missing required column 'lead_id' (columns present: {', '.join(names[:12])})")
    wanted = [c for c in ("lead_id", "as_of", "created_at") if c in names]
    table = pq.read_table(path, columns=wanted)
    ids = pc.cast(table.column("lead_id"), pa.string())
    columns = {"lead_id": ids}
    if "created_at" in names:
        columns["created_at"] = _ns(table.column("created_at"), path, "created_at", allow_null=True)
    elif leads_path is not None:
        leads = pq.read_table(leads_path, columns=["lead_id", "created_at"])
        position = pc.index_in(ids, value_set=pc.cast(leads.column("lead_id"), pa.string()))
        created = _ns(leads.column("created_at"), Path(leads_path), "created_at", allow_null=True)
        known = np.asarray(pc.is_valid(position))
        columns["created_at"] = np.where(known, created[np.asarray(pc.fill_null(position, 0))], _NAT)
    if "as_of" in names:
        columns["as_of"] = _ns(table.column("as_of"), path, "as_of")
    elif as_of is not None:
        stamp = pd.Timestamp(as_of)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        columns["as_of"] = np.full(len(ids), stamp.as_unit("ns").value, dtype=np.int64)
        if "created_at" in columns:
            keep = columns["created_at"] <= stamp.value
            columns = {
                k: v.filter(pa.array(keep)) if isinstance(v, pa.ChunkedArray) else v[keep] for k, v in columns.items()
            }
    else:
        raise LeadDataError(f"{path}: no 'as_of' column; pass as_of= (one instant for every lead)")
    return pa.table({k: pa.array(v) if isinstance(v, np.ndarray) else v for k, v in columns.items()})


def events_timeline(events: pa.Table, snapshots: pa.Table, source: str = "<events>") -> tuple[EventTimeline, list[str]]:
    """Build the timeline from an Arrow events table; also return the event types present, sorted."""
    # leads coded in order of first appearance: when snapshots and events are both sorted by lead,
    # the events' codes come out sorted and the timeline skips its sort
    snapshot_codes, codes, n_leads = code_leads(snapshots.column("lead_id"), events.column("lead_id"))
    times = _ns(events.column("timestamp"), source, "timestamp")
    attributes = [name for name in events.column_names if name not in ("lead_id", "timestamp")]
    columns = {name: categorical(events.column(name)) for name in attributes}
    kinds = columns["event_type"]
    if not isinstance(kinds, pd.Categorical):
        raise LeadDataError(
            f"{source}: column 'event_type' holds {events.schema.field('event_type').type} values, "
            "not text; store the event types as strings"
        )
    used = np.zeros(len(kinds.categories) + 1, dtype=bool)
    for first in range(0, len(kinds.codes), 1 << 20):  # blocks: bincount would copy all codes to int64
        used |= np.bincount(kinds.codes[first : first + (1 << 20)] + 1, minlength=len(used)) > 0
    present = sorted(map(str, kinds.categories[used[1:]]))
    keep = None
    if len(codes) and codes.min() < 0:
        keep = np.flatnonzero(codes >= 0)
        codes, times = codes[keep], times[keep]
    as_of = np.asarray(snapshots.column("as_of"), dtype=np.int64)
    timeline = EventTimeline.from_arrays(codes, times, snapshot_codes, as_of, n_leads, columns, rows=keep)
    return timeline, present


def behaviour_features_from_parquet(
    snapshots_path: str | os.PathLike,
    events_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    as_of: object = None,
    leads_path: str | os.PathLike | None = None,
    windows: Sequence[float] = (7, 30, 90),
    event_types: Sequence[str] | None = None,
    attribute_counts: AttributeCounts | None = None,
    decay_half_lives: Sequence[float] = (30,),
    scenarios: Scenarios | None = None,
    velocity: bool = True,
    event_values: EventValues | None = None,
) -> list[FeatureInfo]:
    """Read snapshots and events from Parquet, write ``lead_id``, ``as_of`` and the behaviour features.

    The values equal :func:`~leadml.features.behaviour.features.behaviour_features` on the same data; rows
    keep the order of the snapshots file. See :func:`read_snapshots` for the snapshots file and
    ``as_of``; the other options are those of ``behaviour_features``. Returns the columns' metadata.
    """
    with system_memory_pool():
        snapshots = read_snapshots(snapshots_path, as_of, leads_path)
        events = read_events(events_path, attribute_counts, scenarios, event_values)
        timeline, present = events_timeline(events, snapshots, str(events_path))
        del events  # the timeline holds its own arrays
        features = FeatureMatrix(
            timeline,
            event_types=list(event_types) if event_types is not None else present,
            created_at=_created_at(snapshots),
            windows=windows, attribute_counts=attribute_counts, decay_half_lives=decay_half_lives,
            scenarios=scenarios, velocity=velocity, event_values=event_values,
        )  # fmt: skip
        if table_format(out_path) == "csv":
            write_features(snapshots, features.fill_all().frame(), out_path)
        else:
            stream_features(snapshots, features, out_path)
    return features.infos


def arrow_features(
    snapshots: pa.Table, events: pa.Table, event_types: Sequence[str] | None, source: str, **options
) -> tuple[pd.DataFrame, list[FeatureInfo]]:
    """The features of Arrow snapshots (see :func:`read_snapshots`) from Arrow events."""
    timeline, present = events_timeline(events, snapshots, source)
    event_types = list(event_types) if event_types is not None else present
    return timeline_features(timeline, event_types=event_types, created_at=_created_at(snapshots), **options)


def _created_at(snapshots: pa.Table) -> np.ndarray | None:
    if "created_at" not in snapshots.column_names:
        return None
    return np.asarray(snapshots.column("created_at"), dtype=np.int64)


def stream_features(snapshots: pa.Table, features: FeatureMatrix, out_path: str | os.PathLike) -> None:
    """Fill ``features`` and write them with ``lead_id`` and ``as_of`` to Parquet, atomically.

    Finished rows are encoded (one row group per :data:`ROW_GROUP_ROWS` snapshots) on a second
    thread while the next blocks are computed: Parquet encoding releases the GIL, so on two
    cores the write mostly hides behind the computation.
    """
    n_rows = features.timeline.n_snapshots
    with atomic_output(out_path) as tmp:
        # float columns rarely repeat enough for dictionary pages to pay off; skipping them halves the time
        schema = _rows_table(snapshots, features, 0, 0).schema
        writer = pq.ParquetWriter(tmp, schema, use_dictionary=False, compression="snappy")
        try:
            with ThreadPoolExecutor(1) as encoder:  # leaving the block waits for every write, even on errors
                written, pending = 0, []
                for done in features.fill():
                    if done - written >= ROW_GROUP_ROWS or (done == n_rows and done > written):
                        pending.append(
                            encoder.submit(writer.write_table, _rows_table(snapshots, features, written, done))
                        )
                        written = done
                for job in pending:
                    job.result()
        finally:
            writer.close()


def _rows_table(snapshots: pa.Table, features: FeatureMatrix, first: int, last: int) -> pa.Table:
    """Snapshots ``first:last`` as Arrow: ``lead_id``, ``as_of`` (UTC) and the features (no copies)."""
    as_of = np.asarray(snapshots.column("as_of"), dtype=np.int64)[first:last]
    columns = {
        "lead_id": snapshots.column("lead_id").slice(first, last - first),
        "as_of": pa.array(as_of).cast(pa.timestamp("ns", tz="UTC")),
    }
    columns.update({name: pa.array(features.matrix[i, first:last]) for i, name in enumerate(features.names)})
    return pa.table(columns)


@contextlib.contextmanager
def system_memory_pool() -> Iterator[None]:
    """Let Arrow allocate from the system allocator for the duration of the block.

    Measured on the benchmark (10M events): with pyarrow's default mimalloc pool the whole run
    took about twice the time, most of it in page faults of the large arrays that follow the
    Parquet read. The previous pool is restored afterwards (buffers remember their own pool).
    """
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(previous)


def write_features(snapshots: pa.Table, features: pd.DataFrame, out_path: str | os.PathLike) -> None:
    """Write ``lead_id``, ``as_of`` and the features (CSV or Parquet, by extension) atomically."""
    if table_format(out_path) == "csv":
        keys = features_table(snapshots, features.iloc[:, :0]).to_pandas()
        write_table(pd.concat([keys, features.reset_index(drop=True)], axis=1), out_path)
        return
    with atomic_output(out_path) as tmp:
        # float columns rarely repeat enough for dictionary pages to pay off; skipping them halves the time
        pq.write_table(features_table(snapshots, features), tmp, use_dictionary=False, compression="snappy")


def features_table(snapshots: pa.Table, features: pd.DataFrame) -> pa.Table:
    """``lead_id``, ``as_of`` (UTC) and the feature columns as Arrow, sharing the features' memory."""
    as_of = pa.array(np.asarray(snapshots.column("as_of"), dtype=np.int64)).cast(pa.timestamp("ns", tz="UTC"))
    columns = {"lead_id": snapshots.column("lead_id"), "as_of": as_of}
    columns.update({name: pa.array(features[name].to_numpy()) for name in features.columns})
    return pa.table(columns)


def read_events(
    path: str | os.PathLike,
    attribute_counts: AttributeCounts | None = None,
    scenarios: Scenarios | None = None,
    event_values: EventValues | None = None,
) -> pa.Table:
    """The events columns the features need, strings dictionary-encoded (no Python strings)."""
    columns, strings = event_columns(path, attribute_counts, scenarios, event_values)
    return pq.read_table(path, columns=columns, read_dictionary=strings)


def event_columns(
    path: str | os.PathLike,
    attribute_counts: AttributeCounts | None = None,
    scenarios: Scenarios | None = None,
    event_values: EventValues | None = None,
) -> tuple[list[str], list[str]]:
    """The columns to read from an events file, and those of them holding strings."""
    path = Path(path)
    schema = pq.ParquetFile(path).schema_arrow
    missing = [c for c in KEYS if c not in schema.names]
    if missing:
        raise LeadDataError(
            f"{path}: missing required column(s) {', '.join(map(repr, missing))} in the events table "
            f"(columns present: {', '.join(schema.names[:12])})"
        )
    wanted = {column for by_column in (attribute_counts or {}).values() for column in by_column}
    absent = sorted(c for c in wanted if c not in schema.names)
    if absent:
        raise LeadDataError(
            f"{path}: no column {absent[0]!r} for features.attribute_counts "
            f"(columns present: {', '.join(schema.names)})"
        )
    valued = value_columns(event_values)
    absent = sorted(c for c in valued if c not in schema.names)
    if absent:
        raise LeadDataError(
            f"{path}: no column {absent[0]!r} for features.event_values (columns present: {', '.join(schema.names)})"
        )
    wanted |= valued
    steps = [parse_step(step, name) for name, path_ in (scenarios or {}).items() for step in path_]
    if any(value is not None for _, value in steps):
        wanted |= {name for name in schema.names if name not in KEYS}  # type[value] looks at every attribute
    columns = list(KEYS) + sorted(wanted)
    strings = [c for c in columns if _is_text(schema.field(c).type)]
    return columns, strings


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _ns(column: pa.ChunkedArray, source: object, name: str, allow_null: bool = False) -> np.ndarray:
    """A timestamp column as int64 ns UTC (int64 min where null, when nulls are allowed)."""
    kind = column.type
    if pa.types.is_timestamp(kind):
        column = pc.cast(column, pa.timestamp("ns", tz=kind.tz))
    elif pa.types.is_date(kind):
        column = pc.cast(pc.cast(column, pa.timestamp("s")), pa.timestamp("ns"))
    else:
        from leadml.features.timeline.engine import to_ns

        series = column.to_pandas()
        if allow_null and series.isna().any():
            parsed = pd.to_datetime(series, utc=True, format="ISO8601")
            return parsed.dt.as_unit("ns").to_numpy(dtype="datetime64[ns]").view(np.int64)
        return to_ns(series, f"{source}: column '{name}'")
    if column.null_count and not allow_null:
        raise LeadDataError(
            f"{source}: column '{name}' has {column.null_count} missing timestamps; every row needs a time"
        )
    if column.null_count:
        column = pc.fill_null(pc.cast(column, pa.int64()), _NAT)
    values = np.empty(len(column), dtype=np.int64)
    position = 0
    for chunk in column.chunks:  # copy each chunk's int64 buffer straight into one array
        data = np.frombuffer(chunk.buffers()[1], np.int64, len(chunk), chunk.offset * 8)
        values[position : position + len(chunk)] = data
        position += len(chunk)
    return values
