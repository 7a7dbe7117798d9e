"""The points rules engine on hand-made leads and events: every option, exact values, bad files."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadml.core.errors import ConfigError, LeadDataError
from leadml.rules.ruleset import RuleSet

RULES_DIR = Path(__file__).resolve().parents[2] / "pipelines" / "rules"
AS_OF = pd.Timestamp("2026-03-01", tz="UTC")


def days_before(days: float) -> pd.Timestamp:
    return AS_OF - pd.Timedelta(days=days)


def make_events(rows: list[tuple]) -> pd.DataFrame:
    """Events from (lead_id, days before AS_OF, event_type, {attributes}) tuples."""
    records = [
        {"lead_id": lead, "timestamp": days_before(days), "event_type": kind, **(attrs[0] if attrs else {})}
        for lead, days, kind, *attrs in rows
    ]
    events = pd.DataFrame(records)
    events["event_type"] = events["event_type"].astype("category")
    return events


def make_leads(ids, **fields) -> pd.DataFrame:
    return pd.DataFrame({"lead_id": list(ids), **fields})


def one_rule(**rule) -> RuleSet:
    return RuleSet.from_dict({"rules": [{"name": "r", **rule}]})


def points_of(ruleset: RuleSet, leads, events, as_of=AS_OF) -> dict[str, float]:
    scores = ruleset.score(leads, events, as_of)
    return dict(zip(scores["lead_id"], scores["points"]))


# ---------------------------------------------------------------------------------------------
# the seed example and the shipped rule files


def test_seed_points_four_actions_make_an_mql():
    ruleset = RuleSet.load(RULES_DIR / "seed_points.yaml")
    events = make_events(
        [
            ("a", 10, "form_submit", {"form": "contact"}),
            ("a", 9, "email_click", {"campaign": "newsletter"}),
            ("a", 8, "page_view", {"page": "pricing"}),
            ("a", 7, "page_view", {"page": "pricing"}),
            ("a", 6, "community_join"),
            ("b", 5, "page_view", {"page": "pricing"}),  # once only: no pricing points
            ("b", 4, "email_click", {"campaign": "welcome"}),
            ("b", 3, "email_click", {"campaign": "welcome"}),  # fires once, not per click
            # d: the content path in order (newsletter, blog, webinar, case study): 20 (the form) + 30
            ("d", 50, "form_submit", {"form": "newsletter"}),
            ("d", 40, "page_view", {"page": "blog"}),
            ("d", 30, "webinar_attend"),
            ("d", 20, "download", {"asset": "case_study"}),
        ]
    )
    scores = ruleset.score(make_leads(["a", "b", "c", "d"]), events, AS_OF)
    assert scores["points"].tolist() == [70.0, 10.0, 0.0, 50.0]
    assert scores["tier"].astype(str).tolist() == ["MQL", "unqualified", "unqualified", "MQL"]
    assert [b["rule"] for b in json.loads(scores.loc[0, "breakdown"])] == ruleset.rule_names[:4]
    assert json.loads(scores.loc[3, "breakdown"])[1] == {"rule": "Content path", "points": 30, "steps": 4, "of": 4}
    assert scores.loc[2, "breakdown"] == "[]"
    assert list(scores.columns) == ["lead_id", "as_of", "points", "tier", "mql_route", "breakdown"]
    # no routes in the file: an MQL's route is the one that gave it the most points (d: 30 of 50 by the path)
    assert scores["mql_route"].tolist() == ["behaviour", None, None, "scenario"]
    assert (scores["as_of"] == AS_OF).all()


@pytest.mark.parametrize("name", ["seed_points.yaml", "trial_course.yaml", "fit_and_engagement.yaml"])
def test_shipped_rule_files_load_and_round_trip(name):
    ruleset = RuleSet.load(RULES_DIR / name)
    assert RuleSet.from_dict(ruleset.to_dict()) == ruleset
    assert ruleset.tiers[-1].min_points is None


def test_fit_and_engagement_has_negative_rules_and_decay():
    ruleset = RuleSet.load(RULES_DIR / "fit_and_engagement.yaml")
    assert ruleset.half_life_days == 30
    negative = {r.name for r in ruleset.rules if r.points < 0}
    assert len(negative) >= 4
    unsubscribe = next(r for r in ruleset.rules if r.event == "unsubscribe")
    assert unsubscribe.half_life_days is None
    assert {r.tag for r in ruleset.rules} == {"fit", "engagement"}


def test_trial_course_tiers():
    ruleset = RuleSet.load(RULES_DIR / "trial_course.yaml")
    events = make_events(
        [
            ("a", 30, "ad_click", {"campaign": "trial_ad"}),
            ("a", 29, "trial_signup"),
            ("a", 28, "email_open", {"campaign": "welcome"}),
            ("a", 20, "webinar_attend"),
            ("a", 2, "form_submit", {"form": "purchase"}),
            ("b", 3, "form_submit", {"form": "contact"}),  # not the purchase form
            ("b", 2, "trial_signup"),
            ("b", 1, "chat_message"),
            ("b", 1, "review_comment"),
        ]
    )
    scores = ruleset.score(make_leads(["a", "b"]), events, AS_OF)
    assert scores["points"].tolist() == [75.0, 40.0]
    assert scores["tier"].astype(str).tolist() == ["SQL", "MQL"]


# ---------------------------------------------------------------------------------------------
# every rule option


def test_where_matches_one_value_or_any_of_a_list():
    events = make_events(
        [
            ("a", 1, "page_view", {"page": "pricing"}),
            ("b", 1, "page_view", {"page": "blog"}),
            ("c", 1, "page_view", {"page": "cases"}),
            ("d", 1, "download", {"page": "pricing"}),  # other event type
        ]
    )
    leads = make_leads("abcd")
    assert points_of(one_rule(event="page_view", where={"page": "pricing"}, points=7), leads, events) == {
        "a": 7.0,
        "b": 0.0,
        "c": 0.0,
        "d": 0.0,
    }
    both = one_rule(event="page_view", where={"page": ["pricing", "cases"]}, points=7)
    assert points_of(both, leads, events) == {"a": 7.0, "b": 0.0, "c": 7.0, "d": 0.0}


def test_min_count_needs_that_many_events():
    events = make_events(
        [
            ("a", 3, "email_open"),
            ("b", 3, "email_open"),
            ("b", 2, "email_open"),
            ("c", 1, "email_open"),
            ("c", 2, "email_open"),
            ("c", 3, "email_open"),
        ]
    )
    rule = one_rule(event="email_open", min_count=2, points=5)
    assert points_of(rule, make_leads("abc"), events) == {"a": 0.0, "b": 5.0, "c": 5.0}


def test_within_days_window_is_inclusive_at_its_start():
    events = make_events([("a", 7, "demo_request"), ("b", 7.000001, "demo_request"), ("c", 0.5, "demo_request")])
    rule = one_rule(event="demo_request", within_days=7, points=30)
    assert points_of(rule, make_leads("abc"), events) == {"a": 30.0, "b": 0.0, "c": 30.0}


def test_per_event_counts_every_event_and_cap_bounds_the_total():
    clicks = [("a", d, "email_click") for d in (1, 2, 3)] + [("b", d, "email_click") for d in range(1, 11)]
    events = make_events(clicks)
    leads = make_leads("abc")
    assert points_of(one_rule(event="email_click", per_event=True, points=3), leads, events) == {
        "a": 9.0,
        "b": 30.0,
        "c": 0.0,
    }
    capped = one_rule(event="email_click", per_event=True, cap=15, points=3)
    assert points_of(capped, leads, events) == {"a": 9.0, "b": 15.0, "c": 0.0}
    negative = one_rule(event="email_click", per_event=True, cap=12, points=-5)
    assert points_of(negative, leads, events) == {"a": -12.0, "b": -12.0, "c": 0.0}
    with_min = one_rule(event="email_click", per_event=True, min_count=4, points=1)
    assert points_of(with_min, leads, events) == {"a": 0.0, "b": 10.0, "c": 0.0}


def test_field_tests_equals_in_gte_lte_and_missing_values_never_fire():
    leads = make_leads(
        "abcde",
        job_level=pd.Categorical(["vp", "student", None, "manager", "owner"]),
        budget=[50_000, 500, np.nan, 20_000, 10_000],
        company_size=["51-200", "1-10", None, "5000+", "201-1000"],
    )
    cases = [
        ({"field": "job_level", "equals": "student"}, {"b"}),
        ({"field": "job_level", "in": ["vp", "owner"]}, {"a", "e"}),
        ({"field": "budget", "gte": 20_000}, {"a", "d"}),
        ({"field": "budget", "lte": 10_000}, {"b", "e"}),
        ({"field": "budget", "gte": 1_000, "lte": 20_000}, {"d", "e"}),
        ({"field": "company_size", "in": ["51-200", "201-1000"]}, {"a", "e"}),
    ]
    for test, expected in cases:
        got = points_of(one_rule(**test, points=4), leads, None)
        assert {k for k, v in got.items() if v} == expected, test
        assert set(got.values()) <= {0.0, 4.0}


def test_negative_points_lower_the_score_and_the_tier():
    ruleset = RuleSet.from_dict(
        {
            "rules": [
                {"name": "Demo", "event": "demo_request", "points": 60},
                {"name": "Student", "field": "job_level", "equals": "student", "points": -30},
                {"name": "Careers page", "event": "page_view", "where": {"page": "careers"}, "points": -15},
            ]
        }
    )
    events = make_events(
        [("a", 1, "demo_request"), ("b", 1, "demo_request"), ("b", 2, "page_view", {"page": "careers"})]
    )
    leads = make_leads("abc", job_level=["manager", "student", "student"])
    scores = ruleset.score(leads, events, AS_OF)
    assert scores["points"].tolist() == [60.0, 15.0, -30.0]
    assert scores["tier"].astype(str).tolist() == ["MQL", "unqualified", "unqualified"]


def test_tier_thresholds_are_inclusive():
    ruleset = RuleSet.from_dict({"rules": [{"name": "cents", "event": "x", "per_event": True, "points": 0.01}]})
    counts = pd.DataFrame({"x": [5000, 4999, 3000, 2999, -500]})
    expected = ["MQL", "nurture", "nurture", "unqualified", "unqualified"]
    scores = ruleset.score_flat(counts)
    assert scores["points"].tolist() == [50.0, 49.99, 30.0, 29.99, 0.0]
    assert scores["tier"].astype(str).tolist() == expected
    assert [ruleset.tier_of(p) for p in scores["points"]] == expected


# ---------------------------------------------------------------------------------------------
# decay and time


def test_decay_halves_points_every_half_life():
    events = make_events([("a", 30, "form_submit"), ("b", 60, "form_submit"), ("c", 0.0, "form_submit")])
    rule = RuleSet.from_dict(
        {"decay": {"half_life_days": 30}, "rules": [{"name": "form", "event": "form_submit", "points": 20}]}
    )
    # c's event is at as_of itself: the future
    assert points_of(rule, make_leads("abc"), events) == {"a": 10.0, "b": 5.0, "c": 0.0}


def test_decay_of_per_event_and_of_min_count_rules():
    events = make_events(
        [
            ("a", 30, "email_click"),
            ("a", 60, "email_click"),
            ("b", 10, "page_view"),
            ("b", 60, "page_view"),
            ("b", 90, "page_view"),
        ]
    )
    leads = make_leads("ab")
    per_event = one_rule(event="email_click", per_event=True, points=20, decay={"half_life_days": 30})
    assert points_of(per_event, leads, events)["a"] == 15.0  # 20 * (1/2 + 1/4)
    # a once-firing rule decays by the age of its min_count-th latest event (here 60 days: 1/4)
    twice = one_rule(event="page_view", min_count=2, points=25, decay={"half_life_days": 30})
    assert points_of(twice, leads, events)["b"] == 6.25
    once = one_rule(event="page_view", points=24, decay={"half_life_days": 30})
    assert points_of(once, leads, events)["b"] == pytest.approx(24 * 0.5 ** (10 / 30), abs=0.005)


def test_a_rule_decayed_to_zero_is_not_listed():
    ruleset = RuleSet.from_dict(
        {"decay": {"half_life_days": 30}, "rules": [{"name": "form", "event": "form_submit", "points": 20}]}
    )
    scores = ruleset.score(make_leads("ab"), make_events([("a", 400, "form_submit"), ("b", 200, "form_submit")]), AS_OF)
    assert scores["points"].tolist() == [0.0, 0.2]
    assert scores["breakdown"].tolist() == ["[]", '[{"rule": "form", "points": 0.2}]']


def test_rule_level_decay_false_keeps_full_points():
    ruleset = RuleSet.from_dict(
        {
            "decay": {"half_life_days": 10},
            "rules": [
                {"name": "unsubscribed", "event": "unsubscribe", "decay": False, "points": -25},
                {"name": "clicked", "event": "email_click", "points": 8},
            ],
        }
    )
    events = make_events([("a", 100, "unsubscribe"), ("a", 10, "email_click")])
    assert points_of(ruleset, make_leads("a"), events) == {"a": -21.0}


def test_events_at_or_after_as_of_give_nothing():
    events = make_events([("a", 0, "demo_request"), ("a", -1, "demo_request"), ("a", -5, "form_submit")])
    ruleset = RuleSet.from_dict(
        {
            "rules": [
                {"name": "demo", "event": "demo_request", "points": 30},
                {"name": "forms", "event": "form_submit", "per_event": True, "points": 5},
            ]
        }
    )
    assert points_of(ruleset, make_leads("a"), events) == {"a": 0.0}


def test_leads_created_after_as_of_are_not_scored():
    """The rule set leaves them out itself: `leadml rules score` and a Python caller get the same rows."""
    ruleset = RuleSet.from_dict(
        {
            "rules": [
                {"name": "pricing", "event": "page_view", "where": {"page": "pricing"}, "points": 20},
                {"name": "VP", "field": "job_level", "equals": "vp", "points": 30},
            ]
        }
    )
    later = AS_OF + pd.Timedelta(seconds=1)
    leads = make_leads(
        "edcba",
        job_level=["vp", "vp", "student", "vp", "student"],
        created_at=[days_before(40), later, AS_OF, days_before(-3), days_before(2)],
    )
    events = make_events(
        [
            ("e", 10, "page_view", {"page": "pricing"}),
            ("c", 1, "page_view", {"page": "pricing"}),
            ("b", -5, "page_view", {"page": "pricing"}),
            ("a", 1, "page_view", {"page": "pricing"}),
        ]
    )
    scores = ruleset.score(leads, events, AS_OF)
    assert scores["lead_id"].tolist() == ["e", "c", "a"]  # created at as_of counts; a second later does not
    assert scores["points"].tolist() == [50.0, 20.0, 20.0]
    assert len(ruleset.score(leads, events, later)) == 4 and len(ruleset.score(leads, events, days_before(3))) == 1
    every = ruleset.score(leads, events, days_before(-6))
    assert every["lead_id"].tolist() == list("edcba") and every["points"].tolist() == [50.0, 30.0, 20.0, 50.0, 20.0]
    text = leads.assign(created_at=leads["created_at"].dt.tz_convert("Europe/Paris").map(pd.Timestamp.isoformat))
    pd.testing.assert_frame_equal(ruleset.score(text, events, AS_OF), scores)  # ISO text with offsets: same rows
    assert len(ruleset.score(leads.drop(columns="created_at"), events, AS_OF)) == 5  # no creation time: all scored
    with pytest.raises(LeadDataError, match=r"<leads table>: column 'created_at' has 1 missing or unparseable"):
        ruleset.score(text.assign(created_at=[*text["created_at"][:4], "soon"]), events, AS_OF)


def test_score_snapshots_several_as_of_per_lead_in_input_order():
    ruleset = RuleSet.load(RULES_DIR / "seed_points.yaml")
    events = make_events(
        [
            ("a", 20, "form_submit"),
            ("a", 10, "page_view", {"page": "pricing"}),
            ("a", 5, "page_view", {"page": "pricing"}),
            ("b", 1, "email_click"),
        ]
    )
    snapshots = pd.DataFrame(
        {
            "lead_id": ["a", "b", "a", "a", "b"],
            "as_of": [AS_OF, AS_OF, days_before(15), days_before(7), days_before(1)],
        }
    )
    scores = ruleset.score_snapshots(snapshots, make_leads("ab"), events)
    assert scores["lead_id"].tolist() == ["a", "b", "a", "a", "b"]
    assert scores["as_of"].tolist() == snapshots["as_of"].tolist()
    assert scores["points"].tolist() == [45.0, 10.0, 20.0, 20.0, 0.0]
    assert scores["tier"].astype(str).tolist() == [
        "nurture",
        "unqualified",
        "unqualified",
        "unqualified",
        "unqualified",
    ]


def test_breakdown_sums_exactly_to_the_total_with_decay_and_subscores():
    ruleset = RuleSet.load(RULES_DIR / "fit_and_engagement.yaml")
    rng = np.random.default_rng(3)
    kinds = ["page_view", "email_click", "demo_request", "download", "product_active_day", "unsubscribe"]
    n = 400
    events = pd.DataFrame(
        {
            "lead_id": rng.choice(list("abcdefghij"), n),
            "timestamp": AS_OF - pd.to_timedelta(rng.uniform(-5, 120, n), unit="D"),
            "event_type": pd.Categorical(rng.choice(kinds, n)),
            "page": rng.choice(["pricing", "cases", "careers", "blog"], n),
            "asset": rng.choice(["whitepaper", "checklist"], n),
        }
    )
    leads = make_leads(
        "abcdefghij",
        job_level=rng.choice(["vp", "student", "manager"], 10),
        industry="software",
        company_size="51-200",
        budget=rng.uniform(0, 40_000, 10),
        email_domain_kind=rng.choice(["free", "corporate"], 10),
    )
    scores = ruleset.score(leads, events, AS_OF, subscores=True)
    for total, text, fit, engagement in scores[["points", "breakdown", "fit_points", "engagement_points"]].itertuples(
        index=False
    ):
        parts = json.loads(text, parse_float=Decimal, parse_int=Decimal)
        assert sum((p["points"] for p in parts), Decimal(0)) == Decimal(str(total))
        assert Decimal(str(fit)) + Decimal(str(engagement)) == Decimal(str(total))
    assert scores["breakdown"].str.len().min() > 2


# ---------------------------------------------------------------------------------------------
# properties

EVENT_TYPES = ["page_view", "email_click", "form_submit"]
event_rows = st.lists(
    st.tuples(
        st.sampled_from("abc"), st.floats(-3, 60), st.sampled_from(EVENT_TYPES), st.sampled_from(["pricing", "blog"])
    ),
    min_size=1,
    max_size=25,
)
positive_rule = st.fixed_dictionaries(
    {"name": st.just("extra"), "event": st.sampled_from(EVENT_TYPES), "points": st.floats(0, 40)},
    optional={
        "where": st.sampled_from([{"page": "pricing"}, {"page": ["pricing", "blog"]}]),
        "min_count": st.integers(1, 3),
        "within_days": st.sampled_from([1, 7, 30]),
        "per_event": st.just(True),
        "decay": st.sampled_from([{"half_life_days": 7}, {"half_life_days": 30}]),
    },
)


def _events_from(rows) -> pd.DataFrame:
    return make_events([(lead, days, kind, {"page": page}) for lead, days, kind, page in rows])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=event_rows, extra=positive_rule)
def test_a_positive_rule_never_lowers_a_score(rows, extra):
    base = RuleSet.load(RULES_DIR / "seed_points.yaml").to_dict()
    more = {**base, "rules": base["rules"] + [extra]}
    events, leads = _events_from(rows), make_leads("abc")
    before = RuleSet.from_dict(base).score(leads, events, AS_OF)["points"].to_numpy()
    after = RuleSet.from_dict(more).score(leads, events, AS_OF)["points"].to_numpy()
    assert (after >= before).all()


@settings(max_examples=30, deadline=None)
@given(rows=event_rows, later=event_rows)
def test_events_after_as_of_change_nothing(rows, later):
    ruleset = RuleSet.from_dict(
        {
            "decay": {"half_life_days": 20},
            "rules": [
                {"name": "pricing", "event": "page_view", "where": {"page": "pricing"}, "per_event": True, "points": 4},
                {"name": "forms", "event": "form_submit", "min_count": 2, "within_days": 30, "points": 20},
            ],
        }
    )
    leads = make_leads("abc")
    future = [(lead, -abs(days), kind, page) for lead, days, kind, page in later]  # at or after as_of
    alone = ruleset.score(leads, _events_from(rows), AS_OF)
    mixed = ruleset.score(leads, _events_from(rows + future), AS_OF)
    pd.testing.assert_frame_equal(alone, mixed)


# ---------------------------------------------------------------------------------------------
# flat tables


def test_score_flat_reads_count_columns_and_fields():
    ruleset = RuleSet.from_dict(
        {
            "rules": [
                {"name": "visits", "event": "TotalVisits", "min_count": 5, "points": 10},
                {
                    "name": "pricing",
                    "event": "page_view",
                    "where": {"page": "pricing"},
                    "per_event": True,
                    "cap": 15,
                    "points": 5,
                },
                {"name": "decision maker", "field": "job_level", "in": ["vp", "owner"], "points": 20},
            ]
        }
    )
    flat = pd.DataFrame(
        {"TotalVisits": [7, 2, np.nan], "page_view[pricing]": [1, 9, 0], "job_level": ["vp", None, "owner"]}
    )
    scores = ruleset.score_flat(flat)
    assert scores["points"].tolist() == [35.0, 15.0, 20.0]
    assert scores["lead_id"].tolist() == ["0", "1", "2"]
    assert ruleset.points(flat).tolist() == [35.0, 15.0, 20.0]
    timed = RuleSet.from_dict({"rules": [{"name": "recent", "event": "TotalVisits", "within_days": 7, "points": 1}]})
    with pytest.raises(ConfigError, match=r"rule #1 'recent': 'within_days' needs event times"):
        timed.score_flat(flat)


# ---------------------------------------------------------------------------------------------
# bad input


def _load(tmp_path: Path, text: str) -> RuleSet:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return RuleSet.load(path)


BAD_FILES = [
    (
        "rules:\n  - {name: Pricing, event: page_view, min_cout: 2, points: 5}\n",
        r"bad\.yaml: rule #1 'Pricing': 'min_cout' is not a known key of a rule; did you mean 'min_count'\?",
    ),
    (
        "rules:\n  - {name: A, event: form_submit, points: 20}\n  - {name: Demo, event: demo_request}\n",
        r"bad\.yaml: rule #2 'Demo': 'points' is missing",
    ),
    (
        "rules:\n  - {name: Demo, event: demo_request, points: lots}\n",
        r"rule #1 'Demo': 'points' must be a number, got 'lots'",
    ),
    (
        "rules:\n  - {name: Mixed, event: demo_request, field: job_level, equals: vp, points: 5}\n",
        r"rule #1 'Mixed': has both 'event' and 'field'",
    ),
    (
        "rules:\n  - {name: Demo, event: demo_request, points: 5}\n"
        "tiers:\n  - {name: nurture, min: 30}\n  - {name: MQL, min: 50}\n  - {name: rest}\n",
        r"tier #2 'MQL': 'min' \(50\) must be below the previous tier's \(30\)",
    ),
    (
        "decay: {half_life: 30}\nrules:\n  - {name: Demo, event: demo_request, points: 5}\n",
        r"bad\.yaml: decay: 'half_life' is not a known key of decay; did you mean 'half_life_days'\?",
    ),
    (
        "rules:\n  - {name: Demo, event: demo_request, points: 5, decay: {halflife_days: 3}}\n",
        r"rule #1 'Demo': decay: 'halflife_days' is not a known key of decay; did you mean 'half_life_days'\?",
    ),
    (
        "rules:\n  - {name: Demo, event: demo_request, points: 5}\ntiers:\n  - {name: MQL, min: 50}\n",
        r"tier #1 'MQL': the last tier is the catch-all",
    ),
    (
        "rules:\n  - {name: Level, field: job_level, equal: vp, points: 5}\n",
        r"rule #1 'Level': 'equal' is not a known key of a rule; did you mean 'equals'\?",
    ),
    ("rules:\n  - {name: Level, field: job_level, points: 5}\n", r"rule #1 'Level': a field rule needs a test"),
    (
        "rules:\n  - {name: Clicks, event: email_click, cap: 5, points: 1}\n",
        r"'cap' only applies with 'per_event: true'",
    ),
    (
        "rules:\n  - {name: Clicks, event: email_click, min_count: 0, points: 1}\n",
        r"'min_count' must be a whole number >= 1",
    ),
    (
        "rules:\n  - {name: A, event: email_click, points: 1}\n  - {name: A, event: demo_request, points: 1}\n",
        r"rule #2 'A': 'name' repeats rule #1",
    ),
    (
        "rule:\n  - {name: A, event: email_click, points: 1}\n",
        r"'rule' is not a known key of a rules file; did you mean 'rules'\?",
    ),
    ("rules: [\n", r"bad\.yaml: not valid YAML at line"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_bad_rules_files_name_the_rule_and_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, text)


def test_missing_rules_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nothere\.yaml: rules file not found"):
        RuleSet.load(tmp_path / "nothere.yaml")


def test_data_that_does_not_fit_the_rules_is_named():
    leads = make_leads("ab")
    events = make_events([("a", 1, "page_view")])
    with pytest.raises(LeadDataError, match=r"rule #1 'r' tests field 'job_level', which the leads table lacks"):
        one_rule(field="job_level", equals="vp", points=1).score(leads, events, AS_OF)
    with pytest.raises(LeadDataError, match=r"rule #1 'r' reads event column 'page'"):
        one_rule(event="page_view", where={"page": "pricing"}, points=1).score(leads, events, AS_OF)
    with pytest.raises(LeadDataError, match=r"need an events table"):
        one_rule(event="page_view", points=1).score(leads, None, AS_OF)
    with pytest.raises(LeadDataError, match=r"compares column 'budget' with numbers.*'lots'"):
        one_rule(field="budget", gte=5, points=1).score(make_leads("ab", budget=["10", "lots"]), None, AS_OF)
    with pytest.raises(LeadDataError, match=r"'lead_id' has duplicated ids"):
        one_rule(event="page_view", points=1).score(make_leads("aba"), events, AS_OF)
    with pytest.raises(LeadDataError, match=r"snapshots of leads missing from the leads table"):
        one_rule(field="x", equals=1, points=1).score_snapshots(
            pd.DataFrame({"lead_id": ["zz"], "as_of": [AS_OF]}), make_leads("a", x=[1]), None
        )


# ---------------------------------------------------------------------------------------------
# the vectorised engine against a plain per-lead reference, on simulated data


def _reference_points(rule, lead_events, profile, as_of):
    """One rule at one snapshot, written as plainly as possible (None: the rule does not fire)."""
    if not rule.is_event:
        value = profile.get(rule.field)
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return None
        ok = (rule.equals is None or str(value) == str(rule.equals)) and (
            rule.isin is None or str(value) in {str(v) for v in rule.isin}
        )
        ok = ok and (rule.gte is None or value >= rule.gte) and (rule.lte is None or value <= rule.lte)
        return rule.points if ok else None
    ages = []
    for event in lead_events:
        if event["event_type"] != rule.event or not event["timestamp"] < as_of:
            continue
        if any(str(event.get(attr)) not in {str(v) for v in values} for attr, values in rule.where):
            continue
        age = (as_of - event["timestamp"]) / pd.Timedelta(days=1)
        if rule.within_days is None or age <= rule.within_days:
            ages.append(age)
    if len(ages) < rule.min_count:
        return None
    H = rule.half_life_days
    if rule.per_event:
        total = sum(rule.points * (0.5 ** (a / H) if H else 1.0) for a in ages)
        return max(-rule.cap, min(rule.cap, total)) if rule.cap else total
    kth = sorted(ages)[rule.min_count - 1]
    return rule.points * (0.5 ** (kth / H) if H else 1.0)


def test_engine_matches_a_plain_reference_on_simulated_data(small_sim):
    ruleset = RuleSet.load(RULES_DIR / "fit_and_engagement.yaml")
    leads = small_sim.leads.iloc[:150]
    events = small_sim.events[small_sim.events["lead_id"].isin(leads["lead_id"])]
    rng = np.random.default_rng(5)
    snapshots = pd.DataFrame({"lead_id": np.repeat(leads["lead_id"].to_numpy(), 2)})
    created = leads["created_at"].repeat(2).reset_index(drop=True)
    snapshots["as_of"] = created + pd.to_timedelta(rng.uniform(1, 400, len(snapshots)), unit="D")
    scores = ruleset.score_snapshots(snapshots, leads, events)
    by_lead = {lead: group.to_dict("records") for lead, group in events.groupby("lead_id", observed=True)}
    profiles = leads.set_index("lead_id").to_dict("index")
    fired_somewhere = set()
    for row in scores.itertuples(index=False):
        got = {b["rule"]: b["points"] for b in json.loads(row.breakdown)}
        want = {}
        for rule in ruleset.rules:
            value = _reference_points(rule, by_lead.get(row.lead_id, []), profiles[row.lead_id], row.as_of)
            if value is not None and not (rule.half_life_days and abs(value) < 0.005):
                want[rule.name] = value
        assert set(got) == set(want), row.lead_id
        for name, value in want.items():
            assert got[name] == pytest.approx(value, abs=0.0051), (row.lead_id, name)
        fired_somewhere |= set(got)
    assert len(fired_somewhere) >= 14  # the data exercise nearly every rule


@pytest.mark.parametrize(("chunk", "repeat"), [(4_000_000, 8), (7, 8), (7, 0)])
def test_selected_events_agree_with_the_timeline(monkeypatch, chunk, repeat):
    """Direct decayed sums (in small chunks, or by the timeline's scan as fallback) and k-th latest ages."""
    from leadml.features.timeline.engine import EventTimeline
    from leadml.rules import timeline as rules_timeline

    monkeypatch.setattr(rules_timeline, "_PAIRS_PER_CHUNK", chunk)
    monkeypatch.setattr(rules_timeline, "_MAX_REPEAT", repeat)
    rng = np.random.default_rng(8)
    n = 300
    events = pd.DataFrame(
        {
            "lead_id": rng.choice(list("abcdefgh"), n),
            "timestamp": AS_OF - pd.to_timedelta(rng.uniform(-20, 100, n), unit="D"),
            "event_type": rng.choice(["page_view", "email_click"], n),
        }
    )
    snapshots = pd.DataFrame(
        {
            "lead_id": rng.choice(list("abcdefghz"), 40),
            "as_of": AS_OF - pd.to_timedelta(rng.uniform(0, 60, 40), unit="D"),
        }
    )
    timeline = EventTimeline.build(events, snapshots)
    mask = timeline.event_mask("page_view")
    selected = rules_timeline.SelectedEvents(timeline, mask)
    for window in (None, 10, 45):
        assert selected.count(window).tolist() == timeline.count(mask, window).tolist()
        np.testing.assert_allclose(selected.decayed_sum(15, window), timeline.decayed_sum(mask, 15, window), atol=1e-9)
    count, age = selected.kth_latest_age_ns(2, 30)
    last = timeline.days_since_last(mask)
    single_count, single_age = selected.kth_latest_age_ns(1)
    np.testing.assert_allclose(single_age[single_count > 0] / 86_400e9, last[single_count > 0])
    assert (age[count >= 2] >= 0).all() and (age[count < 2] == 0).all()


# -- rules that cannot fire on the data ------------------------------------------------------------
WARNED = {
    "rules": [
        {"name": "Webinar", "event": "webinar_atend", "points": 20},
        {"name": "Pricing", "event": "page_view", "where": {"page": "pricing"}, "points": 10},
        {"name": "VP", "field": "job_level", "equals": "vp", "points": 30},
    ]
}


def warned_data(job_level=("vp", "student")) -> tuple[pd.DataFrame, pd.DataFrame]:
    leads = make_leads(["a", "b"], job_level=list(job_level))
    events = make_events(
        [("a", 3, "page_view", {"page": "home"}), ("a", 2, "webinar_attend", {"page": "x"}),
         ("b", 1, "Form_Submit", {"page": "y"})]
    )  # fmt: skip
    return leads, events


def rules_warnings(score) -> list:
    """The RulesWarnings one scoring call gives (every one, however often the same text comes)."""
    from leadml.rules.ruleset import RulesWarning

    with pytest.warns() as caught:
        score()
    return [w.message for w in caught if isinstance(w.message, RulesWarning)]


def test_an_event_rule_on_a_type_absent_from_the_events_is_told_once_with_a_suggestion():
    from leadml.data.contract import LeadDataWarning

    leads, events = warned_data()
    ruleset = RuleSet.from_dict(WARNED, source="r.yaml")
    found = rules_warnings(lambda: ruleset.score(leads, events, AS_OF))
    assert [str(w) for w in found] == [
        "r.yaml: rule #1 'Webinar' counts event type 'webinar_atend', which no event has, so it never fires; "
        "did you mean 'webinar_attend'? (event types present: Form_Submit, page_view, webinar_attend)"
    ]
    assert isinstance(found[0], LeadDataWarning) and (found[0].kind, found[0].count) == ("absent_event_type", 1)
    snapshots = pd.DataFrame({"lead_id": ["a", "b"] * 50, "as_of": [days_before(k) for k in range(100)]})
    per_snapshots = rules_warnings(lambda: ruleset.score_snapshots(snapshots, leads, events))  # 100 rows: one warning
    assert [str(w) for w in per_snapshots] == [str(found[0])]


def test_a_type_without_a_close_match_gets_no_suggestion():
    leads, events = warned_data()
    ruleset = RuleSet.from_dict({"rules": [{"name": "Chat", "event": "chat_message", "points": 5},
                                           {"name": "VP", "field": "job_level", "equals": "vp", "points": 30}]})  # fmt: skip
    assert [str(w) for w in rules_warnings(lambda: ruleset.score(leads, events, AS_OF))] == [
        "<rules>: rule #1 'Chat' counts event type 'chat_message', which no event has, so it never fires "
        "(event types present: Form_Submit, page_view, webinar_attend)"
    ]


def test_a_rules_file_none_of_whose_rules_can_fire_gets_one_stronger_warning():
    leads, events = warned_data(job_level=("cto", None))
    ruleset = RuleSet.from_dict(WARNED, source="r.yaml")
    found = rules_warnings(lambda: ruleset.score(leads, events, AS_OF))
    assert [str(w) for w in found] == [
        "none of the 3 rules in r.yaml can fire on this data: rule #1 'Webinar' counts event type 'webinar_atend', "
        "which no event has (did you mean 'webinar_attend'?); rule #2 'Pricing' matches no event of the scored "
        "leads (type 'page_view' where page='pricing'); rule #3 'VP' tests field 'job_level', which no scored lead "
        "passes; event types present: Form_Submit, page_view, webinar_attend"
    ]
    assert (found[0].kind, found[0].count) == ("rules_cannot_fire", 3)
    one = RuleSet.from_dict({"rules": [{"name": "VP", "field": "job_level", "equals": "vp", "points": 30}]})
    assert [str(w) for w in rules_warnings(lambda: one.score(leads, None, AS_OF))] == [
        "the one rule in <rules> cannot fire on this data: rule #1 'VP' tests field 'job_level', which no scored "
        "lead passes"
    ]


def test_no_warning_when_every_type_is_present_or_when_asked_not_to():
    import warnings

    from leadml.rules.ruleset import RulesWarning

    leads, events = warned_data()
    present = RuleSet.from_dict({"rules": [{"name": "Webinar", "event": "webinar_attend", "points": 20},
                                           {"name": "Form", "event": "Form_Submit", "min_count": 5, "points": 9}]})  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error", RulesWarning)
        scores = present.score(leads, events, AS_OF)
        RuleSet.from_dict(WARNED).score(leads, events, AS_OF, warn=False)
        vp = RuleSet.from_dict({"rules": [{"name": "VP", "field": "job_level", "equals": "cto", "points": 30}]})
        nobody = vp.score(leads.iloc[:0], None, AS_OF)  # no lead scored: nothing could fire, nothing to tell
    assert scores["points"].tolist() == [20.0, 0.0]  # the Form rule cannot reach 5 events: fine, no warning
    assert nobody.empty
