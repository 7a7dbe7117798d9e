"""Snapshots and labels: policies, closing, censoring, and the time split's gap."""

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadml.core.errors import LeadDataError
from leadml.features.snapshots import (
    build_snapshots,
    lead_weights,
    pql_times,
    snapshot_phase,
    stratified_split,
    time_split,
    to_utc,
)

T = lambda s: pd.Timestamp(s, tz="UTC")  # noqa: E731


def _leads():
    return pd.DataFrame(
        {
            "lead_id": ["a", "b", "c", "d"],
            "created_at": pd.to_datetime(["2026-01-01", "2026-01-10", "2026-02-01", "2026-05-20"], utc=True),
        }
    )


def _outcomes():
    return pd.DataFrame(
        {
            "lead_id": ["a", "b", "c"],
            "outcome": np.array([1, 0, 1], dtype="int8"),
            # a wins 40 days in; b is lost on day 5 (before its day-7 snapshot); c wins 200 days in
            "closed_at": pd.to_datetime(["2026-02-10", "2026-01-15", "2026-08-20"], utc=True),
        }
    )


def test_days_after_creation_labels_closing_and_censoring():
    snapshots = build_snapshots(
        _leads(),
        _outcomes(),
        policy="days_after_creation",
        days_after_creation=7,
        horizon_days=90,
        data_end=T("2026-07-01"),
    )
    # b closed before its snapshot: not snapshotted; d's horizon ends after data_end: censored
    assert snapshots["lead_id"].tolist() == ["a", "c", "d"]
    assert snapshots["as_of"].tolist() == [T("2026-01-08"), T("2026-02-08"), T("2026-05-27")]
    labels = snapshots["converted"].tolist()
    assert labels[:2] == [1.0, 0.0]  # c won after its 90-day horizon: a negative at that snapshot
    assert np.isnan(labels[2])


def test_every_days_stops_when_the_lead_closes():
    snapshots = build_snapshots(
        _leads(), _outcomes(), policy="every_days", every_days=10, horizon_days=30, data_end=T("2026-04-01")
    )
    a = snapshots.loc[snapshots["lead_id"] == "a"]
    # a: created 01-01, first snapshot at its phase (145 hours), then every 10 days until it closed on 02-10
    assert snapshot_phase(["a"], 10).tolist() == [145]
    assert a["as_of"].tolist() == [T("2026-01-07 01:00"), T("2026-01-17 01:00"), T("2026-01-27 01:00"),
                                   T("2026-02-06 01:00")]  # fmt: skip
    assert a["converted"].tolist() == [0.0, 1.0, 1.0, 1.0]
    assert snapshots.loc[snapshots["lead_id"] == "b"].empty  # closed on day 5
    assert (snapshots["as_of"] <= T("2026-04-01")).all()


def test_fixed_as_of_keeps_leads_created_by_then_and_open():
    snapshots = build_snapshots(
        _leads(), _outcomes(), policy="fixed", as_of="2026-02-01", horizon_days=30, data_end=T("2026-12-31")
    )
    # b closed before 02-01; a still open (wins 02-10, inside the horizon); c created exactly at
    # as_of is included; d not yet created
    assert snapshots["lead_id"].tolist() == ["a", "c"]
    assert snapshots["converted"].tolist() == [1.0, 0.0]


def test_stage_label_uses_the_stage_time():
    outcomes = _outcomes().assign(sql_at=pd.to_datetime(["2026-01-20", None, None], utc=True))
    snapshots = build_snapshots(
        _leads(),
        outcomes,
        policy="days_after_creation",
        days_after_creation=7,
        horizon_days=30,
        data_end=T("2026-12-31"),
        stage="sql",
    )
    assert snapshots.set_index("lead_id")["converted"].to_dict() == {"a": 1.0, "c": 0.0, "d": 0.0}


def test_to_utc_date_means_midnight():
    assert to_utc("2026-03-01") == T("2026-03-01 00:00")
    assert to_utc(pd.Timestamp("2026-03-01 02:00", tz="Europe/Berlin")) == T("2026-03-01 01:00")


@pytest.mark.parametrize(
    ("value", "iso"),
    [
        ("07/01/2025", "2025-01-07 (day first) or 2025-07-01 (month first)"),
        ("1/2/2026 10:00", "2026-02-01 (day first) or 2026-01-02 (month first)"),
        (" 25.12.2025", "2025-12-25 (day first)"),
    ],
)
def test_to_utc_refuses_day_month_spellings(value, iso):
    message = f"as_of {value!r} does not say whether the day or the month comes first; use ISO 8601: {iso}"
    with pytest.raises(LeadDataError, match=f"^{re.escape(message)}$"):
        to_utc(value)
    assert to_utc("2025-01-07") == T("2025-01-07") and to_utc("2025-01-07 14:22") == T("2025-01-07 14:22")


@settings(max_examples=60, deadline=None)
@given(
    days=st.lists(st.integers(0, 400), min_size=5, max_size=60),
    labels=st.lists(st.sampled_from([0.0, 1.0, np.nan]), min_size=60, max_size=60),
    gap=st.integers(0, 120),
    test_fraction=st.floats(0.1, 0.5),
)
def test_no_test_snapshot_is_within_the_gap_of_a_training_one(days, labels, gap, test_fraction):
    snapshots = pd.DataFrame(
        {"as_of": T("2026-01-01") + pd.to_timedelta(days, unit="D"), "converted": labels[: len(days)]}
    )
    split = time_split(snapshots, test_fraction=test_fraction, gap_days=gap)
    assert set(split) <= {"train", "validation", "test", "gap", "censored"}
    assert (split[snapshots["converted"].isna()] == "censored").all()
    fitted = snapshots.loc[split.isin(["train", "validation"]), "as_of"]
    tested = snapshots.loc[split == "test", "as_of"]
    if len(fitted) and len(tested):
        assert tested.min() - fitted.max() >= pd.Timedelta(days=gap)
    train = snapshots.loc[split == "train", "as_of"]
    valid = snapshots.loc[split == "validation", "as_of"]
    if len(train) and len(valid):
        assert train.max() <= valid.min()


def test_stratified_split_is_seeded_and_stratified():
    labels = pd.Series([1.0] * 100 + [0.0] * 400)
    first = stratified_split(labels, seed=3)
    assert first.equals(stratified_split(labels, seed=3))
    assert not first.equals(stratified_split(labels, seed=4))
    test = labels[first == "test"]
    assert len(test) == 100 and test.sum() == 20


def test_labels_when_no_deal_was_won_yet():
    lost = _outcomes().assign(outcome=np.zeros(3, dtype="int8"))
    snapshots = build_snapshots(
        _leads(), lost, policy="fixed", as_of="2026-02-01", horizon_days=30, data_end=T("2026-12-31")
    )
    assert snapshots["lead_id"].tolist() == ["a", "c"]
    assert snapshots["converted"].tolist() == [0.0, 0.0]
    assert str(snapshots["as_of"].dtype) == "datetime64[ns, UTC]"


# -- the default policy: every step of the open life, capped, weighted ---------------------------


def test_every_days_spreads_a_long_life_over_max_per_lead_snapshots():
    leads = pd.DataFrame(
        {"lead_id": ["old", "young"], "created_at": pd.to_datetime(["2025-01-01", "2025-12-01"], utc=True)}
    )
    snapshots = build_snapshots(
        leads, None, policy="every_days", every_days=10, max_per_lead=5, horizon_days=10, data_end=T("2026-01-01")
    )
    assert snapshot_phase(["old", "young"], 10).tolist() == [8, 231]
    old = snapshots.loc[snapshots["lead_id"] == "old", "as_of"]
    # 365 days of life, first step at hour 8: 37 steps (hour 8, then every 240 hours); five, evenly spread
    hours = ((old - T("2025-01-01")) / pd.Timedelta(hours=1)).astype(int).tolist()
    assert hours == [8, 8 + 9 * 240, 8 + 18 * 240, 8 + 27 * 240, 8 + 36 * 240]
    young = snapshots.loc[snapshots["lead_id"] == "young", "as_of"]
    # 31 days of life from hour 231: 3 steps, all taken
    assert young.tolist() == [T("2025-12-10 15:00"), T("2025-12-20 15:00"), T("2025-12-30 15:00")]


@settings(max_examples=40, deadline=None)
@given(life=st.lists(st.integers(0, 800), min_size=1, max_size=20), every=st.integers(1, 60), cap=st.integers(1, 30))
def test_every_days_snapshots_stay_in_the_open_life_and_under_the_cap(life, every, cap):
    created = T("2024-01-01") + pd.to_timedelta(np.arange(len(life)) * 3, unit="D")
    leads = pd.DataFrame({"lead_id": [f"l{i}" for i in range(len(life))], "created_at": created})
    closed = created + pd.to_timedelta(life, unit="D")
    outcomes = pd.DataFrame({"lead_id": leads["lead_id"], "outcome": np.int8(0), "closed_at": closed})
    snapshots = build_snapshots(leads, outcomes, every_days=every, max_per_lead=cap, horizon_days=30,
                                data_end=T("2027-01-01"))  # fmt: skip
    per_lead = snapshots.groupby("lead_id").size()
    assert (per_lead <= cap).all()
    phases = snapshot_phase(leads["lead_id"], every)  # hours
    assert ((phases >= 1) & (phases <= 24 * every)).all()
    for i, days in enumerate(life):  # every step of a short life is taken; never after closing
        mine = snapshots.loc[snapshots["lead_id"] == f"l{i}", "as_of"]
        steps = (24 * days - phases[i]) // (24 * every) + 1 if 24 * days >= phases[i] else 0
        assert len(mine) == min(steps, cap)
        assert (mine <= closed[i]).all() and (mine > created[i]).all()
        assert mine.is_unique


def test_lead_weights_give_each_lead_one_share_per_split():
    frame = pd.DataFrame({"lead_id": ["a", "a", "a", "a", "b", "c", "c"]})
    split = pd.Series(["train", "train", "train", "test", "train", "test", "test"])
    weights = pd.Series(lead_weights(frame, split))
    train = split == "train"
    # train: a has 3 rows, b 1 -> raw 1/3 and 1; 4 rows over 2 leads -> scaled by 2
    assert weights[train].round(12).tolist() == [round(2 / 3, 12)] * 3 + [2.0]
    assert weights[train].mean() == pytest.approx(1.0) and weights[~train].mean() == pytest.approx(1.0)
    by_lead = weights[train].groupby(frame.loc[train, "lead_id"]).sum()
    assert by_lead["a"] == pytest.approx(by_lead["b"])


# -- stages: the target, past the target, PQL ----------------------------------------------------


def _stage_outcomes():
    return pd.DataFrame({
        "lead_id": ["a", "b", "c"],
        "outcome": np.array([1, 0, 0], dtype="int8"),
        "closed_at": pd.to_datetime(["2026-04-01", "2026-06-01", None], utc=True),
        "sql_at": pd.to_datetime(["2026-01-25", "2026-03-01", None], utc=True),
    })  # fmt: skip


def test_snapshots_past_the_target_stage_are_not_training_rows():
    snapshots = build_snapshots(_leads(), _stage_outcomes(), every_days=10, horizon_days=20,
                                data_end=T("2026-12-31"), stage="sql")  # fmt: skip
    a = snapshots.loc[snapshots["lead_id"] == "a"]
    # a: created 01-01 (phase 145 h), SQL on 01-25: snapshots 01-07 and 01-17 only (both within 20 days of 01-25)
    assert a["as_of"].tolist() == [T("2026-01-07 01:00"), T("2026-01-17 01:00")]
    assert a["converted"].tolist() == [1.0, 1.0]
    b = snapshots.loc[snapshots["lead_id"] == "b"]
    # b: created 01-10 (phase 176 h), SQL 03-01: steps 01-17 ... 02-26 (5); the label turns 1 within 20 days of 03-01
    assert b["converted"].tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]


def test_fixed_as_of_counts_closed_and_past_target_leads():
    snapshots = build_snapshots(_leads(), _stage_outcomes(), policy="fixed", as_of="2026-05-25",
                                horizon_days=1, data_end=T("2026-05-25"), stage="sql")  # fmt: skip
    # a closed (won 04-01); b is past SQL (03-01) though still open; c and d are prospects
    assert snapshots["lead_id"].tolist() == ["c", "d"]
    assert snapshots.attrs["left_out"] == {"closed": 1, "past_target": 1}
    won = build_snapshots(_leads(), _stage_outcomes(), policy="fixed", as_of="2026-05-25",
                          horizon_days=1, data_end=T("2026-05-25"))  # fmt: skip
    assert won["lead_id"].tolist() == ["b", "c", "d"]  # for target won, b (SQL, open) is still a prospect
    assert won.attrs["left_out"] == {"closed": 1, "past_target": 0}


def test_a_later_stage_also_ends_the_prospect_of_an_earlier_target():
    outcomes = _stage_outcomes().assign(
        sql_at=pd.NaT, opportunity_at=pd.to_datetime(["2026-01-20", None, None], utc=True)
    )
    snapshots = build_snapshots(_leads(), outcomes, policy="fixed", as_of="2026-02-01", horizon_days=1,
                                data_end=T("2026-02-01"), stage="sql")  # fmt: skip
    assert "a" not in snapshots["lead_id"].tolist()  # an opportunity since 01-20 is past SQL
    assert snapshots.attrs["left_out"]["past_target"] == 1


def test_pql_is_the_nth_product_event():
    events = pd.DataFrame({
        "lead_id": ["a", "a", "a", "b", "c"],
        "event_type": ["trial_signup", "page_view", "product_login", "product_login", "page_view"],
        "timestamp": pd.to_datetime(["2026-01-05", "2026-01-06", "2026-01-15", "2026-02-20", "2026-01-12"], utc=True),
    })  # fmt: skip
    times = pql_times(events, ["trial_signup", "product_login"], min_events=2)
    assert times.to_dict() == {"a": T("2026-01-15")}  # b has one product event, c none
    snapshots = build_snapshots(_leads(), None, policy="days_after_creation", days_after_creation=7,
                                horizon_days=30, data_end=T("2026-12-31"), stage="pql", pql=times)  # fmt: skip
    assert snapshots.set_index("lead_id")["converted"].to_dict() == {"a": 1.0, "b": 0.0, "c": 0.0, "d": 0.0}
    with pytest.raises(LeadDataError, match="stages.pql.event_types"):
        pql_times(events, [])


# -- the purged time split -----------------------------------------------------------------------


def test_purge_drops_only_the_same_leads_whose_window_reaches_the_test_period():
    days = pd.to_datetime(
        ["2026-01-01", "2026-02-01", "2026-03-01", "2026-04-01", "2026-04-10", "2026-05-01"], utc=True
    )
    frame = pd.DataFrame({"lead_id": ["b", "c", "d", "a", "e", "a"], "as_of": days, "converted": 0.0})
    split = time_split(frame, test_fraction=0.15, validation_fraction=0.2, horizon_days=45)
    # test: a on 05-01. a on 04-01 reaches 05-16 and is the same lead: purged. e on 04-10 reaches the
    # test period too, but e has no test snapshot: kept. The embargo of 45 days would drop both.
    assert split.tolist() == ["train", "train", "train", "purged", "validation", "test"]
    embargo = time_split(frame, test_fraction=0.15, validation_fraction=0.2, gap_days=45)
    assert embargo.tolist() == ["train", "train", "validation", "gap", "gap", "test"]


@settings(max_examples=60, deadline=None)
@given(
    days=st.lists(st.integers(0, 400), min_size=5, max_size=60),
    leads=st.lists(st.integers(0, 6), min_size=60, max_size=60),
    labels=st.lists(st.sampled_from([0.0, 1.0, np.nan]), min_size=60, max_size=60),
    horizon=st.integers(1, 120),
)
def test_no_label_window_of_a_fitted_snapshot_reaches_its_own_lead_in_a_later_part(days, leads, labels, horizon):
    n = len(days)
    frame = pd.DataFrame({"lead_id": [f"l{i}" for i in leads[:n]],
                          "as_of": T("2026-01-01") + pd.to_timedelta(sorted(days), unit="D"),
                          "converted": labels[:n]})  # fmt: skip
    split = time_split(frame, horizon_days=horizon)
    assert set(split) <= {"train", "validation", "test", "purged", "censored"}
    for earlier, later in (("train", "validation"), ("train", "test"), ("validation", "test")):
        late = frame.loc[split == later]
        if late.empty:
            continue
        start = late["as_of"].min()
        early = frame.loc[(split == earlier) & frame["lead_id"].isin(late["lead_id"])]
        assert (early["as_of"] + pd.Timedelta(days=horizon) <= start).all()
    purged = frame.loc[split == "purged"]
    assert purged["converted"].notna().all()  # only labelled rows are ever purged
