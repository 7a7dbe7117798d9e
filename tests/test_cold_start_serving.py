"""A cold start serves the rules: registered as a model, scored by `leadml score`, explained, carded.

One small simulated CRM (Parquet tables, so the scoring job streams them) and a rules file with event
rules (one on an event attribute the features do not read) and a profile rule (on a field the features
do not read). Training with ``models.min_positives`` out of reach is a cold start: the rules baseline
is kept, and it must reach the sales team like any model.
"""

from __future__ import annotations

import dataclasses
import json

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from leadml.cli.app import main
from leadml.core.config import load_pipeline
from leadml.core.errors import ModelError
from leadml.data.simulate import write_simulation
from leadml.data.sources import load_pipeline_data
from leadml.features.scoring_set import open_lead_snapshots
from leadml.features.snapshots import to_utc
from leadml.jobs.train import run_training
from leadml.modeling.loading import load_model
from leadml.modeling.scoring_model import mql_points, rules_threshold
from leadml.rules.ruleset import POINTS_COLUMN, RuleSet

AS_OF = "2026-03-01"
RULES = {
    "name": "cold-points",
    "rules": [
        {"name": "Filled in a form", "event": "form_submit", "points": 20},
        {"name": "Visited pricing twice", "event": "page_view", "where": {"page": "pricing"}, "min_count": 2,
         "points": 25},
        {"name": "Clicked an e-mail", "event": "email_click", "points": 10},
        {"name": "Unsubscribed", "event": "unsubscribe", "points": -15},
        {"name": "Based in the US", "field": "country", "in": ["United States"], "points": 15},
    ],
    "tiers": [{"name": "MQL", "min": 40}, {"name": "nurture", "min": 20}, {"name": "unqualified"}],
}  # fmt: skip


def write_pipeline(folder, tables, *, name: str = "cold", **models) -> str:
    """A pipeline on the simulated tables with the rules above; ``models`` settings as given."""
    (folder / "rules.yaml").write_text(yaml.safe_dump(RULES, sort_keys=False))
    config = {
        "name": name,
        "data": {"source": "tables", **{t: str(tables / f"{t}.parquet") for t in ("leads", "events", "outcomes")}},
        "snapshots": {"horizon_days": 100},
        "profile": {"columns": ["industry", "company_size"]},  # the rules' country is not a feature
        "rules": str(folder / "rules.yaml"),
        "models": {"seed": 0, **models},
        "mql": {"policy": "capacity", "capacity_per_week": 5},
        "mlflow": {"registered_model": "cold-model"},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """The simulated tables, the cold-start pipeline and its training run, in one MLflow store."""
    folder = tmp_path_factory.mktemp("cold")
    tables = folder / "tables"
    write_simulation(tables, 1500, seed=21, chunk_size=400)
    pipeline = write_pipeline(folder, tables, min_positives=100_000)
    uri = f"sqlite:///{folder / 'mlruns.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.chdir(folder)
        run = run_training(load_pipeline(pipeline), n_boot=20)
    return {"folder": folder, "tables": tables, "pipeline": pipeline, "uri": uri, "run": run}


@pytest.fixture
def at_store(store, monkeypatch):
    """This test's MLflow is the module's store (the autouse fixture points it at the test's own folder)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    return store


def expected_scores(store) -> pd.DataFrame:
    """The open leads at AS_OF with their rules points (RuleSet on the pandas tables) and the calibrated
    baseline's probability of those points, by lead_id."""
    config = load_pipeline(store["pipeline"])
    data = load_pipeline_data(config.data)
    open_leads = open_lead_snapshots(data, to_utc(AS_OF))
    rules = RuleSet.load(config.rules).score_snapshots(open_leads, data.leads, data.events, subscores=True)
    baseline = store["run"].result.models["rules"]
    rules["probability"] = baseline.predict_proba(pd.DataFrame({POINTS_COLUMN: rules["points"]}))[:, 1]
    return rules.sort_values("lead_id", ignore_index=True)


def test_a_cold_start_registers_the_rules_as_a_model_and_says_why(at_store):
    run = at_store["run"]
    assert run.result.cold_start and run.result.chosen == "rules"
    outcome = run.outcome
    assert outcome.version == "1" and outcome.promoted
    assert "(the rules, scored as a model) is the first champion" in outcome.reason
    tags = MlflowClient().get_model_version("cold-model", "1").tags
    assert tags["leadml.chosen_model"] == "rules" and tags["leadml.cold_start"] == "True"
    assert tags["leadml.reason"].startswith("cold start: ") and "models.min_positives=100000" in tags["leadml.reason"]
    loaded = load_model(load_pipeline(at_store["pipeline"]))
    scoring = loaded.scoring
    assert scoring.needs_points and scoring.feature_names == [POINTS_COLUMN] and scoring.name == "rules"
    assert scoring.ruleset() == RuleSet.load(load_pipeline(at_store["pipeline"]).rules)
    assert scoring.threshold == run.result.threshold  # set on validation by the MQL policy


def test_the_pyfunc_scores_a_frame_of_rules_points(at_store):
    points = pd.DataFrame({POINTS_COLUMN: [0.0, 15.0, 40.0, 70.0]})
    pyfunc = mlflow.pyfunc.load_model("models:/cold-model/1")  # MLFLOW_TRACKING_URI: the module's store
    predicted = pyfunc.predict(points)
    baseline = at_store["run"].result.models["rules"]
    assert np.array_equal(predicted["probability"].to_numpy(), baseline.predict_proba(points)[:, 1])
    scoring = pyfunc.unwrap_python_model().scoring
    with pytest.raises(ModelError, match="is the rules baseline: it scores the rules points"):
        scoring.probability(pd.DataFrame({"visits": [1.0]}))


def test_score_serves_every_open_lead_with_the_calibrated_rules(at_store, capsys):
    out = at_store["folder"] / "scores.parquet"
    code = main(["score", at_store["pipeline"], "--as-of", AS_OF, "--out", out, "--reasons", "all", "--no-history"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    scores = pd.read_parquet(out).sort_values("lead_id", ignore_index=True)
    expected = expected_scores(at_store)
    assert scores["lead_id"].tolist() == expected["lead_id"].tolist() and len(scores) > 50
    assert np.array_equal(scores["probability"].to_numpy(), expected["probability"].to_numpy())
    assert (scores["model_name"] == "cold-model").all() and (scores["model_version"] == "1").all()
    # the rules' own sub-scores and grid tier, and the rules that fired as reasons
    assert scores["fit_score"].astype(float).tolist() == expected["fit_score"].astype(float).tolist()
    assert scores["engagement_score"].astype(float).tolist() == expected["engagement_score"].astype(float).tolist()
    assert scores["grid_tier"].notna().all()
    assert scores["reasons"].tolist() == expected["breakdown"].tolist()
    fired = expected["breakdown"].map(json.loads)
    top = [max(rules, key=lambda r: r["points"])["rule"] if any(r["points"] > 0 for r in rules) else ""
           for rules in fired]  # fmt: skip
    assert scores["reason_1"].fillna("").str.split(" \\(").str[0].tolist() == top
    assert "the rules 'cold-points' scored as a model" in printed.out.replace("\n", " ")


def test_the_model_card_says_it_is_the_rules_and_why(at_store):
    out = at_store["folder"] / "card"
    assert main(["report", at_store["pipeline"], "--out", out]) == 0
    card = (out / "model_card.html").read_text()
    assert "Cold start: the rules, scored as a model." in card and "scored as a model: each lead" in card
    assert "Why: too few closed deals to train the models (cold start: " in card
    assert "Visited pricing twice" in card  # the rules are listed with their points


def test_explain_a_lead_of_the_rules_model(at_store, capsys):
    expected = expected_scores(at_store)
    lead = expected.loc[expected["points"].idxmax()]
    assert main(["explain", at_store["pipeline"], "--lead", lead["lead_id"], "--as-of", AS_OF]) == 0
    text = capsys.readouterr().out
    assert "scored by cold-model version 1 (the rules cold-points, scored as a model)" in text.replace("\n", " ")
    assert "Rules that fired:" in text and f"{lead['points']:g} points" in text


def test_the_spark_engine_refuses_a_rules_model(at_store):
    from leadml.jobs.spark import refuse_rules_model

    with pytest.raises(ModelError, match="the Spark engine does not serve; score it with --engine pandas"):
        refuse_rules_model(load_model(load_pipeline(at_store["pipeline"])))


def test_without_validation_labels_the_threshold_is_the_rules_mql_points():
    from leadml.modeling.calibrate import CalibratedModel
    from leadml.rules.baseline import PointsBaseline

    points = pd.DataFrame({POINTS_COLUMN: [0.0, 10.0, 20.0, 40.0, 60.0, 80.0]})
    model = CalibratedModel(PointsBaseline().fit(points, [0, 0, 1, 0, 1, 1]), method="none").fit(points[:0], [])
    ruleset = RuleSet.from_dict(RULES)
    assert mql_points(ruleset) == 40
    assert rules_threshold(model, ruleset) == model.predict_proba(pd.DataFrame({POINTS_COLUMN: [40.0]}))[0, 1]
    catch_all = RuleSet.from_dict({**RULES, "tiers": [{"name": "everyone"}]})
    assert mql_points(catch_all) is None and rules_threshold(model, catch_all) == 0.0


def test_with_no_validation_threshold_the_rules_mql_points_set_it(store, tmp_path):
    from leadml.explain.report import write_model_card
    from leadml.modeling.scoring_model import LeadScoringModel

    run, ruleset = store["run"], RuleSet.from_dict(RULES)
    unset = dataclasses.replace(run.result, thresholds={})  # as when no validation snapshot has a label
    scoring = LeadScoringModel.from_training(unset, run.trainset, [], rules=ruleset)
    assert scoring.threshold == rules_threshold(run.result.models["rules"], ruleset) > 0
    card = write_model_card(unset, run.trainset, tmp_path / "card.html", rules=ruleset).read_text()
    assert "No labelled validation snapshot could set the MQL threshold by policy" in card
    assert "own MQL points (40)" in card
    with pytest.raises(ModelError, match="give the rule set that scored the training snapshots"):
        LeadScoringModel.from_training(unset, run.trainset, [])


def test_a_cold_start_does_not_replace_a_learned_champion_it_does_not_beat(tmp_path, store):
    learned = write_pipeline(tmp_path, store["tables"], name="learned", logistic={"enabled": False},
                             lightgbm={"n_estimators": 40}, min_positives=5, min_negatives=5)  # fmt: skip
    first = run_training(load_pipeline(learned), n_boot=20)
    assert not first.result.cold_start and first.outcome.promoted and first.outcome.version == "1"
    cold = load_pipeline(write_pipeline(tmp_path, store["tables"], name="learned", min_positives=100_000))
    second = run_training(cold, n_boot=20).outcome
    assert second.version == "2" and second.comparison is not None
    assert second.promoted == (second.comparison.gain_low > cold.mlflow.promote_margin)  # the interval rule
    champion = str(MlflowClient().get_model_version_by_alias("cold-model", "champion").version)
    assert champion == ("2" if second.promoted else "1"), second.reason
