"""The batch scoring job: every open lead at one as_of, scored by the champion model, into one file.

:func:`score_batch` is what ``leadml score`` runs. It loads the model from the registry (by default
``models:/<registered_model>@champion``; a ``runs:/`` URI or a local model folder work too), builds
the features of the open leads with the model's own fitted
:class:`~leadml.features.build.FeatureBuilder` (so a lead scored at T gets exactly the features its
training snapshot at T had), scores them chunk by chunk, and streams ``lead_id, as_of, model_name,
model_version, probability, score, tier, is_mql, reason_1..3, counter_reason_1..2, reasons`` into
a Parquet or CSV file that appears only when it is complete (:mod:`leadml.jobs.output`). Memory
holds a few chunks of leads and their events (:mod:`leadml.jobs.inputs`): the one scored, the next
one's features, built meanwhile in a thread, and the events read ahead. Rows come in ``lead_id``
order, and the same inputs give the same bytes.

How the job runs is one frozen :class:`ScoreOptions`. On the pandas engine it is three steps:
:func:`prepare_scoring` (the model, the reasons step, the notes, the feature chunks),
:func:`score_chunk` (score, write, count) for every chunk, and :func:`finish_scoring` (the summary,
the drift file, the score history). The Spark engine is :mod:`leadml.jobs.spark`.

Reasons (SHAP, :mod:`leadml.explain`) are a step of their own, skipped with ``reasons=False``:
the fast path. Drift against the training snapshots is measured on the way when the model
carries a reference (:mod:`leadml.jobs.drift`) and written beside the scores.

A rules model (a cold start or a rules win, ``LeadScoringModel.needs_points``) is served the same
way: every chunk also carries the rules' scores of its leads (:mod:`leadml.jobs.feature_source`),
whose points are the model's input; its reasons are the rules that fired and its sub-scores the
rules' fit and engagement points (in percent of their most), as one note of the summary says.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from leadml.core.config import PipelineConfig
from leadml.data.merge import read_ahead
from leadml.features.snapshots import to_utc
from leadml.jobs.engines import check_engine
from leadml.jobs.feature_source import FeatureChunk, FeatureSource, feature_source
from leadml.jobs.history import keep_history
from leadml.jobs.progress import Progress, ProgressBar
from leadml.jobs.reasons import (
    REASON_COLUMNS,
    ExplainReasons,
    ReasonsStep,
    chunks_with_run_cut,
    default_reasons,
    needs_run_cut,
    reasons_step,
)
from leadml.jobs.summary import ScoreSummary
from leadml.modeling.loading import LoadedModel, Scorer, check_builder, check_spec, load_model, probabilities

if TYPE_CHECKING:
    from leadml.jobs.drift import DriftCounter
    from leadml.jobs.output import ScoresWriter
    from leadml.jobs.quality import QualityCounter

__all__ = [
    "REASON_COLUMNS",
    "SCORES_SCHEMA",
    "FeatureChunk",
    "FeatureSource",
    "LoadedModel",
    "ScoreOptions",
    "ScoreSummary",
    "ScoringJob",
    "check_builder",
    "check_spec",
    "default_reasons",
    "feature_source",
    "finish_scoring",
    "load_model",
    "prepare_scoring",
    "probabilities",
    "score_batch",
    "score_chunk",
    "scores_table",
]

log = logging.getLogger("leadml.jobs.score")

SCORES_SCHEMA = pa.schema([
    ("lead_id", pa.string()), ("as_of", pa.timestamp("ns", tz="UTC")), ("model_name", pa.string()),
    ("model_version", pa.string()), ("probability", pa.float64()), ("score", pa.int16()), ("tier", pa.string()),
    ("is_mql", pa.bool_()), ("fit_score", pa.int16()), ("engagement_score", pa.int16()),
    ("grid_tier", pa.string()), ("mql_route", pa.string()), ("next_action", pa.string()), ("due_at", pa.timestamp("ns", tz="UTC")),
    ("mql_since", pa.timestamp("ns", tz="UTC")), ("overdue", pa.bool_()), ("out_of_range", pa.string()),
    *((name, pa.string()) for name in REASON_COLUMNS),
])  # fmt: skip
EXPECTED_VALUE = pa.field("expected_value", pa.float64())  # p x value - touch_cost, under mql.policy: value


def scores_schema(scoring) -> pa.Schema:
    """The scores file's columns for a model: :data:`SCORES_SCHEMA`, with ``expected_value`` after
    ``is_mql`` when its MQL rule is the value policy (:mod:`leadml.modeling.group_policy`)."""
    rule = getattr(scoring, "mql_rule", None)
    if rule is None or not rule.by_value:
        return SCORES_SCHEMA
    return SCORES_SCHEMA.insert(SCORES_SCHEMA.get_field_index("is_mql") + 1, EXPECTED_VALUE)


def scores_table(
    loaded: LoadedModel,
    snapshots: pd.DataFrame,
    features: pd.DataFrame,
    reasons: ReasonsStep | None = None,
    scorer: Scorer | None = None,
    config: PipelineConfig | None = None,
    subscores: bool = True,
    rules: pd.DataFrame | None = None,
    spells: pd.Series | None = None,
    accepted: pd.Series | None = None,
    mql_columns: pd.DataFrame | None = None,
    filled: dict[str, int] | None = None,
) -> pa.Table:
    """The scores rows of some snapshots (``lead_id``, ``as_of``) and their features.

    With ``config``, the decision columns (sub-scores, grid tier, next action, due_at, mql_since,
    overdue) are filled (:mod:`leadml.jobs.decisions`); without, they are empty. ``rules``: a rules
    model's rules scores of the snapshots (:attr:`FeatureChunk.rules`), which give its sub-scores and
    reasons. ``spells`` (lead_id -> mql_since of the earlier runs) and ``accepted`` (lead_id ->
    sql_at) fix each MQL's deadline to the start of its spell (:mod:`leadml.jobs.handoff`).
    ``mql_columns``: the group / value of each snapshot's lead, for a model whose MQL rule has a
    threshold per lead (:attr:`FeatureChunk.mql_columns`); ``filled`` counts the leads whose missing
    value took the training median (key ``value``) and those without a group (key ``group``).
    """
    from leadml.jobs.decisions import DECISION_COLUMNS, decision_arrays
    from leadml.jobs.output import arrow_column, timestamps
    from leadml.modeling.frame_blocks import column_arrays

    scoring, n = loaded.scoring, len(snapshots)
    matrix = scoring.booster_matrix(features) if scorer is not None and hasattr(scoring, "booster_matrix") else None
    p = scorer(features, matrix) if scorer is not None else probabilities(scoring, features)
    threshold, expected, missing = (scoring.mql_thresholds(p, mql_columns) if hasattr(scoring, "mql_thresholds")
                                    else (scoring.threshold, None, 0))  # fmt: skip
    if filled is not None:
        filled["value"] = filled.get("value", 0) + missing
        if mql_columns is not None and "mql__group" in mql_columns:
            filled["group"] = filled.get("group", 0) + int(mql_columns["mql__group"].isna().sum())
    score, tiers, is_mql = _policy(p, threshold, scoring.tiers)
    lead_ids, stamps = snapshots["lead_id"], snapshots["as_of"]  # each looked up once
    columns = {
        "lead_id": pa.array(lead_ids.to_numpy(dtype=object), pa.string()),
        "as_of": timestamps(stamps),
        "model_name": pa.repeat(pa.scalar(loaded.name, pa.string()), n),
        "model_version": pa.repeat(pa.scalar(loaded.version, pa.string()), n),
        "probability": pa.array(p, pa.float64()),
        "score": pa.array(score, pa.int16()),
        "tier": pa.array(tiers, pa.string()),
        "is_mql": pa.array(is_mql, pa.bool_()),
    }  # fmt: skip
    schema = scores_schema(scoring)
    if expected is not None and EXPECTED_VALUE.name in schema.names:
        columns[EXPECTED_VALUE.name] = pa.array(expected, pa.float64())
    if config is not None and n:
        as_of = pd.Timestamp(stamps.iloc[0])
        decisions = decision_arrays(scoring, config, features, tiers, as_of, subscores=subscores, matrix=matrix,
                                     rules=rules, lead_ids=lead_ids, is_mql=is_mql,
                                     spells=spells, accepted=accepted)  # fmt: skip
        for name in DECISION_COLUMNS:
            columns[name] = arrow_column(decisions[name], SCORES_SCHEMA.field(name).type)
    else:
        for name in DECISION_COLUMNS:
            columns[name] = pa.nulls(n, SCORES_SCHEMA.field(name).type)
    explained = None
    if reasons is not None and n:
        explained = _reasons(reasons, scoring, features, p, rules, lead_ids, threshold, matrix)
    texts = column_arrays(explained) if explained is not None else {}
    for name in REASON_COLUMNS:
        if name in texts:
            columns[name] = pa.array(_objects(texts[name]), pa.string(), from_pandas=True)
        else:
            columns[name] = pa.nulls(n, pa.string())
    return pa.table({name: columns[name] for name in schema.names}, schema=schema)


def _objects(values) -> np.ndarray:
    """A column's array as Python objects, as ``Series.to_numpy(dtype=object)`` gives them."""
    return values.to_numpy(dtype=object) if hasattr(values, "to_numpy") else np.asarray(values, dtype=object)


def _policy(p: np.ndarray, threshold: float | np.ndarray, tiers) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`~leadml.modeling.policy.apply_policy`'s score, tier (as text) and MQL flag as arrays,
    without its frame (a served lead pays for no column lookups)."""
    from leadml.modeling.policy import assign_tiers, score_0_100

    p = np.asarray(p, dtype=float)
    tier = assign_tiers(p, tiers, threshold)
    if (tier.codes >= 0).all():  # every row has its tier: each row's category as text
        text = np.array([str(name) for name in tier.categories], dtype=object)[tier.codes]
    else:
        text = pd.Series(tier).astype(str).to_numpy(dtype=object)
    return score_0_100(p), text, p >= threshold


def _reasons(step: ReasonsStep, scoring, features: pd.DataFrame, p: np.ndarray, rules: pd.DataFrame | None,
             lead_ids: pd.Series | None = None, threshold: float | np.ndarray | None = None,
             matrix: np.ndarray | None = None):  # fmt: skip
    """The reason columns: the step's, or for a rules model the rules that fired (when the step can say;
    a rules model without its rules scores gets none: it has no SHAP to explain it). leadml's own
    step gets the ``lead_ids`` too, which split ties at the run's top cut, each lead's MQL
    ``threshold`` (one per lead under a group or value rule), so every MQL is explained, and the
    booster's ``matrix`` of the features when the scoring built one (the explainer reads it as is)."""
    threshold = scoring.threshold if threshold is None else threshold
    ours = isinstance(step, ExplainReasons)
    ids = {"lead_ids": lead_ids} if ours else {}
    of_rules = getattr(step, "of_rules", None)
    if rules is not None and of_rules is not None:
        return of_rules(rules, p, threshold, **ids)
    if rules is None and of_rules is not None and getattr(scoring, "needs_points", False):
        return None
    if isinstance(step, ExplainReasons):
        return step(scoring, features, p, lead_ids=lead_ids, threshold=threshold, matrix=matrix)
    return step(scoring, features, p)


# -- the job's options -------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoreOptions:
    """How the scoring job runs, apart from what it scores (pipeline, as_of, output file, model).

    Attributes:
        reasons: add the reason columns for the MQLs and the top 20 % (True), for a selection
            (``all``, ``mql``, ``top:N``, ``top:N%``), none (False: the fast path), or a function
            ``(scoring_model, features, probability) -> reasons frame``.
        subscores: fill ``fit_score``, ``engagement_score`` and ``grid_tier`` (False: empty).
        history: append the scores to the score history (:mod:`leadml.jobs.history`); None: the
            pipeline's ``history.enabled``.
        chunk_leads: leads per chunk (memory is about proportional to it; pandas engine).
        progress: a rich progress bar (True; None: when stderr is a terminal) or a callback
            ``(leads done, leads total)`` (pandas engine).
        drift: measure drift against the model's training reference, when it has one (pandas
            engine; on Spark, ``leadml monitor`` measures it).

    Example:
        >>> options = ScoreOptions(reasons=False, chunk_leads=50_000)
        >>> ScoreOptions.of(options, drift=False).drift, options.drift
        (False, True)
    """

    reasons: bool | str | ReasonsStep = True
    subscores: bool = True
    history: bool | None = None
    chunk_leads: int = 100_000
    progress: bool | Progress | None = None
    drift: bool = True

    @classmethod
    def of(cls, options: ScoreOptions | None = None, **changes: Any) -> ScoreOptions:
        """``options`` (default: the defaults) with the fields in ``changes`` replaced.

        Raises:
            TypeError: a name in ``changes`` is not an option (the known ones are listed).
        """
        known = [f.name for f in fields(cls)]
        unknown = [name for name in changes if name not in known]
        if unknown:
            raise TypeError(f"unknown scoring option {unknown[0]!r}; the options are {', '.join(known)}")
        return replace(options if options is not None else cls(), **changes)


# -- the job -----------------------------------------------------------------------------------
def score_batch(
    config: PipelineConfig,
    as_of: object,
    out: str | os.PathLike,
    options: ScoreOptions | None = None,
    *,
    model_uri: str | os.PathLike | None = None,
    engine: str = "pandas",
    spark_master: str | None = None,
    **option_values: Any,
) -> ScoreSummary:
    """Score every open lead at ``as_of`` with a registered model and write the scores file.

    Parameters:
        config: the pipeline (its data, and its MLflow settings for the default model).
        as_of: the scoring instant (a date means 00:00 UTC); leads created after it or closed
            before it are not scored.
        out: the scores file, ``.parquet`` or ``.csv`` (Spark: a Parquet folder).
        options: how the job runs (:class:`ScoreOptions`: reasons, sub-scores, history, chunk
            size, progress, drift); default ``ScoreOptions()``.
        model_uri: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/RUN/model``, a model
            folder, or a loaded LeadScoringModel; default ``models:/<registered_model>@champion``.
        engine: ``pandas`` (this process) or ``spark`` (:func:`leadml.jobs.spark.score_spark`).
        spark_master: the Spark master (Spark engine; default ``SPARK_MASTER`` or ``local[2]``).
        option_values: the fields of :class:`ScoreOptions` as keywords (``reasons=False``,
            ``chunk_leads=50_000``, ...), as earlier releases took them; they override ``options``.

    Returns:
        A :class:`ScoreSummary` (rows, tiers, MQL count, timing, drift table).

    Raises:
        ModelError: the model cannot be loaded or its feature set does not match.
        LeadDataError / ConfigError: bad input data or settings (an unknown engine among them).
        TypeError: a keyword that is not a scoring option.
    """
    options = ScoreOptions.of(options, **option_values)
    if check_engine(engine) == "spark":
        from leadml.jobs.spark import score_spark

        return score_spark(config, as_of, out, model_uri=model_uri, reasons=options.reasons, spark_master=spark_master,
                           subscores=options.subscores, history=options.history)  # fmt: skip
    job = prepare_scoring(config, as_of, out, options, model_uri=model_uri)
    return finish_scoring(job, _score_chunks(job))


@dataclass
class ScoringJob:
    """One run of the pandas engine between its steps: what :func:`prepare_scoring` set up, and
    the counters :func:`score_chunk` feeds and :func:`finish_scoring` turns into the summary."""

    config: PipelineConfig
    options: ScoreOptions
    loaded: LoadedModel
    reasons: ReasonsStep | None
    source: FeatureSource
    summary: ScoreSummary
    scorer: Scorer
    quality: QualityCounter
    drift: DriftCounter | None
    started: float
    spells: pd.Series | None = None  # lead_id -> mql_since of the MQL spells the earlier runs left open
    filled: dict[str, int] = field(default_factory=dict)  # leads whose MQL rule read a missing value / group

    @property
    def metadata(self) -> dict[str, str]:
        """What the scores file records about its model (Parquet schema metadata)."""
        return {"leadml.model_uri": self.loaded.uri, "leadml.spec_hash": self.loaded.scoring.builder.spec_hash()}


def prepare_scoring(config: PipelineConfig, as_of: object, out: str | os.PathLike, options: ScoreOptions,
                    *, model_uri: str | os.PathLike | None = None) -> ScoringJob:  # fmt: skip
    """Check the output name, load the model, pick the reasons step and open the feature chunks.

    Everything that can fail on the arguments fails here, before a file is opened; the notes about
    the model and the pipeline (feature settings, sub-scores, how the data is read) start the summary.
    The MQL spells still open in the score history are read, so each MQL keeps its deadline.
    """
    from leadml.data.io import check_output_path, table_format
    from leadml.jobs.drift import DriftCounter
    from leadml.jobs.handoff import previous_spells_in
    from leadml.jobs.history import history_path
    from leadml.jobs.quality import QualityCounter
    from leadml.modeling.drift_reference import model_reference

    started = time.perf_counter()
    stamp = to_utc(as_of)
    table_format(out)  # an unknown extension or a folder fails before any work
    check_output_path(out)
    loaded = load_model(config, model_uri)
    check_builder(loaded.scoring)
    builder = loaded.scoring.builder
    step = reasons_step(options.reasons)
    summary = ScoreSummary(Path(out), stamp, loaded.uri, loaded.name, loaded.version, reasons=step is not None)
    if options.reasons is True and step is None:
        summary.notes.append("reasons are not available in this installation; the reason columns are empty")
    summary.notes.extend(_config_notes(config, builder))
    summary.notes.extend(_subscore_notes(loaded.scoring, options.subscores))
    rules = loaded.scoring.ruleset() if getattr(loaded.scoring, "needs_points", False) else None
    if rules is not None:
        summary.notes.append(_rules_note(rules, options, step))
    source = feature_source(config, builder, stamp, chunk_leads=options.chunk_leads, rules=rules,
                            mql=getattr(loaded.scoring, "mql_columns", (None, None)))  # fmt: skip
    summary.streamed = source.streamed
    summary.notes.extend(source.notes)
    reference = model_reference(loaded.scoring)
    drift = DriftCounter(reference) if options.drift and reference is not None else None
    spells = previous_spells_in(history_path(config, out), stamp)
    return ScoringJob(config, options, loaded, step, source, summary, Scorer(loaded.scoring),
                      QualityCounter(reference), drift, started, spells)  # fmt: skip


def score_chunk(job: ScoringJob, chunk: FeatureChunk, writer: ScoresWriter) -> None:
    """Score one chunk of open leads, write its rows, and count it (tiers, MQLs, quality, drift)."""
    table = scores_table(job.loaded, chunk.snapshots, chunk.features, job.reasons, job.scorer, job.config,
                         job.options.subscores, chunk.rules, job.spells, chunk.accepted, chunk.mql_columns,
                         job.filled)  # fmt: skip
    writer.write(table)
    summary = job.summary
    summary.chunks += 1
    summary.leads_read += chunk.leads_read
    summary.orphans += chunk.orphans
    summary.mql += int(pc.sum(table.column("is_mql")).as_py() or 0)
    for tier, count in _text_counts(table.column("tier")):
        summary.tiers[tier] = summary.tiers.get(tier, 0) + count
    for name, count in _text_counts(table.column("out_of_range").drop_null()):
        summary.out_of_range[name] = summary.out_of_range.get(name, 0) + count
    summary.past_target += chunk.past_target
    if job.drift is not None:
        job.drift.add(chunk.features, table.column("probability").to_numpy())
    job.quality.add(chunk.features)


def _text_counts(column: pa.ChunkedArray) -> list[tuple[str, int]]:
    """Each distinct text of a column and its rows, by text (a missing one counted as ``"None"``), as
    ``np.unique`` of the column's values as text counts them; Arrow counts without making the texts."""
    counted = pc.value_counts(column)
    texts = ["None" if text is None else text for text in counted.field("values").to_pylist()]
    return sorted(zip(texts, counted.field("counts").to_pylist()))


def finish_scoring(job: ScoringJob, rows: int) -> ScoreSummary:
    """Close the summary of a job whose ``rows`` are written: tiers, data quality, timing, the drift
    table beside the scores, and the score history."""
    summary = job.summary
    summary.rows = rows
    summary.tiers = dict(sorted(summary.tiers.items()))
    summary.unseen = {column: n for column, n in job.quality.other.items() if n}
    summary.notes.extend(job.quality.notes())
    summary.notes.extend(_mql_rule_notes(job.loaded.scoring, job.filled))
    if summary.out_of_range_note():
        summary.notes.append(summary.out_of_range_note() or "")
    if summary.past_target:
        summary.notes.append(f"{summary.past_target:,} open leads already reached {job.config.snapshots.target} "
                             "(or a later stage) and were not scored as prospects")  # fmt: skip
    summary.seconds = time.perf_counter() - job.started
    if job.drift is not None:
        from leadml.jobs.drift import drift_path, report_drift

        summary.drift = job.drift.table()
        summary.drift_path = drift_path(summary.out)
        report_drift(summary.drift, summary.drift_path)
    keep_history(job.config, summary, job.options.history)
    for note in summary.notes:
        log.info(note)
    return summary


def _score_chunks(job: ScoringJob) -> int:
    """Every chunk through :func:`score_chunk` into one file that appears whole or not at all; the rows."""
    from leadml.jobs.output import ScoresWriter, unnamed_output

    out = job.summary.out
    bar = ProgressBar(job.options.progress, job.source.total_leads, f"scoring at {job.summary.as_of:%Y-%m-%d}")
    try:
        with unnamed_output(out) as sink, _run_chunks(job) as chunks:
            writer = ScoresWriter(sink, out, scores_schema(job.loaded.scoring), job.metadata)
            try:
                for chunk in chunks:
                    score_chunk(job, chunk, writer)
                    bar.advance(chunk.leads_read)
                    del chunk  # before the chunk after the next is made
                if writer.rows == 0:  # inside the block: the empty file never replaces the last scores
                    raise no_open_leads(job.config, job.summary.as_of)
            finally:
                writer.close()
    finally:
        bar.close()
    return writer.rows


@contextlib.contextmanager
def _run_chunks(job: ScoringJob) -> Iterator[Iterator[FeatureChunk]]:
    """The job's chunks. When reasons go to the top of the run and the run has several chunks, the
    run is measured first (:func:`~leadml.jobs.reasons.chunks_with_run_cut`) and the job's reasons
    step gets the cut: the leads explained do not depend on the chunks (nor on the engine).

    A run of several chunks builds the next chunk's features in a thread while this one is scored
    (:func:`~leadml.data.merge.read_ahead`): the same chunks in the same order, the GIL-free parts
    of the two (Arrow, numpy, the compiled kernels) on both cores; one chunk more is in memory."""
    if job.source.total_leads <= job.options.chunk_leads:
        yield job.source.chunks  # one chunk is the whole run: nothing to build ahead, its own top is the run's
        return
    ahead = cast("Generator[FeatureChunk, None, None]", read_ahead(job.source.chunks))  # made by a generator
    try:
        if not needs_run_cut(job.reasons):
            yield ahead
            return
        with _cut_chunks(job, ahead) as chunks:
            yield chunks
    finally:
        ahead.close()  # stops the thread when the run ends early


@contextlib.contextmanager
def _cut_chunks(job: ScoringJob, chunks: Iterator[FeatureChunk]) -> Iterator[Iterator[FeatureChunk]]:
    """``chunks`` after the run is measured, the job's reasons step given the run's cut."""

    def probability(chunk: FeatureChunk) -> np.ndarray:  # as scores_table computes it
        scoring = job.loaded.scoring
        matrix = scoring.booster_matrix(chunk.features) if hasattr(scoring, "booster_matrix") else None
        return job.scorer(chunk.features, matrix)

    assert isinstance(job.reasons, ExplainReasons)  # needs_run_cut says so
    with chunks_with_run_cut(chunks, job.reasons, probability, job.summary.out.parent) as (cut, step):
        job.reasons = step
        yield cut


def no_open_leads(config: PipelineConfig, as_of: pd.Timestamp) -> Exception:
    """The error of a run with no open lead at ``as_of``, naming when the data starts and ends."""
    from leadml.core.errors import LeadDataError
    from leadml.data.sources import load_pipeline_data

    data = load_pipeline_data(config.data, need_outcomes=False)
    stamps = [frame[column] for frame, column in ((data.leads, "created_at"), (data.events, "timestamp"))
              if frame is not None and column in frame.columns and len(frame)]  # fmt: skip
    span = ""
    if stamps:
        start, end = min(s.min() for s in stamps), max(s.max() for s in stamps)
        span = f" (the data runs from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC)"
    return LeadDataError(
        f"{config.name}: no open lead at as_of {as_of:%Y-%m-%d %H:%M} UTC{span}; nothing was scored and the "
        "previous scores file is kept; pick an as_of within the data"
    )


def _mql_rule_notes(scoring, filled: dict[str, int]) -> list[str]:
    """What the MQL rule filled in: leads without a value (the training median) or without a group."""
    rule = getattr(scoring, "mql_rule", None)
    if rule is None:
        return []
    notes = []
    if filled.get("value"):
        median = f"{rule.value_median:g}" if rule.value_median is not None else "0 (training had no value)"
        notes.append(f"{filled['value']:,} leads have no {rule.value_column} (mql.value_column): their expected "
                     f"value uses the training median, {median}")  # fmt: skip
    if filled.get("group"):
        notes.append(f"{filled['group']:,} leads have no {rule.group_column} (mql.capacity_by): they take the "
                     "threshold of the 'default' group (or the global one)")  # fmt: skip
    return notes


def _rules_note(rules, options: ScoreOptions, step: ReasonsStep | None) -> str:
    """The one note of a rules model: what scores the leads, and what the SHAP-based columns hold instead."""
    parts = [f"the model is the rules '{rules.name}' scored as a model (a cold start or a win of the rules): "
             "each lead's rules points are its input"]  # fmt: skip
    if options.subscores:
        parts.append("fit_score and engagement_score are the rules' fit and engagement points in percent of "
                     "their most (empty for a tag without a most)")  # fmt: skip
    if step is not None:
        parts.append("the reasons are the rules that fired" if hasattr(step, "of_rules")
                     else "the reasons come from the given reasons function")  # fmt: skip
    return "; ".join(parts)


def _subscore_notes(scoring, subscores: bool) -> list[str]:
    if getattr(scoring, "needs_points", False):
        return []  # a rules model's sub-scores come from its rules (the rules note says so)
    if subscores and getattr(scoring, "subscores", None) is None:
        return [
            "the model carries no sub-score scale (trained before sub-scores, or the rules baseline): "
            "fit_score, engagement_score and grid_tier are empty; retrain to get them"
        ]
    return []


def _config_notes(config: PipelineConfig, builder) -> list[str]:
    """A note when the pipeline's feature settings are not the model's (the model's are used)."""
    from leadml.core.config import FeatureConfig
    from leadml.features.chunk import spec_differences

    model = (builder.features or FeatureConfig()).model_dump(mode="json")
    pipeline = config.features.model_dump(mode="json")
    if builder.flat_ or model == pipeline:
        return []
    differences = spec_differences({"settings": model}, {"settings": pipeline})
    return [
        "the pipeline's feature settings differ from the model's, which are used: "
        + "; ".join(d.replace(", features ", ", pipeline ") for d in differences)
    ]
