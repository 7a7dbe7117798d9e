"""The batch job's scorer under Spark Structured Streaming: every micro-batch of events rescored, crossings alerted.

For users who outgrow one process (``leadml serve`` keeps its state in one SQLite file). A stream of
events, files dropped in a folder or a Kafka topic, is read by ``readStream``; ``foreachBatch`` hands
each micro-batch to :class:`MicroBatchScorer`, which

1. stores the micro-batch's events (rows without ``lead_id``, ``timestamp`` or ``event_type`` go to
   ``refused/`` instead) beside the pipeline's own events table, the stored history;
2. rescores the leads the micro-batch touched, and only those, at the micro-batch's instant: each
   lead gets a bucket, ``pmod(xxhash64(lead_id), n)``, as in :mod:`leadml.jobs.spark`, and
   ``cogroup(...).applyInArrow`` hands every bucket's leads (with their outcome times and the start of
   their MQL spell) and all their stored events to the steps the server scores with
   (:func:`~leadml.jobs.inputs.frame_inputs`, :func:`~leadml.jobs.feature_source.table_chunks`,
   :func:`~leadml.jobs.score.scores_table`), so a streamed score equals ``leadml score --as-of`` at the
   same instant;
3. appends the scores, and an alert for every lead whose tier moved since its last streamed score
   (or whose first score is an MQL), with the events of the micro-batch that moved it.

Every table is a Parquet folder partitioned by ``batch_id`` and each micro-batch overwrites its own
partition, and the instant a micro-batch is scored at is written down before it is scored: a
micro-batch Spark runs again after a failure (it does, until the checkpoint records it done) gives
the same rows in place of the first attempt's, never twice. With the checkpoint, that makes the
output exactly once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from leadml.core.config import FeatureConfig, PipelineConfig
from leadml.jobs.spark import BUCKET, run_folder, utc
from leadml.jobs.spark_session import spark_session
from leadml.jobs.spark_sources import spark_tables

__all__ = [
    "MicroBatchScorer",
    "StreamFolders",
    "StreamSummary",
    "bucket_scores",
    "crossings",
    "event_features",
    "event_schema",
    "stream_scores",
]

BATCH = "batch_id"
KEYS = ("lead_id", "timestamp", "event_type")
OUTCOME = "__outcome_"  # the outcome times carried on each lead's row into its bucket
SPELL = "__mql_since"  # the start of the lead's MQL spell, from its last streamed score
PREVIOUS = ("tier", "is_mql", "probability", "score", "mql_since")
FORMATS = ("json", "csv", "parquet")


@dataclass(frozen=True)
class StreamFolders:
    """Where the stream writes: one Parquet folder per table, partitioned by ``batch_id``, under ``out``."""

    out: Path

    @property
    def events(self) -> Path:
        return self.out / "events"

    @property
    def scores(self) -> Path:
        return self.out / "scores"

    @property
    def alerts(self) -> Path:
        return self.out / "alerts"

    @property
    def refused(self) -> Path:
        return self.out / "refused"

    @property
    def checkpoint(self) -> Path:
        return self.out / "_checkpoint"

    def partition(self, table: Path, batch_id: int) -> str:
        """The folder of one micro-batch in ``table``."""
        return str(table / f"{BATCH}={batch_id}")

    def as_of(self, batch_id: int, clock: Callable[[], pd.Timestamp]) -> pd.Timestamp:
        """The instant micro-batch ``batch_id`` is scored at: the one written down by an earlier attempt,
        else ``clock()`` (to the microsecond, what Spark keeps), written down first."""
        path = self.out / "_as_of" / f"{batch_id}.txt"
        if path.is_file():
            return pd.Timestamp(path.read_text().strip())
        stamp = pd.Timestamp(clock()).tz_convert("UTC").floor("us")
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(stamp.isoformat())
        os.replace(temporary, path)
        return stamp


@dataclass
class StreamSummary:
    """What the micro-batches of one run did: per micro-batch, its id, instant and counts."""

    batches: list[dict[str, Any]] = field(default_factory=list)


def event_schema(spark, history: Path | None, ddl: str | None = None):
    """The schema the stream reads events with: ``ddl`` when given, else the stored events' columns (with
    ``timestamp`` as a timestamp: files spell it in ISO 8601), else the contract's three."""
    from pyspark.sql.types import StringType, StructField, StructType, TimestampType

    if ddl:
        return StructType.fromDDL(ddl)
    fields = [StructField("lead_id", StringType()), StructField("timestamp", TimestampType()),
              StructField("event_type", StringType())]  # fmt: skip
    if history is not None:
        stored = spark.read.parquet(str(history)).schema
        fields += [f for f in stored.fields if f.name not in KEYS]
    return StructType(fields)


def bucket_scores(config: PipelineConfig, model, as_of: pd.Timestamp, reasons: bool | str, schema: pa.Schema):
    """The function each bucket runs (on a worker): its leads and events in, the scores rows of its open leads out.

    ``model`` is a broadcast :class:`~leadml.modeling.loading.LoadedModel`; the steps are the server's
    (``LiveScorer.score``), so the rows are those of ``leadml score --as-of`` for these leads.
    """

    def run(leads: pa.Table, events: pa.Table) -> pa.Table:
        if leads.num_rows == 0:
            return schema.empty_table()
        rows = _score(config, model.value, _leads(leads), _events(events), as_of, reasons, _outcomes(leads),
                      _spells(leads))  # fmt: skip
        return rows.select(schema.names).cast(schema) if rows is not None else schema.empty_table()

    return run


def _leads(table: pa.Table) -> pd.DataFrame:
    import warnings

    from leadml.data import contract

    frame = table.drop_columns([c for c in table.column_names if c.startswith("__")]).to_pandas()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", contract.LeadDataWarning)
        return contract.validate_leads(frame.assign(created_at=utc(frame["created_at"])), source="<leads on Spark>")


def _events(table: pa.Table) -> pd.DataFrame | None:
    import warnings

    from leadml.data import contract

    if table.num_rows == 0:
        return None
    frame = table.drop_columns([BUCKET]).to_pandas()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", contract.LeadDataWarning)
        return contract.validate_events(frame.assign(timestamp=utc(frame["timestamp"])), source="<events on Spark>")


def _outcomes(leads: pa.Table) -> pd.DataFrame | None:
    """The leads' outcome times (``closed_at``, stage times) as the batch job's outcomes table."""
    names = [c for c in leads.column_names if c.startswith(OUTCOME)]
    if not names:
        return None
    frame = pd.DataFrame({"lead_id": leads.column("lead_id").to_pandas().astype(str)})
    for name in names:
        frame[name.removeprefix(OUTCOME)] = utc(leads.column(name).to_pandas())
    if "closed_at" not in frame.columns:  # stage times only: the batch job's outcomes table has the column
        frame["closed_at"] = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")
    times = frame.drop(columns="lead_id")
    frame = frame[times.notna().any(axis=1).to_numpy()]
    return frame.reset_index(drop=True) if len(frame) else None


def _spells(leads: pa.Table) -> pd.Series | None:
    """lead_id -> mql_since of the leads whose last streamed score was an MQL (their deadline stays)."""
    since = utc(leads.column(SPELL).to_pandas())
    held = since.notna().to_numpy()
    if not held.any():
        return None
    ids = leads.column("lead_id").to_pandas().astype(str).to_numpy()[held]
    return pd.Series(since[held].to_numpy(), index=ids, dtype="datetime64[ns, UTC]")


def event_features(config: PipelineConfig, loaded, rules=None) -> FeatureConfig:
    """The feature settings the events are read with: the model's, with the attributes a rules model's
    rules test (as the batch job reads them, so the stored events keep those columns)."""
    from leadml.jobs.feature_source import reading_rules

    features = loaded.scoring.builder.features or FeatureConfig()
    if rules is None and getattr(loaded.scoring, "needs_points", False):
        rules = loaded.scoring.ruleset()
    return reading_rules(config, features, rules) if rules is not None else features


def _score(config: PipelineConfig, loaded, leads: pd.DataFrame, events: pd.DataFrame | None, as_of: pd.Timestamp,
           reasons: bool | str, outcomes: pd.DataFrame | None, spells: pd.Series | None) -> pa.Table | None:  # fmt: skip
    """The scores rows of ``leads`` at ``as_of`` by the batch job's steps (what ``LiveScorer.score`` runs)."""
    import warnings

    from leadml.data import contract
    from leadml.jobs.feature_source import table_chunks
    from leadml.jobs.inputs import frame_inputs
    from leadml.jobs.reasons import reasons_step
    from leadml.jobs.score import Scorer, scores_table

    builder = loaded.scoring.builder
    rules = loaded.scoring.ruleset() if getattr(loaded.scoring, "needs_points", False) else None
    features = event_features(config, loaded, rules)
    inputs = frame_inputs(leads, events, outcomes, as_of, features=features, chunk_leads=max(len(leads), 1))
    mql = getattr(loaded.scoring, "mql_columns", (None, None))
    scorer, step, tables = Scorer(loaded.scoring), reasons_step(reasons), []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", contract.LeadDataWarning)
        for chunk in table_chunks(inputs, builder, as_of, False, rules, config, mql):
            tables.append(scores_table(loaded, chunk.snapshots, chunk.features, step, scorer, config, True,
                                       chunk.rules, spells, chunk.accepted, chunk.mql_columns))  # fmt: skip
    return pa.concat_tables(tables) if tables else None


class MicroBatchScorer:
    """The ``foreachBatch`` function: store a micro-batch's events, rescore its leads, append scores and alerts.

    ``leads``, ``history`` and ``outcomes`` are Parquet tables (the pipeline's, staged by
    :func:`~leadml.jobs.spark_sources.spark_tables`); ``as_of`` fixes every micro-batch's instant (a
    replay), None scores each at the time it starts.
    """

    def __init__(self, spark, config: PipelineConfig, loaded, folders: StreamFolders, *, leads: Path,
                 history: Path | None = None, outcomes: Path | None = None, as_of: pd.Timestamp | None = None,
                 reasons: bool | str = "all", n_buckets: int | None = None):  # fmt: skip
        from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

        from leadml.jobs.inputs import frame_event_columns
        from leadml.jobs.score import scores_schema

        self.spark, self.config, self.folders = spark, config, folders
        self.loaded, self.model = loaded, spark.sparkContext.broadcast(loaded)
        self.leads, self.history, self.outcomes = leads, history, outcomes
        self.clock = (lambda: as_of) if as_of is not None else (lambda: pd.Timestamp.now(tz="UTC"))
        self.reasons = reasons
        self.buckets = n_buckets or 2 * spark.sparkContext.defaultParallelism
        self.schema = from_arrow_schema(scores_schema(loaded.scoring))
        self.arrow_schema = to_arrow_schema(self.schema, timezone="UTC")  # what Spark takes: microseconds
        features = event_features(config, loaded)
        self.wanted: Callable[[list[str]], list[str]] = lambda columns: frame_event_columns(columns, features)
        self.summary = StreamSummary()

    def __call__(self, batch, batch_id: int) -> None:
        from pyspark.sql import functions as F

        as_of = self.folders.as_of(batch_id, self.clock)
        batch = batch.withColumn("lead_id", F.col("lead_id").cast("string"))
        keys = [F.col(name).isNotNull() for name in KEYS]
        batch = batch.withColumn("__valid", keys[0] & keys[1] & keys[2] & (F.trim("event_type") != "")).persist()
        try:
            counts = batch.groupBy("__valid").count().collect()  # one pass: the micro-batch is read and cached
            refused = sum(row["count"] for row in counts if not row["__valid"])
            if refused:
                batch.filter(~F.col("__valid")).drop("__valid").write.mode("overwrite").parquet(
                    self.folders.partition(self.folders.refused, batch_id)
                )
            events = batch.filter(F.col("__valid")).drop("__valid")
            events.write.mode("overwrite").parquet(self.folders.partition(self.folders.events, batch_id))
            previous = self._previous(batch_id)
            scores = self._rescore(events.select("lead_id").distinct(), previous, batch_id, as_of)
            scores.write.mode("overwrite").parquet(self.folders.partition(self.folders.scores, batch_id))
            scored = self.spark.read.parquet(self.folders.partition(self.folders.scores, batch_id))
            crossings(scored, previous, events).write.mode("overwrite").parquet(
                self.folders.partition(self.folders.alerts, batch_id)
            )
            alerts = self.spark.read.parquet(self.folders.partition(self.folders.alerts, batch_id))
            self.summary.batches.append({"batch_id": batch_id, "as_of": as_of, "refused": refused,
                                         "events": sum(row["count"] for row in counts) - refused,
                                         "scored": scored.count(), "alerts": alerts.count()})  # fmt: skip
        finally:
            batch.unpersist()

    def _previous(self, batch_id: int):
        """Each lead's last score before micro-batch ``batch_id`` (None: nothing scored yet)."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        if not any(self.folders.scores.glob(f"{BATCH}=*/*.parquet")):
            return None
        scores = self.spark.read.parquet(str(self.folders.scores)).filter(F.col(BATCH) < batch_id)
        latest = Window.partitionBy("lead_id").orderBy(F.col(BATCH).desc())
        return (scores.withColumn("__rank", F.row_number().over(latest)).filter(F.col("__rank") == 1)
                .select("lead_id", *PREVIOUS))  # fmt: skip

    def _rescore(self, touched, previous, batch_id: int, as_of: pd.Timestamp):
        """The scores rows of the touched leads, by bucket, from their stored rows."""
        from pyspark.sql import functions as F

        bucket = F.pmod(F.xxhash64("lead_id"), F.lit(self.buckets))
        leads = self.spark.read.parquet(str(self.leads)).withColumn("lead_id", F.col("lead_id").cast("string"))
        leads = leads.join(touched, "lead_id", "left_semi")
        if self.outcomes is not None:
            from leadml.data.contract import STAGE_COLUMNS

            outcomes = self.spark.read.parquet(str(self.outcomes))
            times = [c for c in ("closed_at", *STAGE_COLUMNS) if c in outcomes.columns]
            outcomes = outcomes.select(F.col("lead_id").cast("string"), *[F.col(c).alias(OUTCOME + c) for c in times])
            leads = leads.join(outcomes, "lead_id", "left")
        if previous is not None:
            spells = previous.select("lead_id", F.when(F.col("is_mql"), F.col("mql_since")).alias(SPELL))
            leads = leads.join(spells, "lead_id", "left")
        else:
            leads = leads.withColumn(SPELL, F.lit(None).cast("timestamp"))
        events = self._stored_events(batch_id).join(touched, "lead_id", "left_semi")
        run = bucket_scores(self.config, self.model, as_of, self.reasons, self.arrow_schema)
        return (leads.withColumn(BUCKET, bucket).groupBy(BUCKET)
                .cogroup(events.withColumn(BUCKET, bucket).groupBy(BUCKET)).applyInArrow(run, self.schema))  # fmt: skip

    def _stored_events(self, batch_id: int):
        """The pipeline's events and the streamed ones up to this micro-batch, timestamps as int64 ns."""
        from pyspark.sql import functions as F
        from pyspark.sql.types import TimestampType

        frames = [self.spark.read.parquet(str(self.folders.events)).filter(F.col(BATCH) <= batch_id).drop(BATCH)]
        if self.history is not None:
            frames.append(self.spark.read.parquet(str(self.history)))
        stored = None
        for frame in frames:
            frame = frame.select(*[F.col(f"`{c}`") for c in self.wanted(frame.columns)])
            if isinstance(frame.schema["timestamp"].dataType, TimestampType):
                frame = frame.withColumn("timestamp", F.unix_micros("timestamp") * F.lit(1000))
            frame = frame.withColumn("lead_id", F.col("lead_id").cast("string"))
            stored = frame if stored is None else stored.unionByName(frame, allowMissingColumns=True)
        return stored


def crossings(scored, previous, events):
    """The alerts of a micro-batch: its scored leads whose tier differs from their last score (or whose
    first score is an MQL), with the micro-batch's events of each lead (JSON, by time)."""
    from pyspark.sql import functions as F

    if previous is None:
        previous = scored.sparkSession.createDataFrame(
            [], "lead_id string, tier string, is_mql boolean, probability double, score short, mql_since timestamp"
        )
    before = previous.select("lead_id", *[F.col(c).alias(f"previous_{c}") for c in PREVIOUS])
    moved = scored.join(before, "lead_id", "left").filter(
        (F.col("previous_tier").isNull() & F.col("is_mql"))
        | (F.col("previous_tier").isNotNull() & (F.col("previous_tier") != F.col("tier")))
    )
    attributes = [c for c in events.columns if c != "lead_id"]
    since = events.groupBy("lead_id").agg(
        F.to_json(F.array_sort(F.collect_list(F.struct(*[F.col(f"`{c}`") for c in attributes])))).alias("events_since")
    )
    return moved.join(since, "lead_id", "left").select(
        "lead_id", "as_of", "model_name", "model_version", F.col("previous_tier").alias("from_tier"),
        F.col("tier").alias("to_tier"), "is_mql", F.coalesce(F.col("previous_is_mql"), F.lit(False)).alias("was_mql"),
        "probability", "previous_probability", "score", "previous_score", "next_action", "due_at",
        "reason_1", "reason_2", "reason_3", "events_since",
    )  # fmt: skip


def stream_scores(
    config: PipelineConfig,
    events_in: str | os.PathLike,
    out: str | os.PathLike,
    *,
    model_uri: Any = None,
    leads: str | os.PathLike | None = None,
    file_format: str = "json",
    schema: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    once: bool = False,
    as_of: object = None,
    reasons: bool | str = "all",
    every: str = "10 seconds",
    n_buckets: int | None = None,
    spark_master: str | None = None,
) -> StreamSummary:
    """Score the events dropped in ``events_in`` as they come, into ``out`` (:class:`StreamFolders`).

    Parameters:
        config: the pipeline: its leads, events (the stored history) and outcomes, and its settings.
        events_in: the folder watched for new event files (``file_format``: ``json`` lines, ``csv`` with
            a header, or ``parquet``), in the contract's shape with ISO 8601 timestamps.
        out: the output folder: ``events/``, ``scores/``, ``alerts/`` (``refused/`` when needed).
        model_uri: a ``models:/`` URI, a model folder or a loaded model; default the pipeline's champion.
        leads: a Parquet leads table read at every micro-batch (default: the pipeline's leads).
        schema: the events' columns as Spark DDL (default: the stored events' columns).
        checkpoint: Spark's checkpoint folder (default ``out/_checkpoint``): which files are done.
        once: process the files there now (``availableNow``) and return; else every ``every``, until stopped.
        as_of: one instant for every micro-batch (a replay); default the time each micro-batch starts.
        reasons: the reasons step's selection (``all``, ``mql``) or False.

    Raises:
        ConfigError: pyspark or Java is missing, a format other than json/csv/parquet, a flat source.
        ModelError: the model cannot be loaded or its feature set does not match.
    """
    from leadml.core.errors import ConfigError
    from leadml.features.snapshots import to_utc
    from leadml.jobs.score import check_builder, load_model

    if file_format not in FORMATS:
        raise ConfigError(f"--format {file_format!r}: the stream reads {', '.join(FORMATS)} files")
    loaded = load_model(config, model_uri)
    check_builder(loaded.scoring)
    folders = StreamFolders(Path(out))
    folders.out.mkdir(parents=True, exist_ok=True)
    with run_folder(folders.out / "tables") as scratch:
        tables = spark_tables(config, scratch)
        spark = spark_session(spark_master)
        scorer = MicroBatchScorer(spark, config, loaded, folders, leads=Path(leads) if leads else tables.leads,
                                  history=tables.events, outcomes=tables.outcomes,
                                  as_of=to_utc(as_of) if as_of is not None else None, reasons=reasons,
                                  n_buckets=n_buckets)  # fmt: skip
        reader = spark.readStream.schema(event_schema(spark, tables.events, schema)).format(file_format)
        if file_format == "csv":
            reader = reader.option("header", "true")
        writer = reader.load(str(events_in)).writeStream.foreachBatch(scorer)
        writer = writer.option("checkpointLocation", str(checkpoint or folders.checkpoint))
        query = writer.trigger(availableNow=True).start() if once else writer.trigger(processingTime=every).start()
        try:
            query.awaitTermination()
        finally:
            query.stop()  # stopped with the run (Ctrl-C too), before its tables are removed
    return scorer.summary
