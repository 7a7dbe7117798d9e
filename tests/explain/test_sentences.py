"""Reason sentences and columns: templates, directions, JSON, MQL decisiveness, the rules breakdown."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from leadml.core.errors import LeadDataError
from leadml.explain.sentences import days_ago, format_number, reason_table, render, rules_reason_table
from leadml.features.behaviour import text as words
from leadml.features.behaviour.text import attribute_count_info, days_since_info, type_count_info
from leadml.features.metadata import FeatureInfo
from leadml.modeling.contributions import Contributions, probability_map
from leadml.rules.ruleset import RuleSet

PRICING = attribute_count_info("page_view", "page", "pricing", 30)
DEMO_SINCE = days_since_info("demo_request")
JOB_LEVEL = FeatureInfo("job_level", "profile", "job_level", "categorical", template="Job level: {value}")
BUDGET = FeatureInfo("budget", "profile", "budget", template="Budget: {value}")
BUDGET_MISSING = FeatureInfo("budget__missing", "profile", "budget", template="Budget not given")
UP, DOWN, EITHER = True, False, None


def test_templates_render_with_readable_values():
    assert render(PRICING, "4") == "Viewed the pricing page 4 times in the last 30 days"
    assert render(PRICING, "1") == "Viewed the pricing page once in the last 30 days"
    assert render(PRICING, "11") == "Viewed the pricing page 11 times in the last 30 days"
    assert render(type_count_info("email_click", 7), "21") == "Clicked a link in an e-mail 21 times in the last 7 days"
    assert render(JOB_LEVEL, "student") == "Job level: student"
    assert render(JOB_LEVEL, None) == "Job level not given"
    assert render(BUDGET, None, BUDGET_MISSING) == "Budget not given"


# one case per template and edge: (feature, value text as _value_texts gives it, direction, sentence)
SENTENCES = [
    # counts per event type: 0 (and a count not recorded) is an absence, 1 is "once"
    (type_count_info("trial_signup", 30), "0", DOWN, "No trial sign-up in the last 30 days"),
    (type_count_info("trial_signup", 30), None, DOWN, "No trial sign-up in the last 30 days"),
    (type_count_info("trial_signup", 30), "1", UP, "Signed up for a free trial once in the last 30 days"),
    (type_count_info("trial_signup", 30), "3", UP, "Signed up for a free trial 3 times in the last 30 days"),
    (type_count_info("demo_request", 1), "0", DOWN, "No demo request in the last day"),
    (type_count_info("product_active_day", 30), "1", UP, "Used the product on 1 day in the last 30 days"),
    (type_count_info("product_active_day", 30), "0", DOWN, "No day of product use in the last 30 days"),
    (type_count_info("odd_type", 7), "0", DOWN, "No 'odd type' event in the last 7 days"),
    (type_count_info("odd_type", 7), "2", UP, "Had 2 'odd type' events in the last 7 days"),
    # counts of one attribute value
    (PRICING, "0", DOWN, "No pricing page visit in the last 30 days"),
    (PRICING, "0", UP, "No pricing page visit in the last 30 days"),
    (PRICING, "4", UP, "Viewed the pricing page 4 times in the last 30 days"),
    (attribute_count_info("download", "asset", "roi_guide", 90), "0", DOWN, "No download of the roi guide in the last 90 days"),
    (attribute_count_info("form_submit", "form", "contact", 7), "0", DOWN, "No contact form submitted in the last 7 days"),
    (attribute_count_info("demo_request", "product", "crm", 7), "0", DOWN, "No demo request (product: crm) in the last 7 days"),
    (attribute_count_info("demo_request", "product", "crm", 7), "1", UP, "Requested a demo (product: crm) once in the last 7 days"),
    (attribute_count_info("odd_type", "tag", "x", 7), "0", DOWN, "No 'odd type' event with tag 'x' in the last 7 days"),
    # days since the last event: recent activity when it raises, a gap when it lowers, whole days, never
    (DEMO_SINCE, "2", UP, "Requested a demo 2 days ago"),
    (DEMO_SINCE, "1", UP, "Requested a demo 1 day ago"),
    (DEMO_SINCE, "0", UP, "Requested a demo today"),
    (DEMO_SINCE, "0.4", UP, "Requested a demo today"),
    (DEMO_SINCE, "5.8", UP, "Requested a demo 5 days ago"),
    (DEMO_SINCE, "45", DOWN, "No demo request for 45 days"),
    (DEMO_SINCE, "5.2", DOWN, "No demo request for 5 days"),
    (DEMO_SINCE, "1", DOWN, "No demo request for 1 day"),
    (DEMO_SINCE, "0", DOWN, "Requested a demo today"),  # no gap to speak of: say what happened
    (DEMO_SINCE, None, DOWN, "Never requested a demo"),
    (DEMO_SINCE, None, UP, "Never requested a demo"),
    (DEMO_SINCE, "2.1", EITHER, "Requested a demo 2 days ago"),
    (days_since_info("trial_signup"), "5.2", DOWN, "No trial sign-up for 5 days"),
    (days_since_info("page_view"), "2", UP, "Viewed a page on the site 2 days ago"),
    (days_since_info("form_submit"), "13", DOWN, "No form submitted for 13 days"),
    (type_count_info("form_submit", 30), "0", DOWN, "No form submitted in the last 30 days"),
    (days_since_info("odd_type"), "3", UP, "Had an event of type 'odd type' 3 days ago"),
    (days_since_info("odd_type"), "3", DOWN, "No 'odd type' event for 3 days"),
    (days_since_info("odd_type"), None, DOWN, "Never had an event of type 'odd type'"),
    # an unsubscribe counts against a lead: recent lowers it, a long gap raises it
    (days_since_info("unsubscribe"), "2", DOWN, "Unsubscribed from e-mails 2 days ago"),
    (days_since_info("unsubscribe"), "60", UP, "No unsubscribe for 60 days"),
    (days_since_info("email_unsubscribe"), None, UP, "Never unsubscribed from e-mails"),
    (FeatureInfo("events__days_since_last", "behaviour", "events"), "3", UP, "Last active 3 days ago"),
    (FeatureInfo("events__days_since_last", "behaviour", "events"), "45", DOWN, "No activity for 45 days"),
    (FeatureInfo("events__days_since_last", "behaviour", "events"), None, DOWN, "Never active"),
    # every event together
    (words.events_count_info(7), "0", DOWN, "No activity in the last 7 days"),
    (words.events_count_info(7), "1", UP, "Interacted once in the last 7 days"),
    (words.events_count_info(30), "12", UP, "Interacted 12 times in the last 30 days"),
    (words.active_days_info(30), "0", DOWN, "No active day in the last 30 days"),
    (words.active_days_info(30), "1", UP, "Active on 1 of the last 30 days"),
    (words.active_days_info(30), "5", UP, "Active on 5 of the last 30 days"),
    # the decayed engagement score
    (words.decayed_info(30), "0", DOWN, "No recent engagement (older touches count less: half after 30 days)"),
    (words.decayed_info(30), None, DOWN, "No recent engagement (older touches count less: half after 30 days)"),
    (words.decayed_info(30), "1", UP, "Engagement worth 1 recent touch (older touches count less: half after 30 days)"),
    (words.decayed_info(14), "3.7", UP, "Engagement worth 3.7 recent touches (older touches count less: half after 14 days)"),
    # velocity
    (words.velocity_info(), "4", UP, "4 more touches in the last 7 days than in the 7 days before"),
    (words.velocity_info(), "1", UP, "1 more touch in the last 7 days than in the 7 days before"),
    (words.velocity_info(), "-1", DOWN, "1 fewer touch in the last 7 days than in the 7 days before"),
    (words.velocity_info(), "-3", DOWN, "3 fewer touches in the last 7 days than in the 7 days before"),
    (words.velocity_info(), "0", DOWN, "As many touches in the last 7 days as in the 7 days before"),
    (words.velocity_info(), None, DOWN, "Change in touches over the last 7 days not known"),
    # scenario paths
    (words.scenario_info("content_path", 4), "0", DOWN, "Completed none of the 4 steps of the content path"),
    (words.scenario_info("content_path", 4), "1", UP, "Completed 1 of 4 steps of the content path, in order"),
    (words.scenario_info("content_path", 4), "4", UP, "Completed all 4 steps of the content path, in order"),
    (words.scenario_info("Onboarding", 3), "2", UP, "Completed 2 of 3 steps of the onboarding path, in order"),
    (words.scenario_info("ABM journey", 5), "0", DOWN, "Completed none of the 5 steps of the ABM journey"),
    # the lead's age
    (words.lead_age_info(), "73.5", UP, "Became a lead 73 days ago"),
    (words.lead_age_info(), "1", DOWN, "Became a lead 1 day ago"),
    (words.lead_age_info(), "0.2", UP, "Became a lead today"),
    (words.lead_age_info(), None, DOWN, "Lead creation date not known"),
    # profile fields: levels, numbers, not given, and the flag of a field that was (not) given
    (JOB_LEVEL, "vp", UP, "Job level: vp"),
    (JOB_LEVEL, "other", DOWN, "Job level: other"),
    (JOB_LEVEL, None, DOWN, "Job level not given"),
    (BUDGET, "45,000", UP, "Budget: 45,000"),
    (BUDGET, "0", DOWN, "Budget: 0"),
    (BUDGET, None, DOWN, "Budget not given"),
    (BUDGET_MISSING, "1", DOWN, "Budget not given"),
    (BUDGET_MISSING, "0", UP, "Budget given"),
    (FeatureInfo("visits", "behaviour", "visits"), "3", UP, "visits: 3"),  # a flat column keeps its template
    (FeatureInfo("visits", "behaviour", "visits"), None, UP, "visits not given"),
]  # fmt: skip


@pytest.mark.parametrize(("info", "value", "raises", "sentence"), SENTENCES, ids=lambda v: str(v)[:40])
def test_every_template_reads_for_sales(info, value, raises, sentence):
    said = render(info, value, raises=raises)
    assert said == sentence
    assert "nan" not in said.lower().split() and "{" not in said


@pytest.mark.parametrize(
    ("days", "text"), [(0.0, "today"), (0.99, "today"), (1.0, "1 day ago"), (1.9, "1 day ago"), (5.2, "5 days ago")]
)
def test_days_ago_counts_whole_days(days, text):
    assert days_ago(days) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(4.0, "4"), (2.345, "2.3"), (13.97, "14"), (-0.04, "0"), (45000.0, "45,000"), (12345.6, "12,346"), (0.5, "0.5")],
)
def test_numbers_are_shown_without_needless_decimals(value, text):
    assert format_number(value) == text


def _hand_made() -> tuple[Contributions, pd.DataFrame, list[FeatureInfo]]:
    """Three leads, four features, contributions written out by hand (no calibration)."""
    features = pd.DataFrame({
        "job_level": pd.Categorical(["student", "vp", "missing"], categories=["staff", "student", "vp", "other", "missing"]),
        "page_view[pricing]__count_30d": [4.0, 0.0, 1.0],
        "demo_request__days_since_last": [np.nan, 3.0, 45.0],
        "budget": [np.nan, 45000.0, 2000.0],
        "budget__missing": [1.0, 0.0, 0.0],
    }, index=[10, 11, 12])  # fmt: skip
    names = ["job_level", "page_view[pricing]__count_30d", "demo_request__days_since_last", "budget"]
    values = np.array([[-2.0, 0.8, -0.3, -0.1], [1.2, -0.2, 0.5, 0.3], [0.0, 0.1, -0.0005, 0.0]])
    margin = -1.0 + values.sum(axis=1)
    to_probability = probability_map(None)
    contributions = Contributions(
        values=values, features=names, base_value=-1.0, margin=margin, probability=to_probability(margin),
        index=features.index, kind="logistic", columns=names, column_values=values,
        column_group=np.arange(4), to_probability=to_probability,
    )  # fmt: skip
    return contributions, features, [JOB_LEVEL, PRICING, DEMO_SINCE, BUDGET, BUDGET_MISSING]


def test_reason_columns_of_hand_made_contributions():
    contributions, features, info = _hand_made()
    table = reason_table(contributions, features, info, threshold=0.5)
    assert list(table.columns) == ["reason_1", "reason_2", "reason_3", "counter_reason_1", "counter_reason_2",
                                   "reasons", "why"]  # fmt: skip
    assert table.index.tolist() == [10, 11, 12]
    assert table.loc[10].tolist()[:5] == [
        "Viewed the pricing page 4 times in the last 30 days (raises)", "", "",
        "Job level: student (lowers)", "Never requested a demo (lowers)",
    ]  # fmt: skip
    assert table.loc[11].tolist()[:5] == [
        "Job level: vp (raises)", "Requested a demo 3 days ago (raises)", "Budget: 45,000 (raises)",
        "No pricing page visit in the last 30 days (lowers)", "",
    ]  # fmt: skip
    # an effect below min_effect (0.0005 log-odds) is not a reason
    assert table.loc[12].tolist()[:5] == ["Viewed the pricing page once in the last 30 days (raises)", "", "", "", ""]
    assert table["why"].tolist() == ["Not an MQL: 7 % (threshold 50 %)", "MQL: 69 % (threshold 50 %)",
                                     "Not an MQL: 29 % (threshold 50 %)"]  # fmt: skip


def test_reasons_json_holds_value_contribution_points_and_decisiveness():
    contributions, features, info = _hand_made()
    table = reason_table(contributions, features, info, threshold=0.5)
    lead = json.loads(table.loc[11, "reasons"])
    assert [r["feature"] for r in lead] == ["job_level", "demo_request__days_since_last", "budget",
                                            "page_view[pricing]__count_30d"]  # fmt: skip
    assert [r["value"] for r in lead] == ["vp", 3.0, 45000.0, 0.0]
    assert [r["contribution"] for r in lead] == [1.2, 0.5, 0.3, -0.2]
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    expected_points = [round(100 * (sigmoid(0.8) - sigmoid(0.8 - c)), 2) for c in (1.2, 0.5, 0.3, -0.2)]
    assert [r["points"] for r in lead] == expected_points
    # without the job level the lead (69 %) falls to 40 %, below the 50 % threshold: that reason decided it
    assert [r["decisive"] for r in lead] == [True, False, False, False]
    first = json.loads(table.loc[10, "reasons"])
    assert first[0] == {"feature": "page_view[pricing]__count_30d", "value": 4.0, "contribution": 0.8,
                        "points": first[0]["points"], "decisive": False}  # fmt: skip
    assert [r["value"] for r in first[1:]] == ["student", None]
    assert json.loads(table.loc[12, "reasons"])[0]["feature"] == "page_view[pricing]__count_30d"


def test_the_reason_table_says_a_recency_by_its_direction_in_whole_days():
    """One recency value said both ways in one table; 0.96 days is "today", not a rounded "1 day"."""
    since = days_since_info("trial_signup")
    features = pd.DataFrame({
        "trial_signup__days_since_last": [5.2, 5.2, 0.96, np.nan],
        "events__velocity_7d": [-3.0, 2.0, 0.0, 1.0],
    }, index=["a", "b", "c", "d"])  # fmt: skip
    names = list(features.columns)
    values = np.array([[-0.6, -0.2], [0.6, 0.3], [0.4, -0.1], [-0.9, 0.2]])
    margin = values.sum(axis=1)
    to_probability = probability_map(None)
    contributions = Contributions(
        values=values, features=names, base_value=0.0, margin=margin, probability=to_probability(margin),
        index=features.index, kind="logistic", columns=names, column_values=values,
        column_group=np.arange(2), to_probability=to_probability,
    )  # fmt: skip
    table = reason_table(contributions, features, [since, words.velocity_info()], top_positive=1, top_negative=1)
    assert table[["reason_1", "counter_reason_1"]].values.tolist() == [
        ["", "No trial sign-up for 5 days (lowers)"],
        ["Signed up for a free trial 5 days ago (raises)", ""],
        ["Signed up for a free trial today (raises)", "As many touches in the last 7 days as in the 7 days before (lowers)"],
        ["1 more touch in the last 7 days than in the 7 days before (raises)", "Never signed up for a free trial (lowers)"],
    ]  # fmt: skip
    assert [json.loads(r)[0]["value"] for r in table["reasons"]] == [5.2, 5.2, 0.96, 1.0]  # exact, not rounded


def test_fewer_features_than_reason_slots_and_no_threshold():
    contributions, features, info = _hand_made()
    table = reason_table(contributions, features, info, top_positive=5, top_negative=6)
    assert [c for c in table.columns if "reason" in c] == [
        "reason_1", "reason_2", "reason_3", "reason_4", "reason_5",
        "counter_reason_1", "counter_reason_2", "counter_reason_3", "counter_reason_4", "counter_reason_5",
        "counter_reason_6", "reasons",
    ]  # fmt: skip
    assert "why" not in table.columns
    assert table.loc[10, "counter_reason_3"] == "Budget not given (lowers)"
    assert table.loc[10, "reason_4"] == "" and table.loc[12, "counter_reason_1"] == ""


def test_model_reason_table_on_simulated_leads(trained, trainset, test_rows):
    from leadml.modeling.contributions import explain_margin

    contributions = explain_margin(trained.models["lightgbm"], test_rows, trainset.feature_info)
    threshold = trained.thresholds["lightgbm"].threshold
    table = reason_table(contributions, test_rows, trainset.feature_info, threshold=threshold)
    assert len(table) == len(test_rows) and (table.index == test_rows.index).all()
    assert table["reason_1"].str.endswith(" (raises)").all()
    assert (table["counter_reason_1"].str.endswith(" (lowers)") | (table["counter_reason_1"] == "")).all()
    assert not table["reason_1"].str.contains(r"\{|\}|nan", regex=True).any()
    parsed = table["reasons"].map(json.loads)
    assert parsed.map(len).between(1, 5).all()
    is_mql = contributions.probability >= threshold
    assert table["why"].str.startswith("MQL").to_numpy().tolist() == is_mql.tolist()


# -- the rules baseline ------------------------------------------------------------------------
RULES = {
    "name": "hand-made",
    "rules": [
        {"name": "Pricing twice", "event": "page_view", "where": {"page": "pricing"}, "min_count": 2, "points": 25},
        {"name": "Filled in a form", "event": "form_submit", "points": 20},
        {"name": "Decision maker", "field": "job_level", "in": ["director", "vp"], "points": 15},
        {"name": "Student", "field": "job_level", "equals": "student", "points": -30},
    ],
}


def test_rules_reasons_are_the_exact_breakdown():
    leads = pd.DataFrame({"lead_id": ["a", "b", "c"], "job_level": ["vp", "student", "staff"]})
    stamps = pd.to_datetime(["2026-01-02", "2026-01-03", "2026-01-04", "2026-01-05"], utc=True)
    events = pd.DataFrame({"lead_id": ["a", "a", "a", "b"], "timestamp": stamps,
                           "event_type": ["page_view", "page_view", "form_submit", "form_submit"],
                           "page": ["pricing", "pricing", None, None]})  # fmt: skip
    scores = RuleSet.from_dict(RULES).score(leads, events, "2026-02-01")
    table = rules_reason_table(scores)
    assert table.loc[0].tolist()[:5] == ["Pricing twice (+25 points)", "Filled in a form (+20 points)",
                                         "Decision maker (+15 points)", "", ""]  # fmt: skip
    assert table.loc[1].tolist()[:5] == ["Filled in a form (+20 points)", "", "", "Student (-30 points)", ""]
    assert table.loc[2].tolist() == ["", "", "", "", "", "[]", "unqualified: 0 points"]
    assert table["why"].tolist()[:2] == ["MQL: 60 points", "unqualified: -10 points"]
    for breakdown, text, points in zip(scores["breakdown"], table["reasons"], scores["points"]):
        assert text == breakdown
        assert sum(r["points"] for r in json.loads(text)) == points


def test_rules_reason_table_needs_the_breakdown():
    with pytest.raises(LeadDataError, match="breakdown"):
        rules_reason_table(pd.DataFrame({"lead_id": ["a"], "points": [3.0]}))


def test_rows_to_explain_selects_mqls_and_the_top():
    from leadml.explain.sentences import rows_to_explain

    p = np.array([0.05, 0.9, 0.5, 0.3, 0.2, 0.6, 0.1, 0.15, 0.12, 0.11])
    assert rows_to_explain(p, 0.55, "all").tolist() == list(range(10))
    assert rows_to_explain(p, 0.55, "mql").tolist() == [1, 5]
    assert rows_to_explain(p, 0.55, "top:3").tolist() == [1, 2, 5]
    assert rows_to_explain(p, 0.55, "top:20%").tolist() == [1, 5]
    assert rows_to_explain(p, 0.25, "default").tolist() == [1, 2, 3, 5]  # MQLs (p >= 0.25) and the top 20 %
    assert rows_to_explain(p, 0.95, "default").tolist() == [1, 5]
    with pytest.raises(ValueError, match="top:N"):
        rows_to_explain(p, 0.5, "best")
    with pytest.raises(ValueError, match="top:N"):
        rows_to_explain(p, 0.5, "top:many")


def test_one_lead_described_for_the_terminal():
    from leadml.explain.sentences import describe_lead

    contributions, features, info = _hand_made()
    text = describe_lead(contributions, features, info, 1, threshold=0.5, title="Lead L11 at 2026-03-01",
                         counterfactual="")  # fmt: skip
    assert text.splitlines() == [
        "Lead L11 at 2026-03-01: MQL: 69 % (threshold 50 %)",
        "average lead (base value): -1.00 log-odds; this lead: +0.80",
        "Raised by:",
        "  +1.20  Job level: vp  (+28.9 points)  <- decided the MQL flag",
        "  +0.50  Requested a demo 3 days ago  (+11.6 points)",
        "  +0.30  Budget: 45,000  (+6.8 points)",
        "Lowered by:",
        "  -0.20  No pricing page visit in the last 30 days  (-4.1 points)",
    ]
    below = describe_lead(contributions, features, info, 0, counterfactual="1 more demo request would make it an MQL")
    assert below.splitlines()[0] == "Lead: probability 6.9%"
    assert below.splitlines()[-1] == "1 more demo request would make it an MQL"


def test_picking_the_top_reasons_leaves_the_contributions_as_they_were():
    from leadml.explain.sentences import _top

    rng = np.random.default_rng(4)
    values = np.round(rng.normal(size=(300, 12)), 1)  # rounded: many exact ties
    before = values.copy()
    idx, ok = _top(values, 3, True, 1e-3)
    low, low_ok = _top(values, 2, False, 1e-3)
    np.testing.assert_array_equal(values, before)
    for row in range(300):  # the definition: stable sort by strength, ties in feature order
        assert idx[row].tolist() == np.argsort(-before[row], kind="stable")[:3].tolist()
        assert low[row].tolist() == np.argsort(before[row], kind="stable")[:2].tolist()
    assert (ok == (np.take_along_axis(before, idx, axis=1) > 1e-3)).all()
    assert (low_ok == (-np.take_along_axis(before, low, axis=1) > 1e-3)).all()


def test_a_lead_without_any_reason_gets_empty_reasons(monkeypatch):
    """Every contribution below min_effect (a served lead alone, or a whole chunk): empty texts and
    an empty JSON list, by the Python join and by the Arrow join alike."""
    import leadml.explain.sentences as sentences

    contributions, features, info = _hand_made()
    quiet = contributions.take([2])
    quiet.values[:] = 0.0
    for small in (sentences.SMALL_TABLE, 0):
        monkeypatch.setattr(sentences, "SMALL_TABLE", small)
        table = reason_table(quiet, features.iloc[[2]], info, threshold=0.5)
        assert table.loc[12].tolist() == ["", "", "", "", "", "[]", "Not an MQL: 29 % (threshold 50 %)"]
