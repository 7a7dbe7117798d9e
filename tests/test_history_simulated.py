"""Score history on the simulator: weekly scoring runs, warming up checked against the latent truth."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from leadml.cli.app import app
from leadml.core.config import parse_pipeline
from leadml.core.errors import LeadDataError
from leadml.data.simulate import simulate
from leadml.explain.trends import warming_up
from leadml.jobs.history import load_history
from leadml.jobs.score import score_batch
from leadml.jobs.train import run_training
from leadml.modeling.registry import scoring_model

RUNS = pd.date_range("2026-02-08", "2026-03-01", freq="7D", tz="UTC")
TIERS = [{"name": "MQL", "min": "mql", "action": "Call", "within_hours": 24},
         {"name": "nurture", "min": 0.05, "action": "Send the case-study e-mail series", "within_hours": 168},
         {"name": "unqualified", "action": "Keep in the newsletter"}]  # fmt: skip


@pytest.fixture(scope="module")
def weekly(tmp_path_factory):
    """A LightGBM model on 6,000 simulated leads, scoring the open leads every week for four weeks."""
    folder = tmp_path_factory.mktemp("weekly")
    config = parse_pipeline({
        "name": "weekly", "data": {"simulator": {"leads": 6000, "seed": 11}},
        "models": {"logistic": {"enabled": False}, "lightgbm": {"n_estimators": 60}},
        "mql": {"tiers": TIERS}, "history": {"path": str(folder / "history")},
    })  # fmt: skip
    run = run_training(config, log=False, n_boot=10)
    scoring = scoring_model(run.result, run.trainset, config.mql.tiers)
    for day in RUNS:
        score_batch(config, day, folder / f"scores-{day:%m%d}.parquet", model_uri=scoring, reasons=False,
                    drift=False, progress=False)  # fmt: skip
    return config, folder


def test_every_run_is_in_the_history_once_and_re_running_a_day_replaces_it(weekly):
    config, folder = weekly
    history = load_history(folder / "history")
    per_run = history.groupby("as_of").size()
    assert per_run.index.tolist() == list(RUNS)
    last = pd.read_parquet(folder / "scores-0301.parquet")
    assert per_run.iloc[-1] == len(last)
    assert not history.duplicated(["lead_id", "as_of"]).any()
    assert {"fit_score", "engagement_score", "grid_tier", "next_action", "due_at"} <= set(history.columns)
    mql = last[last["tier"] == "MQL"]  # the deadline runs from the start of each MQL spell, not from every run
    assert (mql["due_at"] == mql["mql_since"] + pd.Timedelta(hours=24)).all() and (mql["mql_since"] <= RUNS[-1]).all()
    assert not mql.loc[mql["mql_since"] == RUNS[-1], "overdue"].any()  # new this run: 24 h to go
    assert mql.loc[mql["mql_since"] < RUNS[-1], "overdue"].mean() > 0.5  # since a run before: past, unless accepted
    assert last["grid_tier"].str.fullmatch(r"[ABC][123]").all()


def test_the_leads_warming_up_are_mostly_those_whose_latent_interest_rose(weekly):
    _, folder = weekly
    history = load_history(folder / "history")
    trend = simulate(6000, seed=11).truth.set_index("lead_id")["interest_trend"].astype(str)
    top = trend.reindex(warming_up(history, days=7, top=20)["lead_id"]).value_counts()
    scored = trend.reindex(history.loc[history["as_of"] == RUNS[-1], "lead_id"]).value_counts(normalize=True)
    assert top.sum() == 20
    assert top.get("warming", 0) >= 10  # measured: 13 of 20, where 31 % of the scored leads warm up
    assert top.get("warming", 0) / 20 >= 1.6 * scored["warming"]
    assert top.get("warming", 0) >= 2 * top.get("cooling", 0)


def test_leadml_history_prints_a_lead_over_time_and_the_warming_and_stuck_lists(weekly, tmp_path):
    config, folder = weekly
    path = tmp_path / "weekly.yaml"
    import yaml

    path.write_text(yaml.safe_dump(config.resolved_dict()))
    history = load_history(folder / "history")
    top = warming_up(history, days=7, top=1)["lead_id"].iloc[0]
    runner = CliRunner()
    result = runner.invoke(app, ["history", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "warming up" in result.output and top in result.output and "stuck" in result.output
    result = runner.invoke(app, ["history", str(path), "--lead", top], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    runs = int((history["lead_id"] == top).sum())
    assert runs >= 2 and result.output.count("2026-0") == runs  # one line per run that scored the lead
    result = runner.invoke(app, ["history", str(path), "--lead", "L9999999"])
    assert isinstance(result.exception, LeadDataError) and "no scores of lead 'L9999999'" in str(result.exception)
