"""Fixtures of the explanation tests: the small simulation, its training set and trained models."""

from __future__ import annotations

import pandas as pd
import pytest

from leadml.core.config import parse_pipeline
from leadml.data.sources import PipelineData
from leadml.features.build import build_trainset
from leadml.modeling.train import train_models
from leadml.rules.ruleset import RuleSet

PIPELINE = {
    "name": "explain-tests",
    "snapshots": {"policy": "days_after_creation", "days_after_creation": 14, "horizon_days": 100},
    "features": {"attribute_counts": {"page_view": {"page": ["pricing", "careers"]}}},
    "models": {"seed": 0, "lightgbm": {"n_estimators": 60, "learning_rate": 0.1}},
    "mql": {"policy": "capacity", "capacity_per_week": 10},
}


@pytest.fixture(scope="session")
def sim_data(small_sim) -> PipelineData:
    return PipelineData.from_simulation(small_sim)


@pytest.fixture(scope="session")
def pipeline_config():
    return parse_pipeline(PIPELINE)


@pytest.fixture(scope="session")
def trainset(pipeline_config, sim_data):
    return build_trainset(pipeline_config, sim_data)


@pytest.fixture(scope="session")
def rules_scores(trainset, sim_data, repo) -> pd.DataFrame:
    rules = RuleSet.load(repo / "pipelines" / "rules" / "seed_points.yaml")
    return rules.score_snapshots(trainset.frame[["lead_id", "as_of"]], sim_data.leads, sim_data.events)


@pytest.fixture(scope="session")
def trained(pipeline_config, trainset, rules_scores):
    """The TrainingResult of rules, logistic and LightGBM (60 trees at most) on the small simulation."""
    points = pd.Series(rules_scores["points"].to_numpy(), index=trainset.frame.index)
    return train_models(pipeline_config, trainset, points, n_boot=50)


@pytest.fixture(scope="session")
def test_rows(trainset) -> pd.DataFrame:
    """The labelled test snapshots (features and keys)."""
    frame = trainset.frame
    return frame.loc[(frame["split"] == "test") & frame["converted"].notna()]


@pytest.fixture(scope="session")
def train_features(trainset) -> pd.DataFrame:
    frame = trainset.frame
    return frame.loc[(frame["split"] == "train") & frame["converted"].notna(), trainset.feature_names]
