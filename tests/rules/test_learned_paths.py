"""Learned paths: exact support and conversion on hand-made leads, order, point in time, the rules they
write, agreement with the scenario engine, and `leadml rules learn` on a small simulated pipeline."""

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from leadml.features.timeline.engine import EventTimeline
from leadml.rules.evaluate import step_mask
from leadml.rules.learned_paths import learn_paths
from leadml.rules.ruleset import RuleSet
from leadml.rules.schema import Step, parse_rule
from leadml.rules.timeline import path_progress

T0 = pd.Timestamp("2026-01-01", tz="UTC")
# (leads, their events as (type, day), converted): a then b converts at 50 %, b then a at 20 %,
# a alone or b alone at 3 of 33, c alone at 2 of 32. 163 leads, 33 converted.
GROUPS = [
    (20, [("a", 1), ("b", 2)], 1),
    (20, [("a", 1), ("b", 2)], 0),
    (5, [("b", 1), ("a", 2)], 1),
    (20, [("b", 1), ("a", 2)], 0),
    (3, [("a", 1)], 1),
    (30, [("a", 1)], 0),
    (3, [("b", 1)], 1),
    (30, [("b", 1)], 0),
    (2, [("c", 1)], 1),
    (30, [("c", 1)], 0),
]


def _day(days: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=days)


def hand_made(as_of_day: float = 30) -> tuple[pd.DataFrame, pd.DataFrame, list[list[str]]]:
    """Events and one snapshot per lead (as_of day 30); also each lead's group of event types."""
    events, snapshots, kinds = [], [], []
    for count, steps, converted in GROUPS:
        for _ in range(count):
            lead = f"L{len(snapshots):03d}"
            events += [{"lead_id": lead, "timestamp": _day(day), "event_type": kind} for kind, day in steps]
            snapshots.append({"lead_id": lead, "as_of": _day(as_of_day), "converted": converted})
            kinds.append([kind for kind, _ in steps])
    return pd.DataFrame(events), pd.DataFrame(snapshots), kinds


def _row(candidates: pd.DataFrame, path: str) -> pd.Series:
    rows = candidates.loc[candidates["path"] == path]
    assert len(rows) == 1, f"{path} not among {candidates['path'].tolist()}"
    return rows.iloc[0]


def test_support_and_conversion_are_exact_and_order_matters():
    events, snapshots, _ = hand_made()
    found = learn_paths(snapshots, events, min_leads=10)
    ab, ba = _row(found.candidates, "a -> b"), _row(found.candidates, "b -> a")
    assert (ab["snapshots"], ab["leads"], ba["snapshots"], ba["leads"]) == (40, 40, 25, 25)
    assert ab["conversion_with"] == pytest.approx(20 / 40)
    assert ab["conversion_without"] == pytest.approx(13 / 123)  # 33 - 20 converted among 163 - 40
    assert ab["lift"] == pytest.approx((20 / 40) / (13 / 123))
    assert ba["conversion_with"] == pytest.approx(5 / 25)
    assert ba["conversion_without"] == pytest.approx(28 / 138)
    # Katz interval with 0.5 added to each cell, around the rate ratio
    log_rr = math.log(20.5 / 41) - math.log(13.5 / 124)
    se = math.sqrt(1 / 20.5 - 1 / 41 + 1 / 13.5 - 1 / 124)
    assert ab["lift_low"] == pytest.approx(math.exp(log_rr - 1.959964 * se), rel=1e-6)
    assert ab["lift_high"] == pytest.approx(math.exp(log_rr + 1.959964 * se), rel=1e-6)
    assert ba["lift_low"] < 1 < ab["lift_low"]
    # c was done alone: no path through it was completed, so none is listed
    assert not found.candidates["path"].str.contains("c").any()
    assert found.chosen["path"].tolist() == ["a -> b"]
    assert found.chosen["steps"].tolist() == [("a", "b")]


def test_the_rule_written_parses_and_scores_the_completed_leads_only():
    events, snapshots, kinds = hand_made()
    found = learn_paths(snapshots, events, min_leads=10)
    assert len(found.rules) == 1
    rule = found.rules[0]
    # points: the log odds ratio (0.5 added to each cell) at 20 points per doubling of the odds
    odds_ratio = (20.5 * 110.5) / (20.5 * 13.5)
    assert rule["points"] == round(math.log(odds_ratio) * 20 / math.log(2)) == 61
    assert rule["name"] == "Path: a -> b" and rule["scenario"] == {"steps": ["a", "b"]}
    assert "40 leads (40 snapshots)" in rule["description"] and "50.0% vs 10.6%" in rule["description"]
    parsed = parse_rule(rule, 0, "learned")
    assert parsed.is_scenario and [step.event for step in parsed.steps] == ["a", "b"]
    scores = RuleSet.from_dict({"name": "paths", "rules": found.rules}).score_snapshots(
        snapshots[["lead_id", "as_of"]], None, events
    )
    did = np.array([k == ["a", "b"] for k in kinds])
    assert scores["points"].tolist() == np.where(did, 61.0, 0.0).tolist()


def test_events_at_or_after_as_of_do_not_count():
    events, snapshots, kinds = hand_made()
    alone = [lead for lead, k in zip(snapshots["lead_id"], kinds, strict=True) if k == ["a"]]
    later = pd.DataFrame({
        "lead_id": alone * 2, "timestamp": [_day(30)] * len(alone) + [_day(45)] * len(alone),
        "event_type": "b",
    })  # fmt: skip
    found = learn_paths(snapshots, pd.concat([events, later], ignore_index=True), min_leads=10)
    ab = _row(found.candidates, "a -> b")
    assert (ab["snapshots"], ab["conversion_with"], ab["conversion_without"]) == (40, 20 / 40, 13 / 123)
    # as_of on day 2, when the second steps happen: no path is done yet
    early = learn_paths(hand_made(as_of_day=2)[1], events, min_leads=10)
    assert early.chosen.empty and early.rules == []
    assert early.candidates.empty or (early.candidates["snapshots"] == 0).all()


def test_a_lead_with_several_snapshots_counts_once():
    events, snapshots, kinds = hand_made()
    # a second snapshot on day 1.5, between the a and the b of the a -> b leads: not done there yet
    both = pd.concat([snapshots, snapshots.assign(as_of=_day(1.5))], ignore_index=True)
    ab = _row(learn_paths(both, events, min_leads=10).candidates, "a -> b")
    assert (ab["snapshots"], ab["leads"]) == (40, 40)
    # each snapshot weighs 1/2: 20 lead-equivalents completed, 10 converted; 143 did not, 23 converted
    assert ab["conversion_with"] == pytest.approx(10 / 20)
    assert ab["conversion_without"] == pytest.approx(23 / 143)


def test_a_triple_is_kept_only_when_its_third_step_adds_to_its_pair():
    events, snapshots, kinds = hand_made()
    ab = snapshots.loc[[k == ["a", "b"] for k in kinds]]
    won, lost = ab.loc[ab["converted"] == 1, "lead_id"], ab.loc[ab["converted"] == 0, "lead_id"]
    extra = pd.DataFrame({
        # c after a -> b for 10 leads that converted and 10 that did not: adds nothing
        "lead_id": [*won[:10], *lost[:10], *won[:15]],
        "timestamp": [_day(3)] * 20 + [_day(4)] * 15,
        # d after a -> b for 15 leads, all converted: adds a lot
        "event_type": ["c"] * 20 + ["d"] * 15,
    })  # fmt: skip
    found = learn_paths(snapshots, pd.concat([events, extra], ignore_index=True), min_leads=10)
    paths = set(found.candidates["path"])
    assert "a -> b -> d" in paths and "a -> b -> c" not in paths
    abd = _row(found.candidates, "a -> b -> d")
    assert (abd["leads"], abd["conversion_with"], abd["conversion_without"]) == (15, 1.0, 18 / 148)


def test_same_data_in_another_order_gives_the_same_paths():
    events, snapshots, _ = hand_made()
    extra = pd.DataFrame({"lead_id": snapshots["lead_id"][::3], "timestamp": _day(5), "event_type": "d"})
    events = pd.concat([events, extra], ignore_index=True)
    one = learn_paths(snapshots, events, min_leads=5)
    other = learn_paths(snapshots.sample(frac=1, random_state=1), events.sample(frac=1, random_state=2), min_leads=5)
    pd.testing.assert_frame_equal(one.candidates, other.candidates)
    assert one.rules == other.rules
    # ties are broken by name
    ties = one.candidates.loc[one.candidates.duplicated("lift_low", keep=False)]
    for _, group in ties.groupby("lift_low"):
        assert group["path"].tolist() == sorted(group["path"])


def test_completion_agrees_with_the_scenario_engine():
    """Every pair and triple counted as done is exactly what ``path_progress`` walks (shared
    timestamps, several snapshots per lead, events after as_of)."""
    rng = np.random.default_rng(5)
    n_leads, n_events = 300, 3000
    leads = np.array([f"L{i:03d}" for i in range(n_leads)])
    events = pd.DataFrame({
        "lead_id": rng.choice(leads, n_events),
        "timestamp": T0 + pd.to_timedelta(rng.integers(0, 40, n_events), unit="D"),  # whole days: ties
        "event_type": rng.choice(["a", "b", "c", "d"], n_events, p=[0.4, 0.3, 0.2, 0.1]),
    })  # fmt: skip
    snapshots = pd.DataFrame({
        "lead_id": np.repeat(leads, 2), "as_of": T0 + pd.to_timedelta(rng.integers(1, 45, 2 * n_leads), unit="D"),
    })  # fmt: skip
    timeline = EventTimeline.build(events, snapshots)

    def walked(path):
        masks = [step_mask(Step(event=kind), timeline) for kind in path]
        return path_progress(timeline, masks, None, None) == len(path)

    snapshots["converted"] = walked(("d", "a", "b")).astype(float)  # a triple that lifts conversion
    found = learn_paths(snapshots, events, min_leads=1, extend=12)
    assert (found.candidates["length"] == 2).sum() == 12 and (found.candidates["length"] == 3).sum() >= 1
    for row in found.candidates.itertuples(index=False):
        done = walked(row.steps)
        assert row.snapshots == done.sum(), row.path
        assert row.leads == snapshots.loc[done, "lead_id"].nunique(), row.path


@pytest.fixture(scope="module")
def small_pipeline(tmp_path_factory):
    folder = tmp_path_factory.mktemp("learned-paths")
    path = folder / "small.yaml"
    config = {
        "name": "small", "data": {"simulator": {"leads": 1500, "seed": 3}}, "snapshots": {"horizon_days": 100},
        "features": {"attribute_counts": {"page_view": {"page": ["pricing"]}}},
    }  # fmt: skip
    path.write_text(yaml.safe_dump(config))
    return path


def test_rules_learn_writes_paths_after_the_points_and_the_file_loads(small_pipeline, tmp_path, capsys):
    from leadml.cli.app import main
    from leadml.core.config import load_pipeline
    from leadml.data.sources import load_pipeline_data

    out = tmp_path / "learned.yaml"
    assert main(["rules", "learn", small_pipeline, "--out", out]) == 0
    printed = capsys.readouterr().out
    assert "learned paths" in printed and "lift [95 % interval]" in printed
    raw = yaml.safe_load(out.read_text())
    kinds = ["scenario" in rule for rule in raw["rules"]]
    assert any(kinds) and not kinds[0] and kinds == sorted(kinds)  # points first, then the paths
    paths = [rule for rule in raw["rules"] if "scenario" in rule]
    assert all(rule["name"].startswith("Path: ") and rule["points"] > 0 for rule in paths)
    assert all(2 <= len(rule["scenario"]["steps"]) <= 3 and "lift" in rule["description"] for rule in paths)
    ruleset = RuleSet.load(out)
    data = load_pipeline_data(load_pipeline(small_pipeline).data)
    scores = ruleset.score(data.leads, data.events, as_of=data.events["timestamp"].max())
    assert len(scores) == len(data.leads) and scores["points"].notna().all()
    without = tmp_path / "points-only.yaml"
    assert main(["rules", "learn", small_pipeline, "--out", without, "--no-paths"]) == 0
    plain = yaml.safe_load(without.read_text())["rules"]
    assert not any("scenario" in rule for rule in plain)
    assert plain == [rule for rule in raw["rules"] if "scenario" not in rule]
