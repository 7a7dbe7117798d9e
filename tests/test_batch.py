"""The batch scoring job: same scores as the feature builder and as training, atomic, repeatable."""

from __future__ import annotations

import copy
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from leadml.core.config import parse_pipeline
from leadml.core.errors import ConfigError, LeadDataError, ModelError
from leadml.data.simulate import write_simulation
from leadml.data.sources import load_pipeline_data
from leadml.features.build import FeatureBuilder
from leadml.features.scoring_set import open_lead_snapshots
from leadml.jobs.decisions import DECISION_COLUMNS
from leadml.jobs.feature_files import read_feature_spec, score_features, write_features
from leadml.jobs.history import load_history
from leadml.jobs.output import unnamed_output
from leadml.jobs.score import REASON_COLUMNS, ScoreOptions, load_model, score_batch
from leadml.jobs.train import run_training
from leadml.modeling.registry import scoring_model

AS_OF = "2026-03-01"
SIMULATOR = {"simulator": {"leads": 6000, "seed": 11}}
MODELS = {"logistic": {"enabled": False}, "lightgbm": {"n_estimators": 60}}


def pipeline(data: dict | None = None, **extra):
    return parse_pipeline({"name": "batch", "data": data or SIMULATOR, "models": MODELS, **extra})


@pytest.fixture(scope="module")
def trained():
    """A LightGBM model trained on 6,000 simulated leads (not logged), and its scoring model."""
    config = pipeline()
    run = run_training(config, log=False, n_boot=10)
    return config, run, scoring_model(run.result, run.trainset, config.mql.tiers)


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> Path:
    """Other simulated leads as Parquet files of 800-lead row groups (so the job streams several chunks)."""
    folder = tmp_path_factory.mktemp("tables")
    write_simulation(folder, 4000, seed=12, chunk_size=800)
    return folder


def tables_config(folder: Path, **data):
    return pipeline(
        {
            "source": "tables",
            "leads": str(folder / "leads.parquet"),
            "events": str(folder / "events.parquet"),
            "outcomes": str(folder / "outcomes.parquet"),
            **data,
        }
    )


def reference(scoring, config, as_of=AS_OF) -> pd.DataFrame:
    """The definition: open-lead snapshots, ``FeatureBuilder.transform``, ``LeadScoringModel.score``."""
    data = load_pipeline_data(config.data, need_outcomes=False)
    snapshots = open_lead_snapshots(data, pd.Timestamp(as_of, tz="UTC"))
    features = scoring.builder.transform(snapshots, data.leads, data.events)
    return pd.concat([snapshots, scoring.score(features)], axis=1)


def assert_same_scores(scores: pd.DataFrame, expected: pd.DataFrame, rtol: float = 0.0) -> None:
    """Same leads in ``lead_id`` order with the same probability (bit for bit unless ``rtol``), score, tier, MQL."""
    expected = expected.sort_values("lead_id").reset_index(drop=True)
    assert scores["lead_id"].tolist() == expected["lead_id"].tolist()
    np.testing.assert_allclose(scores["probability"].to_numpy(), expected["probability"].to_numpy(), rtol=rtol, atol=0)
    assert scores["score"].tolist() == expected["score"].tolist()
    assert scores["tier"].tolist() == expected["tier"].tolist()
    assert scores["is_mql"].tolist() == expected["is_mql"].tolist()


def test_the_job_scores_open_leads_exactly_as_the_feature_builder(trained, tmp_path):
    config, _, scoring = trained
    summary = score_batch(
        config, AS_OF, tmp_path / "scores.parquet", model_uri=scoring, reasons=False, chunk_leads=700, progress=False
    )
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    assert list(scores.columns) == [
        "lead_id",
        "as_of",
        "model_name",
        "model_version",
        "probability",
        "score",
        "tier",
        "is_mql",
        *DECISION_COLUMNS,
        *REASON_COLUMNS,
    ]
    assert_same_scores(scores, reference(scoring, config))
    assert summary.rows == len(scores) == 818 and summary.leads_read == 6000 and summary.chunks == 9
    assert (scores["as_of"] == pd.Timestamp(AS_OF, tz="UTC")).all()
    assert summary.tiers == scores["tier"].value_counts().sort_index().to_dict()
    assert summary.mql == int(scores["is_mql"].sum()) and not summary.streamed
    assert scores[list(REASON_COLUMNS)].isna().all().all()


def test_a_logistic_model_scores_through_the_generic_path(tmp_path):
    config = parse_pipeline({"name": "batch", "data": SIMULATOR, "models": {"lightgbm": {"enabled": False}}})
    run = run_training(config, log=False, n_boot=10)
    assert run.result.chosen == "logistic"
    scoring = scoring_model(run.result, run.trainset, config.mql.tiers)
    score_batch(
        config, AS_OF, tmp_path / "s.parquet", model_uri=scoring, reasons=False, chunk_leads=2000, progress=False
    )
    # a matrix product's last bit depends on how the rows are blocked (BLAS), so not bit for bit
    assert_same_scores(pd.read_parquet(tmp_path / "s.parquet"), reference(scoring, config), rtol=1e-12)


def other_notes(summary, scores_path: Path) -> list[str]:
    """The run's notes but the out-of-range one, whose count is checked against the scores file."""
    flagged = int(pd.read_parquet(scores_path)["out_of_range"].notna().sum())
    told = [note for note in summary.notes if "lie outside what training saw" in note]
    assert summary.out_of_range_leads == flagged and len(told) == (1 if flagged else 0)
    if flagged:
        assert told[0].startswith(f"{flagged:,} of {summary.rows:,} leads lie outside what training saw")
    return [note for note in summary.notes if note not in told]


def test_the_model_s_feature_settings_win_over_the_pipeline_s_with_a_note(trained, tmp_path):
    config, _, scoring = trained
    edited = pipeline(features={"windows": [7], "velocity": False})
    summary = score_batch(edited, AS_OF, tmp_path / "s.parquet", model_uri=scoring, reasons=False, progress=False)
    assert other_notes(summary, tmp_path / "s.parquet") == [
        "the pipeline's feature settings differ from the model's, which are used: "
        "features.velocity: model True, pipeline False; "
        "features.windows: model [7, 30, 90], pipeline [7]"
    ]
    assert_same_scores(pd.read_parquet(tmp_path / "s.parquet"), reference(scoring, config))


def test_sorted_parquet_files_stream_in_chunks_with_the_same_scores(trained, tables, tmp_path):
    _, _, scoring = trained
    config = tables_config(tables)
    assert pq.ParquetFile(tables / "events.parquet").metadata.num_row_groups == 5
    summary = score_batch(
        config, AS_OF, tmp_path / "s.parquet", model_uri=scoring, reasons=False, chunk_leads=1000, progress=False
    )
    assert summary.streamed and summary.chunks == 3 and summary.leads_read == 4000
    assert not other_notes(summary, tmp_path / "s.parquet")
    assert_same_scores(pd.read_parquet(tmp_path / "s.parquet"), reference(scoring, config))


@pytest.mark.parametrize("kernel_from", [1, 10**9], ids=["compiled-trees", "booster-predict"])
def test_scores_equal_those_of_training_time_evaluation(trained, tmp_path, monkeypatch, kernel_from):
    from leadml.modeling.lightgbm import compiled as compiled_trees

    monkeypatch.setattr(compiled_trees, "MIN_ROWS", kernel_from)  # either scorer of the trees, same bits
    config, run, scoring = trained
    chosen = run.result.chosen
    test_rows = run.result.predictions.sort_values("as_of").iloc[[0, 200, -1]]
    for k, row in enumerate(test_rows.itertuples()):
        score_batch(config, row.as_of, tmp_path / f"{k}.parquet", model_uri=scoring, reasons=False, progress=False)
        scores = pd.read_parquet(tmp_path / f"{k}.parquet").set_index("lead_id")
        assert scores.loc[row.lead_id, "probability"] == getattr(row, chosen)


def test_a_rerun_gives_the_same_bytes_whatever_the_chunk_size(trained, tables, tmp_path):
    _, _, scoring = trained
    config = tables_config(tables)
    for name in ("s.parquet", "s.csv"):
        score_batch(config, AS_OF, tmp_path / name, model_uri=scoring, reasons=False, chunk_leads=1000, progress=False)
        first = (tmp_path / name).read_bytes()
        score_batch(config, AS_OF, tmp_path / name, model_uri=scoring, reasons=False, chunk_leads=1000, progress=False)
        assert (tmp_path / name).read_bytes() == first
    score_batch(
        config, AS_OF, tmp_path / "big.parquet", model_uri=scoring, reasons=False, chunk_leads=10**6, progress=False
    )
    assert pq.read_table(tmp_path / "big.parquet").equals(pq.read_table(tmp_path / "s.parquet"))
    from_csv = pd.read_csv(tmp_path / "s.csv")
    from_parquet = pd.read_parquet(tmp_path / "s.parquet")
    np.testing.assert_array_equal(from_csv["probability"].to_numpy(), from_parquet["probability"].to_numpy())
    assert from_csv["as_of"].iloc[0] == "2026-03-01T00:00:00+00:00"
    listed = ["big.drift.csv", "big.parquet", "s.csv", "s.drift.csv", "s.parquet", "score_history"]
    assert sorted(os.listdir(tmp_path)) == listed  # no temp files
    assert len(load_history(tmp_path / "score_history")) == len(from_parquet)  # a re-run day replaced, not added


def test_reasons_fill_the_reason_columns(trained, tmp_path):
    config, _, scoring = trained
    score_batch(
        config, AS_OF, tmp_path / "r.parquet", model_uri=scoring, reasons="all", chunk_leads=500, progress=False
    )
    scores = pd.read_parquet(tmp_path / "r.parquet")
    assert scores["reasons"].str.startswith("[").all()
    # reason_1 is the strongest raising reason: every lead with a positive contribution has one
    raised = scores["reasons"].map(lambda text: any(item["contribution"] > 0 for item in json.loads(text)))
    assert raised.sum() > 0.9 * len(scores)
    assert (scores.loc[raised, "reason_1"].str.len() > 0).all()
    assert scores.loc[~raised, "reason_1"].fillna("").eq("").all()
    score_batch(config, AS_OF, tmp_path / "d.parquet", model_uri=scoring, reasons=True, progress=False)
    default = pd.read_parquet(tmp_path / "d.parquet")  # the MQLs and the top 20 % get reasons, the rest none
    explained = default["reasons"].notna()
    assert explained.sum() == max(int(np.ceil(len(default) * 0.2)), int(default["is_mql"].sum()))
    assert default.loc[explained, "probability"].min() >= default.loc[~explained, "probability"].max()
    assert (
        default.loc[explained, "reasons"]
        == scores.set_index("lead_id").loc[default.loc[explained, "lead_id"], "reasons"].to_numpy()
    ).all()
    top = score_batch(config, AS_OF, tmp_path / "t.parquet", model_uri=scoring, reasons="top:7", progress=False)
    assert pd.read_parquet(top.out)["reasons"].notna().sum() == 7
    plain = reference(scoring, config).sort_values("lead_id")
    np.testing.assert_array_equal(scores["probability"].to_numpy(), plain["probability"].to_numpy())


def test_a_custom_reasons_step_and_a_progress_callback(trained, tmp_path):
    config, _, scoring = trained
    seen = []

    def step(model, features, probability):
        return pd.DataFrame({"reason_1": np.where(probability > 0.1, "high", "low")})

    summary = score_batch(
        config,
        AS_OF,
        tmp_path / "c.parquet",
        model_uri=scoring,
        reasons=step,
        chunk_leads=2500,
        progress=lambda done, total: seen.append((done, total)),
    )
    scores = pd.read_parquet(tmp_path / "c.parquet")
    assert set(scores["reason_1"]) <= {"high", "low"} and scores["reason_2"].isna().all()
    assert seen == [(2500, 6000), (5000, 6000), (6000, 6000)] and summary.reasons


def test_options_as_one_object_or_as_keywords_give_the_same_bytes(trained, tmp_path):
    config, _, scoring = trained
    options = ScoreOptions(reasons="top:5", chunk_leads=1500, progress=False, history=False)
    one = score_batch(config, AS_OF, tmp_path / "a.parquet", options, model_uri=scoring)
    keywords = score_batch(config, AS_OF, tmp_path / "b.parquet", model_uri=scoring, reasons="top:5", chunk_leads=1500,
                           progress=False, history=False)  # fmt: skip
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert one.chunks == keywords.chunks == 4 and one.reasons and one.history_path is None
    plain = score_batch(config, AS_OF, tmp_path / "c.parquet", options, model_uri=scoring, reasons=False)
    assert not plain.reasons and options.reasons == "top:5"  # a keyword overrides the object, which stays as it was
    with pytest.raises(TypeError, match="unknown scoring option 'reason'; the options are reasons, subscores, history"):
        score_batch(config, AS_OF, tmp_path / "d.parquet", model_uri=scoring, reason=False)
    assert sorted(os.listdir(tmp_path)) == ["a.drift.csv", "a.parquet", "b.drift.csv", "b.parquet", "c.drift.csv",
                                            "c.parquet"]  # fmt: skip


def test_the_job_s_steps_make_the_same_file_as_the_job(trained, tmp_path):
    from leadml.jobs.output import ScoresWriter
    from leadml.jobs.score import SCORES_SCHEMA, finish_scoring, prepare_scoring, score_chunk

    config, _, scoring = trained
    options = ScoreOptions(reasons=False, chunk_leads=2000, progress=False, history=False)
    whole = score_batch(config, AS_OF, tmp_path / "job.parquet", options, model_uri=scoring)
    job = prepare_scoring(config, AS_OF, tmp_path / "steps.parquet", options, model_uri=scoring)
    writer = ScoresWriter(str(tmp_path / "steps.parquet"), tmp_path / "steps.parquet", SCORES_SCHEMA, job.metadata)
    for chunk in job.source.chunks:
        score_chunk(job, chunk, writer)
    writer.close()
    steps = finish_scoring(job, writer.rows)
    assert (tmp_path / "steps.parquet").read_bytes() == (tmp_path / "job.parquet").read_bytes()
    assert (steps.rows, steps.chunks, steps.mql, steps.tiers) == (whole.rows, whole.chunks, whole.mql, whole.tiers)
    pd.testing.assert_frame_equal(steps.drift, whole.drift)
    assert steps.drift_path == tmp_path / "steps.drift.csv" and steps.drift_path.is_file()


def test_events_not_sorted_by_lead_are_read_whole_with_a_note(trained, tables, tmp_path):
    _, _, scoring = trained
    events = pq.read_table(tables / "events.parquet")
    shuffled = events.take(pa.array(np.random.default_rng(0).permutation(events.num_rows)))
    pq.write_table(shuffled, tmp_path / "events.parquet", row_group_size=20_000)
    config = tables_config(tables, events=str(tmp_path / "events.parquet"))
    summary = score_batch(
        config, AS_OF, tmp_path / "s.parquet", model_uri=scoring, reasons=False, chunk_leads=1000, progress=False
    )
    assert any("not ordered by lead_id" in note for note in summary.notes)
    assert_same_scores(pd.read_parquet(tmp_path / "s.parquet"), reference(scoring, tables_config(tables)))


def test_events_of_unknown_leads_are_an_error_or_dropped(trained, tables, tmp_path):
    _, _, scoring = trained
    events = pq.read_table(tables / "events.parquet")
    stray = events.slice(0, 2).set_column(0, "lead_id", pa.array(["L0000001x", "ZZZ"], events.schema.field(0).type))
    pq.write_table(
        pa.concat_tables([events, stray]).sort_by("lead_id"), tmp_path / "events.parquet", row_group_size=30_000
    )
    with pytest.raises(LeadDataError, match=r"events\.parquet: column 'lead_id' has 1 events of unknown leads"):
        score_batch(
            tables_config(tables, events=str(tmp_path / "events.parquet")),
            AS_OF,
            tmp_path / "s.parquet",
            model_uri=scoring,
            reasons=False,
            progress=False,
        )
    assert not (tmp_path / "s.parquet").exists()
    config = tables_config(tables, events=str(tmp_path / "events.parquet"), on_orphans="drop")
    summary = score_batch(config, AS_OF, tmp_path / "s.parquet", model_uri=scoring, reasons=False, progress=False)
    assert summary.orphans == 1  # the one inside the file; 'ZZZ' after the last lead is logged
    assert_same_scores(pd.read_parquet(tmp_path / "s.parquet"), reference(scoring, tables_config(tables)))


def test_no_open_lead_at_as_of_keeps_the_previous_scores_file(trained, tmp_path):
    config, _, scoring = trained
    out = tmp_path / "scores.csv"
    score_batch(config, AS_OF, out, model_uri=scoring, reasons=False, progress=False, drift=False)
    before = out.read_bytes()
    message = (
        "batch: no open lead at as_of 2024-01-01 00:00 UTC (the data runs from 2025-01-01 05:54 to "
        "2026-06-30 23:57 UTC); nothing was scored and the previous scores file is kept; pick an as_of within the data"
    )
    with pytest.raises(LeadDataError, match=f"^{re.escape(message)}$"):
        score_batch(config, "2024-01-01", out, model_uri=scoring, reasons=False, progress=False, drift=False)
    assert out.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["score_history", "scores.csv"]
    assert sorted(os.listdir(tmp_path / "score_history")) == ["as_of_date=2026-03-01"]


def test_bad_arguments_fail_before_any_work(trained, tmp_path):
    config, _, scoring = trained
    with pytest.raises(ConfigError, match="unknown selection 'best'; use all, mql, top:N or top:N%"):
        score_batch(config, AS_OF, tmp_path / "s.parquet", model_uri=scoring, reasons="best", progress=False)
    with pytest.raises(LeadDataError, match="unknown table format '.txt'"):
        score_batch(config, AS_OF, tmp_path / "s.txt", model_uri=scoring, progress=False)
    with pytest.raises(ConfigError, match="chunk_leads must be a positive integer"):
        score_batch(config, AS_OF, tmp_path / "s.csv", model_uri=scoring, chunk_leads=0, progress=False)
    with pytest.raises(ConfigError, match="engine must be 'pandas' or 'spark'"):
        score_batch(config, AS_OF, tmp_path / "s.csv", model_uri=scoring, engine="dask", progress=False)
    assert os.listdir(tmp_path) == []


def test_a_missing_alias_or_registry_is_a_model_error(tmp_path, monkeypatch):
    with pytest.raises(ModelError, match=r"registered model 'nobody' has no alias 'champion'.*leadml train"):
        load_model(pipeline(mlflow={"registered_model": "nobody"}))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(ModelError, match=r"MLflow tracking server at http://127\.0\.0\.1:9 is unreachable"):
        load_model(pipeline())
    with pytest.raises(ModelError, match="no such model folder"):
        load_model(pipeline(), tmp_path / "nothing")


def test_features_of_another_spec_are_refused_naming_the_difference(trained, tmp_path):
    config, run, scoring = trained
    other = pipeline(features={"windows": [7, 30]})
    data = run.trainset.data
    builder = FeatureBuilder(other.features, other.profile).fit(
        run.trainset.frame.loc[run.trainset.frame["split"] == "train", ["lead_id", "as_of"]], data.leads, data.events
    )
    narrow = scoring_model(run.result, run.trainset, config.mql.tiers)
    narrow.builder, narrow.spec_hash = builder, builder.spec_hash()
    write_features(config, AS_OF, tmp_path / "narrow.parquet", model_uri=narrow, progress=False)
    assert read_feature_spec(tmp_path / "narrow.parquet")["settings"]["windows"] == [7, 30]
    with pytest.raises(ModelError, match=r"features\.windows: model \[7, 30, 90\], features \[7, 30\]"):
        score_features(tmp_path / "narrow.parquet", model_uri=scoring)
    write_features(config, AS_OF, tmp_path / "own.parquet", model_uri=scoring, progress=False)
    scored = score_features(tmp_path / "own.parquet", model_uri=scoring)
    assert_same_scores(scored, reference(scoring, config))


def test_a_model_whose_feature_set_changed_since_training_is_refused(trained, tmp_path):
    config, _, shared = trained
    scoring = copy.deepcopy(shared)
    scoring.builder.event_types_ = scoring.builder.event_types_[:-1]
    with pytest.raises(ModelError, match="feature set hashes to .* now but .* at training"):
        score_batch(config, AS_OF, tmp_path / "s.parquet", model_uri=scoring, progress=False)


def test_unnamed_output_appears_only_when_complete(tmp_path):
    target = tmp_path / "out.parquet"
    target.write_text("previous")
    with pytest.raises(RuntimeError), unnamed_output(target) as sink:
        Path(sink).write_text("half")
        assert os.listdir(tmp_path) == ["out.parquet"]  # the file being written has no name
        raise RuntimeError("stop")
    assert target.read_text() == "previous" and os.listdir(tmp_path) == ["out.parquet"]
    with unnamed_output(target) as sink:
        Path(sink).write_text("done")
    assert target.read_text() == "done" and os.listdir(tmp_path) == ["out.parquet"]


def test_the_examples_in_the_docstrings_run():
    import doctest

    import leadml.jobs.feature_files
    import leadml.jobs.output

    for module in (leadml.jobs.output, leadml.jobs.feature_files):
        assert doctest.testmod(module).failed == 0, module.__name__


KILL_SCRIPT = """
import pickle, sys, time
from leadml.jobs.score import score_batch
from leadml.core.config import parse_pipeline
config = parse_pipeline(pickle.load(open(sys.argv[1], "rb")))
model = pickle.load(open(sys.argv[2], "rb"))

def progress(done, total):
    print("chunk", done, flush=True)
    time.sleep(0.4)

score_batch(config, "2026-03-01", sys.argv[3], model_uri=model, reasons=False, chunk_leads=400, progress=progress)
print("finished", flush=True)
"""


@pytest.mark.slow
def test_a_killed_job_leaves_no_file_and_the_next_run_succeeds(trained, tables, tmp_path):
    _, _, scoring = trained
    config = tables_config(tables)
    (tmp_path / "config.pkl").write_bytes(pickle.dumps(config.resolved_dict()))
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(scoring))
    (tmp_path / "job.py").write_text(textwrap.dedent(KILL_SCRIPT))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "scores.parquet"
    job = subprocess.Popen(
        [sys.executable, str(tmp_path / "job.py"), str(tmp_path / "config.pkl"), str(tmp_path / "model.pkl"), str(out)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert job.stdout.readline().startswith("chunk")  # a chunk is written: the job is mid-file
        job.send_signal(signal.SIGKILL)
        assert job.wait(timeout=30) == -signal.SIGKILL
    finally:
        job.kill()
    assert os.listdir(out_dir) == []
    score_batch(config, AS_OF, out, model_uri=scoring, reasons=False, progress=False)
    # history and drift only after a whole file
    assert sorted(os.listdir(out_dir)) == ["score_history", "scores.drift.csv", "scores.parquet"]
    assert_same_scores(pd.read_parquet(out), reference(scoring, config))


@pytest.mark.slow
def test_the_registered_champion_scores_and_mlflow_serves_the_same_probabilities(trained, tmp_path):
    import json

    from leadml.modeling.registry import log_training

    config, run, scoring = trained
    outcome = log_training(config, run.trainset, run.result)
    assert outcome.promoted
    summary = score_batch(config, AS_OF, tmp_path / "scores.parquet", reasons=False, progress=False)
    assert (summary.model_uri, summary.model_name, summary.model_version) == ("models:/leadml@champion", "leadml", "1")
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    assert (scores["model_name"] == "leadml").all() and (scores["model_version"] == "1").all()
    assert_same_scores(scores, reference(scoring, config))

    write_features(config, AS_OF, tmp_path / "features.csv", progress=False)
    features = pd.read_csv(tmp_path / "features.csv")
    assert features["lead_id"].tolist() == scores["lead_id"].tolist()
    features.drop(columns=["lead_id", "as_of"]).to_csv(tmp_path / "input.csv", index=False)
    served = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "predict",
            "-m",
            "models:/leadml@champion",
            "-i",
            str(tmp_path / "input.csv"),
            "-t",
            "csv",
            "--env-manager",
            "local",
            "-o",
            str(tmp_path / "out.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert served.returncode == 0, served.stderr[-2000:]
    predictions = pd.DataFrame(json.loads((tmp_path / "out.json").read_text())["predictions"])
    np.testing.assert_array_equal(predictions["probability"].to_numpy(), scores["probability"].to_numpy())
    assert predictions["tier"].tolist() == scores["tier"].tolist()
