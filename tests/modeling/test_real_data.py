"""Metric floors on the real public data (CI has ../shared/datasets; a user's clone skips)."""

from pathlib import Path

import pytest

from leadml.core.config import load_pipeline
from leadml.jobs.train import run_training
from tests.conftest import datasets_dir_or_skip

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.parametrize("pipeline, floor", [("x_education.yaml", 0.90), ("bank_marketing.yaml", 0.79)])
def test_best_model_clears_the_floor_and_beats_the_points_baseline(pipeline, floor, monkeypatch):
    monkeypatch.setenv("LEADML_DATASETS", str(datasets_dir_or_skip()))
    config = load_pipeline(PIPELINES / pipeline)
    run = run_training(config, log=False, n_boot=200)
    result = run.result
    evaluation = result.evaluation
    leaky = set(run.trainset.data.leaky)
    assert not leaky & set(run.trainset.feature_names)
    best = max(("logistic", "lightgbm"), key=lambda name: evaluation.value(name, "roc_auc"))
    best_auc, rules_auc = evaluation.value(best, "roc_auc"), evaluation.value("rules", "roc_auc")
    print(f"{pipeline}: {best} ROC-AUC {best_auc:.3f}, rules {rules_auc:.3f}")
    assert best_auc >= floor
    assert best_auc > rules_auc
    difference = evaluation.differences
    row = difference[(difference["model"] == best) & (difference["metric"] == "roc_auc")].iloc[0]
    assert row["low"] > 0  # the paired bootstrap interval of the gain over the rules excludes zero
    # the registered form of the model: real column names ("Lead Origin") reach the sub-scores
    from leadml.modeling.registry import scoring_model
    from leadml.modeling.subscores import subscores

    scoring = scoring_model(result, run.trainset, config.mql.tiers)
    assert scoring.subscores is not None
    sub = subscores(scoring, run.trainset.frame[run.trainset.feature_names].head(300))
    assert sub["fit_score"].between(0, 100).all() and sub["grid_tier"].str.fullmatch(r"[ABC][123]").all()
