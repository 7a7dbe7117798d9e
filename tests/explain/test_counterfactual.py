"""Counterfactuals: consistent changes across windows, found against the model, checked by rescoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadml.explain.counterfactual import apply_action, counterfactuals, find_actions, parse_action
from leadml.features.behaviour.text import attribute_count_info, days_since_info, events_count_info, type_count_info
from leadml.features.metadata import FeatureInfo
from leadml.modeling.estimators import make_logistic


def test_adding_pricing_visits_raises_every_window_and_the_totals_together():
    features = pd.DataFrame({
        "job_level": pd.Categorical(["vp", "staff"]),
        "page_view[pricing]__count_7d": [0.0, 1.0], "page_view[pricing]__count_30d": [1.0, 2.0],
        "page_view[pricing]__count_90d": [1.0, 5.0], "page_view__count_7d": [3.0, 1.0],
        "page_view__count_30d": [np.nan, 9.0], "page_view__days_since_last": [12.0, np.nan],
        "page_view[careers]__count_30d": [0.0, 1.0],
        "demo_request__count_30d": [0.0, 1.0], "demo_request__days_since_last": [np.nan, 4.0],
        "events__count_7d": [3.0, 1.0], "events__count_90d": [10.0, 20.0],
        "events__active_days_7d": [2.0, 7.0], "events__decayed_30d": [4.5, 0.25],
        "events__velocity_7d": [-1.0, 0.0], "lead__age_days": [14.0, 14.0],
    })  # fmt: skip
    changed = apply_action(features, "page_view[pricing]", 2)
    expected = features.copy()
    for column in ("page_view[pricing]__count_7d", "page_view[pricing]__count_30d", "page_view[pricing]__count_90d",
                   "page_view__count_7d", "events__count_7d", "events__count_90d", "events__decayed_30d",
                   "events__velocity_7d"):  # fmt: skip
        expected[column] = features[column] + 2
    expected["page_view__count_30d"] = [np.nan, 11.0]  # an unknown count stays unknown
    expected["page_view__days_since_last"] = [0.0, 0.0]
    expected["events__active_days_7d"] = [3.0, 7.0]  # one more active day, at most the window
    pd.testing.assert_frame_equal(changed, expected)
    demo = apply_action(features, "demo_request", 1)
    assert demo["demo_request__count_30d"].tolist() == [1.0, 2.0]
    assert demo["demo_request__days_since_last"].tolist() == [0.0, 0.0]
    assert demo["page_view__count_7d"].equals(features["page_view__count_7d"])
    assert demo["events__count_7d"].tolist() == [4.0, 2.0]


def test_actions_and_their_phrases():
    info = [attribute_count_info("page_view", "page", "pricing", 30), attribute_count_info("page_view", "page", "careers", 30),
            type_count_info("demo_request", 7), type_count_info("demo_request", 30), days_since_info("demo_request"),
            type_count_info("unsubscribe", 30), events_count_info(30),
            FeatureInfo("page_view__count_30d", "profile", "page_view")]  # fmt: skip
    assert [a.name for a in find_actions(info)] == ["page_view[pricing]", "demo_request"]
    assert parse_action("page_view[pricing]").phrase(2) == "2 more pricing-page visits"
    assert parse_action("demo_request").phrase(1) == "1 more demo request"
    assert parse_action("download[case_study]").phrase(1) == "1 more case study download"
    assert parse_action("email_click[spring_sale]").phrase(3) == "3 more e-mail clicks (spring sale)"
    assert parse_action("podcast_listen").phrase(3) == "3 more 'podcast listen' events"


def test_the_smallest_change_is_named_and_crosses_the_threshold():
    rng = np.random.default_rng(2)
    n = 3000
    p90 = rng.poisson(1.0, n).astype(float)
    p30 = rng.binomial(p90.astype(int), 0.7).astype(float)
    total = p90 + rng.poisson(5, n)
    level = rng.choice(["staff", "vp"], n)
    y = rng.random(n) < 1 / (1 + np.exp(-(-2.5 + 0.9 * p30 + 0.8 * (level == "vp"))))
    features = pd.DataFrame({"job_level": pd.Categorical(level), "page_view[pricing]__count_30d": p30,
                             "page_view[pricing]__count_90d": p90, "events__count_30d": total})  # fmt: skip
    info = [FeatureInfo("job_level", "profile", "job_level", "categorical"),
            attribute_count_info("page_view", "page", "pricing", 30), attribute_count_info("page_view", "page", "pricing", 90),
            events_count_info(30)]  # fmt: skip
    model = make_logistic().fit(features, y.astype(int))
    lead = features.loc[(features["page_view[pricing]__count_30d"] == 0) & (features["job_level"] == "staff")].head(1)
    q = [model.predict_proba(apply_action(lead, "page_view[pricing]", k))[0, 1] for k in range(0, 4)]
    assert q[0] < q[1] < q[2] < q[3]
    threshold = (q[1] + q[2]) / 2
    found = counterfactuals(model, lead, info, threshold=threshold)
    assert found["counterfactual"].tolist() == ["2 more pricing-page visits would make it an MQL"]
    assert found["counterfactual_action"].tolist() == ["page_view[pricing]"]
    assert found["counterfactual_events"].tolist() == [2]
    assert found["counterfactual_probability"].iloc[0] == pytest.approx(q[2])
    far = counterfactuals(model, lead, info, threshold=min(q[3] + 0.2, 0.999), max_events=3)
    assert far["counterfactual"].tolist() == ["No single behaviour of up to 3 more events would make it an MQL"]
    assert far["counterfactual_events"].isna().all()


@pytest.mark.parametrize("name", ["lightgbm", "logistic"])
def test_every_suggestion_is_checked_by_rescoring(name, trained, trainset, test_rows):
    model = trained.models[name]
    threshold = trained.thresholds[name].threshold
    X = test_rows[trainset.feature_names]
    found = counterfactuals(model, test_rows, trainset.feature_info, threshold=threshold)
    p = model.predict_proba(X)[:, 1]
    assert (found.index == test_rows.index).all()
    assert (found.loc[p >= threshold, "counterfactual"] == "").all()
    below = found.loc[p < threshold]
    assert below["counterfactual"].str.endswith("would make it an MQL").all()
    suggested = below.loc[below["counterfactual_events"].notna()]
    assert len(suggested) > 20
    actions = {a.name for a in find_actions(trainset.feature_info)}
    assert set(suggested["counterfactual_action"]) <= actions
    for (action, k), group in suggested.groupby(["counterfactual_action", "counterfactual_events"]):
        rows = X.loc[group.index]
        rescored = model.predict_proba(apply_action(rows, action, int(k)))[:, 1]
        assert (rescored >= threshold).all()
        np.testing.assert_allclose(rescored, group["counterfactual_probability"], atol=1e-12)
        if k > 1:  # the smallest change: one event fewer of the same kind does not cross
            assert (model.predict_proba(apply_action(rows, action, int(k) - 1))[:, 1] < threshold).all()
