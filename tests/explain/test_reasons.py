"""SHAP contributions: additivity, grouping, agreement with shap and with brute-force Shapley values."""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadml.core.config import LightGBMConfig
from leadml.core.errors import ModelError
from leadml.explain.counterfactual import apply_action
from leadml.features.metadata import FeatureInfo
from leadml.modeling.contributions import explain_margin, feature_groups, group_columns
from leadml.modeling.estimators import LightGBMModel


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


@pytest.fixture(scope="module")
def explained(trained, trainset, test_rows, train_features):
    """Contributions of both models on the test rows (logistic against the training rows)."""
    return {
        name: explain_margin(trained.models[name], test_rows, trainset.feature_info, background=train_features)
        for name in ("lightgbm", "logistic")
    }


@pytest.mark.parametrize("name", ["lightgbm", "logistic"])
def test_base_value_plus_contributions_is_the_models_own_margin(name, trained, trainset, test_rows, explained):
    contributions = explained[name]
    model = trained.models[name]
    X = test_rows[trainset.feature_names]
    estimator = model.estimator
    if name == "lightgbm":
        own = estimator.booster_.predict(estimator.lightgbm_frame(X), raw_score=True, num_iteration=estimator.n_trees_)
    else:
        own = estimator.decision_function(X)
    assert contributions.values.shape == (len(X), len(contributions.features))
    np.testing.assert_allclose(contributions.margin, own, rtol=0, atol=1e-9)
    np.testing.assert_allclose(contributions.base_value + contributions.values.sum(axis=1), own, rtol=0, atol=1e-6)
    # the margin is the one the model turns into its probabilities, raw and calibrated
    np.testing.assert_allclose(_sigmoid(contributions.margin), estimator.predict_proba(X)[:, 1], atol=1e-12)
    np.testing.assert_allclose(contributions.probability, model.predict_proba(X)[:, 1], atol=1e-12)


def test_lightgbm_contributions_equal_shap_tree_explainer(trained, trainset, test_rows, explained):
    import shap

    estimator = trained.models["lightgbm"].estimator
    explainer = shap.TreeExplainer(estimator.booster_)
    values = explainer.shap_values(estimator.lightgbm_frame(test_rows[trainset.feature_names]))
    np.testing.assert_allclose(explained["lightgbm"].column_values, np.asarray(values), rtol=0, atol=1e-6)
    assert explained["lightgbm"].base_value == pytest.approx(float(np.ravel(explainer.expected_value)[0]), abs=1e-6)


def test_grouped_contributions_are_the_sums_of_their_columns(explained, trained):
    logistic = explained["logistic"]
    design = list(trained.models["logistic"].estimator.pipeline_.named_steps["preprocess"].get_feature_names_out())
    assert logistic.columns == design
    groups = {
        "job_level": [i for i, n in enumerate(design) if n.startswith("categorical__job_level_")],
        "budget": [design.index(n) for n in ("numeric__budget", "numeric__budget__missing")]
        + [i for i, n in enumerate(design) if n.startswith("numeric__missingindicator_budget")],
    }
    assert len(groups["job_level"]) >= 5 and len(groups["budget"]) >= 2
    for feature, columns in groups.items():
        summed = logistic.column_values[:, columns].sum(axis=1)
        np.testing.assert_allclose(logistic.frame()[feature].to_numpy(), summed, atol=1e-12)
    # the budget__missing flag is folded into budget, and every design column belongs to one feature
    assert "budget__missing" not in logistic.features and "budget" in logistic.features
    np.testing.assert_allclose(logistic.values.sum(axis=1), logistic.column_values.sum(axis=1), atol=1e-9)
    lgbm = explained["lightgbm"]
    columns = [lgbm.columns.index("budget"), lgbm.columns.index("budget__missing")]
    np.testing.assert_allclose(lgbm.frame()["budget"], lgbm.column_values[:, columns].sum(axis=1), atol=1e-12)


def test_group_columns_sums_by_group_in_any_order():
    values = np.arange(12, dtype=float).reshape(2, 6)
    grouped = group_columns(values, np.array([2, 0, 2, 1, 0, 2]), 4)
    assert grouped.tolist() == [[1 + 4, 3, 0 + 2 + 5, 0], [7 + 10, 9, 6 + 8 + 11, 0]]
    names, position = feature_groups(
        ["budget", "budget__missing", "visits", "visits__missing_flag", "solo__missing"],
        [FeatureInfo("budget", "profile", "budget"), FeatureInfo("budget__missing", "profile", "budget")],
    )
    assert names == ["budget", "visits", "visits__missing_flag", "solo__missing"]
    assert position.tolist() == [0, 0, 1, 2, 3]


# -- an independent check of TreeSHAP: exact Shapley values by enumeration -------------------
def _goes_left(node: dict, value: float) -> bool:
    if node["decision_type"] == "==":
        if np.isnan(value) or value < 0:
            return False
        return int(value) in {int(v) for v in str(node["threshold"]).split("||")}
    missing = node.get("missing_type", "None")
    if np.isnan(value) and missing != "NaN":
        value = 0.0
    if (missing == "NaN" and np.isnan(value)) or (missing == "Zero" and abs(value) <= 1e-35):
        return bool(node["default_left"])
    return value <= node["threshold"]


def _cover(node: dict) -> float:
    return float(node.get("internal_count", node.get("leaf_count", 0)))


def _expected(node: dict, x: np.ndarray, known: frozenset) -> float:
    """E[f(x) | x_S] the tree way: follow known features, average unknown ones by training cover."""
    if "leaf_value" in node:
        return node["leaf_value"]
    left, right = node["left_child"], node["right_child"]
    if node["split_feature"] in known:
        return _expected(left if _goes_left(node, x[node["split_feature"]]) else right, x, known)
    total = _cover(left) + _cover(right)
    return (_cover(left) * _expected(left, x, known) + _cover(right) * _expected(right, x, known)) / total


def _brute_force_shapley(trees: list[dict], x: np.ndarray) -> np.ndarray:
    m = len(x)
    value = {}
    for size in range(m + 1):
        for subset in itertools.combinations(range(m), size):
            key = frozenset(subset)
            value[key] = sum(_expected(tree["tree_structure"], x, key) for tree in trees)
    phi = np.zeros(m)
    for i in range(m):
        others = [j for j in range(m) if j != i]
        for size in range(m):
            weight = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
            for subset in itertools.combinations(others, size):
                phi[i] += weight * (value[frozenset(subset) | {i}] - value[frozenset(subset)])
    return phi


@pytest.mark.parametrize("treeshap", ["lightgbm", "tables"])
def test_lightgbm_contributions_are_the_exact_shapley_values_of_its_trees(treeshap):
    rng = np.random.default_rng(5)
    n = 1500
    visits = rng.poisson(2.0, n).astype(float)
    days = np.where(rng.random(n) < 0.3, np.nan, rng.exponential(20, n))
    zeros = np.where(rng.random(n) < 0.5, 0.0, rng.normal(1, 1, n))
    level = rng.choice(["staff", "manager", "vp", "student"], n)
    logit = (
        -1 + 0.5 * visits - 0.03 * np.nan_to_num(days, nan=40) + 0.4 * zeros + (level == "vp") - (level == "student")
    )
    y = (rng.random(n) < _sigmoid(logit)).astype(float)
    X = pd.DataFrame({"visits": visits, "days": days, "zeros": zeros,
                      "level": pd.Categorical(level, categories=["manager", "staff", "student", "vp"])})  # fmt: skip
    config = LightGBMConfig(n_estimators=12, num_leaves=6, min_child_samples=20, subsample=1.0, colsample_bytree=1.0,
                            min_data_per_group=10, cat_smooth=1.0, max_cat_to_onehot=8)  # fmt: skip
    model = LightGBMModel.from_config(config).fit(X, y)
    info = [FeatureInfo(c, "behaviour", c) for c in X.columns]
    rows = X.iloc[:25]
    contributions = explain_margin(model, rows, info, treeshap=treeshap)
    trees = model.booster_.dump_model(num_iteration=model.n_trees_)["tree_info"]
    numeric = rows.assign(level=rows["level"].cat.codes.astype(float)).to_numpy(dtype=float)
    exact = np.array([_brute_force_shapley(trees, x) for x in numeric])
    np.testing.assert_allclose(contributions.column_values, exact, rtol=0, atol=1e-9)
    empty = sum(_expected(tree["tree_structure"], numeric[0], frozenset()) for tree in trees)
    assert contributions.base_value == pytest.approx(empty, abs=1e-9)


# -- leadml's tabulated TreeSHAP (leadml.modeling.lightgbm.treeshap) ------------------------------------------
def test_tabulated_treeshap_equals_lightgbm_on_the_trained_model(trained, trainset, test_rows, explained):
    tables = explain_margin(trained.models["lightgbm"], test_rows, trainset.feature_info, treeshap="tables")
    reference = explained["lightgbm"]
    np.testing.assert_allclose(tables.column_values, reference.column_values, rtol=0, atol=1e-9)
    np.testing.assert_allclose(tables.values, reference.values, rtol=0, atol=1e-9)
    assert tables.base_value == pytest.approx(reference.base_value, abs=1e-9)
    np.testing.assert_allclose(tables.margin, reference.margin, rtol=0, atol=1e-9)


def test_tabulated_treeshap_follows_every_lightgbm_routing_rule():
    """Deep leaf-wise trees (features repeated on a path), zeros as missing, NaN, unseen and negative codes."""
    import lightgbm as lgb

    from leadml.modeling.lightgbm.treeshap import build_tables, lightgbm_contributions

    rng = np.random.default_rng(8)
    n = 4000
    a = np.where(rng.random(n) < 0.2, np.nan, rng.normal(0, 1, n))
    b = np.where(rng.random(n) < 0.4, 0.0, rng.exponential(2, n))
    c = rng.integers(0, 6, n).astype(float)
    level = rng.choice(list("pqrstuvw"), n)
    logit = np.sin(2 * np.nan_to_num(a, nan=1.5)) + 0.6 * b * (c > 2) - 0.4 * c + np.isin(level, list("pqv")) * 1.5
    y = (rng.random(n) < _sigmoid(logit)).astype(int)
    X = pd.DataFrame({"a": a, "b": b, "c": c, "level": pd.Categorical(level)})
    booster = (
        lgb.LGBMClassifier(
            n_estimators=40,
            num_leaves=31,
            min_child_samples=5,
            zero_as_missing=True,
            max_cat_to_onehot=3,
            min_data_per_group=5,
            cat_smooth=1,
            verbose=-1,
        )
        .fit(X, y)
        .booster_
    )
    trees = booster.dump_model()["tree_info"]
    splits = [node for tree in trees for node in _nodes(tree["tree_structure"])]
    assert {"Zero", "=="} <= {node["missing_type"] for node in splits} | {node["decision_type"] for node in splits}
    tables = build_tables(booster)
    assert tables is not None and tables.leaf_slots.size > 40 * 20
    rows = X.iloc[:500].copy()
    rows["level"] = rows["level"].cat.add_categories(["unseen"])
    rows.iloc[::7, rows.columns.get_loc("level")] = "unseen"
    rows.iloc[::11, rows.columns.get_loc("level")] = np.nan
    rows.iloc[::5, rows.columns.get_loc("b")] = np.nan
    rows.iloc[::3, rows.columns.get_loc("c")] = -1.0
    fast = lightgbm_contributions(booster, rows)
    reference = booster.predict(rows, pred_contrib=True)
    np.testing.assert_allclose(fast, reference, rtol=0, atol=1e-9)


def _nodes(node: dict):
    if "leaf_index" not in node:
        yield node
        yield from _nodes(node["left_child"])
        yield from _nodes(node["right_child"])


def test_tabulated_treeshap_steps_aside_for_paths_with_too_many_features(trained, trainset, test_rows, monkeypatch):
    from leadml.modeling.lightgbm import treeshap

    model = copy.deepcopy(trained.models["lightgbm"])  # a booster whose tables are not cached yet
    monkeypatch.setattr(treeshap, "MAX_PATH_FEATURES", 1)
    assert treeshap.build_tables(model.estimator.booster_) is None
    with pytest.raises(ModelError, match="at most 1 features on a path"):
        explain_margin(model, test_rows, trainset.feature_info, treeshap="tables")
    auto = explain_margin(model, test_rows, trainset.feature_info, treeshap="auto")  # LightGBM's routine
    assert auto.column_values.shape == (len(test_rows), len(model.estimator.feature_names_in_))
    with pytest.raises(ValueError, match="treeshap"):
        explain_margin(model, test_rows, trainset.feature_info, treeshap="fast")


# -- properties -------------------------------------------------------------------------------
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_leads_contributions_do_not_depend_on_the_other_rows(
    data, trained, trainset, test_rows, train_features, explained
):
    positions = data.draw(st.lists(st.integers(0, len(test_rows) - 1), min_size=1, max_size=12, unique=True))
    name = data.draw(st.sampled_from(["lightgbm", "logistic"]))
    subset = explain_margin(trained.models[name], test_rows.iloc[positions], trainset.feature_info,
                            background=train_features)  # fmt: skip
    np.testing.assert_allclose(subset.values, explained[name].values[positions], rtol=0, atol=1e-9)
    np.testing.assert_allclose(subset.base_value + subset.values.sum(axis=1), subset.margin, atol=1e-9)


def test_one_lead_alone_gets_the_batch_reasons_from_the_stored_background(trained, trainset, test_rows, explained):
    stored = trained.models["logistic"].estimator
    assert stored.design_mean_.shape[0] > 0  # train_models stores the reference of the linear SHAP values
    alone = explain_margin(trained.models["logistic"], test_rows.iloc[[3]], trainset.feature_info)
    np.testing.assert_allclose(alone.values[0], explained["logistic"].values[3], atol=1e-9)
    background = stored.design_mean_
    del stored.design_mean_
    try:
        with pytest.raises(ModelError, match="background"):
            explain_margin(trained.models["logistic"], test_rows.iloc[:1], trainset.feature_info)
    finally:
        stored.design_mean_ = background


def test_the_rules_baseline_is_explained_by_its_breakdown_not_by_shap(trained, trainset, test_rows):
    with pytest.raises(ModelError, match="breakdown"):
        explain_margin(trained.models["rules"], test_rows, trainset.feature_info)


def test_missing_model_columns_are_named(trained, trainset, test_rows):
    with pytest.raises(ModelError, match="columns the model was trained on are missing"):
        explain_margin(trained.models["lightgbm"], test_rows.drop(columns=["budget"]), trainset.feature_info)


def test_probability_points_are_the_calibrated_probability_with_and_without_the_contribution(explained):
    c = explained["lightgbm"]
    points = c.points()
    j = c.features.index("job_level")
    without = c.to_probability(c.margin - c.values[:, j])
    np.testing.assert_allclose(points[:, j], 100 * (c.probability - without), atol=1e-12)
    np.testing.assert_allclose(c.points(np.arange(len(c)), np.full(len(c), j)), points[:, j], atol=1e-12)


def _pricing_frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Leads whose conversion rises with their pricing-page visits (counts consistent across windows)."""
    rng = np.random.default_rng(seed)
    p90 = rng.poisson(1.2, n).astype(float)
    p30 = rng.binomial(p90.astype(int), 0.6).astype(float)
    p7 = rng.binomial(p30.astype(int), 0.4).astype(float)
    views = p90 + rng.poisson(4, n)
    level = rng.choice(["staff", "manager", "vp", "student"], n, p=[0.45, 0.3, 0.15, 0.1])
    logit = (-2.6 + 1.1 * np.log1p(p30) + 0.2 * np.log1p(p7) + 0.2 * np.log1p(views)
             + np.select([level == "vp", level == "student"], [1.0, -2.0], 0.0))  # fmt: skip
    y = (rng.random(n) < _sigmoid(logit)).astype(float)
    X = pd.DataFrame({
        "job_level": pd.Categorical(level, categories=["manager", "staff", "student", "vp", "other", "missing"]),
        "page_view[pricing]__count_7d": p7, "page_view[pricing]__count_30d": p30,
        "page_view[pricing]__count_90d": p90, "page_view__count_90d": views,
    })  # fmt: skip
    return X, y


def test_more_pricing_visits_give_a_larger_pricing_reason():
    from leadml.explain.sentences import reason_table
    from leadml.features.behaviour.text import attribute_count_info, type_count_info
    from leadml.modeling.estimators import make_logistic

    X, y = _pricing_frame(8000, seed=1)
    info = [FeatureInfo("job_level", "profile", "job_level", "categorical", template="Job level: {value}")]
    info += [attribute_count_info("page_view", "page", "pricing", w) for w in (7, 30, 90)]
    info += [type_count_info("page_view", 90)]
    pricing = [i.name for i in info if "pricing" in i.name]
    rows = X.loc[X["page_view[pricing]__count_90d"] == 0].head(300)
    raised = apply_action(rows, "page_view[pricing]", 3)
    assert (raised[pricing].to_numpy() == 3).all()
    assert (raised["page_view__count_90d"] == rows["page_view__count_90d"] + 3).all()
    for model in (LightGBMModel(n_estimators=200).fit(X, y), make_logistic().fit(X, y.astype(int))):
        before = explain_margin(model, rows, info, background=X)
        after = explain_margin(model, raised, info, background=X)
        gain = after.frame()[pricing].sum(axis=1) - before.frame()[pricing].sum(axis=1)
        assert (gain > 0.5).all(), type(model).__name__
        reasons = reason_table(after, raised, info, threshold=0.5)
        said = reasons[["reason_1", "reason_2", "reason_3"]].apply(lambda c: c.str.contains("pricing page 3 times"))
        assert said.any(axis=1).mean() > 0.9
