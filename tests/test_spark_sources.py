"""The Spark engine's tables: every source is checked and read before Spark starts (no Spark needed here)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from leadml.core.config import parse_pipeline
from leadml.core.errors import ConfigError, LeadDataError
from leadml.data.simulate import write_simulation
from leadml.data.sources import load_pipeline_data
from leadml.jobs.spark_sources import read_in_place, spark_tables


def write_crm_export(folder: Path, n_leads: int = 400, seed: int = 5) -> dict:
    """Simulated tables as a CRM exports them: CSV with its own column names, separator, encoding,
    timestamp formats and outcome values; returns the pipeline's ``data`` section that reads them."""
    parquet = folder / "parquet"
    write_simulation(parquet, n_leads, seed=seed, chunk_size=max(n_leads // 3, 1))
    leads = pd.read_parquet(parquet / "leads.parquet")
    leads["created_at"] = leads["created_at"].dt.strftime("%Y/%m/%d %H:%M:%S")
    leads.rename(columns={"lead_id": "Contact ID", "created_at": "Create Date"}).to_csv(
        folder / "contacts.csv", sep=";", index=False, encoding="latin-1"
    )
    events = pd.read_parquet(parquet / "events.parquet")
    events["timestamp"] = (events["timestamp"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    events.to_csv(folder / "activities.csv", index=False)
    outcomes = pd.read_parquet(parquet / "outcomes.parquet")
    outcomes["outcome"] = outcomes["outcome"].map({"won": "closedwon", "lost": "closedlost"})
    outcomes.to_csv(folder / "deals.csv", index=False)
    return {
        "source": "tables",
        "leads": {"path": str(folder / "contacts.csv"), "columns": {"lead_id": "Contact ID", "created_at": "Create Date"},
                  "csv_separator": ";", "encoding": "latin-1", "timestamp_format": "%Y/%m/%d %H:%M:%S"},
        "events": {"path": str(folder / "activities.csv"), "timestamp_format": "epoch_ms"},
        "outcomes": {"path": str(folder / "deals.csv"), "won": ["closedwon"], "lost": ["closedlost"]},
    }  # fmt: skip


def test_a_csv_export_reaches_spark_parsed_as_the_pandas_engine_parses_it(tmp_path):
    config = parse_pipeline({"name": "crm", "data": write_crm_export(tmp_path)})
    assert not read_in_place(config.data)
    tables = spark_tables(config, tmp_path / "staged")
    loaded = load_pipeline_data(config.data, need_outcomes=False)
    assert tables.staged and tables.leads.parent == tmp_path / "staged"
    for path, frame in (
        (tables.leads, loaded.leads),
        (tables.events, loaded.events),
        (tables.outcomes, loaded.outcomes),
    ):
        assert path is not None and frame is not None
        pd.testing.assert_frame_equal(pd.read_parquet(path), frame.reset_index(drop=True), check_exact=True)
    assert str(loaded.leads["created_at"].dtype).startswith("datetime64") and len(loaded.outcomes) > 0


def test_parquet_tables_named_as_the_contract_are_read_in_place(tmp_path):
    write_simulation(tmp_path, 50, seed=1)
    data = {name: str(tmp_path / f"{name}.parquet") for name in ("leads", "events", "outcomes")}
    config = parse_pipeline({"name": "p", "data": data})
    tables = spark_tables(config, tmp_path / "staged")
    assert tables.leads == tmp_path / "leads.parquet" and tables.staged is None
    assert not (tmp_path / "staged").exists()
    mapped = parse_pipeline({"name": "p", "data": {**data, "columns": {"lead_id": "lead_id"}}})
    assert not read_in_place(mapped.data)  # a column map: read by leadml's loaders, then handed over


def test_the_simulator_is_staged(tmp_path):
    config = parse_pipeline({"name": "s", "data": {"simulator": {"leads": 120, "seed": 2}}})
    tables = spark_tables(config, tmp_path / "staged")
    assert tables.staged == "the simulator" and tables.events is not None and tables.outcomes is not None
    assert len(pd.read_parquet(tables.leads)) == 120


def test_a_flat_table_and_bad_data_are_refused_before_spark(tmp_path):
    flat = parse_pipeline({"name": "f", "data": {"source": "flat", "flat": "x.csv", "label": "converted"}})
    with pytest.raises(ConfigError, match="the Spark engine scores leads with events"):
        spark_tables(flat, tmp_path)
    (tmp_path / "leads.csv").write_text("lead_id,created_at\nL1,not a date\n")
    bad = parse_pipeline({"name": "b", "data": {"leads": str(tmp_path / "leads.csv")}})
    with pytest.raises(LeadDataError, match="created_at"):
        spark_tables(bad, tmp_path / "staged")
