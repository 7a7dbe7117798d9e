"""Logistic regression and LightGBM over the feature frame: learning, robustness, determinism."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
)

from leadml.core.config import LightGBMConfig, LogisticConfig, ModelsConfig
from leadml.core.errors import LeadDataError
from leadml.modeling.estimators import LightGBMModel, LogisticModel, fit_model, lightgbm_names, make_models

LEVEL_EFFECT = {"staff": 0.0, "manager": 0.4, "director": 0.9, "vp": 1.2, "student": -1.5}


def _categorical(values, levels) -> pd.Categorical:
    return pd.Categorical(values, categories=list(levels) + ["other", "missing"])


def make_feature_frame(n: int, seed: int = 0, noise_levels: int = 0):
    """A frame shaped like TrainSet's features (Categoricals with other/missing, floats with NaN), labels, true p."""
    rng = np.random.default_rng(seed)
    level = rng.choice(list(LEVEL_EFFECT), n, p=[0.4, 0.25, 0.15, 0.1, 0.1])
    industry = rng.choice([f"ind{i}" for i in range(8)], n)
    visits = rng.poisson(2.0, n).astype(float)
    pricing = rng.poisson(0.3 + 0.1 * visits).astype(float)
    days = np.where(rng.random(n) < 0.3, np.nan, rng.exponential(20, n))
    size = rng.lognormal(3, 1.2, n)
    size[rng.random(n) < 0.1] = np.nan
    effect = pd.Series(level).map(LEVEL_EFFECT).to_numpy()
    logit = (
        -3.3
        + effect
        + pd.Series(industry).map({f"ind{i}": (i - 3.5) * 0.12 for i in range(8)}).to_numpy()
        + 0.25 * np.sqrt(visits)
        + 0.6 * np.minimum(pricing, 3)
        - 0.02 * np.nan_to_num(days, nan=60)
        + 0.15 * np.log1p(np.nan_to_num(size, nan=20))
        + 0.5 * (pricing > 0) * (effect > 0.5)
    )
    p = 1 / (1 + np.exp(-logit))
    y = (rng.random(n) < p).astype(float)
    frame = pd.DataFrame({
        "job_level": _categorical(level, sorted(LEVEL_EFFECT)),
        "industry": _categorical(industry, [f"ind{i}" for i in range(8)]),
        "page_view__count_30d": visits,
        "page_view[pricing]__count_30d": pricing,
        "events__days_since_last": days,
        "company_size": size,
    })  # fmt: skip
    if noise_levels:
        pages = [f"lp{i:03d}" for i in range(noise_levels)]
        frame["landing_page"] = _categorical(rng.choice(pages, n), pages)
    return frame, y, p


@pytest.fixture(scope="module")
def data():
    frame, y, p = make_feature_frame(8000, seed=1, noise_levels=500)
    parts = {"train": slice(0, 4500), "valid": slice(4500, 5800), "test": slice(5800, 8000)}
    return frame, y, p, parts


def _auc(model, X, y) -> float:
    return roc_auc_score(y, model.predict_proba(X)[:, 1])


def test_both_models_learn_the_drivers(data):
    frame, y, p, parts = data
    X = frame.drop(columns="landing_page")
    tr, va, te = parts["train"], parts["valid"], parts["test"]
    bayes = roc_auc_score(y[te], p[te])
    logistic = LogisticModel().fit(X.iloc[tr], y[tr])
    lgbm = LightGBMModel().fit(X.iloc[tr], y[tr], eval_set=(X.iloc[va], y[va]))
    assert _auc(logistic, X.iloc[te], y[te]) > bayes - 0.03
    assert _auc(lgbm, X.iloc[te], y[te]) > bayes - 0.06
    for model in (logistic, lgbm):
        proba = model.predict_proba(X.iloc[te])
        assert proba.shape == (len(X.iloc[te]), 2)
        assert np.allclose(proba.sum(axis=1), 1.0)
        assert ((proba > 0) & (proba < 1)).all()


@pytest.mark.parametrize("name", ["logistic", "lightgbm"])
def test_a_500_level_noise_column_costs_at_most_0_005_auc(data, name):
    frame, y, _, parts = data
    tr, va, te = parts["train"], parts["valid"], parts["test"]
    assert frame["landing_page"].cat.categories.size == 502
    aucs = {}
    for with_noise in (False, True):
        X = frame if with_noise else frame.drop(columns="landing_page")
        model = make_models(ModelsConfig(seed=3))[name]
        fit_model(model, X.iloc[tr], y[tr], X.iloc[va], y[va])
        aucs[with_noise] = _auc(model, X.iloc[te], y[te])
    assert aucs[True] >= aucs[False] - 0.005, aucs


def test_same_data_config_and_seed_give_identical_predictions(data):
    frame, y, _, parts = data
    tr, va = parts["train"], parts["valid"]
    runs = [LightGBMModel(seed=5).fit(frame.iloc[tr], y[tr], eval_set=(frame.iloc[va], y[va])) for _ in range(2)]
    assert runs[0].booster_.model_to_string() == runs[1].booster_.model_to_string()
    assert np.array_equal(runs[0].predict_proba(frame), runs[1].predict_proba(frame))
    logistic = [LogisticModel(seed=5).fit(frame.iloc[tr], y[tr]) for _ in range(2)]
    assert np.array_equal(logistic[0].predict_proba(frame), logistic[1].predict_proba(frame))
    other_seed = LightGBMModel(seed=6).fit(frame.iloc[tr], y[tr], eval_set=(frame.iloc[va], y[va]))
    assert not np.array_equal(runs[0].predict_proba(frame), other_seed.predict_proba(frame))


def test_predictions_do_not_depend_on_row_order_or_extra_columns(data):
    frame, y, _, parts = data
    X = frame.iloc[parts["train"]]
    model = LightGBMModel(n_estimators=60).fit(X, y[parts["train"]])
    test = frame.iloc[parts["test"]]
    shuffled = test.sample(frac=1.0, random_state=0)
    expected = pd.Series(model.predict_proba(test)[:, 1], index=test.index)
    got = pd.Series(model.predict_proba(shuffled)[:, 1], index=shuffled.index)
    assert np.array_equal(got.loc[test.index].to_numpy(), expected.to_numpy())
    with_extra = test.assign(lead_id="x", converted=1.0)[["lead_id", *test.columns[::-1], "converted"]]
    assert np.array_equal(model.predict_proba(with_extra)[:, 1], expected.to_numpy())


def test_early_stopping_uses_the_validation_part_or_a_time_ordered_holdout(data):
    frame, y, _, parts = data
    tr, va = parts["train"], parts["valid"]
    config = LightGBMConfig(n_estimators=2000, early_stopping_rounds=20)
    stopped = LightGBMModel.from_config(config).fit(frame.iloc[tr], y[tr], eval_set=(frame.iloc[va], y[va]))
    assert 1 <= stopped.n_trees_ < 2000
    held_out = LightGBMModel(n_estimators=2000, early_stopping_rounds=20).fit(frame.iloc[tr], y[tr])
    assert 1 <= held_out.n_trees_ < 2000
    assert held_out.model_.n_estimators == held_out.n_trees_  # refitted on all rows with the trees found


def test_lightgbm_accepts_bracketed_names_and_reports_importance_by_original_name(data):
    frame, y, _, parts = data
    model = LightGBMModel(n_estimators=50).fit(frame.iloc[parts["train"]], y[parts["train"]])
    importance = model.feature_importance()
    assert set(importance.index) == set(frame.columns)
    assert importance["page_view[pricing]__count_30d"] > 0
    assert lightgbm_names(["a[b]", "a_b_", "x:y,z"]) == ["a_b_", "a_b__1", "x_y_z"]
    lgb_frame = model.lightgbm_frame(frame.head(3))
    assert list(lgb_frame.columns) == lightgbm_names(list(frame.columns))


def test_levels_unseen_in_training_are_scored():
    frame, y, _ = make_feature_frame(3000, seed=2)
    train = frame.copy()
    train.loc[train["job_level"] == "vp", "job_level"] = "other"  # vp never seen in training
    models = [LogisticModel().fit(train, y), LightGBMModel(n_estimators=40).fit(train, y)]
    vp = frame[frame["job_level"] == "vp"].head(20)
    for model in models:
        p = model.predict_proba(vp)[:, 1]
        assert np.isfinite(p).all() and ((p > 0) & (p < 1)).all()


def test_all_missing_and_constant_numeric_columns_do_not_break_logistic():
    frame, y, _ = make_feature_frame(2000, seed=3)
    frame["never_seen__days_since_last"] = np.nan
    frame["constant"] = 1.0
    model = LogisticModel(class_weight="balanced").fit(frame, y)
    assert np.isfinite(model.predict_proba(frame)).all()


def test_bad_input_is_a_clear_error(data):
    frame, y, _, parts = data
    model = LightGBMModel(n_estimators=20).fit(frame.iloc[:500], y[:500])
    with pytest.raises(LeadDataError, match="columns the model was trained on are missing.*landing_page"):
        model.predict_proba(frame.drop(columns="landing_page"))
    labels = y[:500].copy()
    labels[3] = np.nan
    with pytest.raises(LeadDataError, match="not 0/1.*censored"):
        LightGBMModel().fit(frame.iloc[:500], labels)
    with pytest.raises(LeadDataError, match="labels: 499 labels for 500 rows"):
        fit_model(LogisticModel(), frame.iloc[:500], y[:499])


def test_scikit_learn_contract_clone_params_and_pickle(data):
    frame, y, _, parts = data
    estimator = LightGBMModel(n_estimators=30, seed=4)
    for check in (check_parameters_default_constructible, check_no_attributes_set_in_init, check_get_params_invariance):
        check("LightGBMModel", estimator)
    params = estimator.get_params()
    fitted = clone(estimator).fit(frame.iloc[:1500], y[:1500])
    assert fitted.get_params() == params  # fit learns into `_` attributes only
    restored = pickle.loads(pickle.dumps(fitted))
    assert np.array_equal(restored.predict_proba(frame.iloc[:200]), fitted.predict_proba(frame.iloc[:200]))
    logistic = pickle.loads(pickle.dumps(LogisticModel().fit(frame.iloc[:1500], y[:1500])))
    assert logistic.predict_proba(frame.iloc[:5]).shape == (5, 2)


def test_make_models_respects_enabled_flags_and_passes_the_settings_and_seed():
    config = ModelsConfig(logistic=LogisticConfig(enabled=False))
    assert list(make_models(config)) == ["lightgbm"]
    assert list(make_models(ModelsConfig())) == ["logistic", "lightgbm"]
    models = make_models(ModelsConfig(seed=9, logistic=LogisticConfig(C=0.3), lightgbm=LightGBMConfig(num_leaves=15)))
    assert isinstance(models["logistic"], LogisticModel) and isinstance(models["lightgbm"], LightGBMModel)
    assert models["logistic"].get_params()["C"] == 0.3 and models["logistic"].seed == 9
    assert models["lightgbm"].num_leaves == 15 and models["lightgbm"].seed == 9
