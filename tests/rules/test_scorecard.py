"""Points learned from closed deals: readable conditions, the points scale, and beating the seed rules."""

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from leadml.features.metadata import FeatureInfo
from leadml.rules.ruleset import RuleSet
from leadml.rules.scorecard import candidate_conditions, learn_scorecard


def _infos():
    return [
        FeatureInfo(
            "page_view[pricing]__count_30d", "behaviour", "page_view", window_days=30, attribute=("page", "pricing")
        ),
        FeatureInfo("demo_request__count_7d", "behaviour", "demo_request", window_days=7),
        FeatureInfo("events__count_30d", "behaviour", "events", window_days=30),
        FeatureInfo("job_level", "profile", "job_level", "categorical"),
    ]


def _features(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    levels = ["student", "manager", "vp"]
    return pd.DataFrame(
        {
            "page_view[pricing]__count_30d": rng.poisson(1.0, n).astype(float),
            "demo_request__count_7d": rng.binomial(1, 0.1, n).astype(float),
            "events__count_30d": rng.poisson(5, n).astype(float),
            "job_level": pd.Categorical(rng.choice(levels, n), categories=levels + ["other", "missing"]),
        }
    )


def test_candidate_conditions_are_rules_the_engine_can_express():
    features = _features(200)
    conditions, rules = candidate_conditions(features, _infos())
    by_name = {rule["name"]: rule for rule in rules}
    pricing = by_name["page view (page pricing): at least 2 in the last 30 days"]
    assert pricing == {
        "name": pricing["name"],
        "event": "page_view",
        "within_days": 30,
        "where": {"page": "pricing"},
        "min_count": 2,
    }
    assert by_name["job level is vp"] == {"name": "job level is vp", "field": "job_level", "equals": "vp"}
    # totals over all events cannot be written as one rule; "other"/"missing" levels neither
    assert not any("events" in name for name in by_name)
    assert not any(name.endswith(("is other", "is missing")) for name in by_name)
    expected = (features["page_view[pricing]__count_30d"] >= 2).astype(float)
    assert conditions[pricing["name"]].tolist() == expected.tolist()


def test_points_are_on_the_stated_scale():
    features = _features(20000, seed=1)
    demo = features["demo_request__count_7d"].to_numpy()
    # the true log-odds of a demo request is ln(4): two doublings, i.e. 40 points at 20 per doubling
    logit = -2.0 + math.log(4) * demo
    labels = pd.Series(np.random.default_rng(2).random(len(features)) < 1 / (1 + np.exp(-logit))).astype(float)
    validation = np.arange(len(features)) % 5 == 0
    learned = learn_scorecard(features, labels, _infos(), validation=validation, mql_probability=0.3)
    rules = {rule["name"]: rule for rule in learned.rules["rules"]}
    demo_rule = rules["demo request: at least 1 in the last 7 days"]
    assert demo_rule["points"] == pytest.approx(40, abs=6)
    assert all(abs(rule["points"]) < 6 for name, rule in rules.items() if name != demo_rule["name"])
    # MQL threshold: the points at which the probability is 0.3 = (logit(0.3) + 2) * 20 / ln 2
    mql = learned.rules["tiers"][0]
    assert mql["name"] == "MQL" and mql["min"] == pytest.approx((math.log(0.3 / 0.7) + 2.0) * 20 / math.log(2), abs=6)
    RuleSet.from_dict(learned.rules, source="learned")  # loads back into the rule engine


@pytest.mark.slow
def test_learned_points_beat_the_seed_rules_and_come_close_to_logistic(pipelines_dir):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from leadml.core.config import load_pipeline
    from leadml.features.build import build_trainset
    from leadml.rules.scorecard import learn_rules_for_pipeline

    config = load_pipeline(pipelines_dir / "demo.yaml")
    trainset = build_trainset(config)
    learned = learn_rules_for_pipeline(config, trainset)
    data, test = trainset.data, trainset.part("test")
    keys = test[["lead_id", "as_of"]]
    y = test["converted"].to_numpy()
    learned_auc = roc_auc_score(
        y, RuleSet.from_dict(learned.rules).score_snapshots(keys, data.leads, data.events)["points"]
    )
    seed_auc = roc_auc_score(y, RuleSet.load(config.rules).score_snapshots(keys, data.leads, data.events)["points"])
    categorical = [i.name for i in trainset.feature_info if i.kind == "categorical"]
    numeric = [n for n in trainset.feature_names if n not in categorical]
    logistic = make_pipeline(
        ColumnTransformer(
            [
                ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
                (
                    "numeric",
                    make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()),
                    numeric,
                ),
            ]
        ),
        LogisticRegression(C=0.1, max_iter=3000),
    )
    fit_rows = trainset.part("train", "validation")
    logistic.fit(fit_rows[trainset.feature_names], fit_rows["converted"])
    logistic_auc = roc_auc_score(y, logistic.predict_proba(test[trainset.feature_names])[:, 1])
    print(f"learned points {learned_auc:.3f}, seed points {seed_auc:.3f}, logistic {logistic_auc:.3f}")
    assert learned_auc > seed_auc + 0.05
    assert learned_auc >= logistic_auc - 0.05
