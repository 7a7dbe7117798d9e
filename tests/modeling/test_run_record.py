"""Issue 22 item 3: a training run logs every setting as a flat param; the version has tags and a description."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient
from test_train import config, make_trainset

from leadml.core.version import __version__
from leadml.modeling.registry import data_fingerprint, log_training
from leadml.modeling.run_record import MAX_VALUE, param_text
from leadml.modeling.train import train_models


@pytest.fixture(scope="module")
def trained():
    trainset, points, _ = make_trainset(1500, seed=3)
    settings = config(mql={"policy": "capacity", "capacity_per_week": 12},
                      lightgbm={"num_leaves": 5, "n_estimators": 300})  # fmt: skip
    settings = settings.with_overrides({"snapshots.horizon_days": 90, "split.gap_days": 7, "features.windows": [7, 28]})
    return settings, trainset, train_models(settings, trainset, points, n_boot=50)


def test_every_setting_is_a_flat_param_read_back_from_the_sqlite_store(trained):
    settings, trainset, result = trained
    outcome = log_training(settings, trainset, result)
    assert MlflowClient().tracking_uri.startswith("sqlite:///")
    params = MlflowClient().get_run(outcome.run_id).data.params
    expected = {
        "models.seed": "0", "models.select_metric": "pr_auc", "models.calibration": "auto",
        "models.logistic.C": "1.0", "models.logistic.class_weight": "None", "models.logistic.max_iter": "2000",
        "models.lightgbm.num_leaves": "5", "models.lightgbm.n_estimators": "300",
        "models.lightgbm.learning_rate": "0.05", "models.lightgbm.early_stopping_rounds": "50",
        "models.lightgbm.min_child_samples": "50", "models.lightgbm.subsample": "0.8",
        "models.lightgbm.colsample_bytree": "0.8", "models.lightgbm.reg_lambda": "1.0",
        "models.lightgbm.cat_smooth": "20.0", "models.lightgbm.max_cat_to_onehot": "4",
        "snapshots.horizon_days": "90", "snapshots.policy": "every_days", "snapshots.every_days": "14",
        "snapshots.max_per_lead": "26", "snapshots.weighting": "lead", "snapshots.target": "won",
        "split.method": "stratified", "split.test_fraction": "0.2", "split.validation_fraction": "0.2",
        "split.gap_days": "7",
        "mql.policy": "capacity", "mql.capacity_per_week": "12", "mql.target_precision": "None",
        "mql.tiers": "A>=0.5,B>=0.25,C>=0.1,D",
        "features.windows": "7,28", "features.decay_half_lives": "30.0", "features.n_event_types": "0",
        "data.fingerprint": data_fingerprint(trainset), "data_fingerprint": data_fingerprint(trainset),
        "leadml.package_version": __version__, "chosen_model": result.chosen,
    }  # fmt: skip
    assert {key: params.get(key) for key in expected} == expected
    trees = result.models["lightgbm"].estimator.n_trees_
    assert params["models.lightgbm.best_iteration"] == str(trees) and 0 < trees <= 300
    assert all(len(value) <= MAX_VALUE for value in params.values())


def test_the_registered_version_has_tags_and_a_description_with_metrics_and_data(trained):
    settings, trainset, result = trained
    outcome = log_training(settings, trainset, result)
    version = MlflowClient().get_model_version(outcome.registered_model, outcome.version)
    assert {k: v for k, v in version.tags.items() if k != "leadml.reason"} == {
        "leadml.pipeline": "test", "leadml.chosen_model": result.chosen, "leadml.cold_start": "False",
        "leadml.target_stage": "won", "leadml.data_fingerprint": data_fingerprint(trainset),
        "leadml.package_version": __version__,
    }  # fmt: skip
    text = version.description
    metric = result.evaluation.metrics.set_index(["model", "metric"]).loc[(result.chosen, "pr_auc")]
    assert text.startswith(f"{result.chosen} chosen on validation pr_auc (target: won within 90 days; pipeline test)")
    assert f"pr_auc {metric['value']:.3f} [{metric['low']:.3f}, {metric['high']:.3f}]" in text
    as_of = trainset.frame["as_of"]
    assert f"Snapshots: {as_of.min():%Y-%m-%d} to {as_of.max():%Y-%m-%d} (as_of); 1,500 leads, 1,500 snapshots" in text
    assert "(train 825, validation 225, test 330, gap 75, censored 45)" in text
    assert "Test metrics on 330 snapshots (95 % intervals): pr_auc" in text


def test_a_long_value_is_cut_to_the_limit_and_says_so():
    text = param_text(list(range(400)))
    assert len(text) == MAX_VALUE and text.endswith("chars)")
    assert param_text({"b": [1], "a": "x"}) == '{"a":"x","b":[1]}'
