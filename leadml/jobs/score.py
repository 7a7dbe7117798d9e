"""The batch scoring job: every open lead at one as_of, scored by the champion model, into one file.

:func:`score_batch` is what ``leadml score`` runs. It loads the model from the registry (by default
``models:/<registered_model>@champion``; a ``runs:/`` URI or a local model folder work too), builds
the features of the open leads with the model's own fitted
:class:`~leadml.features.build.FeatureBuilder` (so a lead scored at T gets exactly the features its
training snapshot at T had), scores them chunk by chunk, and streams ``lead_id, as_of, model_name,
model_version, probability, score, tier, is_mql, reason_1..3, counter_reason_1..2, reasons`` into
a Parquet or CSV file that appears only when it is complete (:mod:`leadml.jobs.output`). Memory
holds one chunk of leads and their events (:mod:`leadml.jobs.inputs`). Rows come in ``lead_id``
order, and the same inputs give the same bytes.

Reasons (SHAP, :mod:`leadml.explain`) are a step of their own, skipped with ``reasons=False``:
the fast path. Drift against the training snapshots is measured on the way when the model
carries a reference (:mod:`leadml.jobs.drift`) and written beside the scores.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from leadml.jobs.feature_source import FeatureChunk, FeatureSource, feature_source
from leadml.jobs.history import keep_history
from leadml.jobs.progress import Progress, ProgressBar
from leadml.jobs.summary import ScoreSummary
from leadml.modeling.loading import LoadedModel, Scorer, check_builder, check_spec, load_model, probabilities
from leadml.jobs.reasons import REASON_COLUMNS, ReasonsStep, default_reasons
from leadml.core.config import PipelineConfig
from leadml.core.errors import ConfigError
from leadml.features.snapshots import to_utc

__all__ = ["REASON_COLUMNS", "SCORES_SCHEMA", "FeatureChunk", "FeatureSource", "LoadedModel", "ScoreSummary",
           "check_builder", "check_spec", "default_reasons", "feature_source", "load_model", "probabilities",
           "score_batch", "scores_table"]

log = logging.getLogger("leadml.jobs.score")

SCORES_SCHEMA = pa.schema([
    ("lead_id", pa.string()), ("as_of", pa.timestamp("ns", tz="UTC")), ("model_name", pa.string()),
    ("model_version", pa.string()), ("probability", pa.float64()), ("score", pa.int16()), ("tier", pa.string()),
    ("is_mql", pa.bool_()), ("fit_score", pa.int16()), ("engagement_score", pa.int16()),
    ("grid_tier", pa.string()), ("next_action", pa.string()), ("due_at", pa.timestamp("ns", tz="UTC")),
    *((name, pa.string()) for name in REASON_COLUMNS),
])  # fmt: skip


def scores_table(loaded: LoadedModel, snapshots: pd.DataFrame, features: pd.DataFrame,
                 reasons: ReasonsStep | None = None, scorer: Scorer | None = None,
                 config: PipelineConfig | None = None, subscores: bool = True) -> pa.Table:
    """The scores rows of some snapshots (``lead_id``, ``as_of``) and their features.

    With ``config``, the decision columns (sub-scores, grid tier, next action, due_at) are filled
    (:mod:`leadml.jobs.decisions`); without, they are empty.
    """
    from leadml.jobs.decisions import DECISION_COLUMNS, decision_columns
    from leadml.jobs.output import timestamps
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
        history: append the scores to the score history (:mod:`leadml.jobs.history`); default: the
            pipeline's ``history.enabled``.
        chunk_leads: leads per chunk (memory is about proportional to it).
        progress: a rich progress bar (True; default: when stderr is a terminal) or a callback
            ``(leads done, leads total)``.
        engine: ``pandas`` (this process) or ``spark`` (:func:`leadml.jobs.spark.score_spark`).
        drift: measure drift against the model's training reference, when it has one.

    Returns:
        A :class:`ScoreSummary` (rows, tiers, MQL count, timing, drift table).

    Raises:
        ModelError: the model cannot be loaded or its feature set does not match.
        LeadDataError / ConfigError: bad input data or settings.
    """
    if engine == "spark":
        from leadml.jobs.spark import score_spark

        return score_spark(config, as_of, out, model_uri=model_uri, reasons=reasons, spark_master=spark_master,
                           subscores=subscores, history=history)
    if engine != "pandas":
        raise ConfigError(f"engine must be 'pandas' or 'spark', got {engine!r}")
    from leadml.jobs.output import ScoresWriter, unnamed_output
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
    from leadml.jobs.quality import QualityCounter
    from leadml.jobs.drift import model_reference

    quality = QualityCounter(model_reference(loaded.scoring))
    scorer = Scorer(loaded.scoring)
    tiers: dict[str, int] = {}
    bar = ProgressBar(progress, source.total_leads, f"scoring at {stamp:%Y-%m-%d}")
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


def _subscore_notes(scoring, subscores: bool) -> list[str]:
    if subscores and getattr(scoring, "subscores", None) is None:
        return ["the model carries no sub-score scale (trained before sub-scores, or the rules baseline): "
                "fit_score, engagement_score and grid_tier are empty; retrain to get them"]
    return []


def _config_notes(config: PipelineConfig, builder) -> list[str]:
    """A note when the pipeline's feature settings are not the model's (the model's are used)."""
    from leadml.features.chunk import spec_differences
    from leadml.core.config import FeatureConfig

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
    from leadml.jobs.drift import DriftCounter, model_reference

    reference = model_reference(scoring)
    return DriftCounter(reference) if reference is not None else None


def _finish_drift(summary: ScoreSummary, counter) -> None:
    from leadml.jobs.drift import drift_path, report_drift

    summary.drift = counter.table()
    summary.drift_path = drift_path(summary.out)
    report_drift(summary.drift, summary.drift_path)

