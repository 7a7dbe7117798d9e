"""The Spark engine agrees with the pandas engine, row for row, on the same simulated data."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from leadml.data.simulate import write_simulation
from leadml.features.scoring_set import features_at
from leadml.jobs.feature_files import read_feature_spec, write_features
from leadml.jobs.score import REASON_COLUMNS, score_batch
from tests.test_batch import AS_OF, pipeline, trained  # noqa: F401  (a module fixture)
from tests.test_spark_sources import write_crm_export

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """One local Spark session for every Spark test (it takes 10-30 s to start)."""
    if importlib.util.find_spec("pyspark") is None:
        pytest.skip("pyspark is not installed (pip install 'leadml[spark]')")
    if shutil.which("java") is None:
        pytest.skip("Java is not on the PATH (Spark needs Java 17 or later)")
    from leadml.jobs.spark import spark_session

    session = spark_session("local[2]", conf={"spark.local.dir": str(tmp_path_factory.mktemp("spark_local"))})
    yield session
    session.stop()


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spark_tables")
    write_simulation(folder, 3000, seed=21, chunk_size=600)
    return folder


ACTIONS = {
    "tiers": [
        {"name": "A", "min": 0.5, "action": "Call", "within_hours": 24},
        {"name": "B", "min": 0.25, "action": "E-mail", "within_hours": 48.5},
        {"name": "C", "min": 0.1},
        {"name": "D", "action": "Newsletter"},
    ]
}  # the model's tier names


def tables_config(folder):
    return pipeline(
        {
            "source": "tables",
            "leads": str(folder / "leads.parquet"),
            "events": str(folder / "events.parquet"),
            "outcomes": str(folder / "outcomes.parquet"),
        },
        mql=ACTIONS,
    )


def test_both_engines_write_the_same_scores(spark, trained, tables, tmp_path):  # noqa: F811
    from leadml.jobs.spark import score_spark

    _, _, scoring = trained
    config = tables_config(tables)
    score_batch(
        config, AS_OF, tmp_path / "pandas.parquet", model_uri=scoring, reasons=False, chunk_leads=700, progress=False
    )
    summary = score_spark(config, AS_OF, tmp_path / "spark.parquet", model_uri=scoring, reasons=False, n_buckets=3)
    expected = pd.read_parquet(tmp_path / "pandas.parquet")
    got = pd.read_parquet(tmp_path / "spark.parquet")
    assert (tmp_path / "spark.parquet").is_dir() and summary.rows == len(got) == len(expected) > 300
    assert list(got.columns) == list(expected.columns)
    assert got["lead_id"].tolist() == expected["lead_id"].tolist()  # sorted by lead_id, every open lead once
    np.testing.assert_allclose(got["probability"], expected["probability"], rtol=0, atol=1e-9)
    for column in (
        "score",
        "tier",
        "is_mql",
        "model_name",
        "model_version",
        "fit_score",
        "engagement_score",
        "grid_tier",
        "next_action",
    ):
        assert got[column].astype(str).tolist() == expected[column].astype(str).tolist(), column
    assert expected["grid_tier"].notna().all() and expected["fit_score"].between(0, 100).all()
    assert (
        set(expected["next_action"].dropna()) >= {"Call", "E-mail", "Newsletter"} and expected["due_at"].notna().any()
    )
    assert (got["as_of"] == expected["as_of"]).all()
    assert (
        pd.to_datetime(got["due_at"], utc=True).fillna(pd.Timestamp(0, tz="UTC"))
        == pd.to_datetime(expected["due_at"], utc=True).fillna(pd.Timestamp(0, tz="UTC"))
    ).all()
    assert got[list(REASON_COLUMNS)].isna().all().all()
    assert summary.tiers == expected["tier"].value_counts().sort_index().to_dict()


def test_both_engines_build_the_same_features(spark, trained, tables, tmp_path):  # noqa: F811
    from leadml.jobs.spark import spark_features

    _, _, scoring = trained
    config = tables_config(tables)
    write_features(config, AS_OF, tmp_path / "pandas.parquet", model_uri=scoring, progress=False)
    spark_features(config, None, None, AS_OF, tmp_path / "spark.parquet", model_uri=scoring, n_buckets=4)
    expected = pd.read_parquet(tmp_path / "pandas.parquet")
    got = pd.read_parquet(tmp_path / "spark.parquet")
    assert read_feature_spec(tmp_path / "spark.parquet") == scoring.builder.spec()
    assert list(got.columns) == list(expected.columns) and len(got) == len(expected)
    for column in expected.columns[2:]:
        if expected[column].dtype == object or str(expected[column].dtype) == "str":
            assert got[column].tolist() == expected[column].tolist(), column
        else:
            np.testing.assert_array_equal(got[column].to_numpy(float), expected[column].to_numpy(float), err_msg=column)


def test_features_without_a_model_match_leadml_features(spark, tables, tmp_path):
    from leadml.jobs.spark import spark_features

    config = tables_config(tables)
    spark_features(config, None, None, AS_OF, tmp_path / "spark.parquet", n_buckets=2)
    expected = features_at(config, None, None, AS_OF).sort_values("lead_id").reset_index(drop=True)
    got = pd.read_parquet(tmp_path / "spark.parquet")
    assert list(got.columns) == list(expected.columns) and got["lead_id"].tolist() == expected["lead_id"].tolist()
    for column in expected.columns[2:]:
        if isinstance(expected[column].dtype, pd.CategoricalDtype):
            assert got[column].tolist() == expected[column].astype(str).tolist(), column
        else:
            np.testing.assert_array_equal(got[column].to_numpy(float), expected[column].to_numpy(float), err_msg=column)


def _frame(path) -> pd.DataFrame:
    """A scores file or folder with its timestamps in one unit (Spark writes microseconds)."""
    scores = pd.read_parquet(path)
    for column in ("as_of", "due_at", "mql_since"):
        scores[column] = scores[column].dt.as_unit("ns")
    return scores


def test_both_engines_explain_the_same_leads_of_the_simulator(spark, trained, tmp_path):  # noqa: F811
    """The simulator's 3,000 leads (no Parquet tables): the default reasons (the MQLs and the top 20 %
    of the run) go to the same leads, whether pandas scores in one chunk or five and Spark in 3 buckets."""
    _, _, scoring = trained
    config = pipeline({"simulator": {"leads": 3000, "seed": 21}}, mql=ACTIONS)
    score_batch(config, AS_OF, tmp_path / "one.parquet", model_uri=scoring, progress=False, history=False)
    score_batch(config, AS_OF, tmp_path / "chunks.parquet", model_uri=scoring, chunk_leads=700, progress=False,
                history=False)  # fmt: skip
    summary = score_batch(config, AS_OF, tmp_path / "spark.parquet", model_uri=scoring, engine="spark", history=False)
    expected, chunked, got = (_frame(tmp_path / name) for name in ("one.parquet", "chunks.parquet", "spark.parquet"))
    pd.testing.assert_frame_equal(chunked, expected, check_exact=True)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    explained = expected["reasons"].notna()
    assert expected.loc[expected["is_mql"], "reasons"].notna().all()
    top = int(np.ceil(0.2 * len(expected)))
    assert top <= explained.sum() <= top + expected["is_mql"].sum()
    assert expected.loc[explained, "probability"].min() >= expected.loc[~explained, "probability"].max()
    assert any("simulator" in note for note in summary.notes)
    assert not list(tmp_path.glob(".leadml-*"))  # the run folders are gone


def test_a_csv_export_scores_alike_on_both_engines(spark, trained, tmp_path):  # noqa: F811
    """CSV tables with their own columns, separator, encoding, timestamp formats and outcome values."""
    _, _, scoring = trained
    config = pipeline(write_crm_export(tmp_path, n_leads=1500, seed=23), mql=ACTIONS)
    score_batch(config, AS_OF, tmp_path / "pandas.parquet", model_uri=scoring, progress=False, history=False,
                reasons="top:50")  # fmt: skip
    score_batch(config, AS_OF, tmp_path / "spark.parquet", model_uri=scoring, engine="spark", history=False,
                reasons="top:50")  # fmt: skip
    expected, got = _frame(tmp_path / "pandas.parquet"), _frame(tmp_path / "spark.parquet")
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert len(expected) > 100 and expected["reasons"].notna().sum() == 50


def test_the_source_is_read_before_spark_starts(trained, tmp_path, monkeypatch):  # noqa: F811
    from leadml.core.errors import LeadDataError
    from leadml.jobs import spark as engine

    def no_spark(*args, **kwargs):
        raise AssertionError("Spark started before the source was checked")

    monkeypatch.setattr(engine, "spark_session", no_spark)
    _, _, scoring = trained
    (tmp_path / "leads.csv").write_text("lead_id,created_at\nL1,not a date\n")
    config = pipeline({"leads": str(tmp_path / "leads.csv")})
    with pytest.raises(LeadDataError, match="created_at"):
        engine.score_spark(config, AS_OF, tmp_path / "out" / "spark.parquet", model_uri=scoring)
    assert not list((tmp_path / "out").glob(".leadml-*"))  # the run's folder is gone after the failure


INCUBATOR = "WARNING: Using incubator modules: jdk.incubator.vector"  # the JVM's own line: no setting removes it


def test_leadml_score_on_spark_prints_no_warnings(trained, tmp_path):  # noqa: F811
    """``leadml score --engine spark`` in a fresh process: stderr holds at most the JVM's incubator line."""
    import mlflow.pyfunc

    from leadml.modeling.registry import LeadmlPyfunc

    _, _, scoring = trained
    mlflow.pyfunc.save_model(str(tmp_path / "model"), python_model=LeadmlPyfunc(scoring))
    (tmp_path / "pipeline.yaml").write_text(
        "name: spark_cli\ndata:\n  simulator: {leads: 1500, seed: 21}\nmql:\n  tiers:\n"
        + "".join(f"    - {tier}\n" for tier in ACTIONS["tiers"]).replace("'", "")
    )
    run = subprocess.run(
        [sys.executable, "-m", "leadml", "score", "pipeline.yaml", "--as-of", AS_OF, "--out", "scores.parquet",
         "--model", str(tmp_path / "model"), "--engine", "spark", "--no-history"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    noisy = [line for line in run.stderr.splitlines() if line.strip() and line.strip() != INCUBATOR]
    assert noisy == [], "\n".join(noisy[:20])
    assert "scored" in run.stdout and pd.read_parquet(tmp_path / "scores.parquet")["reasons"].notna().any()
