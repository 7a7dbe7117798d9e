"""Fit and engagement sub-scores: exact tree walk, own group only, 0-100 scale, grid tiers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadml.core.config import GridConfig, parse_pipeline
from leadml.features.build import build_trainset
from leadml.modeling.contributions import explain_margin
from leadml.modeling.estimators import LightGBMModel, make_logistic
from leadml.modeling.lightgbm.effects import compile_booster, lightgbm_matrix, tree_group_margin
from leadml.modeling.subscores import SubscoreScale, group_effects, training_subscore_scale
from leadml.rules.grid import grid_tiers


@pytest.fixture(scope="module")
def trainset(small_sim):
    from leadml.data.sources import PipelineData

    config = parse_pipeline({"name": "sub", "data": {"simulator": {"leads": 3000, "seed": 11}}})
    return build_trainset(config, PipelineData.from_simulation(small_sim))


def _parts(trainset):
    frame = trainset.frame
    train = frame[frame["split"] == "train"]
    valid = frame[frame["split"] == "validation"]
    return train, valid, trainset.feature_names


@pytest.fixture(scope="module")
def lightgbm(trainset):
    from leadml.core.config import LightGBMConfig

    train, valid, names = _parts(trainset)
    model = LightGBMModel.from_config(LightGBMConfig(n_estimators=80, min_child_samples=20), seed=0)
    return model.fit(train[names], train["converted"], eval_set=(valid[names], valid["converted"]))


@pytest.fixture(scope="module")
def logistic(trainset):
    train, _, names = _parts(trainset)
    model = make_logistic().fit(train[names], train["converted"].astype(int))
    from leadml.modeling.contributions import design_mean

    model.design_mean_ = design_mean(model, train[names])
    return model


def _behaviour_changed(trainset, frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The same leads with every behaviour feature shuffled between leads (profiles untouched)."""
    rng = np.random.default_rng(seed)
    changed = frame.copy()
    behaviour = [i.name for i in trainset.feature_info if i.group == "behaviour"]
    order = rng.permutation(len(frame))
    for name in behaviour:
        changed[name] = frame[name].to_numpy()[order]
    return changed


def test_the_tree_walk_with_every_feature_is_lightgbm_s_margin_and_with_none_its_expectation(trainset, lightgbm):
    frame = trainset.frame[trainset.feature_names]
    compiled = compile_booster(lightgbm.booster_, lightgbm.n_trees_)
    X = lightgbm_matrix(compiled, lightgbm.lightgbm_frame(frame))
    assert np.isnan(X).any()  # missing values take LightGBM's default directions
    raw = lightgbm.booster_.predict(lightgbm.lightgbm_frame(frame), raw_score=True, num_iteration=lightgbm.n_trees_)
    np.testing.assert_allclose(tree_group_margin(compiled, X, range(X.shape[1])), raw, rtol=0, atol=1e-12)
    none = tree_group_margin(compiled, X, [])
    contrib = lightgbm.booster_.predict(lightgbm.lightgbm_frame(frame.head(5)), pred_contrib=True,
                                        num_iteration=lightgbm.n_trees_)  # fmt: skip
    np.testing.assert_allclose(none, contrib[0, -1], rtol=0, atol=1e-12)  # TreeSHAP's base value


@pytest.mark.parametrize("kind", ["lightgbm", "logistic"])
def test_changing_behaviour_never_moves_the_fit_effect_and_profile_never_the_engagement(trainset, kind, request):
    model = request.getfixturevalue(kind)
    frame = trainset.frame[trainset.feature_names].head(800)
    before = group_effects(model, frame, trainset.feature_info)
    after = group_effects(model, _behaviour_changed(trainset, frame, seed=3), trainset.feature_info)
    np.testing.assert_array_equal(after["fit"].to_numpy(), before["fit"].to_numpy())
    assert np.abs(after["engagement"] - before["engagement"]).max() > 0.1  # the behaviour did matter
    profile = [i.name for i in trainset.feature_info if i.group == "profile"]
    swapped = frame.copy()
    for name in profile:
        swapped[name] = frame[name].to_numpy()[::-1]
    moved = group_effects(model, swapped, trainset.feature_info)
    np.testing.assert_array_equal(moved["engagement"].to_numpy(), before["engagement"].to_numpy())


def test_for_logistic_regression_the_effects_are_the_shap_sums_of_each_group(trainset, logistic):
    frame = trainset.frame[trainset.feature_names].head(500)
    effects = group_effects(logistic, frame, trainset.feature_info)
    contributions = explain_margin(logistic, frame, trainset.feature_info)
    groups = {i.name: i.group for i in trainset.feature_info}
    fit = [j for j, name in enumerate(contributions.features) if groups[name] == "profile"]
    engagement = [j for j, name in enumerate(contributions.features) if groups[name] == "behaviour"]
    np.testing.assert_allclose(effects["fit"], contributions.values[:, fit].sum(axis=1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        effects["engagement"], contributions.values[:, engagement].sum(axis=1), rtol=0, atol=1e-12
    )


def test_without_interactions_across_groups_the_tree_effects_equal_the_shap_group_sums(trainset):
    """With LightGBM told not to mix the groups in a tree, TreeSHAP's group sums are the effects."""
    import lightgbm as lgb

    from leadml.modeling.estimators import lightgbm_names

    train, _, names = _parts(trainset)
    groups = {i.name: i.group for i in trainset.feature_info}
    X = train[names].copy()
    X.columns = lightgbm_names(names)
    profile = [j for j, name in enumerate(names) if groups[name] == "profile"]
    behaviour = [j for j, name in enumerate(names) if groups[name] == "behaviour"]
    params = {
        "objective": "binary",
        "num_leaves": 7,
        "min_child_samples": 20,
        "verbose": -1,
        "seed": 0,
        "deterministic": True,
        "num_threads": 1,
        "interaction_constraints": [profile, behaviour],
    }
    booster = lgb.train(params, lgb.Dataset(X, train["converted"]), num_boost_round=60)
    compiled = compile_booster(booster)
    matrix = lightgbm_matrix(compiled, X)
    contrib = booster.predict(X, pred_contrib=True)
    expected = compiled.expected_margin()
    np.testing.assert_allclose(tree_group_margin(compiled, matrix, profile) - expected,
                               contrib[:, profile].sum(axis=1), rtol=0, atol=1e-9)  # fmt: skip
    np.testing.assert_allclose(tree_group_margin(compiled, matrix, behaviour) - expected,
                               contrib[:, behaviour].sum(axis=1), rtol=0, atol=1e-9)  # fmt: skip


def test_the_scale_is_the_percent_of_training_effects_below_with_ties_counting_half():
    training = pd.DataFrame({"fit": np.arange(100, dtype=float), "engagement": np.repeat([0.0, 1.0], 50)})
    scale = SubscoreScale(n_quantiles=101).fit(training)
    scores = scale.transform(pd.DataFrame({"fit": [-5.0, 0.0, 49.5, 99.0, 500.0],
                                           "engagement": [-1.0, 0.0, 0.5, 1.0, 2.0]}))  # fmt: skip
    assert scores["fit_score"].tolist() == [0, 1, 50, 100, 100]  # 0: none below, one tie: 0.5 % -> 1
    assert scores["engagement_score"].tolist() == [0, 25, 50, 75, 100]
    assert scores["fit_score"].dtype == np.int16


def test_a_trained_model_s_scale_puts_its_training_leads_evenly_on_0_to_100(trainset, lightgbm):
    scale = training_subscore_scale(lightgbm, trainset)
    train = trainset.frame[trainset.frame["split"] == "train"]
    scores = scale.transform(group_effects(lightgbm, train[trainset.feature_names], trainset.feature_info))
    for column in ("fit_score", "engagement_score"):
        assert scores[column].between(0, 100).all()
        assert 40 <= scores[column].mean() <= 60  # a rank is uniform on its own training data


def test_grid_tiers_follow_the_configured_bands():
    fit = np.array([100, 67, 66.9, 34, 33, 0, np.nan])
    engagement = np.array([67, 66, 34, 33, 90, 0, 50])
    assert grid_tiers(fit, engagement).tolist() == ["A1", "A2", "B2", "B3", "C1", "C3", None]
    four = GridConfig(fit_bands=[90, 50, 10], engagement_bands=[50])
    assert grid_tiers(np.array([95, 60, 20, 5]), np.array([50, 49, 80, 0]), four).tolist() == ["A1", "B2", "C1", "D2"]
    with pytest.raises(ValueError, match="descending"):
        GridConfig(fit_bands=[34, 67])


def test_feature_names_with_spaces_are_matched_by_position():
    """LightGBM stores 'Lead Origin' as 'Lead_Origin'; the walk must still read the right columns
    and follow LightGBM's rules for missing categories and numbers."""
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"Lead Origin": pd.Categorical(rng.choice(["api", "form", "chat"], 2000)),
                      "Total Visits": rng.poisson(3, 2000).astype(float)})  # fmt: skip
    y = ((X["Total Visits"] > 3) ^ (X["Lead Origin"] == "chat")).astype(int)
    X.loc[rng.random(2000) < 0.1, "Lead Origin"] = np.nan  # missing categories and numbers take
    X.loc[rng.random(2000) < 0.1, "Total Visits"] = np.nan  # LightGBM's own default directions
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 4, "min_data_in_leaf": 20},
                        lgb.Dataset(X, y), num_boost_round=20)  # fmt: skip
    compiled = compile_booster(booster)
    assert compiled.feature_names == ("Lead_Origin", "Total_Visits")
    margin = tree_group_margin(compiled, lightgbm_matrix(compiled, X), [0, 1])
    np.testing.assert_allclose(margin, booster.predict(X, raw_score=True), rtol=0, atol=1e-12)
