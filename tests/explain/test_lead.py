"""`explain_lead`: one lead scored and explained at an as_of exactly as the batch job scores it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from leadml.core.config import parse_pipeline
from leadml.core.errors import ConfigError, LeadDataError
from leadml.data.simulate import simulate
from leadml.data.sources import PipelineData
from leadml.explain.counterfactual import apply_action, parse_action
from leadml.explain.lead import LeadExplanation, default_as_of, explain_lead, format_explanation
from leadml.features.scoring_set import open_lead_snapshots
from leadml.jobs.train import run_training
from leadml.modeling.registry import scoring_model
from leadml.rules.ruleset import RuleSet

AS_OF = pd.Timestamp("2026-03-01", tz="UTC")


@pytest.fixture(scope="module")
def setup(repo):
    """A LightGBM model trained on 3,000 simulated leads (not logged), its scoring model and the data."""
    config = parse_pipeline({
        "name": "explain-lead",
        "data": {"source": "simulator", "simulator": {"leads": 3000, "seed": 11}},
        "rules": str(repo / "pipelines" / "rules" / "seed_points.yaml"),
        "snapshots": {"horizon_days": 100},
        "models": {"logistic": {"enabled": False}, "lightgbm": {"n_estimators": 60}},
    })  # fmt: skip
    data = PipelineData.from_simulation(simulate(3000, seed=11))
    run = run_training(config, data=data, log=False, n_boot=10)
    scoring = scoring_model(run.result, run.trainset, config.mql.tiers)
    return config, data, run, scoring


@pytest.fixture(scope="module")
def batch(setup) -> pd.DataFrame:
    """The batch job's definition of the scores at AS_OF: open-lead snapshots, the builder, the model."""
    _, data, _, scoring = setup
    snapshots = open_lead_snapshots(data, AS_OF)
    features = scoring.builder.transform(snapshots, data.leads, data.events)
    return pd.concat([snapshots, scoring.score(features)], axis=1).set_index("lead_id")


def explain(setup, lead_id, as_of=AS_OF, model_uri="scoring"):
    config, data, _, scoring = setup
    return explain_lead(config, lead_id, as_of, scoring if model_uri == "scoring" else model_uri, data=data)


def test_an_mql_gets_the_batch_score_and_reasons_that_add_up(setup, batch):
    lead = batch.index[batch["is_mql"]][0]
    e = explain(setup, lead)
    assert isinstance(e, LeadExplanation) and e.lead_id == lead and e.as_of == AS_OF
    assert e.probability == batch.loc[lead, "probability"]  # bit for bit, as the job writes it
    assert (e.tier, e.is_mql, e.score) == (batch.loc[lead, "tier"], True, batch.loc[lead, "score"])
    assert e.threshold == setup[3].threshold and e.counterfactual == ""
    reasons = e.reasons
    assert list(reasons.columns) == ["sentence", "direction", "feature", "value", "contribution", "points", "decisive"]
    raises = reasons["direction"] == "raises"
    assert (reasons.loc[raises, "contribution"] > 0).all() and (reasons.loc[~raises, "contribution"] < 0).all()
    assert raises.iloc[: raises.sum()].all()  # raising reasons first, each side strongest first
    assert reasons.loc[raises, "contribution"].is_monotonic_decreasing
    assert reasons.loc[~raises, "contribution"].is_monotonic_increasing
    # every feature that moved the lead is listed: base value + contributions = the margin (to JSON rounding)
    c = e.contributions
    assert abs(c.base_value + reasons["contribution"].sum() - float(c.margin[0])) < 1e-4 * (len(reasons) + 1)
    assert reasons["sentence"].str.len().gt(0).all()
    assert not reasons["sentence"].str.endswith(("(raises)", "(lowers)")).any()  # the direction is a column


def test_a_lead_below_the_threshold_gets_a_counterfactual_that_crosses_it(setup, batch):
    config, data, _, scoring = setup
    below = batch.loc[~batch["is_mql"]].sort_values("probability", ascending=False)
    lead = below.index[0]
    e = explain(setup, lead)
    assert not e.is_mql and e.probability == below.loc[lead, "probability"]
    assert e.counterfactual.endswith("would make it an MQL") and "No single" not in e.counterfactual
    # the suggestion is checked against the model: apply its first action and rescore
    first = e.counterfactual.split(" or ")[0]
    k = int(first.split(" ")[0])
    info = e.feature_info
    names = [i.name for i in info]
    actions = {parse_action(name.partition("__")[0]).phrase(k): name.partition("__")[0] for name in names
               if "__count_" in name}  # fmt: skip
    changed = apply_action(e.features[names], actions[first], k)
    assert scoring.probability(changed)[0] >= scoring.threshold > e.probability
    text = format_explanation(e)
    assert e.counterfactual in text and f"Lead {lead} at 2026-03-01 00:00 UTC" in text
    assert "Not an MQL" in text


def test_the_terminal_text_gives_reasons_with_direction_and_points(setup, batch):
    lead = batch.index[batch["is_mql"]][0]
    e = explain(setup, lead)
    text = format_explanation(e, top=3)
    lines = text.splitlines()
    assert lines[0] == f"Lead {lead} at 2026-03-01 00:00 UTC, scored by {setup[3].name or 'leadml'}"
    assert lines[1].startswith(f"MQL: {round(e.probability * 100)} % (threshold {round(e.threshold * 100)} %)")
    assert lines[1].endswith(f"; score {int(e.score)} of 100, tier {e.tier}")
    assert lines[2].startswith("average lead (base value):")
    raised = lines.index("Raised by:")
    top = e.reasons.loc[e.reasons["direction"] == "raises"].iloc[0]
    assert top["sentence"] in lines[raised + 1] and f"{top['points']:+.1f} points" in lines[raised + 1]
    assert sum(line.startswith("  +") for line in lines) <= 3
    assert "would make it an MQL" not in text


@pytest.mark.parametrize("position", [0, 40])  # no rule fires for the first lead, some for the other
def test_the_rules_baseline_is_explained_by_its_exact_breakdown(setup, batch, repo, position):
    config, data, _, _ = setup
    lead = batch.index[position]
    e = explain(setup, lead, model_uri="rules")
    expected = RuleSet.load(repo / "pipelines" / "rules" / "seed_points.yaml").score(
        data.leads.loc[data.leads["lead_id"] == lead], data.events, AS_OF)  # fmt: skip
    assert e.probability is None and e.contributions is None
    assert e.score == expected["points"].iloc[0] and e.tier == expected["tier"].iloc[0]
    assert e.is_mql == (e.score >= 50) and e.threshold == 50
    fired = json.loads(expected["breakdown"].iloc[0])
    assert sorted(e.reasons["feature"]) == sorted(r["rule"] for r in fired)
    assert e.reasons["points"].sum() == e.score
    text = format_explanation(e)
    assert "scored by rules seed-points" in text and f"{e.score:g} points: tier {e.tier}" in text
    assert "(MQL from 50 points)" in text and ("not an MQL" in text) == (not e.is_mql and e.tier != "MQL")
    for rule, points in zip(e.reasons["feature"], e.reasons["points"]):
        assert f"{points:+6g}  {rule}" in text
    assert (f"=  {e.score:g} points" in text) if fired else text.endswith("No rule fired.")


def test_unknown_closed_and_future_leads_are_clear_errors(setup, batch):
    config, data, _, scoring = setup
    with pytest.raises(LeadDataError, match=r"no lead with lead_id 'X123' among 3,000 leads .*L0000001"):
        explain(setup, "X123")
    closed = data.outcomes.sort_values("closed_at").iloc[0]
    with pytest.raises(LeadDataError, match=rf"lead {closed['lead_id']} was closed \((won|lost)\) on .*--as-of"):
        explain(setup, closed["lead_id"], closed["closed_at"] + pd.Timedelta(days=1))
    assert closed["lead_id"] not in batch.index or batch.loc[closed["lead_id"], "as_of"] <= closed["closed_at"]
    newest = data.leads.sort_values("created_at").iloc[-1]
    with pytest.raises(LeadDataError, match=rf"lead {newest['lead_id']} was created on .* after as_of"):
        explain(setup, newest["lead_id"], newest["created_at"] - pd.Timedelta(days=1))
    with pytest.raises(ConfigError, match="no rules file"):
        explain_lead(config.model_copy(update={"rules": None}), batch.index[0], AS_OF, "rules", data=data)


def test_the_default_as_of_is_the_end_of_the_data(setup):
    _, data, _, _ = setup
    assert default_as_of(data) == data.data_end
    unknown_end = PipelineData(leads=data.leads, events=data.events, outcomes=data.outcomes)
    last = max(data.events["timestamp"].max(), data.outcomes["closed_at"].max(), data.leads["created_at"].max())
    end = default_as_of(unknown_end)
    assert end > last and end - last <= pd.Timedelta(days=1) and end == end.normalize()


def test_the_registered_champion_explains_as_the_in_memory_model(setup, batch, tmp_path):
    from leadml.modeling.registry import log_training

    config, data, run, scoring = setup
    registered = config.model_copy(update={"mlflow": config.mlflow.model_copy(update={"registered_model": "lead-x"})})
    outcome = log_training(registered, run.trainset, run.result, promote="auto")
    assert outcome.version is not None
    lead = batch.index[batch["is_mql"]][1]
    e = explain_lead(registered, lead, AS_OF, data=data)  # the champion, from MLflow in tmp_path
    assert e.model == f"lead-x version {outcome.version}"
    assert e.probability == batch.loc[lead, "probability"]
    np.testing.assert_allclose(e.reasons["contribution"].to_numpy(), explain(setup, lead).reasons["contribution"])
