"""The backtest on the simulator: a model trained and logged once, twelve scoring runs over six months,
then `leadml backtest` against the raw tables, the training estimate, the page, MLflow and the CLI."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from leadml.cli.app import main
from leadml.core.config import parse_pipeline
from leadml.core.errors import LeadDataError
from leadml.data.sources import load_pipeline_data
from leadml.jobs.backtest import run_backtest
from leadml.jobs.history import load_history
from leadml.jobs.score import ScoreOptions, score_batch
from leadml.jobs.train import run_training
from leadml.modeling.registry import log_training

# the 1st and 16th of October 2025 .. March 2026; the data end on 2026-07-01, so with the 120-day
# horizon every run is labelled but the last (16 March + 120 days is after the end): March is half censored
RUNS = [pd.Timestamp(f"{month}-{day:02d}", tz="UTC") for month in
        ("2025-10", "2025-11", "2025-12", "2026-01", "2026-02", "2026-03") for day in (1, 16)]  # fmt: skip
MONTHS = ["2025-10", "2025-11", "2025-12", "2026-01", "2026-02", "2026-03"]
HORIZON = pd.Timedelta(days=120)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A LightGBM model on 6,000 simulated leads, logged and registered, that scored the open leads twice a month."""
    folder = tmp_path_factory.mktemp("backtest")
    uri = f"sqlite:///{folder / 'mlruns.db'}"
    config = parse_pipeline({
        "name": "backtest", "data": {"simulator": {"leads": 6000, "seed": 11}},
        "models": {"logistic": {"enabled": False}, "lightgbm": {"n_estimators": 60}},
        "history": {"path": str(folder / "history")},
        "mlflow": {"tracking_uri": uri, "experiment": "backtest", "registered_model": "backtest"},
    })  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:  # the module's own MLflow store, not a test's tmp_path
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.chdir(folder)
        data = load_pipeline_data(config.data)
        training = run_training(config, data=data, log=False, n_boot=200)
        outcome = log_training(config, training.trainset, training.result)  # registered, champion (no card: faster)
        for day in RUNS:
            score_batch(config, day, folder / f"scores-{day:%Y%m%d}.parquet",
                        ScoreOptions(progress=False, reasons=False, drift=False))  # fmt: skip
        result = run_backtest(config, out=folder / "backtest.html", data=data, n_boot=300)
    return SimpleNamespace(config=config, folder=folder, uri=uri, data=data, outcome=outcome, result=result)


@pytest.fixture
def at_store(served, monkeypatch):
    """Point MLflow at the module's store (the autouse fixture points it at the test's empty one)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", served.uri)
    return served


def recount(history: pd.DataFrame, data, month: str) -> dict[str, int]:
    """Rows, labelled, censored and conversions of one month, straight from the raw tables."""
    rows = history.loc[history["as_of"].dt.strftime("%Y-%m") == month, ["lead_id", "as_of"]]
    outcomes = data.outcomes
    closed = outcomes.dropna(subset=["closed_at"]).set_index("lead_id")["closed_at"]
    won = outcomes.loc[outcomes["outcome"] == 1].set_index("lead_id")["closed_at"]
    closed_at = rows["lead_id"].map(closed)
    open_then = ~(closed_at < rows["as_of"])  # NaT (never closed) compares False: open
    censored = open_then & (rows["as_of"] + HORIZON > data.data_end)
    won_at = rows["lead_id"].map(won)
    converted = open_then & ~censored & (won_at >= rows["as_of"]) & (won_at < rows["as_of"] + HORIZON)
    return {"rows": len(rows), "labelled": int((open_then & ~censored).sum()), "censored": int(censored.sum()),
            "conversions": int(converted.sum()), "left_out": int((~open_then).sum())}  # fmt: skip


def test_labelled_and_censored_counts_are_those_of_the_raw_tables(served):
    history = load_history(served.folder / "history")
    periods = served.result.periods.set_index("period")
    assert periods.index.tolist() == MONTHS and (periods["runs"] == 2).all()
    for month in ("2025-12", "2026-03"):
        expected = recount(history, served.data, month)
        row = periods.loc[month]
        assert {key: int(row[key]) for key in expected} == expected
    march = periods.loc["2026-03"]
    last_run = int((history["as_of"] == RUNS[-1]).sum())
    assert march["censored"] == last_run and 0.4 < march["censored_share"] < 0.6  # the 16 March run: all censored
    assert (periods.loc[MONTHS[:-1], "censored"] == 0).all()
    assert periods["conversions"].between(40, 200).all()


def test_realised_auc_per_month_lies_within_the_training_estimate(served):
    periods = served.result.periods
    client = MlflowClient(tracking_uri=served.uri)
    metrics = client.get_run(served.outcome.run_id).data.metrics
    train = [
        metrics["test.lightgbm.roc_auc"],
        metrics["test.lightgbm.roc_auc.low"],
        metrics["test.lightgbm.roc_auc.high"],
    ]
    assert periods[["training_roc_auc", "training_roc_auc_low", "training_roc_auc_high"]].eq(train).all().all()
    assert periods["roc_auc"].notna().all() and (periods["note"] == "").all()
    # measured on this seed: realised 0.751-0.817 per month, training 0.815 [0.772, 0.851]; five months lie
    # within the training interval, November (0.751 [0.692, 0.806]) overlaps it; none lies 0.05 outside it
    assert periods["vs_training"].isin(["within", "overlaps"]).all(), periods[["period", "roc_auc", "vs_training"]]
    assert periods["roc_auc"].between(train[1] - 0.05, train[2] + 0.05).all()
    assert (periods["vs_training"] == "within").sum() >= 3
    assert (periods["roc_auc_low"] < periods["roc_auc"]).all() and (periods["roc_auc"] < periods["roc_auc_high"]).all()
    assert periods["precision_at_mql"].between(0.1, 0.5).all() and periods["recall_at_mql"].between(0.2, 0.8).all()
    calibration = periods["mean_predicted"] - periods["observed_rate"]
    assert calibration.abs().max() < 0.03 and periods["ece"].max() < 0.05


def test_a_week_without_labels_says_na_and_the_figures_are_seeded(served):
    config, data = served.config, served.data
    first = run_backtest(config, since="2026-02-01", by="week", out=None, data=data, n_boot=100, log=False)
    again = run_backtest(config, since="2026-02-01", by="week", out=None, data=data, n_boot=100, log=False)
    pd.testing.assert_frame_equal(first.periods, again.periods)
    weeks = first.periods.set_index("period")
    assert weeks.index.tolist() == ["2026-W05", "2026-W08", "2026-W09", "2026-W12"]  # 1 Feb and 1 Mar are Sundays
    assert (
        np.isnan(weeks.loc["2026-W12", "roc_auc"])
        and weeks.loc["2026-W12", "note"] == "0 labelled rows (fewer than 50)"
    )
    assert weeks.loc["2026-W12", "censored_share"] == 1.0
    assert weeks.loc[["2026-W05", "2026-W08", "2026-W09"], "roc_auc"].notna().all()
    few = run_backtest(config, since="2026-02-01", by="week", out=None, data=data, n_boot=20, log=False,
                       min_labelled=10_000)  # fmt: skip
    assert few.periods["roc_auc"].isna().all() and few.periods["note"].str.contains("fewer than 10000").all()


def test_the_page_holds_the_chart_and_the_table(served):
    page = served.result.path.read_text()
    assert served.result.path.name == "backtest.html"
    assert page.count("<svg") == 1 and "<polygon" in page and "training estimate" in page
    assert '<table class="data">' in page and all(month in page for month in MONTHS)
    row = served.result.periods.iloc[0]
    assert f"{row['roc_auc']:.3f}\n[{row['roc_auc_low']:.3f}, {row['roc_auc_high']:.3f}]" in page
    assert f"[{row['training_roc_auc_low']:.3f}, {row['training_roc_auc_high']:.3f}]" in page


def test_the_backtest_is_an_mlflow_run_tagged_with_the_serving_model(served):
    result = served.result
    client = MlflowClient(tracking_uri=served.uri)
    run = client.get_run(result.run_id)
    assert client.get_experiment(run.info.experiment_id).name == "backtest"
    tags = run.data.tags
    assert tags["leadml.backtest"] == "true" and tags["leadml.pipeline"] == "backtest"
    assert tags["leadml.model_name"] == "backtest" and tags["leadml.model_version"] == served.outcome.version == "1"
    metrics = run.data.metrics
    for row in result.periods.itertuples():
        assert metrics[f"backtest.{row.period}.roc_auc"] == pytest.approx(row.roc_auc)
        assert metrics[f"backtest.{row.period}.roc_auc.low"] == pytest.approx(row.roc_auc_low)
        assert metrics[f"backtest.{row.period}.labelled"] == row.labelled
        assert metrics[f"backtest.{row.period}.censored"] == row.censored
    assert {a.path for a in client.list_artifacts(result.run_id, "reports")} == {"reports/backtest.html"}


def test_leadml_backtest_prints_the_table_and_writes_the_page(at_store, tmp_path, capsys):
    path = tmp_path / "backtest.yaml"
    path.write_text(yaml.safe_dump(at_store.config.resolved_dict()))
    code = main(["backtest", str(path), "--by", "week", "--from", "2026-02-01", "--out", str(tmp_path / "w.html")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "did the served scores convert?" in out and "2026-W09" in out and "2026-W12: n/a, 0 labelled rows" in out
    assert "served by backtest 1" in out and f"wrote {tmp_path / 'w.html'}" in out and "MLflow run" in out
    assert "<svg" in (tmp_path / "w.html").read_text()


def test_a_bad_period_is_a_usage_error_and_no_history_says_to_score_first(at_store, tmp_path, capsys):
    path = tmp_path / "backtest.yaml"
    path.write_text(yaml.safe_dump(at_store.config.resolved_dict()))
    assert main(["backtest", str(path), "--by", "day"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'--by'" in err and "use month or week, not 'day'" in err
    assert main(["backtest", str(path), "--store", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no score history here yet (run `leadml score` first)" in err
    with pytest.raises(LeadDataError, match=r"no scores served between 2027-01-01 and the end"):
        run_backtest(at_store.config, since="2027-01-01", out=None, data=at_store.data, log=False)


def test_the_examples_in_the_docstrings_run():
    import doctest

    import leadml.explain.report.backtest
    import leadml.jobs.backtest

    for module in (leadml.jobs.backtest, leadml.explain.report.backtest):
        assert doctest.testmod(module).failed == 0, module.__name__
