"""Training orchestration: fit on train, choose on validation, judge on test, cold start, seeding,
the MQL threshold of each policy (and the refusal of one that makes no MQL), sample weights."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from leadml.core.config import MQLConfig, ProfileConfig, parse_pipeline
from leadml.core.errors import LeadDataError, ModelError
from leadml.data.sources import PipelineData
from leadml.features.build import FeatureBuilder, TrainSet
from leadml.modeling.calibrate import CalibratedModel
from leadml.modeling.contributions import design_mean
from leadml.modeling.estimators import LightGBMModel, LogisticModel
from leadml.modeling.policy import find_threshold
from leadml.modeling.train import RULES, TrainingResult, split_counts, train_models

LEVEL_EFFECT = {"staff": 0.0, "manager": 0.4, "director": 0.9, "vp": 1.2, "student": -1.5}


def make_trainset(
    n: int = 5000, seed: int = 0, columns: list[str] | None = None
) -> tuple[TrainSet, pd.Series, np.ndarray]:
    """Synthetic snapshots over 40 weeks, featurised by the real FeatureBuilder, time-split, with points.

    ``columns`` restricts the feature set (a weaker model for the promotion tests).
    """
    rng = np.random.default_rng(seed)
    level = rng.choice(list(LEVEL_EFFECT), n, p=[0.4, 0.25, 0.15, 0.1, 0.1])
    industry = rng.choice(["software", "retail", "health", "finance", "education"], n)
    visits = rng.poisson(2.0, n).astype(float)
    pricing = rng.poisson(0.2 + 0.15 * visits).astype(float)
    days_since = np.where(rng.random(n) < 0.3, np.nan, rng.exponential(20, n))
    logit = (-3.0 + pd.Series(level).map(LEVEL_EFFECT).to_numpy() + 0.3 * np.sqrt(visits)
             + 0.7 * np.minimum(pricing, 3) - 0.025 * np.nan_to_num(days_since, nan=60)
             + 0.3 * (industry == "software"))  # fmt: skip
    p = 1 / (1 + np.exp(-logit))
    converted = (rng.random(n) < p).astype(float)
    flat = pd.DataFrame({
        "lead_id": [f"L{i:05d}" for i in range(n)],
        "job_level": level,
        "industry": industry,
        "page_view__count_30d": visits,
        "page_view[pricing]__count_30d": pricing,
        "events__days_since_last": days_since,
        "converted": converted,
    })  # fmt: skip
    as_of = pd.Timestamp("2025-01-06", tz="UTC") + pd.to_timedelta(np.sort(rng.uniform(0, 280, n)), unit="D")
    position = np.arange(n) / n
    split = np.select(
        [position < 0.55, position < 0.70, position < 0.75, position < 0.97],
        ["train", "validation", "gap", "test"],
        "censored",
    )
    flat.loc[split == "censored", "converted"] = np.nan
    builder = FeatureBuilder(profile=ProfileConfig(columns=columns)).fit_flat(flat.loc[split == "train"])
    features = builder.transform_flat(flat)
    frame = pd.concat(
        [pd.DataFrame({"lead_id": flat["lead_id"], "as_of": as_of, "split": split}), flat[["converted"]], features],
        axis=1,
    )
    points = pd.Series(25 * (pricing >= 2) + 10 * (visits >= 3) + 15 * np.isin(level, ["director", "vp"])
                       - 30 * (level == "student"), index=frame.index, dtype=float)  # fmt: skip
    return TrainSet(frame=frame, builder=builder, data=PipelineData(flat=flat)), points, p


def config(mql: dict | None = None, **models) -> object:
    """The test pipeline: capacity 10 a week unless ``mql`` says otherwise (``{}``: the defaults, f1)."""
    return parse_pipeline({
        "name": "test",
        "models": {"seed": 0, **models},
        "mql": {"policy": "capacity", "capacity_per_week": 10} if mql is None else mql,
    })  # fmt: skip


@pytest.fixture(scope="module")
def trained():
    trainset, points, truth = make_trainset()
    messages: list[str] = []
    result = train_models(config(), trainset, points, n_boot=200, progress=messages.append)
    return trainset, points, truth, result, messages


def test_every_candidate_is_fitted_calibrated_and_evaluated_on_the_same_test_rows(trained):
    trainset, _, _, result, _ = trained
    assert isinstance(result, TrainingResult) and not result.cold_start
    assert list(result.models) == ["rules", "logistic", "lightgbm"]
    test_rows = trainset.frame[(trainset.frame["split"] == "test")]
    assert result.predictions["lead_id"].tolist() == test_rows["lead_id"].tolist()
    assert result.evaluation.n_rows == len(test_rows)
    assert set(result.metrics["model"]) == {"rules", "logistic", "lightgbm"}
    assert set(result.evaluation.differences["model"]) == {"logistic", "lightgbm"}
    assert set(result.reliability) == {"rules", "logistic", "lightgbm"}
    assert all(table["count"].sum() == len(test_rows) for table in result.reliability.values())
    points = trained[1]
    for name, model in result.models.items():
        X = pd.DataFrame({"rules__points": points[test_rows.index]}) if name == RULES else test_rows
        assert np.array_equal(model.predict_proba(X)[:, 1], result.predictions[name].to_numpy())
        assert model.method_ in ("isotonic", "sigmoid")


def test_the_models_get_the_yaml_settings_as_parameters_and_keep_their_own_state():
    trainset, points, _ = make_trainset(3000, seed=4)
    settings = {"seed": 5, "logistic": {"C": 0.5}, "lightgbm": {"num_leaves": 5, "n_estimators": 60}}
    result = train_models(config(**settings), trainset, points, n_boot=50)
    lightgbm, logistic = result.models["lightgbm"].estimator, result.models["logistic"].estimator
    assert isinstance(lightgbm, LightGBMModel) and isinstance(logistic, LogisticModel)
    assert lightgbm.get_params() == LightGBMModel(num_leaves=5, n_estimators=60, seed=5).get_params()
    assert logistic.get_params() == LogisticModel(C=0.5, seed=5).get_params()
    # the reference of the linear SHAP values is fitted with the model, on the training rows
    train = trainset.frame.loc[(trainset.frame["split"] == "train") & trainset.frame["converted"].notna()]
    assert np.array_equal(logistic.design_mean_, design_mean(logistic, train[trainset.feature_names]))


def test_the_models_beat_the_rules_on_test(trained):
    _, _, truth, result, _ = trained
    auc = result.metrics[result.metrics["metric"] == "roc_auc"].set_index("model")["value"]
    assert auc[result.chosen] > auc["rules"] + 0.03
    assert auc["logistic"] > auc["rules"] + 0.03
    assert auc["lightgbm"] > auc["rules"]  # boosting needs more than 2,750 training rows to shine
    test = result.predictions
    bayes = roc_auc_score(test["converted"], truth[test["lead_id"].str[1:].astype(int).to_numpy()])
    assert auc["logistic"] > bayes - 0.04


def test_the_choice_is_made_on_validation_by_the_configured_metric(trained):
    _, _, _, result, _ = trained
    validation = result.validation.set_index("model")
    assert result.chosen == validation["pr_auc"].idxmax()
    assert result.chosen in result.reason and "pr_auc" in result.reason
    by_loss = validation["log_loss"].idxmin()
    trainset, points, _ = make_trainset()
    again = train_models(config(select_metric="log_loss"), trainset, points, n_boot=50)
    assert again.chosen == by_loss


def test_test_labels_do_not_influence_choice_models_or_thresholds(trained):
    trainset, points, _, result, _ = trained
    frame = trainset.frame.copy()
    is_test = (frame["split"] == "test").to_numpy()
    frame.loc[is_test, "converted"] = np.random.default_rng(9).permutation(frame.loc[is_test, "converted"].to_numpy())
    shuffled = train_models(config(), TrainSet(frame, trainset.builder, trainset.data), points, n_boot=200)
    assert shuffled.chosen == result.chosen
    thresholds = {k: t.threshold for k, t in result.thresholds.items()}
    assert {k: t.threshold for k, t in shuffled.thresholds.items()} == thresholds
    for name in result.models:
        assert np.array_equal(shuffled.predictions[name], result.predictions[name])
    assert not shuffled.metrics["value"].equals(result.metrics["value"])


def test_the_mql_threshold_follows_the_capacity_on_validation(trained):
    trainset, _, _, result, _ = trained
    chosen = result.thresholds[result.chosen]
    valid = trainset.frame[trainset.frame["split"] == "validation"]
    weeks = (valid["as_of"].max() - valid["as_of"].min() + pd.Timedelta(days=1)) / pd.Timedelta(days=7)
    assert chosen.weeks == pytest.approx(weeks)
    assert chosen.mql_count <= 10 * weeks and chosen.mql_count >= 10 * weeks - 5
    assert result.threshold == chosen.threshold
    mql = result.metrics[(result.metrics["metric"] == "mql_share")].set_index("model")["value"]
    assert 0 < mql[result.chosen] < 0.5
    summary = result.mql.set_index("model")
    assert summary.loc[result.chosen, "validation_mqls"] == chosen.mql_count
    assert summary.loc[result.chosen, "test_share"] == pytest.approx(mql[result.chosen])
    test = trainset.frame[trainset.frame["split"] == "test"]
    test_weeks = (test["as_of"].max() - test["as_of"].min() + pd.Timedelta(days=1)) / pd.Timedelta(days=7)
    row = summary.loc[result.chosen]
    assert row["test_per_week"] == pytest.approx(row["test_mqls"] / test_weeks)


def test_split_counts_and_progress(trained):
    trainset, _, _, result, messages = trained
    counts = result.counts.set_index("split")
    assert counts.index.tolist() == ["train", "validation", "test", "gap", "censored"]
    assert counts["rows"].sum() == len(trainset.frame)
    assert counts.loc["censored", "labelled"] == 0
    assert counts.loc["train", "base_rate"] == pytest.approx(
        trainset.frame.loc[trainset.frame["split"] == "train", "converted"].mean()
    )
    assert any(m.startswith("fitting lightgbm") for m in messages)
    assert any(m.startswith("evaluating on") for m in messages)
    assert split_counts(trainset.frame).equals(result.counts)


def test_training_is_seeded_end_to_end(trained):
    trainset, points, _, result, _ = trained
    again = train_models(config(), trainset, points, n_boot=200)
    pd.testing.assert_frame_equal(again.predictions, result.predictions)
    pd.testing.assert_frame_equal(again.metrics, result.metrics)


def test_cold_start_keeps_the_rules_and_says_why():
    trainset, points, _ = make_trainset(3000, seed=1)
    result = train_models(config(min_positives=100_000), trainset, points, n_boot=50)
    assert result.cold_start and result.chosen == RULES
    assert list(result.models) == [RULES]
    assert "cold start" in result.reason and "min_positives=100000" in result.reason
    assert set(result.metrics["model"]) == {RULES}
    without_rules = train_models(config(min_negatives=100_000), trainset, None, n_boot=50)
    assert without_rules.cold_start and without_rules.chosen is None and without_rules.models == {}
    assert "no rules given" in without_rules.reason and without_rules.metrics.empty


def one_class(label: float) -> tuple[TrainSet, pd.Series]:
    trainset, points, _ = make_trainset(1000, seed=3)
    frame = trainset.frame.copy()
    frame.loc[frame["converted"].notna(), "converted"] = label
    return TrainSet(frame=frame, builder=trainset.builder, data=trainset.data), points


def test_all_converted_training_labels_are_refused_with_or_without_rules():
    trainset, points = one_class(1.0)
    message = (
        "test: all 550 labelled training snapshots are converted; a model cannot learn from one class: "
        r"check the outcomes table's won/lost values \(data.outcomes.won, data.outcomes.lost\)"
    )
    for rules in (points, None):
        with pytest.raises(LeadDataError, match=f"^{message}$"):
            train_models(config(), trainset, rules, n_boot=20)


def test_no_conversion_yet_is_a_cold_start_on_the_rules_and_refused_without_them():
    trainset, points = one_class(0.0)
    result = train_models(config(), trainset, points, n_boot=20)
    assert result.cold_start and result.chosen == RULES and "0 converted and 550 unconverted" in result.reason
    message = (
        "test: all 550 labelled training snapshots are unconverted; a model cannot learn from one class: "
        "give a rules file for a cold start, or wait for the first conversions"
    )
    with pytest.raises(LeadDataError, match=f"^{message}$"):
        train_models(config(), trainset, None, n_boot=20)


def test_without_rules_the_models_still_compete_and_calibration_can_be_off():
    trainset, _, _ = make_trainset(3000, seed=2)
    result = train_models(config(calibration="none", lightgbm={"enabled": False}), trainset, None, n_boot=50)
    assert list(result.models) == ["logistic"] and result.chosen == "logistic"
    assert result.models["logistic"].method_ == "none"
    assert result.evaluation.differences.empty


@pytest.mark.slow
def test_on_the_simulator_lightgbm_is_near_bayes_optimal_and_beats_the_seed_rules(pipelines_dir):
    from leadml.core.config import load_pipeline
    from leadml.data.contract import validate_outcomes
    from leadml.data.simulate import simulate
    from leadml.features.build import build_trainset
    from leadml.rules.ruleset import RuleSet

    pipeline = load_pipeline(pipelines_dir / "demo.yaml")
    settings = pipeline.data.simulator
    # 50,000 leads: after censoring and the 100-day gap about 20,000 snapshots train the models
    n_leads = 50_000
    sim = simulate(n_leads, settings.seed, base_rate=settings.base_rate, months=settings.months)
    data = PipelineData(leads=sim.leads, events=sim.events, outcomes=validate_outcomes(sim.outcomes),
                        data_end=sim.data_end)  # fmt: skip
    trainset = build_trainset(pipeline, data)
    scored = RuleSet.load(pipeline.rules).score_snapshots(trainset.frame[["lead_id", "as_of"]], sim.leads, sim.events)
    points = pd.Series(scored["points"].to_numpy(dtype=float), index=trainset.frame.index)
    result = train_models(pipeline, trainset, points, n_boot=200)

    test = result.predictions
    bayes = roc_auc_score(test["converted"], test["lead_id"].map(sim.truth.set_index("lead_id")["p_win"]))
    raw_points = roc_auc_score(test["converted"], points[trainset.frame["split"] == "test"].to_numpy())
    rules_auc = max(result.evaluation.value(RULES, "roc_auc"), raw_points)
    lightgbm_auc = result.evaluation.value("lightgbm", "roc_auc")
    ece = result.evaluation.value("lightgbm", "ece")
    figures = (
        f"test rows {len(test)}, lightgbm ROC-AUC {lightgbm_auc:.4f}, Bayes-optimal {bayes:.4f}, "
        f"rules {rules_auc:.4f}, lightgbm ECE {ece:.4f}, counts {result.counts.to_dict('records')}"
    )
    assert lightgbm_auc >= bayes - 0.02, figures
    assert lightgbm_auc >= rules_auc + 0.05, figures
    assert ece <= 0.02, figures


def test_without_a_validation_part_training_still_succeeds_and_says_so():
    trainset, points, _ = make_trainset(3000, seed=3)
    frame = trainset.frame.assign(split=trainset.frame["split"].replace({"validation": "train"}))
    result = train_models(config(), TrainSet(frame, trainset.builder, trainset.data), points, n_boot=50)
    assert not result.cold_start and result.chosen == "lightgbm"
    assert "too few labels" in result.reason
    assert "validation lacks one of the classes" in result.notes[0]
    assert all(model.method_ == "none" for model in result.models.values())
    assert result.thresholds == {} and result.threshold is None
    assert "precision_at_mql" not in set(result.metrics["metric"])


@pytest.fixture(scope="module")
def small():
    """3,000 snapshots trained under the default MQL policy (f1), without weights."""
    trainset, points, _ = make_trainset(3000, seed=0)
    return trainset, points, train_models(config(mql={}), trainset, points, n_boot=50)


def labelled(trainset: TrainSet, split: str) -> pd.DataFrame:
    frame = trainset.frame
    return frame[(frame["split"] == split) & frame["converted"].notna()]


def candidate_inputs(name: str, rows: pd.DataFrame, points: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"rules__points": points[rows.index]}) if name == RULES else rows


def validation_probabilities(trainset: TrainSet, points: pd.Series, result: TrainingResult) -> dict[str, np.ndarray]:
    """Each candidate's calibrated probability of the labelled validation snapshots."""
    valid = labelled(trainset, "validation")
    return {name: model.predict_proba(candidate_inputs(name, valid, points))[:, 1]
            for name, model in result.models.items()}  # fmt: skip


def test_by_default_the_threshold_has_the_best_f1_on_validation(small):
    trainset, points, result = small
    y = labelled(trainset, "validation")["converted"].to_numpy()
    for name, p in validation_probabilities(trainset, points, result).items():
        # every distinct probability tried; the best F1, and on a tie the higher threshold
        best = max((2 * y[p >= t].sum() / ((p >= t).sum() + y.sum()), t) for t in set(p))
        found = result.thresholds[name]
        assert found.policy == "f1" and (found.f1, found.threshold) == best
        assert found.mql_count == (p >= found.threshold).sum() > 0
    assert set(result.mql["policy"]) == {"f1"}
    assert result.notes == []


def test_a_fixed_probability_that_no_validation_snapshot_reaches_is_refused_with_advice(small):
    trainset, points, result = small
    p = validation_probabilities(trainset, points, result)[result.chosen]
    top = p.max()
    assert 0.1 <= top < 0.9
    message = (
        f"test: {result.chosen}'s MQL threshold makes no MQL of the {len(p):,} validation snapshots: mql.policy "
        f"probability puts the threshold at 0.9, above the highest probability {top:.4g}; lower mql.probability "
        f"to {math.floor(top * 1000) / 1000:g} or less, or use mql.policy: f1 (or capacity)"
    )
    with pytest.raises(ModelError, match=f"^{re.escape(message)}$"):
        train_models(config(mql={"probability": 0.9}), trainset, points, n_boot=50)


def test_a_threshold_that_only_another_candidate_never_reaches_is_a_note(small):
    trainset, points, result = small
    tops = {name: p.max() for name, p in validation_probabilities(trainset, points, result).items()}
    below = [name for name, top in tops.items() if top < tops[result.chosen]]  # in the order of the notes
    assert below, tops
    threshold = round((max(tops[name] for name in below) + tops[result.chosen]) / 2, 3)
    fixed = train_models(config(mql={"policy": "probability", "probability": threshold}), trainset, points, n_boot=50)
    assert fixed.chosen == result.chosen and fixed.threshold == threshold
    assert fixed.thresholds[fixed.chosen].mql_count > 0
    assert len(fixed.notes) == len(below)
    for name, note in zip(below, fixed.notes):
        assert fixed.thresholds[name].mql_count == 0
        assert note.startswith(f"{name}'s MQL threshold makes no MQL of the 450 validation snapshots: mql.policy "
                               f"probability puts the threshold at {threshold:g}, above the highest probability "
                               f"{tops[name]:.4g}")  # fmt: skip


def test_a_capacity_too_small_for_the_validation_span_is_refused_with_advice(small):
    trainset, points, result = small
    p = validation_probabilities(trainset, points, result)[result.chosen]
    assert (p == p.max()).sum() == 1
    frame = trainset.frame.copy()
    valid = frame["split"] == "validation"
    frame.loc[valid, "as_of"] = frame.loc[valid, "as_of"].min()  # one day: 1/7 week
    # 6 a week over 1/7 week: floor(0.86) = 0 MQLs; one lead a day needs 7 a week
    message = (
        f"test: {result.chosen}'s MQL threshold makes no MQL of the 450 validation snapshots: mql.policy capacity "
        f"allows 0 MQLs (6 a week over 0.14 weeks, rounded down) and the highest probability is {p.max():.4g}, so "
        "no threshold is reachable; raise mql.capacity_per_week to at least 7, or use mql.policy: f1"
    )
    with pytest.raises(ModelError, match=f"^{re.escape(message)}$"):
        train_models(config(mql={"policy": "capacity", "capacity_per_week": 6}),
                     TrainSet(frame, trainset.builder, trainset.data), points, n_boot=50)  # fmt: skip


def weighted(trainset: TrainSet, weights) -> TrainSet:
    return TrainSet(trainset.frame.assign(weight=weights), trainset.builder, trainset.data)


def test_weights_of_one_train_exactly_the_unweighted_models(small):
    trainset, points, result = small
    messages: list[str] = []
    ones = train_models(config(mql={}), weighted(trainset, 1.0), points, n_boot=50, progress=messages.append)
    assert f"fitting lightgbm on {len(labelled(trainset, 'train')):,} training snapshots (weighted)" in messages
    assert ones.models["lightgbm"].estimator.booster_.model_to_string() == (
        result.models["lightgbm"].estimator.booster_.model_to_string()
    )
    for name in ("logistic", "lightgbm", RULES):
        assert np.array_equal(ones.predictions[name], result.predictions[name])
    pd.testing.assert_frame_equal(ones.validation, result.validation)
    pd.testing.assert_frame_equal(ones.metrics, result.metrics)
    assert ones.thresholds == result.thresholds and ones.chosen == result.chosen


def test_weights_change_the_fit_but_not_calibration_validation_scores_or_thresholds(small):
    trainset, points, result = small
    weights = np.random.default_rng(5).uniform(0.2, 1.8, len(trainset.frame))
    result_w = train_models(config(mql={}), weighted(trainset, weights), points, n_boot=50)
    train, valid = labelled(trainset, "train"), labelled(trainset, "validation")
    w_train, w_valid = (weights[trainset.frame.index.get_indexer(rows.index)] for rows in (train, valid))
    features, y_train, y_valid = trainset.feature_names, train["converted"], valid["converted"].to_numpy()
    # every candidate is fitted with the training weights (LightGBM early-stops on the weighted validation loss)
    logistic = LogisticModel(seed=0).fit(train[features], y_train, sample_weight=w_train)
    lightgbm = LightGBMModel(seed=0).fit(train[features], y_train, eval_set=(valid[features], y_valid),
                                         sample_weight=w_train, eval_sample_weight=w_valid)  # fmt: skip
    assert np.array_equal(result_w.models["logistic"].raw_proba(valid), logistic.predict_proba(valid)[:, 1])
    assert result_w.models["lightgbm"].estimator.booster_.model_to_string() == lightgbm.booster_.model_to_string()
    for name in ("logistic", "lightgbm", RULES):
        X = candidate_inputs(name, valid, points)
        assert not np.allclose(result_w.models[name].raw_proba(X), result.models[name].raw_proba(X))
    # calibration, the validation scores and the MQL thresholds see every snapshot alike
    for name, model in result_w.models.items():
        X = candidate_inputs(name, valid, points)
        again = CalibratedModel(model.estimator, method="auto", seed=0).fit(X, y_valid)
        assert np.array_equal(again.predict_proba(X), model.predict_proba(X))
        scores = result_w.validation.set_index("model").loc[name]
        raw = model.raw_proba(X)
        assert scores["roc_auc"] == roc_auc_score(y_valid, raw)
        assert scores["pr_auc"] == average_precision_score(y_valid, raw)
        found = find_threshold(model.predict_proba(X)[:, 1], MQLConfig(), as_of=valid["as_of"], y=y_valid)
        assert result_w.thresholds[name] == found


def test_a_weight_column_with_missing_negative_or_only_zero_train_weights_is_refused(small):
    trainset, points, _ = small
    weights = np.ones(len(trainset.frame))
    weights[[0, 2]] = [np.nan, -1.0]  # the first rows are labelled training snapshots
    message = (
        r"^training set: column 'weight' has 2 train rows that are missing, negative or not numbers "
        r"\(first rows: \[0, 2\]\); a weight is a snapshot's share of its lead \(>= 0\)$"
    )
    with pytest.raises(LeadDataError, match=message):
        train_models(config(mql={}), weighted(trainset, weights), points, n_boot=20)
    zero = np.where(trainset.frame["split"] == "train", 0.0, 1.0)
    with pytest.raises(LeadDataError, match="^training set: every train row has weight 0 in column 'weight'$"):
        train_models(config(mql={}), weighted(trainset, zero), points, n_boot=20)
