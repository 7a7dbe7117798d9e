"""The tables the Spark engine reads: every source of a pipeline as Parquet files, checked before Spark starts.

Spark reads Parquet. Three Parquet tables read as the data contract names them are read where they
are. Any other source (the simulator, CSV files, tables with a column map, a timestamp format or
outcome values) is first read by leadml's own loaders, :func:`~leadml.data.sources.load_pipeline_data`,
each table with its own settings (separator, encoding, timestamps, columns, outcome values): the
very step the pandas engine takes for such a source, so every value is parsed once and as that engine
parses it. The validated tables are then written as Parquet into the run's temporary folder, which
Spark reads like any other tables.

Why Parquet files rather than Spark frames made from Arrow (``createDataFrame``): one reading path
for every source (the Parquet one: its column pruning, and nanosecond timestamps that arrive
exact, where ``createDataFrame`` would cut them to microseconds); Spark reads the files in parallel
splits instead of carrying the data from the driver inside its plan; and the loaders' dtypes
(categoricals, time zones) need no conversion rules. The folder is the run's, beside the output,
and is removed at the end, even on failure; with a cluster master it must be on storage the
executors see, as the output folder must be anyway.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from leadml.core.config import DataConfig, PipelineConfig
from leadml.core.errors import ConfigError

__all__ = ["SparkTables", "check_spark_source", "read_in_place", "spark_tables"]


@dataclass(frozen=True)
class SparkTables:
    """The Parquet files of a run's leads, events and outcomes (None: the pipeline has no such table);
    ``staged`` names the source when leadml's loaders wrote them (None: the pipeline's own files)."""

    leads: Path
    events: Path | None = None
    outcomes: Path | None = None
    staged: str | None = None


def check_spark_source(config: PipelineConfig) -> None:
    """Refuse, before Spark starts, a source the Spark engine does not take: a flat table or a public data set.

    Raises:
        ConfigError: ``data.source`` is ``flat`` or ``public``.
    """
    if config.data.source in ("flat", "public"):
        raise ConfigError(
            f"{config.name}: the Spark engine scores leads with events (data.source: simulator or tables), "
            f"not a {config.data.source} table of one row per lead; use --engine pandas"
        )


def read_in_place(data: DataConfig) -> bool:
    """Whether Spark reads the pipeline's tables where they are: Parquet files, named as the contract names them."""
    if data.source != "tables" or data.reshaping_keys():
        return False
    tables = [data.table(name) for name in ("leads", "events", "outcomes")]
    return all(table is None or table.path.suffix.lower() in (".parquet", ".pq") for table in tables)


def spark_tables(config: PipelineConfig, folder: str | Path) -> SparkTables:
    """The Parquet tables of ``config`` for Spark: its own files, or its source read by leadml's loaders
    and written into ``folder`` (which the caller removes).

    Raises:
        ConfigError: the source is one the Spark engine does not take (:func:`check_spark_source`).
        LeadDataError: the loaders refuse the data (file, column and rows named), before Spark starts.
    """
    check_spark_source(config)
    data = config.data
    if read_in_place(data):
        leads, events, outcomes = (data.table(name) for name in ("leads", "events", "outcomes"))
        assert leads is not None  # DataConfig's validator requires the leads of source 'tables'
        return SparkTables(leads.path, events.path if events else None, outcomes.path if outcomes else None)
    from leadml.data.sources import load_pipeline_data

    loaded = load_pipeline_data(data, need_outcomes=False)
    assert loaded.leads is not None  # a source of leads and events (flat and public were refused)
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    has_events = data.source == "simulator" or data.table("events") is not None
    source = "the simulator" if data.source == "simulator" else "the pipeline's tables, read by leadml"
    return SparkTables(
        _write(loaded.leads, target / "leads.parquet"),
        _write(loaded.events, target / "events.parquet") if has_events and loaded.events is not None else None,
        _write(loaded.outcomes, target / "outcomes.parquet") if loaded.outcomes is not None else None,
        staged=source,
    )


def _write(frame: pd.DataFrame, path: Path) -> Path:
    """A validated table as one Parquet file, typed as loaded (timestamps in UTC, categoricals as dictionaries)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with warnings.catch_warnings():  # pyarrow reads Series.values of the tz-aware timestamps
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, path)
    return path
