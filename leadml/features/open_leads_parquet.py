"""Features of the open leads at one as_of with the events read as Arrow: the fast path of ``features_at``.

The pandas path reads every event into a frame and matches millions of string ids. When the
pipeline's events are one Parquet file read as it is (no column map, no timestamp format), this
module reads only the columns the features need, strings dictionary-encoded, checks the data
contract on those columns (ids known and clean, types clean, times present, none before its lead's
creation) and computes the behaviour features with the same
:class:`~leadml.features.behaviour.matrix.FeatureMatrix` from integer codes. The profile features
come from the same fitted encoder as in the pandas path.

Anything the contract would report (a warning or an error) or the kernel cannot express makes
:func:`arrow_pipeline_data` give None: ``features_at`` then runs the pandas path, which warns or
raises exactly as it always did. This module leaves the snapshots and the fitting of the feature
builder to :mod:`leadml.features.scoring_set`, which calls it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from leadml.core.config import FeatureConfig, PipelineConfig, ProfileConfig
from leadml.core.data_config import TableConfig
from leadml.core.errors import LeadDataError
from leadml.data import contract
from leadml.data.sources import PipelineData
from leadml.features.behaviour.matrix import FeatureMatrix, value_columns
from leadml.features.behaviour.parquet import KEYS, _ns, event_columns, system_memory_pool
from leadml.features.build import FeatureBuilder
from leadml.features.profile import ProfileEncoder, add_derived_fields
from leadml.features.timeline.codes import categorical, code_leads
from leadml.features.timeline.engine import EventTimeline

PARQUET_SUFFIXES = (".parquet", ".pq")


class ArrowEvents(NamedTuple):
    """The events as the features read them: lead positions among the leads, times, type and attributes."""

    lead_codes: np.ndarray
    times: np.ndarray
    columns: dict[str, pd.Categorical | np.ndarray]


def arrow_pipeline_data(config: PipelineConfig) -> tuple[PipelineData, ArrowEvents] | None:
    """The pipeline's leads and outcomes, its events as Arrow codes, or None (the pandas path's work).

    The data's ``events`` frame holds the first event of each type (what the feature builder fits
    on, as in :func:`~leadml.features.scoring_set.fitted_builder`); the events themselves are in
    the :class:`ArrowEvents`. None when the contract would warn about or refuse the events, or
    when the pipeline reads them in a way only the pandas path does.
    """
    table = plain_parquet_events(config)
    if table is None:
        return None
    with system_memory_pool():
        events = read_clean_events(table, config.features or FeatureConfig())
        if events is None:
            return None
        leads_table = config.data.table("leads")
        assert leads_table is not None  # DataConfig's validator requires it
        leads = contract.load_leads(leads_table.path, columns=leads_table.columns, **leads_table.reading())
        coded = known_lead_codes(events, leads)
        if coded is None:
            return None
        columns = {name: categorical(events.column(name)) for name in events.column_names if name not in KEYS[:2]}
        fit_events = first_of_each_type(events, columns["event_type"])
    data = PipelineData(leads=leads, events=fit_events, outcomes=load_outcomes(config, leads))
    return data, ArrowEvents(*coded, columns)


def open_lead_frame(
    builder: FeatureBuilder,
    snapshots: pd.DataFrame,
    leads: pd.DataFrame,
    events: ArrowEvents,
    features: FeatureConfig | None,
) -> pd.DataFrame:
    """``snapshots`` with the fitted builder's features: what ``builder.transform`` gives, exactly.

    ``leads``: the pipeline's leads as :func:`~leadml.features.scoring_set.derived_once` gives them.
    """
    profile = builder.profile or ProfileConfig()
    enriched = add_derived_fields(leads, profile.job_title_column, profile.email_column)
    profile_part = encode_by_distinct(builder.encoder_, builder._profile_rows(snapshots, enriched))
    with system_memory_pool():
        behaviour_part = behaviour_frame(events, leads, snapshots, builder.event_types_, features or FeatureConfig())
    frame = pd.concat([profile_part, behaviour_part], axis=1)[builder.feature_names_]
    return pd.concat([snapshots, frame], axis=1)


def encode_by_distinct(encoder: ProfileEncoder, rows: pd.DataFrame) -> pd.DataFrame:
    """``encoder.transform(rows)``, computed on each column's distinct values and gathered.

    The encoder cleans and encodes every value on its own, so a frame of each column's distinct
    values gives every output cell; with hundreds of thousands of leads and a few thousand distinct
    values a column, that skips most of the hashing of Python strings. Text columns are taken by
    their values (missing ones are all "missing" to the encoder), numeric ones by their bits; any
    other column is encoded whole.
    """
    positions: dict[str, np.ndarray] = {}
    distinct: dict[str, pd.Series] = {}
    for column in (c for c in encoder.columns_ if c in rows.columns):
        coded = distinct_values(rows[column], column in encoder.categorical_)
        if coded is None:
            return encoder.transform(rows)
        positions[column], distinct[column] = coded
    size = max((len(values) for values in distinct.values()), default=1)
    small = pd.DataFrame(
        {column: padded(values, size) for column, values in distinct.items()}, index=pd.RangeIndex(size)
    )
    encoded = encoder.transform(small)
    out = {}
    for name in encoder.feature_names_out_:
        source = name if name in encoder.columns_ else name.removesuffix("__missing")
        take = positions.get(source, np.zeros(len(rows), dtype=np.intp))
        values = encoded[name]
        if isinstance(values.dtype, pd.CategoricalDtype):
            out[name] = pd.Categorical.from_codes(values.cat.codes.to_numpy()[take], dtype=values.dtype)
        else:
            out[name] = values.to_numpy()[take]
    return pd.DataFrame(out, index=rows.index)


def distinct_values(values: pd.Series, text: bool) -> tuple[np.ndarray, pd.Series] | None:
    """Each row's position among the column's distinct values, and those values (None: not exact).

    Text: the distinct strings and, last, one missing value for every missing row; a column holding
    anything but strings is refused (1 and 1.0 are one key to a hash table). Numbers: float64 or
    int64 told apart by their bits (-0.0 and 0.0 stay two).
    """
    if text:
        codes, uniques = pd.factorize(values)
        if not all(isinstance(value, str) for value in uniques):
            return None
        codes = np.where(codes < 0, len(uniques), codes)
        return codes, pd.Series([*uniques, None], dtype=object)
    if values.dtype not in (np.dtype("float64"), np.dtype("int64")):
        return None
    bits = values.to_numpy().view(np.int64)
    uniques, codes = np.unique(bits, return_inverse=True)
    return codes.reshape(-1), pd.Series(uniques.view(values.dtype))


def padded(values: pd.Series, size: int) -> pd.Series:
    """``values`` repeated from its first to ``size`` rows (same dtype; the extra rows are never read)."""
    return pd.Series(np.resize(values.to_numpy(), size), dtype=values.dtype)


def plain_parquet_events(config: PipelineConfig) -> TableConfig | None:
    """The events table when the fast path can read it: a Parquet file of tables data read as it is."""
    data = config.data
    if data.source != "tables" or config.snapshots.target == "pql":  # a pql target reads every event
        return None
    table = data.table("events")
    if table is None or table.columns or table.timestamp_format is not None:
        return None
    if not str(table.path).lower().endswith(PARQUET_SUFFIXES):
        return None
    return table


def read_clean_events(table: TableConfig, features: FeatureConfig) -> pa.Table | None:
    """The columns the features read, or None when the contract would reshape, warn about or refuse them.

    Checked here: types are text without missing, empty or padded values, times are timestamps
    without missing ones, attribute columns are text and value columns floats (the ids are checked
    against the leads by :func:`known_lead_codes`).
    """
    try:
        names, strings = event_columns(
            table.path, features.attribute_counts or None, features.scenarios or None, features.event_values or None
        )
        events = pq.read_table(table.path, columns=names, read_dictionary=strings)
    except (OSError, pa.ArrowException, LeadDataError):
        return None
    if events.num_rows == 0 or not pa.types.is_timestamp(events.schema.field("timestamp").type):
        return None
    if events.column("timestamp").null_count or events.column("event_type").null_count:
        return None
    valued = value_columns(features.event_values or None)
    for name in names:
        kind = events.schema.field(name).type
        if name in valued:
            if not pa.types.is_floating(kind):
                return None
        elif name != "timestamp" and not is_text(kind):
            return None
    if not all(clean_text(chunk.dictionary) for chunk in events.column("event_type").chunks):
        return None
    return events


def is_text(kind: pa.DataType) -> bool:
    """Strings, or dictionary-encoded strings (a pandas category written to Parquet)."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def clean_text(values: pa.Array) -> bool:
    """Whether every value is present, not empty and has no surrounding whitespace (the contract strips)."""
    if values.null_count:
        return False
    untrimmed = pc.not_equal(pc.utf8_trim_whitespace(values), values)
    empty = pc.equal(pc.utf8_length(values), 0)
    return not (pc.any(untrimmed).as_py() or pc.any(empty).as_py())


def known_lead_codes(events: pa.Table, leads: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """Each event's position among ``leads`` and its time (int64 ns), or None when the contract would object.

    None when an event's lead is missing or unknown, or the event is before its lead's creation, or
    a time is out of range: the contract's warnings and errors, which the pandas path then reports.
    """
    ids = events.column("lead_id")
    if ids.null_count:
        return None
    _, codes, _ = code_leads(pa.chunked_array([pa.array(leads["lead_id"].to_numpy(dtype=object), pa.string())]), ids)
    if len(codes) and int(codes.min()) < 0:
        return None
    created = leads["created_at"].dt.as_unit("ns").to_numpy(dtype="datetime64[ns]").view(np.int64)
    try:
        times = times_ns(events.column("timestamp"))
    except pa.ArrowException:  # out of the nanosecond range: the contract names the rows
        return None
    for first in range(0, len(times), 1 << 20):  # blocks: no row-long temporaries of creation times
        rows = slice(first, first + (1 << 20))
        if bool(np.any(times[rows] < created[codes[rows]])):
            return None
    return codes, times


def times_ns(column: pa.ChunkedArray) -> np.ndarray:
    """A timestamp column as int64 ns UTC; one chunk of nanoseconds is viewed, not copied."""
    if column.num_chunks == 1 and column.type.unit == "ns" and not column.null_count:
        chunk = column.chunk(0)
        return np.frombuffer(chunk.buffers()[1], np.int64, len(chunk), chunk.offset * 8)
    return _ns(column, "<events>", "timestamp")


def first_of_each_type(events: pa.Table, kinds: pd.Categorical | np.ndarray) -> pd.DataFrame:
    """The first event of each type (``kinds``: the types as codes), typed as the contract types events.

    The builder learns its event types from these rows, as it does from one event per type in the
    pandas path (:func:`~leadml.features.scoring_set.one_event_per_type`).
    """
    codes = kinds.codes if isinstance(kinds, pd.Categorical) else pd.factorize(kinds)[0]
    first = sorted(int(np.argmax(codes == code)) for code in np.flatnonzero(used_codes(codes)))
    rows = pa.concat_tables([events.slice(row, 1) for row in first]).to_pandas()
    rows["lead_id"] = rows["lead_id"].astype(str)
    rows["timestamp"] = pd.to_datetime(rows["timestamp"], utc=True).dt.as_unit("ns")
    rows["event_type"] = pd.Categorical(rows["event_type"].astype(str))
    return rows.reset_index(drop=True)


def used_codes(codes: np.ndarray) -> np.ndarray:
    """Which of the non-negative ``codes`` occur, counted in blocks (no row-long int64 copy)."""
    used = np.zeros(int(codes.max(initial=-1)) + 1, dtype=bool)
    for first in range(0, len(codes), 1 << 20):
        block = codes[first : first + (1 << 20)]
        used[: int(block.max(initial=-1)) + 1] |= np.bincount(block[block >= 0]) > 0
    return used


def load_outcomes(config: PipelineConfig, leads: pd.DataFrame) -> pd.DataFrame | None:
    """The outcomes table as :func:`~leadml.data.sources.load_pipeline_data` reads it (None: no table)."""
    table = config.data.table("outcomes")
    if table is None:
        return None
    return contract.load_outcomes(
        table.path,
        leads=leads,
        columns=table.columns,
        won=table.won,
        lost=table.lost,
        open=table.open,
        on_early_outcomes=config.data.on_early_outcomes,
        **table.reading(),
    )


def behaviour_frame(
    events: ArrowEvents,
    leads: pd.DataFrame,
    snapshots: pd.DataFrame,
    event_types: list[str],
    features: FeatureConfig,
) -> pd.DataFrame:
    """The behaviour features of the snapshots (their index), from events coded by lead position."""
    positions = pd.Index(leads["lead_id"]).get_indexer(snapshots["lead_id"]).astype(np.int32)
    open_lead = np.zeros(len(leads) + 1, dtype=bool)
    open_lead[positions[positions >= 0]] = True
    lead_codes, times, columns = events
    kept = open_lead[lead_codes]  # events of leads without a snapshot are left out, as the pandas path does
    keep = None if bool(kept.all()) else np.flatnonzero(kept)
    codes = lead_codes if keep is None else lead_codes[keep]
    times = times if keep is None else times[keep]
    as_of = snapshots["as_of"].dt.as_unit("ns").to_numpy(dtype="datetime64[ns]").view(np.int64)
    timeline = EventTimeline.from_arrays(codes, times, positions, as_of, len(leads), columns, rows=keep)
    created = leads["created_at"].dt.as_unit("ns").to_numpy(dtype="datetime64[ns]").view(np.int64)
    matrix = FeatureMatrix(
        timeline,
        event_types=event_types,
        created_at=np.where(positions >= 0, created[np.maximum(positions, 0)], np.iinfo(np.int64).min),
        windows=tuple(features.windows),
        attribute_counts=features.attribute_counts or None,
        decay_half_lives=tuple(features.decay_half_lives),
        scenarios=features.scenarios or None,
        velocity=features.velocity,
        event_values=features.event_values or None,
    )
    return matrix.fill_all().frame(snapshots.index)
