"""The features of the open leads at one as_of, chunk by chunk: what the scoring job and its peers read.

Three-table data streams from sorted Parquet files (:mod:`leadml.jobs.inputs`); a flat table is
read whole. Each chunk comes with its snapshots (``lead_id``, ``as_of``) and the leads it read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd

from leadml.core.config import PipelineConfig
from leadml.core.errors import ConfigError

__all__ = ["FeatureChunk", "FeatureSource", "feature_source"]


@dataclass(frozen=True)
class FeatureChunk:
    """The open leads of one chunk: ``snapshots`` (``lead_id``, ``as_of``) and their ``features``."""

    snapshots: pd.DataFrame
    features: pd.DataFrame
    leads_read: int
    orphans: int = 0


@dataclass(frozen=True)
class FeatureSource:
    """The feature chunks of a job, with the total leads (for progress) and how they are read."""

    chunks: Iterator[FeatureChunk]
    total_leads: int
    streamed: bool = False
    notes: tuple[str, ...] = ()


def feature_source(
    config: PipelineConfig, builder, as_of: pd.Timestamp, *, chunk_leads: int = 100_000, check: bool = True
) -> FeatureSource:
    """The features of the open leads at ``as_of`` under ``builder``, chunk by chunk.

    Three-table data streams from sorted Parquet files (see :mod:`leadml.jobs.inputs`); a flat table
    is read whole and every row is scored. With ``check``, the first chunk is also computed by
    ``FeatureBuilder.transform`` and must agree (:func:`~leadml.features.chunk.check_chunk`).
    """
    if not (isinstance(chunk_leads, int) and chunk_leads > 0):
        raise ConfigError(f"chunk_leads must be a positive integer, got {chunk_leads!r}")
    if builder.flat_ != config.is_flat:
        kind = "a flat table" if builder.flat_ else "leads and events"
        raise ConfigError(f"{config.name}: the model was trained on {kind}, the pipeline's data is not of that kind")
    if builder.flat_:
        from leadml.data.sources import load_pipeline_data

        flat = load_pipeline_data(config.data).flat
        assert flat is not None  # a flat pipeline's data is its flat table
        return FeatureSource(_flat_chunks(flat, builder, as_of, chunk_leads), len(flat))
    from leadml.core.config import FeatureConfig
    from leadml.features.chunk import lead_fields
    from leadml.jobs.inputs import open_inputs

    inputs = open_inputs(config.data, as_of, lead_fields=lead_fields(builder),
                         features=builder.features or FeatureConfig(), chunk_leads=chunk_leads)  # fmt: skip
    chunks = _table_chunks(inputs, builder, as_of, check)
    return FeatureSource(chunks, inputs.total_leads, inputs.streamed, inputs.notes)


def _table_chunks(inputs, builder, as_of: pd.Timestamp, check: bool) -> Iterator[FeatureChunk]:
    from leadml.features.chunk import check_chunk, chunk_features

    for chunk in inputs.chunks():
        snapshots, features = chunk_features(builder, chunk.leads, chunk.events, chunk.outcomes, as_of,
                                             inputs.events_source)  # fmt: skip
        if check:
            check_chunk(builder, snapshots, features, chunk.leads, chunk.events)
            check = False
        done = FeatureChunk(snapshots, features, len(chunk.leads), chunk.orphans)
        del chunk, snapshots, features  # the next chunk is built without this one in memory
        yield done
        del done


def _flat_chunks(flat: pd.DataFrame, builder, as_of: pd.Timestamp, chunk_leads: int) -> Iterator[FeatureChunk]:
    for first in range(0, len(flat), chunk_leads):
        rows = flat.iloc[first : first + chunk_leads]
        snapshots = pd.DataFrame({"lead_id": rows["lead_id"].astype(str).to_numpy(),
                                  "as_of": pd.DatetimeIndex([as_of]).repeat(len(rows))})  # fmt: skip
        yield FeatureChunk(snapshots, builder.transform_flat(rows).reset_index(drop=True), len(rows))
