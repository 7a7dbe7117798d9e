"""A learned model's MQLs say by which route they qualified: the route of their highest sub-score."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from leadml.core.config import parse_pipeline
from leadml.data.sources import load_pipeline_data
from leadml.features.scoring_set import open_lead_snapshots
from leadml.jobs.decisions import decision_columns
from leadml.jobs.train import run_training
from leadml.modeling.registry import scoring_model
from leadml.modeling.routes import model_routes
from leadml.modeling.subscores import group_effects

AS_OF = pd.Timestamp("2026-03-01", tz="UTC")
CONFIG = {
    "name": "routes",
    "data": {"simulator": {"leads": 6000, "seed": 11}},
    "models": {"logistic": {"enabled": False}, "lightgbm": {"n_estimators": 60}},
    "features": {"scenarios": {"pricing_path": ["email_click", "page_view[pricing]", "form_submit"]}},
}  # fmt: skip


@pytest.fixture(scope="module")
def scored():
    """A LightGBM model with a path feature, and the open leads at AS_OF with their decision columns."""
    config = parse_pipeline(CONFIG)
    run = run_training(config, log=False, n_boot=10)
    scoring = scoring_model(run.result, run.trainset, config.mql.tiers)
    data = load_pipeline_data(config.data, need_outcomes=False)
    snapshots = open_lead_snapshots(data, AS_OF)
    features = scoring.builder.transform(snapshots, data.leads, data.events)
    scores = scoring.score(features)
    decisions = decision_columns(scoring, config, features, scores["tier"].astype(str).tolist(), AS_OF,
                                 lead_ids=snapshots["lead_id"], is_mql=scores["is_mql"].to_numpy())  # fmt: skip
    return scoring, features, scores.reset_index(drop=True), decisions


def test_every_mql_and_only_an_mql_has_a_route(scored):
    _, _, scores, decisions = scored
    mql = scores["is_mql"].to_numpy(dtype=bool)
    assert mql.sum() > 50
    assert decisions["mql_route"].notna().to_numpy().tolist() == mql.tolist()
    named = {part for route in decisions.loc[mql, "mql_route"] for part in route.split("+")}
    assert named == {"behaviour", "profile", "scenario"}


def test_the_route_is_the_highest_sub_score(scored):
    """Recomputed from the group effects of every lead, ranked on the scale the model carries."""
    scoring, features, scores, decisions = scored
    effects = group_effects(scoring.model, features, scoring.builder.feature_info_, scenario=True)
    ranks = scoring.subscores.transform(effects).reset_index(drop=True)
    assert (ranks["fit_score"].to_numpy() == decisions["fit_score"].to_numpy(dtype=int)).all()
    table = ranks[["engagement_score", "fit_score", "scenario_score"]].to_numpy()
    expected = np.array(["behaviour", "profile", "scenario"], dtype=object)[np.argmax(table, axis=1)]
    # the whole path (3 steps, in order) adds the scenario route to the highest sub-score's
    whole = features.reset_index(drop=True)["scenario[pricing_path]__steps"].to_numpy() >= 3
    expected = np.where(whole & (expected != "scenario"), expected + "+scenario", expected)
    mql = scores["is_mql"].to_numpy(dtype=bool)
    assert decisions.loc[mql, "mql_route"].tolist() == expected[mql].tolist()
    assert (whole & mql).sum() > 0 and (~whole & mql).sum() > 0
    assert (ranks["scenario_score"].nunique()) > 1  # the path feature ranks leads apart


def test_a_scale_without_the_scenario_score_names_behaviour_or_profile(scored):
    scoring, features, scores, decisions = scored
    old = copy.copy(scoring)
    old.subscores = copy.deepcopy(scoring.subscores)
    del old.subscores.quantiles_["scenario"]
    mql = scores["is_mql"].to_numpy(dtype=bool)
    routes = model_routes(old, features.reset_index(drop=True), decisions, mql)
    fit, engagement = decisions["fit_score"].to_numpy(dtype=int), decisions["engagement_score"].to_numpy(dtype=int)
    whole = features.reset_index(drop=True)["scenario[pricing_path]__steps"].to_numpy() >= 3
    best = np.where(fit > engagement, "profile", "behaviour").astype(object)
    assert routes[mql].tolist() == np.where(whole, best + "+scenario", best)[mql].tolist()
