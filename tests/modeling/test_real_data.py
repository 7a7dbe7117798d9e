"""Metric floors on the real public data (CI has ../shared/datasets; a user's clone skips)."""

from pathlib import Path

import numpy as np
import pytest
from sklearn.compose import make_column_selector, make_column_transformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from leadml.core.config import load_pipeline
from leadml.data.sources import load_pipeline_data
from leadml.features.build import build_trainset
from leadml.jobs.train import run_training
from leadml.modeling.train import WEIGHT_COLUMN, train_models
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


def plain_logistic():
    """The textbook baseline: one-hot levels, standardised numbers (median-imputed: sklearn's regression
    refuses NaN), a logistic regression with scikit-learn's defaults."""
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    preprocess = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), make_column_selector(dtype_include="category")),
        (numeric, make_column_selector(dtype_include="number")),
    )
    return make_pipeline(preprocess, LogisticRegression(max_iter=2000))


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.parametrize("pipeline, floor", [("x_education.yaml", 0.895), ("bank_marketing.yaml", 0.785)])
def test_the_logistic_model_is_as_good_as_a_plain_one_hot_and_standardise_regression(pipeline, floor, monkeypatch):
    monkeypatch.setenv("LEADML_DATASETS", str(datasets_dir_or_skip()))
    config = load_pipeline(PIPELINES / pipeline).with_overrides({"models.lightgbm.enabled": False})
    trainset = build_trainset(config, load_pipeline_data(config.data))
    result = train_models(config, trainset, None, n_boot=50)  # the training path: weights, calibration
    frame, names = trainset.frame, trainset.feature_names
    train, test = (frame[(frame["split"] == part) & frame["converted"].notna()] for part in ("train", "test"))
    weights = train[WEIGHT_COLUMN].to_numpy() if WEIGHT_COLUMN in frame else None
    plain = plain_logistic().fit(train[names], train["converted"], logisticregression__sample_weight=weights)
    plain_auc = roc_auc_score(test["converted"], plain.predict_proba(test[names])[:, 1])
    leadml_auc = roc_auc_score(test["converted"], result.models["logistic"].raw_proba(test[names]))
    reported = result.evaluation.value("logistic", "roc_auc")  # calibrated, as the run logs it
    print(f"{pipeline}: leadml logistic {leadml_auc:.4f} (calibrated {reported:.4f}), plain {plain_auc:.4f}")
    assert reported >= floor
    # as good as the plain regression up to 0.002 (either model's own 95 % interval is +-0.015 here): the
    # heavy-tailed columns it logs (X Education's visits, Bank Marketing's calls) cost it 0.0006 and 0.0008
    assert leadml_auc >= plain_auc - 0.002
    assert np.isclose(reported, leadml_auc, atol=0.002)  # calibration keeps the ranking (sigmoid) or nearly
