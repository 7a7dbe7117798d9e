"""Behaviour features for event files larger than memory: hash partitions of leads, one at a time.

The events are streamed once, batch by batch, and each row is routed by a hash of its ``lead_id``
to one of ``n_partitions`` spill files (Parquet, in a temporary folder). Every lead then has all
its events in one partition, so each partition is processed by the in-memory Arrow path
(:func:`~leadml.features.behaviour.parquet.arrow_features`) with the snapshots of its leads, and
its rows are appended to the output. Memory holds one events batch while routing, then one
partition: about ``events / n_partitions`` events.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from leadml.core.errors import LeadDataError
from leadml.data.io import atomic_output
from leadml.features.behaviour.features import AttributeCounts, EventValues, Scenarios
from leadml.features.behaviour.parquet import (
    _is_text,
    arrow_features,
    event_columns,
    features_table,
    read_snapshots,
    system_memory_pool,
)
from leadml.features.metadata import FeatureInfo
from leadml.features.timeline.arrays import radix_argsort
from leadml.features.timeline.codes import dictionary_chunks, identity

BATCH_ROWS = 1 << 20


def partition_of(ids: pa.Array, n_partitions: int) -> np.ndarray:
    """Each id's partition in ``[0, n_partitions)``: a stable hash of the string, the same in every run."""
    values = np.asarray(ids.to_numpy(zero_copy_only=False), dtype=object)
    hashed = pd.util.hash_array(values, categorize=False)
    return (hashed % np.uint64(n_partitions)).astype(np.int32)


def event_files(events_path: str | os.PathLike) -> list[Path]:
    """One Parquet file, or every ``*.parquet`` file of a folder (sorted)."""
    path = Path(events_path)
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    if not files or not all(f.exists() for f in files):
        raise LeadDataError(f"{path}: no events Parquet file found")
    return files


def behaviour_features_partitioned(
    snapshots_path: str | os.PathLike,
    events_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    n_partitions: int = 16,
    work_dir: str | os.PathLike | None = None,
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
    """The features of :func:`behaviour_features_from_parquet`, computed partition by partition.

    ``events_path`` is a Parquet file or a folder of them (any split: a lead's events may be in
    several files). The output (Parquet) has ``lead_id``, ``as_of`` and the features; its rows are
    grouped by partition, in the snapshots file's order within a partition. The spill files go to
    a temporary folder in ``work_dir`` (default: beside ``out_path``) and are removed at the end.
    """
    if not (isinstance(n_partitions, int) and n_partitions >= 1):
        raise ValueError(f"n_partitions must be a positive integer, got {n_partitions!r}")
    files = event_files(events_path)
    options = dict(
        windows=windows, attribute_counts=attribute_counts, decay_half_lives=decay_half_lives,
        scenarios=scenarios, velocity=velocity, event_values=event_values,
    )  # fmt: skip
    folder = Path(work_dir) if work_dir is not None else Path(out_path).resolve().parent
    folder.mkdir(parents=True, exist_ok=True)
    with system_memory_pool(), tempfile.TemporaryDirectory(prefix=".leadml-spill-", dir=folder) as spill:
        snapshots = read_snapshots(snapshots_path, as_of, leads_path)
        snapshot_part = _snapshot_partitions(snapshots.column("lead_id"), n_partitions)
        parts, present = route_events(files, Path(spill), n_partitions, attribute_counts, scenarios, event_values)
        types = list(event_types) if event_types is not None else present
        infos: list[FeatureInfo] = []
        with atomic_output(out_path) as tmp:
            writer = None
            try:
                for part in range(n_partitions):
                    rows = np.flatnonzero(snapshot_part == part)
                    if len(rows) == 0:
                        continue
                    mine = snapshots.take(pa.array(rows))
                    events = pq.read_table(parts[part], read_dictionary=_string_columns(parts[part]))
                    frame, infos = arrow_features(mine, events, types, str(parts[part]), **options)
                    del events
                    table = features_table(mine, frame)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema, use_dictionary=False, compression="snappy")
                    writer.write_table(table)
                    del frame, table
            finally:
                if writer is not None:
                    writer.close()
            if writer is None:
                raise LeadDataError(f"{snapshots_path}: no snapshots to compute features for")
    return infos


def route_events(
    files: list[Path],
    spill: Path,
    n_partitions: int,
    attribute_counts: AttributeCounts | None = None,
    scenarios: Scenarios | None = None,
    event_values: EventValues | None = None,
) -> tuple[list[Path], list[str]]:
    """Stream the events into one spill file per partition; return the files and the event types seen."""
    paths = [spill / f"part-{k:04d}.parquet" for k in range(n_partitions)]
    writers: dict[int, pq.ParquetWriter] = {}
    seen: set[str] = set()
    hashed: dict[tuple, np.ndarray] = {}
    try:
        for file in files:
            columns, strings = event_columns(file, attribute_counts, scenarios, event_values)
            reader = pq.ParquetFile(file, read_dictionary=strings)
            for batch in reader.iter_batches(batch_size=BATCH_ROWS, columns=columns):
                seen |= _types_used(batch.column("event_type"))
                part = _row_partitions(batch.column("lead_id"), n_partitions, hashed)
                order = radix_argsort(part)
                batch = batch.take(pa.array(order))
                ids = batch.column("lead_id")
                if pa.types.is_dictionary(ids.type):
                    # plain strings: each spilled row group then gets a dictionary of its own ids
                    # only, not the whole batch's (hashing those would dominate every partition)
                    batch = batch.set_column(
                        batch.schema.get_field_index("lead_id"), "lead_id", ids.dictionary_decode()
                    )
                bounds = np.searchsorted(part[order], np.arange(n_partitions + 1))
                for k in range(n_partitions):
                    if bounds[k + 1] > bounds[k]:
                        piece = batch.slice(bounds[k], bounds[k + 1] - bounds[k])
                        if k not in writers:
                            writers[k] = pq.ParquetWriter(paths[k], piece.schema, compression="lz4")
                        if not piece.schema.equals(writers[k].schema):  # files of other types
                            piece = pa.Table.from_batches([piece]).cast(writers[k].schema)
                        writers[k].write(piece)
    finally:
        for writer in writers.values():
            writer.close()
    schema = pq.read_schema(files[0])
    for k, path in enumerate(paths):
        if k not in writers:  # a partition without events still needs a readable (empty) file
            columns, _ = event_columns(files[0], attribute_counts, scenarios, event_values)
            pq.write_table(schema.empty_table().select(columns), path)
    return paths, sorted(seen)


def _row_partitions(column: pa.Array, n_partitions: int, cache: dict) -> np.ndarray:
    """Each row's partition, hashing every distinct dictionary (a row group's ids) only once."""
    (chunk,) = dictionary_chunks(pa.chunked_array([column]))
    key = identity(chunk.dictionary)
    if key not in cache:
        cache.clear()  # one row group at a time: keep the memory of one dictionary
        cache[key] = partition_of(chunk.dictionary, n_partitions)
    indices = np.asarray(chunk.indices.fill_null(0))
    return cache[key][indices]


def _snapshot_partitions(ids: pa.ChunkedArray, n_partitions: int) -> np.ndarray:
    parts = [
        partition_of(ids.slice(first, BATCH_ROWS).combine_chunks(), n_partitions)
        for first in range(0, len(ids), BATCH_ROWS)
    ]
    return np.concatenate(parts) if parts else np.zeros(0, np.int32)


def _types_used(column: pa.Array) -> set[str]:
    (chunk,) = dictionary_chunks(pa.chunked_array([column]))
    used = np.unique(np.asarray(chunk.indices.drop_null()))
    return {str(v) for v in chunk.dictionary.take(pa.array(used)).to_pylist() if v is not None}


def _string_columns(path: Path) -> list[str]:
    schema = pq.read_schema(path)
    return [f.name for f in schema if _is_text(f.type) or pa.types.is_dictionary(f.type)]
