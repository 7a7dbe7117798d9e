"""Scenario rules: an ordered path of steps, evaluated point in time, on hand-made timelines."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadml.core.errors import ConfigError
from leadml.explain.sentences import rules_reason_table
from leadml.rules.ruleset import RuleSet
from tests.conftest import REPO

AS_OF = pd.Timestamp("2026-03-01", tz="UTC")
STEPS = [
    {"event": "form_submit", "where": {"form": "newsletter"}},  # subscribed
    "page_view[blog]",  # read the blog (the value in any attribute, as features.scenarios reads it)
    "webinar_attend",
    {"event": "download", "where": {"asset": "case_study"}},
]


def ruleset(**scenario) -> RuleSet:
    rule = {"name": "Content path", "scenario": {"steps": STEPS, **scenario}, "points": 30}
    return RuleSet.from_dict(
        {"name": "paths", "rules": [rule], "tiers": [{"name": "MQL", "min": 30}, {"name": "rest"}]}
    )


SUBSCRIBE = ("form_submit", {"form": "newsletter"})
BLOG = ("page_view", {"page": "blog"})
WEBINAR = ("webinar_attend", {})
CASE = ("download", {"asset": "case_study"})


def events(rows: list[tuple[str, float, tuple[str, dict]]]) -> pd.DataFrame:
    """Events from (lead, days before AS_OF, (type, attributes)); negative days are after AS_OF."""
    records = [{"lead_id": lead, "timestamp": AS_OF - pd.Timedelta(days=days), "event_type": kind, **attrs}
               for lead, days, (kind, attrs) in rows]  # fmt: skip
    frame = pd.DataFrame(records)
    for column in ("page", "form", "asset"):
        if column not in frame:
            frame[column] = None
    return frame


TIMELINE = events([
    # a: the whole path in order, 10 days apart
    ("a", 40, SUBSCRIBE), ("a", 30, BLOG), ("a", 20, WEBINAR), ("a", 10, CASE),
    # b: out of order: the case study and the webinar come before the blog
    ("b", 40, SUBSCRIBE), ("b", 35, CASE), ("b", 30, WEBINAR), ("b", 20, BLOG),
    # c: in order, but 50 days between the blog and the webinar
    ("c", 80, SUBSCRIBE), ("c", 70, BLOG), ("c", 20, WEBINAR), ("c", 10, CASE),
    # d: three steps before as_of, the last one after it (the future)
    ("d", 30, SUBSCRIBE), ("d", 20, BLOG), ("d", 10, WEBINAR), ("d", -1, CASE),
    # e: the blog and the subscription at the same instant: a step must come strictly after the one before
    ("e", 30, SUBSCRIBE), ("e", 30, BLOG), ("e", 29, BLOG), ("e", 5, WEBINAR),
    # f: a late second subscription restarts nothing: the early one still opens the path
    ("f", 60, SUBSCRIBE), ("f", 50, BLOG), ("f", 5, SUBSCRIBE), ("f", 4, WEBINAR), ("f", 3, CASE),
])  # fmt: skip
LEADS = pd.DataFrame({"lead_id": list("abcdefg")})  # g: no events at all


def steps_done(rules: RuleSet, timeline: pd.DataFrame = TIMELINE) -> dict[str, tuple[float, int | None]]:
    scores = rules.score(LEADS, timeline, AS_OF)
    out = {}
    for lead, points, breakdown in scores[["lead_id", "points", "breakdown"]].itertuples(index=False):
        fired = json.loads(breakdown)
        out[lead] = (points, fired[0]["steps"] if fired else None)
    return out


def test_steps_in_order_out_of_order_too_slow_and_after_as_of():
    plain = steps_done(ruleset(points_per_step=5))  # 5 a step, 30 more for the whole path
    assert plain == {
        "a": (50, 4),  # 4 x 5 + 30
        "b": (10, 2),  # subscribe, then the blog at 20; the webinar and case study came before it
        "c": (50, 4),  # no limit between steps: the whole path
        "d": (15, 3),  # the case study is after as_of
        "e": (15, 3),  # subscribe (30), blog (29, not the one at the same instant), webinar
        "f": (50, 4),  # the early subscription and blog, then the webinar and the case study
        "g": (0, None),
    }
    slow = steps_done(ruleset(points_per_step=5, max_days_between_steps=30))
    assert slow["c"] == (10, 2)  # 50 days from the blog to the webinar: the path stops at the blog
    assert slow["a"] == (50, 4) and slow["f"] == (10, 2)  # f: 46 days from the blog to the webinar
    window = steps_done(ruleset(points_per_step=5, within_days=35))
    assert window["a"] == (0, None)  # the subscription (40 days ago) is outside: the path never starts
    assert window["d"] == (15, 3) and window["b"] == (0, None)


def test_the_completion_points_alone_and_the_breakdown_in_sentences():
    rules = ruleset()
    scores = rules.score(LEADS, TIMELINE, AS_OF)
    assert scores.set_index("lead_id")["points"].to_dict() == {
        "a": 30,
        "b": 0,
        "c": 30,
        "d": 0,
        "e": 0,
        "f": 30,
        "g": 0,
    }
    assert json.loads(scores["breakdown"].iloc[0]) == [{"rule": "Content path", "points": 30, "steps": 4, "of": 4}]
    reasons = rules_reason_table(scores)
    assert reasons["reason_1"].iloc[0] == "Completed all 4 steps of the content path, in order (+30 points)"
    partial = rules_reason_table(ruleset(points_per_step=5).score(LEADS, TIMELINE, AS_OF))
    assert partial["reason_1"].iloc[3] == "Completed 3 of 4 steps of the content path, in order (+15 points)"


def test_a_rules_file_round_trips_and_bad_scenarios_are_named():
    rules = ruleset(max_days_between_steps=30, points_per_step=5)
    again = RuleSet.from_dict(rules.to_dict())
    assert again.to_dict() == rules.to_dict()
    assert again.rules[0].steps[1].label == "page_view[blog]"
    assert rules.max_points("engagement") == 50
    assert rules.event_types == ["form_submit", "page_view", "webinar_attend", "download"]
    assert rules.event_attributes == ["form", "asset"] and rules.reads_every_attribute
    bad = [
        ({"steps": ["email_open"]}, "at least two events"),
        ({"steps": ["a", "b"], "max_days": 3}, "'max_days' is not a known key of a scenario"),
        ({"steps": ["a", "b[c"]}, "step 2: step 'b\\[c' is not 'event_type' or 'event_type\\[value\\]'"),
        ({"steps": ["a", {"where": {"page": "x"}}]}, "step 2: a scenario step needs 'event'"),
        ({"steps": ["a", "b"], "within_days": 0}, "'within_days' must be greater than 0"),
    ]
    for scenario, message in bad:
        with pytest.raises(ConfigError, match=message):
            RuleSet.from_dict({"rules": [{"name": "p", "scenario": scenario, "points": 1}]})
    with pytest.raises(ConfigError, match="has both 'event' and 'scenario'"):
        RuleSet.from_dict({"rules": [{"name": "p", "event": "x", "scenario": {"steps": ["a", "b"]}, "points": 1}]})


def test_a_step_type_no_event_has_is_warned():
    from leadml.rules.evaluate import RulesWarning

    rules = RuleSet.from_dict({"rules": [{"name": "Trial path", "scenario": {"steps": ["trial_signup", "demo_requst"]},
                                          "points": 10}, {"name": "Form", "event": "form_submit", "points": 1}]})  # fmt: skip
    timeline = events([("a", 3, ("trial_signup", {})), ("a", 2, ("demo_request", {})), ("a", 1, SUBSCRIBE)])
    with pytest.warns(
        RulesWarning, match=r"step 2 \(demo_requst\).*never gets past step 1; did you mean 'demo_request'"
    ):
        rules.score(LEADS, timeline, AS_OF)


kinds = st.sampled_from([SUBSCRIBE, BLOG, WEBINAR, CASE, ("email_open", {})])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-20, 120), kinds), max_size=14), st.lists(st.tuples(st.integers(-20, 120), kinds),
                                                                                max_size=6))  # fmt: skip
def test_events_at_or_after_as_of_change_nothing_and_more_steps_never_lower(rows, later):
    rules = ruleset(points_per_step=5, max_days_between_steps=30)
    timeline = events([("a", days, kind) for days, kind in rows] or [("z", 1, BLOG)])
    future = events([("a", -abs(days), kind) for days, kind in later] or [("z", 1, BLOG)])
    before = steps_done(rules, timeline)["a"]
    assert steps_done(rules, pd.concat([timeline, future], ignore_index=True))["a"] == before
    # the same events read from the whole path's rule with no gap limit reach at least as far
    unlimited = steps_done(ruleset(points_per_step=5), timeline)["a"]
    assert (unlimited[1] or 0) >= (before[1] or 0)


def test_the_path_report_counts_steps_days_and_conversion_by_hand():
    from leadml.rules.paths import path_report

    rule = ruleset().rules[0]
    won = pd.Series({"a": True, "d": True, "g": False})
    report = path_report(rule, LEADS, TIMELINE, AS_OF, won).set_index("step")
    assert report.index.tolist() == ["none", "form_submit{form: newsletter}", "page_view[blog]", "webinar_attend",
                                     "download{asset: case_study}"]  # fmt: skip
    # done: a 4, b 2 (out of order), c 4 (slow but no limit), d 3 (the last step after as_of), e 3, f 4, g 0
    assert report["reached"].tolist() == [7, 6, 6, 5, 3]
    assert report["stopped_here"].tolist() == [1, 0, 1, 2, 3]
    # earliest paths: subscribe -> blog 10, 20, 10, 10, 1 (e: the blog at the same instant does not count), 10 days
    assert report["median_days"].iloc[2] == 10.0
    assert report["median_days"].iloc[3] == 24.0  # blog -> webinar: 10, 50, 10, 24, 46
    assert report["median_days"].iloc[4] == 10.0  # webinar -> case study: 10, 10, 1
    assert report["of_previous"].iloc[3] == pytest.approx(5 / 6)
    assert report["converted"].tolist() == [0, 0, 0, 1, 1] and report["conversion"].iloc[4] == pytest.approx(1 / 3)
    # with a limit of 30 days between steps c stops at the blog and f too (46 days to the webinar)
    limited = path_report(ruleset(max_days_between_steps=30).rules[0], LEADS, TIMELINE, AS_OF)
    assert limited["stopped_here"].tolist() == [1, 0, 3, 2, 1] and limited["converted"].isna().all()


def test_leadml_funnel_shows_where_the_simulated_leads_drop_off_the_seed_path(tmp_path, capsys):
    import yaml

    from leadml.cli.app import main
    from leadml.core.config import load_pipeline
    from leadml.data.sources import load_pipeline_data
    from leadml.rules.paths import path_report

    seed_file = REPO / "pipelines" / "rules" / "seed_points.yaml"
    seed = RuleSet.load(seed_file)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(yaml.safe_dump({"name": "paths", "data": {"simulator": {"leads": 2000, "seed": 3}},
                                        "rules": str(seed_file)}))  # fmt: skip
    out = tmp_path / "funnel.html"
    assert main(["funnel", str(pipeline), "--out", str(out), "--as-of", "2026-05-01"]) == 0, capsys.readouterr().err
    page = out.read_text()
    assert '<h2 id="paths">Paths</h2>' in page and "<h3>Content path</h3>" in page
    config = load_pipeline(pipeline)
    data = load_pipeline_data(config.data)
    rule = next(r for r in seed.rules if r.is_scenario)
    report = path_report(rule, data.leads, data.events, pd.Timestamp("2026-05-01", tz="UTC"))
    reached = report["reached"].tolist()
    assert reached == sorted(reached, reverse=True) and reached[0] > reached[-1] > 0  # leads drop off, some finish
    for count in reached:
        assert f"<td>{count:,}</td>" in page or f">{count:,}<" in page
