"""The MQL policy: thresholds by F1, capacity, precision or probability; no MQL; tiers; the 0-100 score."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadml.core.config import MQLConfig, TierConfig
from leadml.core.errors import ConfigError
from leadml.modeling.policy import (
    NOBODY,
    NightlyScores,
    apply_policy,
    assign_tiers,
    f1_threshold,
    find_threshold,
    precision_threshold,
    score_0_100,
    span_weeks,
    top_k_threshold,
)


def days(n: int, start: str = "2026-03-02") -> pd.Series:
    return pd.Series(pd.date_range(start, periods=n, freq="D", tz="UTC"))


def test_capacity_threshold_by_hand():
    # 14 daily snapshots = 2 weeks; capacity 3 a week -> at most 6 MQLs
    p = np.array([0.50, 0.05, 0.31, 0.12, 0.44, 0.08, 0.27, 0.02, 0.39, 0.15, 0.22, 0.03, 0.18, 0.09])
    found = find_threshold(p, MQLConfig(policy="capacity", capacity_per_week=3), as_of=days(14))
    assert span_weeks(days(14)) == 2.0
    assert found.threshold == 0.22  # the 6th highest: .50 .44 .39 .31 .27 .22
    assert found.mql_count == 6 and found.per_week == 3.0 and found.weeks == 2.0
    assert found.share == pytest.approx(6 / 14)
    assert "at most 6 of 14" in found.note


def test_capacity_with_a_tie_at_the_cut_stays_within_capacity():
    # 7 daily snapshots = 1 week, capacity 3: the 3rd and 4th are tied at 0.4, so only 2 can go
    p = np.array([0.9, 0.6, 0.4, 0.4, 0.1, 0.05, 0.2])
    found = find_threshold(p, MQLConfig(policy="capacity", capacity_per_week=3), as_of=days(7))
    assert found.threshold == 0.6 and found.mql_count == 2
    assert top_k_threshold(p, 4) == 0.4 and top_k_threshold(p, 0) == NOBODY
    assert top_k_threshold(p, 100) == 0.05


def test_capacity_span_counts_the_last_day_and_rounds_capacity_down():
    # 10 days = 10/7 weeks; 5 a week -> floor(7.14) = 7
    p = np.linspace(0.01, 0.10, 10)
    found = find_threshold(p, MQLConfig(policy="capacity", capacity_per_week=5), as_of=days(10))
    assert found.mql_count == 7 and found.threshold == pytest.approx(0.04)
    assert found.per_week == pytest.approx(7 / (10 / 7))


def test_capacity_on_flat_data_takes_the_batch_as_one_week():
    p = np.array([0.3, 0.1, 0.8, 0.5, 0.2])
    config = MQLConfig(policy="capacity", capacity_per_week=2)
    flat = find_threshold(p, config, as_of=pd.Series([pd.NaT] * 5))
    assert flat.threshold == 0.5 and flat.mql_count == 2
    assert flat.weeks is None and flat.per_week is None and "batch taken as 1 week" in flat.note
    assert find_threshold(p, config, batch_weeks=2.0).threshold == 0.2


def test_precision_threshold_by_hand():
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    y = np.array([1, 1, 0, 1, 0])
    # precision from the top: .9 -> 1, .8 -> 1, .7 -> 2/3, .6 -> 3/4, .5 -> 3/5
    assert precision_threshold(p, y, 0.7) == (0.6, True)
    assert precision_threshold(p, y, 0.75) == (0.6, True)
    assert precision_threshold(p, y, 0.76) == (0.8, True)
    assert precision_threshold(p, y, 0.6) == (0.5, True)
    found = find_threshold(p, MQLConfig(policy="precision", target_precision=0.7), y=y)
    assert found.threshold == 0.6 and found.precision == 0.75 and found.mql_count == 4


def test_precision_target_out_of_reach_takes_the_best_precision():
    p = np.array([0.9, 0.8, 0.7, 0.6])
    y = np.array([0, 1, 1, 0])
    threshold, reached = precision_threshold(p, y, 0.9)
    assert (threshold, reached) == (0.7, False)  # 2/3 is the best
    found = find_threshold(p, MQLConfig(policy="precision", target_precision=0.9), y=y)
    assert "not reached" in found.note


def test_fixed_probability_threshold():
    p = np.array([0.1, 0.3, 0.29999, 0.7])
    found = find_threshold(p, MQLConfig(policy="probability", probability=0.3), as_of=days(4))
    assert found.threshold == 0.3 and found.mql_count == 2
    assert found.per_week == pytest.approx(2 / (4 / 7))


def test_f1_threshold_by_hand():
    # 3 conversions; from the top, t: MQLs, TP, F1 = 2 TP / (MQLs + 3):
    # .9: 1, 1, 2/4 | .8: 2, 1, 2/5 | .7: 3, 2, 4/6 | .6: 4, 3, 6/7 | .5: 5, 3, 6/8 | .4: 6, 3, 6/9 -> .6
    p = np.array([0.5, 0.9, 0.6, 0.4, 0.7, 0.8])  # in no particular order
    y = np.array([0, 1, 1, 0, 1, 0])
    assert f1_threshold(p, y) == (0.6, 6 / 7)
    found = find_threshold(p, MQLConfig(policy="f1"), as_of=days(6), y=y)
    assert (found.threshold, found.policy, found.mql_count, found.share) == (0.6, "f1", 4, 4 / 6)
    assert (found.precision, found.recall, found.f1) == (3 / 4, 1.0, 6 / 7)
    assert found.note == "f1: the best F1 (0.857) of 6 distinct probabilities" and found.advice == ""
    assert MQLConfig().policy == "f1" and find_threshold(p, MQLConfig(), y=y).threshold == 0.6


def test_f1_ties_go_to_the_higher_threshold():
    # 2 conversions: .9 -> 2*1/(1+2) = 2/3, .8 -> 2/4, .7 -> 2/5, .6 -> 2*2/(4+2) = 2/3: .9 and .6 tie
    p, y = np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 0, 1])
    assert f1_threshold(p, y) == (0.9, 2 / 3)
    # tied probabilities count together: .8 -> 0, .5 -> 2*2/(3+2) = 4/5, .2 -> 2*2/(4+2) = 2/3
    assert f1_threshold(np.array([0.5, 0.8, 0.2, 0.5]), np.array([1, 0, 0, 1])) == (0.5, 0.8)
    # no conversion: F1 is 0 at every threshold, so the highest is kept
    none = find_threshold(p, MQLConfig(policy="f1"), y=np.zeros(4))
    assert none.threshold == 0.9 and none.mql_count == 1 and none.f1 == 0.0 and none.recall is None
    assert "no conversion" in none.note
    with pytest.raises(ValueError, match="the f1 policy needs labels"):
        find_threshold(p, MQLConfig(policy="f1"))


def test_a_fixed_probability_above_every_probability_makes_no_mql_and_says_what_to_do():
    p = np.array([0.1, 0.4, 0.25, 0.05])
    found = find_threshold(p, MQLConfig(probability=0.9), y=np.array([0, 1, 0, 0]))  # policy: probability
    assert (found.policy, found.threshold, found.mql_count, found.share) == ("probability", 0.9, 0, 0.0)
    assert found.precision is None and found.recall == 0.0 and found.f1 == 0.0
    assert found.advice == (
        "mql.policy probability puts the threshold at 0.9, above the highest probability 0.4; lower "
        "mql.probability to 0.4 or less, or use mql.policy: f1 (or capacity)"
    )
    # the advised value is cut, never rounded up past the highest probability
    odd = find_threshold(np.array([0.12367, 0.05]), MQLConfig(probability=0.5))
    assert "above the highest probability 0.1237; lower mql.probability to 0.123 or less" in odd.advice
    assert find_threshold(p, MQLConfig(probability=0.4)).advice == ""


def test_a_capacity_below_one_lead_over_the_span_makes_no_mql_and_says_what_to_do():
    # 2 days = 2/7 weeks; 1 a week -> floor(0.29) = 0 MQLs; 1 lead needs ceil(1 / (2/7)) = ceil(3.5) = 4 a week
    p = np.array([0.3, 0.2])
    found = find_threshold(p, MQLConfig(policy="capacity", capacity_per_week=1), as_of=days(2), y=np.array([1, 0]))
    assert (found.threshold, found.mql_count, found.per_week, found.precision) == (NOBODY, 0, 0.0, None)
    assert found.note == "capacity: at most 0 of 2 snapshots (1 a week over 0.29 weeks)"
    assert found.advice == (
        "mql.policy capacity allows 0 MQLs (1 a week over 0.29 weeks, rounded down) and the highest probability "
        "is 0.3, so no threshold is reachable; raise mql.capacity_per_week to at least 4, or use mql.policy: f1"
    )
    advised = find_threshold(p, MQLConfig(policy="capacity", capacity_per_week=4), as_of=days(2))
    assert advised.mql_count == 1 and advised.advice == ""


def test_a_capacity_below_the_snapshots_tied_at_the_top_takes_the_tied_group_and_says_so():
    # one week, 2 a week, but 3 snapshots share the top probability (a calibration step): all 3 go
    p = np.array([0.5, 0.1, 0.5, 0.2, 0.5, 0.05, 0.3])
    found = find_threshold(p, MQLConfig(policy="capacity", capacity_per_week=2), as_of=days(7))
    assert found.threshold == 0.5 and found.mql_count == 3 and found.advice == ""
    assert found.note == (
        "capacity: 3 of 7 snapshots share the highest probability 0.5, more than the 2 allowed "
        "(2 a week over 1.00 weeks); all of them are MQL (capacity exceeded by 1)"
    )
    assert find_threshold(p, MQLConfig(policy="capacity", capacity_per_week=3), as_of=days(7)).mql_count == 3
    same = find_threshold(np.full(7, 0.2), MQLConfig(policy="capacity", capacity_per_week=2), as_of=days(7))
    assert same.advice.endswith("but all 7 snapshots share the probability 0.2: the model tells none of them "
                                "apart (did it learn from too few conversions?)")  # fmt: skip


def test_default_tiers_at_their_boundaries():
    tiers = MQLConfig().tiers  # A >= .5, B >= .25, C >= .1, D
    p = np.array([0.5, 0.4999, 0.25, 0.2499, 0.1, 0.0999, 0.0, 1.0])
    assert list(assign_tiers(p, tiers)) == ["A", "B", "B", "C", "C", "D", "D", "A"]
    assert list(assign_tiers(p, tiers).categories) == ["A", "B", "C", "D"]


def test_named_tiers_in_any_order_and_without_a_catch_all():
    tiers = [TierConfig(name="nurture", min=0.1), TierConfig(name="MQL", min=0.3)]
    assert list(assign_tiers(np.array([0.35, 0.2, 0.05]), tiers)) == ["MQL", "nurture", "nurture"]
    with pytest.raises(ConfigError, match="only one tier may leave out 'min'.*'x', 'y'"):
        assign_tiers(np.array([0.1]), [TierConfig(name="x"), TierConfig(name="y")])
    with pytest.raises(ConfigError, match="tier names must be unique"):
        assign_tiers(np.array([0.1]), [TierConfig(name="x", min=0.2), TierConfig(name="x")])


def test_score_is_the_probability_in_percent_rounded_half_up():
    p = np.array([0.0, 0.004, 0.005, 0.0149, 0.125, 0.145, 0.5, 0.994, 0.995, 1.0])
    assert score_0_100(p).tolist() == [0, 0, 1, 1, 13, 15, 50, 99, 100, 100]
    assert score_0_100(p).dtype == np.int16


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=50), st.floats(0.01, 0.99))
def test_policy_output_is_consistent(probabilities, threshold):
    p = np.array(probabilities)
    scores = apply_policy(p, threshold, MQLConfig().tiers)
    assert list(scores.columns) == ["probability", "score", "tier", "is_mql"]
    assert scores["score"].between(0, 100).all()
    assert (np.abs(scores["score"] - 100 * p) <= 0.5 + 1e-9).all()
    assert (scores["is_mql"] == (p >= threshold)).all()
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(scores["score"].to_numpy()[order]) >= 0)  # never lower for a higher p
    assert np.all(np.diff(scores["tier"].cat.codes.to_numpy()[order]) <= 0)  # A (code 0) is the top


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([0.1, 0.2, 0.3, 0.4, 0.5]), min_size=1, max_size=40), st.integers(0, 45))
def test_top_k_threshold_never_exceeds_k_and_is_the_lowest_such(values, k):
    p = np.array(values)
    t = top_k_threshold(p, k)
    assert (p >= t).sum() <= k
    lower = p[p < t]
    if len(lower):
        assert (p >= lower.max()).sum() > k


# -- capacity in new MQLs a week, from the replayed nightly runs ----------------------------------------


def _nights(rows: list[tuple[str, str, float]], created: dict[str, str]) -> NightlyScores:
    frame = pd.DataFrame(rows, columns=["lead_id", "as_of", "p"])
    as_of = pd.to_datetime(frame["as_of"], utc=True)
    return NightlyScores(
        p=frame["p"].to_numpy(), lead_id=frame["lead_id"].to_numpy(), as_of=as_of,
        created_at=pd.to_datetime(frame["lead_id"].map(created), utc=True, format="ISO8601"),
    )  # fmt: skip


# a: above 0.5 all along since before the period (handed over before: no spell); b: crosses 0.5 on
# night 3, drops on night 4, crosses again on night 6 (two spells); c: new on night 2 at 0.6 (a spell);
# d: new, never above 0.3
NIGHTS = _nights(
    [("a", f"2026-03-0{d}", 0.8) for d in range(1, 8)]
    + [("b", f"2026-03-0{d}", p) for d, p in zip(range(1, 8), [0.2, 0.3, 0.55, 0.4, 0.45, 0.7, 0.7], strict=True)]
    + [("c", f"2026-03-0{d}", 0.6) for d in range(2, 8)]
    + [("d", f"2026-03-0{d}", 0.1) for d in range(5, 8)],
    {"a": "2026-01-01", "b": "2026-02-01", "c": "2026-03-01 12:00", "d": "2026-03-04 08:00"},
)


def test_spells_started_by_hand():
    # 0.5: b twice, c once; a was above all along -> 3.  0.65: b once (0.45 -> 0.7) -> 1.  0.05: c and d new -> 2
    # 0.85: nobody.  0.4: b (0.3 -> 0.55) and c -> 2 (b's 0.4 -> 0.45 stays above)
    assert NIGHTS.spells(np.array([0.05, 0.4, 0.5, 0.65, 0.85])).tolist() == [2, 2, 3, 1, 0]
    assert NIGHTS.weeks == 1.0


def test_capacity_from_nightly_runs_counts_spells_not_snapshots():
    config = MQLConfig(policy="capacity", capacity_per_week=2)
    # the validation snapshots are irrelevant to the threshold here, only to its counts
    found = find_threshold(np.array([0.1, 0.9]), config, as_of=days(7), nightly=NIGHTS)
    # scanning down: 0.8 (0), 0.7 (1), 0.6 (c: 1, b: 1 -> 2), 0.55 (b twice, c -> 3): stop at 0.6
    assert found.threshold == 0.6
    assert found.new_per_week == 2.0
    assert found.note == ("capacity: 2.0 new MQLs a week (at most 2) in nightly runs replayed over "
                          "1.0 weeks of the validation period")  # fmt: skip
    halved = NightlyScores(NIGHTS.p, NIGHTS.lead_id, NIGHTS.as_of, NIGHTS.created_at, fraction=0.5)
    assert halved.spells(np.array([0.5])).tolist() == [6.0]  # a half sample counts double
    assert find_threshold(np.array([0.1, 0.9]), config, as_of=days(7)).note.startswith("capacity: at most 2 of 2")
