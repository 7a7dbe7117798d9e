"""Qualification routes: the rules file's routes decide who is an MQL, and each MQL says by which route."""

from __future__ import annotations

import pandas as pd
import pytest

from leadml.core.errors import ConfigError
from leadml.rules.ruleset import RuleSet
from tests.rules.test_rules import AS_OF, make_events, make_leads

ROUTED = {
    "name": "routed",
    "rules": [
        {"name": "Form", "event": "form_submit", "points": 20},
        {"name": "Pricing twice", "event": "page_view", "where": {"page": "pricing"}, "min_count": 2, "points": 25},
        {"name": "Click", "event": "email_click", "points": 10},
        {"name": "VP", "field": "job_level", "equals": "vp", "points": 30},
        {"name": "Large company", "field": "employees", "gte": 1000, "points": 20},
        {"name": "Webinar", "event": "webinar_attend", "points": 5, "route": "profile"},  # counted with the profile
        {
            "name": "Content path",
            "scenario": {"steps": ["form_submit", "webinar_attend", "download"], "max_days_between_steps": 30},
            "points": 30,
        },
    ],
    "tiers": [{"name": "MQL", "min": 50}, {"name": "nurture", "min": 25}, {"name": "unqualified"}],
    "routes": [
        {"name": "behaviour", "min": 45},
        {"name": "profile", "min": 50, "description": "fits the target"},
        {"name": "scenario", "min": 30},
    ],
}


def routed_scores(ruleset: RuleSet | None = None) -> pd.DataFrame:
    leads = make_leads(
        ["beh", "prof", "path", "both", "total", "none"],
        job_level=["ic", "vp", "ic", "vp", "vp", "ic"],
        employees=[10, 5000, 10, 5000, 10, 10],
    )
    events = make_events([
        # beh: 20 + 25 = 45 behaviour points: qualifies by behaviour
        ("beh", 10, "form_submit"), ("beh", 9, "page_view", {"page": "pricing"}), ("beh", 8, "page_view", {"page": "pricing"}),
        # prof: VP + large = 50 profile points
        # path: the three steps in order, 20 days apart at most: 30 scenario points (+20 form, +5 webinar)
        ("path", 50, "form_submit"), ("path", 40, "webinar_attend"), ("path", 20, "download"),
        # both: profile 50 + 5 (the webinar counts with the profile) and behaviour 20 + 25 = 45
        ("both", 10, "form_submit"), ("both", 9, "page_view", {"page": "pricing"}),
        ("both", 8, "page_view", {"page": "pricing"}), ("both", 7, "webinar_attend"),
        # total: VP (30) + form (20) + click (10) = 60 points, but no route reaches its min
        ("total", 5, "form_submit"), ("total", 4, "email_click"),
        # none: the path out of order (download first): 20 + 5 points
        ("none", 30, "download"), ("none", 20, "form_submit"), ("none", 10, "webinar_attend"),
    ])  # fmt: skip
    return (ruleset or RuleSet.from_dict(ROUTED)).score(leads, events, AS_OF)


def test_routes_decide_the_mql_tier_and_name_the_route():
    scores = routed_scores()
    assert scores["points"].tolist() == [45.0, 50.0, 55.0, 100.0, 60.0, 25.0]
    assert scores["tier"].astype(str).tolist() == ["MQL", "MQL", "MQL", "MQL", "nurture", "nurture"]
    assert scores["mql_route"].tolist() == ["behaviour", "profile", "scenario", "behaviour+profile", None, None]


def test_without_routes_the_total_decides_and_the_largest_route_is_named():
    plain = {key: value for key, value in ROUTED.items() if key != "routes"}
    plain["rules"] = [{k: v for k, v in rule.items() if k != "route"} for rule in ROUTED["rules"]]
    scores = routed_scores(RuleSet.from_dict(plain))
    assert scores["tier"].astype(str).tolist() == ["nurture", "MQL", "MQL", "MQL", "MQL", "nurture"]
    # path: 30 scenario against 25 behaviour; both: 50 profile against 50 behaviour: the route met first wins
    assert scores["mql_route"].tolist() == [None, "profile", "scenario", "behaviour", "behaviour", None]


def test_subscores_carry_the_largest_route_of_every_lead():
    scores = RuleSet.from_dict(ROUTED).score(
        make_leads(["a", "b"], job_level=["ic", "vp"], employees=[10, 10]),
        make_events([("a", 3, "email_click"), ("a", 2, "page_view", {"page": "docs"})]),
        AS_OF,
        subscores=True,
    )
    assert scores["top_route"].tolist() == ["behaviour", "profile"]  # below MQL too: a rules model's fallback
    assert scores["mql_route"].tolist() == [None, None]


def test_routes_round_trip_through_to_dict():
    ruleset = RuleSet.from_dict(ROUTED)
    again = RuleSet.from_dict(ruleset.to_dict())
    assert again == ruleset
    assert [(r.name, r.min_points) for r in again.routes] == [
        ("behaviour", 45.0),
        ("profile", 50.0),
        ("scenario", 30.0),
    ]
    assert again.rule_routes == ["behaviour", "behaviour", "behaviour", "profile", "profile", "profile", "scenario"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"routes": [{"name": "behaviour"}]}, "route #1 'behaviour': 'min' is missing"),
        ({"routes": [{"name": "a", "min": 1}, {"name": "a", "min": 2}]}, "duplicate route name(s) 'a'"),
        ({"routes": [{"name": "behaviour", "min": 1, "treshold": 3}]}, "'treshold' is not a known key of a route"),
        ({"routes": []}, "'routes' must be a non-empty list"),
        ({"rules": [{"name": "r", "event": "x", "points": 1, "route": "behavior"}],
          "routes": [{"name": "behaviour", "min": 1}]}, "'route: behavior' is not a route of the file; did you mean 'behaviour'?"),
        ({"rules": [{"name": "r", "event": "x", "points": 1, "route": "behaviour"}]}, "needs a 'routes:' list"),
        ({"tiers": [{"name": "all"}]}, "it must not be the catch-all"),
    ],
)  # fmt: skip
def test_bad_routes_name_the_route_and_the_key(change, message):
    raw = {**ROUTED, **change}
    if "rules" in change and "routes" not in change:
        raw.pop("routes")
    with pytest.raises(ConfigError) as error:
        RuleSet.from_dict(raw, source="team.yaml")
    assert "team.yaml" in str(error.value)
    assert message in str(error.value)
