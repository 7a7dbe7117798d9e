"""The batch scoring job: every open lead at one as_of, scored by the champion model, into one file.

:func:`score_batch` is what ``leadml score`` runs. It loads the model from the registry (by default
``models:/<registered_model>@champion``; a ``runs:/`` URI or a local model folder work too), builds
the features of the open leads with the model's own fitted
:class:`~leadml.features.build.FeatureBuilder` (so a lead scored at T gets exactly the features its
training snapshot at T had), scores them chunk by chunk, and streams ``lead_id, as_of, model_name,
model_version, probability, score, tier, is_mql, reason_1..3, counter_reason_1..2, reasons`` into
a Parquet or CSV file that appears only when it is complete (:mod:`leadml.batch_output`). Memory
holds one chunk of leads and their events (:mod:`leadml.batch_io`). Rows come in ``lead_id``
order, and the same inputs give the same bytes.

Reasons (SHAP, :mod:`leadml.explain`) are a step of their own, skipped with ``reasons=False``:
the fast path. Drift against the training snapshots is measured on the way when the model
carries a reference (:mod:`leadml.monitor`) and written beside the scores.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from leadml.batch_model import LoadedModel, Scorer, check_builder, check_spec, load_model, probabilities
from leadml.batch_reasons import REASON_COLUMNS, ReasonsStep, default_reasons
from leadml.config import PipelineConfig
from leadml.errors import ConfigError
from leadml.features.snapshots import to_utc

__all__ = ["REASON_COLUMNS", "SCORES_SCHEMA", "FeatureChunk", "FeatureSource", "LoadedModel", "ScoreSummary",
           "check_builder", "check_spec", "default_reasons", "feature_source", "load_model", "probabilities",
           "score_batch", "scores_table"]

log = logging.getLogger("leadml.batch")

SCORES_SCHEMA = pa.schema([
    ("lead_id", pa.string()), ("as_of", pa.timestamp("ns", tz="UTC")), ("model_name", pa.string()),
    ("model_version", pa.string()), ("probability", pa.float64()), ("score", pa.int16()), ("tier", pa.string()),
    ("is_mql", pa.bool_()), ("fit_score", pa.int16()), ("engagement_score", pa.int16()),
    ("grid_tier", pa.string()), ("next_action", pa.string()), ("due_at", pa.timestamp("ns", tz="UTC")),
    *((name, pa.string()) for name in REASON_COLUMNS),
])  # fmt: skip
Progress = Callable[[int, int], None]


def scores_table(loaded: LoadedModel, snapshots: pd.DataFrame, features: pd.DataFrame,
                 reasons: ReasonsStep | None = None, scorer: Scorer | None = None,
                 config: PipelineConfig | None = None, subscores: bool = True) -> pa.Table:
    """The scores rows of some snapshots (``lead_id``, ``as_of``) and their features.

    With ``config``, the decision columns (sub-scores, grid tier, next action, due_at) are filled
    (:mod:`leadml.batch_decisions`); without, they are empty.
    """
    from leadml.batch_decisions import DECISION_COLUMNS, decision_columns
    from leadml.batch_output import timestamps
    from leadml.modeling.policy import apply_policy

    scoring, n = loaded.scoring, len(snapshots)
    matrix = scoring.booster_matrix(features) if scorer is not None and hasattr(scoring, "booster_matrix") else None
    p = scorer(features, matrix) if scorer is not None else probabilities(scoring, features)
    policy = apply_policy(p, scoring.threshold, scoring.tiers)
    tiers = policy["tier"].astype(str).to_numpy(dtype=object)
    columns = {
        "lead_id": pa.array(snapshots["lead_id"].to_numpy(dtype=object), pa.string()),
        "as_of": timestamps(snapshots["as_of"]),
        "model_name": pa.repeat(pa.scalar(loaded.name, pa.string()), n),
        "model_version": pa.repeat(pa.scalar(loaded.version, pa.string()), n),
        "probability": pa.array(p, pa.float64()),
        "score": pa.array(policy["score"].to_numpy(), pa.int16()),
        "tier": pa.array(tiers, pa.string()),
        "is_mql": pa.array(policy["is_mql"].to_numpy(), pa.bool_()),
    }  # fmt: skip
    if config is not None and n:
        as_of = pd.Timestamp(snapshots["as_of"].iloc[0])
        decisions = decision_columns(scoring, config, features, tiers, as_of, subscores=subscores, matrix=matrix)
        for name in DECISION_COLUMNS:
            columns[name] = pa.Array.from_pandas(decisions[name], type=SCORES_SCHEMA.field(name).type)
    else:
        for name in DECISION_COLUMNS:
            columns[name] = pa.nulls(n, SCORES_SCHEMA.field(name).type)
    explained = reasons(scoring, features, p) if reasons is not None and n else None
    for name in REASON_COLUMNS:
        if explained is not None and name in explained.columns:
            columns[name] = pa.array(explained[name].astype(object).to_numpy(), pa.string(), from_pandas=True)
        else:
            columns[name] = pa.nulls(n, pa.string())
    return pa.table(columns, schema=SCORES_SCHEMA)


# -- the job -----------------------------------------------------------------------------------
@dataclass
class ScoreSummary:
    """What a scoring job did."""

    out: Path
    as_of: pd.Timestamp
    model_uri: str
    model_name: str
    model_version: str
    rows: int = 0
    leads_read: int = 0
    chunks: int = 0
    seconds: float = 0.0
    tiers: dict[str, int] = field(default_factory=dict)
    mql: int = 0
    orphans: int = 0
    streamed: bool = False
    reasons: bool = False
    drift: pd.DataFrame | None = None
    drift_path: Path | None = None
    unseen: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    history_path: Path | None = None

    @property
    def leads_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else float("nan")


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


def feature_source(config: PipelineConfig, builder, as_of: pd.Timestamp, *, chunk_leads: int = 100_000,
                   check: bool = True) -> FeatureSource:
    """The features of the open leads at ``as_of`` under ``builder``, chunk by chunk.

    Three-table data streams from sorted Parquet files (see :mod:`leadml.batch_io`); a flat table
    is read whole and every row is scored. With ``check``, the first chunk is also computed by
    ``FeatureBuilder.transform`` and must agree (:func:`~leadml.batch_features.check_chunk`).
    """
    if not (isinstance(chunk_leads, int) and chunk_leads > 0):
        raise ConfigError(f"chunk_leads must be a positive integer, got {chunk_leads!r}")
    if builder.flat_ != config.is_flat:
        kind = "a flat table" if builder.flat_ else "leads and events"
        raise ConfigError(f"{config.name}: the model was trained on {kind}, the pipeline's data is not of that kind")
    if builder.flat_:
        from leadml.data.sources import load_pipeline_data

        flat = load_pipeline_data(config.data).flat
        return FeatureSource(_flat_chunks(flat, builder, as_of, chunk_leads), len(flat))
    from leadml.batch_features import lead_fields
    from leadml.batch_io import open_inputs
    from leadml.config import FeatureConfig

    inputs = open_inputs(config.data, as_of, lead_fields=lead_fields(builder),
                         features=builder.features or FeatureConfig(), chunk_leads=chunk_leads)  # fmt: skip
    chunks = _table_chunks(inputs, builder, as_of, check)
    return FeatureSource(chunks, inputs.total_leads, inputs.streamed, inputs.notes)


def _table_chunks(inputs, builder, as_of: pd.Timestamp, check: bool) -> Iterator[FeatureChunk]:
    from leadml.batch_features import check_chunk, chunk_features

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


class _Bar:
    """A rich progress bar on stderr, a callback, or nothing."""

    def __init__(self, progress: bool | Progress | None, total: int, label: str):
        self.callback = progress if callable(progress) else None
        show = progress if isinstance(progress, bool) else (progress is None and sys.stderr.isatty())
        self.bar = None
        self.done, self.total = 0, total
        if show and self.callback is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                console=Console(stderr=True), transient=True)  # fmt: skip
            self.bar.start()
            self.task = self.bar.add_task(label, total=total)

    def advance(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done)
        if self.callback is not None:
            self.callback(self.done, self.total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def score_batch(
    config: PipelineConfig,
    as_of: object,
    out: str | os.PathLike,
    *,
    model_uri: str | os.PathLike | None = None,
    reasons: bool | str | ReasonsStep = True,
    subscores: bool = True,
    history: bool | None = None,
    chunk_leads: int = 100_000,
    progress: bool | Progress | None = None,
    engine: str = "pandas",
    spark_master: str | None = None,
    drift: bool = True,
) -> ScoreSummary:
    """Score every open lead at ``as_of`` with a registered model and write the scores file.

    Parameters:
        config: the pipeline (its data, and its MLflow settings for the default model).
        as_of: the scoring instant (a date means 00:00 UTC); leads created after it or closed
            before it are not scored.
        out: the scores file, ``.parquet`` or ``.csv`` (Spark: a Parquet folder).
        model_uri: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/RUN/model``, a model
            folder, or a loaded LeadScoringModel; default ``models:/<registered_model>@champion``.
        reasons: add the reason columns for the MQLs and the top 20 % (True), for a selection
            (``all``, ``mql``, ``top:N``, ``top:N%``), none (False: the fast path), or a function
            ``(scoring_model, features, probability) -> reasons frame``.
        subscores: fill ``fit_score``, ``engagement_score`` and ``grid_tier`` (False: empty).
        history: append the scores to the score history (:mod:`leadml.history`); default: the
            pipeline's ``history.enabled``.
        chunk_leads: leads per chunk (memory is about proportional to it).
        progress: a rich progress bar (True; default: when stderr is a terminal) or a callback
            ``(leads done, leads total)``.
        engine: ``pandas`` (this process) or ``spark`` (:func:`leadml.spark.score_spark`).
        drift: measure drift against the model's training reference, when it has one.

    Returns:
        A :class:`ScoreSummary` (rows, tiers, MQL count, timing, drift table).

    Raises:
        ModelError: the model cannot be loaded or its feature set does not match.
        LeadDataError / ConfigError: bad input data or settings.
    """
    if engine == "spark":
        from leadml.spark import score_spark

        return score_spark(config, as_of, out, model_uri=model_uri, reasons=reasons, spark_master=spark_master,
                           subscores=subscores, history=history)
    if engine != "pandas":
        raise ConfigError(f"engine must be 'pandas' or 'spark', got {engine!r}")
    from leadml.batch_output import ScoresWriter, unnamed_output
    from leadml.data.io import table_format

    started = time.perf_counter()
    stamp = to_utc(as_of)
    table_format(out)  # an unknown extension fails before any work
    loaded = load_model(config, model_uri)
    check_builder(loaded.scoring)
    builder = loaded.scoring.builder
    which = reasons if isinstance(reasons, str) else "default"
    step = reasons if callable(reasons) else default_reasons(which) if reasons else None
    summary = ScoreSummary(Path(out), stamp, loaded.uri, loaded.name, loaded.version, reasons=step is not None)
    if reasons is True and step is None:
        summary.notes.append("reasons are not available in this installation; the reason columns are empty")
    summary.notes.extend(_config_notes(config, builder))
    summary.notes.extend(_subscore_notes(loaded.scoring, subscores))
    source = feature_source(config, builder, stamp, chunk_leads=chunk_leads)
    summary.streamed = source.streamed
    summary.notes.extend(source.notes)
    counter = _drift_counter(loaded.scoring) if drift else None
    from leadml.batch_quality import QualityCounter
    from leadml.monitor import model_reference

    quality = QualityCounter(model_reference(loaded.scoring))
    scorer = Scorer(loaded.scoring)
    tiers: dict[str, int] = {}
    bar = _Bar(progress, source.total_leads, f"scoring at {stamp:%Y-%m-%d}")
    metadata = {"leadml.model_uri": loaded.uri, "leadml.spec_hash": builder.spec_hash()}
    try:
        with unnamed_output(out) as sink:
            writer = ScoresWriter(sink, out, SCORES_SCHEMA, metadata)
            try:
                for chunk in source.chunks:
                    table = scores_table(loaded, chunk.snapshots, chunk.features, step, scorer, config, subscores)
                    writer.write(table)
                    _count(summary, tiers, table, chunk)
                    if counter is not None:
                        counter.add(chunk.features, table.column("probability").to_numpy())
                    quality.add(chunk.features)
                    bar.advance(chunk.leads_read)
                    del chunk, table  # before the next chunk is made
            finally:
                writer.close()
    finally:
        bar.close()
    summary.rows = writer.rows
    summary.tiers = dict(sorted(tiers.items()))
    summary.unseen = {column: n for column, n in quality.other.items() if n}
    summary.notes.extend(quality.notes())
    summary.seconds = time.perf_counter() - started
    if counter is not None:
        _finish_drift(summary, counter)
    keep_history(config, summary, history)
    for note in summary.notes:
        log.info(note)
    return summary


def keep_history(config: PipelineConfig, summary: ScoreSummary, history: bool | None) -> None:
    """Append the written scores to the pipeline's score history (replacing the same day's)."""
    if not (config.history.enabled if history is None else history) or not summary.rows:
        return
    from leadml.history import history_path, record_scores

    summary.history_path = history_path(config, summary.out)
    record_scores(summary.out, summary.history_path)


def _subscore_notes(scoring, subscores: bool) -> list[str]:
    if subscores and getattr(scoring, "subscores", None) is None:
        return ["the model carries no sub-score scale (trained before sub-scores, or the rules baseline): "
                "fit_score, engagement_score and grid_tier are empty; retrain to get them"]
    return []


def _config_notes(config: PipelineConfig, builder) -> list[str]:
    """A note when the pipeline's feature settings are not the model's (the model's are used)."""
    from leadml.batch_features import spec_differences
    from leadml.config import FeatureConfig

    model = (builder.features or FeatureConfig()).model_dump(mode="json")
    pipeline = config.features.model_dump(mode="json")
    if builder.flat_ or model == pipeline:
        return []
    differences = spec_differences({"settings": model}, {"settings": pipeline})
    return ["the pipeline's feature settings differ from the model's, which are used: "
            + "; ".join(d.replace(", features ", ", pipeline ") for d in differences)]


def _count(summary: ScoreSummary, tiers: dict[str, int], table: pa.Table, chunk: FeatureChunk) -> None:
    summary.chunks += 1
    summary.leads_read += chunk.leads_read
    summary.orphans += chunk.orphans
    summary.mql += int(np.sum(table.column("is_mql").to_numpy(zero_copy_only=False)))
    values, counts = np.unique(table.column("tier").to_numpy(zero_copy_only=False).astype(str), return_counts=True)
    for tier, count in zip(values, counts):
        tiers[str(tier)] = tiers.get(str(tier), 0) + int(count)


def _drift_counter(scoring):
    from leadml.monitor import DriftCounter, model_reference

    reference = model_reference(scoring)
    return DriftCounter(reference) if reference is not None else None


def _finish_drift(summary: ScoreSummary, counter) -> None:
    from leadml.monitor import drift_path, report_drift

    summary.drift = counter.table()
    summary.drift_path = drift_path(summary.out)
    report_drift(summary.drift, summary.drift_path)

