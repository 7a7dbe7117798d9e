"""The score history: one file per day, re-runs replace, leads over time, warming up and stuck."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadml.core.config import TierConfig
from leadml.core.errors import LeadDataError
from leadml.explain.trends import lead_history, stuck_mqls, warming_up
from leadml.jobs.decisions import tier_actions
from leadml.jobs.history import load_history, record_scores


def run(day: str, scores: dict[str, int], mql_from: int = 60, hour: int = 0) -> pd.DataFrame:
    """One scoring run of hand-made scores (``is_mql`` from ``mql_from`` points)."""
    ids = list(scores)
    points = np.array([scores[i] for i in ids])
    return pd.DataFrame({
        "lead_id": ids, "as_of": pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=hour),
        "probability": points / 100, "score": points.astype(np.int16),
        "tier": np.where(points >= mql_from, "MQL", "nurture"), "is_mql": points >= mql_from,
        "reason_1": "a reason",
    })  # fmt: skip


def test_a_re_run_day_replaces_its_partition_and_the_history_is_ordered_by_as_of(tmp_path):
    store = tmp_path / "history"
    record_scores(run("2026-06-03", {"L1": 10, "L2": 70}), store)
    record_scores(run("2026-06-01", {"L1": 5, "L2": 65}), store)
    record_scores(run("2026-06-03", {"L1": 12, "L2": 71}, hour=9), store)  # the same day again
    record_scores(run("2026-06-03", {"L1": 12, "L2": 71}, hour=9), store)
    history = load_history(store)
    assert len(history) == 4
    assert history["lead_id"].tolist() == ["L1", "L1", "L2", "L2"]
    assert history.loc[history["lead_id"] == "L1", "score"].tolist() == [5, 12]
    assert history["as_of"].is_monotonic_increasing is False  # ordered by lead, then as_of
    assert history.groupby("lead_id")["as_of"].apply(lambda s: s.is_monotonic_increasing).all()
    assert sorted(p.parent.name for p in store.glob("*/scores.parquet")) == [
        "as_of_date=2026-06-01",
        "as_of_date=2026-06-03",
    ]
    assert not list(store.rglob("*.tmp"))
    assert load_history(store, lead_ids=["L2"], since="2026-06-02")["score"].tolist() == [71]


def test_scores_of_two_days_in_one_run_are_refused(tmp_path):
    both = pd.concat([run("2026-06-01", {"L1": 5}), run("2026-06-02", {"L2": 6})])
    with pytest.raises(LeadDataError, match="one as_of day"):
        record_scores(both, tmp_path / "h")
    with pytest.raises(LeadDataError, match="no score history"):
        load_history(tmp_path / "nothing")


@pytest.fixture
def history(tmp_path) -> pd.DataFrame:
    """Four leads over three weeks: L1 warms up fast, L2 slowly, L3 is a stuck MQL, L4 cools down."""
    store = tmp_path / "h"
    days = {
        "2026-06-01": {"L1": 10, "L2": 20, "L3": 70, "L4": 65},
        "2026-06-08": {"L1": 15, "L2": 25, "L3": 71, "L4": 62},
        "2026-06-15": {"L1": 50, "L2": 30, "L3": 70, "L4": 40, "L5": 90},
        "2026-06-16": {"L1": 62, "L2": 33, "L3": 69, "L4": 38, "L5": 91},
    }  # fmt: skip
    for day, scores in days.items():
        record_scores(run(day, scores), store)
    return load_history(store)


def test_warming_up_lists_the_biggest_rises_of_the_week_and_leaves_out_new_leads(history):
    rising = warming_up(history, days=7)
    assert rising["lead_id"].tolist() == ["L1", "L2"]  # L5 is new this week; L3 and L4 did not rise
    assert rising["change"].tolist() == [62 - 15, 33 - 25]
    assert rising["as_of_before"].tolist() == [pd.Timestamp("2026-06-08", tz="UTC")] * 2
    assert warming_up(history, days=7, top=1)["lead_id"].tolist() == ["L1"]
    assert warming_up(history, "2026-06-08", days=7)["lead_id"].tolist() == ["L1", "L2", "L3"]  # +5, +5, +1


def test_stuck_mqls_are_mqls_for_more_than_the_days_whose_score_did_not_rise(history):
    stuck = stuck_mqls(history, days=14, points=2)
    assert stuck["lead_id"].tolist() == ["L3"]  # L4 left the MQLs, L5 is new, L1 just arrived
    assert stuck["mql_since"].tolist() == [pd.Timestamp("2026-06-01", tz="UTC")]
    assert stuck["days_waiting"].tolist() == [15.0]
    assert stuck[["low", "high", "rise"]].values.tolist() == [[69, 71, 1]]  # 70 on 06-01, at most 71 since
    assert stuck["measure"].tolist() == ["score"]  # no engagement sub-score in this history
    assert stuck_mqls(history, days=14, points=0).empty  # L3 rose by 1
    assert stuck_mqls(history, days=15, points=2).empty  # waiting 15 days is not more than 15


def test_a_lead_s_history_has_its_changes_and_the_events_between_runs(history):
    events = pd.DataFrame({
        "lead_id": ["L1", "L1", "L1", "L2", "L1"],
        "timestamp": pd.to_datetime(["2026-06-05", "2026-06-09", "2026-06-14T23:59", "2026-06-10", "2026-06-15"], utc=True, format="ISO8601"),
        "event_type": ["email_open", "page_view", "page_view", "page_view", "demo_request"],
    })  # fmt: skip
    rows = lead_history(history, "L1", events)
    assert rows["score"].tolist() == [10, 15, 50, 62]
    assert rows["change"].tolist()[1:] == [5, 35, 12]
    assert np.isnan(rows["week_change"].iloc[0])
    assert rows["week_change"].tolist()[1:] == [5, 35, 47]  # 06-16 against 06-08, the last run >= 7 days before
    assert rows["events"].tolist() == ["", "1 email_open", "2 page_view", "1 demo_request"]
    with pytest.raises(LeadDataError, match="no scores of lead 'L9'"):
        lead_history(history, "L9")


def test_due_at_is_as_of_plus_the_tier_s_deadline_and_the_pipeline_s_action_wins():
    as_of = pd.Timestamp("2026-06-01T09:30", tz="UTC")
    pipeline = [
        TierConfig(name="MQL", min="mql", action="Call", within_hours=24),
        TierConfig(name="nurture", min=0.1, action="Send the case-study series", within_hours=1.5),
    ]
    model = [
        TierConfig(name="nurture", min=0.1, action="old action"),
        TierConfig(name="unqualified", action="Newsletter"),
    ]
    actions = tier_actions(["MQL", "nurture", "unqualified", "MQL"], as_of, pipeline, model)
    assert actions["next_action"].tolist() == ["Call", "Send the case-study series", "Newsletter", "Call"]
    assert actions["due_at"].tolist()[:2] == [
        pd.Timestamp("2026-06-02T09:30", tz="UTC"),
        pd.Timestamp("2026-06-01T11:00", tz="UTC"),
    ]
    assert pd.isna(actions["due_at"].iloc[2])
