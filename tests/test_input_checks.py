"""Nothing let in on the streamed path: its events get the contract's event-type check and strip.

`leadml score` streams sorted Parquet tables chunk by chunk (`jobs.inputs`) instead of reading
them through the data contract. An event without a type must stop it with the very message the
whole-table read gives (file, column, count, first rows), and a type written with spaces around
it must count as the type, as the contract reads it. The CLI says in one line when a rules file
names event types the data does not have.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from leadml.cli.app import main
from leadml.core.config import FeatureConfig, parse_pipeline
from leadml.core.errors import LeadDataError
from leadml.data.contract import load_events
from leadml.data.simulate import write_simulation
from leadml.jobs.inputs import ParquetEvents, TableEvents, open_inputs
from leadml.jobs.score import score_batch
from leadml.jobs.train import run_training
from leadml.modeling.registry import scoring_model

AS_OF = "2026-03-01"
MODELS = {"logistic": {"enabled": False}, "lightgbm": {"n_estimators": 10}}


def pipeline(data: dict):
    return parse_pipeline({"name": "checks", "data": data, "models": MODELS})


@pytest.fixture(scope="module")
def scoring():
    """A small LightGBM model (1,500 simulated leads, 10 trees), not logged."""
    config = pipeline({"simulator": {"leads": 1500, "seed": 3}})
    run = run_training(config, log=False, n_boot=10)
    return scoring_model(run.result, run.trainset, config.mql.tiers)


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> Path:
    """Other simulated leads as Parquet files sorted by lead, in row groups of 200 leads."""
    folder = tmp_path_factory.mktemp("tables")
    write_simulation(folder, 600, seed=12, chunk_size=200)
    return folder


def tables_config(folder: Path, events: Path):
    return pipeline(
        {
            "source": "tables",
            "leads": str(folder / "leads.parquet"),
            "events": str(events),
            "outcomes": str(folder / "outcomes.parquet"),
        }
    )


def edited_events(tables: Path, out: Path, types: dict[int, str | None], *, shuffle: bool = False) -> Path:
    """The simulated events with the types of some rows replaced, written sorted (or shuffled)."""
    events = pq.read_table(tables / "events.parquet")
    kinds = events.column("event_type").cast(pa.string()).to_pylist()
    for row, kind in types.items():
        kinds[row] = kind
    events = events.set_column(events.schema.get_field_index("event_type"), "event_type", pa.array(kinds, pa.string()))
    if shuffle:
        events = events.take(np.random.default_rng(5).permutation(events.num_rows))
    pq.write_table(events, out, row_group_size=2_000)
    return out


def test_the_simulated_events_stream_in_several_row_groups(tables):
    events = pq.ParquetFile(tables / "events.parquet")
    assert events.metadata.num_row_groups >= 2 and events.metadata.num_rows > 2_000


def test_an_event_without_a_type_stops_the_streamed_job_as_the_contract_does(scoring, tables, tmp_path):
    path = edited_events(tables, tmp_path / "events.parquet", {3: None, 2_500: "  "})
    config = tables_config(tables, path)
    inputs = open_inputs(config.data, pd.Timestamp(AS_OF, tz="UTC"), lead_fields=[], features=FeatureConfig(),
                         chunk_leads=200)  # fmt: skip
    assert inputs.streamed and isinstance(inputs.events, ParquetEvents)
    with pytest.raises(LeadDataError) as contract:
        load_events(path)
    events = pq.read_table(path, columns=["lead_id"]).column("lead_id").to_pylist()
    expected = (
        f"{path}: column 'event_type' has 2 missing or empty values (first rows: "
        f"row 4 (lead_id={events[3]!r}, event_type=<missing>); row 2501 (lead_id={events[2500]!r}, "
        "event_type='  ')); every event needs a type"
    )
    assert str(contract.value) == expected  # the whole-table read (the contract)
    with pytest.raises(LeadDataError) as streamed:
        score_batch(config, AS_OF, tmp_path / "s.parquet", model_uri=scoring, reasons=False, chunk_leads=200,
                    progress=False)  # fmt: skip
    assert str(streamed.value) == expected
    assert not (tmp_path / "s.parquet").exists()


def test_an_event_without_a_type_in_an_unsorted_file_is_refused_too(tables, tmp_path):
    path = edited_events(tables, tmp_path / "events.parquet", {10: ""}, shuffle=True)
    inputs_args = dict(lead_fields=[], features=FeatureConfig(), chunk_leads=200)
    with pytest.raises(LeadDataError) as streamed:
        open_inputs(tables_config(tables, path).data, pd.Timestamp(AS_OF, tz="UTC"), **inputs_args)
    with pytest.raises(LeadDataError) as contract:
        load_events(path)
    assert str(streamed.value) == str(contract.value)
    assert re.search(r"column 'event_type' has 1 missing or empty values \(first rows: row \d+ \(lead_id='\w+', "
                     r"event_type=''\)\); every event needs a type$", str(streamed.value))  # fmt: skip


def test_the_streamed_path_still_reads_the_unsorted_file_whole(tables, tmp_path):
    path = edited_events(tables, tmp_path / "events.parquet", {}, shuffle=True)
    inputs = open_inputs(tables_config(tables, path).data, pd.Timestamp(AS_OF, tz="UTC"), lead_fields=[],
                         features=FeatureConfig(), chunk_leads=200)  # fmt: skip
    assert isinstance(inputs.events, TableEvents) and inputs.notes


def test_types_written_with_spaces_count_as_the_contract_reads_them(scoring, tables, tmp_path):
    events = pq.read_table(tables / "events.parquet", columns=["event_type"]).column("event_type").to_pylist()
    padded = {row: f" {kind}  " for row, kind in enumerate(events) if row % 3 == 0}
    path = edited_events(tables, tmp_path / "events.parquet", padded)
    plain = score_batch(tables_config(tables, tables / "events.parquet"), AS_OF, tmp_path / "plain.parquet",
                        model_uri=scoring, reasons=False, chunk_leads=200, progress=False)  # fmt: skip
    spaced = score_batch(tables_config(tables, path), AS_OF, tmp_path / "spaced.parquet", model_uri=scoring,
                         reasons=False, chunk_leads=200, progress=False)  # fmt: skip
    assert plain.streamed and spaced.streamed
    one, other = pd.read_parquet(plain.out), pd.read_parquet(spaced.out)
    assert one["lead_id"].tolist() == other["lead_id"].tolist()
    np.testing.assert_array_equal(one["probability"].to_numpy(), other["probability"].to_numpy())


def test_the_rules_command_warns_in_one_line_about_an_absent_event_type(tmp_path, capsys):
    leads = pd.DataFrame({"lead_id": ["a", "b"], "created_at": ["2026-01-01", "2026-01-02"]})
    events = pd.DataFrame({"lead_id": ["a", "b"], "timestamp": ["2026-01-05", "2026-01-06"],
                           "event_type": ["webinar_attend", "page_view"]})  # fmt: skip
    leads.to_csv(tmp_path / "leads.csv", index=False)
    events.to_csv(tmp_path / "events.csv", index=False)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "name: r\nrules:\n  - {name: Webinar, event: webinar_atend, points: 20}\n"
        "  - {name: Visit, event: page_view, points: 5}\n"
    )
    argv = ["rules", "score", rules, "--leads", tmp_path / "leads.csv", "--events", tmp_path / "events.csv",
            "--as-of", AS_OF, "--out", tmp_path / "points.csv"]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"warning: {rules}: rule #1 'Webinar' counts event type 'webinar_atend', which no event has, so it never "
        "fires; did you mean 'webinar_attend'? (event types present: page_view, webinar_attend)"
    ]


def test_a_scoring_table_that_lacks_or_mistypes_a_model_column_is_told_not_scored_silently(scoring, tables, tmp_path):
    """`industry` dropped and `budget` written as text in 3 rows: one warning each, with exact counts."""
    leads = pq.read_table(tables / "leads.parquet").to_pandas()
    assert "industry" in scoring.builder.profile_columns_ and "budget" in scoring.builder.encoder_.numeric_
    leads = leads.drop(columns=["industry"])
    budget = leads["budget"].astype(object)
    budget.iloc[[0, 5, 9]] = ["45k", "1,200", "n/a"]  # n/a is a missing token: not a mistyped value
    budget.iloc[[1, 2]] = [None, ""]
    leads["budget"] = budget.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    pq.write_table(pa.Table.from_pandas(leads, preserve_index=False), tmp_path / "leads.parquet", row_group_size=200)
    config = pipeline({"source": "tables", "leads": str(tmp_path / "leads.parquet"),
                       "events": str(tables / "events.parquet"), "outcomes": str(tables / "outcomes.parquet")})  # fmt: skip
    with pytest.warns(UserWarning) as caught:
        score_batch(config, AS_OF, tmp_path / "scores.parquet", model_uri=scoring, progress=False)
    told = {getattr(w.message, "kind", ""): w.message for w in caught}
    assert told["missing_scoring_columns"].count == 1
    assert "the model reads column(s) 'industry', which the leads table lacks" in str(told["missing_scoring_columns"])
    assert told["mistyped_scoring_values"].count == 2
    assert "column 'budget' is a number to the model, but 2 leads have text there (e.g. '45k', '1,200')" in str(
        told["mistyped_scoring_values"]
    )
    clean = pq.read_table(tables / "leads.parquet").to_pandas()
    pq.write_table(pa.Table.from_pandas(clean, preserve_index=False), tmp_path / "clean.parquet", row_group_size=200)
    config = pipeline({"source": "tables", "leads": str(tmp_path / "clean.parquet"),
                       "events": str(tables / "events.parquet"), "outcomes": str(tables / "outcomes.parquet")})  # fmt: skip
    import warnings

    with warnings.catch_warnings(record=True) as quiet:
        warnings.simplefilter("always")
        score_batch(config, AS_OF, tmp_path / "clean_scores.parquet", model_uri=scoring, progress=False)
    assert not [w for w in quiet if "scoring" in getattr(w.message, "kind", "")]
