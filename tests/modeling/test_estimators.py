"""Logistic regression and LightGBM over the feature frame: learning, robustness, determinism, sample weights."""

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
from leadml.modeling.logistic import TailLog
from leadml.modeling.model_inputs import column_skewness, signed_log1p
from leadml.rules.baseline import PointsBaseline

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
    weights = np.random.default_rng(0).uniform(0.5, 2.0, tr.stop)
    for w in (None, weights):  # the coefficients themselves, bit for bit, unweighted and weighted
        logistic = [LogisticModel(seed=5).fit(frame.iloc[tr], y[tr], sample_weight=w) for _ in range(2)]
        assert np.array_equal(logistic[0].pipeline_[-1].coef_, logistic[1].pipeline_[-1].coef_)
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


def test_the_logistic_model_logs_a_long_tail_and_keeps_a_linear_column_linear():
    """Time on site (no long tail, a linear effect) keeps its shape; visits (a long tail, a log effect) is logged."""
    rng = np.random.default_rng(7)
    seconds = rng.uniform(0, 2000, 6000) * (rng.random(6000) < 0.75)  # a quarter never came back
    visits = np.floor(rng.pareto(1.5, 6000) * 3)
    logit = -2.0 + 0.0015 * seconds + 0.6 * np.log1p(visits)
    y = (rng.random(6000) < 1 / (1 + np.exp(-logit))).astype(int)
    X = pd.DataFrame({"seconds_on_site": seconds, "visits": visits})
    model = LogisticModel().fit(X[:4000], y[:4000])
    tail = model.pipeline_["preprocess"].named_transformers_["numeric"]["log"]
    assert tail.logged_.tolist() == [False, True]
    assert list(tail.get_feature_names_out()) == ["seconds_on_site", "visits"]
    bayes = roc_auc_score(y[4000:], logit[4000:])
    assert _auc(model, X[4000:], y[4000:]) > bayes - 0.005
    # the log on the linear column too (as every numeric column had it before) bends its signal away
    logged = X.assign(seconds_on_site=signed_log1p(X["seconds_on_site"]))
    assert _auc(LogisticModel().fit(logged[:4000], y[:4000]), logged[4000:], y[4000:]) < bayes - 0.02
    # the tail test weighs rows: rows twice at half weight choose as the rows once
    twice, _, weights = duplicated(X, y)
    assert TailLog().fit(twice, sample_weight=weights).logged_.tolist() == [False, True]
    np.testing.assert_allclose(column_skewness(twice.to_numpy(), weights), column_skewness(X.to_numpy()), rtol=1e-12)


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


def test_weights_of_one_fit_exactly_the_unweighted_models(data):
    frame, y, _, parts = data
    tr, va = parts["train"], parts["valid"]
    X, y_train, ones = frame.iloc[tr], y[tr], np.ones(tr.stop)
    plain = LightGBMModel(seed=2).fit(X, y_train, eval_set=(frame.iloc[va], y[va]))
    weighed = LightGBMModel(seed=2).fit(X, y_train, eval_set=(frame.iloc[va], y[va]), sample_weight=ones,
                                        eval_sample_weight=np.ones(va.stop - va.start))  # fmt: skip
    assert weighed.booster_.model_to_string() == plain.booster_.model_to_string()
    held_out = [LightGBMModel(n_estimators=80).fit(X, y_train, sample_weight=w) for w in (None, ones)]  # no eval_set
    assert held_out[0].booster_.model_to_string() == held_out[1].booster_.model_to_string()
    logistic = [LogisticModel().fit(X, y_train, sample_weight=w) for w in (None, ones)]
    assert np.array_equal(logistic[0].predict_proba(frame), logistic[1].predict_proba(frame))
    assert np.array_equal(logistic[0].design_mean_, logistic[1].design_mean_)
    points = pd.DataFrame({"rules__points": np.floor(X["page_view__count_30d"] * 10)})
    rules = [PointsBaseline().fit(points, y_train, sample_weight=w) for w in (None, ones)]
    assert np.array_equal(rules[0].predict_proba(points), rules[1].predict_proba(points))


def duplicated(X: pd.DataFrame, y: np.ndarray, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """A third of the rows twice, each copy at weight 1/2 (one lead's snapshots sharing one unit)."""
    twice = np.random.default_rng(seed).random(len(X)) < 1 / 3
    weights = np.concatenate([np.where(twice, 0.5, 1.0), np.full(twice.sum(), 0.5)])
    return pd.concat([X, X[twice]]), np.concatenate([y, y[twice]]), weights


def test_rows_twice_at_half_weight_fit_the_model_of_the_rows_once(data):
    frame, y, _, parts = data
    tr, te = parts["train"], parts["test"]
    X, test = frame.iloc[tr].drop(columns="landing_page"), frame.iloc[te]
    X2, y2, weights = duplicated(X, y[tr])
    once = LogisticModel().fit(X, y[tr]).predict_proba(test)[:, 1]
    halved = LogisticModel().fit(X2, y2, sample_weight=weights).predict_proba(test)[:, 1]
    counted_twice = LogisticModel().fit(X2, y2).predict_proba(test)[:, 1]
    # the loss, the tail test and the scaling are the same; only the imputed median and the rare-level
    # pooling count rows (the median of days since, a column kept linear, moves by 0.1 day here)
    assert np.abs(halved - once).max() < 2e-3
    assert np.abs(counted_twice - once).max() > 0.01
    points = pd.DataFrame({"rules__points": X["page_view__count_30d"].to_numpy() * 10})
    points2 = pd.DataFrame({"rules__points": X2["page_view__count_30d"].to_numpy() * 10})
    rules_once = PointsBaseline().fit(points, y[tr]).predict_proba(points)
    rules_halved = PointsBaseline().fit(points2, y2, sample_weight=weights).predict_proba(points)
    np.testing.assert_allclose(rules_halved, rules_once, rtol=0, atol=1e-12)


def test_lightgbm_with_rows_twice_at_half_weight_grows_the_same_trees_when_nothing_counts_rows(data):
    frame, y, _, parts = data
    tr, va, te = parts["train"], parts["valid"], parts["test"]
    # no bagging, no row-count minimums, discrete columns (their bins do not depend on how often a value occurs)
    columns = ["job_level", "page_view__count_30d", "page_view[pricing]__count_30d"]
    settings = {"subsample": 1.0, "colsample_bytree": 1.0, "min_child_samples": 1, "min_data_per_group": 1}
    X, valid, test = frame.iloc[tr][columns], (frame.iloc[va][columns], y[va]), frame.iloc[te][columns]
    X2, y2, weights = duplicated(X, y[tr])
    once = LightGBMModel(**settings).fit(X, y[tr], eval_set=valid)
    halved = LightGBMModel(**settings).fit(X2, y2, eval_set=valid, sample_weight=weights)
    counted_twice = LightGBMModel(**settings).fit(X2, y2, eval_set=valid)
    assert halved.n_trees_ == once.n_trees_
    np.testing.assert_allclose(halved.predict_proba(test), once.predict_proba(test), rtol=0, atol=1e-9)
    assert np.abs(counted_twice.predict_proba(test) - once.predict_proba(test)).max() > 0.01


def test_fit_model_passes_the_weights_and_early_stops_on_the_weighted_validation_loss(data):
    frame, y, _, parts = data
    tr, va = parts["train"], parts["valid"]
    rng = np.random.default_rng(3)
    w_train, w_valid = rng.uniform(0.2, 2.0, tr.stop), rng.uniform(0.2, 2.0, va.stop - va.start)
    model = fit_model(LightGBMModel(n_estimators=100), frame.iloc[tr], y[tr], frame.iloc[va], y[va],
                      sample_weight=w_train, valid_weight=w_valid)  # fmt: skip
    direct = LightGBMModel(n_estimators=100).fit(frame.iloc[tr], y[tr], eval_set=(frame.iloc[va], y[va]),
                                                 sample_weight=w_train, eval_sample_weight=w_valid)  # fmt: skip
    assert model.booster_.model_to_string() == direct.booster_.model_to_string()
    # the loss early stopping watched is the weighted mean log loss of the validation rows
    q = model.predict_proba(frame.iloc[va])[:, 1]
    losses = -(y[va] * np.log(q) + (1 - y[va]) * np.log(1 - q))
    watched = model.model_.evals_result_["valid_0"]["binary_logloss"][model.n_trees_ - 1]
    assert watched == pytest.approx(np.average(losses, weights=w_valid), rel=1e-7)
    assert watched != pytest.approx(losses.mean(), rel=1e-4)
    logistic = fit_model(LogisticModel(), frame.iloc[tr], y[tr], sample_weight=w_train)
    unweighted = LogisticModel().fit(frame.iloc[tr], y[tr])
    assert np.array_equal(logistic.predict_proba(frame),
                          LogisticModel().fit(frame.iloc[tr], y[tr], sample_weight=w_train).predict_proba(frame))  # fmt: skip
    assert not np.allclose(logistic.predict_proba(frame), unweighted.predict_proba(frame))
    with pytest.raises(ValueError, match="Negative values in data passed to `sample_weight`"):
        LogisticModel().fit(frame.iloc[tr], y[tr], sample_weight=-w_train)
    with pytest.raises(ValueError, match="Sample weights must contain at least one non-zero number"):
        LightGBMModel().fit(frame.iloc[tr], y[tr], sample_weight=np.zeros(tr.stop))
