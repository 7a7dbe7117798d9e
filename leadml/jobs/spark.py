"""The batch job on Apache Spark: the same features per lead, scored through the registered pyfunc.

For event tables that do not fit one machine. The choice made here: Spark does the reading, the
shuffle and the parallelism, and the features themselves come from the *same* Python code as the
pandas engine, so the two cannot drift apart:

1. leads and events are read from Parquet (any other source, the simulator or CSV files, is read by
   leadml's loaders and handed over as Parquet, :mod:`leadml.jobs.spark_sources`, checked before
   Spark starts); each lead gets a bucket, ``pmod(xxhash64(lead_id), n)``, and its closing time (a
   left join with the outcomes);
2. ``groupBy(bucket).cogroup(...).applyInPandas`` hands every bucket's leads and events to
   :func:`~leadml.features.chunk.chunk_features` (the model's fitted FeatureBuilder, the Arrow
   timeline kernel): one row per open lead, categoricals as text, numbers as doubles;
3. ``mlflow.pyfunc.spark_udf(..., env_manager="local")`` scores the feature columns with the
   registered model; reasons, when asked for, are added by ``mapInPandas`` with the same model, to
   the leads the pandas engine explains: the top of the run is measured first over the scored
   leads (written once to the run's folder) and cut per partition (:mod:`leadml.explain.selection`);
4. the rows are sorted by ``lead_id`` and written as a Parquet folder, first under a temporary
   name in the output's folder and then renamed into place.

Local mode (``local[2]``) by default; any master through ``spark_master`` or ``SPARK_MASTER``.
The workers run this interpreter (``PYSPARK_PYTHON`` is set before the session starts). The session
and its quiet logging are :mod:`leadml.jobs.spark_session`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from leadml.core.errors import ConfigError, LeadDataError
from leadml.jobs.spark_session import column, spark_session
from leadml.jobs.spark_sources import SparkTables, check_spark_source, spark_tables

BUCKET_LEADS = 50_000
CLOSED = "__closed_at"
BUCKET = "__bucket"


# -- reading -----------------------------------------------------------------------------------
def _inputs(spark, tables: SparkTables, builder, n_buckets: int | None):
    """Leads (with bucket and closing time) and events (with bucket) as Spark frames."""
    from pyspark.sql import functions as F

    from leadml.core.config import FeatureConfig
    from leadml.features.chunk import lead_fields
    from leadml.jobs.inputs import frame_event_columns

    leads_path, events_path, outcomes_path = tables.leads, tables.events, tables.outcomes
    leads = spark.read.parquet(str(leads_path))
    missing = [c for c in ("lead_id", "created_at") if c not in leads.columns]
    if missing:
        raise LeadDataError(f"{leads_path}: missing required column(s) {missing} in the leads table "
                            f"(columns present: {leads.columns[:12]})")  # fmt: skip
    wanted = ["lead_id", "created_at", *(c for c in lead_fields(builder) if c in leads.columns)]
    leads = leads.select(*[column(c) for c in dict.fromkeys(wanted)])
    leads = leads.withColumn("lead_id", F.col("lead_id").cast("string"))
    if outcomes_path is not None:
        closed = spark.read.parquet(str(outcomes_path))
        closed = closed.select(F.col("lead_id").cast("string"), F.col("closed_at").alias(CLOSED))
        leads = leads.join(closed, "lead_id", "left")
    else:
        leads = leads.withColumn(CLOSED, F.lit(None).cast("timestamp"))
    buckets = n_buckets or max(2 * spark.sparkContext.defaultParallelism, math.ceil(leads.count() / BUCKET_LEADS))
    bucket = F.pmod(F.xxhash64("lead_id"), F.lit(buckets))
    events = None
    if events_path is not None:
        events = spark.read.parquet(str(events_path))
        wanted = frame_event_columns(events.columns, builder.features or FeatureConfig())
        events = events.select(*[column(c) for c in wanted]).withColumn("lead_id", F.col("lead_id").cast("string"))
        events = events.withColumn(BUCKET, bucket)
    return leads.withColumn(BUCKET, bucket), events, buckets


def _feature_schema(builder):
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType, TimestampType

    kinds = {info.name: info.kind for info in builder.feature_info_}
    fields = [StructField("lead_id", StringType()), StructField("as_of", TimestampType())]
    fields += [StructField(name, StringType() if kinds.get(name) == "categorical" else DoubleType())
               for name in builder.feature_names_]  # fmt: skip
    return StructType(fields)


def utc(values: pd.Series) -> pd.Series:
    """Timestamps from Spark as UTC: int64 nanoseconds (Parquet ns timestamps) or datetimes."""
    if pd.api.types.is_integer_dtype(values) or (values.dtype == object and values.isna().all()):
        return pd.to_datetime(values.astype("Int64"), unit="ns", utc=True)
    return pd.to_datetime(values, utc=True)


def bucket_features(builder, as_of: pd.Timestamp, event_columns: list[str]):
    """The function each bucket runs (on a worker): its leads and events in, features of its open leads out."""
    import pyarrow as pa

    from leadml.data.contract import validate_leads
    from leadml.features.chunk import chunk_features

    columns = ["lead_id", "as_of", *builder.feature_names_]
    categorical = {info.name for info in builder.feature_info_ if info.kind == "categorical"}

    def run(leads: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
        if leads.empty:
            return pd.DataFrame({name: pd.Series(dtype=object if name != "as_of" else "datetime64[ns, UTC]")
                                 for name in columns})  # fmt: skip
        closed_at = utc(leads[CLOSED])
        profile = validate_leads(leads.drop(columns=[CLOSED, BUCKET]).assign(created_at=utc(leads["created_at"])),
                                 source="<leads on Spark>")  # fmt: skip
        early = (closed_at < as_of).to_numpy()
        outcomes = pd.DataFrame({"lead_id": profile["lead_id"].to_numpy()[early],
                                 "outcome": np.ones(int(early.sum()), np.int8),
                                 "closed_at": closed_at[early].reset_index(drop=True)})  # fmt: skip
        table = None
        if len(events):
            events = events.assign(timestamp=utc(events["timestamp"]))
            present = [c for c in event_columns if c in events.columns]
            table = pa.Table.from_pandas(events[present], preserve_index=False)
        snapshots, features = chunk_features(builder, profile, table, outcomes if len(outcomes) else None, as_of)
        out = {"lead_id": snapshots["lead_id"].astype(object), "as_of": snapshots["as_of"]}
        for name in builder.feature_names_:
            values = features[name]
            if name in categorical:
                out[name] = values.astype(object).where(values.notna(), None)
            else:
                out[name] = values.astype("float64")
        return pd.DataFrame(out)[columns]

    return run


def feature_frame(spark, tables: SparkTables, builder, as_of: pd.Timestamp, *, n_buckets: int | None = None):
    """A Spark frame of ``lead_id``, ``as_of`` and the builder's features of the open leads at ``as_of``
    (``tables``: :func:`~leadml.jobs.spark_sources.spark_tables`)."""
    leads, events, _ = _inputs(spark, tables, builder, n_buckets)
    if events is None:
        events = spark.createDataFrame([], "lead_id string, timestamp timestamp, event_type string, __bucket long")
    event_columns = [c for c in events.columns if c != BUCKET]
    run = bucket_features(builder, as_of, event_columns)
    return leads.groupBy(BUCKET).cogroup(events.groupBy(BUCKET)).applyInPandas(run, _feature_schema(builder))


# -- writing -----------------------------------------------------------------------------------
@contextlib.contextmanager
def folder_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it replaces ``path`` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".leadml-tmp-", dir=target.parent))
    try:
        yield work / "out"
        if target.exists():
            old = work / "previous"
            os.replace(target, old)
        os.replace(work / "out", target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def run_folder(out: str | os.PathLike) -> Iterator[Path]:
    """The run's temporary folder beside ``out`` (the tables of a staged source, the model, the scored
    leads); removed at the end, even on failure."""
    parent = Path(out).parent
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".leadml-spark-", dir=parent) as folder:
        yield Path(folder)


def spark_features(
    pipeline,
    leads_path: str | os.PathLike | None,
    events_path: str | os.PathLike | None,
    as_of: object,
    out: str | os.PathLike,
    *,
    model_uri: str | os.PathLike | None = None,
    spark_master: str | None = None,
    n_buckets: int | None = None,
) -> Path:
    """``leadml features --engine spark``: the features of every open lead at ``as_of``, as a Parquet folder.

    With ``model_uri`` the model's feature set is used (the features the model scores); else the
    feature set is fitted as ``leadml features`` fits it (on the pipeline's training snapshots,
    read once in pandas), so both engines write the same columns and values. The folder also
    holds ``_leadml_feature_spec.json`` (Spark ignores files starting with ``_``).
    """
    from leadml.core.config import load_pipeline, parse_pipeline
    from leadml.features.snapshots import to_utc
    from leadml.jobs.feature_files import SPEC_FILE

    stamp = to_utc(as_of)
    if pipeline is None:
        if leads_path is None:
            raise ConfigError("give a pipeline file or --leads (and --events)")
        data = {"source": "tables", "leads": str(leads_path), **({"events": str(events_path)} if events_path else {})}
        config = parse_pipeline({"name": "features", "data": data})
    else:
        config = pipeline if not isinstance(pipeline, (str, os.PathLike)) else load_pipeline(pipeline)
    check_spark_source(config)  # before the data, the model and Spark
    with run_folder(out) as scratch:
        tables = spark_tables(config, scratch / "tables")
        builder = _builder(config, stamp, model_uri)
        spark = spark_session(spark_master)
        frame = feature_frame(spark, tables, builder, stamp, n_buckets=n_buckets).orderBy("lead_id")
        with folder_output(out) as folder:
            frame.write.parquet(str(folder))
            (folder / SPEC_FILE).write_text(json.dumps(builder.spec(), sort_keys=True, default=str))
    return Path(out)


def _builder(config, stamp: pd.Timestamp, model_uri):
    if model_uri is not None:
        from leadml.modeling.loading import check_builder, load_model

        loaded = load_model(config, model_uri)
        check_builder(loaded.scoring)
        return loaded.scoring.builder
    from leadml.data.sources import load_pipeline_data
    from leadml.features.scoring_set import fitted_builder, open_lead_snapshots

    data = load_pipeline_data(config.data, need_outcomes=False)
    return fitted_builder(config, data, open_lead_snapshots(data, stamp))


# -- scoring -----------------------------------------------------------------------------------
DECISION_TYPES = {
    "fit_score": "short",
    "engagement_score": "short",
    "grid_tier": "string",
    "mql_route": "string",
    "next_action": "string",
    "due_at": "timestamp",
    "mql_since": "timestamp",
    "overdue": "boolean",
    "out_of_range": "string",
}  # the pandas engine's decision columns


def refuse_rules_model(loaded) -> None:
    """Refuse a rules model (a cold start or a rules win): its input, the rules points, is computed by
    the pandas engine only.

    Raises:
        ModelError: the model is the rules baseline.
    """
    if getattr(loaded.scoring, "needs_points", False):
        from leadml.core.errors import ModelError

        version = f" version {loaded.version}" if loaded.version else ""
        raise ModelError(f"{loaded.name}{version} is the rules scored as a model (a cold start or a rules win), "
                         "which the Spark engine does not serve; score it with --engine pandas")  # fmt: skip


def refuse_mql_rule(config, loaded=None) -> None:
    """Refuse an MQL rule with a threshold per lead (``mql.capacity_by``, ``mql.policy: value``): the
    Spark engine scores through the pyfunc's feature columns, which carry neither the group nor the value.

    Raises:
        ConfigError: the pipeline sets one (checked before the model loads); ModelError: the model carries one.
    """
    mql = config.mql
    if mql.capacity_by is not None or mql.policy == "value":
        from leadml.core.errors import ConfigError

        key = "mql.capacity_by" if mql.capacity_by is not None else "mql.policy: value"
        raise ConfigError(f"{config.name}: {key} gives each lead its own MQL threshold, which the Spark engine "
                          "does not carry; score with --engine pandas")  # fmt: skip
    if loaded is not None and getattr(loaded.scoring, "mql_rule", None) is not None:
        from leadml.core.errors import ModelError

        raise ModelError(f"{loaded.name}: the model's MQL threshold is per lead (by group or by value), which the "
                         "Spark engine does not carry; score with --engine pandas")  # fmt: skip


def _model_uri(loaded, folder: Path) -> str:
    """A URI Spark can load: the registry's, or the in-memory model saved as a pyfunc folder."""
    if loaded.uri.startswith("models:/") and loaded.version:
        return f"models:/{loaded.name}/{loaded.version}"  # the version the alias pointed to when the job began
    if loaded.uri != "<in memory>":
        return loaded.uri
    import mlflow.pyfunc

    from leadml.modeling.registry import LeadmlPyfunc

    mlflow.pyfunc.save_model(str(folder / "model"), python_model=LeadmlPyfunc(loaded.scoring))
    return str(folder / "model")


def _pandas_step(scoring, config, step, feature_names: list[str], as_of, subscores: bool):
    """A ``mapInPandas`` function adding the decision columns and (with a reasons ``step``) the reason columns."""
    from leadml.jobs.reasons import ExplainReasons

    categorical = set(scoring.categories)
    ours = isinstance(step, ExplainReasons)  # leadml's step: lead ids split ties at the run's top cut

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from leadml.jobs.decisions import DECISION_COLUMNS, decision_columns
        from leadml.jobs.reasons import REASON_COLUMNS

        for batch in batches:
            carried = [batch[_carried(i)] for i in range(len(feature_names))]
            features = pd.DataFrame({name: pd.Categorical(values, categories=scoring.categories[name])
                                     if name in categorical else values for name, values in zip(feature_names, carried)})  # fmt: skip
            decisions = decision_columns(scoring, config, features, batch["tier"].to_numpy(dtype=object), as_of,
                                         subscores=subscores, lead_ids=batch["lead_id"],
                                         is_mql=batch["is_mql"].to_numpy(dtype=bool)) if len(batch) else pd.DataFrame()  # fmt: skip
            added = {name: decisions[name].to_numpy() if name in decisions.columns else None
                     for name in DECISION_COLUMNS}  # fmt: skip
            explained = pd.DataFrame()
            if step is not None and len(batch):
                ids = {"lead_ids": batch["lead_id"]} if ours else {}
                explained = step(scoring, features, batch["probability"].to_numpy(), **ids)
            for name in REASON_COLUMNS:
                added[name] = explained[name].to_numpy() if name in explained.columns else None
            kept = batch.drop(columns=[_carried(i) for i in range(len(feature_names))])
            yield pd.concat([kept, pd.DataFrame(added, index=kept.index)], axis=1)  # at once: no fragmented frame

    return run


def _run_cut(scored, step):
    """``step`` with the top of the run: every scored lead's probability and id, collected (one float
    and one id a lead; exact, where ``approxQuantile`` is not)."""
    from leadml.explain.selection import top_cut

    leads = scored.select("lead_id", "probability").toPandas()
    return step.with_cut(top_cut(leads["probability"].to_numpy(dtype=float), leads["lead_id"].to_numpy(dtype=object),
                                 step.which))  # fmt: skip


def score_spark(
    config,
    as_of: object,
    out: str | os.PathLike,
    *,
    model_uri=None,
    reasons=True,
    spark_master: str | None = None,
    n_buckets: int | None = None,
    subscores: bool = True,
    history: bool | None = None,
):
    """``leadml score --engine spark``: :func:`~leadml.jobs.score.score_batch` on Spark, into a Parquet folder.

    The rows and columns are those of the pandas engine (``probability`` equal to the last bit, the
    same leads explained with the same reasons); the output is a folder of Parquet part files sorted
    by ``lead_id``. Every source of leads and events works (:mod:`leadml.jobs.spark_sources`); it is
    checked, and a non-Parquet one read, before Spark starts. Drift is left to ``leadml monitor``
    (which reads the folder).
    """
    from leadml.features.snapshots import to_utc
    from leadml.jobs.reasons import needs_run_cut, reasons_step
    from leadml.jobs.summary import ScoreSummary
    from leadml.modeling.loading import check_builder, load_model
    from leadml.modeling.registry import _mlflow_at, tracking_uri

    started = time.perf_counter()
    stamp = to_utc(as_of)
    check_spark_source(config)  # before the model, the data and Spark
    refuse_mql_rule(config)
    step = reasons_step(reasons)  # an unknown selection too
    loaded = load_model(config, model_uri)
    check_builder(loaded.scoring)
    refuse_rules_model(loaded)
    refuse_mql_rule(config, loaded)
    scoring, builder = loaded.scoring, loaded.scoring.builder
    summary = ScoreSummary(Path(out), stamp, loaded.uri, loaded.name, loaded.version, streamed=True)
    summary.reasons = step is not None
    names = list(scoring.feature_names)
    with run_folder(out) as scratch, _mlflow_at(tracking_uri(config)):
        tables = spark_tables(config, scratch / "tables")
        if tables.staged:
            summary.notes.append(f"Spark engine: the data of {tables.staged} was read as --engine pandas reads it "
                                 "and handed to Spark as Parquet")  # fmt: skip
        spark = spark_session(spark_master)
        features = feature_frame(spark, tables, builder, stamp, n_buckets=n_buckets)
        # the features are built and scored once, into the run's folder; sorting (which samples its
        # input) and measuring the top of the run read that, not the whole plan again
        _scored(spark, features, loaded, names, scratch).write.parquet(str(scratch / "scored"))
        scored = spark.read.parquet(str(scratch / "scored"))
        if needs_run_cut(step):  # the top of the run: measured over every scored lead, then cut per partition
            step = _run_cut(scored, step)
        with folder_output(out) as target:  # mapInPandas keeps each sorted partition's order
            _with_decisions(scored.orderBy("lead_id"), scoring, config, step, names, stamp, subscores).write.parquet(
                str(target)
            )
    _summarize(spark, summary, out, started)
    from leadml.jobs.history import keep_history

    keep_history(config, summary, history)
    return summary


def _carried(i: int) -> str:
    """The name the ``i``-th feature has after scoring: ``mapInPandas`` reads columns by name, and
    PySpark reads a dot in a name as a struct field (``product_active_day.minutes__sum_7d``)."""
    return f"__feature_{i}"


def _scored(spark, features, loaded, names: list[str], scratch: Path):
    """The features (renamed :func:`_carried`) with the model's columns (``probability``, ``score``, ``tier``,
    ``is_mql``) from its pyfunc."""
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars for a local copy
    result = "probability double, score int, tier string, is_mql boolean"
    with _quiet_env_manager():
        udf = mlflow.pyfunc.spark_udf(spark, _model_uri(loaded, scratch), env_manager="local", result_type=result)
    scored = features.withColumn("__scores", udf(F.struct(*[column(c) for c in names])))
    return scored.select("lead_id", "as_of", F.lit(loaded.name).alias("model_name"),
                         F.lit(loaded.version).alias("model_version"), "__scores.probability",
                         F.col("__scores.score").cast("short").alias("score"), "__scores.tier", "__scores.is_mql",
                         *[column(c).alias(_carried(i)) for i, c in enumerate(names)])  # fmt: skip


@contextlib.contextmanager
def _quiet_env_manager() -> Iterator[None]:
    """Without MLflow's advice to recreate the training environment: ``env_manager="local"`` is the
    choice here (the workers run this very interpreter, with leadml)."""
    import logging

    def advice(record: logging.LogRecord) -> bool:
        return "env_manager" not in record.getMessage()

    logger = logging.getLogger("mlflow.pyfunc")
    logger.addFilter(advice)
    try:
        yield
    finally:
        logger.removeFilter(advice)


def _with_decisions(scored, scoring, config, step, names: list[str], stamp, subscores: bool):
    """The scored leads with the decision and reason columns, without the features."""
    from pyspark.sql.types import StructType

    from leadml.jobs.reasons import REASON_COLUMNS

    run = _pandas_step(scoring, config, step, names, stamp, subscores)
    features = {_carried(i) for i in range(len(names))}
    schema = StructType([field for field in scored.schema.fields if field.name not in features])
    for name, kind in DECISION_TYPES.items():
        schema = schema.add(name, kind)
    for name in REASON_COLUMNS:
        schema = schema.add(name, "string")
    return scored.mapInPandas(run, schema)


def _summarize(spark, summary, out, started: float) -> None:
    """Tiers, rows, MQLs and timing of the written scores."""
    from pyspark.sql import functions as F

    written = spark.read.parquet(str(out))
    tiers = {row["tier"]: int(row["count"]) for row in written.groupBy("tier").count().collect()}
    summary.tiers = dict(sorted(tiers.items()))
    summary.rows = sum(tiers.values())
    summary.mql = written.filter(F.col("is_mql")).count()
    summary.seconds = time.perf_counter() - started
    summary.notes.append("Spark engine: drift is measured by `leadml monitor` on the written scores")
