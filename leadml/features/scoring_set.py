"""Features of the open leads at one as_of: the rows a batch scoring job (or `leadml features`) needs.

It runs the same :class:`~leadml.features.build.FeatureBuilder` as training, on a fixed-as_of
snapshot of every lead that exists and is not closed by then, so a lead scored at T gets exactly the
features its training snapshot at T had.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from leadml.core.config import FeatureConfig, PipelineConfig, ProfileConfig, load_pipeline, parse_pipeline
from leadml.core.errors import ConfigError
from leadml.data import contract
from leadml.data.sources import PipelineData, load_pipeline_data
from leadml.features.behaviour.matrix import parse_step, value_columns
from leadml.features.build import FeatureBuilder, make_snapshots
from leadml.features.profile import add_derived_fields
from leadml.features.snapshots import (
    LEFT_OUT,
    arrays_frame,
    build_snapshots,
    is_utc_ns,
    left_out_masks,
    to_utc,
    utc_array,
)

_NAT = np.iinfo(np.int64).min


def open_lead_snapshots(
    data: PipelineData, as_of: pd.Timestamp, *, target: str = "won", pql: pd.Series | None = None
) -> pd.DataFrame:
    """One row per prospect at ``as_of``: created by then, not closed and not past ``target`` before it.

    ``frame.attrs["left_out"]`` counts the leads left out as ``closed`` and as ``past_target``
    (already at the target stage or a later one: no longer a prospect to qualify).
    """
    return open_leads(data.leads, data.outcomes, as_of, target=target, pql=pql)[0]


def open_leads(
    leads: pd.DataFrame,
    outcomes: pd.DataFrame | None,
    as_of: pd.Timestamp,
    *,
    target: str = "won",
    pql: pd.Series | None = None,
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """:func:`open_lead_snapshots`, and each snapshot's row in ``leads`` (None when not worked out).

    The snapshots are :func:`build_snapshots` with the ``fixed`` policy. Validated leads sorted by
    ``lead_id`` (a batch chunk, the leads of a request) are read as arrays instead: the snapshots
    are the leads created by as_of that :func:`left_out_masks` keeps, in the leads' order (the sort by
    as_of, then lead_id, moves no row), built as one frame; a few pandas steps per call instead of
    dozens, which a request of one lead pays in full. ``tests/features/test_chunk_small.py`` holds
    both routes equal.
    """
    snapshots, positions, _ = open_lead_columns(leads, outcomes, as_of, target=target, pql=pql)
    return snapshots, positions


def open_lead_columns(
    leads: pd.DataFrame,
    outcomes: pd.DataFrame | None,
    as_of: pd.Timestamp,
    *,
    target: str = "won",
    pql: pd.Series | None = None,
) -> tuple[pd.DataFrame, np.ndarray | None, dict[str, Any] | None]:
    """:func:`open_leads`, and on the array route the snapshots' own column arrays by name (None on the
    frame route): the first read of a column of a new frame costs ~0.1 ms, a request's lead pays it."""
    ids, created = leads["lead_id"].array, leads["created_at"].array
    if as_of is None or not (_text_ids(ids) and is_utc_ns(created.dtype) and _increasing(ids)):
        return _fixed_snapshots(leads, outcomes, as_of, target, pql), None, None
    stamp = to_utc(as_of)
    created_ns = created.asi8
    known = np.flatnonzero((created_ns <= stamp.value) & (created_ns != _NAT))
    candidates = _taken(ids, known)
    closed, past = left_out_masks(candidates, stamp.value, outcomes, target, pql)
    kept = ~(closed | past)
    positions = known[kept]
    if not len(positions):  # no row: the snapshots' ids are then an empty object column, not text
        return _fixed_snapshots(leads, outcomes, as_of, target, pql), None, None
    columns = {"lead_id": _taken(candidates, np.flatnonzero(kept)), "as_of": utc_array(stamp.value, len(positions))}
    snapshots = arrays_frame(columns, pd.RangeIndex(len(positions)))
    snapshots.attrs[LEFT_OUT] = {"closed": int(closed.sum()), "past_target": int(past.sum())}
    return snapshots, positions, columns


def _taken(values: Any, positions: np.ndarray) -> Any:
    """``values.take(positions)``; a copy (the same immutable text, a new array) when that is every row
    in order, as for most chunks and a request's one lead (a take costs ~0.1 ms on one row)."""
    if len(positions) == len(values):  # positions are increasing and distinct: every row in order
        return values.copy()
    return values.take(positions)


def _fixed_snapshots(
    leads: pd.DataFrame, outcomes: pd.DataFrame | None, as_of: pd.Timestamp, target: str, pql: pd.Series | None
) -> pd.DataFrame:
    """:func:`open_lead_snapshots` by :func:`build_snapshots` itself (any leads)."""
    snapshots = build_snapshots(leads, outcomes, policy="fixed", as_of=as_of, horizon_days=1,
                                data_end=as_of, stage=target, pql=pql)  # fmt: skip
    left_out = dict(snapshots.attrs.get(LEFT_OUT, {}))
    snapshots = snapshots[["lead_id", "as_of"]].reset_index(drop=True)
    snapshots.attrs[LEFT_OUT] = left_out
    return snapshots


def _text_ids(ids: Any) -> bool:
    """Whether the ids (a column's array, None when absent) are text without missing values, in the dtype
    pandas gives a column of Python strings (so that ids taken from them equal the ids of
    :func:`~leadml.features.snapshots.as_of_fixed`)."""
    return ids is not None and ids.dtype == "str" and ids.dtype == _text_dtype() and not ids.isna().any()


@functools.cache
def _text_dtype() -> Any:
    """``pd.api.types.pandas_dtype("str")`` (~60 us), read once: the string storage option of the process."""
    return pd.api.types.pandas_dtype("str")


def _increasing(ids: Any) -> bool:
    """Whether text ids are in strictly increasing order (code point order, the order of the sort)."""
    if len(ids) < 2:
        return True
    values = pa.array(ids, pa.string())
    return bool(pc.all(pc.less(values.slice(0, len(values) - 1), values.slice(1))).as_py())


def fitted_builder(
    config: PipelineConfig, data: PipelineData, fallback: pd.DataFrame, leads: pd.DataFrame | None = None
) -> FeatureBuilder:
    """A feature builder fitted as training would fit it (on the train snapshots when there are outcomes).

    ``leads``: the pipeline's leads as :func:`derived_once` gives them, when the caller has them.
    The builder learns its event types from one event of each type (:func:`one_event_per_type`).
    """
    builder = FeatureBuilder(config.features, config.profile)
    rows = fallback
    if data.outcomes is not None and len(data.outcomes):
        snapshots = make_snapshots(config, data)
        train = snapshots.loc[(snapshots["split"] == "train").to_numpy()]
        if len(train):
            rows = train
    leads = derived_once(config.profile, data.leads) if leads is None else leads
    return builder.fit(rows, leads, one_event_per_type(data.events))


def one_event_per_type(events: pd.DataFrame | None) -> pd.DataFrame | None:
    """The first event of each type present, all columns kept: the builder's event types, from a few rows.

    ``FeatureBuilder.fit`` reads the events for their types alone (its behaviour columns come from
    no snapshot), so these rows fit the same builder as millions of events. Events whose types are
    not a category (none the data contract gives) are returned whole.
    """
    if events is None or not isinstance(events["event_type"].dtype, pd.CategoricalDtype):
        return events
    codes = events["event_type"].cat.codes.to_numpy()
    _, first = np.unique(codes[codes >= 0], return_index=True)
    return events.iloc[np.sort(np.flatnonzero(codes >= 0)[first])]


def features_at(
    pipeline: str | os.PathLike | PipelineConfig | None,
    leads_path: str | os.PathLike | None,
    events_path: str | os.PathLike | None,
    as_of: object,
    *,
    drop_orphans: bool = False,
    builder: FeatureBuilder | None = None,
    data: PipelineData | None = None,
) -> pd.DataFrame:
    """Features of every open lead at ``as_of``: ``lead_id``, ``as_of`` and the feature columns.

    With no pipeline, ``leads_path`` (and optionally ``events_path``) are read with default windows
    and every event type present. ``data`` skips loading when the caller has the tables already.
    """
    stamp = to_utc(as_of)
    if pipeline is None:
        if leads_path is None:
            raise ConfigError("give a pipeline file or --leads (and --events)")
        config = parse_pipeline({"name": "features"})
        leads = contract.load_leads(leads_path)
        on_orphans: contract.OrphanPolicy = "drop" if drop_orphans else "error"
        keep = event_attributes(config.features)
        events = (
            contract.load_events(events_path, leads=leads, on_orphans=on_orphans, keep=keep) if events_path else None
        )
        data = PipelineData(leads=leads, events=events)
    else:
        config = pipeline if isinstance(pipeline, PipelineConfig) else load_pipeline(pipeline)
        if config.is_flat:
            raise ConfigError(f"{config.name}: a flat pipeline has no events; its table already holds the features")
        if data is None and builder is None:
            from leadml.features import open_leads_parquet as arrow

            fast = arrow.arrow_pipeline_data(config)  # None: the events need the pandas path
            if fast is not None:
                data, events = fast
                snapshots = open_lead_snapshots(data, stamp)
                leads = derived_once(config.profile, data.leads)
                builder = fitted_builder(config, data, snapshots, leads)
                return arrow.open_lead_frame(builder, snapshots, leads, events, config.features)
        if data is None:
            needed = event_attributes(config.features) if builder is None else None
            data = load_pipeline_data(config.data, need_outcomes=False, event_columns=needed)
    snapshots = open_lead_snapshots(data, stamp)
    leads = data.leads
    if builder is None:
        leads = derived_once(config.profile, data.leads)
        builder = fitted_builder(config, data, snapshots, leads)
    features = builder.transform(snapshots, leads, data.events)
    return pd.concat([snapshots, features], axis=1)


def event_attributes(features: FeatureConfig | None) -> list[str] | None:
    """The events' attribute columns a feature set reads (None: every one, as a ``type[value]`` step does)."""
    features = features or FeatureConfig()
    if any(parse_step(step, name)[1] is not None for name, path in features.scenarios.items() for step in path):
        return None
    counted = {column for by_column in features.attribute_counts.values() for column in by_column}
    return sorted(counted | value_columns(features.event_values))


def derived_once(profile: ProfileConfig | None, leads: pd.DataFrame) -> pd.DataFrame:
    """``add_derived_fields(leads)`` without the raw text fields the derived ones come from.

    ``FeatureBuilder`` derives ``job_level`` and ``email_domain_kind`` again from the leads it is
    given: the raw fields are no features (unless ``profile.columns`` names them), so once is enough.
    Each derived field reads its row's raw field and its own column alone (the level from the
    title and ``job_level``, the kind from the e-mail and ``email_domain_kind``), so each is derived
    on the distinct pairs (a few thousand among hundreds of thousands of leads) and gathered.
    """
    profile = profile or ProfileConfig()
    raw = [c for c in (profile.job_title_column, profile.email_column) if c and c in leads.columns]
    enriched = leads.copy()
    fields = ((profile.job_title_column, None, "job_level"), (None, profile.email_column, "email_domain_kind"))
    for title, email, column in fields:
        source = title or email
        if not source or source not in leads.columns:
            continue
        inputs = [source, *([column] if column in leads.columns else [])]
        first, inverse = _distinct_rows(leads, inputs)
        if first is None:
            derived = add_derived_fields(leads[inputs], title, email)[column]
        else:
            small = add_derived_fields(leads[inputs].iloc[first], title, email)[column]
            derived = pd.Series(small.to_numpy(dtype=object)[inverse], index=leads.index, dtype=object)
        enriched[column] = derived
    named = set(profile.columns or ())
    return enriched.drop(columns=[c for c in raw if c not in named])


def _distinct_rows(frame: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray | None, np.ndarray]:
    """The first row of each distinct combination of ``columns``, and each row's combination.

    (None, empty) when a column holds Python objects, whose equal values may print differently
    (1 and 1.0), or when there are no columns.
    """
    key = np.zeros(len(frame), dtype=np.int64)
    for column in columns:
        values = frame[column]
        if not (isinstance(values.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(values.dtype)):
            return None, np.zeros(0, dtype=np.int64)
        if pd.api.types.is_object_dtype(values.dtype):
            return None, np.zeros(0, dtype=np.int64)
        codes, uniques = pd.factorize(values)
        _, key = np.unique(key * (len(uniques) + 1) + codes + 1, return_inverse=True)
    if not columns:
        return None, np.zeros(0, dtype=np.int64)
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return first, inverse
