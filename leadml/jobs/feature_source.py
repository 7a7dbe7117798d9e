"""The features of the open leads at one as_of, chunk by chunk: what the scoring job and its peers read.

Three-table data streams from sorted Parquet files (:mod:`leadml.jobs.inputs`); a flat table is
read whole. Each chunk comes with its snapshots (``lead_id``, ``as_of``) and the leads it read.

For a rules model (``rules`` given), each chunk also carries the rule set's scores of its snapshots
(:attr:`FeatureChunk.rules`: points, the rules that fired, sub-scores by tag), computed on the
chunk's own leads and events exactly as training computed them (only events before as_of count),
and its features gain the model's input, the points in column ``rules__points``. The leads and
events are read with the columns the rules test besides those the features need.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from leadml.core.config import FeatureConfig, PipelineConfig
from leadml.core.errors import ConfigError

if TYPE_CHECKING:
    from leadml.rules.ruleset import RuleSet

__all__ = ["FeatureChunk", "FeatureSource", "feature_source", "reading_rules", "table_chunks"]


@dataclass(frozen=True)
class FeatureChunk:
    """The open leads of one chunk: ``snapshots`` (``lead_id``, ``as_of``) and their ``features``;
    ``rules``, for a rules model, the rule set's scores of the snapshots (indexed like ``features``)."""

    snapshots: pd.DataFrame
    features: pd.DataFrame
    leads_read: int
    orphans: int = 0
    rules: pd.DataFrame | None = None
    past_target: int = 0  # open leads of the chunk already at the target stage (or later): not scored
    accepted: pd.Series | None = None  # lead_id -> sql_at of the chunk's leads sales accepted before as_of
    mql_columns: pd.DataFrame | None = None  # mql__group / mql__value of the snapshots (an MQL rule per lead)


@dataclass(frozen=True)
class FeatureSource:
    """The feature chunks of a job, with the total leads (for progress) and how they are read."""

    chunks: Iterator[FeatureChunk]
    total_leads: int
    streamed: bool = False
    notes: tuple[str, ...] = ()


def feature_source(
    config: PipelineConfig, builder, as_of: pd.Timestamp, *, chunk_leads: int = 100_000, check: bool = True,
    rules: RuleSet | None = None, mql: tuple[str | None, str | None] = (None, None),
) -> FeatureSource:  # fmt: skip
    """The features of the open leads at ``as_of`` under ``builder``, chunk by chunk.

    Three-table data streams from sorted Parquet files (see :mod:`leadml.jobs.inputs`); a flat table
    is read whole and every row is scored. With ``check``, the first chunk is also computed by
    ``FeatureBuilder.transform`` and must agree (:func:`~leadml.features.chunk.check_chunk`). With
    ``rules`` (the rule set of a rules model), every chunk carries its rules scores and points. With
    ``mql`` (the group and value columns of the model's MQL rule), every chunk carries those of its
    leads (:attr:`FeatureChunk.mql_columns`), read from the leads table.
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
        return FeatureSource(_flat_chunks(flat, builder, as_of, chunk_leads, rules, mql), len(flat))
    from leadml.features.chunk import lead_fields
    from leadml.jobs.inputs import open_inputs

    fields, features = lead_fields(builder), builder.features or FeatureConfig()
    if rules is not None:
        fields, features = [*fields, *rules.fields], reading_rules(config, features, rules)
    fields = [*fields, *(c for c in mql if c)]
    inputs = open_inputs(config.data, as_of, lead_fields=fields, features=features, chunk_leads=chunk_leads)
    chunks = table_chunks(inputs, builder, as_of, check, rules, config, mql)
    return FeatureSource(chunks, inputs.total_leads, inputs.streamed, inputs.notes)


def reading_rules(config: PipelineConfig, features: FeatureConfig, rules: RuleSet) -> FeatureConfig:
    """The feature settings as :func:`~leadml.jobs.inputs.open_inputs` reads them, with the event
    attributes the rules test (``where``) added to those read: they choose columns only, the
    features are the builder's own. Attributes the events file lacks are left for the rules' own
    error, which names the rule."""
    wanted = set(rules.event_attributes)
    table = config.data.table("events")
    path = table.path if table is not None else None
    if path is not None and path.suffix.lower() in (".parquet", ".pq") and path.is_file():
        import pyarrow.parquet as pq

        wanted &= set(pq.ParquetFile(path).schema_arrow.names)
    update: dict = {}
    if wanted:
        update["attribute_counts"] = {**features.attribute_counts, "<rules>": {a: [] for a in sorted(wanted)}}
    if rules.reads_every_attribute:  # a `type[value]` step looks at every column, as a feature scenario does
        steps = [step.label for rule in rules.rules for step in rule.steps if step.any_value is not None]
        update["scenarios"] = {**features.scenarios, "<rules>": steps}
    return features.model_copy(update=update) if update else features


def _chunk_rules(rules: RuleSet, snapshots: pd.DataFrame, leads: pd.DataFrame, events) -> pd.DataFrame:
    """The rule set's scores of a chunk's snapshots (the chunk's events are Arrow; the rules read pandas)."""
    keep = ["lead_id", "timestamp", "event_type", *rules.event_attributes]
    frame = None
    if events is not None:
        if rules.reads_every_attribute:
            keep = list(events.column_names)
        frame = events.select([c for c in keep if c in events.column_names]).to_pandas()
    return rules.score_snapshots(snapshots, leads, frame, subscores=True)


def _with_rules(features: pd.DataFrame, scores: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The features with the rules model's input (``rules__points``) and the scores indexed like them."""
    from leadml.rules.ruleset import POINTS_COLUMN

    scores.index = features.index
    features[POINTS_COLUMN] = scores["points"].to_numpy(dtype=float)
    return features, scores


def _mql_columns(leads: pd.DataFrame, snapshots: pd.DataFrame, mql: tuple[str | None, str | None],
                 config: PipelineConfig) -> pd.DataFrame | None:  # fmt: skip
    """The MQL rule's columns of a chunk's snapshots (None when the model has one threshold)."""
    if not any(mql):
        return None
    from leadml.data.mql_columns import mql_columns_of

    table = config.data.table("leads") if config.data.source == "tables" else None
    source = str(table.path) if table is not None and getattr(table, "path", None) else "leads"
    return mql_columns_of(leads, snapshots["lead_id"], *mql, source=source)


def table_chunks(inputs, builder, as_of: pd.Timestamp, check: bool, rules: RuleSet | None,
                  config: PipelineConfig, mql: tuple[str | None, str | None] = (None, None),
                  ) -> Iterator[FeatureChunk]:  # fmt: skip
    """The feature chunks of opened table inputs at ``as_of``: the scoring job's path, and the
    service's for the leads of one request (:mod:`leadml.serve.scorer`), so both build the same features."""
    from leadml.features.chunk import ColumnProblems, check_chunk, chunk_features
    from leadml.features.snapshots import LEFT_OUT

    problems = ColumnProblems()
    for chunk in inputs.chunks():
        problems.add(builder, chunk.leads)
        snapshots, features = chunk_features(builder, chunk.leads, chunk.events, chunk.outcomes, as_of,
                                             inputs.events_source, target=config.snapshots.target,
                                             pql=config.stages.pql)  # fmt: skip
        past_target = int(snapshots.attrs.get(LEFT_OUT, {}).get("past_target", 0))
        if check:
            check_chunk(builder, snapshots, features, chunk.leads, chunk.events)
            check = False
        scores = None
        if rules is not None:
            features, scores = _with_rules(features, _chunk_rules(rules, snapshots, chunk.leads, chunk.events))
        done = FeatureChunk(snapshots, features, len(chunk.leads), chunk.orphans, scores, past_target,
                            _accepted(chunk.outcomes), _mql_columns(chunk.leads, snapshots, mql, config))  # fmt: skip
        del chunk, snapshots, features, scores  # the next chunk is built without this one in memory
        yield done
        del done
    _warn_column_problems(problems, config)


def _accepted(outcomes: pd.DataFrame | None) -> pd.Series | None:
    """``lead_id -> sql_at`` of the chunk's leads that reached SQL before as_of (None: none did)."""
    if outcomes is None or "sql_at" not in outcomes.columns or not outcomes["sql_at"].notna().any():
        return None
    reached = outcomes[outcomes["sql_at"].notna()].drop_duplicates("lead_id", keep="last")
    return pd.Series(reached["sql_at"].to_numpy(), index=reached["lead_id"].astype(str).to_numpy())


def _warn_column_problems(problems, config: PipelineConfig) -> None:
    """One warning per leads column the model reads that the scoring table lacks or mistypes."""
    import warnings

    from leadml.data.contract import LeadDataWarning

    table = config.data.leads
    source = str(table.path) if table is not None and getattr(table, "path", None) else "leads"
    for message, kind, count in problems.messages(source):
        warnings.warn(LeadDataWarning(message, kind, count), stacklevel=2)


def _flat_chunks(
    flat: pd.DataFrame, builder, as_of: pd.Timestamp, chunk_leads: int, rules: RuleSet | None = None,
    mql: tuple[str | None, str | None] = (None, None),
) -> Iterator[FeatureChunk]:  # fmt: skip
    for first in range(0, len(flat), chunk_leads):
        rows = flat.iloc[first : first + chunk_leads]
        snapshots = pd.DataFrame({"lead_id": rows["lead_id"].astype(str).to_numpy(),
                                  "as_of": pd.DatetimeIndex([as_of]).repeat(len(rows))})  # fmt: skip
        features, scores = builder.transform_flat(rows).reset_index(drop=True), None
        if rules is not None:
            features, scores = _with_rules(features, rules.score_flat(rows, subscores=True))
        columns = None
        if any(mql):
            from leadml.data.mql_columns import lead_mql_columns

            columns = lead_mql_columns(rows, *mql, source="flat").reset_index(drop=True)
        yield FeatureChunk(snapshots, features, len(rows), rules=scores, mql_columns=columns)
